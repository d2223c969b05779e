/**
 * HvX64RegisterPendingInterruption (0x0001_0002) and
 * HvX64RegisterInterruptState (0x0001_0003) of Get/SetVpRegisters
 * (tlfs-vsm-facts §3.7 names them; bit layouts from the TLFS's
 * HV_X64_PENDING_INTERRUPTION_REGISTER / HV_X64_INTERRUPT_STATE_REGISTER),
 * on a VTL's Vcpu through KVM_GET/SET_VCPU_EVENTS. A higher VTL uses them to
 * see or set the event a lower VTL is about to take, e.g. to inject an
 * exception after handling an intercept (§3.10).
 *
 * PendingInterruption: bit 0 InterruptionPending, 3:1 InterruptionType
 * (0 external interrupt, 2 NMI, 3 exception), 4 DeliverErrorCode, 8:5
 * InstructionLength, 9 NestedEvent, 15:10 reserved, 31:16
 * InterruptionVector, 63:32 ErrorCode. Read: the injected exception, else the
 * injected NMI, else the injected interrupt (KVM's delivery order), else 0.
 * Write: 0 pending clears every injected event; otherwise the event of that
 * type is injected. Refused (INVALID_REGISTER_VALUE, nothing changed): other
 * types, reserved bits, NestedEvent, an instruction length (soft events,
 * which need one, are not offered by our kvm), an NMI whose vector is not 2,
 * an interrupt vector below 16, an exception vector above 31, and what
 * KVM_SET_VCPU_EVENTS refuses (an error code that does not match the vector).
 *
 * InterruptState: bit 0 InterruptShadow, bit 1 NmiMasked, 63:2 reserved
 * (a write with one set is refused). A shadow written here is a MOV SS one.
 *
 * HvRegisterPendingEvent0 (0x0001_0004; u128, layout of hvdef's
 * HV_X64_PENDING_EXCEPTION_EVENT): bit 0 EventPending, 3:1 EventType (0
 * exception), 7:4 reserved, 8 DeliverErrorCode, 15:9 reserved, 31:16
 * Vector, 63:32 ErrorCode, then the u64 ExceptionParameter (CR2 for a #PF).
 * The exception a higher VTL makes the lower VTL take when it resumes: the
 * same kvm state as an exception in PendingInterruption. Read: the injected
 * exception (ExceptionParameter = CR2 for a #PF, else 0), else 0. Write:
 * EventPending 0 clears an injected exception (not an NMI or interrupt);
 * otherwise the exception is injected, and for a #PF CR2 is set to the
 * parameter (as KVM does at delivery with an exception payload; here at
 * once, so GetVpRegisters of CR2 shows it before the lower VTL runs).
 * Refused (INVALID_REGISTER_VALUE, nothing changed): the other event types
 * (memory intercept, virtualization fault, hypercall output, external
 * interrupt: not modelled), reserved bits, a vector above 31, a parameter
 * for any vector but #PF (a #DB's DR6 payload is not modelled), and what
 * KVM_SET_VCPU_EVENTS refuses.
 * HvRegisterPendingEvent1 (0x0001_0005): a second event slot that this
 * model never fills: it reads 0; a write of 0 is accepted, any other refused.
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import { KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_SHADOW, KVM_X86_SHADOW_INT_MOV_SS } from '../../kvm/vcpu-events.js';
import { VsmError } from './errors.js';

const PENDING = 1n, TYPE_SHIFT = 1n, DELIVER_ERROR_CODE = 1n << 4n, LENGTH_SHIFT = 5n, NESTED = 1n << 9n;
const RESERVED = 0x3fn << 10n, VECTOR_SHIFT = 16n, ERROR_SHIFT = 32n;
const INTERRUPT = 0, NMI = 2, EXCEPTION = 3;
const SHADOW = 1n, NMI_MASKED = 2n;

export function readPendingInterruption(vcpu: Vcpu): bigint {
  const e = vcpu.getVcpuEvents();
  const make = (type: number, vector: number, errorCode?: number) => PENDING | (BigInt(type) << TYPE_SHIFT) | (BigInt(vector) << VECTOR_SHIFT)
    | (errorCode === undefined ? 0n : DELIVER_ERROR_CODE | (BigInt(errorCode >>> 0) << ERROR_SHIFT));
  if (e.exception.injected || e.exception.pending) return make(EXCEPTION, e.exception.nr, e.exception.hasErrorCode ? e.exception.errorCode : undefined);
  if (e.nmi.injected) return make(NMI, 2);
  if (e.interrupt.injected) return make(INTERRUPT, e.interrupt.nr);
  return 0n;
}

/** Injects (or clears) the event; VsmError when the value is refused (see the file comment), KvmError when kvm refuses it. */
export function writePendingInterruption(vcpu: Vcpu, v: bigint): void {
  const e = vcpu.getVcpuEvents();
  const none = { ...e, exception: { ...e.exception, injected: 0, pending: 0 }, nmi: { ...e.nmi, injected: 0 }, interrupt: { ...e.interrupt, injected: 0 } };
  if ((v & PENDING) === 0n) { vcpu.setVcpuEvents(none); return; }
  const type = Number((v >> TYPE_SHIFT) & 7n), vector = Number((v >> VECTOR_SHIFT) & 0xffffn);
  const errorCode = Number(v >> ERROR_SHIFT), hasErrorCode = (v & DELIVER_ERROR_CODE) !== 0n;
  if ((v & (RESERVED | NESTED)) !== 0n || ((v >> LENGTH_SHIFT) & 0xfn) !== 0n) throw new VsmError('reserved, NestedEvent or InstructionLength bits set');
  switch (type) {
    case EXCEPTION:
      if (vector > 31) throw new VsmError(`exception vector ${vector} is above 31`);
      vcpu.setVcpuEvents({ ...none, exception: { injected: 1, nr: vector, hasErrorCode: hasErrorCode ? 1 : 0, pending: 0, errorCode: hasErrorCode ? errorCode : 0 } });
      return;
    case NMI:
      if (vector !== 2 || hasErrorCode) throw new VsmError('an NMI has vector 2 and no error code');
      vcpu.setVcpuEvents({ ...none, nmi: { ...none.nmi, injected: 1 }, flags: e.flags | KVM_VCPUEVENT_VALID_NMI_PENDING });
      return;
    case INTERRUPT:
      if (vector < 16 || vector > 255 || hasErrorCode) throw new VsmError(`interrupt vector ${vector} is not 16-255, or an error code was given`);
      vcpu.setVcpuEvents({ ...none, interrupt: { ...none.interrupt, injected: 1, nr: vector, soft: 0 } });
      return;
    default:
      throw new VsmError(`interruption type ${type} is not 0, 2 or 3`);
  }
}

