/**
 * Cpu.queueEvent: an owner-queued event (KVM's injected exception, NMI or
 * interrupt) is delivered at the next instruction boundary of a running CPU,
 * before anything executes there; it is a re-injection, so RFLAGS.IF, NMI
 * blocking and exceptionIntercept do not hold it back; a halted CPU keeps it
 * until it wakes; an owner abort during delivery leaves it queued; INIT/reset
 * drops it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuRunState } from '../../src/x86/cpu.js';
import { EventKind } from '../../src/x86/interrupts.js';
import { ACCESS_EXEC, ACCESS_READ } from '../../src/x86/host.js';
import { CODE, KSTACK, SEL, STUBS, TestMachine, reg, rip } from './helpers/test-machine.js';

const RAX = 0;
const GP = { kind: EventKind.Exception, vector: 13, hasErrorCode: true, errorCode: 0x10 } as const;

function machine(): TestMachine {
  const m = new TestMachine();
  m.enterLong64();
  m.asm('.code64\n mov eax, 1\n hlt', CODE);
  return m;
}

test('a queued #GP is delivered before the instruction at RIP runs, with its error code (SDM 6.13)', () => {
  const m = machine();
  m.cpu.queueEvent(GP);
  m.runToHalt();
  assert.equal(m.stubVector(), 13);
  assert.deepEqual(m.stack64(3), [0x10n, BigInt(CODE), BigInt(SEL.code64)]);
  assert.equal(reg(m.cpu, RAX), 0n, 'mov eax, 1 did not run');
  assert.equal(m.cpu.queuedEvents.length, 0);
});

test('re-injection: exceptionIntercept is not consulted, IF = 0 and NMI blocking do not hold events back', () => {
  const m = machine();
  const seen: number[] = [];
  m.cpu.exceptionIntercept = (v) => { seen.push(v); return true; };
  m.cpu.setRflags(0x2);
  m.cpu.nmiBlocked = true;
  m.cpu.queueEvent({ kind: EventKind.External, vector: 0x40, hasErrorCode: false, errorCode: 0 });
  m.cpu.queueEvent({ kind: EventKind.Nmi, vector: 2, hasErrorCode: false, errorCode: 0 });
  m.cpu.queueEvent({ kind: EventKind.Exception, vector: 6, hasErrorCode: false, errorCode: 0 });
  m.runToHalt();
  assert.deepEqual(seen, []);
  assert.equal(m.stubVector(), 6, 'delivered in queue order; the last one is on top');
  // #UD interrupted the NMI stub's first instruction, which interrupted vector 0x40's.
  assert.deepEqual(m.stack64(1), [BigInt(STUBS + 16 * 2)]);
  assert.equal(m.host.of('ack').length, 0, 'nothing was taken from the interrupt controller');
});

test('an owner abort while delivering (a denied stack page) leaves the event queued and RIP unchanged', () => {
  const m = machine();
  m.host.perms.set((KSTACK - 1) >> 12, ACCESS_READ | ACCESS_EXEC);
  m.cpu.queueEvent(GP);
  m.cpu.run(100);
  assert.equal(m.host.of('memFault').length, 1);
  assert.equal(m.cpu.queuedEvents.length, 1);
  assert.equal(rip(m.cpu), BigInt(CODE));
  assert.equal(reg(m.cpu, 4), BigInt(KSTACK));
  m.host.perms.clear();
  m.runToHalt();
  assert.equal(m.stubVector(), 13);
});

test('a halted CPU keeps a queued event until it wakes; reset() drops it', () => {
  const m = machine();
  m.runToHalt();
  m.cpu.queueEvent(GP);
  assert.equal(m.cpu.run(100), 0);
  assert.equal(m.cpu.runState, CpuRunState.Halted);
  assert.equal(m.cpu.queuedEvents.length, 1);
  m.resume();
  m.runToHalt();
  assert.equal(m.stubVector(), 13);
  assert.deepEqual(m.stack64(2), [0x10n, BigInt(CODE + 6)], 'the frame points after the HLT');
  m.cpu.queueEvent(GP);
  m.cpu.reset();
  assert.equal(m.cpu.queuedEvents.length, 0);
});

test('an instruction\'s exception whose delivery the owner abandons is queued for the next run() (KVM keeps it as injected)', () => {
  const m = new TestMachine();
  m.enterLong64();
  m.asm('.code64\n ud2\n hlt', CODE);
  m.host.perms.set((KSTACK - 1) >> 12, ACCESS_READ | ACCESS_EXEC);
  m.cpu.run(100); // used to throw the owner's abort out of run()
  assert.equal(m.host.of('memFault').length, 1);
  assert.deepEqual(m.cpu.queuedEvents, [{ kind: EventKind.Exception, vector: 6, hasErrorCode: false, errorCode: 0 }]);
  assert.equal(rip(m.cpu), BigInt(CODE), 'RIP on the faulting instruction');
  m.host.perms.clear();
  m.runToHalt();
  assert.equal(m.stubVector(), 6);
  assert.deepEqual(m.stack64(2), [BigInt(CODE), BigInt(SEL.code64)]);
});
