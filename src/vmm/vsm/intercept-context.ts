/**
 * The faulting context of a memory intercept (intercept-message.ts) taken
 * from a kvm Vcpu right after its run() returned a 'memory-fault' exit
 * (kvm-api-facts §2.5/§2.6): RIP is still on the faulting instruction (for
 * an execute fault, on the address fetched), insnLen/insnBytes describe it
 * (none for execute faults), and the registers are as before it.
 *
 * What the exit cannot tell and what we choose (tlfs-vsm-facts §4.4/§4.5):
 * - InterruptionPending: the exit has no vectoring information (KVM's
 *   exit_int_info), so a fault during event delivery is not flagged: 0.
 * - DebugActive: DR7 enables a breakpoint (bits 7:0 non-zero); the sheet
 *   does not define it further.
 * - GvaGpaValid / TlbLocked: only with `lockTlb` (then the VMM must really
 *   lock: setTlbFlushInhibit on this Vcpu until the higher VTL returns, §3.9).
 * - TprPriority: 0 (the sheet names the byte without a meaning; CR8 is in the header).
 * - CacheType: the caller's (default WB, which is what paging-off memory is, §5.4).
 * - GVA: the access's linear address when gvaValid, else 0.
 * - GPA: the exit's exactGpa: the first byte of the denied data access or
 *   fetch, or for a page-walk access the paging-structure entry read or
 *   A/D-updated (the GVA is then the address being translated).
 */
import type { VcpuExit } from '../../kvm/exits.js';
import { KVM_MEMORY_EXIT_FLAG_EXEC, KVM_MEMORY_EXIT_FLAG_WRITE } from '../../kvm/exits.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import type { KvmRegs, KvmSregs } from '../../kvm/vcpu-regs.js';
import { HvCacheType, HvInterceptAccessType } from '../../spec/tlfs.js';
import { CR0_AM, CR0_PE, EFER_LMA } from '../../x86/regs.js';
import { interruptShadow, readDebugRegs } from './cpu-state-adapter.js';
import { VsmError, uint } from './errors.js';
import type { InterceptHeaderContext, MemoryInterceptContext } from './intercept-message.js';
import { hvSegmentFromKvm } from './segment.js';

export type MemoryFaultExit = Extract<VcpuExit, { reason: 'memory-fault' }>;

export interface InterceptContextOptions {
  /** VP index of the faulting VP (the Vcpu id in our VMM). */
  vpIndex: number;
  /** The VTL the faulting Vcpu runs. */
  vtl: number;
  /** HV_CACHE_TYPE of the faulting GPA; default WriteBack. */
  cacheType?: number;
  /** Report GvaGpaValid + TlbLocked when the GVA is valid (the VMM then holds the lower VTL's TLB lock). */
  lockTlb?: boolean;
}

/** Intercept access type of a memory-fault exit (exactly one of R/W/X is set: write, then exec, else read). */
export function accessTypeOfFault(flags: number): number {
  if (flags & KVM_MEMORY_EXIT_FLAG_WRITE) return HvInterceptAccessType.Write;
  if (flags & KVM_MEMORY_EXIT_FLAG_EXEC) return HvInterceptAccessType.Execute;
  return HvInterceptAccessType.Read;
}

/** The faulting GPA (see the file comment). */
export function faultGpa(exit: MemoryFaultExit): bigint {
  return BigInt(exit.exactGpa);
}

/** What the 40-byte header needs beyond the Vcpu: who, which access, how long the instruction is. */
export interface HeaderContextOptions {
  vpIndex: number;
  vtl: number;
  accessType: number;
  instructionLength: number;
}

/** The §4.4 header fields of `vcpu` now (RIP on the intercepted instruction), with the kvm state it came from. */
export function interceptHeaderContext(vcpu: Vcpu, o: HeaderContextOptions): { header: InterceptHeaderContext; regs: KvmRegs; sregs: KvmSregs } {
  uint(o.vpIndex, 0xffffffff, 'VP index');
  uint(o.vtl, 15, 'VTL');
  const r = vcpu.getRegs(), s = vcpu.getSregs();
  const pe = (s.cr0 & BigInt(CR0_PE)) !== 0n;
  const header: InterceptHeaderContext = {
    vpIndex: o.vpIndex,
    instructionLength: o.instructionLength,
    cr8: Number(s.cr8),
    accessType: o.accessType,
    executionState: {
      cpl: pe ? s.ss.dpl : 0,
      cr0Pe: pe,
      cr0Am: (s.cr0 & BigInt(CR0_AM)) !== 0n,
      eferLma: (s.efer & BigInt(EFER_LMA)) !== 0n,
      debugActive: (readDebugRegs(vcpu).dr7 & 0xffn) !== 0n,
      interruptionPending: false,
      vtl: o.vtl,
      enclaveMode: false,
      interruptShadow: interruptShadow(vcpu),
      virtualizationFaultActive: false,
    },
    cs: hvSegmentFromKvm(s.cs),
    rip: r.rip,
    rflags: r.rflags,
  };
  return { header, regs: r, sregs: s };
}

export function memoryInterceptContext(vcpu: Vcpu, exit: MemoryFaultExit, opts: InterceptContextOptions): MemoryInterceptContext {
  if (exit?.reason !== 'memory-fault') throw new VsmError('a memory intercept needs a memory-fault exit');
  const accessType = accessTypeOfFault(exit.flags);
  const execute = accessType === HvInterceptAccessType.Execute;
  const { header, regs: r, sregs: s } = interceptHeaderContext(vcpu, {
    vpIndex: opts.vpIndex, vtl: opts.vtl, accessType, instructionLength: execute ? 0 : exit.insnLen,
  });
  const gvaGpaValid = (opts.lockTlb ?? false) && exit.gvaValid;
  // The header's fields one by one: an object spread into this literal costs ~9 µs in V8 (a dictionary object).
  const h = header;
  return {
    vpIndex: h.vpIndex, instructionLength: h.instructionLength, cr8: h.cr8, accessType: h.accessType,
    executionState: h.executionState, cs: h.cs, rip: h.rip, rflags: h.rflags,
    cacheType: opts.cacheType ?? HvCacheType.WriteBack,
    instructionBytes: execute ? new Uint8Array(0) : exit.insnBytes.slice(0, exit.insnLen),
    memoryAccessInfo: { gvaValid: exit.gvaValid, gvaGpaValid, hypercallOutputPending: false, tlbLocked: gvaGpaValid, supervisorShadowStack: false },
    tprPriority: 0,
    gva: exit.gvaValid ? exit.gva : 0n,
    gpa: faultGpa(exit),
    ds: hvSegmentFromKvm(s.ds),
    ss: hvSegmentFromKvm(s.ss),
    gprs: {
      rax: r.rax, rcx: r.rcx, rdx: r.rdx, rbx: r.rbx, rsp: r.rsp, rbp: r.rbp, rsi: r.rsi, rdi: r.rdi,
      r8: r.r8, r9: r.r9, r10: r.r10, r11: r.r11, r12: r.r12, r13: r.r13, r14: r.r14, r15: r.r15,
    },
  };
}
