// Hyper-V feature selection: QEMU flag semantics (docs/system/i386/hyperv.rst,
// target/i386/kvm/kvm.c kvm_hyperv_properties[]) mapped onto the bits of
// tlfs-vsm-facts.md §6.2 (privilege mask), §6.3 (EDX) and §6.4 (recommendations).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvFeatureError, HvFeatures, resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { HvCall, HvMsr } from '../../src/spec/tlfs.js';

const f = (...flags: string[]) => resolveHvFeatures({ flags: new Set(flags) });

function bits(x: HvFeatures) {
  return { eax: x.privilegesLow, ebx: x.privilegesHigh, edx: x.featuresEdx, rec: x.recommendations, spin: x.spinlockRetries };
}

test('no flags: no Hyper-V interface at all', () => {
  const x = HvFeatures.none();
  assert.equal(x.enabled, false);
  assert.deepEqual(bits(x), { eax: 0, ebx: 0, edx: 0, rec: 0, spin: 0xffffffff });
  assert.equal(x.msrAllowed(HvMsr.GUEST_OS_ID), false);
});

// Each row: flags -> expected EAX (priv 31:0), EBX (priv 63:32), EDX, recommendations.
// Every enabled set carries AccessHypercallMsrs (EAX bit 5) and CPU dynamic partitioning (EDX bit 3), as QEMU sets them.
const CASES: [string[], { eax: number; ebx: number; edx: number; rec: number }][] = [
  [['hv-relaxed'], { eax: 0x20, ebx: 0, edx: 0x8, rec: 0x20 }], // rec bit 5 relaxed timing
  [['hv-vapic'], { eax: 0x30, ebx: 0, edx: 0x8, rec: 0x8 }], // AccessIntrCtrlRegs (4); rec bit 3 MSR APIC access
  [['hv-vapic', 'hv-avic'], { eax: 0x30, ebx: 0, edx: 0x8, rec: 0x200 }], // avic: deprecate AutoEOI (9), no bit 3
  [['hv-time'], { eax: 0x222, ebx: 0, edx: 0x8, rec: 0 }], // ReferenceCounter (1) + ReferenceTsc (9)
  [['hv-crash'], { eax: 0x20, ebx: 0, edx: 0x408, rec: 0 }], // EDX 10 crash MSRs
  [['hv-reset'], { eax: 0xa0, ebx: 0, edx: 0x8, rec: 0 }], // AccessResetReg (7)
  [['hv-vpindex'], { eax: 0x60, ebx: 0, edx: 0x8, rec: 0 }], // AccessVpIndex (6)
  [['hv-runtime'], { eax: 0x21, ebx: 0, edx: 0x8, rec: 0 }], // AccessVpRunTimeReg (0)
  // SynIC (2) plus PostMessages (36) and SignalEvents (37): EBX bits 4, 5
  [['hv-vpindex', 'hv-synic'], { eax: 0x64, ebx: 0x30, edx: 0x8, rec: 0 }],
  [['hv-vpindex', 'hv-synic', 'hv-time', 'hv-stimer'], { eax: 0x26e, ebx: 0x30, edx: 0x8, rec: 0 }], // + timers (3)
  [['hv-vpindex', 'hv-synic', 'hv-time', 'hv-stimer', 'hv-stimer-direct'], { eax: 0x26e, ebx: 0x30, edx: 0x80008, rec: 0 }], // EDX 19
  [['hv-frequencies'], { eax: 0x820, ebx: 0, edx: 0x108, rec: 0 }], // AccessFrequencyRegs (11), EDX 8
  [['hv-reenlightenment'], { eax: 0x2020, ebx: 0, edx: 0x8, rec: 0 }], // (13)
  [['hv-vpindex', 'hv-tlbflush'], { eax: 0x60, ebx: 0, edx: 0x8, rec: 0x804 }], // rec 2 remote flush + 11 Ex masks
  [['hv-vpindex', 'hv-tlbflush', 'hv-tlbflush-ext'], { eax: 0x60, ebx: 0x8000, edx: 0x4008, rec: 0x804 }], // EDX 14, priv 47
  [['hv-vpindex', 'hv-ipi'], { eax: 0x60, ebx: 0, edx: 0x8, rec: 0xc00 }], // rec 10 cluster IPI + 11
  [['hv-xmm-input'], { eax: 0x20, ebx: 0, edx: 0x18, rec: 0 }], // EDX 4
  [['hv-xmm-output'], { eax: 0x20, ebx: 0x80000, edx: 0x8008, rec: 0 }], // EDX 15, FastHypercallOutput (51)
  // VSM: AccessVsm (48), AccessVpRegisters (49), StartVirtualProcessor (53) = EBX 16, 17, 21
  [['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'], { eax: 0x74, ebx: 0x230030, edx: 0x8, rec: 0x8 }],
];

