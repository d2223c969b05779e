// VTL memory protections in the VMM (src/vmm/vsm/protections.ts,
// memory-intercept.ts, hc-vsm.ts): HvCallModifyVtlProtectionMask and the
// default protection mask become memory attributes on the lower VTLs' Vms
// (tlfs-vsm-facts §2.18, §3.8; kvm-api-facts §2), and a lower-VTL access
// they deny becomes a GPA intercept message on the higher VTL's SINT0 and
// a VTL entry with reason 3, without completing the instruction (§3.10, §4.4, §4.5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HV_PARTITION_ID_SELF, HvCall, HvMessageType, HvMsr, HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { loadInitialVpContext } from '../../src/vmm/vsm/initial-vp-context.js';
import { decodePartitionConfig, enableProtectionConfig, encodePartitionConfig } from '../../src/vmm/vsm/vsm-registers.js';
import { enterHigherVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { handleProtectionFault } from '../../src/vmm/vsm/memory-intercept.js';
import { INPUT } from '../kvm/hypercall-machine.js';
import { contextFrom, VsmRig, VTL1_ASSIST, VTL1_CODE, VTL1_STACK_TOP } from './vsm-hcall-rig.js';

const VTL0_CODE = 0x170000, DATA = 0x150000, VTL1_SIM = 0x160000;
const DATA_GFN = DATA / 4096;
const VTL_RETURN = `mov rax, rcx\n mov ecx, ${HvCall.VtlReturn}\n vmcall`;
const modify = (reps: number, o: { fast?: boolean; start?: number } = {}) =>
  makeHypercallControl({ code: HvCall.ModifyVtlProtectionMask, repCount: reps, repStart: o.start, fast: o.fast });
/** Header word 1 of ModifyVtlProtectionMask: MapFlags u32, TargetVtl (HV_INPUT_VTL) u8, 3 reserved bytes (§2.18). */
const header1 = (mask: number, inputVtl = 0, reserved = 0) => BigInt(mask) | (BigInt(inputVtl) << 32n) | (BigInt(reserved) << 40n);
/** kvm attribute values of the five masks (protection-mask.ts): none 7, R 6, RW 4, RX 2, RWX 0. */
const NONE = 0, R = 1, RW = 3, RX = 0xd, RWX = 0xf;

/** VP 0 with VTL1 enabled (code at VTL1_CODE) and the VP in VTL0 at VTL0_CODE, or in VTL1 with `inVtl1`. */
function rig(o: { vtl0?: string; vtl1?: string; inVtl1?: boolean; maximumVtl?: number } = {}): { r: VsmRig; v0: Vcpu; v1: Vcpu; l0: Record<string, number> } {
  const r = new VsmRig({ maximumVtl: o.maximumVtl });
  r.enablePartitionVtl(1);
  const l0 = r.asm(o.vtl0 ?? 'hlt', VTL0_CODE);
  r.asm(o.vtl1 ?? 'hlt', VTL1_CODE);
  const v0 = r.vcpu(0);
  r.m.jump(v0, VTL0_CODE);
  const v1 = r.enableVpVtl();
  if (o.inVtl1) enterHigherVtl(r.p, r.vp(), 1, HvVtlEntryReason.VtlCall);
  return { r, v0, v1, l0 };
}

function enableProtection(r: VsmRig, vtl: number, mask: number): void {
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), vtl, enableProtectionConfig(mask)), HvStatus.SUCCESS);
}

/** Slow ModifyVtlProtectionMask from `v` (its VP's active Vcpu) of `gfns`. */
function protect(r: VsmRig, v: Vcpu, mask: number, gfns: readonly number[], o: { inputVtl?: number; reserved?: number; partition?: bigint; start?: number } = {}) {
  r.m.writeQwords(INPUT, [o.partition ?? HV_PARTITION_ID_SELF, header1(mask, o.inputVtl, o.reserved), ...gfns.map(BigInt)]);
  return r.call(v, modify(gfns.length, { start: o.start }), BigInt(INPUT));
}

const attrs = (r: VsmRig, gfn: number, vtl = 0) => r.p.vms[vtl]!.memoryAttributes.get(gfn);

