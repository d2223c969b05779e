/**
 * System instructions: descriptor tables, control and debug registers, MSRs,
 * CPUID, TLB maintenance, HLT, CLI/STI, flag bits, TSC, XCR0, SWAPGS,
 * SYSCALL/SYSRET, port I/O, VMCALL/VMMCALL, fences and cache hints.
 */
import type { Cpu } from '../cpu.js';
import { CpuRunState } from '../cpu.js';
import { fault, faultErr } from '../fault.js';
import { materializeFlags, setArithFlags } from '../flags.js';
import type { Handler, Insn } from '../insn.js';
import { def } from '../opcode-table.js';
import { getReg, readRm, setReg, writeRm } from '../operands.js';
import { ATTR_DB, ATTR_G, ATTR_L, ATTR_P, ATTR_S } from '../segment-cache.js';
import { loadSystemSegment } from '../segments.js';
import { deliverEvent, EventKind } from '../interrupts.js';
import { WATCH_GDTR, WATCH_IDTR, WATCH_LDTR, WATCH_TR, WatchedRegister } from '../host.js';
import { vpnKey } from '../tlb.js';
import { XSAVE_SUPPORTED } from './fxsave.js';
import {
  AC, CF, CR4_DE, CR0_CD, CR0_NW, CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR4_OSXSAVE, CR4_PAE, CR4_PCIDE,
  CR4_PGE, CR4_PSE, CR4_SMAP, CR4_SMEP, CR4_SUPPORTED, CR4_TSD, CS, DF, EFER_LMA, EFER_LME, EFER_NXE,
  EFER_SUPPORTED, GP, IF, IOPL, LDTR, MSR_CSTAR, MSR_EFER, MSR_FMASK, MSR_FS_BASE, MSR_GS_BASE,
  MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP,
  MSR_TSC_AUX, RAX, RCX, RDX, RF, FS, GS, SS, TR, UD, VM, R11, DB,
} from '../regs.js';

const out = new Int32Array(4);

function requireCpl0(c: Cpu): void { if (c.cpl !== 0) faultErr(GP, 0); }

/** Tells the owner about a watched register access (Cpu.cr0WriteWatch ...); it may abort the instruction. */
function watched(c: Cpu, i: Insn, register: WatchedRegister, msr: number, write: boolean, lo: number, hi: number,
  limit = 0, memoryOperand = false): void {
  c.host.registerAccess({ register, msr, write, lo, hi, limit, memoryOperand, insnLength: i.len });
}
/** A CR0 write of `v` (the operand, before ET is forced to 1) that changes a watched bit goes to the owner first. */
function watchCr0(c: Cpu, i: Insn, v: number, hi: number, memoryOperand = false): void {
  if (c.cr0WriteWatch !== 0 && ((c.cr0 ^ v) & c.cr0WriteWatch) !== 0) watched(c, i, WatchedRegister.Cr0, 0, true, v, hi, 0, memoryOperand);
}
/** LGDT / LIDT of a table and LLDT / LTR of a selector (ModRM forms: i.rm < 0 is memory) go to the owner first when tableWriteWatch has `bit`. */
function watchTable(c: Cpu, i: Insn, bit: number, register: WatchedRegister, lo: number, hi: number, limit: number): void {
  if (c.tableWriteWatch & bit) watched(c, i, register, 0, true, lo, hi, limit, i.rm < 0);
}
function canonical(hi: number): boolean { return ((hi << 16) >> 16) === hi; }

