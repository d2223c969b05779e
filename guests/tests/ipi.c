/*
 * Inter-processor interrupts through the local APIC ICR: fixed IPIs in
 * physical and logical destination mode, the self / all-including-self /
 * all-excluding-self shorthands, NMIs, and the IRR -> ISR -> EOI life cycle
 * with TPR/PPR masking. Rules: Intel SDM vol. 3 ch. 11 (10 in older
 * editions): 11.6 ICR, 11.8.3-11.8.5 IRR/ISR/EOI, 11.8.3.1 TPR/PPR.
 * Run with -smp 4 (parts needing other CPUs skip with fewer).
 */
#include "libguest.h"

#define VEC_COUNT 0x40
#define WAIT (1UL << 35)   /* timeout in TSC cycles for things that should take microseconds; generous because
                              QEMU TCG vCPU threads may be starved on a loaded host (only failures wait this long) */
#define QUIET (1UL << 21)  /* how long to watch for something that must not happen */

static volatile u64 count[MAX_CPUS], nmi_count[MAX_CPUS];

static void count_handler(struct ex_regs *regs)
{
	(void)regs;
	atomic_inc(&count[smp_id()]);
	apic_eoi();
}

static void nmi_handler(struct ex_regs *regs)
{
	(void)regs;
	atomic_inc(&nmi_count[smp_id()]);
}

static void delay(u64 cycles)
{
	u64 t = rdtsc();

	while (rdtsc() - t < cycles)
		pause();
}

/* Wait until *c reaches want; false on timeout. */
static bool wait_count(volatile u64 *c, u64 want) { return wait_until_at_least(c, want, WAIT); }

static void snapshot(u64 *dst, volatile u64 *src)
{
	for (unsigned i = 0; i < cpu_count(); i++)
		dst[i] = src[i];
}

/* After sending, exactly the CPUs in mask got one more interrupt. */
static bool delivered_to(u64 mask, const u64 *before, volatile u64 *c)
{
	bool ok = true;

	for (unsigned i = 0; i < cpu_count(); i++)
		if (mask & BIT(i))
			ok &= wait_count(&c[i], before[i] + 1);
	delay(QUIET);
	for (unsigned i = 0; i < cpu_count(); i++)
		ok &= c[i] == before[i] + !!(mask & BIT(i));
	return ok;
}

static u64 all_mask(void)
{
	return cpu_count() == 64 ? ~0UL : BIT(cpu_count()) - 1;
}

static void test_self(void)
{
	u64 before[MAX_CPUS];

	snapshot(before, count);
	apic_self_ipi(VEC_COUNT);
	report(delivered_to(BIT(0), before, count), "self IPI (shorthand 01) is delivered once");

	snapshot(before, count);
	apic_send_ipi(apic_id(), VEC_COUNT);
	report(delivered_to(BIT(0), before, count), "fixed IPI to its own APIC ID is delivered once");

	if (apic_x2apic_mode()) {
		snapshot(before, count);
		wrmsr(0x83f, VEC_COUNT); /* x2APIC SELF IPI register */
		report(delivered_to(BIT(0), before, count), "x2APIC SELF IPI MSR delivers");
	} else {
		report_skip("x2APIC SELF IPI MSR: APIC in xAPIC mode");
	}
}

static void send_fixed(void *arg)
{
	apic_send_ipi((u32)(u64)arg, VEC_COUNT);
}

static void test_physical(void)
{
	u64 before[MAX_CPUS];
	unsigned n = cpu_count();

	if (n < 2) {
		report_skip("IPIs between CPUs: needs -smp 2 or more");
		return;
	}
	for (unsigned i = 1; i < n; i++) {
		snapshot(before, count);
		apic_send_ipi(cpu_apic_id(i), VEC_COUNT);
		report(delivered_to(BIT(i), before, count), "fixed IPI from CPU 0 to CPU %u (APIC ID %u)",
		       i, cpu_apic_id(i));
	}
	snapshot(before, count);
	on_cpu(1, send_fixed, (void *)(u64)cpu_apic_id(0));
	report(delivered_to(BIT(0), before, count), "fixed IPI from CPU 1 to CPU 0");
	if (n >= 3) {
		snapshot(before, count);
		on_cpu(1, send_fixed, (void *)(u64)cpu_apic_id(2));
		report(delivered_to(BIT(2), before, count), "fixed IPI from CPU 1 to CPU 2");
	}
}

