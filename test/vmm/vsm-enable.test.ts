// HvCallEnablePartitionVtl (0x0D) and HvCallEnableVpVtl (0x0F) answered by
// the VMM (src/vmm/vsm/hc-vsm.ts) through real hyperv-hcall exits
// (tlfs-vsm-facts §2.12, §2.13, §3.1; kvm-api-facts §3.2, §3.3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MP_STATE_HV_INACTIVE_VTL } from '../../src/kvm/mp-state.js';
import { HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, HvCall, HvEnableVpVtlInput, HvStatus } from '../../src/spec/tlfs.js';
import { INPUT } from '../kvm/hypercall-machine.js';
import { CONTEXT, contextFrom, VsmRig, VTL1_CODE, VTL1_PML4, VTL1_STACK_TOP } from './vsm-hcall-rig.js';

const enablePartition = makeHypercallControl({ code: HvCall.EnablePartitionVtl });
const enablePartitionFast = makeHypercallControl({ code: HvCall.EnablePartitionVtl, fast: true });
const enableVp = makeHypercallControl({ code: HvCall.EnableVpVtl });

/** EnablePartitionVtl (slow) from VP `vp`'s VTL0 with the 16-byte input of §2.12. */
function enablePartitionVtl(r: VsmRig, vtl: number, o: { partition?: bigint; flags?: number; reserved?: number; vp?: number } = {}) {
  r.m.writeQwords(INPUT, [o.partition ?? HV_PARTITION_ID_SELF, BigInt(vtl) | (BigInt(o.flags ?? 0) << 8n) | (BigInt(o.reserved ?? 0) << 16n)]);
  return r.call(r.vcpu(o.vp ?? 0), enablePartition, BigInt(INPUT));
}

/** EnableVpVtl (slow) from `caller` with the 240-byte input of §2.13. */
function enableVpVtl(r: VsmRig, vpIndex: number, vtl: number, context: Uint8Array, o: { partition?: bigint; reserved?: number; caller?: number } = {}) {
  const mem = r.m.vm.mem;
  mem.write64(INPUT, o.partition ?? HV_PARTITION_ID_SELF);
  mem.write32(INPUT + HvEnableVpVtlInput.VpIndex, vpIndex);
  mem.write32(INPUT + HvEnableVpVtlInput.TargetVtl, vtl | ((o.reserved ?? 0) << 8));
  mem.write(INPUT + HvEnableVpVtlInput.VpContext, context);
  return r.call(r.vcpu(o.caller ?? 0), enableVp, BigInt(INPUT));
}

const vtl1Context = (r: VsmRig, extra: { cr0?: bigint } = {}) =>
  contextFrom(r.vcpu(0), { rip: VTL1_CODE, rsp: VTL1_STACK_TOP, rflags: 0x2n, cr3: r.copyPml4(), ...extra });

test('§2.12: EnablePartitionVtl(self, VTL1) from VTL0 creates VTL1\'s Vm over the same memory and memslots', () => {
  const r = new VsmRig();
  const res = enablePartitionVtl(r, 1);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.equal(res.exit.reason, 'hlt', 'the VMCALL completed and the HLT after it ran');
  const vm1 = r.p.vms[1]!;
  assert.ok(vm1 !== r.m.vm);
  assert.equal(vm1.mem, r.m.vm.mem, 'DESIGN §1: every VTL\'s Vm runs over the same guest memory');
  assert.deepEqual(vm1.memslots.list(), r.m.vm.memslots.list());
  assert.equal(vm1.clock, r.m.vm.clock, 'one guest clock for all VTLs');
  assert.ok(vm1.hyperv!.features.has('AccessVsm'), 'same Hyper-V features, so its Vcpus may park in HV_INACTIVE_VTL');
  assert.equal(vm1.vcpus.length, 0, 'no Vcpu until EnableVpVtl');
  assert.equal(r.p.enabledVtlSet, 0b11);
  // Enabling a VTL does not switch: VP 0 is still in VTL0.
  assert.equal(r.vp().activeVtl, 0);
});

