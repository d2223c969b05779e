/**
 * Guest vsm-vtl2 (issue 5: VTL0-VTL2 as the partition allows, on every VP):
 * the VSM library's VTL1 and a VTL2 kernel of the guest's own, booted by the
 * real runner with `--max-vtl 2` (guests/tests/vsm-vtl2.c describes every
 * check; tlfs-vsm-facts §2.11-§2.15, §3.2-§3.4, §3.7-§3.10, §4.2-§4.5).
 * - Enabling: VTL1 (or, with `--append vtl0-enables-vtl2`, VTL0 before VTL1
 *   exists) enables VTL2 for the partition; VTL1 on its own VP, then VTL2
 *   on the other VPs (§2.12, §2.13).
 * - VtlCall chain VTL0 → 1 → 2 → 1 → 0 on every VP with private CR3, RSP,
 *   RIP, RFLAGS per VTL and shared GPRs (§3.2, §3.4); VtlCall from VTL2 #UD.
 * - Protections of VTL1 and VTL2 and where their intercepts go (§3.8, §3.10).
 * - SecureConfigVtl0/1 and Get/SetVpRegisters with input VTL1 from VTL2.
 * Without --max-vtl 2 the guest sees MaximumVtl 1, checks that VTL2 cannot
 * be enabled and skips the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../paths.js';

const IMAGE = join(REPO, 'guests', 'build', 'vsm-vtl2.elf');
const VSM = 'hv-vpindex,hv-synic,hv-vapic,hv-vsm';
const skip = !existsSync(IMAGE) && 'guest not built';

function run(smp: number, extra: readonly string[]) {
  const args = [join(REPO, 'bin/vsmvisor.js'), 'run', IMAGE, '--smp', String(smp), '-m', '128M', '--timeout', '120', '--hv', VSM, ...extra];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const m = /^SUMMARY: (\d+) tests, (\d+) failures, (\d+) skipped/m.exec(p.stdout);
  return { status: p.status, out: p.stdout, err: p.stderr, summary: m ? { tests: Number(m[1]), failures: Number(m[2]), skipped: Number(m[3]) } : null };
}

function assertPassed(o: ReturnType<typeof run>, tests: number): void {
  assert.ok(o.summary !== null, `no SUMMARY line; stderr: ${o.err}\n${o.out.slice(-2000)}`);
  const fails = o.out.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('ABORT')).join('\n');
  assert.equal(o.summary.failures, 0, fails);
  assert.equal(o.status, 0, `exit status ${o.status}; stderr: ${o.err}`);
  assert.deepEqual(o.summary, { tests, failures: 0, skipped: 0 });
}

/** Per CPU: 2 start-up checks, 9 for the chain and #UD, 10 for protections, 8 for the registers; 3 more to enable each AP's VTL2. */
const perCpu = (smp: number) => 29 * smp + 3 * (smp - 1);

