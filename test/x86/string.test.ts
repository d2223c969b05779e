/**
 * String instructions (SDM vol. 2 MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS,
 * REP/REPE/REPNE): element sizes, direction, repeat counts and stop
 * conditions, address size, segment overrides, precise faults, restarts after
 * REP_CHUNK elements, MMIO, owner permissions and self-modifying code.
 *
 * The first half runs in runSnippet (64-bit user mode, data window at
 * 0x10000000). The second half uses a small machine of its own (below) for what
 * a snippet cannot show: page tables with discontiguous frames, I/O and MMIO
 * logs, owner permissions, 32-bit code with 16-bit addressing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { Cpu, REP_CHUNK } from '../../src/x86/cpu.js';
import { ACCESS_ALL, ACCESS_READ, type MemFaultInfo } from '../../src/x86/host.js';
import { NullCpuHost } from '../../src/x86/null-host.js';
import { ATTR_DB, ATTR_G, ATTR_L, ATTR_P, ATTR_S } from '../../src/x86/segment-cache.js';
import { runSnippet } from '../../src/x86/snippet.js';
import {
  CR0_PE, CR0_PG, CR0_WP, CR4_OSFXSR, CR4_PAE, CS, DS, EFER_LMA, EFER_LME, EFER_NXE, ES, FS, GS, SS,
} from '../../src/x86/regs.js';

const RAX = 0, RCX = 1, RDX = 2, RSI = 6, RDI = 7;
const D = 0x10000000n; // runSnippet's data window
const DF = 0x400n, IOPL3 = 0x3000n;

interface Run { gpr: BigUint64Array; rflags: bigint; mem: Uint8Array; exception: number | null }

/** Runs `code` in runSnippet with the given registers, flags and data-window bytes. */
function snip(code: number[], regs: Record<number, bigint>, opts: { flags?: bigint; data?: Record<number, number[]> } = {}): Run {
  const gpr = new BigUint64Array(16);
  for (const [r, v] of Object.entries(regs)) gpr[Number(r)] = v;
  const mem = new Uint8Array(4096);
  for (const [off, bytes] of Object.entries(opts.data ?? {})) mem.set(bytes, Number(off));
  return runSnippet(new Uint8Array(code), { gpr, rflags: opts.flags ?? 2n, mem });
}
const bytes = (m: Uint8Array, off: number, n: number): number[] => [...m.subarray(off, off + n)];
const seq = (n: number, from = 1): number[] => Array.from({ length: n }, (_, k) => (from + k) & 0xff);
/** Arithmetic flag bits of RFLAGS (CF PF AF ZF SF OF) plus DF. */
const arith = (f: bigint): bigint => f & 0xcd5n;

// Encodings (GNU as, Intel syntax): the size prefixes select word (66) and qword (REX.W 48).
const SIZED: [number, number[]][] = [[1, []], [2, [0x66]], [4, []], [8, [0x48]]];
const op = (byteOp: number, size: number, pfx: number[]): number[] => [...pfx, size === 1 ? byteOp : byteOp + 1];

// ---------------------------------------------------------------- runSnippet

test('MOVS copies one element of each size and steps RSI/RDI by its size; RCX is not used', () => {
  for (const [size, pfx] of SIZED) {
    const r = snip(op(0xa4, size, pfx), { [RSI]: D + 0x100n, [RDI]: D + 0x200n, [RCX]: 0xdeadn }, { data: { 0x100: seq(16, 0x11) } });
    assert.equal(r.exception, null);
    assert.deepEqual(bytes(r.mem, 0x200, size + 1), [...seq(size, 0x11), 0], `movs size ${size}`);
    assert.equal(r.gpr[RSI], D + 0x100n + BigInt(size));
    assert.equal(r.gpr[RDI], D + 0x200n + BigInt(size));
    assert.equal(r.gpr[RCX], 0xdeadn);
  }
});

