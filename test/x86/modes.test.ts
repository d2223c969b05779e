/**
 * Mode switches a kernel performs on its way to long mode and back, run as real
 * guest code (SDM vol. 3 ch. 9.9 "Mode switching", 9.8.5 "Initializing IA-32e
 * mode", 9.8.5.4 "Switching out of IA-32e mode"), and the #GP(0) cases of MOV
 * to CR0/CR4 and WRMSR(EFER) listed in SDM vol. 2 "MOV—Move to/from Control
 * Registers" and vol. 3 2.5 / 4.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuRunState } from '../../src/x86/cpu.js';
import {
  CR0_PE, CR0_PG, CR4_PAE, CR4_PCIDE, CS, DS, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, SS,
} from '../../src/x86/regs.js';
import { BASED_SEG_BASE, CODE, DATA, GDT, KSTACK, SEL, TestMachine, UCODE, USTACK, reg, rip, setReg } from './helpers/test-machine.js';

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4;
/** Segment-cache attributes (VMX layout, accessed bit set by the load) of the standard GDT's segments. */
const ATTR_CODE32 = 0xc09b, ATTR_CODE64 = 0xa09b, ATTR_DATA32 = 0xc093, ATTR_REAL_DATA = 0x93;

function seg(m: TestMachine, s: number): { sel: number; base: number; limit: number; attr: number } {
  const c = m.cpu;
  return { sel: c.segSel[s], base: c.segBaseLo[s] >>> 0, limit: c.segLimit[s] >>> 0, attr: c.segAttr[s] };
}

test('real mode -> protected mode: MOV CR0.PE then a far JMP; DS keeps its real-mode base until reloaded (SDM 9.9.1)', () => {
  const m = new TestMachine();
  m.enterReal();
  const X = 0xaaaa5555, Y = 0x12345678;
  m.mem.write32(DATA + 0x500, X); // what DS:0x500 reads while DS holds its real-mode base 0x30000
  m.mem.write32(0x500, Y); // what it reads after DS is reloaded with a flat selector
  const L = m.asm(`
    .code16
    start:
      cli
      mov ax, ${DATA >> 4}
      mov ds, ax
      lgdt cs:[gdtr - start]
      mov eax, cr0
      or eax, 1
      mov cr0, eax
      mov ebx, [0x500]        # PE=1 but DS's cache is still the real-mode one
      data32 jmp 0x08:pm32
    .p2align 2
    gdtr: .word 0x67
          .long ${GDT}
    .code32
    pm32:
      mov ecx, [0x500]        # 32-bit code, DS still not reloaded
      hlt
    after1:
      mov ax, 0x10
      mov ds, ax
      mov edx, [0x500]
      hlt
    after2:
  `, CODE);
  m.runToHalt();
  const c = m.cpu;
  assert.equal(c.cr0 & CR0_PE, CR0_PE);
  assert.equal(c.rlo[RBX] >>> 0, X, 'DS real-mode base used after PE=1');
  assert.equal(c.rlo[RCX] >>> 0, X, 'DS real-mode base still used in 32-bit code');
  assert.deepEqual(seg(m, DS), { sel: DATA >> 4, base: DATA, limit: 0xffff, attr: ATTR_REAL_DATA });
  assert.deepEqual(seg(m, CS), { sel: SEL.code32, base: 0, limit: 0xffffffff, attr: ATTR_CODE32 });
  assert.equal(c.codeSize, 32);
  assert.equal(c.cpl, 0);
  assert.equal(rip(c), BigInt(L.after1));
  assert.equal(c.gdtrBaseLo, GDT);
  assert.equal(c.gdtrLimit, 0x67);
  // Loading CS set the descriptor's accessed bit in memory (SDM 3.4.5.1).
  assert.equal(m.mem.read8(GDT + SEL.code32 + 5), 0x9b);

  m.resume();
  m.runToHalt();
  assert.equal(c.rlo[RDX] >>> 0, Y, 'DS reloaded: base 0');
  assert.deepEqual(seg(m, DS), { sel: SEL.data, base: 0, limit: 0xffffffff, attr: ATTR_DATA32 });
  assert.equal(rip(c), BigInt(L.after2));
});

