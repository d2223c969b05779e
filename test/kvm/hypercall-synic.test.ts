// HvCallPostMessage and HvCallSignalEvent to connections registered in the
// kernel (tlfs-vsm-facts.md §2.9, §2.10, §4.2), and HvCallNotifyLongSpinWait
// (§2.8): success and every error status, through real VMCALLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { HvCall, HvMsr, HvStatus } from '../../src/spec/tlfs.js';
import { AFTER_CALL, CALL_SITE, HvMachine, INPUT } from './hypercall-machine.js';

const FLAGS = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-xmm-input'];
const SIMP = 0x60000, SIEFP = 0x61000;
const SINT = 2, VECTOR = 0x50;
const MSG_CONN = 7, EVT_CONN = 8, EVT_BASE = 10, EVT_COUNT = 4;
const post = makeHypercallControl({ code: HvCall.PostMessage });
const signalFast = makeHypercallControl({ code: HvCall.SignalEvent, fast: true });
const signalSlow = makeHypercallControl({ code: HvCall.SignalEvent });

/** vCPU 1's SynIC enabled with SIM, SIEF and SINT2 → vector 0x50; connections 7 (message) and 8 (event) to it. */
function machine(): HvMachine {
  const m = new HvMachine({ flags: FLAGS, ids: [0, 1] });
  const vp = m.vcpu(1).hv!;
  assert.equal(vp.wrmsr(HvMsr.SCONTROL, 1n), true);
  assert.equal(vp.wrmsr(HvMsr.SIMP, BigInt(SIMP) | 1n), true);
  assert.equal(vp.wrmsr(HvMsr.SIEFP, BigInt(SIEFP) | 1n), true);
  assert.equal(vp.wrmsr(HvMsr.SINT0 + SINT, BigInt(VECTOR)), true);
  m.partition.connections.registerMessageConnection(MSG_CONN, 1, SINT);
  m.partition.connections.registerEventConnection(EVT_CONN, 1, SINT, EVT_BASE, EVT_COUNT);
  return m;
}

/** HvPostMessage input (§2.9): ConnectionId, RsvdZ, MessageType, PayloadSize, Payload. */
function message(m: HvMachine, conn: number, type: number, payload: number[], o: { reserved?: number; size?: number } = {}): void {
  const mem = m.vm.mem;
  mem.fill(INPUT, 256, 0);
  mem.write32(INPUT, conn);
  mem.write32(INPUT + 4, o.reserved ?? 0);
  mem.write32(INPUT + 8, type);
  mem.write32(INPUT + 12, o.size ?? payload.length);
  mem.write(INPUT + 16, Uint8Array.from(payload));
}

const slot = (m: HvMachine) => SIMP + SINT * 256;

