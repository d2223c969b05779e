/**
 * Turns Intel-syntax snippet text into machine code with GNU as (one `as`
 * run for a whole batch, results cached by source hash).
 *
 * Each snippet sits between two local labels; a .data table of label
 * differences gives every snippet's offset and length in the flat .text
 * dump. Two tokens let generators control encodings GAS would otherwise choose:
 *   %F<n>   an immediate GAS must encode at full width (imm16/imm32): it becomes
 *           `offset .Lf<i>_<n>`, a symbol defined only at the end of the file, so
 *           GAS cannot shrink it to imm8 or pick another form.
 *   %RIP<n> the rip-relative displacement that reaches an absolute target from the
 *           END of the snippet (so only valid in a snippet's last instruction); needs
 *           a second pass once the snippet's length is known.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDir } from './repo-paths.js';
import { CODE_BASE } from './snippet-contract.js';

export class AssembleError extends Error {
  override name = 'AssembleError';
}

export interface AsmSnippet {
  readonly lines: readonly string[];
  readonly forced: readonly bigint[];
  readonly ripTargets: readonly bigint[];
  /** Names the snippet in error messages (form id and case number). */
  readonly label: string;
}

function hex(v: bigint): string {
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** Build the GAS source; `ripDisp(i, n)` supplies the displacement text for %RIP tokens. */
function buildSource(snippets: readonly AsmSnippet[], ripDisp: (i: number, n: number) => string): { text: string; lineOwner: number[] } {
  const out: string[] = ['.intel_syntax noprefix', '.text', '.Lbase:'];
  const lineOwner: number[] = [-1, -1, -1];
  const push = (line: string, owner: number): void => {
    out.push(line);
    lineOwner.push(owner);
  };
  snippets.forEach((s, i) => {
    push(`.Ls${i}:`, i);
    for (const line of s.lines) {
      push(line.replace(/%F(\d+)/g, (_, n: string) => `offset .Lf${i}_${n}`).replace(/%RIP(\d+)/g, (_, n: string) => ripDisp(i, Number(n))), i);
    }
    push(`.Le${i}:`, i);
  });
  push('.data', -1);
  snippets.forEach((_, i) => push(`.long .Ls${i} - .Lbase, .Le${i} - .Ls${i}`, i));
  snippets.forEach((s, i) => s.forced.forEach((v, n) => push(`.set .Lf${i}_${n}, ${hex(v)}`, i)));
  return { text: out.join('\n') + '\n', lineOwner };
}

/** Assembled outputs kept in the cache; runs with fresh random seeds would otherwise grow it without end. */
const CACHE_KEEP = 40;

function pruneCache(dir: string): void {
  try {
    const files = readdirSync(dir).filter((f) => /^asm-[0-9a-f]+\.bin$/.test(f)).map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }));
    files.sort((a, b) => b.t - a.t);
    for (const { f } of files.slice(CACHE_KEEP)) rmSync(join(dir, f), { force: true });
  } catch {
    // Best effort: a concurrent run may be pruning the same directory.
  }
}

function runAs(text: string, lineOwner: readonly number[], snippets: readonly AsmSnippet[]): Uint8Array[] {
  const key = createHash('sha256').update(text).digest('hex').slice(0, 24);
  const cached = join(cacheDir(), `asm-${key}.bin`);
  let blob: Buffer | undefined;
  try {
    blob = readFileSync(cached);
  } catch {
    blob = undefined; // not cached (or pruned by a concurrent run)
  }
  if (blob === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'vsmdiff-as-'));
    try {
      writeFileSync(join(dir, 'in.s'), text);
      const as = spawnSync('as', ['--64', '-o', join(dir, 'in.o'), join(dir, 'in.s')], { encoding: 'utf8' });
      if (as.error !== undefined) throw new AssembleError(`GNU as could not be started: ${as.error.message}`);
      if (as.status !== 0) throw new AssembleError(describeErrors(as.stderr, text, lineOwner, snippets));
      for (const [section, file] of [['.text', 'text.bin'], ['.data', 'data.bin']]) {
        const oc = spawnSync('objcopy', ['-O', 'binary', '-j', section, join(dir, 'in.o'), join(dir, file)], { encoding: 'utf8' });
        if (oc.status !== 0) throw new AssembleError(`objcopy failed to extract ${section}: ${oc.stderr ?? oc.error?.message}`);
      }
      const data = readFileSync(join(dir, 'data.bin'));
      const code = readFileSync(join(dir, 'text.bin'));
      const head = Buffer.alloc(4);
      head.writeUInt32LE(data.length);
      blob = Buffer.concat([head, data, code]);
      // Write then rename, so a concurrent run never reads a half-written file.
      const tmp = `${cached}.${process.pid}.tmp`;
      writeFileSync(tmp, blob);
      renameSync(tmp, cached);
      pruneCache(cacheDir());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const dataLen = blob.readUInt32LE(0);
  if (dataLen !== snippets.length * 8) throw new AssembleError(`The assembler's offset table has ${dataLen / 8} entries for ${snippets.length} snippets.`);
  const code = blob.subarray(4 + dataLen);
  return snippets.map((_, i) => {
    const off = blob.readUInt32LE(4 + i * 8);
    const len = blob.readUInt32LE(8 + i * 8);
    return new Uint8Array(code.subarray(off, off + len));
  });
}

function describeErrors(stderr: string, text: string, lineOwner: readonly number[], snippets: readonly AsmSnippet[]): string {
  const lines = text.split('\n');
  const msgs = stderr.split('\n').filter((l) => /:\d+: /.test(l)).slice(0, 10).map((l) => {
    const m = /:(\d+): (.*)$/.exec(l);
    if (m === null) return l;
    const n = Number(m[1]);
    const owner = lineOwner[n - 1] ?? -1;
    return `  ${owner >= 0 ? snippets[owner].label : 'harness'}: \`${lines[n - 1]}\`: ${m[2]}`;
  });
  return `GNU as rejected ${msgs.length} or more snippet lines:\n${msgs.join('\n')}`;
}

/** Assemble every snippet; returns the bytes of each, in order. */
export function assembleSnippets(snippets: readonly AsmSnippet[]): Uint8Array[] {
  const first = buildSource(snippets, () => '0');
  const codes = runAs(first.text, first.lineOwner, snippets);
  const withRip = snippets.map((_, i) => i).filter((i) => snippets[i].ripTargets.length > 0);
  if (withRip.length === 0) return codes;
  const sub = withRip.map((i) => snippets[i]);
  const second = buildSource(sub, (j, n) => hex(sub[j].ripTargets[n] - (CODE_BASE + BigInt(codes[withRip[j]].length))));
  const redone = runAs(second.text, second.lineOwner, sub);
  withRip.forEach((i, j) => {
    if (redone[j].length !== codes[i].length) throw new AssembleError(`${snippets[i].label}: the snippet changed length when its rip-relative displacement was filled in.`);
    codes[i] = redone[j];
  });
  return codes;
}
