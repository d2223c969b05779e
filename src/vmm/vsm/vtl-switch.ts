/**
 * Moving a VP from one VTL to another (tlfs-vsm-facts §3.2-§3.4, kvm §3.3;
 * README.md "VtlCall", "VtlReturn"). Each VTL of the VP is its own Vcpu, so
 * the private state (RIP, RSP, RFLAGS, control and segment registers, the
 * private MSRs, the local APIC, the synthetic MSRs) already lives apart and
 * stays where it is; a switch copies the shared state into the Vcpu being
 * entered, parks the Vcpu being left in HV_INACTIVE_VTL and makes the other
 * one runnable. The hypercall side (checks, #UD, completing the VMCALL) is
 * hc-vsm.ts; the scheduler only ever runs `vp.active`.
 *
 * Entry into a higher VTL writes the entry reason (1 VtlCall, 2 interrupt,
 * 3 intercept) into the VTL control area of the *entered* VTL's VP assist
 * page, when that VTL has enabled one (§3.3; without a page there is nowhere
 * to write it), and on a VtlCall the caller's RAX/RCX into its
 * VtlReturnX64Rax/Rcx fields (issue 5); a non-fast VtlReturn loads those
 * fields, as the higher VTL left them, into the lower VTL's RAX/RCX (§3.3,
 * §3.4). VtlReturn also releases the returning VTL's TLB locks (§3.9),
 * clears VinaAsserted with AutoReset, and runs its return actions (§3.5).
 * VINA itself is notifyLowerVtlInterrupt, called by the scheduler.
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import { KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_RUNNABLE } from '../../kvm/mp-state.js';
import { HV_VP_ASSIST_PAGE_ENABLE, HvVsmVina, HvVtlEntryReason } from '../../spec/tlfs.js';
import { VsmError } from './errors.js';
import type { VsmPartition, VsmVp } from './partition.js';
import { VpAssistPage } from './vp-assist.js';
import { copyShared, type VtlStateOptions } from './vtl-state.js';

const EFER_LMA = 1n << 10n;
const RFLAGS_IF = 0x200n;
/** kvm's GPR numbers (vcpu-sync-regs.ts). */
const RAX = 0, RCX = 1, RDX = 2;

const SHARED_DR6: VtlStateOptions = { dr6Shared: true }, PRIVATE_DR6: VtlStateOptions = { dr6Shared: false };
function stateOptions(p: VsmPartition): VtlStateOptions { return p.capabilities.dr6Shared ? SHARED_DR6 : PRIVATE_DR6; }

/** Each Vcpu's last enabled assist page and the MSR value that named it (a switch looks it up, DESIGN §3.1). */
const assistPages = new WeakMap<Vcpu, { readonly msr: bigint; readonly page: VpAssistPage }>();

/** The VP assist page `vcpu`'s VTL enabled, or null (disabled, or no longer guest RAM). */
export function assistPageOf(vcpu: Vcpu): VpAssistPage | null {
  const msr = vcpu.hv?.vpAssistPage ?? 0n;
  if ((msr & HV_VP_ASSIST_PAGE_ENABLE) === 0n) return null;
  const cached = assistPages.get(vcpu), mem = vcpu.vm.mem;
  if (cached !== undefined && cached.msr === msr) return mem.isRam(cached.page.gpa) ? cached.page : null;
  const gpa = VpAssistPage.gpaOf(msr);
  if (!mem.isRam(gpa)) return null;
  const page = new VpAssistPage(mem, gpa);
  assistPages.set(vcpu, { msr, page });
  return page;
}

/** Whether `vcpu` runs 64-bit code (EFER.LMA and CS.L): the register convention of §1.3 it uses. */
export function isLongMode(vcpu: Vcpu): boolean {
  const s = vcpu.getSregs();
  return (s.efer & EFER_LMA) !== 0n && s.cs.l === 1;
}

/**
 * Enters VTL `target` (above the active VTL, enabled on this VP) with
 * `reason` (HvVtlEntryReason): shared state follows the VP, the lower
 * Vcpu parks in HV_INACTIVE_VTL remembering its MP state, the higher one
 * becomes RUNNABLE, and the VTL left is pushed on the VP's return stack.
 */
export function enterHigherVtl(p: VsmPartition, vp: VsmVp, target: number, reason: number, callerLong?: boolean): void {
  const fromVtl = vp.activeVtl;
  const from = vp.vcpus[fromVtl]!, to = vp.vcpus[target];
  if (target <= fromVtl || to === undefined || !vp.isEnabled(target)) {
    throw new VsmError(`VP ${vp.index} cannot enter VTL${target} from VTL${fromVtl}: it is not an enabled higher VTL`);
  }
  copyShared(from, to, stateOptions(p));
  const page = assistPageOf(to);
  page?.writeEntryReason(reason);
  if (page !== null && reason === HvVtlEntryReason.VtlCall) {
    // The caller's RAX and RCX are saved in the entered VTL's control area (issue 5: "the saved RAX/RCX are in the VP
    // assist page's VTL control area"), where a non-fast VtlReturn loads them back (§3.3, §3.4): the round trip
    // preserves them unless the higher VTL writes other values there.
    const r = from.syncRegs;
    if (callerLong ?? isLongMode(from)) page.writeVtlReturn64({ raxLo: r.gprLo(RAX), raxHi: r.gprHi(RAX), rcxLo: r.gprLo(RCX), rcxHi: r.gprHi(RCX) });
    else page.writeVtlReturn32({ eax: r.gprLo(RAX), ecx: r.gprLo(RCX), edx: r.gprLo(RDX) });
  }
  // The mode the VTL left in, for its VtlReturn (it cannot change while the VTL waits, except through
  // SetVpRegisters, which forgets it: hc-vsm.ts).
  vp.leftLong[fromVtl] = callerLong;
  vp.resumeMpState[fromVtl] = from.getMpState();
  from.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  to.setMpState(KVM_MP_STATE_RUNNABLE);
  vp.returnStack.push(fromVtl);
  vp.activeVtl = target;
  if (to.vm.trace !== null) traceSwitch(to, 'vsm_vtl_enter', { vp: vp.index, from: fromVtl, to: target, reason });
}

