/**
 * Memory regions (KVM_SET_USER_MEMORY_REGION): which guest physical ranges of
 * a Vm are RAM. Everything outside every slot is MMIO: the vCPU exits with
 * 'mmio' (and memory attributes there are ignored, kvm-api-facts.md §2.5).
 *
 * Our slots are identity-mapped onto the backing PhysMemory: a slot at GPA g
 * uses the backing's bytes at offset g (PhysMemory is indexed by GPA on every
 * CPU path, so there is no userspace_addr to pick). Consequences, in KVM terms:
 * a slot must lie inside the backing (KVM's access_ok check on userspace_addr,
 * EINVAL; not EFAULT, which KVM reports only later, at fault time, for a
 * mapping that is valid but not backed, and cannot happen here), and moving a
 * slot changes its userspace_addr too, which KVM rejects (EINVAL): delete and
 * re-create instead.
 *
 * The CPU asks `mem.isRam(gpa)` on its slow paths; GuestMemory answers from
 * the slots of every Vm over that memory (VSM: one Vm per VTL over the same
 * memory, all with the same slots). With one Vm this is exactly its slots;
 * with several, a GPA that is RAM in any of them is RAM for all.
 */
import { PAGE_SIZE, PhysMemory } from '../memory/phys-memory.js';
import { KvmError } from './errors.js';

/** KVM_USER_MEM_SLOTS on x86: KVM_MEM_SLOTS_NUM (SHRT_MAX) minus 3 internal slots. */
export const KVM_USER_MEM_SLOTS = 32764;
/** KVM_MEM_MAX_NR_PAGES: the most pages one slot may have, (1 << 31) - 1. */
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** Slot flags KVM knows. None is implemented here (each changes how the slot behaves), so all are EINVAL. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;
export const SUPPORTED_MEMSLOT_FLAGS = 0;

const U64_LIMIT = 1n << 64n;

/** struct kvm_userspace_memory_region without userspace_addr (identity-mapped, see above). */
export interface UserMemoryRegion {
  /** Bits 15:0 slot id, bits 31:16 address space (only 0: we model no SMM). */
  slot: number;
  flags: number;
  guestPhysAddr: bigint | number;
  /** 0 deletes the slot. */
  memorySize: bigint | number;
}

export interface Memslot {
  readonly id: number;
  readonly flags: number;
  readonly guestPhysAddr: number;
  readonly memorySize: number;
}

/** Guest memory whose RAM is what the memslots of the Vms over it say. */
export class GuestMemory extends PhysMemory {
  private readonly tables: Memslots[] = [];
  /** The first merged RAM range (the only one in the usual layout), checked inline. */
  private ram0Start = 0;
  private ram0End = 0;
  /** Further merged RAM ranges [start, end), sorted. */
  private moreStarts = new Float64Array(0);
  private moreEnds = new Float64Array(0);

  override isRam(gpa: number): boolean {
    if (gpa < this.ram0End && gpa >= this.ram0Start) return true;
    return this.moreStarts.length !== 0 && this.inMoreRam(gpa);
  }

  private inMoreRam(gpa: number): boolean {
    const s = this.moreStarts;
    let lo = 0, hi = s.length - 1;
    if (gpa < s[0]) return false;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid] <= gpa) lo = mid; else hi = mid - 1;
    }
    return gpa < this.moreEnds[lo];
  }

  /** Registers a Vm's slot table (done by Memslots). */
  attach(t: Memslots): void { this.tables.push(t); }

  /**
   * Rebuilds the RAM map after a slot change, then drops what the CPUs
   * derived from the old map: decoded code in [gpa, gpa + len) and every
   * vCPU's fast access caches (through each table's onRamChange).
   */
  ramChanged(gpa: number, len: number): void {
    const all: [number, number][] = [];
    for (const t of this.tables) for (const s of t.list()) all.push([s.guestPhysAddr, s.guestPhysAddr + s.memorySize]);
    all.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const r of all) {
      const last = merged[merged.length - 1];
      if (last !== undefined && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    this.ram0Start = merged.length > 0 ? merged[0][0] : 0;
    this.ram0End = merged.length > 0 ? merged[0][1] : 0;
    this.moreStarts = Float64Array.from(merged.slice(1), (r) => r[0]);
    this.moreEnds = Float64Array.from(merged.slice(1), (r) => r[1]);
    if (len > 0) this.notifyWrite(gpa, len);
    for (const t of this.tables) t.onRamChange();
  }
}

/** One Vm's memory slots. */
export class Memslots {
  private readonly slots = new Map<number, Memslot>();
  readonly mem: GuestMemory;
  /** Called after any change to what is RAM (the Vm drops its vCPUs' fast caches). */
  onRamChange: () => void = () => {};

  constructor(mem: GuestMemory) {
    this.mem = mem;
    mem.attach(this);
  }

