/**
 * Builds one test case: random initial state (all 16 GPRs, status flags and
 * DF, the whole data window), the snippet text, and what the comparison must
 * ignore. Form generators pick operands through it so that registers with a
 * fixed role (counts, implicit operands, addresses, the stack pointer) are
 * never overwritten by another choice.
 */
import { INPUT_FLAGS, RFLAGS_FIXED1, STATUS } from './flag-masks.js';
import type { HostCpu } from './host-cpu.js';
import { RSP, ptrKeyword, reg, regName, regShift, sizeMask, type OpSize, type RegOperand } from './regs.js';
import type { Rng } from './rng.js';
import { DATA_BASE, DATA_SIZE } from './snippet-contract.js';

const MASK64 = (1n << 64n) - 1n;
const MASK32 = (1n << 32n) - 1n;

export interface GeneratedCase {
  readonly lines: readonly string[];
  readonly forced: readonly bigint[];
  readonly ripTargets: readonly bigint[];
  readonly gpr: BigUint64Array;
  readonly rflags: bigint;
  readonly mem: Uint8Array;
  /** Status flags compared after the snippet (DF and bit 1 are always compared). */
  readonly definedFlags: number;
  /** Per GPR, bits excluded from the comparison (architecturally undefined or vendor-specific). */
  readonly regIgnore: BigUint64Array;
  /** Per data-window byte offset, bits excluded from the comparison. */
  readonly memIgnore: ReadonlyMap<number, number>;
  /** Adjustments that need the assembled length (jump and call targets); run once before the case executes. */
  readonly afterAssembly: ReadonlyArray<AfterAssembly>;
  readonly notes: readonly string[];
}

/** Fix-up of the built case's initial state once the snippet's length is known. */
export type AfterAssembly = (codeLength: number, gpr: BigUint64Array, mem: Uint8Array) => void;

/** The snippet as a person reads it: %F tokens replaced by their values, %RIP by the target. */
export function displayLines(c: GeneratedCase): string[] {
  return c.lines.map((l) => l.replace(/%F(\d+)/g, (_, n: string) => String(c.forced[Number(n)]))
    .replace(/%RIP(\d+)/g, (_, n: string) => `(0x${c.ripTargets[Number(n)].toString(16)} - end)`));
}

export interface MemOperand {
  /** Intel-syntax operand, e.g. `dword ptr [rbx + rcx*4 - 0x10]`. */
  readonly text: string;
  /** Offset of the accessed address inside the data window (may be outside [0, 4096) for fault tests). */
  readonly offset: number;
  readonly base: number | null;
  readonly index: number | null;
}

export interface MemOptions {
  /** Alignment of the accessed address (default 1). */
  align?: number;
  /** Bytes from the address that must stay inside the window (default: the operand size). */
  span?: number;
  /** Window range the access must lie in (default the whole window). */
  lo?: number;
  hi?: number;
  /** Exact window offset of the address (may lie outside the window, for fault tests). */
  offset?: number;
  /** Exact absolute address (for fault tests: guard pages, non-canonical addresses). */
  address?: bigint;
  /** true: 32-bit address size (0x67); false: 64-bit; default: 15% of cases use 0x67. */
  addr32?: boolean;
  /** Include the `dword ptr` size keyword (default true). */
  ptr?: boolean;
  /** Allow rip-relative addressing: only when this operand is in the snippet's last instruction. */
  allowRip?: boolean;
  /** Registers that must not serve as base or index. */
  exclude?: readonly number[];
}

type AddrMode = 'b' | 'bd' | 'bisd' | 'isd' | 'abs' | 'rip';

function hexDisp(v: bigint): string {
  return v < 0n ? ` - 0x${(-v).toString(16)}` : ` + 0x${v.toString(16)}`;
}

export class CaseBuilder {
  private readonly regs: bigint[] = [];
  rflags: number;
  readonly mem = new Uint8Array(DATA_SIZE);
  private readonly reserved = new Set<number>();
  private readonly used = new Set<number>();
  private readonly lines: string[] = [];
  private readonly forced: bigint[] = [];
  private readonly ripTargets: bigint[] = [];
  private defined = STATUS;
  private readonly regIgnore = new BigUint64Array(16);
  private readonly memIgnore = new Map<number, number>();
  private readonly after: AfterAssembly[] = [];
  private readonly notes: string[] = [];
  /** Byte-register family of this case: legacy (AH..BH possible, no REX anywhere) or REX. */
  private byteLegacy: boolean | null = null;
  /** A memory operand already uses R8-R15 (needs REX), so AH..BH are no longer encodable. */
  private rexAddress = false;

  constructor(readonly rng: Rng, readonly index: number, readonly host: HostCpu) {
    for (let i = 0; i < 16; i++) this.regs.push(rng.regValue());
    this.rflags = (rng.u32() & INPUT_FLAGS) | RFLAGS_FIXED1;
    rng.fill(this.mem);
  }

  /** Round-robin choice by case number, so every option is covered within a few cases. */
  cycle<T>(options: readonly T[]): T {
    return options[this.index % options.length];
  }

  // ---- registers -------------------------------------------------------

