/**
 * Disassembly for traces and crash diagnoses, in Intel syntax, through iced-x86
 * (DESIGN §3.8). iced-x86 is a CommonJS package that instantiates a WebAssembly
 * module when first required, so it is loaded lazily on the first call: nothing
 * on the execution hot path (decoder, block cache) imports or pays for it.
 * Our own decoder (decoder.ts) executes; this file only prints.
 */
import { createRequire } from 'node:module';

export type Iced = typeof import('iced-x86');
export type CodeSize = 16 | 32 | 64;

/** Bad arguments to the disassembler (not bad instruction bytes: those print as "(bad)"). */
export class DisasmInputError extends Error {
  override name = 'DisasmInputError';
}

/** One disassembled instruction. */
export interface DisasmLine {
  rip: bigint;
  /** The instruction's bytes (for an invalid or truncated one, what iced-x86 consumed). */
  bytes: Uint8Array;
  /** Intel syntax, e.g. "mov rax, qword ptr [rsp+0x8]"; "(bad)" when invalid. */
  text: string;
  valid: boolean;
}

let iced: Iced | undefined;

/** The iced-x86 module, loaded (and its wasm compiled) on first use. */
export function icedModule(): Iced {
  if (iced === undefined) iced = createRequire(import.meta.url)('iced-x86') as Iced;
  return iced;
}

let formatter: InstanceType<Iced['Formatter']> | undefined;

function intelFormatter(m: Iced): InstanceType<Iced['Formatter']> {
  if (formatter === undefined) {
    // Kept for the life of the process: one small wasm object, reused by every call.
    formatter = new m.Formatter(m.FormatterSyntax.Intel);
    formatter.hexPrefix = '0x';
    formatter.hexSuffix = '';
    formatter.uppercaseHex = false;
    formatter.spaceAfterOperandSeparator = true;
    formatter.branchLeadingZeros = false;
  }
  return formatter;
}

const RIP_LIMIT = 1n << 64n;

function checkArgs(bytes: Uint8Array, codeSize: number, rip: bigint | number): bigint {
  if (!(bytes instanceof Uint8Array)) throw new DisasmInputError('disassemble needs the instruction bytes as a Uint8Array.');
  if (codeSize !== 16 && codeSize !== 32 && codeSize !== 64) {
    throw new DisasmInputError(`code size ${codeSize} is not 16, 32 or 64.`);
  }
  if (typeof rip === 'number' && (!Number.isSafeInteger(rip) || rip < 0)) {
    throw new DisasmInputError(`rip ${rip} is not a non-negative integer below 2^53 (pass a bigint for larger addresses).`);
  }
  const r = BigInt(rip);
  if (r < 0n || r >= RIP_LIMIT) throw new DisasmInputError(`rip 0x${r.toString(16)} is not a 64-bit address.`);
  return r;
}

/** Decodes every instruction in `bytes` (the first at `rip`) and formats each. */
export function disassembleLines(bytes: Uint8Array, codeSize: CodeSize, rip: bigint | number = 0n): DisasmLine[] {
  const start = checkArgs(bytes, codeSize, rip);
  const m = icedModule();
  const fmt = intelFormatter(m);
  const out: DisasmLine[] = [];
  if (bytes.length === 0) return out;
  const decoder = new m.Decoder(codeSize, bytes, m.DecoderOptions.None);
  const insn = new m.Instruction();
  try {
    decoder.ip = start;
    while (decoder.canDecode) {
      const pos = decoder.position;
      decoder.decodeOut(insn);
      const len = insn.length;
      out.push({
        rip: insn.ip,
        bytes: bytes.slice(pos, pos + len),
        text: fmt.format(insn),
        valid: !insn.isInvalid,
      });
    }
  } finally {
    // wasm memory is not garbage-collected: free what this call created.
    insn.free();
    decoder.free();
  }
  return out;
}

/** Intel-syntax text of the instruction(s) in `bytes`, one line per instruction. */
export function disassemble(bytes: Uint8Array, codeSize: CodeSize, rip: bigint | number = 0n): string {
  return disassembleLines(bytes, codeSize, rip).map((l) => l.text).join('\n');
}

/** A listing for crash reports: "address  bytes  text" per instruction. */
export function disassembleListing(bytes: Uint8Array, codeSize: CodeSize, rip: bigint | number = 0n): string {
  const width = codeSize === 64 ? 16 : 8;
  return disassembleLines(bytes, codeSize, rip).map((l) => {
    const hex = [...l.bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    // Bytes padded for up to 10-byte instructions; longer ones push their text right.
    return `${l.rip.toString(16).padStart(width, '0')}  ${hex.padEnd(30)} ${l.text}`;
  }).join('\n');
}
