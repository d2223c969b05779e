/**
 * SSE data movement (SDM vol. 2): full-register moves (MOVDQA/MOVDQU,
 * MOVAPS/MOVUPS, MOVAPD/MOVUPD, LDDQU), scalar moves (MOVSS, MOVSD, MOVQ, MOVD),
 * half-register moves (MOVLPS/MOVHPS/MOVLPD/MOVHPD, MOVHLPS/MOVLHPS) and the
 * non-temporal stores (MOVNTDQ, MOVNTPS, MOVNTPD, MOVNTI; caching hints only,
 * so they are plain stores here).
 *
 * Encoding: the XMM register in ModRM.reg is Insn.reg; ModRM.rm is Insn.rm
 * (an XMM register, or a GPR for MOVD/MOVQ with a GPR operand) or memory.
 */
import type { Cpu } from '../cpu.js';
import type { Handler, Insn } from '../insn.js';
import { def } from '../opcode-table.js';
import { readRm, readRegOp, writeRm } from '../operands.js';
import { loadSrc, requireAligned, sse, sseOk, write128 } from './sse.js';

/** xmm1 <- xmm2/m128. */
const load128 = (aligned: boolean): Handler => (c, i) => {
  sseOk(c);
  const x = c.xmm;
  if (i.rm >= 0) {
    const d = i.reg << 2, s = i.rm << 2;
    x[d] = x[s]; x[d + 1] = x[s + 1]; x[d + 2] = x[s + 2]; x[d + 3] = x[s + 3];
    return;
  }
  loadSrc(c, i, aligned, tmp);
  x.set(tmp, i.reg << 2);
};
const tmp = new Int32Array(4);

/** xmm2/m128 <- xmm1. */
const store128 = (aligned: boolean): Handler => (c, i) => {
  sseOk(c);
  const x = c.xmm, s = i.reg << 2;
  if (i.rm >= 0) {
    const d = i.rm << 2;
    x[d] = x[s]; x[d + 1] = x[s + 1]; x[d + 2] = x[s + 2]; x[d + 3] = x[s + 3];
    return;
  }
  const lo = i.ea(c, i), hi = c.tHi;
  if (aligned) requireAligned(lo);
  write128(c, lo, hi, x, s);
};

const FULL: [string, string, string, boolean][] = [
  // [load opcode, store opcode, name, aligned]
  ['NP 0F 10', 'NP 0F 11', 'movups', false],
  ['66 0F 10', '66 0F 11', 'movupd', false],
  ['NP 0F 28', 'NP 0F 29', 'movaps', true],
  ['66 0F 28', '66 0F 29', 'movapd', true],
  ['66 0F 6F', '66 0F 7F', 'movdqa', true],
  ['F3 0F 6F', 'F3 0F 7F', 'movdqu', false],
];
for (const [ld, st, name, aligned] of FULL) {
  def(ld, { name, modrm: true, exec: load128(aligned) });
  def(st, { name, modrm: true, exec: store128(aligned) });
}
def('F2 0F F0.m', { name: 'lddqu', modrm: true, exec: load128(false) });
def('66 0F E7.m', { name: 'movntdq', modrm: true, exec: store128(true) });
def('NP 0F 2B.m', { name: 'movntps', modrm: true, exec: store128(true) });
def('66 0F 2B.m', { name: 'movntpd', modrm: true, exec: store128(true) });

// MOVNTI m32/m64, r32/r64 is an SSE2 instruction on GPRs: no CR0/CR4 checks apply (SDM MOVNTI).
def('NP 0F C3.m', { name: 'movnti', modrm: true, exec: (c, i) => { const v = readRegOp(c, i); writeRm(c, i, v, c.tHi); } });

// ---- scalar moves: the low `dwords` dwords; a load from memory zeroes the rest ----

/**
 * MOVSS/MOVSD/MOVQ loads. Register sources merge into the destination's low part,
 * except MOVQ (F3 0F 7E), which zeroes bits 127:64 in both forms.
 */
