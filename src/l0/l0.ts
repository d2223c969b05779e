/**
 * A model of the outer Hyper-V (L0) under which our hypervisor core runs as
 * L1, in the role that matters for kvm-api-facts §6: the CPU's second stage.
 * L1's second-level tables (AMD NPT, owned by our core) map L2 guest-physical
 * addresses to L1 physical ones; L0 caches what it derives from them and
 * drops it only as the facts say.
 *
 * The combined translations L0 keeps for an L2 context are tagged by
 * (root, ASID) — root = the nCR3 L1 runs the vCPU with:
 * - NPT-derived entries (L2 GPA page → L1 physical page) live in `tlb`
 *   (l0-tlb.ts), partition-wide, across context switches;
 * - GVA-derived entries (L2 linear → L1 physical) are the CPU's own TLB and
 *   fast caches of the vCPU running in that context (src/x86): they belong to
 *   one context at a time, so a vCPU entering another (root, ASID) drops them
 *   (dropping is always allowed; keeping entries of another tag is not).
 *
 * Flushes (every one is a trace event, see `onEvent`):
 * - ASID flush (the VMCB TLB control L1 sets, L0Vp.flushAsid): the vCPU's
 *   GVA-derived entries go; the NPT-derived entries of that ASID go too,
 *   unless the enlightened TLB is active (CPUID 0x4000000A EAX bit 22 and the
 *   vCPU's EnlightenedNptTlb enlightenment, §7.1-§7.2), when they stay.
 * - HvCallFlushGuestPhysicalAddressSpace / List (hypercalls.ts): the root's
 *   NPT-derived entries (all, or those in the ranges) on every VP, and the
 *   GVA-derived entries of every vCPU running on that root (all of them for
 *   a List call: the CPU's TLB does not know which GPAs its entries came from,
 *   and flushing more is allowed).
 */
import type { PhysMemory } from '../memory/phys-memory.js';
import type { Cpu } from '../x86/cpu.js';
import type { SecondStage } from '../x86/mmu.js';
import { HV_PAGE_SIZE, HvCall, HvNestedFeature, HvStatus, HvSvmEnlightenment } from '../spec/tlfs.js';
import { L0Tlb } from './l0-tlb.js';
import { L1Memory, type TableRam } from './l1-memory.js';
import { walkNpt } from './npt.js';
import { serveL0Hypercall, type L0CallRecord } from './hypercalls.js';
import type { GpaPageRange } from './gpa-range.js';

export interface L0Features {
  /** CPUID 0x4000000A EAX bit 22, HV_X64_NESTED_ENLIGHTENED_TLB (AMD); implies the two flush hypercalls. */
  readonly enlightenedTlb: boolean;
  /** Bit 18, HV_X64_NESTED_GUEST_MAPPING_FLUSH: the two flush hypercalls (Intel). */
  readonly guestMappingFlush: boolean;
}

export type L0EventArgs = Record<string, string | number | boolean>;

export interface L0Options {
  /** L1 RAM the CPUs address, at L1 physical address 0 (the Vm's memory). */
  readonly ram: PhysMemory;
  /** L1 RAM above every CPU address that only table walks read (l1-memory.ts). */
  readonly tables?: TableRam;
  /** Default: both features. */
  readonly features?: Partial<L0Features>;
  /** Receives every L0 flush as a trace event: name, VP index, arguments. */
  readonly onEvent?: (name: string, vp: number, args: L0EventArgs) => void;
}

/** The records kept in L0Hypervisor.calls; later calls are only counted. */
const MAX_CALL_RECORDS = 100_000;

export class L0Hypervisor {
  readonly l1: L1Memory;
  readonly tlb = new L0Tlb();
  /** CPUID 0x4000000A EAX as L0 reports it to L1. */
  readonly nestedFeatures: number;
  readonly vps: L0Vp[] = [];
  /** Every hypercall L1 made, in order (the first MAX_CALL_RECORDS; callCount counts all). */
  readonly calls: L0CallRecord[] = [];
  callCount = 0;
  private readonly failures: { code: number | undefined; as: number | undefined; status: number; left: number }[] = [];
  private readonly onEvent: L0Options['onEvent'];

