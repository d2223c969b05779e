/*
 * PV TLB flush (tlfs-vsm-facts.md §2.2-2.5): CPU 0 remaps a page that the
 * other CPUs have cached, without invalidating anything, then flushes with a
 * hypercall. A CPU the flush targets MUST then read the new frame ("return
 * only after all targeted VPs have observed the flush"); a CPU it does not
 * target, or any CPU before the flush, may read either (INFO; our TLB keeps
 * translations until flushed, so stale reads are expected there).
 * Covered: FlushVirtualAddressSpace / List with processor masks and
 * HV_FLUSH_ALL_PROCESSORS, the Ex forms with sparse VP sets (extra empty
 * banks) and HV_GENERIC_SET_ALL, XMM fast forms (hv-xmm-input), GVA ranges
 * inside a 2 MiB page, NON_GLOBAL_MAPPINGS_ONLY, a reserved flag bit.
 * Run with --hv hv-vpindex,hv-tlbflush,hv-xmm-input --smp 4.
 */
#include "libguest.h"
#include "hyperv.h"

#define VA 0x3000000000UL         /* outside the identity map */
#define VA_LARGE 0x3040000000UL   /* a 2 MiB page */
#define PATTERN_A 0xaaaaaaaa00000001UL
#define PATTERN_B 0xbbbbbbbb00000002UL

static u64 frame_a, frame_b, large_a, large_b;
static volatile u64 seen[MAX_CPUS];
static u64 read_at = VA;

static void read_va(void *arg) { (void)arg; seen[smp_id()] = readq(read_at); }
static void fresh_read(void *arg) { (void)arg; invlpg((void *)read_at); seen[smp_id()] = readq(read_at); }

static u64 all_cpus(void) { return cpu_count() >= 64 ? ~0UL : BIT(cpu_count()) - 1; }


/* Run fn on every CPU in the set, one after the other (CPU 0 runs it itself). */
static void on_set(u64 cpus, void (*fn)(void *))
{
	for (unsigned i = 0; i < cpu_count(); i++)
		if (cpus & BIT(i))
			on_cpu(i, fn, NULL);
}

static u64 stale_set(u64 cpus)
{
	u64 m = 0;

	for (unsigned i = 0; i < cpu_count(); i++)
		if ((cpus & BIT(i)) && seen[i] == PATTERN_A)
			m |= BIT(i);
	return m;
}

/* ---------------------------------------------------------------- the flush calls */

typedef u64 (*flush_fn)(u64 cpus);

static u64 space(u64 cpus)
{
	struct hv_flush_input *in = hv_input_page();

	in->address_space = read_cr3();
	in->flags = 0;
	in->processor_mask = hv_vp_mask(cpus);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)in, 0);
}

static u64 space_all_processors(u64 cpus)
{
	struct hv_flush_input *in = hv_input_page();

	(void)cpus;
	in->address_space = read_cr3();
	in->flags = HV_FLUSH_ALL_PROCESSORS | HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
	in->processor_mask = 0;
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)in, 0);
}

static u64 space_non_global(u64 cpus)
{
	struct hv_flush_input *in = hv_input_page();

	in->address_space = read_cr3();
	in->flags = HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY;
	in->processor_mask = hv_vp_mask(cpus);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)in, 0);
}

static u64 list(u64 cpus)
{
	struct hv_flush_input *in = hv_input_page();

	in->address_space = read_cr3();
	in->flags = 0;
	in->processor_mask = hv_vp_mask(cpus);
	/* A range of 3 pages starting one page below: the page is in the middle of it. */
	in->gva_list[0] = HV_GVA_RANGE(read_at - PAGE_SIZE, 2);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(1), (u64)in, 0);
}

/* The range names only a page 1 MiB into the 2 MiB mapping; the large page holds read_at too. */
static u64 list_inside_large(u64 cpus)
{
	struct hv_flush_input *in = hv_input_page();

	in->address_space = read_cr3();
	in->flags = 0;
	in->processor_mask = hv_vp_mask(cpus);
	in->gva_list[0] = HV_GVA_RANGE(VA_LARGE + (1UL << 20), 0);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(1), (u64)in, 0);
}

/* Ex input: sparse set over VPs 0..63 in bank 0, plus `extra` empty banks. */
static struct hv_flush_ex_input *ex_input(u64 flags, u64 format, u64 cpus, unsigned extra)
{
	struct hv_flush_ex_input *in = hv_input_page();

	memset(in, 0, 256);
	in->address_space = read_cr3();
	in->flags = flags;
	in->format = format;
	if (format == HV_GENERIC_SET_SPARSE_4K) {
		in->valid_banks = BIT(extra + 1) - 1;
		in->banks[0] = hv_vp_mask(cpus);
	}
	return in;
}

