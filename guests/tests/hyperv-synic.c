/*
 * SynIC interrupts driven from "the host side" through QEMU's hyperv-testdev
 * at port 0x3000 (pc-platform-facts.md §2.6), on every CPU, in the manner of
 * kvm-unit-tests' hyperv_synic (our own code). Rules (tlfs-vsm-facts.md §4.1,
 * §4.2):
 * - an asserted SINT raises its vector on the VP it belongs to, once;
 * - AutoEOI SINTs leave the ISR as the interrupt is taken (the handler must
 *   not EOI); the others stay in service until the handler's EOI;
 * - a masked SINT, or any SINT while SCONTROL.Enable is 0, raises nothing,
 *   and the assertion is lost (nothing arrives when it is enabled again);
 * - a SINT in polling mode raises nothing (CPUID 0x40000003 EDX bit 17).
 * Every CPU's 16 SINTs get vectors 0xB0-0xBF, odd SINTs AutoEOI. Each CPU is
 * targeted from CPU 0, and CPU 0 also from CPU 1.
 * Run with --hv hv-vpindex,hv-synic --smp 4.
 */
#include "libguest.h"
#include "hyperv.h"

#define VEC_BASE 0xb0
/* TSC cycles: waits use the TSC, so the guest needs no hv-time. */
#define QUIET (1UL << 22) /* long enough for anything pending to arrive */
#define WAIT (1UL << 30)

static volatile u64 count[MAX_CPUS][HV_SYNIC_SINT_COUNT];
static volatile u64 isr_wrong[MAX_CPUS];
static u32 vp_of[MAX_CPUS];

static bool auto_eoi(unsigned sint) { return sint & 1; }

static void sint_handler(struct ex_regs *regs)
{
	unsigned cpu = smp_id(), sint = regs->vector - VEC_BASE;
	bool in_service = apic_isr_test(regs->vector);

	if (in_service == auto_eoi(sint))
		isr_wrong[cpu]++;
	count[cpu][sint]++;
	if (!auto_eoi(sint))
		apic_eoi();
}

static void setup_cpu(void *arg)
{
	(void)arg;
	vp_of[smp_id()] = hv_vp_index();
	hv_synic_enable();
	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
		hv_sint_set(s, VEC_BASE + s, auto_eoi(s) ? HV_SINT_AUTO_EOI : 0);
}

static void teardown_cpu(void *arg)
{
	(void)arg;
	hv_synic_disable();
}

static bool wait_count(volatile u64 *c, u64 want)
{
	u64 end = rdtsc() + WAIT;

	while (*c < want)
		if (rdtsc() > end)
			return false;
		else
			pause();
	return true;
}

static void quiet(void)
{
	u64 end = rdtsc() + QUIET;

	while (rdtsc() < end)
		pause();
}

static u64 total(unsigned cpu)
{
	u64 n = 0;

	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
		n += count[cpu][s];
	return n;
}

/* Assert every SINT of `target` once through the test device and check each arrived once. */
static void fire_all(unsigned target, const char *from)
{
	u64 before[HV_SYNIC_SINT_COUNT], others[MAX_CPUS];
	bool all = true, elsewhere = false;

	for (unsigned c = 0; c < cpu_count(); c++)
		others[c] = total(c);
	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++) {
		before[s] = count[target][s];
		hv_sint_route_set(vp_of[target], s);
	}
	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
		all &= wait_count(&count[target][s], before[s] + 1);
	quiet();
	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
		all &= count[target][s] == before[s] + 1;
	for (unsigned c = 0; c < cpu_count(); c++)
		elsewhere |= c != target && total(c) != others[c];
	report(all, "SINT0-15 of CPU %u (VP %u) asserted from %s: each vector 0x%x-0x%x arrived once on CPU %u",
	       target, vp_of[target], from, VEC_BASE, VEC_BASE + 15, target);
	report(!elsewhere, "and no other CPU got any of them");
}

static void fire_from_cpu1(void *arg)
{
	(void)arg;
	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
		hv_sint_route_set(vp_of[0], s);
}

