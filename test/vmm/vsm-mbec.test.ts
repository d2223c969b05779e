// Mode-based execute control in the VMM (tlfs-vsm-facts §2.12, §3.7, §3.8;
// src/vmm/vsm/partition.ts, protection-mask.ts): EnablePartitionVtl with
// EnableMbec, MbecVtlMask / MbecEnabledVtlSet / ActiveMbecEnabled, masks with
// UX but not KX, VsmVpSecureConfigVtl0.MbecEnabled turning kvm's MBEC on for
// VTL0's Vcpu, and which fetches such a mask lets VTL0 make: a user-mode
// fetch is checked against UX while CR4.SMEP is set, every other against KX,
// and a denied one is intercepted to VTL1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MEMORY_EXIT_FLAG_EXEC, KVM_MEMORY_EXIT_FLAG_XU } from '../../src/kvm/exits.js';
import { KVM_X86_MBEC_ENABLE, KVM_X86_MBEC_ONLY_WITH_SMEP } from '../../src/kvm/mbec.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HV_PARTITION_ID_SELF, HvCall, HvRegisterName as N, HvStatus, HvTranslateGvaFlags as F, HvTranslateGvaResult as T, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { handleProtectionFault } from '../../src/vmm/vsm/memory-intercept.js';
import { translateGva } from '../../src/vmm/vsm/translate-va.js';
import { enableProtectionConfig } from '../../src/vmm/vsm/vsm-registers.js';
import { enterHigherVtl, returnToLowerVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { INPUT, P, STUBS, W } from '../kvm/hypercall-machine.js';
import { VsmRig } from './vsm-hcall-rig.js';

const UCODE = 0x170000, KCODE = 0x171000;
const CR4_SMEP = 1n << 20n;
const MBEC_CONTROL = KVM_X86_MBEC_ENABLE | KVM_X86_MBEC_ONLY_WITH_SMEP;
const R = 0x1, RX = 0xd, R_UX = 0x9, RW_UX = 0xb, RWX = 0xf;

/**
 * VP 0 with VTL1 enabled (with EnableMbec when `mbec`), protection on with RWX as the default, VP in VTL0.
 * HvMachine maps low memory U/S = 1; KCODE and the exception stubs are made supervisor-only so that VTL0
 * can run kernel code with CR4.SMEP set. UCODE: `mov eax, 0x77; hlt` (at CPL3 the HLT is a #GP, whose
 * stub halts); KCODE: the same.
 */
function rig(mbec: boolean, maximumVtl = 1): { r: VsmRig; v0: Vcpu; v1: Vcpu } {
  const r = new VsmRig({ maximumVtl });
  r.enablePartitionVtl(1, mbec);
  r.m.map(KCODE, KCODE, P | W);
  r.m.map(STUBS, STUBS, P | W);
  r.asm('mov eax, 0x77\n hlt', UCODE);
  r.asm('mov eax, 0x77\n hlt', KCODE);
  r.asm('hlt', 0x100000);
  const v1 = r.enableVpVtl();
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, enableProtectionConfig(RWX)), HvStatus.SUCCESS);
  return { r, v0: r.vcpu(0), v1 };
}

function setMbecEnabled(r: VsmRig, on: boolean): number {
  return r.p.writeVsmRegister(N.VsmVpSecureConfigVtl0, r.vp(), 1, on ? 1n : 0n)!;
}

/**
 * VTL0 runs the code at UCODE (CPL3) or KCODE (CPL0) with CR4.SMEP as given, under `mask` on that page:
 * 'ran', or the fault's exit flags and the VTL it was intercepted to.
 */
function run(r: VsmRig, v0: Vcpu, o: { user: boolean; smep: boolean; mask: number; vtl?: number }): 'ran' | { flags: number; vtl: number } {
  const code = o.user ? UCODE : KCODE;
  r.p.protections.protect(o.vtl ?? 1, code / 4096, code / 4096 + 1, o.mask);
  r.m.enter64(v0, code, { user: o.user });
  const s = v0.getSregs();
  s.cr4 = o.smep ? s.cr4 | CR4_SMEP : s.cr4 & ~CR4_SMEP;
  v0.setSregs(s);
  const e = r.m.runToExit(v0);
  if (e.reason === 'hlt') {
    assert.equal(v0.getRegs().rax & 0xffn, 0x77n);
    assert.equal(r.m.stubVector(v0), o.user ? 13 : -1, 'a user HLT is a #GP; kernel code halts itself');
    return 'ran';
  }
  assert.equal(e.reason, 'memory-fault');
  if (e.reason !== 'memory-fault') throw new Error('unreachable');
  assert.equal(e.gpa, code);
  const out = handleProtectionFault(r.p, v0, e);
  assert.equal(out.kind, 'intercepted');
  if (out.kind !== 'intercepted') throw new Error('unreachable');
  assert.equal(r.vp().activeVtl, out.vtl, 'entered the intercepting VTL');
  returnToLowerVtl(r.p, r.vp(), true);
  return { flags: e.flags, vtl: out.vtl };
}

