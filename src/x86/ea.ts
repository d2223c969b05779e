/**
 * Effective and linear addresses of memory operands (SDM vol. 1 §3.7.5,
 * vol. 3 §3.4). One function is chosen per decoded instruction. They return the
 * linear address bits 31:0 and leave bits 63:32 in c.tHi; 64-bit addresses that
 * are not canonical raise #GP(0), or #SS(0) for stack-segment references.
 */
import type { Cpu } from './cpu.js';
import { faultErr } from './fault.js';
import type { EaFn, Insn } from './insn.js';
import { FS, GP, SS, SS_ } from './regs.js';

/** Offset (before segmentation) of a 64-bit-address operand; hi in c.tHi. */
function offset64(c: Cpu, i: Insn): number {
  let lo = i.disp, hi = i.disp >> 31;
  if (i.base >= 0) {
    const s = (lo >>> 0) + (c.rlo[i.base] >>> 0);
    hi = (hi + c.rhi[i.base] + (s > 0xffffffff ? 1 : 0)) | 0;
    lo = s | 0;
  }
  if (i.index >= 0) {
    const x = i.index, sc = i.scale;
    const xlo = c.rlo[x] << sc;
    const xhi = sc === 0 ? c.rhi[x] : (c.rhi[x] << sc) | (c.rlo[x] >>> (32 - sc));
    const s = (lo >>> 0) + (xlo >>> 0);
    hi = (hi + xhi + (s > 0xffffffff ? 1 : 0)) | 0;
    lo = s | 0;
  }
  c.tHi = hi;
  return lo;
}

function offset32(c: Cpu, i: Insn): number {
  let v = i.disp;
  if (i.base >= 0) v = (v + c.rlo[i.base]) | 0;
  if (i.index >= 0) v = (v + (c.rlo[i.index] << i.scale)) | 0;
  return v;
}

function offset16(c: Cpu, i: Insn): number {
  let v = i.disp;
  if (i.base >= 0) v += c.rlo[i.base];
  if (i.index >= 0) v += c.rlo[i.index];
  return v & 0xffff;
}

/** Effective address as LEA computes it (no segment), truncated to the address size; hi in c.tHi. */
export function leaOffset(c: Cpu, i: Insn): number {
  if (i.base === -2) { c.tHi = i.absHi; return i.absLo; }
  if (i.asz === 8) return offset64(c, i);
  c.tHi = 0;
  return i.asz === 4 ? offset32(c, i) : offset16(c, i);
}

function canonical(c: Cpu, i: Insn, lo: number, hi: number): number {
  if (((hi << 16) >> 16) !== hi) {
    if (i.seg === SS) faultErr(SS_, 0);
    fault0();
  }
  c.tHi = hi;
  return lo;
}
function fault0(): never { return faultErr(GP, 0); }

/** 64-bit addressing, FS/GS-relative or not. */
const ea64: EaFn = (c, i) => {
  let lo = offset64(c, i), hi = c.tHi;
  if (i.seg >= FS) {
    const s = (lo >>> 0) + (c.segBaseLo[i.seg] >>> 0);
    hi = (hi + c.segBaseHi[i.seg] + (s > 0xffffffff ? 1 : 0)) | 0;
    lo = s | 0;
  }
  return canonical(c, i, lo, hi);
};

/** 64-bit addressing, base register + displacement only, no FS/GS: the common case. */
const ea64Base: EaFn = (c, i) => {
  const b = i.base;
  const s = (i.disp >>> 0) + (c.rlo[b] >>> 0);
  const hi = ((i.disp >> 31) + c.rhi[b] + (s > 0xffffffff ? 1 : 0)) | 0;
  if (((hi << 16) >> 16) !== hi) {
    if (i.seg === SS) faultErr(SS_, 0);
    fault0();
  }
  c.tHi = hi;
  return s | 0;
};

/** RIP-relative: the address is a constant computed at decode (disp2/immHi2). */
const eaRip: EaFn = (c, i) => {
  if (i.seg >= FS) {
    const s = (i.absLo >>> 0) + (c.segBaseLo[i.seg] >>> 0);
    const hi = (i.absHi + c.segBaseHi[i.seg] + (s > 0xffffffff ? 1 : 0)) | 0;
    return canonical(c, i, s | 0, hi);
  }
  c.tHi = i.absHi;
  return i.absLo;
};

/** 32-bit address size in 64-bit mode: zero-extended, then FS/GS base. */
const ea32In64: EaFn = (c, i) => {
  const off = offset32(c, i);
  if (i.seg >= FS) {
    const s = (off >>> 0) + (c.segBaseLo[i.seg] >>> 0);
    const hi = (c.segBaseHi[i.seg] + (s > 0xffffffff ? 1 : 0)) | 0;
    return canonical(c, i, s | 0, hi);
  }
  c.tHi = 0;
  return off;
};

/** Legacy modes: segment base + offset, 32-bit linear address. Limits are not checked (see README). */
const ea32: EaFn = (c, i) => {
  c.tHi = 0;
  return (c.segBaseLo[i.seg] + offset32(c, i)) | 0;
};
const ea16: EaFn = (c, i) => {
  c.tHi = 0;
  return (c.segBaseLo[i.seg] + offset16(c, i)) | 0;
};

export function chooseEa(i: Insn, codeSize: number): EaFn {
  if (i.base === -2) return eaRip;
  if (codeSize === 64) {
    if (i.asz === 8) {
      if (i.index < 0 && i.base >= 0 && i.seg < FS) return ea64Base;
      return ea64;
    }
    return ea32In64;
  }
  return i.asz === 4 ? ea32 : ea16;
}

/** Linear address of seg:offset for implicit operands (string ops, stack): hi in c.tHi. */
export function linear(c: Cpu, seg: number, offLo: number, offHi: number, asz: number): number {
  if (c.codeSize === 64) {
    let lo = offLo, hi = asz === 8 ? offHi : 0;
    if (seg >= FS) {
      const s = (lo >>> 0) + (c.segBaseLo[seg] >>> 0);
      hi = (hi + c.segBaseHi[seg] + (s > 0xffffffff ? 1 : 0)) | 0;
      lo = s | 0;
    }
    if (((hi << 16) >> 16) !== hi) { if (seg === SS) faultErr(SS_, 0); fault0(); }
    c.tHi = hi;
    return lo;
  }
  c.tHi = 0;
  return (c.segBaseLo[seg] + (asz === 2 ? offLo & 0xffff : offLo)) | 0;
}


