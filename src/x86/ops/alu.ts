/**
 * Integer arithmetic and logic: ADD OR ADC SBB AND SUB XOR CMP in all forms,
 * TEST, INC, DEC, NEG, NOT, MUL, IMUL, DIV, IDIV (SDM vol. 2).
 */
import type { Cpu } from '../cpu.js';
import { fault } from '../fault.js';
import { FOp, getCF, lazy, lazy64, lazyIncDec, PARITY, setArithFlags, signBit } from '../flags.js';
import { markPure, type Handler, type Insn } from '../insn.js';
import { fastAlu } from './alu-fast.js';
import { mul32x32, mul64lo, mul64x64, productFits64, W } from '../wide-mul.js';
import { def } from '../opcode-table.js';
import { getReg, readMem, readMemRmw, readRegOp, readRm, setReg, sext, trunc, writeMem, writeRegOp } from '../operands.js';
import { AF, CF, DE, OF, RAX, RDX, SF, ZF } from '../regs.js';

const ADD = 0, OR = 1, ADC = 2, SBB = 3, AND = 4, SUB = 5, XOR = 6, CMP = 7;
const NAMES = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];

/** Flags from a result of 1/2/4 bytes with explicit CF and OF (others from the result). */
function resultFlags(sz: number, r: number, cf: boolean, of: boolean, af: number): number {
  return (cf ? CF : 0) | (of ? OF : 0) | (af & AF) | PARITY[r & 0xff] | (trunc(r, sz) === 0 ? ZF : 0) |
    ((r & signBit(sz)) ? SF : 0);
}

/** a op b for operands of 1, 2 or 4 bytes; sets flags; returns the result. */
export function alu(c: Cpu, op: number, sz: number, a: number, b: number): number {
  let r: number;
  switch (op) {
    case ADD: r = trunc(a + b, sz); lazy(c, FOp.Add, sz, a, b, r); return r;
    case SUB: case CMP: r = trunc(a - b, sz); lazy(c, FOp.Sub, sz, a, b, r); return r;
    case AND: r = a & b; lazy(c, FOp.Logic, sz, a, b, r); return r;
    case OR: r = a | b; lazy(c, FOp.Logic, sz, a, b, r); return r;
    case XOR: r = a ^ b; lazy(c, FOp.Logic, sz, a, b, r); return r;
    case ADC: {
      const cin = getCF(c) ? 1 : 0;
      r = trunc(a + b + cin, sz);
      const cf = sz === 4 ? (a >>> 0) + (b >>> 0) + cin > 0xffffffff : a + b + cin > (sz === 1 ? 0xff : 0xffff);
      setArithFlags(c, resultFlags(sz, r, cf, ((a ^ r) & (b ^ r) & signBit(sz)) !== 0, a ^ b ^ r));
      return r;
    }
    default: { // SBB
      const cin = getCF(c) ? 1 : 0;
      r = trunc(a - b - cin, sz);
      const cf = sz === 4 ? (a >>> 0) < (b >>> 0) + cin : a < b + cin;
      setArithFlags(c, resultFlags(sz, r, cf, ((a ^ b) & (a ^ r) & signBit(sz)) !== 0, a ^ b ^ r));
      return r;
    }
  }
}

