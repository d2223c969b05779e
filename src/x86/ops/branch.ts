/**
 * Control transfers: JMP, Jcc, CALL, RET, LOOP/JCXZ (near), far JMP/CALL/RET,
 * IRET in every mode, INT n, INT3, INTO. All are `flow` instructions: they set RIP.
 */
import type { Cpu } from '../cpu.js';
import { fault, faultErr } from '../fault.js';
import { materializeFlags, testCond } from '../flags.js';
import type { Handler, Insn } from '../insn.js';
import { deliverEvent, EventKind } from '../interrupts.js';
import { def } from '../opcode-table.js';
import { peek, pop, push, readRm, adjustSp } from '../operands.js';
import { attrDpl } from '../segment-cache.js';
import { loadCodeSegment, loadStackForCpl } from '../segments.js';
import {
  AC, CR0_PE, CS, DF, DS, ES, FS, GP, GS, ID, IF, IOPL, NT, RCX, RF, RSP, TF, UD, VIF, VIP, VM, ARITH_FLAGS,
} from '../regs.js';

/** Sets RIP to a near target, truncated to the operand size; #GP(0) if not canonical. */
export function jumpNear(c: Cpu, osz: number, lo: number, hi: number): void {
  if (osz === 8) {
    if (((hi << 16) >> 16) !== hi) faultErr(GP, 0);
    c.ripLo = lo; c.ripHi = hi;
  } else {
    c.ripLo = osz === 2 ? lo & 0xffff : lo; c.ripHi = 0;
  }
}

