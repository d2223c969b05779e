/*
 * Starting VPs with HvCallStartVirtualProcessor instead of INIT/SIPI
 * (tlfs-vsm-facts.md §2.13, §2.14, §2.17, §3.1, §3.7, §3.10; the host's
 * rules in src/vmm/vsm/hc-vp.ts).
 *
 * Boot with a first Multiboot module holding "NR_CPUS=1": the library then
 * starts no AP (lib/smp.c), and every AP's VP waits for SIPI, never started.
 * The VP count comes from fw_cfg; the APs' APIC IDs are taken to be 1..n-1
 * (QEMU's and vsmvisor's flat topology) and GetVpIndexFromApicId, asked by
 * VTL1 before it is enabled on those VPs, gives their VP indexes (§2.17).
 *
 * The BSP sets VSM up for itself with the library (vsm_setup_all() on one
 * CPU). Then:
 * - VP 1: VTL1 on the BSP enables VTL1 on it (EnableVpVtl, with a context
 *   whose RIP marks it) and starts it in VTL1 with a second context;
 * - VP 2 (smp >= 3): VTL0 on the BSP starts it in VTL0;
 * - VP 3 (smp >= 4): VTL1 on the BSP starts it in VTL0.
 * Each context has its own RIP, RSP, RFLAGS (AC set), CR3 (fresh page
 * tables), GDT with a TSS, FS and GS base (GS base = the AP's struct ap),
 * PAT; the AP writes into its struct ap what it finds on entry (RSP,
 * RFLAGS, control registers, EFER, PAT, segments, descriptor tables, its VP
 * index and, through GetVpRegisters, its VsmVpStatus: the VTL it runs in);
 * the BSP compares with the context. VP 1's VTL1 then VtlReturns: its VTL0
 * waits for its start (hc-vp.ts startVp), VsmVpStatus shows VTL0 active. A
 * SIPI for it is dropped (§3.10); VTL0 on the BSP starts VP 1's VTL0 with
 * StartVirtualProcessor(target VTL0) and its own context, which VTL0 runs;
 * an INIT and a SIPI to that running VTL0 are dropped too.
 *
 * Statuses (§2.14): target VTL above the caller => ACCESS_DENIED; VTL not
 * enabled on the VP, that (VP, VTL) already started, a VTL above 0 of a VP
 * that has started => INVALID_VP_STATE; own VP,
 * HV_VP_INDEX_SELF, a VP index no VP has => INVALID_VP_INDEX; partition 0
 * => INVALID_PARTITION_ID; TargetVtl 16, a reserved byte => INVALID_PARAMETER;
 * fast => INVALID_HYPERCALL_INPUT; a VTL1 context without CR0.PE =>
 * INVALID_REGISTER_VALUE and the VP stays unstarted.
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm, --smp 2 or more and
 * --initrd of a file "NR_CPUS=1"; test/guests/vsm-interrupts.test.ts counts.
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"

#define HVCALL_START_VIRTUAL_PROCESSOR 0x0099
#define HV_STATUS_INVALID_VP_STATE 0x0015

#define MSR_IA32_PAT 0x277
#define AP_PAT 0x0007010600070106UL    /* WB, WC, UC-, UC (valid types, not the reset value) */
#define AP_RFLAGS (0x2 | X86_EFLAGS_AC) /* IF = 0; AC marks it as the context's */
#define AP_FS_BASE(vp) (0x7f000000UL + (vp) * 0x1000)
#define AP_STACK_PAGES 2
#define SEG_TSS_BUSY_PRESENT 0x8b
#define AP_TSS_SEL (GDT_FIXED_ENTRIES * 8)
#define NO_SUCH_VP 4095                 /* beyond every VP index of a guest this size */
#define WAIT (1UL << 30)
#define SIPI_ROUNDS 64                  /* PAUSEs (each ends the BSP's quantum) a dropped SIPI gets to show */

enum { CMD_START = VSM_CMD_USER, CMD_ENABLE, CMD_LOOKUP, CMD_GET };
enum { ENTRY_START = 1, ENTRY_ENABLE = 2 };

