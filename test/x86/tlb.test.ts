/**
 * The architecturally faithful software TLB (DESIGN §3.3, SDM vol. 3 4.10):
 * a translation stays cached until INVLPG, MOV CR3 (PCID rules), CR4.PGE
 * changes, INVPCID or an owner flush removes it, so a guest that changes a
 * paging-structure entry without flushing keeps using the old translation
 * (for data and for instruction fetch), exactly as hardware may.
 *
 * Paging structures live in the identity-mapped page-table pool, so guest code
 * can rewrite entries with ordinary stores.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CR4_PCIDE, CR4_PGE } from '../../src/x86/regs.js';
import { vpnKey } from '../../src/x86/tlb.js';
import { CODE, DATA, G, MiB2, P, TestMachine, W, cr2, reg, rip, setReg, split } from './helpers/test-machine.js';

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7, R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14;

// PML4 slot 2: nothing else uses these paging structures.
const VA = 0x0000010000000000n, VA2 = VA + 0x1000n, VAG = VA + 0x2000n;
const VA_CODE = 0x0000010000200000n, VA_LARGE = 0x0000010000400000n;
const PA1 = 0x500000, PA2 = 0x501000, PA3 = 0x502000, PA_LARGE = 0x600000;
const V1 = 0x1111111111111111n, V2 = 0x2222222222222222n, V3 = 0x3333333333333333n;

function machine(cr4 = 0): TestMachine {
  const m = new TestMachine();
  m.enterLong64({ cr4 });
  m.mem.write64(PA1, V1); m.mem.write64(PA2, V2); m.mem.write64(PA3, V3);
  return m;
}

function vpn(va: bigint): number {
  const [lo, hi] = split(va);
  return vpnKey(lo, hi);
}

test('a PTE rewritten without a flush: data reads keep the old translation until INVLPG (SDM 4.10.4.3)', () => {
  const m = machine();
  const pte = m.pt!.map(VA, PA1, P | W);
  const c = m.cpu;
  setReg(c, RBX, VA); setReg(c, RSI, pte); setReg(c, RDX, BigInt(PA2) | P | W);
  m.asm(`.code64
      mov rax, [rbx]
      mov [rsi], rdx
      mov rcx, [rbx]
      invlpg [rbx]
      mov rdi, [rbx]
      hlt`, CODE);
  m.runToHalt();
  assert.equal(reg(c, RAX), V1);
  assert.equal(reg(c, RCX), V1, 'stale translation still used');
  assert.equal(reg(c, RDI), V2, 'INVLPG made the new PTE visible');
  assert.equal(m.cached(VA), PA2);
});

test('a PTE rewritten without a flush: instruction fetch keeps the old translation until INVLPG', () => {
  const m = machine();
  const pte = m.pt!.map(VA_CODE, PA1, P | W);
  m.asm('.code64\n mov eax, 1\n ret', 0, PA1);
  m.asm('.code64\n mov eax, 2\n ret', 0, PA2);
  const c = m.cpu;
  setReg(c, RBX, VA_CODE); setReg(c, RSI, pte); setReg(c, RDX, BigInt(PA2) | P | W);
  m.asm(`.code64
      call rbx
      mov r8d, eax
      mov [rsi], rdx
      call rbx
      mov r9d, eax
      invlpg [rbx]
      call rbx
      mov r10d, eax
      hlt`, CODE);
  m.runToHalt();
  assert.deepEqual([reg(c, R8), reg(c, R9), reg(c, R10)], [1n, 1n, 2n]);
});

test('stale permissions: a write through a cached dirty entry succeeds after the PTE became read-only, and faults after INVLPG', () => {
  const m = machine();
  const pte = m.pt!.map(VA, PA1, P | W);
  const c = m.cpu;
  setReg(c, RBX, VA); setReg(c, RSI, pte); setReg(c, RDX, BigInt(PA1) | P | 0x60n /* A|D, no W */);
  const L = m.asm(`.code64
      mov dword ptr [rbx], 0xa
      mov [rsi], rdx
      mov dword ptr [rbx], 0xb
      invlpg [rbx]
    faulting:
      mov dword ptr [rbx], 0xc
      hlt`, CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 14);
  assert.deepEqual(m.stack64(2), [3n, BigInt(L.faulting)]);
  assert.equal(cr2(c), VA);
  assert.equal(m.mem.read32(PA1), 0xb, 'the write through the stale entry happened, the last one did not');
});

