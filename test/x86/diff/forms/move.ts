/** MOV in all its forms, MOVZX/MOVSX/MOVSXD, LEA, CBW..CQO, LAHF/SAHF, flag instructions, NOPs, XLAT. */
import type { CaseBuilder } from '../case-builder.js';
import { encodeRegDirect } from '../encode.js';
import { FLAG_RULES } from '../flag-masks.js';
import { RAX, RBX, reg, type OpSize } from '../regs.js';
import { DATA_BASE } from '../snippet-contract.js';
import { ALL_SIZES, WIDE_SIZES, form, immText, seedMem, signed, type Form } from './form.js';

const NONE = FLAG_RULES.none.defined;

function movForms(): Form[] {
  return [
    form('move/mov r, r (88/89)', (b) => {
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.emit(`mov ${d.name}, ${s.name}`);
    }),
    form('move/mov r, r (8A/8B)', (b) => {
      const [d, s] = b.pickRegPair(b.cycle(ALL_SIZES));
      b.emit(`{load} mov ${d.name}, ${s.name}`);
    }),
    form('move/mov r, m', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.emit(`mov ${r.name}, ${b.memOp(size, { allowRip: true }).text}`);
    }),
    form('move/mov m, r', (b) => {
      const size = b.cycle(ALL_SIZES);
      const r = b.pickReg(size);
      b.emit(`mov ${b.memOp(size).text}, ${r.name}`);
    }),
    form('move/mov r, imm (B0+r/B8+r)', (b) => {
      const size = b.cycle([1, 2, 4] as const);
      const r = b.pickReg(size);
      b.emit(`mov ${r.name}, ${immText(b, size * 8)}`);
    }),
    form('move/mov r64, imm32 sign-extended (C7 /0)', (b) => {
      b.emit(`mov ${b.pickReg(8).name}, ${immText(b, 32)}`);
    }),
    form('move/movabs r64, imm64 (B8+r)', (b) => {
      b.emit(`movabs ${b.pickReg(8).name}, ${signed(b.rng.value(64), 64)}`);
    }),
    form('move/mov m, imm (C6/C7)', (b) => {
      const size = b.cycle(ALL_SIZES);
      b.emit(`mov ${b.memOp(size).text}, ${immText(b, Math.min(size, 4) * 8)}`);
    }),
    form('move/movabs accumulator, moffs64 (A0/A1)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const off = b.rng.int(4096 - size + 1);
      b.emit(`movabs ${reg(RAX, size).name}, [0x${(DATA_BASE + BigInt(off)).toString(16)}]`);
    }),
    form('move/movabs moffs64, accumulator (A2/A3)', (b) => {
      const size = b.cycle(ALL_SIZES);
      const off = b.rng.int(4096 - size + 1);
      b.emit(`movabs [0x${(DATA_BASE + BigInt(off)).toString(16)}], ${reg(RAX, size).name}`);
    }),
  ];
}

const EXTEND: ReadonlyArray<[OpSize, OpSize]> = [[2, 1], [4, 1], [8, 1], [4, 2], [8, 2]];

function extendForms(op: 'movzx' | 'movsx'): Form[] {
  return [
    form(`move/${op} r, r`, (b) => {
      const [dsize, ssize] = b.cycle(EXTEND);
      // AH..BH exclude any REX prefix: then no 64-bit destination and no R8-R15.
      const s = b.pickReg(ssize, dsize === 8 ? { noHigh: true } : {});
      b.randomize(s);
      const d = b.pickReg(dsize, s.high ? { exclude: [8, 9, 10, 11, 12, 13, 14, 15] } : {});
      b.emit(`${op} ${d.name}, ${s.name}`);
    }),
    form(`move/${op} r, m`, (b) => {
      const [dsize, ssize] = b.cycle(EXTEND);
      const d = b.pickReg(dsize);
      const m = b.memOp(ssize);
      seedMem(b, m.offset, ssize);
      b.emit(`${op} ${d.name}, ${m.text}`);
    }),
  ];
}

function movsxdForms(): Form[] {
  return [
    form('move/movsxd r64, r32', (b) => {
      const s = b.pickReg(4);
      b.randomize(s);
      b.emit(`movsxd ${b.pickReg(8).name}, ${s.name}`);
    }),
    form('move/movsxd r64, m32', (b) => {
      const m = b.memOp(4);
      seedMem(b, m.offset, 4);
      b.emit(`movsxd ${b.pickReg(8).name}, ${m.text}`);
    }),
    // 63 /r without REX.W: a plain 32-bit move (SDM MOVSXD "r32, r/m32"), zero-extending like any 32-bit write.
    form('move/movsxd r32, r32 (63 without REX.W)', (b) => {
      const s = b.pickReg(4);
      b.randomize(s);
      b.bytes(...encodeRegDirect([0x63], [0x63], s, b.pickReg(4)));
    }),
  ];
}

/** LEA computes any address without touching memory, so base and index keep fully random values. */
function leaForms(): Form[] {
  const gen = (dsize: OpSize, addr32: boolean | undefined) => (b: CaseBuilder): void => {
    const d = b.pickReg(dsize);
    const target = addr32 === true || b.rng.chance(0.3) ? b.rng.bits(31) : b.rng.bits(64);
    b.emit(`lea ${d.name}, ${b.memOp(8, { address: target, ptr: false, addr32, allowRip: true }).text}`);
  };
  return [
    form('move/lea r64, m (all address forms)', gen(8, false), { weight: 2 }),
    form('move/lea r32, m (truncated)', gen(4, undefined)),
    form('move/lea r16, m (truncated)', gen(2, undefined)),
    form('move/lea r, m with 32-bit address size (67)', (b) => gen(b.cycle(WIDE_SIZES), true)(b)),
  ];
}

function simple(id: string, text: string, defined = NONE, requires?: readonly string[]): Form {
  return form(`move/${id}`, (b) => {
    b.setDefinedFlags(defined);
    b.emit(text);
  }, requires === undefined ? { weight: 0.5 } : { weight: 0.5, requires });
}

export const moveForms: readonly Form[] = [
  ...movForms(),
  ...extendForms('movzx'),
  ...extendForms('movsx'),
  ...movsxdForms(),
  ...leaForms(),
  ...['cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo'].map((op) => simple(op, op)),
  // LAHF/SAHF exist in 64-bit mode only if CPUID.80000001H:ECX[0] says so (Linux flag lahf_lm).
  simple('lahf', 'lahf', NONE, ['lahf_lm']),
  simple('sahf', 'sahf', FLAG_RULES.sahf.defined, ['lahf_lm']),
  ...['clc', 'stc', 'cmc', 'cld', 'std'].map((op) => simple(op, op, FLAG_RULES.flagops.defined)),
  simple('nop (90)', 'nop'),
  simple('pause (F3 90)', 'pause'),
  simple('endbr64 (F3 0F 1E FA)', 'endbr64'),
  // 0F 1F /0 never accesses its memory operand: any address, even a non-canonical one, is fine.
  form('move/nop r/m (0F 1F /0) with any address', (b) => {
    const size = b.cycle([2, 4] as const);
    b.emit(`nop ${b.memOp(size, { address: b.rng.bits(64) }).text}`);
  }),
  form('move/xlatb (D7)', (b) => {
    const al = BigInt(b.rng.int(256));
    b.reserve(RAX, (b.rng.bits(64) & ~0xffn) | al);
    b.reserve(RBX, DATA_BASE + BigInt(b.rng.int(4096 - 256)));
    b.emit('xlatb');
  }),
];
