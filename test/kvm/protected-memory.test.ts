// The protmem RFC ABI from the guest side (kvm-api-facts §4.1, §4.3): hypercalls
// ENABLE_MEM_PROTECTED (12), MEM_SHARE (13), MEM_UNSHARE (14) through VMCALL with
// the KVM convention (nr in RAX, args in RBX/RCX, result in RAX), every return
// value of the §4.1 table that this model can reach, the CPUID feature bit,
// and the per-VM mode rules. The host side is protected-memory-host.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { KvmError } from '../../src/kvm/errors.js';
import { resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE, kvmPvCpuidEntries,
} from '../../src/kvm/kvm-hypercall.js';
import { enterFlat32, enterLong64, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const CODE = 0x1000;
/** -n as the guest sees it in a 64-bit RAX. */
const neg = (n: number): bigint => BigInt.asUintN(64, BigInt(-n));
const ENOSYS = neg(1000), EINVAL = neg(22);

/** An RFC-mode VM: slot 0 = the first 4 MiB, a vCPU in 64-bit mode at `vmcall; hlt`. */
function rfcVm(opts: { long?: boolean } = {}): { vm: Vm; v: Vcpu } {
  const vm = new Vm({ memorySize: 16 * MiB, defaultMemslot: false, protectedMemoryRfc: true });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 4 * MiB });
  const v = vm.createVcpu(0);
  writeCode(v, CODE, [0x0f, 0x01, 0xc1, 0xf4]); // vmcall; hlt
  if (opts.long === false) enterFlat32(v, CODE); else enterLong64(v, CODE);
  return { vm, v };
}

/** One hypercall from CODE: RAX = nr, RBX/RCX/RDX = a0..a2; returns RAX after the HLT. */
function call(v: Vcpu, nr: number | bigint, a0: bigint = 0n, a1: bigint = 0n, a2: bigint = 0n): bigint {
  v.setMpState(0); // leave the previous call's HLT
  const r = v.getRegs();
  r.rip = BigInt(CODE); r.rax = BigInt(nr); r.rbx = a0; r.rcx = a1; r.rdx = a2;
  v.setRegs(r);
  const e = v.run(100);
  assert.equal(e.reason, 'hlt', `the call should complete in the kernel, got ${e.reason}`);
  assert.equal(v.getRegs().rip, BigInt(CODE + 4), 'RIP past the VMCALL and the HLT');
  return v.getRegs().rax;
}

const gfn = (gpa: number): bigint => BigInt(gpa / 4096);
const ranges = (vm: Vm) => vm.protectedMemory!.ranges().map((r) => [r.start, r.end]);

test('§4.1: CPUID 0x40000000 is KVM\'s signature and 0x40000001 EAX has exactly bit 15 (MEM_PROTECTED) in RFC mode', () => {
  const { vm, v } = rfcVm();
  const leaves = kvmPvCpuidEntries(vm);
  v.setCpuid(leaves);
  const out = new Int32Array(4);
  v.cpuid(0x40000000, 0, out);
  assert.equal(out[0] >>> 0, 0x40000001, 'EAX: the highest KVM leaf');
  const sig = Buffer.alloc(12);
  sig.writeInt32LE(out[1], 0); sig.writeInt32LE(out[2], 4); sig.writeInt32LE(out[3], 8);
  assert.equal(sig.toString('latin1'), 'KVMKVMKVM\0\0\0');
  v.cpuid(0x40000001, 0, out);
  assert.equal(out[0] >>> 0, 1 << 15, 'MEM_PROTECTED (15) and not HC_MAP_GPA_RANGE (16) (§4.3)');
});

test('§4.1: ENABLE returns 0, makes every memslot protected, and is idempotent', () => {
  const { vm, v } = rfcVm();
  assert.equal(vm.protectedMemory!.enabled, false);
  assert.deepEqual(ranges(vm), [], 'nothing is protected before ENABLE');
  assert.equal(call(v, KVM_HC_ENABLE_MEM_PROTECTED), 0n);
  assert.equal(vm.protectedMemory!.enabled, true);
  assert.deepEqual(ranges(vm), [[0, 1024]], 'the whole 4 MiB slot');
  assert.equal(call(v, KVM_HC_ENABLE_MEM_PROTECTED), 0n);
  assert.deepEqual(ranges(vm), [[0, 1024]]);
});

test('§4.1: SHARE/UNSHARE succeed with 0 and flip exactly the pages asked for', () => {
  const { vm, v } = rfcVm();
  call(v, KVM_HC_ENABLE_MEM_PROTECTED);
  assert.equal(call(v, KVM_HC_MEM_SHARE, gfn(0x100000), 4n), 0n);
  assert.deepEqual(ranges(vm), [[0, 0x100], [0x104, 1024]]);
  assert.equal(call(v, KVM_HC_MEM_UNSHARE, gfn(0x101000), 2n), 0n);
  assert.deepEqual(ranges(vm), [[0, 0x100], [0x101, 0x103], [0x104, 1024]]);
});

