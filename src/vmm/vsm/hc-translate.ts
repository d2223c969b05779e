/**
 * The VMM's answer to HvCallTranslateVirtualAddress (0x52) and
 * HvCallTranslateVirtualAddressEx (0xAC) (tlfs-vsm-facts §2.16, §5;
 * kvm-api-facts §3.1, §3.2): kvm passes both up as `hyperv-hcall` exits,
 * having checked CPL, the privilege and the control word, and #UD'd a fast
 * 0x52 without XMM input. translate-va.ts does the translation.
 *
 * Input (both calls, 32 bytes): partition id, VP index, a reserved u32,
 * the control flags (§5.1, HV_INPUT_VTL in bits 63:56), the GVA page.
 * Slow: the input page at RDX, the output at R8 (16 bytes; Ex: 0x40).
 * Fast (0x52 only): RDX, R8 and XMM0 carry the input; the output
 * {TranslationResult, GpaPage} goes to the register pair after the input,
 * XMM1 (§1.3), which kvm copies back for a successful 0x52 (kvm §3.1 step 1).
 * A fast call from a 32-bit caller (one register pair) does not fit, and
 * kvm copies no XMM output for 0xAC, so a fast Ex has nowhere to put its
 * output: both are INVALID_HYPERCALL_INPUT (§1.1 "does not fit").
 *
 * Statuses, in hc-vsm.ts's order (prefer the status that leaks least,
 * §1.6): input buffer, then output buffer (§1.1, hc-buffers.ts) →
 * partition ≠ self ⇒ INVALID_PARTITION_ID (openhcl says ACCESS_DENIED) →
 * VpIndex not a VP (HV_VP_INDEX_SELF is the caller's) ⇒ INVALID_VP_INDEX →
 * the reserved u32, control-flag bits 55:11, ShadowStack (no CET and no
 * supervisor shadow stacks here), or a GVA page ≥ 2^52 (GVA beyond 64 bits)
 * ⇒ INVALID_PARAMETER → the input-VTL byte as input-vtl.ts decodes it
 * (INVALID_PARAMETER / ACCESS_DENIED above the caller) → a target VTL equal
 * to the caller's, including UseTargetVtl = 0, ⇒ ACCESS_DENIED (§2.16: only
 * a higher VTL translates for a lower one) → the target VTL not enabled on
 * the target VP ⇒ INVALID_VTL_STATE. Then SUCCESS, whatever the walk gave:
 * a failed translation is a ResultCode with GpaPage 0 (§2.16, §5.2).
 *
 * TranslationResult (§5.2): ResultCode bits 31:0, CacheType 39:32,
 * OverlayPage bit 40. Ex output (§5.3, where the TLFS and hvdef disagree we
 * take hvdef's debugger-verified layout, as the sheet says): that u64 at 0,
 * reserved 0 at 8, EventInfo at 0x10, GpaPage at 0x30, reserved at 0x38.
 * EventInfo (HV_X64_PENDING_EVENT, 32 bytes) is written as zeros, "no
 * event": the sheet does not give its layout.
 *
 * TLB lock (§3.9): with TlbFlushInhibit, a call that answers SUCCESS takes
 * the lock of the target VTL's TLB on the target VP for the caller's VTL,
 * whether the walk succeeded or not (openhcl locks before it walks).
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import type { XmmRegister } from '../../kvm/vcpu-regs.js';
import { hypercallResult, parseHypercallControl } from '../../kvm/hyperv/hypercall-input.js';
import {
  HV_FAST_PAIR_BYTES, HV_PAGE_SHIFT, HV_PARTITION_ID_SELF, HV_TRANSLATE_GVA_FLAGS_RESERVED, HV_TRANSLATE_GVA_RESULT_CACHE_SHIFT,
  HV_TRANSLATE_GVA_RESULT_OVERLAY, HV_VP_INDEX_SELF, HvCall, HvStatus, HvTranslateGvaFlags as F,
  HvTranslateVirtualAddressExOutput as EXO, HvTranslateVirtualAddressInput as I, HvTranslateVirtualAddressOutput as O,
} from '../../spec/tlfs.js';
import { ACCESS_READ, ACCESS_WRITE } from '../../x86/host.js';
import { VsmError } from './errors.js';
import { decodeInputVtl } from './input-vtl.js';
import { BUFFER_INTERCEPTED, checkVsmHypercallBuffer } from './memory-intercept.js';
import type { VsmPartition, VsmVp } from './partition.js';
import { translateGva, type GvaTranslation } from './translate-va.js';
import { fastBlock, hi32, lo32, type HcallExit } from './hc-call.js';

export interface TranslateHypercallOptions {
  /** VTL `holderVtl` now holds the lock on VTL `lowerVtl`'s TLB of VP `vpIndex` (§3.9). */
  lockTlb(vpIndex: number, lowerVtl: number, holderVtl: number): void;
}

/** GVA pages at or above this do not give a 64-bit GVA. */
const GVA_PAGE_LIMIT = 1n << BigInt(64 - HV_PAGE_SHIFT);

/**
 * Answers the 0x52 / 0xAC exit of `vcpu`, which is VP `vp`'s Vcpu of VTL
 * `vtl`, its active one (hc-vsm.ts has located it).
 */
