// HvCallStartVirtualProcessor (0x99), HvCallGetVpIndexFromApicId (0x9A, rep)
// and the VTL-aware SendSyntheticClusterIpi(Ex) (0x0B / 0x15) answered by the
// VMM (src/vmm/vsm/hc-vp.ts): tlfs-vsm-facts §2.14, §2.17, §2.5, §2.6, §2.11,
// §1.2/§1.3 (reps, fast/XMM), §3.7 (DenyLowerVtlStartup, InterceptVpStartup),
// kvm-api-facts §3.1/§3.2 (the exits and XMM output), every status, slow and
// fast. The calls are handed to hc-vp.ts directly, with the context hc-vsm.ts
// builds for an exit.
import type { Call } from '../../src/vmm/vsm/hc-call.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DM_INIT, DM_STARTUP, ICR_DM_SHIFT, ICR_LEVEL_ASSERT, REG_ICR_HIGH, REG_ICR_LOW, REG_SPIV } from '../../src/kvm/lapic-regs.js';
import {
  KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_RUNNABLE,
} from '../../src/kvm/mp-state.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { makeHypercallControl, parseHypercallControl, parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import {
  HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, HvCall, HvInitialVpContext as C, HvRegisterName as N, HvStatus, HvVtlEntryReason,
} from '../../src/spec/tlfs.js';
import {
  VP_HYPERCALLS, canStartVtl, getVpIndexFromApicId, sendSyntheticClusterIpi, startVirtualProcessor, startVp, vpHasStarted, vtlHasStarted,
} from '../../src/vmm/vsm/hc-vp.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';
import { enterHigherVtl, isLongMode, returnToLowerVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { CALL_SITE, INPUT } from '../kvm/hypercall-machine.js';
import { contextFrom, OUT, VSM_FLAGS, VsmRig, VTL1_CODE, VTL1_STACK_TOP } from './vsm-hcall-rig.js';
import { decodePartitionConfig, encodePartitionConfig } from '../../src/vmm/vsm/vsm-registers.js';

const USE_VTL = 0x10; // HV_INPUT_VTL.UseTargetVtl (§2.11)
const FLAGS = [...VSM_FLAGS, 'hv-ipi'];

interface Result { status: number; reps: number; exit: string; rax: bigint }

/** One hypercall from `v` at CALL_SITE; a 'hyperv-hcall' exit goes to hc-vp.ts as hc-vsm.ts would pass it. */
function call(r: VsmRig, v: Vcpu, control: bigint, rdx = 0n, r8 = 0n, xmm: readonly bigint[] = []): Result {
  let exit = r.m.hypercall(v, control, rdx, r8, xmm).exit;
  if (exit.reason === 'hyperv-hcall') {
    answerExit(r, v, exit);
    exit = r.m.runToExit(v);
  }
  const rax = v.getRegs().rax;
  const res = parseHypercallResult(rax);
  return { status: res.status, reps: res.repsCompleted, exit: exit.reason, rax };
}

/** Hands the 'hyperv-hcall' exit `e` of `v` to hc-vp.ts with the context hc-vsm.ts builds. */
function answerExit(r: VsmRig, v: Vcpu, e: VcpuExit): void {
  assert.equal(e.reason, 'hyperv-hcall');
  if (e.reason !== 'hyperv-hcall') return;
  const where = r.p.locate(v)!;
  const c: Call = { p: r.p, vcpu: v, vp: where.vp, vtl: where.vtl, exit: e, control: parseHypercallControl(e.input), long: isLongMode(v) };
  assert.ok(VP_HYPERCALLS.has(c.control.code));
  switch (c.control.code) {
    case HvCall.StartVirtualProcessor: startVirtualProcessor(c); break;
    case HvCall.GetVpIndexFromApicId: getVpIndexFromApicId(c); break;
    default: sendSyntheticClusterIpi(c); break;
  }
}

const rig = (o: { ids?: readonly number[]; maximumVtl?: number } = {}) => new VsmRig({ ...o, flags: FLAGS });

/** Enables `vtl` on VP `index` host-side (EnableVpVtl's effect, tested in vsm-enable): context RIP `rip`, APIC on, parked. */
function enableVpVtl(r: VsmRig, index: number, vtl: number, rip = VTL1_CODE): Vcpu {
  if (!r.p.isPartitionVtlEnabled(vtl)) r.enablePartitionVtl(vtl);
  const v = r.enableVpVtl(index, vtl, contextFrom(r.vcpu(0), { rip, rsp: VTL1_STACK_TOP }));
  v.apic.mmioWrite(REG_SPIV, 0x1ff);
  return v;
}

/** VP `index` enters `vtl` (enabled on it) as after a VtlCall; returns that Vcpu. */
function enter(r: VsmRig, index: number, vtl: number): Vcpu {
  enterHigherVtl(r.p, r.vp(index), vtl, HvVtlEntryReason.VtlCall);
  return r.vcpu(index, vtl);
}

/** Puts VP `index`'s VTL0 into wait-for-SIPI, as an AP after power-on. */
function asAp(r: VsmRig, index: number): void {
  r.vcpu(index).setMpState(KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(r.vcpu(index).getMpState(), KVM_MP_STATE_INIT_RECEIVED);
}

// ================================================================ StartVirtualProcessor (§2.14)

const start = makeHypercallControl({ code: HvCall.StartVirtualProcessor });
const AP_CODE = VTL1_CODE + 0x800;

/** Writes a StartVirtualProcessor input at INPUT and makes the call from `v`. */
function startVpCall(r: VsmRig, v: Vcpu, o: { vp: number; vtl: number; partition?: bigint; reserved?: number; ctx?: Uint8Array; rip?: number }): Result {
  const mem = r.m.vm.mem;
  mem.fill(INPUT, 16, 0);
  mem.write64(INPUT, o.partition ?? HV_PARTITION_ID_SELF);
  mem.write32(INPUT + 8, o.vp);
  mem.write8(INPUT + 12, o.vtl);
  mem.write8(INPUT + 13 + 2, o.reserved ?? 0);
  mem.write(INPUT + 16, o.ctx ?? contextFrom(r.vcpu(0), { rip: o.rip ?? AP_CODE, rsp: VTL1_STACK_TOP + 0x1000 }));
  return call(r, v, start, BigInt(INPUT));
}

/** An AP's program: RAX = 0x5a, then HLT. */
function apProgram(r: VsmRig): void { r.asm('mov eax, 0x5a\nhlt', AP_CODE); }

test('§2.14: VTL0 starts a waiting VP in VTL0 with the given context; a second start is INVALID_VP_STATE', () => {
  const r = rig({ ids: [0, 1] });
  apProgram(r);
  asAp(r, 1);
  assert.equal(vpHasStarted(r.vp(0)), true, 'the BSP runs');
  assert.equal(vpHasStarted(r.vp(1)), false, 'the AP waits for its SIPI');
  const res = startVpCall(r, r.vcpu(0), { vp: 1, vtl: 0 });
  assert.deepEqual([res.status, res.exit], [HvStatus.SUCCESS, 'hlt']);
  const ap = r.vcpu(1);
  assert.equal(ap.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(ap.getRegs().rip, BigInt(AP_CODE));
  assert.equal(ap.getRegs().rsp, BigInt(VTL1_STACK_TOP + 0x1000));
  assert.equal(r.vp(1).activeVtl, 0);
  assert.equal(vpHasStarted(r.vp(1)), true);
  assert.equal(r.m.runToExit(ap).reason, 'hlt');
  assert.equal(ap.getRegs().rax, 0x5an, 'the AP ran its program');
  assert.equal(startVpCall(r, r.vcpu(0), { vp: 1, vtl: 0 }).status, HvStatus.INVALID_VP_STATE, 'already started');
});

test('§2.14: VTL1 starts a VP in VTL1: VTL1 runs the new context, VTL0 stays parked waiting for its SIPI', () => {
  const r = rig({ ids: [0, 1] });
  apProgram(r);
  asAp(r, 1);
  enableVpVtl(r, 0, 1);
  const ap1 = enableVpVtl(r, 1, 1, VTL1_CODE + 0x400); // EnableVpVtl's context; StartVirtualProcessor's replaces it
  const caller = enter(r, 0, 1);
  assert.equal(startVpCall(r, caller, { vp: 1, vtl: 1 }).status, HvStatus.SUCCESS);
  const vp = r.vp(1), ap0 = r.vcpu(1);
  assert.equal(vp.activeVtl, 1);
  assert.equal(vp.active, ap1);
  assert.deepEqual(vp.returnStack, [0], 'VtlReturn goes to VTL0');
  assert.equal(vp.resumeMpState[0], KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(ap0.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(ap1.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(ap1.getRegs().rip, BigInt(AP_CODE));
  assert.equal(r.m.runToExit(ap1).reason, 'hlt');
  assert.equal(ap1.getRegs().rax, 0x5an);
  assert.equal(startVpCall(r, caller, { vp: 1, vtl: 1 }).status, HvStatus.INVALID_VP_STATE, '(VP 1, VTL1) has started');
  // Back in VTL0 the VP waits for its start; (VP 1, VTL0) has not started.
  returnToLowerVtl(r.p, vp, true);
  assert.equal(ap0.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(vpHasStarted(vp), true);
  assert.equal(vtlHasStarted(vp, 0), false);
  assert.deepEqual(r.p.vms[1]!.trace!.named('vsm_start_vp').map((e) => e.args), [{ vp: 1, vtl: 1 }]);
});

/** VP 1 started in VTL1 by VP 0's VTL1, which returned to VTL0 (VP 1's VTL0 waits for its start); returns VP 0's VTL1 Vcpu. */
function startedInVtl1(r: VsmRig, returned: boolean): Vcpu {
  apProgram(r);
  asAp(r, 1);
  enableVpVtl(r, 0, 1);
  enableVpVtl(r, 1, 1);
  const caller = enter(r, 0, 1);
  assert.equal(startVpCall(r, caller, { vp: 1, vtl: 1 }).status, HvStatus.SUCCESS);
  if (returned) returnToLowerVtl(r.p, r.vp(1), true);
  return caller;
}

test('§3.10, §2.14: a SIPI to VTL0 of a VP started in VTL1 is dropped; StartVirtualProcessor(VTL0) from VTL0 starts it, once', () => {
  const r = rig({ ids: [0, 1] });
  const caller = startedInVtl1(r, true);
  returnToLowerVtl(r.p, r.vp(0), true);
  const vp = r.vp(1), ap0 = r.vcpu(1), bsp = r.vcpu(0);
  assert.equal(vp.activeVtl, 0);
  // The guest's way: VP 0's VTL0 writes its ICR (SIPI, vector 0x10: physical 0x10000).
  bsp.apic.mmioWrite(REG_ICR_HIGH, 1 << 24);
  bsp.apic.mmioWrite(REG_ICR_LOW, (DM_STARTUP << ICR_DM_SHIFT) | ICR_LEVEL_ASSERT | 0x10);
  assert.equal(ap0.runnable, false, 'the SIPI is dropped');
  assert.equal(r.m.runToExit(ap0).reason, 'hlt');
  assert.equal(ap0.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(vtlHasStarted(vp, 0), false);

  const res = startVpCall(r, bsp, { vp: 1, vtl: 0, rip: AP_CODE });
  assert.deepEqual([res.status, res.exit], [HvStatus.SUCCESS, 'hlt']);
  assert.equal(ap0.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(ap0.getRegs().rip, BigInt(AP_CODE));
  assert.equal(r.m.runToExit(ap0).reason, 'hlt');
  assert.equal(ap0.getRegs().rax, 0x5an, 'VTL0 ran the context');
  assert.equal(vp.activeVtl, 0);
  assert.equal(vtlHasStarted(vp, 0), true);
  assert.equal(startVpCall(r, bsp, { vp: 1, vtl: 0 }).status, HvStatus.INVALID_VP_STATE, '(VP 1, VTL0) has started');
  const v1 = enter(r, 0, 1);
  assert.equal(v1, caller);
  for (const vtl of [0, 1]) assert.equal(startVpCall(r, v1, { vp: 1, vtl }).status, HvStatus.INVALID_VP_STATE, `VTL${vtl} again, from VTL1`);
  assert.deepEqual(r.p.vms[0]!.trace!.named('vsm_start_vp').map((e) => e.args), [{ vp: 1, vtl: 0 }]);
});

test('§2.14: StartVirtualProcessor(VTL0) while the VP still runs VTL1: VTL0 stays parked and runs the context after VtlReturn', () => {
  const r = rig({ ids: [0, 1] });
  const caller = startedInVtl1(r, false);
  const vp = r.vp(1), ap0 = r.vcpu(1), ap1 = r.vcpu(1, 1);
  assert.equal(startVpCall(r, caller, { vp: 1, vtl: 0, rip: AP_CODE }).status, HvStatus.SUCCESS);
  assert.equal(vp.activeVtl, 1, 'no switch');
  assert.equal(ap0.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL, 'still parked');
  assert.equal(ap1.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(vp.resumeMpState[0], KVM_MP_STATE_RUNNABLE);
  assert.equal(startVpCall(r, caller, { vp: 1, vtl: 0 }).status, HvStatus.INVALID_VP_STATE, 'started, though not run yet');
  returnToLowerVtl(r.p, vp, true);
  assert.equal(ap0.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(ap0.getRegs().rip, BigInt(AP_CODE));
  assert.equal(r.m.runToExit(ap0).reason, 'hlt');
  assert.equal(ap0.getRegs().rax, 0x5an);
});

test('§2.14: a VP started in VTL0 is running: StartVirtualProcessor(VTL1) is INVALID_VP_STATE even though VTL1 never ran there', () => {
  const r = rig({ ids: [0, 1] });
  apProgram(r);
  asAp(r, 1);
  enableVpVtl(r, 0, 1);
  enableVpVtl(r, 1, 1);
  const v1 = enter(r, 0, 1);
  assert.equal(startVpCall(r, v1, { vp: 1, vtl: 0 }).status, HvStatus.SUCCESS);
  assert.equal(canStartVtl(r.vp(1), 1), false);
  assert.equal(startVpCall(r, v1, { vp: 1, vtl: 1 }).status, HvStatus.INVALID_VP_STATE);
  assert.equal(r.vp(1).activeVtl, 0);
  assert.equal(r.vcpu(1, 1).getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
});

test('§3.10: enabling a VTL on a VP makes its lower VTLs drop INIT/SIPI (kvm\'s INIT/SIPI block); Vcpus above VTL0 always drop them', () => {
  const r = rig({ ids: [0, 1, 2], maximumVtl: 2 });
  asAp(r, 2);
  const bsp = r.vcpu(0);
  for (const k of [0, 1, 2]) assert.equal(r.vcpu(k).initSipiBlocked, false, `VP ${k} VTL0 before`);
  // VP 2's VTL0 has a SIPI pending when VTL1 is enabled there: dropped too.
  bsp.apic.mmioWrite(REG_ICR_HIGH, 2 << 24);
  bsp.apic.mmioWrite(REG_ICR_LOW, (DM_STARTUP << ICR_DM_SHIFT) | ICR_LEVEL_ASSERT | 0x10);
  assert.equal(r.vcpu(2).runnable, true);
  enableVpVtl(r, 2, 1);
  assert.equal(r.vcpu(2).initSipiBlocked, true);
  assert.equal(r.vcpu(2, 1).initSipiBlocked, true);
  assert.equal(r.vcpu(2).runnable, false, 'the pending SIPI went');
  assert.equal(r.vcpu(2).getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(r.vcpu(1).initSipiBlocked, false, 'VP 1 has VTL0 only');
  // A VTL2 Vcpu drops them from its creation on, before the VTL is enabled on the VP.
  r.enablePartitionVtl(2);
  assert.equal(r.p.vcpuForVpVtl(r.vp(1), 2).initSipiBlocked, true);
  assert.equal(r.vcpu(1).initSipiBlocked, false, 'not enabled yet: VTL0 still takes them');
  enableVpVtl(r, 1, 2);
  assert.equal(r.vcpu(1).initSipiBlocked, true);
});

test('§3.10: an INIT to the running VTL0 of a VP with VTL1 enabled is dropped; on a VP without VTL1 it is taken', () => {
  const r = rig({ ids: [0, 1, 2] });
  enableVpVtl(r, 1, 1);
  for (const k of [1, 2]) {
    r.vcpu(k).setMpState(KVM_MP_STATE_RUNNABLE);
    r.vcpu(0).apic.mmioWrite(REG_ICR_HIGH, k << 24);
    r.vcpu(0).apic.mmioWrite(REG_ICR_LOW, (DM_INIT << ICR_DM_SHIFT) | ICR_LEVEL_ASSERT);
  }
  assert.equal(r.vcpu(1).getMpState(), KVM_MP_STATE_RUNNABLE, 'VP 1 (VTL1 enabled): dropped');
  assert.equal(r.vcpu(2).getMpState(), KVM_MP_STATE_INIT_RECEIVED, 'VP 2: INIT taken');
});

test('§3.7: DenyLowerVtlStartup set by VTL1 makes every VP\'s VTL0 drop INIT, also on VPs without VTL1', () => {
  const r = rig({ ids: [0, 1, 2] });
  enableVpVtl(r, 0, 1);
  assert.equal(r.vcpu(2).initSipiBlocked, false, 'VP 2 has no VTL1: INIT/SIPI reach its VTL0');
  const config = encodePartitionConfig({ ...decodePartitionConfig(0n), denyLowerVtlStartup: true });
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(0), 1, config), HvStatus.SUCCESS);
  assert.deepEqual([0, 1, 2].map((k) => r.vcpu(k).initSipiBlocked), [true, true, true]);
  r.vcpu(2).setMpState(KVM_MP_STATE_RUNNABLE);
  r.vcpu(0).apic.mmioWrite(REG_ICR_HIGH, 2 << 24);
  r.vcpu(0).apic.mmioWrite(REG_ICR_LOW, (DM_INIT << ICR_DM_SHIFT) | ICR_LEVEL_ASSERT);
  assert.equal(r.vcpu(2).getMpState(), KVM_MP_STATE_RUNNABLE, 'VP 2: INIT from VTL0 dropped');
});

test('§2.14: a VP that left wait-for-SIPI through INIT/SIPI has started', () => {
  const r = rig({ ids: [0, 1] });
  asAp(r, 1);
  r.vcpu(1).apic.startup(0x10);
  assert.equal(vpHasStarted(r.vp(1)), true);
  assert.equal(startVpCall(r, r.vcpu(0), { vp: 1, vtl: 0 }).status, HvStatus.INVALID_VP_STATE);
});

test('§2.14: header statuses in order: input buffer, partition, VP index, malformed fields', () => {
  const r = rig({ ids: [0, 1] });
  asAp(r, 1);
  const v = r.vcpu(0);
  assert.equal(call(r, v, makeHypercallControl({ code: HvCall.StartVirtualProcessor, fast: true }), HV_PARTITION_ID_SELF, 1n).status,
    HvStatus.INVALID_HYPERCALL_INPUT, '240 bytes fit no fast registers');
  assert.equal(call(r, v, start, BigInt(INPUT + 4)).status, HvStatus.INVALID_ALIGNMENT);
  assert.equal(call(r, v, start, BigInt(INPUT + 0xf18)).status, HvStatus.INVALID_ALIGNMENT, 'the input crosses a page');
  assert.equal(startVpCall(r, v, { vp: 7, vtl: 0, partition: 0n }).status, HvStatus.INVALID_PARTITION_ID, 'partition first');
  assert.equal(startVpCall(r, v, { vp: 2, vtl: 0 }).status, HvStatus.INVALID_VP_INDEX, 'no VP 2');
  assert.equal(startVpCall(r, v, { vp: 0, vtl: 0 }).status, HvStatus.INVALID_VP_INDEX, 'the caller\'s own VP');
  assert.equal(startVpCall(r, v, { vp: HV_VP_INDEX_SELF, vtl: 0 }).status, HvStatus.INVALID_VP_INDEX, 'HV_VP_INDEX_SELF');
  assert.equal(startVpCall(r, v, { vp: 2, vtl: 16 }).status, HvStatus.INVALID_VP_INDEX, 'VP index before fields');
  assert.equal(startVpCall(r, v, { vp: 1, vtl: 16 }).status, HvStatus.INVALID_PARAMETER, 'TargetVtl > 15');
  assert.equal(startVpCall(r, v, { vp: 1, vtl: 0, reserved: 1 }).status, HvStatus.INVALID_PARAMETER, 'bytes 13-15 RsvdZ');
  assert.equal(vpHasStarted(r.vp(1)), false, 'nothing started');
});

test('§2.14, §3.7: privilege (above the caller, DenyLowerVtlStartup, InterceptVpStartup) before state', () => {
  const r = rig({ ids: [0, 1, 2] });
  asAp(r, 1);
  asAp(r, 2);
  enableVpVtl(r, 0, 1);
  enableVpVtl(r, 1, 1);
  const v0 = r.vcpu(0);
  assert.equal(startVpCall(r, v0, { vp: 1, vtl: 1 }).status, HvStatus.ACCESS_DENIED, 'VTL1 is above the VTL0 caller');
  assert.equal(startVpCall(r, v0, { vp: 2, vtl: 1 }).status, HvStatus.ACCESS_DENIED, 'privilege before state (VTL1 is not on VP 2)');
  for (const bit of [6, 9]) {
    assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(0), 1, 1n << BigInt(bit)), HvStatus.SUCCESS);
    assert.equal(startVpCall(r, v0, { vp: 1, vtl: 0 }).status, HvStatus.ACCESS_DENIED, `VTL1's VsmPartitionConfig bit ${bit}`);
    assert.equal(startVpCall(r, v0, { vp: 1, vtl: 0, partition: 5n }).status, HvStatus.INVALID_PARTITION_ID, 'the partition check still comes first');
  }
  assert.equal(vpHasStarted(r.vp(1)), false);
  // VTL1 is not a lower VTL: it may start VP 2 in VTL0.
  const v1 = enter(r, 0, 1);
  assert.equal(startVpCall(r, v1, { vp: 2, vtl: 0 }).status, HvStatus.SUCCESS);
  assert.equal(r.vcpu(2).getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(0), 1, 0n), HvStatus.SUCCESS);
  returnToLowerVtl(r.p, r.vp(0), true);
  assert.equal(startVpCall(r, v0, { vp: 1, vtl: 0 }).status, HvStatus.SUCCESS, 'allowed again once VTL1 clears both bits');
});

test('§2.14: state statuses: VTL not enabled for the partition (INVALID_VTL_STATE), not on the VP (INVALID_VP_STATE)', () => {
  const r = rig({ ids: [0, 1, 2], maximumVtl: 2 });
  asAp(r, 1);
  asAp(r, 2);
  enableVpVtl(r, 0, 2);
  enableVpVtl(r, 1, 2);
  const v2 = enter(r, 0, 2);
  assert.equal(startVpCall(r, v2, { vp: 1, vtl: 1 }).status, HvStatus.INVALID_VTL_STATE, 'VTL1 was never enabled');
  assert.equal(startVpCall(r, v2, { vp: 2, vtl: 2 }).status, HvStatus.INVALID_VP_STATE, 'VTL2 is not enabled on VP 2');
  assert.equal(startVpCall(r, v2, { vp: 1, vtl: 2 }).status, HvStatus.SUCCESS, 'VTL2 starts VP 1 in VTL2');
  assert.equal(r.vp(1).activeVtl, 2);
  assert.deepEqual(r.vp(1).returnStack, [0]);
});

test('§2.13, §2.14: a context KVM_SET_SREGS refuses, or reserved segment attribute bits: INVALID_REGISTER_VALUE, nothing changed', () => {
  const r = rig({ ids: [0, 1] });
  asAp(r, 1);
  enableVpVtl(r, 0, 1);
  const ap1 = enableVpVtl(r, 1, 1);
  const caller = enter(r, 0, 1);
  const reserved = contextFrom(r.vcpu(0), { rip: AP_CODE, rsp: VTL1_STACK_TOP });
  new DataView(reserved.buffer).setUint16(C.Cs + 14, 0xa09b | 0x100, true);
  const real = contextFrom(r.vcpu(0), { rip: AP_CODE, rsp: VTL1_STACK_TOP, cr0: 0x10n });
  for (const ctx of [reserved, real]) {
    assert.equal(startVpCall(r, caller, { vp: 1, vtl: 1, ctx }).status, HvStatus.INVALID_REGISTER_VALUE);
    assert.equal(r.vp(1).activeVtl, 0);
    assert.equal(ap1.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
    assert.equal(ap1.getRegs().rip, BigInt(VTL1_CODE), 'EnableVpVtl\'s context is still there');
    assert.equal(r.vcpu(1).getMpState(), KVM_MP_STATE_INIT_RECEIVED);
    assert.equal(vpHasStarted(r.vp(1)), false);
  }
});

test('startVp refuses host misuse with a VsmError and changes nothing', () => {
  const r = rig({ ids: [0, 1] });
  asAp(r, 1);
  assert.throws(() => startVp(r.vp(1), 1), VsmError, 'VTL1 is not enabled on VP 1');
  assert.throws(() => startVp(r.vp(0), 0), VsmError, 'VP 0 runs already');
  assert.equal(vpHasStarted(r.vp(1)), false);
  enableVpVtl(r, 1, 1);
  startVp(r.vp(1), 0);
  assert.throws(() => startVp(r.vp(1), 0), VsmError, 'VTL0 of VP 1 has started');
  assert.throws(() => startVp(r.vp(1), 1), VsmError, 'VP 1 has started');
  assert.deepEqual([r.vp(1).startedVtls, r.vp(1).activeVtl], [1, 0]);
});

// ================================================================ GetVpIndexFromApicId (§2.17)

const lookup = (n: number, repStart = 0) => makeHypercallControl({ code: HvCall.GetVpIndexFromApicId, repCount: n, repStart });
const lookupFast = (n: number) => makeHypercallControl({ code: HvCall.GetVpIndexFromApicId, repCount: n, fast: true });
/** Header word 1: HV_INPUT_VTL byte and the 7 padding bytes. */
const lookupHeader1 = (inputVtl = 0, padding = 0n) => BigInt(inputVtl) | (padding << 8n);

/** Slow lookup of `ids` from `v`; output at OUT (pre-filled with 0xee). */
function lookupCall(r: VsmRig, v: Vcpu, ids: readonly number[], o: { inputVtl?: number; padding?: bigint; partition?: bigint; start?: number; out?: number } = {}) {
  const mem = r.m.vm.mem;
  mem.write64(INPUT, o.partition ?? HV_PARTITION_ID_SELF);
  mem.write64(INPUT + 8, lookupHeader1(o.inputVtl, o.padding));
  ids.forEach((id, i) => mem.write32(INPUT + 16 + 4 * i, id));
  mem.fill(OUT, 64, 0xee);
  const res = call(r, v, lookup(ids.length, o.start), BigInt(INPUT), BigInt(o.out ?? OUT));
  return { ...res, out: ids.map((_, i) => mem.read32(OUT + 4 * i)) };
}

test('§2.17: APIC IDs to VP indexes, u32 in and out; an unknown APIC ID stops the list with INVALID_PARAMETER at its index', () => {
  const r = rig({ ids: [0, 1, 2, 5] });
  const v = r.vcpu(0);
  let g = lookupCall(r, v, [5, 0, 2]);
  assert.deepEqual([g.status, g.reps, g.out], [HvStatus.SUCCESS, 3, [5, 0, 2]]);
  g = lookupCall(r, v, [5, 2, 3, 0]);
  assert.deepEqual([g.status, g.reps], [HvStatus.INVALID_PARAMETER, 2], 'APIC ID 3 belongs to no VP');
  assert.deepEqual(g.out, [5, 2, 0xeeeeeeee, 0xeeeeeeee], 'outputs before it are valid, nothing after');
  // A rep start skips the elements before it; outputs land at their own index.
  g = lookupCall(r, v, [99, 1], { start: 1 });
  assert.deepEqual([g.status, g.reps, g.out], [HvStatus.SUCCESS, 2, [0xeeeeeeee, 1]]);
});

test('§2.17, §2.11: header statuses report the rep start; the output list must be writable and aligned', () => {
  const r = rig({ ids: [0, 1] });
  const v = r.vcpu(0);
  const st = (o: Parameters<typeof lookupCall>[3]) => { const g = lookupCall(r, v, [0, 1], { start: 1, ...o }); return [g.status, g.reps]; };
  assert.deepEqual(st({ partition: 0n }), [HvStatus.INVALID_PARTITION_ID, 1]);
  assert.deepEqual(st({ padding: 1n << 48n }), [HvStatus.INVALID_PARAMETER, 1], 'padding bytes 9-15 are RsvdZ');
  assert.deepEqual(st({ inputVtl: 0x20 }), [HvStatus.INVALID_PARAMETER, 1], 'HV_INPUT_VTL bits 7:5');
  assert.deepEqual(st({ inputVtl: USE_VTL | 2 }), [HvStatus.INVALID_PARAMETER, 1], 'VTL2 is above MaximumVtl 1');
  assert.deepEqual(st({ inputVtl: USE_VTL | 1 }), [HvStatus.ACCESS_DENIED, 1], 'VTL1 is above the caller');
  assert.deepEqual(st({ out: OUT + 4 }), [HvStatus.INVALID_ALIGNMENT, 1]);
  assert.deepEqual(st({ out: OUT + 0xff8 }), [HvStatus.SUCCESS, 2], 'control: 8 bytes of output end exactly at the page end');
  const cross = lookupCall(r, v, [0, 1, 0], { out: OUT + 0xff8 });
  assert.deepEqual([cross.status, cross.reps], [HvStatus.INVALID_ALIGNMENT, 0], '12 bytes from 0xff8 cross the page');
  assert.deepEqual(st({ inputVtl: 0x0f }), [HvStatus.SUCCESS, 2], 'UseTargetVtl = 0: the caller\'s VTL');
});

test('§2.17: with VTLs: the target VTL\'s Vcpus answer, VPs the VTL is not on yet through VTL0; a VTL not enabled is INVALID_VTL_STATE', () => {
  const r = rig({ ids: [0, 1], maximumVtl: 2 });
  enableVpVtl(r, 0, 1);
  const v1 = enter(r, 0, 1);
  assert.deepEqual(lookupCall(r, v1, [1, 0], { inputVtl: USE_VTL | 1 }).out, [1, 0], 'VP 1 has no VTL1 yet: its VTL0 APIC ID');
  assert.deepEqual(lookupCall(r, v1, [1, 0], { inputVtl: USE_VTL | 0 }).out, [1, 0]);
  const r2 = rig({ ids: [0, 1], maximumVtl: 2 });
  enableVpVtl(r2, 0, 2);
  const v2 = enter(r2, 0, 2);
  const g = lookupCall(r2, v2, [1], { inputVtl: USE_VTL | 1 });
  assert.deepEqual([g.status, g.reps], [HvStatus.INVALID_VTL_STATE, 0]);
  assert.deepEqual(lookupCall(r2, v2, [1]).out, [1], 'its own VTL2');
});

test('§1.3, kvm §3.1: XMM-fast lookup writes the output pairs after the input; a failure leaves XMM alone', () => {
  const r = rig({ ids: [0, 1, 2] });
  const v = r.vcpu(0);
  // 3 IDs: input 16 + 12 = 28 bytes (pairs 0-1: RDX, R8, XMM0), output 12 bytes from pair 2 = XMM1.
  const ids = [2n, 0n, 1n];
  const x0 = { low: ids[0] | (ids[1] << 32n), high: ids[2] | (0xabcdn << 32n) };
  let res = call(r, v, lookupFast(3), HV_PARTITION_ID_SELF, lookupHeader1(), [x0.low, x0.high, 0x1111n, 0x2222_0000_3333n, 0x44n, 0x55n]);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.deepEqual(v.getXmm(1), { low: 2n, high: 0x2222_0000_0001n }, 'indexes 2, 0 (low qword), 1 (bits 31:0 of the high qword); bits above untouched');
  assert.deepEqual(v.getXmm(0), x0, 'input registers unchanged');
  assert.deepEqual(v.getXmm(2), { low: 0x44n, high: 0x55n }, 'pairs after the output unchanged');
  // An unknown ID: INVALID_PARAMETER, reps 1; kvm copies XMM output only on success.
  res = call(r, v, lookupFast(2), HV_PARTITION_ID_SELF, lookupHeader1(), [1n | (7n << 32n), 0n, 0x99n, 0x98n]);
  assert.deepEqual([res.status, res.reps], [HvStatus.INVALID_PARAMETER, 1]);
  assert.deepEqual(v.getXmm(1), { low: 0x99n, high: 0x98n });
  // 12 IDs fit exactly (input 64 bytes = 4 pairs, output 48 bytes = XMM3..XMM5); 13 do not, nor do 25 (input > 112 bytes).
  const twelve = Array.from({ length: 6 }, (_, k) => BigInt(k % 3) | (BigInt((k + 1) % 3) << 32n));
  res = call(r, v, lookupFast(12), HV_PARTITION_ID_SELF, lookupHeader1(), twelve);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.deepEqual([v.getXmm(3), v.getXmm(4), v.getXmm(5)], [
    { low: 1n << 32n, high: 1n | (2n << 32n) }, { low: 2n, high: 1n << 32n }, { low: 1n | (2n << 32n), high: 2n },
  ], 'the 12 indexes, in XMM3..XMM5');
  assert.equal(call(r, v, lookupFast(13), HV_PARTITION_ID_SELF, lookupHeader1()).status, HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(call(r, v, lookupFast(25), HV_PARTITION_ID_SELF, lookupHeader1()).status, HvStatus.INVALID_HYPERCALL_INPUT);
});

test('§1.3: a 32-bit caller has no XMM block: fast lookup is INVALID_HYPERCALL_INPUT', () => {
  const r = rig({ ids: [0] });
  const v = r.vcpu(0);
  r.m.enter32(v, CALL_SITE);
  const c = lookupFast(1);
  v.setRegs({ ...v.getRegs(), rax: c & 0xffffffffn, rdx: c >> 32n, rcx: 0xffffffffn, rbx: 0xffffffffn, rsi: 0n, rdi: 0n });
  answerExit(r, v, r.m.runToExit(v));
  assert.equal(r.m.runToExit(v).reason, 'hlt');
  const g = v.getRegs();
  assert.deepEqual([Number(g.rax & 0xffffn), Number(g.rdx & 0xfffn)], [HvStatus.INVALID_HYPERCALL_INPUT, 0], 'status in EAX, reps in EDX');
});

// ================================================================ SendSyntheticClusterIpi(Ex) with a target VTL (§2.6)

const ipiFast = makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, fast: true });
const ipiSlow = makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi });
const ipiEx = (banks: number, fast = false) => makeHypercallControl({ code: HvCall.SendSyntheticClusterIpiEx, varHeaderQwords: banks, fast });
/** Input qword 0: Vector u32 @0, TargetVtl u8 @4, Flags u8 @5, Reserved u16 @6. */
const ipiHeader = (vector: number, inputVtl: number, flags = 0) => BigInt(vector) | (BigInt(inputVtl) << 32n) | (BigInt(flags) << 40n);

/** [VP, VTL, vector] of every Vcpu of the partition with a pending interrupt. */
function pendingAll(r: VsmRig): number[][] {
  const out: number[][] = [];
  for (const vp of r.p.vps) {
    vp?.vcpus.forEach((v, vtl) => { if (v !== undefined && v.apic.pendingVector() >= 0) out.push([vp.index, vtl, v.apic.pendingVector()]); });
  }
  return out;
}

/** VPs 0, 1, 2 with VTL1 on VPs 0 and 1; VP 0 runs in VTL1. */
function ipiRig(): { r: VsmRig; v1: Vcpu } {
  const r = rig({ ids: [0, 1, 2] });
  enableVpVtl(r, 0, 1);
  enableVpVtl(r, 1, 1);
  return { r, v1: enter(r, 0, 1) };
}

test('§2.6: VTL1 sends to VTL1 and to VTL0; VPs without the target VTL are skipped; a parked higher VTL becomes runnable', () => {
  const { r, v1 } = ipiRig();
  const ap1 = r.vcpu(1, 1);
  assert.equal(ap1.runnable, false);
  let res = call(r, v1, ipiFast, ipiHeader(0x41, USE_VTL | 1), 0b111n);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.deepEqual(pendingAll(r), [[0, 1, 0x41], [1, 1, 0x41]], 'VP 2 has no VTL1');
  assert.equal(ap1.runnable, true, 'the scheduler now enters VP 1\'s VTL1 with entry reason "interrupt" (machine.ts)');
  res = call(r, v1, ipiFast, ipiHeader(0x42, USE_VTL | 0), 0b110n);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.deepEqual(pendingAll(r), [[0, 1, 0x41], [1, 0, 0x42], [1, 1, 0x41], [2, 0, 0x42]]);
  assert.deepEqual(r.p.vms[1]!.trace!.named('vsm_send_ipi').map((e) => e.args),
    [{ vtl: 1, vector: 0x41, vps: '0,1' }, { vtl: 0, vector: 0x42, vps: '1,2' }]);
});

test('§2.6: memory-based, Ex (sparse banks, HV_GENERIC_SET_ALL) and XMM-fast Ex forms', () => {
  const { r, v1 } = ipiRig();
  r.m.writeQwords(INPUT, [ipiHeader(0x50, USE_VTL | 0), 0b100n]);
  assert.equal(call(r, v1, ipiSlow, BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(pendingAll(r), [[2, 0, 0x50]]);
  r.m.writeQwords(INPUT, [ipiHeader(0x51, USE_VTL | 0), 0n, 0b1n, 0b10n]);
  assert.equal(call(r, v1, ipiEx(1), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(pendingAll(r), [[1, 0, 0x51], [2, 0, 0x50]]);
  r.m.writeQwords(INPUT, [ipiHeader(0x52, USE_VTL | 1), 1n, 0n]);
  assert.equal(call(r, v1, ipiEx(0), BigInt(INPUT)).status, HvStatus.SUCCESS, 'format 1: every VP (with VTL1)');
  assert.deepEqual(pendingAll(r), [[0, 1, 0x52], [1, 0, 0x51], [1, 1, 0x52], [2, 0, 0x50]]);
  // XMM fast: RDX header, R8 format 0, XMM0 = valid banks 1, bank 0 = VP 0.
  assert.equal(call(r, v1, ipiEx(1, true), ipiHeader(0x60, USE_VTL | 0), 0n, [0b1n, 0b1n]).status, HvStatus.SUCCESS);
  assert.deepEqual(pendingAll(r).filter(([vp, vtl]) => vp === 0 && vtl === 0), [[0, 0, 0x60]]);
});

test('§2.6, §2.11: statuses: target above the caller, not implemented, not enabled, bad set, bad vector; nothing delivered', () => {
  const { r, v1 } = ipiRig();
  const v0 = r.vcpu(1); // VP 1 runs in VTL0
  assert.equal(call(r, v0, ipiFast, ipiHeader(0x40, USE_VTL | 1), 0b1n).status, HvStatus.ACCESS_DENIED, 'VTL1 is above VTL0');
  assert.equal(call(r, v1, ipiFast, ipiHeader(0x40, USE_VTL | 2), 0b1n).status, HvStatus.INVALID_PARAMETER, 'VTL2 above MaximumVtl 1');
  r.m.writeQwords(INPUT, [ipiHeader(0x40, USE_VTL | 0), 0n, 0b11n, 0x2n]);
  assert.equal(call(r, v1, ipiEx(1), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER, 'two banks announced, one word');
  r.m.writeQwords(INPUT, [ipiHeader(0x40, USE_VTL | 0), 2n, 0n]);
  assert.equal(call(r, v1, ipiEx(0), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER, 'unknown set format');
  for (const vector of [0x0f, 0x100, 0xffffffff]) {
    assert.equal(call(r, v1, ipiFast, (ipiHeader(0, USE_VTL | 0) | BigInt(vector)), 0b1n).status, HvStatus.INVALID_PARAMETER, `vector 0x${vector.toString(16)}`);
  }
  assert.deepEqual(pendingAll(r), []);
  // VTL0 naming itself also reaches the VMM (kvm §3.2) and is delivered there.
  assert.equal(call(r, v0, ipiFast, ipiHeader(0x10, USE_VTL | 0), 0b1n).status, HvStatus.SUCCESS);
  assert.deepEqual(pendingAll(r), [[0, 0, 0x10]]);
  // VTL2 naming VTL1, which the partition never enabled.
  const r2 = rig({ ids: [0], maximumVtl: 2 });
  enableVpVtl(r2, 0, 2);
  assert.equal(call(r2, enter(r2, 0, 2), ipiFast, ipiHeader(0x40, USE_VTL | 1), 0b1n).status, HvStatus.INVALID_VTL_STATE);
});

test('§2.6: the VMM checks Flags/Reserved itself: input changed in memory between kvm\'s check and the VMM is refused', () => {
  const { r, v1 } = ipiRig();
  r.m.writeQwords(INPUT, [ipiHeader(0x40, USE_VTL | 0), 0b10n]);
  const first = r.m.hypercall(v1, ipiSlow, BigInt(INPUT));
  r.m.writeQwords(INPUT, [ipiHeader(0x40, USE_VTL | 0, 1), 0b10n]); // another VP rewrote the buffer
  answerExit(r, v1, first.exit);
  assert.equal(r.m.runToExit(v1).reason, 'hlt');
  assert.equal(v1.getRegs().rax, BigInt(HvStatus.INVALID_PARAMETER));
  assert.deepEqual(pendingAll(r), []);
});
