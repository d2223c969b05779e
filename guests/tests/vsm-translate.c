/*
 * HvCallTranslateVirtualAddress (0x52) and Ex (0xAC) from VTL1 for VTL0
 * (tlfs-vsm-facts.md §2.16, §5.1-§5.4), with the VSM library (lib/vsm.h).
 *
 * VTL0 builds mappings of fresh VAs in its page tables (outside the
 * identity map) and VTL1 translates them with chosen control flags; every
 * result is compared whole (code, cache type, overlay bit; GPA page):
 *  - success with the GPA page and the PAT cache type of the leaf (PAT
 *    entries 0, 1, 3 of the reset PAT: WB, WT, UC), the slow, the XMM fast
 *    (output in XMM1) and the Ex form (hvdef's 0x40-byte layout, §5.3);
 *  - PageNotPresent; PrivilegeViolation for a user access to a supervisor
 *    page (UserAccess), a user write to a read-only user page, and a
 *    supervisor write to a read-only page with CR0.WP (PrivilegeExempt too);
 *  - GpaNoReadAccess, GpaNoWriteAccess and Intercept (execute) for pages
 *    VTL1 protected (§3.8, §5.2);
 *  - the OverlayPage bit for VTL0's hypercall page, not for VTL1's (one
 *    overlay per VTL, §1.4), and GpaIllegalOverlayAccess for a write;
 *  - accessed/dirty bits: set only with SetPageTableBits, on every level,
 *    D only for a validated write, nothing when the translation fails;
 *  - with 2 CPUs or more, another VP's VTL0, whose CR3 differs;
 *  - negative statuses: translating for the caller's own VTL (and from
 *    VTL0) ⇒ ACCESS_DENIED, a VP index that is no VP ⇒ INVALID_VP_INDEX,
 *    partition ≠ self ⇒ INVALID_PARTITION_ID, reserved or shadow-stack
 *    flags and a bad input VTL ⇒ INVALID_PARAMETER, a fast Ex ⇒
 *    INVALID_HYPERCALL_INPUT (src/vmm/vsm/hc-translate.ts: no output
 *    registers).
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm,hv-xmm-input,hv-xmm-output at any CPU
 * count; the counts in test/guests/vsm-protect.test.ts depend on it.
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"

enum { CMD_TRANSLATE = VSM_CMD_USER };
enum { SLOW, FAST, EX, FAST_EX };

#define VA_BASE 0x3000000000UL   /* 192 GiB: a page table of its own */
#define VA_AD 0x3200000000UL     /* another 1 GiB: fresh PDPTE, PDE and PTE for the A/D checks */
#define VA_REMOTE 0x3400000000UL /* mapped only in VP1's own page tables */
#define PAT_RESET 0x0007040600070406UL
#define MSR_PAT 0x277
#define PROTECTION_CONFIG (HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX))
#define IN_VTL0 HV_TRANSLATE_GVA_INPUT_VTL(HV_INPUT_VTL(0))
#define R HV_TRANSLATE_GVA_VALIDATE_READ
#define W HV_TRANSLATE_GVA_VALIDATE_WRITE
#define X HV_TRANSLATE_GVA_VALIDATE_EXECUTE
#define RESULT_FAIL(code) HV_TRANSLATE_RESULT(code, 0, false)
#define RESULT_OK(cache) HV_TRANSLATE_RESULT(HV_TRANSLATE_GVA_SUCCESS, cache, false)

static struct vsm_hvc vtl0_hvc;

/* One translation request and what came back (shared between the VTLs). */
static struct {
	u64 partition;
	u32 vp;
	u64 flags, gva;
	struct hv_translate_output out;
	struct hv_translate_ex_output ex;
} tr;

// ---------------------------------------------------------------- VTL1

/* arg0: SLOW, FAST, EX or FAST_EX; returns the result value. */
static u64 vtl1_translate(struct vsm_vp *vp, struct vsm_regs *regs)
{
	u64 page = tr.gva >> HV_PAGE_SHIFT;

	(void)regs;
	switch (vp->arg[0]) {
	case FAST: return vsm_translate_fast(&vp->hvc, tr.partition, tr.vp, tr.flags, page, &tr.out);
	case EX: return vsm_translate_ex(&vp->hvc, tr.partition, tr.vp, tr.flags, page, &tr.ex);
	case FAST_EX: {
		u64 in[4] = { tr.partition, tr.vp, tr.flags, page };
		return vsm_hvc_call_xmm(&vp->hvc, HVCALL_TRANSLATE_VIRTUAL_ADDRESS_EX, in, sizeof(in), NULL, 0);
	}
	default: return vsm_translate(&vp->hvc, tr.partition, tr.vp, tr.flags, page, &tr.out);
	}
}

