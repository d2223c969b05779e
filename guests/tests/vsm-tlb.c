/*
 * TLB locks (tlfs-vsm-facts.md §3.9, §3.7, §5.1, §4.5, §2.2-§2.4), with
 * the VSM library (lib/vsm.h). Needs 2 CPUs or more.
 *
 * Each scenario: the holders (VP1, and VP2 too with 4 CPUs or more) read a
 * fresh VA in VTL0, so their TLBs hold its frame A; then VTL1 on each
 * holder locks its VP's VTL0 TLB and tells VP0. VP0 points the VA at frame
 * B without invalidating anything and flushes the other VPs with a
 * hypercall. Each holder's VTL1 then watches VP0's progress counter: VP0
 * raised it right before the flush and raises it again right after. The
 * machine gives every other VP a quantum each time a VP PAUSEs, so the
 * counter staying put for many PAUSEs means VP0 really is stuck in the
 * flush. Holders release in turn (VP2 only after VP1 released, and then
 * still sees VP0 stuck: the flush waits for every lock). Then the flush
 * returns SUCCESS and every VP it targeted reads frame B.
 *
 * How the lock is taken and released, one scenario each:
 *  - SetVpRegisters(VsmVpSecureConfigVtl0.TlbLocked) (§3.7), released by
 *    clearing the bit while still in VTL1; FlushVirtualAddressSpace;
 *  - the same bit, released by VtlReturn (it then reads 0);
 *    FlushVirtualAddressList;
 *  - TranslateVirtualAddress with TlbFlushInhibit (§5.1; its result is
 *    the frame A translation), released by VtlReturn;
 *  - a GPA intercept with a valid GVA (§4.5: TlbLocked in the message),
 *    released when VTL1's message handler returns; a flush of all
 *    processors.
 * And WaitForTlbLock (§3.9): VP0's VTL1 writes Wait = 1 for VTL0 while VP1
 * holds its lock; VP0 does not get back to VTL0 until VP1 releases.
 * Negative cases: SecureConfigVtl0 with reserved or unsupported bits,
 * from VTL0.
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm,hv-tlbflush at 2 or 4
 * CPUs; the counts in test/guests/vsm-protect.test.ts depend on it.
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"

enum { CMD_HOLD = VSM_CMD_USER, CMD_GET_SECURE, CMD_SET_SECURE, CMD_WAIT_TLB };
/* How a holder takes and releases its lock. */
enum { HOLD_CLEAR_BIT, HOLD_RETURN, HOLD_TRANSLATE, HOLD_INTERCEPT, HOLD_FOR_WAIT };

#define VA_BASE 0x3000000000UL   /* outside the identity map */
#define PATTERN_A 0xaaaaaaaa00000001UL
#define PATTERN_B 0xbbbbbbbb00000002UL
#define WATCH_PAUSES 64          /* PAUSEs a holder watches VP0 for */
#define TIMEOUT (1UL << 32)
#define PROTECTION_CONFIG (HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX))

static struct vsm_hvc vtl0_hvc;
static u64 frame_a, frame_b;
static unsigned holders;                 /* VPs 1..holders hold locks */

/* Shared between the VPs and VTLs. */
static volatile u64 progress;            /* VP0: 1 before its flush (or VtlCall), 2 after */
static volatile u64 locked;              /* holders that have their lock */
static volatile u64 released;            /* holders that have released it */
static struct holder {
	u64 mode, va;
	u64 lock_status, secure_after_set;    /* SetVpRegisters(TlbLocked) and the value read back */
	u64 translate_status;
	struct hv_translate_output translated;
	u64 stuck;                           /* VP0 did not move while this holder watched */
	u64 stuck_after_release;             /* ... and not before the earlier holders released */
	u64 release_status;
	u64 done_after_release;              /* VP0 got past the flush once every holder released */
	u64 access_info;                     /* HOLD_INTERCEPT: MemoryAccessInfo of the message */
	u64 before, after;                   /* VTL0 reads of the VA before the lock and after the flush */
	u64 secure_after_return;             /* SecureConfigVtl0 at the next entry after the VtlReturn */
} hold[MAX_CPUS];

