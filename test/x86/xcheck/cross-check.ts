/**
 * The decoder cross-check (issue 2, DESIGN §3.8): walks machine code with
 * iced-x86 as the oracle and decodes every instruction with our decoder too.
 * The walk follows iced's lengths, so one disagreement cannot desynchronise the
 * rest. For each instruction iced decodes validly, our decoder either declines
 * it ('(bad)': a gap, counted per mnemonic) or must agree on length and
 * operation (mnemonic). Shared by test/x86/decoder-xcheck.test.ts and
 * bench/decoder-coverage.ts.
 */
import { icedModule, type CodeSize, type Iced } from '../../../src/x86/disasm.js';
import '../../../src/x86/ops/index.js';
import { decode } from '../../../src/x86/decoder.js';
import { CpuFault } from '../../../src/x86/fault.js';
import type { Insn } from '../../../src/x86/insn.js';
import { UD } from '../../../src/x86/regs.js';

/**
 * iced-x86 mnemonic (lower case) -> our name, only where the two legitimately
 * name the same operation differently. Each entry says why.
 */
export const MNEMONIC_ALIASES: ReadonlyMap<string, string> = new Map([
  // 0F 18-0F 1F without a more specific meaning (prefetch, endbr, multi-byte NOP
  // 0F 1F /0) is the reserved/hint-NOP space (SDM vol. 2 Table A-3, "NOP" and
  // "Reserved-NOP"). iced's Mnemonic enum calls it Reservednop while its own
  // formatter prints "nop"; we decode it as 'nop', which is what it executes as.
  ['reservednop', 'nop'],
  // F3 0F 1E /1 (mod 3) is RDSSPD/RDSSPQ, which executes as a NOP while CET shadow stacks
  // are not enabled (SDM vol. 2 RDSSPD/RDSSPQ); our CPU has no CET, so it is a NOP here.
  // gcc's unwinder (libgcc) contains it.
  ['rdsspd', 'nop'],
  ['rdsspq', 'nop'],
  // F3 0F 09 is WBNOINVD (SDM vol. 2, CPUID feature flag WBNOINVD); a processor without
  // that feature decodes it as WBINVD with an ignored F3 prefix (the processor iced models
  // with DecoderOptions.NoWbnoinvd). Ours is such a processor; without caches both are no-ops.
  ['wbnoinvd', 'wbinvd'],
]);

/** Instructions whose defined operation is raising #UD (SDM vol. 2 "UD"): agreeing on them means raising it. */
const UD_BY_DEFINITION = new Set(['ud0', 'ud1', 'ud2']);

/** Our decoder's name for the instruction iced names `icedName`. */
export function expectedName(icedName: string): string {
  return MNEMONIC_ALIASES.get(icedName) ?? icedName;
}

/** One instruction on which the two decoders disagree. */
export interface Disagreement {
  corpus: string;
  bits: CodeSize;
  /** Offset of the instruction in its code buffer. */
  offset: number;
  hex: string;
  icedText: string;
  icedName: string;
  icedLen: number;
  /** Our name ('(bad)', '(too long)', or the mnemonic, with " (#UD)" when it raises #UD). */
  ourName: string;
  ourLen: number;
  /** Our decoded operands: reg, r/m register or memory operand (base, index, scale, disp), immediate. */
  ourOperands: string;
  /**
   * For an instruction iced decodes: 'length', 'operation' (mnemonic), or 'rejects-valid' (same
   * length and mnemonic, but ours raises #UD whatever the CPU state). 'accepts-invalid': iced says
   * invalid (#UD on hardware) and ours would execute it.
   */
  kind: 'length' | 'operation' | 'rejects-valid' | 'accepts-invalid';
}

