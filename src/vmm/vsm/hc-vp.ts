/**
 * The VMM's handlers of the VP-level VSM hypercalls that kvm passes up as
 * `hyperv-hcall` exits (kvm-api-facts §3.1, §3.2): StartVirtualProcessor
 * (0x99), GetVpIndexFromApicId (0x9A, rep) and SendSyntheticClusterIpi(Ex)
 * (0x0B / 0x15) when the input names a target VTL (kvm delivers the others
 * itself). hc-vsm.ts calls them with its per-exit context (`Call` has
 * its shape); each handler answers the exit with `completeHypercall`. kvm has
 * checked CPL, the privilege (StartVirtualProcessor, or the PV IPI
 * recommendation) and the control word.
 *
 * Status order, as in hc-vsm.ts (tlfs-vsm-facts §1.6: prefer the status that
 * leaks least): input buffer (§1.1) → output buffer → partition id → VP index
 * → malformed fields (INVALID_PARAMETER) → privilege (ACCESS_DENIED) → state
 * (INVALID_VTL_STATE, INVALID_VP_STATE) → values.
 *
 * StartVirtualProcessor (§2.14, the EnableVpVtl layout of §2.13): fast ⇒
 * INVALID_HYPERCALL_INPUT (240 bytes fit no registers); partition ≠ self ⇒
 * INVALID_PARTITION_ID; VpIndex not a VP, or the caller's own VP ⇒
 * INVALID_VP_INDEX (openhcl; HV_VP_INDEX_SELF is therefore refused too);
 * TargetVtl > 15 or reserved bytes 13-15 ≠ 0 ⇒ INVALID_PARAMETER; a target
 * VTL above the caller's, or a VTL above the caller that set
 * DenyLowerVtlStartup or InterceptVpStartup in its VsmPartitionConfig ⇒
 * ACCESS_DENIED (§3.7; the intercept is not built, so the start is refused
 * rather than let through); VTL not enabled for the partition ⇒
 * INVALID_VTL_STATE; VTL not enabled on that VP, or that (VP, VTL) may not
 * start (below) ⇒ INVALID_VP_STATE; a context KVM_SET_SREGS refuses, or real
 * mode above VTL0 ⇒ INVALID_REGISTER_VALUE (initial-vp-context.ts), nothing
 * changed. Then `startVp` starts the VP in that VTL.
 *
 * What "started" means (§2.14 "VP already running", §3.10 "INIT / SIPI
 * targeted at a lower VTL when a higher VTL is enabled on that VP: dropped;
 * use HvCallStartVirtualProcessor"): it is kept per (VP, VTL). VTL0 has
 * started once StartVirtualProcessor started it or its Vcpu left
 * wait-for-SIPI (the BSP; an AP that got its SIPI before a higher VTL was
 * enabled on it: from then on the partition blocks INIT/SIPI on the VP's
 * lower VTLs, partition.ts). A VTL above 0 has started once
 * StartVirtualProcessor started it there. A VP that has not started in any
 * VTL may be started in any VTL enabled on it. A VP started in a higher VTL
 * leaves its VTL0 waiting, and the SIPI that would end that wait is dropped;
 * so its VTL0 is started once more, with StartVirtualProcessor(target VTL0)
 * from another VP (VTL0 or above): if the VP is in VTL0 at that moment its
 * VTL0 runs the context at once, otherwise it is what the VP resumes when it
 * returns to VTL0. A higher VTL is never started on a VP that has started:
 * there it is entered through VtlCall or an interrupt. So INVALID_VP_STATE
 * for an enabled VTL means that (VP, VTL) has started, or, for a VTL above 0,
 * that the VP has.
 *
 * GetVpIndexFromApicId (§2.17, rep; §1.2, §1.3): input header 16 bytes, then
 * u32 APIC IDs; output u32 VP indexes at R8 or, fast, in the register pairs
 * after the input (XMM output, kvm §3.1: kvm copies them back on success).
 * A buffer error reports the rep start as reps completed. Partition ≠ self
 * ⇒ INVALID_PARTITION_ID; padding bytes 9-15 ≠ 0 ⇒ INVALID_PARAMETER; the
 * HV_INPUT_VTL byte (input-vtl.ts: INVALID_PARAMETER or ACCESS_DENIED); its
 * VTL not enabled for the partition ⇒ INVALID_VTL_STATE; an APIC ID no VP
 * has ⇒ INVALID_PARAMETER with reps completed = that element's index
 * (openhcl, §1.2). The APIC IDs are those of the target VTL's Vcpus; a VP
 * the target VTL is not enabled on yet answers with its VTL0 Vcpu's (every
 * VTL's APIC of a VP has the VP's APIC ID, and a higher VTL looks the VP up
 * before it enables itself there: Linux's VTL bring-up does exactly that).
 *
 * SendSyntheticClusterIpi(Ex) with a target VTL (§2.5, §2.6, §2.11), the
 * order of kvm's hc-ipi.ts: Flags or Reserved ≠ 0 ⇒ INVALID_PARAMETER; the
 * HV_INPUT_VTL byte (input-vtl.ts; above the caller ⇒ ACCESS_DENIED,
 * openhcl); its VTL not enabled for the partition ⇒ INVALID_VTL_STATE; a
 * malformed VP set (Ex) ⇒ INVALID_PARAMETER; vector outside 0x10..0xFF ⇒
 * INVALID_PARAMETER. The fixed interrupt goes to the local APIC of the
 * target VTL's Vcpu of each VP in the set, in VP index order; VPs that do
 * not exist or have not enabled that VTL are skipped (as kvm skips VPs that
 * do not exist). Whether the interrupt preempts the VP's active VTL is the
 * scheduler's rule (§3.10, machine.ts).
 */
import { KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_RUNNABLE } from '../../kvm/mp-state.js';
import type { XmmRegister } from '../../kvm/vcpu-regs.js';
import { HcInput } from '../../kvm/hyperv/hc-input.js';
import { VpSet } from '../../kvm/hyperv/vp-set.js';
import {
  HV_FAST_PAIR_BYTES, HV_FAST_XMM_BYTES, HV_GET_VP_INDEX_FROM_APIC_ID_OUTPUT_BYTES, HV_HYPERCALL_XMM_REGISTERS,
  HV_IPI_HIGH_VECTOR, HV_IPI_LOW_VECTOR, HV_NUM_VTLS, HV_PARTITION_ID_SELF, HvCall, HvEnableVpVtlInput as SV,
  HvGetVpIndexFromApicIdInput as GI, HvIpiInput, HvRegisterName as N, HvStatus,
} from '../../spec/tlfs.js';
import { ACCESS_WRITE } from '../../x86/host.js';
import { VsmError } from './errors.js';
import { allZero, answer, checkBuffer, fastBlock, hi32, lo32, readInput, view, type Call } from './hc-call.js';
import { loadInitialVpContext } from './initial-vp-context.js';
import { decodeInputVtl } from './input-vtl.js';
import type { VsmPartition, VsmVp } from './partition.js';
import { decodePartitionConfig } from './vsm-registers.js';

/** The calls this module answers. */
export const VP_HYPERCALLS: ReadonlySet<number> = new Set([
  HvCall.StartVirtualProcessor, HvCall.GetVpIndexFromApicId, HvCall.SendSyntheticClusterIpi, HvCall.SendSyntheticClusterIpiEx,
]);


/** XMM0..XMM5 as they stand in a fast register block (the answer's XMM output). */
function xmmOf(block: Uint8Array): XmmRegister[] {
  const dv = view(block), out: XmmRegister[] = [];
  for (let k = 1; k <= HV_HYPERCALL_XMM_REGISTERS; k++) {
    out.push({ low: dv.getBigUint64(HV_FAST_PAIR_BYTES * k, true), high: dv.getBigUint64(HV_FAST_PAIR_BYTES * k + 8, true) });
  }
  return out;
}

// ---------------------------------------------------------------- starting a VP (§2.14)

/** VTL0 of `vp` waits for its start: in wait-for-SIPI, or parked to resume that wait. */
function vtl0WaitsForStart(vp: VsmVp): boolean {
  const state = vp.activeVtl === 0 ? vp.vcpus[0]!.getMpState() : vp.resumeMpState[0];
  return state === KVM_MP_STATE_INIT_RECEIVED;
}

/**
 * Whether VTL `vtl` of `vp` has started (file comment): StartVirtualProcessor
 * started it, or, for VTL0, its Vcpu no longer waits for a SIPI.
 */
export function vtlHasStarted(vp: VsmVp, vtl: number): boolean {
  if ((vp.startedVtls & (1 << vtl)) !== 0) return true;
  return vtl === 0 && !vtl0WaitsForStart(vp);
}

/**
 * Whether `vp` has started in any VTL. The scheduler must not let an
 * interrupt enter a higher VTL of a VP that has not started.
 */
export function vpHasStarted(vp: VsmVp): boolean {
  return vp.startedVtls !== 0 || !vtl0WaitsForStart(vp);
}

/** Whether StartVirtualProcessor may start `vp` in `vtl`: enabled there, and VTL0 not started yet, or for a higher VTL the VP not started at all. */
export function canStartVtl(vp: VsmVp, vtl: number): boolean {
  if (vp.vcpus[vtl] === undefined || !vp.isEnabled(vtl)) return false;
  return vtl === 0 ? !vtlHasStarted(vp, 0) : !vpHasStarted(vp);
}

