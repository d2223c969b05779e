/**
 * VSM protections, intercepts, translation and TLB locks from inside the
 * guest (issue 5): three guests on the guest VSM library
 * (guests/lib/vsm.h), booted by the real runner (bin/vsmvisor.js).
 * - vsm-intercept: the write-once VsmPartitionConfig, every negative case
 *   of ModifyVtlProtectionMask (slow and XMM fast) with its status and reps
 *   completed, and read / write / execute / page-walk GPA intercepts on each
 *   VP whose SINT0 message the guest compares byte for byte with one it
 *   builds from the faulting context (tlfs-vsm-facts §2.18, §3.7, §3.8,
 *   §3.10, §4.2-§4.5).
 * - vsm-tlb: VTL1 locks its VP's VTL0 TLB four ways (TlbLocked cleared or
 *   released by VtlReturn, TranslateVirtualAddress with TlbFlushInhibit, a
 *   GPA intercept), and the flusher on VP0 is shown to stay inside its
 *   flush hypercall while the holders watch, then to return SUCCESS with
 *   the new mapping seen everywhere; WaitForTlbLock (§3.9).
 * - vsm-translate: TranslateVirtualAddress(Ex) results from VTL1 for VTL0
 *   and the negative statuses (§2.16, §5).
 *
 * Each run asserts the exact test count, no failures and no skips, plus the
 * lines that show each behaviour. (These guests found three host bugs, now
 * fixed: a read-modify-write set its flags before its write faulted, a
 * page-walk intercept claimed a valid translation and took the TLB lock,
 * and WaitForTlbLock could not name VTL0.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../paths.js';

const HV = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm', 'hv-tlbflush', 'hv-ipi', 'hv-xmm-input', 'hv-xmm-output'];
const image = (name: string) => join(REPO, 'guests', 'build', `${name}.elf`);

interface Run { status: number | null; out: string; err: string; summary: { tests: number; failures: number; skipped: number } | null }

function run(name: string, smp: number, hv: readonly string[] = HV): Run {
  const args = [join(REPO, 'bin/vsmvisor.js'), 'run', image(name), '--smp', String(smp), '-m', '128M', '--timeout', '60', '--hv', hv.join(',')];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const m = /^SUMMARY: (\d+) tests, (\d+) failures, (\d+) skipped/m.exec(p.stdout);
  return { status: p.status, out: p.stdout, err: p.stderr, summary: m ? { tests: Number(m[1]), failures: Number(m[2]), skipped: Number(m[3]) } : null };
}

function checkRun(o: Run, tests: number): void {
  assert.ok(o.summary !== null, `no SUMMARY line; stderr: ${o.err}\n${o.out.slice(-2000)}`);
  const fails = o.out.split('\n').filter((l) => l.startsWith('FAIL'));
  assert.deepEqual(fails, [], 'failures');
  assert.equal(o.status, 0, `exit status ${o.status}; stderr: ${o.err}`);
  assert.deepEqual(o.summary, { tests, failures: 0, skipped: 0 });
}

const skipOf = (name: string) => !existsSync(image(name)) && 'guest not built';
const runs = new Map<string, Run>();
/** One guest run per (guest, CPU count). */
function cached(name: string, smp: number): Run {
  const key = `${name}/${smp}`;
  if (!runs.has(key)) runs.set(key, run(name, smp));
  return runs.get(key)!;
}

