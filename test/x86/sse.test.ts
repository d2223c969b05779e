/**
 * SSE state and data movement (SDM vol. 2): moves between XMM registers, GPRs
 * and memory, alignment faults, logic with exact results, compares and masks,
 * shuffles, integer arithmetic, shifts, MXCSR, FXSAVE/FXRSTOR, and the
 * CR0/CR4 availability rules.
 *
 * runSnippet carries no XMM state, so every snippet loads its inputs from the
 * data window (xmm0 <- [RSI] = A at window offset 0, xmm1 <- [RDX] = B at 0x10)
 * and stores results back (to [RDI] = window offset 0x100, then +16 each) or
 * moves them to GPRs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { Cpu } from '../../src/x86/cpu.js';
import { NullCpuHost } from '../../src/x86/null-host.js';
import { ATTR_DB, ATTR_G, ATTR_P, ATTR_S } from '../../src/x86/segment-cache.js';
import { runSnippet } from '../../src/x86/snippet.js';
import { CR0_EM, CR0_PE, CR0_TS, CR4_OSFXSR, CS, DS, ES, FS, GS, SS } from '../../src/x86/regs.js';

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7;
const D = 0x10000000n;
const GP = 13, UD = 6, NM = 7;

interface Run { gpr: BigUint64Array; rflags: bigint; mem: Uint8Array; exception: number | null }

function snip(code: number[], data: Record<number, number[]>, regs: Record<number, bigint> = {}): Run {
  const gpr = new BigUint64Array(16);
  gpr[RSI] = D; gpr[RDX] = D + 0x10n; gpr[RDI] = D + 0x100n;
  for (const [r, v] of Object.entries(regs)) gpr[Number(r)] = v;
  const mem = new Uint8Array(4096);
  for (const [off, b] of Object.entries(data)) mem.set(b, Number(off));
  return runSnippet(new Uint8Array(code), { gpr, rflags: 2n, mem });
}
const out = (r: Run, k = 0, n = 16): number[] => [...r.mem.subarray(0x100 + 16 * k, 0x100 + 16 * k + n)];

// ---- vectors as little-endian byte lists ----
const le = (v: bigint, n: number): number[] => Array.from({ length: n }, (_, k) => Number((v >> BigInt(8 * k)) & 0xffn));
const dw = (...d: number[]): number[] => d.flatMap((x) => le(BigInt(x >>> 0), 4));
const w16 = (...w: number[]): number[] => [...w, ...new Array(8 - w.length).fill(0)].flatMap((x) => le(BigInt(x & 0xffff), 2));
const qw = (a: bigint, b: bigint): number[] => [...le(BigInt.asUintN(64, a), 8), ...le(BigInt.asUintN(64, b), 8)];
const b16 = (...b: number[]): number[] => [...b, ...new Array(16 - b.length).fill(0)];
const seq = (n: number, from = 0): number[] => Array.from({ length: n }, (_, k) => (from + k) & 0xff);
const fill = (n: number, v: number): number[] => new Array(n).fill(v);

// ---- encodings (GNU as, Intel syntax) ----
/** movdqu xmmN, [rsi] */
const loadX = (n: number): number[] => [0xf3, ...(n >= 8 ? [0x44] : []), 0x0f, 0x6f, 0x06 | ((n & 7) << 3)];
/** movdqu [rdi], xmmN; add rdi, 16 */
const storeX = (n: number): number[] => [0xf3, ...(n >= 8 ? [0x44] : []), 0x0f, 0x7f, 0x07 | ((n & 7) << 3), 0x48, 0x83, 0xc7, 0x10];
/** pcmpeqd xmmN, xmmN: all ones, to show which bits an instruction clears. */
const ones = (n: number): number[] => [0x66, 0x0f, 0x76, 0xc0 | (n << 3) | n];
const LOAD01 = [0xf3, 0x0f, 0x6f, 0x06, 0xf3, 0x0f, 0x6f, 0x0a]; // movdqu xmm0,[rsi]; movdqu xmm1,[rdx]

/**
 * Runs `op xmm0, xmm1` (ModRM C1) or `op xmm0, [rdx]` (ModRM 02) on A = xmm0 and
 * B = xmm1 = [rdx]; returns xmm0. `op` is the bytes before ModRM.
 */
function binop(op: number[], a: number[], b: number[], opts: { mem?: boolean; imm?: number } = {}): number[] {
  const code = [...LOAD01, ...op, opts.mem ? 0x02 : 0xc1, ...(opts.imm === undefined ? [] : [opts.imm]), ...storeX(0)];
  const r = snip(code, { 0: a, 0x10: b });
  assert.equal(r.exception, null, `exception ${r.exception}`);
  return out(r);
}

// ------------------------------------------------------------------ moves

test('MOVDQU/MOVUPS/MOVUPD/LDDQU move unaligned memory; MOVAPS/MOVDQA copy registers; XMM8-15 included', () => {
  const code = [
    0xf3, 0x44, 0x0f, 0x6f, 0x0e, // movdqu xmm9,[rsi]
    0xf3, 0x44, 0x0f, 0x7f, 0x0f, // movdqu [rdi],xmm9
    0x0f, 0x10, 0x16, //             movups xmm2,[rsi]
    0x44, 0x0f, 0x28, 0xf2, //       movaps xmm14,xmm2
    0x48, 0x83, 0xc7, 0x10, //       add rdi,0x10
    0x66, 0x44, 0x0f, 0x11, 0x37, // movupd [rdi],xmm14
    0x66, 0x44, 0x0f, 0x10, 0x3e, // movupd xmm15,[rsi]
    0x66, 0x41, 0x0f, 0x6f, 0xdf, // movdqa xmm3,xmm15
    0x48, 0x83, 0xc7, 0x10, //       add rdi,0x10
    0xf3, 0x0f, 0x7f, 0x1f, //       movdqu [rdi],xmm3
    0xf2, 0x0f, 0xf0, 0x26, //       lddqu xmm4,[rsi]
    0x48, 0x83, 0xc7, 0x10, //       add rdi,0x10
    0x0f, 0x11, 0x27, //             movups [rdi],xmm4
  ];
  const a = seq(16, 0x30);
  const r = snip(code, { 0x101: a }, { [RSI]: D + 0x101n, [RDI]: D + 0x203n });
  assert.equal(r.exception, null);
  for (let k = 0; k < 4; k++) assert.deepEqual([...r.mem.subarray(0x203 + 16 * k, 0x213 + 16 * k)], a, `copy ${k}`);
  assert.equal(r.mem[0x243], 0);
});

