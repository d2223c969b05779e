/**
 * String instructions (SDM vol. 2): MOVS, CMPS, STOS, LODS, SCAS (A4-A7, AA-AF)
 * and INS, OUTS (6C-6F), with REP / REPE / REPNE.
 *
 * Operands are implicit: the source is seg:RSI (DS unless overridden; in 64-bit
 * mode only FS/GS overrides count, the decoder drops the others), the
 * destination is always ES:RDI, the count is RCX; the address size (0x67)
 * selects SI/DI/CX, ESI/EDI/ECX or RSI/RDI/RCX. A repeated instruction is
 * precise and restartable: RSI, RDI and RCX are updated after every element, so
 * a fault leaves them describing exactly the elements done, and RIP stays on the
 * instruction. It runs at most REP_CHUNK elements per execution; when work
 * remains it leaves RIP on itself and ends the block, so interrupts and the
 * owner get a chance in between (SDM vol. 2 REP: a repeated string operation
 * may be suspended by an exception or interrupt and resumed where it stopped).
 *
 * RIP: the repeated forms are bound with Insn.flow set (but do not end their
 * block), so the run loop leaves RIP alone and the handler sets it to the next
 * instruction when done or to itself when work remains.
 */
import type { Cpu } from '../cpu.js';
import { REP_CHUNK } from '../cpu.js';
import { faultErr } from '../fault.js';
import { getZF } from '../flags.js';
import type { Handler, Insn } from '../insn.js';
import { def } from '../opcode-table.js';
import { getReg, readMem, setReg, writeMem } from '../operands.js';
import { CR0_PE, DF, GP, IOPL, RAX, RCX, RDI, RDX, RSI, VM } from '../regs.js';
import { alu, alu64 } from './alu.js';
import { bulkMovs, bulkStos } from './string-bulk.js';
import { addIndex, countIsZero, countValue, dstLinear, srcLinear } from './string-regs.js';

const enum Op { Movs, Cmps, Stos, Lods, Scas, Ins, Outs }
/** How a repeat prefix ends the loop besides RCX reaching 0. */
const enum Until { CountOnly, ZfClear, ZfSet }

const NAMES = ['movs', 'cmps', 'stos', 'lods', 'scas', 'ins', 'outs'];
const SUFFIX: Record<number, string> = { 1: 'b', 2: 'w', 4: 'd', 8: 'q' };
const CMP = 7; // alu() operation code for CMP

// ---- one element ----

/** Port I/O permission, as for IN/OUT (SDM vol. 1 "I/O Privilege Level"; the TSS bitmap is not consulted). */
function ioAllowed(c: Cpu): void {
  if ((c.cr0 & CR0_PE) && (c.cpl > ((c.flags & IOPL) >> 12) || (c.flags & VM))) faultErr(GP, 0);
}

/** Element size in bytes: INS/OUTS move at most a dword (REX.W does not widen them). */
function elemSize(op: Op, i: Insn): number {
  return (op === Op.Ins || op === Op.Outs) && i.osz === 8 ? 4 : i.osz;
}

/** Executes one element of `op` and steps RSI/RDI by the element size in the DF direction. */
function element(c: Cpu, i: Insn, op: Op, sz: number): void {
  const asz = i.asz;
  const delta = (c.flags & DF) ? -sz : sz;
  switch (op) {
    case Op.Movs: {
      const s = srcLinear(c, i), sHi = c.tHi;
      const v = readMem(c, s, sHi, sz), vHi = c.tHi;
      const d = dstLinear(c, i);
      writeMem(c, d, c.tHi, sz, v, vHi);
      addIndex(c, RSI, delta, asz);
      addIndex(c, RDI, delta, asz);
      return;
    }
    case Op.Stos: {
      const v = getReg(c, RAX, sz), vHi = c.tHi;
      const d = dstLinear(c, i);
      writeMem(c, d, c.tHi, sz, v, vHi);
      addIndex(c, RDI, delta, asz);
      return;
    }
    case Op.Lods: {
      const s = srcLinear(c, i);
      const v = readMem(c, s, c.tHi, sz);
      setReg(c, RAX, sz, v, c.tHi);
      addIndex(c, RSI, delta, asz);
      return;
    }
    case Op.Scas: {
      // Flags as for CMP rAX, ES:[RDI] (SDM SCAS).
      const a = getReg(c, RAX, sz), aHi = c.tHi;
      const d = dstLinear(c, i);
      const b = readMem(c, d, c.tHi, sz), bHi = c.tHi;
      if (sz === 8) alu64(c, CMP, a, aHi, b, bHi); else alu(c, CMP, sz, a, b);
      addIndex(c, RDI, delta, asz);
      return;
    }
    case Op.Cmps: {
      // Flags as for CMP [RSI], ES:[RDI]: the source minus the destination (SDM CMPS).
      const s = srcLinear(c, i), sHi = c.tHi;
      const d = dstLinear(c, i), dHi = c.tHi;
      const a = readMem(c, s, sHi, sz), aHi = c.tHi;
      const b = readMem(c, d, dHi, sz), bHi = c.tHi;
      if (sz === 8) alu64(c, CMP, a, aHi, b, bHi); else alu(c, CMP, sz, a, b);
      addIndex(c, RSI, delta, asz);
      addIndex(c, RDI, delta, asz);
      return;
    }
    case Op.Ins: {
      // The destination is checked before the port is read, so a #PF does not lose input.
      const d = dstLinear(c, i), dHi = c.tHi;
      c.mmu.probeWrite(d, dHi, sz);
      const v = c.host.ioRead(c.rlo[RDX] & 0xffff, sz);
      writeMem(c, d, dHi, sz, v);
      addIndex(c, RDI, delta, asz);
      return;
    }
    case Op.Outs: {
      const s = srcLinear(c, i);
      const v = readMem(c, s, c.tHi, sz);
      c.host.ioWrite(c.rlo[RDX] & 0xffff, sz, sz === 4 ? v >>> 0 : v);
      addIndex(c, RSI, delta, asz);
      return;
    }
  }
}

