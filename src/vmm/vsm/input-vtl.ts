/**
 * HV_INPUT_VTL (tlfs-vsm-facts §2.11): the one-byte target-VTL selector of
 * the VSM hypercalls. Decoding is where most of them start, in this order
 * (hvdef's TryFrom, then openhcl's target_vtl_no_higher):
 *
 * | Condition | Status |
 * |---|---|
 * | RsvdZ bits 7:5 set | INVALID_PARAMETER |
 * | UseTargetVtl = 0 | the caller's own VTL |
 * | TargetVtl above the partition's maximum VTL (not implemented) | INVALID_PARAMETER |
 * | TargetVtl above the caller's VTL | ACCESS_DENIED |
 */
import { HV_INPUT_VTL_RESERVED, HV_INPUT_VTL_TARGET_MASK, HV_INPUT_VTL_USE_TARGET, HvStatus } from '../../spec/tlfs.js';
import { uint } from './errors.js';

/** A decoded target VTL, or the status that refuses the byte. */
export type InputVtlResult = { readonly ok: true; readonly vtl: number } | { readonly ok: false; readonly status: number };

export function decodeInputVtl(byte: number, callerVtl: number, maximumVtl: number): InputVtlResult {
  uint(byte, 0xff, 'HV_INPUT_VTL');
  uint(callerVtl, 15, 'caller VTL');
  uint(maximumVtl, 15, 'maximum VTL');
  if (byte & HV_INPUT_VTL_RESERVED) return { ok: false, status: HvStatus.INVALID_PARAMETER };
  if ((byte & HV_INPUT_VTL_USE_TARGET) === 0) return { ok: true, vtl: callerVtl };
  const vtl = byte & HV_INPUT_VTL_TARGET_MASK;
  if (vtl > maximumVtl) return { ok: false, status: HvStatus.INVALID_PARAMETER };
  if (vtl > callerVtl) return { ok: false, status: HvStatus.ACCESS_DENIED };
  return { ok: true, vtl };
}

/** The byte that names `vtl` explicitly. */
export function encodeInputVtl(vtl: number): number {
  return HV_INPUT_VTL_USE_TARGET | uint(vtl, 15, 'VTL');
}
