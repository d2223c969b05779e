/**
 * Paging (SDM vol. 3 ch. 4): translation through 4-level, PAE and 32-bit
 * paging structures with every page size, accessed/dirty updates (4.8),
 * access rights (4.6) and the page-fault error code and CR2 (4.7), with the
 * paging structures built in guest memory and the accesses made by guest code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CR0_WP, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_LME, EFER_SCE } from '../../src/x86/regs.js';
import {
  A, CODE, D, G, GiB1, MiB2, MiB4, NX, P, PS, PageTables, SEL, TestMachine, U, UCODE, W,
  cr2, reg, rip, setReg,
} from './helpers/test-machine.js';

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7;

test('4-level paging translates 4 KiB, 2 MiB and 1 GiB pages (low and high canonical halves) (SDM 4.5)', () => {
  const m = new TestMachine(0x80000000);
  m.enterLong64();
  const pt = m.pt!;
  const va4k = 0x00007f0012345000n, va2m = 0xffff800000200000n, va1g = 0x0000008040000000n;
  pt.map(va4k, 0x500000, P | W);
  pt.map(va2m, 0x600000, P | W, MiB2);
  pt.map(va1g, 0x40000000, P | W, GiB1);
  m.mem.write64(0x500678, 0x1111222233334444n);
  m.mem.write64(0x612345, 0x5555666677778888n);
  m.mem.write64(0x42345678, 0x99990000aaaabbbbn);
  const c = m.cpu;
  setReg(c, RBX, va4k + 0x678n); setReg(c, RSI, va2m + 0x12345n); setReg(c, RDI, va1g + 0x2345678n);
  m.asm('.code64\n mov rax, [rbx]\n mov rcx, [rsi]\n mov rdx, [rdi]\n hlt', CODE);
  m.runToHalt();
  assert.equal(reg(c, RAX), 0x1111222233334444n);
  assert.equal(reg(c, RCX), 0x5555666677778888n);
  assert.equal(reg(c, RDX), 0x99990000aaaabbbbn);
  // The TLB now holds the 4 KiB pieces that were used.
  assert.equal(m.cached(va4k + 0x678n), 0x500678);
  assert.equal(m.cached(va2m + 0x12345n), 0x612345);
  assert.equal(m.cached(va1g + 0x2345678n), 0x42345678);
});

/** Entry addresses of the walk for `va`, top level first. */
function walkEntries(pt: PageTables, va: bigint, leafLevel: number, top: number): number[] {
  const out: number[] = [];
  for (let l = top; l >= leafLevel; l--) out.push(pt.entryAddr(va, l));
  return out;
}

test('A is set on every paging-structure entry used; D only on the leaf, and only on a write (SDM 4.8)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const pt = m.pt!;
  // PML4 slot 2: tables used by nothing else, so every A/D bit seen comes from these accesses.
  const va = 0x0000010000000000n, va2m = 0x0000010000200000n;
  pt.map(va, 0x500000, P | W);
  pt.map(va2m, 0x600000, P | W, MiB2);
  const e4k = walkEntries(pt, va, 1, 4), e2m = walkEntries(pt, va2m, 2, 4);
  const bits = (e: number) => m.mem.read64(e) & (A | D);
  for (const e of [...e4k, ...e2m]) assert.equal(bits(e), 0n);
  const c = m.cpu;
  setReg(c, RBX, va + 8n); setReg(c, RSI, va2m + 0x1000n);
  const L = m.asm(`.code64
      mov rax, [rbx]
      hlt
    read_done:
      mov [rbx], eax
      mov [rsi], eax
      hlt
    write_done:`, CODE);
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.read_done));
  assert.deepEqual(e4k.map(bits), [A, A, A, A], 'a read sets A at all four levels and no D');
  assert.deepEqual(e2m.map(bits).slice(2), [0n], '2 MiB page not touched yet');
  m.resume();
  m.runToHalt();
  assert.deepEqual(e4k.map(bits), [A, A, A, A | D], 'the write sets D on the PTE only (it re-walks: the TLB entry was clean)');
  assert.deepEqual(e2m.map(bits), [A, A, A | D], 'for a 2 MiB page the PDE is the leaf and gets D');
});

