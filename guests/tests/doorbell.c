/*
 * The doorbell device (vsmvisor's ioeventfd example, `--device doorbell`,
 * src/vmm/devices/doorbell.ts): the guest queues SQUARE requests in a ring
 * in its RAM and rings the doorbell after each one, alternating the MMIO
 * doorbell and the PIO doorbell; before each request it reads the CONFIG
 * register, as a driver reads its queue size. On vsmvisor the rings are
 * ioeventfd writes and the reads ioeventfd DATAREAD reads (kvm-api-facts
 * §5.1 and our §5.2 read support): neither exits to the VMM, which services
 * the ring between scheduling rounds and answers with a completion
 * interrupt. From the inside the guest checks the results and the device's
 * counters (every ring and read counted, only the deliberate 1-byte ring
 * came as an exit, rings coalesced into fewer services); the host-side test
 * (test/guests/doorbell.test.ts) checks from the trace that no ring or read
 * caused an exit. Without the device (QEMU, or no --device) MAGIC does not
 * read back and everything is skipped.
 */
#include "libguest.h"

#define DB_BASE 0xfeb00000UL
#define DB_MAGIC 0x00
#define DB_CONFIG 0x08
#define DB_DOORBELL 0x10
#define DB_RING 0x18
#define DB_IRQ 0x20
#define DB_PORT 0x6000
#define DB_PIO_DOORBELL 0
#define DB_PIO_MAGIC 4
#define DB_PIO_KICK 1

#define MAGIC 0x6c626476u     /* "vdbl" */
#define VERSION 1
#define ENTRIES 64
#define OP_SQUARE 1
#define VECTOR 0x42
#define RINGS 2000

struct entry {
	u32 op, arg;
	u64 result;
};

/* The ring page (doorbell.ts): counters written by the device, then the entries at 0x40. */
struct ring {
	u32 produced, consumed, kicks, exit_kicks, reads, services, irqs;
	u32 reserved[9];
	struct entry e[ENTRIES];
};

static struct ring ring __aligned(4096);
static volatile u64 irqs_taken;

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

static inline u16 mmio_read16(u64 a) { return *(volatile u16 *)a; }
static inline u32 mmio_read32(u64 a) { return *(volatile u32 *)a; }
static inline u64 mmio_read64(u64 a) { return *(volatile u64 *)a; }
static inline void mmio_write8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline void mmio_write32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline void mmio_write64(u64 a, u64 v) { *(volatile u64 *)a = v; }

static void completion_handler(struct ex_regs *regs)
{
	(void)regs;
	irqs_taken++;
	apic_eoi();
}

/* Sleeps until `done` holds; the device's completion interrupt wakes us (sti; hlt has no window). */
static void wait_until(bool (*done)(void))
{
	for (;;) {
		cli();
		if (done()) {
			sti();
			return;
		}
		safe_halt();
	}
}

static u32 produced, want_kicks, want_reads;

static bool ring_has_room(void) { return produced - READ_ONCE(ring.consumed) < ENTRIES; }

static bool all_done(void)
{
	return READ_ONCE(ring.consumed) == produced && READ_ONCE(ring.kicks) == want_kicks &&
	       READ_ONCE(ring.reads) == want_reads;
}

