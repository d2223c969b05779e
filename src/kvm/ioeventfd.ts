/**
 * ioeventfd (KVM_IOEVENTFD, kvm-api-facts.md §5): the VMM registers a guest
 * address (a port on the PIO bus or a GPA on the MMIO bus), an access length
 * and an EventFd; a guest write that matches completes in the kernel and only
 * signals the EventFd (counter += 1), with no exit to the VMM. A write that
 * matches nothing goes on to the in-kernel devices and then to the VMM as an
 * ordinary `io`/`mmio` exit.
 *
 * Upstream semantics (virt/kvm/eventfd.c, §5.1), exactly:
 *  - assign checks, in order: len in {0,1,2,4,8}; addr + len must not wrap
 *    past 2^64; flags within 0x1F; len 0 with DATAMATCH; the fd; collision
 *    (EEXIST). All EINVAL except EEXIST. DEASSIGN is handled before any of
 *    these checks, as kvm_ioeventfd() does.
 *  - matching a write: same bus, address equal, registered len 0 matches
 *    any size, else the size must equal len; with DATAMATCH the written value
 *    zero-extended from len bytes must equal all 64 bits of datamatch.
 *  - collision: same bus and addr, and (either len is 0, or the lengths are
 *    equal and (either is a wildcard, or the datamatch values are equal)).
 *  - deassign: bus, fd, addr, len and wildcard-ness must match, and datamatch
 *    unless wildcard; removes one registration; none: ENOENT.
 *  - PIO registrations of len 0 are accepted and match any access size, as
 *    upstream does since KVM_CAP_IOEVENTFD_ANY_LENGTH (older kernels
 *    refused them; the issue text still calls len 0 "MMIO only").
 *  - VIRTIO_CCW_NOTIFY (bit 3) selects s390's virtio-ccw notify bus, which
 *    x86 accesses never reach: accepted, never signalled. Bit 4 (upstream's
 *    internal fast-MMIO flag) is accepted and has no effect.
 *
 * Differences, and why:
 *  - The fd is an EventFd object. A value that is not an EventFd is EINVAL
 *    ("an open fd that is not an eventfd"). Upstream's EBADF (no open fd with
 *    that number) has no counterpart in an object API, and errors.ts has no
 *    EBADF code.
 *  - No ENOSPC: upstream excludes ioeventfds from the NR_IOBUS_DEVS limit
 *    (kvm_io_bus_register_dev: "exclude ioeventfd which is limited by maximum
 *    fd"); their only limit is the number of open fds. ENOMEM is not modelled.
 *  - One path for MMIO, the decoded one: a len-0 MMIO registration is not put
 *    on a separate fast-MMIO bus (VMX's EPT-misconfig shortcut, which signals
 *    without decoding and so also fires for reads); here reads never match a
 *    write registration.
 *
 * Read support, OUR DESIGN (the posted ioeventfd-read series broke the ABI
 * and was withdrawn; kvm-api-facts §5.2 recommends this instead):
 *  - KVM_IOEVENTFD_FLAG_DATAREAD = bit 5 (0x20); upstream offsets and flags
 *    keep their values. The value to return travels in the first 8 bytes of
 *    `pad` (struct offset 28, little endian); in this object API it is the
 *    `dataread` field. Without DATAREAD, `dataread` is ignored, as upstream
 *    ignores pad.
 *  - A guest read of a matching (bus, addr, len) completes in the kernel with
 *    the low len bytes of dataread, little endian (len 0: the low access-size
 *    bytes), signals the fd and causes no exit.
 *  - EINVAL, checked after upstream's flag checks and before the fd:
 *    DATAREAD with DATAMATCH; DATAREAD on the virtio-ccw bus; DATAREAD with
 *    len 0 on the PIO bus (len 0 reads are MMIO only).
 *  - A DATAREAD registration matches reads only; write registrations never
 *    match reads. Both share upstream's collision namespace (a DATAREAD
 *    registration is a wildcard, so any other registration at the same bus,
 *    addr and len, or a len-0 one at that addr, is EEXIST). Deassign also
 *    requires DATAREAD to match (like wildcard-ness); dataread is not compared.
 *
 * Trace events: upstream has no ioeventfd tracepoint (a hit shows only as
 * kvm_pio/kvm_mmio without a kvm_exit). Ours, named in KVM's style:
 * `kvm_ioeventfd_assign`, `kvm_ioeventfd_deassign` (VM-wide) and
 * `kvm_ioeventfd_signal` (per hit, on the vCPU that made the access).
 */