static void test_shorthands(void)
{
	u64 before[MAX_CPUS];

	snapshot(before, count);
	apic_icr_write(APIC_DEST_ALLBUT | APIC_DM_FIXED | APIC_INT_ASSERT | VEC_COUNT, 0);
	report(delivered_to(all_mask() & ~BIT(0), before, count),
	       "all-excluding-self reaches the %u other CPUs and not the sender", cpu_count() - 1);

	snapshot(before, count);
	apic_icr_write(APIC_DEST_ALLINC | APIC_DM_FIXED | APIC_INT_ASSERT | VEC_COUNT, 0);
	report(delivered_to(all_mask(), before, count), "all-including-self reaches all %u CPUs",
	       cpu_count());
}

static void test_nmi(void)
{
	u64 before[MAX_CPUS];

	handle_exception(NMI_VECTOR, nmi_handler);
	snapshot(before, nmi_count);
	apic_icr_write(APIC_DM_NMI | APIC_INT_ASSERT, apic_id());
	report(delivered_to(BIT(0), before, nmi_count), "NMI IPI to its own APIC ID");
	/* NMIs ignore RFLAGS.IF. */
	snapshot(before, nmi_count);
	cli();
	apic_icr_write(APIC_DM_NMI | APIC_INT_ASSERT, apic_id());
	bool ok = wait_count(&nmi_count[0], before[0] + 1);
	sti();
	report(ok, "NMI is delivered with RFLAGS.IF = 0");
	for (unsigned i = 1; i < cpu_count(); i++) {
		snapshot(before, nmi_count);
		apic_icr_write(APIC_DM_NMI | APIC_INT_ASSERT, cpu_apic_id(i));
		report(delivered_to(BIT(i), before, nmi_count), "NMI IPI from CPU 0 to CPU %u", i);
	}
	if (cpu_count() < 2)
		report_skip("NMI to other CPUs: needs -smp 2 or more");
}

/* Logical destinations: xAPIC flat model (DFR = 0xFFFFFFFF, LDR bit per CPU) or x2APIC clusters. */
static volatile u32 ldr[MAX_CPUS];
static void setup_logical(void *arg)
{
	(void)arg;
	unsigned me = smp_id();

	if (!apic_x2apic_mode()) {
		apic_write(APIC_DFR, 0xffffffff);
		apic_write(APIC_LDR, me < 8 ? BIT(24 + me) : 0);
	}
	ldr[me] = apic_read(APIC_LDR);
}

static void test_logical(void)
{
	u64 before[MAX_CPUS], mask = 0;
	u32 dest = 0;
	unsigned n = cpu_count() < 8 ? cpu_count() : 8;

	on_cpus(setup_logical, NULL);
	if (apic_x2apic_mode()) {
		/* x2APIC LDR (read-only): cluster ID in bits 31:16, one bit in 15:0. */
		for (unsigned i = 0; i < n; i++) {
			u32 expect = ((cpu_apic_id(i) >> 4) << 16) | BIT(cpu_apic_id(i) & 15);
			report(ldr[i] == expect, "CPU %u: x2APIC LDR 0x%x = 0x%x derived from the ID", i,
			       ldr[i], expect);
		}
		/* Every odd CPU plus CPU 0, restricted to cluster 0. */
		for (unsigned i = 0; i < n; i++)
			if ((i == 0 || i % 2) && (ldr[i] >> 16) == 0) {
				mask |= BIT(i);
				dest |= ldr[i];
			}
	} else {
		for (unsigned i = 0; i < n; i++)
			report(ldr[i] >> 24 == BIT(i), "CPU %u: xAPIC flat LDR reads back 0x%x", i, ldr[i]);
		for (unsigned i = 0; i < n; i++)
			if (i == 0 || i % 2) {
				mask |= BIT(i);
				dest |= BIT(i);
			}
	}
	snapshot(before, count);
	apic_icr_write(APIC_DEST_LOGICAL | APIC_DM_FIXED | APIC_INT_ASSERT | VEC_COUNT, dest);
	report(delivered_to(mask, before, count), "logical %s IPI to destination 0x%x reaches CPUs 0x%lx only",
	       apic_x2apic_mode() ? "cluster" : "flat", dest, mask);
}

