// HvCallTranslateVirtualAddress (0x52) / Ex (0xAC) answered by the VMM
// (src/vmm/vsm/hc-translate.ts): tlfs-vsm-facts §2.16 input and output layouts,
// §5.2 TranslationResult, §5.3 Ex output (hvdef layout), slow and XMM-fast
// (§1.3, kvm-api-facts §3.1), every header status in hc-vsm.ts's order, and the
// TLB lock of §3.9. The rig's VP 0 runs in VTL1 and translates for VTL0, whose
// paging is HvMachine's identity map of the low 4 MiB (4 KiB pages, P|W|U).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VcpuExit } from '../../src/kvm/exits.js';
import { makeHypercallControl, parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MEMORY_ATTRIBUTE_NW } from '../../src/kvm/memory-attributes.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, HvCall, HvStatus, HvTranslateGvaFlags as F, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { handleTranslateVirtualAddress } from '../../src/vmm/vsm/hc-translate.js';
import type { VsmVp } from '../../src/vmm/vsm/partition.js';
import { enterHigherVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { CALL_SITE, DATA, HYPERCALL_PAGE, INPUT } from '../kvm/hypercall-machine.js';
import { OUT, VsmRig } from './vsm-hcall-rig.js';

type HcallExit = Extract<VcpuExit, { reason: 'hyperv-hcall' }>;
const USE_VTL = 0x10; // HV_INPUT_VTL.UseTargetVtl (§2.11)
const R_ = BigInt(F.ValidateRead), W_ = BigInt(F.ValidateWrite);
/** Control flags naming input VTL `vtl` (§5.1 bits 63:56). */
const forVtl = (vtl: number, low = 0n) => (BigInt(USE_VTL | vtl) << 56n) | low;
const slow = makeHypercallControl({ code: HvCall.TranslateVirtualAddress });
const slowEx = makeHypercallControl({ code: HvCall.TranslateVirtualAddressEx });
const fast = makeHypercallControl({ code: HvCall.TranslateVirtualAddress, fast: true });
const fastEx = makeHypercallControl({ code: HvCall.TranslateVirtualAddressEx, fast: true });
/** TranslationResult of a WB success (§5.2: cache type 6 in bits 39:32). */
const WB_OK = 0x6_0000_0000n;

/** A rig whose VP 0 has VTL1 enabled and runs in it. */
function inVtl1(o: { ids?: readonly number[]; maximumVtl?: number } = {}): { r: VsmRig; v1: Vcpu } {
  const r = new VsmRig(o);
  r.enablePartitionVtl(1);
  const v1 = r.enableVpVtl(0, 1);
  enterHigherVtl(r.p, r.vp(), 1, HvVtlEntryReason.VtlCall);
  return { r, v1 };
}

interface Answer { status: number; rax: bigint; locks: number[][] }

/** One translate call from `v` (VP `vp`'s VTL `vtl`), answered by hc-translate.ts, run to the HLT after the VMCALL. */
function call(r: VsmRig, v: Vcpu, vtl: number, control: bigint, rdx: bigint, r8 = 0n, xmm: readonly bigint[] = [], vp: VsmVp = r.vp()): Answer {
  const first = r.m.hypercall(v, control, rdx, r8, xmm);
  assert.equal(first.exit.reason, 'hyperv-hcall');
  const locks: number[][] = [];
  handleTranslateVirtualAddress(r.p, v, vp, vtl, first.exit as HcallExit, { lockTlb: (...a) => { locks.push(a); } });
  assert.equal(r.m.runToExit(v).reason, 'hlt');
  const rax = v.getRegs().rax;
  return { status: parseHypercallResult(rax).status, rax, locks };
}

/** Writes the 32-byte input (§2.16) at INPUT. */
function input(r: VsmRig, o: { flags: bigint; gvaPage: bigint; partition?: bigint; vp?: number; reserved?: number }): bigint {
  const mem = r.m.vm.mem;
  mem.write64(INPUT, o.partition ?? HV_PARTITION_ID_SELF);
  mem.write32(INPUT + 8, o.vp ?? HV_VP_INDEX_SELF);
  mem.write32(INPUT + 12, o.reserved ?? 0);
  mem.write64(INPUT + 16, o.flags);
  mem.write64(INPUT + 24, o.gvaPage);
  return BigInt(INPUT);
}

/** A slow 0x52 call with the output list at OUT (pre-filled with 0xEE); returns the answer and the two output qwords. */
function translate(r: VsmRig, v: Vcpu, vtl: number, o: Parameters<typeof input>[1]) {
  r.m.vm.mem.fill(OUT, 0x20, 0xee);
  const a = call(r, v, vtl, slow, input(r, o), BigInt(OUT));
  return { ...a, result: r.m.vm.mem.read64(OUT), gpaPage: r.m.vm.mem.read64(OUT + 8), after: r.m.vm.mem.read64(OUT + 16) };
}

test('§2.16 slow 0x52: VTL1 translates a VTL0 GVA; the output is {TranslationResult, GpaPage}, nothing beyond it', () => {
  const { r, v1 } = inVtl1();
  const t = translate(r, v1, 1, { flags: forVtl(0, R_ | W_), gvaPage: BigInt(DATA >> 12) });
  assert.equal(t.rax, 0n, 'SUCCESS, no reps');
  assert.equal(t.result, WB_OK);
  assert.equal(t.gpaPage, BigInt(DATA >> 12));
  assert.equal(t.after, 0xeeeeeeeeeeeeeeeen);
  assert.deepEqual(t.locks, []);
  // The explicit VP index 0 is the same VP.
  const t0 = translate(r, v1, 1, { flags: forVtl(0, R_), gvaPage: 0x123n, vp: 0 });
  assert.deepEqual([t0.status, t0.result, t0.gpaPage], [HvStatus.SUCCESS, WB_OK, 0x123n]);
});

test('§2.16, §5.2: a failed walk is SUCCESS with the result code and GpaPage 0; the overlay bit; a write to the overlay', () => {
  const { r, v1 } = inVtl1();
  let t = translate(r, v1, 1, { flags: forVtl(0), gvaPage: 0x7000_0000n });
  assert.deepEqual([t.status, t.result, t.gpaPage], [HvStatus.SUCCESS, 1n, 0n], 'PageNotPresent');
  // VTL0's hypercall page (its Vm's overlay) at 0x50000, identity-mapped.
  assert.ok(r.m.vm.hyperv!.writeHypercall(BigInt(HYPERCALL_PAGE) | 1n));
  t = translate(r, v1, 1, { flags: forVtl(0, R_), gvaPage: BigInt(HYPERCALL_PAGE >> 12) });
  assert.deepEqual([t.status, t.result, t.gpaPage], [HvStatus.SUCCESS, (1n << 40n) | WB_OK, 0x50n]);
  t = translate(r, v1, 1, { flags: forVtl(0, W_), gvaPage: BigInt(HYPERCALL_PAGE >> 12) });
  assert.deepEqual([t.status, t.result, t.gpaPage], [HvStatus.SUCCESS, 7n, 0n], 'GpaIllegalOverlayAccess');
  // VTL0's memory attributes (what VTL1 protects) decide GpaNoWriteAccess.
  r.m.vm.setMemoryAttributes({ address: DATA, size: 0x1000, attributes: KVM_MEMORY_ATTRIBUTE_NW, flags: 0 });
  t = translate(r, v1, 1, { flags: forVtl(0, R_ | W_), gvaPage: BigInt(DATA >> 12) });
  assert.deepEqual([t.status, t.result, t.gpaPage], [HvStatus.SUCCESS, 6n, 0n]);
});

test('§5.3 slow 0xAC: hvdef layout, result @0, reserved and EventInfo zero, GpaPage @0x30, reserved @0x38', () => {
  const { r, v1 } = inVtl1();
  const mem = r.m.vm.mem;
  mem.fill(OUT, 0x48, 0xee);
  const a = call(r, v1, 1, slowEx, input(r, { flags: forVtl(0, R_), gvaPage: 0x321n }), BigInt(OUT));
  assert.equal(a.status, HvStatus.SUCCESS);
  const q = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) => mem.read64(OUT + 8 * k));
  assert.deepEqual(q, [WB_OK, 0n, 0n, 0n, 0n, 0n, 0x321n, 0n, 0xeeeeeeeeeeeeeeeen]);
  // The output list must fit: 0x40 bytes at 0xFC8 cross the page (§1.5) ⇒ INVALID_ALIGNMENT.
  assert.equal(call(r, v1, 1, slowEx, BigInt(INPUT), BigInt(OUT + 0xfc8)).status, HvStatus.INVALID_ALIGNMENT);
  assert.equal(call(r, v1, 1, slow, BigInt(INPUT), BigInt(OUT + 0xfe8)).status, HvStatus.SUCCESS, '16 bytes at 0xFE8 fit');
});

