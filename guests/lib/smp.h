/*
 * Multiprocessor support. The BSP starts every AP with INIT + one SIPI
 * (vector 0, "all excluding self") after copying the real-mode trampoline to
 * physical address 0; APs then idle in a HLT loop and run work posted with
 * on_cpu(). CPU numbers are dense (0 = BSP, APs numbered in arrival order).
 */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include "types.h"

/* Expected CPU count: "NR_CPUS=" in the environment module, else fw_cfg key 5, else 1. */
unsigned smp_expected_cpus(void);
/* Library internal: start the APs and wait for them (BSP), mark this AP online (AP). */
void smp_init(void);
__noreturn void smp_ap_online(void);
/* False (and the AP should halt for good) if slot is beyond the expected CPU count. */
bool smp_ap_wanted(unsigned slot);

/* CPUs online (all of them once main() runs). */
unsigned cpu_count(void);
u32 cpu_apic_id(unsigned cpu);
/* CPU number of an APIC ID, or -1. */
int apic_id_to_cpu(u32 apic_id);

/*
 * Run fn(arg) on cpu with interrupts enabled, in its idle loop, and wait
 * for it to finish. Targets are APs or the calling CPU itself (the BSP never
 * idles, so APs cannot hand work to it).
 */
void on_cpu(unsigned cpu, void (*fn)(void *), void *arg);
/* Post fn(arg) to cpu and return once it has been queued (one slot per CPU). */
void on_cpu_async(unsigned cpu, void (*fn)(void *), void *arg);
/* Wait until cpu has finished every work posted to it. */
void on_cpu_wait(unsigned cpu);
/* Run fn(arg) on every CPU (the others concurrently, then this one) and wait for all. */
void on_cpus(void (*fn)(void *), void *arg);

/* Spin until *flag != 0 or the TSC advanced by timeout cycles; returns whether it was set. */
bool wait_until_set(volatile u64 *flag, u64 timeout_cycles);
/* Spin (with PAUSE) until *counter >= want; false after timeout_cycles TSC cycles. */
bool wait_until_at_least(volatile u64 *counter, u64 want, u64 timeout_cycles);

#endif
