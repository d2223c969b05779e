/*
 * bench-ipi: an IPI ping-pong between CPU 0 and CPU 1 for bench/smp.ts.
 * CPU 0 sends a fixed IPI to CPU 1 and waits for CPU 1's fixed IPI back,
 * iters=N times; CPU 1 answers each IPI it receives. Each side counts the
 * IPIs it received in the handler and waits for the count to move, in HLT
 * (wait=hlt, the default: "sti; hlt" with IF=0 around the check, so no
 * wake-up is lost) or spinning with PAUSE (wait=spin). Prints the round trips
 * and the TSC cycles they took. Needs --smp 2 or more.
 *
 *   bench-ipi.elf iters=N [wait=hlt|spin]   (default 20000, hlt)
 */
#include "bench.h"

#define PING_VECTOR 0x41

static volatile u64 received[MAX_CPUS];
static bool spin_wait;

static void ping_handler(struct ex_regs *regs)
{
	(void)regs;
	received[smp_id()]++;
	apic_eoi();
}

/* Wait until this CPU has received more than `seen` IPIs. */
static void wait_for(volatile u64 *count, u64 seen)
{
	if (spin_wait) {
		while (*count <= seen)
			pause();
		return;
	}
	cli();
	while (*count <= seen) {
		safe_halt(); /* sti; hlt: the interrupt cannot slip in between */
		cli();
	}
	sti();
}

static void responder(void *arg)
{
	u64 n = (u64)arg;
	u32 bsp = cpu_apic_id(0);

	for (u64 i = 0; i < n; i++) {
		wait_for(&received[1], i);
		apic_send_ipi(bsp, PING_VECTOR);
	}
}

int main(int argc, char **argv)
{
	u64 n = iters_arg(20000), t0, t1;
	const char *mode = arg_value("wait");

	(void)argc;
	(void)argv;
	if (cpu_count() < 2)
		abort_msg("bench-ipi needs 2 CPUs, %u online (run with --smp 2)", cpu_count());
	if (mode && strcmp(mode, "spin") && strcmp(mode, "hlt"))
		abort_msg("wait=%s: the modes are hlt and spin", mode);
	spin_wait = mode && !strcmp(mode, "spin");
	handle_exception(PING_VECTOR, ping_handler);
	on_cpu_async(1, responder, (void *)n);
	t0 = rdtsc();
	for (u64 i = 0; i < n; i++) {
		apic_send_ipi(cpu_apic_id(1), PING_VECTOR);
		wait_for(&received[0], i);
	}
	t1 = rdtsc();
	on_cpu_wait(1);
	printf("bench-ipi: round_trips=%lu wait=%s received=%lu/%lu tsc_cycles=%lu\n", n,
	       spin_wait ? "spin" : "hlt", received[0], received[1], t1 - t0);
	return received[0] == n && received[1] == n ? 0 : 1;
}
