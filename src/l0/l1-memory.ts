/**
 * L1's physical address space as the outer hypervisor (L0) sees it: the RAM
 * the CPUs address (the Vm's memory, at L1 physical address 0) and, above
 * every address a CPU uses, further RAM that only L0's walks of the
 * second-level tables read (our hypervisor core keeps its NPT pages there, so
 * no L2 mapping can reach them; src/kvm/on-hyperv/tdp-mmu.ts).
 */
import { CHUNK_SIZE, type PhysMemory } from '../memory/phys-memory.js';

export interface TableRam {
  /** L1 physical address of the first byte (page-aligned, above every address a CPU uses). */
  readonly base: number;
  readonly mem: PhysMemory;
}

export class L1Memory {
  constructor(readonly ram: PhysMemory, readonly tables: TableRam | null) {
    if (tables !== null && (!Number.isSafeInteger(tables.base) || tables.base % 4096 !== 0 || tables.base < ram.size)) {
      throw new RangeError(`the table RAM base 0x${tables.base.toString(16)} must be page-aligned and above the CPUs' RAM (0x${ram.size.toString(16)} bytes)`);
    }
  }

  /**
   * Reads the 8-byte table entry at L1 physical `pa` (8-byte aligned) as
   * out[0] = bits 31:0, out[1] = bits 63:32; false when no RAM is there.
   */
  readEntry(pa: number, out: Int32Array): boolean {
    const t = this.tables;
    let mem: PhysMemory, off: number;
    if (t !== null && pa >= t.base) { mem = t.mem; off = pa - t.base; }
    else { mem = this.ram; off = pa; }
    if (off >= mem.size) return false;
    const dv = mem.chunk(off).dv, o = off % CHUNK_SIZE;
    out[0] = dv.getInt32(o, true);
    out[1] = dv.getInt32(o + 4, true);
    return true;
  }

  /** Whether a CPU can use `pa` (RAM or MMIO of its own memory's address range, not table RAM). */
  cpuAddress(pa: number): boolean {
    return this.tables === null || pa < this.tables.base;
  }
}
