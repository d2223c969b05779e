/**
 * Our hypervisor core's second-level (TDP) tables when it runs on Hyper-V:
 * AMD NPT format (src/l0/npt.ts), L2 GPA → L1 physical address, roots
 * allocated, freed and reused (kvm-api-facts §6.3).
 *
 * Where the tables live: in RAM of our own at L1 physical addresses from
 * NPT_TABLE_BASE (512 GiB), above any guest RAM, which no NPT maps: an L2
 * guest cannot reach them, and they take no guest RAM. L0 reads them there
 * (src/l0/l1-memory.ts).
 *
 * How L2 GPAs map: a new root maps L2 GPA [0, 512 GiB) to the same L1
 * addresses with 1 GiB pages (PML4 entry 0 → one PDPT; two table pages), so
 * RAM, MMIO and holes all stay where the guest expects them, except for the
 * pages setBacking() moved (what memslots would say). setPage() changes one
 * 4 KiB page of one root, splitting large pages as needed.
 *
 * Reuse: freed pages go on a LIFO free list, the root page last, so the next
 * root allocated gets the page of the root freed last: the reuse that the
 * 2023 bug needed. Freeing flushes nothing (TDP MMU defers that flush to the
 * "flush current" of the next root load, §6.3).
 */
import { CHUNK_SIZE, PAGE_SIZE, PhysMemory } from '../../memory/phys-memory.js';
import { entryAddress, NPT_PRW, NPT_P, NPT_PS, nptIndex } from '../../l0/npt.js';
import { KvmError } from '../errors.js';

/** L1 physical address of the first table page. */
export const NPT_TABLE_BASE = 0x80_0000_0000;
/** L2 GPAs a root maps (the identity map's reach). */
export const L2_GPA_LIMIT = 0x80_0000_0000;
/** KVM's INVALID_PAGE: no root. */
export const INVALID_PAGE = -1;
export const DEFAULT_TABLE_PAGES = 1024;
/** Most table pages one setPage() allocates (a PDPT split, a PD split, a page table). */
const MAX_PAGES_PER_SET = 3;

const GiB = 2 ** 30;

function checkMapping(gfn: number, frame: number | null): void {
  if (!Number.isInteger(gfn) || gfn < 0 || gfn >= L2_GPA_LIMIT / PAGE_SIZE) throw new KvmError('EINVAL', `L2 frame ${String(gfn)} is outside the 512 GiB L2 space`);
  if (frame !== null && (!Number.isInteger(frame) || frame < 0 || frame >= NPT_TABLE_BASE / PAGE_SIZE)) {
    throw new KvmError('EINVAL', `L1 frame ${String(frame)} is not below the table RAM (frame 0x${(NPT_TABLE_BASE / PAGE_SIZE).toString(16)})`);
  }
}

export class TdpMmu {
  /** Our table RAM (NPT_TABLE_BASE is its offset 0). */
  readonly tables: PhysMemory;
  private readonly free: number[] = [];
  private fresh = 0;
  /** Live roots and their table pages, the root page first. */
  private readonly roots = new Map<number, number[]>();
  /** L2 frames whose backing is not the identity: L1 frame, or null for none. */
  private readonly backing = new Map<number, number | null>();

  constructor(pages = DEFAULT_TABLE_PAGES) {
    if (!Number.isInteger(pages) || pages < 2 || pages > 1 << 20) throw new KvmError('EINVAL', `table pages must be 2..${1 << 20}, not ${String(pages)}`);
    this.tables = new PhysMemory(pages * PAGE_SIZE);
  }

  /** A new root: L2 GPA [0, 512 GiB) identity-mapped but for setBacking()'s pages. ENOMEM when the table RAM is used up. */
  allocRoot(): number {
    if (this.available() < 2 + MAX_PAGES_PER_SET * this.backing.size) throw new KvmError('ENOMEM', 'no table pages left for a new root');
    const pages: number[] = [];
    const root = this.allocPage(pages), pdpt = this.allocPage(pages);
    this.writeEntry(root, pdpt + NPT_PRW);
    for (let k = 0; k < 512; k++) this.writeEntry(pdpt + 8 * k, k * GiB + (NPT_PRW | NPT_PS));
    this.roots.set(root, pages);
    for (const [gfn, frame] of this.backing) this.setPage(root, gfn, frame);
    return root;
  }

