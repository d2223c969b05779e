/**
 * Segment descriptor caches ("hidden" segment state). Attributes are kept in the
 * VMX access-rights layout: type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15.
 */
export const ATTR_TYPE = 0xf, ATTR_S = 1 << 4, ATTR_P = 1 << 7, ATTR_L = 1 << 13, ATTR_DB = 1 << 14, ATTR_G = 1 << 15;
export function attrDpl(attr: number): number { return (attr >> 5) & 3; }

/** Attributes of a descriptor from its high dword (bits 8..23 hold type..G). */
export function attrFromDescHigh(high: number): number {
  return (high >>> 8) & 0xf0ff;
}
/** Limit in bytes (granularity applied) from a descriptor's two dwords. */
export function limitFromDesc(low: number, high: number): number {
  const raw = (low & 0xffff) | (high & 0x000f0000);
  return (high & (1 << 23)) ? ((raw * 4096 + 0xfff) >>> 0) : raw;
}
/** Base (bits 31:0) from a descriptor's two dwords. */
export function baseFromDesc(low: number, high: number): number {
  return ((low >>> 16) | ((high & 0xff) << 16) | (high & 0xff000000)) | 0;
}
