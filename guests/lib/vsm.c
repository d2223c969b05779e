/* VTL1 on every VP and its service loop (see vsm.h; tlfs-vsm-facts.md §2.11-§2.15, §3.1-§3.7, §3.10, §4.1-§4.5). */
#include "vsm.h"
#include "libguest.h"

_Static_assert(sizeof(struct hv_initial_vp_context) == 224, "HV_INITIAL_VP_CONTEXT is 224 bytes");
_Static_assert(__builtin_offsetof(struct hv_vp_assist_page, vtl_control) == 0x08, "VtlControl at 0x08");
_Static_assert(__builtin_offsetof(struct hv_vp_assist_page, intercept_message) == 0x70, "intercept message at 0x70");
_Static_assert(sizeof(struct hv_message) == HV_MESSAGE_SIZE, "HV_MESSAGE is 256 bytes");
_Static_assert(sizeof(struct vsm_vp) <= PAGE_SIZE && sizeof(struct percpu) <= PAGE_SIZE, "one page each");

#define MSR_PAT 0x277
#define SEG_TSS_BUSY_PRESENT 0x8b /* P = 1, type 11: busy 64-bit TSS, as a loaded TR has it */
#define GATE_INTERRUPT_PRESENT 0x8e

extern u64 gdt64[GDT_ENTRIES];            /* lib/entry.S */
void isr_dispatch(struct ex_regs *regs);  /* lib/exceptions.c: catches for expect_exception() */

u64 vsm_vtl0_call_stub, vsm_vtl0_return_stub, vsm_vtl1_call_stub, vsm_vtl1_return_stub;
static struct vsm_vp *vps[MAX_CPUS];
static void *vtl1_hypercall_page;
static vsm_command_fn commands[VSM_MAX_COMMANDS];
static vsm_irq_fn irq_handlers[256];
static vsm_message_fn message_handler;

struct vsm_vp *vsm_vp_of(unsigned cpu)
{
	if (cpu >= MAX_CPUS || !vps[cpu])
		abort_msg("VSM: CPU %u has no VP state (vsm_init() not run, or no such CPU)", cpu);
	return vps[cpu];
}

struct vsm_hvc vsm_vtl0_hvc(void)
{
	return (struct vsm_hvc){ hv_hypercall_page, hv_input_page(), hv_output_page() };
}

// ---------------------------------------------------------------- hypercalls

u64 vsm_hvc_call(const struct vsm_hvc *h, u64 control)
{
	register u64 r8 asm("r8") = (u64)h->out;
	u64 rdx = (u64)h->in, rcx = control, result;

	asm volatile("call *%[page]"
		     : "=a"(result), "+c"(rcx), "+d"(rdx), "+r"(r8)
		     : [page] "r"(h->page)
		     : "cc", "memory", "r9", "r10", "r11");
	return result;
}

/* The 16-byte Get/SetVpRegisters header (§2.15). */
static void vp_registers_header(const struct vsm_hvc *h, u32 vp, u8 input_vtl)
{
	h->in[0] = HV_PARTITION_ID_SELF;
	h->in[1] = vp | ((u64)input_vtl << 32);
}

unsigned vsm_get_regs(const struct vsm_hvc *h, u32 vp, u8 input_vtl, const u32 *names, unsigned n, void *values)
{
	u32 *list = (u32 *)&h->in[2];

	if (n > PAGE_SIZE / 16)
		abort_msg("GetVpRegisters of %u registers: the output page holds %lu", n, PAGE_SIZE / 16);
	vp_registers_header(h, vp, input_vtl);
	for (unsigned i = 0; i < n; i++)
		list[i] = names[i];
	memset(h->out, 0xff, 16 * n);
	unsigned s = HV_RESULT_STATUS(vsm_hvc_call(h, HVCALL_GET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(n)));
	if (values)
		memcpy(values, h->out, 16 * n);
	return s;
}

unsigned vsm_get_reg(const struct vsm_hvc *h, u32 vp, u8 input_vtl, u32 name, void *value)
{
	return vsm_get_regs(h, vp, input_vtl, &name, 1, value);
}

u64 vsm_get_u64(const struct vsm_hvc *h, u32 name)
{
	u64 v[2];
	unsigned s = vsm_get_reg(h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, name, v);

	if (s != HV_STATUS_SUCCESS)
		abort_msg("GetVpRegisters(0x%x) failed with status 0x%x", name, s);
	return v[0];
}

