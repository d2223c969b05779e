/**
 * The x86-64 CPU: architectural state and the execution loop.
 *
 * Execution decodes guest code once into blocks of instructions (each carrying a
 * pre-selected handler) cached by physical address and code size, shared by
 * every CPU on the same memory (DESIGN §3.2). Blocks end at control transfers,
 * at instructions that change the mode or need the owner, and at page ends.
 * Handlers of control transfers set RIP; for all others the loop does.
 */
import { PhysMemory } from '../memory/phys-memory.js';
import './ops/index.js';
import { BlockCache, type Block, decodeBlock } from './block.js';
import { compileBlock, HOT_THRESHOLD } from './block-compiler.js';
import { ABORT, CpuAbort, CpuFault } from './fault.js';
import { FOp, materializeFlags } from './flags.js';
import type { CpuHost } from './host.js';
import { deliverEvent, EventKind } from './interrupts.js';
import { Mmu, type SecondStage } from './mmu.js';
import { vpnKey } from './tlb.js';
import { ATTR_DB, ATTR_L, ATTR_P, ATTR_S } from './segment-cache.js';
import { CR0_ET, CR0_PE, CS, EFER_LMA, IF, TR, LDTR } from './regs.js';
import type { Insn } from './insn.js';

export const enum CpuRunState { Running = 0, Halted = 1, WaitForSipi = 2, Shutdown = 3 }

/** An event the owner queued for delivery (see Cpu.queueEvent). */
export interface QueuedEvent {
  readonly kind: EventKind.Exception | EventKind.External | EventKind.Nmi;
  readonly vector: number;
  readonly hasErrorCode: boolean;
  readonly errorCode: number;
}

/** Iterations a REP string instruction runs before giving the loop a chance to stop. */
export const REP_CHUNK = 4096;

/** Int32 offsets in Cpu.regFile: RLO[16], RHI[16], XMM[64] (4 per register), then the 512-byte x87 image. */
export const REG_FILE_RLO = 0, REG_FILE_RHI = 16, REG_FILE_XMM = 32, REG_FILE_FPU = 96, REG_FILE_INT32S = REG_FILE_FPU + 128;

export class Cpu {
  readonly mem: PhysMemory;
  host: CpuHost;
  readonly mmu: Mmu;
  private readonly blocks: BlockCache;

  /**
   * The GPRs, XMM0-15 and the x87 image, in this order in one buffer
   * (REG_FILE_*): an owner that moves this state between CPUs (kvm's
   * copy-state, a VSM switch on every VtlCall) copies it with one set().
   */
  readonly regFile = new Int32Array(REG_FILE_INT32S);
  // General-purpose registers as int32 halves (DESIGN §3.1).
  readonly rlo = this.regFile.subarray(REG_FILE_RLO, REG_FILE_RLO + 16);
  readonly rhi = this.regFile.subarray(REG_FILE_RHI, REG_FILE_RHI + 16);
  ripLo = 0xfff0;
  ripHi = 0;
  /** RFLAGS; the arithmetic bits are only valid while fOp is FOp.None (see flags.ts). */
  flags = 2;
  fOp: FOp = FOp.None;
  fSize = 4;
  fA = 0; fAHi = 0; fB = 0; fBHi = 0; fRes = 0; fResHi = 0;
  /** Scratch: high half of a 64-bit value returned by a helper. */
  tHi = 0;

  // Segment registers and their descriptor caches (ES CS SS DS FS GS LDTR TR).
  readonly segSel = new Int32Array(8);
  readonly segBaseLo = new Int32Array(8);
  readonly segBaseHi = new Int32Array(8);
  /** Limit in bytes, as uint32 in an int32 (compare with >>> 0). */
  readonly segLimit = new Int32Array(8);
  readonly segAttr = new Int32Array(8);
  gdtrBaseLo = 0; gdtrBaseHi = 0; gdtrLimit = 0xffff;
  idtrBaseLo = 0; idtrBaseHi = 0; idtrLimit = 0xffff;

  cr0 = 0x60000010;
  cr2Lo = 0; cr2Hi = 0;
  cr3Lo = 0; cr3Hi = 0;
  cr4 = 0;
  efer = 0;
  xcr0 = 1;
  readonly drLo = new Int32Array(8);
  readonly drHi = new Int32Array(8);

