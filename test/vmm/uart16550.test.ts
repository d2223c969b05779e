import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoBus } from '../../src/vmm/io-bus.js';
import { COM1_BASE, UART_PORT_COUNT, Uart16550 } from '../../src/vmm/devices/uart16550.js';

function setup() {
  const out: number[] = [];
  const uart = new Uart16550((b) => out.push(b));
  const bus = new IoBus();
  bus.register(COM1_BASE, UART_PORT_COUNT, uart, 'com1');
  return { out, uart, bus };
}

/** Prints like a polled driver: wait for LSR bit 5 (THR empty), then write THR. */
function print(bus: IoBus, text: string): void {
  for (const ch of text) {
    let spins = 0;
    while ((bus.read(COM1_BASE + 5, 1) & 0x20) === 0) if (++spins > 10) throw new Error('THR never empty');
    bus.write(COM1_BASE, 1, ch.charCodeAt(0));
  }
}

test('a driver init sequence with DLAB does not print the divisor (pc-platform-facts §2.2)', () => {
  const { out, uart, bus } = setup();
  // kvm-unit-tests lib/x86/io.c style: set DLAB, divisor 1 (115200 baud), clear DLAB, 8N1.
  const lcr = bus.read(COM1_BASE + 3, 1);
  bus.write(COM1_BASE + 3, 1, lcr | 0x80);
  bus.write(COM1_BASE + 0, 1, 0x01); // DLL
  bus.write(COM1_BASE + 1, 1, 0x00); // DLM
  // With DLAB set, offsets 0 and 1 read the divisor latch back.
  assert.equal(bus.read(COM1_BASE + 0, 1), 0x01);
  assert.equal(bus.read(COM1_BASE + 1, 1), 0x00);
  bus.write(COM1_BASE + 3, 1, bus.read(COM1_BASE + 3, 1) & ~0x80);
  bus.write(COM1_BASE + 1, 1, 0x00); // IER: no interrupts
  bus.write(COM1_BASE + 3, 1, 0x03); // LCR: 8N1
  bus.write(COM1_BASE + 2, 1, 0x00); // FCR
  bus.write(COM1_BASE + 4, 1, 0x03); // MCR: DTR | RTS
  assert.deepEqual(out, [], 'the divisor write (0x01) must not be output');
  assert.equal(uart.divisor, 1);
  print(bus, 'ok\n');
  assert.deepEqual(out, [0x6f, 0x6b, 0x0a]);
});

test('status registers: IIR 0x01, LSR 0x60, MSR 0xB0, RBR 0 (nothing received)', () => {
  const { bus } = setup();
  assert.equal(bus.read(COM1_BASE + 2, 1), 0x01);
  assert.equal(bus.read(COM1_BASE + 5, 1), 0x60);
  assert.equal(bus.read(COM1_BASE + 6, 1), 0xb0);
  assert.equal(bus.read(COM1_BASE + 0, 1), 0x00);
  // LSR and MSR are read-only.
  bus.write(COM1_BASE + 5, 1, 0x00);
  bus.write(COM1_BASE + 6, 1, 0x00);
  assert.equal(bus.read(COM1_BASE + 5, 1), 0x60);
  assert.equal(bus.read(COM1_BASE + 6, 1), 0xb0);
});

test('IER, LCR, MCR and SCR are stored and read back (16550 masks on IER and MCR)', () => {
  const { bus } = setup();
  bus.write(COM1_BASE + 1, 1, 0x05);
  bus.write(COM1_BASE + 3, 1, 0x1b);
  bus.write(COM1_BASE + 4, 1, 0x0b);
  bus.write(COM1_BASE + 7, 1, 0xa5);
  assert.equal(bus.read(COM1_BASE + 1, 1), 0x05);
  assert.equal(bus.read(COM1_BASE + 3, 1), 0x1b);
  assert.equal(bus.read(COM1_BASE + 4, 1), 0x0b);
  assert.equal(bus.read(COM1_BASE + 7, 1), 0xa5);
  // 16550 data sheet: IER bits 7-4 and MCR bits 7-5 are always 0.
  bus.write(COM1_BASE + 1, 1, 0xff);
  bus.write(COM1_BASE + 4, 1, 0xff & ~0x10);
  assert.equal(bus.read(COM1_BASE + 1, 1), 0x0f);
  assert.equal(bus.read(COM1_BASE + 4, 1), 0x0f);
});

test('IER and DLM share offset 1: DLAB selects which one is written', () => {
  const { bus } = setup();
  bus.write(COM1_BASE + 1, 1, 0x03); // IER
  bus.write(COM1_BASE + 3, 1, 0x80);
  bus.write(COM1_BASE + 1, 1, 0x12); // DLM
  bus.write(COM1_BASE + 0, 1, 0x34); // DLL
  assert.equal(bus.read(COM1_BASE + 1, 1), 0x12);
  bus.write(COM1_BASE + 3, 1, 0x03);
  assert.equal(bus.read(COM1_BASE + 1, 1), 0x03);
});

test('bytes written in loopback mode do not reach the line', () => {
  const { out, bus } = setup();
  bus.write(COM1_BASE + 4, 1, 0x10);
  bus.write(COM1_BASE, 1, 0x41);
  bus.write(COM1_BASE + 4, 1, 0x03);
  bus.write(COM1_BASE, 1, 0x42);
  assert.deepEqual(out, [0x42]);
});
