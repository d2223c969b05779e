// Mode-based execute control per vCPU (our extension, src/kvm/mbec.ts and
// README "Mode-based execute control"): the XU memory attribute lets user-mode
// linear addresses execute despite NX on a vCPU with MBEC on; a denied user
// fetch exits EXEC|XU; ONLY_WITH_SMEP leaves NX in charge while CR4.SMEP = 0;
// bad flags are EINVAL and change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { KvmError } from '../../src/kvm/errors.js';
import { KVM_MEMORY_EXIT_FLAG_EXEC, KVM_MEMORY_EXIT_FLAG_XU } from '../../src/kvm/exits.js';
import { KVM_MEMORY_ATTRIBUTE_NW, KVM_MEMORY_ATTRIBUTE_NX, KVM_MEMORY_ATTRIBUTE_XU } from '../../src/kvm/memory-attributes.js';
import { KVM_X86_MBEC_ENABLE, KVM_X86_MBEC_ONLY_WITH_SMEP } from '../../src/kvm/mbec.js';
import { enterLong64, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const NX = KVM_MEMORY_ATTRIBUTE_NX, NW = KVM_MEMORY_ATTRIBUTE_NW, XU = KVM_MEMORY_ATTRIBUTE_XU;
const TABLES = 0x20000, CODE = 0x1000;
const PTE_U = 4n;

/**
 * A 64-bit vCPU at CPL0 (CR4.SMEP = 0) running `mov eax, 0x77; hlt` at 0x1000, a page that is a
 * user-mode linear address when `user` (U/S = 1 at every level of its 2 MiB identity map).
 */
function setup(user: boolean): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 2 * MiB });
  const v = vm.createVcpu(0);
  writeCode(v, CODE, [0xb8, 0x77, 0, 0, 0, 0xf4]);
  enterLong64(v, CODE, TABLES);
  if (user) for (const e of [TABLES, TABLES + 0x1000, TABLES + 0x2000]) vm.mem.write64(e, vm.mem.read64(e) | PTE_U);
  return { vm, v };
}

function protectCode(vm: Vm, attributes: number): void {
  vm.setMemoryAttributes({ address: BigInt(CODE), size: 4096n, attributes: BigInt(attributes), flags: 0n });
}

/** The exit flags of a memory-fault at the code page, or 'ran' when the code reached its HLT. */
function outcome(v: Vcpu): number | 'ran' {
  const e = v.run(100);
  if (e.reason === 'hlt') { assert.equal(v.getRegs().rax & 0xffn, 0x77n); return 'ran'; }
  assert.equal(e.reason, 'memory-fault');
  if (e.reason !== 'memory-fault') throw new Error('unreachable');
  assert.equal(e.gpa, CODE);
  assert.equal(v.getRegs().rip, BigInt(CODE), 'the fetch did not complete');
  return e.flags;
}

test('MBEC off: NX governs every fetch, XU is ignored (EXEC fault, no XU flag)', () => {
  const { vm, v } = setup(true);
  protectCode(vm, NX | XU);
  assert.equal(v.getMbecControl(), 0);
  assert.equal(outcome(v), KVM_MEMORY_EXIT_FLAG_EXEC);
});

test('MBEC on: a user-mode address runs under NX|XU, and faults EXEC|XU under NX alone', () => {
  const { vm, v } = setup(true);
  v.setMbecControl(KVM_X86_MBEC_ENABLE);
  assert.equal(v.getMbecControl(), KVM_X86_MBEC_ENABLE);
  protectCode(vm, NX);
  assert.equal(outcome(v), KVM_MEMORY_EXIT_FLAG_EXEC | KVM_MEMORY_EXIT_FLAG_XU);
  protectCode(vm, NW | NX | XU);
  assert.equal(outcome(v), 'ran');
});

test('MBEC on: a supervisor-mode address stays under NX (XU does not help it)', () => {
  const { vm, v } = setup(false);
  v.setMbecControl(KVM_X86_MBEC_ENABLE);
  protectCode(vm, NX | XU);
  assert.equal(outcome(v), KVM_MEMORY_EXIT_FLAG_EXEC);
  protectCode(vm, NW);
  assert.equal(outcome(v), 'ran');
});

test('ONLY_WITH_SMEP: with CR4.SMEP = 0 NX governs user-mode addresses too; turning MBEC off again applies at the next run', () => {
  const { vm, v } = setup(true);
  v.setMbecControl(KVM_X86_MBEC_ENABLE | KVM_X86_MBEC_ONLY_WITH_SMEP);
  assert.equal(v.getMbecControl(), KVM_X86_MBEC_ENABLE | KVM_X86_MBEC_ONLY_WITH_SMEP);
  protectCode(vm, NX | XU);
  assert.equal(outcome(v), KVM_MEMORY_EXIT_FLAG_EXEC);
  v.setMbecControl(KVM_X86_MBEC_ENABLE);
  assert.equal(outcome(v), 'ran');
});

test('bad flags are EINVAL and change nothing', () => {
  const { v } = setup(true);
  v.setMbecControl(KVM_X86_MBEC_ENABLE);
  for (const bad of [4, -1, 1.5, Number.NaN, KVM_X86_MBEC_ONLY_WITH_SMEP, '1' as unknown as number]) {
    assert.throws(() => v.setMbecControl(bad), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL', String(bad));
    assert.equal(v.getMbecControl(), KVM_X86_MBEC_ENABLE);
  }
});
