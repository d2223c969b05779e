// Synthetic MSRs: reset values, read-only / write-only rules and #GP cases
// (tlfs-vsm-facts.md §1.4 hypercall MSRs, §3.3 VP assist page, §4.1 SynIC, §6.5 the MSR list).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvMsr } from '../../src/spec/tlfs.js';
import { ACCESS_ALL, ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_READ, ACCESS_WRITE } from '../../src/x86/host.js';
import { GUEST_RAM, makeRig, SYNIC_FLAGS } from './hyperv-fixture.js';

const LINUX_OS_ID = 0x8100_0000_0000_0000n; // open source (63), OS type Linux (62:56 = 1)
const ALL = ['hv-passthrough'];

test('without Hyper-V every synthetic MSR is #GP', () => {
  const { vps: [vp] } = makeRig([]);
  for (const msr of Object.values(HvMsr)) {
    assert.equal(vp!.rdmsr(msr), undefined, `rdmsr 0x${msr.toString(16)}`);
    assert.equal(vp!.wrmsr(msr, 0n), false, `wrmsr 0x${msr.toString(16)}`);
  }
});

test('an MSR of a disabled feature is #GP while its neighbours work', () => {
  const { vps: [vp] } = makeRig(['hv-vpindex']);
  assert.equal(vp!.rdmsr(HvMsr.VP_INDEX), 0n);
  assert.equal(vp!.rdmsr(HvMsr.TIME_REF_COUNT), undefined); // needs hv-time
  assert.equal(vp!.rdmsr(HvMsr.SCONTROL), undefined); // needs hv-synic
  assert.equal(vp!.wrmsr(HvMsr.EOI, 0n), false); // needs hv-vapic
  assert.equal(vp!.rdmsr(HvMsr.GUEST_OS_ID), 0n); // always with any enlightenment
});

test('HYPERCALL stays disabled until GUEST_OS_ID is non-zero (§1.4)', () => {
  const rig = makeRig(['hv-relaxed']);
  const [vp] = rig.vps;
  assert.equal(vp!.rdmsr(HvMsr.HYPERCALL), 0n);
  assert.equal(vp!.wrmsr(HvMsr.HYPERCALL, 0x5001n), true);
  assert.equal(vp!.rdmsr(HvMsr.HYPERCALL), 0x5000n, 'enable bit stays 0');
  assert.equal(rig.partition.hypercallPagePfn, -1);
  assert.equal(rig.overlayChanges, 0);
  assert.equal(rig.mem.read8(0x5000), 0, 'no stub written');
});

test('hypercall page: VMCALL; RET then INT3, read+execute only, RAM restored when disabled', () => {
  const rig = makeRig(['hv-relaxed'], { count: 2 });
  const [vp0, vp1] = rig.vps;
  rig.mem.fill(0x5000, 4096, 0x5a);
  assert.equal(vp0!.wrmsr(HvMsr.GUEST_OS_ID, LINUX_OS_ID), true);
  assert.equal(vp1!.rdmsr(HvMsr.GUEST_OS_ID), LINUX_OS_ID, 'partition-wide');
  // RsvdP bits 11:2 are kept as written.
  assert.equal(vp0!.wrmsr(HvMsr.HYPERCALL, 0x5ffdn), true);
  assert.equal(vp1!.rdmsr(HvMsr.HYPERCALL), 0x5ffdn);
  assert.deepEqual([...rig.mem.read(0x5000, 5)], [0x0f, 0x01, 0xc1, 0xc3, 0xcc]);
  assert.equal(rig.mem.read8(0x5fff), 0xcc);
  assert.equal(rig.partition.pagePermissions(5), ACCESS_READ | ACCESS_EXEC | ACCESS_EXEC_USER);
  assert.equal(rig.partition.pagePermissions(6), ACCESS_ALL);
  assert.equal(rig.partition.isOverlayWrite(0x5008, ACCESS_WRITE), true, 'guest write ⇒ #GP');
  assert.equal(rig.partition.isOverlayWrite(0x5008, ACCESS_READ), false);
  assert.equal(rig.partition.isOverlayWrite(0x6008, ACCESS_WRITE), false);
  assert.equal(rig.overlayChanges, 1);
  // Disabling puts the RAM back.
  assert.equal(vp0!.wrmsr(HvMsr.HYPERCALL, 0x5000n), true);
  assert.equal(rig.partition.hypercallPagePfn, -1);
  assert.deepEqual([...rig.mem.read(0x5000, 4)], [0x5a, 0x5a, 0x5a, 0x5a]);
  assert.equal(rig.partition.pagePermissions(5), ACCESS_ALL);
  assert.equal(rig.overlayChanges, 2);
});

