/**
 * Multiboot v1 loader (Multiboot Specification 0.6.96; pc-platform-facts.md §1):
 * finds the header, loads the kernel (from the header's address fields when flag
 * bit 16 is set, else from the ELF program headers), copies the modules and
 * writes the Multiboot information structure (MBI). The caller then enters the
 * kernel in 32-bit protected mode with paging off, flat segments, IF = 0,
 * EAX = 0x2BADB002 and EBX = the MBI address (`MultibootBoot`).
 *
 * Where things go, and why:
 * - The boot information (MBI, memory map, module list, strings) sits at
 *   BOOT_INFO_BASE = 0x10000, below 640 KiB and above page 0: kernels allocate
 *   from the end of their image upward (kvm-unit-tests: edata .. mem_upper), and
 *   the AP trampoline overwrites page 0 (pc-platform-facts.md §1.4).
 * - Modules go page-aligned right after the boot information when they fit below
 *   0xA0000, for the same reason. Larger modules go page-aligned right after the
 *   kernel image, where QEMU puts them; a kernel whose allocator starts at the end
 *   of its image must consume them before allocating (kvm-unit-tests copies its
 *   environment module during setup, before any allocation).
 * - Every kernel segment must lie inside RAM as the memory map reports it and may
 *   not overlap the boot information; modules that would overlap a low kernel
 *   move above it instead.
 *
 * Nothing is written to guest memory until the whole plan has been checked, so a
 * refused image leaves memory untouched.
 */

import type { PhysMemory } from '../../memory/phys-memory.js';
import { PAGE_SIZE } from '../../memory/phys-memory.js';
import * as MB from '../../spec/multiboot.js';
import { ImageError, hex, isElf, parseElf } from './elf.js';

export { ImageError } from './elf.js';

/** Where the MBI and its satellites are written. */
export const BOOT_INFO_BASE = 0x10000;
/** End of conventional memory (640 KiB): the low boot data must stay below it. */
export const LOW_MEMORY_END = 0xa0000;
export const HIGH_MEMORY_START = 0x100000;
/**
 * Start of the 32-bit MMIO window (local APIC at 0xFEE00000, IOAPIC, ...). RAM
 * that PhysMemory backs between here and 4 GiB is reported reserved, not remapped.
 */
export const MMIO_HOLE_START = 0xe0000000;
export const FOUR_GIB = 2 ** 32;
/** Name written to the MBI's boot_loader_name field. */
export const BOOT_LOADER_NAME = 'vsmvisor';

/** One memory map entry; `type` is MB_MEMORY_AVAILABLE (1) or MB_MEMORY_RESERVED (2). */
export interface MemoryRegion {
  readonly base: number;
  readonly length: number;
  readonly type: number;
}

/**
 * The guest physical memory map for `ramSize` bytes of linear RAM (PhysMemory
 * backs every address below its size). It is the truth about PhysMemory, minus
 * the ranges the guest must not use as RAM:
 *   0 .. 0xA0000                       RAM (conventional memory, 640 KiB)
 *   0xA0000 .. 0x100000                reserved (legacy VGA/ROM hole)
 *   0x100000 .. min(size, 0xE0000000)  RAM
 *   0xE0000000 .. min(size, 4 GiB)     reserved (MMIO window; only if RAM reaches it)
 *   4 GiB .. size                      RAM (only if RAM is larger than 4 GiB)
 * RAM is not relocated around the MMIO window: a guest larger than 3.5 GiB loses
 * the 512 MiB under 4 GiB, which keeps guest-physical = PhysMemory offset.
 * Ranges above the RAM size are simply not listed.
 */
export function pcMemoryMap(ramSize: number): MemoryRegion[] {
  const map: MemoryRegion[] = [];
  const add = (base: number, end: number, type: number) => {
    if (end > base) map.push({ base, length: end - base, type });
  };
  add(0, Math.min(ramSize, LOW_MEMORY_END), MB.MB_MEMORY_AVAILABLE);
  add(LOW_MEMORY_END, Math.min(ramSize, HIGH_MEMORY_START), MB.MB_MEMORY_RESERVED);
  add(HIGH_MEMORY_START, Math.min(ramSize, MMIO_HOLE_START), MB.MB_MEMORY_AVAILABLE);
  add(MMIO_HOLE_START, Math.min(ramSize, FOUR_GIB), MB.MB_MEMORY_RESERVED);
  add(FOUR_GIB, ramSize, MB.MB_MEMORY_AVAILABLE);
  return map;
}

