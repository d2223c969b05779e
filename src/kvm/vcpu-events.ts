/**
 * KVM_GET_VCPU_EVENTS / KVM_SET_VCPU_EVENTS (struct kvm_vcpu_events, upstream
 * Documentation/virt/kvm/api.rst "KVM_GET_VCPU_EVENTS", arch/x86/kvm/x86.c
 * kvm_vcpu_ioctl_x86_{get,set}_vcpu_events): the exception, interrupt and NMI
 * state that is in neither the registers nor the local APIC.
 *
 * How our vCPU holds that state:
 * - An injected exception / NMI / external interrupt is an event queued on
 *   the CPU (Cpu.queueEvent): the next run() delivers it before executing
 *   anything, in KVM's order (exception, then NMI, then interrupt). This is
 *   how the VMM raises #UD for a bad VtlCall/VtlReturn. The CPU queues an
 *   exception of its own there too when a memory-fault exit interrupted its
 *   delivery (KVM's IDT-vectoring case), so after such an exit
 *   `exception.injected` is what a VSM intercept calls InterruptionPending.
 *   An external interrupt or NMI whose delivery faults stays pending in the
 *   APIC / CPU instead (never acknowledged), so it is not reported injected.
 * - KVM_CAP_EXCEPTION_PAYLOAD is not offered, so, as in KVM without it,
 *   `exception.pending` is reported 0 and a queued exception is reported as
 *   `injected`; set ignores `exception.pending`.
 * - NMI: `nmi.pending` is the NMI the APIC latched or the CPU holds (one; KVM
 *   can count two), `nmi.masked` is NMI blocking.
 * - The interrupt shadow is the CPU's one `shadow` flag. Its kind is reported
 *   as the VMM set it, else from the instruction that set it (STI, else MOV/POP SS).
 * - Pending external interrupts live in the local APIC (KVM_GET_LAPIC's IRR):
 *   `apicPendingVector` reports the one it would deliver next and is ignored
 *   by set (not in KVM's struct; the APIC state is not duplicated here).
 *
 * Set checks (EINVAL, nothing changed): flags outside NMI_PENDING | SHADOW |
 * SMM; PAYLOAD and TRIPLE_FAULT (their capabilities are not enabled, as in
 * KVM); SIPI_VECTOR (not supported here); SMM with smm, pending or
 * smm_inside_nmi set (no SMM, as KVM built without CONFIG_KVM_SMM); an
 * injected exception with nr > 31 or nr = 2 (KVM's check); fields that are
 * not u8/u32. Moved here from VM entry, which KVM would fail instead
 * (SDM 26.2.1.3): an injected exception whose has_error_code does not match
 * its vector while CR0.PE = 1, and an injected soft interrupt (we have no
 * instruction length for it).
 */
import type { QueuedEvent } from '../x86/cpu.js';
import { EventKind } from '../x86/interrupts.js';
import { CR0_PE } from '../x86/regs.js';
import { KvmError } from './errors.js';
import type { Vcpu } from './vcpu.js';

export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x01;
export const KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x02;
export const KVM_VCPUEVENT_VALID_SHADOW = 0x04;
export const KVM_VCPUEVENT_VALID_SMM = 0x08;
export const KVM_VCPUEVENT_VALID_PAYLOAD = 0x10;
export const KVM_VCPUEVENT_VALID_TRIPLE_FAULT = 0x20;

/** interrupt.shadow bits. */
export const KVM_X86_SHADOW_INT_MOV_SS = 0x01;
export const KVM_X86_SHADOW_INT_STI = 0x02;

