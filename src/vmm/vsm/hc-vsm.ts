/**
 * The VMM's handlers for the VSM hypercalls that kvm passes up as
 * `hyperv-hcall` exits (kvm-api-facts §3.1, §3.2): EnablePartitionVtl
 * (0x0D), EnableVpVtl (0x0F), VtlCall (0x11), VtlReturn (0x12),
 * GetVpRegisters (0x50) and SetVpRegisters (0x51). kvm has already checked
 * CPL, the privilege (AccessVsm / AccessVpRegisters) and the control word
 * (not for VtlCall/VtlReturn); what is left is each call's input, its
 * rules, and the answer: `completeHypercall(result, xmm?)`, or #UD.
 *
 * Status order inside each call (tlfs-vsm-facts §1.6: prefer the status that
 * leaks least): input buffer (§1.1, hc-buffers.ts) → partition id → VP
 * index → malformed fields (INVALID_PARAMETER) → privilege (ACCESS_DENIED)
 * → state (INVALID_VTL_STATE, VTL_ALREADY_ENABLED) → values.
 *
 * EnablePartitionVtl (§2.12): partition ≠ self ⇒ INVALID_PARTITION_ID;
 * TargetVtl > 15, reserved flag bits 7:3 or bytes 10-15 ≠ 0, a flag
 * asking for shadow stacks or HVPT (VsmCapabilities offers neither), or
 * EnableMbec for a VTL outside MbecVtlMask (VTL0 is never in it) ⇒
 * INVALID_PARAMETER; a VTL above the partition's maximum ⇒ ACCESS_DENIED
 * (openhcl "unsupported target"); a VTL above the caller that the caller is
 * not the highest enabled VTL below ⇒ ACCESS_DENIED (TLFS); already enabled
 * ⇒ VTL_ALREADY_ENABLED (openhcl; the sheet's older openhcl note says
 * INVALID_VTL_STATE).
 *
 * EnableVpVtl (§2.13): partition ≠ self ⇒ INVALID_PARTITION_ID; VpIndex not
 * a VP (HV_VP_INDEX_SELF is the caller's) ⇒ INVALID_VP_INDEX; TargetVtl 0 or
 * > 15, or reserved bytes 13-15 ≠ 0 ⇒ INVALID_PARAMETER; a target VTL above
 * the caller's is allowed only to the highest enabled VTL below it, only on
 * the caller's own VP, and only before that VTL was enabled on any VP (TLFS
 * and openhcl) ⇒ else ACCESS_DENIED; VTL not enabled for the partition ⇒
 * INVALID_VTL_STATE; already enabled on that VP ⇒ VTL_ALREADY_ENABLED; a
 * context KVM_SET_SREGS refuses, or real mode ⇒ INVALID_REGISTER_VALUE
 * (initial-vp-context.ts). On success the new Vcpu is parked in
 * HV_INACTIVE_VTL: enabling does not switch VTLs.
 *
 * VtlCall / VtlReturn (§3.4): vtl-call.ts's checks, #UD when they fail
 * (raised at the VMCALL, which does not complete); otherwise the VMCALL
 * completes without a result (RIP advanced, RAX untouched) and vtl-switch.ts
 * moves the VP.
 *
 * Get/SetVpRegisters (§2.15): partition ≠ self ⇒ INVALID_PARTITION_ID
 * (TLFS; openhcl answers ACCESS_DENIED); VpIndex not a VP ⇒
 * INVALID_VP_INDEX; reserved header bytes ⇒ INVALID_PARAMETER; the input
 * VTL byte as input-vtl.ts decodes it; a target VTL not enabled on that VP
 * ⇒ INVALID_VTL_STATE; then per element register-names.ts's access check
 * and the value (register kinds below); an error at element i reports i
 * reps completed. Shared registers (scope 'vp') are read and written on
 * the VP's active Vcpu, where the live copy is. Architectural registers go
 * through vp-register-access.ts, the VSM registers through partition.ts,
 * the synthetic MSRs through the target Vcpu's MSR interface;
 * the CR intercept registers are VSM registers of a VTL ≥ 1 (cr-intercept.ts);
 * a named register none of these offers answers INVALID_PARAMETER.
 */