/** 64-bit a op b; returns lo, hi in c.tHi. */
export function alu64(c: Cpu, op: number, a: number, aHi: number, b: number, bHi: number): number {
  let lo: number, hi: number;
  switch (op) {
    case AND: lo = a & b; hi = aHi & bHi; lazy64(c, FOp.Logic, a, aHi, b, bHi, lo, hi); break;
    case OR: lo = a | b; hi = aHi | bHi; lazy64(c, FOp.Logic, a, aHi, b, bHi, lo, hi); break;
    case XOR: lo = a ^ b; hi = aHi ^ bHi; lazy64(c, FOp.Logic, a, aHi, b, bHi, lo, hi); break;
    case ADD: case ADC: {
      const cin = op === ADC && getCF(c) ? 1 : 0;
      const s = (a >>> 0) + (b >>> 0) + cin;
      lo = s | 0;
      const sh = (aHi >>> 0) + (bHi >>> 0) + (s > 0xffffffff ? 1 : 0);
      hi = sh | 0;
      if (op === ADD) lazy64(c, FOp.Add, a, aHi, b, bHi, lo, hi);
      else setArithFlags(c, flags64(lo, hi, sh > 0xffffffff, ((aHi ^ hi) & (bHi ^ hi)) < 0, a ^ b ^ lo));
      break;
    }
    default: { // SUB, CMP, SBB
      const cin = op === SBB && getCF(c) ? 1 : 0;
      const borrowLo = (a >>> 0) < (b >>> 0) + cin ? 1 : 0;
      lo = (a - b - cin) | 0;
      hi = (aHi - bHi - borrowLo) | 0;
      if (op !== SBB) lazy64(c, FOp.Sub, a, aHi, b, bHi, lo, hi);
      else setArithFlags(c, flags64(lo, hi, (aHi >>> 0) < (bHi >>> 0) + borrowLo, ((aHi ^ bHi) & (aHi ^ hi)) < 0, a ^ b ^ lo));
      break;
    }
  }
  c.tHi = hi;
  return lo;
}

export function flags64(lo: number, hi: number, cf: boolean, of: boolean, af: number): number {
  return (cf ? CF : 0) | (of ? OF : 0) | (af & AF) | PARITY[lo & 0xff] | ((lo | hi) === 0 ? ZF : 0) | (hi < 0 ? SF : 0);
}

/** dest(r/m or reg) = dest op src, for every operand size. */
function aluOp(op: number, dir: 'rm' | 'reg', src: 'reg' | 'rm' | 'imm'): Handler {
  const write = op !== CMP;
  return (c, i) => {
    const sz = i.osz;
    // Source operand.
    let b: number, bHi = 0;
    if (src === 'imm') { b = sz === 8 ? i.imm : trunc(i.imm, sz); bHi = i.imm >> 31; }
    else if (src === 'reg') { b = readRegOp(c, i); bHi = c.tHi; }
    else { b = readRm(c, i); bHi = c.tHi; }
    if (dir === 'reg') {
      const a = readRegOp(c, i), aHi = c.tHi;
      if (sz === 8) { const r = alu64(c, op, a, aHi, b, bHi); if (write) writeRegOp(c, i, r, c.tHi); }
      else { const r = alu(c, op, sz, a, b); if (write) writeRegOp(c, i, r); }
      return;
    }
    if (i.rm >= 0) {
      const reg = sz === 1 ? i.rm8 : i.rm;
      if (sz === 8) {
        const r = alu64(c, op, c.rlo[reg], c.rhi[reg], b, bHi);
        if (write) { c.rlo[reg] = r; c.rhi[reg] = c.tHi; }
      } else {
        const r = alu(c, op, sz, getReg(c, reg, sz), b);
        if (write) setReg(c, reg, sz, r);
      }
      return;
    }
    const lo = i.ea(c, i), hi = c.tHi;
    const a = write ? readMemRmw(c, lo, hi, sz) : readMem(c, lo, hi, sz), aHi = c.tHi;
    if (sz === 8) {
      const r = alu64(c, op, a, aHi, b, bHi);
      if (write) writeMem(c, lo, hi, 8, r, c.tHi);
    } else {
      const r = alu(c, op, sz, a, b);
      if (write) writeMem(c, lo, hi, sz, r);
    }
  };
}

/** Accumulator forms: AL/AX/EAX/RAX op imm. */
function aluAcc(op: number): Handler {
  const write = op !== CMP;
  return (c, i) => {
    const sz = i.osz;
    if (sz === 8) {
      const r = alu64(c, op, c.rlo[RAX], c.rhi[RAX], i.imm, i.imm >> 31);
      if (write) { c.rlo[RAX] = r; c.rhi[RAX] = c.tHi; }
    } else {
      const a = trunc(c.rlo[RAX], sz);
      const r = alu(c, op, sz, a, trunc(i.imm, sz));
      if (write) {
        if (sz === 4) { c.rlo[RAX] = r; c.rhi[RAX] = 0; }
        else c.rlo[RAX] = (c.rlo[RAX] & (sz === 1 ? ~0xff : ~0xffff)) | r;
      }
    }
  };
}

