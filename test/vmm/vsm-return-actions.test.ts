// VTL return actions (tlfs-vsm-facts §3.5; VsmCapabilities.ReturnActionAvailable):
// the signal-event actions a higher VTL queues at offset 0x170 of its VP
// assist page are carried out at its VtlReturn, then the area is zeroed
// (src/vmm/vsm/vtl-switch.ts runReturnActions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvMsr, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { enterHigherVtl, returnToLowerVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { VsmRig, VTL1_ASSIST } from './vsm-hcall-rig.js';

const ACTIONS = VTL1_ASSIST + 0x170, SIEF = 0x160000, SIMP = 0x161000;

/** VP 0 in VTL1 (assist page at VTL1_ASSIST); VP 1's VTL0 SynIC on with SIEF at SIEF and SINT2 on vector 0x60. */
function rig() {
  const r = new VsmRig({ ids: [0, 1] });
  r.enablePartitionVtl(1);
  const vp = r.vp(0), v1 = r.enableVpVtl();
  assert.ok(v1.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL1_ASSIST | 1, 0));
  const w = r.vcpu(1);
  for (const [msr, value] of [[HvMsr.SCONTROL, 1], [HvMsr.SIEFP, SIEF | 1], [HvMsr.SIMP, SIMP | 1], [HvMsr.SINT0 + 2, 0x60]] as const) assert.ok(w.wrmsr(msr, value, 0));
  enterHigherVtl(r.p, vp, 1, HvVtlEntryReason.VtlCall, true);
  return { r, vp, mem: r.m.vm.mem };
}

/** A signal-event action (type 1) at `at`: target VP u32 @8, VTL u8 @12, SINT u8 @13, flag u16 @14. */
function signal(mem: VsmRig['m']['vm']['mem'], at: number, vp: number, vtl: number, sint: number, flag: number): void {
  mem.write64(at, 1n);
  mem.write32(at + 8, vp); mem.write8(at + 12, vtl); mem.write8(at + 13, sint); mem.write16(at + 14, flag);
}

test('§3.5: signal-event actions run at VtlReturn, in order, then the area is zeroed', () => {
  const { r, vp, mem } = rig();
  signal(mem, ACTIONS, 1, 0, 2, 5);
  signal(mem, ACTIONS + 16, 1, 0, 2, 9);
  mem.write64(ACTIONS + 32, 0n);
  returnToLowerVtl(r.p, vp, true);
  assert.equal(mem.read16(SIEF + 2 * 256), (1 << 5) | (1 << 9), 'flags 5 and 9 of SINT2 in VP 1\'s SIEF page');
  assert.equal(r.vcpu(1).apic.pendingVector(), 0x60, 'SINT2\'s vector raised');
  assert.ok(mem.read(ACTIONS, 256).every((b) => b === 0), 'the area is zeroed');
  const events = r.p.vms[1]!.trace!.named('vsm_return_action').map((e) => [e.args.vp, e.args.sint, e.args.flag, e.args.status]);
  assert.deepEqual(events, [[1, 2, 5, 0], [1, 2, 9, 0]]);
});

test('§3.5: an unknown action type stops the list; targets that do not exist are skipped; an empty list is left alone', () => {
  const { r, vp, mem } = rig();
  signal(mem, ACTIONS, 7, 0, 2, 1);       // VP 7 does not exist: skipped
  signal(mem, ACTIONS + 16, 1, 1, 2, 2);  // VTL1 is not enabled on VP 1: skipped
  signal(mem, ACTIONS + 32, 1, 0, 2, 3);
  mem.write64(ACTIONS + 48, 9n);          // unknown type: stops here
  signal(mem, ACTIONS + 56, 1, 0, 2, 4);
  returnToLowerVtl(r.p, vp, true);
  assert.equal(mem.read16(SIEF + 2 * 256), 1 << 3, 'only flag 3');
  assert.ok(mem.read(ACTIONS, 256).every((b) => b === 0));
  // An area that starts with the end marker holds nothing to do: it is not touched.
  enterHigherVtl(r.p, vp, 1, HvVtlEntryReason.VtlCall, true);
  mem.write64(ACTIONS, 0n); mem.write64(ACTIONS + 8, 0xabcdn);
  returnToLowerVtl(r.p, vp, true);
  assert.equal(mem.read64(ACTIONS + 8), 0xabcdn);
});
