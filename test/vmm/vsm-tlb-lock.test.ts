// TLB locks (tlfs-vsm-facts §3.9) in the VMM (src/vmm/vsm/partition.ts):
// a higher VTL locks a VP's lower-VTL TLB through SecureConfigVtlN.TlbLocked
// or a memory intercept with a valid GVA; the VMM sets kvm's TLB-flush
// inhibit on that (VP, VTL) Vcpu (kvm-api-facts §1), so a lower-VTL flush
// that targets it suspends the flusher, which really did not flush, until
// the lock goes (clearing the bit, or VtlReturn). WaitForTlbLock holds a VP
// back from its lower VTL while other VPs hold locks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HV_PARTITION_ID_SELF, HvCall, HvMsr, HvRegisterName as N, HvStatus, HvTranslateGvaFlags, HvTranslateGvaResult, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { enableProtectionConfig } from '../../src/vmm/vsm/vsm-registers.js';
import { enterHigherVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { CALL_SITE, INPUT, P, U, W } from '../kvm/hypercall-machine.js';
import { contextFrom, VsmRig, VSM_FLAGS, VTL1_CODE, VTL1_STACK_TOP } from './vsm-hcall-rig.js';

const VA = 0x600000, PA = 0x300000, VTL0_CODE = 0x170000, VTL1_SIM = 0x160000;
const TLB_LOCKED = 2n; // SecureConfigVtlN bit 1 (§3.7)
const FLUSH = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace, fast: true });
const ALL_SPACES = 2n;
const VTL_RETURN = `xor ecx, ecx\n mov rax, rcx\n mov ecx, ${HvCall.VtlReturn}\n vmcall`;

/** VPs 0 and 1; VTL1 (and VTL2 with maximumVtl 2) enabled on each, running `vtl1` code; every VP in VTL0 at a HLT with VA cached. */
function rig(o: { maximumVtl?: number; vtl1?: string } = {}): VsmRig {
  const r = new VsmRig({ ids: [0, 1], maximumVtl: o.maximumVtl, flags: [...VSM_FLAGS, 'hv-tlbflush'] });
  r.m.map(VA, PA, P | W | U);
  const top = o.maximumVtl ?? 1;
  for (let vtl = 1; vtl <= top; vtl++) r.enablePartitionVtl(vtl);
  r.asm(o.vtl1 ?? `${VTL_RETURN}\n hlt`, VTL1_CODE);
  r.asm(`mov rax, qword ptr [${VA}]\n hlt`, VTL0_CODE);
  for (const k of [0, 1]) {
    const v0 = r.vcpu(k);
    r.m.enter64(v0, VTL0_CODE);
    assert.equal(r.m.runToExit(v0).reason, 'hlt');
    assert.ok(cached(v0));
    for (let vtl = 1; vtl <= top; vtl++) r.enableVpVtl(k, vtl, contextFrom(v0, { rip: VTL1_CODE, rsp: VTL1_STACK_TOP - 0x1000 * k }));
  }
  return r;
}

const cached = (v: Vcpu) => v.cpu.mmu.cachedTranslation(VA, 0) !== -1;
const secureConfig = (r: VsmRig, vp: number, holder: number, lower = 0) => r.p.readVsmRegister(N.VsmVpSecureConfigVtl0 + lower, r.vp(vp), holder, true);
const setSecureConfig = (r: VsmRig, vp: number, holder: number, value: bigint, lower = 0) =>
  r.p.writeVsmRegister(N.VsmVpSecureConfigVtl0 + lower, r.vp(vp), holder, value);
/** VP 0 (in VTL0) flushes every address space of the VPs in `mask`; returns the run's outcome. */
const flushFrom0 = (r: VsmRig, mask: bigint) => r.m.hypercall(r.vcpu(0), FLUSH, 0n, ALL_SPACES, [mask, 0n]);
const trace = (r: VsmRig, ...names: string[]) => r.m.vm.trace!.events.filter((e) => names.includes(e.name)).map((e) => `${e.name} ${e.args.vcpu_id ?? e.args.vtl}`);

