/** What a form table entry is: one instruction form and the generator of its random cases. */
import type { CaseBuilder } from '../case-builder.js';
import type { OpSize } from '../regs.js';

export interface Form {
  /** Unique id, "<group>/<what>", used in reports and by VSM_DIFF_FORMS. */
  readonly id: string;
  /** /proc/cpuinfo flags the host needs for this form (otherwise it is skipped and listed). */
  readonly requires?: readonly string[];
  /** Relative number of cases (default 1). */
  readonly weight?: number;
  /** Build one case: pick operands and values, emit the snippet, set the comparison rules. */
  gen(b: CaseBuilder): void;
}

/** Something deliberately not tested, with the reason (printed with every run). */
export interface Omission {
  readonly what: string;
  readonly reason: string;
}

export function form(id: string, gen: (b: CaseBuilder) => void, extra: { requires?: readonly string[]; weight?: number } = {}): Form {
  return { id, gen, ...extra };
}

export const ALL_SIZES: readonly OpSize[] = [1, 2, 4, 8];
export const WIDE_SIZES: readonly OpSize[] = [2, 4, 8];

/** The 16 condition codes in encoding order (cc = low nibble of 0x70+cc, 0x0F 0x80+cc, ...). */
export const CONDITIONS = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'] as const;

/** Signed value of the low `bits` of v. */
export function signed(v: bigint, bits: number): bigint {
  const sign = 1n << BigInt(bits - 1);
  const m = (1n << BigInt(bits)) - 1n;
  const x = v & m;
  return x & sign ? x - (m + 1n) : x;
}

/** An edge-biased signed immediate of `bits` bits, as assembler text. */
export function immText(b: CaseBuilder, bits: number): string {
  return signed(b.rng.value(bits), bits).toString();
}

/** An edge-biased immediate of `bits` bits that GAS must encode at full width. */
export function forcedImm(b: CaseBuilder, bits: number): string {
  return b.forcedImm(signed(b.rng.value(bits), bits));
}

/** Half the time, put an edge-biased value into the memory operand (the window is otherwise uniform random). */
export function seedMem(b: CaseBuilder, offset: number, size: number): void {
  if (b.rng.chance(0.5)) b.writeMem(offset, size, b.rng.value(size * 8));
}