const EXEC = { flags: KVM_MEMORY_EXIT_FLAG_EXEC, vtl: 1 }, EXEC_USER = { flags: KVM_MEMORY_EXIT_FLAG_EXEC | KVM_MEMORY_EXIT_FLAG_XU, vtl: 1 };

test('§2.12/§3.7: MbecVtlMask offers VTL1; EnableMbec is recorded in MbecEnabledVtlSet; without it MBEC stays refused', () => {
  const { r } = rig(true);
  assert.equal(r.p.capabilities.mbecVtlMask, 0b10);
  assert.equal(r.p.isMbecEnabled(1), true);
  assert.equal(r.p.readVsmRegister(N.VsmPartitionStatus, r.vp(), 0, true), 0x10003n | (0b10n << 20n), 'MbecEnabledVtlSet {1} at bits 35:20');
  const plain = rig(false).r;
  assert.equal(plain.p.readVsmRegister(N.VsmPartitionStatus, plain.vp(), 0, true), 0x10003n);
  assert.equal(setMbecEnabled(plain, true), HvStatus.INVALID_REGISTER_VALUE, 'MbecEnabled from a VTL without MBEC');
  assert.equal(plain.vcpu(0).getMbecControl(), 0);
});

test('§3.7: MbecEnabled in VsmVpSecureConfigVtl0 turns kvm\'s MBEC (only with SMEP) on for VTL0\'s Vcpu; ActiveMbecEnabled follows the active VTL', () => {
  const { r, v0, v1 } = rig(true);
  const vpStatus = () => r.p.readVsmRegister(N.VsmVpStatus, r.vp(), r.vp().activeVtl, true)!;
  assert.equal(setMbecEnabled(r, true), HvStatus.SUCCESS);
  assert.equal(v0.getMbecControl(), MBEC_CONTROL);
  assert.equal(v1.getMbecControl(), 0, 'nobody enabled MBEC for VTL1');
  assert.equal(r.p.readVsmRegister(N.VsmVpSecureConfigVtl0, r.vp(), 1, true), 1n);
  assert.equal(vpStatus(), 0x30000n | 0x10n, 'in VTL0: ActiveVtl 0, ActiveMbecEnabled');
  enterHigherVtl(r.p, r.vp(), 1, HvVtlEntryReason.VtlCall);
  assert.equal(vpStatus(), 0x30001n, 'in VTL1: ActiveMbecEnabled 0');
  // TlbLocked beside it keeps MBEC; clearing MbecEnabled turns it off.
  assert.equal(r.p.writeVsmRegister(N.VsmVpSecureConfigVtl0, r.vp(), 1, 3n), HvStatus.SUCCESS);
  assert.equal(v0.getMbecControl(), MBEC_CONTROL);
  assert.equal(setMbecEnabled(r, false), HvStatus.SUCCESS);
  assert.equal(v0.getMbecControl(), 0);
  returnToLowerVtl(r.p, r.vp(), true);
  assert.equal(vpStatus(), 0x30000n);
});

test('§2.18/§3.8: ModifyVtlProtectionMask takes UX without KX only from a VTL enabled with MBEC; KX without UX never', () => {
  for (const mbec of [false, true]) {
    const { r, v1 } = rig(mbec);
    enterHigherVtl(r.p, r.vp(), 1, HvVtlEntryReason.VtlCall);
    const protect = (mask: number) => {
      r.m.writeQwords(INPUT, [HV_PARTITION_ID_SELF, BigInt(mask), BigInt(UCODE / 4096)]);
      return r.call(v1, makeHypercallControl({ code: HvCall.ModifyVtlProtectionMask, repCount: 1 }), BigInt(INPUT));
    };
    for (const mask of [R_UX, RW_UX]) {
      const res = protect(mask);
      assert.deepEqual([res.status, res.reps], mbec ? [HvStatus.SUCCESS, 1] : [HvStatus.INVALID_REGISTER_VALUE, 0], `0x${mask.toString(16)}, MBEC ${mbec}`);
    }
    for (const mask of [0x5, 0x7, 0x8]) assert.equal(protect(mask).status, HvStatus.INVALID_REGISTER_VALUE, `0x${mask.toString(16)}`);
    assert.equal(r.p.vms[0]!.memoryAttributes.get(UCODE / 4096), mbec ? 0x14 : 0, 'RW+UX is kvm NX|XU');
    assert.equal(r.p.protections.maskOf(1, UCODE / 4096), mbec ? RW_UX : undefined);
  }
});