test('§3.9: TlbLocked on VP 1 suspends VTL0 flushes that target VP 1 until VTL1 returns; the flusher really did not flush', () => {
  const r = rig();
  enterHigherVtl(r.p, r.vp(1), 1, HvVtlEntryReason.VtlCall);
  assert.equal(setSecureConfig(r, 1, 1, TLB_LOCKED), HvStatus.SUCCESS);
  assert.equal(secureConfig(r, 1, 1), TLB_LOCKED);
  assert.equal(r.vcpu(1).tlbFlush.inhibited, true, 'kvm TLB-flush inhibit on VP 1\'s VTL0 Vcpu');

  // A flush of VP 0 alone does not involve the lock.
  assert.equal(flushFrom0(r, 0b01n).status, HvStatus.SUCCESS);
  const s = flushFrom0(r, 0b11n);
  assert.deepEqual([s.exit.reason, s.rip, s.rax], ['hlt', BigInt(CALL_SITE), 0xdeadn], 'suspended on the VMCALL, no status');
  assert.equal(r.vcpu(0).runnable, false);
  assert.equal(cached(r.vcpu(1)), true, 'VP 1\'s VTL0 TLB still holds the translation');
  assert.equal(r.m.runToExit(r.vcpu(0)).reason, 'hlt', 'still suspended when run again');

  // VTL1 on VP 1 returns: the lock goes, the flusher completes and VP 1's TLB is flushed.
  assert.equal(r.drive(1), 0);
  assert.equal(secureConfig(r, 1, 1), 0n, 'TlbLocked reads 0 after the return');
  assert.equal(r.vcpu(1).tlbFlush.inhibited, false);
  assert.equal(r.vcpu(0).runnable, true);
  const done = r.m.runToExit(r.vcpu(0));
  assert.equal(done.reason, 'hlt');
  assert.equal(r.vcpu(0).getRegs().rax & 0xffffn, BigInt(HvStatus.SUCCESS));
  assert.equal(cached(r.vcpu(1)), false, 'flushed now');
  assert.deepEqual(trace(r, 'vsm_tlb_lock', 'vsm_tlb_unlock'), ['vsm_tlb_lock 0', 'vsm_tlb_unlock 0']);
});

test('§3.9: clearing TlbLocked releases the lock; a VP holds its own lock without waiting on it', () => {
  const r = rig();
  enterHigherVtl(r.p, r.vp(1), 1, HvVtlEntryReason.VtlCall);
  assert.equal(setSecureConfig(r, 1, 1, TLB_LOCKED), HvStatus.SUCCESS);
  assert.equal(flushFrom0(r, 0b10n).exit.reason, 'hlt');
  assert.equal(r.vcpu(0).runnable, false);
  assert.equal(setSecureConfig(r, 1, 1, 0n), HvStatus.SUCCESS);
  assert.equal(r.vcpu(0).runnable, true);
  assert.equal(r.m.runToExit(r.vcpu(0)).reason, 'hlt');
  assert.equal(r.vcpu(0).getRegs().rax & 0xffffn, BigInt(HvStatus.SUCCESS));
  // VP 0's own VTL0 TLB locked by its VTL1 does not hold up a flush VP 1 (VTL0) makes of VP 1 only.
  assert.equal(setSecureConfig(r, 0, 1, TLB_LOCKED), HvStatus.SUCCESS);
  assert.equal(r.vcpu(0).tlbFlush.inhibited, true);
  assert.equal(setSecureConfig(r, 0, 1, TLB_LOCKED | 1n), HvStatus.INVALID_REGISTER_VALUE, 'MbecEnabled: refused, nothing changed');
  assert.equal(r.vcpu(0).tlbFlush.inhibited, true);
});

test('§3.9: with VTL2 and VTL1 both locking VTL0 on VP 1, the flusher waits for both to release', () => {
  const r = rig({ maximumVtl: 2, vtl1: `hlt\n ${VTL_RETURN}\n hlt` });
  const vp1 = r.vp(1);
  r.m.jump(r.vcpu(1, 2), VTL1_CODE + 1); // VTL2 returns at once; VTL1 halts first
  enterHigherVtl(r.p, vp1, 1, HvVtlEntryReason.VtlCall);
  assert.equal(setSecureConfig(r, 1, 1, TLB_LOCKED), HvStatus.SUCCESS);
  enterHigherVtl(r.p, vp1, 2, HvVtlEntryReason.VtlCall);
  assert.equal(setSecureConfig(r, 1, 2, TLB_LOCKED), HvStatus.SUCCESS);
  assert.equal(setSecureConfig(r, 1, 2, TLB_LOCKED, 1), HvStatus.SUCCESS, 'VTL2 also locks VTL1');
  assert.equal(r.vcpu(1, 1).tlbFlush.inhibited, true);
  assert.equal(flushFrom0(r, 0b10n).exit.reason, 'hlt');
  // VTL2 returns to VTL1: its locks go, VTL1's stays.
  assert.equal(r.drive(1), 1);
  assert.equal(r.vcpu(1, 1).tlbFlush.inhibited, false);
  assert.deepEqual([secureConfig(r, 1, 2), secureConfig(r, 1, 2, 1), secureConfig(r, 1, 1)], [0n, 0n, TLB_LOCKED]);
  assert.equal(r.vcpu(0).runnable, false, 'VTL1 still holds VTL0\'s lock');
  r.vcpu(1, 1).setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(1), 0);
  assert.equal(r.vcpu(0).runnable, true);
});

