/**
 * Child process of the benchmarks: boots one guest on vsmvisor in-process
 * (new Machine(...).run()), `reps` times, and prints one JSON ChildReport on
 * stdout. Run in a fresh Node process so each benchmark starts with a clean
 * JIT and heap, and so RSS growth (bench/memory.ts) belongs to this guest only.
 *
 *   node dist/bench/vsm-child.js '{"image":"...","smp":1,"memory":134217728,"reps":3}'
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Machine, type MachineResult } from '../src/vmm/machine.js';
import { HvRegisterName, HvStatus } from '../src/spec/tlfs.js';
import { enableProtectionConfig } from '../src/vmm/vsm/vsm-registers.js';

export interface ChildRequest {
  image: string;
  smp: number;
  /** Guest RAM in bytes. */
  memory: number;
  append?: string;
  reps: number;
  /** Run with --expose-gc and collect garbage before each RSS reading. */
  gc?: boolean;
  /**
   * Size the work first: run with `iters=N` (N from startIters, growing) until
   * one run takes at least 40% of targetSeconds, then pick the N that should
   * take targetSeconds; the timed runs use it. These runs also warm the JIT.
   */
  calibrate?: { startIters: number; targetSeconds: number; maxIters: number };
  /** Hyper-V flags (the CLI's --hv), e.g. for a VSM partition. */
  hv?: string[];
  /**
   * With hv-vsm: before the run, VTL1 is enabled (host side) with protection
   * on and protects `pages` pages from `baseGfn` up, alternating R-X / R--
   * (one attribute range per page, bench/vsm.ts), in the machine that runs
   * (`on: 'run'`) or in a second machine built the same way that does not run
   * (`on: 'other'`: the same host-side work, so a comparison isolates what the
   * protections cost the run from what the set-up did to the JIT and heap).
   */
  vsmProtect?: { pages: number; baseGfn: number; on: 'run' | 'other' };
}

export interface ChildRun {
  result: MachineResult;
  /** Instructions retired by all vCPUs (Machine.totalInsns). */
  insns: number;
  /** Host seconds to build the machine and load the image (and, with vsmProtect, to apply the protections). */
  loadSeconds: number;
  /** Host seconds spent in Machine.run(). */
  runSeconds: number;
  /** Guest time at the end (ns; guest time comes from retired instructions). */
  guestNs: number;
  /** Guest TSC frequency, to turn TSC cycles the guest printed into guest seconds. */
  tscHz: number;
  serial: string;
  /** process.memoryUsage().rss before the machine was built and after it ran. */
  rssBefore: number;
  rssAfter: number;
  /** Host bytes holding guest RAM (PhysMemory.allocatedBytes). */
  allocatedBytes: number;
}

export interface CalibrationRun { iters: number; insns: number; runSeconds: number }

export interface ChildReport {
  runs: ChildRun[];
  /** With `calibrate`: the iters=N the runs used, and the sizing runs. */
  iters?: number;
  calibration?: CalibrationRun[];
}

/** A calibration run must last this share of the target before its speed is trusted. */
const MIN_CALIBRATION_SHARE = 0.4;

const gc = (globalThis as { gc?: () => void }).gc;

function rss(): number {
  if (gc !== undefined) gc();
  return process.memoryUsage().rss;
}

function withIters(append: string | undefined, iters: number): string {
  return [append, `iters=${iters}`].filter((w) => w !== undefined && w !== '').join(' ');
}

function calibrate(req: ChildRequest, image: Uint8Array, cal: NonNullable<ChildRequest['calibrate']>): { iters: number; runs: CalibrationRun[] } {
  const runs: CalibrationRun[] = [];
  let n = Math.max(1, Math.floor(cal.startIters));
  for (;;) {
    const r = runOnce({ ...req, append: withIters(req.append, n) }, image);
    if (r.result.kind !== 'exit') throw new Error(`calibration run with iters=${n} ended with ${JSON.stringify(r.result)}`);
    runs.push({ iters: n, insns: r.insns, runSeconds: r.runSeconds });
    // Scale from a run long enough that boot, set-up and JIT warm-up are a small share of it.
    const want = Math.max(1, Math.min(cal.maxIters, Math.round(n * cal.targetSeconds / r.runSeconds)));
    if (r.runSeconds >= cal.targetSeconds * MIN_CALIBRATION_SHARE || n >= cal.maxIters) return { iters: want, runs };
    n = Math.min(cal.maxIters, Math.max(n * 2, Math.min(n * 8, Math.round(want * MIN_CALIBRATION_SHARE * 1.5))));
  }
}

function runOnce(req: ChildRequest, image: Uint8Array): ChildRun {
  const decoder = new TextDecoder();
  let serial = '';
  const rssBefore = rss();
  const t0 = process.hrtime.bigint();
  const build = () => new Machine({
    image, imagePath: req.image, smp: req.smp, memory: req.memory, append: req.append,
    timeoutSeconds: 300, serial: (b) => { serial += decoder.decode(b, { stream: true }); },
    hv: req.hv === undefined ? undefined : { flags: new Set(req.hv) },
  });
  const m = build();
  if (req.vsmProtect !== undefined) {
    protect(req.vsmProtect.on === 'run' ? m : build(), req.vsmProtect);
    gc?.(); // the set-up's garbage is not the run's
  }
  const t1 = process.hrtime.bigint();
  const result = m.run();
  const t2 = process.hrtime.bigint();
  return {
    result, insns: m.totalInsns,
    loadSeconds: Number(t1 - t0) / 1e9, runSeconds: Number(t2 - t1) / 1e9,
    guestNs: m.vm.clock.roundStartNs, tscHz: m.vm.clock.tscHz, serial,
    rssBefore, rssAfter: rss(), allocatedBytes: m.vm.mem.allocatedBytes,
  };
}

function protect(m: Machine, o: NonNullable<ChildRequest['vsmProtect']>): void {
  const p = m.vsm;
  if (p === null) throw new Error('vsmProtect needs hv-vsm');
  p.enablePartitionVtl(1);
  if (p.writeVsmRegister(HvRegisterName.VsmPartitionConfig, p.vps[0]!, 1, enableProtectionConfig(0xf)) !== HvStatus.SUCCESS) throw new Error('EnableVtlProtection refused');
  for (let k = 0; k < o.pages; k++) p.protections.protect(1, o.baseGfn + k, o.baseGfn + k + 1, k & 1 ? 0x1 : 0xd);
}

function main(): void {
  const req = JSON.parse(process.argv[2] ?? '{}') as ChildRequest;
  if (typeof req.image !== 'string' || !(req.reps >= 1)) {
    process.stderr.write('vsm-child: expected one JSON argument with image, smp, memory and reps\n');
    process.exit(2);
  }
  const image = readFileSync(req.image);
  const report: ChildReport = { runs: [] };
  let run = req;
  if (req.calibrate !== undefined) {
    const c = calibrate(req, image, req.calibrate);
    report.iters = c.iters;
    report.calibration = c.runs;
    run = { ...req, append: withIters(req.append, c.iters) };
  }
  for (let k = 0; k < req.reps; k++) report.runs.push(runOnce(run, image));
  process.stdout.write(JSON.stringify(report) + '\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
