/**
 * RFLAGS bits and, per instruction, which status flags are architecturally
 * defined after it executes. Flags the Intel SDM calls "undefined" differ
 * between Intel and AMD parts (and between generations), so the comparison
 * masks them out; flags an instruction "does not affect" are defined (they
 * must keep their input value) and are compared.
 *
 * Citations are to the "Flags Affected" section of each instruction in the
 * Intel 64 and IA-32 Architectures SDM, Vol. 2 (order number 325383).
 */

export const CF = 0x1;
export const PF = 0x4;
export const AF = 0x10;
export const ZF = 0x40;
export const SF = 0x80;
export const DF = 0x400;
export const OF = 0x800;
/** Reserved bit 1 of RFLAGS, always 1. */
export const RFLAGS_FIXED1 = 0x2;

/** The six status flags. */
export const STATUS = CF | PF | AF | ZF | SF | OF;
/** Bits a case may set in its input RFLAGS (status flags and DF; bit 1 is forced to 1). */
export const INPUT_FLAGS = STATUS | DF;

export interface FlagRule {
  /** Status flags whose value after the instruction is defined (including "unaffected"). */
  readonly defined: number;
  readonly sdm: string;
}

function rule(defined: number, sdm: string): FlagRule {
  return { defined, sdm };
}

/** Static rules; the count-dependent ones (shifts, rotates, double shifts) are functions below. */
export const FLAG_RULES = {
  arith: rule(STATUS, 'ADD/ADC/SUB/SBB/CMP/NEG/XADD/CMPXCHG: "The OF, SF, ZF, AF, CF, and PF flags are set according to the result."'),
  logic: rule(STATUS & ~AF, 'AND/OR/XOR/TEST: "The OF and CF flags are cleared; the SF, ZF, and PF flags are set according to the result. The state of the AF flag is undefined."'),
  incdec: rule(STATUS, 'INC/DEC: "The CF flag is not affected. The OF, SF, ZF, AF, and PF flags are set according to the result."'),
  none: rule(STATUS, '"Flags Affected: None." (MOV, MOVZX/MOVSX/MOVSXD, LEA, XCHG, BSWAP, NOT, SETcc, CMOVcc, Jcc, LOOP, PUSH/POP, ENTER/LEAVE, CBW..CQO, CALL/RET/JMP, MOVS/STOS/LODS, SSE moves and logic)'),
  mul: rule(CF | OF, 'MUL/IMUL: "The OF and CF flags are set to 0 if the upper half of the result is 0 [IMUL: if the result fits]; otherwise, they are set to 1. The SF, ZF, AF, and PF flags are undefined."'),
  div: rule(0, 'DIV/IDIV: "The CF, OF, SF, ZF, AF, and PF flags are undefined."'),
  bt: rule(CF | ZF, 'BT/BTS/BTR/BTC: "The CF flag contains the value of the selected bit. The ZF flag is unaffected. The OF, SF, AF, and PF flags are undefined."'),
  bsfbsr: rule(ZF, 'BSF/BSR: "The ZF flag is set to 1 if the source operand is 0; otherwise, the ZF flag is cleared. The CF, OF, SF, AF, and PF flags are undefined."'),
  tzlzcnt: rule(CF | ZF, 'TZCNT/LZCNT: "ZF is set to 1 in case of zero output ..., and to 0 otherwise. CF flag is set to 1 if the input was zero and cleared otherwise. OF, SF, PF and AF flags are undefined."'),
  popcnt: rule(STATUS, 'POPCNT: "OF, SF, ZF, AF, CF, PF are all cleared. ZF is set if SRC = 0, otherwise ZF is cleared."'),
  cmpxchg8b: rule(STATUS, 'CMPXCHG8B/16B: "The ZF flag is set if the destination operand and EDX:EAX are equal; otherwise it is cleared. The CF, PF, AF, SF, and OF flags are unaffected."'),
  sahf: rule(STATUS, 'SAHF: "The SF, ZF, AF, PF, and CF flags are loaded with values from the AH register." (OF unaffected)'),
  flagops: rule(STATUS, 'CLC/STC/CMC/CLD/STD: only CF (or DF) changes, the other flags are unaffected.'),
  strcmp: rule(STATUS, 'CMPS/SCAS: "The CF, OF, SF, ZF, AF, and PF flags are set according to the temporary result of the comparison."'),
  popf: rule(STATUS, 'POPF: the status flags and DF are loaded from the stack (TF, AC and the system flags are never set by the generated cases).'),
} as const;