test('with DF=1 string instructions step RSI/RDI downwards', () => {
  // movsd (A5) with DF set: copies the dword at RSI, then RSI -= 4, RDI -= 4.
  const r = snip([0xa5], { [RSI]: D + 0x100n, [RDI]: D + 0x200n }, { flags: 2n | DF, data: { 0x100: [1, 2, 3, 4, 5] } });
  assert.deepEqual(bytes(r.mem, 0x200, 5), [1, 2, 3, 4, 0]);
  assert.equal(r.gpr[RSI], D + 0xfcn);
  assert.equal(r.gpr[RDI], D + 0x1fcn);
  assert.equal(r.rflags & DF, DF);
});

/** The bytes of RAX = 0x8877665544332211 in memory order. */
const RAX_BYTES = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

test('STOS stores AL/AX/EAX/RAX', () => {
  for (const [size, pfx] of SIZED) {
    const r = snip(op(0xaa, size, pfx), { [RAX]: 0x8877665544332211n, [RDI]: D + 0x40n });
    assert.deepEqual(bytes(r.mem, 0x40, 9), [...RAX_BYTES.slice(0, size), ...new Array(9 - size).fill(0)], `stos size ${size}`);
    assert.equal(r.gpr[RDI], D + 0x40n + BigInt(size));
  }
});

test('LODS loads into AL/AX (merging) and EAX/RAX (EAX zero-extends into RAX)', () => {
  const expect: Record<number, bigint> = {
    1: 0xffffffffffffff11n, 2: 0xffffffffffff2211n, 4: 0x44332211n, 8: 0x8877665544332211n,
  };
  for (const [size, pfx] of SIZED) {
    const r = snip(op(0xac, size, pfx), { [RAX]: 0xffffffffffffffffn, [RSI]: D + 0x80n }, { data: { 0x80: RAX_BYTES } });
    assert.equal(r.gpr[RAX], expect[size], `lods size ${size}`);
    assert.equal(r.gpr[RSI], D + 0x80n + BigInt(size));
  }
});

test('SCAS sets flags as CMP rAX, [RDI]', () => {
  // 5 - 7 = 0xFE: CF (borrow), AF (borrow from bit 4), SF; PF clear (seven 1 bits).
  let r = snip([0xae], { [RAX]: 5n, [RDI]: D }, { data: { 0: [7] } });
  assert.equal(arith(r.rflags), 0x91n);
  assert.equal(r.gpr[RDI], D + 1n);
  // 0x8000000000000000 - 1 = 0x7FFF...FF: OF (negative minus positive is positive), AF, PF (0xFF); no CF, SF, ZF.
  r = snip([0x48, 0xaf], { [RAX]: 0x8000000000000000n, [RDI]: D }, { data: { 0: [1] } });
  assert.equal(arith(r.rflags), 0x814n);
  assert.equal(r.gpr[RDI], D + 8n);
});

test('CMPS compares [RSI] with ES:[RDI] (source minus destination) and steps both', () => {
  let r = snip([0x66, 0xa7], { [RSI]: D, [RDI]: D + 0x10n }, { data: { 0: [0x34, 0x12], 0x10: [0x34, 0x12] } });
  assert.equal(arith(r.rflags), 0x44n); // equal: ZF and PF
  assert.equal(r.gpr[RSI], D + 2n);
  assert.equal(r.gpr[RDI], D + 0x12n);
  // dword 1 - 2 = 0xFFFFFFFF: CF SF AF PF.
  r = snip([0xa7], { [RSI]: D, [RDI]: D + 0x10n }, { data: { 0: [1], 0x10: [2] } });
  assert.equal(arith(r.rflags), 0x95n);
  // qword: 2^32 - 1 = 0xFFFFFFFF: no borrow out of the qword, PF, AF.
  r = snip([0x48, 0xa7], { [RSI]: D, [RDI]: D + 0x10n }, { data: { 0: [0, 0, 0, 0, 1], 0x10: [1] } });
  assert.equal(arith(r.rflags), 0x14n);
  assert.equal(r.gpr[RSI], D + 8n);
});

