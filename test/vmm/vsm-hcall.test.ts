// HvCallGetVpRegisters (0x50) / HvCallSetVpRegisters (0x51) answered by the
// VMM (src/vmm/vsm/hc-vsm.ts, partition.ts): the VSM registers of
// tlfs-vsm-facts §3.6/§3.7, architectural and synthetic registers of the
// caller's and a lower VTL, the input-VTL byte (§2.11), and every status
// of §2.15 for bad input, slow and XMM-fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, HvCall, HvMsr, HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { handleVsmHypercall } from '../../src/vmm/vsm/hc-vsm.js';
import { REGISTERS } from '../../src/vmm/vsm/register-names.js';
import { enterHigherVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { CALL_SITE, INPUT } from '../kvm/hypercall-machine.js';
import { OUT, VsmRig, VTL0_ASSIST } from './vsm-hcall-rig.js';

const get = (n: number, start = 0) => makeHypercallControl({ code: HvCall.GetVpRegisters, repCount: n, repStart: start });
const set = (n: number) => makeHypercallControl({ code: HvCall.SetVpRegisters, repCount: n });
const getFast = (n: number) => makeHypercallControl({ code: HvCall.GetVpRegisters, repCount: n, fast: true });
const setFast = (n: number) => makeHypercallControl({ code: HvCall.SetVpRegisters, repCount: n, fast: true });

/** Get/SetVpRegisters header word 1: VP index, input VTL byte, reserved bytes. */
const header1 = (vp = HV_VP_INDEX_SELF, inputVtl = 0, reserved = 0) => BigInt(vp) | (BigInt(inputVtl) << 32n) | (BigInt(reserved) << 40n);
const USE_VTL = 0x10; // HV_INPUT_VTL.UseTargetVtl (§2.11)

/** Slow GetVpRegisters of `names` from `v`; output list at OUT. Returns status, reps and the 64-bit values read. */
function getRegs(r: VsmRig, v: Vcpu, names: readonly number[], o: { vp?: number; inputVtl?: number; reserved?: number; partition?: bigint; start?: number } = {}) {
  const mem = r.m.vm.mem;
  mem.write64(INPUT, o.partition ?? HV_PARTITION_ID_SELF);
  mem.write64(INPUT + 8, header1(o.vp, o.inputVtl, o.reserved));
  names.forEach((n, i) => mem.write32(INPUT + 16 + 4 * i, n));
  mem.fill(OUT, 16 * names.length, 0xee);
  const res = r.call(v, get(names.length, o.start), BigInt(INPUT), BigInt(OUT));
  return { ...res, values: names.map((_, i) => mem.read64(OUT + 16 * i)) };
}

/** Slow SetVpRegisters of (name, u64 value) pairs from `v`. */
function setRegs(r: VsmRig, v: Vcpu, pairs: readonly [number, bigint][], o: { vp?: number; inputVtl?: number; elementReserved?: number } = {}) {
  const mem = r.m.vm.mem;
  mem.write64(INPUT, HV_PARTITION_ID_SELF);
  mem.write64(INPUT + 8, header1(o.vp, o.inputVtl));
  pairs.forEach(([n, value], i) => {
    const at = INPUT + 16 + 32 * i;
    mem.fill(at, 32, 0);
    mem.write32(at, n);
    if (o.elementReserved !== undefined) mem.write32(at + 8, o.elementReserved);
    mem.write64(at + 16, value);
  });
  return r.call(v, set(pairs.length), BigInt(INPUT));
}

/** A rig whose VP 0 has VTL1 enabled (context: VTL0's, RIP VTL1_CODE) and is now running in VTL1. */
function inVtl1(o: { maximumVtl?: number } = {}): { r: VsmRig; v0: Vcpu; v1: Vcpu } {
  const r = new VsmRig(o);
  r.enablePartitionVtl(1);
  const v0 = r.vcpu(0), v1 = r.enableVpVtl();
  enterHigherVtl(r.p, r.vp(), 1, HvVtlEntryReason.VtlCall);
  return { r, v0, v1 };
}

test('§3.6, §3.7: the read-only VSM registers from VTL0, before and after VTL1 is enabled', () => {
  const r = new VsmRig();
  const names = [N.VsmCodePageOffsets, N.VsmVpStatus, N.VsmPartitionStatus, N.VsmCapabilities];
  let g = getRegs(r, r.vcpu(0), names);
  assert.equal(g.status, HvStatus.SUCCESS);
  assert.equal(g.reps, 4);
  // CodePageOffsets: 64-bit caller's stubs at 0x0F (call) and 0x26 (return), bits 11:0 and 23:12 (§3.6).
  // VpStatus: ActiveVtl 0, EnabledVtlSet {0} in bits 31:16. PartitionStatus: EnabledVtlSet {0}, MaximumVtl 1 in 19:16.
  // Capabilities: MbecVtlMask {1} (bits 16:1, VTL n at bit n + 1), DenyLowerVtlStartup (bit 17), InterceptPageAvailable (27)
  // and ReturnActionAvailable (28) (Dr6Shared = 0, no shadow stacks, no HVPT, ...).
  const caps = (1n << 2n) | (1n << 17n) | (3n << 27n);
  assert.deepEqual(g.values, [0x2600fn, 0x10000n, 0x10001n, caps]);
  const v1 = inVtl1();
  g = getRegs(v1.r, v1.v1, names);
  assert.deepEqual(g.values, [0x2600fn, 0x30001n, 0x10003n, caps], 'ActiveVtl 1, EnabledVtlSet {0, 1} on the VP and the partition');
  const r2 = new VsmRig({ maximumVtl: 2 });
  assert.deepEqual(getRegs(r2, r2.vcpu(0), [N.VsmPartitionStatus]).values, [0x20001n], 'MaximumVtl 2');
});

test('§3.6: a 32-bit caller reads the offsets of the 32-bit stubs (0x04 call, 0x1B return)', () => {
  const r = new VsmRig();
  const v = r.vcpu(0), mem = r.m.vm.mem;
  mem.write64(INPUT, HV_PARTITION_ID_SELF);
  mem.write64(INPUT + 8, header1());
  mem.write32(INPUT + 16, N.VsmCodePageOffsets);
  r.m.enter32(v, CALL_SITE);
  const c = get(1);
  // §1.3 x86 convention: EDX:EAX control, EBX:ECX input GPA, EDI:ESI output GPA.
  v.setRegs({ ...v.getRegs(), rax: c & 0xffffffffn, rdx: c >> 32n, rcx: BigInt(INPUT), rbx: 0n, rsi: BigInt(OUT), rdi: 0n });
  const e = r.m.runToExit(v);
  assert.equal(e.reason, 'hyperv-hcall');
  if (e.reason === 'hyperv-hcall') assert.ok(handleVsmHypercall(r.p, v, e));
  assert.equal(r.m.runToExit(v).reason, 'hlt');
  assert.equal(v.getRegs().rax & 0xffffn, BigInt(HvStatus.SUCCESS));
  assert.equal(mem.read64(OUT), 0x1b004n);
});

test('§2.15, §2.11: header and input-VTL errors, with reps completed = the rep start', () => {
  const r = new VsmRig({ ids: [0, 1] });
  const v = r.vcpu(0);
  const one = [N.VsmVpStatus];
  assert.equal(getRegs(r, v, one, { partition: 0n }).status, HvStatus.INVALID_PARTITION_ID);
  assert.equal(getRegs(r, v, one, { vp: 2 }).status, HvStatus.INVALID_VP_INDEX);
  assert.equal(getRegs(r, v, one, { reserved: 1 }).status, HvStatus.INVALID_PARAMETER, 'header bytes 13-15 are RsvdZ');
  assert.equal(getRegs(r, v, one, { inputVtl: 0x20 }).status, HvStatus.INVALID_PARAMETER, 'HV_INPUT_VTL bits 7:5 are RsvdZ');
  assert.equal(getRegs(r, v, one, { inputVtl: USE_VTL | 2 }).status, HvStatus.INVALID_PARAMETER, 'VTL2 is above MaximumVtl 1');
  assert.equal(getRegs(r, v, one, { inputVtl: USE_VTL | 1 }).status, HvStatus.ACCESS_DENIED, 'VTL1 is above the caller');
  const res = getRegs(r, v, [N.VsmVpStatus, N.VsmVpStatus, N.VsmVpStatus], { partition: 7n, start: 1 });
  assert.deepEqual([res.status, res.reps], [HvStatus.INVALID_PARTITION_ID, 1], 'a header error reports the rep start');
  // UseTargetVtl = 0 means the caller's VTL; VTL0 of VP 1 (remote, own VTL) is fine.
  assert.deepEqual(getRegs(r, v, one, { inputVtl: 0x0f, vp: 1 }).values, [0x10000n]);
  // A VTL the target VP has not enabled: INVALID_VTL_STATE.
  const r3 = new VsmRig({ ids: [0, 1] });
  r3.enablePartitionVtl(1);
  const w1 = r3.enableVpVtl();
  enterHigherVtl(r3.p, r3.vp(0), 1, HvVtlEntryReason.VtlCall);
  assert.equal(getRegs(r3, w1, one, { vp: 1 }).status, HvStatus.INVALID_VTL_STATE, 'VP 1 has no VTL1');
  assert.equal(getRegs(r3, w1, one, { vp: 1, inputVtl: USE_VTL }).status, HvStatus.SUCCESS, 'its VTL0 is there');
});

test('§2.15: per-element errors stop the list; earlier outputs are valid and reps completed is the failing index', () => {
  const r = new VsmRig();
  const g = getRegs(r, r.vcpu(0), [N.VsmVpStatus, N.VsmCapabilities, 0x12345, N.VsmVpStatus]);
  assert.deepEqual([g.status, g.reps], [HvStatus.UNKNOWN_REGISTER_NAME, 2]);
  assert.deepEqual(g.values, [0x10000n, (1n << 2n) | (1n << 17n) | (3n << 27n), 0xeeeeeeeeeeeeeeeen, 0xeeeeeeeeeeeeeeeen], 'outputs 0 and 1 written, nothing after');
  const cfg = getRegs(r, r.vcpu(0), [N.VsmVpStatus, N.VsmPartitionConfig]);
  assert.deepEqual([cfg.status, cfg.reps], [HvStatus.INVALID_PARAMETER, 1], 'VsmPartitionConfig exists only for VTL ≥ 1 (register-names.ts)');
  const sc = getRegs(r, r.vcpu(0), [N.VsmVpSecureConfigVtl0]);
  assert.equal(sc.status, HvStatus.ACCESS_DENIED, 'SecureConfigVtl0 is for VTLs above 0');
  assert.equal(setRegs(r, r.vcpu(0), [[N.VsmVpStatus, 0n]]).status, HvStatus.INVALID_PARAMETER, 'read-only');
  assert.equal(setRegs(r, r.vcpu(0), [[N.Rbx, 0n]], { elementReserved: 1 }).status, HvStatus.INVALID_PARAMETER, 'element bytes 4-15 are RsvdZ');
  // A rep start skips the elements before it; outputs land at their own index.
  const s = getRegs(r, r.vcpu(0), [0x12345, N.VsmPartitionStatus], { start: 1 });
  assert.deepEqual([s.status, s.reps, s.values[1]], [HvStatus.SUCCESS, 2, 0x10001n]);
  assert.equal(s.values[0], 0xeeeeeeeeeeeeeeeen);
  // The output list must be writable and 8-byte aligned (§1.1).
  r.m.vm.mem.write64(INPUT + 8, header1());
  assert.equal(r.call(r.vcpu(0), get(1), BigInt(INPUT), BigInt(OUT + 4)).status, HvStatus.INVALID_ALIGNMENT);
});

test('§3.7: VsmPartitionConfig is write-once once protection is on', () => {
  const { r, v1 } = inVtl1();
  const C = N.VsmPartitionConfig;
  assert.equal(setRegs(r, v1, [[C, 1n << 16n]]).status, HvStatus.INVALID_REGISTER_VALUE, 'bits 63:16 are RsvdZ');
  assert.equal(setRegs(r, v1, [[C, 0x5n]]).status, HvStatus.INVALID_REGISTER_VALUE, 'default mask W without R');
  assert.deepEqual(getRegs(r, v1, [C]).values, [0n]);
  assert.equal(setRegs(r, v1, [[C, 0x20n]]).status, HvStatus.SUCCESS, 'ZeroMemoryOnReset alone');
  assert.equal(setRegs(r, v1, [[C, 0x1fn]]).status, HvStatus.SUCCESS, 'EnableVtlProtection with default mask RWX');
  assert.deepEqual(getRegs(r, v1, [C]).values, [0x1fn]);
  assert.equal(setRegs(r, v1, [[C, 0x1en]]).status, HvStatus.INVALID_REGISTER_VALUE, 'EnableVtlProtection cannot be cleared');
  assert.equal(setRegs(r, v1, [[C, 0x7n]]).status, HvStatus.INVALID_REGISTER_VALUE, 'the default mask cannot change');
  assert.equal(setRegs(r, v1, [[C, 0x5fn]]).status, HvStatus.SUCCESS, 'other bits may (DenyLowerVtlStartup)');
  assert.deepEqual(getRegs(r, v1, [C]).values, [0x5fn]);
  assert.equal(setRegs(r, v1, [[C, 0n]], { inputVtl: USE_VTL }).status, HvStatus.INVALID_PARAMETER, 'no instance for VTL0');
  // A restricting default mask applies to every page for VTL0 (vsm-protect.test.ts has the rest).
  const { r: r2, v1: w1 } = inVtl1();
  assert.equal(setRegs(r2, w1, [[C, 0x7n]]).status, HvStatus.SUCCESS, 'EnableVtlProtection with default mask RW');
  assert.equal(r2.p.vms[0]!.memoryAttributes.get(0x123), 4, 'kvm NX on VTL0');
});

test('§3.7: VsmVpSecureConfigVtl0 is written by VTL1; TlbLocked locks (vsm-tlb-lock.test.ts has the rest)', () => {
  const { r, v1 } = inVtl1();
  const S = N.VsmVpSecureConfigVtl0;
  assert.equal(setRegs(r, v1, [[S, 0x1n]]).status, HvStatus.INVALID_REGISTER_VALUE, 'MbecEnabled: no MBEC');
  assert.equal(setRegs(r, v1, [[S, 0x2n]]).status, HvStatus.SUCCESS, 'TlbLocked');
  assert.deepEqual(getRegs(r, v1, [S]).values, [0x2n]);
  assert.equal(r.vcpu(0).tlbFlush.inhibited, true);
  assert.equal(setRegs(r, v1, [[S, 0x10n]]).status, HvStatus.INVALID_REGISTER_VALUE, 'bits 63:4 are RsvdZ');
  assert.equal(setRegs(r, v1, [[S, 0n]]).status, HvStatus.SUCCESS);
  assert.deepEqual(getRegs(r, v1, [S]).values, [0n]);
  assert.equal(r.vcpu(0).tlbFlush.inhibited, false);
  assert.equal(getRegs(r, v1, [N.VsmVpSecureConfigVtl0 + 1]).status, HvStatus.ACCESS_DENIED, 'SecureConfigVtl1 needs a VTL above 1');
  assert.deepEqual(getRegs(r, v1, [N.VsmVina]).values, [0n], 'VINA is off until VTL1 turns it on (vsm-vina.test.ts)');
});

test('§2.15, §3.2: VTL1 reads and writes VTL0\'s registers: private ones on VTL0\'s Vcpu, shared ones live', () => {
  const { r, v0, v1 } = inVtl1();
  assert.ok(v0.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL0_ASSIST | 1, 0));
  v1.setRegs({ ...v1.getRegs(), rbx: 0xb0b0n });
  const vtl0 = { inputVtl: USE_VTL | 0 };
  const g = getRegs(r, v1, [N.Cr3, N.Rip, N.Rbx, N.VpAssistPage, N.VpIndex], vtl0);
  assert.equal(g.status, HvStatus.SUCCESS);
  assert.equal(g.values[0], BigInt(r.m.pml4), 'VTL0\'s CR3');
  assert.equal(g.values[1], BigInt(CALL_SITE), 'VTL0\'s RIP (where HvMachine put it)');
  assert.equal(g.values[2], 0xb0b0n, 'RBX is shared: the live value, in the active VTL');
  assert.equal(g.values[3], BigInt(VTL0_ASSIST | 1), 'VTL0\'s VP assist page MSR');
  assert.equal(g.values[4], 0n, 'VP index 0');
  assert.deepEqual(getRegs(r, v1, [N.VpAssistPage]).values, [0n], 'VTL1\'s own assist page is separate and disabled');
  assert.equal(setRegs(r, v1, [[N.Rip, 0x12340n], [N.R14, 0x1414n]], vtl0).status, HvStatus.SUCCESS);
  assert.equal(v0.getRegs().rip, 0x12340n);
  assert.equal(v1.getRegs().r14, 0x1414n, 'a shared register is written where it lives now');
  // A value KVM_SET_SREGS refuses: CR0.PG without CR0.PE.
  const bad = setRegs(r, v1, [[N.R13, 1n], [N.Cr0, 0x80000000n]], vtl0);
  assert.deepEqual([bad.status, bad.reps], [HvStatus.INVALID_REGISTER_VALUE, 1]);
});