for (const [flags, want] of CASES) {
  test(`privileges, features and recommendations for ${flags.join(',')}`, () => {
    const x = f(...flags);
    assert.equal(x.enabled, true);
    assert.deepEqual(bits(x), { ...want, spin: 0xffffffff });
  });
}

test('hv-passthrough enables every supported enlightenment and overrides other settings (QEMU docs)', () => {
  const x = resolveHvFeatures({ flags: new Set(['hv-passthrough']), spinlocks: 0x2000, vendorId: 'other' });
  assert.deepEqual(bits(x), { eax: 0x2aff, ebx: 0x2b8030, edx: 0x8c518, rec: 0xe24, spin: 0xfff });
  assert.equal(x.vendorId, 'Microsoft Hv');
  for (const unsupported of ['hv-evmcs', 'hv-syndbg', 'hv-emsr-bitmap', 'hv-tlbflush-direct']) {
    assert.equal(x.flags.has(unsupported), false, unsupported);
  }
});

test('hv-spinlocks alone enables the interface and sets CPUID 0x40000004 EBX', () => {
  const x = resolveHvFeatures({ flags: new Set(), spinlocks: 0x1fff });
  assert.equal(x.enabled, true);
  assert.deepEqual(bits(x), { eax: 0x20, ebx: 0, edx: 0x8, rec: 0, spin: 0x1fff });
});

test('hv-no-nonarch-coresharing=on/auto sets recommendation bit 18', () => {
  assert.equal(resolveHvFeatures({ flags: new Set(['hv-relaxed']), noNonarchCoresharing: 'on' }).recommendations, 0x40020);
  assert.equal(resolveHvFeatures({ flags: new Set(['hv-relaxed']), noNonarchCoresharing: 'auto' }).recommendations, 0x40020);
  assert.equal(resolveHvFeatures({ flags: new Set(['hv-relaxed']), noNonarchCoresharing: 'off' }).recommendations, 0x20);
});

// Dependency errors: one sentence, QEMU's wording ("Hyper-V %s requires Hyper-V %s").
const ERRORS: [string[], string][] = [
  [['hv-synic'], 'Hyper-V synthetic interrupt controller (hv-synic) requires Hyper-V VP_INDEX MSR (hv-vpindex)'],
  [['hv-stimer'], 'Hyper-V synthetic timers (hv-stimer) requires Hyper-V clocksources (hv-time)'],
  [['hv-vpindex', 'hv-time', 'hv-stimer'], 'Hyper-V synthetic timers (hv-stimer) requires Hyper-V synthetic interrupt controller (hv-synic)'],
  // QEMU checks the table before the SynIC/VP_INDEX rule, so the timer error comes first.
  [['hv-synic', 'hv-stimer'], 'Hyper-V synthetic timers (hv-stimer) requires Hyper-V clocksources (hv-time)'],
  [['hv-stimer-direct'], 'Hyper-V direct mode synthetic timers (hv-stimer-direct) requires Hyper-V synthetic timers (hv-stimer)'],
  [['hv-tlbflush'], 'Hyper-V paravirtualized TLB flush (hv-tlbflush) requires Hyper-V VP_INDEX MSR (hv-vpindex)'],
  [['hv-ipi'], 'Hyper-V paravirtualized IPI (hv-ipi) requires Hyper-V VP_INDEX MSR (hv-vpindex)'],
  [['hv-vpindex', 'hv-tlbflush-ext'], 'Hyper-V Extended gva ranges for TLB flush hypercalls (hv-tlbflush-ext) requires Hyper-V paravirtualized TLB flush (hv-tlbflush)'],
  [['hv-vapic', 'hv-vsm'], 'Hyper-V Virtual Secure Mode (hv-vsm) requires Hyper-V synthetic interrupt controller (hv-synic)'],
  [['hv-vpindex', 'hv-synic', 'hv-vsm'], 'Hyper-V Virtual Secure Mode (hv-vsm) requires Hyper-V virtual APIC (hv-vapic)'],
  [['hv-vapic', 'hv-evmcs'], 'Hyper-V enlightened VMCS (hv-evmcs) is not supported by this hypervisor'],
  [['hv-syndbg'], 'Hyper-V Enable synthetic kernel debugger channel (hv-syndbg) is not supported by this hypervisor'],
  [['hv-bogus'], "'hv-bogus' is not a Hyper-V enlightenment this hypervisor knows"],
];
for (const [flags, message] of ERRORS) {
  test(`rejects ${flags.join(',')}`, () => {
    assert.throws(() => f(...flags), (e: unknown) => e instanceof HvFeatureError && e.message === message);
  });
}

