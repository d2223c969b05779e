/**
 * Differential test of the x86 CPU against the host CPU (issue 2, "How we know
 * it is right"): every user-mode form in test/x86/diff/forms runs with random,
 * seeded operands natively and in our CPU; GPRs, the defined RFLAGS bits, the
 * data window and the exception vector must match.
 *
 * Environment: VSM_DIFF_SEED (decimal or 0x hex; default random, always printed),
 * VSM_DIFF_CASES (cases per form, default 16), VSM_DIFF_FORMS (regex on form ids),
 * VSM_DIFF_CASE (one case number per selected form), VSM_DIFF_CPU=native (run the
 * "CPU" test against the host itself: a harness self-check, not a CPU test).
 * See README.md in this directory.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { GeneratedCase } from './case-builder.js';
import { compareOutcome, formatMismatch, type Outcome } from './compare.js';
import { loadSnippetCpu, nativeSelfTestCpu, type CpuUnderTest } from './cpu-under-test.js';
import { AF, CF, DF, INPUT_FLAGS, OF, PF, RFLAGS_FIXED1, SF, ZF } from './flag-masks.js';
import { ALL_FORMS, OMISSIONS } from './forms/index.js';
import { describeHostCpu, readHostCpu } from './host-cpu.js';
import { buildNativeRunner, nativeUnavailableReason, runNative, type NativeCase } from './native-runner.js';
import { cacheDir } from './repo-paths.js';
import { compareAll, nativeOutcome, prepareCases, type DiffResult, type PreparedCase, type SkippedForm } from './run-diff.js';
import { CODE_BASE, DATA_BASE, DATA_SIZE } from './snippet-contract.js';

const TEST_FILE = 'dist/test/x86/diff/diff.test.js';

class DiffConfigError extends Error {
  override name = 'DiffConfigError';
}

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new DiffConfigError(`${name} must be an integer from 0 to 2^32-1 (decimal or 0x hex), not "${raw}".`);
  return v;
}

const seed = envInt('VSM_DIFF_SEED') ?? randomInt(0x100000000);
const casesPerForm = envInt('VSM_DIFF_CASES') ?? 16;
const onlyCase = envInt('VSM_DIFF_CASE');
function envRegex(name: string): RegExp | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  try {
    return new RegExp(raw);
  } catch {
    throw new DiffConfigError(`${name} is not a valid regular expression: "${raw}".`);
  }
}

const formFilter = envRegex('VSM_DIFF_FORMS');
const nativeAsCpu = process.env.VSM_DIFF_CPU === 'native';

const unavailable = nativeUnavailableReason();
const host = unavailable === null ? readHostCpu() : null;

/** Cases and host results, built once and shared by the self-test and the CPU test. */
let shared: { bin: string; cases: PreparedCase[]; skipped: SkippedForm[]; expected: ReturnType<typeof runNative> } | undefined;
function prepared(): NonNullable<typeof shared> {
  if (shared !== undefined) return shared;
  if (host === null) throw new Error(`native side unavailable: ${unavailable}`);
  const bin = buildNativeRunner();
  const { cases, skipped } = prepareCases(ALL_FORMS, { seed, casesPerForm, host, formFilter, onlyCase });
  const expected = runNative(bin, cases.map((c) => ({ code: c.code, init: c.init })));
  shared = { bin, cases, skipped, expected };
  return shared;
}

function summarize(result: DiffResult): string {
  const failedForms = [...result.perForm].filter(([, s]) => s.failed > 0).map(([id, s]) => `  ${id}: ${s.failed}/${s.cases}`);
  const reports = result.mismatches.slice(0, 15).map((m) => formatMismatch(m, seed, TEST_FILE));
  const file = join(cacheDir(), 'last-mismatches.txt');
  writeFileSync(file, result.mismatches.map((m) => formatMismatch(m, seed, TEST_FILE)).join('\n\n') + '\n');
  return [
    `${result.mismatches.length} of ${result.total} cases differ (seed 0x${seed.toString(16)}); all reports in ${file}`,
    ...result.harnessErrors.map((e) => `HARNESS ERROR ${e}`),
    'forms with mismatches (failed/cases):',
    ...failedForms,
    '',
    ...reports,
  ].join('\n');
}

const cpuLoad: CpuUnderTest | string | Error = unavailable !== null ? 'native side unavailable' : await loadSnippetCpu().catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));

