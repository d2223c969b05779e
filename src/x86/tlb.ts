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

export class Tlb {
  private readonly byPcid = new Map<number, Map<number, TlbEntry>>();
  private readonly global = new Map<number, TlbEntry>();
  private count = 0;
  private largeCount = 0;
  /** Incremented whenever anything is removed, so derived caches know to drop. */
  generation = 0;

  lookup(vpn: number, pcid: number): TlbEntry | undefined {
    const m = this.byPcid.get(pcid);
    const e = m === undefined ? undefined : m.get(vpn);
    return e !== undefined ? e : this.global.get(vpn);
  }

  insert(vpn: number, pcid: number, e: TlbEntry): void {
    if (this.count >= CAPACITY) this.flushAll();
    let m: Map<number, TlbEntry> | undefined;
    if (e.global) {
      m = this.global;
    } else {
      m = this.byPcid.get(pcid);
      if (m === undefined) { m = new Map(); this.byPcid.set(pcid, m); }
    }
    if (!m.has(vpn)) this.count++;
    if (e.sizeShift > 12) this.largeCount++;
    m.set(vpn, e);
  }

  /** Everything, global entries included. */
  flushAll(): void {
    this.byPcid.clear();
    this.global.clear();
    this.count = 0;
    this.largeCount = 0;
    this.generation++;
  }

  /** Non-global entries of one PCID. */
  flushPcid(pcid: number): void {
    const m = this.byPcid.get(pcid);
    if (m !== undefined) { this.count -= m.size; this.byPcid.delete(pcid); }
    this.generation++;
  }

  /** Non-global entries of every PCID. */
  flushNonGlobal(): void {
    for (const m of this.byPcid.values()) this.count -= m.size;
    this.byPcid.clear();
    this.generation++;
  }

  /**
   * One linear page: in PCID `pcid` (or every PCID when pcid < 0), and its
   * global entry when `includeGlobal`.
   */
  flushPage(vpn: number, pcid: number, includeGlobal: boolean): void {
    this.generation++;
    const maps: Map<number, TlbEntry>[] = [];
    if (pcid < 0) maps.push(...this.byPcid.values());
    else { const m = this.byPcid.get(pcid); if (m !== undefined) maps.push(m); }
    if (includeGlobal) maps.push(this.global);
    for (const m of maps) {
      if (m.delete(vpn)) this.count--;
      if (this.largeCount > 0) this.dropLargeCovering(m, vpn);
    }
  }

  /** Removes entries that came from a large page containing `vpn`. */
  private dropLargeCovering(m: Map<number, TlbEntry>, vpn: number): void {
    for (const [k, e] of m) {
      if (e.sizeShift === 12) continue;
      const span = 2 ** (e.sizeShift - 12);
      if (Math.floor(k / span) === Math.floor(vpn / span)) { m.delete(k); this.count--; }
    }
  }

  /** Number of cached translations (for tests and statistics). */
  get size(): number { return this.count; }
}
