// TLB-flush inhibit (kvm-api-facts.md §1: KVM_HYPERV_SET_TLB_FLUSH_INHIBIT,
// §1.3 semantics, §1.4 trace events), tested deterministically: no threads,
// no sleeps; each vCPU runs when the test says so, and suspension is read
// from RIP, RAX, runnable and the trace events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { KvmError } from '../../src/kvm/errors.js';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { CALL_SITE, CODE, DATA, HvMachine, P, U, W } from './hypercall-machine.js';

const FLAGS = ['hv-vpindex', 'hv-tlbflush', 'hv-ipi', 'hv-vapic', 'hv-xmm-input'];
const VA = 0x600000, PA = 0x300000;
const ALL_PROCESSORS = 1n, ALL_SPACES = 2n;

/** The inhibit selftest's call: fast FlushVirtualAddressSpace, all address spaces; XMM0 low = processor mask. */
const FLUSH = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace, fast: true });

function machine(ids = [0, 1, 2]): HvMachine {
  const m = new HvMachine({ flags: FLAGS, ids });
  m.map(VA, PA, P | W | U);
  return m;
}

const inhibit = (v: Vcpu, on: boolean) => v.setTlbFlushInhibit({ flags: 0, inhibit: on ? 1 : 0 });
const cached = (v: Vcpu) => v.cpu.mmu.cachedTranslation(VA, 0) !== -1;

function warm(m: HvMachine, v: Vcpu): void {
  m.asm(`.code64\nmov rax, qword ptr [${VA}]\nhlt`, CODE + 0x3000);
  m.jump(v, CODE + 0x3000);
  m.runToExit(v);
  assert.equal(cached(v), true);
}

/** Starts a flush on `v` (mask in XMM0 low, flags in R8) and runs it until it stops. */
function startFlush(m: HvMachine, v: Vcpu, mask: bigint, flags = ALL_SPACES) {
  return m.hypercall(v, FLUSH, 0n, flags, [mask, 0n]);
}

/** Runs a vCPU that may have been suspended or released, the way a VMM's loop would. */
function resume(m: HvMachine, v: Vcpu) {
  const exit = m.runToExit(v);
  const r = v.getRegs();
  return { exit, rax: r.rax, rip: r.rip };
}

const events = (m: HvMachine) => m.vm.trace!.events
  .filter((e) => e.name === 'kvm_hv_vcpu_suspend_tlb_flush' || e.name === 'kvm_hv_vcpu_unsuspend_tlb_flush')
  .map((e) => e.name === 'kvm_hv_vcpu_suspend_tlb_flush' ? `suspend ${e.args.vcpu_id} on ${e.args.waiting_on}` : `unsuspend ${e.args.vcpu_id}`);

test('KVM_HYPERV_SET_TLB_FLUSH_INHIBIT argument checks (§1.2): EINVAL for flags ≠ 0 or inhibit > 1, EFAULT for no struct', () => {
  const m = machine();
  const v = m.vcpu(1);
  const errno = (f: () => void) => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : 'other'; } return 'none'; };
  assert.equal(errno(() => v.setTlbFlushInhibit({ flags: 1, inhibit: 1 })), 'EINVAL');
  assert.equal(errno(() => v.setTlbFlushInhibit({ flags: 0, inhibit: 2 })), 'EINVAL');
  assert.equal(errno(() => v.setTlbFlushInhibit({ flags: 0, inhibit: -1 })), 'EINVAL');
  assert.equal(errno(() => v.setTlbFlushInhibit({ flags: 0, inhibit: 0.5 })), 'EINVAL');
  assert.equal(errno(() => v.setTlbFlushInhibit(null as never)), 'EFAULT');
  assert.equal(v.tlbFlush.inhibited, false, 'a failed call changes nothing');
  inhibit(v, true);
  inhibit(v, true); // the same value again: a no-op
  assert.equal(v.tlbFlush.inhibited, true);
  inhibit(v, false);
  assert.deepEqual(events(m), [], 'nobody waited, nobody was woken');
});

