// Memory-fault exits (kvm-api-facts.md §2.5, §2.6, §2.7): guest code runs on a
// vCPU, memory attributes deny an access, run() returns a 'memory-fault' exit
// with exactly one of READ/WRITE/EXEC (write wins, then exec, else read), the
// page base, size 4096 and the instruction length, and the instruction does
// not complete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import {
  KVM_MEMORY_EXIT_FLAG_EXEC, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEMORY_EXIT_FLAG_READ, KVM_MEMORY_EXIT_FLAG_WRITE,
} from '../../src/kvm/exits.js';
import { AccessOrigin } from '../../src/x86/host.js';
import { enterFlat32, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
type MemoryFault = Extract<VcpuExit, { reason: 'memory-fault' }>;

function protect(vm: Vm, gpa: number, attributes: number, pages = 1): void {
  vm.setMemoryAttributes({ address: BigInt(gpa), size: BigInt(pages * 4096), attributes: BigInt(attributes), flags: 0n });
}

function expectFault(exit: VcpuExit): MemoryFault {
  assert.equal(exit.reason, 'memory-fault', `expected a memory-fault exit, got ${JSON.stringify(exit, (_, x) => typeof x === 'bigint' ? x.toString() : x)}`);
  return exit as MemoryFault;
}

function setup(code: readonly number[], opts: { privateMemory?: boolean; trace?: boolean } = {}): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 2 * MiB, ...opts });
  const v = vm.createVcpu(0);
  writeCode(v, 0x1000, code);
  enterFlat32(v, 0x1000);
  return { vm, v };
}

test('§2.5: a data read of a no-access page (NR|NW|NX) is a READ fault with the load\'s length', () => {
  const { vm, v } = setup([0x8b, 0x1d, 0x10, 0x30, 0x00, 0x00, 0xf4]); // mov ebx, [0x3010]; hlt
  protect(vm, 0x3000, 0x7);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_READ);
  assert.equal(f.gpa, 0x3000);  // §2.6: page base, not the accessed byte
  assert.equal(f.gva, 0x3010n); // the access's own linear address
  assert.equal(f.size, 4096);
  assert.equal(f.insnLen, 6);
  assert.equal(v.getRegs().rip, 0x1000n);
});

test('§2.5: a write to a read-only page (NW) is a WRITE fault; reading it is fine', () => {
  const { vm, v } = setup([
    0x8b, 0x1d, 0x00, 0x30, 0x00, 0x00, // mov ebx, [0x3000]
    0x89, 0x1d, 0x04, 0x30, 0x00, 0x00, // mov [0x3004], ebx
    0xf4,
  ]);
  vm.mem.write32(0x3000, 0x11223344);
  protect(vm, 0x3000, 0x2);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.equal(f.gpa, 0x3000);
  assert.equal(f.insnLen, 6);
  const r = v.getRegs();
  assert.equal(r.rip, 0x1006n);
  assert.equal(r.rbx, 0x11223344n);
  assert.equal(vm.mem.read32(0x3004), 0);
});

test('§2.5: a read-modify-write of a read-only page faults WRITE (write wins) and leaves memory alone', () => {
  const { vm, v } = setup([0x83, 0x05, 0x00, 0x30, 0x00, 0x00, 0x01, 0xf4]); // add dword [0x3000], 1; hlt
  vm.mem.write32(0x3000, 41);
  protect(vm, 0x3000, 0x2);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.equal(f.insnLen, 7);
  assert.equal(vm.mem.read32(0x3000), 41);
  protect(vm, 0x3000, 0);
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(vm.mem.read32(0x3000), 42);
});

test('§2.5/§2.6: a branch into a non-executable page is an EXEC fault at the target, insnLen 0 (documented choice)', () => {
  const { vm, v } = setup([0xb8, 0x00, 0x50, 0x00, 0x00, 0xff, 0xd0], { trace: true }); // mov eax, 0x5000; call eax
  writeCode(v, 0x5000, [0xf4]);
  protect(vm, 0x5000, 0x4); // NX
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_EXEC);
  assert.equal(f.gpa, 0x5000);
  assert.equal(f.gva, 0x5000n);
  assert.equal(f.insnLen, 0);
  assert.equal(f.insnBytes.length, 0);
  // The CALL completed (return address pushed); the fetch at the target did not.
  const r = v.getRegs();
  assert.equal(r.rip, 0x5000n);
  assert.equal(r.rsp, 0x8000n - 4n);
  assert.equal(vm.mem.read32(0x8000 - 4), 0x1007);
  const ev = vm.trace!.named('kvm_mem_attributes_faultin_access_prots');
  assert.deepEqual(ev.map((e) => e.args), [{ guest_rip: '5000', gfn: '5', write: false, exec: true, mem_attrs: '4' }]);
  protect(vm, 0x5000, 0);
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getRegs().rip, 0x5001n);
});

test('§2.5: code already run on a page faults EXEC once the page becomes NX (decoded code is not trusted)', () => {
  // 0x1000: out 0x80, al; jmp 0x1000  (a loop that exits on every OUT)
  const { vm, v } = setup([0xe6, 0x80, 0xeb, 0xfc]);
  for (let k = 0; k < 3; k++) assert.equal(v.run(1000).reason, 'io');
  protect(vm, 0x1000, 0x6); // R-- : no execute
  const f = expectFault(v.run(1000));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_EXEC);
  assert.equal(f.gpa, 0x1000);
});