test('a PTE made not-present without a flush is still used; after INVLPG the access faults (#PF, P=0)', () => {
  const m = machine();
  const pte = m.pt!.map(VA, PA1, P | W);
  const c = m.cpu;
  setReg(c, RBX, VA); setReg(c, RSI, pte);
  const L = m.asm(`.code64
      mov rax, [rbx]
      mov qword ptr [rsi], 0
      mov rcx, [rbx]
      invlpg [rbx]
    faulting:
      mov rdx, [rbx]
      hlt`, CODE);
  m.runToHalt();
  assert.equal(reg(c, RCX), V1);
  assert.equal(m.stubVector(), 14);
  assert.deepEqual(m.stack64(2), [0n, BigInt(L.faulting)]);
  assert.equal(m.cached(VA), -1);
});

test('INVLPG removes one 4 KiB page; any address inside a 2 MiB page removes all of its cached pieces (SDM INVLPG)', () => {
  const m = machine();
  m.pt!.map(VA, PA1, P | W);
  m.pt!.map(VA2, PA2, P | W);
  m.pt!.map(VA_LARGE, PA_LARGE, P | W, MiB2);
  const c = m.cpu;
  setReg(c, RBX, VA); setReg(c, RSI, VA_LARGE);
  m.asm(`.code64
      mov rax, [rbx]
      mov rax, [rbx + 0x1000]
      mov rax, [rsi + 0x1000]
      mov rax, [rsi + 0x5000]
      mov rax, [rsi + 0x1ff000]
      hlt
      invlpg [rbx]
      invlpg [rsi + 0x3000]     # a piece of the large page that was never used
      hlt`, CODE);
  m.runToHalt();
  assert.deepEqual([VA, VA2, VA_LARGE + 0x1000n, VA_LARGE + 0x5000n, VA_LARGE + 0x1ff000n].map((v) => m.cached(v)),
    [PA1, PA2, PA_LARGE + 0x1000, PA_LARGE + 0x5000, PA_LARGE + 0x1ff000]);
  m.resume();
  m.runToHalt();
  assert.deepEqual([VA, VA2, VA_LARGE + 0x1000n, VA_LARGE + 0x5000n, VA_LARGE + 0x1ff000n].map((v) => m.cached(v)),
    [-1, PA2, -1, -1, -1]);
});

test('MOV CR3 (PCIDE=0) flushes non-global translations only; toggling CR4.PGE flushes global ones too (SDM 4.10.4.1)', () => {
  const m = machine(CR4_PGE);
  const pteN = m.pt!.map(VA, PA1, P | W);
  const pteG = m.pt!.map(VAG, PA1, P | W | G);
  const c = m.cpu;
  setReg(c, RBX, VA); setReg(c, RSI, VAG); setReg(c, R12, pteN); setReg(c, R13, pteG); setReg(c, RDX, BigInt(PA2) | P | W | G);
  m.asm(`.code64
      mov rax, [rbx]
      mov rax, [rsi]
      mov [r12], rdx          # both PTEs now point at PA2
      mov [r13], rdx
      mov rax, cr3
      mov cr3, rax
      mov r8, [rbx]
      mov r9, [rsi]
      hlt
      mov rax, cr4
      btr rax, 7
      mov cr4, rax
      bts rax, 7
      mov cr4, rax
      mov r10, [rsi]
      hlt`, CODE);
  m.runToHalt();
  assert.equal(reg(c, R8), V2, 'non-global entry was flushed by MOV CR3');
  assert.equal(reg(c, R9), V1, 'global entry survived MOV CR3');
  m.resume();
  m.runToHalt();
  assert.equal(reg(c, R10), V2, 'CR4.PGE toggle flushed the global entry');
});