export function readInterruptState(vcpu: Vcpu): bigint {
  const e = vcpu.getVcpuEvents();
  return (e.interrupt.shadow !== 0 ? SHADOW : 0n) | (e.nmi.masked !== 0 ? NMI_MASKED : 0n);
}

export function writeInterruptState(vcpu: Vcpu, v: bigint): void {
  if ((v & ~(SHADOW | NMI_MASKED)) !== 0n) throw new VsmError('InterruptState bits 63:2 are reserved');
  const e = vcpu.getVcpuEvents();
  vcpu.setVcpuEvents({
    ...e, flags: e.flags | KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_NMI_PENDING,
    interrupt: { ...e.interrupt, shadow: (v & SHADOW) !== 0n ? KVM_X86_SHADOW_INT_MOV_SS : 0 },
    nmi: { ...e.nmi, masked: (v & NMI_MASKED) !== 0n ? 1 : 0 },
  });
}

const EV_PENDING = 1n, EV_TYPE_MASK = 7n << 1n, EV_RESERVED = (0xfn << 4n) | (0x7fn << 9n), EV_DELIVER_ERROR_CODE = 1n << 8n;
const EV_VECTOR_SHIFT = 16n, EV_ERROR_SHIFT = 32n;
const PF = 14;

/** PendingEvent0 as { low, high } (the u128's two u64 halves). */
export function readPendingEvent0(vcpu: Vcpu): { low: bigint; high: bigint } {
  const x = vcpu.getVcpuEvents().exception;
  if (!x.injected && !x.pending) return { low: 0n, high: 0n };
  const low = EV_PENDING | (BigInt(x.nr) << EV_VECTOR_SHIFT)
    | (x.hasErrorCode ? EV_DELIVER_ERROR_CODE | (BigInt(x.errorCode >>> 0) << EV_ERROR_SHIFT) : 0n);
  return { low, high: x.nr === PF ? vcpu.getSregs().cr2 : 0n };
}

/** Injects (or clears) the exception; VsmError when the value is refused (see the file comment), KvmError when kvm refuses it. */
export function writePendingEvent0(vcpu: Vcpu, low: bigint, high: bigint): void {
  const e = vcpu.getVcpuEvents();
  if ((low & EV_PENDING) === 0n) {
    if (low !== 0n || high !== 0n) throw new VsmError('a PendingEvent0 without EventPending has other bits set');
    vcpu.setVcpuEvents({ ...e, exception: { ...e.exception, injected: 0, pending: 0 } });
    return;
  }
  if ((low & EV_TYPE_MASK) !== 0n) throw new VsmError(`pending event type ${(low & EV_TYPE_MASK) >> 1n} is not 0 (exception)`);
  if ((low & EV_RESERVED) !== 0n) throw new VsmError('PendingEvent0 reserved bits are set');
  const vector = Number((low >> EV_VECTOR_SHIFT) & 0xffffn), hasErrorCode = (low & EV_DELIVER_ERROR_CODE) !== 0n;
  if (vector > 31) throw new VsmError(`exception vector ${vector} is above 31`);
  if (high !== 0n && vector !== PF) throw new VsmError('only a #PF takes an exception parameter (its CR2)');
  vcpu.setVcpuEvents({
    ...e, exception: { injected: 1, nr: vector, hasErrorCode: hasErrorCode ? 1 : 0, pending: 0, errorCode: hasErrorCode ? Number(low >> EV_ERROR_SHIFT) : 0 },
  });
  if (vector === PF) vcpu.setSregs({ ...vcpu.getSregs(), cr2: high });
}

/** PendingEvent1: never filled here (see the file comment). */
export function readPendingEvent1(): { low: bigint; high: bigint } { return { low: 0n, high: 0n }; }

export function writePendingEvent1(low: bigint, high: bigint): void {
  if (low !== 0n || high !== 0n) throw new VsmError('PendingEvent1 is not modelled: only 0 can be written');
}
