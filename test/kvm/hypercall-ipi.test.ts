// PV IPI: HvCallSendSyntheticClusterIpi and HvCallSendSyntheticClusterIpiEx
// (tlfs-vsm-facts.md §2.5 sparse VP sets, §2.6 layout and vector range, §2.11
// HV_INPUT_VTL): fixed interrupts into exactly the named vCPUs' local APICs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { CODE, DATA, HvMachine, INPUT } from './hypercall-machine.js';

const FLAGS = ['hv-vpindex', 'hv-ipi', 'hv-vapic', 'hv-xmm-input'];
const ipiFast = makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, fast: true });
const ipiSlow = makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi });
const ipiEx = (banks: number, fast = false) => makeHypercallControl({ code: HvCall.SendSyntheticClusterIpiEx, varHeaderQwords: banks, fast });

const pending = (m: HvMachine) => m.vcpus.filter((v) => v.apic.pendingVector() >= 0).map((v) => [v.id, v.apic.pendingVector()]);

/** RDX of the fast form: Vector u32 @0, TargetVtl u8 @4, Flags u8 @5, Reserved u16 @6. */
const header = (vector: number, vtl = 0, flags = 0, reserved = 0) =>
  BigInt(vector) | (BigInt(vtl) << 32n) | (BigInt(flags) << 40n) | (BigInt(reserved) << 48n);

test('fast SendSyntheticClusterIpi: RDX vector, R8 processor mask; exactly the masked vCPUs get the vector', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1, 2, 3] });
  const r = m.hypercall(m.vcpu(0), ipiFast, header(0x41), 0b1010n);
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.deepEqual(pending(m), [[1, 0x41], [3, 0x41]]);
});

test('memory-based SendSyntheticClusterIpi, the caller included, VPs that do not exist ignored', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1, 2] });
  m.writeQwords(INPUT, [header(0xfe), 0b1000_0101n]);
  assert.equal(m.hypercall(m.vcpu(2), ipiSlow, BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(pending(m), [[0, 0xfe], [2, 0xfe]]);
});

