/**
 * vCPU register access in KVM's shapes: KVM_GET/SET_REGS (struct kvm_regs),
 * KVM_GET/SET_SREGS (struct kvm_sregs without interrupt_bitmap, which only a
 * userspace irqchip uses) and the XMM registers of KVM_GET/SET_FPU (what
 * hypercall XMM input and output need, kvm-api-facts.md §3.1).
 *
 * Values are bigints at this edge (DESIGN §3.1). Bad values are EINVAL and
 * change nothing: each setter checks everything before it writes anything.
 * KVM itself accepts some of the values rejected here and fails the next
 * VM entry instead (KVM_EXIT_FAIL_ENTRY); we have no VM entry to fail, so
 * the checks move to the setter.
 */
import type { Cpu } from '../x86/cpu.js';
import {
  CR0_CD, CR0_ET, CR0_NW, CR0_PE, CR0_PG, CR4_PAE, CR4_PCIDE, CR4_SUPPORTED, EFER_LMA, EFER_LME, EFER_SUPPORTED,
  ES, CS, SS, DS, FS, GS, LDTR, TR,
} from '../x86/regs.js';
import { ATTR_DB, ATTR_G, ATTR_L, ATTR_P, ATTR_S, attrDpl } from '../x86/segment-cache.js';
import type { LocalApic } from './lapic.js';
import { KvmError } from './errors.js';
import type { PhysMemory } from '../memory/phys-memory.js';
import { u64FromHalves as big } from '../x86/u64.js';

/** struct kvm_regs. */
export interface KvmRegs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint; rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** struct kvm_segment: the hidden part of a segment register, limit in bytes (granularity applied). */
export interface KvmSegment {
  base: bigint; limit: number; selector: number;
  type: number; present: number; dpl: number; db: number; s: number; l: number; g: number; avl: number; unusable: number;
}

/** struct kvm_dtable. */
export interface KvmDtable { base: bigint; limit: number }

/** struct kvm_sregs (less interrupt_bitmap). */
export interface KvmSregs {
  cs: KvmSegment; ds: KvmSegment; es: KvmSegment; fs: KvmSegment; gs: KvmSegment; ss: KvmSegment;
  tr: KvmSegment; ldt: KvmSegment;
  gdt: KvmDtable; idt: KvmDtable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint; efer: bigint; apicBase: bigint;
}

/** One XMM register as two 64-bit halves (as kvm_run's hyperv.xmm[] entries). */
export interface XmmRegister { low: bigint; high: bigint }

/** KVM_GET_REGS field order mapped to our register numbers (encoding order). */
const GPRS: readonly [keyof KvmRegs, number][] = [
  ['rax', 0], ['rcx', 1], ['rdx', 2], ['rbx', 3], ['rsp', 4], ['rbp', 5], ['rsi', 6], ['rdi', 7],
  ['r8', 8], ['r9', 9], ['r10', 10], ['r11', 11], ['r12', 12], ['r13', 13], ['r14', 14], ['r15', 15],
];
const SEGS: readonly [keyof KvmSregs, number][] = [['es', ES], ['cs', CS], ['ss', SS], ['ds', DS], ['fs', FS], ['gs', GS], ['ldt', LDTR], ['tr', TR]];

/** RFLAGS bits that must be 0 (VM-entry check, SDM 26.3.1.4): 63:22, 15, 5, 3. Bit 1 is forced to 1, as KVM does. */
const RFLAGS_RESERVED = ~((1n << 22n) - 1n) & ((1n << 64n) - 1n) | (1n << 15n) | (1n << 5n) | (1n << 3n);
const RFLAGS_VM = 1n << 17n;
const U64_LIMIT = 1n << 64n;
/** MAXPHYADDR of our CPU (CPUID 0x80000008): CR3 bits above it are reserved in long mode. */
const PHYS_BITS = 40n;

const lo32 = (v: bigint): number => Number(v & 0xffffffffn) | 0;
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn) | 0;

function u64(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v >= U64_LIMIT) throw new KvmError('EINVAL', `${what} must be a bigint in 0..2^64-1, got ${String(v)}`);
  return v;
}
function uint(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new KvmError('EINVAL', `${what} must be an integer in 0..${max}, got ${String(v)}`);
  return v;
}
/** Bits 63:47 all equal (48-bit linear addresses, SDM 3.3.7.1). */
function canonical(v: bigint): boolean {
  const top = v >> 47n;
  return top === 0n || top === (1n << 17n) - 1n;
}

