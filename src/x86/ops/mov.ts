/**
 * Data movement and the integer odds and ends gcc emits: MOV forms, LEA,
 * MOVZX/MOVSX/MOVSXD, XCHG, BSWAP, CMOVcc, SETcc, CBW family, LAHF/SAHF, NOPs,
 * CMPXCHG, XADD, CMPXCHG8B/16B, BT/BTS/BTR/BTC, BSF/BSR, TZCNT/LZCNT/POPCNT.
 */
import type { Cpu } from '../cpu.js';
import { faultErr, fault } from '../fault.js';
import { getZF, materializeFlags, setArithFlags, testCond } from '../flags.js';
import { leaOffset, linear } from '../ea.js';
import { markPure, type Handler } from '../insn.js';
import { def } from '../opcode-table.js';
import {
  getReg, readMem, readMemRmw, readRegOp, readRm, setReg, sext, trunc, writeMem, writeRegOp, writeRm,
} from '../operands.js';
import { alu, alu64 } from './alu.js';
import { loadSegment } from '../segments.js';
import { CF, CS, GP, OF, RAX, RBX, RCX, RDX, SS, UD, ZF } from '../regs.js';

// ---- MOV ----
const movRmReg: Handler = (c, i) => { const v = readRegOp(c, i); writeRm(c, i, v, c.tHi); };
const movRegRm: Handler = (c, i) => { const v = readRm(c, i); writeRegOp(c, i, v, c.tHi); };
/** mov r32, r32 in 64-bit/32-bit code: the single most common instruction. */
const movRegReg32: Handler = markPure((c, i) => { c.rlo[i.rm] = c.rlo[i.reg]; c.rhi[i.rm] = 0; });
const movRegReg64: Handler = markPure((c, i) => { c.rlo[i.rm] = c.rlo[i.reg]; c.rhi[i.rm] = c.rhi[i.reg]; });
const movLoad64: Handler = (c, i) => { const lo = i.ea(c, i); const v = c.mmu.read64(lo, c.tHi); c.rlo[i.reg] = v; c.rhi[i.reg] = c.tHi; };
const movLoad32: Handler = (c, i) => { const lo = i.ea(c, i); c.rlo[i.reg] = c.mmu.read32(lo, c.tHi); c.rhi[i.reg] = 0; };
const movStore64: Handler = (c, i) => { const lo = i.ea(c, i); c.mmu.write64(lo, c.tHi, c.rlo[i.reg], c.rhi[i.reg]); };
const movStore32: Handler = (c, i) => { const lo = i.ea(c, i); c.mmu.write32(lo, c.tHi, c.rlo[i.reg]); };

def('88', { name: 'mov', modrm: true, byte: true, exec: movRmReg });
def('89', {
  name: 'mov', modrm: true,
  bind: (i) => i.rm >= 0 ? (i.osz === 4 ? movRegReg32 : i.osz === 8 ? movRegReg64 : movRmReg)
    : (i.osz === 4 ? movStore32 : i.osz === 8 ? movStore64 : movRmReg),
});
def('8A', { name: 'mov', modrm: true, byte: true, exec: movRegRm });
def('8B', {
  name: 'mov', modrm: true,
  bind: (i) => i.rm < 0 ? (i.osz === 4 ? movLoad32 : i.osz === 8 ? movLoad64 : movRegRm) : movRegRm,
});
const movRmImm: Handler = (c, i) => writeRm(c, i, i.osz === 8 ? i.imm : trunc(i.imm, i.osz), i.imm >> 31);
def('C6/0', { name: 'mov', byte: true, imm: 'ib', exec: movRmImm });
def('C7/0', { name: 'mov', imm: 'iz', exec: movRmImm });
def('B0+r', { name: 'mov', byte: true, imm: 'ib', exec: (c, i) => setReg(c, i.reg8, 1, i.imm) });
def('B8+r', { name: 'mov', imm: 'iv', exec: (c, i) => setReg(c, i.reg, i.osz, i.imm, i.immHi) });