test('MOVDQA/MOVAPS/MOVAPD and MOVNTDQ/MOVNTPS/MOVNTPD raise #GP(0) on a misaligned operand; MOVNTI does not', () => {
  const loads = [[0x66, 0x0f, 0x6f, 0x06], [0x0f, 0x28, 0x0e], [0x66, 0x0f, 0x28, 0x16]]; // movdqa/movaps/movapd xmm, [rsi]
  const stores = [[0x66, 0x0f, 0x7f, 0x07], [0x0f, 0x29, 0x07], [0x66, 0x0f, 0x29, 0x07], // movdqa/movaps/movapd [rdi], xmm0
    [0x66, 0x0f, 0xe7, 0x07], [0x0f, 0x2b, 0x07], [0x66, 0x0f, 0x2b, 0x07]]; //               movntdq/movntps/movntpd [rdi], xmm0
  for (const code of loads) {
    assert.equal(snip(code, {}, { [RSI]: D + 0x108n }).exception, GP, code.join(' '));
    assert.equal(snip(code, {}, { [RSI]: D + 0x100n }).exception, null, code.join(' '));
  }
  for (const code of stores) {
    const r = snip([...ones(0), ...code], {}, { [RDI]: D + 0x208n });
    assert.equal(r.exception, GP, code.join(' '));
    assert.deepEqual([...r.mem.subarray(0x200, 0x220)], fill(32, 0), 'nothing stored');
    assert.deepEqual(out(snip([...ones(0), ...code], {}, { [RDI]: D + 0x100n })), fill(16, 0xff));
  }
  // movnti [rdi], rax (48 0F C3 07) and movnti [rdi], eax (0F C3 07): GPR stores, any alignment.
  let r = snip([0x48, 0x0f, 0xc3, 0x07], {}, { [RDI]: D + 0x103n, [RAX]: 0x1122334455667788n });
  assert.deepEqual([...r.mem.subarray(0x103, 0x10c)], [...le(0x1122334455667788n, 8), 0]);
  r = snip([0x0f, 0xc3, 0x07], {}, { [RDI]: D + 0x103n, [RAX]: 0x1122334455667788n });
  assert.deepEqual([...r.mem.subarray(0x103, 0x108)], [0x88, 0x77, 0x66, 0x55, 0]);
});

test('a packed operation with a misaligned m128 source raises #GP(0); with a register source it does not care', () => {
  // pxor xmm0, [rdx] (66 0F EF 02) with RDX = window + 0x18.
  assert.equal(snip([0x66, 0x0f, 0xef, 0x02], {}, { [RDX]: D + 0x18n }).exception, GP);
  assert.equal(snip([0x66, 0x0f, 0xef, 0x02], {}, { [RDX]: D + 0x20n }).exception, null);
});

test('MOVQ xmm, m64/xmm zeroes bits 127:64; MOVQ m64, xmm stores 8 bytes', () => {
  const code = [
    ...ones(3),
    0xf3, 0x0f, 0x7e, 0x1a, // movq xmm3,[rdx]
    ...storeX(3),
    0x66, 0x0f, 0xd6, 0x1b, // movq [rbx],xmm3
    ...ones(4),
    0xf3, 0x0f, 0x7e, 0xe3, // movq xmm4,xmm3
    ...storeX(4),
    0xf3, 0x0f, 0x6f, 0x2a, // movdqu xmm5,[rdx]
    ...ones(6),
    0x66, 0x0f, 0xd6, 0xee, // movq xmm6,xmm5 (66 0F D6, register form: zeroes 127:64 of xmm6)
    ...storeX(6),
  ];
  const b = seq(16, 1);
  const r = snip(code, { 0x10: b, 0x180: fill(16, 0xaa) }, { [RBX]: D + 0x180n });
  assert.equal(r.exception, null);
  assert.deepEqual(out(r, 0), [...seq(8, 1), ...fill(8, 0)]);
  assert.deepEqual([...r.mem.subarray(0x180, 0x190)], [...seq(8, 1), ...fill(8, 0xaa)]);
  assert.deepEqual(out(r, 1), [...seq(8, 1), ...fill(8, 0)]);
  assert.deepEqual(out(r, 2), [...seq(8, 1), ...fill(8, 0)]);
});

test('MOVD/MOVQ between XMM and GPRs: writes to XMM zero the rest, MOVD r32 zero-extends', () => {
  const code = [
    ...loadX(9),
    0x66, 0x4c, 0x0f, 0x7e, 0xc8, // movq rax,xmm9
    0x66, 0x44, 0x0f, 0x7e, 0xc9, // movd ecx,xmm9
    ...ones(6),
    0x66, 0x0f, 0x6e, 0xf3, //       movd xmm6,ebx
    ...storeX(6),
    ...ones(7),
    0x66, 0x48, 0x0f, 0x6e, 0xfb, // movq xmm7,rbx
    ...storeX(7),
    ...ones(1),
    0x66, 0x0f, 0x6e, 0x0e, //       movd xmm1,[rsi]
    ...storeX(1),
    0x66, 0x0f, 0x7e, 0x0f, //       movd [rdi],xmm1
  ];
  const a = seq(16, 0x11);
  const r = snip(code, { 0: a, 0x130: fill(8, 0xaa) }, { [RCX]: 0xffffffffffffffffn, [RBX]: 0xdeadbeefcafef00dn });
  assert.equal(r.exception, null);
  assert.equal(r.gpr[RAX], 0x1817161514131211n);
  assert.equal(r.gpr[RCX], 0x14131211n);
  assert.deepEqual(out(r, 0), [0x0d, 0xf0, 0xfe, 0xca, ...fill(12, 0)]);
  assert.deepEqual(out(r, 1), [0x0d, 0xf0, 0xfe, 0xca, 0xef, 0xbe, 0xad, 0xde, ...fill(8, 0)]);
  assert.deepEqual(out(r, 2), [0x11, 0x12, 0x13, 0x14, ...fill(12, 0)]);
  assert.deepEqual(out(r, 3, 8), [0x11, 0x12, 0x13, 0x14, 0xaa, 0xaa, 0xaa, 0xaa]);
});

