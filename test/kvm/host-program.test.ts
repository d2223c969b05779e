// A host program drives a VM through the kvm API alone, as KVM selftests drive
// /dev/kvm: one memslot, guest code written into memory, registers set with
// setSregs/setRegs, run() until exits, an 'io' exit, a page protected with
// setMemoryAttributes and the memory-fault exit it causes (kvm-api-facts.md
// §2.5, §2.6), the protection lifted and the instruction completed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KVM_MEMORY_ATTRIBUTE_NW } from '../../src/kvm/memory-attributes.js';
import { KVM_MEMORY_EXIT_FLAG_WRITE } from '../../src/kvm/exits.js';
import { AccessOrigin } from '../../src/x86/host.js';
import { enterFlat32, writeCode } from './guest-setup.js';

const CODE = 0x1000;
const PROGRAM = [
  0xb0, 0x42,                   // 0x1000 mov al, 0x42
  0xe6, 0x80,                   // 0x1002 out 0x80, al
  0xa1, 0x00, 0x30, 0x00, 0x00, // 0x1004 mov eax, [0x3000]
  0xa3, 0x00, 0x40, 0x00, 0x00, // 0x1009 mov [0x4000], eax
  0xf4,                         // 0x100e hlt
];

test('a host program runs a guest through the kvm API: io exit, memory-fault exit, completion', () => {
  const vm = new Vm({ memorySize: 2 << 20, defaultMemslot: false, trace: true });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 1n << 20n });
  const v = vm.createVcpu(0);
  writeCode(v, CODE, PROGRAM);
  vm.mem.write32(0x3000, 0xdeadbeef);
  enterFlat32(v, CODE);

  // OUT 0x80 exits to the host with the byte written.
  assert.deepEqual(v.run(1000), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0x42 });

  // §2.2/§2.5: NW on the page makes the guest's write a memory-fault exit with flag WRITE.
  vm.setMemoryAttributes({ address: 0x4000n, size: 0x1000n, attributes: BigInt(KVM_MEMORY_ATTRIBUTE_NW), flags: 0n });
  const exit = v.run(1000);
  assert.equal(exit.reason, 'memory-fault');
  if (exit.reason !== 'memory-fault') return;
  // §2.6: exactly one of R/W/X, gpa = page base, size one page, insn_len of `mov [0x4000], eax` (5).
  assert.equal(exit.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.equal(exit.gpa, 0x4000);
  assert.equal(exit.size, 4096);
  assert.equal(exit.insnLen, 5);
  assert.deepEqual([...exit.insnBytes], [0xa3, 0x00, 0x40, 0x00, 0x00]);
  assert.equal(exit.gva, 0x4000n);
  assert.equal(exit.gvaValid, true);
  assert.equal(exit.origin, AccessOrigin.Guest);
  // §2.5: the faulting instruction is not completed and RIP is unchanged; the load before it did complete.
  let regs = v.getRegs();
  assert.equal(regs.rip, 0x1009n);
  assert.equal(regs.rax, 0xdeadbeefn);
  assert.equal(vm.mem.read32(0x4000), 0);

  // Resuming without lifting the protection re-executes the instruction and faults again.
  const again = v.run(1000);
  assert.equal(again.reason, 'memory-fault');
  assert.equal(v.getRegs().rip, 0x1009n);

  // Attributes 0 remove the restriction (§2.1): the write completes, then HLT.
  vm.setMemoryAttributes({ address: 0x4000n, size: 0x1000n, attributes: 0n, flags: 0n });
  assert.deepEqual(v.run(1000), { reason: 'hlt' });
  assert.equal(vm.mem.read32(0x4000), 0xdeadbeef);
  regs = v.getRegs();
  assert.equal(regs.rip, 0x100fn);

  // §2.8 trace events: the two attribute changes and one record per denied access.
  const sets = vm.trace!.named('kvm_vm_set_mem_attributes').map((e) => e.args);
  assert.deepEqual(sets, [{ gfn: '4', cnt: '1', attributes: '2' }, { gfn: '4', cnt: '1', attributes: '0' }]);
  const faults = vm.trace!.named('kvm_mem_attributes_faultin_access_prots').map((e) => e.args);
  assert.deepEqual(faults, [
    { guest_rip: '1009', gfn: '4', write: true, exec: false, mem_attrs: '2' },
    { guest_rip: '1009', gfn: '4', write: true, exec: false, mem_attrs: '2' },
  ]);
});