for (const smp of [1, 2]) {
  test(`guest vsm-vtl2 (smp ${smp}, --max-vtl 2): VTL1 enables VTL2; chain, protections and registers on every VP`, { skip }, () => {
    const o = run(smp, ['--max-vtl', '2']);
    // 1 VsmPartitionStatus + 9 enabling checks + 3 protection-config checks.
    assertPassed(o, 13 + perCpu(smp));
    for (const re of [
      /^PASS: VsmPartitionStatus 0x20001: EnabledVtlSet \{0\}, MaximumVtl 2\r?$/m,
      /^PASS: VTL0: EnablePartitionVtl\(VTL2\) with VTL1 enabled \(VTL1 is the highest below 2\) => ACCESS_DENIED \(0x6\); status 0x20003\r?$/m,
      /^PASS: VTL1: EnablePartitionVtl\(VTL2\) => SUCCESS \(0x0\); VsmPartitionStatus 0x20007: /m,
      /^PASS: VTL1: EnableVpVtl\(self, VTL2\) => SUCCESS \(0x0\); VsmVpStatus 0x70000: /m,
      /^PASS: CPU 0: VsmVpStatus along the chain 0x70000, 0x70001, 0x70002, 0x70001, 0x70000: /m,
      /^PASS: CPU 0: VTL2: VtlCall from the highest VTL => #UD at its VMCALL \(1 taken at VTL2's stub \+ 8\); still in VTL2 \(VsmVpStatus 0x70002\)\r?$/m,
      /^PASS: CPU 0: VTL2's message: GpaIntercept, write, ExecutionState 0x14 \(VTL field 0\), /m,
      /^PASS: CPU 0: VTL2's message: GpaIntercept, write, ExecutionState 0x94 \(VTL field 1\), /m,
      /^PASS: CPU 0: VTL0 write to C \(VTL1: no access, VTL2: read-only\): VTL1 notified first \(intercept 4\), VTL2 next \(intercept 5\); /m,
      /^PASS: CPU 0: VTL2, next entry: SecureConfigVtl0 reads 0x0: /m,
    ]) assert.match(o.out, re);
    if (smp === 2) {
      for (const re of [
        /^PASS: VTL1 on CPU 0: EnableVpVtl\(VP 1, VTL2\) => ACCESS_DENIED \(0x6\)\r?$/m,
        /^PASS: CPU 1: VTL1 EnableVpVtl\(self, VTL2\) once VTL2 runs on another VP => ACCESS_DENIED \(0x6\)\r?$/m,
        /^PASS: VTL2 on CPU 0: EnableVpVtl\(VP 1, VTL2\) => SUCCESS \(0x0\)\r?$/m,
        /^PASS: CPU 1: VsmVpStatus along the chain 0x70000, 0x70001, 0x70002, 0x70001, 0x70000: /m,
        /^PASS: CPU 1: VTL0 write to C \(VTL1: no access, VTL2: read-only\): VTL1 notified first \(intercept 4\), VTL2 next \(intercept 5\); /m,
      ]) assert.match(o.out, re);
    }
  });
}

test('guest vsm-vtl2 (smp 1, --max-vtl 2, vtl0-enables-vtl2): VTL0 enables VTL2 while it is the highest enabled VTL below it', { skip }, () => {
  const o = run(1, ['--max-vtl', '2', '--append', 'vtl0-enables-vtl2']);
  // 1 VsmPartitionStatus + 7 enabling checks (no VTL1 EnablePartitionVtl) + 3 protection-config checks.
  assertPassed(o, 11 + perCpu(1));
  assert.match(o.out, /^PASS: VTL0: EnablePartitionVtl\(VTL2\) before VTL1 \(VTL0 is the highest enabled VTL below 2\) => SUCCESS \(0x0\); status 0x20005\r?$/m);
  assert.match(o.out, /^PASS: VTL0: EnablePartitionVtl\(VTL1\) with VTL2 enabled \(VTL0 is the highest below 1\) => SUCCESS \(0x0\); status 0x20007\r?$/m);
  assert.match(o.out, /^PASS: VTL0: EnableVpVtl\(self, VTL2\) => ACCESS_DENIED \(0x6\): /m);
});

test('guest vsm-vtl2 without --max-vtl 2: MaximumVtl 1, VTL2 refused, the rest skipped', { skip }, () => {
  const o = run(1, []);
  assert.equal(o.status, 0, `exit status ${o.status}; stderr: ${o.err}`);
  assert.deepEqual(o.summary, { tests: 3, failures: 0, skipped: 1 });
  assert.match(o.out, /^PASS: VsmPartitionStatus 0x10001: EnabledVtlSet \{0\}, MaximumVtl 1\r?$/m);
  assert.match(o.out, /^PASS: VTL0: EnablePartitionVtl\(VTL2\) above MaximumVtl 1 => ACCESS_DENIED \(0x6\)\r?$/m);
  assert.match(o.out, /^SKIP: MaximumVtl 1 \(run with --max-vtl 2\): no VTL2 to test\r?$/m);
});
