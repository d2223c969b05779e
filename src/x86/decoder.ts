/**
 * Instruction decoder: legacy prefixes, REX, opcode maps 0F/0F38/0F3A, ModRM,
 * SIB, displacement and immediates (SDM vol. 2 chapter 2). Produces an Insn with
 * its handler bound from the opcode table; undefined encodings decode to a #UD
 * instruction so gaps show up in traces instead of being hidden.
 */
import { chooseEa } from './ea.js';
import { fault, faultErr } from './fault.js';
import { Insn, type Handler } from './insn.js';
import { matchRow, rowsFor, type Row } from './opcode-table.js';
import { CS, DS, ES, FS, GS, GP, RBP, RSP, SS, UD } from './regs.js';

/** Supplies instruction bytes; may throw a fetch fault for bytes on an unmapped page. */
export interface ByteSource {
  /** Byte at offset `k` from the instruction start. */
  byteAt(k: number): number;
}

export const MAX_INSN_LEN = 15;

const raiseUd: Handler = () => fault(UD);
const raiseGp0: Handler = () => faultErr(GP, 0);

const MODRM16_BASE = [3, 3, 5, 5, 6, 7, 5, 3]; // BX BX BP BP SI DI BP BX
const MODRM16_INDEX = [6, 7, 6, 7, -1, -1, -1, -1]; // SI DI SI DI

/** Decodes one instruction at linear address lo/hi in a CPU mode of `codeSize` bits. */
export function decode(src: ByteSource, codeSize: number, lo: number, hi: number): Insn {
  const i = new Insn();
  i.lo = lo; i.hi = hi;
  let k = 0;
  const next = (): number => {
    if (k >= MAX_INSN_LEN) { k++; throw TOO_LONG; }
    return src.byteAt(k++);
  };
  let opsize = false, adsize = false, seg = -1, rep = 0, lock = false, rex = 0, lastSimd = 0;
  let b: number;
  try {
    for (;;) {
      b = next();
      if (b === 0x66) { opsize = true; lastSimd = lastSimd === 0 ? 0x66 : lastSimd; rex = 0; }
      else if (b === 0x67) { adsize = true; rex = 0; }
      else if (b === 0xf3 || b === 0xf2) { rep = b === 0xf3 ? 1 : 2; lastSimd = b; rex = 0; }
      else if (b === 0xf0) { lock = true; rex = 0; }
      else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e) { seg = [ES, CS, SS, DS][(b >> 3) & 3]; rex = 0; }
      else if (b === 0x64 || b === 0x65) { seg = b === 0x64 ? FS : GS; rex = 0; }
      else if (codeSize === 64 && (b & 0xf0) === 0x40) { rex = b; }
      else break;
    }
    // In 64-bit mode, CS/DS/ES/SS overrides are ignored.
    if (codeSize === 64 && seg >= 0 && seg < FS) seg = -1;
    let map = 0;
    if (b === 0x0f) {
      map = 1;
      b = next();
      if (b === 0x38) { map = 2; b = next(); } else if (b === 0x3a) { map = 3; b = next(); }
    }
    i.op = (map << 8) | b;
    i.rex = rex;
    i.rep = rep;
    i.lock = lock;
    i.pfx = lastSimd;
    const list = rowsFor(map, b);
    let needModrm = false;
    if (list !== undefined) for (const r of list) if (r.modrm) { needModrm = true; break; }
    let modrm = -1;
    if (needModrm) modrm = next();
    // Mandatory prefix: F2/F3 take precedence over 66 as the SIMD prefix.
    const simdPfx = rep === 1 ? 0xf3 : rep === 2 ? 0xf2 : opsize ? 0x66 : 0;
    let row: Row | undefined;
    if (list !== undefined) {
      row = matchRow(list, simdPfx, modrm);
      // Non-SIMD rows ignore prefixes; SIMD rows (pfx >= 0) need the exact one.
    }
    if (row === undefined || (row.no64 && codeSize === 64) || (row.only64 && codeSize !== 64)) {
      i.name = row === undefined || row.only64 ? '(bad)' : row.name;
      i.exec = raiseUd;
      i.flow = false;
      i.end = true;
      if (modrm >= 0) k = skipModrm(src, k, modrm, codeSize, adsize);
      finish(i, src, k, codeSize);
      return i;
    }
    i.name = row.name;
    i.flow = row.flow === true;
    i.end = i.flow || row.end === true;
    i.setsShadow = row.shadow === true;
    // Operand size.
    const simdRow = row.pfx > 0;
    const os16 = opsize && !(simdRow && row.pfx === 0x66);
    if (row.byte) i.osz = 1;
    else if (codeSize === 64) {
      if (rex & 8) i.osz = 8;
      else if (row.size === 'f64') i.osz = 8;
      else if (os16) i.osz = 2;
      else i.osz = row.size === 'd64' ? 8 : 4;
    } else {
      i.osz = (codeSize === 32) !== os16 ? 4 : 2;
    }
    i.asz = codeSize === 64 ? (adsize ? 4 : 8) : ((codeSize === 32) !== adsize ? 4 : 2);
    i.seg = seg >= 0 ? seg : DS;
    i.segOverride = seg >= 0;
    // Register in the opcode's low bits (B8+r and friends) defaults reg.
    i.reg = (b & 7) | ((rex & 1) << 3);
    i.reg8 = byteReg(i.reg, rex);
    if (modrm >= 0) {
      i.modrm = modrm;
      const mod = modrm >> 6;
      i.ext = (modrm >> 3) & 7;
      i.reg = i.ext | ((rex & 4) << 1);
      i.reg8 = byteReg(i.reg, rex);
      if (mod === 3 || row.regOnly) {
        i.rm = (modrm & 7) | ((rex & 1) << 3);
        i.rm8 = byteReg(i.rm, rex);
      } else {
        decodeMem(i, modrm, codeSize, rex, seg, next);
      }
    }
    // Immediates.
    switch (row.imm) {
      case undefined: break;
      case 'ib': i.imm = (next() << 24) >> 24; break;
      case 'iw': i.imm = next() | (next() << 8); break;
      case 'iw_ib': i.imm = next() | (next() << 8); i.imm2 = next(); break;
      case 'iz':
        if (i.osz === 2) i.imm = next() | (next() << 8);
        else { i.imm = next() | (next() << 8) | (next() << 16) | (next() << 24); i.immHi = i.imm >> 31; }
        break;
      case 'iv':
        if (i.osz === 2) i.imm = next() | (next() << 8);
        else {
          i.imm = next() | (next() << 8) | (next() << 16) | (next() << 24);
          if (i.osz === 8) i.immHi = next() | (next() << 8) | (next() << 16) | (next() << 24);
        }
        break;
      case 'moffs': {
        const n = i.asz;
        let v = 0, vh = 0;
        for (let q = 0; q < n; q++) { const x = next(); if (q < 4) v |= x << (8 * q); else vh |= x << (8 * (q - 4)); }
        i.imm = v; i.immHi = vh;
        break;
      }
      case 'far': {
        if (i.osz === 2) i.imm = next() | (next() << 8);
        else i.imm = next() | (next() << 8) | (next() << 16) | (next() << 24);
        i.imm2 = next() | (next() << 8);
        break;
      }
    }
    finish(i, src, k, codeSize);
    if (i.lock && (!row.lockable || i.rm >= 0)) {
      i.exec = raiseUd;
    } else {
      i.exec = row.bind ? row.bind(i) : row.exec!;
    }
    return i;
  } catch (e) {
    if (e !== TOO_LONG) throw e;
    // SDM 2.3.11: an instruction longer than 15 bytes raises #GP(0).
    i.name = '(too long)';
    i.exec = raiseGp0;
    i.flow = false;
    i.end = true;
    k = MAX_INSN_LEN;
  }
  finish(i, src, k, codeSize);
  return i;
}

