/**
 * SMP speed (issue 3, "Speed"): boot to main of a 2-vCPU guest, and a
 * ping-pong of fixed IPIs between two vCPUs in round trips per second.
 * Issue 3 sets no numbers for these, so there is no target: they are the
 * baseline for later work (Hyper-V synthetic IPIs, VSM).
 *
 * Boot to main: bench-boot (exits at the start of main) with --smp 2, so the
 * time covers the library's set-up and INIT/SIPI bring-up of the AP. Reported
 * in-process (load and Machine.run() separately; guest instructions and guest
 * time), as the wall time of the whole `vsmvisor run` process, and, for
 * reference, the wall time of the same image under QEMU (including QEMU's
 * own start-up and firmware).
 *
 * IPI ping-pong: bench-ipi with --smp 2, both sides waiting in HLT and, as a
 * second series, spinning with PAUSE. Round trips per host second use the
 * run time minus the median boot-to-main run time; per guest second use the
 * TSC cycles the guest measured around its loop. Under QEMU, the per-round-
 * trip time comes from two sizes of the run (start-up cancels out).
 *
 *   node dist/bench/smp.js
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  benchImage, BenchError, guestLine, hostSeconds, lineValue, log, median, qemuInfo, qemuMedian, qemuPerIteration, REPO, round,
  runMain, runVsmChild,
} from './common.js';

const REPS = 3;
const SMP = 2;
const MEMORY_MIB = 128;
const IPI_TARGET_SECONDS = 1;
const WAIT_MODES = ['hlt', 'spin'] as const;

export interface BootReport {
  image: string;
  smp: number;
  vsmvisor: {
    loadSeconds: number;
    runSeconds: number;
    runs: number[];
    insns: number;
    guestSeconds: number;
    /** Wall time of `node bin/vsmvisor.js run IMAGE --smp 2` (Node start-up included). */
    cliWallSeconds: number;
    cliRuns: number[];
  };
  qemu: { wallSeconds: number; runs: number[] } | null;
  target: null;
}

export interface IpiReport {
  wait: (typeof WAIT_MODES)[number];
  roundTrips: number;
  vsmvisor: {
    runSeconds: number;
    runs: number[];
    /** runSeconds minus the median boot-to-main run time. */
    loopHostSeconds: number;
    roundTripsPerHostSecond: number;
    tscCycles: number;
    guestSeconds: number;
    roundTripsPerGuestSecond: number;
    insns: number;
    /** Guest instructions per round trip (both vCPUs, boot included). */
    insnsPerRoundTrip: number;
    resultLine: string;
  };
  qemu: { secondsPerRoundTrip: number; roundTripsPerHostSecond: number; base: { roundTrips: number; wallSeconds: number }; scaled: { roundTrips: number; wallSeconds: number } } | null;
  target: null;
}

export interface SmpReport { bootToMain: BootReport; ipiPingPong: IpiReport[]; problems: string[] }

function cliWall(image: string): number {
  const start = process.hrtime.bigint();
  const p = spawnSync(process.execPath, [join(REPO, 'bin', 'vsmvisor.js'), 'run', image, '--smp', String(SMP), '-m', `${MEMORY_MIB}M`], { encoding: 'utf8' });
  const s = hostSeconds(start);
  if (p.status !== 0) throw new BenchError(`vsmvisor run ${image} --smp ${SMP} exited with ${p.status}: ${p.stderr.trim()}`);
  return s;
}

function bootToMain(qemu: boolean): BootReport {
  const image = benchImage('boot');
  const rep = runVsmChild({ image, smp: SMP, memory: MEMORY_MIB << 20, reps: REPS });
  const cli = Array.from({ length: REPS }, () => cliWall(image));
  const q = qemu ? qemuMedian(image, { smp: SMP, memoryMiB: MEMORY_MIB }, REPS) : null;
  const r0 = rep.runs[0];
  return {
    image, smp: SMP,
    vsmvisor: {
      loadSeconds: round(median(rep.runs.map((r) => r.loadSeconds)), 5),
      runSeconds: round(median(rep.runs.map((r) => r.runSeconds)), 5),
      runs: rep.runs.map((r) => round(r.runSeconds, 5)),
      insns: r0.insns, guestSeconds: r0.guestNs / 1e9,
      cliWallSeconds: round(median(cli), 4), cliRuns: cli.map((s) => round(s, 4)),
    },
    qemu: q && { wallSeconds: round(q.seconds, 4), runs: q.runs },
    target: null,
  };
}