test('§2.12: EnablePartitionVtl errors: twice, bad partition, bad VTL, flags, reserved bytes, above the maximum', () => {
  const r = new VsmRig();
  assert.equal(enablePartitionVtl(r, 1, { partition: 0n }).status, HvStatus.INVALID_PARTITION_ID);
  assert.equal(enablePartitionVtl(r, 16).status, HvStatus.INVALID_PARAMETER, 'TargetVtl is a VTL (0..15)');
  assert.equal(enablePartitionVtl(r, 0, { flags: 0x1 }).status, HvStatus.INVALID_PARAMETER, 'EnableMbec: VTL0 is not in MbecVtlMask');
  assert.equal(enablePartitionVtl(r, 1, { flags: 0x2 }).status, HvStatus.INVALID_PARAMETER, 'supervisor shadow stack not offered');
  assert.equal(enablePartitionVtl(r, 1, { flags: 0x3 }).status, HvStatus.INVALID_PARAMETER, 'nor with EnableMbec beside it');
  assert.equal(enablePartitionVtl(r, 1, { flags: 0x4 }).status, HvStatus.INVALID_PARAMETER, 'HVPT not offered');
  assert.equal(enablePartitionVtl(r, 1, { flags: 0x8 }).status, HvStatus.INVALID_PARAMETER, 'flag bits 7:3 are reserved');
  assert.equal(enablePartitionVtl(r, 1, { reserved: 1 }).status, HvStatus.INVALID_PARAMETER, 'bytes 10-15 are RsvdZ');
  assert.equal(enablePartitionVtl(r, 2).status, HvStatus.ACCESS_DENIED, 'above MaximumVtl 1 (openhcl: unsupported target)');
  assert.equal(r.p.enabledVtlSet, 0b1, 'no failed call changed anything');
  assert.equal(enablePartitionVtl(r, 1).status, HvStatus.SUCCESS);
  assert.equal(enablePartitionVtl(r, 1).status, HvStatus.VTL_ALREADY_ENABLED);
  assert.equal(enablePartitionVtl(r, 0).status, HvStatus.VTL_ALREADY_ENABLED, 'VTL0 always is');
  // Slow-call buffer rules still apply (§1.1): a misaligned input GPA.
  assert.equal(r.call(r.vcpu(0), enablePartition, BigInt(INPUT + 4)).status, HvStatus.INVALID_ALIGNMENT);
});

test('§2.12: a VTL may enable a higher VTL only as the highest enabled VTL below it (maximum VTL 2)', () => {
  const r = new VsmRig({ maximumVtl: 2 });
  assert.equal(enablePartitionVtl(r, 1).status, HvStatus.SUCCESS);
  assert.equal(enablePartitionVtl(r, 2).status, HvStatus.ACCESS_DENIED, 'VTL1 is now the highest enabled VTL below VTL2');
  const r2 = new VsmRig({ maximumVtl: 2 });
  assert.equal(enablePartitionVtl(r2, 2).status, HvStatus.SUCCESS, 'VTLs need not be consecutive (§3.1)');
  assert.equal(r2.p.enabledVtlSet, 0b101);
});

test('§2.12: the fast form takes the 16 bytes from RDX and R8', () => {
  const r = new VsmRig();
  const res = r.call(r.vcpu(0), enablePartitionFast, HV_PARTITION_ID_SELF, 1n);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.equal(r.p.enabledVtlSet, 0b11);
  assert.equal(r.call(r.vcpu(0), enablePartitionFast, HV_PARTITION_ID_SELF, 1n).status, HvStatus.VTL_ALREADY_ENABLED);
});

test('§2.13: EnableVpVtl before the partition enabled the VTL is INVALID_VTL_STATE', () => {
  const r = new VsmRig();
  assert.equal(enableVpVtl(r, HV_VP_INDEX_SELF, 1, vtl1Context(r)).status, HvStatus.INVALID_VTL_STATE);
  assert.equal(r.p.vms[1], undefined);
});

