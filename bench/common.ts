/**
 * Shared pieces of the benchmarks: paths, medians, stderr logging, running a
 * guest on vsmvisor in a fresh child process (bench/vsm-child.ts) and under
 * QEMU TCG. Every benchmark reports what it measured, the target next to it,
 * and whether the target was met (issues 2 and 3: speed targets live in
 * benchmarks that print JSON, never in timed tests).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildRequest, ChildReport } from './vsm-child.js';

/** dist/bench/common.js -> the repository root. */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GUEST_BUILD = join(REPO, 'guests', 'build');
const CHILD = join(REPO, 'dist', 'bench', 'vsm-child.js');

export class BenchError extends Error {
  override name = 'BenchError';
}

/** The image of a benchmark guest; a clear error when `make -C guests` has not run. */
export function benchImage(name: string): string {
  const path = join(GUEST_BUILD, `bench-${name}.elf`);
  if (!existsSync(path)) throw new BenchError(`${path} does not exist: build the guests first ('make -C guests').`);
  return path;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new BenchError('median of no measurements');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Rounds for JSON: enough digits to be useful, not float noise. */
export function round(x: number, digits = 3): number {
  return Number(x.toFixed(digits));
}

export function log(line: string): void {
  process.stderr.write(line + '\n');
}

export function hostSeconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** A target next to its measurement: `met` says whether the measurement reached it. */
export interface Target { target: number; unit: string; met: boolean }
export function atLeast(value: number, target: number, unit: string): Target {
  return { target, unit, met: value >= target };
}
export function below(value: number, target: number, unit: string): Target {
  return { target, unit, met: value < target };
}

/**
 * Runs a guest on vsmvisor in a fresh Node process (clean JIT state and heap),
 * `reps` times in that process; each run is timed around Machine.run().
 */
export function runVsmChild(req: ChildRequest): ChildReport {
  const args = [...(req.gc ? ['--expose-gc'] : []), CHILD, JSON.stringify(req)];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (p.status !== 0) {
    throw new BenchError(`the vsmvisor child for ${req.image} failed (status ${p.status}): ${p.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  const report = JSON.parse(p.stdout) as ChildReport;
  for (const r of report.runs) {
    if (r.result.kind !== 'exit' || r.result.code !== 0) {
      throw new BenchError(`${req.image} did not exit with 0 on vsmvisor: ${JSON.stringify(r.result)}; serial: ${r.serial.trim().slice(-300)}`);
    }
  }
  return report;
}

/** The line a benchmark guest prints ("bench-x: ... checksum=0x..."), or throws. */
export function guestLine(serial: string, name: string): string {
  const line = serial.split(/\r?\n/).find((l) => l.startsWith(`bench-${name}:`));
  if (line === undefined) throw new BenchError(`bench-${name} printed no result line; its output was: ${serial.trim().slice(-300)}`);
  return line.trim();
}

export function lineValue(line: string, key: string): string {
  const m = new RegExp(`\\b${key}=(\\S+)`).exec(line);
  if (m === null) throw new BenchError(`no ${key}= in '${line}'`);
  return m[1];
}

// ---- QEMU ----

export interface QemuInfo { available: boolean; version: string | null }

export function qemuInfo(): QemuInfo {
  const p = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  if (p.status !== 0) return { available: false, version: null };
  return { available: true, version: /version (\S+)/.exec(p.stdout)?.[1] ?? p.stdout.split('\n')[0] };
}

export interface QemuRun { seconds: number; code: number; stdout: string }

/**
 * One QEMU TCG run of a Multiboot image with the project's standard machine
 * (guests/README.md), timed from spawn to exit: QEMU's start-up and firmware
 * are included, which is why callers subtract them.
 */
export function runQemu(image: string, opts: { smp: number; memoryMiB: number; append?: string; timeoutSeconds?: number }): QemuRun {
  const args = ['-accel', 'tcg', '-machine', 'pc', '-cpu', 'max', '-m', String(opts.memoryMiB), '-smp', String(opts.smp),
    '-display', 'none', '-serial', 'stdio', '-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=4', '-kernel', image];
  if (opts.append !== undefined) args.push('-append', opts.append);
  const start = process.hrtime.bigint();
  const p = spawnSync('qemu-system-x86_64', args, { encoding: 'utf8', timeout: (opts.timeoutSeconds ?? 120) * 1000, maxBuffer: 16 << 20 });
  const seconds = hostSeconds(start);
  // isa-debug-exit: QEMU exits with (code << 1) | 1.
  if (p.status === null || (p.status & 1) === 0) {
    throw new BenchError(`QEMU did not exit through isa-debug-exit for ${image} (status ${p.status}, signal ${p.signal}): ${p.stderr.trim().slice(-300)}`);
  }
  const code = p.status >> 1;
  if (code !== 0) throw new BenchError(`${image} exited with ${code} under QEMU: ${p.stdout.trim().slice(-300)}`);
  return { seconds, code, stdout: p.stdout };
}

/** Median wall time of `reps` QEMU runs, and the last run's output. */
export function qemuMedian(image: string, opts: Parameters<typeof runQemu>[1], reps: number): { seconds: number; runs: number[]; stdout: string } {
  const runs: number[] = [];
  let stdout = '';
  for (let k = 0; k < reps; k++) {
    const r = runQemu(image, opts);
    runs.push(r.seconds);
    stdout = r.stdout;
  }
  return { seconds: median(runs), runs: runs.map((s) => round(s, 4)), stdout };
}

/**
 * Entry point of a benchmark file run on its own: prints the report as JSON;
 * a BenchError is one line on stderr and exit status 1. Reports with problems
 * (e.g. a checksum mismatch) also exit with 1.
 */
export function runMain(bench: () => { problems: string[] }): void {
  try {
    const report = bench();
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    if (report.problems.length > 0) process.exitCode = 1;
  } catch (e) {
    if (!(e instanceof BenchError)) throw e;
    log(`bench: ${e.message}`);
    process.exitCode = 1;
  }
}

export interface QemuSeries { iters: number; seconds: number; runs: number[]; stdout: string }

/**
 * QEMU's cost per iteration of a guest that takes iters=N, free of QEMU's
 * start-up: the median wall time at N and at a larger N' (about `seconds` of
 * extra work), and secondsPerIter = (wall(N') - wall(N)) / (N' - N). N' is
 * found with probe runs from N * firstScale, growing at most 8x per probe so
 * that one noisy probe cannot make the measured run take minutes.
 */
export function qemuPerIteration(image: string, opts: { smp: number; memoryMiB: number; append?: string }, iters: number,
  reps: number, firstScale: number, seconds = 1, maxScale = 1e6): { base: QemuSeries; scaled: QemuSeries; secondsPerIter: number } {
  const argsFor = (n: number) => [opts.append, `iters=${n}`].filter((w) => w !== undefined && w !== '').join(' ');
  const at = (n: number): QemuSeries => ({ iters: n, ...qemuMedian(image, { ...opts, append: argsFor(n) }, reps) });
  const base = at(iters);
  let scale = Math.max(2, Math.min(maxScale, Math.ceil(firstScale)));
  for (let probe = 0; probe < 4 && scale < maxScale; probe++) {
    const extra = runQemu(image, { ...opts, append: argsFor(iters * scale) }).seconds - base.seconds;
    if (extra >= seconds / 2) break;
    const grow = Math.min(8, Math.max(2, Math.ceil(seconds / Math.max(extra, 1e-3))));
    scale = Math.min(maxScale, scale * grow);
  }
  const scaled = at(iters * scale);
  return { base, scaled, secondsPerIter: (scaled.seconds - base.seconds) / (scaled.iters - base.iters) };
}