/** Length of the RAM entry that starts exactly at `base`, or 0. */
function ramLengthAt(map: readonly MemoryRegion[], base: number): number {
  return map.find((r) => r.base === base && r.type === MB.MB_MEMORY_AVAILABLE)?.length ?? 0;
}

export interface MultibootModule {
  readonly data: Uint8Array;
  /** The module's string (conventionally its file name and arguments). */
  readonly string: string;
}

export interface MultibootOptions {
  /** The image path as the user gave it: the first word of the kernel command line. */
  readonly imagePath: string;
  /** Kernel arguments (--append); the command line is "<imagePath> <append>". */
  readonly append?: string;
  readonly modules?: readonly MultibootModule[];
}

export interface LoadedModule {
  readonly start: number;
  /** Exclusive end (start + length), as mod_end is used by kernels. */
  readonly end: number;
  readonly string: string;
}

/** What the machine needs to enter the kernel, and what was put where. */
export interface MultibootBoot {
  readonly entry: number;
  /** EAX at entry: the boot loader magic 0x2BADB002. */
  readonly eax: number;
  /** EBX at entry: physical address of the MBI. */
  readonly ebx: number;
  /** First byte past the highest byte the loader wrote (kernel, modules or boot info). */
  readonly highestAddress: number;
  readonly kernelStart: number;
  /** First byte past the kernel's highest segment (including bss). */
  readonly kernelEnd: number;
  readonly modules: readonly LoadedModule[];
  readonly cmdline: string;
  /** The memory map given to the kernel; the machine must back it the same way. */
  readonly memoryMap: readonly MemoryRegion[];
}

export interface MultibootHeader {
  /** File offset of the header. */
  readonly offset: number;
  readonly flags: number;
  /** Present when flag bit 16 is set. */
  readonly address?: {
    readonly headerAddr: number;
    readonly loadAddr: number;
    readonly loadEndAddr: number;
    readonly bssEndAddr: number;
    readonly entryAddr: number;
  };
}

/** A piece of the image to place: copy `filesz` bytes from `fileOffset`, zero to `memsz`. */
interface Segment {
  readonly fileOffset: number;
  readonly paddr: number;
  readonly filesz: number;
  readonly memsz: number;
}


/** Finds and checks the Multiboot header (spec 3.1.1-3.1.3). */
export function findMultibootHeader(image: Uint8Array): MultibootHeader {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const last = Math.min(image.length, MB.MB_HEADER_SEARCH_LIMIT) - MB.MB_HDR_MIN_SIZE;
  let badChecksumAt = -1;
  for (let off = 0; off <= last; off += MB.MB_HEADER_ALIGN) {
    if (dv.getUint32(off + MB.MB_HDR_MAGIC, true) !== MB.MB_HEADER_MAGIC) continue;
    const flags = dv.getUint32(off + MB.MB_HDR_FLAGS, true);
    const sum = (MB.MB_HEADER_MAGIC + flags + dv.getUint32(off + MB.MB_HDR_CHECKSUM, true)) % FOUR_GIB;
    if (sum !== 0) {
      if (badChecksumAt < 0) badChecksumAt = off;
      continue;
    }
    return checkHeader(dv, off, flags);
  }
  if (badChecksumAt >= 0) {
    throw new ImageError(
      `the Multiboot header at file offset ${hex(badChecksumAt)} has a bad checksum (magic + flags + checksum must be 0 modulo 2^32)`,
    );
  }
  throw new ImageError(
    `the image has no Multiboot header (magic 0x1BADB002, 4-byte aligned) in its first ${MB.MB_HEADER_SEARCH_LIMIT} bytes`,
  );
}

