/**
 * How device models reach guest memory (DMA, rings, bounce buffers): only
 * through a GuestMemoryAccess, never through `vm.mem`. It is the host
 * userspace view of guest RAM (kvm-api-facts §4): a page the guest has not
 * shared (protmem RFC) or that is private (the PRIVATE attribute) refuses the
 * access with ProtectedMemoryError, the analogue of the SIGBUS a host
 * process gets. Memory attributes of the accessor's Vm apply too (DESIGN
 * §3.4: device DMA honours them): NR refuses reads, NW writes.
 *
 * Every call checks its whole range before it copies a byte, so a refused
 * access copies nothing in either direction. The Vm is held in a private
 * field: a device model has no path to guest memory but these methods.
 * (The CPU and KVM's own accesses do not come through here: they use the
 * kvm layer directly and are not affected by protection.)
 */
import { PAGE_SIZE } from '../memory/phys-memory.js';
import { KVM_MEMORY_ATTRIBUTE_NR, KVM_MEMORY_ATTRIBUTE_NW } from '../kvm/memory-attributes.js';
import { hostDenied, pinGuestMemory, ProtectedMemoryError, type GuestRange, type PinnedGuestMemory } from '../kvm/protected-memory.js';
import type { Vm } from '../kvm/vm.js';

export { ProtectedMemoryError, type GuestRange, type PinnedGuestMemory };

/** A device-model access that is not about protection: bad arguments, not RAM, or denied by memory attributes. Nothing was copied. */
export class GuestMemoryAccessError extends Error {
  override name = 'GuestMemoryAccessError';
}

const MAX_GPA = 2 ** 52;

export class GuestMemoryAccess {
  readonly #vm: Vm;

  constructor(vm: Vm) { this.#vm = vm; }

  /** `length` bytes from `gpa`. */
  read(gpa: number, length: number): Uint8Array {
    this.#check(gpa, length, 'read');
    return this.#vm.mem.read(gpa, length);
  }

  /** Fills `dest` from `gpa`; `dest` is left untouched if the access is refused. */
  readInto(gpa: number, dest: Uint8Array): void {
    if (!(dest instanceof Uint8Array)) throw new GuestMemoryAccessError('readInto needs a Uint8Array destination');
    this.#check(gpa, dest.length, 'read');
    dest.set(this.#vm.mem.read(gpa, dest.length));
  }

  write(gpa: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new GuestMemoryAccessError('write needs a Uint8Array of data');
    this.#check(gpa, data.length, 'write');
    this.#vm.mem.write(gpa, data);
  }

  fill(gpa: number, length: number, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 255) throw new GuestMemoryAccessError(`fill value ${String(value)} is not a byte (0-255)`);
    this.#check(gpa, length, 'write');
    this.#vm.mem.fill(gpa, length, value);
  }

  /** Little-endian loads and stores. */
  read8(gpa: number): number { this.#check(gpa, 1, 'read'); return this.#vm.mem.read8(gpa); }
  read16(gpa: number): number { this.#check(gpa, 2, 'read'); return this.#vm.mem.read16(gpa); }
  read32(gpa: number): number { this.#check(gpa, 4, 'read'); return this.#vm.mem.read32(gpa); }
  read64(gpa: number): bigint { this.#check(gpa, 8, 'read'); return this.#vm.mem.read64(gpa); }
  write8(gpa: number, v: number): void { this.#check(gpa, 1, 'write'); this.#vm.mem.write8(gpa, v); }
  write16(gpa: number, v: number): void { this.#check(gpa, 2, 'write'); this.#vm.mem.write16(gpa, v); }
  write32(gpa: number, v: number): void { this.#check(gpa, 4, 'write'); this.#vm.mem.write32(gpa, v); }
  write64(gpa: number, v: bigint): void {
    if (typeof v !== 'bigint') throw new GuestMemoryAccessError('write64 takes a bigint');
    this.#check(gpa, 8, 'write');
    this.#vm.mem.write64(gpa, BigInt.asUintN(64, v));
  }

  /**
   * Pins `range` for direct access (get_user_pages from host userspace):
   * KvmError EFAULT if a page is not RAM or not accessible to the host. The
   * pin re-checks its pages at every access. Device models never pin with
   * the KVM flag (FOLL_KVM is KVM's own), so asking for it is refused.
   */
  pin(range: GuestRange, opts?: { readonly kvm?: boolean }): PinnedGuestMemory {
    if (opts !== undefined && (typeof opts !== 'object' || opts === null || opts.kvm !== false && opts.kvm !== undefined)) {
      throw new GuestMemoryAccessError('device models cannot pin guest memory with the KVM flag: FOLL_KVM is for KVM\'s own accesses');
    }
    return pinGuestMemory(this.#vm, range, { kvm: false });
  }

  #check(gpa: number, length: number, access: 'read' | 'write'): void {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0 || gpa + length > MAX_GPA) {
      throw new GuestMemoryAccessError(`a device-model ${access} of ${String(length)} bytes at GPA ${String(gpa)} is not a valid guest physical range`);
    }
    if (length === 0) return;
    const vm = this.#vm;
    const deny = access === 'read' ? KVM_MEMORY_ATTRIBUTE_NR : KVM_MEMORY_ATTRIBUTE_NW;
    const last = Math.floor((gpa + length - 1) / PAGE_SIZE);
    for (let gfn = Math.floor(gpa / PAGE_SIZE); gfn <= last; gfn++) {
      const page = gfn * PAGE_SIZE;
      if (!vm.mem.isRam(page)) {
        throw new GuestMemoryAccessError(`a device-model ${access} of GPA 0x${Math.max(gpa, page).toString(16)} was refused: it is not guest RAM; nothing was copied`);
      }
      const why = hostDenied(vm, gfn);
      if (why !== null) throw new ProtectedMemoryError(page, access, why);
      if ((vm.memoryAttributes.get(gfn) & deny) !== 0) {
        throw new GuestMemoryAccessError(`a device-model ${access} of guest page 0x${page.toString(16)} was refused by its memory attributes (0x${vm.memoryAttributes.get(gfn).toString(16)}); nothing was copied`);
      }
    }
  }
}
