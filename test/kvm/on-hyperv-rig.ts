/**
 * Shared set-up of the on-Hyper-V tests: a Vm whose vCPUs run as L2 under
 * the L0 model (src/kvm/on-hyperv), and compact views of the L0 hypercalls.
 */
import { Vm } from '../../src/kvm/vm.js';
import { OnHyperv, type OnHypervOptions } from '../../src/kvm/on-hyperv/on-hyperv.js';
import type { OnHypervVcpu } from '../../src/kvm/on-hyperv/vcpu.js';

export const AF = 0xaf, B0 = 0xb0;

export interface Rig { vm: Vm; oh: OnHyperv; vs: OnHypervVcpu[] }

/** `n` attached vCPUs (ids 0..n-1), 4 MiB of RAM, tracing on. */
export function rig(n: number, opts: OnHypervOptions = {}): Rig {
  const vm = new Vm({ memorySize: 4 << 20, trace: true });
  const oh = new OnHyperv(vm, opts);
  const vs = Array.from({ length: n }, (_, k) => oh.attach(vm.createVcpu(k)));
  return { vm, oh, vs };
}

/** L0 hypercalls since the last clear, as [code, address space, status]. */
export function calls(oh: OnHyperv): [number, number, number][] {
  return oh.l0.calls.map((c) => [c.code, c.addressSpace, c.status]);
}

export function clearCalls(oh: OnHyperv): void {
  oh.l0.calls.length = 0;
  oh.vm.trace!.events.length = 0;
}

/** Names of the trace events since the last clear, in order. */
export function traceNames(oh: OnHyperv): string[] {
  return oh.vm.trace!.events.map((e) => e.name);
}