test('MOVSS/MOVSD: loads from memory zero the rest, register moves merge, stores write 4/8 bytes', () => {
  const code = [
    ...ones(1), 0xf3, 0x0f, 0x10, 0x0e, // movss xmm1,[rsi]
    ...ones(2), 0xf2, 0x0f, 0x10, 0x16, // movsd xmm2,[rsi]
    ...ones(3), 0xf3, 0x0f, 0x10, 0xda, // movss xmm3,xmm2
    ...ones(4), 0xf2, 0x0f, 0x10, 0xe1, // movsd xmm4,xmm1
    ...storeX(1), ...storeX(2), ...storeX(3), ...storeX(4),
    0xf3, 0x0f, 0x11, 0x1f, //             movss [rdi],xmm3
    0x48, 0x83, 0xc7, 0x10, //             add rdi,0x10
    0xf2, 0x0f, 0x11, 0x27, //             movsd [rdi],xmm4
  ];
  const a = seq(16, 0x40);
  const r = snip(code, { 0: a, 0x140: fill(32, 0xaa) });
  assert.equal(r.exception, null);
  assert.deepEqual(out(r, 0), [...a.slice(0, 4), ...fill(12, 0)]);
  assert.deepEqual(out(r, 1), [...a.slice(0, 8), ...fill(8, 0)]);
  assert.deepEqual(out(r, 2), [...a.slice(0, 4), ...fill(12, 0xff)]);
  assert.deepEqual(out(r, 3), [...a.slice(0, 4), 0, 0, 0, 0, ...fill(8, 0xff)]);
  assert.deepEqual(out(r, 4), [...a.slice(0, 4), ...fill(12, 0xaa)]);
  assert.deepEqual(out(r, 5), [...a.slice(0, 4), 0, 0, 0, 0, ...fill(8, 0xaa)]);
});

test('MOVHLPS/MOVLHPS/MOVHPS/MOVLPS/MOVHPD/MOVLPD move 64-bit halves', () => {
  const code = [
    ...LOAD01,
    0x0f, 0x28, 0xd8, 0x0f, 0x12, 0xd9, // movaps xmm3,xmm0; movhlps xmm3,xmm1
    0x0f, 0x28, 0xe0, 0x0f, 0x16, 0xe1, // movaps xmm4,xmm0; movlhps xmm4,xmm1
    0x0f, 0x28, 0xe8, 0x0f, 0x16, 0x2a, // movaps xmm5,xmm0; movhps xmm5,[rdx]
    0x0f, 0x28, 0xf0, 0x0f, 0x12, 0x32, // movaps xmm6,xmm0; movlps xmm6,[rdx]
    0x0f, 0x28, 0xf8, 0x66, 0x0f, 0x16, 0x3a, // movaps xmm7,xmm0; movhpd xmm7,[rdx]
    ...storeX(3), ...storeX(4), ...storeX(5), ...storeX(6), ...storeX(7),
    0x0f, 0x17, 0x07, //                 movhps [rdi],xmm0
    0x48, 0x83, 0xc7, 0x08, //           add rdi,0x8
    0x66, 0x0f, 0x13, 0x0f, //           movlpd [rdi],xmm1
  ];
  const a = seq(16, 0x00), b = seq(16, 0x80);
  const r = snip(code, { 0: a, 0x10: b });
  assert.equal(r.exception, null);
  const lo = (v: number[]) => v.slice(0, 8), hi = (v: number[]) => v.slice(8);
  assert.deepEqual(out(r, 0), [...hi(b), ...hi(a)]); // movhlps: low <- source high
  assert.deepEqual(out(r, 1), [...lo(a), ...lo(b)]); // movlhps: high <- source low
  assert.deepEqual(out(r, 2), [...lo(a), ...lo(b)]); // movhps load
  assert.deepEqual(out(r, 3), [...lo(b), ...hi(a)]); // movlps load
  assert.deepEqual(out(r, 4), [...lo(a), ...lo(b)]); // movhpd load
  assert.deepEqual(out(r, 5), [...hi(a), ...lo(b)]); // movhps store, then movlpd store 8 bytes on
});

// ------------------------------------------------------------------ logic, compares, masks

test('PAND/PANDN/POR/PXOR and the PS/PD forms compute exact bits, register and memory sources', () => {
  const a = dw(0xff00ff00, 0x12345678, 0xffffffff, 0);
  const b = dw(0x0ff00ff0, 0xf0f0f0f0, 0x80000001, 0xdeadbeef);
  const expect = {
    and: dw(0x0f000f00, 0x10305070, 0x80000001, 0),
    andn: dw(0x00f000f0, 0xe0c0a080, 0, 0xdeadbeef), // (NOT a) AND b
    or: dw(0xfff0fff0, 0xf2f4f6f8, 0xffffffff, 0xdeadbeef),
    xor: dw(0xf0f0f0f0, 0xe2c4a688, 0x7ffffffe, 0xdeadbeef),
  };
  // [prefix bytes + 0F + opcode, expected]: 66 0F DB/DF/EB/EF; 0F 54..57 (PS); 66 0F 54..57 (PD).
  const ops: [string, number[], number[]][] = [
    ['pand', [0x66, 0x0f, 0xdb], expect.and], ['pandn', [0x66, 0x0f, 0xdf], expect.andn],
    ['por', [0x66, 0x0f, 0xeb], expect.or], ['pxor', [0x66, 0x0f, 0xef], expect.xor],
    ['andps', [0x0f, 0x54], expect.and], ['andnps', [0x0f, 0x55], expect.andn],
    ['orps', [0x0f, 0x56], expect.or], ['xorps', [0x0f, 0x57], expect.xor],
    ['andpd', [0x66, 0x0f, 0x54], expect.and], ['andnpd', [0x66, 0x0f, 0x55], expect.andn],
    ['orpd', [0x66, 0x0f, 0x56], expect.or], ['xorpd', [0x66, 0x0f, 0x57], expect.xor],
  ];
  for (const [name, op, want] of ops) {
    assert.deepEqual(binop(op, a, b), want, `${name} xmm0, xmm1`);
    assert.deepEqual(binop(op, a, b, { mem: true }), want, `${name} xmm0, [rdx]`);
  }
  // pxor xmm0, xmm0 is the compilers' zeroing idiom.
  assert.deepEqual(out(snip([...ones(0), 0x66, 0x0f, 0xef, 0xc0, ...storeX(0)], {})), fill(16, 0));
});

