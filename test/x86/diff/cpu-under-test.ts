/**
 * The CPU whose results are checked against the host: our interpreter through
 * src/x86/snippet.ts (loaded dynamically, so this harness builds before that
 * module exists), or, for the harness self-test only, the native runner again.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Outcome } from './compare.js';
import { runNative, type NativeCase } from './native-runner.js';
import { CODE_BASE, DATA_BASE, DATA_SIZE, type RunSnippet, type SnippetResult } from './snippet-contract.js';

export interface CpuUnderTest {
  readonly name: string;
  /** True when the "CPU" is the host itself: results then prove only the harness, not the CPU. */
  readonly isHarnessSelfTest: boolean;
  /** One outcome per case, or the error the CPU threw for that case. */
  run(cases: readonly NativeCase[]): Array<Outcome | Error>;
}

export class SnippetModuleError extends Error {
  override name = 'SnippetModuleError';
}

/** dist/test/x86/diff/ -> dist/src/x86/snippet.js */
const SNIPPET_MODULE = new URL('../../../src/x86/snippet.js', import.meta.url);

function checkResult(r: SnippetResult | undefined): Outcome | Error {
  if (r === undefined || r === null || typeof r !== 'object') return new Error('runSnippet returned no result object');
  if (!(r.gpr instanceof BigUint64Array) || r.gpr.length !== 16) return new Error('runSnippet result: gpr is not a BigUint64Array of 16 entries');
  if (typeof r.rflags !== 'bigint') return new Error('runSnippet result: rflags is not a bigint');
  if (!(r.mem instanceof Uint8Array) || r.mem.length !== DATA_SIZE) return new Error(`runSnippet result: mem is not a Uint8Array of ${DATA_SIZE} bytes`);
  if (r.exception !== null && !Number.isInteger(r.exception)) return new Error('runSnippet result: exception is neither null nor a vector number');
  return { gpr: r.gpr, rflags: r.rflags, mem: r.mem, exception: r.exception };
}

/** The interpreter's snippet runner, or the reason it cannot be used (module not built yet). */
export async function loadSnippetCpu(): Promise<CpuUnderTest | string> {
  if (!existsSync(fileURLToPath(SNIPPET_MODULE))) return 'CPU snippet runner not available';
  const mod = (await import(SNIPPET_MODULE.href)) as { runSnippet?: unknown; DATA_BASE?: unknown; CODE_BASE?: unknown };
  if (typeof mod.runSnippet !== 'function') throw new SnippetModuleError('src/x86/snippet.ts does not export a runSnippet function.');
  if (mod.DATA_BASE !== DATA_BASE || mod.CODE_BASE !== CODE_BASE) {
    throw new SnippetModuleError(`src/x86/snippet.ts uses DATA_BASE=${String(mod.DATA_BASE)} CODE_BASE=${String(mod.CODE_BASE)}; the harness needs 0x10000000 and 0x20000000.`);
  }
  const runSnippet = mod.runSnippet as RunSnippet;
  return {
    name: 'vsmvisor x86 interpreter (src/x86/snippet.ts)',
    isHarnessSelfTest: false,
    run(cases) {
      return cases.map((c) => {
        // Fresh copies: the CPU must not be able to alter the inputs the report prints.
        const init = { gpr: c.init.gpr.slice(), rflags: c.init.rflags, mem: c.init.mem.slice() };
        try {
          return checkResult(runSnippet(c.code.slice(), init));
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e));
        }
      });
    },
  };
}

/** Harness self-test: a second, independent run of the native runner plays the CPU. */
export function nativeSelfTestCpu(bin: string): CpuUnderTest {
  return {
    name: 'host CPU again (HARNESS SELF-TEST, not a CPU test)',
    isHarnessSelfTest: true,
    run(cases) {
      return runNative(bin, cases).map((r) => ({ gpr: r.gpr, rflags: r.rflags, mem: r.mem, exception: r.vector }));
    },
  };
}
