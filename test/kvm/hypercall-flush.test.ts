// PV TLB flush: HvCallFlushVirtualAddressSpace/List and their Ex forms
// (tlfs-vsm-facts.md §2.2 flags, §2.3 GVA ranges, §2.4 layouts, §2.5 sparse VP
// sets, §1.2 rep continuation), proven on the targets' TLB contents
// (cpu.mmu.cachedTranslation) and on what a remote vCPU reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { HV_REPS_PER_EXECUTION } from '../../src/kvm/hyperv/hypercall.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { CODE, DATA, G, HvMachine, INPUT, P, U, W } from './hypercall-machine.js';

const FLAGS = ['hv-vpindex', 'hv-tlbflush', 'hv-xmm-input', 'hv-tlbflush-ext'];
/** Test pages: VA 0x600000 + 4 KiB k maps PA 0x300000 + 4 KiB k. */
const VA = 0x600000, PA = 0x300000;
const GLOBAL_VA = 0x700000;
const LARGE_VA = 0x40000000, LARGE_PA = 0x800000;

const ALL_PROCESSORS = 1n, ALL_SPACES = 2n, NON_GLOBAL_ONLY = 4n, EXTENDED = 8n;

function machine(ids = [0, 1, 2], flags = FLAGS): HvMachine {
  const m = new HvMachine({ flags, ids });
  for (let k = 0; k < 64; k++) m.map(VA + 0x1000 * k, PA + 0x1000 * k, P | W | U);
  m.map(GLOBAL_VA, PA + 0x80000, P | W | U | G);
  m.map2M(LARGE_VA, LARGE_PA, P | W | U);
  return m;
}

let readerAt = CODE + 0x4000;
/** Runs a program on `v` that reads each address once, so its TLB caches them. */
function warm(m: HvMachine, v: Vcpu, vas: readonly number[]): void {
  const org = readerAt;
  readerAt += 0x800;
  m.asm(`.code64\n${vas.map((a) => `mov rax, qword ptr [${a}]`).join('\n')}\nhlt`, org);
  m.jump(v, org);
  assert.equal(m.runToExit(v).reason, 'hlt');
}

const cached = (v: Vcpu, va: number): boolean => v.cpu.mmu.cachedTranslation(va | 0, Math.floor(va / 2 ** 32)) !== -1;

const space = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace });
const spaceEx = (banks: number) => makeHypercallControl({ code: HvCall.FlushVirtualAddressSpaceEx, varHeaderQwords: banks });
const list = (n: number) => makeHypercallControl({ code: HvCall.FlushVirtualAddressList, repCount: n });

test('FlushVirtualAddressSpace empties the TLBs of the masked vCPUs only (§2.4)', () => {
  const m = machine();
  for (const v of m.vcpus) warm(m, v, [VA, VA + 0x1000]);
  for (const v of m.vcpus) assert.equal(cached(v, VA), true, `vCPU ${v.id} cached it`);
  m.writeQwords(INPUT, [0n, ALL_SPACES, 0b110n]); // VPs 1 and 2
  const r = m.hypercall(m.vcpu(0), space, BigInt(INPUT));
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(cached(m.vcpu(0), VA), true, 'the caller was not in the mask');
  for (const id of [1, 2]) {
    assert.equal(cached(m.vcpu(id), VA), false, `vCPU ${id} flushed`);
    assert.equal(cached(m.vcpu(id), VA + 0x1000), false);
    assert.equal(m.vcpu(id).cpu.mmu.tlb.size, 0, 'everything went');
  }
});

test('a remote vCPU reads the old page through its stale TLB until the flush, then the new one', () => {
  const m = machine([0, 1]);
  const [v0, v1] = m.vcpus;
  const pte = m.map(VA, PA, P | W | U);
  m.vm.mem.write64(PA, 0x1111n);
  m.vm.mem.write64(PA + 0x10000, 0x2222n);
  const control = makeHypercallControl({ code: HvCall.FlushVirtualAddressList, fast: true, repCount: 1 });
  // The flusher remaps the page in guest code, then flushes it on VP 1 with a fast (XMM) list call:
  // RDX = address space, R8 = flags, XMM0 = processor mask | range 0.
  const L0 = m.asm(`.code64
  remap:
    mov rax, ${PA + 0x10000 + 7}
    mov qword ptr [${pte}], rax
    hlt
  flush:
    mov rcx, ${control}
    xor edx, edx
    xor r8d, r8d
    mov rax, 2
    movq xmm0, rax
    mov rax, ${VA}
    movq xmm1, rax
    movlhps xmm0, xmm1
    vmcall
    mov qword ptr [${DATA}], rax
    hlt`, CODE + 0x1000);
  const L1 = m.asm(`.code64
  read:
    mov rax, qword ptr [${VA}]
    mov qword ptr [${DATA + 8}], rax
    hlt`, CODE + 0x1800);
  const read = (): bigint => { m.jump(v1, L1.read); m.runToExit(v1); return m.vm.mem.read64(DATA + 8); };
  assert.equal(read(), 0x1111n, 'before the remap');
  m.jump(v0, L0.remap); m.runToExit(v0);
  assert.equal(m.vm.mem.read64(pte), BigInt(PA + 0x10000 + 7), 'the PTE now points at the new page');
  assert.equal(read(), 0x1111n, 'without a flush vCPU 1 still sees the old page (its TLB is architectural)');
  m.jump(v0, L0.flush); m.runToExit(v0);
  assert.equal(m.vm.mem.read64(DATA), 1n << 32n, 'SUCCESS, 1 rep completed');
  assert.equal(read(), 0x2222n, 'after the flush vCPU 1 sees the new page');
});

