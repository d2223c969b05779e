/**
 * Common-root tracking of KVM on Hyper-V (upstream arch/x86/kvm/kvm_onhyperv.c),
 * exactly as kvm-api-facts §6.2 tabulates it: a VM-wide root that is valid
 * only while all vCPUs are known to share it, per-vCPU roots, and the remote
 * flush that uses the shared root or walks the vCPUs.
 */
import { INVALID_PAGE } from './tdp-mmu.js';

/** A vCPU as the tracking sees it: vcpu->arch.hv_root_tdp. */
export interface TrackedVcpu {
  hvRootTdp: number;
}

export class HvRootTracking {
  /** kvm_arch->hv_root_tdp: INVALID_PAGE = "not known to be shared by all vCPUs". */
  vmRoot = INVALID_PAGE;

  /** hv_track_root_tdp: the vCPU loaded `root`; a load never makes the VM value valid. */
  track(v: TrackedVcpu, root: number): void {
    v.hvRootTdp = root;
    if (root !== this.vmRoot) this.vmRoot = INVALID_PAGE;
  }

  /**
   * __hv_flush_remote_tlbs_range: `flushRoot` on the shared root, or on the
   * vCPUs' roots in index order (skipping invalid ones and the root that
   * became the VM value; only the first root is deduplicated). After an
   * error no further flush is made, and the walk stops once more than one
   * root was seen. Returns 0 or the first error; 0 when there is no root.
   */
  flushRemote(vcpus: readonly TrackedVcpu[], flushRoot: (root: number) => number): number {
    if (this.vmRoot !== INVALID_PAGE) return flushRoot(this.vmRoot);
    let ret = 0, unique = 0;
    for (const v of vcpus) {
      const root = v.hvRootTdp;
      if (root === INVALID_PAGE || root === this.vmRoot) continue;
      if (++unique === 1) this.vmRoot = root;
      if (ret === 0) ret = flushRoot(root);
      if (ret !== 0 && unique > 1) break;
    }
    if (unique > 1) this.vmRoot = INVALID_PAGE;
    return ret;
  }
}
