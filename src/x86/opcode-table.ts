/**
 * The opcode table: one row per instruction form, registered by the files in
 * ops/. The decoder and the decoder cross-check both read it, so what we decode
 * and what we claim to decode cannot drift apart (DESIGN §7, Spike style).
 *
 * A row is keyed by an opcode spec string:
 *   "01"          one-byte opcode
 *   "0F AF"       two-byte opcode; "0F 38 F0", "0F 3A 0F" three-byte
 *   "80/7"        ModRM.reg must be 7 (group member)
 *   "0F 01 D0"    the whole ModRM byte is fixed
 *   "66 0F 6F"    mandatory prefix (66, F3 or F2); "NP 0F 28" means none of them
 *   "+r" suffix   register in the low 3 opcode bits ("B8+r" registers B8..BF)
 * Flags: ".m" / ".r" after the spec restrict ModRM.mod to memory / register.
 */
import type { Handler, Insn } from './insn.js';

export type ImmKind = 'ib' | 'iw' | 'iz' | 'iv' | 'moffs' | 'far' | 'iw_ib';

export interface OpDef {
  /** Mnemonic (lower case, as iced-x86 names it). */
  name: string;
  modrm?: boolean;
  imm?: ImmKind;
  /** Byte operation (operand size 1). */
  byte?: boolean;
  /** 'd64': default operand size 64 in 64-bit mode (push, pop, ...); 'f64': always 64 there (near branches). */
  size?: 'd64' | 'f64';
  /** Handler sets RIP. */
  flow?: boolean;
  /** Ends the block after this instruction (mode changes, owner interaction). */
  end?: boolean;
  /** Sets an interrupt shadow. */
  shadow?: boolean;
  /** Invalid in 64-bit mode. */
  no64?: boolean;
  /** Exists only in 64-bit mode (elsewhere the encoding is another, unimplemented instruction: #UD). */
  only64?: boolean;
  /** ModRM.mod is ignored and r/m always names a register (MOV to/from CR/DR). */
  regOnly?: boolean;
  /** A LOCK prefix is allowed (with a memory destination). */
  lockable?: boolean;
  /** The handler, or a function choosing one for the decoded instruction. */
  exec?: Handler;
  bind?: (i: Insn) => Handler;
}

export interface Row extends OpDef {
  ext: number;      // required ModRM.reg or -1
  fixedModrm: number; // required whole ModRM byte or -1
  mod: '' | 'm' | 'r';
  pfx: number;      // -1 any, 0 none, 0x66, 0xF3, 0xF2
}

const rows = new Map<number, Row[]>();

function hex(t: string): number {
  const v = parseInt(t, 16);
  if (!/^[0-9A-Fa-f]{2}$/.test(t) || Number.isNaN(v)) throw new Error(`bad opcode byte '${t}'`);
  return v;
}

/** Registers one instruction form. */
export function def(spec: string, d: OpDef): void {
  let s = spec.trim();
  let mod: '' | 'm' | 'r' = '';
  if (s.endsWith('.m')) { mod = 'm'; s = s.slice(0, -2); } else if (s.endsWith('.r')) { mod = 'r'; s = s.slice(0, -2); }
  let plusR = false;
  if (s.endsWith('+r')) { plusR = true; s = s.slice(0, -2); }
  let ext = -1;
  const slash = s.indexOf('/');
  if (slash >= 0) { ext = Number(s.slice(slash + 1)); s = s.slice(0, slash); }
  const toks = s.split(/\s+/);
  let pfx = -1;
  if (toks[0] === 'NP') { pfx = 0; toks.shift(); } else if (toks.length > 1 && ['66', 'F3', 'F2'].includes(toks[0]) && toks[1] === '0F') {
    pfx = hex(toks.shift()!);
  }
  let map = 0;
  if (toks[0] === '0F') {
    toks.shift(); map = 1;
    const t = toks[0] as string;
    if (t === '38') { toks.shift(); map = 2; } else if (t === '3A') { toks.shift(); map = 3; }
  }
  const op = hex(toks.shift()!);
  let fixedModrm = -1;
  if (toks.length === 1) fixedModrm = hex(toks.shift()!);
  if (toks.length !== 0) throw new Error(`bad opcode spec '${spec}'`);
  if (!d.exec && !d.bind) throw new Error(`opcode ${spec} has no handler`);
  const row: Row = { ...d, ext, fixedModrm, mod, pfx, modrm: d.modrm || ext >= 0 || fixedModrm >= 0 };
  const ops = plusR ? [0, 1, 2, 3, 4, 5, 6, 7].map((k) => op + k) : [op];
  for (const o of ops) {
    const key = (map << 8) | o;
    let list = rows.get(key);
    if (list === undefined) { list = []; rows.set(key, list); }
    list.push(row);
  }
}

/** Whether any row uses this opcode with a ModRM byte (decided before reading ModRM). */
export function rowsFor(map: number, op: number): Row[] | undefined {
  return rows.get((map << 8) | op);
}

/** Picks the row for a decoded opcode, mandatory prefix and ModRM byte (-1 if none). */
export function matchRow(list: Row[], pfx: number, modrm: number): Row | undefined {
  for (const r of list) {
    if (r.pfx >= 0 && r.pfx !== pfx) continue;
    if (r.fixedModrm >= 0 && r.fixedModrm !== modrm) continue;
    if (r.ext >= 0 && ((modrm >> 3) & 7) !== r.ext) continue;
    if (r.mod === 'm' && (modrm >> 6) === 3) continue;
    if (r.mod === 'r' && (modrm >> 6) !== 3) continue;
    return r;
  }
  return undefined;
}

/** All registered rows (for the decoder cross-check and documentation). */
export function allRows(): [number, Row[]][] {
  return [...rows.entries()];
}
