/**
 * Robustness: random byte streams executed as 64-bit user-mode code must never
 * throw a host exception or hang (DESIGN §5); every outcome is either normal
 * completion or an architectural exception. runSnippet also runs each stream as
 * compiled blocks and throws if the two execution paths disagree, so this
 * doubles as a consistency fuzzer. Seeded and reproducible (VSM_FUZZ_SEED).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSnippet } from '../../src/x86/snippet.js';
import { CODE, TestMachine } from './helpers/test-machine.js';

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
}

const SEED = Number(process.env.VSM_FUZZ_SEED ?? 0x5eed);
const CASES = Number(process.env.VSM_FUZZ_CASES ?? 1000);

test(`random code never throws a host exception (${CASES} cases, seed ${SEED})`, () => {
  const rnd = xorshift(SEED);
  const outcomes = new Map<string, number>();
  for (let n = 0; n < CASES; n++) {
    // Bias towards real opcode space: half the streams start with a prefix or 0F escape.
    const len = 1 + (rnd() % 24);
    const code = new Uint8Array(len);
    for (let k = 0; k < len; k++) code[k] = rnd() & 0xff;
    if (rnd() & 1) code[0] = [0x0f, 0x48, 0x66, 0xf3, 0xf2, 0x41, 0xc4, 0xf0][rnd() & 7];
    const gpr = new BigUint64Array(16);
    for (let r = 0; r < 16; r++) gpr[r] = r === 4 ? 0x10000800n : (rnd() & 1 ? 0x10000000n + BigInt(rnd() & 0xff8) : BigInt(rnd()) << 32n | BigInt(rnd()));
    let r: ReturnType<typeof runSnippet>;
    try {
      r = runSnippet(code, { gpr, rflags: BigInt(rnd() & 0x8d5) | 2n, mem: new Uint8Array(4096) });
    } catch (e) {
      assert.fail(`case ${n}: ${Buffer.from(code).toString('hex')} threw ${(e as Error).stack ?? e}`);
    }
    const key = r.exception === null ? 'ok' : `#${r.exception}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  // Random code mostly faults (#UD, #GP, #PF...), but some streams must also complete.
  assert.ok((outcomes.get('ok') ?? 0) > 0, JSON.stringify([...outcomes]));
  assert.ok((outcomes.get('#6') ?? 0) > 0, JSON.stringify([...outcomes]));
});

/**
 * Kernel mode: random code at CPL 0 in 64-bit, 32-bit and real mode, where
 * privileged instructions (MOV CR, WRMSR, LGDT, LTR, IRET, ...) really execute
 * and exceptions are delivered through a real IDT. The run must end in an
 * architectural state (running, halted, shut down) without a host exception.
 */
test(`random kernel-mode code never throws a host exception (${Math.floor(CASES / 2)} cases per mode, seed ${SEED})`, () => {
  const rnd = xorshift(SEED ^ 0x9e3779b9);
  for (const mode of ['long64', 'protected32', 'real'] as const) {
    for (let n = 0; n < Math.floor(CASES / 2); n++) {
      const m = new TestMachine(8 * 1024 * 1024);
      if (mode === 'long64') m.enterLong64(); else if (mode === 'protected32') m.enterProtected32(); else m.enterReal();
      const code = new Uint8Array(16 + (rnd() % 48));
      for (let k = 0; k < code.length; k++) code[k] = rnd() & 0xff;
      m.mem.write(CODE, code);
      for (let r = 0; r < 16; r++) if (r !== 4) m.cpu.rlo[r] = rnd() | 0;
      try {
        m.cpu.run(2000);
      } catch (e) {
        assert.fail(`${mode} case ${n}: ${Buffer.from(code).toString('hex')} threw ${(e as Error).stack ?? e}`);
      }
    }
  }
});
