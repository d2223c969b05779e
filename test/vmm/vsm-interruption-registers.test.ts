// HvX64RegisterPendingInterruption, HvX64RegisterInterruptState and
// HvRegisterPendingEvent0/1 through
// Get/SetVpRegisters (src/vmm/vsm/interruption-registers.ts): a higher VTL
// reads and sets the event a lower VTL takes next, over KVM_GET/SET_VCPU_EVENTS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import { HvRegisterName as N, HvStatus } from '../../src/spec/tlfs.js';
import { readArchRegister, writeArchRegister } from '../../src/vmm/vsm/vp-register-access.js';
import { CODE } from '../kvm/hypercall-machine.js';
import { VsmRig } from './vsm-hcall-rig.js';

const u64 = (value: bigint) => ({ kind: 'u64' as const, value });
const read = (r: VsmRig, name: number) => { const v = readArchRegister(r.vcpu(0), name); return v.kind === 'u64' ? v.value : -1n; };
/** PendingInterruption: pending, type << 1, DeliverErrorCode << 4, vector << 16, error code << 32. */
const pending = (type: number, vector: number, errorCode?: number) =>
  1n | (BigInt(type) << 1n) | (BigInt(vector) << 16n) | (errorCode === undefined ? 0n : (1n << 4n) | (BigInt(errorCode) << 32n));

function rig(): VsmRig {
  const r = new VsmRig();
  r.asm('.code64\n nop\n hlt', CODE + 0x100);
  r.m.jump(r.vcpu(0), CODE + 0x100);
  return r;
}

test('PendingInterruption: an injected #GP with an error code is delivered at the next run, and reads back until then', () => {
  const r = rig(), v = r.vcpu(0);
  assert.equal(read(r, N.PendingInterruption), 0n, 'nothing pending');
  assert.equal(writeArchRegister(v, N.PendingInterruption, u64(pending(3, 13, 0x18))), HvStatus.SUCCESS);
  assert.equal(read(r, N.PendingInterruption), pending(3, 13, 0x18));
  r.m.runToExit(v);
  assert.equal(r.m.stubVector(v), 13, '#GP delivered before the NOP');
  assert.equal(r.m.vm.mem.read64(Number(v.getRegs().rsp)), 0x18n, 'with its error code');
  assert.equal(read(r, N.PendingInterruption), 0n);
});

test('PendingInterruption: an NMI and an external interrupt; writing 0 clears what was injected', () => {
  const r = rig(), v = r.vcpu(0);
  assert.equal(writeArchRegister(v, N.PendingInterruption, u64(pending(2, 2))), HvStatus.SUCCESS);
  assert.equal(read(r, N.PendingInterruption), pending(2, 2));
  assert.equal(writeArchRegister(v, N.PendingInterruption, u64(0n)), HvStatus.SUCCESS);
  assert.equal(read(r, N.PendingInterruption), 0n);
  assert.equal(writeArchRegister(v, N.PendingInterruption, u64(pending(0, 0x40))), HvStatus.SUCCESS);
  assert.equal(read(r, N.PendingInterruption), pending(0, 0x40));
  v.setMpState(KVM_MP_STATE_RUNNABLE);
  r.m.runToExit(v);
  assert.equal(r.m.stubVector(v), 0x40);
});

test('PendingInterruption refuses types, bits and vectors it cannot inject, changing nothing', () => {
  const r = rig(), v = r.vcpu(0);
  for (const bad of [
    pending(1, 0x40), pending(4, 0x40), pending(2, 3), pending(0, 5), pending(3, 40), pending(0, 0x40, 1),
    pending(3, 13) | (1n << 10n),   // reserved bit
    pending(3, 13) | (1n << 9n),    // NestedEvent
    pending(3, 3) | (2n << 5n),     // an instruction length (soft events)
    pending(3, 6, 0),               // #UD has no error code: kvm refuses it
  ]) assert.equal(writeArchRegister(v, N.PendingInterruption, u64(bad)), HvStatus.INVALID_REGISTER_VALUE, `0x${bad.toString(16)}`);
  assert.equal(read(r, N.PendingInterruption), 0n);
});

test('InterruptState: NmiMasked and InterruptShadow read and write; reserved bits are refused', () => {
  const r = rig(), v = r.vcpu(0);
  assert.equal(read(r, N.InterruptState), 0n);
  assert.equal(writeArchRegister(v, N.InterruptState, u64(3n)), HvStatus.SUCCESS);
  assert.equal(read(r, N.InterruptState), 3n);
  assert.equal(v.getVcpuEvents().nmi.masked, 1);
  assert.equal(writeArchRegister(v, N.InterruptState, u64(4n)), HvStatus.INVALID_REGISTER_VALUE);
  assert.equal(read(r, N.InterruptState), 3n);
  assert.equal(writeArchRegister(v, N.InterruptState, u64(0n)), HvStatus.SUCCESS);
  assert.equal(read(r, N.InterruptState), 0n);
});

