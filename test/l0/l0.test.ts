// The L0 model on its own (src/l0): the NPT walk, the range elements, the
// 0xAF/0xB0 hypercalls with their TLFS layout and status codes
// (tlfs-vsm-facts §1.1, §1.2, §2.7; kvm-api-facts §6.1), the ASID flush with
// and without the enlightened TLB (§7.2), and failure injection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { L0Hypervisor, NO_ROOT, type L0Features } from '../../src/l0/l0.js';
import { walkNpt } from '../../src/l0/npt.js';
import { decodeGpaRange } from '../../src/l0/gpa-range.js';
import { NPT_TABLE_BASE, TdpMmu } from '../../src/kvm/on-hyperv/tdp-mmu.js';
import { makeHypercallControl, parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import { HvStatus, HvSvmEnlightenment } from '../../src/spec/tlfs.js';
import type { TraceEvent } from '../../src/kvm/trace.js';
import { TlbEntry } from '../../src/x86/tlb.js';

const AF = 0xaf, B0 = 0xb0;
const ETLB = HvSvmEnlightenment.EnlightenedNptTlb;

/** Two CPUs attached to an L0 over a 4 MiB Vm, two identity roots A and B. */
function setup(features?: Partial<L0Features>) {
  const vm = new Vm({ memorySize: 4 << 20 });
  const tdp = new TdpMmu(64);
  const events: { name: string; vp: number; args: TraceEvent['args'] }[] = [];
  const l0 = new L0Hypervisor({ ram: vm.mem, tables: { base: NPT_TABLE_BASE, mem: tdp.tables }, features, onEvent: (name, vp, args) => events.push({ name, vp, args }) });
  const p0 = l0.attach(vm.createVcpu(0).cpu, 0), p1 = l0.attach(vm.createVcpu(1).cpu, 1);
  const A = tdp.allocRoot(), B = tdp.allocRoot();
  return { vm, tdp, l0, p0, p1, A, B, events };
}

function input(as: number, flags = 0, elements: bigint[] = []): Uint8Array {
  const b = new Uint8Array(16 + 8 * elements.length);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(as), true);
  dv.setBigUint64(8, BigInt(flags), true);
  elements.forEach((e, k) => dv.setBigUint64(16 + 8 * k, e, true));
  return b;
}

function call(l0: L0Hypervisor, control: Parameters<typeof makeHypercallControl>[0], bytes: Uint8Array) {
  return parseHypercallResult(l0.hypercall(0, makeHypercallControl(control), bytes));
}

test('the NPT walk: identity through 1 GiB pages, split pages, unmapped pages, beyond 48 bits', () => {
  const { l0, tdp, A } = setup();
  const s = new Int32Array(2);
  assert.equal(walkNpt(l0.l1, A, 0x1234_5678, s), 0x1234_5678);
  assert.equal(walkNpt(l0.l1, A, 0x7f_ffff_f000, s), 0x7f_ffff_f000);
  assert.equal(walkNpt(l0.l1, A, 0x80_0000_0000, s), -1, 'PML4 entry 1 (the table RAM) is not mapped');
  assert.equal(walkNpt(l0.l1, A, 2 ** 48, s), -1);
  tdp.setPage(A, 0x12345, 0x777);
  assert.equal(walkNpt(l0.l1, A, 0x1234_5abc, s), 0x77_7abc);
  assert.equal(walkNpt(l0.l1, A, 0x1234_6000, s), 0x1234_6000, 'the rest of the split 2 MiB and 1 GiB pages is unchanged');
  assert.equal(walkNpt(l0.l1, A, 0x4000_0000, s), 0x4000_0000);
  tdp.setPage(A, 0x12345, null);
  assert.equal(walkNpt(l0.l1, A, 0x1234_5000, s), -1);
});

