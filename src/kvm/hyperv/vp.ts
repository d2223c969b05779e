/**
 * The in-kernel Hyper-V state of one VP (one Vcpu): its SynIC, its four
 * synthetic timers and its VP assist page MSR; synthetic MSR access goes
 * through rdmsr/wrmsr (msrs.ts). The owner calls tick() like the APIC timer's
 * (each run and each scheduling round) and sleeps no longer than
 * nextDeadlineNs() when every vCPU is halted.
 */
import { HV_PAGE_SIZE, HV_SYNIC_STIMER_COUNT, HV_VP_ASSIST_PAGE_ENABLE, HvVpAssist } from '../../spec/tlfs.js';
import type { HvVcpuContext } from './context.js';
import { hvRdmsr, hvWrmsr } from './msrs.js';
import type { HvPartition } from './partition.js';
import { referenceTime } from './reference-time.js';
import { SyntheticTimer } from './stimer.js';
import { SynIC } from './synic.js';

const PAGE_MASK = ~BigInt(HV_PAGE_SIZE - 1) & ((1n << 64n) - 1n);

export class HvVp {
  readonly synic: SynIC;
  readonly timers: readonly SyntheticTimer[];
  vpAssistPage = 0n;
  /** Cached earliest timer expiry in guest ns (Infinity: none), so tick() is one comparison. */
  private deadlineNs = Infinity;

  constructor(readonly partition: HvPartition, readonly index: number, readonly ctx: HvVcpuContext) {
    const trace = partition.trace;
    this.synic = new SynIC(partition.mem, ctx.apic, () => this.now(), trace, partition.sintQueueLimit, partition.pageAccessible);
    this.timers = Array.from({ length: HV_SYNIC_STIMER_COUNT }, (_, i) => new SyntheticTimer(i, this.synic, ctx.apic, trace));
  }

  /** Reference time (100 ns units) of this VP now. */
  now(): bigint { return referenceTime(this.ctx.nowNs()); }

  /** RDMSR of a synthetic MSR; undefined = #GP (not ours, feature not enabled, or write-only). */
  rdmsr(index: number): bigint | undefined { return hvRdmsr(this, index); }

  /** WRMSR of a synthetic MSR; false = #GP. */
  wrmsr(index: number, value: bigint): boolean {
    const ok = hvWrmsr(this, index, value);
    this.updateTimers();
    return ok;
  }

  // ---------------------------------------------------------------- timers

  /** Expires due synthetic timers. Cheap when nothing is due. */
  tick(): void {
    if (this.deadlineNs === Infinity || this.ctx.nowNs() < this.deadlineNs) return; // no clock read without a timer
    this.updateTimers();
  }

  /** Guest ns of the next timer expiry, or Infinity. */
  nextDeadlineNs(): number { return this.deadlineNs; }

  /** Processes every timer (writes, EOM and EOI can make expiries due or deliverable) and recomputes the deadline. */
  updateTimers(): void {
    const now = this.now();
    let next = Infinity;
    for (const t of this.timers) {
      t.process(now);
      const due = t.nextExpiration;
      if (due !== undefined) next = Math.min(next, Number(due) * 100);
    }
    this.deadlineNs = next;
  }

  // ---------------------------------------------------------------- APIC hooks

  /** Call right after the APIC acknowledged `vector` (Vcpu.acknowledgeInterrupt): SINT auto-EOI. */
  onInterruptAcknowledged(vector: number): void { this.synic.onInterruptAcknowledged(vector); }

  /** Call on every APIC EOI with the vector that left the ISR: SynIC redelivery. */
  onApicEoi(vector: number): void {
    this.synic.onApicEoi(vector);
    this.updateTimers();
  }

  // ---------------------------------------------------------------- VP assist page (§3.3)

  /**
   * VP_ASSIST_PAGE: bit 0 enable, 63:12 page. Enabling a page that is not
   * guest RAM is #GP; enabling clears ApicAssist (the first u32) and keeps the
   * rest of the page, as KVM does. The page's contents are used by VSM.
   */
  writeVpAssistPage(value: bigint): boolean {
    if ((value & HV_VP_ASSIST_PAGE_ENABLE) !== 0n) {
      const base = Number(value & PAGE_MASK);
      const mem = this.partition.mem;
      if (!Number.isSafeInteger(base) || !mem.isRam(base) || !mem.isRam(base + HV_PAGE_SIZE - 1)) return false;
      if (this.partition.pageAccessible(base)) mem.write32(base + HvVpAssist.ApicAssist, 0);
    }
    this.vpAssistPage = value;
    return true;
  }

  /** GPA of the enabled VP assist page, or undefined. */
  get vpAssistPageGpa(): number | undefined {
    return (this.vpAssistPage & HV_VP_ASSIST_PAGE_ENABLE) !== 0n ? Number(this.vpAssistPage & PAGE_MASK) : undefined;
  }

  reset(): void {
    this.synic.reset();
    for (const t of this.timers) t.reset();
    this.vpAssistPage = 0n;
    this.deadlineNs = Infinity;
  }
}