// ---- descriptor-table registers ----
function tableAddr(c: Cpu, i: Insn): number { if (i.rm >= 0) fault(UD); return i.ea(c, i); }
function storeTable(c: Cpu, i: Insn, limit: number, lo: number, hi: number): void {
  const a = tableAddr(c, i), ah = c.tHi;
  c.mmu.write16(a, ah, limit);
  if (c.codeSize === 64) c.mmu.write64((a + 2) | 0, ah, lo, hi);
  else c.mmu.write32((a + 2) | 0, ah, lo);
}
function loadTable(c: Cpu, i: Insn): { limit: number; lo: number; hi: number } {
  requireCpl0(c);
  const a = tableAddr(c, i), ah = c.tHi;
  const limit = c.mmu.read16(a, ah);
  let lo: number, hi = 0;
  if (c.codeSize === 64) { lo = c.mmu.read64((a + 2) | 0, ah); hi = c.tHi; if (!canonical(hi)) faultErr(GP, 0); }
  else { lo = c.mmu.read32((a + 2) | 0, ah); if (i.osz === 2) lo &= 0xffffff; }
  return { limit, lo, hi };
}
def('0F 01/0.m', { name: 'sgdt', exec: (c, i) => storeTable(c, i, c.gdtrLimit, c.gdtrBaseLo, c.gdtrBaseHi) });
def('0F 01/1.m', { name: 'sidt', exec: (c, i) => storeTable(c, i, c.idtrLimit, c.idtrBaseLo, c.idtrBaseHi) });
/** LGDT / LIDT: reads the table operand, shows it to the owner when tableWriteWatch has `bit`, then loads it. */
function loadTableOp(bit: number, register: WatchedRegister, load: (c: Cpu, limit: number, lo: number, hi: number) => void): Handler {
  return (c, i) => {
    const t = loadTable(c, i);
    watchTable(c, i, bit, register, t.lo, t.hi, t.limit);
    load(c, t.limit, t.lo, t.hi);
  };
}
def('0F 01/2.m', {
  name: 'lgdt', size: 'f64',
  exec: loadTableOp(WATCH_GDTR, WatchedRegister.Gdtr, (c, limit, lo, hi) => { c.gdtrLimit = limit; c.gdtrBaseLo = lo; c.gdtrBaseHi = hi; }),
});
def('0F 01/3.m', {
  name: 'lidt', size: 'f64',
  exec: loadTableOp(WATCH_IDTR, WatchedRegister.Idtr, (c, limit, lo, hi) => { c.idtrLimit = limit; c.idtrBaseLo = lo; c.idtrBaseHi = hi; }),
});
def('0F 01/4', { name: 'smsw', exec: (c, i) => { if (i.rm >= 0) setReg(c, i.rm, i.osz, c.cr0); else writeRm(c, i, c.cr0 & 0xffff, 0, 2); } });
def('0F 01/6', {
  name: 'lmsw', end: true,
  exec: (c, i) => {
    requireCpl0(c);
    const v = readRm(c, i, 2);
    // LMSW changes PE MP EM TS only and cannot clear PE.
    const cr0 = (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & CR0_PE);
    watchCr0(c, i, cr0, 0, i.rm < 0);
    writeCr0(c, cr0, 0);
  },
});
def('0F 00/0', { name: 'sldt', exec: (c, i) => writeSel(c, i, c.segSel[LDTR]) });
def('0F 00/1', { name: 'str', exec: (c, i) => writeSel(c, i, c.segSel[TR]) });
function writeSel(c: Cpu, i: Insn, v: number): void {
  if (!(c.cr0 & CR0_PE)) fault(UD);
  if (i.rm >= 0) setReg(c, i.rm, i.osz, v); else writeRm(c, i, v, 0, 2);
}
/** LLDT / LTR: reads the selector, shows it to the owner when tableWriteWatch has `bit`, then loads the segment. */
function loadSystemSegmentOp(seg: number, bit: number, register: WatchedRegister): Handler {
  return (c, i) => {
    protectedCpl0(c);
    const sel = readRm(c, i, 2);
    watchTable(c, i, bit, register, sel, 0, 0);
    loadSystemSegment(c, seg, sel);
  };
}
def('0F 00/2', { name: 'lldt', exec: loadSystemSegmentOp(LDTR, WATCH_LDTR, WatchedRegister.Ldtr) });
def('0F 00/3', { name: 'ltr', exec: loadSystemSegmentOp(TR, WATCH_TR, WatchedRegister.Tr) });
function protectedCpl0(c: Cpu): void { if (!(c.cr0 & CR0_PE)) fault(UD); requireCpl0(c); }

// ---- control registers ----