test('one flusher, one inhibitor: the flusher is suspended, nothing is flushed, clearing the flag lets it finish', () => {
  const m = machine();
  const [v0, v1, v2] = m.vcpus;
  for (const v of m.vcpus) warm(m, v);
  inhibit(v1, true);
  const r = startFlush(m, v0, 0b111n);
  assert.equal(r.exit.reason, 'hlt', 'the VMM sees what a halted vCPU gives');
  assert.equal(r.rip, BigInt(CALL_SITE), 'RIP stays on the VMCALL');
  assert.equal(r.rax, 0xdeadn, 'no status written');
  assert.equal(v0.runnable, false);
  assert.equal(v0.getMpState(), KVM_MP_STATE_RUNNABLE, 'the MP state does not change');
  assert.deepEqual(events(m), ['suspend 0 on 1']);
  assert.deepEqual([cached(v0), cached(v1), cached(v2)], [true, true, true], 'suspended before queuing any flush');
  // Running it again does nothing: no instruction retires.
  const icount = v0.cpu.icount;
  assert.equal(resume(m, v0).exit.reason, 'hlt');
  assert.equal(v0.cpu.icount, icount);
  inhibit(v1, false);
  assert.deepEqual(events(m), ['suspend 0 on 1', 'unsuspend 0']);
  assert.equal(v0.runnable, true);
  const done = resume(m, v0);
  assert.equal(done.rax, 0n, 'the re-executed hypercall succeeded');
  assert.equal(done.rip, BigInt(CALL_SITE + 4));
  assert.deepEqual([cached(v0), cached(v1), cached(v2)], [false, false, false]);
  assert.equal(m.vm.trace!.named('kvm_hv_hypercall').length, 2, 'executed twice: suspended, then completed');
});

test('two flushers waiting on one inhibitor are both released by one clear', () => {
  const m = machine();
  const [v0, v1, v2] = m.vcpus;
  inhibit(v2, true);
  startFlush(m, v0, 0b100n);
  startFlush(m, v1, 0b111n);
  assert.deepEqual(events(m), ['suspend 0 on 2', 'suspend 1 on 2']);
  assert.deepEqual([v0.runnable, v1.runnable], [false, false]);
  inhibit(v2, false);
  assert.deepEqual(events(m).slice(2), ['unsuspend 0', 'unsuspend 1']);
  assert.equal(resume(m, v0).rax, 0n);
  assert.equal(resume(m, v1).rax, 0n);
});

test('two inhibitors: clearing the first leaves the flusher suspended on the second (waiting_on moves)', () => {
  const m = machine();
  const [v0, v1, v2] = m.vcpus;
  for (const v of m.vcpus) warm(m, v);
  inhibit(v1, true);
  inhibit(v2, true);
  startFlush(m, v0, 0b110n);
  assert.deepEqual(events(m), ['suspend 0 on 1'], 'the first inhibited target in vCPU index order');
  inhibit(v1, false);
  const again = resume(m, v0);
  assert.equal(again.rip, BigInt(CALL_SITE));
  assert.equal(again.rax, 0xdeadn);
  assert.equal(v0.runnable, false);
  assert.deepEqual(events(m), ['suspend 0 on 1', 'unsuspend 0', 'suspend 0 on 2'], 're-executed and suspended on vCPU 2');
  assert.deepEqual([cached(v1), cached(v2)], [true, true]);
  inhibit(v1, true);
  inhibit(v1, false); // clearing vCPU 1 again wakes nobody: vCPU 0 now waits on 2
  assert.equal(v0.runnable, false);
  inhibit(v2, false);
  assert.equal(resume(m, v0).rax, 0n);
  assert.deepEqual([cached(v1), cached(v2)], [false, false]);
  assert.deepEqual(events(m), ['suspend 0 on 1', 'unsuspend 0', 'suspend 0 on 2', 'unsuspend 0']);
});

test('all-processors flushes target every vCPU, the caller included (§1.3: no self-exemption)', () => {
  const m = machine();
  const [v0, v1, v2] = m.vcpus;
  inhibit(v2, true);
  startFlush(m, v1, 0n, ALL_SPACES | ALL_PROCESSORS);
  assert.deepEqual(events(m), ['suspend 1 on 2']);
  inhibit(v2, false);
  assert.equal(resume(m, v1).rax, 0n);
  // The caller itself inhibited: it waits on itself, and only the VMM can release it.
  inhibit(v0, true);
  inhibit(v1, true);
  startFlush(m, v0, 0n, ALL_SPACES | ALL_PROCESSORS);
  assert.deepEqual(events(m).slice(2), ['suspend 0 on 0'], 'vCPU 0 comes first in index order');
  inhibit(v1, false);
  assert.equal(v0.runnable, false, 'clearing another vCPU does not release it');
  inhibit(v0, false);
  assert.equal(resume(m, v0).rax, 0n);
});

