/**
 * The input page of HvCallFlushGuestPhysicalAddressList as L1 fills it
 * (Linux hyperv_fill_flush_guest_mapping_list; kvm-api-facts §6.1): the
 * range from start_gfn split into chunks of at most 2048 pages, one 8-byte
 * element each (bits 10:0 additional pages, bit 11 large page = 0, bits
 * 63:12 the first page number), at most 510 elements after the 16-byte
 * header of a 4 KiB page.
 */
import {
  HV_GUEST_MAPPING_FLUSH_HEADER_BYTES, HV_MAX_FLUSH_PAGES, HV_MAX_FLUSH_REP_COUNT, HV_PAGE_SIZE, HvGpaRange,
} from '../../spec/tlfs.js';

/** Too many elements for one input page (Linux's fill returns -ENOSPC here; the caller falls back to a full flush). */
export const FILL_FAILED = -1;

/** A fresh input page with the header (AddressSpace = `as`, Flags = 0). */
export function flushInputPage(as: number): Uint8Array {
  const page = new Uint8Array(HV_PAGE_SIZE);
  const dv = new DataView(page.buffer);
  dv.setUint32(0, as % 4294967296, true);
  dv.setUint32(4, Math.floor(as / 4294967296), true);
  return page;
}

/** Writes the elements for `pages` frames from `startGfn`; returns their count, or FILL_FAILED. */
export function fillFlushList(page: Uint8Array, startGfn: number, pages: number): number {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  let cur = startGfn, left = pages, n = 0;
  do {
    if (n >= HV_MAX_FLUSH_REP_COUNT) return FILL_FAILED;
    const additional = Math.min(left, HV_MAX_FLUSH_PAGES) - 1;
    const off = HV_GUEST_MAPPING_FLUSH_HEADER_BYTES + 8 * n;
    const perLo = 2 ** (32 - HvGpaRange.PfnShift);
    dv.setUint32(off, ((cur % perLo) * 2 ** HvGpaRange.PfnShift + additional) >>> 0, true);
    dv.setUint32(off + 4, Math.floor(cur / perLo), true);
    left -= additional + 1;
    cur += additional + 1;
    n++;
  } while (left > 0);
  return n;
}