// ---------------------------------------------------------------- VTL1

static u64 secure_config(struct vsm_vp *vp)
{
	u64 v[2];

	if (vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, v) != HV_STATUS_SUCCESS)
		return ~0UL;
	return v[0];
}

/* Whether *counter stays at `value` for WATCH_PAUSES PAUSEs (each one lets every other VP run a quantum). */
static bool stays(volatile u64 *counter, u64 value)
{
	for (unsigned i = 0; i < WATCH_PAUSES; i++) {
		if (*counter != value)
			return false;
		pause();
	}
	return *counter == value;
}

/*
 * The holder's part once its lock is taken: tell VP0, wait for its flush
 * (or VtlCall) to start and for the holders before this one to release,
 * and watch VP0 stay stuck. No printing: this may run in an intercept.
 */
static void watch(struct vsm_vp *vp)
{
	unsigned me = vp->cpu - 1;

	__atomic_add_fetch(&locked, 1, __ATOMIC_SEQ_CST);
	hold[vp->cpu].stuck = wait_until_at_least(&progress, 1, TIMEOUT) && stays(&progress, 1);
	hold[vp->cpu].stuck_after_release = wait_until_at_least(&released, me, TIMEOUT) && released == me && stays(&progress, 1);
}

static u64 vtl1_hold(struct vsm_vp *vp, struct vsm_regs *regs)
{
	struct holder *h = &hold[vp->cpu];

	(void)regs;
	if (h->mode == HOLD_TRANSLATE) {
		u64 flags = HV_TRANSLATE_GVA_VALIDATE_READ | HV_TRANSLATE_GVA_TLB_FLUSH_INHIBIT | HV_TRANSLATE_GVA_INPUT_VTL(HV_INPUT_VTL(0));
		h->translate_status = vsm_translate(&vp->hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, flags, h->va >> HV_PAGE_SHIFT,
						    &h->translated);
	} else {
		h->lock_status = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0,
					     HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED);
		h->secure_after_set = secure_config(vp);
	}
	if (h->mode == HOLD_FOR_WAIT) {
		/* VP0's VTL1 writes WaitForTlbLock, then VtlReturns: progress 1; its VTL0 runs again: progress 2. */
		__atomic_add_fetch(&locked, 1, __ATOMIC_SEQ_CST);
		h->stuck = wait_until_at_least(&progress, 1, TIMEOUT) && stays(&progress, 1);
	} else {
		watch(vp);
	}
	if (h->mode == HOLD_CLEAR_BIT || h->mode == HOLD_FOR_WAIT) {
		h->release_status = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, 0);
		__atomic_add_fetch(&released, 1, __ATOMIC_SEQ_CST);
		/* Still in VTL1: the cleared bit alone lets VP0 go on. */
		if (vp->cpu == holders || h->mode == HOLD_FOR_WAIT)
			h->done_after_release = wait_until_at_least(&progress, 2, TIMEOUT);
	} else {
		__atomic_add_fetch(&released, 1, __ATOMIC_SEQ_CST); /* by the VtlReturn that follows */
	}
	return 0;
}

static u64 vtl1_get_secure(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return secure_config(vp);
}

/* SetVpRegisters(VsmVpSecureConfigVtl0 = arg0); returns the status. */
static u64 vtl1_set_secure(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, vp->arg[0]);
}

/* WaitForTlbLock for VTL0 on this VP (§3.9); VP0 leaves progress at 1 until its VTL0 runs again. */
static u64 vtl1_wait_tlb(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	u64 s = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_VSM_VP_WAIT_FOR_TLB_LOCK, HV_VSM_WAIT_FOR_TLB_LOCK);
	progress = 1;
	return s;
}

