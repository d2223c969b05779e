/*
 * Local APIC timer: one-shot, periodic, divide configuration, TSC-deadline
 * and masking. Timing checks only compare the timer with itself or with the
 * TSC in order and in wide ratios, so any correct clock rate passes.
 * Rules: Intel SDM vol. 3 11.5.4 (APIC timer), 11.5.4.1 (TSC-deadline mode),
 * pc-platform-facts 2.5 (divide encoding).
 */
#include "libguest.h"

#define VEC_TIMER 0x50
#define WAIT (1UL << 35)     /* generous TSC timeout for events that take microseconds (QEMU threads may be starved on a loaded host) */
#define QUIET (1UL << 22)    /* TSC cycles to watch for an interrupt that must not come */

static volatile u64 ticks, last_tick_tsc;

static void timer_handler(struct ex_regs *regs)
{
	(void)regs;
	last_tick_tsc = rdtsc();
	ticks++;
	apic_eoi();
}

static void delay(u64 cycles)
{
	u64 t = rdtsc();

	while (rdtsc() - t < cycles)
		pause();
}

static bool wait_ticks(u64 want)
{
	u64 t = rdtsc();

	while (ticks < want) {
		if (rdtsc() - t > WAIT)
			return false;
		pause();
	}
	return true;
}

static void test_registers(void)
{
	u32 lvr = apic_read(APIC_LVR), maxlvt = (lvr >> 16) & 0xff;

	report((lvr & 0xff) >= 0x10 && (lvr & 0xff) <= 0x15, "APIC version 0x%x is an integrated APIC",
	       lvr & 0xff);
	report(maxlvt >= 4, "max LVT entry %u >= 4", maxlvt);
	/* TDCR bits 3,1,0 encode the divisor; every value reads back. */
	bool ok = true;
	for (unsigned d = 1; d <= 128; d *= 2) {
		apic_timer_set_divide(d);
		u32 v = apic_read(APIC_TDCR) & 0xb;
		unsigned code = d == 1 ? 7 : __builtin_ctz(d) - 1;
		ok &= v == ((code & 3) | ((code & 4) << 1));
	}
	report(ok, "divide configuration reads back for /1 ... /128");
	apic_write(APIC_LVTT, APIC_LVT_MASKED | APIC_LVT_TIMER_PERIODIC | VEC_TIMER);
	report((apic_read(APIC_LVTT) & 0x700ff) == (APIC_LVT_MASKED | APIC_LVT_TIMER_PERIODIC | VEC_TIMER),
	       "LVT timer mask, mode and vector read back (0x%x)", apic_read(APIC_LVTT));
	apic_timer_stop();
}

static void test_oneshot(void)
{
	u32 c1, c2;

	apic_timer_set_divide(1);
	/* A long count: the current count decreases and stopping (TMICT = 0) zeroes it. */
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_ONESHOT, 0xffffffff, false);
	c1 = apic_timer_current();
	delay(1UL << 20);
	c2 = apic_timer_current();
	report(c1 <= 0xffffffff && c2 < c1, "current count counts down (0x%x then 0x%x)", c1, c2);
	apic_write(APIC_TMICT, 0);
	report(apic_timer_current() == 0, "writing 0 to the initial count stops the timer (CCR 0)");
	report(apic_read(APIC_TMICT) == 0, "initial count reads back 0");

	ticks = 0;
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_ONESHOT, 100000, false);
	report(apic_read(APIC_TMICT) == 100000, "initial count reads back 100000");
	report(wait_ticks(1), "one-shot timer fires");
	delay(QUIET);
	report(ticks == 1, "one-shot timer fires exactly once (%lu)", ticks);
	report(apic_timer_current() == 0, "current count stays 0 after a one-shot expiry");

	/* HLT wakes up for the timer interrupt. */
	ticks = 0;
	u64 start = rdtsc();
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_ONESHOT, 100000, false);
	while (ticks == 0 && rdtsc() - start < WAIT) {
		cli();
		if (ticks == 0)
			safe_halt();
		sti();
	}
	report(ticks == 1, "STI; HLT wakes up on the timer interrupt");
}

static void test_periodic(void)
{
	const u32 period = 200000;
	bool reloaded = false;

	ticks = 0;
	apic_timer_set_divide(1);
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_PERIODIC, period, false);
	bool fired = wait_ticks(4);
	report(fired, "periodic timer fires repeatedly (%lu ticks)", ticks);
	/* In periodic mode the count reloads instead of staying at 0. */
	for (int i = 0; i < 16 && !reloaded; i++) {
		u32 c = apic_timer_current();
		reloaded = c != 0 && c <= period;
		delay(1000);
	}
	report(reloaded, "current count reloads within (0, initial count] after expiries");
	u64 t0 = rdtsc(), n0 = ticks;
	wait_ticks(n0 + 3);
	u64 per_tick = (rdtsc() - t0) / 3;
	apic_timer_stop();
	u64 n = ticks;
	delay(QUIET > 8 * per_tick ? QUIET : 8 * per_tick);
	report(ticks == n, "no ticks after the timer is stopped");

	/*
	 * A 64x longer period must give clearly longer ticks. Only a factor of 2 is
	 * required: host timers may stretch short periods (QEMU TCG ticks no faster
	 * than every millisecond or so on some hosts).
	 */
	ticks = 0;
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_PERIODIC, period * 64, false);
	t0 = rdtsc();
	wait_ticks(3);
	u64 per_tick_long = (rdtsc() - t0) / 3;
	apic_timer_stop();
	report(per_tick_long > per_tick * 2,
	       "a 64x longer period gives longer ticks (%lu vs %lu TSC cycles per tick)",
	       per_tick_long, per_tick);
}

