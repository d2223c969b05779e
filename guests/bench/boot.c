/*
 * bench-boot: exits at the very start of main. Measures boot to main (the
 * library's set-up and, with --smp N, AP bring-up) in bench/smp.ts, and the
 * fixed start-up cost of QEMU that bench/cpu-mips.ts subtracts from its runs.
 */
#include "libguest.h"

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	exit(0);
}