static u64 space_ex(u64 cpus)
{
	struct hv_flush_ex_input *in = ex_input(0, HV_GENERIC_SET_SPARSE_4K, cpus, 0);

	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX | HV_HYPERCALL_VARHEAD(1), (u64)in, 0);
}

static u64 space_ex_set_all(u64 cpus)
{
	struct hv_flush_ex_input *in = ex_input(0, HV_GENERIC_SET_ALL, cpus, 0);

	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX, (u64)in, 0);
}

static u64 list_ex(u64 cpus)
{
	/* Banks 0-2 valid, 1 and 2 empty: three bank words of variable header, then the range. */
	struct hv_flush_ex_input *in = ex_input(0, HV_GENERIC_SET_SPARSE_4K, cpus, 2);

	in->banks[3] = HV_GVA_RANGE(read_at, 0);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX | HV_HYPERCALL_VARHEAD(3) | HV_HYPERCALL_REP_COUNT(1),
			    (u64)in, 0);
}

static u64 list_ex_all_processors(u64 cpus)
{
	struct hv_flush_ex_input *in = ex_input(HV_FLUSH_ALL_PROCESSORS, HV_GENERIC_SET_SPARSE_4K, cpus, 0);

	in->valid_banks = 0; /* the set is ignored with HV_FLUSH_ALL_PROCESSORS */
	in->banks[0] = HV_GVA_RANGE(read_at, 0);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX | HV_HYPERCALL_REP_COUNT(1), (u64)in, 0);
}

static u64 xmm_space(u64 cpus)
{
	struct hv_flush_input in = { read_cr3(), 0, hv_vp_mask(cpus) };

	return hv_hypercall_xmm(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, &in, 24, NULL, 0, NULL);
}

static u64 xmm_list(u64 cpus)
{
	u64 in[4] = { read_cr3(), 0, hv_vp_mask(cpus), HV_GVA_RANGE(read_at, 0) };

	return hv_hypercall_xmm(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(1), in, sizeof(in), NULL, 0,
				NULL);
}

static u64 xmm_list_ex(u64 cpus)
{
	u64 in[6] = { read_cr3(), 0, HV_GENERIC_SET_SPARSE_4K, 1, hv_vp_mask(cpus), HV_GVA_RANGE(read_at, 0) };

	return hv_hypercall_xmm(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX | HV_HYPERCALL_VARHEAD(1) | HV_HYPERCALL_REP_COUNT(1),
				in, sizeof(in), NULL, 0, NULL);
}

/* ---------------------------------------------------------------- the scenario */

/*
 * Every CPU caches va -> old frame; CPU 0 points the PTE at the new frame
 * without invalidating; the flush targets `cpus`; each of them must read the
 * new frame. `show_unflushed` reports what the CPUs read before the flush.
 */
static void run_case(const char *name, flush_fn flush, u64 cpus, bool show_unflushed)
{
	u64 all = all_cpus();

	remap(kernel_root, read_at, read_at == VA ? frame_a : large_a);
	on_set(all, fresh_read);
	bool primed = stale_set(all) == all;
	remap(kernel_root, read_at, read_at == VA ? frame_b : large_b);
	if (show_unflushed) {
		on_set(all, read_va);
		u64 stale = stale_set(all);
		report_info("%s: before any flush, CPUs 0x%lx read the old frame, 0x%lx the new one", name, stale,
			    all & ~stale);
	}
	u64 r = flush(cpus);
	on_set(all, read_va);
	u64 stale = stale_set(all);
	bool targets_new = true;
	for (unsigned i = 0; i < cpu_count(); i++)
		if (cpus & BIT(i))
			targets_new &= seen[i] == PATTERN_B;
	report(primed && HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && targets_new,
	       "%s to CPUs 0x%lx: SUCCESS (0x%lx) and every target reads the new frame", name, cpus, r);
	if (stale & ~cpus)
		report_info("%s: CPUs 0x%lx, not targeted, still read the old frame", name, stale & ~cpus);
}

static void test_invalid(void)
{
	struct hv_flush_input *in = hv_input_page();

	in->address_space = read_cr3();
	in->flags = BIT(7); /* RsvdZ (§2.2) */
	in->processor_mask = hv_vp_mask(all_cpus());
	u64 r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)in, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER, "flags bit 7 (reserved) => INVALID_PARAMETER (0x%lx)", r);
}

static void pge_on(void *arg) { (void)arg; set_cr4_bits(X86_CR4_PGE, 0); }
static void pge_off(void *arg) { (void)arg; set_cr4_bits(0, X86_CR4_PGE); }

