/** Stack instructions: PUSH, POP, PUSHF, POPF, ENTER, LEAVE, PUSHA, POPA, segment pushes and pops. */
import { materializeFlags } from '../flags.js';
import type { Handler, Insn } from '../insn.js';
import { def } from '../opcode-table.js';
import { adjustSp, getReg, peek, pop, push, readRm, setReg, stackSize, writeRm } from '../operands.js';
import { linear } from '../ea.js';
import { loadSegment } from '../segments.js';
import { CS, DS, ES, FS, GS, RBP, RF, RSP, SS, VM } from '../regs.js';
import { writeFlagsFrom } from './branch.js';

def('50+r', { name: 'push', size: 'd64', exec: (c, i) => { const v = getReg(c, i.reg, i.osz); push(c, i.osz, v, c.tHi); } });
def('58+r', { name: 'pop', size: 'd64', exec: (c, i) => { const v = pop(c, i.osz); setReg(c, i.reg, i.osz, v, c.tHi); } });
def('68', { name: 'push', imm: 'iz', size: 'd64', exec: (c, i) => push(c, i.osz, i.imm, i.imm >> 31) });
def('6A', { name: 'push', imm: 'ib', size: 'd64', exec: (c, i) => push(c, i.osz, i.imm, i.imm >> 31) });
def('FF/6', { name: 'push', size: 'd64', exec: (c, i) => { const v = readRm(c, i); push(c, i.osz, v, c.tHi); } });
def('8F/0', {
  name: 'pop', size: 'd64',
  exec: (c, i) => {
    // The destination address is computed after RSP is incremented (SDM POP).
    const v = pop(c, i.osz), vHi = c.tHi;
    try { writeRm(c, i, v, vHi); } catch (e) { adjustSp(c, -i.osz); throw e; }
  },
});

// PUSHF / POPF: the image has VM and RF clear.
/** Mnemonic by operand size (pushf/pushfd/pushfq and friends). */
const sized = (n16: string, n32: string, n64: string, h: Handler) => (i: Insn): Handler => {
  i.name = i.osz === 2 ? n16 : i.osz === 4 ? n32 : n64;
  return h;
};
const pushf: Handler = (c, i) => push(c, i.osz, materializeFlags(c) & ~(VM | RF));
def('9C', { name: 'pushf', size: 'd64', bind: sized('pushf', 'pushfd', 'pushfq', pushf) });
const popf: Handler = (c, i) => { const v = pop(c, i.osz); writeFlagsFrom(c, v, i.osz, false); };
def('9D', { name: 'popf', size: 'd64', end: true, bind: sized('popf', 'popfd', 'popfq', popf) });

// ENTER size, level; LEAVE.
def('C8', {
  name: 'enter', imm: 'iw_ib', size: 'd64',
  exec: (c, i) => {
    const sz = i.osz, level = i.imm2 & 31, ss = stackSize(c);
    const bpLo = getReg(c, RBP, sz), bpHi = c.tHi;
    const savedLo = c.rlo[RSP], savedHi = c.rhi[RSP];
    try {
      push(c, sz, bpLo, bpHi);
      const frameLo = c.rlo[RSP], frameHi = c.rhi[RSP];
      for (let k = 1; k < level; k++) {
        const a = linear(c, SS, (getReg(c, RBP, ss) - k * sz) | 0, c.rhi[RBP], ss);
        const v = c.mmu.read32(a, c.tHi);
        push(c, sz, sz === 2 ? v & 0xffff : v, sz === 8 ? c.mmu.read32((a + 4) | 0, c.tHi) : 0);
      }
      if (level > 0) push(c, sz, frameLo, frameHi);
      // Probe the lowest byte of the new frame before committing.
      adjustSp(c, -i.imm);
      if (i.imm > 0) { const a = linear(c, SS, c.rlo[RSP], c.rhi[RSP], ss); c.mmu.probeWrite(a, c.tHi, 1); }
      setReg(c, RBP, ss === 2 ? 2 : ss, frameLo, frameHi);
    } catch (e) {
      c.rlo[RSP] = savedLo; c.rhi[RSP] = savedHi;
      throw e;
    }
  },
});
def('C9', {
  name: 'leave', size: 'd64',
  exec: (c, i) => {
    const ss = stackSize(c);
    const savedLo = c.rlo[RSP], savedHi = c.rhi[RSP];
    setReg(c, RSP, ss, c.rlo[RBP], c.rhi[RBP]);
    if (ss === 2) c.rlo[RSP] = (savedLo & ~0xffff) | (c.rlo[RBP] & 0xffff);
    try {
      const v = pop(c, i.osz);
      setReg(c, RBP, i.osz, v, c.tHi);
    } catch (e) {
      c.rlo[RSP] = savedLo; c.rhi[RSP] = savedHi;
      throw e;
    }
  },
});

// PUSHA / POPA (not in 64-bit mode).
const pusha: Handler = (c, i) => {
    const sp = c.rlo[RSP];
    for (let r = 0; r < 8; r++) push(c, i.osz, r === RSP ? sp : c.rlo[r]);
};
def('60', { name: 'pusha', no64: true, bind: sized('pusha', 'pushad', 'pushad', pusha) });
const popa: Handler = (c, i) => {
  for (let r = 7; r >= 0; r--) {
    const v = pop(c, i.osz);
    if (r !== RSP) setReg(c, r, i.osz, v);
  }
};
def('61', { name: 'popa', no64: true, bind: sized('popa', 'popad', 'popad', popa) });

// Segment register pushes and pops.
function pushSeg(seg: number): Handler {
  return (c, i) => push(c, i.osz, c.segSel[seg]);
}
function popSeg(seg: number): Handler {
  return (c, i) => {
    const v = peek(c, 0, i.osz) & 0xffff;
    loadSegment(c, seg, v);
    adjustSp(c, i.osz);
    if (seg === SS) c.shadow = true;
  };
}
def('06', { name: 'push', no64: true, exec: pushSeg(ES) });
def('07', { name: 'pop', no64: true, end: true, exec: popSeg(ES) });
def('0E', { name: 'push', no64: true, exec: pushSeg(CS) });
def('16', { name: 'push', no64: true, exec: pushSeg(SS) });
def('17', { name: 'pop', no64: true, end: true, shadow: true, exec: popSeg(SS) });
def('1E', { name: 'push', no64: true, exec: pushSeg(DS) });
def('1F', { name: 'pop', no64: true, end: true, exec: popSeg(DS) });
def('0F A0', { name: 'push', size: 'd64', exec: pushSeg(FS) });
def('0F A1', { name: 'pop', size: 'd64', end: true, exec: popSeg(FS) });
def('0F A8', { name: 'push', size: 'd64', exec: pushSeg(GS) });
def('0F A9', { name: 'pop', size: 'd64', end: true, exec: popSeg(GS) });