// ---- KVM_GET_REGS / KVM_SET_REGS ----

export function getRegs(c: Cpu): KvmRegs {
  const r = {} as KvmRegs;
  for (const [name, k] of GPRS) r[name] = big(c.rlo[k], c.rhi[k]);
  r.rip = big(c.ripLo, c.ripHi);
  r.rflags = BigInt(c.getRflags() >>> 0);
  return r;
}

/** KVM_SET_REGS: every field a u64, RIP canonical, no reserved RFLAGS bit, no RFLAGS.VM in long mode. */
export function setRegs(c: Cpu, regs: KvmRegs): void {
  if (typeof regs !== 'object' || regs === null) throw new KvmError('EFAULT', 'the registers argument is not an object');
  for (const [name] of GPRS) u64(regs[name], `register ${name}`);
  const rip = u64(regs.rip, 'register rip');
  const rflags = u64(regs.rflags, 'register rflags');
  if (!canonical(rip)) throw new KvmError('EINVAL', `RIP 0x${rip.toString(16)} is not canonical`);
  if ((rflags & RFLAGS_RESERVED) !== 0n) throw new KvmError('EINVAL', `RFLAGS 0x${rflags.toString(16)} sets reserved bits (63:22, 15, 5 or 3)`);
  if ((rflags & RFLAGS_VM) !== 0n && (c.efer & EFER_LMA)) throw new KvmError('EINVAL', 'RFLAGS.VM cannot be set in long mode');
  for (const [name, k] of GPRS) { const v = regs[name]; c.rlo[k] = lo32(v); c.rhi[k] = hi32(v); }
  c.ripLo = lo32(rip); c.ripHi = hi32(rip);
  c.setRflags(Number(rflags) | 2);
  c.intrCheck = true; // IF may have changed (KVM raises KVM_REQ_EVENT)
}

// ---- KVM_GET_SREGS / KVM_SET_SREGS ----

function getSegment(c: Cpu, k: number): KvmSegment {
  const a = c.segAttr[k];
  return {
    base: big(c.segBaseLo[k], c.segBaseHi[k]), limit: c.segLimit[k] >>> 0, selector: c.segSel[k] & 0xffff,
    type: a & 0xf, present: (a & ATTR_P) ? 1 : 0, dpl: attrDpl(a), db: (a & ATTR_DB) ? 1 : 0, s: (a & ATTR_S) ? 1 : 0,
    l: (a & ATTR_L) ? 1 : 0, g: (a & ATTR_G) ? 1 : 0, avl: (a >> 12) & 1, unusable: (a & ATTR_P) ? 0 : 1,
  };
}

/** Our descriptor-cache attribute word for a kvm_segment (VMX access-rights layout; unusable = not present, DPL kept). */
function segmentAttr(s: KvmSegment): number {
  const dpl = s.dpl << 5;
  if (s.unusable || !s.present) return dpl;
  return s.type | (s.s << 4) | dpl | ATTR_P | (s.avl << 12) | (s.l << 13) | (s.db << 14) | (s.g << 15);
}

function checkSegment(s: unknown, name: string): KvmSegment {
  if (typeof s !== 'object' || s === null) throw new KvmError('EINVAL', `segment ${name} is missing`);
  const seg = s as KvmSegment;
  u64(seg.base, `${name}.base`);
  uint(seg.limit, 0xffffffff, `${name}.limit`);
  uint(seg.selector, 0xffff, `${name}.selector`);
  uint(seg.type, 15, `${name}.type`);
  uint(seg.dpl, 3, `${name}.dpl`);
  for (const f of ['present', 's', 'db', 'l', 'g', 'avl', 'unusable'] as const) uint(seg[f], 1, `${name}.${f}`);
  return seg;
}

export function getSregs(c: Cpu, apic: LocalApic): KvmSregs {
  const r = {} as KvmSregs;
  for (const [name, k] of SEGS) (r as unknown as Record<string, KvmSegment>)[name] = getSegment(c, k);
  r.gdt = { base: big(c.gdtrBaseLo, c.gdtrBaseHi), limit: c.gdtrLimit & 0xffff };
  r.idt = { base: big(c.idtrBaseLo, c.idtrBaseHi), limit: c.idtrLimit & 0xffff };
  r.cr0 = BigInt(c.cr0 >>> 0);
  r.cr2 = big(c.cr2Lo, c.cr2Hi);
  r.cr3 = big(c.cr3Lo, c.cr3Hi);
  r.cr4 = BigInt(c.cr4 >>> 0);
  r.cr8 = BigInt(apic.readCr8());
  r.efer = BigInt(c.efer >>> 0);
  r.apicBase = apic.readApicBase();
  return r;
}

