/*
 * Control-register and MSR intercepts of VTL0 by VTL1 (tlfs-vsm-facts.md
 * §3.7 HvX64RegisterCrInterceptControl, §3.10, §4.2-§4.6), with the VSM
 * library (lib/vsm.h) on every VP.
 *
 * 1. The registers (§3.7), VTL1 for itself: CrInterceptControl and the
 *    three masks read 0 at first; every supported bit (0-23) is
 *    accepted, the descriptor-table bits 15-18 each on its own too; any
 *    other bit (24-63) is INVALID_REGISTER_VALUE with 0 reps
 *    completed and the old value kept (in a rep call, after the elements
 *    before it were applied); the masks take any value. Target VTL0 (from
 *    VTL1, or VTL0 for itself) is INVALID_PARAMETER; VTL0 naming VTL1 is
 *    ACCESS_DENIED.
 * 2. On each VP, accesses by VTL0 that VTL1 intercepts: VTL0 runs each in
 *    an assembly function that loads every GPR with a known value right
 *    before the labelled instruction. VTL1's SINT0 handler copies the
 *    message, reads VTL0's RIP (still on the instruction: not retired),
 *    then does what the test planned: nothing (VTL0 runs it again and is
 *    intercepted again), skip it (SetVpRegisters of VTL0's RIP + the
 *    header's InstructionLength), or emulate it first (SetVpRegisters of
 *    VTL0's Cr4, Xfem, Efer, Idtr; for an RDMSR, the RDX:RAX VTL0 gets
 *    back). The
 *    test builds the RegisterIntercept / MsrIntercept message it expects
 *    from VTL0's state at the instruction (§4.4 header: VP index,
 *    instruction length, CR8, access type, execution state, CS from the
 *    GDT, RIP, RFLAGS; §4.6 payload) and compares the 0x50 bytes of header
 *    and payload. Covered: CR0 writes changing a Cr0Mask bit (MOV, LMSW
 *    from a register and from memory: IsMemoryOp) or not, CR4 writes
 *    emulated, XSETBV emulated, denied and with a value that would #GP,
 *    RDMSR/WRMSR of LSTAR (denied, emulated, non-canonical), EFER
 *    (intercepted twice, then emulated), every MSR bit of the control once,
 *    CPL3 accesses (#GP, no intercept), a cleared control, and VTL1's own
 *    accesses (never intercepted). The descriptor-table bits (15-18, no
 *    mask): LGDT denied (GDTR unchanged), LIDT emulated (SetVpRegisters of
 *    VTL0's Idtr, a 16-byte HV_X64_TABLE_REGISTER), LLDT of a selector that
 *    would #GP (register operand; intercepted twice, then skipped), LTR of
 *    the busy TSS (memory operand; skipped, no #GP); the message's
 *    AccessInfo is the table or selector being loaded, IsMemoryOp set for a
 *    memory operand. An LGDT whose operand is not mapped raises #PF, an
 *    LGDT at CPL3 #GP(0), neither intercepted; each bit intercepts only
 *    its own instruction, and with the bits clear LGDT, LIDT, LLDT take
 *    effect (LTR of the busy TSS raises its #GP).
 * 3. The intercept page (VsmPartitionConfig.InterceptPage): the message in
 *    the VP assist page, no SINT0 interrupt.
 * 4. With two or more CPUs: each VP has its own registers; VP1's VTL0 is not
 *    intercepted by VP0's control and vice versa.
 * 5. Unrecoverable exceptions (VsmPartitionConfig bit 11,
 *    InterceptUnrecoverableException; §3.7, §4.3, §4.6): the bit reads back
 *    as written, bit 10 (InterceptCpuidUnimplemented) is still refused. On
 *    each VP, VTL1 sets it; VTL0, IF clear, loads an empty IDT (limit 0)
 *    and executes UD2: #UD, #GP, #DF cannot be delivered, a triple fault.
 *    VTL1 is entered with reason 3 and gets the UnrecoverableException
 *    message (header only: instruction length 0, access type read, RIP on
 *    the UD2), compared byte for byte with the one built from VTL0's state;
 *    VTL0's RIP and Idtr (GetVpRegisters) are those it stopped with. VTL1
 *    returns without repairing it (the same triple fault, the same message),
 *    then repairs it (SetVpRegisters of VTL0's Idtr back to its IDT and of
 *    its Rip past the UD2): VTL0 goes on with every GPR as it was, and
 *    takes its next #UD itself. VTL1 clears the bit again.
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm at any CPU count; the
 * counts in test/guests/vsm-protect.test.ts depend on it. Without VSM
 * every check is skipped (QEMU TCG has no Hyper-V).
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"
#include "access-fn.h"

enum { CMD_SET = VSM_CMD_USER, CMD_GET, CMD_TRY, CMD_OWN };

#define X86_CR0_TS BIT(3)
#define X86_CR4_TSD BIT(2)
#define X86_CR4_OSXSAVE BIT(18)
#define MSR_CSTAR 0xc0000083
#define MSR_SFMASK 0xc0000084
#define MSR_TSC_AUX 0xc0000103
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176

/* Every bit of CrInterceptControl this VMM supports (src/vmm/vsm/cr-intercept.ts: 0-2, 5-23). */
#define SUPPORTED_CONTROL 0xffffffUL
#define MSR_IA32_MISC_ENABLE 0x1a0
/* The IA32_MISC_ENABLE bit the write cases change (limit CPUID maxval: only stored here) and Ia32MiscEnableMask covers. */
#define MISC_ENABLE_BIT BIT(22)
/* The descriptor-table bits: GDTR, IDTR, LDTR, TR writes. */
#define TABLE_BITS (HV_CR_INTERCEPT_GDTR_WRITE | HV_CR_INTERCEPT_IDTR_WRITE | HV_CR_INTERCEPT_LDTR_WRITE | HV_CR_INTERCEPT_TR_WRITE)
/* What the partition is called in intercept messages (src/vmm/vsm/memory-intercept.ts; the sheet gives no value). */
#define ORIGINATION_ID 1
/* The bytes compared of a message: its 16-byte header and payload (0x40 for a register or MSR intercept, 0x28 for an UnrecoverableException). */
static unsigned message_bytes(const struct hv_message *want)
{
	return 16 + ALIGN_UP(want->payload_size, 8);
}
#define MAX_CAPTURE 4
/* Upper halves WRMSR and XSETBV ignore: the message must still carry the full RDX and RAX. */
#define HIGH_RAX 0xa5a5a5a500000000UL
#define HIGH_RDX 0x5a5a5a5a00000000UL

static struct vsm_hvc vtl0_hvc;

// ---------------------------------------------------------------- the intercepted instructions

/* The access functions (lib/access-fn.h): fc_in before, fc_out after, fc_rflags at the instruction. */
ACCESS_FN(access_cr0, "mov %rax, %cr0");
ACCESS_FN(access_cr4, "mov %rax, %cr4");
ACCESS_FN(access_lmsw, "lmsw %ax");
ACCESS_FN(access_lmsw_mem, "lmsw (%rsi)");
ACCESS_FN(access_xsetbv, "xsetbv");
ACCESS_FN(access_wrmsr, "wrmsr");
ACCESS_FN(access_rdmsr, "rdmsr");
/* The descriptor-table loads, of different lengths (3 or 4 bytes); LLDT from a register, the others from memory. */
ACCESS_FN(access_lgdt, "lgdt (%rsi)");
ACCESS_FN(access_lidt, "lidt 0x10(%rdi)");
ACCESS_FN(access_lldt, "lldt %ax");
ACCESS_FN(access_ltr, "ltr (%r8)");
/* With an empty IDT: the triple fault. */
ACCESS_FN(access_ud2, "ud2");
#define UD2_LENGTH 2

struct insn {
	void (*fn)(void);
	const u8 *at, *end;
};
#define INSN(n) { access_##n, access_##n##_insn, access_##n##_end }
static const struct insn I_CR0 = INSN(cr0), I_CR4 = INSN(cr4), I_LMSW = INSN(lmsw), I_LMSW_MEM = INSN(lmsw_mem),
			 I_XSETBV = INSN(xsetbv), I_WRMSR = INSN(wrmsr), I_RDMSR = INSN(rdmsr), I_LGDT = INSN(lgdt),
			 I_LIDT = INSN(lidt), I_LLDT = INSN(lldt), I_LTR = INSN(ltr), I_UD2 = INSN(ud2);

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8 };
/* lidt's displacement: RDI points this far before the operand. */
#define LIDT_DISP 0x10

/* Distinct GPR values for this CPU and case; the caller sets the ones the instruction uses. */
static void fill_gprs(unsigned tag)
{
	for (unsigned k = 0; k < 16; k++)
		fc_in[k] = 0x1000000000000000UL * (k + 1) + 0x10101UL * tag + smp_id();
}

/* The GPRs after the access are those before it, except RAX and RDX when `but_rax_rdx`. */
static bool gprs_kept(bool but_rax_rdx)
{
	for (unsigned k = 0; k < 16; k++)
		if (!(but_rax_rdx && (k == RAX || k == RDX)) && fc_out[k] != fc_in[k])
			return false;
	return true;
}

static u64 xgetbv0(void)
{
	u32 lo, hi;

	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return lo | ((u64)hi << 32);
}

// ---------------------------------------------------------------- VTL1

/* What VTL1's message handler does with an intercept of the planned access (per CPU, set by VTL0). */
enum { ACT_SKIP, ACT_SET_REG, ACT_RDMSR, ACT_SET_REG128 };
struct plan {
	volatile unsigned act;
	volatile unsigned handle_at;    /* message number (from 1) at which it acts; before it, it returns without doing anything */
	volatile u32 reg;               /* ACT_SET_REG(128): VTL0's register to set to `value` first */
	volatile u64 value;             /* ACT_RDMSR: what VTL0 gets in RDX:RAX */
	volatile u64 value_hi;          /* ACT_SET_REG128: the value's high 8 bytes (`value` the low 8) */
	volatile u64 resume;            /* where VTL0 must go on (the end label); 0: no access is planned */
};

/* What the handler saw, per CPU. */
struct capture {
	volatile u32 count;
	struct hv_message msg[MAX_CAPTURE];
	u64 vtl0_rip[MAX_CAPTURE];       /* VTL0's RIP (GetVpRegisters) when the message came */
	struct hv_table vtl0_idtr[MAX_CAPTURE]; /* and its Idtr, for an UnrecoverableException */
	volatile unsigned statuses;      /* OR of the statuses of its Get/SetVpRegisters calls */
	volatile u64 bad_next;           /* RIP + InstructionLength, when that was not the end label */
};

static struct plan plans[MAX_CPUS];
static struct capture captured[MAX_CPUS];
static volatile u32 strays[MAX_CPUS];    /* intercepts while no access was planned */