/* One AP: its resources, its context, and what it found (written by the AP itself). */
struct ap {
	struct percpu pc;                  /* GS base points here: gs:0 = self, as the library expects */
	u32 vp;
	unsigned vtl;
	u64 *gdt, *root;
	u8 *stack;
	struct vsm_hvc hvc;                /* its VTL's hypercall page, its own input/output pages */
	struct hv_initial_vp_context ctx;  /* the context StartVirtualProcessor gets */
	volatile u64 done, release, reentered;
	volatile u64 entry, rsp, rflags, cr0, cr3, cr4, efer, pat, fs_base, vp_index, vp_status;
	volatile unsigned status;
	volatile u16 cs, ss, ds, tr;
	struct descriptor_table_ptr gdtr, idtr;
};

extern u64 gdt64[GDT_ENTRIES]; /* lib/entry.S: VTL0's GDT */
static struct ap *aps[MAX_CPUS];
static struct vsm_hvc vtl0_hvc;
static u64 got[2];

// ---------------------------------------------------------------- the AP's side

/* Entry points of the contexts: RSP and RFLAGS as found, and which context it was. */
void started_ap_main(u64 rsp, u64 rflags, u64 entry);
asm(".text\n"
    ".globl ap_entry_start\n"
    "ap_entry_start:\n"
    "	mov %rsp, %rdi\n"
    "	pushfq\n"
    "	pop %rsi\n"
    "	mov $1, %edx\n"
    "	call started_ap_main\n"
    ".globl ap_entry_enable\n"
    "ap_entry_enable:\n"
    "	mov %rsp, %rdi\n"
    "	pushfq\n"
    "	pop %rsi\n"
    "	mov $2, %edx\n"
    "	call started_ap_main\n");
extern char ap_entry_start[], ap_entry_enable[];

/* VTL1's fast VtlReturn (§3.4): RCX = control input for the stub; the next entry would resume after the call. */
static void vtl1_return_fast(void)
{
	u64 rcx = 1;

	asm volatile("call *%[stub]"
		     : "+c"(rcx)
		     : [stub] "r"(vsm_vtl1_return_stub)
		     : "rax", "rdx", "r8", "r9", "r10", "r11", "cc", "memory");
}

void started_ap_main(u64 rsp, u64 rflags, u64 entry)
{
	struct ap *a = (struct ap *)rdmsr(MSR_GS_BASE);
	struct descriptor_table_ptr gdtr, idtr;
	u64 v[2];

	a->entry = entry;
	a->rsp = rsp;
	a->rflags = rflags;
	a->cr0 = read_cr0();
	a->cr3 = read_cr3();
	a->cr4 = read_cr4();
	a->efer = rdmsr(MSR_EFER);
	a->pat = rdmsr(MSR_IA32_PAT);
	a->fs_base = rdmsr(MSR_FS_BASE);
	a->cs = read_cs();
	a->ss = read_ss();
	a->ds = read_ds();
	a->tr = read_tr();
	sgdt(&gdtr);
	sidt(&idtr);
	a->gdtr = gdtr;
	a->idtr = idtr;
	a->vp_index = rdmsr(HV_X64_MSR_VP_INDEX);
	a->status = vsm_get_reg(&a->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_STATUS, v);
	a->vp_status = v[0];
	a->done = 1;
	if (a->vtl == 1) {
		while (!a->release)
			pause();
		vtl1_return_fast();
		a->reentered++; /* nothing should enter this VTL1 again */
	}
	for (;;)
		hlt(); /* IF = 0: for good */
}

// ---------------------------------------------------------------- the BSP's side

static struct ap *ap_alloc(unsigned k, u32 vp, unsigned vtl)
{
	struct ap *a = alloc_pages((sizeof(struct ap) + PAGE_SIZE - 1) / PAGE_SIZE);
	struct percpu *pc = &a->pc;
	u8 *ist = alloc_pages(2);
	u64 base = (u64)&pc->tss, limit = sizeof(pc->tss) - 1;

