/**
 * Linear-address translation and memory access for one CPU.
 *
 * Two layers: the architectural TLB (tlb.ts), filled by page walks and emptied
 * only by flushes, and small direct-mapped fast caches derived from it that map
 * a linear page straight to host memory for reads, writes and fetches. The fast
 * caches hold only accesses that are certainly allowed (paging permissions for
 * the current privilege, owner page permissions, dirty bit already set, no
 * decoded code on the page for writes); they can be dropped at any time without
 * architectural effect, and are, whenever anything they derive from changes.
 *
 * An owner may add a second translation stage (SecondStage, as nested paging
 * does); without one, the cost is a null check on TLB fills and paging-off
 * slow paths, never on the fast paths.
 */
import { CHUNK_SIZE, PAGE_SIZE, type Chunk } from '../memory/phys-memory.js';
import type { Cpu } from './cpu.js';
import { ABORT } from './fault.js';
import { faultErr } from './fault.js';
import { ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_READ, ACCESS_WRITE, AccessOrigin, MBEC_ENABLE, MBEC_ONLY_WITH_SMEP, type MemFaultInfo } from './host.js';
import {
  AC, CR0_PG, CR0_WP, CR4_PAE, CR4_PCIDE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE,
  PFEC_I, PFEC_P, PFEC_RSVD, PFEC_U, PFEC_W, PF_, PTE_A, PTE_D, PTE_G, PTE_P, PTE_PS, PTE_U, PTE_W, GP,
} from './regs.js';
import { Tlb, TlbEntry, vpnKey } from './tlb.js';

/**
 * Whether, under mode-based execute control `mbec` (Cpu.mbecControl) and
 * CR4 `cr4`, a fetch from a user-mode linear address needs ACCESS_EXEC_USER
 * (the one rule; owners that check a translation themselves use it too).
 */
export function userFetchChecksXu(mbec: number, cr4: number): boolean {
  return (mbec & MBEC_ENABLE) !== 0 && ((mbec & MBEC_ONLY_WITH_SMEP) === 0 || (cr4 & CR4_SMEP) !== 0);
}

const FAST_BITS = 10;
const FAST_N = 1 << FAST_BITS;
const FAST_MASK = FAST_N - 1;
/** A tag no canonical address has (hi half of a canonical address is 0..0x7fff or >= 0xffff8000). */
const NO_TAG = 0x40000000;
/** Physical address width (CPUID 0x80000008 EAX[7:0]); entry bits above it are reserved. */
export const MAX_PHYS_BITS = 40;
const PHYS_HI_MASK = (1 << (MAX_PHYS_BITS - 32)) - 1;
const EMPTY = new DataView(new ArrayBuffer(8));

/**
 * A second stage of address translation, as nested paging (AMD NPT, Intel EPT)
 * adds one: every guest-physical address the CPU produces (paging-structure
 * entries it reads or updates, the frame a walk ends in, linear addresses
 * while paging is off) is translated again, to an address in `mem`. It is
 * consulted only when the TLB misses and on paging-off slow paths; the TLB
 * and the fast caches then hold the combined translation, so the owner calls
 * `cpu.flushTlb()` whenever a translation it gave may have changed.
 */
export interface SecondStage {
  /** The address in `mem` of guest-physical `gpa` (same page offset), or -1: the access becomes a memory fault at `gpa`. */
  translate(gpa: number): number;
}

export class Mmu {
  readonly tlb = new Tlb();
  private readonly c: Cpu;

