/**
 * ELF executable parser for x86 kernels: ELF32 and ELF64, little endian, EM_386 or
 * EM_X86_64, type ET_EXEC (System V gABI, "ELF Header" and "Program Header").
 * kvm-unit-tests ships its 64-bit kernels in an ELF32 container
 * (pc-platform-facts.md §1.2), so both classes carry the same kind of code.
 *
 * Everything the file claims is checked against the file itself before anyone
 * uses it; a malformed image is an ImageError with one sentence naming the defect.
 */

/** A kernel image the VMM cannot load; the message is one sentence for the user. */
export class ImageError extends Error {
  override name = 'ImageError';
}

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46]; // "\x7fELF"
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_EXEC = 2;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
/** e_phnum value meaning "the real count is in section header 0" (not supported). */
export const PN_XNUM = 0xffff;

/** Sizes of the ELF header and of one program header, per class. */
export const ELF32_EHDR_SIZE = 52;
export const ELF64_EHDR_SIZE = 64;
export const ELF32_PHDR_SIZE = 32;
export const ELF64_PHDR_SIZE = 56;

/** One PT_LOAD segment: copy `filesz` bytes from `offset` to `paddr`, zero up to `memsz`. */
export interface ElfSegment {
  readonly offset: number;
  readonly paddr: number;
  /** p_vaddr, a bigint: higher-half kernels put it far above 2^53, and loading ignores it. */
  readonly vaddr: bigint;
  readonly filesz: number;
  readonly memsz: number;
  /** p_flags: PF_X 1, PF_W 2, PF_R 4. */
  readonly flags: number;
}

export interface ElfImage {
  readonly elfClass: 32 | 64;
  readonly machine: number;
  readonly entry: number;
  /** PT_LOAD segments with a non-zero memory size, in file order. */
  readonly segments: readonly ElfSegment[];
}

export function isElf(file: Uint8Array): boolean {
  return file.length >= 4 && ELF_MAGIC.every((b, i) => file[i] === b);
}

export function parseElf(file: Uint8Array): ElfImage {
  if (!isElf(file)) throw new ImageError('the image is not an ELF file (it does not start with 0x7F "ELF")');
  if (file.length < 16) throw new ImageError(`the ELF identification is truncated (the file is ${file.length} bytes)`);
  const cls = file[4];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) {
    throw new ImageError(`the ELF class ${cls} is not supported (only ELF32 = 1 and ELF64 = 2 exist)`);
  }
  if (file[5] !== ELFDATA2LSB) {
    throw new ImageError(`the ELF data encoding ${file[5]} is not little endian, which every x86 image must be`);
  }
  if (file[6] !== EV_CURRENT) throw new ImageError(`the ELF identification version ${file[6]} is not 1 (EV_CURRENT)`);

  const is64 = cls === ELFCLASS64;
  const ehdrSize = is64 ? ELF64_EHDR_SIZE : ELF32_EHDR_SIZE;
  if (file.length < ehdrSize) {
    throw new ImageError(`the ELF header is truncated: the file has ${file.length} bytes but the header needs ${ehdrSize}`);
  }
  const r = new FieldReader(file, is64);

  const type = r.u16(16);
  if (type !== ET_EXEC) throw new ImageError(`the ELF type ${type} is not an executable (ET_EXEC = 2)`);
  const machine = r.u16(18);
  if (machine !== EM_386 && machine !== EM_X86_64) {
    throw new ImageError(`the ELF machine ${machine} is not x86 (EM_386 = 3 or EM_X86_64 = 62)`);
  }
  const version = r.u32(20);
  if (version !== EV_CURRENT) throw new ImageError(`the ELF version ${version} is not 1 (EV_CURRENT)`);

  const entry = r.addr(24, 'e_entry');
  const phoff = r.addr(is64 ? 32 : 28, 'e_phoff');
  const phentsize = r.u16(is64 ? 54 : 42);
  const phnum = r.u16(is64 ? 56 : 44);
  const minPhent = is64 ? ELF64_PHDR_SIZE : ELF32_PHDR_SIZE;

  if (phnum === 0) throw new ImageError('the ELF file has no program headers, so there is nothing to load');
  if (phnum === PN_XNUM) {
    throw new ImageError('the ELF file uses extended program header numbering (e_phnum = 0xFFFF), which is not supported');
  }
  if (phentsize < minPhent) {
    throw new ImageError(`the ELF program header size ${phentsize} is smaller than the ${minPhent} bytes of an ELF${is64 ? 64 : 32} program header`);
  }
  if (phoff + phnum * phentsize > file.length) {
    throw new ImageError(
      `the ELF program header table (${phnum} entries of ${phentsize} bytes at offset ${hex(phoff)}) extends past the end of the ${file.length}-byte file`,
    );
  }

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (r.u32(ph) !== PT_LOAD) continue;
    const seg = is64
      ? {
          flags: r.u32(ph + 4),
          offset: r.addr(ph + 8, 'p_offset'),
          vaddr: r.u64(ph + 16),
          paddr: r.addr(ph + 24, 'p_paddr'),
          filesz: r.addr(ph + 32, 'p_filesz'),
          memsz: r.addr(ph + 40, 'p_memsz'),
        }
      : {
          offset: r.u32(ph + 4),
          vaddr: BigInt(r.u32(ph + 8)),
          paddr: r.u32(ph + 12),
          filesz: r.u32(ph + 16),
          memsz: r.u32(ph + 20),
          flags: r.u32(ph + 24),
        };
    checkSegment(seg, i, file.length, is64);
    if (seg.memsz > 0) segments.push(seg);
  }
  if (segments.length === 0) throw new ImageError('the ELF file has no loadable (PT_LOAD) segment with a non-zero size');
  checkNoOverlap(segments);
  return { elfClass: is64 ? 64 : 32, machine, entry, segments };
}

