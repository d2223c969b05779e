/**
 * VSM scenario tests (issue 5, step 1): guests/tests/vsm-basic.c booted by
 * the real runner (bin/vsmvisor.js) with hv-vsm. The guest enables VTL1 for
 * the partition and its VP, VtlCalls into VTL1 code in its own image and
 * checks the entry reason, shared and private registers and both kinds of
 * VtlReturn from both sides, plus the negative cases with their TLFS
 * statuses (tlfs-vsm-facts §2.11-§2.15, §3.1-§3.7). Asserts on the exit
 * code, the SUMMARY line (no failures, exact skips) and the lines that show
 * each behaviour. Without hv-vsm the guest skips everything (exit 38), as it
 * does under QEMU TCG, which has no Hyper-V.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../paths.js';

const IMAGE = join(REPO, 'guests', 'build', 'vsm-basic.elf');
const VSM = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'];

function run(smp: number, hv: readonly string[]) {
  const args = [join(REPO, 'bin/vsmvisor.js'), 'run', IMAGE, '--smp', String(smp), '-m', '128M', '--timeout', '120', '--hv', hv.join(',')];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const m = /^SUMMARY: (\d+) tests, (\d+) failures, (\d+) skipped/m.exec(p.stdout);
  return { status: p.status, out: p.stdout, err: p.stderr, summary: m ? { tests: Number(m[1]), failures: Number(m[2]), skipped: Number(m[3]) } : null };
}

const skip = !existsSync(IMAGE) && 'guest not built';

for (const smp of [1, 2]) {
  test(`guest vsm-basic (smp ${smp}): VTL1 enabled, VtlCall/VtlReturn isolation and every negative case pass`, { skip }, () => {
    const o = run(smp, VSM);
    assert.ok(o.summary !== null, `no SUMMARY line; stderr: ${o.err}\n${o.out.slice(-2000)}`);
    const fails = o.out.split('\n').filter((l) => l.startsWith('FAIL')).join('\n');
    assert.equal(o.summary.failures, 0, fails);
    assert.equal(o.status, 0, `exit status ${o.status}; stderr: ${o.err}`);
    assert.equal(o.summary.skipped, 0);
    // 51 checks on one CPU; a second CPU adds "EnableVpVtl(VP 1) from VTL0 => ACCESS_DENIED".
    assert.equal(o.summary.tests, smp === 1 ? 51 : 52);
    for (const re of [
      /^INFO: VsmCodePageOffsets = 0x2600f: VtlCall at \+0xf, VtlReturn at \+0x26\r?$/m, // §3.6, our stub layout
      /^PASS: VtlCall with no VTL1 => #UD\r?$/m,
      /^PASS: EnablePartitionVtl\(VTL1\) again => VTL_ALREADY_ENABLED \(0x86\)\r?$/m,
      /^PASS: EnableVpVtl\(VTL1\) again from VTL0 => ACCESS_DENIED \(0x6\)\r?$/m,
      /^PASS: GetVpRegisters with HV_INPUT_VTL bit 5 set => INVALID_PARAMETER \(0x5\)\r?$/m,
      /^PASS: VTL1: entry reason 1 = 1 \(VtlCall\) in its VP assist page\r?$/m,
      /^PASS: VTL1: RDX, RBX, RBP, RSI, RDI, R8-R15 are VTL0's \(shared\)\r?$/m,
      /^PASS: VTL0 after VtlReturn: RAX 0xa1a1a1a1a1a1a1a1, RCX 0xc1c1c1c1c1c1c1c1 from VTL1's VTL control area\r?$/m,
      /^PASS: VTL0 after VtlReturn: TPR 0 unchanged \(VTL1 set 5 in its own APIC\)\r?$/m,
      /^PASS: VTL1, second entry: RFLAGS 0x[0-9a-f]+ kept \(AC set, IF clear\)\r?$/m,
      /^PASS: fast VtlReturn: RAX 0x1, RCX 0x12 as the stub left them\r?$/m,
      /^PASS: VTL1: VtlReturn with input bit 1 set => #UD\r?$/m,
    ]) assert.match(o.out, re);
    if (smp === 2) assert.match(o.out, /^PASS: EnableVpVtl\(VP 1\) from VTL0 => ACCESS_DENIED \(0x6\)\r?$/m);
  });
}

test('guest vsm-basic without hv-vsm skips everything (exit 38), as under QEMU', { skip }, () => {
  const o = run(1, ['hv-vpindex', 'hv-synic', 'hv-vapic']);
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
  assert.match(o.out, /^SKIP: no Hyper-V VSM \(AccessVsm and AccessVpRegisters\): nothing to test\r?$/m);
});
