// vCPU MP states: KVM's numbering (include/uapi/linux/kvm.h, api.rst 4.38),
// x86 KVM_SET_MP_STATE validation, the mapping onto our CPU run states
// (mp-state.ts), and KVM_MP_STATE_HV_INACTIVE_VTL (kvm-api-facts.md §3.3):
// only with AccessVsm, run() blocks like HLT but wake-up ignores RFLAGS.IF,
// and a pending event makes run() return the WAKEUP system event at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import {
  KVM_MP_STATE_AP_RESET_HOLD, KVM_MP_STATE_CHECK_STOP, KVM_MP_STATE_HALTED, KVM_MP_STATE_HV_INACTIVE_VTL,
  KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_LOAD, KVM_MP_STATE_OPERATING, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SIPI_RECEIVED,
  KVM_MP_STATE_STOPPED, KVM_MP_STATE_SUSPENDED, KVM_MP_STATE_UNINITIALIZED, KVM_SYSTEM_EVENT_WAKEUP,
} from '../../src/kvm/mp-state.js';
import { eventTestVcpu, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const WAKEUP = { reason: 'system-event', type: 'wakeup' };

function isEinval(e: unknown): boolean { return e instanceof KvmError && e.code === 'EINVAL'; }

test('KVM\'s MP state numbers, with HV_INACTIVE_VTL = 11 and KVM_SYSTEM_EVENT_WAKEUP = 4', () => {
  assert.deepEqual(
    [KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_HALTED, KVM_MP_STATE_SIPI_RECEIVED,
      KVM_MP_STATE_STOPPED, KVM_MP_STATE_CHECK_STOP, KVM_MP_STATE_OPERATING, KVM_MP_STATE_LOAD, KVM_MP_STATE_AP_RESET_HOLD,
      KVM_MP_STATE_SUSPENDED, KVM_MP_STATE_HV_INACTIVE_VTL],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(KVM_SYSTEM_EVENT_WAKEUP, 4);
});

test('x86 accepts RUNNABLE, UNINITIALIZED, INIT_RECEIVED, HALTED, SIPI_RECEIVED; the s390/arm64/SEV-ES states are EINVAL', () => {
  const v = eventTestVcpu([0xf4]);
  for (const s of [KVM_MP_STATE_STOPPED, KVM_MP_STATE_CHECK_STOP, KVM_MP_STATE_OPERATING, KVM_MP_STATE_LOAD,
    KVM_MP_STATE_AP_RESET_HOLD, KVM_MP_STATE_SUSPENDED, 12, -1, 1.5]) {
    assert.throws(() => v.setMpState(s), isEinval, `state ${s}`);
    assert.equal(v.getMpState(), KVM_MP_STATE_RUNNABLE, 'a rejected state changes nothing');
  }
});

test('the run states read back as MP states: running, HLT, wait-for-SIPI, shutdown', () => {
  const v = eventTestVcpu([0xf4, 0x0f, 0x0b]); // hlt; ud2
  assert.equal(v.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getMpState(), KVM_MP_STATE_HALTED);
  v.setMpState(KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(v.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  v.setMpState(KVM_MP_STATE_UNINITIALIZED); // one CPU state with INIT_RECEIVED (mp-state.ts)
  assert.equal(v.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  // ud2 without a usable IDT entry: #UD -> #GP -> #DF -> triple fault -> shutdown, which reads as UNINITIALIZED.
  v.setMpState(KVM_MP_STATE_RUNNABLE);
  const s = v.getSregs(); s.idt = { base: 0n, limit: 0 }; v.setSregs(s);
  assert.equal(v.run(100).reason, 'shutdown');
  assert.equal(v.getMpState(), KVM_MP_STATE_UNINITIALIZED);
});

test('HALTED set by the host waits for an interrupt like HLT: IF=1 and an interrupt wake it', () => {
  const v = eventTestVcpu([0xfb, 0xeb, 0xfe]); // sti; jmp $
  v.run(10); // IF is now 1
  v.setMpState(KVM_MP_STATE_HALTED);
  assert.equal(v.runnable, false);
  assert.equal(v.run(100).reason, 'hlt');
  v.injectInterrupt(0x30);
  assert.equal(v.runnable, true);
  assert.deepEqual(v.run(100), { reason: 'io', direction: 'out', port: 0x81, size: 1, value: 0 });
});

test('SIPI_RECEIVED restarts the vCPU at the last SIPI vector (vector << 12, real mode)', () => {
  const vm = new Vm({ memorySize: 2 * MiB });
  vm.createVcpu(0);
  const ap = vm.createVcpu(1);
  writeCode(ap, 0x9000, [0xe6, 0x90, 0xf4]); // out 0x90, al; hlt
  ap.setMpState(KVM_MP_STATE_INIT_RECEIVED);
  ap.apic.startup(0x09);
  assert.deepEqual(ap.run(100), { reason: 'io', direction: 'out', port: 0x90, size: 1, value: 0 });
  assert.equal(ap.run(100).reason, 'hlt');
  ap.setMpState(KVM_MP_STATE_SIPI_RECEIVED);
  assert.equal(ap.run(100).reason, 'io');
  const s = ap.getSregs();
  assert.equal(s.cs.base, 0x9000n);
  assert.equal(s.cs.selector, 0x900);
});

test('§3.3: HV_INACTIVE_VTL needs AccessVsm (vsmAllowed), else EINVAL', () => {
  const v = eventTestVcpu([0xf4]);
  assert.throws(() => v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL), isEinval);
  assert.equal(v.getMpState(), KVM_MP_STATE_RUNNABLE);
  v.vsmAllowed = true;
  v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(v.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
});

test('§3.3: an inactive VTL without events blocks like HLT and executes nothing', () => {
  const v = eventTestVcpu([0xe6, 0x80, 0xeb, 0xfc]); // a loop of OUTs: any instruction run would show
  v.vsmAllowed = true;
  v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  const icount = v.cpu.icount;
  assert.equal(v.runnable, false);
  assert.deepEqual(v.run(1000), { reason: 'hlt' });
  assert.equal(v.cpu.icount, icount);
  assert.equal(v.getRegs().rip, 0x1000n);
});

test('§3.3: wake-up ignores RFLAGS.IF: with IF=0 a pending interrupt gives the WAKEUP exit (HLT would sleep on)', () => {
  const v = eventTestVcpu([0xfa, 0xf4]); // cli; hlt
  assert.equal(v.run(100).reason, 'hlt');
  v.injectInterrupt(0x30);
  assert.equal(v.runnable, false, 'a halted vCPU with IF=0 stays asleep');
  v.vsmAllowed = true;
  v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.equal(v.runnable, true);
  const icount = v.cpu.icount;
  assert.deepEqual(v.run(1000), WAKEUP);
  // "Events already pending: KVM_RUN exits immediately with the same WAKEUP exit", and again until the VMM sets RUNNABLE.
  assert.deepEqual(v.run(1000), WAKEUP);
  assert.equal(v.cpu.icount, icount);
  assert.equal(v.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  // The VMM decides: RUNNABLE resumes the vCPU; with IF=0 the interrupt stays pending in the APIC.
  v.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(v.run(100).reason, 'preempted');
  assert.equal(v.apic.pendingVector(), 0x30);
});

test('§3.3: an interrupt that arrives while the VTL is parked wakes it; so does an NMI', () => {
  const v = eventTestVcpu([0xf4]);
  const r = v.getRegs(); r.rflags = 0x202n; v.setRegs(r); // IF=1, so the woken VTL takes the interrupt
  v.vsmAllowed = true;
  v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  assert.deepEqual(v.run(100), { reason: 'hlt' });
  v.injectInterrupt(0x30);
  assert.deepEqual(v.run(100), WAKEUP);
  v.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.deepEqual(v.run(100), { reason: 'io', direction: 'out', port: 0x81, size: 1, value: 0 });

  const nmi = eventTestVcpu([0xf4]);
  nmi.vsmAllowed = true;
  nmi.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  nmi.injectNmi();
  assert.deepEqual(nmi.run(100), WAKEUP);
  nmi.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.deepEqual(nmi.run(100), { reason: 'io', direction: 'out', port: 0x82, size: 1, value: 0 });
});

test('§3.3: an interrupt below the APIC\'s priority (TPR) is not an event', () => {
  const v = eventTestVcpu([0xf4]);
  v.vsmAllowed = true;
  const s = v.getSregs(); s.cr8 = 4n; v.setSregs(s); // TPR class 4 masks vector 0x30 (class 3)
  v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  v.injectInterrupt(0x30);
  assert.deepEqual(v.run(100), { reason: 'hlt' });
  v.injectInterrupt(0x50);
  assert.deepEqual(v.run(100), WAKEUP);
});

test('§3.3: INIT wakes an inactive VTL but does not end the state; it is taken once the VMM sets another (init-sipi-block.test.ts)', () => {
  const vm = new Vm({ memorySize: 2 * MiB });
  vm.createVcpu(0);
  const ap = vm.createVcpu(1);
  ap.vsmAllowed = true;
  ap.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  ap.apic.init();
  assert.deepEqual(ap.run(100), WAKEUP);
  assert.equal(ap.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  ap.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(ap.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
});
