/**
 * Lazy arithmetic flags. The common flag-setting instructions (add, sub, cmp,
 * logic, inc, dec) record their operands and result; flags are computed only
 * when something reads them. Everything else sets flags eagerly with
 * `setArithFlags`. 64-bit operations record lo/hi halves.
 */
import type { Cpu } from './cpu.js';
import { AF, ARITH_FLAGS, CF, OF, PF, SF, ZF } from './regs.js';
import { imul32Fits, mul64x64, productFits64 } from './wide-mul.js';

export const enum FOp {
  None = 0, Add = 1, Sub = 2, Logic = 3, Inc = 4, Dec = 5,
  /** Truncating signed multiply (IMUL r, r/m[, imm]): CF = OF = the product overflowed; AF clear. */
  Imul = 6,
  /** Shifts by a count of 1..size-1 (fA/fAHi the operand, fB the count): CF = last bit out; AF clear. */
  Shl = 7, Shr = 8, Sar = 9,
}

/** Bit k of the recorded first operand (1, 2, 4 bytes in fA; 8 bytes in fA/fAHi). */
function operandBit(c: Cpu, k: number): number {
  return k < 32 ? (c.fA >>> k) & 1 : (c.fAHi >>> (k - 32)) & 1;
}
/** CF of a lazily recorded shift. */
function shiftCarry(c: Cpu): number {
  return c.fOp === FOp.Shl ? operandBit(c, c.fSize * 8 - c.fB) : operandBit(c, c.fB - 1);
}
function resultSign(c: Cpu): number {
  return c.fSize === 8 ? c.fResHi >>> 31 : (c.fRes >>> (c.fSize * 8 - 1)) & 1;
}

/** CF/OF of a lazily recorded IMUL: whether the full signed product overflowed the operand size. */
function imulOverflow(c: Cpu): boolean {
  if (c.fSize === 8) { mul64x64(c.fA, c.fAHi, c.fB, c.fBHi, true); return !productFits64(); }
  return !imul32Fits(c.fA, c.fB);
}

/** Even-parity table for the low byte of a result: PF = PARITY[res & 0xff]. */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) { p ^= b & 1; b >>= 1; }
  PARITY[i] = p ? PF : 0;
}

/** Sign bit of an operand of `size` bytes (1, 2, 4). */
export function signBit(size: number): number {
  return size === 1 ? 0x80 : size === 2 ? 0x8000 : 0x80000000 | 0;
}
export function sizeMask(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : -1;
}

/** Records an add/sub/logic result of 1, 2 or 4 bytes (values already masked to size). */
export function lazy(c: Cpu, op: FOp, size: number, a: number, b: number, res: number): void {
  c.fOp = op; c.fSize = size; c.fA = a; c.fB = b; c.fRes = res;
}
/** Records a 64-bit add/sub/logic result. */
export function lazy64(c: Cpu, op: FOp, aLo: number, aHi: number, bLo: number, bHi: number, rLo: number, rHi: number): void {
  c.fOp = op; c.fSize = 8; c.fA = aLo; c.fAHi = aHi; c.fB = bLo; c.fBHi = bHi; c.fRes = rLo; c.fResHi = rHi;
}
/** inc/dec keep CF: capture it before recording. */
export function lazyIncDec(c: Cpu, op: FOp, size: number, a: number, res: number, aHi = 0, resHi = 0): void {
  const cf = getCF(c);
  c.flags = (c.flags & ~CF) | cf;
  c.fOp = op; c.fSize = size; c.fA = a; c.fAHi = aHi; c.fB = 1; c.fBHi = 0; c.fRes = res; c.fResHi = resHi;
}

/** Sets the six arithmetic flags at once (each argument 0 or the flag's bit). */
export function setArithFlags(c: Cpu, bits: number): void {
  c.flags = (c.flags & ~ARITH_FLAGS) | (bits & ARITH_FLAGS);
  c.fOp = FOp.None;
}

function ult(a: number, b: number): boolean { return (a >>> 0) < (b >>> 0); }
function ult64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi === bHi ? (aLo >>> 0) < (bLo >>> 0) : (aHi >>> 0) < (bHi >>> 0);
}

