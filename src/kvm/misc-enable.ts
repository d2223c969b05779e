/**
 * IA32_MISC_ENABLE (MSR 0x1A0, SDM vol. 4 table 2-2), kept per vCPU as KVM
 * keeps it (arch/x86/kvm/x86.c, ia32_misc_enable_msr): created with
 * BTS_UNAVAILABLE (bit 11) and PEBS_UNAVAILABLE (bit 12) set, as KVM sets them
 * when the vCPU has no PEBS or BTS (ours has no PMU: CPUID leaf 0AH is 0), and
 * not changed by INIT (KVM sets it on power-on reset only).
 *
 * A guest WRMSR: changing bit 11 or 12 is a #GP (KVM's PMU_RO_MASK);
 * bit 7 (performance monitoring available) is read-only and a write to it
 * is ignored (0 here, no PMU); every other bit is stored as written, as KVM
 * stores them (bit 18, ENABLE MONITOR FSM, included: KVM's default
 * MISC_ENABLE_NO_MWAIT quirk stores it without touching CPUID). None of
 * them changes what our CPU does. A host write (KVM_SET_MSRS) stores any value.
 */
export const MSR_IA32_MISC_ENABLE = 0x1a0;
const EMON = 1n << 7n, BTS_UNAVAILABLE = 1n << 11n, PEBS_UNAVAILABLE = 1n << 12n;
/** The value a new vCPU has. */
export const MISC_ENABLE_INITIAL = BTS_UNAVAILABLE | PEBS_UNAVAILABLE;
const READ_ONLY = BTS_UNAVAILABLE | PEBS_UNAVAILABLE;

/** What a guest WRMSR of `value` over `old` stores, or null for a #GP. */
export function guestMiscEnableWrite(old: bigint, value: bigint): bigint | null {
  if (((old ^ value) & READ_ONLY) !== 0n) return null;
  return (value & ~EMON) | (old & EMON);
}