export type ShiftOp = 'rol' | 'ror' | 'rcl' | 'rcr' | 'shl' | 'shr' | 'sar';

/** The count after masking: 6 bits with REX.W (64-bit operands), else 5 bits (SDM "SAL/SAR/SHL/SHR", "RCL/RCR/ROL/ROR"). */
export function maskedCount(count: number, width: number): number {
  return count & (width === 64 ? 0x3f : 0x1f);
}

/**
 * Defined status flags after a shift or rotate by `count` (raw count) of a `width`-bit operand.
 *
 * SAL/SAR/SHL/SHR: "The CF flag contains the value of the last bit shifted out of the destination
 * operand; it is undefined for SHL and SHR instructions where the count is greater than or equal to
 * the size (in bits) of the destination operand. The OF flag is affected only for 1-bit shifts;
 * otherwise, it is undefined. The SF, ZF, and PF flags are set according to the result. If the count
 * is 0, the flags are not affected. For a non-zero count, the AF flag is undefined."
 *
 * RCL/RCR/ROL/ROR: "If the masked count is 0, the flags are not affected. If the masked count is 1,
 * then the OF flag is affected, otherwise (masked count is greater than 1) the OF flag is undefined.
 * The CF flag is affected when the masked count is non-zero. The SF, ZF, AF, and PF flags are always
 * unaffected."
 */
export function shiftDefined(op: ShiftOp, count: number, width: number): number {
  const c = maskedCount(count, width);
  if (c === 0) return STATUS;
  if (op === 'rol' || op === 'ror' || op === 'rcl' || op === 'rcr') return c === 1 ? STATUS : STATUS & ~OF;
  let defined = STATUS & ~AF;
  if (c !== 1) defined &= ~OF;
  if ((op === 'shl' || op === 'shr') && c >= width) defined &= ~CF;
  return defined;
}

/**
 * SHLD/SHRD: "If the count is 1 or greater, the CF flag is filled with the last bit shifted out of
 * the destination operand and the SF, ZF, and PF flags are set according to the value of the result.
 * For a 1-bit shift, the OF flag is set if a sign change occurred; otherwise, it is cleared. For
 * shifts greater than 1 bit, the OF flag is undefined. If a shift occurs, the AF flag is undefined.
 * If the count operand is 0, the flags are not affected. If the count is greater than the operand
 * size, the flags are undefined." (Counts above the operand size are not generated: the result is
 * undefined too.)
 */
export function doubleShiftDefined(count: number, width: number): number {
  const c = maskedCount(count, width);
  if (c === 0) return STATUS;
  if (c > width) return 0;
  return c === 1 ? STATUS & ~AF : STATUS & ~AF & ~OF;
}

/** "CF PF ZF" style rendering of a flags value, for reports. */
export function flagNames(value: number, mask = STATUS | DF): string {
  const names: Array<[number, string]> = [[CF, 'CF'], [PF, 'PF'], [AF, 'AF'], [ZF, 'ZF'], [SF, 'SF'], [DF, 'DF'], [OF, 'OF']];
  const set = names.filter(([bit]) => (mask & bit) !== 0 && (value & bit) !== 0).map(([, n]) => n);
  return set.length > 0 ? set.join(' ') : '-';
}
