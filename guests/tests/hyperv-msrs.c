/*
 * Hyper-V synthetic MSR rules (tlfs-vsm-facts.md §1.4, §3.3, §4.1, §6.5):
 * - GUEST_OS_ID and HYPERCALL: partition-wide; the hypercall page enables only
 *   with a non-zero guest OS ID, is an overlay over the RAM at its GPA (the RAM
 *   shows again when it goes), is not writable (#GP), ignores bits 11:2 for
 *   its address, cannot move beyond the GPA space (#GP), goes away when the OS
 *   ID is cleared, and is immutable once Locked;
 * - VP_INDEX: read-only, and on every CPU equal to its APIC ID (the VMM's VP
 *   index is the vCPU index, which is the APIC ID; the library numbers CPUs by
 *   ascending APIC ID, so it is also the CPU number);
 * - SynIC: SVERSION = 1 and read-only, SCONTROL/SIMP/SIEFP/EOM read 0 at
 *   reset, SINTn reset value 0x10000 (masked), vectors 0-15 #GP unless masked,
 *   all of it per VP;
 * - VP assist page (hv-vapic): enable, guest read/write, disable;
 * - APIC access MSRs (hv-vapic): TPR mirrors the APIC TPR, ICR sends an IPI,
 *   EOI ends the interrupt.
 * Run with --hv hv-vpindex,hv-synic,hv-vapic --smp 4.
 */
#include "libguest.h"
#include "hyperv.h"

#define PATTERN 0x5a
#define VEC_ICR 0x61
#define WAIT (1UL << 30)

static bool page_is(const void *page, u8 value)
{
	const volatile u8 *p = page;

	for (unsigned i = 0; i < PAGE_SIZE; i++)
		if (p[i] != value)
			return false;
	return true;
}

static bool page_has(const void *page, u8 value)
{
	const volatile u8 *p = page;

	for (unsigned i = 0; i < PAGE_SIZE; i++)
		if (p[i] == value)
			return true;
	return false;
}

static void write_byte(void *p)
{
	*(volatile u8 *)p = 0xcc;
}

static volatile u64 remote_value;

static void remote_rdmsr(void *arg)
{
	remote_value = rdmsr((u32)(u64)arg);
}

static u64 rdmsr_on(unsigned cpu, u32 index)
{
	on_cpu(cpu, remote_rdmsr, (void *)(u64)index);
	return remote_value;
}

