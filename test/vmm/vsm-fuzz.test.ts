// Random VSM hypercalls never crash the host (issue 5, "Every guest-
// triggerable error is handled"): seeded random control words, registers,
// XMM and input pages for every call the VMM answers (src/vmm/vsm), made by
// whichever VTL a VP is in, VTLs switching as the calls say. Each call must
// end in an HV_STATUS, a #UD, or a VTL switch, and the partition must stay
// consistent: each VP's active VTL is enabled on it, its Vcpu is the only one
// of the VP not parked in HV_INACTIVE_VTL, and the return stack leads back
// through enabled VTLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MP_STATE_HV_INACTIVE_VTL } from '../../src/kvm/mp-state.js';
import { HV_PARTITION_ID_SELF, HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { handleVsmHypercall } from '../../src/vmm/vsm/hc-vsm.js';
import { CALL_SITE, INPUT, LINUX_GUEST_OS_ID } from '../kvm/hypercall-machine.js';
import { contextFrom, VsmRig, VSM_FLAGS, VTL1_STACK_TOP } from './vsm-hcall-rig.js';

const CODES = [
  HvCall.ModifyVtlProtectionMask, HvCall.EnablePartitionVtl, HvCall.EnableVpVtl, HvCall.VtlCall, HvCall.VtlReturn,
  HvCall.GetVpRegisters, HvCall.SetVpRegisters, HvCall.TranslateVirtualAddress, HvCall.TranslateVirtualAddressEx,
  HvCall.StartVirtualProcessor, HvCall.GetVpIndexFromApicId, HvCall.SendSyntheticClusterIpi, HvCall.SendSyntheticClusterIpiEx,
];
const STATUSES = new Set<number>(Object.values(HvStatus));
const REP_CALLS = new Set<number>([HvCall.ModifyVtlProtectionMask, HvCall.GetVpRegisters, HvCall.SetVpRegisters, HvCall.GetVpIndexFromApicId]);
/**
 * Register names worth hitting: VSM registers, a few architectural and synthetic ones, and junk. Writes stay away from
 * the registers that would wreck the caller's own code (RIP, CR0, CR3, CS, IDTR, EFER): a guest that does that shuts
 * down, which is its right, but ends the fuzz run.
 */
const SET_NAMES = [0x000d0007, 0x000d0010, 0x000d0011, 0x000d0020, 0x00020003, 0x00090005, 0x000a0000, 0x000d0002, 0x12345];
const NAMES = [0x000d0002, 0x000d0003, 0x000d0004, 0x000d0006, 0x000d0007, 0x000d0010, 0x000d0011, 0x000d0020, 0x00020010,
  0x00020011, 0x00040000, 0x00040002, 0x00060001, 0x00070000, 0x00080001, 0x00090005, 0x000a0000, 0x12345];

/** xorshift64*: a fixed sequence, so a failure reproduces. */
function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & 0xffff_ffff_ffff_ffffn;
  };
}

