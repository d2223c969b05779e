/**
 * The synthetic interrupt controller of one VP (fact sheet §4.1, §4.2):
 * SCONTROL, SIEFP, SIMP, EOM, SINT0-15; message delivery into the SIM slots
 * with queueing and the MessagePending protocol; event flags in the SIEF page;
 * SINT interrupts into the VP's local APIC.
 *
 * The SIM and SIEF pages are guest RAM pages the guest chose (as in KVM), read
 * and written through PhysMemory; the guest zeroes them.
 *
 * Message delivery (§4.2): a slot is free when its MessageType is 0. A message
 * for a busy slot waits in this SINT's queue and the slot's MessagePending
 * flag is set, so the guest writes EOM after freeing the slot. EOM, and an EOI
 * of a SINT's vector, retry the queue head (a guest may free the slot after
 * reading the flag, so EOI retries too). A message written while more are
 * queued carries MessagePending itself.
 *
 * Auto-EOI: our LocalApic's acknowledge() moves the vector IRR→ISR like any
 * interrupt. For a SINT with AutoEOI set, the owner calls
 * onInterruptAcknowledged(vector) right after acknowledge(), and we EOI the
 * APIC at once: the just-acknowledged vector is the highest in-service one (it
 * was taken because its class exceeded the PPR), so the EOI clears exactly it
 * and the guest handler never EOIs (KVM clears the ISR bit the same way).
 */
import type { PhysMemory } from '../../memory/phys-memory.js';
import {
  HV_EVENT_FLAGS_PER_SINT,
  HV_MESSAGE_FLAG_PENDING,
  HV_MESSAGE_SIZE,
  HV_PAGE_SIZE,
  HV_SYNIC_CONTROL_ENABLE,
  HV_SYNIC_FIRST_VALID_VECTOR,
  HV_SYNIC_SIEFP_ENABLE,
  HV_SYNIC_SIMP_ENABLE,
  HV_SYNIC_SINT_AUTO_EOI,
  HV_SYNIC_SINT_COUNT,
  HV_SYNIC_SINT_MASKED,
  HV_SYNIC_SINT_POLLING,
  HV_SYNIC_SINT_RESET,
  HV_SYNIC_SINT_VECTOR_MASK,
  HvMessageOffset,
  HvStatus,
} from '../../spec/tlfs.js';
import { apicEoi } from './apic-access.js';
import type { HvApic, HvTrace } from './context.js';
import { encodeMessage, type HvMessage } from './message.js';

/** A message waiting for its slot; build() returns null when it went stale (a timer was reprogrammed). */
export interface QueuedMessage {
  build(deliveryTime: bigint): HvMessage | null;
  /** Called once the message is in the slot, with the delivery time. */
  delivered?(deliveryTime: bigint): void;
}

/** Outcome of offering a message to a SINT slot. */
export type OfferResult = 'delivered' | 'queued' | 'dropped' | 'full' | 'disabled';

export interface OfferOptions {
  /** Skip the queue limit (timer messages: at most one per timer is in flight). */
  readonly always?: boolean;
  /** Do not queue: if the message cannot go into the slot now, drop it (lazy periodic timers). */
  readonly dropIfBusy?: boolean;
}

/** Posted messages a SINT queues beyond its slot before HvPostMessage reports INSUFFICIENT_BUFFERS. */
export const DEFAULT_SINT_QUEUE_LIMIT = 16;

const PAGE_MASK = ~BigInt(HV_PAGE_SIZE - 1) & ((1n << 64n) - 1n);

export class SynIC {
  scontrol = 0n;
  siefp = 0n;
  simp = 0n;
  readonly sints: bigint[] = new Array<bigint>(HV_SYNIC_SINT_COUNT).fill(HV_SYNIC_SINT_RESET);
  private readonly queues: QueuedMessage[][] = Array.from({ length: HV_SYNIC_SINT_COUNT }, () => []);

  constructor(
    private readonly mem: PhysMemory,
    private readonly apic: HvApic,
    /** Reference time now, in 100 ns units (delivery times of queued messages). */
    private readonly referenceTime: () => bigint,
    private readonly trace?: HvTrace,
    readonly queueLimit = DEFAULT_SINT_QUEUE_LIMIT,
    /** Whether the hypervisor may read and write this guest page now (memory attributes, kvm-api-facts §2.7). */
    private readonly pageAccessible: (gpa: number) => boolean = () => true,
  ) {}

