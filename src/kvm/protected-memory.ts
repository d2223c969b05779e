/**
 * Guest memory the host may not touch (kvm-api-facts §4).
 *
 * 1. The protmem RFC (§4.1), a per-VM mode (VmOptions.protectedMemoryRfc,
 *    off by default because its numbers clash with upstream's, §4.3). The
 *    guest calls ENABLE_MEM_PROTECTED (12): the VM's `enabled`
 *    (kvm->mem_protected) is set, then every memslot's backing becomes
 *    protected, and slots created later are protected as they are created.
 *    MEM_SHARE (13) / MEM_UNSHARE (14) clear / set the protection of a GFN
 *    range, as the RFC's mprotect-style flag on the host mapping does, also
 *    before ENABLE (the RFC does not check mem_protected there).
 *    Protection concerns the *host* only: the guest's own accesses, and
 *    KVM's accesses for it (instruction emulation, page walks, hypercall
 *    buffers: the CPU and the kvm layer use `vm.mem` directly), are not
 *    affected.
 * 2. The upstream successor (§4.2): frames with the PRIVATE memory attribute
 *    live in guest_memfd, which host userspace never maps; here the guest
 *    cannot reach them either (memory-fault exits, memory-attributes.ts).
 *
 * hostDenied() is the host's view of both: the VMM's device models reach
 * guest memory only through src/vmm/guest-memory-access.ts, which refuses
 * such frames with ProtectedMemoryError (the SIGBUS a host process gets) and
 * copies nothing; pinGuestMemory() is get_user_pages, which fails with
 * EFAULT on them unless the caller is KVM itself (FOLL_KVM), §4.1.
 *
 * Which transition zeroes which pages ("Freed protected pages are zeroed
 * before return to the host", §4.1; issue 6: "pages given back to the host
 * are zeroed"; "after unshare it fails again and the page content is gone"):
 *  - ENABLE and UNSHARE take pages away from the host. The guest keeps
 *    using what is in them (its kernel; a buffer it stops sharing), so their
 *    content stays: zeroing would corrupt the guest, and the host already
 *    saw a shared page's content or never saw a private one.
 *  - SHARE exposes pages to the host on purpose (a bounce buffer, a
 *    steal-time page). The page stays guest memory; nothing is "returned".
 *  - "Freed" is a page leaving the guest for good, its memory going back to
 *    the host. Here that happens when a memslot is deleted (and no other Vm
 *    over the same memory still has the frame as RAM): the bytes are plain
 *    host memory again, so the protected ones are zeroed and unprotected
 *    first; shared ones keep their content (the host could read them anyway).
 *  So after UNSHARE the content is gone *for the host*: the accessor
 *  refuses, nothing is copied, and the only way the host ever gets the page
 *  back is zeroed. The guest still sees its data. (The RFC's other rule,
 *  "read faults never map the shared zero page", has no analogue: untouched
 *  memory reads as zero here without any page the host could share.)
 *
 * Not reachable in this model, so never returned: -ENOMEM (a hole in the
 * host mapping) and -EINVAL for a mapping starting above the range (slots
 * are identity-mapped onto one backing with no holes, memslots.ts), -EINTR
 * (no mm lock to wait for), and the RFC's EAGAIN for atomic maps.
 */
import { PAGE_SIZE } from '../memory/phys-memory.js';
import { KvmError } from './errors.js';
import { GfnRangeMap, type GfnRange } from './gfn-range-map.js';
import { KVM_EINVAL } from './kvm-hypercall.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from './memory-attributes.js';
import type { GuestMemory, Memslot, Memslots, UserMemoryRegion } from './memslots.js';
import type { Vm } from './vm.js';

/** Above this GFN no GPA is a safe integer, so no memslot can hold it. */
const MAX_GFN = 1n << 40n;

/** A host access to a page the guest has not shared: the SIGBUS a host process gets (§4.1). Nothing was copied. */
export class ProtectedMemoryError extends Error {
  override name = 'ProtectedMemoryError';
  constructor(
    /** Base of the first page that refused the access. */
    readonly gpa: number,
    readonly access: 'read' | 'write',
    why: string,
  ) {
    super(`host ${access} of guest page 0x${gpa.toString(16)} refused: the page is ${why}; nothing was copied`);
  }
}

export class ProtectedMemory {
  /** kvm->mem_protected: set by ENABLE, never cleared. */
  enabled = false;
  /** Frames whose host mapping is protected (value 1), as ranges. */
  private readonly frames = new GfnRangeMap();
  /** Host warnings (the RFC's WARN_ON in the kernel log). */
  readonly warnings: string[] = [];