/* SINT0 or intercept-page message (in VTL1's intercept entry: no printing). */
static void on_message(struct vsm_vp *vp, const struct hv_message *m)
{
	const struct hv_intercept_header *h = (const void *)m->payload;
	struct capture *c = &captured[vp->cpu];
	struct plan *p = &plans[vp->cpu];
	u32 k = c->count++;
	u64 rip[2] = { 0, 0 };

	if (!p->resume) {
		/* Nothing planned: turn this VP's intercepts off and let VTL0 run the instruction (the count shows it). */
		strays[vp->cpu]++;
		vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_CR_INTERCEPT_CONTROL, 0);
		return;
	}
	c->statuses |= vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_RIP, rip);
	if (k < MAX_CAPTURE) {
		memcpy(&c->msg[k], m, sizeof(*m));
		c->vtl0_rip[k] = rip[0];
		if (m->type == HV_MESSAGE_TYPE_UNRECOVERABLE_EXCEPTION)
			c->statuses |= vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_IDTR, &c->vtl0_idtr[k]);
	}
	if (k + 1 < p->handle_at && k + 1 < MAX_CAPTURE)
		return; /* VTL0 runs it again */
	/*
	 * Skip it: RIP + InstructionLength (§4.4), or the end label if the
	 * message says otherwise (no jump into the middle of something). A
	 * triple fault has no instruction length (0): past the planned UD2.
	 */
	u64 next = h->rip + (m->type == HV_MESSAGE_TYPE_UNRECOVERABLE_EXCEPTION ? UD2_LENGTH : (h->insn_length_cr8 & 0xf));
	if (next != p->resume) {
		c->bad_next = next;
		next = p->resume;
	}
	if (p->act == ACT_SET_REG) {
		c->statuses |= vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), p->reg, p->value);
	} else if (p->act == ACT_SET_REG128) {
		u64 v[2] = { p->value, p->value_hi };
		c->statuses |= vsm_set_reg128(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), p->reg, v);
	} else if (p->act == ACT_RDMSR) {
		/* RAX and RDX are shared (§3.2): VTL0 gets them as VTL1 returns them. */
		vp->regs->rax = (u32)p->value;
		vp->regs->rdx = p->value >> 32;
	}
	c->statuses |= vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_RIP, next);
}

/* Get/SetVpRegisters from VTL1 as a request in shared memory describes it. */
struct regs_req {
	u32 vp;
	u8 input_vtl;
	unsigned n;
	u32 names[4];
	u64 values[4];      /* Set: the values; Get: the low 64 bits read */
};

static u64 vtl1_set(struct vsm_vp *vp, struct vsm_regs *regs)
{
	const struct regs_req *q = (const void *)vp->arg[0];

	(void)regs;
	return vsm_set_regs(&vp->hvc, q->vp, q->input_vtl, q->names, q->values, q->n);
}

static u64 vtl1_get(struct vsm_vp *vp, struct vsm_regs *regs)
{
	struct regs_req *q = (void *)vp->arg[0];
	u64 v[8];

	(void)regs;
	memset(v, 0, sizeof(v));
	unsigned s = vsm_get_regs(&vp->hvc, q->vp, q->input_vtl, q->names, q->n, v);
	for (unsigned i = 0; i < q->n; i++)
		q->values[i] = v[2 * i];
	return s;
}

/* CMD_TRY (arg0 = register, arg1 = base, arg2 = value): set base, set value, read it, set base again. */
static struct { u64 got; unsigned base_status, read_status; } tried[MAX_CPUS];

static u64 vtl1_try(struct vsm_vp *vp, struct vsm_regs *regs)
{
	u32 name = vp->arg[0];
	u64 value = vp->arg[2], v[2] = { 0, 0 };

	(void)regs;
	tried[vp->cpu].base_status = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, name, vp->arg[1]);
	u64 r = vsm_set_regs(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, &name, &value, 1);
	tried[vp->cpu].read_status = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, name, v);
	tried[vp->cpu].got = v[0];
	tried[vp->cpu].base_status |= vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, name, vp->arg[1]);
	return r;
}

static u16 read_ldtr(void)
{
	u16 v;

	asm volatile("sldt %0" : "=r"(v));
	return v;
}

static bool same_table(const struct descriptor_table_ptr *a, const struct descriptor_table_ptr *b)
{
	return a->base == b->base && a->limit == b->limit;
}

/*
 * CMD_OWN: VTL1 changes its own CR0.WP, CR4.TSD, LSTAR and EFER and puts
 * them back (arg0 = an LSTAR value); it reloads its own GDTR, IDTR and
 * LDTR (LTR of its busy TSS would #GP).
 */
static struct { u64 cr0, cr4, lstar, efer; bool tables; } own[MAX_CPUS];

static u64 vtl1_own(struct vsm_vp *vp, struct vsm_regs *regs)
{
	u64 cr0 = read_cr0(), cr4 = read_cr4(), lstar = rdmsr(MSR_LSTAR), efer = rdmsr(MSR_EFER);
	struct descriptor_table_ptr gdtr, idtr, g, i;
	u16 ldtr = read_ldtr();

	(void)regs;
	sgdt(&gdtr);
	sidt(&idtr);
	lgdt(&gdtr);
	lidt(&idtr);
	asm volatile("lldt %0" : : "r"(ldtr));
	sgdt(&g);
	sidt(&i);
	own[vp->cpu].tables = same_table(&g, &gdtr) && same_table(&i, &idtr) && read_ldtr() == ldtr;
	write_cr0(cr0 & ~X86_CR0_WP);
	own[vp->cpu].cr0 = read_cr0();
	write_cr0(cr0);
	write_cr4(cr4 | X86_CR4_TSD);
	own[vp->cpu].cr4 = read_cr4();
	write_cr4(cr4);
	wrmsr(MSR_LSTAR, vp->arg[0]);
	own[vp->cpu].lstar = rdmsr(MSR_LSTAR);
	wrmsr(MSR_LSTAR, lstar);
	wrmsr(MSR_EFER, efer ^ EFER_SCE);
	own[vp->cpu].efer = rdmsr(MSR_EFER) ^ efer;
	wrmsr(MSR_EFER, efer);
	return (read_cr0() == cr0 && read_cr4() == cr4 && rdmsr(MSR_LSTAR) == lstar && rdmsr(MSR_EFER) == efer) ? 0 : 1;
}

// ---------------------------------------------------------------- VTL0 helpers

static bool result_is(u64 r, unsigned status, unsigned reps)
{
	return HV_RESULT_STATUS(r) == status && HV_RESULT_REPS(r) == reps;
}

/* SetVpRegisters from VTL1 of n registers of VP `vp` (HV_VP_INDEX_SELF: its own); returns the result value. */
static u64 vtl1_set_regs(u32 vp, u8 input_vtl, unsigned n, const u32 *names, const u64 *values)
{
	struct regs_req q = { .vp = vp, .input_vtl = input_vtl, .n = n };

	memcpy(q.names, names, 4 * n);
	memcpy(q.values, values, 8 * n);
	return vsm_call(CMD_SET, (u64)&q, 0, 0);
}

/* GetVpRegisters from VTL1; the values' low 64 bits into values[]. Returns the status. */
static unsigned vtl1_get_regs(u32 vp, u8 input_vtl, unsigned n, const u32 *names, u64 *values)
{
	struct regs_req q = { .vp = vp, .input_vtl = input_vtl, .n = n };

	memcpy(q.names, names, 4 * n);
	unsigned s = vsm_call(CMD_GET, (u64)&q, 0, 0);
	memcpy(values, q.values, 8 * n);
	return s;
}

static const u32 CR_REGS[4] = { HV_REG_CR_INTERCEPT_CONTROL, HV_REG_CR_INTERCEPT_CR0_MASK, HV_REG_CR_INTERCEPT_CR4_MASK,
				HV_REG_CR_INTERCEPT_IA32_MISC_ENABLE_MASK };

/* VTL1 of this VP: Cr0Mask, Cr4Mask, then CrInterceptControl, in one call. Reports only a failure. */
static void configure(u64 control, u64 cr0_mask, u64 cr4_mask)
{
	static const u32 names[3] = { HV_REG_CR_INTERCEPT_CR0_MASK, HV_REG_CR_INTERCEPT_CR4_MASK, HV_REG_CR_INTERCEPT_CONTROL };
	u64 values[3] = { cr0_mask, cr4_mask, control };
	u64 r = vtl1_set_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 3, names, values);

	if (!result_is(r, HV_STATUS_SUCCESS, 3))
		report(false, "VP%u VTL1: SetVpRegisters(Cr0Mask 0x%lx, Cr4Mask 0x%lx, CrInterceptControl 0x%lx) => 0x%lx", hv_vp_index(),
		       cr0_mask, cr4_mask, control, r);
}

/* One planned access and what came of it on this VP. */
struct outcome {
	u64 entries, messages, irqs;    /* intercept entries, messages handled, VTL1 interrupts during it */
	u32 reason;                     /* the last entry's reason */
	bool faulted;
	struct ex_info ex;
};

static void call_insn(void *arg)
{
	((const struct insn *)arg)->fn();
}

/* Runs the access (fc_in set) with VTL1's handler planned as given; a fault is caught, not fatal. */
static struct outcome run(const struct insn *in, unsigned act, unsigned handle_at, u32 reg, u64 value)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct capture *c = &captured[smp_id()];
	struct plan *p = &plans[smp_id()];
	u64 e = vp->entries[HV_VTL_ENTRY_INTERCEPT], m = vp->messages, i = vp->irqs;
	struct outcome o;

	memset(c, 0, sizeof(*c));
	p->act = act;
	p->handle_at = handle_at;
	p->reg = reg;
	p->value = value;
	p->resume = (u64)in->end;
	o.faulted = expect_exception(call_insn, (void *)in, &o.ex);
	p->resume = 0;
	o.entries = vp->entries[HV_VTL_ENTRY_INTERCEPT] - e;
	o.messages = vp->messages - m;
	o.irqs = vp->irqs - i;
	o.reason = vp->last_reason;
	return o;
}

static struct outcome run_plain(const struct insn *in)
{
	return run(in, ACT_SKIP, 1, 0, 0);
}

static bool not_intercepted(const struct outcome *o)
{
	return o->entries == 0 && o->messages == 0 && captured[smp_id()].count == 0 && !o->faulted;
}

/* The RegisterIntercept of a write: Flags (IsMemoryOp), the register, AccessInfo's 16 bytes. */
static void expect_register_ex(struct hv_message *m, const struct insn *in, u8 flags, u32 reg, u64 info_lo, u64 info_hi)
{
	struct hv_register_intercept *p = (void *)m->payload;

	memset(m, 0, sizeof(*m));
	m->type = HV_MESSAGE_TYPE_REGISTER_INTERCEPT;
	m->payload_size = HV_REGISTER_INTERCEPT_BYTES;
	m->origin = ORIGINATION_ID;
	vsm_intercept_header(&p->header, HV_INTERCEPT_ACCESS_WRITE, in->end - in->at, (u64)in->at, 0);
	p->flags = flags;
	p->register_name = reg;
	p->access_info[0] = info_lo;
	p->access_info[1] = info_hi;
}

/* A CR0 / CR4 / XCR0 write from a register: IsMemoryOp 0, AccessInfo the value. */
static void expect_register(struct hv_message *m, const struct insn *in, u32 reg, u64 value)
{
	expect_register_ex(m, in, 0, reg, value, 0);
}

/* LGDT / LIDT (always from memory): AccessInfo the HV_X64_TABLE_REGISTER being loaded. */
static void expect_table(struct hv_message *m, const struct insn *in, u32 reg, const struct descriptor_table_ptr *t)
{
	struct hv_table v = { .limit = t->limit, .base = t->base };
	u64 info[2];

	memcpy(info, &v, sizeof(info));
	expect_register_ex(m, in, HV_REGISTER_INTERCEPT_IS_MEMORY_OP, reg, info[0], info[1]);
}

