/**
 * The VtlCall / VtlReturn register protocol (tlfs-vsm-facts §3.4, §3.6):
 * the checks that make a call #UD, the VTL a VtlCall enters, and the fast
 * bit of a VtlReturn. The switch itself (vtl-state.ts, vp-assist.ts, MP
 * states) is the VMM's; see README.md.
 *
 * After the hypercall-page stub, a 64-bit caller has the call code in RCX
 * and the "VTL call/return control input" in RAX. For a 32-bit caller the
 * control word is EDX:EAX and hv1_emulator's 32-bit stub (mov ecx, eax;
 * mov eax, code) leaves the input in ECX.
 *
 * | Check | Result |
 * |---|---|
 * | control word ≠ the call code (any other bit set) | #UD |
 * | VtlCall: input ≠ 0 | #UD |
 * | VtlReturn: input bits 63:1 ≠ 0 | #UD |
 * | VtlCall with no enabled VTL above the active one on this VP | #UD |
 * | VtlReturn from VTL0 | #UD |
 * (CPL > 0 and real mode are #UD for every hypercall: kvm's dispatcher checks them first.)
 */
import { HV_VTL_RETURN_FAST, HvCall } from '../../spec/tlfs.js';
import { uint } from './errors.js';

/**
 * The two registers of the protocol as the CPU holds them, int32 halves (no
 * BigInt on the switch path, DESIGN §3.1): the control word (x64 RCX, x86
 * EDX:EAX) and the input (x64 RAX, x86 ECX with a zero high half).
 */
export interface VtlCallRegisters { controlLo: number; controlHi: number; inputLo: number; inputHi: number }

/** The VP as the checks see it: its active VTL and the VTLs enabled on it (bit n = VTL n). */
export interface VtlCallVp { activeVtl: number; enabledVtlSet: number }

/** The next enabled VTL above `vtl` (VtlCall never skips one, §3.4), or -1. */
export function nextHigherVtl(enabledVtlSet: number, vtl: number): number {
  uint(enabledVtlSet, 0xffff, 'enabled VTL set');
  for (let n = uint(vtl, 15, 'VTL') + 1; n < 16; n++) if (enabledVtlSet & (1 << n)) return n;
  return -1;
}

export type VtlCallCheck = { readonly ok: true; readonly targetVtl: number } | { readonly ok: false; readonly why: string };
export type VtlReturnCheck = { readonly ok: true; readonly fast: boolean } | { readonly ok: false; readonly why: string };

/** The input's fast bit (bit 0; bits 63:1 are reserved). */
const FAST = Number(HV_VTL_RETURN_FAST);
const RETURN_FAST: VtlReturnCheck = Object.freeze({ ok: true, fast: true }), RETURN_SLOW: VtlReturnCheck = Object.freeze({ ok: true, fast: false });

export function checkVtlCall(r: VtlCallRegisters, vp: VtlCallVp): VtlCallCheck {
  if (r.controlLo !== HvCall.VtlCall || r.controlHi !== 0) return { ok: false, why: 'the control word holds more than the VtlCall code' };
  if ((r.inputLo | r.inputHi) !== 0) return { ok: false, why: 'the VtlCall input is not 0' };
  const target = nextHigherVtl(vp.enabledVtlSet, vp.activeVtl);
  if (target < 0) return { ok: false, why: `no VTL above VTL${vp.activeVtl} is enabled on this VP` };
  return { ok: true, targetVtl: target };
}

/** Which lower VTL a VtlReturn enters is the VMM's record of where the VP came from (README.md). */
export function checkVtlReturn(r: VtlCallRegisters, vp: VtlCallVp): VtlReturnCheck {
  if (r.controlLo !== HvCall.VtlReturn || r.controlHi !== 0) return { ok: false, why: 'the control word holds more than the VtlReturn code' };
  if ((r.inputLo & ~FAST) !== 0 || r.inputHi !== 0) return { ok: false, why: 'VtlReturn input bits 63:1 are not 0' };
  if (uint(vp.activeVtl, 15, 'active VTL') === 0) return { ok: false, why: 'VTL0 has nothing to return to' };
  return (r.inputLo & FAST) !== 0 ? RETURN_FAST : RETURN_SLOW;
}
