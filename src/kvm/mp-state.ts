/**
 * vCPU MP states (KVM_GET_MP_STATE / KVM_SET_MP_STATE) with KVM's numbering
 * (include/uapi/linux/kvm.h, Documentation/virt/kvm/api.rst 4.38) plus the
 * proposed KVM_MP_STATE_HV_INACTIVE_VTL (kvm-api-facts.md §3.3).
 *
 * Our CPU has four run states; they map onto the x86 MP states like this:
 *
 *   CpuRunState   get ->              <- set
 *   Running       RUNNABLE (0)        RUNNABLE
 *   Halted        HALTED (3)          HALTED
 *   WaitForSipi   INIT_RECEIVED (2)   INIT_RECEIVED, UNINITIALIZED, SIPI_RECEIVED (+ the SIPI pending)
 *   Shutdown      UNINITIALIZED (1)   (none)
 *
 * Our APs start in wait-for-SIPI and accept a SIPI without a prior INIT, as
 * after power-on, so KVM's UNINITIALIZED ("no INIT yet") and INIT_RECEIVED
 * are one CPU state; setting UNINITIALIZED gives wait-for-SIPI. A shut-down
 * vCPU (triple fault) ignores everything until INIT, which is what
 * UNINITIALIZED means, so that is how it reads back (KVM itself has no
 * shutdown MP state). SIPI_RECEIVED never reads back: pending SIPIs are taken
 * before the state is read, as KVM's kvm_apic_accept_events does.
 * HV_INACTIVE_VTL is a flag on the vCPU above its CPU state.
 */
import { CpuRunState } from '../x86/cpu.js';
import { KvmError } from './errors.js';

export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;
/** s390 only. */
export const KVM_MP_STATE_STOPPED = 5;
export const KVM_MP_STATE_CHECK_STOP = 6;
export const KVM_MP_STATE_OPERATING = 7;
export const KVM_MP_STATE_LOAD = 8;
/** x86 SEV-ES only (not modelled: EINVAL here). */
export const KVM_MP_STATE_AP_RESET_HOLD = 9;
/** arm64 only. */
export const KVM_MP_STATE_SUSPENDED = 10;
/** Proposed (VSM-18 patch 5): the vCPU is an inactive VTL waiting for a wake-up event. */
export const KVM_MP_STATE_HV_INACTIVE_VTL = 11;

/** KVM_EXIT_SYSTEM_EVENT (24) type for an inactive-VTL wake-up (§3.3). */
export const KVM_SYSTEM_EVENT_WAKEUP = 4;

/** The MP state a CPU run state reads back as (inactive-VTL aside). */
export function mpStateOf(runState: CpuRunState): number {
  switch (runState) {
    case CpuRunState.Running: return KVM_MP_STATE_RUNNABLE;
    case CpuRunState.Halted: return KVM_MP_STATE_HALTED;
    case CpuRunState.WaitForSipi: return KVM_MP_STATE_INIT_RECEIVED;
    default: return KVM_MP_STATE_UNINITIALIZED;
  }
}

/** The CPU run state an accepted MP state sets (HV_INACTIVE_VTL: the vCPU is parked running, see Vcpu.setMpState). */
export function runStateFor(mpState: number): CpuRunState {
  switch (mpState) {
    case KVM_MP_STATE_HALTED: return CpuRunState.Halted;
    case KVM_MP_STATE_UNINITIALIZED:
    case KVM_MP_STATE_INIT_RECEIVED:
    case KVM_MP_STATE_SIPI_RECEIVED: return CpuRunState.WaitForSipi;
    default: return CpuRunState.Running;
  }
}

/**
 * KVM_SET_MP_STATE's validation on x86 (kvm_arch_vcpu_ioctl_set_mpstate):
 * RUNNABLE always; UNINITIALIZED, INIT_RECEIVED, HALTED, SIPI_RECEIVED with
 * the in-kernel local APIC (always ours); HV_INACTIVE_VTL only when the
 * vCPU's Hyper-V CPUID exposes AccessVsm (§3.3; we model no nested guest
 * mode); everything else EINVAL, including AP_RESET_HOLD (SEV-ES, not modelled).
 * SIPI_RECEIVED is EINVAL under the INIT/SIPI block, as KVM refuses it while
 * INIT is latched: no SIPI can be pending then (INIT_RECEIVED stays allowed,
 * a VMM parks and resumes a vCPU that waits for its start).
 */
export function checkMpState(state: number, vsmAllowed: boolean, initSipiBlocked: boolean): void {
  switch (state) {
    case KVM_MP_STATE_RUNNABLE:
    case KVM_MP_STATE_UNINITIALIZED:
    case KVM_MP_STATE_INIT_RECEIVED:
    case KVM_MP_STATE_HALTED:
      return;
    case KVM_MP_STATE_SIPI_RECEIVED:
      if (initSipiBlocked) throw new KvmError('EINVAL', 'MP state SIPI_RECEIVED while the vCPU drops SIPIs (INIT/SIPI block)');
      return;
    case KVM_MP_STATE_HV_INACTIVE_VTL:
      if (!vsmAllowed) throw new KvmError('EINVAL', 'MP state HV_INACTIVE_VTL needs AccessVsm in the vCPU\'s Hyper-V CPUID (vsmAllowed)');
      return;
    default:
      throw new KvmError('EINVAL', `MP state ${String(state)} is not one an x86 vCPU here can be set to`);
  }
}