import { KVM_MP_STATE_HV_INACTIVE_VTL } from '../../kvm/mp-state.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import { parseHypercallControl } from '../../kvm/hyperv/hypercall-input.js';
import {
  HV_ENABLE_PARTITION_VTL_MBEC, HV_FAST_PAIR_BYTES, HV_FAST_XMM_BYTES, HV_GET_VP_REGISTERS_ELEMENT_BYTES, HV_PARTITION_ID_SELF,
  HV_REGISTER_VALUE_BYTES, HV_SET_VP_REGISTERS_ELEMENT_BYTES, HV_VP_INDEX_SELF, HvCall, HvEnablePartitionVtlInput as EP, HvEnableVpVtlInput as EV, HvMsr, HvRegisterName as N, HvStatus,
  HvModifyVtlProtectionMaskInput as MP, HvVpRegistersInput as VR, HvVtlEntryReason,
} from '../../spec/tlfs.js';
import { ACCESS_WRITE } from '../../x86/host.js';
import { UD } from '../../x86/regs.js';
import { VsmError } from './errors.js';
import { allZero, answer, checkBuffer, hi32, lo32, readInput, view, type Call, type HcallExit } from './hc-call.js';
import { VP_HYPERCALLS, getVpIndexFromApicId, sendSyntheticClusterIpi, startVirtualProcessor } from './hc-vp.js';
import { planProtection } from './modify-vtl-protection-mask.js';
import { handleTranslateVirtualAddress } from './hc-translate.js';
import { loadInitialVpContext } from './initial-vp-context.js';
import { decodeInputVtl } from './input-vtl.js';
import type { VsmPartition, VsmVp } from './partition.js';
import { checkRegisterAccess, registerInfo } from './register-names.js';
import { decodeRegisterValue, encodeRegisterValue } from './register-value.js';
import { isArchRegister, readArchRegister, writeArchRegister } from './vp-register-access.js';
import { checkVtlCall, checkVtlReturn, type VtlCallRegisters } from './vtl-call.js';
import { enterHigherVtl, returnToLowerVtl } from './vtl-switch.js';

/** The calls this module answers; the machine answers the others. */
export const VSM_HYPERCALLS: ReadonlySet<number> = new Set([
  HvCall.EnablePartitionVtl, HvCall.EnableVpVtl, HvCall.VtlCall, HvCall.VtlReturn, HvCall.GetVpRegisters, HvCall.SetVpRegisters,
  HvCall.ModifyVtlProtectionMask, HvCall.TranslateVirtualAddress, HvCall.TranslateVirtualAddressEx, ...VP_HYPERCALLS,
]);

/**
 * Handles `exit` of `vcpu` if it is one of VSM_HYPERCALLS: answers it (or
 * raises #UD) and returns true; returns false for other calls.
 */
export function handleVsmHypercall(p: VsmPartition, vcpu: Vcpu, exit: HcallExit): boolean {
  const code = exit.code;
  if (!VSM_HYPERCALLS.has(code)) return false;
  const where = p.locate(vcpu);
  if (where === undefined) throw new VsmError(`vCPU ${vcpu.id} made a VSM hypercall but belongs to no VTL of this partition`);
  if (where.vtl !== where.vp.activeVtl) throw new VsmError(`vCPU ${vcpu.id} of VTL${where.vtl} ran while VP ${where.vp.index} is in VTL${where.vp.activeVtl}`);
  // VtlCall and VtlReturn, the hot pair (every switch), check the raw control word themselves (vtl-call.ts).
  if (code === HvCall.VtlCall || code === HvCall.VtlReturn) {
    const s: SwitchCall = { p, vcpu, vp: where.vp, vtl: where.vtl, exit, long: exit.longMode };
    if (code === HvCall.VtlCall) vtlCall(s); else vtlReturn(s);
    return true;
  }
  const control = parseHypercallControl(exit.input);
  const c: Call = { p, vcpu, vp: where.vp, vtl: where.vtl, exit, control, long: exit.longMode };
  switch (code) {
    case HvCall.EnablePartitionVtl: answer(c, enablePartitionVtl(c)); break;
    case HvCall.EnableVpVtl: answer(c, enableVpVtl(c)); break;
    case HvCall.GetVpRegisters: getVpRegisters(c); break;
    case HvCall.ModifyVtlProtectionMask: modifyVtlProtectionMask(c); break;
    case HvCall.TranslateVirtualAddress: case HvCall.TranslateVirtualAddressEx:
      handleTranslateVirtualAddress(p, vcpu, c.vp, c.vtl, exit, { lockTlb: (vpIndex, lower, holder) => p.lockTlb(p.vps[vpIndex]!, holder, lower) });
      break;
    case HvCall.StartVirtualProcessor: startVirtualProcessor(c); break;
    case HvCall.GetVpIndexFromApicId: getVpIndexFromApicId(c); break;
    case HvCall.SendSyntheticClusterIpi: case HvCall.SendSyntheticClusterIpiEx: sendSyntheticClusterIpi(c); break;
    default: setVpRegisters(c); break;
  }
  return true;
}


