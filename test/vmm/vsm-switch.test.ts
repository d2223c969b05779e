// VtlCall / VtlReturn in the VMM (src/vmm/vsm/vtl-switch.ts, hc-vsm.ts):
// private state stays with each VTL's Vcpu, shared state follows the VP,
// the entry reason lands in the entered VTL's VP assist page, the lower
// VTL waits in HV_INACTIVE_VTL (tlfs-vsm-facts §3.2-§3.4; kvm-api-facts
// §3.1, §3.3), and the machine's scheduler turns a parked higher VTL's
// wake-up into an interrupt entry (§3.10).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import { REG_SPIV } from '../../src/kvm/lapic-regs.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HvCall, HvMsr, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { contextFrom, machineWithVtl1, VsmRig, VTL0_ASSIST, VTL1_ASSIST, VTL1_CODE, VTL1_PML4, VTL1_STACK_TOP } from './vsm-hcall-rig.js';

const MSR_FS_BASE = 0xc000_0100;
const VTL0_CODE = 0x10000;
/** The hypercall-page stubs of §3.6, inline: control input in RCX (ECX for VtlReturn's fast bit), code into ECX. */
const VTL_CALL = `mov rax, rcx\n mov ecx, ${HvCall.VtlCall}\n vmcall`;
const VTL_RETURN = `mov rax, rcx\n mov ecx, ${HvCall.VtlReturn}\n vmcall`;

/** VSM rig with VTL1 enabled on VP 0 (host side), VTL1 starting at `vtl1` with a private CR3, RSP and RFLAGS 0x2. */
function rigWithVtl1(vtl0: string, vtl1: string, o: { maximumVtl?: number } = {}): { r: VsmRig; v0: Vcpu; v1: Vcpu; labels0: Record<string, number>; labels1: Record<string, number> } {
  const r = new VsmRig({ maximumVtl: o.maximumVtl });
  r.enablePartitionVtl(1);
  const labels0 = r.asm(vtl0, VTL0_CODE);
  const labels1 = r.asm(vtl1, VTL1_CODE);
  const v0 = r.vcpu(0);
  r.m.jump(v0, VTL0_CODE);
  const v1 = r.enableVpVtl(0, 1, contextFrom(v0, { rip: VTL1_CODE, rsp: VTL1_STACK_TOP, cr3: r.copyPml4() }));
  return { r, v0, v1, labels0, labels1 };
}

const SHARED = { rbx: 0x1111_0000_0000_0001n, rdx: 0x2222n, rsi: 0x3333n, rdi: 0x4444n, rbp: 0x5555n, r8: 0x8888n, r9: 0x9999n, r10: 0xa0a0n, r11: 0xb0b0n, r12: 0xc0c0n, r13: 0xd0d0n, r14: 0xe0e0n, r15: 0xf0f0n };
const setShared = Object.entries(SHARED).map(([k, v]) => `mov ${k}, 0x${v.toString(16)}`).join('\n');

