/*
 * Synthetic timers (tlfs-vsm-facts.md §6.5 STIMER bits, §4.2 message slots,
 * §4.3 TimerExpired payload), on each CPU in turn:
 * - one-shot: COUNT is the absolute expiration time in reference units; one
 *   HvMessageTypeTimerExpired message (payload 24 bytes: timer index,
 *   expiration time = COUNT, delivery time >= expiration), origin 0; then
 *   Enable is clear; a time in the past expires at once;
 * - periodic: COUNT is the period; expirations every period, phase kept;
 *   writing CONFIG = 0 stops it;
 * - AutoEnable: writing a non-zero COUNT sets Enable, COUNT = 0 clears it;
 *   without AutoEnable a COUNT write does not enable;
 * - direct mode (hv-stimer-direct): the APIC vector of CONFIG 11:4 instead of
 *   a message;
 * - a busy slot: the expiry waits, MessagePending is set in the slot, and the
 *   message comes after the guest frees the slot and writes EOM; four timers
 *   on one SINT queue behind each other;
 * - lazy periodic timers do not queue expiries behind a busy slot.
 * SINT2 uses explicit EOI, SINT3 AutoEOI (the handler checks the ISR).
 * Run with --hv hv-vpindex,hv-synic,hv-time,hv-stimer[,hv-stimer-direct] --smp 2.
 */
#include "libguest.h"
#include "hyperv.h"

#define SINT_EOI 2
#define VEC_EOI 0x50
#define SINT_AUTO 3
#define VEC_AUTO 0x51
#define VEC_DIRECT 0x52
#define MS 10000UL /* reference units (100 ns) per millisecond */
#define LOG 8

struct timer_log {
	volatile u64 count;
	volatile u64 expiration[LOG], delivery[LOG], seen[LOG];
};

struct cpu_log {
	struct timer_log timer[HV_SYNIC_STIMER_COUNT];
	volatile u64 messages, bad_type, bad_header, isr_wrong, direct, direct_seen;
	volatile u64 order[LOG]; /* timer index of the last messages, in arrival order (a ring) */
};

static struct cpu_log logs[MAX_CPUS];

static void take_message(unsigned sint)
{
	unsigned cpu = smp_id();
	struct cpu_log *l = &logs[cpu];
	struct hv_message *m = hv_sim_slot(cpu, sint);
	u64 now = hv_time_ref_count();

	if (m->type != HV_MESSAGE_TYPE_TIMER_EXPIRED) {
		l->bad_type++;
		return;
	}
	if (m->payload_size != sizeof(struct hv_timer_payload) || m->origin != 0)
		l->bad_header++;
	struct hv_timer_payload p;
	memcpy(&p, (const void *)m->payload, sizeof(p));
	if (p.timer_index < HV_SYNIC_STIMER_COUNT) {
		struct timer_log *t = &l->timer[p.timer_index];
		u64 n = t->count;

		if (n < LOG) {
			t->expiration[n] = p.expiration_time;
			t->delivery[n] = p.delivery_time;
			t->seen[n] = now;
		}
		t->count = n + 1;
	}
	l->order[l->messages % LOG] = p.timer_index;
	l->messages++;
	hv_message_done(m);
}

static void eoi_handler(struct ex_regs *regs)
{
	(void)regs;
	if (!apic_isr_test(VEC_EOI))
		logs[smp_id()].isr_wrong++;
	take_message(SINT_EOI);
	apic_eoi();
}

static void auto_eoi_handler(struct ex_regs *regs)
{
	(void)regs;
	/* AutoEOI: the vector left the ISR when the interrupt was taken. */
	if (apic_isr_test(VEC_AUTO))
		logs[smp_id()].isr_wrong++;
	take_message(SINT_AUTO);
}

static void direct_handler(struct ex_regs *regs)
{
	(void)regs;
	logs[smp_id()].direct++;
	logs[smp_id()].direct_seen = hv_time_ref_count();
	apic_eoi();
}

/* Wait until *c reaches want or `units` of reference time pass. */
static bool wait_count(volatile u64 *c, u64 want, u64 units)
{
	u64 end = hv_time_ref_count() + units;

	while (*c < want)
		if (hv_time_ref_count() > end)
			return false;
		else
			pause();
	return true;
}

static void wait_units(u64 units)
{
	u64 end = hv_time_ref_count() + units;

	while (hv_time_ref_count() < end)
		pause();
}