static void test_hypercall_msr(u8 *p, u8 *q)
{
	struct ex_info ex;
	u64 v;

	report(rdmsr(HV_X64_MSR_GUEST_OS_ID) == 0, "GUEST_OS_ID is 0 at reset");
	report(rdmsr(HV_X64_MSR_HYPERCALL) == 0, "HYPERCALL is 0 at reset");

	/* Without a guest OS ID the enable bit stays 0 and nothing covers the page. */
	wrmsr(HV_X64_MSR_HYPERCALL, (u64)p | HV_HYPERCALL_ENABLE);
	v = rdmsr(HV_X64_MSR_HYPERCALL);
	report(!(v & HV_HYPERCALL_ENABLE), "enable bit stays 0 while GUEST_OS_ID is 0 (HYPERCALL = 0x%lx)", v);
	report(page_is(p, PATTERN), "no hypercall page appears over the RAM while not enabled");

	wrmsr(HV_X64_MSR_GUEST_OS_ID, HV_GUEST_OS_ID_VSMVISOR_TESTS);
	v = rdmsr(HV_X64_MSR_GUEST_OS_ID);
	report(v == HV_GUEST_OS_ID_VSMVISOR_TESTS, "GUEST_OS_ID reads back 0x%lx", v);
	if (cpu_count() > 1)
		report(rdmsr_on(1, HV_X64_MSR_GUEST_OS_ID) == HV_GUEST_OS_ID_VSMVISOR_TESTS,
		       "GUEST_OS_ID is partition-wide: CPU 1 reads the same");

	wrmsr(HV_X64_MSR_HYPERCALL, (u64)p | HV_HYPERCALL_ENABLE);
	v = rdmsr(HV_X64_MSR_HYPERCALL);
	report(v == ((u64)p | HV_HYPERCALL_ENABLE), "HYPERCALL enables with a guest OS ID (0x%lx)", v);
	report(!page_is(p, PATTERN) && page_has(p, 0xc3),
	       "the hypercall page covers the RAM and contains code ending in RET (first bytes %x %x %x %x)",
	       p[0], p[1], p[2], p[3]);
	bool faulted = expect_exception(write_byte, p + 100, &ex);
	report(faulted && ex.vector == GP_VECTOR && ex.error_code == 0,
	       "writing the hypercall page is #GP(0) (vector %d, error code 0x%lx)", (int)ex.vector, ex.error_code);
	if (cpu_count() > 1)
		report(rdmsr_on(1, HV_X64_MSR_HYPERCALL) == v, "HYPERCALL is partition-wide: CPU 1 reads the same");

	/* Bits 11:2 are RsvdP: the page address is bits 63:12 whatever they hold. */
	wrmsr(HV_X64_MSR_HYPERCALL, (u64)p | HV_HYPERCALL_ENABLE | HV_HYPERCALL_RSVDP_MASK);
	v = rdmsr(HV_X64_MSR_HYPERCALL);
	report((v & ~HV_HYPERCALL_RSVDP_MASK) == ((u64)p | HV_HYPERCALL_ENABLE) && !page_is(p, PATTERN),
	       "bits 11:2 do not move or disable the page (HYPERCALL = 0x%lx)", v);
	report_info("HYPERCALL bits 11:2 written as ones read back as 0x%lx", v & HV_HYPERCALL_RSVDP_MASK);

	/* Beyond the GPA space: #GP, and the MSR keeps its value. */
	u64 beyond = 1UL << cpu_phys_addr_bits();
	unsigned vec = wrmsr_safe(HV_X64_MSR_HYPERCALL, beyond | HV_HYPERCALL_ENABLE);
	report(vec == GP_VECTOR && rdmsr(HV_X64_MSR_HYPERCALL) == v,
	       "moving the page to 0x%lx, beyond the %u-bit GPA space, is #GP (vector %d)", beyond,
	       cpu_phys_addr_bits(), (int)vec);

	/* Moving it: the old RAM shows again, the new place is covered. */
	wrmsr(HV_X64_MSR_HYPERCALL, (u64)q | HV_HYPERCALL_ENABLE);
	report(page_is(p, PATTERN) && !page_is(q, PATTERN) && page_has(q, 0xc3),
	       "moving the page uncovers the old RAM and covers the new page");

	/* Clearing the guest OS ID disables the page. */
	wrmsr(HV_X64_MSR_GUEST_OS_ID, 0);
	v = rdmsr(HV_X64_MSR_HYPERCALL);
	report(!(v & HV_HYPERCALL_ENABLE), "GUEST_OS_ID = 0 clears the enable bit (HYPERCALL = 0x%lx)", v);
	report(page_is(q, PATTERN), "and the RAM under the page shows again");
	report(!expect_exception(write_byte, q + 100, &ex), "and it is writable again");
	q[100] = PATTERN;
	wrmsr(HV_X64_MSR_GUEST_OS_ID, HV_GUEST_OS_ID_VSMVISOR_TESTS);
}

/* Last test of the guest: a locked HYPERCALL MSR stays as it is until reset. */
static void test_hypercall_lock(u8 *q)
{
	u64 locked = (u64)q | HV_HYPERCALL_ENABLE | HV_HYPERCALL_LOCKED;

	wrmsr(HV_X64_MSR_HYPERCALL, locked);
	u64 v = rdmsr(HV_X64_MSR_HYPERCALL);
	report(v == locked, "HYPERCALL with Locked reads back 0x%lx", v);
	if (!hv_has_feature(HV_FEAT_HYPERCALL_MSR_LOCK))
		report_info("CPUID 0x40000003 EDX bit 18 (hypercall MSR lock) is not advertised");
	unsigned vec = wrmsr_safe(HV_X64_MSR_HYPERCALL, 0);
	report(rdmsr(HV_X64_MSR_HYPERCALL) == v && !page_is(q, PATTERN),
	       "a locked HYPERCALL ignores a write of 0: still 0x%lx, page still there", rdmsr(HV_X64_MSR_HYPERCALL));
	report_info("the write to the locked MSR %s", vec == NO_EXCEPTION ? "was ignored silently" : "raised an exception");
}

static volatile u64 vp_index_of[MAX_CPUS];
static volatile u64 vp_index_fault[MAX_CPUS];

