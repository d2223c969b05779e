/*
 * Hypercall buffers under VTL protections (tlfs-vsm-facts.md §1.1, §1.5,
 * §2.15, §2.17, §3.4, §3.8, §4.2-§4.5), with the VSM library (lib/vsm.h)
 * on every VP. §1.1: an input page that is not readable, or an output page
 * that is not writable, makes the hypervisor raise a memory intercept
 * instead of answering the call.
 *
 * Every call below is a slow hypercall VTL0 makes through its hypercall
 * page from an assembly function (lib/access-fn.h) that loads every GPR
 * right before its CALL to the page: RCX the control word, RDX the input
 * GPA, R8 the output GPA, R9 the page, the others distinct values; the
 * VMCALL that runs is the page's first instruction (0F 01 C1, then RET).
 * Buffers are fresh pages of VTL0's, the input at offset 0x128 of its page
 * and the output at 0x238 of another, so the GPA in a message is the
 * buffer's first byte, not a page. VTL1 protects them through
 * ModifyVtlProtectionMask (VsmPartitionConfig: EnableVtlProtection,
 * default mask RWX).
 *
 * Each intercept is checked as one VTL entry with reason 3 and one SINT0
 * message, no other entry, and the message byte for byte against one VTL0
 * builds from the calling context alone: the §4.4 header (VP index,
 * instruction length 3, access type Read for the input / Write for the
 * output, execution state CPL 0, CR0.PE, EFER.LMA, VTL 0; CS; RIP = the
 * page's VMCALL; RFLAGS at the call), cache type WB, 3 instruction bytes
 * 0F 01 C1, MemoryAccessInfo 0 (a buffer is a GPA: no GVA, no TLB lock,
 * no output pending), GVA 0, GPA = the buffer's first byte, DS, SS and the
 * GPRs at the VMCALL (RSP 8 below the caller's: the CALL pushed). VTL1's
 * SINT0 handler also checks that the shared GPRs it was entered with are
 * the message's, and puts VTL0's RAX and RCX from the message back
 * through its control area (VtlReturnX64Rax/Rcx, non-fast return, §3.4:
 * VTL1's own VtlReturn sequence overwrites both shared registers), so
 * VTL0 runs the same VMCALL again when VTL1 returns: it is intercepted
 * again unless VTL1 changed the mask.
 *
 * Per VP:
 * 1. Input page no access (0x0): GetVpRegisters (VsmVpStatus, VpIndex)
 *    is a Read intercept; VTL1 makes the page R (0x1) and the call then
 *    succeeds with the right output, every GPR but RAX as before. Once
 *    VTL1 returns without changing the mask: the same message again,
 *    exactly one more intercept, then RWX and success.
 *    GetVpIndexFromApicId (all CPUs' APIC IDs) likewise, lifted to RWX.
 * 2. Output page read-only (0x1): GetVpRegisters and GetVpIndexFromApicId
 *    are Write intercepts, the output (a pattern) untouched when VTL1
 *    looks; RW (0x3) and the calls succeed; once unchanged: one more
 *    intercept. Both pages denied: the input's Read intercept first, then
 *    the output's Write intercept.
 * 3. SetVpRegisters of VTL0's own KernelGsBase (the library never uses
 *    it) with its input page no access: a Read intercept during which
 *    KernelGsBase (VTL1 reads VTL0's) is still the old value; after the
 *    retry RDMSR gives the new one.
 * 4. A call kvm answers itself, FlushVirtualAddressSpace (slow, needs
 *    hv-tlbflush): input page no access => INVALID_HYPERCALL_INPUT (kvm's
 *    rule), no VTL entry of any reason; input page R => SUCCESS.
 * 5. No intercept: a neighbouring page no access; the input page R and the
 *    output page RW (masks that allow the accesses); a misaligned input
 *    GPA on a no-access page, an input list crossing from a no-access page
 *    into the next, a misaligned output GPA on a read-only page: all
 *    INVALID_ALIGNMENT (the buffer's alignment checks come first), output
 *    untouched, no VTL entry.
 * The intercepts are counted per VP against the number planned (11).
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm,hv-tlbflush at any CPU
 * count; the counts in test/guests/vsm-hcbuffer.test.ts depend on it.
 * Without VSM every check is skipped (QEMU TCG has no Hyper-V).
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"
#include "access-fn.h"

#define PROTECTION_CONFIG (HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX))
#define R HV_MAP_GPA_READABLE
#define W HV_MAP_GPA_WRITABLE
#define RWX HV_MAP_GPA_RWX
#define NONE 0
#define IN_OFFSET 0x128            /* the input's place in its page (8-byte aligned) */
#define OUT_OFFSET 0x238           /* the output's place in its page */
#define PATTERN 0xa5               /* what the output holds before a call */
#define PATTERN64 0xa5a5a5a5a5a5a5a5UL
#define ORIGINATION_ID 1           /* as vsm-intercept: the partition's ID in intercept messages */
#define MAX_CAPTURE 4
#define PAGE_OF(p) ((u64)(p) >> HV_PAGE_SHIFT)
#define HV_REG_VP_INDEX 0x00090003 /* HvRegisterVpIndex (§3.7) */
#define VSM_VP_STATUS_VTL0 HV_VP_STATUS(0, 0x3) /* read by VTL0: ActiveVtl 0, EnabledVtlSet {0, 1} */
#define ONE_REP (1UL << 32)        /* a result value: SUCCESS, 1 rep completed */

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