test('hypercall page: moving it restores the old page; outside RAM is #GP; clearing GUEST_OS_ID disables it', () => {
  const rig = makeRig(['hv-relaxed']);
  const [vp] = rig.vps;
  vp!.wrmsr(HvMsr.GUEST_OS_ID, LINUX_OS_ID);
  vp!.wrmsr(HvMsr.HYPERCALL, 0x5001n);
  assert.equal(vp!.wrmsr(HvMsr.HYPERCALL, 0x7001n), true);
  assert.equal(rig.mem.read8(0x5000), 0, 'old page is RAM again');
  assert.equal(rig.mem.read8(0x7000), 0x0f);
  const outside = BigInt(GUEST_RAM) | 1n;
  assert.equal(vp!.wrmsr(HvMsr.HYPERCALL, outside), false, 'beyond guest RAM ⇒ #GP');
  assert.equal(vp!.rdmsr(HvMsr.HYPERCALL), 0x7001n, 'unchanged');
  assert.equal(vp!.wrmsr(HvMsr.GUEST_OS_ID, 0n), true);
  assert.equal(vp!.rdmsr(HvMsr.HYPERCALL), 0x7000n);
  assert.equal(rig.partition.hypercallPagePfn, -1);
  assert.equal(rig.mem.read8(0x7000), 0);
});

test('hypercall page: the locked bit makes the MSR immutable', () => {
  const rig = makeRig(['hv-relaxed']);
  const [vp] = rig.vps;
  vp!.wrmsr(HvMsr.GUEST_OS_ID, LINUX_OS_ID);
  assert.equal(vp!.wrmsr(HvMsr.HYPERCALL, 0x5003n), true);
  assert.equal(vp!.wrmsr(HvMsr.HYPERCALL, 0x6001n), true);
  assert.equal(vp!.rdmsr(HvMsr.HYPERCALL), 0x5003n);
  assert.equal(rig.partition.hypercallPagePfn, 5);
  rig.partition.reset(); // only a reset clears it
  assert.equal(vp!.rdmsr(HvMsr.HYPERCALL), 0n);
  assert.equal(rig.partition.hypercallPagePfn, -1);
});

test('hypercall page on AMD uses VMMCALL; with VSM the VTL stubs sit at §3.6 offsets', () => {
  const amd = makeRig(['hv-relaxed'], { partition: { vendor: 'amd' } });
  amd.vps[0]!.wrmsr(HvMsr.GUEST_OS_ID, LINUX_OS_ID);
  amd.vps[0]!.wrmsr(HvMsr.HYPERCALL, 0x5001n);
  assert.deepEqual([...amd.mem.read(0x5000, 4)], [0x0f, 0x01, 0xd9, 0xc3]);
  assert.equal(amd.mem.read8(0x5004), 0xcc, 'no VTL stubs without hv-vsm');

  const vsm = makeRig(['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm']);
  vsm.vps[0]!.wrmsr(HvMsr.GUEST_OS_ID, LINUX_OS_ID);
  vsm.vps[0]!.wrmsr(HvMsr.HYPERCALL, 0x5001n);
  const page = vsm.mem.read(0x5000, 0x40);
  const at = (o: number, n: number) => [...page.subarray(o, o + n)];
  const call = [0x0f, 0x01, 0xc1];
  assert.deepEqual(at(0x00, 4), [...call, 0xc3]);
  // 32-bit stubs: mov ecx, eax; mov eax, code (the control word goes in EDX:EAX for 32-bit callers, §1.3).
  assert.deepEqual(at(0x04, 11), [0x89, 0xc1, 0xb8, 0x11, 0, 0, 0, ...call, 0xc3]); // 32-bit VtlCall
  assert.deepEqual(at(0x0f, 12), [0x48, 0x89, 0xc8, 0xb9, 0x11, 0, 0, 0, ...call, 0xc3]); // 64-bit VtlCall
  assert.deepEqual(at(0x1b, 11), [0x89, 0xc1, 0xb8, 0x12, 0, 0, 0, ...call, 0xc3]); // 32-bit VtlReturn
  assert.deepEqual(at(0x26, 12), [0x48, 0x89, 0xc8, 0xb9, 0x12, 0, 0, 0, ...call, 0xc3]); // 64-bit VtlReturn
  assert.equal(page[0x32], 0xcc);
});