	a->vp = vp;
	a->vtl = vtl;
	pc->self = pc;
	pc->cpu = k;
	pc->apic_id = k;
	pc->slot = k;
	pc->ist_df_base = (u64)ist;
	pc->ist_nmi_base = (u64)ist + PAGE_SIZE;
	pc->tss.ist[IST_DF - 1] = pc->ist_df_base + PAGE_SIZE;
	pc->tss.ist[IST_NMI - 1] = pc->ist_nmi_base + PAGE_SIZE;
	pc->tss.iomap_base = sizeof(pc->tss);
	a->stack = alloc_pages(AP_STACK_PAGES);
	pc->tss.rsp0 = (u64)a->stack + AP_STACK_PAGES * PAGE_SIZE;
	a->root = vm_identity_root(PTE_W);
	a->gdt = alloc_page();
	memcpy(a->gdt, gdt64, GDT_FIXED_ENTRIES * 8);
	a->gdt[AP_TSS_SEL / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | ((u64)SEG_TSS_BUSY_PRESENT << 40) |
				 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	a->gdt[AP_TSS_SEL / 8 + 1] = base >> 32;
	a->hvc = (struct vsm_hvc){ vtl ? vsm_vp_of(0)->hvc.page : hv_hypercall_page, alloc_page(), alloc_page() };
	return a;
}

/* A 64-bit context for an AP: segments as the BSP's VTL0 has them, the AP's own tables, stack, bases; RIP = entry. */
static void build_context(struct ap *a, void *entry, struct hv_initial_vp_context *ctx)
{
	struct descriptor_table_ptr idtr;

	memset(ctx, 0, sizeof(*ctx));
	ctx->rip = (u64)entry;
	ctx->rsp = (u64)a->stack + AP_STACK_PAGES * PAGE_SIZE;
	ctx->rflags = AP_RFLAGS;
	vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_CS, &ctx->cs);
	vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_DS, &ctx->ds);
	vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_ES, &ctx->es);
	vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_SS, &ctx->ss);
	vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_LDTR, &ctx->ldtr);
	ctx->fs = ctx->ds;
	ctx->fs.base = AP_FS_BASE(a->vp);
	ctx->gs = ctx->ds;
	ctx->gs.base = (u64)a;
	ctx->tr = (struct hv_segment){ (u64)&a->pc.tss, sizeof(a->pc.tss) - 1, AP_TSS_SEL, SEG_TSS_BUSY_PRESENT };
	sidt(&idtr); /* the library's IDT: an exception on the AP is reported (GS base is a struct percpu) */
	ctx->idtr = (struct hv_table){ .limit = idtr.limit, .base = idtr.base };
	ctx->gdtr = (struct hv_table){ .limit = (GDT_FIXED_ENTRIES + 2) * 8 - 1, .base = (u64)a->gdt };
	ctx->efer = rdmsr(MSR_EFER);
	ctx->cr0 = read_cr0();
	ctx->cr3 = (u64)a->root;
	ctx->cr4 = read_cr4();
	ctx->pat = AP_PAT;
}

/* StartVirtualProcessor and EnableVpVtl take the same input (§2.13, §2.14). */
struct start_req {
	bool fast;
	u64 partition;
	u32 vp;
	u8 vtl, reserved;
	const struct hv_initial_vp_context *ctx;
};

static unsigned start_call(const struct vsm_hvc *h, const struct start_req *r)
{
	h->in[0] = r->partition;
	h->in[1] = r->vp | ((u64)r->vtl << 32) | ((u64)r->reserved << 40);
	memcpy(&h->in[2], r->ctx, sizeof(*r->ctx));
	return HV_RESULT_STATUS(vsm_hvc_call(h, HVCALL_START_VIRTUAL_PROCESSOR | (r->fast ? HV_HYPERCALL_FAST : 0)));
}

static u64 vtl1_start(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return start_call(&vp->hvc, (const struct start_req *)vp->arg[0]);
}

static u64 vtl1_enable(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_enable_vp_vtl(&vp->hvc, HV_PARTITION_ID_SELF, vp->arg[0], 1,
				 (const struct hv_initial_vp_context *)vp->arg[1]);
}

/* GetVpIndexFromApicId (§2.17) of arg1 APIC IDs at arg0, VP indexes into arg2; returns the result value. */
static u64 vtl1_lookup(struct vsm_vp *vp, struct vsm_regs *regs)
{
	const u32 *ids = (const u32 *)vp->arg[0];
	unsigned n = vp->arg[1];
	u32 *out = (u32 *)vp->arg[2];

	(void)regs;
	vp->hvc.in[0] = HV_PARTITION_ID_SELF;
	vp->hvc.in[1] = HV_INPUT_VTL_SELF;
	memcpy(&vp->hvc.in[2], ids, 4 * n);
	u64 r = vsm_hvc_call(&vp->hvc, HVCALL_GET_VP_INDEX_FROM_APIC_ID | HV_HYPERCALL_REP_COUNT(n));
	memcpy(out, vp->hvc.out, 4 * n);
	return r;
}