/* The slow hypercall: RCX control, RDX input GPA, R8 output GPA, R9 = VTL0's hypercall page (its VMCALL at offset 0). */
ACCESS_FN(hc_page_call, "call *%r9");

static const u8 vmcall_bytes[3] = { 0x0f, 0x01, 0xc1 };

// ---------------------------------------------------------------- VTL1

/* What VTL1's SINT0 handler checks of the call at an intercept. */
enum watch { WATCH_NONE, WATCH_OUTPUT, WATCH_KERNEL_GS_BASE };

/* Per CPU: the test's instructions to VTL1 and what VTL1 saw, message by message. */
struct capture {
	volatile u32 count;
	u32 lift_after;            /* at this message VTL1 sets lift_mask on the page of the message's GPA */
	u32 lift_mask;
	enum watch watch;
	const volatile u8 *watch_ptr;
	unsigned watch_len;
	u64 watch_value;
	struct hv_message msg[MAX_CAPTURE];
	volatile bool regs_match[MAX_CAPTURE];
	volatile bool watched[MAX_CAPTURE];
	volatile u64 seen[MAX_CAPTURE];     /* WATCH_KERNEL_GS_BASE: the value read */
	volatile u64 lift_result;
};
static struct capture captured[MAX_CPUS];

static bool vtl1_watch(struct vsm_vp *vp, struct capture *c, u32 k)
{
	u64 v[2];

	switch (c->watch) {
	case WATCH_OUTPUT:
		for (unsigned i = 0; i < c->watch_len; i++)
			if (c->watch_ptr[i] != PATTERN)
				return false;
		return true;
	case WATCH_KERNEL_GS_BASE:
		if (vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_KERNEL_GS_BASE, v) != HV_STATUS_SUCCESS)
			return false;
		c->seen[k] = v[0];
		return v[0] == c->watch_value;
	default:
		return true;
	}
}

/*
 * SINT0 message, in VTL1's intercept entry (no printing). Copies it, checks
 * the shared GPRs VTL1 was entered with against the message's and what
 * watch asks for; VTL0's RAX and RCX from the message go back through the
 * control area (the library writes regs->rax / rcx into VtlReturnX64Rax /
 * Rcx for its non-fast return). At message lift_after (or once the capture
 * is full, so a wrong intercept cannot loop for ever) the page of the
 * message's GPA gets lift_mask (RWX when full).
 */
