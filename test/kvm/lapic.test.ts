// Local APIC unit tests. Rules are cited from Intel SDM vol. 3A ch. 10 ("APIC")
// and pc-platform-facts.md §2.5 ("fact sheet"); all time comes from a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalApic, type ApicBus, type ApicClock } from '../../src/kvm/lapic.js';
import { ApicError, timerDivisor, x2apicLogicalId } from '../../src/kvm/lapic-regs.js';

class FakeClock implements ApicClock {
  ns = 0;
  readonly tscHz = 2_000_000_000; // TSC = 2 × ns
  nowNs(): number {
    return this.ns;
  }
  readTsc(): number {
    return this.ns * 2;
  }
}

interface SentIpi {
  from: LocalApic;
  icrLow: number;
  destination: number;
}

class RecordingBus implements ApicBus {
  readonly sent: SentIpi[] = [];
  sendIpi(from: LocalApic, icrLow: number, destination: number): void {
    this.sent.push({ from, icrLow, destination });
  }
}

function make(opts: { id?: number; isBsp?: boolean; apicHz?: number; physAddrBits?: number } = {}) {
  const clock = new FakeClock();
  const bus = new RecordingBus();
  const apic = new LocalApic({
    id: opts.id ?? 0,
    isBsp: opts.isBsp ?? true,
    bus,
    clock,
    ...(opts.apicHz !== undefined ? { apicHz: opts.apicHz } : {}),
    ...(opts.physAddrBits !== undefined ? { physAddrBits: opts.physAddrBits } : {}),
  });
  let pendingCalls = 0;
  apic.onPending = () => {
    pendingCalls++;
  };
  return { apic, clock, bus, pending: () => pendingCalls };
}

/** xAPIC mode, SPIV = 0x1FF (software enabled), as kvm-unit-tests' enable_apic() does. */
function makeEnabled(opts: Parameters<typeof make>[0] = {}) {
  const r = make(opts);
  r.apic.mmioWrite(0xf0, 0x1ff);
  return r;
}

function toX2apic(apic: LocalApic): void {
  assert.equal(apic.writeApicBase(0xfee00000n | 0x800n | 0x400n | (apic.readApicBase() & 0x100n)), true);
}

const irrBit = (apic: LocalApic, v: number) => ((apic.mmioRead(0x200 + (v >> 5) * 0x10) >>> (v & 31)) & 1) === 1;
const isrBit = (apic: LocalApic, v: number) => ((apic.mmioRead(0x100 + (v >> 5) * 0x10) >>> (v & 31)) & 1) === 1;
const tmrBit = (apic: LocalApic, v: number) => ((apic.mmioRead(0x180 + (v >> 5) * 0x10) >>> (v & 31)) & 1) === 1;

// ------------------------------------------------------------------ reset state

test('power-up register values (SDM 10.4.7.1, 10.12.5.1; fact sheet §2.5 table)', () => {
  const { apic } = make({ id: 3, isBsp: false });
  assert.equal(apic.mode, 'xapic'); // "on coming out of reset ... enabled and in xAPIC mode"
  assert.equal(apic.readApicBase(), 0xfee00800n); // EN, default base, not BSP
  assert.equal(apic.mmioRead(0x20), 0x03000000); // xAPIC ID in bits 31:24
  assert.equal(apic.mmioRead(0x30), 0x00050014); // version 0x14, max LVT entry 5
  assert.equal(apic.mmioRead(0x80), 0); // TPR
  assert.equal(apic.mmioRead(0xa0), 0); // PPR
  assert.equal(apic.mmioRead(0xd0), 0); // LDR
  assert.equal(apic.mmioRead(0xe0), 0xffffffff); // DFR all 1s
  assert.equal(apic.mmioRead(0xf0), 0xff); // SPIV 0xFF: software disabled
  for (let off = 0x100; off < 0x280; off += 0x10) assert.equal(apic.mmioRead(off), 0, `ISR/TMR/IRR ${off.toString(16)}`);
  assert.equal(apic.mmioRead(0x280), 0); // ESR
  assert.equal(apic.mmioRead(0x300), 0); // ICR low
  assert.equal(apic.mmioRead(0x310), 0); // ICR high
  for (let off = 0x320; off <= 0x370; off += 0x10) assert.equal(apic.mmioRead(off), 0x10000, `LVT ${off.toString(16)}`);
  assert.equal(apic.mmioRead(0x380), 0); // initial count
  assert.equal(apic.mmioRead(0x390), 0); // current count
  assert.equal(apic.mmioRead(0x3e0), 0); // divide config
  assert.equal(apic.nmiPending, false);
  assert.equal(apic.initPending, false);
  assert.equal(apic.sipiVector, -1);
});

test('BSP flag is bit 8 of IA32_APIC_BASE (fact sheet §2.5)', () => {
  assert.equal(make({ isBsp: true }).apic.readApicBase(), 0xfee00900n);
});

test('constructor rejects bad IDs and frequencies with ApicError', () => {
  const clock = new FakeClock();
  const bus = new RecordingBus();
  assert.throws(() => new LocalApic({ id: 0xffffffff, isBsp: false, bus, clock }), ApicError); // 0xFFFFFFFF is reserved (SDM 10.12.1.3)
  assert.throws(() => new LocalApic({ id: -1, isBsp: false, bus, clock }), ApicError);
  assert.throws(() => new LocalApic({ id: 0, isBsp: false, bus, clock, apicHz: 0 }), ApicError);
  assert.throws(() => new LocalApic({ id: 0, isBsp: false, bus, clock, apicHz: 1.5 }), ApicError);
});

