/**
 * VTL memory protections (tlfs-vsm-facts §3.8, §2.18) and their kvm form
 * (kvm-api-facts §2.2/§2.3, and our XU attribute, src/kvm/README.md
 * "Mode-based execute control").
 *
 * A protection mask has four bits: Read 0x1, Write 0x2, Kernel execute
 * (KX) 0x4, User execute (UX) 0x8. Without MBEC KX governs all execution,
 * and KX and UX must be equal; a VTL enabled with EnableMbec (§2.12) may also
 * give UX without KX (openhcl validate_vtl_gpa_flags: the protecting VTL's
 * MBEC decides). KX without UX is refused even then (TLFS: "the behavior of
 * this combination is undefined"). Each valid mask maps to one kvm attribute
 * value:
 *
 * | Mask | Kind | kvm attributes |
 * |---|---|---|
 * | 0x0 | no access | NR\|NW\|NX (0x7) |
 * | 0x1 | R | NW\|NX (0x6) |
 * | 0x3 | RW | NX (0x4) |
 * | 0xD | RX | NW (0x2) |
 * | 0xF | RWX | 0 |
 * | 0x9 | R + UX (MBEC) | NW\|NX\|XU (0x16) |
 * | 0xB | RW + UX (MBEC) | NX\|XU (0x14) |
 *
 * Whether UX then counts for a fetch is the executing VTL's business: its
 * vCPU has kvm's MBEC on while a VTL above enabled MBEC for it
 * (VsmVpSecureConfigVtlN.MbecEnabled, partition.ts); otherwise NX governs
 * and such a page is not executable at all, which is what KX governing
 * means.
 *
 * Not representable, and the status each gives (§3.8):
 * - W, KX, UX or SupervisorShadowStack without R (kvm: NR without NW|NX is
 *   EINVAL): INVALID_REGISTER_VALUE.
 * - KX without UX; UX without KX for a VTL without MBEC: INVALID_REGISTER_VALUE.
 * - SupervisorShadowStack (no CET here) and Adjustable: INVALID_REGISTER_VALUE.
 * - Any other HV_MAP_GPA_FLAGS bit (paging-writability bits, map-call flags):
 *   INVALID_PARAMETER (they are not VTL protections; our choice, the sheet
 *   names no status).
 */
import { KVM_MEMORY_ATTRIBUTE_NR, KVM_MEMORY_ATTRIBUTE_NW, KVM_MEMORY_ATTRIBUTE_NX, KVM_MEMORY_ATTRIBUTE_XU } from '../../kvm/memory-attributes.js';
import {
  HV_MAP_GPA_ADJUSTABLE, HV_MAP_GPA_KERNEL_EXECUTABLE, HV_MAP_GPA_PERMISSIONS_ALL, HV_MAP_GPA_READABLE,
  HV_MAP_GPA_SUPERVISOR_SHADOW_STACK, HV_MAP_GPA_USER_EXECUTABLE, HV_MAP_GPA_WRITABLE, HvInterceptAccessType, HvStatus,
} from '../../spec/tlfs.js';
import { VsmError, uint } from './errors.js';

const R = HV_MAP_GPA_READABLE, W = HV_MAP_GPA_WRITABLE, KX = HV_MAP_GPA_KERNEL_EXECUTABLE, UX = HV_MAP_GPA_USER_EXECUTABLE;
const NR = KVM_MEMORY_ATTRIBUTE_NR, NW = KVM_MEMORY_ATTRIBUTE_NW, NX = KVM_MEMORY_ATTRIBUTE_NX, XU = KVM_MEMORY_ATTRIBUTE_XU;
/** The attribute bits a protection sets (a VSM partition has no PRIVATE pages: machine.ts refuses the combination). */
export const PROTECTION_ATTRIBUTES = NR | NW | NX | XU;
/** Bits validate_vtl_gpa_flags judges (a bad combination is INVALID_REGISTER_VALUE); any other bit is INVALID_PARAMETER. */
const JUDGED = HV_MAP_GPA_PERMISSIONS_ALL | HV_MAP_GPA_SUPERVISOR_SHADOW_STACK | HV_MAP_GPA_ADJUSTABLE;

/** The protection mask that allows everything (the state of a page no VTL protects). */
export const PROTECTION_ALL = HV_MAP_GPA_PERMISSIONS_ALL;

