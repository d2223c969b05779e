// Register access in KVM's shapes (struct kvm_regs, struct kvm_sregs, the FPU's
// XMM registers; kvm-api-facts.md §3.1 needs XMM0-5 for hypercall output).
// Bad values are EINVAL and change nothing (DESIGN §5); the CR0/CR4/EFER rules
// are KVM's kvm_is_valid_sregs / kvm_is_valid_cr0 (upstream arch/x86/kvm/x86.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { KvmRegs, KvmSregs } from '../../src/kvm/vcpu-regs.js';
import { CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, enterFlat32, enterLong64, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

function vcpu(): Vcpu { return new Vm({ memorySize: 2 * MiB }).createVcpu(0); }

function rejectsRegs(v: Vcpu, r: KvmRegs, message: RegExp): void {
  const before = v.getRegs();
  assert.throws(() => v.setRegs(r), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL' && message.test(e.message));
  assert.deepEqual(v.getRegs(), before);
}
function rejectsSregs(v: Vcpu, s: KvmSregs, message: RegExp): void {
  const before = v.getSregs();
  const regs = v.getRegs();
  assert.throws(() => v.setSregs(s), (e: unknown) => {
    assert.ok(e instanceof KvmError, String(e));
    assert.equal(e.code, 'EINVAL');
    assert.match(e.message, message);
    return true;
  });
  assert.deepEqual(v.getSregs(), before);
  assert.deepEqual(v.getRegs(), regs);
}

test('KVM_GET/SET_REGS round-trips all 64-bit GPRs, RIP and RFLAGS, which the CPU then uses', () => {
  const v = vcpu();
  enterLong64(v, 0x1000);
  const r = v.getRegs();
  NAMES.forEach((n, k) => { r[n] = 0x0123_4567_89ab_cdefn ^ (BigInt(k) << 56n) ^ BigInt(k); });
  r.rsp = 0x8000n;
  r.rip = 0x1000n;
  r.rflags = 0x202n | 0x1n; // IF, CF
  v.setRegs(r);
  assert.deepEqual(v.getRegs(), r);
  // add rax, rbx; hlt — executed with the values set above
  writeCode(v, 0x1000, [0x48, 0x01, 0xd8, 0xf4]);
  assert.equal(v.run(10).reason, 'hlt');
  const after = v.getRegs();
  assert.equal(after.rax, (r.rax + r.rbx) & ((1n << 64n) - 1n));
  assert.equal(after.rip, 0x1004n);
});

test('RFLAGS bit 1 is forced to 1, as KVM_SET_REGS does', () => {
  const v = vcpu();
  const r = v.getRegs();
  r.rflags = 0n;
  v.setRegs(r);
  assert.equal(v.getRegs().rflags, 2n);
});

test('KVM_SET_REGS rejects non-canonical RIP, reserved RFLAGS bits, RFLAGS.VM in long mode and non-u64 values', () => {
  const v = vcpu();
  enterLong64(v, 0x1000);
  const good = v.getRegs();
  rejectsRegs(v, { ...good, rax: 5n, rip: 0x0000_8000_0000_0000n }, /RIP 0x800000000000 is not canonical/);
  rejectsRegs(v, { ...good, rax: 5n, rip: 0xffff_7fff_ffff_ffffn }, /not canonical/);
  for (const bit of [3n, 5n, 15n, 22n, 63n]) rejectsRegs(v, { ...good, rflags: 2n | (1n << bit) }, /reserved bits/);
  rejectsRegs(v, { ...good, rflags: 2n | (1n << 17n) }, /RFLAGS.VM cannot be set in long mode/);
  rejectsRegs(v, { ...good, rbx: -1n }, /register rbx must be a bigint/);
  rejectsRegs(v, { ...good, r15: 1 as unknown as bigint }, /register r15 must be a bigint/);
  v.setRegs({ ...good, rip: 0xffff_8000_0000_0000n }); // canonical high half is fine
});

test('KVM_GET/SET_SREGS round-trips segments, descriptor tables and control registers', () => {
  const v = vcpu();
  enterFlat32(v, 0x1000);
  const s = v.getSregs();
  assert.deepEqual(s.cs, { base: 0n, limit: 0xffffffff, selector: 8, type: 0xb, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 });
  s.fs = { ...s.fs, base: 0x1234_5000n, limit: 0xfff, selector: 0x18, g: 0 };
  s.gs = { ...s.gs, present: 0, unusable: 1, type: 0, s: 0, db: 0, g: 0 }; // an unusable segment (null selector)
  s.idt = { base: 0x6000n, limit: 0x7ff };
  s.cr2 = 0xdead_b000n;
  s.cr8 = 7n;
  v.setSregs(s);
  const back = v.getSregs();
  assert.deepEqual(back.fs, s.fs);
  assert.equal(back.gs.unusable, 1);
  assert.equal(back.gs.present, 0);
  assert.deepEqual(back.idt, s.idt);
  assert.equal(back.cr2, 0xdead_b000n);
  assert.equal(back.cr8, 7n);
  assert.equal(v.apic.readCr8(), 7); // CR8 is the APIC's TPR
  assert.equal(back.cr0 & 0x10n, 0x10n); // ET is fixed to 1
});

test('setSregs into long mode makes the CPU run 64-bit code', () => {
  const v = vcpu();
  enterLong64(v, 0x1000);
  writeCode(v, 0x1000, [0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xf4]); // mov rax, 0x1122334455667788; hlt
  assert.equal(v.run(10).reason, 'hlt');
  assert.equal(v.getRegs().rax, 0x1122334455667788n);
  const s = v.getSregs();
  assert.equal(s.efer & EFER_LMA, EFER_LMA);
  assert.equal(s.cs.l, 1);
});

test('KVM_SET_SREGS rejects invalid CR0, CR4, EFER, CR3, CR8, CS.L and PDPTEs, changing nothing', () => {
  const v = vcpu();
  enterFlat32(v, 0x1000);
  const s = v.getSregs();
  rejectsSregs(v, { ...s, cr0: (s.cr0 | CR0_PG) & ~CR0_PE }, /CR0.PG is set without CR0.PE/);
  rejectsSregs(v, { ...s, cr0: (s.cr0 | (1n << 29n)) & ~(1n << 30n) }, /CR0.NW is set without CR0.CD/);
  rejectsSregs(v, { ...s, cr0: s.cr0 | (1n << 32n) }, /sets bits 63:32/);
  rejectsSregs(v, { ...s, cr4: 1n << 12n }, /CR4 0x1000 sets bits this CPU does not implement/); // LA57
  rejectsSregs(v, { ...s, efer: 1n << 12n }, /EFER 0x1000 sets bits/); // SVME
  rejectsSregs(v, { ...s, cr8: 16n }, /CR8 16 is not in 0..15/);
  rejectsSregs(v, { ...s, efer: EFER_LMA }, /EFER.LMA is set outside long mode/);
  rejectsSregs(v, { ...s, cs: { ...s.cs, l: 1, db: 0 } }, /CS.L is set outside long mode/);
  rejectsSregs(v, { ...s, cr0: s.cr0 | CR0_PG, efer: EFER_LME }, /needs CR4.PAE and EFER.LMA/);
  rejectsSregs(v, { ...s, cr0: s.cr0 | CR0_PG, cr4: CR4_PAE, efer: EFER_LME | EFER_LMA, cr3: 1n << 40n }, /above MAXPHYADDR/);
  rejectsSregs(v, { ...s, cr3: 1n << 32n }, /bits 63:32 outside long mode/);
  rejectsSregs(v, { ...s, cr4: 1n << 17n }, /PCIDE needs long mode/);
  rejectsSregs(v, { ...s, cs: { ...s.cs, dpl: 4 } }, /cs.dpl must be an integer in 0..3/);
  rejectsSregs(v, { ...s, gdt: { base: 0n, limit: 0x10000 } }, /gdt.limit/);
  // PAE paging: a present PDPTE with reserved bits set (SDM 4.4.1) fails the PDPTE check.
  v.vm.mem.write64(0x30000, 0x31000n | 1n | (1n << 1n));
  rejectsSregs(v, { ...s, cr0: s.cr0 | CR0_PG, cr4: CR4_PAE, cr3: 0x30000n }, /PDPTE 0 .* sets reserved bits/);
  // APIC base with reserved bits (7:0) is refused by the local APIC.
  rejectsSregs(v, { ...s, cr0: s.cr0 | 0x20n, apicBase: s.apicBase | 1n }, /rejects APIC base/);
});

test('XMM registers read and write as 64-bit halves, in the layout the CPU uses', () => {
  const v = vcpu();
  enterFlat32(v, 0x1000);
  v.setXmm(3, { low: 0x1111_2222_3333_4444n, high: 0x5555_6666_7777_8888n });
  assert.deepEqual(v.getXmm(3), { low: 0x1111_2222_3333_4444n, high: 0x5555_6666_7777_8888n });
  // movd eax, xmm3 (needs CR4.OSFXSR for SSE): the CPU sees bits 31:0 of what was set.
  const s = v.getSregs(); s.cr4 |= 1n << 9n; s.cr0 &= ~(1n << 2n); v.setSregs(s);
  writeCode(v, 0x1000, [0x66, 0x0f, 0x7e, 0xd8, 0xf4]);
  assert.equal(v.run(10).reason, 'hlt');
  assert.equal(v.getRegs().rax, 0x3333_4444n);
  assert.throws(() => v.getXmm(16), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');
  assert.throws(() => v.setXmm(0, { low: -1n, high: 0n }), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');
  assert.deepEqual(v.getXmm(0), { low: 0n, high: 0n });
});
