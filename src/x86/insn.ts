/** A decoded instruction: operands resolved once, handler pre-selected (DESIGN §3.2). */
import type { Cpu } from './cpu.js';
import { DS } from './regs.js';

export type Handler = (c: Cpu, i: Insn) => void;
/** Computes a memory operand's linear address: returns bits 31:0, bits 63:32 in c.tHi. */
export type EaFn = (c: Cpu, i: Insn) => number;

/**
 * Handlers that only read and write registers and lazy flags: they cannot
 * fault, touch memory, call the owner or end a block. Compiled blocks skip the
 * bookkeeping around them (block-compiler.ts). Mark only such handlers.
 */
const pure = new WeakSet<Handler>();
export function markPure<T extends Handler>(h: T): T { pure.add(h); return h; }
export function isPure(h: Handler): boolean { return pure.has(h); }

const noEa: EaFn = () => 0;
const noHandler: Handler = () => {};

export class Insn {
  exec: Handler = noHandler;
  /** Mnemonic, lower case (iced-x86's Mnemonic names), for traces and the decoder cross-check. */
  name = '';
  /** Position in its block (for the retired count when it faults). */
  idx = 0;
  /** Linear address of this instruction and of the next one. */
  lo = 0; hi = 0;
  nextLo = 0; nextHi = 0;
  len = 0;
  bytes: Uint8Array = new Uint8Array(0);
  /** The handler sets RIP itself (control transfers). */
  flow = false;
  /** Ends its block (control transfers, mode changes, owner interaction, #UD). */
  end = false;
  /** Interrupts stay inhibited for one more instruction after this one (STI, MOV SS, POP SS). */
  setsShadow = false;
  /** Operand size in bytes (1, 2, 4, 8) and address size (2, 4, 8). */
  osz = 4;
  asz = 4;
  /** ModRM.reg with REX.R (or the register encoded in the opcode byte). */
  reg = 0;
  /** ModRM.rm register with REX.B when mod = 3, else -1 (memory operand). */
  rm = -1;
  /** Byte-register codes for reg and rm: 0..15 low bytes, 16..19 AH CH DH BH. */
  reg8 = 0;
  rm8 = 0;
  /** ModRM.reg without REX (group extension), and the whole ModRM byte (-1 if none). */
  ext = 0;
  modrm = -1;
  // Memory operand.
  seg = DS;
  /** A segment override prefix was present (matters for string ops' source). */
  segOverride = false;
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  /** RIP-relative operands: the absolute address, computed at decode. */
  absLo = 0;
  absHi = 0;
  ea: EaFn = noEa;
  // Immediates.
  imm = 0;
  immHi = 0;
  imm2 = 0;
  /** 0 none, 1 REP/REPE (F3), 2 REPNE (F2). */
  rep = 0;
  lock = false;
  rex = 0;
  /** Opcode: map << 8 | byte (map 0 one-byte, 1 = 0F, 2 = 0F38, 3 = 0F3A). */
  op = 0;
  /** Mandatory/last SIMD prefix: 0, 0x66, 0xF3, 0xF2. */
  pfx = 0;
}
