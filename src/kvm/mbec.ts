/**
 * Mode-based execute control per vCPU (our extension, src/kvm/README.md
 * "Mode-based execute control"): with it on, the vCPU's fetches from
 * user-mode linear addresses (paging on, U/S = 1 in every paging entry) are
 * governed by the XU memory attribute (user execute allowed despite NX)
 * instead of NX, as Intel's MBEC makes EPT bit 10 govern them; every other
 * fetch stays under NX. A denied user fetch exits with EXEC | XU.
 *
 * KVM_X86_MBEC_ONLY_WITH_SMEP keeps it off while the guest's CR4.SMEP is 0:
 * with SMEP off, supervisor code may run user pages and would then be
 * checked against XU, so a hypervisor that lets supervisor execute rights
 * depend on MBEC (Hyper-V: "SMEP available and disabled: all execute
 * restrictions are governed by KX", tlfs-vsm-facts §3.8) needs NX to govern
 * every fetch then. KVM sees every CR4.SMEP change (it is never a
 * guest-owned CR4 bit), so it can apply this itself.
 *
 * Upstream KVM uses MBEC only inside its own MMU (to shadow a nested
 * hypervisor's EPT, or in RFC series to harden the guest kernel); there is
 * no per-vCPU switch and no user-execute attribute for a VMM to set.
 */
import type { Cpu } from '../x86/cpu.js';
import { MBEC_ENABLE, MBEC_ONLY_WITH_SMEP } from '../x86/host.js';
import { userFetchChecksXu } from '../x86/mmu.js';
import { KvmError } from './errors.js';

export const KVM_X86_MBEC_ENABLE = 1 << 0;
export const KVM_X86_MBEC_ONLY_WITH_SMEP = 1 << 1;
const KNOWN = KVM_X86_MBEC_ENABLE | KVM_X86_MBEC_ONLY_WITH_SMEP;

/** Checks `flags` (EINVAL, nothing changed): unknown bits, ONLY_WITH_SMEP without ENABLE; then sets the CPU's control. */
export function setMbecControl(cpu: Cpu, flags: number): void {
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~KNOWN) !== 0) {
    throw new KvmError('EINVAL', `MBEC control 0x${Number(flags).toString(16)} has unknown bits (known 0x${KNOWN.toString(16)})`);
  }
  if ((flags & KVM_X86_MBEC_ONLY_WITH_SMEP) !== 0 && (flags & KVM_X86_MBEC_ENABLE) === 0) {
    throw new KvmError('EINVAL', 'KVM_X86_MBEC_ONLY_WITH_SMEP needs KVM_X86_MBEC_ENABLE');
  }
  cpu.mbecControl = cpuControl(flags);
}

/** The CPU's mbecControl for KVM_X86_MBEC_* `flags`. */
const cpuControl = (flags: number): number =>
  ((flags & KVM_X86_MBEC_ENABLE) ? MBEC_ENABLE : 0) | ((flags & KVM_X86_MBEC_ONLY_WITH_SMEP) ? MBEC_ONLY_WITH_SMEP : 0);

/**
 * Whether a vCPU with KVM_X86_MBEC_* `flags` and CR4 `cr4` checks a fetch
 * from a user-mode address against XU (the CPU's own rule, for a VMM that
 * validates an access on a translation it made itself).
 */
export function mbecChecksUserFetch(flags: number, cr4: number): boolean {
  return userFetchChecksXu(cpuControl(flags), cr4);
}

/** The flags last set (0: off). */
export function getMbecControl(cpu: Cpu): number {
  const c = cpu.mbecControl;
  return ((c & MBEC_ENABLE) ? KVM_X86_MBEC_ENABLE : 0) | ((c & MBEC_ONLY_WITH_SMEP) ? KVM_X86_MBEC_ONLY_WITH_SMEP : 0);
}
