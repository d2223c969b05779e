/**
 * Shifts and rotates (group 2: ROL ROR RCL RCR SHL SHR SAL SAR), SHLD, SHRD.
 * Flags per SDM vol. 2: a count of 0 changes nothing; OF is defined for count 1
 * and computed by the same rule otherwise (undefined there); AF is left clear.
 */
import type { Cpu } from '../cpu.js';
import { FOp, materializeFlags, PARITY, setArithFlags } from '../flags.js';
import { markPure, type Handler, type Insn } from '../insn.js';
import { def } from '../opcode-table.js';
import { readMemRmw, readRegOp, writeMem, getReg, setReg } from '../operands.js';
import { CF, OF, RCX, SF, ZF } from '../regs.js';

function toBig(lo: number, hi: number, sz: number): bigint {
  if (sz === 8) return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  return BigInt(lo >>> 0) & ((1n << BigInt(sz * 8)) - 1n);
}

/** Result flags SF ZF PF from a value of `bits` width. */
function szp(r: bigint, bits: number): number {
  return (r === 0n ? ZF : 0) | (((r >> BigInt(bits - 1)) & 1n) ? SF : 0) | PARITY[Number(r & 0xffn)];
}

/**
 * Computes op(value, count) for a shift/rotate. `count` is already masked.
 * Returns the result and sets flags. Generic over widths via BigInt: clear over clever.
 */
function shiftOp(c: Cpu, op: number, v: bigint, count: number, sz: number): bigint {
  const bits = sz * 8;
  const B = BigInt(bits);
  const mask = (1n << B) - 1n;
  const msb = (x: bigint) => (x >> (B - 1n)) & 1n;
  const old = materializeFlags(c);
  let r: bigint, cf: bigint, of: bigint;
  switch (op) {
    case 0: { // ROL
      const n = BigInt(count % bits);
      r = ((v << n) | (v >> ((B - n) % B))) & mask;
      if (n === 0n) r = v;
      cf = r & 1n; of = msb(r) ^ cf;
      c.flags = (old & ~(CF | OF)) | (cf ? CF : 0) | (of ? OF : 0);
      return r;
    }
    case 1: { // ROR
      const n = BigInt(count % bits);
      r = n === 0n ? v : ((v >> n) | (v << (B - n))) & mask;
      cf = msb(r); of = msb(r) ^ ((r >> (B - 2n)) & 1n);
      c.flags = (old & ~(CF | OF)) | (cf ? CF : 0) | (of ? OF : 0);
      return r;
    }
    case 2: { // RCL
      const n = count % (bits + 1);
      let x = v, carry = BigInt(old & CF);
      for (let k = 0; k < n; k++) { const out = msb(x); x = ((x << 1n) | carry) & mask; carry = out; }
      of = msb(x) ^ carry;
      c.flags = (old & ~(CF | OF)) | (carry ? CF : 0) | (of ? OF : 0);
      return x;
    }
    case 3: { // RCR
      const n = count % (bits + 1);
      let x = v, carry = BigInt(old & CF);
      of = msb(v) ^ carry;
      for (let k = 0; k < n; k++) { const out = x & 1n; x = (x >> 1n) | (carry << (B - 1n)); carry = out; }
      c.flags = (old & ~(CF | OF)) | (carry ? CF : 0) | (of ? OF : 0);
      return x;
    }
    case 4: case 6: { // SHL/SAL
      const n = BigInt(count);
      r = (v << n) & mask;
      cf = n <= B ? (v >> (B - n)) & 1n : 0n;
      of = msb(r) ^ cf;
      break;
    }
    case 5: { // SHR
      const n = BigInt(count);
      r = v >> n;
      cf = (v >> (n - 1n)) & 1n;
      of = msb(v);
      break;
    }
    default: { // SAR
      const n = BigInt(count);
      const sv = BigInt.asIntN(bits, v);
      r = BigInt.asUintN(bits, sv >> n);
      cf = n > B ? (sv < 0n ? 1n : 0n) : (sv >> (n - 1n)) & 1n;
      of = 0n;
      break;
    }
  }
  setArithFlags(c, (cf ? CF : 0) | (of ? OF : 0) | szp(r, bits));
  return r;
}

/** Fast 32-bit SHL/SHR/SAR for the common case; returns undefined to fall back. */
function shift32(c: Cpu, op: number, v: number, n: number): number | undefined {
  if (n === 0) return v;
  let r: number, f: FOp;
  if (op === 4 || op === 6) { r = v << n; f = FOp.Shl; }
  else if (op === 5) { r = (v >>> n) | 0; f = FOp.Shr; }
  else if (op === 7) { r = v >> n; f = FOp.Sar; }
  else return undefined;
  c.fOp = f; c.fSize = 4; c.fA = v; c.fB = n; c.fRes = r;
  return r;
}

/**
 * 64-bit SHL/SHR/SAR/ROL/ROR on int32 halves (count 1..63); returns the low half,
 * the high half in c.tHi, and sets flags. RCL/RCR return undefined (generic path).
 */
