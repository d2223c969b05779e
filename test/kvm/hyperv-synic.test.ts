// SynIC message and event delivery (tlfs-vsm-facts.md §4.1, §4.2 HV_MESSAGE and the
// MessagePending/EOM protocol, §2.9 PostMessage and §2.10 SignalEvent status codes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvmError } from '../../src/kvm/errors.js';
import type { HvVp } from '../../src/kvm/hyperv/vp.js';
import { HvMsr, HvStatus } from '../../src/spec/tlfs.js';
import { makeRig, SYNIC_FLAGS, type FakeVcpu } from './hyperv-fixture.js';

const SIM = 0x10000;
const SIEF = 0x11000;
const VEC = 0x52;

function enable(vp: HvVp, sints: Record<number, bigint> = { 2: BigInt(VEC) }): void {
  assert.equal(vp.wrmsr(HvMsr.SIMP, BigInt(SIM) | 1n), true);
  assert.equal(vp.wrmsr(HvMsr.SIEFP, BigInt(SIEF) | 1n), true);
  assert.equal(vp.wrmsr(HvMsr.SCONTROL, 1n), true);
  for (const [n, v] of Object.entries(sints)) assert.equal(vp.wrmsr(HvMsr.SINT0 + Number(n), v), true);
}

function setup(opts: { count?: number; queueLimit?: number } = {}) {
  const rig = makeRig(SYNIC_FLAGS, { count: opts.count, partition: opts.queueLimit ? { sintQueueLimit: opts.queueLimit } : {} });
  for (const vp of rig.vps) enable(vp);
  return rig;
}

const slot = (n: number) => SIM + n * 256;
const msg = (type: number, ...payload: number[]) => ({ type, payload: Uint8Array.from(payload) });

/** The guest's message handler: free the slot, then EOM if MessagePending was set (§4.2). */
function consume(rig: ReturnType<typeof setup>, vp: HvVp, n: number): { type: number; flags: number; first: number } {
  const type = rig.mem.read32(slot(n));
  const flags = rig.mem.read8(slot(n) + 5);
  const first = rig.mem.read8(slot(n) + 16);
  rig.mem.write32(slot(n), 0);
  if (flags & 1) vp.wrmsr(HvMsr.EOM, 0n);
  return { type, flags, first };
}

function takeAndEoi(cpu: FakeVcpu, vp: HvVp): number {
  const v = cpu.take(vp);
  cpu.eoi();
  vp.onApicEoi(v);
  return v;
}

test('a message into a free slot: exact HV_MESSAGE bytes and one interrupt', () => {
  const rig = setup();
  const [vp] = rig.vps;
  rig.mem.fill(slot(2), 256, 0xee);
  rig.mem.write32(slot(2), 0); // free slot, stale bytes after the header
  assert.equal(vp!.synic.postMessage(2, { type: 0x1234, payload: Uint8Array.from([1, 2, 3]), originationId: 0x0102030405060708n }), HvStatus.SUCCESS);
  assert.deepEqual([...rig.mem.read(slot(2), 20)], [
    0x34, 0x12, 0, 0, // MessageType
    3, // PayloadSize
    0, // MessageFlags
    0, 0, // Reserved
    8, 7, 6, 5, 4, 3, 2, 1, // OriginationId
    1, 2, 3, // Payload
    0xee, // the rest of the slot is not touched
  ]);
  assert.equal(rig.vcpus[0]!.irr(VEC), true);
});

