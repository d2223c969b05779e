/**
 * Shared by the SSE instruction files (sse-move, sse-logic, sse-int,
 * sse-shuffle, sse-shift, fxsave): the availability rule, 128-bit memory
 * operands with their alignment rule, and scratch vectors with lane views.
 *
 * XMM state: c.xmm holds 16 registers x 4 dwords, register r at c.xmm[4r..4r+3],
 * dword 0 lowest. Lanes are little-endian, as in the guest's memory.
 */
import type { Cpu } from '../cpu.js';
import { fault, faultErr } from '../fault.js';
import type { Handler, Insn } from '../insn.js';
import { CR0_EM, CR0_TS, CR4_OSFXSR, GP, NM, UD } from '../regs.js';

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('the SSE lane views need a little-endian host');
}

/**
 * SSE/SSE2 instructions raise #UD when CR0.EM = 1 or CR4.OSFXSR = 0, and #NM
 * when CR0.TS = 1 (SDM vol. 2, "Protected Mode Exceptions" of every legacy SSE
 * instruction, e.g. MOVDQA, PXOR). #UD takes precedence over #NM.
 */
export function sseOk(c: Cpu): void {
  if ((c.cr0 & CR0_EM) || !(c.cr4 & CR4_OSFXSR)) fault(UD);
  if (c.cr0 & CR0_TS) fault(NM);
}

/** Wraps a handler with the availability check. */
export function sse(h: Handler): Handler {
  return (c, i) => { sseOk(c); h(c, i); };
}

/** Linear address lo/hi plus k (0..15): hi in c.tHi; only 64-bit code carries into bits 63:32. */
export function addrPlus(c: Cpu, lo: number, hi: number, k: number): number {
  const s = (lo >>> 0) + k;
  c.tHi = c.codeSize === 64 ? (hi + (s > 0xffffffff ? 1 : 0)) | 0 : 0;
  return s | 0;
}

/** #GP(0) unless 16-byte aligned ("if a memory operand is not aligned on a 16-byte boundary, regardless of segment"). */
export function requireAligned(lo: number): void {
  if (lo & 15) faultErr(GP, 0);
}

/** Reads 16 bytes at a linear address into out[o..o+3]; nothing is changed if either half faults. */
export function read128(c: Cpu, lo: number, hi: number, out: Int32Array, o: number): void {
  const a = c.mmu.read64(lo, hi), aHi = c.tHi;
  const lo2 = addrPlus(c, lo, hi, 8);
  const b = c.mmu.read64(lo2, c.tHi), bHi = c.tHi;
  out[o] = a; out[o + 1] = aHi; out[o + 2] = b; out[o + 3] = bHi;
}

/** Writes src[o..o+3] as 16 bytes; a store crossing a page is probed first so a #PF writes nothing. */
export function write128(c: Cpu, lo: number, hi: number, src: Int32Array, o: number): void {
  if ((lo & 0xfff) > 0xff0) c.mmu.probeWrite(lo, hi, 16);
  const a = src[o], aHi = src[o + 1], b = src[o + 2], bHi = src[o + 3];
  c.mmu.write64(lo, hi, a, aHi);
  const lo2 = addrPlus(c, lo, hi, 8);
  c.mmu.write64(lo2, c.tHi, b, bHi);
}

/**
 * The xmm/m128 source operand into out[0..3]. Legacy SSE instructions require
 * 16-byte aligned m128 operands unless they are explicitly unaligned moves.
 */
export function loadSrc(c: Cpu, i: Insn, aligned: boolean, out: Int32Array): void {
  if (i.rm >= 0) {
    const x = c.xmm, s = i.rm << 2;
    out[0] = x[s]; out[1] = x[s + 1]; out[2] = x[s + 2]; out[3] = x[s + 3];
    return;
  }
  const lo = i.ea(c, i), hi = c.tHi;
  if (aligned) requireAligned(lo);
  read128(c, lo, hi, out, 0);
}

/** A 128-bit scratch value with views of its lanes. */
export class Vec {
  readonly d = new Int32Array(4);
  readonly ud = new Uint32Array(this.d.buffer);
  readonly w = new Uint16Array(this.d.buffer);
  readonly sw = new Int16Array(this.d.buffer);
  readonly b = new Uint8Array(this.d.buffer);
  readonly sb = new Int8Array(this.d.buffer);

  /** Loads XMM register r. */
  fromXmm(c: Cpu, r: number): void {
    const x = c.xmm, s = r << 2, d = this.d;
    d[0] = x[s]; d[1] = x[s + 1]; d[2] = x[s + 2]; d[3] = x[s + 3];
  }
  /** Stores into XMM register r. */
  toXmm(c: Cpu, r: number): void {
    const x = c.xmm, s = r << 2, d = this.d;
    x[s] = d[0]; x[s + 1] = d[1]; x[s + 2] = d[2]; x[s + 3] = d[3];
  }
}

/** Scratch vectors: destination operand, source operand, result. */
export const VA = new Vec(), VB = new Vec(), VR = new Vec();

/**
 * A packed operation `xmm1, xmm2/m128` (m128 aligned): fn computes VR from
 * VA (xmm1) and VB (the source) and imm8; VR is written to xmm1.
 */
export function packed(fn: (a: Vec, b: Vec, r: Vec, imm: number) => void): Handler {
  return (c, i) => {
    sseOk(c);
    loadSrc(c, i, true, VB.d);
    VA.fromXmm(c, i.reg);
    fn(VA, VB, VR, i.imm & 0xff);
    VR.toXmm(c, i.reg);
  };
}