/* LLDT / LTR: AccessInfo the selector being loaded, then 14 zero bytes. */
static void expect_selector(struct hv_message *m, const struct insn *in, u32 reg, u16 selector, bool memory)
{
	expect_register_ex(m, in, memory ? HV_REGISTER_INTERCEPT_IS_MEMORY_OP : 0, reg, selector, 0);
}

/* The MsrIntercept for RDMSR/WRMSR (fc_in set: ECX the MSR, the full RDX and RAX). */
static void expect_msr(struct hv_message *m, const struct insn *in)
{
	struct hv_msr_intercept *p = (void *)m->payload;

	memset(m, 0, sizeof(*m));
	m->type = HV_MESSAGE_TYPE_MSR_INTERCEPT;
	m->payload_size = HV_MSR_INTERCEPT_BYTES;
	m->origin = ORIGINATION_ID;
	vsm_intercept_header(&p->header, in == &I_WRMSR ? HV_INTERCEPT_ACCESS_WRITE : HV_INTERCEPT_ACCESS_READ, in->end - in->at,
			     (u64)in->at, 0);
	p->msr = (u32)fc_in[RCX];
	p->rdx = fc_in[RDX];
	p->rax = fc_in[RAX];
}

/* RFLAGS at the instruction: known once the access ran. */
static void set_rflags(struct hv_message *m)
{
	((struct hv_intercept_header *)(void *)m->payload)->rflags = fc_rflags;
}

static void describe(char *buf, unsigned size, const struct hv_message *m)
{
	if (m->type == HV_MESSAGE_TYPE_UNRECOVERABLE_EXCEPTION) {
		const struct hv_intercept_header *h = (const void *)m->payload;

		snprintf(buf, size, "UnrecoverableException (header only: RIP 0x%lx, instruction length 0, RFLAGS 0x%lx)", h->rip, h->rflags);
	} else if (m->type == HV_MESSAGE_TYPE_REGISTER_INTERCEPT) {
		const struct hv_register_intercept *p = (const void *)m->payload;
		const char *mem = (p->flags & HV_REGISTER_INTERCEPT_IS_MEMORY_OP) ? ", memory operand" : "";

		if (p->register_name == HV_REG_GDTR || p->register_name == HV_REG_IDTR)
			snprintf(buf, size, "RegisterIntercept: register 0x%x, base 0x%lx, limit 0x%lx%s", p->register_name, p->access_info[1],
				 p->access_info[0] >> 48, mem);
		else if (p->register_name == HV_REG_LDTR || p->register_name == HV_REG_TR)
			snprintf(buf, size, "RegisterIntercept: register 0x%x, selector 0x%lx%s", p->register_name, p->access_info[0], mem);
		else
			snprintf(buf, size, "RegisterIntercept: register 0x%x, value 0x%lx%s", p->register_name, p->access_info[0], mem);
	} else {
		const struct hv_msr_intercept *p = (const void *)m->payload;
		snprintf(buf, size, "MsrIntercept: %s of MSR 0x%x", p->header.access_type ? "write" : "read", p->msr);
	}
}

/* n intercepts, each an entry with reason 3 and a message (SINT0 interrupt, or the intercept page), VTL0's RIP on the instruction. */
static bool intercepted(const struct outcome *o, const struct insn *in, unsigned n, bool page)
{
	const struct capture *c = &captured[smp_id()];
	bool rips = true;

	for (unsigned k = 0; k < n && k < MAX_CAPTURE; k++)
		rips &= c->vtl0_rip[k] == (u64)in->at;
	return o->entries == n && o->reason == HV_VTL_ENTRY_INTERCEPT && o->messages == n && c->count == n &&
	       o->irqs == (page ? 0 : n) && rips && !o->faulted && c->statuses == 0 && c->bad_next == 0;
}

/* The first line: counts and RIP (with what was seen). */
static void report_intercepts(const char *who, const struct outcome *o, const struct insn *in, unsigned n, bool page)
{
	const struct capture *c = &captured[smp_id()];

	report(intercepted(o, in, n, page),
	       "%s: %u intercept%s: VTL entr%s with reason 3, %s, VTL0's RIP still on the instruction (entries %lu, messages %lu, "
	       "interrupts %lu, fault %u, statuses 0x%x, RIP+length 0x%lx)",
	       who, n, n == 1 ? "" : "s", n == 1 ? "y" : "ies", page ? "message in the VP assist page, no SINT0 interrupt" : "SINT0 message and interrupt",
	       o->entries, o->messages, o->irqs, o->faulted ? o->ex.vector : 0, c->statuses, c->bad_next);
}

/* The counts line, then each of the n messages against want, byte for byte (1 + n lines). */
static void check_intercepts(const char *who, const struct outcome *o, const struct insn *in, const struct hv_message *want, unsigned n, bool page)
{
	const struct capture *c = &captured[smp_id()];
	char what[128];

	report_intercepts(who, o, in, n, page);
	describe(what, sizeof(what), want);
	for (unsigned k = 0; k < n && k < MAX_CAPTURE; k++)
		report(vsm_same_bytes(who, &c->msg[k], want, message_bytes(want)), "%s: message %u is the %s expected, byte for byte", who, k + 1, what);
}

static void restore_cr0(u64 cr0)
{
	if (read_cr0() != cr0)
		write_cr0(cr0);
}

static void restore_cr4(u64 cr4)
{
	if (read_cr4() != cr4)
		write_cr4(cr4);
}

// ---------------------------------------------------------------- 1. the registers

static void registers(void)
{
	u64 v[4], r;
	unsigned s;

	s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 4, CR_REGS, v);
	report(s == HV_STATUS_SUCCESS && !v[0] && !v[1] && !v[2] && !v[3],
	       "VTL1: CrInterceptControl, Cr0Mask, Cr4Mask, Ia32MiscEnableMask read 0 at first (0x%x: 0x%lx 0x%lx 0x%lx 0x%lx)", s, v[0], v[1],
	       v[2], v[3]);

	/* Set, read back and cleared again in one VTL1 visit: VTL0 never runs with all of them on. */
	r = vsm_call(CMD_TRY, HV_REG_CR_INTERCEPT_CONTROL, 0, SUPPORTED_CONTROL);
	report(result_is(r, HV_STATUS_SUCCESS, 1) && tried[0].got == SUPPORTED_CONTROL && !tried[0].base_status && !tried[0].read_status,
	       "VTL1: CrInterceptControl 0x%lx (every supported bit) => SUCCESS (0x%lx), reads 0x%lx", SUPPORTED_CONTROL, r, tried[0].got);

	/* From a base of CR0 and CR4 writes with masks 0 (which intercept nothing): the descriptor-table bits on their own, then refused bits. */
	const u64 base = HV_CR_INTERCEPT_CR0_WRITE | HV_CR_INTERCEPT_CR4_WRITE;
	for (unsigned b = 15; b <= 18; b++) {
		r = vsm_call(CMD_TRY, HV_REG_CR_INTERCEPT_CONTROL, base, base | BIT(b));
		report(result_is(r, HV_STATUS_SUCCESS, 1) && tried[0].got == (base | BIT(b)) && !tried[0].base_status && !tried[0].read_status,
		       "VTL1: CrInterceptControl 0x%lx | bit %u => SUCCESS (0x%lx), reads 0x%lx", base, b, r, tried[0].got);
	}
	static const unsigned bad[] = { 24, 25, 26, 27, 28, 29, 32, 63 };
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		r = vsm_call(CMD_TRY, HV_REG_CR_INTERCEPT_CONTROL, base, base | BIT(bad[i]));
		report(result_is(r, HV_STATUS_INVALID_REGISTER_VALUE, 0) && tried[0].got == base && !tried[0].base_status && !tried[0].read_status,
		       "VTL1: CrInterceptControl 0x%lx | bit %u => INVALID_REGISTER_VALUE, 0 reps (0x%lx), still reads 0x%lx", base, bad[i], r,
		       tried[0].got);
	}

	/* A rep call: element 0 applies, element 1 is refused. */
	static const u32 pair[2] = { HV_REG_CR_INTERCEPT_CR0_MASK, HV_REG_CR_INTERCEPT_CONTROL };
	u64 pv[2] = { X86_CR0_WP, base | BIT(24) };
	r = vtl1_set_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 2, pair, pv);
	s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 2, pair, v);
	report(result_is(r, HV_STATUS_INVALID_REGISTER_VALUE, 1) && s == HV_STATUS_SUCCESS && v[0] == X86_CR0_WP && v[1] == base,
	       "VTL1: SetVpRegisters {Cr0Mask 0x10000, CrInterceptControl 0x%lx} => INVALID_REGISTER_VALUE, 1 rep (0x%lx); Cr0Mask 0x%lx, "
	       "CrInterceptControl 0x%lx", base | BIT(24), r, v[0], v[1]);

	/* The masks take any value. */
	u64 masks[4] = { 0, ~0UL, 0x8000000000000001UL, 0x123456789abcdef0UL };
	r = vtl1_set_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 4, CR_REGS, masks);
	s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 4, CR_REGS, v);
	/* The registers keep what was written; CR0/CR4 bits 63:32 (RsvdZ) in a mask simply never match a change. */
	report(result_is(r, HV_STATUS_SUCCESS, 4) && s == HV_STATUS_SUCCESS && !v[0] && v[1] == masks[1] && v[2] == masks[2] && v[3] == masks[3],
	       "VTL1: Cr0Mask ~0, Cr4Mask 0x8000000000000001, Ia32MiscEnableMask 0x123456789abcdef0 => SUCCESS (0x%lx), read back "
	       "exactly: 0x%lx 0x%lx 0x%lx", r, v[1], v[2], v[3]);
	u64 zero[4] = { 0, 0, 0, 0 };
	r = vtl1_set_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 4, CR_REGS, zero);
	if (!result_is(r, HV_STATUS_SUCCESS, 4))
		report(false, "VTL1: clearing the four registers => 0x%lx", r);

	/* Target VTL0: the registers exist only for VTL1 and up. */
	u64 one = HV_CR_INTERCEPT_CR0_WRITE;
	r = vtl1_set_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL(0), 1, CR_REGS, &one);
	s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL(0), 1, CR_REGS, v);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER && s == HV_STATUS_INVALID_PARAMETER,
	       "VTL1: Set/GetVpRegisters(CrInterceptControl) with target VTL0 => INVALID_PARAMETER (0x%lx, 0x%x)", r, s);
	static const char *const names[4] = { "CrInterceptControl", "CrInterceptCr0Mask", "CrInterceptCr4Mask", "CrInterceptIa32MiscEnableMask" };
	for (unsigned i = 0; i < 4; i++) {
		unsigned ss = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, CR_REGS[i], 1);
		unsigned gs = vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, CR_REGS[i], NULL);
		report(ss == HV_STATUS_INVALID_PARAMETER && gs == HV_STATUS_INVALID_PARAMETER,
		       "VTL0: Set/GetVpRegisters(%s) for itself => INVALID_PARAMETER (0x%x, 0x%x)", names[i], ss, gs);
	}
	unsigned ss = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(1), HV_REG_CR_INTERCEPT_CONTROL, HV_CR_INTERCEPT_CR0_WRITE);
	unsigned gs = vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(1), HV_REG_CR_INTERCEPT_CONTROL, NULL);
	s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 1, CR_REGS, v);
	report(ss == HV_STATUS_ACCESS_DENIED && gs == HV_STATUS_ACCESS_DENIED && s == HV_STATUS_SUCCESS && v[0] == 0,
	       "VTL0: Set/GetVpRegisters(CrInterceptControl) of VTL1 => ACCESS_DENIED (0x%x, 0x%x); VTL1's still reads 0x%lx", ss, gs, v[0]);
}

