// KVM_GET/SET_FPU (struct kvm_fpu) and KVM_GET/SET_XCRS (struct kvm_xcrs),
// upstream api.rst "KVM_GET_FPU", "KVM_GET_XCRS"; x86.c
// kvm_vcpu_ioctl_x86_set_xcrs / __kvm_set_xcr. The guest's FXSAVE/XGETBV see
// what the host set (image layout: SDM vol. 2 FXSAVE tables).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { KvmFpu } from '../../src/kvm/vcpu-fpu.js';
import { enterFlat32, enterLong64, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
function vcpu(long = true): Vcpu {
  const v = new Vm({ memorySize: 2 * MiB }).createVcpu(0);
  if (long) enterLong64(v, 0x1000); else enterFlat32(v, 0x1000);
  return v;
}
const errno = (f: () => unknown): string => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : String(e); } return 'none'; };
const zeros = (n: number) => new Uint8Array(n);

test('a fresh vCPU: FCW 0x037F, MXCSR 0x1F80, everything else 0 (SDM table 9-1, power-up state)', () => {
  assert.deepEqual(vcpu().getFpu(), {
    fpr: Array.from({ length: 8 }, () => zeros(16)), fcw: 0x37f, fsw: 0, ftwx: 0, lastOpcode: 0, lastIp: 0n, lastDp: 0n,
    xmm: Array.from({ length: 16 }, () => ({ low: 0n, high: 0n })), mxcsr: 0x1f80,
  });
  assert.deepEqual(vcpu().getXcrs(), { flags: 0, xcrs: [{ xcr: 0, value: 1n }] });
});

function sampleFpu(): KvmFpu {
  return {
    fpr: Array.from({ length: 8 }, (_, k) => Uint8Array.from({ length: 16 }, (_, b) => (b < 10 ? 0x10 * k + b : 0xff))),
    fcw: 0x027f, fsw: 0x3800, ftwx: 0x81, lastOpcode: 0x7ff, lastIp: 0xffff_8000_0000_1234n, lastDp: 0x5678_9abcn,
    xmm: Array.from({ length: 16 }, (_, k) => ({ low: 0x1111_0000_0000_0000n + BigInt(k), high: 0x2222n * BigInt(k + 1) })),
    mxcsr: 0x1f80 | 0x40 | 0x8000, // DAZ, FZ
  };
}

test('KVM_SET_FPU then the guest\'s FXSAVE64 stores exactly those values (80-bit ST registers, padding 0)', () => {
  const v = vcpu();
  const f = sampleFpu();
  v.setFpu(f);
  const back = v.getFpu();
  assert.deepEqual(back, { ...f, fpr: f.fpr.map((r) => Uint8Array.from(r, (b, i) => (i < 10 ? b : 0))) });
  writeCode(v, 0x1000, [0x48, 0x0f, 0xae, 0x04, 0x25, 0x00, 0x30, 0x00, 0x00, 0xf4]); // fxsave64 [0x3000]; hlt
  assert.equal(v.run(10).reason, 'hlt');
  const img = v.vm.mem.read(0x3000, 416);
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  assert.deepEqual([dv.getUint16(0, true), dv.getUint16(2, true), img[4], dv.getUint16(6, true)], [0x027f, 0x3800, 0x81, 0x7ff]);
  assert.deepEqual([dv.getBigUint64(8, true), dv.getBigUint64(16, true)], [0xffff_8000_0000_1234n, 0x5678_9abcn]);
  assert.deepEqual([dv.getUint32(24, true), dv.getUint32(28, true)], [0x9fc0, 0xffff]); // MXCSR, MXCSR_MASK
  for (let k = 0; k < 8; k++) assert.deepEqual(img.slice(32 + 16 * k, 48 + 16 * k), back.fpr[k], `ST${k}`);
  for (let k = 0; k < 16; k++) {
    assert.deepEqual([dv.getBigUint64(160 + 16 * k, true), dv.getBigUint64(168 + 16 * k, true)], [f.xmm[k].low, f.xmm[k].high], `XMM${k}`);
  }
});

test('KVM_SET_FPU clears the FCS selector a 32-bit FXRSTOR left (kvm_fpu\'s 64-bit layout has no room for it)', () => {
  const v = vcpu(false);
  const img = new Uint8Array(512);
  img[0] = 0x7f; img[1] = 0x03; img[8] = 0x44; img[12] = 0x1b; // FCW, FIP = 0x44, FCS = 0x1b
  new DataView(img.buffer).setUint32(24, 0x1f80, true);
  v.vm.mem.write(0x3000, img);
  // fxrstor [0x3000]; fxsave [0x3200]; hlt; fxsave [0x3400]; hlt
  writeCode(v, 0x1000, [0x0f, 0xae, 0x0d, 0x00, 0x30, 0x00, 0x00, 0x0f, 0xae, 0x05, 0x00, 0x32, 0x00, 0x00, 0xf4,
    0x0f, 0xae, 0x05, 0x00, 0x34, 0x00, 0x00, 0xf4]);
  assert.equal(v.run(10).reason, 'hlt');
  assert.deepEqual([v.vm.mem.read32(0x3208), v.vm.mem.read16(0x320c)], [0x44, 0x1b], 'the CPU kept FCS');
  assert.equal(v.getFpu().lastIp, 0x44n);
  v.setFpu(v.getFpu());
  v.setMpState(0);
  assert.equal(v.run(10).reason, 'hlt');
  assert.deepEqual([v.vm.mem.read32(0x3408), v.vm.mem.read16(0x340c)], [0x44, 0]);
});

