/**
 * A virtual CPU as KVM presents it: `run()` executes guest code until an exit
 * the VMM must handle (port I/O, MMIO outside in-kernel devices, HLT, shutdown)
 * or until the instruction budget is used up. The local APIC, CPUID, the TSC
 * and the MSRs below the VMM live here, "in the kernel".
 *
 * Exits that need an answer (IN, MMIO reads) abandon the instruction; the VMM
 * calls completeIo()/completeMmio() and the next run() re-executes it, this time
 * answered from the completion (KVM's complete_userspace_io).
 */
import { Cpu, CpuRunState } from '../x86/cpu.js';
import { u64FromHalves } from '../x86/u64.js';
import { EventKind } from '../x86/interrupts.js';
import { fault } from '../x86/fault.js';
import { ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_WRITE, WatchedRegister, type CpuHost, type MemFaultInfo, type RegisterAccessInfo } from '../x86/host.js';
import { MSR_APIC_BASE, MSR_TSC, UD } from '../x86/regs.js';
import { PAGE_SIZE } from '../memory/phys-memory.js';
import { findCpuid, type CpuidEntry } from './cpuid.js';
import { KvmError } from './errors.js';
import {
  KVM_MEMORY_EXIT_FLAG_EXEC, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEMORY_EXIT_FLAG_READ, KVM_MEMORY_EXIT_FLAG_WRITE, KVM_MEMORY_EXIT_FLAG_XU, type VcpuExit,
} from './exits.js';
import { LocalApic } from './lapic.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from './memory-attributes.js';
import { checkMpState, KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_SIPI_RECEIVED, mpStateOf, runStateFor } from './mp-state.js';
import * as regs from './vcpu-regs.js';
import { getVcpuEvents, setVcpuEvents, type KvmVcpuEvents, type KvmVcpuEventsReport } from './vcpu-events.js';
import { getMsrs, readMsr, setMsrs, type KvmMsrEntry } from './vcpu-msrs.js';
import { getDebugRegs, setDebugRegs, type KvmDebugRegs } from './vcpu-debugregs.js';
import { checkCopyState, copyState, type KvmCopyState } from './vcpu-copy.js';
import { getRegisterAccessExits, setRegisterAccessExits, type KvmRegisterAccessExits } from './register-access-exits.js';
import { getMbecControl, setMbecControl } from './mbec.js';
import { guestMiscEnableWrite, MISC_ENABLE_INITIAL, MSR_IA32_MISC_ENABLE } from './misc-enable.js';
import { KvmSyncRegs } from './vcpu-sync-regs.js';
import { getFpu, getXcrs, setFpu, setXcrs, type KvmFpu, type KvmXcrs } from './vcpu-fpu.js';
import type { Vm } from './vm.js';
import type { HvPartition } from './hyperv/partition.js';
import type { HvVp } from './hyperv/vp.js';
import { HcOutcome, HypercallDispatcher } from './hyperv/hypercall.js';
import { apicEoi } from './hyperv/apic-access.js';
import { KvmHypercalls } from './kvm-hypercall.js';
import { setTlbFlushInhibit, TlbFlushInhibitState, type KvmHypervTlbFlushInhibit } from './hyperv/tlb-flush-inhibit.js';
import { HV_MSR_RANGE_FIRST, HV_MSR_RANGE_LAST } from '../spec/tlfs.js';
import { faultErr } from '../x86/fault.js';
import { GP } from '../x86/regs.js';

/** 2^64: u64 values are below it (a constant: BigInt arithmetic is not folded). */
const U64_LIMIT = 1n << 64n;

const MSR_TSC_DEADLINE = 0x6e0;
const PREEMPTED: VcpuExit = { reason: 'preempted' };
const HLT: VcpuExit = { reason: 'hlt' };
const WAKEUP: VcpuExit = { reason: 'system-event', type: 'wakeup' };
const NO_BYTES = new Uint8Array(0);

/** The value of an MMIO write as a bigint (lo, and hi for 8 bytes); off the ioeventfd hit path, which needs no BigInt. */
function mmioValue(size: number, lo: number, hi: number): bigint {
  return size === 8 ? u64FromHalves(lo, hi) : BigInt(lo >>> 0);
}

/** The 'register-access' exit's register, by WatchedRegister. */
const WATCHED_NAMES = ['cr0', 'cr4', 'xcr0', 'msr', 'gdtr', 'idtr', 'ldtr', 'tr'] as const satisfies Record<WatchedRegister, string>;