  getReg(index: number): bigint {
    return this.regs[index];
  }

  setReg(index: number, value: bigint): void {
    this.regs[index] = value & MASK64;
  }

  /** Give a register a fixed role (implicit operand, count, address); later picks leave its value alone. */
  reserve(index: number, value?: bigint): void {
    if (value !== undefined) this.setReg(index, value);
    this.reserved.add(index);
    this.used.add(index);
  }

  isReserved(index: number): boolean {
    return this.reserved.has(index);
  }

  /**
   * A random register operand of `size` bytes. Byte registers follow one
   * encoding family per case: legacy (AL..BL, AH..BH, no REX) or REX (AL..R15B,
   * SPL..DIL), since AH..BH cannot be encoded together with a REX prefix.
   */
  pickReg(size: OpSize, opts: { exclude?: readonly number[]; noHigh?: boolean; noRex?: boolean } = {}): RegOperand {
    const exclude = new Set(opts.exclude ?? []);
    if (size === 1) {
      if (this.byteLegacy === null) this.byteLegacy = !this.rexAddress && (opts.noRex === true || (opts.noHigh !== true && this.rng.chance(0.5)));
      if (this.byteLegacy) {
        const choices: RegOperand[] = [];
        for (let i = 0; i < 4; i++) {
          if (exclude.has(i)) continue;
          choices.push(reg(i, 1));
          if (opts.noHigh !== true) choices.push(reg(i, 1, true));
        }
        const r = this.rng.pick(choices);
        this.used.add(r.index);
        return r;
      }
    }
    const limit = opts.noRex === true ? 8 : 16;
    const choices = Array.from({ length: limit }, (_, i) => i).filter((i) => !exclude.has(i));
    const r = reg(this.rng.pick(choices), size);
    this.used.add(r.index);
    return r;
  }

  /** Two operands of one size; sometimes the same register twice (xor eax,eax; xchg; xadd). */
  pickRegPair(size: OpSize, opts: { exclude?: readonly number[]; noHigh?: boolean } = {}): [RegOperand, RegOperand] {
    const a = this.pickReg(size, opts);
    if (this.rng.chance(0.12)) return [a, a];
    return [a, this.pickReg(size, opts)];
  }

  /** Value of an operand's bits. */
  val(r: RegOperand): bigint {
    return (this.regs[r.index] >> regShift(r)) & sizeMask(r.size);
  }

  /** Write an operand's bits (other bits of the register keep their random value) unless the register is reserved. */
  setVal(r: RegOperand, value: bigint): void {
    if (this.reserved.has(r.index)) return;
    const shift = regShift(r);
    const mask = sizeMask(r.size) << shift;
    this.regs[r.index] = (this.regs[r.index] & ~mask & MASK64) | ((value << shift) & mask);
  }

  /** Give an operand an edge-biased random value. */
  randomize(r: RegOperand): void {
    this.setVal(r, this.rng.value(r.size * 8));
  }

  // ---- memory ----------------------------------------------------------