test('REP with a count of 0 does nothing: memory, registers and flags are unchanged', () => {
  // F3 A4 rep movsb; F3 A6 repe cmpsb; F2 AE repne scasb.
  for (const code of [[0xf3, 0xa4], [0xf3, 0xa6], [0xf2, 0xae]]) {
    const r = snip(code, { [RSI]: D, [RDI]: D + 0x100n, [RCX]: 0n }, { flags: 0x2c3n, data: { 0: [9] } });
    assert.equal(r.exception, null);
    assert.equal(r.mem[0x100], 0);
    assert.equal(r.gpr[RSI], D);
    assert.equal(r.gpr[RDI], D + 0x100n);
    assert.equal(r.rflags, 0x2c3n); // CF ZF SF as given
  }
});

test('REP MOVSB with counts 1 and 300, REP MOVSQ with 64: everything copied, RCX = 0', () => {
  const src = seq(512, 3);
  for (const [code, count, size] of [[[0xf3, 0xa4], 1, 1], [[0xf3, 0xa4], 300, 1], [[0xf3, 0x48, 0xa5], 64, 8]] as const) {
    const r = snip([...code], { [RSI]: D + 0x100n, [RDI]: D + 0x400n, [RCX]: BigInt(count) }, { data: { 0x100: src } });
    const n = count * size;
    assert.deepEqual(bytes(r.mem, 0x400, n + 1), [...src.slice(0, n), 0]);
    assert.equal(r.gpr[RCX], 0n);
    assert.equal(r.gpr[RSI], D + 0x100n + BigInt(n));
    assert.equal(r.gpr[RDI], D + 0x400n + BigInt(n));
  }
});

test('REP STOS fills every size; DF=1 fills downwards', () => {
  for (const [size, pfx] of SIZED) {
    const r = snip([0xf3, ...op(0xaa, size, pfx)], { [RAX]: 0x8877665544332211n, [RDI]: D + 0x100n, [RCX]: 100n });
    const n = 100 * size;
    for (let k = 0; k < n; k++) assert.equal(r.mem[0x100 + k], 0x11 * ((k % size) + 1), `size ${size} byte ${k}`);
    assert.equal(r.mem[0x100 + n], 0);
    assert.equal(r.gpr[RDI], D + 0x100n + BigInt(n));
    assert.equal(r.gpr[RCX], 0n);
  }
  const r = snip([0xf3, 0xaa], { [RAX]: 0xeen, [RDI]: D + 0x10n, [RCX]: 5n }, { flags: 2n | DF });
  assert.deepEqual(bytes(r.mem, 0x0b, 7), [0, 0xee, 0xee, 0xee, 0xee, 0xee, 0]);
  assert.equal(r.gpr[RDI], D + 0x0bn);
});

test('overlapping REP MOVSB follows element order: replication forward, memmove backward', () => {
  // Destination 2 bytes ahead of the source, DF=0: each element reads what an earlier one wrote.
  let r = snip([0xf3, 0xa4], { [RSI]: D + 0x100n, [RDI]: D + 0x102n, [RCX]: 8n }, { data: { 0x100: [0xaa, 0xbb] } });
  assert.deepEqual(bytes(r.mem, 0x100, 11), [0xaa, 0xbb, 0xaa, 0xbb, 0xaa, 0xbb, 0xaa, 0xbb, 0xaa, 0xbb, 0]);
  // Destination 1 byte behind the source, DF=0: a plain forward move.
  r = snip([0xf3, 0xa4], { [RSI]: D + 0x101n, [RDI]: D + 0x100n, [RCX]: 8n }, { data: { 0x101: seq(8) } });
  assert.deepEqual(bytes(r.mem, 0x100, 9), [...seq(8), 8]);
  // memmove's backward copy: DF=1, from the last byte, destination 2 ahead.
  r = snip([0xf3, 0xa4], { [RSI]: D + 0x107n, [RDI]: D + 0x109n, [RCX]: 8n }, { flags: 2n | DF, data: { 0x100: seq(8) } });
  assert.deepEqual(bytes(r.mem, 0x100, 10), [1, 2, ...seq(8)]);
  assert.equal(r.gpr[RSI], D + 0xffn);
});

