// Memory regions (KVM_SET_USER_MEMORY_REGION). The checks, their order and
// errnos follow upstream virt/kvm/kvm_main.c (kvm_vm_ioctl_set_memory_region,
// __kvm_set_memory_region; "upstream" in kvm-api-facts.md's sources): slot id
// below KVM_USER_MEM_SLOTS, known flags, page-aligned size and address, the
// backing range (access_ok), address space, wrap, size limit, then delete /
// create / modify, and EEXIST for an overlap. Outside every slot is MMIO
// (§2.5: attributes there are ignored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import { GuestMemory, KVM_USER_MEM_SLOTS, type UserMemoryRegion } from '../../src/kvm/memslots.js';
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import { enterFlat32, writeCode } from './guest-setup.js';

const MiB = 1 << 20;

function rejects(vm: Vm, region: UserMemoryRegion, code: string, message: RegExp): void {
  const before = vm.memslots.list();
  assert.throws(() => vm.setUserMemoryRegion(region), (e: unknown) => {
    assert.ok(e instanceof KvmError, `expected a KvmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
  assert.deepEqual(vm.memslots.list(), before, 'a rejected call changes nothing');
}

test('a Vm starts with slot 0 over all its memory; defaultMemslot: false starts with no RAM at all', () => {
  const vm = new Vm({ memorySize: 4 * MiB });
  assert.deepEqual(vm.memslots.list(), [{ id: 0, flags: 0, guestPhysAddr: 0, memorySize: 4 * MiB }]);
  assert.equal(vm.mem.isRam(4 * MiB - 1), true);
  assert.equal(vm.mem.isRam(4 * MiB), false);
  const bare = new Vm({ memorySize: 4 * MiB, defaultMemslot: false });
  assert.deepEqual(bare.memslots.list(), []);
  assert.equal(bare.mem.isRam(0), false);
});

test('checks in KVM order: slot id, flags, size alignment, address alignment, backing, address space', () => {
  const vm = new Vm({ memorySize: 4 * MiB, defaultMemslot: false });
  const bad = { slot: KVM_USER_MEM_SLOTS, flags: 1, guestPhysAddr: 0x1001, memorySize: 0x1001 };
  rejects(vm, bad, 'EINVAL', /slot id 32764 is not below KVM_USER_MEM_SLOTS/);
  rejects(vm, { ...bad, slot: 1 }, 'EINVAL', /flags 0x1 are not supported/);
  rejects(vm, { ...bad, slot: 1, flags: 0 }, 'EINVAL', /size 0x1001 is not 4 KiB aligned/);
  rejects(vm, { ...bad, slot: 1, flags: 0, memorySize: 0x1000 }, 'EINVAL', /address 0x1001 is not 4 KiB aligned/);
  rejects(vm, { slot: 0x10001, flags: 0, guestPhysAddr: 0, memorySize: 8 * MiB }, 'EINVAL', /beyond the guest memory backing/);
  rejects(vm, { slot: 0x10001, flags: 0, guestPhysAddr: 0, memorySize: MiB }, 'EINVAL', /address space 1 does not exist/);
});

test('every slot flag KVM knows (LOG_DIRTY_PAGES 1, READONLY 2, GUEST_MEMFD 4) is rejected: none is implemented', () => {
  const vm = new Vm({ memorySize: MiB, defaultMemslot: false });
  for (const flags of [1, 2, 4, 8, 0x80000000]) rejects(vm, { slot: 0, flags, guestPhysAddr: 0, memorySize: MiB }, 'EINVAL', /not supported/);
  rejects(vm, { slot: 0, flags: -1, guestPhysAddr: 0, memorySize: MiB }, 'EINVAL', /not a u32/);
});

test('a slot beyond the backing is EINVAL (access_ok on the slot\'s bytes), also when it only ends beyond', () => {
  const vm = new Vm({ memorySize: 4 * MiB, defaultMemslot: false });
  rejects(vm, { slot: 0, flags: 0, guestPhysAddr: 4 * MiB, memorySize: 0x1000 }, 'EINVAL', /beyond the guest memory backing/);
  rejects(vm, { slot: 0, flags: 0, guestPhysAddr: 3 * MiB, memorySize: 2 * MiB }, 'EINVAL', /beyond/);
  rejects(vm, { slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 1n << 64n }, 'EINVAL', /memorySize must be a u64/);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 3 * MiB, memorySize: MiB }); // exactly to the end
});

test('overlap with another slot is EEXIST; touching is fine', () => {
  const vm = new Vm({ memorySize: 4 * MiB, defaultMemslot: false });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: MiB, memorySize: MiB });
  rejects(vm, { slot: 1, flags: 0, guestPhysAddr: MiB + 0x1000, memorySize: 0x1000 }, 'EEXIST', /overlaps slot 0/); // inside
  rejects(vm, { slot: 1, flags: 0, guestPhysAddr: 0, memorySize: 3 * MiB }, 'EEXIST', /overlaps slot 0/);            // around
  rejects(vm, { slot: 1, flags: 0, guestPhysAddr: 2 * MiB - 0x1000, memorySize: 0x2000 }, 'EEXIST', /overlaps/);    // tail
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0, memorySize: MiB });
  vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: 2 * MiB, memorySize: MiB });
  assert.deepEqual(vm.memslots.list().map((s) => s.id), [1, 0, 2]);
});

test('size 0 deletes; deleting a slot that does not exist is EINVAL (not ENOENT), as KVM', () => {
  const vm = new Vm({ memorySize: 4 * MiB, defaultMemslot: false });
  rejects(vm, { slot: 5, flags: 0, guestPhysAddr: 0, memorySize: 0 }, 'EINVAL', /slot 5 does not exist/);
  vm.setUserMemoryRegion({ slot: 5, flags: 0, guestPhysAddr: 0, memorySize: MiB });
  vm.setUserMemoryRegion({ slot: 5, flags: 0, guestPhysAddr: 0x123000, memorySize: 0 }); // the address is ignored for a delete
  assert.deepEqual(vm.memslots.list(), []);
  assert.equal(vm.mem.isRam(0), false);
});

test('re-setting a slot unchanged is a no-op; a different address or size is EINVAL (identity-mapped slots cannot move)', () => {
  const vm = new Vm({ memorySize: 4 * MiB, defaultMemslot: false });
  vm.setUserMemoryRegion({ slot: 3, flags: 0, guestPhysAddr: MiB, memorySize: MiB });
  vm.setUserMemoryRegion({ slot: 3, flags: 0, guestPhysAddr: MiB, memorySize: MiB });
  rejects(vm, { slot: 3, flags: 0, guestPhysAddr: 2 * MiB, memorySize: MiB }, 'EINVAL', /different address or size/);
  rejects(vm, { slot: 3, flags: 0, guestPhysAddr: MiB, memorySize: 2 * MiB }, 'EINVAL', /different address or size/);
});

test('Vms over one memory share it, and a plain PhysMemory is refused', () => {
  const vm0 = new Vm({ memorySize: 2 * MiB });
  const vm1 = new Vm({ memorySize: 0, memory: vm0.mem });
  assert.equal(vm1.mem, vm0.mem);
  assert.ok(vm0.mem instanceof GuestMemory);
  assert.throws(() => new Vm({ memorySize: MiB, memory: new PhysMemory(MiB) as GuestMemory }), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');
});

test('a GPA outside every slot is MMIO for the vCPU; deleting a slot the guest has been using turns it into MMIO at once', () => {
  const vm = new Vm({ memorySize: 2 * MiB, defaultMemslot: false });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: MiB });
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: MiB, memorySize: 0x10000 });
  const v = vm.createVcpu(0);
  // loop: mov eax, [0x100000]; out 0x80, al; jmp loop
  writeCode(v, 0x1000, [0xa1, 0x00, 0x00, 0x10, 0x00, 0xe6, 0x80, 0xeb, 0xf7]);
  vm.mem.write8(MiB, 0x5a);
  enterFlat32(v, 0x1000);
  for (let k = 0; k < 20; k++) assert.deepEqual(v.run(1000), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0x5a });
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: MiB, memorySize: 0 });
  assert.deepEqual(v.run(1000), { reason: 'mmio', isWrite: false, gpa: MiB, size: 4, value: 0n });
  v.completeMmio(0x77n);
  assert.deepEqual(v.run(1000), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0x77 });
  // Re-created: RAM again, with the bytes the backing kept.
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: MiB, memorySize: 0x10000 });
  assert.deepEqual(v.run(1000), { reason: 'io', direction: 'out', port: 0x80, size: 1, value: 0x5a });
});

test('code decoded from a slot is dropped with the slot: the old instructions do not run from MMIO', () => {
  const vm = new Vm({ memorySize: 2 * MiB, defaultMemslot: false });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: MiB });
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: MiB, memorySize: 0x1000 });
  const v = vm.createVcpu(0);
  writeCode(v, MiB, [0xe6, 0x80, 0xf4]); // out 0x80, al; hlt
  enterFlat32(v, MiB);
  assert.equal(v.run(100).reason, 'io');
  assert.equal(v.run(100).reason, 'hlt');
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: MiB, memorySize: 0 });
  const r = v.getRegs(); r.rip = BigInt(MiB); v.setRegs(r);
  v.setMpState(KVM_MP_STATE_RUNNABLE); // out of the HLT above
  // Fetching from MMIO reads all-ones bytes: not the old OUT; with no IDT the fault ends in shutdown.
  const exit = v.run(100);
  assert.notEqual(exit.reason, 'io');
  assert.equal(exit.reason, 'shutdown');
});