import { EventFd } from './eventfd.js';
import { KvmError } from './errors.js';
import type { TraceLog } from './trace.js';
import type { GuestClock } from './clock.js';

/** The ioctl number: _IOW(KVMIO, 0x79, struct kvm_ioeventfd) with a 64-byte struct (§5.1). */
export const KVM_IOEVENTFD = 0x4040ae79;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_IOEVENTFD_NO_LENGTH = 100;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;

/** Flags (§5.1). */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
export const KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY = 1 << 3;
/** Upstream's valid-flag mask: bits 0-4 (bit 4 is the internal fast-MMIO slot, no uapi name). */
export const KVM_IOEVENTFD_VALID_FLAG_MASK = 0x1f;
/** OUR flag (§5.2 recommendation): answer guest reads with `dataread`. */
export const KVM_IOEVENTFD_FLAG_DATAREAD = 1 << 5;
/** Flags this implementation accepts: upstream's and DATAREAD. */
export const IOEVENTFD_ACCEPTED_FLAGS = KVM_IOEVENTFD_VALID_FLAG_MASK | KVM_IOEVENTFD_FLAG_DATAREAD;

/** struct kvm_ioeventfd layout (64 bytes, §5.1); dataread is our use of pad[0..7]. */
export const KVM_IOEVENTFD_LAYOUT = {
  size: 64, datamatch: 0, addr: 8, len: 16, fd: 20, flags: 24, pad: 28, padSize: 36, dataread: 28,
} as const;

/** struct kvm_ioeventfd as an object; u64 fields as bigint or safe integers. */
export interface KvmIoeventfd {
  datamatch: bigint | number;
  addr: bigint | number;
  len: number;
  fd: EventFd;
  flags: number;
  /** Our read value (pad bytes 0-7): used only with KVM_IOEVENTFD_FLAG_DATAREAD. */
  dataread?: bigint | number;
}

export type IoEventFdBusName = 'pio' | 'mmio' | 'ccw';

/** A registration as the VMM sees it (list()). */
export interface IoEventFdInfo {
  readonly bus: IoEventFdBusName;
  readonly addr: bigint;
  readonly len: number;
  readonly fd: EventFd;
  /** null: wildcard (no DATAMATCH). */
  readonly datamatch: bigint | null;
  /** null: a write registration; otherwise the value reads return (DATAREAD). */
  readonly dataread: bigint | null;
}

/** Who made a guest access: the vCPU (for trace events). */
export interface IoAccessor {
  readonly id: number;
  nowNs(): number;
}

interface Registration extends IoEventFdInfo {
  readonly wildcard: boolean;
  readonly isRead: boolean;
  /** Unsigned 32-bit halves of datamatch and of dataread's low len bytes (no BigInt on the access path). */
  readonly dmLo: number;
  readonly dmHi: number;
  readonly rdLo: number;
  readonly rdHi: number;
}

const U64_MAX = (1n << 64n) - 1n;
const VALID_LENGTHS: readonly number[] = [0, 1, 2, 4, 8];

/**
 * One bus's registrations, indexed by address for the guest-access path. An
 * access matches at most one registration: the collision rule forbids two
 * that could match the same write, and two DATAREAD ones at one (addr, len).
 */
export class IoEventFdBus {
  private readonly byAddr = new Map<number, Registration[]>();
  /** The last address looked up and its list: a doorbell is hit again and again (saves the Map lookup of a large key). */
  private lastAddr = -1;
  private lastRegs: Registration[] | undefined = undefined;
  private writers = 0;
  private readers = 0;
  /** The answer of the last successful read(): bits 31:0 (unsigned) and 63:32. */
  lo = 0;
  hi = 0;