function checkHeader(dv: DataView, off: number, flags: number): MultibootHeader {
  if (flags & MB.MB_HFLAG_VIDEO_MODE) {
    throw new ImageError('the kernel requires a video mode (Multiboot flag bit 2), but vsmvisor has no display');
  }
  const known = MB.MB_HFLAG_PAGE_ALIGN | MB.MB_HFLAG_MEMORY_INFO;
  const unknown = flags & MB.MB_HFLAG_REQUIRED_MASK & ~known;
  if (unknown !== 0) {
    throw new ImageError(`the kernel requires Multiboot features this loader does not know (flag bits ${bitList(unknown)})`);
  }
  if ((flags & MB.MB_HFLAG_ADDRESS_FIELDS) === 0) return { offset: off, flags };
  const end = off + MB.MB_HDR_ADDR_SIZE;
  if (end > dv.byteLength || end > MB.MB_HEADER_SEARCH_LIMIT) {
    throw new ImageError(
      `the Multiboot header at file offset ${hex(off)} sets flag bit 16 but its address fields are cut off by the end of the ${end > dv.byteLength ? 'file' : 'first 8192 bytes'}`,
    );
  }
  const u32 = (field: number) => dv.getUint32(off + field, true);
  return {
    offset: off,
    flags,
    address: {
      headerAddr: u32(MB.MB_HDR_HEADER_ADDR),
      loadAddr: u32(MB.MB_HDR_LOAD_ADDR),
      loadEndAddr: u32(MB.MB_HDR_LOAD_END_ADDR),
      bssEndAddr: u32(MB.MB_HDR_BSS_END_ADDR),
      entryAddr: u32(MB.MB_HDR_ENTRY_ADDR),
    },
  };
}

/** The segment described by the header's address fields (spec 3.1.3). */
function addressFieldSegment(image: Uint8Array, header: MultibootHeader): { entry: number; segments: Segment[] } {
  const a = header.address!;
  if (a.loadAddr > a.headerAddr) {
    throw new ImageError(`the Multiboot load_addr ${hex(a.loadAddr)} is above header_addr ${hex(a.headerAddr)}`);
  }
  const headerDelta = a.headerAddr - a.loadAddr;
  if (headerDelta > header.offset) {
    throw new ImageError(
      `the Multiboot header_addr ${hex(a.headerAddr)} puts load_addr ${hex(a.loadAddr)} before the start of the file`,
    );
  }
  const fileOffset = header.offset - headerDelta;
  let filesz: number;
  if (a.loadEndAddr === 0) {
    filesz = image.length - fileOffset; // text and data fill the rest of the file
  } else {
    if (a.loadEndAddr < a.loadAddr) {
      throw new ImageError(`the Multiboot load_end_addr ${hex(a.loadEndAddr)} is below load_addr ${hex(a.loadAddr)}`);
    }
    filesz = a.loadEndAddr - a.loadAddr;
    if (fileOffset + filesz > image.length) {
      throw new ImageError(
        `the Multiboot address fields ask for ${hex(filesz)} bytes from file offset ${hex(fileOffset)}, past the end of the ${image.length}-byte file`,
      );
    }
  }
  let memsz = filesz;
  if (a.bssEndAddr !== 0) {
    if (a.bssEndAddr < a.loadAddr + filesz) {
      throw new ImageError(`the Multiboot bss_end_addr ${hex(a.bssEndAddr)} is below the end of the loaded data ${hex(a.loadAddr + filesz)}`);
    }
    memsz = a.bssEndAddr - a.loadAddr;
  }
  if (a.loadAddr + memsz > FOUR_GIB) {
    throw new ImageError(`the Multiboot image at ${hex(a.loadAddr)} (${hex(memsz)} bytes) extends past 4 GiB`);
  }
  return { entry: a.entryAddr, segments: memsz > 0 ? [{ fileOffset, paddr: a.loadAddr, filesz, memsz }] : [] };
}

function elfSegments(image: Uint8Array): { entry: number; segments: Segment[] } {
  const elf = parseElf(image);
  const segments = elf.segments.map((s) => ({ fileOffset: s.offset, paddr: s.paddr, filesz: s.filesz, memsz: s.memsz }));
  return { entry: elf.entry, segments };
}

