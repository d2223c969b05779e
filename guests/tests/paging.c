/*
 * 4-level paging: 4 KiB / 2 MiB / 1 GiB translations, permission checks at
 * every level (R/W, U/S, NX), CR0.WP, SMEP, SMAP, accessed/dirty updates and
 * aliases. Rules: Intel SDM vol. 3 ch. 4 (4.5 4-level paging, 4.6 access
 * rights, 4.7 page-fault error code, 4.8 accessed and dirty flags).
 */
#include "libguest.h"

#define VA_4K 0x2000000000UL        /* 128 GiB: test mappings live above the 4 GiB identity map */
#define VA_2M 0x2040000000UL
#define VA_1G 0x4000000000UL        /* 256 GiB, 1 GiB aligned */
#define VA_SCRATCH 0x2080000000UL

asm(".pushsection .text\n"
    "pg_read: mov (%rdi), %rax\n ret\n"
    "pg_write: movq $0x5a5a, (%rdi)\n ret\n"
    "pg_call: call *%rdi\n ret\n"
    ".popsection\n");
void pg_read(void *), pg_write(void *), pg_call(void *);

static u64 pf_error(void (*fn)(void *), u64 va, u64 *cr2)
{
	struct ex_info ex;

	if (!expect_exception(fn, (void *)va, &ex))
		return ~0UL; /* no fault */
	*cr2 = ex.cr2;
	return ex.vector == PF_VECTOR ? ex.error_code : 0xdead0000UL | ex.vector;
}

/* Report that fn(va) faults with #PF(err) and CR2 = va, or (err == ~0) does not fault. */
static void check_access(const char *what, void (*fn)(void *), u64 va, u64 err)
{
	u64 cr2 = 0, got = pf_error(fn, va, &cr2);

	if (err == ~0UL)
		report(got == ~0UL, "%s: no fault (got error 0x%lx)", what, got);
	else
		report(got == err && cr2 == va, "%s: #PF(0x%lx) CR2 0x%lx (got 0x%lx, CR2 0x%lx)", what,
		       err, va, got, cr2);
}

static volatile u64 *user_ptr;
static u64 user_read(void *a) { (void)a; return *user_ptr; }

static u64 user_pf(u64 va)
{
	struct ex_info ex;
	u64 ret;

	user_ptr = (volatile u64 *)va;
	if (!run_user(user_read, NULL, &ret, &ex))
		return ~0UL;
	return ex.vector == PF_VECTOR ? ex.error_code : 0xdead0000UL | ex.vector;
}