static void on_message(struct vsm_vp *vp, const struct hv_message *m)
{
	struct capture *c = &captured[vp->cpu];
	const struct hv_memory_intercept *p = (const void *)m->payload;
	struct vsm_regs *r = vp->regs;
	u32 k = c->count++;

	if (k < MAX_CAPTURE) {
		memcpy(&c->msg[k], m, sizeof(*m));
		const u64 *g = p->gprs;
		c->regs_match[k] = r->rax == g[RAX] && r->rcx == g[RCX] && r->rdx == g[RDX] && r->rbx == g[RBX] &&
				   r->rbp == g[RBP] && r->rsi == g[RSI] && r->rdi == g[RDI] && r->r8 == g[R8] &&
				   r->r9 == g[R9] && r->r10 == g[R10] && r->r11 == g[R11] && r->r12 == g[R12] &&
				   r->r13 == g[R13] && r->r14 == g[R14] && r->r15 == g[R15];
		c->watched[k] = vtl1_watch(vp, c, k);
	}
	if (m->type != HV_MESSAGE_TYPE_GPA_INTERCEPT)
		return;
	r->rax = p->gprs[RAX];
	r->rcx = p->gprs[RCX];
	if (k + 1 >= c->lift_after || k + 1 >= MAX_CAPTURE) {
		u64 page = p->gpa >> HV_PAGE_SHIFT;
		c->lift_result = vsm_modify_protection(&vp->hvc, HV_PARTITION_ID_SELF, k + 1 >= c->lift_after ? c->lift_mask : RWX,
						       HV_INPUT_VTL_SELF, &page, 1);
	}
}

// ---------------------------------------------------------------- VTL0

/* This VP's buffers and tallies. */
struct vpt {
	unsigned vp;
	u8 *in;                    /* two pages: the input page and its neighbour */
	u8 *out;
	u64 in_gpa, out_gpa;
	unsigned planned;
	bool protect_ok;
	u64 protect_bad;
};

/* ModifyVtlProtectionMask from VTL1 (VSM_CMD_PROTECT_PAGE); a result other than SUCCESS, 1 rep is reported at the end. */
static void protect(struct vpt *t, const void *page, u32 mask)
{
	u64 r = vsm_call(VSM_CMD_PROTECT_PAGE, PAGE_OF(page), mask, 0);

	if (r != ONE_REP) {
		t->protect_ok = false;
		t->protect_bad = r;
	}
}

static void unprotect_all(struct vpt *t)
{
	protect(t, t->in, RWX);
	protect(t, t->in + PAGE_SIZE, RWX);
	protect(t, t->out, RWX);
}

/* Distinct GPR values for this CPU and case; the caller sets the call's own. */
static void fill_gprs(unsigned tag)
{
	for (unsigned k = 0; k < 16; k++)
		fc_in[k] = 0x1000000000000000UL * (k + 1) + 0x10101UL * tag + smp_id();
}

/* One intercept expected: the access and the GPA. */
struct icpt { unsigned access; u64 gpa; };

/* A call and what it should do. */
struct hc_case {
	char what[128];
	u64 control, in_gpa, out_gpa;
	unsigned faults;           /* intercepts expected */
	struct icpt icpt[MAX_CAPTURE];
	u32 lift_after, lift_mask;
	enum watch watch;
	const u8 *watch_ptr;
	unsigned watch_len;
	u64 watch_value;
};

/* The GpaIntercept for intercept i of the call just made, from the calling context alone. */
static void expected_message(struct hv_message *m, const struct icpt *i)
{
	struct hv_memory_intercept *p = (void *)m->payload;

	memset(m, 0, sizeof(*m));
	m->type = HV_MESSAGE_TYPE_GPA_INTERCEPT;
	m->payload_size = HV_MEMORY_INTERCEPT_BYTES;
	m->origin = ORIGINATION_ID;
	vsm_intercept_header(&p->header, i->access, sizeof(vmcall_bytes), (u64)hv_hypercall_page, fc_rflags);
	p->cache_type = HV_CACHE_TYPE_WB;
	p->insn_byte_count = sizeof(vmcall_bytes);
	p->access_info = 0;
	p->gva = 0;
	p->gpa = i->gpa;
	memcpy(p->insn_bytes, vmcall_bytes, sizeof(vmcall_bytes));
	p->ds = vsm_gdt_segment(read_ds());
	p->ss = vsm_gdt_segment(read_ss());
	memcpy(p->gprs, fc_in, sizeof(p->gprs));
	p->gprs[RSP] = fc_in[RSP] - 8; /* the CALL to the page pushed its return address */
}