test('2000 random VSM hypercalls from every VTL end in a status, #UD or a switch; the partition stays consistent', () => {
  const r = new VsmRig({ ids: [0, 1], maximumVtl: 2, flags: [...VSM_FLAGS, 'hv-ipi', 'hv-tlbflush'], trace: false });
  const mem = r.m.vm.mem;
  // Code every VTL of every VP can run: `vmcall; hlt` at CALL_SITE (the rig's), identity-mapped for all of them.
  const next = rng(0x5eed_f00d_1234_5678n);
  const pick = <T>(xs: readonly T[]): T => xs[Number(next() % BigInt(xs.length))];
  const outcomes = new Map<string, number>();
  const small = () => Number(next() % 3n);
  const vtlByte = () => ((next() & 3n) === 0n ? Number(next() & 0xffn) : 0x10 | small());
  const vpIndex = () => ((next() & 3n) === 0n ? 0xfffffffe : Number(next() % 3n));
  /** Header fields per call (tlfs-vsm-facts §2.12-§2.18), mostly valid, each sometimes off by a little. */
  function plausibleInput(code: number): void {
    mem.write64(INPUT, (next() & 15n) === 0n ? 0n : HV_PARTITION_ID_SELF);
    switch (code) {
      case HvCall.EnablePartitionVtl: mem.write64(INPUT + 8, BigInt(small())); break;
      case HvCall.EnableVpVtl: case HvCall.StartVirtualProcessor:
        mem.write32(INPUT + 8, vpIndex()); mem.write32(INPUT + 12, small());
        mem.write(INPUT + 16, contextFrom(r.vcpu(0), { rip: CALL_SITE, rsp: VTL1_STACK_TOP - 0x800 * small() }));
        break;
      case HvCall.GetVpRegisters: case HvCall.SetVpRegisters:
        mem.write32(INPUT + 8, vpIndex()); mem.write32(INPUT + 12, vtlByte());
        for (let k = 0; k < 12; k++) {
          if (code === HvCall.GetVpRegisters) mem.write32(INPUT + 16 + 4 * k, pick(NAMES));
          else { mem.fill(INPUT + 16 + 32 * k, 16, 0); mem.write32(INPUT + 16 + 32 * k, pick(SET_NAMES)); mem.write64(INPUT + 32 + 32 * k, next() & 0x1fn); }
        }
        break;
      case HvCall.ModifyVtlProtectionMask:
        mem.write32(INPUT + 8, pick([0, 1, 3, 0xd, 0xf, 2, 0x10001])); mem.write32(INPUT + 12, vtlByte());
        for (let k = 0; k < 12; k++) mem.write64(INPUT + 16 + 8 * k, 0x200n + (next() & 0xffn)); // 2-3 MiB: no code, tables or stacks
        break;
      case HvCall.TranslateVirtualAddress: case HvCall.TranslateVirtualAddressEx:
        mem.write64(INPUT + 8, BigInt(vpIndex()));
        mem.write64(INPUT + 16, (next() & 0x3ffn) | (BigInt(vtlByte()) << 56n));
        mem.write64(INPUT + 24, next() & 0x3ffn);
        break;
      case HvCall.GetVpIndexFromApicId:
        mem.write64(INPUT + 8, BigInt(vtlByte()));
        for (let k = 0; k < 12; k++) mem.write32(INPUT + 16 + 4 * k, small());
        break;
      default: // SendSyntheticClusterIpi(Ex): vector, target VTL, flags; then a mask or a VP set
        mem.write32(INPUT, 0x40 + small()); mem.write8(INPUT + 4, vtlByte()); mem.write8(INPUT + 5, 0); mem.write16(INPUT + 6, 0);
        mem.write64(INPUT + 8, next() & 3n);
    }
  }
  r.m.enter64(r.vcpu(1), CALL_SITE);
  for (let i = 0; i < 2000; i++) {
    // A guest's first step in each VTL: its guest OS ID (without one every hypercall is #UD, §1.4).
    for (const vm of r.p.vms) if (vm !== undefined && vm.hyperv!.guestOsId === 0n) vm.hyperv!.writeGuestOsId(LINUX_GUEST_OS_ID);
    const vp = r.vp(i % 2), v = vp.active;
    const code = pick(CODES);
    const b = next();
    const rep = REP_CALLS.has(code), switchCall = code === HvCall.VtlCall || code === HvCall.VtlReturn;
    const repCount = rep ? 1n + (b >> 17n) % 12n : 0n;
    const control = (b & 15n) === 0n ? b                                                   // any bits at all
      : switchCall ? BigInt(code) | ((b & 0x30n) === 0n ? 1n << 16n : 0n)                  // mostly exactly the code
      : BigInt(code) | (((b >> 3n) & 1n) << 16n) | (code === HvCall.SendSyntheticClusterIpiEx ? ((b >> 9n) % 3n) << 17n : 0n) | (repCount << 32n);
    // The input page: random words under a plausible header for the call (partition self, a VP, a small VTL, ...).
    for (let k = 0; k < 64; k++) mem.write64(INPUT + 8 * k, (next() & 1n) === 0n ? next() : next() & 0x1ffn);
    if ((next() & 3n) !== 0n) plausibleInput(code);
    const rdx = (next() & 7n) === 0n ? next() : BigInt(INPUT);
    const r8 = (next() & 7n) === 0n ? next() : BigInt(INPUT + 0x800);
    const xmm = Array.from({ length: 12 }, () => next());
    // RAX is the VtlCall/VtlReturn input: usually 0 or 1.
    r.m.jump(v, CALL_SITE);
    v.setRegs({ ...v.getRegs(), rcx: control, rdx, r8, rax: (next() & 3n) === 0n ? next() : next() & 1n });
    for (let k = 0; k < 6; k++) v.setXmm(k, { low: xmm[2 * k], high: xmm[2 * k + 1] });
    const exit = r.m.runToExit(v);
    let kind: string;
    if (exit.reason === 'hyperv-hcall') {
      const before = vp.activeVtl;
      assert.ok(handleVsmHypercall(r.p, v, exit), `call ${i}: code 0x${exit.code.toString(16)} is a VSM call`);
      if (vp.activeVtl !== before) {
        kind = 'switch';
        // The Vcpu left keeps its completion; the one entered runs from where it was: make it run the call site again.
        r.m.jump(vp.active, CALL_SITE);
      } else {
        const e = r.m.runToExit(v);
        assert.equal(e.reason, 'hlt', `call ${i}: the answer is applied and the guest goes on`);
        if (r.m.stubVector(v) === 6) kind = 'ud';
        else {
          const { status } = parseHypercallResult(v.getRegs().rax);
          assert.ok(STATUSES.has(status), `call ${i}: status 0x${status.toString(16)} is not an HV_STATUS`);
          kind = status === HvStatus.SUCCESS ? 'success' : 'status';
        }
      }
    } else {
      assert.equal(exit.reason, 'hlt', `call ${i}: control 0x${control.toString(16)}`);
      kind = r.m.stubVector(v) === 6 ? 'ud' : 'kernel';
    }
    outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
    for (const p of [r.vp(0), r.vp(1)]) {
      assert.ok(p.isEnabled(p.activeVtl), `call ${i}: VP ${p.index} is in VTL${p.activeVtl}, which it has not enabled`);
      p.vcpus.forEach((w, vtl) => {
        if (w === undefined || vtl === p.activeVtl || !p.isEnabled(vtl)) return;
        assert.equal(w.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL, `call ${i}: VP ${p.index} VTL${vtl} is not parked`);
      });
      for (const lower of p.returnStack) assert.ok(lower < p.activeVtl && p.isEnabled(lower), `call ${i}: return stack ${p.returnStack}`);
    }
  }
  // The run reached every kind of outcome, deep calls included.
  for (const kind of ['success', 'status', 'ud', 'switch']) assert.ok((outcomes.get(kind) ?? 0) > 10, `${kind}: ${outcomes.get(kind) ?? 0} calls`);
  assert.ok(r.p.isPartitionVtlEnabled(1), 'some EnablePartitionVtl succeeded');
});
