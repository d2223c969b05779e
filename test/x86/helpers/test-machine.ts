/**
 * A small machine for host-level CPU tests: guest memory, a CpuHost that
 * records every owner callback, GNU-as assembly at test time, and builders for
 * the GDT, IDT, TSS and page tables, plus direct entry into each CPU mode so a
 * test starts exactly where it wants to look.
 *
 * Fixed physical layout (every test machine has it; everything below 4 MiB is
 * identity-mapped by the default page tables):
 *   0x0000 IVT      0x1000 GDT      0x2000 IDT      0x3000 TSS
 *   0x4000-0x7fff kernel stack (top KSTACK)   0x8000 user stack page (top USTACK)
 *   0x9000 IST1 stack (top IST1)   0xa000 IST2 stack (top IST2)
 *   0x10000 kernel code   0x18000 user code   0x20000 vector stubs (16 bytes each)
 *   0x30000 data   0x100000-0x1fffff page-table pool
 *
 * Vector stubs: the IDT/IVT entry of vector v points at STUBS + 16*v, which holds
 * `hlt`, then (for vectors with an error code) a pop of the error code, then the
 * mode's IRET, so a test runs until the handler halts, checks the frame, and may
 * resume to return from the handler.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PhysMemory } from '../../../src/memory/phys-memory.js';
import { Cpu, CpuRunState } from '../../../src/x86/cpu.js';
import { ACCESS_ALL, type CpuHost, type MemFaultInfo, type RegisterAccessInfo } from '../../../src/x86/host.js';
import { attrFromDescHigh, baseFromDesc, limitFromDesc } from '../../../src/x86/segment-cache.js';
import {
  CR0_ET, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_OSFXSR, CR4_PAE, CR4_PSE, CS, DS, EFER_LMA, EFER_LME,
  EFER_NXE, EFER_SCE, ES, FS, GS, LDTR, SS, TR,
} from '../../../src/x86/regs.js';

// ---------------------------------------------------------------- layout

export const IVT = 0x0000, GDT = 0x1000, IDT = 0x2000, TSS = 0x3000;
export const KSTACK = 0x8000, USTACK = 0x9000, IST1 = 0xa000, IST2 = 0xb000;
export const USTACK_PAGE = 0x8000;
export const CODE = 0x10000, UCODE = 0x18000, STUBS = 0x20000, DATA = 0x30000;
const PT_POOL = 0x100000, PT_POOL_END = 0x200000;
/** Low memory identity-mapped by the default page tables. */
export const IDENTITY_END = 0x400000;

/** Standard GDT selectors. */
export const SEL = {
  code32: 0x08, data: 0x10, code64: 0x18, code16: 0x20, data16: 0x28,
  ucode32: 0x33, udata: 0x3b, ucode64: 0x43, tss: 0x48, notPresent: 0x58, based: 0x60,
} as const;
/** Base of the `based` data segment (selector 0x60), to tell segment caches apart. */
export const BASED_SEG_BASE = 0x00300000;

/** Vectors whose exceptions push an error code in protected and long mode (SDM table 6-1). */
export const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

/** Page-table entry bits as bigints (SDM 4.5 tables 4-14..4-20). */
export const P = 1n, W = 2n, U = 4n, A = 0x20n, D = 0x40n, PS = 0x80n, G = 0x100n, NX = 1n << 63n;

// ---------------------------------------------------------------- assembly

export class AssembleError extends Error {
  override name = 'AssembleError';
}

export interface Assembled {
  bytes: Uint8Array;
  /** Every non-local label's address (org + offset). */
  labels: Record<string, number>;
}

const ASM_CACHE = join(tmpdir(), 'vsmvisor-x86-test-asm');

/**
 * Assembles Intel-syntax source (GNU as, `.intel_syntax noprefix`, in .text; use
 * `.code16`/`.code32`/`.code64`) into a flat binary that runs at `org`.
 * Results are cached in os.tmpdir() by content hash.
 */