test('VP_INDEX, TIME_REF_COUNT, VP_RUNTIME, frequencies: values and read-only #GP', () => {
  const rig = makeRig(['hv-vpindex', 'hv-time', 'hv-runtime', 'hv-frequencies'], { count: 3, tscHz: 2_500_000_000 });
  assert.equal(rig.vps[2]!.rdmsr(HvMsr.VP_INDEX), 2n);
  rig.clock.ns = 123_456_789;
  assert.equal(rig.vps[0]!.rdmsr(HvMsr.TIME_REF_COUNT), 1_234_567n, '100 ns units of guest time');
  rig.vcpus[1]!.runtime = 5_000_050;
  assert.equal(rig.vps[1]!.rdmsr(HvMsr.VP_RUNTIME), 50_000n);
  assert.equal(rig.vps[0]!.rdmsr(HvMsr.TSC_FREQUENCY), 2_500_000_000n);
  assert.equal(rig.vps[0]!.rdmsr(HvMsr.APIC_FREQUENCY), 1_000_000_000n);
  for (const msr of [HvMsr.VP_INDEX, HvMsr.TIME_REF_COUNT, HvMsr.VP_RUNTIME, HvMsr.TSC_FREQUENCY, HvMsr.APIC_FREQUENCY]) {
    assert.equal(rig.vps[0]!.wrmsr(msr, 0n), false, `0x${msr.toString(16)} is read-only`);
  }
});

test('RESET: writing 1 resets the VM, reads 0', () => {
  const rig = makeRig(['hv-reset']);
  const [vp] = rig.vps;
  assert.equal(vp!.rdmsr(HvMsr.RESET), 0n);
  assert.equal(vp!.wrmsr(HvMsr.RESET, 2n), true);
  assert.deepEqual(rig.resets, []);
  rig.clock.ns = 77;
  assert.equal(vp!.wrmsr(HvMsr.RESET, 1n), true);
  assert.deepEqual(rig.resets, [77]);
});

test('crash MSRs: P0-P4 store, CRASH_CTL reads the notify capability, notify reports', () => {
  const rig = makeRig(['hv-crash']);
  const [vp] = rig.vps;
  assert.equal(vp!.rdmsr(HvMsr.CRASH_CTL), 0x8000_0000_0000_0000n);
  for (let i = 0; i < 5; i++) assert.equal(vp!.wrmsr(HvMsr.CRASH_P0 + i, BigInt(0x100 + i)), true);
  assert.equal(vp!.rdmsr(HvMsr.CRASH_P0 + 3), 0x103n);
  vp!.wrmsr(HvMsr.CRASH_CTL, 0n);
  assert.equal(rig.crashes.length, 0);
  vp!.wrmsr(HvMsr.CRASH_CTL, 0x8000_0000_0000_0000n);
  assert.deepEqual(rig.crashes, [{ params: [0x100n, 0x101n, 0x102n, 0x103n, 0x104n], ctl: 0x8000_0000_0000_0000n }]);
  assert.equal(vp!.rdmsr(HvMsr.CRASH_CTL + 1), undefined, '0x40000106 needs hv-reenlightenment');
});

test('reenlightenment MSRs store; TSC_EMULATION_STATUS may only be cleared', () => {
  const [vp] = makeRig(['hv-reenlightenment']).vps;
  assert.equal(vp!.wrmsr(HvMsr.REENLIGHTENMENT_CONTROL, 0x1_0023n), true);
  assert.equal(vp!.rdmsr(HvMsr.REENLIGHTENMENT_CONTROL), 0x1_0023n);
  assert.equal(vp!.wrmsr(HvMsr.TSC_EMULATION_CONTROL, 1n), true);
  assert.equal(vp!.wrmsr(HvMsr.TSC_EMULATION_STATUS, 1n), false);
  assert.equal(vp!.wrmsr(HvMsr.TSC_EMULATION_STATUS, 0n), true);
});