// MOV with a memory offset (moffs): A0-A3.
function moffsAddr(c: Cpu, i: { seg: number; imm: number; immHi: number; asz: number }): number {
  if (c.codeSize === 64) {
    let lo = i.imm, hi = i.asz === 8 ? i.immHi : 0;
    if (i.seg >= 4) {
      const s = (lo >>> 0) + (c.segBaseLo[i.seg] >>> 0);
      hi = (hi + c.segBaseHi[i.seg] + (s > 0xffffffff ? 1 : 0)) | 0; lo = s | 0;
    }
    if (((hi << 16) >> 16) !== hi) faultErr(GP, 0);
    c.tHi = hi;
    return lo;
  }
  c.tHi = 0;
  return (c.segBaseLo[i.seg] + (i.asz === 2 ? i.imm & 0xffff : i.imm)) | 0;
}
const movAccMoffs: Handler = (c, i) => { const a = moffsAddr(c, i); const v = readMem(c, a, c.tHi, i.osz); setReg(c, RAX, i.osz, v, c.tHi); };
const movMoffsAcc: Handler = (c, i) => { const a = moffsAddr(c, i); writeMem(c, a, c.tHi, i.osz, getReg(c, RAX, i.osz), c.rhi[RAX]); };
def('A0', { name: 'mov', byte: true, imm: 'moffs', exec: movAccMoffs });
def('A1', { name: 'mov', imm: 'moffs', exec: movAccMoffs });
def('A2', { name: 'mov', byte: true, imm: 'moffs', exec: movMoffsAcc });
def('A3', { name: 'mov', imm: 'moffs', exec: movMoffsAcc });

// MOV to/from segment registers.
def('8C', {
  name: 'mov', modrm: true,
  exec: (c, i) => {
    if (i.ext > 5) fault(UD);
    const v = c.segSel[i.ext];
    if (i.rm >= 0) setReg(c, i.rm, i.osz === 2 ? 2 : i.osz, v); else writeRm(c, i, v, 0, 2);
  },
});
def('8E', {
  name: 'mov', modrm: true, end: true, shadow: true,
  exec: (c, i) => {
    if (i.ext === CS || i.ext > 5) fault(UD);
    const v = readRm(c, i, 2);
    loadSegment(c, i.ext, v);
    if (i.ext === SS) c.shadow = true;
  },
});

// ---- XLAT: AL = [seg:rBX + AL] ----
def('D7', {
  name: 'xlatb',
  exec: (c, i) => {
    const bx = i.asz === 2 ? c.rlo[RBX] & 0xffff : c.rlo[RBX];
    const off = i.asz === 2 ? (bx + (c.rlo[RAX] & 0xff)) & 0xffff : (bx + (c.rlo[RAX] & 0xff)) | 0;
    const offHi = i.asz === 8 ? c.rhi[RBX] + ((bx >>> 0) + (c.rlo[RAX] & 0xff) > 0xffffffff ? 1 : 0) : 0;
    const a = linear(c, i.seg, off, offHi | 0, i.asz);
    setReg(c, RAX, 1, c.mmu.read8(a, c.tHi));
  },
});