const loadLow = (dwords: 1 | 2, zeroFromReg: boolean): Handler => (c, i) => {
  sseOk(c);
  const x = c.xmm, d = i.reg << 2;
  if (i.rm >= 0) {
    const s = i.rm << 2;
    x[d] = x[s];
    if (dwords === 2) x[d + 1] = x[s + 1];
    if (zeroFromReg) { x[d + 2] = 0; x[d + 3] = 0; }
    return;
  }
  const lo = i.ea(c, i), hi = c.tHi;
  if (dwords === 1) {
    x[d] = c.mmu.read32(lo, hi); x[d + 1] = 0;
  } else {
    x[d] = c.mmu.read64(lo, hi); x[d + 1] = c.tHi;
  }
  x[d + 2] = 0; x[d + 3] = 0;
};
/** MOVSS/MOVSD/MOVQ stores; MOVQ (66 0F D6) to a register zeroes its bits 127:64. */
const storeLow = (dwords: 1 | 2, zeroToReg: boolean): Handler => (c, i) => {
  sseOk(c);
  const x = c.xmm, s = i.reg << 2;
  if (i.rm >= 0) {
    const d = i.rm << 2;
    x[d] = x[s];
    if (dwords === 2) x[d + 1] = x[s + 1];
    if (zeroToReg) { x[d + 2] = 0; x[d + 3] = 0; }
    return;
  }
  const lo = i.ea(c, i), hi = c.tHi;
  if (dwords === 1) c.mmu.write32(lo, hi, x[s]);
  else c.mmu.write64(lo, hi, x[s], x[s + 1]);
};
def('F3 0F 10', { name: 'movss', modrm: true, exec: loadLow(1, false) });
def('F3 0F 11', { name: 'movss', modrm: true, exec: storeLow(1, false) });
def('F2 0F 10', { name: 'movsd', modrm: true, exec: loadLow(2, false) });
def('F2 0F 11', { name: 'movsd', modrm: true, exec: storeLow(2, false) });
def('F3 0F 7E', { name: 'movq', modrm: true, exec: loadLow(2, true) });
def('66 0F D6', { name: 'movq', modrm: true, exec: storeLow(2, true) });

// ---- MOVD/MOVQ between XMM and r/m32, r/m64 (66 [REX.W] 0F 6E / 7E) ----
const movdName = (i: Insn): string => (i.osz === 8 ? 'movq' : 'movd');
const movdToXmm: Handler = (c, i) => {
  sseOk(c);
  const v = readRm(c, i), vHi = i.osz === 8 ? c.tHi : 0;
  const x = c.xmm, d = i.reg << 2;
  x[d] = v; x[d + 1] = vHi; x[d + 2] = 0; x[d + 3] = 0;
};
const movdFromXmm: Handler = (c, i) => {
  sseOk(c);
  const x = c.xmm, s = i.reg << 2;
  writeRm(c, i, x[s], x[s + 1]);
};
def('66 0F 6E', { name: 'movd', modrm: true, bind: (i) => { i.name = movdName(i); return movdToXmm; } });
def('66 0F 7E', { name: 'movd', modrm: true, bind: (i) => { i.name = movdName(i); return movdFromXmm; } });

// ---- 64-bit halves: MOVLPS/MOVLPD, MOVHPS/MOVHPD (memory), MOVHLPS/MOVLHPS (registers) ----

/** Qword `half` (0 low, 1 high) of xmm1 <- m64. */
const loadHalf = (half: number) => sse((c, i) => {
  const lo = i.ea(c, i);
  const v = c.mmu.read64(lo, c.tHi), d = (i.reg << 2) + 2 * half;
  c.xmm[d] = v; c.xmm[d + 1] = c.tHi;
});
/** m64 <- qword `half` of xmm1. */
const storeHalf = (half: number) => sse((c, i) => {
  const lo = i.ea(c, i), s = (i.reg << 2) + 2 * half;
  c.mmu.write64(lo, c.tHi, c.xmm[s], c.xmm[s + 1]);
});
/** Qword `to` of xmm1 <- qword `from` of xmm2. */
const moveHalf = (to: number, from: number) => sse((c: Cpu, i: Insn) => {
  const d = (i.reg << 2) + 2 * to, s = (i.rm << 2) + 2 * from;
  c.xmm[d] = c.xmm[s]; c.xmm[d + 1] = c.xmm[s + 1];
});
def('NP 0F 12.m', { name: 'movlps', modrm: true, exec: loadHalf(0) });
def('NP 0F 12.r', { name: 'movhlps', modrm: true, exec: moveHalf(0, 1) });
def('NP 0F 13.m', { name: 'movlps', modrm: true, exec: storeHalf(0) });
def('NP 0F 16.m', { name: 'movhps', modrm: true, exec: loadHalf(1) });
def('NP 0F 16.r', { name: 'movlhps', modrm: true, exec: moveHalf(1, 0) });
def('NP 0F 17.m', { name: 'movhps', modrm: true, exec: storeHalf(1) });
def('66 0F 12.m', { name: 'movlpd', modrm: true, exec: loadHalf(0) });
def('66 0F 13.m', { name: 'movlpd', modrm: true, exec: storeHalf(0) });
def('66 0F 16.m', { name: 'movhpd', modrm: true, exec: loadHalf(1) });
def('66 0F 17.m', { name: 'movhpd', modrm: true, exec: storeHalf(1) });
