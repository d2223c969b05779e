/**
 * A virtual machine as KVM presents it: guest memory, vCPUs, and the in-kernel
 * interrupt routing between their local APICs (the IPI bus).
 */
import { PAGE_SIZE } from '../memory/phys-memory.js';
import { GuestClock } from './clock.js';
import { KvmError } from './errors.js';
import { TraceLog } from './trace.js';
import { IoEventFds, type KvmIoeventfd } from './ioeventfd.js';
import { LocalApic, type ApicBus } from './lapic.js';
import { Vcpu } from './vcpu.js';
import type { HvFeatures } from './hyperv/features.js';
import { HvPartition } from './hyperv/partition.js';
import { GuestMemory, Memslots, type UserMemoryRegion } from './memslots.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, MemoryAttributes, type MemoryAttributesRequest } from './memory-attributes.js';
import { ProtectedMemory } from './protected-memory.js';
import { KVM_CAP_EXIT_HYPERCALL, KVM_EXIT_HYPERCALL_VALID_MASK } from './kvm-hypercall.js';

export interface VmOptions {
  /** Guest RAM in bytes (sparse: costs only what the guest touches). */
  memorySize: number;
  clock?: GuestClock;
  /** An existing memory to share: another Vm's `mem` (every VTL's Vm runs over the same guest memory). */
  memory?: GuestMemory;
  /** Collect trace events (see trace.ts). */
  trace?: boolean;
  /** The VM type has private memory, so the PRIVATE memory attribute is accepted (default false; kvm-api-facts.md §2.1). */
  privateMemory?: boolean;
  /**
   * Create slot 0 over the whole memory (default true), so a Vm is usable as
   * soon as it exists; false starts with no RAM at all, as a new KVM VM does.
   */
  defaultMemslot?: boolean;
  /** Hyper-V enlightenments (resolveHvFeatures); none when absent. */
  hyperv?: HvFeatures;
  /**
   * The protmem RFC ABI (kvm-api-facts §4.1, protected-memory.ts): hypercalls
   * 12/13/14 mean ENABLE_MEM_PROTECTED/MEM_SHARE/MEM_UNSHARE. Off by default:
   * the numbers clash with upstream's (§4.3). EINVAL with Hyper-V, whose
   * CPUID leaves take the 0x40000000 range this ABI is advertised in.
   */
  protectedMemoryRfc?: boolean;
}

export class Vm implements ApicBus {
  readonly mem: GuestMemory;
  /** Memory regions: what is RAM (memslots.ts). */
  readonly memslots: Memslots;
  /** Memory attributes: RWX restrictions and PRIVATE per frame (memory-attributes.ts). */
  readonly memoryAttributes: MemoryAttributes;
  readonly clock: GuestClock;
  readonly vcpus: Vcpu[] = [];
  /** Trace events, when tracing was asked for at creation. */
  readonly trace: TraceLog | null;
  /** ioeventfd registrations on the PIO and MMIO buses (ioeventfd.ts, kvm-api-facts §5). */
  readonly ioeventfds: IoEventFds;
  /** In-kernel Hyper-V partition state, when the VM has a Hyper-V interface. */
  readonly hyperv: HvPartition | null;
  /** protmem RFC state, in RFC mode only (VmOptions.protectedMemoryRfc). */
  readonly protectedMemory: ProtectedMemory | null;
  /** KVM_CAP_EXIT_HYPERCALL's mask: hypercall numbers that exit to the VMM (enableCap). */
  private exitHypercalls = 0;