export class Vcpu implements CpuHost {
  readonly id: number;
  readonly vm: Vm;
  readonly cpu: Cpu;
  readonly apic: LocalApic;
  private cpuidEntries: readonly CpuidEntry[] = [];
  private exit: VcpuExit | null = null;
  /** Answer for the IN or MMIO read the last exit asked for. */
  private completion: { kind: 'io' | 'mmio'; addr: number; size: number; value: number; hi: number } | null = null;
  /** icount at the start of the current scheduling round (for guest time). */
  private roundIcount = 0;
  private tscOffset = 0;
  /** IA32_MISC_ENABLE (misc-enable.ts); KVM_GET/SET_MSRS reach it too. */
  miscEnable = MISC_ENABLE_INITIAL;
  /** Bit v: the next time the CPU takes vector v it is EOI'd at once (injectInterrupt's autoEoi). */
  private readonly autoEoi = new Uint32Array(8);
  /** Register-access exits' WRMSR masks (setRegisterAccessExits), or null. */
  private msrWriteMasks: ReadonlyMap<number, bigint> | null = null;
  /** In-kernel Hyper-V state of this vCPU; null when the VM has no Hyper-V interface. */
  hv: HvVp | null = null;
  /**
   * The vCPU's Hyper-V CPUID exposes AccessVsm (set by the Hyper-V layer):
   * the precondition of MP state HV_INACTIVE_VTL (kvm-api-facts.md §3.3).
   */
  vsmAllowed = false;
  /** MP state HV_INACTIVE_VTL: parked above its CPU state until the VMM sets another MP state. */
  private inactiveVtl = false;
  /** memoryAttributes.generation this vCPU's fast caches were derived from. */
  private attrGeneration = -1;
  /** Vector of the last SIPI (KVM's sipi_vector), used when SIPI_RECEIVED is set. */
  private lastSipiVector = 0;
  /**
   * TLB-flush inhibit state (kvm-api-facts §1.3): the inhibit flag, and whether
   * this vCPU is suspended by a flush hypercall and on which vCPU it waits.
   * Set through setTlbFlushInhibit(); hyperv/tlb-flush-inhibit.ts.
   */
  readonly tlbFlush = new TlbFlushInhibitState();
  private syncRegsView: KvmSyncRegs | null = null;
  /** The Hyper-V hypercall dispatcher, made at the first VMCALL. */
  private hypercalls: HypercallDispatcher | null = null;
  /** KVM PV hypercall state (kvm-hypercall.ts), made at the first VMCALL that uses that ABI. */
  private kvmHypercalls: KvmHypercalls | null = null;

  constructor(vm: Vm, id: number, isBsp: boolean) {
    this.vm = vm;
    this.id = id;
    this.cpu = new Cpu(vm.mem, this);
    this.apic = new LocalApic({
      id, isBsp, bus: vm,
      clock: { nowNs: () => this.nowNs(), tscHz: vm.clock.tscHz, readTsc: () => this.tsc() },
      physAddrBits: 40,
    });
    this.apic.onPending = () => { this.cpu.intrCheck = true; };
    this.apic.onAnyEoi = (vector) => this.hv?.onApicEoi(vector);
    if (vm.trace !== null) this.cpu.onDeliver = (kind, vector, hasErr, err) => this.traceDelivery(kind, vector, hasErr, err);
  }