u64 vsm_set_regs(const struct vsm_hvc *h, u32 vp, u8 input_vtl, const u32 *names, const u64 *values, unsigned n)
{
	if (n > (PAGE_SIZE - 16) / 32)
		abort_msg("SetVpRegisters of %u registers: the input page holds %lu", n, (PAGE_SIZE - 16) / 32);
	vp_registers_header(h, vp, input_vtl);
	for (unsigned i = 0; i < n; i++) {
		/* Element (§2.15): name u32, 12 reserved bytes, 16-byte value. */
		u64 *e = &h->in[2 + 4 * i];
		e[0] = names[i];
		e[1] = 0;
		e[2] = values[i];
		e[3] = 0;
	}
	return vsm_hvc_call(h, HVCALL_SET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(n));
}

unsigned vsm_set_reg(const struct vsm_hvc *h, u32 vp, u8 input_vtl, u32 name, u64 value)
{
	return HV_RESULT_STATUS(vsm_set_regs(h, vp, input_vtl, &name, &value, 1));
}

unsigned vsm_set_reg128(const struct vsm_hvc *h, u32 vp, u8 input_vtl, u32 name, const void *value)
{
	vp_registers_header(h, vp, input_vtl);
	/* One element (§2.15): name u32, 12 reserved bytes, the 16-byte value. */
	h->in[2] = name;
	h->in[3] = 0;
	memcpy(&h->in[4], value, 16);
	return HV_RESULT_STATUS(vsm_hvc_call(h, HVCALL_SET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(1)));
}

unsigned vsm_enable_partition_vtl_flags(const struct vsm_hvc *h, u64 partition, u8 vtl, u8 flags)
{
	h->in[0] = partition;
	h->in[1] = vtl | ((u64)flags << 8); /* TargetVtl at byte 8, Flags at byte 9 (§2.12) */
	return HV_RESULT_STATUS(vsm_hvc_call(h, HVCALL_ENABLE_PARTITION_VTL));
}

unsigned vsm_enable_partition_vtl(const struct vsm_hvc *h, u64 partition, u8 vtl)
{
	return vsm_enable_partition_vtl_flags(h, partition, vtl, 0);
}

unsigned vsm_enable_vp_vtl(const struct vsm_hvc *h, u64 partition, u32 vp, u8 vtl, const struct hv_initial_vp_context *ctx)
{
	h->in[0] = partition;
	h->in[1] = vp | ((u64)vtl << 32);
	memcpy(&h->in[2], ctx, sizeof(*ctx));
	return HV_RESULT_STATUS(vsm_hvc_call(h, HVCALL_ENABLE_VP_VTL));
}

_Static_assert(sizeof(struct hv_memory_intercept) == HV_MEMORY_INTERCEPT_BYTES, "memory intercept payload with registers: 0xF0 bytes");
_Static_assert(__builtin_offsetof(struct hv_memory_intercept, cache_type) == 0x28 &&
	       __builtin_offsetof(struct hv_memory_intercept, gva) == 0x30 &&
	       __builtin_offsetof(struct hv_memory_intercept, insn_bytes) == 0x40 &&
	       __builtin_offsetof(struct hv_memory_intercept, ds) == 0x50 &&
	       __builtin_offsetof(struct hv_memory_intercept, gprs) == 0x70, "memory intercept layout (§4.5)");
_Static_assert(sizeof(struct hv_translate_ex_output) == 0x40 &&
	       __builtin_offsetof(struct hv_translate_ex_output, gpa_page) == 0x30, "TranslateVirtualAddressEx output (§5.3)");

u64 vsm_hvc_call_xmm(const struct vsm_hvc *h, u64 control, const void *in, unsigned in_len, void *out, unsigned out_len)
{
	u64 block[HV_XMM_BLOCK_BYTES / 8];
	unsigned out_at = ALIGN_UP(in_len, 16);

	if (in_len > HV_XMM_BLOCK_BYTES || out_at + out_len > HV_XMM_BLOCK_BYTES)
		abort_msg("XMM fast hypercall: %u bytes in + %u out do not fit 112 bytes", in_len, out_len);
	memset(block, 0, sizeof(block));
	memcpy(block, in, in_len);
	u64 cr4 = set_cr4_bits(X86_CR4_OSFXSR, 0); /* CR4 is per VTL (§3.2): each VTL sets its own */
	u64 result = hv_xmm_call(h->page, control | HV_HYPERCALL_FAST, block);
	write_cr4(cr4);
	if (out_len)
		memcpy(out, (u8 *)block + out_at, out_len);
	return result;
}

