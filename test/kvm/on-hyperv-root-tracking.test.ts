// Common-root tracking and the remote flushes of KVM on Hyper-V, row by row
// as kvm-api-facts §6.2 tabulates them (kvm_onhyperv.c), with the L0
// hypercalls each makes, in order, and the generic fallbacks of kvm_main.c.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvStatus, HV_MAX_FLUSH_PAGES, HV_MAX_FLUSH_REP_COUNT } from '../../src/spec/tlfs.js';
import { INVALID_PAGE } from '../../src/kvm/on-hyperv/tdp-mmu.js';
import { FILL_FAILED } from '../../src/kvm/on-hyperv/flush-list.js';
import { AF, B0, calls, clearCalls, rig, traceNames } from './on-hyperv-rig.js';

const FAIL = HvStatus.OPERATION_FAILED;

/** `roots[k]` loaded on vCPU k (null: never loaded), then the hypercall log cleared. */
function loaded(n: number, pick: (roots: number[]) => (number | null)[]) {
  const r = rig(n);
  const roots = [r.oh.allocRoot(), r.oh.allocRoot(), r.oh.allocRoot()];
  pick(roots).forEach((root, k) => { if (root !== null) r.vs[k].mmuLoad(root); });
  clearCalls(r.oh);
  return { ...r, A: roots[0], B: roots[1], C: roots[2] };
}

test('§6.2 root load: the vCPU value becomes the root; the VM value is only ever invalidated by a load', () => {
  const { oh, vs, A, B } = loaded(2, () => []);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE);
  vs[0].mmuLoad(A); vs[1].mmuLoad(A);
  assert.deepEqual(vs.map((v) => v.hvRootTdp), [A, A]);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE, 'loading the same root everywhere does not make it the VM value');
  oh.flushRemoteTlbs();
  assert.equal(oh.tracking.vmRoot, A, 'the flush path found the common root');
  vs[0].mmuLoad(A);
  assert.equal(oh.tracking.vmRoot, A, 'a load of the VM value keeps it');
  vs[1].mmuLoad(B);
  assert.equal(vs[1].hvRootTdp, B);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE, 'a load of another root invalidates it');
});

test('§6.2 root load: without the Hyper-V remote flush hook (no enlightened TLB) nothing is tracked', () => {
  const { oh, vs } = rig(1, { l0Features: { enlightenedTlb: false } });
  assert.equal(oh.remoteFlushHook, false);
  vs[0].mmuLoad();
  assert.equal(vs[0].hvRootTdp, INVALID_PAGE);
  assert.throws(() => oh.hvFlushRemoteTlbs(), /EINVAL/);
});

test('§6.2 VM value valid: one hypercall on it, 0xAF for a full flush, 0xB0 with the range list for a range flush', () => {
  const { oh, A } = loaded(3, (r) => [r[0], r[0], r[0]]);
  oh.flushRemoteTlbs();
  assert.equal(oh.tracking.vmRoot, A);
  clearCalls(oh);
  oh.flushRemoteTlbs();
  assert.deepEqual(calls(oh), [[AF, A, 0]]);
  clearCalls(oh);
  oh.flushRemoteTlbsRange(0x300, 2049);
  assert.deepEqual(calls(oh), [[B0, A, 0]]);
  assert.equal(oh.l0.calls[0].reps, 2, '2049 pages from 0x300 are two elements');
});

test('§6.2 VM value invalid, all vCPUs on one root: one hypercall, and that root becomes the VM value', () => {
  const { oh, A } = loaded(4, (r) => [r[0], r[0], r[0], r[0]]);
  assert.equal(oh.hvFlushRemoteTlbs(), 0);
  assert.deepEqual(calls(oh), [[AF, A, 0]]);
  assert.equal(oh.tracking.vmRoot, A);
  clearCalls(oh);
  assert.equal(oh.hvFlushRemoteTlbs(), 0);
  assert.deepEqual(calls(oh), [[AF, A, 0]], 'later flushes skip the walk');
});