/**
 * Returns from the active VTL to the one the VP entered it from. Unless
 * `fast`, the lower VTL's RAX and RCX (EAX, ECX and EDX for a 32-bit lower
 * VTL) come from the returning VTL's VTL control area (§3.3, §3.4).
 */
export function returnToLowerVtl(p: VsmPartition, vp: VsmVp, fast: boolean): void {
  const fromVtl = vp.activeVtl;
  const lowerVtl = vp.returnStack.pop();
  if (lowerVtl === undefined) throw new VsmError(`VP ${vp.index} is in VTL${fromVtl} but has no lower VTL to return to`);
  const from = vp.vcpus[fromVtl]!, to = vp.vcpus[lowerVtl]!;
  copyShared(from, to, stateOptions(p));
  p.releaseTlbLocks(vp, fromVtl); // §3.9: returning releases every TLB lock this VTL holds on the VP
  const fromPage = assistPageOf(from);
  if (((vp.vina[fromVtl] ?? 0n) & HvVsmVina.AutoReset) !== 0n) fromPage?.writeVinaAsserted(false);
  const page = fast ? null : fromPage;
  if (page !== null) {
    const r = to.syncRegs;
    if (vp.leftLong[lowerVtl] ?? isLongMode(to)) {
      const v = page.readVtlReturn64();
      r.setGprHalves(RAX, v.raxLo, v.raxHi); r.setGprHalves(RCX, v.rcxLo, v.rcxHi);
    } else {
      const v = page.readVtlReturn32();
      r.setGprHalves(RAX, v.eax, 0); r.setGprHalves(RCX, v.ecx, 0); r.setGprHalves(RDX, v.edx, 0);
    }
  }
  from.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  to.setMpState(vp.resumeMpState[lowerVtl] ?? KVM_MP_STATE_RUNNABLE);
  vp.activeVtl = lowerVtl;
  if (to.vm.trace !== null) traceSwitch(to, 'vsm_vtl_return', { vp: vp.index, from: fromVtl, to: lowerVtl, fast });
  if (p.capabilities.returnActionAvailable && fromPage !== null) runReturnActions(p, from, fromPage);
}

/**
 * The VTL return actions the returning VTL queued in its assist page (§3.5),
 * after the switch (virt_whp's order): each signal-event action sets its
 * flag in the target VP's target VTL's SIEF page (SynIC signalEvent; a
 * target that does not exist, a SINT above 15, or a SynIC that refuses is
 * skipped: the sheet gives no status to report). Then the area is zeroed. An
 * area whose first entry is the end of the list is left as it is: it holds
 * nothing to do, and VtlReturn stays cheap.
 */
function runReturnActions(p: VsmPartition, from: Vcpu, page: VpAssistPage): void {
  if (!page.hasReturnActions()) return;
  for (const a of page.takeReturnActions()) {
    const target = p.vps[a.targetVp]?.vcpus[a.targetVtl];
    const ok = target !== undefined && p.vps[a.targetVp]!.isEnabled(a.targetVtl) && a.targetSint < 16;
    const status = ok ? target.hv!.synic.signalEvent(a.targetSint, a.flagNumber) : -1;
    traceSwitch(from, 'vsm_return_action', { vp: a.targetVp, vtl: a.targetVtl, sint: a.targetSint, flag: a.flagNumber, status });
  }
}

/**
 * VINA (§3.7 HvRegisterVsmVina, §3.10): while the VP runs in VTL H with VINA
 * enabled and not asserted, an interrupt ready for immediate delivery to a
 * lower VTL (its APIC has a deliverable vector and its RFLAGS.IF is set)
 * raises H's VINA vector in H's APIC (auto-EOI'd with AutoEoi: H's handler
 * does not EOI it) and sets VinaAsserted in H's control area. Nothing more is raised until H clears the bit, or AutoReset clears
 * it at H's VtlReturn; EOI does not. Returns whether it raised one.
 */
export function notifyLowerVtlInterrupt(vp: VsmVp): boolean {
  const h = vp.activeVtl, vina = vp.vina[h] ?? 0n;
  if (h === 0 || (vina & HvVsmVina.Enabled) === 0n) return false;
  const higher = vp.vcpus[h]!, page = assistPageOf(higher);
  if (page === null || page.vinaAsserted) return false;
  for (let l = h - 1; l >= 0; l--) {
    const v = vp.vcpus[l];
    if (v === undefined || !vp.isEnabled(l) || v.apic.pendingVector() < 0 || (v.getRegs().rflags & RFLAGS_IF) === 0n) continue;
    page.writeVinaAsserted(true);
    higher.injectInterrupt(Number(vina & HvVsmVina.VectorMask), { autoEoi: (vina & HvVsmVina.AutoEoi) !== 0n });
    traceSwitch(higher, 'vsm_vina', { vp: vp.index, vtl: h, lower: l });
    return true;
  }
  return false;
}

function traceSwitch(v: Vcpu, name: string, args: Record<string, number | boolean>): void {
  v.vm.trace?.emit(name, v.id, v.nowNs(), args);
}
