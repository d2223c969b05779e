/**
 * Guest-memory buffers of memory-based (slow) hypercalls: the checks of
 * fact sheet §1.1/§1.5 and the memory-attribute rule of kvm-api-facts §2.7,
 * in this order:
 *
 * | Condition | Status |
 * |---|---|
 * | GPA not 8-byte aligned | INVALID_ALIGNMENT |
 * | buffer crosses a 4 KiB page | INVALID_ALIGNMENT (TLFS; hv1_hypercall says INVALID_HYPERCALL_INPUT) |
 * | GPA beyond the GPA space (40 bits) | INVALID_ALIGNMENT |
 * | page not guest RAM, or memory attributes deny the access | INVALID_HYPERCALL_INPUT (KVM: kvm_read_guest fails) |
 * | output into the hypercall page (read+execute only) | INVALID_HYPERCALL_INPUT |
 *
 * Only called for buffers of non-zero length: a call without input (or
 * output) ignores that GPA (§1.5). The VMM applies the same checks to the
 * calls it handles (a VSM VMM turns the attribute denial into a secure
 * intercept there, src/vmm/vsm/memory-intercept.ts).
 */
import { ACCESS_READ, ACCESS_WRITE } from '../../x86/host.js';
import { HV_GPA_BITS, HV_PAGE_SIZE, HvStatus } from '../../spec/tlfs.js';
import type { Vm } from '../vm.js';

const GPA_HI_LIMIT = 2 ** (HV_GPA_BITS - 32);

/** Status of a buffer of `len` bytes at the GPA whose halves are `lo`/`hi` (int32 or uint32), for `access`. */
export function checkHypercallBuffer(vm: Vm, lo: number, hi: number, len: number, access: number): number {
  const offset = (lo >>> 0) % HV_PAGE_SIZE;
  if ((lo & 7) !== 0) return HvStatus.INVALID_ALIGNMENT;
  if (offset + len > HV_PAGE_SIZE) return HvStatus.INVALID_ALIGNMENT;
  if ((hi >>> 0) >= GPA_HI_LIMIT) return HvStatus.INVALID_ALIGNMENT;
  const gpa = (hi >>> 0) * 2 ** 32 + (lo >>> 0);
  // The whole buffer is inside one page, so the page decides.
  if (!vm.mem.isRam(gpa) || !vm.guestAccessAllowed(gpa, access)) return HvStatus.INVALID_HYPERCALL_INPUT;
  if (vm.hyperv?.isOverlayWrite(gpa, access)) return HvStatus.INVALID_HYPERCALL_INPUT;
  return HvStatus.SUCCESS;
}

/** The `len` input bytes at the GPA, or the HV_STATUS that forbids reading them. */
export function readHypercallInput(vm: Vm, lo: number, hi: number, len: number): Uint8Array | number {
  const status = checkHypercallBuffer(vm, lo, hi, len, ACCESS_READ);
  if (status !== HvStatus.SUCCESS) return status;
  return vm.mem.read((hi >>> 0) * 2 ** 32 + (lo >>> 0), len);
}

/** Writes output bytes at the GPA; returns SUCCESS or the HV_STATUS that forbids writing them (nothing written). */
export function writeHypercallOutput(vm: Vm, lo: number, hi: number, data: Uint8Array): number {
  const status = checkHypercallBuffer(vm, lo, hi, data.length, ACCESS_WRITE);
  if (status !== HvStatus.SUCCESS) return status;
  vm.mem.write((hi >>> 0) * 2 ** 32 + (lo >>> 0), data);
  return HvStatus.SUCCESS;
}