static u64 config_of(unsigned timer) { return rdmsr(HV_X64_MSR_STIMER_CONFIG(timer)); }

static void test_one_shot(unsigned cpu, struct cpu_log *l)
{
	struct timer_log *t = &l->timer[0];
	u64 before = t->count;
	u64 exp = hv_time_ref_count() + 2 * MS;

	hv_stimer_set(0, HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI), exp);
	report(rdmsr(HV_X64_MSR_STIMER_COUNT(0)) == exp, "CPU %u: STIMER0_COUNT reads back %lu", cpu, exp);
	report(wait_count(&t->count, before + 1, 20 * MS), "CPU %u: one-shot timer 0 expired", cpu);
	u64 n = before;
	report(t->expiration[n] == exp, "CPU %u: payload expiration time %lu = COUNT %lu", cpu, t->expiration[n], exp);
	report(t->delivery[n] >= exp && t->delivery[n] <= t->seen[n],
	       "CPU %u: delivery time %lu is after the expiration and before the guest saw it (%lu)", cpu,
	       t->delivery[n], t->seen[n]);
	report(!l->bad_header && !l->bad_type, "CPU %u: TimerExpired message with a 24-byte payload and origin 0", cpu);
	report(!(config_of(0) & HV_STIMER_ENABLE), "CPU %u: a one-shot timer is disabled after it fired (CONFIG 0x%lx)",
	       cpu, config_of(0));
	wait_units(3 * MS);
	report(t->count == before + 1, "CPU %u: a one-shot timer fires once (%lu messages)", cpu, t->count - before);

	/* A time already passed expires at once. */
	u64 past = hv_time_ref_count() - 10;
	before = t->count;
	hv_stimer_set(0, HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI), past);
	report(wait_count(&t->count, before + 1, MS) && t->expiration[before] == past,
	       "CPU %u: a one-shot time in the past (%lu) expires at once", cpu, past);
}

static void test_periodic(unsigned cpu, struct cpu_log *l)
{
	struct timer_log *t = &l->timer[1];
	u64 period = MS / 2;
	u64 before = t->count, start = hv_time_ref_count();

	hv_stimer_set(1, HV_STIMER_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_AUTO), period);
	u64 written = hv_time_ref_count();
	bool got = wait_count(&t->count, before + 5, 20 * period);
	report(got, "CPU %u: periodic timer 1 expired 5 times (%lu)", cpu, t->count - before);
	if (got) {
		bool phase = true;
		u64 first = t->expiration[before];

		for (u64 k = 1; k < 5; k++)
			phase &= t->expiration[before + k] == first + k * period;
		report(first >= start + period && first <= written + period,
		       "CPU %u: first expiration %lu is one period after the write (%lu..%lu)", cpu, first,
		       start + period, written + period);
		report(phase, "CPU %u: expirations are exactly one period (%lu) apart", cpu, period);
	}
	report(config_of(1) & HV_STIMER_ENABLE, "CPU %u: a periodic timer stays enabled", cpu);
	report(!l->isr_wrong, "CPU %u: AutoEOI SINT: vector not in service in the handler", cpu);
	wrmsr(HV_X64_MSR_STIMER_CONFIG(1), 0);
	u64 stopped = t->count;
	wait_units(4 * period);
	report(t->count == stopped, "CPU %u: CONFIG = 0 stops the periodic timer (%lu more)", cpu, t->count - stopped);
}

static void test_auto_enable(unsigned cpu, struct cpu_log *l)
{
	struct timer_log *t = &l->timer[2];
	u64 before = t->count;

	/* CONFIG without Enable: the COUNT write (last in hv_stimer_set) enables it. */
	hv_stimer_set(2, HV_STIMER_AUTO_ENABLE | HV_STIMER_SINT(SINT_EOI), hv_time_ref_count() + MS);
	report(config_of(2) & HV_STIMER_ENABLE, "CPU %u: AutoEnable: writing COUNT set Enable (CONFIG 0x%lx)", cpu,
	       config_of(2));
	report(wait_count(&t->count, before + 1, 20 * MS), "CPU %u: the auto-enabled timer expired", cpu);

	hv_stimer_set(2, HV_STIMER_AUTO_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_EOI), MS);
	report(config_of(2) & HV_STIMER_ENABLE, "CPU %u: AutoEnable periodic is enabled by COUNT", cpu);
	wrmsr(HV_X64_MSR_STIMER_COUNT(2), 0);
	report(!(config_of(2) & HV_STIMER_ENABLE), "CPU %u: COUNT = 0 clears Enable (CONFIG 0x%lx)", cpu, config_of(2));
	before = t->count;
	wait_units(3 * MS);
	report(t->count == before, "CPU %u: and the timer stays quiet", cpu);

	/* Without AutoEnable, COUNT alone does not enable. */
	wrmsr(HV_X64_MSR_STIMER_CONFIG(2), HV_STIMER_SINT(SINT_EOI));
	wrmsr(HV_X64_MSR_STIMER_COUNT(2), hv_time_ref_count() + MS);
	report(!(config_of(2) & HV_STIMER_ENABLE), "CPU %u: without AutoEnable, COUNT leaves Enable clear", cpu);
	wait_units(3 * MS);
	report(t->count == before, "CPU %u: and nothing expires", cpu);
	hv_stimer_stop(2);
}