test('NON_GLOBAL_MAPPINGS_ONLY keeps global translations; without it they go too (§2.2)', () => {
  const m = machine([0, 1]);
  const v1 = m.vcpu(1);
  warm(m, v1, [VA, GLOBAL_VA]);
  m.writeQwords(INPUT, [0n, ALL_SPACES | NON_GLOBAL_ONLY, 0b10n]);
  assert.equal(m.hypercall(m.vcpu(0), space, BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.equal(cached(v1, VA), false, 'non-global entry flushed');
  assert.equal(cached(v1, GLOBAL_VA), true, 'global entry kept (allowed by the flag)');
  m.writeQwords(INPUT, [0n, ALL_SPACES, 0b10n]);
  assert.equal(m.hypercall(m.vcpu(0), space, BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.equal(cached(v1, GLOBAL_VA), false, 'global entry flushed');
});

test('FlushVirtualAddressList flushes the pages of each range and leaves others cached (§2.3 simple format)', () => {
  const m = machine([0, 1]);
  const v1 = m.vcpu(1);
  const pages = Array.from({ length: 8 }, (_, k) => VA + 0x1000 * k);
  warm(m, v1, [...pages, GLOBAL_VA]);
  // Range 1: page 1 plus 2 more (pages 1..3); range 2: page 6 alone; range 3: the global page.
  m.writeQwords(INPUT, [0n, 0n, 0b10n, BigInt(VA + 0x1000) | 2n, BigInt(VA + 0x6000), BigInt(GLOBAL_VA)]);
  const r = m.hypercall(m.vcpu(0), list(3), BigInt(INPUT));
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(r.repsCompleted, 3);
  assert.deepEqual(pages.map((a) => cached(v1, a)), [true, false, false, false, true, true, false, true]);
  assert.equal(cached(v1, GLOBAL_VA), false, 'list flushes include global entries');
});

test('an address inside a large page flushes the whole large page (§2.3)', () => {
  const m = machine([0, 1]);
  const v1 = m.vcpu(1);
  warm(m, v1, [LARGE_VA, LARGE_VA + 0x100000, LARGE_VA + 0x1ff000]);
  m.writeQwords(INPUT, [0n, 0n, 0b10n, BigInt(LARGE_VA + 0x5000)]);
  assert.equal(m.hypercall(m.vcpu(0), list(1), BigInt(INPUT)).status, HvStatus.SUCCESS);
  for (const a of [LARGE_VA, LARGE_VA + 0x100000, LARGE_VA + 0x1ff000]) assert.equal(cached(v1, a), false, `0x${a.toString(16)}`);
});

test('extended GVA ranges: 4 KiB runs, large-page runs, reserved bits (§2.3), and the feature gate (§2.2)', () => {
  const m = machine([0, 1]);
  const v1 = m.vcpu(1);
  warm(m, v1, [VA, VA + 0x1000, VA + 0x2000, LARGE_VA + 0x3000]);
  // Extended 4 KiB form: page VA + 1 plus 1 more (bits 10:0), bit 11 clear.
  m.writeQwords(INPUT, [0n, EXTENDED, 0b10n, BigInt(VA + 0x1000) | 1n]);
  const r = m.hypercall(m.vcpu(0), list(1), BigInt(INPUT));
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.deepEqual([VA, VA + 0x1000, VA + 0x2000, LARGE_VA + 0x3000].map((a) => cached(v1, a)), [true, false, false, true]);
  // One 2 MiB page (bit 11 set, bit 12 clear) at LARGE_VA: 512 pages, more than FULL_FLUSH_PAGES, so the
  // whole TLB goes (flushing more than asked is allowed).
  m.writeQwords(INPUT, [0n, EXTENDED, 0b10n, BigInt(LARGE_VA) | 0x800n]);
  assert.equal(m.hypercall(m.vcpu(0), list(1), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.equal(cached(v1, LARGE_VA + 0x3000), false);
  assert.equal(v1.cpu.mmu.tlb.size, 0);
  // A large-page element with a bit of 20:13 set: INVALID_PARAMETER at that element, earlier ones done.
  warm(m, v1, [VA, VA + 0x1000]);
  m.writeQwords(INPUT, [0n, EXTENDED, 0b10n, BigInt(VA), BigInt(LARGE_VA) | 0x800n | 0x2000n]);
  const bad = m.hypercall(m.vcpu(0), list(2), BigInt(INPUT));
  assert.equal(bad.status, HvStatus.INVALID_PARAMETER);
  assert.equal(bad.repsCompleted, 1, 'reps completed = index of the bad element (§1.2)');
  assert.equal(cached(v1, VA), false, 'element 0 was flushed');
  assert.equal(cached(v1, VA + 0x1000), true);
  // The extended format on a Space call, or without hv-tlbflush-ext, is INVALID_PARAMETER.
  m.writeQwords(INPUT, [0n, EXTENDED | ALL_PROCESSORS, 0n]);
  assert.equal(m.hypercall(m.vcpu(0), space, BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  const noExt = machine([0, 1], FLAGS.filter((f) => f !== 'hv-tlbflush-ext'));
  noExt.writeQwords(INPUT, [0n, EXTENDED, 0b10n, BigInt(VA)]);
  assert.equal(noExt.hypercall(noExt.vcpu(0), list(1), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  noExt.writeQwords(INPUT, [0n, 0n, 0b10n, BigInt(VA)]);
  assert.equal(noExt.hypercall(noExt.vcpu(0), list(1), BigInt(INPUT)).status, HvStatus.SUCCESS);
});

test('flag and processor-set validation (§2.2, openhcl hcvm_validate_flush_inputs)', () => {
  const m = machine();
  const v0 = m.vcpu(0);
  for (const bad of [0x10n, 0x100n, 0x200n, 0x80n, 1n << 32n, 1n << 63n]) {
    m.writeQwords(INPUT, [0n, bad | ALL_PROCESSORS, 0n]);
    assert.equal(m.hypercall(v0, space, BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER, `flags 0x${bad.toString(16)}`);
  }
  m.writeQwords(INPUT, [0n, 0n, 0n]);
  assert.equal(m.hypercall(v0, space, BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER, 'an empty mask without ALL_PROCESSORS');
  m.writeQwords(INPUT, [0n, ALL_PROCESSORS, 0n]);
  assert.equal(m.hypercall(v0, space, BigInt(INPUT)).status, HvStatus.SUCCESS, 'the mask is ignored with ALL_PROCESSORS');
  m.writeQwords(INPUT, [0n, 0n, 1n << 40n]);
  assert.equal(m.hypercall(v0, space, BigInt(INPUT)).status, HvStatus.SUCCESS, 'a VP that does not exist is ignored');
  m.writeQwords(INPUT, [0n, NON_GLOBAL_ONLY, 0b10n, BigInt(VA)]);
  assert.equal(m.hypercall(v0, list(1), BigInt(INPUT)).status, HvStatus.SUCCESS, 'NON_GLOBAL_MAPPINGS_ONLY is accepted on lists (openhcl)');
});

test('Ex forms: sparse VP sets with any banks, HV_GENERIC_SET_ALL, malformed sets (§2.5)', () => {
  const m = machine([0, 1, 65, 130]);
  const warmAll = () => { for (const v of m.vcpus) warm(m, v, [VA]); };
  const flushed = () => m.vcpus.filter((v) => !cached(v, VA)).map((v) => v.id);
  // VPs {1, 130}: banks 0 and 2 present → ValidBanksMask 0b101, bank words {0x2, 0x4}.
  warmAll();
  m.writeQwords(INPUT, [0n, 0n, 0n, 0b101n, 0x2n, 0x4n]);
  assert.equal(m.hypercall(m.vcpu(0), spaceEx(2), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(flushed(), [1, 130]);
  // VP 65 through bank 1 alone; an all-zero present bank 0 is legal and selects nothing.
  warmAll();
  m.writeQwords(INPUT, [0n, 0n, 0n, 0b11n, 0n, 0x2n]);
  assert.equal(m.hypercall(m.vcpu(0), spaceEx(2), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(flushed(), [65]);
  // Format 1: every VP; its banks are ignored.
  warmAll();
  m.writeQwords(INPUT, [0n, 0n, 1n, 0n]);
  assert.equal(m.hypercall(m.vcpu(0), spaceEx(0), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(flushed(), [0, 1, 65, 130]);
  // Bank words ≠ popcount(ValidBanksMask), an unknown format, an empty sparse set: INVALID_PARAMETER.
  m.writeQwords(INPUT, [0n, 0n, 0n, 0b101n, 0x2n]);
  assert.equal(m.hypercall(m.vcpu(0), spaceEx(1), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  m.writeQwords(INPUT, [0n, 0n, 2n, 0n]);
  assert.equal(m.hypercall(m.vcpu(0), spaceEx(0), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  m.writeQwords(INPUT, [0n, 0n, 0n, 0n]);
  assert.equal(m.hypercall(m.vcpu(0), spaceEx(0), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  // The ListEx rep elements follow the bank words.
  warmAll();
  warm(m, m.vcpu(130), [VA, VA + 0x1000]);
  m.writeQwords(INPUT, [0n, 0n, 0n, 0b100n, 0x4n, BigInt(VA + 0x1000)]);
  const r = m.hypercall(m.vcpu(0), makeHypercallControl({ code: HvCall.FlushVirtualAddressListEx, varHeaderQwords: 1, repCount: 1 }), BigInt(INPUT));
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(cached(m.vcpu(130), VA), true);
  assert.equal(cached(m.vcpu(130), VA + 0x1000), false);
});

test('XMM fast Ex flush: RDX address space, R8 flags, XMM0 format|valid banks, XMM1.. bank words (§1.3)', () => {
  const m = machine([0, 1, 65, 130]);
  for (const v of m.vcpus) warm(m, v, [VA]);
  const control = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpaceEx, fast: true, varHeaderQwords: 2 });
  const r = m.hypercall(m.vcpu(0), control, 0n, ALL_SPACES, [0n, 0b110n, 0x2n, 0x4n]); // banks 1, 2: VPs 65, 130
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.deepEqual(m.vcpus.filter((v) => !cached(v, VA)).map((v) => v.id), [65, 130]);
});

test('a long list continues: N reps per execution, rep start rewritten in RCX, RIP back on the VMCALL (§1.2)', () => {
  const m = machine([0, 1]);
  const v1 = m.vcpu(1);
  const pages = Array.from({ length: 40 }, (_, k) => VA + 0x1000 * k);
  warm(m, v1, pages);
  m.writeQwords(INPUT, [0n, 0n, 0b10n, ...pages.map(BigInt)]);
  const r = m.hypercall(m.vcpu(0), list(40), BigInt(INPUT));
  assert.equal(HV_REPS_PER_EXECUTION, 16);
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(r.repsCompleted, 40, 'absolute reps completed');
  assert.deepEqual(m.vm.trace!.named('kvm_hv_hypercall').map((e) => e.args.rep_idx), [0, 16, 32], 'three executions');
  assert.equal(m.vcpu(0).getRegs().rcx, list(40) | (32n << 48n), 'RCX holds the last rep start');
  assert.equal(pages.filter((a) => cached(v1, a)).length, 0, 'every page flushed');
});

test('continuation, then an error: reps completed counts from the start of the list (§1.2)', () => {
  const m = machine([0, 1]);
  const v1 = m.vcpu(1);
  const pages = Array.from({ length: 24 }, (_, k) => VA + 0x1000 * k);
  warm(m, v1, pages);
  const elems = pages.map(BigInt);
  elems[20] = BigInt(LARGE_VA) | 0x800n | 0x4000n; // reserved bit in a large-page element
  m.writeQwords(INPUT, [0n, EXTENDED, 0b10n, ...elems]);
  const r = m.hypercall(m.vcpu(0), list(24), BigInt(INPUT));
  assert.equal(r.status, HvStatus.INVALID_PARAMETER);
  assert.equal(r.repsCompleted, 20);
  assert.deepEqual(pages.map((a) => cached(v1, a)), pages.map((_, k) => k >= 20), 'elements 0..19 flushed, 20.. not');
});

test('non-canonical GVAs are ignored (§2.3)', () => {
  const m = machine([0, 1]);
  warm(m, m.vcpu(1), [VA]);
  m.writeQwords(INPUT, [0n, 0n, 0b10n, 0x0000_8000_0000_0000n | 5n]);
  assert.equal(m.hypercall(m.vcpu(0), list(1), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.equal(cached(m.vcpu(1), VA), true);
});

test('trace kvm_hv_flush_tlb / kvm_hv_flush_tlb_ex carry the request', () => {
  const m = machine();
  m.writeQwords(INPUT, [0x1234000n, ALL_SPACES, 0b110n]);
  m.hypercall(m.vcpu(0), space, BigInt(INPUT));
  assert.deepEqual(m.vm.trace!.named('kvm_hv_flush_tlb').map((e) => e.args), [{ address_space: '1234000', flags: '2', processor_mask: '6' }]);
  m.writeQwords(INPUT, [0n, 0n, 0n, 0b1n, 0b10n]);
  m.hypercall(m.vcpu(0), spaceEx(1), BigInt(INPUT));
  assert.deepEqual(m.vm.trace!.named('kvm_hv_flush_tlb_ex').map((e) => e.args), [{ address_space: '0', flags: '0', format: '0', valid_bank_mask: '1' }]);
});