function ipi(wait: IpiReport['wait'], bootRunSeconds: number, qemu: boolean, problems: string[]): IpiReport {
  const image = benchImage('ipi');
  const rep = runVsmChild({
    image, smp: SMP, memory: MEMORY_MIB << 20, append: `wait=${wait}`, reps: REPS,
    calibrate: { startIters: 1000, targetSeconds: IPI_TARGET_SECONDS, maxIters: 1e9 },
  });
  const n = rep.iters!;
  const runSeconds = median(rep.runs.map((r) => r.runSeconds));
  const line = guestLine(rep.runs[0].serial, 'ipi');
  if (Number(lineValue(line, 'round_trips')) !== n || lineValue(line, 'received') !== `${n}/${n}`) {
    problems.push(`bench-ipi wait=${wait} on vsmvisor: expected ${n} round trips, got '${line}'`);
  }
  const tsc = Number(lineValue(line, 'tsc_cycles'));
  const guestSeconds = tsc / rep.runs[0].tscHz;
  const loop = runSeconds - bootRunSeconds;
  let q: IpiReport['qemu'] = null;
  if (qemu) {
    // QEMU does about as many round trips per second as we do: a quarter of our N and N itself keep it short.
    const d = qemuPerIteration(image, { smp: SMP, memoryMiB: MEMORY_MIB, append: `wait=${wait}` }, Math.max(1000, Math.round(n / 4)), REPS, 4, 0.75);
    const qline = guestLine(d.scaled.stdout, 'ipi');
    if (lineValue(qline, 'received') !== `${d.scaled.iters}/${d.scaled.iters}`) problems.push(`bench-ipi wait=${wait} under QEMU: '${qline}'`);
    q = {
      secondsPerRoundTrip: d.secondsPerIter, roundTripsPerHostSecond: round(1 / d.secondsPerIter, 0),
      base: { roundTrips: d.base.iters, wallSeconds: round(d.base.seconds, 4) },
      scaled: { roundTrips: d.scaled.iters, wallSeconds: round(d.scaled.seconds, 4) },
    };
  }
  return {
    wait, roundTrips: n,
    vsmvisor: {
      runSeconds: round(runSeconds, 4), runs: rep.runs.map((r) => round(r.runSeconds, 4)), loopHostSeconds: round(loop, 4),
      roundTripsPerHostSecond: round(n / loop, 0), tscCycles: tsc, guestSeconds, roundTripsPerGuestSecond: round(n / guestSeconds, 0),
      insns: rep.runs[0].insns, insnsPerRoundTrip: round(rep.runs[0].insns / n, 1), resultLine: line,
    },
    qemu: q, target: null,
  };
}

export function benchSmp(): SmpReport {
  const qemu = qemuInfo().available;
  const problems: string[] = [];
  const boot = bootToMain(qemu);
  const b = boot.vsmvisor;
  log(`smp: boot to main, --smp ${SMP}: load ${(b.loadSeconds * 1e3).toFixed(1)} ms + run ${(b.runSeconds * 1e3).toFixed(1)} ms ` +
    `(${b.insns} guest insns, ${(b.guestSeconds * 1e3).toFixed(2)} guest ms); whole CLI ${(b.cliWallSeconds * 1e3).toFixed(0)} ms` +
    (boot.qemu ? `; QEMU process ${(boot.qemu.wallSeconds * 1e3).toFixed(0)} ms` : ''));
  const ipis = WAIT_MODES.map((w) => {
    const r = ipi(w, b.runSeconds, qemu, problems);
    log(`smp: IPI ping-pong (wait=${w}): ${r.roundTrips} round trips, ${r.vsmvisor.roundTripsPerHostSecond} per host second, ` +
      `${r.vsmvisor.roundTripsPerGuestSecond} per guest second` +
      (r.qemu ? `; QEMU ${r.qemu.roundTripsPerHostSecond} per host second` : ''));
    return r;
  });
  return { bootToMain: boot, ipiPingPong: ipis, problems };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runMain(benchSmp);
