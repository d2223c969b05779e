/**
 * Named set-ups for running a whole guest as L2 on Hyper-V (the runner's
 * --on-hyperv): every vCPU attached and on the VM's identity root.
 * - fixed: L0 with the enlightened TLB (CPUID 0x4000000A bits 18 and 22), our core with the merged fix (§6.3);
 * - unfixed: the same without the fix (the 2023 bug; a plain boot never frees a root, so it behaves alike);
 * - plain: L0 without the enlightened TLB (bit 18 only): no Hyper-V remote flush, architectural ASID flushes.
 */
import type { Vcpu } from '../vcpu.js';
import type { Vm } from '../vm.js';
import { OnHyperv, type OnHypervOptions } from './on-hyperv.js';

export const ON_HYPERV_MODES = ['fixed', 'unfixed', 'plain'] as const;
export type OnHypervMode = (typeof ON_HYPERV_MODES)[number];

export function onHypervOptions(mode: OnHypervMode): OnHypervOptions {
  switch (mode) {
    case 'fixed': return { fix: true };
    case 'unfixed': return { fix: false };
    case 'plain': return { l0Features: { enlightenedTlb: false } };
  }
}

/** Runs `vcpus` of `vm` as L2 from now on, each with the VM's root loaded. */
export function startOnHyperv(vm: Vm, vcpus: readonly Vcpu[], mode: OnHypervMode): OnHyperv {
  const oh = new OnHyperv(vm, onHypervOptions(mode));
  for (const v of vcpus) oh.attach(v).mmuLoad();
  return oh;
}
