// The hypercall dispatcher's generic checks, through the kvm API with real
// guest code: tlfs-vsm-facts.md §1.1 (control word, legal environment, order
// of checks), §1.2 (result value), §1.3 (register conventions, XMM fast
// input), §1.5 (alignment, page crossing), kvm-api-facts.md §2.7 (input page
// blocked by memory attributes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { AFTER_CALL, CALL_SITE, CODE, HvMachine, INPUT, LINUX_GUEST_OS_ID } from './hypercall-machine.js';

const FLAGS = ['hv-vpindex', 'hv-tlbflush', 'hv-ipi', 'hv-synic', 'hv-vapic', 'hv-xmm-input'];
const SPIN = 0x1000;
const machine = (flags = FLAGS, ids = [0, 1]) => new HvMachine({ flags, ids, spinlocks: SPIN });

const spinWait = makeHypercallControl({ code: HvCall.NotifyLongSpinWait, fast: true });
const ipiSlow = makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi });

/** A valid HvCallSendSyntheticClusterIpi input (§2.6): vector 0x40 to VP 1. */
function ipiInput(m: HvMachine, gpa: number): void {
  m.writeQwords(gpa, [0x40n, 0b10n]);
}

test('a completed hypercall writes the result to RAX and leaves RIP past the 3-byte VMCALL (§1.2, §1.3)', () => {
  const m = machine();
  const r = m.hypercall(m.vcpu(0), spinWait);
  assert.equal(r.exit.reason, 'hlt');
  assert.equal(r.rax, 0n, 'HV_STATUS_SUCCESS, 0 reps, reserved bits 0');
  assert.equal(r.rip, AFTER_CALL, 'the HLT right after the VMCALL ran');
});

test('the hypercall page stub (VMCALL; RET) works like a VMCALL (§1.4)', () => {
  const m = machine();
  const v = m.vcpu(0);
  assert.equal(m.partition.writeHypercall(0x50001n), true);
  const L = m.asm(`.code64
    mov rcx, ${spinWait}
    mov rax, 0xdead
    call rbx
    mov rbx, rax
  done:
    hlt`, CODE + 0x100);
  m.enter64(v, CODE + 0x100);
  const r0 = v.getRegs(); r0.rbx = 0x50000n; v.setRegs(r0);
  assert.equal(m.runToExit(v).reason, 'hlt');
  const r = v.getRegs();
  assert.equal(r.rbx, 0n, 'SUCCESS came back in RAX');
  assert.equal(r.rip, BigInt(L.done + 1), 'the stub returned past the CALL');
});

test('VMCALL from CPL 3 is #UD and writes nothing (§1.1 legal environment)', () => {
  const m = machine();
  const v = m.vcpu(0);
  m.enter64(v, CALL_SITE, { user: true });
  const r0 = v.getRegs(); r0.rcx = spinWait; r0.rax = 0xdeadn; v.setRegs(r0);
  assert.equal(m.runToExit(v).reason, 'hlt');
  assert.equal(m.stubVector(v), 6, '#UD delivered');
  assert.equal(v.getRegs().rax, 0xdeadn, 'no result written');
  assert.equal(m.vm.trace!.named('kvm_hv_hypercall').length, 0, 'not dispatched');
});

test('VMCALL in real mode is #UD (§1.1)', () => {
  const m = machine();
  const v = m.vcpu(0);
  m.enterReal(v, CALL_SITE);
  assert.equal(m.runToExit(v).reason, 'hlt');
  const s = v.getSregs();
  assert.equal(s.cs.selector, 0x2000, 'the IVT entry of vector 6');
  assert.equal(v.getRegs().rip, 0x61n, 'halted in the vector-6 stub');
});

test('without a Hyper-V interface VMCALL is #UD: no enlightenments, or GUEST_OS_ID still 0 (§1.4)', () => {
  const none = new HvMachine({ flags: [] });
  assert.equal(none.vm.hyperv, null);
  assert.equal(none.hypercall(none.vcpu(0), spinWait).ud, true);
  const noId = new HvMachine({ flags: FLAGS, spinlocks: SPIN, guestOsId: false });
  assert.equal(noId.hypercall(noId.vcpu(0), spinWait).ud, true);
  noId.partition.writeGuestOsId(LINUX_GUEST_OS_ID);
  const r = noId.hypercall(noId.vcpu(0), spinWait);
  assert.equal(r.ud, false);
  assert.equal(r.status, HvStatus.SUCCESS);
});

test('unknown call codes are INVALID_HYPERCALL_CODE, before reserved bits are looked at (§1.1 order)', () => {
  const m = machine();
  for (const code of [0x0000, HvCall.SwitchVirtualAddressSpace, HvCall.InstallIntercept, 0x7fff, HvCall.ExtQueryCapabilities, 0xffff]) {
    const r = m.hypercall(m.vcpu(0), BigInt(code));
    assert.equal(r.status, HvStatus.INVALID_HYPERCALL_CODE, `code 0x${code.toString(16)}`);
    assert.equal(r.repsCompleted, 0);
  }
  assert.equal(m.hypercall(m.vcpu(0), 0x1234n | (1n << 63n)).status, HvStatus.INVALID_HYPERCALL_CODE);
});