test('VP_ASSIST_PAGE: enabling clears ApicAssist only; RsvdP kept; outside RAM is #GP (§3.3)', () => {
  const rig = makeRig(['hv-vapic']);
  const [vp] = rig.vps;
  assert.equal(vp!.rdmsr(HvMsr.VP_ASSIST_PAGE), 0n);
  rig.mem.write32(0x7000, 0xdeadbeef);
  rig.mem.write32(0x7008, 0x12345678);
  assert.equal(vp!.wrmsr(HvMsr.VP_ASSIST_PAGE, 0x7ff1n), true);
  assert.equal(vp!.rdmsr(HvMsr.VP_ASSIST_PAGE), 0x7ff1n);
  assert.equal(vp!.vpAssistPageGpa, 0x7000);
  assert.equal(rig.mem.read32(0x7000), 0);
  assert.equal(rig.mem.read32(0x7008), 0x12345678);
  assert.equal(vp!.wrmsr(HvMsr.VP_ASSIST_PAGE, BigInt(GUEST_RAM) | 1n), false);
  assert.equal(vp!.wrmsr(HvMsr.VP_ASSIST_PAGE, 0x7000n), true, 'disabling needs no RAM check');
  assert.equal(vp!.vpAssistPageGpa, undefined);
});

test('APIC MSRs in xAPIC mode: TPR, EOI, ICR drive the local APIC', () => {
  const rig = makeRig(['hv-vapic']);
  const [vp] = rig.vps;
  const cpu = rig.vcpus[0]!;
  assert.equal(vp!.wrmsr(HvMsr.TPR, 0x50n), true);
  assert.equal(cpu.apic.readCr8(), 5);
  assert.equal(vp!.rdmsr(HvMsr.TPR), 0x50n);
  assert.equal(vp!.wrmsr(HvMsr.TPR, 0x100n), false, 'TPR is 8 bits');
  vp!.wrmsr(HvMsr.TPR, 0n);
  cpu.apic.acceptFixed(0x40);
  assert.equal(cpu.take(), 0x40);
  assert.equal(cpu.isr(0x40), true);
  assert.equal(vp!.rdmsr(HvMsr.EOI), undefined, 'EOI is write-only');
  assert.equal(vp!.wrmsr(HvMsr.EOI, 0n), true);
  assert.equal(cpu.isr(0x40), false);
  // xAPIC: the destination is ICR bits 63:56.
  assert.equal(vp!.wrmsr(HvMsr.ICR, 0x0300_0000_0000_4031n), true);
  assert.deepEqual(cpu.bus.sent, [{ icrLow: 0x4031, destination: 3 }]);
  assert.equal(vp!.rdmsr(HvMsr.ICR), 0x0300_0000_0000_4031n);
});

test('APIC MSRs in x2APIC mode use the 32-bit destination; a disabled APIC makes them #GP', () => {
  const rig = makeRig(['hv-vapic']);
  const [vp] = rig.vps;
  const apic = rig.vcpus[0]!.apic;
  assert.equal(apic.writeApicBase(apic.readApicBase() | (1n << 10n)), true); // EXTD
  assert.equal(apic.mode, 'x2apic');
  assert.equal(vp!.wrmsr(HvMsr.ICR, 0x0000_0105_0000_0031n), true);
  assert.deepEqual(rig.vcpus[0]!.bus.sent, [{ icrLow: 0x31, destination: 0x105 }]);
  assert.equal(vp!.wrmsr(HvMsr.TPR, 0x20n), true);
  assert.equal(vp!.rdmsr(HvMsr.TPR), 0x20n);
  assert.equal(apic.writeApicBase(apic.readApicBase() & ~((1n << 10n) | (1n << 11n))), true); // disable
  assert.equal(apic.mode, 'disabled');
  assert.equal(vp!.wrmsr(HvMsr.EOI, 0n), false);
  assert.equal(vp!.wrmsr(HvMsr.TPR, 0n), false);
  assert.equal(vp!.wrmsr(HvMsr.ICR, 0x31n), false);
  assert.equal(vp!.rdmsr(HvMsr.ICR), undefined);
});

