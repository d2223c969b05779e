/**
 * The in-kernel Hyper-V state of one partition (one Vm: with VSM each VTL's
 * Vm has its own, fact sheet §3.2): the enabled features, the partition-wide
 * synthetic MSRs (GUEST_OS_ID, HYPERCALL and its page, REFERENCE_TSC and its
 * page, crash and reenlightenment MSRs), the VPs, and the connection IDs that
 * HvPostMessage and HvSignalEvent reach.
 *
 * Integration (the owner, kvm's Vm/Vcpu): create one HvPartition per Vm and
 * one HvVp per Vcpu (createVp), answer MSRs 0x40000000-0x400001FF through the
 * VP, AND pagePermissions() into the CPU's page permissions and turn a write
 * fault on the hypercall page into #GP (isOverlayWrite), and call
 * cpu.permissionsChanged() on every vCPU when onOverlayChange fires.
 */
import type { PhysMemory } from '../../memory/phys-memory.js';
import { ACCESS_ALL, ACCESS_READ, ACCESS_WRITE } from '../../x86/host.js';
import {
  HV_CRASH_CTL_NOTIFY,
  HV_HYPERCALL_MSR_ENABLE,
  HV_HYPERCALL_MSR_LOCKED,
  HV_HYPERCALL_MSR_PFN_SHIFT,
  HV_MESSAGE_PAYLOAD_MAX,
  HV_MESSAGE_TYPE_HYPERVISOR_BIT,
  HV_PAGE_SHIFT,
  HV_REFERENCE_TSC_ENABLE,
  HV_TSC_PAGE_INVALID_SEQUENCE,
  HvStatus,
} from '../../spec/tlfs.js';
import { KvmError } from '../errors.js';
import type { HvTrace, HvVcpuContext } from './context.js';
import { HvConnections } from './connections.js';
import type { HvFeatures } from './features.js';
import { hypercallPageBytes, RamOverlay, type CpuVendor } from './hypercall-page.js';
import { nextSequence, referenceTime, tscPageScale, writeTscPage } from './reference-time.js';
import { DEFAULT_SINT_QUEUE_LIMIT } from './synic.js';
import { HvVp } from './vp.js';

/** The guest clock as the partition needs it (GuestClock has this shape). */
export interface HvClock {
  readonly tscHz: number;
  /** The TSC value at a guest time, for a vCPU that never wrote IA32_TSC. */
  tscAt(ns: number): number;
}

export interface CrashReport {
  /** CRASH_P0..P4. */
  readonly params: readonly bigint[];
  /** The CRASH_CTL value written. */
  readonly ctl: bigint;
}

export interface HvPartitionOptions {
  readonly features: HvFeatures;
  readonly mem: PhysMemory;
  readonly clock: HvClock;
  /** VMCALL (Intel) or VMMCALL (AMD) in the hypercall page; default Intel, like our CPUID. */
  readonly vendor?: CpuVendor;
  /** The guest wrote 1 to HV_X64_MSR_RESET (hv-reset): reset the VM. */
  readonly onReset?: () => void;
  /** The guest wrote CRASH_CTL with the notify bit (hv-crash). */
  readonly onCrash?: (report: CrashReport) => void;
  /** The hypercall page appeared, moved or went away: cached page permissions are stale. */
  readonly onOverlayChange?: () => void;
  readonly trace?: HvTrace;
  /** Messages a SINT queues beyond its slot (HvPostMessage → INSUFFICIENT_BUFFERS beyond). */
  readonly sintQueueLimit?: number;
  /**
   * Whether the hypervisor may make an access (ACCESS_* bits) to a guest page
   * now (Vm.guestAccessAllowed: memory attributes, kvm-api-facts §2.7). Pages
   * it may not read and write are left alone: the TSC page is not updated,
   * a SIM/SIEF page counts as disabled, ApicAssist is not cleared.
   */
  readonly guestAccessAllowed?: (gpa: number, access: number) => boolean;
}

export class HvPartition {
  readonly features: HvFeatures;
  readonly mem: PhysMemory;
  readonly clock: HvClock;
  readonly vendor: CpuVendor;
  readonly connections = new HvConnections();
  readonly trace?: HvTrace;
  readonly sintQueueLimit: number;
  /** Whether we may read and write guest page `gpa` now (see HvPartitionOptions.guestAccessAllowed). */
  readonly pageAccessible: (gpa: number) => boolean;
  private readonly vps = new Map<number, HvVp>();
  private readonly opts: HvPartitionOptions;

  // partition-wide MSRs
  guestOsId = 0n;
  hypercall = 0n;
  referenceTsc = 0n;
  readonly crashParams: bigint[] = [0n, 0n, 0n, 0n, 0n];
  reenlightenmentControl = 0n;
  tscEmulationControl = 0n;
  tscEmulationStatus = 0n;
  /** Sequence last written to the reference TSC page. */
  tscPageSequence = 0;