/**
 * Raises #UD at the VMCALL of a refused VtlCall/VtlReturn the way a VMM
 * does, with KVM_GET/SET_VCPU_EVENTS: the injected exception is delivered
 * at the next run() before any instruction. The exit is left unanswered, so
 * RIP stays on the VMCALL, as a fault's RIP must.
 */
function raiseUndefinedOpcode(vcpu: Vcpu): void {
  const events = vcpu.getVcpuEvents();
  vcpu.setVcpuEvents({ ...events, exception: { injected: 1, nr: UD, hasErrorCode: 0, pending: 0, errorCode: 0 } });
}

/** The highest VTL of `set` below `vtl` (VTL0 is always in it). */
function highestEnabledBelow(set: number, vtl: number): number {
  for (let n = vtl - 1; n > 0; n--) if (set & (1 << n)) return n;
  return 0;
}

// ---------------------------------------------------------------- EnablePartitionVtl, EnableVpVtl

function enablePartitionVtl(c: Call): number {
  const input = readInput(c, EP.Bytes);
  if (typeof input === 'number') return input;
  const dv = view(input);
  if (dv.getBigUint64(EP.PartitionId, true) !== HV_PARTITION_ID_SELF) return HvStatus.INVALID_PARTITION_ID;
  const vtl = dv.getUint8(EP.TargetVtl), flags = dv.getUint8(EP.Flags);
  const p = c.p;
  // Bits 7:3 are reserved, and VsmCapabilities offers no shadow stacks and no HVPT: only EnableMbec, for a VTL in MbecVtlMask.
  const offered = vtl <= 15 && (p.capabilities.mbecVtlMask & (1 << vtl)) !== 0 ? HV_ENABLE_PARTITION_VTL_MBEC : 0;
  if (vtl > 15 || (flags & ~offered) !== 0 || !allZero(input.subarray(EP.Reserved, EP.Bytes))) {
    return HvStatus.INVALID_PARAMETER;
  }
  if (vtl > p.maximumVtl) return HvStatus.ACCESS_DENIED;
  if (vtl > c.vtl && highestEnabledBelow(p.enabledVtlSet, vtl) !== c.vtl) return HvStatus.ACCESS_DENIED;
  if (p.isPartitionVtlEnabled(vtl)) return HvStatus.VTL_ALREADY_ENABLED;
  p.enablePartitionVtl(vtl, (flags & HV_ENABLE_PARTITION_VTL_MBEC) !== 0);
  return HvStatus.SUCCESS;
}

function enableVpVtl(c: Call): number {
  const input = readInput(c, EV.Bytes);
  if (typeof input === 'number') return input;
  const dv = view(input), p = c.p;
  if (dv.getBigUint64(EV.PartitionId, true) !== HV_PARTITION_ID_SELF) return HvStatus.INVALID_PARTITION_ID;
  const index = dv.getUint32(EV.VpIndex, true);
  const vp = index === HV_VP_INDEX_SELF ? c.vp : p.vps[index];
  if (vp === undefined) return HvStatus.INVALID_VP_INDEX;
  const vtl = dv.getUint8(EV.TargetVtl);
  if (vtl === 0 || vtl > 15 || !allZero(input.subarray(EV.Reserved, EV.VpContext))) return HvStatus.INVALID_PARAMETER;
  if (vtl > c.vtl
    && (highestEnabledBelow(p.enabledVtlSet, vtl) !== c.vtl || vp !== c.vp || (p.enabledOnAnyVp & (1 << vtl)) !== 0)) {
    return HvStatus.ACCESS_DENIED;
  }
  if (!p.isPartitionVtlEnabled(vtl)) return HvStatus.INVALID_VTL_STATE;
  if (vp.isEnabled(vtl)) return HvStatus.VTL_ALREADY_ENABLED;
  const vcpu = p.vcpuForVpVtl(vp, vtl);
  const status = loadInitialVpContext(vcpu, input.subarray(EV.VpContext), vtl, { dr6Shared: p.capabilities.dr6Shared });
  if (status !== HvStatus.SUCCESS) return status;
  vcpu.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  p.commitVpVtl(vp, vtl);
  return HvStatus.SUCCESS;
}