test('PCID: MOV CR3 with bit 63 keeps the PCID\'s translations; without it flushes that PCID only (SDM 4.10.4.1)', () => {
  const m = machine(CR4_PCIDE | CR4_PGE);
  const c = m.cpu;
  const root = BigInt(m.pt!.root);
  const pte = m.pt!.map(VA, PA1, P | W);
  m.pt!.map(VA2, PA3, P | W);
  c.cr3Lo |= 1; // running with PCID 1
  const NOFLUSH = 1n << 63n;
  setReg(c, RBX, VA); setReg(c, RSI, pte); setReg(c, RDX, BigInt(PA2) | P | W);
  setReg(c, R12, root | 2n | NOFLUSH); setReg(c, R13, root | 1n | NOFLUSH); setReg(c, R14, root | 1n);
  m.asm(`.code64
      mov rax, [rbx]          # PCID 1: VA -> PA1
      mov [rsi], rdx          # PTE now PA2, no flush
      mov cr3, r12            # PCID 2, no flush
      mov r8, [rbx]           # PCID 2 has no entry: walks, PA2
      mov rdi, [rbx + 0x1000] # PCID 2 caches VA2 too
      mov cr3, r13            # back to PCID 1, no flush
      mov r9, [rbx]           # PCID 1's stale entry: PA1
      mov r11, cr3
      hlt
      mov cr3, r14            # PCID 1 without bit 63: flushes PCID 1
      mov r10, [rbx]
      hlt`, CODE);
  m.runToHalt();
  assert.equal(reg(c, RAX), V1);
  assert.equal(reg(c, R8), V2);
  assert.equal(reg(c, R9), V1, 'bit 63 kept PCID 1\'s translation');
  assert.equal(reg(c, R11), root | 1n, 'bit 63 is not stored in CR3');
  assert.equal(c.mmu.tlb.lookup(vpn(VA), 2)?.frame, PA2);
  m.resume();
  m.runToHalt();
  assert.equal(reg(c, R10), V2, 'PCID 1 flushed');
  assert.equal(c.mmu.tlb.lookup(vpn(VA), 2)?.frame, PA2, 'PCID 2 untouched');
  assert.equal(c.mmu.tlb.lookup(vpn(VA2), 2)?.frame, PA3, 'PCID 2 untouched');
});

/** Fills PCIDs 1 and 2 with VA and VA2, and a global VAG; returns the machine running in PCID 2. */
function twoPcids(): TestMachine {
  const m = machine(CR4_PCIDE | CR4_PGE);
  const c = m.cpu;
  const root = BigInt(m.pt!.root);
  m.pt!.map(VA, PA1, P | W);
  m.pt!.map(VA2, PA2, P | W);
  m.pt!.map(VAG, PA3, P | W | G);
  c.cr3Lo |= 1;
  setReg(c, RBX, VA); setReg(c, R12, root | 2n | (1n << 63n));
  m.asm(`.code64
      mov rax, [rbx]
      mov rax, [rbx + 0x1000]
      mov rax, [rbx + 0x2000]
      mov cr3, r12
      mov rax, [rbx]
      mov rax, [rbx + 0x1000]
      hlt
    test_here:
      invpcid rcx, [rdi]
      hlt`, CODE);
  m.runToHalt();
  m.resume();
  return m;
}

/** Which of (PCID 1, VA), (1, VA2), (2, VA), (2, VA2) and the global VAG are cached. */
function tlbState(m: TestMachine): Record<string, boolean> {
  const t = m.cpu.mmu.tlb;
  const has = (va: bigint, pcid: number) => {
    const e = t.lookup(vpn(va), pcid);
    return e !== undefined && !e.global;
  };
  return {
    '1:VA': has(VA, 1), '1:VA2': has(VA2, 1), '2:VA': has(VA, 2), '2:VA2': has(VA2, 2),
    global: t.lookup(vpn(VAG), 1)?.global === true,
  };
}