static void test_direct(unsigned cpu, struct cpu_log *l)
{
	u64 config = HV_STIMER_ENABLE | HV_STIMER_DIRECT_MODE | HV_STIMER_APIC_VECTOR(VEC_DIRECT) |
		     HV_STIMER_SINT(SINT_EOI);

	if (!hv_has_feature(HV_FEAT_DIRECT_SYNTHETIC_TIMERS)) {
		unsigned vec = wrmsr_safe(HV_X64_MSR_STIMER_CONFIG(3), config);
		report_skip("CPU %u: direct mode not advertised (CPUID 0x40000003 EDX bit 19)", cpu);
		report_info("CPU %u: CONFIG with DirectMode %s without the feature", cpu,
			    vec == GP_VECTOR ? "is #GP" : "was accepted");
		hv_stimer_stop(3);
		return;
	}
	u64 before = l->direct, msgs = l->messages;
	u64 exp = hv_time_ref_count() + MS;
	hv_stimer_set(3, config, exp);
	report(wait_count(&l->direct, before + 1, 20 * MS), "CPU %u: direct mode timer 3 raised vector 0x%x", cpu,
	       VEC_DIRECT);
	report(l->direct_seen >= exp, "CPU %u: not before its expiration (%lu >= %lu)", cpu, l->direct_seen, exp);
	report(l->messages == msgs && hv_sim_slot(cpu, SINT_EOI)->type == 0, "CPU %u: and sent no message", cpu);
	report(!(config_of(3) & HV_STIMER_ENABLE), "CPU %u: one-shot direct timer disabled after firing", cpu);

	before = l->direct;
	hv_stimer_set(3, config | HV_STIMER_PERIODIC, MS);
	report(wait_count(&l->direct, before + 3, 30 * MS), "CPU %u: periodic direct timer fired 3 times", cpu);
	hv_stimer_stop(3);
	report(l->messages == msgs, "CPU %u: still no message", cpu);
}

/* Occupy a slot with a message of our own, as another sender would. */
static void occupy(struct hv_message *slot)
{
	slot->flags = 0;
	slot->payload_size = 0;
	slot->type = 0x12345;
}

static void test_busy_slot(unsigned cpu, struct cpu_log *l)
{
	struct hv_message *slot = hv_sim_slot(cpu, SINT_EOI);
	struct timer_log *t = &l->timer[0];
	u64 before = t->count;

	occupy(slot);
	u64 exp = hv_time_ref_count() + MS;
	hv_stimer_set(0, HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI), exp);
	wait_units(4 * MS);
	report(t->count == before && slot->type == 0x12345, "CPU %u: busy slot: the expiry is not delivered", cpu);
	report(slot->flags & HV_MESSAGE_FLAG_PENDING, "CPU %u: busy slot: MessagePending is set (flags 0x%x)", cpu,
	       slot->flags);
	u64 freed = hv_time_ref_count();
	hv_message_done(slot); /* MessageType = 0, then EOM because MessagePending is set */
	report(wait_count(&t->count, before + 1, 10 * MS), "CPU %u: after EOM the timer message arrives", cpu);
	report(t->expiration[before] == exp && t->delivery[before] >= freed,
	       "CPU %u: with expiration %lu (= COUNT %lu) and delivery %lu after the EOM (%lu)", cpu,
	       t->expiration[before], exp, t->delivery[before], freed);

	/* Four timers on one SINT: each message waits for the slot, in expiration order. */
	u64 m0 = l->messages, now = hv_time_ref_count();
	occupy(slot);
	for (unsigned i = 0; i < HV_SYNIC_STIMER_COUNT; i++)
		hv_stimer_set(i, HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI), now + MS + i * 100);
	wait_units(3 * MS);
	report(l->messages == m0, "CPU %u: four expiries wait behind a busy slot", cpu);
	hv_message_done(slot);
	bool all = wait_count(&l->messages, m0 + 4, 20 * MS);
	bool ordered = all;
	for (unsigned i = 0; ordered && i < 4; i++)
		ordered = l->order[(m0 + i) % LOG] == i;
	report(all, "CPU %u: all four arrive one after the other once the slot is free (%lu)", cpu, l->messages - m0);
	report(ordered, "CPU %u: in expiration order (timers %lu %lu %lu %lu)", cpu, l->order[m0 % LOG],
	       l->order[(m0 + 1) % LOG], l->order[(m0 + 2) % LOG], l->order[(m0 + 3) % LOG]);
}

