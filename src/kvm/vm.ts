/**
 * A virtual machine as KVM presents it: guest memory, vCPUs, and the in-kernel
 * interrupt routing between their local APICs (the IPI bus).
 */
import { PhysMemory } from '../memory/phys-memory.js';
import { GuestClock } from './clock.js';
import { KvmError } from './errors.js';
import { TraceLog } from './trace.js';
import { LocalApic, type ApicBus } from './lapic.js';
import { Vcpu } from './vcpu.js';

export interface VmOptions {
  /** Guest RAM in bytes (sparse: costs only what the guest touches). */
  memorySize: number;
  clock?: GuestClock;
  /** An existing memory to share (every VTL's Vm runs over the same guest memory). */
  memory?: PhysMemory;
  /** Collect trace events (see trace.ts). */
  trace?: boolean;
}

export class Vm implements ApicBus {
  readonly mem: PhysMemory;
  readonly clock: GuestClock;
  readonly vcpus: Vcpu[] = [];
  /** Trace events, when tracing was asked for at creation. */
  readonly trace: TraceLog | null;

  constructor(opts: VmOptions) {
    this.mem = opts.memory ?? new PhysMemory(opts.memorySize);
    this.clock = opts.clock ?? new GuestClock();
    this.trace = opts.trace ? new TraceLog() : null;
  }

  /** KVM_CREATE_VCPU. */
  createVcpu(id: number): Vcpu {
    if (!Number.isInteger(id) || id < 0 || id > 1023) throw new KvmError('EINVAL', `vCPU id ${id} is out of range`);
    if (this.vcpus.some((v) => v.id === id)) throw new KvmError('EEXIST', `vCPU ${id} already exists`);
    const v = new Vcpu(this, id, this.vcpus.length === 0);
    this.vcpus.push(v);
    return v;
  }

  // ---- ApicBus: route an IPI written to `from`'s ICR (SDM 10.6) ----
  sendIpi(from: LocalApic, icrLow: number, destination: number): void {
    const shorthand = (icrLow >>> 18) & 3;
    const logical = (icrLow & (1 << 11)) !== 0;
    const mode = (icrLow >>> 8) & 7;
    const x2 = from.mode === 'x2apic';
    if (this.trace !== null) {
      const sender = this.vcpus.find((v) => v.apic === from);
      this.trace.emit('kvm_apic_ipi', sender?.id ?? -1, sender?.nowNs() ?? 0, { icr_low: (icrLow >>> 0).toString(16), dest: destination >>> 0 });
    }
    const targets: LocalApic[] = [];
    for (const v of this.vcpus) {
      const a = v.apic;
      const self = a === from;
      if (shorthand === 1 ? self : shorthand === 2 ? true : shorthand === 3 ? !self : LocalApic.matchesDestination(a, destination, logical, x2)) {
        targets.push(a);
      }
    }
    if (mode === 1 && targets.length > 1) {
      // Lowest priority: the target with the lowest arbitration priority (ties: lowest ID).
      let best = targets[0];
      for (const a of targets) if (a.arbitrationPriority() < best.arbitrationPriority()) best = a;
      best.deliver(icrLow);
      return;
    }
    for (const a of targets) a.deliver(icrLow);
  }
}