/**
 * KVM_SET_SREGS. Checks (EINVAL): field types; KVM's kvm_is_valid_sregs
 * (LME+PG needs PAE and LMA and a CR3 below MAXPHYADDR, otherwise neither LMA
 * nor CS.L), kvm_is_valid_cr0 (no bits 63:32, PG needs PE, NW needs CD),
 * CR4 and EFER bits this CPU implements, CR8 in 0..15, PCIDE only in long
 * mode, PAE paging with valid PDPTEs (read from `mem` at CR3), and an APIC
 * base the local APIC accepts. Then it loads everything and recomputes the
 * CPU mode and CPL (SS.DPL, as KVM's VMX code).
 *
 * The TLB is flushed only when KVM flushes it: __set_sregs_common marks the
 * MMU for a reset when CR0, CR3, CR4 or EFER differs from the vCPU's value
 * (the whole value, not only the paging bits), or when PAE paging outside
 * long mode reloads the PDPTEs; __set_sregs then resets the MMU and requests
 * KVM_REQ_TLB_FLUSH_GUEST. Setting the same paging context (with a new CR2,
 * segments, tables, CR8 or APIC base) keeps every cached translation, so the
 * VMM can load registers without the flush a guest would observe.
 */
export function setSregs(c: Cpu, apic: LocalApic, mem: PhysMemory, sregs: KvmSregs): void {
  if (typeof sregs !== 'object' || sregs === null) throw new KvmError('EFAULT', 'the special registers argument is not an object');
  const segs = SEGS.map(([name, k]) => [checkSegment(sregs[name], name), k] as const);
  for (const t of ['gdt', 'idt'] as const) {
    const d = sregs[t];
    if (typeof d !== 'object' || d === null) throw new KvmError('EINVAL', `${t} is missing`);
    u64(d.base, `${t}.base`);
    uint(d.limit, 0xffff, `${t}.limit`);
  }
  const cr0 = u64(sregs.cr0, 'cr0'), cr2 = u64(sregs.cr2, 'cr2'), cr3 = u64(sregs.cr3, 'cr3');
  const cr4 = u64(sregs.cr4, 'cr4'), cr8 = u64(sregs.cr8, 'cr8'), efer = u64(sregs.efer, 'efer');
  const apicBase = u64(sregs.apicBase, 'apicBase');

  if ((cr0 >> 32n) !== 0n) throw new KvmError('EINVAL', `CR0 0x${cr0.toString(16)} sets bits 63:32`);
  if ((cr0 & BigInt(CR0_PG >>> 0)) && !(cr0 & BigInt(CR0_PE))) throw new KvmError('EINVAL', 'CR0.PG is set without CR0.PE');
  if ((cr0 & BigInt(CR0_NW)) && !(cr0 & BigInt(CR0_CD))) throw new KvmError('EINVAL', 'CR0.NW is set without CR0.CD');
  if ((cr4 & ~BigInt(CR4_SUPPORTED)) !== 0n) throw new KvmError('EINVAL', `CR4 0x${cr4.toString(16)} sets bits this CPU does not implement`);
  if ((efer & ~BigInt(EFER_SUPPORTED)) !== 0n) throw new KvmError('EINVAL', `EFER 0x${efer.toString(16)} sets bits this CPU does not implement`);
  if (cr8 > 15n) throw new KvmError('EINVAL', `CR8 ${cr8} is not in 0..15`);
  const pg = (cr0 & BigInt(CR0_PG >>> 0)) !== 0n, pae = (cr4 & BigInt(CR4_PAE)) !== 0n;
  const lme = (efer & BigInt(EFER_LME)) !== 0n, lma = (efer & BigInt(EFER_LMA)) !== 0n;
  const cs = segs[1][0];
  if (lme && pg) {
    if (!pae || !lma) throw new KvmError('EINVAL', 'EFER.LME with CR0.PG needs CR4.PAE and EFER.LMA');
    if ((cr3 >> PHYS_BITS) !== 0n) throw new KvmError('EINVAL', `CR3 0x${cr3.toString(16)} sets bits above MAXPHYADDR (${PHYS_BITS})`);
  } else {
    if (lma) throw new KvmError('EINVAL', 'EFER.LMA is set outside long mode (needs EFER.LME and CR0.PG)');
    if (cs.l) throw new KvmError('EINVAL', 'CS.L is set outside long mode');
    if ((cr3 >> 32n) !== 0n) throw new KvmError('EINVAL', `CR3 0x${cr3.toString(16)} sets bits 63:32 outside long mode`);
  }
  if ((cr4 & BigInt(CR4_PCIDE)) && !lma) throw new KvmError('EINVAL', 'CR4.PCIDE needs long mode');
  let pdptes: bigint[] | null = null;
  if (pg && pae && !lma) pdptes = readPdptes(mem, Number(cr3 & 0xffffffe0n));

  // Everything is valid; the APIC base is the one part that can still say no, so it goes first.
  if (apicBase !== apic.readApicBase() && !apic.writeApicBase(apicBase)) {
    throw new KvmError('EINVAL', `the local APIC rejects APIC base 0x${apicBase.toString(16)}`);
  }
  const newCr0 = lo32(cr0) | CR0_ET;
  const pagingContextChanged = newCr0 !== c.cr0 || lo32(cr3) !== c.cr3Lo || hi32(cr3) !== c.cr3Hi ||
    lo32(cr4) !== c.cr4 || lo32(efer) !== c.efer || pdptes !== null;
  for (const [s, k] of segs) {
    c.segBaseLo[k] = lo32(s.base); c.segBaseHi[k] = hi32(s.base);
    c.segLimit[k] = s.limit | 0; c.segSel[k] = s.selector; c.segAttr[k] = segmentAttr(s);
  }
  c.gdtrBaseLo = lo32(sregs.gdt.base); c.gdtrBaseHi = hi32(sregs.gdt.base); c.gdtrLimit = sregs.gdt.limit;
  c.idtrBaseLo = lo32(sregs.idt.base); c.idtrBaseHi = hi32(sregs.idt.base); c.idtrLimit = sregs.idt.limit;
  c.cr0 = newCr0;
  c.cr2Lo = lo32(cr2); c.cr2Hi = hi32(cr2);
  c.cr3Lo = lo32(cr3); c.cr3Hi = hi32(cr3);
  c.cr4 = lo32(cr4);
  c.efer = lo32(efer);
  apic.writeCr8(Number(cr8));
  if (pdptes !== null) for (let k = 0; k < 4; k++) { c.mmu.pdpte[2 * k] = lo32(pdptes[k]); c.mmu.pdpte[2 * k + 1] = hi32(pdptes[k]); }
  c.updateMode();
  c.cpl = (c.cr0 & CR0_PE) ? attrDpl(c.segAttr[SS]) : 0;
  if (pagingContextChanged) c.mmu.flushAll();
  else c.mmu.dropFast(); // segments and CPL feed the fast caches; dropping them is never visible
  c.intrCheck = true;
}