export function handleTranslateVirtualAddress(
  p: VsmPartition, vcpu: Vcpu, vp: VsmVp, vtl: number, exit: HcallExit, opts: TranslateHypercallOptions,
): void {
  const control = parseHypercallControl(exit.input);
  if (control.code !== HvCall.TranslateVirtualAddress && control.code !== HvCall.TranslateVirtualAddressEx) {
    throw new VsmError(`hypercall 0x${control.code.toString(16)} is not TranslateVirtualAddress(Ex)`);
  }
  const ex = control.code === HvCall.TranslateVirtualAddressEx;
  const answer = (status: number, xmm?: readonly XmmRegister[]) => vcpu.completeHypercall(hypercallResult(status), xmm);
  const [rdx, r8] = exit.params;
  let input: Uint8Array;
  if (control.fast) {
    if (ex || !exit.longMode) { answer(HvStatus.INVALID_HYPERCALL_INPUT); return; }
    input = fastBlock(exit).subarray(0, I.Bytes);
  } else {
    // A buffer a VTL protection denies raises an intercept and leaves the call unanswered (memory-intercept.ts).
    const inStatus = checkVsmHypercallBuffer(p, vcpu, lo32(rdx), hi32(rdx), I.Bytes, ACCESS_READ);
    if (inStatus === BUFFER_INTERCEPTED) return;
    if (inStatus !== HvStatus.SUCCESS) { answer(inStatus); return; }
    const out = checkVsmHypercallBuffer(p, vcpu, lo32(r8), hi32(r8), ex ? EXO.Bytes : O.Bytes, ACCESS_WRITE);
    if (out === BUFFER_INTERCEPTED) return;
    if (out !== HvStatus.SUCCESS) { answer(out); return; }
    input = vcpu.vm.mem.read(Number(rdx), I.Bytes);
  }
  const target = translateTarget(p, vp, vtl, input);
  if (typeof target === 'number') { answer(target); return; }

  const t = translateGva(target.vp.vcpus[target.vtl]!, target.gvaPage << BigInt(HV_PAGE_SHIFT), target.flags);
  const result = encodeTranslateResult(t);
  const gpaPage = t.gpa >> BigInt(HV_PAGE_SHIFT);
  let xmm: XmmRegister[] | undefined;
  if (control.fast) {
    xmm = exit.xmm.map((x) => ({ low: x.low, high: x.high }));
    // The output pair follows the 32 input bytes (pairs 0, 1): pair 2, which is XMM1 (§1.3).
    xmm[Math.ceil(I.Bytes / HV_FAST_PAIR_BYTES) - 1] = { low: result, high: gpaPage };
  } else {
    const out = new Uint8Array(ex ? EXO.Bytes : O.Bytes);
    const dv = new DataView(out.buffer);
    dv.setBigUint64(ex ? EXO.TranslationResult : O.TranslationResult, result, true);
    dv.setBigUint64(ex ? EXO.GpaPage : O.GpaPage, gpaPage, true);
    vcpu.vm.mem.write(Number(r8), out);
  }
  if (t.tlbFlushInhibit) opts.lockTlb(target.vp.index, target.vtl, vtl);
  answer(HvStatus.SUCCESS, xmm);
}

/** HV_TRANSLATE_GVA_RESULT (§5.2). */
export function encodeTranslateResult(t: GvaTranslation): bigint {
  return BigInt(t.code) | (BigInt(t.cacheType) << BigInt(HV_TRANSLATE_GVA_RESULT_CACHE_SHIFT)) | (t.overlayPage ? HV_TRANSLATE_GVA_RESULT_OVERLAY : 0n);
}

/** The header checks (file comment): the target VP and VTL, the walk's flags and the GVA page, or the status. */
function translateTarget(p: VsmPartition, callerVp: VsmVp, callerVtl: number, input: Uint8Array):
  { vp: VsmVp; vtl: number; flags: number; gvaPage: bigint } | number {
  const dv = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (dv.getBigUint64(I.PartitionId, true) !== HV_PARTITION_ID_SELF) return HvStatus.INVALID_PARTITION_ID;
  const index = dv.getUint32(I.VpIndex, true);
  const vp = index === HV_VP_INDEX_SELF ? callerVp : p.vps[index];
  if (vp === undefined) return HvStatus.INVALID_VP_INDEX;
  const flags = dv.getBigUint64(I.ControlFlags, true);
  const gvaPage = dv.getBigUint64(I.GvaPage, true);
  if (dv.getUint32(I.Reserved, true) !== 0 || (flags & (HV_TRANSLATE_GVA_FLAGS_RESERVED | BigInt(F.ShadowStack))) !== 0n
    || gvaPage >= GVA_PAGE_LIMIT) {
    return HvStatus.INVALID_PARAMETER;
  }
  const t = decodeInputVtl(Number(flags >> BigInt(F.InputVtlShift)), callerVtl, p.maximumVtl);
  if (!t.ok) return t.status;
  if (t.vtl === callerVtl) return HvStatus.ACCESS_DENIED;
  if (!vp.isEnabled(t.vtl)) return HvStatus.INVALID_VTL_STATE;
  return { vp, vtl: t.vtl, flags: Number(flags & BigInt(F.Defined)), gvaPage };
}
