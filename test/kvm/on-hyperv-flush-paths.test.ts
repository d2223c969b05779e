// The three SVM flush paths of KVM on Hyper-V, with the merged fix of
// kvm-api-facts §6.3 on and off, and the "enlightened TLB active" condition
// (CPUID 0x4000000A EAX bit 22 and the VMCB's EnlightenedNptTlb, §7.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvStatus } from '../../src/spec/tlfs.js';
import { INVALID_PAGE, NPT_TABLE_BASE } from '../../src/kvm/on-hyperv/tdp-mmu.js';
import type { OnHypervOptions } from '../../src/kvm/on-hyperv/on-hyperv.js';
import { AF, calls, clearCalls, rig, traceNames } from './on-hyperv-rig.js';

function loadedOne(opts: OnHypervOptions = {}) {
  const r = rig(1, opts);
  r.vs[0].mmuLoad();
  clearCalls(r.oh);
  return { ...r, v: r.vs[0], root: r.vs[0].root };
}

test('flush_tlb_current with the fix and the enlightened TLB: 0xAF on the current root, then the ASID flush', () => {
  const { oh, v, root } = loadedOne();
  assert.equal(v.enlightenedTlbActive, true);
  v.flushTlbCurrent();
  assert.deepEqual(calls(oh), [[AF, root, 0]]);
  assert.deepEqual(traceNames(oh), ['hv_l0_flush_guest_physical_address_space', 'hyperv_nested_flush_guest_mapping', 'hv_l0_flush_asid']);
  assert.deepEqual(oh.vm.trace!.named('hyperv_nested_flush_guest_mapping')[0].args, { as: root.toString(16), ret: 0 });
  assert.deepEqual(oh.vm.trace!.named('hv_l0_flush_asid')[0].args, { asid: 1, enlightened: true, dropped: 0 });
});

test('flush_tlb_current ignores a failed 0xAF: the ASID flush still happens, nothing is thrown', () => {
  const { oh, v, root } = loadedOne();
  oh.l0.failNext({ status: HvStatus.INSUFFICIENT_MEMORY });
  v.flushTlbCurrent();
  assert.deepEqual(calls(oh), [[AF, root, HvStatus.INSUFFICIENT_MEMORY]]);
  assert.equal(oh.vm.trace!.named('hv_l0_flush_asid').length, 1);
});

const noHypercall: [string, OnHypervOptions][] = [
  ['the fix off', { fix: false }],
  ['EnlightenedNptTlb clear in the VMCB', { enlightenedNptTlb: false }],
  ['L0 without CPUID 0x4000000A bit 22', { l0Features: { enlightenedTlb: false } }],
];
for (const [what, opts] of noHypercall) {
  test(`flush_tlb_current and flush_tlb_all with ${what}: the ASID flush alone, zero hypercalls`, () => {
    const { oh, v } = loadedOne(opts);
    v.flushTlbCurrent();
    v.flushTlbAll();
    assert.deepEqual(calls(oh), []);
    assert.deepEqual(traceNames(oh), ['hv_l0_flush_asid', 'hv_l0_flush_asid']);
    assert.deepEqual(oh.warnings, []);
  });
}

test('flush_tlb_current uses the MMU root, never the tracked value: no root, no hypercall, tracking untouched', () => {
  const { oh, v, root } = loadedOne();
  oh.flushRemoteTlbs();
  assert.equal(oh.tracking.vmRoot, root);
  v.mmuUnload();
  clearCalls(oh);
  assert.equal(v.root, INVALID_PAGE);
  assert.equal(v.hvRootTdp, root, 'kvm_mmu_unload leaves hv_root_tdp');
  v.flushTlbCurrent();
  assert.deepEqual(calls(oh), []);
  assert.equal(oh.tracking.vmRoot, root);
});

test('flush_tlb_all with the fix and the enlightened TLB: one warning per VM, a VM-wide remote flush, the ASID flush', () => {
  const r = rig(2);
  const A = r.oh.allocRoot(), B = r.oh.allocRoot();
  r.vs[0].mmuLoad(A); r.vs[1].mmuLoad(B);
  clearCalls(r.oh);
  r.vs[0].flushTlbAll();
  r.vs[1].flushTlbAll();
  assert.deepEqual(calls(r.oh), [[AF, A, 0], [AF, B, 0], [AF, A, 0], [AF, B, 0]]);
  assert.equal(r.oh.warnings.length, 1);
  assert.deepEqual(r.oh.vm.trace!.named('kvm_warn_on_once').map((e) => e.vcpu), [0]);
  assert.deepEqual(r.oh.vm.trace!.named('hv_l0_flush_asid').map((e) => e.vcpu), [0, 1]);
});

for (const [what, opts] of [['the fix on', {}], ...noHypercall] as [string, OnHypervOptions][]) {
  test(`flush_tlb_guest with ${what}: an ASID flush, never a hypercall`, () => {
    const { oh, v } = loadedOne(opts);
    v.flushTlbGuest();
    assert.deepEqual(calls(oh), []);
    assert.deepEqual(traceNames(oh), ['hv_l0_flush_asid']);
  });
}

test('mmuLoad issues flush_tlb_current: with the fix one 0xAF on the new root per load', () => {
  const r = rig(2);
  r.vs[0].mmuLoad();
  r.vs[1].mmuLoad();
  const root = r.vs[0].root;
  assert.equal(r.vs[1].root, root, 'both vCPUs take the VM\'s root');
  assert.deepEqual(calls(r.oh), [[AF, root, 0], [AF, root, 0]]);
  r.oh.fix = false;
  clearCalls(r.oh);
  r.vs[0].mmuLoad();
  assert.deepEqual(calls(r.oh), []);
});

test('bad root arguments are EINVAL / EBUSY and change nothing', () => {
  const { oh, v, root } = loadedOne();
  assert.throws(() => v.mmuLoad(0x1000), /EINVAL/);
  assert.equal(v.root, root);
  assert.throws(() => oh.freeRoot(root), /EBUSY/);
  assert.deepEqual(oh.tdp.liveRoots, [root]);
  assert.throws(() => oh.freeRoot(root + 0x1000), /EINVAL/);
  assert.throws(() => oh.attach(v.vcpu), /EEXIST/);
  // The table RAM can never be mapped into L2; L2 frames stop at 512 GiB.
  assert.throws(() => oh.moveL2Page(5, NPT_TABLE_BASE / 4096), /EINVAL/);
  assert.throws(() => oh.mapL2Range(5, 1, NPT_TABLE_BASE / 4096 - 0.5), /EINVAL/);
  assert.throws(() => oh.mapL2Range(2 ** 27, 1, 5), /EINVAL/);
  assert.throws(() => oh.tdp.setPage(root, -1, 5), /EINVAL/);
  assert.equal(v.root, root);
  assert.deepEqual(calls(oh), []);
});

test('the table RAM runs out: ENOMEM, nothing allocated', () => {
  const { oh } = rig(1, { tablePages: 5 });
  oh.allocRoot(); oh.allocRoot();
  assert.throws(() => oh.allocRoot(), /ENOMEM/);
  assert.equal(oh.tdp.liveRoots.length, 2);
});
