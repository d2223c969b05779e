/**
 * Memory attributes at boot scale (DESIGN §3.4: a boot issues hundreds of
 * thousands of protection changes; target: 1,000,000 page protections apply
 * in at most 2 s and the stored attributes use under 32 MiB).
 *
 * Each pattern runs on a fresh Vm (8 GiB sparse memory, 4 vCPUs) and makes
 * 1,000,000 single-page KVM_SET_MEMORY_ATTRIBUTES calls that cannot merge:
 *   ascending   pages 0..999,999 in order, alternating R-X / R-- (one range per page)
 *   random      every other page (2k) in a shuffled order, R-X (one range per page, gaps between)
 *   lift        after "ascending", every page set back to 0 one call at a time
 * Memory is the growth of heap + ArrayBuffers from before the calls to after
 * them, garbage collected before each reading. Lookups: vCPU pagePermissions()
 * on the million-range map, random frames (binary searches) and one frame
 * again and again (the lookup cache).
 *
 *   node dist/bench/memory-attributes.js
 */
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Vm } from '../src/kvm/vm.js';
import { below, hostSeconds, log, round, runMain, type Target } from './common.js';

const PAGES = 1_000_000;
const MIB = 1 << 20;
const TARGET_SECONDS = 2;
const TARGET_MIB = 32;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function usedBytes(): number {
  gc(); gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

export interface PatternReport {
  pattern: string;
  calls: number;
  seconds: number;
  callsPerSecond: number;
  ranges: number;
  memoryMiB: number;
  storageMiB: number;
  timeTarget: Target;
  memoryTarget: Target;
}

function newVm(): Vm {
  const vm = new Vm({ memorySize: 8 * 1024 * MIB });
  for (let k = 0; k < 4; k++) vm.createVcpu(k);
  return vm;
}

function set(vm: Vm, gfn: number, attributes: number): void {
  vm.setMemoryAttributes({ address: gfn * 4096, size: 4096, attributes, flags: 0 });
}

function measure(pattern: string, vm: Vm, apply: () => void): PatternReport {
  const before = usedBytes();
  const t0 = process.hrtime.bigint();
  apply();
  const seconds = hostSeconds(t0);
  const memoryMiB = round(Math.max(0, usedBytes() - before) / MIB, 2);
  const a = vm.memoryAttributes;
  const r: PatternReport = {
    pattern, calls: PAGES, seconds: round(seconds), callsPerSecond: Math.round(PAGES / seconds), ranges: a.rangeCount,
    memoryMiB, storageMiB: round(a.storageBytes / MIB, 2),
    timeTarget: { target: TARGET_SECONDS, unit: 's', met: seconds <= TARGET_SECONDS },
    memoryTarget: below(memoryMiB, TARGET_MIB, 'MiB'),
  };
  log(`memory-attributes: ${pattern}: ${PAGES} calls in ${r.seconds} s (${r.callsPerSecond}/s), ${r.ranges} ranges, ` +
    `+${memoryMiB} MiB (storage ${r.storageMiB} MiB); targets ${r.timeTarget.met ? 'met' : 'NOT met'} / ${r.memoryTarget.met ? 'met' : 'NOT met'}`);
  return r;
}

/** Deterministic shuffle (xorshift32). */
function shuffled(n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let k = 0; k < n; k++) a[k] = k;
  let x = 0x9e3779b9;
  for (let k = n - 1; k > 0; k--) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const j = x % (k + 1);
    const t = a[k]; a[k] = a[j]; a[j] = t;
  }
  return a;
}

function lookups(vm: Vm): { randomPerSecond: number; repeatedPerSecond: number } {
  const v = vm.vcpus[0];
  const n = 2_000_000;
  let x = 12345, sum = 0;
  let t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; sum += v.pagePermissions(x % PAGES); }
  const random = n / hostSeconds(t0);
  t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) sum += v.pagePermissions(777);
  const repeated = n / hostSeconds(t0);
  if (sum < 0) log('unreachable');
  return { randomPerSecond: Math.round(random), repeatedPerSecond: Math.round(repeated) };
}

export function memoryAttributesBench(): { patterns: PatternReport[]; lookups: ReturnType<typeof lookups>; problems: string[] } {
  const problems: string[] = [];
  const patterns: PatternReport[] = [];

  let vm = newVm();
  patterns.push(measure('ascending', vm, () => { for (let g = 0; g < PAGES; g++) set(vm, g, g & 1 ? 0x6 : 0x2); }));
  if (vm.memoryAttributes.rangeCount !== PAGES) problems.push(`ascending: expected ${PAGES} ranges, got ${vm.memoryAttributes.rangeCount}`);
  const look = lookups(vm);
  log(`memory-attributes: lookups on ${PAGES} ranges: ${look.randomPerSecond}/s random frames, ${look.repeatedPerSecond}/s one frame`);
  patterns.push(measure('lift', vm, () => { for (let g = 0; g < PAGES; g++) set(vm, g, 0); }));
  if (vm.memoryAttributes.rangeCount !== 0) problems.push(`lift: expected 0 ranges, got ${vm.memoryAttributes.rangeCount}`);

  vm = newVm();
  const order = shuffled(PAGES);
  patterns.push(measure('random', vm, () => { for (let k = 0; k < PAGES; k++) set(vm, 2 * order[k], 0x2); }));
  if (vm.memoryAttributes.rangeCount !== PAGES) problems.push(`random: expected ${PAGES} ranges, got ${vm.memoryAttributes.rangeCount}`);
  return { patterns, lookups: look, problems };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runMain(memoryAttributesBench);
