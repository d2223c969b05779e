/*
 * Multiboot boot state: what the loader handed over (Multiboot 0.6.96
 * sections 3.2 and 3.3, pc-platform-facts 1.3/1.4) and the CPU state the
 * library reached. Optional command-line words make checks exact:
 *   argc=N   argc (program name included) must be N
 *   mem=N    the guest was started with N MiB of RAM (-m N)
 * Run with -initrd guests/tests/boot-module.txt to check module contents.
 */
#include "libguest.h"

/* The reference module, embedded at build time. */
asm(".pushsection .rodata\n"
    "ref_module_start:\n"
    ".incbin \"tests/boot-module.txt\"\n"
    "ref_module_end:\n"
    ".popsection\n");
extern const char ref_module_start[], ref_module_end[];
extern char end[];

#define IMAGE_START 0x400000UL

static void check_entry_state(void)
{
	/* Section 3.2: CR0.PE = 1, CR0.PG = 0, EFLAGS.VM = 0 and IF = 0 at entry. */
	report_info("entry CR0 0x%x CR4 0x%x EFLAGS 0x%x CS 0x%x DS 0x%x SS 0x%x", boot_entry_cr0,
		    boot_entry_cr4, boot_entry_eflags, boot_entry_cs, boot_entry_ds, boot_entry_ss);
	report((boot_entry_cr0 & X86_CR0_PE) && !(boot_entry_cr0 & X86_CR0_PG),
	       "entry CR0: PE = 1, PG = 0");
	report(!(boot_entry_eflags & X86_EFLAGS_IF), "entry EFLAGS.IF = 0");
	report(!(boot_entry_eflags & BIT(17)), "entry EFLAGS.VM = 0");
}

static void check_magic_and_flags(const struct mb_info *mbi)
{
	report(boot_magic == MULTIBOOT_BOOTLOADER_MAGIC, "EAX = 0x2BADB002 (got 0x%x)", boot_magic);
	report_info("MBI at 0x%x, flags 0x%x", boot_mbi, mbi->flags);
	report(boot_mbi >= PAGE_SIZE && boot_mbi + sizeof(*mbi) <= IMAGE_START,
	       "MBI lies between page 0 and the image");
	report(mbi->flags & MB_INFO_MEMORY, "MBI flag 0: mem_lower/mem_upper valid");
	report(mbi->flags & MB_INFO_CMDLINE, "MBI flag 2: cmdline valid");
}

static void check_cmdline(int argc, char **argv)
{
	const char *cmdline = mb_cmdline();
	const char *name = argc ? strrchr(argv[0], '/') : NULL;
	const char *expect_argc = arg_value("argc");

	name = name ? name + 1 : (argc ? argv[0] : "");
	report_info("cmdline \"%s\"", cmdline);
	report(argc >= 1 && str_starts_with(name, "boot"),
	       "argv[0] names this kernel (\"%s\")", argc ? argv[0] : "");
	/* The loader passes "<kernel path> <append text>": the first word starts the string. */
	report(argc >= 1 && str_starts_with(cmdline, argv[0]), "cmdline starts with the kernel path");
	if (expect_argc)
		report((u64)argc == strtou64(expect_argc, NULL), "argc = %d, expected %s", argc,
		       expect_argc);
	else
		report_skip("argc check: no argc=N on the command line");
}

static const struct mb_mmap_entry *ram_entry_containing(u64 start, u64 endaddr)
{
	const struct mb_mmap_entry *e = NULL;

	while (mb_mmap_next(&e))
		if (e->type == MB_MMAP_RAM && e->base <= start && e->base + e->length >= endaddr)
			return e;
	return NULL;
}