  // MSRs the CPU owns.
  starLo = 0; starHi = 0;
  lstarLo = 0; lstarHi = 0;
  cstarLo = 0; cstarHi = 0;
  fmask = 0;
  kernelGsBaseLo = 0; kernelGsBaseHi = 0;
  sysenterCs = 0;
  sysenterEspLo = 0; sysenterEspHi = 0;
  sysenterEipLo = 0; sysenterEipHi = 0;
  patLo = 0x00070406; patHi = 0x00070406;
  tscAux = 0;

  // SSE and x87 state (x87 only as far as FXSAVE/FXRSTOR round-trips it).
  readonly xmm = this.regFile.subarray(REG_FILE_XMM, REG_FILE_XMM + 64);
  mxcsr = 0x1f80;
  /** The FXSAVE image's x87 part as FXSAVE/FXRSTOR keep it (512 bytes). */
  readonly fpuImage = new Uint8Array(this.regFile.buffer, REG_FILE_FPU * 4, 512);

  // Mode, derived from CR0.PE, EFER.LMA and the CS cache.
  private cplValue = 0;
  /** Current privilege level. The fast access caches are keyed to user vs supervisor, so crossing CPL 3 drops them. */
  get cpl(): number { return this.cplValue; }
  set cpl(v: number) {
    if ((v === 3) !== (this.cplValue === 3)) this.mmu.dropFast();
    this.cplValue = v;
  }
  /** 16, 32 or 64: the default operand/address size of code. */
  codeSize = 16;

  // Execution state.
  runState = CpuRunState.Running;
  /** Interrupts are inhibited until after the next instruction (STI, MOV SS, POP SS). */
  shadow = false;
  nmiPending = false;
  nmiBlocked = false;
  /** Set by the owner when an external interrupt may be pending. */
  intrCheck = false;
  /** Set by a handler to end the current block after the current instruction. */
  brk = false;
  /**
   * Register accesses the owner sees before they happen (host.registerAccess):
   * a MOV to CR0 / LMSW / CLTS that changes a bit of cr0WriteWatch, a MOV to
   * CR4 that changes a bit of cr4WriteWatch, XSETBV while xcr0WriteWatch, and
   * RDMSR / WRMSR of the MSRs in msrReadWatch / msrWriteWatch (null: none),
   * LGDT / LIDT / LLDT / LTR per tableWriteWatch (host.ts WATCH_* bits).
   * All off by default; the instructions concerned test them once.
   */
  cr0WriteWatch = 0;
  cr4WriteWatch = 0;
  xcr0WriteWatch = false;
  msrReadWatch: ReadonlySet<number> | null = null;
  msrWriteWatch: ReadonlySet<number> | null = null;
  tableWriteWatch = 0;

  private mbec = 0;
  /**
   * Mode-based execute control, set by the owner (host.ts MBEC_* bits; 0:
   * off): fetches from user-mode linear addresses need ACCESS_EXEC_USER
   * instead of ACCESS_EXEC, with MBEC_ONLY_WITH_SMEP only while CR4.SMEP = 1.
   * Changing it drops the fast caches (they hold fetches checked under it).
   */
  get mbecControl(): number { return this.mbec; }
  set mbecControl(v: number) {
    if (v !== this.mbec) { this.mbec = v; this.mmu.dropFast(); }
  }

