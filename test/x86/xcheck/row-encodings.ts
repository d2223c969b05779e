/**
 * Encodings synthesised from our opcode table (src/x86/opcode-table.ts): for
 * every registered row, instruction bytes that select it, with register and
 * memory ModRM forms and operand/address-size and REX.W prefixes. Real code
 * never uses some of these forms, so the table test complements the corpus:
 * every row we claim to decode is compared with iced-x86 in every mode.
 */
import '../../../src/x86/ops/index.js';
import type { CodeSize } from '../../../src/x86/disasm.js';
import { allRows, type Row } from '../../../src/x86/opcode-table.js';

export interface RowEncoding {
  /** Opcode spec of the row, e.g. "0F B6" or "80/7", for reports. */
  spec: string;
  rowName: string;
  bits: CodeSize;
  bytes: Uint8Array;
}

/** Bytes after the ModRM form: immediates (up to 8 bytes) and padding, distinct so misreads show. */
const TAIL = [0x11, 0x22, 0x33, 0x44, 0x55, 0x99, 0x77, 0x08, 0x19, 0x2a];

/**
 * Register field when the row leaves it free: 2 is a valid control register
 * (CR2), debug register (DR2) and segment register (SS) as well as a GPR.
 */
const FREE_REG = 2;

function modrmForms(r: Row): number[][] {
  if (!r.modrm) return [[]];
  if (r.fixedModrm >= 0) return [[r.fixedModrm]];
  const reg = (r.ext >= 0 ? r.ext : FREE_REG) << 3;
  const regForm = [[0xc0 | reg | 1]];
  // [rm=0] (no displacement), [SIB + disp8] (rm=4), [disp32 / RIP+disp32 / disp16] (mod 0, rm 5 or 6).
  const memForms = [[reg | 0], [0x44 | reg, 0x24], [reg | 5], [reg | 6], [0x80 | reg | 3]];
  return r.mod === 'r' ? regForm : r.mod === 'm' ? memForms : [...regForm, ...memForms];
}

function opcodeBytes(key: number): number[] {
  const map = key >> 8, op = key & 0xff;
  return map === 0 ? [op] : map === 1 ? [0x0f, op] : map === 2 ? [0x0f, 0x38, op] : [0x0f, 0x3a, op];
}

function specOf(key: number, r: Row): string {
  const hex = (b: number): string => b.toString(16).toUpperCase().padStart(2, '0');
  const pfx = r.pfx > 0 ? `${hex(r.pfx)} ` : r.pfx === 0 ? 'NP ' : '';
  const modrm = r.fixedModrm >= 0 ? ` ${hex(r.fixedModrm)}` : r.ext >= 0 ? `/${r.ext}` : '';
  return `${pfx}${opcodeBytes(key).map(hex).join(' ')}${modrm}${r.mod ? `.${r.mod}` : ''}`;
}

/** Every synthesised encoding of every row, in 16-, 32- and 64-bit mode. */
export function rowEncodings(): RowEncoding[] {
  const out: RowEncoding[] = [];
  for (const [key, rows] of allRows()) {
    for (const r of rows) {
      // Prefix sets: none; operand-size 66 and REP F3 (not where a mandatory prefix is part
      // of the opcode: "NP" rows and F2/F3/66 rows; F3 turns some opcodes into others, e.g.
      // TZCNT, PAUSE, ERETU); address-size 67; LOCK (valid only on the lockable forms with a
      // memory destination, SDM vol. 2 "LOCK"); REX.W in 64-bit mode.
      const variants: number[][] = [[]];
      if (r.pfx < 0) variants.push([0x66], [0xf3]);
      variants.push([0x67], [0xf0]);
      for (const bits of [16, 32, 64] as const) {
        for (const v of bits === 64 ? [...variants, [0x48]] : variants) {
          for (const form of modrmForms(r)) {
            const mandatory = r.pfx > 0 ? [r.pfx] : [];
            // The mandatory prefix first, so REX (in v) stays right before the opcode.
            const bytes = [...mandatory, ...v, ...opcodeBytes(key), ...form, ...TAIL];
            out.push({ spec: specOf(key, r), rowName: r.name, bits, bytes: Uint8Array.from(bytes) });
          }
        }
      }
    }
  }
  return out;
}
