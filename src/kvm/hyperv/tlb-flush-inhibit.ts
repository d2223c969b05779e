/**
 * TLB-flush inhibit (kvm-api-facts §1, the proposed
 * KVM_HYPERV_SET_TLB_FLUSH_INHIBIT vCPU ioctl): a vCPU whose flag is set
 * may not have its TLB flushed by a Hyper-V flush hypercall
 * (FlushVirtualAddressSpace/List and their Ex forms). A vCPU whose flush
 * targets an inhibited vCPU is suspended instead: the hypercall does not
 * complete (no RAX write, RIP stays on the VMCALL), the vCPU does not run
 * and takes no events, and it records the one vCPU it waits on: the first
 * inhibited target in vCPU index order, itself included. Clearing the flag
 * on X un-suspends every vCPU waiting on X; each re-executes its VMCALL
 * (pending interrupts are delivered first, since RIP is on the VMCALL) and
 * may be suspended again on another inhibitor. The VMM's run loop does not
 * see any of this: run() returns as for a halted vCPU, runnable is false,
 * the MP state is unchanged.
 */
import { KvmError } from '../errors.js';
import type { Vcpu } from '../vcpu.js';

/** struct kvm_hyperv_tlb_flush_inhibit.inhibit values (§1.2). */
export const KVM_HYPERV_UNINHIBIT_TLB_FLUSH = 0;
export const KVM_HYPERV_INHIBIT_TLB_FLUSH = 1;

/** struct kvm_hyperv_tlb_flush_inhibit (§1.2); the 5 padding bytes are not represented. */
export interface KvmHypervTlbFlushInhibit {
  flags: number;
  inhibit: number;
}

/** Per-vCPU state (§1.3: tlb_flush_inhibit, suspended, waiting_on). */
export class TlbFlushInhibitState {
  inhibited = false;
  suspended = false;
  /** vCPU id this vCPU waits on while suspended, else -1. */
  waitingOn = -1;
}

/**
 * KVM_HYPERV_SET_TLB_FLUSH_INHIBIT on `vcpu`: EFAULT for a non-object,
 * EINVAL for flags ≠ 0 or inhibit ∉ {0, 1} (the documented behaviour;
 * §1.2 "our model"). Setting the current value again does nothing.
 * Clearing wakes every vCPU of the VM waiting on this one.
 */
export function setTlbFlushInhibit(vcpu: Vcpu, arg: KvmHypervTlbFlushInhibit): void {
  if (typeof arg !== 'object' || arg === null) throw new KvmError('EFAULT', 'the TLB flush inhibit argument is not an object');
  const { flags, inhibit } = arg;
  if (flags !== 0) throw new KvmError('EINVAL', `TLB flush inhibit flags must be 0, got ${String(flags)}`);
  if (inhibit !== KVM_HYPERV_UNINHIBIT_TLB_FLUSH && inhibit !== KVM_HYPERV_INHIBIT_TLB_FLUSH) {
    throw new KvmError('EINVAL', `TLB flush inhibit must be 0 or 1, got ${String(inhibit)}`);
  }
  const on = inhibit === KVM_HYPERV_INHIBIT_TLB_FLUSH;
  const s = vcpu.tlbFlush;
  if (s.inhibited === on) return;
  s.inhibited = on;
  if (on) return;
  for (const w of vcpu.vm.vcpus) {
    if (!w.tlbFlush.suspended || w.tlbFlush.waitingOn !== vcpu.id) continue;
    w.tlbFlush.suspended = false;
    w.tlbFlush.waitingOn = -1;
    w.cpu.intrCheck = true; // KVM_REQ_EVENT: events that arrived meanwhile are taken before the retry
    w.vm.trace?.emit('kvm_hv_vcpu_unsuspend_tlb_flush', w.id, w.nowNs(), { vcpu_id: w.id });
  }
}

/** The first inhibited vCPU of `targets` (which are in vCPU index order), or undefined. */
export function firstInhibited(targets: readonly Vcpu[]): Vcpu | undefined {
  for (const t of targets) if (t.tlbFlush.inhibited) return t;
  return undefined;
}

/** Suspends `caller`, whose flush targets the inhibited `inhibitor` (the dispatcher leaves RIP on the VMCALL). */
export function suspendForTlbFlush(caller: Vcpu, inhibitor: Vcpu): void {
  caller.tlbFlush.suspended = true;
  caller.tlbFlush.waitingOn = inhibitor.id;
  caller.vm.trace?.emit('kvm_hv_vcpu_suspend_tlb_flush', caller.id, caller.nowNs(), { vcpu_id: caller.id, waiting_on: inhibitor.id });
}
