/** LAR, LSL, VERR, VERW: querying descriptors without loading them (SDM vol. 2). ZF reports validity. */
import type { Cpu } from '../cpu.js';
import { fault } from '../fault.js';
import { materializeFlags, setArithFlags } from '../flags.js';
import type { Handler } from '../insn.js';
import { def } from '../opcode-table.js';
import { readRm, setReg } from '../operands.js';
import { limitFromDesc } from '../segment-cache.js';
import { CR0_PE, LDTR, UD, ZF } from '../regs.js';

const desc = new Int32Array(2);

/** Reads the descriptor for `sel` if it is inside its table; false otherwise (no fault). */
function lookup(c: Cpu, sel: number): boolean {
  if ((sel & ~3) === 0) return false;
  const limit = (sel & 4) ? (c.segAttr[LDTR] & 0x80 ? c.segLimit[LDTR] >>> 0 : -1) : c.gdtrLimit;
  if ((sel & ~7) + 7 > limit) return false;
  const baseLo = (sel & 4) ? c.segBaseLo[LDTR] : c.gdtrBaseLo, baseHi = (sel & 4) ? c.segBaseHi[LDTR] : c.gdtrBaseHi;
  const s = (baseLo >>> 0) + (sel & ~7);
  const lo = s | 0, hi = (baseHi + (s > 0xffffffff ? 1 : 0)) | 0;
  desc[0] = c.mmu.sysRead32(lo, hi);
  desc[1] = c.mmu.sysRead32((lo + 4) | 0, hi);
  return true;
}

/** Privilege check shared by all four: DPL >= max(CPL, RPL) unless conforming code. */
function visible(c: Cpu, sel: number, high: number): boolean {
  const type = (high >>> 8) & 0x1f;
  const conformingCode = (type & 0x1c) === 0x1c;
  const dpl = (high >>> 13) & 3;
  return conformingCode || (dpl >= c.cpl && dpl >= (sel & 3));
}

/** System descriptor types LAR (lar=true) or LSL accept; long mode has fewer. */
function systemTypeOk(c: Cpu, type: number, lar: boolean): boolean {
  if (c.longMode) return type === 2 || type === 9 || type === 0xb || (lar && type === 0xc);
  const lsl = [1, 2, 3, 9, 0xb];
  return lar ? [...lsl, 4, 5, 0xc].includes(type) : lsl.includes(type);
}

function setZf(c: Cpu, ok: boolean): void {
  const f = materializeFlags(c);
  setArithFlags(c, ok ? f | ZF : f & ~ZF);
}

function query(kind: 'lar' | 'lsl'): Handler {
  return (c, i) => {
    if (!(c.cr0 & CR0_PE)) fault(UD);
    const sel = readRm(c, i, 2) & 0xffff;
    let ok = lookup(c, sel);
    const low = desc[0], high = desc[1];
    if (ok) {
      const s = (high >>> 12) & 1, type = (high >>> 8) & 0xf;
      ok = (s ? true : systemTypeOk(c, type, kind === 'lar')) && visible(c, sel, high);
    }
    setZf(c, ok);
    if (!ok) return;
    const v = kind === 'lar' ? high & 0x00ffff00 : limitFromDesc(low, high) | 0;
    setReg(c, i.reg, i.osz === 2 ? 2 : i.osz, i.osz === 2 ? v & 0xffff : v);
  };
}
def('0F 02', { name: 'lar', modrm: true, exec: query('lar') });
def('0F 03', { name: 'lsl', modrm: true, exec: query('lsl') });

function verify(write: boolean): Handler {
  return (c, i) => {
    if (!(c.cr0 & CR0_PE)) fault(UD);
    const sel = readRm(c, i, 2) & 0xffff;
    let ok = lookup(c, sel);
    if (ok) {
      const high = desc[1], type = (high >>> 8) & 0x1f;
      const isCode = (type & 0x18) === 0x18, isData = (type & 0x18) === 0x10;
      ok = (write ? isData && (type & 2) !== 0 : isData || (isCode && (type & 2) !== 0)) && visible(c, sel, high);
    }
    setZf(c, ok);
  };
}
def('0F 00/4', { name: 'verr', exec: verify(false) });
def('0F 00/5', { name: 'verw', exec: verify(true) });
