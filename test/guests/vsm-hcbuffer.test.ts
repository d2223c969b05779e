/**
 * Guest vsm-hcbuffer: hypercall buffers under VTL protections from inside
 * the guest, on the guest VSM library (guests/lib/vsm.h), booted by the real
 * runner (bin/vsmvisor.js); guests/tests/vsm-hcbuffer.c describes every
 * check (tlfs-vsm-facts §1.1, §1.5, §2.15, §2.17, §3.4, §3.8, §4.2-§4.5;
 * the host side is src/vmm/vsm/memory-intercept.ts checkVsmHypercallBuffer,
 * test/vmm/vsm-hcall-buffer-intercept.test.ts).
 * - On each VP, slow calls the VMM answers (GetVpRegisters,
 *   GetVpIndexFromApicId, SetVpRegisters) with the input page no access
 *   raise a Read intercept, with the output page read-only a Write
 *   intercept (input first when both): one VTL entry with reason 3 and one
 *   SINT0 message each, the message byte for byte (RIP = the VMCALL at
 *   offset 0 of VTL0's hypercall page, 3 bytes 0F 01 C1, GPA = the buffer's
 *   first byte, no GVA, MemoryAccessInfo 0, the GPRs at the VMCALL); VTL1
 *   entered with those GPRs, the output untouched and KernelGsBase unchanged
 *   meanwhile; VTL1 puts VTL0's RAX and RCX back through its control area
 *   and the VMCALL runs again: intercepted once more when VTL1 changed
 *   nothing, successful with the right output when it lifted the mask.
 * - kvm's FlushVirtualAddressSpace: INVALID_HYPERCALL_INPUT, no VTL entry.
 * - No intercept: another page protected, masks that allow the access,
 *   misaligned / page-crossing buffers (INVALID_ALIGNMENT first).
 * - 11 intercepts per VP, exactly.
 *
 * Each run asserts the exact test count, no failures and no skips, plus
 * lines that show each behaviour.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRun, line, runGuest, skipUnlessBuilt } from './vsm-guest-run.js';

const skip = skipUnlessBuilt('vsm-hcbuffer');
const run = (smp: number, extra: readonly string[] = [], hv?: readonly string[]) => runGuest('vsm-hcbuffer', smp, { extra, hv });
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** 2 partition-wide checks; per VP 24 in the GetVpRegisters and GetVpIndexFromApicId cases, 3 SetVpRegisters, 4 flush, 10 no-intercept, 1 total. */
const count = (smp: number) => 2 + 42 * smp;

