/**
 * SSE data movement and logic as compilers and hypercall code use them. The
 * snippet contract carries no XMM state, so every case loads its XMM inputs
 * from the data window, runs the instruction under test, and stores the XMM
 * result back to the window (or moves it to a GPR), where it is compared.
 */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES } from '../flag-masks.js';
import { form, type Form } from './form.js';

function xmm(b: CaseBuilder, not?: number): number {
  for (;;) {
    const n = b.rng.int(16);
    if (n !== not) return n;
  }
}

/** A 16-byte memory operand (aligned when the instruction requires it). */
function m128(b: CaseBuilder, aligned: boolean): string {
  return b.memOp(16, { align: aligned ? 16 : 1 }).text;
}

function sse(id: string, gen: (b: CaseBuilder) => void): Form {
  return form(`sse/${id}`, (b) => {
    b.setDefinedFlags(FLAG_RULES.none.defined);
    gen(b);
  });
}

const MOVES: ReadonlyArray<[string, boolean]> = [['movdqa', true], ['movdqu', false], ['movaps', true], ['movups', false], ['movapd', true], ['movupd', false]];

/** Packed operations with an xmm, xmm/m128 form; memory operands of legacy SSE must be 16-byte aligned. */
const PACKED = ['pxor', 'por', 'pand', 'pandn', 'xorps', 'andps', 'orps', 'andnps', 'xorpd', 'andpd', 'orpd', 'andnpd',
  'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq',
  'punpcklbw', 'punpcklwd', 'punpckldq', 'punpcklqdq', 'punpckhbw', 'punpckhqdq'];

function packedForms(op: string): Form[] {
  return [
    sse(`${op} xmm, xmm`, (b) => {
      const a = xmm(b);
      const c = b.rng.chance(0.1) ? a : xmm(b, a);
      const m1 = b.memOp(16, {});
      const m2 = b.memOp(16, {});
      // Compares need equal lanes to be interesting: copy part of one input into the other.
      if (op.startsWith('pcmpeq')) for (let i = 0; i < 16; i++) if (b.rng.chance(0.5)) b.mem[m2.offset + i] = b.mem[m1.offset + i];
      b.emit(`movdqu xmm${a}, ${m1.text}`, `movdqu xmm${c}, ${m2.text}`, `${op} xmm${a}, xmm${c}`, `movdqu ${m128(b, false)}, xmm${a}`);
    }),
    sse(`${op} xmm, m128`, (b) => {
      const a = xmm(b);
      b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `${op} xmm${a}, ${m128(b, true)}`, `movdqu ${m128(b, false)}, xmm${a}`);
    }),
  ];
}

export const sseForms: readonly Form[] = [
  ...MOVES.flatMap(([op, aligned]) => [
    sse(`${op} xmm, m128 and m128, xmm`, (b) => {
      const a = xmm(b);
      b.emit(`${op} xmm${a}, ${m128(b, aligned)}`, `${op} ${m128(b, aligned)}, xmm${a}`);
    }),
    sse(`${op} xmm, xmm`, (b) => {
      const a = xmm(b);
      const c = xmm(b);
      b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `${op} xmm${c}, xmm${a}`, `movdqu ${m128(b, false)}, xmm${c}`);
    }),
  ]),
  // MOVQ xmm, m64/xmm zeroes bits 127:64; MOVD/MOVQ from a GPR zero everything above the moved part.
  sse('movq xmm, m64', (b) => {
    const a = xmm(b);
    b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `movq xmm${a}, ${b.memOp(8).text}`, `movdqu ${m128(b, false)}, xmm${a}`);
  }),
  sse('movq m64, xmm', (b) => {
    const a = xmm(b);
    b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `movq ${b.memOp(8).text}, xmm${a}`);
  }),
  sse('movq xmm, xmm (F3 0F 7E)', (b) => {
    const a = xmm(b);
    const c = xmm(b, a);
    b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `movdqu xmm${c}, ${m128(b, false)}`, `movq xmm${c}, xmm${a}`, `movdqu ${m128(b, false)}, xmm${c}`);
  }),
  sse('movd/movq xmm, r32/r64', (b) => {
    const a = xmm(b);
    const r = b.pickReg(b.cycle([4, 8] as const));
    b.randomize(r);
    b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `${r.size === 4 ? 'movd' : 'movq'} xmm${a}, ${r.name}`, `movdqu ${m128(b, false)}, xmm${a}`);
  }),
  sse('movd/movq r32/r64, xmm', (b) => {
    const a = xmm(b);
    const load = `movdqu xmm${a}, ${m128(b, false)}`;
    const r = b.pickReg(b.cycle([4, 8] as const));
    b.emit(load, `${r.size === 4 ? 'movd' : 'movq'} ${r.name}, xmm${a}`);
  }),
  sse('movd xmm, m32 and m32, xmm', (b) => {
    const a = xmm(b);
    b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `movd xmm${a}, ${b.memOp(4).text}`, `movdqu ${m128(b, false)}, xmm${a}`, `movd ${b.memOp(4).text}, xmm${a}`);
  }),
  ...PACKED.flatMap(packedForms),
  sse('pmovmskb r32, xmm', (b) => {
    const a = xmm(b);
    const load = `movdqu xmm${a}, ${m128(b, false)}`;
    b.emit(load, `pmovmskb ${b.pickReg(4).name}, xmm${a}`);
  }),
  sse('movmskps r32, xmm', (b) => {
    const a = xmm(b);
    const load = `movdqu xmm${a}, ${m128(b, false)}`;
    b.emit(load, `movmskps ${b.pickReg(4).name}, xmm${a}`);
  }),
  sse('pshufd xmm, xmm, imm8', (b) => {
    const a = xmm(b);
    const c = xmm(b);
    b.emit(`movdqu xmm${a}, ${m128(b, false)}`, `pshufd xmm${c}, xmm${a}, ${b.rng.int(256)}`, `movdqu ${m128(b, false)}, xmm${c}`);
  }),
];