/* The 16-byte ModifyVtlProtectionMask header (§2.18) and the page list after it, into buf. */
static unsigned protection_input(u64 *buf, u64 partition, u32 mask, u8 input_vtl, const u64 *gpa_pages, unsigned n)
{
	buf[0] = partition;
	buf[1] = mask | ((u64)input_vtl << 32);
	for (unsigned i = 0; i < n; i++)
		buf[2 + i] = gpa_pages[i];
	return 16 + 8 * n;
}

u64 vsm_modify_protection(const struct vsm_hvc *h, u64 partition, u32 mask, u8 input_vtl, const u64 *gpa_pages, unsigned n)
{
	if (n > (PAGE_SIZE - 16) / 8)
		abort_msg("ModifyVtlProtectionMask of %u pages: the input page holds %lu", n, (PAGE_SIZE - 16) / 8);
	protection_input(h->in, partition, mask, input_vtl, gpa_pages, n);
	return vsm_hvc_call(h, HVCALL_MODIFY_VTL_PROTECTION_MASK | HV_HYPERCALL_REP_COUNT(n));
}

u64 vsm_modify_protection_fast(const struct vsm_hvc *h, u64 partition, u32 mask, u8 input_vtl, const u64 *gpa_pages, unsigned n)
{
	u64 in[HV_XMM_BLOCK_BYTES / 8];

	if (n > (HV_XMM_BLOCK_BYTES - 16) / 8)
		abort_msg("fast ModifyVtlProtectionMask of %u pages: the registers hold %u", n, (HV_XMM_BLOCK_BYTES - 16) / 8);
	unsigned len = protection_input(in, partition, mask, input_vtl, gpa_pages, n);
	return vsm_hvc_call_xmm(h, HVCALL_MODIFY_VTL_PROTECTION_MASK | HV_HYPERCALL_REP_COUNT(n), in, len, NULL, 0);
}

/* The 32-byte TranslateVirtualAddress(Ex) input (§2.16): partition, VP index, reserved u32, flags, GVA page. */
static void translate_input(u64 *buf, u64 partition, u32 vp, u64 flags, u64 gva_page)
{
	buf[0] = partition;
	buf[1] = vp;
	buf[2] = flags;
	buf[3] = gva_page;
}

/* The slow form of 0x52 or 0xAC: `size` output bytes (prefilled 0xff, so unwritten bytes show) copied to out. */
static u64 translate_slow(const struct vsm_hvc *h, u16 code, u64 partition, u32 vp, u64 flags, u64 gva_page, void *out, unsigned size)
{
	translate_input(h->in, partition, vp, flags, gva_page);
	memset(h->out, 0xff, size);
	u64 r = vsm_hvc_call(h, code);
	memcpy(out, h->out, size);
	return r;
}

u64 vsm_translate(const struct vsm_hvc *h, u64 partition, u32 vp, u64 flags, u64 gva_page, struct hv_translate_output *out)
{
	return translate_slow(h, HVCALL_TRANSLATE_VIRTUAL_ADDRESS, partition, vp, flags, gva_page, out, sizeof(*out));
}

u64 vsm_translate_fast(const struct vsm_hvc *h, u64 partition, u32 vp, u64 flags, u64 gva_page, struct hv_translate_output *out)
{
	u64 in[4];

	translate_input(in, partition, vp, flags, gva_page);
	memset(out, 0xff, sizeof(*out));
	return vsm_hvc_call_xmm(h, HVCALL_TRANSLATE_VIRTUAL_ADDRESS, in, sizeof(in), out, sizeof(*out));
}

u64 vsm_translate_ex(const struct vsm_hvc *h, u64 partition, u32 vp, u64 flags, u64 gva_page, struct hv_translate_ex_output *out)
{
	return translate_slow(h, HVCALL_TRANSLATE_VIRTUAL_ADDRESS_EX, partition, vp, flags, gva_page, out, sizeof(*out));
}

// ---------------------------------------------------------------- intercept messages

_Static_assert(sizeof(struct hv_intercept_header) == HV_INTERCEPT_HEADER_BYTES, "x64 intercept header: 40 bytes (§4.4)");
_Static_assert(sizeof(struct hv_register_intercept) == HV_REGISTER_INTERCEPT_BYTES &&
	       __builtin_offsetof(struct hv_register_intercept, register_name) == 0x2c &&
	       __builtin_offsetof(struct hv_register_intercept, access_info) == 0x30, "register intercept layout (§4.6)");