test('GPA range elements: 4 KiB ranges, 2 MiB and 1 GiB large-page ranges, reserved bits', () => {
  assert.deepEqual(decodeGpaRange(0x4500_5, 0x1), { gfn: 0x1_0004_5, pages: 6 });
  // 2 MiB: address 0x4020_0000 >> 21 = 0x201 in bits 63:21, one additional large page.
  assert.deepEqual(decodeGpaRange((0x201 << 21) | 0x800 | 1, 0), { gfn: 0x40200, pages: 1024 });
  // 1 GiB (bit 12): an address inside the page names the whole page.
  assert.deepEqual(decodeGpaRange((0x201 << 21) | 0x1000 | 0x800, 0), { gfn: 0x40000, pages: 262144 });
  assert.equal(decodeGpaRange(0x800 | 0x2000, 0), null);
});

test('translations are cached per (root, ASID) and survive a change of the tables until a flush', () => {
  const { l0, tdp, p0, A } = setup();
  p0.vmrun(A, 1, ETLB);
  assert.equal(p0.translate(0x5123), 0x5123);
  assert.equal(l0.tlb.entriesOf(A, 1), 1);
  tdp.setPage(A, 5, 6);
  assert.equal(p0.translate(0x5123), 0x5123, 'cached');
  l0.hypercall(0, makeHypercallControl({ code: AF }), input(A));
  assert.equal(p0.translate(0x5123), 0x6123);
  p0.leave();
  assert.equal(p0.root, NO_ROOT);
  assert.equal(p0.translate(0x5123), -1);
});

test('ASID flush: enlightened TLB keeps NPT-derived entries; without it they go (every root of that ASID)', () => {
  for (const [features, vmcb, kept] of [[{}, ETLB, true], [{}, 0, false], [{ enlightenedTlb: false }, ETLB, false]] as const) {
    const { l0, p0, p1, A, B, events } = setup(features);
    p0.vmrun(B, 1, vmcb); p0.translate(0x3000);
    p0.vmrun(A, 1, vmcb); p0.translate(0x1000); p0.translate(0x2000);
    p1.vmrun(A, 2, vmcb); p1.translate(0x1000);
    p0.cpu.mmu.tlb.insert(1, 0, new TlbEntry(0x1000, true, true, false, true, false, 12));
    p0.flushAsid();
    assert.equal(p0.cpu.mmu.tlb.size, 0, 'GVA-derived entries always go');
    assert.deepEqual([l0.tlb.entriesOf(A, 1), l0.tlb.entriesOf(B, 1), l0.tlb.entriesOf(A, 2)], kept ? [2, 1, 1] : [0, 0, 1]);
    assert.deepEqual(events.at(-1), { name: 'hv_l0_flush_asid', vp: 0, args: { asid: 1, enlightened: kept, dropped: kept ? 0 : 3 } });
  }
});

test('0xAF: every entry of the root on every ASID goes, other roots stay; CPUs on that root lose their TLB', () => {
  const { l0, p0, p1, A, B, events } = setup();
  p0.vmrun(A, 1, ETLB); p0.translate(0x1000); p0.translate(0x2000);
  p1.vmrun(B, 2, ETLB); p1.translate(0x1000);
  let flushed0 = 0, flushed1 = 0;
  const f0 = p0.cpu.flushTlb.bind(p0.cpu), f1 = p1.cpu.flushTlb.bind(p1.cpu);
  p0.cpu.flushTlb = () => { flushed0++; f0(); };
  p1.cpu.flushTlb = () => { flushed1++; f1(); };
  assert.deepEqual(call(l0, { code: AF }, input(A)), { status: 0, repsCompleted: 0 });
  assert.deepEqual([l0.tlb.entriesOf(A, 1), l0.tlb.entriesOf(B, 2)], [0, 1]);
  assert.deepEqual([flushed0, flushed1], [1, 0]);
  assert.deepEqual(events.at(-1), { name: 'hv_l0_flush_guest_physical_address_space', vp: 0, args: { code: 'af', as: A.toString(16), status: '0', dropped: 2 } });
  assert.deepEqual(l0.calls.at(-1), { code: AF, vp: 0, addressSpace: A, reps: 0, status: 0, dropped: 2 });
  assert.deepEqual(call(l0, { code: AF, fast: true }, input(B)), { status: 0, repsCompleted: 0 }, 'the Space call may be fast');
  assert.equal(l0.tlb.size, 0);
});

