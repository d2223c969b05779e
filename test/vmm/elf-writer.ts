/**
 * A tiny ELF writer for loader tests: builds ELF32/ELF64 little-endian executables
 * whose layout is the System V gABI's (header, program header table, segment
 * data). Tests corrupt individual fields through `patch` to get malformed images.
 */

export interface SegmentSpec {
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  /** Defaults to data.length. */
  memsz?: number;
  /** p_type; defaults to PT_LOAD (1). */
  type?: number;
  /** p_flags; defaults to R+X (5). */
  flags?: number;
}

export interface ElfSpec {
  cls: 32 | 64;
  entry: number | bigint;
  segments: SegmentSpec[];
  machine?: number;
  type?: number;
}

export interface BuiltElf {
  bytes: Uint8Array;
  /** File offset of each segment's data. */
  offsets: number[];
  phoff: number;
  phentsize: number;
}

export function buildElf(spec: ElfSpec): BuiltElf {
  const is64 = spec.cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const phoff = ehsize;
  let at = align(phoff + spec.segments.length * phentsize, 16);
  const offsets = spec.segments.map((s) => {
    const o = at;
    at = align(at + s.data.length, 16);
    return o;
  });
  const bytes = new Uint8Array(at);
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  dv.setUint16(16, spec.type ?? 2, true);
  dv.setUint16(18, spec.machine ?? (is64 ? 62 : 3), true);
  dv.setUint32(20, 1, true);
  if (is64) {
    dv.setBigUint64(24, BigInt(spec.entry), true);
    dv.setBigUint64(32, BigInt(phoff), true);
    dv.setUint16(52, ehsize, true);
    dv.setUint16(54, phentsize, true);
    dv.setUint16(56, spec.segments.length, true);
  } else {
    dv.setUint32(24, Number(spec.entry), true);
    dv.setUint32(28, phoff, true);
    dv.setUint16(40, ehsize, true);
    dv.setUint16(42, phentsize, true);
    dv.setUint16(44, spec.segments.length, true);
  }
  spec.segments.forEach((s, i) => {
    const ph = phoff + i * phentsize;
    const memsz = s.memsz ?? s.data.length;
    const vaddr = s.vaddr ?? BigInt(s.paddr);
    dv.setUint32(ph, s.type ?? 1, true);
    if (is64) {
      dv.setUint32(ph + 4, s.flags ?? 5, true);
      dv.setBigUint64(ph + 8, BigInt(offsets[i]), true);
      dv.setBigUint64(ph + 16, vaddr, true);
      dv.setBigUint64(ph + 24, BigInt(s.paddr), true);
      dv.setBigUint64(ph + 32, BigInt(s.data.length), true);
      dv.setBigUint64(ph + 40, BigInt(memsz), true);
      dv.setBigUint64(ph + 48, 0x1000n, true);
    } else {
      dv.setUint32(ph + 4, offsets[i], true);
      dv.setUint32(ph + 8, Number(vaddr), true);
      dv.setUint32(ph + 12, s.paddr, true);
      dv.setUint32(ph + 16, s.data.length, true);
      dv.setUint32(ph + 20, memsz, true);
      dv.setUint32(ph + 24, s.flags ?? 5, true);
      dv.setUint32(ph + 28, 0x1000, true);
    }
    bytes.set(s.data, offsets[i]);
  });
  return { bytes, offsets, phoff, phentsize };
}

/** A Multiboot v1 header {magic, flags, checksum} plus optional address fields. */
export function multibootHeader(flags: number, address?: number[], checksumDelta = 0): Uint8Array {
  const words = [0x1badb002, flags >>> 0, (-(0x1badb002 + flags) + checksumDelta) >>> 0, ...(address ?? [])];
  const out = new Uint8Array(words.length * 4);
  const dv = new DataView(out.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return out;
}

export function bytesOf(...parts: (Uint8Array | number[])[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
