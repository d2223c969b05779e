/**
 * Minimal ELF reader for the decoder cross-check corpus: section headers and
 * symbols of little-endian ELF32/ELF64 files (System V gABI, "Sections" and
 * "Symbol Table"), enough to pull out the executable sections of binaries and
 * object files and to cut them at labels.
 */

export class ElfFormatError extends Error {
  override name = 'ElfFormatError';
}

export const SHF_EXECINSTR = 0x4;
const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  addr: bigint;
  data: Uint8Array;
}

export interface ElfSymbol {
  name: string;
  value: bigint;
  /** Index of the section the symbol is defined in. */
  shndx: number;
}

export interface ElfFile {
  /** 32 for ELFCLASS32, 64 for ELFCLASS64. */
  elfClass: 32 | 64;
  /** e_machine: 3 = EM_386, 62 = EM_X86_64. */
  machine: number;
  sections: ElfSection[];
  symbols: ElfSymbol[];
}

function cString(b: Uint8Array, off: number): string {
  let end = off;
  while (end < b.length && b[end] !== 0) end++;
  return Buffer.from(b.subarray(off, end)).toString('latin1');
}

/** Parses `bytes` as an ELF file; `what` names it in errors. */
export function readElf(bytes: Uint8Array, what: string): ElfFile {
  if (bytes.length < 52 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfFormatError(`${what} is not an ELF file.`);
  }
  if (bytes[5] !== 1) throw new ElfFormatError(`${what} is not a little-endian ELF file.`);
  const is64 = bytes[4] === 2;
  if (!is64 && bytes[4] !== 1) throw new ElfFormatError(`${what} has an unknown ELF class ${bytes[4]}.`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = v.getUint16(18, true);
  const shoff = is64 ? Number(v.getBigUint64(0x28, true)) : v.getUint32(0x20, true);
  const shentsize = v.getUint16(is64 ? 0x3a : 0x2e, true);
  const shnum = v.getUint16(is64 ? 0x3c : 0x30, true);
  const shstrndx = v.getUint16(is64 ? 0x3e : 0x32, true);
  if (shnum === 0) throw new ElfFormatError(`${what} has no section headers.`);
  if (shoff + shnum * shentsize > bytes.length || shstrndx >= shnum) {
    throw new ElfFormatError(`${what} has section headers outside the file.`);
  }
  interface Raw { nameOff: number; type: number; flags: number; addr: bigint; off: number; size: number; link: number; entsize: number }
  const raw: Raw[] = [];
  for (let k = 0; k < shnum; k++) {
    const h = shoff + k * shentsize;
    raw.push(is64 ? {
      nameOff: v.getUint32(h, true), type: v.getUint32(h + 4, true), flags: Number(v.getBigUint64(h + 8, true)),
      addr: v.getBigUint64(h + 0x10, true), off: Number(v.getBigUint64(h + 0x18, true)),
      size: Number(v.getBigUint64(h + 0x20, true)), link: v.getUint32(h + 0x28, true), entsize: Number(v.getBigUint64(h + 0x38, true)),
    } : {
      nameOff: v.getUint32(h, true), type: v.getUint32(h + 4, true), flags: v.getUint32(h + 8, true),
      addr: BigInt(v.getUint32(h + 0x0c, true)), off: v.getUint32(h + 0x10, true),
      size: v.getUint32(h + 0x14, true), link: v.getUint32(h + 0x18, true), entsize: v.getUint32(h + 0x24, true),
    });
  }
  const dataOf = (r: Raw): Uint8Array => {
    if (r.type === 8 /* SHT_NOBITS */) return new Uint8Array(0);
    if (r.off + r.size > bytes.length) throw new ElfFormatError(`${what} has a section outside the file.`);
    return bytes.subarray(r.off, r.off + r.size);
  };
  const shstr = dataOf(raw[shstrndx]);
  const sections = raw.map((r) => ({ name: cString(shstr, r.nameOff), type: r.type, flags: r.flags, addr: r.addr, data: dataOf(r) }));
  const symbols: ElfSymbol[] = [];
  raw.forEach((r, k) => {
    if (r.type !== SHT_SYMTAB || r.link >= raw.length) return;
    const tab = sections[k].data, strs = dataOf(raw[r.link]);
    const ent = r.entsize || (is64 ? 24 : 16);
    const sv = new DataView(tab.buffer, tab.byteOffset, tab.byteLength);
    for (let o = ent; o + ent <= tab.length; o += ent) {
      const name = cString(strs, sv.getUint32(o, true));
      if (is64) symbols.push({ name, shndx: sv.getUint16(o + 6, true), value: sv.getBigUint64(o + 8, true) });
      else symbols.push({ name, shndx: sv.getUint16(o + 14, true), value: BigInt(sv.getUint32(o + 4, true)) });
    }
  });
  return { elfClass: is64 ? 64 : 32, machine, sections, symbols };
}

/** The executable PROGBITS sections (.text, .init, .plt, ...) of a parsed ELF file. */
export function codeSections(elf: ElfFile): ElfSection[] {
  return elf.sections.filter((s) => s.type === SHT_PROGBITS && (s.flags & SHF_EXECINSTR) !== 0 && s.data.length > 0);
}

/**
 * Bytes of section `section` from symbol `from` up to symbol `to` (or the section
 * end). In a relocatable object, symbol values are offsets into their section.
 */
export function bytesBetween(elf: ElfFile, section: string, from: string, to?: string): Uint8Array | undefined {
  const idx = elf.sections.findIndex((s) => s.name === section);
  if (idx < 0) return undefined;
  const sym = (n: string): number | undefined => {
    const s = elf.symbols.find((x) => x.name === n && x.shndx === idx);
    return s === undefined ? undefined : Number(s.value - elf.sections[idx].addr);
  };
  const a = sym(from);
  const b = to === undefined ? elf.sections[idx].data.length : sym(to);
  if (a === undefined || b === undefined || b < a) return undefined;
  return elf.sections[idx].data.subarray(a, b);
}
