/**
 * A small machine for the hypercall tests and the hypercall benchmark: one
 * Vm with Hyper-V (hv-* flags) and vCPUs with chosen ids, driven through
 * the kvm API the way KVM selftests drive /dev/kvm. The host writes the GDT,
 * IDT, TSS and 4-level page tables into guest memory and puts each vCPU into
 * 64-bit mode (kernel or user), 32-bit protected mode or real mode with
 * setSregs/setRegs; guest programs are assembled with GNU as at test time.
 *
 * Physical layout (the low 4 MiB identity-mapped with 4 KiB pages, P|W|U):
 *   0x1000 GDT   0x2000 IDT (64-bit)   0x3000 TSS   0x7000 ring-0 stack top (TSS.RSP0)
 *   0x10000 code   0x20000 vector stubs (16 bytes each: hlt; [add rsp, 8;] iretq)
 *   0x30000 data   0x40000-0x4ffff hypercall input pages   0x50000 hypercall page
 *   0x80000 + 0x1000 k: stack page of the k-th vCPU   0x200000-0x27ffff page-table pool
 */
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import type { KvmSegment } from '../../src/kvm/vcpu-regs.js';
import { REG_SPIV } from '../../src/kvm/lapic-regs.js';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import { resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import { assemble } from '../x86/helpers/test-machine.js';

export const GDT = 0x1000, IDT = 0x2000, TSS = 0x3000, RING0_STACK = 0x7000;
export const CODE = 0x10000, STUBS = 0x20000, DATA = 0x30000, INPUT = 0x40000, HYPERCALL_PAGE = 0x50000;
export const STACKS = 0x80000;
const PT_POOL = 0x200000, PT_POOL_END = 0x280000;
export const IDENTITY_END = 0x400000;
/** `vmcall; hlt` at CODE: the host sets RCX/RDX/R8/XMM, runs, and reads RAX. */
export const CALL_SITE = CODE;
/** Linux's guest OS ID (open source, Linux): makes the hypercall interface usable (§1.4). */
export const LINUX_GUEST_OS_ID = 0x8100_0000_0000_0000n;

export const SEL = { code64: 0x08, data: 0x10, ucode64: 0x1b, udata: 0x23, tss: 0x28, code32: 0x38 } as const;
/** Page-table entry bits. */
export const P = 1n, W = 2n, U = 4n, PS = 0x80n, G = 0x100n;
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

export interface HvMachineOptions {
  /** QEMU-style hv-* flags (features.ts). */
  flags: readonly string[];
  /** vCPU ids (= VP indices), created in this order; default [0]. */
  ids?: readonly number[];
  /** hv-spinlocks value (NotifyLongSpinWait is available when it is neither 0 nor 0xFFFFFFFF). */
  spinlocks?: number;
  /** Write a non-zero GUEST_OS_ID, as every Hyper-V guest does first (default true). */
  guestOsId?: boolean;
  trace?: boolean;
  /** Guest RAM in bytes (sparse); default 16 MiB. */
  memorySize?: number;
}

export function segment(selector: number, type: number, o: { dpl?: number; l?: number; db?: number; s?: number } = {}): KvmSegment {
  return {
    base: 0n, limit: 0xffffffff, selector, type, present: 1, dpl: o.dpl ?? 0, db: o.db ?? (o.l ? 0 : 1),
    s: o.s ?? 1, l: o.l ?? 0, g: 1, avl: 0, unusable: 0,
  };
}

export class HvMachine {
  readonly vm: Vm;
  readonly vcpus: Vcpu[] = [];
  private ptNext = PT_POOL;
  readonly pml4: number;

  constructor(opts: HvMachineOptions) {
    const hv = resolveHvFeatures({ flags: new Set(opts.flags), spinlocks: opts.spinlocks });
    this.vm = new Vm({ memorySize: opts.memorySize ?? 16 << 20, hyperv: hv, trace: opts.trace ?? true });
    for (const id of opts.ids ?? [0]) {
      const v = this.vm.createVcpu(id);
      v.apic.mmioWrite(REG_SPIV, 0x1ff); // software-enable the APIC so it accepts interrupts
      this.vcpus.push(v);
    }
    if ((opts.guestOsId ?? true) && this.vm.hyperv !== null) this.vm.hyperv.writeGuestOsId(LINUX_GUEST_OS_ID);
    this.writeTables();
    this.pml4 = this.allocPage();
    for (let a = 0; a < IDENTITY_END; a += 0x1000) this.map(a, a, P | W | U);
    this.vm.mem.write(CALL_SITE, Uint8Array.from([0x0f, 0x01, 0xc1, 0xf4]));
    for (const v of this.vcpus) this.enter64(v, CALL_SITE);
  }

  vcpu(id: number): Vcpu {
    const v = this.vcpus.find((x) => x.id === id);
    if (v === undefined) throw new Error(`no vCPU ${id}`);
    return v;
  }

  get partition() { return this.vm.hyperv!; }

  /** Assembles `src` (Intel syntax; add `.code64` etc.) to run at `org`, loads it there, returns its labels. */
  asm(src: string, org: number): Record<string, number> {
    const a = assemble(src, org);
    this.vm.mem.write(org, a.bytes);
    return a.labels;
  }

  // ---------------------------------------------------------------- descriptor tables

  private writeTables(): void {
    const m = this.vm.mem;
    m.write64(GDT, 0n);
    m.write64(GDT + 0x08, 0x00af9b000000ffffn); // code64, DPL 0
    m.write64(GDT + 0x10, 0x00cf93000000ffffn); // data, DPL 0
    m.write64(GDT + 0x18, 0x00affb000000ffffn); // code64, DPL 3
    m.write64(GDT + 0x20, 0x00cff3000000ffffn); // data, DPL 3
    m.write64(GDT + 0x28, 0x67n | (BigInt(TSS) << 16n) | (0x89n << 40n)); // 64-bit TSS, available
    m.write64(GDT + 0x30, 0n);
    m.write64(GDT + 0x38, 0x00cf9b000000ffffn); // code32, DPL 0
    m.fill(TSS, 0x68, 0);
    m.write64(TSS + 4, BigInt(RING0_STACK)); // RSP0
    for (let v = 0; v < 256; v++) this.setGate(v, STUBS + 16 * v);
    for (let v = 0; v < 256; v++) {
      m.write(STUBS + 16 * v, Uint8Array.from(ERROR_CODE_VECTORS.has(v) ? [0xf4, 0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf] : [0xf4, 0x48, 0xcf]));
    }
    // Real-mode IVT entry for #UD (vector 6): 0x2000:0x0060, the vector-6 stub.
    m.write32(6 * 4, (0x2000 << 16) | 0x60);
  }

  /** A 64-bit interrupt gate (type 0xE, DPL 0) for `vector` to `handler`. */
  setGate(vector: number, handler: number): void {
    const off = BigInt(handler);
    const lo = (off & 0xffffn) | (BigInt(SEL.code64) << 16n) | (0x8en << 40n) | (((off >> 16n) & 0xffffn) << 48n);
    this.vm.mem.write64(IDT + 16 * vector, lo);
    this.vm.mem.write64(IDT + 16 * vector + 8, off >> 32n);
  }

  // ---------------------------------------------------------------- paging

  private allocPage(): number {
    if (this.ptNext >= PT_POOL_END) throw new RangeError('page-table pool exhausted');
    const a = this.ptNext;
    this.ptNext += 0x1000;
    this.vm.mem.fill(a, 0x1000, 0);
    return a;
  }

  /** Physical address of the entry for `va` at `level` (4 PML4E .. 1 PTE), creating tables above it. */
  entryAddr(va: number, level: number): number {
    let table = this.pml4;
    for (let l = 4; l > level; l--) {
      const at = table + Math.floor(va / 2 ** (12 + 9 * (l - 1))) % 512 * 8;
      let e = this.vm.mem.read64(at);
      if ((e & P) === 0n) { e = BigInt(this.allocPage()) | P | W | U; this.vm.mem.write64(at, e); }
      table = Number(e & 0xffffffffff000n);
    }
    return table + Math.floor(va / 2 ** (12 + 9 * (level - 1))) % 512 * 8;
  }

  /** Maps the 4 KiB page at `va` to `pa` (writes the PTE only: TLBs keep what they cached). Returns the PTE address. */
  map(va: number, pa: number, flags: bigint): number {
    const at = this.entryAddr(va, 1);
    this.vm.mem.write64(at, BigInt(pa) | flags);
    return at;
  }

  /** Maps a 2 MiB page at `va` to `pa`. */
  map2M(va: number, pa: number, flags: bigint): number {
    const at = this.entryAddr(va, 2);
    this.vm.mem.write64(at, BigInt(pa) | flags | PS);
    return at;
  }

  // ---------------------------------------------------------------- entering modes

  private stackTop(v: Vcpu): number { return STACKS + 0x1000 * (this.vcpus.indexOf(v) + 1); }

  /** 64-bit mode with this machine's tables; user mode (CPL 3) on request; RFLAGS.IF with `interrupts`. */
  enter64(v: Vcpu, entry: number, o: { user?: boolean; interrupts?: boolean } = {}): void {
    const s = v.getSregs();
    s.cs = o.user ? segment(SEL.ucode64, 0xb, { dpl: 3, l: 1 }) : segment(SEL.code64, 0xb, { l: 1 });
    s.ds = s.es = s.ss = o.user ? segment(SEL.udata, 0x3, { dpl: 3 }) : segment(SEL.data, 0x3);
    s.fs = s.gs = segment(SEL.data, 0x3);
    s.tr = { ...segment(SEL.tss, 0xb, { s: 0, db: 0 }), base: BigInt(TSS), limit: 0x67, g: 0 };
    s.gdt = { base: BigInt(GDT), limit: 0x3f };
    s.idt = { base: BigInt(IDT), limit: 256 * 16 - 1 };
    s.cr0 = 0x80050033n; // PG, AM, WP, NE, ET, MP, PE
    s.cr3 = BigInt(this.pml4);
    s.cr4 = 0x6a0n; // PAE, PGE, OSFXSR, OSXMMEXCPT
    s.efer = 0x500n; // LME, LMA
    v.setSregs(s);
    const r = v.getRegs();
    r.rip = BigInt(entry);
    r.rsp = BigInt(this.stackTop(v));
    r.rflags = o.interrupts ? 0x202n : 0x2n;
    v.setRegs(r);
    v.setMpState(KVM_MP_STATE_RUNNABLE); // leave a HLT of an earlier program
  }

  /**
   * Continues `v` at `entry` in its current mode: RIP, RSP, RFLAGS and MP state
   * only. Unlike enter64 (setSregs flushes the TLB), the TLB keeps what it cached.
   */
  jump(v: Vcpu, entry: number, o: { interrupts?: boolean } = {}): void {
    const r = v.getRegs();
    r.rip = BigInt(entry);
    r.rsp = BigInt(this.stackTop(v));
    r.rflags = o.interrupts ? 0x202n : 0x2n;
    v.setRegs(r);
    v.setMpState(KVM_MP_STATE_RUNNABLE);
  }

  /** 32-bit protected mode, flat segments, no paging. */
  enter32(v: Vcpu, entry: number): void {
    const s = v.getSregs();
    s.cs = segment(SEL.code32, 0xb);
    s.ds = s.es = s.ss = s.fs = s.gs = segment(SEL.data, 0x3);
    s.gdt = { base: BigInt(GDT), limit: 0x3f };
    s.cr0 = 0x11n; // PE, ET
    s.cr3 = 0n; s.cr4 = 0x600n; s.efer = 0n;
    v.setSregs(s);
    const r = v.getRegs();
    r.rip = BigInt(entry); r.rsp = BigInt(this.stackTop(v)); r.rflags = 2n;
    v.setRegs(r);
    v.setMpState(KVM_MP_STATE_RUNNABLE);
  }

  /** Real mode at (entry >> 4):0 with the IVT at 0. */
  enterReal(v: Vcpu, entry: number): void {
    const s = v.getSregs();
    const real = (sel: number, type: number): KvmSegment => ({
      base: BigInt(sel << 4), limit: 0xffff, selector: sel, type, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0,
    });
    s.cs = real(entry >> 4, 0xb);
    s.ds = s.es = s.ss = s.fs = s.gs = real(0, 0x3);
    s.idt = { base: 0n, limit: 0x3ff };
    s.cr0 = 0x10n; s.cr3 = 0n; s.cr4 = 0n; s.efer = 0n;
    v.setSregs(s);
    const r = v.getRegs();
    r.rip = 0n; r.rsp = 0x7000n; r.rflags = 2n;
    v.setRegs(r);
    v.setMpState(KVM_MP_STATE_RUNNABLE);
  }

  // ---------------------------------------------------------------- running

  /** Runs `v` until an exit other than 'preempted' (at most `budget` instructions); returns that exit. */
  runToExit(v: Vcpu, budget = 1_000_000): VcpuExit {
    const start = v.cpu.icount;
    for (;;) {
      const e = v.run(10_000);
      if (e.reason !== 'preempted') return e;
      if (v.cpu.icount - start > budget) throw new Error(`vCPU ${v.id} did not stop within ${budget} instructions (RIP 0x${this.rip(v).toString(16)})`);
    }
  }

  rip(v: Vcpu): bigint { return v.getRegs().rip; }

  /** The vector whose stub `v` halted in, or -1. */
  stubVector(v: Vcpu): number {
    const off = Number(this.rip(v)) - 1 - STUBS;
    return off >= 0 && off < 256 * 16 && off % 16 === 0 ? off / 16 : -1;
  }

  /**
   * One hypercall from 64-bit kernel mode at CALL_SITE (`vmcall; hlt`): RCX,
   * RDX, R8 and XMM0.. as given; runs until the vCPU stops. Returns the exit,
   * RAX parsed as a result value, and RIP. The TLB is left alone when the
   * vCPU is already in 64-bit kernel mode.
   */
  hypercall(v: Vcpu, control: bigint, rdx = 0n, r8 = 0n, xmm: readonly bigint[] = []): HypercallRun {
    if (v.cpu.codeSize === 64 && v.cpu.cpl === 0) this.jump(v, CALL_SITE); else this.enter64(v, CALL_SITE);
    const r = v.getRegs();
    r.rcx = control; r.rdx = rdx; r.r8 = r8; r.rax = 0xdeadn;
    v.setRegs(r);
    for (let k = 0; k < xmm.length; k += 2) v.setXmm(k / 2, { low: xmm[k], high: xmm[k + 1] ?? 0n });
    const exit = this.runToExit(v);
    const rax = v.getRegs().rax;
    return { exit, rax, ...parseHypercallResult(rax), rip: this.rip(v), ud: this.stubVector(v) === 6 };
  }

  /** Writes u64 values at `gpa` (hypercall input blocks). */
  writeQwords(gpa: number, values: readonly bigint[]): void {
    values.forEach((x, k) => this.vm.mem.write64(gpa + 8 * k, BigInt.asUintN(64, x)));
  }
}

export interface HypercallRun {
  readonly exit: VcpuExit;
  readonly rax: bigint;
  readonly status: number;
  readonly repsCompleted: number;
  readonly rip: bigint;
  /** The vCPU took #UD (it halted in the vector-6 stub). */
  readonly ud: boolean;
}

/** RIP after CALL_SITE's VMCALL completed and the HLT ran. */
export const AFTER_CALL = BigInt(CALL_SITE + 4);