function shift64(c: Cpu, op: number, lo: number, hi: number, n: number): number | undefined {
  let rLo: number, rHi: number, f: FOp;
  switch (op) {
    case 4: case 6: // SHL
      if (n < 32) { rHi = (hi << n) | (lo >>> (32 - n)); rLo = lo << n; } else { rHi = lo << (n - 32); rLo = 0; }
      f = FOp.Shl;
      break;
    case 5: // SHR
      if (n < 32) { rLo = (lo >>> n) | (hi << (32 - n)); rHi = hi >>> n; } else { rLo = hi >>> (n - 32); rHi = 0; }
      f = FOp.Shr;
      break;
    case 7: // SAR
      if (n < 32) { rLo = (lo >>> n) | (hi << (32 - n)); rHi = hi >> n; } else { rLo = hi >> (n - 32); rHi = hi >> 31; }
      f = FOp.Sar;
      break;
    case 0: case 1: {
      let cf: number, of: number; // ROL, ROR (ROR by n = ROL by 64 - n); only CF and OF change
      let k = op === 0 ? n : 64 - n, a = lo, b = hi;
      if (k >= 32) { a = hi; b = lo; k -= 32; }
      rLo = k === 0 ? a : (a << k) | (b >>> (32 - k));
      rHi = k === 0 ? b : (b << k) | (a >>> (32 - k));
      if (op === 0) { cf = rLo & 1; of = (rHi >>> 31) ^ cf; } else { cf = rHi >>> 31; of = cf ^ ((rHi >>> 30) & 1); }
      c.flags = (materializeFlags(c) & ~(CF | OF)) | (cf ? CF : 0) | (of ? OF : 0);
      c.tHi = rHi | 0;
      return rLo | 0;
    }
    default: return undefined;
  }
  rLo |= 0; rHi |= 0;
  c.fOp = f; c.fSize = 8; c.fA = lo; c.fAHi = hi; c.fB = n; c.fRes = rLo; c.fResHi = rHi;
  c.tHi = rHi;
  return rLo;
}

function group2(countSrc: 'one' | 'cl' | 'imm'): Handler {
  return (c, i) => {
    const sz = i.osz, op = i.ext;
    let count = countSrc === 'one' ? 1 : countSrc === 'cl' ? c.rlo[RCX] & 0xff : i.imm & 0xff;
    count &= sz === 8 ? 0x3f : 0x1f;
    let lo: number, hi = 0, memLo = 0, memHi = 0;
    if (i.rm >= 0) { lo = getReg(c, sz === 1 ? i.rm8 : i.rm, sz); hi = c.tHi; }
    else { memLo = i.ea(c, i); memHi = c.tHi; lo = readMemRmw(c, memLo, memHi, sz); hi = c.tHi; }
    if (count === 0) {
      // No flags change and memory is not written, but a 32-bit register destination is still zero-extended.
      if (sz === 4 && i.rm >= 0) c.rhi[i.rm] = 0;
      return;
    }
    let rLo: number, rHi = 0;
    const fast = sz === 4 ? shift32(c, op, lo, count) : sz === 8 ? shift64(c, op, lo, hi, count) : undefined;
    if (fast !== undefined) { rLo = fast; rHi = sz === 8 ? c.tHi : 0; }
    else {
      const r = shiftOp(c, op, toBig(lo, hi, sz), count, sz);
      rLo = Number(r & 0xffffffffn) | 0; rHi = Number((r >> 32n) & 0xffffffffn) | 0;
    }
    if (i.rm >= 0) setReg(c, sz === 1 ? i.rm8 : i.rm, sz, rLo, rHi);
    else writeMem(c, memLo, memHi, sz, rLo, rHi);
  };
}

/**
 * Register operand, immediate count, 64-bit SHL/SHR/SAR: one function per
 * operation (no dispatch on the operation at run time) with lazy flags.
 */