/** Picks the specialized register handler when the operands allow it, else the generic one. */
function bindAlu(op: number, form: 'rm-reg' | 'reg-rm' | 'rm-imm', generic: Handler): (i: Insn) => Handler {
  return (i) => (i.rm >= 0 ? fastAlu(op, i.osz, form) : undefined) ?? generic;
}

for (let op = 0; op < 8; op++) {
  const base = op << 3, name = NAMES[op];
  const lockable = op !== CMP;
  const h = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
  def(h(base + 0), { name, modrm: true, byte: true, lockable, exec: aluOp(op, 'rm', 'reg') });
  def(h(base + 1), { name, modrm: true, lockable, bind: bindAlu(op, 'rm-reg', aluOp(op, 'rm', 'reg')) });
  def(h(base + 2), { name, modrm: true, byte: true, exec: aluOp(op, 'reg', 'rm') });
  def(h(base + 3), { name, modrm: true, bind: bindAlu(op, 'reg-rm', aluOp(op, 'reg', 'rm')) });
  def(h(base + 4), { name, byte: true, imm: 'ib', exec: aluAcc(op) });
  def(h(base + 5), { name, imm: 'iz', exec: aluAcc(op) });
  def(`80/${op}`, { name, byte: true, imm: 'ib', lockable, exec: aluOp(op, 'rm', 'imm') });
  def(`82/${op}`, { name, byte: true, imm: 'ib', lockable, no64: true, exec: aluOp(op, 'rm', 'imm') });
  def(`81/${op}`, { name, imm: 'iz', lockable, bind: bindAlu(op, 'rm-imm', aluOp(op, 'rm', 'imm')) });
  def(`83/${op}`, { name, imm: 'ib', lockable, bind: bindAlu(op, 'rm-imm', aluOp(op, 'rm', 'imm')) });
}

// ---- TEST ----
const testRmReg: Handler = (c, i) => {
  const sz = i.osz;
  const a = readRm(c, i), aHi = c.tHi;
  const b = readRegOp(c, i), bHi = c.tHi;
  if (sz === 8) alu64(c, AND, a, aHi, b, bHi); else alu(c, AND, sz, a, b);
};
const testRmImm: Handler = (c, i) => {
  const sz = i.osz;
  const a = readRm(c, i), aHi = c.tHi;
  if (sz === 8) alu64(c, AND, a, aHi, i.imm, i.imm >> 31); else alu(c, AND, sz, a, trunc(i.imm, sz));
};
const testAcc: Handler = (c, i) => {
  const sz = i.osz;
  if (sz === 8) alu64(c, AND, c.rlo[RAX], c.rhi[RAX], i.imm, i.imm >> 31);
  else alu(c, AND, sz, trunc(c.rlo[RAX], sz), trunc(i.imm, sz));
};
def('84', { name: 'test', modrm: true, byte: true, exec: testRmReg });
def('85', { name: 'test', modrm: true, bind: bindAlu(8, 'rm-reg', testRmReg) });
def('A8', { name: 'test', byte: true, imm: 'ib', exec: testAcc });
def('A9', { name: 'test', imm: 'iz', exec: testAcc });
/** test r8, imm8 (e.g. `test dil, 1`), register operand. */
const testReg8Imm: Handler = markPure((c, i) => {
  const a = getReg(c, i.rm8, 1), b = i.imm & 0xff;
  lazy(c, FOp.Logic, 1, a, b, a & b);
});
const bindTestImm = (i: Insn): Handler =>
  i.rm < 0 ? testRmImm : i.osz === 1 ? testReg8Imm : fastAlu(8, i.osz, 'rm-imm') ?? testRmImm;
