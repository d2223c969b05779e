/** MUL, IMUL (one, two and three operands), DIV and IDIV, including the #DE cases. */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES } from '../flag-masks.js';
import { RAX, RDX, sizeMask, type OpSize } from '../regs.js';
import { ALL_SIZES, WIDE_SIZES, forcedImm, form, immText, seedMem, signed, type Form } from './form.js';

/** Operand of a one-operand MUL/IMUL/DIV/IDIV: a register (rarely RAX or RDX themselves) or memory. */
function rmOperand(b: CaseBuilder, size: OpSize, kind: 'r' | 'm', value: bigint): string {
  if (kind === 'm') {
    const m = b.memOp(size);
    b.writeMem(m.offset, size, value);
    return m.text;
  }
  const r = b.pickReg(size, b.rng.chance(0.9) ? { exclude: [RAX, RDX] } : {});
  b.setVal(r, value);
  return r.name;
}

function oneOperandMul(op: 'mul' | 'imul', kind: 'r' | 'm'): Form {
  return form(`muldiv/${op} ${kind} (F6/F7)`, (b) => {
    const size = b.cycle(ALL_SIZES);
    b.setDefinedFlags(FLAG_RULES.mul.defined);
    b.reserve(RAX, b.rng.regValue(size * 8));
    b.reserve(RDX, b.rng.regValue(64));
    b.emit(`${op} ${rmOperand(b, size, kind, b.rng.value(size * 8))}`);
  });
}

/**
 * A dividend/divisor pair: mostly quotients that fit (dividend = q*d + r), some
 * division by zero and some quotient overflow (both #DE), including INT_MIN / -1.
 */
function division(b: CaseBuilder, signedDiv: boolean, w: number): { n: bigint; d: bigint; expectDE: boolean } {
  const kind = b.rng.int(100);
  const half = 1n << BigInt(w - 1);
  if (kind < 12) return { n: b.rng.bits(2 * w), d: 0n, expectDE: true };
  if (!signedDiv) {
    let d = b.rng.value(w);
    if (d === 0n) d = 1n;
    if (kind < 25) {
      const hi = d + ((b.rng.bits(w) * ((1n << BigInt(w)) - d)) >> BigInt(w)); // in [d, 2^w)
      return { n: (hi << BigInt(w)) | b.rng.bits(w), d, expectDE: true };
    }
    const q = b.rng.value(w);
    const r = b.rng.bits(w) % d;
    return { n: q * d + r, d, expectDE: false };
  }
  let d = signed(b.rng.value(w), w);
  if (d === 0n) d = -1n;
  if (kind < 18) return { n: -(1n << BigInt(2 * w - 1)), d: -1n, expectDE: true };
  if (kind < 25) return { n: signed(b.rng.bits(2 * w) | (1n << BigInt(2 * w - 3)), 2 * w), d: b.rng.chance(0.5) ? 1n : -1n, expectDE: false };
  const q = signed(b.rng.value(w), w);
  const absD = d < 0n ? -d : d;
  const r = b.rng.bits(w) % absD;
  const product = q * d;
  const n = product + (product < 0n ? -r : r);
  if (n < -(half * (1n << BigInt(w))) || n >= half * (1n << BigInt(w))) throw new Error('idiv dividend out of range');
  return { n, d, expectDE: false };
}

function divForm(op: 'div' | 'idiv', kind: 'r' | 'm'): Form {
  return form(`muldiv/${op} ${kind} (F6/F7)`, (b) => {
    const size = b.cycle(ALL_SIZES);
    const w = size * 8;
    b.setDefinedFlags(FLAG_RULES.div.defined);
    const { n, d, expectDE } = division(b, op === 'idiv', w);
    const nMask = (1n << BigInt(2 * w)) - 1n;
    const un = n & nMask;
    if (size === 1) {
      b.reserve(RAX, (b.rng.bits(64) & ~0xffffn) | un);
      b.reserve(RDX, b.rng.bits(64));
    } else {
      const m = sizeMask(size);
      b.reserve(RAX, (b.rng.bits(64) & ~m) | (un & m));
      b.reserve(RDX, (b.rng.bits(64) & ~m) | (un >> BigInt(w)));
    }
    b.note(`dividend ${n}, divisor ${d}${expectDE ? ' (#DE expected)' : ''}`);
    b.emit(`${op} ${rmOperand(b, size, kind, d & sizeMask(size))}`);
  }, { weight: 1.5 });
}

function twoOperandImul(kind: 'r' | 'm'): Form {
  return form(`muldiv/imul r, ${kind} (0F AF)`, (b) => {
    const size = b.cycle(WIDE_SIZES);
    b.setDefinedFlags(FLAG_RULES.mul.defined);
    const d = b.pickReg(size);
    b.randomize(d);
    if (kind === 'r') {
      const s = b.pickReg(size);
      b.randomize(s);
      b.emit(`imul ${d.name}, ${s.name}`);
    } else {
      const m = b.memOp(size, { allowRip: true });
      seedMem(b, m.offset, size);
      b.emit(`imul ${d.name}, ${m.text}`);
    }
  });
}

function threeOperandImul(kind: 'r' | 'm', imm: 'imm8 (6B)' | 'imm (69)'): Form {
  return form(`muldiv/imul r, ${kind}, ${imm}`, (b) => {
    const size = b.cycle(WIDE_SIZES);
    b.setDefinedFlags(FLAG_RULES.mul.defined);
    const d = b.pickReg(size);
    b.randomize(d);
    let src: string;
    if (kind === 'r') {
      const s = b.pickReg(size);
      b.randomize(s);
      src = s.name;
    } else {
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      src = m.text;
    }
    const immediate = imm === 'imm8 (6B)' ? immText(b, 8) : forcedImm(b, size === 2 ? 16 : 32);
    b.emit(`imul ${d.name}, ${src}, ${immediate}`);
  });
}

export const mulDivForms: readonly Form[] = [
  oneOperandMul('mul', 'r'), oneOperandMul('mul', 'm'), oneOperandMul('imul', 'r'), oneOperandMul('imul', 'm'),
  twoOperandImul('r'), twoOperandImul('m'),
  threeOperandImul('r', 'imm8 (6B)'), threeOperandImul('m', 'imm8 (6B)'), threeOperandImul('r', 'imm (69)'), threeOperandImul('m', 'imm (69)'),
  divForm('div', 'r'), divForm('div', 'm'), divForm('idiv', 'r'), divForm('idiv', 'm'),
];