_Static_assert(sizeof(struct hv_msr_intercept) == HV_MSR_INTERCEPT_BYTES && __builtin_offsetof(struct hv_msr_intercept, rdx) == 0x30,
	       "MSR intercept layout (§4.6)");

struct hv_segment vsm_gdt_segment(u16 selector)
{
	u64 e = gdt64[selector >> 3];
	u32 limit = (e & 0xffff) | (((e >> 48) & 0xf) << 16);

	if (e & BIT(55))
		limit = (limit << 12) | 0xfff;
	return (struct hv_segment){
		.base = ((e >> 16) & 0xffffff) | (((e >> 56) & 0xff) << 24),
		.limit = limit,
		.selector = selector,
		.attributes = ((e >> 40) & 0xff) | (((e >> 52) & 0xf) << 12),
	};
}

void vsm_intercept_header(struct hv_intercept_header *h, unsigned access, unsigned insn_len, u64 rip, u64 rflags)
{
	u64 cr0 = read_cr0(), dr7;

	asm volatile("mov %%dr7, %0" : "=r"(dr7));
	memset(h, 0, sizeof(*h));
	h->vp_index = hv_vp_index();
	h->insn_length_cr8 = (insn_len & 0xf) | (read_cr8() << 4);
	h->access_type = access;
	h->execution_state = (read_ss() & 3) | ((cr0 & X86_CR0_PE) ? HV_EXEC_STATE_CR0_PE : 0) |
			     ((cr0 & X86_CR0_AM) ? HV_EXEC_STATE_CR0_AM : 0) |
			     ((rdmsr(MSR_EFER) & EFER_LMA) ? HV_EXEC_STATE_EFER_LMA : 0) |
			     ((dr7 & 0xff) ? HV_EXEC_STATE_DEBUG_ACTIVE : 0) | HV_EXEC_STATE_VTL(0);
	h->cs = vsm_gdt_segment(read_cs());
	h->rip = rip;
	h->rflags = rflags;
}

bool vsm_same_bytes(const char *what, const void *got, const void *want, unsigned bytes)
{
	const u64 *g = got, *w = want;
	bool same = true;

	for (unsigned i = 0; i < bytes / 8; i++) {
		if (g[i] == w[i])
			continue;
		if (same)
			printf("  %s: differs (offset: got / expected):\n", what);
		same = false;
		printf("  0x%03x: %016lx / %016lx\n", i * 8, g[i], w[i]);
	}
	return same;
}

// ---------------------------------------------------------------- VTL1's resources

static void set_gate(u64 *idt, unsigned vec, unsigned ist)
{
	u64 a = (u64)(vsm_vtl1_isr_stubs + 16 * vec);

	idt[2 * vec] = (a & 0xffff) | ((u64)KERNEL_CS << 16) | ((u64)ist << 32) | ((u64)GATE_INTERRUPT_PRESENT << 40) |
		       (((a >> 16) & 0xffff) << 48);
	idt[2 * vec + 1] = a >> 32;
}

/*
 * VTL1's per-CPU data is a struct percpu of its own (GS base private, §3.2):
 * the library's per-CPU code (smp_id(), expect_exception()) works in VTL1,
 * and its TSS gives VTL1 its own #DF and NMI stacks.
 */
static void build_percpu(struct vsm_vp *vp)
{
	struct percpu *pc = vp->pc;
	struct tss64 *t = &pc->tss;

	pc->self = pc;
	pc->cpu = vp->cpu;
	pc->apic_id = cpu_apic_id(vp->cpu);
	pc->slot = cpu_data(vp->cpu)->slot;
	pc->ist_df_base = (u64)vp->ist;
	pc->ist_nmi_base = (u64)vp->ist + PAGE_SIZE;
	t->ist[IST_DF - 1] = pc->ist_df_base + PAGE_SIZE;
	t->ist[IST_NMI - 1] = pc->ist_nmi_base + PAGE_SIZE;
	t->rsp0 = (u64)vp->stack + VSM_VTL1_STACK_PAGES * PAGE_SIZE;
	t->iomap_base = sizeof(*t);
}

