// The 2023 stale-root bug of KVM on Hyper-V (kvm-api-facts §6.3), shown by
// guest code running on our CPU as L2: a root is freed without a flush, its
// page is reused for a new root that maps an L2 page elsewhere, and the
// guest reads through it. With the enlightened TLB and without the fix, the
// ASID flush of the root load leaves L0's NPT-derived entry: the guest sees
// the old page's data. With the fix (0xAF on the new root) or without the
// enlightened TLB (an architectural ASID flush) it sees the new data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { OnHypervOptions } from '../../src/kvm/on-hyperv/on-hyperv.js';
import { AccessOrigin } from '../../src/x86/host.js';
import { KVM_MEMORY_EXIT_FLAG_READ } from '../../src/kvm/exits.js';
import { enterFlat32, enterLong64, writeCode } from './guest-setup.js';
import { AF, calls, clearCalls, rig } from './on-hyperv-rig.js';

const OLD = 0x01d, NEW = 0x9e3; // what L1 pages 5 and 6 hold
const X = 5; // the L2 page the guest reads: L1 page 5 at first, L1 page 6 later

/** The guest: `mov eax, [0x5000]; hlt` at 0x1000, in 64-bit mode (L2 page tables at 0x20000) or flat 32-bit without paging. */
function setup(opts: OnHypervOptions, mode: 'long' | 'flat') {
  const r = rig(1, opts);
  const v = r.vs[0].vcpu;
  if (mode === 'long') enterLong64(v, 0x1000); else enterFlat32(v, 0x1000);
  writeCode(v, 0x1000, mode === 'long' ? [0x8b, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00, 0xf4] : [0xa1, 0x00, 0x50, 0x00, 0x00, 0xf4]);
  r.vm.mem.write32(0x5000, OLD);
  r.vm.mem.write32(0x6000, NEW);
  r.vs[0].mmuLoad();
  return { ...r, v, ov: r.vs[0] };
}

/** Runs the read again from 0x1000 and returns EAX. */
function read(v: Vcpu): number {
  v.setRegs({ ...v.getRegs(), rip: 0x1000n, rax: 0n });
  v.setMpState(0);
  assert.equal(v.run(100).reason, 'hlt');
  return Number(v.getRegs().rax);
}

const cases: [string, OnHypervOptions, number][] = [
  ['enlightened TLB, fix off (the 2023 bug)', { fix: false }, OLD],
  ['enlightened TLB, fix on', { fix: true }, NEW],
  ['no EnlightenedNptTlb in the VMCB, fix off', { fix: false, enlightenedNptTlb: false }, NEW],
  ['L0 without the enlightened TLB, fix off', { fix: false, l0Features: { enlightenedTlb: false } }, NEW],
];

for (const mode of ['long', 'flat'] as const) {
  for (const [what, opts, expected] of cases) {
    test(`${mode === 'long' ? '64-bit paging' : 'paging off'}, ${what}: after a root reuse the guest reads 0x${expected.toString(16)}`, () => {
      const { oh, v, ov } = setup(opts, mode);
      const first = ov.root;
      assert.equal(read(v), OLD);
      assert.ok(oh.l0.tlb.entriesOf(first, ov.asid) > 0, 'L0 cached NPT-derived translations');
      clearCalls(oh);
      oh.moveL2Page(X, 6); // roots freed without a flush; the new root reuses the page
      assert.equal(ov.root, first, 'the new root is the freed root page');
      assert.deepEqual(oh.tdp.liveRoots, [first]);
      assert.equal(read(v), expected);
      const etlb = opts.l0Features?.enlightenedTlb !== false && opts.enlightenedNptTlb !== false;
      assert.deepEqual(calls(oh), opts.fix !== false && etlb ? [[AF, first, 0]] : []);
    });
  }
}

test('the same reuse through the explicit root API: free, allocate (same page), remap, load', () => {
  for (const fix of [false, true]) {
    const { oh, v, ov } = setup({ fix }, 'long');
    const r1 = ov.root;
    assert.equal(read(v), OLD);
    ov.mmuUnload();
    oh.freeRoot(r1);
    const r2 = oh.allocRoot();
    assert.equal(r2, r1);
    oh.tdp.setPage(r2, X, 6);
    ov.mmuLoad(r2);
    assert.equal(read(v), fix ? NEW : OLD);
  }
});

test('a root that is not reused (another root value) never shows the old data, fix or not', () => {
  const { oh, v, ov } = setup({ fix: false }, 'long');
  const r1 = ov.root;
  assert.equal(read(v), OLD);
  const r2 = oh.allocRoot(); // r1 stays live, so r2 is another page
  assert.notEqual(r2, r1);
  oh.tdp.setPage(r2, X, 6);
  ov.mmuLoad(r2);
  assert.equal(read(v), NEW);
});

test('L0 keeps its NPT-derived entries until a flush: a mapping changed without one stays stale even with the fix', () => {
  const { oh, v, ov } = setup({}, 'long');
  assert.equal(read(v), OLD);
  oh.tdp.setPage(ov.root, X, 6);   // behind L0's back, no flush
  ov.flushTlbGuest();               // ASID flush: GVA-derived entries only (enlightened TLB)
  assert.equal(read(v), OLD);
  clearCalls(oh);
  oh.mapL2Range(X, 1, 6);           // the same change made by the core: remote range flush 0xB0
  assert.deepEqual(calls(oh), [[0xb0, ov.root, 0]]);
  assert.equal(read(v), NEW);
});

test('an L2 page the NPT does not map is a memory-fault exit at its L2 GPA', () => {
  const { oh, v } = setup({}, 'long');
  oh.mapL2Range(X, 1, null);
  v.setRegs({ ...v.getRegs(), rip: 0x1000n, rax: 0n });
  v.setMpState(0);
  const exit = v.run(100);
  assert.equal(exit.reason, 'memory-fault');
  if (exit.reason !== 'memory-fault') return;
  assert.equal(exit.gpa, 0x5000);
  assert.equal(exit.flags, KVM_MEMORY_EXIT_FLAG_READ);
  assert.equal(exit.origin, AccessOrigin.Guest);
  assert.equal(v.getRegs().rip, 0x1000n);
});

test('a page-table page the NPT does not map faults as a page-walk access', () => {
  const { oh, v } = setup({}, 'long');
  oh.mapL2Range(0x22, 1, null); // the L2 page directory (enterLong64's tables at 0x20000)
  v.setRegs({ ...v.getRegs(), rip: 0x1000n });
  v.setMpState(0);
  const exit = v.run(100);
  assert.equal(exit.reason, 'memory-fault');
  if (exit.reason !== 'memory-fault') return;
  assert.equal(exit.gpa, 0x22000);
  assert.equal(exit.origin, AccessOrigin.PageWalk);
});

test('a vCPU without a root runs nothing: its first fetch is a memory-fault exit', () => {
  const r = rig(1);
  const v = r.vs[0].vcpu;
  enterFlat32(v, 0x1000);
  const exit = v.run(10);
  assert.equal(exit.reason, 'memory-fault');
  assert.equal(exit.reason === 'memory-fault' && exit.gpa, 0x1000);
});
