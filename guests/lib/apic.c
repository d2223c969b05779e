/* Local APIC access for both xAPIC (MMIO) and x2APIC (MSR) modes. */
#include "apic.h"
#include "x86.h"

#define X2APIC_MSR(reg) (0x800 + ((reg) >> 4))

static bool x2apic;
static volatile u32 *xapic_mmio = (volatile u32 *)APIC_DEFAULT_PHYS_BASE;

bool apic_x2apic_mode(void)
{
	return x2apic;
}

u32 apic_read(u32 reg)
{
	if (x2apic)
		return rdmsr(X2APIC_MSR(reg));
	return xapic_mmio[reg / 4];
}

void apic_write(u32 reg, u32 val)
{
	if (x2apic)
		wrmsr(X2APIC_MSR(reg), val);
	else
		xapic_mmio[reg / 4] = val;
}

u32 apic_id(void)
{
	u32 id = apic_read(APIC_ID);

	return x2apic ? id : id >> 24;
}

void apic_eoi(void)
{
	apic_write(APIC_EOI, 0);
}

void apic_icr_write(u32 icr_low, u32 dest)
{
	if (x2apic) {
		/* One 64-bit write, destination in bits 63:32. */
		wrmsr(X2APIC_MSR(APIC_ICR), ((u64)dest << 32) | icr_low);
		return;
	}
	while (apic_read(APIC_ICR) & APIC_ICR_BUSY)
		pause();
	apic_write(APIC_ICR2, dest << 24);
	apic_write(APIC_ICR, icr_low); /* this write sends the IPI */
}

void apic_send_ipi(u32 dest_apic_id, u8 vector)
{
	apic_icr_write(APIC_DM_FIXED | APIC_DEST_PHYSICAL | APIC_INT_ASSERT | vector, dest_apic_id);
}

void apic_self_ipi(u8 vector)
{
	apic_icr_write(APIC_DM_FIXED | APIC_DEST_SELF | APIC_INT_ASSERT | vector, 0);
}

static bool vector_bit(u32 base, u8 vector)
{
	return apic_read(base + 0x10 * (vector / 32)) & BIT(vector % 32);
}

bool apic_isr_test(u8 vector) { return vector_bit(APIC_ISR, vector); }
bool apic_irr_test(u8 vector) { return vector_bit(APIC_IRR, vector); }

int apic_isr_highest(void)
{
	for (int i = 7; i >= 0; i--) {
		u32 v = apic_read(APIC_ISR + 0x10 * i);
		if (v)
			return i * 32 + 31 - __builtin_clz(v);
	}
	return -1;
}

void apic_set_tpr(u8 tpr) { apic_write(APIC_TASKPRI, tpr); }
u8 apic_get_tpr(void) { return apic_read(APIC_TASKPRI) & 0xff; }

bool apic_init_cpu(bool want_x2apic)
{
	u64 base = rdmsr(MSR_IA32_APICBASE);
	bool to_x2apic = want_x2apic && cpu_has_x2apic();

	/*
	 * Legal transitions: disabled <-> xAPIC <-> x2APIC, x2APIC -> disabled.
	 * Leaving x2APIC for xAPIC therefore goes through "disabled". Otherwise the
	 * APIC is not disabled on the way: some implementations (QEMU's, like P6
	 * processors) cannot re-enable an APIC that was disabled through this MSR.
	 */
	if ((base & APIC_BASE_EXTD) && !to_x2apic) {
		base &= ~(APIC_BASE_EN | APIC_BASE_EXTD);
		wrmsr(MSR_IA32_APICBASE, base);
	}
	if (!(base & APIC_BASE_EN)) {
		base |= APIC_BASE_EN;
		wrmsr(MSR_IA32_APICBASE, base);
	}
	xapic_mmio = (volatile u32 *)(base & 0x000ffffffffff000UL);
	x2apic = false;
	if (to_x2apic) {
		if (!(base & APIC_BASE_EXTD)) {
			base |= APIC_BASE_EXTD;
			wrmsr(MSR_IA32_APICBASE, base);
		}
		x2apic = true;
	}
	apic_write(APIC_SPIV, APIC_SPIV_ENABLE | 0xff);
	apic_write(APIC_TASKPRI, 0);
	apic_write(APIC_LVTT, APIC_LVT_MASKED);
	apic_write(APIC_LVT0, APIC_LVT_MASKED);
	apic_write(APIC_LVT1, APIC_LVT_MASKED);
	apic_write(APIC_LVTERR, APIC_LVT_MASKED);
	return x2apic;
}

void apic_timer_set_divide(unsigned divide)
{
	/* TDCR bits 3,1,0: 000 /2, 001 /4, 010 /8, 011 /16, 100 /32, 101 /64, 110 /128, 111 /1. */
	unsigned log2 = __builtin_ctz(divide);
	u32 code = (log2 == 0) ? 7 : log2 - 1;

	apic_write(APIC_TDCR, (code & 3) | ((code & 4) << 1));
}

void apic_timer_start(u8 vector, u32 mode, u32 initial_count, bool masked)
{
	apic_write(APIC_LVTT, vector | mode | (masked ? APIC_LVT_MASKED : 0));
	apic_write(APIC_TMICT, initial_count);
}

void apic_timer_stop(void)
{
	apic_write(APIC_TMICT, 0);
	apic_write(APIC_LVTT, APIC_LVT_MASKED);
	if (cpu_has_tsc_deadline())
		wrmsr(MSR_IA32_TSC_DEADLINE, 0);
}

u32 apic_timer_current(void)
{
	return apic_read(APIC_TMCCT);
}

void apic_tsc_deadline_start(u8 vector, u64 deadline)
{
	apic_write(APIC_LVTT, vector | APIC_LVT_TIMER_TSCDEADLINE);
	/* SDM: a WRMSR to IA32_TSC_DEADLINE after the LVT write; MFENCE orders them for xAPIC MMIO. */
	asm volatile("mfence" ::: "memory");
	wrmsr(MSR_IA32_TSC_DEADLINE, deadline);
}
