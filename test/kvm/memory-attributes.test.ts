// KVM_SET_MEMORY_ATTRIBUTES on a Vm: capability answer (kvm-api-facts.md §2.1),
// bits (§2.2), valid combinations (§2.3), validation order and errnos (§2.4),
// what the attributes allow (§2.5), storage as ranges, and the trace event (§2.8).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import {
  KVM_CAP_MEMORY_ATTRIBUTES, KVM_MEMORY_ATTRIBUTE_NR, KVM_MEMORY_ATTRIBUTE_NW, KVM_MEMORY_ATTRIBUTE_NX,
  KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ATTRIBUTE_XU, KVM_MEMORY_ATTRIBUTES_ALL, type MemoryAttributesRequest,
} from '../../src/kvm/memory-attributes.js';
import { ACCESS_ALL, ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_READ, ACCESS_WRITE } from '../../src/x86/host.js';

const MiB = 1 << 20;

function rejects(vm: Vm, req: MemoryAttributesRequest, code: string, message: RegExp): void {
  const before = vm.memoryAttributes.ranges();
  const gen = vm.memoryAttributes.generation;
  assert.throws(() => vm.setMemoryAttributes(req), (e: unknown) => {
    assert.ok(e instanceof KvmError, `expected a KvmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
  // §2.4 / DESIGN §5: a rejected call changes nothing.
  assert.deepEqual(vm.memoryAttributes.ranges(), before);
  assert.equal(vm.memoryAttributes.generation, gen);
}

test('§2.1/§2.2: numbers, and the capability answer is NR|NW|NX|XU (our extension), plus PRIVATE only for a private-memory VM', () => {
  assert.equal(KVM_CAP_MEMORY_ATTRIBUTES, 233);
  assert.deepEqual([KVM_MEMORY_ATTRIBUTE_NR, KVM_MEMORY_ATTRIBUTE_NW, KVM_MEMORY_ATTRIBUTE_NX, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ATTRIBUTE_XU], [1, 2, 4, 8, 0x10]);
  assert.equal(new Vm({ memorySize: MiB }).supportedMemoryAttributes(), 0x17);
  assert.equal(new Vm({ memorySize: MiB, privateMemory: true }).supportedMemoryAttributes(), 0x1f);
  assert.equal(KVM_MEMORY_ATTRIBUTES_ALL, 0x1f); // system scope reports all
});

test('§2.3: exactly 0x0, 0x2, 0x4, 0x6, 0x7 are valid, XU only beside NX with read (0x14, 0x16), 0x8 only with private memory, nothing else', () => {
  const valid = new Set([0x0, 0x2, 0x4, 0x6, 0x7, 0x14, 0x16]);
  for (const priv of [false, true]) {
    const vm = new Vm({ memorySize: MiB, privateMemory: priv });
    for (let a = 0; a < 0x40; a++) {
      const ok = valid.has(a) || (priv && a === 0x8);
      const req = { address: 0x1000n, size: 0x1000n, attributes: BigInt(a), flags: 0n };
      if (ok) {
        vm.setMemoryAttributes(req);
        assert.equal(vm.memoryAttributes.get(1), a, `attributes 0x${a.toString(16)} (private=${priv})`);
      } else {
        rejects(vm, req, 'EINVAL', /not a valid combination/);
      }
    }
  }
});

test('§2.4: validation order is flags, then attributes, then size/wrap, then alignment', () => {
  const vm = new Vm({ memorySize: MiB });
  // Everything wrong at once: flags are reported.
  rejects(vm, { address: 0x1001n, size: 0n, attributes: 0x1n, flags: 1n }, 'EINVAL', /flags must be 0/);
  // Flags fine: the invalid combination (write without read) is next.
  rejects(vm, { address: 0x1001n, size: 0n, attributes: 0x1n, flags: 0n }, 'EINVAL', /not a valid combination/);
  // Then size 0 before misalignment.
  rejects(vm, { address: 0x1001n, size: 0n, attributes: 0x2n, flags: 0n }, 'EINVAL', /size is 0/);
  // Then wrap before misalignment.
  rejects(vm, { address: 0xffff_ffff_ffff_f001n, size: 0x2000n, attributes: 0x2n, flags: 0n }, 'EINVAL', /wraps/);
  // Last: alignment of address, then of size.
  rejects(vm, { address: 0x1001n, size: 0x1000n, attributes: 0x2n, flags: 0n }, 'EINVAL', /aligned/);
  rejects(vm, { address: 0x1000n, size: 0x1001n, attributes: 0x2n, flags: 0n }, 'EINVAL', /aligned/);
  // The exact top of the address space does not wrap.
  vm.setMemoryAttributes({ address: 0xffff_ffff_ffff_f000n, size: 0x1000n, attributes: 0x2n, flags: 0n });
  assert.equal(vm.memoryAttributes.get(2 ** 52 - 1), 0x2);
});

test('§2.4: a request that is not an object is the copy failure (EFAULT); values that are not u64 are EINVAL', () => {
  const vm = new Vm({ memorySize: MiB });
  rejects(vm, null as unknown as MemoryAttributesRequest, 'EFAULT', /not an object/);
  rejects(vm, { address: -4096, size: 0x1000n, attributes: 0n, flags: 0n }, 'EINVAL', /address must be a u64/);
  rejects(vm, { address: 0n, size: 1n << 64n, attributes: 0n, flags: 0n }, 'EINVAL', /size must be a u64/);
  rejects(vm, { address: 0n, size: 0x1000n, attributes: 0.5, flags: 0n }, 'EINVAL', /attributes must be a u64/);
});

test('§2.1: numbers work as u64 fields; the range need not be RAM (§2.4 "need not be covered by memslots")', () => {
  const vm = new Vm({ memorySize: MiB });
  vm.setMemoryAttributes({ address: 64 * MiB, size: 8192, attributes: KVM_MEMORY_ATTRIBUTE_NX, flags: 0 });
  assert.deepEqual(vm.memoryAttributes.ranges(), [{ start: 64 * 256, end: 64 * 256 + 2, value: 4 }]);
});

test('§2.5: attributes become the page permissions the vCPU reports to the CPU', () => {
  const vm = new Vm({ memorySize: MiB, privateMemory: true });
  const v = vm.createVcpu(0);
  const cases: [number, number][] = [
    [0x0, ACCESS_ALL],                               // RW/X (user execute too)
    [0x2, ACCESS_READ | ACCESS_EXEC | ACCESS_EXEC_USER], // RO/X
    [0x4, ACCESS_READ | ACCESS_WRITE],               // RW/NX
    [0x6, ACCESS_READ],                              // RO/NX
    [0x7, 0],                                        // no access
    [0x8, 0],                                        // private: no shared access (see memory-fault tests)
    [0x14, ACCESS_READ | ACCESS_WRITE | ACCESS_EXEC_USER], // RW, user execute only (XU)
    [0x16, ACCESS_READ | ACCESS_EXEC_USER],          // R, user execute only (XU)
  ];
  cases.forEach(([attrs, perms], k) => {
    vm.setMemoryAttributes({ address: BigInt(k * 4096), size: 4096n, attributes: BigInt(attrs), flags: 0n });
    assert.equal(v.pagePermissions(k), perms, `attributes 0x${attrs.toString(16)}`);
  });
  // Setting 0 removes the restriction (§2.1 "acts like delete").
  vm.setMemoryAttributes({ address: 0n, size: 8n * 4096n, attributes: 0n, flags: 0n });
  assert.equal(vm.memoryAttributes.rangeCount, 0);
  for (let k = 0; k < 8; k++) assert.equal(v.pagePermissions(k), ACCESS_ALL);
});

test('storage is ranges: a million-page range is one range, and a hole in it makes three', () => {
  const vm = new Vm({ memorySize: MiB });
  vm.setMemoryAttributes({ address: 0n, size: 1_000_000n * 4096n, attributes: 6n, flags: 0n });
  assert.equal(vm.memoryAttributes.rangeCount, 1);
  vm.setMemoryAttributes({ address: 500_000n * 4096n, size: 4096n, attributes: 0n, flags: 0n });
  assert.deepEqual(vm.memoryAttributes.ranges(), [
    { start: 0, end: 500_000, value: 6 }, { start: 500_001, end: 1_000_000, value: 6 },
  ]);
  vm.setMemoryAttributes({ address: 500_000n * 4096n, size: 4096n, attributes: 7n, flags: 0n });
  assert.equal(vm.memoryAttributes.rangeCount, 3);
});

test('§2.7: guestAccessAllowed answers for KVM-internal accesses, and MMIO addresses ignore attributes', () => {
  const vm = new Vm({ memorySize: MiB });
  vm.setMemoryAttributes({ address: 0x2000n, size: 0x1000n, attributes: 7n, flags: 0n });
  vm.setMemoryAttributes({ address: 0x3000n, size: 0x1000n, attributes: 2n, flags: 0n });
  vm.setMemoryAttributes({ address: BigInt(2 * MiB), size: 0x1000n, attributes: 7n, flags: 0n });
  assert.equal(vm.guestAccessAllowed(0x2010, ACCESS_READ), false);
  assert.equal(vm.guestAccessAllowed(0x3010, ACCESS_READ), true);
  assert.equal(vm.guestAccessAllowed(0x3010, ACCESS_WRITE), false);
  assert.equal(vm.guestAccessAllowed(0x4000, ACCESS_WRITE), true);
  assert.equal(vm.guestAccessAllowed(2 * MiB, ACCESS_WRITE), true); // beyond RAM: MMIO, attributes ignored (§2.5)
});

test('§2.8: every accepted change emits kvm_vm_set_mem_attributes with gfn, count and attributes; rejected ones none', () => {
  const vm = new Vm({ memorySize: MiB, trace: true });
  vm.setMemoryAttributes({ address: 0x10000n, size: 0x3000n, attributes: 0x6n, flags: 0n });
  assert.throws(() => vm.setMemoryAttributes({ address: 0x10000n, size: 0x3000n, attributes: 0x1n, flags: 0n }), KvmError);
  const ev = vm.trace!.named('kvm_vm_set_mem_attributes');
  assert.equal(ev.length, 1);
  assert.equal(ev[0].vcpu, -1);
  assert.deepEqual(ev[0].args, { gfn: '10', cnt: '3', attributes: '6' });
});