/** MOV to CR0 with the SDM's checks and mode transitions. */
export function writeCr0(c: Cpu, v: number, hi: number): void {
  if (hi !== 0) faultErr(GP, 0);
  v |= 0x10; // ET is fixed to 1
  if ((v & CR0_PG) && !(v & CR0_PE)) faultErr(GP, 0);
  if ((v & CR0_NW) && !(v & CR0_CD)) faultErr(GP, 0);
  const old = c.cr0;
  const pgOn = (v & CR0_PG) && !(old & CR0_PG);
  const pgOff = !(v & CR0_PG) && (old & CR0_PG);
  if (pgOn && (c.efer & EFER_LME)) {
    if (!(c.cr4 & CR4_PAE)) faultErr(GP, 0);
    if (c.segAttr[CS] & ATTR_L) faultErr(GP, 0);
    c.efer |= EFER_LMA;
  }
  if (pgOff && (c.cr4 & CR4_PCIDE)) faultErr(GP, 0);
  if (pgOff && (c.efer & EFER_LMA)) {
    if (c.codeSize === 64) faultErr(GP, 0);
    c.efer &= ~EFER_LMA;
  }
  if (pgOn && (c.cr4 & CR4_PAE) && !(c.efer & EFER_LMA)) {
    c.cr0 = v; // PDPTEs are read with the new CR0 (paging structures are physical)
    try { c.mmu.loadPdptes(); } catch (e) { c.cr0 = old; throw e; }
  }
  c.cr0 = v;
  if ((old ^ v) & (CR0_PG | CR0_PE)) c.mmu.flushAll();
  else if ((old ^ v) & CR0_WP) c.mmu.dropFast();
  c.updateMode();
  c.brk = true;
}

export function writeCr3(c: Cpu, lo: number, hi: number): void {
  let noFlush = false;
  if (c.longMode) {
    if ((c.cr4 & CR4_PCIDE) && hi < 0) { noFlush = true; hi &= 0x7fffffff; }
    if (hi & ~0xff) faultErr(GP, 0); // bits above MAXPHYADDR
  } else hi = 0;
  c.cr3Lo = lo; c.cr3Hi = hi;
  if ((c.cr0 & CR0_PG) && (c.cr4 & CR4_PAE) && !c.longMode) c.mmu.loadPdptes();
  if (!noFlush) {
    if (c.cr4 & CR4_PCIDE) c.mmu.tlb.flushPcid(lo & 0xfff);
    else c.mmu.tlb.flushNonGlobal();
  }
  c.mmu.dropFast();
}

export function writeCr4(c: Cpu, v: number, hi: number): void {
  if (hi !== 0 || (v & ~CR4_SUPPORTED)) faultErr(GP, 0);
  const old = c.cr4;
  if (c.longMode && !(v & CR4_PAE)) faultErr(GP, 0);
  if ((v & CR4_PCIDE) && !(old & CR4_PCIDE) && (!c.longMode || (c.cr3Lo & 0xfff) !== 0)) faultErr(GP, 0);
  if ((v & CR4_PAE) && !(old & CR4_PAE) && (c.cr0 & CR0_PG) && !c.longMode) {
    c.cr4 = v;
    try { c.mmu.loadPdptes(); } catch (e) { c.cr4 = old; throw e; }
  }
  c.cr4 = v;
  const flushBits = CR4_PGE | CR4_PAE | CR4_PSE | CR4_SMEP;
  if (((old ^ v) & flushBits) || ((old & CR4_PCIDE) && !(v & CR4_PCIDE))) c.mmu.flushAll();
  else if ((old ^ v) & CR4_SMAP) c.mmu.dropFast();
  c.brk = true;
}