// ---------------------------------------------------------------- VTL0

/* VTL1 translates gva for a VP's VTL0 with `flags` (input VTL included); the call's status and, on SUCCESS, tr.out / tr.ex. */
static unsigned translate_vp(unsigned kind, u32 vp, u64 flags, u64 gva)
{
	tr.partition = HV_PARTITION_ID_SELF;
	tr.vp = vp;
	tr.flags = flags;
	tr.gva = gva;
	return HV_RESULT_STATUS(vsm_call(CMD_TRANSLATE, kind, 0, 0));
}

/* The whole check: SUCCESS, the result and the GPA page (1 check). */
static void expect(const char *what, u64 flags, u64 gva, u64 result, u64 gpa_page)
{
	unsigned s = translate_vp(SLOW, HV_VP_INDEX_SELF, flags | IN_VTL0, gva);

	report(s == HV_STATUS_SUCCESS && tr.out.result == result && tr.out.gpa_page == gpa_page,
	       "%s: TranslateVirtualAddress(VTL0, 0x%lx, flags 0x%lx) => 0x%x, result 0x%lx, GPA page 0x%lx (want 0x%lx, 0x%lx)", what, gva,
	       flags, s, tr.out.result, tr.out.gpa_page, result, gpa_page);
}

static u64 protect(u64 page, u32 mask)
{
	return vsm_call(VSM_CMD_PROTECT_PAGE, page >> HV_PAGE_SHIFT, mask, 0);
}