// ---------------------------------------------------------------- VtlCall, VtlReturn

/** kvm's GPR numbers (vcpu-sync-regs.ts). */
const RAX = 0, RCX = 1;

/** A VtlCall / VtlReturn exit: a Call without the parsed control word. */
type SwitchCall = Omit<Call, 'control'>;

/** The VtlCall/VtlReturn registers after the hypercall-page stub (vtl-call.ts): control word, and the input in RAX (ECX for 32-bit). */
function vtlRegisters(c: SwitchCall): VtlCallRegisters {
  const r = c.vcpu.syncRegs, e = c.exit;
  return c.long
    ? { controlLo: e.inputLo, controlHi: e.inputHi, inputLo: r.gprLo(RAX), inputHi: r.gprHi(RAX) }
    : { controlLo: e.inputLo, controlHi: e.inputHi, inputLo: r.gprLo(RCX), inputHi: 0 };
}

function vtlCall(c: SwitchCall): void {
  const check = checkVtlCall(vtlRegisters(c), c.vp);
  if (!check.ok) { traceRefusal(c, check.why); raiseUndefinedOpcode(c.vcpu); return; }
  c.vcpu.completeHypercall(0n); // no result (kvm §3.1 step 2)
  enterHigherVtl(c.p, c.vp, check.targetVtl, HvVtlEntryReason.VtlCall, c.long);
  applyCompletion(c.vcpu);
}

function vtlReturn(c: SwitchCall): void {
  const check = checkVtlReturn(vtlRegisters(c), c.vp);
  if (!check.ok) { traceRefusal(c, check.why); raiseUndefinedOpcode(c.vcpu); return; }
  c.vcpu.completeHypercall(0n);
  returnToLowerVtl(c.p, c.vp, check.fast);
  applyCompletion(c.vcpu);
}

/**
 * The TLFS advances the caller's RIP past the VMCALL before the switch
 * (§3.4), so the other VTL must see it there (GetVpRegisters of the lower
 * VTL's RIP, SetVpRegisters of it). kvm applies a completion at the start
 * of the next KVM_RUN, also for a vCPU parked in HV_INACTIVE_VTL (kvm §3.1,
 * §3.3): a KVM_RUN with immediate_exit does exactly that and enters nothing.
 */
function applyCompletion(parked: Vcpu): void {
  parked.runImmediateExit();
}

function traceRefusal(c: SwitchCall, why: string): void {
  c.vcpu.vm.trace?.emit('vsm_vtl_switch_ud', c.vcpu.id, c.vcpu.nowNs(), { code: c.exit.code, why });
}

// ---------------------------------------------------------------- Get/SetVpRegisters

/** Header checks shared by both calls: the target VP and VTL, or the status. */
function vpRegistersTarget(c: Call, input: Uint8Array): { vp: VsmVp; vtl: number } | number {
  const dv = view(input), p = c.p;
  if (dv.getBigUint64(VR.PartitionId, true) !== HV_PARTITION_ID_SELF) return HvStatus.INVALID_PARTITION_ID;
  const index = dv.getUint32(VR.VpIndex, true);
  const vp = index === HV_VP_INDEX_SELF ? c.vp : p.vps[index];
  if (vp === undefined) return HvStatus.INVALID_VP_INDEX;
  if (!allZero(input.subarray(VR.Reserved, VR.HeaderBytes))) return HvStatus.INVALID_PARAMETER;
  const t = decodeInputVtl(dv.getUint8(VR.TargetVtl), c.vtl, p.maximumVtl);
  if (!t.ok) return t.status;
  if (!vp.isEnabled(t.vtl)) return HvStatus.INVALID_VTL_STATE;
  return { vp, vtl: t.vtl };
}