def('0F 20', {
  name: 'mov', modrm: true, regOnly: true, size: 'f64', end: true,
  exec: (c, i) => {
    requireCpl0(c);
    const rm = i.rm;
    const long = c.codeSize === 64;
    let lo: number, hi = 0;
    switch (i.reg) {
      case 0: lo = c.cr0; break;
      case 2: lo = c.cr2Lo; hi = c.cr2Hi; break;
      case 3: lo = c.cr3Lo; hi = c.cr3Hi; break;
      case 4: lo = c.cr4; break;
      case 8: if (!long) fault(UD); lo = c.host.readCr8() & 0xf; break;
      default: fault(UD);
    }
    c.rlo[rm] = lo; c.rhi[rm] = long ? hi : 0;
  },
});
def('0F 22', {
  name: 'mov', modrm: true, regOnly: true, size: 'f64', end: true,
  exec: (c, i) => {
    requireCpl0(c);
    const rm = i.rm;
    const long = c.codeSize === 64;
    const lo = c.rlo[rm], hi = long ? c.rhi[rm] : 0;
    switch (i.reg) {
      case 0: watchCr0(c, i, lo, hi); writeCr0(c, lo, hi); break;
      case 2: c.cr2Lo = lo; c.cr2Hi = hi; break;
      case 3: writeCr3(c, lo, hi); break;
      case 4:
        if (c.cr4WriteWatch !== 0 && ((c.cr4 ^ lo) & c.cr4WriteWatch) !== 0) watched(c, i, WatchedRegister.Cr4, 0, true, lo, hi);
        writeCr4(c, lo, hi);
        break;
      case 8: if (!long) fault(UD); if (hi !== 0 || (lo & ~0xf)) faultErr(GP, 0); c.host.writeCr8(lo & 0xf); break;
      default: fault(UD);
    }
  },
});
// Debug registers: stored only; breakpoints are not implemented (see README).
/** DR number for MOV DR: DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD; CPL 0 only. */
function debugRegister(c: Cpu, n: number): number {
  requireCpl0(c);
  if (n > 7 || ((n === 4 || n === 5) && (c.cr4 & CR4_DE))) fault(UD);
  return n === 4 || n === 5 ? n + 2 : n;
}
def('0F 21', {
  name: 'mov', modrm: true, regOnly: true, size: 'f64',
  exec: (c, i) => {
    const rm = i.rm, d = debugRegister(c, i.reg);
    c.rlo[rm] = c.drLo[d]; c.rhi[rm] = c.codeSize === 64 ? c.drHi[d] : 0;
  },
});
def('0F 23', {
  name: 'mov', modrm: true, regOnly: true, size: 'f64',
  exec: (c, i) => {
    const rm = i.rm, d = debugRegister(c, i.reg);
    const hi = c.codeSize === 64 ? c.rhi[rm] : 0;
    if ((d === 6 || d === 7) && hi !== 0) faultErr(GP, 0);
    c.drLo[d] = d === 6 ? (c.rlo[rm] | 0xffff0ff0) : d === 7 ? ((c.rlo[rm] & ~0xd800) | 0x400) : c.rlo[rm];
    c.drHi[d] = hi;
  },
});
def('0F 06', { name: 'clts', exec: (c, i) => { requireCpl0(c); watchCr0(c, i, c.cr0 & ~CR0_TS, 0); c.cr0 &= ~CR0_TS; } });

// ---- MSRs ----

/** RDMSR of an MSR the CPU owns: returns true with out[0..1] set. */
function readOwnMsr(c: Cpu, idx: number): boolean {
  let lo = 0, hi = 0;
  switch (idx) {
    case MSR_EFER: lo = c.efer; break;
    case MSR_STAR: lo = c.starLo; hi = c.starHi; break;
    case MSR_LSTAR: lo = c.lstarLo; hi = c.lstarHi; break;
    case MSR_CSTAR: lo = c.cstarLo; hi = c.cstarHi; break;
    case MSR_FMASK: lo = c.fmask; break;
    case MSR_FS_BASE: lo = c.segBaseLo[FS]; hi = c.segBaseHi[FS]; break;
    case MSR_GS_BASE: lo = c.segBaseLo[GS]; hi = c.segBaseHi[GS]; break;
    case MSR_KERNEL_GS_BASE: lo = c.kernelGsBaseLo; hi = c.kernelGsBaseHi; break;
    case MSR_TSC_AUX: lo = c.tscAux; break;
    case MSR_SYSENTER_CS: lo = c.sysenterCs; break;
    case MSR_SYSENTER_ESP: lo = c.sysenterEspLo; hi = c.sysenterEspHi; break;
    case MSR_SYSENTER_EIP: lo = c.sysenterEipLo; hi = c.sysenterEipHi; break;
    case MSR_PAT: lo = c.patLo; hi = c.patHi; break;
    default: return false;
  }
  out[0] = lo; out[1] = hi;
  return true;
}