static void results(void)
{
	u64 f_ok = (u64)alloc_page(), f_wt = (u64)alloc_page(), f_uc = (u64)alloc_page(), f_ro = (u64)alloc_page();
	u64 va_ok = VA_BASE, va_wt = VA_BASE + 0x1000, va_uc = VA_BASE + 0x2000, va_np = VA_BASE + 0x3000;
	u64 va_ro = VA_BASE + 0x4000, va_ro_user = VA_BASE + 0x5000;
	bool wp = read_cr0() & X86_CR0_WP;

	report(rdmsr(MSR_PAT) == PAT_RESET, "VTL0: PAT 0x%lx is the reset value (entries WB, WT, UC-, UC)", rdmsr(MSR_PAT));
	map_4k(kernel_root, va_ok, f_ok, PTE_W);
	map_4k(kernel_root, va_wt, f_wt, PTE_W | PTE_PWT);
	map_4k(kernel_root, va_uc, f_uc, PTE_W | PTE_PWT | PTE_PCD);
	map_4k(kernel_root, va_ro, f_ro, 0);
	map_4k(kernel_root, va_ro_user, f_ro, PTE_U);

	expect("WB page", R | W, va_ok + 0x123, RESULT_OK(HV_CACHE_TYPE_WB), f_ok >> HV_PAGE_SHIFT);
	expect("PWT page (PAT 1)", R, va_wt, RESULT_OK(HV_CACHE_TYPE_WT), f_wt >> HV_PAGE_SHIFT);
	expect("PCD|PWT page (PAT 3)", R, va_uc, RESULT_OK(HV_CACHE_TYPE_UC), f_uc >> HV_PAGE_SHIFT);
	expect("identity-mapped 2 MiB page", R | W | X, f_ok, RESULT_OK(HV_CACHE_TYPE_WB), f_ok >> HV_PAGE_SHIFT);
	expect("no validation", 0, va_ok, RESULT_OK(HV_CACHE_TYPE_WB), f_ok >> HV_PAGE_SHIFT);
	expect("unmapped VA", R, va_np, RESULT_FAIL(HV_TRANSLATE_GVA_PAGE_NOT_PRESENT), 0);
	expect("unmapped VA, no validation", 0, va_np, RESULT_FAIL(HV_TRANSLATE_GVA_PAGE_NOT_PRESENT), 0);
	expect("supervisor page, UserAccess", R | HV_TRANSLATE_GVA_USER_ACCESS, va_ok,
	       RESULT_FAIL(HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION), 0);
	expect("supervisor page, SupervisorAccess", R | HV_TRANSLATE_GVA_SUPERVISOR_ACCESS, va_ok, RESULT_OK(HV_CACHE_TYPE_WB),
	       f_ok >> HV_PAGE_SHIFT);
	expect("read-only user page, UserAccess write", W | HV_TRANSLATE_GVA_USER_ACCESS, va_ro_user,
	       RESULT_FAIL(HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION), 0);
	expect("read-only user page, UserAccess read", R | HV_TRANSLATE_GVA_USER_ACCESS, va_ro_user, RESULT_OK(HV_CACHE_TYPE_WB),
	       f_ro >> HV_PAGE_SHIFT);
	report(wp, "VTL0: CR0.WP is set (supervisor writes obey R/W)");
	expect("read-only page, supervisor write (CR0.WP)", W, va_ro, RESULT_FAIL(HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION), 0);
	expect("read-only page, PrivilegeExempt write (CR0.WP)", W | HV_TRANSLATE_GVA_PRIVILEGE_EXEMPT, va_ro,
	       RESULT_FAIL(HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION), 0);
	expect("read-only page, read", R | X, va_ro, RESULT_OK(HV_CACHE_TYPE_WB), f_ro >> HV_PAGE_SHIFT);

	/* VTL1's protections of the frame (§3.8): the walk is fine, the GPA access is not. */
	u64 r = protect(f_ok, HV_MAP_GPA_READABLE);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS, "VTL1: ModifyVtlProtectionMask(R) of the WB frame (0x%lx)", r);
	expect("VTL1 protection R, write", W, va_ok, RESULT_FAIL(HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS), 0);
	expect("VTL1 protection R, read", R, va_ok, RESULT_OK(HV_CACHE_TYPE_WB), f_ok >> HV_PAGE_SHIFT);
	protect(f_ok, 0);
	expect("VTL1 protection none, read", R, va_ok, RESULT_FAIL(HV_TRANSLATE_GVA_GPA_NO_READ_ACCESS), 0);
	expect("VTL1 protection none, no validation", 0, va_ok, RESULT_OK(HV_CACHE_TYPE_WB), f_ok >> HV_PAGE_SHIFT);
	protect(f_ok, HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE);
	expect("VTL1 protection RW, execute", X, va_ok, RESULT_FAIL(HV_TRANSLATE_GVA_INTERCEPT), 0);
	protect(f_ok, HV_MAP_GPA_RWX);
	expect("VTL1 protection RWX again, execute", X, va_ok, RESULT_OK(HV_CACHE_TYPE_WB), f_ok >> HV_PAGE_SHIFT);
	/* A no-access page table: the walk itself is refused. */
	u64 table = (u64)vm_walk(kernel_root, va_ok, PT_LEVEL_4K, false) & ~(PAGE_SIZE - 1);
	protect(table, 0);
	expect("VTL1 protection none on the page table", 0, va_ok, RESULT_FAIL(HV_TRANSLATE_GVA_GPA_NO_READ_ACCESS), 0);
	protect(table, HV_MAP_GPA_RWX);

	/* Overlay pages (§1.4): VTL0's hypercall page is one for VTL0, VTL1's is not. */
	u64 hc0 = (u64)hv_hypercall_page, hc1 = (u64)vsm_this_vp()->hvc.page;
	expect("VTL0's hypercall page, read", R | X, hc0, HV_TRANSLATE_RESULT(HV_TRANSLATE_GVA_SUCCESS, HV_CACHE_TYPE_WB, true),
	       hc0 >> HV_PAGE_SHIFT);
	expect("VTL0's hypercall page, write", W, hc0, RESULT_FAIL(HV_TRANSLATE_GVA_GPA_ILLEGAL_OVERLAY_ACCESS), 0);
	expect("VTL1's hypercall page (RAM for VTL0), write", W, hc1, RESULT_OK(HV_CACHE_TYPE_WB), hc1 >> HV_PAGE_SHIFT);

	/* The three forms agree. */
	unsigned s = translate_vp(FAST, HV_VP_INDEX_SELF, R | IN_VTL0, va_wt);
	report(s == HV_STATUS_SUCCESS && tr.out.result == RESULT_OK(HV_CACHE_TYPE_WT) && tr.out.gpa_page == f_wt >> HV_PAGE_SHIFT,
	       "fast TranslateVirtualAddress (output in XMM1) => 0x%x, result 0x%lx, GPA page 0x%lx", s, tr.out.result, tr.out.gpa_page);
	s = translate_vp(EX, HV_VP_INDEX_SELF, R | IN_VTL0, va_wt);
	struct hv_translate_ex_output want = { .result = RESULT_OK(HV_CACHE_TYPE_WT), .gpa_page = f_wt >> HV_PAGE_SHIFT };
	report(s == HV_STATUS_SUCCESS && memcmp(&tr.ex, &want, sizeof(want)) == 0,
	       "TranslateVirtualAddressEx => 0x%x, result 0x%lx, reserved 0x%lx, no event (0x%lx..), GPA page 0x%lx @0x30, reserved 0x%lx", s,
	       tr.ex.result, tr.ex.reserved0, tr.ex.event_info[0], tr.ex.gpa_page, tr.ex.reserved1);
	s = translate_vp(EX, HV_VP_INDEX_SELF, R | IN_VTL0, va_np);
	want = (struct hv_translate_ex_output){ .result = RESULT_FAIL(HV_TRANSLATE_GVA_PAGE_NOT_PRESENT) };
	report(s == HV_STATUS_SUCCESS && memcmp(&tr.ex, &want, sizeof(want)) == 0,
	       "TranslateVirtualAddressEx of an unmapped VA => 0x%x, result 0x%lx, GPA page 0x%lx", s, tr.ex.result, tr.ex.gpa_page);
}

