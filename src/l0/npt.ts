/**
 * Second-level (AMD NPT) page tables as L0 walks them: the long-mode 4-level
 * format (AMD APM vol. 2 §15.25.5: NPT entries are long-mode page-table
 * entries), 1 GiB and 2 MiB leaves through PS in a PDPTE or PDE. The root is
 * the nCR3 L1 runs the vCPU with, the address-space identifier of §7.2.
 *
 * Only presence is checked: the tables our hypervisor core builds grant every
 * present page read, write and execute, and KVM's own restrictions (memory
 * attributes) stay in the CPU owner's page permissions.
 */
import type { L1Memory } from './l1-memory.js';

export const NPT_P = 1, NPT_RW = 2, NPT_US = 4, NPT_PS = 0x80;
/** Present, writable, user: the bits of every table and leaf entry our core writes. */
export const NPT_PRW = NPT_P | NPT_RW | NPT_US;
/** Address bits 51:12 of an entry's high half. */
const HI_ADDR_MASK = 0xfffff;
/** GPAs an NPT of four levels translates: 48 bits. */
export const NPT_GPA_LIMIT = 2 ** 48;

/** Address of the frame or table an entry points to (lo/hi halves). */
export function entryAddress(lo: number, hi: number): number {
  return (hi & HI_ADDR_MASK) * 4294967296 + ((lo & ~0xfff) >>> 0);
}

/** Index of `gpa` at page-table `level` (4 = PML4 ... 1 = PT). */
export function nptIndex(gpa: number, level: number): number {
  return Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
}

/**
 * The L1 physical address `gpa` maps to through the tables at `root`, or -1
 * when an entry on the way is not present, not RAM, or `gpa` is beyond 48 bits.
 */
export function walkNpt(mem: L1Memory, root: number, gpa: number, scratch: Int32Array): number {
  if (gpa < 0 || gpa >= NPT_GPA_LIMIT) return -1;
  let table = root;
  for (let level = 4; level >= 1; level--) {
    if (!mem.readEntry(table + 8 * nptIndex(gpa, level), scratch)) return -1;
    const lo = scratch[0], hi = scratch[1];
    if (!(lo & NPT_P)) return -1;
    const addr = entryAddress(lo, hi);
    if (level === 1 || ((level === 2 || level === 3) && (lo & NPT_PS))) {
      const size = 2 ** (12 + 9 * (level - 1));
      return addr - (addr % size) + (gpa % size);
    }
    table = addr;
  }
  return -1;
}