const ALL = { '1:VA': true, '1:VA2': true, '2:VA': true, '2:VA2': true, global: true };

test('INVPCID types 0-3 remove exactly what SDM INVPCID says', async (t) => {
  const cases: [string, number, number, bigint, Record<string, boolean>][] = [
    ['type 0: one address in one PCID, not global', 0, 1, VA, { ...ALL, '1:VA': false }],
    ['type 0 on a global page leaves the global translation', 0, 1, VAG, ALL],
    ['type 1: one PCID, non-global', 1, 1, 0n, { ...ALL, '1:VA': false, '1:VA2': false }],
    ['type 2: everything, globals included', 2, 0, 0n, { '1:VA': false, '1:VA2': false, '2:VA': false, '2:VA2': false, global: false }],
    ['type 3: everything but globals', 3, 0, 0n, { '1:VA': false, '1:VA2': false, '2:VA': false, '2:VA2': false, global: true }],
  ];
  for (const [name, type, pcid, addr, expect] of cases) {
    await t.test(name, () => {
      const m = twoPcids();
      assert.deepEqual(tlbState(m), ALL);
      m.mem.write64(DATA, BigInt(pcid)); m.mem.write64(DATA + 8, addr);
      setReg(m.cpu, RCX, type); setReg(m.cpu, RDI, DATA);
      m.runToHalt();
      assert.equal(m.stubVector(), -1);
      assert.deepEqual(tlbState(m), expect);
    });
  }
  await t.test('type 4 and a descriptor with reserved bits set raise #GP(0) and flush nothing', () => {
    for (const [type, d0] of [[4, 1n], [1, 1n | (1n << 12n)]] as const) {
      const m = twoPcids();
      m.mem.write64(DATA, d0); m.mem.write64(DATA + 8, 0n);
      setReg(m.cpu, RCX, type); setReg(m.cpu, RDI, DATA);
      m.runToHalt();
      assert.equal(m.stubVector(), 13);
      assert.equal(m.stack64(1)[0], 0n);
      assert.deepEqual(tlbState(m), ALL);
    }
  });
});

test('owner flushes: flushTlb, flushTlbAddress, flushTlbPcid remove exactly what they say', async (t) => {
  await t.test('flushTlb: everything, globals included', () => {
    const m = twoPcids();
    m.cpu.flushTlb();
    assert.deepEqual(tlbState(m), { '1:VA': false, '1:VA2': false, '2:VA': false, '2:VA2': false, global: false });
  });
  await t.test('flushTlbAddress: that page in every PCID', () => {
    const m = twoPcids();
    const [lo, hi] = split(VA);
    m.cpu.flushTlbAddress(lo, hi);
    assert.deepEqual(tlbState(m), { ...ALL, '1:VA': false, '2:VA': false });
    const [glo, ghi] = split(VAG);
    m.cpu.flushTlbAddress(glo, ghi);
    assert.equal(tlbState(m).global, false, 'a global page too');
  });
  await t.test('flushTlbPcid: the non-global entries of one PCID', () => {
    const m = twoPcids();
    m.cpu.flushTlbPcid(1);
    assert.deepEqual(tlbState(m), { ...ALL, '1:VA': false, '1:VA2': false });
  });
  await t.test('flushTlbPcid rejects a PCID outside 0..4095', () => {
    const m = twoPcids();
    for (const bad of [4096, -1, 1.5]) assert.throws(() => m.cpu.flushTlbPcid(bad), RangeError);
    assert.deepEqual(tlbState(m), ALL);
  });
  await t.test('a guest sees the new translation after the owner flushes the address', () => {
    const m = machine();
    const pte = m.pt!.map(VA, PA1, P | W);
    const c = m.cpu;
    setReg(c, RBX, VA);
    m.asm('.code64\n again: mov rax, [rbx]\n hlt\n jmp again', CODE);
    m.runToHalt();
    assert.equal(reg(c, RAX), V1);
    m.pt!.set(pte, BigInt(PA2) | P | W); // the owner edits guest memory: not a flush
    m.resume();
    m.runToHalt();
    assert.equal(reg(c, RAX), V1, 'still stale');
    const [lo, hi] = split(VA);
    c.flushTlbAddress(lo, hi);
    m.resume();
    m.runToHalt();
    assert.equal(reg(c, RAX), V2);
  });
});