test('AP start-up: startup(vector) enters real mode at vector<<12; a 66h far JMP reaches 32-bit code (SDM 8.4.4.1, 10.4.4)', () => {
  const m = new TestMachine();
  m.writeGdt();
  m.cpu.init();
  assert.equal(m.cpu.runState, CpuRunState.WaitForSipi);
  assert.equal(m.cpu.run(100), 0, 'a CPU waiting for SIPI executes nothing');
  const L = m.asm(`
    .code16
    tramp:
      cli
      mov ax, cs
      mov ds, ax
      lgdt [gdtr - tramp]
      mov eax, cr0
      or al, 1
      mov cr0, eax
      data32 jmp 0x08:pm32
    .p2align 2
    gdtr: .word 0x67
          .long ${GDT}
    .code32
    pm32:
      mov ax, 0x10
      mov ds, ax
      mov es, ax
      mov ss, ax
      mov esp, ${KSTACK}
      hlt
    done:
  `, CODE);
  m.cpu.startup(CODE >> 12);
  const c = m.cpu;
  assert.equal(c.runState, CpuRunState.Running);
  assert.deepEqual(seg(m, CS), { sel: CODE >> 4, base: CODE, limit: 0xffff, attr: 0x9b });
  assert.equal(rip(c), 0n);
  assert.equal(c.codeSize, 16);
  m.runToHalt();
  // The far JMP really was the 66h-prefixed form: 66 EA, a 32-bit offset, a 16-bit selector.
  const code = m.mem.read(L.tramp, 64);
  const at = code.findIndex((b, k) => b === 0x66 && code[k + 1] === 0xea);
  assert.ok(at >= 0);
  assert.deepEqual([...code.subarray(at + 2, at + 8)], [L.pm32 & 0xff, (L.pm32 >> 8) & 0xff, (L.pm32 >> 16) & 0xff, L.pm32 >>> 24, SEL.code32, 0]);
  assert.equal(rip(c), BigInt(L.done));
  assert.equal(c.codeSize, 32);
  assert.deepEqual(seg(m, CS), { sel: SEL.code32, base: 0, limit: 0xffffffff, attr: ATTR_CODE32 });
  assert.deepEqual(seg(m, SS), { sel: SEL.data, base: 0, limit: 0xffffffff, attr: ATTR_DATA32 });
  assert.equal(reg(c, RSP), BigInt(KSTACK));
});

test('32-bit -> PAE + EFER.LME -> CR0.PG gives compatibility mode (LMA=1, 32-bit code), then a far JMP to an L=1 segment gives 64-bit mode (SDM 9.8.5)', () => {
  const m = new TestMachine();
  m.enterProtected32();
  const pt = m.defaultPageTables('long4');
  setReg(m.cpu, RBX, pt.root);
  const L = m.asm(`
    .code32
      mov eax, cr4
      or eax, 0x20
      mov cr4, eax
      mov cr3, ebx
      mov ecx, 0xc0000080
      rdmsr
      or eax, 0x100
      wrmsr
      mov eax, cr0
      or eax, 0x80000000
      mov cr0, eax
      hlt
    compat1:
      call sub32
      hlt
    compat2:
      jmp 0x18:lm64
    sub32:
      mov eax, 0x32
      ret
    .code64
    lm64:
      mov rax, 0x1122334455667788
      lea rbx, [rip]
    here:
      hlt
    done:
  `, CODE);
  const c = m.cpu;
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.compat1));
  assert.equal(c.efer, EFER_LME | EFER_LMA, 'CR0.PG with LME and PAE activates IA-32e mode');
  assert.equal(c.cr0 & CR0_PG, CR0_PG);
  assert.equal(c.codeSize, 32, 'CS still L=0: compatibility mode');
  assert.ok(c.longMode);
  assert.equal(c.cpl, 0);
  m.resume();
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.compat2));
  assert.equal(c.rlo[RAX], 0x32, 'a 32-bit CALL/RET pair works in compatibility mode');
  assert.equal(reg(c, RSP), BigInt(KSTACK));
  m.resume();
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.done));
  assert.equal(c.codeSize, 64);
  assert.deepEqual(seg(m, CS), { sel: SEL.code64, base: 0, limit: 0xffffffff, attr: ATTR_CODE64 });
  assert.equal(reg(c, RAX), 0x1122334455667788n);
  assert.equal(reg(c, RBX), BigInt(L.here));
});

