// Our kvm extensions for VMMs that switch between vCPUs often (VSM):
// copyStateTo (KVM_COPY_VCPU_STATE, src/kvm/vcpu-copy.ts) and syncRegs
// (KVM_CAP_SYNC_REGS' GPR view, src/kvm/vcpu-sync-regs.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvmError } from '../../src/kvm/errors.js';
import {
  KVM_COPY_STATE_CR2, KVM_COPY_STATE_DB, KVM_COPY_STATE_DR6, KVM_COPY_STATE_FPU, KVM_COPY_STATE_GPRS, KVM_COPY_STATE_XCR0,
} from '../../src/kvm/vcpu-copy.js';
import { Vm } from '../../src/kvm/vm.js';

const errno = (f: () => void): string => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : String(e); } return 'none'; };

function pair() {
  const a = new Vm({ memorySize: 1 << 20 }).createVcpu(0);
  const b = new Vm({ memorySize: 1 << 20 }).createVcpu(0);
  const r = a.getRegs();
  r.rax = 0x1111_2222_3333_4444n; r.rsp = 0x8000n; r.rbx = 0xbbn; r.r15 = 0xffff_0000_0000_000fn;
  a.setRegs(r);
  const f = a.getFpu();
  f.xmm[3] = { low: 0x0123_4567_89ab_cdefn, high: 0xfedc_ba98_7654_3210n };
  f.mxcsr = 0x1fa0; f.fcw = 0x27f;
  a.setFpu(f);
  a.setSregs({ ...a.getSregs(), cr2: 0xdead_b000n });
  a.setXcrs({ flags: 0, xcrs: [{ xcr: 0, value: 3n }] });
  a.setDebugRegs({ db: [1n, 2n, 3n, 4n], dr6: 0xffff0ff1n, dr7: 0x401n, flags: 0 });
  return { a, b };
}

test('copyStateTo copies exactly the named classes and GPRs, across VMs', () => {
  const { a, b } = pair();
  const before = { sregs: b.getSregs(), dr7: b.getDebugRegs().dr7 };
  a.copyStateTo(b, { classes: KVM_COPY_STATE_GPRS, gprMask: 0xffef }); // every GPR but RSP
  const rb = b.getRegs();
  assert.deepEqual([rb.rax, rb.rbx, rb.r15, rb.rsp], [0x1111_2222_3333_4444n, 0xbbn, 0xffff_0000_0000_000fn, 0n]);
  assert.deepEqual(b.getFpu().xmm[3], { low: 0n, high: 0n }, 'FPU not named: untouched');
  a.copyStateTo(b, { classes: KVM_COPY_STATE_FPU | KVM_COPY_STATE_CR2 | KVM_COPY_STATE_XCR0 | KVM_COPY_STATE_DB, gprMask: 0 });
  assert.deepEqual(b.getFpu(), a.getFpu());
  assert.equal(b.getSregs().cr2, 0xdead_b000n);
  assert.deepEqual({ ...b.getSregs(), cr2: 0n }, { ...before.sregs, cr2: 0n }, 'no other segment or control register changed');
  assert.equal(b.getXcrs().xcrs[0].value, 3n);
  const d = b.getDebugRegs();
  assert.deepEqual(d.db, [1n, 2n, 3n, 4n]);
  assert.equal(d.dr6, 0xffff0ff0n, 'DR6 not named: untouched');
  assert.equal(d.dr7, before.dr7, 'DR7 is never copied');
  a.copyStateTo(b, { classes: KVM_COPY_STATE_DR6, gprMask: 0 });
  assert.equal(b.getDebugRegs().dr6, 0xffff0ff1n);
});

test('copyStateTo of GPRs and FPU together (one copy of the register file) keeps the GPRs outside the mask', () => {
  const { a, b } = pair();
  const r = b.getRegs();
  r.rsp = 0x7000n; r.rbx = 0x5555n;
  b.setRegs(r);
  a.copyStateTo(b, { classes: KVM_COPY_STATE_GPRS | KVM_COPY_STATE_FPU, gprMask: 0xffef & ~(1 << 3) }); // not RSP, not RBX
  const rb = b.getRegs();
  assert.deepEqual([rb.rax, rb.r15, rb.rsp, rb.rbx], [0x1111_2222_3333_4444n, 0xffff_0000_0000_000fn, 0x7000n, 0x5555n]);
  assert.deepEqual(b.getFpu(), a.getFpu());
  assert.equal(b.getSregs().cr2, 0n, 'CR2 not named: untouched');
});

test('copyStateTo: EINVAL for unknown classes, a mask beyond 16 bits or itself as destination; EFAULT for no request; nothing copied', () => {
  const { a, b } = pair();
  assert.equal(errno(() => a.copyStateTo(b, { classes: 0x40, gprMask: 0 })), 'EINVAL');
  assert.equal(errno(() => a.copyStateTo(b, { classes: KVM_COPY_STATE_GPRS, gprMask: 0x10000 })), 'EINVAL');
  assert.equal(errno(() => a.copyStateTo(b, { classes: 1.5, gprMask: 0 })), 'EINVAL');
  assert.equal(errno(() => a.copyStateTo(a, { classes: KVM_COPY_STATE_GPRS, gprMask: 1 })), 'EINVAL');
  assert.equal(errno(() => a.copyStateTo(b, null as never)), 'EFAULT');
  assert.equal(b.getRegs().rax, 0n);
});

test('syncRegs reads and writes GPRs as u64s; EINVAL for a bad number or value', () => {
  const { a } = pair();
  const s = a.syncRegs, rdx = a.getRegs().rdx;
  assert.equal(s.gpr(0), 0x1111_2222_3333_4444n);
  assert.equal(s.gpr(15), 0xffff_0000_0000_000fn);
  s.setGpr(1, 0xffff_ffff_ffff_ffffn);
  assert.equal(a.getRegs().rcx, 0xffff_ffff_ffff_ffffn);
  assert.equal(errno(() => s.gpr(16)), 'EINVAL');
  assert.equal(errno(() => s.setGpr(2, -1n)), 'EINVAL');
  assert.equal(errno(() => s.setGpr(2, 1n << 64n)), 'EINVAL');
  assert.equal(a.getRegs().rdx, rdx, 'refused writes changed nothing');
});

test('syncRegs as int32 halves: gprLo/gprHi read, setGprHalves writes; EINVAL for a bad number or half', () => {
  const { a } = pair();
  const s = a.syncRegs;
  assert.deepEqual([s.gprLo(0), s.gprHi(0)], [0x3333_4444, 0x1111_2222]);
  assert.deepEqual([s.gprLo(15), s.gprHi(15)], [0xf, 0xffff_0000 | 0], 'int32 halves: bit 31 makes them negative');
  s.setGprHalves(3, 0xdead_beef, -1);
  assert.equal(a.getRegs().rbx, 0xffff_ffff_dead_beefn, 'uint32 and int32 halves are the same bits');
  assert.equal(errno(() => s.gprLo(-1)), 'EINVAL');
  assert.equal(errno(() => s.setGprHalves(3, 2 ** 32, 0)), 'EINVAL');
  assert.equal(errno(() => s.setGprHalves(3, 0, 1.5)), 'EINVAL');
  assert.equal(errno(() => s.setGprHalves(16, 0, 0)), 'EINVAL');
  assert.equal(a.getRegs().rbx, 0xffff_ffff_dead_beefn, 'refused writes changed nothing');
});