  get enabled(): boolean { return (this.scontrol & HV_SYNIC_CONTROL_ENABLE) !== 0n; }
  /** The SIM is usable: enabled, and its page not closed to us by memory attributes (then it counts as disabled). */
  private get simEnabled(): boolean { return (this.simp & HV_SYNIC_SIMP_ENABLE) !== 0n && this.pageAccessible(pageBase(this.simp)); }
  private get siefEnabled(): boolean { return (this.siefp & HV_SYNIC_SIEFP_ENABLE) !== 0n && this.pageAccessible(pageBase(this.siefp)); }

  // ---------------------------------------------------------------- MSR semantics (§4.1)

  writeScontrol(v: bigint): boolean { this.scontrol = v; return true; }

  /** SIEFP/SIMP: enabling a page that is not guest RAM is #GP (KVM fails the page access the same way). */
  writeSiefp(v: bigint): boolean {
    if ((v & HV_SYNIC_SIEFP_ENABLE) !== 0n && !this.isRamPage(v)) return false;
    this.siefp = v;
    return true;
  }
  writeSimp(v: bigint): boolean {
    if ((v & HV_SYNIC_SIMP_ENABLE) !== 0n && !this.isRamPage(v)) return false;
    this.simp = v;
    return true;
  }

  /**
   * SINTn: vectors 0-15 are #GP unless the SINT is masked (KVM: the reset value
   * 0x10000, vector 0 masked, must be writable back).
   */
  writeSint(n: number, v: bigint): boolean {
    const vector = Number(v & HV_SYNIC_SINT_VECTOR_MASK);
    if (vector < HV_SYNIC_FIRST_VALID_VECTOR && (v & HV_SYNIC_SINT_MASKED) === 0n) return false;
    this.sints[n] = v;
    this.trace?.('kvm_hv_synic_set_msr', { sint: n, data: v.toString(16) });
    return true;
  }

  /** EOM: the guest freed a slot it found MessagePending in; retry every queue. */
  eom(): void {
    for (let n = 0; n < HV_SYNIC_SINT_COUNT; n++) this.retry(n);
  }

  reset(): void {
    this.scontrol = 0n;
    this.siefp = 0n;
    this.simp = 0n;
    this.sints.fill(HV_SYNIC_SINT_RESET);
    for (const q of this.queues) q.length = 0;
  }

  // ---------------------------------------------------------------- SINT state

  vectorOf(n: number): number { return Number(this.sints[n]! & HV_SYNIC_SINT_VECTOR_MASK); }
  isMasked(n: number): boolean { return (this.sints[n]! & HV_SYNIC_SINT_MASKED) !== 0n; }
  private isAutoEoi(n: number): boolean { return (this.sints[n]! & HV_SYNIC_SINT_AUTO_EOI) !== 0n; }
  private isPolling(n: number): boolean { return (this.sints[n]! & HV_SYNIC_SINT_POLLING) !== 0n; }

  /** Messages waiting for SINT n's slot. */
  queued(n: number): number { return this.queues[checkSint(n)]!.length; }

  /**
   * Raises SINT n's interrupt: nothing while the SynIC is disabled, the SINT is
   * masked or in polling mode (the guest polls the pages). Returns whether an
   * interrupt was sent to the APIC.
   */
  assertSint(n: number): boolean {
    checkSint(n);
    if (!this.enabled || this.isMasked(n) || this.isPolling(n)) return false;
    const vector = this.vectorOf(n);
    this.trace?.('kvm_hv_synic_set_irq', { sint: n, vector });
    this.apic.acceptFixed(vector);
    return true;
  }

  // ---------------------------------------------------------------- messages (§4.2)

  /**
   * HvPostMessage's delivery into SINT n (§2.9): INVALID_SYNIC_STATE when the
   * SynIC or the SIM is disabled, INSUFFICIENT_BUFFERS when the queue is full,
   * otherwise SUCCESS (delivered now, or queued with MessagePending set).
   */
  postMessage(n: number, msg: HvMessage): number {
    encodeMessage(msg); // validate before anything is queued
    const r = this.offer(n, { build: () => msg });
    return r === 'disabled' ? HvStatus.INVALID_SYNIC_STATE : r === 'full' ? HvStatus.INSUFFICIENT_BUFFERS : HvStatus.SUCCESS;
  }