test('PCMPEQB + PMOVMSKB find the zero bytes of a string; PMOVMSKB zero-extends into the GPR', () => {
  const code = [
    0x66, 0x0f, 0xef, 0xc0, // pxor xmm0,xmm0
    0xf3, 0x0f, 0x6f, 0x0e, // movdqu xmm1,[rsi]
    0x66, 0x0f, 0x74, 0xc8, // pcmpeqb xmm1,xmm0
    0x66, 0x0f, 0xd7, 0xc1, // pmovmskb eax,xmm1
  ];
  const str = [...'hello, world'].map((ch) => ch.charCodeAt(0));
  let r = snip(code, { 0: [...str, 0, 0x78, 0x79, 0x7a] }, { [RAX]: 0xffffffffffffffffn });
  assert.equal(r.gpr[RAX], 0x1000n); // byte 12 only
  r = snip(code, { 0: [0, ...fill(14, 0x41), 0] }, { [RAX]: 0xffffffffffffffffn });
  assert.equal(r.gpr[RAX], 0x8001n);
  // PMOVMSKB alone takes bit 7 of each byte: 80 7F 40 C0 FF 01 -> bits 0, 3, 4.
  r = snip(code.slice(4, 8).concat(code.slice(12)), { 0: [0x80, 0x7f, 0x40, 0xc0, 0xff, 0x01] });
  assert.equal(r.gpr[RAX], 0x19n);
});

test('PCMPEQW/D set equal lanes to all ones; PCMPGTB/W/D compare signed lanes', () => {
  assert.deepEqual(binop([0x66, 0x0f, 0x75], w16(1, 2, 3, 4, 5, 6, 7, 8), w16(1, 0, 3, 0, 5, 0, 7, 0xffff)),
    w16(0xffff, 0, 0xffff, 0, 0xffff, 0, 0xffff, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0x76], dw(1, 2, 3, 4), dw(1, 2, 0, 4), { mem: true }), dw(-1, -1, 0, -1));
  assert.deepEqual(binop([0x66, 0x0f, 0x64], b16(1, 0x80, 0x7f, 0xff), b16(0, 0x7f, 0x80, 0)), b16(0xff, 0, 0xff, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0x65], w16(0x8000, 1, 2), w16(0x7fff, 0xffff, 2)), w16(0, 0xffff, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0x66], dw(0x80000000, 5, -1, 7), dw(0x7fffffff, 4, -2, 7)), dw(0, -1, -1, 0));
});

test('MOVMSKPS/MOVMSKPD gather the sign bits of dwords/qwords', () => {
  const code = [
    0xf3, 0x0f, 0x6f, 0x0e, //       movdqu xmm1,[rsi]
    0x0f, 0x50, 0xc1, //             movmskps eax,xmm1
    0x66, 0x0f, 0x50, 0xc9, //       movmskpd ecx,xmm1
  ];
  const r = snip(code, { 0: dw(1, 0x80000000, 0x80000000, 0x7fffffff) }, { [RAX]: -1n & 0xffffffffffffffffn });
  assert.equal(r.gpr[RAX], 0b0110n);
  assert.equal(r.gpr[RCX], 0b01n);
});

// ------------------------------------------------------------------ shuffles

test('PUNPCKL/H BW WD DQ QDQ and UNPCKLPS/UNPCKHPD interleave destination and source lanes', () => {
  const a = seq(16, 0x00), b = seq(16, 0x80);
  const pairs = (size: number, from: number): number[] => {
    const r: number[] = [];
    for (let k = from; k < from + 8; k += size) r.push(...a.slice(k, k + size), ...b.slice(k, k + size));
    return r;
  };
  const cases: [string, number[], number[]][] = [
    ['punpcklbw', [0x66, 0x0f, 0x60], pairs(1, 0)], ['punpckhbw', [0x66, 0x0f, 0x68], pairs(1, 8)],
    ['punpcklwd', [0x66, 0x0f, 0x61], pairs(2, 0)], ['punpckhwd', [0x66, 0x0f, 0x69], pairs(2, 8)],
    ['punpckldq', [0x66, 0x0f, 0x62], pairs(4, 0)], ['punpckhdq', [0x66, 0x0f, 0x6a], pairs(4, 8)],
    ['punpcklqdq', [0x66, 0x0f, 0x6c], pairs(8, 0)], ['punpckhqdq', [0x66, 0x0f, 0x6d], pairs(8, 8)],
    ['unpcklps', [0x0f, 0x14], pairs(4, 0)], ['unpckhpd', [0x66, 0x0f, 0x15], pairs(8, 8)],
  ];
  // Spot-check the helper against the SDM's PUNPCKLBW picture: a0 b0 a1 b1 ...
  assert.deepEqual(pairs(1, 0).slice(0, 4), [0x00, 0x80, 0x01, 0x81]);
  for (const [name, op, want] of cases) {
    assert.deepEqual(binop(op, a, b), want, name);
    assert.deepEqual(binop(op, a, b, { mem: true }), want, `${name} m128`);
  }
});