/* Queues SQUARE(arg); checks the result of the request that used the slot before. */
static void push(u32 arg, unsigned *wrong)
{
	wait_until(ring_has_room);
	struct entry *e = &ring.e[produced % ENTRIES];
	if (produced >= ENTRIES && READ_ONCE(e->result) != (u64)(arg - ENTRIES) * (arg - ENTRIES))
		(*wrong)++;
	e->op = OP_SQUARE;
	e->arg = arg;
	barrier();
	WRITE_ONCE(ring.produced, ++produced);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	u32 magic = mmio_read32(DB_BASE + DB_MAGIC);
	if (magic != MAGIC) {
		report_skip("no doorbell device (MAGIC reads 0x%x, not 0x%x): run with --device doorbell", magic, MAGIC);
		report_summary();
	}
	u32 reads = 1;
	u64 config = mmio_read64(DB_BASE + DB_CONFIG);
	reads++;
	report(config == ((u64)VERSION << 32 | ENTRIES), "CONFIG (8-byte DATAREAD) = 0x%lx: version %u, %u entries",
	       config, VERSION, ENTRIES);
	u32 pio_magic = inl(DB_PORT + DB_PIO_MAGIC);
	reads++;
	report(pio_magic == MAGIC, "PIO MAGIC (4-byte DATAREAD at port 0x%x) = 0x%x", DB_PORT + DB_PIO_MAGIC, pio_magic);
	/* A 2-byte read misses the 4-byte DATAREAD and exits: the device must give the same bytes. */
	u16 half = mmio_read16(DB_BASE + DB_MAGIC + 2);
	report(half == MAGIC >> 16, "a 2-byte read of MAGIC+2 (a VMM exit) = 0x%x, the same bytes", half);

	handle_exception(VECTOR, completion_handler);
	memset(&ring, 0, sizeof(ring));
	mmio_write64(DB_BASE + DB_RING, (u64)&ring);
	mmio_write32(DB_BASE + DB_IRQ, VECTOR);
	report(mmio_read64(DB_BASE + DB_RING) == (u64)&ring, "RING reads back 0x%lx", (u64)&ring);
	/* Setting RING counts what the notifiers held: our three DATAREAD reads so far. */
	u32 kicks0 = READ_ONCE(ring.kicks), exit_kicks0 = READ_ONCE(ring.exit_kicks), services0 = READ_ONCE(ring.services);
	u32 irqs0 = READ_ONCE(ring.irqs);
	report(READ_ONCE(ring.reads) == reads, "the device counted the %u DATAREAD reads made before RING (%u)", reads,
	       READ_ONCE(ring.reads));
	want_reads = READ_ONCE(ring.reads) + RINGS;

	unsigned wrong = 0, bad_config = 0;
	for (u32 k = 0; k < RINGS; k++) {
		if (mmio_read64(DB_BASE + DB_CONFIG) != ((u64)VERSION << 32 | ENTRIES))
			bad_config++;
		push(k, &wrong);
		if (k & 1)
			outw(DB_PIO_KICK, DB_PORT + DB_PIO_DOORBELL);
		else
			mmio_write32(DB_BASE + DB_DOORBELL, k);
	}
	/* One ring of another size: it misses the 4-byte ioeventfd and reaches the device as an exit. */
	push(RINGS, &wrong);
	mmio_write8(DB_BASE + DB_DOORBELL, 1);
	want_kicks = kicks0 + RINGS + 1;
	wait_until(all_done);

	for (u32 k = produced - ENTRIES; k < produced; k++)
		if (ring.e[k % ENTRIES].result != (u64)k * k)
			wrong++;
	report(wrong == 0 && bad_config == 0, "%u requests answered, every SQUARE result right (%u wrong, %u bad CONFIG reads)",
	       produced, wrong, bad_config);
	report(ring.kicks - kicks0 == RINGS + 1, "every ring was counted: %u (MMIO and PIO doorbells)", ring.kicks - kicks0);
	report(ring.exit_kicks - exit_kicks0 == 1, "only the deliberate 1-byte ring came as a VMM exit (%u)",
	       ring.exit_kicks - exit_kicks0);
	report(ring.reads == want_reads, "every CONFIG read was signalled (%u reads in all)", ring.reads);
	u32 services = ring.services - services0;
	report(services > 0 && services < RINGS, "the VMM took the rings in %u services: signals coalesce between rounds",
	       services);
	report(ring.irqs > irqs0 && irqs_taken > 0, "completion interrupts: %u raised, %lu taken", ring.irqs - irqs0,
	       irqs_taken);
	report_summary();
}
