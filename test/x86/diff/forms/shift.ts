/** Shifts and rotates by 1, CL and imm8 (counts 0, 1, at and beyond the width, masked), SHLD/SHRD. */
import type { CaseBuilder } from '../case-builder.js';
import { encodeRegDirect } from '../encode.js';
import { doubleShiftDefined, maskedCount, shiftDefined, type ShiftOp } from '../flag-masks.js';
import { RCX } from '../regs.js';
import { ALL_SIZES, WIDE_SIZES, form, seedMem, type Form } from './form.js';

const SHIFTS: ReadonlyArray<[ShiftOp, number]> = [['rol', 0], ['ror', 1], ['rcl', 2], ['rcr', 3], ['shl', 4], ['shr', 5], ['sar', 7]];

/** A count biased to the interesting points: 0, 1, around the width, around the 5/6-bit mask. */
function pickCount(b: CaseBuilder, width: number): number {
  if (b.rng.chance(0.25)) return b.rng.int(256);
  return b.rng.pick([0, 1, 1, 2, 3, 7, 8, 9, 15, 16, 17, width - 1, width, width + 1, 31, 32, 33, 63, 64, 65, 127, 128, 255]);
}

/** The CL form: RCX holds the count in CL and random bits above, which the CPU must ignore. */
function reserveCl(b: CaseBuilder, count: number): void {
  b.reserve(RCX, (b.rng.bits(64) & ~0xffn) | BigInt(count));
}

function shiftOpForms(op: ShiftOp, ext: number): Form[] {
  const regForm = (what: string, countOf: (b: CaseBuilder, width: number) => number, emit: (b: CaseBuilder, r: ReturnType<CaseBuilder['pickReg']>, count: number) => void): Form =>
    form(`shift/${op} r, ${what}`, (b) => {
      const size = b.cycle(ALL_SIZES);
      const count = countOf(b, size * 8);
      if (what === 'cl (D2/D3)') reserveCl(b, count);
      const r = b.pickReg(size);
      b.randomize(r);
      b.setDefinedFlags(shiftDefined(op, count, size * 8));
      emit(b, r, count);
    });
  const memForm = (what: string, countOf: (b: CaseBuilder, width: number) => number, operand: (count: number) => string): Form =>
    form(`shift/${op} m, ${what}`, (b) => {
      const size = b.cycle(ALL_SIZES);
      const count = countOf(b, size * 8);
      if (what === 'cl (D2/D3)') reserveCl(b, count);
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.setDefinedFlags(shiftDefined(op, count, size * 8));
      b.emit(`${op} ${m.text}, ${operand(count)}`);
    });
  return [
    regForm('1 (D0/D1)', () => 1, (b, r) => b.emit(`${op} ${r.name}, 1`)),
    regForm('cl (D2/D3)', pickCount, (b, r) => b.emit(`${op} ${r.name}, cl`)),
    regForm('imm8 (C0/C1)', pickCount, (b, r, count) => {
      // GAS turns a count of 1 into the D0/D1 form; encode C0/C1 by hand to test it.
      if (count === 1) b.bytes(...encodeRegDirect([0xc0], [0xc1], r, ext, [1]));
      else b.emit(`${op} ${r.name}, ${count}`);
    }),
    memForm('1 (D0/D1)', () => 1, () => '1'),
    memForm('cl (D2/D3)', pickCount, () => 'cl'),
    memForm('imm8 (C0/C1)', (b, w) => {
      const c = pickCount(b, w);
      return c === 1 ? 2 : c; // a count of 1 would be assembled as D0/D1; the by-1 form covers it
    }, (count) => String(count)),
  ];
}

/** SHLD/SHRD counts: masked counts above the operand size give undefined results and are not generated (16-bit only). */
function pickDoubleCount(b: CaseBuilder, width: number): number {
  for (;;) {
    const c = pickCount(b, width);
    if (maskedCount(c, width) <= width) return c;
  }
}

function doubleShiftForms(op: 'shld' | 'shrd'): Form[] {
  const gen = (dest: 'r' | 'm', viaCl: boolean) => (b: CaseBuilder): void => {
    const size = b.cycle(WIDE_SIZES);
    const count = pickDoubleCount(b, size * 8);
    if (viaCl) reserveCl(b, count);
    const src = b.pickReg(size);
    b.randomize(src);
    let d: string;
    if (dest === 'r') {
      const r = b.pickReg(size);
      b.randomize(r);
      d = r.name;
    } else {
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      d = m.text;
    }
    b.setDefinedFlags(doubleShiftDefined(count, size * 8));
    b.emit(`${op} ${d}, ${src.name}, ${viaCl ? 'cl' : String(count)}`);
  };
  return [
    form(`shift/${op} r, r, imm8`, gen('r', false)),
    form(`shift/${op} r, r, cl`, gen('r', true)),
    form(`shift/${op} m, r, imm8`, gen('m', false)),
    form(`shift/${op} m, r, cl`, gen('m', true)),
  ];
}

export const shiftForms: readonly Form[] = [
  ...SHIFTS.flatMap(([op, ext]) => shiftOpForms(op, ext)),
  ...doubleShiftForms('shld'),
  ...doubleShiftForms('shrd'),
];
