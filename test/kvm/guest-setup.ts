/**
 * Host-side guest setup for kvm API tests, the way KVM selftests prepare a
 * vCPU: a GDT and guest code is written straight into guest memory and the vCPU is put
 * into 32-bit protected mode (flat segments, optionally 32-bit paging) or
 * 64-bit mode through setSregs/setRegs. No firmware, no loader.
 */
import type { KvmSegment, KvmSregs } from '../../src/kvm/vcpu-regs.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { Vm } from '../../src/kvm/vm.js';

export const CR0_PE = 1n, CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const EFER_LME = 1n << 8n, EFER_LMA = 1n << 10n;

/** Where the GDT goes: null, 0x08 flat code (32-bit, or 64-bit in long mode), 0x10 flat data. */
export const GDT = 0x500;

function writeGdt(v: Vcpu, long: boolean): void {
  const mem = v.vm.mem;
  mem.write64(GDT, 0n);
  mem.write64(GDT + 8, long ? 0x00af9b000000ffffn : 0x00cf9b000000ffffn);
  mem.write64(GDT + 16, 0x00cf93000000ffffn);
}

/** A flat segment: base 0, 4 GiB limit, present, DPL 0. */
export function flatSegment(selector: number, type: number, l = 0): KvmSegment {
  return { base: 0n, limit: 0xffffffff, selector, type, present: 1, dpl: 0, db: l ? 0 : 1, s: 1, l, g: 1, avl: 0, unusable: 0 };
}

/** Flat 32-bit protected mode (CS 0x08 code, data 0x10), paging off unless `pageDirectory` is given (32-bit paging). */
export function enterFlat32(v: Vcpu, entry: number, opts: { pageDirectory?: number; stack?: number } = {}): void {
  const s: KvmSregs = v.getSregs();
  s.cs = flatSegment(0x08, 0xb);
  s.ds = s.es = s.fs = s.gs = s.ss = flatSegment(0x10, 0x3);
  s.gdt = { base: BigInt(GDT), limit: 23 };
  writeGdt(v, false);
  s.cr0 = (s.cr0 | CR0_PE) & ~CR0_PG;
  if (opts.pageDirectory !== undefined) { s.cr0 |= CR0_PG; s.cr3 = BigInt(opts.pageDirectory); }
  v.setSregs(s);
  const r = v.getRegs();
  r.rip = BigInt(entry);
  r.rsp = BigInt(opts.stack ?? 0x8000);
  r.rflags = 2n;
  v.setRegs(r);
}

/** 64-bit mode with 4-level paging identity-mapping the first 2 MiB (tables at `tables`..+0x3000). */
export function enterLong64(v: Vcpu, entry: number, tables = 0x20000): void {
  const mem = v.vm.mem;
  const P = 1n, W = 2n, PS = 0x80n, A = 0x20n, D = 0x40n;
  mem.write64(tables, BigInt(tables + 0x1000) | P | W | A);          // PML4[0] -> PDPT
  mem.write64(tables + 0x1000, BigInt(tables + 0x2000) | P | W | A); // PDPT[0] -> PD
  mem.write64(tables + 0x2000, 0n | P | W | PS | A | D);             // PD[0]: 2 MiB page at 0
  const s = v.getSregs();
  s.cs = flatSegment(0x08, 0xb, 1);
  s.ds = s.es = s.fs = s.gs = s.ss = flatSegment(0x10, 0x3);
  s.gdt = { base: BigInt(GDT), limit: 23 };
  writeGdt(v, true);
  s.cr0 = s.cr0 | CR0_PE | CR0_PG;
  s.cr3 = BigInt(tables);
  s.cr4 = CR4_PAE;
  s.efer = EFER_LME | EFER_LMA;
  v.setSregs(s);
  const r = v.getRegs();
  r.rip = BigInt(entry);
  r.rsp = 0x8000n;
  r.rflags = 2n;
  v.setRegs(r);
}

/** Writes code bytes into guest memory. */
export function writeCode(v: Vcpu, gpa: number, bytes: readonly number[]): void {
  v.vm.mem.write(gpa, Uint8Array.from(bytes));
}

/** A 32-bit interrupt gate (type 0x8E) for `vector` in an IDT at `idt`, selector 0x08. */
export function setGate32(v: Vcpu, idt: number, vector: number, handler: number): void {
  const mem = v.vm.mem;
  mem.write32(idt + 8 * vector, (0x08 << 16) | (handler & 0xffff));
  mem.write32(idt + 8 * vector + 4, ((handler >>> 16) << 16) | 0x8e00);
}

/** Points IDTR at `idt` with room for 256 gates. */
export function loadIdt(v: Vcpu, idt: number): void {
  const s = v.getSregs();
  s.idt = { base: BigInt(idt), limit: 256 * 8 - 1 };
  v.setSregs(s);
}

/**
 * A 2 MiB Vm's vCPU in flat 32-bit mode at `code` (0x1000), with an IDT at
 * 0x6000 whose vector 0x30 and NMI handlers report on ports 0x81 / 0x82 and
 * halt, and a software-enabled local APIC: for event-delivery tests.
 */
export function eventTestVcpu(code: readonly number[]): Vcpu {
  const v = new Vm({ memorySize: 2 << 20 }).createVcpu(0);
  writeCode(v, 0x1000, code);
  writeCode(v, 0x7000, [0xe6, 0x81, 0xf4]); // vector 0x30: out 0x81, al; hlt
  writeCode(v, 0x7100, [0xe6, 0x82, 0xf4]); // NMI: out 0x82, al; hlt
  setGate32(v, 0x6000, 0x30, 0x7000);
  setGate32(v, 0x6000, 2, 0x7100);
  enterFlat32(v, 0x1000);
  loadIdt(v, 0x6000);
  v.apic.mmioWrite(0xf0, 0x1ff); // SPIV: software-enabled
  return v;
}
