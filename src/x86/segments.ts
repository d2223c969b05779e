/**
 * Segment register loads and descriptor-table access (SDM vol. 3 ch. 3 and 5).
 * Call gates and task switches are not implemented: they raise #GP (see README).
 */
import type { Cpu } from './cpu.js';
import { faultErr } from './fault.js';
import {
  ATTR_DB, ATTR_L, ATTR_P, ATTR_S, attrDpl, attrFromDescHigh, baseFromDesc, limitFromDesc,
} from './segment-cache.js';
import { CR0_PE, CS, GP, LDTR, NP, SS, SS_, TR, TS } from './regs.js';

/**
 * Reads the 8-byte descriptor for `sel` into out[0], out[1]; #GP(sel) (or `vec`) if outside the table.
 * Returns the descriptor's linear address bits 31:0, bits 63:32 in c.tHi.
 */
export function readDescriptor(c: Cpu, sel: number, out: Int32Array, vec = GP): number {
  const idx = sel & ~7;
  let baseLo: number, baseHi: number, limit: number;
  if (sel & 4) {
    if (!(c.segAttr[LDTR] & ATTR_P)) faultErr(vec, sel & 0xfffc);
    baseLo = c.segBaseLo[LDTR]; baseHi = c.segBaseHi[LDTR]; limit = c.segLimit[LDTR] >>> 0;
  } else {
    baseLo = c.gdtrBaseLo; baseHi = c.gdtrBaseHi; limit = c.gdtrLimit;
  }
  if (idx + 7 > limit) faultErr(vec, sel & 0xfffc);
  const s = (baseLo >>> 0) + idx;
  const lo = s | 0, hi = (baseHi + (s > 0xffffffff ? 1 : 0)) | 0;
  out[0] = c.mmu.sysRead32(lo, hi);
  out[1] = c.mmu.sysRead32((lo + 4) | 0, (lo >>> 0) + 4 > 0xffffffff ? hi + 1 : hi);
  c.tHi = hi;
  return lo;
}

/** Sets the accessed bit of a descriptor (at linear lo, hi of its first byte). */
function setAccessed(c: Cpu, lo: number, hi: number, high: number): void {
  if (!(high & 0x100)) c.mmu.sysWrite8((lo + 5) | 0, hi, ((high >>> 8) & 0xff) | 1);
}

const tmp = new Int32Array(2);

function loadCache(c: Cpu, seg: number, sel: number, low: number, high: number): void {
  c.segSel[seg] = sel & 0xffff;
  c.segBaseLo[seg] = baseFromDesc(low, high);
  c.segBaseHi[seg] = 0;
  c.segLimit[seg] = limitFromDesc(low, high) | 0;
  c.segAttr[seg] = attrFromDescHigh(high) | 0x1; // accessed
}

/** A data-segment register load (MOV/POP to DS, ES, FS, GS, SS; LDS and friends). */
export function loadSegment(c: Cpu, seg: number, sel: number): void {
  sel &= 0xffff;
  if (!(c.cr0 & CR0_PE) || (c.flags & (1 << 17))) { c.loadRealSegment(seg, sel); return; }
  const rpl = sel & 3;
  if ((sel & ~3) === 0) {
    if (seg === SS && !(c.codeSize === 64 && rpl === c.cpl && c.cpl !== 3)) faultErr(GP, 0);
    // A null selector makes the register unusable; 64-bit FS/GS bases are kept.
    c.segSel[seg] = sel;
    c.segAttr[seg] = seg === SS ? (c.segAttr[SS] & ~ATTR_P) | (c.cpl << 5) : 0;
    if (c.codeSize !== 64 || seg < 4) { c.segBaseLo[seg] = 0; c.segBaseHi[seg] = 0; }
    c.segLimit[seg] = 0;
    return;
  }
  const at = readDescriptor(c, sel, tmp), atHi = c.tHi;
  const low = tmp[0], high = tmp[1];
  const attr = attrFromDescHigh(high);
  const dpl = attrDpl(attr);
  const type = attr & 0xf;
  const isCode = (type & 8) !== 0;
  if (!(attr & ATTR_S)) faultErr(GP, sel & 0xfffc);
  if (seg === SS) {
    if (rpl !== c.cpl || dpl !== c.cpl || isCode || !(type & 2)) faultErr(GP, sel & 0xfffc);
    if (!(attr & ATTR_P)) faultErr(SS_, sel & 0xfffc);
  } else {
    if (isCode && !(type & 2)) faultErr(GP, sel & 0xfffc); // execute-only code
    const conforming = isCode && (type & 4) !== 0;
    if (!conforming && (rpl > dpl || c.cpl > dpl)) faultErr(GP, sel & 0xfffc);
    if (!(attr & ATTR_P)) faultErr(NP, sel & 0xfffc);
  }
  setAccessed(c, at, atHi, high);
  loadCache(c, seg, sel, low, high);
}