static const char *access_name(unsigned a)
{
	return a == HV_INTERCEPT_ACCESS_READ ? "Read" : a == HV_INTERCEPT_ACCESS_WRITE ? "Write" : "Execute";
}

static u64 all_entries(const struct vsm_vp *vp)
{
	return vp->entries[HV_VTL_ENTRY_VTL_CALL] + vp->entries[HV_VTL_ENTRY_INTERRUPT] + vp->entries[HV_VTL_ENTRY_INTERCEPT];
}

/*
 * Makes the call (fc_in already filled but for RCX, RDX, R8, R9) with the
 * protections in place, and checks the VTL entries (1 check) and each
 * message (1 check each). The caller checks the result in fc_out.
 */
static void run_case(struct vpt *t, const struct hc_case *h)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct capture *c = &captured[smp_id()];
	u64 intercepts = vp->entries[HV_VTL_ENTRY_INTERCEPT], entries = all_entries(vp), messages = vp->messages;
	struct hv_message want;
	static const char *const watch_text[2][3] = {
		{ [WATCH_NONE] = "", [WATCH_OUTPUT] = "; the output NOT untouched",
		  [WATCH_KERNEL_GS_BASE] = "; VTL0's KernelGsBase NOT the old value" },
		{ [WATCH_NONE] = "", [WATCH_OUTPUT] = "; the output untouched",
		  [WATCH_KERNEL_GS_BASE] = "; VTL0's KernelGsBase still the old value" },
	};

	/* Nothing left from an earlier case can pass for this one's messages. */
	memset(c->msg, 0, sizeof(c->msg));
	for (unsigned k = 0; k < MAX_CAPTURE; k++) {
		c->regs_match[k] = false;
		c->watched[k] = false;
		c->seen[k] = 0;
	}
	c->count = 0;
	c->lift_after = h->lift_after;
	c->lift_mask = h->lift_mask;
	c->watch = h->watch;
	c->watch_ptr = h->watch_ptr;
	c->watch_len = h->watch_len;
	c->watch_value = h->watch_value;
	c->lift_result = 0;
	fc_in[RCX] = h->control;
	fc_in[RDX] = h->in_gpa;
	fc_in[R8] = h->out_gpa;
	fc_in[R9] = (u64)hv_hypercall_page;
	hc_page_call();
	t->planned += h->faults;

	u64 n = vp->entries[HV_VTL_ENTRY_INTERCEPT] - intercepts, other = all_entries(vp) - entries - n, msgs = vp->messages - messages;
	if (h->faults == 0)
		report(n == 0 && other == 0 && msgs == 0 && c->count == 0, "%s: no VTL entry (%lu with reason 3, %lu other), no message (%lu)",
		       h->what, n, other, msgs);
	else
		report(n == h->faults && other == 0 && msgs == h->faults && c->count == h->faults &&
		       vp->last_reason == HV_VTL_ENTRY_INTERCEPT && (h->lift_mask == NONE || c->lift_result == ONE_REP),
		       "%s: %u intercept%s (%lu VTL entr%s with reason 3, %lu other, %lu SINT0 message%s); VTL1 set 0x%x at intercept %u (0x%lx)",
		       h->what, h->faults, h->faults == 1 ? "" : "s", n, n == 1 ? "y" : "ies", other, msgs, msgs == 1 ? "" : "s",
		       h->lift_mask, h->lift_after, c->lift_result);
	for (unsigned k = 0; k < h->faults && k < MAX_CAPTURE; k++) {
		char who[160];

		snprintf(who, sizeof(who), "%s, intercept %u", h->what, k + 1);
		expected_message(&want, &h->icpt[k]);
		bool same = vsm_same_bytes(who, &c->msg[k], &want, sizeof(want));
		if (h->watch == WATCH_KERNEL_GS_BASE && !c->watched[k])
			printf("  %s: VTL1 read KernelGsBase 0x%lx, expected 0x%lx\n", who, c->seen[k], h->watch_value);
		report(same && c->regs_match[k] && c->watched[k],
		       "%s: intercept %u is the GpaIntercept expected, byte for byte (%s, GPA 0x%lx, RIP 0x%lx: the page's VMCALL); "
		       "VTL1 was entered with VTL0's GPRs (%s)%s",
		       h->what, k + 1, access_name(h->icpt[k].access), h->icpt[k].gpa, (u64)hv_hypercall_page,
		       c->regs_match[k] ? "as in the message" : "NOT as in the message", watch_text[c->watched[k]][h->watch]);
	}
}