test('§4.1: SHARE/UNSHARE of 0 pages return 0 and change nothing, even at a GFN in no memslot', () => {
  const { vm, v } = rfcVm();
  call(v, KVM_HC_ENABLE_MEM_PROTECTED);
  assert.equal(call(v, KVM_HC_MEM_SHARE, 5n, 0n), 0n);
  assert.equal(call(v, KVM_HC_MEM_UNSHARE, gfn(8 * MiB), 0n), 0n);
  assert.deepEqual(ranges(vm), [[0, 1024]]);
});

test('§4.1: a GFN in no memslot is silently ignored (0), whatever the count', () => {
  const { vm, v } = rfcVm();
  call(v, KVM_HC_ENABLE_MEM_PROTECTED);
  assert.equal(call(v, KVM_HC_MEM_SHARE, gfn(8 * MiB), 16n), 0n, 'beyond slot 0, inside the backing');
  assert.equal(call(v, KVM_HC_MEM_SHARE, 1n << 60n, 1n << 62n), 0n, 'far beyond any GPA');
  assert.deepEqual(ranges(vm), [[0, 1024]]);
  assert.deepEqual(vm.protectedMemory!.warnings, []);
});

test('§4.1: a range running past the end of its memslot is -22 with a host warning and no change, also into an adjacent slot', () => {
  const { vm, v } = rfcVm();
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 4 * MiB, memorySize: 4 * MiB }); // adjacent
  call(v, KVM_HC_ENABLE_MEM_PROTECTED);
  assert.deepEqual(ranges(vm), [[0, 2048]]);
  assert.equal(call(v, KVM_HC_MEM_SHARE, gfn(4 * MiB - 4096), 2n), EINVAL, 'the last page of slot 0 plus one of slot 1');
  assert.equal(call(v, KVM_HC_MEM_UNSHARE, 0n, 1n << 40n), EINVAL);
  assert.deepEqual(ranges(vm), [[0, 2048]]);
  assert.equal(vm.protectedMemory!.warnings.length, 2);
  assert.match(vm.protectedMemory!.warnings[0], /MEM_SHARE of GFN 0x3ff \+ 0x2 pages runs past the end of slot 0/);
  assert.equal(call(v, KVM_HC_MEM_SHARE, gfn(4 * MiB - 4096), 1n), 0n, 'the last page alone is fine');
});

test('§4.1: an unknown number is -1000 (-KVM_ENOSYS), including the other upstream KVM hypercalls', () => {
  const { v } = rfcVm();
  for (const nr of [0n, 1n, 5n, 11n, 15n, 0x1000n, 1n << 63n]) assert.equal(call(v, nr), ENOSYS, `nr ${nr}`);
});

test('§4.1: a caller at CPL 3 gets -1 (-KVM_EPERM) for every number, and nothing happens', () => {
  const { vm, v } = rfcVm({ long: false });
  const s = v.getSregs();
  s.cs = { ...s.cs, selector: 0x1b, dpl: 3 };
  s.ss = { ...s.ss, selector: 0x23, dpl: 3 };
  s.ds = { ...s.ds, selector: 0x23, dpl: 3 };
  v.setSregs(s);
  assert.equal(v.cpu.cpl, 3);
  writeCode(v, CODE + 0x10, [0x0f, 0x01, 0xc1, 0xeb, 0xfe]); // vmcall; jmp $ (HLT would #GP at CPL 3)
  const userCall = (nr: number): bigint => {
    const r = v.getRegs();
    r.rip = BigInt(CODE + 0x10); r.rax = BigInt(nr); r.rbx = 0n; r.rcx = 1n;
    v.setRegs(r);
    assert.equal(v.run(50).reason, 'preempted');
    assert.equal(v.getRegs().rip, BigInt(CODE + 0x13), 'the VMCALL completed');
    return v.getRegs().rax;
  };
  // 32-bit caller: -1 is 0xFFFFFFFF, zero-extended into RAX.
  assert.equal(userCall(KVM_HC_ENABLE_MEM_PROTECTED), 0xffffffffn);
  assert.equal(userCall(KVM_HC_MEM_UNSHARE), 0xffffffffn);
  assert.equal(userCall(99), 0xffffffffn, 'EPERM comes before the number is looked at');
  assert.equal(vm.protectedMemory!.enabled, false);
  assert.deepEqual(ranges(vm), []);
});

