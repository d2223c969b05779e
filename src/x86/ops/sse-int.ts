/**
 * SSE2 packed integer arithmetic (SDM vol. 2), all `66 0F xx xmm1, xmm2/m128`:
 * PADDB/W/D/Q, PSUBB/W/D/Q (wrapping), PADDUSB/W, PADDSB/W, PSUBUSB/W, PSUBSB/W
 * (saturating), PMULLW, PMULHW, PMULHUW, PMULUDQ, PMADDWD, PMINUB, PMAXUB,
 * PMINSW, PMAXSW, PAVGB, PAVGW, PSADBW.
 */
import { mul32x32, W } from '../wide-mul.js';
import { def } from '../opcode-table.js';
import { packed, type Vec } from './sse.js';

type Fn = (a: Vec, b: Vec, r: Vec) => void;

const sat = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/** 32x32 -> 64-bit unsigned product of a and b (uint32 values), into r.d[k], r.d[k+1]. */
function mulU32(a: number, b: number, r: Vec, k: number): void {
  mul32x32(a, b);
  r.d[k] = W[0];
  r.d[k + 1] = W[1];
}

const OPS: [number, string, Fn][] = [
  [0xfc, 'paddb', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = a.b[k] + b.b[k]; }],
  [0xfd, 'paddw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = a.w[k] + b.w[k]; }],
  [0xfe, 'paddd', (a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = (a.d[k] + b.d[k]) | 0; }],
  [0xd4, 'paddq', (a, b, r) => {
    for (let k = 0; k < 4; k += 2) {
      const s = a.ud[k] + b.ud[k];
      r.d[k] = s | 0;
      r.d[k + 1] = (a.d[k + 1] + b.d[k + 1] + (s > 0xffffffff ? 1 : 0)) | 0;
    }
  }],
  [0xf8, 'psubb', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = a.b[k] - b.b[k]; }],
  [0xf9, 'psubw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = a.w[k] - b.w[k]; }],
  [0xfa, 'psubd', (a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = (a.d[k] - b.d[k]) | 0; }],
  [0xfb, 'psubq', (a, b, r) => {
    for (let k = 0; k < 4; k += 2) {
      const borrow = a.ud[k] < b.ud[k] ? 1 : 0;
      r.d[k] = (a.d[k] - b.d[k]) | 0;
      r.d[k + 1] = (a.d[k + 1] - b.d[k + 1] - borrow) | 0;
    }
  }],
  [0xdc, 'paddusb', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = sat(a.b[k] + b.b[k], 0, 0xff); }],
  [0xdd, 'paddusw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = sat(a.w[k] + b.w[k], 0, 0xffff); }],
  [0xec, 'paddsb', (a, b, r) => { for (let k = 0; k < 16; k++) r.sb[k] = sat(a.sb[k] + b.sb[k], -128, 127); }],
  [0xed, 'paddsw', (a, b, r) => { for (let k = 0; k < 8; k++) r.sw[k] = sat(a.sw[k] + b.sw[k], -32768, 32767); }],
  [0xd8, 'psubusb', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = sat(a.b[k] - b.b[k], 0, 0xff); }],
  [0xd9, 'psubusw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = sat(a.w[k] - b.w[k], 0, 0xffff); }],
  [0xe8, 'psubsb', (a, b, r) => { for (let k = 0; k < 16; k++) r.sb[k] = sat(a.sb[k] - b.sb[k], -128, 127); }],
  [0xe9, 'psubsw', (a, b, r) => { for (let k = 0; k < 8; k++) r.sw[k] = sat(a.sw[k] - b.sw[k], -32768, 32767); }],
  [0xd5, 'pmullw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = Math.imul(a.sw[k], b.sw[k]); }],
  [0xe5, 'pmulhw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = (a.sw[k] * b.sw[k]) >> 16; }],
  [0xe4, 'pmulhuw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = (a.w[k] * b.w[k]) >>> 16; }],
  // PMULUDQ: the even dwords, as unsigned 64-bit products.
  [0xf4, 'pmuludq', (a, b, r) => { const a0 = a.ud[0], a2 = a.ud[2]; mulU32(a0, b.ud[0], r, 0); mulU32(a2, b.ud[2], r, 2); }],
  // PMADDWD: signed word products, adjacent pairs summed into dwords (0x8000 pairs wrap to 0x80000000).
  [0xf5, 'pmaddwd', (a, b, r) => {
    for (let k = 0; k < 4; k++) r.d[k] = (a.sw[2 * k] * b.sw[2 * k] + a.sw[2 * k + 1] * b.sw[2 * k + 1]) | 0;
  }],
  [0xda, 'pminub', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = Math.min(a.b[k], b.b[k]); }],
  [0xde, 'pmaxub', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = Math.max(a.b[k], b.b[k]); }],
  [0xea, 'pminsw', (a, b, r) => { for (let k = 0; k < 8; k++) r.sw[k] = Math.min(a.sw[k], b.sw[k]); }],
  [0xee, 'pmaxsw', (a, b, r) => { for (let k = 0; k < 8; k++) r.sw[k] = Math.max(a.sw[k], b.sw[k]); }],
  [0xe0, 'pavgb', (a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = (a.b[k] + b.b[k] + 1) >> 1; }],
  [0xe3, 'pavgw', (a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = (a.w[k] + b.w[k] + 1) >> 1; }],
  // PSADBW: per qword, the sum of absolute byte differences in the low word; the rest zero.
  [0xf6, 'psadbw', (a, b, r) => {
    for (let q = 0; q < 2; q++) {
      let s = 0;
      for (let k = 8 * q; k < 8 * q + 8; k++) s += Math.abs(a.b[k] - b.b[k]);
      r.d[2 * q] = s; r.d[2 * q + 1] = 0;
    }
  }],
];
for (const [op, name, fn] of OPS) {
  def(`66 0F ${op.toString(16).toUpperCase()}`, { name, modrm: true, exec: packed(fn) });
}