test('INIT reset keeps the APIC ID and base and re-initialises everything else (SDM 10.4.7.3)', () => {
  const { apic } = makeEnabled({ id: 1 });
  apic.mmioWrite(0x20, 0x07000000); // xAPIC ID is writable
  apic.mmioWrite(0x80, 0x20);
  apic.mmioWrite(0xd0, 0x01000000);
  apic.mmioWrite(0xe0, 0x0fffffff);
  apic.mmioWrite(0x320, 0x30);
  apic.mmioWrite(0x380, 1000);
  apic.mmioWrite(0x3e0, 0xb);
  apic.acceptFixed(0x40);
  apic.acknowledge(0x40);
  apic.acceptFixed(0x50);
  apic.reset();
  assert.equal(apic.mmioRead(0x20), 0x07000000);
  assert.equal(apic.readApicBase(), 0xfee00900n);
  assert.equal(apic.mmioRead(0x80), 0);
  assert.equal(apic.mmioRead(0xd0), 0);
  assert.equal(apic.mmioRead(0xe0), 0xffffffff);
  assert.equal(apic.mmioRead(0xf0), 0xff);
  assert.equal(apic.mmioRead(0x320), 0x10000);
  assert.equal(apic.mmioRead(0x380), 0);
  assert.equal(apic.mmioRead(0x390), 0);
  assert.equal(apic.mmioRead(0x3e0), 0);
  assert.equal(isrBit(apic, 0x40), false);
  assert.equal(irrBit(apic, 0x50), false);
  assert.equal(apic.pendingVector(), -1);
});

test('INIT in x2APIC mode keeps x2APIC mode (SDM 10.12.5.1)', () => {
  const { apic } = makeEnabled({ id: 2 });
  toX2apic(apic);
  apic.reset();
  assert.equal(apic.mode, 'x2apic');
  assert.equal(apic.rdmsr(0x802), 2n);
  assert.equal(apic.rdmsr(0x80f), 0xffn);
});

// ------------------------------------------------------------------ priorities and delivery

test('PPR = TPR when TPR class >= highest ISR class, else ISR class with subclass 0 (SDM 10.8.3.1)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0x80, 0x35);
  assert.equal(apic.mmioRead(0xa0), 0x35); // no ISR bit: PPR = TPR
  apic.acceptFixed(0x41);
  apic.mmioWrite(0x80, 0x00);
  apic.acknowledge(0x41);
  apic.mmioWrite(0x80, 0x35);
  assert.equal(apic.mmioRead(0xa0), 0x40); // ISR class 4 > TPR class 3
  apic.mmioWrite(0x80, 0x45);
  assert.equal(apic.mmioRead(0xa0), 0x45); // equal class: this model keeps TPR[3:0]
  apic.mmioWrite(0x80, 0x50);
  assert.equal(apic.mmioRead(0xa0), 0x50);
});

test('only vectors whose class exceeds the PPR class are delivered (SDM 10.8.3.1)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0x80, 0x40);
  apic.acceptFixed(0x45);
  assert.equal(apic.pendingVector(), -1); // class 4 == PPR class 4
  apic.acceptFixed(0x3f);
  assert.equal(apic.pendingVector(), -1); // class 3 < 4
  apic.mmioWrite(0x80, 0x3f);
  assert.equal(apic.pendingVector(), 0x45); // highest IRR vector first
  apic.acknowledge(0x45);
  assert.equal(isrBit(apic, 0x45), true);
  assert.equal(irrBit(apic, 0x45), false);
  assert.equal(apic.mmioRead(0xa0), 0x40); // PPR rises to the in-service class
  assert.equal(apic.pendingVector(), -1); // 0x3f: class 3 < 4
});

test('nested interrupts: a higher class preempts, EOI clears the highest ISR bit first (SDM 10.8.4, 10.8.5)', () => {
  const { apic } = makeEnabled();
  apic.acceptFixed(0x30);
  assert.equal(apic.pendingVector(), 0x30);
  apic.acknowledge(0x30);
  apic.acceptFixed(0x31);
  assert.equal(apic.pendingVector(), -1); // same class as in-service 0x30
  apic.acceptFixed(0x50);
  assert.equal(apic.pendingVector(), 0x50); // higher class preempts
  apic.acknowledge(0x50);
  assert.equal(apic.mmioRead(0xa0), 0x50);
  apic.mmioWrite(0xb0, 0); // EOI -> clears 0x50
  assert.equal(isrBit(apic, 0x50), false);
  assert.equal(isrBit(apic, 0x30), true);
  assert.equal(apic.mmioRead(0xa0), 0x30);
  assert.equal(apic.pendingVector(), -1);
  apic.mmioWrite(0xb0, 0); // EOI -> clears 0x30
  assert.equal(isrBit(apic, 0x30), false);
  assert.equal(apic.pendingVector(), 0x31);
  apic.mmioWrite(0xb0, 0); // EOI with empty ISR changes nothing
  assert.equal(apic.pendingVector(), 0x31);
});

test('IRR and ISR queue one interrupt each per vector; more are collapsed (SDM 10.8.4)', () => {
  const { apic } = makeEnabled();
  apic.acceptFixed(0x60);
  apic.acknowledge(0x60);
  apic.acceptFixed(0x60);
  apic.acceptFixed(0x60);
  assert.equal(irrBit(apic, 0x60), true);
  assert.equal(isrBit(apic, 0x60), true);
  apic.mmioWrite(0xb0, 0);
  assert.equal(apic.pendingVector(), 0x60);
  apic.acknowledge(0x60);
  assert.equal(apic.pendingVector(), -1);
});

test('acknowledging a vector that is not pending is an ApicError', () => {
  const { apic } = makeEnabled();
  assert.throws(() => apic.acknowledge(0x40), ApicError);
  assert.throws(() => apic.acceptFixed(256), ApicError);
});

test('CR8 reads and writes TPR[7:4] (fact sheet §2.5; SDM 10.8.6.1)', () => {
  const { apic } = makeEnabled();
  apic.writeCr8(5);
  assert.equal(apic.mmioRead(0x80), 0x50);
  apic.mmioWrite(0x80, 0x7f);
  assert.equal(apic.readCr8(), 7);
  apic.writeCr8(0);
  assert.equal(apic.mmioRead(0x80), 0); // TPR[3:0] cleared too
  assert.throws(() => apic.writeCr8(16), ApicError);
});