/* GetVpRegisters(VP arg0, input VTL arg1, register arg2) into got[]; returns the status. */
static u64 vtl1_get(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_get_reg(&vp->hvc, vp->arg[0], vp->arg[1], vp->arg[2], got);
}

static unsigned start_from(unsigned vtl, const struct start_req *r)
{
	return vtl ? vsm_call(CMD_START, (u64)r, 0, 0) : start_call(&vtl0_hvc, r);
}

static u64 vp_status_of(u32 vp)
{
	got[0] = ~0UL;
	/* Named through VTL0, which every VP has (VTL1 may not be enabled on it yet). */
	unsigned s = vsm_call(CMD_GET, vp, HV_INPUT_VTL(0), HV_REG_VSM_VP_STATUS);
	return s == HV_STATUS_SUCCESS ? got[0] : ~0UL;
}

/* What the AP found against its context (4 checks). */
static void check_ap(struct ap *a, u64 enabled_set)
{
	const struct hv_initial_vp_context *c = &a->ctx;
	bool done = wait_until_set(&a->done, WAIT);

	report(done && a->entry == ENTRY_START && a->rsp == c->rsp && a->rflags == c->rflags,
	       "VP%u: runs at the start context's RIP (entry %lu, not EnableVpVtl's), RSP 0x%lx, RFLAGS 0x%lx as given",
	       a->vp, a->entry, a->rsp, a->rflags);
	report(done && a->cr0 == c->cr0 && a->cr3 == c->cr3 && a->cr4 == c->cr4 && a->efer == c->efer && a->pat == c->pat,
	       "VP%u: CR0 0x%lx, CR3 0x%lx (its own tables), CR4 0x%lx, EFER 0x%lx, PAT 0x%lx from the context", a->vp,
	       a->cr0, a->cr3, a->cr4, a->efer, a->pat);
	report(done && a->cs == c->cs.selector && a->ss == c->ss.selector && a->ds == c->ds.selector &&
	       a->tr == AP_TSS_SEL && a->fs_base == c->fs.base &&
	       a->gdtr.base == c->gdtr.base && a->gdtr.limit == c->gdtr.limit && a->idtr.base == c->idtr.base &&
	       a->idtr.limit == c->idtr.limit,
	       "VP%u: CS 0x%x, SS 0x%x, DS 0x%x, TR 0x%x, FS base 0x%lx, GS base (where it found its struct ap), GDTR 0x%lx/0x%x, IDTR 0x%lx/0x%x from the context",
	       a->vp, a->cs, a->ss, a->ds, a->tr, a->fs_base, a->gdtr.base, a->gdtr.limit, a->idtr.base, a->idtr.limit);
	report(done && a->vp_index == a->vp && a->status == HV_STATUS_SUCCESS &&
	       a->vp_status == HV_VP_STATUS(a->vtl, enabled_set),
	       "VP%u: VP_INDEX %lu; in VTL%u its VsmVpStatus is 0x%lx: active VTL %lu (0x%x)", a->vp, a->vp_index, a->vtl,
	       a->vp_status, a->vp_status & 0xf, a->status);
}