test('§1.3 XMM-fast 0x52: input in RDX, R8, XMM0; output {result, GpaPage} in XMM1; XMM0 unchanged', () => {
  const { r, v1 } = inVtl1();
  v1.setXmm(1, { low: 0x1111n, high: 0x2222n });
  v1.setXmm(2, { low: 0x3333n, high: 0x4444n });
  const a = call(r, v1, 1, fast, HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), [forVtl(0, R_), 0x2abn]);
  assert.equal(a.status, HvStatus.SUCCESS);
  assert.deepEqual(v1.getXmm(0), { low: forVtl(0, R_), high: 0x2abn });
  assert.deepEqual(v1.getXmm(1), { low: WB_OK, high: 0x2abn });
  assert.deepEqual(v1.getXmm(2), { low: 0x3333n, high: 0x4444n });
  // A refused call leaves XMM1 alone (kvm copies XMM output only on success).
  v1.setXmm(1, { low: 0x1111n, high: 0x2222n });
  const d = call(r, v1, 1, fast, HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), [0n, 0x2abn]);
  assert.equal(d.status, HvStatus.ACCESS_DENIED);
  assert.deepEqual(v1.getXmm(1), { low: 0x1111n, high: 0x2222n });
});

test('§1.1 fast calls that do not fit: 0xAC (kvm returns no XMM output for it) and 32-bit callers', () => {
  const { r, v1 } = inVtl1();
  v1.setXmm(1, { low: 0x1111n, high: 0x2222n });
  const a = call(r, v1, 1, fastEx, HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), [forVtl(0), 0x10n]);
  assert.equal(a.status, HvStatus.INVALID_HYPERCALL_INPUT);
  assert.deepEqual(v1.getXmm(1), { low: 0x1111n, high: 0x2222n });
  // A 32-bit (no paging) VTL1 caller: control in EDX:EAX, input in EBX:ECX and EDI:ESI (§1.3).
  r.m.enter32(v1, CALL_SITE);
  const regs = v1.getRegs();
  regs.rax = fast; regs.rdx = 0n; regs.rbx = 0xffffffffn; regs.rcx = 0xffffffffn; regs.rdi = 0n; regs.rsi = BigInt(HV_VP_INDEX_SELF);
  v1.setRegs(regs);
  const exit = r.m.runToExit(v1);
  assert.equal(exit.reason, 'hyperv-hcall');
  handleTranslateVirtualAddress(r.p, v1, r.vp(), 1, exit as HcallExit, { lockTlb: () => assert.fail('no lock') });
  assert.equal(r.m.runToExit(v1).reason, 'hlt');
  assert.equal(Number(v1.getRegs().rax & 0xffffn), HvStatus.INVALID_HYPERCALL_INPUT);
});

