/**
 * The input block of one hypercall as its handler reads it: the bytes at the
 * input GPA (memory-based calls, read through hc-buffers.ts) or the register
 * block of a fast call (fact sheet §1.3: RDX, R8, then XMM0..XMM5, 16 bytes
 * a pair). Handlers read fields by offset; values are little-endian.
 */
export class HcInput {
  private dv: DataView;

  constructor(
    /** The block; only the first `length` bytes belong to this call. */
    private bytesValue: Uint8Array,
    public length: number,
  ) {
    this.dv = new DataView(bytesValue.buffer, bytesValue.byteOffset, bytesValue.byteLength);
  }

  /** Re-points this view at another block (the dispatcher reuses one view per vCPU). */
  reset(bytes: Uint8Array, length: number): void {
    if (bytes !== this.bytesValue) {
      this.bytesValue = bytes;
      this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    this.length = length;
  }

  get bytes(): Uint8Array { return this.bytesValue.subarray(0, this.length); }

  u8(off: number): number { this.check(off, 1); return this.dv.getUint8(off); }
  u16(off: number): number { this.check(off, 2); return this.dv.getUint16(off, true); }
  u32(off: number): number { this.check(off, 4); return this.dv.getUint32(off, true); }
  /** Bits 31:0 of the u64 at `off`, as an int32. */
  lo(off: number): number { this.check(off, 8); return this.dv.getInt32(off, true); }
  /** Bits 63:32 of the u64 at `off`, as an int32. */
  hi(off: number): number { this.check(off, 8); return this.dv.getInt32(off + 4, true); }
  u64(off: number): bigint { this.check(off, 8); return this.dv.getBigUint64(off, true); }

  /** A handler reading past its input is a bug in the handler's size declaration, not bad guest input. */
  private check(off: number, size: number): void {
    if (off < 0 || off + size > this.length) {
      throw new RangeError(`hypercall handler read bytes ${off}..${off + size - 1} of a ${this.length}-byte input block`);
    }
  }
}
