/**
 * Seeded PRNG for the differential test (sfc32: small, fast, 32-bit integer
 * only) and the operand-value distributions used by the case generators.
 */

/** FNV-1a of a string: mixes a form's id into the run seed so each form has its own stream. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const MASK64 = (1n << 64n) - 1n;

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number, stream = 0) {
    this.a = seed | 0;
    this.b = stream | 0;
    this.c = 0x9e3779b9;
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Uniform random `bits`-bit value (bits <= 64). */
  bits(bits: number): bigint {
    const v = (BigInt(this.u32()) << 32n) | BigInt(this.u32());
    return bits >= 64 ? v : v & ((1n << BigInt(bits)) - 1n);
  }

  /**
   * A `bits`-wide operand value biased towards the edges where arithmetic goes
   * wrong: 0, 1, all ones, sign boundaries, single bits, small magnitudes.
   */
  value(bits: number): bigint {
    const mask = bits >= 64 ? MASK64 : (1n << BigInt(bits)) - 1n;
    const sign = 1n << BigInt(bits - 1);
    const r = this.int(100);
    if (r < 25) {
      const edges = [0n, 1n, 2n, mask, mask - 1n, sign, sign - 1n, sign + 1n, 0x7fn, 0x80n, 0xffn, 0x100n,
        0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n];
      return this.pick(edges) & mask;
    }
    if (r < 40) {
      const small = BigInt(this.int(17));
      return this.chance(0.5) ? small : (-small) & mask;
    }
    if (r < 50) {
      const bit = 1n << BigInt(this.int(bits));
      return this.chance(0.5) ? bit : ~bit & mask;
    }
    return this.bits(bits);
  }

  /** A random 64-bit register value whose low `bits` follow value(bits). */
  regValue(bits = 64): bigint {
    if (bits >= 64) return this.value(64);
    return (this.bits(64) & ~((1n << BigInt(bits)) - 1n)) | this.value(bits);
  }

  fill(bytes: Uint8Array): void {
    let i = 0;
    for (; i + 4 <= bytes.length; i += 4) {
      const v = this.u32();
      bytes[i] = v;
      bytes[i + 1] = v >>> 8;
      bytes[i + 2] = v >>> 16;
      bytes[i + 3] = v >>> 24;
    }
    for (; i < bytes.length; i++) bytes[i] = this.u32();
  }
}
