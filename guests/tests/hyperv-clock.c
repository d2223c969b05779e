/*
 * Partition reference time (tlfs-vsm-facts.md §6.5): TIME_REF_COUNT counts
 * 100 ns units, partition-wide, never backwards; with hv-frequencies it
 * advances as the TSC does at TSC_FREQUENCY; the reference TSC page gives
 * ((tsc * scale) >> 64) + offset, the same time as TIME_REF_COUNT (within one
 * unit), as long as its sequence is not 0 (0 = invalid: use the MSR);
 * VP_RUNTIME (hv-runtime) advances only while the VP runs.
 * Run with --hv hv-time,hv-frequencies,hv-runtime,hv-vpindex --smp 2 (parts
 * skip without hv-frequencies / hv-runtime / a second CPU).
 */
#include "libguest.h"
#include "hyperv.h"

#define MSR_IA32_TSC 0x10
#define TIMER_VEC 0x50

static void spin_cycles(u64 cycles)
{
	u64 t = rdtsc();

	while (rdtsc() - t < cycles)
		pause();
}

/* A busy loop without PAUSE: the VP keeps running instructions the whole time. */
static void run_cycles(u64 cycles)
{
	u64 t = rdtsc();

	while (rdtsc() - t < cycles)
		barrier();
}

static u64 absdiff(u64 a, u64 b)
{
	return a > b ? a - b : b - a;
}

static void test_monotonic(void)
{
	u64 prev = hv_time_ref_count(), first = prev;
	bool ok = true;

	for (int i = 0; i < 2000 && ok; i++) {
		u64 now = hv_time_ref_count();

		if (now < prev) {
			report(false, "TIME_REF_COUNT went back from %lu to %lu", prev, now);
			ok = false;
		}
		prev = now;
	}
	report(ok, "TIME_REF_COUNT never decreases over 2000 reads (%lu -> %lu)", first, prev);
	spin_cycles(1UL << 22);
	u64 later = hv_time_ref_count();
	report(later > prev, "TIME_REF_COUNT advances during a busy loop (%lu -> %lu)", prev, later);
}

static void test_against_tsc(void)
{
	u64 hz;

	if (!hv_has_privilege(HV_PRIV_FREQUENCY_REGS)) {
		u64 t0 = rdtsc(), r0 = hv_time_ref_count();
		spin_cycles(1UL << 24);
		u64 r1 = hv_time_ref_count(), t1 = rdtsc();
		report_skip("TIME_REF_COUNT against TSC_FREQUENCY: needs hv-frequencies");
		report_info("%lu TSC cycles took %lu reference units", t1 - t0, r1 - r0);
		return;
	}
	hz = rdmsr(HV_X64_MSR_TSC_FREQUENCY);
	report(hz >= HV_REFERENCE_TIME_HZ, "TSC_FREQUENCY = %lu Hz", hz);
	report_info("APIC_FREQUENCY = %lu Hz", rdmsr(HV_X64_MSR_APIC_FREQUENCY));
	if (hz < HV_REFERENCE_TIME_HZ)
		return;
	for (int round = 0; round < 3; round++) {
		/* The reference reads sit inside the TSC interval. */
		u64 t0 = rdtsc(), r0 = hv_time_ref_count();
		spin_cycles(hz / 100 << round); /* 10, 20, 40 ms */
		u64 r1 = hv_time_ref_count(), t1 = rdtsc();
		u64 expected = (t1 - t0) * HV_REFERENCE_TIME_HZ / hz;
		u64 slack = 2 + expected / 10000;

		report(absdiff(r1 - r0, expected) <= slack,
		       "%lu TSC cycles at %lu Hz = %lu reference units; TIME_REF_COUNT advanced %lu (slack %lu)",
		       t1 - t0, hz, expected, r1 - r0, slack);
	}
}

/* Page time bracketed by two MSR reads must lie between them, give or take one unit. */
static bool page_matches_msr(const struct hv_tsc_page *page, u64 *r0_out, u64 *t_out, u64 *r1_out, u32 *seq)
{
	u64 r0 = hv_time_ref_count(), t = 0;
	bool valid = hv_tsc_page_read(page, &t, seq);
	u64 r1 = hv_time_ref_count();

	*r0_out = r0;
	*t_out = t;
	*r1_out = r1;
	return valid && t + 1 >= r0 && t <= r1 + 1;
}

