// The GVA → GPA walk behind HvCallTranslateVirtualAddress (src/vmm/vsm/translate-va.ts):
// tlfs-vsm-facts §5.1 control flags, §5.2 result codes and their priority, §5.4 cache
// types, over 32-bit, PAE and 4-level paging (SDM 4.3-4.6) with a Vcpu whose paging state
// is set through KVM_SET_SREGS, and the kvm memory attributes / hypercall overlay page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { KVM_MEMORY_ATTRIBUTE_NR, KVM_MEMORY_ATTRIBUTE_NW, KVM_MEMORY_ATTRIBUTE_NX, KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../src/kvm/memory-attributes.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { Vm } from '../../src/kvm/vm.js';
import { HvTranslateGvaFlags as F, HvTranslateGvaResult as R } from '../../src/spec/tlfs.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';
import { translateGva, type GvaTranslation } from '../../src/vmm/vsm/translate-va.js';
import { LINUX_GUEST_OS_ID, segment } from '../kvm/hypercall-machine.js';

const P = 1n, W = 2n, U = 4n, PWT = 8n, PCD = 0x10n, A = 0x20n, D = 0x40n, PS = 0x80n, XD = 1n << 63n;
const MSR_PAT = 0x277;
const ROOT = 0x400000, TABLES = 0x401000, HYPERCALL_PAGE = 0x50000;
/** PAT entries 0..7: UC, WC, WT, WP, WB, UC-, WB, WB (§5.4 types 0, 1, 4, 5, 6, UC- ⇒ 0). */
const TEST_PAT = 0x0606_0706_0504_0100n;
const R_ = F.ValidateRead, W_ = F.ValidateWrite, X_ = F.ValidateExecute;

type Mode = 'off' | '32' | 'pae' | 'long';

/** A Vm with Hyper-V (for the hypercall overlay page) and one Vcpu whose paging state the tests set. */
class Rig {
  readonly vm: Vm;
  readonly v: Vcpu;
  private next = TABLES;

  constructor(o: { privateMemory?: boolean } = {}) {
    this.vm = new Vm({ memorySize: 16 << 20, privateMemory: o.privateMemory, hyperv: resolveHvFeatures({ flags: new Set(['hv-vpindex']) }) });
    this.v = this.vm.createVcpu(0);
  }

  get mem() { return this.vm.mem; }

  /** Paging mode `mode` with the root at ROOT; CPL from SS.DPL. */
  mode(mode: Mode, o: { nxe?: boolean; wp?: boolean; pse?: boolean; smep?: boolean; smap?: boolean; cpl?: number; ac?: boolean } = {}): void {
    const s = this.v.getSregs();
    const cpl = o.cpl ?? 0;
    s.cs = segment(cpl === 3 ? 0x1b : 0x08, 0xb, { dpl: cpl, l: mode === 'long' ? 1 : 0 });
    s.ds = s.es = s.fs = s.gs = s.ss = segment(cpl === 3 ? 0x23 : 0x10, 0x3, { dpl: cpl });
    s.cr0 = mode === 'off' ? 0x11n : 0x80000011n | (o.wp ?? true ? 0x10000n : 0n);
    s.cr3 = mode === 'off' ? 0n : BigInt(ROOT);
    s.cr4 = (mode === 'pae' || mode === 'long' ? 0x20n : 0n) | (o.pse ? 0x10n : 0n) | (o.smep ? 1n << 20n : 0n) | (o.smap ? 1n << 21n : 0n);
    s.efer = (mode === 'long' ? 0x500n : 0n) | (o.nxe ? 0x800n : 0n);
    this.v.setSregs(s);
    const r = this.v.getRegs();
    r.rflags = o.ac ? 0x40002n : 2n;
    this.v.setRegs(r);
  }

  private alloc(): number {
    const a = this.next;
    this.next += 0x1000;
    return a;
  }

