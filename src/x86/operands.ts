/**
 * Operand access shared by the instruction handlers: registers by size
 * (byte registers by their byte code, see Insn.reg8), the ModRM r/m operand,
 * memory at linear addresses, and the stack. 64-bit values travel as a low
 * int32 returned and the high int32 in c.tHi.
 */
import type { Cpu } from './cpu.js';
import { faultErr } from './fault.js';
import type { Insn } from './insn.js';
import { ATTR_DB } from './segment-cache.js';
import { RSP, SS, SS_ } from './regs.js';

export function getReg8(c: Cpu, code: number): number {
  return code < 16 ? c.rlo[code] & 0xff : (c.rlo[code - 16] >> 8) & 0xff;
}
export function setReg8(c: Cpu, code: number, v: number): void {
  if (code < 16) c.rlo[code] = (c.rlo[code] & ~0xff) | (v & 0xff);
  else c.rlo[code - 16] = (c.rlo[code - 16] & ~0xff00) | ((v & 0xff) << 8);
}

/** Register `r` (byte code when sz is 1) of size sz; 64-bit hi in c.tHi. */
export function getReg(c: Cpu, r: number, sz: number): number {
  switch (sz) {
    case 1: return getReg8(c, r);
    case 2: return c.rlo[r] & 0xffff;
    case 4: return c.rlo[r];
    default: c.tHi = c.rhi[r]; return c.rlo[r];
  }
}
/** Writes register `r`; 32-bit writes zero bits 63:32, 8/16-bit writes merge. */
export function setReg(c: Cpu, r: number, sz: number, v: number, vHi = 0): void {
  switch (sz) {
    case 1: setReg8(c, r, v); break;
    case 2: c.rlo[r] = (c.rlo[r] & ~0xffff) | (v & 0xffff); break;
    case 4: c.rlo[r] = v; c.rhi[r] = 0; break;
    default: c.rlo[r] = v; c.rhi[r] = vHi; break;
  }
}

export function readMem(c: Cpu, lo: number, hi: number, sz: number): number {
  switch (sz) {
    case 1: return c.mmu.read8(lo, hi);
    case 2: return c.mmu.read16(lo, hi);
    case 4: return c.mmu.read32(lo, hi);
    default: return c.mmu.read64(lo, hi);
  }
}
/**
 * The memory operand of a read-modify-write instruction. The CPU reads it
 * with write intent (SDM vol. 3 §4.7: the access is a write, so a page the
 * instruction may read but not write faults before anything changes, and as
 * a write): the write access is checked first, then the value is read.
 */
export function readMemRmw(c: Cpu, lo: number, hi: number, sz: number): number {
  c.mmu.probeWrite(lo, hi, sz);
  return readMem(c, lo, hi, sz);
}
export function writeMem(c: Cpu, lo: number, hi: number, sz: number, v: number, vHi = 0): void {
  switch (sz) {
    case 1: c.mmu.write8(lo, hi, v); break;
    case 2: c.mmu.write16(lo, hi, v); break;
    case 4: c.mmu.write32(lo, hi, v); break;
    default: c.mmu.write64(lo, hi, v, vHi); break;
  }
}

/** The r/m operand at the instruction's operand size. */
export function readRm(c: Cpu, i: Insn, sz = i.osz): number {
  if (i.rm >= 0) return getReg(c, sz === 1 ? i.rm8 : i.rm, sz);
  const lo = i.ea(c, i);
  return readMem(c, lo, c.tHi, sz);
}
export function writeRm(c: Cpu, i: Insn, v: number, vHi = 0, sz = i.osz): void {
  if (i.rm >= 0) { setReg(c, sz === 1 ? i.rm8 : i.rm, sz, v, vHi); return; }
  const lo = i.ea(c, i);
  writeMem(c, lo, c.tHi, sz, v, vHi);
}
/** The reg operand at the instruction's operand size. */
export function readRegOp(c: Cpu, i: Insn, sz = i.osz): number {
  return getReg(c, sz === 1 ? i.reg8 : i.reg, sz);
}
export function writeRegOp(c: Cpu, i: Insn, v: number, vHi = 0, sz = i.osz): void {
  setReg(c, sz === 1 ? i.reg8 : i.reg, sz, v, vHi);
}

/** Masks a value to an operand size of 1, 2 or 4 bytes (4 gives int32). */
export function trunc(v: number, sz: number): number {
  return sz === 1 ? v & 0xff : sz === 2 ? v & 0xffff : v | 0;
}
/** Sign-extends the low `sz` bytes of v to int32. */
export function sext(v: number, sz: number): number {
  return sz === 1 ? (v << 24) >> 24 : sz === 2 ? (v << 16) >> 16 : v | 0;
}

// ---- stack ----

/** Stack address size in bytes: 8 in 64-bit mode, else SS.B. */
export function stackSize(c: Cpu): number {
  return c.codeSize === 64 ? 8 : (c.segAttr[SS] & ATTR_DB) ? 4 : 2;
}

/** Linear address of SS:(RSP + delta) for the current stack size; hi in c.tHi. */
function stackLinear(c: Cpu, delta: number): number {
  const ss = stackSize(c);
  if (ss === 8) {
    const s = (c.rlo[RSP] >>> 0) + (delta >>> 0);
    const hi = (c.rhi[RSP] + (delta >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
    if (((hi << 16) >> 16) !== hi) faultErr(SS_, 0);
    c.tHi = hi;
    return s | 0;
  }
  c.tHi = 0;
  const off = ss === 4 ? (c.rlo[RSP] + delta) | 0 : (c.rlo[RSP] + delta) & 0xffff;
  return (c.segBaseLo[SS] + off) | 0;
}

/** Adds delta to the stack pointer at the current stack size. */
export function adjustSp(c: Cpu, delta: number): void {
  const ss = stackSize(c);
  if (ss === 8) {
    const s = (c.rlo[RSP] >>> 0) + (delta >>> 0);
    c.rhi[RSP] = (c.rhi[RSP] + (delta >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
    c.rlo[RSP] = s | 0;
  } else if (ss === 4) {
    c.rlo[RSP] = (c.rlo[RSP] + delta) | 0;
  } else {
    c.rlo[RSP] = (c.rlo[RSP] & ~0xffff) | ((c.rlo[RSP] + delta) & 0xffff);
  }
}

export function push(c: Cpu, sz: number, v: number, vHi = 0): void {
  const lo = stackLinear(c, -sz);
  writeMem(c, lo, c.tHi, sz, v, vHi);
  adjustSp(c, -sz);
}

/** Pops sz bytes (hi in c.tHi for 8). */
export function pop(c: Cpu, sz: number): number {
  const lo = stackLinear(c, 0);
  const v = readMem(c, lo, c.tHi, sz);
  const h = c.tHi;
  adjustSp(c, sz);
  c.tHi = h;
  return v;
}

/** Reads sz bytes at RSP + offset without popping. */
export function peek(c: Cpu, offset: number, sz: number): number {
  const lo = stackLinear(c, offset);
  return readMem(c, lo, c.tHi, sz);
}
