/* Physical page allocator over [end of image and boot data, top of RAM below 4 GiB). */
#ifndef GUEST_ALLOC_H
#define GUEST_ALLOC_H

#include "types.h"

void alloc_init(u64 start, u64 end);
/* One zeroed 4 KiB page (identity-mapped: the pointer is the physical address). */
void *alloc_page(void);
/* n physically contiguous zeroed pages. */
void *alloc_pages(unsigned n);
/* n contiguous zeroed pages aligned to align bytes (a power of two). */
void *alloc_pages_aligned(unsigned n, u64 align);
void free_page(void *page);
u64 alloc_free_bytes(void);

#endif