test('a 32-bit caller: number and arguments are 32 bits (upper halves dropped), the result is zero-extended', () => {
  const { vm, v } = rfcVm({ long: false });
  call(v, KVM_HC_ENABLE_MEM_PROTECTED);
  // RBX's upper half is not part of a 32-bit caller's a0: GFN 0x100, not 0x1_0000_0100.
  assert.equal(call(v, (1n << 32n) | BigInt(KVM_HC_MEM_SHARE), (1n << 32n) | 0x100n, (7n << 32n) | 1n), 0n);
  assert.deepEqual(ranges(vm), [[0, 0x100], [0x101, 1024]]);
  assert.equal(call(v, KVM_HC_MEM_SHARE, 0n, 0x2000n), 0xffffffean, '-22 as a u32');
  assert.equal(call(v, 0x40), 0xfffffc18n, '-1000 as a u32');
});

test('§4.1: slots created after ENABLE are protected at once; slots created before ENABLE are not until it', () => {
  const { vm, v } = rfcVm();
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 8 * MiB, memorySize: MiB });
  assert.deepEqual(ranges(vm), []);
  call(v, KVM_HC_ENABLE_MEM_PROTECTED);
  assert.deepEqual(ranges(vm), [[0, 1024], [2048, 2304]]);
  vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: 12 * MiB, memorySize: MiB });
  assert.deepEqual(ranges(vm), [[0, 1024], [2048, 2304], [3072, 3328]]);
});

test('§4.1: SHARE/UNSHARE work on the protection flag even before ENABLE, as the RFC\'s kvm_protect_memory does', () => {
  const { vm, v } = rfcVm();
  assert.equal(call(v, KVM_HC_MEM_UNSHARE, 0x10n, 2n), 0n);
  assert.deepEqual(ranges(vm), [[0x10, 0x12]]);
  assert.equal(vm.protectedMemory!.enabled, false);
  assert.equal(call(v, KVM_HC_MEM_SHARE, 0x10n, 1n), 0n);
  assert.deepEqual(ranges(vm), [[0x11, 0x12]]);
});

test('§4.3: the RFC mode is per VM and off by default: a plain VM has no KVM hypercalls (VMCALL is #UD), an upstream VM answers 13/14 with -1000', () => {
  const plain = new Vm({ memorySize: 4 * MiB });
  assert.equal(plain.protectedMemory, null);
  assert.equal(plain.kvmHypercallsEnabled, false);
  const upstream = new Vm({ memorySize: 4 * MiB, privateMemory: true });
  assert.equal(upstream.protectedMemory, null);
  const v = upstream.createVcpu(0);
  writeCode(v, CODE, [0x0f, 0x01, 0xc1, 0xf4]);
  enterLong64(v, CODE);
  assert.equal(call(v, KVM_HC_MEM_SHARE, 1n, 1n), ENOSYS);
  assert.equal(call(v, KVM_HC_MEM_UNSHARE, 1n, 1n), ENOSYS);
  assert.equal(call(v, 12, 0x1000n, 1n), ENOSYS, 'upstream 12 is MAP_GPA_RANGE, not enabled here (map-gpa-range.test.ts)');
  assert.equal(upstream.memoryAttributes.rangeCount, 0, 'nothing was converted');
});

test('§4.3: RFC mode cannot be combined with Hyper-V (both own CPUID 0x40000000) nor with MAP_GPA_RANGE exits (both are hypercall 12)', () => {
  const hv = resolveHvFeatures({ flags: new Set(['hv-vpindex']) });
  assert.throws(() => new Vm({ memorySize: 4 * MiB, hyperv: hv, protectedMemoryRfc: true }),
    (e: unknown) => e instanceof KvmError && e.code === 'EINVAL' && /cannot be combined with Hyper-V/.test(e.message));
  const { vm } = rfcVm();
  assert.throws(() => vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 1 << 12),
    (e: unknown) => e instanceof KvmError && e.code === 'EINVAL' && /RFC mode/.test(e.message));
  assert.equal(vm.hypercallExitMask, 0);
  vm.enableCap(KVM_CAP_EXIT_HYPERCALL, 0); // 0 enables nothing, so it clashes with nothing
});

test('trace: every KVM hypercall emits kvm_hypercall with nr and a0..a3', () => {
  const vm = new Vm({ memorySize: 4 * MiB, protectedMemoryRfc: true, trace: true });
  const v = vm.createVcpu(0);
  writeCode(v, CODE, [0x0f, 0x01, 0xc1, 0xf4]);
  enterLong64(v, CODE);
  const r = v.getRegs(); r.rsi = 0x55n; v.setRegs(r);
  call(v, KVM_HC_MEM_SHARE, 0x12n, 3n, 4n);
  const ev = vm.trace!.events.filter((e) => e.name === 'kvm_hypercall');
  assert.equal(ev.length, 1);
  assert.deepEqual({ ...ev[0].args }, { nr: 'd', a0: '12', a1: '3', a2: '4', a3: '55' });
});