  constructor(readonly name: IoEventFdBusName, private readonly trace: TraceLog | null) {}

  /**
   * A guest write of `size` bytes (lo, and hi for 8 bytes) at `addr`: true if
   * a registration matched, which has then been signalled (the write is
   * consumed); false to continue to the next device or the VMM.
   */
  write(addr: number, size: number, lo: number, hi: number, by: IoAccessor): boolean {
    if (this.writers === 0) return false;
    const regs = this.lookup(addr);
    if (regs === undefined) return false;
    const vLo = size === 1 ? lo & 0xff : size === 2 ? lo & 0xffff : lo >>> 0;
    const vHi = size === 8 ? hi >>> 0 : 0;
    for (const r of regs) {
      if (r.isRead) continue;
      if (r.len !== 0) {
        if (r.len !== size) continue;
        if (!r.wildcard && (r.dmLo !== vLo || r.dmHi !== vHi)) continue;
      }
      r.fd.signal(1);
      if (this.trace !== null) this.traceHit(by, 'write', addr, size, vLo, vHi);
      return true;
    }
    return false;
  }

  /**
   * A guest read (our DATAREAD, §5.2): true if a registration matched; the
   * answer is then in `lo`/`hi`, masked to the access size, and the fd has
   * been signalled.
   */
  read(addr: number, size: number, by: IoAccessor): boolean {
    if (this.readers === 0) return false;
    const regs = this.lookup(addr);
    if (regs === undefined) return false;
    for (const r of regs) {
      if (!r.isRead || (r.len !== 0 && r.len !== size)) continue;
      this.lo = size === 1 ? r.rdLo & 0xff : size === 2 ? r.rdLo & 0xffff : r.rdLo;
      this.hi = size === 8 ? r.rdHi : 0;
      r.fd.signal(1);
      if (this.trace !== null) this.traceHit(by, 'read', addr, size, this.lo, this.hi);
      return true;
    }
    return false;
  }

  private lookup(addr: number): Registration[] | undefined {
    if (addr !== this.lastAddr) {
      this.lastRegs = this.byAddr.get(addr);
      this.lastAddr = addr;
    }
    return this.lastRegs;
  }

  /** Number of registrations on this bus. */
  get size(): number { return this.writers + this.readers; }

  /** @internal Adds a checked registration (IoEventFds.assign). */
  add(r: Registration): void {
    if (r.addr <= BigInt(Number.MAX_SAFE_INTEGER)) {
      // Larger addresses are kept by IoEventFds for collisions and deassign, but no guest access reaches them.
      const key = Number(r.addr);
      const list = this.byAddr.get(key);
      if (list === undefined) this.byAddr.set(key, [r]); else list.push(r);
    }
    if (r.isRead) this.readers++; else this.writers++;
    this.lastAddr = -1;
  }

  /** @internal Removes a registration (IoEventFds.deassign). */
  remove(r: Registration): void {
    const key = Number(r.addr);
    const list = this.byAddr.get(key);
    const k = list?.indexOf(r) ?? -1;
    if (list !== undefined && k >= 0) {
      list.splice(k, 1);
      if (list.length === 0) this.byAddr.delete(key);
    }
    if (r.isRead) this.readers--; else this.writers--;
    this.lastAddr = -1;
  }

  private traceHit(by: IoAccessor, rw: 'read' | 'write', addr: number, size: number, lo: number, hi: number): void {
    const val = ((BigInt(hi) << 32n) | BigInt(lo)).toString(16);
    this.trace!.emit('kvm_ioeventfd_signal', by.id, by.nowNs(), { bus: this.name, rw, addr: addr.toString(16), len: size, val });
  }
}

