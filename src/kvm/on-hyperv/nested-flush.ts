/**
 * L1's two wrappers around the L0 flush hypercalls (Linux
 * arch/x86/hyperv/nested.c, kvm-api-facts §6.1), each traced as Linux traces
 * it: hyperv_nested_flush_guest_mapping and
 * hyperv_nested_flush_guest_mapping_range, with `as` and `ret` (0, the HV
 * status of a failed call, or FILL_FAILED when the range needed more than
 * 510 elements and no call was made).
 */
import { HvCall } from '../../spec/tlfs.js';
import type { L0Hypervisor } from '../../l0/l0.js';
import { makeHypercallControl, parseHypercallResult } from '../hyperv/hypercall-input.js';
import { fillFlushList, FILL_FAILED, flushInputPage } from './flush-list.js';

/** Who makes the call: the L0, the calling vCPU (-1: the host thread, as a VM-wide flush), and a trace sink. */
export interface NestedFlushCaller {
  readonly l0: L0Hypervisor;
  trace(name: string, vcpu: number, args: Record<string, string | number>): void;
}

/** hyperv_flush_guest_mapping: 0xAF on address space `as`; 0 or the failure status. */
export function flushGuestMapping(c: NestedFlushCaller, vcpu: number, as: number): number {
  const control = makeHypercallControl({ code: HvCall.FlushGuestPhysicalAddressSpace });
  const { status } = parseHypercallResult(c.l0.hypercall(vcpu, control, flushInputPage(as)));
  c.trace('hyperv_nested_flush_guest_mapping', vcpu, { as: as.toString(16), ret: status });
  return status;
}

/** hyperv_flush_guest_mapping_range: 0xB0 on `as` for [startGfn, startGfn + pages); 0, the status, or FILL_FAILED. */
export function flushGuestMappingRange(c: NestedFlushCaller, vcpu: number, as: number, startGfn: number, pages: number): number {
  const input = flushInputPage(as);
  const n = fillFlushList(input, startGfn, pages);
  let ret: number = FILL_FAILED;
  if (n !== FILL_FAILED) {
    const control = makeHypercallControl({ code: HvCall.FlushGuestPhysicalAddressList, repCount: n });
    ret = parseHypercallResult(c.l0.hypercall(vcpu, control, input)).status;
  }
  c.trace('hyperv_nested_flush_guest_mapping_range', vcpu, { as: as.toString(16), ret });
  return ret;
}