/**
 * Starts `vp` in `vtl` (canStartVtl; its Vcpu of that VTL already holds the
 * initial context).
 * - VTL0 of a VP in VTL0 becomes RUNNABLE. VTL0 of a VP in a higher VTL stays
 *   parked and resumes RUNNABLE, running the context, when the VP returns to it.
 * - A higher VTL: the VP's bookkeeping is that of enterHigherVtl
 *   (vtl-switch.ts) without a switch: no shared state is copied (there is no
 *   running VTL to copy from) and no entry reason is written (it is no
 *   entry); VTL0 is parked remembering that it waits for its start, so a
 *   VtlReturn puts it back into that wait, and the return stack holds VTL0
 *   alone. VTLs in between stay parked as EnableVpVtl left them.
 */
export function startVp(vp: VsmVp, vtl: number): void {
  const target = vp.vcpus[vtl];
  if (target === undefined || !vp.isEnabled(vtl)) throw new VsmError(`VP ${vp.index} cannot start in VTL${vtl}: it is not enabled there`);
  if (!canStartVtl(vp, vtl)) throw new VsmError(`VP ${vp.index} cannot start in VTL${vtl}: ${vtl === 0 ? 'its VTL0' : 'the VP'} has already started`);
  vp.startedVtls |= 1 << vtl;
  target.vm.trace?.emit('vsm_start_vp', target.id, target.nowNs(), { vp: vp.index, vtl });
  if (vtl === 0 && vp.activeVtl !== 0) {
    vp.resumeMpState[0] = KVM_MP_STATE_RUNNABLE;
    return;
  }
  if (vtl > 0) {
    const vtl0 = vp.vcpus[0]!;
    vp.resumeMpState[0] = vtl0.getMpState();
    vtl0.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
    vp.returnStack.push(0);
    vp.activeVtl = vtl;
  }
  target.setMpState(KVM_MP_STATE_RUNNABLE);
}

/** A VTL above `callerVtl` forbids lower VTLs to start VPs (DenyLowerVtlStartup), or wants to intercept it (InterceptVpStartup, §3.7). */
function lowerVtlStartupBlocked(p: VsmPartition, vp: VsmVp, callerVtl: number): boolean {
  for (let h = callerVtl + 1; h <= p.maximumVtl; h++) {
    if (!p.isPartitionVtlEnabled(h)) continue;
    const config = decodePartitionConfig(p.readVsmRegister(N.VsmPartitionConfig, vp, h, true) ?? 0n);
    if (config.denyLowerVtlStartup || config.interceptVpStartup) return true;
  }
  return false;
}

function startVirtualProcessorStatus(c: Call): number {
  const input = readInput(c, SV.Bytes);
  if (typeof input === 'number') return input;
  const dv = view(input), p = c.p;
  if (dv.getBigUint64(SV.PartitionId, true) !== HV_PARTITION_ID_SELF) return HvStatus.INVALID_PARTITION_ID;
  const vp = p.vps[dv.getUint32(SV.VpIndex, true)];
  if (vp === undefined || vp === c.vp) return HvStatus.INVALID_VP_INDEX;
  const vtl = dv.getUint8(SV.TargetVtl);
  if (vtl >= HV_NUM_VTLS || !allZero(input.subarray(SV.Reserved, SV.VpContext))) return HvStatus.INVALID_PARAMETER;
  if (vtl > c.vtl || lowerVtlStartupBlocked(p, c.vp, c.vtl)) return HvStatus.ACCESS_DENIED;
  if (!p.isPartitionVtlEnabled(vtl)) return HvStatus.INVALID_VTL_STATE;
  if (!canStartVtl(vp, vtl)) return HvStatus.INVALID_VP_STATE;
  const status = loadInitialVpContext(vp.vcpus[vtl]!, input.subarray(SV.VpContext), vtl, { dr6Shared: p.capabilities.dr6Shared });
  if (status !== HvStatus.SUCCESS) return status;
  startVp(vp, vtl);
  return HvStatus.SUCCESS;
}

export function startVirtualProcessor(c: Call): void {
  answer(c, startVirtualProcessorStatus(c));
}

// ---------------------------------------------------------------- GetVpIndexFromApicId (§2.17)

/** The target VTL of the header, or the status that refuses the header. */
function apicLookupVtl(c: Call, input: Uint8Array): number | { vtl: number } {
  const dv = view(input);
  if (dv.getBigUint64(GI.PartitionId, true) !== HV_PARTITION_ID_SELF) return HvStatus.INVALID_PARTITION_ID;
  if (!allZero(input.subarray(GI.Reserved, GI.HeaderBytes))) return HvStatus.INVALID_PARAMETER;
  const t = decodeInputVtl(dv.getUint8(GI.TargetVtl), c.vtl, c.p.maximumVtl);
  if (!t.ok) return t.status;
  if (!c.p.isPartitionVtlEnabled(t.vtl)) return HvStatus.INVALID_VTL_STATE;
  return { vtl: t.vtl };
}