/** Vectors whose exceptions deliver an error code in protected mode (SDM table 6-1; VM entry checks the same set). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21]);
const NMI_VECTOR = 2;

/** struct kvm_vcpu_events (less the payload and triple-fault fields, whose capabilities we do not offer). */
export interface KvmVcpuEvents {
  exception: { injected: number; nr: number; hasErrorCode: number; pending: number; errorCode: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
}

/** What getVcpuEvents reports: kvm_vcpu_events plus, not KVM's, the local APIC's next vector. */
export interface KvmVcpuEventsReport extends KvmVcpuEvents {
  /** The vector the local APIC would deliver next (RFLAGS.IF aside), or -1; setVcpuEvents ignores it. */
  apicPendingVector: number;
}

/** The shadow kind the VMM last set, valid while nothing has executed since (icount unchanged). */
const shadowSetByVmm = new WeakMap<Vcpu, { icount: number; bits: number }>();

function shadowBits(vcpu: Vcpu): number {
  const c = vcpu.cpu;
  if (!c.shadow) return 0;
  const set = shadowSetByVmm.get(vcpu);
  if (set !== undefined && set.icount === c.icount) return set.bits;
  const last = c.recentInstructions(1)[0];
  return last?.insn.name === 'sti' ? KVM_X86_SHADOW_INT_STI : KVM_X86_SHADOW_INT_MOV_SS;
}

const queued = (vcpu: Vcpu, kind: EventKind): QueuedEvent | undefined => vcpu.cpu.queuedEvents.find((e) => e.kind === kind);

export function getVcpuEvents(vcpu: Vcpu): KvmVcpuEventsReport {
  const c = vcpu.cpu, a = vcpu.apic;
  const exc = queued(vcpu, EventKind.Exception);
  const irq = queued(vcpu, EventKind.External);
  return {
    exception: {
      injected: exc ? 1 : 0, nr: exc?.vector ?? 0, hasErrorCode: exc?.hasErrorCode ? 1 : 0, pending: 0, errorCode: exc?.errorCode ?? 0,
    },
    interrupt: { injected: irq ? 1 : 0, nr: irq?.vector ?? 0, soft: 0, shadow: shadowBits(vcpu) },
    nmi: {
      injected: queued(vcpu, EventKind.Nmi) ? 1 : 0,
      pending: a.nmiPending || c.nmiPending ? 1 : 0,
      masked: c.nmiBlocked ? 1 : 0,
    },
    sipiVector: 0, // never valid when reported (KVM)
    flags: KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM,
    smi: { smm: 0, pending: 0, smmInsideNmi: 0, latchedInit: 0 },
    apicPendingVector: a.pendingVector(),
  };
}

function field(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new KvmError('EINVAL', `vcpu events ${what} must be an integer in 0..${max}, got ${String(v)}`);
  }
  return v;
}
function part<T>(v: T | undefined | null, what: string): T {
  if (typeof v !== 'object' || v === null) throw new KvmError('EINVAL', `vcpu events ${what} is missing`);
  return v;
}

const SUPPORTED_FLAGS = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;