test('bad vendor id and version override', () => {
  assert.throws(() => resolveHvFeatures({ flags: new Set(['hv-relaxed']), vendorId: 'thirteen-chars' }), HvFeatureError);
  const x = resolveHvFeatures({ flags: new Set(['hv-relaxed']), versionId: { build: 0x1bbc, major: 6, minor: 1 } });
  assert.deepEqual(x.version, { build: 0x1bbc, major: 6, minor: 1, spack: 0, sbranch: 0, snumber: 0 });
});

// The MSR matrix: which synthetic MSR needs which flag (KVM hv_check_msr_access).
const MSR_GATES: [number, string][] = [
  [HvMsr.GUEST_OS_ID, 'hv-relaxed'], [HvMsr.HYPERCALL, 'hv-relaxed'], // any enlightenment
  [HvMsr.VP_INDEX, 'hv-vpindex'], [HvMsr.RESET, 'hv-reset'], [HvMsr.VP_RUNTIME, 'hv-runtime'],
  [HvMsr.TIME_REF_COUNT, 'hv-time'], [HvMsr.REFERENCE_TSC, 'hv-time'],
  [HvMsr.TSC_FREQUENCY, 'hv-frequencies'], [HvMsr.APIC_FREQUENCY, 'hv-frequencies'],
  [HvMsr.EOI, 'hv-vapic'], [HvMsr.ICR, 'hv-vapic'], [HvMsr.TPR, 'hv-vapic'], [HvMsr.VP_ASSIST_PAGE, 'hv-vapic'],
  [HvMsr.SCONTROL, 'hv-synic'], [HvMsr.SVERSION, 'hv-synic'], [HvMsr.SIEFP, 'hv-synic'], [HvMsr.SIMP, 'hv-synic'],
  [HvMsr.EOM, 'hv-synic'], [HvMsr.SINT0, 'hv-synic'], [HvMsr.SINT15, 'hv-synic'],
  [HvMsr.STIMER0_CONFIG, 'hv-stimer'], [HvMsr.STIMER3_COUNT, 'hv-stimer'],
  [HvMsr.CRASH_P0, 'hv-crash'], [HvMsr.CRASH_CTL, 'hv-crash'],
  [HvMsr.REENLIGHTENMENT_CONTROL, 'hv-reenlightenment'], [HvMsr.TSC_EMULATION_STATUS, 'hv-reenlightenment'],
];
const closure: Record<string, string[]> = {
  'hv-synic': ['hv-vpindex', 'hv-synic'],
  'hv-stimer': ['hv-vpindex', 'hv-synic', 'hv-time', 'hv-stimer'],
};
const ALL_MSR_FLAGS = ['hv-relaxed', 'hv-crash', 'hv-reset', 'hv-runtime', 'hv-frequencies', 'hv-vapic',
  'hv-reenlightenment', 'hv-vpindex', 'hv-time', 'hv-synic', 'hv-stimer'];