test('0xB0: the pages in the ranges go, from rep start on; reps completed is absolute', () => {
  const { l0, p0, A } = setup();
  p0.vmrun(A, 1, ETLB);
  for (const g of [1, 2, 3, 0x10, 0x11, 0x200, 0x3ff]) p0.translate(g * 0x1000);
  const els = [(0x10n << 12n) | 1n, (2n << 12n) | 1n, 0x800n | (1n << 21n)]; // [0x10,0x11], [2,3], the 2 MiB page 0x200..0x3ff
  assert.deepEqual(call(l0, { code: B0, repCount: 3, repStart: 1 }, input(A, 0, els)), { status: 0, repsCompleted: 3 });
  assert.equal(l0.tlb.entriesOf(A, 1), 3, 'elements 1 and 2 dropped 2, 3, 0x200, 0x3ff; element 0 was skipped');
  assert.equal(l0.calls.at(-1)!.dropped, 4);
  assert.deepEqual(call(l0, { code: B0, repCount: 1 }, input(A, 0, [els[0]])), { status: 0, repsCompleted: 1 });
  assert.equal(l0.tlb.entriesOf(A, 1), 1);
});

test('0xB0: an element with reserved bits stops the call with INVALID_PARAMETER after the elements before it', () => {
  const { l0, p0, A } = setup();
  p0.vmrun(A, 1, ETLB);
  p0.translate(0x1000); p0.translate(0x9000);
  const r = call(l0, { code: B0, repCount: 3 }, input(A, 0, [1n << 12n, 0x800n | 0x4000n, 9n << 12n]));
  assert.deepEqual(r, { status: HvStatus.INVALID_PARAMETER, repsCompleted: 1 });
  assert.equal(l0.tlb.entriesOf(A, 1), 1, 'page 1 went, page 9 stayed');
});

test('hypercall checks and their statuses; a rejected call flushes nothing', () => {
  const { l0, p0, A } = setup();
  p0.vmrun(A, 1, ETLB);
  p0.translate(0x1000);
  const cases: [Parameters<typeof makeHypercallControl>[0], Uint8Array, number][] = [
    [{ code: 0x7777 }, input(A), HvStatus.INVALID_HYPERCALL_CODE],
    [{ code: 0x0002 }, input(A), HvStatus.INVALID_HYPERCALL_CODE], // a known code this L0 does not serve
    [{ code: AF, repCount: 1 }, input(A), HvStatus.INVALID_HYPERCALL_INPUT],
    [{ code: B0 }, input(A), HvStatus.INVALID_HYPERCALL_INPUT], // rep count 0
    [{ code: B0, repCount: 2, repStart: 2 }, input(A, 0, [0n, 0n]), HvStatus.INVALID_HYPERCALL_INPUT],
    [{ code: AF, varHeaderQwords: 1 }, input(A), HvStatus.INVALID_HYPERCALL_INPUT],
    [{ code: B0, repCount: 1, fast: true }, input(A, 0, [1n << 12n]), HvStatus.INVALID_HYPERCALL_INPUT],
    [{ code: B0, repCount: 511 }, new Uint8Array(16 + 8 * 511), HvStatus.INVALID_ALIGNMENT],
    [{ code: AF }, input(A, 1), HvStatus.INVALID_PARAMETER],
    [{ code: B0, repCount: 1 }, input(A, 0x100, [1n << 12n]), HvStatus.INVALID_PARAMETER],
  ];
  for (const [control, bytes, status] of cases) {
    assert.deepEqual(call(l0, control, bytes), { status, repsCompleted: 0 }, JSON.stringify(control));
  }
  assert.equal(l0.tlb.entriesOf(A, 1), 1);
  assert.equal(l0.calls.length, cases.length);
  assert.deepEqual(parseHypercallResult(l0.hypercall(0, 1n << 27n | BigInt(AF), input(A))), { status: HvStatus.INVALID_HYPERCALL_INPUT, repsCompleted: 0 }, 'RsvdZ bit 27');
  assert.throws(() => l0.hypercall(0, makeHypercallControl({ code: B0, repCount: 2 }), input(A, 0, [0n])), RangeError, 'input shorter than the call needs');
});

