/**
 * The doorbell: an example device (ours, not a PC device) driven by
 * ioeventfd (kvm-api-facts §5), the way virtio devices use it. The guest puts
 * requests into a ring in its RAM and rings a doorbell; the ring is a write
 * the kernel consumes and turns into an EventFd signal, so it costs no exit.
 * The VMM services the ring between scheduling rounds (EventFdPoll, see
 * eventfd.ts): it takes every ring signalled since the last round at once,
 * answers the requests in guest memory and raises a completion interrupt.
 * Identification registers are DATAREAD ioeventfds (our read support, §5.2):
 * the kernel answers those reads too.
 *
 * MMIO page at DOORBELL_MMIO_BASE (offset, access, who handles it):
 *   0x00 MAGIC     read 4   ioeventfd DATAREAD: 0x6c626476 ("vdbl")
 *   0x08 CONFIG    read 8   ioeventfd DATAREAD: ring entries (31:0), version (63:32)
 *   0x10 DOORBELL  write 4  ioeventfd, any value: "new requests"
 *   0x18 RING      r/w 8    VMM exit: GPA of the ring page (4 KiB aligned RAM; 0 detaches)
 *   0x20 IRQ       r/w 4    VMM exit: completion vector (16-255, 0 = none) for the writing vCPU
 * Ports DOORBELL_PORT + 0: write 2, value 1 = doorbell (ioeventfd with DATAMATCH 1);
 *       DOORBELL_PORT + 4: read 4 = MAGIC (ioeventfd DATAREAD).
 * Accesses of another size (or another PIO doorbell value) miss the
 * ioeventfds and reach the device as ordinary exits, which it serves the same
 * way: a doorbell that exits still rings, a register read that exits returns
 * the same bytes. ioeventfd only makes the common accesses cheap.
 *
 * Ring page (u32 fields): 0x00 produced (guest), 0x04 consumed, 0x08 kicks
 * (every ring seen, either path), 0x0c exit kicks (rings that came as exits),
 * 0x10 reads (DATAREAD reads signalled), 0x14 services (times the VMM handled
 * the notifiers), 0x18 interrupts raised; 0x40 + 16 k: entry k of
 * DOORBELL_RING_ENTRIES { u32 op, u32 arg, u64 result }. Op 1 (SQUARE):
 * result = arg * arg; any other op: all-ones. The device writes the counters
 * after each service (and right away when RING is set, so the guest can take
 * them as its baseline); the guest sets produced to 0 before setting RING.
 */
import { EventFd, type EventFdPoll } from '../../kvm/eventfd.js';
import {
  KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_DATAREAD, KVM_IOEVENTFD_FLAG_DEASSIGN, KVM_IOEVENTFD_FLAG_PIO, type KvmIoeventfd,
} from '../../kvm/ioeventfd.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import type { Vm } from '../../kvm/vm.js';
import { GuestMemoryAccessError, ProtectedMemoryError } from '../guest-memory-access.js';
import type { PioDevice, PioSize } from '../io-bus.js';

export const DOORBELL_MMIO_BASE = 0xfeb0_0000;
export const DOORBELL_MMIO_SIZE = 0x1000;
export const DOORBELL_PORT = 0x6000;
export const DOORBELL_PORT_COUNT = 8;

export const DB_MAGIC = 0x00, DB_CONFIG = 0x08, DB_DOORBELL = 0x10, DB_RING = 0x18, DB_IRQ = 0x20;
export const DB_PIO_DOORBELL = 0, DB_PIO_MAGIC = 4;
/** The value a PIO doorbell write must carry to match its ioeventfd. */
export const DB_PIO_KICK = 1;

export const DOORBELL_MAGIC = 0x6c626476;
export const DOORBELL_VERSION = 1;
export const DOORBELL_RING_ENTRIES = 64;
export const DOORBELL_CONFIG = (BigInt(DOORBELL_VERSION) << 32n) | BigInt(DOORBELL_RING_ENTRIES);

export const RING_PRODUCED = 0x00, RING_CONSUMED = 0x04, RING_KICKS = 0x08, RING_EXIT_KICKS = 0x0c;
export const RING_READS = 0x10, RING_SERVICES = 0x14, RING_IRQS = 0x18, RING_ENTRY0 = 0x40, RING_ENTRY_SIZE = 16;
export const DOORBELL_OP_SQUARE = 1;