def('F6/0', { name: 'test', byte: true, imm: 'ib', bind: bindTestImm });
def('F6/1', { name: 'test', byte: true, imm: 'ib', bind: bindTestImm });
def('F7/0', { name: 'test', imm: 'iz', bind: bindTestImm });
def('F7/1', { name: 'test', imm: 'iz', bind: bindTestImm });

// ---- read-modify-write of the r/m operand with a unary function ----

/** Applies fn to the r/m operand (lo, hi) and writes the result back. */
function unary(fn: (c: Cpu, sz: number, a: number, aHi: number) => number): Handler {
  return (c, i) => {
    const sz = i.osz;
    if (i.rm >= 0) {
      const a = readRm(c, i), aHi = c.tHi;
      const r = fn(c, sz, a, aHi);
      if (sz === 1) { const reg = i.rm8; if (reg < 16) c.rlo[reg] = (c.rlo[reg] & ~0xff) | (r & 0xff); else c.rlo[reg - 16] = (c.rlo[reg - 16] & ~0xff00) | ((r & 0xff) << 8); }
      else if (sz === 2) c.rlo[i.rm] = (c.rlo[i.rm] & ~0xffff) | (r & 0xffff);
      else if (sz === 4) { c.rlo[i.rm] = r; c.rhi[i.rm] = 0; }
      else { c.rlo[i.rm] = r; c.rhi[i.rm] = c.tHi; }
      return;
    }
    const lo = i.ea(c, i), hi = c.tHi;
    const a = readMemRmw(c, lo, hi, sz), aHi = c.tHi;
    const r = fn(c, sz, a, aHi);
    writeMem(c, lo, hi, sz, r, c.tHi);
  };
}

const inc = (c: Cpu, sz: number, a: number, aHi: number): number => {
  if (sz === 8) {
    const lo = (a + 1) | 0, hi = lo === 0 ? (aHi + 1) | 0 : aHi;
    lazyIncDec(c, FOp.Inc, 8, a, lo, aHi, hi); c.tHi = hi; return lo;
  }
  const r = trunc(a + 1, sz); lazyIncDec(c, FOp.Inc, sz, a, r); return r;
};
const dec = (c: Cpu, sz: number, a: number, aHi: number): number => {
  if (sz === 8) {
    const lo = (a - 1) | 0, hi = a === 0 ? (aHi - 1) | 0 : aHi;
    lazyIncDec(c, FOp.Dec, 8, a, lo, aHi, hi); c.tHi = hi; return lo;
  }
  const r = trunc(a - 1, sz); lazyIncDec(c, FOp.Dec, sz, a, r); return r;
};
const not = (c: Cpu, sz: number, a: number, aHi: number): number => { c.tHi = ~aHi; return trunc(~a, sz); };
const neg = (c: Cpu, sz: number, a: number, aHi: number): number => {
  if (sz === 8) return alu64(c, SUB, 0, 0, a, aHi);
  return alu(c, SUB, sz, 0, a);
};

def('FE/0', { name: 'inc', modrm: true, byte: true, lockable: true, exec: unary(inc) });
def('FE/1', { name: 'dec', modrm: true, byte: true, lockable: true, exec: unary(dec) });
def('FF/0', { name: 'inc', modrm: true, lockable: true, exec: unary(inc) });
def('FF/1', { name: 'dec', modrm: true, lockable: true, exec: unary(dec) });
def('F6/2', { name: 'not', byte: true, lockable: true, exec: unary(not) });
def('F7/2', { name: 'not', lockable: true, exec: unary(not) });
def('F6/3', { name: 'neg', byte: true, lockable: true, exec: unary(neg) });
def('F7/3', { name: 'neg', lockable: true, exec: unary(neg) });
// 40+r / 48+r: INC/DEC r16/r32 outside 64-bit mode (REX there).
const incDecReg = (fn: typeof inc): Handler => (c, i) => {
  const sz = i.osz;
  const r = fn(c, sz, c.rlo[i.reg] & (sz === 2 ? 0xffff : -1), 0);
  if (sz === 2) c.rlo[i.reg] = (c.rlo[i.reg] & ~0xffff) | r; else c.rlo[i.reg] = r;
};
def('40+r', { name: 'inc', no64: true, exec: incDecReg(inc) });
def('48+r', { name: 'dec', no64: true, exec: incDecReg(dec) });