test('§3.8: enabling protection applies the default mask to every page for VTL0; ModifyVtlProtectionMask changes pages', () => {
  const { r, v1 } = rig({ inVtl1: true });
  assert.deepEqual(protect(r, v1, R, [DATA_GFN]).status, HvStatus.ACCESS_DENIED, 'before EnableVtlProtection');
  assert.equal(attrs(r, DATA_GFN), 0);
  enableProtection(r, 1, RX);
  assert.equal(attrs(r, 0), 2);
  assert.equal(attrs(r, r.p.protections.frames - 1), 2, 'every page gets the default RX mask (kvm NW)');
  for (const [mask, kvm] of [[NONE, 7], [R, 6], [RW, 4], [RX, 2], [RWX, 0]] as const) {
    const res = protect(r, v1, mask, [DATA_GFN, DATA_GFN + 2]);
    assert.deepEqual([res.status, res.reps], [HvStatus.SUCCESS, 2]);
    assert.deepEqual([attrs(r, DATA_GFN), attrs(r, DATA_GFN + 1), attrs(r, DATA_GFN + 2)], [kvm, 2, kvm], `mask 0x${mask.toString(16)}`);
    assert.equal(r.p.protections.maskOf(1, DATA_GFN), mask === RWX ? undefined : mask, 'RWX reads as "no protection"');
  }
  assert.equal(attrs(r, DATA_GFN, 1), 0, 'VTL1 protects VTL0 only: its own Vm is unrestricted');
});

test('§2.18, §3.8: ModifyVtlProtectionMask statuses, and reps completed = the index of a bad page', () => {
  const { r, v0, v1 } = rig({ inVtl1: true });
  enableProtection(r, 1, RWX);
  const bad: [string, ReturnType<typeof protect>, number][] = [
    ['partition ≠ self', protect(r, v1, R, [DATA_GFN], { partition: 1n }), HvStatus.ACCESS_DENIED],
    ['reserved bytes', protect(r, v1, R, [DATA_GFN], { reserved: 1 }), HvStatus.INVALID_PARAMETER],
    ['input VTL 0 (VTL0 protects nothing)', protect(r, v1, R, [DATA_GFN], { inputVtl: 0x10 }), HvStatus.INVALID_PARAMETER],
    ['input VTL 2 > MaximumVtl', protect(r, v1, R, [DATA_GFN], { inputVtl: 0x12 }), HvStatus.INVALID_PARAMETER],
    ['W without R', protect(r, v1, 0x2, [DATA_GFN]), HvStatus.INVALID_REGISTER_VALUE],
    ['KX without UX (needs MBEC)', protect(r, v1, 0x5, [DATA_GFN]), HvStatus.INVALID_REGISTER_VALUE],
    ['not a protection bit', protect(r, v1, 0x10000 | R, [DATA_GFN]), HvStatus.INVALID_PARAMETER],
  ];
  for (const [why, res, status] of bad) assert.deepEqual([res.status, res.reps], [status, 0], why);
  assert.equal(attrs(r, DATA_GFN), 0, 'refused calls changed nothing');
  // A GPA beyond guest RAM at element 2: elements 0 and 1 are applied.
  const beyond = r.p.protections.frames + 5;
  const res = protect(r, v1, R, [DATA_GFN, DATA_GFN + 1, beyond, DATA_GFN + 3]);
  assert.deepEqual([res.status, res.reps], [HvStatus.INVALID_PARAMETER, 2]);
  assert.deepEqual([attrs(r, DATA_GFN), attrs(r, DATA_GFN + 1), attrs(r, DATA_GFN + 3)], [6, 6, 0]);
  // A rep start continues the list where a previous execution stopped (§1.2: absolute reps).
  const cont = protect(r, v1, RW, [DATA_GFN, DATA_GFN + 1, DATA_GFN + 2, DATA_GFN + 3], { start: 2 });
  assert.deepEqual([cont.status, cont.reps], [HvStatus.SUCCESS, 4]);
  assert.deepEqual([attrs(r, DATA_GFN), attrs(r, DATA_GFN + 2), attrs(r, DATA_GFN + 3)], [6, 4, 4]);

  // From VTL0: the default target is VTL0 itself; VTL1 is above the caller.
  const { r: r0, v0: w0 } = rig();
  enableProtection(r0, 1, RWX);
  assert.equal(protect(r0, w0, R, [DATA_GFN]).status, HvStatus.INVALID_PARAMETER);
  assert.equal(protect(r0, w0, R, [DATA_GFN], { inputVtl: 0x11 }).status, HvStatus.ACCESS_DENIED);
  void v0;
});