/** Target of a relative branch (next + imm), precomputed into absLo/absHi at decode. */
function bindRel(i: Insn): void {
  const s = (i.nextLo >>> 0) + (i.imm >>> 0);
  i.absLo = s | 0;
  i.absHi = (i.nextHi + (i.imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
  if (i.osz === 2) { i.absLo &= 0xffff; i.absHi = 0; } else if (i.osz === 4) i.absHi = 0;
}

const jmpRel: Handler = (c, i) => jumpNear(c, i.osz, i.absLo, i.absHi);
def('EB', { name: 'jmp', imm: 'ib', size: 'f64', flow: true, bind: (i) => { bindRel(i); return jmpRel; } });
def('E9', { name: 'jmp', imm: 'iz', size: 'f64', flow: true, bind: (i) => { bindRel(i); return jmpRel; } });

const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
for (let cc = 0; cc < 16; cc++) {
  const h: Handler = (c, i) => {
    if (testCond(c, cc)) jumpNear(c, i.osz, i.absLo, i.absHi);
    else { c.ripLo = i.nextLo; c.ripHi = i.nextHi; }
  };
  def((0x70 + cc).toString(16).toUpperCase(), { name: `j${CC[cc]}`, imm: 'ib', size: 'f64', flow: true, bind: (i) => { bindRel(i); return h; } });
  def(`0F ${(0x80 + cc).toString(16).toUpperCase()}`, { name: `j${CC[cc]}`, imm: 'iz', size: 'f64', flow: true, bind: (i) => { bindRel(i); return h; } });
}

// LOOP / LOOPE / LOOPNE / JCXZ: the counter has the address size.
function counter(c: Cpu, asz: number): boolean {
  if (asz === 8) return c.rlo[RCX] !== 0 || c.rhi[RCX] !== 0;
  return asz === 4 ? c.rlo[RCX] !== 0 : (c.rlo[RCX] & 0xffff) !== 0;
}
function decCounter(c: Cpu, asz: number): void {
  if (asz === 8) { if (c.rlo[RCX] === 0) c.rhi[RCX] = (c.rhi[RCX] - 1) | 0; c.rlo[RCX] = (c.rlo[RCX] - 1) | 0; }
  else if (asz === 4) { c.rlo[RCX] = (c.rlo[RCX] - 1) | 0; c.rhi[RCX] = 0; }
  else c.rlo[RCX] = (c.rlo[RCX] & ~0xffff) | ((c.rlo[RCX] - 1) & 0xffff);
}
function loopOp(kind: number): Handler {
  return (c, i) => {
    let take: boolean;
    if (kind === 3) take = !counter(c, i.asz);
    else {
      decCounter(c, i.asz);
      take = counter(c, i.asz) && (kind === 2 || testCond(c, kind === 1 ? 4 : 5));
    }
    if (take) jumpNear(c, i.osz, i.absLo, i.absHi);
    else { c.ripLo = i.nextLo; c.ripHi = i.nextHi; }
  };
}
['loopne', 'loope', 'loop', 'jrcxz'].forEach((name, k) => {
  def(`E${k}`, {
    name, imm: 'ib', size: 'f64', flow: true,
    bind: (i) => {
      bindRel(i);
      if (k === 3) i.name = i.asz === 8 ? 'jrcxz' : i.asz === 4 ? 'jecxz' : 'jcxz';
      return loopOp(k);
    },
  });
});

// ---- near CALL / RET / indirect JMP ----
const callRel: Handler = (c, i) => {
  push(c, i.osz, i.nextLo, i.nextHi);
  c.ripLo = i.absLo; c.ripHi = i.absHi;
};
def('E8', {
  name: 'call', imm: 'iz', size: 'f64', flow: true,
  bind: (i) => { bindRel(i); return callRel; },
});
def('FF/2', {
  name: 'call', size: 'f64', flow: true,
  exec: (c, i) => {
    const lo = readRm(c, i), hi = i.osz === 8 ? c.tHi : 0;
    if (i.osz === 8 && ((hi << 16) >> 16) !== hi) faultErr(GP, 0);
    push(c, i.osz, i.nextLo, i.nextHi);
    jumpNear(c, i.osz, lo, hi);
  },
});
def('FF/4', {
  name: 'jmp', size: 'f64', flow: true,
  exec: (c, i) => { const lo = readRm(c, i); jumpNear(c, i.osz, lo, i.osz === 8 ? c.tHi : 0); },
});
const retNear = (c: Cpu, i: Insn, extra: number): void => {
  const lo = peek(c, 0, i.osz), hi = i.osz === 8 ? c.tHi : 0;
  jumpNear(c, i.osz, lo, hi);
  adjustSp(c, i.osz + extra);
};
def('C3', { name: 'ret', size: 'f64', flow: true, exec: (c, i) => retNear(c, i, 0) });
def('C2', { name: 'ret', imm: 'iw', size: 'f64', flow: true, exec: (c, i) => retNear(c, i, i.imm) });

// ---- far transfers ----

/** Far JMP/CALL destination CS:offset at the current privilege (call gates are not supported: #GP). */
function farTransfer(c: Cpu, sel: number, offLo: number, offHi: number, osz: number, call: boolean, retLo: number, retHi: number): void {
  const oldCs = c.segSel[CS];
  if (call) {
    // Check that both pushes fit before changing anything.
    push(c, osz, oldCs);
    try { push(c, osz, retLo, retHi); } catch (e) { adjustSp(c, osz); throw e; }
  }
  try {
    if ((c.cr0 & CR0_PE) && !(c.flags & VM)) {
      if ((sel & 3) > c.cpl) faultErr(GP, sel & 0xfffc);
      loadCodeSegment(c, sel, c.cpl);
    } else {
      loadCodeSegment(c, sel, 0);
    }
  } catch (e) {
    if (call) adjustSp(c, 2 * osz);
    throw e;
  }
  if (c.codeSize === 64) { c.ripLo = offLo; c.ripHi = osz === 8 ? offHi : 0; }
  else { c.ripLo = osz === 2 ? offLo & 0xffff : offLo; c.ripHi = 0; }
}

def('EA', { name: 'jmp', imm: 'far', no64: true, flow: true, exec: (c, i) => farTransfer(c, i.imm2, i.imm, 0, i.osz, false, 0, 0) });
def('9A', { name: 'call', imm: 'far', no64: true, flow: true, exec: (c, i) => farTransfer(c, i.imm2, i.imm, 0, i.osz, true, i.nextLo, 0) });
/** m16:16, m16:32 or m16:64 operand. */
function farPointer(c: Cpu, i: Insn): { sel: number; lo: number; hi: number } {
  if (i.rm >= 0) fault(UD);
  const a = i.ea(c, i), ah = c.tHi;
  let lo: number, hi = 0;
  if (i.osz === 8) { lo = c.mmu.read64(a, ah); hi = c.tHi; }
  else lo = i.osz === 4 ? c.mmu.read32(a, ah) : c.mmu.read16(a, ah);
  const sel = c.mmu.read16((a + i.osz) | 0, ah);
  return { sel, lo, hi };
}
def('FF/3', {
  name: 'call', flow: true,
  exec: (c, i) => { const p = farPointer(c, i); farTransfer(c, p.sel, p.lo, p.hi, i.osz, true, i.nextLo, i.nextHi); },
});
def('FF/5', {
  name: 'jmp', flow: true,
  exec: (c, i) => { const p = farPointer(c, i); farTransfer(c, p.sel, p.lo, p.hi, i.osz, false, 0, 0); },
});

/** RETF: same privilege, or to an outer privilege (pops SS:RSP too). */
function retFar(c: Cpu, i: Insn, extra: number): void {
  const osz = i.osz;
  const offLo = peek(c, 0, osz), offHi = osz === 8 ? c.tHi : 0;
  const sel = peek(c, osz, osz) & 0xffff;
  if (!(c.cr0 & CR0_PE) || (c.flags & VM)) {
    loadCodeSegment(c, sel, 0);
    c.ripLo = osz === 2 ? offLo & 0xffff : offLo; c.ripHi = 0;
    adjustSp(c, 2 * osz + extra);
    return;
  }
  const rpl = sel & 3;
  if (rpl < c.cpl) faultErr(GP, sel & 0xfffc);
  if (rpl === c.cpl) {
    loadCodeSegment(c, sel, rpl);
    adjustSp(c, 2 * osz + extra);
  } else {
    const newSp = peek(c, 2 * osz + extra, osz), newSpHi = osz === 8 ? c.tHi : 0;
    const newSs = peek(c, 3 * osz + extra, osz) & 0xffff;
    loadCodeSegment(c, sel, rpl);
    loadStackForCpl(c, newSs, rpl);
    c.rlo[RSP] = newSp; c.rhi[RSP] = newSpHi;
    adjustSp(c, extra);
    clearDataSegmentsForOuter(c);
  }
  c.ripLo = offLo; c.ripHi = c.codeSize === 64 ? offHi : 0;
  if (c.codeSize !== 64 && osz === 2) c.ripLo &= 0xffff;
}
def('CB', { name: 'retf', flow: true, exec: (c, i) => retFar(c, i, 0) });
def('CA', { name: 'retf', imm: 'iw', flow: true, exec: (c, i) => retFar(c, i, i.imm) });

/** On a return to an outer privilege, data segments the new CPL may not use become null (SDM RET). */
function clearDataSegmentsForOuter(c: Cpu): void {
  for (const s of [ES, DS, FS, GS]) {
    const attr = c.segAttr[s];
    const isConformingCode = (attr & 0x18) === 0x18 && (attr & 4) !== 0;
    if ((attr & 0x80) && !isConformingCode && attrDpl(attr) < c.cpl) {
      c.segSel[s] = 0; c.segAttr[s] = 0;
    }
  }
}

// ---- IRET ----

/** Writes RFLAGS from a POPF/IRET image with the privilege rules of SDM POPF/IRET. */
export function writeFlagsFrom(c: Cpu, v: number, osz: number, iret: boolean): void {
  const cur = materializeFlags(c);
  let mask = ARITH_FLAGS | TF | DF | NT;
  if (osz >= 4) mask |= AC | ID | (iret ? RF | VIF | VIP : 0);
  if (c.cpl === 0) mask |= IOPL | IF;
  else if (c.cpl <= ((cur & IOPL) >> 12)) mask |= IF;
  if (osz === 2) mask &= 0xffff;
  c.setRflags((cur & ~mask) | (v & mask));
}

const iret: Handler = (c, i) => {
  const osz = i.osz;
  if (!(c.cr0 & CR0_PE)) {
    const ip = pop(c, osz), cs = pop(c, osz) & 0xffff, fl = pop(c, osz);
    loadCodeSegment(c, cs, 0);
    c.ripLo = osz === 2 ? ip & 0xffff : ip; c.ripHi = 0;
    const cur = materializeFlags(c);
    c.setRflags(osz === 2 ? (cur & ~0xffff) | (fl & 0xffff) : (fl & ~(VM | VIF | VIP)) | (cur & (VM | VIF | VIP)));
    c.nmiBlocked = false;
    return;
  }
  if (c.flags & NT) faultErr(GP, 0); // task return: not implemented
  const ripLo = peek(c, 0, osz), ripHi = osz === 8 ? c.tHi : 0;
  const sel = peek(c, osz, osz) & 0xffff;
  const fl = peek(c, 2 * osz, osz);
  const rpl = sel & 3;
  if (rpl < c.cpl) faultErr(GP, sel & 0xfffc);
  const long = c.longMode;
  const popStack = (long && c.codeSize === 64) || rpl > c.cpl;
  let spLo = 0, spHi = 0, ss = 0;
  if (popStack) {
    spLo = peek(c, 3 * osz, osz); spHi = osz === 8 ? c.tHi : 0;
    ss = peek(c, 4 * osz, osz) & 0xffff;
  }
  const oldCpl = c.cpl;
  loadCodeSegment(c, sel, rpl);
  // Flags are written with the privilege of the IRET itself (old CPL).
  const newCpl = c.cpl;
  c.cpl = oldCpl;
  writeFlagsFrom(c, fl, osz, true);
  c.cpl = newCpl;
  if (popStack) {
    loadStackForCpl(c, ss, rpl);
    if (osz === 4 && !(c.codeSize === 64)) { c.rlo[RSP] = spLo; c.rhi[RSP] = 0; }
    else { c.rlo[RSP] = spLo; c.rhi[RSP] = spHi; }
    if (osz === 2) c.rlo[RSP] &= 0xffff;
    if (rpl > oldCpl) clearDataSegmentsForOuter(c);
  } else {
    adjustSp(c, 3 * osz);
  }
  if (c.codeSize === 64) { c.ripLo = ripLo; c.ripHi = ripHi; if (((ripHi << 16) >> 16) !== ripHi) faultErr(GP, 0); }
  else { c.ripLo = osz === 2 ? ripLo & 0xffff : ripLo; c.ripHi = 0; }
  c.nmiBlocked = false;
  };
def('CF', {
  name: 'iret', flow: true,
  bind: (i) => { i.name = i.osz === 8 ? 'iretq' : i.osz === 4 ? 'iretd' : 'iret'; return iret; },
});

// ---- software interrupts ----
def('CD', {
  name: 'int', imm: 'ib', flow: true,
  exec: (c, i) => { c.ripLo = i.nextLo; c.ripHi = i.nextHi; deliverEvent(c, EventKind.Software, i.imm & 0xff, false, 0); },
});
def('CC', {
  name: 'int3', flow: true,
  exec: (c, i) => { c.ripLo = i.nextLo; c.ripHi = i.nextHi; deliverEvent(c, EventKind.Int3, 3, false, 0); },
});
def('CE', {
  name: 'into', no64: true, flow: true,
  exec: (c, i) => {
    c.ripLo = i.nextLo; c.ripHi = i.nextHi;
    if (testCond(c, 0)) deliverEvent(c, EventKind.Int3, 4, false, 0);
  },
});

