/** Entry state of a Multiboot v1 kernel (pc-platform-facts.md §1.3). */
import type { Cpu } from '../x86/cpu.js';
import { ATTR_DB, ATTR_G, ATTR_P, ATTR_S } from '../x86/segment-cache.js';
import { CR0_PE, CS, DS, ES, FS, GS, RAX, RBX, SS } from '../x86/regs.js';

export function enterMultiboot(c: Cpu, entry: number, eax: number, ebx: number): void {
  c.reset();
  c.cr0 = CR0_PE | 0x10;
  const flat = (seg: number, sel: number, type: number) => {
    c.segSel[seg] = sel; c.segBaseLo[seg] = 0; c.segBaseHi[seg] = 0; c.segLimit[seg] = -1;
    c.segAttr[seg] = ATTR_P | ATTR_S | type | ATTR_DB | ATTR_G;
  };
  flat(CS, 0x08, 0xb);
  for (const s of [DS, ES, FS, GS, SS]) flat(s, 0x10, 0x3);
  c.cpl = 0;
  c.setRflags(2);
  c.rlo[RAX] = eax; c.rlo[RBX] = ebx;
  c.ripLo = entry; c.ripHi = 0;
  c.updateMode();
  c.mmu.flushAll();
}