static void check_memory(const struct mb_info *mbi)
{
	u64 upper_end = (1024UL + mbi->mem_upper) * 1024;
	const char *mem = arg_value("mem");

	report_info("mem_lower %u KiB, mem_upper %u KiB", mbi->mem_lower, mbi->mem_upper);
	report(mbi->mem_lower >= 1 && mbi->mem_lower <= 640, "mem_lower within 1..640 KiB");
	report(upper_end > (u64)end, "mem_upper reaches past the image end (0x%lx)", (u64)end);
	if (mem) {
		u64 mib = strtou64(mem, NULL);
		/*
		 * Below the 3 GiB PCI hole mem_upper runs to the end of RAM, less what
		 * firmware reserves at the top (QEMU: 128 KiB); above it stops at the hole.
		 */
		if (mib <= 3072)
			report(upper_end <= mib << 20 && upper_end + (1UL << 20) > mib << 20,
			       "1 MiB + mem_upper = %lu KiB, within 1 MiB below mem=%lu MiB",
			       upper_end >> 10, mib);
		else
			report(upper_end <= mib << 20, "1 MiB + mem_upper within mem=%lu MiB", mib);
	} else {
		report_skip("mem_upper against -m: no mem=N on the command line");
	}
	if (fwcfg_present()) {
		u64 ram = fwcfg_read(FW_CFG_RAM_SIZE, 8);
		report_info("fw_cfg RAM size %lu MiB", ram >> 20);
		if (ram)
			report(upper_end <= ram, "1 MiB + mem_upper within the fw_cfg RAM size");
		else
			report_skip("fw_cfg key 0x03 (RAM size) reads 0");
	}

	if (!(mbi->flags & MB_INFO_MEM_MAP)) {
		report_skip("memory map: MBI flag 6 clear");
		return;
	}
	const struct mb_mmap_entry *e = NULL;
	unsigned n = 0, ram = 0;
	bool sizes_ok = true, hole_free = true;

	while (mb_mmap_next(&e)) {
		report_info("mmap %016lx-%016lx type %u", e->base, e->base + e->length - 1, e->type);
		n++;
		sizes_ok &= e->size >= 20;
		if (e->type == MB_MMAP_RAM) {
			ram++;
			/* The 0xA0000-0xFFFFF legacy hole is never RAM. */
			hole_free &= e->base + e->length <= 0xa0000 || e->base >= 0x100000;
		}
	}
	report(n > 0 && ram > 0, "memory map has %u entries, %u of them RAM", n, ram);
	report(sizes_ok, "every mmap entry has size >= 20");
	report(hole_free, "no RAM entry overlaps 0xA0000-0xFFFFF");
	report(ram_entry_containing(0, mbi->mem_lower * 1024UL) != NULL,
	       "a RAM entry covers 0 .. mem_lower");
	report(ram_entry_containing(0x100000, upper_end) != NULL,
	       "a RAM entry covers 1 MiB .. 1 MiB + mem_upper");
	report(ram_entry_containing(IMAGE_START, (u64)end) != NULL,
	       "the kernel image lies in RAM");
}

static void check_modules(const struct mb_info *mbi)
{
	unsigned count = mb_module_count();
	size_t ref_len = ref_module_end - ref_module_start;

	if (!(mbi->flags & MB_INFO_MODS) || count == 0) {
		report_skip("modules: none given (use -initrd guests/tests/boot-module.txt)");
		return;
	}
	report_info("%u module(s) at 0x%x", count, mbi->mods_addr);
	for (unsigned i = 0; i < count; i++) {
		const struct mb_module *m = mb_module(i);
		report_info("module %u: 0x%x-0x%x \"%s\"", i, m->mod_start, m->mod_end,
			    m->string ? (const char *)(u64)m->string : "");
		report(m->mod_end > m->mod_start, "module %u is not empty", i);
		report(m->mod_start >= (u64)end || m->mod_end <= IMAGE_START,
		       "module %u does not overlap the image", i);
		report(m->mod_end <= (1024UL + mbi->mem_upper) * 1024, "module %u lies in RAM", i);
	}
	const struct mb_module *m = mb_module(0);
	const char *data = (const char *)(u64)m->mod_start;
	size_t len = m->mod_end - m->mod_start;
	if (len >= 20 && memcmp(data, ref_module_start, 20) == 0) {
		report(len == ref_len, "module 0 has the reference length %lu (got %lu)", ref_len, len);
		report(len == ref_len && memcmp(data, ref_module_start, len) == 0,
		       "module 0 content equals tests/boot-module.txt");
	} else {
		report_info("module 0 is not tests/boot-module.txt: content not compared");
	}
}