/* HOLD_INTERCEPT: VTL0 faulted on a protected page; VTL1 holds its TLB lock until this entry returns (§4.5, §3.9). */
static void on_message(struct vsm_vp *vp, const struct hv_message *m)
{
	const struct hv_memory_intercept *p = (const void *)m->payload;
	u64 page = p->gpa >> HV_PAGE_SHIFT;

	hold[vp->cpu].access_info = p->access_info;
	watch(vp);
	vsm_modify_protection(&vp->hvc, HV_PARTITION_ID_SELF, HV_MAP_GPA_RWX, HV_INPUT_VTL_SELF, &page, 1);
	__atomic_add_fetch(&released, 1, __ATOMIC_SEQ_CST);
}

// ---------------------------------------------------------------- VTL0

static void holder(void *arg)
{
	struct holder *h = &hold[smp_id()];

	(void)arg;
	h->before = readq(h->va);
	if (h->mode == HOLD_INTERCEPT) {
		u64 *page = alloc_page();
		u64 r = vsm_call(VSM_CMD_PROTECT_PAGE, (u64)page >> HV_PAGE_SHIFT, 0, 0);
		if (HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS)
			(void)*(volatile u64 *)page; /* the intercept: VTL1 holds the lock while it handles it */
	} else {
		vsm_call(CMD_HOLD, 0, 0, 0);
	}
	if (h->mode == HOLD_FOR_WAIT)
		return;
	wait_until_at_least(&progress, 2, TIMEOUT);
	h->after = readq(h->va);
}

static void get_secure(void *arg) { (void)arg; hold[smp_id()].secure_after_return = vsm_call(CMD_GET_SECURE, 0, 0, 0); }
static void read_before(void *arg) { (void)arg; hold[smp_id()].before = readq(hold[smp_id()].va); }
static void read_after(void *arg) { (void)arg; hold[smp_id()].after = readq(hold[smp_id()].va); }

static u64 others_mask(void)
{
	u64 m = 0;

	for (unsigned cpu = 1; cpu < cpu_count(); cpu++)
		m |= BIT(hv_vp_of[cpu]);
	return m;
}

static u64 flush_space(u64 va)
{
	struct hv_flush_input *in = hv_input_page();

	(void)va;
	in->address_space = read_cr3();
	in->flags = 0;
	in->processor_mask = others_mask();
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)in, 0);
}

static u64 flush_list(u64 va)
{
	struct hv_flush_input *in = hv_input_page();

	in->address_space = read_cr3();
	in->flags = 0;
	in->processor_mask = others_mask();
	in->gva_list[0] = HV_GVA_RANGE(va, 0);
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(1), (u64)in, 0);
}

static u64 flush_all_processors(u64 va)
{
	struct hv_flush_input *in = hv_input_page();

	(void)va;
	in->address_space = read_cr3();
	in->flags = HV_FLUSH_ALL_PROCESSORS | HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
	in->processor_mask = 0;
	return hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)in, 0);
}

static const char *const mode_name[] = {
	[HOLD_CLEAR_BIT] = "SecureConfigVtl0.TlbLocked, cleared in VTL1",
	[HOLD_RETURN] = "SecureConfigVtl0.TlbLocked, released by VtlReturn",
	[HOLD_TRANSLATE] = "TranslateVirtualAddress(TlbFlushInhibit), released by VtlReturn",
	[HOLD_INTERCEPT] = "a GPA intercept, released when VTL1 returns",
};