/* The library's fixed descriptors (same selectors in both VTLs), then VTL1's TSS. */
static void build_gdt(struct vsm_vp *vp)
{
	u64 base = (u64)&vp->pc->tss, limit = sizeof(vp->pc->tss) - 1;
	u64 *tss = &vp->gdt[VSM_VTL1_TSS_SEL / 8];

	memcpy(vp->gdt, gdt64, GDT_FIXED_ENTRIES * 8);
	tss[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | ((u64)SEG_TSS_BUSY_PRESENT << 40) |
		 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	tss[1] = base >> 32;
}

static struct vsm_vp *vp_alloc(unsigned cpu)
{
	struct vsm_vp *vp = alloc_page();

	vp->cpu = cpu;
	vp->vp_index = hv_vp_of[cpu];
	vp->hvc = (struct vsm_hvc){ vtl1_hypercall_page, alloc_page(), alloc_page() };
	vp->assist = alloc_page();
	vp->root = vm_identity_root(PTE_W);
	vp->gdt = alloc_page();
	vp->idt = alloc_page();
	vp->stack = alloc_pages(VSM_VTL1_STACK_PAGES);
	vp->ist = alloc_pages(2);
	vp->pc = alloc_page();
	vp->sim = alloc_page();
	vp->sief = alloc_page();
	build_percpu(vp);
	build_gdt(vp);
	for (unsigned v = 0; v < 256; v++)
		set_gate(vp->idt, v, v == DF_VECTOR ? IST_DF : v == NMI_VECTOR ? IST_NMI : 0);
	return vp;
}

static u64 cmd_nop(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)vp;
	(void)regs;
	return 0;
}

static u64 cmd_enable_vp(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_enable_vp_vtl(&vp->hvc, HV_PARTITION_ID_SELF, vsm_vp_of(vp->arg[0])->vp_index, 1,
				 (const struct hv_initial_vp_context *)vp->arg[1]);
}

static u64 cmd_set_partition_config(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, vp->arg[0]);
}

static u64 cmd_protect_page(struct vsm_vp *vp, struct vsm_regs *regs)
{
	u64 page = vp->arg[0];

	(void)regs;
	return vsm_modify_protection(&vp->hvc, HV_PARTITION_ID_SELF, vp->arg[1], HV_INPUT_VTL_SELF, &page, 1);
}

void vsm_init(void)
{
	hv_hypercall_setup();
	hv_collect_vp_indexes();
	/* VTL1's own page: the page is per VTL (§3.2), and KVM writes its code into the RAM both VTLs see. */
	vtl1_hypercall_page = alloc_page();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		vps[cpu] = vp_alloc(cpu);
	commands[VSM_CMD_NOP] = cmd_nop;
	commands[VSM_CMD_ENABLE_VP] = cmd_enable_vp;
	commands[VSM_CMD_SET_PARTITION_CONFIG] = cmd_set_partition_config;
	commands[VSM_CMD_PROTECT_PAGE] = cmd_protect_page;
}

// ---------------------------------------------------------------- enabling, from VTL0

static void code_page_stubs(void *page, u64 offsets, u64 *call, u64 *ret)
{
	/* §3.6: 11:0 VtlCallOffset, 23:12 VtlReturnOffset. */
	*call = (u64)page + (offsets & 0xfff);
	*ret = (u64)page + ((offsets >> 12) & 0xfff);
}

unsigned vsm_read_code_page_offsets(u64 *value)
{
	struct vsm_hvc h = vsm_vtl0_hvc();
	u64 v[2];
	unsigned s = vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_CODE_PAGE_OFFSETS, v);

	*value = v[0];
	if (s == HV_STATUS_SUCCESS)
		code_page_stubs(hv_hypercall_page, v[0], &vsm_vtl0_call_stub, &vsm_vtl0_return_stub);
	return s;
}

