/**
 * The GVA → GPA translation behind HvCallTranslateVirtualAddress(Ex)
 * (tlfs-vsm-facts §2.16, §5): a host-side walk of a Vcpu's page tables with
 * that Vcpu's paging state (CR0, CR3, CR4, EFER from KVM_GET_SREGS, PAT from
 * KVM_GET_MSRS), reading guest memory directly. It never touches the CPU's
 * MMU or TLB; it writes guest memory only to set accessed/dirty bits, and
 * only when asked (SetPageTableBits) and only when the translation succeeds.
 *
 * Paging modes (SDM 4.3-4.5): none (GPA = GVA, cache type WB as the hv1
 * emulator reports, §5.4), 32-bit (4 KiB, and 4 MiB with CR4.PSE, PSE-36
 * address bits 20:13), PAE (4 KiB, 2 MiB) and 4-level (4 KiB, 2 MiB, 1 GiB).
 * Outside long mode the GVA is truncated to 32 bits. In PAE mode the PDPTEs
 * are read from memory at CR3: KVM_GET_SREGS does not carry the PDPTE
 * registers (KVM_GET_SREGS2 would).
 *
 * Result codes (§5.2) and their priority, which is the order a real access
 * meets them:
 * 1. Walking, level by level from the root: the page-table page's GPA
 *    (not RAM ⇒ GpaUnmapped; a PRIVATE frame ⇒ GpaUnaccepted; read denied
 *    by the memory attributes ⇒ GpaNoReadAccess), then the entry (P = 0 ⇒
 *    PageNotPresent; reserved bits ⇒ InvalidPageTableFlags). A
 *    non-canonical 4-level GVA is InvalidPageTableFlags too (no code fits
 *    better; openvmm's walker makes the same choice).
 * 2. The access rights of the whole walk (SDM 4.6) for every access the
 *    flags validate ⇒ PrivilegeViolation.
 * 3. With SetPageTableBits, the entries whose A (or leaf D) bit must be set
 *    must be writable: a page-table page that is the overlay page ⇒
 *    GpaIllegalOverlayAccess, write denied by the attributes ⇒
 *    GpaNoWriteAccess (kvm §2.7: a walker's A/D write is a write).
 * 4. The final GPA: not RAM ⇒ GpaUnmapped (MMIO is not mapped in the
 *    hypervisor's GPA map; attributes do not apply to it, kvm §2.5);
 *    PRIVATE ⇒ GpaUnaccepted; a validated write to the overlay page (the
 *    hypercall page, read+execute only, §1.4) ⇒ GpaIllegalOverlayAccess;
 *    validated read / write the attributes deny ⇒ GpaNoReadAccess /
 *    GpaNoWriteAccess; validated execute they deny ⇒ Intercept (§5.2 has
 *    no no-execute code; Intercept is "access would be intercepted by a
 *    higher VTL (VTL protection)"). An execute at a user-mode address by a
 *    VTL running with MBEC is checked against user execute, as its fetch
 *    would be.
 *
 * The memory attributes are those of the Vcpu's own Vm: for a lower VTL,
 * the protections the higher VTLs put on it (README "A protection
 * violation becomes an intercept"). They tell what is denied, not which
 * VTL denies it, so a read or write denial is always GpaNo*Access, never
 * Intercept.
 *
 * Control flags (§5.1): ValidateRead/Write/Execute pick the accesses to
 * check (none: only the walk). The privilege of the check: PrivilegeExempt
 * ⇒ supervisor rules without SMEP and SMAP (U/S bits do not matter);
 * otherwise UserAccess and/or SupervisorAccess (both set: both must pass),
 * or, with neither, the Vcpu's CPL (SS.DPL; 3 = user). Supervisor rules:
 * writes need R/W = 1 only with CR0.WP; execute is refused on user pages
 * with CR4.SMEP; data accesses to user pages are refused with CR4.SMAP
 * unless OverrideSmap, or RFLAGS.AC = 1 at CPL < 3 without EnforceSmap
 * (OverrideSmap wins when both are set). NX counts only with EFER.NXE.
 * TlbFlushInhibit is reported back for the hypercall to take the TLB lock.
 * ShadowStack is refused (VsmError): this CPU has no CET, and
 * VsmCapabilities offers no supervisor shadow stacks.
 */