/** A VM's ioeventfds: the KVM_IOEVENTFD ioctl and the per-bus tables the vCPUs consult. */
export class IoEventFds {
  readonly pio: IoEventFdBus;
  readonly mmio: IoEventFdBus;
  /** s390's virtio-ccw notify bus: accepts registrations, never reached by x86 accesses. */
  readonly ccw: IoEventFdBus;
  /** Every registration in assignment order (upstream's kvm->ioeventfds list). */
  private readonly all: Registration[] = [];

  constructor(private readonly trace: TraceLog | null = null, private readonly clock: GuestClock | null = null) {
    this.pio = new IoEventFdBus('pio', trace);
    this.mmio = new IoEventFdBus('mmio', trace);
    this.ccw = new IoEventFdBus('ccw', trace);
  }

  /** KVM_IOEVENTFD: assign, or deassign with KVM_IOEVENTFD_FLAG_DEASSIGN. Throws KvmError; a failed call changes nothing. */
  ioctl(args: KvmIoeventfd): void {
    if (typeof args !== 'object' || args === null) throw new KvmError('EFAULT', 'the ioeventfd argument is not an object');
    const flags = u32(args.flags, 'flags');
    if (flags & KVM_IOEVENTFD_FLAG_DEASSIGN) this.deassign(args, flags);
    else this.assign(args, flags);
  }

  /** The registrations, in assignment order. */
  list(): IoEventFdInfo[] {
    return this.all.map((r) => ({ bus: r.bus, addr: r.addr, len: r.len, fd: r.fd, datamatch: r.datamatch, dataread: r.dataread }));
  }

  private assign(args: KvmIoeventfd, flags: number): void {
    const len = u32(args.len, 'len');
    const addr = u64(args.addr, 'addr');
    const datamatch = u64(args.datamatch, 'datamatch');
    const bus = busOf(flags);
    if (!VALID_LENGTHS.includes(len)) throw new KvmError('EINVAL', `ioeventfd len must be 0, 1, 2, 4 or 8, got ${len}`);
    // Upstream tests `addr + len < addr` in u64: a range ending exactly at 2^64 counts as wrapping too.
    if (addr + BigInt(len) > U64_MAX) {
      throw new KvmError('EINVAL', `ioeventfd range 0x${addr.toString(16)}+${len} wraps past 2^64`);
    }
    if ((flags & ~IOEVENTFD_ACCEPTED_FLAGS) !== 0) {
      throw new KvmError('EINVAL', `ioeventfd flags 0x${flags.toString(16)} have bits outside 0x${IOEVENTFD_ACCEPTED_FLAGS.toString(16)} (upstream's 0x1f and our DATAREAD 0x20)`);
    }
    const wildcard = (flags & KVM_IOEVENTFD_FLAG_DATAMATCH) === 0;
    if (len === 0 && !wildcard) throw new KvmError('EINVAL', 'an ioeventfd of len 0 (any access size) cannot have DATAMATCH');
    const isRead = (flags & KVM_IOEVENTFD_FLAG_DATAREAD) !== 0;
    if (isRead) {
      if (!wildcard) throw new KvmError('EINVAL', 'DATAREAD cannot be combined with DATAMATCH (a read has no value to match)');
      if (bus === 'ccw') throw new KvmError('EINVAL', 'DATAREAD is for the PIO and MMIO buses, not virtio-ccw notifications');
      if (len === 0 && bus === 'pio') throw new KvmError('EINVAL', 'a DATAREAD ioeventfd of len 0 (any access size) is MMIO only');
    }
    const dataread = isRead ? u64(args.dataread ?? 0n, 'dataread') : 0n;
    const fd = eventFdOf(args.fd);
    const reg = makeRegistration(bus, addr, len, fd, wildcard ? null : datamatch, isRead ? dataread : null);
    const other = this.all.find((p) => collides(p, reg));
    if (other !== undefined) {
      throw new KvmError('EEXIST', `an ioeventfd on the ${bus.toUpperCase()} bus at 0x${addr.toString(16)} (len ${other.len}) already covers these accesses`);
    }
    this.all.push(reg);
    this.busNamed(bus).add(reg);
    this.traceVm('kvm_ioeventfd_assign', reg);
  }

