// A VTL protection denying a slow hypercall's buffer (memory-intercept.ts
// checkVsmHypercallBuffer): for the calls the VMM answers, a GPA intercept to
// the protecting VTL as the TLFS has the hypervisor raise one (tlfs-vsm-facts
// §1.1; message §4.4/§4.5: Read for the input, Write for the output, no GVA,
// the VMCALL's RIP and bytes), the call left unanswered and run again after
// VtlReturn; kvm's own calls keep INVALID_HYPERCALL_INPUT (kvm-api-facts §2.7),
// and so does a denial whose VTL is not enabled on the calling VP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl, parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import { HV_PARTITION_ID_SELF, HvCall, HvMessageType, HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { enableProtectionConfig } from '../../src/vmm/vsm/vsm-registers.js';
import { interceptRig, INTERCEPT_VTL0_CODE, VSM_FLAGS, VTL1_ASSIST, VTL1_CODE, VTL1_SIM, VsmRig } from './vsm-hcall-rig.js';

const IN = 0x140000, OUT = 0x141000;
const R = 0x1, RWX = 0xf, NONE = 0x0;
const getRegs1 = makeHypercallControl({ code: HvCall.GetVpRegisters, repCount: 1 });

/** VTL0 makes one slow GetVpRegisters(VsmVpStatus) with input at IN and output at OUT, then halts. */
const VTL0 = `
    mov rcx, ${getRegs1}
    mov rdx, ${IN}
    mov r8, ${OUT}
  call_site:
    vmcall
    hlt`;

function setUp(protectIn: number, protectOut: number) {
  const { r, v0, l0 } = interceptRig(VTL0);
  r.m.writeQwords(IN, [HV_PARTITION_ID_SELF, 0n, BigInt(N.VsmVpStatus)]);
  r.m.vm.mem.write64(OUT, 0xeeeeeeeeeeeeeeeen);
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, enableProtectionConfig(RWX)), HvStatus.SUCCESS);
  r.p.protections.protect(1, IN / 4096, IN / 4096 + 1, protectIn);
  r.p.protections.protect(1, OUT / 4096, OUT / 4096 + 1, protectOut);
  return { r, v0, l0 };
}

/**
 * VTL1 goes on from its HLT to its non-fast VtlReturn, having put VTL0's RAX and RCX (the call's control word), which
 * its VtlReturn sequence overwrites (shared registers), into its control area from the message, as a VTL1 that
 * handled the intercept does: the return loads them back (§3.4).
 */
function resumeVtl1(r: VsmRig): void {
  const mem = r.m.vm.mem, pl = VTL1_SIM + 16;
  mem.write64(VTL1_ASSIST + 0x10, mem.read64(pl + 0x70));
  mem.write64(VTL1_ASSIST + 0x18, mem.read64(pl + 0x78));
  mem.write32(VTL1_SIM, 0); // the message slot is free again
  r.vcpu(0, 1).setMpState(KVM_MP_STATE_RUNNABLE);
}

function checkMessage(r: VsmRig, o: { access: number; gpa: number; rip: number }): void {
  const mem = r.m.vm.mem, pl = VTL1_SIM + 16;
  assert.equal(mem.read32(VTL1_SIM), HvMessageType.GpaIntercept);
  assert.equal(mem.read8(pl + 4) & 0xf, 3, 'instruction length: the VMCALL');
  assert.equal(mem.read8(pl + 5), o.access);
  assert.equal(mem.read64(pl + 0x18), BigInt(o.rip), 'RIP on the VMCALL');
  assert.equal(mem.read8(pl + 0x2c), 3, 'instruction byte count');
  assert.equal(mem.read8(pl + 0x2d), 0, 'MemoryAccessInfo: no GVA (a hypercall buffer is a GPA), no TLB lock, no output pending');
  assert.equal(mem.read64(pl + 0x30), 0n, 'GVA');
  assert.equal(mem.read64(pl + 0x38), BigInt(o.gpa), 'GPA: the buffer');
  assert.deepEqual([...mem.read(pl + 0x40, 4)], [0x0f, 0x01, 0xc1, 0], 'VMCALL');
}

