/**
 * The range elements of HvCallFlushGuestPhysicalAddressList (0x00B0), u64
 * each (kvm-api-facts §6.1; the extended range format of tlfs-vsm-facts
 * §2.3 over L2 GPA page numbers): bits 10:0 additional pages, bit 11 large
 * page, bits 63:12 the first page number. A large-page element counts
 * additional large pages instead, bit 12 picks their size (0 = 2 MiB,
 * 1 = 1 GiB), bits 20:13 are reserved and bits 63:21 hold the address >> 21.
 */
import { HvGpaRange } from '../spec/tlfs.js';

export interface GpaPageRange {
  /** First L2 guest frame number. */
  readonly gfn: number;
  /** Number of 4 KiB frames. */
  readonly pages: number;
}

const SPAN_2M = 512, SPAN_1G = 512 * 512;

/** Decodes one element given as int32 halves; null when a reserved bit is set. */
export function decodeGpaRange(lo: number, hi: number): GpaPageRange | null {
  const additional = lo & HvGpaRange.AdditionalPagesMask;
  if (!(lo & HvGpaRange.LargePage)) {
    return { gfn: (hi >>> 0) * 2 ** (32 - HvGpaRange.PfnShift) + (lo >>> HvGpaRange.PfnShift), pages: additional + 1 };
  }
  if (lo & HvGpaRange.LargeReservedMask) return null;
  const span = (lo & HvGpaRange.LargePageSize1G) ? SPAN_1G : SPAN_2M;
  const gfn = ((hi >>> 0) * 2 ** (32 - HvGpaRange.LargePfnShift) + (lo >>> HvGpaRange.LargePfnShift)) * SPAN_2M;
  return { gfn: gfn - (gfn % span), pages: (additional + 1) * span };
}