static void read_vp_index(void *arg)
{
	(void)arg;
	vp_index_of[smp_id()] = rdmsr(HV_X64_MSR_VP_INDEX);
	vp_index_fault[smp_id()] = wrmsr_safe(HV_X64_MSR_VP_INDEX, smp_id() + 1);
}

static void test_vp_index(void)
{
	on_cpus(read_vp_index, NULL);
	for (unsigned i = 0; i < cpu_count(); i++) {
		report(vp_index_of[i] == cpu_apic_id(i) && vp_index_of[i] == i,
		       "CPU %u: VP_INDEX %lu equals its APIC ID %u and CPU number", i, vp_index_of[i], cpu_apic_id(i));
		report(vp_index_fault[i] == GP_VECTOR, "CPU %u: writing VP_INDEX is #GP (vector %d)", i,
		       (int)vp_index_fault[i]);
	}
}

/* Run on each CPU: SynIC MSR reset values and SINT vector rules. Returns failures through report(). */
static void synic_msrs(void *arg)
{
	unsigned cpu = smp_id();
	bool all_reset = true;
	u64 v = 0;

	(void)arg;
	report(rdmsr(HV_X64_MSR_SVERSION) == HV_SYNIC_VERSION, "CPU %u: SVERSION = 1", cpu);
	report(wrmsr_safe(HV_X64_MSR_SVERSION, 1) == GP_VECTOR, "CPU %u: writing SVERSION is #GP", cpu);
	report(rdmsr(HV_X64_MSR_SCONTROL) == 0 && rdmsr(HV_X64_MSR_SIMP) == 0 && rdmsr(HV_X64_MSR_SIEFP) == 0,
	       "CPU %u: SCONTROL, SIMP, SIEFP are 0 at reset", cpu);
	report(rdmsr(HV_X64_MSR_EOM) == 0, "CPU %u: EOM reads 0", cpu);
	for (unsigned i = 0; i < HV_SYNIC_SINT_COUNT; i++) {
		v = rdmsr(HV_X64_MSR_SINT(i));
		if (v != HV_SINT_RESET_VALUE) {
			all_reset = false;
			report(false, "CPU %u: SINT%u = 0x%lx at reset, expected 0x10000", cpu, i, v);
		}
	}
	report(all_reset, "CPU %u: SINT0-15 read 0x10000 (masked, vector 0) at reset", cpu);

	unsigned sint = cpu % HV_SYNIC_SINT_COUNT;
	u32 msr = HV_X64_MSR_SINT(sint);
	report(wrmsr_safe(msr, 15) == GP_VECTOR && rdmsr(msr) == HV_SINT_RESET_VALUE,
	       "CPU %u: SINT%u with vector 15 unmasked is #GP and changes nothing", cpu, sint);
	report(wrmsr_safe(msr, 0) == GP_VECTOR, "CPU %u: SINT%u with vector 0 unmasked is #GP", cpu, sint);
	report(wrmsr_safe(msr, HV_SINT_MASKED | 15) == NO_EXCEPTION && rdmsr(msr) == (HV_SINT_MASKED | 15),
	       "CPU %u: a masked SINT may hold vector 15", cpu);
	report(wrmsr_safe(msr, 16) == NO_EXCEPTION && rdmsr(msr) == 16, "CPU %u: vector 16 unmasked is accepted", cpu);
	v = 0xff | HV_SINT_AUTO_EOI;
	report(wrmsr_safe(msr, v) == NO_EXCEPTION && rdmsr(msr) == v, "CPU %u: vector 255 with AutoEOI reads back", cpu);
	wrmsr(msr, HV_SINT_RESET_VALUE);
	report(rdmsr(msr) == HV_SINT_RESET_VALUE, "CPU %u: the reset value writes back", cpu);
}

static void set_sint3(void *arg)
{
	wrmsr(HV_X64_MSR_SINT(3), (u64)arg);
}

static void test_synic(void)
{
	for (unsigned i = 0; i < cpu_count(); i++)
		on_cpu(i, synic_msrs, NULL);
	if (cpu_count() < 2) {
		report_skip("SynIC registers per VP: needs --smp 2");
		return;
	}
	set_sint3((void *)0x40UL);
	u64 other = rdmsr_on(1, HV_X64_MSR_SINT(3));
	report(other == HV_SINT_RESET_VALUE, "SINT3 is per VP: CPU 0 set 0x40, CPU 1 still reads 0x%lx", other);
	on_cpu(1, set_sint3, (void *)0x41UL);
	report(rdmsr(HV_X64_MSR_SINT(3)) == 0x40, "CPU 1 setting its SINT3 leaves CPU 0's");
	set_sint3((void *)HV_SINT_RESET_VALUE);
	on_cpu(1, set_sint3, (void *)HV_SINT_RESET_VALUE);
}