test('KVM_SET_FPU checks every field and changes nothing on EINVAL (EFAULT for a non-object)', () => {
  const v = vcpu();
  v.setFpu(sampleFpu());
  const before = v.getFpu();
  const bad: [Partial<KvmFpu> | null, string, string][] = [
    [null, 'EFAULT', 'non-object'],
    [{ mxcsr: 0x1_0000 }, 'EINVAL', 'MXCSR bit 16: FXRSTOR would #GP (MXCSR_MASK 0xffff)'],
    [{ mxcsr: -1 }, 'EINVAL', 'MXCSR not a u32'],
    [{ fpr: before.fpr.slice(1) }, 'EINVAL', '7 ST registers'],
    [{ fpr: [...before.fpr.slice(1), zeros(10)] }, 'EINVAL', 'a 10-byte ST entry'],
    [{ fcw: 0x1_0000 }, 'EINVAL', 'fcw'],
    [{ ftwx: 256 }, 'EINVAL', 'ftwx'],
    [{ lastIp: -1n }, 'EINVAL', 'lastIp'],
    [{ lastDp: 1n << 64n }, 'EINVAL', 'lastDp'],
    [{ xmm: before.xmm.slice(1) }, 'EINVAL', '15 XMM registers'],
    [{ xmm: [...before.xmm.slice(1), { low: 1, high: 0n } as never] }, 'EINVAL', 'a number in XMM15'],
  ];
  for (const [over, code, why] of bad) {
    assert.equal(errno(() => v.setFpu(over === null ? null as never : { ...sampleFpu(), fcw: 0x37f, ...over })), code, why);
    assert.deepEqual(v.getFpu(), before, why);
  }
});

test('KVM_SET_XCRS loads XCR0, which the guest\'s XGETBV reads', () => {
  const v = vcpu();
  const s = v.getSregs();
  v.setSregs({ ...s, cr4: s.cr4 | (1n << 18n) }); // OSXSAVE
  v.setXcrs({ flags: 0, xcrs: [{ xcr: 0, value: 3n }] });
  assert.deepEqual(v.getXcrs(), { flags: 0, xcrs: [{ xcr: 0, value: 3n }] });
  writeCode(v, 0x1000, [0x31, 0xc9, 0x0f, 0x01, 0xd0, 0xf4]); // xor ecx, ecx; xgetbv; hlt
  assert.equal(v.run(10).reason, 'hlt');
  assert.equal(v.getRegs().rax, 3n);
});

test('KVM_SET_XCRS: only the first XCR0 entry counts, other XCRs are ignored; bad values are EINVAL with no change', () => {
  const v = vcpu();
  v.setXcrs({ flags: 0, xcrs: [{ xcr: 1, value: 0xffn }, { xcr: 0, value: 3n }, { xcr: 0, value: 1n }] });
  assert.equal(v.getXcrs().xcrs[0].value, 3n);
  v.setXcrs({ flags: 0, xcrs: [{ xcr: 1, value: 0n }] });
  assert.equal(v.getXcrs().xcrs[0].value, 3n, 'no XCR0 entry: nothing to set');
  const bad: [unknown, string, string][] = [
    [null, 'EFAULT', 'non-object'],
    [{ flags: 1, xcrs: [{ xcr: 0, value: 1n }] }, 'EINVAL', 'flags must be 0'],
    [{ flags: 0, xcrs: Array.from({ length: 17 }, () => ({ xcr: 0, value: 1n })) }, 'EINVAL', 'more than KVM_MAX_XCRS (16)'],
    [{ flags: 0, xcrs: [{ xcr: 0, value: 2n }] }, 'EINVAL', 'x87 (bit 0) clear'],
    [{ flags: 0, xcrs: [{ xcr: 0, value: 7n }] }, 'EINVAL', 'AVX (bit 2): not a component of this CPU'],
    [{ flags: 0, xcrs: [{ xcr: 0, value: 1 }] }, 'EINVAL', 'a number value'],
    [{ flags: 0, xcrs: [{ xcr: -1, value: 1n }] }, 'EINVAL', 'a bad index'],
  ];
  for (const [x, code, why] of bad) {
    assert.equal(errno(() => v.setXcrs(x as never)), code, why);
    assert.equal(v.getXcrs().xcrs[0].value, 3n, why);
  }
  assert.equal(errno(() => v.setXcrs({ flags: 0, xcrs: Array.from({ length: 16 }, () => ({ xcr: 0, value: 1n })) })), 'none');
  assert.equal(v.getXcrs().xcrs[0].value, 1n);
});
