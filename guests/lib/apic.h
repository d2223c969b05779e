/*
 * Local APIC in xAPIC (MMIO at the APIC_BASE MSR address, default
 * 0xFEE00000) or x2APIC mode (MSR 0x800 + offset/16). Register arguments are
 * always the xAPIC MMIO offsets; the mode decides how they are reached.
 */
#ifndef GUEST_APIC_H
#define GUEST_APIC_H

#include "types.h"

#define APIC_ID 0x20
#define APIC_LVR 0x30
#define APIC_TASKPRI 0x80
#define APIC_PROCPRI 0xa0
#define APIC_EOI 0xb0
#define APIC_LDR 0xd0
#define APIC_DFR 0xe0
#define APIC_SPIV 0xf0
#define APIC_ISR 0x100
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVTT 0x320
#define APIC_LVTTHMR 0x330
#define APIC_LVTPC 0x340
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_LVTERR 0x370
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
#define APIC_TDCR 0x3e0
#define APIC_SELF_IPI 0x3f0        /* x2APIC only (MSR 0x83F) */

#define APIC_BASE_BSP BIT(8)
#define APIC_BASE_EXTD BIT(10)
#define APIC_BASE_EN BIT(11)
#define APIC_DEFAULT_PHYS_BASE 0xfee00000UL

#define APIC_SPIV_ENABLE BIT(8)

/* ICR low fields. */
#define APIC_DM_FIXED 0x000
#define APIC_DM_LOWEST 0x100
#define APIC_DM_SMI 0x200
#define APIC_DM_NMI 0x400
#define APIC_DM_INIT 0x500
#define APIC_DM_STARTUP 0x600
#define APIC_DEST_PHYSICAL 0x000
#define APIC_DEST_LOGICAL 0x800
#define APIC_ICR_BUSY 0x1000
#define APIC_INT_ASSERT 0x4000
#define APIC_INT_LEVELTRIG 0x8000
#define APIC_DEST_NOSHORT 0x00000
#define APIC_DEST_SELF 0x40000
#define APIC_DEST_ALLINC 0x80000
#define APIC_DEST_ALLBUT 0xc0000

/* LVT fields. */
#define APIC_LVT_MASKED BIT(16)
#define APIC_LVT_TIMER_ONESHOT (0 << 17)
#define APIC_LVT_TIMER_PERIODIC (1 << 17)
#define APIC_LVT_TIMER_TSCDEADLINE (2 << 17)

bool apic_x2apic_mode(void);
u32 apic_read(u32 reg);
void apic_write(u32 reg, u32 val);
/* This CPU's APIC ID (8 bits in xAPIC, 32 in x2APIC). */
u32 apic_id(void);
void apic_eoi(void);
/* Send an IPI: icr_low holds vector, delivery mode, destination mode, shorthand. */
void apic_icr_write(u32 icr_low, u32 dest);
/* Fixed IPI to one APIC ID in physical destination mode. */
void apic_send_ipi(u32 dest_apic_id, u8 vector);
/* Fixed self-IPI through the ICR "self" shorthand. */
void apic_self_ipi(u8 vector);
/* Bit of the 256-bit ISR / IRR / TMR for a vector. */
bool apic_isr_test(u8 vector);
bool apic_irr_test(u8 vector);
/* Highest vector set in ISR, or -1. */
int apic_isr_highest(void);
void apic_set_tpr(u8 tpr);
u8 apic_get_tpr(void);

/*
 * Enable the local APIC of this CPU in xAPIC mode, or in x2APIC mode when
 * want_x2apic and CPUID.1:ECX[21]; SPIV = 0x1FF, TPR 0, LVTs masked.
 * Returns whether the APIC is in x2APIC mode.
 */
bool apic_init_cpu(bool want_x2apic);

/* Timer. divide is 1, 2, 4, ..., 128. mode is one of APIC_LVT_TIMER_*. */
void apic_timer_set_divide(unsigned divide);
void apic_timer_start(u8 vector, u32 mode, u32 initial_count, bool masked);
void apic_timer_stop(void);
u32 apic_timer_current(void);
/* Arm the TSC-deadline timer (needs CPUID.1:ECX[24]); deadline 0 disarms it. */
void apic_tsc_deadline_start(u8 vector, u64 deadline);

#endif