function checkSegment(seg: ElfSegment, index: number, fileLength: number, is64: boolean): void {
  const what = `ELF segment ${index} (PT_LOAD at physical ${hex(seg.paddr)})`;
  if (seg.filesz > seg.memsz) {
    throw new ImageError(`${what} has a file size of ${hex(seg.filesz)} bytes, larger than its memory size of ${hex(seg.memsz)}`);
  }
  if (seg.offset + seg.filesz > fileLength) {
    throw new ImageError(
      `${what} needs file bytes ${hex(seg.offset)}-${hex(seg.offset + seg.filesz)}, past the end of the ${fileLength}-byte file`,
    );
  }
  // A segment may end exactly at the top of the address space, not beyond it.
  const limit = is64 ? Number.MAX_SAFE_INTEGER : 2 ** 32;
  if (seg.paddr + seg.memsz > limit) {
    throw new ImageError(`${what} of ${hex(seg.memsz)} bytes wraps past the top of the ${is64 ? '64' : '32'}-bit address space`);
  }
}

function checkNoOverlap(segments: readonly ElfSegment[]): void {
  const sorted = [...segments].sort((a, b) => a.paddr - b.paddr);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.paddr < prev.paddr + prev.memsz) {
      throw new ImageError(
        `ELF segments at physical ${hex(prev.paddr)}-${hex(prev.paddr + prev.memsz)} and ${hex(cur.paddr)}-${hex(cur.paddr + cur.memsz)} overlap`,
      );
    }
  }
}

/** Little-endian field access; 64-bit fields must fit a JS number exactly. */
class FieldReader {
  private readonly dv: DataView;

  constructor(
    file: Uint8Array,
    private readonly is64: boolean,
  ) {
    this.dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  }

  u16(off: number): number {
    return this.dv.getUint16(off, true);
  }

  u32(off: number): number {
    return this.dv.getUint32(off, true);
  }

  u64(off: number): bigint {
    return this.dv.getBigUint64(off, true);
  }

  /** An address or offset field: 32 bits in ELF32, 64 bits in ELF64. */
  addr(off: number, name: string): number {
    if (!this.is64) return this.u32(off);
    const lo = this.u32(off);
    const hi = this.u32(off + 4);
    if (hi >= 0x200000) {
      // 2^53 and above cannot be represented exactly; no PC has such addresses.
      const v = this.u64(off);
      throw new ImageError(`the ELF field ${name} = 0x${v.toString(16).toUpperCase()} is too large for any guest address`);
    }
    return hi * 2 ** 32 + lo;
  }
}

export function hex(n: number): string {
  return '0x' + n.toString(16).toUpperCase();
}
