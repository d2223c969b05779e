/**
 * Register-access exits (our extension, src/kvm/README.md "Register-access
 * exits"): the VMM names control-register writes and MSR accesses it wants
 * to see before they happen, per vCPU; a matching guest instruction does not
 * execute and run() returns a 'register-access' exit instead.
 *
 * Upstream KVM has half of this: KVM_X86_SET_MSR_FILTER with
 * KVM_CAP_X86_USER_SPACE_MSR sends filtered RDMSR/WRMSR to userspace
 * (KVM_EXIT_X86_RDMSR 29 / WRMSR 30), per VM, and completes them at the next
 * KVM_RUN (the data or a #GP, then RIP past the instruction). It has no exit
 * for CR writes. The VSM RFC made secure intercepts in KVM itself, which was
 * dropped (kvm-api-facts §3.4); a VMM that implements VSM's CR/MSR
 * intercepts (TLFS CrInterceptControl) needs both kinds, per vCPU, and the
 * instruction left undone until the higher VTL decides. So this exit carries
 * no completion: RIP stays on the instruction and the next run() executes it
 * again (and exits again while it still matches). A VMM that emulates it
 * sets the register (KVM_SET_SREGS / SET_MSRS / SET_XCRS) and RIP itself.
 *
 * What exits: a MOV to CR0, LMSW or CLTS that changes a bit of `cr0Mask`; a
 * MOV to CR4 that changes a bit of `cr4Mask`; XSETBV of XCR0 when `xcr0`; an
 * RDMSR of an MSR in `msrRead`, a WRMSR of one in `msrWrite`, a WRMSR of one
 * in `msrWriteMasks` that changes a bit of its mask (against the MSR's value
 * before the write, as KVM_GET_MSRS reads it; an MSR in both lists exits on
 * every write); LGDT, LIDT, LLDT, LTR when `gdtr`, `idtr`, `ldtr`, `tr`. The check comes after the
 * instruction's #UD and privilege checks and its memory operand's read, and
 * before its value checks (x86/host.ts RegisterAccessInfo).
 */
import type { Cpu } from '../x86/cpu.js';
import { WATCH_GDTR, WATCH_IDTR, WATCH_LDTR, WATCH_TR } from '../x86/host.js';
import { KvmError } from './errors.js';

export interface KvmRegisterAccessExits {
  /** CR0 bits whose change exits (bits 31:0; CR0's bits 63:32 are reserved). 0n: none. */
  readonly cr0Mask: bigint;
  /** CR4 bits whose change exits (bits 31:0). 0n: none. */
  readonly cr4Mask: bigint;
  /** XSETBV of XCR0 exits. */
  readonly xcr0: boolean;
  /** MSR numbers whose RDMSR exits. */
  readonly msrRead: readonly number[];
  /** MSR numbers whose WRMSR exits. */
  readonly msrWrite: readonly number[];
  /** MSRs whose WRMSR exits only when it changes a bit of `mask` (a u64 bigint). */
  readonly msrWriteMasks: readonly KvmMsrWriteMask[];
  /** LGDT, LIDT, LLDT, LTR exit. */
  readonly gdtr: boolean;
  readonly idtr: boolean;
  readonly ldtr: boolean;
  readonly tr: boolean;
}

export interface KvmMsrWriteMask { readonly msr: number; readonly mask: bigint }

/** At most this many MSRs per list (KVM's filter has 16 ranges of bitmaps; a list is plenty for the VMM's uses). */
export const KVM_REGISTER_ACCESS_MAX_MSRS = 256;

export const NO_REGISTER_ACCESS_EXITS: KvmRegisterAccessExits = Object.freeze({
  cr0Mask: 0n, cr4Mask: 0n, xcr0: false, msrRead: [], msrWrite: [], msrWriteMasks: [], gdtr: false, idtr: false, ldtr: false, tr: false,
});

function flag(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new KvmError('EINVAL', `${what} must be true or false, got ${String(v)}`);
  return v;
}

function mask32(v: unknown, what: string): number {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffffn) throw new KvmError('EINVAL', `${what} must be a bigint in 0..0xFFFFFFFF (bits 63:32 are reserved), got ${String(v)}`);
  return Number(v) | 0;
}

function msrSet(list: unknown, what: string): ReadonlySet<number> | null {
  if (!Array.isArray(list)) throw new KvmError('EINVAL', `${what} is not an array of MSR numbers`);
  if (list.length > KVM_REGISTER_ACCESS_MAX_MSRS) throw new KvmError('E2BIG', `${what} names ${list.length} MSRs (at most ${KVM_REGISTER_ACCESS_MAX_MSRS})`);
  for (const m of list) {
    if (!Number.isInteger(m) || m < 0 || m > 0xffff_ffff) throw new KvmError('EINVAL', `${what}: ${String(m)} is not an MSR number`);
  }
  return list.length === 0 ? null : new Set(list as number[]);
}

