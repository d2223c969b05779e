/**
 * The CPU's owner interface (src/x86/host.ts): owner page permissions and the
 * memory-fault report (GPA, GVA, access, origin, instruction length and bytes),
 * instruction abandonment and replay, port I/O, MMIO, CPUID, MSRs the CPU does
 * not own, hypercalls, HLT, CR8, and self-modifying code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuRunState } from '../../src/x86/cpu.js';
import { ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_READ, ACCESS_WRITE, AccessOrigin, MBEC_ENABLE, MBEC_ONLY_WITH_SMEP } from '../../src/x86/host.js';
import { CR4_SMEP, CS, SS } from '../../src/x86/regs.js';
import {
  CODE, IDT, KSTACK, P, SEL, TestMachine, UCODE, USTACK, W, reg, rip, setReg, split,
} from './helpers/test-machine.js';

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, R8 = 8, R9 = 9;
const VA = 0x0000010000000000n; // PML4 slot 2
const PA = 0x500000, PA2 = 0x501000;
const pfn = (pa: number) => Math.floor(pa / 4096);

function machine(): TestMachine {
  const m = new TestMachine();
  m.enterLong64();
  m.pt!.map(VA, PA, P | W);
  m.pt!.map(VA + 0x1000n, PA2, P | W);
  m.mem.write32(PA + 0x678, 0xfeedf00d);
  return m;
}

function faults(m: TestMachine) { return m.host.of('memFault').map((e) => e.info); }

test('owner denies a read: memFault with exact GPA, GVA, access, origin, length and bytes; the instruction does not complete; replay after granting', () => {
  const m = machine();
  const c = m.cpu;
  m.host.perms.set(pfn(PA), ACCESS_WRITE | ACCESS_EXEC);
  setReg(c, RBX, VA); setReg(c, RAX, 0xdeadn);
  const L = m.asm('.code64\n faulting: mov eax, [rbx + 0x678]\n hlt', CODE);
  c.run(100);
  assert.equal(c.runState, CpuRunState.Running);
  assert.equal(rip(c), BigInt(L.faulting));
  assert.equal(reg(c, RAX), 0xdeadn);
  const [lo, hi] = split(VA + 0x678n);
  assert.deepEqual(faults(m), [{
    gpa: PA + 0x678, gvaLo: lo, gvaHi: hi, gvaValid: true, access: ACCESS_READ, origin: AccessOrigin.Guest,
    insnLength: 6, insnBytes: new Uint8Array([0x8b, 0x83, 0x78, 0x06, 0x00, 0x00]),
  }]);
  m.host.perms.delete(pfn(PA));
  c.permissionsChanged();
  m.runToHalt();
  assert.equal(reg(c, RAX), 0xfeedf00dn);
  assert.equal(faults(m).length, 1);
});

test('a revocation takes effect after permissionsChanged() even for a page already used (fast path dropped)', () => {
  const m = machine();
  const c = m.cpu;
  setReg(c, RBX, VA);
  const L = m.asm('.code64\n again: mov eax, [rbx + 0x678]\n mov dword ptr [rbx + 0x10], 1\n hlt\n jmp again', CODE);
  m.runToHalt();
  assert.equal(faults(m).length, 0);
  m.host.perms.set(pfn(PA), ACCESS_READ);
  c.permissionsChanged();
  m.resume();
  c.run(100);
  assert.equal(rip(c), BigInt(L.again) + 6n, 'the read completed, the write did not');
  assert.equal(faults(m).length, 1);
  assert.equal(faults(m)[0].access, ACCESS_WRITE);
  assert.equal(faults(m)[0].gpa, PA + 0x10);
  assert.equal(m.mem.read32(PA + 0x10), 1, 'only the first pass wrote');
  m.mem.write32(PA + 0x10, 0);
  c.run(100);
  assert.equal(m.mem.read32(PA + 0x10), 0, 'still denied on replay');
});

test('owner denies a write: memory and registers unchanged (MOV and PUSH)', () => {
  const m = machine();
  const c = m.cpu;
  m.host.perms.set(pfn(PA), ACCESS_READ);
  setReg(c, RBX, VA);
  const L = m.asm('.code64\n faulting: mov dword ptr [rbx + 0x678], 0x12345678\n hlt', CODE);
  c.run(100);
  assert.equal(rip(c), BigInt(L.faulting));
  assert.equal(m.mem.read32(PA + 0x678), 0xfeedf00d);
  const f = faults(m);
  assert.equal(f.length, 1);
  assert.equal(f[0].access, ACCESS_WRITE);
  assert.equal(f[0].gpa, PA + 0x678);
  assert.equal(f[0].insnLength, 10);
  assert.deepEqual(f[0].insnBytes, new Uint8Array([0xc7, 0x83, 0x78, 0x06, 0, 0, 0x78, 0x56, 0x34, 0x12]));

  const m2 = machine();
  m2.host.perms.set(pfn(KSTACK - 8), ACCESS_READ);
  setReg(m2.cpu, RAX, 0x55n);
  const L2 = m2.asm('.code64\n faulting: push rax\n hlt', CODE);
  m2.cpu.run(100);
  assert.equal(rip(m2.cpu), BigInt(L2.faulting));
  assert.equal(reg(m2.cpu, RSP), BigInt(KSTACK), 'RSP unchanged');
  assert.equal(m2.mem.read64(KSTACK - 8), 0n);
  const [lo, hi] = split(KSTACK - 8);
  assert.deepEqual(faults(m2).map((i) => [i.gpa, i.gvaLo, i.gvaHi, i.access, i.insnLength]), [[KSTACK - 8, lo, hi, ACCESS_WRITE, 1]]);
});

test('owner denies the second page of a page-crossing write: nothing is written to the first page either', {
}, () => {
  const m = machine();
  const c = m.cpu;
  m.host.perms.set(pfn(PA2), ACCESS_READ | ACCESS_EXEC);
  setReg(c, RBX, VA); setReg(c, RAX, 0x11223344n);
  const L = m.asm('.code64\n faulting: mov [rbx + 0xffe], eax\n hlt', CODE);
  c.run(100);
  assert.equal(rip(c), BigInt(L.faulting));
  assert.equal(faults(m).length, 1);
  assert.equal(faults(m)[0].gpa, PA2);
  assert.equal(m.mem.read16(PA + 0xffe), 0, 'first page untouched');
});

test('owner denies execution: memFault EXEC at the fetch address with RIP on it; no bytes of another instruction are reported', async (t) => {
  const m = machine();
  const c = m.cpu;
  m.load(PA + 0x10, new Uint8Array([0xf4]));
  m.host.perms.set(pfn(PA), ACCESS_READ | ACCESS_WRITE);
  setReg(c, RBX, VA + 0x10n);
  m.asm('.code64\n jmp rbx', CODE);
  c.run(100);
  assert.equal(rip(c), VA + 0x10n, 'the JMP completed; the fetch at its target was refused');
  const f = faults(m);
  assert.equal(f.length, 1);
  const [lo, hi] = split(VA + 0x10n);
  assert.deepEqual([f[0].gpa, f[0].gvaLo, f[0].gvaHi, f[0].gvaValid, f[0].access, f[0].origin],
    [PA + 0x10, lo, hi, true, ACCESS_EXEC, AccessOrigin.Guest]);
  await t.test('the report does not describe the previous instruction (the JMP)', {
  }, () => {
    assert.equal(f[0].insnLength, 0);
    assert.equal(f[0].insnBytes.length, 0);
  });
  m.host.perms.delete(pfn(PA));
  c.permissionsChanged();
  m.runToHalt();
  assert.equal(rip(c), VA + 0x11n);
});

test('owner denies a paging-structure page: the walk reports origin PageWalk with the entry\'s GPA (read, and A-bit write)', () => {
  for (const [perm, access] of [[0, ACCESS_READ], [ACCESS_READ, ACCESS_WRITE]] as const) {
    const m = machine();
    const c = m.cpu;
    const pte = m.pt!.entryAddr(VA, 1);
    m.host.perms.set(pfn(pte & ~0xfff), perm);
    setReg(c, RBX, VA); setReg(c, RAX, 0xdeadn);
    const L = m.asm('.code64\n faulting: mov eax, [rbx + 0x678]\n hlt', CODE);
    c.run(100);
    assert.equal(rip(c), BigInt(L.faulting));
    assert.equal(reg(c, RAX), 0xdeadn);
    const f = faults(m);
    assert.equal(f.length, 1);
    const [lo, hi] = split(VA + 0x678n);
    assert.deepEqual([f[0].gpa, f[0].access, f[0].origin, f[0].gvaLo, f[0].gvaHi, f[0].insnLength],
      [pte, access, AccessOrigin.PageWalk, lo, hi, 6], `page-table page perms ${perm}`);
    assert.equal(m.mem.read64(pte) & 0x20n, 0n, 'A not set');
  }
});

test('IN is abandoned by the owner and replayed: the port is read again and the value lands in AL', () => {
  const m = machine();
  const c = m.cpu;
  let first = true;
  m.host.onIoRead = () => { if (first) { first = false; c.abortInstruction(); } };
  m.host.ioValue = (port, size) => (port === 0x60 && size === 1 ? 0x5a : 0);
  setReg(c, RAX, 0x1234n);
  const L = m.asm('.code64\n faulting: in al, 0x60\n hlt', CODE);
  c.run(100);
  assert.equal(rip(c), BigInt(L.faulting));
  assert.equal(reg(c, RAX), 0x1234n);
  m.runToHalt();
  assert.equal(reg(c, RAX), 0x125an);
  assert.deepEqual(m.host.of('ioRead'), [{ kind: 'ioRead', port: 0x60, size: 1 }, { kind: 'ioRead', port: 0x60, size: 1 }]);
});

test('IN/OUT sizes and ports; requestStop() from OUT ends run() after the instruction', () => {
  const m = machine();
  const c = m.cpu;
  m.host.ioValue = (_p, size) => (size === 2 ? 0xbeef : 0xcafef00d);
  m.host.onIoWrite = () => c.requestStop();
  setReg(c, RDX, 0x3f8n); setReg(c, RBX, 0x41n);
  const L = m.asm(`.code64
      in ax, dx
      mov r8, rax
      in eax, dx
      mov r9, rax
      mov eax, ebx
      out dx, al
    after_out:
      hlt`, CODE);
  c.run(100);
  assert.equal(rip(c), BigInt(L.after_out));
  assert.equal(reg(c, R8) & 0xffffn, 0xbeefn);
  assert.equal(reg(c, R9), 0xcafef00dn, 'a 32-bit IN zero-extends into RAX');
  assert.deepEqual(m.host.events.filter((e) => e.kind === 'ioRead' || e.kind === 'ioWrite'), [
    { kind: 'ioRead', port: 0x3f8, size: 2 }, { kind: 'ioRead', port: 0x3f8, size: 4 },
    { kind: 'ioWrite', port: 0x3f8, size: 1, value: 0x41 },
  ]);
});

const MMIO = 0xfee00000;

test('accesses to non-RAM physical addresses go to mmioRead/mmioWrite with the right address and size', () => {
  const m = machine();
  const c = m.cpu;
  m.pt!.map(MMIO, MMIO, P | W);
  m.host.mmioValue = (gpa, size) => ({ 1: 0xab, 2: 0xabcd, 4: 0x89abcdef }[size] ?? 0) + 0 * gpa;
  setReg(c, RBX, MMIO); setReg(c, R9, 0x1122334455667788n);
  m.asm(`.code64
      movzx eax, byte ptr [rbx + 1]
      movzx ecx, word ptr [rbx + 2]
      mov edx, [rbx + 4]
      mov byte ptr [rbx + 0x10], 0x12
      mov word ptr [rbx + 0x12], 0x3456
      mov dword ptr [rbx + 0x14], 0x789abcde
      mov [rbx + 0x18], r9
      hlt`, CODE);
  m.runToHalt();
  assert.deepEqual([reg(c, RAX), reg(c, RCX), reg(c, RDX)], [0xabn, 0xabcdn, 0x89abcdefn]);
  assert.deepEqual(m.host.events.filter((e) => e.kind === 'mmioRead' || e.kind === 'mmioWrite'), [
    { kind: 'mmioRead', gpa: MMIO + 1, size: 1 },
    { kind: 'mmioRead', gpa: MMIO + 2, size: 2 },
    { kind: 'mmioRead', gpa: MMIO + 4, size: 4 },
    { kind: 'mmioWrite', gpa: MMIO + 0x10, size: 1, lo: 0x12, hi: 0 },
    { kind: 'mmioWrite', gpa: MMIO + 0x12, size: 2, lo: 0x3456, hi: 0 },
    { kind: 'mmioWrite', gpa: MMIO + 0x14, size: 4, lo: 0x789abcde, hi: 0 },
    { kind: 'mmioWrite', gpa: MMIO + 0x18, size: 8, lo: 0x55667788, hi: 0x11223344 },
  ]);
});

test('a 64-bit MMIO read takes bits 63:32 from cpu.tHi as host.ts documents', {
}, () => {
  const m = machine();
  const c = m.cpu;
  m.pt!.map(MMIO, MMIO, P | W);
  m.host.mmioValue = (_gpa, size) => {
    if (size === 8) c.tHi = 0x11223344;
    return 0x55667788;
  };
  setReg(c, RBX, MMIO);
  m.asm('.code64\n mov rax, [rbx + 8]\n hlt', CODE);
  m.runToHalt();
  assert.deepEqual(m.host.of('mmioRead'), [{ kind: 'mmioRead', gpa: MMIO + 8, size: 8 }]);
  assert.equal(reg(c, RAX), 0x1122334455667788n);
});

test('CPUID asks the owner with EAX/ECX and zero-extends the results into the 64-bit registers', () => {
  const m = machine();
  const c = m.cpu;
  m.host.cpuidValue = (leaf, sub) => [leaf ^ 1, sub + 1, 0x7fffffff, -1];
  setReg(c, RAX, 0xffffffff40000000n); setReg(c, RCX, 0xffffffff00000005n);
  setReg(c, RBX, -1n); setReg(c, RDX, -1n);
  m.asm('.code64\n cpuid\n hlt', CODE);
  m.runToHalt();
  assert.deepEqual(m.host.of('cpuid'), [{ kind: 'cpuid', leaf: 0x40000000, subleaf: 5 }]);
  assert.deepEqual([reg(c, RAX), reg(c, RBX), reg(c, RCX), reg(c, RDX)], [0x40000001n, 6n, 0x7fffffffn, 0xffffffffn]);
});

test('RDMSR/WRMSR of MSRs the CPU does not own go to the owner; a refusal is #GP(0); owned MSRs never reach the owner', () => {
  const m = machine();
  const c = m.cpu;
  m.host.msrs.set(0x40000000, [0x1234, 0x5678]);
  const L = m.asm(`.code64
      mov ecx, 0x40000000
      rdmsr
      mov r8, rax
      mov r9, rdx
      mov eax, 0xaaaa
      mov edx, 0xbbbb
      wrmsr
      mov ecx, 0xc0000082      # LSTAR: the CPU's own
      mov eax, 0x1000
      xor edx, edx
      wrmsr
      rdmsr
      mov ecx, 0x40000001
    faulting:
      rdmsr
      hlt`, CODE);
  m.runToHalt();
  assert.deepEqual([reg(c, R8), reg(c, R9)], [0x1234n, 0x5678n]);
  assert.deepEqual(m.host.msrs.get(0x40000000), [0xaaaa, 0xbbbb]);
  assert.equal(c.lstarLo, 0x1000);
  assert.deepEqual(m.host.events.filter((e) => e.kind === 'rdmsr' || e.kind === 'wrmsr'), [
    { kind: 'rdmsr', index: 0x40000000 },
    { kind: 'wrmsr', index: 0x40000000, lo: 0xaaaa, hi: 0xbbbb },
    { kind: 'rdmsr', index: 0x40000001 },
  ]);
  assert.equal(m.stubVector(), 13);
  assert.deepEqual(m.stack64(2), [0n, BigInt(L.faulting)]);
});

test('VMCALL and VMMCALL reach the owner with RIP already past the instruction; the owner\'s register writes stay', () => {
  const m = machine();
  const c = m.cpu;
  m.host.onHypercall = (amd) => setReg(c, RAX, amd ? 0xaa : 0x11);
  const L = m.asm('.code64\n vmcall\n after1:\n mov r8, rax\n vmmcall\n after2:\n hlt', CODE);
  m.runToHalt();
  assert.deepEqual(m.host.of('hypercall'), [
    { kind: 'hypercall', isVmmcall: false, rip: BigInt(L.after1) },
    { kind: 'hypercall', isVmmcall: true, rip: BigInt(L.after2) },
  ]);
  assert.deepEqual([reg(c, R8), reg(c, RAX)], [0x11n, 0xaan]);
});

test('HLT tells the owner with RIP already past the HLT (host.ts)', {
}, () => {
  const m = machine();
  const L = m.asm('.code64\n nop\n hlt\n after:', CODE);
  m.runToHalt();
  assert.equal(rip(m.cpu), BigInt(L.after));
  assert.deepEqual(m.host.of('halt'), [{ kind: 'halt', rip: BigInt(L.after) }]);
});

test('MOV to/from CR8 goes to the owner\'s TPR (bits 3:0)', () => {
  const m = machine();
  const c = m.cpu;
  m.host.cr8 = 0x7;
  setReg(c, RBX, 0x9n);
  m.asm('.code64\n mov rax, cr8\n mov cr8, rbx\n hlt', CODE);
  m.runToHalt();
  assert.equal(reg(c, RAX), 7n);
  assert.deepEqual(m.host.of('cr8'), [{ kind: 'cr8', value: 9 }]);
});

// ---------------------------------------------------------------- self-modifying code

test('self-modifying code: a store into a block that already ran changes what executes next time', () => {
  const m = machine();
  const c = m.cpu;
  m.asm(`.code64
      xor ebx, ebx
      mov ecx, 3
    loop_top:
    patched:
      mov eax, 0x11111111
      add ebx, eax
      mov dword ptr [patched + 1], 0x22222222
      dec ecx
      jnz loop_top
      hlt`, CODE);
  m.runToHalt();
  assert.equal(reg(c, RBX), 0x11111111n + 2n * 0x22222222n);
});

test('self-modifying code: a store into the next instruction of the running block is seen (SDM 11.6)', () => {
  const m = machine();
  const c = m.cpu;
  m.asm(`.code64
      mov byte ptr [next + 1], 0x99
    next:
      mov al, 0x11
      hlt`, CODE);
  m.runToHalt();
  assert.equal(reg(c, RAX) & 0xffn, 0x99n);
});

test('code rewritten by the owner through PhysMemory runs in its new form', () => {
  const m = machine();
  const c = m.cpu;
  const L = m.asm('.code64\n start: mov eax, 1\n hlt', CODE);
  m.runToHalt();
  assert.equal(reg(c, RAX), 1n);
  m.mem.write(L.start + 1, new Uint8Array([2, 0, 0, 0]));
  m.resume();
  c.ripLo = L.start;
  m.runToHalt();
  assert.equal(reg(c, RAX), 2n);
});

// ---------------------------------------------------------------- denied stack during event delivery

test('32-bit INT from CPL3 whose ring-0 stack the owner denies: abandoned with SS:ESP, CS and CPL unchanged, then replayed', {
}, () => {
  const m = new TestMachine();
  m.enterProtected32('none', { cpl: 3 });
  m.mem.write64(IDT + 8 * 0x80, m.mem.read64(IDT + 8 * 0x80) | (3n << 45n)); // gate DPL 3
  const c = m.cpu;
  m.host.perms.set(pfn(KSTACK - 4), ACCESS_READ);
  const L = m.asm('.code32\n faulting: int 0x80\n after:', UCODE);
  c.run(100);
  assert.equal(faults(m).length, 1);
  assert.equal(rip(c), BigInt(L.faulting));
  assert.deepEqual([c.cpl, c.segSel[CS], c.segSel[SS], c.rlo[RSP]], [3, SEL.ucode32, SEL.udata, USTACK]);
  m.host.perms.clear();
  c.permissionsChanged();
  m.runToHalt();
  assert.equal(m.stubVector(), 0x80);
  assert.deepEqual(m.stack32(5), [L.after, SEL.ucode32, 2, USTACK, SEL.udata]);
});

test('an external interrupt whose stack push the owner denies: run() returns normally and the interrupt is not lost', {
}, () => {
  const m = machine();
  const c = m.cpu;
  c.setRflags(0x202);
  m.host.pending.push(0x40);
  c.intrCheck = true;
  m.host.perms.set(pfn(KSTACK - 8), ACCESS_READ);
  m.asm('.code64\n nop\n hlt', CODE);
  assert.doesNotThrow(() => c.run(100));
  assert.equal(faults(m).length, 1);
  m.host.perms.clear();
  c.permissionsChanged();
  // The owner may re-queue what it acknowledged; either way the interrupt must arrive exactly once.
  if (m.host.of('ack').length > 0 && m.host.pending.length === 0) m.host.pending.push(0x40);
  c.intrCheck = true;
  m.runToHalt();
  assert.equal(m.stubVector(), 0x40);
  assert.equal(m.stack64(1)[0], BigInt(CODE));
});

test('an NMI whose stack push the owner denies stays pending and unblocked; it is delivered once the page is allowed', () => {
  const m = machine();
  const c = m.cpu;
  c.injectNmi();
  m.host.perms.set(pfn(KSTACK - 8), ACCESS_READ);
  m.asm('.code64\n nop\n hlt', CODE);
  assert.doesNotThrow(() => c.run(100));
  assert.equal(faults(m).length, 1);
  assert.equal(c.nmiPending, true, 'the NMI is still pending');
  assert.equal(c.nmiBlocked, false, 'an abandoned delivery does not block NMIs');
  m.host.perms.clear();
  c.permissionsChanged();
  m.runToHalt();
  assert.equal(m.stubVector(), 2);
  assert.equal(c.nmiBlocked, true, 'blocked from the successful delivery until IRET');
});

test('mode-based execute control: a fetch from a user-mode linear address needs ACCESS_EXEC_USER instead of ACCESS_EXEC (Intel MBEC; host.ts)', async (t) => {
  const R = ACCESS_READ, X = ACCESS_EXEC, XU = ACCESS_EXEC_USER;
  interface Case { name: string; cpl: 0 | 3; at: number; cr4?: number; mbec: number; perms: number; denied: number | null }
  // UCODE is mapped U/S=1 at every level (a user-mode address), CODE is supervisor-only.
  const cases: Case[] = [
    { name: 'MBEC off: a CPL3 fetch needs X', cpl: 3, at: UCODE, mbec: 0, perms: R | XU, denied: X },
    { name: 'MBEC off: XU is ignored, X suffices at CPL3', cpl: 3, at: UCODE, mbec: 0, perms: R | X, denied: null },
    { name: 'MBEC: a CPL3 fetch from a user page needs XU', cpl: 3, at: UCODE, mbec: MBEC_ENABLE, perms: R | X, denied: XU },
    { name: 'MBEC: XU alone runs user code', cpl: 3, at: UCODE, mbec: MBEC_ENABLE, perms: R | XU, denied: null },
    { name: 'MBEC: a CPL0 fetch from a supervisor page needs X', cpl: 0, at: CODE, mbec: MBEC_ENABLE, perms: R | XU, denied: X },
    { name: 'MBEC: X alone runs supervisor code', cpl: 0, at: CODE, mbec: MBEC_ENABLE, perms: R | X, denied: null },
    { name: 'MBEC: the address decides, not CPL: CPL0 (SMEP off) fetching a user page needs XU', cpl: 0, at: UCODE, mbec: MBEC_ENABLE, perms: R | X, denied: XU },
    { name: 'MBEC only with SMEP, SMEP off: every fetch needs X', cpl: 3, at: UCODE, mbec: MBEC_ENABLE | MBEC_ONLY_WITH_SMEP, perms: R | XU, denied: X },
    { name: 'MBEC only with SMEP, SMEP on: a CPL3 fetch needs XU', cpl: 3, at: UCODE, cr4: CR4_SMEP, mbec: MBEC_ENABLE | MBEC_ONLY_WITH_SMEP, perms: R | X, denied: XU },
    { name: 'MBEC only with SMEP, SMEP on: XU alone runs user code', cpl: 3, at: UCODE, cr4: CR4_SMEP, mbec: MBEC_ENABLE | MBEC_ONLY_WITH_SMEP, perms: R | XU, denied: null },
  ];
  for (const k of cases) {
    await t.test(k.name, () => {
      const m = new TestMachine();
      m.enterLong64({ cpl: k.cpl, cr4: k.cr4 });
      const c = m.cpu;
      c.ripLo = k.at;
      m.asm('.code64\n mov eax, 0x77\n spin: jmp spin', k.at);
      m.host.perms.set(pfn(k.at), k.perms);
      c.mbecControl = k.mbec;
      setReg(c, RAX, 0n);
      c.run(20);
      if (k.denied === null) {
        assert.deepEqual(faults(m), []);
        assert.equal(reg(c, RAX), 0x77n);
      } else {
        assert.deepEqual(faults(m).map((f) => [f.gpa, f.access, f.insnLength]), [[k.at, k.denied, 0]]);
        assert.equal(rip(c), BigInt(k.at), 'nothing ran');
        assert.equal(reg(c, RAX), 0n);
      }
    });
  }
  await t.test('paging off: every fetch is a supervisor fetch (X), whatever the mode', () => {
    const m = new TestMachine();
    m.enterProtected32('none');
    const c = m.cpu;
    m.asm('.code32\n mov eax, 0x77\n hlt', CODE);
    m.host.perms.set(pfn(CODE), R | XU);
    c.mbecControl = MBEC_ENABLE;
    c.run(20);
    assert.deepEqual(faults(m).map((f) => f.access), [X]);
  });
  await t.test('turning MBEC on or off applies to pages already fetched from (the fast fetch cache is dropped)', () => {
    const m = new TestMachine();
    m.enterLong64({ cpl: 3 });
    const c = m.cpu;
    c.ripLo = UCODE;
    m.asm('.code64\n again: inc eax\n jmp again', UCODE);
    m.host.perms.set(pfn(UCODE), R | X);
    c.run(50);
    assert.deepEqual(faults(m), []);
    c.mbecControl = MBEC_ENABLE;
    c.run(50);
    assert.deepEqual(faults(m).map((f) => f.access), [XU]);
    const n = reg(c, RAX);
    c.mbecControl = 0;
    c.run(50);
    assert.equal(faults(m).length, 1, 'X is enough again');
    assert.ok(reg(c, RAX) > n);
  });
});