test('PACKSSWB/PACKUSWB/PACKSSDW saturate destination lanes into the low half, source lanes into the high half', () => {
  assert.deepEqual(binop([0x66, 0x0f, 0x63], w16(-1, 256, 127, 128, -128, -129, 0, 1), w16(0x7fff)),
    [0xff, 0x7f, 0x7f, 0x7f, 0x80, 0x80, 0, 1, 0x7f, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(binop([0x66, 0x0f, 0x67], w16(-1, 256, 0x7f, 0x80, 0, 1, 2, 3), w16(0x8000, 0x7fff, 255, 254)),
    [0, 255, 0x7f, 0x80, 0, 1, 2, 3, 0, 255, 255, 254, 0, 0, 0, 0]);
  assert.deepEqual(binop([0x66, 0x0f, 0x6b], dw(70000, -70000, 32767, -1), dw(0, 1, -32768, 32768)),
    w16(0x7fff, 0x8000, 0x7fff, 0xffff, 0, 1, 0x8000, 0x7fff));
});

test('PSHUFD/PSHUFLW/PSHUFHW/SHUFPS/SHUFPD select lanes by imm8', () => {
  const a = dw(0xa0a0a0a0, 0xa1a1a1a1, 0xa2a2a2a2, 0xa3a3a3a3), b = dw(0xb0b0b0b0, 0xb1b1b1b1, 0xb2b2b2b2, 0xb3b3b3b3);
  // PSHUFD xmm0, xmm1/m128, 0x1B: reversed source dwords; 0x00: dword 0 broadcast.
  assert.deepEqual(binop([0x66, 0x0f, 0x70], a, b, { imm: 0x1b }), dw(0xb3b3b3b3, 0xb2b2b2b2, 0xb1b1b1b1, 0xb0b0b0b0));
  assert.deepEqual(binop([0x66, 0x0f, 0x70], a, b, { imm: 0x00, mem: true }), dw(0xb0b0b0b0, 0xb0b0b0b0, 0xb0b0b0b0, 0xb0b0b0b0));
  const w = w16(0x1110, 0x1111, 0x1112, 0x1113, 0x1114, 0x1115, 0x1116, 0x1117);
  assert.deepEqual(binop([0xf2, 0x0f, 0x70], a, w, { imm: 0x1b }), w16(0x1113, 0x1112, 0x1111, 0x1110, 0x1114, 0x1115, 0x1116, 0x1117));
  assert.deepEqual(binop([0xf3, 0x0f, 0x70], a, w, { imm: 0x1b }), w16(0x1110, 0x1111, 0x1112, 0x1113, 0x1117, 0x1116, 0x1115, 0x1114));
  // SHUFPS 0x4E: dest dwords 2, 3 then source dwords 0, 1.
  assert.deepEqual(binop([0x0f, 0xc6], a, b, { imm: 0x4e }), dw(0xa2a2a2a2, 0xa3a3a3a3, 0xb0b0b0b0, 0xb1b1b1b1));
  // SHUFPD 1: dest qword 1, source qword 0.
  assert.deepEqual(binop([0x66, 0x0f, 0xc6], a, b, { imm: 1 }), dw(0xa2a2a2a2, 0xa3a3a3a3, 0xb0b0b0b0, 0xb1b1b1b1));
});

test('PEXTRW zero-extends a word into a GPR; PINSRW replaces one word from a GPR or m16', () => {
  const code = [
    ...LOAD01,
    0x66, 0x0f, 0xc5, 0xc0, 0x05, // pextrw eax,xmm0,5
    0x66, 0x0f, 0xc4, 0xc1, 0x02, // pinsrw xmm0,ecx,2
    0x66, 0x0f, 0xc4, 0x02, 0x07, // pinsrw xmm0,[rdx],7
    ...storeX(0),
  ];
  const a = w16(0x1000, 0x1001, 0x1002, 0x1003, 0x1004, 0xf005, 0x1006, 0x1007);
  const r = snip(code, { 0: a, 0x10: [0xcd, 0xab, 0xff, 0xff] }, { [RAX]: 0xffffffffffffffffn, [RCX]: 0xabcd1234n });
  assert.equal(r.gpr[RAX], 0xf005n);
  assert.deepEqual(out(r), w16(0x1000, 0x1001, 0x1234, 0x1003, 0x1004, 0xf005, 0x1006, 0xabcd));
});

// ------------------------------------------------------------------ arithmetic

test('PADDQ/PSUBQ carry across dwords; PADDD/PSUBD/PADDW/PSUBW/PADDB/PSUBB wrap per lane', () => {
  assert.deepEqual(binop([0x66, 0x0f, 0xd4], qw(-1n, 0xffffffffn), qw(1n, 1n)), qw(0n, 0x100000000n));
  assert.deepEqual(binop([0x66, 0x0f, 0xfb], qw(0n, 0x100000000n), qw(1n, 1n), { mem: true }), qw(-1n, 0xffffffffn));
  assert.deepEqual(binop([0x66, 0x0f, 0xfe], dw(0x7fffffff, -1, 1, 2), dw(1, 1, 1, -2)), dw(0x80000000, 0, 2, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0xfa], dw(0, 0x80000000, 5, 3), dw(1, 1, 5, 4)), dw(-1, 0x7fffffff, 0, -1));
  assert.deepEqual(binop([0x66, 0x0f, 0xfd], w16(0xffff, 0x7fff), w16(2, 1)), w16(1, 0x8000));
  assert.deepEqual(binop([0x66, 0x0f, 0xf9], w16(0, 5), w16(1, 5)), w16(0xffff, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0xfc], b16(0xff, 0x7f, 1), b16(1, 1, 1)), b16(0, 0x80, 2));
  assert.deepEqual(binop([0x66, 0x0f, 0xf8], b16(0, 0x80), b16(1, 1)), b16(0xff, 0x7f));
});