test('PostMessage delivers into the target SINT slot and interrupts it (§2.9, §4.2)', () => {
  const m = machine();
  message(m, MSG_CONN, 0x1234, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const r = m.hypercall(m.vcpu(0), post, BigInt(INPUT));
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(r.rip, AFTER_CALL);
  const mem = m.vm.mem;
  assert.equal(mem.read32(slot(m)), 0x1234, 'MessageType');
  assert.equal(mem.read8(slot(m) + 4), 9, 'PayloadSize');
  assert.deepEqual([...mem.read(slot(m) + 16, 9)], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(m.vcpu(1).apic.pendingVector(), VECTOR);
});

test('PostMessage errors, each with its status (§2.9)', () => {
  const m = machine();
  const call = () => m.hypercall(m.vcpu(0), post, BigInt(INPUT)).status;
  message(m, MSG_CONN, 1, [], { reserved: 1 });
  assert.equal(call(), HvStatus.INVALID_HYPERCALL_INPUT, 'RsvdZ field');
  message(m, MSG_CONN, 0, []);
  assert.equal(call(), HvStatus.INVALID_PARAMETER, 'message type 0');
  message(m, MSG_CONN, 0x8000_0001, []);
  assert.equal(call(), HvStatus.INVALID_PARAMETER, 'hypervisor message types (bit 31) are reserved');
  message(m, MSG_CONN, 1, [], { size: 241 });
  assert.equal(call(), HvStatus.INVALID_PARAMETER, 'payload over 240 bytes');
  m.partition.connections.registerMessageConnection(9, 5, SINT);
  message(m, 9, 1, []);
  assert.equal(call(), HvStatus.INVALID_VP_INDEX, 'the connection names a VP that does not exist');
  m.partition.connections.registerMessageConnection(10, 0, SINT);
  message(m, 10, 1, []);
  assert.equal(call(), HvStatus.INVALID_SYNIC_STATE, 'VP 0 has its SynIC disabled');
  assert.equal(m.vcpu(1).hv!.wrmsr(HvMsr.SIMP, BigInt(SIMP)), true);
  message(m, MSG_CONN, 1, []);
  assert.equal(call(), HvStatus.INVALID_SYNIC_STATE, 'SIM page disabled');
  assert.equal(m.vcpu(1).apic.pendingVector(), -1, 'no interrupt for failed posts');
});

test('PostMessage to a busy slot queues; a full queue is INSUFFICIENT_BUFFERS (§2.9)', () => {
  const m = machine();
  message(m, MSG_CONN, 1, [0xaa]);
  const limit = m.vcpu(1).hv!.synic.queueLimit;
  assert.equal(m.hypercall(m.vcpu(0), post, BigInt(INPUT)).status, HvStatus.SUCCESS, 'into the slot');
  for (let k = 0; k < limit; k++) assert.equal(m.hypercall(m.vcpu(0), post, BigInt(INPUT)).status, HvStatus.SUCCESS, `queued ${k}`);
  assert.equal(m.hypercall(m.vcpu(0), post, BigInt(INPUT)).status, HvStatus.INSUFFICIENT_BUFFERS);
  assert.equal(m.vcpu(1).hv!.synic.queued(SINT), limit);
});

test('SignalEvent sets flag base + FlagNumber in the SIEF page; the interrupt comes only on 0 → 1 (§2.10)', () => {
  const m = machine();
  const flag = EVT_BASE + 3;
  const byte = SIEFP + SINT * 256 + (flag >>> 3);
  const r = m.hypercall(m.vcpu(0), signalFast, BigInt(EVT_CONN) | (3n << 32n));
  assert.equal(r.status, HvStatus.SUCCESS);
  assert.equal(m.vm.mem.read8(byte), 1 << (flag & 7));
  assert.equal(m.vcpu(1).apic.pendingVector(), VECTOR);
  m.writeQwords(INPUT, [BigInt(EVT_CONN) | (3n << 32n)]);
  assert.equal(m.hypercall(m.vcpu(0), signalSlow, BigInt(INPUT)).status, HvStatus.SUCCESS, 'memory-based form');
  assert.equal(m.vm.trace!.named('kvm_hv_synic_set_irq').length, 1, 'the flag was already set: no second interrupt');
});

test('SignalEvent errors, each with its status (§2.10)', () => {
  const m = machine();
  const signal = (input: bigint) => m.hypercall(m.vcpu(0), signalFast, input).status;
  assert.equal(signal(BigInt(EVT_CONN) | (1n << 48n)), HvStatus.INVALID_HYPERCALL_INPUT, 'RsvdZ bits 63:48');
  assert.equal(signal(BigInt(EVT_CONN) | (BigInt(EVT_COUNT) << 32n)), HvStatus.INVALID_PARAMETER, 'FlagNumber beyond the connection\'s flags');
  m.partition.connections.registerEventConnection(20, 3, SINT);
  assert.equal(signal(20n), HvStatus.INVALID_VP_INDEX);
  m.partition.connections.registerEventConnection(21, 0, SINT);
  assert.equal(signal(21n), HvStatus.INVALID_SYNIC_STATE, 'VP 0 has no SynIC enabled');
  assert.equal(m.vcpu(1).hv!.wrmsr(HvMsr.SINT0 + SINT, BigInt(VECTOR) | (1n << 16n)), true);
  assert.equal(signal(BigInt(EVT_CONN)), HvStatus.INVALID_SYNIC_STATE, 'SINT masked');
  assert.equal(m.vcpu(1).hv!.wrmsr(HvMsr.SINT0 + SINT, BigInt(VECTOR)), true);
  assert.equal(m.vcpu(1).hv!.wrmsr(HvMsr.SIEFP, BigInt(SIEFP)), true);
  assert.equal(signal(BigInt(EVT_CONN)), HvStatus.INVALID_SYNIC_STATE, 'SIEF page disabled');
  m.writeQwords(INPUT + 4, [BigInt(EVT_CONN)]);
  assert.equal(m.hypercall(m.vcpu(0), signalSlow, BigInt(INPUT + 4)).status, HvStatus.INVALID_ALIGNMENT, 'memory-based input not 8-byte aligned');
});

test('NotifyLongSpinWait always succeeds and ends the quantum like PAUSE when pause exits are on (§2.8)', () => {
  const m = new HvMachine({ flags: ['hv-relaxed'], spinlocks: 0x100 });
  const v = m.vcpu(0);
  const spin = makeHypercallControl({ code: HvCall.NotifyLongSpinWait, fast: true });
  assert.equal(m.hypercall(v, spin, 0xffff_ffff_ffff_ffffn).status, HvStatus.SUCCESS, 'whatever the spin count');
  v.cpu.pauseExits = true;
  m.jump(v, CALL_SITE);
  const r = v.getRegs(); r.rcx = spin; v.setRegs(r);
  assert.equal(v.run(1000).reason, 'preempted', 'the run ended right after the call');
  assert.equal(v.getRegs().rip, BigInt(CALL_SITE + 3), 'past the VMCALL, before the HLT');
  assert.equal(v.getRegs().rax, 0n);
});