/** The MSR → mask map of `msrWriteMasks` (EINVAL for a bad entry or an MSR listed twice; E2BIG past the limit), or null when empty. */
function maskMap(list: unknown): Map<number, bigint> | null {
  if (!Array.isArray(list)) throw new KvmError('EINVAL', 'msrWriteMasks is not an array of { msr, mask }');
  if (list.length > KVM_REGISTER_ACCESS_MAX_MSRS) throw new KvmError('E2BIG', `msrWriteMasks names ${list.length} MSRs (at most ${KVM_REGISTER_ACCESS_MAX_MSRS})`);
  const out = new Map<number, bigint>();
  for (const e of list as unknown[]) {
    const { msr, mask } = (typeof e === 'object' && e !== null ? e : {}) as { msr?: unknown; mask?: unknown };
    if (!Number.isInteger(msr) || (msr as number) < 0 || (msr as number) > 0xffff_ffff) throw new KvmError('EINVAL', `msrWriteMasks: ${String(msr)} is not an MSR number`);
    if (typeof mask !== 'bigint' || mask < 0n || mask >= 1n << 64n) throw new KvmError('EINVAL', `msrWriteMasks: the mask of MSR 0x${(msr as number).toString(16)} is not a u64 bigint`);
    if (out.has(msr as number)) throw new KvmError('EINVAL', `msrWriteMasks names MSR 0x${(msr as number).toString(16)} twice`);
    out.set(msr as number, mask);
  }
  return out.size === 0 ? null : out;
}

/**
 * Checks `cfg` (EINVAL / E2BIG, nothing changed) and arms the CPU's watches;
 * returns the write masks of the MSRs that exit only on a masked change
 * (the caller, the Vcpu, applies them when the CPU reports such a write).
 */
export function setRegisterAccessExits(cpu: Cpu, cfg: KvmRegisterAccessExits): ReadonlyMap<number, bigint> | null {
  if (typeof cfg !== 'object' || cfg === null) throw new KvmError('EFAULT', 'the register-access exits are not an object');
  const cr0 = mask32(cfg.cr0Mask, 'cr0Mask'), cr4 = mask32(cfg.cr4Mask, 'cr4Mask');
  const xcr0 = flag(cfg.xcr0, 'xcr0');
  const tables = (flag(cfg.gdtr, 'gdtr') ? WATCH_GDTR : 0) | (flag(cfg.idtr, 'idtr') ? WATCH_IDTR : 0)
    | (flag(cfg.ldtr, 'ldtr') ? WATCH_LDTR : 0) | (flag(cfg.tr, 'tr') ? WATCH_TR : 0);
  const read = msrSet(cfg.msrRead, 'msrRead'), write = msrSet(cfg.msrWrite, 'msrWrite'), masks = maskMap(cfg.msrWriteMasks);
  for (const m of write ?? []) masks?.delete(m); // listed in both: every write exits
  cpu.cr0WriteWatch = cr0; cpu.cr4WriteWatch = cr4; cpu.xcr0WriteWatch = xcr0;
  cpu.msrReadWatch = read; cpu.tableWriteWatch = tables;
  cpu.msrWriteWatch = masks === null || masks.size === 0 ? write : new Set([...(write ?? []), ...masks.keys()]);
  return masks === null || masks.size === 0 ? null : masks;
}

/** What is armed now (`masks`: what setRegisterAccessExits returned). */
export function getRegisterAccessExits(cpu: Cpu, masks: ReadonlyMap<number, bigint> | null): KvmRegisterAccessExits {
  return {
    cr0Mask: BigInt(cpu.cr0WriteWatch >>> 0), cr4Mask: BigInt(cpu.cr4WriteWatch >>> 0), xcr0: cpu.xcr0WriteWatch,
    msrRead: [...(cpu.msrReadWatch ?? [])], msrWrite: [...(cpu.msrWriteWatch ?? [])].filter((m) => !masks?.has(m)),
    msrWriteMasks: [...(masks ?? [])].map(([msr, mask]) => ({ msr, mask })),
    gdtr: (cpu.tableWriteWatch & WATCH_GDTR) !== 0, idtr: (cpu.tableWriteWatch & WATCH_IDTR) !== 0,
    ldtr: (cpu.tableWriteWatch & WATCH_LDTR) !== 0, tr: (cpu.tableWriteWatch & WATCH_TR) !== 0,
  };
}
