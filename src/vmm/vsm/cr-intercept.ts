/**
 * Secure intercepts of control-register and MSR accesses (tlfs-vsm-facts
 * §3.7 HvX64RegisterCrInterceptControl and its mask registers, §3.10, §4.6),
 * on kvm's register-access exits (src/kvm/register-access-exits.ts).
 *
 * Each higher VTL H of a VP has its own CrInterceptControl, Cr0Mask, Cr4Mask
 * and Ia32MiscEnableMask (written by H for itself; VTL0 has none). A set bit
 * intercepts that access by every VTL below H on the same VP:
 * - CR0 write (bit 0) / CR4 write (bit 1): a MOV to CR0 (or LMSW, CLTS) / CR4
 *   that changes a bit of H's Cr0Mask / Cr4Mask ("mask registers restrict the
 *   intercept to writes that change masked bits"; a mask of 0, the reset
 *   value, intercepts nothing);
 * - XCR0 write (bit 2): XSETBV of XCR0;
 * - IA32_MISC_ENABLE read (bit 3) / write (bit 4): RDMSR of it / a WRMSR that
 *   changes a bit of H's Ia32MiscEnableMask (kvm's misc-enable.ts has the MSR);
 * - MSR reads and writes (bits 5-14, 19-23): RDMSR / WRMSR of LSTAR, STAR,
 *   CSTAR, APIC_BASE, EFER, SYSENTER_CS/EIP/ESP, SFMASK, TSC_AUX;
 * - GDTR / IDTR / LDTR / TR writes (bits 15-18): LGDT, LIDT, LLDT, LTR.
 * Bits we do not offer are refused with INVALID_REGISTER_VALUE (the sheet
 * names no status; nothing changes): the SGX/XSS/CET/shadow-stack MSRs (not
 * on this CPU), RsvdZ 63:29.
 *
 * kvm is told the union of what the VTLs above each lower VTL watch; on an
 * exit, the lowest VTL above the accessing one that claims the access is
 * notified (§3.10 "nested intercepts"): a RegisterIntercept message
 * (register Cr0, Cr4, Xfem, Gdtr, Idtr, Ldtr or Tr; IsMemoryOp when the
 * source operand was in memory; AccessInfo = the value written: the u64
 * for CR0/CR4/XCR0, an HV_X64_TABLE_REGISTER (limit at byte 6, base at 8)
 * for GDTR/IDTR, the selector for LDTR/TR, the rest 0) or an MsrIntercept
 * message (MSR number, RDX, RAX) with the §4.4 header (access
 * type read or write, RIP of the instruction), delivered like a GPA
 * intercept (memory-intercept.ts deliverIntercept), and the VP enters H with
 * entry reason 3. The instruction is not retired: after VtlReturn it runs
 * again and is intercepted again, unless H skipped it (SetVpRegisters of
 * the lower VTL's RIP, after emulating it or not) or stopped intercepting.
 */
import type { VcpuExit } from '../../kvm/exits.js';
import { MSR_IA32_MISC_ENABLE } from '../../kvm/misc-enable.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import { HvCrInterceptBit as B, HvInterceptAccessType, HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../spec/tlfs.js';
import {
  MSR_APIC_BASE, MSR_CSTAR, MSR_EFER, MSR_FMASK, MSR_LSTAR, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, MSR_TSC_AUX,
} from '../../x86/regs.js';
import { interceptHeaderContext } from './intercept-context.js';
import { msrInterceptMessage, registerInterceptMessage } from './intercept-message.js';
import { deliverIntercept, VSM_PARTITION_ID } from './memory-intercept.js';
import type { VsmPartition, VsmVp } from './partition.js';
import { enterHigherVtl } from './vtl-switch.js';

export type RegisterAccessExit = Extract<VcpuExit, { reason: 'register-access' }>;

/** One higher VTL's intercept registers on one VP. */
export interface CrInterceptRegisters { control: bigint; cr0Mask: bigint; cr4Mask: bigint; miscEnableMask: bigint }

/**
 * The MSRs CrInterceptControl covers and their bits (a read bit only for
 * those the sheet lists reads of); `mask`: the mask register a write must
 * change a bit of to be intercepted.
 */