export function getCF(c: Cpu): number {
  switch (c.fOp) {
    case FOp.None: case FOp.Inc: case FOp.Dec: return c.flags & CF;
    case FOp.Logic: return 0;
    case FOp.Add:
      if (c.fSize === 8) return ult64(c.fRes, c.fResHi, c.fA, c.fAHi) ? CF : 0;
      return ult(c.fRes, c.fA) ? CF : 0;
    case FOp.Sub:
      if (c.fSize === 8) return ult64(c.fA, c.fAHi, c.fB, c.fBHi) ? CF : 0;
      return ult(c.fA, c.fB) ? CF : 0;
    case FOp.Imul: return imulOverflow(c) ? CF : 0;
    case FOp.Shl: case FOp.Shr: case FOp.Sar: return shiftCarry(c) ? CF : 0;
  }
  return 0;
}

export function getZF(c: Cpu): number {
  if (c.fOp === FOp.None) return c.flags & ZF;
  if (c.fSize === 8) return (c.fRes | c.fResHi) === 0 ? ZF : 0;
  return c.fRes === 0 ? ZF : 0;
}

export function getSF(c: Cpu): number {
  if (c.fOp === FOp.None) return c.flags & SF;
  if (c.fSize === 8) return c.fResHi < 0 ? SF : 0;
  return c.fRes & signBit(c.fSize) ? SF : 0;
}

export function getPF(c: Cpu): number {
  if (c.fOp === FOp.None) return c.flags & PF;
  return PARITY[c.fRes & 0xff];
}

export function getAF(c: Cpu): number {
  switch (c.fOp) {
    case FOp.None: return c.flags & AF;
    case FOp.Logic: case FOp.Imul: case FOp.Shl: case FOp.Shr: case FOp.Sar: return 0;
    default: return (c.fA ^ c.fB ^ c.fRes) & AF;
  }
}

export function getOF(c: Cpu): number {
  let a = c.fA, b = c.fB, r = c.fRes, sign = 0;
  if (c.fSize === 8) { a = c.fAHi; b = c.fBHi; r = c.fResHi; sign = 0x80000000 | 0; } else sign = signBit(c.fSize);
  switch (c.fOp) {
    case FOp.None: return c.flags & OF;
    case FOp.Logic: return 0;
    case FOp.Imul: return imulOverflow(c) ? OF : 0;
    // SDM: OF is defined for a count of 1 and computed the same way otherwise.
    case FOp.Shl: return (resultSign(c) ^ shiftCarry(c)) ? OF : 0;
    case FOp.Shr: return operandBit(c, c.fSize * 8 - 1) ? OF : 0;
    case FOp.Sar: return 0;
    case FOp.Add: case FOp.Inc: return ((a ^ r) & (b ^ r) & sign) ? OF : 0;
    case FOp.Sub: case FOp.Dec: return ((a ^ b) & (a ^ r) & sign) ? OF : 0;
  }
  return 0;
}

/** Folds lazy flags into c.flags and returns the full RFLAGS low word. */
export function materializeFlags(c: Cpu): number {
  if (c.fOp !== FOp.None) {
    const bits = getCF(c) | getPF(c) | getAF(c) | getZF(c) | getSF(c) | getOF(c);
    c.flags = (c.flags & ~ARITH_FLAGS) | bits;
    c.fOp = FOp.None;
  }
  return c.flags;
}

/** Evaluates condition code `cc` (0..15, the Jcc/SETcc/CMOVcc encoding). */
export function testCond(c: Cpu, cc: number): boolean {
  // Fast paths for compare results, the overwhelmingly common case.
  if (c.fOp === FOp.Sub && c.fSize === 4) {
    const a = c.fA, b = c.fB;
    switch (cc) {
      case 0x2: return (a >>> 0) < (b >>> 0);
      case 0x3: return (a >>> 0) >= (b >>> 0);
      case 0x4: return a === b;
      case 0x5: return a !== b;
      case 0x6: return (a >>> 0) <= (b >>> 0);
      case 0x7: return (a >>> 0) > (b >>> 0);
      case 0xc: return a < b;
      case 0xd: return a >= b;
      case 0xe: return a <= b;
      case 0xf: return a > b;
    }
  }
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = getOF(c) !== 0; break;
    case 1: r = getCF(c) !== 0; break;
    case 2: r = getZF(c) !== 0; break;
    case 3: r = getCF(c) !== 0 || getZF(c) !== 0; break;
    case 4: r = getSF(c) !== 0; break;
    case 5: r = getPF(c) !== 0; break;
    case 6: r = (getSF(c) !== 0) !== (getOF(c) !== 0); break;
    default: r = getZF(c) !== 0 || ((getSF(c) !== 0) !== (getOF(c) !== 0)); break;
  }
  return (cc & 1) ? !r : r;
}