test('§1.3, §2.15: XMM-fast Get writes the output pairs after the input; fast Set reads its elements from the block', () => {
  const r = new VsmRig();
  const v = r.vcpu(0);
  // Input 16 + 2×4 = 24 bytes: RDX, R8, XMM0 (low qword = the two names); output from pair 2 = XMM1, XMM2.
  const res = r.call(v, getFast(2), HV_PARTITION_ID_SELF, header1(), [BigInt(N.VsmCodePageOffsets) | (BigInt(N.VsmPartitionStatus) << 32n), 0n]);
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.deepEqual(v.getXmm(1), { low: 0x2600fn, high: 0n });
  assert.deepEqual(v.getXmm(2), { low: 0x10001n, high: 0n });
  assert.deepEqual(v.getXmm(0), { low: BigInt(N.VsmCodePageOffsets) | (BigInt(N.VsmPartitionStatus) << 32n), high: 0n }, 'input registers unchanged');
  // 5 names: input 36 bytes (3 pairs) + 5 output pairs > 7 pairs.
  assert.equal(r.call(v, getFast(5), HV_PARTITION_ID_SELF, header1()).status, HvStatus.INVALID_HYPERCALL_INPUT);
  // Fast Set: 16 + 32 bytes: element name in XMM0 low, value in XMM1 low.
  const s = r.call(v, setFast(1), HV_PARTITION_ID_SELF, header1(), [BigInt(N.R12), 0n, 0xc12n, 0n]);
  assert.equal(s.status, HvStatus.SUCCESS);
  assert.equal(v.getRegs().r12, 0xc12n);
});