/** APIC ID → VP index, from each VP's Vcpu of `vtl` (its VTL0 Vcpu where `vtl` is not enabled yet). */
function vpIndexByApicId(p: VsmPartition, vtl: number): Map<number, number> {
  const map = new Map<number, number>();
  for (const vp of p.vps) {
    if (vp === undefined) continue;
    const v = vp.isEnabled(vtl) ? vp.vcpus[vtl]! : vp.vcpus[0]!;
    map.set(v.apic.id, vp.index);
  }
  return map;
}

export function getVpIndexFromApicId(c: Call): void {
  const { repCount: n, repStart: start, fast } = c.control;
  const inLen = GI.HeaderBytes + GI.ElementBytes * n;
  const input = readInput(c, inLen);
  if (typeof input === 'number') { answer(c, input, start); return; }
  const outLen = HV_GET_VP_INDEX_FROM_APIC_ID_OUTPUT_BYTES * n;
  // Fast output starts at the first register pair after the input (§1.3).
  const outAt = HV_FAST_PAIR_BYTES * Math.ceil(inLen / HV_FAST_PAIR_BYTES);
  const r8 = c.exit.params[1];
  let block: Uint8Array | null = null;
  if (fast) {
    if (outAt + outLen > HV_FAST_XMM_BYTES) { answer(c, HvStatus.INVALID_HYPERCALL_INPUT, start); return; }
    block = fastBlock(c.exit);
  } else {
    const s = checkBuffer(c, lo32(r8), hi32(r8), outLen, ACCESS_WRITE);
    if (s !== HvStatus.SUCCESS) { answer(c, s, start); return; }
  }
  const target = apicLookupVtl(c, input);
  if (typeof target === 'number') { answer(c, target, start); return; }
  const byApicId = vpIndexByApicId(c.p, target.vtl);
  const dv = view(input);
  let status: number = HvStatus.SUCCESS, i = start;
  for (; i < n; i++) {
    const index = byApicId.get(dv.getUint32(GI.HeaderBytes + GI.ElementBytes * i, true));
    if (index === undefined) { status = HvStatus.INVALID_PARAMETER; break; }
    const at = HV_GET_VP_INDEX_FROM_APIC_ID_OUTPUT_BYTES * i;
    if (block !== null) view(block).setUint32(outAt + at, index, true);
    else c.vcpu.vm.mem.write32(Number(r8) + at, index);
  }
  answer(c, status, i, block === null ? undefined : xmmOf(block));
}

// ---------------------------------------------------------------- SendSyntheticClusterIpi(Ex) to a target VTL (§2.6)

function sendIpiStatus(c: Call): number {
  const ex = c.control.code === HvCall.SendSyntheticClusterIpiEx;
  const size = ex ? HvIpiInput.ExHeaderBytes + 8 * c.control.varHeaderQwords : HvIpiInput.HeaderBytes;
  const bytes = readInput(c, size);
  if (typeof bytes === 'number') return bytes;
  const input = new HcInput(bytes, size);
  if (input.u8(HvIpiInput.Flags) !== 0 || input.u16(HvIpiInput.Reserved) !== 0) return HvStatus.INVALID_PARAMETER;
  const t = decodeInputVtl(input.u8(HvIpiInput.TargetVtl), c.vtl, c.p.maximumVtl);
  if (!t.ok) return t.status;
  if (!c.p.isPartitionVtlEnabled(t.vtl)) return HvStatus.INVALID_VTL_STATE;
  const set = ex
    ? VpSet.parse(input, HvIpiInput.VpSet, c.control.varHeaderQwords)
    : VpSet.fromMask(input.lo(HvIpiInput.ProcessorMask), input.hi(HvIpiInput.ProcessorMask));
  if (typeof set === 'number') return set;
  const vector = input.u32(HvIpiInput.Vector);
  if (vector < HV_IPI_LOW_VECTOR || vector > HV_IPI_HIGH_VECTOR) return HvStatus.INVALID_PARAMETER;
  const targets = c.p.vps.filter((vp): vp is VsmVp => vp !== undefined && set.has(vp.index) && vp.isEnabled(t.vtl));
  for (const vp of targets) vp.vcpus[t.vtl]!.injectInterrupt(vector);
  c.vcpu.vm.trace?.emit('vsm_send_ipi', c.vcpu.id, c.vcpu.nowNs(), { vtl: t.vtl, vector, vps: targets.map((vp) => vp.index).join(',') });
  return HvStatus.SUCCESS;
}

/** HvCallSendSyntheticClusterIpi and HvCallSendSyntheticClusterIpiEx (the control word tells them apart). */
export function sendSyntheticClusterIpi(c: Call): void {
  answer(c, sendIpiStatus(c));
}
