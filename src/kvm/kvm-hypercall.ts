/**
 * The KVM paravirtual hypercall ABI (Linux Documentation/virt/kvm/x86/
 * hypercalls.rst; kvm-api-facts §4): VMCALL or VMMCALL with the number in
 * RAX and up to four arguments in RBX, RCX, RDX, RSI; the result in RAX.
 * Outside 64-bit mode the number, the arguments and the result are 32 bits
 * (the upper halves are dropped, and RAX gets the result zero-extended).
 * Order, as kvm_emulate_hypercall: CPL > 0 ⇒ -KVM_EPERM before the number is
 * looked at; then the call; an unknown number ⇒ -KVM_ENOSYS.
 *
 * Which calls exist depends on the VM (the numbers clash, §4.3):
 *  - protmem RFC mode (VmOptions.protectedMemoryRfc): 12 ENABLE_MEM_PROTECTED,
 *    13 MEM_SHARE, 14 MEM_UNSHARE (protected-memory.ts, §4.1);
 *  - otherwise (upstream): 12 MAP_GPA_RANGE, which exits to the VMM when it
 *    enabled KVM_CAP_EXIT_HYPERCALL for it (§4.2); 13 and 14 are unknown.
 * Only those: the other upstream KVM hypercalls (KICK_CPU, SEND_IPI, ...)
 * are not modelled and answer -KVM_ENOSYS.
 *
 * Vcpu.hypercall() routes VMCALL here when the VM has the KVM PV interface
 * (Vm.kvmHypercallsEnabled) and the guest has not enabled the Hyper-V
 * interface (GUEST_OS_ID ≠ 0: KVM's kvm_hv_hypercall_enabled, which makes KVM
 * run the Hyper-V ABI instead).
 */
import type { CpuidEntry } from './cpuid.js';
import type { VcpuExit } from './exits.js';
import { KvmError } from './errors.js';
import type { Vcpu } from './vcpu.js';
import type { Vm } from './vm.js';
import { u64FromHalves as u64 } from '../x86/u64.js';

/** Hypercall numbers (include/uapi/linux/kvm_para.h; the RFC's own three, §4.1). */
export const KVM_HC_ENABLE_MEM_PROTECTED = 12;
export const KVM_HC_MEM_SHARE = 13;
export const KVM_HC_MEM_UNSHARE = 14;
/** Upstream's number 12 (§4.2): the same number as ENABLE_MEM_PROTECTED, hence the per-VM mode. */
export const KVM_HC_MAP_GPA_RANGE = 12;

/** Result values: KVM's own (kvm_para.h) and the Linux errnos the RFC returns (§4.1). */
export const KVM_ENOSYS = 1000;
export const KVM_EPERM = 1;
export const KVM_EINVAL = 22;
export const ENOMEM = 12;
export const EINTR = 4;

/** KVM_CAP_EXIT_HYPERCALL (§4.2): its argument is a mask of hypercall numbers that exit; only MAP_GPA_RANGE may. */
export const KVM_CAP_EXIT_HYPERCALL = 201;
export const KVM_EXIT_HYPERCALL_VALID_MASK = 1 << KVM_HC_MAP_GPA_RANGE;
/** MAP_GPA_RANGE attributes (a2): page size 2M bit 0, 1G bit 1 (4K = 0); ENCRYPTED (private) bit 4, DECRYPTED (shared) 0. */
export const KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1 << 0;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_1G = 1 << 1;
export const KVM_MAP_GPA_RANGE_ENCRYPTED = 1 << 4;

/** KVM's CPUID leaves: the "KVMKVMKVM\0\0\0" signature and the PV feature bits (EAX of the next leaf). */
export const KVM_CPUID_SIGNATURE = 0x40000000;
export const KVM_CPUID_FEATURES = 0x40000001;
/** Feature bits in KVM_CPUID_FEATURES EAX: 15 is MEM_PROTECTED in the RFC and MSI_EXT_DEST_ID upstream (§4.3). */
export const KVM_FEATURE_MEM_PROTECTED = 15;
export const KVM_FEATURE_HC_MAP_GPA_RANGE = 16;

/** VMCALL (0F 01 C1) and VMMCALL (0F 01 D9) are 3 bytes. */
const VMCALL_BYTES = 3;
const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6;
const U64 = 1n << 64n;

/**
 * KVM's PV CPUID leaves for `vm` at `base` (0x40000000, or 0x40000100 when
 * Hyper-V's leaves take 0x40000000, as QEMU places them; guests scan in 0x100
 * steps for the signature): the signature leaf, with EAX = the highest KVM
 * leaf, and the features leaf. Features: MEM_PROTECTED (bit 15) in RFC mode,
 * HC_MAP_GPA_RANGE (bit 16) once MAP_GPA_RANGE exits are enabled; never both
 * (§4.3). The VMM puts these into the vCPUs' CPUID (KVM_SET_CPUID2).
 */
export function kvmPvCpuidEntries(vm: Vm, base = KVM_CPUID_SIGNATURE): CpuidEntry[] {
  const sig = (s: string) => (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) | 0;
  let features = 0;
  if (vm.protectedMemory !== null) features |= 1 << KVM_FEATURE_MEM_PROTECTED;
  else if ((vm.hypercallExitMask & KVM_EXIT_HYPERCALL_VALID_MASK) !== 0) features |= 1 << KVM_FEATURE_HC_MAP_GPA_RANGE;
  const leaf = (fn: number, eax: number, ebx: number, ecx: number, edx: number): CpuidEntry =>
    ({ function: fn, index: 0, significantIndex: false, eax, ebx, ecx, edx });
  return [
    leaf(base, (base + 1) | 0, sig('KVMK'), sig('VMKV'), sig('M\0\0\0')),
    leaf(base + 1, features, 0, 0, 0),
  ];
}


