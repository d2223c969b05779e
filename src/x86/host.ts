/**
 * What the x86 CPU asks of its owner (the kvm layer's Vcpu, or a test).
 *
 * The CPU decides nothing above the architecture: port and MMIO accesses,
 * CPUID leaves, MSRs it does not own, VMCALL/VMMCALL, HLT, accesses denied by
 * owner-supplied page permissions and triple faults all go to the owner.
 *
 * Any callback may call `cpu.abortInstruction()` (which throws) to abandon the
 * current instruction: RIP stays on it and nothing after the callback happens,
 * so the owner can leave its run loop and later re-execute the instruction
 * (this is how exits that need an answer, such as IN or an MMIO read, work).
 * Callbacks may call `cpu.requestStop()` to end the run after the current
 * instruction completes (exits that need no answer, such as OUT).
 *
 * During a callback `cpu.cur` is the executing instruction (its address is
 * cur.lo/cur.hi, its length cur.len); cpu.ripLo/ripHi is only up to date at
 * block boundaries, except where a callback below says otherwise.
 */

/** Access kinds, as bits (also used in page permissions). */
export const ACCESS_READ = 1;
export const ACCESS_WRITE = 2;
export const ACCESS_EXEC = 4;
/**
 * An instruction fetch from a user-mode linear address (paging on and U/S = 1
 * in every paging-structure entry of the translation) while mode-based
 * execute control is in effect (Cpu.mbecControl): such a fetch needs this
 * permission instead of ACCESS_EXEC, as Intel's MBEC checks EPT bit 10 (XU)
 * instead of bit 2 for it (SDM vol. 3, "EPT translation mechanism"). With
 * MBEC off every fetch needs ACCESS_EXEC and this bit is ignored.
 */
export const ACCESS_EXEC_USER = 8;
/** Every permission: what pagePermissions() answers for an unrestricted page. */
export const ACCESS_ALL = 15;

/** Cpu.mbecControl bits: mode-based execute control (ACCESS_EXEC_USER). */
export const MBEC_ENABLE = 1;
/** With MBEC_ENABLE: in effect only while CR4.SMEP = 1 (otherwise every fetch needs ACCESS_EXEC). */
export const MBEC_ONLY_WITH_SMEP = 2;

/** Why a physical access happened; lets the owner tell guest accesses from CPU-internal ones. */
export const enum AccessOrigin {
  /** An ordinary data access or instruction fetch of the executing instruction. */
  Guest = 0,
  /** A paging-structure read or accessed/dirty update during a page walk. */
  PageWalk = 1,
  /** A descriptor-table or TSS access made by the CPU itself (IDT/GDT/TSS). */
  System = 2,
}

/** A physical access that owner page permissions denied (or that hit no RAM and no MMIO handler). */
export interface MemFaultInfo {
  /** Guest physical address of the access (first byte that faulted). */
  gpa: number;
  /** Guest linear address, or -1 if the access had none (page walk of a non-leaf). */
  gvaLo: number;
  gvaHi: number;
  gvaValid: boolean;
  /** ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC or ACCESS_EXEC_USER. */
  access: number;
  origin: AccessOrigin;
  /** Length of the faulting instruction and its bytes (always known). */
  insnLength: number;
  insnBytes: Uint8Array;
}

/** Which register a watched access (Cpu's *Watch fields) concerns. */
export const enum WatchedRegister { Cr0 = 0, Cr4 = 1, Xcr0 = 2, Msr = 3, Gdtr = 4, Idtr = 5, Ldtr = 6, Tr = 7 }
/** Cpu.tableWriteWatch bits: LGDT, LIDT, LLDT, LTR. */
export const WATCH_GDTR = 1, WATCH_IDTR = 2, WATCH_LDTR = 4, WATCH_TR = 8;

/**
 * A register access the owner asked to see before it happens (Cpu's
 * cr0WriteWatch, cr4WriteWatch, xcr0WriteWatch, msrReadWatch,
 * msrWriteWatch, tableWriteWatch): the instruction passed its privilege
 * checks and read its memory operand, and nothing has changed yet. Value
 * checks (reserved bits, descriptors) come after: a write that would #GP is
 * reported too, as VM exits take priority over those faults (SDM vol. 3,
 * "Relative Priority of Faults and VM Exits").
 */
export interface RegisterAccessInfo {
  register: WatchedRegister;
  /** The MSR number for WatchedRegister.Msr, else 0. */
  msr: number;
  write: boolean;
  /** For a write, the value being written (int32 halves; a table's base, a segment's selector); 0 for a read. */
  lo: number;
  hi: number;
  /** The limit of a descriptor table being loaded (LGDT, LIDT), else 0. */
  limit: number;
  /** The instruction's source operand is in memory (LGDT, LIDT; LLDT, LTR, LMSW in their memory forms). */
  memoryOperand: boolean;
  insnLength: number;
}

export interface CpuHost {
  /** IN: returns the value (size 1, 2 or 4 bytes). */
  ioRead(port: number, size: number): number;
  /** OUT. */
  ioWrite(port: number, size: number, value: number): void;

  /** Read of a physical address that is not RAM (size 1, 2, 4 or 8; for 8 return bits 31:0 and set `cpu.tHi` to bits 63:32). */
  mmioRead(gpa: number, size: number): number;
  /** Write to a physical address that is not RAM; for size 8 `hi` holds bits 63:32. */
  mmioWrite(gpa: number, size: number, lo: number, hi: number): void;

  /**
   * Page permissions (ACCESS_* bits allowed) for a guest physical page frame,
   * consulted whenever a translation is cached for fast access and on every
   * slow-path access; the owner calls `cpu.permissionsChanged()` after changing them.
   * Return ACCESS_ALL for unrestricted pages.
   */
  pagePermissions(pfn: number): number;
  /** An access was denied by pagePermissions(). The owner must abort the instruction or inject an exception. */
  memFault(info: MemFaultInfo): void;

  /** CPUID: write EAX, EBX, ECX, EDX into out[0..3]. */
  cpuid(leaf: number, subleaf: number, out: Int32Array): void;
  /** RDMSR of an MSR the CPU does not own: return true and set out[0]=lo, out[1]=hi, or false for #GP. */
  rdmsr(index: number, out: Int32Array): boolean;
  /** WRMSR of an MSR the CPU does not own: false raises #GP. */
  wrmsr(index: number, lo: number, hi: number): boolean;

  /**
   * A watched register access (RegisterAccessInfo) is about to happen. Return
   * to let it proceed; call `cpu.abortInstruction()` to leave it undone with
   * RIP on the instruction (the owner then decides what happens to it).
   */
  registerAccess(info: RegisterAccessInfo): void;

  /** VMCALL (Intel) or VMMCALL (AMD). RIP points after the instruction when this is called. */
  hypercall(isVmmcall: boolean): void;
  /** HLT executed (RIP already past it; the CPU is now halted until an interrupt). */
  halt(): void;
  /** Triple fault or other shutdown condition. The CPU stops. */
  shutdown(reason: string): void;

  /**
   * Interrupt controller: highest deliverable external interrupt vector, or -1.
   * Consulted only while `cpu.intrCheck` is set (the owner sets it when something may be pending).
   */
  pendingInterrupt(): number;
  /** The CPU is taking `vector` (from pendingInterrupt) now: move it to in-service. */
  acknowledgeInterrupt(vector: number): void;
  /** CR8 (TPR) read/write in 64-bit mode; value is bits 3:0. */
  readCr8(): number;
  writeCr8(value: number): void;

  /** Guest time stamp counter as lo/hi written to out[0], out[1]. */
  readTsc(out: Int32Array): void;
}
