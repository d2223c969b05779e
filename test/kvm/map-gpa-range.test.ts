// The upstream path (kvm-api-facts §4.2, §4.3): KVM_HC_MAP_GPA_RANGE (12)
// exits to the VMM as KVM_EXIT_HYPERCALL when enabled with
// KVM_CAP_EXIT_HYPERCALL (201, only bit 12), with KVM's own errors before any
// exit; the VMM answers with completeKvmHypercall(ret) (RAX, 32-bit truncation
// outside 64-bit mode, RIP past the VMCALL) and converts memory itself with
// the PRIVATE attribute; a guest access to a private frame is a memory-fault
// exit with the PRIVATE flag. Also which ABI a VMCALL reaches on a VM with
// Hyper-V (KVM's kvm_hv_hypercall_enabled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import { KvmError } from '../../src/kvm/errors.js';
import { resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEMORY_EXIT_FLAG_WRITE } from '../../src/kvm/exits.js';
import { KVM_CAP_EXIT_HYPERCALL, KVM_HC_MAP_GPA_RANGE, kvmPvCpuidEntries } from '../../src/kvm/kvm-hypercall.js';
import { Machine } from '../../src/vmm/machine.js';
import { HvFeatureError } from '../../src/kvm/hyperv/features.js';
import { enterFlat32, enterLong64, writeCode } from './guest-setup.js';
import { REPO } from '../paths.js';

const MiB = 1 << 20;
const CODE = 0x1000;
const U64 = 1n << 64n;
const ENOSYS = U64 - 1000n, EINVAL = U64 - 22n;
const ENCRYPTED = 1n << 4n;
const isEinval = (e: unknown) => e instanceof KvmError && e.code === 'EINVAL';

function setup(opts: { exits?: boolean; long?: boolean } = {}): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 4 * MiB, privateMemory: true, trace: true });
  if (opts.exits ?? true) vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE);
  const v = vm.createVcpu(0);
  writeCode(v, CODE, [0x0f, 0x01, 0xc1, 0xf4]); // vmcall; hlt
  if (opts.long === false) enterFlat32(v, CODE); else enterLong64(v, CODE);
  return { vm, v };
}

/** Starts MAP_GPA_RANGE(a0, a1, a2) at CODE and returns the first exit. */
function start(v: Vcpu, a0: bigint, a1: bigint, a2 = 0n): VcpuExit {
  v.setMpState(0);
  const r = v.getRegs();
  r.rip = BigInt(CODE); r.rax = BigInt(KVM_HC_MAP_GPA_RANGE); r.rbx = a0; r.rcx = a1; r.rdx = a2;
  v.setRegs(r);
  return v.run(100);
}

test('§4.2: without KVM_CAP_EXIT_HYPERCALL, MAP_GPA_RANGE is -1000 and nothing exits', () => {
  const { v } = setup({ exits: false });
  assert.equal(start(v, 0x10000n, 1n).reason, 'hlt');
  assert.equal(v.getRegs().rax, ENOSYS);
});

test('§4.2: KVM_CAP_EXIT_HYPERCALL accepts only a mask of bit 12; other capabilities cannot be enabled', () => {
  const vm = new Vm({ memorySize: 4 * MiB });
  assert.throws(() => vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 1 << 11), isEinval);
  assert.throws(() => vm.enableCap(KVM_CAP_EXIT_HYPERCALL, (1n << 12n) | (1n << 40n)), isEinval);
  assert.throws(() => vm.enableCap(KVM_CAP_EXIT_HYPERCALL, -1), isEinval);
  assert.throws(() => vm.enableCap(233, 1), isEinval);
  assert.equal(vm.hypercallExitMask, 0, 'failed calls change nothing');
  vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 1n << 12n);
  assert.equal(vm.hypercallExitMask, 1 << 12);
  vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 0);
  assert.equal(vm.hypercallExitMask, 0);
});

test('§4.2: a misaligned GPA, 0 pages, or a range whose frame number passes 2^64 is -22 without an exit', () => {
  const { v } = setup();
  for (const [gpa, n, what] of [
    [0x10001n, 1n, 'misaligned'], [0x10800n, 1n, 'misaligned'], [0x10000n, 0n, 'zero pages'],
    [0x1000n, U64 - 1n, 'gfn 1 + (2^64 - 1) pages wraps'], [U64 - 0x1000n, U64 - (1n << 52n) + 1n, 'the last gfn (2^52 - 1) + (2^64 - 2^52 + 1) pages wraps'],
  ] as const) {
    assert.equal(start(v, gpa, n).reason, 'hlt', what);
    assert.equal(v.getRegs().rax, EINVAL, what);
  }
  // The largest ranges that do not wrap exit (KVM does not check them against memory).
  assert.equal(start(v, 0n, U64 - 1n).reason, 'hypercall');
  v.completeKvmHypercall(0n);
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(start(v, U64 - 0x1000n, U64 - (1n << 52n)).reason, 'hypercall');
});

