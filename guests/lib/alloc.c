/* Bump allocator with a free list of single pages; aborts when memory runs out. */
#include "alloc.h"
#include "atomic.h"
#include "report.h"
#include "string.h"

static struct spinlock lock;
static u64 next, limit;
static void *free_list; /* singly linked through the first word of each free page */

void alloc_init(u64 start, u64 end)
{
	next = ALIGN_UP(start, PAGE_SIZE);
	limit = ALIGN_DOWN(end, PAGE_SIZE);
	if (next >= limit)
		abort_msg("no free memory: pool 0x%lx-0x%lx is empty", start, end);
}

void *alloc_pages_aligned(unsigned n, u64 align)
{
	void *p = NULL;
	bool irq = irq_save();

	spin_lock(&lock);
	if (n == 1 && align <= PAGE_SIZE && free_list) {
		p = free_list;
		free_list = *(void **)p;
	} else {
		u64 a = ALIGN_UP(next, align < PAGE_SIZE ? PAGE_SIZE : align);
		if (a + n * PAGE_SIZE <= limit) {
			p = (void *)a;
			next = a + n * PAGE_SIZE;
		}
	}
	spin_unlock(&lock);
	irq_restore(irq);
	if (!p)
		abort_msg("out of memory allocating %u pages", n);
	memset(p, 0, n * PAGE_SIZE);
	return p;
}

void *alloc_pages(unsigned n)
{
	return alloc_pages_aligned(n, PAGE_SIZE);
}

void *alloc_page(void)
{
	return alloc_pages_aligned(1, PAGE_SIZE);
}

void free_page(void *page)
{
	bool irq = irq_save();

	spin_lock(&lock);
	*(void **)page = free_list;
	free_list = page;
	spin_unlock(&lock);
	irq_restore(irq);
}

u64 alloc_free_bytes(void)
{
	return limit - next;
}