// ---------------------------------------------------------------- 2. intercepts on each VP

#define WHO(buf, fmt, ...) snprintf(buf, sizeof(buf), "VP%u " fmt, hv_vp_index(), ##__VA_ARGS__)

/* MOV to CR0 clearing WP with Cr0Mask WP: intercepted, denied (VTL1 skips it). */
static void cr0_denied(void)
{
	u64 cr0 = read_cr0();
	struct hv_message want;
	char who[80];

	WHO(who, "MOV CR0 clearing WP (Cr0Mask WP)");
	fill_gprs(1);
	fc_in[RAX] = cr0 & ~X86_CR0_WP;
	expect_register(&want, &I_CR0, HV_REG_CR0, fc_in[RAX]);
	configure(HV_CR_INTERCEPT_CR0_WRITE, X86_CR0_WP, 0);
	struct outcome o = run_plain(&I_CR0);
	u64 now = read_cr0();
	configure(0, 0, 0);
	restore_cr0(cr0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_CR0, &want, 1, false);
	report(now == cr0 && gprs_kept(false), "%s: VTL1 skipped it: VTL0's CR0 0x%lx still has WP, GPRs unchanged", who, now);
}

/* CR0 writes that change only TS, outside the mask: not intercepted, they take effect. */
static void cr0_outside_mask(void)
{
	u64 cr0 = read_cr0() & ~X86_CR0_TS;
	char who[80];

	WHO(who, "MOV CR0 setting, then clearing TS (outside Cr0Mask WP)");
	configure(HV_CR_INTERCEPT_CR0_WRITE, X86_CR0_WP, 0);
	fill_gprs(2);
	fc_in[RAX] = cr0 | X86_CR0_TS;
	struct outcome o1 = run_plain(&I_CR0);
	bool n1 = not_intercepted(&o1);
	u64 v1 = read_cr0();
	fc_in[RAX] = cr0;
	struct outcome o2 = run_plain(&I_CR0);
	bool n2 = not_intercepted(&o2);
	u64 v2 = read_cr0();
	configure(0, 0, 0);
	restore_cr0(cr0);
	report(n1 && n2 && v1 == (cr0 | X86_CR0_TS) && v2 == cr0, "%s: no intercepts, CR0 0x%lx then 0x%lx", who, v1, v2);
}

/*
 * LMSW setting TS with Cr0Mask TS: intercepted like a MOV to CR0, denied.
 * The message's value is the CR0 the LMSW would make (its source only
 * supplies bits 3:0).
 */
static void lmsw_denied(void)
{
	u64 cr0 = read_cr0() & ~X86_CR0_TS;
	struct hv_message want;
	char who[80];

	write_cr0(cr0);
	WHO(who, "LMSW setting TS (Cr0Mask TS)");
	fill_gprs(3);
	fc_in[RAX] = (fc_in[RAX] & ~0xffffUL) | (cr0 & 0xf) | X86_CR0_TS;
	expect_register(&want, &I_LMSW, HV_REG_CR0, cr0 | X86_CR0_TS);
	configure(HV_CR_INTERCEPT_CR0_WRITE, X86_CR0_TS, 0);
	struct outcome o = run_plain(&I_LMSW);
	u64 now = read_cr0();
	configure(0, 0, 0);
	restore_cr0(cr0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_LMSW, &want, 1, false);
	report(now == cr0 && gprs_kept(false), "%s: VTL1 skipped it: VTL0's CR0 0x%lx, TS still clear, GPRs unchanged", who, now);
}

/*
 * LMSW from memory setting TS: the same, with IsMemoryOp set. Bits 15:4 of
 * the word (and the bytes after it) are no part of the new CR0.
 */
static u64 lmsw_word[MAX_CPUS];

static void lmsw_memory_denied(void)
{
	u64 cr0 = read_cr0() & ~X86_CR0_TS;
	struct hv_message want;
	char who[80];

	write_cr0(cr0);
	WHO(who, "LMSW (%%rsi) setting TS (Cr0Mask TS)");
	lmsw_word[smp_id()] = 0xa5a5a5a5a5a55a50UL | (cr0 & 0xf) | X86_CR0_TS;
	fill_gprs(18);
	fc_in[RSI] = (u64)&lmsw_word[smp_id()];
	expect_register_ex(&want, &I_LMSW_MEM, HV_REGISTER_INTERCEPT_IS_MEMORY_OP, HV_REG_CR0, cr0 | X86_CR0_TS, 0);
	configure(HV_CR_INTERCEPT_CR0_WRITE, X86_CR0_TS, 0);
	struct outcome o = run_plain(&I_LMSW_MEM);
	u64 now = read_cr0();
	configure(0, 0, 0);
	restore_cr0(cr0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_LMSW_MEM, &want, 1, false);
	report(now == cr0 && gprs_kept(false), "%s: VTL1 skipped it: VTL0's CR0 0x%lx, TS still clear, GPRs unchanged", who, now);
}

/* MOV to CR4 toggling TSD with Cr4Mask TSD: VTL1 emulates it (SetVpRegisters of VTL0's Cr4) and skips it; OSXSAVE is outside the mask. */
static void cr4_emulated(void)
{
	u64 cr4 = read_cr4() & ~X86_CR4_TSD;
	struct hv_message want;
	char who[80];

	configure(HV_CR_INTERCEPT_CR4_WRITE, 0, X86_CR4_TSD);
	for (unsigned set = 1; set <= 2; set++) {
		u64 value = set == 1 ? cr4 | X86_CR4_TSD : cr4;

		WHO(who, "MOV CR4 %s TSD (Cr4Mask TSD)", set == 1 ? "setting" : "clearing");
		fill_gprs(3 + set);
		fc_in[RAX] = value;
		expect_register(&want, &I_CR4, HV_REG_CR4, value);
		struct outcome o = run(&I_CR4, ACT_SET_REG, 1, HV_REG_CR4, value);
		u64 now = read_cr4();
		set_rflags(&want);
		check_intercepts(who, &o, &I_CR4, &want, 1, false);
		report(now == value && gprs_kept(false), "%s: VTL1 emulated it (SetVpRegisters of VTL0's Cr4) and skipped it: VTL0's CR4 0x%lx",
		       who, now);
	}
	WHO(who, "MOV CR4 setting OSXSAVE (outside Cr4Mask TSD)");
	fill_gprs(6);
	fc_in[RAX] = cr4 | X86_CR4_OSXSAVE;
	struct outcome o = run_plain(&I_CR4);
	bool none = not_intercepted(&o);
	u64 now = read_cr4();
	configure(0, 0, 0);
	restore_cr4(cr4 | X86_CR4_OSXSAVE); /* XSETBV needs it; xsetbv_intercepts() clears it */
	report(none && now == (cr4 | X86_CR4_OSXSAVE), "%s: no intercept, CR4 0x%lx", who, now);
}

/* XSETBV: emulated (SetVpRegisters of Xfem), denied, and with a value that would #GP; then not intercepted with the control cleared. */
static void xsetbv_intercepts(void)
{
	u64 cr4 = read_cr4();
	struct hv_message want;
	char who[80];

	if (!(cr4 & X86_CR4_OSXSAVE)) {
		report(false, "VP%u: CR4.OSXSAVE is not set (CR4 0x%lx): XSETBV cannot be tested", hv_vp_index(), cr4);
		return;
	}
	u64 xcr0 = xgetbv0();
	configure(HV_CR_INTERCEPT_XCR0_WRITE, 0, 0);

	WHO(who, "XSETBV 0x3 (from 0x%lx)", xcr0);
	fill_gprs(7);
	fc_in[RCX] = 0;
	fc_in[RAX] = 3;
	fc_in[RDX] = 0;
	expect_register(&want, &I_XSETBV, HV_REG_XFEM, 3);
	struct outcome o = run(&I_XSETBV, ACT_SET_REG, 1, HV_REG_XFEM, 3);
	u64 now = xgetbv0();
	set_rflags(&want);
	check_intercepts(who, &o, &I_XSETBV, &want, 1, false);
	report(now == 3 && gprs_kept(false), "%s: VTL1 emulated it (SetVpRegisters of Xfem) and skipped it: XCR0 0x%lx", who, now);

	WHO(who, "XSETBV 0x%lx", xcr0);
	fill_gprs(8);
	fc_in[RCX] = 0;
	fc_in[RAX] = xcr0;
	fc_in[RDX] = 0;
	expect_register(&want, &I_XSETBV, HV_REG_XFEM, xcr0);
	o = run_plain(&I_XSETBV);
	now = xgetbv0();
	set_rflags(&want);
	check_intercepts(who, &o, &I_XSETBV, &want, 1, false);
	report(now == 3 && gprs_kept(false), "%s: VTL1 skipped it: XCR0 still 0x%lx", who, now);

	/* x87 clear: XSETBV would #GP; the intercept comes first. EDX:EAX is the value, the upper halves are ignored. */
	WHO(who, "XSETBV 0x2 (x87 clear: #GP without the intercept)");
	fill_gprs(9);
	fc_in[RCX] = 0;
	fc_in[RAX] = HIGH_RAX | 2;
	fc_in[RDX] = HIGH_RDX;
	expect_register(&want, &I_XSETBV, HV_REG_XFEM, 2);
	o = run_plain(&I_XSETBV);
	now = xgetbv0();
	set_rflags(&want);
	check_intercepts(who, &o, &I_XSETBV, &want, 1, false);
	report(!o.faulted && now == 3 && gprs_kept(false), "%s: VTL1 skipped it: no #GP (%u), XCR0 still 0x%lx", who,
	       o.faulted ? o.ex.vector : 0, now);

	configure(0, 0, 0);
	WHO(who, "XSETBV 0x%lx with CrInterceptControl 0", xcr0);
	fill_gprs(10);
	fc_in[RCX] = 0;
	fc_in[RAX] = xcr0;
	fc_in[RDX] = 0;
	o = run_plain(&I_XSETBV);
	bool none = not_intercepted(&o);
	now = xgetbv0();
	report(none && now == xcr0, "%s: not intercepted, XCR0 0x%lx", who, now);
	restore_cr4(cr4 & ~X86_CR4_OSXSAVE);
}

static void set_msr_gprs(unsigned tag, u32 msr, u64 value)
{
	fill_gprs(tag);
	fc_in[RCX] = msr;
	fc_in[RAX] = HIGH_RAX | (u32)value;
	fc_in[RDX] = HIGH_RDX | (value >> 32);
}

