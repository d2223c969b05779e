/**
 * The VSM synthetic registers' bit layouts (tlfs-vsm-facts §3.6, §3.7):
 * encode/decode, the values this VMM reports, and the value checks
 * SetVpRegisters runs after the access check of register-names.ts. Every
 * value check failure is INVALID_REGISTER_VALUE.
 */
import {
  HV_VSM_CODE_PAGE_OFFSET_MASK, HV_VSM_CODE_PAGE_RETURN_SHIFT, HV_VSM_WAIT_FOR_TLB_LOCK, HvHypercallPage, HvStatus,
  HvVsmCapabilitiesBit as CB, HvVsmPartitionConfigBit as PB, HvVsmPartitionStatus, HvVsmVina, HvVsmVpSecureConfig, HvVsmVpStatus,
} from '../../spec/tlfs.js';
import { PROTECTION_ALL, validateProtectionMask } from './protection-mask.js';
import { VsmError, u64, uint } from './errors.js';

/** Encoders take objects; anything else is a VMM bug with a clear message. */
function requireObject(x: unknown, what: string): void {
  if (typeof x !== 'object' || x === null) throw new VsmError(`${what} is not an object`);
}
const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const flag = (b: boolean, n: number): bigint => (b ? 1n << BigInt(n) : 0n);
const field = (v: bigint, shift: number, width: number): number => Number((v >> BigInt(shift)) & ((1n << BigInt(width)) - 1n));

// ---------------------------------------------------------------- HvRegisterVsmCodePageOffsets (§3.6)

export interface CodePageOffsets { vtlCallOffset: number; vtlReturnOffset: number }

export function encodeCodePageOffsets(o: CodePageOffsets): bigint {
  requireObject(o, 'encodeCodePageOffsets argument');
  return BigInt(uint(o.vtlCallOffset, HV_VSM_CODE_PAGE_OFFSET_MASK, 'VtlCallOffset'))
    | (BigInt(uint(o.vtlReturnOffset, HV_VSM_CODE_PAGE_OFFSET_MASK, 'VtlReturnOffset')) << BigInt(HV_VSM_CODE_PAGE_RETURN_SHIFT));
}

export function decodeCodePageOffsets(v: bigint): CodePageOffsets {
  return { vtlCallOffset: field(v, 0, 12), vtlReturnOffset: field(v, HV_VSM_CODE_PAGE_RETURN_SHIFT, 12) };
}

/** What we report: the stubs of our hypercall page (kvm/hyperv/hypercall-page.ts) for a 64-bit or a 32-bit caller. */
export function codePageOffsetsFor(caller64: boolean): bigint {
  return caller64
    ? encodeCodePageOffsets({ vtlCallOffset: HvHypercallPage.VtlCall64, vtlReturnOffset: HvHypercallPage.VtlReturn64 })
    : encodeCodePageOffsets({ vtlCallOffset: HvHypercallPage.VtlCall32, vtlReturnOffset: HvHypercallPage.VtlReturn32 });
}

// ---------------------------------------------------------------- HvRegisterVsmVpStatus / VsmPartitionStatus (read-only)

export interface VsmVpStatus { activeVtl: number; activeMbecEnabled: boolean; enabledVtlSet: number }

export function encodeVpStatus(s: VsmVpStatus): bigint {
  requireObject(s, 'encodeVpStatus argument');
  return BigInt(uint(s.activeVtl, 15, 'ActiveVtl')) | (s.activeMbecEnabled ? HvVsmVpStatus.ActiveMbecEnabled : 0n)
    | (BigInt(uint(s.enabledVtlSet, 0xffff, 'EnabledVtlSet')) << HvVsmVpStatus.EnabledVtlSetShift);
}

export interface VsmPartitionStatus { enabledVtlSet: number; maximumVtl: number; mbecEnabledVtlSet: number; sssEnabledVtlSet: number }

export function encodePartitionStatus(s: VsmPartitionStatus): bigint {
  requireObject(s, 'encodePartitionStatus argument');
  const P = HvVsmPartitionStatus;
  return BigInt(uint(s.enabledVtlSet, 0xffff, 'EnabledVtlSet')) << P.EnabledVtlSetShift
    | BigInt(uint(s.maximumVtl, 15, 'MaximumVtl')) << P.MaximumVtlShift
    | BigInt(uint(s.mbecEnabledVtlSet, 0xffff, 'MbecEnabledVtlSet')) << P.MbecEnabledVtlSetShift
    | BigInt(uint(s.sssEnabledVtlSet, 0xf, 'SupervisorShadowStackEnabledVtlSet')) << P.SssEnabledVtlSetShift;
}

// ---------------------------------------------------------------- HvRegisterVsmCapabilities (read-only, hvdef bit order)