/** Flags that cannot stay when `flag` is removed (they require it). */
const dependents: Record<string, string[]> = {
  'hv-vpindex': ['hv-synic', 'hv-stimer'], 'hv-synic': ['hv-stimer'], 'hv-time': ['hv-stimer'],
};

test('MSR availability matrix: each MSR exactly with its enlightenment', () => {
  for (const [msr, flag] of MSR_GATES) {
    const on = f(...(closure[flag] ?? [flag]));
    assert.equal(on.msrAllowed(msr), true, `0x${msr.toString(16)} with ${flag}`);
    // With every other enlightenment but this one, the MSR is #GP (except the always-present hypercall MSRs).
    if (flag === 'hv-relaxed') continue;
    const drop = new Set([flag, ...(dependents[flag] ?? [])]);
    const without = ALL_MSR_FLAGS.filter((x) => !drop.has(x));
    assert.equal(f(...without).msrAllowed(msr), false, `0x${msr.toString(16)} without ${flag}`);
  }
  // Never exposed: GUEST_IDLE (priv 10), TSC_INVARIANT_CONTROL (priv 15), SIRBP, unknown indices.
  const all = resolveHvFeatures({ flags: new Set(['hv-passthrough']) });
  for (const msr of [HvMsr.GUEST_IDLE, HvMsr.TSC_INVARIANT_CONTROL, HvMsr.SIRBP, 0x40000004, 0x400000ff]) {
    assert.equal(all.msrAllowed(msr), false, `0x${msr.toString(16)}`);
  }
});

test('hypercall availability follows the privileges and recommendations', () => {
  const none = f('hv-relaxed');
  for (const code of Object.values(HvCall)) assert.equal(none.hypercallAllowed(code), false, `0x${code.toString(16)}`);

  const synic = f('hv-vpindex', 'hv-synic');
  assert.equal(synic.hypercallAllowed(HvCall.PostMessage), true);
  assert.equal(synic.hypercallAllowed(HvCall.SignalEvent), true);

  const flush = f('hv-vpindex', 'hv-tlbflush');
  for (const c of [HvCall.FlushVirtualAddressSpace, HvCall.FlushVirtualAddressList, HvCall.FlushVirtualAddressSpaceEx, HvCall.FlushVirtualAddressListEx]) {
    assert.equal(flush.hypercallAllowed(c), true);
  }
  assert.equal(flush.hypercallAllowed(HvCall.SendSyntheticClusterIpi), false);

  const ipi = f('hv-vpindex', 'hv-ipi');
  assert.equal(ipi.hypercallAllowed(HvCall.SendSyntheticClusterIpi), true);
  assert.equal(ipi.hypercallAllowed(HvCall.SendSyntheticClusterIpiEx), true);
  assert.equal(ipi.hypercallAllowed(HvCall.FlushVirtualAddressSpace), false);

  const vsm = f('hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm');
  for (const c of [HvCall.ModifyVtlProtectionMask, HvCall.EnablePartitionVtl, HvCall.EnableVpVtl, HvCall.VtlCall, HvCall.VtlReturn,
    HvCall.TranslateVirtualAddress, HvCall.GetVpRegisters, HvCall.SetVpRegisters, HvCall.StartVirtualProcessor, HvCall.GetVpIndexFromApicId]) {
    assert.equal(vsm.hypercallAllowed(c), true, `0x${c.toString(16)}`);
  }
  // NotifyLongSpinWait only with a spin count other than "never" (KVM).
  assert.equal(resolveHvFeatures({ flags: new Set(), spinlocks: 0xfff }).hypercallAllowed(HvCall.NotifyLongSpinWait), true);
  assert.equal(none.hypercallAllowed(HvCall.NotifyLongSpinWait), false);
  assert.equal(f('hv-xmm-input').xmmInput, true);
  assert.equal(f('hv-xmm-input').xmmOutput, false);
});