test('SynIC MSR reset values and #GP cases (§4.1)', () => {
  const rig = makeRig(SYNIC_FLAGS);
  const [vp] = rig.vps;
  assert.equal(vp!.rdmsr(HvMsr.SCONTROL), 0n);
  assert.equal(vp!.rdmsr(HvMsr.SVERSION), 1n);
  assert.equal(vp!.rdmsr(HvMsr.SIEFP), 0n);
  assert.equal(vp!.rdmsr(HvMsr.SIMP), 0n);
  assert.equal(vp!.rdmsr(HvMsr.EOM), 0n);
  for (let n = 0; n < 16; n++) assert.equal(vp!.rdmsr(HvMsr.SINT0 + n), 0x1_0000n, `SINT${n} reset: masked`);
  assert.equal(vp!.rdmsr(HvMsr.SIRBP), undefined);
  assert.equal(vp!.wrmsr(HvMsr.SVERSION, 1n), false, 'SVERSION is read-only');
  assert.equal(vp!.wrmsr(HvMsr.SINT0 + 3, 0x0fn), false, 'vector 15, unmasked ⇒ #GP');
  assert.equal(vp!.wrmsr(HvMsr.SINT0 + 3, 0x1_000fn), true, 'masked: any vector');
  assert.equal(vp!.wrmsr(HvMsr.SINT0 + 3, 0x10n), true, 'vector 16 is the first valid one');
  assert.equal(vp!.wrmsr(HvMsr.SINT0 + 3, 0xffff_ffff_ffe0_ff30n), true, 'RsvdP bits kept');
  assert.equal(vp!.rdmsr(HvMsr.SINT0 + 3), 0xffff_ffff_ffe0_ff30n);
  assert.equal(vp!.wrmsr(HvMsr.SCONTROL, 0xffff_ffff_ffff_fffen), true);
  assert.equal(vp!.rdmsr(HvMsr.SCONTROL), 0xffff_ffff_ffff_fffen);
  assert.equal(vp!.wrmsr(HvMsr.SIMP, BigInt(GUEST_RAM) | 1n), false, 'SIM page outside RAM');
  assert.equal(vp!.wrmsr(HvMsr.SIEFP, BigInt(GUEST_RAM) | 1n), false, 'SIEF page outside RAM');
  assert.equal(vp!.wrmsr(HvMsr.SIMP, 0x9001n), true);
  assert.equal(vp!.rdmsr(HvMsr.SIMP), 0x9001n);
  assert.equal(vp!.wrmsr(HvMsr.EOM, 0n), true);
});

test('STIMER MSRs: reset 0, read back; direct mode needs hv-stimer-direct', () => {
  const [vp] = makeRig(['hv-vpindex', 'hv-synic', 'hv-time', 'hv-stimer']).vps;
  for (let i = 0; i < 8; i++) assert.equal(vp!.rdmsr(HvMsr.STIMER0_CONFIG + i), 0n);
  assert.equal(vp!.wrmsr(HvMsr.STIMER0_CONFIG + 2, 0x2_0002n), true); // timer 1: periodic, SINT2, not enabled
  assert.equal(vp!.rdmsr(HvMsr.STIMER0_CONFIG + 2), 0x2_0002n);
  assert.equal(vp!.wrmsr(HvMsr.STIMER0_COUNT + 6, 12345n), true);
  assert.equal(vp!.rdmsr(HvMsr.STIMER0_COUNT + 6), 12345n);
  assert.equal(vp!.wrmsr(HvMsr.STIMER0_CONFIG, 0x1401n), false, 'direct mode (bit 12) without hv-stimer-direct');
  assert.equal(vp!.rdmsr(HvMsr.STIMER0_CONFIG + 8), undefined, 'only 4 timers');
});

test('hv-passthrough exposes every implemented MSR', () => {
  const [vp] = makeRig(ALL).vps;
  for (const msr of [HvMsr.VP_INDEX, HvMsr.TIME_REF_COUNT, HvMsr.SVERSION, HvMsr.STIMER0_CONFIG, HvMsr.CRASH_CTL, HvMsr.TSC_FREQUENCY]) {
    assert.notEqual(vp!.rdmsr(msr), undefined, `0x${msr.toString(16)}`);
  }
});
