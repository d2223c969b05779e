/*
 * Per-CPU data, reached through GS_BASE (the GS selector itself stays null in
 * 64-bit mode). Field 0 points at the structure itself so that
 * "mov %gs:0, reg" yields its address.
 */
#ifndef GUEST_PERCPU_H
#define GUEST_PERCPU_H

#include "types.h"
#include "layout.h"
#include "atomic.h"

struct tss64 {
	u32 reserved0;
	u64 rsp0, rsp1, rsp2;
	u64 reserved1;
	u64 ist[7]; /* ist[0] is IST1 */
	u64 reserved2;
	u16 reserved3;
	u16 iomap_base;
} __packed;

/* One-slot work queue for on_cpu(). */
struct mailbox {
	struct spinlock lock;            /* held by the poster until the target takes the work */
	void (*volatile fn)(void *);
	void *volatile arg;
	volatile u64 posted;             /* works posted so far */
	volatile u64 done;               /* works finished so far */
};

struct catch_frame;

struct percpu {
	struct percpu *self;             /* must stay at offset 0 */
	u32 cpu;                         /* CPU number: 0 = BSP, then APs by ascending APIC ID */
	u32 apic_id;
	u32 slot;                        /* index in percpu_area, stack and TSS: arrival order */
	struct catch_frame *catch_top;   /* innermost expect_exception()/run_user() */
	u64 user_stack_top;
	u64 ist_df_base, ist_nmi_base;   /* lowest address of each IST stack */
	bool in_panic;
	struct mailbox mbox;
	struct tss64 tss __aligned(16);
} __aligned(64);

extern struct percpu percpu_area[MAX_CPUS];
extern u32 cpu_slot[MAX_CPUS];           /* CPU number -> slot */

static inline struct percpu *this_cpu(void)
{
	struct percpu *p;
	asm volatile("mov %%gs:0, %0" : "=r"(p));
	return p;
}

static inline struct percpu *cpu_data(unsigned cpu)
{
	return &percpu_area[cpu_slot[cpu]];
}

static inline unsigned smp_id(void)
{
	return this_cpu()->cpu;
}

#endif