test('§3.2-§3.4: VtlCall / VtlReturn move the VP between VTLs; private state stays, shared state follows, RAX/RCX come from the assist page', () => {
  const { r, v0, v1, labels0, labels1 } = rigWithVtl1(`
    mov ecx, ${MSR_FS_BASE}
    mov eax, 0x1234000
    xor edx, edx
    wrmsr
    ${setShared}
    std
    xor ecx, ecx
    ${VTL_CALL}
  back1:
    hlt
    xor ecx, ecx
    ${VTL_CALL}
  back2:
    hlt`, `
    hlt
  resume1:
    mov rbx, 0xb1b1
    mov r15, 0xf1f1
    mov eax, 5
    mov cr8, rax
    mov ecx, ${MSR_FS_BASE}
    mov eax, 0x5678000
    xor edx, edx
    wrmsr
    mov rax, 0x5a5a
    mov [${VTL1_ASSIST + 0x10}], rax
    mov rax, 0x6b6b
    mov [${VTL1_ASSIST + 0x18}], rax
    mov rax, 0x40002
    push rax
    popfq
    xor ecx, ecx
    ${VTL_RETURN}
  vtl1_back:
    hlt
  resume2:
    mov ecx, 1
    ${VTL_RETURN}
    hlt`);
  const mem = r.m.vm.mem;
  // Each VTL enables its own assist page (a per-VTL synthetic MSR, §3.2, §3.3); sentinels in VTL1's RAX/RCX fields.
  assert.ok(v0.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL0_ASSIST | 1, 0));
  assert.ok(v1.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL1_ASSIST | 1, 0));
  mem.write64(VTL1_ASSIST + 0x10, 0xaaaan);
  mem.write64(VTL1_ASSIST + 0x18, 0xbbbbn);
  v0.setXmm(3, { low: 0x3030n, high: 0x3131n });
  const vp = r.vp();

  // 1. VtlCall: VP 0 runs VTL1, which halts at its first instruction.
  assert.equal(r.drive(), 1);
  assert.equal(vp.activeVtl, 1);
  assert.equal(v0.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL, 'kvm §3.3: the lower VTL waits in HV_INACTIVE_VTL');
  let g1 = v1.getRegs();
  for (const [k, v] of Object.entries(SHARED)) assert.equal(g1[k as keyof typeof g1], v, `shared ${k} follows the VP (§3.2)`);
  assert.equal(g1.rax, 0n, 'RAX: the VtlCall input the stub left (§3.4)');
  assert.equal(g1.rcx, BigInt(HvCall.VtlCall), 'RCX: the call code the stub loaded');
  assert.deepEqual(v1.getXmm(3), { low: 0x3030n, high: 0x3131n }, 'XMM is shared');
  assert.equal(g1.rip, BigInt(labels1.resume1), 'VTL1 started at its initial-context RIP');
  assert.equal(g1.rsp, BigInt(VTL1_STACK_TOP), 'RSP is private');
  assert.equal(g1.rflags, 0x2n, 'RFLAGS is private: VTL0 set DF, VTL1 does not see it');
  assert.equal(v1.getSregs().cr3, BigInt(VTL1_PML4), 'CR3 is private');
  assert.equal(mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.VtlCall, '§3.4: entry reason 1 in the entered VTL\'s control area');
  // Issue 5: the caller's RAX/RCX are saved in the entered VTL's control area (the sentinels are overwritten).
  assert.equal(mem.read64(VTL1_ASSIST + 0x10), 0n, 'VtlReturnX64Rax = VTL0\'s RAX at the VtlCall');
  assert.equal(mem.read64(VTL1_ASSIST + 0x18), BigInt(HvCall.VtlCall), 'VtlReturnX64Rcx = VTL0\'s RCX at the VtlCall');
  assert.equal(mem.read32(VTL0_ASSIST + 8), 0, 'VTL0\'s page has no VTL control area (§3.3)');
  assert.equal(v0.getRegs().rip, BigInt(labels0.back1), '§3.4: VTL0\'s RIP is past its VMCALL before VTL1 runs');

  // 2. VTL1 changes shared and private state and makes a (non-fast) VtlReturn.
  v1.setMpState(KVM_MP_STATE_RUNNABLE); // leave the HLT
  assert.equal(r.drive(), 0);
  assert.equal(vp.activeVtl, 0);
  assert.equal(v1.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  const g0 = v0.getRegs();
  assert.equal(g0.rip, BigInt(labels0.back1) + 1n, 'VTL0 resumed after its VMCALL (RIP advanced, kvm §3.1) and ran the HLT');
  assert.equal(g0.rax, 0x5a5an, '§3.4: RAX from VtlReturnX64Rax of the returning VTL');
  assert.equal(g0.rcx, 0x6b6bn, '§3.4: RCX from VtlReturnX64Rcx');
  assert.equal(g0.rbx, 0xb1b1n, 'VTL1\'s RBX (shared)');
  assert.equal(g0.r15, 0xf1f1n);
  assert.equal(g0.r12, SHARED.r12, 'untouched shared registers keep their value');
  // VTL0's own flags: DF from its STD, ZF|PF from its XOR ECX,ECX before the call; VTL1's AC (0x40000) did not leak.
  assert.equal(g0.rflags, 0x446n, 'VTL0\'s RFLAGS survived');
  assert.equal(g0.rsp, 0x81000n, 'VTL0\'s RSP');
  const s0 = v0.getSregs();
  assert.equal(s0.cr3, BigInt(r.m.pml4), 'VTL0\'s CR3');
  assert.equal(s0.cr8, 0n, 'TPR is private (each VTL has its own local APIC): VTL1 set 5');
  assert.equal(s0.fs.base, 0x1234000n, 'FS base is private');

  // 3. The second VtlCall finds VTL1 as it left it.
  v0.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(), 1);
  g1 = v1.getRegs();
  assert.equal(g1.rip, BigInt(labels1.vtl1_back) + 1n, 'VTL1 resumed after its VtlReturn VMCALL');
  assert.equal(g1.rflags, 0x40046n, 'VTL1\'s RFLAGS survived: AC from its POPFQ, ZF|PF from its XOR before the return');
  const s1 = v1.getSregs();
  assert.equal(s1.cr8, 5n);
  assert.equal(s1.fs.base, 0x5678000n);
  assert.equal(s1.cr3, BigInt(VTL1_PML4));
  assert.equal(g1.rbx, 0xb1b1n, 'shared registers came back from VTL0 unchanged');
  assert.equal(mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.VtlCall);

  // 4. Fast VtlReturn: RAX and RCX are not restored (§3.4): VTL0 sees what the stub left.
  v1.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(), 0);
  const g = v0.getRegs();
  assert.equal(g.rip, BigInt(labels0.back2) + 1n);
  assert.equal(g.rax, 1n, 'the fast bit the stub moved into RAX');
  assert.equal(g.rcx, BigInt(HvCall.VtlReturn));
  const enters = r.p.vms[1]!.trace!.named('vsm_vtl_enter').length, returns = r.m.vm.trace!.named('vsm_vtl_return').length;
  assert.deepEqual([enters, returns], [2, 2], 'trace events of both switches');
});