test('a busy slot queues the message, sets MessagePending; EOM delivers it', () => {
  const rig = setup();
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  assert.equal(vp!.synic.postMessage(2, msg(1, 0xa1)), HvStatus.SUCCESS);
  assert.equal(takeAndEoi(cpu, vp!), VEC);
  assert.equal(vp!.synic.postMessage(2, msg(2, 0xb2)), HvStatus.SUCCESS);
  assert.equal(vp!.synic.postMessage(2, msg(3, 0xc3)), HvStatus.SUCCESS);
  assert.equal(vp!.synic.queued(2), 2);
  assert.equal(cpu.irr(VEC), false, 'no interrupt for a queued message');
  assert.deepEqual(consume(rig, vp!, 2), { type: 1, flags: 1, first: 0xa1 }); // pending flag set, guest EOMs
  // EOM delivered message 2, which says more are pending.
  assert.equal(cpu.irr(VEC), true);
  takeAndEoi(cpu, vp!);
  assert.deepEqual(consume(rig, vp!, 2), { type: 2, flags: 1, first: 0xb2 });
  takeAndEoi(cpu, vp!);
  assert.deepEqual(consume(rig, vp!, 2), { type: 3, flags: 0, first: 0xc3 });
  assert.equal(vp!.synic.queued(2), 0);
});

test('an EOI of the SINT vector retries delivery too (slot freed without EOM)', () => {
  const rig = setup();
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  vp!.synic.postMessage(2, msg(1));
  cpu.take(vp);
  vp!.synic.postMessage(2, msg(2)); // arrives while the guest handles message 1
  rig.mem.write32(slot(2), 0); // the guest frees the slot, having read the flags before they changed
  cpu.eoi();
  vp!.onApicEoi(VEC);
  assert.equal(rig.mem.read32(slot(2)), 2);
  assert.equal(cpu.irr(VEC), true);
  vp!.onApicEoi(0x99); // another vector retries nothing
  assert.equal(vp!.synic.queued(2), 0);
});

test('INSUFFICIENT_BUFFERS when the queue is full; INVALID_SYNIC_STATE when SynIC or SIM is off', () => {
  const rig = setup({ queueLimit: 2 });
  const [vp] = rig.vps;
  assert.equal(vp!.synic.postMessage(2, msg(1)), HvStatus.SUCCESS);
  assert.equal(vp!.synic.postMessage(2, msg(2)), HvStatus.SUCCESS);
  assert.equal(vp!.synic.postMessage(2, msg(3)), HvStatus.SUCCESS);
  assert.equal(vp!.synic.postMessage(2, msg(4)), HvStatus.INSUFFICIENT_BUFFERS);
  vp!.wrmsr(HvMsr.SIMP, BigInt(SIM)); // SIM disabled
  assert.equal(vp!.synic.postMessage(5, msg(5)), HvStatus.INVALID_SYNIC_STATE);
  vp!.wrmsr(HvMsr.SIMP, BigInt(SIM) | 1n);
  vp!.wrmsr(HvMsr.SCONTROL, 0n);
  assert.equal(vp!.synic.postMessage(5, msg(5)), HvStatus.INVALID_SYNIC_STATE);
});

test('masked and polling SINTs get the message but no interrupt', () => {
  const rig = setup();
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  vp!.wrmsr(HvMsr.SINT0 + 4, 0x1_0060n); // masked, vector 0x60
  vp!.wrmsr(HvMsr.SINT0 + 5, 0x4_0061n); // polling, vector 0x61
  assert.equal(vp!.synic.postMessage(4, msg(7)), HvStatus.SUCCESS);
  assert.equal(vp!.synic.postMessage(5, msg(8)), HvStatus.SUCCESS);
  assert.equal(rig.mem.read32(slot(4)), 7);
  assert.equal(rig.mem.read32(slot(5)), 8);
  assert.equal(cpu.apic.pendingVector(), -1);
});

