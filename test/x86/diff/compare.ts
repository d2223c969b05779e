/**
 * Compares the host's result of a case with the CPU's, applying the case's
 * rules (defined flags, ignored register and memory bits), and renders
 * mismatches as reproducible reports.
 */
import type { GeneratedCase } from './case-builder.js';
import { DF, RFLAGS_FIXED1, STATUS, flagNames } from './flag-masks.js';
import { GPR_NAMES } from './regs.js';
import type { SnippetState } from './snippet-contract.js';

/** What a run produced: final state (or state at the fault) and the exception vector. */
export interface Outcome {
  readonly gpr: BigUint64Array;
  readonly rflags: bigint;
  readonly mem: Uint8Array;
  readonly exception: number | null;
}

export interface Difference {
  readonly field: string;
  readonly expected: string;
  readonly actual: string;
}

const VECTOR_NAMES: Record<number, string> = { 0: '#DE', 1: '#DB', 3: '#BP', 6: '#UD', 12: '#SS', 13: '#GP', 14: '#PF', 16: '#MF', 17: '#AC', 19: '#XM' };

export function vectorName(v: number | null): string {
  return v === null ? 'none' : `${VECTOR_NAMES[v] ?? '#?'} (${v})`;
}

export function hex64(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** Flag bits compared for a case: its defined status flags (all of them at a fault, which changes none), DF and bit 1. */
export function comparedFlags(c: GeneratedCase, exception: number | null): number {
  return (exception !== null ? STATUS : c.definedFlags) | DF | RFLAGS_FIXED1;
}

export function compareOutcome(c: GeneratedCase, expected: Outcome, actual: Outcome): Difference[] {
  const diffs: Difference[] = [];
  if (expected.exception !== actual.exception) {
    diffs.push({ field: 'exception', expected: vectorName(expected.exception), actual: vectorName(actual.exception) });
  }
  for (let i = 0; i < 16; i++) {
    const keep = ~c.regIgnore[i];
    if ((expected.gpr[i] & keep) !== (actual.gpr[i] & keep)) {
      diffs.push({ field: GPR_NAMES[i], expected: hex64(expected.gpr[i]), actual: hex64(actual.gpr[i]) });
    }
  }
  const fmask = BigInt(comparedFlags(c, expected.exception));
  if ((expected.rflags & fmask) !== (actual.rflags & fmask)) {
    const bad = Number((expected.rflags ^ actual.rflags) & fmask);
    diffs.push({
      field: `rflags [${flagNames(bad, bad)}${bad & RFLAGS_FIXED1 ? ' bit1' : ''}]`,
      expected: `0x${expected.rflags.toString(16)} (${flagNames(Number(expected.rflags))})`,
      actual: `0x${actual.rflags.toString(16)} (${flagNames(Number(actual.rflags))})`,
    });
  }
  let runs = 0;
  for (let i = 0; i < expected.mem.length; i++) {
    const keep = ~(c.memIgnore.get(i) ?? 0) & 0xff;
    if ((expected.mem[i] & keep) === (actual.mem[i] & keep)) continue;
    let end = i + 1;
    while (end < expected.mem.length && end - i < 16 && (expected.mem[end] & ~(c.memIgnore.get(end) ?? 0) & 0xff) !== (actual.mem[end] & ~(c.memIgnore.get(end) ?? 0) & 0xff)) end++;
    if (++runs <= 4) {
      diffs.push({
        field: `mem[0x${i.toString(16)}..0x${(end - 1).toString(16)}]`,
        expected: hexBytes(expected.mem.subarray(i, end)),
        actual: hexBytes(actual.mem.subarray(i, end)),
      });
    }
    i = end - 1;
  }
  if (runs > 4) diffs.push({ field: 'mem', expected: '', actual: `${runs - 4} more differing ranges` });
  return diffs;
}

export interface MismatchReport {
  readonly formId: string;
  readonly caseIndex: number;
  readonly lines: readonly string[];
  readonly code: Uint8Array;
  readonly init: SnippetState;
  readonly gen: GeneratedCase;
  readonly expected: Outcome & { rip?: bigint; faultAddress?: bigint };
  readonly actual: Outcome | null;
  readonly differences: readonly Difference[];
}

function regTable(gpr: BigUint64Array): string[] {
  const rows: string[] = [];
  for (let i = 0; i < 16; i += 4) {
    rows.push('    ' + [0, 1, 2, 3].map((k) => `${GPR_NAMES[i + k].padStart(3)}=${hex64(gpr[i + k])}`).join(' '));
  }
  return rows;
}

function regexEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A self-contained, reproducible description of one mismatch. */
export function formatMismatch(m: MismatchReport, seed: number, testFile: string): string {
  const out = [
    `MISMATCH ${m.formId} case ${m.caseIndex}`,
    `  snippet: ${m.lines.join(' ; ')}`,
    `  bytes:   ${hexBytes(m.code)}`,
    `  input rflags=0x${m.init.rflags.toString(16)} (${flagNames(Number(m.init.rflags))})`,
    ...regTable(m.init.gpr),
    `  host: exception ${vectorName(m.expected.exception)}${m.expected.rip !== undefined && m.expected.exception !== null ? ` at rip ${hex64(m.expected.rip)}` : ''}` +
      `, rflags 0x${m.expected.rflags.toString(16)}, compared flags ${flagNames(comparedFlags(m.gen, m.expected.exception))}`,
    ...regTable(m.expected.gpr),
  ];
  if (m.actual !== null) out.push(`  cpu:  exception ${vectorName(m.actual.exception)}, rflags 0x${m.actual.rflags.toString(16)}`, ...regTable(m.actual.gpr));
  out.push('  differences:');
  for (const d of m.differences) out.push(`    ${d.field}: expected ${d.expected}, got ${d.actual}`);
  if (m.gen.notes.length > 0) out.push(`  notes: ${m.gen.notes.join('; ')}`);
  out.push(`  reproduce: VSM_DIFF_SEED=0x${seed.toString(16)} VSM_DIFF_FORMS='^${regexEscape(m.formId)}$' VSM_DIFF_CASE=${m.caseIndex} node --test ${testFile}`);
  return out.join('\n');
}
