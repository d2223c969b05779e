/**
 * Wide multiplication on int32 halves, without BigInt (DESIGN §3.1): 32 x 32 ->
 * 64 and 64 x 64 -> 128 bits, signed or unsigned. Results go to the scratch
 * words W (low word first), read them before the next call.
 */
export const W = new Int32Array(4);

/** Unsigned 32 x 32 -> 64 (a, b taken as uint32): W[0] low, W[1] high. */
export function mul32x32(a: number, b: number): void {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  W[0] = (mid << 16) | (ll & 0xffff);
  W[1] = hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16);
}

/** Low 64 bits of a 64 x 64 product (the same signed or unsigned): W[0], W[1]. */
export function mul64lo(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mul32x32(aLo, bLo);
  W[1] = W[1] + Math.imul(aLo, bHi) + Math.imul(aHi, bLo);
}

/** Full 128-bit product of two 64-bit values into W[0..3]. */
export function mul64x64(aLo: number, aHi: number, bLo: number, bHi: number, signed: boolean): void {
  mul32x32(aLo, bLo); const p0 = W[0], p0h = W[1] >>> 0;
  mul32x32(aLo, bHi); const p1 = W[0] >>> 0, p1h = W[1] >>> 0;
  mul32x32(aHi, bLo); const p2 = W[0] >>> 0, p2h = W[1] >>> 0;
  mul32x32(aHi, bHi); const p3 = W[0] >>> 0, p3h = W[1] >>> 0;
  const t1 = p0h + p1 + p2;
  const t2 = p1h + p2h + p3 + Math.floor(t1 / 4294967296);
  let w2 = t2 >>> 0, w3 = (p3h + Math.floor(t2 / 4294967296)) >>> 0;
  if (signed) {
    // signed high half = unsigned high half - (a < 0 ? b : 0) - (b < 0 ? a : 0), modulo 2^64
    if (aHi < 0) { const s = w2 - (bLo >>> 0); w2 = s >>> 0; w3 = (w3 - (bHi >>> 0) - (s < 0 ? 1 : 0)) >>> 0; }
    if (bHi < 0) { const s = w2 - (aLo >>> 0); w2 = s >>> 0; w3 = (w3 - (aHi >>> 0) - (s < 0 ? 1 : 0)) >>> 0; }
  }
  W[0] = p0; W[1] = t1; W[2] = w2; W[3] = w3;
}

/** Whether the signed 128-bit product in W fits in 64 bits (its high half is the sign extension). */
export function productFits64(): boolean {
  const ext = W[1] < 0 ? -1 : 0;
  return W[2] === ext && W[3] === ext;
}

/** Whether a signed 32 x 32 product fits in 32 bits. */
export function imul32Fits(a: number, b: number): boolean {
  mul64x64(a, a >> 31, b, b >> 31, true);
  return W[1] === (W[0] >> 31);
}