test('onPending fires on acceptance and when EOI or a TPR drop unblocks an interrupt', () => {
  const { apic, pending } = makeEnabled();
  apic.writeCr8(15);
  apic.acceptFixed(0x80);
  assert.equal(pending(), 1);
  assert.equal(apic.pendingVector(), -1);
  apic.writeCr8(0);
  assert.equal(pending(), 2); // TPR drop made 0x80 deliverable
  apic.acknowledge(0x80);
  apic.acceptFixed(0x81);
  assert.equal(pending(), 3);
  apic.mmioWrite(0xb0, 0);
  assert.equal(pending(), 4); // EOI made 0x81 deliverable
});

test('level-triggered acceptance sets TMR; its EOI is reported through onEoi (SDM 10.8.4)', () => {
  const { apic } = makeEnabled();
  const eois: number[] = [];
  apic.onEoi = (v) => eois.push(v);
  apic.acceptFixed(0x70, true);
  assert.equal(tmrBit(apic, 0x70), true);
  apic.acknowledge(0x70);
  apic.mmioWrite(0xb0, 0);
  assert.deepEqual(eois, [0x70]);
  apic.acceptFixed(0x70, false); // edge acceptance clears the TMR bit
  assert.equal(tmrBit(apic, 0x70), false);
  apic.acknowledge(0x70);
  apic.mmioWrite(0xb0, 0);
  assert.deepEqual(eois, [0x70]);
});

test('APR for lowest-priority arbitration (SDM 10.6.2.4)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0x80, 0x25);
  assert.equal(apic.mmioRead(0x90), 0x25); // TPR >= IRRV class and > ISRV class
  apic.acceptFixed(0x61);
  assert.equal(apic.mmioRead(0x90), 0x60); // IRRV class above TPR
  apic.acknowledge(0x61);
  assert.equal(apic.arbitrationPriority(), 0x60); // ISRV class above TPR
});

// ------------------------------------------------------------------ software enable (SPIV)

test('software disable forces LVT masks, drops new fixed interrupts, keeps held ones (SDM 10.4.7.2)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0x320, 0x30);
  apic.mmioWrite(0x350, 0x31);
  assert.equal(apic.mmioRead(0x320), 0x30);
  apic.acceptFixed(0x60);
  apic.mmioWrite(0xf0, 0x0ff); // clear bit 8
  assert.equal(apic.mmioRead(0x320), 0x10030);
  assert.equal(apic.mmioRead(0x350), 0x10031);
  apic.mmioWrite(0x320, 0x30); // cannot unmask while disabled
  assert.equal(apic.mmioRead(0x320), 0x10030);
  apic.acceptFixed(0x70);
  assert.equal(irrBit(apic, 0x70), false); // not accepted
  assert.equal(apic.pendingVector(), 0x60); // "held and require ... handling by the CPU"
  apic.deliver(0x00000500); // INIT still answered
  apic.deliver(0x00000400); // NMI
  apic.deliver(0x00000612); // SIPI vector 0x12
  assert.equal(apic.initPending, true);
  assert.equal(apic.nmiPending, true);
  assert.equal(apic.sipiVector, 0x12);
  apic.mmioWrite(0xf0, 0x1ff);
  assert.equal(apic.mmioRead(0x320), 0x10030); // re-enable leaves masks set
  apic.mmioWrite(0x320, 0x30);
  assert.equal(apic.mmioRead(0x320), 0x30);
});

test('SPIV stores bits 9:0 (vector, enable, focus)', () => {
  const { apic } = make();
  apic.mmioWrite(0xf0, 0xfffff3ff);
  assert.equal(apic.mmioRead(0xf0), 0x3ff);
  assert.equal(apic.softwareEnabled, true);
});

// ------------------------------------------------------------------ timer

const DIVIDES: Array<[number, number]> = [
  // fact sheet §2.5: bits 3,1,0: 000 ÷2, 001 ÷4, 010 ÷8, 011 ÷16, 100 ÷32, 101 ÷64, 110 ÷128, 111 ÷1
  [0x0, 2],
  [0x1, 4],
  [0x2, 8],
  [0x3, 16],
  [0x8, 32],
  [0x9, 64],
  [0xa, 128],
  [0xb, 1],
];

test('divide configuration encoding (fact sheet §2.5)', () => {
  for (const [dcr, div] of DIVIDES) assert.equal(timerDivisor(dcr), div, `DCR ${dcr}`);
});

for (const [dcr, div] of DIVIDES) {
  test(`one-shot timer ÷${div}: current count at exact times, fires once at zero and stays 0 (SDM 10.5.4)`, () => {
    const { apic, clock } = makeEnabled(); // apicHz 1e9: one input tick per ns
    clock.ns = 100;
    apic.mmioWrite(0x3e0, dcr);
    apic.mmioWrite(0x320, 0x40); // one-shot, vector 0x40
    apic.mmioWrite(0x380, 1000);
    assert.equal(apic.mmioRead(0x390), 1000);
    assert.equal(apic.nextTimerDeadlineNs(), 100 + 1000 * div);
    clock.ns = 100 + 250 * div + div - 1;
    assert.equal(apic.mmioRead(0x390), 750); // counts down once per `div` input ticks
    clock.ns = 100 + 1000 * div - 1;
    apic.tick();
    assert.equal(apic.mmioRead(0x390), 1);
    assert.equal(irrBit(apic, 0x40), false);
    clock.ns = 100 + 1000 * div;
    apic.tick();
    assert.equal(irrBit(apic, 0x40), true);
    assert.equal(apic.mmioRead(0x390), 0);
    assert.equal(apic.nextTimerDeadlineNs(), Infinity);
    clock.ns += 10 * 1000 * div;
    assert.equal(apic.mmioRead(0x390), 0); // one-shot stays at 0
    assert.equal(apic.mmioRead(0x380), 1000);
  });
}