const MSR_BITS: readonly { readonly msr: number; readonly read?: number; readonly write: number; readonly mask?: 'miscEnableMask' }[] = [
  { msr: MSR_IA32_MISC_ENABLE, read: B.MiscEnableRead, write: B.MiscEnableWrite, mask: 'miscEnableMask' },
  { msr: MSR_LSTAR, read: B.LstarRead, write: B.LstarWrite },
  { msr: MSR_STAR, read: B.StarRead, write: B.StarWrite },
  { msr: MSR_CSTAR, read: B.CstarRead, write: B.CstarWrite },
  { msr: MSR_APIC_BASE, read: B.ApicBaseRead, write: B.ApicBaseWrite },
  { msr: MSR_EFER, read: B.EferRead, write: B.EferWrite },
  { msr: MSR_SYSENTER_CS, write: B.SysenterCsWrite },
  { msr: MSR_SYSENTER_EIP, write: B.SysenterEipWrite },
  { msr: MSR_SYSENTER_ESP, write: B.SysenterEspWrite },
  { msr: MSR_FMASK, write: B.SfmaskWrite },
  { msr: MSR_TSC_AUX, write: B.TscAuxWrite },
];

const bit = (n: number): bigint => 1n << BigInt(n);
const has = (control: bigint, n: number | undefined): boolean => n !== undefined && (control & bit(n)) !== 0n;

/** The CrInterceptControl bits this VMM intercepts; any other bit is refused. */
export const CR_INTERCEPT_SUPPORTED: bigint = MSR_BITS.reduce(
  (m, e) => m | bit(e.write) | (e.read === undefined ? 0n : bit(e.read)),
  bit(B.Cr0Write) | bit(B.Cr4Write) | bit(B.Xcr0Write) | bit(B.GdtrWrite) | bit(B.IdtrWrite) | bit(B.LdtrWrite) | bit(B.TrWrite),
);

const NONE: CrInterceptRegisters = Object.freeze({ control: 0n, cr0Mask: 0n, cr4Mask: 0n, miscEnableMask: 0n });
const FIELDS: Readonly<Record<number, keyof CrInterceptRegisters>> = {
  [N.CrInterceptControl]: 'control', [N.CrInterceptCr0Mask]: 'cr0Mask', [N.CrInterceptCr4Mask]: 'cr4Mask', [N.CrInterceptIa32MiscEnableMask]: 'miscEnableMask',
};

/** VTL `vtl`'s intercept register `name` on `vp`, or undefined if `name` is not one. */
export function readCrInterceptRegister(vp: VsmVp, vtl: number, name: number): bigint | undefined {
  const f = FIELDS[name];
  return f === undefined ? undefined : (vp.crIntercepts[vtl] ?? NONE)[f];
}

/**
 * Writes VTL `vtl`'s intercept register `name` on `vp` (the access check is
 * done): SUCCESS, or INVALID_REGISTER_VALUE with nothing changed; undefined
 * if `name` is not one. The lower VTLs' exits follow at once.
 */
export function writeCrInterceptRegister(vp: VsmVp, vtl: number, name: number, value: bigint): number | undefined {
  const f = FIELDS[name];
  if (f === undefined) return undefined;
  if (f === 'control' && (value & ~CR_INTERCEPT_SUPPORTED) !== 0n) return HvStatus.INVALID_REGISTER_VALUE;
  vp.crIntercepts[vtl] = { ...(vp.crIntercepts[vtl] ?? NONE), [f]: value };
  applyRegisterAccessExits(vp);
  return HvStatus.SUCCESS;
}

/** The intercept registers of the enabled VTLs above `lower` on `vp`, lowest first. */
function above(vp: VsmVp, lower: number): { vtl: number; regs: CrInterceptRegisters }[] {
  const out: { vtl: number; regs: CrInterceptRegisters }[] = [];
  for (let h = lower + 1; h < vp.vcpus.length; h++) {
    const regs = vp.crIntercepts[h];
    if (regs !== undefined && vp.isEnabled(h)) out.push({ vtl: h, regs });
  }
  return out;
}

/** Tells kvm, for every VTL of `vp`, the union of what the VTLs above it intercept. */
export function applyRegisterAccessExits(vp: VsmVp): void {
  vp.vcpus.forEach((v, lower) => {
    if (v === undefined) return;
    let cr0Mask = 0n, cr4Mask = 0n, xcr0 = false, gdtr = false, idtr = false, ldtr = false, tr = false;
    const msrRead = new Set<number>(), msrWrite = new Set<number>(), msrWriteMasks = new Map<number, bigint>();
    for (const { regs: r } of above(vp, lower)) {
      // CR0 and CR4 bits 63:32 are reserved (a write setting one is a #GP): kvm watches bits 31:0.
      if (has(r.control, B.Cr0Write)) cr0Mask |= r.cr0Mask & 0xffff_ffffn;
      if (has(r.control, B.Cr4Write)) cr4Mask |= r.cr4Mask & 0xffff_ffffn;
      if (has(r.control, B.Xcr0Write)) xcr0 = true;
      if (has(r.control, B.GdtrWrite)) gdtr = true;
      if (has(r.control, B.IdtrWrite)) idtr = true;
      if (has(r.control, B.LdtrWrite)) ldtr = true;
      if (has(r.control, B.TrWrite)) tr = true;
      for (const e of MSR_BITS) {
        if (has(r.control, e.read)) msrRead.add(e.msr);
        if (!has(r.control, e.write)) continue;
        if (e.mask === undefined) msrWrite.add(e.msr);
        else msrWriteMasks.set(e.msr, (msrWriteMasks.get(e.msr) ?? 0n) | r[e.mask]);
      }
    }
    v.setRegisterAccessExits({
      cr0Mask, cr4Mask, xcr0, msrRead: [...msrRead], msrWrite: [...msrWrite],
      msrWriteMasks: [...msrWriteMasks].map(([msr, mask]) => ({ msr, mask })), gdtr, idtr, ldtr, tr,
    });
  });
}