/** The four PAE PDPTEs at `base` (SDM 4.4.1); EINVAL if one that is present sets reserved bits. */
function readPdptes(mem: PhysMemory, base: number): bigint[] {
  if (base + 32 > mem.size) throw new KvmError('EINVAL', `the PAE page-directory-pointer table at 0x${base.toString(16)} is outside guest memory`);
  const out: bigint[] = [];
  for (let k = 0; k < 4; k++) {
    const e = mem.read64(base + 8 * k);
    // Reserved: bits 2:1, 8:5 and bits 63:MAXPHYADDR.
    if ((e & 1n) && ((e & 0x1e6n) !== 0n || (e >> PHYS_BITS) !== 0n)) {
      throw new KvmError('EINVAL', `PDPTE ${k} (0x${e.toString(16)}) sets reserved bits`);
    }
    out.push(e);
  }
  return out;
}

// ---- XMM registers (KVM_GET_FPU / KVM_SET_FPU's xmm[16]) ----

export function getXmm(c: Cpu, index: number): XmmRegister {
  uint(index, 15, 'XMM register index');
  const x = c.xmm, k = index << 2;
  return { low: big(x[k], x[k + 1]), high: big(x[k + 2], x[k + 3]) };
}

export function setXmm(c: Cpu, index: number, value: XmmRegister): void {
  uint(index, 15, 'XMM register index');
  if (typeof value !== 'object' || value === null) throw new KvmError('EINVAL', 'the XMM value is not an object');
  const low = u64(value.low, `xmm${index}.low`), high = u64(value.high, `xmm${index}.high`);
  const x = c.xmm, k = index << 2;
  x[k] = lo32(low); x[k + 1] = hi32(low); x[k + 2] = lo32(high); x[k + 3] = hi32(high);
}