  /** Set by requestStop(): run() returns at the next instruction boundary. */
  private stopRequested = false;
  /** The block the last run() stopped after (see run()). */
  private stoppedAfter: Block | null = null;
  /** Executions after which a block is compiled (block-compiler.ts); 1 compiles on first use. */
  jitThreshold = HOT_THRESHOLD;
  /** PAUSE ends run() (like PAUSE-loop exiting), so a spinning vCPU yields. */
  pauseExits = false;
  /** Instructions retired (a REP iteration counts as one). */
  icount = 0;
  /** Instruction being executed, for faults and the owner (length, bytes). */
  cur: Insn | null = null;
  /** The last blocks entered, for diagnoses (ring buffer; see recentInstructions()). */
  private readonly recent: (Block | null)[] = new Array(8).fill(null);
  private recentPos = 0;
  /** Nesting of exception delivery, for double and triple faults. */
  deliveryDepth = 0;
  /**
   * Exception intercept (like a VMX exception bitmap): when set and it returns
   * true for a fault raised by an instruction, the fault is not delivered to the
   * guest; RIP stays on the instruction and run() returns.
   */
  exceptionIntercept: ((vector: number, errorCode: number) => boolean) | null = null;
  /** Observer of every event delivery (exceptions, interrupts, NMIs, INT n), for tracing; null when unused. */
  onDeliver: ((kind: EventKind, vector: number, hasErrorCode: boolean, errorCode: number) => void) | null = null;
  /**
   * Events the owner queued with queueEvent(), oldest first: each is delivered
   * at an instruction boundary before anything else happens there.
   */
  readonly queuedEvents: QueuedEvent[] = [];

  constructor(mem: PhysMemory, host: CpuHost) {
    this.mem = mem;
    this.host = host;
    this.mmu = new Mmu(this);
    this.blocks = BlockCache.for(mem);
    this.reset();
  }

  /** Power-on/INIT state (SDM vol. 3 table 10-1), in real mode at F000:FFF0. */
  reset(): void {
    this.rlo.fill(0); this.rhi.fill(0);
    this.rlo[2] = 0x600; // EDX: family/model/stepping signature
    this.flags = 2; this.fOp = FOp.None;
    this.cr0 = 0x60000010; this.cr2Lo = this.cr2Hi = 0; this.cr3Lo = this.cr3Hi = 0; this.cr4 = 0;
    this.efer = 0; this.xcr0 = 1;
    this.drLo.fill(0); this.drHi.fill(0);
    this.drLo[6] = 0xffff0ff0 | 0; this.drLo[7] = 0x400;
    for (let s = 0; s < 6; s++) this.loadRealSegment(s, 0);
    this.loadRealSegment(CS, 0xf000);
    this.segBaseLo[CS] = 0xffff0000 | 0;
    this.segSel[LDTR] = 0; this.segBaseLo[LDTR] = 0; this.segLimit[LDTR] = 0xffff; this.segAttr[LDTR] = 0x82;
    this.segSel[TR] = 0; this.segBaseLo[TR] = 0; this.segLimit[TR] = 0xffff; this.segAttr[TR] = 0x8b;
    this.gdtrBaseLo = this.gdtrBaseHi = 0; this.gdtrLimit = 0xffff;
    this.idtrBaseLo = this.idtrBaseHi = 0; this.idtrLimit = 0xffff;
    this.ripLo = 0xfff0; this.ripHi = 0;
    this.xmm.fill(0); this.mxcsr = 0x1f80; this.fpuImage.fill(0);
    this.fpuImage[0] = 0x7f; this.fpuImage[1] = 0x03; // FCW 0x037F
    this.shadow = false; this.nmiPending = false; this.nmiBlocked = false;
    this.queuedEvents.length = 0;
    this.runState = CpuRunState.Running;
    this.deliveryDepth = 0;
    this.updateMode();
    this.mmu.flushAll();
  }

  /** Loads a segment register the real-mode way: base = selector << 4, 64 KiB limit. */
  loadRealSegment(seg: number, sel: number): void {
    this.segSel[seg] = sel & 0xffff;
    this.segBaseLo[seg] = (sel & 0xffff) << 4;
    this.segBaseHi[seg] = 0;
    this.segLimit[seg] = 0xffff;
    this.segAttr[seg] = ATTR_P | ATTR_S | (seg === CS ? 0xb : 0x3);
  }

  /** Recomputes CPL-independent mode facts after CR0, EFER or CS changes. */
  updateMode(): void {
    if (!(this.cr0 & CR0_PE)) {
      this.codeSize = 16;
      this.cpl = 0;
    } else if ((this.efer & EFER_LMA) && (this.segAttr[CS] & ATTR_L)) {
      this.codeSize = 64;
    } else {
      this.codeSize = (this.segAttr[CS] & ATTR_DB) ? 32 : 16;
    }
    this.cr0 |= CR0_ET;
    this.mmu.epoch++;
  }

