/**
 * A map from guest frame numbers to a small value (1..255), stored as ranges:
 * disjoint, sorted [start, end) intervals, neighbours with equal values merged,
 * absent = 0. Memory attributes live here (DESIGN §3.4: a boot issues hundreds
 * of thousands of protection changes, so one object per page is out).
 *
 * The ranges sit in blocks of up to BLOCK ranges each (typed arrays in one
 * buffer), a two-level sorted sequence: a change touches one or two blocks
 * and moves at most BLOCK entries, and a lookup is two binary searches, or
 * none when the last answer's interval (a range or the gap between two)
 * still covers the frame.
 *
 * GFNs are JS numbers: every GFN of a 64-bit address (< 2^52) is exact.
 */

const BLOCK = 512;

class Block {
  readonly start: Float64Array;
  readonly end: Float64Array;
  readonly value: Uint8Array;
  n = 0;
  constructor() {
    const buf = new ArrayBuffer(BLOCK * 17);
    this.start = new Float64Array(buf, 0, BLOCK);
    this.end = new Float64Array(buf, BLOCK * 8, BLOCK);
    this.value = new Uint8Array(buf, BLOCK * 16, BLOCK);
  }
  /** Moves entries [from, n) to start at `to` (either direction). */
  shift(from: number, to: number): void {
    if (from === to || from >= this.n) return;
    this.start.copyWithin(to, from, this.n);
    this.end.copyWithin(to, from, this.n);
    this.value.copyWithin(to, from, this.n);
  }
  put(k: number, s: number, e: number, v: number): void {
    this.start[k] = s; this.end[k] = e; this.value[k] = v;
  }
}

/** A range as the public API reports it. */
export interface GfnRange { readonly start: number; readonly end: number; readonly value: number }

export class GfnRangeMap {
  private blocks: Block[] = [];
  private count = 0;
  /** The interval [cacheLo, cacheHi) has value cacheValue (lookup cache; empty at first). */
  private cacheLo = 0;
  private cacheHi = 0;
  private cacheValue = 0;

  /** Number of stored ranges. */
  get size(): number { return this.count; }

  /** Bytes of typed-array storage held (for benchmarks). */
  get storageBytes(): number { return this.blocks.length * BLOCK * 17; }

  /** Value at `gfn` (0 where no range covers it). */
  get(gfn: number): number {
    if (gfn < this.cacheHi && gfn >= this.cacheLo) return this.cacheValue;
    return this.lookup(gfn);
  }

  /**
   * Calls fn(s, e, value) for the maximal pieces [s, e) of [start, end) with
   * one value each (0 for uncovered gaps), in order. Cost: one lookup per piece.
   */
  forEachIn(start: number, end: number, fn: (s: number, e: number, value: number) => void): void {
    for (let g = start; g < end;) {
      const v = this.get(g);
      const e = Math.min(end, this.cacheHi);
      fn(g, e, v);
      g = e;
    }
  }

  /** The ranges in order (tests and tools). */
  ranges(): GfnRange[] {
    const out: GfnRange[] = [];
    for (const b of this.blocks) for (let k = 0; k < b.n; k++) out.push({ start: b.start[k], end: b.end[k], value: b.value[k] });
    return out;
  }

  /** Sets [start, end) to `value` (0 removes). Caller guarantees start < end, integers, value 0..255. */
  set(start: number, end: number, value: number): void {
    this.cacheLo = this.cacheHi = 0;
    if (this.blocks.length === 0) {
      if (value === 0) return;
      const b = new Block();
      b.put(0, start, end, value);
      b.n = 1;
      this.blocks.push(b);
      this.count = 1;
      return;
    }
    // First affected range: the first whose end lies beyond `start`.
    let bi = this.firstBlockEndingAfter(start);
    let ii = bi < this.blocks.length ? this.firstEndingAfter(this.blocks[bi], start) : 0;
    if (bi === this.blocks.length) { bi--; ii = this.blocks[bi].n; }

    // Count the ranges that overlap [start, end), keeping the first and last.
    let del = 0;
    let firstS = 0, firstV = 0, lastE = 0, lastV = 0;
    for (let bj = bi, ij = ii; bj < this.blocks.length; bj++, ij = 0) {
      const b = this.blocks[bj];
      if (ij === 0 && b.n > 0 && b.end[b.n - 1] <= end && del > 0) {
        // Whole block inside the span: count it without visiting each range.
        lastE = b.end[b.n - 1]; lastV = b.value[b.n - 1]; del += b.n;
        continue;
      }
      let stop = false;
      for (; ij < b.n; ij++) {
        if (b.start[ij] >= end) { stop = true; break; }
        if (del === 0) { firstS = b.start[ij]; firstV = b.value[ij]; }
        lastE = b.end[ij]; lastV = b.value[ij];
        del++;
      }
      if (stop) break;
    }

    // Replacement: the uncovered part of the first and last ranges, and the new range.
    const items: number[] = [];
    if (del > 0 && firstS < start) items.push(firstS, start, firstV);
    if (value !== 0) items.push(start, end, value);
    if (del > 0 && lastE > end) items.push(end, lastE, lastV);

    // Neighbours that touch the span may merge with it.
    const prev = this.before(bi, ii);
    if (prev !== null && items.length > 0 && prev.b.end[prev.k] === items[0] && prev.b.value[prev.k] === items[2]) {
      items[0] = prev.b.start[prev.k];
      bi = prev.bi; ii = prev.k; del++;
    }
    const next = this.at(bi, ii, del);
    if (next !== null && items.length > 0 && next.b.start[next.k] === items[items.length - 2] && next.b.value[next.k] === items[items.length - 1]) {
      items[items.length - 2] = next.b.end[next.k];
      del++;
    }
    // Coalesce adjacent items with equal values (remainder + new range of the same value).
    const merged: number[] = [];
    for (let k = 0; k < items.length; k += 3) {
      const m = merged.length;
      if (m > 0 && merged[m - 2] === items[k] && merged[m - 1] === items[k + 2]) merged[m - 2] = items[k + 1];
      else merged.push(items[k], items[k + 1], items[k + 2]);
    }
    this.replace(bi, ii, del, merged);
  }

