/**
 * Local APIC register map, field layouts and the small pure helpers the APIC
 * and the IPI bus share. Numbers from Intel SDM vol. 3A ch. 10 ("Advanced
 * Programmable Interrupt Controller") and pc-platform-facts.md §2.5.
 */

/** A host-side misuse of the APIC API (bad offset, bad vector, ...). */
export class ApicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApicError';
  }
}

// ---- IA32_APIC_BASE (MSR 0x1B) ----
export const MSR_IA32_APIC_BASE = 0x1b;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
export const APIC_BASE_BSP = 1 << 8;
export const APIC_BASE_EXTD = 1 << 10;
export const APIC_BASE_EN = 1 << 11;
export const APIC_DEFAULT_BASE = 0xfee00000;
/** Bits 7:0 and 9 are reserved (SDM Figure 10-5). */
export const APIC_BASE_LOW_RESERVED = 0x2ff;

// ---- xAPIC MMIO offsets (x2APIC MSR = 0x800 + (offset >> 4)) ----
export const REG_ID = 0x020;
export const REG_VERSION = 0x030;
export const REG_TPR = 0x080;
export const REG_APR = 0x090;
export const REG_PPR = 0x0a0;
export const REG_EOI = 0x0b0;
export const REG_RRD = 0x0c0;
export const REG_LDR = 0x0d0;
export const REG_DFR = 0x0e0;
export const REG_SPIV = 0x0f0;
export const REG_ISR0 = 0x100;
export const REG_TMR0 = 0x180;
export const REG_IRR0 = 0x200;
export const REG_ESR = 0x280;
export const REG_LVT_CMCI = 0x2f0;
export const REG_ICR_LOW = 0x300;
export const REG_ICR_HIGH = 0x310;
export const REG_LVT_TIMER = 0x320;
export const REG_LVT_THERMAL = 0x330;
export const REG_LVT_PERF = 0x340;
export const REG_LVT_LINT0 = 0x350;
export const REG_LVT_LINT1 = 0x360;
export const REG_LVT_ERROR = 0x370;
export const REG_TIMER_INITIAL = 0x380;
export const REG_TIMER_CURRENT = 0x390;
export const REG_TIMER_DIVIDE = 0x3e0;
/** x2APIC only (MSR 0x83F). */
export const REG_SELF_IPI = 0x3f0;

export const X2APIC_MSR_FIRST = 0x800;
export const X2APIC_MSR_LAST = 0x8ff;
export const x2apicMsr = (offset: number): number => X2APIC_MSR_FIRST + (offset >> 4);

/**
 * Version register: version 0x14 (integrated APIC, SDM 10.4.8 allows 0x10-0x15),
 * Max LVT Entry 5 = six LVT entries (timer, thermal, perf, LINT0, LINT1, error;
 * no CMCI), no EOI-broadcast suppression (bit 24 = 0).
 */
export const APIC_VERSION = 0x00050014;

// ---- LVT ----
/** LVT indexes, in register order from 0x320. */
export const LVT_TIMER = 0;
export const LVT_THERMAL = 1;
export const LVT_PERF = 2;
export const LVT_LINT0 = 3;
export const LVT_LINT1 = 4;
export const LVT_ERROR = 5;
export const LVT_COUNT = 6;
export const LVT_MASKED = 1 << 16;
/** Value of every LVT register after reset: all zero except the mask bit (SDM 10.4.7.1). */
export const LVT_RESET = LVT_MASKED;
/**
 * Bits each LVT register stores (SDM Figure 10-8). Delivery status (12) and
 * remote IRR (14) are read-only and always read 0 here; everything else is
 * reserved (x2APIC: writing a 1 there raises #GP, SDM 10.12.1.3).
 */