/*
 * Timer ticks per 2^16 TSC cycles at a divisor, over at least window cycles.
 * Both clocks are read back to back at each end, so a host descheduling the
 * vCPU in the middle stretches both sides of the ratio alike.
 */
static u64 rate(unsigned divide, u64 window)
{
	u64 t0, t1;
	u32 c0, c1;

	apic_timer_set_divide(divide);
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_ONESHOT, 0xffffffff, true);
	t0 = rdtsc();
	c0 = apic_timer_current();
	delay(window);
	c1 = apic_timer_current();
	t1 = rdtsc();
	apic_write(APIC_TMICT, 0);
	return ((u64)(c0 - c1) << 16) / (t1 - t0);
}

/* Median of 5: a stall between a clock read and its partner only spoils single samples. */
static u64 median_rate(unsigned divide, u64 window)
{
	u64 s[5];

	for (int i = 0; i < 5; i++) {
		u64 v = rate(divide, window);
		int j = i;
		for (; j > 0 && s[j - 1] > v; j--)
			s[j] = s[j - 1];
		s[j] = v;
	}
	return s[2];
}

static void test_divide(void)
{
	u64 window = 1UL << 16, r1 = 0, r16;

	/* Grow the window until /1 counts at least 2^20 ticks in it (any APIC clock rate). */
	while (window < (1UL << 36)) {
		r1 = rate(1, window);
		if (r1 * window >= (1UL << 36))
			break;
		window *= 2;
	}
	r1 = median_rate(1, window);
	r16 = median_rate(16, window);
	report_info("timer ticks per 65536 TSC cycles (median of 5, window %lu): /1 %lu, /16 %lu",
		    window, r1, r16);
	report(r16 > 0 && r16 * 8 <= r1 && r16 * 32 >= r1,
	       "divide by 16 counts 8-32x slower than divide by 1");
	apic_timer_set_divide(1);
}

static void test_masked(void)
{
	ticks = 0;
	apic_timer_set_divide(1);
	apic_timer_start(VEC_TIMER, APIC_LVT_TIMER_ONESHOT, 100000, true);
	u64 t = rdtsc();
	while (apic_timer_current() != 0 && rdtsc() - t < WAIT)
		pause();
	report(apic_timer_current() == 0, "a masked one-shot timer still counts down to 0");
	delay(QUIET);
	report(ticks == 0 && !apic_irr_test(VEC_TIMER), "a masked timer raises no interrupt");
	apic_timer_stop();
}

static void test_tsc_deadline(void)
{
	if (!cpu_has_tsc_deadline()) {
		report_skip("TSC-deadline timer: CPUID.1:ECX[24] = 0");
		return;
	}
	ticks = 0;
	u64 deadline = rdtsc() + (1UL << 20);
	apic_tsc_deadline_start(VEC_TIMER, deadline);
	report(rdmsr(MSR_IA32_TSC_DEADLINE) == deadline, "IA32_TSC_DEADLINE reads back the deadline");
	report(wait_ticks(1), "TSC-deadline timer fires");
	report(last_tick_tsc >= deadline, "it fires no earlier than the deadline");
	report(rdmsr(MSR_IA32_TSC_DEADLINE) == 0, "IA32_TSC_DEADLINE reads 0 after it fired");
	delay(QUIET);
	report(ticks == 1, "it fires once");

	/* Writing 0 disarms. */
	ticks = 0;
	apic_tsc_deadline_start(VEC_TIMER, rdtsc() + (1UL << 20));
	wrmsr(MSR_IA32_TSC_DEADLINE, 0);
	delay(1UL << 22);
	report(ticks == 0, "writing 0 to IA32_TSC_DEADLINE disarms the timer");

	/* A deadline already passed fires at once; TMICT is ignored in this mode. */
	apic_tsc_deadline_start(VEC_TIMER, 1);
	report(wait_ticks(1), "a deadline in the past fires immediately");
	apic_write(APIC_TMICT, 1000);
	report(apic_timer_current() == 0, "the initial count is ignored in TSC-deadline mode");
	apic_timer_stop();
}

int main(int argc __unused, char **argv __unused)
{
	handle_exception(VEC_TIMER, timer_handler);
	test_registers();
	test_oneshot();
	test_periodic();
	test_divide();
	test_masked();
	test_tsc_deadline();
	report_summary();
}
