// Shared fakes for the Hyper-V tests: a vCPU context with a settable clock and
// a real LocalApic (so EOI, ICR, TPR and auto-EOI are checked against the real
// APIC rules), guest memory as a PhysMemory, and a partition built from hv-* flags.
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { GuestClock } from '../../src/kvm/clock.js';
import { LocalApic, type ApicBus } from '../../src/kvm/lapic.js';
import { REG_EOI, REG_IRR0, REG_ISR0, REG_SPIV } from '../../src/kvm/lapic-regs.js';
import type { HvVcpuContext } from '../../src/kvm/hyperv/context.js';
import { resolveHvFeatures, type HvConfig } from '../../src/kvm/hyperv/features.js';
import { HvPartition, type CrashReport, type HvPartitionOptions } from '../../src/kvm/hyperv/partition.js';
import type { HvVp } from '../../src/kvm/hyperv/vp.js';

/** A settable guest clock shared by the fake vCPUs; the TSC comes from the real GuestClock. */
export class FakeClock {
  ns = 0;
  private readonly guest: GuestClock;
  constructor(readonly tscHz = 1_000_000_000) { this.guest = new GuestClock(1, tscHz); }
  tscAt(ns: number): number { return this.guest.tscAt(ns); }
}

export class RecordingBus implements ApicBus {
  readonly sent: { icrLow: number; destination: number }[] = [];
  sendIpi(_from: LocalApic, icrLow: number, destination: number): void { this.sent.push({ icrLow, destination }); }
}

export class FakeVcpu implements HvVcpuContext {
  readonly apic: LocalApic;
  readonly bus = new RecordingBus();
  /** Added to the TSC (a guest IA32_TSC write). */
  tscOffset = 0;
  runtime = 0;
  constructor(readonly clock: FakeClock, id: number) {
    this.apic = new LocalApic({
      id, isBsp: id === 0, bus: this.bus,
      clock: { nowNs: () => clock.ns, tscHz: clock.tscHz, readTsc: () => this.readTsc() },
    });
    this.apic.mmioWrite(REG_SPIV, 0x1ff); // software-enable the APIC so it accepts interrupts
  }
  nowNs(): number { return this.clock.ns; }
  readTsc(): number { return this.clock.tscAt(this.clock.ns) + this.tscOffset; }
  runtimeNs(): number { return this.runtime; }

  irr(vector: number): boolean { return ((this.apic.mmioRead(REG_IRR0 + (vector >>> 5) * 0x10) >>> (vector & 31)) & 1) === 1; }
  isr(vector: number): boolean { return ((this.apic.mmioRead(REG_ISR0 + (vector >>> 5) * 0x10) >>> (vector & 31)) & 1) === 1; }
  /** What the CPU does to take the highest pending interrupt: acknowledge (IRR → ISR). Returns the vector. */
  take(vp?: HvVp): number {
    const v = this.apic.pendingVector();
    if (v < 0) throw new Error('no interrupt is pending');
    this.apic.acknowledge(v);
    vp?.onInterruptAcknowledged(v);
    return v;
  }
  /** Guest EOI through the xAPIC register. */
  eoi(): void { this.apic.mmioWrite(REG_EOI, 0); }
}

export const GUEST_RAM = 16 * 1024 * 1024;

export interface Rig {
  readonly mem: PhysMemory;
  readonly clock: FakeClock;
  readonly partition: HvPartition;
  readonly vcpus: FakeVcpu[];
  readonly vps: HvVp[];
  readonly resets: number[];
  readonly crashes: CrashReport[];
  overlayChanges: number;
}

/** A partition with `count` VPs and the given hv-* flags (plus extra config). */
export function makeRig(flags: string[], opts: {
  count?: number; tscHz?: number; config?: Omit<HvConfig, 'flags'>; partition?: Partial<HvPartitionOptions>;
} = {}): Rig {
  const mem = new PhysMemory(GUEST_RAM);
  const clock = new FakeClock(opts.tscHz);
  const features = resolveHvFeatures({ flags: new Set(flags), ...opts.config });
  const rig: Rig = {
    mem, clock, vcpus: [], vps: [], resets: [], crashes: [], overlayChanges: 0,
    partition: undefined as unknown as HvPartition,
  };
  (rig as { partition: HvPartition }).partition = new HvPartition({
    features, mem, clock,
    onReset: () => rig.resets.push(clock.ns),
    onCrash: (r) => rig.crashes.push(r),
    onOverlayChange: () => { rig.overlayChanges++; },
    ...opts.partition,
  });
  for (let i = 0; i < (opts.count ?? 1); i++) {
    const v = new FakeVcpu(clock, i);
    rig.vcpus.push(v);
    rig.vps.push(rig.partition.createVp(i, v));
  }
  return rig;
}

/** Every SynIC/timer flag a test of those needs. */
export const SYNIC_FLAGS = ['hv-vpindex', 'hv-synic', 'hv-time', 'hv-stimer', 'hv-stimer-direct', 'hv-vapic'];