test('a change applies to fast paths already warmed up: a write loop faults right after NW is set, on every vCPU', () => {
  // loop: mov [0x4000], eax; inc eax; out 0x80, al; jmp loop
  const code = [0xa3, 0x00, 0x40, 0x00, 0x00, 0x40, 0xe6, 0x80, 0xeb, 0xf6];
  const vm = new Vm({ memorySize: 2 * MiB });
  const cpus = [vm.createVcpu(0), vm.createVcpu(1)];
  writeCode(cpus[0], 0x1000, code);
  for (const v of cpus) { enterFlat32(v, 0x1000); for (let k = 0; k < 50; k++) assert.equal(v.run(1000).reason, 'io'); }
  const last = vm.mem.read32(0x4000);
  protect(vm, 0x4000, 0x2);
  for (const v of cpus) {
    const f = expectFault(v.run(1000));
    assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
    assert.equal(v.getRegs().rip, 0x1000n);
  }
  assert.equal(vm.mem.read32(0x4000), last);
});

test('a write that straddles two pages faults on the protected second page and writes neither', () => {
  const { vm, v } = setup([0xc7, 0x05, 0xfe, 0x3f, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11, 0xf4]); // mov dword [0x3ffe], 0x11223344
  protect(vm, 0x4000, 0x2);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.equal(f.gpa, 0x4000);
  assert.equal(f.insnLen, 10);
  assert.equal(vm.mem.read16(0x3ffe), 0);
  assert.equal(vm.mem.read16(0x4000), 0);
});

test('REP MOVSB into a read-only page faults WRITE at that page: string fast paths honour attributes', () => {
  // mov esi, 0x3000; mov edi, 0x4000; mov ecx, 256; rep movsb; hlt
  const { vm, v } = setup([0xbe, 0x00, 0x30, 0x00, 0x00, 0xbf, 0x00, 0x40, 0x00, 0x00, 0xb9, 0x00, 0x01, 0x00, 0x00, 0xf3, 0xa4, 0xf4]);
  vm.mem.fill(0x3000, 256, 0xab);
  protect(vm, 0x4000, 0x2);
  const f = expectFault(v.run(10_000));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.equal(f.gpa, 0x4000);
  assert.equal(f.insnLen, 2);
  assert.deepEqual([...f.insnBytes], [0xf3, 0xa4]);
  assert.equal(vm.mem.read8(0x4000), 0);
  protect(vm, 0x4000, 0);
  assert.equal(v.run(10_000).reason, 'hlt');
  assert.equal(vm.mem.read8(0x40ff), 0xab);
});

test('§2.5: attributes on MMIO addresses are ignored: the access is an ordinary mmio exit', () => {
  // mov eax, [0x100000]; hlt, with RAM only below 1 MiB
  const vm = new Vm({ memorySize: 2 * MiB, defaultMemslot: false });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: MiB });
  const v = vm.createVcpu(0);
  writeCode(v, 0x1000, [0xa1, 0x00, 0x00, 0x10, 0x00, 0xf4]);
  enterFlat32(v, 0x1000);
  protect(vm, MiB, 0x7);
  assert.deepEqual(v.run(100), { reason: 'mmio', isWrite: false, gpa: MiB, size: 4, value: 0n });
  v.completeMmio(0x12345678n);
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getRegs().rax, 0x12345678n);
});

test('§2.6: an access to a PRIVATE frame faults with PRIVATE plus the access kind', () => {
  const { vm, v } = setup([0x8b, 0x1d, 0x00, 0x30, 0x00, 0x00, 0xf4], { privateMemory: true });
  protect(vm, 0x3000, 0x8);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE | KVM_MEMORY_EXIT_FLAG_READ);
  assert.equal(f.gpa, 0x3000);
});

// 32-bit paging: page directory at 0x10000, one page table at 0x11000 mapping the first 4 MiB 1:1.
function pagedSetup(ptAccessed: boolean): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 8 * MiB });
  const v = vm.createVcpu(0);
  const P = 1, W = 2, A = 0x20;
  vm.mem.write32(0x10000, 0x11000 | P | W | A);
  for (let k = 0; k < 1024; k++) vm.mem.write32(0x11000 + 4 * k, (k << 12) | P | W | (ptAccessed ? A : 0));
  writeCode(v, 0x1000, [0x8b, 0x1d, 0x00, 0x30, 0x00, 0x00, 0xf4]); // mov ebx, [0x3000]; hlt
  enterFlat32(v, 0x1000, { pageDirectory: 0x10000 });
  return { vm, v };
}

test('§2.7: a page walk that must set an Accessed bit in a read-only page table faults WRITE on the table page', () => {
  const { vm, v } = pagedSetup(false);
  protect(vm, 0x11000, 0x2);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_WRITE);
  assert.equal(f.gpa, 0x11000);
  assert.equal(f.origin, AccessOrigin.PageWalk);
  assert.equal(f.gva, 0x1000n); // the walk was for the instruction fetch at RIP
  assert.equal(f.insnLen, 0);   // no instruction was fetched yet
  assert.equal(vm.mem.read32(0x11000 + 4) & 0x20, 0);
});

test('§2.7: the same walk over tables whose Accessed bits are already set only reads them: no fault', () => {
  const { vm, v } = pagedSetup(true);
  protect(vm, 0x11000, 0x2);
  assert.equal(v.run(100).reason, 'hlt');
});

test('§2.5: a page walk reading a no-access page table faults READ with origin PageWalk', () => {
  const { vm, v } = pagedSetup(true);
  protect(vm, 0x11000, 0x7);
  const f = expectFault(v.run(100));
  assert.equal(f.flags, KVM_MEMORY_EXIT_FLAG_READ);
  assert.equal(f.gpa, 0x11000);
  assert.equal(f.origin, AccessOrigin.PageWalk);
});