export function assemble(src: string, org: number): Assembled {
  const text = `.intel_syntax noprefix\n.text\n${src}\n`;
  const key = createHash('sha256').update(`${org}\n${text}`).digest('hex').slice(0, 32);
  const cached = join(ASM_CACHE, `${key}.json`);
  try {
    const j = JSON.parse(readFileSync(cached, 'utf8')) as { hex: string; labels: Record<string, number> };
    return { bytes: new Uint8Array(Buffer.from(j.hex, 'hex')), labels: j.labels };
  } catch {
    // not cached yet
  }
  mkdirSync(ASM_CACHE, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'vsmvisor-as-'));
  try {
    writeFileSync(join(dir, 'in.s'), text);
    writeFileSync(join(dir, 'flat.ld'), `SECTIONS { . = 0x${org.toString(16)}; .text : { *(.text) } /DISCARD/ : { *(*) } }\n`);
    const as = spawnSync('as', ['--64', '-o', join(dir, 'in.o'), join(dir, 'in.s')], { encoding: 'utf8' });
    if (as.error !== undefined) throw new AssembleError(`GNU as could not be started: ${as.error.message}`);
    if (as.status !== 0) throw new AssembleError(`GNU as rejected the test code:\n${as.stderr}`);
    const ld = spawnSync('ld', ['-T', join(dir, 'flat.ld'), '--oformat', 'binary', '-o', join(dir, 'out.bin'), join(dir, 'in.o')], { encoding: 'utf8' });
    if (ld.error !== undefined) throw new AssembleError(`GNU ld could not be started: ${ld.error.message}`);
    if (ld.status !== 0) throw new AssembleError(`GNU ld could not link the test code:\n${ld.stderr}`);
    const bytes = new Uint8Array(readFileSync(join(dir, 'out.bin')));
    const labels: Record<string, number> = {};
    for (const [name, off] of textSymbols(readFileSync(join(dir, 'in.o')))) labels[name] = org + off;
    const tmp = `${cached}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ hex: Buffer.from(bytes).toString('hex'), labels }));
    renameSync(tmp, cached); // never expose a half-written file to a concurrent run
    return { bytes, labels };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Symbols defined in .text of an ELF64 relocatable object, with their section offsets. */
function textSymbols(elf: Buffer): [string, number][] {
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a), shnum = elf.readUInt16LE(0x3c), shstrndx = elf.readUInt16LE(0x3e);
  const sh = (k: number) => {
    const o = shoff + k * shentsize;
    return {
      name: elf.readUInt32LE(o), type: elf.readUInt32LE(o + 4), offset: Number(elf.readBigUInt64LE(o + 0x18)),
      size: Number(elf.readBigUInt64LE(o + 0x20)), link: elf.readUInt32LE(o + 0x28),
    };
  };
  const cstr = (at: number) => elf.toString('latin1', at, elf.indexOf(0, at));
  const shstr = sh(shstrndx);
  let textIdx = -1, symIdx = -1;
  for (let k = 0; k < shnum; k++) {
    const s = sh(k);
    if (cstr(shstr.offset + s.name) === '.text') textIdx = k;
    if (s.type === 2) symIdx = k;
  }
  if (symIdx < 0) return [];
  const symtab = sh(symIdx), strtab = sh(symtab.link);
  const out: [string, number][] = [];
  for (let o = symtab.offset; o < symtab.offset + symtab.size; o += 24) {
    const name = cstr(strtab.offset + elf.readUInt32LE(o));
    if (name !== '' && elf.readUInt16LE(o + 6) === textIdx) out.push([name, Number(elf.readBigUInt64LE(o + 8))]);
  }
  return out;
}

// ---------------------------------------------------------------- the recording host

export type HostEvent =
  | { kind: 'ioRead'; port: number; size: number }
  | { kind: 'ioWrite'; port: number; size: number; value: number }
  | { kind: 'mmioRead'; gpa: number; size: number }
  | { kind: 'mmioWrite'; gpa: number; size: number; lo: number; hi: number }
  | { kind: 'memFault'; info: MemFaultInfo }
  | { kind: 'cpuid'; leaf: number; subleaf: number }
  | { kind: 'rdmsr'; index: number }
  | { kind: 'wrmsr'; index: number; lo: number; hi: number }
  | { kind: 'hypercall'; isVmmcall: boolean; rip: bigint }
  | { kind: 'halt'; rip: bigint }
  | { kind: 'shutdown'; reason: string }
  | { kind: 'ack'; vector: number }
  | { kind: 'cr8'; value: number }
  | { kind: 'registerAccess'; info: RegisterAccessInfo; rip: bigint };

/**
 * A CpuHost that records every callback in order. Behaviour is set through the
 * public fields; the optional hooks run after the event is recorded and may call
 * cpu.abortInstruction() or cpu.requestStop().
 */
export class RecordingHost implements CpuHost {
  cpu!: Cpu;
  readonly events: HostEvent[] = [];
  /** Owner page permissions by page frame number (missing = RWX). */
  readonly perms = new Map<number, number>();
  /** External interrupt vectors waiting, highest priority first. */
  readonly pending: number[] = [];
  /** MSRs the owner answers (index -> [lo, hi]); others are refused (#GP). */
  readonly msrs = new Map<number, [number, number]>();
  ioValue: (port: number, size: number) => number = () => 0xffffffff;
  mmioValue: (gpa: number, size: number) => number = () => 0xffffffff;
  cpuidValue: (leaf: number, subleaf: number) => [number, number, number, number] = () => [0, 0, 0, 0];
  onIoRead: ((port: number, size: number) => void) | null = null;
  onIoWrite: ((port: number, size: number, value: number) => void) | null = null;
  onMemFault: ((info: MemFaultInfo) => void) | null = null;
  onHypercall: ((isVmmcall: boolean) => void) | null = null;
  onRegisterAccess: ((info: RegisterAccessInfo) => void) | null = null;
  cr8 = 0;
  tsc = 0n;

  of<K extends HostEvent['kind']>(kind: K): Extract<HostEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<HostEvent, { kind: K }> => e.kind === kind);
  }

  ioRead(port: number, size: number): number {
    this.events.push({ kind: 'ioRead', port, size });
    this.onIoRead?.(port, size);
    return this.ioValue(port, size);
  }
  ioWrite(port: number, size: number, value: number): void {
    this.events.push({ kind: 'ioWrite', port, size, value });
    this.onIoWrite?.(port, size, value);
  }
  mmioRead(gpa: number, size: number): number {
    this.events.push({ kind: 'mmioRead', gpa, size });
    return this.mmioValue(gpa, size);
  }
  mmioWrite(gpa: number, size: number, lo: number, hi: number): void {
    this.events.push({ kind: 'mmioWrite', gpa, size, lo, hi });
  }
  pagePermissions(pfn: number): number {
    return this.perms.get(pfn) ?? ACCESS_ALL;
  }
  memFault(info: MemFaultInfo): void {
    // Copy: the CPU may reuse its buffers after the callback returns.
    this.events.push({ kind: 'memFault', info: { ...info, insnBytes: new Uint8Array(info.insnBytes) } });
    this.onMemFault?.(info);
  }
  cpuid(leaf: number, subleaf: number, out: Int32Array): void {
    this.events.push({ kind: 'cpuid', leaf, subleaf });
    const v = this.cpuidValue(leaf, subleaf);
    for (let k = 0; k < 4; k++) out[k] = v[k];
  }
  rdmsr(index: number, out: Int32Array): boolean {
    this.events.push({ kind: 'rdmsr', index });
    const v = this.msrs.get(index);
    if (v === undefined) return false;
    out[0] = v[0]; out[1] = v[1];
    return true;
  }
  wrmsr(index: number, lo: number, hi: number): boolean {
    this.events.push({ kind: 'wrmsr', index, lo, hi });
    if (!this.msrs.has(index)) return false;
    this.msrs.set(index, [lo, hi]);
    return true;
  }
  registerAccess(info: RegisterAccessInfo): void {
    this.events.push({ kind: 'registerAccess', info: { ...info }, rip: rip(this.cpu) });
    this.onRegisterAccess?.(info);
  }
  hypercall(isVmmcall: boolean): void {
    this.events.push({ kind: 'hypercall', isVmmcall, rip: rip(this.cpu) });
    this.onHypercall?.(isVmmcall);
  }
  halt(): void { this.events.push({ kind: 'halt', rip: rip(this.cpu) }); }
  shutdown(reason: string): void { this.events.push({ kind: 'shutdown', reason }); }
  pendingInterrupt(): number { return this.pending.length > 0 ? this.pending[0] : -1; }
  acknowledgeInterrupt(vector: number): void {
    this.events.push({ kind: 'ack', vector });
    const k = this.pending.indexOf(vector);
    if (k >= 0) this.pending.splice(k, 1);
  }
  readCr8(): number { return this.cr8; }
  writeCr8(value: number): void { this.events.push({ kind: 'cr8', value }); this.cr8 = value; }
  readTsc(out: Int32Array): void { out[0] = Number(this.tsc & 0xffffffffn) | 0; out[1] = Number(this.tsc >> 32n) | 0; }
}

// ---------------------------------------------------------------- registers

/** A 64-bit general-purpose register as an unsigned bigint. */
export function reg(c: Cpu, r: number): bigint {
  return (BigInt(c.rhi[r] >>> 0) << 32n) | BigInt(c.rlo[r] >>> 0);
}
export function setReg(c: Cpu, r: number, v: bigint | number): void {
  const b = BigInt.asUintN(64, BigInt(v));
  c.rlo[r] = Number(b & 0xffffffffn) | 0;
  c.rhi[r] = Number(b >> 32n) | 0;
}
export function rip(c: Cpu): bigint {
  return (BigInt(c.ripHi >>> 0) << 32n) | BigInt(c.ripLo >>> 0);
}
export function setRip(c: Cpu, v: bigint | number): void {
  const b = BigInt.asUintN(64, BigInt(v));
  c.ripLo = Number(b & 0xffffffffn) | 0;
  c.ripHi = Number(b >> 32n) | 0;
}
export function cr2(c: Cpu): bigint {
  return (BigInt(c.cr2Hi >>> 0) << 32n) | BigInt(c.cr2Lo >>> 0);
}
/** Splits a linear address for the CPU's lo/hi APIs. */
export function split(v: bigint | number): [number, number] {
  const b = BigInt.asUintN(64, BigInt(v));
  return [Number(b & 0xffffffffn) | 0, Number(b >> 32n) | 0];
}

// ---------------------------------------------------------------- descriptors

export interface SegOpts {
  base?: number; limit?: number; dpl?: number; present?: boolean;
  /** Access-byte type (bits 3:0), e.g. 0xa execute/read code, 0x2 read/write data. */
  type: number;
  /** Flags nibble: G (8), D/B (4), L (2), AVL (1). */
  flags: number;
  system?: boolean;
}
/** An 8-byte segment descriptor (SDM 3.4.5). */
export function segDesc(o: SegOpts): bigint {
  const base = BigInt(o.base ?? 0), limit = BigInt(o.limit ?? 0xfffff);
  const access = BigInt((o.present === false ? 0 : 0x80) | ((o.dpl ?? 0) << 5) | (o.system ? 0 : 0x10) | o.type);
  return (limit & 0xffffn) | ((base & 0xffffffn) << 16n) | (access << 40n) | (((limit >> 16n) & 0xfn) << 48n) |
    (BigInt(o.flags & 0xf) << 52n) | (((base >> 24n) & 0xffn) << 56n);
}
/** A 16-byte 64-bit TSS descriptor (SDM 8.2.3) as two 8-byte halves. */
export function tss64Desc(base: number, limit: number): [bigint, bigint] {
  return [segDesc({ base: base >>> 0, limit, type: 9, flags: 0, system: true }), BigInt(Math.floor(base / 2 ** 32))];
}
/** A 32-bit interrupt (0xe) or trap (0xf) gate (SDM 6.11). */
export function gate32(sel: number, offset: number, type = 0xe, dpl = 0, present = true): bigint {
  const off = BigInt(offset >>> 0);
  return (off & 0xffffn) | (BigInt(sel) << 16n) | (BigInt((present ? 0x80 : 0) | (dpl << 5) | type) << 40n) | ((off >> 16n) << 48n);
}
/** A 64-bit interrupt (0xe) or trap (0xf) gate (SDM 6.14.1) as two 8-byte halves. */
export function gate64(sel: number, offset: bigint | number, type = 0xe, dpl = 0, ist = 0, present = true): [bigint, bigint] {
  const off = BigInt.asUintN(64, BigInt(offset));
  const lo = (off & 0xffffn) | (BigInt(sel) << 16n) | (BigInt(ist) << 32n) |
    (BigInt((present ? 0x80 : 0) | (dpl << 5) | type) << 40n) | (((off >> 16n) & 0xffffn) << 48n);
  return [lo, off >> 32n];
}

export interface GateOpts { type?: number; dpl?: number; ist?: number; present?: boolean }

// ---------------------------------------------------------------- paging

export type PagingMode = 'legacy32' | 'pae' | 'long4';
export const KiB4 = 0x1000, MiB2 = 0x200000, MiB4 = 0x400000, GiB1 = 0x40000000;

/**
 * Builds paging structures in guest memory. Non-leaf entries get P|W|U (so the
 * leaf decides the permissions) unless `upper` says otherwise; PAE PDPTEs get P
 * only (their other low bits are reserved, SDM 4.4.1).
 */
export class PageTables {
  readonly root: number;
  constructor(private readonly m: TestMachine, readonly mode: PagingMode) {
    this.root = m.allocPage();
  }

  private get entrySize(): number { return this.mode === 'legacy32' ? 4 : 8; }
  private topLevel(): number { return this.mode === 'long4' ? 4 : this.mode === 'pae' ? 3 : 2; }
  private index(va: bigint, level: number): number {
    if (this.mode === 'legacy32') return Number((va >> (level === 2 ? 22n : 12n)) & 0x3ffn);
    if (this.mode === 'pae' && level === 3) return Number((va >> 30n) & 3n);
    return Number((va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
  }
  private read(pa: number): bigint {
    return this.entrySize === 4 ? BigInt(this.m.mem.read32(pa)) : this.m.mem.read64(pa);
  }
  private write(pa: number, v: bigint): void {
    if (this.entrySize === 4) this.m.mem.write32(pa, Number(v & 0xffffffffn));
    else this.m.mem.write64(pa, v);
  }

  /** Physical address of the entry for `va` at `level` (4 PML4E, 3 PDPTE, 2 PDE, 1 PTE), creating tables above it. */
  entryAddr(va: bigint | number, level: number, upper = P | W | U): number {
    const v = BigInt(va);
    let table = this.root;
    for (let l = this.topLevel(); l > level; l--) {
      const at = table + this.index(v, l) * this.entrySize;
      let e = this.read(at);
      if (!(e & P)) {
        const t = this.m.allocPage();
        e = BigInt(t) | (this.mode === 'pae' && l === 3 ? P : upper);
        this.write(at, e);
      } else if (e & PS) {
        throw new RangeError(`0x${v.toString(16)} is inside a large page at level ${l}`);
      }
      table = Number(e & 0xffffffffff000n);
    }
    return table + this.index(v, level) * this.entrySize;
  }

  /** Maps one page of `size` bytes at `va` to `pa` with `flags` (PS is added for large pages). */
  map(va: bigint | number, pa: number, flags: bigint, size = KiB4, upper = P | W | U): number {
    const level = size === KiB4 ? 1 : size === GiB1 ? 3 : 2;
    if (size === MiB4 && this.mode !== 'legacy32') throw new RangeError('4 MiB pages exist only in 32-bit paging');
    if (size === MiB2 && this.mode === 'legacy32') throw new RangeError('2 MiB pages do not exist in 32-bit paging');
    if (BigInt(va) % BigInt(size) !== 0n || pa % size !== 0) throw new RangeError('page not aligned to its size');
    const at = this.entryAddr(va, level, upper);
    this.write(at, BigInt(pa) | flags | (size === KiB4 ? 0n : PS));
    return at;
  }

  /** Identity-maps [from, to) with 4 KiB pages. */
  identity(from: number, to: number, flags: bigint): void {
    for (let a = from; a < to; a += KiB4) this.map(a, a, flags);
  }

  get(pa: number): bigint { return this.read(pa); }
  set(pa: number, v: bigint): void { this.write(pa, v); }
}

// ---------------------------------------------------------------- the machine

export interface ModeOpts {
  cpl?: 0 | 3;
  /** Page tables to use; default: identity map of low memory (supervisor RW, user code/stack pages U). */
  pt?: PageTables;
  cr4?: number;
  efer?: number;
  /** Extra CR0 bits (WP is set by default in paging modes). */
  wp?: boolean;
}

export class TestMachine {
  readonly mem: PhysMemory;
  readonly host = new RecordingHost();
  readonly cpu: Cpu;
  private ptNext = PT_POOL;
  /** The page tables installed by the last enter*() call, if it enabled paging. */
  pt: PageTables | null = null;

  constructor(ramBytes = 64 * 1024 * 1024) {
    this.mem = new PhysMemory(ramBytes);
    this.cpu = new Cpu(this.mem, this.host);
    this.host.cpu = this.cpu;
  }

  allocPage(): number {
    if (this.ptNext >= PT_POOL_END) throw new RangeError('test page-table pool exhausted');
    const a = this.ptNext;
    this.ptNext += KiB4;
    this.mem.fill(a, KiB4, 0);
    return a;
  }

  load(gpa: number, bytes: Uint8Array): void { this.mem.write(gpa, bytes); }

  /** Assembles `src` to run at linear `org` and loads it at physical `pa` (default: org). */
  asm(src: string, org: number, pa = org): Record<string, number> {
    const a = assemble(src, org);
    this.load(pa, a.bytes);
    return a.labels;
  }

  // ---- tables ----

  /** The standard GDT (see SEL) at GDT; also sets GDTR. */
  installGdt(): void {
    const n = this.writeGdt();
    this.cpu.gdtrBaseLo = GDT; this.cpu.gdtrBaseHi = 0; this.cpu.gdtrLimit = n * 8 - 1;
  }

  /** Writes the standard GDT to memory without loading GDTR; returns its entry count. */
  writeGdt(): number {
    const flat = { base: 0, limit: 0xfffff };
    const entries: bigint[] = [
      0n,
      segDesc({ ...flat, type: 0xa, flags: 0xc }), // 0x08 code32
      segDesc({ ...flat, type: 0x2, flags: 0xc }), // 0x10 data
      segDesc({ ...flat, type: 0xa, flags: 0xa }), // 0x18 code64 (G, L)
      segDesc({ base: 0, limit: 0xffff, type: 0xa, flags: 0 }), // 0x20 code16
      segDesc({ base: 0, limit: 0xffff, type: 0x2, flags: 0 }), // 0x28 data16
      segDesc({ ...flat, type: 0xa, flags: 0xc, dpl: 3 }), // 0x30 user code32
      segDesc({ ...flat, type: 0x2, flags: 0xc, dpl: 3 }), // 0x38 user data
      segDesc({ ...flat, type: 0xa, flags: 0xa, dpl: 3 }), // 0x40 user code64
      ...tss64Desc(TSS, 0x67), // 0x48 TSS (the upper half is zero, so it is also valid as a 32-bit TSS descriptor)
      segDesc({ ...flat, type: 0x2, flags: 0xc, present: false }), // 0x58 not present
      segDesc({ base: BASED_SEG_BASE, limit: 0xfffff, type: 0x2, flags: 0xc }), // 0x60 data with a base
    ];
    entries.forEach((e, k) => this.mem.write64(GDT + 8 * k, e));
    return entries.length;
  }

  /** Writes one GDT entry (8 bytes) at selector `sel`. */
  setGdtEntry(sel: number, desc: bigint): void {
    this.mem.write64(GDT + (sel & ~7), desc);
    this.cpu.gdtrLimit = Math.max(this.cpu.gdtrLimit, (sel & ~7) + 7);
  }

  /** A 64-bit IDT at IDT: every vector an interrupt gate to its stub in code64, overridable per vector. */
  installIdt64(over: Record<number, GateOpts> = {}): void {
    for (let v = 0; v < 256; v++) {
      const o = over[v] ?? {};
      const [lo, hi] = gate64(SEL.code64, STUBS + 16 * v, o.type ?? 0xe, o.dpl ?? 0, o.ist ?? 0, o.present ?? true);
      this.mem.write64(IDT + 16 * v, lo); this.mem.write64(IDT + 16 * v + 8, hi);
      // hlt; [add rsp, 8 to drop the error code;] iretq
      this.load(STUBS + 16 * v, new Uint8Array(ERROR_CODE_VECTORS.has(v) ? [0xf4, 0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf] : [0xf4, 0x48, 0xcf]));
    }
    this.cpu.idtrBaseLo = IDT; this.cpu.idtrBaseHi = 0; this.cpu.idtrLimit = 256 * 16 - 1;
  }
  setGate64(v: number, o: GateOpts & { sel?: number; offset?: number }): void {
    const [lo, hi] = gate64(o.sel ?? SEL.code64, o.offset ?? STUBS + 16 * v, o.type ?? 0xe, o.dpl ?? 0, o.ist ?? 0, o.present ?? true);
    this.mem.write64(IDT + 16 * v, lo); this.mem.write64(IDT + 16 * v + 8, hi);
  }

  /** A 32-bit IDT at IDT: every vector an interrupt gate to its stub in code32. */
  installIdt32(over: Record<number, GateOpts> = {}): void {
    for (let v = 0; v < 256; v++) {
      const o = over[v] ?? {};
      this.mem.write64(IDT + 8 * v, gate32(SEL.code32, STUBS + 16 * v, o.type ?? 0xe, o.dpl ?? 0, o.present ?? true));
      // hlt; [add esp, 4 to drop the error code;] iretd
      this.load(STUBS + 16 * v, new Uint8Array(ERROR_CODE_VECTORS.has(v) ? [0xf4, 0x83, 0xc4, 0x04, 0xcf] : [0xf4, 0xcf]));
    }
    this.cpu.idtrBaseLo = IDT; this.cpu.idtrBaseHi = 0; this.cpu.idtrLimit = 256 * 8 - 1;
  }

  /** A real-mode IVT at 0: vector v -> 0000:(STUBS + 16v) (stubs below 64 KiB would clash, so CS = STUBS >> 4). */
  installIvt(): void {
    for (let v = 0; v < 256; v++) {
      this.mem.write32(IVT + 4 * v, ((STUBS >> 4) << 16) | (16 * v));
      this.load(STUBS + 16 * v, new Uint8Array([0xf4, 0xcf])); // hlt; iret
    }
    this.cpu.idtrBaseLo = IVT; this.cpu.idtrLimit = 0x3ff;
  }

  /** A 64-bit TSS at TSS (SDM 8.7): RSP0, IST1, IST2. */
  installTss64(rsp0: bigint = BigInt(KSTACK), ist1: bigint = BigInt(IST1), ist2: bigint = BigInt(IST2)): void {
    this.mem.fill(TSS, 0x68, 0);
    this.mem.write64(TSS + 4, rsp0);
    this.mem.write64(TSS + 0x24, ist1);
    this.mem.write64(TSS + 0x2c, ist2);
    this.setTr(0x67);
  }
  /** A 32-bit TSS at TSS (SDM 8.2.1): ESP0, SS0. */
  installTss32(esp0 = KSTACK, ss0: number = SEL.data): void {
    this.mem.fill(TSS, 0x68, 0);
    this.mem.write32(TSS + 4, esp0);
    this.mem.write32(TSS + 8, ss0);
    this.setTr(0x67);
  }
  private setTr(limit: number): void {
    const c = this.cpu;
    c.segSel[TR] = SEL.tss; c.segBaseLo[TR] = TSS; c.segBaseHi[TR] = 0; c.segLimit[TR] = limit; c.segAttr[TR] = 0x8b;
  }

  /** Loads a segment register's cache from the GDT entry of `sel`, as a successful load would. */
  loadSeg(seg: number, sel: number): void {
    const c = this.cpu;
    const d = this.mem.read64(GDT + (sel & ~7));
    const low = Number(d & 0xffffffffn) | 0, high = Number(d >> 32n) | 0;
    c.segSel[seg] = sel;
    c.segBaseLo[seg] = baseFromDesc(low, high); c.segBaseHi[seg] = 0;
    c.segLimit[seg] = limitFromDesc(low, high) | 0;
    c.segAttr[seg] = attrFromDescHigh(high) | 1;
  }

  /** Default page tables: low 4 MiB identity-mapped supervisor RW; user code and user stack pages also U. */
  defaultPageTables(mode: PagingMode): PageTables {
    const pt = new PageTables(this, mode);
    pt.identity(0, IDENTITY_END, P | W);
    for (let a = UCODE; a < UCODE + 0x8000; a += KiB4) pt.map(a, a, P | W | U);
    pt.map(USTACK_PAGE, USTACK_PAGE, P | W | U);
    return pt;
  }

  // ---- entering modes directly ----

  /** Real mode, CS:IP = (CODE >> 4):0, stack 0:KSTACK, IVT with stubs; the GDT is in memory but GDTR is not loaded. */
  enterReal(): void {
    const c = this.cpu;
    c.reset();
    this.writeGdt();
    c.loadRealSegment(CS, CODE >> 4);
    c.ripLo = 0; c.ripHi = 0;
    c.rlo[4] = KSTACK;
    this.installIvt();
    c.updateMode();
  }

  /** 32-bit protected mode, flat segments, optional paging ('legacy32' or 'pae'), IDT and TSS installed. */
  enterProtected32(paging: 'none' | 'legacy32' | 'pae' = 'none', o: ModeOpts = {}): void {
    const c = this.cpu;
    c.reset();
    this.installGdt();
    this.installIdt32();
    this.installTss32();
    const user = o.cpl === 3;
    c.cr4 = (o.cr4 ?? 0) | (paging === 'pae' ? CR4_PAE : 0) | (paging === 'legacy32' ? CR4_PSE : 0);
    c.efer = o.efer ?? 0;
    c.cr0 = CR0_PE | CR0_ET | CR0_NE;
    if (paging !== 'none') {
      this.pt = o.pt ?? this.defaultPageTables(paging);
      c.cr3Lo = this.pt.root; c.cr3Hi = 0;
      c.cr0 |= CR0_PG | (o.wp === false ? 0 : CR0_WP);
      if (paging === 'pae') c.mmu.loadPdptes();
    }
    this.loadSeg(CS, user ? SEL.ucode32 : SEL.code32);
    for (const s of [SS, DS, ES, FS, GS]) this.loadSeg(s, user ? SEL.udata : SEL.data);
    this.clearLdt();
    c.cpl = user ? 3 : 0;
    c.ripLo = user ? UCODE : CODE; c.ripHi = 0;
    c.rlo[4] = user ? USTACK : KSTACK; c.rhi[4] = 0;
    c.updateMode();
    c.flushTlb();
  }

  /** 64-bit mode (4-level paging, NXE, WP), IDT with stubs, TSS with RSP0/IST1/IST2. */
  enterLong64(o: ModeOpts = {}): void {
    const c = this.cpu;
    c.reset();
    this.installGdt();
    this.installIdt64();
    this.installTss64();
    this.pt = o.pt ?? this.defaultPageTables('long4');
    const user = o.cpl === 3;
    c.cr4 = CR4_PAE | CR4_OSFXSR | (o.cr4 ?? 0);
    c.efer = o.efer ?? (EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE);
    c.cr3Lo = this.pt.root; c.cr3Hi = 0;
    c.cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | (o.wp === false ? 0 : CR0_WP);
    this.loadSeg(CS, user ? SEL.ucode64 : SEL.code64);
    for (const s of [SS, DS, ES]) this.loadSeg(s, user ? SEL.udata : SEL.data);
    for (const s of [FS, GS]) { c.segSel[s] = 0; c.segBaseLo[s] = 0; c.segBaseHi[s] = 0; c.segLimit[s] = 0; c.segAttr[s] = 0; }
    this.clearLdt();
    c.cpl = user ? 3 : 0;
    c.ripLo = user ? UCODE : CODE; c.ripHi = 0;
    c.rlo[4] = user ? USTACK : KSTACK; c.rhi[4] = 0;
    c.updateMode();
    c.flushTlb();
  }

  private clearLdt(): void {
    const c = this.cpu;
    c.segSel[LDTR] = 0; c.segBaseLo[LDTR] = 0; c.segBaseHi[LDTR] = 0; c.segLimit[LDTR] = 0; c.segAttr[LDTR] = 0;
  }

  // ---- running ----

  /** Runs until the CPU halts; fails (with where it was) if it does not within `budget` instructions. */
  runToHalt(budget = 100000): number {
    const n = this.cpu.run(budget);
    if (this.cpu.runState !== CpuRunState.Halted) {
      throw new Error(`CPU did not halt within ${budget} instructions: state ${this.cpu.runState}, RIP 0x${rip(this.cpu).toString(16)}, ` +
        `last vector stub ${this.stubVector()}`);
    }
    return n;
  }

  /** Leaves the halted state so run() continues after the HLT. */
  resume(): void { this.cpu.runState = CpuRunState.Running; }

  /** The vector whose stub the CPU halted in (RIP just past the stub's HLT), or -1. */
  stubVector(): number {
    const lin = this.cpu.codeSize === 64 ? Number(rip(this.cpu)) : (this.cpu.segBaseLo[CS] >>> 0) + (this.cpu.ripLo >>> 0);
    const off = lin - 1 - STUBS;
    return off >= 0 && off < 256 * 16 && off % 16 === 0 ? off / 16 : -1;
  }

  /** `n` 64-bit stack slots from RSP upwards (the stack must be identity-mapped). */
  stack64(n: number): bigint[] {
    const sp = Number(reg(this.cpu, 4));
    return Array.from({ length: n }, (_, k) => this.mem.read64(sp + 8 * k));
  }
  /** `n` 32-bit stack slots from SS:ESP upwards. */
  stack32(n: number): number[] {
    const sp = (this.cpu.segBaseLo[SS] >>> 0) + (this.cpu.rlo[4] >>> 0);
    return Array.from({ length: n }, (_, k) => this.mem.read32(sp + 4 * k));
  }
  /** `n` 16-bit stack slots from SS:SP upwards. */
  stack16(n: number): number[] {
    const sp = (this.cpu.segBaseLo[SS] >>> 0) + (this.cpu.rlo[4] & 0xffff);
    return Array.from({ length: n }, (_, k) => this.mem.read16(sp + 2 * k));
  }

  /** The architectural TLB's cached physical address for `va` in the current PCID (-1 if none). */
  cached(va: bigint | number): number {
    const [lo, hi] = split(va);
    return this.cpu.mmu.cachedTranslation(lo, hi);
  }
}