/* The statuses that refuse a start, before VTL1 is enabled on VP1 (nothing starts). */
static void refusals(struct ap *a)
{
	struct hv_initial_vp_context ctx;
	u32 self = hv_vp_of[0];

	build_context(a, ap_entry_start, &ctx);
	const struct { unsigned caller; struct start_req r; unsigned status; const char *what; } cases[] = {
		{ 0, { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 1, .ctx = &ctx }, HV_STATUS_ACCESS_DENIED,
		  "VTL1 (above the caller)" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 1, .ctx = &ctx }, HV_STATUS_INVALID_VP_STATE,
		  "VTL1 not enabled on that VP" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = self, .vtl = 1, .ctx = &ctx }, HV_STATUS_INVALID_VP_INDEX,
		  "its own VP" },
		{ 0, { .partition = HV_PARTITION_ID_SELF, .vp = self, .vtl = 0, .ctx = &ctx }, HV_STATUS_INVALID_VP_INDEX,
		  "its own VP" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = HV_VP_INDEX_SELF, .vtl = 0, .ctx = &ctx },
		  HV_STATUS_INVALID_VP_INDEX, "HV_VP_INDEX_SELF" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = NO_SUCH_VP, .vtl = 0, .ctx = &ctx }, HV_STATUS_INVALID_VP_INDEX,
		  "a VP index no VP has" },
		{ 1, { .partition = 0, .vp = a->vp, .vtl = 0, .ctx = &ctx }, HV_STATUS_INVALID_PARTITION_ID, "partition 0" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 2, .ctx = &ctx }, HV_STATUS_ACCESS_DENIED,
		  "VTL2 (above the caller)" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 16, .ctx = &ctx }, HV_STATUS_INVALID_PARAMETER,
		  "TargetVtl 16" },
		{ 1, { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 0, .reserved = 1, .ctx = &ctx },
		  HV_STATUS_INVALID_PARAMETER, "reserved byte 13 = 1" },
		{ 1, { .fast = true, .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 0, .ctx = &ctx },
		  HV_STATUS_INVALID_HYPERCALL_INPUT, "the fast form" },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned s = start_from(cases[i].caller, &cases[i].r);
		report(s == cases[i].status, "VTL%u: StartVirtualProcessor(VP%u, VTL%u) with %s => 0x%x (0x%x)",
		       cases[i].caller, cases[i].r.vp, cases[i].r.vtl, cases[i].what, cases[i].status, s);
	}
	u64 st = vp_status_of(a->vp);
	report(st == HV_VP_STATUS(0, 0x1) && !a->done, "VP%u after the refusals: VsmVpStatus 0x%lx (VTL0 only), it has not run",
	       a->vp, st);
}

/* VP1: VTL1 enabled by the BSP's VTL1, then started in VTL1. */
static void start_in_vtl1(struct ap *a)
{
	struct hv_initial_vp_context enable_ctx, bad;
	struct start_req r = { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 1, .ctx = &a->ctx };

	build_context(a, ap_entry_enable, &enable_ctx);
	build_context(a, ap_entry_start, &a->ctx);
	unsigned s = vsm_call(CMD_ENABLE, a->vp, (u64)&enable_ctx, 0);
	report(s == HV_STATUS_SUCCESS, "VP%u VTL1: EnableVpVtl(VP%u, VTL1) of the unstarted VP (0x%x)", hv_vp_of[0], a->vp, s);

	bad = a->ctx;
	bad.cr0 &= ~X86_CR0_PE;
	r.ctx = &bad;
	s = start_from(1, &r);
	u64 st = vp_status_of(a->vp);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE && st == HV_VP_STATUS(0, 0x3) && !a->done,
	       "VTL1: StartVirtualProcessor(VP%u, VTL1) with CR0.PE clear => INVALID_REGISTER_VALUE (0x%x); VsmVpStatus 0x%lx, not started",
	       a->vp, s, st);

	r.ctx = &a->ctx;
	s = start_from(1, &r);
	report(s == HV_STATUS_SUCCESS, "VP%u VTL1: StartVirtualProcessor(VP%u, VTL1) (0x%x)", hv_vp_of[0], a->vp, s);
	check_ap(a, 0x3);
	st = vp_status_of(a->vp);
	report(st == HV_VP_STATUS(1, 0x3), "VP%u VTL1: VsmVpStatus of VP%u = 0x%lx: VTL1 active, VTLs {0, 1}", hv_vp_of[0],
	       a->vp, st);
	s = start_from(1, &r);
	report(s == HV_STATUS_INVALID_VP_STATE, "VTL1: StartVirtualProcessor(VP%u, VTL1) once it runs => INVALID_VP_STATE (0x%x)",
	       a->vp, s);

	/* Its VTL1 returns: VTL0 waits for its start (no SIPI will end that, §3.10), and nothing enters VTL1 again. */
	a->release = 1;
	for (unsigned i = 0; i < 1000 && (st = vp_status_of(a->vp)) != HV_VP_STATUS(0, 0x3); i++)
		pause();
	report(st == HV_VP_STATUS(0, 0x3) && !a->reentered,
	       "VP%u after its VTL1's VtlReturn: VsmVpStatus 0x%lx (VTL0 active, waiting for its start)", a->vp, st);
}