// ---- LEA ----
const leaGeneric: Handler = (c, i) => {
  if (i.rm >= 0) fault(UD);
  const lo = leaOffset(c, i);
  setReg(c, i.reg, i.osz, lo, c.tHi);
};
/** lea r64, [base + disp] */
const leaBase64: Handler = markPure((c, i) => {
  const R = c.rlo, b = i.base, s = (R[b] >>> 0) + (i.disp >>> 0);
  R[i.reg] = s | 0;
  c.rhi[i.reg] = (c.rhi[b] + (i.disp >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
});
/** lea r64, [base + index * scale + disp] */
const leaBaseIndex64: Handler = markPure((c, i) => {
  const R = c.rlo, H = c.rhi, b = i.base, x = i.index, sc = i.scale;
  const xlo = R[x] << sc, xhi = sc === 0 ? H[x] : (H[x] << sc) | (R[x] >>> (32 - sc));
  const s1 = (R[b] >>> 0) + (i.disp >>> 0);
  const h1 = H[b] + (i.disp >> 31) + (s1 > 0xffffffff ? 1 : 0);
  const s2 = (s1 >>> 0) + (xlo >>> 0);
  R[i.reg] = s2 | 0;
  H[i.reg] = (h1 + xhi + (s2 > 0xffffffff ? 1 : 0)) | 0;
});
/** lea r32, [base + index * scale + disp] with 64-bit addressing: the low 32 bits only depend on low halves. */
const leaLow32: Handler = markPure((c, i) => {
  const R = c.rlo;
  let v = (R[i.base] + i.disp) | 0;
  if (i.index >= 0) v = (v + (R[i.index] << i.scale)) | 0;
  R[i.reg] = v; c.rhi[i.reg] = 0;
});
def('8D', {
  name: 'lea', modrm: true,
  bind: (i) => {
    if (i.rm < 0 && i.asz === 8 && i.base >= 0) {
      if (i.osz === 8) return i.index < 0 ? leaBase64 : leaBaseIndex64;
      if (i.osz === 4) return leaLow32;
    }
    return leaGeneric;
  },
});

// ---- MOVZX / MOVSX / MOVSXD ----
def('0F B6', { name: 'movzx', modrm: true, exec: (c, i) => setReg(c, i.reg, i.osz, readRm(c, i, 1)) });
def('0F B7', { name: 'movzx', modrm: true, exec: (c, i) => setReg(c, i.reg, i.osz, readRm(c, i, 2)) });
const movsx = (from: number): Handler => (c, i) => {
  const v = sext(readRm(c, i, from), from);
  setReg(c, i.reg, i.osz, trunc(v, i.osz === 8 ? 4 : i.osz), v >> 31);
};
def('0F BE', { name: 'movsx', modrm: true, exec: movsx(1) });
def('0F BF', { name: 'movsx', modrm: true, exec: movsx(2) });
// Outside 64-bit mode 63 /r is ARPL, which is not implemented (#UD).
def('63', {
  name: 'movsxd', modrm: true, only64: true,
  exec: (c, i) => {
    if (i.osz === 8) { const v = readRm(c, i, 4); setReg(c, i.reg, 8, v, v >> 31); }
    else { const v = readRm(c, i, i.osz); setReg(c, i.reg, i.osz, v); }
  },
});

// ---- XCHG ----
const xchgRm: Handler = (c, i) => {
  const sz = i.osz;
  const r = readRegOp(c, i), rHi = c.tHi;
  if (i.rm >= 0) {
    const code = sz === 1 ? i.rm8 : i.rm;
    const m = getReg(c, code, sz), mHi = c.tHi;
    setReg(c, code, sz, r, rHi);
    writeRegOp(c, i, m, mHi);
    return;
  }
  const lo = i.ea(c, i), hi = c.tHi;
  const m = readMemRmw(c, lo, hi, sz), mHi = c.tHi;
  writeMem(c, lo, hi, sz, r, rHi);
  writeRegOp(c, i, m, mHi);
};
def('86', { name: 'xchg', modrm: true, byte: true, lockable: true, exec: xchgRm });
def('87', { name: 'xchg', modrm: true, lockable: true, exec: xchgRm });
def('90+r', {
  name: 'xchg',
  bind: (i) => {
    if (i.reg === 0 && i.rep === 1) { i.name = 'pause'; return pause; }
    if (i.reg === 0) { i.name = 'nop'; return () => {}; }
    return (c, ii) => {
      const a = getReg(c, RAX, ii.osz), aHi = c.tHi;
      const b = getReg(c, ii.reg, ii.osz), bHi = c.tHi;
      setReg(c, RAX, ii.osz, b, bHi); setReg(c, ii.reg, ii.osz, a, aHi);
    };
  },
});

/** PAUSE: a spin-wait hint; with pause exits on, it ends the run so other vCPUs progress. */
const pause: Handler = (c) => { if (c.pauseExits) c.requestStop(); };

// ---- BSWAP ----
def('0F C8+r', {
  name: 'bswap',
  exec: (c, i) => {
    const sw = (v: number) => ((v >>> 24) | ((v >>> 8) & 0xff00) | ((v & 0xff00) << 8) | (v << 24)) | 0;
    if (i.osz === 8) { const lo = c.rlo[i.reg]; c.rlo[i.reg] = sw(c.rhi[i.reg]); c.rhi[i.reg] = sw(lo); }
    else if (i.osz === 4) { c.rlo[i.reg] = sw(c.rlo[i.reg]); c.rhi[i.reg] = 0; }
    else c.rlo[i.reg] &= ~0xffff; // 16-bit BSWAP is undefined; zero like most CPUs
  },
});

// ---- CMOVcc / SETcc ----
for (let cc = 0; cc < 16; cc++) {
  const ccName = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'][cc];
  const h = (0x40 + cc).toString(16).toUpperCase();
  def(`0F ${h}`, {
    name: `cmov${ccName}`, modrm: true,
    exec: (c, i) => {
      const v = readRm(c, i), vHi = c.tHi; // the source is read (and may fault) either way
      if (testCond(c, cc)) setReg(c, i.reg, i.osz, v, vHi);
      else if (i.osz === 4) c.rhi[i.reg] = 0; // 32-bit CMOV zero-extends even when false
    },
  });
  const s = (0x90 + cc).toString(16).toUpperCase();
  def(`0F ${s}`, { name: `set${ccName}`, modrm: true, byte: true, exec: (c, i) => writeRm(c, i, testCond(c, cc) ? 1 : 0) });
}

// ---- sign extension of the accumulator ----
def('98', {
  name: 'cwde',
  bind: (i) => { i.name = i.osz === 2 ? 'cbw' : i.osz === 4 ? 'cwde' : 'cdqe'; return cbw; },
});
const cbw: Handler = (c, i) => {
  if (i.osz === 2) c.rlo[RAX] = (c.rlo[RAX] & ~0xffff) | (((c.rlo[RAX] << 24) >> 24) & 0xffff);
  else if (i.osz === 4) { c.rlo[RAX] = (c.rlo[RAX] << 16) >> 16; c.rhi[RAX] = 0; }
  else c.rhi[RAX] = c.rlo[RAX] >> 31;
};
def('99', {
  name: 'cdq',
  bind: (i) => { i.name = i.osz === 2 ? 'cwd' : i.osz === 4 ? 'cdq' : 'cqo'; return cwd; },
});
const cwd: Handler = (c, i) => {
  if (i.osz === 2) c.rlo[RDX] = (c.rlo[RDX] & ~0xffff) | ((c.rlo[RAX] << 16) >> 31 & 0xffff);
  else if (i.osz === 4) { c.rlo[RDX] = c.rlo[RAX] >> 31; c.rhi[RDX] = 0; }
  else { c.rlo[RDX] = c.rhi[RAX] >> 31; c.rhi[RDX] = c.rhi[RAX] >> 31; }
};

// ---- LAHF / SAHF ----
def('9F', { name: 'lahf', exec: (c) => { const f = materializeFlags(c); c.rlo[RAX] = (c.rlo[RAX] & ~0xff00) | ((f & 0xd5 | 2) << 8); } });
def('9E', {
  name: 'sahf',
  exec: (c) => { const f = materializeFlags(c); const ah = (c.rlo[RAX] >> 8) & 0xd5; setArithFlags(c, (f & OF) | ah); },
});

// ---- NOPs: 0F 1F /0 (multi-byte NOP), 0F 18-1F hint space (includes ENDBR64/ENDBR32 F3 0F 1E FA/FB) ----
for (const op of ['0F 18', '0F 19', '0F 1A', '0F 1B', '0F 1C', '0F 1D', '0F 1E', '0F 1F']) {
  def(op, {
    name: 'nop', modrm: true,
    bind: (i) => {
      if (i.op === 0x11e && i.pfx === 0xf3 && (i.modrm === 0xfa || i.modrm === 0xfb)) i.name = i.modrm === 0xfa ? 'endbr64' : 'endbr32';
      else if (i.op === 0x118 && i.ext < 4 && i.rm < 0) i.name = ['prefetchnta', 'prefetcht0', 'prefetcht1', 'prefetcht2'][i.ext];
      return () => {};
    },
  });
}

// ---- CMPXCHG / XADD / CMPXCHG8B / CMPXCHG16B ----
const cmpxchg: Handler = (c, i) => {
  const sz = i.osz;
  let memLo = 0, memHi = 0, d: number, dHi: number;
  if (i.rm >= 0) { d = getReg(c, sz === 1 ? i.rm8 : i.rm, sz); dHi = c.tHi; }
  else { memLo = i.ea(c, i); memHi = c.tHi; d = readMemRmw(c, memLo, memHi, sz); dHi = c.tHi; }
  const a = getReg(c, RAX, sz), aHi = c.tHi;
  if (sz === 8) alu64(c, 7, a, aHi, d, dHi); else alu(c, 7, sz, a, d);
  const equal = getZF(c) !== 0;
  const src = readRegOp(c, i), srcHi = c.tHi;
  if (i.rm >= 0) {
    if (equal) setReg(c, sz === 1 ? i.rm8 : i.rm, sz, src, srcHi);
    else setReg(c, RAX, sz, d, dHi);
  } else {
    // The destination is always written (with its old value on failure), as the SDM specifies.
    writeMem(c, memLo, memHi, sz, equal ? src : d, equal ? srcHi : dHi);
    if (!equal) setReg(c, RAX, sz, d, dHi);
  }
};
def('0F B0', { name: 'cmpxchg', modrm: true, byte: true, lockable: true, exec: cmpxchg });
def('0F B1', { name: 'cmpxchg', modrm: true, lockable: true, exec: cmpxchg });

const xadd: Handler = (c, i) => {
  const sz = i.osz;
  const s = readRegOp(c, i), sHi = c.tHi;
  let memLo = 0, memHi = 0, d: number, dHi: number;
  if (i.rm >= 0) { d = getReg(c, sz === 1 ? i.rm8 : i.rm, sz); dHi = c.tHi; }
  else { memLo = i.ea(c, i); memHi = c.tHi; d = readMemRmw(c, memLo, memHi, sz); dHi = c.tHi; }
  const r = sz === 8 ? alu64(c, 0, d, dHi, s, sHi) : alu(c, 0, sz, d, s);
  const rHi = c.tHi;
  if (i.rm >= 0) { writeRegOp(c, i, d, dHi); setReg(c, sz === 1 ? i.rm8 : i.rm, sz, r, rHi); }
  else { writeMem(c, memLo, memHi, sz, r, rHi); writeRegOp(c, i, d, dHi); }
};
def('0F C0', { name: 'xadd', modrm: true, byte: true, lockable: true, exec: xadd });
def('0F C1', { name: 'xadd', modrm: true, lockable: true, exec: xadd });

def('0F C7/1.m', {
  name: 'cmpxchg8b', lockable: true,
  bind: (i) => { if (i.osz === 8) i.name = 'cmpxchg16b'; return cmpxchg8b; },
});
const cmpxchg8b: Handler = (c, i) => {
  const lo = i.ea(c, i), hi = c.tHi;
  if (i.osz === 8) {
    if (lo & 15) faultErr(GP, 0);
    const m0 = c.mmu.read64(lo, hi), m1 = c.tHi;
    const m2 = c.mmu.read64((lo + 8) | 0, hi), m3 = c.tHi;
    const eq = m0 === c.rlo[RAX] && m1 === c.rhi[RAX] && m2 === c.rlo[RDX] && m3 === c.rhi[RDX];
    const f = materializeFlags(c);
    if (eq) {
      c.mmu.probeWrite(lo, hi, 16);
      c.mmu.write64(lo, hi, c.rlo[RBX], c.rhi[RBX]);
      c.mmu.write64((lo + 8) | 0, hi, c.rlo[RCX], c.rhi[RCX]);
    } else {
      c.mmu.probeWrite(lo, hi, 16);
      c.mmu.write64(lo, hi, m0, m1); c.mmu.write64((lo + 8) | 0, hi, m2, m3);
      c.rlo[RAX] = m0; c.rhi[RAX] = m1; c.rlo[RDX] = m2; c.rhi[RDX] = m3;
    }
    setArithFlags(c, (f & ~ZF) | (eq ? ZF : 0));
    return;
  }
  const m0 = c.mmu.read64(lo, hi), m1 = c.tHi;
  const eq = m0 === c.rlo[RAX] && m1 === c.rlo[RDX];
  const f = materializeFlags(c);
  if (eq) c.mmu.write64(lo, hi, c.rlo[RBX], c.rlo[RCX]);
  else {
    c.mmu.write64(lo, hi, m0, m1);
    c.rlo[RAX] = m0; c.rhi[RAX] = 0; c.rlo[RDX] = m1; c.rhi[RDX] = 0;
  }
  setArithFlags(c, (f & ~ZF) | (eq ? ZF : 0));
};

// ---- BT / BTS / BTR / BTC ----
/** op: 0 BT, 1 BTS, 2 BTR, 3 BTC. Register bit offsets address a bit string in memory (signed). */
function bitOp(op: number, imm: boolean): Handler {
  return (c, i) => {
    const sz = i.osz, bits = sz * 8;
    let offLo: number, offHi: number;
    if (imm) { offLo = i.imm & (bits - 1); offHi = 0; }
    else { offLo = readRegOp(c, i); offHi = sz === 8 ? c.tHi : (sz === 4 ? offLo >> 31 : (sext(offLo, sz) >> 31)); if (sz < 4) offLo = sext(offLo, sz); }
    let lo: number, hi: number, memLo = 0, memHi = 0;
    let bit: number;
    if (i.rm >= 0) {
      bit = offLo & (bits - 1);
      lo = getReg(c, i.rm, sz); hi = c.tHi;
    } else {
      // Memory: the address moves by (offset >> log2(bits)) * bytes, offset signed.
      const a = i.ea(c, i);
      const big = (BigInt(offHi) << 32n) | BigInt(offLo >>> 0);
      const byteDelta = (big >> BigInt(Math.log2(bits))) * BigInt(sz);
      const full = ((BigInt(c.tHi) << 32n) | BigInt(a >>> 0)) + byteDelta;
      memLo = Number(BigInt.asUintN(32, full)) | 0;
      memHi = c.codeSize === 64 ? Number(BigInt.asIntN(32, full >> 32n)) : 0;
      if (c.codeSize !== 64) memLo = (a + Number(BigInt.asIntN(32, byteDelta))) | 0;
      bit = offLo & (bits - 1);
      lo = op === 0 ? readMem(c, memLo, memHi, sz) : readMemRmw(c, memLo, memHi, sz); hi = c.tHi;
    }
    const word = bit >= 32 ? hi : lo;
    const b = (word >>> (bit & 31)) & 1;
    const f = materializeFlags(c);
    if (op !== 0) {
      const m = 1 << (bit & 31);
      let nw = op === 1 ? word | m : op === 2 ? word & ~m : word ^ m;
      if (sz < 4) nw = trunc(nw, sz);
      let nlo = lo, nhi = hi;
      if (bit >= 32) nhi = nw; else nlo = nw;
      if (i.rm >= 0) setReg(c, i.rm, sz, nlo, nhi); else writeMem(c, memLo, memHi, sz, nlo, nhi);
    }
    setArithFlags(c, (f & ~CF) | (b ? CF : 0));
  };
}
const BT_NAMES = ['bt', 'bts', 'btr', 'btc'];
def('0F A3', { name: 'bt', modrm: true, exec: bitOp(0, false) });
def('0F AB', { name: 'bts', modrm: true, lockable: true, exec: bitOp(1, false) });
def('0F B3', { name: 'btr', modrm: true, lockable: true, exec: bitOp(2, false) });
def('0F BB', { name: 'btc', modrm: true, lockable: true, exec: bitOp(3, false) });
for (let op = 0; op < 4; op++) def(`0F BA/${4 + op}`, { name: BT_NAMES[op], imm: 'ib', lockable: op !== 0, exec: bitOp(op, true) });

// ---- BSF / BSR / TZCNT / LZCNT / POPCNT ----
function ctz64(lo: number, hi: number): number {
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  if (hi !== 0) return 32 + 31 - Math.clz32(hi & -hi);
  return 64;
}
function clz(lo: number, hi: number, sz: number): number {
  if (sz === 8) return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
  return Math.clz32(lo) - (32 - sz * 8);
}
function popcnt32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
/** Flags of BSF/BSR: ZF from the source, others computed as Intel leaves them (undefined in the SDM). */
function bsfFlags(c: Cpu, zero: boolean): void {
  const f = materializeFlags(c);
  setArithFlags(c, (f & ~(ZF)) | (zero ? ZF : 0));
}
def('0F BC', {
  name: 'bsf', modrm: true,
  bind: (i) => {
    if (i.pfx === 0xf3) { i.name = 'tzcnt'; return tzcnt; }
    return (c, ii) => {
      const v = readRm(c, ii), vHi = ii.osz === 8 ? c.tHi : 0;
      const zero = v === 0 && vHi === 0;
      bsfFlags(c, zero);
      if (!zero) setReg(c, ii.reg, ii.osz, ctz64(v, vHi));
    };
  },
});
const tzcnt: Handler = (c, i) => {
  const v = readRm(c, i), vHi = i.osz === 8 ? c.tHi : 0;
  let n = ctz64(v, i.osz === 8 ? vHi : 0);
  if (i.osz < 8 && v === 0) n = i.osz * 8;
  if (i.osz === 2) n = Math.min(n, 16);
  setArithFlags(c, (n === i.osz * 8 ? CF : 0) | (n === 0 ? ZF : 0));
  setReg(c, i.reg, i.osz, n);
};
def('0F BD', {
  name: 'bsr', modrm: true,
  bind: (i) => {
    if (i.pfx === 0xf3) { i.name = 'lzcnt'; return lzcnt; }
    return (c, ii) => {
      const v = readRm(c, ii), vHi = ii.osz === 8 ? c.tHi : 0;
      const zero = v === 0 && vHi === 0;
      bsfFlags(c, zero);
      if (!zero) setReg(c, ii.reg, ii.osz, ii.osz * 8 - 1 - clz(v, vHi, ii.osz));
    };
  },
});
const lzcnt: Handler = (c, i) => {
  const v = readRm(c, i), vHi = i.osz === 8 ? c.tHi : 0;
  const n = (v === 0 && vHi === 0) ? i.osz * 8 : clz(v, vHi, i.osz);
  setArithFlags(c, (n === i.osz * 8 ? CF : 0) | (n === 0 ? ZF : 0));
  setReg(c, i.reg, i.osz, n);
};
def('F3 0F B8', {
  name: 'popcnt', modrm: true,
  exec: (c, i) => {
    const v = readRm(c, i), vHi = i.osz === 8 ? c.tHi : 0;
    const n = popcnt32(trunc(v, i.osz === 8 ? 4 : i.osz)) + (i.osz === 8 ? popcnt32(vHi) : 0);
    setArithFlags(c, n === 0 ? ZF : 0);
    setReg(c, i.reg, i.osz, n);
  },
});

