/**
 * VSM interrupt and VP-start scenarios (issue 5), guests booted by the real
 * runner (bin/vsmvisor.js), both on the guest VSM library (guests/lib/vsm.h):
 * - vsm-interrupts: each VTL's own local APIC, SynIC timers and reference
 *   TSC page; IPIs go to the sender's VTL; an interrupt for VTL1 enters it at
 *   once (entry reason 2) whatever VTL0's RFLAGS.IF, unless VTL1's TPR
 *   blocks it; one for VTL0 waits while the VP is in VTL1; disabling VTL1's
 *   APIC leaves VTL0's alone; PV IPIs naming a VTL; GetVpIndexFromApicId
 *   (tlfs-vsm-facts §2.5, §2.6, §2.11, §2.17, §3.2, §3.10, §4.1, §6.5).
 * - vsm-startvp: booted with an NR_CPUS=1 module so that no AP gets
 *   INIT/SIPI; VTL1 on the BSP enables VTL1 on VP1 and starts it there with
 *   StartVirtualProcessor; a SIPI for VP1's waiting VTL0 is dropped (§3.10),
 *   VTL0 starts that VTL0 with StartVirtualProcessor, and an INIT and a SIPI
 *   to it are dropped once it runs; VTL0 and VTL1 start VP2 and VP3 in VTL0;
 *   each AP reports its context and VsmVpStatus; every refusal has its
 *   status (§2.14).
 * Asserts on the exit code, the SUMMARY line (exact test count, no failures,
 * no skips) and the lines that show each behaviour.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../paths.js';

const INTERRUPTS = join(REPO, 'guests', 'build', 'vsm-interrupts.elf');
const STARTVP = join(REPO, 'guests', 'build', 'vsm-startvp.elf');
const VSM = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'];
const HV = [...VSM, 'hv-ipi', 'hv-time', 'hv-stimer', 'hv-stimer-direct', 'hv-frequencies'];

function run(image: string, smp: number, hv: readonly string[], extra: readonly string[] = []) {
  const args = [join(REPO, 'bin/vsmvisor.js'), 'run', image, '--smp', String(smp), '-m', '128M', '--timeout', '60', '--hv', hv.join(','), ...extra];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const m = /^SUMMARY: (\d+) tests, (\d+) failures, (\d+) skipped/m.exec(p.stdout);
  return { status: p.status, out: p.stdout, err: p.stderr, summary: m ? { tests: Number(m[1]), failures: Number(m[2]), skipped: Number(m[3]) } : null };
}

/** Exactly `tests` checks, no skips, and no failures but the known ones (each matched by one of `known`). */
function assertAllPassed(o: ReturnType<typeof run>, tests: number, known: readonly RegExp[] = []): void {
  assert.ok(o.summary !== null, `no SUMMARY line; stderr: ${o.err}\n${o.out.slice(-2000)}`);
  const fails = o.out.split('\n').filter((l) => l.startsWith('FAIL'));
  const unknown = fails.filter((l) => !known.some((re) => re.test(l)));
  assert.deepEqual(unknown, []);
  assert.equal(o.summary.failures, known.length, fails.join('\n'));
  assert.equal(o.status, known.length === 0 ? 0 : 1, `exit status ${o.status}; stderr: ${o.err}`);
  assert.equal(o.summary.skipped, 0);
  assert.equal(o.summary.tests, tests);
}