test('§6.2 VM value invalid, mixed roots: a flush per visited vCPU root in index order, then INVALID', () => {
  const { oh, A, B } = loaded(4, (r) => [r[0], r[1], r[1], r[0]]);
  assert.equal(oh.hvFlushRemoteTlbs(), 0);
  // vCPU 3's A equals the VM value the walk set at vCPU 0: skipped. vCPU 2's B is not deduplicated.
  assert.deepEqual(calls(oh), [[AF, A, 0], [AF, B, 0], [AF, B, 0]]);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE);
  clearCalls(oh);
  oh.hvFlushRemoteTlbs({ gfn: 0x10, pages: 1 });
  assert.deepEqual(calls(oh), [[B0, A, 0], [B0, B, 0], [B0, B, 0]], 'the range flush walks the same way');
});

test('§6.2 invalid vCPU roots are skipped, the first valid one becomes the VM value during the walk', () => {
  const { oh, A, B } = loaded(3, (r) => [null, r[1], r[0]]);
  assert.equal(oh.hvFlushRemoteTlbs(), 0);
  assert.deepEqual(calls(oh), [[AF, B, 0], [AF, A, 0]]);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE);
});

test('§6.2 dedupe quirk: only the first root is deduplicated', () => {
  const { oh, A, B, C } = loaded(6, (r) => [r[0], r[1], r[0], r[1], r[2], r[2]]);
  oh.hvFlushRemoteTlbs();
  assert.deepEqual(calls(oh), [[AF, A, 0], [AF, B, 0], [AF, B, 0], [AF, C, 0], [AF, C, 0]]);
});

test('§6.2 an error stops further flushes; the walk ends once more than one root was seen', () => {
  const { oh, A } = loaded(3, (r) => [r[0], r[1], r[2]]);
  oh.l0.failNext({ status: FAIL });
  assert.equal(oh.hvFlushRemoteTlbs(), FAIL);
  assert.deepEqual(calls(oh), [[AF, A, FAIL]], 'after the failure on A, B is counted but not flushed, and the walk stops');
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE);
});

test('§6.2 a failure on the second root: the first was flushed, the third is never reached', () => {
  const { oh, A, B } = loaded(3, (r) => [r[0], r[1], r[2]]);
  oh.l0.failNext({ addressSpace: B, status: FAIL });
  assert.equal(oh.hvFlushRemoteTlbs(), FAIL);
  assert.deepEqual(calls(oh), [[AF, A, 0], [AF, B, FAIL]]);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE);
});

test('§6.2 exactly one root whose flush failed stays the VM value', () => {
  const { oh, A } = loaded(2, (r) => [r[0], r[0]]);
  oh.l0.failNext({ status: FAIL });
  assert.equal(oh.hvFlushRemoteTlbs(), FAIL);
  assert.deepEqual(calls(oh), [[AF, A, FAIL]]);
  assert.equal(oh.tracking.vmRoot, A);
});

test('§6.2 no valid roots at all: nothing is flushed, success', () => {
  const { oh } = loaded(3, () => []);
  assert.equal(oh.hvFlushRemoteTlbs(), 0);
  assert.equal(oh.hvFlushRemoteTlbs({ gfn: 0, pages: 4 }), 0);
  assert.deepEqual(calls(oh), []);
  assert.equal(oh.tracking.vmRoot, INVALID_PAGE);
});

test('§6.2 fallback: a failed range flush becomes a full remote flush', () => {
  const { oh, A } = loaded(2, (r) => [r[0], r[0]]);
  oh.flushRemoteTlbs();
  clearCalls(oh);
  oh.l0.failNext({ code: B0, status: FAIL });
  oh.flushRemoteTlbsRange(0x40, 8);
  assert.deepEqual(calls(oh), [[B0, A, FAIL], [AF, A, 0]]);
});

