/*
 * The smallest guest: greets, echoes its command line and checks two facts
 * about how it was booted. This is the README's example.
 */
#include "libguest.h"

int main(int argc, char **argv)
{
	printf("Hello from vsmvisor guest\n");
	printf("command line: \"%s\"\n", mb_cmdline());
	for (int i = 0; i < argc; i++)
		report_info("argv[%d] = \"%s\"", i, argv[i]);

	/* Multiboot 0.6.96 section 3.2: EAX holds 0x2BADB002 at entry. */
	report(boot_magic == MULTIBOOT_BOOTLOADER_MAGIC, "Multiboot magic 0x%x", boot_magic);
	/* The library switches to long mode: EFER.LMA (bit 10) must read 1. */
	report(rdmsr(MSR_EFER) & EFER_LMA, "running in 64-bit mode (EFER.LMA = 1)");
	report_summary();
}