  readMem(offset: number, size: number): bigint {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.mem[offset + i]);
    return v;
  }

  writeMem(offset: number, size: number, value: bigint): void {
    for (let i = 0; i < size; i++) this.mem[offset + i] = Number((value >> BigInt(8 * i)) & 0xffn);
  }

  private freeRegs(exclude: readonly number[], avoidUsed: boolean): number[] {
    const all = Array.from({ length: 16 }, (_, i) => i).filter((i) => !this.reserved.has(i) && !exclude.includes(i));
    const fresh = all.filter((i) => !this.used.has(i));
    return avoidUsed && fresh.length >= 2 ? fresh : all;
  }

  /**
   * A memory operand addressing the data window through a random addressing
   * form (base, base+disp, base+index*scale+disp, index*scale+disp32, absolute
   * disp32, rip-relative, 32-bit address size). The base and index registers get
   * values (random in the bits the address computation ignores) that land on the
   * chosen target, and are reserved.
   */
  memOp(size: number, opts: MemOptions = {}): MemOperand {
    const align = opts.align ?? 1;
    const span = opts.span ?? size;
    let offset: number;
    if (opts.address !== undefined) offset = Number(opts.address - DATA_BASE);
    else if (opts.offset !== undefined) offset = opts.offset;
    else {
      const lo = opts.lo ?? 0;
      const hi = (opts.hi ?? DATA_SIZE) - span;
      if (hi < lo) throw new RangeError(`no room for a ${span}-byte access in [${opts.lo ?? 0}, ${opts.hi ?? DATA_SIZE})`);
      offset = this.rng.range(Math.ceil(lo / align), Math.floor(hi / align)) * align;
    }
    const target = opts.address ?? DATA_BASE + BigInt(offset);
    // Absolute and index-only forms need the whole displacement in a signed 32-bit field.
    const inLow2G = target >= 0n && target < 0x7f000000n;
    const addr32 = opts.addr32 ?? (target <= MASK32 && this.rng.chance(0.15));
    const modes: AddrMode[] = ['b', 'bd', 'bd', 'bisd', 'bisd', 'bisd'];
    if (inLow2G) modes.push('isd');
    if (inLow2G && !addr32) modes.push('abs');
    if (opts.allowRip === true && !addr32 && target >= 0n && target < 0x40000000n) modes.push('rip');
    const mode = this.rng.pick(modes);
    // With AH..BH in the instruction no REX prefix is possible: address through RAX..RDI only.
    const exclude = this.byteLegacy === true ? [...(opts.exclude ?? []), 8, 9, 10, 11, 12, 13, 14, 15] : opts.exclude ?? [];
    const ptr = opts.ptr === false ? '' : `${ptrKeyword(size)} `;
    const width = addr32 ? 4 : 8;
    const wrap = addr32 ? MASK32 : MASK64;
    const regValue = (low: bigint): bigint => (addr32 ? (this.rng.bits(32) << 32n) | (low & MASK32) : low & MASK64);

    if (mode === 'abs') return { text: `${ptr}[0x${target.toString(16)}]`, offset, base: null, index: null };
    if (mode === 'rip') return { text: `${ptr}[rip + ${this.ripTo(target)}]`, offset, base: null, index: null };

    const scale = BigInt(this.rng.pick([1, 2, 4, 8]));
    if (mode === 'isd') {
      const idx = this.rng.pick(this.freeRegs([...exclude, RSP], true));
      const k = BigInt(this.rng.range(-(1 << 20), 1 << 20));
      const disp = target - k * scale;
      this.reserve(idx, regValue(k));
      if (idx >= 8) this.rexAddress = true;
      return { text: `${ptr}[${regName(idx, width)}*${scale}${hexDisp(disp)}]`, offset, base: null, index: idx };
    }
    const base = this.rng.pick(this.freeRegs(exclude, this.rng.chance(0.9)));
    let disp = 0n;
    if (mode !== 'b') disp = this.rng.chance(0.55) ? BigInt(this.rng.range(-128, 127)) : BigInt(this.rng.range(-0x7fffffff, 0x7fffffff));
    let text = regName(base, width);
    let baseLow = target - disp;
    let index: number | null = null;
    if (mode === 'bisd') {
      const candidates = this.freeRegs([...exclude, RSP, base], true);
      index = this.rng.pick(candidates);
      const idxVal = this.rng.regValue();
      baseLow -= (addr32 ? idxVal & MASK32 : idxVal) * scale;
      this.reserve(index, regValue(idxVal));
      text += ` + ${regName(index, width)}*${scale}`;
    }
    this.reserve(base, regValue(baseLow & wrap));
    if (base >= 8 || (index !== null && index >= 8)) this.rexAddress = true;
    if (disp !== 0n) text += hexDisp(disp);
    return { text: `${ptr}[${text}]`, offset, base, index };
  }

  /** Point RSP into the data window (8-byte aligned, sometimes not) and reserve it; returns its window offset. */
  stack(opts: { lo?: number; hi?: number; misalign?: boolean } = {}): number {
    const lo = opts.lo ?? 0x600;
    const hi = opts.hi ?? 0xa00;
    let off = this.rng.range(lo / 8, hi / 8) * 8;
    if (opts.misalign !== false && this.rng.chance(0.1)) off += this.rng.range(1, 7);
    this.reserve(RSP, DATA_BASE + BigInt(off));
    return off;
  }

  // ---- snippet text and comparison rules -------------------------------

  emit(...lines: string[]): void {
    this.lines.push(...lines);
  }

  /** Raw bytes, for encodings GAS will not choose. */
  bytes(...b: number[]): void {
    this.lines.push(`.byte ${b.map((x) => `0x${(x & 0xff).toString(16)}`).join(', ')}`);
  }

  /** An immediate GAS must encode at full operand width (see assemble.ts). */
  forcedImm(value: bigint): string {
    this.forced.push(value);
    return `%F${this.forced.length - 1}`;
  }

  /** A rip-relative displacement reaching `target` from the end of the snippet. */
  ripTo(target: bigint): string {
    this.ripTargets.push(target);
    return `%RIP${this.ripTargets.length - 1}`;
  }

  setDefinedFlags(mask: number): void {
    this.defined = mask & STATUS;
  }

  ignoreRegBits(index: number, mask: bigint): void {
    this.regIgnore[index] |= mask & MASK64;
  }

  ignoreMemBits(offset: number, mask: number): void {
    this.memIgnore.set(offset, (this.memIgnore.get(offset) ?? 0) | mask);
  }

  afterAssembly(fn: AfterAssembly): void {
    this.after.push(fn);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  build(): GeneratedCase {
    if (this.lines.length === 0) throw new Error('a form generator emitted no instruction');
    return {
      lines: this.lines,
      forced: this.forced,
      ripTargets: this.ripTargets,
      gpr: BigUint64Array.from(this.regs),
      rflags: BigInt((this.rflags & INPUT_FLAGS) | RFLAGS_FIXED1),
      mem: this.mem,
      definedFlags: this.defined,
      regIgnore: this.regIgnore,
      memIgnore: this.memIgnore,
      afterAssembly: this.after,
      notes: this.notes,
    };
  }
}

export type { OpSize, RegOperand };
