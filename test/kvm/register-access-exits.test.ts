// Our register-access exits (src/kvm/register-access-exits.ts): CR0/CR4
// writes that change a watched bit, XSETBV, and RDMSR/WRMSR of named MSRs
// stop before they execute, with RIP on the instruction, and run again at
// the next run(); bad configurations change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvmError } from '../../src/kvm/errors.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import { NO_REGISTER_ACCESS_EXITS } from '../../src/kvm/register-access-exits.js';
import { CODE, HvMachine } from './hypercall-machine.js';

type AccessExit = Extract<VcpuExit, { reason: 'register-access' }>;
const errno = (f: () => void): string => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : String(e); } return 'none'; };
const LSTAR = 0xc000_0082, STAR = 0xc000_0081, CR0_WP = 1n << 16n, CR0_TS = 1n << 3n, CR4_TSD = 1n << 2n, CR4_OSXSAVE = 1n << 18n;

function machine(src: string) {
  const m = new HvMachine({ flags: [] });
  const v = m.vcpu(0);
  const at = m.asm(`.code64\n${src}`, CODE + 0x100);
  m.jump(v, CODE + 0x100);
  return { m, v, at };
}

const rip = (v: ReturnType<typeof machine>['v']) => v.getRegs().rip;

test('a CR0 write that changes a watched bit exits before it happens; one that changes only other bits does not', () => {
  const { m, v, at } = machine(`
      mov rax, cr0
      btr rax, 3          # clear TS: not watched
      mov cr0, rax
    wp: btr rax, 16       # clear WP: watched
    wpw: mov cr0, rax
      hlt`);
  v.setSregs({ ...v.getSregs(), cr0: v.getSregs().cr0 | CR0_TS });
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, cr0Mask: CR0_WP });
  const cr0 = v.getSregs().cr0;
  const e = m.runToExit(v) as AccessExit;
  assert.deepEqual(e, { reason: 'register-access', register: 'cr0', msr: 0, write: true, value: cr0 & ~CR0_WP & ~CR0_TS, limit: 0, memoryOperand: false, insnLen: 3 });
  assert.equal(rip(v), BigInt(at.wpw), 'RIP on the MOV to CR0');
  assert.equal(v.getSregs().cr0, cr0 & ~CR0_TS, 'TS was cleared without an exit; WP is still set');
  assert.equal(m.runToExit(v).reason, 'register-access', 'not answered: the next run executes it again');
  v.setRegisterAccessExits(NO_REGISTER_ACCESS_EXITS);
  assert.equal(m.runToExit(v).reason, 'hlt');
  assert.equal(v.getSregs().cr0 & CR0_WP, 0n, 'without the exit the write happened');
});

test('LMSW and CLTS are CR0 writes too; a CR4 write exits on its mask; XSETBV of XCR0 exits', () => {
  const { m, v, at } = machine(`
    clts1: clts
    lmsw1: lmsw ax
    cr4w: mov cr4, rbx
    xs: xor ecx, ecx
      xor edx, edx
      mov eax, 3
    xsb: xsetbv
      hlt`);
  const s = v.getSregs();
  v.setSregs({ ...s, cr0: s.cr0 | CR0_TS, cr4: s.cr4 | CR4_OSXSAVE });
  const r = v.getRegs();
  v.setRegs({ ...r, rax: 0x1n | CR0_TS, rbx: v.getSregs().cr4 | CR4_TSD });
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, cr0Mask: CR0_TS, cr4Mask: CR4_TSD, xcr0: true });
  const seen: [string, bigint, number][] = [];
  for (const [label, skip] of [['clts1', 2], ['lmsw1', 3], ['cr4w', 3], ['xsb', 3]] as const) {
    const e = m.runToExit(v) as AccessExit;
    assert.equal(e.reason, 'register-access', label);
    assert.equal(rip(v), BigInt(at[label]!), `${label}: RIP on the instruction`);
    seen.push([e.register, e.value, e.insnLen]);
    if (label === 'clts1') v.setSregs({ ...v.getSregs(), cr0: v.getSregs().cr0 & ~CR0_TS }); // emulate CLTS
    // The VMM skips the instruction (as a higher VTL that denies or emulates it would).
    v.setRegs({ ...v.getRegs(), rip: v.getRegs().rip + BigInt(skip) });
  }
  const cr0 = v.getSregs().cr0;
  assert.deepEqual(seen, [
    ['cr0', (cr0 & ~CR0_TS), 2], // CLTS: CR0 without TS (TS is clear now: we emulated it)
    ['cr0', (cr0 & ~0xen) | 0x9n, 3], // LMSW loads PE MP EM TS from AX = PE | TS
    ['cr4', v.getSregs().cr4 | CR4_TSD, 3],
    ['xcr0', 3n, 3],
  ]);
  assert.equal(m.runToExit(v).reason, 'hlt');
  assert.equal(v.getXcrs().xcrs[0]!.value, 1n, 'the skipped XSETBV did not happen');
});

