// CPUID leaves 0x40000000..0x4000000A (tlfs-vsm-facts.md §6.1-§6.4) built from the enabled features.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findCpuid } from '../../src/kvm/cpuid.js';
import { hypervCpuidEntries, vendorRegisters } from '../../src/kvm/hyperv/cpuid.js';
import { HvFeatures, resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { defaultCpuid } from '../../src/vmm/cpuid.js';

const regs = (entries: ReturnType<typeof hypervCpuidEntries>, fn: number) => {
  const e = findCpuid(entries, fn, 0);
  assert.ok(e, `leaf 0x${fn.toString(16)} present`);
  return [e.eax >>> 0, e.ebx >>> 0, e.ecx >>> 0, e.edx >>> 0];
};

test('VSM configuration: every leaf with exact values', () => {
  const features = resolveHvFeatures({ flags: new Set(['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm']), spinlocks: 0x1fff });
  const e = hypervCpuidEntries(features, { maxVps: 4 });
  // §6.1: max leaf, then "Microsoft Hv" = "Micr" 0x7263694D, "osof" 0x666F736F, "t Hv" 0x76482074.
  assert.deepEqual(regs(e, 0x40000000), [0x4000000a, 0x7263694d, 0x666f736f, 0x76482074]);
  // Interface signature "Hv#1".
  assert.deepEqual(regs(e, 0x40000001), [0x31237648, 0, 0, 0]);
  // Version: QEMU's default build 0x3839, major 10 in EBX 31:16, minor 0.
  assert.deepEqual(regs(e, 0x40000002), [0x3839, 0x000a0000, 0, 0]);
  // Privileges: EAX hypercall MSRs (5) + VP index (6) + SynIC (2) + IntrCtrl (4) = 0x74;
  // EBX PostMessages (4), SignalEvents (5), AccessVsm (16), AccessVpRegisters (17), StartVP (21); EDX dynamic partitioning (3).
  assert.deepEqual(regs(e, 0x40000003), [0x74, 0x230030, 0, 0x8]);
  // Recommendations: MSR APIC access (3); spin retries in EBX.
  assert.deepEqual(regs(e, 0x40000004), [0x8, 0x1fff, 0, 0]);
  // Limits: max VPs, 64 logical processors (QEMU).
  assert.deepEqual(regs(e, 0x40000005), [4, 64, 0, 0]);
  for (let fn = 0x40000006; fn <= 0x4000000a; fn++) assert.deepEqual(regs(e, fn), [0, 0, 0, 0]);
  assert.equal(e.length, 11);
});

test('the version and vendor options reach leaves 0x40000000 and 0x40000002', () => {
  const features = resolveHvFeatures({
    flags: new Set(['hv-relaxed']), vendorId: 'KVMKVMKVM',
    versionId: { build: 0x1bbc, major: 6, minor: 1, spack: 2, sbranch: 3, snumber: 0x123456 },
  });
  const e = hypervCpuidEntries(features, { maxVps: 1 });
  // 'KVMK' 'VMKV' 'M\0\0\0', little-endian.
  assert.deepEqual(regs(e, 0x40000000), [0x4000000a, 0x4b4d564b, 0x564b4d56, 0x4d]);
  // EDX = service branch in 31:24, service number in 23:0.
  assert.deepEqual(regs(e, 0x40000002), [0x1bbc, 0x00060001, 2, 0x03123456]);
  assert.deepEqual(vendorRegisters('Microsoft Hv'), [0x7263694d, 0x666f736f, 0x76482074]);
});

test('no Hyper-V: no leaves; with Hyper-V the VMM table keeps leaf 1 ECX bit 31', () => {
  assert.deepEqual(hypervCpuidEntries(HvFeatures.none(), { maxVps: 2 }), []);
  const table = [...defaultCpuid(2), ...hypervCpuidEntries(resolveHvFeatures({ flags: new Set(['hv-relaxed']) }), { maxVps: 2 })];
  assert.equal((findCpuid(table, 1, 0)!.ecx >>> 31) & 1, 1);
  const fns = table.filter((x) => !x.significantIndex).map((x) => x.function);
  assert.equal(new Set(fns).size, fns.length, 'no leaf appears twice');
  assert.throws(() => hypervCpuidEntries(resolveHvFeatures({ flags: new Set(['hv-relaxed']) }), { maxVps: 0 }), RangeError);
});