test('64-bit -> compatibility mode by a far RET to a 32-bit code segment, and back by a far JMP (SDM 5.8.3, RET)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const L = m.asm(`
    .code64
      push 0x08
      lea rax, [rip + compat]
      push rax
      rex64 retf
    .code32
    compat:
      mov ecx, esp
      mov eax, 0x7fffffff
      add eax, 1              # 32-bit arithmetic: OF set, upper RAX bits are not touched by this mode's semantics
      hlt
    c1:
      jmp 0x18:back64
    .code64
    back64:
      mov rdx, rsp
      hlt
    done:
  `, CODE);
  const c = m.cpu;
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.c1));
  assert.equal(c.codeSize, 32);
  assert.ok(c.longMode, 'LMA stays set in compatibility mode');
  assert.deepEqual(seg(m, CS), { sel: SEL.code32, base: 0, limit: 0xffffffff, attr: ATTR_CODE32 });
  assert.equal(c.rlo[RCX], KSTACK, 'RETFQ popped 16 bytes');
  assert.equal(c.rlo[RAX] >>> 0, 0x80000000);
  m.resume();
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.done));
  assert.equal(c.codeSize, 64);
  assert.equal(c.segSel[CS], SEL.code64);
  assert.equal(reg(c, RDX), BigInt(KSTACK));
});

test('leaving IA-32e mode from compatibility mode: clearing CR0.PG clears EFER.LMA, then LME can be cleared (SDM 9.8.5.4)', () => {
  const m = new TestMachine();
  m.enterLong64();
  m.loadSeg(CS, SEL.code32);
  m.cpu.updateMode();
  const L = m.asm(`
    .code32
      mov eax, cr0
      and eax, 0x7fffffff
      mov cr0, eax
      hlt
    off:
      mov ecx, 0xc0000080
      rdmsr
      and eax, 0xfffffeff
      wrmsr
      hlt
    done:
  `, CODE);
  const c = m.cpu;
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.off));
  assert.equal(c.cr0 & CR0_PG, 0);
  assert.equal(c.efer & (EFER_LMA | EFER_LME), EFER_LME);
  assert.equal(c.longMode, false);
  assert.equal(c.codeSize, 32);
  m.resume();
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.done));
  assert.equal(c.efer, EFER_NXE | EFER_SCE);
});

test('hidden segment state: a based DS loaded in compatibility mode is ignored in 64-bit mode and applies again after returning (SDM 3.4.4)', () => {
  const m = new TestMachine();
  m.enterLong64();
  m.loadSeg(CS, SEL.code32);
  m.cpu.updateMode();
  m.mem.write32(BASED_SEG_BASE + 0x500, 0xba5eba5e);
  m.mem.write32(0x500, 0x0000f1a7);
  const L = m.asm(`
    .code32
      mov ax, ${SEL.based}
      mov ds, ax
      mov ebx, [0x500]          # compatibility mode: DS base applies
      jmp 0x18:lm64
    .code64
    lm64:
      mov ecx, [0x500]          # 64-bit mode: DS base is treated as 0
      push 0x08
      lea rax, [rip + compat]
      push rax
      rex64 retf
    .code32
    compat:
      mov edx, [0x500]          # DS was never reloaded: its cached base applies again
      hlt
    done:
  `, CODE);
  m.runToHalt();
  const c = m.cpu;
  assert.equal(rip(c), BigInt(L.done));
  assert.deepEqual([c.rlo[RBX] >>> 0, c.rlo[RCX] >>> 0, c.rlo[RDX] >>> 0], [0xba5eba5e, 0xf1a7, 0xba5eba5e]);
  assert.deepEqual(seg(m, DS), { sel: SEL.based, base: BASED_SEG_BASE, limit: 0xffffffff, attr: ATTR_DATA32 });
});

test('SYSCALL and SYSRETQ switch CPL with the STAR selectors, RCX/R11 and FMASK (SDM SYSCALL, SYSRET)', () => {
  const m = new TestMachine();
  m.enterLong64({ cpl: 3 });
  const c = m.cpu;
  c.starHi = (0x30 << 16) | SEL.code64; // SYSRET base 0x30 (user SS 0x3b, CS 0x43); SYSCALL CS 0x18, SS 0x20
  c.fmask = 0x200; // clear IF on entry
  c.setRflags(0x202);
  m.asm(`.code64
      mov r8, rcx
      mov r9, r11
      hlt
      sysretq`, CODE);
  c.lstarLo = CODE;
  const U = m.asm('.code64\n syscall\n after: mov rbx, rsp\n ud2', UCODE);
  m.runToHalt();
  assert.equal(c.cpl, 0);
  assert.deepEqual(seg(m, CS), { sel: SEL.code64, base: 0, limit: 0xffffffff, attr: 0xa09b });
  assert.equal(c.segSel[SS], SEL.code64 + 8);
  assert.equal(reg(c, 8), BigInt(U.after), 'RCX = return address');
  assert.equal(reg(c, 9), 0x202n, 'R11 = RFLAGS');
  assert.equal(c.getRflags(), 0x2, 'RFLAGS masked by FMASK');
  assert.equal(c.codeSize, 64);
  m.resume();
  m.runToHalt();
  assert.equal(m.stubVector(), 6, 'back in user mode, UD2 faults');
  assert.equal(reg(c, RBX), BigInt(USTACK));
  assert.deepEqual(m.stack64(5), [BigInt(U.after) + 3n, 0x43n, 0x202n, BigInt(USTACK), 0x3bn]);
});

// ---------------------------------------------------------------- #GP(0) cases

interface GpCase {
  name: string;
  mode: 'prot32' | 'prot32-paged' | 'long64' | 'compat';
  /** Code whose first instruction must raise #GP(0). */
  code: string;
  regs?: Record<number, bigint>;
  setup?: (m: TestMachine) => void;
}

/** Runs `code`, which must fault with #GP(0) on its first instruction and change none of CR0/CR3/CR4/EFER. */
function expectGp(k: GpCase): void {
  const m = new TestMachine();
  if (k.mode === 'long64' || k.mode === 'compat') m.enterLong64();
  else m.enterProtected32(k.mode === 'prot32-paged' ? 'legacy32' : 'none');
  if (k.mode === 'compat') { m.loadSeg(CS, SEL.code32); m.cpu.updateMode(); }
  k.setup?.(m);
  const c = m.cpu;
  for (const [r, v] of Object.entries(k.regs ?? {})) setReg(c, Number(r), v);
  const bits = k.mode === 'long64' ? '.code64' : '.code32';
  const L = m.asm(`${bits}\nfaulting:\n${k.code}\nhlt\n`, CODE);
  const before = { cr0: c.cr0, cr3: c.cr3Lo, cr4: c.cr4, efer: c.efer };
  m.runToHalt();
  assert.equal(m.stubVector(), 13, `${k.name}: #GP expected`);
  if (c.codeSize === 64) {
    const [err, savedRip] = m.stack64(2);
    assert.equal(err, 0n, `${k.name}: error code`);
    assert.equal(savedRip, BigInt(L.faulting), `${k.name}: saved RIP is the faulting instruction`);
  } else {
    const [err, savedEip] = m.stack32(2);
    assert.equal(err, 0, `${k.name}: error code`);
    assert.equal(savedEip, L.faulting, `${k.name}: saved EIP is the faulting instruction`);
  }
  assert.deepEqual({ cr0: c.cr0, cr3: c.cr3Lo, cr4: c.cr4, efer: c.efer }, before, `${k.name}: state unchanged`);
}

