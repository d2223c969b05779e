// Synthetic timers: STIMERn_CONFIG bits (tlfs-vsm-facts.md §6.5: 0 Enable, 1 Periodic, 2 Lazy,
// 3 AutoEnable, 11:4 APIC vector, 12 DirectMode, 19:16 SINTx), COUNT in 100 ns reference time,
// TimerExpired messages (§4.3 payload: index u32 @0, expiration u64 @8, delivery u64 @16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HvVp } from '../../src/kvm/hyperv/vp.js';
import { HvMsr } from '../../src/spec/tlfs.js';
import { makeRig, SYNIC_FLAGS } from './hyperv-fixture.js';

const SIM = 0x10000;
const VEC = 0x52;
const slot = (n: number) => SIM + n * 256;
const CONFIG = (i: number) => HvMsr.STIMER0_CONFIG + 2 * i;
const COUNT = (i: number) => HvMsr.STIMER0_COUNT + 2 * i;

const ENABLE = 0x1n, PERIODIC = 0x2n, LAZY = 0x4n, AUTO = 0x8n, DIRECT = 0x1000n;
const sintx = (n: number) => BigInt(n) << 16n;

function setup() {
  const rig = makeRig(SYNIC_FLAGS);
  const vp = rig.vps[0]!;
  vp.wrmsr(HvMsr.SIMP, BigInt(SIM) | 1n);
  vp.wrmsr(HvMsr.SCONTROL, 1n);
  vp.wrmsr(HvMsr.SINT0 + 2, BigInt(VEC));
  const at = (ns: number) => { rig.clock.ns = ns; vp.tick(); };
  return { rig, vp, cpu: rig.vcpus[0]!, at };
}

function timerMessage(rig: ReturnType<typeof setup>['rig'], n: number) {
  const b = rig.mem.read(slot(n), 40);
  const dv = new DataView(b.buffer);
  return {
    type: dv.getUint32(0, true), size: b[4], flags: b[5], origin: dv.getBigUint64(8, true),
    index: dv.getUint32(16, true), expiration: dv.getBigUint64(24, true), delivery: dv.getBigUint64(32, true),
  };
}

function free(rig: ReturnType<typeof setup>['rig'], vp: HvVp, n: number, eom: boolean): void {
  rig.mem.write32(slot(n), 0);
  if (eom) vp.wrmsr(HvMsr.EOM, 0n);
}

test('one-shot: expires at COUNT (absolute) with an exact TimerExpired message, then disables itself', () => {
  const { rig, vp, cpu, at } = setup();
  vp.wrmsr(COUNT(0), 5000n);
  vp.wrmsr(CONFIG(0), ENABLE | sintx(2));
  assert.equal(vp.nextDeadlineNs(), 500_000);
  at(499_999);
  assert.equal(rig.mem.read32(slot(2)), 0);
  at(500_000);
  assert.deepEqual([...rig.mem.read(slot(2), 40)], [
    0x10, 0x00, 0x00, 0x80, // HvMessageTypeTimerExpired
    24, 0, 0, 0, // payload size, flags, reserved
    0, 0, 0, 0, 0, 0, 0, 0, // origination id 0
    0, 0, 0, 0, 0, 0, 0, 0, // timer index 0, reserved
    0x88, 0x13, 0, 0, 0, 0, 0, 0, // expiration 5000
    0x88, 0x13, 0, 0, 0, 0, 0, 0, // delivery 5000
  ]);
  assert.equal(cpu.irr(VEC), true);
  assert.equal(vp.rdmsr(CONFIG(0)), sintx(2), 'Enable cleared after delivery');
  assert.equal(vp.nextDeadlineNs(), Infinity);
});

test('one-shot in the past expires at once, on the MSR write', () => {
  const { rig, vp } = setup();
  rig.clock.ns = 10_000; // reference time 100
  vp.wrmsr(COUNT(1), 50n);
  vp.wrmsr(CONFIG(1), ENABLE | sintx(2));
  assert.deepEqual(timerMessage(rig, 2), { type: 0x8000_0010, size: 24, flags: 0, origin: 0n, index: 1, expiration: 50n, delivery: 100n });
});

test('periodic: first expiry now + period, later ones keep the phase', () => {
  const { rig, vp, at } = setup();
  vp.wrmsr(COUNT(0), 1000n);
  vp.wrmsr(CONFIG(0), ENABLE | PERIODIC | sintx(2));
  assert.equal(vp.nextDeadlineNs(), 100_000);
  at(100_000);
  assert.deepEqual(timerMessage(rig, 2), { type: 0x8000_0010, size: 24, flags: 0, origin: 0n, index: 0, expiration: 1000n, delivery: 1000n });
  assert.equal(vp.nextDeadlineNs(), 200_000);
  free(rig, vp, 2, false);
  at(250_000); // late by half a period
  assert.equal(timerMessage(rig, 2).expiration, 2000n);
  assert.equal(timerMessage(rig, 2).delivery, 2500n);
  assert.equal(vp.nextDeadlineNs(), 300_000);
  assert.equal(vp.rdmsr(CONFIG(0)), ENABLE | PERIODIC | sintx(2), 'stays enabled');
});