export interface VsmCapabilities {
  dr6Shared: boolean; mbecVtlMask: number; denyLowerVtlStartup: boolean; supervisorShadowStack: boolean;
  hardwareHvptAvailable: boolean; softwareHvptAvailable: boolean; hardwareHvptRangeBits: number;
  interceptPageAvailable: boolean; returnActionAvailable: boolean; vtl0AliasMapAvailable: boolean;
  interceptNotPresentAvailable: boolean; installInterceptEx: boolean; interceptSystemResetAvailable: boolean;
  proxyInterruptRedirectAvailable: boolean;
}

/**
 * What this VMM offers besides MBEC (vsmCapabilities adds it): DenyLowerVtlStartup, the
 * intercept page and return actions. DR6 is private (Dr6Shared = 0); shadow
 * stacks and HVPT are absent (§3.8).
 */
export const DEFAULT_VSM_CAPABILITIES: VsmCapabilities = {
  dr6Shared: false, mbecVtlMask: 0, denyLowerVtlStartup: true, supervisorShadowStack: false,
  hardwareHvptAvailable: false, softwareHvptAvailable: false, hardwareHvptRangeBits: 0,
  interceptPageAvailable: true, returnActionAvailable: true, vtl0AliasMapAvailable: false,
  interceptNotPresentAvailable: false, installInterceptEx: false, interceptSystemResetAvailable: false,
  proxyInterruptRedirectAvailable: false,
};

/** The capabilities of a partition whose highest VTL is `maximumVtl`: MBEC for every VTL from 1 up to it (MbecVtlMask bit n = VTL n). */
export function vsmCapabilities(maximumVtl: number): VsmCapabilities {
  const vtls = uint(maximumVtl, 15, 'maximum VTL');
  return Object.freeze({ ...DEFAULT_VSM_CAPABILITIES, mbecVtlMask: ((1 << (vtls + 1)) - 1) & ~1 });
}

export function encodeCapabilities(c: VsmCapabilities): bigint {
  requireObject(c, 'encodeCapabilities argument');
  return flag(c.dr6Shared, CB.Dr6Shared) | (BigInt(uint(c.mbecVtlMask, 0xffff, 'MbecVtlMask')) << BigInt(CB.MbecVtlMaskShift))
    | flag(c.denyLowerVtlStartup, CB.DenyLowerVtlStartup) | flag(c.supervisorShadowStack, CB.SupervisorShadowStack)
    | flag(c.hardwareHvptAvailable, CB.HardwareHvptAvailable) | flag(c.softwareHvptAvailable, CB.SoftwareHvptAvailable)
    | (BigInt(uint(c.hardwareHvptRangeBits, 0x3f, 'HardwareHvptRangeBits')) << BigInt(CB.HardwareHvptRangeBitsShift))
    | flag(c.interceptPageAvailable, CB.InterceptPageAvailable) | flag(c.returnActionAvailable, CB.ReturnActionAvailable)
    | flag(c.vtl0AliasMapAvailable, CB.Vtl0AliasMapAvailable) | flag(c.interceptNotPresentAvailable, CB.InterceptNotPresentAvailable)
    | flag(c.installInterceptEx, CB.InstallInterceptEx) | flag(c.interceptSystemResetAvailable, CB.InterceptSystemResetAvailable)
    | flag(c.proxyInterruptRedirectAvailable, CB.ProxyInterruptRedirectAvailable);
}

export function decodeCapabilities(v: bigint): VsmCapabilities {
  u64(v, 'VsmCapabilities');
  return {
    dr6Shared: bit(v, CB.Dr6Shared), mbecVtlMask: field(v, CB.MbecVtlMaskShift, 16), denyLowerVtlStartup: bit(v, CB.DenyLowerVtlStartup),
    supervisorShadowStack: bit(v, CB.SupervisorShadowStack), hardwareHvptAvailable: bit(v, CB.HardwareHvptAvailable),
    softwareHvptAvailable: bit(v, CB.SoftwareHvptAvailable), hardwareHvptRangeBits: field(v, CB.HardwareHvptRangeBitsShift, 6),
    interceptPageAvailable: bit(v, CB.InterceptPageAvailable), returnActionAvailable: bit(v, CB.ReturnActionAvailable),
    vtl0AliasMapAvailable: bit(v, CB.Vtl0AliasMapAvailable), interceptNotPresentAvailable: bit(v, CB.InterceptNotPresentAvailable),
    installInterceptEx: bit(v, CB.InstallInterceptEx), interceptSystemResetAvailable: bit(v, CB.InterceptSystemResetAvailable),
    proxyInterruptRedirectAvailable: bit(v, CB.ProxyInterruptRedirectAvailable),
  };
}

// ---------------------------------------------------------------- HvRegisterVsmPartitionConfig (one per VTL ≥ 1)

