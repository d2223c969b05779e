// KVM_GET_MSRS / KVM_SET_MSRS (struct kvm_msrs; upstream api.rst "KVM_GET_MSRS",
// x86.c msr_io / __kvm_set_msr): entries processed in order, the result is how
// many were processed (it stops at the first failing MSR), E2BIG from
// MAX_IO_MSRS = 256 entries; host-initiated differences documented in
// src/kvm/vcpu-msrs.ts (SYSENTER_ESP/EIP made canonical, EFER.LMA kept).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { MSR_TSC_DEADLINE } from '../../src/kvm/vcpu-msrs.js';
import {
  MSR_APIC_BASE, MSR_CSTAR, MSR_EFER, MSR_FMASK, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT,
  MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, MSR_TSC, MSR_TSC_AUX,
} from '../../src/x86/regs.js';
import { HvMsr } from '../../src/spec/tlfs.js';
import { EFER_LMA, EFER_LME, enterLong64, writeCode } from './guest-setup.js';
import { HvMachine, LINUX_GUEST_OS_ID } from './hypercall-machine.js';

const MiB = 1 << 20;
function vcpu(id = 0): Vcpu {
  const v = new Vm({ memorySize: 2 * MiB }).createVcpu(id);
  enterLong64(v, 0x1000);
  return v;
}
const errno = (f: () => unknown): string => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : String(e); } return 'none'; };

const VALUES: [number, bigint][] = [
  [MSR_STAR, 0x0023_0010_dead_beefn],
  [MSR_LSTAR, 0xffff_8000_0000_1000n],
  [MSR_CSTAR, 0xffff_8000_0000_2000n],
  [MSR_FMASK, 0x4700n],
  [MSR_KERNEL_GS_BASE, 0xffff_8880_0000_0000n],
  [MSR_FS_BASE, 0x7000_0000n],
  [MSR_GS_BASE, 0xffff_ffff_ff00_0000n],
  [MSR_SYSENTER_CS, 0x10n],
  [MSR_SYSENTER_ESP, 0x9000n],
  [MSR_SYSENTER_EIP, 0xffff_8000_0000_3000n],
  [MSR_PAT, 0x0007_0406_0007_0106n],
  [MSR_TSC_AUX, 0x1234_5678n],
];

test('KVM_SET_MSRS writes the CPU-owned MSRs, KVM_GET_MSRS reads them back, and guest RDMSR sees them', () => {
  const v = vcpu();
  assert.equal(v.setMsrs(VALUES.map(([index, data]) => ({ index, data }))), VALUES.length);
  assert.deepEqual(v.getMsrs(VALUES.map(([i]) => i)), VALUES.map(([index, data]) => ({ index, data })));
  assert.equal(v.getSregs().fs.base, 0x7000_0000n, 'FS base is the segment base');
  // mov ecx, LSTAR; rdmsr; hlt
  writeCode(v, 0x1000, [0xb9, 0x82, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0xf4]);
  assert.equal(v.run(10).reason, 'hlt');
  const r = v.getRegs();
  assert.deepEqual([r.rax, r.rdx], [0x0000_1000n, 0xffff_8000n]);
});

test('processing stops at the first MSR the vCPU cannot read or refuses; the result counts the ones before it', () => {
  const v = vcpu();
  const lstar = v.getMsrs([MSR_LSTAR])[0].data;
  // 0x1234 is no MSR of ours: STAR is written, LSTAR after it is not.
  assert.equal(v.setMsrs([{ index: MSR_STAR, data: 5n }, { index: 0x1234, data: 0n }, { index: MSR_LSTAR, data: 0xffff_8000_0000_0000n }]), 1);
  assert.deepEqual(v.getMsrs([MSR_STAR, 0x1234, MSR_LSTAR]), [{ index: MSR_STAR, data: 5n }]);
  assert.equal(v.getMsrs([MSR_LSTAR])[0].data, lstar);
  // Values the MSR refuses (each stops the list at once: result 0).
  const refused: [number, bigint, string][] = [
    [MSR_LSTAR, 0x0000_8000_0000_0000n, 'not canonical'],
    [MSR_KERNEL_GS_BASE, 0x1_0000_0000_0000n, 'not canonical'],
    [MSR_FS_BASE, 0x8000_0000_0000_0000n, 'not canonical'],
    [MSR_PAT, 0x0000_0000_0000_0002n, 'PAT type 2 is reserved (kvm_pat_valid)'],
    [MSR_PAT, 0x0000_0000_0000_0008n, 'PAT type 8 is reserved'],
    [MSR_FMASK, 1n << 32n, 'SFMASK bits 63:32'],
    [MSR_TSC_AUX, 1n << 32n, 'TSC_AUX bits 63:32 (Intel-compatible guest)'],
    [MSR_EFER, 1n << 12n, 'EFER bit 12 is not implemented'],
    [MSR_APIC_BASE, 0xfee0_0000n | 0x400n, 'EXTD without EN'],
  ];
  const before = v.getMsrs([MSR_LSTAR, MSR_KERNEL_GS_BASE, MSR_FS_BASE, MSR_PAT, MSR_FMASK, MSR_TSC_AUX, MSR_EFER, MSR_APIC_BASE]);
  for (const [index, data, why] of refused) assert.equal(v.setMsrs([{ index, data }]), 0, why);
  assert.deepEqual(v.getMsrs(before.map((e) => e.index)), before);
});

