import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoBus } from '../../src/vmm/io-bus.js';
import { DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, DebugExit, qemuExitStatus } from '../../src/vmm/devices/debug-exit.js';

function setup() {
  const exits: number[] = [];
  const dev = new DebugExit((v) => exits.push(v));
  const bus = new IoBus();
  bus.register(DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, dev, 'isa-debug-exit');
  return { exits, dev, bus };
}

test('a 32-bit OUT to 0xF4 reports the raw value once (pc-platform-facts §2.3)', () => {
  const { exits, dev, bus } = setup();
  assert.equal(dev.exitValue, undefined);
  bus.write(0xf4, 4, 1);
  assert.deepEqual(exits, [1]);
  assert.equal(dev.exitValue, 1);
  // A later write (another CPU) does not change the result.
  bus.write(0xf4, 4, 0);
  assert.deepEqual(exits, [1]);
  assert.equal(dev.exitValue, 1);
});

test('the raw value is unsigned 32-bit', () => {
  const { exits, bus } = setup();
  bus.write(0xf4, 4, 0xdeadbeef);
  assert.deepEqual(exits, [0xdeadbeef]);
});

test('QEMU exit status is (value << 1) | 1: kvm-unit-tests codes 0, 1, 38, 63 -> 1, 3, 77, 127', () => {
  assert.equal(qemuExitStatus(0), 1);
  assert.equal(qemuExitStatus(1), 3);
  assert.equal(qemuExitStatus(38), 77);
  assert.equal(qemuExitStatus(63), 127);
  // The host keeps 8 bits of exit((v << 1) | 1).
  assert.equal(qemuExitStatus(0x80), 1);
  assert.equal(qemuExitStatus(0x7f), 0xff);
});

test('byte-sized writes anywhere in the 4-port window also exit; reads return 0', () => {
  const { exits, bus } = setup();
  assert.equal(bus.read(0xf4, 4), 0);
  bus.write(0xf5, 1, 0x1ff);
  assert.deepEqual(exits, [0xff]);
});