// ---- multiplication and division ----

function big64(lo: number, hi: number): bigint { return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0); }
function sbig64(lo: number, hi: number): bigint { return (BigInt(hi) << 32n) | BigInt(lo >>> 0); }

function mulFlags(c: Cpu, overflow: boolean, lowResult: number, sz: number): void {
  setArithFlags(c, (overflow ? CF | OF : 0) | PARITY[lowResult & 0xff] | ((lowResult & signBit(sz === 8 ? 4 : sz)) ? SF : 0) |
    (trunc(lowResult, sz === 8 ? 4 : sz) === 0 ? ZF : 0));
}

const mul: Handler = (c, i) => {
  const sz = i.osz;
  const src = readRm(c, i), srcHi = c.tHi;
  switch (sz) {
    case 1: { const r = (c.rlo[RAX] & 0xff) * src; c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | r; mulFlags(c, (r >>> 8) !== 0, r, 1); break; }
    case 2: {
      const r = (c.rlo[RAX] & 0xffff) * src;
      c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | (r & 0xffff); c.rlo[RDX] = (c.rlo[RDX] & ~0xffff) | (r >>> 16);
      mulFlags(c, (r >>> 16) !== 0, r, 2); break;
    }
    case 4: {
      mul32x32(c.rlo[RAX], src);
      const lo = W[0], hi = W[1];
      c.rlo[RAX] = lo; c.rhi[RAX] = 0; c.rlo[RDX] = hi; c.rhi[RDX] = 0;
      mulFlags(c, hi !== 0, lo, 4); break;
    }
    default: {
      mul64x64(c.rlo[RAX], c.rhi[RAX], src, srcHi, false);
      c.rlo[RAX] = W[0]; c.rhi[RAX] = W[1]; c.rlo[RDX] = W[2]; c.rhi[RDX] = W[3];
      mulFlags(c, (W[2] | W[3]) !== 0, W[0], 8);
    }
  }
};

const imul1: Handler = (c, i) => {
  const sz = i.osz;
  const src = readRm(c, i), srcHi = c.tHi;
  switch (sz) {
    case 1: {
      const r = ((c.rlo[RAX] << 24) >> 24) * ((src << 24) >> 24);
      c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | (r & 0xffff);
      mulFlags(c, r !== ((r << 24) >> 24), r, 1); break;
    }
    case 2: {
      const r = ((c.rlo[RAX] << 16) >> 16) * ((src << 16) >> 16);
      c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | (r & 0xffff); c.rlo[RDX] = (c.rlo[RDX] & ~0xffff) | ((r >> 16) & 0xffff);
      mulFlags(c, r !== ((r << 16) >> 16), r, 2); break;
    }
    case 4: {
      // Signed 32 x 32: the 64-bit product of the sign-extended factors.
      mul64x64(c.rlo[RAX], c.rlo[RAX] >> 31, src, src >> 31, true);
      const lo = W[0], hi = W[1];
      c.rlo[RAX] = lo; c.rhi[RAX] = 0; c.rlo[RDX] = hi; c.rhi[RDX] = 0;
      mulFlags(c, hi !== (lo >> 31), lo, 4); break;
    }
    default: {
      mul64x64(c.rlo[RAX], c.rhi[RAX], src, srcHi, true);
      const fits = productFits64();
      c.rlo[RAX] = W[0]; c.rhi[RAX] = W[1]; c.rlo[RDX] = W[2]; c.rhi[RDX] = W[3];
      mulFlags(c, !fits, W[0], 8);
    }
  }
};

/**
 * IMUL r, r/m[, imm]: truncated signed product. CF=OF (overflow) are lazy
 * (FOp.Imul: computed from the operands only if something reads them), SF ZF PF
 * follow the result (undefined in the SDM).
 */