test('§2.18: the XMM-fast form carries the header in RDX/R8 and up to 12 pages in XMM0-5', () => {
  const { r, v1 } = rig({ inVtl1: true });
  enableProtection(r, 1, RWX);
  const pages = [DATA_GFN, DATA_GFN + 1, DATA_GFN + 7];
  const res = r.call(v1, modify(3, { fast: true }), HV_PARTITION_ID_SELF, header1(R), [BigInt(pages[0]), BigInt(pages[1]), BigInt(pages[2]), 0n]);
  assert.deepEqual([res.status, res.reps], [HvStatus.SUCCESS, 3]);
  assert.deepEqual(pages.map((g) => attrs(r, g)), [6, 6, 6]);
  assert.equal(attrs(r, DATA_GFN + 2), 0);
  const tooMany = r.call(v1, modify(13, { fast: true }), HV_PARTITION_ID_SELF, header1(R));
  assert.deepEqual([tooMany.status, tooMany.reps], [HvStatus.INVALID_HYPERCALL_INPUT, 0], '16 + 13 × 8 bytes do not fit in 112');
});

test('§3.8: VTL2 and VTL1 protections combine on VTL0; VTL1 runs under VTL2\'s alone', () => {
  const r = new VsmRig({ maximumVtl: 2 });
  r.enablePartitionVtl(1);
  r.enablePartitionVtl(2);
  const vp = r.vp();
  for (const vtl of [1, 2]) {
    const v = r.p.vcpuForVpVtl(vp, vtl);
    assert.equal(loadInitialVpContext(v, contextFrom(r.vcpu(0), { rip: VTL1_CODE, rsp: VTL1_STACK_TOP }), vtl, { dr6Shared: false }), 0);
    r.p.commitVpVtl(vp, vtl);
  }
  enableProtection(r, 1, RWX);
  enableProtection(r, 2, RWX);
  const pr = r.p.protections;
  pr.protect(1, DATA_GFN, DATA_GFN + 4, RX);   // VTL1: no writes by VTL0
  pr.protect(2, DATA_GFN + 2, DATA_GFN + 6, RW); // VTL2: no execution by VTL0 and VTL1
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((k) => attrs(r, DATA_GFN + k, 0)), [2, 2, 6, 6, 4, 4], 'VTL0: RX, RX, R, R, RW, RW');
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((k) => attrs(r, DATA_GFN + k, 1)), [0, 0, 4, 4, 4, 4], 'VTL1: VTL2\'s mask only');
  assert.deepEqual(pr.masksAt(DATA_GFN + 2), [undefined, RX, RW]);
  // §3.10: the lowest denying VTL is notified first.
  assert.equal(pr.interceptTarget(DATA_GFN + 2, 0, 1), 1, 'a VTL0 write: VTL1 denies it');
  assert.equal(pr.interceptTarget(DATA_GFN + 2, 0, 2), 2, 'a VTL0 fetch: only VTL2 denies it');
  assert.equal(pr.interceptTarget(DATA_GFN + 2, 1, 2), 2);
  assert.equal(pr.interceptTarget(DATA_GFN + 1, 0, 0), -1, 'reads are allowed everywhere');
  // Lifting VTL2's protection recomputes VTL0 from VTL1's masks.
  pr.protect(2, DATA_GFN, DATA_GFN + 8, RWX);
  assert.deepEqual([0, 2, 4].map((k) => attrs(r, DATA_GFN + k, 0)), [2, 2, 0]);
  assert.deepEqual([0, 2, 4].map((k) => attrs(r, DATA_GFN + k, 1)), [0, 0, 0]);
});