export const LVT_WRITABLE: readonly number[] = [
  0x000700ff, // timer: vector, mask, mode 18:17
  0x000107ff, // thermal: vector, delivery mode, mask
  0x000107ff, // perf
  0x0001a7ff, // LINT0: vector, delivery mode, polarity 13, trigger 15, mask
  0x0001a7ff, // LINT1
  0x000100ff, // error: vector, mask
];
/** Bits that are defined (writable or read-only) and so never #GP on an x2APIC write. */
export const LVT_DEFINED: readonly number[] = LVT_WRITABLE.map((w, i) =>
  i === LVT_LINT0 || i === LVT_LINT1 ? w | 0x5000 : w | 0x1000,
);
export const TIMER_MODE_SHIFT = 17;
export const TIMER_MODE_ONESHOT = 0;
export const TIMER_MODE_PERIODIC = 1;
export const TIMER_MODE_TSC_DEADLINE = 2;
export const LVT_LEVEL_TRIGGER = 1 << 15;

// ---- SPIV ----
export const SPIV_RESET = 0xff;
export const SPIV_SW_ENABLE = 1 << 8;
/** Bits 7:0 vector, 8 software enable, 9 focus-checking disable (stored, no effect). */
export const SPIV_WRITABLE = 0x3ff;

// ---- ESR bits (SDM 10.5.3) ----
export const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
export const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
export const ESR_ILLEGAL_REGISTER = 1 << 7;

// ---- DFR / LDR ----
export const DFR_RESET = 0xffffffff;
export const DFR_MODEL_FLAT = 0xf;
export const DFR_MODEL_CLUSTER = 0x0;

// ---- ICR (SDM Figure 10-12) ----
export const ICR_VECTOR_MASK = 0xff;
export const ICR_DM_SHIFT = 8;
export const DM_FIXED = 0;
export const DM_LOWEST = 1;
export const DM_SMI = 2;
export const DM_NMI = 4;
export const DM_INIT = 5;
export const DM_STARTUP = 6;
export const DM_EXTINT = 7;
export const ICR_DEST_LOGICAL = 1 << 11;
export const ICR_DELIVERY_STATUS = 1 << 12;
export const ICR_LEVEL_ASSERT = 1 << 14;
export const ICR_TRIGGER_LEVEL = 1 << 15;
export const ICR_SHORTHAND_SHIFT = 18;
export const SHORTHAND_NONE = 0;
export const SHORTHAND_SELF = 1;
export const SHORTHAND_ALL_INCLUDING_SELF = 2;
export const SHORTHAND_ALL_EXCLUDING_SELF = 3;
/** ICR low bits the xAPIC stores: vector, delivery mode, destination mode, level, trigger, shorthand. */
export const ICR_LOW_WRITABLE = 0x000ccfff;
/** xAPIC ICR high: destination in bits 31:24 only. */
export const ICR_HIGH_WRITABLE = 0xff000000;
/** x2APIC ICR low reserved bits (31:20, 17:16, 13); bit 12 is ignored as on Intel. */
export const X2APIC_ICR_LOW_RESERVED = 0xfff32000;

export const XAPIC_BROADCAST = 0xff;
export const X2APIC_BROADCAST = 0xffffffff;

/** Delivery mode (bits 10:8) of an ICR low or LVT value. */
export const deliveryModeOf = (v: number): number => (v >>> ICR_DM_SHIFT) & 7;
/** Destination shorthand (bits 19:18) of an ICR low value. */
export const shorthandOf = (icrLow: number): number => (icrLow >>> ICR_SHORTHAND_SHIFT) & 3;

/**
 * Timer divisor from the divide configuration register: bits 3,1,0 form a
 * 3-bit code, 000 ÷2, 001 ÷4, ... 110 ÷128, 111 ÷1 (SDM Figure 10-10).
 */
export function timerDivisor(dcr: number): number {
  const code = (dcr & 3) | ((dcr >>> 1) & 4);
  return code === 7 ? 1 : 2 << code;
}

/** x2APIC logical ID: cluster (ID[19:4]) in bits 31:16, 1 << ID[3:0] in bits 15:0 (SDM 10.12.10.2). */
export function x2apicLogicalId(x2apicId: number): number {
  return ((((x2apicId >>> 4) & 0xffff) << 16) | (1 << (x2apicId & 0xf))) >>> 0;
}

/** Vector of the highest bit set in a 256-bit register held as 8 words, or -1. */
export function highestBit(words: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = words[i]!;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}