test('REPE CMPSB stops after the first difference; REPNE SCASB after the first match', () => {
  const a = [...'abcdXf'].map((ch) => ch.charCodeAt(0)), b = [...'abcdYf'].map((ch) => ch.charCodeAt(0));
  let r = snip([0xf3, 0xa6], { [RSI]: D, [RDI]: D + 0x20n, [RCX]: 6n }, { data: { 0: a, 0x20: b } });
  // Stopped after element 4 ('X' - 'Y' = 0xFF: CF AF SF PF); one element left.
  assert.equal(r.gpr[RCX], 1n);
  assert.equal(r.gpr[RSI], D + 5n);
  assert.equal(r.gpr[RDI], D + 0x25n);
  assert.equal(arith(r.rflags), 0x95n);
  // All equal: runs out the count with ZF set.
  r = snip([0xf3, 0xa6], { [RSI]: D, [RDI]: D + 0x20n, [RCX]: 4n }, { data: { 0: a, 0x20: b } });
  assert.equal(r.gpr[RCX], 0n);
  assert.equal(arith(r.rflags), 0x44n);
  // strlen: REPNE SCASB for AL = 0 stops just past the terminator.
  const hello = [...'hello'].map((ch) => ch.charCodeAt(0));
  r = snip([0xf2, 0xae], { [RAX]: 0n, [RDI]: D + 0x40n, [RCX]: 100n }, { data: { 0x40: [...hello, 0, 7] } });
  assert.equal(r.gpr[RDI], D + 0x46n);
  assert.equal(r.gpr[RCX], 94n);
  assert.equal(arith(r.rflags), 0x44n);
  // Not found within the count: RCX = 0, ZF clear.
  r = snip([0xf2, 0xae], { [RAX]: 0n, [RDI]: D + 0x40n, [RCX]: 3n }, { data: { 0x40: hello } });
  assert.equal(r.gpr[RCX], 0n);
  assert.equal(r.rflags & 0x40n, 0n);
  assert.equal(r.gpr[RDI], D + 0x43n);
});

test('F2 on MOVS repeats like F3 (the ZF condition applies to CMPS/SCAS only)', () => {
  const r = snip([0xf2, 0xa4], { [RSI]: D, [RDI]: D + 0x100n, [RCX]: 4n }, { flags: 0x42n, data: { 0: seq(4) } });
  assert.deepEqual(bytes(r.mem, 0x100, 5), [...seq(4), 0]);
  assert.equal(r.gpr[RCX], 0n);
});

test('0x67: ESI/EDI/ECX are used and written zero-extended; a count of 0 writes nothing', () => {
  // 67 F3 A4: rep movsb with 32-bit addressing; the upper halves of the inputs are ignored.
  let r = snip([0x67, 0xf3, 0xa4], {
    [RSI]: 0xabcdef0010000100n, [RDI]: 0x1234567810000200n, [RCX]: 0xffffffff00000003n,
  }, { data: { 0x100: [7, 8, 9, 10] } });
  assert.equal(r.exception, null);
  assert.deepEqual(bytes(r.mem, 0x200, 4), [7, 8, 9, 0]);
  assert.equal(r.gpr[RSI], 0x10000103n);
  assert.equal(r.gpr[RDI], 0x10000203n);
  assert.equal(r.gpr[RCX], 0n);
  // ECX = 0 with nonzero upper bits: no element, no register written.
  r = snip([0x67, 0xf3, 0xa4], { [RSI]: 0xabcdef0010000100n, [RDI]: 0x1234567810000200n, [RCX]: 0xffffffff00000000n });
  assert.equal(r.gpr[RSI], 0xabcdef0010000100n);
  assert.equal(r.gpr[RCX], 0xffffffff00000000n);
  // 67 AC: lodsb from [ESI].
  r = snip([0x67, 0xac], { [RSI]: 0xffffffff10000010n }, { data: { 0x10: [0x5a] } });
  assert.equal(r.gpr[RAX] & 0xffn, 0x5an);
  assert.equal(r.gpr[RSI], 0x10000011n);
});