test('§3.4: a 32-bit lower VTL gets EAX, ECX and EDX from the x86 view of the control area', () => {
  const r = new VsmRig();
  r.enablePartitionVtl(1);
  const v0 = r.vcpu(0);
  const ctx = contextFrom(v0, { rip: VTL1_CODE, rsp: VTL1_STACK_TOP });
  const labels0 = r.m.asm(`.code32
    xor eax, eax
    xor edx, edx
    mov ecx, eax
    mov eax, ${HvCall.VtlCall}
    vmcall
  back:
    hlt`, VTL0_CODE);
  r.asm(`
    mov dword ptr [${VTL1_ASSIST + 0x10}], 0x11111111
    mov dword ptr [${VTL1_ASSIST + 0x14}], 0x22222222
    mov dword ptr [${VTL1_ASSIST + 0x18}], 0x33333333
    xor ecx, ecx
    ${VTL_RETURN}`, VTL1_CODE);
  const v1 = r.enableVpVtl(0, 1, ctx);
  assert.ok(v1.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL1_ASSIST | 1, 0));
  r.m.enter32(v0, VTL0_CODE);
  assert.equal(r.drive(), 0);
  const g = v0.getRegs();
  assert.equal(g.rip, BigInt(labels0.back) + 1n);
  assert.deepEqual([g.rax, g.rcx, g.rdx], [0x11111111n, 0x22222222n, 0x33333333n]);
});

/** Runs `vtl0` (and `vtl1` when VTL1 is enabled) until a HLT; returns whether it was the #UD stub, and the #UD's RIP. */
function udOf(r: VsmRig, v: Vcpu): { ud: boolean; rip: bigint } {
  const ud = r.m.stubVector(v) === 6;
  return { ud, rip: ud ? r.m.vm.mem.read64(Number(v.getRegs().rsp)) : -1n };
}

test('§3.4: VtlCall is #UD without an enabled higher VTL, with input ≠ 0, or with more than the code in the control word', () => {
  const cases: [string, string][] = [
    ['no VTL1 on this VP', `xor ecx, ecx\n ${VTL_CALL}`],
    ['VTL1 enabled for the partition only', `xor ecx, ecx\n ${VTL_CALL}`],
    ['input (RAX after the stub) = 1', `mov ecx, 1\n ${VTL_CALL}`],
    ['fast bit in the control word', `xor ecx, ecx\n mov rax, rcx\n mov ecx, ${HvCall.VtlCall | 0x10000}\n vmcall`],
    ['VtlReturn from VTL0', `xor ecx, ecx\n ${VTL_RETURN}`],
  ];
  for (const [what, code] of cases) {
    const r = new VsmRig();
    if (what !== 'no VTL1 on this VP') r.enablePartitionVtl(1);
    const labels = r.asm(`${code}\n after: hlt`, VTL0_CODE);
    const v0 = r.vcpu(0);
    r.m.jump(v0, VTL0_CODE);
    assert.equal(r.drive(), 0, what);
    const u = udOf(r, v0);
    assert.ok(u.ud, `${what}: #UD`);
    assert.equal(u.rip, BigInt(labels.after - 3), `${what}: the #UD's RIP is the VMCALL, which did not complete`);
    assert.equal(r.vp().activeVtl, 0);
  }
});