/* Every GPR but RAX as the call found it (RSP: the same after the return). */
static bool others_unchanged(void)
{
	for (unsigned k = 0; k < 16; k++)
		if (k != RAX && fc_out[k] != fc_in[k])
			return false;
	return true;
}

static void fill_output(struct vpt *t, unsigned len)
{
	memset(t->out + OUT_OFFSET, PATTERN, len);
}

static bool output_untouched(const struct vpt *t, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		if (t->out[OUT_OFFSET + i] != PATTERN)
			return false;
	return true;
}

// ---------------------------------------------------------------- the calls

/* GetVpRegisters (§2.15) of VsmVpStatus and VpIndex of this VP's VTL0, the input at in_gpa (written before any protection). */
#define GET_REGS_N 2
#define GET_REGS_OUT (16 * GET_REGS_N)
static void put_get_regs_input(u8 *at)
{
	u64 *q = (u64 *)at;
	u32 *names = (u32 *)&q[2];

	q[0] = HV_PARTITION_ID_SELF;
	q[1] = HV_VP_INDEX_SELF | ((u64)HV_INPUT_VTL_SELF << 32);
	names[0] = HV_REG_VSM_VP_STATUS;
	names[1] = HV_REG_VP_INDEX;
}

static bool get_regs_output_ok(const struct vpt *t)
{
	const u64 *o = (const u64 *)(t->out + OUT_OFFSET);

	return o[0] == VSM_VP_STATUS_VTL0 && o[1] == 0 && o[2] == t->vp && o[3] == 0;
}

/* GetVpIndexFromApicId (§2.17) of every CPU's APIC ID, in CPU order. */
static unsigned put_apic_input(u8 *at)
{
	u64 *q = (u64 *)at;
	u32 *ids = (u32 *)&q[2];

	q[0] = HV_PARTITION_ID_SELF;
	q[1] = HV_INPUT_VTL_SELF; /* TargetVtl at byte 8, 7 reserved bytes */
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		ids[cpu] = cpu_apic_id(cpu);
	return cpu_count();
}

static bool apic_output_ok(const struct vpt *t)
{
	const u32 *o = (const u32 *)(t->out + OUT_OFFSET);

	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		if (o[cpu] != hv_vp_of[cpu])
			return false;
	return true;
}

static void case_init(struct hc_case *h, struct vpt *t, const char *what, u64 control)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->what, sizeof(h->what), "VP%u %s", t->vp, what);
	h->control = control;
	h->in_gpa = t->in_gpa;
	h->out_gpa = t->out_gpa;
}

static void expect(struct hc_case *h, unsigned faults, unsigned access, u64 gpa, u32 lift_after, u32 lift_mask)
{
	h->faults = faults;
	for (unsigned k = 0; k < faults; k++)
		h->icpt[k] = (struct icpt){ access, gpa };
	h->lift_after = lift_after;
	h->lift_mask = lift_mask;
}

static void watch_output(struct hc_case *h, struct vpt *t, unsigned len)
{
	h->watch = WATCH_OUTPUT;
	h->watch_ptr = t->out + OUT_OFFSET;
	h->watch_len = len;
}

