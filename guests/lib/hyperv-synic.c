/* SynIC pages and SINTs, message and event-flag handling, synthetic timers, hyperv-testdev (see hyperv-synic.h). */
#include "hyperv.h"
#include "alloc.h"
#include "layout.h"
#include "percpu.h"
#include "report.h"
#include "string.h"
#include "x86.h"

static struct hv_message *sim_pages[MAX_CPUS];
static u8 *sief_pages[MAX_CPUS];

void hv_synic_enable(void)
{
	unsigned cpu = smp_id();

	if (!sim_pages[cpu])
		sim_pages[cpu] = alloc_page();
	if (!sief_pages[cpu])
		sief_pages[cpu] = alloc_page();
	/* The hypervisor does not clear these pages: stale messages would look like new ones. */
	memset(sim_pages[cpu], 0, PAGE_SIZE);
	memset(sief_pages[cpu], 0, PAGE_SIZE);
	wrmsr(HV_X64_MSR_SIMP, (u64)sim_pages[cpu] | HV_PAGE_MSR_ENABLE);
	wrmsr(HV_X64_MSR_SIEFP, (u64)sief_pages[cpu] | HV_PAGE_MSR_ENABLE);
	wrmsr(HV_X64_MSR_SCONTROL, HV_SCONTROL_ENABLE);
}

void hv_synic_disable(void)
{
	for (unsigned i = 0; i < HV_SYNIC_SINT_COUNT; i++)
		wrmsr(HV_X64_MSR_SINT(i), HV_SINT_RESET_VALUE);
	wrmsr(HV_X64_MSR_SCONTROL, 0);
	wrmsr(HV_X64_MSR_SIMP, 0);
	wrmsr(HV_X64_MSR_SIEFP, 0);
}

struct hv_message *hv_sim_slot(unsigned cpu, unsigned sint)
{
	if (!sim_pages[cpu] || sint >= HV_SYNIC_SINT_COUNT)
		abort_msg("SIM slot %u of CPU %u: SynIC not set up there", sint, cpu);
	return &sim_pages[cpu][sint];
}

volatile u8 *hv_sief_flags(unsigned cpu, unsigned sint)
{
	if (!sief_pages[cpu] || sint >= HV_SYNIC_SINT_COUNT)
		abort_msg("SIEF flags %u of CPU %u: SynIC not set up there", sint, cpu);
	return sief_pages[cpu] + sint * (HV_EVENT_FLAGS_PER_SINT / 8);
}

void hv_sint_set(unsigned sint, u8 vector, u64 flags)
{
	wrmsr(HV_X64_MSR_SINT(sint), vector | flags);
}

void hv_sint_mask(unsigned sint)
{
	wrmsr(HV_X64_MSR_SINT(sint), rdmsr(HV_X64_MSR_SINT(sint)) | HV_SINT_MASKED);
}

void hv_message_done(struct hv_message *msg)
{
	msg->type = HV_MESSAGE_TYPE_NONE;
	/*
	 * The slot must read as free before the hypervisor retries: a full
	 * barrier orders the store to MessageType before the load of the flags
	 * (on a real CPU a store can pass a later load), and the EOM WRMSR is
	 * serializing itself.
	 */
	asm volatile("mfence" ::: "memory");
	if (msg->flags & HV_MESSAGE_FLAG_PENDING)
		wrmsr(HV_X64_MSR_EOM, 0);
}

bool hv_event_flag_test_and_clear(volatile u8 *flags, unsigned flag)
{
	volatile u32 *word = (volatile u32 *)(flags + (flag / 32) * 4);
	bool was;

	asm volatile("lock btrl %2, %1" : "=@ccc"(was), "+m"(*word) : "r"(flag % 32) : "memory");
	return was;
}

void hv_stimer_set(unsigned timer, u64 config, u64 count)
{
	/*
	 * Stop first: writing CONFIG with Enable while an old COUNT is still
	 * there would arm the timer with that old COUNT. With AutoEnable it is
	 * the COUNT write that enables, so it goes last; otherwise CONFIG's
	 * Enable arms the timer, so COUNT goes first.
	 */
	wrmsr(HV_X64_MSR_STIMER_CONFIG(timer), 0);
	if (config & HV_STIMER_AUTO_ENABLE) {
		wrmsr(HV_X64_MSR_STIMER_CONFIG(timer), config);
		wrmsr(HV_X64_MSR_STIMER_COUNT(timer), count);
	} else {
		wrmsr(HV_X64_MSR_STIMER_COUNT(timer), count);
		wrmsr(HV_X64_MSR_STIMER_CONFIG(timer), config);
	}
}

void hv_stimer_stop(unsigned timer)
{
	wrmsr(HV_X64_MSR_STIMER_CONFIG(timer), 0);
	wrmsr(HV_X64_MSR_STIMER_COUNT(timer), 0);
}

void hv_testdev(unsigned cmd, unsigned vp, unsigned sint, unsigned conn)
{
	outl(((conn & 0xff) << 24) | ((cmd & 0xff) << 16) | ((vp & 0xff) << 8) | (sint & 0xff), HV_TESTDEV_PORT);
}