function imulTrunc(c: Cpu, sz: number, a: number, aHi: number, b: number, bHi: number): number {
  if (sz === 8) {
    mul64lo(a, aHi, b, bHi);
    const lo = W[0], hi = W[1];
    lazy64(c, FOp.Imul, a, aHi, b, bHi, lo, hi);
    c.tHi = hi;
    return lo;
  }
  if (sz === 4) {
    const lo = Math.imul(a, b);
    lazy(c, FOp.Imul, 4, a, b, lo);
    return lo;
  }
  const r = sext(a, sz) * sext(b, sz);
  mulFlags(c, r !== sext(r, sz), r, sz);
  return trunc(r, sz);
}

/** imul r64, r64 (register source): the common compiled form. */
const imulRegReg64: Handler = markPure((c, i) => {
  const R = c.rlo, H = c.rhi, d = i.reg, s = i.rm;
  const a = R[d], ah = H[d], b = R[s], bh = H[s];
  // mul64lo() inlined: low 64 bits of the product from 16-bit limbs of the low halves plus the cross terms.
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const ll = a0 * b0, lh = a0 * b1, hl = a1 * b0;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  const lo = (mid << 16) | (ll & 0xffff);
  const hi = (a1 * b1 + (lh >>> 16) + (hl >>> 16) + (mid >>> 16) + Math.imul(a, bh) + Math.imul(ah, b)) | 0;
  R[d] = lo; H[d] = hi;
  c.fOp = FOp.Imul; c.fSize = 8; c.fA = a; c.fAHi = ah; c.fB = b; c.fBHi = bh; c.fRes = lo; c.fResHi = hi;
});

const imul2: Handler = (c, i) => {
  const b = readRm(c, i), bHi = c.tHi;
  const a = readRegOp(c, i), aHi = c.tHi;
  const r = imulTrunc(c, i.osz, a, aHi, b, bHi);
  writeRegOp(c, i, r, c.tHi);
};
const imul3: Handler = (c, i) => {
  const a = readRm(c, i), aHi = c.tHi;
  const r = imulTrunc(c, i.osz, a, aHi, i.osz === 8 ? i.imm : trunc(i.imm, i.osz), i.imm >> 31);
  writeRegOp(c, i, r, c.tHi);
};

const div: Handler = (c, i) => {
  const sz = i.osz;
  const d = readRm(c, i), dHi = c.tHi;
  switch (sz) {
    case 1: {
      if (d === 0) fault(DE);
      const n = c.rlo[RAX] & 0xffff, q = Math.floor(n / d);
      if (q > 0xff) fault(DE);
      c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | ((n % d) << 8) | q; break;
    }
    case 2: {
      if (d === 0) fault(DE);
      const n = ((c.rlo[RDX] & 0xffff) * 65536) + (c.rlo[RAX] & 0xffff), q = Math.floor(n / d);
      if (q > 0xffff) fault(DE);
      c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | q; c.rlo[RDX] = (c.rlo[RDX] & ~0xffff) | (n % d); break;
    }
    case 4: {
      const dv = d >>> 0;
      if (dv === 0) fault(DE);
      const hi = c.rlo[RDX] >>> 0, lo = c.rlo[RAX] >>> 0;
      let q: number, r: number;
      if (hi === 0) { q = Math.floor(lo / dv); r = lo % dv; }
      else {
        if (hi >= dv) fault(DE);
        const n = (BigInt(hi) << 32n) | BigInt(lo);
        q = Number(n / BigInt(dv)); r = Number(n % BigInt(dv));
      }
      c.rlo[RAX] = q | 0; c.rhi[RAX] = 0; c.rlo[RDX] = r | 0; c.rhi[RDX] = 0; break;
    }
    default: {
      // Exact in doubles when RDX is 0 and both operands are below 2^53 (the common case).
      if ((c.rlo[RDX] | c.rhi[RDX]) === 0 && c.rhi[RAX] >= 0 && c.rhi[RAX] < 0x200000 && dHi >= 0 && dHi < 0x200000 && (d | dHi) !== 0) {
        const n = c.rhi[RAX] * 4294967296 + (c.rlo[RAX] >>> 0), dn = dHi * 4294967296 + (d >>> 0);
        const q = Math.floor(n / dn), r = n - q * dn;
        c.rlo[RAX] = q | 0; c.rhi[RAX] = Math.floor(q / 4294967296) | 0;
        c.rlo[RDX] = r | 0; c.rhi[RDX] = Math.floor(r / 4294967296) | 0;
        break;
      }
      const dv = big64(d, dHi);
      if (dv === 0n) fault(DE);
      const n = (big64(c.rlo[RDX], c.rhi[RDX]) << 64n) | big64(c.rlo[RAX], c.rhi[RAX]);
      const q = n / dv;
      if (q > 0xffffffffffffffffn) fault(DE);
      const r = n % dv;
      c.rlo[RAX] = Number(q & 0xffffffffn) | 0; c.rhi[RAX] = Number(q >> 32n) | 0;
      c.rlo[RDX] = Number(r & 0xffffffffn) | 0; c.rhi[RDX] = Number(r >> 32n) | 0;
    }
  }
};

