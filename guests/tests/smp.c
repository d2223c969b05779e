/*
 * Multiprocessor bring-up and cross-CPU primitives: every CPU reached 64-bit
 * mode with its own stack, TSS and per-CPU data; on_cpu() runs work where it
 * is asked to; LOCK XADD / LOCK CMPXCHG keep shared counters exact while all
 * CPUs hammer them at once. Run with -smp 4.
 */
#include "libguest.h"

#define ITERATIONS 20000

struct cpu_report {
	u32 apic_id, cpuid_apic_id, number;
	u64 efer, cr0, cr3, rsp, gs_base;
	u16 cs, tr;
};

static struct cpu_report reports[MAX_CPUS];

static void collect(void *arg)
{
	(void)arg;
	unsigned n = smp_id();
	struct cpu_report *r = &reports[n];

	r->number = n;
	r->apic_id = apic_id();
	r->cpuid_apic_id = cpuid(1).b >> 24;
	r->efer = rdmsr(MSR_EFER);
	r->cr0 = read_cr0();
	r->cr3 = read_cr3();
	r->cs = read_cs();
	r->tr = read_tr();
	r->rsp = read_rsp();
	r->gs_base = rdmsr(MSR_GS_BASE);
}

static void test_cpus(void)
{
	unsigned n = cpu_count(), expected = smp_expected_cpus();

	report(n == expected, "%u CPUs online, %u expected (fw_cfg / NR_CPUS)", n, expected);
	on_cpus(collect, NULL);
	for (unsigned i = 0; i < n; i++) {
		struct cpu_report *r = &reports[i];
		struct percpu *pc = cpu_data(i);
		bool mode64 = (r->efer & EFER_LMA) && (r->cr0 & X86_CR0_PG) && r->cs == KERNEL_CS;

		report(r->number == i && mode64,
		       "CPU %u: APIC ID %u, 64-bit mode (EFER 0x%lx, CR0 0x%lx, CS 0x%x)", i, r->apic_id,
		       r->efer, r->cr0, r->cs);
		report(r->apic_id == cpu_apic_id(i), "CPU %u: APIC ID matches the library's table", i);
		if (!apic_x2apic_mode())
			report(r->cpuid_apic_id == r->apic_id, "CPU %u: CPUID.1:EBX[31:24] = APIC ID", i);
		report(r->gs_base == (u64)pc && r->tr == TSS_SEL(pc->slot) && r->cr3 == (u64)kernel_root,
		       "CPU %u: own GS_BASE, TSS (TR 0x%x) and the library page tables", i, r->tr);
		for (unsigned j = 0; j < i; j++)
			if (reports[j].apic_id == r->apic_id)
				report(false, "CPUs %u and %u share APIC ID %u", j, i, r->apic_id);
	}
	bool distinct = true;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++) {
			u64 a = reports[i].rsp, b = reports[j].rsp;
			distinct &= (a > b ? a - b : b - a) >= 4096;
		}
	report(distinct, "every CPU runs on its own stack");
	bool numbered_by_id = true;
	for (unsigned i = 0; i < n; i++)
		numbered_by_id &= reports[i].apic_id == i;
	report_info("CPU numbers %s APIC IDs", numbered_by_id ? "equal" : "differ from");
}

static volatile u64 ran_on[MAX_CPUS];
static void mark(void *arg)
{
	ran_on[smp_id()] = (u64)arg;
}

static void test_on_cpu(void)
{
	unsigned n = cpu_count();

	if (n < 2) {
		report_skip("on_cpu to other CPUs: needs -smp 2 or more");
		return;
	}
	for (unsigned i = 1; i < n; i++) {
		on_cpu(i, mark, (void *)(0x100UL + i));
		bool only_target = ran_on[i] == 0x100 + i;
		for (unsigned j = 0; j < n; j++)
			if (j != i && ran_on[j] == 0x100 + i)
				only_target = false;
		report(only_target, "on_cpu(%u) ran the function on CPU %u only", i, i);
	}
	for (unsigned i = 1; i < n; i++)
		on_cpu_async(i, mark, (void *)0x200UL);
	for (unsigned i = 1; i < n; i++)
		on_cpu_wait(i);
	bool all = true;
	for (unsigned i = 1; i < n; i++)
		all &= ran_on[i] == 0x200;
	report(all, "on_cpu_async() reached all %u APs", n - 1);
}

/* Shared counters hammered by all CPUs at once, after a start barrier. */
static volatile u64 arrived, xadd_counter, inc_counter, locked_counter, cmpxchg_counter;
static struct spinlock lock;

static void hammer(void *arg)
{
	unsigned n = (unsigned)(u64)arg;

	atomic_inc(&arrived);
	while (arrived < n)
		pause();
	for (int i = 0; i < ITERATIONS; i++) {
		atomic_fetch_add(&xadd_counter, 1);
		atomic_inc(&inc_counter);
		/* A CMPXCHG retry loop. */
		u64 old;
		do {
			old = cmpxchg_counter;
		} while (atomic_cmpxchg(&cmpxchg_counter, old, old + 2) != old);
		/* A plain read-modify-write made exclusive by the spinlock. */
		spin_lock(&lock);
		u64 v = locked_counter;
		barrier();
		locked_counter = v + 1;
		spin_unlock(&lock);
	}
}

static void test_atomics(void)
{
	unsigned n = cpu_count();
	u64 total = (u64)n * ITERATIONS;

	on_cpus(hammer, (void *)(u64)n);
	report(xadd_counter == total, "LOCK XADD counter = %lu (expected %lu)", xadd_counter, total);
	report(inc_counter == total, "LOCK INC counter = %lu (expected %lu)", inc_counter, total);
	report(cmpxchg_counter == 2 * total, "LOCK CMPXCHG counter = %lu (expected %lu)",
	       cmpxchg_counter, 2 * total);
	report(locked_counter == total, "spinlock-protected counter = %lu (expected %lu)",
	       locked_counter, total);
	report(atomic_xchg(&locked_counter, 7) == total && locked_counter == 7,
	       "XCHG returns the old value and stores the new one");
	if (n < 2)
		report_skip("concurrent atomics: only one CPU (run with -smp 4)");
}

int main(int argc __unused, char **argv __unused)
{
	test_cpus();
	test_on_cpu();
	test_atomics();
	report_summary();
}