export interface CheckStats {
  /** Instructions iced decoded validly. */
  icedValid: number;
  /** Byte sequences iced reports as invalid (data in .text, foreign-mode code). */
  icedInvalid: number;
  /** An instruction cut off by the end of the buffer (not compared: the bytes that follow are unknown). */
  truncated: number;
  /** Of icedValid: decoded by us (not '(bad)'). */
  oursDecoded: number;
  /** Of oursDecoded: same length and operation. */
  agree: number;
  /** Of icedValid: '(bad)' in our decoder, per iced mnemonic. */
  gaps: Map<string, number>;
  /** Disagreements no known decoder bug explains; the first `keepDisagreements` are kept in `disagreements`. */
  disagreementCount: number;
  /** Unexplained disagreements by kind. */
  byKind: Map<Disagreement['kind'], number>;
  disagreements: Disagreement[];
  /** Disagreements explained by a known decoder bug: count and first instance per bug. */
  explained: Map<string, number>;
  explainedSample: Map<string, Disagreement>;
}

export function emptyStats(): CheckStats {
  return {
    icedValid: 0, icedInvalid: 0, truncated: 0, oursDecoded: 0, agree: 0, gaps: new Map(),
    disagreementCount: 0, byKind: new Map(), disagreements: [], explained: new Map(), explainedSample: new Map(),
  };
}

export function mergeStats(into: CheckStats, s: CheckStats): void {
  into.icedValid += s.icedValid; into.icedInvalid += s.icedInvalid; into.truncated += s.truncated;
  into.oursDecoded += s.oursDecoded; into.agree += s.agree;
  for (const [k, n] of s.gaps) into.gaps.set(k, (into.gaps.get(k) ?? 0) + n);
  into.disagreementCount += s.disagreementCount;
  for (const [k, n] of s.byKind) into.byKind.set(k, (into.byKind.get(k) ?? 0) + n);
  into.disagreements.push(...s.disagreements);
  for (const [k, n] of s.explained) into.explained.set(k, (into.explained.get(k) ?? 0) + n);
  for (const [k, d] of s.explainedSample) if (!into.explainedSample.has(k)) into.explainedSample.set(k, d);
}

