/**
 * Our hypervisor core running as L1 on Hyper-V (kvm-api-facts §6,
 * tlfs-vsm-facts §2.7 and §7), SVM-shaped: a Vm whose vCPUs run their guest
 * (L2) through second-level tables we own (tdp-mmu.ts), under a model of the
 * outer Hyper-V (src/l0) that is the CPUs' second translation stage.
 *
 * Host API (see src/kvm/README.md): `new OnHyperv(vm, options)`, `attach(vcpu)`,
 * then per vCPU `mmuLoad()` before it runs; root management (allocRoot,
 * freeRoot, moveL2Page); the remote flushes KVM makes after changing
 * mappings (flushRemoteTlbs, flushRemoteTlbsRange, mapL2Range); `fix` on or
 * off; `l0` to inspect or fail hypercalls.
 *
 * Remote flushes (kvm_flush_remote_tlbs[_range] in kvm_main.c with the
 * Hyper-V hook of kvm_onhyperv.c, installed as SVM installs it: when L0
 * offers the enlightened TLB, CPUID 0x4000000A EAX bit 22):
 * - range: the hook's range flush (0xB0 on the shared root or on each
 *   vCPU's root, §6.2); a nonzero result falls back to the full flush;
 * - full: the hook's full flush (0xAF likewise); a nonzero result, or no
 *   hook, makes a KVM_REQ_TLB_FLUSH on every vCPU, each running its
 *   flush_tlb_all (vcpu.ts). Requests are serviced at once, in vCPU index
 *   order: no vCPU runs while the host thread flushes.
 */
import { PAGE_SIZE } from '../../memory/phys-memory.js';
import { L0Hypervisor, type L0Features } from '../../l0/l0.js';
import { HvNestedFeature, HvSvmEnlightenment } from '../../spec/tlfs.js';
import { KvmError } from '../errors.js';
import type { Vcpu } from '../vcpu.js';
import type { Vm } from '../vm.js';
import { flushGuestMapping, flushGuestMappingRange } from './nested-flush.js';
import { HvRootTracking } from './root-tracking.js';
import { DEFAULT_TABLE_PAGES, INVALID_PAGE, L2_GPA_LIMIT, NPT_TABLE_BASE, TdpMmu } from './tdp-mmu.js';
import { OnHypervVcpu } from './vcpu.js';

export interface OnHypervOptions {
  /** L0's CPUID 0x4000000A features (default: enlightened TLB and guest mapping flush). */
  readonly l0Features?: Partial<L0Features>;
  /** Set EnlightenedNptTlb in each vCPU's enlightened VMCB when L0 offers bit 22 (default true, as svm_hv_init_vmcb does). */
  readonly enlightenedNptTlb?: boolean;
  /** The merged fix of kvm-api-facts §6.3 (default true); false reproduces the 2023 stale-root bug. */
  readonly fix?: boolean;
  /** Table RAM in pages (default 1024). */
  readonly tablePages?: number;
}

export class OnHyperv {
  readonly vm: Vm;
  readonly tdp: TdpMmu;
  readonly l0: L0Hypervisor;
  readonly tracking = new HvRootTracking();
  /** hv_flush_remote_tlbs installed: L0 offers the enlightened TLB (bit 22). */
  readonly remoteFlushHook: boolean;
  /** The merged fix of §6.3; may be switched at any time. */
  fix: boolean;
  /** WARN_ON_ONCE messages given (at most one per kind). */
  readonly warnings: string[] = [];
  private readonly enlightenments: number;
  private readonly attached = new Map<Vcpu, OnHypervVcpu>();
  /** The root vCPU loads take by default (KVM reuses a valid root of the same role). */
  private current = INVALID_PAGE;

  constructor(vm: Vm, opts: OnHypervOptions = {}) {
    if (vm.mem.size > NPT_TABLE_BASE) throw new KvmError('EINVAL', `guest memory above 0x${NPT_TABLE_BASE.toString(16)} cannot be mapped: the table RAM starts there`);
    this.vm = vm;
    this.tdp = new TdpMmu(opts.tablePages ?? DEFAULT_TABLE_PAGES);
    this.l0 = new L0Hypervisor({
      ram: vm.mem, tables: { base: NPT_TABLE_BASE, mem: this.tdp.tables }, features: opts.l0Features,
      onEvent: (name, vp, args) => this.trace(name, vp, args),
    });
    const etlb = (this.l0.nestedFeatures & HvNestedFeature.EnlightenedTlb) !== 0;
    this.remoteFlushHook = etlb;
    this.enlightenments = etlb && opts.enlightenedNptTlb !== false ? HvSvmEnlightenment.EnlightenedNptTlb : 0;
    this.fix = opts.fix !== false;
  }

  /** Runs `vcpu`'s guest as L2 from now on; it needs mmuLoad() before it runs. */
  attach(vcpu: Vcpu): OnHypervVcpu {
    if (vcpu.vm !== this.vm) throw new KvmError('EINVAL', `vCPU ${vcpu.id} belongs to another Vm`);
    if (this.attached.has(vcpu)) throw new KvmError('EEXIST', `vCPU ${vcpu.id} is already attached`);
    const v = new OnHypervVcpu(this, vcpu, this.l0.attach(vcpu.cpu, vcpu.id), this.enlightenments);
    this.attached.set(vcpu, v);
    return v;
  }