test('§3.10, §4.4, §4.5: a VTL0 write to a read-only page is a GPA intercept on VTL1\'s SINT0 and an entry with reason 3; the write runs again after VtlReturn', () => {
  const { r, v0, v1, l0 } = rig({
    vtl0: `
      mov rax, 0x1122334455667788
      mov rbx, ${DATA}
      mov rsi, 0x5151
    fault:
      mov byte ptr [rbx], 0x5a
      hlt`,
    vtl1: `
      hlt
      xor ecx, ecx
      ${VTL_RETURN}
      hlt
      xor ecx, ecx
      ${VTL_RETURN}`,
  });
  enableProtection(r, 1, RWX);
  r.p.protections.protect(1, DATA_GFN, DATA_GFN + 1, R);
  assert.ok(v1.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL1_ASSIST | 1, 0));
  assert.ok(v1.wrmsr(HvMsr.SIMP, VTL1_SIM | 1, 0));
  assert.ok(v1.wrmsr(HvMsr.SCONTROL, 1, 0));
  assert.ok(v1.wrmsr(HvMsr.SINT0, 0x10050, 0)); // masked: the message still goes into the slot (§4.2)
  const mem = r.m.vm.mem;

  assert.equal(r.drive(), 1, 'VTL1 halted after the intercept entry');
  assert.equal(mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.Intercept, 'VTL control area: entry reason 3');
  assert.equal(mem.read8(DATA), 0, 'the write did not happen');
  assert.equal(v0.getRegs().rip, BigInt(l0.fault), 'VTL0 is still on the faulting instruction');
  // HV_MESSAGE (§4.2): type GpaIntercept, payload 0xF0 bytes (0x50 + DS, SS, GPRs), origin = partition ID.
  const msg = VTL1_SIM;
  assert.equal(mem.read32(msg), HvMessageType.GpaIntercept);
  assert.equal(mem.read8(msg + 4), 0xf0);
  assert.equal(mem.read64(msg + 8), 1n);
  const pl = msg + 16, s = v0.getSregs();
  assert.equal(mem.read32(pl), 0, 'VP index');
  assert.equal(mem.read8(pl + 4), 3, 'instruction length 3 (c6 03 5a), CR8 0');
  assert.equal(mem.read8(pl + 5), 1, 'write');
  assert.equal(mem.read16(pl + 6), 0x04 | ((s.cr0 & 0x40000n) ? 0x08 : 0) | 0x10, 'CPL 0, CR0.PE, EFER.LMA, VTL 0');
  assert.equal(mem.read16(pl + 8 + 12), 0x08, 'CS selector');
  assert.equal(mem.read64(pl + 0x18), BigInt(l0.fault), 'RIP');
  assert.equal(mem.read64(pl + 0x20), v0.getRegs().rflags);
  assert.equal(mem.read32(pl + 0x28), 6, 'cache type WB');
  assert.equal(mem.read8(pl + 0x2c), 3, 'instruction byte count');
  assert.equal(mem.read8(pl + 0x2d), 0x0b, 'GvaValid | GvaGpaValid | TlbLocked (VTL1 holds VTL0\'s TLB lock until it returns)');
  assert.equal(mem.read64(pl + 0x30), BigInt(DATA), 'GVA');
  assert.equal(mem.read64(pl + 0x38), BigInt(DATA), 'GPA');
  assert.deepEqual([...mem.read(pl + 0x40, 4)], [0xc6, 0x03, 0x5a, 0]);
  assert.equal(mem.read64(pl + 0x70), 0x1122334455667788n, 'RAX');
  assert.equal(mem.read64(pl + 0x88), BigInt(DATA), 'RBX');
  assert.equal(mem.read64(pl + 0xa0), 0x5151n, 'RSI');

  // VtlReturn without a change: the write faults again and VTL1 is entered again.
  mem.write32(msg, 0); // VTL1 consumed the message
  v1.setMpState(KVM_MP_STATE_RUNNABLE); // past its HLT
  assert.equal(r.drive(), 1);
  assert.equal(mem.read32(msg), HvMessageType.GpaIntercept, 'a second message');
  assert.equal(mem.read8(DATA), 0);
  // VTL1 lifts the protection; after VtlReturn the write completes.
  r.p.protections.protect(1, DATA_GFN, DATA_GFN + 1, RW);
  v1.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(), 0);
  assert.equal(mem.read8(DATA), 0x5a);
  assert.equal(v0.getRegs().rip, BigInt(l0.fault + 4), 'past the write and the HLT');
});

test('§3.8: an instruction fetch from a non-executable page is an execute intercept with no instruction bytes', () => {
  const { r, v0 } = rig({ vtl0: `mov rax, ${DATA}\n call rax\n hlt` });
  r.m.vm.mem.write8(DATA, 0xf4); // hlt
  enableProtection(r, 1, RWX);
  r.p.protections.protect(1, DATA_GFN, DATA_GFN + 1, RW);
  assert.ok(r.vcpu(0, 1).wrmsr(HvMsr.SIMP, VTL1_SIM | 1, 0));
  assert.ok(r.vcpu(0, 1).wrmsr(HvMsr.SCONTROL, 1, 0));
  assert.equal(r.drive(), 1);
  const pl = VTL1_SIM + 16, mem = r.m.vm.mem;
  assert.equal(mem.read8(pl + 4), 0, 'instruction length 0');
  assert.equal(mem.read8(pl + 5), 2, 'execute');
  assert.equal(mem.read64(pl + 0x18), BigInt(DATA), 'RIP = the address fetched');
  assert.equal(mem.read8(pl + 0x2c), 0, 'no instruction bytes');
  assert.equal(mem.read64(pl + 0x38), BigInt(DATA));
  assert.equal(v0.getRegs().rip, BigInt(DATA));
});