  /** The slots, by guest physical address. */
  list(): Memslot[] {
    return [...this.slots.values()].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
  }

  /** The slot holding `gpa`, if any. */
  find(gpa: number): Memslot | undefined {
    for (const s of this.slots.values()) if (gpa >= s.guestPhysAddr && gpa < s.guestPhysAddr + s.memorySize) return s;
    return undefined;
  }

  /**
   * KVM_SET_USER_MEMORY_REGION, with KVM's checks in KVM's order
   * (kvm_vm_ioctl_set_memory_region, __kvm_set_memory_region); every
   * failure is EINVAL except an overlap with another slot (EEXIST). On
   * error nothing changes.
   */
  set(region: UserMemoryRegion): void {
    if (typeof region !== 'object' || region === null) throw new KvmError('EFAULT', 'the memory region argument is not an object');
    const { slot, flags } = region;
    if (!Number.isInteger(slot) || slot < 0 || slot > 0xffffffff) throw new KvmError('EINVAL', `slot ${String(slot)} is not a u32`);
    const id = slot & 0xffff, asId = slot >>> 16;
    if (id >= KVM_USER_MEM_SLOTS) throw new KvmError('EINVAL', `slot id ${id} is not below KVM_USER_MEM_SLOTS (${KVM_USER_MEM_SLOTS})`);
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new KvmError('EINVAL', `memory region flags ${String(flags)} are not a u32`);
    if ((flags & ~SUPPORTED_MEMSLOT_FLAGS) !== 0) {
      throw new KvmError('EINVAL', `memory region flags 0x${flags.toString(16)} are not supported (no slot flag is implemented: LOG_DIRTY_PAGES, READONLY and GUEST_MEMFD are all rejected)`);
    }
    const size = u64(region.memorySize, 'memorySize');
    const gpa = u64(region.guestPhysAddr, 'guestPhysAddr');
    if (size % BigInt(PAGE_SIZE) !== 0n) throw new KvmError('EINVAL', `memory region size 0x${size.toString(16)} is not 4 KiB aligned`);
    if (gpa % BigInt(PAGE_SIZE) !== 0n) throw new KvmError('EINVAL', `memory region address 0x${gpa.toString(16)} is not 4 KiB aligned`);
    // KVM's access_ok(userspace_addr, memory_size): here the slot's bytes of the backing.
    if (size !== 0n && gpa + size > BigInt(this.mem.size)) {
      throw new KvmError('EINVAL', `memory region 0x${gpa.toString(16)}+0x${size.toString(16)} lies beyond the guest memory backing (0x${this.mem.size.toString(16)} bytes)`);
    }
    if (asId !== 0) throw new KvmError('EINVAL', `address space ${asId} does not exist (only 0: no SMM address space is modelled)`);
    if (gpa + size > U64_LIMIT) throw new KvmError('EINVAL', 'memory region wraps past 2^64');
    if (size / BigInt(PAGE_SIZE) > BigInt(KVM_MEM_MAX_NR_PAGES)) throw new KvmError('EINVAL', `memory region has more than KVM_MEM_MAX_NR_PAGES (${KVM_MEM_MAX_NR_PAGES}) pages`);

    const old = this.slots.get(id);
    const base = Number(gpa), bytes = Number(size);
    if (bytes === 0) {
      if (old === undefined) throw new KvmError('EINVAL', `slot ${id} does not exist, so it cannot be deleted`);
      this.slots.delete(id);
      this.mem.ramChanged(old.guestPhysAddr, old.memorySize);
      return;
    }
    if (old !== undefined) {
      // Identity mapping: a different address or size is a different userspace_addr or npages (EINVAL).
      if (old.guestPhysAddr !== base || old.memorySize !== bytes) {
        throw new KvmError('EINVAL', `slot ${id} exists with a different address or size; delete it (memorySize 0) before re-creating it`);
      }
      return; // same flags: nothing to change, as KVM
    }
    for (const s of this.slots.values()) {
      if (base < s.guestPhysAddr + s.memorySize && s.guestPhysAddr < base + bytes) {
        throw new KvmError('EEXIST', `memory region 0x${base.toString(16)}+0x${bytes.toString(16)} overlaps slot ${s.id} (0x${s.guestPhysAddr.toString(16)}+0x${s.memorySize.toString(16)})`);
      }
    }
    this.slots.set(id, { id, flags, guestPhysAddr: base, memorySize: bytes });
    this.mem.ramChanged(base, bytes);
  }
}

function u64(v: unknown, name: string): bigint {
  if (typeof v === 'bigint' && v >= 0n && v < U64_LIMIT) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new KvmError('EINVAL', `memory region ${name} must be a u64 (a bigint or safe integer in 0..2^64-1), got ${String(v)}`);
}
