/**
 * The Hyper-V enlightenments of one partition, computed from the user's QEMU
 * hv-* flags (feature-table.ts): the partition privilege mask (CPUID
 * 0x40000003 EAX:EBX), the feature bits (EDX), the recommendations
 * (0x40000004), and from those which synthetic MSRs and hypercalls the guest
 * may use. Availability always follows the CPUID we expose, as KVM does with
 * KVM_CAP_HYPERV_ENFORCE_CPUID (so hv-enforce-cpuid changes nothing here).
 */
import {
  HV_DEFAULT_VENDOR,
  HV_SPINLOCK_NEVER_NOTIFY,
  HvCall,
  HvFeatureEdx,
  HvMsr,
  HvPrivilege,
  HvRecommendation,
  type HvPrivilegeName,
} from '../../spec/tlfs.js';
import { HV_CONTROL_FLAGS, HV_FEATURE_TABLE, type HvFeatureRow } from './feature-table.js';

/**
 * The user's Hyper-V selection. `HvOptions` from src/cli/args.ts has this
 * shape, so the CLI's parsed `--hv` list can be passed as it is.
 */
export interface HvConfig {
  readonly flags: ReadonlySet<string>;
  readonly spinlocks?: number;
  readonly vendorId?: string;
  readonly noNonarchCoresharing?: 'on' | 'off' | 'auto';
  readonly versionId?: Readonly<Partial<Record<HvVersionField, number>>>;
}

export type HvVersionField = 'build' | 'major' | 'minor' | 'spack' | 'sbranch' | 'snumber';
export type HvVersion = Readonly<Record<HvVersionField, number>>;

/** QEMU's default identity since QEMU 6.2 (Windows Server 2016): build 0x3839, version 10.0. */
export const HV_DEFAULT_VERSION: HvVersion = { build: 0x3839, major: 0x000a, minor: 0, spack: 0, sbranch: 0, snumber: 0 };
/** Spin retry count KVM reports as supported; hv-passthrough copies it (QEMU docs, "hv-passthrough"). */
export const HV_PASSTHROUGH_SPINLOCKS = 0xfff;

/** A Hyper-V configuration that cannot work; the message is one sentence, worded as QEMU words it. */
export class HvFeatureError extends Error {
  override name = 'HvFeatureError';
}

const bit = (n: number): number => (1 << n) >>> 0;
/** HvFeatures.allowedCalls entries. */
const UNKNOWN = 0, ALLOWED = 1, DENIED = 2;

export class HvFeatures {
  /** Whether the guest sees a Hyper-V interface at all (any enlightenment, or a spinlock count). */
  readonly enabled: boolean;
  /** Enabled enlightenment flags after hv-passthrough expansion. */
  readonly flags: ReadonlySet<string>;
  /** Partition privilege mask bits 31:0 (CPUID 0x40000003 EAX) and 63:32 (EBX). */
  readonly privilegesLow: number;
  readonly privilegesHigh: number;
  /** CPUID 0x40000003 EDX. */
  readonly featuresEdx: number;
  /** CPUID 0x40000004 EAX. */
  readonly recommendations: number;
  /** CPUID 0x40000004 EBX: spinlock retries before NotifyLongSpinWait (0xFFFFFFFF = never). */
  readonly spinlockRetries: number;
  readonly vendorId: string;
  readonly version: HvVersion;

  constructor(init: {
    flags: ReadonlySet<string>; privilegesLow: number; privilegesHigh: number; featuresEdx: number;
    recommendations: number; spinlockRetries: number; vendorId: string; version: HvVersion;
  }) {
    this.flags = init.flags;
    this.privilegesLow = init.privilegesLow >>> 0;
    this.privilegesHigh = init.privilegesHigh >>> 0;
    this.featuresEdx = init.featuresEdx >>> 0;
    this.recommendations = init.recommendations >>> 0;
    this.spinlockRetries = init.spinlockRetries >>> 0;
    this.vendorId = init.vendorId;
    this.version = init.version;
    this.enabled = init.flags.size > 0 || this.spinlockRetries !== HV_SPINLOCK_NEVER_NOTIFY;
  }

  /** No Hyper-V interface: what a VM without --hv gets. */
  static none(): HvFeatures {
    return resolveHvFeatures({ flags: new Set() });
  }

  /** The full privilege mask as a bigint (API edge). */
  get privilegeMask(): bigint {
    return (BigInt(this.privilegesHigh) << 32n) | BigInt(this.privilegesLow);
  }

  has(privilege: HvPrivilegeName): boolean {
    const n = HvPrivilege[privilege];
    return n < 32 ? (this.privilegesLow & bit(n)) !== 0 : (this.privilegesHigh & bit(n - 32)) !== 0;
  }
  hasEdx(bitNumber: number): boolean { return (this.featuresEdx & bit(bitNumber)) !== 0; }
  recommends(bitNumber: number): boolean { return (this.recommendations & bit(bitNumber)) !== 0; }

