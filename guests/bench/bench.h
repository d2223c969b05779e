/* Helpers shared by the benchmark guests in this folder. */
#ifndef BENCH_H
#define BENCH_H

#include "libguest.h"

/* The iteration count from the command line's "iters=N", or def. */
static inline u64 iters_arg(u64 def)
{
	const char *v = arg_value("iters");

	return v ? strtou64(v, NULL) : def;
}

/* xorshift64 (13, 7, 17): a cheap deterministic sequence for workload data. */
static inline u64 xorshift(u64 *s)
{
	u64 x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#endif
