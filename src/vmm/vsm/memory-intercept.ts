/**
 * A VTL protection violated: the memory-fault exit of a lower VTL's Vcpu
 * becomes a GPA intercept for the higher VTL that set the protection
 * (tlfs-vsm-facts §3.8, §3.10, §4.4, §4.5; kvm-api-facts §2.5, §2.6).
 *
 * 1. The VTL to notify is the lowest one above the faulting VTL whose mask
 *    denies the access (protections.ts, interceptTargetVtl); a fetch the
 *    exit flags XU (a user-mode fetch of a VTL running with MBEC) is
 *    checked against UX, every other fetch against KX.
 * 2. The message (HvMessageTypeGpaIntercept, byte-exact, intercept-message.ts)
 *    is built from the faulting Vcpu: the instruction has not completed and
 *    RIP is still on it (kvm §2.5). The cache type comes from PAT and the
 *    leaf paging entry of the GVA (translate-va.ts).
 * 3. It is offered on SINT0 of that VTL's SynIC, or, when that VTL's
 *    VsmPartitionConfig has InterceptPage, written into the intercept slot
 *    of its VP assist page (offset 0x70; an older message there is
 *    overwritten: the VTL has had its entry for it). A SynIC that is off, a
 *    full queue, or no assist page loses the message; the VTL is entered
 *    anyway and finds the reason in its assist page.
 *    A data access or fetch with a valid GVA reports GvaGpaValid and
 *    TlbLocked, and the notified VTL holds the faulting VTL's TLB lock on
 *    this VP until it returns (§3.9); a page-walk fault reports GvaValid only.
 * 4. The VP enters that VTL with entry reason 3 (intercept). Nothing
 *    completes the faulting instruction: after VtlReturn the lower VTL runs
 *    it again, and faults again unless the higher VTL changed something (§3.10).
 *
 * Not a VTL protection's fault (a PRIVATE fault, or no mask denies it): the
 * caller handles it. A protection whose VTL is not enabled on the faulting
 * VP cannot be reported on that VP: the VMM stops the machine with a report.
 */
import { KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEMORY_EXIT_FLAG_READ, KVM_MEMORY_EXIT_FLAG_WRITE, KVM_MEMORY_EXIT_FLAG_XU } from '../../kvm/exits.js';
import { checkHypercallBuffer } from '../../kvm/hyperv/hc-buffers.js';
import { ACCESS_WRITE, AccessOrigin } from '../../x86/host.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import { PAGE_SIZE } from '../../memory/phys-memory.js';
import { HV_SYNIC_INTERCEPTION_SINT_INDEX, HvCacheType, HvInterceptAccessType, HvStatus, HvTranslateGvaResult, HvVtlEntryReason } from '../../spec/tlfs.js';
import { accessTypeOfFault, memoryInterceptContext, type MemoryFaultExit } from './intercept-context.js';
import { memoryInterceptMessage } from './intercept-message.js';
import type { VsmPartition, VsmVp } from './partition.js';
import { translateGva } from './translate-va.js';
import { assistPageOf, enterHigherVtl } from './vtl-switch.js';
import { encodeMessage, type HvMessage } from '../../kvm/hyperv/message.js';

/**
 * The sender partition ID of the intercept messages (HV_MESSAGE
 * OriginationId, §4.2: "partition ID for intercepts"). The sheet gives no
 * value; the VMM runs one partition and calls it 1.
 */
export const VSM_PARTITION_ID = 1n;

/** What became of a memory-fault exit. */
export type ProtectionFaultOutcome =
  /** Not a VTL protection's fault. */
  | { readonly kind: 'not-vsm' }
  /** Delivered: the VP is now in `vtl` (the SynIC's offer result tells whether the message reached the slot). */
  | { readonly kind: 'intercepted'; readonly vtl: number; readonly offer: string }
  /** The protecting VTL is not enabled on this VP: the machine must stop. */
  | { readonly kind: 'unreportable'; readonly why: string };