/* 1 and 2: GetVpRegisters with the input page `in_mask`, the output page `out_mask`. */
static void get_regs_case(struct vpt *t, unsigned tag, u32 in_mask, u32 out_mask, struct hc_case *h)
{
	put_get_regs_input(t->in + IN_OFFSET);
	fill_output(t, GET_REGS_OUT);
	protect(t, t->in, in_mask);
	protect(t, t->out, out_mask);
	fill_gprs(tag);
	run_case(t, h);
	report(fc_out[RAX] == ((u64)GET_REGS_N << 32) && get_regs_output_ok(t) && others_unchanged(),
	       "%s: then the VMCALL ran: SUCCESS, %u reps (0x%lx), output VsmVpStatus 0x%lx, VpIndex %lu; every other GPR as before",
	       h->what, GET_REGS_N, fc_out[RAX], *(u64 *)(t->out + OUT_OFFSET), *(u64 *)(t->out + OUT_OFFSET + 16));
	unprotect_all(t);
}

static void get_regs_cases(struct vpt *t)
{
	u64 control = HVCALL_GET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(GET_REGS_N);
	struct hc_case h;

	case_init(&h, t, "GetVpRegisters, input page no access (0x0)", control);
	expect(&h, 1, HV_INTERCEPT_ACCESS_READ, t->in_gpa, 1, R);
	watch_output(&h, t, GET_REGS_OUT);
	get_regs_case(t, 1, NONE, RWX, &h);

	case_init(&h, t, "GetVpRegisters, input page no access (0x0), VTL1 returns once unchanged", control);
	expect(&h, 2, HV_INTERCEPT_ACCESS_READ, t->in_gpa, 2, RWX);
	watch_output(&h, t, GET_REGS_OUT);
	get_regs_case(t, 2, NONE, RWX, &h);

	case_init(&h, t, "GetVpRegisters, output page read-only (0x1)", control);
	expect(&h, 1, HV_INTERCEPT_ACCESS_WRITE, t->out_gpa, 1, R | W);
	watch_output(&h, t, GET_REGS_OUT);
	get_regs_case(t, 3, RWX, R, &h);

	case_init(&h, t, "GetVpRegisters, output page read-only (0x1), VTL1 returns once unchanged", control);
	expect(&h, 2, HV_INTERCEPT_ACCESS_WRITE, t->out_gpa, 2, R | W);
	watch_output(&h, t, GET_REGS_OUT);
	get_regs_case(t, 4, RWX, R, &h);

	/* Both denied: the input is checked first (Read), then the output (Write); VTL1 lifts each page at its intercept. */
	case_init(&h, t, "GetVpRegisters, input page no access and output page read-only", control);
	expect(&h, 2, HV_INTERCEPT_ACCESS_READ, t->in_gpa, 1, RWX);
	h.icpt[1] = (struct icpt){ HV_INTERCEPT_ACCESS_WRITE, t->out_gpa };
	watch_output(&h, t, GET_REGS_OUT);
	get_regs_case(t, 5, NONE, R, &h);
}

static void apic_case(struct vpt *t, unsigned tag, u32 in_mask, u32 out_mask, struct hc_case *h)
{
	unsigned n = put_apic_input(t->in + IN_OFFSET);

	fill_output(t, 4 * n);
	protect(t, t->in, in_mask);
	protect(t, t->out, out_mask);
	fill_gprs(tag);
	run_case(t, h);
	report(fc_out[RAX] == ((u64)n << 32) && apic_output_ok(t) && others_unchanged(),
	       "%s: then the VMCALL ran: SUCCESS, %u reps (0x%lx), the output every CPU's VP index; every other GPR as before",
	       h->what, n, fc_out[RAX]);
	unprotect_all(t);
}

static void apic_cases(struct vpt *t)
{
	unsigned n = cpu_count();
	u64 control = HVCALL_GET_VP_INDEX_FROM_APIC_ID | HV_HYPERCALL_REP_COUNT(n);
	struct hc_case h;

	case_init(&h, t, "GetVpIndexFromApicId, input page no access (0x0)", control);
	expect(&h, 1, HV_INTERCEPT_ACCESS_READ, t->in_gpa, 1, RWX);
	watch_output(&h, t, 4 * n);
	apic_case(t, 6, NONE, RWX, &h);

	case_init(&h, t, "GetVpIndexFromApicId, output page read-only (0x1)", control);
	expect(&h, 1, HV_INTERCEPT_ACCESS_WRITE, t->out_gpa, 1, R | W);
	watch_output(&h, t, 4 * n);
	apic_case(t, 7, RWX, R, &h);
}

