/*
 * bench-mem: a memory-heavy workload for the CPU benchmark (bench/cpu-mips.ts).
 * Per iteration: fill a 1 MiB buffer with 64-bit stores, copy it to a second
 * buffer, sum the copy sequentially and with a page-crossing stride, copy
 * 64 KiB byte by byte at an unaligned offset, and walk (reading and
 * updating) a linked list of 64-byte nodes in a random cyclic order over
 * 4 MiB. All loops are plain C: REP MOVS/STOS would count every element as an
 * instruction and make the MIPS figure mean little. The buffers are in .bss,
 * zeroed by the loader, so no set-up code runs on them.
 *
 *   bench-mem.elf iters=N      (default 20)
 */
#include "bench.h"

#define BUF_WORDS ((1UL << 20) / 8)
#define NODES ((4UL << 20) / 64)
#define BYTE_COPY (64UL << 10)
#define STRIDE_WORDS (4104 / 8) /* a page and a word: every access a new page */

struct node {
	struct node *next;
	u64 val;
	u64 pad[6]; /* 64 bytes: one node per cache line */
};

static u64 buf_a[BUF_WORDS], buf_b[BUF_WORDS];
static struct node nodes[NODES];
static u32 order[NODES];

/* One random cycle through every node (Sattolo's shuffle of the visiting order). */
static void build_list(u64 seed)
{
	for (u32 i = 0; i < NODES; i++)
		order[i] = i;
	for (u32 i = NODES - 1; i > 0; i--) {
		u32 j = xorshift(&seed) % i;
		u32 t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (u32 i = 0; i < NODES; i++) {
		nodes[order[i]].next = &nodes[order[(i + 1) % NODES]];
		nodes[order[i]].val = i;
	}
}

static __attribute__((noinline)) void fill(u64 *dst, u64 n, u64 pattern)
{
	for (u64 i = 0; i < n; i++)
		dst[i] = pattern ^ (i * 0x9e3779b97f4a7c15UL);
}

static __attribute__((noinline)) void copy_words(u64 *dst, const u64 *src, u64 n)
{
	for (u64 i = 0; i < n; i++)
		dst[i] = src[i];
}

static __attribute__((noinline)) void copy_bytes(u8 *dst, const u8 *src, u64 n)
{
	for (u64 i = 0; i < n; i++)
		dst[i] = src[i];
}

static __attribute__((noinline)) u64 sum_seq(const u64 *p, u64 n)
{
	u64 s = 0;

	for (u64 i = 0; i < n; i++)
		s += p[i];
	return s;
}

static __attribute__((noinline)) u64 sum_strided(const u64 *p, u64 n, u64 stride)
{
	u64 s = 0;

	for (u64 start = 0; start < stride; start += 37)
		for (u64 i = start; i < n; i += stride)
			s = (s << 1 | s >> 63) ^ p[i];
	return s;
}

static __attribute__((noinline)) struct node *walk(struct node *p, u64 steps, u64 *sum)
{
	u64 s = *sum;

	for (u64 i = 0; i < steps; i++) {
		s += p->val;
		p->val += s & 0xff;
		p = p->next;
	}
	*sum = s;
	return p;
}

int main(int argc, char **argv)
{
	u64 n = iters_arg(20), sum = 0;
	struct node *p = &nodes[0];

	(void)argc;
	(void)argv;
	build_list(0x2545f4914f6cdd1dUL);
	for (u64 it = 0; it < n; it++) {
		fill(buf_a, BUF_WORDS, it * 0x100000001b3UL);
		copy_words(buf_b, buf_a, BUF_WORDS);
		sum += sum_seq(buf_b, BUF_WORDS);
		sum ^= sum_strided(buf_b, BUF_WORDS, STRIDE_WORDS);
		/* Unaligned destination (offset 5) and source (offset 3 to 10). */
		copy_bytes((u8 *)buf_a + 5, (const u8 *)buf_b + 3 + (it & 7), BYTE_COPY);
		sum += sum_seq(buf_a, BYTE_COPY / 8);
		p = walk(p, NODES, &sum);
	}
	printf("bench-mem: iters=%lu checksum=0x%016lx\n", n, sum);
	return 0;
}