/**
 * Loads CS for a far JMP/CALL/RET/IRET to a code segment at privilege `newCpl`.
 * Checks type and presence; privilege rules are the caller's (they differ per instruction).
 */
export function loadCodeSegment(c: Cpu, sel: number, newCpl: number): void {
  sel &= 0xffff;
  if (!(c.cr0 & CR0_PE) || (c.flags & (1 << 17))) {
    c.loadRealSegment(CS, sel);
    c.updateMode();
    return;
  }
  if ((sel & ~3) === 0) faultErr(GP, 0);
  const at = readDescriptor(c, sel, tmp), atHi = c.tHi;
  const low = tmp[0], high = tmp[1];
  const attr = attrFromDescHigh(high);
  if (!(attr & ATTR_S) || !(attr & 8)) faultErr(GP, sel & 0xfffc);
  const conforming = (attr & 4) !== 0;
  const dpl = attrDpl(attr);
  if (conforming ? dpl > newCpl : dpl !== newCpl) faultErr(GP, sel & 0xfffc);
  if (c.longMode && (attr & ATTR_L) && (attr & ATTR_DB)) faultErr(GP, sel & 0xfffc);
  if (!(attr & ATTR_P)) faultErr(NP, sel & 0xfffc);
  setAccessed(c, at, atHi, high);
  loadCache(c, CS, (sel & ~3) | newCpl, low, high);
  c.cpl = newCpl;
  c.updateMode();
  }

/** LLDT / LTR: system descriptors, 16 bytes in long mode. */
export function loadSystemSegment(c: Cpu, which: number, sel: number): void {
  sel &= 0xffff;
  if ((sel & ~3) === 0) {
    if (which === TR) faultErr(GP, 0);
    c.segSel[LDTR] = sel; c.segAttr[LDTR] = 0; c.segBaseLo[LDTR] = 0; c.segBaseHi[LDTR] = 0; c.segLimit[LDTR] = 0;
    return;
  }
  if (sel & 4) faultErr(GP, sel & 0xfffc);
  const at = readDescriptor(c, sel, tmp);
  const low = tmp[0], high = tmp[1];
  const attr = attrFromDescHigh(high);
  const type = attr & 0xf;
  if (attr & ATTR_S) faultErr(GP, sel & 0xfffc);
  if (which === LDTR ? type !== 2 : !(type === 9 || (type === 1 && !c.longMode))) faultErr(GP, sel & 0xfffc);
  if (!(attr & ATTR_P)) faultErr(NP, sel & 0xfffc);
  let baseHi = 0;
  if (c.longMode) {
    if ((sel & ~7) + 15 > c.gdtrLimit) faultErr(GP, sel & 0xfffc);
    baseHi = c.mmu.sysRead32((at + 8) | 0, c.gdtrBaseHi);
  }
  loadCache(c, which, sel, low, high);
  c.segBaseHi[which] = baseHi;
  if (which === TR) {
    c.segAttr[TR] = attr | 2; // busy
    c.mmu.sysWrite8((at + 5) | 0, c.gdtrBaseHi, ((high >>> 8) & 0xff) | 2);
  } else {
    c.segAttr[LDTR] = attr;
  }
}

/** Reads a 64-bit value (lo returned, hi in c.tHi) from the TSS at `offset`; #TS if beyond its limit. */
export function readTss64(c: Cpu, offset: number): number {
  if (offset + 7 > (c.segLimit[TR] >>> 0)) faultErr(TS, c.segSel[TR] & 0xfffc);
  const s = (c.segBaseLo[TR] >>> 0) + offset;
  const lo = s | 0, hi = (c.segBaseHi[TR] + (s > 0xffffffff ? 1 : 0)) | 0;
  const v = c.mmu.sysRead32(lo, hi);
  c.tHi = c.mmu.sysRead32((lo + 4) | 0, hi);
  return v;
}

/** Reads a 32-bit value from the TSS at `offset`. */
export function readTss32(c: Cpu, offset: number): number {
  if (offset + 3 > (c.segLimit[TR] >>> 0)) faultErr(TS, c.segSel[TR] & 0xfffc);
  return c.mmu.sysRead32((c.segBaseLo[TR] + offset) | 0, c.segBaseHi[TR]);
}

/** SS for a privilege change: flat data segment of `dpl` from selector `sel` (long mode allows null). */
export function loadStackForCpl(c: Cpu, sel: number, cpl: number): void {
  if ((sel & ~3) === 0 && c.longMode) {
    c.segSel[SS] = cpl; c.segBaseLo[SS] = 0; c.segBaseHi[SS] = 0; c.segLimit[SS] = -1;
    c.segAttr[SS] = ATTR_P | ATTR_S | 0x3 | (cpl << 5) | ATTR_DB;
    return;
  }
  const saved = c.cpl;
  c.cpl = cpl;
  try { loadSegment(c, SS, sel); } finally { c.cpl = saved; }
}