/*
 * §3.10: INIT/SIPI for a lower VTL of a VP with a higher VTL enabled are
 * dropped (StartVirtualProcessor is the way). VP1's VTL0 waits for a SIPI
 * since its VTL1 returned; a SIPI with vector 0 would run real-mode code at
 * physical 0 that writes a marker and halts.
 */
static void sipi_dropped(struct ap *a)
{
	volatile u8 *page0;
	/* mov byte [cs:0xff0], 0x5a; hlt; jmp back to the hlt */
	static const u8 stub[] = { 0x2e, 0xc6, 0x06, 0xf0, 0x0f, 0x5a, 0xf4, 0xeb, 0xfd };

	asm("" : "=r"(page0) : "0"(0UL)); /* physical 0, hidden from GCC's null-pointer bounds checks */
	for (unsigned i = 0; i < sizeof(stub); i++)
		page0[i] = stub[i];
	page0[0xff0] = 0;
	apic_icr_write(APIC_DM_STARTUP | APIC_DEST_PHYSICAL | APIC_INT_ASSERT | 0x00, a->pc.apic_id);
	for (unsigned i = 0; i < SIPI_ROUNDS; i++)
		pause();
	u64 st = vp_status_of(a->vp);
	report(page0[0xff0] == 0 && st == HV_VP_STATUS(0, 0x3),
	       "VP%u (VTL1 enabled): a SIPI for its VTL0 is dropped (marker 0x%x at 0xff0), VsmVpStatus 0x%lx", a->vp,
	       page0[0xff0], st);
}

/* A register of VP `vp`'s VTL `vtl`, through GetVpRegisters from VTL1; ~0 if refused. */
static u64 reg_of(u32 vp, unsigned vtl, u32 name)
{
	got[0] = ~0UL;
	unsigned s = vsm_call(CMD_GET, vp, HV_INPUT_VTL(vtl), name);
	return s == HV_STATUS_SUCCESS ? got[0] : ~0UL;
}

/*
 * §2.14, §3.10: VTL0 of VP1, which started in VTL1, is started by
 * StartVirtualProcessor(target VTL0) from the BSP's VTL0, once; then VTL0 and
 * VTL1 of VP1 have both started. `a` is VP1's VTL0 (its own context).
 */
static void start_vtl0_after_vtl1(struct ap *a)
{
	struct start_req r = { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 0, .ctx = &a->ctx };

	build_context(a, ap_entry_start, &a->ctx);
	unsigned s = start_from(0, &r);
	report(s == HV_STATUS_SUCCESS, "VP%u VTL0: StartVirtualProcessor(VP%u, VTL0) of the VP started in VTL1 (0x%x)", hv_vp_of[0],
	       a->vp, s);
	check_ap(a, 0x3);
	s = start_from(0, &r);
	report(s == HV_STATUS_INVALID_VP_STATE, "VTL0: StartVirtualProcessor(VP%u, VTL0) again => INVALID_VP_STATE (0x%x)", a->vp, s);
	for (unsigned vtl = 0; vtl < 2; vtl++) {
		r.vtl = vtl;
		s = start_from(1, &r);
		report(s == HV_STATUS_INVALID_VP_STATE,
		       "VTL1: StartVirtualProcessor(VP%u, VTL%u) once both VTLs started => INVALID_VP_STATE (0x%x)", a->vp, vtl, s);
	}
}

/*
 * §3.10: VP1's VTL0 now runs (it halts for good with IF = 0). An INIT and a
 * SIPI to it are dropped: were the INIT taken, VTL0 would be at the reset
 * vector in real mode, and the SIPI would run the marker code at physical 0.
 */