static void test_sizes(void)
{
	u64 *p4k = alloc_page();
	u8 *big = alloc_pages_aligned(512, LARGE_PAGE_SIZE);
	bool ok = true;

	/* 4 KiB: both directions through a fresh alias. */
	p4k[3] = 0x1122334455667788UL;
	map_4k(kernel_root, VA_4K, (u64)p4k, PTE_W);
	invlpg((void *)VA_4K);
	report(readq(VA_4K + 24) == 0x1122334455667788UL, "4 KiB page reads its frame");
	writeq(VA_4K + 40, 0xabcdef);
	report(p4k[5] == 0xabcdef, "4 KiB page writes its frame");
	report(virt_to_phys(kernel_root, VA_4K + 0x18) == (u64)p4k + 0x18, "virt_to_phys walks 4 KiB pages");

	/* 2 MiB: markers in several 4 KiB parts of a 2 MiB frame. */
	for (u64 off = 0; off < LARGE_PAGE_SIZE; off += 0x41000)
		*(u64 *)(big + off) = 0xb16b00b5 + off;
	map_2m(kernel_root, VA_2M, (u64)big, PTE_W);
	invlpg((void *)VA_2M);
	for (u64 off = 0; off < LARGE_PAGE_SIZE; off += 0x41000)
		ok &= readq(VA_2M + off) == 0xb16b00b5 + off;
	report(ok, "2 MiB page reads the right 4 KiB parts of its frame");
	writeq(VA_2M + 0x1ffff8, 0x77);
	report(*(u64 *)(big + 0x1ffff8) == 0x77, "2 MiB page writes its last quadword");

	/* 1 GiB: VA_1G maps physical 0-1 GiB, so big is visible at VA_1G + big. */
	if (!cpu_has_1g_pages()) {
		report_skip("1 GiB pages: CPUID.80000001:EDX[26] = 0");
		return;
	}
	map_1g(kernel_root, VA_1G, 0, PTE_W);
	invlpg((void *)(VA_1G + (u64)big));
	ok = true;
	for (u64 off = 0; off < LARGE_PAGE_SIZE; off += 0x41000)
		ok &= readq(VA_1G + (u64)big + off) == 0xb16b00b5 + off;
	report(ok, "1 GiB page reads the right frame at offset 0x%lx", (u64)big);
	writeq(VA_1G + (u64)p4k + 8, 0x1c1c);
	report(p4k[1] == 0x1c1c && readq(VA_4K + 8) == 0x1c1c,
	       "write through the 1 GiB page is seen through the identity map and the 4 KiB alias");
	report(virt_to_phys(kernel_root, VA_1G + 0x12345678) == 0x12345678, "virt_to_phys walks 1 GiB pages");
	unmap(kernel_root, VA_1G);
	invlpg((void *)(VA_1G + (u64)big));
	invlpg((void *)(VA_1G + (u64)p4k));
	check_access("read after unmapping the 1 GiB page", pg_read, VA_1G + (u64)p4k, 0);
}

static void test_permissions(void)
{
	u8 *page = alloc_page();
	u64 va = VA_SCRATCH;
	u64 *pte, *pde;

	page[0] = 0xc3; /* RET */
	map_4k(kernel_root, va, (u64)page, PTE_W | PTE_U);
	pte = get_pte(kernel_root, va, NULL);
	pde = vm_walk(kernel_root, va, PT_LEVEL_2M, false);
	invlpg((void *)va);
	check_access("read of a present page", pg_read, va, ~0UL);
	check_access("call into an executable page", pg_call, va, ~0UL);

	if (rdmsr(MSR_EFER) & EFER_NXE) {
		*pte |= PTE_NX;
		invlpg((void *)va);
		check_access("fetch with NX in the PTE", pg_call, va, PFERR_PRESENT | PFERR_FETCH);
		check_access("read with NX in the PTE", pg_read, va, ~0UL);
		*pte &= ~PTE_NX;
		*pde |= PTE_NX; /* NX anywhere on the walk forbids fetches */
		invlpg((void *)va);
		check_access("fetch with NX in the PDE only", pg_call, va, PFERR_PRESENT | PFERR_FETCH);
		*pde &= ~PTE_NX;
	} else {
		report_skip("NX: EFER.NXE not available");
	}

	/* R/W = 0 anywhere on the walk makes the page read-only (CR0.WP = 1). */
	*pde &= ~PTE_W;
	invlpg((void *)va);
	check_access("write with R/W = 0 in the PDE only", pg_write, va, PFERR_PRESENT | PFERR_WRITE);
	*pde |= PTE_W;
	*pte &= ~PTE_W;
	invlpg((void *)va);
	check_access("write to a read-only PTE, CR0.WP = 1", pg_write, va, PFERR_PRESENT | PFERR_WRITE);
	/* CR0.WP = 0: supervisor writes ignore R/W. */
	set_cr0_wp(false);
	invlpg((void *)va);
	check_access("write to a read-only PTE, CR0.WP = 0", pg_write, va, ~0UL);
	set_cr0_wp(true);
	report(*(u64 *)page == 0x5a5a, "the CR0.WP = 0 write reached the frame");
	*pte |= PTE_W;

	/* U/S: CPL3 needs U = 1 at every level. */
	invlpg((void *)va);
	report(user_pf(va) == ~0UL, "CPL3 read of a user page: no fault");
	*pte &= ~PTE_U;
	invlpg((void *)va);
	u64 err = user_pf(va);
	report(err == (PFERR_PRESENT | PFERR_USER), "CPL3 read of a supervisor PTE: #PF(0x5) (got 0x%lx)", err);
	*pte |= PTE_U;
	*pde &= ~PTE_U;
	invlpg((void *)va);
	err = user_pf(va);
	report(err == (PFERR_PRESENT | PFERR_USER), "CPL3 read with U = 0 in the PDE only: #PF(0x5) (got 0x%lx)", err);
	*pde |= PTE_U;
	invlpg((void *)va);
	unmap(kernel_root, va);
	invlpg((void *)va);
}

