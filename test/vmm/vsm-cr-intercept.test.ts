// Secure intercepts of CR and MSR accesses (src/vmm/vsm/cr-intercept.ts):
// HvX64RegisterCrInterceptControl and its masks (tlfs-vsm-facts §3.7) arm
// kvm's register-access exits on the lower VTLs, and an intercepted access
// becomes a RegisterIntercept or MsrIntercept message (§4.4, §4.6) on the
// higher VTL's SINT0 with a VTL entry of reason 3, the instruction not retired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVM_MP_STATE_RUNNABLE } from '../../src/kvm/mp-state.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HvMessageType, HvRegisterName as N, HvStatus, HvVtlEntryReason } from '../../src/spec/tlfs.js';
import { NO_REGISTER_ACCESS_EXITS } from '../../src/kvm/register-access-exits.js';
import { CR_INTERCEPT_SUPPORTED } from '../../src/vmm/vsm/cr-intercept.js';
import { returnToLowerVtl } from '../../src/vmm/vsm/vtl-switch.js';
import { INTERCEPT_VTL0_CODE as VTL0_CODE, interceptRig, type VsmRig, VTL1_ASSIST, VTL1_CODE, VTL1_SIM } from './vsm-hcall-rig.js';

const MSG = VTL1_SIM, PL = VTL1_SIM + 16;
const LSTAR = 0xc000_0082, EFER = 0xc000_0080, STAR = 0xc000_0081;
const CR0_WP = 1n << 16n, CR4_TSD = 1n << 2n;
const bit = (n: number) => 1n << BigInt(n);

const set = (r: VsmRig, name: number, value: bigint, vtl = 1) => r.p.writeVsmRegister(name, r.vp(), vtl, value);
/** VTL1 consumes the message and runs on from its HLT: the next drive() returns to VTL0. */
function resumeVtl1(r: VsmRig, v1: Vcpu): void { r.m.vm.mem.write32(MSG, 0); v1.setMpState(KVM_MP_STATE_RUNNABLE); }

test('§3.7: the control register takes the bits we intercept and refuses the others; the masks read back; kvm watches the union', () => {
  const { r, v0 } = interceptRig('hlt');
  assert.equal(set(r, N.CrInterceptControl, CR_INTERCEPT_SUPPORTED), HvStatus.SUCCESS);
  for (const b of [24, 28, 29, 63]) {
    assert.equal(set(r, N.CrInterceptControl, bit(b)), HvStatus.INVALID_REGISTER_VALUE, `bit ${b}`);
  }
  assert.equal(r.p.readVsmRegister(N.CrInterceptControl, r.vp(), 1, true), CR_INTERCEPT_SUPPORTED, 'refused writes changed nothing');
  assert.equal(CR_INTERCEPT_SUPPORTED, 0x00ff_ffffn, 'bits 0-23');
  assert.equal(set(r, N.CrInterceptCr0Mask, CR0_WP), HvStatus.SUCCESS);
  assert.equal(set(r, N.CrInterceptCr4Mask, CR4_TSD | (1n << 40n)), HvStatus.SUCCESS);
  assert.equal(set(r, N.CrInterceptIa32MiscEnableMask, 0x1234n), HvStatus.SUCCESS);
  assert.equal(r.p.readVsmRegister(N.CrInterceptCr4Mask, r.vp(), 1, true), CR4_TSD | (1n << 40n), 'read back as written');
  assert.equal(r.p.readVsmRegister(N.CrInterceptIa32MiscEnableMask, r.vp(), 1, true), 0x1234n);
  const w = v0.getRegisterAccessExits();
  assert.deepEqual([w.cr0Mask, w.cr4Mask, w.xcr0], [CR0_WP, CR4_TSD, true], 'kvm watches bits 31:0 (CR4 bits 63:32 are reserved)');
  assert.deepEqual([w.gdtr, w.idtr, w.ldtr, w.tr], [true, true, true, true]);
  assert.deepEqual([...w.msrRead].sort(), [0x1a0, 0x1b, EFER, STAR, LSTAR, 0xc000_0083].sort());
  assert.deepEqual([...w.msrWrite].sort(), [0x1b, 0x174, 0x175, 0x176, EFER, STAR, LSTAR, 0xc000_0083, 0xc000_0084, 0xc000_0103].sort());
  assert.deepEqual(w.msrWriteMasks, [{ msr: 0x1a0, mask: 0x1234n }], 'IA32_MISC_ENABLE writes: only those changing a bit of the mask');
  assert.equal(set(r, N.CrInterceptControl, 0n), HvStatus.SUCCESS);
  assert.deepEqual(v0.getRegisterAccessExits(), NO_REGISTER_ACCESS_EXITS, 'cleared: nothing watched');
});

