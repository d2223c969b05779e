/** SETcc, CMOVcc and Jcc for all 16 conditions; LOOP/LOOPE/LOOPNE/JRCXZ/JECXZ. */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES } from '../flag-masks.js';
import { RCX } from '../regs.js';
import { CONDITIONS, WIDE_SIZES, form, seedMem, type Form } from './form.js';

/** `lea rax, [rax+1]` (48 8D 40 01): a flag-neutral marker that shows whether a branch fell through. */
const MARKER = [0x48, 0x8d, 0x40, 0x01];

function setccForms(cc: string, n: number): Form[] {
  return [
    form(`cond/set${cc} r8 (0F ${(0x90 + n).toString(16).toUpperCase()})`, (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      b.emit(`set${cc} ${b.pickReg(1).name}`);
    }, { weight: 0.5 }),
    form(`cond/set${cc} m8`, (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      b.emit(`set${cc} ${b.memOp(1).text}`);
    }, { weight: 0.5 }),
  ];
}

function cmovForms(cc: string): Form[] {
  const gen = (kind: 'r' | 'm') => (b: CaseBuilder): void => {
    b.setDefinedFlags(FLAG_RULES.none.defined);
    const size = b.cycle(WIDE_SIZES);
    const d = b.pickReg(size);
    if (kind === 'r') {
      const s = b.pickReg(size);
      b.emit(`cmov${cc} ${d.name}, ${s.name}`);
    } else {
      const m = b.memOp(size);
      seedMem(b, m.offset, size);
      b.emit(`cmov${cc} ${d.name}, ${m.text}`);
    }
  };
  return [form(`cond/cmov${cc} r, r`, gen('r'), { weight: 0.5 }), form(`cond/cmov${cc} r, m`, gen('m'), { weight: 0.5 })];
}

function jccForms(cc: string, n: number): Form[] {
  return [
    form(`cond/j${cc} rel8 (${(0x70 + n).toString(16).toUpperCase()})`, (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      b.bytes(0x70 + n, MARKER.length, ...MARKER);
    }, { weight: 0.5 }),
    form(`cond/j${cc} rel32 (0F ${(0x80 + n).toString(16).toUpperCase()})`, (b) => {
      b.setDefinedFlags(FLAG_RULES.none.defined);
      b.bytes(0x0f, 0x80 + n, MARKER.length, 0, 0, 0, ...MARKER);
    }, { weight: 0.5 }),
  ];
}

/** RCX values around the loop/jrcxz decisions: 0, 1, 2, values whose low 32 bits are 0 or 1. */
function loopCounter(b: CaseBuilder): bigint {
  return b.rng.pick([0n, 1n, 2n, 0x100000000n, 0x100000001n, 0xffffffffn, (1n << 64n) - 1n, b.rng.bits(64)]);
}

const LOOPS: ReadonlyArray<[string, number[]]> = [
  ['loop (E2)', [0xe2]], ['loope (E1)', [0xe1]], ['loopne (E0)', [0xe0]], ['jrcxz (E3)', [0xe3]],
  ['jecxz (67 E3)', [0x67, 0xe3]], ['loop with 32-bit ECX (67 E2)', [0x67, 0xe2]],
];

export const condForms: readonly Form[] = [
  ...CONDITIONS.flatMap((cc, n) => [...setccForms(cc, n), ...cmovForms(cc), ...jccForms(cc, n)]),
  ...LOOPS.map(([name, opcode]) => form(`cond/${name}`, (b) => {
    b.setDefinedFlags(FLAG_RULES.none.defined);
    b.reserve(RCX, loopCounter(b));
    b.bytes(...opcode, MARKER.length, ...MARKER);
  })),
];
