/**
 * Guest physical memory: sparse RAM allocated in 64 KiB chunks on first touch
 * (DESIGN §3.6), shared by every vCPU and every VTL's Vm.
 *
 * Addresses are JS numbers (exact up to 2^53, far above any guest physical
 * address). Every write path (CPU, device DMA, VMM, loader) goes through this
 * class or through a page handle obtained from it while honouring the code-page
 * rule: a page that holds decoded code is never handed out for fast writes, and
 * a write to it invalidates the decoded code first (self-modifying code).
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const CHUNK_SHIFT = 16;
export const CHUNK_SIZE = 1 << CHUNK_SHIFT;
const PAGES_PER_CHUNK = CHUNK_SIZE >> PAGE_SHIFT;

/** A chunk of RAM and its views, handed to the CPU's fast access path. */
export interface Chunk {
  readonly u8: Uint8Array;
  readonly dv: DataView;
  /** Per page of this chunk: how many decoded-code users it has (0 = plain data). */
  readonly code: Uint8Array;
}

/** Receives notice that code on a physical page was overwritten. */
export type CodeWriteListener = (pfn: number) => void;

export class PhysMemory {
  readonly size: number;
  private readonly chunks: (Chunk | undefined)[];
  private readonly codeListeners: CodeWriteListener[] = [];
  private readonly markListeners: CodeWriteListener[] = [];
  /** Bytes of host memory allocated for guest RAM so far. */
  allocatedBytes = 0;

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(`guest RAM size must be a positive multiple of 4 KiB, got ${size}`);
    }
    this.size = size;
    this.chunks = new Array(Math.ceil(size / CHUNK_SIZE));
  }

  isRam(gpa: number): boolean {
    return gpa >= 0 && gpa < this.size;
  }

  /** The chunk holding `gpa`, allocated on first touch. `gpa` must be RAM. */
  chunk(gpa: number): Chunk {
    const idx = Math.floor(gpa / CHUNK_SIZE);
    let c = this.chunks[idx];
    if (c === undefined) {
      const buf = new ArrayBuffer(CHUNK_SIZE);
      c = { u8: new Uint8Array(buf), dv: new DataView(buf), code: new Uint8Array(PAGES_PER_CHUNK) };
      this.chunks[idx] = c;
      this.allocatedBytes += CHUNK_SIZE;
    }
    return c;
  }

  /** The chunk for reading only: untouched memory reads as zero without allocating. */
  private peekChunk(gpa: number): Chunk | undefined {
    return this.chunks[Math.floor(gpa / CHUNK_SIZE)];
  }

  // ---- code-page tracking (used by the decoded-block cache) ----

  onCodeWrite(fn: CodeWriteListener): void {
    this.codeListeners.push(fn);
  }

  /** Receives notice that a page now holds decoded code (caches that allowed fast writes to it must drop them). */
  onMarkCode(fn: CodeWriteListener): void {
    this.markListeners.push(fn);
  }

  /** Marks a page as holding decoded code. */
  markCode(pfn: number): void {
    const c = this.chunk(pfn * PAGE_SIZE);
    const k = pfn & (PAGES_PER_CHUNK - 1);
    if (c.code[k] !== 0) return;
    c.code[k] = 1;
    for (const l of this.markListeners) l(pfn);
  }

  isCode(pfn: number): boolean {
    const c = this.peekChunk(pfn * PAGE_SIZE);
    return c !== undefined && c.code[pfn & (PAGES_PER_CHUNK - 1)] !== 0;
  }

  /** Called before any write that may touch a code page: drops the decoded code. */
  notifyWrite(gpa: number, len: number): void {
    const first = Math.floor(gpa / PAGE_SIZE);
    const last = Math.floor((gpa + len - 1) / PAGE_SIZE);
    for (let pfn = first; pfn <= last; pfn++) {
      const c = this.peekChunk(pfn * PAGE_SIZE);
      if (c === undefined) continue;
      const k = pfn & (PAGES_PER_CHUNK - 1);
      if (c.code[k] !== 0) {
        c.code[k] = 0;
        for (const l of this.codeListeners) l(pfn);
      }
    }
  }

  // ---- bulk access for loaders, devices and the hypervisor ----

  private checkRange(gpa: number, len: number): void {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0 || gpa + len > this.size) {
      throw new RangeError(`guest physical range 0x${gpa.toString(16)}+0x${len.toString(16)} is outside RAM`);
    }
  }

  read(gpa: number, len: number): Uint8Array {
    this.checkRange(gpa, len);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const a = gpa + done;
      const off = a % CHUNK_SIZE;
      const n = Math.min(len - done, CHUNK_SIZE - off);
      const c = this.peekChunk(a);
      if (c !== undefined) out.set(c.u8.subarray(off, off + n), done);
      done += n;
    }
    return out;
  }

  write(gpa: number, data: Uint8Array): void {
    this.checkRange(gpa, data.length);
    this.notifyWrite(gpa, data.length || 1);
    let done = 0;
    while (done < data.length) {
      const a = gpa + done;
      const off = a % CHUNK_SIZE;
      const n = Math.min(data.length - done, CHUNK_SIZE - off);
      this.chunk(a).u8.set(data.subarray(done, done + n), off);
      done += n;
    }
  }

  fill(gpa: number, len: number, value: number): void {
    this.checkRange(gpa, len);
    this.notifyWrite(gpa, len || 1);
    let done = 0;
    while (done < len) {
      const a = gpa + done;
      const off = a % CHUNK_SIZE;
      const n = Math.min(len - done, CHUNK_SIZE - off);
      const c = value === 0 ? this.peekChunk(a) : this.chunk(a);
      if (c !== undefined) c.u8.fill(value, off, off + n);
      done += n;
    }
  }

  read8(gpa: number): number {
    this.checkRange(gpa, 1);
    const c = this.peekChunk(gpa);
    return c === undefined ? 0 : c.u8[gpa % CHUNK_SIZE];
  }

  /** Little-endian unsigned 16/32-bit read; may cross chunks. */
  read16(gpa: number): number {
    return this.read8(gpa) | (this.read8(gpa + 1) << 8);
  }

  read32(gpa: number): number {
    const off = gpa % CHUNK_SIZE;
    if (off <= CHUNK_SIZE - 4) {
      this.checkRange(gpa, 4);
      const c = this.peekChunk(gpa);
      return c === undefined ? 0 : c.dv.getUint32(off, true);
    }
    return (this.read16(gpa) | (this.read16(gpa + 2) << 16)) >>> 0;
  }

  /** 64-bit read as a bigint (API edges, not hot paths). */
  read64(gpa: number): bigint {
    const off = gpa % CHUNK_SIZE;
    if (off <= CHUNK_SIZE - 8) {
      this.checkRange(gpa, 8);
      const c = this.peekChunk(gpa);
      return c === undefined ? 0n : c.dv.getBigUint64(off, true);
    }
    return BigInt(this.read32(gpa)) | (BigInt(this.read32(gpa + 4)) << 32n);
  }

  write8(gpa: number, v: number): void {
    this.checkRange(gpa, 1);
    this.notifyWrite(gpa, 1);
    this.chunk(gpa).u8[gpa % CHUNK_SIZE] = v;
  }

  write16(gpa: number, v: number): void {
    this.write8(gpa, v & 0xff);
    this.write8(gpa + 1, (v >>> 8) & 0xff);
  }

  write32(gpa: number, v: number): void {
    const off = gpa % CHUNK_SIZE;
    if (off <= CHUNK_SIZE - 4) {
      this.checkRange(gpa, 4);
      this.notifyWrite(gpa, 4);
      this.chunk(gpa).dv.setUint32(off, v >>> 0, true);
    } else {
      this.write16(gpa, v & 0xffff);
      this.write16(gpa + 2, (v >>> 16) & 0xffff);
    }
  }

  write64(gpa: number, v: bigint): void {
    const off = gpa % CHUNK_SIZE;
    if (off <= CHUNK_SIZE - 8) {
      this.checkRange(gpa, 8);
      this.notifyWrite(gpa, 8);
      this.chunk(gpa).dv.setBigUint64(off, BigInt.asUintN(64, v), true);
      return;
    }
    this.write32(gpa, Number(v & 0xffffffffn));
    this.write32(gpa + 4, Number((v >> 32n) & 0xffffffffn));
  }
}