  constructor(opts: VmOptions) {
    const mem = opts.memory ?? new GuestMemory(opts.memorySize);
    if (!(mem instanceof GuestMemory)) throw new KvmError('EINVAL', 'VmOptions.memory must be the memory of another Vm (its `mem`)');
    this.mem = mem;
    this.clock = opts.clock ?? new GuestClock();
    this.trace = opts.trace ? new TraceLog() : null;
    this.ioeventfds = new IoEventFds(this.trace, this.clock);
    this.hyperv = opts.hyperv?.enabled ? new HvPartition({
      features: opts.hyperv, mem, clock: this.clock,
      onOverlayChange: () => { for (const v of this.vcpus) v.cpu.permissionsChanged(); },
      guestAccessAllowed: (gpa, access) => this.guestAccessAllowed(gpa, access),
      trace: this.trace === null ? undefined : (name, args) => this.trace!.emit(name, -1, this.clock.roundStartNs, args),
    }) : null;
    this.memslots = new Memslots(mem);
    this.memslots.onRamChange = () => { for (const v of this.vcpus) v.cpu.permissionsChanged(); };
    this.memoryAttributes = new MemoryAttributes(opts.privateMemory === true);
    if (opts.protectedMemoryRfc === true && this.hyperv !== null) {
      throw new KvmError('EINVAL', 'the protected-memory RFC ABI cannot be combined with Hyper-V enlightenments: both are advertised in CPUID leaves 0x40000000-0x40000001');
    }
    this.protectedMemory = opts.protectedMemoryRfc === true ? new ProtectedMemory(this.memslots, mem) : null;
    if (opts.defaultMemslot !== false) this.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: mem.size });
  }

  // ---- memory: regions and attributes (kvm-api-facts.md §2) ----

  /** KVM_SET_USER_MEMORY_REGION (see memslots.ts for the checks and errnos). */
  setUserMemoryRegion(region: UserMemoryRegion): void {
    if (this.protectedMemory !== null) this.protectedMemory.setMemoryRegion(region); // protects or frees slots (§4.1)
    else this.memslots.set(region);
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES (§2.4 checks, see memory-attributes.ts). Each
   * vCPU drops what it derived from the old attributes before it next runs.
   */
  setMemoryAttributes(req: MemoryAttributesRequest): void {
    const ch = this.memoryAttributes.set(req);
    this.trace?.emit('kvm_vm_set_mem_attributes', -1, this.clock.roundStartNs, {
      gfn: ch.gfn.toString(16), cnt: ch.count.toString(16), attributes: ch.attributes.toString(16),
    });
  }

  /** CHECK_EXTENSION(KVM_CAP_MEMORY_ATTRIBUTES) on this VM: NR|NW|NX|XU, plus PRIVATE with private memory. */
  supportedMemoryAttributes(): number { return this.memoryAttributes.supported; }

  /**
   * Whether KVM-internal code may make an `access` (ACCESS_* bits) to `gpa`
   * on behalf of the guest (§2.7: hypercall buffers, page walks, clock
   * pages): MMIO addresses ignore attributes (§2.5).
   */
  guestAccessAllowed(gpa: number, access: number): boolean {
    if (!this.mem.isRam(gpa)) return true;
    return (this.memoryAttributes.permissions(Math.floor(gpa / PAGE_SIZE)) & access) === access;
  }

  // ---- KVM PV hypercalls (kvm-hypercall.ts, kvm-api-facts §4) ----

  /**
   * KVM_ENABLE_CAP on the VM. Only KVM_CAP_EXIT_HYPERCALL (201): `arg` is the
   * mask of hypercall numbers that exit to the VMM, of which only
   * MAP_GPA_RANGE (bit 12) is accepted (§4.2); EINVAL otherwise, and in
   * protmem RFC mode, where 12 is ENABLE_MEM_PROTECTED (§4.3).
   */
  enableCap(cap: number, arg: bigint | number = 0): void {
    if (cap !== KVM_CAP_EXIT_HYPERCALL) throw new KvmError('EINVAL', `capability ${String(cap)} cannot be enabled on a VM (only KVM_CAP_EXIT_HYPERCALL, ${KVM_CAP_EXIT_HYPERCALL})`);
    const mask = typeof arg === 'bigint' ? arg : Number.isSafeInteger(arg) ? BigInt(arg) : -1n;
    if (mask < 0n || (mask & ~BigInt(KVM_EXIT_HYPERCALL_VALID_MASK)) !== 0n) {
      throw new KvmError('EINVAL', `KVM_CAP_EXIT_HYPERCALL mask ${String(arg)} has bits other than MAP_GPA_RANGE (1 << 12)`);
    }
    if (mask !== 0n && this.protectedMemory !== null) {
      throw new KvmError('EINVAL', 'MAP_GPA_RANGE exits cannot be enabled in protected-memory RFC mode, where hypercall 12 is ENABLE_MEM_PROTECTED');
    }
    this.exitHypercalls = Number(mask);
  }

  /** KVM_CAP_EXIT_HYPERCALL's current mask. */
  get hypercallExitMask(): number { return this.exitHypercalls; }

  /**
   * Whether VMCALL reaches KVM's PV hypercall ABI: only on a VM that uses one
   * of its calls (RFC mode, private memory, or MAP_GPA_RANGE exits); other
   * VMs keep the #UD of a CPU without a hypervisor ABI (Vcpu.hypercall).
   */
  get kvmHypercallsEnabled(): boolean {
    return this.protectedMemory !== null || this.exitHypercalls !== 0 || (this.memoryAttributes.supported & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
  }

  // ---- ioeventfd (ioeventfd.ts, kvm-api-facts §5) ----

  /** KVM_IOEVENTFD: assign, or deassign with KVM_IOEVENTFD_FLAG_DEASSIGN (checks, errnos and our DATAREAD: ioeventfd.ts). */
  ioeventfd(args: KvmIoeventfd): void { this.ioeventfds.ioctl(args); }

  /** KVM_CREATE_VCPU. */
  createVcpu(id: number): Vcpu {
    if (!Number.isInteger(id) || id < 0 || id > 1023) throw new KvmError('EINVAL', `vCPU id ${id} is out of range`);
    if (this.vcpus.some((v) => v.id === id)) throw new KvmError('EEXIST', `vCPU ${id} already exists`);
    const v = new Vcpu(this, id, this.vcpus.length === 0);
    this.vcpus.push(v);
    if (this.hyperv !== null) v.enableHyperv(this.hyperv);
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