test('§2.13: EnableVpVtl creates the VP\'s VTL1 Vcpu with the initial context, parked in HV_INACTIVE_VTL', () => {
  const r = new VsmRig();
  assert.equal(enablePartitionVtl(r, 1).status, HvStatus.SUCCESS);
  const ctx = vtl1Context(r);
  const res = enableVpVtl(r, HV_VP_INDEX_SELF, 1, ctx);
  assert.equal(res.status, HvStatus.SUCCESS);
  const v1 = r.vcpu(0, 1);
  assert.equal(v1.vm, r.p.vms[1]);
  assert.equal(v1.id, 0, 'the VP index is the Vcpu id in every VTL');
  const regs = v1.getRegs(), s = v1.getSregs(), s0 = r.vcpu(0).getSregs();
  assert.equal(regs.rip, BigInt(VTL1_CODE));
  assert.equal(regs.rsp, BigInt(VTL1_STACK_TOP));
  assert.equal(regs.rflags, 0x2n);
  assert.equal(s.cr3, BigInt(VTL1_PML4));
  assert.deepEqual([s.cr0, s.cr4, s.efer, s.cs, s.gdt, s.idt, s.tr], [s0.cr0, s0.cr4, s0.efer, s0.cs, s0.gdt, s0.idt, s0.tr]);
  assert.equal(v1.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL, 'kvm §3.3: the higher VTL waits until it is entered');
  assert.equal(r.vp().activeVtl, 0, 'enabling does not switch VTLs (§2.13)');
  assert.equal(r.vp().enabledVtlSet, 0b11);
  // The VTL1 Vcpu does not run while parked: its run() reports a halted vCPU until an event arrives.
  assert.equal(v1.run(1000).reason, 'hlt');
  assert.equal(v1.getRegs().rip, BigInt(VTL1_CODE));
});

test('§2.13: EnableVpVtl errors, each with the status the rules give', () => {
  const r = new VsmRig({ ids: [0, 1] });
  assert.equal(enablePartitionVtl(r, 1).status, HvStatus.SUCCESS);
  const ctx = vtl1Context(r);
  assert.equal(enableVpVtl(r, 0, 1, ctx, { partition: 5n }).status, HvStatus.INVALID_PARTITION_ID);
  assert.equal(enableVpVtl(r, 7, 1, ctx).status, HvStatus.INVALID_VP_INDEX, 'no VP 7');
  assert.equal(enableVpVtl(r, 0, 0, ctx).status, HvStatus.INVALID_PARAMETER, 'VTL0 is not enabled by this call');
  assert.equal(enableVpVtl(r, 0, 16, ctx).status, HvStatus.INVALID_PARAMETER);
  assert.equal(enableVpVtl(r, 0, 1, ctx, { reserved: 1 }).status, HvStatus.INVALID_PARAMETER, 'bytes 13-15 are RsvdZ');
  assert.equal(enableVpVtl(r, 0, 2, ctx).status, HvStatus.ACCESS_DENIED, 'VTL0 is not the highest enabled VTL below VTL2 (VTL1 is)');
  // From VTL0 a higher VTL may be enabled only on the caller's own VP (openhcl rule in §2.13).
  assert.equal(enableVpVtl(r, 1, 1, ctx).status, HvStatus.ACCESS_DENIED, 'VP 0\'s VTL0 enabling VTL1 on VP 1');
  // A context KVM_SET_SREGS refuses, or real mode for VTL1 (§3.1): INVALID_REGISTER_VALUE, nothing enabled.
  assert.equal(enableVpVtl(r, 0, 1, vtl1Context(r, { cr0: 0x10n })).status, HvStatus.INVALID_REGISTER_VALUE);
  assert.equal(r.vp(0).enabledVtlSet, 0b1);
  assert.equal(r.p.enabledOnAnyVp & 0b10, 0);
  // The Vcpu that refused the context is reused by the next attempt.
  assert.equal(enableVpVtl(r, 0, 1, ctx).status, HvStatus.SUCCESS);
  assert.equal(r.p.vms[1]!.vcpus.length, 1);
  // Once VTL1 runs on a VP, only VTL ≥ 1 may enable it further (§2.13): VTL0 gets ACCESS_DENIED, even for its own VP.
  assert.equal(enableVpVtl(r, 0, 1, ctx).status, HvStatus.ACCESS_DENIED);
  assert.equal(enableVpVtl(r, 1, 1, ctx, { caller: 1 }).status, HvStatus.ACCESS_DENIED, 'VP 1\'s VTL0 on itself, after VP 0 has VTL1');
  // A fast EnableVpVtl cannot carry 240 bytes (§1.1).
  const fast = makeHypercallControl({ code: HvCall.EnableVpVtl, fast: true });
  assert.equal(r.call(r.vcpu(0), fast, HV_PARTITION_ID_SELF, 0n).status, HvStatus.INVALID_HYPERCALL_INPUT);
});

