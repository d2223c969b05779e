/* Descriptor tables: 64-bit TSS descriptors in the GDT, interrupt gates in the IDT. */
#include "desc.h"
#include "x86.h"
#include "string.h"

struct idt_gate {
	u16 offset0;
	u16 selector;
	u8 ist;
	u8 type_attr; /* P | DPL | type (0xE = 64-bit interrupt gate) */
	u16 offset1;
	u32 offset2;
	u32 reserved;
} __packed;

extern u64 gdt64[GDT_ENTRIES];          /* lib/entry.S */
extern char isr_stubs[];                /* lib/isr.S: 256 stubs, 16 bytes apart */

static struct idt_gate idt[256] __aligned(16);
static u8 ist_stacks[MAX_CPUS][2][IST_STACK_SIZE] __aligned(16);

void tss_init(struct percpu *pc)
{
	struct tss64 *t = &pc->tss;
	u64 base = (u64)t, limit = sizeof(*t) - 1;
	unsigned slot = TSS_SEL(pc->slot) / 8;

	memset(t, 0, sizeof(*t));
	pc->ist_df_base = (u64)ist_stacks[pc->slot][0];
	pc->ist_nmi_base = (u64)ist_stacks[pc->slot][1];
	t->ist[IST_DF - 1] = pc->ist_df_base + IST_STACK_SIZE;
	t->ist[IST_NMI - 1] = pc->ist_nmi_base + IST_STACK_SIZE;
	t->rsp0 = read_rsp() & ~15UL;     /* replaced by run_user() before each entry to CPL3 */
	t->iomap_base = sizeof(*t);       /* no I/O bitmap: CPL3 port access faults */

	/* Available 64-bit TSS (type 9), present, DPL 0; the base spans both 8-byte slots. */
	gdt64[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89UL << 40) |
		      (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt64[slot + 1] = base >> 32;
	ltr(TSS_SEL(pc->slot));
}

void *isr_stub(unsigned vec)
{
	return isr_stubs + 16 * vec;
}

void set_idt_entry(unsigned vec, void *entry, unsigned dpl, unsigned ist)
{
	u64 a = (u64)entry;
	struct idt_gate *g = &idt[vec & 0xff];

	g->offset0 = a & 0xffff;
	g->selector = KERNEL_CS;
	g->ist = ist & 7;
	g->type_attr = 0x80 | ((dpl & 3) << 5) | 0xe;
	g->offset1 = (a >> 16) & 0xffff;
	g->offset2 = a >> 32;
	g->reserved = 0;
}

void set_idt_default(unsigned vec, unsigned dpl, unsigned ist)
{
	set_idt_entry(vec, isr_stub(vec), dpl, ist);
}

void set_idt_dpl(unsigned vec, unsigned dpl)
{
	idt[vec & 0xff].type_attr = (idt[vec & 0xff].type_attr & ~0x60) | ((dpl & 3) << 5);
}

void set_idt_present(unsigned vec, bool present)
{
	if (present)
		idt[vec & 0xff].type_attr |= 0x80;
	else
		idt[vec & 0xff].type_attr &= ~0x80;
}

void idt_load(void)
{
	struct descriptor_table_ptr p = { sizeof(idt) - 1, (u64)idt };

	lidt(&p);
}

void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++)
		set_idt_default(v, 0, 0);
	/* INT3, INTO and the user-exit gate may be used from CPL3. */
	set_idt_dpl(BP_VECTOR, 3);
	set_idt_dpl(OF_VECTOR, 3);
	set_idt_dpl(USER_EXIT_VECTOR, 3);
	set_idt_default(DF_VECTOR, 0, IST_DF);
	set_idt_default(NMI_VECTOR, 0, IST_NMI);
	idt_load();
}