  // Fast caches (struct of arrays).
  private readonly rTagLo = new Int32Array(FAST_N);
  private readonly rTagHi = new Int32Array(FAST_N).fill(NO_TAG);
  private readonly rDv: DataView[] = new Array(FAST_N).fill(EMPTY);
  private readonly rOff = new Int32Array(FAST_N);
  private readonly wTagLo = new Int32Array(FAST_N);
  private readonly wTagHi = new Int32Array(FAST_N).fill(NO_TAG);
  private readonly wDv: DataView[] = new Array(FAST_N).fill(EMPTY);
  private readonly wOff = new Int32Array(FAST_N);
  private readonly xTagLo = new Int32Array(FAST_N);
  private readonly xTagHi = new Int32Array(FAST_N).fill(NO_TAG);
  private readonly xPhys = new Float64Array(FAST_N);
  private tlbGen = 0;
  /** PAE page-directory-pointer table entries, loaded with CR3 (lo/hi pairs). */
  readonly pdpte = new Int32Array(8);
  private readonly walkOut = new Int32Array(2);
  /** Installed with Cpu.setSecondStage; null: guest-physical addresses are addresses in `mem`. */
  secondStage: SecondStage | null = null;

  constructor(c: Cpu) {
    this.c = c;
    // A page may be in the fast write cache from before it held code; writes to it must now take the
    // slow path, which invalidates the decoded code (self-modifying code, DESIGN §3.2).
    c.mem.onMarkCode(() => this.wTagHi.fill(NO_TAG));
  }

  // ---- flushes ----

  /** Drops the derived fast caches (never architecturally visible). */
  /**
   * Incremented whenever the fast caches are dropped: anything that can change
   * what a linear address maps to or may be used for (TLB flushes, privilege,
   * mode, owner permissions). Block chaining is valid only within one epoch.
   */
  epoch = 0;

  dropFast(): void {
    this.epoch++;
    this.rTagHi.fill(NO_TAG);
    this.wTagHi.fill(NO_TAG);
    this.xTagHi.fill(NO_TAG);
    this.tlbGen = this.tlb.generation;
  }

  flushAll(): void { this.tlb.flushAll(); this.dropFast(); }

  /** Current PCID (0 unless CR4.PCIDE). */
  get pcid(): number { return (this.c.cr4 & CR4_PCIDE) ? this.c.cr3Lo & 0xfff : 0; }

  /** INVLPG semantics: the page in the current PCID plus its global translation. */
  invlpg(lo: number, hi: number): void {
    this.tlb.flushPage(vpnKey(lo, hi), this.pcid, true);
    this.dropFast();
  }

  // ---- data access by linear address ----