static void scenario(unsigned mode, u64 (*flush)(u64 va), const char *flush_name)
{
	static unsigned n;
	u64 va = VA_BASE + 0x1000UL * n++;
	const char *name = mode_name[mode];

	map_4k(kernel_root, va, frame_a, PTE_W);
	progress = locked = released = 0;
	for (unsigned cpu = 1; cpu < cpu_count(); cpu++) {
		memset(&hold[cpu], 0, sizeof(hold[cpu]));
		hold[cpu].mode = mode;
		hold[cpu].va = va;
		if (cpu > holders)
			on_cpu(cpu, read_before, NULL);
	}
	for (unsigned cpu = 1; cpu <= holders; cpu++)
		on_cpu_async(cpu, holder, NULL);
	bool all_locked = wait_until_at_least(&locked, holders, TIMEOUT);
	remap(kernel_root, va, frame_b);
	invlpg((void *)va);
	progress = 1;
	u64 r = flush(va);
	progress = 2;
	for (unsigned cpu = 1; cpu <= holders; cpu++)
		on_cpu_wait(cpu);
	for (unsigned cpu = holders + 1; cpu < cpu_count(); cpu++)
		on_cpu(cpu, read_after, NULL);

	report(all_locked && HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && released == holders,
	       "%s: %s from VP%u => SUCCESS (0x%lx) once all %u holder(s) released", name, flush_name, hv_vp_of[0], r, holders);
	for (unsigned cpu = 1; cpu <= holders; cpu++) {
		struct holder *h = &hold[cpu];
		u32 idx = hv_vp_of[cpu];
		switch (mode) {
		case HOLD_CLEAR_BIT:
		case HOLD_RETURN:
			report(h->lock_status == HV_STATUS_SUCCESS && h->secure_after_set == HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED,
			       "%s: VP%u VTL1: SetVpRegisters(SecureConfigVtl0 = TlbLocked) => 0x%lx, reads 0x%lx", name, idx,
			       h->lock_status, h->secure_after_set);
			break;
		case HOLD_TRANSLATE:
			report(h->translate_status == HV_STATUS_SUCCESS &&
			       h->translated.result == HV_TRANSLATE_RESULT(HV_TRANSLATE_GVA_SUCCESS, HV_CACHE_TYPE_WB, false) &&
			       h->translated.gpa_page == frame_a >> HV_PAGE_SHIFT,
			       "%s: VP%u VTL1: TranslateVirtualAddress(VTL0, 0x%lx) => 0x%lx, result 0x%lx, GPA page 0x%lx (frame A)", name,
			       idx, va, h->translate_status, h->translated.result, h->translated.gpa_page);
			break;
		case HOLD_INTERCEPT:
			report(h->access_info == (HV_MEMORY_ACCESS_GVA_VALID | HV_MEMORY_ACCESS_GVA_GPA_VALID | HV_MEMORY_ACCESS_TLB_LOCKED),
			       "%s: VP%u: the message's MemoryAccessInfo 0x%lx: GvaValid, GvaGpaValid, TlbLocked", name, idx, h->access_info);
			break;
		}
		report(h->stuck, "%s: VP%u VTL1 locked, VP%u stayed inside its flush for %u PAUSEs", name, idx, hv_vp_of[0], WATCH_PAUSES);
		if (cpu > 1)
			report(h->stuck_after_release, "%s: VP%u still holds: VP%u stayed inside its flush after VP%u released", name, idx,
			       hv_vp_of[0], hv_vp_of[cpu - 1]);
		if (mode == HOLD_CLEAR_BIT) {
			report(h->release_status == HV_STATUS_SUCCESS, "%s: VP%u VTL1: SetVpRegisters(SecureConfigVtl0 = 0) => 0x%lx", name, idx,
			       h->release_status);
			if (cpu == holders)
				report(h->done_after_release, "%s: VP%u VTL1, still in VTL1: VP%u's flush returned after the last release", name,
				       idx, hv_vp_of[0]);
		}
		report(h->before == PATTERN_A && h->after == PATTERN_B,
		       "%s: VP%u VTL0 read 0x%lx before and 0x%lx after the flush (frames A, B)", name, idx, h->before, h->after);
		if (mode == HOLD_RETURN) {
			on_cpu(cpu, get_secure, NULL);
			report(h->secure_after_return == 0, "%s: VP%u VTL1, next entry: SecureConfigVtl0 reads 0x%lx (TlbLocked went with the VtlReturn)",
			       name, idx, h->secure_after_return);
		}
	}
	for (unsigned cpu = holders + 1; cpu < cpu_count(); cpu++)
		report(hold[cpu].before == PATTERN_A && hold[cpu].after == PATTERN_B,
		       "%s: VP%u (no lock) VTL0 read 0x%lx before and 0x%lx after the flush", name, hv_vp_of[cpu], hold[cpu].before,
		       hold[cpu].after);
	unmap(kernel_root, va);
	invlpg((void *)va);
}