/** The accessor device models reach guest memory through (Machine.guestMemory, guest-memory-access.ts). */
export interface DeviceMemory {
  read32(gpa: number): number;
  write32(gpa: number, v: number): void;
  write64(gpa: number, v: bigint): void;
}

/** Counters since the device was made (the ring holds the same numbers for the guest). */
export interface DoorbellStats {
  kicks: number;
  exitKicks: number;
  reads: number;
  services: number;
  irqs: number;
  /** Requests answered. */
  completed: number;
}

const U64_ONES = (1n << 64n) - 1n;

export class Doorbell implements PioDevice {
  /** Signalled by the kernel for each doorbell ring (MMIO and PIO registrations share it, as virtio queues may). */
  readonly kick = new EventFd();
  /** Signalled for each DATAREAD read the kernel answered. */
  readonly reads = new EventFd();
  readonly stats: DoorbellStats = { kicks: 0, exitKicks: 0, reads: 0, services: 0, irqs: 0, completed: 0 };
  /**
   * Accesses that reached the device as VMM exits, by register ('mmio:RING',
   * 'pio:DOORBELL', ...): what the ioeventfds did not take.
   */
  readonly exitAccesses = new Map<string, number>();
  /** Why the ring was last refused (not RAM, protected, misaligned), or null. */
  ringError: string | null = null;
  private ring = 0;
  private consumed = 0;
  private vector = 0;
  private target: Vcpu | null = null;
  private readonly registrations: KvmIoeventfd[];

  constructor(private readonly vm: Vm, private readonly memory: DeviceMemory) {
    const mmio = (off: number) => BigInt(DOORBELL_MMIO_BASE + off), port = (off: number) => BigInt(DOORBELL_PORT + off);
    this.registrations = [
      { addr: mmio(DB_MAGIC), len: 4, fd: this.reads, flags: KVM_IOEVENTFD_FLAG_DATAREAD, datamatch: 0n, dataread: BigInt(DOORBELL_MAGIC) },
      { addr: mmio(DB_CONFIG), len: 8, fd: this.reads, flags: KVM_IOEVENTFD_FLAG_DATAREAD, datamatch: 0n, dataread: DOORBELL_CONFIG },
      { addr: mmio(DB_DOORBELL), len: 4, fd: this.kick, flags: 0, datamatch: 0n },
      { addr: port(DB_PIO_DOORBELL), len: 2, fd: this.kick, flags: KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH, datamatch: BigInt(DB_PIO_KICK) },
      { addr: port(DB_PIO_MAGIC), len: 4, fd: this.reads, flags: KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAREAD, datamatch: 0n, dataread: BigInt(DOORBELL_MAGIC) },
    ];
    for (const r of this.registrations) vm.ioeventfd(r);
  }

  /** Adds the notifiers to the VMM's poll set: the machine then calls service() in the round they were signalled. */
  listen(poll: EventFdPoll): void {
    poll.add(this.kick, () => this.service());
    poll.add(this.reads, () => this.service());
  }

  /** Removes the ioeventfds (KVM_IOEVENTFD_FLAG_DEASSIGN): every access then exits to the device. */
  detach(): void {
    for (const r of this.registrations) this.vm.ioeventfd({ ...r, flags: r.flags | KVM_IOEVENTFD_FLAG_DEASSIGN });
  }

  /** Takes everything the notifiers hold, answers the ring's new requests, and raises the completion interrupt. */
  service(): void {
    this.stats.kicks += Number(this.kick.read());
    this.stats.reads += Number(this.reads.read());
    this.stats.services++;
    this.processRing();
  }

  // ---- accesses that exit to the VMM ----

  ownsMmio(gpa: number): boolean { return gpa >= DOORBELL_MMIO_BASE && gpa < DOORBELL_MMIO_BASE + DOORBELL_MMIO_SIZE; }

  mmioRead(gpa: number, size: number): bigint {
    const off = gpa - DOORBELL_MMIO_BASE;
    this.countExit('mmio', off);
    const reg = ([[DB_MAGIC, 4, BigInt(DOORBELL_MAGIC)], [DB_CONFIG, 8, DOORBELL_CONFIG], [DB_RING, 8, BigInt(this.ring)],
      [DB_IRQ, 4, BigInt(this.vector)]] as const).find(([base, width]) => off >= base && off + size <= base + width);
    if (reg === undefined) return 0n;
    return (reg[2] >> BigInt(8 * (off - reg[0]))) & ((1n << BigInt(8 * size)) - 1n);
  }