/*
 * SMEP and SMAP need the kernel itself on supervisor pages: switch to a
 * supervisor-only identity map that also holds one user page.
 */
static void test_smep_smap(void)
{
	u64 *root, va = VA_SCRATCH, old_cr3 = read_cr3();
	u8 *page;

	if (!cpu_has_smep() && !cpu_has_smap()) {
		report_skip("SMEP: CPUID.7.0:EBX[7] = 0");
		report_skip("SMAP: CPUID.7.0:EBX[20] = 0");
		return;
	}
	root = vm_identity_root(PTE_W);
	page = alloc_page();
	page[0] = 0xc3;
	*(u64 *)(page + 8) = 0x5e5e;
	map_4k(root, va, (u64)page, PTE_W | PTE_U);
	write_cr3((u64)root);

	if (cpu_has_smep()) {
		check_access("CPL0 call into a user page, CR4.SMEP = 0", pg_call, va, ~0UL);
		set_cr4_bits(X86_CR4_SMEP, 0);
		check_access("CPL0 call into a user page, CR4.SMEP = 1", pg_call, va,
			     PFERR_PRESENT | PFERR_FETCH);
		check_access("CPL0 read of a user page, CR4.SMEP = 1", pg_read, va, ~0UL);
		set_cr4_bits(0, X86_CR4_SMEP);
	} else {
		report_skip("SMEP: CPUID.7.0:EBX[7] = 0");
	}

	if (cpu_has_smap()) {
		set_cr4_bits(X86_CR4_SMAP, 0);
		clac();
		check_access("CPL0 read of a user page, CR4.SMAP = 1, AC = 0", pg_read, va + 8,
			     PFERR_PRESENT);
		check_access("CPL0 write to a user page, CR4.SMAP = 1, AC = 0", pg_write, va + 8,
			     PFERR_PRESENT | PFERR_WRITE);
		stac();
		check_access("CPL0 read of a user page, CR4.SMAP = 1, AC = 1", pg_read, va + 8, ~0UL);
		clac();
		set_cr4_bits(0, X86_CR4_SMAP);
		check_access("CPL0 read of a user page, CR4.SMAP = 0", pg_read, va + 8, ~0UL);
	} else {
		report_skip("SMAP: CPUID.7.0:EBX[20] = 0");
	}
	write_cr3(old_cr3);
}

