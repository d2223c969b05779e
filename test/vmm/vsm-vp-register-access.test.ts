// Get/SetVpRegisters on the architectural registers of a VTL's Vcpu
// (tlfs-vsm-facts §2.15 rules, §3.7 names, §2.13 value layouts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { HvStatus } from '../../src/spec/tlfs.js';
import { REGISTERS } from '../../src/vmm/vsm/register-names.js';
import { isArchRegister, readArchRegister, writeArchRegister } from '../../src/vmm/vsm/vp-register-access.js';
import { readDebugRegs, readPrivateMsrs } from '../../src/vmm/vsm/cpu-state-adapter.js';
import { savePrivate } from '../../src/vmm/vsm/vtl-state.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';
import { enterLong64 } from '../kvm/guest-setup.js';

function vcpu() {
  const vm = new Vm({ memorySize: 4 << 20 });
  const v = vm.createVcpu(0);
  enterLong64(v, 0x1000);
  return v;
}

test('§3.7: every GPR, XMM, CR, DR, segment, table, MSR-backed and event name is architectural; synthetic/VSM ones are not', () => {
  const arch = REGISTERS.filter((r) => isArchRegister(r.number)).map((r) => r.name);
  assert.equal(arch.length, 18 + 16 + 6 + 6 + 8 + 2 + 13 + 4);
  for (const n of ['Rax', 'Rip', 'Rflags', 'Xmm7', 'Cr2', 'Xfem', 'Dr6', 'Ldtr', 'Gdtr', 'Tsc', 'ApicBase', 'TscAux', 'PendingInterruption', 'InterruptState', 'PendingEvent0', 'PendingEvent1']) {
    assert.ok(arch.includes(n), n);
  }
  for (const n of ['Hypercall', 'Sint0', 'VsmVpStatus', 'VsmPartitionConfig', 'CrInterceptControl']) assert.ok(!arch.includes(n), n);
});

test('§2.15: values read back after a set, in the right kind, from the right place', () => {
  const v = vcpu();
  assert.equal(writeArchRegister(v, 0x00020003, { kind: 'u64', value: 0x1234n }), HvStatus.SUCCESS); // RBX
  assert.equal(v.getRegs().rbx, 0x1234n);
  assert.equal(writeArchRegister(v, 0x00030002, { kind: 'u128', low: 1n, high: 2n }), HvStatus.SUCCESS); // XMM2
  assert.deepEqual(v.getXmm(2), { low: 1n, high: 2n });
  assert.equal(writeArchRegister(v, 0x00040001, { kind: 'u64', value: 0xdead000n }), HvStatus.SUCCESS); // CR2
  assert.deepEqual(readArchRegister(v, 0x00040001), { kind: 'u64', value: 0xdead000n });
  assert.equal(writeArchRegister(v, 0x00040004, { kind: 'u64', value: 7n }), HvStatus.SUCCESS); // CR8
  assert.equal(v.getSregs().cr8, 7n);
  assert.equal(writeArchRegister(v, 0x00060004, { kind: 'segment', segment: { base: 0x5000n, limit: 0xffffffff, selector: 0x10, attributes: 0xc093 } }), HvStatus.SUCCESS); // FS
  assert.equal(v.getSregs().fs.base, 0x5000n);
  assert.deepEqual(readArchRegister(v, 0x00060001), { kind: 'segment', segment: { base: 0n, limit: 0xffffffff, selector: 0x08, attributes: 0xa09b } });
  assert.equal(writeArchRegister(v, 0x00070000, { kind: 'table', table: { base: 0x6000n, limit: 0xfff } }), HvStatus.SUCCESS); // IDTR
  assert.deepEqual(readArchRegister(v, 0x00070000), { kind: 'table', table: { base: 0x6000n, limit: 0xfff } });
  assert.equal(writeArchRegister(v, 0x00080009, { kind: 'u64', value: 0xffff_8000_0000_1000n }), HvStatus.SUCCESS); // LSTAR
  assert.equal(readPrivateMsrs(v).lstar, 0xffff_8000_0000_1000n);
  assert.equal(writeArchRegister(v, 0x00050005, { kind: 'u64', value: 0x401n }), HvStatus.SUCCESS); // DR7
  assert.equal(readDebugRegs(v).dr7, 0x401n);
  assert.equal(writeArchRegister(v, 0x00050001, { kind: 'u64', value: 0x7777n }), HvStatus.SUCCESS); // DR1
  assert.equal(readDebugRegs(v).db[1], 0x7777n);
  assert.equal(writeArchRegister(v, 0x00080000, { kind: 'u64', value: 1_000_000n }), HvStatus.SUCCESS); // TSC
  const tsc = readArchRegister(v, 0x00080000);
  assert.ok(tsc.kind === 'u64' && tsc.value >= 1_000_000n && tsc.value < 1_000_100n);
});

test('§2.15: values the CPU refuses are INVALID_REGISTER_VALUE and change nothing', () => {
  const v = vcpu();
  const before = savePrivate(v, { dr6Shared: false });
  const bad: [number, bigint][] = [
    [0x00020010, 0x8000_0000_0000_0000n], // RIP not canonical
    [0x00020011, 1n << 15n],              // RFLAGS reserved bit
    [0x00040000, 1n << 32n],              // CR0 bits 63:32
    [0x00040004, 16n],                    // CR8 > 15
    [0x00080004, 0x02n],                  // PAT type 2
    [0x00080005, 0x1_0000n],              // SYSENTER_CS beyond 16 bits
    [0x00050005, 1n << 32n],              // DR7 63:32
    [0x00040005, 0x2n],                   // XCR0 without x87
  ];
  for (const [n, value] of bad) assert.equal(writeArchRegister(v, n, { kind: 'u64', value }), HvStatus.INVALID_REGISTER_VALUE, `0x${n.toString(16)}`);
  assert.deepEqual(savePrivate(v, { dr6Shared: false }), before);
  assert.throws(() => writeArchRegister(v, 0x00020000, { kind: 'u128', low: 0n, high: 0n }), /takes a u64 value/);
  assert.throws(() => writeArchRegister(v, 0x000d0007, { kind: 'u64', value: 0n }), VsmError);
  assert.throws(() => readArchRegister(v, 0x000a0000), VsmError);
});
