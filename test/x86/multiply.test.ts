/**
 * 64-bit MUL/IMUL against BigInt arithmetic on edge values (SDM vol. 2 MUL, IMUL):
 * the CPU computes 128-bit products from 32-bit limbs, so every sign and carry
 * boundary is checked here, including CF/OF.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSnippet } from '../../src/x86/snippet.js';

const M64 = (1n << 64n) - 1n;
const EDGES = [0n, 1n, 2n, 3n, M64, M64 - 1n, 1n << 63n, (1n << 63n) - 1n, (1n << 63n) + 1n, 1n << 32n, (1n << 32n) - 1n,
  (1n << 32n) + 1n, (1n << 31n), (1n << 31n) - 1n, M64 - (1n << 31n), 0xfffffffe00000001n, 0x9e3779b97f4a7c15n, 6364136223846793005n];
const CF = 1n, OF = 1n << 11n;
const s64 = (v: bigint) => BigInt.asIntN(64, v);

function run(code: number[], rax: bigint, rbx: bigint) {
  const gpr = new BigUint64Array(16);
  gpr[0] = rax; gpr[3] = rbx;
  const r = runSnippet(Uint8Array.from(code), { gpr, rflags: 2n, mem: new Uint8Array(4096) });
  assert.equal(r.exception, null);
  return r;
}

test('MUL r/m64: RDX:RAX = RAX * src unsigned, CF=OF=(RDX != 0)', () => {
  for (const a of EDGES) for (const b of EDGES) {
    const r = run([0x48, 0xf7, 0xe3], a, b); // mul rbx
    const p = a * b;
    assert.equal(r.gpr[0], p & M64, `${a} * ${b} low`);
    assert.equal(r.gpr[2], p >> 64n, `${a} * ${b} high`);
    assert.equal(r.rflags & (CF | OF), (p >> 64n) !== 0n ? CF | OF : 0n);
  }
});

test('IMUL r/m64 (one operand): RDX:RAX = signed product, CF=OF when RDX is not the sign extension of RAX', () => {
  for (const a of EDGES) for (const b of EDGES) {
    const r = run([0x48, 0xf7, 0xeb], a, b); // imul rbx
    const p = s64(a) * s64(b);
    assert.equal(r.gpr[0], BigInt.asUintN(64, p), `${s64(a)} * ${s64(b)} low`);
    assert.equal(r.gpr[2], BigInt.asUintN(64, p >> 64n), `${s64(a)} * ${s64(b)} high`);
    assert.equal(r.rflags & (CF | OF), BigInt.asIntN(64, p) !== p ? CF | OF : 0n);
  }
});

test('IMUL r64, r/m64 (two operands): truncated signed product, CF=OF on overflow', () => {
  for (const a of EDGES) for (const b of EDGES) {
    const r = run([0x48, 0x0f, 0xaf, 0xc3], a, b); // imul rax, rbx
    const p = s64(a) * s64(b);
    assert.equal(r.gpr[0], BigInt.asUintN(64, p));
    assert.equal(r.rflags & (CF | OF), BigInt.asIntN(64, p) !== p ? CF | OF : 0n, `${s64(a)} * ${s64(b)}`);
  }
});

test('IMUL r/m32 (one operand): EDX:EAX = signed product of the low halves, upper halves zeroed', () => {
  for (const a of EDGES) for (const b of EDGES) {
    const r = run([0xf7, 0xeb], a, b); // imul ebx
    const p = BigInt.asIntN(32, a) * BigInt.asIntN(32, b);
    assert.equal(r.gpr[0], BigInt.asUintN(32, p));
    assert.equal(r.gpr[2], BigInt.asUintN(32, p >> 32n));
    assert.equal(r.rflags & (CF | OF), BigInt.asIntN(32, p) !== p ? CF | OF : 0n);
  }
});
