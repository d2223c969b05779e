// The memory-fault exit's exactGpa (our addition to KVM_EXIT_MEMORY_FAULT,
// kvm-api-facts §2.6, whose gpa is the page base): the byte a VSM GPA
// intercept message must report (tlfs-vsm-facts §4.5) — the first denied
// byte of a data access, or for a page walk (§2.5/§2.7) the paging-structure
// entry the walker read or A/D-updated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import { KVM_MEMORY_EXIT_FLAG_READ, KVM_MEMORY_EXIT_FLAG_WRITE } from '../../src/kvm/exits.js';
import { AccessOrigin } from '../../src/x86/host.js';
import { enterFlat32, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
type MemoryFault = Extract<VcpuExit, { reason: 'memory-fault' }>;
const protect = (vm: Vm, gpa: number, attributes: number) =>
  vm.setMemoryAttributes({ address: BigInt(gpa), size: 4096n, attributes: BigInt(attributes), flags: 0n });
function fault(e: VcpuExit): MemoryFault {
  assert.equal(e.reason, 'memory-fault');
  return e as MemoryFault;
}
function flat(code: readonly number[]): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 2 * MiB });
  const v = vm.createVcpu(0);
  writeCode(v, 0x1000, code);
  enterFlat32(v, 0x1000);
  return { vm, v };
}

test('a data read: gpa is the page base (KVM), exactGpa the byte read', () => {
  const { vm, v } = flat([0x8b, 0x1d, 0x17, 0x30, 0x00, 0x00, 0xf4]); // mov ebx, [0x3017]; hlt
  protect(vm, 0x3000, 0x7);
  const f = fault(v.run(100));
  assert.deepEqual([f.gpa, f.exactGpa, f.gva, f.origin], [0x3000, 0x3017, 0x3017n, AccessOrigin.Guest]);
});

test('a write across a page boundary into a read-only page: exactGpa is the first byte of the denied page', () => {
  const { vm, v } = flat([0x89, 0x1d, 0xfe, 0x3f, 0x00, 0x00, 0xf4]); // mov [0x3ffe], ebx; hlt
  protect(vm, 0x4000, 0x2);
  const f = fault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.deepEqual([f.gpa, f.exactGpa, f.gva], [0x4000, 0x4000, 0x4000n]);
  assert.equal(vm.mem.read16(0x3ffe), 0, 'nothing was written to the first page either');
});

// 32-bit paging: PD at 0x10000; PDE 0 -> PT 0x11000 (first 4 MiB 1:1), PDE 1 -> PT 0x12000 with PTE 5 -> 0x3000.
function paged(ptAccessed: boolean): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 8 * MiB });
  const v = vm.createVcpu(0);
  const P = 1, W = 2, A = 0x20;
  vm.mem.write32(0x10000, 0x11000 | P | W | A);
  vm.mem.write32(0x10004, 0x12000 | P | W | A);
  for (let k = 0; k < 1024; k++) vm.mem.write32(0x11000 + 4 * k, (k << 12) | P | W | A);
  vm.mem.write32(0x12000 + 4 * 5, 0x3000 | P | W | (ptAccessed ? A : 0));
  writeCode(v, 0x1000, [0x8b, 0x1d, 0x10, 0x50, 0x40, 0x00, 0xf4]); // mov ebx, [0x405010]; hlt
  enterFlat32(v, 0x1000, { pageDirectory: 0x10000 });
  return { vm, v };
}

test('a page walk reading a no-access page table: exactGpa is the PTE, gva the address translated', () => {
  const { vm, v } = paged(true);
  protect(vm, 0x12000, 0x7);
  const f = fault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_READ);
  assert.deepEqual([f.gpa, f.exactGpa, f.gva, f.origin], [0x12000, 0x12014, 0x405010n, AccessOrigin.PageWalk]);
});

test('a page walk setting the Accessed bit in a read-only page table: exactGpa is the PTE it would write', () => {
  const { vm, v } = paged(false);
  protect(vm, 0x12000, 0x2);
  const f = fault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.deepEqual([f.gpa, f.exactGpa, f.origin], [0x12000, 0x12014, AccessOrigin.PageWalk]);
  assert.equal(vm.mem.read32(0x12014) & 0x20, 0);
});