test('§4.2: an accepted call exits as KVM_EXIT_HYPERCALL with nr 12, a0..a2 and the long-mode flag; RIP stays on the VMCALL', () => {
  const { vm, v } = setup();
  const e = start(v, 0x200000n, 16n, ENCRYPTED | 1n);
  assert.deepEqual(e, { reason: 'hypercall', nr: 12, args: [0x200000n, 16n, ENCRYPTED | 1n], longMode: true });
  assert.equal(v.getRegs().rip, BigInt(CODE));
  assert.equal(vm.memoryAttributes.rangeCount, 0, 'KVM converts nothing itself');
  assert.equal(vm.trace!.named('kvm_exit').at(-1)!.args.reason, 'hypercall');
});

test('§4.2: completeKvmHypercall(ret) sets RAX and moves RIP past the VMCALL at the next run', () => {
  const { vm, v } = setup();
  start(v, 0x200000n, 2n, ENCRYPTED);
  vm.setMemoryAttributes({ address: 0x200000, size: 0x2000, attributes: 8, flags: 0 }); // the VMM converts
  v.completeKvmHypercall(0n);
  assert.equal(v.getRegs().rip, BigInt(CODE), 'applied at the next run, as KVM_RUN does');
  assert.equal(v.run(100).reason, 'hlt');
  const r = v.getRegs();
  assert.equal(r.rax, 0n);
  assert.equal(r.rip, BigInt(CODE + 4));
});

test('§4.2: a negative errno answer is stored as u64; a 32-bit caller gets it truncated to 32 bits, and its arguments are 32 bits', () => {
  const { v } = setup({ long: false });
  const e = start(v, (5n << 32n) | 0x3000n, (1n << 32n) | 3n, (1n << 33n) | ENCRYPTED);
  assert.deepEqual(e, { reason: 'hypercall', nr: 12, args: [0x3000n, 3n, ENCRYPTED], longMode: false });
  v.completeKvmHypercall(-22n);
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getRegs().rax, 0xffffffean);
  const { v: v64 } = setup();
  start(v64, 0x3000n, 1n);
  v64.completeKvmHypercall(-22n);
  v64.run(100);
  assert.equal(v64.getRegs().rax, EINVAL);
});

test('completeKvmHypercall is EINVAL without a pending exit, twice, or for a value outside -2^63..2^64-1; without an answer the VMCALL runs again', () => {
  const { v } = setup();
  assert.throws(() => v.completeKvmHypercall(0n), isEinval);
  start(v, 0x3000n, 1n);
  assert.throws(() => v.completeKvmHypercall(U64), isEinval);
  assert.throws(() => v.completeKvmHypercall(-(1n << 63n) - 1n), isEinval);
  assert.throws(() => v.completeKvmHypercall(5 as unknown as bigint), isEinval);
  const again = v.run(100);
  assert.deepEqual(again, { reason: 'hypercall', nr: 12, args: [0x3000n, 1n, 0n], longMode: true }, 'unanswered: the same exit again');
  v.completeKvmHypercall(0n);
  assert.throws(() => v.completeKvmHypercall(0n), isEinval, 'answered once already');
  assert.equal(v.run(100).reason, 'hlt');
  assert.throws(() => v.completeKvmHypercall(0n), isEinval, 'applied: nothing pending');
});

test('§4.2: a guest access to a frame the VMM made private is a memory-fault exit with the PRIVATE flag', () => {
  const { vm, v } = setup();
  vm.setMemoryAttributes({ address: 0x30000, size: 4096, attributes: 8, flags: 0 });
  writeCode(v, 0x1100, [0xc7, 0x04, 0x25, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0xf4]); // mov dword [0x30000], 1; hlt
  const r = v.getRegs(); r.rip = 0x1100n; v.setRegs(r);
  const e = v.run(100);
  assert.equal(e.reason, 'memory-fault');
  if (e.reason === 'memory-fault') {
    assert.equal(e.flags, KVM_MEMORY_EXIT_FLAG_WRITE | KVM_MEMORY_EXIT_FLAG_PRIVATE);
    assert.equal(e.gpa, 0x30000);
  }
});