test('§2.16 header statuses in order: partition, VP index, reserved fields, input VTL, same VTL, VTL state', () => {
  const { r, v1 } = inVtl1();
  const st = (o: Parameters<typeof input>[1]) => translate(r, v1, 1, o).status;
  const good = { flags: forVtl(0, R_), gvaPage: 0x10n };
  assert.equal(st(good), HvStatus.SUCCESS);
  assert.equal(st({ ...good, partition: 1n, vp: 9, reserved: 1 }), HvStatus.INVALID_PARTITION_ID);
  assert.equal(st({ ...good, vp: 9, reserved: 1 }), HvStatus.INVALID_VP_INDEX);
  assert.equal(st({ ...good, vp: HV_VP_INDEX_SELF - 1 }), HvStatus.INVALID_VP_INDEX, 'HV_ANY_VP is not a VP here');
  assert.equal(st({ ...good, reserved: 1, flags: 0n }), HvStatus.INVALID_PARAMETER, 'reserved u32, before the VTL checks');
  assert.equal(st({ ...good, flags: forVtl(0, 1n << 11n) }), HvStatus.INVALID_PARAMETER, 'flag bit 11');
  assert.equal(st({ ...good, flags: forVtl(0, 1n << 55n) }), HvStatus.INVALID_PARAMETER, 'flag bit 55');
  assert.equal(st({ ...good, flags: forVtl(0, BigInt(F.ShadowStack)) }), HvStatus.INVALID_PARAMETER, 'ShadowStack');
  assert.equal(st({ ...good, gvaPage: 1n << 52n }), HvStatus.INVALID_PARAMETER, 'GVA beyond 64 bits');
  assert.equal(st({ ...good, gvaPage: (1n << 52n) - 1n }), HvStatus.SUCCESS);
  assert.equal(st({ ...good, flags: (0x20n << 56n) }), HvStatus.INVALID_PARAMETER, 'HV_INPUT_VTL bit 5');
  assert.equal(st({ ...good, flags: forVtl(2) }), HvStatus.INVALID_PARAMETER, 'above the maximum VTL');
  assert.equal(st({ ...good, flags: forVtl(1) }), HvStatus.ACCESS_DENIED, 'the caller\'s own VTL');
  assert.equal(st({ ...good, flags: R_ }), HvStatus.ACCESS_DENIED, 'UseTargetVtl = 0 is the caller\'s VTL');
  assert.equal(st({ ...good, flags: forVtl(1, BigInt(F.TlbFlushInhibit)) }), HvStatus.ACCESS_DENIED);
  assert.equal(call(r, v1, 1, slow, BigInt(INPUT + 4), BigInt(OUT)).status, HvStatus.INVALID_ALIGNMENT, 'input GPA');
  assert.equal(call(r, v1, 1, slow, BigInt(INPUT), BigInt(OUT + 4)).status, HvStatus.INVALID_ALIGNMENT, 'output GPA');
  // A refused call writes no output.
  r.m.vm.mem.fill(OUT, 16, 0xee);
  input(r, { ...good, partition: 7n });
  call(r, v1, 1, slow, BigInt(INPUT), BigInt(OUT));
  assert.equal(r.m.vm.mem.read64(OUT), 0xeeeeeeeeeeeeeeeen);
});

