/**
 * Exception and interrupt delivery (SDM vol. 3 ch. 6): real-mode IVT frames,
 * 32-bit gates with and without a privilege change, 64-bit gates with RSP0,
 * IST and 16-byte alignment, error codes, gate types and DPL, double and
 * triple faults, external interrupts and the interrupt shadows, NMI blocking,
 * HLT wake-up, owner injection and the exception intercept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuRunState } from '../../src/x86/cpu.js';
import { CS, IF, SS, TR } from '../../src/x86/regs.js';
import {
  CODE, DATA, IDT, IST1, KSTACK, SEL, STUBS, TestMachine, UCODE, USTACK, cr2, gate32, reg, rip, setReg, setRip,
} from './helpers/test-machine.js';

const RAX = 0, RBX = 3, RSP = 4;
const HANDLER = 0x28000;

// ---------------------------------------------------------------- real mode

test('real mode: INT n and faults push FLAGS, CS, IP through the IVT, clear IF, and push no error code (SDM 20.1.4)', () => {
  const m = new TestMachine();
  m.enterReal();
  const c = m.cpu;
  c.setRflags(0x202);
  const L = m.asm(`.code16
      int 0x21
    after_int:
      mov cx, 0
      mov dx, 0
    div_insn:
      div cx
    after_div:
      mov eax, 0x8000
    gp_insn:
      mov cr4, eax            # reserved CR4 bit 15: #GP(0), which real mode delivers without an error code
    `, CODE);
  const ip = (label: number) => label - CODE;
  m.runToHalt();
  assert.equal(m.stubVector(), 0x21);
  assert.deepEqual(m.stack16(3), [ip(L.after_int), CODE >> 4, 0x202]);
  assert.equal(c.rlo[RSP] & 0xffff, KSTACK - 6);
  assert.equal(c.segSel[CS], STUBS >> 4);
  assert.equal(c.getRflags() & IF, 0, 'IF cleared');
  m.resume();
  m.runToHalt(); // IRET back, then DIV by zero
  assert.equal(m.stubVector(), 0);
  assert.deepEqual(m.stack16(3), [ip(L.div_insn), CODE >> 4, 0x202], '#DE saves the IP of the DIV');
  assert.equal(c.rlo[RSP] & 0xffff, KSTACK - 6);
  // Skip the DIV: point the saved IP past it and return.
  m.mem.write16(c.rlo[RSP] & 0xffff, ip(L.after_div));
  m.resume();
  m.runToHalt();
  assert.equal(m.stubVector(), 13);
  assert.deepEqual(m.stack16(3), [ip(L.gp_insn), CODE >> 4, 0x202]);
  assert.equal(c.rlo[RSP] & 0xffff, KSTACK - 6, 'no error code in real mode');
});

// ---------------------------------------------------------------- 32-bit protected mode

function setGate32(m: TestMachine, v: number, type: number, dpl: number): void {
  m.mem.write64(IDT + 8 * v, gate32(SEL.code32, STUBS + 16 * v, type, dpl));
}

test('32-bit protected mode, same privilege: interrupt gate clears IF, trap gate keeps it; frame EFLAGS, CS, EIP (SDM 6.12.1)', () => {
  const m = new TestMachine();
  m.enterProtected32();
  setGate32(m, 0x31, 0xf, 0);
  const c = m.cpu;
  c.setRflags(0x202);
  const L = m.asm(`.code32
      int 0x30
    after30:
      int 0x31
    after31:`, CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x30);
  assert.deepEqual(m.stack32(3), [L.after30, SEL.code32, 0x202]);
  assert.equal(c.rlo[RSP], KSTACK - 12);
  assert.equal(c.segSel[SS], SEL.data);
  assert.equal(c.getRflags() & IF, 0, 'interrupt gate cleared IF');
  m.resume();
  m.runToHalt();
  assert.equal(m.stubVector(), 0x31);
  assert.deepEqual(m.stack32(3), [L.after31, SEL.code32, 0x202]);
  assert.equal(c.getRflags() & IF, IF, 'trap gate kept IF');
});

test('32-bit protected mode, CPL3 -> CPL0: stack from TSS SS0:ESP0, SS and ESP pushed; IRET returns to CPL3 (SDM 6.12.1, 8.2.1)', () => {
  const m = new TestMachine();
  m.enterProtected32('none', { cpl: 3 });
  setGate32(m, 0x80, 0xe, 3);
  const c = m.cpu;
  c.setRflags(0x202);
  const L = m.asm(`.code32
      int 0x80
    after:
      mov ebx, esp
    gp_insn:
      int 0x31                 # gate DPL 0 < CPL 3: #GP(0x31 * 8 + 2)
    `, UCODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x80);
  assert.equal(c.cpl, 0);
  assert.equal(c.segSel[CS], SEL.code32);
  assert.equal(c.segSel[SS], SEL.data, 'SS0 from the TSS');
  assert.equal(c.rlo[RSP], KSTACK - 20, 'ESP0 from the TSS, minus five dwords');
  assert.deepEqual(m.stack32(5), [L.after, SEL.ucode32, 0x202, USTACK, SEL.udata]);
  m.resume();
  m.runToHalt();
  assert.equal(c.rlo[RBX], USTACK, 'IRET restored the user stack');
  assert.equal(m.stubVector(), 13);
  assert.deepEqual(m.stack32(6), [0x31 * 8 + 2, L.gp_insn, SEL.ucode32, 0x202, USTACK, SEL.udata]);
});

// ---------------------------------------------------------------- 64-bit mode

test('64-bit mode, CPL3 -> CPL0 through RSP0: RSP0 aligned to 16, SS becomes null, SS:RSP pushed; IRETQ returns (SDM 6.14.2-6.14.4)', () => {
  const m = new TestMachine();
  m.enterLong64({ cpl: 3 });
  m.installTss64(BigInt(KSTACK - 8)); // misaligned RSP0
  m.setGate64(0x80, { dpl: 3 });
  const c = m.cpu;
  c.setRflags(0x202);
  setReg(c, RSP, USTACK - 8); // a misaligned user stack is pushed as it is
  const L = m.asm(`.code64
      int 0x80
    after:
      mov rbx, rsp
      ud2`, UCODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x80);
  assert.equal(c.cpl, 0);
  assert.equal(c.segSel[SS], 0, 'SS is loaded with a null selector whose RPL is the new CPL (0)');
  assert.equal(reg(c, RSP), BigInt(KSTACK - 16 - 40));
  assert.deepEqual(m.stack64(5), [BigInt(L.after), BigInt(SEL.ucode64), 0x202n, BigInt(USTACK - 8), BigInt(SEL.udata)]);
  m.resume();
  m.runToHalt();
  assert.equal(reg(c, RBX), BigInt(USTACK - 8), 'IRETQ restored RSP');
  assert.equal(m.stubVector(), 6, 'UD2 from CPL3 through a DPL-0 gate: exceptions ignore the gate DPL');
  // The #UD frame shows the state IRETQ returned to: CPL3 code and stack.
  assert.deepEqual(m.stack64(5), [BigInt(L.after) + 3n, BigInt(SEL.ucode64), 0x202n, BigInt(USTACK - 8), BigInt(SEL.udata)]);
});

test('64-bit mode: IST stack used even without a privilege change, aligned to 16; SS kept (SDM 6.14.5)', () => {
  const m = new TestMachine();
  m.enterLong64();
  m.installTss64(BigInt(KSTACK), BigInt(IST1 + 8));
  m.setGate64(0x41, { ist: 1 });
  const c = m.cpu;
  setReg(c, RSP, KSTACK - 0x100);
  const L = m.asm('.code64\n int 0x41\n after:', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x41);
  assert.equal(reg(c, RSP), BigInt(IST1 - 40));
  assert.deepEqual(m.stack64(5), [BigInt(L.after), BigInt(SEL.code64), 2n, BigInt(KSTACK - 0x100), BigInt(SEL.data)]);
  assert.equal(c.segSel[SS], SEL.data);
});

test('64-bit mode, same privilege: RSP aligned down to 16 before the frame; the old RSP is pushed as it was (SDM 6.14.2)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  setReg(c, RSP, KSTACK - 8);
  const L = m.asm('.code64\n int 0x40\n after:', CODE);
  m.runToHalt();
  assert.equal(reg(c, RSP), BigInt(KSTACK - 16 - 40));
  assert.deepEqual(m.stack64(5), [BigInt(L.after), BigInt(SEL.code64), 2n, BigInt(KSTACK - 8), BigInt(SEL.data)]);
});

test('64-bit mode: interrupt gate clears IF, trap gate keeps it; pushed RFLAGS has IF=1 in both (SDM 6.12.1.3)', () => {
  const m = new TestMachine();
  m.enterLong64();
  m.setGate64(0x50, { type: 0xf });
  const c = m.cpu;
  c.setRflags(0x202);
  m.asm('.code64\n int 0x50\n int 0x51', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x50);
  assert.equal(m.stack64(3)[2], 0x202n);
  assert.equal(c.getRflags() & IF, IF);
  m.resume();
  m.runToHalt();
  assert.equal(m.stubVector(), 0x51);
  assert.equal(m.stack64(3)[2], 0x202n);
  assert.equal(c.getRflags() & IF, 0);
});

test('INT n / INT3 from CPL3 through a gate with DPL < 3 raise #GP(vector*8+2) at the INT instruction (SDM 6.12.1.1)', () => {
  for (const [insn, vector] of [['int 0x31', 0x31], ['int3', 3]] as const) {
    const m = new TestMachine();
    m.enterLong64({ cpl: 3 });
    const L = m.asm(`.code64\n faulting: ${insn}`, UCODE);
    m.runToHalt();
    assert.equal(m.stubVector(), 13, insn);
    assert.deepEqual(m.stack64(3), [BigInt(vector * 8 + 2), BigInt(L.faulting), BigInt(SEL.ucode64)], insn);
  }
});

interface ErrCase { name: string; code: string; vector: number; err: number | null; at: 'faulting' | 'after'; setup?: (m: TestMachine) => void }

// SDM table 6-1: #DF, #TS, #NP, #SS, #GP, #PF (and #AC, not raised by this CPU) push an error code; others do not.
const ERR_CASES: ErrCase[] = [
  { name: '#DE', code: 'xor ecx, ecx\n faulting: div ecx', vector: 0, err: null, at: 'faulting' },
  { name: '#UD', code: 'faulting: ud2', vector: 6, err: null, at: 'faulting' },
  { name: '#BP (INT3 is a trap: RIP after it)', code: 'faulting: int3', vector: 3, err: null, at: 'after' },
  {
    name: '#DB from INT1 (ICEBP; a trap: RIP after it)', code: 'faulting: .byte 0xf1', vector: 1, err: null, at: 'after',
  },
  { name: '#GP(selector) loading DS beyond the GDT limit', code: 'mov ax, 0x1000\n faulting: mov ds, ax', vector: 13, err: 0x1000, at: 'faulting' },
  { name: '#NP(selector) loading DS with a not-present segment', code: `mov ax, ${SEL.notPresent}\n faulting: mov ds, ax`, vector: 11, err: SEL.notPresent, at: 'faulting' },
  { name: '#SS(selector) loading SS with a not-present segment', code: `mov ax, ${SEL.notPresent}\n faulting: mov ss, ax`, vector: 12, err: SEL.notPresent, at: 'faulting' },
  { name: '#SS(0) for a non-canonical RBP-based access', code: 'mov rbp, 0x8000000000000000\n faulting: mov rax, [rbp]', vector: 12, err: 0, at: 'faulting' },
  { name: '#PF', code: 'mov rbx, 0x0000010000000000\n faulting: mov rax, [rbx]', vector: 14, err: 0, at: 'faulting' },
  {
    name: '#TS(TSS selector): IST slot beyond the TSS limit', code: 'faulting: int 0x42', vector: 10, err: SEL.tss, at: 'faulting',
    setup: (m) => { m.setGate64(0x42, { ist: 2 }); m.cpu.segLimit[TR] = 0x2b; },
  },
];

for (const k of ERR_CASES) {
  test(`64-bit delivery pushes an error code exactly for the vectors that have one: ${k.name} (SDM 6.13, table 6-1)`, () => {
    const m = new TestMachine();
    m.enterLong64();
    k.setup?.(m);
    const L = m.asm(`.code64\n ${k.code}\n after: hlt`, CODE);
    const ripAt = BigInt(k.at === 'faulting' ? L.faulting : L.after);
    m.runToHalt();
    assert.equal(m.stubVector(), k.vector);
    const c = m.cpu;
    if (k.err === null) {
      assert.equal(reg(c, RSP), BigInt(KSTACK - 40));
      assert.deepEqual(m.stack64(2), [ripAt, BigInt(SEL.code64)]);
    } else {
      assert.equal(reg(c, RSP), BigInt(KSTACK - 48));
      assert.deepEqual(m.stack64(3), [BigInt(k.err), ripAt, BigInt(SEL.code64)]);
    }
  });
}

test('owner-injected exceptions push the error code the owner gives, at the current RIP', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  c.injectException(13, 0x10);
  assert.equal(rip(c), BigInt(STUBS + 16 * 13), 'delivered at once: RIP is at the handler');
  m.runToHalt();
  assert.equal(m.stubVector(), 13);
  assert.deepEqual(m.stack64(2), [0x10n, BigInt(CODE)]);
  const m2 = new TestMachine();
  m2.enterLong64();
  m2.cpu.injectException(0x20);
  m2.runToHalt();
  assert.equal(m2.stubVector(), 0x20);
  assert.deepEqual(m2.stack64(2), [BigInt(CODE), BigInt(SEL.code64)]);
});

// ---------------------------------------------------------------- double and triple faults

test('#PF while delivering #PF (kernel stack unmapped) becomes #DF(0) on its IST stack; CR2 holds the second fault address (SDM 6.15 #DF, table 6-5)', () => {
  const m = new TestMachine();
  m.enterLong64();
  m.setGate64(8, { ist: 1 });
  const c = m.cpu;
  const badStack = 0x0000010000001000n; // not mapped
  setReg(c, RSP, badStack);
  const L = m.asm('.code64\n mov rbx, 0x0000020000000000\n faulting: mov rax, [rbx]', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 8);
  assert.equal(reg(c, RSP), BigInt(IST1 - 48));
  assert.deepEqual(m.stack64(6), [0n, BigInt(L.faulting), BigInt(SEL.code64), 2n, badStack, BigInt(SEL.data)]);
  assert.equal(cr2(c), badStack - 8n, 'the push of the #PF frame faulted');
  assert.equal(m.host.of('shutdown').length, 0);
});

test('triple fault: a fault while delivering #DF shuts the CPU down and tells the owner once (SDM 6.15 #DF)', async (t) => {
  const setups: [string, (m: TestMachine) => void][] = [
    ['IDT unmapped', (m) => { m.cpu.idtrBaseLo = 0; m.cpu.idtrBaseHi = 0x100; }],
    ['kernel stack and #DF IST stack unmapped', (m) => { m.setGate64(8, { ist: 2 }); m.installTss64(BigInt(KSTACK), BigInt(IST1), 0x0000010000002000n); setReg(m.cpu, RSP, 0x0000010000001000n); }],
  ];
  for (const [name, setup] of setups) {
    await t.test(name, () => {
      const m = new TestMachine();
      m.enterLong64();
      setup(m);
      m.asm('.code64\n mov rbx, 0x0000020000000000\n mov rax, [rbx]\n hlt', CODE);
      const c = m.cpu;
      c.run(1000);
      assert.equal(c.runState, CpuRunState.Shutdown);
      const shut = m.host.of('shutdown');
      assert.equal(shut.length, 1);
      assert.match(shut[0].reason, /triple fault/);
      const icount = c.icount;
      assert.equal(c.run(1000), 0, 'a shut-down CPU executes nothing');
      assert.equal(c.icount, icount);
      assert.equal(m.host.of('shutdown').length, 1);
      assert.equal(m.host.of('halt').length, 0);
    });
  }
});

// ---------------------------------------------------------------- external interrupts, shadows, HLT

test('external interrupts wait while IF=0; STI; NOP takes the interrupt after the NOP (STI shadow, SDM STI)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  m.host.pending.push(0x40);
  c.intrCheck = true;
  const L = m.asm(`.code64
      nop
      nop
      hlt
    resume_here:
      sti
      nop
    after_nop:
      hlt`, CODE);
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.resume_here));
  assert.equal(m.host.of('ack').length, 0, 'IF=0: not acknowledged');
  assert.equal(c.run(100), 0, 'IF=0: HLT is not woken');
  m.resume();
  m.runToHalt();
  assert.equal(m.stubVector(), 0x40);
  assert.deepEqual(m.stack64(3), [BigInt(L.after_nop), BigInt(SEL.code64), 0x202n]);
  assert.deepEqual(m.host.of('ack'), [{ kind: 'ack', vector: 0x40 }]);
  assert.equal(c.getRflags() & IF, 0);
});

test('STI; HLT: the HLT runs, the owner is told, and the interrupt wakes the CPU with RIP after the HLT', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  m.host.pending.push(0x41);
  c.intrCheck = true;
  const L = m.asm('.code64\n sti\n halt_insn: hlt\n after_hlt:', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x41);
  assert.equal(m.host.of('halt').length, 2, 'the HLT, then the handler stub');
  assert.deepEqual(m.stack64(1), [BigInt(L.after_hlt)]);
});

test('HLT with IF=1 stays halted until the owner signals an interrupt, then delivers it', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  c.setRflags(0x202);
  const L = m.asm('.code64\n hlt\n after_hlt:', CODE);
  m.runToHalt();
  assert.equal(c.run(100), 0);
  assert.equal(c.runState, CpuRunState.Halted);
  m.host.pending.push(0x42);
  c.intrCheck = true;
  m.runToHalt();
  assert.equal(m.stubVector(), 0x42);
  assert.deepEqual(m.stack64(1), [BigInt(L.after_hlt)]);
  assert.equal(m.host.of('halt').length, 2, 'the HLT and the handler stub');
});

test('MOV SS inhibits interrupts for one instruction; an ordinary segment load does not (SDM MOV, 6.8.3)', () => {
  for (const seg of ['ss', 'ds']) {
    const m = new TestMachine();
    m.enterLong64();
    const c = m.cpu;
    c.setRflags(0x202);
    setReg(c, RAX, SEL.data);
    const L = m.asm(`.code64\n mov ${seg}, ax\n nop\n after_nop: nop\n hlt`, CODE);
    assert.equal(c.run(1), 1);
    m.host.pending.push(0x43); // arrives right after the segment load
    c.intrCheck = true;
    c.run(1);
    m.runToHalt();
    assert.equal(m.stubVector(), 0x43);
    const expected = seg === 'ss' ? L.after_nop : L.after_nop - 1;
    assert.equal(m.stack64(1)[0], BigInt(expected), `mov ${seg}`);
  }
});

// ---------------------------------------------------------------- NMI

test('NMI: delivered with IF=0 through vector 2; a second NMI waits until IRET (SDM 6.7.1)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  // Handler: count, ask the owner (which raises another NMI the first time), log the count, return.
  m.asm(`.code64
      inc dword ptr [${DATA}]
      vmcall
      mov eax, [${DATA}]
      mov ecx, [${DATA + 4}]
      mov [${DATA + 8} + rcx*4], eax
      inc dword ptr [${DATA + 4}]
      iretq`, HANDLER);
  m.setGate64(2, { offset: HANDLER });
  let injected = false;
  m.host.onHypercall = () => { if (!injected) { injected = true; c.injectNmi(); } };
  const L = m.asm('.code64\n nop\n hlt\n done:', CODE);
  c.injectNmi();
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.done));
  assert.equal(m.mem.read32(DATA), 2, 'two NMIs handled');
  assert.deepEqual([m.mem.read32(DATA + 8), m.mem.read32(DATA + 12)], [1, 2], 'the second did not nest inside the first');
  assert.equal(c.nmiBlocked, false);
  assert.equal(reg(c, RSP), BigInt(KSTACK));
});

test('a blocked NMI does not wake a HLT inside the NMI handler (SDM 6.7.1: NMIs are blocked until IRET)', {
}, () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  m.asm('.code64\n hlt', CODE);
  c.injectNmi();
  m.runToHalt();
  assert.equal(m.stubVector(), 2);
  c.injectNmi();
  assert.equal(c.run(100), 0);
  assert.equal(c.runState, CpuRunState.Halted);
  assert.equal(m.stubVector(), 2);
});

// ---------------------------------------------------------------- exception intercept

test('exceptionIntercept: an intercepted fault is not delivered, RIP stays on the instruction, run() returns', () => {
  const m = new TestMachine();
  m.enterLong64();
  const c = m.cpu;
  const seen: [number, number][] = [];
  c.exceptionIntercept = (v, e) => { seen.push([v, e]); return v === 6 || v === 13; };
  const L = m.asm(`.code64
      mov ax, 0x1000
    gp_insn:
      mov ds, ax
    ud_insn:
      ud2
    de_insn:
      xor ecx, ecx
      div ecx`, CODE);
  c.run(100);
  assert.equal(c.runState, CpuRunState.Running);
  assert.equal(rip(c), BigInt(L.gp_insn));
  assert.equal(reg(c, RSP), BigInt(KSTACK), 'nothing pushed');
  assert.deepEqual(seen, [[13, 0x1000]]);
  setRip(c, L.ud_insn);
  c.run(100);
  assert.equal(rip(c), BigInt(L.ud_insn));
  assert.deepEqual(seen, [[13, 0x1000], [6, 0]]);
  setRip(c, L.de_insn);
  m.runToHalt();
  assert.equal(m.stubVector(), 0, 'not intercepted (the intercept returned false): delivered');
  assert.deepEqual(seen.at(-1), [0, 0]);
});