test('translations survive an interrupt delivery and return (no mode-relevant change, no flush)', () => {
  const m = machine();
  const pte = m.pt!.map(VA, PA1, P | W);
  const c = m.cpu;
  setReg(c, RBX, VA); setReg(c, RSI, pte); setReg(c, RDX, BigInt(PA2) | P | W);
  m.host.pending.push(0x40);
  c.intrCheck = true;
  const L = m.asm(`.code64
      mov rax, [rbx]
      mov [rsi], rdx
      sti
      nop
    after_nop:
      mov rcx, [rbx]
      hlt
    done:`, CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 0x40);
  assert.equal(m.stack64(1)[0], BigInt(L.after_nop));
  assert.equal(m.cached(VA), PA1);
  m.resume();
  m.runToHalt();
  assert.equal(reg(c, RCX), V1, 'stale translation still used after IRETQ');
  assert.equal(rip(c), BigInt(L.done));
});

test('clearing CR0.PG flushes everything, global translations included (SDM 4.10.4.1)', () => {
  const m = new TestMachine();
  m.enterProtected32('legacy32', { cr4: CR4_PGE });
  m.pt!.map(0x40000000, PA1, P | W | G);
  m.pt!.map(0x40001000, PA2, P | W);
  m.asm(`.code32
      mov eax, [0x40000000]
      mov eax, [0x40001000]
      hlt
      mov eax, cr0
      btr eax, 31
      mov cr0, eax
      bts eax, 31
      mov cr0, eax
      hlt`, CODE);
  m.runToHalt();
  assert.deepEqual([m.cached(0x40000000), m.cached(0x40001000)], [PA1, PA2]);
  assert.equal(m.cpu.mmu.tlb.lookup(0x40000, 0)?.global, true);
  m.resume();
  m.runToHalt();
  assert.deepEqual([m.cached(0x40000000), m.cached(0x40001000)], [-1, -1]);
});

test('clearing CR4.PCIDE flushes every PCID and the globals (SDM 4.10.4.1)', () => {
  const m = twoPcids();
  const c = m.cpu;
  m.asm('.code64\n mov rax, cr4\n btr rax, 17\n mov cr4, rax\n hlt', CODE + 0x800);
  c.ripLo = CODE + 0x800;
  m.runToHalt();
  assert.equal(m.stubVector(), -1);
  assert.deepEqual(tlbState(m), { '1:VA': false, '1:VA2': false, '2:VA': false, '2:VA2': false, global: false });
});

test('INVLPG and MOV CR3 at CPL3 raise #GP(0) and flush nothing', () => {
  for (const insn of ['invlpg [rbx]', 'mov cr3, rax']) {
    const m = new TestMachine();
    m.enterLong64({ cpl: 3, cr4: CR4_PGE });
    m.pt!.map(VA, PA1, P | W | 4n);
    const c = m.cpu;
    setReg(c, RBX, VA);
    const L = m.asm(`.code64\n mov rax, [rbx]\n faulting: ${insn}`, 0x18000);
    m.runToHalt();
    assert.equal(m.stubVector(), 13, insn);
    assert.deepEqual(m.stack64(2), [0n, BigInt(L.faulting)], insn);
    assert.equal(m.cached(VA), PA1, insn);
  }
});