static void test_lazy(unsigned cpu, struct cpu_log *l)
{
	struct hv_message *slot = hv_sim_slot(cpu, SINT_EOI);
	struct timer_log *t = &l->timer[1];
	u64 period = MS;

	for (int lazy = 0; lazy <= 1; lazy++) {
		u64 before = t->count;
		const char *kind = lazy ? "lazy" : "non-lazy";

		occupy(slot);
		hv_stimer_set(1, HV_STIMER_ENABLE | HV_STIMER_PERIODIC | (lazy ? HV_STIMER_LAZY : 0) |
				 HV_STIMER_SINT(SINT_EOI), period);
		wait_units(4 * period + period / 2);
		report(t->count == before, "CPU %u: %s periodic timer: nothing delivered into a busy slot", cpu, kind);
		bool pending = slot->flags & HV_MESSAGE_FLAG_PENDING;
		u64 freed = hv_time_ref_count();
		hv_message_done(slot);
		bool got = wait_count(&t->count, before + 1, 5 * period);
		hv_stimer_stop(1);
		if (!lazy) {
			report(pending, "CPU %u: non-lazy: MessagePending set for the waiting expiry", cpu);
			report(got && t->expiration[before] < freed,
			       "CPU %u: non-lazy: the expiry that waited is delivered after EOM (expiration %lu < %lu)",
			       cpu, t->expiration[before], freed);
		} else {
			report(got && t->expiration[before] >= freed,
			       "CPU %u: lazy: expiries behind the busy slot were dropped; next expiration %lu >= %lu",
			       cpu, t->expiration[before], freed);
			report_info("CPU %u: lazy: MessagePending was %s while the slot was busy", cpu, pending ? "set" : "clear");
			if (pending)
				wrmsr(HV_X64_MSR_EOM, 0);
		}
		wait_units(2 * period);
		/* Drain anything left so the next part starts from an empty slot. */
		if (slot->type)
			hv_message_done(slot);
	}
}

static void timer_suite(void *arg)
{
	unsigned cpu = smp_id();
	struct cpu_log *l = &logs[cpu];

	(void)arg;
	hv_synic_enable();
	hv_sint_set(SINT_EOI, VEC_EOI, 0);
	hv_sint_set(SINT_AUTO, VEC_AUTO, HV_SINT_AUTO_EOI);
	test_one_shot(cpu, l);
	test_periodic(cpu, l);
	test_auto_enable(cpu, l);
	test_direct(cpu, l);
	test_busy_slot(cpu, l);
	test_lazy(cpu, l);
	report(!l->isr_wrong, "CPU %u: explicit-EOI vector in service in its handler, AutoEOI vector not", cpu);
	report(!l->bad_type, "CPU %u: no interrupt without a timer message (%lu)", cpu, l->bad_type);
	for (unsigned i = 0; i < HV_SYNIC_STIMER_COUNT; i++)
		hv_stimer_stop(i);
	hv_synic_disable();
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_SYNTHETIC_TIMER_REGS) || !hv_has_privilege(HV_PRIV_SYNIC_REGS)) {
		report_skip("synthetic timers not available: run with --hv hv-vpindex,hv-synic,hv-time,hv-stimer");
		report_summary();
	}
	handle_exception(VEC_EOI, eoi_handler);
	handle_exception(VEC_AUTO, auto_eoi_handler);
	handle_exception(VEC_DIRECT, direct_handler);
	timer_suite(NULL);
	if (cpu_count() > 1)
		on_cpu(1, timer_suite, NULL);
	else
		report_skip("timers on a second CPU: needs --smp 2");
	report_summary();
}