export function hexOf(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** Decodes with our decoder the instruction at `pos` of `code` (bytes past the end read as 0). */
export function decodeOurs(code: Uint8Array, pos: number, bits: CodeSize): Insn {
  return decode({ byteAt: (k) => (pos + k < code.length ? code[pos + k] : 0) }, bits, 0, 0);
}

/**
 * A CPU stand-in that only knows its code size and fails on any other use, so a
 * handler that raises an exception from the decode and the mode alone (#UD for
 * an undefined or mode-invalid form, #GP(0) for a too-long one) can be observed
 * without a machine.
 */
const UNTOUCHED = { untouched: true };
const probes = new Map<CodeSize, object>();
function probeCpu(bits: CodeSize): object {
  let p = probes.get(bits);
  if (p === undefined) {
    p = new Proxy({}, {
      get: (_t, k) => { if (k === 'codeSize') return bits; throw UNTOUCHED; },
      set: () => { throw UNTOUCHED; },
    });
    probes.set(bits, p);
  }
  return p;
}

/** The exception our decoded instruction raises before touching any CPU state, or undefined. */
export function faultFromDecode(i: Insn, bits: CodeSize): CpuFault | undefined {
  try {
    i.exec(probeCpu(bits) as never, i);
  } catch (e) {
    if (e instanceof CpuFault) return e;
  }
  return undefined;
}

/** Whether our decoded instruction raises #UD (decided from the decode and the mode alone). */
export function raisesUd(i: Insn, bits: CodeSize): boolean {
  return i.name === '(bad)' || faultFromDecode(i, bits)?.vector === UD;
}

/** Our decoder's answer, marking forms that raise #UD. */
function ourLabel(i: Insn, bits: CodeSize): string {
  return i.name === '(bad)' || i.name === '(too long)' ? i.name : raisesUd(i, bits) ? `${i.name} (#UD)` : i.name;
}

/** Our decoded operands in register numbers (base -1: none, -2: RIP-relative). */
function ourOperands(i: Insn): string {
  const h = (v: number): string => `0x${(v >>> 0).toString(16)}`;
  const parts = [`osz ${i.osz}`, `asz ${i.asz}`];
  if (i.modrm >= 0) {
    parts.push(`reg ${i.reg}`);
    parts.push(i.rm >= 0 ? `rm ${i.rm}` : `mem base ${i.base} index ${i.index} scale ${1 << i.scale} disp ${h(i.disp)}`);
  }
  if (i.imm !== 0 || i.immHi !== 0) parts.push(`imm ${h(i.imm)}${i.immHi !== 0 && i.immHi !== -1 ? ` hi ${h(i.immHi)}` : ''}`);
  return parts.join(', ');
}

export interface WalkOptions {
  /** Corpus name, for reports. */
  corpus: string;
  bits: CodeSize;
  /** Stop after this many instructions (iced's count, valid or not). */
  maxInstructions?: number;
  /** Keep at most this many unexplained disagreements in full (all are counted). */
  keepDisagreements?: number;
  /** Names the known decoder bug that explains a disagreement, if one does. */
  explain?: (d: Disagreement) => string | undefined;
}

/** Cross-checks every instruction of `code`; returns the counts. */
export function crossCheck(code: Uint8Array, opt: WalkOptions): CheckStats {
  const m: Iced = icedModule();
  const st = emptyStats();
  if (code.length === 0) return st;
  const max = opt.maxInstructions ?? Infinity;
  const keep = opt.keepDisagreements ?? 1000;
  const dec = new m.Decoder(opt.bits, code, m.DecoderOptions.None);
  const ins = new m.Instruction();
  let fmt: InstanceType<Iced['Formatter']> | undefined;
  try {
    for (let n = 0; n < max && dec.canDecode; n++) {
      const pos = dec.position;
      dec.decodeOut(ins);
      const len = ins.length;
      if (ins.isInvalid && dec.lastError === m.DecoderError.NoMoreBytes) {
        st.truncated++;
        continue;
      }
      const ours = decodeOurs(code, pos, opt.bits);
      let kind: Disagreement['kind'];
      let icedName: string;
      if (ins.isInvalid) {
        st.icedInvalid++;
        // iced's INVALID raises #UD on hardware (#GP(0) when longer than 15 bytes): we must not
        // execute it. '(too long)' raises #GP(0), '(bad)' #UD.
        if (ours.name === '(too long)' || raisesUd(ours, opt.bits)) continue;
        kind = 'accepts-invalid';
        icedName = '(bad)';
      } else {
        st.icedValid++;
        icedName = m.Mnemonic[ins.mnemonic].toLowerCase();
        if (ours.name === '(bad)') {
          st.gaps.set(icedName, (st.gaps.get(icedName) ?? 0) + 1);
          continue;
        }
        st.oursDecoded++;
        if (ours.len !== len) kind = 'length';
        else if (ours.name !== expectedName(icedName)) kind = 'operation';
        else if (raisesUd(ours, opt.bits) && !UD_BY_DEFINITION.has(icedName)) kind = 'rejects-valid';
        else { st.agree++; continue; }
      }
      fmt ??= new m.Formatter(m.FormatterSyntax.Intel);
      const d: Disagreement = {
        corpus: opt.corpus, bits: opt.bits, offset: pos, hex: hexOf(code.subarray(pos, pos + Math.max(len, ours.len))),
        icedText: fmt.format(ins), icedName, icedLen: len, ourName: ourLabel(ours, opt.bits), ourLen: ours.len,
        ourOperands: ourOperands(ours), kind,
      };
      const bug = opt.explain?.(d);
      if (bug !== undefined) {
        st.explained.set(bug, (st.explained.get(bug) ?? 0) + 1);
        if (!st.explainedSample.has(bug)) st.explainedSample.set(bug, d);
        continue;
      }
      st.byKind.set(kind, (st.byKind.get(kind) ?? 0) + 1);
      if (st.disagreementCount++ < keep) st.disagreements.push(d);
    }
  } finally {
    fmt?.free();
    ins.free();
    dec.free();
  }
  return st;
}

/** The `n` most frequent gaps, most frequent first. */
export function topGaps(st: CheckStats, n: number): [string, number][] {
  return [...st.gaps].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
}

export function describe(d: Disagreement): string {
  return `[${d.corpus} +0x${d.offset.toString(16)}, ${d.bits}-bit] ${d.hex}: iced "${d.icedText}" (${d.icedName}, ${d.icedLen} bytes)` +
    ` vs ours "${d.ourName}" (${d.ourLen} bytes; ${d.ourOperands}) — ${d.kind}`;
}