/** Whether `r` intercepts the access of `exit` (`oldValue`: the CR0, CR4 or masked MSR being written over). */
function claims(r: CrInterceptRegisters, exit: RegisterAccessExit, oldValue: bigint): boolean {
  switch (exit.register) {
    case 'cr0': return has(r.control, B.Cr0Write) && ((oldValue ^ exit.value) & r.cr0Mask) !== 0n;
    case 'cr4': return has(r.control, B.Cr4Write) && ((oldValue ^ exit.value) & r.cr4Mask) !== 0n;
    case 'xcr0': return has(r.control, B.Xcr0Write);
    case 'gdtr': return has(r.control, B.GdtrWrite);
    case 'idtr': return has(r.control, B.IdtrWrite);
    case 'ldtr': return has(r.control, B.LdtrWrite);
    case 'tr': return has(r.control, B.TrWrite);
    case 'msr': {
      const e = MSR_BITS.find((m) => m.msr === exit.msr);
      if (e === undefined || !has(r.control, exit.write ? e.write : e.read)) return false;
      return !exit.write || e.mask === undefined || ((oldValue ^ exit.value) & r[e.mask]) !== 0n;
    }
  }
}

/** What became of a register-access exit. */
export type RegisterAccessOutcome =
  | { readonly kind: 'not-vsm' }
  | { readonly kind: 'intercepted'; readonly vtl: number; readonly offer: string };

const REGISTER_NAMES = { cr0: N.Cr0, cr4: N.Cr4, xcr0: N.Xfem, gdtr: N.Gdtr, idtr: N.Idtr, ldtr: N.Ldtr, tr: N.Tr } as const;

/** RegisterIntercept's AccessInfo (two u64s) for a write of `exit`'s value (see the file comment). */
function accessInfo(exit: RegisterAccessExit): readonly [bigint, bigint] {
  return exit.register === 'gdtr' || exit.register === 'idtr' ? [BigInt(exit.limit) << 48n, exit.value] : [exit.value, 0n];
}

/** Turns a register-access exit of a lower VTL's Vcpu into a secure intercept (see the file comment). */
export function handleRegisterAccess(p: VsmPartition, vcpu: Vcpu, exit: RegisterAccessExit): RegisterAccessOutcome {
  const where = p.locate(vcpu);
  if (where === undefined) return { kind: 'not-vsm' };
  const vp = where.vp, s = vcpu.getSregs();
  const masked = exit.register === 'msr' && exit.write && MSR_BITS.find((m) => m.msr === exit.msr)?.mask !== undefined;
  const old = exit.register === 'cr0' ? s.cr0 : exit.register === 'cr4' ? s.cr4 : masked ? vcpu.getMsrs([exit.msr])[0]!.data : 0n;
  const target = vp.lowestAbove(where.vtl, (h) => { const regs = vp.crIntercepts[h]; return regs !== undefined && claims(regs, exit, old); });
  if (target < 0) return { kind: 'not-vsm' };
  const higher = vp.vcpus[target]!;
  const accessType = exit.write ? HvInterceptAccessType.Write : HvInterceptAccessType.Read;
  const { header, regs } = interceptHeaderContext(vcpu, { vpIndex: vp.index, vtl: where.vtl, accessType, instructionLength: exit.insnLen });
  const msg = exit.register === 'msr'
    ? msrInterceptMessage(header, exit.msr, regs.rdx, regs.rax, VSM_PARTITION_ID)
    : registerInterceptMessage(header, REGISTER_NAMES[exit.register], accessInfo(exit), exit.memoryOperand, VSM_PARTITION_ID);
  const offer = deliverIntercept(p, higher, target, msg);
  vcpu.vm.trace?.emit('vsm_register_intercept', vcpu.id, vcpu.nowNs(), {
    vp: vp.index, from: where.vtl, to: target, register: exit.register, msr: exit.msr.toString(16), write: exit.write, rip: header.rip.toString(16), offer,
  });
  enterHigherVtl(p, vp, target, HvVtlEntryReason.Intercept);
  return { kind: 'intercepted', vtl: target, offer };
}
