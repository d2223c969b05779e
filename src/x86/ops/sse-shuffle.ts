/**
 * SSE lane rearrangement (SDM vol. 2): interleaves (PUNPCKL/H BW WD DQ QDQ,
 * UNPCKLPS/UNPCKHPS/UNPCKLPD/UNPCKHPD), saturating packs (PACKSSWB, PACKSSDW,
 * PACKUSWB), shuffles (PSHUFD, PSHUFLW, PSHUFHW, SHUFPS, SHUFPD) and word
 * insert/extract (PINSRW, PEXTRW).
 */
import { def } from '../opcode-table.js';
import { readRm, setReg } from '../operands.js';
import { packed, sse, type Vec } from './sse.js';

type Fn = (a: Vec, b: Vec, r: Vec, imm: number) => void;

/**
 * Interleave lanes of `bytes` bytes from the low (high = false) or high half:
 * result lane 2k = destination lane base+k, lane 2k+1 = source lane base+k.
 */
function unpack(bytes: number, high: boolean): Fn {
  return (a, b, r) => {
    const n = 16 / bytes, base = high ? n / 2 : 0;
    for (let k = 0; k < n / 2; k++) {
      for (let j = 0; j < bytes; j++) {
        r.b[2 * k * bytes + j] = a.b[(base + k) * bytes + j];
        r.b[(2 * k + 1) * bytes + j] = b.b[(base + k) * bytes + j];
      }
    }
  };
}

const UNPACK: [string, string, number, boolean][] = [
  ['66 0F 60', 'punpcklbw', 1, false], ['66 0F 61', 'punpcklwd', 2, false],
  ['66 0F 62', 'punpckldq', 4, false], ['66 0F 6C', 'punpcklqdq', 8, false],
  ['66 0F 68', 'punpckhbw', 1, true], ['66 0F 69', 'punpckhwd', 2, true],
  ['66 0F 6A', 'punpckhdq', 4, true], ['66 0F 6D', 'punpckhqdq', 8, true],
  ['NP 0F 14', 'unpcklps', 4, false], ['NP 0F 15', 'unpckhps', 4, true],
  ['66 0F 14', 'unpcklpd', 8, false], ['66 0F 15', 'unpckhpd', 8, true],
];
for (const [spec, name, bytes, high] of UNPACK) def(spec, { name, modrm: true, exec: packed(unpack(bytes, high)) });

// ---- packs: destination lanes fill the low half, source lanes the high half ----
const sat = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);
def('66 0F 63', {
  name: 'packsswb', modrm: true,
  exec: packed((a, b, r) => { for (let k = 0; k < 8; k++) { r.sb[k] = sat(a.sw[k], -128, 127); r.sb[k + 8] = sat(b.sw[k], -128, 127); } }),
});
def('66 0F 67', {
  name: 'packuswb', modrm: true,
  exec: packed((a, b, r) => { for (let k = 0; k < 8; k++) { r.b[k] = sat(a.sw[k], 0, 255); r.b[k + 8] = sat(b.sw[k], 0, 255); } }),
});
def('66 0F 6B', {
  name: 'packssdw', modrm: true,
  exec: packed((a, b, r) => { for (let k = 0; k < 4; k++) { r.sw[k] = sat(a.d[k], -32768, 32767); r.sw[k + 4] = sat(b.d[k], -32768, 32767); } }),
});

// ---- shuffles: imm8 holds 2-bit (1-bit for SHUFPD) lane selectors, lowest lane first ----
def('66 0F 70', {
  name: 'pshufd', modrm: true, imm: 'ib',
  exec: packed((_a, b, r, imm) => { for (let k = 0; k < 4; k++) r.d[k] = b.d[(imm >> (2 * k)) & 3]; }),
});
def('F2 0F 70', {
  name: 'pshuflw', modrm: true, imm: 'ib',
  exec: packed((_a, b, r, imm) => {
    for (let k = 0; k < 4; k++) r.w[k] = b.w[(imm >> (2 * k)) & 3];
    r.d[2] = b.d[2]; r.d[3] = b.d[3];
  }),
});
def('F3 0F 70', {
  name: 'pshufhw', modrm: true, imm: 'ib',
  exec: packed((_a, b, r, imm) => {
    r.d[0] = b.d[0]; r.d[1] = b.d[1];
    for (let k = 0; k < 4; k++) r.w[4 + k] = b.w[4 + ((imm >> (2 * k)) & 3)];
  }),
});
// SHUFPS: the low two dwords come from the destination, the high two from the source.
def('NP 0F C6', {
  name: 'shufps', modrm: true, imm: 'ib',
  exec: packed((a, b, r, imm) => {
    r.d[0] = a.d[imm & 3]; r.d[1] = a.d[(imm >> 2) & 3];
    r.d[2] = b.d[(imm >> 4) & 3]; r.d[3] = b.d[(imm >> 6) & 3];
  }),
});
def('66 0F C6', {
  name: 'shufpd', modrm: true, imm: 'ib',
  exec: packed((a, b, r, imm) => {
    const q0 = 2 * (imm & 1), q1 = 2 * ((imm >> 1) & 1);
    r.d[0] = a.d[q0]; r.d[1] = a.d[q0 + 1];
    r.d[2] = b.d[q1]; r.d[3] = b.d[q1 + 1];
  }),
});

// ---- word insert/extract ----
// PEXTRW r32/r64, xmm, imm8 (66 0F C5, register form): the word, zero-extended.
def('66 0F C5.r', {
  name: 'pextrw', modrm: true, imm: 'ib',
  exec: sse((c, i) => {
    const k = i.imm & 7;
    setReg(c, i.reg, 4, (c.xmm[(i.rm << 2) + (k >> 1)] >>> (16 * (k & 1))) & 0xffff);
  }),
});
// PINSRW xmm, r32/m16, imm8: a memory operand is 16 bits, a register gives its low word.
def('66 0F C4', {
  name: 'pinsrw', modrm: true, imm: 'ib',
  exec: sse((c, i) => {
    const v = readRm(c, i, i.rm >= 0 ? 4 : 2) & 0xffff;
    const k = i.imm & 7, d = (i.reg << 2) + (k >> 1), sh = 16 * (k & 1);
    c.xmm[d] = (c.xmm[d] & ~(0xffff << sh)) | (v << sh);
  }),
});