test('a REP MOVSB that runs into an unmapped page faults precisely at the page boundary', () => {
  // The data window's last 8 bytes are written, then #PF at 0x10001000 with the registers at that element.
  const r = snip([0xf3, 0xa4], { [RSI]: D + 0x100n, [RDI]: D + 0xff8n, [RCX]: 16n }, { data: { 0x100: seq(16) } });
  assert.equal(r.exception, 14);
  assert.deepEqual(bytes(r.mem, 0xff8, 8), seq(8));
  assert.equal(r.gpr[RDI], D + 0x1000n);
  assert.equal(r.gpr[RSI], D + 0x108n);
  assert.equal(r.gpr[RCX], 8n);
});

test('INS/OUTS need CPL <= IOPL: #GP(0) at CPL 3 with IOPL 0, allowed with IOPL 3', () => {
  let r = snip([0x6e], { [RSI]: D, [RDX]: 0x3f8n });
  assert.equal(r.exception, 13);
  assert.equal(r.gpr[RSI], D);
  // The snippet host answers every port read with all ones.
  r = snip([0x66, 0xf3, 0x6d], { [RDI]: D + 0x10n, [RDX]: 0x60n, [RCX]: 2n }, { flags: 2n | IOPL3 });
  assert.equal(r.exception, null);
  assert.deepEqual(bytes(r.mem, 0x10, 5), [0xff, 0xff, 0xff, 0xff, 0]);
  assert.equal(r.gpr[RDI], D + 0x14n);
  assert.equal(r.gpr[RCX], 0n);
  // INSD with REX.W still moves a dword.
  r = snip([0x48, 0x6d], { [RDI]: D + 0x10n, [RDX]: 0x60n }, { flags: 2n | IOPL3 });
  assert.deepEqual(bytes(r.mem, 0x10, 5), [0xff, 0xff, 0xff, 0xff, 0]);
  assert.equal(r.gpr[RDI], D + 0x14n);
});

// ---------------------------------------------------------------- own machine

class LogHost extends NullCpuHost {
  readonly ioLog: [number, number, number][] = [];
  readonly ioInput: number[] = [];
  readonly mmioLog: [number, number, number][] = [];
  readonly faults: MemFaultInfo[] = [];
  readonly perms = new Map<number, number>();
  override ioRead(port: number, size: number): number { this.ioLog.push([port, size, -1]); return this.ioInput.shift() ?? 0; }
  override ioWrite(port: number, size: number, value: number): void { this.ioLog.push([port, size, value]); }
  override mmioWrite(gpa: number, size: number, lo: number): void { this.mmioLog.push([gpa, size, lo]); }
  override pagePermissions(pfn: number): number { return this.perms.get(pfn) ?? ACCESS_ALL; }
  override memFault(info: MemFaultInfo): void { this.faults.push(info); }
}

const CODE = 0x10000;
const PT = 0x4000; // page table for linear 0..2 MiB
const MMIO_PHYS = 0x1000000; // beyond the 4 MiB of RAM

/** A CPU at CPL 0 in 64-bit mode (identity-mapped 4 KiB pages below 2 MiB) or in flat 32-bit protected mode. */
class Machine {
  readonly mem = new PhysMemory(0x400000);
  readonly host = new LogHost();
  readonly cpu = new Cpu(this.mem, this.host);
  exception: { vector: number; error: number } | null = null;
  private end = 0;