static void init_dropped(struct ap *a)
{
	volatile u8 *page0;

	asm("" : "=r"(page0) : "0"(0UL)); /* physical 0, hidden from GCC's null-pointer bounds checks */
	page0[0xff0] = 0;
	u64 rip = reg_of(a->vp, 0, HV_REG_RIP), cr0 = reg_of(a->vp, 0, HV_REG_CR0);
	apic_icr_write(APIC_DM_INIT | APIC_DEST_PHYSICAL | APIC_INT_ASSERT, a->pc.apic_id);
	apic_icr_write(APIC_DM_STARTUP | APIC_DEST_PHYSICAL | APIC_INT_ASSERT | 0x00, a->pc.apic_id);
	for (unsigned i = 0; i < SIPI_ROUNDS; i++)
		pause();
	u64 rip2 = reg_of(a->vp, 0, HV_REG_RIP), cr0_2 = reg_of(a->vp, 0, HV_REG_CR0);
	report(rip2 == rip && cr0_2 == cr0 && (cr0 & X86_CR0_PE) && page0[0xff0] == 0,
	       "VP%u (VTL1 enabled, VTL0 running): INIT and SIPI for its VTL0 are dropped: RIP 0x%lx -> 0x%lx, CR0 0x%lx -> 0x%lx, marker 0x%x",
	       a->vp, rip, rip2, cr0, cr0_2, page0[0xff0]);
}

/* VPs 2 and 3: started in VTL0 by the BSP's VTL0 or VTL1. */
static void start_in_vtl0(struct ap *a, unsigned caller)
{
	struct start_req r = { .partition = HV_PARTITION_ID_SELF, .vp = a->vp, .vtl = 0, .ctx = &a->ctx };

	build_context(a, ap_entry_start, &a->ctx);
	unsigned s = start_from(caller, &r);
	report(s == HV_STATUS_SUCCESS, "VP%u VTL%u: StartVirtualProcessor(VP%u, VTL0) (0x%x)", hv_vp_of[0], caller, a->vp, s);
	check_ap(a, 0x1);
	s = start_from(caller, &r);
	report(s == HV_STATUS_INVALID_VP_STATE, "VTL%u: StartVirtualProcessor(VP%u, VTL0) again => INVALID_VP_STATE (0x%x)",
	       caller, a->vp, s);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(true);
	unsigned n = fwcfg_present() ? fwcfg_read(FW_CFG_NB_CPUS, 2) : 1;
	if (cpu_count() != 1) {
		report(false, "%u CPUs came up with INIT/SIPI: boot with a first module holding NR_CPUS=1", cpu_count());
		report_summary();
	}
	if (n < 2) {
		report_skip("StartVirtualProcessor: needs --smp 2 or more");
		report_summary();
	}
	if (n > MAX_CPUS)
		n = MAX_CPUS;
	report_info("%u VPs, the BSP alone running; APIC ID %u", n, apic_id());
	vsm_register_command(CMD_START, vtl1_start);
	vsm_register_command(CMD_ENABLE, vtl1_enable);
	vsm_register_command(CMD_LOOKUP, vtl1_lookup);
	vsm_register_command(CMD_GET, vtl1_get);
	if (!vsm_setup_all())
		report_summary();
	vtl0_hvc = vsm_vtl0_hvc();

	/* VP indexes of the APs, from VTL1 before it is enabled there. */
	u32 ids[MAX_CPUS], idx[MAX_CPUS];
	for (unsigned k = 1; k < n; k++)
		ids[k - 1] = k;
	u64 r = vsm_call(CMD_LOOKUP, (u64)ids, n - 1, (u64)idx);
	bool distinct = true;
	for (unsigned k = 0; k + 1 < n; k++)
		distinct &= idx[k] != hv_vp_of[0] && (k == 0 || idx[k] != idx[k - 1]);
	if (!report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && HV_RESULT_REPS(r) == n - 1 && distinct,
		    "VTL1: GetVpIndexFromApicId(APIC IDs 1..%u) of VPs never started: VP indexes %u..%u (0x%lx)", n - 1, idx[0],
		    idx[n - 2], r))
		report_summary();
	for (unsigned k = 1; k < n && k <= 3; k++)
		aps[k] = ap_alloc(k, idx[k - 1], k == 1);

	refusals(aps[1]);
	start_in_vtl1(aps[1]);
	sipi_dropped(aps[1]);
	struct ap *vp1_vtl0 = ap_alloc(1, idx[0], 0);
	start_vtl0_after_vtl1(vp1_vtl0);
	init_dropped(vp1_vtl0);
	if (n >= 3)
		start_in_vtl0(aps[2], 0);
	if (n >= 4)
		start_in_vtl0(aps[3], 1);
	report_summary();
}