static void lstar_intercepts(void)
{
	u64 lstar = rdmsr(MSR_LSTAR), value = lstar ^ (0xa0b000UL + 0x10 * smp_id()), emulated = 0xfffff00dcafe0000UL | smp_id();
	struct hv_message want;
	char who[80];

	configure(HV_CR_INTERCEPT_MSR_LSTAR_WRITE, 0, 0);
	WHO(who, "WRMSR LSTAR (write bit)");
	set_msr_gprs(11, MSR_LSTAR, value);
	expect_msr(&want, &I_WRMSR);
	struct outcome o = run_plain(&I_WRMSR);
	u64 now = rdmsr(MSR_LSTAR);
	set_rflags(&want);
	check_intercepts(who, &o, &I_WRMSR, &want, 1, false);
	report(now == lstar && gprs_kept(false), "%s: VTL1 skipped it: LSTAR 0x%lx unchanged, GPRs unchanged", who, now);

	WHO(who, "RDMSR LSTAR (write bit only)");
	fill_gprs(12);
	fc_in[RCX] = MSR_LSTAR;
	o = run_plain(&I_RDMSR);
	report(not_intercepted(&o) && fc_out[RAX] == (u32)lstar && fc_out[RDX] == lstar >> 32 && gprs_kept(true),
	       "%s: not intercepted, RDX:RAX 0x%lx:0x%lx is LSTAR", who, fc_out[RDX], fc_out[RAX]);

	configure(HV_CR_INTERCEPT_MSR_LSTAR_READ | HV_CR_INTERCEPT_MSR_LSTAR_WRITE, 0, 0);
	WHO(who, "RDMSR LSTAR (read bit)");
	fill_gprs(13);
	fc_in[RCX] = MSR_LSTAR;
	expect_msr(&want, &I_RDMSR);
	o = run(&I_RDMSR, ACT_RDMSR, 1, 0, emulated);
	set_rflags(&want);
	check_intercepts(who, &o, &I_RDMSR, &want, 1, false);
	report(fc_out[RAX] == (u32)emulated && fc_out[RDX] == emulated >> 32 && gprs_kept(true),
	       "%s: VTL1 emulated it: VTL0 got RDX:RAX 0x%lx:0x%lx (VTL1's 0x%lx, not LSTAR 0x%lx)", who, fc_out[RDX], fc_out[RAX], emulated,
	       lstar);

	configure(HV_CR_INTERCEPT_MSR_LSTAR_WRITE, 0, 0);
	WHO(who, "WRMSR LSTAR 0x800012345678 (non-canonical: #GP without the intercept)");
	set_msr_gprs(14, MSR_LSTAR, 0x800012345678UL);
	expect_msr(&want, &I_WRMSR);
	o = run_plain(&I_WRMSR);
	now = rdmsr(MSR_LSTAR);
	set_rflags(&want);
	check_intercepts(who, &o, &I_WRMSR, &want, 1, false);
	report(!o.faulted && now == lstar && gprs_kept(false), "%s: VTL1 skipped it: no #GP (%u), LSTAR 0x%lx unchanged", who,
	       o.faulted ? o.ex.vector : 0, now);
	configure(0, 0, 0);
	if (rdmsr(MSR_LSTAR) != lstar)
		wrmsr(MSR_LSTAR, lstar);
}

static u64 user_wrmsr_lstar(void *arg)
{
	wrmsr(MSR_LSTAR, (u64)arg);
	return 0;
}

static u64 user_write_cr0(void *arg)
{
	write_cr0((u64)arg);
	return 0;
}

/* The CPL check comes before the intercept: at CPL3 WRMSR and MOV to CR0 raise #GP(0), VTL1 hears nothing. */
static void cpl3_accesses(void)
{
	struct vsm_vp *vp = vsm_this_vp();
	u64 cr0 = read_cr0(), lstar = rdmsr(MSR_LSTAR), ret;
	struct ex_info ex;

	configure(HV_CR_INTERCEPT_CR0_WRITE | HV_CR_INTERCEPT_MSR_LSTAR_WRITE, X86_CR0_WP, 0);
	u64 e = vp->entries[HV_VTL_ENTRY_INTERCEPT];
	bool f1 = run_user(user_wrmsr_lstar, (void *)(lstar ^ 0x1000), &ret, &ex);
	bool gp1 = f1 && ex.vector == GP_VECTOR && ex.error_code == 0;
	u64 e1 = vp->entries[HV_VTL_ENTRY_INTERCEPT] - e;
	bool f2 = run_user(user_write_cr0, (void *)(cr0 & ~X86_CR0_WP), &ret, &ex);
	bool gp2 = f2 && ex.vector == GP_VECTOR && ex.error_code == 0;
	u64 e2 = vp->entries[HV_VTL_ENTRY_INTERCEPT] - e - e1;
	configure(0, 0, 0);
	report(gp1 && e1 == 0 && rdmsr(MSR_LSTAR) == lstar, "VP%u WRMSR LSTAR at CPL3 (write bit): #GP(0), no intercept (%lu)", hv_vp_index(), e1);
	report(gp2 && e2 == 0 && read_cr0() == cr0, "VP%u MOV CR0 clearing WP at CPL3 (Cr0Mask WP): #GP(0), no intercept (%lu)", hv_vp_index(), e2);
}

/* WRMSR EFER toggling SCE: VTL1 returns twice without doing anything (intercepted again), then emulates it. */
static void efer_intercepts(void)
{
	u64 efer = rdmsr(MSR_EFER), value = efer ^ EFER_SCE;
	struct hv_message want;
	char who[80];

	configure(HV_CR_INTERCEPT_MSR_EFER_WRITE, 0, 0);
	WHO(who, "WRMSR EFER 0x%lx (write bit)", value);
	set_msr_gprs(15, MSR_EFER, value);
	expect_msr(&want, &I_WRMSR);
	struct outcome o = run(&I_WRMSR, ACT_SET_REG, 2, HV_REG_EFER, value);
	u64 now = rdmsr(MSR_EFER);
	set_rflags(&want);
	check_intercepts(who, &o, &I_WRMSR, &want, 2, false);
	report(now == value && gprs_kept(false),
	       "%s: run again after VTL1 returned without handling it, then emulated (SetVpRegisters of VTL0's Efer) and skipped: EFER 0x%lx", who,
	       now);

	WHO(who, "RDMSR EFER (write bit only)");
	fill_gprs(16);
	fc_in[RCX] = MSR_EFER;
	o = run_plain(&I_RDMSR);
	report(not_intercepted(&o) && fc_out[RAX] == (u32)now && fc_out[RDX] == 0 && gprs_kept(true), "%s: not intercepted, RAX 0x%lx", who,
	       fc_out[RAX]);

	configure(0, 0, 0);
	WHO(who, "WRMSR EFER 0x%lx with CrInterceptControl 0", efer);
	fill_gprs(17);
	fc_in[RCX] = MSR_EFER;
	fc_in[RAX] = (u32)efer;
	fc_in[RDX] = 0;
	o = run_plain(&I_WRMSR);
	bool none = not_intercepted(&o);
	now = rdmsr(MSR_EFER);
	if (now != efer)
		wrmsr(MSR_EFER, efer);
	report(none && now == efer, "%s: not intercepted, EFER 0x%lx", who, now);
}

/* Every MSR bit of the control on its own: intercepted once, the message byte for byte, skipped. */
static const struct msr_case {
	unsigned bit;
	u32 msr;
	bool write;
	const char *name;
} msr_cases[] = {
	{ 3, MSR_IA32_MISC_ENABLE, false, "IA32_MISC_ENABLE" }, { 4, MSR_IA32_MISC_ENABLE, true, "IA32_MISC_ENABLE" },
	{ 5, MSR_LSTAR, false, "LSTAR" },   { 6, MSR_LSTAR, true, "LSTAR" },
	{ 7, MSR_STAR, false, "STAR" },     { 8, MSR_STAR, true, "STAR" },
	{ 9, MSR_CSTAR, false, "CSTAR" },   { 10, MSR_CSTAR, true, "CSTAR" },
	{ 11, MSR_IA32_APICBASE, false, "APIC_BASE" }, { 12, MSR_IA32_APICBASE, true, "APIC_BASE" },
	{ 13, MSR_EFER, false, "EFER" },    { 14, MSR_EFER, true, "EFER" },
	{ 19, MSR_SYSENTER_CS, true, "SYSENTER_CS" }, { 20, MSR_SYSENTER_EIP, true, "SYSENTER_EIP" },
	{ 21, MSR_SYSENTER_ESP, true, "SYSENTER_ESP" }, { 22, MSR_SFMASK, true, "SFMASK" },
	{ 23, MSR_TSC_AUX, true, "TSC_AUX" },
};

/* A value WRMSR accepts that differs from the current one (APIC_BASE: the same, so a missed intercept changes nothing). */
static u64 new_msr_value(u32 msr, u64 cur)
{
	switch (msr) {
	case MSR_IA32_APICBASE: return cur;
	case MSR_EFER: return cur ^ EFER_SCE;
	case MSR_STAR: return cur ^ 0x0013000800000000UL;
	case MSR_SYSENTER_CS: return cur ^ 0x10;
	case MSR_SFMASK: return cur ^ 0x200;
	case MSR_TSC_AUX: return cur ^ 0x55;
	case MSR_IA32_MISC_ENABLE: return cur ^ MISC_ENABLE_BIT; /* a bit Ia32MiscEnableMask covers (msr_table) */
	default: return cur ^ 0xa0b000; /* addresses: stays canonical */
	}
}

/* VTL1's Ia32MiscEnableMask (a write of IA32_MISC_ENABLE is intercepted only when it changes a masked bit). */
static void set_misc_enable_mask(u64 mask)
{
	static const u32 name = HV_REG_CR_INTERCEPT_IA32_MISC_ENABLE_MASK;
	u64 r = vtl1_set_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 1, &name, &mask);

	if (!result_is(r, HV_STATUS_SUCCESS, 1))
		report(false, "VP%u VTL1: SetVpRegisters(Ia32MiscEnableMask 0x%lx) => 0x%lx", hv_vp_index(), mask, r);
}

