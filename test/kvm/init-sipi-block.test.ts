// The INIT/SIPI block, our extension of the kvm API (src/kvm/README.md
// "INIT/SIPI block"): while a vCPU's block is set, INIT and SIPI IPIs to it
// are dropped (the VSM VMM's §3.10 rule, tlfs-vsm-facts "INIT / SIPI targeted
// at a lower VTL ... dropped"), setting it drops those not yet taken, and
// SIPI_RECEIVED is EINVAL. And KVM_MP_STATE_HV_INACTIVE_VTL (kvm-api-facts
// §3.3): an INIT or SIPI to a parked vCPU is a wake-up event but stays
// pending until the VMM sets another MP state; KVM never leaves the state by
// itself. IPIs are sent the guest's way, through the BSP's ICR (SDM 10.6.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import {
  DM_INIT, DM_STARTUP, ICR_DM_SHIFT, ICR_LEVEL_ASSERT, REG_ICR_HIGH, REG_ICR_LOW,
} from '../../src/kvm/lapic-regs.js';
import {
  KVM_MP_STATE_HALTED, KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_SIPI_RECEIVED, KVM_MP_STATE_UNINITIALIZED,
} from '../../src/kvm/mp-state.js';
import { enterFlat32, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const SIPI_VECTOR = 0x09; // the AP starts at 0x9000 in real mode
const OUT_90 = { reason: 'io', direction: 'out', port: 0x90, size: 1, value: 0 };
const WAKEUP = { reason: 'system-event', type: 'wakeup' };

function isEinval(e: unknown): boolean { return e instanceof KvmError && e.code === 'EINVAL'; }

/** A BSP and an AP (APIC ID 1) waiting for its SIPI; the SIPI vector's page holds `out 0x90, al; hlt`. */
function machine(): { bsp: Vcpu; ap: Vcpu } {
  const vm = new Vm({ memorySize: 2 * MiB });
  const bsp = vm.createVcpu(0);
  const ap = vm.createVcpu(1);
  writeCode(ap, SIPI_VECTOR << 12, [0xe6, 0x90, 0xf4]);
  ap.setMpState(KVM_MP_STATE_INIT_RECEIVED);
  return { bsp, ap };
}

/** The BSP writes its ICR: a physical-destination IPI to APIC ID `dest`. */
function ipi(bsp: Vcpu, dest: number, mode: number, vector = 0): void {
  bsp.apic.mmioWrite(REG_ICR_HIGH, dest << 24);
  bsp.apic.mmioWrite(REG_ICR_LOW, (mode << ICR_DM_SHIFT) | ICR_LEVEL_ASSERT | vector);
}
const sendInit = (bsp: Vcpu, dest = 1) => ipi(bsp, dest, DM_INIT);
const sendSipi = (bsp: Vcpu, dest = 1) => ipi(bsp, dest, DM_STARTUP, SIPI_VECTOR);

/** A vCPU running a loop of OUTs to port 0x80 in flat 32-bit mode. */
function running(v: Vcpu): void {
  writeCode(v, 0x1000, [0xe6, 0x80, 0xeb, 0xfc]); // out 0x80, al; jmp back
  enterFlat32(v, 0x1000);
  v.setMpState(KVM_MP_STATE_RUNNABLE);
}

test('without the block (the default) INIT and SIPI start an AP: the baseline the block changes', () => {
  const { bsp, ap } = machine();
  assert.equal(ap.initSipiBlocked, false);
  sendSipi(bsp);
  assert.equal(ap.runnable, true);
  assert.deepEqual(ap.run(100), OUT_90);
  assert.equal(ap.run(100).reason, 'hlt');
  sendInit(bsp);
  assert.equal(ap.getMpState(), KVM_MP_STATE_INIT_RECEIVED, 'INIT put it back into wait-for-SIPI');
});

test('a blocked AP waiting for its SIPI drops the SIPI: not runnable, nothing runs, still INIT_RECEIVED', () => {
  const { bsp, ap } = machine();
  ap.setInitSipiBlocked(true);
  assert.equal(ap.initSipiBlocked, true);
  const icount = ap.cpu.icount;
  sendSipi(bsp);
  assert.equal(ap.apic.sipiVector, -1, 'not recorded');
  assert.equal(ap.runnable, false);
  assert.deepEqual(ap.run(100), { reason: 'hlt' });
  assert.equal(ap.cpu.icount, icount);
  assert.equal(ap.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
});

test('a blocked running vCPU drops INIT: it runs on with its registers, its APIC keeps its state', () => {
  const { bsp, ap } = machine();
  running(ap);
  ap.apic.mmioWrite(0xf0, 0x1ff); // SPIV: software-enabled (INIT would reset it to 0xff)
  ap.setInitSipiBlocked(true);
  sendInit(bsp);
  sendSipi(bsp);
  assert.equal(ap.apic.initPending, false);
  assert.deepEqual(ap.run(1), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0 });
  assert.equal(ap.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.equal(ap.getSregs().cs.selector, 0x08, 'still in protected mode, not at the reset vector');
  assert.equal(ap.apic.mmioRead(0xf0), 0x1ff);
});

test('setting the block drops an INIT and a SIPI received but not yet taken', () => {
  const { bsp, ap } = machine();
  running(ap);
  sendInit(bsp);
  sendSipi(bsp);
  assert.equal(ap.apic.initPending, true);
  assert.equal(ap.apic.sipiVector, SIPI_VECTOR);
  ap.setInitSipiBlocked(true);
  assert.equal(ap.apic.initPending, false);
  assert.equal(ap.apic.sipiVector, -1);
  assert.deepEqual(ap.run(1), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0 });
  assert.equal(ap.getMpState(), KVM_MP_STATE_RUNNABLE);
});

test('clearing the block accepts INIT and SIPI again; what was dropped does not come back', () => {
  const { bsp, ap } = machine();
  ap.setInitSipiBlocked(true);
  sendSipi(bsp);
  ap.setInitSipiBlocked(false);
  assert.equal(ap.initSipiBlocked, false);
  assert.equal(ap.runnable, false, 'the dropped SIPI is gone');
  assert.deepEqual(ap.run(100), { reason: 'hlt' });
  sendSipi(bsp);
  assert.deepEqual(ap.run(100), OUT_90);
});

test('the block is per vCPU: a SIPI to another AP still starts it', () => {
  const vm = new Vm({ memorySize: 2 * MiB });
  const bsp = vm.createVcpu(0);
  const blocked = vm.createVcpu(1), free = vm.createVcpu(2);
  writeCode(bsp, SIPI_VECTOR << 12, [0xe6, 0x90, 0xf4]);
  for (const v of [blocked, free]) v.setMpState(KVM_MP_STATE_INIT_RECEIVED);
  blocked.setInitSipiBlocked(true);
  sendSipi(bsp, 1);
  sendSipi(bsp, 2);
  assert.deepEqual(blocked.run(100), { reason: 'hlt' });
  assert.deepEqual(free.run(100), OUT_90);
});

test('KVM_SET_MP_STATE under the block: SIPI_RECEIVED is EINVAL and changes nothing; INIT_RECEIVED and the rest are allowed', () => {
  const { ap } = machine();
  ap.vsmAllowed = true;
  ap.setInitSipiBlocked(true);
  assert.throws(() => ap.setMpState(KVM_MP_STATE_SIPI_RECEIVED), isEinval);
  assert.equal(ap.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(ap.runnable, false);
  for (const s of [KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_HALTED, KVM_MP_STATE_HV_INACTIVE_VTL, KVM_MP_STATE_UNINITIALIZED, KVM_MP_STATE_INIT_RECEIVED]) {
    ap.setMpState(s);
  }
  assert.equal(ap.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  ap.setInitSipiBlocked(false);
  ap.setMpState(KVM_MP_STATE_SIPI_RECEIVED); // allowed again
  assert.equal(ap.runnable, true);
});

test('setInitSipiBlocked takes a boolean, else EINVAL and nothing changes', () => {
  const { ap } = machine();
  ap.setInitSipiBlocked(true);
  for (const bad of [1, 0, 'yes', null, undefined]) {
    assert.throws(() => ap.setInitSipiBlocked(bad as unknown as boolean), isEinval, String(bad));
    assert.equal(ap.initSipiBlocked, true);
  }
});

test('§3.3: an INIT to a parked (HV_INACTIVE_VTL) vCPU wakes it but stays pending: state and registers untouched until the VMM sets another state', () => {
  const { bsp, ap } = machine();
  running(ap);
  ap.vsmAllowed = true;
  ap.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  sendInit(bsp);
  assert.equal(ap.runnable, true);
  assert.deepEqual(ap.run(100), WAKEUP);
  assert.deepEqual(ap.run(100), WAKEUP, 'again: the event is still there');
  assert.equal(ap.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL, 'not taken by KVM_GET_MP_STATE either');
  assert.equal(ap.getRegs().rip, 0x1000n);
  assert.equal(ap.getSregs().cs.selector, 0x08);
  // The VMM decides: once it un-parks the vCPU, the INIT is taken.
  ap.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(ap.getMpState(), KVM_MP_STATE_INIT_RECEIVED);
  assert.equal(ap.getRegs().rip, 0xfff0n, 'the INIT reset');
});

test('§3.3: a SIPI to a parked vCPU waiting for its start stays pending until the VMM resumes that wait', () => {
  const { bsp, ap } = machine();
  ap.vsmAllowed = true;
  ap.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  sendSipi(bsp);
  assert.deepEqual(ap.run(100), WAKEUP);
  assert.equal(ap.getMpState(), KVM_MP_STATE_HV_INACTIVE_VTL);
  ap.setMpState(KVM_MP_STATE_INIT_RECEIVED);
  assert.deepEqual(ap.run(100), OUT_90);
});

test('a parked vCPU under the block: INIT and SIPI are no events at all', () => {
  const { bsp, ap } = machine();
  running(ap);
  ap.vsmAllowed = true;
  ap.setInitSipiBlocked(true);
  ap.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  sendInit(bsp);
  sendSipi(bsp);
  assert.equal(ap.runnable, false);
  assert.deepEqual(ap.run(100), { reason: 'hlt' });
  ap.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(ap.getMpState(), KVM_MP_STATE_RUNNABLE);
  assert.deepEqual(ap.run(1), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0 });
});