static void set_sint(void *arg)
{
	u64 v = (u64)arg;

	wrmsr(HV_X64_MSR_SINT(v >> 32), (u32)v);
}

static void set_scontrol(void *arg)
{
	wrmsr(HV_X64_MSR_SCONTROL, (u64)arg);
}

/* SINT 4 of `target` in another state: nothing may arrive; nor after it is restored. */
static void test_no_delivery(unsigned target, const char *state, u64 sint_value, bool scontrol_off)
{
	const unsigned s = 4;
	u64 before = count[target][s];

	if (scontrol_off)
		on_cpu(target, set_scontrol, (void *)0UL);
	else
		on_cpu(target, set_sint, (void *)((u64)s << 32 | sint_value));
	hv_sint_route_set(vp_of[target], s);
	quiet();
	u64 during = count[target][s] - before;
	if (scontrol_off)
		on_cpu(target, set_scontrol, (void *)HV_SCONTROL_ENABLE);
	else
		on_cpu(target, set_sint, (void *)((u64)s << 32 | (VEC_BASE + s)));
	quiet();
	u64 after = count[target][s] - before;
	report(during == 0 && after == 0, "CPU %u: SINT%u %s: no interrupt, none after restoring it (%lu, %lu)",
	       target, s, state, during, after);
	/* And it works again. */
	hv_sint_route_set(vp_of[target], s);
	report(wait_count(&count[target][s], before + 1), "CPU %u: SINT%u delivers again once restored", target, s);
}

int main(int argc, char **argv)
{
	unsigned n = cpu_count();

	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_SYNIC_REGS) || !hv_has_privilege(HV_PRIV_VP_INDEX)) {
		report_skip("SynIC not available: run with --hv hv-vpindex,hv-synic");
		report_summary();
	}
	for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
		handle_exception(VEC_BASE + s, sint_handler);
	on_cpus(setup_cpu, NULL);
	for (unsigned c = 0; c < n; c++)
		for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
			hv_sint_route_create(vp_of[c], s);

	for (unsigned c = 0; c < n; c++)
		fire_all(c, "CPU 0");
	if (n > 1) {
		u64 before = total(0);
		on_cpu(1, fire_from_cpu1, NULL);
		quiet();
		report(total(0) == before + HV_SYNIC_SINT_COUNT,
		       "SINT0-15 of CPU 0 asserted from CPU 1: %lu interrupts on CPU 0", total(0) - before);
	} else {
		report_skip("SINTs asserted from another CPU: needs --smp 2");
	}
	for (unsigned c = 0; c < n; c++)
		report(!isr_wrong[c], "CPU %u: AutoEOI SINTs out of service in the handler, the others in service (%lu wrong)",
		       c, isr_wrong[c]);

	unsigned target = n > 1 ? 1 : 0;
	test_no_delivery(target, "masked", HV_SINT_MASKED | (VEC_BASE + 4), false);
	test_no_delivery(target, "with SCONTROL.Enable = 0", 0, true);
	if (hv_has_feature(HV_FEAT_SINT_POLLING)) {
		test_no_delivery(target, "in polling mode", HV_SINT_POLLING | (VEC_BASE + 4), false);
	} else {
		u64 before = count[target][4];
		on_cpu(target, set_sint, (void *)(4UL << 32 | HV_SINT_POLLING | (VEC_BASE + 4)));
		hv_sint_route_set(vp_of[target], 4);
		quiet();
		report_skip("SINT polling mode not advertised (CPUID 0x40000003 EDX bit 17)");
		report_info("a polling SINT raised %lu interrupts", count[target][4] - before);
		on_cpu(target, set_sint, (void *)(4UL << 32 | (VEC_BASE + 4)));
	}

	for (unsigned c = 0; c < n; c++)
		for (unsigned s = 0; s < HV_SYNIC_SINT_COUNT; s++)
			hv_sint_route_destroy(vp_of[c], s);
	for (unsigned c = 1; c < n; c++)
		on_cpu(c, teardown_cpu, NULL);
	teardown_cpu(NULL);
	report_summary();
}