test('an instruction fetch sets A but not D; a write that faults sets no D (SDM 4.8)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const pt = m.pt!;
  const codeVa = 0x0000010000000000n, roVa = 0x0000010000001000n;
  const pteCode = pt.map(codeVa, 0x500000, P | W);
  const pteRo = pt.map(roVa, 0x501000, P);
  m.load(0x500000, new Uint8Array([0xc3])); // ret
  const c = m.cpu;
  setReg(c, RBX, codeVa); setReg(c, RSI, roVa);
  m.asm('.code64\n call rbx\n mov [rsi], eax\n hlt', CODE);
  m.runToHalt();
  assert.equal(pt.get(pteCode) & (A | D), A);
  assert.equal(m.stubVector(), 14, 'write to a read-only page with CR0.WP=1 faults');
  assert.equal(pt.get(pteRo) & (A | D), A, 'A was set by the walk, D was not');
});

test('PAE paging: PDPTEs are loaded by MOV CR3 and not re-read on a TLB miss; 4 KiB and 2 MiB pages (SDM 4.4.1)', () => {
  const m = new TestMachine();
  m.enterProtected32('pae');
  const pt = m.pt!;
  pt.map(0x40000000, 0x500000, P | W);
  pt.map(0x40200000, 0x600000, P | W, MiB2);
  const pdpte1 = pt.entryAddr(0x40000000, 3);
  const oldPdpte = pt.get(pdpte1);
  // A second page directory that maps the same address elsewhere.
  const pd2 = m.allocPage(), pt2 = m.allocPage();
  m.mem.write64(pd2, BigInt(pt2) | P | W | U);
  m.mem.write64(pt2, 0x501000n | P | W);
  m.cpu.mmu.loadPdptes(); // as a MOV CR3 after building the tables would
  m.mem.write32(0x500000, 0x11111111); m.mem.write32(0x501000, 0x22222222); m.mem.write32(0x600800, 0x33333333);
  const c = m.cpu;
  const L = m.asm(`.code32
      mov eax, [0x40000000]
      mov edx, [0x40200800]
      hlt
    swapped:
      invlpg [0x40000000]
      mov ebx, [0x40000000]   # TLB empty for it, but the PDPTE register still points at the old PD
      mov eax, cr3
      mov cr3, eax            # reloads the PDPTEs
      mov ecx, [0x40000000]
      hlt
    done:`, CODE);
  m.runToHalt();
  assert.equal(c.rlo[RAX], 0x11111111);
  assert.equal(c.rlo[RDX], 0x33333333, '2 MiB page in PAE paging');
  assert.equal(pt.get(pdpte1), oldPdpte, 'PAE PDPTEs have no accessed bit to set');
  pt.set(pdpte1, BigInt(pd2) | P);
  m.resume();
  m.runToHalt();
  assert.equal(rip(c), BigInt(L.done));
  assert.equal(c.rlo[RBX], 0x11111111, 'old PDPTE register used');
  assert.equal(c.rlo[RCX], 0x22222222, 'new PDPTE after MOV CR3');
});

test('PAE paging: MOV CR3 with a present PDPTE that sets a reserved bit raises #GP(0) and loads nothing (SDM 4.4.1)', () => {
  const m = new TestMachine();
  m.enterProtected32('pae');
  const pt = m.pt!;
  const pdpte2 = pt.entryAddr(0x80000000, 3);
  const c = m.cpu;
  const pdptesBefore = Array.from(c.mmu.pdpte);
  const cr3Before = c.cr3Lo;
  pt.set(pdpte2, BigInt(m.allocPage()) | P | W); // present, with bit 1 set: reserved in a PAE PDPTE
  const L = m.asm('.code32\n mov eax, cr3\n faulting: mov cr3, eax\n hlt', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 13);
  const [err, eip] = m.stack32(2);
  assert.equal(err, 0);
  assert.equal(eip, L.faulting);
  assert.equal(c.cr3Lo, cr3Before);
  assert.deepEqual(Array.from(c.mmu.pdpte), pdptesBefore);
});