test('§3.10, §4.4, §4.6: a VTL0 CR0 write that clears WP is a RegisterIntercept on VTL1\'s SINT0; one that changes only TS is not', () => {
  const { r, v0, v1, l0 } = interceptRig(`
      mov rax, cr0
      btr rax, 3
      mov cr0, rax
      btr rax, 16
    wp: mov cr0, rax
      hlt`);
  assert.equal(set(r, N.CrInterceptControl, bit(0)), HvStatus.SUCCESS);
  assert.equal(set(r, N.CrInterceptCr0Mask, CR0_WP), HvStatus.SUCCESS);
  const cr0 = v0.getSregs().cr0;
  const mem = r.m.vm.mem;
  assert.equal(r.drive(), 1, 'VTL1 entered');
  assert.equal(mem.read32(VTL1_ASSIST + 8), HvVtlEntryReason.Intercept);
  assert.equal(v0.getRegs().rip, BigInt(l0.wp), 'VTL0 is still on the MOV to CR0');
  assert.equal(v0.getSregs().cr0, cr0 & ~(1n << 3n), 'the TS-only write ran; WP is still set');
  assert.equal(mem.read32(MSG), HvMessageType.RegisterIntercept);
  assert.equal(mem.read8(MSG + 4), 0x40, 'payload 0x40 bytes');
  assert.equal(mem.read64(MSG + 8), 1n, 'origination: the partition');
  assert.equal(mem.read8(PL + 4), 3, 'instruction length 3 (0f 22 c0), CR8 0');
  assert.equal(mem.read8(PL + 5), 1, 'write');
  assert.equal(mem.read16(PL + 6), 0x04 | ((cr0 & 0x40000n) ? 0x08 : 0) | 0x10, 'CPL 0, CR0.PE, EFER.LMA, VTL 0');
  assert.equal(mem.read64(PL + 0x18), BigInt(l0.wp), 'RIP');
  assert.equal(mem.read64(PL + 0x20), v0.getRegs().rflags);
  assert.deepEqual([mem.read8(PL + 0x28), mem.read32(PL + 0x2c)], [0, N.Cr0], 'not a memory operand; register Cr0');
  assert.deepEqual([mem.read64(PL + 0x30), mem.read64(PL + 0x38)], [cr0 & ~(1n << 3n) & ~CR0_WP, 0n], 'AccessInfo: the value written');
  // VTL1 returns without doing anything: the write is intercepted again.
  resumeVtl1(r, v1);
  assert.equal(r.drive(), 1);
  assert.equal(mem.read32(MSG), HvMessageType.RegisterIntercept, 'a second message');
  // VTL1 denies it by skipping the instruction (VTL0's RIP += InstructionLength).
  v0.setRegs({ ...v0.getRegs(), rip: v0.getRegs().rip + 3n });
  resumeVtl1(r, v1);
  assert.equal(r.drive(), 0);
  assert.equal(v0.getSregs().cr0 & CR0_WP, CR0_WP, 'denied: WP is still set');
});

