/**
 * Get/SetVpRegisters on the architectural x64 registers of one VP in one
 * VTL, i.e. on that VTL's kvm Vcpu (register-names.ts says which names these
 * are; synthetic and VSM registers live in the partition and are the VMM's).
 * Values go through the kvm register API, and through cpu-state-adapter.ts
 * where that API has no call yet.
 *
 * Set answers SUCCESS or INVALID_REGISTER_VALUE (a value KVM_SET_REGS /
 * KVM_SET_SREGS / the adapter refuses), changing nothing on failure.
 * Known deviation: TLFS says SetVpRegisters has no side effects, but CR0,
 * CR3, CR4, EFER, segments, tables and APIC base go through setSregs, which
 * flushes the Vcpu's TLB (kvm has no sregs setter without it), and a TSC
 * write goes through WRMSR, which marks the reference TSC page invalid.
 */
import { KvmError } from '../../kvm/errors.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import type { KvmRegs, KvmSregs } from '../../kvm/vcpu-regs.js';
import { HvRegisterName as N, HvStatus } from '../../spec/tlfs.js';
import { MSR_TSC } from '../../x86/regs.js';
import {
  readCr2, readDebugRegs, readPrivateMsrs, readXcr0, writeCr2, writeDebugRegs, writePrivateMsrs, writeXcr0, type PrivateMsrs,
} from './cpu-state-adapter.js';
import { VsmError } from './errors.js';
import {
  readInterruptState, readPendingEvent0, readPendingEvent1, readPendingInterruption, writeInterruptState, writePendingEvent0, writePendingEvent1,
  writePendingInterruption,
} from './interruption-registers.js';
import { registerInfo } from './register-names.js';
import type { RegisterValue } from './register-value.js';
import { hvSegmentFromKvm, kvmSegmentFromHv } from './segment.js';

const GPRS: Record<number, keyof KvmRegs> = {
  [N.Rax]: 'rax', [N.Rcx]: 'rcx', [N.Rdx]: 'rdx', [N.Rbx]: 'rbx', [N.Rsp]: 'rsp', [N.Rbp]: 'rbp', [N.Rsi]: 'rsi', [N.Rdi]: 'rdi',
  [N.R8]: 'r8', [N.R9]: 'r9', [N.R10]: 'r10', [N.R11]: 'r11', [N.R12]: 'r12', [N.R13]: 'r13', [N.R14]: 'r14', [N.R15]: 'r15',
  [N.Rip]: 'rip', [N.Rflags]: 'rflags',
};
const SREG_U64: Record<number, 'cr0' | 'cr3' | 'cr4' | 'cr8' | 'efer' | 'apicBase'> = {
  [N.Cr0]: 'cr0', [N.Cr3]: 'cr3', [N.Cr4]: 'cr4', [N.Cr8]: 'cr8', [N.Efer]: 'efer', [N.ApicBase]: 'apicBase',
};
const SEGMENTS: Record<number, 'es' | 'cs' | 'ss' | 'ds' | 'fs' | 'gs' | 'ldt' | 'tr'> = {
  [N.Es]: 'es', [N.Cs]: 'cs', [N.Ss]: 'ss', [N.Ds]: 'ds', [N.Fs]: 'fs', [N.Gs]: 'gs', [N.Ldtr]: 'ldt', [N.Tr]: 'tr',
};
const TABLES: Record<number, 'idt' | 'gdt'> = { [N.Idtr]: 'idt', [N.Gdtr]: 'gdt' };
const MSRS: Record<number, keyof PrivateMsrs> = {
  [N.KernelGsBase]: 'kernelGsBase', [N.Pat]: 'pat', [N.SysenterCs]: 'sysenterCs', [N.SysenterEip]: 'sysenterEip',
  [N.SysenterEsp]: 'sysenterEsp', [N.Star]: 'star', [N.Lstar]: 'lstar', [N.Cstar]: 'cstar', [N.Sfmask]: 'sfmask', [N.TscAux]: 'tscAux',
};
const DEBUG: Record<number, number> = { [N.Dr0]: 0, [N.Dr1]: 1, [N.Dr2]: 2, [N.Dr3]: 3, [N.Dr6]: 6, [N.Dr7]: 7 };

const u64v = (value: bigint): RegisterValue => ({ kind: 'u64', value });

/** Whether `number` is an architectural register this module reads and writes. */
export function isArchRegister(number: number): boolean {
  return number in GPRS || number in SREG_U64 || number in SEGMENTS || number in TABLES || number in MSRS || number in DEBUG
    || (number >= N.Xmm0 && number <= N.Xmm15) || number === N.Cr2 || number === N.Xfem || number === N.Tsc
    || number === N.PendingInterruption || number === N.InterruptState || number === N.PendingEvent0 || number === N.PendingEvent1;
}