test('RDMSR and WRMSR of watched MSRs exit with EDX:EAX; other MSRs and the other direction do not', () => {
  const { m, v, at } = machine(`
      mov ecx, ${STAR}
      rdmsr              # STAR read: not watched
      mov ecx, ${LSTAR}
    rd: rdmsr            # watched
      mov eax, 0x11223344
      mov edx, 0xffff8000
    wr: wrmsr            # watched
      hlt`);
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, msrRead: [LSTAR], msrWrite: [LSTAR] });
  let e = m.runToExit(v) as AccessExit;
  assert.deepEqual(e, { reason: 'register-access', register: 'msr', msr: LSTAR, write: false, value: 0n, limit: 0, memoryOperand: false, insnLen: 2 });
  assert.equal(rip(v), BigInt(at.rd));
  v.setRegs({ ...v.getRegs(), rip: BigInt(at.rd + 2) });
  e = m.runToExit(v) as AccessExit;
  assert.deepEqual(e, { reason: 'register-access', register: 'msr', msr: LSTAR, write: true, value: 0xffff8000_11223344n, limit: 0, memoryOperand: false, insnLen: 2 });
  assert.equal(rip(v), BigInt(at.wr));
  assert.deepEqual(v.getRegisterAccessExits(), { ...NO_REGISTER_ACCESS_EXITS, msrRead: [LSTAR], msrWrite: [LSTAR] });
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, msrRead: [LSTAR] });
  assert.equal(m.runToExit(v).reason, 'hlt', 'the write is no longer watched');
  assert.equal(v.getMsrs([LSTAR])[0]!.data, 0xffff8000_11223344n);
});

test('LGDT, LIDT, LLDT and LTR exit with the table (base and limit) or selector, and whether the operand was in memory; LMSW from memory too', () => {
  const { m, v, at } = machine(`
    gd: lgdt [rip + tbl]
    id: lidt [rip + tbl]
    ld: lldt ax
    t:  ltr word ptr [rip + sel]
    lm: lmsw word ptr [rip + sel]
      hlt
    tbl: .word 0x1234
      .quad 0xffff800000001000
    sel: .word 0x0009`);
  v.setRegs({ ...v.getRegs(), rax: 0x28n });
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, gdtr: true, idtr: true, ldtr: true, tr: true, cr0Mask: CR0_TS });
  const seen: unknown[] = [];
  for (const [label, len] of [['gd', 7], ['id', 7], ['ld', 3], ['t', 7], ['lm', 7]] as const) {
    const e = m.runToExit(v) as AccessExit;
    assert.equal(rip(v), BigInt(at[label]!), `${label}: RIP on the instruction`);
    assert.equal(e.insnLen, len, label);
    seen.push([e.register, e.value, e.limit, e.memoryOperand]);
    v.setRegs({ ...v.getRegs(), rip: v.getRegs().rip + BigInt(len) });
  }
  const cr0 = v.getSregs().cr0;
  assert.deepEqual(seen, [
    ['gdtr', 0xffff800000001000n, 0x1234, true], ['idtr', 0xffff800000001000n, 0x1234, true],
    ['ldtr', 0x28n, 0, false], ['tr', 0x9n, 0, true], ['cr0', (cr0 & ~0xen) | 0x9n, 0, true],
  ]);
  assert.equal(m.runToExit(v).reason, 'hlt');
  assert.notEqual(v.getSregs().gdt.base, 0xffff800000001000n, 'the skipped LGDT did not happen');
});