const idiv: Handler = (c, i) => {
  const sz = i.osz;
  const d = readRm(c, i), dHi = c.tHi;
  let n: bigint, dv: bigint, bits: number;
  switch (sz) {
    case 1: n = BigInt((c.rlo[RAX] << 16) >> 16); dv = BigInt((d << 24) >> 24); bits = 8; break;
    case 2: n = BigInt(((c.rlo[RDX] & 0xffff) << 16 | (c.rlo[RAX] & 0xffff)) | 0); dv = BigInt((d << 16) >> 16); bits = 16; break;
    case 4: n = (BigInt(c.rlo[RDX]) << 32n) | BigInt(c.rlo[RAX] >>> 0); dv = BigInt(d | 0); bits = 32; break;
    default: n = (sbig64(c.rlo[RDX], c.rhi[RDX]) << 64n) | big64(c.rlo[RAX], c.rhi[RAX]); dv = sbig64(d, dHi); bits = 64;
  }
  if (dv === 0n) fault(DE);
  const q = n / dv, r = n % dv; // BigInt division truncates toward zero, as IDIV does
  if (BigInt.asIntN(bits, q) !== q) fault(DE);
  const qu = BigInt.asUintN(bits, q), ru = BigInt.asUintN(bits, r);
  switch (sz) {
    case 1: c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | (Number(ru) << 8) | Number(qu); break;
    case 2: c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | Number(qu); c.rlo[RDX] = (c.rlo[RDX] & ~0xffff) | Number(ru); break;
    case 4: c.rlo[RAX] = Number(qu) | 0; c.rhi[RAX] = 0; c.rlo[RDX] = Number(ru) | 0; c.rhi[RDX] = 0; break;
    default:
      c.rlo[RAX] = Number(qu & 0xffffffffn) | 0; c.rhi[RAX] = Number(qu >> 32n) | 0;
      c.rlo[RDX] = Number(ru & 0xffffffffn) | 0; c.rhi[RDX] = Number(ru >> 32n) | 0;
  }
};

def('F6/4', { name: 'mul', byte: true, exec: mul });
def('F7/4', { name: 'mul', exec: mul });
def('F6/5', { name: 'imul', byte: true, exec: imul1 });
def('F7/5', { name: 'imul', exec: imul1 });
def('F6/6', { name: 'div', byte: true, exec: div });
def('F7/6', { name: 'div', exec: div });
def('F6/7', { name: 'idiv', byte: true, exec: idiv });
def('F7/7', { name: 'idiv', exec: idiv });
def('0F AF', { name: 'imul', modrm: true, bind: (i) => (i.rm >= 0 && i.osz === 8 ? imulRegReg64 : imul2) });
def('69', { name: 'imul', modrm: true, imm: 'iz', exec: imul3 });
def('6B', { name: 'imul', modrm: true, imm: 'ib', exec: imul3 });