test('periodic timer reloads and coalesces late ticks into one IRR bit (SDM 10.5.4, 10.8.4)', () => {
  const { apic, clock, pending } = makeEnabled();
  apic.mmioWrite(0x3e0, 0xb); // ÷1
  apic.mmioWrite(0x320, 0x20041); // periodic, vector 0x41
  apic.mmioWrite(0x380, 100);
  clock.ns = 50;
  assert.equal(apic.mmioRead(0x390), 50);
  clock.ns = 100;
  apic.tick();
  assert.equal(irrBit(apic, 0x41), true);
  assert.equal(apic.mmioRead(0x390), 100); // reloaded from the initial count
  assert.equal(apic.nextTimerDeadlineNs(), 200);
  clock.ns = 150;
  assert.equal(apic.mmioRead(0x390), 50);
  apic.acknowledge(0x41);
  apic.mmioWrite(0xb0, 0);
  const before = pending();
  clock.ns = 449; // expiries at 200, 300, 400 were missed
  apic.tick();
  assert.equal(pending(), before + 1); // fired once
  assert.equal(irrBit(apic, 0x41), true);
  assert.equal(apic.mmioRead(0x390), 51); // phase kept: next expiry at 500
  assert.equal(apic.nextTimerDeadlineNs(), 500);
});

test('timer at a non-GHz input clock rounds deadlines up to whole ns', () => {
  const { apic, clock } = makeEnabled({ apicHz: 100_000_000 }); // 10 ns per input tick
  apic.mmioWrite(0x320, 0x42);
  apic.mmioWrite(0x380, 5); // ÷2 (DCR reset 0): 10 input ticks = 100 ns
  assert.equal(apic.nextTimerDeadlineNs(), 100);
  clock.ns = 19;
  assert.equal(apic.mmioRead(0x390), 5); // 1 input tick: no decrement yet
  clock.ns = 20;
  assert.equal(apic.mmioRead(0x390), 4);
  const odd = makeEnabled({ apicHz: 3 }); // 1 tick = 333333333.3 ns
  odd.apic.mmioWrite(0x3e0, 0xb);
  odd.apic.mmioWrite(0x320, 0x43);
  odd.apic.mmioWrite(0x380, 1);
  assert.equal(odd.apic.nextTimerDeadlineNs(), 333333334);
  odd.clock.ns = 333333333;
  assert.equal(odd.apic.mmioRead(0x390), 1);
  odd.clock.ns = 333333334;
  assert.equal(odd.apic.mmioRead(0x390), 0);
  assert.equal(irrBit(odd.apic, 0x43), true);
});

test('writing initial count 0 stops the timer; a new count restarts it (SDM 10.5.4)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x3e0, 0xb);
  apic.mmioWrite(0x320, 0x20044);
  apic.mmioWrite(0x380, 100);
  clock.ns = 30;
  apic.mmioWrite(0x380, 0);
  assert.equal(apic.mmioRead(0x390), 0);
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
  clock.ns = 500;
  apic.tick();
  assert.equal(irrBit(apic, 0x44), false);
  apic.mmioWrite(0x380, 40);
  assert.equal(apic.nextTimerDeadlineNs(), 540);
  clock.ns = 510;
  apic.mmioWrite(0x380, 40); // rewriting restarts with the new count
  assert.equal(apic.mmioRead(0x390), 40);
  assert.equal(apic.nextTimerDeadlineNs(), 550);
});

test('masked LVT timer counts but sets no IRR; the scheduler is not woken (fact sheet §2.5)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x3e0, 0xb);
  apic.mmioWrite(0x320, 0x10045);
  apic.mmioWrite(0x380, 10);
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
  clock.ns = 5;
  assert.equal(apic.mmioRead(0x390), 5);
  clock.ns = 10;
  apic.tick();
  assert.equal(irrBit(apic, 0x45), false);
  assert.equal(apic.mmioRead(0x390), 0);
  apic.mmioWrite(0x320, 0x45); // unmasking later does not deliver the masked expiry
  assert.equal(irrBit(apic, 0x45), false);
});

test('changing the divider keeps the current count and continues at the new rate', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x3e0, 0xb); // ÷1
  apic.mmioWrite(0x320, 0x46);
  apic.mmioWrite(0x380, 100);
  clock.ns = 40;
  apic.mmioWrite(0x3e0, 0x0); // ÷2 with 60 left
  assert.equal(apic.mmioRead(0x390), 60);
  assert.equal(apic.nextTimerDeadlineNs(), 40 + 120);
  clock.ns = 60;
  assert.equal(apic.mmioRead(0x390), 50);
});

test('one-shot <-> periodic switches keep counting (kvm-unit-tests apic.c test_apic_change_mode)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x3e0, 0xb);
  apic.mmioWrite(0x320, 0x47); // one-shot
  apic.mmioWrite(0x380, 1000);
  clock.ns = 600;
  apic.mmioWrite(0x320, 0x20047); // -> periodic mid-count: no reset
  assert.equal(apic.mmioRead(0x390), 400);
  assert.equal(apic.mmioRead(0x380), 1000);
  clock.ns = 1100;
  assert.equal(apic.mmioRead(0x390), 900); // wrapped at 1000 and reloaded
  assert.equal(irrBit(apic, 0x47), true);
  apic.mmioWrite(0x320, 0x47); // -> one-shot mid-count
  assert.equal(apic.mmioRead(0x390), 900);
  clock.ns = 2000;
  assert.equal(apic.mmioRead(0x390), 0);
  clock.ns = 2500;
  assert.equal(apic.mmioRead(0x390), 0);
  apic.mmioWrite(0x320, 0x20047); // expired one-shot -> periodic: stays 0
  clock.ns = 3000;
  assert.equal(apic.mmioRead(0x390), 0);
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
});

test('TSC-deadline timer: arm, fire when TSC >= deadline, MSR clears (SDM 10.5.4.1; fact sheet §2.5)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x320, 0x40048); // mode 10, vector 0x48
  clock.ns = 1000; // TSC 2000
  apic.writeTscDeadline(5000n);
  assert.equal(apic.readTscDeadline(), 5000n);
  assert.equal(apic.nextTimerDeadlineNs(), 2500); // 3000 TSC ticks at 2 GHz = 1500 ns
  clock.ns = 2499;
  apic.tick();
  assert.equal(irrBit(apic, 0x48), false);
  clock.ns = 2500;
  apic.tick();
  assert.equal(irrBit(apic, 0x48), true);
  assert.equal(apic.readTscDeadline(), 0n); // disarms itself and clears the MSR
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
});

