/**
 * CPU speed (issue 2, "Speed and memory"): instructions retired per host
 * second on three guest workloads, against the targets of 100 MIPS (tight
 * integer loop) and 40 MIPS (memory-heavy, branchy); and, where QEMU is
 * installed, the same images with the same -m and arguments under QEMU TCG,
 * with the wall-time ratio and a check that both computed the same checksum.
 *
 * vsmvisor: one fresh child process per workload (bench/vsm-child.ts) that
 * sizes iters=N so a run takes about TARGET_SECONDS, then times REPS runs
 * around Machine.run(); MIPS = Machine.totalInsns / median seconds.
 * QEMU: wall time of the whole process, median of REPS; its fixed start-up
 * (process, firmware, Multiboot load: the bench-boot guest, which exits at
 * once) is subtracted. Because QEMU finishes our N iterations in a fraction of
 * a second, where start-up noise dominates, it also runs a scaled N' (about
 * QEMU_SCALED_SECONDS of extra work) and the per-iteration time comes from the
 * difference of the two, which cancels start-up exactly.
 *
 *   node dist/bench/cpu-mips.js [int|mem|branch ...]
 */
import { fileURLToPath } from 'node:url';
import {
  atLeast, benchImage, BenchError, guestLine, lineValue, log, median, qemuInfo, runMain, qemuMedian, qemuPerIteration, round, runVsmChild, type Target,
} from './common.js';

export const REPS = 3;
const TARGET_SECONDS = 2;
const MEMORY_MIB = 128;
/** Instructions QEMU's scaled run starts from, and its bounds in host seconds and instructions. */
const QEMU_SCALED_INSNS = 5e8;
const QEMU_SCALED_SECONDS = 1;
const QEMU_MAX_SCALED_INSNS = 2e10;

interface Workload { name: string; what: string; targetMips: number; startIters: number }

export const WORKLOADS: readonly Workload[] = [
  { name: 'int', what: 'tight integer loop (xorshift, LCG, IMUL, ROL, CMOV in registers)', targetMips: 100, startIters: 20_000 },
  { name: 'mem', what: 'memory-heavy (word fill and copy of 1 MiB, sums, byte copy, 4 MiB linked-list walk)', targetMips: 40, startIters: 1 },
  { name: 'branch', what: 'branchy (quicksort, binary search, switch-dispatch interpreter)', targetMips: 40, startIters: 1 },
];

export interface QemuWorkloadReport {
  /** Median wall time of bench-boot (start-up: process, firmware, loading). */
  startupSeconds: number;
  /** Same image, -m and arguments as vsmvisor. */
  wallSeconds: number;
  wallRuns: number[];
  netSeconds: number;
  resultLine: string;
  checksum: string;
  checksumsMatch: boolean;
  /** vsmvisor run seconds / QEMU net seconds (start-up subtracted); null when the net time is noise. */
  wallRatio: number | null;
  wallRatioNote?: string;
  scaled: {
    iters: number;
    wallSeconds: number;
    wallRuns: number[];
    /** (scaled wall - same-args wall) / (scaled iters - iters). */
    secondsPerIter: number;
    /** vsmvisor's instructions per iteration / QEMU's seconds per iteration. */
    estimatedMips: number;
    /** vsmvisor seconds per iteration / QEMU seconds per iteration. */
    ratio: number;
  };
}

export interface WorkloadReport {
  name: string;
  what: string;
  image: string;
  args: string;
  iters: number;
  insns: number;
  insnsPerIter: number;
  vsmvisor: {
    seconds: number;
    runs: number[];
    mips: number;
    resultLine: string;
    checksum: string;
    calibration: { iters: number; insns: number; seconds: number; mips: number }[];
  };
  mipsTarget: Target;
  qemu: QemuWorkloadReport | null;
}

export interface CpuReport {
  reps: number;
  targetRunSeconds: number;
  memoryMiB: number;
  qemu: { available: boolean; version: string | null; startupSeconds: number | null; startupRuns: number[] };
  workloads: WorkloadReport[];
  /** Checksum mismatches between vsmvisor and QEMU: any entry means a CPU bug. */
  problems: string[];
}

function measureOurs(w: Workload): Omit<WorkloadReport, 'qemu'> {
  const image = benchImage(w.name);
  const rep = runVsmChild({
    image, smp: 1, memory: MEMORY_MIB << 20, reps: REPS,
    calibrate: { startIters: w.startIters, targetSeconds: TARGET_SECONDS, maxIters: 1e9 },
  });
  const iters = rep.iters!;
  const secs = rep.runs.map((r) => r.runSeconds);
  const insns = rep.runs[0].insns;
  if (rep.runs.some((r) => r.insns !== insns)) throw new BenchError(`bench-${w.name} retired different instruction counts in identical runs`);
  const line = guestLine(rep.runs[0].serial, w.name);
  const cal = rep.calibration!;
  const last = cal[cal.length - 1];
  // Instructions per iteration from two sizes of the same program: the boot cancels out.
  const insnsPerIter = iters !== last.iters ? (insns - last.insns) / (iters - last.iters) : insns / iters;
  const seconds = median(secs);
  const mips = insns / seconds / 1e6;
  return {
    name: w.name, what: w.what, image: image, args: `iters=${iters}`, iters, insns, insnsPerIter: round(insnsPerIter, 2),
    vsmvisor: {
      seconds: round(seconds, 4), runs: secs.map((s) => round(s, 4)), mips: round(mips, 2), resultLine: line,
      checksum: lineValue(line, 'checksum'),
      calibration: cal.map((c) => ({ iters: c.iters, insns: c.insns, seconds: round(c.runSeconds, 4), mips: round(c.insns / c.runSeconds / 1e6, 2) })),
    },
    mipsTarget: atLeast(mips, w.targetMips, 'MIPS'),
  };
}