  read8(lo: number, hi: number): number {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.rTagLo[i] === (lo & ~0xfff) && this.rTagHi[i] === hi) return this.rDv[i].getUint8(this.rOff[i] + (lo & 0xfff));
    return this.slowRead(lo, hi, 1);
  }
  read16(lo: number, hi: number): number {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.rTagLo[i] === (lo & ~0xfff) && this.rTagHi[i] === hi && (lo & 0xfff) <= 0xffe) {
      return this.rDv[i].getUint16(this.rOff[i] + (lo & 0xfff), true);
    }
    return this.slowRead(lo, hi, 2);
  }
  /** 32-bit read, returned as int32. */
  read32(lo: number, hi: number): number {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.rTagLo[i] === (lo & ~0xfff) && this.rTagHi[i] === hi && (lo & 0xfff) <= 0xffc) {
      return this.rDv[i].getInt32(this.rOff[i] + (lo & 0xfff), true);
    }
    return this.slowRead(lo, hi, 4) | 0;
  }
  /** 64-bit read: returns the low half, the high half in c.tHi. */
  read64(lo: number, hi: number): number {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.rTagLo[i] === (lo & ~0xfff) && this.rTagHi[i] === hi && (lo & 0xfff) <= 0xff8) {
      const dv = this.rDv[i], o = this.rOff[i] + (lo & 0xfff);
      this.c.tHi = dv.getInt32(o + 4, true);
      return dv.getInt32(o, true);
    }
    return this.slowRead(lo, hi, 8);
  }

  write8(lo: number, hi: number, v: number): void {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.wTagLo[i] === (lo & ~0xfff) && this.wTagHi[i] === hi) { this.wDv[i].setUint8(this.wOff[i] + (lo & 0xfff), v); return; }
    this.slowWrite(lo, hi, 1, v, 0);
  }
  write16(lo: number, hi: number, v: number): void {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.wTagLo[i] === (lo & ~0xfff) && this.wTagHi[i] === hi && (lo & 0xfff) <= 0xffe) {
      this.wDv[i].setUint16(this.wOff[i] + (lo & 0xfff), v, true); return;
    }
    this.slowWrite(lo, hi, 2, v, 0);
  }
  write32(lo: number, hi: number, v: number): void {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.wTagLo[i] === (lo & ~0xfff) && this.wTagHi[i] === hi && (lo & 0xfff) <= 0xffc) {
      this.wDv[i].setInt32(this.wOff[i] + (lo & 0xfff), v, true); return;
    }
    this.slowWrite(lo, hi, 4, v, 0);
  }
  write64(lo: number, hi: number, vLo: number, vHi: number): void {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.wTagLo[i] === (lo & ~0xfff) && this.wTagHi[i] === hi && (lo & 0xfff) <= 0xff8) {
      const dv = this.wDv[i], o = this.wOff[i] + (lo & 0xfff);
      dv.setInt32(o, vLo, true); dv.setInt32(o + 4, vHi, true); return;
    }
    this.slowWrite(lo, hi, 8, vLo, vHi);
  }

  /**
   * Checks that a write of `size` bytes at the address would succeed, without writing (RMW and multi-part ops):
   * paging, then the owner's page permissions, so the fault (a #PF or a memory fault) is a write's.
   */
  probeWrite(lo: number, hi: number, size: number): void {
    const i = (lo >>> 12) & FAST_MASK;
    // A page in the fast write cache is writable (and readable) now: nothing to check.
    if (this.wTagLo[i] === (lo & ~0xfff) && this.wTagHi[i] === hi && (lo & 0xfff) + size <= PAGE_SIZE) return;
    this.probeWritePage(lo, hi);
    const end = (lo & 0xfff) + size - 1;
    if (end > 0xfff) {
      const nlo = ((lo & ~0xfff) + 0x1000) | 0;
      this.probeWritePage(nlo, nlo === 0 && lo !== 0 ? hi + 1 : hi);
    }
  }

  private probeWritePage(lo: number, hi: number): void {
    const pa = this.translate(lo, hi, ACCESS_WRITE, this.c.cpl === 3);
    if (this.c.mem.isRam(pa)) this.ownerPerms(pa, ACCESS_WRITE, AccessOrigin.Guest, lo, hi, true);
  }

  /** Reads with supervisor privilege regardless of CPL (descriptor tables, TSS, IDT). */
  sysRead32(lo: number, hi: number): number { return this.readAs(lo, hi, 4, false) | 0; }
  sysWrite8(lo: number, hi: number, v: number): void { this.writeAs(lo, hi, 1, v, 0, false); }

  private slowRead(lo: number, hi: number, size: number): number {
    return this.readAs(lo, hi, size, this.c.cpl === 3);
  }
  private slowWrite(lo: number, hi: number, size: number, v: number, vHi: number): void {
    this.writeAs(lo, hi, size, v, vHi, this.c.cpl === 3);
  }

  private readAs(lo: number, hi: number, size: number, user: boolean): number {
    const off = lo & 0xfff;
    if (off + size > PAGE_SIZE) return this.readSplit(lo, hi, size, user);
    const pa = this.translate(lo, hi, ACCESS_READ, user);
    return this.physRead(pa, size, lo, hi, user);
  }

  /** A read that crosses a page boundary: translate both pages first, then read byte by byte. */
  private readSplit(lo: number, hi: number, size: number, user: boolean): number {
    const n1 = PAGE_SIZE - (lo & 0xfff);
    const lo2 = (lo + n1) | 0, hi2 = lo2 === 0 && lo !== 0 ? (hi + 1) | 0 : hi;
    const pa1 = this.translate(lo, hi, ACCESS_READ, user);
    const pa2 = this.translate(lo2, this.c.longMode ? hi2 : 0, ACCESS_READ, user);
    let vLo = 0, vHi = 0;
    for (let k = 0; k < size; k++) {
      const b = k < n1 ? this.physRead(pa1 + k, 1, lo, hi, user) : this.physRead(pa2 + k - n1, 1, lo2, hi2, user);
      if (k < 4) vLo |= b << (8 * k); else vHi |= b << (8 * (k - 4));
    }
    this.c.tHi = vHi;
    return size === 4 || size === 8 ? vLo | 0 : vLo;
  }

  private writeAs(lo: number, hi: number, size: number, v: number, vHi: number, user: boolean): void {
    const off = lo & 0xfff;
    if (off + size > PAGE_SIZE) {
      const n1 = PAGE_SIZE - off;
      const lo2 = (lo + n1) | 0, hi2 = lo2 === 0 && lo !== 0 ? (hi + 1) | 0 : hi;
      const pa1 = this.translate(lo, hi, ACCESS_WRITE, user);
      const pa2 = this.translate(lo2, this.c.longMode ? hi2 : 0, ACCESS_WRITE, user);
      // Both pages must be writable before any byte is: the instruction completes or not at all.
      if (this.c.mem.isRam(pa1)) this.ownerPerms(pa1, ACCESS_WRITE, AccessOrigin.Guest, lo, hi, true);
      if (this.c.mem.isRam(pa2)) this.ownerPerms(pa2, ACCESS_WRITE, AccessOrigin.Guest, lo2, hi2, true);
      for (let k = 0; k < size; k++) {
        const b = (k < 4 ? v >>> (8 * k) : vHi >>> (8 * (k - 4))) & 0xff;
        if (k < n1) this.physWrite(pa1 + k, 1, b, 0, lo, hi, user);
        else this.physWrite(pa2 + k - n1, 1, b, 0, lo2, hi2, user);
      }
      return;
    }
    const pa = this.translate(lo, hi, ACCESS_WRITE, user);
    this.physWrite(pa, size, v, vHi, lo, hi, user);
  }

  // ---- physical access ----

  /** A guest-physical address through the second stage; a memory fault at `gpa` if it has no translation. */
  private stage2(gpa: number, access: number, origin: AccessOrigin, gvaLo: number, gvaHi: number): number {
    const pa = this.secondStage!.translate(gpa);
    if (pa < 0) this.memFault(gpa, access, origin, gvaLo, gvaHi, true);
    return pa;
  }

  private ownerPerms(pa: number, access: number, origin: AccessOrigin, gvaLo: number, gvaHi: number, gvaValid: boolean): void {
    const perms = this.c.host.pagePermissions(Math.floor(pa / PAGE_SIZE));
    if ((perms & access) === access) return;
    this.memFault(pa, access, origin, gvaLo, gvaHi, gvaValid);
  }

  private memFault(pa: number, access: number, origin: AccessOrigin, gvaLo: number, gvaHi: number, gvaValid: boolean): never {
    const ins = this.c.cur;
    const info: MemFaultInfo = {
      gpa: pa, gvaLo, gvaHi, gvaValid, access, origin,
      insnLength: ins ? ins.len : 0,
      insnBytes: ins ? ins.bytes : new Uint8Array(0),
    };
    this.c.host.memFault(info);
    throw ABORT;
  }

  private physRead(pa: number, size: number, lo: number, hi: number, user: boolean): number {
    const mem = this.c.mem;
    if (!mem.isRam(pa)) {
      const v = this.c.host.mmioRead(pa, size);
      return size === 4 || size === 8 ? v | 0 : v;
    }
    this.ownerPerms(pa, ACCESS_READ, AccessOrigin.Guest, lo, hi, true);
    const chunk = mem.chunk(pa);
    const off = pa % CHUNK_SIZE;
    this.fillRead(lo, hi, chunk, off & ~0xfff, user);
    const dv = chunk.dv;
    switch (size) {
      case 1: return dv.getUint8(off);
      case 2: return dv.getUint16(off, true);
      case 4: return dv.getInt32(off, true);
      default: this.c.tHi = dv.getInt32(off + 4, true); return dv.getInt32(off, true);
    }
  }

  private physWrite(pa: number, size: number, v: number, vHi: number, lo: number, hi: number, user: boolean): void {
    const mem = this.c.mem;
    if (!mem.isRam(pa)) { this.c.host.mmioWrite(pa, size, v, vHi); return; }
    this.ownerPerms(pa, ACCESS_WRITE, AccessOrigin.Guest, lo, hi, true);
    const pfn = Math.floor(pa / PAGE_SIZE);
    if (mem.isCode(pfn)) {
      mem.notifyWrite(pa, size);
      this.c.brk = true; // the running block may be stale now
    }
    const chunk = mem.chunk(pa);
    const off = pa % CHUNK_SIZE;
    this.fillWrite(lo, hi, chunk, off & ~0xfff, pfn, user);
    const dv = chunk.dv;
    switch (size) {
      case 1: dv.setUint8(off, v); break;
      case 2: dv.setUint16(off, v, true); break;
      case 4: dv.setInt32(off, v, true); break;
      default: dv.setInt32(off, v, true); dv.setInt32(off + 4, vHi, true); break;
    }
  }

  /** Reads a paging-structure entry (lo returned, hi in walkOut[1]), subject to owner permissions. */
  private readEntry(pa: number, lo: number, hi: number): number {
    if (this.secondStage !== null) pa = this.stage2(pa, ACCESS_READ, AccessOrigin.PageWalk, lo, hi);
    const mem = this.c.mem;
    if (!mem.isRam(pa)) { this.walkOut[1] = -1; return -1; }
    this.ownerPerms(pa, ACCESS_READ, AccessOrigin.PageWalk, lo, hi, true);
    const chunk = mem.chunk(pa);
    const off = pa % CHUNK_SIZE;
    this.walkOut[1] = chunk.dv.getInt32(off + 4, true);
    return chunk.dv.getInt32(off, true);
  }

  /** Sets bits in the low dword of a paging-structure entry (A/D updates). */
  private setEntryBits(pa: number, bits: number, lo: number, hi: number): void {
    if (this.secondStage !== null) pa = this.stage2(pa, ACCESS_WRITE, AccessOrigin.PageWalk, lo, hi);
    const mem = this.c.mem;
    this.ownerPerms(pa, ACCESS_WRITE, AccessOrigin.PageWalk, lo, hi, true);
    if (mem.isCode(Math.floor(pa / PAGE_SIZE))) { mem.notifyWrite(pa, 4); this.c.brk = true; }
    const chunk = mem.chunk(pa);
    const off = pa % CHUNK_SIZE;
    chunk.dv.setInt32(off, chunk.dv.getInt32(off, true) | bits, true);
  }

  // ---- fast-cache fills ----

  /**
   * Whether a cached translation may enter the fast caches. Only when paging is
   * off or the page's TLB entry was just validated for this very access; see
   * translate() which records the last validated entry.
   */
  private lastOk: TlbEntry | null = null;
  private lastNoPaging = false;

  private fillRead(lo: number, hi: number, chunk: Chunk, pageOff: number, user: boolean): void {
    if (!this.lastNoPaging && this.lastOk === null) return;
    if (this.tlbGen !== this.tlb.generation) this.dropFast();
    const e = this.lastOk;
    // SMAP depends on RFLAGS.AC, which the fast path does not see: never cache those.
    if (e !== null && !user && e.user && (this.c.cr4 & CR4_SMAP)) return;
    const i = (lo >>> 12) & FAST_MASK;
    this.rTagLo[i] = lo & ~0xfff; this.rTagHi[i] = hi; this.rDv[i] = chunk.dv; this.rOff[i] = pageOff;
  }

  private fillWrite(lo: number, hi: number, chunk: Chunk, pageOff: number, pfn: number, user: boolean): void {
    if (!this.lastNoPaging && this.lastOk === null) return;
    if (this.tlbGen !== this.tlb.generation) this.dropFast();
    const e = this.lastOk;
    if (e !== null && (!e.dirty || (!user && e.user && (this.c.cr4 & CR4_SMAP)))) return;
    if (this.c.mem.isCode(pfn)) return;
    const i = (lo >>> 12) & FAST_MASK;
    this.wTagLo[i] = lo & ~0xfff; this.wTagHi[i] = hi; this.wDv[i] = chunk.dv; this.wOff[i] = pageOff;
  }

  // ---- translation ----

  /** Translates an instruction fetch at RIP to a physical address (fast-cached). */
  translateFetch(lo: number, hi: number): number {
    const i = (lo >>> 12) & FAST_MASK;
    if (this.xTagLo[i] === (lo & ~0xfff) && this.xTagHi[i] === hi) return this.xPhys[i] + (lo & 0xfff);
    const pa = this.translate(lo, hi, ACCESS_EXEC, this.c.cpl === 3);
    if (this.c.mem.isRam(pa)) {
      this.ownerPerms(pa, this.fetchPermission(), AccessOrigin.Guest, lo, hi, true);
      if (this.lastNoPaging || this.lastOk !== null) {
        if (this.tlbGen !== this.tlb.generation) this.dropFast();
        this.xTagLo[i] = lo & ~0xfff; this.xTagHi[i] = hi; this.xPhys[i] = pa - (lo & 0xfff);
      }
    }
    return pa;
  }

  /**
   * The owner permission the fetch translate() just validated needs:
   * ACCESS_EXEC_USER for a user-mode linear address (every paging entry
   * U/S = 1; never with paging off) while mode-based execute control is in
   * effect, else ACCESS_EXEC.
   */
  private fetchPermission(): number {
    const c = this.c;
    return this.lastOk !== null && this.lastOk.user && userFetchChecksXu(c.mbecControl, c.cr4) ? ACCESS_EXEC_USER : ACCESS_EXEC;
  }

  /**
   * Linear to physical for one access, raising #PF as the SDM specifies. `user`
   * is true for CPL-3 accesses that are not implicit supervisor accesses.
   */
  translate(lo: number, hi: number, access: number, user: boolean): number {
    const c = this.c;
    if (!(c.cr0 & CR0_PG)) {
      this.lastNoPaging = true; this.lastOk = null;
      return this.secondStage === null ? lo >>> 0 : this.stage2(lo >>> 0, access, AccessOrigin.Guest, lo, hi);
    }
    this.lastNoPaging = false; this.lastOk = null;
    const vpn = vpnKey(lo, hi);
    let e = this.tlb.lookup(vpn, this.pcid);
    if (e === undefined || (access === ACCESS_WRITE && !e.dirty && e.writable)) {
      e = this.walk(lo, hi, access, user);
    }
    this.checkAccess(e, lo, hi, access, user);
    if (access === ACCESS_WRITE && !e.dirty) {
      // Permitted write to a clean page (only possible for supervisor writes with WP=0 to
      // read-only pages): walk again to set D.
      e = this.walk(lo, hi, access, user);
    }
    this.lastOk = e;
    return e.frame + (lo & 0xfff);
  }

  private pfErr(lo: number, hi: number, code: number): never {
    this.c.cr2Lo = lo; this.c.cr2Hi = hi;
    faultErr(PF_, code);
  }

  private accessCode(access: number, user: boolean): number {
    const c = this.c;
    let code = 0;
    if (access === ACCESS_WRITE) code |= PFEC_W;
    if (user) code |= PFEC_U;
    // SDM 4.7: I/D reports a fetch when SMEP is on, or NX is in use (PAE or 4-level paging with EFER.NXE).
    if (access === ACCESS_EXEC && ((c.cr4 & CR4_SMEP) || ((c.cr4 & CR4_PAE) && (c.efer & EFER_NXE)))) code |= PFEC_I;
    return code;
  }

  /** SDM 4.6 access rights. */
  private checkAccess(e: TlbEntry, lo: number, hi: number, access: number, user: boolean): void {
    const c = this.c;
    let ok = true;
    if (user) {
      if (!e.user) ok = false;
      else if (access === ACCESS_WRITE && !e.writable) ok = false;
      else if (access === ACCESS_EXEC && e.nx) ok = false;
    } else {
      if (access === ACCESS_WRITE) {
        if (!e.writable && (c.cr0 & CR0_WP)) ok = false;
        if (e.user && (c.cr4 & CR4_SMAP) && (c.cpl !== 3 ? !(c.flags & AC) : true)) ok = false;
      } else if (access === ACCESS_READ) {
        if (e.user && (c.cr4 & CR4_SMAP) && (c.cpl !== 3 ? !(c.flags & AC) : true)) ok = false;
      } else {
        if (e.nx) ok = false;
        if (e.user && (c.cr4 & CR4_SMEP)) ok = false;
      }
    }
    if (!ok) this.pfErr(lo, hi, PFEC_P | this.accessCode(access, user));
  }

  /** Walks the paging structures for the current mode, sets A/D bits, caches the result. */
  private walk(lo: number, hi: number, access: number, user: boolean): TlbEntry {
    const c = this.c;
    const isWrite = access === ACCESS_WRITE;
    const nxe = (c.efer & EFER_NXE) !== 0;
    let userOk = true, writeOk = true, nx = false;
    let entryLo = 0, entryHi = 0, entryPa = 0, shift = 12;
    const notPresent = (): never => this.pfErr(lo, hi, this.accessCode(access, user));
    const reserved = (): never => this.pfErr(lo, hi, PFEC_P | PFEC_RSVD | this.accessCode(access, user));

    if (!(c.cr4 & CR4_PAE)) {
      // 32-bit paging: two levels, 4 MiB pages with CR4.PSE.
      let tablePa = (c.cr3Lo & ~0xfff) >>> 0;
      for (let level = 2; level >= 1; level--) {
        const idx = level === 2 ? lo >>> 22 : (lo >>> 12) & 0x3ff;
        entryPa = tablePa + idx * 4;
        entryLo = this.readEntry32(entryPa, lo, hi);
        if (!(entryLo & PTE_P)) notPresent();
        userOk &&= (entryLo & PTE_U) !== 0;
        writeOk &&= (entryLo & PTE_W) !== 0;
        if (!(entryLo & PTE_A)) this.setEntryBits(entryPa, PTE_A, lo, hi);
        if (level === 2 && (entryLo & PTE_PS) && (c.cr4 & CR4_PSE)) {
          if (entryLo & 0x200000) reserved(); // bit 21 reserved (PSE-36 bits beyond our width)
          shift = 22;
          break;
        }
        tablePa = (entryLo & ~0xfff) >>> 0;
      }
    } else {
      let tablePa: number;
      let level: number;
      if (c.efer & EFER_LMA) {
        tablePa = (c.cr3Hi & PHYS_HI_MASK) * 4294967296 + ((c.cr3Lo & ~0xfff) >>> 0);
        level = 4;
      } else {
        // PAE: the PDPTE registers were loaded with CR3.
        const k = lo >>> 30;
        entryLo = this.pdpte[2 * k]; entryHi = this.pdpte[2 * k + 1];
        if (!(entryLo & PTE_P)) notPresent();
        tablePa = (entryHi & PHYS_HI_MASK) * 4294967296 + ((entryLo & ~0xfff) >>> 0);
        level = 2;
      }
      for (; level >= 1; level--) {
        let idx: number;
        switch (level) {
          case 4: idx = (hi >>> 7) & 0x1ff; break;
          case 3: idx = (lo >>> 30) | ((hi & 0x7f) << 2); break;
          case 2: idx = (lo >>> 21) & 0x1ff; break;
          default: idx = (lo >>> 12) & 0x1ff; break;
        }
        entryPa = tablePa + idx * 8;
        entryLo = this.readEntry(entryPa, lo, hi);
        entryHi = this.walkOut[1];
        if (!(entryLo & PTE_P)) notPresent();
        // Reserved bits: above MAXPHYADDR, NX without EFER.NXE, PS in a PML4E.
        if ((entryHi & ~PHYS_HI_MASK & 0x000fffff) !== 0) reserved();
        if (entryHi < 0 && !nxe) reserved();
        if (level === 4 && (entryLo & PTE_PS)) reserved();
        userOk &&= (entryLo & PTE_U) !== 0;
        writeOk &&= (entryLo & PTE_W) !== 0;
        if (nxe && entryHi < 0) nx = true;
        if (!(entryLo & PTE_A)) this.setEntryBits(entryPa, PTE_A, lo, hi);
        if ((level === 3 || level === 2) && (entryLo & PTE_PS)) {
          if (level === 3 && !(c.efer & EFER_LMA)) reserved();
          shift = level === 3 ? 30 : 21;
          // Bits 29:13 (1 GiB) or 20:13 (2 MiB) of a large-page entry are reserved.
          const rsvdMask = level === 3 ? 0x3fffe000 : 0x1fe000;
          if (entryLo & rsvdMask) reserved();
          break;
        }
        tablePa = (entryHi & PHYS_HI_MASK) * 4294967296 + ((entryLo & ~0xfff) >>> 0);
      }
    }

    // Permission check happens in translate(); set D only when the write will be allowed.
    const tentative = new TlbEntry(0, userOk, writeOk, nx, true, false, shift);
    if (isWrite) this.checkAccess(tentative, lo, hi, access, user);
    let dirty = (entryLo & PTE_D) !== 0;
    if (isWrite && !dirty) { this.setEntryBits(entryPa, PTE_D, lo, hi); dirty = true; }
    const global = (entryLo & PTE_G) !== 0 && (c.cr4 & 0x80) !== 0;
    // Frame of the 4 KiB page inside a large page.
    let frame: number;
    const baseHi = shift === 12 || shift === 22 ? 0 : entryHi & PHYS_HI_MASK;
    if (shift === 12) frame = (entryHi & PHYS_HI_MASK) * 4294967296 + ((entryLo & ~0xfff) >>> 0);
    else if (shift === 22) frame = ((entryLo & 0xffc00000) >>> 0) + (lo & 0x3ff000);
    else {
      const pageMask = (1 << shift) - 1;
      frame = baseHi * 4294967296 + ((entryLo & ~pageMask) >>> 0) + ((lo & pageMask & ~0xfff) >>> 0);
    }
    if (this.secondStage !== null) frame = this.stage2(frame + (lo & 0xfff), access, AccessOrigin.Guest, lo, hi) - (lo & 0xfff);
    const e = new TlbEntry(frame, userOk, writeOk, nx, dirty, global, shift);
    this.tlb.insert(vpnKey(lo, hi), this.pcid, e);
    return e;
  }

  /** Reads a 32-bit paging entry (32-bit paging mode). */
  private readEntry32(pa: number, lo: number, hi: number): number {
    if (this.secondStage !== null) pa = this.stage2(pa, ACCESS_READ, AccessOrigin.PageWalk, lo, hi);
    const mem = this.c.mem;
    if (!mem.isRam(pa)) return -1;
    this.ownerPerms(pa, ACCESS_READ, AccessOrigin.PageWalk, lo, hi, true);
    return mem.chunk(pa).dv.getInt32(pa % CHUNK_SIZE, true);
  }

  /** Loads the four PAE PDPTEs from CR3 (SDM 4.4.1); #GP on reserved bits. */
  loadPdptes(): void {
    const c = this.c;
    const base = (c.cr3Lo & ~0x1f) >>> 0;
    for (let k = 0; k < 4; k++) {
      const lo = this.readEntry(base + 8 * k, 0, 0);
      const hi = this.walkOut[1];
      if ((lo & PTE_P) && ((lo & 0x1e6) !== 0 || (hi & ~PHYS_HI_MASK) !== 0)) faultErr(GP, 0);
      this.pdpte[2 * k] = lo; this.pdpte[2 * k + 1] = hi;
    }
  }

  /** Physical address cached in the TLB for a linear address (tools and tests); -1 if none is cached. */
  cachedTranslation(lo: number, hi: number): number {
    const e = this.tlb.lookup(vpnKey(lo, hi), this.pcid);
    return e === undefined ? -1 : e.frame + (lo & 0xfff);
  }
}