/** Loads a Multiboot v1 kernel and its modules into `mem` and builds the MBI. */
export function loadMultiboot(mem: PhysMemory, image: Uint8Array, options: MultibootOptions): MultibootBoot {
  const header = findMultibootHeader(image);
  let kernel: { entry: number; segments: Segment[] };
  if (header.address !== undefined) kernel = addressFieldSegment(image, header);
  else if (isElf(image)) kernel = elfSegments(image);
  else {
    throw new ImageError('the Multiboot header has no address fields (flag bit 16) and the image is not an ELF file, so there is nothing to load');
  }
  if (kernel.segments.length === 0) throw new ImageError('the Multiboot kernel image has nothing to load (its size is 0)');
  if (kernel.entry >= FOUR_GIB) {
    throw new ImageError(`the kernel entry point ${hex(kernel.entry)} is above 4 GiB, but a Multiboot kernel starts in 32-bit mode`);
  }

  const memoryMap = pcMemoryMap(mem.size);
  for (const s of kernel.segments) checkInRam(s.paddr, s.memsz, memoryMap, 'the kernel segment');
  const kernelStart = Math.min(...kernel.segments.map((s) => s.paddr));
  const kernelEnd = Math.max(...kernel.segments.map((s) => s.paddr + s.memsz));

  // QEMU passes "<kernel> <append>" (with a trailing space when there is no
  // append); we omit that space, which changes nothing for argv splitting.
  const cmdline = options.append === undefined ? options.imagePath : `${options.imagePath} ${options.append}`;
  const modules = options.modules ?? [];
  const info = layoutBootInfo(cmdline, modules, memoryMap);
  for (const s of kernel.segments) checkNoOverlap(s, BOOT_INFO_BASE, info.end, 'the Multiboot boot information');
  const placed = placeModules(modules, info.end, kernel.segments, kernelEnd, memoryMap);

  // Everything checked: write.
  for (const s of kernel.segments) {
    mem.write(s.paddr, image.subarray(s.fileOffset, s.fileOffset + s.filesz));
    mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
  placed.forEach((p, i) => mem.write(p.start, modules[i].data));
  mem.write(BOOT_INFO_BASE, info.build(placed));

  const highestAddress = Math.max(kernelEnd, info.end, ...placed.map((p) => p.end));
  return {
    entry: kernel.entry,
    eax: MB.MB_BOOTLOADER_MAGIC,
    ebx: BOOT_INFO_BASE,
    highestAddress,
    kernelStart,
    kernelEnd,
    modules: placed,
    cmdline,
    memoryMap,
  };
}

/**
 * Plans the boot information block at BOOT_INFO_BASE: MBI, memory map, module
 * list, then the NUL-terminated strings. `build` fills in the module addresses.
 */
function layoutBootInfo(cmdline: string, modules: readonly MultibootModule[], memoryMap: readonly MemoryRegion[]) {
  const enc = new TextEncoder();
  const cstr = (s: string, what: string): Uint8Array => {
    if (s.includes('\0')) throw new ImageError(`the ${what} contains a NUL character, which would cut it short`);
    const b = enc.encode(s);
    const out = new Uint8Array(b.length + 1);
    out.set(b);
    return out;
  };
  const strings = [cstr(cmdline, 'kernel command line'), cstr(BOOT_LOADER_NAME, 'boot loader name')];
  modules.forEach((m, i) => strings.push(cstr(m.string, `string of module ${i}`)));

  const mmapOff = align(MB.MBI_SIZE, 16);
  const modsOff = align(mmapOff + memoryMap.length * MB.MB_MMAP_ENTRY_SIZE, 16);
  const stringsOff = modsOff + modules.length * MB.MB_MODULE_ENTRY_SIZE;
  const stringOffsets: number[] = [];
  let size = stringsOff;
  for (const s of strings) {
    stringOffsets.push(size);
    size += s.length;
  }
  const end = BOOT_INFO_BASE + size;
  if (end > LOW_MEMORY_END) {
    throw new ImageError(
      `the command line and module strings need ${size} bytes of boot information, more than fits between ${hex(BOOT_INFO_BASE)} and ${hex(LOW_MEMORY_END)}`,
    );
  }
  const addr = (off: number) => BOOT_INFO_BASE + off;

  const build = (placed: readonly LoadedModule[]): Uint8Array => {
    const buf = new Uint8Array(size);
    const dv = new DataView(buf.buffer);
    const put = (off: number, v: number) => dv.setUint32(off, v, true);
    let flags = MB.MBI_FLAG_MEM | MB.MBI_FLAG_CMDLINE | MB.MBI_FLAG_MMAP | MB.MBI_FLAG_BOOT_LOADER_NAME;
    if (modules.length > 0) flags |= MB.MBI_FLAG_MODS;
    put(MB.MBI_FLAGS, flags);
    // mem_lower: KiB of RAM from 0; mem_upper: KiB of RAM contiguous from 1 MiB,
    // the first upper memory hole excluded (spec 3.3). kvm-unit-tests takes
    // mem_upper * 1024 as the end of its allocator's pool.
    put(MB.MBI_MEM_LOWER, Math.floor(ramLengthAt(memoryMap, 0) / 1024));
    put(MB.MBI_MEM_UPPER, Math.floor(ramLengthAt(memoryMap, HIGH_MEMORY_START) / 1024));
    put(MB.MBI_CMDLINE, addr(stringOffsets[0]));
    put(MB.MBI_MODS_COUNT, modules.length);
    put(MB.MBI_MODS_ADDR, modules.length > 0 ? addr(modsOff) : 0);
    put(MB.MBI_MMAP_LENGTH, memoryMap.length * MB.MB_MMAP_ENTRY_SIZE);
    put(MB.MBI_MMAP_ADDR, addr(mmapOff));
    put(MB.MBI_BOOT_LOADER_NAME, addr(stringOffsets[1]));
    memoryMap.forEach((r, i) => {
      const e = mmapOff + i * MB.MB_MMAP_ENTRY_SIZE;
      put(e + MB.MB_MMAP_SIZE, MB.MB_MMAP_ENTRY_SIZE_FIELD);
      dv.setBigUint64(e + MB.MB_MMAP_BASE, BigInt(r.base), true);
      dv.setBigUint64(e + MB.MB_MMAP_LENGTH, BigInt(r.length), true);
      put(e + MB.MB_MMAP_TYPE, r.type);
    });
    placed.forEach((p, i) => {
      const e = modsOff + i * MB.MB_MODULE_ENTRY_SIZE;
      put(e + MB.MB_MOD_START, p.start);
      put(e + MB.MB_MOD_END, p.end);
      put(e + MB.MB_MOD_STRING, addr(stringOffsets[2 + i]));
    });
    strings.forEach((s, i) => buf.set(s, stringOffsets[i]));
    return buf;
  };
  return { end, build };
}

/** Page-aligned module placement: low memory after the boot info if possible, else after the kernel. */
function placeModules(
  modules: readonly MultibootModule[],
  infoEnd: number,
  segments: readonly Segment[],
  kernelEnd: number,
  memoryMap: readonly MemoryRegion[],
): LoadedModule[] {
  if (modules.length === 0) return [];
  const plan = (start: number): LoadedModule[] => {
    let at = align(start, PAGE_SIZE);
    return modules.map((m) => {
      const p = { start: at, end: at + m.data.length, string: m.string };
      at = align(p.end, PAGE_SIZE);
      return p;
    });
  };
  const low = plan(infoEnd);
  const lowEnd = low[low.length - 1].end;
  const clash = segments.some((s) => s.paddr < lowEnd && low[0].start < s.paddr + s.memsz);
  if (lowEnd <= LOW_MEMORY_END && !clash) return low;

  const high = plan(Math.max(kernelEnd, HIGH_MEMORY_START));
  const highEnd = high[high.length - 1].end;
  const start = high[0].start;
  // Module addresses are 32-bit MBI fields, so they must stay below 4 GiB.
  if (highEnd > FOUR_GIB) {
    throw new ImageError(`the modules (${hex(highEnd - start)} bytes from ${hex(start)}) would extend past 4 GiB`);
  }
  checkInRam(start, Math.max(highEnd - start, 1), memoryMap, 'the module area after the kernel');
  return high;
}

function checkInRam(base: number, length: number, map: readonly MemoryRegion[], what: string): void {
  const inside = map.some((r) => r.type === MB.MB_MEMORY_AVAILABLE && base >= r.base && base + length <= r.base + r.length);
  if (!inside) {
    const ram = map
      .filter((r) => r.type === MB.MB_MEMORY_AVAILABLE)
      .map((r) => `${hex(r.base)}-${hex(r.base + r.length)}`)
      .join(', ');
    throw new ImageError(`${what} at ${hex(base)}-${hex(base + length)} is not inside guest RAM (${ram})`);
  }
}

function checkNoOverlap(s: Segment, start: number, end: number, what: string): void {
  if (s.paddr < end && start < s.paddr + s.memsz) {
    throw new ImageError(
      `the kernel segment at ${hex(s.paddr)}-${hex(s.paddr + s.memsz)} overlaps ${what} at ${hex(start)}-${hex(end)}`,
    );
  }
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function bitList(mask: number): string {
  const bits: number[] = [];
  for (let b = 0; b < 32; b++) if (mask & (1 << b)) bits.push(b);
  return bits.join(', ');
}
