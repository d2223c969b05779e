/*
 * bench-int: a tight integer loop for the CPU benchmark (bench/cpu-mips.ts).
 * Registers only, no memory traffic: xorshift64, a 64-bit LCG, multiplies,
 * rotates, adds and a data-dependent conditional move, iters=N times.
 * The final checksum is printed so the work cannot be optimised away and so
 * vsmvisor and QEMU can be checked to compute the same result.
 *
 *   bench-int.elf iters=N      (default 10000000)
 */
#include "bench.h"

static inline u64 rotl(u64 x, unsigned k)
{
	return (x << k) | (x >> (64 - k));
}

/* noinline: the loop is what gets measured, kept apart from main's setup. */
static __attribute__((noinline)) u64 int_loop(u64 n, u64 seed)
{
	u64 x = seed | 1, lcg = seed, acc = 0, mix = 0x9e3779b97f4a7c15UL;

	for (u64 i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		lcg = lcg * 6364136223846793005UL + 1442695040888963407UL;
		acc += (x ^ lcg) * mix;
		acc = rotl(acc, 23) + i;
		/* A branch-free select (CMOV): the low bit decides which term is added. */
		mix += (lcg & 1) ? x : (acc >> 3);
	}
	return acc ^ mix ^ x ^ lcg;
}

int main(int argc, char **argv)
{
	u64 n = iters_arg(10000000);
	u64 sum;

	(void)argc;
	(void)argv;
	sum = int_loop(n, 0x0123456789abcdefUL);
	printf("bench-int: iters=%lu checksum=0x%016lx\n", n, sum);
	return 0;
}
