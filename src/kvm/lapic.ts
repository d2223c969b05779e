/**
 * The in-kernel local APIC of one vCPU (xAPIC and x2APIC), after Intel SDM
 * vol. 3A ch. 10 and pc-platform-facts.md §2.5.
 *
 * The APIC holds interrupt state; it never touches the CPU. Its owner (the
 * Vcpu) asks `pendingVector()` / calls `acknowledge()` when the CPU takes an
 * interrupt, routes MMIO, MSRs and CR8 here, and acts on `nmiPending`,
 * `initPending` and `sipiVector`. IPIs leave through `ApicBus.sendIpi`; the bus
 * resolves destinations with `LocalApic.matchesDestination` and calls
 * `deliver()` (or `acceptFixed`/`nmi`/`init`/`startup`) on each target.
 *
 * Time: everything is computed from `clock` (guest time), never the host clock.
 * The timer is evaluated lazily: `tick()`, register reads and writes bring it
 * up to `clock.nowNs()`; `nextTimerDeadlineNs()` tells the scheduler when the
 * next interrupt is due.
 *
 * Choices where the SDM leaves room (documented once here):
 * - MMIO (xAPIC mode only; check `ownsMmio`): registers sit at 16-byte strides.
 *   A read at offset+1..3 returns the register shifted right by 8×n (the caller
 *   masks to its access size); offset+4..15 reads 0. Only 16-byte-aligned
 *   writes take effect; any other write is ignored (as KVM does). Reserved
 *   registers in 0x000-0x3F0 read 0, ignore writes and set ESR bit 7
 *   ("illegal register address"); 0x400-0xFFF read 0 silently. When the APIC
 *   is not in xAPIC mode the page behaves like a globally disabled APIC (SDM
 *   10.12.2): reads return 0xFFFFFFFF, writes are ignored.
 * - x2APIC MSRs: reserved-bit writes #GP (SDM 10.12.1.3), including bits 63:32
 *   of every register but ICR, nonzero EOI/ESR writes, reads of write-only
 *   registers (EOI, SELF IPI) and writes of read-only ones.
 * - A software-disabled APIC (SPIV bit 8 = 0) drops new fixed interrupts but
 *   keeps what is already in IRR/ISR; `pendingVector()` still reports held IRR
 *   vectors, because SDM 10.4.7.2 says they "are held and require masking or
 *   handling by the CPU". INIT, NMI and SIPI are still recorded. A globally
 *   disabled APIC (IA32_APIC_BASE.EN = 0) matches no destination and reports -1.
 * - Switching the LVT timer between one-shot and periodic keeps the count
 *   running (as KVM does and kvm-unit-tests `apic.c` test_apic_change_mode
 *   expects); only switches into or out of TSC-deadline mode disarm the timer.
 *   Mode 11 (reserved) behaves as one-shot.
 * - An IPI with an illegal vector (< 16, fixed or lowest priority) is not sent:
 *   the sender sets ESR bit 5. A fixed interrupt arriving with such a vector
 *   sets ESR bit 6 and is dropped.
 * - SMI, ExtINT and reserved delivery modes are ignored on receipt.
 * - INIT: `init()` only records `initPending`; the owner performs the INIT
 *   (calls `reset()`, enters wait-for-SIPI) and clears the flags itself, so a
 *   SIPI that arrives right behind the INIT is not lost.
 * - INIT/SIPI block (our extension, src/kvm/README.md "INIT/SIPI block"):
 *   while `initSipiBlocked`, INIT and SIPI are dropped on receipt, and
 *   blocking drops those not yet taken, so none is ever acted on.
 */
import {
  APIC_BASE_BSP,
  APIC_BASE_EN,
  APIC_BASE_EXTD,
  APIC_BASE_LOW_RESERVED,
  APIC_DEFAULT_BASE,
  APIC_VERSION,
  ApicError,
  DFR_MODEL_CLUSTER,
  DFR_MODEL_FLAT,
  DFR_RESET,
  DM_FIXED,
  DM_INIT,
  DM_LOWEST,
  DM_NMI,
  DM_STARTUP,
  ESR_ILLEGAL_REGISTER,
  ESR_RECEIVE_ILLEGAL_VECTOR,
  ESR_SEND_ILLEGAL_VECTOR,
  ICR_HIGH_WRITABLE,
  ICR_LEVEL_ASSERT,
  ICR_LOW_WRITABLE,
  ICR_TRIGGER_LEVEL,
  LVT_COUNT,
  LVT_DEFINED,
  LVT_ERROR,
  LVT_LEVEL_TRIGGER,
  LVT_LINT0,
  LVT_LINT1,
  LVT_MASKED,
  LVT_RESET,
  LVT_TIMER,
  LVT_WRITABLE,
  REG_APR,
  REG_DFR,
  REG_EOI,
  REG_ESR,
  REG_ICR_HIGH,
  REG_ICR_LOW,
  REG_ID,
  REG_IRR0,
  REG_ISR0,
  REG_LDR,
  REG_LVT_ERROR,
  REG_LVT_TIMER,
  REG_PPR,
  REG_RRD,
  REG_SELF_IPI,
  REG_SPIV,
  REG_TIMER_CURRENT,
  REG_TIMER_DIVIDE,
  REG_TIMER_INITIAL,
  REG_TMR0,
  REG_TPR,
  REG_VERSION,
  SPIV_RESET,
  SPIV_SW_ENABLE,
  SPIV_WRITABLE,
  TIMER_MODE_PERIODIC,
  TIMER_MODE_SHIFT,
  TIMER_MODE_TSC_DEADLINE,
  X2APIC_BROADCAST,
  X2APIC_ICR_LOW_RESERVED,
  X2APIC_MSR_FIRST,
  X2APIC_MSR_LAST,
  XAPIC_BROADCAST,
  deliveryModeOf,
  highestBit,
  timerDivisor,
  x2apicLogicalId,
} from './lapic-regs.js';