/* WaitForTlbLock (§3.9): VP0 does not get back to VTL0 while VP1 holds the VTL0 lock it held at the write. */
static void wait_for_tlb_lock(void)
{
	struct holder *h = &hold[1];

	progress = locked = released = 0;
	memset(h, 0, sizeof(*h));
	h->mode = HOLD_FOR_WAIT;
	on_cpu_async(1, holder, NULL);
	bool is_locked = wait_until_at_least(&locked, 1, TIMEOUT);
	u64 s = vsm_call(CMD_WAIT_TLB, 0, 0, 0);
	progress = 2;
	on_cpu_wait(1);
	report(is_locked && s == HV_STATUS_SUCCESS, "VP%u VTL1: SetVpRegisters(WaitForTlbLock of VTL0 = Wait) while VP%u holds its lock => 0x%lx",
	       hv_vp_of[0], hv_vp_of[1], s);
	report(h->stuck, "VP%u did not resume VTL0 for %u PAUSEs of VP%u, which held its lock", hv_vp_of[0], WATCH_PAUSES, hv_vp_of[1]);
	report(h->release_status == HV_STATUS_SUCCESS && h->done_after_release && released == 1,
	       "VP%u resumed VTL0 once VP%u cleared TlbLocked (0x%lx)", hv_vp_of[0], hv_vp_of[1], h->release_status);
}

static void secure_config_negative(void)
{
	u64 s = vsm_call(CMD_SET_SECURE, BIT(4), 0, 0);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "VTL1: SecureConfigVtl0 with reserved bit 4 => INVALID_REGISTER_VALUE (0x%lx)", s);
	s = vsm_call(CMD_SET_SECURE, BIT(0), 0, 0);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "VTL1: SecureConfigVtl0.MbecEnabled (no MBEC) => INVALID_REGISTER_VALUE (0x%lx)", s);
	u64 cfg = vsm_call(CMD_GET_SECURE, 0, 0, 0);
	report(cfg == 0, "VTL1: SecureConfigVtl0 still reads 0x%lx", cfg);
	s = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: SetVpRegisters(SecureConfigVtl0) of its own VTL => ACCESS_DENIED (0x%lx)", s);
	s = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(1), HV_REG_VSM_VP_SECURE_CONFIG_VTL0, HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: SetVpRegisters(SecureConfigVtl0) of VTL1 => ACCESS_DENIED (0x%lx)", s);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	if (cpu_count() < 2) {
		report_skip("TLB locks need a second VP");
		report_summary();
	}
	vsm_register_command(CMD_HOLD, vtl1_hold);
	vsm_register_command(CMD_GET_SECURE, vtl1_get_secure);
	vsm_register_command(CMD_SET_SECURE, vtl1_set_secure);
	vsm_register_command(CMD_WAIT_TLB, vtl1_wait_tlb);
	vsm_register_message_handler(on_message);
	if (!vsm_setup_all())
		report_summary();
	vtl0_hvc = vsm_vtl0_hvc();
	holders = cpu_count() >= 4 ? 2 : 1;
	report_info("%u CPUs, %u holder(s)", cpu_count(), holders);
	frame_a = (u64)alloc_page();
	frame_b = (u64)alloc_page();
	writeq(frame_a, PATTERN_A);
	writeq(frame_b, PATTERN_B);
	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	report(s == HV_STATUS_SUCCESS, "VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX => 0x%lx", s);
	secure_config_negative();
	scenario(HOLD_CLEAR_BIT, flush_space, "FlushVirtualAddressSpace");
	scenario(HOLD_RETURN, flush_list, "FlushVirtualAddressList");
	scenario(HOLD_TRANSLATE, flush_space, "FlushVirtualAddressSpace");
	scenario(HOLD_INTERCEPT, flush_all_processors, "FlushVirtualAddressSpace(all processors)");
	wait_for_tlb_lock();
	report_summary();
}