test('an input page VTL1 made unreadable: Read intercept to VTL1, the VMCALL not completed; after VtlReturn with the page readable the call runs', () => {
  const { r, v0, l0 } = setUp(NONE, RWX);
  assert.equal(r.drive(), 1, 'VTL1 entered');
  assert.equal(r.m.vm.mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.Intercept);
  checkMessage(r, { access: 0, gpa: IN, rip: l0.call_site });
  assert.equal(v0.getRegs().rip, BigInt(l0.call_site), 'VTL0 still on the VMCALL');
  assert.equal(r.m.vm.mem.read64(OUT), 0xeeeeeeeeeeeeeeeen, 'no output');
  // VTL1 lifts the protection and returns: the VMCALL runs again and succeeds.
  r.p.protections.protect(1, IN / 4096, IN / 4096 + 1, RWX);
  resumeVtl1(r);
  assert.equal(r.drive(), 0, 'back in VTL0, which halts after the call');
  const res = parseHypercallResult(v0.getRegs().rax);
  assert.deepEqual([res.status, res.repsCompleted], [HvStatus.SUCCESS, 1]);
  assert.equal(r.m.vm.mem.read64(OUT), 0x30000n, 'VsmVpStatus as VTL0 reads it: ActiveVtl 0, EnabledVtlSet {0, 1}');
  assert.equal(v0.getRegs().rip, BigInt(l0.call_site) + 4n, 'past the VMCALL and the HLT');
});

test('an output page VTL1 made read-only: Write intercept (nothing written, nothing done); unchanged, the call is intercepted again', () => {
  const { r, v0, l0 } = setUp(RWX, R);
  assert.equal(r.drive(), 1);
  checkMessage(r, { access: 1, gpa: OUT, rip: l0.call_site });
  assert.equal(r.m.vm.mem.read64(OUT), 0xeeeeeeeeeeeeeeeen);
  resumeVtl1(r);
  assert.equal(r.drive(), 1, 'returned without a change: intercepted again');
  assert.equal(r.m.vm.mem.read32(VTL1_SIM), HvMessageType.GpaIntercept);
  assert.equal(v0.getRegs().rip, BigInt(l0.call_site));
});

test('kvm\'s own calls keep kvm\'s rule: a protected input page is INVALID_HYPERCALL_INPUT, no intercept', () => {
  const flush = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace });
  const r = new VsmRig({ flags: [...VSM_FLAGS, 'hv-tlbflush'] });
  r.enablePartitionVtl(1);
  r.asm('hlt', VTL1_CODE);
  r.asm(`mov rcx, ${flush}\n mov rdx, ${IN}\n xor r8d, r8d\n vmcall\n hlt`, INTERCEPT_VTL0_CODE);
  r.m.jump(r.vcpu(0), INTERCEPT_VTL0_CODE);
  r.enableVpVtl();
  r.m.writeQwords(IN, [0n, 0n, 0n]);
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, enableProtectionConfig(RWX)), HvStatus.SUCCESS);
  r.p.protections.protect(1, IN / 4096, IN / 4096 + 1, NONE);
  assert.equal(r.drive(), 0, 'no VTL switch');
  assert.equal(parseHypercallResult(r.vcpu(0).getRegs().rax).status, HvStatus.INVALID_HYPERCALL_INPUT);
});

test('a denial the calling VP cannot report (VTL1 not enabled on it) stays INVALID_HYPERCALL_INPUT', () => {
  const r = new VsmRig({ ids: [0, 1] });
  r.enablePartitionVtl(1);
  r.asm('hlt', VTL1_CODE);
  r.enableVpVtl(0);
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(0), 1, enableProtectionConfig(RWX)), HvStatus.SUCCESS);
  r.m.writeQwords(IN, [HV_PARTITION_ID_SELF, 0n, BigInt(N.VsmVpStatus)]);
  r.p.protections.protect(1, IN / 4096, IN / 4096 + 1, NONE);
  const res = r.call(r.vcpu(1), getRegs1, BigInt(IN), BigInt(OUT));
  assert.equal(res.status, HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(r.vp(1).activeVtl, 0);
});

test('the buffer checks come first: TranslateVirtualAddress with its input page unreadable is a Read intercept before any of the call\'s own checks', () => {
  const translate = makeHypercallControl({ code: HvCall.TranslateVirtualAddress });
  const { r, v0, l0 } = interceptRig(`
    mov rcx, ${translate}
    mov rdx, ${IN}
    mov r8, ${OUT}
  call_site:
    vmcall
    hlt`);
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, enableProtectionConfig(RWX)), HvStatus.SUCCESS);
  r.p.protections.protect(1, IN / 4096, IN / 4096 + 1, NONE);
  assert.equal(r.drive(), 1);
  checkMessage(r, { access: 0, gpa: IN, rip: l0.call_site });
  r.p.protections.protect(1, IN / 4096, IN / 4096 + 1, RWX);
  resumeVtl1(r);
  assert.equal(r.drive(), 0);
  assert.equal(parseHypercallResult(v0.getRegs().rax).status, HvStatus.INVALID_PARTITION_ID, 'then the call\'s own checks (the input is zeros: partition 0)');
});
