/**
 * HvCallSendSyntheticClusterIpi (0x000B) and HvCallSendSyntheticClusterIpiEx
 * (0x0015, VP set as the variable header): fact sheet §2.5, §2.6, §2.11.
 * A fixed, edge-triggered interrupt for each target's local APIC (no NMI),
 * delivered in VP index order; VPs that do not exist are ignored (KVM).
 *
 * Checks, in this order: Flags ≠ 0 or Reserved ≠ 0 ⇒ INVALID_PARAMETER
 * (openhcl); the HV_INPUT_VTL byte (below); a malformed VP set (Ex) ⇒
 * INVALID_PARAMETER; a vector outside 0x10..0xFF ⇒ INVALID_PARAMETER
 * (TLFS range; KVM answers INVALID_HYPERCALL_INPUT here). An empty set is
 * a successful call that interrupts nobody.
 *
 * Target VTL: kvm knows nothing of VTLs beyond "this call names one".
 * RsvdZ bits 7:5 ⇒ INVALID_PARAMETER. With AccessVsm exposed, a call that
 * names a target VTL (UseTargetVtl, whatever the VTL) goes to the VMM as a
 * 'hyperv-hcall' exit (kvm-api-facts §3.2: VSM is the VMM's business);
 * Flags and Reserved are checked before, so the fast form's RDX carries the
 * HV_INPUT_VTL byte in bits 39:32 and must be 0 from bit 40 up (the VSM
 * series' moved reserved-bit check). Without AccessVsm only VTL0 exists
 * and the caller is in it: naming VTL0 is fine, VTL1 (an implemented VTL
 * above the caller's) is ACCESS_DENIED, VTL2..15 (not implemented)
 * INVALID_PARAMETER (§2.11).
 */
import {
  HV_INPUT_VTL_RESERVED,
  HV_INPUT_VTL_TARGET_MASK,
  HV_INPUT_VTL_USE_TARGET,
  HV_IPI_HIGH_VECTOR,
  HV_IPI_LOW_VECTOR,
  HV_MAX_IMPLEMENTED_VTL,
  HvIpiInput,
  HvStatus,
} from '../../spec/tlfs.js';
import { HC_TO_VMM, type HcCall } from './hc-call.js';
import { VpSet } from './vp-set.js';

function checkTargetVtl(call: HcCall): number {
  const vtl = call.input.u8(HvIpiInput.TargetVtl);
  if ((vtl & HV_INPUT_VTL_RESERVED) !== 0) return HvStatus.INVALID_PARAMETER;
  if ((vtl & HV_INPUT_VTL_USE_TARGET) === 0) return HvStatus.SUCCESS;
  if (call.vcpu.hv!.partition.features.has('AccessVsm')) return HC_TO_VMM;
  const target = vtl & HV_INPUT_VTL_TARGET_MASK;
  if (target === 0) return HvStatus.SUCCESS;
  return target <= HV_MAX_IMPLEMENTED_VTL ? HvStatus.ACCESS_DENIED : HvStatus.INVALID_PARAMETER;
}

function sendIpi(call: HcCall, ex: boolean): number {
  const inp = call.input, v = call.vcpu;
  if (inp.u8(HvIpiInput.Flags) !== 0 || inp.u16(HvIpiInput.Reserved) !== 0) return HvStatus.INVALID_PARAMETER;
  const vtl = checkTargetVtl(call);
  if (vtl !== HvStatus.SUCCESS) return vtl;
  let set: VpSet;
  if (ex) {
    const parsed = VpSet.parse(inp, HvIpiInput.VpSet, call.varHeaderQwords);
    if (typeof parsed === 'number') return parsed;
    set = parsed;
  } else {
    set = VpSet.fromMask(inp.lo(HvIpiInput.ProcessorMask), inp.hi(HvIpiInput.ProcessorMask));
  }
  const vector = inp.u32(HvIpiInput.Vector);
  const t = v.vm.trace;
  if (t !== null) {
    t.emit(ex ? 'kvm_hv_send_ipi_ex' : 'kvm_hv_send_ipi', v.id, v.nowNs(), ex
      ? { vector, format: inp.u64(HvIpiInput.VpSet).toString(16), valid_bank_mask: inp.u64(HvIpiInput.VpSet + 8).toString(16) }
      : { vector, processor_mask: inp.u64(HvIpiInput.ProcessorMask).toString(16) });
  }
  if (vector < HV_IPI_LOW_VECTOR || vector > HV_IPI_HIGH_VECTOR) return HvStatus.INVALID_PARAMETER;
  for (const target of set.select(v.vm.vcpus)) target.apic.acceptFixed(vector);
  return HvStatus.SUCCESS;
}

export const sendSyntheticClusterIpi = (call: HcCall): number => sendIpi(call, false);
export const sendSyntheticClusterIpiEx = (call: HcCall): number => sendIpi(call, true);