test('saturating adds/subtracts clamp to the lane range', () => {
  assert.deepEqual(binop([0x66, 0x0f, 0xdc], b16(0xf0, 1), b16(0x20, 1)), b16(0xff, 2)); // paddusb
  assert.deepEqual(binop([0x66, 0x0f, 0xec], b16(0x70, 0x90), b16(0x20, 0x90)), b16(0x7f, 0x80)); // paddsb
  assert.deepEqual(binop([0x66, 0x0f, 0xd8], b16(0x10, 0x30), b16(0x20, 0x10)), b16(0, 0x20)); // psubusb
  assert.deepEqual(binop([0x66, 0x0f, 0xe9], w16(0x8000, 5), w16(1, 6)), w16(0x8000, 0xffff)); // psubsw
  assert.deepEqual(binop([0x66, 0x0f, 0xdd], w16(0xfff0), w16(0x20)), w16(0xffff)); // paddusw
});

test('PMULUDQ/PMULLW/PMULHW/PMULHUW/PMADDWD products', () => {
  assert.deepEqual(binop([0x66, 0x0f, 0xf4], dw(-1, 7, 2, 9), dw(-1, 8, 3, 10)), qw(0xfffffffe00000001n, 6n));
  assert.deepEqual(binop([0x66, 0x0f, 0xd5], w16(0x8000, 300, 0xffff, 3), w16(2, 300, 0xffff, 0xfffd)), w16(0, 0x5f90, 1, 0xfff7));
  assert.deepEqual(binop([0x66, 0x0f, 0xe5], w16(0x4000, 0xffff, 300), w16(4, 0xffff, 300)), w16(1, 0, 1));
  assert.deepEqual(binop([0x66, 0x0f, 0xe4], w16(0xffff, 2), w16(0xffff, 3)), w16(0xfffe, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0xf5], w16(1, 2, 3, 4, 0x8000, 0x8000), w16(5, 6, 7, 8, 0x8000, 0x8000)), dw(17, 53, 0x80000000, 0));
});

test('PMINUB/PMAXUB/PMINSW/PMAXSW/PAVGB/PSADBW', () => {
  assert.deepEqual(binop([0x66, 0x0f, 0xda], b16(1, 0xff, 7), b16(2, 0x80, 7)), b16(1, 0x80, 7));
  assert.deepEqual(binop([0x66, 0x0f, 0xde], b16(1, 0xff, 7), b16(2, 0x80, 7)), b16(2, 0xff, 7));
  assert.deepEqual(binop([0x66, 0x0f, 0xea], w16(0x8000, 5), w16(1, 6)), w16(0x8000, 5));
  assert.deepEqual(binop([0x66, 0x0f, 0xee], w16(0x8000, 5), w16(1, 6)), w16(1, 6));
  assert.deepEqual(binop([0x66, 0x0f, 0xe0], b16(1, 255, 0), b16(2, 255, 1)), b16(2, 255, 1));
  // |1-4| + |10-0| = 13 in qword 0; |0xff - 0| = 255 in qword 1.
  assert.deepEqual(binop([0x66, 0x0f, 0xf6], b16(1, 0, 0, 0, 0, 0, 0, 0, 0xff), b16(4, 10)), dw(13, 0, 255, 0));
});

// ------------------------------------------------------------------ shifts

test('PSRLDQ/PSLLDQ shift the whole register by bytes; a count above 15 clears it', () => {
  const a = seq(16, 0x10);
  const run = (shift: number[]) => out(snip([...loadX(0), ...shift, ...storeX(0)], { 0: a }));
  assert.deepEqual(run([0x66, 0x0f, 0x73, 0xd8, 3]), [...a.slice(3), 0, 0, 0]); // psrldq xmm0,3
  assert.deepEqual(run([0x66, 0x0f, 0x73, 0xf8, 5]), [0, 0, 0, 0, 0, ...a.slice(0, 11)]); // pslldq xmm0,5
  assert.deepEqual(run([0x66, 0x0f, 0x73, 0xd8, 16]), fill(16, 0));
});

test('element shifts by imm8: PSLLQ/PSRLQ cross the dword boundary, PSRAW/PSRAD fill with the sign', () => {
  const run = (a: number[], shift: number[]) => out(snip([...loadX(0), ...shift, ...storeX(0)], { 0: a }));
  const q = qw(0x0123456789abcdefn, 0x8000000000000001n);
  assert.deepEqual(run(q, [0x66, 0x0f, 0x73, 0xf0, 4]), qw(0x123456789abcdef0n, 0x10n)); // psllq xmm0,4
  assert.deepEqual(run(q, [0x66, 0x0f, 0x73, 0xd0, 36]), qw(0x123456n, 0x8000000n)); // psrlq xmm0,36
  assert.deepEqual(run(q, [0x66, 0x0f, 0x73, 0xd0, 64]), qw(0n, 0n));
  assert.deepEqual(run(w16(0x8000, 0x7fff), [0x66, 0x0f, 0x71, 0xe0, 20]), w16(0xffff, 0)); // psraw xmm0,20
  assert.deepEqual(run(w16(0x8000, 0x7fff), [0x66, 0x0f, 0x71, 0xd0, 15]), w16(1, 0)); // psrlw xmm0,15
  assert.deepEqual(run(w16(0x1234), [0x66, 0x0f, 0x71, 0xf0, 4]), w16(0x2340)); // psllw xmm0,4
  assert.deepEqual(run(dw(0x80000000, 0x7fffffff, -5, 5), [0x66, 0x0f, 0x72, 0xe0, 31]), dw(-1, 0, -1, 0)); // psrad xmm0,31
  assert.deepEqual(run(dw(0x80000000, 1, 0, 0), [0x66, 0x0f, 0x72, 0xd0, 4]), dw(0x08000000, 0, 0, 0)); // psrld xmm0,4
});

