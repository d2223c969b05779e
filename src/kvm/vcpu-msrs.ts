/**
 * KVM_GET_MSRS / KVM_SET_MSRS (struct kvm_msrs of struct kvm_msr_entry
 * { index, data }; upstream api.rst "KVM_GET_MSRS"): host-initiated MSR access.
 *
 * Semantics as KVM's (arch/x86/kvm/x86.c msr_io): the entries are processed in
 * order and processing stops at the first MSR that cannot be read or written;
 * the result is how many were processed (entries before the failing one stay
 * written). More than 255 entries: E2BIG (MAX_IO_MSRS is 256, `nmsrs >= 256`
 * fails). Malformed arguments (not an array, an index that is not a u32, data
 * that is not a u64 bigint): EFAULT/EINVAL before anything is processed.
 *
 * MSRs: those the CPU owns (EFER, STAR, LSTAR, CSTAR, SFMASK, FS/GS base,
 * KERNEL_GS_BASE, SYSENTER_CS/ESP/EIP, PAT, TSC_AUX), and through the paths
 * RDMSR/WRMSR already use: TSC, IA32_APIC_BASE, TSC_DEADLINE, IA32_MISC_ENABLE
 * (misc-enable.ts; the host may write any value, as KVM lets it), the x2APIC
 * registers (0x800-0x8FF, in x2APIC mode) and the Hyper-V synthetic MSRs
 * (0x40000000-0x400001FF, with Hyper-V). Anything else stops the list.
 *
 * Where a host-initiated write differs from the guest's WRMSR (KVM's
 * host_initiated, __kvm_set_msr / set_efer):
 * - SYSENTER_ESP/EIP: made canonical (sign-extended from bit 47) instead of
 *   refused, as KVM does for every write (guest WRMSR on our CPU raises #GP).
 * - EFER: LMA is read-only (the current value is kept, as KVM does).
 *   KVM lets the host change LME while CR0.PG = 1; we refuse it, because our
 *   CPU derives long mode from LMA and KVM_SET_SREGS rejects LMA without LME.
 *   A change of NXE flushes the TLB, as our WRMSR does.
 * Where it is the same as the guest's WRMSR (stricter than KVM in places):
 * - IA32_APIC_BASE keeps the local APIC's mode-transition checks (KVM skips
 *   them for the host). The Hyper-V MSRs follow the guest rules: the writes
 *   KVM allows only the host (VP_INDEX, VP_RUNTIME, TIME_REF_COUNT) fail.
 * - TSC goes through the vCPU's WRMSR path: it sets the vCPU's TSC offset,
 *   invalidates the reference TSC page, and emits the `kvm_msr` trace event
 *   (KVM does not trace host accesses). Only TSC does: the others are
 *   reached without tracing.
 * - SYSENTER_CS keeps bits 15:0 (KVM's VMCS field keeps 32 bits).
 */
import {
  CR0_PG, EFER_LMA, EFER_LME, EFER_NXE, EFER_SUPPORTED, FS, GS, MSR_APIC_BASE, MSR_CSTAR, MSR_EFER, MSR_FMASK, MSR_FS_BASE,
  MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP,
  MSR_TSC, MSR_TSC_AUX,
} from '../x86/regs.js';
import type { Cpu } from '../x86/cpu.js';
import { HV_MSR_RANGE_FIRST, HV_MSR_RANGE_LAST } from '../spec/tlfs.js';
import { KvmError } from './errors.js';
import { MSR_IA32_MISC_ENABLE } from './misc-enable.js';
import type { Vcpu } from './vcpu.js';
import { u64FromHalves as big } from '../x86/u64.js';

/** struct kvm_msr_entry. */
export interface KvmMsrEntry { index: number; data: bigint }

/** KVM's MAX_IO_MSRS: a list of this many entries or more is E2BIG. */
export const MAX_IO_MSRS = 256;
export const MSR_TSC_DEADLINE = 0x6e0;
const X2APIC_FIRST = 0x800, X2APIC_LAST = 0x8ff;