/* 3. SetVpRegisters (§2.15) of VTL0's own KernelGsBase, the input page no access. */
static void set_regs_case(struct vpt *t)
{
	u64 old = 0x0000123400000000UL | ((u64)t->vp << 8), value = 0x0000567800000000UL | ((u64)t->vp << 8) | 0x5a;
	u64 *q = (u64 *)(t->in + IN_OFFSET);
	struct hc_case h;

	wrmsr(MSR_KERNEL_GS_BASE, old);
	q[0] = HV_PARTITION_ID_SELF;
	q[1] = HV_VP_INDEX_SELF | ((u64)HV_INPUT_VTL_SELF << 32);
	q[2] = HV_REG_KERNEL_GS_BASE; /* name u32, 12 reserved bytes */
	q[3] = 0;
	q[4] = value;
	q[5] = 0;
	case_init(&h, t, "SetVpRegisters(KernelGsBase), input page no access (0x0)", HVCALL_SET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(1));
	expect(&h, 1, HV_INTERCEPT_ACCESS_READ, t->in_gpa, 1, R);
	h.watch = WATCH_KERNEL_GS_BASE;
	h.watch_value = old;
	protect(t, t->in, NONE);
	fill_gprs(8);
	run_case(t, &h);
	u64 now = rdmsr(MSR_KERNEL_GS_BASE);
	report(fc_out[RAX] == ONE_REP && now == value && others_unchanged(),
	       "%s: then the VMCALL ran: SUCCESS, 1 rep (0x%lx), KernelGsBase 0x%lx (was 0x%lx); every other GPR as before",
	       h.what, fc_out[RAX], now, old);
	wrmsr(MSR_KERNEL_GS_BASE, 0);
	unprotect_all(t);
}

/* 4. FlushVirtualAddressSpace (§2.4), slow: kvm answers it; a protection VTL1 set is kvm's INVALID_HYPERCALL_INPUT, no intercept. */
static void flush_cases(struct vpt *t)
{
	struct hv_flush_input *f = (void *)(t->in + IN_OFFSET);
	static const u32 masks[] = { NONE, R };
	static const unsigned status[] = { HV_STATUS_INVALID_HYPERCALL_INPUT, HV_STATUS_SUCCESS };
	static const char *const names[] = { "INVALID_HYPERCALL_INPUT", "SUCCESS" };
	struct hc_case h;

	for (unsigned i = 0; i < ARRAY_SIZE(masks); i++) {
		f->address_space = 0;
		f->flags = HV_FLUSH_ALL_PROCESSORS | HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
		f->processor_mask = 0;
		protect(t, t->in, masks[i]);
		char what[96];
		snprintf(what, sizeof(what), "FlushVirtualAddressSpace (kvm's), input page 0x%x", masks[i]);
		case_init(&h, t, what, HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE);
		h.out_gpa = 0;
		fill_gprs(9 + i);
		run_case(t, &h);
		report(fc_out[RAX] == status[i] && others_unchanged(), "%s: => %s (0x%lx); every other GPR as before", h.what, names[i], fc_out[RAX]);
		unprotect_all(t);
	}
}

/* 5. Buffers the protections do not deny, and alignment errors before the protection check. */
static void no_intercept_case(struct vpt *t, unsigned tag, const char *what, u64 in_gpa, u64 out_gpa, u32 in_mask, u32 out_mask,
			      u32 neighbour_mask, unsigned status)
{
	u64 control = HVCALL_GET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(GET_REGS_N);
	struct hc_case h;

	put_get_regs_input(t->in + IN_OFFSET);
	fill_output(t, GET_REGS_OUT);
	protect(t, t->in, in_mask);
	protect(t, t->in + PAGE_SIZE, neighbour_mask);
	protect(t, t->out, out_mask);
	case_init(&h, t, what, control);
	h.in_gpa = in_gpa;
	h.out_gpa = out_gpa;
	fill_gprs(tag);
	run_case(t, &h);
	if (status == HV_STATUS_SUCCESS)
		report(fc_out[RAX] == ((u64)GET_REGS_N << 32) && get_regs_output_ok(t) && others_unchanged(),
		       "%s: SUCCESS, %u reps (0x%lx), output VsmVpStatus 0x%lx, VpIndex %lu; every other GPR as before", h.what, GET_REGS_N,
		       fc_out[RAX], *(u64 *)(t->out + OUT_OFFSET), *(u64 *)(t->out + OUT_OFFSET + 16));
	else
		report(fc_out[RAX] == status && output_untouched(t, GET_REGS_OUT) && others_unchanged(),
		       "%s: INVALID_ALIGNMENT, 0 reps (0x%lx), output untouched; every other GPR as before", h.what, fc_out[RAX]);
	unprotect_all(t);
}

