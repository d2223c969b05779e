// QEMU hyperv-testdev at port 0x3000 (pc-platform-facts.md §2.6): command word
// bits 7:0 SINT, 15:8 VP index, 23:16 command, 31:24 connection id; commands 1-7.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvMsr, HvStatus } from '../../src/spec/tlfs.js';
import { IoBus } from '../../src/vmm/io-bus.js';
import {
  HYPERV_TESTDEV_PORT,
  HYPERV_TESTDEV_PORT_COUNT,
  hvTestDevCommand,
  HvTestDevCommand as Cmd,
  HypervTestDev,
} from '../../src/vmm/devices/hyperv-testdev.js';
import { makeRig, SYNIC_FLAGS } from '../kvm/hyperv-fixture.js';

const SIM = 0x10000;
const SIEF = 0x11000;

function setup() {
  const rig = makeRig(SYNIC_FLAGS, { count: 2 });
  for (const vp of rig.vps) {
    vp.wrmsr(HvMsr.SIMP, BigInt(SIM + vp.index * 0x2000) | 1n);
    vp.wrmsr(HvMsr.SIEFP, BigInt(SIEF + vp.index * 0x2000) | 1n);
    vp.wrmsr(HvMsr.SCONTROL, 1n);
    vp.wrmsr(HvMsr.SINT0 + 1, 0xb1n);
  }
  const dev = new HypervTestDev(rig.partition);
  const bus = new IoBus();
  bus.register(HYPERV_TESTDEV_PORT, HYPERV_TESTDEV_PORT_COUNT, dev, 'hyperv-testdev');
  const out = (cmd: number, vp: number, sint: number, conn = 0) => bus.write(HYPERV_TESTDEV_PORT, 4, hvTestDevCommand(cmd, vp, sint, conn));
  return { rig, dev, bus, out };
}

test('command word encoding matches kvm-unit-tests synic_ctl', () => {
  assert.equal(hvTestDevCommand(Cmd.MsgConnCreate, 1, 2, 0x33), 0x3304_0102);
  assert.equal(hvTestDevCommand(Cmd.SintRouteSetSint, 0xff, 0xf, 0xff), 0xff03_ff0f);
});

test('SINT route: SET asserts the SINT on the routed VP; no route, no interrupt', () => {
  const { rig, dev, out } = setup();
  out(Cmd.SintRouteSetSint, 1, 1);
  assert.equal(rig.vcpus[1]!.irr(0xb1), false, 'no route yet');
  assert.equal(dev.ignored, 1);
  out(Cmd.SintRouteCreate, 1, 1);
  out(Cmd.SintRouteSetSint, 1, 1);
  assert.equal(rig.vcpus[1]!.irr(0xb1), true);
  assert.equal(rig.vcpus[0]!.irr(0xb1), false);
  out(Cmd.SintRouteDestroy, 1, 1);
  rig.vcpus[1]!.take();
  out(Cmd.SintRouteSetSint, 1, 1);
  assert.equal(rig.vcpus[1]!.irr(0xb1), false, 'destroyed');
});

test('message connection: HvPostMessage to it lands in the (VP, SINT) slot', () => {
  const { rig, out } = setup();
  out(Cmd.MsgConnCreate, 1, 1, 0x21);
  assert.equal(rig.partition.postMessage(0x21, 0x5, Uint8Array.from([0xaa, 0xbb])), HvStatus.SUCCESS);
  const slot = SIM + 0x2000 + 256;
  assert.deepEqual([...rig.mem.read(slot, 18)], [5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb]);
  assert.equal(rig.vcpus[1]!.irr(0xb1), true);
  // A second message while the slot is busy: queued, MessagePending, delivered on EOM.
  assert.equal(rig.partition.postMessage(0x21, 0x6, new Uint8Array()), HvStatus.SUCCESS);
  assert.equal(rig.mem.read8(slot + 5), 1);
  rig.mem.write32(slot, 0);
  rig.vps[1]!.wrmsr(HvMsr.EOM, 0n);
  assert.equal(rig.mem.read32(slot), 6);
  out(Cmd.MsgConnDestroy, 0, 0, 0x21);
  assert.equal(rig.partition.postMessage(0x21, 0x5, new Uint8Array()), HvStatus.INVALID_CONNECTION_ID);
});

test('event connection: HvSignalEvent sets flag <conn id>, interrupting only on 0 → 1', () => {
  const { rig, out } = setup();
  out(Cmd.EvtConnCreate, 0, 1, 0x13);
  assert.equal(rig.partition.signalEvent(0x13, 0), HvStatus.SUCCESS);
  // flag 0x13 = byte 2 bit 3 of SINT 1's 256-byte area
  assert.equal(rig.mem.read8(SIEF + 256 + 2), 0x08);
  assert.equal(rig.vcpus[0]!.take(), 0xb1);
  rig.vcpus[0]!.eoi();
  assert.equal(rig.partition.signalEvent(0x13, 0), HvStatus.SUCCESS);
  assert.equal(rig.vcpus[0]!.irr(0xb1), false, 'already set');
  assert.equal(rig.partition.signalEvent(0x13, 1), HvStatus.INVALID_PARAMETER, 'the connection has one flag');
  out(Cmd.EvtConnDestroy, 0, 0, 0x13);
  assert.equal(rig.partition.signalEvent(0x13, 0), HvStatus.INVALID_CONNECTION_ID);
});

test('bad commands are ignored: unknown VP, duplicates, missing connections, other sizes; reads are 0', () => {
  const { rig, dev, bus, out } = setup();
  out(Cmd.MsgConnCreate, 5, 1, 1); // VP 5 does not exist
  out(Cmd.MsgConnCreate, 0, 1, 2);
  out(Cmd.MsgConnCreate, 0, 1, 2); // duplicate
  out(Cmd.EvtConnDestroy, 0, 0, 9); // missing
  out(Cmd.SintRouteCreate, 0, 1);
  out(Cmd.SintRouteCreate, 0, 1); // duplicate route
  out(0x42, 0, 0); // unknown command
  out(Cmd.SintRouteCreate, 0, 0x10); // SINT 16
  bus.write(HYPERV_TESTDEV_PORT, 2, 0x0301);
  assert.equal(dev.ignored, 7);
  assert.equal(rig.partition.connections.messageConnection(2)?.sint, 1);
  assert.equal(bus.read(HYPERV_TESTDEV_PORT, 4), 0);
});