const lo32 = (v: bigint): number => Number(v & 0xffffffffn) | 0;
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn) | 0;
const canonical = (v: bigint): boolean => { const top = v >> 47n; return top === 0n || top === (1n << 17n) - 1n; };
/** Sign-extends bit 47 (KVM's __canonical_address for 48-bit linear addresses). */
const makeCanonical = (v: bigint): bigint => (v & (1n << 47n) ? v | ~((1n << 48n) - 1n) : v & ((1n << 48n) - 1n)) & ((1n << 64n) - 1n);

/** The CPU fields that hold 64-bit MSRs as lo/hi halves. */
type CpuField = 'starLo' | 'starHi' | 'lstarLo' | 'lstarHi' | 'cstarLo' | 'cstarHi' | 'kernelGsBaseLo' | 'kernelGsBaseHi'
  | 'sysenterEspLo' | 'sysenterEspHi' | 'sysenterEipLo' | 'sysenterEipHi' | 'patLo' | 'patHi';
/** A 64-bit MSR kept as lo/hi fields of the CPU; `check` refuses a value, `fix` adjusts it. */
interface PairMsr { lo: CpuField; hi: CpuField; check?: (v: bigint) => boolean; fix?: (v: bigint) => bigint }

const PAIRS = new Map<number, PairMsr>([
  [MSR_STAR, { lo: 'starLo', hi: 'starHi' }],
  [MSR_LSTAR, { lo: 'lstarLo', hi: 'lstarHi', check: canonical }],
  [MSR_CSTAR, { lo: 'cstarLo', hi: 'cstarHi', check: canonical }],
  [MSR_KERNEL_GS_BASE, { lo: 'kernelGsBaseLo', hi: 'kernelGsBaseHi', check: canonical }],
  [MSR_SYSENTER_ESP, { lo: 'sysenterEspLo', hi: 'sysenterEspHi', fix: makeCanonical }],
  [MSR_SYSENTER_EIP, { lo: 'sysenterEipLo', hi: 'sysenterEipHi', fix: makeCanonical }],
  [MSR_PAT, { lo: 'patLo', hi: 'patHi', check: validPat }],
]);

/** Every PAT entry a memory type: 0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC- (2, 3 and 8-255 reserved; KVM's kvm_pat_valid). */
function validPat(v: bigint): boolean {
  for (let k = 0n; k < 8n; k++) {
    const t = (v >> (8n * k)) & 0xffn;
    if (t === 2n || t === 3n || t > 7n) return false;
  }
  return true;
}

/** Reads one MSR for the host; undefined when the vCPU has no such MSR (or cannot read it now). */
export function readMsr(vcpu: Vcpu, index: number): bigint | undefined {
  const c = vcpu.cpu;
  const pair = PAIRS.get(index);
  if (pair !== undefined) return big(c[pair.lo], c[pair.hi]);
  switch (index) {
    case MSR_EFER: return BigInt(c.efer >>> 0);
    case MSR_FMASK: return BigInt(c.fmask >>> 0);
    case MSR_TSC_AUX: return BigInt(c.tscAux >>> 0);
    case MSR_SYSENTER_CS: return BigInt(c.sysenterCs & 0xffff);
    case MSR_FS_BASE: return big(c.segBaseLo[FS], c.segBaseHi[FS]);
    case MSR_GS_BASE: return big(c.segBaseLo[GS], c.segBaseHi[GS]);
    case MSR_TSC: { const out = new Int32Array(2); vcpu.readTsc(out); return big(out[0], out[1]); }
    case MSR_APIC_BASE: return vcpu.apic.readApicBase();
    case MSR_TSC_DEADLINE: return vcpu.apic.readTscDeadline();
    case MSR_IA32_MISC_ENABLE: return vcpu.miscEnable;
    default: break;
  }
  if (index >= X2APIC_FIRST && index <= X2APIC_LAST) return vcpu.apic.rdmsr(index);
  if (index >= HV_MSR_RANGE_FIRST && index <= HV_MSR_RANGE_LAST) return vcpu.hv?.rdmsr(index);
  return undefined;
}