import { mbecChecksUserFetch } from '../../kvm/mbec.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../kvm/memory-attributes.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import { HV_PAGE_SIZE, HvCacheType, HvTranslateGvaFlags as F, HvTranslateGvaResult as R } from '../../spec/tlfs.js';
import { ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_READ, ACCESS_WRITE } from '../../x86/host.js';
import { MAX_PHYS_BITS } from '../../x86/mmu.js';
import {
  CR0_PG, CR0_WP, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE, AC, MSR_PAT, PTE_A, PTE_D, PTE_P, PTE_PS, PTE_U, PTE_W,
} from '../../x86/regs.js';
import { cacheTypeFromPat, patIndex } from './cache-type.js';
import { VsmError, u64 } from './errors.js';

/** What a translation gives (§5.2): on failure only `code` (and `tlbFlushInhibit`) mean anything; the rest is 0. */
export interface GvaTranslation {
  /** HV_TRANSLATE_GVA_RESULT_CODE. */
  readonly code: number;
  /** The GPA the GVA maps to, with the GVA's page offset. */
  readonly gpa: bigint;
  /** HV_CACHE_TYPE of the page (§5.4). */
  readonly cacheType: number;
  /** The GPA is the overlay page (the target VTL's hypercall page). */
  readonly overlayPage: boolean;
  /** The flags asked for TlbFlushInhibit: the caller takes the TLB lock (§3.9). */
  readonly tlbFlushInhibit: boolean;
}

const PHYS_LIMIT = 1n << BigInt(MAX_PHYS_BITS);
const BIT63 = 1n << 63n;
/** Entry bits 51:40 (above MAXPHYADDR, below the ignored bits 62:52) of a 4-level entry. */
const LONG_RESERVED_HIGH = ((1n << 52n) - 1n) & ~(PHYS_LIMIT - 1n);
/** Entry bits 62:40 of a PAE entry (PAE has no ignored high bits, SDM tables 4-8..4-11). */
const PAE_RESERVED_HIGH = ((1n << 63n) - 1n) & ~(PHYS_LIMIT - 1n);
/** PAE PDPTE bits 2:1 and 8:5 (SDM table 4-8). */
const PDPTE_RESERVED_LOW = 0x1e6n;
/** Large-page entry bits 20:13 (2 MiB) and 29:13 (1 GiB). */
const LARGE_2M_RESERVED = 0x1fe000n, LARGE_1G_RESERVED = 0x3fffe000n;
/** 32-bit 4 MiB PDE: bit 21 is reserved (PSE-36 gives bits 20:13 as address bits 39:32 with MAXPHYADDR 40). */
const PSE_4M_RESERVED = 1n << 21n;

const b = (n: number) => BigInt(n);

/** A paging entry the walk read. */
interface Entry {
  readonly gpa: number;
  readonly value: bigint;
  /** Whether the walker sets its accessed bit (PAE PDPTEs have none, SDM table 4-8). */
  readonly hasAccessed: boolean;
}

/** A completed walk: the leaf, the page size, and the rights accumulated over every level (SDM 4.6). */
interface Walk {
  readonly entries: readonly Entry[];
  readonly leaf: bigint;
  readonly pageShift: number;
  readonly pageBase: bigint;
  readonly user: boolean;
  readonly writable: boolean;
  readonly nx: boolean;
}

/** The paging state of the Vcpu that the translation uses. */
interface Paging {
  readonly cr0: number;
  readonly cr3: bigint;
  readonly cr4: number;
  readonly efer: number;
}

/**
 * Translates `gva` with `vcpu`'s paging state, honouring the control flags
 * `flags` (bits 10:0 of HV_TRANSLATE_GVA_CONTROL_FLAGS; the caller has
 * taken off the input VTL, which chose `vcpu`).
 */
