/* Multiboot v1 information (Multiboot Specification 0.6.96, section 3.3). */
#ifndef GUEST_MULTIBOOT_H
#define GUEST_MULTIBOOT_H

#include "types.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2badb002

/* MBI flag bits: which fields are valid. */
#define MB_INFO_MEMORY BIT(0)
#define MB_INFO_BOOTDEV BIT(1)
#define MB_INFO_CMDLINE BIT(2)
#define MB_INFO_MODS BIT(3)
#define MB_INFO_MEM_MAP BIT(6)
#define MB_INFO_LOADER_NAME BIT(9)

#define MB_MMAP_RAM 1

struct mb_info {
	u32 flags;
	u32 mem_lower;      /* KiB below 1 MiB */
	u32 mem_upper;      /* KiB above 1 MiB, up to the first hole */
	u32 boot_device;
	u32 cmdline;
	u32 mods_count;
	u32 mods_addr;
	u32 syms[4];
	u32 mmap_length;
	u32 mmap_addr;
	u32 drives_length;
	u32 drives_addr;
	u32 config_table;
	u32 boot_loader_name;
	u32 apm_table;
} __packed;

struct mb_module {
	u32 mod_start, mod_end; /* [start, end) physical */
	u32 string;
	u32 reserved;
} __packed;

struct mb_mmap_entry {
	u32 size;           /* of the rest of the entry; the next one is at +size+4 */
	u64 base;
	u64 length;
	u32 type;
} __packed;

/* Machine state the loader left at "start" (saved by lib/entry.S). */
extern u32 boot_magic, boot_mbi, boot_entry_cr0, boot_entry_cr4, boot_entry_eflags;
extern u16 boot_entry_cs, boot_entry_ds, boot_entry_ss;

/* Parse the MBI (called once by the library before main). Aborts on a bad magic. */
void mb_init(void);
const struct mb_info *mb_info(void);
/* The raw command line ("" when none). */
const char *mb_cmdline(void);
/* Words of the command line; argv[0] is the program name the loader passed. */
int mb_argc(void);
char **mb_argv(void);
/* True if a command-line word (after argv[0]) equals word. */
bool has_arg(const char *word);
/* Value of a "key=value" command-line word, or NULL. */
const char *arg_value(const char *key);

unsigned mb_module_count(void);
const struct mb_module *mb_module(unsigned i);
/* Iterate the memory map: start with *e = NULL; false at the end (or without a map). */
bool mb_mmap_next(const struct mb_mmap_entry **e);
/* Value of "KEY=value" in the environment module (module 0), copied to buf; NULL if absent. */
const char *mb_env_value(const char *key, char *buf, size_t size);
/* Highest physical address used by the MBI, its strings, modules and map. */
u64 mb_highest_used(void);

#endif