test('without bit 18 and bit 22 the flush hypercalls do not exist', () => {
  const { l0, A } = setup({ enlightenedTlb: false, guestMappingFlush: false });
  assert.equal(l0.nestedFeatures, 0);
  assert.deepEqual(call(l0, { code: AF }, input(A)), { status: HvStatus.INVALID_HYPERCALL_CODE, repsCompleted: 0 });
  assert.equal(setup({ enlightenedTlb: false }).l0.nestedFeatures, 1 << 18);
  assert.equal(setup().l0.nestedFeatures, (1 << 18) | (1 << 22));
});

test('failNext: the next matching well-formed calls fail with the status and do nothing', () => {
  const { l0, p0, A, B } = setup();
  p0.vmrun(A, 1, ETLB);
  p0.translate(0x1000);
  l0.failNext({ code: B0, status: HvStatus.INSUFFICIENT_MEMORY });
  l0.failNext({ addressSpace: B, status: HvStatus.OPERATION_FAILED, count: 2 });
  assert.equal(call(l0, { code: AF }, input(B, 1)).status, HvStatus.INVALID_PARAMETER, 'a malformed call does not take the injected failure');
  assert.equal(call(l0, { code: AF }, input(B)).status, HvStatus.OPERATION_FAILED);
  assert.equal(call(l0, { code: B0, repCount: 1 }, input(A, 0, [1n << 12n])).status, HvStatus.INSUFFICIENT_MEMORY);
  assert.equal(l0.tlb.entriesOf(A, 1), 1);
  assert.equal(call(l0, { code: B0, repCount: 1 }, input(B, 0, [1n << 12n])).status, HvStatus.OPERATION_FAILED);
  assert.equal(call(l0, { code: AF }, input(B)).status, 0);
  assert.equal(call(l0, { code: AF }, input(A)).status, 0);
  assert.equal(l0.tlb.size, 0);
  assert.throws(() => l0.failNext({ code: 2, status: 5 }), RangeError);
  assert.throws(() => l0.failNext({ status: 0 }), RangeError);
  assert.throws(() => l0.failNext({ status: 5, count: 0 }), RangeError);
});

test('vmrun: bad nCR3, ASID or enlightenments are refused and change nothing; a new context drops the CPU TLB', () => {
  const { p0, A, B } = setup();
  p0.vmrun(A, 1, ETLB);
  assert.throws(() => p0.vmrun(A + 8, 1, 0), RangeError);
  assert.throws(() => p0.vmrun(A, 0, 0), RangeError);
  assert.throws(() => p0.vmrun(A, 1, 2 ** 32), RangeError);
  assert.deepEqual([p0.root, p0.asid, p0.enlightenments], [A, 1, ETLB]);
  const gen = p0.cpu.mmu.tlb.generation;
  p0.vmrun(A, 1, ETLB);
  assert.equal(p0.cpu.mmu.tlb.generation, gen, 'the same context keeps the CPU TLB');
  p0.vmrun(B, 1, ETLB);
  assert.equal(p0.cpu.mmu.tlb.generation, gen + 1);
});

test('attach refuses a VP index or CPU twice', () => {
  const { l0, p0 } = setup();
  assert.throws(() => l0.attach(p0.cpu, 5), RangeError);
  assert.throws(() => l0.attach(new Vm({ memorySize: 1 << 20 }).createVcpu(0).cpu, 1), RangeError);
});
