// VINA (tlfs-vsm-facts §3.7 HvRegisterVsmVina, §3.10): while a VP runs in
// VTL1 with VINA on, an interrupt ready for VTL0 raises VTL1's VINA vector
// and sets VinaAsserted in VTL1's control area, once, until VTL1 (or
// AutoReset at its VtlReturn) clears the bit (src/vmm/vsm/vtl-switch.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REG_ISR0, REG_SPIV } from '../../src/kvm/lapic-regs.js';
import { HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { enterHigherVtl, returnToLowerVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { machineWithVtl1 } from './vsm-hcall-rig.js';

const VINA_STATUS = 0x202000 + 0x0c; // VTL1's assist page, VTL control area VinaStatus (§3.3)
const ENABLED = 0x100n, AUTO_RESET = 0x200n, AUTO_EOI = 0x400n;

/** VP 0 in VTL1 (spinning with IF = 0), VTL0 parked with IF = `vtl0If`; VINA set to `vina`. */
function inVtl1(vina: bigint, vtl0If = true) {
  const r = machineWithVtl1('spin: jmp spin', 'spin1: jmp spin1', { trace: true });
  const p = r.m.vsm!, vp = p.vps[0]!;
  r.v0.apic.mmioWrite(REG_SPIV, 0x1ff);
  r.v1.apic.mmioWrite(REG_SPIV, 0x1ff);
  r.v0.setRegs({ ...r.v0.getRegs(), rflags: vtl0If ? 0x202n : 0x2n });
  assert.equal(p.writeVsmRegister(N.VsmVina, vp, 1, vina), HvStatus.SUCCESS);
  enterHigherVtl(p, vp, 1, HvVtlEntryReason.VtlCall, false);
  const vinas = () => r.m.vm.trace === null ? -1 : r.m.vsm!.vms[1]!.trace!.named('vsm_vina').length;
  return { ...r, p, vp, vinas };
}

test('§3.7: VsmVina reads back bits 10:0; an enabled vector below 16 is refused; RsvdP bits are dropped', () => {
  const { p, vp } = inVtl1(0n);
  assert.equal(p.writeVsmRegister(N.VsmVina, vp, 1, 0x50n | ENABLED | AUTO_RESET | (1n << 40n)), HvStatus.SUCCESS);
  assert.equal(p.readVsmRegister(N.VsmVina, vp, 1, true), 0x350n);
  assert.equal(p.writeVsmRegister(N.VsmVina, vp, 1, 0x05n | ENABLED), HvStatus.INVALID_REGISTER_VALUE);
  assert.equal(p.readVsmRegister(N.VsmVina, vp, 1, true), 0x350n, 'the refused write changed nothing');
  assert.equal(p.writeVsmRegister(N.VsmVina, vp, 1, 0x50n | ENABLED | AUTO_EOI), HvStatus.SUCCESS);
  assert.equal(p.readVsmRegister(N.VsmVina, vp, 1, true), 0x550n);
  assert.equal(p.writeVsmRegister(N.VsmVina, vp, 1, 0x05n), HvStatus.SUCCESS, 'a disabled VINA may hold any vector');
});

test('§3.10: an interrupt for VTL0 while VTL1 runs raises VTL1\'s VINA vector once, until VinaAsserted is cleared', () => {
  const { m, v0, v1, vinas } = inVtl1(0x50n | ENABLED);
  v0.injectInterrupt(0x40);
  assert.equal(m.run().kind, 'budget');
  assert.equal(vinas(), 1);
  assert.equal(m.vm.mem.read8(VINA_STATUS) & 1, 1, 'VinaAsserted');
  assert.equal(v1.apic.pendingVector(), 0x50, 'VTL1 has IF = 0: the VINA vector waits in its APIC');
  assert.equal(v0.apic.pendingVector(), 0x40, 'VTL0\'s interrupt still waits for VTL0');
  // Still asserted: more VTL0 interrupts raise nothing.
  v0.injectInterrupt(0x41);
  assert.equal(m.run().kind, 'budget');
  assert.equal(vinas(), 1);
  // VTL1 clears the bit: the next scheduling raises VINA again.
  m.vm.mem.write8(VINA_STATUS, 0);
  assert.equal(m.run().kind, 'budget');
  assert.equal(vinas(), 2);
});

test('§3.10: no VINA while VTL0 cannot take the interrupt (IF = 0) or VINA is off', () => {
  const off = inVtl1(0x50n);
  off.v0.injectInterrupt(0x40);
  assert.equal(off.m.run().kind, 'budget');
  assert.equal(off.vinas(), 0);
  const masked = inVtl1(0x50n | ENABLED, false);
  masked.v0.injectInterrupt(0x40);
  assert.equal(masked.m.run().kind, 'budget');
  assert.equal(masked.vinas(), 0);
  assert.equal(masked.m.vm.mem.read8(VINA_STATUS) & 1, 0);
});

test('§3.4: AutoReset clears VinaAsserted at VTL1\'s VtlReturn; without it the bit stays', () => {
  for (const [vina, after] of [[0x50n | ENABLED | AUTO_RESET, 0], [0x50n | ENABLED, 1]] as const) {
    const { m, p, vp, v0, vinas } = inVtl1(vina);
    v0.injectInterrupt(0x40);
    m.run();
    assert.equal(vinas(), 1);
    returnToLowerVtl(p, vp, true);
    assert.equal(m.vm.mem.read8(VINA_STATUS) & 1, after);
  }
});

test('§3.7: with AutoEoi the VINA interrupt VTL1 takes is EOI\'d at once (not in service); without, it stays in service until VTL1 EOIs', () => {
  for (const autoEoi of [true, false]) {
    const { m, v0, v1, vinas } = inVtl1(0x50n | ENABLED | (autoEoi ? AUTO_EOI : 0n));
    v1.setRegs({ ...v1.getRegs(), rflags: 0x202n }); // VTL1 takes interrupts: the VINA vector goes to its IDT stub, which halts
    v0.injectInterrupt(0x40);
    m.run();
    assert.equal(vinas(), 1);
    assert.equal(v1.apic.pendingVector(), -1, 'VTL1 took it');
    const isr2 = v1.apic.mmioRead(REG_ISR0 + 0x20); // vectors 0x40-0x5f
    assert.equal((isr2 >>> (0x50 - 0x40)) & 1, autoEoi ? 0 : 1, autoEoi ? 'auto-EOI\'d' : 'in service');
  }
});