  private traceDelivery(kind: EventKind, vector: number, hasErr: boolean, err: number): void {
    const t = this.vm.trace!;
    const c = this.cpu;
    const rip = u64FromHalves(c.ripLo, c.ripHi).toString(16);
    if (kind === EventKind.External) { t.emit('kvm_inj_virq', this.id, this.nowNs(), { vector, rip }); return; }
    if (kind === EventKind.Nmi) { t.emit('kvm_inj_nmi', this.id, this.nowNs(), { rip }); return; }
    const args: Record<string, string | number | boolean> = { exception: vector, has_error: hasErr, error_code: err, rip, soft: kind !== EventKind.Exception };
    if (c.cur !== null) {
      args.insn = Array.from(c.cur.bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
      args.insn_name = c.cur.name;
    }
    t.emit('kvm_inj_exception', this.id, this.nowNs(), args);
  }

  private trace(name: string, args: Record<string, string | number | boolean>): void {
    this.vm.trace?.emit(name, this.id, this.nowNs(), args);
  }

  /** KVM_SET_CPUID2. */
  setCpuid(entries: readonly CpuidEntry[]): void { this.cpuidEntries = [...entries]; }

  /** Guest time of this vCPU in ns. */
  nowNs(): number {
    return Math.floor(this.vm.clock.roundStartNs + (this.cpu.icount - this.roundIcount) * this.vm.clock.nsPerInsn);
  }
  /**
   * Guest time as the guest can observe it (TSC, reference counter): never
   * earlier than any observation another vCPU made before (GuestClock.observe).
   */
  observedNowNs(): number { return this.vm.clock.observe(this.nowNs()); }
  private tsc(): number { return this.vm.clock.tscAt(this.observedNowNs()) + this.tscOffset; }

  /** Called by the scheduler at the start of each round. */
  startRound(): void { this.roundIcount = this.cpu.icount; }

  /** Whether the vCPU can make progress now (it is not halted or waiting, or an event woke it). */
  get runnable(): boolean {
    const c = this.cpu;
    if (this.tlbFlush.suspended) return false; // events do not end a TLB-flush suspension
    if (this.apic.initPending || this.apic.nmiPending) return true;
    if (this.inactiveVtl) return this.wakeupPending();
    switch (c.runState) {
      case CpuRunState.Running: return true;
      case CpuRunState.Halted: return (c.flags & 0x200) !== 0 && this.apic.pendingVector() >= 0;
      case CpuRunState.WaitForSipi: return this.apic.sipiVector >= 0;
      default: return false;
    }
  }

  /** KVM_RUN: runs at most `budget` instructions. */
  run(budget: number): VcpuExit {
    this.exit = null;
    this.apic.tick();
    this.hv?.tick();
    // Suspended by TLB-flush inhibit: nothing runs and no event is taken until
    // the inhibitor is cleared; the VMM sees a halted vCPU (kvm-api-facts §1.3).
    if (this.tlbFlush.suspended) return HLT;
    // The VMM's answer to a 'hyperv-hcall' exit (KVM's complete_userspace_io).
    this.hypercalls?.applyAnswer();
    this.kvmHypercalls?.applyAnswer(); // the answer to a 'hypercall' exit
    this.takeApicEvents();
    const c = this.cpu;
    if (this.attrGeneration !== this.vm.memoryAttributes.generation) {
      this.attrGeneration = this.vm.memoryAttributes.generation;
      c.permissionsChanged();
    }
    if (this.inactiveVtl) {
      // Blocks like HLT (the 'hlt' exit is "not runnable"); any event ends it with a wake-up exit (§3.3).
      if (!this.wakeupPending()) return HLT;
      if (this.vm.trace !== null) this.trace('kvm_exit', { reason: WAKEUP.reason });
      return WAKEUP;
    }
    if (c.runState === CpuRunState.WaitForSipi) return HLT;
    if (c.runState === CpuRunState.Shutdown) return { reason: 'shutdown', why: 'the vCPU is shut down' };
    if (this.apic.pendingVector() >= 0) c.intrCheck = true;
    c.run(budget);
    const exit = this.exit as VcpuExit | null; // set by the callbacks during c.run()
    if (exit !== null) {
      if (this.vm.trace !== null) this.trace('kvm_exit', { reason: exit.reason });
      return exit;
    }
    if (this.tlbFlush.suspended) return HLT;
    switch (c.runState as CpuRunState) {
      case CpuRunState.Halted: return HLT;
      case CpuRunState.Shutdown: return { reason: 'shutdown', why: 'the vCPU is shut down' };
      default: return PREEMPTED;
    }
  }

  /**
   * KVM_RUN with kvm_run.immediate_exit set: KVM completes the VMM's answer
   * to the last exit (complete_userspace_io) and returns -EINTR without
   * entering the guest. Here that is the answer to a 'hyperv-hcall' or
   * 'hypercall' exit: the result in RAX, RIP past the VMCALL. (An IN or
   * MMIO-read answer is taken when its instruction runs again, at the next
   * run(), as always.) A VMM uses it to finish a call whose vCPU it parks
   * before it runs again: the caller of a VTL switch.
   */
  runImmediateExit(): void {
    this.hypercalls?.applyAnswer();
    this.kvmHypercalls?.applyAnswer();
  }

  /**
   * INIT, SIPI and NMI recorded by the APIC take effect at the next run. An
   * inactive VTL leaves INIT and SIPI pending: only the VMM ends that state.
   */
  private takeApicEvents(): void {
    const a = this.apic, c = this.cpu;
    if (a.initPending && !this.inactiveVtl) {
      a.initPending = false;
      // A SIPI that arrived after the INIT (same scheduling round) stays pending.
      // INIT resets the APIC and the CPU, which then waits for a SIPI (SDM 8.4.1).
      a.reset();
      this.autoEoi.fill(0); // the APIC's IRR is gone, and with it the auto-EOI interrupts
      c.init();
    }
    if (a.sipiVector >= 0 && !this.inactiveVtl) {
      this.lastSipiVector = a.sipiVector;
      if (c.runState === CpuRunState.WaitForSipi) c.startup(a.sipiVector);
      a.sipiVector = -1;
    }
    if (a.nmiPending) { a.nmiPending = false; c.injectNmi(); }
  }

  /** Answer to an 'io' exit with direction 'in'. */
  completeIo(value: number): void {
    if (this.pendingIn === null) throw new Error('completeIo: no IN exit is pending');
    this.completion = { kind: 'io', addr: this.pendingIn.port, size: this.pendingIn.size, value, hi: 0 };
    this.pendingIn = null;
  }
  /** Answer to an 'mmio' read exit. */
  completeMmio(value: bigint): void {
    if (this.pendingMmio === null) throw new Error('completeMmio: no MMIO read exit is pending');
    this.completion = {
      kind: 'mmio', addr: this.pendingMmio.gpa, size: this.pendingMmio.size,
      value: Number(value & 0xffffffffn) | 0, hi: Number((value >> 32n) & 0xffffffffn) | 0,
    };
    this.pendingMmio = null;
  }
  private pendingIn: { port: number; size: number } | null = null;
  private pendingMmio: { gpa: number; size: number } | null = null;

  private takeCompletion(kind: 'io' | 'mmio', addr: number, size: number): { value: number; hi: number } | null {
    const p = this.completion;
    if (p !== null && p.kind === kind && p.addr === addr && p.size === size) { this.completion = null; return p; }
    return null;
  }

  // ---- CpuHost ----

  ioRead(port: number, size: number): number {
    const done = this.takeCompletion('io', port, size);
    if (done !== null) {
      if (this.vm.trace !== null) this.trace('kvm_pio', { rw: 'read', port, size, val: done.value >>> 0 });
      return done.value;
    }
    // A DATAREAD ioeventfd answers in the kernel: no exit (ioeventfd.ts; kvm-api-facts §5.2, our design).
    const fds = this.vm.ioeventfds.pio;
    if (fds.read(port, size, this)) {
      if (this.vm.trace !== null) this.trace('kvm_pio', { rw: 'read', port, size, val: fds.lo });
      return fds.lo;
    }
    this.pendingIn = { port, size };
    this.exit = { reason: 'io', direction: 'in', port, size, value: 0 };
    return this.cpu.abortInstruction();
  }
  ioWrite(port: number, size: number, value: number): void {
    if (this.vm.trace !== null) this.trace('kvm_pio', { rw: 'write', port, size, val: value >>> 0 });
    // A matching ioeventfd consumes the write in the kernel: no exit (ioeventfd.ts, kvm-api-facts §5.1).
    if (this.vm.ioeventfds.pio.write(port, size, value, 0, this)) return;
    this.exit = { reason: 'io', direction: 'out', port, size, value };
    this.cpu.requestStop();
  }

  mmioRead(gpa: number, size: number): number {
    if (this.apic.mode === 'xapic' && this.apic.ownsMmio(gpa)) {
      const v = this.apic.mmioRead(gpa & 0xfff);
      return size >= 4 ? v : v & (size === 1 ? 0xff : 0xffff);
    }
    const done = this.takeCompletion('mmio', gpa, size);
    if (done !== null) {
      if (this.vm.trace !== null) this.trace('kvm_mmio', { rw: 'read', gpa: gpa.toString(16), len: size, val: done.value >>> 0 });
      this.cpu.tHi = done.hi;
      return done.value;
    }
    const fds = this.vm.ioeventfds.mmio; // DATAREAD, as in ioRead
    if (fds.read(gpa, size, this)) {
      if (this.vm.trace !== null) this.trace('kvm_mmio', { rw: 'read', gpa: gpa.toString(16), len: size, val: fds.lo });
      this.cpu.tHi = fds.hi;
      return fds.lo;
    }
    this.pendingMmio = { gpa, size };
    this.exit = { reason: 'mmio', isWrite: false, gpa, size, value: 0n };
    return this.cpu.abortInstruction();
  }
  mmioWrite(gpa: number, size: number, lo: number, hi: number): void {
    if (this.apic.mode === 'xapic' && this.apic.ownsMmio(gpa)) {
      this.apic.mmioWrite(gpa & 0xfff, lo >>> 0);
      this.cpu.intrCheck = true;
      return;
    }
    if (this.vm.trace !== null) this.trace('kvm_mmio', { rw: 'write', gpa: gpa.toString(16), len: size, val: mmioValue(size, lo, hi).toString(16) });
    // A matching ioeventfd consumes the write in the kernel: no exit (ioeventfd.ts, kvm-api-facts §5.1).
    if (this.vm.ioeventfds.mmio.write(gpa, size, lo, hi, this)) return;
    this.exit = { reason: 'mmio', isWrite: true, gpa, size, value: mmioValue(size, lo, hi) };
    this.cpu.requestStop();
  }

  pagePermissions(pfn: number): number {
    const p = this.vm.memoryAttributes.permissions(pfn);
    return this.hv === null ? p : p & this.hv.partition.pagePermissions(pfn);
  }

  /**
   * Memory attributes denied an access: a memory-fault exit (§2.6) and the
   * instruction is abandoned. Flags: exactly one of WRITE, EXEC, READ (in
   * that precedence) plus PRIVATE for a private frame (no guest_memfd slot
   * can back it, so every access to it faults, as kvm_faultin_pfn_private
   * does for a slot that cannot be private).
   *
   * insnLen for execute faults is 0. KVM reports the length of the branch
   * that jumped to the page (a VMX artefact); our CPU faults while fetching,
   * before any instruction there exists, and the previous instruction need
   * not be a branch (a block running into the next page, or event delivery
   * to a handler on a non-executable page). Intercept messages report 0
   * instruction bytes for execute faults anyway (§2.6), and KVM itself uses
   * 0 when the length is unknown.
   */
  memFault(info: MemFaultInfo): void {
    if (this.hv?.partition.isOverlayWrite(info.gpa, info.access)) faultErr(GP, 0); // TLFS: writing the hypercall page is #GP
    const gfn = Math.floor(info.gpa / PAGE_SIZE);
    const attrs = this.vm.memoryAttributes.get(gfn);
    const write = (info.access & ACCESS_WRITE) !== 0;
    const exec = !write && (info.access & (ACCESS_EXEC | ACCESS_EXEC_USER)) !== 0;
    const flags = (write ? KVM_MEMORY_EXIT_FLAG_WRITE : exec ? KVM_MEMORY_EXIT_FLAG_EXEC : KVM_MEMORY_EXIT_FLAG_READ) |
      (info.access === ACCESS_EXEC_USER ? KVM_MEMORY_EXIT_FLAG_XU : 0) |
      ((attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE) ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0);
    const insnLen = exec ? 0 : info.insnLength;
    this.exit = {
      reason: 'memory-fault', flags, gpa: gfn * PAGE_SIZE, size: PAGE_SIZE, insnLen,
      gva: u64FromHalves(info.gvaLo, info.gvaHi), gvaValid: info.gvaValid, origin: info.origin,
      insnBytes: insnLen === 0 ? NO_BYTES : info.insnBytes.slice(0, insnLen),
      exactGpa: info.gpa,
    };
    if (this.vm.trace !== null) {
      const c = this.cpu, cur = c.cur;
      const rip = cur !== null ? u64FromHalves(cur.lo, cur.hi) : u64FromHalves(c.ripLo, c.ripHi);
      this.trace('kvm_mem_attributes_faultin_access_prots', {
        guest_rip: rip.toString(16), gfn: gfn.toString(16), write, exec, mem_attrs: attrs.toString(16),
      });
    }
    this.cpu.abortInstruction();
  }

  /**
   * A watched register access (register-access-exits.ts): the exit, with the
   * instruction left undone; a WRMSR watched through a write mask that
   * changes none of its bits goes on instead.
   */
  registerAccess(info: RegisterAccessInfo): void {
    if (this.msrWriteMasks !== null && info.register === WatchedRegister.Msr && info.write) {
      const mask = this.msrWriteMasks.get(info.msr);
      if (mask !== undefined && (((readMsr(this, info.msr) ?? 0n) ^ u64FromHalves(info.lo, info.hi)) & mask) === 0n) return;
    }
    const register = WATCHED_NAMES[info.register]!;
    this.exit = {
      reason: 'register-access', register, msr: info.msr, write: info.write,
      value: u64FromHalves(info.lo, info.hi), limit: info.limit, memoryOperand: info.memoryOperand, insnLen: info.insnLength,
    };
    if (this.vm.trace !== null) this.trace('kvm_register_access', { register, msr: info.msr.toString(16), write: info.write });
    this.cpu.abortInstruction();
  }

  cpuid(leaf: number, subleaf: number, out: Int32Array): void {
    let e = findCpuid(this.cpuidEntries, leaf, subleaf);
    if (e === undefined) {
      // Intel: leaves above the maximum return the highest basic leaf's data.
      const max = findCpuid(this.cpuidEntries, leaf >= 0x80000000 ? 0x80000000 : 0, 0);
      if (max !== undefined && leaf > (max.eax >>> 0)) e = findCpuid(this.cpuidEntries, findCpuid(this.cpuidEntries, 0, 0)?.eax ?? 0, subleaf);
    }
    out[0] = e?.eax ?? 0; out[1] = e?.ebx ?? 0; out[2] = e?.ecx ?? 0; out[3] = e?.edx ?? 0;
    if (leaf === 1) {
      // Dynamic bits, as KVM updates them: initial APIC ID, APIC enabled, OSXSAVE.
      out[1] = (out[1] & 0x00ffffff) | ((this.id & 0xff) << 24);
      if (this.apic.mode === 'disabled') out[3] &= ~(1 << 9);
      if (this.cpu.cr4 & (1 << 18)) out[2] |= 1 << 27; else out[2] &= ~(1 << 27);
    } else if (leaf === 0xb) {
      out[3] = this.id;
    }
  }

  rdmsr(index: number, out: Int32Array): boolean {
    let v: bigint | undefined;
    if (index === MSR_APIC_BASE) v = this.apic.readApicBase();
    else if (index >= 0x800 && index <= 0x8ff) v = this.apic.rdmsr(index);
    else if (this.hv !== null && index >= HV_MSR_RANGE_FIRST && index <= HV_MSR_RANGE_LAST) v = this.hv.rdmsr(index);
    else if (index === MSR_TSC_DEADLINE) v = this.apic.readTscDeadline();
    else if (index === MSR_TSC) v = BigInt(this.tsc());
    else if (index === MSR_IA32_MISC_ENABLE) v = this.miscEnable;
    if (this.vm.trace !== null) this.trace('kvm_msr', { rw: 'read', msr: index.toString(16), data: v === undefined ? 'gp' : v.toString(16) });
    if (v === undefined) return false;
    out[0] = Number(v & 0xffffffffn) | 0; out[1] = Number((v >> 32n) & 0xffffffffn) | 0;
    return true;
  }
  wrmsr(index: number, lo: number, hi: number): boolean {
    const v = u64FromHalves(lo, hi);
    let ok = false;
    if (index === MSR_APIC_BASE) ok = this.apic.writeApicBase(v);
    else if (index >= 0x800 && index <= 0x8ff) ok = this.apic.wrmsr(index, v);
    else if (this.hv !== null && index >= HV_MSR_RANGE_FIRST && index <= HV_MSR_RANGE_LAST) ok = this.hv.wrmsr(index, v);
    else if (index === MSR_TSC_DEADLINE) { this.apic.writeTscDeadline(v); ok = true; }
    else if (index === MSR_TSC) {
      this.tscOffset = Number(v) - this.vm.clock.tscAt(this.observedNowNs());
      this.hv?.partition.tscWritten(); // the reference TSC page no longer matches this TSC
      ok = true;
    } else if (index === MSR_IA32_MISC_ENABLE) {
      const next = guestMiscEnableWrite(this.miscEnable, v);
      if (next !== null) { this.miscEnable = next; ok = true; }
    }
    this.cpu.intrCheck = true;
    if (this.vm.trace !== null) this.trace('kvm_msr', { rw: 'write', msr: index.toString(16), data: ok ? v.toString(16) : 'gp' });
    return ok;
  }

  /**
   * VMCALL/VMMCALL: KVM's PV hypercall ABI (kvm-hypercall.ts) when the VM has
   * it and the guest has not enabled the Hyper-V interface (GUEST_OS_ID ≠ 0,
   * KVM's kvm_hv_hypercall_enabled); otherwise the Hyper-V hypercall
   * (hyperv/hypercall.ts); #UD when the VM has neither, as on hardware
   * without a hypervisor.
   */
  hypercall(): void {
    if (this.vm.kvmHypercallsEnabled && (this.hv === null || this.hv.partition.guestOsId === 0n)) {
      const k = this.kvmHypercalls ??= new KvmHypercalls(this);
      if (k.dispatch()) {
        this.exit = k.exit;
        this.cpu.abortInstruction(); // RIP stays on the VMCALL until completeKvmHypercall() is applied
      }
      return;
    }
    if (this.hv === null) fault(UD);
    const d = this.hypercalls ??= new HypercallDispatcher(this);
    switch (d.dispatch()) {
      case HcOutcome.Exit:
        this.exit = d.exit;
        this.cpu.retryCurrent(); // RIP stays on the VMCALL until completeHypercall() is applied
        break;
      case HcOutcome.Suspend:
        this.cpu.abortInstruction(); // RIP stays on the VMCALL; run() reports a halted vCPU
        break;
      case HcOutcome.Yield:
        if (this.cpu.pauseExits) this.cpu.requestStop(); // like PAUSE: end the quantum
        break;
      default:
        break;
    }
  }

  /**
   * Answer to a 'hyperv-hcall' exit (kvm_run hyperv.u.hcall.result and the
   * proposed xmm[] array, kvm-api-facts §3.1), applied when run() is next
   * called: XMM0..5 for a successful fast XMM-output call, the result in RAX
   * (EDX:EAX for a 32-bit caller; not for VtlCall/VtlReturn), RIP past the
   * VMCALL. Without an answer, the next run() executes the VMCALL again.
   */
  completeHypercall(result: bigint, xmm?: readonly regs.XmmRegister[]): void {
    if (this.hypercalls === null || !this.hypercalls.awaitingAnswer) {
      throw new KvmError('EINVAL', 'completeHypercall: no hyperv-hcall exit is waiting for an answer');
    }
    if (typeof result !== 'bigint' || result < 0n || result >= U64_LIMIT) {
      throw new KvmError('EINVAL', `the hypercall result must be a bigint in 0..2^64-1, got ${String(result)}`);
    }
    if (xmm !== undefined) {
      if (!Array.isArray(xmm) || xmm.length > 6) throw new KvmError('EINVAL', 'hypercall XMM output is an array of at most 6 registers');
      for (const [k, r] of xmm.entries()) {
        const ok = (b: unknown) => typeof b === 'bigint' && b >= 0n && b < U64_LIMIT;
        if (typeof r !== 'object' || r === null || !ok(r.low) || !ok(r.high)) {
          throw new KvmError('EINVAL', `hypercall XMM output ${k} is not { low, high } 64-bit bigints`);
        }
      }
    }
    this.hypercalls.answerVmmCall(result, xmm === undefined ? undefined : xmm.map((r) => ({ low: r.low, high: r.high })));
  }

  /**
   * Answer to a 'hypercall' exit (kvm_run hypercall.ret, kvm-api-facts §4.2),
   * applied when run() is next called: RAX = ret (32 bits outside 64-bit
   * mode), RIP past the VMCALL. EINVAL without such an exit, twice, or for a
   * value outside -2^63..2^64-1 (negative errnos are stored as u64).
   */
  completeKvmHypercall(ret: bigint): void {
    if (this.kvmHypercalls === null) throw new KvmError('EINVAL', 'completeKvmHypercall: no hypercall exit is waiting for an answer');
    this.kvmHypercalls.setAnswer(ret);
  }

  /**
   * KVM_HYPERV_SET_TLB_FLUSH_INHIBIT (kvm-api-facts §1): EINVAL for flags ≠ 0
   * or inhibit ∉ {0, 1}; clearing wakes the vCPUs whose flush waits on this one.
   */
  setTlbFlushInhibit(arg: KvmHypervTlbFlushInhibit): void { setTlbFlushInhibit(this, arg); }
  halt(): void {}
  shutdown(reason: string): void { this.exit = { reason: 'shutdown', why: reason }; }

  pendingInterrupt(): number { return this.apic.pendingVector(); }
  acknowledgeInterrupt(vector: number): void {
    this.apic.acknowledge(vector);
    this.hv?.onInterruptAcknowledged(vector);
    const word = vector >>> 5, bit = 1 << (vector & 31);
    if ((this.autoEoi[word]! & bit) !== 0) {
      this.autoEoi[word]! &= ~bit;
      // The vector just taken is the highest in service, so this EOI clears exactly it (unless a SynIC AutoEOI SINT
      // on the same vector already did).
      if (this.apic.inService(vector)) apicEoi(this.apic);
    }
  }

  /** Gives this vCPU its Hyper-V state in `partition` (the Vm does this when it has Hyper-V). */
  enableHyperv(partition: HvPartition): void {
    this.hv = partition.createVp(this.id, {
      nowNs: () => this.observedNowNs(), readTsc: () => this.tsc(),
      runtimeNs: () => this.cpu.icount * this.vm.clock.nsPerInsn, apic: this.apic,
    });
    this.vsmAllowed = partition.features.has('AccessVsm');
  }
  readCr8(): number { return this.apic.readCr8(); }
  writeCr8(value: number): void { this.apic.writeCr8(value); this.cpu.intrCheck = true; }
  readTsc(out: Int32Array): void {
    const t = this.tsc();
    out[0] = t | 0; out[1] = Math.floor(t / 4294967296) | 0;
  }

  // ---- KVM vCPU ioctls: registers, MP state, event injection (vcpu-regs.ts, mp-state.ts) ----

  /** KVM_GET_REGS. */
  getRegs(): regs.KvmRegs { return regs.getRegs(this.cpu); }
  /** The GPRs without an ioctl (KVM_CAP_SYNC_REGS, vcpu-sync-regs.ts). */
  get syncRegs(): KvmSyncRegs { return this.syncRegsView ??= new KvmSyncRegs(this.cpu); }
  /** KVM_SET_REGS (EINVAL and no change for bad values, see vcpu-regs.ts). */
  setRegs(r: regs.KvmRegs): void { regs.setRegs(this.cpu, r); }
  /** KVM_GET_SREGS. */
  getSregs(): regs.KvmSregs { return regs.getSregs(this.cpu, this.apic); }
  /** KVM_SET_SREGS (EINVAL and no change for bad values, see vcpu-regs.ts). */
  setSregs(s: regs.KvmSregs): void { regs.setSregs(this.cpu, this.apic, this.vm.mem, s); }
  /** XMM register `index` (0..15), as KVM_GET_FPU has it. */
  getXmm(index: number): regs.XmmRegister { return regs.getXmm(this.cpu, index); }
  setXmm(index: number, value: regs.XmmRegister): void { regs.setXmm(this.cpu, index, value); }

  // ---- KVM vCPU ioctls: events, MSRs, debug registers, FPU and XCRs (vcpu-events.ts, vcpu-msrs.ts, vcpu-debugregs.ts, vcpu-fpu.ts) ----

  /** KVM_GET_VCPU_EVENTS: injected exception/NMI/interrupt, NMI pending and masked, interrupt shadow. */
  getVcpuEvents(): KvmVcpuEventsReport { return getVcpuEvents(this); }
  /**
   * KVM_SET_VCPU_EVENTS (EINVAL and no change for bad values). An injected
   * exception, NMI or interrupt is delivered at the next run() before any
   * instruction executes (how the VMM raises #UD or #GP in the guest).
   */
  setVcpuEvents(events: KvmVcpuEvents): void { setVcpuEvents(this, events); }
  /** KVM_GET_MSRS: the entries read, in order; a shorter list means indices[length] cannot be read. */
  getMsrs(indices: readonly number[]): KvmMsrEntry[] { return getMsrs(this, indices); }
  /** KVM_SET_MSRS: how many entries were written; it stops at the first one the vCPU refuses. */
  setMsrs(entries: readonly KvmMsrEntry[]): number { return setMsrs(this, entries); }
  /** KVM_GET_DEBUGREGS. */
  getDebugRegs(): KvmDebugRegs { return getDebugRegs(this.cpu); }
  /** KVM_SET_DEBUGREGS (EINVAL and no change for bad values). */
  setDebugRegs(d: KvmDebugRegs): void { setDebugRegs(this.cpu, d); }
  /**
   * Our KVM_COPY_VCPU_STATE (vcpu-copy.ts): copies the named register
   * classes of this vCPU into `dst` (another vCPU, of any VM) in place.
   * EINVAL, nothing copied, for a bad request or `dst` = this vCPU.
   */
  copyStateTo(dst: Vcpu, req: KvmCopyState): void {
    checkCopyState(req);
    if (!(dst instanceof Vcpu) || dst === this) throw new KvmError('EINVAL', 'copy-state needs another vCPU as its destination');
    copyState(this.cpu, dst.cpu, req);
  }
  /** Our register-access exits (register-access-exits.ts): EINVAL / E2BIG / EFAULT and no change for a bad configuration. */
  setRegisterAccessExits(cfg: KvmRegisterAccessExits): void { this.msrWriteMasks = setRegisterAccessExits(this.cpu, cfg); }
  getRegisterAccessExits(): KvmRegisterAccessExits { return getRegisterAccessExits(this.cpu, this.msrWriteMasks); }
  /** Mode-based execute control (our extension, mbec.ts): KVM_X86_MBEC_* flags, 0 for off; from the next run(). */
  setMbecControl(flags: number): void { setMbecControl(this.cpu, flags); }
  getMbecControl(): number { return getMbecControl(this.cpu); }
  /** KVM_GET_XCRS. */
  getXcrs(): KvmXcrs { return getXcrs(this.cpu); }
  /** KVM_SET_XCRS (EINVAL and no change for bad values). */
  setXcrs(x: KvmXcrs): void { setXcrs(this.cpu, x); }
  /** KVM_GET_FPU: x87 registers and pointers, XMM0-15, MXCSR. */
  getFpu(): KvmFpu { return getFpu(this.cpu); }
  /** KVM_SET_FPU (EINVAL and no change for bad values). */
  setFpu(f: KvmFpu): void { setFpu(this.cpu, f); }

  /** KVM_GET_MP_STATE: pending INIT/SIPI are taken first (kvm_apic_accept_events); see mp-state.ts for the mapping. */
  getMpState(): number {
    if (!this.tlbFlush.suspended) this.takeApicEvents(); // a suspended vCPU takes no events
    return this.inactiveVtl ? KVM_MP_STATE_HV_INACTIVE_VTL : mpStateOf(this.cpu.runState);
  }

  /**
   * KVM_SET_MP_STATE (checks in mp-state.ts). HV_INACTIVE_VTL parks the vCPU
   * (run() blocks until an event, then returns a wake-up exit); any other
   * state ends that. SIPI_RECEIVED is wait-for-SIPI with the last SIPI pending.
   */
  setMpState(state: number): void {
    checkMpState(state, this.vsmAllowed, this.apic.initSipiBlocked);
    this.inactiveVtl = state === KVM_MP_STATE_HV_INACTIVE_VTL;
    this.cpu.runState = runStateFor(state);
    if (state === KVM_MP_STATE_SIPI_RECEIVED) this.apic.startup(this.lastSipiVector);
    this.cpu.intrCheck = true;
  }

  /** Our INIT/SIPI block (README): INIT and SIPI dropped while `blocked`, and those not yet taken too. EINVAL for a non-boolean. */
  setInitSipiBlocked(blocked: boolean): void {
    if (typeof blocked !== 'boolean') throw new KvmError('EINVAL', `the INIT/SIPI block is true or false, got ${String(blocked)}`);
    this.apic.blockInitSipi(blocked);
  }
  get initSipiBlocked(): boolean { return this.apic.initSipiBlocked; }

  /** Events that end an inactive VTL's wait: HLT's wake-up rules without RFLAGS.IF (§3.3). */
  private wakeupPending(): boolean {
    const a = this.apic, c = this.cpu;
    if (a.initPending || a.sipiVector >= 0) return true;
    if ((a.nmiPending || c.nmiPending) && !c.nmiBlocked) return true;
    return !c.shadow && a.pendingVector() >= 0;
  }

  /**
   * An external interrupt: a fixed, edge-triggered `vector` (16..255) accepted
   * by this vCPU's local APIC, as an MSI or IPI would be. (KVM_INTERRUPT is
   * the userspace-irqchip path and fails with an in-kernel APIC, which is
   * what we have; the APIC drops it while disabled, as hardware does.)
   * Our extension, `autoEoi`: the next time the CPU takes this vector it is
   * EOI'd at once, as KVM does for a SynIC SINT with AutoEOI (the in-service
   * bit never blocks lower priorities; the handler must not EOI). A VMM that
   * raises an interrupt with auto-EOI semantics of its own (VSM's VINA with
   * AutoEoi) needs it. The same vector raised meanwhile without it merges
   * into the one IRR bit and is taken once, auto-EOI'd.
   */
  injectInterrupt(vector: number, opts: { autoEoi?: boolean } = {}): void {
    if (!Number.isInteger(vector) || vector < 16 || vector > 255) {
      throw new KvmError('EINVAL', `interrupt vector ${String(vector)} is not in 16..255 (0..15 are exception vectors)`);
    }
    const autoEoi = opts.autoEoi ?? false;
    if (typeof autoEoi !== 'boolean') throw new KvmError('EINVAL', `autoEoi must be true or false, got ${String(autoEoi)}`);
    this.apic.acceptFixed(vector);
    // Only for a vector the APIC took (a disabled one drops it): the flag must not outlive this interrupt.
    if (autoEoi && this.apic.requested(vector)) this.autoEoi[vector >>> 5]! |= 1 << (vector & 31);
  }

  /** KVM_NMI: queue an NMI for this vCPU. */
  injectNmi(): void { this.apic.nmi(); }
}
