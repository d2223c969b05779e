/**
 * Fast paths of forward (DF=0) REP MOVS and REP STOS on RAM: a run of elements
 * that stays inside one source page and one destination page is copied or
 * filled with typed-array operations instead of element by element.
 *
 * Why this is still precise: every element of such a run has the same
 * translation, paging permissions and owner permissions, so the run either
 * faults on its first element or not at all. Both pages are translated up front
 * (source first, as the element loop reads before it writes), before any
 * register or memory changes; runs end at page boundaries, where the next run
 * translates again. Anything unusual (MMIO, owner-denied pages, overlap that
 * replicates elements, a run of one) is left to the element loop, which goes
 * through the MMU one access at a time.
 */
import { CHUNK_SIZE, PAGE_SIZE } from '../../memory/phys-memory.js';
import type { Cpu } from '../cpu.js';
import { ACCESS_READ, ACCESS_WRITE } from '../host.js';
import type { Insn } from '../insn.js';
import { RAX, RCX, RDI, RSI } from '../regs.js';
import { addIndex, dstLinear, srcLinear } from './string-regs.js';

/** Shorter runs gain nothing over the element loop. */
const MIN_RUN = 2;

/** Whole elements of `sz` bytes from linear address `lin` to the end of its page. */
function toPageEnd(lin: number, sz: number): number {
  return Math.floor((PAGE_SIZE - (lin & 0xfff)) / sz);
}

/**
 * Whole elements before a 16-bit index register wraps (its linear addresses jump
 * back by 64 KiB there). 32- and 64-bit offsets wrap only where linear addresses
 * do, at a page boundary, which toPageEnd already respects.
 */
function toOffsetWrap(c: Cpu, r: number, asz: number, sz: number): number {
  return asz === 2 ? Math.floor((0x10000 - (c.rlo[r] & 0xffff)) / sz) : Infinity;
}

/** Whether physical page `pa` is RAM the owner lets the guest access this way. */
function plainRam(c: Cpu, pa: number, access: number): boolean {
  if (!c.mem.isRam(pa)) return false;
  return (c.host.pagePermissions(Math.floor(pa / PAGE_SIZE)) & access) === access;
}

/** A write to a page holding decoded code drops that code and ends the block (as the MMU's write path does). */
function noteWrite(c: Cpu, pa: number, bytes: number): void {
  if (c.mem.isCode(Math.floor(pa / PAGE_SIZE))) {
    c.mem.notifyWrite(pa, bytes);
    c.brk = true;
  }
}

/**
 * Copies up to `max` elements of REP MOVS forward; returns how many (0: none, use
 * the element loop). Updates RSI, RDI and RCX.
 */
export function bulkMovs(c: Cpu, i: Insn, sz: number, max: number): number {
  const asz = i.asz;
  const s = srcLinear(c, i), sHi = c.tHi;
  const d = dstLinear(c, i), dHi = c.tHi;
  const run = Math.min(max, toPageEnd(s, sz), toPageEnd(d, sz),
    toOffsetWrap(c, RSI, asz, sz), toOffsetWrap(c, RDI, asz, sz));
  if (run < MIN_RUN) return 0;
  const user = c.cpl === 3;
  const sp = c.mmu.translate(s, sHi, ACCESS_READ, user);
  const dp = c.mmu.translate(d, dHi, ACCESS_WRITE, user);
  if (!plainRam(c, sp, ACCESS_READ) || !plainRam(c, dp, ACCESS_WRITE)) return 0;
  const bytes = run * sz;
  // A destination a little ahead of the source re-reads elements this very run
  // wrote (the element-by-element result differs from a block copy): not here.
  if (dp > sp && dp < sp + bytes) return 0;
  noteWrite(c, dp, bytes);
  const sc = c.mem.chunk(sp), so = sp % CHUNK_SIZE;
  const dc = c.mem.chunk(dp), dOff = dp % CHUNK_SIZE;
  // copyWithin has memmove semantics, which equal the forward element order when dp <= sp.
  if (sc === dc) dc.u8.copyWithin(dOff, so, so + bytes);
  else dc.u8.set(sc.u8.subarray(so, so + bytes), dOff);
  addIndex(c, RSI, bytes, asz);
  addIndex(c, RDI, bytes, asz);
  addIndex(c, RCX, -run, asz);
  return run;
}

/** Fills up to `max` elements of REP STOS forward; returns how many (0: use the element loop). */
export function bulkStos(c: Cpu, i: Insn, sz: number, max: number): number {
  const asz = i.asz;
  const d = dstLinear(c, i), dHi = c.tHi;
  const run = Math.min(max, toPageEnd(d, sz), toOffsetWrap(c, RDI, asz, sz));
  if (run < MIN_RUN) return 0;
  const dp = c.mmu.translate(d, dHi, ACCESS_WRITE, c.cpl === 3);
  if (!plainRam(c, dp, ACCESS_WRITE)) return 0;
  const bytes = run * sz;
  noteWrite(c, dp, bytes);
  const ch = c.mem.chunk(dp), o = dp % CHUNK_SIZE;
  const v = c.rlo[RAX];
  if (sz === 1) {
    ch.u8.fill(v & 0xff, o, o + bytes);
  } else {
    // One element, then doubling copies of what is already filled.
    if (sz === 2) ch.dv.setUint16(o, v & 0xffff, true);
    else ch.dv.setInt32(o, v, true);
    if (sz === 8) ch.dv.setInt32(o + 4, c.rhi[RAX], true);
    for (let filled = sz; filled < bytes;) {
      const k = Math.min(filled, bytes - filled);
      ch.u8.copyWithin(o + filled, o, o + k);
      filled += k;
    }
  }
  addIndex(c, RDI, bytes, asz);
  addIndex(c, RCX, -run, asz);
  return run;
}