  constructor(private readonly memslots: Memslots, private readonly mem: GuestMemory) {}

  /** Whether the host is denied frame `gfn` (protected and not shared). */
  isProtected(gfn: number): boolean { return this.frames.get(gfn) !== 0; }

  /** The protected ranges, in GFNs (tests and tools). */
  ranges(): GfnRange[] { return this.frames.ranges(); }

  /** KVM_HC_ENABLE_MEM_PROTECTED: mem_protected first, then every memslot; idempotent. Returns 0. */
  enable(): number {
    this.enabled = true;
    for (const s of this.memslots.list()) this.frames.set(s.guestPhysAddr / PAGE_SIZE, (s.guestPhysAddr + s.memorySize) / PAGE_SIZE, 1);
    return 0;
  }

  /** KVM_HC_MEM_SHARE: the host may touch [gfn, gfn + npages). */
  share(gfn: bigint, npages: bigint): number { return this.change(gfn, npages, false); }
  /** KVM_HC_MEM_UNSHARE: protected again. */
  unshare(gfn: bigint, npages: bigint): number { return this.change(gfn, npages, true); }

  /**
   * kvm_protect_memory: 0 pages ⇒ 0; a GFN in no memslot of this VM ⇒ 0,
   * nothing done; a range running past the end of the GFN's memslot (even
   * into an adjacent slot) ⇒ a warning and -EINVAL, nothing done.
   */
  private change(gfn: bigint, npages: bigint, protect: boolean): number {
    if (npages === 0n) return 0;
    const slot = gfn < MAX_GFN ? this.memslots.find(Number(gfn) * PAGE_SIZE) : undefined;
    if (slot === undefined) return 0;
    const first = Number(gfn);
    const slotEnd = (slot.guestPhysAddr + slot.memorySize) / PAGE_SIZE;
    if (npages > BigInt(slotEnd - first)) {
      this.warnings.push(`MEM_${protect ? 'UNSHARE' : 'SHARE'} of GFN 0x${gfn.toString(16)} + 0x${npages.toString(16)} pages runs past the end of slot ${slot.id} (GFN 0x${slotEnd.toString(16)})`);
      return -KVM_EINVAL;
    }
    this.frames.set(first, first + Number(npages), protect ? 1 : 0);
    return 0;
  }

  /**
   * KVM_SET_USER_MEMORY_REGION with protection: a slot created while
   * mem_protected is set is protected at once (the RFC's
   * __kvm_set_memory_region hook); a deleted slot's protected frames are
   * freed, i.e. zeroed and unprotected (see the head comment).
   */
  setMemoryRegion(region: UserMemoryRegion): void {
    const id = typeof region === 'object' && region !== null && Number.isInteger(region.slot) ? region.slot & 0xffff : -1;
    const before = this.slot(id);
    this.memslots.set(region); // throws, changing nothing, for a bad region
    const after = this.slot(id);
    if (before !== undefined && after === undefined) this.release(before);
    else if (before === undefined && after !== undefined && this.enabled) {
      this.frames.set(after.guestPhysAddr / PAGE_SIZE, (after.guestPhysAddr + after.memorySize) / PAGE_SIZE, 1);
    }
  }

  private slot(id: number): Memslot | undefined {
    return id < 0 ? undefined : this.memslots.list().find((s) => s.id === id);
  }

  /** Zeroes the protected frames of a deleted slot that no Vm has as RAM any more, then unprotects the slot's frames. */
  private release(s: Memslot): void {
    const lo = s.guestPhysAddr / PAGE_SIZE, hi = (s.guestPhysAddr + s.memorySize) / PAGE_SIZE;
    for (const r of this.frames.ranges()) {
      const end = Math.min(r.end, hi);
      for (let gfn = Math.max(r.start, lo); gfn < end;) {
        if (this.mem.isRam(gfn * PAGE_SIZE)) { gfn++; continue; }
        let run = gfn + 1;
        while (run < end && !this.mem.isRam(run * PAGE_SIZE)) run++;
        this.mem.fill(gfn * PAGE_SIZE, (run - gfn) * PAGE_SIZE, 0);
        gfn = run;
      }
    }
    this.frames.set(lo, hi, 0);
  }
}

