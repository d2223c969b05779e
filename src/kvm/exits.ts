import type { AccessOrigin } from '../x86/host.js';
import type { XmmRegister } from './vcpu-regs.js';
import { u64FromHalves as u64 } from '../x86/u64.js';

/** memory_fault.flags bits of a 'memory-fault' exit (kvm-api-facts.md §2.6); exactly one of READ/WRITE/EXEC is set. */
export const KVM_MEMORY_EXIT_FLAG_READ = 1 << 0;
export const KVM_MEMORY_EXIT_FLAG_WRITE = 1 << 1;
export const KVM_MEMORY_EXIT_FLAG_EXEC = 1 << 2;
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3;
/**
 * Our extension (mbec.ts): with EXEC, the fetch was from a user-mode linear
 * address under mode-based execute control, so it was the missing user
 * execute permission (NX without XU) that denied it.
 */
export const KVM_MEMORY_EXIT_FLAG_XU = 1 << 4;

/** Why Vcpu.run() returned: the KVM exit reasons this core produces (kvm-api-facts.md names where one exists). */
export type VcpuExit =
  | { readonly reason: 'io'; readonly direction: 'in' | 'out'; readonly port: number; readonly size: number; readonly value: number }
  | { readonly reason: 'mmio'; readonly isWrite: boolean; readonly gpa: number; readonly size: number; readonly value: bigint }
  | { readonly reason: 'hlt' }
  | { readonly reason: 'shutdown'; readonly why: string }
  /** The instruction budget of this run() call is used up (KVM_EXIT_INTR's role: the VMM gets control back). */
  | { readonly reason: 'preempted' }
  /**
   * KVM_EXIT_MEMORY_FAULT (39): memory attributes denied an access (§2.5, §2.6). The instruction did
   * not complete and RIP is unchanged: the next run() re-executes it. The fields after insnLen are
   * not in KVM's struct; they are what the VMM needs for a VSM GPA intercept message.
   */
  | {
    readonly reason: 'memory-fault';
    /** KVM_MEMORY_EXIT_FLAG_* bits. */
    readonly flags: number;
    /** Start of the faulting range: the page base (KVM's memory_fault.gpa). */
    readonly gpa: number;
    /** Length of the range: 4096. */
    readonly size: number;
    /** Length of the faulting instruction; 0 for execute faults (see Vcpu.memFault) and for CPU-internal accesses. */
    readonly insnLen: number;
    /** Linear address of the access (meaningful when gvaValid). */
    readonly gva: bigint;
    readonly gvaValid: boolean;
    /** A guest access, or a page-table read / A-D update of the CPU's page walk, or a descriptor-table access. */
    readonly origin: AccessOrigin;
    /** Bytes of the faulting instruction (insnLen of them). */
    readonly insnBytes: Uint8Array;
    /**
     * The exact GPA of the denied access, in the page at `gpa`: the first byte of the data
     * access or fetch that faulted (origin Guest/System), or the paging-structure entry
     * read or A/D-updated (origin PageWalk; `gva` is then the address being translated).
     */
    readonly exactGpa: number;
  }
  /** KVM_EXIT_SYSTEM_EVENT (24), type KVM_SYSTEM_EVENT_WAKEUP (4): an inactive-VTL vCPU has an event (§3.3). */
  | { readonly reason: 'system-event'; readonly type: 'wakeup' }
  /**
   * Our register-access exit (register-access-exits.ts): a control-register or descriptor-table
   * register write or an MSR access the VMM asked to see. The instruction did not execute and RIP
   * is on it: the next run() executes it again. `value`: what a write would write (for an MSR,
   * EDX:EAX; for GDTR/IDTR the table's base, with `limit`; for LDTR/TR the selector); 0 for a read.
   */
  | {
    readonly reason: 'register-access';
    readonly register: 'cr0' | 'cr4' | 'xcr0' | 'msr' | 'gdtr' | 'idtr' | 'ldtr' | 'tr';
    /** The MSR number for 'msr', else 0. */
    readonly msr: number;
    readonly write: boolean;
    readonly value: bigint;
    /** The limit of the table LGDT / LIDT loads, else 0. */
    readonly limit: number;
    /** The source operand is in memory (LGDT, LIDT, and the memory forms of LLDT, LTR, LMSW). */
    readonly memoryOperand: boolean;
    readonly insnLen: number;
  }
  /** KVM_EXIT_HYPERV (27), type HCALL (2) (§3.1): see HypervHcallExit. */
  | HypervHcallExit
  /**
   * KVM_EXIT_HYPERCALL (9) (kvm-api-facts §4.2): a KVM PV hypercall the VMM enabled with
   * KVM_CAP_EXIT_HYPERCALL; today only KVM_HC_MAP_GPA_RANGE (12). RIP stays on the VMCALL; the VMM
   * answers with Vcpu.completeKvmHypercall(ret), applied at the next run() (RAX, RIP past the VMCALL).
   */
  | {
    readonly reason: 'hypercall';
    readonly nr: number;
    /** a0..a2 (RBX, RCX, RDX; 32 bits each outside 64-bit mode). For MAP_GPA_RANGE: GPA, page count, attributes. */
    readonly args: readonly [bigint, bigint, bigint];
    /** hypercall.flags bit 0 (KVM_EXIT_HYPERCALL_LONG_MODE): the caller was in 64-bit mode. */
    readonly longMode: boolean;
  };