test('event flags: set the bit, interrupt only on 0 → 1 (§2.10)', () => {
  const rig = setup();
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  assert.equal(vp!.synic.signalEvent(2, 5), HvStatus.SUCCESS);
  assert.equal(rig.mem.read8(SIEF + 2 * 256), 0x20);
  assert.equal(takeAndEoi(cpu, vp!), VEC);
  assert.equal(vp!.synic.signalEvent(2, 5), HvStatus.SUCCESS);
  assert.equal(cpu.irr(VEC), false, 'flag already set: no interrupt');
  assert.equal(vp!.synic.signalEvent(2, 2047), HvStatus.SUCCESS);
  assert.equal(rig.mem.read8(SIEF + 2 * 256 + 255), 0x80);
  assert.equal(cpu.irr(VEC), true);
  assert.equal(vp!.synic.signalEvent(2, 2048), HvStatus.INVALID_PARAMETER);
  vp!.wrmsr(HvMsr.SINT0 + 2, 0x1_0052n);
  assert.equal(vp!.synic.signalEvent(2, 6), HvStatus.INVALID_SYNIC_STATE, 'masked SINT');
  vp!.wrmsr(HvMsr.SINT0 + 2, 0x52n);
  vp!.wrmsr(HvMsr.SIEFP, BigInt(SIEF));
  assert.equal(vp!.synic.signalEvent(2, 6), HvStatus.INVALID_SYNIC_STATE, 'SIEF page disabled');
  assert.equal(rig.mem.read8(SIEF + 2 * 256), 0x20, 'nothing set on error');
});

test('auto-EOI: the acknowledged SINT vector leaves the ISR at once; without it the guest must EOI', () => {
  const rig = setup();
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  vp!.wrmsr(HvMsr.SINT0 + 3, 0x2_0070n); // AutoEOI, vector 0x70
  vp!.synic.assertSint(3);
  assert.equal(cpu.take(vp), 0x70);
  assert.equal(cpu.isr(0x70), false);
  assert.equal(cpu.apic.ppr(), 0, 'processor priority back to 0');
  vp!.synic.assertSint(2); // plain SINT 2, vector 0x52
  assert.equal(cpu.take(vp), VEC);
  assert.equal(cpu.isr(VEC), true);
});

test('auto-EOI of a lower vector nested under a higher in-service one clears only itself', () => {
  const rig = setup();
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  vp!.wrmsr(HvMsr.SINT0 + 3, 0x2_00a0n); // AutoEOI, vector 0xa0
  cpu.apic.acceptFixed(0x40);
  cpu.take(vp); // 0x40 in service
  vp!.synic.assertSint(3);
  assert.equal(cpu.take(vp), 0xa0);
  assert.equal(cpu.isr(0xa0), false);
  assert.equal(cpu.isr(0x40), true);
});