  /** Whether the guest may read/write this synthetic MSR; otherwise RDMSR/WRMSR raise #GP. */
  msrAllowed(index: number): boolean {
    if (!this.enabled) return false;
    const need = msrPrivilege(index);
    if (need === undefined) return false;
    return need === 'crash' ? this.hasEdx(HvFeatureEdx.GuestCrashMsrs) : this.has(need);
  }

  /**
   * Whether the guest may make this hypercall (KVM's hv_check_hypercall_access and
   * kvm-api-facts §3.2); a call that is not allowed gets HV_STATUS_ACCESS_DENIED.
   * Codes this hypervisor does not know are reported as not allowed: the
   * dispatcher checks for unknown codes (INVALID_HYPERCALL_CODE) first.
   */
  hypercallAllowed(code: number): boolean {
    if ((code >>> 0) !== code || code > 0xffff) return false; // not a call code
    let a = this.allowedCalls[code]!;
    if (a === UNKNOWN) this.allowedCalls[code] = a = this.computeHypercallAllowed(code) ? ALLOWED : DENIED;
    return a === ALLOWED;
  }

  /** The features never change, so each code's answer is computed once (the dispatcher asks on every call): index = code. */
  private readonly allowedCalls = new Uint8Array(0x10000);

  private computeHypercallAllowed(code: number): boolean {
    if (!this.enabled || !this.has('AccessHypercallMsrs')) return false;
    const ex = this.recommends(HvRecommendation.ExProcessorMasks);
    switch (code) {
      case HvCall.NotifyLongSpinWait:
        return this.spinlockRetries !== 0 && this.spinlockRetries !== HV_SPINLOCK_NEVER_NOTIFY;
      case HvCall.PostMessage: return this.has('PostMessages');
      case HvCall.SignalEvent: return this.has('SignalEvents');
      case HvCall.FlushVirtualAddressSpaceEx:
      case HvCall.FlushVirtualAddressListEx:
        return ex && this.recommends(HvRecommendation.HypercallRemoteFlush);
      case HvCall.FlushVirtualAddressSpace:
      case HvCall.FlushVirtualAddressList:
        return this.recommends(HvRecommendation.HypercallRemoteFlush);
      case HvCall.SendSyntheticClusterIpiEx:
        return ex && this.recommends(HvRecommendation.SyntheticClusterIpi);
      case HvCall.SendSyntheticClusterIpi:
        return this.recommends(HvRecommendation.SyntheticClusterIpi);
      case HvCall.ModifyVtlProtectionMask:
      case HvCall.EnablePartitionVtl:
      case HvCall.EnableVpVtl:
      case HvCall.VtlCall:
      case HvCall.VtlReturn:
      case HvCall.TranslateVirtualAddress:
      case HvCall.TranslateVirtualAddressEx:
        return this.has('AccessVsm');
      case HvCall.GetVpRegisters:
      case HvCall.SetVpRegisters:
        return this.has('AccessVpRegisters');
      case HvCall.StartVirtualProcessor:
      case HvCall.GetVpIndexFromApicId:
        return this.has('StartVirtualProcessor');
      default:
        return false;
    }
  }

  /** XMM fast hypercall input / output (CPUID 0x40000003 EDX bits 4 and 15); without them their use is #UD. */
  get xmmInput(): boolean { return this.hasEdx(HvFeatureEdx.XmmHypercallInput); }
  get xmmOutput(): boolean { return this.hasEdx(HvFeatureEdx.XmmHypercallOutput); }
}

/** The privilege (or the crash-MSR feature bit) that gates each synthetic MSR (KVM hv_check_msr_access). */
function msrPrivilege(index: number): HvPrivilegeName | 'crash' | undefined {
  if (index >= HvMsr.SINT0 && index <= HvMsr.SINT15) return 'AccessSynicRegs';
  if (index >= HvMsr.STIMER0_CONFIG && index <= HvMsr.STIMER3_COUNT) return 'AccessSyntheticTimerRegs';
  if (index >= HvMsr.CRASH_P0 && index <= HvMsr.CRASH_CTL) return 'crash';
  switch (index) {
    case HvMsr.GUEST_OS_ID:
    case HvMsr.HYPERCALL: return 'AccessHypercallMsrs';
    case HvMsr.VP_INDEX: return 'AccessVpIndex';
    case HvMsr.RESET: return 'AccessResetReg';
    case HvMsr.VP_RUNTIME: return 'AccessVpRunTimeReg';
    case HvMsr.TIME_REF_COUNT: return 'AccessPartitionReferenceCounter';
    case HvMsr.REFERENCE_TSC: return 'AccessPartitionReferenceTsc';
    case HvMsr.TSC_FREQUENCY:
    case HvMsr.APIC_FREQUENCY: return 'AccessFrequencyRegs';
    case HvMsr.EOI:
    case HvMsr.ICR:
    case HvMsr.TPR:
    case HvMsr.VP_ASSIST_PAGE: return 'AccessIntrCtrlRegs';
    case HvMsr.SCONTROL:
    case HvMsr.SVERSION:
    case HvMsr.SIEFP:
    case HvMsr.SIMP:
    case HvMsr.EOM: return 'AccessSynicRegs';
    case HvMsr.GUEST_IDLE: return 'AccessGuestIdleReg';
    case HvMsr.REENLIGHTENMENT_CONTROL:
    case HvMsr.TSC_EMULATION_CONTROL:
    case HvMsr.TSC_EMULATION_STATUS: return 'AccessReenlightenmentControls';
    case HvMsr.TSC_INVARIANT_CONTROL: return 'AccessTscInvariantControls';
    default: return undefined;
  }
}

