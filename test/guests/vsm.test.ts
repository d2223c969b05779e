/**
 * VSM scenario tests (issue 5): guests booted by the real runner
 * (bin/vsmvisor.js) with hv-vsm, both on the guest VSM library
 * (guests/lib/vsm.h).
 * - vsm-basic (step 1): the guest enables VTL1 for the partition and its
 *   VP, VtlCalls into VTL1 code in its own image and checks the entry
 *   reason, shared and private registers and both kinds of VtlReturn from
 *   both sides, plus the negative cases with their TLFS statuses
 *   (tlfs-vsm-facts §2.11-§2.15, §3.1-§3.7).
 * - vsm-smp: VTL1 on every VP (VP0's VTL1 enables the others, §2.13),
 *   register isolation between the VTLs of each VP with exact values (§3.2),
 *   interrupt entries (reason 2, §3.10), Get/SetVpRegisters of remote VPs
 *   (§2.15) and VsmVpStatus per VP (§3.7).
 * Asserts on the exit code, the SUMMARY line (exact test count, no
 * failures, no skips) and the lines that show each behaviour. Without
 * hv-vsm the guests skip everything (exit 38), as under QEMU TCG, which has
 * no Hyper-V.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../paths.js';

const IMAGE = join(REPO, 'guests', 'build', 'vsm-basic.elf');
const SMP_IMAGE = join(REPO, 'guests', 'build', 'vsm-smp.elf');
const VSM = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'];

function run(smp: number, hv: readonly string[], image = IMAGE) {
  const args = [join(REPO, 'bin/vsmvisor.js'), 'run', image, '--smp', String(smp), '-m', '128M', '--timeout', '120', '--hv', hv.join(',')];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const m = /^SUMMARY: (\d+) tests, (\d+) failures, (\d+) skipped/m.exec(p.stdout);
  return { status: p.status, out: p.stdout, err: p.stderr, summary: m ? { tests: Number(m[1]), failures: Number(m[2]), skipped: Number(m[3]) } : null };
}

const skip = !existsSync(IMAGE) && 'guest not built';
const smpSkip = !existsSync(SMP_IMAGE) && 'guest not built';

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

for (const smp of [1, 2, 4]) {
  test(`guest vsm-smp (smp ${smp}): VTL1 on every VP, isolation between VTLs, interrupt entries, remote VP registers`, { skip: smpSkip }, () => {
    const o = run(smp, VSM, SMP_IMAGE);
    assert.ok(o.summary !== null, `no SUMMARY line; stderr: ${o.err}\n${o.out.slice(-2000)}`);
    const fails = o.out.split('\n').filter((l) => l.startsWith('FAIL')).join('\n');
    assert.equal(o.summary.failures, 0, fails);
    assert.equal(o.status, 0, `exit status ${o.status}; stderr: ${o.err}`);
    assert.equal(o.summary.skipped, 0);
    // 5 enabling checks + 23 isolation and 2 interrupt-entry checks per VP; each VP after
    // the first adds 6 enabling checks (status before, refusals, enable, twice) and 7 remote ones.
    assert.equal(o.summary.tests, 30 + 38 * (smp - 1));
    const vp = (n: number) => [
      new RegExp(`^PASS: VP${n} VTL1: RFLAGS 0x[0-9a-f]+: TF, IF, DF, AC clear \\(private; VTL0 has IF and AC set\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL1: XMM0-XMM15 \\(XMM0 0x700000000000010${n}_700000000000000${n}\\) are VTL0's \\(shared\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL1: VsmVpStatus 0x30001: active VTL 1, VTLs \\{0, 1\\} enabled\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0 after VtlReturn: RAX 0x5e5e00000000000${n} from VTL1's control area, RDX, RBX, RBP, RSI, RDI, R8-R15 are VTL1's \\(shared\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0 after VtlReturn: FS base 0x1000${n}000, GS base 0x[0-9a-f]+, KERNEL_GS_BASE 0x4000${n}000 are its own\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0 after VtlReturn: TPR 1 is its own \\(VTL1 set 3\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0 after VtlReturn: VsmVpStatus 0x30000: active VTL 0, VTLs \\{0, 1\\} enabled\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n}: VTL1's pending self-IPI 0x41 brought the VP back into VTL1 once \\(entry reason 2\\), its handler ran 1 time\\(s\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0: RAX 0x1 and RCX 0x12 \\(the fast VtlReturn's\\), RDX, RBX, RBP, RSI, RDI, R8-R15 intact across the interrupt entry\\r?$`, 'm'),
    ];
    const remote = (n: number) => [
      new RegExp(`^PASS: VP0 VTL1: VsmVpStatus of VP${n} before = 0x10000: VTL0 only \\(0x0\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP0 VTL1: GetVpRegisters\\(VP${n}, VTL1\\) before it has VTL1 => INVALID_VTL_STATE \\(0x51\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0: EnableVpVtl\\(self, VTL1\\) once VP0 has VTL1 => ACCESS_DENIED \\(0x6\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP0 VTL1: EnableVpVtl\\(VP${n}, VTL1\\) again => VTL_ALREADY_ENABLED \\(0x86\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP0 VTL1: VsmVpStatus of VP${n} = 0x30000: active VTL 0, VTLs \\{0, 1\\} enabled \\(0x0\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n} VTL0: KERNEL_GS_BASE 0x4200${n}000 as VP0's VTL1 set it\\r?$`, 'm'),
      new RegExp(`^PASS: VP0 VTL0: GetVpRegisters\\(VP${n}, VTL1\\) => ACCESS_DENIED \\(0x6\\)\\r?$`, 'm'),
      new RegExp(`^PASS: VP${n}: VTL1's IPI from VP0 entered its VTL1 \\(entry reason 2\\) while its VTL0 idled\\r?$`, 'm'),
    ];
    for (let n = 0; n < smp; n++) for (const re of [...vp(n), ...(n > 0 ? remote(n) : [])]) assert.match(o.out, re);
    assert.match(o.out, /^PASS: VsmPartitionStatus 0x10003: VTLs \{0, 1\} enabled\r?$/m);
    assert.doesNotMatch(o.out, new RegExp(`VP${smp}\\b`)); // no VP beyond the machine's
  });
}

test('guest vsm-smp without hv-vsm skips everything (exit 38), as under QEMU', { skip: smpSkip }, () => {
  const o = run(2, ['hv-vpindex', 'hv-synic', 'hv-vapic'], SMP_IMAGE);
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
  assert.match(o.out, /^SKIP: no Hyper-V VSM \(AccessVsm and AccessVpRegisters\): nothing to test\r?$/m);
});
