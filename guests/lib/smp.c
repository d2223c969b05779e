/* AP bring-up (INIT + SIPI), the AP idle loop and on_cpu() mailboxes. */
#include "smp.h"
#include "percpu.h"
#include "apic.h"
#include "fwcfg.h"
#include "multiboot.h"
#include "printf.h"
#include "report.h"
#include "string.h"
#include "x86.h"

/* A generous bound for things that take microseconds on a real machine. */
#define BRINGUP_TIMEOUT_CYCLES (1UL << 35)

extern char ap_tramp_start[], ap_tramp_end[];
extern volatile u32 cpus_parked; /* lib/entry.S */

static volatile u64 cpus_online = 1;
static volatile u32 cpus_expected = 1; /* set before the SIPI; APs beyond it park */
static u32 apic_ids[MAX_CPUS];          /* by CPU number */

unsigned cpu_count(void)
{
	return cpus_online;
}

u32 cpu_apic_id(unsigned cpu)
{
	return apic_ids[cpu];
}

int apic_id_to_cpu(u32 apic_id)
{
	for (unsigned i = 0; i < cpu_count(); i++)
		if (apic_ids[i] == apic_id)
			return i;
	return -1;
}

unsigned smp_expected_cpus(void)
{
	char buf[16];
	const char *env = mb_env_value("NR_CPUS", buf, sizeof(buf));
	unsigned n;

	if (env)
		n = strtou64(env, NULL);
	else if (fwcfg_present())
		n = fwcfg_read(FW_CFG_NB_CPUS, 2);
	else
		n = 1; /* without fw_cfg the count would read 0xFFFF: do not wait for phantom CPUs */
	if (n == 0)
		n = 1;
	if (n > MAX_CPUS) {
		printf("INFO: %u CPUs reported, the library supports %u\n", n, MAX_CPUS);
		n = MAX_CPUS;
	}
	return n;
}

bool wait_until_set(volatile u64 *flag, u64 timeout_cycles)
{
	return wait_until_at_least(flag, 1, timeout_cycles);
}

bool wait_until_at_least(volatile u64 *counter, u64 want, u64 timeout_cycles)
{
	u64 start = rdtsc();

	while (*counter < want) {
		if (rdtsc() - start > timeout_cycles)
			return false;
		pause();
	}
	return true;
}

/*
 * CPU numbers: the BSP is 0, the APs follow in ascending APIC ID order, so
 * that on a machine with APIC IDs 0..n-1 the CPU number equals the APIC ID
 * whatever order the APs arrived in.
 */
static void number_cpus(void)
{
	unsigned n = cpus_online, next = 1;
	bool taken[MAX_CPUS] = { [0] = true };

	for (; next < n; next++) {
		unsigned best = 0;
		for (unsigned s = 1; s < n; s++)
			if (!taken[s] && (!best || percpu_area[s].apic_id < percpu_area[best].apic_id))
				best = s;
		taken[best] = true;
		cpu_slot[next] = best;
		apic_ids[next] = percpu_area[best].apic_id;
		percpu_area[best].cpu = next;
	}
	barrier();
}

void smp_init(void)
{
	unsigned expected = smp_expected_cpus();
	u8 *page0 = (u8 *)0;
	char buf[16];
	u64 start;

	if (!mb_env_value("NR_CPUS", buf, sizeof(buf)) && !fwcfg_present())
		printf("INFO: no fw_cfg signature at port 0x510 and no NR_CPUS module: using 1 CPU\n");
	apic_ids[0] = this_cpu()->apic_id;
	cpu_slot[0] = 0;
	cpus_expected = expected;
	if (expected == 1)
		return;

	/* Trampoline at physical 0, the rest of the page INT3 so a stray jump traps. */
	memset(page0, 0xcc, PAGE_SIZE);
	memcpy(page0, ap_tramp_start, ap_tramp_end - ap_tramp_start);

	apic_icr_write(APIC_DEST_ALLBUT | APIC_DM_INIT | APIC_INT_ASSERT, 0);
	apic_icr_write(APIC_DEST_ALLBUT | APIC_DM_STARTUP | APIC_INT_ASSERT | 0x00, 0);

	start = rdtsc();
	while (cpus_online < expected) {
		if (rdtsc() - start > BRINGUP_TIMEOUT_CYCLES)
			abort_msg("only %lu of %u CPUs came online", cpus_online, expected);
		pause();
	}
	if (cpus_parked)
		printf("INFO: %u CPUs beyond the %u expected halted so far\n", cpus_parked, expected);
	number_cpus();
}

static void run_mailbox(struct percpu *pc)
{
	struct mailbox *mb = &pc->mbox;
	void (*fn)(void *) = mb->fn;
	void *arg = mb->arg;

	mb->fn = NULL;
	spin_unlock(&mb->lock); /* the next poster may queue work now */
	sti();
	fn(arg);
	barrier();
	mb->done++;
}

bool smp_ap_wanted(unsigned slot)
{
	if (slot < cpus_expected)
		return true;
	atomic_inc32(&cpus_parked); /* started although NR_CPUS / fw_cfg counted fewer */
	return false;
}

__noreturn void smp_ap_online(void)
{
	struct percpu *pc = this_cpu();

	printf("CPU online: APIC ID %u\n", pc->apic_id);
	atomic_inc(&cpus_online);
	for (;;) {
		cli();
		if (pc->mbox.fn)
			run_mailbox(pc);
		else
			safe_halt(); /* the IPI_VECTOR interrupt (or any other) wakes us */
	}
}

/* Queue fn(arg) on cpu; returns the work's sequence number (0 when run here directly). */
static u64 post_work(unsigned cpu, void (*fn)(void *), void *arg)
{
	struct mailbox *mb = &cpu_data(cpu)->mbox;
	u64 seq;

	if (cpu >= cpu_count())
		abort_msg("on_cpu: CPU %u does not exist (%u online)", cpu, cpu_count());
	if (cpu == smp_id()) {
		fn(arg);
		return 0;
	}
	if (cpu == 0)
		abort_msg("on_cpu: the BSP does not take work from other CPUs");
	spin_lock(&mb->lock); /* released by the target when it takes the work */
	seq = ++mb->posted;
	mb->arg = arg;
	barrier();
	mb->fn = fn;
	apic_send_ipi(apic_ids[cpu], IPI_VECTOR);
	return seq;
}

void on_cpu_async(unsigned cpu, void (*fn)(void *), void *arg)
{
	post_work(cpu, fn, arg);
}

void on_cpu_wait(unsigned cpu)
{
	struct mailbox *mb = &cpu_data(cpu)->mbox;

	while (mb->fn || mb->done != mb->posted)
		pause();
}

void on_cpu(unsigned cpu, void (*fn)(void *), void *arg)
{
	struct mailbox *mb = &cpu_data(cpu)->mbox;
	u64 seq = post_work(cpu, fn, arg);

	while (seq && mb->done < seq)
		pause();
}

void on_cpus(void (*fn)(void *), void *arg)
{
	unsigned self = smp_id();

	for (unsigned i = 0; i < cpu_count(); i++)
		if (i != self)
			on_cpu_async(i, fn, arg);
	fn(arg);
	for (unsigned i = 0; i < cpu_count(); i++)
		if (i != self)
			on_cpu_wait(i);
}
