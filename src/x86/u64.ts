/** A u64 from the int32 (or uint32) halves the CPU keeps 64-bit values in (DESIGN §3.1): for API edges, not hot paths. */
export function u64FromHalves(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
