/**
 * What each QEMU hv-* flag enables (QEMU target/i386/kvm/kvm.c
 * `kvm_hyperv_properties[]` and docs/system/i386/hyperv.rst), plus our two
 * flags hv-xmm-output and hv-vsm. Rows are in QEMU's table order because QEMU
 * reports the first problem it finds in that order; a row's dependencies are
 * checked in the order listed (QEMU walks its dependency bitmask from the
 * lowest feature index up).
 *
 * Bits come from tlfs.ts: privileges are bit numbers 0..63 of the partition
 * privilege mask (§6.2), edx/recommendations are bit numbers of CPUID
 * 0x40000003 EDX (§6.3) and 0x40000004 EAX (§6.4).
 */
import { HvFeatureEdx as Edx, HvPrivilege as P, HvRecommendation as R } from '../../spec/tlfs.js';

export interface HvFeatureRow {
  readonly flag: string;
  /** QEMU's description, used in error messages exactly as QEMU words them. */
  readonly desc: string;
  readonly privileges: readonly number[];
  readonly edx: readonly number[];
  readonly recommendations: readonly number[];
  readonly requires: readonly string[];
  /** False for enlightenments this hypervisor does not implement (nested virtualization, debugger). */
  readonly supported: boolean;
}

function row(flag: string, desc: string, bits: Partial<Omit<HvFeatureRow, 'flag' | 'desc'>> = {}): HvFeatureRow {
  return {
    flag, desc,
    privileges: bits.privileges ?? [], edx: bits.edx ?? [], recommendations: bits.recommendations ?? [],
    requires: bits.requires ?? [], supported: bits.supported ?? true,
  };
}

export const HV_FEATURE_TABLE: readonly HvFeatureRow[] = [
  row('hv-relaxed', 'relaxed timing (hv-relaxed)', { recommendations: [R.RelaxedTiming] }),
  // The APIC-access recommendation (bit 3) is added separately: QEMU sets it only without hv-avic.
  row('hv-vapic', 'virtual APIC (hv-vapic)', { privileges: [P.AccessIntrCtrlRegs] }),
  row('hv-time', 'clocksources (hv-time)', { privileges: [P.AccessPartitionReferenceCounter, P.AccessPartitionReferenceTsc] }),
  row('hv-crash', 'crash MSRs (hv-crash)', { edx: [Edx.GuestCrashMsrs] }),
  row('hv-reset', 'reset MSR (hv-reset)', { privileges: [P.AccessResetReg] }),
  row('hv-vpindex', 'VP_INDEX MSR (hv-vpindex)', { privileges: [P.AccessVpIndex] }),
  row('hv-runtime', 'VP_RUNTIME MSR (hv-runtime)', { privileges: [P.AccessVpRunTimeReg] }),
  // QEMU adds PostMessages/SignalEvents with the SynIC ("SynIC and Vmbus devices require messages/signals hypercalls").
  row('hv-synic', 'synthetic interrupt controller (hv-synic)', { privileges: [P.AccessSynicRegs, P.PostMessages, P.SignalEvents] }),
  row('hv-stimer', 'synthetic timers (hv-stimer)', { privileges: [P.AccessSyntheticTimerRegs], requires: ['hv-time', 'hv-synic'] }),
  row('hv-frequencies', 'frequency MSRs (hv-frequencies)', { privileges: [P.AccessFrequencyRegs], edx: [Edx.TimerFrequencyMsrs] }),
  row('hv-reenlightenment', 'reenlightenment MSRs (hv-reenlightenment)', { privileges: [P.AccessReenlightenmentControls] }),
  row('hv-tlbflush', 'paravirtualized TLB flush (hv-tlbflush)', {
    recommendations: [R.HypercallRemoteFlush, R.ExProcessorMasks], requires: ['hv-vpindex'],
  }),
  row('hv-evmcs', 'enlightened VMCS (hv-evmcs)', { requires: ['hv-vapic'], supported: false }),
  row('hv-ipi', 'paravirtualized IPI (hv-ipi)', {
    recommendations: [R.SyntheticClusterIpi, R.ExProcessorMasks], requires: ['hv-vpindex'],
  }),
  row('hv-stimer-direct', 'direct mode synthetic timers (hv-stimer-direct)', { edx: [Edx.DirectSyntheticTimers], requires: ['hv-stimer'] }),
  row('hv-avic', 'AVIC/APICv support (hv-avic/hv-apicv)', { recommendations: [R.DeprecateAutoEoi] }),
  row('hv-syndbg', 'Enable synthetic kernel debugger channel (hv-syndbg)', { requires: ['hv-synic', 'hv-relaxed'], supported: false }),
  row('hv-emsr-bitmap', 'enlightened MSR-Bitmap (hv-emsr-bitmap)', { supported: false }),
  row('hv-xmm-input', 'XMM fast hypercall input (hv-xmm-input)', { edx: [Edx.XmmHypercallInput] }),
  // Extended GVA ranges need the EDX bit and privilege bit 47 (fact sheet §2.2); QEMU sets only the EDX bit.
  row('hv-tlbflush-ext', 'Extended gva ranges for TLB flush hypercalls (hv-tlbflush-ext)', {
    privileges: [P.EnableExtendedGvaRangesForFlushVirtualAddressList], edx: [Edx.ExtendedGvaRangesForFlush], requires: ['hv-tlbflush'],
  }),
  row('hv-tlbflush-direct', 'direct TLB flush (hv-tlbflush-direct)', { requires: ['hv-vapic'], supported: false }),
  // Ours. XMM output: EDX bit 15 and privilege FastHypercallOutput (fact sheet §1.3).
  row('hv-xmm-output', 'XMM fast hypercall output (hv-xmm-output)', { privileges: [P.FastHypercallOutput], edx: [Edx.XmmHypercallOutput] }),
  // Ours. VSM needs AccessVsm + AccessVpRegisters + the SynIC (fact sheet §3.1), StartVirtualProcessor to start
  // VPs in VTL1 (§2.14, kvm-api-facts §3.2), and the VP assist page (hv-vapic) for VTL entry/return (§3.3).
  row('hv-vsm', 'Virtual Secure Mode (hv-vsm)', {
    privileges: [P.AccessVsm, P.AccessVpRegisters, P.StartVirtualProcessor], requires: ['hv-synic', 'hv-vapic'],
  }),
];

/** Flags that are accepted but enable nothing by themselves. */
export const HV_CONTROL_FLAGS: readonly string[] = ['hv-passthrough', 'hv-enforce-cpuid'];