  private readonly hypercallOverlay: RamOverlay;

  constructor(opts: HvPartitionOptions) {
    this.opts = opts;
    this.features = opts.features;
    this.mem = opts.mem;
    this.clock = opts.clock;
    this.vendor = opts.vendor ?? 'intel';
    this.trace = opts.trace;
    this.sintQueueLimit = opts.sintQueueLimit ?? DEFAULT_SINT_QUEUE_LIMIT;
    this.hypercallOverlay = new RamOverlay(opts.mem);
    const allowed = opts.guestAccessAllowed;
    this.pageAccessible = allowed === undefined ? () => true : (gpa) => allowed(gpa, ACCESS_READ | ACCESS_WRITE);
  }

  /** Creates the Hyper-V state of a VP; its index is what VP_INDEX reads (KVM: the vCPU index). */
  createVp(vpIndex: number, ctx: HvVcpuContext): HvVp {
    if (!Number.isInteger(vpIndex) || vpIndex < 0 || vpIndex >= 0xffff_fffe) {
      throw new KvmError('EINVAL', `VP index ${vpIndex} is out of range`);
    }
    if (this.vps.has(vpIndex)) throw new KvmError('EEXIST', `VP ${vpIndex} already exists`);
    const vp = new HvVp(this, vpIndex, ctx);
    this.vps.set(vpIndex, vp);
    return vp;
  }

  vp(vpIndex: number): HvVp | undefined { return this.vps.get(vpIndex); }
  get vpCount(): number { return this.vps.size; }

  // ---------------------------------------------------------------- GUEST_OS_ID / HYPERCALL (§1.4)

  writeGuestOsId(value: bigint): void {
    this.guestOsId = value;
    // "If the guest OS identity is cleared to zero after the hypercall page has been enabled, it will become disabled."
    if (value === 0n && (this.hypercall & HV_HYPERCALL_MSR_ENABLE) !== 0n) {
      this.hypercall &= ~HV_HYPERCALL_MSR_ENABLE;
      this.updateHypercallPage();
    }
  }

  /** False = #GP (the page would not be guest RAM). Writes to a locked MSR are ignored. */
  writeHypercall(value: bigint): boolean {
    if ((this.hypercall & HV_HYPERCALL_MSR_LOCKED) !== 0n) return true;
    let v = value;
    // "If no guest OS identity has been specified ... the enable bit will remain zero."
    if (this.guestOsId === 0n) v &= ~HV_HYPERCALL_MSR_ENABLE;
    if ((v & HV_HYPERCALL_MSR_ENABLE) !== 0n && !this.hypercallOverlay.canMap(Number(v >> HV_HYPERCALL_MSR_PFN_SHIFT))) {
      return false;
    }
    this.hypercall = v;
    this.updateHypercallPage();
    return true;
  }

  /** Page frame of the enabled hypercall page, or -1. */
  get hypercallPagePfn(): number { return this.hypercallOverlay.pfn; }

  private updateHypercallPage(): void {
    const enabled = (this.hypercall & HV_HYPERCALL_MSR_ENABLE) !== 0n;
    const pfn = Number(this.hypercall >> HV_HYPERCALL_MSR_PFN_SHIFT);
    if (enabled && this.hypercallOverlay.pfn === pfn) return;
    const had = this.hypercallOverlay.pfn >= 0;
    if (enabled) this.hypercallOverlay.map(pfn, hypercallPageBytes(this.vendor, this.features.has('AccessVsm')));
    else this.hypercallOverlay.unmap();
    if (had || enabled) this.opts.onOverlayChange?.();
  }

  /** Guest access rights to a page: the hypercall page is read+execute (user execute too) only (§1.4). */
  pagePermissions(pfn: number): number {
    return pfn === this.hypercallOverlay.pfn ? ACCESS_ALL & ~ACCESS_WRITE : ACCESS_ALL;
  }

  /** Whether a denied access was a write to the hypercall page, which TLFS makes #GP. */
  isOverlayWrite(gpa: number, access: number): boolean {
    return (access & ACCESS_WRITE) !== 0 && this.hypercallOverlay.pfn >= 0
      && Math.floor(gpa / 2 ** HV_PAGE_SHIFT) === this.hypercallOverlay.pfn;
  }

  // ---------------------------------------------------------------- reference time (§6.5)

