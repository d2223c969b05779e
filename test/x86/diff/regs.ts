/** General-purpose register numbering (the architectural encoding order) and Intel-syntax names. */

export const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7;
export const R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15;

export type OpSize = 1 | 2 | 4 | 8;

const NAMES64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi'];
const NAMES32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
const NAMES16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'];
const NAMES8 = ['al', 'cl', 'dl', 'bl', 'spl', 'bpl', 'sil', 'dil'];
const NAMES8_HIGH = ['ah', 'ch', 'dh', 'bh'];

export function regName(index: number, size: OpSize, high = false): string {
  if (high) {
    if (size !== 1 || index > 3) throw new RangeError(`no high-byte register for index ${index}`);
    return NAMES8_HIGH[index];
  }
  if (index < 8) {
    return size === 8 ? NAMES64[index] : size === 4 ? NAMES32[index] : size === 2 ? NAMES16[index] : NAMES8[index];
  }
  const suffix = size === 8 ? '' : size === 4 ? 'd' : size === 2 ? 'w' : 'b';
  return `r${index}${suffix}`;
}

export const GPR_NAMES: readonly string[] = Array.from({ length: 16 }, (_, i) => regName(i, 8));

/** A register operand: which GPR, how wide, and whether it is AH/CH/DH/BH (bits 15:8 of index 0-3). */
export interface RegOperand {
  readonly index: number;
  readonly size: OpSize;
  readonly high: boolean;
  readonly name: string;
}

export function reg(index: number, size: OpSize, high = false): RegOperand {
  return { index, size, high, name: regName(index, size, high) };
}

/** Bit position of the operand inside its 64-bit register. */
export function regShift(r: RegOperand): bigint {
  return r.high ? 8n : 0n;
}

export function sizeMask(size: OpSize): bigint {
  return (1n << BigInt(size * 8)) - 1n;
}

export function ptrKeyword(size: number): string {
  switch (size) {
    case 1: return 'byte ptr';
    case 2: return 'word ptr';
    case 4: return 'dword ptr';
    case 8: return 'qword ptr';
    case 16: return 'xmmword ptr';
  }
  throw new RangeError(`no pointer keyword for ${size}-byte operands`);
}