const GP_CASES: GpCase[] = [
  { name: 'CR0.PG=1 with PE=0', mode: 'prot32', code: 'mov cr0, eax', regs: { [RAX]: 0x80000010n } },
  { name: 'CR0.NW=1 with CD=0', mode: 'prot32', code: 'mov cr0, eax', regs: { [RAX]: 0x20000011n } },
  {
    name: 'CR0.PG=1 with EFER.LME=1 and CR4.PAE=0', mode: 'prot32', code: 'mov cr0, eax',
    regs: { [RAX]: 0x80000011n }, setup: (m) => { m.cpu.efer = EFER_LME; },
  },
  { name: 'CR4 reserved bit 15', mode: 'prot32', code: 'mov cr4, eax', regs: { [RAX]: 1n << 15n } },
  { name: 'CR4 reserved bit 31', mode: 'prot32', code: 'mov cr4, eax', regs: { [RAX]: 1n << 31n } },
  { name: 'CR4.PCIDE=1 outside IA-32e mode', mode: 'prot32', code: 'mov cr4, eax', regs: { [RAX]: BigInt(CR4_PCIDE) } },
  { name: 'WRMSR EFER changing LME while CR0.PG=1', mode: 'prot32-paged', code: 'wrmsr', regs: { [RCX]: 0xc0000080n, [RAX]: 0x100n, [RDX]: 0n } },
  { name: 'WRMSR EFER reserved bit 1', mode: 'prot32', code: 'wrmsr', regs: { [RCX]: 0xc0000080n, [RAX]: 2n, [RDX]: 0n } },
  { name: 'clearing CR4.PAE in IA-32e mode', mode: 'long64', code: 'mov cr4, rax', regs: { [RAX]: 0x200n } },
  { name: 'CR4 bits 63:32 in 64-bit mode', mode: 'long64', code: 'mov cr4, rax', regs: { [RAX]: (1n << 32n) | 0x220n } },
  { name: 'CR0 bits 63:32 in 64-bit mode', mode: 'long64', code: 'mov cr0, rax', regs: { [RAX]: (1n << 32n) | 0x80010031n } },
  { name: 'clearing CR0.PG in 64-bit mode', mode: 'long64', code: 'mov cr0, rax', regs: { [RAX]: 0x00010031n } },
  { name: 'WRMSR EFER clearing LME in IA-32e mode', mode: 'long64', code: 'wrmsr', regs: { [RCX]: 0xc0000080n, [RAX]: 0xc01n, [RDX]: 0n } },
  {
    name: 'CR4.PCIDE 0->1 while CR3[11:0] != 0', mode: 'long64', code: 'mov cr4, rax',
    regs: { [RAX]: BigInt(CR4_PAE | CR4_PCIDE | 0x200) }, setup: (m) => { m.cpu.cr3Lo |= 5; },
  },
  {
    name: 'clearing CR0.PG while CR4.PCIDE=1 (compatibility mode)', mode: 'compat', code: 'mov cr0, eax',
    regs: { [RAX]: 0x00010031n }, setup: (m) => { m.cpu.cr4 |= CR4_PCIDE; },
  },
];

for (const k of GP_CASES) {
  test(`MOV CR / WRMSR EFER #GP(0): ${k.name}`, () => expectGp(k));
}

test('CR0.PG=1 with EFER.LME=1 and PAE=1 while CS.L=1 raises #GP(0) (SDM MOV CR0: cannot enter IA-32e mode from L=1 code)', () => {
  // Only reachable by a CS cache with L=1 outside IA-32e mode (e.g. left over from a far JMP in legacy mode).
  expectGp({
    name: 'PG with CS.L=1', mode: 'prot32', code: 'mov cr0, eax', regs: { [RAX]: 0x80000011n },
    setup: (m) => { m.cpu.efer = EFER_LME; m.cpu.cr4 = CR4_PAE; m.cpu.cr3Lo = m.defaultPageTables('long4').root; m.cpu.segAttr[CS] |= 1 << 13; },
  });
});
