/**
 * One vCPU of our core running on Hyper-V: the root its MMU holds, the
 * per-vCPU tracked root (root-tracking.ts), and the three SVM flush paths
 * of kvm-api-facts §6.3 with the merged fix switchable off (OnHyperv.fix):
 *
 * | path | fix on, enlightened TLB active | otherwise |
 * |---|---|---|
 * | flush_tlb_current | 0xAF on the current root if valid (result ignored), then the ASID flush | ASID flush |
 * | flush_tlb_all | one warning per VM, the VM-wide Hyper-V remote flush (§6.2), then the ASID flush | ASID flush |
 * | flush_tlb_guest | ASID flush, no hypercall | ASID flush |
 *
 * "Enlightened TLB active": L0's CPUID 0x4000000A EAX bit 22 and the
 * EnlightenedNptTlb bit in this vCPU's enlightened VMCB (§7.2). Before the
 * fix all three paths were the ASID flush.
 */
import type { L0Vp } from '../../l0/l0.js';
import type { Vcpu } from '../vcpu.js';
import { KvmError } from '../errors.js';
import { flushGuestMapping } from './nested-flush.js';
import type { TrackedVcpu } from './root-tracking.js';
import { INVALID_PAGE } from './tdp-mmu.js';
import type { OnHyperv } from './on-hyperv.js';

export class OnHypervVcpu implements TrackedVcpu {
  /** vcpu->arch.hv_root_tdp (root-tracking.ts): set by root loads while the Hyper-V remote flush is installed. */
  hvRootTdp = INVALID_PAGE;
  /** The root the vCPU's MMU holds (mmu->root.hpa, the nCR3 it runs with), or INVALID_PAGE. */
  root = INVALID_PAGE;
  /** The vCPU's ASID: its index + 1 (ASID 0 is the host's). */
  readonly asid: number;

  constructor(readonly host: OnHyperv, readonly vcpu: Vcpu, readonly l0vp: L0Vp, readonly enlightenments: number) {
    this.asid = vcpu.id + 1;
  }

  /** svm_hv_is_enlightened_tlb_enabled. */
  get enlightenedTlbActive(): boolean { return this.l0vp.enlightenedTlb; }

  /**
   * kvm_mmu_load: takes `root` (default: the VM's current root, OnHyperv.vcpuRoot),
   * loads it (VMCB nCR3, hv_track_root_tdp when the remote flush hook is
   * installed), then flush_tlb_current, since the new root's history is unknown.
   */
  mmuLoad(root?: number): void {
    const r = root ?? this.host.vcpuRoot();
    if (!this.host.tdp.isRoot(r)) throw new KvmError('EINVAL', `0x${r.toString(16)} is not a live root`);
    this.root = r;
    this.l0vp.vmrun(r, this.asid, this.enlightenments);
    if (this.host.remoteFlushHook) this.host.tracking.track(this, r);
    this.flushTlbCurrent();
  }

  /** kvm_mmu_unload: drops the root (the tracked value stays, as in KVM); the vCPU has no L2 context until the next load. */
  mmuUnload(): void {
    this.root = INVALID_PAGE;
    this.l0vp.leave();
  }

  flushTlbCurrent(): void {
    if (this.host.fix && this.enlightenedTlbActive && this.root !== INVALID_PAGE) flushGuestMapping(this.host, this.vcpu.id, this.root);
    this.l0vp.flushAsid();
  }

  flushTlbAll(): void {
    if (this.host.fix && this.enlightenedTlbActive) {
      this.host.warnOnce('svm_flush_tlb_all reached with the enlightened TLB on: a bug or an earlier failed Hyper-V flush', this.vcpu.id);
      this.host.hvFlushRemoteTlbs();
    }
    this.l0vp.flushAsid();
  }

  flushTlbGuest(): void { this.l0vp.flushAsid(); }
}
