// Availability of every hypercall follows the partition's CPUID (tlfs-vsm-facts.md
// §6.2-§6.4; KVM hv_check_hypercall_access with enforced CPUID; kvm-api-facts.md
// §3.2 for the VSM calls). A sweep over hv-* flag combinations: each call is
// made with an input that succeeds when the call is available, and must give
// exactly the outcome in the table: 'ok' (SUCCESS), 'vmm' (a 'hyperv-hcall'
// exit: the VMM's call), 'denied' (HV_STATUS_ACCESS_DENIED) or 'ud' (no
// hypercall interface at all: #UD).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { HvMachine, INPUT } from './hypercall-machine.js';

type Outcome = 'ok' | 'vmm' | 'denied' | 'ud';

/** One probe per call: an input that succeeds (or reaches the VMM) when the call is available. */
const PROBES: Record<string, { control: bigint; rdx?: bigint; r8?: bigint; input?: bigint[] }> = {
  NotifyLongSpinWait: { control: makeHypercallControl({ code: HvCall.NotifyLongSpinWait, fast: true }) },
  FlushVirtualAddressSpace: { control: makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace }), input: [0n, 1n, 0n] },
  FlushVirtualAddressList: { control: makeHypercallControl({ code: HvCall.FlushVirtualAddressList, repCount: 1 }), input: [0n, 1n, 0n, 0x1000n] },
  FlushVirtualAddressSpaceEx: { control: makeHypercallControl({ code: HvCall.FlushVirtualAddressSpaceEx }), input: [0n, 1n, 0n, 0n] },
  FlushVirtualAddressListEx: { control: makeHypercallControl({ code: HvCall.FlushVirtualAddressListEx, repCount: 1 }), input: [0n, 1n, 0n, 0n, 0x1000n] },
  SendSyntheticClusterIpi: { control: makeHypercallControl({ code: HvCall.SendSyntheticClusterIpi, fast: true }), rdx: 0x40n, r8: 1n },
  SendSyntheticClusterIpiEx: { control: makeHypercallControl({ code: HvCall.SendSyntheticClusterIpiEx }), input: [0x40n, 1n /* HV_GENERIC_SET_ALL */, 0n] },
  PostMessage: { control: makeHypercallControl({ code: HvCall.PostMessage }), input: [99n, 0x0000_0000_0000_0001n] },
  SignalEvent: { control: makeHypercallControl({ code: HvCall.SignalEvent, fast: true }), rdx: 99n },
  ModifyVtlProtectionMask: { control: makeHypercallControl({ code: HvCall.ModifyVtlProtectionMask, repCount: 1 }) },
  EnablePartitionVtl: { control: makeHypercallControl({ code: HvCall.EnablePartitionVtl }) },
  EnableVpVtl: { control: makeHypercallControl({ code: HvCall.EnableVpVtl }) },
  VtlCall: { control: BigInt(HvCall.VtlCall) },
  VtlReturn: { control: BigInt(HvCall.VtlReturn) },
  GetVpRegisters: { control: makeHypercallControl({ code: HvCall.GetVpRegisters, repCount: 1 }) },
  SetVpRegisters: { control: makeHypercallControl({ code: HvCall.SetVpRegisters, repCount: 1 }) },
  TranslateVirtualAddress: { control: makeHypercallControl({ code: HvCall.TranslateVirtualAddress }) },
  TranslateVirtualAddressEx: { control: makeHypercallControl({ code: HvCall.TranslateVirtualAddressEx }) },
  StartVirtualProcessor: { control: makeHypercallControl({ code: HvCall.StartVirtualProcessor }) },
  GetVpIndexFromApicId: { control: makeHypercallControl({ code: HvCall.GetVpIndexFromApicId, repCount: 1 }) },
};

const FLUSH = ['FlushVirtualAddressSpace', 'FlushVirtualAddressList', 'FlushVirtualAddressSpaceEx', 'FlushVirtualAddressListEx'];
const IPI = ['SendSyntheticClusterIpi', 'SendSyntheticClusterIpiEx'];
const SYNIC = ['PostMessage', 'SignalEvent'];
const VSM = ['ModifyVtlProtectionMask', 'EnablePartitionVtl', 'EnableVpVtl', 'VtlCall', 'VtlReturn', 'TranslateVirtualAddress', 'TranslateVirtualAddressEx'];
const VP_REGISTERS = ['GetVpRegisters', 'SetVpRegisters'];
const START_VP = ['StartVirtualProcessor', 'GetVpIndexFromApicId'];