/* Accessed and dirty bits (§5.1 SetPageTableBits). */
static void accessed_dirty(void)
{
	u64 frame = (u64)alloc_page();

	map_4k(kernel_root, VA_AD, frame, PTE_W);
	u64 *pte = vm_walk(kernel_root, VA_AD, PT_LEVEL_4K, false);
	u64 *pde = vm_walk(kernel_root, VA_AD, PT_LEVEL_2M, false);
	u64 *pdpte = vm_walk(kernel_root, VA_AD, PT_LEVEL_1G, false);
	u64 leaf = frame | PTE_P | PTE_W;

	expect("A/D: read and write without SetPageTableBits", R | W, VA_AD, RESULT_OK(HV_CACHE_TYPE_WB), frame >> HV_PAGE_SHIFT);
	report(*pte == leaf && !(*pde & PTE_A) && !(*pdpte & PTE_A),
	       "A/D: without SetPageTableBits nothing changed (PTE 0x%lx, PDE 0x%lx, PDPTE 0x%lx)", *pte, *pde, *pdpte);
	expect("A/D: failing translation with SetPageTableBits", W | HV_TRANSLATE_GVA_USER_ACCESS | HV_TRANSLATE_GVA_SET_PAGE_TABLE_BITS, VA_AD,
	       RESULT_FAIL(HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION), 0);
	report(*pte == leaf && !(*pde & PTE_A) && !(*pdpte & PTE_A), "A/D: a failed translation set nothing (PTE 0x%lx)", *pte);
	expect("A/D: read with SetPageTableBits", R | HV_TRANSLATE_GVA_SET_PAGE_TABLE_BITS, VA_AD, RESULT_OK(HV_CACHE_TYPE_WB),
	       frame >> HV_PAGE_SHIFT);
	report(*pte == (leaf | PTE_A) && (*pde & PTE_A) && (*pdpte & PTE_A),
	       "A/D: a read sets A on every level, not D (PTE 0x%lx, PDE 0x%lx, PDPTE 0x%lx)", *pte, *pde, *pdpte);
	expect("A/D: write with SetPageTableBits", W | HV_TRANSLATE_GVA_SET_PAGE_TABLE_BITS, VA_AD, RESULT_OK(HV_CACHE_TYPE_WB),
	       frame >> HV_PAGE_SHIFT);
	report(*pte == (leaf | PTE_A | PTE_D), "A/D: a write sets D (PTE 0x%lx)", *pte);
}