test('32-bit paging: 4 KiB pages, 4 MiB pages with CR4.PSE, PS ignored without PSE; A/D on PDE and PTE (SDM 4.3)', () => {
  const m = new TestMachine();
  m.enterProtected32('legacy32');
  const pt = m.pt!;
  const pte = pt.map(0x40000000, 0x500000, P | W);
  const pde = pt.entryAddr(0x40000000, 2);
  const pde4m = pt.map(0x40400000, 0x800000, P | W, MiB4);
  m.mem.write32(0x500010, 0xaaaa0001); m.mem.write32(0x923456, 0xbbbb0002);
  const c = m.cpu;
  const L = m.asm(`.code32
      mov eax, [0x40000010]
      mov [0x40000010], eax
      mov ebx, [0x40523456]
      hlt
    step2:
      mov eax, cr4
      and eax, ~0x10
      mov cr4, eax
      mov ecx, [0x40401010]
      hlt`, CODE);
  m.runToHalt();
  assert.equal(c.rlo[RAX] >>> 0, 0xaaaa0001);
  assert.equal(c.rlo[RBX] >>> 0, 0xbbbb0002, '4 MiB page: offset 0x123456 into frame 0x800000');
  assert.equal(BigInt(m.mem.read32(pde)) & (A | D), A);
  assert.equal(BigInt(m.mem.read32(pte)) & (A | D), A | D);
  assert.equal(BigInt(m.mem.read32(pde4m)) & (A | D), A, 'a 4 MiB PDE is a leaf: read sets A only');
  assert.equal(rip(c), BigInt(L.step2));
  // With CR4.PSE=0 the same PDE is a pointer to a page table at 0x800000 (PS ignored, SDM 4.3 table 4-5).
  m.mem.write32(0x800004, 0x700000 | 3);
  m.mem.write32(0x700010, 0xcccc0003);
  m.resume();
  m.runToHalt();
  assert.equal(c.cr4 & CR4_PSE, 0);
  assert.equal(c.rlo[RCX] >>> 0, 0xcccc0003);
});

// ---------------------------------------------------------------- #PF error codes

interface PfCase {
  name: string;
  /** Leaf flags of the page at VA (not mapped at all when null). */
  flags: bigint | null;
  /** The access: read, write or fetch (a jump to VA + 0x10). */
  access: 'read' | 'write' | 'fetch' | 'stac-read';
  cpl?: 0 | 3;
  wp?: boolean;
  cr4?: number;
  efer?: number;
  /** Expected #PF error code, or null for no fault. */
  err: number | null;
  /** Change the walk before running (reserved-bit cases). */
  tweak?: (pt: PageTables) => void;
}

const VA = 0x0000010000000000n; // PML4 slot 2: paging structures of its own
const PA = 0x500000;
const OFF = 0x678n;

function runPf(k: PfCase): void {
  const m = new TestMachine();
  m.enterLong64({ cpl: k.cpl ?? 0, wp: k.wp, cr4: k.cr4, efer: k.efer });
  const pt = m.pt!;
  if (k.flags !== null) pt.map(VA, PA, k.flags);
  else pt.entryAddr(VA, 1); // tables exist, PTE not present
  k.tweak?.(pt);
  m.load(PA + 0x10, new Uint8Array([0xf4])); // hlt, for fetches that succeed
  m.mem.write32(PA + Number(OFF), 0x600d600d);
  const c = m.cpu;
  const target = k.access === 'fetch' ? VA + 0x10n : VA + OFF;
  setReg(c, RBX, target);
  setReg(c, RAX, 0x5eed);
  const body = {
    read: 'mov eax, [rbx]', write: 'mov [rbx], eax', fetch: 'jmp rbx', 'stac-read': 'stac\n faulting2: mov eax, [rbx]',
  }[k.access];
  const org = (k.cpl ?? 0) === 3 ? UCODE : CODE;
  // UD2 ends the run at any CPL: #UD (vector 6) with the saved RIP on it means the access completed.
  const L = m.asm(`.code64\n faulting: ${body}\n done: ud2`, org);
  m.runToHalt();
  if (k.err === null) {
    if (k.access === 'fetch') {
      assert.equal(m.stubVector(), -1, `${k.name}: no fault expected`);
      assert.equal(rip(c), VA + 0x11n);
    } else {
      assert.equal(m.stubVector(), 6, `${k.name}: no fault expected before the UD2`);
      assert.equal(m.stack64(1)[0], BigInt(L.done), "#UD pushes no error code: RSP points at the saved RIP");
    }
    if (k.access === 'write') assert.equal(m.mem.read32(PA + Number(OFF)), 0x5eed);
    else if (k.access !== 'fetch') assert.equal(c.rlo[RAX], 0x600d600d);
    return;
  }
  assert.equal(m.stubVector(), 14, `${k.name}: #PF expected`);
  const [err, savedRip, savedCs] = m.stack64(3);
  assert.equal(err, BigInt(k.err), `${k.name}: error code`);
  assert.equal(cr2(c), target, `${k.name}: CR2`);
  const faultRip = k.access === 'fetch' ? target : BigInt(L.faulting2 ?? L.faulting);
  assert.equal(savedRip, faultRip, `${k.name}: saved RIP`);
  assert.equal(savedCs, BigInt((k.cpl ?? 0) === 3 ? SEL.ucode64 : SEL.code64));
  assert.equal(m.mem.read32(PA + Number(OFF)), 0x600d600d, `${k.name}: memory unchanged`);
}

