/**
 * Runs every benchmark (CPU MIPS against QEMU, SMP boot and IPI ping-pong,
 * host memory of a sparse guest, hypercall round trips, ioeventfd against VMM
 * exits, VSM switching and protections, running on the Hyper-V model) and
 * prints one JSON object on stdout, with
 * human-readable progress on stderr. Targets are printed next to their
 * measurements with `met`; a missed target is reported, not an error. The
 * exit status is 1 only when a benchmark could not run or found a problem
 * (e.g. vsmvisor and QEMU computed different checksums).
 *
 *   npm run bench          (builds, then node dist/bench/run-all.js)
 */
import { cpus } from 'node:os';
import { benchCpu } from './cpu-mips.js';
import { hostSeconds, log, qemuInfo, round, runMain } from './common.js';
import { benchHypercall } from './hypercall.js';
import { benchIoeventfd } from './ioeventfd.js';
import { benchMemory } from './memory.js';
import { memoryAttributesBench } from './memory-attributes.js';
import { benchVsm } from './vsm.js';
import { benchNested } from './nested-tlb.js';
import { benchSmp } from './smp.js';

interface TargetLine { what: string; value: number; unit: string; target: number; met: boolean }

function runAll() {
  const start = process.hrtime.bigint();
  const host = {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    node: process.version,
    qemu: qemuInfo().version,
    date: new Date().toISOString(),
    note: 'shared, noisy machine: compare numbers taken in the same run',
  };
  log(`bench: ${host.cpuModel}, ${host.cpus} CPUs, Node ${host.node}, QEMU ${host.qemu ?? 'not installed'}`);
  const timed = <T>(f: () => T): [T, number] => { const t = process.hrtime.bigint(); const r = f(); return [r, round(hostSeconds(t), 1)]; };
  const [cpu, cpuSeconds] = timed(benchCpu);
  const [smp, smpSeconds] = timed(benchSmp);
  const [memory, memorySeconds] = timed(benchMemory);
  const [hypercall, hypercallSeconds] = timed(benchHypercall);
  const [memoryAttributes, memoryAttributesSeconds] = timed(memoryAttributesBench);
  const [ioeventfd, ioeventfdSeconds] = timed(benchIoeventfd);
  const [vsm, vsmSeconds] = timed(benchVsm);
  const [nestedTlb, nestedTlbSeconds] = timed(benchNested);
  const targets: TargetLine[] = [
    ...cpu.workloads.map((w) => ({ what: `bench-${w.name} MIPS`, value: w.vsmvisor.mips, unit: 'MIPS', target: w.mipsTarget.target, met: w.mipsTarget.met })),
    { what: '4 GiB guest touching 16 MiB: host RSS growth', value: memory.large.rssGrowthMiB, unit: 'MiB (below)', target: memory.rssGrowthTarget.target, met: memory.rssGrowthTarget.met },
    ...memoryAttributes.patterns.flatMap((p) => [
      { what: `1M page protections (${p.pattern}): seconds`, value: p.seconds, unit: 's (below)', target: p.timeTarget.target, met: p.timeTarget.met },
      { what: `1M page protections (${p.pattern}): memory`, value: p.memoryMiB, unit: 'MiB (below)', target: p.memoryTarget.target, met: p.memoryTarget.met },
    ]),
    { what: 'VtlCall+VtlReturn round trip / null hypercall', value: vsm.roundTrip.ratio, unit: 'x (at most)', target: vsm.roundTrip.target.target, met: vsm.roundTrip.target.met },
    ...vsm.protections.flatMap((p) => [
      { what: `1M ModifyVtlProtectionMask pages (${p.pattern}): seconds`, value: p.hostSeconds, unit: 's (at most)', target: p.seconds.target, met: p.seconds.met },
      { what: `1M ModifyVtlProtectionMask pages (${p.pattern}): memory`, value: p.attributeMiB, unit: 'MiB (below)', target: p.memory.target, met: p.memory.met },
    ]),
    ...vsm.slowdown.map((d) => ({ what: `bench-${d.guest} under 1M VTL protections: slowdown`, value: d.slowdownPercent, unit: '% (at most)', target: d.target.target, met: d.target.met })),
  ];
  const problems = [...cpu.problems, ...smp.problems, ...memory.problems, ...hypercall.problems, ...memoryAttributes.problems, ...ioeventfd.problems, ...vsm.problems, ...nestedTlb.problems];
  const totalSeconds = round(hostSeconds(start), 1);
  log('bench: targets');
  for (const t of targets) log(`  ${t.met ? 'met    ' : 'NOT MET'}  ${t.what}: ${t.value} ${t.unit}, target ${t.target}`);
  for (const w of cpu.workloads) {
    if (w.qemu) log(`  bench-${w.name}: vsmvisor/QEMU per iteration ${w.qemu.scaled.ratio}x slower (QEMU ~${w.qemu.scaled.estimatedMips} MIPS)`);
  }
  if (problems.length > 0) for (const p of problems) log(`  PROBLEM: ${p}`);
  log(`bench: done in ${totalSeconds} s`);
  return {
    host, targets, cpu, smp, memory, hypercall, memoryAttributes, ioeventfd, vsm, nestedTlb, problems, totalSeconds,
    sectionSeconds: {
      cpu: cpuSeconds, smp: smpSeconds, memory: memorySeconds, hypercall: hypercallSeconds, memoryAttributes: memoryAttributesSeconds,
      ioeventfd: ioeventfdSeconds, vsm: vsmSeconds, nestedTlb: nestedTlbSeconds,
    },
  };
}

runMain(runAll);
