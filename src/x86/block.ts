/**
 * Decoded blocks and their cache, shared by every CPU on the same memory.
 * A block is keyed by the physical address of its first byte and the code size;
 * it also records the linear address it was decoded at (decoded instructions
 * carry linear addresses) and, when its last instruction crosses into the next
 * page, that page's translation, which is re-checked before each execution.
 */
import { PAGE_SIZE, PhysMemory, CHUNK_SIZE } from '../memory/phys-memory.js';
import type { Cpu } from './cpu.js';
import { decode, type ByteSource } from './decoder.js';
import { CpuFault } from './fault.js';
import type { Insn } from './insn.js';
import type { CompiledBlock } from './block-compiler.js';

export const MAX_BLOCK_INSNS = 128;

export interface Block {
  /** False once the block's code was overwritten (it stays reachable only through stale links, which check this). */
  valid: boolean;
  /** Successor blocks seen so far (taken / fall-through), valid while linkEpoch equals the MMU epoch. */
  succ1: Block | null;
  succ2: Block | null;
  linkEpoch: number;
  /** Executions so far, and the compiled form once hot (block-compiler.ts). */
  hits: number;
  compiled: CompiledBlock | null;
  phys: number;
  codeSize: number;
  lo: number;
  hi: number;
  insns: Insn[];
  /** Linear address of the second page for a block whose last instruction crosses a page, else -1. */
  page2Lin: number;
  page2LinHi: number;
  page2Phys: number;
}

export class BlockCache {
  private static readonly caches = new WeakMap<PhysMemory, BlockCache>();
  static for(mem: PhysMemory): BlockCache {
    let bc = BlockCache.caches.get(mem);
    if (bc === undefined) { bc = new BlockCache(mem); BlockCache.caches.set(mem, bc); }
    return bc;
  }

  private readonly map = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  private readonly mem: PhysMemory;

  private constructor(mem: PhysMemory) {
    this.mem = mem;
    mem.onCodeWrite((pfn) => this.invalidatePage(pfn));
  }

  private static key(phys: number, codeSize: number): number {
    return phys * 4 + (codeSize >> 5);
  }

  lookup(phys: number, codeSize: number, lo: number, hi: number): Block | undefined {
    const b = this.map.get(BlockCache.key(phys, codeSize));
    return b !== undefined && b.lo === lo && b.hi === hi ? b : undefined;
  }

  insert(b: Block): void {
    this.map.set(BlockCache.key(b.phys, b.codeSize), b);
    this.attach(Math.floor(b.phys / PAGE_SIZE), b);
    if (b.page2Lin !== -1) this.attach(Math.floor(b.page2Phys / PAGE_SIZE), b);
  }

  private attach(pfn: number, b: Block): void {
    let list = this.byPage.get(pfn);
    if (list === undefined) {
      list = [];
      this.byPage.set(pfn, list);
      this.mem.markCode(pfn);
    }
    list.push(b);
  }

  invalidatePage(pfn: number): void {
    const list = this.byPage.get(pfn);
    if (list === undefined) return;
    this.byPage.delete(pfn);
    for (const b of list) {
      b.valid = false;
      const key = BlockCache.key(b.phys, b.codeSize);
      if (this.map.get(key) === b) this.map.delete(key);
    }
    // The page may still be marked as code if invalidation came from elsewhere.
    this.mem.notifyWrite(pfn * PAGE_SIZE, 1);
  }
}

/** Reads instruction bytes from guest memory, translating the next page on demand. */
class BlockBytes implements ByteSource {
  base = 0;
  page2Phys = -1;
  page2Lin = -1;
  page2LinHi = 0;
  constructor(private readonly c: Cpu, private readonly startPhys: number, private readonly startLo: number,
    private readonly startHi: number) {}

  byteAt(k: number): number {
    const off = (this.startLo & 0xfff) + this.base + k;
    if (off < PAGE_SIZE) return this.phys(this.startPhys - (this.startLo & 0xfff) + off);
    if (this.page2Phys === -1) {
      const s = ((this.startLo & ~0xfff) >>> 0) + PAGE_SIZE;
      const lo = s | 0, hi = this.c.longMode ? (this.startHi + (s > 0xffffffff ? 1 : 0)) | 0 : 0;
      this.page2Phys = this.c.mmu.translateFetch(lo, hi);
      this.page2Lin = lo; this.page2LinHi = hi;
    }
    return this.phys(this.page2Phys + off - PAGE_SIZE);
  }

  private phys(pa: number): number {
    const mem = this.c.mem;
    if (!mem.isRam(pa)) return 0xff;
    return mem.chunk(pa).u8[pa % CHUNK_SIZE];
  }
}

/** Decodes a block starting at the CPU's RIP (linear address lin/linHi, physical `phys`). */
export function decodeBlock(c: Cpu, phys: number, lin: number, linHi: number): Block {
  const lo0 = c.ripLo, hi0 = c.ripHi, codeSize = c.codeSize;
  const src = new BlockBytes(c, phys, lin, linHi);
  const insns: Insn[] = [];
  let off = 0;
  for (;;) {
    const s = (lo0 >>> 0) + off;
    const lo = codeSize === 16 ? s & 0xffff : s | 0;
    const hi = codeSize === 64 ? (hi0 + (s > 0xffffffff ? 1 : 0)) | 0 : 0;
    src.base = off;
    let ins: Insn;
    try {
      ins = decode(src, codeSize, lo, hi);
    } catch (e) {
      // A fetch fault inside a later instruction ends the block before it; the
      // fault is raised when execution actually gets there.
      if (e instanceof CpuFault && insns.length > 0) break;
      throw e;
    }
    ins.idx = insns.length;
    insns.push(ins);
    off += ins.len;
    if (ins.end) break;
    if ((lin & 0xfff) + off >= PAGE_SIZE) break;
    if (insns.length >= MAX_BLOCK_INSNS) break;
  }
  const crosses = (lin & 0xfff) + off > PAGE_SIZE;
  return {
    valid: true, succ1: null, succ2: null, linkEpoch: -1, hits: 0, compiled: null,
    phys, codeSize, lo: lo0, hi: hi0, insns,
    page2Lin: crosses ? src.page2Lin : -1,
    page2LinHi: src.page2LinHi,
    page2Phys: crosses ? src.page2Phys : -1,
  };
}
