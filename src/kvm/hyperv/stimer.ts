/**
 * One synthetic timer (STIMERn_CONFIG / STIMERn_COUNT, fact sheet §6.5).
 * Times are in 100 ns reference units (TIME_REF_COUNT).
 *
 * Rules (TLFS "Synthetic Timers", as KVM implements them in hyperv.c):
 * - Writing CONFIG or COUNT stops the timer and forgets an undelivered expiry.
 * - COUNT = 0 clears Enable; a non-zero COUNT sets Enable when AutoEnable is set.
 * - Enable with SINTx = 0 in message mode leaves the timer disabled (no SINT to
 *   deliver to).
 * - One-shot: COUNT is the absolute expiration time; a time in the past expires
 *   at once. After its message is delivered, Enable is cleared.
 * - Periodic: COUNT is the period; the first expiry is now + period, later ones
 *   keep the phase and skip periods that passed while undelivered.
 * - Direct mode (needs hv-stimer-direct) sends the APIC vector of CONFIG[11:4]
 *   instead of a message.
 * - Message mode: a TimerExpired message to SINTx. When the slot is busy the
 *   expiry waits (msg_pending) and is redelivered after EOM/EOI, except for a
 *   lazy periodic timer, whose expiry is then dropped. A SynIC or SIM that is
 *   disabled loses the expiry (nothing could ever redeliver it).
 */
import { HvStimerConfig as C } from '../../spec/tlfs.js';
import type { HvApic, HvTrace } from './context.js';
import { timerExpiredMessage } from './message.js';
import type { SynIC } from './synic.js';

export class SyntheticTimer {
  config = 0n;
  count = 0n;
  /** Armed expiration time (reference units); 0 = not armed. */
  expiration = 0n;
  /** An expiry is waiting for its message slot. */
  msgPending = false;
  /** Bumped on every reprogramming, so queued messages of an old setting go stale. */
  private generation = 0;

  constructor(
    readonly index: number,
    private readonly synic: SynIC,
    private readonly apic: HvApic,
    private readonly trace?: HvTrace,
  ) {}

  get enabled(): boolean { return (this.config & C.Enable) !== 0n; }
  get periodic(): boolean { return (this.config & C.Periodic) !== 0n; }
  get lazy(): boolean { return (this.config & C.Lazy) !== 0n; }
  get autoEnable(): boolean { return (this.config & C.AutoEnable) !== 0n; }
  get directMode(): boolean { return (this.config & C.DirectMode) !== 0n; }
  get apicVector(): number { return Number((this.config >> C.ApicVectorShift) & C.ApicVectorMask); }
  get sint(): number { return Number((this.config >> C.SintShift) & C.SintMask); }

  writeConfig(value: bigint, now: bigint): void {
    this.trace?.('kvm_hv_stimer_set_config', { timer: this.index, config: value.toString(16) });
    this.stop();
    let v = value;
    if ((v & C.Enable) !== 0n && (v & C.DirectMode) === 0n && ((v >> C.SintShift) & C.SintMask) === 0n) v &= ~C.Enable;
    this.config = v;
    if (this.enabled) this.arm(now);
  }

  writeCount(value: bigint, now: bigint): void {
    this.trace?.('kvm_hv_stimer_set_count', { timer: this.index, count: value.toString(16) });
    this.stop();
    this.count = value;
    if (value === 0n) this.config &= ~C.Enable;
    else if (this.autoEnable) this.config |= C.Enable;
    if (this.enabled) this.arm(now);
  }

  reset(): void {
    this.stop();
    this.config = 0n;
    this.count = 0n;
  }

  /** Next expiry in reference units, or undefined when nothing is due (disabled or waiting for a slot). */
  get nextExpiration(): bigint | undefined {
    return this.enabled && this.expiration !== 0n && !this.msgPending ? this.expiration : undefined;
  }

  /** Expires the timer if it is due at `now`. */
  process(now: bigint): void {
    const due = this.nextExpiration;
    if (due === undefined || now < due) return;
    this.trace?.('kvm_hv_stimer_expiration', { timer: this.index, direct: this.directMode, expiration: due.toString() });
    if (this.directMode) {
      this.apic.acceptFixed(this.apicVector);
      this.afterDelivery(now);
      return;
    }
    const gen = this.generation;
    this.msgPending = true;
    const result = this.synic.offer(this.sint, {
      build: (deliveryTime) => (gen === this.generation ? timerExpiredMessage(this.index, due, deliveryTime) : null),
      delivered: (deliveryTime) => { if (gen === this.generation) this.afterDelivery(deliveryTime); },
    }, { always: true, dropIfBusy: this.periodic && this.lazy });
    // Lost (no SynIC/SIM to deliver to) or dropped (lazy): carry on as if delivered.
    if (result === 'disabled' || result === 'dropped') this.afterDelivery(now);
  }

  private afterDelivery(now: bigint): void {
    this.msgPending = false;
    if (!this.periodic) {
      this.config &= ~C.Enable;
      this.expiration = 0n;
      return;
    }
    // Next period boundary after now, keeping the phase (KVM stimer_start).
    const exp = this.expiration;
    this.expiration = now >= exp ? now + (this.count - ((now - exp) % this.count)) : exp;
  }

  private arm(now: bigint): void {
    if (this.count === 0n) return;
    this.expiration = this.periodic ? now + this.count : this.count;
    this.trace?.(this.periodic ? 'kvm_hv_stimer_start_periodic' : 'kvm_hv_stimer_start_one_shot',
      { timer: this.index, expiration: this.expiration.toString() });
  }

  private stop(): void {
    this.expiration = 0n;
    this.msgPending = false;
    this.generation++;
  }
}
