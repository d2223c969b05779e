import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoBus, IoBusError, type PioDevice, type PioSize } from '../../src/vmm/io-bus.js';

/** Records every access it gets and answers reads with a fixed value. */
class Recorder implements PioDevice {
  log: string[] = [];
  constructor(private readonly answer: number) {}
  pioRead(port: number, size: PioSize): number {
    this.log.push(`r ${port.toString(16)}/${size}`);
    return this.answer;
  }
  pioWrite(port: number, size: PioSize, value: number): void {
    this.log.push(`w ${port.toString(16)}/${size}=${value.toString(16)}`);
  }
}

test('unclaimed reads return all-ones for the access size (pc-platform-facts §2.1)', () => {
  const bus = new IoBus();
  assert.equal(bus.read(0x80, 1), 0xff);
  assert.equal(bus.read(0x80, 2), 0xffff);
  assert.equal(bus.read(0x80, 4), 0xffffffff);
  assert.equal(bus.nameAt(0x80), undefined);
});

test('unclaimed writes are ignored and do not reach neighbouring devices', () => {
  const bus = new IoBus();
  const dev = new Recorder(0);
  bus.register(0x3f8, 8, dev, 'uart');
  bus.write(0x3f7, 1, 0x41);
  bus.write(0x400, 4, 0x12345678);
  assert.deepEqual(dev.log, []);
});

test('accesses in a registered range reach the device with the absolute port and size', () => {
  const bus = new IoBus();
  const dev = new Recorder(0x5a);
  bus.register(0x510, 2, dev, 'fw_cfg');
  bus.write(0x510, 2, 0x0005);
  assert.equal(bus.read(0x511, 1), 0x5a);
  assert.equal(bus.nameAt(0x511), 'fw_cfg');
  assert.deepEqual(dev.log, ['w 510/2=5', 'r 511/1']);
});

test('values are unsigned and masked to the access size', () => {
  const bus = new IoBus();
  const wide = new Recorder(-1); // a device returning a sign-extended value
  bus.register(0x100, 4, wide, 'wide');
  assert.equal(bus.read(0x100, 1), 0xff);
  assert.equal(bus.read(0x100, 2), 0xffff);
  assert.equal(bus.read(0x100, 4), 0xffffffff);
  bus.write(0x100, 1, 0x1234);
  bus.write(0x100, 4, -2);
  assert.deepEqual(wide.log.slice(3), ['w 100/1=34', 'w 100/4=fffffffe']);
});

test('overlapping registrations throw and name both devices', () => {
  const bus = new IoBus();
  bus.register(0x20, 2, new Recorder(0), 'pic-master');
  assert.throws(() => bus.register(0x21, 4, new Recorder(0), 'other'), {
    name: 'IoBusError',
    message: 'I/O range 0x21-0x24 for other overlaps pic-master at port 0x21',
  });
  // The refused registration claimed nothing.
  assert.equal(bus.read(0x22, 1), 0xff);
  bus.register(0x22, 2, new Recorder(7), 'next');
  assert.equal(bus.read(0x22, 1), 7);
});

test('registrations outside the 64 Ki port space or of zero length throw', () => {
  const bus = new IoBus();
  assert.throws(() => bus.register(0xfffe, 4, new Recorder(0), 'edge'), IoBusError);
  assert.throws(() => bus.register(0x10, 0, new Recorder(0), 'empty'), IoBusError);
  assert.throws(() => bus.register(-1, 1, new Recorder(0), 'neg'), IoBusError);
  bus.register(0xfffc, 4, new Recorder(3), 'top');
  assert.equal(bus.read(0xffff, 1), 3);
});