test('SendSyntheticClusterIpiEx with sparse banks, HV_GENERIC_SET_ALL, and an empty set (§2.5)', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1, 65, 130] });
  // VPs {1, 130}: banks 0 and 2.
  m.writeQwords(INPUT, [header(0x50), 0n, 0b101n, 0x2n, 0x4n]);
  assert.equal(m.hypercall(m.vcpu(0), ipiEx(2), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(pending(m), [[1, 0x50], [130, 0x50]]);
  // XMM fast: RDX header, R8 format, XMM0 low valid banks, XMM0 high bank 1 (VP 65).
  assert.equal(m.hypercall(m.vcpu(0), ipiEx(1, true), header(0x60), 0n, [0b10n, 0x2n]).status, HvStatus.SUCCESS);
  assert.deepEqual(pending(m), [[1, 0x50], [65, 0x60], [130, 0x50]]);
  // Format 1: everyone, the caller included.
  m.writeQwords(INPUT, [header(0x70), 1n, 0n]);
  assert.equal(m.hypercall(m.vcpu(0), ipiEx(0), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(pending(m), [[0, 0x70], [1, 0x70], [65, 0x70], [130, 0x70]]);
  // A sparse set with no VP: success, nobody interrupted.
  const fresh = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  fresh.writeQwords(INPUT, [header(0x70), 0n, 0n]);
  assert.equal(fresh.hypercall(fresh.vcpu(0), ipiEx(0), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual(pending(fresh), []);
});

test('vector range 0x10..0xFF (§2.6): outside it is INVALID_PARAMETER and nothing is sent', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  for (const vector of [0, 0x0f, 0x100, 0xffffffff]) {
    assert.equal(m.hypercall(m.vcpu(0), ipiFast, header(0) | BigInt(vector), 0b10n).status, HvStatus.INVALID_PARAMETER, `vector 0x${vector.toString(16)}`);
  }
  assert.deepEqual(pending(m), []);
  assert.equal(m.hypercall(m.vcpu(0), ipiFast, header(0x10), 0b10n).status, HvStatus.SUCCESS);
  assert.equal(m.hypercall(m.vcpu(0), ipiFast, header(0xff), 0b10n).status, HvStatus.SUCCESS);
});

test('Flags and Reserved must be zero (§2.6, openhcl): INVALID_PARAMETER', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  assert.equal(m.hypercall(m.vcpu(0), ipiFast, header(0x40, 0, 1), 0b10n).status, HvStatus.INVALID_PARAMETER);
  assert.equal(m.hypercall(m.vcpu(0), ipiFast, header(0x40, 0, 0, 0x8000), 0b10n).status, HvStatus.INVALID_PARAMETER);
  assert.deepEqual(pending(m), []);
});

test('the target VTL byte (§2.11): only VTL0 exists without VSM; with AccessVsm a named VTL goes to the VMM', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  const send = (vtl: number) => m.hypercall(m.vcpu(0), ipiFast, header(0x40, vtl), 0b10n).status;
  assert.equal(send(0x20), HvStatus.INVALID_PARAMETER, 'RsvdZ bits 7:5');
  assert.equal(send(0x10), HvStatus.SUCCESS, 'UseTargetVtl, VTL0: the caller\'s own VTL');
  assert.equal(send(0x11), HvStatus.ACCESS_DENIED, 'VTL1 is above the caller\'s VTL0');
  assert.equal(send(0x12), HvStatus.INVALID_PARAMETER, 'VTL2 is not implemented');
  assert.equal(send(0x01), HvStatus.SUCCESS, 'TargetVtl is ignored without UseTargetVtl');
  const vsm = new HvMachine({ flags: ['hv-vpindex', 'hv-ipi', 'hv-synic', 'hv-vapic', 'hv-vsm'], ids: [0, 1] });
  const r = vsm.hypercall(vsm.vcpu(0), ipiFast, header(0x40, 0x11), 0b10n);
  assert.equal(r.exit.reason, 'hyperv-hcall');
  assert.equal(vsm.hypercall(vsm.vcpu(0), ipiFast, header(0x40), 0b10n).status, HvStatus.SUCCESS, 'no VTL named: handled in the kernel');
});

test('malformed Ex sets (§2.5): bank words ≠ popcount, unknown format: INVALID_PARAMETER', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  m.writeQwords(INPUT, [header(0x40), 0n, 0b11n, 0x2n]);
  assert.equal(m.hypercall(m.vcpu(0), ipiEx(1), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  m.writeQwords(INPUT, [header(0x40), 5n, 0n]);
  assert.equal(m.hypercall(m.vcpu(0), ipiEx(0), BigInt(INPUT)).status, HvStatus.INVALID_PARAMETER);
  assert.deepEqual(pending(m), []);
});

test('a halted receiver wakes and runs its handler for the PV IPI', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  const COUNT = DATA + 0x200;
  const L = m.asm(`.code64
  wait:
    hlt
    jmp wait
  handler:
    inc qword ptr [${COUNT}]
    push rax
    push rcx
    push rdx
    mov ecx, 0x40000070
    xor eax, eax
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
    pop rax
    iretq`, CODE + 0x2000);
  m.setGate(0x45, L.handler);
  const v1: Vcpu = m.vcpu(1);
  m.jump(v1, L.wait, { interrupts: true });
  assert.equal(m.runToExit(v1).reason, 'hlt');
  assert.equal(v1.runnable, false);
  assert.equal(m.hypercall(m.vcpu(0), ipiFast, header(0x45), 0b10n).status, HvStatus.SUCCESS);
  assert.equal(v1.runnable, true, 'the IPI woke it');
  m.runToExit(v1);
  assert.equal(m.vm.mem.read64(COUNT), 1n);
  assert.equal(v1.apic.pendingVector(), -1, 'EOI done, nothing left');
});

test('trace kvm_hv_send_ipi / kvm_hv_send_ipi_ex', () => {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  m.hypercall(m.vcpu(0), ipiFast, header(0x41), 0b10n);
  m.writeQwords(INPUT, [header(0x42), 0n, 0b1n, 0b1n]);
  m.hypercall(m.vcpu(0), ipiEx(1), BigInt(INPUT));
  assert.deepEqual(m.vm.trace!.named('kvm_hv_send_ipi').map((e) => e.args), [{ vector: 0x41, processor_mask: '2' }]);
  assert.deepEqual(m.vm.trace!.named('kvm_hv_send_ipi_ex').map((e) => e.args), [{ vector: 0x42, format: '0', valid_bank_mask: '1' }]);
});

// ---------------------------------------------------------------- VTL-aware PV IPIs with AccessVsm (kvm-api-facts §3.2)

const VSM_IPI_FLAGS = ['hv-vpindex', 'hv-ipi', 'hv-synic', 'hv-vapic', 'hv-vsm', 'hv-xmm-input'];

test('AccessVsm: fast RDX bits 39:32 are the input VTL; a named VTL (even VTL0) exits to the VMM with the registers as given', () => {
  const m = new HvMachine({ flags: VSM_IPI_FLAGS, ids: [0, 1] });
  for (const vtl of [0x11, 0x10, 0x1f]) {
    const r = m.hypercall(m.vcpu(0), ipiFast, header(0x40, vtl), 0b10n);
    assert.equal(r.exit.reason, 'hyperv-hcall', `input VTL 0x${vtl.toString(16)}`);
    if (r.exit.reason === 'hyperv-hcall') {
      assert.equal(r.exit.input, ipiFast);
      assert.deepEqual(r.exit.params, [header(0x40, vtl), 0b10n]);
    }
    assert.equal(r.rip, BigInt(CODE), 'RIP stays on the VMCALL until the VMM answers');
    m.vcpu(0).completeHypercall(BigInt(HvStatus.ACCESS_DENIED));
    assert.equal(m.runToExit(m.vcpu(0)).reason, 'hlt');
    assert.equal(m.vcpu(0).getRegs().rax, BigInt(HvStatus.ACCESS_DENIED), 'the VMM\'s answer lands in RAX');
  }
  assert.deepEqual(pending(m), [], 'kvm delivered nothing itself');
});

test('AccessVsm: the reserved-bit check starts at bit 40 (Flags, Reserved) and comes before the exit; RsvdZ VTL bits too', () => {
  const m = new HvMachine({ flags: VSM_IPI_FLAGS, ids: [0, 1] });
  const send = (rdx: bigint) => m.hypercall(m.vcpu(0), ipiFast, rdx, 0b10n);
  for (const [rdx, what] of [
    [header(0x40, 0x11, 1), 'bit 40 (Flags)'], [header(0x40, 0x11, 0x80), 'bit 47 (Flags)'],
    [header(0x40, 0x11, 0, 1), 'bit 48 (Reserved)'], [header(0x40, 0x11, 0, 0x8000), 'bit 63 (Reserved)'],
    [header(0x40, 0x31), 'bit 37 (HV_INPUT_VTL RsvdZ)'],
  ] as const) {
    const r = send(rdx);
    assert.equal(r.exit.reason, 'hlt', what);
    assert.equal(r.status, HvStatus.INVALID_PARAMETER, what);
  }
  assert.deepEqual(pending(m), []);
  // Bits 39:32 without UseTargetVtl name no VTL: kvm delivers in its own Vm.
  assert.equal(send(header(0x40, 0x0f)).status, HvStatus.SUCCESS);
  assert.deepEqual(pending(m), [[1, 0x40]]);
});

test('AccessVsm: memory-based and Ex forms that name a VTL exit with the input GPA / XMM block; the VMM checks the VP set', () => {
  const m = new HvMachine({ flags: VSM_IPI_FLAGS, ids: [0, 1] });
  const v = m.vcpu(0);
  const exitOf = (r: ReturnType<HvMachine['hypercall']>) => {
    assert.equal(r.exit.reason, 'hyperv-hcall');
    v.completeHypercall(0n);
    m.runToExit(v);
    return r.exit.reason === 'hyperv-hcall' ? r.exit : assert.fail('no exit');
  };
  m.writeQwords(INPUT, [header(0x40, 0x11), 0b10n]);
  let e = exitOf(m.hypercall(v, ipiSlow, BigInt(INPUT), 0x5000n));
  assert.deepEqual([e.input, e.params], [ipiSlow, [BigInt(INPUT), 0x5000n]]);
  assert.ok(e.xmm.every((x) => x.low === 0n && x.high === 0n), 'no XMM block for a memory-based call');
  m.writeQwords(INPUT, [header(0x50, 0x11), 0n, 0b1n, 0b10n]);
  e = exitOf(m.hypercall(v, ipiEx(1), BigInt(INPUT)));
  assert.equal(e.input, ipiEx(1));
  // XMM fast Ex: RDX header, R8 format, XMM0 = valid banks + bank 0.
  e = exitOf(m.hypercall(v, ipiEx(1, true), header(0x60, 0x11), 0n, [0b1n, 0b10n]));
  assert.deepEqual([e.params, e.xmm[0]], [[header(0x60, 0x11), 0n], { low: 0b1n, high: 0b10n }]);
  // A malformed set (two banks announced, one word) naming a VTL is the VMM's to refuse: kvm checks the VTL first.
  m.writeQwords(INPUT, [header(0x40, 0x11), 0n, 0b11n, 0x2n]);
  exitOf(m.hypercall(v, ipiEx(1), BigInt(INPUT)));
  assert.deepEqual(pending(m), []);
});