/** WRMSR of an MSR the CPU owns: returns false if not ours; #GP on bad values. */
function writeOwnMsr(c: Cpu, idx: number, lo: number, hi: number): boolean {
  switch (idx) {
    case MSR_EFER: {
      if (hi !== 0 || (lo & ~EFER_SUPPORTED)) faultErr(GP, 0);
      if (((lo ^ c.efer) & EFER_LME) && (c.cr0 & CR0_PG)) faultErr(GP, 0);
      const old = c.efer;
      c.efer = (lo & ~EFER_LMA) | (c.efer & EFER_LMA);
      if ((old ^ c.efer) & EFER_NXE) c.mmu.flushAll();
      c.brk = true;
      return true;
    }
    case MSR_STAR: c.starLo = lo; c.starHi = hi; return true;
    case MSR_LSTAR: case MSR_CSTAR: case MSR_FS_BASE: case MSR_GS_BASE: case MSR_KERNEL_GS_BASE:
    case MSR_SYSENTER_ESP: case MSR_SYSENTER_EIP:
      if (!canonical(hi)) faultErr(GP, 0);
      switch (idx) {
        case MSR_LSTAR: c.lstarLo = lo; c.lstarHi = hi; break;
        case MSR_CSTAR: c.cstarLo = lo; c.cstarHi = hi; break;
        case MSR_FS_BASE: c.segBaseLo[FS] = lo; c.segBaseHi[FS] = hi; break;
        case MSR_GS_BASE: c.segBaseLo[GS] = lo; c.segBaseHi[GS] = hi; break;
        case MSR_KERNEL_GS_BASE: c.kernelGsBaseLo = lo; c.kernelGsBaseHi = hi; break;
        case MSR_SYSENTER_ESP: c.sysenterEspLo = lo; c.sysenterEspHi = hi; break;
        default: c.sysenterEipLo = lo; c.sysenterEipHi = hi; break;
      }
      return true;
    case MSR_FMASK: if (hi !== 0) faultErr(GP, 0); c.fmask = lo; return true;
    case MSR_TSC_AUX: if (hi !== 0) faultErr(GP, 0); c.tscAux = lo; return true;
    case MSR_SYSENTER_CS: c.sysenterCs = lo & 0xffff; return true;
    case MSR_PAT: {
      // Each byte must be a valid memory type (0, 1, 4, 5, 6, 7).
      for (let k = 0; k < 8; k++) { const t = ((k < 4 ? lo : hi) >>> (8 * (k & 3))) & 0xff; if (t === 2 || t === 3 || t > 7) faultErr(GP, 0); }
      c.patLo = lo; c.patHi = hi; return true;
    }
    default: return false;
  }
}

def('0F 32', {
  name: 'rdmsr',
  exec: (c, i) => {
    requireCpl0(c);
    const idx = c.rlo[RCX] >>> 0;
    if (c.msrReadWatch !== null && c.msrReadWatch.has(idx)) watched(c, i, WatchedRegister.Msr, idx, false, 0, 0);
    if (!readOwnMsr(c, idx) && !c.host.rdmsr(idx, out)) faultErr(GP, 0);
    c.rlo[RAX] = out[0]; c.rhi[RAX] = 0; c.rlo[RDX] = out[1]; c.rhi[RDX] = 0;
  },
});
def('0F 30', {
  name: 'wrmsr', end: true,
  exec: (c, i) => {
    requireCpl0(c);
    const idx = c.rlo[RCX] >>> 0, lo = c.rlo[RAX], hi = c.rlo[RDX];
    if (c.msrWriteWatch !== null && c.msrWriteWatch.has(idx)) watched(c, i, WatchedRegister.Msr, idx, true, lo, hi);
    if (!writeOwnMsr(c, idx, lo, hi) && !c.host.wrmsr(idx, lo, hi)) faultErr(GP, 0);
  },
});

