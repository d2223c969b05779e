// VsmPartitionConfig.InterceptUnrecoverableException (src/vmm/vsm/unrecoverable-exception.ts):
// a VTL0 triple fault becomes an HvMessageTypeUnrecoverableException (header only) for VTL1
// and an entry with reason 3 (tlfs-vsm-facts §3.7 bit 11, §3.10, §4.3, §4.4, §4.6); VTL0 runs
// again from the state VTL1 leaves it in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import { HvMessageType, HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { interceptRig, VTL1_ASSIST, VTL1_SIM } from './vsm-hcall-rig.js';

const MSG = VTL1_SIM, PL = VTL1_SIM + 16;
const INTERCEPT_UNRECOVERABLE_EXCEPTION = 1n << 11n;

/** VTL0 loads an empty IDT and executes UD2: #UD, #GP and #DF cannot be delivered, a triple fault. */
const rig = () => interceptRig(`
      lidt [rip + empty]
    bad: ud2
    ok: hlt
    empty: .word 0
      .quad 0`);

test('§3.7, §4.6: with InterceptUnrecoverableException a VTL0 triple fault is a header-only message for VTL1 and an entry with reason 3', () => {
  const { r, v0, v1, l0 } = rig();
  const idt = v0.getSregs().idt;
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, INTERCEPT_UNRECOVERABLE_EXCEPTION), HvStatus.SUCCESS);
  assert.equal(r.drive(), 1, 'VTL1 entered instead of the machine stopping');
  const mem = r.m.vm.mem;
  assert.equal(mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.Intercept);
  assert.equal(mem.read32(MSG), HvMessageType.UnrecoverableException);
  assert.equal(mem.read8(MSG + 4), 0x28, 'payload: the 40-byte header only');
  assert.equal(mem.read64(MSG + 8), 1n, 'origination: the partition');
  assert.deepEqual([mem.read32(PL), mem.read8(PL + 4), mem.read8(PL + 5)], [0, 0, 0], 'VP 0, no instruction length, CR8 0, access type read');
  assert.equal(mem.read64(PL + 0x18), BigInt(l0.bad), 'RIP: the UD2 whose #UD could not be delivered');
  assert.equal(mem.read16(PL + 8 + 12), 0x08, 'CS selector');
  // VTL1 repairs VTL0 (its IDT back, RIP past the UD2) and returns: VTL0 runs on.
  v0.setSregs({ ...v0.getSregs(), idt });
  v0.setRegs({ ...v0.getRegs(), rip: BigInt(l0.ok) });
  mem.write32(MSG, 0);
  v1.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(), 0, 'VTL0 halted at ok');
  assert.equal(v0.getRegs().rip, BigInt(l0.ok + 1));
});

test('§3.10: returning without a repair runs the faulting instruction again: another triple fault, another message', () => {
  const { r, v1 } = rig();
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, INTERCEPT_UNRECOVERABLE_EXCEPTION), HvStatus.SUCCESS);
  assert.equal(r.drive(), 1);
  r.m.vm.mem.write32(MSG, 0);
  v1.setMpState(KVM_MP_STATE_RUNNABLE);
  assert.equal(r.drive(), 1, 'VTL1 entered again');
  assert.equal(r.m.vm.mem.read32(MSG), HvMessageType.UnrecoverableException);
});

test('without the bit a triple fault stops the VP as before (the machine reports a shutdown)', () => {
  const { r } = rig();
  assert.equal(r.p.writeVsmRegister(N.VsmPartitionConfig, r.vp(), 1, 1n << 10n), HvStatus.INVALID_REGISTER_VALUE, 'bit 10 (CPUID) is not offered');
  assert.throws(() => r.drive(), /shutdown exit in VTL0/);
  assert.equal(r.p.readVsmRegister(N.VsmPartitionConfig, r.vp(), 1, true), 0n);
});