/** Expected outcomes: every call listed in `allowed` with its outcome, every other call 'denied' (or all 'ud'). */
function expect(allowed: Record<string, Outcome>, all?: Outcome): Record<string, Outcome> {
  return Object.fromEntries(Object.keys(PROBES).map((k) => [k, all ?? allowed[k] ?? 'denied']));
}
const each = (names: string[], o: Outcome) => Object.fromEntries(names.map((n) => [n, o]));

const MATRIX: { name: string; flags: string[]; spinlocks?: number; expected: Record<string, Outcome> }[] = [
  { name: 'no enlightenment', flags: [], expected: expect({}, 'ud') },
  // Any enlightenment gives AccessHypercallMsrs, nothing else.
  { name: 'hv-vpindex', flags: ['hv-vpindex'], expected: expect({}) },
  // §6.4 EAX bit 2 (remote flush) and bit 11 (Ex masks) from hv-tlbflush.
  { name: 'hv-tlbflush', flags: ['hv-vpindex', 'hv-tlbflush'], expected: expect(each(FLUSH, 'ok')) },
  // §6.4 EAX bit 10 (cluster IPI) and bit 11 from hv-ipi.
  { name: 'hv-ipi', flags: ['hv-vpindex', 'hv-ipi'], expected: expect(each(IPI, 'ok')) },
  // §6.2 PostMessages (36) and SignalEvents (37) come with hv-synic; unknown connections go to the VMM.
  { name: 'hv-synic', flags: ['hv-vpindex', 'hv-synic'], expected: expect(each(SYNIC, 'vmm')) },
  // NotifyLongSpinWait needs a spin count other than 0 and 0xFFFFFFFF (CPUID 0x40000004 EBX).
  { name: 'hv-spinlocks=0x1000', flags: ['hv-relaxed'], spinlocks: 0x1000, expected: expect({ NotifyLongSpinWait: 'ok' }) },
  { name: 'hv-spinlocks=0', flags: ['hv-relaxed'], spinlocks: 0, expected: expect({}) },
  { name: 'hv-spinlocks=0xffffffff', flags: ['hv-relaxed'], spinlocks: 0xffffffff, expected: expect({}) },
  // hv-vsm: AccessVsm (48), AccessVpRegisters (49), StartVirtualProcessor (53): all the VMM's calls.
  {
    name: 'hv-vsm', flags: ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'],
    expected: expect({ ...each(SYNIC, 'vmm'), ...each(VSM, 'vmm'), ...each(VP_REGISTERS, 'vmm'), ...each(START_VP, 'vmm') }),
  },
  {
    name: 'hv-passthrough', flags: ['hv-passthrough'],
    expected: expect({
      NotifyLongSpinWait: 'ok', ...each(FLUSH, 'ok'), ...each(IPI, 'ok'), ...each(SYNIC, 'vmm'),
      ...each(VSM, 'vmm'), ...each(VP_REGISTERS, 'vmm'), ...each(START_VP, 'vmm'),
    }),
  },
];

function outcome(m: HvMachine, name: string): Outcome | string {
  const p = PROBES[name];
  if (p.input !== undefined) m.writeQwords(INPUT, p.input);
  const r = m.hypercall(m.vcpu(0), p.control, p.rdx ?? BigInt(INPUT), p.r8 ?? 0n);
  if (r.ud) return 'ud';
  if (r.exit.reason === 'hyperv-hcall') return 'vmm';
  if (r.status === HvStatus.SUCCESS) return 'ok';
  if (r.status === HvStatus.ACCESS_DENIED) return 'denied';
  return `status 0x${r.status.toString(16)}`;
}

for (const row of MATRIX) {
  test(`hypercall availability with ${row.name}`, () => {
    const m = new HvMachine({ flags: row.flags, spinlocks: row.spinlocks, ids: [0, 1] });
    const got = Object.fromEntries(Object.keys(PROBES).map((k) => [k, outcome(m, k)]));
    assert.deepEqual(got, row.expected);
    // A code the hypervisor does not implement is INVALID_HYPERCALL_CODE whatever is enabled.
    if (row.flags.length > 0) assert.equal(m.hypercall(m.vcpu(0), BigInt(HvCall.SwitchVirtualAddressSpace)).status, HvStatus.INVALID_HYPERCALL_CODE);
  });
}