test('diff harness: host CPU, toolchain, seed, skipped forms', { skip: unavailable ?? false }, (t) => {
  const p = prepared();
  t.diagnostic(`host CPU: ${describeHostCpu(host!)}`);
  t.diagnostic(`seed 0x${seed.toString(16)} (VSM_DIFF_SEED), ${casesPerForm} cases per form (VSM_DIFF_CASES), ${p.cases.length} cases over ${new Set(p.cases.map((c) => c.form.id)).size} forms`);
  for (const s of p.skipped) t.diagnostic(`skipped form ${s.id}: ${s.reason}`);
  for (const o of OMISSIONS) t.diagnostic(`not covered: ${o.what}: ${o.reason}`);
  assert.ok(p.cases.length > 0 || formFilter !== undefined, 'no cases were generated');
  assert.equal(p.expected.length, p.cases.length);
});

// ---- harness self-tests: they check the harness, not the CPU ----------------

function nativeCase(code: number[], regs: Record<number, bigint>, rflags = RFLAGS_FIXED1, mem = new Uint8Array(DATA_SIZE)): NativeCase {
  const gpr = new BigUint64Array(16);
  for (let i = 0; i < 16; i++) gpr[i] = regs[i] ?? 0x0101010101010101n * BigInt(i + 1);
  return { code: Uint8Array.from(code), init: { gpr, rflags: BigInt(rflags), mem } };
}

test('HARNESS SELF-TEST: the native runner reproduces hand-computed results', { skip: unavailable ?? false, timeout: 30_000 }, () => {
  const bin = buildNativeRunner();
  const flagsOut = (v: bigint): number => Number(v) & (INPUT_FLAGS | RFLAGS_FIXED1);
  const stosMem = new Uint8Array(DATA_SIZE);
  const cases = [
    // 0: add al, bl (00 D8): 0xFF + 1 = 0x00 with CF, AF, ZF, PF set (SDM ADD); bits 63:8 of RAX kept.
    nativeCase([0x00, 0xd8], { 0: 0x12345678_9abcdeffn, 3: 1n }),
    // 1: nop: all 16 GPRs and the status flags + DF must round-trip through the trampoline.
    nativeCase([0x90], {}, CF | ZF | SF | OF | DF | RFLAGS_FIXED1),
    // 2: push rax (50): RSP -= 8, the value stored little-endian at the new RSP (SDM PUSH).
    nativeCase([0x50], { 0: 0x11223344_55667788n, 4: DATA_BASE + 0x800n }),
    // 3: div ecx (F7 F1) with ECX = 0: #DE (vector 0), a fault: nothing changes, RIP stays on it.
    nativeCase([0xf7, 0xf1], { 1: 0xffffffff_00000000n }),
    // 4: ud2 (0F 0B): #UD (vector 6).
    nativeCase([0x0f, 0x0b], {}),
    // 5: mov eax, [rbx] (8B 03) with RBX on the guard page above the window: #PF (14) at that address.
    nativeCase([0x8b, 0x03], { 3: DATA_BASE + 0x1000n }),
    // 6: hlt (F4) at CPL 3: #GP (13).
    nativeCase([0xf4], {}),
    // 7: std (FD): DF = 1.
    nativeCase([0xfd], {}),
    // 8: rep stosb (F3 AA), DF = 1, RCX = 3, RDI = window+0x10: bytes 0x0E..0x10 = AL, RDI = window+0x0D, RCX = 0.
    nativeCase([0xf3, 0xaa], { 0: 0xabn, 1: 3n, 7: DATA_BASE + 0x10n }, DF | RFLAGS_FIXED1, stosMem),
    // 9: lea rax, [rip + 0x10] (48 8D 05 10 00 00 00): RAX = CODE_BASE + 7 + 0x10.
    nativeCase([0x48, 0x8d, 0x05, 0x10, 0, 0, 0], {}),
    // 10: int3 (CC): #BP (3), a trap: RIP after the instruction.
    nativeCase([0xcc], {}),
    // 11: push rax with a non-canonical RSP: #SS (12).
    nativeCase([0x50], { 4: 0x4000_0000_1000_0000n }),
    // 12: jmp $ (EB FE): the one-second watchdog ends it.
    nativeCase([0xeb, 0xfe], {}),
  ];
  const r = runNative(bin, cases);

  assert.equal(r[0].vector, null);
  assert.equal(r[0].gpr[0], 0x12345678_9abcde00n);
  assert.equal(flagsOut(r[0].rflags), CF | PF | AF | ZF | RFLAGS_FIXED1);

  assert.deepEqual([...r[1].gpr], [...cases[1].init.gpr]);
  assert.equal(flagsOut(r[1].rflags), CF | ZF | SF | OF | DF | RFLAGS_FIXED1);

  assert.equal(r[2].gpr[4], DATA_BASE + 0x7f8n);
  assert.deepEqual([...r[2].mem.subarray(0x7f8, 0x800)], [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);

  assert.equal(r[3].vector, 0);
  assert.equal(r[3].rip, CODE_BASE);
  assert.deepEqual([...r[3].gpr], [...cases[3].init.gpr]);
  assert.equal(r[4].vector, 6);
  assert.equal(r[5].vector, 14);
  assert.equal(r[5].faultAddress, DATA_BASE + 0x1000n);
  assert.equal(r[6].vector, 13);
  assert.equal(flagsOut(r[7].rflags) & DF, DF);

  assert.deepEqual([...r[8].mem.subarray(0x0d, 0x12)], [0, 0xab, 0xab, 0xab, 0]);
  assert.equal(r[8].gpr[7], DATA_BASE + 0x0dn);
  assert.equal(r[8].gpr[1], 0n);

  assert.equal(r[9].gpr[0], CODE_BASE + 7n + 0x10n);
  assert.equal(r[10].vector, 3);
  assert.equal(r[10].rip, CODE_BASE + 1n);
  assert.equal(r[11].vector, 12);
  assert.equal(r[12].timedOut, true);
});

test('HARNESS SELF-TEST: the comparison flags real differences and ignores undefined bits', { skip: unavailable ?? false }, () => {
  const bin = buildNativeRunner();
  // AND leaves AF undefined and defines CF (cleared): SDM AND "Flags Affected".
  const { cases } = prepareCases(ALL_FORMS, { seed: 1, casesPerForm: 1, host: host!, formFilter: /^alu\/and r\/m, r \(reg, 00\/01\)$/ });
  assert.equal(cases.length, 1);
  const c = cases[0];
  const expected = nativeOutcome(runNative(bin, [{ code: c.code, init: c.init }])[0]);
  const mutate = (f: (o: { gpr: BigUint64Array; rflags: bigint; mem: Uint8Array; exception: number | null }) => void): Outcome => {
    const o = { gpr: expected.gpr.slice(), rflags: expected.rflags, mem: expected.mem.slice(), exception: expected.exception };
    f(o);
    return o;
  };
  const fields = (gen: GeneratedCase, o: Outcome): string[] => compareOutcome(gen, expected, o).map((d) => d.field);

  assert.deepEqual(fields(c.gen, mutate(() => {})), []);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.gpr[13] ^= 1n << 63n; })), ['r13']);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.rflags ^= BigInt(AF); })), []);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.rflags ^= BigInt(CF); })), ['rflags [CF]']);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.rflags ^= BigInt(DF); })), ['rflags [DF]']);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.rflags ^= BigInt(RFLAGS_FIXED1); })), ['rflags [- bit1]']);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.mem[100] ^= 0x40; })), ['mem[0x64..0x64]']);
  assert.deepEqual(fields(c.gen, mutate((o) => { o.exception = 6; })), ['exception']);
  const ignoring: GeneratedCase = { ...c.gen, regIgnore: BigUint64Array.from({ length: 16 }, (_, i) => (i === 13 ? 1n << 63n : 0n)), memIgnore: new Map([[100, 0x40]]) };
  assert.deepEqual(fields(ignoring, mutate((o) => { o.gpr[13] ^= 1n << 63n; o.mem[100] ^= 0x40; })), []);
});

