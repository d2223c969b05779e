// VTL-private versus shared state (tlfs-vsm-facts §3.2): the table, and
// savePrivate / loadPrivate / copyShared on real kvm Vcpus (one per VTL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { KvmError } from '../../src/kvm/errors.js';
import { copyShared, loadPrivate, savePrivate, VTL_STATE } from '../../src/vmm/vsm/vtl-state.js';
import {
  readCr2, readDebugRegs, readFpu, readPrivateMsrs, readXcr0, writeCr2, writeDebugRegs, writeFpu, writePrivateMsrs, writeXcr0,
} from '../../src/vmm/vsm/cpu-state-adapter.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';
import { enterLong64, writeCode } from '../kvm/guest-setup.js';

test('§3.2: the private GPRs are exactly RSP, RIP, RFLAGS; the other 15 GPRs are shared', () => {
  const gprs = VTL_STATE.filter((s) => s.category === 'gpr');
  assert.deepEqual(gprs.filter((s) => s.scope === 'private').map((s) => s.name), ['rsp', 'rip', 'rflags']);
  assert.deepEqual(gprs.filter((s) => s.scope === 'shared').map((s) => s.name).sort(),
    ['r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'r8', 'r9', 'rax', 'rbp', 'rbx', 'rcx', 'rdi', 'rdx', 'rsi']);
});

test('§3.2: control, debug, segment and architectural-MSR rows are on the sides the sheet gives', () => {
  const side = (n: string) => VTL_STATE.find((s) => s.name === n)?.scope;
  for (const n of ['cr0', 'cr3', 'cr4', 'cr8', 'dr7', 'idtr', 'gdtr', 'cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldtr',
    'SYSENTER_CS', 'SYSENTER_ESP', 'SYSENTER_EIP', 'STAR', 'LSTAR', 'CSTAR', 'SFMASK', 'EFER', 'PAT', 'KERNEL_GS_BASE',
    'FS.BASE', 'GS.BASE', 'TSC_AUX', 'TSC', 'local APIC']) assert.equal(side(n), 'private', n);
  for (const n of ['cr2', 'xcr0', 'dr0', 'dr1', 'dr2', 'dr3', 'MTRRs', 'MCG_CAP', 'MCG_STATUS', 'x87', 'mxcsr', 'xmm0', 'xmm15', 'AVX']) {
    assert.equal(side(n), 'shared', n);
  }
  assert.equal(side('dr6'), 'dr6'); // private unless VsmCapabilities.Dr6Shared
});

test('§3.2: synthetic MSRs: 39 private (15 named + SINT0-15 + STIMER0-3 CONFIG/COUNT), 7 shared', () => {
  const syn = VTL_STATE.filter((s) => s.category === 'synthetic-msr');
  const priv = syn.filter((s) => s.scope === 'private').map((s) => s.name);
  const shared = syn.filter((s) => s.scope === 'shared').map((s) => s.name);
  assert.equal(priv.length, 15 + 16 + 8);
  for (const n of ['HYPERCALL', 'GUEST_OS_ID', 'REFERENCE_TSC', 'APIC_FREQUENCY', 'EOI', 'ICR', 'TPR', 'VP_ASSIST_PAGE',
    'NPIEP_CONFIG', 'SIRBP', 'SCONTROL', 'SVERSION', 'SIEFP', 'SIMP', 'EOM', 'SINT0', 'SINT15', 'STIMER3_COUNT']) assert.ok(priv.includes(n), n);
  assert.deepEqual(shared, ['TSC_FREQUENCY', 'VP_INDEX', 'VP_RUNTIME', 'RESET', 'TIME_REF_COUNT', 'GUEST_IDLE', 'DEBUG_DEVICE_OPTIONS']);
  assert.equal(syn.find((s) => s.name === 'SINT15')?.msr, 0x4000_009f);
  assert.equal(syn.find((s) => s.name === 'STIMER3_COUNT')?.msr, 0x4000_00b7);
});

test('§3.2: every overlay page is private; every row names one scope and one mechanism', () => {
  assert.deepEqual(VTL_STATE.filter((s) => s.category === 'overlay').map((s) => s.scope), ['private', 'private', 'private']);
  assert.equal(new Set(VTL_STATE.map((s) => s.name)).size, VTL_STATE.length);
  // HV register numbers quoted in the table are the §3.7 ones.
  assert.equal(VTL_STATE.find((s) => s.name === 'rbx')?.hvRegister, 0x0002_0003);
  assert.equal(VTL_STATE.find((s) => s.name === 'xcr0')?.hvRegister, 0x0004_0005);
  assert.equal(VTL_STATE.find((s) => s.name === 'ldtr')?.hvRegister, 0x0006_0006);
  assert.equal(VTL_STATE.find((s) => s.name === 'TSC_AUX')?.hvRegister, 0x0008_007b);
});

/** Two Vcpus of two VTL Vms over one memory (DESIGN §1), both in 64-bit mode. */
function twoVtls(): { v0: Vcpu; v1: Vcpu } {
  const vm0 = new Vm({ memorySize: 4 << 20 });
  const vm1 = new Vm({ memorySize: 4 << 20, memory: vm0.mem });
  const v0 = vm0.createVcpu(0), v1 = vm1.createVcpu(0);
  writeCode(v0, 0x1000, [0xf4]);
  enterLong64(v0, 0x1000, 0x20000);
  enterLong64(v1, 0x1000, 0x30000);
  return { v0, v1 };
}

function fillShared(v: Vcpu, seed: bigint): void {
  const r = v.getRegs();
  (['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const)
    .forEach((g, k) => { r[g] = seed * 0x1_0000n + BigInt(k); });
  v.setRegs(r);
  for (let k = 0; k < 16; k++) v.setXmm(k, { low: seed + BigInt(k), high: seed * 2n + BigInt(k) });
  writeCr2(v, 0x7fff_0000_1000n + seed);
  writeXcr0(v, 0x3n);
  writeDebugRegs(v, { ...readDebugRegs(v), db: [seed + 1n, seed + 2n, seed + 3n, seed + 4n] }); // DR6/DR7 are fillPrivate's
  const f = readFpu(v);
  f.image[2] = Number(seed & 0xffn); f.mxcsr = 0x1f80 | 0x40;
  writeFpu(v, f);
}

function fillPrivate(v: Vcpu, seed: bigint): void {
  const r = v.getRegs();
  r.rip = 0x40_0000n + seed; r.rsp = 0x80_0000n + seed; r.rflags = 0x202n | (seed & 1n ? 0x400n : 0n);
  v.setRegs(r);
  const s = v.getSregs();
  s.fs = { ...s.fs, base: 0x1000n * seed, selector: 0x10 };
  s.gs = { ...s.gs, base: 0x2000n * seed, selector: 0x10 };
  s.idt = { base: 0x9000n + seed, limit: 0xfff };
  s.cr8 = seed & 0xfn;
  v.setSregs(s);
  writePrivateMsrs(v, {
    sysenterCs: 0x8n + seed, sysenterEsp: 0x7000n + seed, sysenterEip: 0x7100n + seed, star: 0x0023_0010_0000_0000n + seed,
    lstar: 0xffff_8000_0000_1000n + seed, cstar: 0xffff_8000_0000_2000n + seed, sfmask: 0x4700n + seed, pat: 0x0007_0406_0007_0406n,
    kernelGsBase: 0xffff_8880_0000_0000n + seed, tscAux: seed,
  });
  const d = readDebugRegs(v);
  writeDebugRegs(v, { ...d, dr7: 0x400n | (seed & 0xffn), dr6: 0xffff0ff0n | (seed & 0xfn) });
}

test('§3.2: savePrivate then loadPrivate moves exactly the private registers; shared ones stay', () => {
  const { v0, v1 } = twoVtls();
  fillPrivate(v0, 5n); fillShared(v0, 0x100n);
  fillPrivate(v1, 9n); fillShared(v1, 0x900n);
  const sharedBefore = v1.getRegs();
  const state = savePrivate(v0, { dr6Shared: false });
  loadPrivate(v1, state, { dr6Shared: false });
  const r = v1.getRegs();
  assert.equal(r.rip, 0x40_0005n); assert.equal(r.rsp, 0x80_0005n); assert.equal(r.rflags, 0x602n);
  assert.equal(r.rax, sharedBefore.rax); assert.equal(r.r15, sharedBefore.r15); // shared GPRs untouched
  const s = v1.getSregs();
  assert.equal(s.fs.base, 0x5000n); assert.equal(s.gs.base, 0xa000n);
  assert.equal(s.idt.base, 0x9005n); assert.equal(s.cr8, 5n); assert.equal(s.cr3, 0x20000n);
  assert.equal(readCr2(v1), 0x7fff_0000_1900n); // CR2 is shared: not loaded
  assert.deepEqual(readPrivateMsrs(v1), readPrivateMsrs(v0));
  assert.equal(readDebugRegs(v1).dr7, 0x405n);
  assert.equal(readDebugRegs(v1).dr6, 0xffff0ff5n); // DR6 private when Dr6Shared = 0
  assert.equal(readDebugRegs(v1).db[0], 0x901n);    // DR0-3 shared: not loaded
});

test('§3.2: with Dr6Shared = 1, DR6 is not part of the private state', () => {
  const { v0, v1 } = twoVtls();
  fillPrivate(v0, 3n); fillPrivate(v1, 6n);
  const state = savePrivate(v0, { dr6Shared: true });
  assert.equal(state.dr6, undefined);
  loadPrivate(v1, state, { dr6Shared: true });
  assert.equal(readDebugRegs(v1).dr6, 0xffff0ff6n);
  assert.throws(() => loadPrivate(v1, state, { dr6Shared: false }), VsmError);
});

test('loadPrivate is all or nothing: a state KVM_SET_SREGS rejects leaves the Vcpu as it was', () => {
  const { v0, v1 } = twoVtls();
  fillPrivate(v0, 2n); fillPrivate(v1, 7n);
  const before = savePrivate(v1, { dr6Shared: false });
  const bad = savePrivate(v0, { dr6Shared: false });
  bad.rip = 0x8000_0000_0000_0000n; // not canonical: setRegs rejects it after setSregs succeeded
  assert.throws(() => loadPrivate(v1, bad, { dr6Shared: false }), KvmError);
  assert.deepEqual(savePrivate(v1, { dr6Shared: false }), before);
  const badMsr = savePrivate(v0, { dr6Shared: false });
  badMsr.msrs = { ...badMsr.msrs, lstar: 0x8000_0000_0000_0000n };
  assert.throws(() => loadPrivate(v1, badMsr, { dr6Shared: false }), /not a canonical address/);
  assert.deepEqual(savePrivate(v1, { dr6Shared: false }), before);
});

test('§3.2: copyShared copies GPRs but RSP, XMM, x87/MXCSR, CR2, XCR0, DR0-3, DR6 when shared; private state stays', () => {
  const { v0, v1 } = twoVtls();
  fillPrivate(v0, 1n); fillShared(v0, 0x100n);
  fillPrivate(v1, 4n); fillShared(v1, 0x400n);
  const priv1 = savePrivate(v1, { dr6Shared: false });
  copyShared(v0, v1, { dr6Shared: false });
  const a = v0.getRegs(), b = v1.getRegs();
  for (const g of ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const) {
    assert.equal(b[g], a[g], g);
  }
  assert.deepEqual(savePrivate(v1, { dr6Shared: false }), priv1); // RSP, RIP, RFLAGS, CRs, segments, MSRs, DR7, DR6
  for (let k = 0; k < 16; k++) assert.deepEqual(v1.getXmm(k), { low: 0x100n + BigInt(k), high: 0x200n + BigInt(k) });
  assert.deepEqual(readFpu(v1), readFpu(v0));
  assert.equal(readCr2(v1), 0x7fff_0000_1100n);
  assert.equal(readXcr0(v1), 3n);
  assert.deepEqual(readDebugRegs(v1).db, [0x101n, 0x102n, 0x103n, 0x104n]);
  assert.equal(readDebugRegs(v1).dr6, 0xffff0ff4n);
  copyShared(v0, v1, { dr6Shared: true });
  assert.equal(readDebugRegs(v1).dr6, 0xffff0ff1n);
});

test('copyShared leaves the entered VTL\'s TLB alone (a VTL switch is not a flush, DESIGN §3.3)', () => {
  const { v0, v1 } = twoVtls();
  writeCode(v1, 0x2000, [0x48, 0x8b, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00, 0xf4]); // mov rax, [0x5000]; hlt
  const r = v1.getRegs(); r.rip = 0x2000n; v1.setRegs(r);
  assert.equal(v1.run(100).reason, 'hlt');
  const cached = v1.cpu.mmu.tlb.size;
  assert.ok(cached > 0);
  copyShared(v0, v1, { dr6Shared: false });
  assert.equal(v1.cpu.mmu.tlb.size, cached);
  assert.throws(() => copyShared(v1, v1, { dr6Shared: false }), VsmError);
});
