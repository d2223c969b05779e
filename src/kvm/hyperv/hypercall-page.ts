/**
 * The hypercall page (fact sheet §1.4, §3.6) and how it is presented.
 *
 * Contents: the normal entry at offset 0 is VMCALL (Intel) or VMMCALL (AMD)
 * followed by RET; with VSM the VTL call/return stubs follow at the offsets of
 * §3.6 (hv1_emulator's layout, reported to the guest through
 * HvRegisterVsmCodePageOffsets); the rest of the page is INT3.
 *
 * Presentation: TLFS calls the page an overlay that covers whatever RAM is at
 * its GPA, readable and executable, with guest writes raising #GP. We write
 * the page into guest RAM (as KVM does) after saving the 4 KiB beneath it, and
 * put the RAM back when the page is disabled or moved. Writes are denied by
 * page permissions (partition.pagePermissions gives the page R+X), and the
 * owner turns the resulting memory fault into #GP.
 * Limits: the page must be guest RAM (#GP otherwise, where TLFS would accept
 * any GPA inside the GPA space); a VMM or device write to that RAM while the
 * page is mapped is lost when the RAM is put back; the Vms of other VTLs,
 * which share the guest memory, see these bytes at that GPA instead of their
 * own RAM.
 */
import type { PhysMemory } from '../../memory/phys-memory.js';
import { HV_PAGE_SIZE, HvCall, HvHypercallPage, VMCALL_BYTES, VMMCALL_BYTES } from '../../spec/tlfs.js';

export type CpuVendor = 'intel' | 'amd';

const RET = 0xc3;

/** The 4 KiB page contents. */
export function hypercallPageBytes(vendor: CpuVendor, vtlStubs: boolean): Uint8Array {
  const page = new Uint8Array(HV_PAGE_SIZE).fill(HvHypercallPage.Filler);
  const call = vendor === 'amd' ? VMMCALL_BYTES : VMCALL_BYTES;
  page.set([...call, RET], HvHypercallPage.Hypercall);
  if (vtlStubs) {
    // 32-bit callers pass the control word in EDX:EAX, so the stub saves EAX in ECX and loads the code into EAX:
    // mov ecx, eax; mov eax, code; vmcall; ret (2 + 5 + 3 + 1 bytes, tlfs-vsm-facts §3.6).
    // 64-bit callers pass it in RCX: mov rax, rcx; mov ecx, code; vmcall; ret (3 + 5 + 3 + 1 bytes).
    const stub32 = (code: number) => [0x89, 0xc1, 0xb8, code, 0, 0, 0, ...call, RET];
    const stub64 = (code: number) => [0x48, 0x89, 0xc8, 0xb9, code, 0, 0, 0, ...call, RET];
    page.set(stub32(HvCall.VtlCall), HvHypercallPage.VtlCall32);
    page.set(stub64(HvCall.VtlCall), HvHypercallPage.VtlCall64);
    page.set(stub32(HvCall.VtlReturn), HvHypercallPage.VtlReturn32);
    page.set(stub64(HvCall.VtlReturn), HvHypercallPage.VtlReturn64);
  }
  return page;
}

/** One page of guest RAM temporarily replaced by other contents. */
export class RamOverlay {
  /** Page frame number of the overlay, or -1 when none is mapped. */
  pfn = -1;
  private saved: Uint8Array | null = null;

  constructor(private readonly mem: PhysMemory) {}

  /** Whether page `pfn` can carry an overlay (it must be guest RAM). */
  canMap(pfn: number): boolean {
    const base = pfn * HV_PAGE_SIZE;
    return Number.isSafeInteger(base) && this.mem.isRam(base) && this.mem.isRam(base + HV_PAGE_SIZE - 1);
  }

  map(pfn: number, contents: Uint8Array): void {
    if (!this.canMap(pfn)) throw new RangeError(`page 0x${pfn.toString(16)} is not guest RAM`);
    if (contents.length !== HV_PAGE_SIZE) throw new RangeError('overlay contents must be one 4 KiB page');
    this.unmap();
    this.saved = this.mem.read(pfn * HV_PAGE_SIZE, HV_PAGE_SIZE);
    this.pfn = pfn;
    this.mem.write(pfn * HV_PAGE_SIZE, contents);
  }

  unmap(): void {
    if (this.pfn < 0) return;
    this.mem.write(this.pfn * HV_PAGE_SIZE, this.saved!);
    this.pfn = -1;
    this.saved = null;
  }
}
