/**
 * VsmPartitionConfig.InterceptUnrecoverableException (tlfs-vsm-facts §3.7
 * bit 11, §3.10, §4.3 HvMessageTypeUnrecoverableException, §4.6 "header
 * only"): a lower VTL's triple fault (kvm's 'shutdown' exit, KVM_EXIT_SHUTDOWN)
 * goes to a higher VTL instead of stopping the machine.
 *
 * The VTL notified is the lowest VTL above the faulting one, enabled on the
 * VP, whose VsmPartitionConfig has the bit (§3.10: of several intercepting
 * VTLs the lower is notified first). It gets an HV_MESSAGE of type
 * UnrecoverableException whose payload is the 40-byte §4.4 header of the
 * faulting VTL as it stopped (instruction length 0, access type read, RIP
 * where the CPU stopped), delivered like every intercept (SINT0 or the
 * intercept page), and the VP enters it with entry reason 3.
 *
 * What happens after (our choice; the sheet does not say): the faulted VTL
 * is runnable again when the VP returns to it, from the state the higher
 * VTL left it in (it may set RIP, RSP, the IDT ... with SetVpRegisters, or
 * inject an event). Returning without a change runs the faulting
 * instruction again, which normally faults the same way: another intercept.
 */
import type { VcpuExit } from '../../kvm/exits.js';
import { KVM_MP_STATE_RUNNABLE } from '../../kvm/mp-state.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import { HvInterceptAccessType, HvMessageType, HvVtlEntryReason } from '../../spec/tlfs.js';
import { interceptHeaderContext } from './intercept-context.js';
import { encodeInterceptHeader } from './intercept-message.js';
import { deliverIntercept, VSM_PARTITION_ID } from './memory-intercept.js';
import type { VsmPartition } from './partition.js';
import { enterHigherVtl } from './vtl-switch.js';

export type ShutdownExit = Extract<VcpuExit, { reason: 'shutdown' }>;

export type UnrecoverableExceptionOutcome =
  | { readonly kind: 'not-vsm' }
  | { readonly kind: 'intercepted'; readonly vtl: number; readonly offer: string };

/** Turns a lower VTL's shutdown exit into an intercept for the VTL that asked for it, if one did. */
export function handleUnrecoverableException(p: VsmPartition, vcpu: Vcpu, exit: ShutdownExit): UnrecoverableExceptionOutcome {
  const where = p.locate(vcpu);
  if (where === undefined) return { kind: 'not-vsm' };
  const vp = where.vp;
  const target = vp.lowestAbove(where.vtl, (h) => p.interceptsUnrecoverableException(h));
  if (target < 0) return { kind: 'not-vsm' };
  const { header } = interceptHeaderContext(vcpu, { vpIndex: vp.index, vtl: where.vtl, accessType: HvInterceptAccessType.Read, instructionLength: 0 });
  const msg = { type: HvMessageType.UnrecoverableException, payload: encodeInterceptHeader(header), originationId: VSM_PARTITION_ID };
  const offer = deliverIntercept(p, vp.vcpus[target]!, target, msg);
  vcpu.vm.trace?.emit('vsm_unrecoverable_exception', vcpu.id, vcpu.nowNs(), {
    vp: vp.index, from: where.vtl, to: target, why: exit.why, rip: header.rip.toString(16), offer,
  });
  enterHigherVtl(p, vp, target, HvVtlEntryReason.Intercept);
  // The shut-down Vcpu reads as UNINITIALIZED (mp-state.ts); it runs again when the VP returns to it.
  vp.resumeMpState[where.vtl] = KVM_MP_STATE_RUNNABLE;
  return { kind: 'intercepted', vtl: target, offer };
}