  // ---- lookup ----

  private lookup(gfn: number): number {
    const bs = this.blocks;
    if (bs.length === 0 || gfn < bs[0].start[0]) {
      this.cacheLo = -Infinity; this.cacheHi = bs.length === 0 ? Infinity : bs[0].start[0]; this.cacheValue = 0;
      return 0;
    }
    let lo = 0, hi = bs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (bs[mid].start[0] <= gfn) lo = mid; else hi = mid - 1;
    }
    const b = bs[lo];
    let l = 0, h = b.n - 1;
    while (l < h) {
      const m = (l + h + 1) >> 1;
      if (b.start[m] <= gfn) l = m; else h = m - 1;
    }
    if (gfn < b.end[l]) {
      this.cacheLo = b.start[l]; this.cacheHi = b.end[l]; this.cacheValue = b.value[l];
      return b.value[l];
    }
    this.cacheLo = b.end[l];
    this.cacheHi = l + 1 < b.n ? b.start[l + 1] : lo + 1 < bs.length ? bs[lo + 1].start[0] : Infinity;
    this.cacheValue = 0;
    return 0;
  }

  /** Index of the first block whose last range ends after `gfn` (blocks.length if none). */
  private firstBlockEndingAfter(gfn: number): number {
    const bs = this.blocks;
    let lo = 0, hi = bs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const b = bs[mid];
      if (b.end[b.n - 1] > gfn) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  private firstEndingAfter(b: Block, gfn: number): number {
    let lo = 0, hi = b.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (b.end[mid] > gfn) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  /** The range just before position (bi, ii), or null. */
  private before(bi: number, ii: number): { b: Block; bi: number; k: number } | null {
    if (ii > 0) return { b: this.blocks[bi], bi, k: ii - 1 };
    if (bi > 0) { const b = this.blocks[bi - 1]; return { b, bi: bi - 1, k: b.n - 1 }; }
    return null;
  }

  /** The range `skip` positions after (bi, ii), or null. */
  private at(bi: number, ii: number, skip: number): { b: Block; k: number } | null {
    let k = ii + skip;
    for (let bj = bi; bj < this.blocks.length; bj++) {
      const b = this.blocks[bj];
      if (k < b.n) return { b, k };
      k -= b.n;
    }
    return null;
  }

  // ---- structural change ----

  /** Deletes `del` ranges from position (bi, ii) on and inserts `items` (triples) there. */
  private replace(bi: number, ii: number, del: number, items: readonly number[]): void {
    const bs = this.blocks;
    const b = bs[bi];
    const inFirst = Math.min(del, b.n - ii);
    let rest = del - inFirst;
    // Ranges deleted beyond the first block: whole blocks, then a prefix of one.
    let j = bi + 1;
    while (rest > 0) {
      const nb = bs[j];
      if (rest >= nb.n) { rest -= nb.n; j++; continue; }
      nb.shift(rest, 0);
      nb.n -= rest;
      rest = 0;
    }
    if (j > bi + 1) bs.splice(bi + 1, j - bi - 1);
    // Within the first block: close the gap, then open room for the new items.
    b.shift(ii + inFirst, ii);
    b.n -= inFirst;
    this.count -= del;
    const k = items.length / 3;
    if (k > 0) this.insert(bi, ii, items);
    else if (b.n === 0) bs.splice(bi, 1);
    this.count += k;
    this.compact(Math.min(bi, bs.length - 1));
  }

  private insert(bi: number, ii: number, items: readonly number[]): void {
    const k = items.length / 3;
    let b = this.blocks[bi];
    if (b.n + k > BLOCK) {
      const nb = new Block();
      if (ii === b.n) {
        // Appending at the end of a full block (ascending changes): start a new block, keep this one full.
        this.blocks.splice(bi + 1, 0, nb);
        b = nb; ii = 0;
      } else {
        const mid = b.n >> 1;
        nb.start.set(b.start.subarray(mid, b.n)); nb.end.set(b.end.subarray(mid, b.n)); nb.value.set(b.value.subarray(mid, b.n));
        nb.n = b.n - mid;
        b.n = mid;
        this.blocks.splice(bi + 1, 0, nb);
        if (ii > mid) { b = nb; ii -= mid; }
      }
    }
    b.shift(ii, ii + k);
    b.n += k;
    for (let t = 0; t < k; t++) b.put(ii + t, items[3 * t], items[3 * t + 1], items[3 * t + 2]);
  }

  /** Merges a small block into its successor's room, so deletions cannot leave many near-empty blocks. */
  private compact(bi: number): void {
    const bs = this.blocks;
    if (bi < 0 || bi + 1 >= bs.length) return;
    const a = bs[bi], c = bs[bi + 1];
    if (a.n + c.n > BLOCK / 2) return;
    a.start.set(c.start.subarray(0, c.n), a.n); a.end.set(c.end.subarray(0, c.n), a.n); a.value.set(c.value.subarray(0, c.n), a.n);
    a.n += c.n;
    bs.splice(bi + 1, 1);
  }
}
