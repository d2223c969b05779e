/**
 * The SynIC hypercalls: HvCallPostMessage (0x005C, memory-based only: its
 * 256-byte input does not fit the registers) and HvCallSignalEvent
 * (0x005D), fact sheet §2.9, §2.10; and HvCallNotifyLongSpinWait (0x0008,
 * §2.8).
 *
 * PostMessage and SignalEvent reach the connections registered in the
 * kernel (partition.connections). A connection ID registered there is
 * handled here; any other goes to the VMM as a 'hyperv-hcall' exit, as
 * upstream KVM sends PostMessage, and SignalEvent when no eventfd matches,
 * to userspace.
 *
 * Statuses, in this order. PostMessage: Reserved ≠ 0 ⇒
 * INVALID_HYPERCALL_INPUT; unknown connection ⇒ VMM; PayloadSize > 240,
 * MessageType 0 or with bit 31 ⇒ INVALID_PARAMETER; target VP missing ⇒
 * INVALID_VP_INDEX; SynIC or SIM disabled ⇒ INVALID_SYNIC_STATE; queue
 * full ⇒ INSUFFICIENT_BUFFERS (partition.postMessage, synic.ts).
 * SignalEvent: RsvdZ ≠ 0 ⇒ INVALID_HYPERCALL_INPUT (KVM and QEMU);
 * unknown connection ⇒ VMM; FlagNumber ≥ the connection's flag count ⇒
 * INVALID_PARAMETER; INVALID_VP_INDEX; INVALID_SYNIC_STATE (SynIC or SIEF
 * disabled, SINT masked).
 *
 * NotifyLongSpinWait is advisory and always succeeds; its input (the spin
 * count) is not read, as in KVM. The vCPU gives up the rest of its quantum,
 * as a PAUSE does (kvm_vcpu_on_spin).
 */
import { HV_MESSAGE_PAYLOAD_MAX, HvPostMessageInput, HvSignalEventInput, HvStatus } from '../../spec/tlfs.js';
import { HC_TO_VMM, type HcCall } from './hc-call.js';

export function postMessage(call: HcCall): number {
  const inp = call.input;
  if (inp.u32(HvPostMessageInput.Reserved) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
  const partition = call.vcpu.hv!.partition;
  const connId = inp.u32(HvPostMessageInput.ConnectionId);
  if (partition.connections.messageConnection(connId) === undefined) return HC_TO_VMM;
  const size = inp.u32(HvPostMessageInput.PayloadSize);
  if (size > HV_MESSAGE_PAYLOAD_MAX) return HvStatus.INVALID_PARAMETER;
  const payload = inp.bytes.subarray(HvPostMessageInput.Payload, HvPostMessageInput.Payload + size);
  return partition.postMessage(connId, inp.u32(HvPostMessageInput.MessageType), payload);
}

export function signalEvent(call: HcCall): number {
  const inp = call.input;
  if (inp.u16(HvSignalEventInput.Reserved) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
  const partition = call.vcpu.hv!.partition;
  const connId = inp.u32(HvSignalEventInput.ConnectionId);
  if (partition.connections.eventConnection(connId) === undefined) return HC_TO_VMM;
  return partition.signalEvent(connId, inp.u16(HvSignalEventInput.FlagNumber));
}

export function notifyLongSpinWait(call: HcCall): number {
  call.yieldVcpu = true;
  return HvStatus.SUCCESS;
}
