/**
 * The hypercall input value (control word in RCX, fact sheet §1.1), its
 * validation against the call's class (§1.1 "Control-word validation"), and the
 * result value written to RAX (§1.2). Pure functions: the dispatcher that reads
 * parameters and runs handlers builds on these.
 */
import {
  HV_CALL_CLASS,
  HV_HYPERCALL_CODE_MASK,
  HV_HYPERCALL_FAST_BIT,
  HV_HYPERCALL_NESTED_BIT,
  HV_HYPERCALL_REP_COUNT_SHIFT,
  HV_HYPERCALL_REP_MASK,
  HV_HYPERCALL_REP_START_SHIFT,
  HV_HYPERCALL_RSVDZ_MASK,
  HV_HYPERCALL_VARHEAD_MASK,
  HV_HYPERCALL_VARHEAD_SHIFT,
  HV_RESULT_REPS_COMPLETED_SHIFT,
  HvStatus,
  type HvCallClass,
} from '../../spec/tlfs.js';

const U64_MAX = (1n << 64n) - 1n;

export interface HypercallControl {
  /** Call code, bits 15:0. */
  readonly code: number;
  /** Bit 16: register-based (fast) calling convention. */
  readonly fast: boolean;
  /** Bits 26:17: size of the variable header in qwords. */
  readonly varHeaderQwords: number;
  /** Bit 31: route to the L0 hypervisor when nested. */
  readonly nested: boolean;
  /** Bits 43:32. */
  readonly repCount: number;
  /** Bits 59:48. */
  readonly repStart: number;
  /** Whether any RsvdZ bit (30:27, 47:44, 63:60) is set. */
  readonly reservedBitsSet: boolean;
}

function checkU64(value: bigint, what: string): void {
  if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) {
    throw new RangeError(`${what} must be a 64-bit unsigned bigint, got ${String(value)}`);
  }
}

/** Splits RCX into its fields. Reserved bits are reported, not rejected: see validateHypercallControl. */
export function parseHypercallControl(rcx: bigint): HypercallControl {
  checkU64(rcx, 'hypercall input value');
  return parseHypercallControlParts(Number(rcx & 0xffffffffn) | 0, Number(rcx >> 32n) | 0);
}

/** RsvdZ bits of the control word's low and high halves (HV_HYPERCALL_RSVDZ_MASK). */
const RSVDZ_LO = Number(HV_HYPERCALL_RSVDZ_MASK & 0xffffffffn) | 0, RSVDZ_HI = Number(HV_HYPERCALL_RSVDZ_MASK >> 32n) | 0;

/** parseHypercallControl of the word hi:lo (int32 halves, as the CPU's registers hold them). */
export function parseHypercallControlParts(lo: number, hi: number): HypercallControl {
  return {
    code: lo & HV_HYPERCALL_CODE_MASK,
    fast: ((lo >>> HV_HYPERCALL_FAST_BIT) & 1) === 1,
    varHeaderQwords: (lo >>> HV_HYPERCALL_VARHEAD_SHIFT) & HV_HYPERCALL_VARHEAD_MASK,
    nested: ((lo >>> HV_HYPERCALL_NESTED_BIT) & 1) === 1,
    repCount: (hi >>> (HV_HYPERCALL_REP_COUNT_SHIFT - 32)) & HV_HYPERCALL_REP_MASK,
    repStart: (hi >>> (HV_HYPERCALL_REP_START_SHIFT - 32)) & HV_HYPERCALL_REP_MASK,
    reservedBitsSet: (lo & RSVDZ_LO) !== 0 || (hi & RSVDZ_HI) !== 0,
  };
}