test('§6.1 fallback: a range needing more than 510 elements makes no 0xB0 call and falls back to 0xAF', () => {
  const { oh, A } = loaded(1, (r) => [r[0]]);
  oh.flushRemoteTlbsRange(0, HV_MAX_FLUSH_REP_COUNT * HV_MAX_FLUSH_PAGES);
  assert.deepEqual(calls(oh), [[B0, A, 0]]);
  assert.equal(oh.l0.calls[0].reps, 510);
  clearCalls(oh);
  oh.flushRemoteTlbsRange(0, HV_MAX_FLUSH_REP_COUNT * HV_MAX_FLUSH_PAGES + 1);
  assert.deepEqual(calls(oh), [[AF, A, 0]]);
  const ranges = oh.vm.trace!.named('hyperv_nested_flush_guest_mapping_range').map((e) => e.args);
  assert.deepEqual(ranges, [{ as: A.toString(16), ret: FILL_FAILED }]);
});

test('§6.2 fallback: a failed full flush makes every vCPU run flush_tlb_all (one warning, VM-wide flush, ASID flush)', () => {
  const { oh, vs, A } = loaded(2, (r) => [r[0], r[0]]);
  oh.flushRemoteTlbs();
  clearCalls(oh);
  oh.l0.failNext({ code: AF, status: FAIL });
  oh.flushRemoteTlbs();
  assert.deepEqual(calls(oh), [[AF, A, FAIL], [AF, A, 0], [AF, A, 0]]);
  assert.equal(oh.warnings.length, 1);
  assert.deepEqual(traceNames(oh).filter((n) => n === 'kvm_warn_on_once' || n === 'hv_l0_flush_asid'),
    ['kvm_warn_on_once', 'hv_l0_flush_asid', 'hv_l0_flush_asid']);
  assert.deepEqual(oh.vm.trace!.named('hv_l0_flush_asid').map((e) => e.vcpu), [0, 1]);
  assert.deepEqual(vs.map((v) => v.asid), [1, 2]);
  clearCalls(oh);
  oh.l0.failNext({ code: AF, status: FAIL });
  oh.flushRemoteTlbs();
  assert.equal(oh.warnings.length, 1, 'WARN_ON_ONCE');
  assert.deepEqual(oh.vm.trace!.named('kvm_warn_on_once'), []);
});

test('§6.2 fallback with the fix off: the requested flush_tlb_all is only an ASID flush', () => {
  const { oh, A } = loaded(2, (r) => [r[0], r[0]]);
  oh.fix = false;
  oh.flushRemoteTlbs();
  clearCalls(oh);
  oh.l0.failNext({ status: FAIL });
  oh.flushRemoteTlbs();
  assert.deepEqual(calls(oh), [[AF, A, FAIL]]);
  assert.deepEqual(oh.warnings, []);
  assert.equal(oh.vm.trace!.named('hv_l0_flush_asid').length, 2);
});

test('without the hook every remote flush is a KVM_REQ_TLB_FLUSH: ASID flushes, no hypercall', () => {
  const { oh, vs } = rig(3, { l0Features: { enlightenedTlb: false } });
  for (const v of vs) v.mmuLoad();
  clearCalls(oh);
  oh.flushRemoteTlbs();
  oh.flushRemoteTlbsRange(5, 1);
  assert.deepEqual(calls(oh), []);
  assert.deepEqual(oh.vm.trace!.named('hv_l0_flush_asid').map((e) => [e.vcpu, e.args.enlightened]),
    [[0, false], [1, false], [2, false], [0, false], [1, false], [2, false]]);
});

test('bad remote-flush ranges are EINVAL and flush nothing', () => {
  const { oh } = loaded(1, (r) => [r[0]]);
  for (const [g, p] of [[0, 0], [-1, 1], [0.5, 1], [2 ** 27 - 1, 2]]) {
    assert.throws(() => oh.flushRemoteTlbsRange(g, p), /EINVAL/);
  }
  assert.deepEqual(calls(oh), []);
});