test('every RsvdZ bit of the control word is INVALID_HYPERCALL_INPUT; the nested bit is not reserved (§1.1)', () => {
  const m = machine();
  for (const b of [27, 28, 29, 30, 44, 45, 46, 47, 60, 61, 62, 63]) {
    assert.equal(m.hypercall(m.vcpu(0), spinWait | (1n << BigInt(b))).status, HvStatus.INVALID_HYPERCALL_INPUT, `bit ${b}`);
  }
  assert.equal(m.hypercall(m.vcpu(0), spinWait | (1n << 31n)).status, HvStatus.SUCCESS, 'bit 31 (nested) is ignored by the L0 hypervisor');
});

test('rep fields and variable header rules (§1.1 table)', () => {
  const m = machine();
  const v = m.vcpu(0);
  // Simple call with a rep count or rep start.
  assert.equal(m.hypercall(v, makeHypercallControl({ code: HvCall.NotifyLongSpinWait, fast: true, repCount: 1 })).status, HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(m.hypercall(v, makeHypercallControl({ code: HvCall.NotifyLongSpinWait, fast: true, repStart: 1 })).status, HvStatus.INVALID_HYPERCALL_INPUT);
  // Rep call with count 0, or start ≥ count.
  m.writeQwords(INPUT, [0n, 1n /* ALL_PROCESSORS */, 0n, 0x1000n]);
  const list = (repCount: number, repStart: number) => makeHypercallControl({ code: HvCall.FlushVirtualAddressList, repCount, repStart });
  assert.equal(m.hypercall(v, list(0, 0), BigInt(INPUT)).status, HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(m.hypercall(v, list(1, 1), BigInt(INPUT)).status, HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(m.hypercall(v, list(1, 2), BigInt(INPUT)).status, HvStatus.INVALID_HYPERCALL_INPUT);
  const ok = m.hypercall(v, list(1, 0), BigInt(INPUT));
  assert.equal(ok.status, HvStatus.SUCCESS);
  assert.equal(ok.repsCompleted, 1, 'reps completed in RAX bits 43:32');
  // A variable header on a call that has none.
  assert.equal(m.hypercall(v, makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, varHeaderQwords: 1 }), BigInt(INPUT)).status,
    HvStatus.INVALID_HYPERCALL_INPUT);
});

test('memory-based input: alignment, page crossing, GPA space, RAM and memory attributes (§1.1, §1.5, kvm §2.7)', () => {
  const m = machine();
  const v = m.vcpu(0);
  ipiInput(m, INPUT);
  assert.equal(m.hypercall(v, ipiSlow, BigInt(INPUT)).status, HvStatus.SUCCESS);
  ipiInput(m, INPUT + 0x104);
  assert.equal(m.hypercall(v, ipiSlow, BigInt(INPUT + 0x104)).status, HvStatus.INVALID_ALIGNMENT, 'not 8-byte aligned');
  ipiInput(m, INPUT + 0xff8);
  assert.equal(m.hypercall(v, ipiSlow, BigInt(INPUT + 0xff8)).status, HvStatus.INVALID_ALIGNMENT, '16 bytes at 0xff8 cross the page');
  ipiInput(m, INPUT + 0xff0);
  assert.equal(m.hypercall(v, ipiSlow, BigInt(INPUT + 0xff0)).status, HvStatus.SUCCESS, 'ending exactly at the page end is fine');
  assert.equal(m.hypercall(v, ipiSlow, 1n << 40n).status, HvStatus.INVALID_ALIGNMENT, 'beyond the 40-bit GPA space');
  assert.equal(m.hypercall(v, ipiSlow, 0x4000000n).status, HvStatus.INVALID_HYPERCALL_INPUT, 'not guest RAM');
  // kvm-api-facts §2.7: an input page blocked by NR|NW|NX gives INVALID_HYPERCALL_INPUT, no exit, and works once lifted.
  m.vm.setMemoryAttributes({ address: INPUT, size: 0x1000, attributes: 7, flags: 0 });
  const blocked = m.hypercall(v, ipiSlow, BigInt(INPUT));
  assert.equal(blocked.exit.reason, 'hlt');
  assert.equal(blocked.status, HvStatus.INVALID_HYPERCALL_INPUT);
  m.vm.setMemoryAttributes({ address: INPUT, size: 0x1000, attributes: 2 /* NW: reading is allowed */, flags: 0 });
  assert.equal(m.hypercall(v, ipiSlow, BigInt(INPUT)).status, HvStatus.SUCCESS);
  m.vm.setMemoryAttributes({ address: INPUT, size: 0x1000, attributes: 0, flags: 0 });
  assert.equal(m.hypercall(v, ipiSlow, BigInt(INPUT)).status, HvStatus.SUCCESS);
});

test('a call without input ignores its GPA (§1.5)', () => {
  const m = machine();
  const slowSpin = makeHypercallControl({ code: HvCall.NotifyLongSpinWait });
  assert.equal(m.hypercall(m.vcpu(0), slowSpin, 0x123n).status, HvStatus.SUCCESS);
});

test('fast calls: 16 bytes in RDX/R8; more needs XMM input (else #UD); more than 112 bytes is INVALID_HYPERCALL_INPUT (§1.3)', () => {
  const m = machine();
  const v = m.vcpu(0);
  // SendSyntheticClusterIpi fits RDX (vector, VTL, flags) and R8 (mask).
  assert.equal(m.hypercall(v, makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, fast: true }), 0x40n, 0b10n).status, HvStatus.SUCCESS);
  // FlushVirtualAddressSpace is 24 bytes: the processor mask is in XMM0's low half.
  const flushFast = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace, fast: true });
  assert.equal(m.hypercall(v, flushFast, 0n, 0n, [0b11n, 0n]).status, HvStatus.SUCCESS);
  const noXmm = machine(FLAGS.filter((f) => f !== 'hv-xmm-input'));
  const ud = noXmm.hypercall(noXmm.vcpu(0), flushFast, 0n, 0n, [0b11n, 0n]);
  assert.equal(ud.ud, true, 'XMM fast input without CPUID 0x40000003 EDX bit 4 is #UD');
  assert.equal(ud.rax, 0xdeadn);
  // PostMessage's 256-byte input can never be fast.
  assert.equal(m.hypercall(v, makeHypercallControl({ code: HvCall.PostMessage, fast: true })).status, HvStatus.INVALID_HYPERCALL_INPUT);
  // A list of 11 ranges: 24 + 88 = 112 bytes fits; 12 ranges do not.
  const list = (n: number) => makeHypercallControl({ code: HvCall.FlushVirtualAddressList, fast: true, repCount: n });
  const xmm = [0b1n, ...Array.from({ length: 11 }, (_, k) => BigInt(0x1000 * (k + 1)))];
  assert.equal(m.hypercall(v, list(11), 0n, 1n, xmm).status, HvStatus.SUCCESS);
  assert.equal(m.hypercall(v, list(12), 0n, 1n, xmm).status, HvStatus.INVALID_HYPERCALL_INPUT);
});