for (const smp of [1, 2]) {
  test(`guest vsm-hcbuffer (smp ${smp}): a protected hypercall buffer is a GPA intercept (Read input, Write output), the VMCALL runs again; kvm's calls, alignment first`, { skip }, () => {
    const o = run(smp);
    checkRun(o, count(smp));
    const page = /^INFO: \d+ CPUs; VTL0's hypercall page at (0x[0-9a-f]+)\r?$/m.exec(o.out);
    assert.ok(page !== null, 'the hypercall page address');
    const rip = esc(page[1]);
    assert.match(o.out, line("VTL0's hypercall page begins with VMCALL; RET \\(0f 01 c1 c3\\): the VMCALL of every call here"));
    assert.match(o.out, line('VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX => SUCCESS \\(0x0\\)'));
    const IN = '0x[0-9a-f]+128', OUT = '0x[0-9a-f]+238';
    for (let n = 0; n < smp; n++) {
      const vp = `VP${n}`;
      /** The entry / message / result lines of one intercepted call. */
      const intercepted = (what: string, faults: number, lift: number, after: number, msgs: [string, string, string][], result: string) => [
        line(`${vp} ${what}: ${faults} intercepts? \\(${faults} VTL entr(y|ies) with reason 3, 0 other, ${faults} SINT0 messages?\\); VTL1 set 0x${lift.toString(16)} at intercept ${after} \\(0x100000000\\)`),
        ...msgs.map(([access, gpa, watch], k) =>
          line(`${vp} ${what}: intercept ${k + 1} is the GpaIntercept expected, byte for byte \\(${access}, GPA ${gpa}, RIP ${rip}: the page's VMCALL\\); VTL1 was entered with VTL0's GPRs \\(as in the message\\); ${watch}`)),
        line(`${vp} ${what}: then the VMCALL ran: ${result}; every other GPR as before`),
      ];
      const regs = `SUCCESS, 2 reps \\(0x200000000\\), output VsmVpStatus 0x30000, VpIndex ${n}`;
      const untouched = 'the output untouched';
      const noEntry = (what: string) => line(`${vp} ${what}: no VTL entry \\(0 with reason 3, 0 other\\), no message \\(0\\)`);
      for (const re of [
        // 1. input page no access: Read intercepts; lifted to R, or once left as it was.
        ...intercepted('GetVpRegisters, input page no access \\(0x0\\)', 1, 0x1, 1, [['Read', IN, untouched]], regs),
        ...intercepted('GetVpRegisters, input page no access \\(0x0\\), VTL1 returns once unchanged', 2, 0xf, 2,
          [['Read', IN, untouched], ['Read', IN, untouched]], regs),
        ...intercepted('GetVpIndexFromApicId, input page no access \\(0x0\\)', 1, 0xf, 1, [['Read', IN, untouched]],
          `SUCCESS, ${smp} reps? \\(0x${smp}00000000\\), the output every CPU's VP index`),
        // 2. output page read-only: Write intercepts, nothing written; input first when both are denied.
        ...intercepted('GetVpRegisters, output page read-only \\(0x1\\)', 1, 0x3, 1, [['Write', OUT, untouched]], regs),
        ...intercepted('GetVpRegisters, output page read-only \\(0x1\\), VTL1 returns once unchanged', 2, 0x3, 2,
          [['Write', OUT, untouched], ['Write', OUT, untouched]], regs),
        ...intercepted('GetVpRegisters, input page no access and output page read-only', 2, 0xf, 1,
          [['Read', IN, untouched], ['Write', OUT, untouched]], regs),
        ...intercepted('GetVpIndexFromApicId, output page read-only \\(0x1\\)', 1, 0x3, 1, [['Write', OUT, untouched]],
          `SUCCESS, ${smp} reps? \\(0x${smp}00000000\\), the output every CPU's VP index`),
        // 3. SetVpRegisters: nothing set while intercepted, set after the retry.
        ...intercepted('SetVpRegisters\\(KernelGsBase\\), input page no access \\(0x0\\)', 1, 0x1, 1,
          [['Read', IN, "VTL0's KernelGsBase still the old value"]],
          `SUCCESS, 1 rep \\(0x100000000\\), KernelGsBase 0x567800000${n}5a \\(was 0x123400000${n}00\\)`),
        // 4. kvm's own call: kvm's rule, no VTL entry.
        noEntry("FlushVirtualAddressSpace \\(kvm's\\), input page 0x0"),
        line(`${vp} FlushVirtualAddressSpace \\(kvm's\\), input page 0x0: => INVALID_HYPERCALL_INPUT \\(0x3\\); every other GPR as before`),
        noEntry("FlushVirtualAddressSpace \\(kvm's\\), input page 0x1"),
        line(`${vp} FlushVirtualAddressSpace \\(kvm's\\), input page 0x1: => SUCCESS \\(0x0\\); every other GPR as before`),
        // 5. no intercept: protections that do not deny the buffers, alignment errors first.
        ...['GetVpRegisters, the next page no access \\(0x0\\), the buffers\' pages RWX', 'GetVpRegisters, input page R \\(0x1\\), output page RW \\(0x3\\)']
          .flatMap((what) => [noEntry(what), line(`${vp} ${what}: ${regs}; every other GPR as before`)]),
        ...['GetVpRegisters, input GPA misaligned \\(\\+4\\) on a no-access page', 'GetVpRegisters, input list crossing from a no-access page into the next',
          'GetVpRegisters, output GPA misaligned \\(\\+4\\) on a read-only page']
          .flatMap((what) => [noEntry(what), line(`${vp} ${what}: INVALID_ALIGNMENT, 0 reps \\(0x4\\), output untouched; every other GPR as before`)]),
        line(`${vp}: 11 intercepts in all, the 11 planned; every ModifyVtlProtectionMask from VTL1 => SUCCESS, 1 rep`),
      ]) assert.match(o.out, re);
    }
  });
}

test('guest vsm-hcbuffer without hv-vsm skips everything (exit 38)', { skip }, () => {
  const o = run(1, [], ['hv-vpindex', 'hv-synic', 'hv-vapic']);
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
});