  get longMode(): boolean { return (this.efer & EFER_LMA) !== 0; }

  /** RFLAGS as a number (low 32 bits; the high half is always zero). */
  getRflags(): number { return materializeFlags(this); }
  setRflags(v: number): void {
    this.flags = (v & 0x3f7fd5) | 2;
    this.fOp = FOp.None;
  }

  /** Abandon the current instruction (RIP stays on it); see host.ts. */
  abortInstruction(): never { throw ABORT; }
  /**
   * Abandon the current instruction without a throw, from the handler of a
   * flow instruction (one that sets RIP itself, as VMCALL does): RIP goes
   * back to it, it does not count as retired, and run() ends after it, as
   * abortInstruction() would. A throw costs more than the rest of a VMM
   * exit. Under an interrupt shadow this falls back to abortInstruction(),
   * which keeps the shadow for the instruction's next attempt.
   */
  retryCurrent(): void {
    const i = this.cur;
    if (i === null || !i.flow || this.shadow) this.abortInstruction();
    this.ripLo = i.lo; this.ripHi = i.hi;
    this.icount--;
    this.requestStop();
  }
  /** End run() after the current instruction. */
  requestStop(): void { this.stopRequested = true; this.brk = true; }

  /**
   * The last instructions executed, oldest first (at most `count`): the
   * instructions of the most recent blocks, the last one up to the current
   * instruction. For diagnoses; blocks left early show all their instructions.
   */
  recentInstructions(count = 8): { insn: Insn; codeSize: number }[] {
    const out: { insn: Insn; codeSize: number }[] = [];
    for (let k = 0; k < 8 && out.length < count; k++) {
      const b = this.recent[(this.recentPos - k) & 7];
      if (b === null) break;
      let list = b.insns;
      if (k === 0 && this.cur !== null && list.includes(this.cur)) list = list.slice(0, this.cur.idx + 1);
      const take = list.slice(Math.max(0, list.length - (count - out.length)));
      out.unshift(...take.map((insn) => ({ insn, codeSize: b.codeSize })));
    }
    return out;
  }


  // ---- owner TLB flushes (the hypervisor's view: flush hypercalls, remote shootdowns) ----

  /** Flushes every cached translation of this CPU, global ones included. */
  flushTlb(): void { this.mmu.flushAll(); }
  /** Flushes the translations of one linear page in every PCID, global ones included. */
  flushTlbAddress(lo: number, hi: number): void {
    this.mmu.tlb.flushPage(vpnKey(lo, hi), -1, true);
    this.mmu.dropFast();
  }
  /** Flushes the non-global translations of every PCID (global ones stay). */
  flushTlbNonGlobal(): void {
    this.mmu.tlb.flushNonGlobal();
    this.mmu.dropFast();
  }
  /** Flushes the non-global translations of one PCID. */
  flushTlbPcid(pcid: number): void {
    if (!Number.isInteger(pcid) || pcid < 0 || pcid > 0xfff) throw new RangeError(`PCID ${pcid} is not in 0..4095`);
    this.mmu.tlb.flushPcid(pcid);
    this.mmu.dropFast();
  }
  /** The owner changed page permissions: drop everything derived from the old ones. */
  permissionsChanged(): void { this.mmu.dropFast(); }
  /** Installs (or with null removes) a second translation stage (mmu.ts SecondStage); every cached translation goes. */
  setSecondStage(stage: SecondStage | null): void {
    this.mmu.secondStage = stage;
    this.mmu.flushAll();
  }


  /**
   * Runs up to `budget` instructions. Returns the number retired. Stops early when
   * the CPU halts, shuts down, waits for SIPI, or the owner requests a stop or aborts.
   */
  run(budget: number): number {
    const start = this.icount;
    const limit = start + budget;
    this.stopRequested = false;
    // The block the last run stopped after: its links find this run's first block without a lookup when still valid.
    let prev: Block | null = this.stoppedAfter;
    this.stoppedAfter = null;
    while (this.icount < limit && !this.stopRequested) {
      if (this.runState !== CpuRunState.Running) {
        if (this.runState !== CpuRunState.Halted || !this.wakeFromHalt()) break;
        prev = null;
      }
      if (this.queuedEvents.length !== 0) {
        this.deliverQueued();
        prev = null;
        continue;
      }
      if ((this.intrCheck || this.nmiPending) && !this.shadow) {
        try {
          this.checkInterrupts();
        } catch (e) {
          // The owner abandoned the delivery (e.g. a denied stack page): nothing was acknowledged.
          this.handleThrow(e, null);
          prev = null;
          continue;
        }
        if (this.runState !== CpuRunState.Running) continue;
      }
      prev = this.step(limit, prev);
    }
    return this.icount - start;
  }

