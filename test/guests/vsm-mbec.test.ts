/**
 * Guest vsm-mbec: mode-based execute control from inside the guest, on the
 * guest VSM library (guests/lib/vsm.h), booted by the real runner
 * (bin/vsmvisor.js); guests/tests/vsm-mbec.c describes every check
 * (tlfs-vsm-facts §2.12, §3.7, §3.8, §4.4, §4.5).
 * - Enabling: VsmCapabilities.MbecVtlMask = VTL1..MaximumVtl (never VTL0);
 *   EnablePartitionVtl(VTL1) with shadow stack, HVPT or a reserved flag is
 *   INVALID_PARAMETER and changes nothing; with EnableMbec it succeeds and
 *   VsmPartitionStatus.MbecEnabledVtlSet = {1}.
 * - Masks: R+UX (0x9) and R+W+UX (0xB) accepted; KX without UX (0x5, 0x7)
 *   and UX without R refused (INVALID_REGISTER_VALUE, 0 reps).
 * - Registers on each VP: SecureConfigVtl0.MbecEnabled set by VTL1 reads
 *   back, TlbLocked beside it goes with the VtlReturn while MbecEnabled
 *   stays; VsmVpStatus.ActiveMbecEnabled is 1 read by VTL0 of a VP whose
 *   VTL1 set it, 0 on a VP whose VTL1 has not, and 0 read by VTL1.
 * - Execution on each VP, one GPA under a U/S=1 alias, a U/S=0 one and
 *   one whose PTE alone has U/S=1: with MbecEnabled and CR4.SMEP, CPL3
 *   fetches from the user alias need UX, every other fetch KX (Execute
 *   intercepts compared byte for byte, CPL 3 in the header for the CPL3
 *   ones; VTL1 answers with the least mask that lets the fetch through,
 *   and the code then runs once); SMEP's
 *   #PF comes before any VTL check; data accesses are unaffected (reads
 *   pass, a write is a Write intercept); with SMEP off, or MbecEnabled 0,
 *   KX governs every fetch at once (the mask unchanged since the same
 *   fetch last ran), and KX != UX masks are still accepted.
 *
 * Each run asserts the exact test count, no failures and no skips, plus
 * lines that show each behaviour.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRun, line, runGuest, skipUnlessBuilt } from './vsm-guest-run.js';

const skip = skipUnlessBuilt('vsm-mbec');
const run = (smp: number, extra: readonly string[] = [], hv?: readonly string[]) => runGuest('vsm-mbec', smp, { extra, hv });
const HEX = '0x[0-9a-f]+';
/** 18 partition-wide checks (enabling 9, masks 9); per VP 5 register checks and 29 execution checks. */
const count = (smp: number) => 18 + 34 * smp;