const TOO_LONG = { tooLong: true };

function byteReg(r: number, rex: number): number {
  return rex === 0 && r >= 4 && r < 8 ? r + 12 : r;
}

function finish(i: Insn, src: ByteSource, len: number, codeSize: number): void {
  i.len = len;
  const bytes = new Uint8Array(len);
  for (let q = 0; q < len; q++) bytes[q] = src.byteAt(q);
  i.bytes = bytes;
  const s = (i.lo >>> 0) + len;
  i.nextLo = s | 0;
  i.nextHi = codeSize === 64 ? (i.hi + (s > 0xffffffff ? 1 : 0)) | 0 : 0;
  if (codeSize === 16) i.nextLo &= 0xffff;
  if (i.base === -2) {
    // RIP-relative: absolute = next RIP + disp32 (sign-extended).
    const t = (i.nextLo >>> 0) + (i.disp >>> 0);
    i.absLo = t | 0;
    i.absHi = i.asz === 4 ? 0 : (i.nextHi + (i.disp >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
  }
}

/** ModRM memory operand: SIB, displacement, default segment. */
function decodeMem(i: Insn, modrm: number, codeSize: number, rex: number, seg: number, next: () => number): void {
  const mod = modrm >> 6, rm = modrm & 7;
  let defSeg = DS;
  if (i.asz === 2) {
    i.base = MODRM16_BASE[rm];
    i.index = MODRM16_INDEX[rm];
    if (mod === 0 && rm === 6) { i.base = -1; i.disp = next() | (next() << 8); }
    else if (mod === 1) i.disp = (next() << 24) >> 24;
    else if (mod === 2) i.disp = next() | (next() << 8);
    if (i.base === RBP) defSeg = SS;
    if (rm === 2 || rm === 3) defSeg = SS;
  } else {
    if (rm === 4) {
      const sib = next();
      const sc = sib >> 6, idx = ((sib >> 3) & 7) | ((rex & 2) << 2), bs = (sib & 7) | ((rex & 1) << 3);
      i.scale = sc;
      i.index = idx === 4 ? -1 : idx;
      if ((sib & 7) === 5 && mod === 0) { i.base = -1; i.disp = next() | (next() << 8) | (next() << 16) | (next() << 24); }
      else i.base = bs;
    } else if (rm === 5 && mod === 0) {
      i.disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
      i.base = codeSize === 64 ? -2 : -1; // RIP-relative in 64-bit mode (also with 0x67)
    } else {
      i.base = rm | ((rex & 1) << 3);
    }
    if (mod === 1) i.disp = (next() << 24) >> 24;
    else if (mod === 2) i.disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
    if (i.base === RSP || i.base === RBP) defSeg = SS;
  }
  i.seg = seg >= 0 ? seg : defSeg;
  i.ea = chooseEa(i, codeSize);
}

/** Skips a ModRM memory operand's SIB/displacement for an undefined opcode (length only). */
function skipModrm(src: ByteSource, k: number, modrm: number, codeSize: number, adsize: boolean): number {
  const mod = modrm >> 6, rm = modrm & 7;
  if (mod === 3) return k;
  const a16 = codeSize === 16 ? !adsize : (codeSize === 32 && adsize);
  if (a16) return k + (mod === 1 ? 1 : mod === 2 ? 2 : rm === 6 && mod === 0 ? 2 : 0);
  if (rm === 4) {
    const sib = src.byteAt(k++);
    if ((sib & 7) === 5 && mod === 0) k += 4;
  } else if (rm === 5 && mod === 0) k += 4;
  return k + (mod === 1 ? 1 : mod === 2 ? 4 : 0);
}