void vsm_build_context(unsigned cpu, struct hv_initial_vp_context *ctx)
{
	struct vsm_vp *vp = vsm_vp_of(cpu);
	struct vsm_hvc h = vsm_vtl0_hvc();

	memset(ctx, 0, sizeof(*ctx));
	ctx->rip = (u64)vsm_vtl1_entry;
	ctx->rsp = (u64)vp->stack + VSM_VTL1_STACK_PAGES * PAGE_SIZE;
	ctx->rflags = 0x2; /* bit 1 is always set; IF = 0: VTL1 takes interrupts only when it chooses */
	/* Code and data segments as this VP's VTL0 has them: the GDTs share the selectors. */
	vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_CS, &ctx->cs);
	vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_DS, &ctx->ds);
	vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_ES, &ctx->es);
	vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_SS, &ctx->ss);
	vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_LDTR, &ctx->ldtr);
	ctx->fs = ctx->ds;
	ctx->fs.base = 0;
	ctx->gs = ctx->ds;
	ctx->gs.base = (u64)vp->pc;
	ctx->tr = (struct hv_segment){ (u64)&vp->pc->tss, sizeof(vp->pc->tss) - 1, VSM_VTL1_TSS_SEL, SEG_TSS_BUSY_PRESENT };
	ctx->idtr = (struct hv_table){ .limit = 256 * 16 - 1, .base = (u64)vp->idt };
	ctx->gdtr = (struct hv_table){ .limit = VSM_VTL1_GDT_ENTRIES * 8 - 1, .base = (u64)vp->gdt };
	ctx->efer = vsm_get_u64(&h, HV_REG_EFER);
	ctx->cr0 = vsm_get_u64(&h, HV_REG_CR0);
	ctx->cr4 = vsm_get_u64(&h, HV_REG_CR4);
	ctx->cr3 = (u64)vp->root;
	ctx->pat = rdmsr(MSR_PAT);
}

unsigned vsm_enable_partition(void)
{
	struct vsm_hvc h = vsm_vtl0_hvc();

	return vsm_enable_partition_vtl(&h, HV_PARTITION_ID_SELF, 1);
}

unsigned vsm_enable_vp_self(void)
{
	struct vsm_hvc h = vsm_vtl0_hvc();
	struct hv_initial_vp_context ctx;

	vsm_build_context(smp_id(), &ctx);
	return vsm_enable_vp_vtl(&h, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
}

bool vsm_vtl1_start(void)
{
	vsm_call(VSM_CMD_NOP, 0, 0, 0);
	return vsm_this_vp()->ready;
}

unsigned vsm_enable_vp_from_vtl1(unsigned cpu)
{
	struct hv_initial_vp_context ctx;

	vsm_build_context(cpu, &ctx);
	return vsm_call(VSM_CMD_ENABLE_VP, cpu, (u64)&ctx, 0);
}

static void start_here(void *ok)
{
	if (!vsm_vtl1_start())
		*(volatile bool *)ok = false;
}

bool vsm_setup_all(void)
{
	unsigned s;
	u64 offsets;

	vsm_init();
	if ((s = vsm_read_code_page_offsets(&offsets)) != HV_STATUS_SUCCESS)
		return report(false, "VSM setup: GetVpRegisters(VsmCodePageOffsets) => 0x%x", s);
	if ((s = vsm_enable_partition()) != HV_STATUS_SUCCESS)
		return report(false, "VSM setup: EnablePartitionVtl(self, VTL1) => 0x%x", s);
	return vsm_setup_vps();
}

bool vsm_setup_vps(void)
{
	unsigned s;
	bool ok = true;

	if ((s = vsm_enable_vp_self()) != HV_STATUS_SUCCESS)
		return report(false, "VSM setup: EnableVpVtl(self, VTL1) on CPU %u => 0x%x", smp_id(), s);
	if (!vsm_vtl1_start())
		return report(false, "VSM setup: VTL1 on CPU %u did not set itself up", smp_id());
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++) {
		if (cpu == smp_id())
			continue;
		if ((s = vsm_enable_vp_from_vtl1(cpu)) != HV_STATUS_SUCCESS)
			return report(false, "VSM setup: VTL1 enabling VTL1 on CPU %u's VP => 0x%x", cpu, s);
		on_cpu(cpu, start_here, &ok);
		if (!ok)
			return report(false, "VSM setup: VTL1 on CPU %u did not set itself up", cpu);
	}
	return true;
}

// ---------------------------------------------------------------- requests, from VTL0

void vsm_request(unsigned cmd, u64 a0, u64 a1, u64 a2)
{
	struct vsm_vp *vp = vsm_this_vp();

	vp->arg[0] = a0;
	vp->arg[1] = a1;
	vp->arg[2] = a2;
	vp->cmd = cmd;
}

u64 vsm_call(unsigned cmd, u64 a0, u64 a1, u64 a2)
{
	struct vsm_regs r;

	vsm_request(cmd, a0, a1, a2);
	memset(&r, 0, sizeof(r));
	vsm_vtl_call_regs(&r);
	return r.rax;
}

