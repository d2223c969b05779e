/*
 * 4-level paging helpers. Tables come from the page allocator and are
 * identity-mapped, so a table's physical address is also its pointer.
 * None of the map/unmap functions flush the TLB: tests decide when to
 * INVLPG or reload CR3, which is what makes stale translations observable.
 */
#ifndef GUEST_VM_H
#define GUEST_VM_H

#include "types.h"

#define PTE_P BIT(0)
#define PTE_W BIT(1)
#define PTE_U BIT(2)
#define PTE_PWT BIT(3)
#define PTE_PCD BIT(4)
#define PTE_A BIT(5)
#define PTE_D BIT(6)
#define PTE_PS BIT(7)           /* in PDEs and PDPTEs: large page */
#define PTE_G BIT(8)
#define PTE_NX BIT(63)
#define PTE_ADDR_MASK 0x000ffffffffff000UL

/* Levels as the SDM counts them: 1 = PTE (4 KiB), 2 = PDE (2 MiB), 3 = PDPTE (1 GiB), 4 = PML4E. */
#define PT_LEVEL_4K 1
#define PT_LEVEL_2M 2
#define PT_LEVEL_1G 3

/* The page tables the library built at boot (0-4 GiB identity, 2 MiB pages, U=1 W=1). */
extern u64 *kernel_root;

/* Boot-time setup (library internal). */
void vm_init(void);
void vm_ap_init(void);

/* An empty PML4. */
u64 *vm_new_root(void);
/* A PML4 identity-mapping 0-4 GiB with 2 MiB pages and the given leaf flags (PTE_P added). */
u64 *vm_identity_root(u64 flags);

/*
 * Pointer to the entry for va at the given level. With alloc, missing tables
 * are created and a large page in the way is split into next-level entries
 * with the same translation; without alloc, NULL if the walk stops earlier.
 * Intermediate entries are created as P|W|U so the leaf alone decides access.
 */
u64 *vm_walk(u64 *root, u64 va, int level, bool alloc);
/* The leaf entry translating va and its level (NULL if not present). */
u64 *get_pte(u64 *root, u64 va, int *level);

/* Map one page of the given size: leaf = pa | flags | PTE_P (| PTE_PS for large pages). */
void map_4k(u64 *root, u64 va, u64 pa, u64 flags);
void map_2m(u64 *root, u64 va, u64 pa, u64 flags);
void map_1g(u64 *root, u64 va, u64 pa, u64 flags);
/* Clear the leaf entry translating va (no-op if not mapped). */
void unmap(u64 *root, u64 va);
/* Point an existing leaf at another frame, keeping its flags; returns the old entry. */
u64 remap(u64 *root, u64 va, u64 new_pa);
/* Physical address va translates to in root, or ~0 if unmapped. */
u64 virt_to_phys(u64 *root, u64 va);

/* Reload CR3: flushes non-global translations (of the current PCID). */
void flush_tlb_nonglobal(void);
/* Toggle CR4.PGE off and on: flushes everything including global pages. */
void flush_tlb_all(void);

#endif