  constructor(opts: L0Options) {
    this.l1 = new L1Memory(opts.ram, opts.tables ?? null);
    const f = opts.features ?? {};
    this.nestedFeatures = (f.enlightenedTlb !== false ? HvNestedFeature.EnlightenedTlb : 0) |
      (f.guestMappingFlush !== false ? HvNestedFeature.GuestMappingFlush : 0);
    this.onEvent = opts.onEvent;
  }

  /** Makes `cpu` run L2 contexts of VP `index` through this L0 (its second stage). */
  attach(cpu: Cpu, index: number): L0Vp {
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`VP index ${String(index)} is not a non-negative integer`);
    if (this.vps.some((p) => p.index === index || p.cpu === cpu)) throw new RangeError(`VP ${index} or its CPU is already attached`);
    const vp = new L0Vp(this, cpu, index);
    this.vps.push(vp);
    cpu.setSecondStage(vp);
    return vp;
  }

  /**
   * A hypercall from L1 on VP `vp`: the control word (§1.1) and the input
   * page's bytes (the two fast-call registers for a fast call). Returns the
   * result value (§1.2).
   */
  hypercall(vp: number, control: bigint, input: Uint8Array): bigint {
    return serveL0Hypercall(this, vp, control, input);
  }

  /**
   * Makes the next `count` (default 1) well-formed calls of `code` on
   * `addressSpace` (any served code, any address space when absent) fail
   * with `status` before they do anything.
   */
  failNext(opts: { code?: number; addressSpace?: number; status: number; count?: number }): void {
    const { code, addressSpace, status, count = 1 } = opts;
    if (code !== undefined && code !== HvCall.FlushGuestPhysicalAddressSpace && code !== HvCall.FlushGuestPhysicalAddressList) {
      throw new RangeError(`L0 serves only 0xaf and 0xb0, not ${String(code)}`);
    }
    if (!Number.isInteger(status) || status <= 0 || status > 0xffff) throw new RangeError(`a failure status is 1..0xffff, not ${String(status)}`);
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`the failure count must be a positive integer, not ${String(count)}`);
    if (addressSpace !== undefined && !(Number.isSafeInteger(addressSpace) && addressSpace >= 0)) {
      throw new RangeError(`address space ${String(addressSpace)} is not a non-negative integer`);
    }
    this.failures.push({ code, as: addressSpace, status, left: count });
  }

  /** hypercalls.ts: the injected status for a call of `code` on `as`, or SUCCESS. */
  takeInjectedFailure(code: number, as: number): number {
    const f = this.failures.find((x) => (x.code === undefined || x.code === code) && (x.as === undefined || x.as === as));
    if (f === undefined) return HvStatus.SUCCESS;
    if (--f.left === 0) this.failures.splice(this.failures.indexOf(f), 1);
    return f.status;
  }

  /** hypercalls.ts: notes a served call and traces it. */
  record(r: L0CallRecord): void {
    this.callCount++;
    if (this.calls.length < MAX_CALL_RECORDS) this.calls.push(r);
    const name = r.code === HvCall.FlushGuestPhysicalAddressList ? 'hv_l0_flush_guest_physical_address_list'
      : r.code === HvCall.FlushGuestPhysicalAddressSpace ? 'hv_l0_flush_guest_physical_address_space' : 'hv_l0_hypercall';
    const args: L0EventArgs = { code: r.code.toString(16), as: r.addressSpace.toString(16), status: r.status.toString(16), dropped: r.dropped };
    if (r.code === HvCall.FlushGuestPhysicalAddressList) args.reps = r.reps;
    this.emit(name, r.vp, args);
  }

  /** 0xAF: everything derived from `root`, on every VP. Returns the NPT-derived entries removed. */
  flushAddressSpace(root: number): number {
    this.dropCombined(root);
    return this.tlb.flushRoot(root);
  }

  /** 0xB0: the pages of `ranges` derived from `root`, on every VP. Returns the NPT-derived entries removed. */
  flushAddressList(root: number, ranges: readonly GpaPageRange[]): number {
    this.dropCombined(root);
    let n = 0;
    for (const r of ranges) n += this.tlb.flushRootRange(root, r.gfn, r.pages);
    return n;
  }

  emit(name: string, vp: number, args: L0EventArgs): void { this.onEvent?.(name, vp, args); }

  private dropCombined(root: number): void {
    for (const p of this.vps) if (p.root === root) p.cpu.flushTlb();
  }
}