/* IRR -> ISR -> EOI on this CPU. */
static volatile bool isr_seen, irr_seen;
static volatile u32 ppr_seen;
static volatile u64 order[8], order_len;

static void eoi_handler(struct ex_regs *regs)
{
	isr_seen = apic_isr_test(regs->vector);
	irr_seen = apic_irr_test(regs->vector);
	ppr_seen = apic_read(APIC_PROCPRI);
	order[order_len++] = regs->vector;
	apic_eoi();
}

static void no_eoi_handler(struct ex_regs *regs)
{
	order[order_len++] = regs->vector;
}

static void test_eoi_isr(void)
{
	/* Pending while IF = 0: the vector sits in IRR, not ISR. */
	handle_exception(0x60, eoi_handler);
	cli();
	apic_self_ipi(0x60);
	delay(QUIET);
	bool in_irr = apic_irr_test(0x60), in_isr = apic_isr_test(0x60);
	report(in_irr && !in_isr && order_len == 0, "with IF = 0 the self IPI waits in IRR, not ISR");
	sti();
	wait_count(&order_len, 1);
	report(order_len == 1 && isr_seen && !irr_seen,
	       "after STI it is delivered and moves from IRR to ISR");
	report((ppr_seen & 0xf0) == 0x60, "PPR in the handler is the in-service class (0x%x)", ppr_seen);
	report(!apic_isr_test(0x60) && !apic_irr_test(0x60), "EOI clears the ISR bit");

	/* Without EOI the vector stays in service and blocks equal or lower classes. */
	order_len = 0;
	handle_exception(0x61, no_eoi_handler);
	handle_exception(0x51, eoi_handler);
	handle_exception(0x71, eoi_handler);
	apic_self_ipi(0x61);
	wait_count(&order_len, 1);
	report(apic_isr_test(0x61), "a handler that skips EOI leaves its vector in ISR");
	apic_self_ipi(0x51);
	delay(QUIET);
	report(order_len == 1 && apic_irr_test(0x51),
	       "vector 0x51 stays pending in IRR below in-service 0x61");
	apic_self_ipi(0x71);
	wait_count(&order_len, 2);
	report(order_len == 2 && order[1] == 0x71, "higher-class vector 0x71 is still delivered");
	report(apic_isr_highest() == 0x61, "after 0x71's EOI the highest in-service vector is 0x61");
	apic_eoi(); /* ends 0x61 */
	wait_count(&order_len, 3);
	report(order_len == 3 && order[2] == 0x51 && !apic_isr_test(0x61),
	       "EOI of 0x61 releases the pending 0x51");
	report(apic_isr_highest() == -1, "nothing left in service");
}

static void test_tpr(void)
{
	order_len = 0;
	apic_set_tpr(0x70);
	apic_self_ipi(0x60);
	delay(QUIET);
	report(order_len == 0 && apic_irr_test(0x60), "TPR 0x70 holds vector 0x60 in IRR with IF = 1");
	report((apic_read(APIC_PROCPRI) & 0xf0) == 0x70, "PPR follows TPR (0x%x)", apic_read(APIC_PROCPRI));
	apic_set_tpr(0);
	wait_count(&order_len, 1);
	report(order_len == 1 && order[0] == 0x60, "lowering TPR delivers it");

	/* MOV to CR8 writes TPR[7:4]; MOV from CR8 reads it. */
	write_cr8(5);
	report(apic_get_tpr() == 0x50 && read_cr8() == 5, "CR8 = 5 <-> TPR = 0x50 (TPR 0x%x)",
	       apic_get_tpr());
	apic_set_tpr(0x30);
	report(read_cr8() == 3, "TPR = 0x30 reads back as CR8 = 3 (got %lu)", read_cr8());
	write_cr8(0);
}

int main(int argc __unused, char **argv __unused)
{
	report_info("%u CPUs, %s mode", cpu_count(), apic_x2apic_mode() ? "x2APIC" : "xAPIC");
	handle_exception(VEC_COUNT, count_handler);
	test_self();
	test_physical();
	test_shorthands();
	test_nmi();
	test_logical();
	test_eoi_isr();
	test_tpr();
	report_summary();
}
