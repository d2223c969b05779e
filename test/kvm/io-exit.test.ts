/** Port I/O exits carry the value as an unsigned number of the access size. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';

function realModeVcpu(code: number[], rax: bigint) {
  const vm = new Vm({ memorySize: 1 << 20 });
  const vcpu = vm.createVcpu(0);
  vm.mem.write(0x1000, Uint8Array.from(code));
  const sregs = vcpu.getSregs();
  vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, base: 0n, selector: 0 } });
  vcpu.setRegs({ ...vcpu.getRegs(), rip: 0x1000n, rax });
  return vcpu;
}

test('a 32-bit OUT of 0x80000000 exits with value 0x80000000 (not a negative int32)', () => {
  const vcpu = realModeVcpu([0x66, 0xe7, 0xf4], 0x80000000n); // out 0xf4, eax (66h: 32-bit operand in real mode)
  assert.deepEqual(vcpu.run(10), { reason: 'io', direction: 'out', port: 0xf4, size: 4, value: 0x80000000 });
});

test('8- and 16-bit OUTs exit with the low bytes of RAX only', () => {
  assert.deepEqual(realModeVcpu([0xe6, 0x80], 0xdeadbeefn).run(10), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0xef });
  assert.deepEqual(realModeVcpu([0xe7, 0x80], 0xdeadbeefn).run(10), { reason: 'io', direction: 'out', port: 0x80, size: 2, value: 0xbeef });
});