test('element shifts by XMM/m128 use the whole low qword as the count', () => {
  const a = qw(0x0123456789abcdefn, 0xff00000000000001n);
  // psllq xmm0, xmm1 (66 0F F3): count 8; the high qword of the count operand is ignored.
  assert.deepEqual(binop([0x66, 0x0f, 0xf3], a, qw(8n, 1n)), qw(0x23456789abcdef00n, 0x100n));
  assert.deepEqual(binop([0x66, 0x0f, 0xf3], a, qw(64n, 0n)), qw(0n, 0n));
  assert.deepEqual(binop([0x66, 0x0f, 0xf3], a, qw(0x100000008n, 0n)), qw(0n, 0n), 'count 2^32 + 8');
  // psrlq xmm0, [rdx] (66 0F D3), pslld xmm0, xmm1 (66 0F F2) with 33, psraw xmm0, xmm1 (66 0F E1) with 100.
  assert.deepEqual(binop([0x66, 0x0f, 0xd3], a, qw(4n, 0n), { mem: true }), qw(0x00123456789abcden, 0x0ff0000000000000n));
  assert.deepEqual(binop([0x66, 0x0f, 0xf2], dw(-1, -1, -1, -1), qw(33n, 0n)), dw(0, 0, 0, 0));
  assert.deepEqual(binop([0x66, 0x0f, 0xe1], w16(0x8000, 0x4000), qw(100n, 0n)), w16(0xffff, 0));
});

// ------------------------------------------------------------------ MXCSR, FXSAVE, FXRSTOR

test('STMXCSR stores MXCSR (0x1F80 after reset); LDMXCSR loads it and rejects reserved bits with #GP(0)', () => {
  let r = snip([0x0f, 0xae, 0x1f], {}); // stmxcsr [rdi]
  assert.deepEqual(out(r, 0, 4), [0x80, 0x1f, 0, 0]);
  r = snip([0x0f, 0xae, 0x16, 0x0f, 0xae, 0x1f], { 0: dw(0x9fc0) }); // ldmxcsr [rsi]; stmxcsr [rdi]
  assert.deepEqual(out(r, 0, 4), [0xc0, 0x9f, 0, 0]);
  r = snip([0x0f, 0xae, 0x16], { 0: dw(0x11f80) });
  assert.equal(r.exception, GP);
});

/** An FXSAVE image with recognisable x87 fields, MXCSR and XMM registers (SDM vol. 2 FXSAVE layout tables). */
function fxImage(mxcsr: number): number[] {
  const img = new Array(512).fill(0);
  img.splice(0, 24, ...[0x7f, 0x02, 0x34, 0x12, 0x81, 0, 0xff, 0x07], ...le(0x123456789abcdef0n, 8), ...le(0x0fedcba987654321n, 8));
  img.splice(24, 4, ...dw(mxcsr));
  for (let k = 0; k < 8; k++) img.splice(32 + 16 * k, 10, ...seq(10, 0x20 + 16 * k)); // ST0-ST7, padding zero
  for (let k = 0; k < 16; k++) img.splice(160 + 16 * k, 16, ...seq(16, 0x40 + k));
  return img;
}

test('FXSAVE64 writes the 64-bit image: x87 state, MXCSR, MXCSR_MASK, XMM0-15; bytes 416-511 untouched', () => {
  const code = [
    ...loadX(0), //                   movdqu xmm0,[rsi]
    0xf3, 0x44, 0x0f, 0x6f, 0x02, //  movdqu xmm8,[rdx]
    ...loadX(15), //                  movdqu xmm15,[rsi]
    0x48, 0x0f, 0xae, 0x03, //        fxsave64 [rbx]
  ];
  const a = seq(16, 0xa0), b = seq(16, 0xb0);
  const r = snip(code, { 0: a, 0x10: b, 0x400: fill(512, 0xcc) }, { [RBX]: D + 0x400n });
  assert.equal(r.exception, null);
  const img = [...r.mem.subarray(0x400, 0x600)];
  assert.deepEqual(img.slice(0, 8), [0x7f, 0x03, 0, 0, 0, 0, 0, 0]); // FCW 0x037F after reset, FSW, FTW, FOP
  assert.deepEqual(img.slice(24, 32), [...dw(0x1f80), ...dw(0xffff)]);
  assert.deepEqual(img.slice(160, 176), a);
  assert.deepEqual(img.slice(176, 288), fill(112, 0)); // XMM1-7 are zero after reset
  assert.deepEqual(img.slice(288, 304), b);
  assert.deepEqual(img.slice(400, 416), a);
  assert.deepEqual(img.slice(416), fill(96, 0xcc));
});

test('FXRSTOR64 then FXSAVE64 round-trips the x87 area, MXCSR and all XMM registers', () => {
  const img = fxImage(0x1fc0);
  const code = [
    0x48, 0x0f, 0xae, 0x0e, //        fxrstor64 [rsi]
    0x48, 0x0f, 0xae, 0x03, //        fxsave64 [rbx]
    0x0f, 0xae, 0x1f, //              stmxcsr [rdi]
    0x48, 0x83, 0xc7, 0x10, //        add rdi,0x10
    ...storeX(15),
  ];
  const r = snip(code, { 0: img }, { [RBX]: D + 0x400n });
  assert.equal(r.exception, null);
  const want = img.slice(0, 416);
  want.splice(28, 4, ...dw(0xffff)); // MXCSR_MASK is written by FXSAVE
  assert.deepEqual([...r.mem.subarray(0x400, 0x400 + 416)], want);
  assert.deepEqual(out(r, 0, 4), dw(0x1fc0));
  assert.deepEqual(out(r, 1), seq(16, 0x4f));
});

test('FXRSTOR/FXSAVE without REX.W use 32-bit FPU IP/DP with CS/DS selectors and round-trip them', () => {
  const img = fxImage(0x1f80);
  img.splice(8, 16, ...dw(0x89abcdef), 0x23, 0, 0, 0, ...dw(0x01234567), 0x2b, 0, 0, 0);
  const code = [0x0f, 0xae, 0x0e, 0x0f, 0xae, 0x03]; // fxrstor [rsi]; fxsave [rbx]
  const r = snip(code, { 0: img }, { [RBX]: D + 0x400n });
  assert.equal(r.exception, null);
  const saved = [...r.mem.subarray(0x400, 0x400 + 416)];
  assert.deepEqual(saved.slice(8, 24), img.slice(8, 24));
  assert.deepEqual(saved.slice(288, 416), img.slice(288, 416), 'XMM8-15 are in the image in 64-bit mode');
});