// Error code bits (SDM 4.7): P 1, W/R 2, U/S 4, RSVD 8, I/D 16.
const PF_CASES: PfCase[] = [
  { name: 'supervisor read of a not-present page', flags: null, access: 'read', err: 0 },
  { name: 'supervisor write to a not-present page', flags: null, access: 'write', err: 2 },
  { name: 'user read of a not-present page', flags: null, access: 'read', cpl: 3, err: 4 },
  { name: 'fetch from a not-present page (EFER.NXE=1)', flags: null, access: 'fetch', err: 0x10 },
  { name: 'fetch from a not-present page (NXE=0, SMEP=0): no I bit', flags: null, access: 'fetch', efer: EFER_LME | EFER_LMA | EFER_SCE, err: 0 },
  { name: 'supervisor write to a read-only page with CR0.WP=1', flags: P, access: 'write', err: 3 },
  { name: 'supervisor write to a read-only page with CR0.WP=0 is allowed', flags: P, access: 'write', wp: false, err: null },
  { name: 'user write to a read-only user page (WP does not matter)', flags: P | U, access: 'write', cpl: 3, wp: false, err: 7 },
  { name: 'user read of a supervisor page', flags: P | W, access: 'read', cpl: 3, err: 5 },
  { name: 'user write to a supervisor page', flags: P | W, access: 'write', cpl: 3, err: 7 },
  { name: 'user read of a user page', flags: P | U, access: 'read', cpl: 3, err: null },
  { name: 'supervisor fetch from an NX page', flags: P | W | NX, access: 'fetch', err: 0x11 },
  { name: 'user fetch from an NX user page', flags: P | U | NX, access: 'fetch', cpl: 3, err: 0x15 },
  { name: 'data read from an NX page is allowed', flags: P | NX, access: 'read', err: null },
  { name: 'SMEP: supervisor fetch from a user page', flags: P | U, access: 'fetch', cr4: CR4_SMEP, err: 0x11 },
  { name: 'without SMEP a supervisor fetch from a user page is allowed', flags: P | U, access: 'fetch', err: null },
  { name: 'SMAP: supervisor read of a user page with RFLAGS.AC=0', flags: P | W | U, access: 'read', cr4: CR4_SMAP, err: 1 },
  { name: 'SMAP: supervisor write to a user page with RFLAGS.AC=0', flags: P | W | U, access: 'write', cr4: CR4_SMAP, err: 3 },
  { name: 'SMAP: supervisor read of a user page with RFLAGS.AC=1 (STAC) is allowed', flags: P | W | U, access: 'stac-read', cr4: CR4_SMAP, err: null },
  { name: 'SMAP does not restrict CPL-3 accesses', flags: P | U, access: 'read', cpl: 3, cr4: CR4_SMAP, err: null },
  { name: 'reserved: PTE bit 40 set (above MAXPHYADDR=40)', flags: P | W | (1n << 40n), access: 'read', err: 9 },
  { name: 'reserved: PTE bit 51 set, on a write', flags: P | W | (1n << 51n), access: 'write', err: 0xb },
  {
    name: 'reserved: XD set with EFER.NXE=0', flags: P | W | NX, access: 'read', efer: EFER_LME | EFER_LMA | EFER_SCE, err: 9,
  },
  {
    name: 'reserved: PS set in a PML4E', flags: P | W, access: 'read', err: 9,
    tweak: (pt) => { const e = pt.entryAddr(VA, 4); pt.set(e, pt.get(e) | PS); },
  },
  {
    name: 'reserved: bits 20:13 of a 2 MiB PDE', flags: null, access: 'read', err: 9,
    tweak: (pt) => { pt.set(pt.entryAddr(VA, 2), 0x400000n | 0x2000n | P | W | PS); },
  },
  {
    name: 'user access through a supervisor PDE and a user PTE (rights combine over levels)', flags: P | W | U, access: 'read', cpl: 3, err: 5,
    tweak: (pt) => { const e = pt.entryAddr(VA, 2); pt.set(e, pt.get(e) & ~U); },
  },
  {
    name: 'supervisor write through a read-only PDE and a writable PTE', flags: P | W, access: 'write', err: 3,
    tweak: (pt) => { const e = pt.entryAddr(VA, 2); pt.set(e, pt.get(e) & ~W); },
  },
];

