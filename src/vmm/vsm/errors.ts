/**
 * Errors of the VSM foundation modules: bad arguments from the VMM itself
 * (a programming error), never a guest's bad input. Guest input is answered
 * with an HV_STATUS code or an exception, as the TLFS says; these modules
 * return those codes instead of throwing.
 */
export class VsmError extends Error {
  override name = 'VsmError';
}

const U64_LIMIT = 1n << 64n;

/** `v` as a u64 bigint, or a VsmError naming `what`. */
export function u64(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v >= U64_LIMIT) throw new VsmError(`${what} must be a bigint in 0..2^64-1, got ${String(v)}`);
  return v;
}

/** `v` as an integer in 0..max, or a VsmError naming `what`. */
export function uint(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new VsmError(`${what} must be an integer in 0..${max}, got ${String(v)}`);
  return v;
}