export interface VsmPartitionConfig {
  enableVtlProtection: boolean;
  /** R/W/KX/UX applied to all RAM for lower VTLs when protection is enabled. */
  defaultVtlProtectionMask: number;
  zeroMemoryOnReset: boolean; denyLowerVtlStartup: boolean; interceptAcceptance: boolean; interceptEnableVtlProtection: boolean;
  interceptVpStartup: boolean; interceptCpuidUnimplemented: boolean; interceptUnrecoverableException: boolean; interceptPage: boolean;
  interceptRestorePartitionTime: boolean; interceptNotPresent: boolean; interceptSystemReset: boolean;
}

export function decodePartitionConfig(v: bigint): VsmPartitionConfig {
  u64(v, 'VsmPartitionConfig');
  return {
    enableVtlProtection: bit(v, PB.EnableVtlProtection), defaultVtlProtectionMask: field(v, PB.DefaultVtlProtectionMaskShift, 4),
    zeroMemoryOnReset: bit(v, PB.ZeroMemoryOnReset), denyLowerVtlStartup: bit(v, PB.DenyLowerVtlStartup),
    interceptAcceptance: bit(v, PB.InterceptAcceptance), interceptEnableVtlProtection: bit(v, PB.InterceptEnableVtlProtection),
    interceptVpStartup: bit(v, PB.InterceptVpStartup), interceptCpuidUnimplemented: bit(v, PB.InterceptCpuidUnimplemented),
    interceptUnrecoverableException: bit(v, PB.InterceptUnrecoverableException), interceptPage: bit(v, PB.InterceptPage),
    interceptRestorePartitionTime: bit(v, PB.InterceptRestorePartitionTime), interceptNotPresent: bit(v, PB.InterceptNotPresent),
    interceptSystemReset: bit(v, PB.InterceptSystemReset),
  };
}

export function encodePartitionConfig(c: VsmPartitionConfig): bigint {
  requireObject(c, 'encodePartitionConfig argument');
  return flag(c.enableVtlProtection, PB.EnableVtlProtection)
    | (BigInt(uint(c.defaultVtlProtectionMask, 0xf, 'DefaultVtlProtectionMask')) << BigInt(PB.DefaultVtlProtectionMaskShift))
    | flag(c.zeroMemoryOnReset, PB.ZeroMemoryOnReset) | flag(c.denyLowerVtlStartup, PB.DenyLowerVtlStartup)
    | flag(c.interceptAcceptance, PB.InterceptAcceptance) | flag(c.interceptEnableVtlProtection, PB.InterceptEnableVtlProtection)
    | flag(c.interceptVpStartup, PB.InterceptVpStartup) | flag(c.interceptCpuidUnimplemented, PB.InterceptCpuidUnimplemented)
    | flag(c.interceptUnrecoverableException, PB.InterceptUnrecoverableException) | flag(c.interceptPage, PB.InterceptPage)
    | flag(c.interceptRestorePartitionTime, PB.InterceptRestorePartitionTime) | flag(c.interceptNotPresent, PB.InterceptNotPresent)
    | flag(c.interceptSystemReset, PB.InterceptSystemReset);
}

/** The VsmPartitionConfig value that turns protection on with `mask` as the default, and nothing else (tests, tools). */
export function enableProtectionConfig(mask: number): bigint {
  return encodePartitionConfig({ ...decodePartitionConfig(0n), enableVtlProtection: true, defaultVtlProtectionMask: mask });
}

/**
 * The bits we accept: those TLFS documents (0-6, 9) and hvdef's 11
 * (InterceptUnrecoverableException, unrecoverable-exception.ts); hvdef-only
 * bits 7, 8, 10, 13-15 need features we do not have; 12 needs InterceptPageAvailable.
 */
const TLFS_CONFIG_BITS = [
  PB.EnableVtlProtection, 1, 2, 3, 4, PB.ZeroMemoryOnReset, PB.DenyLowerVtlStartup, PB.InterceptVpStartup, PB.InterceptUnrecoverableException,
].reduce((m, b) => m | (1n << BigInt(b)), 0n);

/**
 * SetVpRegisters(VsmPartitionConfig) value rules (§3.7), SUCCESS or INVALID_REGISTER_VALUE:
 * - bits 63:16 (RsvdZ), and bits we do not support, must be 0;
 * - once EnableVtlProtection is 1 it cannot be cleared, and from then on the
 *   default protection mask cannot change (write-once; only a partition
 *   reset clears them);
 * - the write that sets EnableVtlProtection must carry a valid mask
 *   (protection-mask.ts: 0x0, 0x1, 0x3, 0xD or 0xF, and 0x9 or 0xB when the
 *   configured VTL was enabled with MBEC, `mbec`). Before that the mask may
 *   be written freely; it takes effect with protection.
 */