for (const smp of [1, 2]) {
  test(`guest vsm-intercept (smp ${smp}): write-once config, ModifyVtlProtectionMask statuses, byte-exact GPA intercepts`, { skip: skipOf('vsm-intercept') }, () => {
    const o = cached('vsm-intercept', smp);
    // 31 partition-wide checks (config 8, ModifyVtlProtectionMask 23) + 26 intercept checks per VP.
    checkRun(o, 31 + 26 * smp);
    for (const re of [
      /^PASS: VTL1: ModifyVtlProtectionMask before EnableVtlProtection => ACCESS_DENIED \(0x6\)\r?$/m,
      /^PASS: VTL1: VsmPartitionConfig EnableVtlProtection with default mask W \(0x2\) => INVALID_REGISTER_VALUE \(0x50\), still 0\r?$/m,
      /^PASS: VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX \(0x1f\) => SUCCESS \(0x0\), reads 0x1f\r?$/m,
      /^PASS: VTL1: changing the default mask to R afterwards => INVALID_REGISTER_VALUE \(0x50\)\r?$/m,
      /^PASS: VTL1: clearing EnableVtlProtection => INVALID_REGISTER_VALUE \(0x50\)\r?$/m,
      /^PASS: VTL0: ModifyVtlProtectionMask for its own VTL0 => INVALID_PARAMETER \(0x5\)\r?$/m,
      /^PASS: VTL0: ModifyVtlProtectionMask with input VTL1 \(above it\) => ACCESS_DENIED \(0x6\)\r?$/m,
      /^PASS: VTL1: ModifyVtlProtectionMask of partition 0 \(not self\) => ACCESS_DENIED \(0x6\)\r?$/m,
      /^PASS: VTL1: ModifyVtlProtectionMask with mask 0x2 => INVALID_REGISTER_VALUE \(0x50\)\r?$/m,
      /^PASS: VTL1: ModifyVtlProtectionMask with rep count 0 => INVALID_HYPERCALL_INPUT \(0x3\)\r?$/m,
      /^PASS: VTL1: ModifyVtlProtectionMask\(no access\) of \{RAM, RAM, APIC page, RAM\} => INVALID_PARAMETER, 2 reps completed \(0x200000005\)\r?$/m,
      /^PASS: VTL1: element 0 was applied \(read translation => 5 GpaNoReadAccess\), element 3 was not \(=> 0 Success\)\r?$/m,
      /^PASS: VP0 read of element 1: message 1 is the GpaIntercept expected from the faulting context, byte for byte \(access 0, GPA 0x[0-9a-f]+238, info 0xb\)\r?$/m,
      /^PASS: VTL1: fast ModifyVtlProtectionMask\(R\) of 2 pages => SUCCESS, 2 reps \(0x200000000\); writes => 6, 6 \(GpaNoWriteAccess\), read => 0\r?$/m,
      /^PASS: VTL1: fast ModifyVtlProtectionMask\(RWX\) of \{RAM, APIC page\} => INVALID_PARAMETER, 1 rep \(0x100000005\); element 0 writable again \(0\)\r?$/m,
    ]) assert.match(o.out, re);
    for (let n = 0; n < smp; n++) {
      for (const re of [
        new RegExp(`^PASS: VP${n} read of a no-access page \\(2 faults\\): 2 VTL entries with reason 3 \\(intercept\\), 2 SINT0 message\\(s\\)\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} read of a no-access page \\(2 faults\\): message 2 is the GpaIntercept expected from the faulting context, byte for byte \\(access 0, GPA 0x[0-9a-f]+238, info 0xb\\)\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} VTL0: the read completed once: RAX 0x[0-9a-f]+ = 0x[0-9a-f]+ \\+ \\[RSI\\], other GPRs unchanged\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} write to a read-only page: 1 VTL entry with reason 3 \\(intercept\\), 1 SINT0 message\\(s\\)\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} call into a non-executable page: message 1 is the GpaIntercept expected from the faulting context, byte for byte \\(access 2, GPA 0x[0-9a-f]+000, info 0xb\\)\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} VTL0: the called code ran once \\(counter 1\\), GPRs unchanged\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} page walk through a no-access page table: 1 VTL entry with reason 3 \\(intercept\\), 1 SINT0 message\\(s\\)\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} page walk through a no-access page table: message 1 is the GpaIntercept expected from the faulting context, byte for byte \\(access 0, GPA 0x[0-9a-f]+, info 0x1\\)\\r?$`, 'm'),
        new RegExp(`^PASS: VP${n} write to a read-only page: message 1 is the GpaIntercept expected from the faulting context, byte for byte \\(access 1, GPA 0x[0-9a-f]+, info 0xb\\)\\r?$`, 'm'),
      ]) assert.match(o.out, re);
    }
  });
}