static void no_intercept_cases(struct vpt *t)
{
	no_intercept_case(t, 11, "GetVpRegisters, the next page no access (0x0), the buffers' pages RWX", t->in_gpa, t->out_gpa, RWX, RWX, NONE,
			  HV_STATUS_SUCCESS);
	no_intercept_case(t, 12, "GetVpRegisters, input page R (0x1), output page RW (0x3)", t->in_gpa, t->out_gpa, R, R | W, RWX,
			  HV_STATUS_SUCCESS);
	no_intercept_case(t, 13, "GetVpRegisters, input GPA misaligned (+4) on a no-access page", t->in_gpa + 4, t->out_gpa, NONE, RWX, RWX,
			  HV_STATUS_INVALID_ALIGNMENT);
	/* 16 + 4 * 2 = 24 bytes from 0xff0 of the input page: the list crosses into the next page. */
	no_intercept_case(t, 14, "GetVpRegisters, input list crossing from a no-access page into the next", (u64)t->in + 0xff0, t->out_gpa,
			  NONE, RWX, RWX, HV_STATUS_INVALID_ALIGNMENT);
	no_intercept_case(t, 15, "GetVpRegisters, output GPA misaligned (+4) on a read-only page", t->in_gpa, t->out_gpa + 4, RWX, R, RWX,
			  HV_STATUS_INVALID_ALIGNMENT);
}

static bool have_flush;

static void per_vp(void *arg)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct vpt t = { .vp = vp->vp_index, .protect_ok = true };
	u64 intercepts = vp->entries[HV_VTL_ENTRY_INTERCEPT];

	(void)arg;
	t.in = alloc_pages(2);
	t.out = alloc_page();
	t.in_gpa = (u64)t.in + IN_OFFSET;
	t.out_gpa = (u64)t.out + OUT_OFFSET;
	get_regs_cases(&t);
	apic_cases(&t);
	set_regs_case(&t);
	if (have_flush)
		flush_cases(&t);
	else
		report_skip("VP%u FlushVirtualAddressSpace (kvm's call): no PV TLB flush (needs --hv hv-tlbflush)", t.vp);
	no_intercept_cases(&t);
	u64 n = vp->entries[HV_VTL_ENTRY_INTERCEPT] - intercepts;
	report(n == t.planned && t.protect_ok, "VP%u: %lu intercepts in all, the %u planned; every ModifyVtlProtectionMask from VTL1 => SUCCESS, 1 rep%s",
	       t.vp, n, t.planned, t.protect_ok ? "" : " (NOT: one gave another result)");
	if (!t.protect_ok)
		printf("  a ModifyVtlProtectionMask gave 0x%lx\n", t.protect_bad);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	vsm_register_message_handler(on_message);
	if (!vsm_setup_all())
		report_summary();
	have_flush = hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH);
	report_info("%u CPUs; VTL0's hypercall page at 0x%lx", cpu_count(), (u64)hv_hypercall_page);
	const u8 *page = hv_hypercall_page;
	report(page[0] == 0x0f && page[1] == 0x01 && page[2] == 0xc1 && page[3] == 0xc3,
	       "VTL0's hypercall page begins with VMCALL; RET (%02x %02x %02x %02x): the VMCALL of every call here", page[0], page[1], page[2],
	       page[3]);
	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	report(s == HV_STATUS_SUCCESS, "VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX => SUCCESS (0x%lx)", s);
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, per_vp, NULL);
	report_summary();
}