const shlReg64Imm: Handler = markPure((c, i) => {
  const n = i.imm & 0x3f, r = i.rm;
  if (n === 0) return;
  const lo = c.rlo[r], hi = c.rhi[r];
  const rLo = n < 32 ? lo << n : 0, rHi = n < 32 ? (hi << n) | (lo >>> (32 - n)) : lo << (n - 32);
  c.rlo[r] = rLo; c.rhi[r] = rHi;
  c.fOp = FOp.Shl; c.fSize = 8; c.fA = lo; c.fAHi = hi; c.fB = n; c.fRes = rLo; c.fResHi = rHi;
});
const shrReg64Imm: Handler = markPure((c, i) => {
  const n = i.imm & 0x3f, r = i.rm;
  if (n === 0) return;
  const lo = c.rlo[r], hi = c.rhi[r];
  const rLo = n < 32 ? (lo >>> n) | (hi << (32 - n)) : (hi >>> (n - 32)) | 0, rHi = n < 32 ? (hi >>> n) | 0 : 0;
  c.rlo[r] = rLo; c.rhi[r] = rHi;
  c.fOp = FOp.Shr; c.fSize = 8; c.fA = lo; c.fAHi = hi; c.fB = n; c.fRes = rLo; c.fResHi = rHi;
});
const sarReg64Imm: Handler = markPure((c, i) => {
  const n = i.imm & 0x3f, r = i.rm;
  if (n === 0) return;
  const lo = c.rlo[r], hi = c.rhi[r];
  const rLo = n < 32 ? (lo >>> n) | (hi << (32 - n)) : hi >> (n - 32), rHi = n < 32 ? hi >> n : hi >> 31;
  c.rlo[r] = rLo; c.rhi[r] = rHi;
  c.fOp = FOp.Sar; c.fSize = 8; c.fA = lo; c.fAHi = hi; c.fB = n; c.fRes = rLo; c.fResHi = rHi;
});
/** ROL/ROR r64, imm8 through shift64. */
const rotReg64Imm: Handler = markPure((c, i) => {
  const n = i.imm & 0x3f, r = i.rm;
  if (n === 0) return;
  const lo = shift64(c, i.ext, c.rlo[r], c.rhi[r], n)!;
  c.rlo[r] = lo; c.rhi[r] = c.tHi;
});
/** Register operand, immediate count, 32-bit SHL/SHR/SAR. */
const shiftReg32Imm: Handler = markPure((c, i) => {
  const n = i.imm & 0x1f, r = i.rm;
  if (n !== 0) c.rlo[r] = shift32(c, i.ext, c.rlo[r], n)!;
  c.rhi[r] = 0;
});
function bindGroup2(generic: Handler): (i: Insn) => Handler {
  return (i) => {
    if (i.rm >= 0 && i.osz === 8) {
      switch (i.ext) {
        case 4: case 6: return shlReg64Imm;
        case 5: return shrReg64Imm;
        case 7: return sarReg64Imm;
        case 0: case 1: return rotReg64Imm;
      }
    }
    if (i.rm >= 0 && i.osz === 4 && i.ext >= 4) return shiftReg32Imm;
    return generic;
  };
}

const NAMES = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'];
for (let op = 0; op < 8; op++) {
  const name = NAMES[op];
  def(`C0/${op}`, { name, byte: true, imm: 'ib', exec: group2('imm') });
  def(`C1/${op}`, { name, imm: 'ib', bind: bindGroup2(group2('imm')) });
  def(`D0/${op}`, { name, byte: true, exec: group2('one') });
  def(`D1/${op}`, { name, exec: group2('one') });
  def(`D2/${op}`, { name, byte: true, exec: group2('cl') });
  def(`D3/${op}`, { name, exec: group2('cl') });
}

/** SHLD/SHRD r/m, reg, count (SDM: count masked to 5/6 bits; 16-bit counts > 16 undefined). */
function doubleShift(left: boolean, countSrc: 'cl' | 'imm'): Handler {
  return (c, i) => {
    const sz = i.osz, bits = sz * 8, B = BigInt(bits);
    let count = (countSrc === 'cl' ? c.rlo[RCX] : i.imm) & (sz === 8 ? 0x3f : 0x1f);
    let lo: number, hi = 0, memLo = 0, memHi = 0;
    if (i.rm >= 0) { lo = getReg(c, i.rm, sz); hi = c.tHi; }
    else { memLo = i.ea(c, i); memHi = c.tHi; lo = readMemRmw(c, memLo, memHi, sz); hi = c.tHi; }
    if (count === 0) {
      if (sz === 4 && i.rm >= 0) c.rhi[i.rm] = 0;
      return;
    }
    const src = toBig(readRegOp(c, i), c.tHi, sz);
    const dst = toBig(lo, hi, sz);
    const mask = (1n << B) - 1n;
    const n = BigInt(count);
    let r: bigint, cf: bigint;
    if (left) {
      const wide = (dst << B) | src; // dst:src
      r = ((wide << n) >> B) & mask;
      cf = (dst >> (B - n)) & 1n;
      if (n > B) cf = (src >> (2n * B - n)) & 1n;
    } else {
      const wide = (src << B) | dst; // src:dst
      r = (wide >> n) & mask;
      cf = (dst >> (n - 1n)) & 1n;
      if (n > B) cf = (src >> (n - 1n - B)) & 1n;
    }
    const of = ((r ^ dst) >> (B - 1n)) & 1n;
    setArithFlags(c, (cf ? CF : 0) | (of ? OF : 0) | szp(r, bits));
    const rLo = Number(r & 0xffffffffn) | 0, rHi = Number((r >> 32n) & 0xffffffffn) | 0;
    if (i.rm >= 0) setReg(c, i.rm, sz, rLo, rHi);
    else writeMem(c, memLo, memHi, sz, rLo, rHi);
  };
}
def('0F A4', { name: 'shld', modrm: true, imm: 'ib', exec: doubleShift(true, 'imm') });
def('0F A5', { name: 'shld', modrm: true, exec: doubleShift(true, 'cl') });
def('0F AC', { name: 'shrd', modrm: true, imm: 'ib', exec: doubleShift(false, 'imm') });
def('0F AD', { name: 'shrd', modrm: true, exec: doubleShift(false, 'cl') });