static void test_accessed_dirty(void)
{
	u64 *page = alloc_page();
	u8 *big = alloc_pages_aligned(512, LARGE_PAGE_SIZE);
	u64 va = VA_SCRATCH + 0x200000, *pte, *pde, *pdpte, *pml4e;

	map_4k(kernel_root, va, (u64)page, PTE_W);
	pte = get_pte(kernel_root, va, NULL);
	pde = vm_walk(kernel_root, va, PT_LEVEL_2M, false);
	pdpte = vm_walk(kernel_root, va, PT_LEVEL_1G, false);
	pml4e = vm_walk(kernel_root, va, 4, false);
	*pml4e &= ~PTE_A;
	*pdpte &= ~PTE_A;
	*pde &= ~PTE_A;
	*pte &= ~(PTE_A | PTE_D);
	invlpg((void *)va);
	report(!(*pte & (PTE_A | PTE_D)), "fresh PTE has A = D = 0");
	readq(va);
	report((*pte & PTE_A) && !(*pte & PTE_D), "a read sets PTE.A only (PTE 0x%lx)", *pte);
	report((*pde & PTE_A) && (*pdpte & PTE_A) && (*pml4e & PTE_A),
	       "the walk set A in the PDE, PDPTE and PML4E");
	writeq(va, 1);
	report((*pte & PTE_D) && (*pte & PTE_A), "a write sets PTE.D (PTE 0x%lx)", *pte);

	/* Clearing D in the PTE and flushing: the next write sets it again. */
	*pte &= ~PTE_D;
	invlpg((void *)va);
	writeq(va, 2);
	report(*pte & PTE_D, "after INVLPG a write sets the cleared D bit again");

	/* 2 MiB page: A and D live in the PDE itself. */
	u64 va2 = VA_2M + 0x200000;
	map_2m(kernel_root, va2, (u64)big, PTE_W);
	u64 *lpde = get_pte(kernel_root, va2, NULL);
	*lpde &= ~(PTE_A | PTE_D);
	invlpg((void *)va2);
	readq(va2 + 0x3000);
	report((*lpde & PTE_A) && !(*lpde & PTE_D), "a read sets A in a 2 MiB PDE (0x%lx)", *lpde);
	writeq(va2 + 0x5000, 3);
	report(*lpde & PTE_D, "a write sets D in a 2 MiB PDE (0x%lx)", *lpde);
	unmap(kernel_root, va);
	unmap(kernel_root, va2);
	invlpg((void *)va);
	invlpg((void *)(va2 + 0x3000));
	invlpg((void *)(va2 + 0x5000));
}

static void test_aliases(void)
{
	u8 *big = alloc_pages_aligned(512, LARGE_PAGE_SIZE);
	u64 va_small = VA_SCRATCH + 0x400000, va_large = VA_SCRATCH + 0x600000;
	bool ok = true;

	/* Map the same 2 MiB frame once as a 2 MiB page and as 512 4 KiB pages. */
	map_2m(kernel_root, va_large, (u64)big, PTE_W);
	for (int i = 0; i < 512; i++)
		map_4k(kernel_root, va_small + i * PAGE_SIZE, (u64)big + i * PAGE_SIZE, PTE_W);
	flush_tlb_nonglobal();
	for (int i = 0; i < 512; i += 37) {
		writeq(va_small + i * PAGE_SIZE + 8 * i, 0xa11a5000UL + i);
		ok &= readq(va_large + i * PAGE_SIZE + 8 * i) == 0xa11a5000UL + i;
	}
	report(ok, "4 KiB and 2 MiB aliases of one frame see each other's writes");

	/* Splitting a 2 MiB identity page keeps the translation. */
	u64 pa = (u64)big + 0x7000;
	u64 *pde = vm_walk(kernel_root, (u64)big, PT_LEVEL_2M, false);
	report(pde && (*pde & PTE_PS), "the identity map uses a 2 MiB page at 0x%lx", (u64)big);
	map_4k(kernel_root, pa, pa, PTE_W); /* splits the 2 MiB page into 512 PTEs */
	flush_tlb_nonglobal();
	ok = !(*pde & PTE_PS);
	for (int i = 0; i < 512; i += 37)
		ok &= readq(va_large + i * PAGE_SIZE + 8 * i) ==
		      readq((u64)big + i * PAGE_SIZE + 8 * i);
	report(ok, "after splitting it into 4 KiB pages the identity map reads the same data");
}

int main(int argc __unused, char **argv __unused)
{
	report_info("CR0 0x%lx CR4 0x%lx EFER 0x%lx, MAXPHYADDR %u", read_cr0(), read_cr4(),
		    rdmsr(MSR_EFER), cpu_phys_addr_bits());
	test_sizes();
	test_permissions();
	test_smep_smap();
	test_accessed_dirty();
	test_aliases();
	report_summary();
}
