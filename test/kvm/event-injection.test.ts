// Event injection from the host: injectInterrupt(vector) hands a fixed,
// edge-triggered interrupt to the vCPU's in-kernel local APIC (as an MSI or
// IPI would; KVM_INTERRUPT is the userspace-irqchip path and does not apply
// with an in-kernel APIC), and injectNmi() is KVM_NMI. Delivery follows the
// architecture: interrupts wait for RFLAGS.IF and the APIC's priority, NMIs
// do not (Intel SDM vol. 3A 6.8.1, 10.8.3.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvmError } from '../../src/kvm/errors.js';
import { eventTestVcpu } from './guest-setup.js';

test('an injected interrupt wakes a HLT with IF=1 and runs its handler', () => {
  const v = eventTestVcpu([0xfb, 0xf4]); // sti; hlt
  assert.equal(v.run(100).reason, 'hlt');
  v.injectInterrupt(0x30);
  assert.deepEqual(v.run(100), { reason: 'io', direction: 'out', port: 0x81, size: 1, value: 0 });
  // The handler runs with the vector in service (ISR), so the APIC's priority rose to its class.
  assert.equal(v.apic.pendingVector(), -1);
});

test('with IF=0 the interrupt stays pending in the APIC; an NMI is taken anyway', () => {
  const v = eventTestVcpu([0xfa, 0xeb, 0xfe]); // cli; jmp $
  v.injectInterrupt(0x30);
  assert.equal(v.run(100).reason, 'preempted');
  assert.equal(v.apic.pendingVector(), 0x30);
  v.injectNmi();
  assert.deepEqual(v.run(100), { reason: 'io', direction: 'out', port: 0x82, size: 1, value: 0 });
});

test('an NMI makes a halted vCPU runnable even with IF=0', () => {
  const v = eventTestVcpu([0xfa, 0xf4]); // cli; hlt
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.runnable, false);
  v.injectNmi();
  assert.equal(v.runnable, true);
  assert.deepEqual(v.run(100), { reason: 'io', direction: 'out', port: 0x82, size: 1, value: 0 });
});

test('injectInterrupt rejects vectors outside 16..255 (0..15 are exception vectors) with EINVAL', () => {
  const v = eventTestVcpu([0xf4]);
  for (const bad of [-1, 0, 15, 256, 1.5, NaN]) {
    assert.throws(() => v.injectInterrupt(bad), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL' && /16\.\.255/.test(e.message));
  }
  assert.equal(v.apic.pendingVector(), -1);
});

test('our autoEoi injection: the vector is EOI\'d when the CPU takes it (in service only without it); a bad flag is EINVAL', () => {
  for (const autoEoi of [true, false]) {
    const v = eventTestVcpu([0xfb, 0xf4]); // sti; hlt
    v.run(100);
    v.injectInterrupt(0x30, { autoEoi });
    assert.deepEqual(v.run(100), { reason: 'io', direction: 'out', port: 0x81, size: 1, value: 0 });
    const isr1 = v.apic.mmioRead(0x100 + 0x10); // ISR bits 63:32
    assert.equal((isr1 >>> 16) & 1, autoEoi ? 0 : 1);
    // A lower-priority vector is deliverable at once only when 0x30 is no longer in service.
    v.injectInterrupt(0x20);
    assert.equal(v.apic.pendingVector(), autoEoi ? 0x20 : -1);
  }
  const v = eventTestVcpu([0xf4]);
  assert.throws(() => v.injectInterrupt(0x30, { autoEoi: 1 as unknown as boolean }), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');
  assert.equal(v.apic.pendingVector(), -1, 'nothing was raised');
});
