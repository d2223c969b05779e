/**
 * RDMSR/WRMSR of the synthetic MSRs (fact sheet §1.4, §4.1, §6.5). Access
 * first needs the feature (HvFeatures.msrAllowed, from the CPUID privileges);
 * without it, or for read-only/write-only misuse, the answer is #GP
 * (undefined / false), as KVM answers with Hyper-V CPUID enforcement.
 */
import { HV_SYNIC_VERSION, HvFeatureEdx, HvMsr, HvStimerConfig } from '../../spec/tlfs.js';
import { apicEoi, apicReadIcr, apicReadTpr, apicWriteIcr, apicWriteTpr } from './apic-access.js';
import type { HvVp } from './vp.js';

/** 2^64: u64 values are below it (a constant: BigInt arithmetic is not folded). */
const U64_LIMIT = 1n << 64n;

const isSint = (i: number) => i >= HvMsr.SINT0 && i <= HvMsr.SINT15;
const isStimer = (i: number) => i >= HvMsr.STIMER0_CONFIG && i <= HvMsr.STIMER3_COUNT;
const isCrashParam = (i: number) => i >= HvMsr.CRASH_P0 && i <= HvMsr.CRASH_P4;

export function hvRdmsr(vp: HvVp, index: number): bigint | undefined {
  const p = vp.partition;
  if (!p.features.msrAllowed(index)) return undefined;
  if (isSint(index)) return vp.synic.sints[index - HvMsr.SINT0];
  if (isStimer(index)) {
    const t = vp.timers[(index - HvMsr.STIMER0_CONFIG) >> 1]!;
    return (index & 1) === 0 ? t.config : t.count;
  }
  if (isCrashParam(index)) return p.crashParams[index - HvMsr.CRASH_P0];
  switch (index) {
    case HvMsr.GUEST_OS_ID: return p.guestOsId;
    case HvMsr.HYPERCALL: return p.hypercall;
    case HvMsr.VP_INDEX: return BigInt(vp.index);
    case HvMsr.RESET: return 0n;
    case HvMsr.VP_RUNTIME: return BigInt(Math.floor(vp.ctx.runtimeNs() / 100));
    case HvMsr.TIME_REF_COUNT: return vp.now();
    case HvMsr.REFERENCE_TSC: return p.referenceTsc;
    case HvMsr.TSC_FREQUENCY: return BigInt(p.clock.tscHz);
    case HvMsr.APIC_FREQUENCY: return BigInt(vp.ctx.apic.apicHz);
    case HvMsr.EOI: return undefined; // write-only
    case HvMsr.ICR: return apicReadIcr(vp.ctx.apic);
    case HvMsr.TPR: return apicReadTpr(vp.ctx.apic);
    case HvMsr.VP_ASSIST_PAGE: return vp.vpAssistPage;
    case HvMsr.SCONTROL: return vp.synic.scontrol;
    case HvMsr.SVERSION: return BigInt(HV_SYNIC_VERSION);
    case HvMsr.SIEFP: return vp.synic.siefp;
    case HvMsr.SIMP: return vp.synic.simp;
    case HvMsr.EOM: return 0n;
    case HvMsr.CRASH_CTL: return p.crashCtl;
    case HvMsr.REENLIGHTENMENT_CONTROL: return p.reenlightenmentControl;
    case HvMsr.TSC_EMULATION_CONTROL: return p.tscEmulationControl;
    case HvMsr.TSC_EMULATION_STATUS: return p.tscEmulationStatus;
    default: return undefined;
  }
}

export function hvWrmsr(vp: HvVp, index: number, value: bigint): boolean {
  if (typeof value !== 'bigint' || value < 0n || value >= U64_LIMIT) {
    throw new RangeError(`MSR value ${String(value)} is not a 64-bit unsigned bigint`);
  }
  const p = vp.partition;
  if (!p.features.msrAllowed(index)) return false;
  if (isSint(index)) return vp.synic.writeSint(index - HvMsr.SINT0, value);
  if (isStimer(index)) {
    const t = vp.timers[(index - HvMsr.STIMER0_CONFIG) >> 1]!;
    if ((index & 1) === 0) {
      // Direct mode only with hv-stimer-direct (KVM, with CPUID enforcement).
      if ((value & HvStimerConfig.DirectMode) !== 0n && !p.features.hasEdx(HvFeatureEdx.DirectSyntheticTimers)) return false;
      t.writeConfig(value, vp.now());
    } else {
      t.writeCount(value, vp.now());
    }
    return true;
  }
  if (isCrashParam(index)) { p.crashParams[index - HvMsr.CRASH_P0] = value; return true; }
  switch (index) {
    case HvMsr.GUEST_OS_ID: p.writeGuestOsId(value); return true;
    case HvMsr.HYPERCALL: return p.writeHypercall(value);
    case HvMsr.RESET: p.writeReset(value); return true;
    case HvMsr.REFERENCE_TSC: return p.writeReferenceTsc(value, vp.ctx);
    case HvMsr.EOI: return apicEoi(vp.ctx.apic);
    case HvMsr.ICR: return apicWriteIcr(vp.ctx.apic, value);
    case HvMsr.TPR: return apicWriteTpr(vp.ctx.apic, value);
    case HvMsr.VP_ASSIST_PAGE: return vp.writeVpAssistPage(value);
    case HvMsr.SCONTROL: return vp.synic.writeScontrol(value);
    case HvMsr.SIEFP: return vp.synic.writeSiefp(value);
    case HvMsr.SIMP: return vp.synic.writeSimp(value);
    case HvMsr.EOM: vp.synic.eom(); return true;
    case HvMsr.CRASH_CTL: p.writeCrashCtl(value); return true;
    case HvMsr.REENLIGHTENMENT_CONTROL: p.reenlightenmentControl = value; return true;
    case HvMsr.TSC_EMULATION_CONTROL: p.tscEmulationControl = value; return true;
    // KVM: the guest may only clear the status.
    case HvMsr.TSC_EMULATION_STATUS: if (value !== 0n) return false; p.tscEmulationStatus = 0n; return true;
    // Read-only: VP_INDEX, VP_RUNTIME, TIME_REF_COUNT, TSC_FREQUENCY, APIC_FREQUENCY, SVERSION.
    default: return false;
  }
}