export function setVcpuEvents(vcpu: Vcpu, ev: KvmVcpuEvents): void {
  if (typeof ev !== 'object' || ev === null) throw new KvmError('EFAULT', 'the vcpu events argument is not an object');
  const flags = field(ev.flags, 0xffffffff, 'flags');
  if (flags & KVM_VCPUEVENT_VALID_PAYLOAD) throw new KvmError('EINVAL', 'KVM_VCPUEVENT_VALID_PAYLOAD needs KVM_CAP_EXCEPTION_PAYLOAD, which this VM does not enable');
  if (flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) throw new KvmError('EINVAL', 'KVM_VCPUEVENT_VALID_TRIPLE_FAULT needs KVM_CAP_X86_TRIPLE_FAULT_EVENT, which this VM does not enable');
  if (flags & KVM_VCPUEVENT_VALID_SIPI_VECTOR) throw new KvmError('EINVAL', 'KVM_VCPUEVENT_VALID_SIPI_VECTOR is not supported by this vCPU');
  if (flags & ~SUPPORTED_FLAGS) throw new KvmError('EINVAL', `vcpu events flags 0x${flags.toString(16)} set undefined bits`);

  const e = part(ev.exception, 'exception'), i = part(ev.interrupt, 'interrupt'), n = part(ev.nmi, 'nmi');
  const excInjected = field(e.injected, 0xff, 'exception.injected') !== 0;
  const excNr = field(e.nr, 0xff, 'exception.nr');
  const excHasErr = field(e.hasErrorCode, 0xff, 'exception.hasErrorCode') !== 0;
  const excErr = field(e.errorCode, 0xffffffff, 'exception.errorCode');
  const irqInjected = field(i.injected, 0xff, 'interrupt.injected') !== 0;
  const irqNr = field(i.nr, 0xff, 'interrupt.nr');
  const irqSoft = field(i.soft, 0xff, 'interrupt.soft') !== 0;
  const shadow = field(i.shadow, 0xff, 'interrupt.shadow');
  const nmiInjected = field(n.injected, 0xff, 'nmi.injected') !== 0;
  const nmiPending = field(n.pending, 0xff, 'nmi.pending') !== 0;
  const nmiMasked = field(n.masked, 0xff, 'nmi.masked') !== 0;
  if (flags & KVM_VCPUEVENT_VALID_SMM) {
    const s = part(ev.smi, 'smi');
    if (field(s.smm, 0xff, 'smi.smm') || field(s.pending, 0xff, 'smi.pending') || field(s.smmInsideNmi, 0xff, 'smi.smmInsideNmi')) {
      throw new KvmError('EINVAL', 'this vCPU has no SMM: smi.smm, smi.pending and smi.smmInsideNmi must be 0');
    }
    field(s.latchedInit, 0xff, 'smi.latchedInit');
  }
  if (excInjected) {
    if (excNr > 31 || excNr === NMI_VECTOR) {
      throw new KvmError('EINVAL', `exception vector ${excNr} is not an exception (0..31 except 2, the NMI: use nmi.injected)`);
    }
    if ((vcpu.cpu.cr0 & CR0_PE) && excHasErr !== ERROR_CODE_VECTORS.has(excNr)) {
      throw new KvmError('EINVAL', `exception ${excNr} ${excHasErr ? 'has no error code' : 'needs an error code'} in protected mode (VM entry would fail)`);
    }
  }
  if (irqInjected && irqSoft) throw new KvmError('EINVAL', 'an injected soft interrupt needs an instruction length this API does not carry');

  // Everything is valid: replace the injected events, in KVM's delivery order.
  const c = vcpu.cpu;
  c.queuedEvents.length = 0;
  if (excInjected) c.queueEvent({ kind: EventKind.Exception, vector: excNr, hasErrorCode: excHasErr, errorCode: excErr });
  if (nmiInjected) c.queueEvent({ kind: EventKind.Nmi, vector: NMI_VECTOR, hasErrorCode: false, errorCode: 0 });
  if (irqInjected) c.queueEvent({ kind: EventKind.External, vector: irqNr, hasErrorCode: false, errorCode: 0 });
  if (flags & KVM_VCPUEVENT_VALID_SHADOW) {
    // VMX loads one kind; with both bits, MOV SS wins (vmx_set_interrupt_shadow).
    const bits = shadow & KVM_X86_SHADOW_INT_MOV_SS ? KVM_X86_SHADOW_INT_MOV_SS : shadow & KVM_X86_SHADOW_INT_STI;
    c.shadow = bits !== 0;
    if (bits !== 0) shadowSetByVmm.set(vcpu, { icount: c.icount, bits }); else shadowSetByVmm.delete(vcpu);
  }
  if (flags & KVM_VCPUEVENT_VALID_NMI_PENDING) {
    vcpu.apic.nmiPending = false; // the APIC's latch moves to the CPU at the next run(); the new value replaces both
    c.nmiPending = nmiPending;
  }
  c.nmiBlocked = nmiMasked;
  c.intrCheck = true; // KVM_REQ_EVENT
}