/* A global mapping (PTE.G with CR4.PGE): NON_GLOBAL_MAPPINGS_ONLY may leave it. */
static void test_global(u64 others)
{
	if (!cpu_has_pge()) {
		report_skip("global pages: no CR4.PGE");
		return;
	}
	on_cpus(pge_on, NULL);
	map_4k(kernel_root, VA, frame_a, PTE_W | PTE_G);
	on_set(all_cpus(), fresh_read);
	remap(kernel_root, VA, frame_b);
	u64 r = space_non_global(others);
	on_set(others, read_va);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS, "NON_GLOBAL_MAPPINGS_ONLY with a global mapping => SUCCESS (0x%lx)", r);
	report_info("after a non-global-only flush, CPUs 0x%lx still read the old frame of the global mapping",
		    stale_set(others));
	r = space(others);
	on_set(others, read_va);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && !stale_set(others),
	       "a full flush drops the global mapping on CPUs 0x%lx (0x%lx)", others, r);
	map_4k(kernel_root, VA, frame_a, PTE_W);
	on_cpus(pge_off, NULL); /* clearing CR4.PGE flushes everything, global entries included */
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_VP_INDEX) || !hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH)) {
		report_skip("PV TLB flush not available: run with --hv hv-vpindex,hv-tlbflush");
		report_summary();
	}
	if (cpu_count() < 2) {
		report_skip("PV TLB flush: needs --smp 2 or more (best 4)");
		report_summary();
	}
	hv_collect_vp_indexes();
	hv_hypercall_setup();

	frame_a = (u64)alloc_page();
	frame_b = (u64)alloc_page();
	writeq(frame_a, PATTERN_A);
	writeq(frame_b, PATTERN_B);
	large_a = (u64)alloc_pages_aligned(512, LARGE_PAGE_SIZE);
	large_b = (u64)alloc_pages_aligned(512, LARGE_PAGE_SIZE);
	writeq(large_a + PAGE_SIZE, PATTERN_A);
	writeq(large_b + PAGE_SIZE, PATTERN_B);
	map_4k(kernel_root, VA, frame_a, PTE_W);
	map_2m(kernel_root, VA_LARGE, large_a, PTE_W);

	u64 r;
	unsigned vec = hv_hypercall_catch(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, 0, 0, &r);
	if (vec != NO_EXCEPTION) {
		report(false, "a flush hypercall raised %s: no hypercall dispatcher, the rest cannot run",
		       exception_mnemonic(vec));
		report_summary();
	}

	unsigned n = cpu_count();
	u64 all = all_cpus(), others = all & ~1UL;
	u64 one = BIT(n > 2 ? 2 : 1);            /* a single remote target */
	u64 sparse = n > 3 ? BIT(1) | BIT(n - 1) : others; /* the highest VP index too */

	run_case("FlushVirtualAddressSpace, mask of the other CPUs", space, others, true);
	run_case("FlushVirtualAddressSpace, mask of one CPU", space, one, false);
	run_case("FlushVirtualAddressSpace, mask including CPU 0 itself", space, all, false);
	run_case("FlushVirtualAddressSpace, HV_FLUSH_ALL_PROCESSORS", space_all_processors, all, false);
	run_case("FlushVirtualAddressSpace, NON_GLOBAL_MAPPINGS_ONLY (non-global page)", space_non_global, others, false);
	run_case("FlushVirtualAddressList, 3-page range around the page", list, sparse, false);
	if (hv_recommends(HV_REC_EX_PROCESSOR_MASKS)) {
		run_case("FlushVirtualAddressSpaceEx, sparse set", space_ex, sparse, false);
		run_case("FlushVirtualAddressSpaceEx, HV_GENERIC_SET_ALL", space_ex_set_all, all, false);
		run_case("FlushVirtualAddressListEx, banks 0-2 (1, 2 empty)", list_ex, others, false);
		run_case("FlushVirtualAddressListEx, HV_FLUSH_ALL_PROCESSORS", list_ex_all_processors, all, false);
	} else {
		report_skip("Ex flushes: need the Ex processor masks recommendation");
	}
	if (hv_has_feature(HV_FEAT_XMM_HYPERCALL_INPUT)) {
		run_case("FlushVirtualAddressSpace, XMM fast", xmm_space, others, false);
		run_case("FlushVirtualAddressList, XMM fast", xmm_list, one, false);
		if (hv_recommends(HV_REC_EX_PROCESSOR_MASKS))
			run_case("FlushVirtualAddressListEx, XMM fast", xmm_list_ex, sparse, false);
	} else {
		report_skip("XMM fast flushes: need hv-xmm-input");
	}

	/* A GVA inside a 2 MiB mapping flushes the whole large page (§2.3). */
	read_at = VA_LARGE + PAGE_SIZE;
	run_case("FlushVirtualAddressList, a GVA 1 MiB into a 2 MiB page (read at +4 KiB)", list_inside_large, others,
		 true);
	read_at = VA;

	test_global(others);
	test_invalid();
	report_summary();
}