/**
 * SUCCESS when `flags` (HV_MAP_GPA_FLAGS, u32) is a protection we can apply
 * for a protecting VTL with (`mbec`) or without MBEC, else the status of the
 * table above.
 */
export function validateProtectionMask(flags: number, mbec: boolean): number {
  uint(flags, 0xffffffff, 'HV_MAP_GPA_FLAGS');
  if ((flags & ~JUDGED) !== 0) return HvStatus.INVALID_PARAMETER;
  if (flags & (HV_MAP_GPA_ADJUSTABLE | HV_MAP_GPA_SUPERVISOR_SHADOW_STACK)) return HvStatus.INVALID_REGISTER_VALUE;
  if ((flags & (W | KX | UX)) !== 0 && (flags & R) === 0) return HvStatus.INVALID_REGISTER_VALUE;
  if ((flags & (KX | UX)) === KX || ((flags & (KX | UX)) === UX && !mbec)) return HvStatus.INVALID_REGISTER_VALUE;
  return HvStatus.SUCCESS;
}

/** kvm memory attributes for a valid mask (MBEC masks included); VsmError for one validateProtectionMask refuses. */
export function maskToAttributes(mask: number): number {
  if (validateProtectionMask(mask, true) !== HvStatus.SUCCESS) throw new VsmError(`protection mask 0x${mask.toString(16)} is not one of 0x0, 0x1, 0x3, 0x9, 0xB, 0xD, 0xF`);
  return ((mask & R) ? 0 : NR) | ((mask & W) ? 0 : NW) | ((mask & KX) ? 0 : NX) | ((mask & (KX | UX)) === UX ? XU : 0);
}

const VALID_ATTRIBUTES = new Set([0x0, 0x2, 0x4, 0x6, 0x7, NX | XU, NW | NX | XU]);

/** The mask a valid kvm attribute value stands for (PRIVATE and invalid combinations are VsmError). */
export function attributesToMask(attrs: number): number {
  if (!VALID_ATTRIBUTES.has(attrs)) throw new VsmError(`kvm memory attributes ${String(attrs)} are not one of 0x0, 0x2, 0x4, 0x6, 0x7, 0x14, 0x16`);
  return ((attrs & NR) ? 0 : R) | ((attrs & NW) ? 0 : W) | ((attrs & NX) ? 0 : KX) | ((attrs & NX) === 0 || (attrs & XU) ? UX : 0);
}

/**
 * Whether `mask` allows an access of HvInterceptAccessType `accessType`. An
 * execute is checked against UX when `userExecute` (a fetch from a user-mode
 * address by a VTL running with MBEC: the memory-fault exit's XU flag), else
 * against KX.
 */
export function maskAllows(mask: number, accessType: number, userExecute = false): boolean {
  switch (accessType) {
    case HvInterceptAccessType.Read: return (mask & R) !== 0;
    case HvInterceptAccessType.Write: return (mask & W) !== 0;
    case HvInterceptAccessType.Execute: return (mask & (userExecute ? UX : KX)) !== 0;
    default: throw new VsmError(`intercept access type ${String(accessType)} is not 0, 1 or 2`);
  }
}

/**
 * Protections of several VTLs over one page (§3.8: a VTL N protection says
 * what VTLs below N may do; higher VTLs' protections apply too). `masks[n]`
 * is the mask VTL n applies to this page (undefined: VTL n protects nothing
 * here). The effective mask for VTL `lower` is the AND of masks above it.
 */
export function effectiveMask(masks: readonly (number | undefined)[], lower: number): number {
  let m = PROTECTION_ALL;
  for (let n = lower + 1; n < masks.length; n++) if (masks[n] !== undefined) m &= masks[n]!;
  return m;
}

/**
 * The VTL an access by VTL `lower` is intercepted to: the lowest VTL above it
 * whose mask denies the access (§3.10 nested intercepts: the lower of the
 * intercepting VTLs first), or -1 when every mask allows it. `userExecute`
 * as for maskAllows.
 */
export function interceptTargetVtl(masks: readonly (number | undefined)[], lower: number, accessType: number, userExecute = false): number {
  for (let n = lower + 1; n < masks.length; n++) {
    const m = masks[n];
    if (m !== undefined && !maskAllows(m, accessType, userExecute)) return n;
  }
  return -1;
}