/** One vCPU's KVM hypercall state: the call in flight to the VMM and its answer. */
export class KvmHypercalls {
  /** The exit for the VMM after dispatch() returned true. */
  exit: VcpuExit | null = null;
  private pending = false;
  private answer: bigint | null = null;

  constructor(private readonly vcpu: Vcpu) {}

  /**
   * Handles the VMCALL the CPU just executed (RIP is past it). Returns true
   * when the call exits to the VMM (`exit`; the caller leaves RIP on the
   * VMCALL), false when RAX holds the result.
   */
  dispatch(): boolean {
    const v = this.vcpu, c = v.cpu, r = c.rlo, h = c.rhi;
    const long = c.codeSize === 64;
    const reg = (k: number): bigint => (long ? u64(r[k], h[k]) : BigInt(r[k] >>> 0));
    const nr = reg(RAX), a0 = reg(RBX), a1 = reg(RCX), a2 = reg(RDX), a3 = reg(RSI);
    v.vm.trace?.emit('kvm_hypercall', v.id, v.nowNs(), {
      nr: nr.toString(16), a0: a0.toString(16), a1: a1.toString(16), a2: a2.toString(16), a3: a3.toString(16),
    });
    let ret: bigint;
    if (c.cpl !== 0) {
      ret = -BigInt(KVM_EPERM);
    } else {
      const out = this.call(nr, a0, a1, a2, long);
      if (out === 'exit') return true;
      ret = BigInt(out);
    }
    this.writeRax(ret, long);
    return false;
  }

  private call(nr: bigint, a0: bigint, a1: bigint, a2: bigint, long: boolean): number | 'exit' {
    const vm = this.vcpu.vm, pm = vm.protectedMemory;
    if (pm !== null) {
      // protmem RFC mode (§4.1): 12/13/14 are the RFC's; nothing else exists.
      if (nr === BigInt(KVM_HC_ENABLE_MEM_PROTECTED)) return pm.enable();
      if (nr === BigInt(KVM_HC_MEM_SHARE)) return pm.share(a0, a1);
      if (nr === BigInt(KVM_HC_MEM_UNSHARE)) return pm.unshare(a0, a1);
      return -KVM_ENOSYS;
    }
    if (nr === BigInt(KVM_HC_MAP_GPA_RANGE)) return this.mapGpaRange(a0, a1, a2, long);
    return -KVM_ENOSYS;
  }

  /**
   * KVM_HC_MAP_GPA_RANGE (§4.2): -KVM_ENOSYS unless the VMM asked for its
   * exit; a GPA that is not 4 KiB aligned, 0 pages, or a range whose last
   * frame number would pass 2^64 ⇒ -KVM_EINVAL; otherwise the exit. KVM does
   * not look at the attributes and converts nothing itself: the VMM does.
   */
  private mapGpaRange(gpa: bigint, npages: bigint, attrs: bigint, long: boolean): number | 'exit' {
    if ((this.vcpu.vm.hypercallExitMask & KVM_EXIT_HYPERCALL_VALID_MASK) === 0) return -KVM_ENOSYS;
    if ((gpa & 0xfffn) !== 0n || npages === 0n || (gpa >> 12n) + npages >= U64) return -KVM_EINVAL;
    this.exit = { reason: 'hypercall', nr: KVM_HC_MAP_GPA_RANGE, args: [gpa, npages, attrs], longMode: long };
    this.pending = true;
    this.answer = null;
    return 'exit';
  }

  /** Whether a 'hypercall' exit waits for completeKvmHypercall(). */
  get awaitingAnswer(): boolean { return this.pending && this.answer === null; }

  /**
   * kvm_run hypercall.ret (Vcpu.completeKvmHypercall). A u64, or a negative
   * errno such as -22n for convenience (stored as its two's complement, as a
   * C VMM's `run->hypercall.ret = -EINVAL` is).
   */
  setAnswer(ret: bigint): void {
    if (!this.awaitingAnswer) throw new KvmError('EINVAL', 'completeKvmHypercall: no hypercall exit is waiting for an answer');
    if (typeof ret !== 'bigint' || ret < -(1n << 63n) || ret >= U64) {
      throw new KvmError('EINVAL', `the hypercall result must be a bigint in -2^63..2^64-1, got ${String(ret)}`);
    }
    this.answer = BigInt.asUintN(64, ret);
  }

  /**
   * Applies the answer at the start of the next run (KVM's
   * complete_hypercall_exit): RAX = ret, truncated to 32 bits unless the vCPU
   * is in 64-bit mode, and RIP past the VMCALL. Without an answer nothing
   * happens and the VMCALL runs again.
   */
  applyAnswer(): void {
    if (!this.pending || this.answer === null) return;
    const ret = this.answer;
    this.pending = false; this.answer = null; this.exit = null;
    const c = this.vcpu.cpu, long = c.codeSize === 64;
    this.writeRax(ret, long);
    const next = (c.ripLo >>> 0) + VMCALL_BYTES;
    if (long) { c.ripHi = next > 0xffffffff ? (c.ripHi + 1) | 0 : c.ripHi; c.ripLo = next | 0; }
    else if (c.codeSize === 32) { c.ripLo = next | 0; c.ripHi = 0; }
    else { c.ripLo = next & 0xffff; c.ripHi = 0; }
  }

  private writeRax(ret: bigint, long: boolean): void {
    const c = this.vcpu.cpu, v = BigInt.asUintN(64, ret);
    c.rlo[RAX] = Number(v & 0xffffffffn) | 0;
    c.rhi[RAX] = long ? Number(v >> 32n) | 0 : 0;
  }
}