/**
 * HV_CACHE_TYPE of the faulting access (§5.4): from PAT and the leaf entry of the GVA's translation (translate-va.ts);
 * without a GVA, or when the walk itself is what faulted, WB (the type of memory without paging).
 */
function cacheTypeOf(vcpu: Vcpu, exit: MemoryFaultExit): number {
  if (!exit.gvaValid) return HvCacheType.WriteBack;
  const t = translateGva(vcpu, exit.gva, 0);
  return t.code === HvTranslateGvaResult.Success ? t.cacheType : HvCacheType.WriteBack;
}

/**
 * Step 3 for every intercept: offers `msg` on SINT0 of VTL `target`'s SynIC
 * (`higher` is that VTL's Vcpu), or writes it into the intercept slot of its
 * VP assist page when its VsmPartitionConfig has InterceptPage. Returns what
 * became of it (the SynIC's offer result, 'intercept-page' or 'no-assist-page').
 */
export function deliverIntercept(p: VsmPartition, higher: Vcpu, target: number, msg: HvMessage): string {
  if (p.usesInterceptPage(target)) {
    const page = assistPageOf(higher);
    page?.writeInterceptMessage(encodeMessage(msg));
    return page === null ? 'no-assist-page' : 'intercept-page';
  }
  return higher.hv?.synic.offer(HV_SYNIC_INTERCEPTION_SINT_INDEX, { build: () => msg }) ?? 'disabled';
}