export function translateGva(vcpu: Vcpu, gva: bigint, flags: number): GvaTranslation {
  u64(gva, 'GVA');
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~F.Defined) !== 0) {
    throw new VsmError(`translate control flags must be bits 10:0 of HV_TRANSLATE_GVA_CONTROL_FLAGS, got ${String(flags)}`);
  }
  if (flags & F.ShadowStack) throw new VsmError('shadow-stack translations are not supported (no CET, no supervisor shadow stacks)');
  const tlbFlushInhibit = (flags & F.TlbFlushInhibit) !== 0;
  const fail = (code: number): GvaTranslation => ({ code, gpa: 0n, cacheType: 0, overlayPage: false, tlbFlushInhibit });

  const s = vcpu.getSregs();
  const pg: Paging = { cr0: Number(s.cr0 & 0xffffffffn), cr3: s.cr3, cr4: Number(s.cr4 & 0xffffffffn), efer: Number(s.efer & 0xffffffffn) };
  const long = (pg.efer & EFER_LMA) !== 0;
  const va = long ? gva : gva & 0xffffffffn;

  let gpa: bigint, cacheType: number, walk: Walk | null = null;
  if ((pg.cr0 & CR0_PG) === 0) {
    gpa = va;
    cacheType = HvCacheType.WriteBack;
  } else {
    const w = walkTables(vcpu, pg, va);
    if (typeof w === 'number') return fail(w);
    if (!rightsAllow(vcpu, pg, w, flags, s.ss.dpl)) return fail(R.PrivilegeViolation);
    walk = w;
    gpa = w.pageBase | (va & ((1n << b(w.pageShift)) - 1n));
    const pat = vcpu.getMsrs([MSR_PAT])[0].data;
    cacheType = cacheTypeFromPat(pat, patIndex(w.leaf, w.pageShift !== 12));
  }

  const validate = flags & (F.ValidateRead | F.ValidateWrite | F.ValidateExecute);
  const updates = walk !== null && (flags & F.SetPageTableBits) ? bitUpdates(walk, validate) : [];
  for (const u of updates) {
    const code = pageTableWriteCode(vcpu, u.entry.gpa);
    if (code !== R.Success) return fail(code);
  }
  const g = finalGpaCheck(vcpu, gpa, validate, executePermission(vcpu, pg, walk));
  if (g.code !== R.Success) return fail(g.code);
  // Success: now, and only now, the walk's A/D bits (a 64-bit entry's bits live in its low dword).
  for (const u of updates) vcpu.vm.mem.write32(u.entry.gpa, Number((u.entry.value | u.set) & 0xffffffffn));
  return { code: R.Success, gpa, cacheType, overlayPage: g.overlay, tlbFlushInhibit };
}

// ---------------------------------------------------------------- the walk

/** Walks the tables for `va`: the walk, or the result code that stops it (step 1 of the file comment). */
function walkTables(vcpu: Vcpu, pg: Paging, va: bigint): Walk | number {
  if ((pg.cr4 & CR4_PAE) === 0) return walk32(vcpu, pg, va);
  const nxe = (pg.efer & EFER_NXE) !== 0;
  const long = (pg.efer & EFER_LMA) !== 0;
  const entries: Entry[] = [];
  let user = true, writable = true, nx = false;
  let table: bigint, level: number;
  if (long) {
    const top = va >> 47n;
    if (top !== 0n && top !== (1n << 17n) - 1n) return R.InvalidPageTableFlags;
    table = pg.cr3 & (PHYS_LIMIT - 1n) & ~0xfffn;
    level = 4;
  } else {
    const at = Number(pg.cr3 & 0xffffffe0n) + 8 * Number(va >> 30n);
    const e = readEntry(vcpu, at, 8, false);
    if (typeof e === 'number') return e;
    entries.push(e);
    if ((e.value & b(PTE_P)) === 0n) return R.PageNotPresent;
    if ((e.value & (PDPTE_RESERVED_LOW | PAE_RESERVED_HIGH | BIT63)) !== 0n) return R.InvalidPageTableFlags;
    table = e.value & (PHYS_LIMIT - 1n) & ~0xfffn;
    level = 2;
  }
  for (; level >= 1; level--) {
    const shift = 12 + 9 * (level - 1);
    const e = readEntry(vcpu, Number(table) + 8 * Number((va >> b(shift)) & 0x1ffn), 8, true);
    if (typeof e === 'number') return e;
    entries.push(e);
    const v = e.value;
    if ((v & b(PTE_P)) === 0n) return R.PageNotPresent;
    if ((v & (long ? LONG_RESERVED_HIGH : PAE_RESERVED_HIGH)) !== 0n) return R.InvalidPageTableFlags;
    if ((v & BIT63) !== 0n && !nxe) return R.InvalidPageTableFlags;
    const ps = (v & b(PTE_PS)) !== 0n;
    if (level === 4 && ps) return R.InvalidPageTableFlags;
    user &&= (v & b(PTE_U)) !== 0n;
    writable &&= (v & b(PTE_W)) !== 0n;
    nx ||= nxe && (v & BIT63) !== 0n;
    if ((level === 3 || level === 2) && ps) {
      if ((v & (level === 3 ? LARGE_1G_RESERVED : LARGE_2M_RESERVED)) !== 0n) return R.InvalidPageTableFlags;
      return { entries, leaf: v, pageShift: shift, pageBase: v & (PHYS_LIMIT - 1n) & ~((1n << b(shift)) - 1n), user, writable, nx };
    }
    table = v & (PHYS_LIMIT - 1n) & ~0xfffn;
  }
  const leaf = entries[entries.length - 1].value;
  return { entries, leaf, pageShift: 12, pageBase: table, user, writable, nx };
}