  constructor(bits: 64 | 32) {
    const c = this.cpu;
    const flat = (seg: number, attr: number) => {
      c.segSel[seg] = seg === CS ? 8 : 16; c.segBaseLo[seg] = 0; c.segBaseHi[seg] = 0; c.segLimit[seg] = -1; c.segAttr[seg] = attr;
    };
    c.cr4 = CR4_OSFXSR;
    if (bits === 64) {
      this.mem.write64(0x1000, 0x2000n | 3n);
      this.mem.write64(0x2000, 0x3000n | 3n);
      this.mem.write64(0x3000, BigInt(PT) | 3n);
      for (let p = 0; p < 512; p++) this.map(p * 0x1000, p * 0x1000);
      c.cr4 |= CR4_PAE;
      c.efer = EFER_LME | EFER_LMA | EFER_NXE;
      c.cr3Lo = 0x1000;
      c.cr0 = CR0_PE | CR0_PG | CR0_WP | 0x10;
      flat(CS, ATTR_P | ATTR_S | 0xb | ATTR_L | ATTR_G);
    } else {
      c.cr0 = CR0_PE | 0x10;
      flat(CS, ATTR_P | ATTR_S | 0xb | ATTR_DB | ATTR_G);
    }
    for (const s of [SS, DS, ES, FS, GS]) flat(s, ATTR_P | ATTR_S | 0x3 | ATTR_DB | ATTR_G);
    c.cpl = 0;
    c.updateMode();
    c.mmu.flushAll();
    c.exceptionIntercept = (vector, error) => { this.exception = { vector, error }; return true; };
  }

  /** Maps the linear page at `lin` (below 2 MiB) to physical `phys`, writable; phys < 0 unmaps it. */
  map(lin: number, phys: number): void {
    this.mem.write64(PT + 8 * (lin >>> 12), phys < 0 ? 0n : BigInt(phys) | 3n);
    this.cpu.mmu.flushAll();
  }

  load(code: number[], regs: Record<number, number | bigint> = {}): void {
    this.mem.write(CODE, new Uint8Array(code));
    const c = this.cpu;
    for (const [r, v] of Object.entries(regs)) {
      const b = BigInt(v);
      c.rlo[Number(r)] = Number(b & 0xffffffffn) | 0;
      c.rhi[Number(r)] = Number((b >> 32n) & 0xffffffffn) | 0;
    }
    c.ripLo = CODE; c.ripHi = 0;
    this.end = CODE + code.length;
  }

  /** Runs until RIP reaches the end of the code, an exception, or an owner abort (a memFault). */
  run(): void {
    const faults = this.host.faults.length;
    for (let guard = 0; guard < 10000 && this.exception === null && this.cpu.ripLo !== this.end; guard++) {
      this.cpu.run(1);
      if (this.host.faults.length !== faults) return;
    }
  }

  reg(r: number): bigint { return (BigInt(this.cpu.rhi[r] >>> 0) << 32n) | BigInt(this.cpu.rlo[r] >>> 0); }
}

test('REP MOVSB across pages whose frames are not adjacent copies into the right frames', () => {
  const m = new Machine(64);
  // Linear 0x80000..0x81FFF -> physical 0x93000 and 0x71000; source at linear 0x20000 (identity).
  m.map(0x80000, 0x93000);
  m.map(0x81000, 0x71000);
  const src = Uint8Array.from(seq(0x300, 7));
  m.mem.write(0x20000, src);
  m.load([0xf3, 0xa4], { [RSI]: 0x20000, [RDI]: 0x80f00, [RCX]: 0x300 });
  m.run();
  assert.equal(m.exception, null);
  assert.deepEqual(m.mem.read(0x93f00, 0x100), src.subarray(0, 0x100));
  assert.deepEqual(m.mem.read(0x71000, 0x200), src.subarray(0x100));
  assert.equal(m.mem.read8(0x71200), 0);
  assert.equal(m.reg(RDI), 0x81200n);
  assert.equal(m.reg(RCX), 0n);
});

test('a REP runs at most REP_CHUNK elements per execution, RIP staying on it; each element is one retired instruction', () => {
  const m = new Machine(64);
  const count = REP_CHUNK + 1000;
  m.load([0xf3, 0x48, 0xab], { [RAX]: 0x0102030405060708n, [RDI]: 0x100000, [RCX]: count });
  const c = m.cpu;
  const before = c.icount;
  c.run(1);
  assert.equal(c.icount - before, REP_CHUNK);
  assert.equal(m.reg(RCX), 1000n);
  assert.equal(m.reg(RDI), BigInt(0x100000 + 8 * REP_CHUNK));
  assert.equal(c.ripLo, CODE, 'RIP stays on the REP instruction while work remains');
  c.run(1);
  assert.equal(c.icount - before, count);
  assert.equal(m.reg(RCX), 0n);
  assert.equal(c.ripLo, CODE + 3);
  assert.equal(m.mem.read64(0x100000 + 8 * (count - 1)), 0x0102030405060708n);
  assert.equal(m.mem.read64(0x100000 + 8 * count), 0n);
});

