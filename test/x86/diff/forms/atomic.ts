/** XCHG, CMPXCHG, CMPXCHG8B/16B, XADD (register and memory, with and without LOCK) and LOCK-prefixed read-modify-write forms. */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES } from '../flag-masks.js';
import { RAX, RBX, RCX, RDX, reg, sizeMask } from '../regs.js';
import { ALL_SIZES, forcedImm, form, immText, seedMem, type Form } from './form.js';

const lockText = (lock: boolean): string => (lock ? 'lock ' : '');

function xchgForms(): Form[] {
  return [
    form('atomic/xchg r, r (86/87, 90+r)', (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.randomize(d);
      b.randomize(s);
      b.emit(`xchg ${d.name}, ${s.name}`);
    }),
    form('atomic/xchg accumulator, r (90+r)', (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      const size = b.cycle([2, 4, 8] as const);
      const r = b.pickReg(size);
      b.emit(`xchg ${reg(RAX, size).name}, ${r.name}`);
    }),
    // 90 is NOP even though it reads as xchg eax,eax: RAX bits 63:32 survive. 87 C0 is a real
    // 32-bit xchg and clears them.
    form('atomic/nop (90) vs xchg eax, eax (87 C0)', (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      b.bytes(...b.cycle([[0x90], [0x87, 0xc0], [0x66, 0x90], [0x41, 0x90]]));
    }),
    ...[false, true].map((lock) => form(`atomic/${lockText(lock)}xchg m, r`, (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      const m = b.memOp(size);
      b.emit(`${lockText(lock)}xchg ${m.text}, ${r.name}`);
    })),
  ];
}

/** CMPXCHG: half the cases make the accumulator equal to the destination. */
function cmpxchgForms(): Form[] {
  const gen = (kind: 'r' | 'm', lock: boolean) => (b: CaseBuilder): void => {
    b.setDefinedFlags(FLAG_RULES.arith.defined);
    const size = b.cycle(ALL_SIZES);
    const equal = b.rng.chance(0.5);
    b.reserve(RAX, b.rng.regValue(size * 8));
    const src = b.pickReg(size, { noHigh: true });
    b.randomize(src);
    const acc = reg(RAX, size);
    if (kind === 'r') {
      const d = b.pickReg(size, { noHigh: true });
      b.randomize(d);
      if (equal) b.setReg(RAX, (b.getReg(RAX) & ~sizeMask(size)) | b.val(d));
      b.emit(`cmpxchg ${d.name}, ${src.name}`);
    } else {
      const m = b.memOp(size);
      if (equal) b.writeMem(m.offset, size, b.val(acc));
      b.emit(`${lockText(lock)}cmpxchg ${m.text}, ${src.name}`);
    }
  };
  return [
    form('atomic/cmpxchg r, r', gen('r', false)),
    form('atomic/cmpxchg m, r', gen('m', false)),
    form('atomic/lock cmpxchg m, r', gen('m', true)),
  ];
}

function cmpxchgWideForms(): Form[] {
  const gen = (bytes: 8 | 16, lock: boolean) => (b: CaseBuilder): void => {
    b.setDefinedFlags(FLAG_RULES.cmpxchg8b.defined);
    const half = bytes / 2;
    for (const r of [RAX, RDX, RBX, RCX]) b.reserve(r, b.rng.regValue(64));
    const m = b.memOp(bytes, { align: bytes === 16 ? 16 : b.rng.pick([1, 8]) });
    if (b.rng.chance(0.5)) {
      const m32 = sizeMask(half as 4 | 8);
      b.writeMem(m.offset, half, b.getReg(RAX) & m32);
      b.writeMem(m.offset + half, half, b.getReg(RDX) & m32);
    }
    b.emit(`${lockText(lock)}cmpxchg${bytes === 8 ? '8b' : '16b'} ${m.text}`);
  };
  return [
    form('atomic/cmpxchg8b m64', gen(8, false)),
    form('atomic/lock cmpxchg8b m64', gen(8, true)),
    form('atomic/cmpxchg16b m128', gen(16, false), { requires: ['cx16'] }),
    form('atomic/lock cmpxchg16b m128', gen(16, true), { requires: ['cx16'] }),
  ];
}

function xaddForms(): Form[] {
  return [
    form('atomic/xadd r, r', (b) => {
      b.setDefinedFlags(FLAG_RULES.arith.defined);
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.randomize(d);
      b.randomize(s);
      b.emit(`xadd ${d.name}, ${s.name}`);
    }),
    ...[false, true].map((lock) => form(`atomic/${lockText(lock)}xadd m, r`, (b) => {
      b.setDefinedFlags(FLAG_RULES.arith.defined);
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.randomize(r);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`${lockText(lock)}xadd ${m.text}, ${r.name}`);
    })),
  ];
}

/** LOCK on every other lockable read-modify-write instruction with a memory destination. */
function lockedRmwForms(): Form[] {
  const forms: Form[] = [];
  for (const op of ['add', 'adc', 'sub', 'sbb', 'and', 'or', 'xor']) {
    const rule = op === 'and' || op === 'or' || op === 'xor' ? FLAG_RULES.logic : FLAG_RULES.arith;
    forms.push(form(`atomic/lock ${op} m, r`, (b) => {
      b.setDefinedFlags(rule.defined);
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.randomize(r);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`lock ${op} ${m.text}, ${r.name}`);
    }));
    forms.push(form(`atomic/lock ${op} m, imm`, (b) => {
      b.setDefinedFlags(rule.defined);
      const size = b.cycle(ALL_SIZES);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`lock ${op} ${m.text}, ${size === 1 ? immText(b, 8) : b.rng.chance(0.5) ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32)}`);
    }));
  }
  for (const [op, rule] of [['inc', FLAG_RULES.incdec], ['dec', FLAG_RULES.incdec], ['neg', FLAG_RULES.arith], ['not', FLAG_RULES.none]] as const) {
    forms.push(form(`atomic/lock ${op} m`, (b) => {
      b.setDefinedFlags(rule.defined);
      const size = b.cycle(ALL_SIZES);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`lock ${op} ${m.text}`);
    }));
  }
  for (const op of ['bts', 'btr', 'btc']) {
    forms.push(form(`atomic/lock ${op} m, r`, (b) => {
      b.setDefinedFlags(FLAG_RULES.bt.defined);
      const size = b.cycle([2, 4, 8] as const);
      const r = b.pickReg(size);
      const bitOffset = BigInt(b.rng.range(-2000, 2000));
      b.reserve(r.index, (b.rng.bits(64) & ~sizeMask(size)) | (bitOffset & sizeMask(size)));
      const m = b.memOp(size, { lo: 1024, hi: 3072 });
      b.emit(`lock ${op} ${m.text}, ${r.name}`);
    }));
    forms.push(form(`atomic/lock ${op} m, imm8`, (b) => {
      b.setDefinedFlags(FLAG_RULES.bt.defined);
      const size = b.cycle([2, 4, 8] as const);
      b.emit(`lock ${op} ${b.memOp(size).text}, ${b.rng.int(256)}`);
    }));
  }
  return forms;
}

export const atomicForms: readonly Form[] = [...xchgForms(), ...cmpxchgForms(), ...cmpxchgWideForms(), ...xaddForms(), ...lockedRmwForms()];