/** 32-bit paging (SDM 4.3): two levels of 4-byte entries, 4 MiB pages with CR4.PSE, no NX. */
function walk32(vcpu: Vcpu, pg: Paging, va: bigint): Walk | number {
  const entries: Entry[] = [];
  const pde = readEntry(vcpu, Number(pg.cr3 & 0xfffff000n) + 4 * Number(va >> 22n), 4, true);
  if (typeof pde === 'number') return pde;
  entries.push(pde);
  if ((pde.value & b(PTE_P)) === 0n) return R.PageNotPresent;
  if ((pde.value & b(PTE_PS)) !== 0n && (pg.cr4 & CR4_PSE) !== 0) {
    if ((pde.value & PSE_4M_RESERVED) !== 0n) return R.InvalidPageTableFlags;
    const base = (pde.value & 0xffc00000n) | (((pde.value >> 13n) & 0xffn) << 32n);
    return { entries, leaf: pde.value, pageShift: 22, pageBase: base, ...rights32(entries), nx: false };
  }
  const pte = readEntry(vcpu, Number(pde.value & 0xfffff000n) + 4 * Number((va >> 12n) & 0x3ffn), 4, true);
  if (typeof pte === 'number') return pte;
  entries.push(pte);
  if ((pte.value & b(PTE_P)) === 0n) return R.PageNotPresent;
  return { entries, leaf: pte.value, pageShift: 12, pageBase: pte.value & 0xfffff000n, ...rights32(entries), nx: false };
}

function rights32(entries: readonly Entry[]): { user: boolean; writable: boolean } {
  return {
    user: entries.every((e) => (e.value & b(PTE_U)) !== 0n),
    writable: entries.every((e) => (e.value & b(PTE_W)) !== 0n),
  };
}

/** Reads the paging entry at `gpa` as the walker would, or the GPA result code that stops the walk. */
function readEntry(vcpu: Vcpu, gpa: number, width: 4 | 8, hasAccessed: boolean): Entry | number {
  const code = gpaAccessCode(vcpu, gpa, ACCESS_READ);
  if (code !== R.Success) return code;
  const mem = vcpu.vm.mem;
  return { gpa, hasAccessed, value: width === 4 ? b(mem.read32(gpa)) : mem.read64(gpa) };
}

