/**
 * Hand encoding of the few register-direct forms GAS will not emit as asked
 * (for example C1 /4 ib with a count of 1, which GAS always shortens to D1 /4).
 */
import type { RegOperand } from './regs.js';

/**
 * Bytes of `opcode` with a register-direct ModRM (reg field = `ext`, or a
 * second register), the operand-size prefix for 16-bit operands, and the REX
 * prefix where needed (W for 64-bit, B/R for R8-R15, a bare REX for SPL..DIL).
 * `opcode8` is used for byte operands, `opcode` otherwise.
 */
export function encodeRegDirect(opcode8: readonly number[], opcode: readonly number[], rm: RegOperand, ext: number | RegOperand, imm: readonly number[] = []): number[] {
  const regField = typeof ext === 'number' ? ext : ext.high ? ext.index + 4 : ext.index & 7;
  const rmField = rm.high ? rm.index + 4 : rm.index & 7;
  const regOp = typeof ext === 'number' ? null : ext;
  let rex = 0;
  if (rm.size === 8) rex |= 0x48;
  if (rm.index >= 8) rex |= 0x41;
  if (regOp !== null && regOp.index >= 8) rex |= 0x44;
  const needsBareRex = (r: RegOperand | null): boolean => r !== null && r.size === 1 && !r.high && r.index >= 4 && r.index < 8;
  if (needsBareRex(rm) || needsBareRex(regOp)) rex |= 0x40;
  if (rex !== 0 && (rm.high || (regOp !== null && regOp.high))) throw new RangeError('AH..BH cannot be encoded with a REX prefix');
  const out: number[] = [];
  if (rm.size === 2) out.push(0x66);
  if (rex !== 0) out.push(rex);
  out.push(...(rm.size === 1 ? opcode8 : opcode), 0xc0 | ((regField & 7) << 3) | rmField, ...imm);
  return out;
}