test('a #PF in the middle of REP STOSD reports the faulting element: CR2, error code, RDI, RCX', () => {
  const m = new Machine(64);
  m.map(0x51000, -1);
  m.load([0xf3, 0xab], { [RAX]: 0xaabbccdd, [RDI]: 0x50ff8, [RCX]: 10 });
  m.run();
  // Two dwords fit before the page boundary; the third faults (not present, write, supervisor: error code 2).
  assert.deepEqual(m.exception, { vector: 14, error: 2 });
  assert.equal(m.cpu.cr2Lo, 0x51000);
  assert.equal(m.reg(RDI), 0x51000n);
  assert.equal(m.reg(RCX), 8n);
  assert.equal(m.mem.read32(0x50ffc), 0xaabbccdd);
  assert.equal(m.cpu.ripLo, CODE);
});

test('REP STOSD to MMIO writes each element to the owner with its own size', () => {
  const m = new Machine(64);
  m.map(0x60000, MMIO_PHYS);
  m.load([0xf3, 0xab], { [RAX]: 0x11223344, [RDI]: 0x60010, [RCX]: 3 });
  m.run();
  assert.equal(m.exception, null);
  assert.deepEqual(m.host.mmioLog, [
    [MMIO_PHYS + 0x10, 4, 0x11223344], [MMIO_PHYS + 0x14, 4, 0x11223344], [MMIO_PHYS + 0x18, 4, 0x11223344],
  ]);
});

test('an owner-denied destination page stops REP MOVSB at its first byte there, registers precise', () => {
  const m = new Machine(64);
  m.host.perms.set(0x31, ACCESS_READ);
  m.mem.write(0x20000, Uint8Array.from(seq(32)));
  m.load([0xf3, 0xa4], { [RSI]: 0x20000, [RDI]: 0x30ff0, [RCX]: 32 });
  m.run();
  assert.equal(m.host.faults.length, 1);
  assert.equal(m.host.faults[0].gpa, 0x31000);
  assert.equal(m.host.faults[0].insnLength, 2);
  assert.equal(m.reg(RDI), 0x31000n);
  assert.equal(m.reg(RCX), 16n);
  assert.equal(m.cpu.ripLo, CODE);
  assert.deepEqual(m.mem.read(0x30ff0, 16), Uint8Array.from(seq(16)));
  assert.equal(m.mem.read8(0x31000), 0);
});

test('REP MOVSB that overwrites the instructions after it runs the new instructions', () => {
  const m = new Machine(64);
  // rep movsb (F3 A4) copies "mov al, 0x42" (B0 42) over the two NOPs that follow it; then HLT (F4).
  m.mem.write(0x20000, Uint8Array.from([0xb0, 0x42]));
  m.load([0xf3, 0xa4, 0x90, 0x90, 0xf4], { [RAX]: 0, [RSI]: 0x20000, [RDI]: CODE + 2, [RCX]: 2 });
  m.cpu.run(100); // the block (rep movsb, nop, nop, hlt) is decoded before it runs
  assert.equal(m.exception, null);
  assert.equal(m.cpu.ripLo, CODE + 5, 'halted after the HLT');
  assert.equal(m.reg(RAX) & 0xffn, 0x42n);
});