test('TSC-deadline: 0 disarms, a past deadline fires at once, count registers are inert (SDM 10.5.4.1)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x320, 0x40049);
  clock.ns = 1000;
  apic.writeTscDeadline(9000n);
  apic.writeTscDeadline(0n);
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
  clock.ns = 10_000;
  apic.tick();
  assert.equal(irrBit(apic, 0x49), false);
  apic.writeTscDeadline(100n); // already passed
  assert.equal(irrBit(apic, 0x49), true);
  apic.mmioWrite(0x380, 1234); // "writes to the initial-count register are ignored"
  assert.equal(apic.mmioRead(0x380), 0);
  assert.equal(apic.mmioRead(0x390), 0); // "current-count register always reads 0"
  apic.writeTscDeadline(1n << 60n); // beyond 2^53: armed but never reached
  assert.equal(apic.readTscDeadline(), 1n << 60n);
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
  assert.throws(() => apic.writeTscDeadline(-1n), ApicError);
});

test('TSC-deadline MSR is ignored (reads 0) outside TSC-deadline mode; mode transitions disarm (SDM 10.5.4.1)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x320, 0x4a); // one-shot
  apic.writeTscDeadline(5000n);
  assert.equal(apic.readTscDeadline(), 0n);
  apic.mmioWrite(0x3e0, 0xb);
  apic.mmioWrite(0x380, 100);
  apic.mmioWrite(0x320, 0x4004a); // one-shot -> TSC-deadline disarms the count
  assert.equal(apic.readTscDeadline(), 0n);
  clock.ns = 200;
  apic.tick();
  assert.equal(irrBit(apic, 0x4a), false);
  apic.writeTscDeadline(1000n);
  apic.mmioWrite(0x320, 0x4a); // TSC-deadline -> one-shot disarms the deadline
  clock.ns = 5000;
  apic.tick();
  assert.equal(irrBit(apic, 0x4a), false);
  apic.mmioWrite(0x320, 0x4004a);
  assert.equal(apic.readTscDeadline(), 0n);
});

test('timer with an illegal vector sets ESR receive-illegal-vector instead of IRR (SDM 10.5.3)', () => {
  const { apic, clock } = makeEnabled();
  apic.mmioWrite(0x3e0, 0xb);
  apic.mmioWrite(0x320, 0x05);
  apic.mmioWrite(0x380, 1);
  clock.ns = 1;
  apic.tick();
  assert.equal(apic.mmioRead(0x200), 0);
  apic.mmioWrite(0x280, 0);
  assert.equal(apic.mmioRead(0x280), 0x40);
});

// ------------------------------------------------------------------ IA32_APIC_BASE

test('legal mode transitions disabled <-> xAPIC <-> x2APIC (SDM 10.12.5; fact sheet §2.5)', () => {
  const { apic } = make({ isBsp: false });
  assert.equal(apic.writeApicBase(0xfee00c00n), true); // xAPIC -> x2APIC
  assert.equal(apic.mode, 'x2apic');
  assert.equal(apic.readApicBase(), 0xfee00c00n);
  assert.equal(apic.writeApicBase(0xfee00000n), true); // x2APIC -> disabled
  assert.equal(apic.mode, 'disabled');
  assert.equal(apic.writeApicBase(0xfee00800n), true); // disabled -> xAPIC
  assert.equal(apic.mode, 'xapic');
  assert.equal(apic.writeApicBase(0xfee00000n), true); // xAPIC -> disabled
  assert.equal(apic.writeApicBase(0xfee00000n), true); // disabled -> disabled
  assert.equal(apic.readApicBase(), 0xfee00000n);
});

test('illegal transitions and reserved bits are refused and change nothing (SDM 10.12.5; kvm-unit-tests test_enable_x2apic)', () => {
  const { apic } = make({ isBsp: false });
  assert.equal(apic.writeApicBase(0xfee00400n), false); // EXTD=1, EN=0 is invalid
  assert.equal(apic.writeApicBase(0xfee00801n), false); // reserved bit 0
  assert.equal(apic.writeApicBase(0xfee00a00n), false); // reserved bit 9
  assert.equal(apic.writeApicBase(0xfee00800n | (1n << 46n)), false); // MAXPHYADDR = 46 by default
  toX2apic(apic);
  assert.equal(apic.writeApicBase(0xfee00800n), false); // x2APIC -> xAPIC directly
  assert.equal(apic.writeApicBase(0xfee00400n), false); // x2APIC -> invalid
  assert.equal(apic.mode, 'x2apic');
  assert.equal(apic.writeApicBase(0xfee00000n), true);
  assert.equal(apic.writeApicBase(0xfee00c00n), false); // disabled -> x2APIC
  assert.equal(apic.writeApicBase(0xfee00400n), false); // disabled -> invalid
  assert.equal(apic.mode, 'disabled');
  const narrow = make({ physAddrBits: 36 }).apic;
  assert.equal(narrow.writeApicBase(0xfee00900n | (1n << 36n)), false);
  assert.equal(narrow.writeApicBase(0x8_fee0_0900n), true); // bit 35 is a base bit
  assert.equal(narrow.readApicBase(), 0x8_fee0_0900n);
  assert.throws(() => apic.writeApicBase(1n << 64n), ApicError);
});

test('base relocation moves the MMIO page (kvm-unit-tests test_apicbase)', () => {
  const { apic } = make();
  assert.equal(apic.ownsMmio(0xfee00030), true);
  assert.equal(apic.writeApicBase(0xfed00900n), true);
  assert.equal(apic.mmioBase, 0xfed00000);
  assert.equal(apic.ownsMmio(0xfed00030), true);
  assert.equal(apic.ownsMmio(0xfee00030), false);
  assert.equal(apic.ownsMmio(0xfed01000), false);
});

