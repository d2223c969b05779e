/**
 * The architectural TLB (DESIGN §3.3): translations stay cached until a flush
 * removes them, exactly as a hardware TLB may keep them. Entries are per 4 KiB
 * linear page; entries made from 2 MiB / 1 GiB pages remember their page size so
 * that INVLPG of any address inside a large page removes all of them.
 *
 * Non-global entries are kept per PCID, global ones apart, so flushing one PCID's
 * non-global entries (MOV CR3) is O(1).
 */

export class TlbEntry {
  constructor(
    /** Physical address of the 4 KiB frame. */
    readonly frame: number,
    /** Accumulated permissions over all levels. */
    readonly user: boolean,
    readonly writable: boolean,
    readonly nx: boolean,
    /** Dirty bit of the leaf entry when cached (a write to a clean page re-walks to set it). */
    readonly dirty: boolean,
    readonly global: boolean,
    /** log2 of the page size: 12, 21, 22 or 30. */
    readonly sizeShift: number,
  ) {}
}

/** Page number key of a linear address given as int32 halves. */
export function vpnKey(lo: number, hi: number): number {
  return hi * 1048576 + (lo >>> 12);
}

/** Upper bound on cached entries; beyond it everything is dropped (an allowed eviction). */
const CAPACITY = 1 << 16;

/** One set of entries (a PCID's non-global ones, or the global ones) and how many came from large pages. */
class EntrySet {
  readonly map = new Map<number, TlbEntry>();
  large = 0;
}

export class Tlb {
  private readonly byPcid = new Map<number, EntrySet>();
  private global = new EntrySet();
  private count = 0;
  /** Incremented whenever anything is removed, so derived caches know to drop. */
  generation = 0;

  lookup(vpn: number, pcid: number): TlbEntry | undefined {
    const s = this.byPcid.get(pcid);
    const e = s === undefined ? undefined : s.map.get(vpn);
    return e !== undefined ? e : this.global.map.get(vpn);
  }

  insert(vpn: number, pcid: number, e: TlbEntry): void {
    if (this.count >= CAPACITY) this.flushAll();
    let s: EntrySet | undefined;
    if (e.global) {
      s = this.global;
    } else {
      s = this.byPcid.get(pcid);
      if (s === undefined) { s = new EntrySet(); this.byPcid.set(pcid, s); }
    }
    const old = s.map.get(vpn);
    if (old === undefined) this.count++;
    else if (old.sizeShift > 12) s.large--;
    if (e.sizeShift > 12) s.large++;
    s.map.set(vpn, e);
  }

  /** Everything, global entries included. */
  flushAll(): void {
    this.byPcid.clear();
    this.global = new EntrySet();
    this.count = 0;
    this.generation++;
  }

  /** Non-global entries of one PCID. */
  flushPcid(pcid: number): void {
    const s = this.byPcid.get(pcid);
    if (s !== undefined) { this.count -= s.map.size; this.byPcid.delete(pcid); }
    this.generation++;
  }

  /** Non-global entries of every PCID. */
  flushNonGlobal(): void {
    for (const s of this.byPcid.values()) this.count -= s.map.size;
    this.byPcid.clear();
    this.generation++;
  }

  /**
   * One linear page: in PCID `pcid` (or every PCID when pcid < 0), and its
   * global entry when `includeGlobal`.
   */
  flushPage(vpn: number, pcid: number, includeGlobal: boolean): void {
    this.generation++;
    const sets: EntrySet[] = [];
    if (pcid < 0) sets.push(...this.byPcid.values());
    else { const s = this.byPcid.get(pcid); if (s !== undefined) sets.push(s); }
    if (includeGlobal) sets.push(this.global);
    for (const s of sets) {
      const e = s.map.get(vpn);
      if (e !== undefined) {
        s.map.delete(vpn);
        this.count--;
        if (e.sizeShift > 12) s.large--;
      }
      if (s.large > 0) this.dropLargeCovering(s, vpn);
    }
  }

  /** Removes entries that came from a large page containing `vpn`. */
  private dropLargeCovering(s: EntrySet, vpn: number): void {
    for (const [k, e] of s.map) {
      if (e.sizeShift === 12) continue;
      const span = 2 ** (e.sizeShift - 12);
      if (Math.floor(k / span) === Math.floor(vpn / span)) { s.map.delete(k); this.count--; s.large--; }
    }
  }

  /** Number of cached translations (for tests and statistics). */
  get size(): number { return this.count; }
}