void vsm_register_command(unsigned cmd, vsm_command_fn fn)
{
	if (cmd < VSM_CMD_USER || cmd >= VSM_MAX_COMMANDS)
		abort_msg("VSM: command %u is not a user command (%u-%u)", cmd, VSM_CMD_USER, VSM_MAX_COMMANDS - 1);
	commands[cmd] = fn;
}

void vsm_register_irq(unsigned vector, vsm_irq_fn fn)
{
	if (vector < 32 || vector == VSM_SINT0_VECTOR || vector >= SPURIOUS_VECTOR)
		abort_msg("VSM: vector 0x%x cannot have a VTL1 interrupt handler", vector);
	irq_handlers[vector] = fn;
}

void vsm_register_message_handler(vsm_message_fn fn)
{
	message_handler = fn;
}

// ---------------------------------------------------------------- VTL1

/* First entry on this VP (VtlCall from vsm_vtl1_start()): the per-VTL MSRs, APIC and SynIC (§3.2, §3.3, §4.1). */
static void vtl1_setup(struct vsm_vp *vp)
{
	u64 hypercall = (u64)vp->hvc.page | HV_HYPERCALL_ENABLE;

	hv_set_guest_os_id();
	if (rdmsr(HV_X64_MSR_HYPERCALL) != hypercall)
		wrmsr(HV_X64_MSR_HYPERCALL, hypercall);
	wrmsr(HV_X64_MSR_VP_ASSIST_PAGE, (u64)vp->assist | HV_PAGE_MSR_ENABLE);
	code_page_stubs(vp->hvc.page, vsm_get_u64(&vp->hvc, HV_REG_VSM_CODE_PAGE_OFFSETS), &vsm_vtl1_call_stub,
			&vsm_vtl1_return_stub);
	apic_init_cpu(apic_x2apic_mode()); /* VTL1's own APIC (§3.2), in VTL0's mode: lib/apic.c has one mode */
	wrmsr(HV_X64_MSR_SIMP, (u64)vp->sim | HV_PAGE_MSR_ENABLE);
	wrmsr(HV_X64_MSR_SIEFP, (u64)vp->sief | HV_PAGE_MSR_ENABLE);
	wrmsr(HV_X64_MSR_SCONTROL, HV_SCONTROL_ENABLE);
	wrmsr(HV_X64_MSR_SINT(0), VSM_SINT0_VECTOR);
	vp->ready = true;
}

void vsm_return_raw(struct vsm_vp *vp, u64 input)
{
	vp->raw_return = true;
	vp->raw_input = input;
}

/* A message (SIM slot 0 or the assist page's intercept slot): copy, callback, free the slot (§4.2). */
static void take_message(struct vsm_vp *vp, struct hv_message *slot, bool sim)
{
	memcpy(&vp->last_message, slot, sizeof(*slot));
	vp->messages++;
	if (message_handler)
		message_handler(vp, &vp->last_message);
	if (sim)
		hv_message_done(slot);
	else
		slot->type = HV_MESSAGE_TYPE_NONE;
}

static u64 serve(struct vsm_vp *vp, struct vsm_regs *regs)
{
	unsigned cmd = vp->cmd;
	vsm_command_fn fn = cmd < VSM_MAX_COMMANDS ? commands[cmd] : NULL;
	u64 result;

	vp->raw_return = false;
	if (fn) {
		result = fn(vp, regs);
	} else {
		report(false, "VTL1 on CPU %u: no handler for command %u", vp->cpu, cmd);
		result = ~0UL;
	}
	if (vp->raw_return)
		return vp->raw_input;
	/* Non-fast return: VTL0 gets RAX and RCX from the control area (§3.3, §3.4). */
	vp->assist->vtl_control.vtl_return_rax = result;
	vp->assist->vtl_control.vtl_return_rcx = 0;
	return 0;
}

/*
 * An interrupt or intercept entry (§3.10): VTL0 was stopped wherever it
 * was, so VTL1 hands back every shared GPR as it found it (RAX and RCX
 * through the control area). The pending interrupt is taken in a window
 * with IF = 1; an intercept message that raised no interrupt (SINT0 masked
 * or polled, or delivered to the assist page) is read where it is.
 */