/** The synthetic MSR behind a synthetic register name, if it is one. */
function syntheticMsr(name: number): number | undefined {
  switch (name) {
    case N.Hypercall: return HvMsr.HYPERCALL;
    case N.GuestOsId: return HvMsr.GUEST_OS_ID;
    case N.VpIndex: return HvMsr.VP_INDEX;
    case N.TimeRefCount: return HvMsr.TIME_REF_COUNT;
    case N.VpAssistPage: return HvMsr.VP_ASSIST_PAGE;
    case N.ReferenceTsc: return HvMsr.REFERENCE_TSC;
    case N.Scontrol: return HvMsr.SCONTROL;
    case N.Sversion: return HvMsr.SVERSION;
    case N.Sifp: return HvMsr.SIEFP;
    case N.Sipp: return HvMsr.SIMP;
    case N.Eom: return HvMsr.EOM;
    case N.Sirbp: return HvMsr.SIRBP;
    default:
      if (name >= N.Sint0 && name <= N.Sint15) return HvMsr.SINT0 + (name - N.Sint0);
      if (name >= N.Stimer0Config && name <= N.Stimer3Count) return HvMsr.STIMER0_CONFIG + (name - N.Stimer0Config);
      return undefined;
  }
}

/** The Vcpu holding register `name` of (vp, vtl): the active one for shared registers. */
function holder(vp: VsmVp, vtl: number, name: number): Vcpu {
  return registerInfo(name)!.scope === 'vp' ? vp.active : vp.vcpus[vtl]!;
}

function readRegister(c: Call, vp: VsmVp, vtl: number, name: number): Uint8Array | number {
  const s = checkRegisterAccess(name, 'get', vtl);
  if (s !== HvStatus.SUCCESS) return s;
  const v = holder(vp, vtl, name);
  if (isArchRegister(name)) return encodeRegisterValue(readArchRegister(v, name));
  const u64 = (value: bigint) => encodeRegisterValue({ kind: 'u64', value });
  const vsm = c.p.readVsmRegister(name, vp, vtl, c.long);
  if (vsm !== undefined) return u64(vsm);
  const msr = syntheticMsr(name);
  if (msr === undefined) return HvStatus.INVALID_PARAMETER; // named, but not offered (see the file comment)
  if (registerInfo(name)!.access === 'wo') return u64(0n); // write-only registers read as 0 (register-names.ts)
  const out = new Int32Array(2);
  if (!v.rdmsr(msr, out)) return HvStatus.INVALID_PARAMETER; // not available to this partition
  return u64((BigInt(out[1] >>> 0) << 32n) | BigInt(out[0] >>> 0));
}

function writeRegister(c: Call, vp: VsmVp, vtl: number, name: number, bytes: Uint8Array): number {
  const s = checkRegisterAccess(name, 'set', vtl);
  if (s !== HvStatus.SUCCESS) return s;
  const info = registerInfo(name)!;
  const value = decodeRegisterValue(info.kind, bytes);
  if (value === null) return HvStatus.INVALID_REGISTER_VALUE;
  const v = holder(vp, vtl, name);
  if (isArchRegister(name)) {
    vp.leftLong[vtl] = undefined; // its mode may change (vtl-switch.ts)
    return writeArchRegister(v, name, value);
  }
  const u64 = value.kind === 'u64' ? value.value : 0n;
  const vsm = c.p.writeVsmRegister(name, vp, vtl, u64);
  if (vsm !== undefined) return vsm;
  const msr = syntheticMsr(name);
  if (msr === undefined || !v.vm.hyperv!.features.msrAllowed(msr)) return HvStatus.INVALID_PARAMETER;
  return v.wrmsr(msr, Number(u64 & 0xffffffffn) | 0, Number(u64 >> 32n) | 0) ? HvStatus.SUCCESS : HvStatus.INVALID_REGISTER_VALUE;
}