/** Handler of an unprefixed string instruction: one element. */
function single(op: Op): Handler {
  return (c, i) => {
    if (op === Op.Ins || op === Op.Outs) ioAllowed(c);
    element(c, i, op, elemSize(op, i));
  };
}

/**
 * Handler of a repeated string instruction (SDM REP/REPE/REPZ/REPNE/REPNZ):
 * while the count is not zero, do one element, decrement the count, and stop on
 * the ZF condition for CMPS/SCAS. Each element counts as a retired instruction.
 */
function repeated(op: Op, until: Until): Handler {
  const bulk = op === Op.Movs ? bulkMovs : op === Op.Stos ? bulkStos : null;
  return (c, i) => {
    const asz = i.asz, sz = elemSize(op, i);
    let n = 0;
    let done = true;
    try {
      if ((op === Op.Ins || op === Op.Outs) && !countIsZero(c, asz)) ioAllowed(c);
      while (!countIsZero(c, asz)) {
        if (n >= REP_CHUNK) { done = false; break; }
        if (bulk !== null && !(c.flags & DF)) {
          // Forward MOVS/STOS: whole runs inside one source and one destination page.
          const k = bulk(c, i, sz, Math.min(countValue(c, asz), REP_CHUNK - n));
          if (k > 0) {
            n += k;
            if (c.brk && !countIsZero(c, asz)) { done = false; break; }
            continue;
          }
        }
        element(c, i, op, sz);
        addIndex(c, RCX, -1, asz);
        n++;
        if (until === Until.ZfClear ? getZF(c) === 0 : until === Until.ZfSet && getZF(c) !== 0) break;
        // The owner asked to stop (an I/O or MMIO exit) or code was overwritten: yield between elements.
        if (c.brk && !countIsZero(c, asz)) { done = false; break; }
      }
    } catch (e) {
      // The faulting element does not retire; the ones before it did.
      c.icount += n;
      throw e;
    }
    if (n > 1) c.icount += n - 1;
    if (done) {
      c.ripLo = i.nextLo; c.ripHi = i.nextHi;
    } else {
      c.ripLo = i.lo; c.ripHi = i.hi;
      c.brk = true;
    }
  };
}

/** Registers a string instruction; `cmp` selects REPE/REPNE semantics for the F3/F2 prefixes. */
function defString(spec: string, op: Op, byte: boolean, cmp: boolean, io: boolean): void {
  const one = single(op);
  const rep = repeated(op, Until.CountOnly);
  const repe = repeated(op, Until.ZfClear);
  const repne = repeated(op, Until.ZfSet);
  def(spec, {
    name: NAMES[op], byte, end: io,
    bind: (i) => {
      i.name = NAMES[op] + SUFFIX[elemSize(op, i)];
      if (i.rep === 0) return one;
      i.flow = true;
      // F2 on a non-comparing string instruction repeats like F3 (as hardware does).
      if (!cmp) return rep;
      return i.rep === 1 ? repe : repne;
    },
  });
}

defString('A4', Op.Movs, true, false, false);
defString('A5', Op.Movs, false, false, false);
defString('A6', Op.Cmps, true, true, false);
defString('A7', Op.Cmps, false, true, false);
defString('AA', Op.Stos, true, false, false);
defString('AB', Op.Stos, false, false, false);
defString('AC', Op.Lods, true, false, false);
defString('AD', Op.Lods, false, false, false);
defString('AE', Op.Scas, true, true, false);
defString('AF', Op.Scas, false, true, false);
defString('6C', Op.Ins, true, false, true);
defString('6D', Op.Ins, false, false, true);
defString('6E', Op.Outs, true, false, true);
defString('6F', Op.Outs, false, false, true);