test('REP OUTSB and REP INSW go through the owner in order with port DX', () => {
  const m = new Machine(64);
  m.mem.write(0x20000, Uint8Array.from([0x48, 0x69, 0x21]));
  m.load([0xf3, 0x6e], { [RSI]: 0x20000, [RDX]: 0x3f8, [RCX]: 3 });
  m.run();
  assert.deepEqual(m.host.ioLog, [[0x3f8, 1, 0x48], [0x3f8, 1, 0x69], [0x3f8, 1, 0x21]]);
  assert.equal(m.reg(RSI), 0x20003n);
  m.host.ioLog.length = 0;
  m.host.ioInput.push(0xbeef, 0x1234);
  m.load([0x66, 0xf3, 0x6d], { [RDI]: 0x21000, [RDX]: 0x1f0, [RCX]: 2 });
  m.run();
  assert.deepEqual(m.host.ioLog, [[0x1f0, 2, -1], [0x1f0, 2, -1]]);
  assert.deepEqual(m.mem.read(0x21000, 5), Uint8Array.from([0xef, 0xbe, 0x34, 0x12, 0]));
});

test('INS checks the destination before reading the port: a #PF consumes no input', () => {
  const m = new Machine(64);
  m.map(0x52000, -1);
  m.host.ioInput.push(0x77);
  m.load([0x6c], { [RDI]: 0x52000, [RDX]: 0x60 });
  m.run();
  assert.equal(m.exception?.vector, 14);
  assert.deepEqual(m.host.ioLog, []);
  assert.deepEqual(m.host.ioInput, [0x77]);
});

test('in 64-bit mode an FS override moves the source; an ES override is ignored', () => {
  const m = new Machine(64);
  m.cpu.segBaseLo[FS] = 0x40000;
  m.cpu.segBaseLo[ES] = 0x7000; // ignored in 64-bit mode for the destination too
  m.mem.write(0x40010, Uint8Array.from([0xf5]));
  m.mem.write(0x00010, Uint8Array.from([0xd5, 0xd6]));
  m.mem.write(0x07011, Uint8Array.from([0xe6]));
  m.load([0x64, 0xa4, 0x26, 0xa4], { [RSI]: 0x10, [RDI]: 0x30000 }); // fs movsb; es movsb
  m.run();
  assert.equal(m.exception, null);
  // fs movsb read FS:0x10; es movsb read DS:0x11 (not ES:0x11); both wrote to RDI with no ES base.
  assert.deepEqual(m.mem.read(0x30000, 2), Uint8Array.from([0xf5, 0xd6]));
});

test('32-bit code: a segment override moves the source, ES:DI is fixed, 16-bit SI wraps at 64 KiB', () => {
  const m = new Machine(32);
  const c = m.cpu;
  c.segBaseLo[DS] = 0x20000; c.segBaseLo[ES] = 0x30000; c.segBaseLo[SS] = 0x40000;
  m.mem.write(0x20000, Uint8Array.from([0xd0, 0xd1]));
  m.mem.write(0x40000, Uint8Array.from([0x50]));
  m.mem.write(0x2fffe, Uint8Array.from([0xfe, 0xff]));
  // 36 A4: ss movsb (source SS:ESI); then 67 F3 A4: rep movsb with SI/DI/CX.
  m.load([0x36, 0xa4, 0x67, 0xf3, 0xa4], { [RSI]: 0, [RDI]: 0x100, [RCX]: 0x12340003 });
  m.run();
  assert.equal(m.exception, null);
  assert.equal(m.mem.read8(0x30100), 0x50);
  // The REP copied DS:1..3 (SI 1, 2, 3) to ES:101..103.
  assert.equal(m.reg(RSI), 4n);
  assert.deepEqual(m.mem.read(0x30101, 3), Uint8Array.from([0xd1, 0, 0]));
  assert.equal(m.reg(RCX), 0x12340000n, 'CX counts; the upper half of ECX is kept');
  // Now from SI = 0xFFFE: elements at DS:FFFE, DS:FFFF, then DS:0000 (SI wrapped).
  m.load([0x67, 0xf3, 0xa4], { [RSI]: 0xabcdfffe, [RDI]: 0x200, [RCX]: 3 });
  m.run();
  assert.deepEqual(m.mem.read(0x30200, 3), Uint8Array.from([0xfe, 0xff, 0xd0]));
  assert.equal(m.reg(RSI), 0xabcd0001n);
  assert.equal(m.reg(RDI), 0x203n);
});