  /**
   * REFERENCE_TSC: enabling writes the page (sequence, scale, offset 0). A
   * vCPU whose TSC was moved by an IA32_TSC write does not match the page, so
   * then the page says "invalid" (sequence 0) and guests use TIME_REF_COUNT.
   * False = #GP (the page would not be guest RAM).
   */
  writeReferenceTsc(value: bigint, ctx: HvVcpuContext): boolean {
    if ((value & HV_REFERENCE_TSC_ENABLE) !== 0n) {
      const gpa = Number(value >> HV_HYPERCALL_MSR_PFN_SHIFT) * 2 ** HV_PAGE_SHIFT;
      if (!Number.isSafeInteger(gpa) || !this.mem.isRam(gpa) || !this.mem.isRam(gpa + 4095)) return false;
      const now = ctx.nowNs();
      const scale = tscPageScale(this.clock.tscHz);
      const tscMoved = ctx.readTsc() !== this.clock.tscAt(now);
      this.tscPageSequence = scale === undefined || tscMoved ? HV_TSC_PAGE_INVALID_SEQUENCE : nextSequence(this.tscPageSequence);
      if (this.pageAccessible(gpa)) writeTscPage(this.mem, gpa, { sequence: this.tscPageSequence, scale: scale ?? 0n, offset: 0n });
    }
    this.referenceTsc = value;
    return true;
  }

  /**
   * A vCPU's TSC was written (IA32_TSC): the enabled reference TSC page no
   * longer matches it, so it is marked invalid (sequence 0) and guests fall back
   * to TIME_REF_COUNT (§6.5; KVM does the same).
   */
  tscWritten(): void {
    if ((this.referenceTsc & HV_REFERENCE_TSC_ENABLE) === 0n) return;
    const gpa = Number(this.referenceTsc >> HV_HYPERCALL_MSR_PFN_SHIFT) * 2 ** HV_PAGE_SHIFT;
    this.tscPageSequence = HV_TSC_PAGE_INVALID_SEQUENCE;
    if (this.pageAccessible(gpa)) writeTscPage(this.mem, gpa, { sequence: HV_TSC_PAGE_INVALID_SEQUENCE, scale: 0n, offset: 0n });
  }

  referenceTime(ns: number): bigint { return referenceTime(ns); }

  // ---------------------------------------------------------------- reset / crash

  writeReset(value: bigint): void {
    if (value === 1n) this.opts.onReset?.(); // KVM: exactly 1 requests the reset
  }

  /** CRASH_CTL reads as the capability (notify supported); a write with notify reports the crash. */
  get crashCtl(): bigint { return HV_CRASH_CTL_NOTIFY; }
  writeCrashCtl(value: bigint): void {
    if ((value & HV_CRASH_CTL_NOTIFY) !== 0n) this.opts.onCrash?.({ params: [...this.crashParams], ctl: value });
  }

  /** System reset: the partition-wide MSRs and every VP's synthetic state back to their initial values. */
  reset(): void {
    this.guestOsId = 0n;
    this.hypercall = 0n;
    this.updateHypercallPage();
    this.referenceTsc = 0n;
    this.crashParams.fill(0n);
    this.reenlightenmentControl = 0n;
    this.tscEmulationControl = 0n;
    this.tscEmulationStatus = 0n;
    for (const vp of this.vps.values()) vp.reset();
  }

  // ---------------------------------------------------------------- HvPostMessage / HvSignalEvent targets

  /**
   * Delivery for HvPostMessage (§2.9) once the handler has read and checked
   * its input block: routes a message to the registered connection's SINT.
   */
  postMessage(connId: number, messageType: number, payload: Uint8Array): number {
    const conn = this.connections.messageConnection(connId);
    if (conn === undefined) return HvStatus.INVALID_CONNECTION_ID;
    if (!Number.isInteger(messageType) || messageType <= 0 || messageType > 0xffffffff
      || (messageType & HV_MESSAGE_TYPE_HYPERVISOR_BIT) !== 0 || payload.length > HV_MESSAGE_PAYLOAD_MAX) {
      return HvStatus.INVALID_PARAMETER;
    }
    const vp = this.vps.get(conn.vpIndex);
    if (vp === undefined) return HvStatus.INVALID_VP_INDEX;
    return vp.synic.postMessage(conn.sint, { type: messageType, payload: payload.slice() });
  }

  /** Delivery for HvSignalEvent (§2.10): sets flag baseFlag + flagNumber of the connection's SINT. */
  signalEvent(connId: number, flagNumber: number): number {
    const conn = this.connections.eventConnection(connId);
    if (conn === undefined) return HvStatus.INVALID_CONNECTION_ID;
    if (!Number.isInteger(flagNumber) || flagNumber < 0 || flagNumber >= conn.flagCount) return HvStatus.INVALID_PARAMETER;
    const vp = this.vps.get(conn.vpIndex);
    if (vp === undefined) return HvStatus.INVALID_VP_INDEX;
    return vp.synic.signalEvent(conn.sint, conn.baseFlag + flagNumber);
  }
}