const line = (text: string) => new RegExp(`^PASS: ${text}\\r?$`, 'm');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const smp of [2, 4]) {
  test(`guest vsm-interrupts (smp ${smp}): per-VTL APIC, timers and clock, cross-VTL IPIs and PV IPIs, GetVpIndexFromApicId`, { skip: !existsSync(INTERRUPTS) && 'guest not built' }, () => {
    const o = run(INTERRUPTS, smp, HV);
    // 50 checks on the BSP and about the partition; each AP adds 10 (one VTL0 IPI, two VTL1 preemptions
    // of 3 checks, two held interrupts, one PV IPI naming VTL0).
    assertAllPassed(o, 50 + 10 * (smp - 1));
    const ap = (n: number) => [
      line(esc(`VP0 VTL0's fixed IPI 0x61 reached VP${n} VTL0 once (1), not its VTL1 (0): VTL1 entered for the fence only`)),
      line(esc(`VP0 VTL1's APIC IPI 0x61 entered VP${n} VTL1 (entry reason 2, 1 entry) while its VTL0 spun with IF = 0 (0x0)`)),
      line(esc(`VP0 VTL1's APIC IPI 0x61 entered VP${n} VTL1 (entry reason 2, 1 entry) while its VTL0 spun with IF = 1 (0x0)`)),
      line(`VP${n} VTL1 found VTL0's RFLAGS 0x[0-9a-f]+ \\(IF = 0\\): VTL0's IF did not matter`),
      line(esc(`VP0 VTL0's APIC IPI 0x61 for VP${n} VTL0 while VP${n} is in VTL1: pending there (VTL0 count +0 in VTL1), taken by VTL0 after VtlReturn (+1) (0x0)`)),
      line(esc(`VP0 VTL1's PV IPI naming VTL0 0x64 for VP${n} VTL0 while VP${n} is in VTL1: pending there (VTL0 count +0 in VTL1), taken by VTL0 after VtlReturn (+1) (0x0)`)),
      line(esc(`VP0 VTL1: SendSyntheticClusterIpi naming VTL0 reached VP${n} VTL0, not its VTL1 (0x0)`)),
    ];
    for (let n = 1; n < smp; n++) for (const re of ap(n)) assert.match(o.out, re);
    const odd = smp === 2 ? '0x2' : '0xa';
    for (const re of [
      line(esc("VP0 VTL0's self IPI 0x61 reached VP0 VTL0 once (1), not its VTL1 (0): VTL1 entered for the fence only")),
      line(esc("VTL1's one-shot APIC timer (vector 0x62, 20000 ticks) entered VTL1 (entry reason 2) while VTL0 spun with IF = 0; VTL0 took nothing")),
      line(`VTL0's one-shot APIC timer \\(APIC 1000000000 Hz\\) expiring while the VP held VTL1 until reference time \\d+: VTL0 took it after VtlReturn only`),
      line(esc("VTL1's expired timer 0x62 under its TPR 0x70 entered nothing; VTL1 lowering TPR to 0 brought the VP right back (entry reason 2)")),
      line(esc("VTL1's synthetic timer 0 (direct, vector 0x63) entered VTL1 (entry reason 2) while VTL0 spun; VTL0 took nothing")),
      line(esc("VTL0's synthetic timer 0 (direct, vector 0x63) reached VTL0; VTL1 took nothing (the one entry is the fence's)")),
      line(`after firing: VTL1's STIMER0 CONFIG 0x1630 COUNT \\d+, VTL0's CONFIG 0x1630 COUNT \\d+ \\(Enable clear, each its own\\)`),
      line(esc("STIMER1: VTL1 read 0x0/0 (VTL0 wrote 0x15a0/1193046) and wrote 0x15b0/6636321; VTL0 reads its own 0x15a0/1193046")),
      line(`REFERENCE_TSC per VTL: VTL1 read 0x0 before writing 0x([0-9a-f]+) \\(reads back 0x\\1\\); VTL0 still has 0x[0-9a-f]+`),
      line(`one clock: VTL0 page \\d+ <= MSR \\d+ <= VTL1 page \\d+ <= MSR \\d+ <= VTL0 page \\d+ <= MSR \\d+`),
      line(esc("VTL1's APIC: TPR 0x20 (CR8 2), LVTT 0x1005f, TDCR 0x8, TMICT 0x2222 as VTL1 wrote them")),
      line(esc("VTL0's APIC: TPR 0x10 (CR8 1), LVTT 0x3005e, TDCR 0x3, TMICT 0x12345678 as VTL0 wrote them")),
      line(esc("VTL1 cleared SVR bit 8 (its SVR 0xff): VTL0's SVR is 0x1ff and VTL0's APIC takes IPIs")),
      line(`VTL1 disabled its APIC \\(IA32_APIC_BASE 0xfee00100\\): VTL0's IA32_APIC_BASE 0xfee00d00, SVR 0x1ff, VTL0's APIC takes IPIs`),
      line(esc('VTL1 re-enabled its APIC (IA32_APIC_BASE 0xfee00d00, SVR bit 8 set again before): a VTL1 self-IPI enters VTL1 again')),
      line(esc('VTL0: SendSyntheticClusterIpi(Ex) naming VTL1 => ACCESS_DENIED (0x6, 0x6), nothing delivered')),
      line(esc("VP0 VTL1's PV IPI naming VTL1 0x64 entered VP1 VTL1 (entry reason 2, 1 entry) while its VTL0 spun with IF = 0 (0x0)")),
      line(esc("VP0 VTL1's PV IPI (its own VTL) 0x64 entered VP1 VTL1 (entry reason 2, 1 entry) while its VTL0 spun with IF = 1 (0x0)")),
      line(esc(`VP0 VTL1: SendSyntheticClusterIpiEx naming VTL0, VP set {bank 0: ${odd}, bank 1: VP 64}: exactly those VPs' VTL0 (0x0)`)),
      line(esc(`VP0 VTL1: SendSyntheticClusterIpiEx naming VTL1, VP set {bank 0: ${odd}, bank 1: VP 64}: exactly those VPs' VTL1 (0x0)`)),
      line(esc('VP0 VTL1: SendSyntheticClusterIpi with vector 0xf => INVALID_PARAMETER (0x5), nothing delivered')),
      line(esc('VP0 VTL1: SendSyntheticClusterIpi with input VTL 2 (not implemented) => INVALID_PARAMETER (0x5), nothing delivered')),
      line(esc('VP0 VTL1: SendSyntheticClusterIpiEx with Ex, 2 valid banks but 1 bank word => INVALID_PARAMETER (0x5), nothing delivered')),
      line(esc(`VTL1: GetVpIndexFromApicId(VTL0) of the ${smp} CPUs' APIC IDs: their VP indexes (first 0, last ${smp - 1}) (0x${smp}00000000)`)),
      line(esc(`VTL0: GetVpIndexFromApicId(its own VTL) of the ${smp} CPUs' APIC IDs: their VP indexes (first 0, last ${smp - 1}) (0x${smp}00000000)`)),
      line(esc('VTL0: GetVpIndexFromApicId naming VTL1 => ACCESS_DENIED (0x6)')),
      line(esc(`VTL1: unknown APIC ID 0xff at element ${smp} => INVALID_PARAMETER with ${smp} reps completed, the ${smp} before answered (0x${smp}00000005)`)),
      line(esc('VTL1: GetVpIndexFromApicId with partition 0 => 0xd (0xd)')),
      line(esc('VTL0: GetVpIndexFromApicId with padding byte 9 = 1 => 0x5 (0x5)')),
    ]) assert.match(o.out, re);
  });
}