const KNOWN = new Set<string>([...HV_FEATURE_TABLE.map((r) => r.flag), ...HV_CONTROL_FLAGS]);

/**
 * Validates the selection as QEMU does (kvm_hyperv_expand_features) and
 * computes the CPUID bits. Throws HvFeatureError for an unknown or
 * unsupported flag or a missing dependency.
 */
export function resolveHvFeatures(config: HvConfig): HvFeatures {
  for (const f of config.flags) {
    if (!KNOWN.has(f)) throw new HvFeatureError(`'${f}' is not a Hyper-V enlightenment this hypervisor knows`);
  }
  const passthrough = config.flags.has('hv-passthrough');
  // hv-passthrough enables every supported enlightenment and overrides the other hv- settings (QEMU docs).
  const enabled = new Set<string>(
    passthrough ? HV_FEATURE_TABLE.filter((r) => r.supported).map((r) => r.flag)
      : HV_FEATURE_TABLE.filter((r) => config.flags.has(r.flag)).map((r) => r.flag),
  );
  const byFlag = new Map(HV_FEATURE_TABLE.map((r) => [r.flag, r] as const));
  for (const r of HV_FEATURE_TABLE) {
    if (!enabled.has(r.flag)) continue;
    if (!r.supported) throw new HvFeatureError(`Hyper-V ${r.desc} is not supported by this hypervisor`);
    for (const dep of r.requires) {
      if (!enabled.has(dep)) throw new HvFeatureError(`Hyper-V ${r.desc} requires Hyper-V ${byFlag.get(dep)!.desc}`);
    }
  }
  // QEMU checks this one after the table ("Additional dependencies not covered by kvm_hyperv_properties[]").
  if (enabled.has('hv-synic') && !enabled.has('hv-vpindex')) {
    throw new HvFeatureError(`Hyper-V ${byFlag.get('hv-synic')!.desc} requires Hyper-V ${byFlag.get('hv-vpindex')!.desc}`);
  }

  let low = 0, high = 0, edx = 0, rec = 0;
  const rows: HvFeatureRow[] = HV_FEATURE_TABLE.filter((r) => enabled.has(r.flag));
  for (const r of rows) {
    for (const p of r.privileges) { if (p < 32) low |= bit(p); else high |= bit(p - 32); }
    for (const b of r.edx) edx |= bit(b);
    for (const b of r.recommendations) rec |= bit(b);
  }
  const spinlockRetries = passthrough ? HV_PASSTHROUGH_SPINLOCKS : config.spinlocks ?? HV_SPINLOCK_NEVER_NOTIFY;
  if (!Number.isInteger(spinlockRetries) || spinlockRetries < 0 || spinlockRetries > 0xffffffff) {
    throw new HvFeatureError(`hv-spinlocks value ${spinlockRetries} is not a 32-bit unsigned number`);
  }
  const anything = enabled.size > 0 || spinlockRetries !== HV_SPINLOCK_NEVER_NOTIFY;
  if (anything) {
    // Unconditional with any enlightenment (QEMU hyperv_fill_cpuids): the hypercall MSRs, and
    // CPU dynamic partitioning, which QEMU sets so that CPU hotplug works in Windows.
    low |= bit(HvPrivilege.AccessHypercallMsrs);
    edx |= bit(HvFeatureEdx.CpuDynamicPartitioning);
  }
  if (enabled.has('hv-vapic') && !enabled.has('hv-avic')) rec |= bit(HvRecommendation.MsrApicAccess);
  // 'auto': our vCPUs all run on one host thread, so no two of them ever share a physical core.
  const coresharing = config.noNonarchCoresharing ?? 'off';
  if (anything && coresharing !== 'off') rec |= bit(HvRecommendation.NoNonArchitecturalCoreSharing);

  const vendorId = passthrough ? HV_DEFAULT_VENDOR : config.vendorId ?? HV_DEFAULT_VENDOR;
  if (vendorId.length > 12 || !/^[\x20-\x7e]*$/.test(vendorId)) {
    throw new HvFeatureError(`hv-vendor-id '${vendorId}' is not at most 12 printable ASCII characters`);
  }
  const version: HvVersion = { ...HV_DEFAULT_VERSION, ...(passthrough ? {} : config.versionId ?? {}) };
  return new HvFeatures({
    flags: enabled, privilegesLow: low, privilegesHigh: high, featuresEdx: edx,
    recommendations: rec, spinlockRetries, vendorId, version,
  });
}
