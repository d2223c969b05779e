/** The package entry exports the kvm API and the machine (issue 4: "exported from the package"). */
import { test } from 'node:test';
import assert from 'node:assert/strict';

test('importing the package by name gives the kvm API, and a Vm built from it runs a vCPU', async () => {
  const pkg = await import('vsmvisor');
  for (const name of ['Vm', 'Vcpu', 'KvmError', 'GuestClock', 'TraceLog', 'Machine', 'PhysMemory', 'resolveHvFeatures',
    'KVM_MEMORY_ATTRIBUTE_NX', 'KVM_MP_STATE_HV_INACTIVE_VTL', 'KVM_MEMORY_EXIT_FLAG_WRITE']) {
    assert.ok(name in pkg, `missing export ${name}`);
  }
  // A real-mode guest at 0000:1000, placed with KVM_SET_SREGS/KVM_SET_REGS: out 0x80, al ; hlt.
  const vm = new pkg.Vm({ memorySize: 1 << 20 });
  const vcpu = vm.createVcpu(0);
  vm.mem.write(0x1000, Uint8Array.from([0xe6, 0x80, 0xf4]));
  const sregs = vcpu.getSregs();
  vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, base: 0n, selector: 0 } });
  vcpu.setRegs({ ...vcpu.getRegs(), rip: 0x1000n, rax: 0x42n });
  const exit = vcpu.run(100);
  assert.deepEqual(exit, { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0x42 });
  assert.deepEqual(vcpu.run(100), { reason: 'hlt' });
  assert.throws(() => vm.createVcpu(0), (e: unknown) => e instanceof pkg.KvmError && e.code === 'EEXIST');
});
