/** BT/BTS/BTR/BTC (register, immediate, memory bit strings), BSF/BSR, TZCNT/LZCNT/POPCNT, BSWAP. */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES } from '../flag-masks.js';
import type { OpSize } from '../regs.js';
import { WIDE_SIZES, form, type Form } from './form.js';

const BT_OPS = ['bt', 'bts', 'btr', 'btc'] as const;

function btForms(op: (typeof BT_OPS)[number]): Form[] {
  const rule = FLAG_RULES.bt.defined;
  return [
    form(`bits/${op} r, r`, (b) => {
      b.setDefinedFlags(rule);
      const [d, s] = b.pickRegPair(b.cycle(WIDE_SIZES));
      b.randomize(d);
      b.randomize(s);
      b.emit(`${op} ${d.name}, ${s.name}`);
    }),
    form(`bits/${op} r, imm8 (0F BA)`, (b) => {
      b.setDefinedFlags(rule);
      const r = b.pickReg(b.cycle(WIDE_SIZES));
      b.randomize(r);
      b.emit(`${op} ${r.name}, ${b.rng.int(256)}`);
    }),
    form(`bits/${op} m, imm8 (0F BA)`, (b) => {
      b.setDefinedFlags(rule);
      const size = b.cycle(WIDE_SIZES);
      const m = b.memOp(size);
      b.emit(`${op} ${m.text}, ${b.rng.int(256)}`);
    }),
    // Bit string: the register offset is signed and may reach far outside the addressed operand.
    form(`bits/${op} m, r (bit string)`, (b) => {
      b.setDefinedFlags(rule);
      const size = b.cycle(WIDE_SIZES);
      const r = b.pickReg(size);
      const bitOffset = BigInt(b.rng.range(-8000, 8000));
      b.reserve(r.index, (b.rng.bits(64) & ~((1n << BigInt(size * 8)) - 1n)) | (bitOffset & ((1n << BigInt(size * 8)) - 1n)));
      const m = b.memOp(size, { lo: 1024, hi: 3072 });
      b.note(`bit offset ${bitOffset}`);
      b.emit(`${op} ${m.text}, ${r.name}`);
    }),
  ];
}

/** Source operand value for the scan/count forms: zero a quarter of the time. */
function scanSource(b: CaseBuilder, size: OpSize): bigint {
  return b.rng.chance(0.25) ? 0n : b.rng.value(size * 8);
}

function scanForms(op: string, defined: number, requires?: readonly string[]): Form[] {
  const gen = (kind: 'r' | 'm') => (b: CaseBuilder): void => {
    b.setDefinedFlags(defined);
    const size = b.cycle(WIDE_SIZES);
    const d = b.pickReg(size);
    const v = scanSource(b, size);
    let src: string;
    if (kind === 'r') {
      const s = b.pickReg(size, { exclude: [d.index] });
      b.setVal(s, v);
      src = s.name;
    } else {
      const m = b.memOp(size);
      b.writeMem(m.offset, size, v);
      src = m.text;
    }
    if ((op === 'bsf' || op === 'bsr') && v === 0n) {
      // Zero source: Intel documents the destination as undefined, AMD as unchanged; Intel parts
      // keep the destination too, but whether a 32-bit form clears bits 63:32 is not documented.
      b.note('zero source: destination expected unchanged');
      if (b.host.vendor !== 'amd' && size === 4) b.ignoreRegBits(d.index, 0xffffffff00000000n);
    }
    b.emit(`${op} ${d.name}, ${src}`);
  };
  const extra = requires === undefined ? {} : { requires };
  return [form(`bits/${op} r, r`, gen('r'), extra), form(`bits/${op} r, m`, gen('m'), extra)];
}

export const bitForms: readonly Form[] = [
  ...BT_OPS.flatMap(btForms),
  ...scanForms('bsf', FLAG_RULES.bsfbsr.defined),
  ...scanForms('bsr', FLAG_RULES.bsfbsr.defined),
  ...scanForms('tzcnt', FLAG_RULES.tzlzcnt.defined, ['bmi1']),
  ...scanForms('lzcnt', FLAG_RULES.tzlzcnt.defined, ['abm']),
  ...scanForms('popcnt', FLAG_RULES.popcnt.defined, ['popcnt']),
  form('bits/bswap r32/r64', (b) => {
    b.setDefinedFlags(FLAG_RULES.none.defined);
    const r = b.pickReg(b.cycle([4, 8] as const));
    b.randomize(r);
    b.emit(`bswap ${r.name}`);
  }),
];
