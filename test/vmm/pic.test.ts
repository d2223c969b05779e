import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoBus } from '../../src/vmm/io-bus.js';
import { PIC_MASTER_BASE, PIC_PORT_COUNT, PIC_SLAVE_BASE, Pic8259 } from '../../src/vmm/devices/pic.js';

function setup() {
  const master = new Pic8259(PIC_MASTER_BASE);
  const slave = new Pic8259(PIC_SLAVE_BASE);
  const bus = new IoBus();
  bus.register(PIC_MASTER_BASE, PIC_PORT_COUNT, master, 'pic-master');
  bus.register(PIC_SLAVE_BASE, PIC_PORT_COUNT, slave, 'pic-slave');
  return { master, slave, bus };
}

test('mask writes of 0xFF to 0x21 and 0xA1 read back 0xFF (pc-platform-facts §2.1)', () => {
  const { bus } = setup();
  assert.equal(bus.read(0x21, 1), 0x00); // reset mask 0, as QEMU's i8259
  bus.write(0x21, 1, 0xff);
  bus.write(0xa1, 1, 0xff);
  assert.equal(bus.read(0x21, 1), 0xff);
  assert.equal(bus.read(0xa1, 1), 0xff);
});

test('a cascade init ICW1..ICW4 is consumed, then data writes set the mask (8259A data sheet)', () => {
  const { master, slave, bus } = setup();
  bus.write(0x21, 1, 0xff);
  bus.write(0x20, 1, 0x11); // ICW1: init, cascade, ICW4 needed; clears the mask
  assert.equal(bus.read(0x21, 1), 0x00);
  assert.equal(master.initialising, true);
  bus.write(0x21, 1, 0x20); // ICW2: vectors 0x20-0x27
  bus.write(0x21, 1, 0x04); // ICW3: slave on IR2
  bus.write(0x21, 1, 0x01); // ICW4: 8086 mode
  assert.equal(master.initialising, false);
  assert.equal(master.vectorBase, 0x20);
  assert.equal(master.icw3, 0x04);
  assert.equal(master.icw4, 0x01);
  assert.equal(bus.read(0x21, 1), 0x00, 'ICW writes are not the mask');
  bus.write(0x21, 1, 0xfb);
  assert.equal(bus.read(0x21, 1), 0xfb);
  assert.equal(slave.imr, 0, 'the slave is a separate chip');
});

test('single mode skips ICW3 and no-ICW4 init ends after ICW2/ICW3', () => {
  const { master, slave, bus } = setup();
  bus.write(0x20, 1, 0x13); // single, ICW4 needed: ICW2, ICW4
  bus.write(0x21, 1, 0x08);
  bus.write(0x21, 1, 0x01);
  bus.write(0x21, 1, 0xaa);
  assert.equal(master.vectorBase, 0x08);
  assert.equal(master.icw3, 0);
  assert.equal(master.icw4, 0x01);
  assert.equal(master.imr, 0xaa);
  bus.write(0xa0, 1, 0x10); // cascade, no ICW4: ICW2, ICW3
  bus.write(0xa1, 1, 0x70);
  bus.write(0xa1, 1, 0x02);
  bus.write(0xa1, 1, 0x55);
  assert.equal(slave.vectorBase, 0x70);
  assert.equal(slave.icw3, 0x02);
  assert.equal(slave.imr, 0x55);
});

test('IRR, ISR and poll reads are 0: the PIC never delivers interrupts; OCW2 EOI is accepted', () => {
  const { master, bus } = setup();
  bus.write(0x20, 1, 0x0a); // OCW3: read IRR
  assert.equal(bus.read(0x20, 1), 0);
  bus.write(0x20, 1, 0x0b); // OCW3: read ISR
  assert.equal(master.readIsr, true);
  assert.equal(bus.read(0x20, 1), 0);
  bus.write(0x20, 1, 0x0c); // OCW3: poll
  assert.equal(bus.read(0x20, 1), 0);
  bus.write(0x20, 1, 0x20); // OCW2: non-specific EOI
  bus.write(0x21, 1, 0x12);
  assert.equal(bus.read(0x21, 1), 0x12);
});