  /** The block at RIP: through the previous block's links when they are current, else looked up or decoded. */
  private nextBlock(prev: Block | null): Block {
    const epoch = this.mmu.epoch;
    if (prev !== null && prev.linkEpoch === epoch) {
      const a = prev.succ1;
      if (a !== null && a.lo === this.ripLo && a.hi === this.ripHi && a.valid && a.codeSize === this.codeSize) return a;
      const b = prev.succ2;
      if (b !== null && b.lo === this.ripLo && b.hi === this.ripHi && b.valid && b.codeSize === this.codeSize) return b;
    }
    const blk = this.fetchBlock();
    if (prev !== null && this.mmu.epoch === epoch) {
      if (prev.linkEpoch !== epoch) { prev.linkEpoch = epoch; prev.succ1 = blk; prev.succ2 = null; }
      else if (prev.succ1 === null || !prev.succ1.valid) prev.succ1 = blk;
      else prev.succ2 = blk;
    }
    return blk;
  }

  /**
   * Executes one block (or one instruction while an interrupt shadow is active).
   * Returns the block for chaining, or null when execution left it abnormally.
   */
  private step(limit: number, prev: Block | null): Block | null {
    let blk: Block;
    try {
      blk = this.nextBlock(prev);
    } catch (e) {
      this.handleThrow(e, null);
      return null;
    }
    this.recent[this.recentPos = (this.recentPos + 1) & 7] = blk;
    const insns = blk.insns;
    let n = insns.length;
    if (this.shadow) n = 1;
    if (n > limit - this.icount) n = Math.max(1, limit - this.icount);
    let k = 0;
    let ins: Insn = insns[0];
    this.brk = false;
    try {
      if (blk.compiled === null && ++blk.hits >= this.jitThreshold) blk.compiled = compileBlock(insns);
      if (n === insns.length && blk.compiled !== null) {
        k = blk.compiled(this) - 1;
        ins = insns[k];
      } else {
        for (; k < n; k++) {
          ins = insns[k];
          this.cur = ins;
          ins.exec(this, ins);
          if (this.brk) break;
        }
        if (k === n) k = n - 1;
      }
    } catch (e) {
      const at = this.cur !== null ? this.cur : ins;
      this.icount += at.idx;
      this.handleThrow(e, at);
      return null;
    }
    this.icount += k + 1;
    if (!ins.flow) { this.ripLo = ins.nextLo; this.ripHi = ins.nextHi; }
    // The shadow covers exactly one instruction; one set by this instruction stays.
    if (this.shadow && !ins.setsShadow) this.shadow = false;
    if (this.brk) { this.stoppedAfter = blk; return null; }
    return blk;
  }

  private handleThrow(e: unknown, ins: Insn | null): void {
    if (ins !== null) { this.ripLo = ins.lo; this.ripHi = ins.hi; }
    if (e instanceof CpuFault) {
      this.shadow = false;
      try {
        deliverEvent(this, EventKind.Exception, e.vector, e.hasError, e.errorCode);
      } catch (a) {
        if (!(a instanceof CpuAbort)) throw a;
        // The owner abandoned the delivery (e.g. memory attributes deny the stack page): the
        // exception waits in the queue and is delivered again at the next run(), as KVM keeps
        // an interrupted delivery (IDT-vectoring information) as an injected event.
        this.queuedEvents.unshift({ kind: EventKind.Exception, vector: e.vector, hasErrorCode: e.hasError, errorCode: e.errorCode });
        this.stopRequested = true;
      }
      return;
    }
    if (e instanceof CpuAbort) {
      this.stopRequested = true;
      return;
    }
    throw e;
  }