test('§4.2: CPUID 0x40000001 EAX advertises HC_MAP_GPA_RANGE (bit 16) only once the exit is enabled, never MEM_PROTECTED (bit 15)', () => {
  const { vm } = setup({ exits: false });
  assert.equal(kvmPvCpuidEntries(vm)[1].eax, 0);
  vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 1 << 12);
  assert.equal(kvmPvCpuidEntries(vm)[1].eax, 1 << 16);
  const after = kvmPvCpuidEntries(vm, 0x40000100);
  assert.deepEqual(after.map((l) => l.function), [0x40000100, 0x40000101]);
  assert.equal(after[0].eax, 0x40000101);
});

test('a VM with Hyper-V: VMCALL reaches the KVM ABI while GUEST_OS_ID is 0 and the Hyper-V ABI once the guest set it (kvm_hv_hypercall_enabled)', () => {
  const vm = new Vm({ memorySize: 4 * MiB, privateMemory: true, hyperv: resolveHvFeatures({ flags: new Set(['hv-vpindex']) }) });
  const v = vm.createVcpu(0);
  writeCode(v, CODE, [0x0f, 0x01, 0xc1, 0xf4]);
  enterLong64(v, CODE);
  assert.equal(start(v, 0x3000n, 1n).reason, 'hlt');
  assert.equal(v.getRegs().rax, ENOSYS, 'KVM ABI: MAP_GPA_RANGE without its exit');
  vm.hyperv!.writeGuestOsId(0x8100_0000_0000_0000n);
  v.setMpState(0);
  const r = v.getRegs(); r.rip = BigInt(CODE); r.rcx = 0xffffn; v.setRegs(r); // an unknown Hyper-V call code
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getRegs().rax, 2n, 'Hyper-V ABI: HV_STATUS_INVALID_HYPERCALL_CODE');
});

const HELLO = join(REPO, 'guests/build/hello.elf');

test('the machine\'s MAP_GPA_RANGE handler converts with the PRIVATE attribute and answers 0, or -22 for what it cannot do', { skip: !existsSync(HELLO) && 'guests not built' }, () => {
  const m = new Machine({ image: readFileSync(HELLO), imagePath: HELLO, smp: 1, memory: 8 * MiB, serial: () => {}, protectedMemory: 'upstream' });
  assert.equal(m.vm.hypercallExitMask, 1 << 12, 'upstream mode enables the exit');
  const exit = (a0: bigint, a1: bigint, a2: bigint) => ({ reason: 'hypercall' as const, nr: 12, args: [a0, a1, a2] as const, longMode: true });
  assert.equal(m.mapGpaRange(exit(0x200000n, 2n, ENCRYPTED)), 0n);
  assert.deepEqual(m.vm.memoryAttributes.ranges(), [{ start: 0x200, end: 0x202, value: 8 }]);
  assert.equal(m.mapGpaRange(exit(0x201000n, 1n, 0n)), 0n, 'back to shared');
  assert.deepEqual(m.vm.memoryAttributes.ranges(), [{ start: 0x200, end: 0x201, value: 8 }]);
  assert.equal(m.mapGpaRange(exit(0x200000n, 1n, 1n << 5n)), -22n, 'unknown attribute bit');
  assert.equal(m.mapGpaRange(exit(8n * BigInt(MiB) - 0x1000n, 2n, ENCRYPTED)), -22n, 'runs past RAM');
  assert.deepEqual(m.vm.memoryAttributes.ranges(), [{ start: 0x200, end: 0x201, value: 8 }], 'failed calls convert nothing');
  const leaf = new Int32Array(4);
  m.vcpus[0].cpuid(0x40000001, 0, leaf);
  assert.equal(leaf[0], 1 << 16);
});

test('the machine refuses RFC mode with Hyper-V enlightenments, in one sentence', { skip: !existsSync(HELLO) && 'guests not built' }, () => {
  assert.throws(() => new Machine({
    image: readFileSync(HELLO), imagePath: HELLO, smp: 1, memory: 8 * MiB, serial: () => {}, protectedMemory: 'rfc',
    hv: { flags: new Set(['hv-relaxed']) },
  }), (e: unknown) => e instanceof HvFeatureError && /RFC mode cannot be combined with Hyper-V/.test(e.message));
});
