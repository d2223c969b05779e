/* Page-table construction, walking, mapping, and the boot switch to library-built tables. */
#include "vm.h"
#include "alloc.h"
#include "x86.h"
#include "report.h"

u64 *kernel_root;

#define LEVEL_SHIFT(l) (12 + 9 * ((l) - 1))
#define LEVEL_INDEX(va, l) (((va) >> LEVEL_SHIFT(l)) & 511)
#define TABLE_FLAGS (PTE_P | PTE_W | PTE_U)
#define LARGE_ADDR_MASK(l) (PTE_ADDR_MASK & ~((1UL << LEVEL_SHIFT(l)) - 1))

u64 *vm_new_root(void)
{
	return alloc_page();
}

u64 *vm_identity_root(u64 flags)
{
	u64 *root = vm_new_root();

	for (u64 pa = 0; pa < (4UL << 30); pa += LARGE_PAGE_SIZE)
		map_2m(root, pa, pa, flags);
	return root;
}

/* Replace the large page in *entry (at level l) by a table of level l-1 entries. */
static void split_large(u64 *entry, int l)
{
	u64 *table = alloc_page();
	u64 base = *entry & LARGE_ADDR_MASK(l);
	u64 flags = *entry & ~PTE_ADDR_MASK & ~(u64)PTE_PS;
	u64 step = 1UL << LEVEL_SHIFT(l - 1);

	flags &= ~BIT(12) & ~0x7f00000000000000UL; /* large-page PAT bit and protection keys */
	for (int i = 0; i < 512; i++)
		table[i] = (base + i * step) | flags | (l - 1 > 1 ? PTE_PS : 0);
	*entry = (u64)table | TABLE_FLAGS;
}

u64 *vm_walk(u64 *root, u64 va, int level, bool alloc)
{
	u64 *table = root;

	for (int l = 4; l > level; l--) {
		u64 *e = &table[LEVEL_INDEX(va, l)];

		if (!(*e & PTE_P)) {
			if (!alloc)
				return NULL;
			*e = (u64)alloc_page() | TABLE_FLAGS;
		} else if ((*e & PTE_PS) && l <= 3) {
			if (!alloc)
				return NULL;
			split_large(e, l);
		}
		table = (u64 *)(*e & PTE_ADDR_MASK);
	}
	return &table[LEVEL_INDEX(va, level)];
}

u64 *get_pte(u64 *root, u64 va, int *level)
{
	u64 *table = root;

	for (int l = 4; l >= 1; l--) {
		u64 *e = &table[LEVEL_INDEX(va, l)];

		if (!(*e & PTE_P))
			return NULL;
		if (l == 1 || ((*e & PTE_PS) && l <= 3)) {
			if (level)
				*level = l;
			return e;
		}
		table = (u64 *)(*e & PTE_ADDR_MASK);
	}
	return NULL;
}

static void map_level(u64 *root, u64 va, u64 pa, u64 flags, int level)
{
	u64 size = 1UL << LEVEL_SHIFT(level);
	u64 *e;

	if ((va | pa) & (size - 1))
		abort_msg("map: va 0x%lx / pa 0x%lx not aligned to 0x%lx", va, pa, size);
	e = vm_walk(root, va, level, true);
	*e = pa | flags | PTE_P | (level > 1 ? PTE_PS : 0);
}

void map_4k(u64 *root, u64 va, u64 pa, u64 flags) { map_level(root, va, pa, flags, 1); }
void map_2m(u64 *root, u64 va, u64 pa, u64 flags) { map_level(root, va, pa, flags, 2); }
void map_1g(u64 *root, u64 va, u64 pa, u64 flags) { map_level(root, va, pa, flags, 3); }

void unmap(u64 *root, u64 va)
{
	u64 *e = get_pte(root, va, NULL);

	if (e)
		*e = 0;
}

u64 remap(u64 *root, u64 va, u64 new_pa)
{
	int level;
	u64 *e = get_pte(root, va, &level);
	u64 old;

	if (!e)
		abort_msg("remap: 0x%lx is not mapped", va);
	old = *e;
	*e = (old & ~LARGE_ADDR_MASK(level)) | new_pa;
	return old;
}

u64 virt_to_phys(u64 *root, u64 va)
{
	int level;
	u64 *e = get_pte(root, va, &level);
	u64 mask = (1UL << LEVEL_SHIFT(level)) - 1;

	if (!e)
		return ~0UL;
	return (*e & LARGE_ADDR_MASK(level)) | (va & mask);
}

void flush_tlb_nonglobal(void)
{
	write_cr3(read_cr3());
}

void flush_tlb_all(void)
{
	u64 cr4 = read_cr4();

	if (cr4 & X86_CR4_PGE) {
		write_cr4(cr4 & ~X86_CR4_PGE);
		write_cr4(cr4);
	} else {
		write_cr3(read_cr3());
	}
}

/* Same settings on every CPU: NX enabled when available, CR0 = PG | PE | WP. */
static void vm_cpu_setup(void)
{
	if (cpu_has_nx())
		wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
	write_cr3((u64)kernel_root);
	write_cr0(X86_CR0_PG | X86_CR0_PE | X86_CR0_WP | X86_CR0_ET);
}

void vm_init(void)
{
	/* Everything user-accessible so run_user() can call any function; top GiB (MMIO) uncached. */
	kernel_root = vm_identity_root(PTE_W | PTE_U);
	for (u64 pa = 3UL << 30; pa < (4UL << 30); pa += LARGE_PAGE_SIZE)
		*vm_walk(kernel_root, pa, PT_LEVEL_2M, false) |= PTE_PCD | PTE_PWT;
	vm_cpu_setup();
}

void vm_ap_init(void)
{
	vm_cpu_setup();
}