  /** `from` is the vCPU that made the access: an IRQ write makes it the interrupt's target. */
  mmioWrite(from: Vcpu, gpa: number, size: number, value: bigint): void {
    const off = gpa - DOORBELL_MMIO_BASE;
    this.countExit('mmio', off);
    if (off === DB_DOORBELL) this.exitKick();
    else if (off === DB_RING && size === 8) this.setRing(value);
    else if (off === DB_IRQ && size === 4) {
      const v = Number(value);
      this.vector = v >= 16 && v <= 255 ? v : 0; // 0-15 are exception vectors: no interrupt (the register reads back 0)
      this.target = this.vector === 0 ? null : from;
    }
  }

  pioRead(port: number, size: PioSize): number {
    const off = port - DOORBELL_PORT;
    this.countExit('pio', off);
    if (off >= DB_PIO_MAGIC && off + size <= DB_PIO_MAGIC + 4) return Number((BigInt(DOORBELL_MAGIC) >> BigInt(8 * (off - DB_PIO_MAGIC))) & ((1n << BigInt(8 * size)) - 1n));
    return 0;
  }

  pioWrite(port: number, size: PioSize, value: number): void {
    const off = port - DOORBELL_PORT;
    this.countExit('pio', off);
    if (off === DB_PIO_DOORBELL && value === DB_PIO_KICK) this.exitKick(); // what the ioeventfd would have taken
  }

  // ---- the ring ----

  private exitKick(): void {
    this.stats.kicks++;
    this.stats.exitKicks++;
    this.processRing();
  }

  /** RING register: a new ring page (0 detaches). What the notifiers hold is counted first, so the baseline is exact. */
  private setRing(value: bigint): void {
    this.service();
    this.ring = 0;
    this.consumed = 0;
    this.ringError = null;
    if (value === 0n) return;
    if (value % 4096n !== 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.ringError = `ring GPA 0x${value.toString(16)} is not a 4 KiB aligned guest physical address`;
      return;
    }
    this.ring = Number(value);
    this.guard(() => this.writeCounters());
  }

  private processRing(): void {
    if (this.ring === 0) return;
    this.guard(() => {
      const m = this.memory, ring = this.ring;
      // Untrusted: a guest that ran ahead of the ring gets one ring's worth per service, never an unbounded loop.
      const pending = Math.min(DOORBELL_RING_ENTRIES, (m.read32(ring + RING_PRODUCED) - this.consumed) >>> 0);
      for (let k = 0; k < pending; k++) {
        const entry = ring + RING_ENTRY0 + RING_ENTRY_SIZE * (this.consumed % DOORBELL_RING_ENTRIES);
        const op = m.read32(entry) >>> 0, arg = BigInt(m.read32(entry + 4) >>> 0);
        m.write64(entry + 8, op === DOORBELL_OP_SQUARE ? arg * arg : U64_ONES);
        this.consumed = (this.consumed + 1) >>> 0;
        this.stats.completed++;
      }
      if (this.target !== null) { this.target.injectInterrupt(this.vector); this.stats.irqs++; }
      this.writeCounters();
    });
  }

  private writeCounters(): void {
    const m = this.memory, ring = this.ring, s = this.stats;
    m.write32(ring + RING_CONSUMED, this.consumed);
    for (const [off, v] of [[RING_KICKS, s.kicks], [RING_EXIT_KICKS, s.exitKicks], [RING_READS, s.reads], [RING_SERVICES, s.services], [RING_IRQS, s.irqs]]) {
      m.write32(ring + off, v >>> 0);
    }
  }

  /** Runs a ring access; a ring the guest made unreachable (not RAM, protected) is detached with the reason, never a crash. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (!(e instanceof GuestMemoryAccessError || e instanceof ProtectedMemoryError)) throw e;
      this.ringError = e.message;
      this.ring = 0;
    }
  }

  private countExit(bus: 'mmio' | 'pio', off: number): void {
    const names: Record<number, string> = bus === 'mmio'
      ? { [DB_MAGIC]: 'MAGIC', [DB_CONFIG]: 'CONFIG', [DB_DOORBELL]: 'DOORBELL', [DB_RING]: 'RING', [DB_IRQ]: 'IRQ' }
      : { [DB_PIO_DOORBELL]: 'DOORBELL', [DB_PIO_MAGIC]: 'MAGIC' };
    const key = `${bus}:${names[off] ?? `0x${off.toString(16)}`}`;
    this.exitAccesses.set(key, (this.exitAccesses.get(key) ?? 0) + 1);
  }
}