static void negative(void)
{
	unsigned s;
	struct hv_translate_output out;

	s = translate_vp(SLOW, HV_VP_INDEX_SELF, R, VA_BASE);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL1: translating for its own VTL (input VTL = caller's) => ACCESS_DENIED (0x%x)", s);
	s = translate_vp(SLOW, HV_VP_INDEX_SELF, R | HV_TRANSLATE_GVA_INPUT_VTL(HV_INPUT_VTL(1)), VA_BASE);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL1: translating for VTL1 => ACCESS_DENIED (0x%x)", s);
	s = translate_vp(EX, HV_VP_INDEX_SELF, R, VA_BASE);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL1: TranslateVirtualAddressEx for its own VTL => ACCESS_DENIED (0x%x)", s);
	s = translate_vp(SLOW, cpu_count(), R | IN_VTL0, VA_BASE);
	report(s == HV_STATUS_INVALID_VP_INDEX, "VTL1: VP index %u (no such VP) => INVALID_VP_INDEX (0x%x)", cpu_count(), s);
	s = translate_vp(SLOW, 0x12345, R | IN_VTL0, VA_BASE);
	report(s == HV_STATUS_INVALID_VP_INDEX, "VTL1: VP index 0x12345 => INVALID_VP_INDEX (0x%x)", s);
	tr.partition = 0;
	tr.vp = HV_VP_INDEX_SELF;
	tr.flags = R | IN_VTL0;
	tr.gva = VA_BASE;
	s = HV_RESULT_STATUS(vsm_call(CMD_TRANSLATE, SLOW, 0, 0));
	report(s == HV_STATUS_INVALID_PARTITION_ID, "VTL1: partition 0 => INVALID_PARTITION_ID (0x%x)", s);
	s = translate_vp(SLOW, HV_VP_INDEX_SELF, R | BIT(11) | IN_VTL0, VA_BASE);
	report(s == HV_STATUS_INVALID_PARAMETER, "VTL1: reserved control flag bit 11 => INVALID_PARAMETER (0x%x)", s);
	s = translate_vp(SLOW, HV_VP_INDEX_SELF, R | BIT(10) | IN_VTL0, VA_BASE);
	report(s == HV_STATUS_INVALID_PARAMETER, "VTL1: ShadowStack (no CET) => INVALID_PARAMETER (0x%x)", s);
	s = translate_vp(SLOW, HV_VP_INDEX_SELF, R | HV_TRANSLATE_GVA_INPUT_VTL(0x20 | HV_INPUT_VTL(0)), VA_BASE);
	report(s == HV_STATUS_INVALID_PARAMETER, "VTL1: input VTL with bit 5 set => INVALID_PARAMETER (0x%x)", s);
	s = translate_vp(FAST_EX, HV_VP_INDEX_SELF, R | IN_VTL0, VA_BASE);
	report(s == HV_STATUS_INVALID_HYPERCALL_INPUT, "VTL1: fast TranslateVirtualAddressEx (no output registers) => INVALID_HYPERCALL_INPUT (0x%x)", s);
	s = HV_RESULT_STATUS(vsm_translate(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, R, VA_BASE >> HV_PAGE_SHIFT, &out));
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: TranslateVirtualAddress for itself => ACCESS_DENIED (0x%x)", s);
	s = HV_RESULT_STATUS(vsm_translate(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, R | HV_TRANSLATE_GVA_INPUT_VTL(HV_INPUT_VTL(1)),
					   VA_BASE >> HV_PAGE_SHIFT, &out));
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: TranslateVirtualAddress for VTL1 (above it) => ACCESS_DENIED (0x%x)", s);
}

/* VP1 runs on page tables of its own, where VA_REMOTE maps a frame (kernel_root does not map it). */
static volatile u64 remote_ready, remote_done;
static u64 remote_frame;

static void remote_root(void *arg)
{
	u64 *root = vm_identity_root(PTE_W), old = read_cr3();

	(void)arg;
	map_4k(root, VA_REMOTE, remote_frame, PTE_W);
	write_cr3((u64)root);
	remote_ready = 1;
	wait_until_set(&remote_done, 1UL << 40);
	write_cr3(old);
}

static void remote_vp(void)
{
	u32 idx = hv_vp_of[1];

	remote_frame = (u64)alloc_page();
	on_cpu_async(1, remote_root, NULL);
	bool ready = wait_until_set(&remote_ready, 1UL << 32);
	unsigned s = translate_vp(SLOW, idx, R | IN_VTL0, VA_REMOTE);
	report(ready && s == HV_STATUS_SUCCESS && tr.out.result == RESULT_OK(HV_CACHE_TYPE_WB) && tr.out.gpa_page == remote_frame >> HV_PAGE_SHIFT,
	       "VP%u VTL1: TranslateVirtualAddress(VP%u's VTL0, 0x%lx) uses its CR3 => 0x%x, result 0x%lx, GPA page 0x%lx", hv_vp_of[0], idx,
	       VA_REMOTE, s, tr.out.result, tr.out.gpa_page);
	expect("the same VA on this VP", R, VA_REMOTE, RESULT_FAIL(HV_TRANSLATE_GVA_PAGE_NOT_PRESENT), 0);
	remote_done = 1;
	on_cpu_wait(1);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	if (!hv_has_feature(HV_FEAT_XMM_HYPERCALL_INPUT) || !hv_has_feature(HV_FEAT_XMM_HYPERCALL_OUTPUT)) {
		report_skip("no XMM fast hypercall input and output (hv-xmm-input, hv-xmm-output): the fast forms cannot be tested");
		report_summary();
	}
	vsm_register_command(CMD_TRANSLATE, vtl1_translate);
	if (!vsm_setup_all())
		report_summary();
	vtl0_hvc = vsm_vtl0_hvc();
	report_info("%u CPUs", cpu_count());
	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	report(s == HV_STATUS_SUCCESS, "VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX => 0x%lx", s);
	results();
	accessed_dirty();
	negative();
	if (cpu_count() >= 2)
		remote_vp();
	report_summary();
}
