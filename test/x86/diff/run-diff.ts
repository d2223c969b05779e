/**
 * Orchestration: generate every form's cases from the seed, assemble them in
 * one batch, run them on the host and on the CPU under test, compare.
 */
import { assembleSnippets } from './assemble.js';
import { CaseBuilder, displayLines, type GeneratedCase } from './case-builder.js';
import { compareOutcome, vectorName, type MismatchReport, type Outcome } from './compare.js';
import type { CpuUnderTest } from './cpu-under-test.js';
import type { Form } from './forms/form.js';
import type { HostCpu } from './host-cpu.js';
import type { NativeResult } from './native-runner.js';
import { Rng, hashString } from './rng.js';
import type { SnippetState } from './snippet-contract.js';

export interface DiffOptions {
  readonly seed: number;
  readonly casesPerForm: number;
  /** Only forms whose id matches. */
  readonly formFilter?: RegExp;
  /** Only this case number of each selected form (earlier cases are still generated, to keep the random stream). */
  readonly onlyCase?: number;
  readonly host: HostCpu;
}

export interface PreparedCase {
  readonly form: Form;
  readonly caseIndex: number;
  readonly gen: GeneratedCase;
  readonly code: Uint8Array;
  readonly init: SnippetState;
}

export interface SkippedForm {
  readonly id: string;
  readonly reason: string;
}

export function prepareCases(forms: readonly Form[], opts: DiffOptions): { cases: PreparedCase[]; skipped: SkippedForm[] } {
  const skipped: SkippedForm[] = [];
  const generated: Array<{ form: Form; caseIndex: number; gen: GeneratedCase }> = [];
  const seen = new Set<string>();
  for (const form of forms) {
    if (seen.has(form.id)) throw new Error(`Two forms share the id "${form.id}".`);
    seen.add(form.id);
    if (opts.formFilter !== undefined && !opts.formFilter.test(form.id)) continue;
    const missing = (form.requires ?? []).filter((f) => !opts.host.flags.has(f));
    if (missing.length > 0) {
      skipped.push({ id: form.id, reason: `host CPU lacks ${missing.join(', ')} (/proc/cpuinfo flags)` });
      continue;
    }
    const rng = new Rng(opts.seed, hashString(form.id));
    const count = opts.onlyCase !== undefined ? opts.onlyCase + 1 : Math.max(1, Math.round(opts.casesPerForm * (form.weight ?? 1)));
    for (let i = 0; i < count; i++) {
      const b = new CaseBuilder(rng, i, opts.host);
      form.gen(b);
      const gen = b.build();
      if (opts.onlyCase === undefined || opts.onlyCase === i) generated.push({ form, caseIndex: i, gen });
    }
  }
  const codes = assembleSnippets(generated.map((g) => ({ lines: g.gen.lines, forced: g.gen.forced, ripTargets: g.gen.ripTargets, label: `${g.form.id} case ${g.caseIndex}` })));
  const cases = generated.map((g, i) => {
    const code = codes[i];
    const gpr = g.gen.gpr.slice();
    const mem = g.gen.mem.slice();
    for (const fix of g.gen.afterAssembly) fix(code.length, gpr, mem);
    return { ...g, code, init: { gpr, rflags: g.gen.rflags, mem } };
  });
  return { cases, skipped };
}

export interface DiffResult {
  readonly total: number;
  readonly mismatches: MismatchReport[];
  /** Cases the host itself could not run cleanly (time-outs): bugs in the harness or a form. */
  readonly harnessErrors: string[];
  /** Per form: cases run and cases that mismatched. */
  readonly perForm: Map<string, { cases: number; failed: number }>;
  /** Exception vectors the host raised, counted (shows which fault paths were exercised). */
  readonly vectors: Map<string, number>;
}

export function nativeOutcome(r: NativeResult): Outcome {
  return { gpr: r.gpr, rflags: r.rflags, mem: r.mem, exception: r.vector };
}

export function compareAll(cases: readonly PreparedCase[], expected: readonly NativeResult[], cpu: CpuUnderTest): DiffResult {
  const actual = cpu.run(cases.map((c) => ({ code: c.code, init: c.init })));
  const result: DiffResult = { total: cases.length, mismatches: [], harnessErrors: [], perForm: new Map(), vectors: new Map() };
  cases.forEach((c, i) => {
    const exp = expected[i];
    const stats = result.perForm.get(c.form.id) ?? { cases: 0, failed: 0 };
    result.perForm.set(c.form.id, stats);
    stats.cases++;
    if (exp.timedOut || (exp.vector === null && exp.signal !== 0)) {
      result.harnessErrors.push(`${c.form.id} case ${c.caseIndex}: the host run did not finish (signal ${exp.signal}); snippet: ${displayLines(c.gen).join(' ; ')}`);
      stats.failed++;
      return;
    }
    const vname = vectorName(exp.vector);
    result.vectors.set(vname, (result.vectors.get(vname) ?? 0) + 1);
    const act = actual[i];
    const base = { formId: c.form.id, caseIndex: c.caseIndex, lines: displayLines(c.gen), code: c.code, init: c.init, gen: c.gen, expected: { ...nativeOutcome(exp), rip: exp.rip, faultAddress: exp.faultAddress } };
    if (act instanceof Error) {
      result.mismatches.push({ ...base, actual: null, differences: [{ field: 'cpu', expected: 'a result', actual: `threw ${act.name}: ${act.message}` }] });
      stats.failed++;
      return;
    }
    const differences = compareOutcome(c.gen, base.expected, act);
    if (differences.length > 0) {
      result.mismatches.push({ ...base, actual: act, differences });
      stats.failed++;
    }
  });
  return result;
}