static void test_vp_assist_page(void)
{
	u64 *page = alloc_page();

	if (!hv_has_privilege(HV_PRIV_INTR_CTRL_REGS)) {
		report_skip("VP assist page: needs hv-vapic");
		return;
	}
	report(rdmsr(HV_X64_MSR_VP_ASSIST_PAGE) == 0, "VP_ASSIST_PAGE is 0 at reset");
	wrmsr(HV_X64_MSR_VP_ASSIST_PAGE, (u64)page | HV_PAGE_MSR_ENABLE);
	report(rdmsr(HV_X64_MSR_VP_ASSIST_PAGE) == ((u64)page | HV_PAGE_MSR_ENABLE), "VP_ASSIST_PAGE enables at 0x%lx",
	       (u64)page);
	page[100] = 0x1122334455667788UL;
	report(readq((u64)&page[100]) == 0x1122334455667788UL, "the enabled VP assist page is guest read/write");
	wrmsr(HV_X64_MSR_VP_ASSIST_PAGE, 0);
	report(rdmsr(HV_X64_MSR_VP_ASSIST_PAGE) == 0, "VP_ASSIST_PAGE disables");
}

static volatile u64 icr_count;
static volatile bool icr_isr_set_in_handler;

static void icr_handler(struct ex_regs *regs)
{
	(void)regs;
	icr_isr_set_in_handler = apic_isr_test(VEC_ICR);
	icr_count++;
	wrmsr(HV_X64_MSR_EOI, 0); /* the EOI MSR ends the interrupt like an APIC EOI */
}

static void test_apic_msrs(void)
{
	if (!hv_has_privilege(HV_PRIV_INTR_CTRL_REGS)) {
		report_skip("APIC access MSRs: need hv-vapic");
		return;
	}
	wrmsr(HV_X64_MSR_TPR, 0x30);
	report(apic_get_tpr() == 0x30, "TPR MSR write 0x30 sets the APIC TPR (reads 0x%x)", apic_get_tpr());
	apic_set_tpr(0x20);
	report(rdmsr(HV_X64_MSR_TPR) == 0x20, "TPR MSR reads the APIC TPR (0x%lx)", rdmsr(HV_X64_MSR_TPR));
	apic_set_tpr(0);

	handle_exception(VEC_ICR, icr_handler);
	/* ICR bits 31:0 are the APIC's ICR low: fixed, self shorthand. */
	wrmsr(HV_X64_MSR_ICR, APIC_DEST_SELF | APIC_DM_FIXED | APIC_INT_ASSERT | VEC_ICR);
	u64 t = rdtsc();
	while (!icr_count && rdtsc() - t < WAIT)
		pause();
	report(icr_count == 1, "ICR MSR sends a self IPI (%lu delivered)", icr_count);
	report(icr_isr_set_in_handler, "the vector was in service in the handler");
	report(!apic_isr_test(VEC_ICR), "EOI MSR cleared it from the ISR");
	handle_exception(VEC_ICR, NULL);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present()) {
		report_skip("no Hyper-V interface: run with --hv hv-vpindex,hv-synic,hv-vapic");
		report_summary();
	}
	u8 *p = alloc_page(), *q = alloc_page();
	memset(p, PATTERN, PAGE_SIZE);
	memset(q, PATTERN, PAGE_SIZE);

	test_hypercall_msr(p, q);
	if (hv_has_privilege(HV_PRIV_VP_INDEX))
		test_vp_index();
	else
		report_skip("VP_INDEX: needs hv-vpindex");
	if (hv_has_privilege(HV_PRIV_SYNIC_REGS))
		test_synic();
	else
		report_skip("SynIC MSRs: need hv-synic");
	test_vp_assist_page();
	test_apic_msrs();
	wrmsr(HV_X64_MSR_HYPERCALL, (u64)q | HV_HYPERCALL_ENABLE);
	test_hypercall_lock(q);
	report_summary();
}