/** PendingEvent0's low u64: EventPending, type 0 (exception), DeliverErrorCode << 8, vector << 16, error code << 32. */
const event0 = (vector: number, errorCode?: number) =>
  1n | (BigInt(vector) << 16n) | (errorCode === undefined ? 0n : (1n << 8n) | (BigInt(errorCode) << 32n));
const u128 = (low: bigint, high = 0n) => ({ kind: 'u128' as const, low, high });
const read128 = (r: VsmRig, name: number) => { const v = readArchRegister(r.vcpu(0), name); return v.kind === 'u128' ? { low: v.low, high: v.high } : null; };

test('PendingEvent0: a #PF with its error code and CR2 (the exception parameter) is delivered at the next run', () => {
  const r = rig(), v = r.vcpu(0);
  assert.deepEqual(read128(r, N.PendingEvent0), { low: 0n, high: 0n }, 'nothing pending');
  assert.equal(writeArchRegister(v, N.PendingEvent0, u128(event0(14, 0x6), 0xffff_8000_dead_b000n)), HvStatus.SUCCESS);
  assert.deepEqual(read128(r, N.PendingEvent0), { low: event0(14, 0x6), high: 0xffff_8000_dead_b000n });
  assert.equal(read(r, N.PendingInterruption), pending(3, 14, 0x6), 'the same kvm event as PendingInterruption sees');
  r.m.runToExit(v);
  assert.equal(r.m.stubVector(v), 14, '#PF delivered before the NOP');
  assert.equal(r.m.vm.mem.read64(Number(v.getRegs().rsp)), 0x6n, 'with its error code');
  assert.equal(v.getSregs().cr2, 0xffff_8000_dead_b000n, 'and CR2');
  assert.deepEqual(read128(r, N.PendingEvent0), { low: 0n, high: 0n });
});

test('PendingEvent0: an exception without an error code; EventPending 0 clears it and leaves an injected NMI alone', () => {
  const r = rig(), v = r.vcpu(0);
  assert.equal(writeArchRegister(v, N.PendingInterruption, u64(pending(2, 2))), HvStatus.SUCCESS);
  assert.equal(writeArchRegister(v, N.PendingEvent0, u128(event0(6))), HvStatus.SUCCESS);
  assert.deepEqual(read128(r, N.PendingEvent0), { low: event0(6), high: 0n });
  assert.equal(writeArchRegister(v, N.PendingEvent0, u128(0n)), HvStatus.SUCCESS);
  assert.deepEqual(read128(r, N.PendingEvent0), { low: 0n, high: 0n });
  assert.equal(v.getVcpuEvents().nmi.injected, 1, 'the NMI is still injected');
});

test('PendingEvent0 refuses other event types, reserved bits, vectors and parameters it cannot inject; PendingEvent1 takes only 0', () => {
  const r = rig(), v = r.vcpu(0);
  for (const [low, high] of [
    [event0(13, 0) | (1n << 1n), 0n],   // type 1 (memory intercept)
    [event0(13, 0) | (5n << 1n), 0n],   // type 5 (external interrupt)
    [event0(13, 0) | (1n << 4n), 0n],   // reserved bit 4
    [event0(13, 0) | (1n << 9n), 0n],   // reserved bit 9
    [event0(40), 0n],                   // not an exception vector
    [event0(13, 0), 0x1000n],           // a parameter for a #GP
    [event0(6, 0), 0n],                 // #UD has no error code: kvm refuses it
    [0n, 0x1000n],                      // not pending, but a parameter
  ] as const) {
    assert.equal(writeArchRegister(v, N.PendingEvent0, u128(low, high)), HvStatus.INVALID_REGISTER_VALUE, `0x${low.toString(16)}/0x${high.toString(16)}`);
  }
  assert.deepEqual(read128(r, N.PendingEvent0), { low: 0n, high: 0n });
  assert.equal(v.getSregs().cr2, 0n, 'no refused write set CR2');
  assert.deepEqual(read128(r, N.PendingEvent1), { low: 0n, high: 0n });
  assert.equal(writeArchRegister(v, N.PendingEvent1, u128(0n)), HvStatus.SUCCESS);
  assert.equal(writeArchRegister(v, N.PendingEvent1, u128(event0(13, 0))), HvStatus.INVALID_REGISTER_VALUE);
});
