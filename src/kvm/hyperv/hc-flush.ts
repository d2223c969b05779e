/**
 * HvCallFlushVirtualAddressSpace (0x0002), HvCallFlushVirtualAddressList
 * (0x0003, rep) and their Ex forms (0x0013, 0x0014 rep, VP set as the
 * variable header): fact sheet §2.2-§2.5, TLB-flush inhibit kvm-api-facts §1.
 *
 * Checks, in this order (status INVALID_PARAMETER for each, openhcl's
 * hcvm_validate_flush_inputs): a flag bit other than 0-3; the extended
 * range format on a non-List call, or without hv-tlbflush-ext (CPUID
 * 0x40000003 EDX bit 14 and privilege bit 47); a malformed VP set (Ex);
 * an empty processor set without HV_FLUSH_ALL_PROCESSORS (KVM would
 * instead treat a zero non-Ex mask as "all", a Windows Server 2012
 * workaround). NON_GLOBAL_MAPPINGS_ONLY is accepted on the List calls
 * too (TLFS says invalid, openhcl accepts it; it only allows flushing
 * less, which we do not do there anyway).
 *
 * Then TLB-flush inhibit: the targets are walked in vCPU index order and
 * the first inhibited one (the caller included) suspends the caller before
 * anything is flushed. Otherwise the targets' TLBs are flushed at once (our
 * vCPUs share one thread, so "every target observed the flush" holds when
 * the call returns).
 *
 * Mapping to our TLB (x86/tlb.ts keeps non-global entries per PCID and
 * global entries apart, and knows nothing of CR3 values): AddressSpace and
 * HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES are not distinguished, every PCID is
 * flushed (a CR3 value does not tell which PCID its entries carry on a
 * target). Space: NON_GLOBAL_MAPPINGS_ONLY drops the non-global entries of
 * every PCID and keeps global ones; without it everything goes. List: each
 * 4 KiB page of each range is flushed in every PCID, global entries
 * included (INVLPG-like; an entry made from a large page containing the
 * address goes too, §2.3). When one execution would flush more than
 * FULL_FLUSH_PAGES pages (for instance one large-page range of the
 * extended format), the whole TLB is flushed instead. Flushing more than
 * asked is allowed; flushing less is not.
 */
import {
  HV_FLUSH_ALL_PROCESSORS,
  HV_FLUSH_DEFINED_FLAGS,
  HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY,
  HV_FLUSH_USE_EXTENDED_RANGE_FORMAT,
  HV_GVA_RANGE_BYTES,
  HV_GVA_RANGE_EXT_ADDITIONAL_MASK,
  HV_GVA_RANGE_EXT_LARGE_PAGE,
  HV_GVA_RANGE_EXT_LARGE_RESERVED,
  HV_GVA_RANGE_EXT_PAGE_SIZE_1G,
  HV_GVA_RANGE_SIMPLE_ADDITIONAL_MASK,
  HvFeatureEdx,
  HvFlushInput,
  HvStatus,
} from '../../spec/tlfs.js';
import type { Cpu } from '../../x86/cpu.js';
import type { Vcpu } from '../vcpu.js';
import { HC_SUSPEND, type HcCall } from './hc-call.js';
import { firstInhibited } from './tlb-flush-inhibit.js';
import { VpSet } from './vp-set.js';

/** Pages one execution flushes one by one; beyond this it flushes the whole TLB of each target. */
export const FULL_FLUSH_PAGES = 64;

const PAGE = 4096;
const TWO_32 = 2 ** 32;

interface FlushRequest {
  readonly flags: number;
  readonly targets: Vcpu[];
}

function readRequest(call: HcCall, ex: boolean, list: boolean): FlushRequest | number {
  const inp = call.input, v = call.vcpu;
  const flags = inp.lo(HvFlushInput.Flags);
  if (inp.hi(HvFlushInput.Flags) !== 0 || (flags & ~HV_FLUSH_DEFINED_FLAGS) !== 0) return HvStatus.INVALID_PARAMETER;
  if ((flags & HV_FLUSH_USE_EXTENDED_RANGE_FORMAT) !== 0 && (!list || !extendedRangesAvailable(v))) return HvStatus.INVALID_PARAMETER;
  let set: VpSet;
  if ((flags & HV_FLUSH_ALL_PROCESSORS) !== 0) {
    set = VpSet.everyVp();
  } else if (!ex) {
    set = VpSet.fromMask(inp.lo(HvFlushInput.ProcessorMask), inp.hi(HvFlushInput.ProcessorMask));
  } else {
    const parsed = VpSet.parse(inp, HvFlushInput.VpSet, call.varHeaderQwords);
    if (typeof parsed === 'number') return parsed;
    set = parsed;
  }
  if (set.isEmpty) return HvStatus.INVALID_PARAMETER;
  const t = v.vm.trace;
  if (t !== null) {
    const args: Record<string, string | number | boolean> = {
      address_space: inp.u64(HvFlushInput.AddressSpace).toString(16), flags: flags.toString(16),
    };
    if (ex) {
      args.format = inp.u64(HvFlushInput.VpSet).toString(16);
      args.valid_bank_mask = inp.u64(HvFlushInput.VpSet + 8).toString(16);
    } else {
      args.processor_mask = inp.u64(HvFlushInput.ProcessorMask).toString(16);
    }
    t.emit(ex ? 'kvm_hv_flush_tlb_ex' : 'kvm_hv_flush_tlb', v.id, v.nowNs(), args);
  }
  return { flags, targets: set.select(v.vm.vcpus) };
}