  /**
   * Offers a message for SINT n. Messages keep their order: while older ones
   * wait, a new one queues behind them.
   */
  offer(n: number, msg: QueuedMessage, opts: OfferOptions = {}): OfferResult {
    checkSint(n);
    if (!this.enabled || !this.simEnabled) return 'disabled';
    const q = this.queues[n]!;
    if (opts.dropIfBusy && (q.length > 0 || this.slotBusy(n))) return 'dropped';
    if (!opts.always && q.length >= this.queueLimit) return 'full';
    q.push(msg);
    const wroteOne = this.deliverHead(n);
    if (!q.includes(msg)) return 'delivered';
    // Still waiting: behind an older message, or the slot is busy (then flag it for the guest).
    if (!wroteOne) this.setPendingFlag(n);
    return 'queued';
  }

  /** Retries SINT n's queue (EOM, EOI of its vector). */
  private retry(n: number): void {
    if (this.queues[n]!.length === 0 || !this.enabled || !this.simEnabled) return;
    if (!this.deliverHead(n) && this.queues[n]!.length > 0) this.setPendingFlag(n);
  }

  /** Writes the oldest live queued message into a free slot; false if the slot is busy. */
  private deliverHead(n: number): boolean {
    const q = this.queues[n]!;
    const slot = this.slotAddress(n);
    while (q.length > 0) {
      if (this.slotBusy(n)) return false;
      const entry = q[0]!;
      const now = this.referenceTime();
      const msg = entry.build(now);
      q.shift();
      if (msg === null) continue;
      this.mem.write(slot, encodeMessage(msg, q.length > 0 ? HV_MESSAGE_FLAG_PENDING : 0));
      entry.delivered?.(now);
      this.assertSint(n);
      return true;
    }
    return false;
  }

  /** A slot is free when its MessageType is 0 (§4.2). */
  private slotBusy(n: number): boolean {
    return this.mem.read32(this.slotAddress(n) + HvMessageOffset.MessageType) !== 0;
  }

  private setPendingFlag(n: number): void {
    const at = this.slotAddress(n) + HvMessageOffset.MessageFlags;
    this.mem.write8(at, this.mem.read8(at) | HV_MESSAGE_FLAG_PENDING);
  }

  private slotAddress(n: number): number { return pageBase(this.simp) + n * HV_MESSAGE_SIZE; }

  // ---------------------------------------------------------------- events (§2.10)

  /**
   * Sets event flag `flag` of SINT n in the SIEF page; interrupts only when the
   * flag went from 0 to 1. INVALID_SYNIC_STATE when the SynIC or the SIEF page
   * is disabled or the SINT is masked; INVALID_PARAMETER for a flag ≥ 2048.
   */
  signalEvent(n: number, flag: number): number {
    checkSint(n);
    if (!Number.isInteger(flag) || flag < 0 || flag >= HV_EVENT_FLAGS_PER_SINT) return HvStatus.INVALID_PARAMETER;
    if (!this.enabled || !this.siefEnabled || this.isMasked(n)) return HvStatus.INVALID_SYNIC_STATE;
    const at = pageBase(this.siefp) + n * (HV_EVENT_FLAGS_PER_SINT / 8) + (flag >>> 3);
    const mask = 1 << (flag & 7);
    const old = this.mem.read8(at);
    if ((old & mask) === 0) {
      this.mem.write8(at, old | mask);
      this.assertSint(n);
    }
    return HvStatus.SUCCESS;
  }

  // ---------------------------------------------------------------- APIC hooks

  /** Right after the APIC acknowledged `vector` (IRR→ISR): EOI it at once if an unmasked AutoEOI SINT uses it. */
  onInterruptAcknowledged(vector: number): void {
    for (let n = 0; n < HV_SYNIC_SINT_COUNT; n++) {
      if (this.vectorOf(n) === vector && !this.isMasked(n) && this.isAutoEoi(n)) {
        apicEoi(this.apic);
        return;
      }
    }
  }

  /** The APIC EOI'd `vector`: retry the queues of the unmasked SINTs that use it (KVM kvm_hv_synic_send_eoi). */
  onApicEoi(vector: number): void {
    for (let n = 0; n < HV_SYNIC_SINT_COUNT; n++) {
      if (this.vectorOf(n) === vector && !this.isMasked(n)) {
        this.trace?.('kvm_hv_notify_acked_sint', { sint: n });
        this.retry(n);
      }
    }
  }

  private isRamPage(msr: bigint): boolean {
    const base = pageBase(msr);
    return Number.isSafeInteger(base) && this.mem.isRam(base) && this.mem.isRam(base + HV_PAGE_SIZE - 1);
  }
}

function pageBase(msr: bigint): number { return Number(msr & PAGE_MASK); }

function checkSint(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n >= HV_SYNIC_SINT_COUNT) throw new RangeError(`SINT ${n} is not in 0..15`);
  return n;
}