test('the inhibitor flushing itself is suspended on itself; flushing only others is not affected by its own flag', () => {
  const m = machine();
  const [v0, v1, v2] = m.vcpus;
  for (const v of m.vcpus) warm(m, v);
  inhibit(v1, true);
  const others = startFlush(m, v1, 0b101n);
  assert.equal(others.rax, 0n);
  assert.deepEqual([cached(v0), cached(v1), cached(v2)], [false, true, false]);
  const self = startFlush(m, v1, 0b010n);
  assert.equal(self.rax, 0xdeadn);
  assert.deepEqual(events(m), ['suspend 1 on 1']);
  assert.equal(cached(v1), true, 'its own TLB is kept while it is inhibited');
  inhibit(v1, false);
  assert.equal(resume(m, v1).rax, 0n);
  assert.equal(cached(v1), false);
});

test('an interrupt arriving during the suspension is not taken; after the release it is delivered once, before the retry', () => {
  const m = machine();
  const [v0, v1] = m.vcpus;
  const COUNT = DATA + 0x100, RETURN_RIP = DATA + 0x108;
  const L = m.asm(`.code64
  handler:
    push rax
    push rcx
    push rdx
    inc qword ptr [${COUNT}]
    mov rax, [rsp + 24]
    mov qword ptr [${RETURN_RIP}], rax
    mov ecx, 0x40000070
    xor eax, eax
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
    pop rax
    iretq`, CODE + 0x2000);
  m.setGate(0x40, L.handler);
  inhibit(v1, true);
  m.jump(v0, CALL_SITE, { interrupts: true });
  const r0 = v0.getRegs(); r0.rcx = FLUSH; r0.rdx = 0n; r0.r8 = ALL_SPACES; r0.rax = 0xdeadn; v0.setRegs(r0);
  v0.setXmm(0, { low: 0b10n, high: 0n });
  assert.equal(m.runToExit(v0).reason, 'hlt');
  assert.deepEqual(events(m), ['suspend 0 on 1']);
  v0.injectInterrupt(0x40);
  assert.equal(v0.runnable, false, 'an interrupt does not end the suspension');
  m.runToExit(v0);
  assert.equal(m.vm.mem.read64(COUNT), 0n, 'no event taken while suspended');
  inhibit(v1, false);
  const done = resume(m, v0);
  assert.equal(m.vm.mem.read64(COUNT), 1n, 'delivered exactly once');
  assert.equal(m.vm.mem.read64(RETURN_RIP), BigInt(CALL_SITE), 'it interrupted the VMCALL, which then re-executed');
  assert.equal(done.rax, 0n);
  assert.equal(done.rip, BigInt(CALL_SITE + 4));
  const order = m.vm.trace!.events.map((e) => e.name).filter((n) => ['kvm_hv_vcpu_unsuspend_tlb_flush', 'kvm_inj_virq', 'kvm_hv_hypercall'].includes(n));
  assert.deepEqual(order, ['kvm_hv_hypercall', 'kvm_hv_vcpu_unsuspend_tlb_flush', 'kvm_inj_virq', 'kvm_hv_hypercall']);
});

test('inhibit affects only the flush hypercalls (§1.3): a PV IPI to an inhibited vCPU goes through', () => {
  const m = machine();
  const [v0, v1] = m.vcpus;
  inhibit(v1, true);
  const r = m.hypercall(v0, makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, fast: true }), 0x40n, 0b10n);
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(v1.apic.pendingVector(), 0x40);
  // A flush that does not target the inhibitor is not held up either.
  assert.equal(startFlush(m, v0, 0b101n).rax, 0n);
  assert.deepEqual(events(m), []);
});

test('a list flush continued over several executions re-checks the inhibitors each time', () => {
  const m = machine();
  const [v0, v1] = m.vcpus;
  const INPUT = 0x40000;
  m.writeQwords(INPUT, [0n, 0n, 0b10n, ...Array.from({ length: 20 }, (_, k) => BigInt(VA + 0x1000 * k))]);
  const control = makeHypercallControl({ code: HvCall.FlushVirtualAddressList, repCount: 20 });
  m.jump(v0, CALL_SITE);
  const r0 = v0.getRegs(); r0.rcx = control; r0.rdx = BigInt(INPUT); r0.rax = 0xdeadn; v0.setRegs(r0);
  // Let exactly the first execution run (16 reps), then inhibit the target.
  v0.run(1);
  assert.equal(v0.getRegs().rcx, control | (16n << 48n), 'continued at rep 16');
  inhibit(v1, true);
  assert.equal(m.runToExit(v0).reason, 'hlt');
  assert.deepEqual(events(m), ['suspend 0 on 1']);
  inhibit(v1, false);
  const done = resume(m, v0);
  assert.equal(done.rax, 20n << 32n, 'SUCCESS, 20 reps');
});