/** XMM0..XMM5 (hyperv.u.hcall's proposed xmm[] array, kvm-api-facts §3.1). */
const HCALL_XMM_REGISTERS = 6;

/**
 * KVM_EXIT_HYPERV (27), type HCALL (2) (§3.1): a hypercall the VMM handles
 * (hyperv/hypercall.ts says which). RIP stays on the VMCALL; the VMM answers
 * with Vcpu.completeHypercall(result, xmm?), applied at the next run() (XMM
 * output, RAX, RIP past the VMCALL).
 *
 * The fields hold the CPU's int32 halves; `input`, `params` and `xmm` are
 * the kvm_run u64s, made when read (DESIGN §3.1: no BigInt on a hot path,
 * and a VSM VMM takes one of these exits on every VtlCall and VtlReturn).
 */
export class HypervHcallExit {
  readonly reason = 'hyperv-hcall' as const;
  private xmmRegisters: readonly XmmRegister[] | null = null;

  constructor(
    /** The whole control word (RCX, or EDX:EAX from a 32-bit caller), low and high halves. */
    readonly inputLo: number, readonly inputHi: number,
    /** RDX and R8 (EBX:ECX and EDI:ESI): input and output GPAs, or fast input; halves. */
    readonly param0Lo: number, readonly param0Hi: number, readonly param1Lo: number, readonly param1Hi: number,
    /** XMM0..XMM5 of a fast call as 24 int32s (4 per register, low word first), or null: all zero. */
    private readonly xmmWords: readonly number[] | null,
    /**
     * The caller ran 64-bit code (EFER.LMA and CS.L): it used the 64-bit register convention
     * (tlfs-vsm-facts §1.3), and answers go to RAX. KVM's is_64_bit_hypercall(); not in kvm_run.
     */
    readonly longMode: boolean,
  ) {}

  /** The call code: bits 15:0 of the control word. */
  get code(): number { return this.inputLo & 0xffff; }
  /** The whole control word as a u64. */
  get input(): bigint { return u64(this.inputLo, this.inputHi); }
  /** RDX and R8 (EBX:ECX and EDI:ESI) as u64s. */
  get params(): readonly [bigint, bigint] { return [u64(this.param0Lo, this.param0Hi), u64(this.param1Lo, this.param1Hi)]; }
  /** XMM0..XMM5 for fast calls (XMM fast input); zero for memory-based calls. */
  get xmm(): readonly XmmRegister[] {
    if (this.xmmRegisters === null) {
      const w = this.xmmWords, regs: XmmRegister[] = [];
      for (let k = 0; k < HCALL_XMM_REGISTERS; k++) {
        regs.push(w === null ? { low: 0n, high: 0n } : { low: u64(w[4 * k]!, w[4 * k + 1]!), high: u64(w[4 * k + 2]!, w[4 * k + 3]!) });
      }
      this.xmmRegisters = regs;
    }
    return this.xmmRegisters;
  }
}
