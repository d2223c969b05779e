/**
 * Host memory of a large, lightly used guest (issue 2, "Speed and memory":
 * guest RAM is sparse, so a 4 GiB guest that touches 16 MiB costs under
 * 100 MiB of host memory).
 *
 * bench-memtouch allocates 16 MiB from the guest library's page allocator,
 * writes and sums it, and exits. It runs in a fresh child process (with
 * --expose-gc, garbage collected before each reading) on a 4 GiB guest; the
 * cost is the growth of the process's RSS from before the machine is built
 * to after it ran, which includes the guest RAM chunks, the decoded-block
 * cache, the JIT's code and anything else running the guest allocated.
 * PhysMemory.allocatedBytes is the guest RAM part alone. The same guest on
 * 128 MiB is the reference: the two should cost the same.
 *
 *   node dist/bench/memory.js
 */
import { fileURLToPath } from 'node:url';
import { below, benchImage, guestLine, lineValue, log, round, runMain, runVsmChild, type Target } from './common.js';

const MIB = 1 << 20;
const TOUCH_MIB = 16;
const TARGET_MIB = 100;

export interface MemoryRun {
  guestMemoryMiB: number;
  touchedMiB: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  rssGrowthMiB: number;
  /** PhysMemory.allocatedBytes, in MiB: guest RAM backed by host memory. */
  guestRamAllocatedMiB: number;
  resultLine: string;
}

export interface MemoryReport {
  large: MemoryRun;
  /** The cost target applies to the large guest's RSS growth. */
  rssGrowthTarget: Target;
  reference: MemoryRun;
  problems: string[];
}

function measure(guestMiB: number, problems: string[]): MemoryRun {
  const rep = runVsmChild({ image: benchImage('memtouch'), smp: 1, memory: guestMiB * MIB, append: `mib=${TOUCH_MIB}`, reps: 1, gc: true });
  const r = rep.runs[0];
  const line = guestLine(r.serial, 'memtouch');
  if (Number(lineValue(line, 'mib')) !== TOUCH_MIB) problems.push(`bench-memtouch touched '${lineValue(line, 'mib')}' MiB, not ${TOUCH_MIB}`);
  if (r.allocatedBytes < TOUCH_MIB * MIB) problems.push(`a ${guestMiB} MiB guest backed only ${r.allocatedBytes} bytes after touching ${TOUCH_MIB} MiB`);
  return {
    guestMemoryMiB: guestMiB, touchedMiB: TOUCH_MIB,
    rssBeforeMiB: round(r.rssBefore / MIB, 1), rssAfterMiB: round(r.rssAfter / MIB, 1),
    rssGrowthMiB: round((r.rssAfter - r.rssBefore) / MIB, 1),
    guestRamAllocatedMiB: round(r.allocatedBytes / MIB, 2), resultLine: line,
  };
}

export function benchMemory(): MemoryReport {
  const problems: string[] = [];
  const large = measure(4096, problems);
  const reference = measure(128, problems);
  const target = below(large.rssGrowthMiB, TARGET_MIB, 'MiB');
  for (const m of [large, reference]) {
    log(`memory: ${m.guestMemoryMiB} MiB guest touching ${m.touchedMiB} MiB: RSS ${m.rssBeforeMiB} -> ${m.rssAfterMiB} MiB ` +
      `(+${m.rssGrowthMiB} MiB), guest RAM backed ${m.guestRamAllocatedMiB} MiB`);
  }
  log(`memory: target RSS growth < ${TARGET_MIB} MiB for the 4 GiB guest: ${target.met ? 'met' : 'NOT met'}`);
  return { large, rssGrowthTarget: target, reference, problems };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runMain(benchMemory);