/**
 * Why host userspace may not touch frame `gfn` of `vm`, or null if it may:
 * RFC-protected and not shared, or PRIVATE (guest_memfd memory is never
 * mapped into host userspace, §4.2).
 */
export function hostDenied(vm: Vm, gfn: number): string | null {
  if (vm.protectedMemory?.isProtected(gfn)) return 'protected by the guest (protected-memory RFC) and not shared with the host';
  if ((vm.memoryAttributes.get(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0) return 'private guest memory (KVM_MEMORY_ATTRIBUTE_PRIVATE)';
  return null;
}

/** A guest physical byte range. */
export interface GuestRange { readonly gpa: number; readonly length: number }

/**
 * Pages pinned by get_user_pages (pinGuestMemory). Accesses are byte ranges
 * relative to the start of the pin. A pin without the KVM flag checks its
 * pages again at every access, so a page the guest unshares after the pin
 * is refused (the RFC takes protected pages out of the host's direct map).
 */
export class PinnedGuestMemory {
  readonly gpa: number;
  readonly length: number;
  /** Pinned with FOLL_KVM: KVM's own access, allowed on protected pages. */
  readonly kvm: boolean;
  readonly #vm: Vm;
  #pinned = true;

  constructor(vm: Vm, range: GuestRange, kvm: boolean) {
    this.#vm = vm; this.gpa = range.gpa; this.length = range.length; this.kvm = kvm;
  }

  read(offset: number, length: number): Uint8Array {
    this.#check(offset, length, 'read');
    return this.#vm.mem.read(this.gpa + offset, length);
  }

  write(offset: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new KvmError('EINVAL', 'pinned guest memory takes a Uint8Array to write');
    this.#check(offset, data.length, 'write');
    this.#vm.mem.write(this.gpa + offset, data);
  }

  /** put_page: the pin ends; later accesses fail. */
  unpin(): void { this.#pinned = false; }

  #check(offset: number, length: number, access: 'read' | 'write'): void {
    if (!this.#pinned) throw new KvmError('EFAULT', `the pin of GPA 0x${this.gpa.toString(16)} has been released`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) {
      throw new KvmError('EINVAL', `${access} of ${String(length)} bytes at offset ${String(offset)} lies outside the ${this.length}-byte pin`);
    }
    if (this.kvm || length === 0) return;
    const gpa = this.gpa + offset;
    for (let gfn = Math.floor(gpa / PAGE_SIZE); gfn <= Math.floor((gpa + length - 1) / PAGE_SIZE); gfn++) {
      const why = hostDenied(this.#vm, gfn);
      if (why !== null) throw new ProtectedMemoryError(gfn * PAGE_SIZE, access, why);
    }
  }
}

/**
 * get_user_pages over `range` (§4.1): EFAULT for a page that is not RAM, and
 * for a page hostDenied() refuses unless `kvm` (FOLL_KVM, KVM pinning guest
 * memory for its own accesses) is set and the page is merely RFC-protected:
 * PRIVATE (guest_memfd) pages cannot be pinned at all. Memory attributes
 * NR/NW/NX are KVM's view of guest accesses and do not apply to pinning.
 */
export function pinGuestMemory(vm: Vm, range: GuestRange, opts: { readonly kvm: boolean }): PinnedGuestMemory {
  if (typeof range !== 'object' || range === null || typeof opts !== 'object' || opts === null) {
    throw new KvmError('EFAULT', 'pinGuestMemory takes a { gpa, length } range and { kvm } options');
  }
  const { gpa, length } = range;
  if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length <= 0) {
    throw new KvmError('EINVAL', `cannot pin ${String(length)} bytes at GPA ${String(gpa)}: need a non-negative GPA and a positive length`);
  }
  for (let gfn = Math.floor(gpa / PAGE_SIZE); gfn <= Math.floor((gpa + length - 1) / PAGE_SIZE); gfn++) {
    if (!vm.mem.isRam(gfn * PAGE_SIZE)) throw new KvmError('EFAULT', `cannot pin GPA 0x${(gfn * PAGE_SIZE).toString(16)}: it is not guest RAM`);
    const why = hostDenied(vm, gfn);
    const kvmMayPin = opts.kvm === true && (vm.memoryAttributes.get(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) === 0;
    if (why !== null && !kvmMayPin) throw new KvmError('EFAULT', `cannot pin GPA 0x${(gfn * PAGE_SIZE).toString(16)}: the page is ${why}`);
  }
  return new PinnedGuestMemory(vm, range, opts.kvm === true);
}