test('§2.15 fuzz: 400 random Set/Get elements from VTL1 (own VTL and VTL0) answer a TLFS status, never a host error', () => {
  let x = 0xc0ffee;
  const next = () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x; };
  const { r, v1 } = inVtl1();
  const names = REGISTERS.map((g) => g.number).concat([0x12345, N.GuestVsmPartitionConfig]);
  const allowed = new Set<number>([HvStatus.SUCCESS, HvStatus.INVALID_PARAMETER, HvStatus.ACCESS_DENIED, HvStatus.INVALID_REGISTER_VALUE, HvStatus.UNKNOWN_REGISTER_NAME]);
  const seen = new Set<number>();
  for (let i = 0; i < 400; i++) {
    const name = names[next() % names.length];
    const inputVtl = next() & 1 ? 0 : USE_VTL; // own VTL (1) or VTL0
    const mem = r.m.vm.mem;
    mem.write64(INPUT, HV_PARTITION_ID_SELF);
    mem.write64(INPUT + 8, header1(HV_VP_INDEX_SELF, inputVtl));
    mem.write64(INPUT + 16, BigInt(name));
    mem.write64(INPUT + 24, 0n);
    // The value: a random low qword; the high qword random or zero (u64 registers ignore it, others do not).
    mem.write32(INPUT + 32, next());
    mem.write32(INPUT + 36, next());
    const high = next() & 1;
    mem.write32(INPUT + 40, high ? next() : 0);
    mem.write32(INPUT + 44, high ? next() : 0);
    const op = next() & 1 ? set(1) : get(1);
    // Keep the VP where it is: writes of RIP/RSP/CR0... to VTL1 itself would wreck the rig's call site, so VTL1's own
    // architectural registers are only read.
    const res = r.call(v1, op === set(1) && inputVtl === 0 ? get(1) : op, BigInt(INPUT), BigInt(OUT));
    assert.equal(res.exit.reason, 'hlt', `element ${i}: register 0x${name.toString(16)} stopped the rig`);
    assert.ok(allowed.has(res.status), `element ${i}: register 0x${name.toString(16)} answered 0x${res.status.toString(16)}`);
    seen.add(res.status);
  }
  assert.ok(seen.size >= 4, `several statuses seen: ${[...seen].join(', ')}`);
});

