/*
 * bench-memtouch: touches 16 MiB of guest RAM and exits, for bench/memory.ts
 * (a 4 GiB guest that touches 16 MiB must cost under 100 MiB of host memory).
 * The 16 MiB come from the page allocator (which zeroes them with REP STOSB),
 * are written again with a pattern one 64-bit word at a time and summed.
 *
 *   bench-memtouch.elf [mib=N]   (default 16)
 */
#include "libguest.h"

int main(int argc, char **argv)
{
	const char *v = arg_value("mib");
	u64 mib = v ? strtou64(v, NULL) : 16, words = (mib << 20) / 8, sum = 0;
	u64 *buf;

	(void)argc;
	(void)argv;
	buf = alloc_pages((mib << 20) / PAGE_SIZE);
	if (!buf)
		abort_msg("cannot allocate %lu MiB", mib);
	for (u64 i = 0; i < words; i++)
		buf[i] = i * 0x9e3779b97f4a7c15UL;
	for (u64 i = 0; i < words; i++)
		sum += buf[i];
	printf("bench-memtouch: mib=%lu at=0x%lx checksum=0x%016lx\n", mib, (u64)buf, sum);
	return 0;
}