test('§3.8: with MBEC and SMEP, user code runs under UX alone and kernel code under KX alone; the other is intercepted', () => {
  const { r, v0 } = rig(true);
  assert.equal(setMbecEnabled(r, true), HvStatus.SUCCESS);
  assert.equal(run(r, v0, { user: true, smep: true, mask: R_UX }), 'ran');
  assert.deepEqual(run(r, v0, { user: true, smep: true, mask: R }), EXEC_USER, 'UX = 0: the fault says XU, VTL1 gets it');
  assert.deepEqual(run(r, v0, { user: false, smep: true, mask: R_UX }), EXEC, 'a kernel fetch needs KX');
  assert.equal(run(r, v0, { user: false, smep: true, mask: RX }), 'ran');
  assert.equal(run(r, v0, { user: true, smep: true, mask: RX }), 'ran', 'KX+UX runs user code too');
});

test('§3.8: "SMEP available and disabled": KX governs every fetch; MbecEnabled off: KX governs too', () => {
  const { r, v0 } = rig(true);
  assert.equal(setMbecEnabled(r, true), HvStatus.SUCCESS);
  assert.deepEqual(run(r, v0, { user: true, smep: false, mask: R_UX }), EXEC, 'no XU flag: the fetch was checked as a kernel one');
  assert.equal(run(r, v0, { user: true, smep: true, mask: R_UX }), 'ran', 'SMEP back on');
  assert.equal(setMbecEnabled(r, false), HvStatus.SUCCESS);
  assert.deepEqual(run(r, v0, { user: true, smep: true, mask: R_UX }), EXEC);
});

test('§3.8/§3.10 MBEC with VTL2 above: a user fetch goes to the lowest VTL whose UX denies it, a kernel fetch to the lowest whose KX does', () => {
  const { r, v0 } = rig(true, 2);
  r.enablePartitionVtl(2, true);
  r.enableVpVtl(0, 2);
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 2, enableProtectionConfig(RWX)), HvStatus.SUCCESS);
  assert.equal(setMbecEnabled(r, true), HvStatus.SUCCESS);
  // VTL1 lets VTL0 run user code only; VTL2 lets it read only: the user fetch passes VTL1's UX and fails VTL2's.
  r.p.protections.protect(1, UCODE / 4096, UCODE / 4096 + 1, R_UX);
  assert.deepEqual(run(r, v0, { user: true, smep: true, mask: R, vtl: 2 }), { ...EXEC_USER, vtl: 2 });
  r.p.protections.protect(1, KCODE / 4096, KCODE / 4096 + 1, R_UX);
  assert.deepEqual(run(r, v0, { user: false, smep: true, mask: R, vtl: 2 }), EXEC, 'the kernel fetch fails VTL1\'s KX first');
  assert.equal(run(r, v0, { user: true, smep: true, mask: RX, vtl: 2 }), 'ran');
});

test('§5 TranslateVirtualAddress ValidateExecute checks what VTL0\'s own fetch would: UX at a user-mode address under MBEC and SMEP, else KX', () => {
  const { r, v0 } = rig(true);
  const exec = (gva: number, smep: boolean) => {
    const s = v0.getSregs();
    s.cr4 = smep ? s.cr4 | CR4_SMEP : s.cr4 & ~CR4_SMEP;
    v0.setSregs(s);
    return translateGva(v0, BigInt(gva), F.ValidateExecute | F.PrivilegeExempt).code;
  };
  r.p.protections.protect(1, UCODE / 4096, UCODE / 4096 + 1, R_UX);
  r.p.protections.protect(1, KCODE / 4096, KCODE / 4096 + 1, R_UX);
  assert.equal(exec(UCODE, true), T.Intercept, 'MBEC not enabled for VTL0 yet: KX');
  assert.equal(setMbecEnabled(r, true), HvStatus.SUCCESS);
  assert.equal(exec(UCODE, true), T.Success, 'user-mode address: UX');
  assert.equal(exec(KCODE, true), T.Intercept, 'supervisor address: KX');
  assert.equal(exec(UCODE, false), T.Intercept, 'SMEP off: KX');
});