// ---- CPUID, TSC ----
def('0F A2', {
  name: 'cpuid', end: true,
  exec: (c) => {
    c.host.cpuid(c.rlo[RAX] >>> 0, c.rlo[RCX] >>> 0, out);
    for (const [r, v] of [[RAX, out[0]], [3, out[1]], [RCX, out[2]], [RDX, out[3]]]) { c.rlo[r] = v; c.rhi[r] = 0; }
  },
});
def('0F 31', {
  name: 'rdtsc',
  exec: (c) => {
    if ((c.cr4 & CR4_TSD) && c.cpl !== 0) faultErr(GP, 0);
    c.host.readTsc(out);
    c.rlo[RAX] = out[0]; c.rhi[RAX] = 0; c.rlo[RDX] = out[1]; c.rhi[RDX] = 0;
  },
});
def('0F 01 F9', {
  name: 'rdtscp',
  exec: (c) => {
    if ((c.cr4 & CR4_TSD) && c.cpl !== 0) faultErr(GP, 0);
    c.host.readTsc(out);
    c.rlo[RAX] = out[0]; c.rhi[RAX] = 0; c.rlo[RDX] = out[1]; c.rhi[RDX] = 0;
    c.rlo[RCX] = c.tscAux; c.rhi[RCX] = 0;
  },
});

// ---- TLB maintenance ----
def('0F 01/7.m', {
  name: 'invlpg', end: true,
  exec: (c, i) => { requireCpl0(c); const lo = i.ea(c, i); c.mmu.invlpg(lo, c.tHi); },
});
def('66 0F 38 82', {
  name: 'invpcid', modrm: true, end: true,
  exec: (c, i) => {
    if (i.rm >= 0) fault(UD);
    requireCpl0(c);
    const type = c.codeSize === 64 ? c.rlo[i.reg] : c.rlo[i.reg];
    const typeHi = c.codeSize === 64 ? c.rhi[i.reg] : 0;
    const a = i.ea(c, i), ah = c.tHi;
    const d0 = c.mmu.read32(a, ah);
    const d1 = c.mmu.read32((a + 4) | 0, ah);
    const addrLo = c.mmu.read32((a + 8) | 0, ah), addrHi = c.mmu.read32((a + 12) | 0, ah);
    if (typeHi !== 0 || type < 0 || type > 3) faultErr(GP, 0);
    if ((d0 & ~0xfff) !== 0 || d1 !== 0) faultErr(GP, 0); // reserved descriptor bits
    const pcid = d0 & 0xfff;
    const tlb = c.mmu.tlb;
    switch (type) {
      case 0:
        if (!canonical(addrHi)) faultErr(GP, 0);
        if (!(c.cr4 & CR4_PCIDE) && pcid !== 0) faultErr(GP, 0);
        tlb.flushPage(vpnKey(addrLo, addrHi), pcid, false);
        break;
      case 1:
        if (!(c.cr4 & CR4_PCIDE) && pcid !== 0) faultErr(GP, 0);
        tlb.flushPcid(pcid);
        break;
      case 2: tlb.flushAll(); break;
      default: tlb.flushNonGlobal(); break;
    }
    c.mmu.dropFast();
  },
});

// ---- HLT, interrupts flag, flag bits ----
def('F4', {
  name: 'hlt', end: true,
  exec: (c, i) => {
    requireCpl0(c);
    c.runState = CpuRunState.Halted;
    c.brk = true;
    c.ripLo = i.nextLo; c.ripHi = i.nextHi;
    c.host.halt();
  },
});
function iopl(c: Cpu): number { return (c.flags & IOPL) >> 12; }
def('FA', { name: 'cli', exec: (c) => { if ((c.cr0 & CR0_PE) && c.cpl > iopl(c)) faultErr(GP, 0); c.flags &= ~IF; } });
def('FB', {
  name: 'sti', end: true, shadow: true,
  exec: (c) => {
    if ((c.cr0 & CR0_PE) && c.cpl > iopl(c)) faultErr(GP, 0);
    if (!(c.flags & IF)) { c.flags |= IF; c.shadow = true; }
  },
});
const setFlagBit = (fn: (f: number) => number): Handler => (c) => { setArithFlags(c, fn(materializeFlags(c))); };
def('F8', { name: 'clc', exec: setFlagBit((f) => f & ~CF) });
def('F9', { name: 'stc', exec: setFlagBit((f) => f | CF) });
def('F5', { name: 'cmc', exec: setFlagBit((f) => f ^ CF) });
def('FC', { name: 'cld', exec: (c) => { c.flags &= ~DF; } });
def('FD', { name: 'std', exec: (c) => { c.flags |= DF; } });
def('NP 0F 01 CA', { name: 'clac', exec: (c) => { requireCpl0(c); c.flags &= ~AC; } });
def('NP 0F 01 CB', { name: 'stac', exec: (c) => { requireCpl0(c); c.flags |= AC; } });