test('§2.13: VTL1 enables VTL1 on another VP (allowed: the caller is at the target VTL) and gets VTL_ALREADY_ENABLED on its own', () => {
  const r = new VsmRig({ ids: [0, 1] });
  r.enablePartitionVtl(1);
  assert.equal(enableVpVtl(r, 0, 1, vtl1Context(r)).status, HvStatus.SUCCESS);
  // VP 0 enters VTL1 (VtlCall at VTL0's code); VTL1's code makes the two EnableVpVtl calls, then halts.
  r.m.vm.mem.write(CONTEXT, contextFrom(r.vcpu(0), { rip: 0x105000, rsp: 0x106000 }));
  const mem = r.m.vm.mem;
  for (const [at, vp] of [[INPUT + 0x1000, 1], [INPUT + 0x2000, 0]] as const) {
    mem.write64(at, HV_PARTITION_ID_SELF);
    mem.write32(at + 8, vp);
    mem.write32(at + 12, 1);
    mem.write(at + 16, mem.read(CONTEXT, 224));
  }
  r.asm(`
    mov ecx, ${HvCall.EnableVpVtl}
    mov edx, ${INPUT + 0x1000}
    xor r8d, r8d
    vmcall
    mov r12, rax
    mov ecx, ${HvCall.EnableVpVtl}
    mov edx, ${INPUT + 0x2000}
    vmcall
    mov r13, rax
    hlt`, VTL1_CODE);
  r.asm(`
    xor ecx, ecx
    mov rax, rcx
    mov ecx, ${HvCall.VtlCall}
    vmcall
    hlt`, 0x10000);
  r.m.jump(r.vcpu(0), 0x10000);
  assert.equal(r.drive(0), 1, 'halted in VTL1');
  const regs = r.vcpu(0, 1).getRegs();
  assert.equal(regs.r12, BigInt(HvStatus.SUCCESS), 'VTL1 on VP 0 enabled VTL1 on VP 1');
  assert.equal(regs.r13, BigInt(HvStatus.VTL_ALREADY_ENABLED), 'and VP 0 already has it');
  assert.equal(r.vp(1).enabledVtlSet, 0b11);
  assert.equal(r.vcpu(1, 1).getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(r.vcpu(1, 1).getRegs().rip, 0x105000n, 'VP 1\'s VTL1 starts at the context VTL1 passed');
});

/** A small deterministic generator (LCG) for the fuzz tests. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x; };
}

test('§2.13 fuzz: 150 random initial contexts give SUCCESS or INVALID_REGISTER_VALUE, never a host error; a refusal enables nothing', () => {
  const next = lcg(0x5eed);
  let r = new VsmRig();
  r.enablePartitionVtl(1);
  const base = vtl1Context(r);
  const counts = { ok: 0, refused: 0 };
  for (let i = 0; i < 150; i++) {
    const ctx = base.slice();
    // Corrupt 1-8 random bytes, or (every 4th) the whole context.
    if (i % 4 === 3) for (let k = 0; k < ctx.length; k++) ctx[k] = next() & 0xff;
    else for (let n = 1 + (next() % 8); n > 0; n--) ctx[next() % ctx.length] = next() & 0xff;
    const res = enableVpVtl(r, HV_VP_INDEX_SELF, 1, ctx);
    assert.ok(res.status === HvStatus.SUCCESS || res.status === HvStatus.INVALID_REGISTER_VALUE, `context ${i}: status 0x${res.status.toString(16)}`);
    if (res.status === HvStatus.SUCCESS) {
      counts.ok++;
      assert.equal(r.vcpu(0, 1).getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
      r = new VsmRig();
      r.enablePartitionVtl(1);
    } else {
      counts.refused++;
      assert.equal(r.vp().enabledVtlSet, 0b1, `context ${i}: a refused context enables nothing`);
    }
  }
  assert.ok(counts.ok > 0 && counts.refused > 0, `both outcomes seen: ${JSON.stringify(counts)}`);
});