test('FXSAVE/FXRSTOR need a 16-byte aligned operand; FXRSTOR with reserved MXCSR bits raises #GP(0)', () => {
  let r = snip([0x48, 0x0f, 0xae, 0x03], {}, { [RBX]: D + 0x408n });
  assert.equal(r.exception, GP);
  assert.deepEqual([...r.mem.subarray(0x400, 0x600)], fill(512, 0));
  r = snip([0x48, 0x0f, 0xae, 0x0e], { 8: fxImage(0x1f80) }, { [RSI]: D + 8n });
  assert.equal(r.exception, GP);
  r = snip([0x48, 0x0f, 0xae, 0x0e], { 0: fxImage(0x21f80) });
  assert.equal(r.exception, GP);
});

test('MMX forms are not implemented: NP 0F 6F / 0F 7F raise #UD', () => {
  assert.equal(snip([0x0f, 0x6f, 0x06], {}).exception, UD); // movq mm0, [rsi]
  assert.equal(snip([0x0f, 0x7f, 0x07], {}).exception, UD); // movq [rdi], mm0
});

// ------------------------------------------------------------------ 32-bit code, CR0/CR4 rules

/** Runs 32-bit code at CPL 0 without paging (code at 0x1000); returns the CPU and the exception vector. */
function run32(code: number[], setup: (c: Cpu, mem: PhysMemory) => void): { c: Cpu; mem: PhysMemory; vector: number | null } {
  const mem = new PhysMemory(0x100000);
  const c = new Cpu(mem, new NullCpuHost());
  c.cr0 = CR0_PE | 0x10;
  c.cr4 = CR4_OSFXSR;
  for (const s of [CS, SS, DS, ES, FS, GS]) {
    c.segSel[s] = s === CS ? 8 : 16; c.segBaseLo[s] = 0; c.segBaseHi[s] = 0; c.segLimit[s] = -1;
    c.segAttr[s] = ATTR_P | ATTR_S | ATTR_DB | ATTR_G | (s === CS ? 0xb : 0x3);
  }
  c.cpl = 0;
  c.updateMode();
  mem.write(0x1000, new Uint8Array(code));
  c.ripLo = 0x1000;
  c.rlo[RSI] = 0x2000; c.rlo[RDI] = 0x3000;
  let vector: number | null = null;
  c.exceptionIntercept = (v) => { vector = v; return true; };
  setup(c, mem);
  for (let g = 0; g < 100 && vector === null && c.ripLo !== 0x1000 + code.length; g++) c.run(1);
  return { c, mem, vector };
}

test('SSE instructions: #UD if CR4.OSFXSR = 0 or CR0.EM = 1, #NM if CR0.TS = 1', () => {
  const movdqu = [0xf3, 0x0f, 0x6f, 0x06]; // movdqu xmm0, [esi]
  const ldmxcsr = [0x0f, 0xae, 0x16]; //       ldmxcsr [esi]
  for (const code of [movdqu, ldmxcsr]) {
    assert.equal(run32(code, () => {}).vector, null);
    assert.equal(run32(code, (c) => { c.cr4 = 0; }).vector, UD);
    assert.equal(run32(code, (c) => { c.cr0 |= CR0_EM; }).vector, UD);
    assert.equal(run32(code, (c) => { c.cr0 |= CR0_TS; }).vector, NM);
  }
  // MOVNTI (0F C3 07, movnti [edi], eax) uses no SSE state: no CR0/CR4 checks.
  const r = run32([0x0f, 0xc3, 0x07], (c) => { c.cr0 |= CR0_TS | CR0_EM; c.cr4 = 0; c.rlo[RAX] = 0x1234; });
  assert.equal(r.vector, null);
  assert.equal(r.mem.read32(0x3000), 0x1234);
});

test('FXSAVE/FXRSTOR: #NM if CR0.TS or CR0.EM, but no CR4.OSFXSR requirement', () => {
  const fxsave = [0x0f, 0xae, 0x07]; // fxsave [edi]
  assert.equal(run32(fxsave, (c) => { c.cr0 |= CR0_TS; }).vector, NM);
  assert.equal(run32(fxsave, (c) => { c.cr0 |= CR0_EM; }).vector, NM);
  const r = run32(fxsave, (c) => { c.cr4 = 0; });
  assert.equal(r.vector, null);
  assert.equal(r.mem.read16(0x3000), 0x037f);
});

test('32-bit FXSAVE/FXRSTOR cover XMM0-7 only; a failed FXRSTOR changes nothing', () => {
  // fxsave [edi]: bytes 288-511 are not written outside 64-bit mode.
  let r = run32([0x0f, 0xae, 0x07], (c, mem) => {
    for (let k = 0; k < 64; k++) c.xmm[k] = 0x01010101 * (k >> 2);
    mem.fill(0x3000, 512, 0xcc);
  });
  assert.equal(r.vector, null);
  assert.deepEqual([...r.mem.read(0x3000 + 160 + 16 * 7, 16)], fill(16, 7));
  assert.deepEqual([...r.mem.read(0x3000 + 288, 224)], fill(224, 0xcc));
  // fxrstor [esi]: loads XMM0-7; XMM8-15 keep their values.
  r = run32([0x0f, 0xae, 0x0e], (c, mem) => {
    c.xmm.fill(-1);
    mem.write(0x2000, Uint8Array.from(fxImage(0x1f80)));
  });
  assert.equal(r.vector, null);
  assert.equal(r.c.xmm[4 * 7], 0x4a494847); // XMM7 = bytes 47 48 49 4a ...
  assert.equal(r.c.xmm[4 * 8], -1);
  // Reserved MXCSR bit: #GP(0), and neither XMM nor MXCSR nor the x87 image changes.
  r = run32([0x0f, 0xae, 0x0e], (c, mem) => {
    c.xmm.fill(-1);
    mem.write(0x2000, Uint8Array.from(fxImage(0x41f80)));
  });
  assert.equal(r.vector, GP);
  assert.equal(r.c.xmm[0], -1);
  assert.equal(r.c.mxcsr, 0x1f80);
  assert.equal(r.c.fpuImage[1], 0x03, 'FCW still 0x037F, not the image\'s 0x027F');
});