test('global disable resets the APIC to power-up state, xAPIC ID included (SDM 10.4.3; kvm-unit-tests test_apic_id)', () => {
  const { apic, clock } = makeEnabled({ id: 4 });
  apic.mmioWrite(0x20, 0x09000000);
  assert.equal(apic.mmioRead(0x20), 0x09000000); // writable xAPIC ID
  apic.mmioWrite(0x80, 0x20);
  apic.mmioWrite(0x3e0, 0xb);
  apic.mmioWrite(0x320, 0x50);
  apic.mmioWrite(0x380, 100);
  apic.acceptFixed(0x60);
  assert.equal(apic.writeApicBase(0xfee00000n), true);
  assert.equal(apic.pendingVector(), -1); // a disabled APIC delivers nothing
  assert.equal(apic.nextTimerDeadlineNs(), Infinity);
  assert.equal(apic.mmioRead(0x30), 0xffffffff); // MMIO page not decoded
  assert.equal(apic.writeApicBase(0xfee00900n), true);
  assert.equal(apic.mmioRead(0x20), 0x04000000);
  assert.equal(apic.mmioRead(0x80), 0);
  assert.equal(apic.mmioRead(0xf0), 0xff);
  assert.equal(apic.mmioRead(0x320), 0x10000);
  assert.equal(apic.mmioRead(0x380), 0);
  assert.equal(irrBit(apic, 0x60), false);
  clock.ns = 1000;
  apic.tick();
  assert.equal(apic.mmioRead(0x200 + 0x30), 0);
});

test('CR8 keeps working while the APIC is globally disabled (kvm-unit-tests verify_disabled_apic_mmio)', () => {
  const { apic } = make();
  apic.writeApicBase(0xfee00100n);
  apic.writeCr8(9);
  assert.equal(apic.readCr8(), 9);
  apic.mmioWrite(0x80, 0);
  assert.equal(apic.readCr8(), 9); // MMIO is not decoded
});

// ------------------------------------------------------------------ x2APIC MSRs

test('x2APIC ID is the full 32-bit ID and LDR is derived from it (SDM 10.12.10.2)', () => {
  const { apic } = makeEnabled({ id: 0x12345 });
  assert.equal(apic.mmioRead(0x20), 0x45000000); // xAPIC sees the low 8 bits
  toX2apic(apic);
  assert.equal(apic.rdmsr(0x802), 0x12345n);
  // LDR = (ID[19:4] << 16) | (1 << ID[3:0]) = (0x1234 << 16) | (1 << 5)
  assert.equal(apic.rdmsr(0x80d), 0x12340020n);
  assert.equal(x2apicLogicalId(0x25), 0x00020020);
  assert.equal(x2apicLogicalId(0x10000f), 0x00008000); // only ID[19:4] forms the cluster
  assert.equal(apic.ownsMmio(0xfee00020), false);
  assert.equal(apic.mmioRead(0x20), 0xffffffff); // MMIO behaves like a globally disabled xAPIC (SDM 10.12.2)
});

test('x2APIC read-only, write-only and missing registers #GP (SDM 10.12.1.2, 10.12.1.3)', () => {
  const { apic } = makeEnabled({ id: 1 });
  toX2apic(apic);
  for (const ro of [0x802, 0x803, 0x80a, 0x80d, 0x810, 0x818, 0x820, 0x827, 0x839]) {
    assert.equal(apic.wrmsr(ro, 0n), false, `write ${ro.toString(16)}`);
  }
  for (const wo of [0x80b, 0x83f]) assert.equal(apic.rdmsr(wo), undefined, `read ${wo.toString(16)}`);
  for (const missing of [0x800, 0x801, 0x804, 0x809, 0x80c, 0x80e, 0x82f, 0x831, 0x83a, 0x840, 0x8ff]) {
    assert.equal(apic.rdmsr(missing), undefined, `read ${missing.toString(16)}`);
    assert.equal(apic.wrmsr(missing, 0n), false, `write ${missing.toString(16)}`);
  }
  assert.equal(apic.rdmsr(0x803), 0x50014n);
  assert.equal(apic.rdmsr(0x802), 1n);
});

test('x2APIC reserved-bit writes #GP; defined ones work (SDM 10.12.1.3; fact sheet §2.5)', () => {
  const { apic } = makeEnabled();
  toX2apic(apic);
  assert.equal(apic.wrmsr(0x808, 0x1_0000_0020n), false); // bits 63:32
  assert.equal(apic.wrmsr(0x808, 0x120n), false); // TPR bits 31:8
  assert.equal(apic.wrmsr(0x808, 0x20n), true);
  assert.equal(apic.rdmsr(0x808), 0x20n);
  assert.equal(apic.wrmsr(0x80b, 1n), false); // EOI must be 0
  assert.equal(apic.wrmsr(0x80b, 0n), true);
  assert.equal(apic.wrmsr(0x828, 1n), false); // ESR: only zero may be written
  assert.equal(apic.wrmsr(0x828, 0n), true);
  assert.equal(apic.wrmsr(0x80f, 0x11ffn), false); // SPIV bit 12 (no EOI suppression)
  assert.equal(apic.wrmsr(0x80f, 0x3ffn), true);
  assert.equal(apic.wrmsr(0x832, 0x800ffn), false); // LVT timer bit 19
  assert.equal(apic.wrmsr(0x832, 0x200ffn), true); // periodic, vector 0xFF
  assert.equal(apic.rdmsr(0x832), 0x200ffn);
  assert.equal(apic.wrmsr(0x835, 0x1f7ffn), true); // LINT0: all defined bits
  assert.equal(apic.rdmsr(0x835), 0x1a7ffn); // delivery status / remote IRR read 0
  assert.equal(apic.wrmsr(0x83e, 0x4n), false); // DCR bit 2 reserved
  assert.equal(apic.wrmsr(0x83e, 0xbn), true);
  assert.equal(apic.wrmsr(0x83f, 0x100n), false); // SELF IPI bits 31:8
  assert.equal(apic.wrmsr(0x838, 0xffffffffn), true);
  assert.equal(apic.rdmsr(0x838), 0xffffffffn);
});

test('x2APIC MSRs #GP in xAPIC and disabled modes (SDM 10.12.2)', () => {
  const { apic } = makeEnabled();
  assert.equal(apic.rdmsr(0x802), undefined);
  assert.equal(apic.wrmsr(0x808, 0n), false);
  apic.writeApicBase(0xfee00000n);
  assert.equal(apic.rdmsr(0x803), undefined);
});