static void msr_table(void)
{
	struct hv_message want;
	char who[80], what[128];

	set_misc_enable_mask(MISC_ENABLE_BIT);
	for (unsigned i = 0; i < ARRAY_SIZE(msr_cases); i++) {
		const struct msr_case *t = &msr_cases[i];
		const struct insn *in = t->write ? &I_WRMSR : &I_RDMSR;
		u64 cur = rdmsr(t->msr);

		WHO(who, "bit %u: %s %s", t->bit, t->write ? "WRMSR" : "RDMSR", t->name);
		if (t->write)
			set_msr_gprs(20 + i, t->msr, new_msr_value(t->msr, cur));
		else {
			fill_gprs(20 + i);
			fc_in[RCX] = t->msr;
		}
		expect_msr(&want, in);
		configure(BIT(t->bit), 0, 0);
		struct outcome o = run_plain(in);
		configure(0, 0, 0);
		u64 now = rdmsr(t->msr);
		if (now != cur)
			wrmsr(t->msr, cur);
		set_rflags(&want);
		describe(what, sizeof(what), &want);
		bool ok = intercepted(&o, in, 1, false) && vsm_same_bytes(who, &captured[smp_id()].msg[0], &want, message_bytes(&want));
		report(ok && now == cur && gprs_kept(false),
		       "%s: intercepted once, the %s expected byte for byte, skipped by VTL1 (%s 0x%lx unchanged, GPRs unchanged; entries %lu)", who,
		       what, t->name, now, o.entries);
	}

	/* Bit 4 with the mask: a write that changes no masked bit (fast strings, bit 0) takes effect without an intercept. */
	u64 cur = rdmsr(MSR_IA32_MISC_ENABLE);
	configure(HV_CR_INTERCEPT_IA32_MISC_ENABLE_WRITE, 0, 0);
	set_msr_gprs(19, MSR_IA32_MISC_ENABLE, cur ^ BIT(0));
	struct outcome o = run_plain(&I_WRMSR);
	configure(0, 0, 0);
	u64 now = rdmsr(MSR_IA32_MISC_ENABLE);
	wrmsr(MSR_IA32_MISC_ENABLE, cur);
	set_misc_enable_mask(0);
	report(not_intercepted(&o) && now == (cur ^ BIT(0)),
	       "VP%u bit 4 (Ia32MiscEnableMask 0x%lx): WRMSR IA32_MISC_ENABLE changing only bit 0 takes effect (0x%lx), no intercept",
	       hv_vp_index(), MISC_ENABLE_BIT, now);
}

/* CrInterceptControl 0 with the masks still set: nothing is intercepted. */
static void control_cleared(void)
{
	u64 cr0 = read_cr0(), cr4 = read_cr4(), lstar = rdmsr(MSR_LSTAR), value = lstar ^ 0x5000;
	bool none = true;

	configure(0, X86_CR0_WP, X86_CR4_TSD);
	fill_gprs(40);
	fc_in[RAX] = cr0 & ~X86_CR0_WP;
	struct outcome o = run_plain(&I_CR0);
	none &= not_intercepted(&o);
	u64 v0 = read_cr0();
	fc_in[RAX] = cr0;
	o = run_plain(&I_CR0);
	none &= not_intercepted(&o);
	fc_in[RAX] = cr4 | X86_CR4_TSD;
	o = run_plain(&I_CR4);
	none &= not_intercepted(&o);
	u64 v4 = read_cr4();
	fc_in[RAX] = cr4;
	o = run_plain(&I_CR4);
	none &= not_intercepted(&o);
	set_msr_gprs(41, MSR_LSTAR, value);
	o = run_plain(&I_WRMSR);
	none &= not_intercepted(&o);
	u64 vl = rdmsr(MSR_LSTAR);
	configure(0, 0, 0);
	wrmsr(MSR_LSTAR, lstar);
	restore_cr0(cr0);
	restore_cr4(cr4);
	report(none && v0 == (cr0 & ~X86_CR0_WP) && v4 == (cr4 | X86_CR4_TSD) && vl == value,
	       "VP%u CrInterceptControl 0 (masks WP, TSD): MOV CR0 clearing WP (0x%lx), MOV CR4 setting TSD (0x%lx), WRMSR LSTAR (0x%lx) "
	       "take effect, no intercepts", hv_vp_index(), v0, v4, vl);
}

// ---------------------------------------------------------------- 2b. descriptor-table loads (bits 15-18)

/*
 * What the tests load instead of the current tables: copies of this VP's
 * GDT (with a limit that ends after the last CPU's TSS descriptor) and IDT,
 * so VTL0 keeps working if a load takes effect. The LGDT / LIDT operand and
 * the LTR operand (a selector in its low 16 bits, other bytes set).
 */
static u64 gdt_copy[MAX_CPUS][GDT_ENTRIES] __aligned(16);
static u8 idt_copy[MAX_CPUS][256 * 16] __aligned(16);
static struct descriptor_table_ptr table_op[MAX_CPUS];
static u64 selector_op[MAX_CPUS];
/* Loading it would #GP(0x38): the library GDT's spare entry is a null descriptor, not an LDT. */
#define BAD_LDT_SEL 0x38
/* Not mapped in VTL0 (the boot page tables cover 0-4 GiB). */
#define UNMAPPED_VA 0x7f0000000UL

struct tables {
	struct descriptor_table_ptr gdtr, idtr;         /* as they are */
	struct descriptor_table_ptr gdt_copy, idt_copy; /* what to load instead */
};

static bool copy_tables(struct tables *t)
{
	unsigned cpu = smp_id();

	sgdt(&t->gdtr);
	sidt(&t->idtr);
	u16 gdt_limit = TSS_SEL(cpu_count()) - 1;
	if (t->gdtr.limit < gdt_limit || t->gdtr.limit + 1u > sizeof(gdt_copy[0]) || t->idtr.limit + 1u > sizeof(idt_copy[0])) {
		report(false, "VP%u: GDTR limit 0x%x / IDTR limit 0x%x: the copies do not fit", hv_vp_index(), t->gdtr.limit, t->idtr.limit);
		return false;
	}
	memcpy(gdt_copy[cpu], (const void *)t->gdtr.base, t->gdtr.limit + 1);
	memcpy(idt_copy[cpu], (const void *)t->idtr.base, t->idtr.limit + 1);
	t->gdt_copy = (struct descriptor_table_ptr){ .limit = gdt_limit, .base = (u64)gdt_copy[cpu] };
	t->idt_copy = (struct descriptor_table_ptr){ .limit = t->idtr.limit, .base = (u64)idt_copy[cpu] };
	return true;
}

/* The GPRs for an LGDT (RSI) / LIDT (RDI - LIDT_DISP) of *op, an LLDT of `sel` (AX), an LTR of `sel` (from memory at R8). */
static void set_table_gprs(unsigned tag, const struct insn *in, const struct descriptor_table_ptr *op, u16 sel)
{
	unsigned cpu = smp_id();

	fill_gprs(tag);
	if (op)
		table_op[cpu] = *op;
	if (in == &I_LGDT)
		fc_in[RSI] = (u64)&table_op[cpu];
	else if (in == &I_LIDT)
		fc_in[RDI] = (u64)&table_op[cpu] - LIDT_DISP;
	else if (in == &I_LLDT)
		fc_in[RAX] = (fc_in[RAX] & ~0xffffUL) | sel;
	else {
		selector_op[cpu] = 0x5a5a5a5a5a5a0000UL | sel;
		fc_in[R8] = (u64)&selector_op[cpu];
	}
}

static u64 table_value(const struct descriptor_table_ptr *t, unsigned half)
{
	struct hv_table v = { .limit = t->limit, .base = t->base };
	u64 q[2];

	memcpy(q, &v, sizeof(q));
	return q[half];
}

/* LGDT of the copy with the GDTR bit: intercepted, denied (VTL1 skips it): SGDT still shows the GDT. */
static void lgdt_denied(const struct tables *t)
{
	struct descriptor_table_ptr now;
	struct hv_message want;
	char who[80];

	WHO(who, "LGDT (%%rsi) (GDTR write bit)");
	set_table_gprs(70, &I_LGDT, &t->gdt_copy, 0);
	expect_table(&want, &I_LGDT, HV_REG_GDTR, &t->gdt_copy);
	configure(HV_CR_INTERCEPT_GDTR_WRITE, 0, 0);
	struct outcome o = run_plain(&I_LGDT);
	sgdt(&now);
	configure(0, 0, 0);
	if (!same_table(&now, &t->gdtr))
		lgdt(&t->gdtr);
	set_rflags(&want);
	check_intercepts(who, &o, &I_LGDT, &want, 1, false);
	report(same_table(&now, &t->gdtr) && gprs_kept(false), "%s: VTL1 skipped it: SGDT base 0x%lx limit 0x%x unchanged, GPRs unchanged",
	       who, now.base, now.limit);
}

/*
 * LIDT of the copy with the IDTR bit: VTL1 emulates it (SetVpRegisters of
 * VTL0's Idtr, a 16-byte HV_X64_TABLE_REGISTER) and skips it: SIDT shows
 * the copy; then the IDT is loaded again.
 */
static void lidt_emulated(const struct tables *t)
{
	struct descriptor_table_ptr now, back;
	struct hv_message want;
	char who[80];

	WHO(who, "LIDT 0x10(%%rdi) (IDTR write bit)");
	set_table_gprs(71, &I_LIDT, &t->idt_copy, 0);
	expect_table(&want, &I_LIDT, HV_REG_IDTR, &t->idt_copy);
	configure(HV_CR_INTERCEPT_IDTR_WRITE, 0, 0);
	plans[smp_id()].value_hi = table_value(&t->idt_copy, 1);
	struct outcome o = run(&I_LIDT, ACT_SET_REG128, 1, HV_REG_IDTR, table_value(&t->idt_copy, 0));
	sidt(&now);
	configure(0, 0, 0);
	lidt(&t->idtr);
	sidt(&back);
	set_rflags(&want);
	check_intercepts(who, &o, &I_LIDT, &want, 1, false);
	report(same_table(&now, &t->idt_copy) && same_table(&back, &t->idtr) && gprs_kept(false),
	       "%s: VTL1 emulated it (SetVpRegisters of VTL0's Idtr, an HV_X64_TABLE_REGISTER) and skipped it: SIDT base 0x%lx limit 0x%x "
	       "(the copy), GPRs unchanged", who, now.base, now.limit);
}

/*
 * LLDT %ax of a selector that would #GP, with the LDTR bit: the intercept
 * comes before the load. VTL1 returns without handling it once (run again,
 * intercepted again), then skips it.
 */
static void lldt_skipped(void)
{
	u16 ldtr = read_ldtr();
	struct hv_message want;
	char who[80];

	WHO(who, "LLDT %%ax of selector 0x%x (LDTR write bit)", BAD_LDT_SEL);
	set_table_gprs(72, &I_LLDT, NULL, BAD_LDT_SEL);
	expect_selector(&want, &I_LLDT, HV_REG_LDTR, BAD_LDT_SEL, false);
	configure(HV_CR_INTERCEPT_LDTR_WRITE, 0, 0);
	struct outcome o = run(&I_LLDT, ACT_SKIP, 2, 0, 0);
	u16 now = read_ldtr();
	configure(0, 0, 0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_LLDT, &want, 2, false);
	report(!o.faulted && now == ldtr && gprs_kept(false),
	       "%s: run again after VTL1 returned without handling it, then skipped: no #GP (%u), SLDT 0x%x unchanged, GPRs unchanged", who,
	       o.faulted ? o.ex.vector : 0, now);
}

/* LTR (%r8) of this VP's own, busy TSS (it would #GP) with the TR bit: intercepted first, skipped. */
static void ltr_skipped(void)
{
	u16 tr = read_tr();
	struct hv_message want;
	char who[80];

	WHO(who, "LTR (%%r8) of its busy TSS 0x%x (TR write bit)", tr);
	set_table_gprs(73, &I_LTR, NULL, tr);
	expect_selector(&want, &I_LTR, HV_REG_TR, tr, true);
	configure(HV_CR_INTERCEPT_TR_WRITE, 0, 0);
	struct outcome o = run_plain(&I_LTR);
	u16 now = read_tr();
	configure(0, 0, 0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_LTR, &want, 1, false);
	report(!o.faulted && now == tr && gprs_kept(false), "%s: VTL1 skipped it: no #GP (%u), STR 0x%x unchanged, GPRs unchanged", who,
	       o.faulted ? o.ex.vector : 0, now);
}