  /** The attached vCPUs in vCPU index (creation) order, as kvm_for_each_vcpu walks them. */
  get vcpus(): OnHypervVcpu[] {
    const out: OnHypervVcpu[] = [];
    for (const v of this.vm.vcpus) { const a = this.attached.get(v); if (a !== undefined) out.push(a); }
    return out;
  }

  // ---- roots ----

  allocRoot(): number { return this.tdp.allocRoot(); }

  /** Frees a root no vCPU holds, without a flush (the TDP MMU's deferral, §6.3). EBUSY while a vCPU holds it. */
  freeRoot(root: number): void {
    const holder = this.vcpus.find((v) => v.root === root);
    if (holder !== undefined) throw new KvmError('EBUSY', `vCPU ${holder.vcpu.id} still runs on root 0x${root.toString(16)}`);
    this.tdp.freeRoot(root);
    if (root === this.current) this.current = INVALID_PAGE;
  }

  /** The root mmuLoad() takes by default, allocated when there is none. */
  vcpuRoot(): number {
    if (this.current === INVALID_PAGE) this.current = this.tdp.allocRoot();
    return this.current;
  }

  /**
   * The L1 page behind L2 frame `gfn` changes to `frame` (null: none), as
   * after a memslot update: every root becomes obsolete and is freed once
   * its vCPUs drop it, without a flush; each vCPU that held a root loads a
   * new one (kvm_mmu_zap_all_fast, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS,
   * kvm_mmu_load). The new root reuses the page of the last one freed.
   */
  moveL2Page(gfn: number, frame: number | null): void {
    this.tdp.setBacking(gfn, frame);
    const reload = this.vcpus.filter((v) => v.root !== INVALID_PAGE);
    for (const v of reload) v.mmuUnload();
    for (const r of this.tdp.liveRoots) this.tdp.freeRoot(r);
    this.current = INVALID_PAGE;
    for (const v of reload) v.mmuLoad();
  }

  // ---- remote flushes ----

  /**
   * The hook itself (hv_flush_remote_tlbs[_range], §6.2): a full flush, or a
   * range flush of `pages` frames from `gfn`. Returns 0 or the first error.
   */
  hvFlushRemoteTlbs(range?: { gfn: number; pages: number }): number {
    if (!this.remoteFlushHook) throw new KvmError('EINVAL', 'hv_flush_remote_tlbs is not installed: L0 does not offer the enlightened TLB');
    return this.tracking.flushRemote(this.vcpus, (root) => range === undefined
      ? flushGuestMapping(this, -1, root)
      : flushGuestMappingRange(this, -1, root, range.gfn, range.pages));
  }

  /** kvm_flush_remote_tlbs. */
  flushRemoteTlbs(): void {
    if (this.remoteFlushHook && this.hvFlushRemoteTlbs() === 0) return;
    for (const v of this.vcpus) v.flushTlbAll(); // KVM_REQ_TLB_FLUSH
  }

  /** kvm_flush_remote_tlbs_range: `pages` L2 frames from `gfn`. */
  flushRemoteTlbsRange(gfn: number, pages: number): void {
    checkRange(gfn, pages);
    if (this.remoteFlushHook && this.hvFlushRemoteTlbs({ gfn, pages }) === 0) return;
    this.flushRemoteTlbs();
  }

  /**
   * `pages` L2 frames from `gfn` map to L1 frames from `frame` (null: to
   * nothing) in every root, changed in place as an MMU-notifier invalidation
   * and the refault after it do, then kvm_flush_remote_tlbs_range.
   */
  mapL2Range(gfn: number, pages: number, frame: number | null): void {
    checkRange(gfn, pages);
    if (frame !== null && (!Number.isInteger(frame) || frame < 0 || frame + pages > NPT_TABLE_BASE / PAGE_SIZE)) {
      throw new KvmError('EINVAL', `L1 frames ${String(frame)} + ${pages} are not below the table RAM`);
    }
    for (let k = 0; k < pages; k++) this.tdp.setBacking(gfn + k, frame === null ? null : frame + k);
    for (const r of this.tdp.liveRoots) for (let k = 0; k < pages; k++) this.tdp.setPage(r, gfn + k, frame === null ? null : frame + k);
    this.flushRemoteTlbsRange(gfn, pages);
  }

  // ---- warnings and trace ----

  /** WARN_ON_ONCE: records `message` the first time only, as a trace event too. */
  warnOnce(message: string, vcpu: number): void {
    if (this.warnings.includes(message)) return;
    this.warnings.push(message);
    this.trace('kvm_warn_on_once', vcpu, { message });
  }

  /** A trace event of vCPU `vcpu` (-1: VM-wide) at its guest time. */
  trace(name: string, vcpu: number, args: Record<string, string | number | boolean>): void {
    const t = this.vm.trace;
    if (t === null) return;
    const v = vcpu < 0 ? undefined : this.vm.vcpus.find((x) => x.id === vcpu);
    t.emit(name, vcpu, v !== undefined ? v.nowNs() : this.vm.clock.roundStartNs, args);
  }
}

function checkRange(gfn: number, pages: number): void {
  if (!Number.isInteger(gfn) || !Number.isInteger(pages) || gfn < 0 || pages < 1 || gfn + pages > L2_GPA_LIMIT / PAGE_SIZE) {
    throw new KvmError('EINVAL', `L2 frames ${String(gfn)} + ${String(pages)} are not a non-empty range inside the 512 GiB L2 space`);
  }
}