static void test_tsc_page(void)
{
	struct hv_tsc_page *page;
	u64 r0, t, r1;
	u32 seq;
	int bad = 0, rounds = 200;

	if (!hv_has_privilege(HV_PRIV_PARTITION_REFERENCE_TSC)) {
		report_skip("reference TSC page: needs hv-time");
		return;
	}
	report(rdmsr(HV_X64_MSR_REFERENCE_TSC) == 0, "REFERENCE_TSC is 0 at reset");
	page = hv_tsc_page_enable();
	report(rdmsr(HV_X64_MSR_REFERENCE_TSC) == ((u64)page | HV_PAGE_MSR_ENABLE), "REFERENCE_TSC reads back 0x%lx",
	       rdmsr(HV_X64_MSR_REFERENCE_TSC));
	seq = page->sequence;
	report(seq != 0, "the enabled page is valid (sequence %u)", seq);
	report_info("TSC page: scale 0x%lx, offset %ld", page->scale, page->offset);
	if (hv_has_privilege(HV_PRIV_FREQUENCY_REGS)) {
		/* One second of TSC ticks must scale to 10^7 units (the scale is rounded either way). */
		u64 hz = rdmsr(HV_X64_MSR_TSC_FREQUENCY);
		u64 per_second = hv_tsc_page_time(hz, page->scale, 0);
		report(absdiff(per_second, HV_REFERENCE_TIME_HZ) <= 1,
		       "scale turns one second of TSC (%lu cycles) into %lu units (10^7 expected)", hz, per_second);
	}
	for (int i = 0; i < rounds; i++) {
		if (!page_matches_msr(page, &r0, &t, &r1, &seq)) {
			if (bad++ < 3)
				report(false, "page time %lu outside TIME_REF_COUNT %lu..%lu (sequence %u)", t, r0, r1, seq);
		}
		spin_cycles(1000 + 7919 * (u64)i);
	}
	report(!bad, "page time matches TIME_REF_COUNT within 1 unit in %d reads (%d off)", rounds, bad);

	/* A second page: enabling it elsewhere gives that page valid contents too. */
	struct hv_tsc_page *again = hv_tsc_page_enable();
	bool match = page_matches_msr(again, &r0, &t, &r1, &seq);
	report(match, "re-enabled at another page: time %lu within %lu..%lu (sequence %u)", t, r0, r1, seq);
}

/*
 * After this VP's TSC is written (IA32_TSC), a page that still says "valid"
 * must still give the reference time: the hypervisor either updates scale and
 * offset or marks the page invalid (sequence 0) so that the MSR is used.
 */
static void test_tsc_write(void)
{
	u64 r0, t, r1;
	u32 seq;

	if (!hv_has_privilege(HV_PRIV_PARTITION_REFERENCE_TSC))
		return;
	struct hv_tsc_page *page = hv_tsc_page_enable();
	wrmsr(MSR_IA32_TSC, rdtsc() + (1UL << 36));
	bool match = page_matches_msr(page, &r0, &t, &r1, &seq);
	if (seq == 0)
		report_info("after an IA32_TSC write the page is invalid (sequence 0): TIME_REF_COUNT is the clock");
	report(seq == 0 || match, "after an IA32_TSC write: page invalid, or its time %lu within %lu..%lu (sequence %u)",
	       t, r0, r1, seq);
	/* Enabling the page again publishes contents for the TSC as it is now. */
	page = hv_tsc_page_enable();
	match = page_matches_msr(page, &r0, &t, &r1, &seq);
	if (seq == 0)
		report_info("re-enabled after the IA32_TSC write, the page says invalid (sequence 0)");
	report(seq == 0 || match, "re-enabled after the IA32_TSC write: page invalid, or time %lu within %lu..%lu",
	       t, r0, r1);
}

static volatile u64 remote_ref;

static void read_ref(void *arg)
{
	(void)arg;
	remote_ref = hv_time_ref_count();
}

static void test_partition_wide(void)
{
	if (cpu_count() < 2) {
		report_skip("TIME_REF_COUNT on two CPUs: needs --smp 2");
		return;
	}
	u64 r0 = hv_time_ref_count();
	on_cpu(1, read_ref, NULL);
	u64 r1 = hv_time_ref_count();
	report(r0 <= remote_ref && remote_ref <= r1, "CPU 1 reads TIME_REF_COUNT %lu between CPU 0's %lu and %lu",
	       remote_ref, r0, r1);
}

static volatile u64 timer_fired;

static void timer_handler(struct ex_regs *regs)
{
	(void)regs;
	timer_fired++;
	apic_eoi();
}

static void test_vp_runtime(void)
{
	if (!hv_has_privilege(HV_PRIV_VP_RUNTIME)) {
		report_skip("VP_RUNTIME: needs hv-runtime");
		return;
	}
	u64 v0 = rdmsr(HV_X64_MSR_VP_RUNTIME), r0 = hv_time_ref_count();
	run_cycles(1UL << 23);
	u64 v1 = rdmsr(HV_X64_MSR_VP_RUNTIME), r1 = hv_time_ref_count();
	/* Running all along, the VP accrues most of the elapsed time, and never more than it. */
	report(v1 - v0 >= (r1 - r0) / 2 && v1 - v0 <= r1 - r0 + 1,
	       "busy: VP_RUNTIME advanced %lu units, reference time %lu", v1 - v0, r1 - r0);

	if (!cpu_has_tsc_deadline()) {
		report_skip("VP_RUNTIME while halted: needs the TSC-deadline timer");
		return;
	}
	handle_exception(TIMER_VEC, timer_handler);
	v0 = rdmsr(HV_X64_MSR_VP_RUNTIME);
	r0 = hv_time_ref_count();
	apic_tsc_deadline_start(TIMER_VEC, rdtsc() + (1UL << 24));
	while (!timer_fired)
		safe_halt();
	v1 = rdmsr(HV_X64_MSR_VP_RUNTIME);
	r1 = hv_time_ref_count();
	report(r1 - r0 > 100 && v1 - v0 < (r1 - r0) / 2,
	       "halted: VP_RUNTIME advanced %lu units while reference time advanced %lu", v1 - v0, r1 - r0);
	handle_exception(TIMER_VEC, NULL);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_PARTITION_REFERENCE_COUNTER)) {
		report_skip("TIME_REF_COUNT not available: run with --hv hv-time");
		report_summary();
	}
	test_monotonic();
	test_against_tsc();
	test_partition_wide();
	test_vp_runtime();
	test_tsc_page();
	test_tsc_write(); /* last: it moves this CPU's TSC */
	report_summary();
}