test('x2APIC ICR is one 64-bit write with the destination in bits 63:32 (SDM 10.12.9; fact sheet §2.5)', () => {
  const { apic, bus } = makeEnabled();
  toX2apic(apic);
  // fixed, vector 0x20, logical destination, level assert, no shorthand
  assert.equal(apic.wrmsr(0x830, (0x12345678n << 32n) | 0x4820n), true);
  assert.equal(bus.sent.length, 1);
  assert.equal(bus.sent[0]!.icrLow, 0x4820);
  assert.equal(bus.sent[0]!.destination, 0x12345678);
  assert.equal(bus.sent[0]!.from, apic);
  assert.equal(apic.rdmsr(0x830), (0x12345678n << 32n) | 0x4820n);
  assert.equal(apic.wrmsr(0x830, 0x100020n), false); // bit 20 reserved
  assert.equal(apic.wrmsr(0x830, 0x2020n), false); // bit 13 reserved
  assert.equal(apic.wrmsr(0x830, 0x10020n), false); // bits 17:16 reserved
  assert.equal(bus.sent.length, 1);
  assert.equal(apic.wrmsr(0x830, 0x1020n), true); // bit 12 ignored
  assert.equal(bus.sent[1]!.icrLow, 0x20);
});

test('x2APIC SELF IPI delivers locally; an illegal vector sets ESR send-illegal (SDM 10.12.11, 10.5.3)', () => {
  const { apic, bus } = makeEnabled();
  toX2apic(apic);
  assert.equal(apic.wrmsr(0x83f, 0x55n), true);
  assert.equal(apic.pendingVector(), 0x55);
  assert.equal(bus.sent.length, 0);
  assert.equal(apic.wrmsr(0x83f, 0x0fn), true);
  assert.equal(apic.wrmsr(0x828, 0n), true);
  assert.equal(apic.rdmsr(0x828), 0x20n);
});

// ------------------------------------------------------------------ ICR and IPIs

test('xAPIC ICR: writing the low word sends with ICR high[31:24] as destination (fact sheet §2.5, §3.3)', () => {
  const { apic, bus } = makeEnabled({ id: 0 });
  apic.mmioWrite(0x310, 0x01ffffff); // only bits 31:24 are kept
  assert.equal(apic.mmioRead(0x310), 0x01000000);
  apic.mmioWrite(0x300, 0x000c4500); // INIT, level assert, all excluding self
  apic.mmioWrite(0x300, 0x000c4600); // STARTUP vector 0
  apic.mmioWrite(0x300, 0x00004820); // fixed vector 0x20, logical, assert
  apic.mmioWrite(0x300, 0x00000400); // NMI
  assert.deepEqual(
    bus.sent.map((s) => [s.icrLow, s.destination]),
    [
      [0x000c4500, 1],
      [0x000c4600, 1],
      [0x00004820, 1],
      [0x00000400, 1],
    ],
  );
  apic.mmioWrite(0x300, 0xffffffff); // reserved bits, delivery status (12) and remote-read status (17:16) are not stored
  assert.equal(apic.mmioRead(0x300), 0x000ccfff);
  assert.equal(apic.mmioRead(0x300) & 0x1000, 0); // delivery status reads idle
});

test('fixed IPI with a vector below 16 is not sent and sets ESR bit 5 (SDM 10.5.3)', () => {
  const { apic, bus } = makeEnabled();
  apic.mmioWrite(0x300, 0x0000400f);
  apic.mmioWrite(0x300, 0x0000410e); // lowest priority too
  assert.equal(bus.sent.length, 0);
  apic.mmioWrite(0x300, 0x00004500); // INIT carries vector 0 legitimately
  assert.equal(bus.sent.length, 1);
  apic.mmioWrite(0x280, 0);
  assert.equal(apic.mmioRead(0x280), 0x20);
});

test('deliver() decodes fixed, lowest, NMI, INIT, INIT de-assert and STARTUP (SDM 10.6.1)', () => {
  const { apic, pending } = makeEnabled();
  apic.deliver(0x00004031); // fixed 0x31
  apic.deliver(0x00004132); // lowest priority 0x32
  assert.equal(irrBit(apic, 0x31), true);
  assert.equal(irrBit(apic, 0x32), true);
  apic.deliver(0x00008500); // INIT level de-assert: ignored
  assert.equal(apic.initPending, false);
  apic.deliver(0x00004500);
  assert.equal(apic.initPending, true);
  apic.deliver(0x0000469a);
  assert.equal(apic.sipiVector, 0x9a);
  assert.equal(apic.nmiPending, false);
  apic.deliver(0x00004400);
  assert.equal(apic.nmiPending, true);
  apic.deliver(0x00004200); // SMI: not modelled
  apic.deliver(0x00004700); // ExtINT: not modelled
  assert.equal(pending(), 5);
});

test('receiving a fixed interrupt with vector < 16 sets ESR bit 6 and the error LVT fires once per ESR write (SDM 10.5.3)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0x370, 0xfe); // error LVT unmasked, vector 0xFE
  apic.acceptFixed(3);
  assert.equal(irrBit(apic, 3), false);
  assert.equal(irrBit(apic, 0xfe), true);
  apic.acknowledge(0xfe);
  apic.mmioWrite(0xb0, 0);
  apic.acceptFixed(4); // not rearmed yet: no second error interrupt
  assert.equal(irrBit(apic, 0xfe), false);
  assert.equal(apic.mmioRead(0x280), 0); // nothing latched before the write
  apic.mmioWrite(0x280, 0xffffffff); // value written does not matter
  assert.equal(apic.mmioRead(0x280), 0x40);
  apic.mmioWrite(0x280, 0);
  assert.equal(apic.mmioRead(0x280), 0); // errors cleared
  apic.acceptFixed(5);
  assert.equal(irrBit(apic, 0xfe), true); // rearmed by the ESR write
});

test('LINT pins deliver per their LVT entry (SDM 10.5.1)', () => {
  const { apic } = makeEnabled();
  apic.assertLint(0);
  assert.equal(apic.pendingVector(), -1); // masked at reset
  apic.mmioWrite(0x350, 0x0000a033); // LINT0 fixed, level, vector 0x33
  apic.assertLint(0);
  assert.equal(irrBit(apic, 0x33), true);
  assert.equal(tmrBit(apic, 0x33), true);
  apic.mmioWrite(0x360, 0x00000400); // LINT1 as NMI
  apic.assertLint(1);
  assert.equal(apic.nmiPending, true);
});

