/** ADD ADC SUB SBB AND OR XOR CMP TEST, INC DEC NEG NOT: every encoding, every operand size. */
import { FLAG_RULES, type FlagRule } from '../flag-masks.js';
import { RAX, reg } from '../regs.js';
import { ALL_SIZES, WIDE_SIZES, forcedImm, form, immText, seedMem, type Form } from './form.js';

const BINARY: ReadonlyArray<[string, FlagRule]> = [
  ['add', FLAG_RULES.arith], ['adc', FLAG_RULES.arith], ['sub', FLAG_RULES.arith], ['sbb', FLAG_RULES.arith],
  ['and', FLAG_RULES.logic], ['or', FLAG_RULES.logic], ['xor', FLAG_RULES.logic], ['cmp', FLAG_RULES.arith],
];

function binaryForms(op: string, rule: FlagRule): Form[] {
  const f = (what: string, gen: Form['gen']): Form => form(`alu/${op} ${what}`, (b) => {
    b.setDefinedFlags(rule.defined);
    gen(b);
  });
  return [
    f('r/m, r (reg, 00/01)', (b) => {
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.randomize(d);
      b.randomize(s);
      b.emit(`${op} ${d.name}, ${s.name}`);
    }),
    f('r, r/m (reg, 02/03)', (b) => {
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.randomize(d);
      b.randomize(s);
      b.emit(`{load} ${op} ${d.name}, ${s.name}`);
    }),
    f('r, m', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.randomize(r);
      const m = b.memOp(size, { allowRip: true });
      seedMem(b, m.offset, size);
      b.emit(`${op} ${r.name}, ${m.text}`);
    }),
    f('m, r', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.randomize(r);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`${op} ${m.text}, ${r.name}`);
    }),
    f('r, imm8 sign-extended (83)', (b) => {
      const r = b.pickReg(b.cycle(WIDE_SIZES));
      b.randomize(r);
      b.emit(`${op} ${r.name}, ${immText(b, 8)}`);
    }),
    f('m, imm8 sign-extended (83)', (b) => {
      const size = b.cycle(WIDE_SIZES);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`${op} ${m.text}, ${immText(b, 8)}`);
    }),
    f('r, imm (80/81)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size, { exclude: [RAX] }); // RAX would get the short accumulator form
      b.randomize(r);
      b.emit(`${op} ${r.name}, ${size === 1 ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32)}`);
    }),
    f('m, imm (80/81)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`${op} ${m.text}, ${size === 1 ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32)}`);
    }),
    f('accumulator, imm (04/05)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const acc = reg(RAX, size);
      b.randomize(acc);
      b.emit(`${op} ${acc.name}, ${size === 1 ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32)}`);
    }),
  ];
}

function testForms(): Form[] {
  const f = (what: string, gen: Form['gen']): Form => form(`alu/test ${what}`, (b) => {
    b.setDefinedFlags(FLAG_RULES.logic.defined);
    gen(b);
  });
  return [
    f('r/m, r (reg, 84/85)', (b) => {
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.randomize(d);
      b.randomize(s);
      b.emit(`test ${d.name}, ${s.name}`);
    }),
    f('m, r (84/85)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.randomize(r);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`test ${m.text}, ${r.name}`);
    }),
    f('r, imm (F6/F7 /0)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size, { exclude: [RAX] });
      b.randomize(r);
      b.emit(`test ${r.name}, ${size === 1 ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32)}`);
    }),
    f('m, imm (F6/F7 /0)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`test ${m.text}, ${immText(b, size === 1 ? 8 : size === 2 ? 16 : 32)}`);
    }),
    f('accumulator, imm (A8/A9)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const acc = reg(RAX, size);
      b.randomize(acc);
      b.emit(`test ${acc.name}, ${size === 1 ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32)}`);
    }),
  ];
}

const UNARY: ReadonlyArray<[string, FlagRule]> = [
  ['inc', FLAG_RULES.incdec], ['dec', FLAG_RULES.incdec], ['neg', FLAG_RULES.arith], ['not', FLAG_RULES.none],
];

function unaryForms(op: string, rule: FlagRule): Form[] {
  return [
    form(`alu/${op} r`, (b) => {
      b.setDefinedFlags(rule.defined);
      const r = b.pickReg(b.cycle(ALL_SIZES));
      b.randomize(r);
      b.emit(`${op} ${r.name}`);
    }),
    form(`alu/${op} m`, (b) => {
      b.setDefinedFlags(rule.defined);
      const size = b.cycle(ALL_SIZES);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`${op} ${m.text}`);
    }),
  ];
}

export const aluForms: readonly Form[] = [
  ...BINARY.flatMap(([op, rule]) => binaryForms(op, rule)),
  ...testForms(),
  ...UNARY.flatMap(([op, rule]) => unaryForms(op, rule)),
];