// ---- XCR0 ----
def('NP 0F 01 D0', {
  name: 'xgetbv',
  exec: (c) => {
    if (!(c.cr4 & CR4_OSXSAVE)) fault(UD);
    if (c.rlo[RCX] !== 0) faultErr(GP, 0);
    c.rlo[RAX] = c.xcr0; c.rhi[RAX] = 0; c.rlo[RDX] = 0; c.rhi[RDX] = 0;
  },
});
def('NP 0F 01 D1', {
  name: 'xsetbv',
  exec: (c, i) => {
    if (!(c.cr4 & CR4_OSXSAVE)) fault(UD);
    requireCpl0(c);
    const v = c.rlo[RAX];
    if (c.xcr0WriteWatch && c.rlo[RCX] === 0) watched(c, i, WatchedRegister.Xcr0, 0, true, v, c.rlo[RDX]);
    // Supported components (fxsave.ts): x87 (bit 0, must be set) and SSE (bit 1).
    if (c.rlo[RCX] !== 0 || c.rlo[RDX] !== 0 || !(v & 1) || (v & ~XSAVE_SUPPORTED)) faultErr(GP, 0);
    c.xcr0 = v;
  },
});

// ---- SWAPGS, SYSCALL, SYSRET ----
def('NP 0F 01 F8', {
  name: 'swapgs',
  exec: (c) => {
    if (c.codeSize !== 64) fault(UD);
    requireCpl0(c);
    const lo = c.segBaseLo[GS], hi = c.segBaseHi[GS];
    c.segBaseLo[GS] = c.kernelGsBaseLo; c.segBaseHi[GS] = c.kernelGsBaseHi;
    c.kernelGsBaseLo = lo; c.kernelGsBaseHi = hi;
  },
});
const FLAT_CODE64 = ATTR_P | ATTR_S | 0xb | ATTR_L | ATTR_G;
const FLAT_CODE32 = ATTR_P | ATTR_S | 0xb | ATTR_DB | ATTR_G;
const FLAT_DATA = ATTR_P | ATTR_S | 0x3 | ATTR_DB | ATTR_G;
function setFlat(c: Cpu, seg: number, sel: number, attr: number): void {
  c.segSel[seg] = sel; c.segBaseLo[seg] = 0; c.segBaseHi[seg] = 0; c.segLimit[seg] = -1; c.segAttr[seg] = attr;
}
def('0F 05', {
  name: 'syscall', flow: true,
  exec: (c, i) => {
    if (!(c.efer & 1) || c.codeSize !== 64) fault(UD);
    const flags = materializeFlags(c);
    c.rlo[RCX] = i.nextLo; c.rhi[RCX] = i.nextHi;
    c.rlo[R11] = flags & ~RF; c.rhi[R11] = 0;
    c.setRflags(flags & ~c.fmask & ~RF);
    const sel = c.starHi & 0xfffc;
    setFlat(c, CS, sel, FLAT_CODE64);
    setFlat(c, SS, (sel + 8) & 0xffff, FLAT_DATA);
    c.cpl = 0;
    c.updateMode();
        c.ripLo = c.lstarLo; c.ripHi = c.lstarHi;
  },
});
def('0F 07', {
  name: 'sysret', flow: true,
  bind: (i) => { if (i.osz === 8) i.name = 'sysretq'; return sysret; },
});
const sysret: Handler = (c, i) => {
  if (!(c.efer & 1)) fault(UD);
  if (c.codeSize !== 64 || c.cpl !== 0) faultErr(GP, 0);
  const base = (c.starHi >>> 16) & 0xffff;
  if (i.osz === 8) {
    if (!canonical(c.rhi[RCX])) faultErr(GP, 0);
    setFlat(c, CS, ((base + 16) & 0xffff) | 3, FLAT_CODE64 | (3 << 5));
    c.ripLo = c.rlo[RCX]; c.ripHi = c.rhi[RCX];
  } else {
    setFlat(c, CS, base | 3, FLAT_CODE32 | (3 << 5));
    c.ripLo = c.rlo[RCX]; c.ripHi = 0;
  }
  setFlat(c, SS, ((base + 8) & 0xffff) | 3, FLAT_DATA | (3 << 5));
  c.setRflags((c.rlo[R11] & 0x3c7fd7) | 2);
  c.cpl = 3;
  c.updateMode();
  };

