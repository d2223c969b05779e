/** A CPUID table as KVM_SET_CPUID2 takes it: entries by (function, index). */
export interface CpuidEntry {
  readonly function: number;
  /** Sub-leaf; entries with `significantIndex` false match any ECX. */
  readonly index: number;
  readonly significantIndex: boolean;
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

export function findCpuid(entries: readonly CpuidEntry[], fn: number, index: number): CpuidEntry | undefined {
  for (const e of entries) {
    if (e.function === fn && (!e.significantIndex || e.index === index)) return e;
  }
  return undefined;
}