/* The operand is read before the intercept: LGDT from an unmapped page raises #PF, VTL1 hears nothing. */
static void lgdt_operand_fault(const struct tables *t)
{
	struct descriptor_table_ptr now;
	int level;
	bool unmapped = get_pte((u64 *)read_cr3(), UNMAPPED_VA, &level) == NULL;

	fill_gprs(74);
	fc_in[RSI] = UNMAPPED_VA;
	configure(HV_CR_INTERCEPT_GDTR_WRITE, 0, 0);
	struct outcome o = run_plain(&I_LGDT);
	sgdt(&now);
	configure(0, 0, 0);
	if (!same_table(&now, &t->gdtr))
		lgdt(&t->gdtr);
	report(unmapped && o.faulted && o.ex.vector == PF_VECTOR && o.ex.error_code == 0 && o.ex.cr2 == UNMAPPED_VA &&
	       o.ex.rip == (u64)I_LGDT.at && o.entries == 0 && o.messages == 0 && captured[smp_id()].count == 0 && same_table(&now, &t->gdtr),
	       "VP%u LGDT (%%rsi) from unmapped 0x%lx (GDTR write bit): #PF (vector %u, error 0x%lx, CR2 0x%lx) at the instruction, no "
	       "intercept (%lu); GDTR unchanged", hv_vp_index(), UNMAPPED_VA, o.faulted ? o.ex.vector : 0, o.ex.error_code, o.ex.cr2, o.entries);
}

static u64 user_lgdt(void *arg)
{
	lgdt(arg);
	return 0;
}

/* The CPL check comes first: LGDT at CPL3 raises #GP(0), VTL1 hears nothing. */
static void cpl3_lgdt(const struct tables *t)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct descriptor_table_ptr now;
	struct ex_info ex;
	u64 ret;

	table_op[smp_id()] = t->gdt_copy;
	configure(HV_CR_INTERCEPT_GDTR_WRITE, 0, 0);
	u64 e = vp->entries[HV_VTL_ENTRY_INTERCEPT], m = vp->messages;
	bool f = run_user(user_lgdt, &table_op[smp_id()], &ret, &ex);
	u64 de = vp->entries[HV_VTL_ENTRY_INTERCEPT] - e, dm = vp->messages - m;
	sgdt(&now);
	configure(0, 0, 0);
	if (!same_table(&now, &t->gdtr))
		lgdt(&t->gdtr);
	report(f && ex.vector == GP_VECTOR && ex.error_code == 0 && de == 0 && dm == 0 && same_table(&now, &t->gdtr),
	       "VP%u LGDT at CPL3 (GDTR write bit): #GP(0), no intercept (%lu); GDTR unchanged", hv_vp_index(), de);
}

/*
 * Each bit intercepts its own instruction only: with the other three bits
 * set, LGDT / LIDT of the copies and LLDT of the null selector take effect,
 * LTR of the busy TSS raises #GP(selector) as it would without VSM. Then
 * with CrInterceptControl 0, LGDT, LIDT and LLDT take effect. The tables
 * are loaded again after each.
 */
static void tables_not_intercepted(const struct tables *t)
{
	struct descriptor_table_ptr g, i;
	u16 tr = read_tr();
	struct outcome o;

	configure(TABLE_BITS & ~HV_CR_INTERCEPT_GDTR_WRITE, 0, 0);
	set_table_gprs(75, &I_LGDT, &t->gdt_copy, 0);
	o = run_plain(&I_LGDT);
	sgdt(&g);
	lgdt(&t->gdtr);
	report(not_intercepted(&o) && same_table(&g, &t->gdt_copy) && gprs_kept(false),
	       "VP%u LGDT with the IDTR, LDTR and TR bits (not GDTR): not intercepted, took effect: SGDT base 0x%lx limit 0x%x (the copy)",
	       hv_vp_index(), g.base, g.limit);

	configure(TABLE_BITS & ~HV_CR_INTERCEPT_IDTR_WRITE, 0, 0);
	set_table_gprs(76, &I_LIDT, &t->idt_copy, 0);
	o = run_plain(&I_LIDT);
	sidt(&i);
	lidt(&t->idtr);
	report(not_intercepted(&o) && same_table(&i, &t->idt_copy) && gprs_kept(false),
	       "VP%u LIDT with the GDTR, LDTR and TR bits (not IDTR): not intercepted, took effect: SIDT base 0x%lx limit 0x%x (the copy)",
	       hv_vp_index(), i.base, i.limit);

	configure(TABLE_BITS & ~HV_CR_INTERCEPT_LDTR_WRITE, 0, 0);
	set_table_gprs(77, &I_LLDT, NULL, 0);
	o = run_plain(&I_LLDT);
	u16 l = read_ldtr();
	report(not_intercepted(&o) && l == 0 && gprs_kept(false),
	       "VP%u LLDT %%ax of the null selector with the GDTR, IDTR and TR bits (not LDTR): not intercepted, SLDT 0x%x", hv_vp_index(), l);

	configure(TABLE_BITS & ~HV_CR_INTERCEPT_TR_WRITE, 0, 0);
	set_table_gprs(78, &I_LTR, NULL, tr);
	o = run_plain(&I_LTR);
	u16 now = read_tr();
	report(o.faulted && o.ex.vector == GP_VECTOR && o.ex.error_code == tr && o.ex.rip == (u64)I_LTR.at && o.entries == 0 &&
	       o.messages == 0 && captured[smp_id()].count == 0 && now == tr,
	       "VP%u LTR (%%r8) of its busy TSS with the GDTR, IDTR and LDTR bits (not TR): not intercepted, #GP(0x%lx) (vector %u) as without "
	       "VSM, STR 0x%x", hv_vp_index(), o.ex.error_code, o.faulted ? o.ex.vector : 0, now);

	configure(0, 0, 0);
	set_table_gprs(79, &I_LGDT, &t->gdt_copy, 0);
	struct outcome o1 = run_plain(&I_LGDT);
	sgdt(&g);
	lgdt(&t->gdtr);
	set_table_gprs(79, &I_LIDT, &t->idt_copy, 0);
	struct outcome o2 = run_plain(&I_LIDT);
	sidt(&i);
	lidt(&t->idtr);
	set_table_gprs(79, &I_LLDT, NULL, 0);
	struct outcome o3 = run_plain(&I_LLDT);
	l = read_ldtr();
	report(not_intercepted(&o1) && not_intercepted(&o2) && not_intercepted(&o3) && same_table(&g, &t->gdt_copy) &&
	       same_table(&i, &t->idt_copy) && l == 0,
	       "VP%u CrInterceptControl 0: LGDT, LIDT (of the copies) and LLDT (null selector) take effect, no intercepts", hv_vp_index());
}

static void descriptor_tables(void)
{
	struct tables t;

	if (!copy_tables(&t))
		return;
	lgdt_denied(&t);
	lidt_emulated(&t);
	lldt_skipped();
	ltr_skipped();
	lgdt_operand_fault(&t);
	cpl3_lgdt(&t);
	tables_not_intercepted(&t);
}

/* VTL1's own CR0, CR4, LSTAR, EFER and descriptor-table accesses are not intercepted, whatever its control says of VTL0's. */
static void vtl1_own_accesses(void)
{
	struct vsm_vp *vp = vsm_this_vp();
	u64 lstar = rdmsr(MSR_LSTAR), mine = 0xffff80000d00d000UL | (smp_id() << 4);
	u64 e = vp->entries[HV_VTL_ENTRY_INTERCEPT], m = vp->messages;

	configure(HV_CR_INTERCEPT_CR0_WRITE | HV_CR_INTERCEPT_CR4_WRITE | HV_CR_INTERCEPT_MSR_LSTAR_READ | HV_CR_INTERCEPT_MSR_LSTAR_WRITE |
			  HV_CR_INTERCEPT_MSR_EFER_READ | HV_CR_INTERCEPT_MSR_EFER_WRITE | TABLE_BITS,
		  X86_CR0_WP, X86_CR4_TSD);
	u64 r = vsm_call(CMD_OWN, mine, 0, 0);
	configure(0, 0, 0);
	u64 de = vp->entries[HV_VTL_ENTRY_INTERCEPT] - e, dm = vp->messages - m;
	const typeof(own[0]) *w = &own[smp_id()];
	report(r == 0 && de == 0 && dm == 0 && !(w->cr0 & X86_CR0_WP) && (w->cr4 & X86_CR4_TSD) && w->lstar == mine && w->efer == EFER_SCE &&
	       w->tables && rdmsr(MSR_LSTAR) == lstar,
	       "VP%u VTL1's own MOV CR0 (WP off and on), MOV CR4 (TSD on and off), WRMSR/RDMSR LSTAR and EFER, LGDT/LIDT/LLDT of its own "
	       "tables: not intercepted (%lu, %lu), took effect; VTL0's LSTAR untouched", hv_vp_index(), de, dm);
}

static void intercepts(void *arg)
{
	(void)arg;
	cr0_denied();
	cr0_outside_mask();
	lmsw_denied();
	lmsw_memory_denied();
	cr4_emulated();
	xsetbv_intercepts();
	lstar_intercepts();
	cpl3_accesses();
	efer_intercepts();
	msr_table();
	control_cleared();
	descriptor_tables();
	vtl1_own_accesses();
	report(strays[smp_id()] == 0, "VP%u: no intercepts outside the planned accesses (%u)", hv_vp_index(), strays[smp_id()]);
}

// ---------------------------------------------------------------- 3. the intercept page

static void intercept_page(void)
{
	u64 cr0 = read_cr0();
	struct hv_message want;
	char who[80];

	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, HV_VSM_CONFIG_INTERCEPT_PAGE, 0, 0);
	report(s == HV_STATUS_SUCCESS, "VTL1: VsmPartitionConfig InterceptPage (0x1000) => SUCCESS (0x%lx)", s);
	WHO(who, "MOV CR0 clearing WP with InterceptPage");
	fill_gprs(50);
	fc_in[RAX] = cr0 & ~X86_CR0_WP;
	expect_register(&want, &I_CR0, HV_REG_CR0, fc_in[RAX]);
	configure(HV_CR_INTERCEPT_CR0_WRITE, X86_CR0_WP, 0);
	struct outcome o = run_plain(&I_CR0);
	u64 now = read_cr0();
	configure(0, 0, 0);
	restore_cr0(cr0);
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, 0, 0, 0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_CR0, &want, 1, true);
	report(now == cr0 && s == HV_STATUS_SUCCESS, "%s: VTL1 skipped it: CR0 0x%lx still has WP; VsmPartitionConfig back to 0 => 0x%lx", who,
	       now, s);
}

// ---------------------------------------------------------------- 4. each VP its own registers (2+ CPUs)