export interface ApicClock {
  /** Guest time in ns: monotonic, deterministic. */
  nowNs(): number;
  /** Guest TSC frequency in Hz. */
  tscHz: number;
  /** Guest TSC as a number (< 2^53). */
  readTsc(): number;
}

export interface ApicBus {
  /** Route an IPI written to this APIC's ICR. The bus finds the destination APICs and calls deliver() (or acceptFixed/nmi/init/startup) on them. */
  sendIpi(from: LocalApic, icrLow: number, destination: number): void;
}

export type ApicMode = 'disabled' | 'xapic' | 'x2apic';

export interface LocalApicOptions {
  /** Initial APIC ID = x2APIC ID (0 .. 0xFFFFFFFE); the xAPIC ID is its low 8 bits. */
  id: number;
  isBsp: boolean;
  bus: ApicBus;
  clock: ApicClock;
  /** Timer input clock in Hz (integer), default 1e9. */
  apicHz?: number;
  /** MAXPHYADDR as reported by CPUID 0x80000008 EAX[7:0]; IA32_APIC_BASE bits at and above it are reserved. Default 46. */
  physAddrBits?: number;
}

const NS_PER_S = 1_000_000_000;
const NS_PER_S_BIG = 1_000_000_000n;
const U64_MAX = (1n << 64n) - 1n;
const PAGE_OFFSET_MASK = 0xfff;

export class LocalApic {
  /** Initial APIC ID: the x2APIC ID (read-only in x2APIC mode). */
  readonly id: number;
  /** Timer input clock in Hz. */
  readonly apicHz: number;

  /** Recorded for the owner, which clears them when it acts. */
  nmiPending = false;
  initPending = false;
  /** Vector of the last STARTUP IPI received, -1 if none. */
  sipiVector = -1;
  /** INIT and SIPI are dropped on receipt (set with blockInitSipi). */
  get initSipiBlocked(): boolean { return this.initSipiBlock; }
  private initSipiBlock = false;
  /** Called whenever an interrupt or event may have become pending. */
  onPending: () => void = () => {};
  /** Called on EOI of a level-triggered vector (TMR bit set), for an I/O APIC. */
  onEoi: (vector: number) => void = () => {};
  /** Called on every EOI with the vector that left the ISR (Hyper-V SynIC redelivery). */
  onAnyEoi: (vector: number) => void = () => {};

  private readonly bus: ApicBus;
  private readonly clock: ApicClock;
  private readonly physAddrBits: number;
  /** 1 when apicHz is 1 GHz (ticks are ns), otherwise 0 and BigInt conversions are used. */
  private readonly identityTicks: boolean;

  // IA32_APIC_BASE
  private enabled = true;
  private extd = false;
  private bsp: boolean;
  private baseAddr = APIC_DEFAULT_BASE;