// ---- port I/O ----
function ioAllowed(c: Cpu): void {
  // The TSS I/O permission bitmap is not consulted: CPL > IOPL always faults (see README).
  if ((c.cr0 & CR0_PE) && (c.cpl > iopl(c) || (c.flags & VM))) faultErr(GP, 0);
}
const ioSize = (i: Insn) => (i.osz === 1 ? 1 : i.osz === 2 ? 2 : 4);
const inOp = (port: (c: Cpu, i: Insn) => number): Handler => (c, i) => {
  ioAllowed(c);
  const sz = ioSize(i);
  const v = c.host.ioRead(port(c, i), sz);
  setReg(c, RAX, sz, v);
};
const outOp = (port: (c: Cpu, i: Insn) => number): Handler => (c, i) => {
  ioAllowed(c);
  const sz = ioSize(i);
  // Unsigned value of the access size (a 32-bit value must not arrive as a negative int32).
  c.host.ioWrite(port(c, i), sz, (getReg(c, RAX, sz) & (sz === 1 ? 0xff : sz === 2 ? 0xffff : -1)) >>> 0);
};
const immPort = (_c: Cpu, i: Insn) => i.imm & 0xff;
const dxPort = (c: Cpu) => c.rlo[RDX] & 0xffff;
def('E4', { name: 'in', byte: true, imm: 'ib', end: true, exec: inOp(immPort) });
def('E5', { name: 'in', imm: 'ib', end: true, exec: inOp(immPort) });
def('EC', { name: 'in', byte: true, end: true, exec: inOp(dxPort) });
def('ED', { name: 'in', end: true, exec: inOp(dxPort) });
def('E6', { name: 'out', byte: true, imm: 'ib', end: true, exec: outOp(immPort) });
def('E7', { name: 'out', imm: 'ib', end: true, exec: outOp(immPort) });
def('EE', { name: 'out', byte: true, end: true, exec: outOp(dxPort) });
def('EF', { name: 'out', end: true, exec: outOp(dxPort) });

// ---- hypercalls: the owner decides (RIP already points past the instruction) ----
const hypercall = (amd: boolean): Handler => (c, i) => {
  c.ripLo = i.nextLo; c.ripHi = i.nextHi;
  c.host.hypercall(amd);
};
def('NP 0F 01 C1', { name: 'vmcall', flow: true, exec: hypercall(false) });
def('NP 0F 01 D9', { name: 'vmmcall', flow: true, exec: hypercall(true) });

// ---- fences, cache control, UD2 ----
def('NP 0F AE E8', { name: 'lfence', exec: () => {} });
def('NP 0F AE F0', { name: 'mfence', exec: () => {} });
def('NP 0F AE F8', { name: 'sfence', exec: () => {} });
def('NP 0F AE/7.m', { name: 'clflush', exec: (c, i) => { i.ea(c, i); } });
def('0F 08', { name: 'invd', exec: (c) => requireCpl0(c) });
def('0F 09', { name: 'wbinvd', exec: (c) => requireCpl0(c) });
def('0F 0B', { name: 'ud2', end: true, exec: () => fault(UD) });
// INT1 (ICEBP) raises #DB as a trap: the saved RIP is the next instruction, and no gate DPL check applies.
def('F1', {
  name: 'int1', flow: true,
  exec: (c, i) => { c.ripLo = i.nextLo; c.ripHi = i.nextHi; deliverEvent(c, EventKind.Exception, DB, false, 0); },
});