export function readArchRegister(vcpu: Vcpu, number: number): RegisterValue {
  if (number in GPRS) return u64v(vcpu.getRegs()[GPRS[number]]);
  if (number >= N.Xmm0 && number <= N.Xmm15) { const x = vcpu.getXmm(number - N.Xmm0); return { kind: 'u128', low: x.low, high: x.high }; }
  if (number in SREG_U64) return u64v(vcpu.getSregs()[SREG_U64[number]]);
  if (number in SEGMENTS) return { kind: 'segment', segment: hvSegmentFromKvm(vcpu.getSregs()[SEGMENTS[number]]) };
  if (number in TABLES) { const t = vcpu.getSregs()[TABLES[number]]; return { kind: 'table', table: { base: t.base, limit: t.limit } }; }
  if (number in MSRS) return u64v(readPrivateMsrs(vcpu)[MSRS[number]]);
  if (number in DEBUG) {
    const d = readDebugRegs(vcpu), k = DEBUG[number];
    return u64v(k < 4 ? d.db[k] : k === 6 ? d.dr6 : d.dr7);
  }
  if (number === N.Cr2) return u64v(readCr2(vcpu));
  if (number === N.Xfem) return u64v(readXcr0(vcpu));
  if (number === N.PendingInterruption) return u64v(readPendingInterruption(vcpu));
  if (number === N.InterruptState) return u64v(readInterruptState(vcpu));
  if (number === N.PendingEvent0) return { kind: 'u128', ...readPendingEvent0(vcpu) };
  if (number === N.PendingEvent1) return { kind: 'u128', ...readPendingEvent1() };
  if (number === N.Tsc) {
    const out = new Int32Array(2);
    vcpu.rdmsr(MSR_TSC, out);
    return u64v((BigInt(out[1] >>> 0) << 32n) | BigInt(out[0] >>> 0));
  }
  throw new VsmError(`register 0x${number.toString(16)} is not an architectural register of the Vcpu`);
}

/** SetVpRegisters of one architectural register: SUCCESS, or INVALID_REGISTER_VALUE with nothing changed. */
export function writeArchRegister(vcpu: Vcpu, number: number, value: RegisterValue): number {
  const info = registerInfo(number);
  if (info === undefined || !isArchRegister(number)) throw new VsmError(`register 0x${number.toString(16)} is not an architectural register of the Vcpu`);
  if (value?.kind !== info.kind) throw new VsmError(`register ${info.name} takes a ${info.kind} value, not ${String(value?.kind)}`);
  try {
    write(vcpu, number, value);
  } catch (e) {
    if (e instanceof KvmError || e instanceof VsmError) return HvStatus.INVALID_REGISTER_VALUE;
    throw e;
  }
  return HvStatus.SUCCESS;
}

/** Each branch makes one all-or-nothing kvm/adapter call (they check before they write). */
function write(vcpu: Vcpu, number: number, value: RegisterValue): void {
  const v = value.kind === 'u64' ? value.value : 0n;
  if (number in GPRS) { vcpu.setRegs({ ...vcpu.getRegs(), [GPRS[number]]: v }); return; }
  if (number === N.PendingEvent0 && value.kind === 'u128') { writePendingEvent0(vcpu, value.low, value.high); return; }
  if (number === N.PendingEvent1 && value.kind === 'u128') { writePendingEvent1(value.low, value.high); return; }
  if (value.kind === 'u128') { vcpu.setXmm(number - N.Xmm0, { low: value.low, high: value.high }); return; }
  if (number in SREG_U64) { vcpu.setSregs({ ...vcpu.getSregs(), [SREG_U64[number]]: v }); return; }
  if (value.kind === 'segment') { vcpu.setSregs({ ...vcpu.getSregs(), [SEGMENTS[number]]: kvmSegmentFromHv(value.segment) } as KvmSregs); return; }
  if (value.kind === 'table') { vcpu.setSregs({ ...vcpu.getSregs(), [TABLES[number]]: value.table }); return; }
  if (number in MSRS) { writePrivateMsrs(vcpu, { ...readPrivateMsrs(vcpu), [MSRS[number]]: v }); return; }
  if (number in DEBUG) {
    const d = readDebugRegs(vcpu), k = DEBUG[number];
    const db = [...d.db] as [bigint, bigint, bigint, bigint];
    if (k < 4) db[k] = v;
    writeDebugRegs(vcpu, { db, dr6: k === 6 ? v : d.dr6, dr7: k === 7 ? v : d.dr7 });
    return;
  }
  if (number === N.Cr2) { writeCr2(vcpu, v); return; }
  if (number === N.Xfem) { writeXcr0(vcpu, v); return; }
  if (number === N.Tsc) { vcpu.wrmsr(MSR_TSC, Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0); return; }
  if (number === N.PendingInterruption) { writePendingInterruption(vcpu, v); return; }
  if (number === N.InterruptState) { writeInterruptState(vcpu, v); return; }
}