test('host writes: SYSENTER_ESP/EIP are made canonical (KVM), SYSENTER_CS keeps bits 15:0, EFER.LMA is kept', () => {
  const v = vcpu();
  assert.equal(v.setMsrs([
    { index: MSR_SYSENTER_EIP, data: 0x0000_8000_0000_1000n },
    { index: MSR_SYSENTER_ESP, data: 0x1234_0000_0000_2000n },
    { index: MSR_SYSENTER_CS, data: 0x1_2345n },
    { index: MSR_EFER, data: BigInt(EFER_LME) }, // LMA clear in the value: kept set (the vCPU is in long mode)
  ]), 4);
  assert.deepEqual(v.getMsrs([MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, MSR_SYSENTER_CS, MSR_EFER]).map((e) => e.data),
    [0xffff_8000_0000_1000n, 0x2000n, 0x2345n, EFER_LME | EFER_LMA]);
  // LME cannot change while CR0.PG = 1 (see vcpu-msrs.ts: stricter than KVM's host path).
  assert.equal(v.setMsrs([{ index: MSR_EFER, data: 0n }]), 0);
  assert.equal(v.getSregs().efer, EFER_LME | EFER_LMA);
});

test('EFER.NXE changes flush the TLB (as WRMSR does); writing the same EFER keeps it', () => {
  const v = vcpu();
  writeCode(v, 0x1000, [0x48, 0x8b, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00, 0xf4]); // mov rax, [0x5000]; hlt
  assert.equal(v.run(10).reason, 'hlt');
  const cached = v.cpu.mmu.tlb.size;
  assert.ok(cached > 0);
  assert.equal(v.setMsrs([{ index: MSR_EFER, data: EFER_LME | EFER_LMA }]), 1);
  assert.equal(v.cpu.mmu.tlb.size, cached);
  assert.equal(v.setMsrs([{ index: MSR_EFER, data: EFER_LME | EFER_LMA | (1n << 11n) }]), 1);
  assert.equal(v.cpu.mmu.tlb.size, 0);
});

test('TSC, APIC base, TSC deadline and x2APIC registers go through the paths RDMSR/WRMSR use', () => {
  const v = vcpu(3);
  assert.equal(v.setMsrs([{ index: MSR_TSC, data: 1_000_000n }]), 1);
  const tsc = v.getMsrs([MSR_TSC])[0].data;
  assert.ok(tsc >= 1_000_000n && tsc < 1_000_100n, String(tsc));
  assert.deepEqual(v.getMsrs([MSR_APIC_BASE, MSR_TSC_DEADLINE]), [
    { index: MSR_APIC_BASE, data: 0xfee0_0900n }, // enabled, BSP (the Vm's first vCPU)
    { index: MSR_TSC_DEADLINE, data: 0n },        // 0 outside TSC-deadline mode
  ]);
  assert.equal(v.getMsrs([0x802]).length, 0, 'x2APIC registers need x2APIC mode');
  assert.equal(v.setMsrs([{ index: MSR_APIC_BASE, data: 0xfee0_0d00n }]), 1); // EN | EXTD | BSP
  assert.deepEqual(v.getMsrs([0x802]), [{ index: 0x802, data: 3n }]); // x2APIC ID = the vCPU's
  assert.equal(v.setMsrs([{ index: MSR_APIC_BASE, data: 0xfee0_0900n }]), 0, 'x2APIC -> xAPIC is refused for the host too');
});

