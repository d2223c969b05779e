/**
 * Decoder coverage against iced-x86, printed as JSON (issue 2: "what we do not
 * decode is listed"). Over the cross-check corpus (test/x86/xcheck/corpus.ts:
 * system binaries, libc as 32/16-bit code, guest images, gcc -m32/-m16 output),
 * or over the ELF files named on the command line (their executable sections,
 * as 64-bit code), it counts the instructions iced decodes, those we decode,
 * those on which we agree, and lists the mnemonics we do not decode.
 *
 *   node dist/bench/decoder-coverage.js [--max N] [--top N] [file.elf ...]
 *
 * --max: instructions per corpus part (default: whole parts); --top: gaps listed (default 60).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { CodeSize } from '../src/x86/disasm.js';
import { buildCorpus, type CorpusPart } from '../test/x86/xcheck/corpus.js';
import { crossCheck, describe, emptyStats, mergeStats, topGaps, type CheckStats } from '../test/x86/xcheck/cross-check.js';
import { codeSections, readElf } from '../test/x86/xcheck/elf.js';

export class CoverageArgsError extends Error {
  override name = 'CoverageArgsError';
}

export interface CoverageOptions {
  files: string[];
  maxPerPart: number;
  top: number;
}

function summary(st: CheckStats, top: number): object {
  return {
    icedValid: st.icedValid,
    icedInvalid: st.icedInvalid,
    truncated: st.truncated,
    oursDecoded: st.oursDecoded,
    decodedPercent: st.icedValid ? Number(((100 * st.oursDecoded) / st.icedValid).toFixed(3)) : null,
    agree: st.agree,
    disagreements: st.disagreementCount,
    disagreementsByKind: Object.fromEntries(st.byKind),
    firstDisagreements: st.disagreements.slice(0, 10).map(describe),
    notDecoded: Object.fromEntries(topGaps(st, top)),
  };
}

function partsFromFiles(files: string[], max: number): CorpusPart[] {
  const parts: CorpusPart[] = [];
  for (const f of files) {
    const elf = readElf(new Uint8Array(readFileSync(f)), f);
    if (elf.machine !== 62) throw new CoverageArgsError(`${f} is not an x86-64 ELF file.`);
    for (const s of codeSections(elf)) {
      parts.push({ source: 'system', name: `${f} ${s.name}`, bits: 64, code: s.data, maxInstructions: max });
    }
  }
  return parts;
}

/** Runs the cross-check over the corpus and returns the report. */
export function decoderCoverage(o: CoverageOptions): object {
  const started = performance.now();
  const skipped: string[] = [];
  let parts: CorpusPart[];
  if (o.files.length) parts = partsFromFiles(o.files, o.maxPerPart);
  else {
    const c = buildCorpus({ perBinary: o.maxPerPart, foreignBytes: 256 * 1024 });
    parts = c.parts;
    skipped.push(...c.skipped);
  }
  const total = emptyStats();
  const byMode = new Map<CodeSize, CheckStats>();
  const perPart: object[] = [];
  for (const p of parts) {
    const st = crossCheck(p.code, { corpus: p.name, bits: p.bits, maxInstructions: p.maxInstructions, keepDisagreements: 100 });
    mergeStats(total, st);
    if (!byMode.has(p.bits)) byMode.set(p.bits, emptyStats());
    mergeStats(byMode.get(p.bits)!, st);
    perPart.push({ name: p.name, bits: p.bits, icedValid: st.icedValid, oursDecoded: st.oursDecoded, agree: st.agree,
      disagreements: st.disagreementCount });
  }
  return {
    benchmark: 'decoder-coverage',
    oracle: 'iced-x86',
    seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
    total: summary(total, o.top),
    byMode: Object.fromEntries([...byMode].sort((a, b) => a[0] - b[0]).map(([bits, st]) => [`${bits}-bit`, summary(st, o.top)])),
    parts: perPart,
    skipped,
  };
}

export function parseCoverageArgs(argv: string[]): CoverageOptions {
  const o: CoverageOptions = { files: [], maxPerPart: Infinity, top: 60 };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === '--max' || a === '--top') {
      const v = Number(argv[++k]);
      if (!Number.isInteger(v) || v <= 0) throw new CoverageArgsError(`${a} needs a positive integer, not '${argv[k] ?? ''}'.`);
      if (a === '--max') o.maxPerPart = v; else o.top = v;
    } else if (a.startsWith('--')) {
      throw new CoverageArgsError(`unknown option '${a}' (use --max N, --top N and ELF file names).`);
    } else o.files.push(a);
  }
  return o;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    console.log(JSON.stringify(decoderCoverage(parseCoverageArgs(process.argv.slice(2))), null, 2));
  } catch (e) {
    if (e instanceof Error && (e.name === 'CoverageArgsError' || e.name === 'ElfFormatError' || 'code' in e)) {
      console.error(`decoder-coverage: ${e.message}`);
      process.exitCode = 2;
    } else throw e;
  }
}