test('§2.11, §2.16: from VTL0 every target is refused (own VTL, or a higher one)', () => {
  const r = new VsmRig();
  r.enablePartitionVtl(1);
  r.enableVpVtl(0, 1); // enabled, but the VP stays in VTL0
  const v0 = r.vcpu(0, 0);
  const st = (flags: bigint) => { input(r, { flags, gvaPage: 0x10n }); return call(r, v0, 0, slow, BigInt(INPUT), BigInt(OUT)).status; };
  assert.equal(st(forVtl(1, R_)), HvStatus.ACCESS_DENIED);
  assert.equal(st(forVtl(0, R_)), HvStatus.ACCESS_DENIED);
  assert.equal(st(R_), HvStatus.ACCESS_DENIED);
});

test('§2.16 INVALID_VTL_STATE: VTL2 translating for VTL1, which is not enabled on the VP; VTL2 for VTL0 works', () => {
  const r = new VsmRig({ maximumVtl: 2 });
  r.enablePartitionVtl(1);
  r.enablePartitionVtl(2);
  const v2 = r.enableVpVtl(0, 2);
  enterHigherVtl(r.p, r.vp(), 2, HvVtlEntryReason.VtlCall);
  assert.equal(translate(r, v2, 2, { flags: forVtl(1, R_), gvaPage: 0x10n }).status, HvStatus.INVALID_VTL_STATE);
  const t = translate(r, v2, 2, { flags: forVtl(0, R_), gvaPage: 0x10n });
  assert.deepEqual([t.status, t.result, t.gpaPage], [HvStatus.SUCCESS, WB_OK, 0x10n]);
});

test('§3.9 TlbFlushInhibit: a SUCCESS answer locks (VP, target VTL) for the caller\'s VTL, also when the walk failed', () => {
  const { r, v1 } = inVtl1();
  const flags = forVtl(0, R_ | BigInt(F.TlbFlushInhibit));
  assert.deepEqual(translate(r, v1, 1, { flags, gvaPage: 0x10n }).locks, [[0, 0, 1]]);
  const failed = translate(r, v1, 1, { flags, gvaPage: 0x7000_0000n });
  assert.deepEqual([failed.result, failed.locks], [1n, [[0, 0, 1]]]);
  assert.deepEqual(translate(r, v1, 1, { flags, gvaPage: 0x10n, reserved: 1 }).locks, [], 'refused: no lock');
  assert.deepEqual(translate(r, v1, 1, { flags: forVtl(0, R_), gvaPage: 0x10n }).locks, [], 'not asked');
  const a = call(r, v1, 1, fast, HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), [flags, 0x10n]);
  assert.deepEqual(a.locks, [[0, 0, 1]]);
});

test('§2.16 another VP: its VTL0 paging state, and the lock names that VP', () => {
  const { r, v1 } = inVtl1({ ids: [0, 1] });
  r.m.enter32(r.vcpu(1, 0), CALL_SITE); // VP 1's VTL0: protected mode without paging
  const page = 0x500n; // 5 MiB: beyond VP 0's identity map
  let t = translate(r, v1, 1, { flags: forVtl(0, R_), gvaPage: page, vp: 0 });
  assert.deepEqual([t.status, t.result], [HvStatus.SUCCESS, 1n], 'VP 0: PageNotPresent');
  t = translate(r, v1, 1, { flags: forVtl(0, R_ | BigInt(F.TlbFlushInhibit)), gvaPage: page, vp: 1 });
  assert.deepEqual([t.status, t.result, t.gpaPage, t.locks], [HvStatus.SUCCESS, WB_OK, page, [[1, 0, 1]]]);
  assert.equal(translate(r, v1, 1, { flags: forVtl(0), gvaPage: page, vp: 2 }).status, HvStatus.INVALID_VP_INDEX);
});

test('handleTranslateVirtualAddress refuses other calls with a VsmError', () => {
  const { r, v1 } = inVtl1();
  const first = r.m.hypercall(v1, makeHypercallControl({ code: HvCall.GetVpRegisters, repCount: 1 }), BigInt(INPUT), BigInt(OUT));
  assert.equal(first.exit.reason, 'hyperv-hcall');
  assert.throws(() => handleTranslateVirtualAddress(r.p, v1, r.vp(), 1, first.exit as HcallExit, { lockTlb: () => {} }), /not TranslateVirtualAddress/);
});