test('§3.4: VtlCall from the highest enabled VTL is #UD there', () => {
  const { r, labels1 } = rigWithVtl1(`xor ecx, ecx\n ${VTL_CALL}\n hlt`, `xor ecx, ecx\n ${VTL_CALL}\n after: hlt`);
  assert.equal(r.drive(), 1);
  const u = udOf(r, r.vcpu(0, 1));
  assert.ok(u.ud);
  assert.equal(u.rip, BigInt(labels1.after - 3));
});

test('§3.4: VtlReturn with input bits 63:1 set is #UD in the higher VTL, which keeps running', () => {
  const { r, v0, v1, labels1 } = rigWithVtl1(`xor ecx, ecx\n ${VTL_CALL}\n hlt`, `mov ecx, 2\n ${VTL_RETURN}\n after: hlt`);
  assert.equal(r.drive(), 1);
  const u = udOf(r, v1);
  assert.ok(u.ud);
  assert.equal(u.rip, BigInt(labels1.after - 3));
  assert.equal(v0.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
});

test('§3.4: VtlCall goes to the next higher enabled VTL only; VtlReturn goes back the way the VP came (VTL0 → 1 → 2 → 1 → 0)', () => {
  const { r, v0, v1 } = rigWithVtl1(`xor ecx, ecx\n ${VTL_CALL}\n hlt`, `
    xor ecx, ecx
    ${VTL_CALL}
    mov r9, 0x1d1
    xor ecx, ecx
    ${VTL_RETURN}`, { maximumVtl: 2 });
  r.enablePartitionVtl(2);
  const vp = r.vp();
  r.asm(`mov r8, 0x2d2\n mov ecx, 1\n ${VTL_RETURN}`, 0x140000);
  const v2 = r.enableVpVtl(0, 2, contextFrom(v0, { rip: 0x140000, rsp: 0x141000 }));
  const seen: number[] = [];
  const orig = r.m.runToExit.bind(r.m);
  r.m.runToExit = (v: Vcpu, budget?: number) => { seen.push(vp.activeVtl); return orig(v, budget); };
  assert.equal(r.drive(), 0);
  assert.deepEqual(seen, [0, 1, 2, 1, 0], 'the VTL each run happened in');
  const g = v0.getRegs();
  assert.equal(g.r8, 0x2d2n, 'VTL2\'s R8 reached VTL0 through VTL1 (shared)');
  assert.equal(g.r9, 0x1d1n);
  assert.equal(v1.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(v2.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.deepEqual(vp.returnStack, []);
});

// ---------------------------------------------------------------- the machine's scheduler

test('§3.10, kvm §3.3: an interrupt for a parked VTL1 wakes it and the machine enters VTL1 with entry reason 2 (RFLAGS.IF of both VTLs is 0)', () => {
  // VTL1 reports its entry reason through the debug-exit port: the machine's devices serve every VTL.
  const { m, v0, v1 } = machineWithVtl1('spin: jmp spin', 'mov eax, [0x202008]\n out 0xf4, eax\n hlt');
  v1.apic.mmioWrite(REG_SPIV, 0x1ff);
  v1.injectInterrupt(0x40);
  assert.deepEqual(m.run(), { kind: 'exit', code: HvVtlEntryReason.Interrupt });
  assert.equal(m.vsm!.vps[0]!.activeVtl, 1);
  assert.equal(v0.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(v1.apic.pendingVector(), 0x40, 'VTL1 has IF = 0: the interrupt stays pending in its APIC; the entry happened anyway');
});

test('§3.10: without an event the parked VTL1 never runs; an interrupt for parked VTL0 waits while VTL1 runs', () => {
  const quiet = machineWithVtl1('spin: jmp spin', 'out 0xf4, eax');
  assert.equal(quiet.m.run().kind, 'budget', 'VTL0 spun through the whole budget; VTL1 did not run');
  assert.equal(quiet.m.vsm!.vps[0]!.activeVtl, 0);

  const { m, v0, v1 } = machineWithVtl1('spin: jmp spin', 'spin1: jmp spin1');
  v1.apic.mmioWrite(REG_SPIV, 0x1ff);
  v1.injectInterrupt(0x40); // enters VTL1, which then spins
  v0.apic.mmioWrite(REG_SPIV, 0x1ff);
  v0.injectInterrupt(0x41);
  const rip0 = v0.getRegs().rip;
  assert.equal(m.run().kind, 'budget');
  assert.equal(m.vsm!.vps[0]!.activeVtl, 1, 'VTL1 was entered and was never preempted by VTL0\'s interrupt');
  assert.equal(v0.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(v0.getRegs().rip, rip0, 'VTL0 did not run');
  assert.equal(v0.apic.pendingVector(), 0x41, 'its interrupt waits in its own APIC');
});