export function handleProtectionFault(p: VsmPartition, vcpu: Vcpu, exit: MemoryFaultExit): ProtectionFaultOutcome {
  const where = p.locate(vcpu);
  if (where === undefined || (exit.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0) return { kind: 'not-vsm' };
  const access = accessTypeOfFault(exit.flags);
  const userExecute = (exit.flags & KVM_MEMORY_EXIT_FLAG_XU) !== 0; // a user-mode fetch under MBEC: UX denied it
  const target = p.protections.interceptTarget(Math.floor(exit.exactGpa / PAGE_SIZE), where.vtl, access, userExecute);
  if (target < 0) return { kind: 'not-vsm' };
  return intercept(p, vcpu, where.vp, where.vtl, exit, access, target);
}

/** Steps 2-4 for an access (HvInterceptAccessType `access`, of `exit`) of VTL `vtl` on `vp` that VTL `target`'s protection denies. */
function intercept(p: VsmPartition, vcpu: Vcpu, vp: VsmVp, vtl: number, exit: MemoryFaultExit, access: number, target: number): ProtectionFaultOutcome {
  const higher = vp.vcpus[target];
  if (!vp.isEnabled(target) || higher === undefined) {
    return { kind: 'unreportable', why: `VTL${vtl} of VP ${vp.index} violated a VTL${target} protection at GPA 0x${exit.exactGpa.toString(16)}, but VTL${target} is not enabled on that VP` };
  }
  // A data access or fetch with a valid GVA is reported with GvaGpaValid: the GPA is that GVA's translation, and the
  // notified VTL holds the faulting VTL's TLB lock until it returns (§3.9, §4.5), so the translation stays what the
  // faulting VTL used. A page-walk fault's GPA is a paging entry's, not the GVA's translation: GvaValid only.
  const lockTlb = exit.gvaValid && exit.origin === AccessOrigin.Guest;
  const ctx = memoryInterceptContext(vcpu, exit, { vpIndex: vp.index, vtl: vtl, lockTlb, cacheType: cacheTypeOf(vcpu, exit) });
  if (lockTlb) p.lockTlb(vp, target, vtl);
  const offer = deliverIntercept(p, higher, target, memoryInterceptMessage(ctx, VSM_PARTITION_ID));
  vcpu.vm.trace?.emit('vsm_gpa_intercept', vcpu.id, vcpu.nowNs(), {
    vp: vp.index, from: vtl, to: target, access, gpa: exit.exactGpa.toString(16), rip: ctx.rip.toString(16), offer,
  });
  enterHigherVtl(p, vp, target, HvVtlEntryReason.Intercept);
  return { kind: 'intercepted', vtl: target, offer };
}

/** checkVsmHypercallBuffer's answer when it raised an intercept instead of returning a status: the call stays unanswered. */
export const BUFFER_INTERCEPTED = -1;

/**
 * The buffer of a slow hypercall the VMM answers (input: ACCESS_READ,
 * output: ACCESS_WRITE), checked as kvm checks its own (hc-buffers.ts:
 * SUCCESS or the status), except that a buffer a VTL protection denies
 * raises a GPA intercept, as the TLFS has the hypervisor do for an input
 * page that is not readable or an output page that is not writable
 * (tlfs-vsm-facts §1.1): to the lowest VTL whose mask denies it, Read or
 * Write, GPA = the buffer's first byte, no GVA, the VMCALL's RIP and bytes
 * (read at RIP; 3), then the entry with reason 3, and BUFFER_INTERCEPTED:
 * the caller leaves the exit unanswered, so after VtlReturn the VMCALL runs
 * again and the whole call is checked again. Every handler checks its
 * buffers before it changes anything, so nothing is left half done and
 * HypercallOutputPending stays 0 (an output the hypervisor holds back
 * cannot happen here). The calls kvm answers itself keep kvm's rule
 * (INVALID_HYPERCALL_INPUT, kvm-api-facts §2.7); a write to the hypercall
 * page stays INVALID_HYPERCALL_INPUT, and so does a denial this VP cannot
 * report (the protecting VTL is not enabled on it).
 */
export function checkVsmHypercallBuffer(p: VsmPartition, vcpu: Vcpu, lo: number, hi: number, len: number, access: number): number {
  const status = checkHypercallBuffer(vcpu.vm, lo, hi, len, access);
  if (status !== HvStatus.INVALID_HYPERCALL_INPUT) return status;
  const gpa = (hi >>> 0) * 2 ** 32 + (lo >>> 0), gfn = Math.floor(gpa / PAGE_SIZE), vm = vcpu.vm;
  const where = p.locate(vcpu);
  if (where === undefined || !vm.mem.isRam(gpa) || vm.guestAccessAllowed(gpa, access)) return status;
  if (vm.hyperv?.isOverlayWrite(gpa, access)) return status;
  const accessType = (access & ACCESS_WRITE) !== 0 ? HvInterceptAccessType.Write : HvInterceptAccessType.Read;
  const target = p.protections.interceptTarget(gfn, where.vtl, accessType);
  if (target < 0 || !where.vp.isEnabled(target) || where.vp.vcpus[target] === undefined) return status;
  const insnBytes = bytesAtRip(vcpu, VMCALL_LENGTH);
  const exit: MemoryFaultExit = {
    reason: 'memory-fault', flags: accessType === HvInterceptAccessType.Write ? KVM_MEMORY_EXIT_FLAG_WRITE : KVM_MEMORY_EXIT_FLAG_READ,
    gpa: gfn * PAGE_SIZE, size: PAGE_SIZE, insnLen: insnBytes.length, gva: 0n, gvaValid: false, origin: AccessOrigin.Guest,
    insnBytes, exactGpa: gpa,
  };
  intercept(p, vcpu, where.vp, where.vtl, exit, accessType, target);
  return BUFFER_INTERCEPTED;
}

/** VMCALL (0F 01 C1) and VMMCALL (0F 01 D9) are 3 bytes. */
const VMCALL_LENGTH = 3;

/** `n` instruction bytes at the Vcpu's RIP (its translation, as its fetch made it), or none if RIP no longer translates. */
function bytesAtRip(vcpu: Vcpu, n: number): Uint8Array {
  const t = translateGva(vcpu, vcpu.getRegs().rip, 0);
  const at = Number(t.gpa);
  return t.code === HvTranslateGvaResult.Success && vcpu.vm.mem.isRam(at) && vcpu.vm.mem.isRam(at + n - 1) ? vcpu.vm.mem.read(at, n) : new Uint8Array(0);
}
