// Reference TSC page (tlfs-vsm-facts.md §6.5): sequence u32 @0, scale u64 @8, offset i64 @16;
// time = ((tsc × scale) >> 64) + offset must equal TIME_REF_COUNT (100 ns units).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readTscPage, tscPageScale, tscPageTime } from '../../src/kvm/hyperv/reference-time.js';
import { HvMsr } from '../../src/spec/tlfs.js';
import { GUEST_RAM, makeRig } from './hyperv-fixture.js';

const DAY_NS = 86_400e9;
// Guest ns are JS numbers, exact up to 2^53 ns (about 104 days): the times stay below that.
const TIMES = [0, 1, 99, 100, 101, 12_345, 999_999_999, 12_345_678_901, 3 * DAY_NS + 17, 100 * DAY_NS + 99_999, 104 * DAY_NS + 100];

function enabledPage(tscHz: number) {
  const rig = makeRig(['hv-time'], { tscHz });
  const [vp] = rig.vps;
  assert.equal(vp!.wrmsr(HvMsr.REFERENCE_TSC, 0x8001n), true);
  assert.equal(vp!.rdmsr(HvMsr.REFERENCE_TSC), 0x8001n);
  return { rig, vp: vp!, page: readTscPage(rig.mem, 0x8000) };
}

test('1 GHz: sequence 1, scale = ceil(2^64 / 100), offset 0', () => {
  const { page } = enabledPage(1e9);
  assert.deepEqual(page, { sequence: 1, scale: 0x028f_5c28_f5c2_8f5dn, offset: 0n });
});

for (const hz of [1e9, 2.5e9, 3e9, 20e6]) {
  test(`page time equals TIME_REF_COUNT at many times (TSC ${hz / 1e6} MHz)`, () => {
    const { rig, vp, page } = enabledPage(hz);
    assert.notEqual(page.sequence, 0);
    for (const ns of TIMES) {
      rig.clock.ns = ns;
      const msr = vp.rdmsr(HvMsr.TIME_REF_COUNT)!;
      assert.equal(msr, BigInt(Math.floor(ns / 100)), `MSR at ${ns} ns`);
      assert.equal(tscPageTime(BigInt(rig.vcpus[0]!.readTsc()), page.scale, page.offset), msr, `page at ${ns} ns`);
    }
  });
}

test('a TSC frequency that is not a multiple of 10 MHz stays within one unit', () => {
  const { rig, vp, page } = enabledPage(1_234_000_000);
  for (let ns = 0; ns < 5000; ns += 7) {
    rig.clock.ns = ns * 1_000_003;
    const diff = vp.rdmsr(HvMsr.TIME_REF_COUNT)! - tscPageTime(BigInt(rig.vcpus[0]!.readTsc()), page.scale, page.offset);
    assert.ok(diff >= 0n && diff <= 1n, `diff ${diff} at ${rig.clock.ns} ns`);
  }
});

test('re-enabling bumps the sequence; disabling leaves the page alone', () => {
  const { rig, vp } = enabledPage(1e9);
  assert.equal(vp.wrmsr(HvMsr.REFERENCE_TSC, 0x8001n), true);
  assert.equal(readTscPage(rig.mem, 0x8000).sequence, 2);
  assert.equal(vp.wrmsr(HvMsr.REFERENCE_TSC, 0x8000n), true);
  assert.equal(vp.rdmsr(HvMsr.REFERENCE_TSC), 0x8000n);
  assert.equal(readTscPage(rig.mem, 0x8000).sequence, 2);
});

test('sequence 0 (use TIME_REF_COUNT) when the TSC was moved or the scale does not fit', () => {
  const moved = makeRig(['hv-time']);
  moved.vcpus[0]!.tscOffset = 1000; // the guest wrote IA32_TSC
  moved.vps[0]!.wrmsr(HvMsr.REFERENCE_TSC, 0x8001n);
  assert.equal(readTscPage(moved.mem, 0x8000).sequence, 0);

  assert.equal(tscPageScale(10_000_000), undefined, '10 MHz: the scale would be exactly 2^64');
  assert.equal(tscPageScale(20_000_000), 1n << 63n);
  const slow = makeRig(['hv-time'], { tscHz: 5_000_000 });
  slow.vps[0]!.wrmsr(HvMsr.REFERENCE_TSC, 0x8001n);
  assert.equal(readTscPage(slow.mem, 0x8000).sequence, 0);
});

test('a page outside RAM is #GP', () => {
  const [vp] = makeRig(['hv-time']).vps;
  assert.equal(vp!.wrmsr(HvMsr.REFERENCE_TSC, BigInt(GUEST_RAM) | 1n), false);
  assert.equal(vp!.rdmsr(HvMsr.REFERENCE_TSC), 0n);
});

test('a TSC page closed by memory attributes is not written (as KVM stops updating pvclock pages)', () => {
  const rig = makeRig(['hv-time'], { partition: { guestAccessAllowed: (gpa) => gpa !== 0x8000 } });
  rig.mem.write32(0x8000, 0xabcd);
  assert.equal(rig.vps[0]!.wrmsr(HvMsr.REFERENCE_TSC, 0x8001n), true);
  assert.equal(rig.vps[0]!.rdmsr(HvMsr.REFERENCE_TSC), 0x8001n);
  assert.equal(rig.mem.read32(0x8000), 0xabcd);
});