/** The result code of a walker access to a page-table page: unmapped, unaccepted, or denied by the attributes. */
function gpaAccessCode(vcpu: Vcpu, gpa: number, access: number): number {
  const vm = vcpu.vm;
  if (!vm.mem.isRam(gpa)) return R.GpaUnmapped;
  const gfn = Math.floor(gpa / HV_PAGE_SIZE);
  if (vm.memoryAttributes.get(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) return R.GpaUnaccepted;
  if ((vm.memoryAttributes.permissions(gfn) & access) === access) return R.Success;
  return access === ACCESS_WRITE ? R.GpaNoWriteAccess : R.GpaNoReadAccess;
}

// ---------------------------------------------------------------- access rights (SDM 4.6)

/** Whether every access the flags validate is allowed by the walk's rights in every privilege the flags ask for. */
function rightsAllow(vcpu: Vcpu, pg: Paging, w: Walk, flags: number, cpl: number): boolean {
  const read = (flags & F.ValidateRead) !== 0, write = (flags & F.ValidateWrite) !== 0, exec = (flags & F.ValidateExecute) !== 0;
  if (!read && !write && !exec) return true;
  if (exec && w.nx) return false;
  const supervisor = (smepSmap: boolean): boolean => {
    if (write && !w.writable && (pg.cr0 & CR0_WP) !== 0) return false;
    if (!smepSmap || !w.user) return true;
    if (exec && (pg.cr4 & CR4_SMEP) !== 0) return false;
    if ((read || write) && (pg.cr4 & CR4_SMAP) !== 0 && smapApplies(vcpu, flags, cpl)) return false;
    return true;
  };
  const user = (): boolean => w.user && (!write || w.writable);
  if (flags & F.PrivilegeExempt) return supervisor(false);
  const asUser = (flags & F.UserAccess) !== 0, asSupervisor = (flags & F.SupervisorAccess) !== 0;
  if (asUser || asSupervisor) return (!asUser || user()) && (!asSupervisor || supervisor(true));
  return cpl === 3 ? user() : supervisor(true);
}

/** SMAP's verdict on a supervisor data access to a user page: OverrideSmap, EnforceSmap, else RFLAGS.AC at CPL < 3 (SDM 4.6.1). */
function smapApplies(vcpu: Vcpu, flags: number, cpl: number): boolean {
  if (flags & F.OverrideSmap) return false;
  if (flags & F.EnforceSmap) return true;
  // At CPL 3 a supervisor access is implicit, and AC does not lift SMAP.
  return cpl === 3 || (vcpu.getRegs().rflags & b(AC)) === 0n;
}

// ---------------------------------------------------------------- A/D bits, final GPA

/** The bits SetPageTableBits sets: A on every entry that lacks it, D on the leaf for a validated write. PAE PDPTEs have no A bit. */
function bitUpdates(w: Walk, validate: number): { entry: Entry; set: bigint }[] {
  const out: { entry: Entry; set: bigint }[] = [];
  w.entries.forEach((entry, k) => {
    if (!entry.hasAccessed) return;
    let set = (entry.value & b(PTE_A)) === 0n ? b(PTE_A) : 0n;
    if (k === w.entries.length - 1 && (validate & F.ValidateWrite) && (entry.value & b(PTE_D)) === 0n) set |= b(PTE_D);
    if (set !== 0n) out.push({ entry, set });
  });
  return out;
}

/** The result code of setting A/D bits in the page-table page at `gpa` (step 3). */
function pageTableWriteCode(vcpu: Vcpu, gpa: number): number {
  if (isOverlay(vcpu, gpa)) return R.GpaIllegalOverlayAccess;
  return gpaAccessCode(vcpu, gpa, ACCESS_WRITE);
}

/**
 * What a fetch at the GVA needs from the memory attributes: user execute
 * (XU) for a user-mode address (U/S = 1 at every level) when the Vcpu has
 * kvm's MBEC in effect (on, and CR4.SMEP set if it asked for SMEP), as its
 * own fetch would (src/kvm/mbec.ts); else execute.
 */
function executePermission(vcpu: Vcpu, pg: Paging, walk: Walk | null): number {
  return walk !== null && walk.user && mbecChecksUserFetch(vcpu.getMbecControl(), pg.cr4) ? ACCESS_EXEC_USER : ACCESS_EXEC;
}

/** Step 4 of the file comment for the translated GPA; `execute` is the permission a validated execute needs. */
function finalGpaCheck(vcpu: Vcpu, gpa: bigint, validate: number, execute: number): { code: number; overlay: boolean } {
  const vm = vcpu.vm;
  const at = Number(gpa);
  if (gpa >= PHYS_LIMIT || !vm.mem.isRam(at)) return { code: R.GpaUnmapped, overlay: false };
  const gfn = Math.floor(at / HV_PAGE_SIZE);
  if (vm.memoryAttributes.get(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) return { code: R.GpaUnaccepted, overlay: false };
  const overlay = isOverlay(vcpu, at);
  if (overlay && (validate & F.ValidateWrite)) return { code: R.GpaIllegalOverlayAccess, overlay };
  const perms = vm.memoryAttributes.permissions(gfn);
  if ((validate & F.ValidateRead) && !(perms & ACCESS_READ)) return { code: R.GpaNoReadAccess, overlay };
  if ((validate & F.ValidateWrite) && !(perms & ACCESS_WRITE)) return { code: R.GpaNoWriteAccess, overlay };
  if ((validate & F.ValidateExecute) && !(perms & execute)) return { code: R.Intercept, overlay };
  return { code: R.Success, overlay };
}

/** Whether `gpa` is on the hypercall page of the Vcpu's Vm (its VTL's overlay, §1.4). */
function isOverlay(vcpu: Vcpu, gpa: number): boolean {
  const pfn = vcpu.vm.hyperv?.hypercallPagePfn ?? -1;
  return pfn >= 0 && Math.floor(gpa / HV_PAGE_SIZE) === pfn;
}