test('§3.9, §4.5: a memory intercept with a valid GVA reports GvaGpaValid and TlbLocked and holds the lock until VtlReturn', () => {
  const r = rig({ vtl1: `hlt\n ${VTL_RETURN}\n hlt` });
  const p = r.p, vp1 = r.vp(1), v1 = r.vcpu(1, 1);
  assert.equal(p.writeVsmRegister(N.VsmPartitionConfig, vp1, 1, enableProtectionConfig(0xf)), HvStatus.SUCCESS);
  p.protections.protect(1, PA / 4096, PA / 4096 + 1, 0x1); // read-only for VTL0
  assert.ok(v1.wrmsr(HvMsr.SIMP, VTL1_SIM | 1, 0));
  assert.ok(v1.wrmsr(HvMsr.SCONTROL, 1, 0));
  r.asm(`mov byte ptr [${VA}], 1\n hlt`, VTL0_CODE + 0x100);
  r.m.jump(r.vcpu(1), VTL0_CODE + 0x100);
  assert.equal(r.drive(1), 1, 'VTL1 entered for the intercept');
  assert.equal(r.m.vm.mem.read8(VTL1_SIM + 16 + 0x2d), 0x0b, 'MemoryAccessInfo: GvaValid | GvaGpaValid | TlbLocked');
  assert.equal(r.vcpu(1).tlbFlush.inhibited, true);
  assert.equal(flushFrom0(r, 0b10n).exit.reason, 'hlt');
  assert.equal(r.vcpu(0).runnable, false);
  p.protections.protect(1, PA / 4096, PA / 4096 + 1, 0x3);
  v1.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(1), 0, 'VTL1 returned; VTL0 re-ran the write');
  assert.equal(r.m.vm.mem.read8(PA), 1);
  assert.equal(r.vcpu(0).runnable, true);
});

test('§3.9: WaitForTlbLock holds a VP back from its VTL0 until the locks other VPs held at the write are released', () => {
  const r = rig();
  const p = r.p, vp0 = r.vp(0), vp1 = r.vp(1);
  enterHigherVtl(p, vp1, 1, HvVtlEntryReason.VtlCall);
  assert.equal(setSecureConfig(r, 1, 1, TLB_LOCKED), HvStatus.SUCCESS);
  enterHigherVtl(p, vp0, 1, HvVtlEntryReason.VtlCall);
  assert.equal(p.writeVsmRegister(N.VsmVpWaitForTlbLock, vp0, 0, 2n), HvStatus.INVALID_REGISTER_VALUE, 'bits 63:1 are reserved');
  assert.equal(p.writeVsmRegister(N.VsmVpWaitForTlbLock, vp0, 0, 1n), HvStatus.SUCCESS);
  assert.equal(p.waitsForTlbLock(vp0), false, 'VP 0 is in VTL1: the wait applies to resuming VTL0');
  assert.equal(r.drive(0), 0, 'VP 0 returned to VTL0');
  assert.equal(p.waitsForTlbLock(vp0), true, 'VP 1 still holds its VTL0 lock');
  assert.equal(setSecureConfig(r, 1, 1, 0n), HvStatus.SUCCESS);
  assert.equal(p.waitsForTlbLock(vp0), false);
  // A lock taken after the write is not waited for.
  enterHigherVtl(p, vp0, 1, HvVtlEntryReason.VtlCall);
  assert.equal(p.writeVsmRegister(N.VsmVpWaitForTlbLock, vp0, 0, 1n), HvStatus.SUCCESS);
  assert.equal(setSecureConfig(r, 1, 1, TLB_LOCKED), HvStatus.SUCCESS);
  r.vcpu(0, 1).setMpState(KVM_MP_STATE_RUNNABLE);
  r.m.jump(r.vcpu(0, 1), VTL1_CODE);
  assert.equal(r.drive(0), 0);
  assert.equal(p.waitsForTlbLock(vp0), false);
});

test('§3.9, §5.1: TranslateVirtualAddress with TlbFlushInhibit locks the target VTL\'s TLB until VtlReturn; its result is the page table\'s', () => {
  const r = rig();
  const vp1 = r.vp(1), v1 = r.vcpu(1, 1), mem = r.m.vm.mem;
  enterHigherVtl(r.p, vp1, 1, HvVtlEntryReason.VtlCall);
  const flags = BigInt(HvTranslateGvaFlags.ValidateRead | HvTranslateGvaFlags.TlbFlushInhibit) | (0x10n << BigInt(HvTranslateGvaFlags.InputVtlShift));
  r.m.writeQwords(INPUT, [HV_PARTITION_ID_SELF, 0xffff_fffen /* VP self */, flags, BigInt(VA / 4096)]);
  const res = r.call(v1, makeHypercallControl({ code: HvCall.TranslateVirtualAddress }), BigInt(INPUT), BigInt(INPUT + 0x100));
  assert.equal(res.status, HvStatus.SUCCESS);
  assert.equal(mem.read64(INPUT + 0x100) & 0xffff_ffffn, BigInt(HvTranslateGvaResult.Success));
  assert.equal(mem.read64(INPUT + 0x108), BigInt(PA / 4096), 'GPA page');
  assert.equal(r.vcpu(1).tlbFlush.inhibited, true);
  assert.equal(flushFrom0(r, 0b10n).exit.reason, 'hlt');
  assert.equal(r.vcpu(0).runnable, false);
  r.m.jump(v1, VTL1_CODE);
  assert.equal(r.drive(1), 0);
  assert.equal(r.vcpu(0).runnable, true);
});
