/**
 * L0's cache of translations derived from L1's second-level tables (L2 GPA
 * page → L1 physical page), tagged by (root, ASID) as L0 tags what it builds
 * for a nested guest (kvm-api-facts §6.1, tlfs-vsm-facts §7.2).
 *
 * What removes entries: HvCallFlushGuestPhysicalAddressSpace (all entries of
 * a root, every ASID), HvCallFlushGuestPhysicalAddressList (the pages of a
 * root in the ranges, every ASID), and an ASID flush without the enlightened
 * TLB (every root's entries of that ASID). An ASID flush with the enlightened
 * TLB removes none (§7.2: it drops only GVA-derived entries). Like any TLB it
 * may also drop everything when full.
 *
 * The GVA-derived half of the combined translations is the CPU's own TLB
 * (src/x86/tlb.ts) of the vCPU running in the context; see l0.ts.
 */

/** Upper bound on cached entries; beyond it everything is dropped (an allowed eviction). */
const CAPACITY = 1 << 18;

export class L0Tlb {
  /** root → ASID → L2 guest frame number → L1 physical frame number. */
  private readonly byRoot = new Map<number, Map<number, Map<number, number>>>();
  private count = 0;

  lookup(root: number, asid: number, gfn: number): number | undefined {
    return this.byRoot.get(root)?.get(asid)?.get(gfn);
  }

  insert(root: number, asid: number, gfn: number, frame: number): void {
    if (this.count >= CAPACITY) this.clear();
    let asids = this.byRoot.get(root);
    if (asids === undefined) { asids = new Map(); this.byRoot.set(root, asids); }
    let pages = asids.get(asid);
    if (pages === undefined) { pages = new Map(); asids.set(asid, pages); }
    if (!pages.has(gfn)) this.count++;
    pages.set(gfn, frame);
  }

  /** Every entry derived from `root`; returns how many went. */
  flushRoot(root: number): number {
    const asids = this.byRoot.get(root);
    if (asids === undefined) return 0;
    let n = 0;
    for (const pages of asids.values()) n += pages.size;
    this.byRoot.delete(root);
    this.count -= n;
    return n;
  }

  /** The entries of `root` for L2 frames in [firstGfn, firstGfn + pages); returns how many went. */
  flushRootRange(root: number, firstGfn: number, pages: number): number {
    const asids = this.byRoot.get(root);
    if (asids === undefined) return 0;
    let n = 0;
    for (const set of asids.values()) {
      if (pages < set.size) {
        for (let g = firstGfn; g < firstGfn + pages; g++) if (set.delete(g)) n++;
      } else {
        for (const g of set.keys()) if (g >= firstGfn && g < firstGfn + pages) { set.delete(g); n++; }
      }
    }
    this.count -= n;
    return n;
  }

  /** Every root's entries of `asid`; returns how many went. */
  flushAsid(asid: number): number {
    let n = 0;
    for (const asids of this.byRoot.values()) {
      const pages = asids.get(asid);
      if (pages !== undefined) { n += pages.size; asids.delete(asid); }
    }
    this.count -= n;
    return n;
  }

  clear(): void {
    this.byRoot.clear();
    this.count = 0;
  }

  /** Number of cached entries (tests and statistics). */
  get size(): number { return this.count; }

  /** Entries cached for (root, asid) (tests and tools). */
  entriesOf(root: number, asid: number): number { return this.byRoot.get(root)?.get(asid)?.size ?? 0; }
}
