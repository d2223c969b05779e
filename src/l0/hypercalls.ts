/**
 * The hypercalls L0 serves for L1 in this model: HvCallFlushGuestPhysicalAddressSpace
 * (0x00AF, simple) and HvCallFlushGuestPhysicalAddressList (0x00B0, rep),
 * tlfs-vsm-facts §2.7 and kvm-api-facts §6.1. Input: AddressSpace (the nCR3 of
 * an L2 address space) and Flags (RsvdZ), then for the List call the range
 * elements (gpa-range.ts). Both act on every VP: whatever L0 derived from
 * that root goes, and every vCPU running on that root loses its combined
 * (GVA-derived) translations too.
 *
 * Checks, in order: the generic control-word rules (§1.1, shared with our
 * own dispatcher); a call code this L0 does not serve, or served codes while
 * CPUID 0x4000000A advertises neither bit 18 nor bit 22 (§7.1) ⇒
 * INVALID_HYPERCALL_CODE (our choice: the calls do not exist for this
 * partition); the List call as a fast call (its elements do not fit the
 * registers, §2.1) ⇒ INVALID_HYPERCALL_INPUT; a list running past its 4 KiB
 * input page, i.e. more than 510 elements (§1.1, kvm-api-facts §6.1) ⇒
 * INVALID_ALIGNMENT; Flags ≠ 0 ⇒ INVALID_PARAMETER; an injected failure
 * (L0Hypervisor.failNext); a List element with reserved bits ⇒
 * INVALID_PARAMETER with the elements before it done (§1.2 rep semantics).
 * Not modelled: the suspension of the caller while the TLB is locked (§7.2).
 */
import { HV_GUEST_MAPPING_FLUSH_HEADER_BYTES, HV_PAGE_SIZE, HvCall, HvNestedFeature, HvStatus } from '../spec/tlfs.js';
import { hypercallResult, parseHypercallControl, validateHypercallControl } from '../kvm/hyperv/hypercall-input.js';
import { decodeGpaRange } from './gpa-range.js';
import type { L0Hypervisor } from './l0.js';

const RANGE_BYTES = 8;

/** One hypercall as L0 saw it (L0Hypervisor.calls). */
export interface L0CallRecord {
  readonly code: number;
  /** VP index of the caller. */
  readonly vp: number;
  readonly addressSpace: number;
  /** Rep count of a List call (0 for the Space call). */
  readonly reps: number;
  readonly status: number;
  /** L0 TLB entries the call removed. */
  readonly dropped: number;
}

/** Serves one call; returns the result value (§1.2: status, reps completed). */
export function serveL0Hypercall(l0: L0Hypervisor, vp: number, control: bigint, input: Uint8Array): bigint {
  const c = parseHypercallControl(control);
  const isList = c.code === HvCall.FlushGuestPhysicalAddressList;
  const need = HV_GUEST_MAPPING_FLUSH_HEADER_BYTES + (isList ? RANGE_BYTES * c.repCount : 0);
  const dv = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const as = input.byteLength >= 8 ? dv.getUint32(0, true) + dv.getUint32(4, true) * 4294967296 : 0;
  const done = (status: number, reps = 0, dropped = 0): bigint => {
    l0.record({ code: c.code, vp, addressSpace: as, reps: isList ? c.repCount : 0, status, dropped });
    return hypercallResult(status, reps);
  };

  let status = validateHypercallControl(c);
  if (status !== HvStatus.SUCCESS) return done(status);
  const served = c.code === HvCall.FlushGuestPhysicalAddressSpace || isList;
  if (!served || (l0.nestedFeatures & (HvNestedFeature.GuestMappingFlush | HvNestedFeature.EnlightenedTlb)) === 0) {
    return done(HvStatus.INVALID_HYPERCALL_CODE);
  }
  if (isList && c.fast) return done(HvStatus.INVALID_HYPERCALL_INPUT);
  if (need > HV_PAGE_SIZE) return done(HvStatus.INVALID_ALIGNMENT);
  if (input.byteLength < need) {
    throw new RangeError(`the hypercall input has ${input.byteLength} bytes; 0x${c.code.toString(16)} with ${c.repCount} reps needs ${need}`);
  }
  if (dv.getUint32(8, true) !== 0 || dv.getUint32(12, true) !== 0) return done(HvStatus.INVALID_PARAMETER);
  status = l0.takeInjectedFailure(c.code, as);
  if (status !== HvStatus.SUCCESS) return done(status);

  if (!isList) {
    return done(HvStatus.SUCCESS, 0, l0.flushAddressSpace(as));
  }
  let rep = c.repStart;
  const ranges: { gfn: number; pages: number }[] = [];
  for (; rep < c.repCount; rep++) {
    const off = HV_GUEST_MAPPING_FLUSH_HEADER_BYTES + RANGE_BYTES * rep;
    const r = decodeGpaRange(dv.getInt32(off, true), dv.getInt32(off + 4, true));
    if (r === null) break;
    ranges.push(r);
  }
  const dropped = l0.flushAddressList(as, ranges);
  return done(rep < c.repCount ? HvStatus.INVALID_PARAMETER : HvStatus.SUCCESS, rep, dropped);
}
