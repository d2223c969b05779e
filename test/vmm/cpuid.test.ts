// The VMM's CPUID table (src/vmm/cpuid.ts) against what the CPU implements:
// XSAVE is advertised (CPUID.1:ECX[26]) because XSAVE/XRSTOR/XSETBV/XGETBV
// exist, leaf 0DH describes the x87+SSE components and their 576-byte area,
// and OSXSAVE (CPUID.1:ECX[27]) follows CR4 through kvm's Vcpu.cpuid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { findCpuid } from '../../src/kvm/cpuid.js';
import { defaultCpuid } from '../../src/vmm/cpuid.js';
import { XSAVE_AREA_BYTES, XSAVE_SUPPORTED } from '../../src/x86/ops/fxsave.js';

test('CPUID advertises XSAVE and describes it in leaf 0DH (SDM vol. 1 13.2)', () => {
  const t = defaultCpuid(1);
  assert.equal(findCpuid(t, 0, 0)!.eax, 0xd, 'the maximum basic leaf covers 0DH');
  assert.equal((findCpuid(t, 1, 0)!.ecx >>> 26) & 1, 1, 'CPUID.1:ECX.XSAVE');
  const d0 = findCpuid(t, 0xd, 0)!, d1 = findCpuid(t, 0xd, 1)!;
  assert.deepEqual([d0.eax, d0.ebx, d0.ecx, d0.edx], [3, 576, 576, 0], 'x87 and SSE; 512-byte legacy region + 64-byte header');
  assert.deepEqual([XSAVE_SUPPORTED, XSAVE_AREA_BYTES], [3, 576]);
  assert.deepEqual([d1.eax, d1.ebx, d1.ecx, d1.edx], [0, 0, 0, 0], 'no XSAVEOPT, XSAVEC, XGETBV1, XSAVES');
  assert.equal(findCpuid(t, 0xd, 2), undefined, 'no component 2 (subleaf reads as zeros)');
});

test('CPUID.1:ECX.OSXSAVE follows CR4.OSXSAVE; leaf 0DH subleaf 2 and leaf 0CH read as zeros', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const v = vm.createVcpu(0);
  v.setCpuid(defaultCpuid(1));
  const out = new Int32Array(4);
  v.cpuid(1, 0, out);
  assert.equal((out[2] >>> 27) & 1, 0);
  const s = v.getSregs();
  s.cr4 |= 1n << 18n;
  v.setSregs(s);
  v.cpuid(1, 0, out);
  assert.equal((out[2] >>> 27) & 1, 1);
  for (const [leaf, sub] of [[0xd, 2], [0xc, 0]]) {
    v.cpuid(leaf, sub, out);
    assert.deepEqual([...out], [0, 0, 0, 0], `leaf 0x${leaf.toString(16)}.${sub}`);
  }
});
