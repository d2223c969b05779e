/**
 * The implicit operands of string instructions: RSI, RDI and RCX at the
 * instruction's address size (16, 32 or 64 bits, chosen by 0x67), and the
 * linear addresses seg:RSI and ES:RDI they designate (SDM vol. 1 §7.3.9).
 */
import type { Cpu } from '../cpu.js';
import { linear } from '../ea.js';
import type { Insn } from '../insn.js';
import { ES, RCX, RDI, RSI } from '../regs.js';

/** RSI/RDI/RCX (r) at address size asz in bytes; bits 63:32 in c.tHi. */
export function indexReg(c: Cpu, r: number, asz: number): number {
  c.tHi = asz === 8 ? c.rhi[r] : 0;
  return asz === 2 ? c.rlo[r] & 0xffff : c.rlo[r];
}

/**
 * Adds delta (a small int32) to register r at address size asz: 16-bit updates
 * keep bits 63:16, 32-bit updates zero bits 63:32 (as every 32-bit register write).
 */
export function addIndex(c: Cpu, r: number, delta: number, asz: number): void {
  if (asz === 2) {
    c.rlo[r] = (c.rlo[r] & ~0xffff) | ((c.rlo[r] + delta) & 0xffff);
  } else if (asz === 4) {
    c.rlo[r] = (c.rlo[r] + delta) | 0;
    c.rhi[r] = 0;
  } else {
    const s = (c.rlo[r] >>> 0) + delta;
    if (s > 0xffffffff) c.rhi[r] = (c.rhi[r] + 1) | 0;
    else if (s < 0) c.rhi[r] = (c.rhi[r] - 1) | 0;
    c.rlo[r] = s | 0;
  }
}

export function countIsZero(c: Cpu, asz: number): boolean {
  if (asz === 2) return (c.rlo[RCX] & 0xffff) === 0;
  if (asz === 4) return c.rlo[RCX] === 0;
  return (c.rlo[RCX] | c.rhi[RCX]) === 0;
}

/** RCX at the address size as a number, saturated to 2^32 (enough to bound a chunk). */
export function countValue(c: Cpu, asz: number): number {
  if (asz === 2) return c.rlo[RCX] & 0xffff;
  if (asz === 8 && c.rhi[RCX] !== 0) return 0x100000000;
  return c.rlo[RCX] >>> 0;
}

/** Linear address of the source seg:RSI (hi in c.tHi). */
export function srcLinear(c: Cpu, i: Insn): number {
  const off = indexReg(c, RSI, i.asz);
  return linear(c, i.seg, off, c.tHi, i.asz);
}
/** Linear address of the destination ES:RDI (hi in c.tHi); ES cannot be overridden. */
export function dstLinear(c: Cpu, i: Insn): number {
  const off = indexReg(c, RDI, i.asz);
  return linear(c, ES, off, c.tHi, i.asz);
}