test('§2.15: VTL1 sets and reads VTL0\'s PendingEvent0 (a u128: a #PF and its CR2) through the hypercalls', () => {
  const { r, v0, v1 } = inVtl1();
  const mem = r.m.vm.mem;
  const low = 1n | (1n << 8n) | (14n << 16n) | (0x2n << 32n); // pending #PF, error code 2
  mem.write64(INPUT, HV_PARTITION_ID_SELF);
  mem.write64(INPUT + 8, header1(HV_VP_INDEX_SELF, USE_VTL | 0));
  mem.fill(INPUT + 16, 32, 0);
  mem.write32(INPUT + 16, N.PendingEvent0);
  mem.write64(INPUT + 32, low);
  mem.write64(INPUT + 40, 0x7000_1234n);
  assert.equal(r.call(v1, set(1), BigInt(INPUT)).status, HvStatus.SUCCESS);
  assert.deepEqual([v0.getVcpuEvents().exception.nr, v0.getSregs().cr2], [14, 0x7000_1234n], 'VTL0\'s Vcpu holds it');
  const g = getRegs(r, v1, [N.PendingEvent0], { inputVtl: USE_VTL | 0 });
  assert.equal(g.status, HvStatus.SUCCESS);
  assert.deepEqual([mem.read64(OUT), mem.read64(OUT + 8)], [low, 0x7000_1234n]);
  assert.equal(getRegs(r, v1, [N.PendingEvent0]).values[0], 0n, 'VTL1 itself has nothing pending');
});