test('§3.8: a page-table walk through a no-access page table is a read intercept at the paging entry\'s GPA', () => {
  const { r } = rig({ vtl0: `mov rax, [0x600000]\n hlt` });
  const pte = r.m.map(0x600000, DATA, 3n); // a new page table (P, W) whose entry maps 0x600000
  enableProtection(r, 1, RWX);
  r.p.protections.protect(1, Math.floor(pte / 4096), Math.floor(pte / 4096) + 1, NONE);
  assert.ok(r.vcpu(0, 1).wrmsr(HvMsr.SIMP, VTL1_SIM | 1, 0));
  assert.ok(r.vcpu(0, 1).wrmsr(HvMsr.SCONTROL, 1, 0));
  assert.equal(r.drive(), 1);
  const pl = VTL1_SIM + 16, mem = r.m.vm.mem;
  assert.equal(mem.read8(pl + 5), 0, 'read');
  assert.equal(mem.read64(pl + 0x30), 0x600000n, 'GVA: the address being translated');
  assert.equal(mem.read64(pl + 0x38), BigInt(pte), 'GPA: the paging-structure entry');
  assert.equal(mem.read8(pl + 0x2d), 1, 'GvaValid only: the GPA is not the GVA\'s translation, and no TLB lock is taken');
  assert.equal(r.vcpu(0).tlbFlush.inhibited, false);
});

test('§3.8: a VP without the protecting VTL cannot take the intercept: the VMM gets "unreportable" (the machine stops with that report)', () => {
  const r = new VsmRig({ ids: [0, 1] });
  r.enablePartitionVtl(1);
  r.enableVpVtl();
  enableProtection(r, 1, RWX);
  r.p.protections.protect(1, DATA_GFN, DATA_GFN + 1, R);
  const w = r.vcpu(1);
  r.asm(`mov byte ptr [${DATA}], 1\n hlt`, VTL0_CODE);
  r.m.enter64(w, VTL0_CODE);
  const e = r.m.runToExit(w);
  assert.equal(e.reason, 'memory-fault');
  if (e.reason !== 'memory-fault') return;
  const out = handleProtectionFault(r.p, w, e);
  assert.deepEqual(out, { kind: 'unreportable', why: `VTL0 of VP 1 violated a VTL1 protection at GPA 0x${DATA.toString(16)}, but VTL1 is not enabled on that VP` });
  assert.equal(r.vp(1).activeVtl, 0);
  assert.equal(r.m.vm.mem.read8(DATA), 0);
});

test('§3.3, §3.7: with InterceptPage the message goes to the intercept slot of VTL1\'s VP assist page (0x70), not to SINT0', () => {
  const { r } = rig({ vtl0: `mov byte ptr [${DATA}], 0x5a\n hlt` });
  const config = encodePartitionConfig({ ...decodePartitionConfig(enableProtectionConfig(RWX)), interceptPage: true });
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, config), HvStatus.SUCCESS);
  r.p.protections.protect(1, DATA_GFN, DATA_GFN + 1, R);
  const v1 = r.vcpu(0, 1), mem = r.m.vm.mem;
  assert.ok(v1.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL1_ASSIST | 1, 0));
  assert.ok(v1.wrmsr(HvMsr.SIMP, VTL1_SIM | 1, 0));
  assert.ok(v1.wrmsr(HvMsr.SCONTROL, 1, 0));
  assert.equal(r.drive(), 1);
  assert.equal(mem.read32(VTL1_ASSIST + 0x70), HvMessageType.GpaIntercept, 'HV_MESSAGE in the assist page');
  assert.equal(mem.read8(VTL1_ASSIST + 0x70 + 4), 0xf0);
  assert.equal(mem.read8(VTL1_ASSIST + 0x70 + 16 + 5), 1, 'write');
  assert.equal(mem.read64(VTL1_ASSIST + 0x70 + 16 + 0x38), BigInt(DATA));
  assert.equal(mem.read32(VTL1_SIM), 0, 'nothing on SINT0');
  assert.equal(mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.Intercept);
});
