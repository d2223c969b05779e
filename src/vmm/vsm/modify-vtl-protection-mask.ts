/**
 * HvCallModifyVtlProtectionMask (0x000C, rep; tlfs-vsm-facts §2.18, §3.8)
 * as a pure check: which pages get which protection, or which status stops
 * the call and after how many reps. Applying the result (memory attributes
 * on the Vm of every VTL below the target, effectiveMask() when several VTLs
 * protect) is the VMM's.
 *
 * Checks, in this order:
 *
 * | Condition | Status |
 * |---|---|
 * | TargetPartitionId ≠ HV_PARTITION_ID_SELF | ACCESS_DENIED (openhcl) |
 * | RsvdZ bytes 13..15 ≠ 0 | INVALID_PARAMETER (our choice; the sheet names none) |
 * | HV_INPUT_VTL bad / above the maximum VTL / above the caller | INVALID_PARAMETER / INVALID_PARAMETER / ACCESS_DENIED (input-vtl.ts) |
 * | target VTL 0 (VTL0 protects nothing) | INVALID_PARAMETER |
 * | target VTL not enabled in the partition | INVALID_VTL_STATE |
 * | target VTL's VsmPartitionConfig.EnableVtlProtection = 0 | ACCESS_DENIED |
 * | MapFlags not a protection we can apply (for the target VTL's MBEC) | protection-mask.ts (INVALID_REGISTER_VALUE / INVALID_PARAMETER) |
 * | element i: GPA page not guest RAM | INVALID_PARAMETER, reps completed = i |
 */
import { HV_PAGE_SHIFT, HV_PARTITION_ID_SELF, HvModifyVtlProtectionMaskInput, HvStatus } from '../../spec/tlfs.js';
import { decodeInputVtl } from './input-vtl.js';
import { maskToAttributes, validateProtectionMask } from './protection-mask.js';
import { VsmError, uint } from './errors.js';

/** 2^64: u64 values are below it (a constant: BigInt arithmetic is not folded). */
const U64_LIMIT = 1n << 64n;

/** What the check needs to know about the partition and the caller. */
export interface ProtectionCallerView {
  readonly callerVtl: number;
  /** HvRegisterVsmPartitionStatus.MaximumVtl. */
  readonly maximumVtl: number;
  isVtlEnabled(vtl: number): boolean;
  /** VsmPartitionConfig.EnableVtlProtection of `vtl`. */
  isProtectionEnabled(vtl: number): boolean;
  /** `vtl` was enabled with EnableMbec: its masks may give UX without KX. */
  isMbecEnabled(vtl: number): boolean;
  isRam(gpa: number): boolean;
}

export interface ProtectionRequest {
  readonly targetVtl: number;
  readonly mask: number;
  /** kvm attributes (NR/NW/NX/XU) the mask stands for. */
  readonly attributes: number;
}

export type ProtectionHeaderResult = ({ readonly ok: true } & ProtectionRequest) | { readonly ok: false; readonly status: number };

/** Checks the 16-byte fixed header. */
export function checkProtectionHeader(header: Uint8Array, p: ProtectionCallerView): ProtectionHeaderResult {
  const I = HvModifyVtlProtectionMaskInput;
  if (!(header instanceof Uint8Array) || header.length < I.HeaderBytes) throw new VsmError(`the ModifyVtlProtectionMask header is ${I.HeaderBytes} bytes`);
  const dv = new DataView(header.buffer, header.byteOffset, I.HeaderBytes);
  if (dv.getBigUint64(I.PartitionId, true) !== HV_PARTITION_ID_SELF) return { ok: false, status: HvStatus.ACCESS_DENIED };
  if (header[I.Reserved] !== 0 || header[I.Reserved + 1] !== 0 || header[I.Reserved + 2] !== 0) return { ok: false, status: HvStatus.INVALID_PARAMETER };
  const target = decodeInputVtl(header[I.TargetVtl], p.callerVtl, p.maximumVtl);
  if (!target.ok) return target;
  if (target.vtl === 0) return { ok: false, status: HvStatus.INVALID_PARAMETER };
  if (!p.isVtlEnabled(target.vtl)) return { ok: false, status: HvStatus.INVALID_VTL_STATE };
  if (!p.isProtectionEnabled(target.vtl)) return { ok: false, status: HvStatus.ACCESS_DENIED };
  const mask = dv.getUint32(I.MapFlags, true);
  const status = validateProtectionMask(mask, p.isMbecEnabled(target.vtl));
  if (status !== HvStatus.SUCCESS) return { ok: false, status };
  return { ok: true, targetVtl: target.vtl, mask, attributes: maskToAttributes(mask) };
}

/** SUCCESS for a GPA page number that is guest RAM, else INVALID_PARAMETER (§3.8 "Non-RAM GPA"). */
export function checkProtectionPage(gpaPage: bigint, isRam: (gpa: number) => boolean): number {
  if (typeof gpaPage !== 'bigint' || gpaPage < 0n || gpaPage >= U64_LIMIT) throw new VsmError(`GPA page number ${String(gpaPage)} is not a u64`);
  const gpa = gpaPage << BigInt(HV_PAGE_SHIFT);
  if (gpa > BigInt(Number.MAX_SAFE_INTEGER)) return HvStatus.INVALID_PARAMETER;
  return isRam(Number(gpa)) ? HvStatus.SUCCESS : HvStatus.INVALID_PARAMETER;
}

/** The outcome of one execution: the pages to protect (in order) and the status / reps completed (absolute, §1.2). */
export interface ProtectionPlan {
  readonly status: number;
  readonly repsCompleted: number;
  /** Null when the header was refused. */
  readonly request: ProtectionRequest | null;
  /** GFNs of the reps that succeeded, as numbers. */
  readonly pages: readonly number[];
}

/**
 * Plans reps [repStart, repStart + elements.length) of one execution.
 * A header failure completes no rep beyond repStart; a bad element i stops
 * with reps completed = its index; elements before it still apply.
 */
export function planProtection(header: Uint8Array, elements: readonly bigint[], repStart: number, p: ProtectionCallerView): ProtectionPlan {
  uint(repStart, 0xfff, 'rep start');
  const h = checkProtectionHeader(header, p);
  if (!h.ok) return { status: h.status, repsCompleted: repStart, request: null, pages: [] };
  const request: ProtectionRequest = { targetVtl: h.targetVtl, mask: h.mask, attributes: h.attributes };
  const pages: number[] = [];
  for (const [k, page] of elements.entries()) {
    const status = checkProtectionPage(page, (gpa) => p.isRam(gpa));
    if (status !== HvStatus.SUCCESS) return { status, repsCompleted: repStart + k, request, pages };
    pages.push(Number(page));
  }
  return { status: HvStatus.SUCCESS, repsCompleted: repStart + elements.length, request, pages };
}