function getVpRegisters(c: Call): void {
  const { repCount: n, repStart: start, fast } = c.control;
  const inLen = VR.HeaderBytes + HV_GET_VP_REGISTERS_ELEMENT_BYTES * n;
  const input = readInput(c, inLen);
  if (typeof input === 'number') { answer(c, input, start); return; }
  // Output: the list at R8 (slow), or the register pairs after the input (fast, §1.3).
  const outPair = Math.ceil(inLen / HV_FAST_PAIR_BYTES);
  const [, r8] = c.exit.params;
  if (fast) {
    if ((outPair + n) * HV_FAST_PAIR_BYTES > HV_FAST_XMM_BYTES || !c.long) { answer(c, HvStatus.INVALID_HYPERCALL_INPUT, start); return; }
  } else {
    const s = checkBuffer(c, lo32(r8), hi32(r8), HV_REGISTER_VALUE_BYTES * n, ACCESS_WRITE);
    if (s !== HvStatus.SUCCESS) { answer(c, s, start); return; }
  }
  const target = vpRegistersTarget(c, input);
  if (typeof target === 'number') { answer(c, target, start); return; }
  const dv = view(input);
  const xmm = c.exit.xmm.map((x) => ({ low: x.low, high: x.high }));
  let status: number = HvStatus.SUCCESS, i = start;
  for (; i < n; i++) {
    const v = readRegister(c, target.vp, target.vtl, dv.getUint32(VR.HeaderBytes + HV_GET_VP_REGISTERS_ELEMENT_BYTES * i, true));
    if (typeof v === 'number') { status = v; break; }
    if (fast) {
      const o = view(v);
      xmm[outPair + i - 1] = { low: o.getBigUint64(0, true), high: o.getBigUint64(8, true) };
    } else {
      c.vcpu.vm.mem.write(Number(r8) + HV_REGISTER_VALUE_BYTES * i, v);
    }
  }
  answer(c, status, i, fast ? xmm : undefined);
}

function setVpRegisters(c: Call): void {
  const { repCount: n, repStart: start } = c.control;
  const input = readInput(c, VR.HeaderBytes + HV_SET_VP_REGISTERS_ELEMENT_BYTES * n);
  if (typeof input === 'number') { answer(c, input, start); return; }
  const target = vpRegistersTarget(c, input);
  if (typeof target === 'number') { answer(c, target, start); return; }
  const dv = view(input);
  let status: number = HvStatus.SUCCESS, i = start;
  for (; i < n; i++) {
    const at = VR.HeaderBytes + HV_SET_VP_REGISTERS_ELEMENT_BYTES * i;
    // Element: name u32 @0, RsvdZ 12 bytes @4, value 16 bytes @16 (§2.15).
    status = allZero(input.subarray(at + 4, at + 16))
      ? writeRegister(c, target.vp, target.vtl, dv.getUint32(at, true), input.slice(at + 16, at + 32))
      : HvStatus.INVALID_PARAMETER;
    if (status !== HvStatus.SUCCESS) break;
  }
  answer(c, status, i);
}

// ---------------------------------------------------------------- ModifyVtlProtectionMask

/**
 * Every rep in one execution (a VMM may complete any number, §1.2): the
 * checks and the pages are modify-vtl-protection-mask.ts's; runs of
 * consecutive pages become one protection each (protections.ts), so a
 * large contiguous list costs a few attribute changes, not one per page.
 */
function modifyVtlProtectionMask(c: Call): void {
  const { repCount: n, repStart: start } = c.control;
  const input = readInput(c, MP.HeaderBytes + MP.ElementBytes * n);
  if (typeof input === 'number') { answer(c, input, start); return; }
  const dv = view(input), p = c.p, mem = c.vcpu.vm.mem;
  const elements: bigint[] = [];
  for (let i = start; i < n; i++) elements.push(dv.getBigUint64(MP.HeaderBytes + MP.ElementBytes * i, true));
  const plan = planProtection(input.subarray(0, MP.HeaderBytes), elements, start, {
    callerVtl: c.vtl, maximumVtl: p.maximumVtl, isVtlEnabled: (vtl) => p.isPartitionVtlEnabled(vtl),
    isProtectionEnabled: (vtl) => p.isProtectionEnabled(vtl), isMbecEnabled: (vtl) => p.isMbecEnabled(vtl), isRam: (gpa) => mem.isRam(gpa),
  });
  const req = plan.request, pages = plan.pages;
  for (let k = 0; k < pages.length && req !== null;) {
    let e = k + 1;
    while (e < pages.length && pages[e] === pages[e - 1] + 1) e++;
    p.protections.protect(req.targetVtl, pages[k], pages[e - 1] + 1, req.mask);
    k = e;
  }
  answer(c, plan.status, plan.repsCompleted);
}