test('§4.6: RDMSR and WRMSR of LSTAR are MsrIntercepts with RDX and RAX; STAR, whose bits are clear, is not intercepted', () => {
  const { r, v0, v1, l0 } = interceptRig(`
      mov ecx, ${STAR}
      rdmsr
      mov ecx, ${LSTAR}
      mov rdx, 0x1234567800000001
      mov rax, 0xaaaabbbbccccdddd
    rd: rdmsr
      mov r8, rax
      mov r9, rdx
      mov eax, 0x11223344
      mov edx, 0xffff8000
    wr: wrmsr
      hlt`);
  assert.equal(set(r, N.CrInterceptControl, bit(5) | bit(6)), HvStatus.SUCCESS);
  const mem = r.m.vm.mem, lstar = v0.getMsrs([LSTAR])[0]!.data;
  assert.equal(r.drive(), 1);
  assert.equal(v0.getRegs().rip, BigInt(l0.rd));
  assert.equal(mem.read32(MSG), HvMessageType.MsrIntercept);
  assert.deepEqual([mem.read8(PL + 4), mem.read8(PL + 5)], [2, 0], 'length 2, read');
  assert.deepEqual([mem.read32(PL + 0x28), mem.read32(PL + 0x2c)], [LSTAR, 0]);
  assert.deepEqual([mem.read64(PL + 0x30), mem.read64(PL + 0x38)], [0x1234567800000001n, 0xaaaabbbbccccddddn], 'RDX, RAX as they were');
  // VTL1 emulates the read with a value of its choosing and skips the instruction. Its stub returns with a
  // non-fast VtlReturn, which loads VTL0's RAX and RCX from VTL1's control area (§3.3); RDX is shared.
  mem.write64(VTL1_ASSIST + 0x10, 0x5555n);
  mem.write64(VTL1_ASSIST + 0x18, BigInt(LSTAR));
  v1.setRegs({ ...v1.getRegs(), rdx: 0x6666n });
  v0.setRegs({ ...v0.getRegs(), rip: BigInt(l0.rd + 2) });
  resumeVtl1(r, v1);
  assert.equal(r.drive(), 1, 'the WRMSR is intercepted next');
  assert.equal(v0.getRegs().rip, BigInt(l0.wr));
  assert.deepEqual([mem.read8(PL + 5), mem.read32(PL + 0x28)], [1, LSTAR], 'write of LSTAR');
  assert.deepEqual([mem.read64(PL + 0x30), mem.read64(PL + 0x38)], [0xffff8000n, 0x11223344n], 'EDX:EAX zero-extended, as the registers hold them');
  v0.setRegs({ ...v0.getRegs(), rip: BigInt(l0.wr + 2) });
  resumeVtl1(r, v1);
  assert.equal(r.drive(), 0);
  assert.equal(v0.getMsrs([LSTAR])[0]!.data, lstar, 'the write was denied');
  assert.deepEqual([v0.getRegs().r8, v0.getRegs().r9], [0x5555n, 0x6666n], 'VTL0 read the emulated value');
});

test('§3.10: intercepts are per VP and per lower VTL: VTL1 itself is never intercepted; a VTL enabled later is watched too', () => {
  const { r, v0, v1 } = interceptRig('hlt', { maximumVtl: 2 });
  assert.equal(set(r, N.CrInterceptControl, bit(14)), HvStatus.SUCCESS); // EFER write
  assert.deepEqual(v0.getRegisterAccessExits().msrWrite, [EFER]);
  assert.deepEqual(v1.getRegisterAccessExits().msrWrite, [], 'VTL1 does not intercept itself');
  r.p.enablePartitionVtl(2);
  const v2 = r.enableVpVtl(0, 2);
  assert.equal(set(r, N.CrInterceptControl, bit(6), 2), HvStatus.SUCCESS); // VTL2: LSTAR write
  assert.deepEqual([...v0.getRegisterAccessExits().msrWrite].sort(), [EFER, LSTAR].sort(), 'VTL0: the union of VTL1 and VTL2');
  assert.deepEqual(v1.getRegisterAccessExits().msrWrite, [LSTAR], 'VTL1: VTL2\'s');
  assert.deepEqual(v2.getRegisterAccessExits().msrWrite, []);
});

test('§3.10: of two intercepting VTLs the lower one is notified first', () => {
  const { r, v0 } = interceptRig(`
      mov ecx, ${EFER}
      rdmsr
      wrmsr
      hlt`, { maximumVtl: 2 });
  r.p.enablePartitionVtl(2);
  r.enableVpVtl(0, 2);
  assert.equal(set(r, N.CrInterceptControl, bit(14), 2), HvStatus.SUCCESS);
  assert.equal(set(r, N.CrInterceptControl, bit(14), 1), HvStatus.SUCCESS);
  assert.equal(r.drive(), 1, 'VTL1, not VTL2');
  assert.equal(r.m.vm.mem.read32(MSG), HvMessageType.MsrIntercept);
  assert.equal(v0.getRegs().rip, BigInt(VTL0_CODE + 7), 'on the WRMSR');
});