test('Hyper-V synthetic MSRs: through the in-kernel Hyper-V paths, with the guest\'s rules; without Hyper-V they stop the list', () => {
  assert.equal(vcpu().getMsrs([HvMsr.GUEST_OS_ID]).length, 0);
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic'], ids: [0, 5] });
  const v = m.vcpu(5);
  assert.deepEqual(v.getMsrs([HvMsr.GUEST_OS_ID, HvMsr.VP_INDEX]), [
    { index: HvMsr.GUEST_OS_ID, data: LINUX_GUEST_OS_ID }, { index: HvMsr.VP_INDEX, data: 5n },
  ]);
  assert.equal(v.setMsrs([{ index: HvMsr.SINT0 + 2, data: 0x10032n }, { index: HvMsr.VP_INDEX, data: 7n }]), 1);
  assert.deepEqual(v.getMsrs([HvMsr.SINT0 + 2, HvMsr.VP_INDEX]).map((e) => e.data), [0x10032n, 5n]);
});

test('argument checks come first and change nothing: EFAULT, EINVAL, E2BIG (nmsrs >= MAX_IO_MSRS = 256)', () => {
  const v = vcpu();
  const star = v.getMsrs([MSR_STAR]);
  assert.equal(errno(() => v.getMsrs(null as never)), 'EFAULT');
  assert.equal(errno(() => v.setMsrs({} as never)), 'EFAULT');
  assert.equal(errno(() => v.getMsrs(new Array(256).fill(MSR_STAR))), 'E2BIG');
  assert.equal(v.getMsrs(new Array(255).fill(MSR_STAR)).length, 255);
  assert.equal(errno(() => v.setMsrs(new Array(256).fill({ index: MSR_STAR, data: 1n }))), 'E2BIG');
  for (const index of [-1, 2 ** 32, 1.5, NaN, '0x10']) assert.equal(errno(() => v.getMsrs([MSR_STAR, index as never])), 'EINVAL', String(index));
  for (const data of [1, -1n, 1n << 64n, undefined]) {
    assert.equal(errno(() => v.setMsrs([{ index: MSR_STAR, data: 9n }, { index: MSR_STAR, data: data as never }])), 'EINVAL', String(data));
  }
  assert.equal(errno(() => v.setMsrs([{ index: MSR_STAR, data: 9n }, null as never])), 'EINVAL');
  assert.deepEqual(v.getMsrs([MSR_STAR]), star, 'the valid first entry was not written');
});

test('IA32_MISC_ENABLE (misc-enable.ts): BTS and PEBS unavailable as created; a guest WRMSR may not change them (#GP), writes to bit 7 are ignored, other bits are kept; the host may write anything', () => {
  const m = new HvMachine({ flags: [] });
  const v = m.vcpu(0);
  assert.deepEqual(v.getMsrs([0x1a0]), [{ index: 0x1a0, data: 0x1800n }]);
  const at = m.asm(`.code64
      mov ecx, 0x1a0
      mov eax, 0x00401881  # bit 0, bit 7 (ignored), bit 22; BTS/PEBS unchanged
      xor edx, edx
      wrmsr
      rdmsr
      mov ebx, eax
      and eax, 0xffffefff  # clear PEBS unavailable: #GP
    gp: wrmsr
      hlt`, 0x10100);
  m.jump(v, 0x10100);
  const e = m.runToExit(v);
  assert.equal(e.reason, 'hlt');
  assert.equal(v.getRegs().rbx, 0x401801n, 'bit 7 ignored, the rest kept');
  assert.equal(m.stubVector(v), 13, 'changing a read-only bit is a #GP');
  assert.equal(v.getMsrs([0x1a0])[0]!.data, 0x401801n, 'the refused write changed nothing');
  assert.ok(at.gp > 0);
  assert.equal(v.setMsrs([{ index: 0x1a0, data: 0x80n }]), 1, 'KVM_SET_MSRS: any value');
  assert.equal(v.getMsrs([0x1a0])[0]!.data, 0x80n);
});