test('a watched write exits before its value is checked (a value that would #GP still exits)', () => {
  const { m, v } = machine(`
      mov rax, cr4
      bts rax, 31        # a reserved CR4 bit: #GP if it ran
      mov cr4, rax
      hlt`);
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, cr4Mask: 1n << 31n });
  const e = m.runToExit(v) as AccessExit;
  assert.equal(e.reason, 'register-access');
  assert.equal(e.value & (1n << 31n), 1n << 31n);
  v.setRegisterAccessExits(NO_REGISTER_ACCESS_EXITS);
  m.runToExit(v);
  assert.equal(m.stubVector(v), 13, 'without the exit it raises #GP');
});

test('bad configurations: EINVAL / E2BIG / EFAULT and nothing changes', () => {
  const { v } = machine('hlt');
  const good = { ...NO_REGISTER_ACCESS_EXITS, cr0Mask: CR0_WP, msrRead: [LSTAR] };
  v.setRegisterAccessExits(good);
  for (const [bad, code] of [
    [{ ...good, cr0Mask: 1n << 32n }, 'EINVAL'],
    [{ ...good, cr4Mask: -1n }, 'EINVAL'],
    [{ ...good, cr0Mask: 1 as unknown as bigint }, 'EINVAL'],
    [{ ...good, xcr0: 1 as unknown as boolean }, 'EINVAL'],
    [{ ...good, tr: undefined as unknown as boolean }, 'EINVAL'],
    [{ ...good, msrWrite: [2 ** 32] }, 'EINVAL'],
    [{ ...good, msrRead: [1.5] }, 'EINVAL'],
    [{ ...good, msrRead: 'x' as unknown as number[] }, 'EINVAL'],
    [{ ...good, msrWrite: Array.from({ length: 257 }, (_, k) => k) }, 'E2BIG'],
    [{ ...good, msrWriteMasks: [{ msr: LSTAR, mask: 1n << 64n }] }, 'EINVAL'],
    [{ ...good, msrWriteMasks: [{ msr: -1, mask: 1n }] }, 'EINVAL'],
    [{ ...good, msrWriteMasks: [{ msr: LSTAR, mask: 1n }, { msr: LSTAR, mask: 2n }] }, 'EINVAL'],
    [{ ...good, msrWriteMasks: [null] as never }, 'EINVAL'],
    [{ ...good, msrWriteMasks: Array.from({ length: 257 }, (_, k) => ({ msr: k, mask: 1n })) }, 'E2BIG'],
    [null, 'EFAULT'],
  ] as const) assert.equal(errno(() => v.setRegisterAccessExits(bad as never)), code);
  assert.deepEqual(v.getRegisterAccessExits(), { ...good, msrWrite: [] });
});

test('a WRMSR of an MSR in msrWriteMasks exits only when it changes a bit of the mask; in msrWrite too, every write exits', () => {
  const { m, v, at } = machine(`
      mov ecx, ${STAR}
      xor eax, eax
      mov edx, 0x00100008
    same: wrmsr          # changes STAR[47:32] from 0 but not the masked bit 63
      mov edx, 0x80100008
    masked: wrmsr        # sets bit 63
      hlt`);
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, msrWriteMasks: [{ msr: STAR, mask: 1n << 63n }] });
  assert.deepEqual(v.getRegisterAccessExits(), { ...NO_REGISTER_ACCESS_EXITS, msrWriteMasks: [{ msr: STAR, mask: 1n << 63n }] });
  const e = m.runToExit(v) as AccessExit;
  assert.deepEqual([e.reason, e.msr, e.write, e.value], ['register-access', STAR, true, 0x80100008_00000000n]);
  assert.equal(rip(v), BigInt(at.masked));
  assert.equal(v.getMsrs([STAR])[0]!.data, 0x00100008_00000000n, 'the first write ran');
  v.setRegs({ ...v.getRegs(), rip: BigInt(at.same), rdx: 0x00100008n });
  v.setRegisterAccessExits({ ...NO_REGISTER_ACCESS_EXITS, msrWrite: [STAR], msrWriteMasks: [{ msr: STAR, mask: 1n << 63n }] });
  assert.deepEqual(v.getRegisterAccessExits().msrWriteMasks, [], 'listed in both: an unconditional watch');
  assert.equal((m.runToExit(v) as AccessExit).value, 0x00100008_00000000n, 'now the unchanged write exits too');
  assert.equal(rip(v), BigInt(at.same));
});