  private fetchBlock(): Block {
    this.cur = null; // a fetch fault belongs to no decoded instruction
    const long = this.codeSize === 64;
    const lin = long ? this.ripLo : (this.segBaseLo[CS] + this.ripLo) | 0;
    const linHi = long ? this.ripHi : 0;
    const phys = this.mmu.translateFetch(lin, linHi);
    const blk = this.blocks.lookup(phys, this.codeSize, this.ripLo, this.ripHi);
    if (blk !== undefined && (blk.page2Lin === -1 || this.mmu.translateFetch(blk.page2Lin, blk.page2LinHi) === blk.page2Phys)) {
      return blk;
    }
    const nb = decodeBlock(this, phys, lin, linHi);
    this.blocks.insert(nb);
    return nb;
  }

  // ---- events ----

  /** A halted CPU resumes when an interrupt or NMI can be taken. */
  private wakeFromHalt(): boolean {
    if (this.nmiPending && !this.nmiBlocked) { this.runState = CpuRunState.Running; return true; }
    if (this.intrCheck && (this.flags & IF) && this.host.pendingInterrupt() >= 0) {
      this.runState = CpuRunState.Running;
      return true;
    }
    return false;
  }

  private checkInterrupts(): void {
    if (this.nmiPending && !this.nmiBlocked) {
      this.cur = null;
      deliverEvent(this, EventKind.Nmi, 2, false, 0);
      this.nmiPending = false;
      this.runState = CpuRunState.Running;
      return;
    }
    if (!this.intrCheck || !(this.flags & IF)) return;
    const v = this.host.pendingInterrupt();
    if (v < 0) { this.intrCheck = false; return; }
    // Deliver first, acknowledge after: if the owner abandons the delivery, the interrupt stays pending.
    this.cur = null;
    deliverEvent(this, EventKind.External, v, false, 0);
    this.host.acknowledgeInterrupt(v);
    this.runState = CpuRunState.Running;
  }

  /** Owner API: raise an NMI. */
  injectNmi(): void { this.nmiPending = true; this.brk = true; }
  /** Owner API: deliver an exception now (as if raised by the instruction at RIP). */
  injectException(vector: number, errorCode?: number): void {
    deliverEvent(this, EventKind.Exception, vector, errorCode !== undefined, errorCode ?? 0);
  }

  /**
   * Owner API: deliver an event at the next instruction boundary of a running
   * CPU, before any instruction executes there and before pending interrupts
   * and NMIs are looked at (KVM's injected events, which VM entry delivers
   * first). It is a re-injection: RFLAGS.IF, NMI blocking, the interrupt
   * shadow and exceptionIntercept do not hold it back, and an NMI sets NMI
   * blocking as any NMI delivery does. A halted CPU keeps it queued until it
   * wakes (KVM delivers injected events only to a RUNNABLE vCPU). Real mode
   * pushes no error code (deliverReal). If the owner abandons the delivery
   * (abortInstruction from a callback, e.g. a denied stack page), the event
   * stays queued and is delivered again at the next run().
   */
  queueEvent(ev: QueuedEvent): void {
    this.queuedEvents.push(ev);
    this.brk = true;
  }

  /** Delivers the oldest queued event; on an owner abort it stays queued and run() stops. */
  private deliverQueued(): void {
    const ev = this.queuedEvents[0];
    this.cur = null;
    this.shadow = false; // delivery ends the shadow: the next instruction is the handler's
    const intercept = this.exceptionIntercept;
    this.exceptionIntercept = null;
    try {
      deliverEvent(this, ev.kind, ev.vector, ev.hasErrorCode, ev.errorCode);
    } catch (e) {
      this.handleThrow(e, null);
      return;
    } finally {
      this.exceptionIntercept = intercept;
    }
    this.queuedEvents.shift();
  }

  /** Startup IPI: real mode at vector << 12 (SDM 10.4.4). */
  startup(vector: number): void {
    this.reset();
    this.loadRealSegment(CS, (vector & 0xff) << 8);
    this.ripLo = 0; this.ripHi = 0;
  }

  /** INIT: reset and wait for a SIPI. */
  init(): void {
    this.reset();
    this.runState = CpuRunState.WaitForSipi;
  }

}