  /**
   * Maps `va` in the 4-level (or PAE) tables at ROOT with a leaf at `leafLevel`
   * (1: 4 KiB, 2: 2 MiB, 3: 1 GiB); entries above it get `upper`. Returns the
   * entry GPAs, root level first.
   */
  map(va: bigint, pa: bigint, leaf: bigint, o: { leafLevel?: number; upper?: bigint; pae?: boolean } = {}): number[] {
    const leafLevel = o.leafLevel ?? 1, upper = o.upper ?? P | W | U;
    const out: number[] = [];
    let table = ROOT;
    const top = o.pae ? 3 : 4;
    for (let level = top; level > leafLevel; level--) {
      const at = o.pae && level === 3 ? ROOT + 8 * Number(va >> 30n) : table + 8 * Number((va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
      let e = this.mem.read64(at);
      if ((e & P) === 0n) {
        e = BigInt(this.alloc()) | (o.pae && level === 3 ? P : upper);
        this.mem.write64(at, e);
      }
      out.push(at);
      table = Number(e & 0xffffffffff000n);
    }
    const at = table + 8 * Number((va >> BigInt(12 + 9 * (leafLevel - 1))) & 0x1ffn);
    this.mem.write64(at, pa | leaf | (leafLevel > 1 ? PS : 0n));
    out.push(at);
    return out;
  }

  /** 32-bit paging: a 4 KiB page (or a 4 MiB one with `large`) for `va`. Returns the entry GPAs. */
  map32(va: number, pde: number, pte?: number): number[] {
    const pdeAt = ROOT + 4 * (va >>> 22);
    if (pte === undefined) { this.mem.write32(pdeAt, pde); return [pdeAt]; }
    const pt = this.alloc();
    this.mem.write32(pdeAt, pt | pde);
    const pteAt = pt + 4 * ((va >>> 12) & 0x3ff);
    this.mem.write32(pteAt, pte);
    return [pdeAt, pteAt];
  }

  tr(gva: bigint, flags = 0): GvaTranslation { return translateGva(this.v, gva, flags); }

  attrs(gpa: number, attributes: number): void { this.vm.setMemoryAttributes({ address: gpa & ~0xfff, size: 0x1000, attributes, flags: 0 }); }
}

const ok = (gpa: bigint, cacheType = 6, overlayPage = false, tlbFlushInhibit = false): GvaTranslation =>
  ({ code: R.Success, gpa, cacheType, overlayPage, tlbFlushInhibit });
const fail = (code: number, tlbFlushInhibit = false): GvaTranslation => ({ code, gpa: 0n, cacheType: 0, overlayPage: false, tlbFlushInhibit });

test('§5.4: paging off: GPA = GVA (32 bits outside long mode), WB; a GPA that is not RAM is GpaUnmapped', () => {
  const r = new Rig();
  r.mode('off');
  assert.deepEqual(r.tr(0x123456n), ok(0x123456n));
  assert.deepEqual(r.tr(0x1_0000_5000n, R_ | W_ | X_), ok(0x5000n), 'truncated to 32 bits');
  assert.deepEqual(r.tr(0xfee00000n), fail(R.GpaUnmapped));
});

test('4-level paging: 4 KiB, 2 MiB and 1 GiB pages keep the offset inside the page', () => {
  const r = new Rig();
  r.mode('long');
  r.map(0x7f12_3456_7000n, 0x345000n, P | W | U);
  r.map(0x40_0020_0000n, 0x600000n, P | W, { leafLevel: 2 });
  r.map(0x80_4000_0000n, 0n, P | W, { leafLevel: 3 });
  assert.deepEqual(r.tr(0x7f12_3456_7abcn), ok(0x345abcn));
  assert.deepEqual(r.tr(0x40_0032_1000n), ok(0x721000n));
  assert.deepEqual(r.tr(0x80_40ab_c123n), ok(0xabc123n));
  assert.deepEqual(r.tr(0xffff_8000_0000_0000n), fail(R.PageNotPresent), 'canonical high half, nothing mapped');
});

test('§5.2: a non-canonical 4-level GVA is InvalidPageTableFlags; outside long mode the GVA is truncated to 32 bits', () => {
  const r = new Rig();
  r.mode('long');
  r.map(0n, 0x5000n, P | W);
  assert.deepEqual(r.tr(0x0000_8000_0000_0000n), fail(R.InvalidPageTableFlags));
  assert.deepEqual(r.tr(0xfff7_0000_0000_0000n), fail(R.InvalidPageTableFlags));
  const r32 = new Rig();
  r32.mode('32');
  r32.map32(0x1000, 0x3, 0x6000 | 0x3);
  assert.deepEqual(r32.tr(0xabcd_0000_1000n), ok(0x6000n));
});

test('32-bit paging: 4 KiB pages; 4 MiB pages only with CR4.PSE, with PSE-36 address bits 20:13 and bit 21 reserved', () => {
  const r = new Rig();
  r.mode('32');
  r.map32(0x0040_3000, 0x3, 0x0009_a000 | 0x3);
  assert.deepEqual(r.tr(0x0040_3123n), ok(0x9a123n));
  r.map32(0x0080_0000, 0x0040_0000 | 0x83); // PS: a 4 MiB page at 4 MiB
  r.mode('32', { pse: true });
  assert.deepEqual(r.tr(0x0091_2345n), ok(0x0051_2345n));
  // Without CR4.PSE the PS bit is ignored: the PDE points to a page table at 0x400000 (= ROOT), whose
  // entry for index 0x112 is 0, so the page is not present.
  r.mode('32');
  assert.deepEqual(r.tr(0x0091_2345n), fail(R.PageNotPresent));
  r.mode('32', { pse: true });
  r.map32(0x00c0_0000, 0x0040_0000 | 0x83 | (1 << 13)); // bit 13 = address bit 32: above guest RAM
  assert.deepEqual(r.tr(0x00c0_0000n), fail(R.GpaUnmapped));
  r.map32(0x0100_0000, 0x0040_0000 | 0x83 | (1 << 21));
  assert.deepEqual(r.tr(0x0100_0000n), fail(R.InvalidPageTableFlags));
});

test('PAE paging: PDPTEs read at CR3, 4 KiB and 2 MiB pages, NX with EFER.NXE, PDPTE reserved bits and P', () => {
  const r = new Rig();
  r.mem.write64(ROOT + 8 * 3, 0n);
  r.map(0xc012_3000n, 0x8000n, P | W | U, { pae: true });
  r.map(0x4060_0000n, 0x200000n, P | W | XD, { pae: true, leafLevel: 2 });
  r.mode('pae', { nxe: true });
  assert.deepEqual(r.tr(0xc012_3456n), ok(0x8456n));
  assert.deepEqual(r.tr(0x4071_0000n, R_), ok(0x310000n));
  assert.deepEqual(r.tr(0x4071_0000n, X_), fail(R.PrivilegeViolation), 'XD');
  assert.deepEqual(r.tr(0x8000_0000n), fail(R.PageNotPresent), 'PDPTE 2 is not present');
  // Without EFER.NXE, XD is a reserved bit.
  r.mode('pae');
  assert.deepEqual(r.tr(0x4071_0000n), fail(R.InvalidPageTableFlags));
  // PAE has no ignored high bits: 62:40 are reserved in a PDE/PTE (SDM tables 4-10, 4-11).
  const [, , pte] = r.map(0xc012_3000n, 0x8000n, P | W | U, { pae: true });
  r.mem.write64(pte, 0x8000n | P | (1n << 55n));
  assert.deepEqual(r.tr(0xc012_3000n), fail(R.InvalidPageTableFlags));
  r.mem.write64(pte, 0x8000n | P);
  assert.deepEqual(r.tr(0xc012_3000n), ok(0x8000n));
  // A PDPTE with reserved bits (written after CR3 was loaded: the walk reads memory).
  r.mem.write64(ROOT + 8 * 3, r.mem.read64(ROOT + 8 * 3) | 0x2n);
  assert.deepEqual(r.tr(0xc012_3000n), fail(R.InvalidPageTableFlags));
});

test('§5.2 PageNotPresent at each 4-level level; P is checked before the reserved bits of the same entry', () => {
  for (let level = 0; level < 4; level++) {
    const r = new Rig();
    r.mode('long');
    const entries = r.map(0x1234_5678_9000n, 0x9000n, P | W);
    r.mem.write64(entries[level], r.mem.read64(entries[level]) & ~P);
    assert.deepEqual(r.tr(0x1234_5678_9000n), fail(R.PageNotPresent), `level ${4 - level}`);
    r.mem.write64(entries[level], r.mem.read64(entries[level]) | (1n << 45n));
    assert.deepEqual(r.tr(0x1234_5678_9000n), fail(R.PageNotPresent), `level ${4 - level}, reserved bits in a non-present entry`);
  }
});

test('§5.2 InvalidPageTableFlags: bits 51:40, XD without NXE, PS in a PML4E, large-page bits 20:13 / 29:13; the highest level first', () => {
  const cases: [string, (r: Rig, e: number[]) => void][] = [
    ['PTE bit 40', (r, e) => r.mem.write64(e[3], r.mem.read64(e[3]) | (1n << 40n))],
    ['PDE bit 51', (r, e) => r.mem.write64(e[2], r.mem.read64(e[2]) | (1n << 51n))],
    ['PTE XD without NXE', (r, e) => r.mem.write64(e[3], r.mem.read64(e[3]) | XD)],
    ['PS in the PML4E', (r, e) => r.mem.write64(e[0], r.mem.read64(e[0]) | PS)],
  ];
  for (const [name, corrupt] of cases) {
    const r = new Rig();
    r.mode('long');
    const e = r.map(0x1000n, 0x9000n, P | W);
    assert.deepEqual(r.tr(0x1000n), ok(0x9000n));
    corrupt(r, e);
    assert.deepEqual(r.tr(0x1000n), fail(R.InvalidPageTableFlags), name);
  }
  const r = new Rig();
  r.mode('long');
  r.map(0x20_0000n, 0x200000n | (1n << 13n), P | W, { leafLevel: 2 });
  r.map(0x40_0000_0000n, 1n << 20n, P | W, { leafLevel: 3 });
  assert.deepEqual(r.tr(0x20_0000n), fail(R.InvalidPageTableFlags), '2 MiB bit 13');
  assert.deepEqual(r.tr(0x40_0000_0000n), fail(R.InvalidPageTableFlags), '1 GiB bit 20');
  // Bits 62:52 are ignored in 4-level paging; bits 62:52 of a PTE do not matter.
  const r2 = new Rig();
  r2.mode('long');
  const e = r2.map(0x1000n, 0x9000n, P | W);
  r2.mem.write64(e[3], r2.mem.read64(e[3]) | (0x7ffn << 52n));
  assert.deepEqual(r2.tr(0x1000n), ok(0x9000n));
  // The highest faulty level wins: a reserved bit in the PML4E beats a not-present PTE.
  r2.mem.write64(e[3], 0n);
  assert.deepEqual(r2.tr(0x1000n), fail(R.PageNotPresent));
  r2.mem.write64(e[0], r2.mem.read64(e[0]) | (1n << 41n));
  assert.deepEqual(r2.tr(0x1000n), fail(R.InvalidPageTableFlags));
});

test('§5.4: the cache type is the PAT entry the leaf selects (PWT, PCD, PAT bit 7 / 12)', () => {
  const r = new Rig();
  r.mode('long');
  assert.equal(r.v.setMsrs([{ index: MSR_PAT, data: TEST_PAT }]), 1);
  const bits4k = [0n, PWT, PCD, PCD | PWT, 0x80n, 0x80n | PWT];
  bits4k.forEach((b, k) => r.map(BigInt(k + 1) << 12n, 0x9000n, P | W | b));
  assert.deepEqual(bits4k.map((_, k) => r.tr(BigInt(k + 1) << 12n).cacheType), [0, 1, 4, 5, 6, 0]);
  r.map(0x4000_0000n, 0x200000n, P | W | 0x1000n, { leafLevel: 2 }); // PAT bit 12 of a 2 MiB entry: index 4
  r.map(0x4020_0000n, 0x200000n, P | W | PCD, { leafLevel: 2 }); // bit 7 is PS there: index 2
  assert.equal(r.tr(0x4000_0000n).cacheType, 6);
  assert.equal(r.tr(0x4020_0000n).cacheType, 4);
});

test('§5.1 privilege: U/S and R/W over every level, CR0.WP, NX, user vs supervisor vs CPL, PrivilegeExempt', () => {
  const r = new Rig();
  r.mode('long', { nxe: true });
  r.map(0x1000n, 0x9000n, P | W | U, { upper: P | W }); // U = 0 in the upper levels: a supervisor page
  r.map(0x80_0000_0000n, 0xa000n, P | U); // user, read-only (PML4 index 1)
  r.map(0x100_0000_0000n, 0xb000n, P | W | XD); // supervisor, no-execute (PML4 index 2)
  const sup = 0x1000n, userRo = 0x80_0000_0000n, nx = 0x100_0000_0000n;
  assert.deepEqual(r.tr(sup, R_ | F.UserAccess), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(sup, R_ | W_ | X_ | F.SupervisorAccess), ok(0x9000n));
  assert.deepEqual(r.tr(sup, F.UserAccess), ok(0x9000n), 'nothing validated: only the walk');
  assert.deepEqual(r.tr(sup, R_ | F.UserAccess | F.PrivilegeExempt), ok(0x9000n));
  assert.deepEqual(r.tr(userRo, R_ | F.UserAccess), ok(0xa000n));
  assert.deepEqual(r.tr(userRo, W_ | F.UserAccess), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(userRo, W_ | F.SupervisorAccess), fail(R.PrivilegeViolation), 'CR0.WP = 1');
  assert.deepEqual(r.tr(userRo, W_ | F.PrivilegeExempt), fail(R.PrivilegeViolation), 'exempt keeps R/W under WP');
  assert.deepEqual(r.tr(nx, X_ | F.SupervisorAccess), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(nx, X_ | F.PrivilegeExempt), fail(R.PrivilegeViolation), 'exempt keeps NX');
  assert.deepEqual(r.tr(nx, R_ | W_ | F.SupervisorAccess), ok(0xb000n));
  // Both UserAccess and SupervisorAccess: both must pass.
  assert.deepEqual(r.tr(sup, R_ | F.UserAccess | F.SupervisorAccess), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(userRo, R_ | F.UserAccess | F.SupervisorAccess), ok(0xa000n));
  // Neither: the Vcpu's CPL decides.
  assert.deepEqual(r.tr(sup, R_), ok(0x9000n), 'CPL 0');
  r.mode('long', { nxe: true, cpl: 3 });
  assert.deepEqual(r.tr(sup, R_), fail(R.PrivilegeViolation), 'CPL 3');
  assert.deepEqual(r.tr(sup, R_ | F.SupervisorAccess), ok(0x9000n));
  // CR0.WP = 0: supervisor writes ignore R/W, user writes do not.
  r.mode('long', { nxe: true, wp: false });
  assert.deepEqual(r.tr(userRo, W_), ok(0xa000n));
  assert.deepEqual(r.tr(userRo, W_ | F.PrivilegeExempt), ok(0xa000n));
  assert.deepEqual(r.tr(userRo, W_ | F.UserAccess), fail(R.PrivilegeViolation));
});

test('§5.1 SMEP and SMAP: supervisor access to user pages, RFLAGS.AC, EnforceSmap, OverrideSmap, PrivilegeExempt', () => {
  const r = new Rig();
  r.map(0x1000n, 0x9000n, P | W | U);
  const page = 0x1000n;
  r.mode('long', { smep: true, smap: true });
  assert.deepEqual(r.tr(page, X_), fail(R.PrivilegeViolation), 'SMEP');
  assert.deepEqual(r.tr(page, X_ | F.UserAccess), ok(0x9000n));
  assert.deepEqual(r.tr(page, X_ | F.PrivilegeExempt), ok(0x9000n));
  assert.deepEqual(r.tr(page, R_), fail(R.PrivilegeViolation), 'SMAP, AC = 0');
  assert.deepEqual(r.tr(page, W_), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(page, R_ | F.OverrideSmap), ok(0x9000n));
  assert.deepEqual(r.tr(page, R_ | F.UserAccess), ok(0x9000n));
  assert.deepEqual(r.tr(page, R_ | F.UserAccess | F.SupervisorAccess), fail(R.PrivilegeViolation), 'both: the supervisor check fails');
  assert.deepEqual(r.tr(page, R_ | F.PrivilegeExempt), ok(0x9000n));
  r.mode('long', { smep: true, smap: true, ac: true });
  assert.deepEqual(r.tr(page, R_ | W_), ok(0x9000n), 'AC = 1 at CPL 0');
  assert.deepEqual(r.tr(page, R_ | F.EnforceSmap), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(page, R_ | F.EnforceSmap | F.OverrideSmap), ok(0x9000n), 'OverrideSmap wins');
  assert.deepEqual(r.tr(page, X_), fail(R.PrivilegeViolation), 'AC does not lift SMEP');
  r.mode('long', { smep: true, smap: true, ac: true, cpl: 3 });
  assert.deepEqual(r.tr(page, R_ | F.SupervisorAccess), fail(R.PrivilegeViolation), 'implicit supervisor access at CPL 3');
  assert.deepEqual(r.tr(page, R_), ok(0x9000n), 'CPL 3 is a user access');
  r.mode('long');
  assert.deepEqual(r.tr(page, R_ | X_), ok(0x9000n), 'without CR4.SMEP/SMAP');
});

test('§5.1 SetPageTableBits: A on every level, D on the leaf for a validated write, only when asked, only on success', () => {
  const r = new Rig();
  r.mode('long');
  const e = r.map(0x1000n, 0x9000n, P | W);
  const before = e.map((a) => r.mem.read64(a));
  assert.deepEqual(r.tr(0x1000n, R_ | W_), ok(0x9000n));
  assert.deepEqual(e.map((a) => r.mem.read64(a)), before, 'not asked');
  assert.deepEqual(r.tr(0x1000n, W_ | F.UserAccess | F.SetPageTableBits), fail(R.PrivilegeViolation));
  assert.deepEqual(e.map((a) => r.mem.read64(a)), before, 'failed');
  assert.deepEqual(r.tr(0x1000n, R_ | F.SetPageTableBits), ok(0x9000n));
  assert.deepEqual(e.map((a) => r.mem.read64(a)), before.map((x) => x | A));
  assert.deepEqual(r.tr(0x1000n, W_ | F.SetPageTableBits), ok(0x9000n));
  assert.deepEqual(e.map((a) => r.mem.read64(a)), [...before.slice(0, 3).map((x) => x | A), before[3] | A | D]);
  // A 2 MiB leaf gets D; the vCPU's TLB learnt nothing (no TLB side effects).
  const e2 = r.map(0x4000_0000n, 0x200000n, P | W, { leafLevel: 2 });
  assert.deepEqual(r.tr(0x4000_0000n, W_ | F.SetPageTableBits), ok(0x200000n));
  assert.equal(r.mem.read64(e2[2]), 0x200000n | P | W | PS | A | D);
  assert.equal(r.v.cpu.mmu.cachedTranslation(0x4000_0000, 0), -1);
});

test('§5.1 SetPageTableBits in PAE (no A in PDPTEs) and 32-bit paging', () => {
  const r = new Rig();
  const e = r.map(0x1000n, 0x9000n, P | W, { pae: true });
  r.mode('pae');
  const pdpte = r.mem.read64(e[0]);
  assert.deepEqual(r.tr(0x1000n, W_ | F.SetPageTableBits), ok(0x9000n));
  assert.equal(r.mem.read64(e[0]), pdpte);
  assert.equal(r.mem.read64(e[1]) & (A | D), A);
  assert.equal(r.mem.read64(e[2]) & (A | D), A | D);
  const r32 = new Rig();
  r32.mode('32');
  const [pde, pte] = r32.map32(0x2000, 0x3, 0x9000 | 0x3);
  assert.deepEqual(r32.tr(0x2000n, R_ | F.SetPageTableBits), ok(0x9000n));
  assert.equal(r32.mem.read32(pde) & 0x60, 0x20);
  assert.equal(r32.mem.read32(pte), 0x9023);
  assert.equal(r32.mem.read32(pte + 4), 0, 'a 4-byte entry: its neighbour is untouched');
});

test('§5.2 A/D writes need a writable page-table page: NW ⇒ GpaNoWriteAccess, overlay ⇒ GpaIllegalOverlayAccess, none written', () => {
  const r = new Rig();
  r.mode('long');
  const e = r.map(0x1000n, 0x9000n, P | W);
  r.attrs(e[2], KVM_MEMORY_ATTRIBUTE_NW); // the PD page
  const before = e.map((a) => r.mem.read64(a));
  assert.deepEqual(r.tr(0x1000n, R_), ok(0x9000n), 'reading it is allowed');
  assert.deepEqual(r.tr(0x1000n, R_ | F.SetPageTableBits), fail(R.GpaNoWriteAccess));
  assert.deepEqual(e.map((a) => r.mem.read64(a)), before, 'nothing set, not even above the PD');
  // With A already set in the PDE, no write to that page is needed.
  r.mem.write64(e[2], before[2] | A);
  assert.deepEqual(r.tr(0x1000n, R_ | F.SetPageTableBits), ok(0x9000n));
  assert.equal(r.mem.read64(e[3]) & A, A);
  // A page table on the hypercall (overlay) page, in 32-bit paging: its first dword, 0F 01 C1 C3 (VMCALL; RET),
  // is a present PTE (P, R/W, U/S, PWT; A = 0) for the page at 0xC3C10000, which is not RAM.
  const o = new Rig();
  o.vm.hyperv!.writeGuestOsId(LINUX_GUEST_OS_ID);
  assert.ok(o.vm.hyperv!.writeHypercall(BigInt(HYPERCALL_PAGE) | 1n));
  o.mode('32');
  o.mem.write32(ROOT, HYPERCALL_PAGE | 0x23);
  assert.equal(o.mem.read32(HYPERCALL_PAGE), 0xc3c1010f);
  assert.deepEqual(o.tr(0n), fail(R.GpaUnmapped));
  assert.deepEqual(o.tr(0n, F.SetPageTableBits), fail(R.GpaIllegalOverlayAccess), 'A/D writes come before the final GPA');
  assert.equal(o.mem.read32(HYPERCALL_PAGE), 0xc3c1010f);
});

test('§5.2 the final GPA: unmapped, unaccepted (PRIVATE), attributes (NR, NW, NX), overlay page; priorities', () => {
  const r = new Rig({ privateMemory: true });
  r.mode('long');
  r.map(0x1000n, 0xfee00000n, P | W); // the APIC page: MMIO, not RAM
  r.map(0x2000n, 0x9000n, P | W);
  r.map(0x3000n, 0xa000n, P | W);
  assert.deepEqual(r.tr(0x1000n, R_), fail(R.GpaUnmapped));
  r.attrs(0x9000, KVM_MEMORY_ATTRIBUTE_NR | KVM_MEMORY_ATTRIBUTE_NW | KVM_MEMORY_ATTRIBUTE_NX);
  assert.deepEqual(r.tr(0x2000n), ok(0x9000n), 'nothing validated');
  assert.deepEqual(r.tr(0x2000n, R_), fail(R.GpaNoReadAccess));
  assert.deepEqual(r.tr(0x2000n, W_), fail(R.GpaNoWriteAccess));
  assert.deepEqual(r.tr(0x2000n, X_), fail(R.Intercept));
  assert.deepEqual(r.tr(0x2000n, R_ | W_ | X_), fail(R.GpaNoReadAccess), 'read before write before execute');
  r.attrs(0x9000, KVM_MEMORY_ATTRIBUTE_NW | KVM_MEMORY_ATTRIBUTE_NX);
  assert.deepEqual(r.tr(0x2000n, R_), ok(0x9000n));
  assert.deepEqual(r.tr(0x2000n, W_ | X_), fail(R.GpaNoWriteAccess));
  r.attrs(0x9000, KVM_MEMORY_ATTRIBUTE_NX);
  assert.deepEqual(r.tr(0x2000n, R_ | W_), ok(0x9000n));
  assert.deepEqual(r.tr(0x2000n, X_), fail(R.Intercept));
  r.attrs(0xa000, KVM_MEMORY_ATTRIBUTE_PRIVATE);
  assert.deepEqual(r.tr(0x3000n), fail(R.GpaUnaccepted));
  // A page-table page: PRIVATE / NR stop the walk even with nothing validated.
  const other = 0x80_0000_4000n; // PML4 index 1: its own tables
  const e = r.map(other, 0x9000n, P | W);
  r.attrs(e[3], KVM_MEMORY_ATTRIBUTE_NR | KVM_MEMORY_ATTRIBUTE_NW | KVM_MEMORY_ATTRIBUTE_NX);
  assert.deepEqual(r.tr(other), fail(R.GpaNoReadAccess));
  r.attrs(e[3], KVM_MEMORY_ATTRIBUTE_PRIVATE);
  assert.deepEqual(r.tr(other), fail(R.GpaUnaccepted));
  // A page table outside RAM.
  r.mem.write64(e[2], 0x2000000n | P | W);
  assert.deepEqual(r.tr(other), fail(R.GpaUnmapped));
  // A privilege violation beats a GPA failure of the final page (the walk ends first).
  r.mode('long', { cpl: 3 });
  assert.deepEqual(r.tr(0x1000n, R_), fail(R.PrivilegeViolation));
  assert.deepEqual(r.tr(0x1000n), fail(R.GpaUnmapped));
});

test('§5.2 OverlayPage: the hypercall page reports bit 40 on success; a validated write to it is GpaIllegalOverlayAccess', () => {
  const r = new Rig();
  r.vm.hyperv!.writeGuestOsId(LINUX_GUEST_OS_ID);
  assert.ok(r.vm.hyperv!.writeHypercall(BigInt(HYPERCALL_PAGE) | 1n));
  r.mode('long');
  r.map(0x1000n, BigInt(HYPERCALL_PAGE), P | W);
  r.map(0x2000n, BigInt(HYPERCALL_PAGE) + 0x1000n, P | W);
  assert.deepEqual(r.tr(0x1010n, R_ | X_), ok(BigInt(HYPERCALL_PAGE) + 0x10n, 6, true));
  assert.deepEqual(r.tr(0x1000n, W_), fail(R.GpaIllegalOverlayAccess));
  assert.deepEqual(r.tr(0x2000n, W_), ok(BigInt(HYPERCALL_PAGE) + 0x1000n), 'the next page is plain RAM');
  r.mode('off');
  assert.deepEqual(r.tr(BigInt(HYPERCALL_PAGE), R_), ok(BigInt(HYPERCALL_PAGE), 6, true));
  r.vm.hyperv!.writeHypercall(0n);
  assert.deepEqual(r.tr(BigInt(HYPERCALL_PAGE), W_), ok(BigInt(HYPERCALL_PAGE)), 'disabled: no overlay');
});

test('§5.1 TlbFlushInhibit is reported back, on success and on failure', () => {
  const r = new Rig();
  r.mode('long');
  r.map(0x1000n, 0x9000n, P | W);
  assert.deepEqual(r.tr(0x1000n, F.TlbFlushInhibit | R_), ok(0x9000n, 6, false, true));
  assert.deepEqual(r.tr(0x5000n, F.TlbFlushInhibit), fail(R.PageNotPresent, true));
});

test('translateGva refuses bad arguments with a VsmError and changes nothing', () => {
  const r = new Rig();
  r.mode('long');
  const e = r.map(0x1000n, 0x9000n, P | W);
  assert.throws(() => r.tr(0x1000n, 0x800 | F.SetPageTableBits), VsmError);
  assert.throws(() => r.tr(0x1000n, F.ShadowStack | F.SetPageTableBits), /shadow-stack/);
  assert.throws(() => r.tr(0x1000n, -1), VsmError);
  assert.throws(() => translateGva(r.v, 1n << 64n, 0), VsmError);
  assert.equal(r.mem.read64(e[3]), 0x9000n | P | W);
});