/** Builds a control word (tests, and a guest-side helper for host programs). */
export function makeHypercallControl(c: {
  code: number; fast?: boolean; varHeaderQwords?: number; nested?: boolean; repCount?: number; repStart?: number;
}): bigint {
  const field = (v: number, max: number, name: string): bigint => {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} ${v} does not fit its field (0..${max})`);
    return BigInt(v);
  };
  return field(c.code, HV_HYPERCALL_CODE_MASK, 'call code')
    | (c.fast ? 1n << BigInt(HV_HYPERCALL_FAST_BIT) : 0n)
    | (field(c.varHeaderQwords ?? 0, HV_HYPERCALL_VARHEAD_MASK, 'variable header size') << BigInt(HV_HYPERCALL_VARHEAD_SHIFT))
    | (c.nested ? 1n << BigInt(HV_HYPERCALL_NESTED_BIT) : 0n)
    | (field(c.repCount ?? 0, HV_HYPERCALL_REP_MASK, 'rep count') << BigInt(HV_HYPERCALL_REP_COUNT_SHIFT))
    | (field(c.repStart ?? 0, HV_HYPERCALL_REP_MASK, 'rep start index') << BigInt(HV_HYPERCALL_REP_START_SHIFT));
}

/** The class of a call code, or undefined for a code this hypervisor does not know. */
export function hypercallClass(code: number): HvCallClass | undefined {
  return HV_CALL_CLASS.get(code);
}

/**
 * The generic control-word checks, in the fact sheet's order: unknown code ⇒
 * INVALID_HYPERCALL_CODE; a RsvdZ bit, rep fields on a simple call, a rep call
 * with count 0 or start ≥ count, or a variable header on a call without one ⇒
 * INVALID_HYPERCALL_INPUT. Returns SUCCESS when the word is well formed.
 * (VtlCall/VtlReturn have stricter rules, §3.4, checked by their handler.)
 */
export function validateHypercallControl(control: HypercallControl): number {
  const cls = hypercallClass(control.code);
  if (cls === undefined) return HvStatus.INVALID_HYPERCALL_CODE;
  if (control.reservedBitsSet) return HvStatus.INVALID_HYPERCALL_INPUT;
  if (cls.rep) {
    if (control.repCount === 0 || control.repStart >= control.repCount) return HvStatus.INVALID_HYPERCALL_INPUT;
  } else if (control.repCount !== 0 || control.repStart !== 0) {
    return HvStatus.INVALID_HYPERCALL_INPUT;
  }
  if (!cls.variableHeader && control.varHeaderQwords !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
  return HvStatus.SUCCESS;
}

/** The result value for RAX: status in bits 15:0, reps completed (absolute index) in bits 43:32. */
export function hypercallResult(status: number, repsCompleted = 0): bigint {
  if (!Number.isInteger(status) || status < 0 || status > 0xffff) throw new RangeError(`HV_STATUS ${status} is not 16-bit`);
  if (!Number.isInteger(repsCompleted) || repsCompleted < 0 || repsCompleted > HV_HYPERCALL_REP_MASK) {
    throw new RangeError(`reps completed ${repsCompleted} is not in 0..${HV_HYPERCALL_REP_MASK}`);
  }
  return BigInt(status) | (BigInt(repsCompleted) << BigInt(HV_RESULT_REPS_COMPLETED_SHIFT));
}

/** Reads a result value as a guest does: status and reps completed (other bits ignored). */
export function parseHypercallResult(rax: bigint): { status: number; repsCompleted: number } {
  checkU64(rax, 'hypercall result value');
  return {
    status: Number(rax & 0xffffn),
    repsCompleted: Number((rax >> BigInt(HV_RESULT_REPS_COMPLETED_SHIFT)) & BigInt(HV_HYPERCALL_REP_MASK)),
  };
}

/**
 * Continuation (§1.2): the control word the guest re-executes with, the rep
 * start index replaced by the reps completed so far (RIP is not advanced).
 */
export function withRepStart(rcx: bigint, repStart: number): bigint {
  checkU64(rcx, 'hypercall input value');
  if (!Number.isInteger(repStart) || repStart < 0 || repStart > HV_HYPERCALL_REP_MASK) {
    throw new RangeError(`rep start index ${repStart} is not in 0..${HV_HYPERCALL_REP_MASK}`);
  }
  const shift = BigInt(HV_HYPERCALL_REP_START_SHIFT);
  return (rcx & ~(BigInt(HV_HYPERCALL_REP_MASK) << shift)) | (BigInt(repStart) << shift);
}

const STATUS_NAMES = new Map<number, string>(Object.entries(HvStatus).map(([k, v]) => [v, `HV_STATUS_${k}`]));

/** HV_STATUS_* name of a status code (traces, errors), or a hex number for unknown codes. */
export function hvStatusName(status: number): string {
  return STATUS_NAMES.get(status) ?? `HV_STATUS_0x${status.toString(16).padStart(4, '0')}`;
}
