import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoBus } from '../../src/vmm/io-bus.js';
import { FW_CFG_PORT_COUNT, FW_CFG_SELECTOR_PORT, FwCfg, FwCfgError } from '../../src/vmm/devices/fw-cfg.js';

const SEL = 0x510;
const DATA = 0x511;

function setup(ramSize = 128 * 1024 * 1024, cpuCount = 4, maxCpus = 8) {
  const bus = new IoBus();
  bus.register(FW_CFG_SELECTOR_PORT, FW_CFG_PORT_COUNT, new FwCfg({ ramSize, cpuCount, maxCpus }), 'fw_cfg');
  return bus;
}

/** Selects `key` with a 16-bit OUT, then reads `n` bytes with 8-bit INs, like lib/x86/fwcfg.c. */
function readItem(bus: IoBus, key: number, n: number): number[] {
  bus.write(SEL, 2, key);
  return Array.from({ length: n }, () => bus.read(DATA, 1));
}

// pc-platform-facts §2.4: keys, little-endian integers, 0 past the end.
test('key 0x00 reads the signature "QEMU", then zeros', () => {
  assert.deepEqual(readItem(setup(), 0x00, 6), [0x51, 0x45, 0x4d, 0x55, 0, 0]);
});

test('key 0x03 reads the RAM size as a little-endian u64', () => {
  assert.deepEqual(readItem(setup(128 * 2 ** 20), 0x03, 9), [0, 0, 0, 0x08, 0, 0, 0, 0, 0]);
  assert.deepEqual(readItem(setup(6 * 2 ** 30), 0x03, 8), [0, 0, 0, 0x80, 0x01, 0, 0, 0]);
});

test('key 0x05 reads the CPU count as a u16 and key 0x0F the max CPUs', () => {
  const bus = setup(2 ** 27, 260, 300);
  assert.deepEqual(readItem(bus, 0x05, 3), [0x04, 0x01, 0]);
  assert.deepEqual(readItem(bus, 0x0f, 3), [0x2c, 0x01, 0]);
});

test('key 0x11 (kvm-unit-tests max RAM) reads as u64 0', () => {
  assert.deepEqual(readItem(setup(), 0x11, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
});

test('key 0x01 (interface ID) reads 1: traditional interface, no DMA', () => {
  assert.deepEqual(readItem(setup(), 0x01, 4), [1, 0, 0, 0]);
});

test('an unknown key reads 0, and so does a read before any select', () => {
  const bus = setup();
  assert.equal(bus.read(DATA, 1), 0);
  assert.deepEqual(readItem(bus, 0x1234, 2), [0, 0]);
  assert.deepEqual(readItem(bus, 0x8000, 2), [0, 0]);
});

test('selecting again rewinds the offset', () => {
  const bus = setup();
  assert.deepEqual(readItem(bus, 0x00, 2), [0x51, 0x45]);
  assert.deepEqual(readItem(bus, 0x00, 1), [0x51]);
});

test('only 16-bit writes select and only 8-bit reads read data; others act as an empty bus', () => {
  const bus = setup();
  bus.write(SEL, 2, 0x05);
  bus.write(SEL, 1, 0x00); // 8-bit write: dropped, key 5 stays selected
  assert.equal(bus.read(DATA, 2), 0xffff);
  assert.equal(bus.read(DATA, 4), 0xffffffff);
  assert.equal(bus.read(DATA, 1), 0x04);
});

test('bad configurations are refused', () => {
  assert.throws(() => new FwCfg({ ramSize: -1, cpuCount: 1, maxCpus: 1 }), FwCfgError);
  assert.throws(() => new FwCfg({ ramSize: 4096, cpuCount: 0, maxCpus: 1 }), {
    message: 'fw_cfg CPU count must be an integer from 1 to 65535, got 0',
  });
  assert.throws(() => new FwCfg({ ramSize: 4096, cpuCount: 1, maxCpus: 65536 }), FwCfgError);
});

test('as in QEMU\'s combined fw_cfg I/O region, an 8-bit read of 0x510 also reads data', () => {
  const bus = setup();
  bus.write(SEL, 2, 0x00);
  assert.deepEqual([bus.read(SEL, 1), bus.read(DATA, 1), bus.read(SEL, 1)], [0x51, 0x45, 0x4d]);
});