export function checkPartitionConfigWrite(current: bigint, next: bigint, caps: Pick<VsmCapabilities, 'interceptPageAvailable'>, mbec: boolean): number {
  u64(current, 'current VsmPartitionConfig');
  u64(next, 'new VsmPartitionConfig');
  const supported = TLFS_CONFIG_BITS | (caps.interceptPageAvailable ? 1n << BigInt(PB.InterceptPage) : 0n);
  if ((next & ~supported) !== 0n) return HvStatus.INVALID_REGISTER_VALUE;
  const cur = decodePartitionConfig(current), nxt = decodePartitionConfig(next);
  if (cur.enableVtlProtection) {
    if (!nxt.enableVtlProtection || nxt.defaultVtlProtectionMask !== cur.defaultVtlProtectionMask) return HvStatus.INVALID_REGISTER_VALUE;
  } else if (nxt.enableVtlProtection && validateProtectionMask(nxt.defaultVtlProtectionMask, mbec) !== HvStatus.SUCCESS) {
    return HvStatus.INVALID_REGISTER_VALUE;
  }
  return HvStatus.SUCCESS;
}

/** The mask lower VTLs get on pages nobody protected explicitly: the default once protection is on, else everything. */
export function defaultProtection(config: bigint): number {
  const c = decodePartitionConfig(config);
  return c.enableVtlProtection ? c.defaultVtlProtectionMask : PROTECTION_ALL;
}

// ---------------------------------------------------------------- HvRegisterVsmVpSecureConfigVtlN

export interface VpSecureConfig { mbecEnabled: boolean; tlbLocked: boolean; sssEnabled: boolean; hwHvptEnabled: boolean }

export function decodeSecureConfig(v: bigint): VpSecureConfig {
  u64(v, 'VsmVpSecureConfig');
  const S = HvVsmVpSecureConfig;
  return { mbecEnabled: (v & S.MbecEnabled) !== 0n, tlbLocked: (v & S.TlbLocked) !== 0n, sssEnabled: (v & S.SssEnabled) !== 0n, hwHvptEnabled: (v & S.HwHvptEnabled) !== 0n };
}

export function encodeSecureConfig(c: VpSecureConfig): bigint {
  requireObject(c, 'encodeSecureConfig argument');
  const S = HvVsmVpSecureConfig;
  return (c.mbecEnabled ? S.MbecEnabled : 0n) | (c.tlbLocked ? S.TlbLocked : 0n) | (c.sssEnabled ? S.SssEnabled : 0n) | (c.hwHvptEnabled ? S.HwHvptEnabled : 0n);
}

/**
 * RsvdZ 63:4 and the features we lack (shadow stacks, HVPT) must be 0
 * (INVALID_REGISTER_VALUE); TlbLocked (§3.9) is always taken, MbecEnabled
 * only from a configuring VTL enabled with MBEC (`mbec`; openhcl refuses
 * MbecEnabled that does not match the VTL's MBEC the same way).
 */
export function checkSecureConfigWrite(v: bigint, mbec: boolean): number {
  u64(v, 'VsmVpSecureConfig');
  const allowed = HvVsmVpSecureConfig.TlbLocked | (mbec ? HvVsmVpSecureConfig.MbecEnabled : 0n);
  return (v & ~allowed) === 0n ? HvStatus.SUCCESS : HvStatus.INVALID_REGISTER_VALUE;
}

// ---------------------------------------------------------------- HvRegisterVsmVina, HvRegisterVsmVpWaitForTlbLock

export interface VsmVina { vector: number; enabled: boolean; autoReset: boolean; autoEoi: boolean }

/** Bits 63:11 are RsvdP: ignored on write, so only 10:0 are kept. */
export function decodeVina(v: bigint): VsmVina {
  u64(v, 'VsmVina');
  return { vector: Number(v & HvVsmVina.VectorMask), enabled: (v & HvVsmVina.Enabled) !== 0n, autoReset: (v & HvVsmVina.AutoReset) !== 0n, autoEoi: (v & HvVsmVina.AutoEoi) !== 0n };
}

export function encodeVina(x: VsmVina): bigint {
  requireObject(x, 'encodeVina argument');
  return BigInt(uint(x.vector, 0xff, 'VINA vector')) | (x.enabled ? HvVsmVina.Enabled : 0n) | (x.autoReset ? HvVsmVina.AutoReset : 0n) | (x.autoEoi ? HvVsmVina.AutoEoi : 0n);
}

/** WaitForTlbLock: bit 0 Wait; 63:1 reserved (INVALID_REGISTER_VALUE). */
export function checkWaitForTlbLockWrite(v: bigint): number {
  u64(v, 'VsmVpWaitForTlbLock');
  return (v & ~HV_VSM_WAIT_FOR_TLB_LOCK) === 0n ? HvStatus.SUCCESS : HvStatus.INVALID_REGISTER_VALUE;
}