for (const k of PF_CASES) {
  test(`#PF error code and CR2: ${k.name} (SDM 4.6, 4.7)`, () => runPf(k));
}

test('#PF in PAE paging: fetch from an XD page with NXE=1 sets I; 32-bit paging with SMEP sets I too (SDM 4.7)', async (t) => {
  await t.test('PAE, XD page', () => {
    const m = new TestMachine();
    m.enterProtected32('pae', { efer: 1 << 11 });
    m.pt!.map(0x40000000, PA, P | W | NX);
    m.cpu.mmu.loadPdptes();
    setReg(m.cpu, RBX, 0x40000010);
    m.asm('.code32\n jmp ebx', CODE);
    m.runToHalt();
    assert.equal(m.stubVector(), 14);
    const [err, eip] = m.stack32(2);
    assert.equal(err, 0x11);
    assert.equal(eip, 0x40000010);
    assert.equal(cr2(m.cpu), 0x40000010n);
  });
  await t.test('32-bit paging, SMEP, supervisor fetch from a user page', {
  }, () => {
    const m = new TestMachine();
    m.enterProtected32('legacy32', { cr4: CR4_SMEP });
    m.pt!.map(0x40000000, PA, P | W | U);
    setReg(m.cpu, RBX, 0x40000010);
    m.asm('.code32\n jmp ebx', CODE);
    m.runToHalt();
    assert.equal(m.stubVector(), 14);
    const [err, eip] = m.stack32(2);
    assert.equal(eip, 0x40000010);
    assert.equal(err, 0x11);
  });
});

test('CR0.WP=0 lets a supervisor write to a read-only page and sets its D bit (SDM 4.6.1, 4.8)', () => {
  const m = new TestMachine();
  m.enterLong64({ wp: false });
  const pte = m.pt!.map(VA, PA, P);
  setReg(m.cpu, RBX, VA + 8n);
  setReg(m.cpu, RAX, 0x77);
  m.asm('.code64\n mov eax, [rbx]\n mov dword ptr [rbx], 0x77\n hlt', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), -1);
  assert.equal(m.cpu.cr0 & CR0_WP, 0);
  assert.equal(m.mem.read32(PA + 8), 0x77);
  assert.equal(m.pt!.get(pte) & (A | D | W), A | D, 'D set, the entry stays read-only');
});

test('a G=1 leaf is cached as a global translation only while CR4.PGE=1 (SDM 4.10.2.4)', () => {
  for (const pge of [true, false]) {
    const m = new TestMachine();
    m.enterLong64({ cr4: pge ? 0x80 : 0 });
    m.pt!.map(VA, PA, P | W | G);
    m.mem.write32(PA, 0x474c4f42);
    setReg(m.cpu, RBX, VA);
    m.asm('.code64\n mov eax, [rbx]\n hlt', CODE);
    m.runToHalt();
    assert.equal(m.cpu.rlo[RAX], 0x474c4f42);
    assert.equal(m.cpu.mmu.tlb.lookup(Number(VA >> 12n), 0)?.global, pge, `PGE=${pge}`);
  }
});

test('an instruction that crosses into a not-present page: #PF for the fetch with CR2 at the second page and RIP at the instruction (SDM 4.7)', () => {
  const m = new TestMachine();
  m.enterLong64();
  const pt = m.pt!;
  pt.map(VA, PA, P | W);
  const pte2 = pt.entryAddr(VA + 0x1000n, 1); // table exists, entry not present
  m.load(PA + 0xffd, new Uint8Array([0xb8, 0x44, 0x33])); // mov eax, 0x11223344: first 3 of its 5 bytes
  m.load(PA + 0x1000, new Uint8Array([0x22, 0x11, 0xf4])); // the rest and a HLT, on a frame not mapped yet
  const c = m.cpu;
  setReg(c, RBX, VA + 0xffdn);
  m.asm('.code64\n jmp rbx', CODE);
  m.runToHalt();
  assert.equal(m.stubVector(), 14);
  assert.deepEqual(m.stack64(2), [0x10n, VA + 0xffdn]);
  assert.equal(cr2(c), VA + 0x1000n);
  // Map the second page and return to the instruction: it now decodes across the boundary.
  pt.set(pte2, BigInt(PA + 0x1000) | P | W);
  m.resume();
  m.runToHalt();
  assert.equal(c.rlo[RAX], 0x11223344);
  assert.equal(rip(c), VA + 0x1003n);
});