test('guest vsm-interrupts without hv-vsm skips everything (exit 38), as under QEMU', { skip: !existsSync(INTERRUPTS) && 'guest not built' }, () => {
  const o = run(INTERRUPTS, 2, ['hv-vpindex', 'hv-synic', 'hv-vapic']);
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
});

test('guest vsm-startvp (smp 2 and 4): APs started by StartVirtualProcessor in VTL1 and VTL0, every refusal', { skip: !existsSync(STARTVP) && 'guest not built' }, () => {
  // The first Multiboot module's NR_CPUS=1 keeps the library from starting the APs with INIT/SIPI.
  const dir = mkdtempSync(join(tmpdir(), 'vsm-startvp-'));
  const module = join(dir, 'env.txt');
  writeFileSync(module, 'NR_CPUS=1\n');
  try {
    for (const smp of [2, 4]) {
      const o = run(STARTVP, smp, VSM, ['--initrd', module]);
      // 33 checks with VP1 (lookup, 11 refusals, state, enable, bad context, start in VTL1, 4 AP checks, status,
      // restart, return, SIPI dropped, start of its VTL0, 4 AP checks, 3 restarts, INIT/SIPI dropped); VP2 and VP3
      // add 6 each (start, 4 AP checks, restart).
      assertAllPassed(o, 33 + 6 * (smp - 2));
      const ap = (n: number, vtl: number, status: string) => [
        line(`VP${n}: runs at the start context's RIP \\(entry 1, not EnableVpVtl's\\), RSP 0x[0-9a-f]+, RFLAGS 0x40002 as given`),
        line(`VP${n}: CR0 0x[0-9a-f]+, CR3 0x[0-9a-f]+ \\(its own tables\\), CR4 0x[0-9a-f]+, EFER 0xd00, PAT 0x7010600070106 from the context`),
        line(`VP${n}: CS 0x8, SS 0x10, DS 0x10, TR 0x40, FS base 0x7f00${n}000, GS base \\(where it found its struct ap\\), GDTR 0x[0-9a-f]+/0x4f, IDTR 0x[0-9a-f]+/0xfff from the context`),
        line(esc(`VP${n}: VP_INDEX ${n}; in VTL${vtl} its VsmVpStatus is ${status}: active VTL ${vtl} (0x0)`)),
      ];
      for (const re of [
        line(esc(`VTL1: GetVpIndexFromApicId(APIC IDs 1..${smp - 1}) of VPs never started: VP indexes 1..${smp - 1} (0x${smp - 1}00000000)`)),
        line(esc('VTL0: StartVirtualProcessor(VP1, VTL1) with VTL1 (above the caller) => 0x6 (0x6)')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL1) with VTL1 not enabled on that VP => 0x15 (0x15)')),
        line(esc('VTL1: StartVirtualProcessor(VP0, VTL1) with its own VP => 0xe (0xe)')),
        line(esc('VTL1: StartVirtualProcessor(VP4095, VTL0) with a VP index no VP has => 0xe (0xe)')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL0) with partition 0 => 0xd (0xd)')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL2) with VTL2 (above the caller) => 0x6 (0x6)')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL0) with the fast form => 0x3 (0x3)')),
        line(esc('VP1 after the refusals: VsmVpStatus 0x10000 (VTL0 only), it has not run')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL1) with CR0.PE clear => INVALID_REGISTER_VALUE (0x50); VsmVpStatus 0x30000, not started')),
        ...ap(1, 1, '0x30001'),
        line(esc('VP0 VTL1: VsmVpStatus of VP1 = 0x30001: VTL1 active, VTLs {0, 1}')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL1) once it runs => INVALID_VP_STATE (0x15)')),
        line(esc("VP1 after its VTL1's VtlReturn: VsmVpStatus 0x30000 (VTL0 active, waiting for its start)")),
        line(esc('VP1 (VTL1 enabled): a SIPI for its VTL0 is dropped (marker 0x0 at 0xff0), VsmVpStatus 0x30000')),
        line(esc('VP0 VTL0: StartVirtualProcessor(VP1, VTL0) of the VP started in VTL1 (0x0)')),
        ...ap(1, 0, '0x30000'),
        line(esc('VTL0: StartVirtualProcessor(VP1, VTL0) again => INVALID_VP_STATE (0x15)')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL0) once both VTLs started => INVALID_VP_STATE (0x15)')),
        line(esc('VTL1: StartVirtualProcessor(VP1, VTL1) once both VTLs started => INVALID_VP_STATE (0x15)')),
        line('VP1 \\(VTL1 enabled, VTL0 running\\): INIT and SIPI for its VTL0 are dropped: RIP 0x([0-9a-f]+) -> 0x\\1, CR0 0x([0-9a-f]+) -> 0x\\2, marker 0x0'),
      ]) assert.match(o.out, re);
      if (smp === 4) {
        for (const re of [
          line(esc('VP0 VTL0: StartVirtualProcessor(VP2, VTL0) (0x0)')), ...ap(2, 0, '0x10000'),
          line(esc('VTL0: StartVirtualProcessor(VP2, VTL0) again => INVALID_VP_STATE (0x15)')),
          line(esc('VP0 VTL1: StartVirtualProcessor(VP3, VTL0) (0x0)')), ...ap(3, 0, '0x10000'),
          line(esc('VTL1: StartVirtualProcessor(VP3, VTL0) again => INVALID_VP_STATE (0x15)')),
        ]) assert.match(o.out, re);
      }
      assert.doesNotMatch(o.out, /^CPU online/m); // no AP came up through INIT/SIPI
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('guest vsm-startvp without the NR_CPUS=1 module fails cleanly: the APs already ran', { skip: !existsSync(STARTVP) && 'guest not built' }, () => {
  const o = run(STARTVP, 2, VSM);
  assert.equal(o.status, 1, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 1, skipped: 0 });
  assert.match(o.out, /^FAIL: 2 CPUs came up with INIT\/SIPI: boot with a first module holding NR_CPUS=1\r?$/m);
});