// ------------------------------------------------------------------ destinations

test('physical destination and xAPIC broadcast 0xFF (SDM 10.6.2.1)', () => {
  const { apic } = makeEnabled({ id: 5 });
  assert.equal(LocalApic.matchesDestination(apic, 5, false, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 6, false, false), false);
  assert.equal(LocalApic.matchesDestination(apic, 0xff, false, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 0xff, true, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x105, false, true), false); // 32-bit dest beyond 8 bits
  assert.equal(LocalApic.matchesDestination(apic, 0xffffffff, false, true), true);
  apic.mmioWrite(0x20, 0x07000000);
  assert.equal(LocalApic.matchesDestination(apic, 7, false, false), true); // uses the current ID register
});

test('logical flat model: LDR[31:24] AND destination (SDM 10.6.2.2)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0xd0, 0x04000000);
  assert.equal(apic.mmioRead(0xe0), 0xffffffff); // flat is the reset model
  assert.equal(LocalApic.matchesDestination(apic, 0x04, true, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x0c, true, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x03, true, false), false);
  assert.equal(LocalApic.matchesDestination(apic, 0x04, false, false), false); // physical ID is 0
});

test('logical cluster model: cluster in bits 7:4 equal, member bits 3:0 ANDed (SDM 10.6.2.2)', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0xe0, 0x00000000);
  assert.equal(apic.mmioRead(0xe0), 0x0fffffff); // bits 27:0 read as 1
  apic.mmioWrite(0xd0, 0x32000000); // cluster 3, member bit 1
  assert.equal(LocalApic.matchesDestination(apic, 0x32, true, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x3f, true, false), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x31, true, false), false);
  assert.equal(LocalApic.matchesDestination(apic, 0x22, true, false), false);
  assert.equal(LocalApic.matchesDestination(apic, 0xff, true, false), true); // broadcast
  apic.mmioWrite(0xe0, 0x50000000); // undefined model matches nothing
  assert.equal(LocalApic.matchesDestination(apic, 0x32, true, false), false);
});

test('x2APIC physical, logical (cluster) and 0xFFFFFFFF broadcast (SDM 10.12.10)', () => {
  const { apic } = makeEnabled({ id: 0x123 });
  toX2apic(apic);
  assert.equal(LocalApic.matchesDestination(apic, 0x123, false, true), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x23, false, true), false);
  // logical ID: cluster 0x12, member bit 3 -> 0x00120008
  assert.equal(LocalApic.matchesDestination(apic, 0x00120008, true, true), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x0012000c, true, true), true);
  assert.equal(LocalApic.matchesDestination(apic, 0x00120004, true, true), false);
  assert.equal(LocalApic.matchesDestination(apic, 0x00130008, true, true), false);
  assert.equal(LocalApic.matchesDestination(apic, 0xffffffff, true, true), true);
  assert.equal(LocalApic.matchesDestination(apic, 0xffffffff, false, true), true);
  assert.equal(LocalApic.matchesDestination(apic, 0xff, false, false), true); // xAPIC-format broadcast
});

test('a globally disabled APIC matches no destination (SDM 10.4.3)', () => {
  const { apic } = makeEnabled({ id: 2 });
  apic.writeApicBase(0xfee00000n);
  assert.equal(LocalApic.matchesDestination(apic, 2, false, false), false);
  assert.equal(LocalApic.matchesDestination(apic, 0xff, false, false), false);
});

// ------------------------------------------------------------------ MMIO access rules

test('MMIO: sub-word reads shift, unaligned writes are ignored, reserved registers set ESR bit 7', () => {
  const { apic } = makeEnabled({ id: 0x0a });
  assert.equal(apic.mmioRead(0x23), 0x0a); // byte 3 of the ID register
  assert.equal(apic.mmioRead(0x32), 0x05); // byte 2 of version: max LVT
  assert.equal(apic.mmioRead(0x24), 0); // bytes 4..15 of a slot
  apic.mmioWrite(0x84, 0x70);
  assert.equal(apic.mmioRead(0x80), 0);
  apic.mmioWrite(0x30, 0x12345678); // read-only version
  assert.equal(apic.mmioRead(0x30), 0x00050014);
  assert.equal(apic.mmioRead(0x500), 0); // beyond the register file: silent
  apic.mmioWrite(0x280, 0);
  assert.equal(apic.mmioRead(0x280), 0);
  assert.equal(apic.mmioRead(0x2f0), 0); // no CMCI LVT (max LVT entry 5)
  apic.mmioWrite(0x280, 0);
  assert.equal(apic.mmioRead(0x280), 0x80);
  apic.mmioWrite(0x3f0, 1); // SELF IPI is x2APIC-only
  apic.mmioWrite(0x280, 0);
  assert.equal(apic.mmioRead(0x280), 0x80);
  assert.equal(apic.mmioRead(0xb0), 0); // EOI is write-only
  assert.throws(() => apic.mmioRead(0x1000), ApicError);
  assert.throws(() => apic.mmioWrite(0x80, 2 ** 32), ApicError);
});

test('LVT registers store only their defined bits (SDM Figure 10-8)', () => {
  const { apic } = makeEnabled();
  const writable = [0x700ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff];
  for (let i = 0; i < 6; i++) {
    apic.mmioWrite(0x320 + i * 0x10, 0xffffffff);
    assert.equal(apic.mmioRead(0x320 + i * 0x10), writable[i], `LVT ${i}`);
  }
});

test('LDR stores bits 31:24; ISR/TMR/IRR and PPR ignore writes', () => {
  const { apic } = makeEnabled();
  apic.mmioWrite(0xd0, 0xffffffff);
  assert.equal(apic.mmioRead(0xd0), 0xff000000);
  apic.mmioWrite(0x200, 0xffffffff);
  apic.mmioWrite(0xa0, 0xff);
  assert.equal(apic.mmioRead(0x200), 0);
  assert.equal(apic.mmioRead(0xa0), 0);
});
