/**
 * SSE2 shifts (SDM vol. 2): PSLLW/D/Q, PSRLW/D/Q, PSRAW/D by an immediate
 * (66 0F 71/72/73 /n ib, register operand only) or by the low qword of
 * xmm2/m128; PSLLDQ/PSRLDQ shift the whole register by bytes.
 * A count beyond the lane width clears the lane (arithmetic shifts fill it with
 * the sign); a byte count above 15 clears the register.
 */
import type { Handler } from '../insn.js';
import { def } from '../opcode-table.js';
import { loadSrc, sseOk, VA, VB, type Vec } from './sse.js';

const enum Kind { Left, Right, Arith }

/** Shifts every lane of `bits` bits of v by `count` (0..255). */
function shiftLanes(v: Vec, bits: 16 | 32 | 64, kind: Kind, count: number): void {
  if (bits === 16) {
    for (let k = 0; k < 8; k++) {
      if (kind === Kind.Arith) v.sw[k] = v.sw[k] >> Math.min(count, 15);
      else if (count > 15) v.w[k] = 0;
      else v.w[k] = kind === Kind.Left ? v.w[k] << count : v.w[k] >>> count;
    }
  } else if (bits === 32) {
    for (let k = 0; k < 4; k++) {
      if (kind === Kind.Arith) v.d[k] = v.d[k] >> Math.min(count, 31);
      else if (count > 31) v.d[k] = 0;
      else v.d[k] = kind === Kind.Left ? v.d[k] << count : v.d[k] >>> count;
    }
  } else {
    for (let k = 0; k < 4; k += 2) {
      const lo = v.d[k], hi = v.d[k + 1];
      if (count > 63) { v.d[k] = 0; v.d[k + 1] = 0; }
      else if (count >= 32) {
        if (kind === Kind.Left) { v.d[k + 1] = lo << (count - 32); v.d[k] = 0; }
        else { v.d[k] = hi >>> (count - 32); v.d[k + 1] = 0; }
      } else if (count > 0) {
        if (kind === Kind.Left) { v.d[k + 1] = (hi << count) | (lo >>> (32 - count)); v.d[k] = lo << count; }
        else { v.d[k] = (lo >>> count) | (hi << (32 - count)); v.d[k + 1] = hi >>> count; }
      }
    }
  }
}

/** Shifts the whole 128-bit value by `count` bytes (0..255). */
function shiftBytes(v: Vec, left: boolean, count: number): void {
  const b = v.b;
  if (count > 15) { b.fill(0); return; }
  if (left) { b.copyWithin(count, 0, 16 - count); b.fill(0, 0, count); }
  else { b.copyWithin(0, count, 16); b.fill(0, 16 - count); }
}

/** Immediate forms: the register is ModRM.rm. */
function byImm(bits: 16 | 32 | 64 | 128, kind: Kind): Handler {
  return (c, i) => {
    sseOk(c);
    VA.fromXmm(c, i.rm);
    const n = i.imm & 0xff;
    if (bits === 128) shiftBytes(VA, kind === Kind.Left, n); else shiftLanes(VA, bits, kind, n);
    VA.toXmm(c, i.rm);
  };
}

/** Register forms: the count is the unsigned low qword of xmm2/m128 (m128 aligned). */
function byReg(bits: 16 | 32 | 64, kind: Kind): Handler {
  return (c, i) => {
    sseOk(c);
    loadSrc(c, i, true, VB.d);
    const count = VB.d[1] !== 0 || VB.ud[0] > 255 ? 255 : VB.ud[0];
    VA.fromXmm(c, i.reg);
    shiftLanes(VA, bits, kind, count);
    VA.toXmm(c, i.reg);
  };
}

const IMM: [string, string, 16 | 32 | 64 | 128, Kind][] = [
  ['66 0F 71/2.r', 'psrlw', 16, Kind.Right], ['66 0F 71/4.r', 'psraw', 16, Kind.Arith], ['66 0F 71/6.r', 'psllw', 16, Kind.Left],
  ['66 0F 72/2.r', 'psrld', 32, Kind.Right], ['66 0F 72/4.r', 'psrad', 32, Kind.Arith], ['66 0F 72/6.r', 'pslld', 32, Kind.Left],
  ['66 0F 73/2.r', 'psrlq', 64, Kind.Right], ['66 0F 73/6.r', 'psllq', 64, Kind.Left],
  ['66 0F 73/3.r', 'psrldq', 128, Kind.Right], ['66 0F 73/7.r', 'pslldq', 128, Kind.Left],
];
for (const [spec, name, bits, kind] of IMM) def(spec, { name, imm: 'ib', exec: byImm(bits, kind) });

const REG: [string, string, 16 | 32 | 64, Kind][] = [
  ['66 0F D1', 'psrlw', 16, Kind.Right], ['66 0F E1', 'psraw', 16, Kind.Arith], ['66 0F F1', 'psllw', 16, Kind.Left],
  ['66 0F D2', 'psrld', 32, Kind.Right], ['66 0F E2', 'psrad', 32, Kind.Arith], ['66 0F F2', 'pslld', 32, Kind.Left],
  ['66 0F D3', 'psrlq', 64, Kind.Right], ['66 0F F3', 'psllq', 64, Kind.Left],
];
for (const [spec, name, bits, kind] of REG) def(spec, { name, modrm: true, exec: byReg(bits, kind) });
