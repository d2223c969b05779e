/*
 * bench-branch: a branchy workload for the CPU benchmark (bench/cpu-mips.ts).
 * Per iteration: fill an array with pseudo-random numbers, quicksort it
 * (insertion sort below 16 elements), check it is sorted, binary-search it
 * for pseudo-random keys, and run a small bytecode interpreter (a switch
 * dispatch loop) computing Collatz sequence lengths. Data-dependent
 * conditional branches, indirect jumps through the switch table, calls and
 * returns dominate.
 *
 *   bench-branch.elf iters=N   (default 20)
 */
#include "bench.h"

#define ARRAY 4096
#define SEARCHES 4096
#define COLLATZ_COUNT 64
/* The same inputs every iteration, so each iteration does about the same work. */
#define COLLATZ_BASE 1000

static u32 arr[ARRAY];

static void insertion_sort(u32 *a, long n)
{
	for (long i = 1; i < n; i++) {
		u32 v = a[i];
		long j = i - 1;

		while (j >= 0 && a[j] > v) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = v;
	}
}

/* Hoare partition around the median of three; recurses into the smaller side. */
static __attribute__((noinline)) void quicksort(u32 *a, long n)
{
	while (n > 16) {
		u32 x = a[0], y = a[n / 2], z = a[n - 1];
		u32 pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		long i = -1, j = n;

		for (;;) {
			do
				i++;
			while (a[i] < pivot);
			do
				j--;
			while (a[j] > pivot);
			if (i >= j)
				break;
			u32 t = a[i];
			a[i] = a[j];
			a[j] = t;
		}
		if (j + 1 < n - j - 1) {
			quicksort(a, j + 1);
			a += j + 1;
			n -= j + 1;
		} else {
			quicksort(a + j + 1, n - j - 1);
			n = j + 1;
		}
	}
	insertion_sort(a, n);
}

/* Index of the first element >= key. */
static __attribute__((noinline)) long lower_bound(const u32 *a, long n, u32 key)
{
	long lo = 0, hi = n;

	while (lo < hi) {
		long mid = lo + (hi - lo) / 2;

		if (a[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The interpreter: eight registers, a dispatch switch per instruction. */
enum op { OP_LI, OP_ADDI, OP_ANDI, OP_MULI, OP_SHRI, OP_JEQ, OP_JZ, OP_JMP, OP_HALT };

struct insn {
	u8 op, a, b;
	s32 imm; /* immediate or jump target */
};

/* r0 = n; r1 = steps; r2 = 1. Counts the steps of n's Collatz sequence to 1. */
static const struct insn collatz[] = {
	/* 0 */ { OP_LI, 1, 0, 0 },
	/* 1 */ { OP_LI, 2, 0, 1 },
	/* 2 */ { OP_JEQ, 0, 2, 11 },
	/* 3 */ { OP_ANDI, 3, 0, 1 },
	/* 4 */ { OP_JZ, 3, 0, 8 },
	/* 5 */ { OP_MULI, 0, 0, 3 },
	/* 6 */ { OP_ADDI, 0, 0, 1 },
	/* 7 */ { OP_JMP, 0, 0, 9 },
	/* 8 */ { OP_SHRI, 0, 0, 1 },
	/* 9 */ { OP_ADDI, 1, 1, 1 },
	/* 10 */ { OP_JMP, 0, 0, 2 },
	/* 11 */ { OP_HALT, 0, 0, 0 },
};

static __attribute__((noinline)) u64 interpret(const struct insn *prog, u64 r0)
{
	u64 r[8] = { r0 };
	long pc = 0;

	for (;;) {
		const struct insn *i = &prog[pc++];

		switch (i->op) {
		case OP_LI: r[i->a] = i->imm; break;
		case OP_ADDI: r[i->a] = r[i->b] + i->imm; break;
		case OP_ANDI: r[i->a] = r[i->b] & i->imm; break;
		case OP_MULI: r[i->a] = r[i->b] * i->imm; break;
		case OP_SHRI: r[i->a] = r[i->b] >> i->imm; break;
		case OP_JEQ: if (r[i->a] == r[i->b]) pc = i->imm; break;
		case OP_JZ: if (r[i->a] == 0) pc = i->imm; break;
		case OP_JMP: pc = i->imm; break;
		case OP_HALT: return r[1];
		default: abort_msg("bad opcode %u at %ld", i->op, pc - 1);
		}
	}
}

int main(int argc, char **argv)
{
	u64 n = iters_arg(20), sum = 0, seed = 0x853c49e6748fea9bUL;

	(void)argc;
	(void)argv;
	for (u64 it = 0; it < n; it++) {
		for (long i = 0; i < ARRAY; i++)
			arr[i] = (u32)xorshift(&seed) % 100000;
		quicksort(arr, ARRAY);
		for (long i = 1; i < ARRAY; i++)
			if (arr[i - 1] > arr[i])
				abort_msg("quicksort left %u before %u at %ld", arr[i - 1], arr[i], i);
		for (long i = 0; i < SEARCHES; i++) {
			u32 key = (u32)xorshift(&seed) % 100000;
			long k = lower_bound(arr, ARRAY, key);

			sum += k + (k < ARRAY && arr[k] == key);
		}
		for (u64 v = 1; v <= COLLATZ_COUNT; v++)
			sum = sum * 31 + interpret(collatz, COLLATZ_BASE + v);
		sum += arr[it % ARRAY];
	}
	printf("bench-branch: iters=%lu checksum=0x%016lx\n", n, sum);
	return 0;
}
