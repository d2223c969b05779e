/* Hyper-V detection, VP index, guest OS ID and reference time (see hyperv.h). */
#include "hyperv.h"
#include "alloc.h"
#include "x86.h"
#include "layout.h"
#include "percpu.h"
#include "smp.h"

u32 hv_max_leaf(void)
{
	return cpuid(HV_CPUID_VENDOR_AND_MAX).a;
}

bool hv_present(void)
{
	/*
	 * CPUID.1:ECX[31] says a hypervisor is there; the interface signature
	 * "Hv#1" says it speaks Hyper-V. The vendor string ("Microsoft Hv" by
	 * default) can be changed (QEMU's hv-vendor-id), so it does not decide.
	 */
	if (!(cpuid(1).c & BIT(31)))
		return false;
	u32 max = hv_max_leaf();
	if (max < HV_CPUID_MIN_MAX_LEAF || max > 0x4000ffff)
		return false;
	return cpuid(HV_CPUID_INTERFACE).a == HV_SIGNATURE_HV1;
}

void hv_vendor(char out[13])
{
	struct cpuid r = cpuid(HV_CPUID_VENDOR_AND_MAX);
	u32 words[3] = { r.b, r.c, r.d };

	for (int i = 0; i < 12; i++)
		out[i] = (char)(words[i / 4] >> (8 * (i % 4)));
	out[12] = 0;
}

u64 hv_privileges(void)
{
	struct cpuid r = cpuid(HV_CPUID_FEATURES);

	return r.a | ((u64)r.b << 32);
}

u32 hv_features(void) { return cpuid(HV_CPUID_FEATURES).d; }
u32 hv_recommendations(void) { return cpuid(HV_CPUID_RECOMMENDATIONS).a; }
u32 hv_spin_retries(void) { return cpuid(HV_CPUID_RECOMMENDATIONS).b; }

u32 hv_vp_index(void)
{
	return (u32)rdmsr(HV_X64_MSR_VP_INDEX);
}

u32 hv_vp_of[MAX_CPUS];

static void record_vp_index(void *arg)
{
	(void)arg;
	hv_vp_of[smp_id()] = hv_vp_index();
}

void hv_collect_vp_indexes(void)
{
	on_cpus(record_vp_index, NULL);
}

u64 hv_vp_mask(u64 cpus)
{
	u64 m = 0;

	for (unsigned i = 0; i < cpu_count(); i++)
		if (cpus & BIT(i))
			m |= BIT(hv_vp_of[i]);
	return m;
}

void hv_set_guest_os_id(void)
{
	if (rdmsr(HV_X64_MSR_GUEST_OS_ID) == 0)
		wrmsr(HV_X64_MSR_GUEST_OS_ID, HV_GUEST_OS_ID_VSMVISOR_TESTS);
}

u64 hv_time_ref_count(void)
{
	return rdmsr(HV_X64_MSR_TIME_REF_COUNT);
}

u64 hv_tsc_page_time(u64 tsc, u64 scale, s64 offset)
{
	/* MUL gives the 128-bit product; its high half is (tsc * scale) >> 64. */
	return (u64)(((unsigned __int128)tsc * scale) >> 64) + (u64)offset;
}

struct hv_tsc_page *hv_tsc_page_enable(void)
{
	struct hv_tsc_page *page = alloc_page();

	wrmsr(HV_X64_MSR_REFERENCE_TSC, (u64)page | HV_PAGE_MSR_ENABLE);
	return page;
}

bool hv_tsc_page_read(const struct hv_tsc_page *page, u64 *time, u32 *sequence)
{
	u32 seq;
	u64 scale, tsc;
	s64 offset;

	do {
		seq = page->sequence;
		barrier();
		if (seq == 0) {
			if (sequence)
				*sequence = 0;
			return false;
		}
		scale = page->scale;
		offset = page->offset;
		tsc = rdtsc();
		barrier();
	} while (page->sequence != seq);
	*time = hv_tsc_page_time(tsc, scale, offset);
	if (sequence)
		*sequence = seq;
	return true;
}
