/**
 * Builds (with the system gcc, cached by source hash) and drives the native
 * runner in native/: batches of snippets run on the host CPU, results parsed
 * back. The record layout mirrors native/runner.c; the runner announces its
 * record sizes in a header, which is checked before any result is read.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, nativeSourceDir } from './repo-paths.js';
import { DATA_SIZE, type SnippetState } from './snippet-contract.js';

export class NativeBuildError extends Error {
  override name = 'NativeBuildError';
}
export class NativeRunError extends Error {
  override name = 'NativeRunError';
}

export const MAX_CODE = 248 - 14; // runner.c: MAX_CODE minus the 14-byte return jump
const IN_RECORD = 8 + 248 + 16 * 8 + 8 + DATA_SIZE;
const OUT_RECORD = 8 + 16 * 8 + 8 + 8 + 8 + 8 + DATA_SIZE;
const HEADER = 16;
const BATCH = 4000;
const SOURCES = ['runner.c', 'trampoline.S'];
const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11'];

export interface NativeCase {
  code: Uint8Array;
  init: SnippetState;
}

export interface NativeResult {
  /** Exception vector from the signal context's trap number, or null. */
  vector: number | null;
  /** The snippet did not finish within one second (a harness or test-case bug). */
  timedOut: boolean;
  signal: number;
  gpr: BigUint64Array;
  rflags: bigint;
  /** RIP at the fault, or CODE_BASE + code length. */
  rip: bigint;
  errorCode: bigint;
  /** si_addr of the signal (the faulting address for #PF). */
  faultAddress: bigint;
  mem: Uint8Array;
}

/** Why the native side cannot run here, or null if it can. */
export function nativeUnavailableReason(): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `host is ${process.platform}/${process.arch}, not linux/x64`;
  for (const tool of ['gcc', 'as', 'objcopy']) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.error !== undefined || r.status !== 0) return `${tool} is not installed`;
  }
  return null;
}

/** Compile the runner unless a binary for exactly these sources is cached; returns its path. */
export function buildNativeRunner(): string {
  const dir = nativeSourceDir();
  const hash = createHash('sha256');
  hash.update(CFLAGS.join(' '));
  for (const f of SOURCES) hash.update(readFileSync(join(dir, f)));
  const bin = join(cacheDir(), `runner-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync('gcc', [...CFLAGS, '-o', tmp, ...SOURCES.map((f) => join(dir, f))], { encoding: 'utf8' });
  if (r.error !== undefined) throw new NativeBuildError(`gcc could not be started: ${r.error.message}`);
  if (r.status !== 0) throw new NativeBuildError(`gcc failed to build the native diff runner:\n${r.stderr}`);
  chmodSync(tmp, 0o755);
  renameSync(tmp, bin);
  return bin;
}

function encodeCase(buf: Buffer, at: number, c: NativeCase): void {
  if (c.code.length > MAX_CODE) throw new NativeRunError(`A snippet of ${c.code.length} bytes exceeds the runner's ${MAX_CODE}-byte code limit.`);
  if (c.init.gpr.length !== 16 || c.init.mem.length !== DATA_SIZE) throw new NativeRunError('A case state needs 16 GPRs and a 4096-byte data window.');
  buf.writeUInt32LE(c.code.length, at);
  buf.set(c.code, at + 8);
  let p = at + 8 + 248;
  for (let i = 0; i < 16; i++, p += 8) buf.writeBigUInt64LE(c.init.gpr[i], p);
  buf.writeBigUInt64LE(c.init.rflags, p);
  buf.set(c.init.mem, p + 8);
}

function decodeResult(out: Buffer, at: number): NativeResult {
  const vector = out.readInt32LE(at);
  const gpr = new BigUint64Array(16);
  let p = at + 8;
  for (let i = 0; i < 16; i++, p += 8) gpr[i] = out.readBigUInt64LE(p);
  return {
    vector: vector >= 0 ? vector : null,
    timedOut: vector === -2,
    signal: out.readUInt32LE(at + 4),
    gpr,
    rflags: out.readBigUInt64LE(p),
    rip: out.readBigUInt64LE(p + 8),
    errorCode: out.readBigUInt64LE(p + 16),
    faultAddress: out.readBigUInt64LE(p + 24),
    mem: new Uint8Array(out.subarray(p + 32, p + 32 + DATA_SIZE)),
  };
}

function runBatch(bin: string, cases: readonly NativeCase[]): NativeResult[] {
  const input = Buffer.alloc(cases.length * IN_RECORD);
  cases.forEach((c, i) => encodeCase(input, i * IN_RECORD, c));
  const r = spawnSync(bin, [], { input, maxBuffer: HEADER + cases.length * OUT_RECORD + (1 << 20) });
  if (r.error !== undefined) throw new NativeRunError(`The native diff runner could not run: ${r.error.message}`);
  if (r.status !== 0) {
    throw new NativeRunError(`The native diff runner failed (status ${r.status}, signal ${r.signal}): ${r.stderr.toString().trim()}`);
  }
  const out = r.stdout;
  if (out.length < HEADER || out.toString('latin1', 0, 8) !== 'VSMDIFF1') throw new NativeRunError('The native diff runner printed no VSMDIFF1 header.');
  if (out.readUInt32LE(8) !== IN_RECORD || out.readUInt32LE(12) !== OUT_RECORD) {
    throw new NativeRunError(`Record sizes disagree: runner ${out.readUInt32LE(8)}/${out.readUInt32LE(12)}, harness ${IN_RECORD}/${OUT_RECORD}.`);
  }
  if (out.length !== HEADER + cases.length * OUT_RECORD) {
    throw new NativeRunError(`The native diff runner returned ${(out.length - HEADER) / OUT_RECORD} results for ${cases.length} cases.`);
  }
  return cases.map((_, i) => decodeResult(out, HEADER + i * OUT_RECORD));
}

/** Run every case on the host CPU, in batches of a few thousand per runner process. */
export function runNative(bin: string, cases: readonly NativeCase[]): NativeResult[] {
  const results: NativeResult[] = [];
  for (let i = 0; i < cases.length; i += BATCH) results.push(...runBatch(bin, cases.slice(i, i + BATCH)));
  return results;
}