  // registers
  private xapicId: number;
  private tpr = 0;
  private ldr = 0;
  private dfr = DFR_RESET;
  private spiv = SPIV_RESET;
  private esr = 0;
  /** Errors detected since the last ESR write (SDM 10.5.3: a write moves them into ESR). */
  private esrPending = 0;
  /** The error interrupt fires once per ESR write ("rearms the APIC error interrupt"). */
  private errorArmed = true;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(LVT_COUNT);
  private readonly irr = new Uint32Array(8);
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);

  // timer (one-shot / periodic): count(t) = refCount - floor((tick(t) - refTick) / divisor)
  private initialCount = 0;
  private dcr = 0;
  private divisor = 2;
  private countArmed = false;
  private refTick = 0;
  private refCount = 0;
  /** Guest ns at which the armed count reaches 0 (cached so tick() is one comparison). */
  private expiryNs = Infinity;
  // timer (TSC-deadline)
  private tscDeadline = 0n;
  /** tscDeadline as a number: 0 disarmed, Infinity beyond 2^53 (never reached). */
  private tscDeadlineNum = 0;

  constructor(opts: LocalApicOptions) {
    const { id, isBsp, bus, clock } = opts;
    if (!Number.isInteger(id) || id < 0 || id >= X2APIC_BROADCAST) {
      throw new ApicError(`APIC ID ${id} is not an integer in 0..0xFFFFFFFE.`);
    }
    const apicHz = opts.apicHz ?? NS_PER_S;
    if (!Number.isInteger(apicHz) || apicHz <= 0) {
      throw new ApicError(`APIC timer frequency ${apicHz} is not a positive integer number of Hz.`);
    }
    const physAddrBits = opts.physAddrBits ?? 46;
    if (!Number.isInteger(physAddrBits) || physAddrBits < 32 || physAddrBits > 52) {
      throw new ApicError(`physAddrBits ${physAddrBits} is not an integer in 32..52.`);
    }
    this.id = id;
    this.apicHz = apicHz;
    this.identityTicks = apicHz === NS_PER_S;
    this.bus = bus;
    this.clock = clock;
    this.physAddrBits = physAddrBits;
    this.bsp = isBsp;
    this.xapicId = id & 0xff;
    this.resetRegisters();
  }

  // ---------------------------------------------------------------- mode / base

  get mode(): ApicMode {
    if (!this.enabled) return 'disabled';
    return this.extd ? 'x2apic' : 'xapic';
  }

  /** SPIV bit 8 (and the APIC globally enabled). */
  get softwareEnabled(): boolean {
    return this.enabled && (this.spiv & SPIV_SW_ENABLE) !== 0;
  }

  /** The 8-bit xAPIC ID (ID register bits 31:24). */
  get xapicIdValue(): number {
    return this.xapicId;
  }

  /** Physical address of the 4 KiB register page. */
  get mmioBase(): number {
    return this.baseAddr;
  }

  /** True when `gpa` falls in the register page and the APIC answers MMIO there (xAPIC mode only). */
  ownsMmio(gpa: number): boolean {
    return this.mode === 'xapic' && gpa >= this.baseAddr && gpa < this.baseAddr + 0x1000;
  }

  readApicBase(): bigint {
    let flags = 0;
    if (this.bsp) flags |= APIC_BASE_BSP;
    if (this.extd) flags |= APIC_BASE_EXTD;
    if (this.enabled) flags |= APIC_BASE_EN;
    return BigInt(this.baseAddr) | BigInt(flags);
  }

  /**
   * WRMSR IA32_APIC_BASE. Returns false (caller raises #GP) for reserved bits
   * (7:0, 9, MAXPHYADDR and up), EXTD without EN, x2APIC -> xAPIC and
   * disabled -> x2APIC (SDM 10.12.5, Figure 10-27). Disabling resets the APIC
   * to its power-up state except the x2APIC ID (SDM 10.4.3, 10.12.5.1);
   * entering x2APIC mode makes ID the x2APIC ID and LDR the derived logical ID.
   */
  writeApicBase(value: bigint): boolean {
    checkU64(value, 'IA32_APIC_BASE');
    const bits = BigInt(this.physAddrBits);
    const reserved = ((U64_MAX >> bits) << bits) | BigInt(APIC_BASE_LOW_RESERVED);
    if ((value & reserved) !== 0n) return false;
    const low = Number(value & BigInt(PAGE_OFFSET_MASK));
    const en = (low & APIC_BASE_EN) !== 0;
    const extd = (low & APIC_BASE_EXTD) !== 0;
    if (extd && !en) return false;
    const oldMode = this.mode;
    const newMode: ApicMode = !en ? 'disabled' : extd ? 'x2apic' : 'xapic';
    if (oldMode === 'x2apic' && newMode === 'xapic') return false;
    if (oldMode === 'disabled' && newMode === 'x2apic') return false;
    this.baseAddr = Number(value & ~BigInt(PAGE_OFFSET_MASK));
    this.bsp = (low & APIC_BASE_BSP) !== 0;
    this.enabled = en;
    this.extd = extd;
    if (newMode === 'disabled' && oldMode !== 'disabled') {
      this.resetRegisters();
      this.xapicId = this.id & 0xff;
    }
    return true;
  }

  /** INIT reset (SDM 10.4.7.3): power-up register state, but the APIC ID, base MSR and mode are kept. */
  reset(): void {
    this.resetRegisters();
  }

  private resetRegisters(): void {
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = DFR_RESET;
    this.spiv = SPIV_RESET;
    this.esr = 0;
    this.esrPending = 0;
    this.errorArmed = true;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT_RESET);
    this.irr.fill(0);
    this.isr.fill(0);
    this.tmr.fill(0);
    this.initialCount = 0;
    this.dcr = 0;
    this.divisor = timerDivisor(0);
    this.countArmed = false;
    this.expiryNs = Infinity;
    this.tscDeadline = 0n;
    this.tscDeadlineNum = 0;
  }

  // ---------------------------------------------------------------- xAPIC MMIO

  mmioRead(offset: number): number {
    checkOffset(offset);
    if (this.mode !== 'xapic') return 0xffffffff;
    const byte = offset & 0xf;
    if (byte >= 4) return 0;
    const reg = offset & 0xff0;
    const value = this.readReg(reg, false);
    if (value === undefined) {
      if (reg < 0x400) this.signalError(ESR_ILLEGAL_REGISTER);
      return 0;
    }
    return value >>> (byte * 8);
  }

  mmioWrite(offset: number, value: number): void {
    checkOffset(offset);
    checkU32(value, 'MMIO write value');
    if (this.mode !== 'xapic' || (offset & 0xf) !== 0) return;
    this.writeXapic(offset, value >>> 0);
  }

  // ---------------------------------------------------------------- x2APIC MSRs

  /** RDMSR 0x800-0x8FF; undefined means #GP (not x2APIC mode, reserved or write-only register). */
  rdmsr(index: number): bigint | undefined {
    if (this.mode !== 'x2apic' || index < X2APIC_MSR_FIRST || index > X2APIC_MSR_LAST) return undefined;
    const reg = (index - X2APIC_MSR_FIRST) << 4;
    if (reg === REG_ICR_LOW) return (BigInt(this.icrHigh) << 32n) | BigInt(this.icrLow);
    const value = this.readReg(reg, true);
    return value === undefined ? undefined : BigInt(value >>> 0);
  }

  /** WRMSR 0x800-0x8FF; false means #GP. */
  wrmsr(index: number, value: bigint): boolean {
    checkU64(value, `x2APIC MSR ${index.toString(16)}`);
    if (this.mode !== 'x2apic' || index < X2APIC_MSR_FIRST || index > X2APIC_MSR_LAST) return false;
    const reg = (index - X2APIC_MSR_FIRST) << 4;
    if (reg === REG_ICR_LOW) {
      const lo = Number(value & 0xffffffffn);
      if ((lo & X2APIC_ICR_LOW_RESERVED) !== 0) return false;
      this.icrLow = lo & ICR_LOW_WRITABLE;
      this.icrHigh = Number(value >> 32n);
      this.sendIcr(this.icrLow, this.icrHigh);
      return true;
    }
    if (value >> 32n !== 0n) return false; // bits 63:32 reserved in every other register
    const v = Number(value);
    switch (reg) {
      case REG_TPR:
        if (v > 0xff) return false;
        this.setTpr(v);
        return true;
      case REG_EOI:
        if (v !== 0) return false;
        this.eoi();
        return true;
      case REG_SPIV:
        if ((v & ~SPIV_WRITABLE) !== 0) return false;
        this.writeSpiv(v);
        return true;
      case REG_ESR:
        if (v !== 0) return false; // "only zero may be written in x2APIC mode" (SDM 10.5.3)
        this.latchEsr();
        return true;
      case REG_TIMER_INITIAL:
        this.writeInitialCount(v);
        return true;
      case REG_TIMER_DIVIDE:
        if ((v & ~0xb) !== 0) return false;
        this.writeDivide(v);
        return true;
      case REG_SELF_IPI:
        if (v > 0xff) return false;
        this.selfIpi(v);
        return true;
    }
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) {
      const i = (reg - REG_LVT_TIMER) >> 4;
      if ((v & ~LVT_DEFINED[i]!) !== 0) return false;
      this.writeLvt(i, v);
      return true;
    }
    return false; // read-only (ID, version, PPR, LDR, ISR/TMR/IRR, current count) or reserved
  }

  // ---------------------------------------------------------------- register file

  /** Value of a 32-bit register, or undefined if it does not exist (or is write-only) in this mode. */
  private readReg(reg: number, x2: boolean): number | undefined {
    switch (reg) {
      case REG_ID:
        return x2 ? this.id : (this.xapicId << 24) >>> 0;
      case REG_VERSION:
        return APIC_VERSION;
      case REG_TPR:
        return this.tpr;
      case REG_APR:
        return x2 ? undefined : this.arbitrationPriority();
      case REG_PPR:
        return this.ppr();
      case REG_EOI:
      case REG_RRD:
        return x2 ? undefined : 0; // write-only / remote read unsupported: read 0 in xAPIC mode
      case REG_LDR:
        return x2 ? x2apicLogicalId(this.id) : this.ldr;
      case REG_DFR:
        return x2 ? undefined : this.dfr;
      case REG_SPIV:
        return this.spiv;
      case REG_ESR:
        return this.esr;
      case REG_ICR_LOW:
        return this.icrLow;
      case REG_ICR_HIGH:
        return x2 ? undefined : this.icrHigh;
      case REG_TIMER_INITIAL:
        return this.initialCount;
      case REG_TIMER_CURRENT:
        return this.currentCount();
      case REG_TIMER_DIVIDE:
        return this.dcr;
    }
    if (reg >= REG_ISR0 && reg < REG_ISR0 + 0x80) return this.isr[(reg - REG_ISR0) >> 4];
    if (reg >= REG_TMR0 && reg < REG_TMR0 + 0x80) return this.tmr[(reg - REG_TMR0) >> 4];
    if (reg >= REG_IRR0 && reg < REG_IRR0 + 0x80) return this.irr[(reg - REG_IRR0) >> 4];
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) return this.lvt[(reg - REG_LVT_TIMER) >> 4];
    return undefined;
  }

  private writeXapic(reg: number, v: number): void {
    switch (reg) {
      case REG_ID:
        this.xapicId = v >>> 24; // writable in xAPIC mode (SDM Table 10-1)
        return;
      case REG_TPR:
        this.setTpr(v & 0xff);
        return;
      case REG_EOI:
        this.eoi();
        return;
      case REG_LDR:
        this.ldr = (v & 0xff000000) >>> 0;
        return;
      case REG_DFR:
        this.dfr = (v | 0x0fffffff) >>> 0; // bits 27:0 reserved, read as 1
        return;
      case REG_SPIV:
        this.writeSpiv(v & SPIV_WRITABLE);
        return;
      case REG_ESR:
        this.latchEsr();
        return;
      case REG_ICR_LOW:
        this.icrLow = v & ICR_LOW_WRITABLE;
        this.sendIcr(this.icrLow, this.icrHigh >>> 24);
        return;
      case REG_ICR_HIGH:
        this.icrHigh = (v & ICR_HIGH_WRITABLE) >>> 0;
        return;
      case REG_TIMER_INITIAL:
        this.writeInitialCount(v);
        return;
      case REG_TIMER_DIVIDE:
        this.writeDivide(v & 0xb);
        return;
      case REG_VERSION:
      case REG_APR:
      case REG_PPR:
      case REG_RRD:
      case REG_TIMER_CURRENT:
        return; // read-only
    }
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) {
      this.writeLvt((reg - REG_LVT_TIMER) >> 4, v);
      return;
    }
    if (reg >= REG_ISR0 && reg < REG_IRR0 + 0x80) return; // ISR/TMR/IRR are read-only
    if (reg < 0x400) this.signalError(ESR_ILLEGAL_REGISTER);
  }

  private writeSpiv(v: number): void {
    const wasEnabled = (this.spiv & SPIV_SW_ENABLE) !== 0;
    if (wasEnabled && (v & SPIV_SW_ENABLE) === 0) {
      // SDM 10.4.7.2: software disable sets every LVT mask bit.
      this.updateTimer();
      for (let i = 0; i < LVT_COUNT; i++) this.lvt[i]! |= LVT_MASKED;
    }
    this.spiv = v;
  }

  private writeLvt(i: number, v: number): void {
    let value = v & LVT_WRITABLE[i]!;
    // While software-disabled the mask bits cannot be cleared (SDM 10.4.7.2).
    if ((this.spiv & SPIV_SW_ENABLE) === 0) value |= LVT_MASKED;
    if (i !== LVT_TIMER) {
      this.lvt[i] = value;
      return;
    }
    this.updateTimer(); // settle expiries under the old mode and mask
    const wasDeadline = this.timerMode() === TIMER_MODE_TSC_DEADLINE;
    this.lvt[i] = value;
    if (wasDeadline !== (this.timerMode() === TIMER_MODE_TSC_DEADLINE)) {
      // SDM 10.5.4.1: transitioning between TSC-deadline and other modes disarms the timer.
      this.initialCount = 0;
      this.disarmCount();
      this.tscDeadline = 0n;
      this.tscDeadlineNum = 0;
    }
  }

  // ---------------------------------------------------------------- priorities

  /** PPR (SDM 10.8.3.1): TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4. */
  ppr(): number {
    const isrv = Math.max(highestBit(this.isr), 0);
    return (this.tpr & 0xf0) >= (isrv & 0xf0) ? this.tpr : isrv & 0xf0;
  }

  /**
   * APR, the priority used for lowest-priority arbitration (SDM 10.6.2.4, P6
   * formula): TPR if TPR[7:4] >= IRRV[7:4] and TPR[7:4] > ISRV[7:4], otherwise the
   * highest of the three classes. The bus delivers a lowest-priority interrupt to
   * the matching APIC with the smallest value.
   */
  arbitrationPriority(): number {
    const tprClass = this.tpr & 0xf0;
    const irrClass = Math.max(highestBit(this.irr), 0) & 0xf0;
    const isrClass = Math.max(highestBit(this.isr), 0) & 0xf0;
    if (tprClass >= irrClass && tprClass > isrClass) return this.tpr;
    return Math.max(tprClass, irrClass, isrClass);
  }

  private setTpr(v: number): void {
    this.tpr = v;
    this.notifyIfPending();
  }

  readCr8(): number {
    return this.tpr >>> 4;
  }

  /** MOV CR8: TPR[7:4] = CR8[3:0], TPR[3:0] = 0 (SDM 10.8.6.1). The CPU checks reserved bits first. */
  writeCr8(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 15) throw new ApicError(`CR8 value ${v} is not an integer in 0..15.`);
    this.setTpr(v << 4);
  }

  // ---------------------------------------------------------------- accepting interrupts

  /** A fixed or lowest-priority interrupt for this APIC (from an IPI, an I/O APIC or a SynIC). */
  acceptFixed(vector: number, level = false): void {
    checkVector(vector);
    if (!this.enabled || (this.spiv & SPIV_SW_ENABLE) === 0) return;
    if (vector < 16) {
      this.signalError(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    this.raiseIrr(vector, level);
  }

  /** Receive an IPI: decode the delivery mode of `icrLow` and record or queue it. */
  deliver(icrLow: number): void {
    checkU32(icrLow, 'ICR low');
    const vector = icrLow & 0xff;
    switch (deliveryModeOf(icrLow)) {
      case DM_FIXED:
      case DM_LOWEST:
        this.acceptFixed(vector, false); // P4+ issue IPIs edge-triggered (SDM Figure 10-12)
        return;
      case DM_NMI:
        this.nmi();
        return;
      case DM_INIT:
        // INIT level de-assert (level 0, trigger level) has no effect on P4 and later.
        if ((icrLow & ICR_TRIGGER_LEVEL) !== 0 && (icrLow & ICR_LEVEL_ASSERT) === 0) return;
        this.init();
        return;
      case DM_STARTUP:
        this.startup(vector);
        return;
      default:
        return; // SMI, ExtINT, reserved: not modelled
    }
  }

  nmi(): void {
    this.nmiPending = true;
    this.onPending();
  }

  init(): void {
    if (this.initSipiBlock) return;
    this.initPending = true;
    this.onPending();
  }

  startup(vector: number): void {
    checkVector(vector);
    if (this.initSipiBlock) return;
    this.sipiVector = vector;
    this.onPending();
  }

  /** Drops INIT and SIPI from now on, and those recorded but not yet taken; or accepts them again. */
  blockInitSipi(blocked: boolean): void {
    this.initSipiBlock = blocked;
    if (!blocked) return;
    this.initPending = false;
    this.sipiVector = -1;
  }

  /** The LINT0/LINT1 pin was asserted: deliver per its LVT entry (fixed or NMI; ExtINT/SMI/INIT not modelled). */
  assertLint(pin: 0 | 1): void {
    if (!this.enabled) return;
    const entry = this.lvt[pin === 0 ? LVT_LINT0 : LVT_LINT1]!;
    if ((entry & LVT_MASKED) !== 0) return;
    const mode = deliveryModeOf(entry);
    if (mode === DM_FIXED) this.raiseLocal(entry & 0xff, (entry & LVT_LEVEL_TRIGGER) !== 0);
    else if (mode === DM_NMI) this.nmi();
  }

  /** Highest IRR vector whose class exceeds the PPR class, or -1 (SDM 10.8.3.1). */
  pendingVector(): number {
    if (!this.enabled) return -1;
    const v = highestBit(this.irr);
    if (v < 0) return -1;
    return (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  /** Whether `vector` is requested (its IRR bit). */
  requested(vector: number): boolean {
    checkVector(vector);
    return (this.irr[vector >>> 5]! & (1 << (vector & 31))) !== 0;
  }

  /** Whether `vector` is in service (its ISR bit). */
  inService(vector: number): boolean {
    checkVector(vector);
    return (this.isr[vector >>> 5]! & (1 << (vector & 31))) !== 0;
  }

  /** The CPU takes `vector`: IRR -> ISR (so the PPR rises to its class). */
  acknowledge(vector: number): void {
    checkVector(vector);
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    if ((this.irr[word]! & bit) === 0) {
      throw new ApicError(`Cannot acknowledge vector ${vector}: it is not pending in the IRR.`);
    }
    this.irr[word]! &= ~bit;
    this.isr[word]! |= bit;
  }

  /** EOI: clear the highest ISR bit (SDM 10.8.5); level-triggered vectors are reported through onEoi. */
  private eoi(): void {
    const v = highestBit(this.isr);
    if (v < 0) return;
    const word = v >>> 5;
    const bit = 1 << (v & 31);
    this.isr[word]! &= ~bit;
    if ((this.tmr[word]! & bit) !== 0) this.onEoi(v);
    this.onAnyEoi(v);
    this.notifyIfPending();
  }

  private raiseIrr(vector: number, level: boolean): void {
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.irr[word]! |= bit;
    if (level) this.tmr[word]! |= bit;
    else this.tmr[word]! &= ~bit;
    this.onPending();
  }

  /** An interrupt from a local source (LVT): illegal vectors are a receive error. */
  private raiseLocal(vector: number, level: boolean): void {
    if (vector < 16) this.signalError(ESR_RECEIVE_ILLEGAL_VECTOR);
    else this.raiseIrr(vector, level);
  }

  private notifyIfPending(): void {
    if (this.pendingVector() >= 0) this.onPending();
  }

  // ---------------------------------------------------------------- IPIs and errors

  private sendIcr(icrLow: number, destination: number): void {
    const mode = deliveryModeOf(icrLow);
    if ((mode === DM_FIXED || mode === DM_LOWEST) && (icrLow & 0xff) < 16) {
      this.signalError(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    this.bus.sendIpi(this, icrLow, destination);
  }

  private selfIpi(vector: number): void {
    if (vector < 16) this.signalError(ESR_SEND_ILLEGAL_VECTOR);
    else this.acceptFixed(vector, false);
  }

  private signalError(bits: number): void {
    this.esrPending |= bits;
    const entry = this.lvt[LVT_ERROR]!;
    if (!this.errorArmed || (entry & LVT_MASKED) !== 0) return;
    this.errorArmed = false;
    const vector = entry & 0xff;
    if (vector < 16) this.esrPending |= ESR_RECEIVE_ILLEGAL_VECTOR;
    else this.raiseIrr(vector, false);
  }

  /** ESR write: latch errors detected since the last write, clear them, rearm the error interrupt. */
  private latchEsr(): void {
    this.esr = this.esrPending;
    this.esrPending = 0;
    this.errorArmed = true;
  }

  // ---------------------------------------------------------------- timer

  private timerMode(): number {
    return (this.lvt[LVT_TIMER]! >>> TIMER_MODE_SHIFT) & 3;
  }

  private writeInitialCount(v: number): void {
    if (this.timerMode() === TIMER_MODE_TSC_DEADLINE) return; // ignored (SDM 10.5.4.1)
    this.updateTimer();
    this.initialCount = v;
    if (v === 0) {
      this.disarmCount(); // "a write of 0 ... effectively stops the local APIC timer"
      return;
    }
    this.armCount(this.ticksAt(this.clock.nowNs()), v);
  }

  private writeDivide(v: number): void {
    this.updateTimer();
    if (this.countArmed) {
      // Keep the current count and continue from now at the new rate.
      const now = this.ticksAt(this.clock.nowNs());
      const count = this.countAt(now);
      this.divisor = timerDivisor(v);
      this.armCount(now, count);
    } else {
      this.divisor = timerDivisor(v);
    }
    this.dcr = v;
  }

  private currentCount(): number {
    if (this.timerMode() === TIMER_MODE_TSC_DEADLINE) return 0;
    this.updateTimer();
    if (!this.countArmed) return 0;
    return this.countAt(this.ticksAt(this.clock.nowNs()));
  }

  private countAt(tick: number): number {
    return this.refCount - Math.floor((tick - this.refTick) / this.divisor);
  }

  private armCount(refTick: number, refCount: number): void {
    this.countArmed = true;
    this.refTick = refTick;
    this.refCount = refCount;
    this.expiryNs = this.nsAtTick(refTick + refCount * this.divisor);
  }

  private disarmCount(): void {
    this.countArmed = false;
    this.expiryNs = Infinity;
  }

  readTscDeadline(): bigint {
    if (!this.enabled || this.timerMode() !== TIMER_MODE_TSC_DEADLINE) return 0n;
    this.updateTimer();
    return this.tscDeadline;
  }

  /** IA32_TSC_DEADLINE write: arms in TSC-deadline mode (0 disarms); ignored in other modes (as KVM). */
  writeTscDeadline(v: bigint): void {
    checkU64(v, 'IA32_TSC_DEADLINE');
    if (!this.enabled || this.timerMode() !== TIMER_MODE_TSC_DEADLINE) return;
    this.tscDeadline = v;
    this.tscDeadlineNum = v === 0n ? 0 : v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
    this.updateTimer(); // a deadline already passed fires at once
  }

  nextTimerDeadlineNs(): number {
    if (!this.enabled || (this.lvt[LVT_TIMER]! & LVT_MASKED) !== 0) return Infinity;
    if (this.timerMode() !== TIMER_MODE_TSC_DEADLINE) return this.expiryNs;
    const deadline = this.tscDeadlineNum;
    if (deadline === 0 || deadline === Infinity) return Infinity;
    const tsc = this.clock.readTsc();
    const now = this.clock.nowNs();
    if (deadline <= tsc) return now;
    const hz = this.clock.tscHz;
    if (!Number.isInteger(hz)) return now + Math.ceil(((deadline - tsc) * NS_PER_S) / hz);
    const bigHz = BigInt(hz);
    return now + Number((BigInt(deadline - tsc) * NS_PER_S_BIG + bigHz - 1n) / bigHz);
  }

  tick(): void {
    this.updateTimer();
  }

  /** Bring the timer up to clock.nowNs(): fire what is due (at most once: the IRR bit coalesces), reload periodic. */
  private updateTimer(): void {
    if (!this.enabled || (!this.countArmed && this.tscDeadlineNum === 0)) return; // nothing armed: no clock read
    const mode = this.timerMode();
    if (mode === TIMER_MODE_TSC_DEADLINE) {
      if (this.tscDeadlineNum !== 0 && this.clock.readTsc() >= this.tscDeadlineNum) {
        this.tscDeadline = 0n; // the timer disarms itself and clears the MSR (SDM 10.5.4.1)
        this.tscDeadlineNum = 0;
        this.fireTimer();
      }
      return;
    }
    if (!this.countArmed) return;
    const nowNs = this.clock.nowNs();
    if (nowNs < this.expiryNs) return;
    if (mode === TIMER_MODE_PERIODIC) {
      const expiry = this.refTick + this.refCount * this.divisor;
      const period = this.initialCount * this.divisor;
      const periods = Math.floor((this.ticksAt(nowNs) - expiry) / period);
      this.armCount(expiry + periods * period, this.initialCount);
    } else {
      this.disarmCount();
    }
    this.fireTimer();
  }

  private fireTimer(): void {
    const entry = this.lvt[LVT_TIMER]!;
    if ((entry & LVT_MASKED) === 0) this.raiseLocal(entry & 0xff, false);
  }

  /** APIC timer input ticks elapsed at guest time `ns` (floor). */
  private ticksAt(ns: number): number {
    if (this.identityTicks) return Math.floor(ns);
    return Number((BigInt(Math.floor(ns)) * BigInt(this.apicHz)) / NS_PER_S_BIG);
  }

  /** First guest ns at which `tick` input ticks have elapsed (ceil). */
  private nsAtTick(tick: number): number {
    if (this.identityTicks) return tick;
    const hz = BigInt(this.apicHz);
    return Number((BigInt(tick) * NS_PER_S_BIG + hz - 1n) / hz);
  }

  // ---------------------------------------------------------------- destinations

  /**
   * Whether `apic` is addressed by `dest` (SDM 10.6.2, 10.12.10). `x2apic` says
   * the destination came from an x2APIC-mode sender (32-bit field) rather than
   * an xAPIC one (8 bits). Broadcast: 0xFF from an xAPIC sender, 0xFFFFFFFF from
   * an x2APIC one, in physical and logical mode. The target's own mode picks the
   * matching rule: xAPIC physical compares the 8-bit ID; xAPIC logical uses the
   * DFR model (flat: LDR[31:24] & dest != 0; cluster: dest[7:4] == LDR[31:28]
   * and dest[3:0] & LDR[27:24] != 0); x2APIC physical compares the 32-bit ID;
   * x2APIC logical compares dest[31:16] with the cluster and ANDs bits 15:0.
   * Shorthands are the bus's business. A globally disabled APIC matches nothing.
   */
  static matchesDestination(apic: LocalApic, dest: number, logical: boolean, x2apic: boolean): boolean {
    const mode = apic.mode;
    if (mode === 'disabled') return false;
    if (dest === (x2apic ? X2APIC_BROADCAST : XAPIC_BROADCAST)) return true;
    if (mode === 'x2apic') {
      if (!logical) return dest === apic.id;
      const ldr = x2apicLogicalId(apic.id);
      return dest >>> 16 === ldr >>> 16 && (dest & ldr & 0xffff) !== 0;
    }
    if (dest > 0xff) return false; // an xAPIC only sees 8 destination bits
    if (!logical) return dest === apic.xapicId;
    const logicalId = apic.ldr >>> 24;
    switch (apic.dfr >>> 28) {
      case DFR_MODEL_FLAT:
        return (logicalId & dest) !== 0;
      case DFR_MODEL_CLUSTER:
        return logicalId >>> 4 === dest >>> 4 && (logicalId & dest & 0xf) !== 0;
      default:
        return false; // undefined model
    }
  }
}

function checkOffset(offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xfff) {
    throw new ApicError(`APIC MMIO offset ${offset} is not an integer in 0..0xFFF.`);
  }
}

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff) {
    throw new ApicError(`${what} ${v} is not a 32-bit integer.`);
  }
}

function checkU64(v: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw new ApicError(`${what} value ${String(v)} is not an unsigned 64-bit bigint.`);
  }
}

function checkVector(v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new ApicError(`Vector ${v} is not an integer in 0..255.`);
}