static void vp1_unaffected(void *arg)
{
	struct vsm_vp *vp0 = vsm_vp_of(0), *vp = vsm_this_vp();
	u64 cr0 = read_cr0(), lstar = rdmsr(MSR_LSTAR), v[4];
	u64 e0 = vp0->entries[HV_VTL_ENTRY_INTERCEPT], e = vp->entries[HV_VTL_ENTRY_INTERCEPT];

	(void)arg;
	unsigned s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 4, CR_REGS, v);
	report(s == HV_STATUS_SUCCESS && !v[0] && !v[1] && !v[2] && !v[3],
	       "VP%u VTL1: its CrInterceptControl and masks read 0 while VP0's are set (0x%lx 0x%lx 0x%lx 0x%lx)", vp->vp_index, v[0], v[1],
	       v[2], v[3]);
	fill_gprs(60);
	fc_in[RAX] = cr0 & ~X86_CR0_WP;
	struct outcome o1 = run_plain(&I_CR0);
	u64 v0 = read_cr0();
	fc_in[RAX] = cr0;
	struct outcome o2 = run_plain(&I_CR0);
	set_msr_gprs(61, MSR_LSTAR, lstar ^ 0x6000);
	struct outcome o3 = run_plain(&I_WRMSR);
	u64 vl = rdmsr(MSR_LSTAR);
	wrmsr(MSR_LSTAR, lstar);
	restore_cr0(cr0);
	report(not_intercepted(&o1) && not_intercepted(&o2) && not_intercepted(&o3) && v0 == (cr0 & ~X86_CR0_WP) && vl == (lstar ^ 0x6000) &&
	       vp0->entries[HV_VTL_ENTRY_INTERCEPT] == e0 && vp->entries[HV_VTL_ENTRY_INTERCEPT] == e,
	       "VP%u VTL0: MOV CR0 clearing WP and WRMSR LSTAR take effect, intercepted neither here nor on VP0", vp->vp_index);
	configure(HV_CR_INTERCEPT_MSR_LSTAR_READ, 0, 0);
}

static void vp1_own_control(void *arg)
{
	struct vsm_vp *vp0 = vsm_vp_of(0);
	u64 e0 = vp0->entries[HV_VTL_ENTRY_INTERCEPT];
	struct hv_message want;
	char who[80];

	(void)arg;
	WHO(who, "RDMSR LSTAR (its own read bit)");
	fill_gprs(63);
	fc_in[RCX] = MSR_LSTAR;
	expect_msr(&want, &I_RDMSR);
	struct outcome o = run_plain(&I_RDMSR);
	configure(0, 0, 0);
	set_rflags(&want);
	check_intercepts(who, &o, &I_RDMSR, &want, 1, false);
	report(vp0->entries[HV_VTL_ENTRY_INTERCEPT] == e0 && gprs_kept(false), "%s: VP0's VTL1 not entered; VTL1 skipped it, GPRs unchanged", who);
}

static void per_vp_registers(void)
{
	u32 vp1 = hv_vp_of[1];
	u64 mine = HV_CR_INTERCEPT_CR0_WRITE | HV_CR_INTERCEPT_MSR_LSTAR_WRITE, v[1], w[1];
	struct hv_message want;
	char who[80];

	configure(mine, X86_CR0_WP, 0);
	on_cpu(1, vp1_unaffected, NULL);
	unsigned s = vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 1, CR_REGS, v);
	unsigned s1 = vtl1_get_regs(vp1, HV_INPUT_VTL_SELF, 1, CR_REGS, w);
	report(s == HV_STATUS_SUCCESS && v[0] == mine && s1 == HV_STATUS_SUCCESS && w[0] == HV_CR_INTERCEPT_MSR_LSTAR_READ,
	       "VP0 VTL1: its CrInterceptControl still 0x%lx; VP%u's, read remotely, 0x%lx (VP%u's VTL1 set 0x20)", v[0], vp1, w[0], vp1);

	u64 lstar = rdmsr(MSR_LSTAR);
	WHO(who, "WRMSR LSTAR while VP%u has only its read bit", vp1);
	set_msr_gprs(62, MSR_LSTAR, lstar ^ 0x7000);
	expect_msr(&want, &I_WRMSR);
	struct outcome o = run_plain(&I_WRMSR);
	u64 now = rdmsr(MSR_LSTAR);
	set_rflags(&want);
	check_intercepts(who, &o, &I_WRMSR, &want, 1, false);
	report(now == lstar && gprs_kept(false), "%s: VTL1 skipped it, LSTAR unchanged", who);
	on_cpu(1, vp1_own_control, NULL);
	configure(0, 0, 0);
	if (rdmsr(MSR_LSTAR) != lstar)
		wrmsr(MSR_LSTAR, lstar);
}

// ---------------------------------------------------------------- 5. unrecoverable exceptions (VsmPartitionConfig bit 11)

static const u32 CONFIG_REG[1] = { HV_REG_VSM_PARTITION_CONFIG };

/* VTL1's own VsmPartitionConfig (from VTL1 of this VP); ~0 when the read fails. */
static u64 partition_config(void)
{
	u64 v[1];

	return vtl1_get_regs(HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, 1, CONFIG_REG, v) == HV_STATUS_SUCCESS ? v[0] : ~0UL;
}

/* The register: bit 11 reads back as written; bit 10 is still refused; then it is cleared again. */
static void unrecoverable_config(void)
{
	u64 before = partition_config(), on = before | HV_VSM_CONFIG_INTERCEPT_UNRECOVERABLE_EXCEPTION;

	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, on, 0, 0);
	u64 got = partition_config();
	report(s == HV_STATUS_SUCCESS && got == on && before == 0,
	       "VTL1: VsmPartitionConfig 0x%lx (InterceptUnrecoverableException, from 0x%lx) => SUCCESS (0x%lx), reads back 0x%lx", on, before, s,
	       got);
	u64 bad = on | HV_VSM_CONFIG_INTERCEPT_CPUID_UNIMPLEMENTED;
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, bad, 0, 0);
	got = partition_config();
	report(s == HV_STATUS_INVALID_REGISTER_VALUE && got == on,
	       "VTL1: VsmPartitionConfig 0x%lx (with bit 10, InterceptCpuidUnimplemented) => INVALID_REGISTER_VALUE (0x%lx), still reads 0x%lx",
	       bad, s, got);
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, before, 0, 0);
	got = partition_config();
	report(s == HV_STATUS_SUCCESS && got == before, "VTL1: VsmPartitionConfig back to 0x%lx => SUCCESS (0x%lx), reads 0x%lx", before, s, got);
}

/* The base of each CPU's empty IDT: with limit 0 not one gate fits, nothing is read from it. */
static u8 empty_idt[MAX_CPUS][16] __aligned(16);

/*
 * On this VP: VTL1 sets bit 11; VTL0, IF clear, loads the empty IDT and
 * executes UD2 (#UD, then #GP, then #DF undeliverable: a triple fault).
 * VTL1 returns once without repairing it (VTL0 runs the UD2 again: the
 * same triple fault), then repairs it (VTL0's Idtr back to its IDT, Rip
 * past the UD2). VTL0 loads its IDT itself too before it enables
 * interrupts again, in case the repair did not take.
 */
static void triple_fault(void *arg)
{
	unsigned cpu = smp_id();
	struct descriptor_table_ptr idtr, now;
	const struct descriptor_table_ptr empty = { .limit = 0, .base = (u64)empty_idt[cpu] };
	struct hv_message want;
	char who[80];

	(void)arg;
	u64 before = partition_config(), on = before | HV_VSM_CONFIG_INTERCEPT_UNRECOVERABLE_EXCEPTION;
	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, on, 0, 0);
	u64 got = partition_config();
	report(s == HV_STATUS_SUCCESS && got == on, "VP%u VTL1: VsmPartitionConfig 0x%lx (InterceptUnrecoverableException) => SUCCESS (0x%lx), reads 0x%lx",
	       hv_vp_index(), on, s, got);

	WHO(who, "UD2 with an empty IDT (triple fault)");
	sidt(&idtr);
	memset(&want, 0, sizeof(want));
	want.type = HV_MESSAGE_TYPE_UNRECOVERABLE_EXCEPTION;
	want.payload_size = HV_INTERCEPT_HEADER_BYTES;
	want.origin = ORIGINATION_ID;
	vsm_intercept_header((void *)want.payload, HV_INTERCEPT_ACCESS_READ, 0, (u64)I_UD2.at, 0);
	fill_gprs(80);
	plans[cpu].value_hi = table_value(&idtr, 1);
	bool irqs = irq_save();
	lidt(&empty);
	struct outcome o = run(&I_UD2, ACT_SET_REG128, 2, HV_REG_IDTR, table_value(&idtr, 0));
	sidt(&now);
	lidt(&idtr);
	irq_restore(irqs);
	set_rflags(&want);
	check_intercepts(who, &o, &I_UD2, &want, 2, false);

	const struct capture *c = &captured[cpu];
	bool empties = c->count >= 2;
	for (unsigned k = 0; k < 2 && k < c->count; k++)
		empties &= c->vtl0_idtr[k].base == empty.base && c->vtl0_idtr[k].limit == 0;
	report(empties && !(fc_rflags & X86_EFLAGS_IF),
	       "%s: at each message VTL0's Idtr (GetVpRegisters) is the empty one: base 0x%lx limit 0x%x, then base 0x%lx limit 0x%x; IF clear in "
	       "VTL0", who, c->vtl0_idtr[0].base, c->vtl0_idtr[0].limit, c->vtl0_idtr[1].base, c->vtl0_idtr[1].limit);
	report(!o.faulted && same_table(&now, &idtr) && gprs_kept(false),
	       "%s: VTL1 returned without repairing it (the same triple fault again), then repaired it (SetVpRegisters of VTL0's Idtr and of its "
	       "Rip past the UD2): VTL0 went on after the UD2 with its IDT (SIDT base 0x%lx limit 0x%x), GPRs unchanged", who, now.base, now.limit);

	/* VTL0 works as before: with its IDT, its next #UD is its own, not an intercept. */
	WHO(who, "UD2 with its IDT (bit 11 set)");
	fill_gprs(81);
	o = run_plain(&I_UD2);
	report(o.faulted && o.ex.vector == UD_VECTOR && o.ex.rip == (u64)I_UD2.at && o.entries == 0 && o.messages == 0 && c->count == 0,
	       "%s: #UD (vector %u) delivered to VTL0 at the instruction, no intercept (%lu)", who, o.faulted ? o.ex.vector : 0, o.entries);

	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, before, 0, 0);
	got = partition_config();
	report(s == HV_STATUS_SUCCESS && got == before && strays[cpu] == 0,
	       "VP%u VTL1: VsmPartitionConfig back to 0x%lx => SUCCESS (0x%lx), reads 0x%lx; no intercepts outside the planned ones (%u)",
	       hv_vp_index(), before, s, got, strays[cpu]);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	vsm_register_command(CMD_SET, vtl1_set);
	vsm_register_command(CMD_GET, vtl1_get);
	vsm_register_command(CMD_TRY, vtl1_try);
	vsm_register_command(CMD_OWN, vtl1_own);
	vsm_register_message_handler(on_message);
	if (!vsm_setup_all())
		report_summary();
	vtl0_hvc = vsm_vtl0_hvc();
	report_info("%u CPUs; CPUID.1:ECX.XSAVE %u", cpu_count(), (cpuid(1).c >> 26) & 1);
	registers();
	intercept_page();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, intercepts, NULL);
	if (cpu_count() >= 2)
		per_vp_registers();
	else
		report_info("one CPU: the per-VP checks need a second one");
	unrecoverable_config();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, triple_fault, NULL);
	report_summary();
}