  private deassign(args: KvmIoeventfd, flags: number): void {
    const bus = busOf(flags);
    const len = u32(args.len, 'len');
    const addr = u64(args.addr, 'addr');
    const datamatch = u64(args.datamatch, 'datamatch');
    const fd = eventFdOf(args.fd);
    const wildcard = (flags & KVM_IOEVENTFD_FLAG_DATAMATCH) === 0;
    const isRead = (flags & KVM_IOEVENTFD_FLAG_DATAREAD) !== 0;
    const k = this.all.findIndex((p) => p.bus === bus && p.fd === fd && p.addr === addr && p.len === len &&
      p.wildcard === wildcard && p.isRead === isRead && (wildcard || p.datamatch === datamatch));
    if (k < 0) {
      throw new KvmError('ENOENT', `no ioeventfd on the ${bus.toUpperCase()} bus at 0x${addr.toString(16)} len ${len} with this fd${wildcard ? '' : ` and datamatch 0x${datamatch.toString(16)}`}`);
    }
    const [reg] = this.all.splice(k, 1);
    this.busNamed(bus).remove(reg);
    this.traceVm('kvm_ioeventfd_deassign', reg);
  }

  private busNamed(name: IoEventFdBusName): IoEventFdBus {
    return name === 'pio' ? this.pio : name === 'mmio' ? this.mmio : this.ccw;
  }

  private traceVm(name: string, r: Registration): void {
    if (this.trace === null) return;
    this.trace.emit(name, -1, this.clock?.roundStartNs ?? 0, {
      bus: r.bus, addr: r.addr.toString(16), len: r.len,
      datamatch: r.datamatch === null ? 'any' : r.datamatch.toString(16),
      dataread: r.dataread === null ? 'none' : r.dataread.toString(16),
    });
  }
}

/** ioeventfd_bus_from_flags(): PIO wins over VIRTIO_CCW_NOTIFY, otherwise MMIO. */
function busOf(flags: number): IoEventFdBusName {
  if (flags & KVM_IOEVENTFD_FLAG_PIO) return 'pio';
  if (flags & KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY) return 'ccw';
  return 'mmio';
}

/** ioeventfd_check_collision() (§5.1). */
function collides(a: Registration, b: Registration): boolean {
  return a.bus === b.bus && a.addr === b.addr &&
    (a.len === 0 || b.len === 0 || (a.len === b.len && (a.wildcard || b.wildcard || a.datamatch === b.datamatch)));
}

function makeRegistration(bus: IoEventFdBusName, addr: bigint, len: number, fd: EventFd, datamatch: bigint | null, dataread: bigint | null): Registration {
  const dm = datamatch ?? 0n;
  // A read returns the low len bytes; len 0 keeps all 8 and the access size masks them.
  const rd = dataread === null ? 0n : len === 0 ? dataread : dataread & ((1n << BigInt(8 * len)) - 1n);
  return {
    bus, addr, len, fd, datamatch, dataread, wildcard: datamatch === null, isRead: dataread !== null,
    dmLo: Number(dm & 0xffffffffn), dmHi: Number(dm >> 32n),
    rdLo: Number(rd & 0xffffffffn), rdHi: Number(rd >> 32n),
  };
}

/** eventfd_ctx_fdget(): the fd must be an eventfd. */
function eventFdOf(fd: unknown): EventFd {
  if (fd instanceof EventFd) return fd;
  throw new KvmError('EINVAL', `the ioeventfd fd must be an EventFd, got ${fd === null ? 'null' : typeof fd}`);
}

function u64(v: unknown, name: string): bigint {
  if (typeof v === 'bigint' && v >= 0n && v <= U64_MAX) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new KvmError('EINVAL', `ioeventfd ${name} must be a u64 (a bigint or safe integer in 0..2^64-1), got ${String(v)}`);
}

function u32(v: unknown, name: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  throw new KvmError('EINVAL', `ioeventfd ${name} must be a u32 (an integer in 0..2^32-1), got ${String(v)}`);
}
