/**
 * SSE bitwise logic, integer compares and sign masks (SDM vol. 2):
 * PAND/PANDN/POR/PXOR, ANDPS/ANDNPS/ORPS/XORPS and their PD forms,
 * PCMPEQB/W/D, PCMPGTB/W/D, PMOVMSKB, MOVMSKPS/MOVMSKPD.
 * The logic instructions of all three domains compute the same bits.
 */
import type { Handler } from '../insn.js';
import { def } from '../opcode-table.js';
import { setReg } from '../operands.js';
import { packed, sseOk, type Vec } from './sse.js';

type Fn = (a: Vec, b: Vec, r: Vec) => void;

const LOGIC: [number, string, Fn][] = [
  // [opcode byte of the 66 0F form, name, fn]; the PS/PD forms are 0F 54..57.
  [0xdb, 'pand', (a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = a.d[k] & b.d[k]; }],
  [0xdf, 'pandn', (a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = ~a.d[k] & b.d[k]; }],
  [0xeb, 'por', (a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = a.d[k] | b.d[k]; }],
  [0xef, 'pxor', (a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = a.d[k] ^ b.d[k]; }],
];
const hex = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');
for (const [op, name, fn] of LOGIC) def(`66 0F ${hex(op)}`, { name, modrm: true, exec: packed(fn) });
const FP_LOGIC: [number, string, Fn][] = [
  [0x54, 'and', LOGIC[0][2]], [0x55, 'andn', LOGIC[1][2]], [0x56, 'or', LOGIC[2][2]], [0x57, 'xor', LOGIC[3][2]],
];
for (const [op, name, fn] of FP_LOGIC) {
  def(`NP 0F ${hex(op)}`, { name: `${name}ps`, modrm: true, exec: packed(fn) });
  def(`66 0F ${hex(op)}`, { name: `${name}pd`, modrm: true, exec: packed(fn) });
}

// ---- compares: each lane becomes all ones when the condition holds, else zero ----
def('66 0F 74', { name: 'pcmpeqb', modrm: true, exec: packed((a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = a.b[k] === b.b[k] ? 0xff : 0; }) });
def('66 0F 75', { name: 'pcmpeqw', modrm: true, exec: packed((a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = a.w[k] === b.w[k] ? 0xffff : 0; }) });
def('66 0F 76', { name: 'pcmpeqd', modrm: true, exec: packed((a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = a.d[k] === b.d[k] ? -1 : 0; }) });
// PCMPGT compares signed lanes: a > b.
def('66 0F 64', { name: 'pcmpgtb', modrm: true, exec: packed((a, b, r) => { for (let k = 0; k < 16; k++) r.b[k] = a.sb[k] > b.sb[k] ? 0xff : 0; }) });
def('66 0F 65', { name: 'pcmpgtw', modrm: true, exec: packed((a, b, r) => { for (let k = 0; k < 8; k++) r.w[k] = a.sw[k] > b.sw[k] ? 0xffff : 0; }) });
def('66 0F 66', { name: 'pcmpgtd', modrm: true, exec: packed((a, b, r) => { for (let k = 0; k < 4; k++) r.d[k] = a.d[k] > b.d[k] ? -1 : 0; }) });

// ---- sign masks into a GPR (register source only; the result is zero-extended) ----

/** Bit k of the result = the sign bit of lane k (lanes of `bytes` bytes). */
function signMask(bytes: 1 | 4 | 8): Handler {
  return (c, i) => {
    sseOk(c);
    const x = c.xmm, s = i.rm << 2;
    let m = 0;
    if (bytes === 1) {
      for (let k = 0; k < 16; k++) m |= ((x[s + (k >> 2)] >>> (8 * (k & 3) + 7)) & 1) << k;
    } else if (bytes === 4) {
      for (let k = 0; k < 4; k++) m |= (x[s + k] >>> 31) << k;
    } else {
      m = (x[s + 1] >>> 31) | ((x[s + 3] >>> 31) << 1);
    }
    setReg(c, i.reg, 4, m);
  };
}
def('66 0F D7.r', { name: 'pmovmskb', modrm: true, exec: signMask(1) });
def('NP 0F 50.r', { name: 'movmskps', modrm: true, exec: signMask(4) });
def('66 0F 50.r', { name: 'movmskpd', modrm: true, exec: signMask(8) });