for (const smp of [2, 4]) {
  test(`guest vsm-tlb (smp ${smp}): every TLB lock keeps VP0 inside its flush until released; the flush then reaches every VP`, { skip: skipOf('vsm-tlb') }, () => {
    const o = cached('vsm-tlb', smp);
    // 2 CPUs: 1 holder (VP1); 4 CPUs: 2 holders (VP1, VP2) and VP3 without a lock.
    checkRun(o, smp === 2 ? 28 : 50);
    const holders = smp === 2 ? 1 : 2;
    for (const mode of ['SecureConfigVtl0.TlbLocked, cleared in VTL1', 'SecureConfigVtl0.TlbLocked, released by VtlReturn',
      'TranslateVirtualAddress\\(TlbFlushInhibit\\), released by VtlReturn', 'a GPA intercept, released when VTL1 returns']) {
      assert.match(o.out, new RegExp(`^PASS: ${mode}: Flush[A-Za-z( )]+ from VP0 => SUCCESS \\(0x[01]0*\\) once all ${holders} holder\\(s\\) released\\r?$`, 'm'));
      for (let n = 1; n <= holders; n++) {
        assert.match(o.out, new RegExp(`^PASS: ${mode}: VP${n} VTL1 locked, VP0 stayed inside its flush for 64 PAUSEs\\r?$`, 'm'));
        assert.match(o.out, new RegExp(`^PASS: ${mode}: VP${n} VTL0 read 0xaaaaaaaa00000001 before and 0xbbbbbbbb00000002 after the flush \\(frames A, B\\)\\r?$`, 'm'));
        if (n > 1) assert.match(o.out, new RegExp(`^PASS: ${mode}: VP${n} still holds: VP0 stayed inside its flush after VP${n - 1} released\\r?$`, 'm'));
      }
    }
    assert.match(o.out, /^PASS: SecureConfigVtl0.TlbLocked, released by VtlReturn: VP1 VTL1, next entry: SecureConfigVtl0 reads 0x0 \(TlbLocked went with the VtlReturn\)\r?$/m);
    assert.match(o.out, /^PASS: a GPA intercept, released when VTL1 returns: VP1: the message's MemoryAccessInfo 0xb: GvaValid, GvaGpaValid, TlbLocked\r?$/m);
    assert.match(o.out, /^PASS: VTL1: SecureConfigVtl0 with reserved bit 4 => INVALID_REGISTER_VALUE \(0x50\)\r?$/m);
  });
}

test('guest vsm-tlb on one CPU skips (exit 38): a TLB lock needs a second VP', { skip: skipOf('vsm-tlb') }, () => {
  const o = run('vsm-tlb', 1);
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
});

for (const smp of [1, 2]) {
  test(`guest vsm-translate (smp ${smp}): TranslateVirtualAddress(Ex) results and statuses`, { skip: skipOf('vsm-translate') }, () => {
    const o = cached('vsm-translate', smp);
    // A second VP adds the remote translation and the same VA on VP0.
    checkRun(o, smp === 1 ? 51 : 53);
    for (const re of [
      /^PASS: PWT page \(PAT 1\): TranslateVirtualAddress\(VTL0, 0x3000001000, flags 0x1\) => 0x0, result 0x400000000, GPA page 0x[0-9a-f]+ /m,
      /^PASS: unmapped VA: TranslateVirtualAddress\(VTL0, 0x3000003000, flags 0x1\) => 0x0, result 0x1, GPA page 0x0 /m,
      /^PASS: supervisor page, UserAccess: TranslateVirtualAddress\(VTL0, 0x3000000000, flags 0x81\) => 0x0, result 0x2, GPA page 0x0 /m,
      /^PASS: VTL1 protection R, write: TranslateVirtualAddress\(VTL0, 0x3000000000, flags 0x2\) => 0x0, result 0x6, GPA page 0x0 /m,
      /^PASS: VTL0's hypercall page, read: TranslateVirtualAddress\(VTL0, 0x[0-9a-f]+, flags 0x5\) => 0x0, result 0x10600000000, /m,
      /^PASS: A\/D: a read sets A on every level, not D /m,
      /^PASS: VTL1: translating for its own VTL \(input VTL = caller's\) => ACCESS_DENIED \(0x6\)\r?$/m,
      /^PASS: VTL1: VP index 0x12345 => INVALID_VP_INDEX \(0xe\)\r?$/m,
    ]) assert.match(o.out, re);
    if (smp === 2) assert.match(o.out, /^PASS: VP0 VTL1: TranslateVirtualAddress\(VP1's VTL0, 0x3400000000\) uses its CR3 => 0x0, result 0x600000000, /m);
  });
}

test('guest vsm-intercept without hv-xmm-input skips everything (exit 38)', { skip: skipOf('vsm-intercept') }, () => {
  const o = run('vsm-intercept', 1, HV.filter((f) => f !== 'hv-xmm-input' && f !== 'hv-xmm-output'));
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
});