for (const smp of [1, 2]) {
  test(`guest vsm-mbec (smp ${smp}): EnableMbec, KX != UX masks, MbecEnabled / ActiveMbecEnabled per VP, UX vs KX by CPL, U/S and SMEP`, { skip }, () => {
    const o = run(smp);
    checkRun(o, count(smp));
    for (const re of [
      line('VTL0: VsmPartitionStatus 0x10001 before enabling: EnabledVtlSet \\{0\\}, MaximumVtl 1, MbecEnabledVtlSet \\{\\}'),
      line(`VTL0: VsmCapabilities ${HEX} \\(0x0\\): MbecVtlMask 0x2 = VTL1..VTL1, not VTL0`),
      ...[0x2, 0x4, 0x3, 0x9].map((f) =>
        line(`VTL0: EnablePartitionVtl\\(VTL1, flags 0x${f.toString(16)}\\) => INVALID_PARAMETER \\(0x5\\); VsmPartitionStatus still 0x10001`)),
      line('VTL0: EnablePartitionVtl\\(VTL1, EnableMbec\\) => SUCCESS \\(0x0\\); VsmPartitionStatus 0x210003: EnabledVtlSet \\{0, 1\\}, MbecEnabledVtlSet \\{1\\}'),
      line('VTL1 \\(EnableMbec\\): ModifyVtlProtectionMask 0x9 \\(R\\+UX\\) => SUCCESS, 1 rep \\(0x100000000\\)'),
      line('VTL1 \\(EnableMbec\\): ModifyVtlProtectionMask 0xb \\(R\\+W\\+UX\\) => SUCCESS, 1 rep \\(0x100000000\\)'),
      line('VTL1 \\(EnableMbec\\): ModifyVtlProtectionMask 0x5 \\(R\\+KX: KX without UX\\) => INVALID_REGISTER_VALUE, 0 reps \\(0x50\\)'),
      line('VTL1 \\(EnableMbec\\): ModifyVtlProtectionMask 0x7 \\(R\\+W\\+KX: KX without UX\\) => INVALID_REGISTER_VALUE, 0 reps \\(0x50\\)'),
      line('VTL1 \\(EnableMbec\\): ModifyVtlProtectionMask 0x8 \\(UX without R\\) => INVALID_REGISTER_VALUE, 0 reps \\(0x50\\)'),
    ]) assert.match(o.out, re);
    for (let n = 0; n < smp; n++) {
      for (const re of [
        line(`VP${n} VTL0: VsmVpStatus 0x30000: ActiveMbecEnabled 0 before VTL1 set MbecEnabled on this VP \\(set on ${n} other VPs?\\)`),
        line(`VP${n} VTL1: VsmVpStatus 0x30001: ActiveMbecEnabled 0 \\(MBEC is not enabled for VTL1\\); SecureConfigVtl0 0x0`),
        line(`VP${n} VTL1: SecureConfigVtl0 MbecEnabled => SUCCESS \\(0x0\\), reads 0x1`),
        line(`VP${n} VTL0: VsmVpStatus 0x30010: ActiveMbecEnabled 1 once VTL1 set MbecEnabled for VTL0 on this VP`),
        line(`VP${n} VTL1: SecureConfigVtl0 MbecEnabled \\| TlbLocked => SUCCESS \\(0x0\\), reads 0x3 in that entry \\(VsmVpStatus 0x30001\\), 0x1 in the next \\(TlbLocked went with the VtlReturn, MbecEnabled stayed\\); VTL0's VsmVpStatus 0x30010`),
        line(`VP${n} CPL3 call into the U/S=1 alias \\(UX\\), mask 0x9: ran \\(RAX ${HEX}, read from P, counter 1, other GPRs unchanged\\), no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL0 call into the U/S=0 alias \\(KX = 0\\), mask 0x9: 1 intercept \\(VTL entry with reason 3, 1 SINT0 message\\); with VTL1's mask 0xd it ran once \\(RAX ${HEX}, counter 1, other GPRs unchanged\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL0 call into the U/S=0 alias \\(KX = 0\\), mask 0x9: the message is the GpaIntercept expected, byte for byte \\(Execute, CPL 0, GVA 0x50000${n}1000, GPA ${HEX}000, info 0xb, 0 instruction bytes\\)`),
        line(`VP${n} CPL0 call into the U/S=0 alias \\(KX\\), mask 0xd: ran \\(RAX ${HEX}, read from P, counter 1, other GPRs unchanged\\), no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL3 call into the U/S=1 alias \\(UX\\), mask 0xd: ran \\(RAX ${HEX}, read from P, counter 1, other GPRs unchanged\\), no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        ...[[1, 9], [3, 0xb]].flatMap(([mask, lift]) => [
          line(`VP${n} CPL3 call into the U/S=1 alias \\(UX = 0\\), mask 0x${mask.toString(16)}: 1 intercept \\(VTL entry with reason 3, 1 SINT0 message\\); with VTL1's mask 0x${lift.toString(16)} it ran once \\(RAX ${HEX}, counter 1, other GPRs unchanged\\) \\(mask => 0x100000000\\)`),
          line(`VP${n} CPL3 call into the U/S=1 alias \\(UX = 0\\), mask 0x${mask.toString(16)}: the message is the GpaIntercept expected, byte for byte \\(Execute, CPL 3, GVA 0x50000${n}0000, GPA ${HEX}000, info 0xb, 0 instruction bytes\\)`),
        ]),
        line(`VP${n} CPL0 call into the U/S=0 alias \\(KX = 0\\), mask 0xb: 1 intercept \\(VTL entry with reason 3, 1 SINT0 message\\); with VTL1's mask 0xf it ran once \\(RAX ${HEX}, counter 1, other GPRs unchanged\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL0 call into the alias with U/S=1 in its PTE, 0 in its PDE \\(not a user address: KX = 0, no SMEP #PF\\), mask 0x9: 1 intercept \\(VTL entry with reason 3, 1 SINT0 message\\); with VTL1's mask 0xd it ran once \\(RAX ${HEX}, counter 1, other GPRs unchanged\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL0 call into the alias with U/S=1 in its PTE, 0 in its PDE \\(not a user address: KX = 0, no SMEP #PF\\), mask 0x9: the message is the GpaIntercept expected, byte for byte \\(Execute, CPL 0, GVA 0x5040${2 * n}00000, GPA ${HEX}000, info 0xb, 0 instruction bytes\\)`),
        line(`VP${n} SMEP: CPL0 call into the U/S=1 alias, mask 0x9: #PF \\(vector 14, error 0x11, CR2 0x50000${n}0000\\), no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL0 reads of a 0x9 page through both aliases: (${HEX}), \\1, no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} CPL0 write to a 0x9 page: 1 intercept, 1 message; with VTL1's mask 0xb the write completed once \\(${HEX}\\), GPRs unchanged`),
        line(`VP${n} CPL0 write to a 0x9 page: the message is the GpaIntercept expected, byte for byte \\(Write, GVA 0x50000${n}1800, GPA ${HEX}800\\)`),
        line(`VP${n} CPL3 call into the U/S=1 alias \\(UX\\), again, mask 0x9: ran \\(RAX ${HEX}, read from P, counter 1, other GPRs unchanged\\), no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} SMEP off: CPL3 call into the U/S=1 alias \\(KX = 0\\), mask 0x9: 1 intercept \\(VTL entry with reason 3, 1 SINT0 message\\); with VTL1's mask 0xd it ran once \\(RAX ${HEX}, counter 1, other GPRs unchanged\\) \\(mask kept\\)`),
        line(`VP${n} SMEP off: CPL3 call into the U/S=1 alias \\(KX = 0\\), mask 0x9: the message is the GpaIntercept expected, byte for byte \\(Execute, CPL 3, GVA 0x50000${n}0000, GPA ${HEX}000, info 0xb, 0 instruction bytes\\)`),
        line(`VP${n} SMEP off: CPL0 call into the U/S=1 alias \\(KX = 0\\), mask 0x9: the message is the GpaIntercept expected, byte for byte \\(Execute, CPL 0, GVA 0x50000${n}0000, GPA ${HEX}000, info 0xb, 0 instruction bytes\\)`),
        line(`VP${n} SMEP on again: CPL3 call into the U/S=1 alias \\(UX\\), mask 0x9: ran \\(RAX ${HEX}, read from P, counter 1, other GPRs unchanged\\), no intercept \\(0\\) \\(mask => 0x100000000\\)`),
        line(`VP${n} VTL1: SecureConfigVtl0 0 => SUCCESS \\(0x0\\), reads 0x0; VTL0's VsmVpStatus 0x30000: ActiveMbecEnabled 0`),
        line(`VP${n} MbecEnabled 0: ModifyVtlProtectionMask 0xb \\(R\\+W\\+UX\\) still => SUCCESS \\(0x100000000\\)`),
        line(`VP${n} MbecEnabled 0: CPL3 call into the U/S=1 alias \\(KX = 0\\), mask 0x9: 1 intercept \\(VTL entry with reason 3, 1 SINT0 message\\); with VTL1's mask 0xd it ran once \\(RAX ${HEX}, counter 1, other GPRs unchanged\\) \\(mask kept\\)`),
        line(`VP${n} MbecEnabled 0: ModifyVtlProtectionMask 0x9 \\(R\\+UX\\) still => SUCCESS \\(0x100000000\\)`),
        line(`VP${n}: 9 intercepts in all, the 9 planned; P RWX again \\(0x100000000\\), VTL0 back on the boot tables`),
      ]) assert.match(o.out, re);
    }
  });
}

test('guest vsm-mbec (smp 1, --max-vtl 2): MbecVtlMask covers VTL1 and VTL2, not VTL0', { skip }, () => {
  const o = run(1, ['--max-vtl', '2']);
  checkRun(o, count(1));
  assert.match(o.out, line(`VTL0: VsmCapabilities ${HEX} \\(0x0\\): MbecVtlMask 0x6 = VTL1..VTL2, not VTL0`));
  assert.match(o.out, line('VTL0: EnablePartitionVtl\\(VTL1, EnableMbec\\) => SUCCESS \\(0x0\\); VsmPartitionStatus 0x220003: EnabledVtlSet \\{0, 1\\}, MbecEnabledVtlSet \\{1\\}'));
});

test('guest vsm-mbec without hv-vsm skips everything (exit 38)', { skip }, () => {
  const o = run(1, [], ['hv-vpindex', 'hv-synic', 'hv-vapic']);
  assert.equal(o.status, 38, o.err);
  assert.deepEqual(o.summary, { tests: 1, failures: 0, skipped: 1 });
});