test('§4.6: an LIDT is a RegisterIntercept of Idtr with IsMemoryOp and the table (limit at byte 6, base at 8) as AccessInfo', () => {
  const { r, v0, l0 } = interceptRig(`
    li: lidt [rip + tbl]
      hlt
    tbl: .word 0xfff
      .quad 0x123000`);
  assert.equal(set(r, N.CrInterceptControl, bit(16)), HvStatus.SUCCESS);
  const idt = v0.getSregs().idt;
  assert.equal(r.drive(), 1);
  const mem = r.m.vm.mem;
  assert.equal(v0.getRegs().rip, BigInt(l0.li));
  assert.equal(mem.read32(MSG), HvMessageType.RegisterIntercept);
  assert.deepEqual([mem.read8(PL + 4), mem.read8(PL + 5)], [7, 1], 'length 7 (0f 01 1d disp32), write');
  assert.deepEqual([mem.read8(PL + 0x28), mem.read32(PL + 0x2c)], [1, N.Idtr], 'IsMemoryOp; register Idtr');
  assert.deepEqual([mem.read64(PL + 0x30), mem.read64(PL + 0x38)], [0xfffn << 48n, 0x123000n], 'pad, limit 0xFFF, base');
  assert.deepEqual(v0.getSregs().idt, idt, 'the LIDT did not happen');
});

test('§3.7 bits 3-4: IA32_MISC_ENABLE reads, and writes that change a bit of Ia32MiscEnableMask, are MsrIntercepts; other writes run', () => {
  const { r, v0, l0 } = interceptRig(`
      mov ecx, 0x1a0
      rdmsr
      mov esi, eax
      xor eax, 1
    same: wrmsr
      xor eax, 0x400000
    masked: wrmsr
      hlt
    read: rdmsr
      hlt`);
  assert.equal(set(r, N.CrInterceptControl, bit(4)), HvStatus.SUCCESS);
  assert.equal(set(r, N.CrInterceptIa32MiscEnableMask, 1n << 22n), HvStatus.SUCCESS); // limit CPUID maxval
  const mem = r.m.vm.mem;
  assert.equal(r.drive(), 1, 'VTL1 entered');
  assert.equal(v0.getRegs().rip, BigInt(l0.masked), 'the write of bit 0 ran; the one changing bit 22 waits');
  assert.equal(v0.getMsrs([0x1a0])[0].data, 0x1801n, 'bit 0 written (BTS and PEBS unavailable as created)');
  assert.equal(mem.read32(MSG), HvMessageType.MsrIntercept);
  assert.equal(mem.read8(MSG + 16 + 5), 1, 'write');
  assert.equal(mem.read32(MSG + 16 + 0x28), 0x1a0, 'MSR number');
  assert.equal(mem.read64(MSG + 16 + 0x38), 0x401801n, 'RAX: the value being written');
  // A read intercept: VTL1 now watches reads too, and VTL0 goes on at the RDMSR.
  assert.equal(set(r, N.CrInterceptControl, bit(3)), HvStatus.SUCCESS);
  returnToLowerVtl(r.p, r.vp(), true);
  r.m.jump(v0, l0.read);
  const v1regs = r.vcpu(0, 1).getRegs();
  v1regs.rip = BigInt(VTL1_CODE); // VTL1 halts again at its next entry (past its HLT it would VtlReturn at once)
  r.vcpu(0, 1).setRegs(v1regs);
  mem.write32(MSG, 0);
  assert.equal(r.drive(), 1);
  assert.equal(mem.read32(MSG), HvMessageType.MsrIntercept);
  assert.equal(mem.read8(MSG + 16 + 5), 0, 'read');
  assert.equal(v0.getRegs().rip, BigInt(l0.read));
});