static u64 take_events(struct vsm_vp *vp, struct vsm_regs *regs, unsigned reason)
{
	u64 messages = vp->messages;

	asm volatile("sti; nop; cli" ::: "memory"); /* STI's shadow covers the NOP: delivery happens before CLI */
	if (reason == HV_VTL_ENTRY_INTERCEPT && vp->messages == messages) {
		if (vp->sim[0].type != HV_MESSAGE_TYPE_NONE)
			take_message(vp, &vp->sim[0], true);
		else if (vp->assist->intercept_message.type != HV_MESSAGE_TYPE_NONE)
			take_message(vp, &vp->assist->intercept_message, false);
	}
	vp->assist->vtl_control.vtl_return_rax = regs->rax;
	vp->assist->vtl_control.vtl_return_rcx = regs->rcx;
	return 0;
}

/* Called by vsm_vtl1_entry on every entry; returns the VtlReturn control input. */
u64 vsm_vtl1_dispatch(struct vsm_regs *regs);
u64 vsm_vtl1_dispatch(struct vsm_regs *regs)
{
	struct vsm_vp *vp = vsm_this_vp();

	vp->regs = regs;

	if (!vp->ready) {
		/* vsm_vtl1_start()'s VtlCall: its entry reason went nowhere, the assist page did not exist yet. */
		vtl1_setup(vp);
		vp->entries[0]++;
		vp->last_reason = HV_VTL_ENTRY_VTL_CALL;
		return serve(vp, regs);
	}
	unsigned reason = vp->assist->vtl_control.entry_reason;
	vp->last_reason = reason;
	switch (reason) {
	case HV_VTL_ENTRY_VTL_CALL:
		vp->entries[reason]++;
		return serve(vp, regs);
	case HV_VTL_ENTRY_INTERRUPT:
	case HV_VTL_ENTRY_INTERCEPT:
		vp->entries[reason]++;
		return take_events(vp, regs, reason);
	default:
		report(false, "VTL1 on CPU %u: entry reason %u is none of 1-3 (§3.4)", vp->cpu, reason);
		report_summary();
	}
}

static __noreturn void vtl1_unhandled(struct ex_regs *r)
{
	struct percpu *pc = this_cpu();

	if (pc->in_panic)
		exit(EXIT_ABORT);
	pc->in_panic = true;
	report(false, "VTL1 on CPU %u: unhandled exception %lu (%s): error code 0x%lx, RIP 0x%lx, CR2 0x%lx",
	       pc->cpu, r->vector, exception_mnemonic(r->vector), r->error_code, r->rip, read_cr2());
	printf("  RSP %lx RFLAGS %lx CR3 %lx RAX %lx RBX %lx RCX %lx RDX %lx RSI %lx RDI %lx\n",
	       r->rsp, r->rflags, read_cr3(), r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi);
	report_summary();
}

/* Every vector of VTL1's IDT (lib/vsm-entry.S). */
void vsm_vtl1_isr(struct ex_regs *r);
void vsm_vtl1_isr(struct ex_regs *r)
{
	struct vsm_vp *vp = vsm_this_vp();
	unsigned vec = r->vector;

	if (vec < 32) {
		/*
		 * Inside expect_exception() in VTL1 (its catch frame is on VTL1's
		 * per-CPU data): caught there. A handler VTL0 installed for the
		 * vector with handle_exception() would run first.
		 */
		if (this_cpu()->catch_top) {
			isr_dispatch(r);
			return;
		}
		vtl1_unhandled(r);
	}
	if (vec == SPURIOUS_VECTOR)
		return; /* not in service: no EOI */
	vp->irqs++;
	vp->last_vector = vec;
	if (vec == VSM_SINT0_VECTOR) {
		if (vp->sim[0].type != HV_MESSAGE_TYPE_NONE)
			take_message(vp, &vp->sim[0], true);
	} else if (irq_handlers[vec]) {
		irq_handlers[vec](vp, vec);
	} else {
		report(false, "VTL1 on CPU %u: interrupt vector 0x%x has no handler", vp->cpu, vec);
	}
	apic_eoi();
}

void vsm_require(bool start_vp)
{
	if (hv_present() && hv_has_privilege(HV_PRIV_VSM) && hv_has_privilege(HV_PRIV_VP_REGISTERS) &&
	    (!start_vp || hv_has_privilege(HV_PRIV_START_VIRTUAL_PROCESSOR)))
		return;
	report_skip(start_vp ? "no Hyper-V VSM (AccessVsm, AccessVpRegisters, StartVirtualProcessor): nothing to test"
			     : "no Hyper-V VSM (AccessVsm and AccessVpRegisters): nothing to test");
	report_summary();
}