test('a 32-bit caller uses EDX:EAX, EBX:ECX, EDI:ESI and gets the result in EDX:EAX (§1.3)', () => {
  const m = machine();
  const v = m.vcpu(0);
  m.writeQwords(INPUT, [0n, 1n /* ALL_PROCESSORS */, 0n, 0x1000n, 0x2000n, 0x3000n]);
  const control = makeHypercallControl({ code: HvCall.FlushVirtualAddressList, repCount: 3 });
  const L = m.asm(`.code32
    mov eax, ${Number(control & 0xffffffffn)}
    mov edx, ${Number(control >> 32n)}
    mov ecx, ${INPUT}
    xor ebx, ebx
    xor esi, esi
    xor edi, edi
    vmcall
    hlt
  bad:
    mov eax, 0x7fff
    xor edx, edx
    vmcall
    hlt`, CODE + 0x200);
  m.enter32(v, CODE + 0x200);
  assert.equal(m.runToExit(v).reason, 'hlt');
  let r = v.getRegs();
  assert.equal(r.rax, 0n, 'EAX: status SUCCESS');
  assert.equal(r.rdx, 3n, 'EDX: reps completed (result bits 43:32)');
  m.enter32(v, L.bad);
  m.runToExit(v);
  r = v.getRegs();
  assert.equal(r.rax, BigInt(HvStatus.INVALID_HYPERCALL_CODE));
  assert.equal(r.rdx, 0n);
});

test('a 32-bit caller has no XMM block: a fast input over 16 bytes is INVALID_HYPERCALL_INPUT', () => {
  const m = machine();
  const v = m.vcpu(0);
  const control = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace, fast: true });
  m.asm(`.code32
    mov eax, ${Number(control & 0xffffffffn)}
    xor edx, edx
    vmcall
    hlt`, CODE + 0x300);
  m.enter32(v, CODE + 0x300);
  m.runToExit(v);
  assert.equal(v.getRegs().rax, BigInt(HvStatus.INVALID_HYPERCALL_INPUT));
});

test('trace events kvm_hv_hypercall and kvm_hv_hypercall_done describe each call', () => {
  const m = machine();
  m.hypercall(m.vcpu(1), makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, fast: true }), 0x40n, 0b1n);
  const [call] = m.vm.trace!.named('kvm_hv_hypercall');
  assert.equal(call.vcpu, 1);
  assert.deepEqual(call.args, { code: 'b', fast: true, var_cnt: 0, rep_cnt: 0, rep_idx: 0, in_gpa: '40', out_gpa: '1' });
  assert.deepEqual(m.vm.trace!.named('kvm_hv_hypercall_done').map((e) => e.args.result), ['0']);
});
