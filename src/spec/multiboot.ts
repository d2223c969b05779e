/**
 * Multiboot Specification 0.6.96 ("Multiboot v1") constants and layouts.
 * Single source of these numbers for the loader and the tests
 * (pc-platform-facts.md §1; the spec's sections 3.1 and 3.3).
 */

// ---- 3.1 the OS image header ----

/** Header magic, found 4-byte aligned in the first 8192 bytes of the image. */
export const MB_HEADER_MAGIC = 0x1badb002;
/** The header must lie completely within this many bytes from the file start. */
export const MB_HEADER_SEARCH_LIMIT = 8192;
export const MB_HEADER_ALIGN = 4;

/** Header field offsets (bytes from the header start). */
export const MB_HDR_MAGIC = 0;
export const MB_HDR_FLAGS = 4;
export const MB_HDR_CHECKSUM = 8;
export const MB_HDR_HEADER_ADDR = 12;
export const MB_HDR_LOAD_ADDR = 16;
export const MB_HDR_LOAD_END_ADDR = 20;
export const MB_HDR_BSS_END_ADDR = 24;
export const MB_HDR_ENTRY_ADDR = 28;
/** Size of the header without the address fields (magic, flags, checksum). */
export const MB_HDR_MIN_SIZE = 12;
/** Size of the header including the address fields (flag bit 16). */
export const MB_HDR_ADDR_SIZE = 32;

/** Header flag bits. Bits 0-15 are "required": a loader must refuse unknown ones. */
export const MB_HFLAG_PAGE_ALIGN = 1 << 0;
export const MB_HFLAG_MEMORY_INFO = 1 << 1;
export const MB_HFLAG_VIDEO_MODE = 1 << 2;
export const MB_HFLAG_REQUIRED_MASK = 0xffff;
/** Bit 16: the header carries load addresses (the "a.out kludge"); else use ELF. */
export const MB_HFLAG_ADDRESS_FIELDS = 1 << 16;

// ---- 3.2 machine state ----

/** EAX at kernel entry. */
export const MB_BOOTLOADER_MAGIC = 0x2badb002;

// ---- 3.3 the boot information structure (MBI) ----

/** MBI flag bits: which fields are valid. */
export const MBI_FLAG_MEM = 1 << 0;
export const MBI_FLAG_BOOT_DEVICE = 1 << 1;
export const MBI_FLAG_CMDLINE = 1 << 2;
export const MBI_FLAG_MODS = 1 << 3;
export const MBI_FLAG_AOUT_SYMS = 1 << 4;
export const MBI_FLAG_ELF_SHDR = 1 << 5;
export const MBI_FLAG_MMAP = 1 << 6;
export const MBI_FLAG_DRIVES = 1 << 7;
export const MBI_FLAG_CONFIG_TABLE = 1 << 8;
export const MBI_FLAG_BOOT_LOADER_NAME = 1 << 9;
export const MBI_FLAG_APM_TABLE = 1 << 10;
export const MBI_FLAG_VBE = 1 << 11;
export const MBI_FLAG_FRAMEBUFFER = 1 << 12;

/** MBI field offsets. */
export const MBI_FLAGS = 0;
export const MBI_MEM_LOWER = 4;
export const MBI_MEM_UPPER = 8;
export const MBI_BOOT_DEVICE = 12;
export const MBI_CMDLINE = 16;
export const MBI_MODS_COUNT = 20;
export const MBI_MODS_ADDR = 24;
export const MBI_SYMS = 28; // 16 bytes, 28-43
export const MBI_MMAP_LENGTH = 44;
export const MBI_MMAP_ADDR = 48;
export const MBI_DRIVES_LENGTH = 52;
export const MBI_DRIVES_ADDR = 56;
export const MBI_CONFIG_TABLE = 60;
export const MBI_BOOT_LOADER_NAME = 64;
export const MBI_APM_TABLE = 68;
/** Whole structure in 0.6.96, through the framebuffer colour info (offsets 88-115). */
export const MBI_SIZE = 116;

/** Module list entry: {u32 mod_start, u32 mod_end (exclusive), u32 string, u32 reserved}. */
export const MB_MODULE_ENTRY_SIZE = 16;
export const MB_MOD_START = 0;
export const MB_MOD_END = 4;
export const MB_MOD_STRING = 8;

/**
 * Memory map entry: {u32 size, u64 base_addr, u64 length, u32 type}. `size` counts
 * the bytes after itself (20), the next entry is at +size+4.
 */
export const MB_MMAP_ENTRY_SIZE = 24;
export const MB_MMAP_ENTRY_SIZE_FIELD = 20;
export const MB_MMAP_SIZE = 0;
export const MB_MMAP_BASE = 4;
export const MB_MMAP_LENGTH = 12;
export const MB_MMAP_TYPE = 20;
/** Memory map types: 1 = available RAM, anything else reserved (2 used here). */
export const MB_MEMORY_AVAILABLE = 1;
export const MB_MEMORY_RESERVED = 2;
