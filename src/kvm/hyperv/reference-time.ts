/**
 * Partition reference time (TIME_REF_COUNT, 100 ns units) and the reference
 * TSC page (fact sheet §6.5): time = ((tsc × scale) >> 64) + offset.
 *
 * Reference time is guest time / 100 ns (DESIGN §3.5: derived from executed
 * instructions). The guest TSC at time t is floor(t × tscHz / 1e9) with TSC 0
 * at t = 0, so offset = 0 and scale = ceil(2^64 × 1e7 / tscHz). Rounding the
 * scale up makes the page give exactly floor(t / 100) whenever tscHz is a
 * multiple of 10 MHz (then floor(floor(x)/m) = floor(x/m) for the integer
 * m = tscHz / 1e7), for as long as tsc × δ < 2^64 / m, where δ < 1 is what
 * the rounding added to the scale: at 1 GHz (δ = 0.84) about 7 years of guest
 * time. For other frequencies the page and the MSR may differ by one unit.
 */
import type { PhysMemory } from '../../memory/phys-memory.js';
import { HV_REFERENCE_TIME_NS, HV_TSC_PAGE_INVALID_SEQUENCE, HvTscPage } from '../../spec/tlfs.js';

const TWO_64 = 1n << 64n;
const REF_PER_SECOND = 10_000_000n;

/** TIME_REF_COUNT at a guest time in ns. */
export function referenceTime(ns: number): bigint {
  return BigInt(Math.floor(ns / HV_REFERENCE_TIME_NS));
}

/** The TSC page scale for a TSC frequency, or undefined when it does not fit 64 bits (10 MHz and below). */
export function tscPageScale(tscHz: number): bigint | undefined {
  if (!Number.isInteger(tscHz) || tscHz <= 0) throw new RangeError(`TSC frequency ${tscHz} is not a positive integer`);
  const hz = BigInt(tscHz);
  const scale = (TWO_64 * REF_PER_SECOND + hz - 1n) / hz;
  return scale < TWO_64 ? scale : undefined;
}

/** What a guest computes from the page: ((tsc × scale) >> 64) + offset, as u64. */
export function tscPageTime(tsc: bigint, scale: bigint, offset: bigint): bigint {
  return BigInt.asUintN(64, ((tsc * scale) >> 64n) + offset);
}

export interface TscPageContents {
  readonly sequence: number;
  readonly scale: bigint;
  readonly offset: bigint;
}

export function writeTscPage(mem: PhysMemory, gpa: number, page: TscPageContents): void {
  const bytes = new Uint8Array(24);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(HvTscPage.Sequence, page.sequence >>> 0, true);
  dv.setBigUint64(HvTscPage.Scale, page.scale, true);
  dv.setBigInt64(HvTscPage.Offset, page.offset, true);
  mem.write(gpa, bytes);
}

export function readTscPage(mem: PhysMemory, gpa: number): TscPageContents {
  const dv = new DataView(mem.read(gpa, 24).buffer);
  return {
    sequence: dv.getUint32(HvTscPage.Sequence, true),
    scale: dv.getBigUint64(HvTscPage.Scale, true),
    offset: dv.getBigInt64(HvTscPage.Offset, true),
  };
}

/** The next sequence number: never 0 (invalid) and never 0xFFFFFFFF (KVM avoids it too). */
export function nextSequence(seq: number): number {
  const n = (seq + 1) >>> 0;
  return n === HV_TSC_PAGE_INVALID_SEQUENCE || n === 0xffffffff ? 1 : n;
}