function measureQemu(w: Workload, ours: Omit<WorkloadReport, 'qemu'>, startup: { seconds: number; runs: number[] }, problems: string[]): QemuWorkloadReport {
  const maxScale = Math.max(2, Math.floor(QEMU_MAX_SCALED_INSNS / ours.insns));
  const q = qemuPerIteration(ours.image, { smp: 1, memoryMiB: MEMORY_MIB }, ours.iters, REPS,
    QEMU_SCALED_INSNS / ours.insns, QEMU_SCALED_SECONDS, maxScale);
  const line = guestLine(q.base.stdout, w.name);
  const checksum = lineValue(line, 'checksum');
  const match = checksum === ours.vsmvisor.checksum;
  if (!match) {
    const msg = `CHECKSUM MISMATCH on bench-${w.name} ${ours.args}: vsmvisor ${ours.vsmvisor.checksum}, QEMU ${checksum}`;
    problems.push(msg);
    log(`!!! ${msg}`);
  }
  const net = q.base.seconds - startup.seconds;
  // Below a few times the spread of QEMU's start-up, the net time is noise and so is the ratio.
  const noise = Math.max(0.01, Math.max(...startup.runs) - Math.min(...startup.runs));
  const meaningful = net > 3 * noise;
  return {
    startupSeconds: round(startup.seconds, 4), wallSeconds: round(q.base.seconds, 4), wallRuns: q.base.runs,
    netSeconds: round(net, 4), resultLine: line, checksum, checksumsMatch: match,
    wallRatio: meaningful ? round(ours.vsmvisor.seconds / net, 2) : null,
    ...(meaningful ? {} : { wallRatioNote: `QEMU needs ${round(net, 4)} s beyond its start-up, within start-up noise (${round(noise, 4)} s): see scaled.ratio` }),
    scaled: {
      iters: q.scaled.iters, wallSeconds: round(q.scaled.seconds, 4), wallRuns: q.scaled.runs,
      secondsPerIter: q.secondsPerIter, estimatedMips: round(ours.insnsPerIter / q.secondsPerIter / 1e6, 1),
      ratio: round(ours.vsmvisor.seconds / ours.iters / q.secondsPerIter, 2),
    },
  };
}

export function benchCpu(names?: readonly string[]): CpuReport {
  const some = names !== undefined && names.length > 0;
  const chosen = some ? WORKLOADS.filter((w) => names.includes(w.name)) : WORKLOADS;
  if (some && chosen.length !== names.length) {
    throw new BenchError(`unknown workload in '${names.join(' ')}'; the workloads are ${WORKLOADS.map((w) => w.name).join(', ')}`);
  }
  const q = qemuInfo();
  const problems: string[] = [];
  let startup: { seconds: number; runs: number[] } | null = null;
  if (q.available) {
    startup = qemuMedian(benchImage('boot'), { smp: 1, memoryMiB: MEMORY_MIB }, REPS);
    log(`cpu: QEMU ${q.version} start-up (bench-boot) ${startup.seconds.toFixed(3)} s`);
  } else {
    log('cpu: qemu-system-x86_64 not installed: no QEMU comparison');
  }
  const workloads: WorkloadReport[] = [];
  for (const w of chosen) {
    const ours = measureOurs(w);
    log(`cpu: bench-${w.name} ${ours.args}: ${ours.insns} insns in ${ours.vsmvisor.seconds} s = ${ours.vsmvisor.mips} MIPS ` +
      `(target ${w.targetMips}: ${ours.mipsTarget.met ? 'met' : 'NOT met'}); ${ours.vsmvisor.resultLine}`);
    const qemu = startup !== null ? measureQemu(w, ours, startup, problems) : null;
    if (qemu !== null) {
      log(`cpu:   QEMU same args ${qemu.wallSeconds} s wall, ${qemu.netSeconds} s after start-up, ratio vsmvisor/QEMU ${qemu.wallRatio ?? 'n/a (noise)'}; ` +
        `checksum ${qemu.checksumsMatch ? 'matches' : 'DIFFERS'}`);
      log(`cpu:   QEMU iters=${qemu.scaled.iters}: ${qemu.scaled.wallSeconds} s, ~${qemu.scaled.estimatedMips} MIPS, ` +
        `per-iteration ratio vsmvisor/QEMU ${qemu.scaled.ratio}`);
    }
    workloads.push({ ...ours, qemu });
  }
  return {
    reps: REPS, targetRunSeconds: TARGET_SECONDS, memoryMiB: MEMORY_MIB,
    qemu: { ...q, startupSeconds: startup && round(startup.seconds, 4), startupRuns: startup?.runs ?? [] },
    workloads, problems,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain(() => benchCpu(process.argv.slice(2)));
}