test('HARNESS SELF-TEST (not a CPU test): every form, host against host', { skip: unavailable ?? false, timeout: 120_000 }, (t) => {
  const p = prepared();
  const result = compareAll(p.cases, p.expected, nativeSelfTestCpu(p.bin));
  t.diagnostic(`host exception vectors over all cases: ${[...result.vectors].map(([v, n]) => `${v} x${n}`).join(', ')}`);
  assert.equal(result.harnessErrors.length + result.mismatches.length, 0, summarize(result));
  if (formFilter === undefined && onlyCase === undefined) {
    // The fault forms must really have exercised every exception path the contract names.
    for (const v of ['#DE (0)', '#BP (3)', '#UD (6)', '#SS (12)', '#GP (13)', '#PF (14)']) assert.ok((result.vectors.get(v) ?? 0) > 0, `no case raised ${v}`);
  }
});

// ---- the CPU test -----------------------------------------------------------

const cpuSkip = unavailable ?? (nativeAsCpu ? false : typeof cpuLoad === 'string' ? cpuLoad : false);
test(nativeAsCpu ? 'x86 CPU vs host CPU — VSM_DIFF_CPU=native: HOST AGAINST HOST, A HARNESS SELF-CHECK' : 'x86 CPU vs host CPU: every user-mode form', { skip: cpuSkip, timeout: 600_000 }, (t) => {
  if (cpuLoad instanceof Error) throw cpuLoad;
  const p = prepared();
  const cpu = nativeAsCpu ? nativeSelfTestCpu(p.bin) : (cpuLoad as CpuUnderTest);
  t.diagnostic(`CPU under test: ${cpu.name}; seed 0x${seed.toString(16)}; ${p.cases.length} cases`);
  const result = compareAll(p.cases, p.expected, cpu);
  assert.equal(result.harnessErrors.length + result.mismatches.length, 0, summarize(result));
});