test('connection registry routes HvPostMessage and HvSignalEvent', () => {
  const rig = setup({ count: 2 });
  const [vp0, vp1] = rig.vps;
  const p = rig.partition;
  vp1!.wrmsr(HvMsr.SINT0 + 3, 0x53n);
  p.connections.registerMessageConnection(7, 1, 3);
  assert.equal(p.postMessage(7, 0x42, Uint8Array.from([9, 8])), HvStatus.SUCCESS);
  assert.equal(rig.mem.read32(slot(3)), 0x42);
  assert.equal(rig.vcpus[1]!.irr(0x53), true);
  assert.equal(rig.vcpus[0]!.irr(0x53), false);
  assert.equal(p.postMessage(8, 0x42, new Uint8Array()), HvStatus.INVALID_CONNECTION_ID);
  assert.equal(p.postMessage(7, 0, new Uint8Array()), HvStatus.INVALID_PARAMETER, 'type 0');
  assert.equal(p.postMessage(7, 0x8000_0001, new Uint8Array()), HvStatus.INVALID_PARAMETER, 'hypervisor type');
  assert.equal(p.postMessage(7, 1, new Uint8Array(241)), HvStatus.INVALID_PARAMETER, 'payload > 240');
  p.connections.registerMessageConnection(9, 5, 0);
  assert.equal(p.postMessage(9, 1, new Uint8Array()), HvStatus.INVALID_VP_INDEX);

  p.connections.registerEventConnection(11, 0, 2, 100, 2);
  assert.equal(p.signalEvent(11, 1), HvStatus.SUCCESS);
  assert.equal(rig.mem.read8(SIEF + 2 * 256 + 12), 0x20, 'flag 101');
  assert.equal(p.signalEvent(11, 2), HvStatus.INVALID_PARAMETER, 'beyond the connection flag count');
  assert.equal(p.signalEvent(12, 0), HvStatus.INVALID_CONNECTION_ID);
  assert.equal(vp0!.synic.queued(2), 0);

  assert.throws(() => p.connections.registerMessageConnection(7, 0, 0), (e: unknown) => e instanceof KvmError && e.code === 'EEXIST');
  assert.throws(() => p.connections.unregisterEventConnection(99), (e: unknown) => e instanceof KvmError && e.code === 'ENOENT');
  assert.throws(() => p.connections.registerEventConnection(1, 0, 16), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');
  assert.throws(() => p.connections.registerEventConnection(1, 0, 1, 2000, 100), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');
  p.connections.unregisterMessageConnection(7);
  assert.equal(p.postMessage(7, 1, new Uint8Array()), HvStatus.INVALID_CONNECTION_ID);
});

test('reset puts every SynIC register back and drops queued messages', () => {
  const rig = setup();
  const [vp] = rig.vps;
  vp!.synic.postMessage(2, msg(1));
  vp!.synic.postMessage(2, msg(2));
  rig.partition.reset();
  assert.equal(vp!.rdmsr(HvMsr.SCONTROL), 0n);
  assert.equal(vp!.rdmsr(HvMsr.SIMP), 0n);
  assert.equal(vp!.rdmsr(HvMsr.SINT0 + 2), 0x1_0000n);
  assert.equal(vp!.synic.queued(2), 0);
});

test('a SIM or SIEF page closed by memory attributes counts as disabled (kvm-api-facts §2.7)', () => {
  let blocked = -1;
  const rig = makeRig(SYNIC_FLAGS, { partition: { guestAccessAllowed: (gpa) => Math.floor(gpa / 4096) !== blocked } });
  const [vp] = rig.vps;
  enable(vp!);
  blocked = SIM / 4096;
  assert.equal(vp!.synic.postMessage(2, msg(1)), HvStatus.INVALID_SYNIC_STATE);
  assert.equal(rig.mem.read32(slot(2)), 0);
  assert.equal(vp!.synic.signalEvent(2, 0), HvStatus.SUCCESS, 'the SIEF page is still open');
  blocked = SIEF / 4096;
  assert.equal(vp!.synic.signalEvent(2, 1), HvStatus.INVALID_SYNIC_STATE);
  assert.equal(rig.mem.read8(SIEF + 2 * 256), 0x01);
  assert.equal(vp!.synic.postMessage(2, msg(1)), HvStatus.SUCCESS);
});

test('stale queued messages are skipped and raise no MessagePending', () => {
  const rig = setup();
  const [vp] = rig.vps;
  rig.mem.write32(slot(2), 0x99); // busy
  assert.equal(vp!.synic.offer(2, { build: () => null }), 'queued');
  assert.equal(rig.mem.read8(slot(2) + 5), 1);
  rig.mem.write32(slot(2), 0);
  rig.mem.write8(slot(2) + 5, 0);
  // The stale head is dropped and the new message goes straight into the free slot.
  assert.equal(vp!.synic.offer(2, { build: () => msg(5) }), 'delivered');
  assert.equal(rig.mem.read32(slot(2)), 5);
  assert.equal(rig.mem.read8(slot(2) + 5), 0);
  rig.mem.write32(slot(2), 0x99);
  vp!.synic.offer(2, { build: () => null });
  rig.mem.write32(slot(2), 0);
  rig.mem.write8(slot(2) + 5, 0);
  vp!.wrmsr(HvMsr.EOM, 0n);
  assert.equal(rig.mem.read8(slot(2) + 5), 0, 'nothing left: no flag');
  assert.equal(vp!.synic.queued(2), 0);
});