test('busy slot: the expiry waits with MessagePending and is redelivered on EOM (msg_pending)', () => {
  const { rig, vp, cpu, at } = setup();
  rig.mem.write32(slot(2), 0x77); // the guest has not consumed an earlier message
  vp.wrmsr(COUNT(0), 100n);
  vp.wrmsr(CONFIG(0), ENABLE | sintx(2));
  at(10_000);
  assert.equal(rig.mem.read32(slot(2)), 0x77);
  assert.equal(rig.mem.read8(slot(2) + 5), 1, 'MessagePending set');
  assert.equal(vp.rdmsr(CONFIG(0)), ENABLE | sintx(2), 'still enabled until delivered');
  assert.equal(vp.nextDeadlineNs(), Infinity, 'nothing to do until EOM');
  assert.equal(cpu.irr(VEC), false);
  at(30_000);
  free(rig, vp, 2, true);
  assert.deepEqual(timerMessage(rig, 2), { type: 0x8000_0010, size: 24, flags: 0, origin: 0n, index: 0, expiration: 100n, delivery: 300n });
  assert.equal(cpu.irr(VEC), true);
  assert.equal(vp.rdmsr(CONFIG(0)), sintx(2));
});

test('busy slot, periodic: redelivered after EOM, then the next period keeps the phase', () => {
  const { rig, vp, at } = setup();
  rig.mem.write32(slot(2), 0x77);
  vp.wrmsr(COUNT(0), 1000n);
  vp.wrmsr(CONFIG(0), ENABLE | PERIODIC | sintx(2));
  at(100_000);
  at(350_000);
  free(rig, vp, 2, true);
  assert.equal(timerMessage(rig, 2).expiration, 1000n);
  assert.equal(timerMessage(rig, 2).delivery, 3500n);
  assert.equal(vp.nextDeadlineNs(), 400_000, 'skips the periods that passed');
});

test('lazy periodic: an expiry that finds the slot busy is dropped', () => {
  const { rig, vp, at } = setup();
  rig.mem.write32(slot(2), 0x77);
  vp.wrmsr(COUNT(0), 1000n);
  vp.wrmsr(CONFIG(0), ENABLE | PERIODIC | LAZY | sintx(2));
  at(100_000);
  assert.equal(rig.mem.read8(slot(2) + 5), 0, 'no MessagePending: nothing waits');
  assert.equal(vp.synic.queued(2), 0);
  assert.equal(vp.nextDeadlineNs(), 200_000);
  free(rig, vp, 2, false);
  at(200_000);
  assert.equal(timerMessage(rig, 2).expiration, 2000n);
});

test('direct mode sends the APIC vector of CONFIG[11:4] and no message', () => {
  const { rig, vp, cpu, at } = setup();
  vp.wrmsr(COUNT(2), 300n);
  assert.equal(vp.wrmsr(CONFIG(2), ENABLE | DIRECT | (0x66n << 4n)), true);
  at(30_000);
  assert.equal(cpu.irr(0x66), true);
  assert.equal(rig.mem.read32(slot(0)), 0);
  assert.equal(vp.rdmsr(CONFIG(2)), DIRECT | (0x66n << 4n));
});

test('Enable with SINTx = 0 in message mode leaves the timer disabled', () => {
  const { vp } = setup();
  vp.wrmsr(COUNT(0), 100n);
  vp.wrmsr(CONFIG(0), ENABLE);
  assert.equal(vp.rdmsr(CONFIG(0)), 0n);
  assert.equal(vp.nextDeadlineNs(), Infinity);
});

test('AutoEnable: a non-zero COUNT enables, COUNT 0 disables', () => {
  const { vp } = setup();
  vp.wrmsr(CONFIG(3), AUTO | sintx(2));
  assert.equal(vp.nextDeadlineNs(), Infinity);
  vp.wrmsr(COUNT(3), 100n);
  assert.equal(vp.rdmsr(CONFIG(3)), AUTO | ENABLE | sintx(2));
  assert.equal(vp.nextDeadlineNs(), 10_000);
  vp.wrmsr(COUNT(3), 0n);
  assert.equal(vp.rdmsr(CONFIG(3)), AUTO | sintx(2));
  assert.equal(vp.nextDeadlineNs(), Infinity);
});

test('reprogramming a timer whose message waits makes that message stale', () => {
  const { rig, vp, at } = setup();
  rig.mem.write32(slot(2), 0x77);
  vp.wrmsr(COUNT(0), 100n);
  vp.wrmsr(CONFIG(0), ENABLE | sintx(2));
  at(10_000);
  vp.wrmsr(CONFIG(0), sintx(2)); // disable
  free(rig, vp, 2, true);
  assert.equal(rig.mem.read32(slot(2)), 0, 'no stale timer message');
});

test('two timers on one SINT: the second message waits for the first to be consumed', () => {
  const { rig, vp, at } = setup();
  vp.wrmsr(COUNT(0), 100n);
  vp.wrmsr(CONFIG(0), ENABLE | sintx(2));
  vp.wrmsr(COUNT(1), 100n);
  vp.wrmsr(CONFIG(1), ENABLE | sintx(2));
  at(10_000);
  assert.equal(timerMessage(rig, 2).index, 0);
  assert.equal(timerMessage(rig, 2).flags, 1);
  free(rig, vp, 2, true);
  assert.equal(timerMessage(rig, 2).index, 1);
  assert.equal(timerMessage(rig, 2).flags, 0);
});

test('an expiry with the SynIC disabled is lost; the deadline is the earliest timer', () => {
  const { rig, vp, at } = setup();
  vp.wrmsr(COUNT(0), 5000n);
  vp.wrmsr(CONFIG(0), ENABLE | sintx(2));
  vp.wrmsr(COUNT(1), 3000n);
  vp.wrmsr(CONFIG(1), ENABLE | sintx(2));
  assert.equal(vp.nextDeadlineNs(), 300_000);
  vp.wrmsr(HvMsr.SCONTROL, 0n);
  at(300_000);
  assert.equal(rig.mem.read32(slot(2)), 0);
  assert.equal(vp.rdmsr(CONFIG(1)), sintx(2));
  assert.equal(vp.nextDeadlineNs(), 500_000);
});