static void check_cpu_mode(void)
{
	u64 efer = rdmsr(MSR_EFER), cr0 = read_cr0(), cr4 = read_cr4();
	u32 ar;

	report((efer & EFER_LME) && (efer & EFER_LMA), "EFER.LME = EFER.LMA = 1");
	report((cr0 & X86_CR0_PG) && (cr0 & X86_CR0_PE), "CR0.PG = CR0.PE = 1");
	report(cr0 & X86_CR0_WP, "CR0.WP = 1 (set by the library)");
	report(cr4 & X86_CR4_PAE, "CR4.PAE = 1");
	report(read_cs() == KERNEL_CS, "CS = 0x%x", read_cs());
	/* LAR returns the descriptor's attribute bits: bit 21 is L (64-bit code). */
	asm volatile("lar %1, %0" : "=r"(ar) : "r"((u32)read_cs()));
	report(ar & BIT(21), "CS descriptor has L = 1");
	report(read_cr3() == (u64)kernel_root, "CR3 = library page tables");
}

static void check_cpuid(void)
{
	struct cpuid c0 = cpuid(0), c1 = cpuid(1);
	char vendor[13];
	bool printable = true;

	memcpy(vendor, &c0.b, 4);
	memcpy(vendor + 4, &c0.d, 4);
	memcpy(vendor + 8, &c0.c, 4);
	vendor[12] = '\0';
	for (int i = 0; i < 12; i++)
		printable &= vendor[i] >= 0x20 && vendor[i] < 0x7f;
	report_info("CPUID vendor \"%s\", max basic leaf 0x%x, max extended leaf 0x%x", vendor,
		    c0.a, cpuid_max_ext());
	report(printable, "CPUID.0 vendor string is printable");
	report(c0.a >= 1, "CPUID.0: max basic leaf >= 1");
	/* Long mode needs FPU, TSC, MSR, PAE, CX8, APIC; we run in it, so they must be reported. */
	u32 need = BIT(0) | BIT(4) | BIT(5) | BIT(6) | BIT(8) | BIT(9);
	report((c1.d & need) == need, "CPUID.1:EDX has FPU TSC MSR PAE CX8 APIC (0x%x)", c1.d);
	if (apic_x2apic_mode())
		report((c1.b >> 24) == (apic_id() & 0xff), "CPUID.1:EBX[31:24] = low byte of the APIC ID");
	else
		report((c1.b >> 24) == apic_id(), "CPUID.1:EBX[31:24] = APIC ID %u", apic_id());
	report(cpuid_max_ext() >= 0x80000001, "CPUID.80000000: max extended leaf >= 0x80000001");
	report(cpuid(0x80000001).d & BIT(29), "CPUID.80000001:EDX.LM = 1");
	if (cpuid_max_ext() >= 0x80000008) {
		u32 a = cpuid(0x80000008).a;
		report((a & 0xff) >= 36 && (a & 0xff) <= 52, "physical address bits %u in 36..52", a & 0xff);
		report(((a >> 8) & 0xff) >= 48, "linear address bits %u >= 48", (a >> 8) & 0xff);
	} else {
		report_skip("CPUID.80000008 not available");
	}
	if (c0.a >= 0xb) {
		struct cpuid b0 = cpuid_count(0xb, 0);
		u32 id = apic_x2apic_mode() ? apic_id() : (c1.b >> 24);
		report(b0.d == apic_id() || (!apic_x2apic_mode() && (b0.d & 0xff) == id),
		       "CPUID.B:EDX = x2APIC ID (%u)", b0.d);
	} else {
		report_skip("CPUID leaf 0xB not available");
	}
}

int main(int argc, char **argv)
{
	const struct mb_info *mbi = mb_info();

	check_entry_state();
	check_magic_and_flags(mbi);
	check_cmdline(argc, argv);
	check_memory(mbi);
	check_modules(mbi);
	check_cpu_mode();
	check_cpuid();
	report_summary();
}