/** Writes one MSR for the host; false when the vCPU has no such MSR or refuses the value (nothing changed then). */
function writeMsr(vcpu: Vcpu, index: number, v: bigint): boolean {
  const c = vcpu.cpu;
  const pair = PAIRS.get(index);
  if (pair !== undefined) {
    if (pair.check !== undefined && !pair.check(v)) return false;
    const value = pair.fix !== undefined ? pair.fix(v) : v;
    c[pair.lo] = lo32(value);
    c[pair.hi] = hi32(value);
    return true;
  }
  switch (index) {
    case MSR_EFER: return writeEfer(c, v);
    case MSR_FMASK: if (v >> 32n) return false; c.fmask = lo32(v); return true;
    case MSR_TSC_AUX: if (v >> 32n) return false; c.tscAux = lo32(v); return true;
    case MSR_SYSENTER_CS: c.sysenterCs = Number(v & 0xffffn); return true;
    case MSR_FS_BASE: case MSR_GS_BASE: {
      if (!canonical(v)) return false;
      const s = index === MSR_FS_BASE ? FS : GS;
      c.segBaseLo[s] = lo32(v); c.segBaseHi[s] = hi32(v);
      return true;
    }
    case MSR_TSC: return vcpu.wrmsr(MSR_TSC, lo32(v), hi32(v));
    case MSR_APIC_BASE: return v === vcpu.apic.readApicBase() || vcpu.apic.writeApicBase(v);
    case MSR_TSC_DEADLINE: vcpu.apic.writeTscDeadline(v); return true;
    case MSR_IA32_MISC_ENABLE: vcpu.miscEnable = v; return true; // the host may set any bit (KVM's host_initiated)
    default: break;
  }
  if (index >= X2APIC_FIRST && index <= X2APIC_LAST) return vcpu.apic.wrmsr(index, v);
  if (index >= HV_MSR_RANGE_FIRST && index <= HV_MSR_RANGE_LAST) return vcpu.hv?.wrmsr(index, v) ?? false;
  return false;
}

/** EFER for the host: no undefined bits, LMA kept, LME fixed while paging (see the file comment). */
function writeEfer(c: Cpu, v: bigint): boolean {
  if ((v & ~BigInt(EFER_SUPPORTED)) !== 0n) return false;
  const value = (lo32(v) & ~EFER_LMA) | (c.efer & EFER_LMA);
  if (((value ^ c.efer) & EFER_LME) && (c.cr0 & CR0_PG)) return false;
  const old = c.efer;
  c.efer = value;
  if ((old ^ value) & EFER_NXE) c.mmu.flushAll();
  return true;
}

function checkList(list: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(list)) throw new KvmError('EFAULT', `the ${what} argument is not an array`);
  if (list.length >= MAX_IO_MSRS) throw new KvmError('E2BIG', `${list.length} MSRs in one call; at most ${MAX_IO_MSRS - 1}`);
  return list;
}
function checkIndex(v: unknown, k: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new KvmError('EINVAL', `MSR entry ${k}: the index must be an integer in 0..0xffffffff, got ${String(v)}`);
  }
  return v;
}

/** KVM_GET_MSRS: the entries read, in order; fewer than asked when indices[length] cannot be read. */
export function getMsrs(vcpu: Vcpu, indices: readonly number[]): KvmMsrEntry[] {
  const list = checkList(indices, 'MSR index list');
  list.forEach((index, k) => checkIndex(index, k));
  const out: KvmMsrEntry[] = [];
  for (const index of list as number[]) {
    const data = readMsr(vcpu, index);
    if (data === undefined) break;
    out.push({ index, data });
  }
  return out;
}

/** KVM_SET_MSRS: the number of entries written; it stops at the first entry the vCPU refuses. */
export function setMsrs(vcpu: Vcpu, entries: readonly KvmMsrEntry[]): number {
  const list = checkList(entries, 'MSR entry list');
  list.forEach((e, k) => {
    if (typeof e !== 'object' || e === null) throw new KvmError('EINVAL', `MSR entry ${k} is not an object`);
    const { index, data } = e as KvmMsrEntry;
    checkIndex(index, k);
    if (typeof data !== 'bigint' || data < 0n || data >= 1n << 64n) {
      throw new KvmError('EINVAL', `MSR entry ${k} (0x${index.toString(16)}): data must be a bigint in 0..2^64-1, got ${String(data)}`);
    }
  });
  let done = 0;
  for (const { index, data } of list as KvmMsrEntry[]) {
    if (!writeMsr(vcpu, index, data)) break;
    done++;
  }
  if (done > 0) vcpu.cpu.intrCheck = true; // APIC base, TPR-like and timer MSRs can make an interrupt deliverable
  return done;
}