function extendedRangesAvailable(v: Vcpu): boolean {
  const f = v.hv!.partition.features;
  return f.hasEdx(HvFeatureEdx.ExtendedGvaRangesForFlush) && f.has('EnableExtendedGvaRangesForFlushVirtualAddressList');
}

function flushSpace(call: HcCall, ex: boolean): number {
  const req = readRequest(call, ex, false);
  if (typeof req === 'number') return req;
  const blocker = firstInhibited(req.targets);
  if (blocker !== undefined) { call.waitingOn = blocker; return HC_SUSPEND; }
  const nonGlobal = (req.flags & HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY) !== 0;
  for (const t of req.targets) {
    if (nonGlobal) t.cpu.flushTlbNonGlobal(); else t.cpu.flushTlb();
  }
  return HvStatus.SUCCESS;
}

/** A GVA range as pages: start address halves and the number of 4 KiB pages. */
interface PageRun { lo: number; hi: number; pages: number }

/** Decodes one GVA range element (§2.3); a reserved bit is INVALID_PARAMETER. */
function decodeRange(lo: number, hi: number, extended: boolean): PageRun | number {
  if (!extended) {
    return { lo: lo & ~(PAGE - 1), hi, pages: (lo & HV_GVA_RANGE_SIMPLE_ADDITIONAL_MASK) + 1 };
  }
  const count = (lo & HV_GVA_RANGE_EXT_ADDITIONAL_MASK) + 1;
  if ((lo & HV_GVA_RANGE_EXT_LARGE_PAGE) === 0) return { lo: lo & ~(PAGE - 1), hi, pages: count };
  if ((lo & HV_GVA_RANGE_EXT_LARGE_RESERVED) !== 0) return HvStatus.INVALID_PARAMETER;
  const huge = (lo & HV_GVA_RANGE_EXT_PAGE_SIZE_1G) !== 0;
  const size = huge ? 1 << 30 : 1 << 21;
  return { lo: lo & ~(size - 1), hi, pages: count * (size / PAGE) };
}

/** 48-bit canonical: bits 63:47 all equal. Non-canonical GVAs cannot be cached, and are ignored (§2.3). */
function canonicalHi(hi: number): boolean {
  const top = hi >> 15;
  return top === 0 || top === -1;
}

function flushRuns(cpu: Cpu, runs: readonly PageRun[]): void {
  for (const r of runs) {
    let lo = r.lo >>> 0, hi = r.hi | 0;
    for (let k = 0; k < r.pages; k++) {
      if (canonicalHi(hi)) cpu.flushTlbAddress(lo | 0, hi);
      lo += PAGE;
      if (lo >= TWO_32) { lo -= TWO_32; hi = (hi + 1) | 0; }
    }
  }
}

function flushList(call: HcCall, ex: boolean): number {
  const req = readRequest(call, ex, true);
  if (typeof req === 'number') return req;
  const blocker = firstInhibited(req.targets);
  if (blocker !== undefined) { call.waitingOn = blocker; return HC_SUSPEND; }
  const extended = (req.flags & HV_FLUSH_USE_EXTENDED_RANGE_FORMAT) !== 0;
  const first = (ex ? HvFlushInput.ExHeaderBytes + 8 * call.varHeaderQwords : HvFlushInput.HeaderBytes);
  const runs: PageRun[] = [];
  let pages = 0;
  let status: number = HvStatus.SUCCESS;
  let i = call.repStart;
  for (; i < call.repEnd; i++) {
    const at = first + HV_GVA_RANGE_BYTES * i;
    const r = decodeRange(call.input.lo(at), call.input.hi(at), extended);
    if (typeof r === 'number') { status = r; break; }
    runs.push(r);
    pages += r.pages;
  }
  // Elements before a bad one are flushed (reps completed = its index, §1.2).
  for (const t of req.targets) {
    if (pages > FULL_FLUSH_PAGES) t.cpu.flushTlb(); else flushRuns(t.cpu, runs);
  }
  call.repsDone = i;
  return status;
}

export const flushVirtualAddressSpace = (call: HcCall): number => flushSpace(call, false);
export const flushVirtualAddressSpaceEx = (call: HcCall): number => flushSpace(call, true);
export const flushVirtualAddressList = (call: HcCall): number => flushList(call, false);
export const flushVirtualAddressListEx = (call: HcCall): number => flushList(call, true);