/** No L2 context (L0Vp.root). */
export const NO_ROOT = -1;

/** One VP of L1 as L0 runs it: the L2 context it is in and its second stage. */
export class L0Vp implements SecondStage {
  /** nCR3 of the L2 context the VP runs in, or NO_ROOT. */
  root = NO_ROOT;
  asid = 0;
  /** The enlightened VMCB's EnlightenmentsControl (§7.2). */
  enlightenments = 0;
  private readonly scratch = new Int32Array(2);

  constructor(private readonly l0: L0Hypervisor, readonly cpu: Cpu, readonly index: number) {}

  /**
   * VMRUN with this nCR3, ASID and EnlightenmentsControl. Entering another
   * (root, ASID) drops the CPU's GVA-derived entries of the old one.
   */
  vmrun(ncr3: number, asid: number, enlightenments: number): void {
    if (!Number.isSafeInteger(ncr3) || ncr3 < 0 || ncr3 % HV_PAGE_SIZE !== 0) throw new RangeError(`nCR3 ${String(ncr3)} is not a page-aligned address`);
    if (!Number.isInteger(asid) || asid < 1 || asid > 0xffffffff) throw new RangeError(`ASID ${String(asid)} is not 1..2^32-1 (0 is the host's)`);
    if (!Number.isInteger(enlightenments) || enlightenments < 0 || enlightenments > 0xffffffff) {
      throw new RangeError(`EnlightenmentsControl ${String(enlightenments)} is not a u32`);
    }
    if (ncr3 !== this.root || asid !== this.asid) this.cpu.flushTlb();
    this.root = ncr3; this.asid = asid; this.enlightenments = enlightenments;
  }

  /** Leaves L2: no context until the next vmrun (every access through the second stage faults). */
  leave(): void {
    if (this.root !== NO_ROOT) this.cpu.flushTlb();
    this.root = NO_ROOT;
  }

  /** Whether an ASID flush keeps NPT-derived entries (§7.2: CPUID bit 22 and the VMCB bit). */
  get enlightenedTlb(): boolean {
    return (this.l0.nestedFeatures & HvNestedFeature.EnlightenedTlb) !== 0 && (this.enlightenments & HvSvmEnlightenment.EnlightenedNptTlb) !== 0;
  }

  /** TLB_CONTROL "flush this guest's ASID" for the next VMRUN (done at once here). */
  flushAsid(): void {
    this.cpu.flushTlb();
    const enlightened = this.enlightenedTlb;
    const dropped = enlightened ? 0 : this.l0.tlb.flushAsid(this.asid);
    this.l0.emit('hv_l0_flush_asid', this.index, { asid: this.asid, enlightened, dropped });
  }

  translate(gpa: number): number {
    const root = this.root;
    if (root === NO_ROOT) return -1;
    const gfn = Math.floor(gpa / HV_PAGE_SIZE);
    let frame = this.l0.tlb.lookup(root, this.asid, gfn);
    if (frame === undefined) {
      const pa = walkNpt(this.l0.l1, root, gfn * HV_PAGE_SIZE, this.scratch);
      if (pa < 0 || !this.l0.l1.cpuAddress(pa)) return -1;
      frame = pa / HV_PAGE_SIZE;
      this.l0.tlb.insert(root, this.asid, gfn, frame);
    }
    return frame * HV_PAGE_SIZE + (gpa % HV_PAGE_SIZE);
  }
}
