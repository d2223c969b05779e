/**
 * The cross-check corpus: real machine code, each part tagged with the mode it
 * was compiled for. Sources, each skipped with a reason when absent:
 *  - the executable sections of system binaries found on every Debian machine;
 *  - our guest images (guests/build/*.elf64): the 64-bit code, the 32-bit
 *    Multiboot entry (start .. start64) and the 16-bit AP trampoline;
 *  - corpus-source.c compiled here with gcc -m32 and -m16 at several levels;
 *  - "foreign mode" slices: 64-bit library code decoded as 32-bit and 16-bit
 *    code. Not code anyone runs, but real byte patterns (REX bytes become
 *    INC/DEC, 63h becomes ARPL, ...) on which both decoders must still agree.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { CodeSize } from '../../../src/x86/disasm.js';
import { repoRoot } from '../diff/repo-paths.js';
import { bytesBetween, codeSections, readElf, type ElfFile } from './elf.js';

export interface CorpusPart {
  /** Where the code comes from (see the file comment). */
  source: 'system' | 'foreign-mode' | 'guest' | 'gcc';
  name: string;
  bits: CodeSize;
  code: Uint8Array;
  /** Instruction budget for this part (keeps the test well under its time limit). */
  maxInstructions: number;
}

export interface Corpus {
  parts: CorpusPart[];
  /** Sources that could not be used, with the reason. */
  skipped: string[];
}

/** System binaries present on every Debian x86-64 machine (coreutils, bash, glibc). */
export const SYSTEM_BINARIES = ['/bin/ls', '/usr/bin/bash', '/lib/x86_64-linux-gnu/libc.so.6'];

export interface CorpusOptions {
  /** Instructions per system binary (their start; the rest of a big binary is more of the same). */
  perBinary: number;
  /** Bytes of libc decoded in each foreign mode. */
  foreignBytes: number;
}

export const TEST_CORPUS: CorpusOptions = { perBinary: 200_000, foreignBytes: 256 * 1024 };

/** Reads an ELF file, or records why it cannot be used (unreadable, truncated while being rebuilt, not ELF). */
function tryReadElf(path: string, label: string, c: Corpus): ElfFile | undefined {
  try {
    return readElf(new Uint8Array(readFileSync(path)), label);
  } catch (e) {
    c.skipped.push(`${label}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

function systemBinaries(o: CorpusOptions, c: Corpus): void {
  for (const path of SYSTEM_BINARIES) {
    if (!existsSync(path)) { c.skipped.push(`${path}: not present`); continue; }
    const elf = tryReadElf(path, path, c);
    if (elf === undefined) continue;
    if (elf.machine !== 62) { c.skipped.push(`${path}: not an x86-64 ELF file`); continue; }
    const text = elf.sections.find((s) => s.name === '.text');
    if (text === undefined) { c.skipped.push(`${path}: no .text section`); continue; }
    c.parts.push({ source: 'system', name: `${basename(path)} .text`, bits: 64, code: text.data, maxInstructions: o.perBinary });
    if (path.includes('libc.so')) {
      const slice = text.data.subarray(0, o.foreignBytes);
      for (const bits of [32, 16] as const) {
        c.parts.push({ source: 'foreign-mode', name: `${basename(path)} .text as ${bits}-bit code`, bits, code: slice,
          maxInstructions: o.perBinary });
      }
    }
  }
}

function guestImages(c: Corpus): void {
  const dir = join(repoRoot(), 'guests', 'build');
  const images = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.elf64')).sort() : [];
  if (images.length === 0) { c.skipped.push('guests/build/*.elf64: not built (run `npm run guests`)'); return; }
  for (const f of images) {
    const elf = tryReadElf(join(dir, f), f, c);
    if (elf === undefined) continue;
    // lib/entry.S: .init holds the Multiboot header, 32-bit code from "start" and 64-bit code from "start64";
    // the linker script puts .init first in .text.
    const code32 = bytesBetween(elf, '.text', 'start', 'start64');
    const code64 = bytesBetween(elf, '.text', 'start64');
    if (code32 !== undefined && code64 !== undefined) {
      c.parts.push({ source: 'guest', name: `${f} start..start64`, bits: 32, code: code32, maxInstructions: Infinity });
      c.parts.push({ source: 'guest', name: `${f} start64..end of .text`, bits: 64, code: code64, maxInstructions: Infinity });
    } else {
      c.skipped.push(`${f}: no start/start64 symbols; its executable sections are decoded as 64-bit code`);
      for (const s of codeSections(elf)) {
        c.parts.push({ source: 'guest', name: `${f} ${s.name}`, bits: 64, code: s.data, maxInstructions: Infinity });
      }
    }
    // lib/trampoline.S: 16-bit code from ap_tramp_start up to its GDT.
    const code16 = bytesBetween(elf, '.rodata', 'ap_tramp_start', 'tramp_gdt');
    if (code16 !== undefined) {
      c.parts.push({ source: 'guest', name: `${f} ap_tramp_start..tramp_gdt`, bits: 16, code: code16, maxInstructions: Infinity });
    }
  }
}

/** gcc flag sets for corpus-source.c: optimisation levels, an old and a new target. */
const GCC_VARIANTS = ['-O0', '-O2', '-Os', '-O2 -march=i386', '-O3 -march=haswell', '-O2 -mregparm=3 -fomit-frame-pointer'];

function gccObjects(c: Corpus): void {
  const src = join(repoRoot(), 'test', 'x86', 'xcheck', 'corpus-source.c');
  const tmp = mkdtempSync(join(tmpdir(), 'vsmvisor-xcheck-'));
  try {
    for (const bits of [32, 16] as const) {
      for (const flags of GCC_VARIANTS) {
        const obj = join(tmp, 'corpus.o');
        const r = spawnSync('gcc', [`-m${bits}`, ...flags.split(' '), '-ffreestanding', '-fno-pic',
          '-fno-asynchronous-unwind-tables', '-c', src, '-o', obj], { encoding: 'utf8' });
        if (r.error !== undefined || r.status !== 0) {
          c.skipped.push(`gcc -m${bits} ${flags}: ${r.error?.message ?? r.stderr.trim().split('\n')[0]}`);
          continue;
        }
        const elf = tryReadElf(obj, `gcc -m${bits} ${flags} output`, c);
        if (elf === undefined) continue;
        for (const s of codeSections(elf)) {
          c.parts.push({ source: 'gcc', name: `corpus-source.c gcc -m${bits} ${flags} ${s.name}`, bits, code: s.data.slice(),
            maxInstructions: Infinity });
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Builds the whole corpus. */
export function buildCorpus(o: CorpusOptions = TEST_CORPUS): Corpus {
  const c: Corpus = { parts: [], skipped: [] };
  systemBinaries(o, c);
  guestImages(c);
  gccObjects(c);
  return c;
}
