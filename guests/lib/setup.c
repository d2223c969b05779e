/*
 * C side of boot. bsp_main() and ap_main() are called from lib/entry.S in
 * 64-bit mode with GS_BASE pointing at the CPU's struct percpu.
 * BSP order: Multiboot info, IDT, page allocator, library page tables,
 * PIC masked, TSS + local APIC, APs, STI, main(argc, argv), exit(main's result).
 */
#include "libguest.h"

struct percpu percpu_area[MAX_CPUS];
u32 cpu_slot[MAX_CPUS];
/* Read by lib/entry.S to index percpu_area without knowing the structure's size. */
const u32 percpu_stride = sizeof(struct percpu);

extern char edata[], end[]; /* lib/guest.ld */

static bool want_x2apic;

static void ipi_handler(struct ex_regs *regs)
{
	(void)regs;
	apic_eoi(); /* work itself runs in the idle loop (lib/smp.c) */
}

static void spurious_handler(struct ex_regs *regs)
{
	(void)regs; /* spurious interrupts are not in service: no EOI */
}

static void mask_pic(void)
{
	outb(0xff, 0x21);
	outb(0xff, 0xa1);
}

static void alloc_setup(void)
{
	const struct mb_info *mbi = mb_info();
	u64 start = (u64)end, top;

	if (!(mbi->flags & MB_INFO_MEMORY))
		abort_msg("the Multiboot info has no mem_upper (flag bit 0 clear)");
	top = (1024UL + mbi->mem_upper) * 1024;
	if (top > (4UL << 30))
		top = 4UL << 30; /* the library maps 0-4 GiB */
	/* Loaders put modules and strings right after the image: stay above them. */
	if (mb_highest_used() > start && mb_highest_used() < top)
		start = mb_highest_used();
	alloc_init(start, top);
}

static void cpu_common_init(struct percpu *pc)
{
	tss_init(pc);
	idt_load();
	if (pc->slot)
		vm_ap_init();
	apic_init_cpu(want_x2apic);
	pc->apic_id = apic_id();
}

void bsp_main(void)
{
	struct percpu *pc = this_cpu();

	pc->cpu = 0;
	pc->slot = 0;
	mb_init();
	idt_init();
	handle_exception(IPI_VECTOR, ipi_handler);
	handle_exception(SPURIOUS_VECTOR, spurious_handler);
	alloc_setup();
	vm_init();
	mask_pic();
	want_x2apic = !has_arg("no-x2apic");
	cpu_common_init(pc);
	smp_init();
	sti();
	exit(main(mb_argc(), mb_argv()));
}

void ap_main(unsigned slot)
{
	struct percpu *pc = this_cpu();

	pc->slot = slot;
	pc->cpu = ~0u; /* numbered by the BSP once every CPU is online */
	if (!smp_ap_wanted(slot))
		for (;;) {
			cli();
			hlt();
		}
	cpu_common_init(pc);
	smp_ap_online();
}