  /** Roots allocated from now on map L2 frame `gfn` to L1 frame `frame` (null: unmapped; `gfn` itself: identity again). */
  setBacking(gfn: number, frame: number | null): void {
    checkMapping(gfn, frame);
    if (frame === gfn) this.backing.delete(gfn); else this.backing.set(gfn, frame);
  }

  /** Frees a root's pages (no flush); the root page is the first one reused. */
  freeRoot(root: number): void {
    const pages = this.pagesOf(root);
    this.roots.delete(root);
    for (let k = pages.length - 1; k >= 0; k--) this.free.push(pages[k]);
  }

  /** Maps L2 frame `gfn` to L1 frame `frame` in `root`, or unmaps it (null). */
  setPage(root: number, gfn: number, frame: number | null): void {
    const pages = this.pagesOf(root);
    checkMapping(gfn, frame);
    if (this.available() < MAX_PAGES_PER_SET) throw new KvmError('ENOMEM', 'no table pages left to change a mapping');
    const gpa = gfn * PAGE_SIZE;
    let table = root;
    for (let level = 4; level > 1; level--) {
      const at = table + 8 * nptIndex(gpa, level);
      const lo = this.readLo(at);
      if (!(lo & NPT_P)) {
        if (frame === null) return;
        table = this.allocPage(pages);
        this.writeEntry(at, table + NPT_PRW);
      } else if (lo & NPT_PS) {
        // Split the large page into the next level's 512 entries, same mappings.
        const base = entryAddress(lo, this.readHi(at));
        const span = 2 ** (12 + 9 * (level - 2));
        const t = this.allocPage(pages);
        for (let k = 0; k < 512; k++) this.writeEntry(t + 8 * k, base - (base % (span * 512)) + k * span + (level > 2 ? NPT_PRW | NPT_PS : NPT_PRW));
        this.writeEntry(at, t + NPT_PRW);
        table = t;
      } else {
        table = entryAddress(lo, this.readHi(at));
      }
    }
    this.writeEntry(table + 8 * nptIndex(gpa, 1), frame === null ? 0 : frame * PAGE_SIZE + NPT_PRW);
  }

  isRoot(root: number): boolean { return this.roots.has(root); }
  /** Live roots, oldest first. */
  get liveRoots(): number[] { return [...this.roots.keys()]; }

  private pagesOf(root: number): number[] {
    const p = this.roots.get(root);
    if (p === undefined) throw new KvmError('EINVAL', `0x${root.toString(16)} is not a live root`);
    return p;
  }

  private available(): number { return this.free.length + this.tables.size / PAGE_SIZE - this.fresh; }

  private allocPage(owner: number[]): number {
    const pa = this.free.length > 0 ? this.free.pop()! : NPT_TABLE_BASE + PAGE_SIZE * this.fresh++;
    this.tables.fill(pa - NPT_TABLE_BASE, PAGE_SIZE, 0);
    owner.push(pa);
    return pa;
  }

  private dv(pa: number): [DataView, number] {
    const off = pa - NPT_TABLE_BASE;
    return [this.tables.chunk(off).dv, off % CHUNK_SIZE];
  }
  private readLo(pa: number): number { const [dv, o] = this.dv(pa); return dv.getInt32(o, true); }
  private readHi(pa: number): number { const [dv, o] = this.dv(pa); return dv.getInt32(o + 4, true); }
  /** Writes an entry given as address + flag bits (a number below 2^52). */
  private writeEntry(pa: number, value: number): void {
    const [dv, o] = this.dv(pa);
    dv.setUint32(o, value % 4294967296, true);
    dv.setUint32(o + 4, Math.floor(value / 4294967296), true);
  }
}
