/*
 * VTL2 (issue 5: "VTL0-VTL2 as the partition allows, and every VP of an SMP
 * guest"), with the VSM library (lib/vsm.h) as VTL1 and a small VTL2
 * kernel of this test's own (tlfs-vsm-facts.md §2.11-§2.15, §3.2-§3.4,
 * §3.7-§3.10, §4.2-§4.5). Run with --max-vtl 2 and
 * --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm at any CPU count.
 *
 * The VTL2 kernel: on every VP its own page tables, stack, GDT/TSS, IDT
 * (the 32 exception vectors: a #UD the test armed is skipped, anything
 * else is reported and stops the guest), per-CPU data (GS base), VP assist
 * page, SynIC pages and hypercall buffers; one hypercall page for VTL2 of
 * every VP. Its entry loop (vtl2_entry) stores the shared GPRs, dispatches
 * on the entry reason in its assist page and VtlReturns (non-fast: RAX and
 * RCX from its control area, §3.3). Reason 1 runs the command in its
 * mailbox; reason 3 reads the intercept message from its SINT0 slot (SINT0
 * in polling mode: VTL2 never takes interrupts, so no interrupt can pend
 * in its APIC and bounce the VP back into it, §3.10), records it, makes
 * the page RWX again and hands every shared GPR back as it found it.
 * VTL0 reaches VTL2 through a VTL1 command that VtlCalls from VTL1.
 *
 * 1. Enabling (§2.12, §2.13; hc-vsm.ts's rules): VsmPartitionStatus
 *    MaximumVtl 2. VTL0 enables VTL1; VTL0's EnablePartitionVtl(VTL2) is
 *    then ACCESS_DENIED (VTL1 is the highest enabled VTL below VTL2);
 *    VTL1 enables it. With `--append vtl0-enables-vtl2` VTL0 enables VTL2
 *    first, when VTL0 is the highest enabled VTL below it (SUCCESS), then
 *    VTL1. EnableVpVtl(VTL2): VTL0 ⇒ ACCESS_DENIED, VTL1 on its own VP
 *    ⇒ SUCCESS; after that VTL1 ⇒ ACCESS_DENIED for any VP, so VTL2 of VP0
 *    enables VTL2 on the other VPs. VsmVpStatus EnabledVtlSet {0,1,2}.
 *    Without --max-vtl 2: VsmPartitionStatus MaximumVtl 1, EnablePartitionVtl
 *    (VTL2) ACCESS_DENIED, and the rest is skipped.
 * 2. On every VP, VTL0 → VTL1 → VTL2 → VTL1 → VTL0 (§3.4): entry reason 1
 *    in both, VsmVpStatus ActiveVtl at each step, CR3/RSP/RIP/RFLAGS private
 *    per VTL (each VTL's own view and VTL2's GetVpRegisters of VTL0 and
 *    VTL1, exact values), shared GPRs flowing up and back. VtlCall from
 *    VTL2 (no higher VTL) is #UD at its VMCALL.
 * 3. Protections (§3.8, §3.10, §4.4, §4.5): VTL2 makes page A read-only and
 *    VTL1 page B no-access; page C gets both. A VTL0 write to A and a VTL1
 *    write to A intercept to VTL2 (ExecutionState VTL 0 and 1); a VTL0 read
 *    of B intercepts to VTL1 only; a VTL0 write to C goes to VTL1 first (the
 *    lower of the intercepting VTLs), then, once VTL1 lifted its mask and
 *    the write ran again, to VTL2.
 * 4. From VTL2 (§2.15, §3.7, §3.9): SecureConfigVtl0/Vtl1 TlbLocked written
 *    and read back, per (higher, lower) pair, released by VtlReturn;
 *    Get/SetVpRegisters with input VTL1 (VTL1's KernelGsBase); the input
 *    VTL statuses of VTL0, VTL1 and VTL2.
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"

#define SEG_TSS_BUSY_PRESENT 0x8b
#define GATE_INTERRUPT_PRESENT 0x8e
#define VTL2_STACK_PAGES 4
#define VTL2_IDT_VECTORS 32
#define VMCALL_LEN 3
/* The 64-bit VtlCall stub (§3.6): mov rcx→rax (3), mov ecx,0x11 (5), VMCALL (3), RET. */
#define STUB_VMCALL 8
#define STUB_AFTER_VMCALL (STUB_VMCALL + VMCALL_LEN)
#define RFLAGS_PRIVATE_BITS (X86_EFLAGS_IF | X86_EFLAGS_AC)
#define VTL2_RFLAGS (0x2 | X86_EFLAGS_AC) /* AC is harmless at CPL 0 and tells VTL2's RFLAGS apart */
#define ALL_VTLS 0x7
#define PROTECTION_CONFIG (HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX))
#define OFFSET 0x238
#define MAX_CAPTURE 4
#define FULL_INFO (HV_MEMORY_ACCESS_GVA_VALID | HV_MEMORY_ACCESS_GVA_GPA_VALID | HV_MEMORY_ACCESS_TLB_LOCKED)
#define PAGE_OF(a) ((u64)(a) >> HV_PAGE_SHIFT)
#define VTL1_MARK 0x1111000000000000UL
#define VTL2_MARK 0x2222000000000000UL
#define VTL2_RAX 0x2a2a2a2a00000000UL
#define VTL2_RCX 0x2c2c2c2c00000000UL
#define VTL1_KGS 0xffff888812340000UL

extern u64 gdt64[GDT_ENTRIES]; /* lib/entry.S: VTL0's GDT */
static struct vsm_hvc vtl0_hvc;

// ---------------------------------------------------------------- assembly

/* A VtlCall with chosen GPRs: regs as VTL0/VTL1 pass them, rsp = RSP right before the CALL of the stub. */
struct call_frame {
	struct vsm_regs r;
	u64 rsp;
};
_Static_assert(__builtin_offsetof(struct call_frame, rsp) == 120, "call_frame.rsp at 120");

/*
 * vtl_call_frame(f, stub): RDX..R15 from f->r, RCX = 0 (the control
 * input), CALL stub (a VtlCall stub of the caller's VTL), every GPR back
 * into f->r. RSP before the CALL goes to f->rsp: parked in the stub, after
 * its VMCALL, the caller's RSP is f->rsp - 8.
 */
void vtl_call_frame(struct call_frame *f, u64 stub);
asm(".text\n.globl vtl_call_frame\nvtl_call_frame:\n"
    "push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\npush %rdi\n"
    "mov %rsi, %rax\nmov %rsp, 120(%rdi)\n"
    "mov 16(%rdi), %rdx\nmov 24(%rdi), %rbx\nmov 32(%rdi), %rbp\n"
    "mov 56(%rdi), %r8\nmov 64(%rdi), %r9\nmov 72(%rdi), %r10\nmov 80(%rdi), %r11\n"
    "mov 88(%rdi), %r12\nmov 96(%rdi), %r13\nmov 104(%rdi), %r14\nmov 112(%rdi), %r15\n"
    "mov 40(%rdi), %rsi\nmov 48(%rdi), %rdi\nxor %ecx, %ecx\ncall *%rax\n"
    "xchg %rdi, (%rsp)\n"
    "mov %rax, 0(%rdi)\nmov %rcx, 8(%rdi)\nmov %rdx, 16(%rdi)\nmov %rbx, 24(%rdi)\nmov %rbp, 32(%rdi)\nmov %rsi, 40(%rdi)\n"
    "mov %r8, 56(%rdi)\nmov %r9, 64(%rdi)\nmov %r10, 72(%rdi)\nmov %r11, 80(%rdi)\n"
    "mov %r12, 88(%rdi)\nmov %r13, 96(%rdi)\nmov %r14, 104(%rdi)\nmov %r15, 112(%rdi)\n"
    "pop %rax\nmov %rax, 48(%rdi)\n"
    "pop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\nret\n");

/* The accesses the protections catch, at known instructions: *p = v, and *p. */
void write_at(u64 *p, u64 v);
u64 read_at(const u64 *p);
extern const u8 write_at_insn[], write_at_end[], read_at_insn[], read_at_end[];
asm(".text\n.globl write_at, write_at_insn, write_at_end\nwrite_at:\nwrite_at_insn: mov %rsi, (%rdi)\nwrite_at_end: ret\n"
    ".globl read_at, read_at_insn, read_at_end\nread_at:\nread_at_insn: mov (%rdi), %rax\nread_at_end: ret\n");

/*
 * VTL2's loop, as lib/vsm-entry.S's for VTL1: at label 1 RSP is the top of
 * the stack (the initial context's, and again after each VtlReturn stub's
 * RET); the 15 shared GPRs + 8 bytes go below it as a struct vsm_regs,
 * vtl2_dispatch() returns the VtlReturn control input.
 */
void vtl2_entry(void);
u64 vtl2_dispatch(struct vsm_regs *regs);
u64 vtl2_return_stub, vtl2_call_stub;
asm(".text\n.globl vtl2_entry\nvtl2_entry:\n"
    "1: sub $8, %rsp\n"
    "push %r15\npush %r14\npush %r13\npush %r12\npush %r11\npush %r10\npush %r9\npush %r8\n"
    "push %rdi\npush %rsi\npush %rbp\npush %rbx\npush %rdx\npush %rcx\npush %rax\n"
    "mov %rsp, %rdi\ncall vtl2_dispatch\nmov %rax, %rcx\n"
    "mov 16(%rsp), %rdx\nmov 24(%rsp), %rbx\nmov 32(%rsp), %rbp\nmov 40(%rsp), %rsi\n"
    "mov 48(%rsp), %rdi\nmov 56(%rsp), %r8\nmov 64(%rsp), %r9\nmov 72(%rsp), %r10\n"
    "mov 80(%rsp), %r11\nmov 88(%rsp), %r12\nmov 96(%rsp), %r13\nmov 104(%rsp), %r14\n"
    "mov 112(%rsp), %r15\nadd $128, %rsp\ncall *vtl2_return_stub(%rip)\njmp 1b\n");

/* VTL2's exception stubs, 16 bytes apart, building a struct ex_regs for vtl2_isr(). */
void vtl2_isr(struct ex_regs *r);
extern char vtl2_isr_stubs[];
asm(".include \"lib/isr-table.inc\"\n.text\nISR_TABLE vtl2_isr_stubs, vtl2_isr, 32\n");

// ---------------------------------------------------------------- shared records

/* An intercept message as the notified VTL saw it, with the order in which the VP's VTLs saw theirs. */
struct capture {
	u32 seq;
	u64 vp_status; /* VsmVpStatus in the handler (VTL2 only) */
	struct hv_message msg;
};
struct captures {
	volatile u32 count;
	struct capture c[MAX_CAPTURE];
};

/* What the VTL0 → VTL1 → VTL2 → VTL1 → VTL0 chain saw on one VP. */
struct chain_rec {
	u64 status1_before, status2, status1_after;
	u32 reason1, reason2;
	u64 cr3[3], rsp[3], rflags[3];            /* each VTL's own view (RSP: VTL0's and VTL1's at their VtlCall, VTL2's at entry) */
	unsigned seen_status[2];
	u64 seen[2][8];                           /* VTL2's GetVpRegisters of VTL0, VTL1: CR3, RSP, RIP, RFLAGS (16 B each) */
	struct vsm_regs vtl1_in, vtl2_in, vtl1_back;
	u64 kgs1;                                 /* VTL1's KernelGsBase after the VtlCall */
	u64 exec_state1;                          /* what VTL1 expects in a message about its own access */
};

struct vtl2_vp {
	unsigned cpu;
	u32 vp_index;
	struct vsm_hvc hvc;
	struct hv_vp_assist_page *assist;
	u64 *root, *gdt, *idt;
	u8 *stack;
	struct percpu *pc;
	struct hv_message *sim;
	u8 *sief;
	/* The mailbox (VTL0 writes it, VTL2 runs it on a VtlCall from VTL1). */
	volatile u32 cmd;
	volatile u64 arg[3];
	u64 ret_rcx;                              /* RCX for the caller after a command */
	/* What VTL2 saw. */
	volatile bool ready;
	volatile u64 entries[4];
	volatile u32 last_reason;
	volatile u64 intercepts_without_message;
	struct captures cap;
	/* A #UD the test expects at ud_rip: skipped by the handler. */
	volatile bool ud_armed;
	volatile u64 ud_rip, ud_taken;
	u64 results[8];                           /* a command's values */
	unsigned st[12];                          /* and its statuses */
};

static struct vtl2_vp *v2s[MAX_CPUS];
static void *vtl2_hypercall_page;
static struct chain_rec recs[MAX_CPUS];
static struct captures cap1[MAX_CPUS];        /* VTL1's intercept messages, per CPU */
static volatile u32 seqs[MAX_CPUS];           /* intercepts seen on a VP, by either VTL */

static struct vtl2_vp *vtl2_of(unsigned cpu)
{
	return v2s[cpu];
}

static u64 read_dr7(void)
{
	u64 v;

	asm volatile("mov %%dr7, %0" : "=r"(v));
	return v;
}

/* The ExecutionState (§4.4) of an access by the running code in VTL `vtl`. */
static u16 exec_state(unsigned vtl)
{
	u64 cr0 = read_cr0();

	return (read_cs() & 3) | ((cr0 & X86_CR0_PE) ? HV_EXEC_STATE_CR0_PE : 0) | ((cr0 & X86_CR0_AM) ? HV_EXEC_STATE_CR0_AM : 0) |
	       ((rdmsr(MSR_EFER) & EFER_LMA) ? HV_EXEC_STATE_EFER_LMA : 0) | ((read_dr7() & 0xff) ? HV_EXEC_STATE_DEBUG_ACTIVE : 0) |
	       HV_EXEC_STATE_VTL(vtl);
}

static void capture(struct captures *cs, unsigned cpu, const struct hv_message *m, u64 vp_status)
{
	u32 k = cs->count++;

	if (k >= MAX_CAPTURE)
		return;
	cs->c[k].seq = ++seqs[cpu];
	cs->c[k].vp_status = vp_status;
	memcpy(&cs->c[k].msg, m, sizeof(*m));
}

// ---------------------------------------------------------------- VTL2

typedef u64 (*vtl2_command_fn)(struct vtl2_vp *v, struct vsm_regs *regs);

static struct vtl2_vp *me2(void)
{
	return v2s[smp_id()]; /* VTL2's GS base is its own struct percpu */
}

static void vtl2_setup(struct vtl2_vp *v)
{
	u64 hypercall = (u64)vtl2_hypercall_page | HV_HYPERCALL_ENABLE;

	hv_set_guest_os_id();
	if (rdmsr(HV_X64_MSR_HYPERCALL) != hypercall)
		wrmsr(HV_X64_MSR_HYPERCALL, hypercall);
	wrmsr(HV_X64_MSR_VP_ASSIST_PAGE, (u64)v->assist | HV_PAGE_MSR_ENABLE);
	u64 offsets = vsm_get_u64(&v->hvc, HV_REG_VSM_CODE_PAGE_OFFSETS);
	vtl2_call_stub = (u64)vtl2_hypercall_page + (offsets & 0xfff);
	vtl2_return_stub = (u64)vtl2_hypercall_page + ((offsets >> 12) & 0xfff);
	wrmsr(HV_X64_MSR_SIMP, (u64)v->sim | HV_PAGE_MSR_ENABLE);
	wrmsr(HV_X64_MSR_SIEFP, (u64)v->sief | HV_PAGE_MSR_ENABLE);
	wrmsr(HV_X64_MSR_SCONTROL, HV_SCONTROL_ENABLE);
	wrmsr(HV_X64_MSR_SINT(0), HV_SINT_POLLING | VSM_SINT0_VECTOR);
	v->ready = true;
}

static u64 c2_nop(struct vtl2_vp *v, struct vsm_regs *regs)
{
	(void)v;
	(void)regs;
	return 0;
}

static u64 vp_status2(struct vtl2_vp *v)
{
	return vsm_get_u64(&v->hvc, HV_REG_VSM_VP_STATUS);
}

/* The chain's top: what VTL2 sees of itself and, through GetVpRegisters, of VTL0 and VTL1 (§2.15, §3.2). */
static u64 c2_chain(struct vtl2_vp *v, struct vsm_regs *regs)
{
	static const u32 names[4] = { HV_REG_CR3, HV_REG_RSP, HV_REG_RIP, HV_REG_RFLAGS };
	struct chain_rec *r = &recs[v->cpu];

	r->reason2 = v->last_reason;
	r->vtl2_in = *regs;
	r->status2 = vp_status2(v);
	r->cr3[2] = read_cr3();
	r->rsp[2] = (u64)regs + 128;
	r->rflags[2] = read_rflags();
	for (unsigned vtl = 0; vtl < 2; vtl++)
		r->seen_status[vtl] = vsm_get_regs(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(vtl), names, 4, r->seen[vtl]);
	regs->rbx = ~regs->rbx;
	regs->r15 = VTL2_MARK | v->cpu;
	v->ret_rcx = VTL2_RCX | v->cpu;
	return VTL2_RAX | v->cpu;
}

/* VtlCall from VTL2, the highest VTL: #UD at the stub's VMCALL (§3.4). Returns the #UDs taken there. */
static u64 c2_call_up(struct vtl2_vp *v, struct vsm_regs *regs)
{
	struct call_frame f;

	(void)regs;
	memset(&f, 0, sizeof(f));
	v->ud_taken = 0;
	v->ud_rip = vtl2_call_stub + STUB_VMCALL;
	v->ud_armed = true;
	vtl_call_frame(&f, vtl2_call_stub);
	v->ud_armed = false;
	v->results[0] = vp_status2(v);
	return v->ud_taken;
}

static u64 c2_set_config(struct vtl2_vp *v, struct vsm_regs *regs)
{
	(void)regs;
	v->results[0] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, v->arg[0]);
	return vsm_get_u64(&v->hvc, HV_REG_VSM_PARTITION_CONFIG);
}

/* ModifyVtlProtectionMask(arg1) of GPA page arg0 for VTL2 (the VTLs below it); returns the result value. */
static u64 c2_protect(struct vtl2_vp *v, struct vsm_regs *regs)
{
	u64 page = v->arg[0];

	(void)regs;
	return vsm_modify_protection(&v->hvc, HV_PARTITION_ID_SELF, v->arg[1], HV_INPUT_VTL_SELF, &page, 1);
}

/* EnableVpVtl(VP arg0, VTL2, context at arg1); returns the status. */
static u64 c2_enable_vp(struct vtl2_vp *v, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_enable_vp_vtl(&v->hvc, HV_PARTITION_ID_SELF, v->arg[0], 2, (const struct hv_initial_vp_context *)v->arg[1]);
}

static u64 get1(struct vtl2_vp *v, u8 input_vtl, u32 name, unsigned *status)
{
	u64 val[2] = { ~0UL, ~0UL };

	*status = vsm_get_reg(&v->hvc, HV_VP_INDEX_SELF, input_vtl, name, val);
	return val[0];
}

/*
 * SecureConfigVtl0/Vtl1 of VTL2 (§3.7, §3.9): statuses in st[0-9], values
 * in results[1-5]; returns the number of calls.
 */
static u64 c2_secure(struct vtl2_vp *v, struct vsm_regs *regs)
{
	const u32 sc0 = HV_REG_VSM_VP_SECURE_CONFIG_VTL(0), sc1 = HV_REG_VSM_VP_SECURE_CONFIG_VTL(1);
	unsigned *s = v->st, k = 0;

	(void)regs;
	s[k++] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, sc0, HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED);
	v->results[1] = get1(v, HV_INPUT_VTL_SELF, sc0, &s[k++]);
	s[k++] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, sc1, HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED);
	v->results[2] = get1(v, HV_INPUT_VTL_SELF, sc1, &s[k++]);
	v->results[3] = get1(v, HV_INPUT_VTL(1), sc0, &s[k++]); /* VTL1's own instance for VTL0 */
	s[k++] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, sc1, 0);
	v->results[4] = get1(v, HV_INPUT_VTL_SELF, sc1, &s[k++]);
	s[k++] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL(2), 0);
	s[k++] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, sc0, HV_VSM_VP_SECURE_CONFIG_MBEC_ENABLED);
	v->results[5] = get1(v, HV_INPUT_VTL_SELF, sc0, &s[k++]);
	return k;
}

/* SecureConfigVtl0 of VTL2 in a later entry: the VtlReturn after c2_secure released the lock. */
static u64 c2_secure_after(struct vtl2_vp *v, struct vsm_regs *regs)
{
	unsigned s;

	(void)regs;
	v->results[1] = get1(v, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL(0), &s);
	return s;
}

/* Get/SetVpRegisters of VTL1's private KernelGsBase from VTL2, and the input VTL statuses (§2.11, §2.15): st[0-4]. */
static u64 c2_regs(struct vtl2_vp *v, struct vsm_regs *regs)
{
	unsigned *s = v->st;

	(void)regs;
	s[0] = vsm_set_reg(&v->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(1), HV_REG_KERNEL_GS_BASE, VTL1_KGS | v->cpu);
	v->results[1] = get1(v, HV_INPUT_VTL(1), HV_REG_KERNEL_GS_BASE, &s[1]);
	v->results[2] = get1(v, HV_INPUT_VTL(2), HV_REG_KERNEL_GS_BASE, &s[2]);
	v->results[3] = rdmsr(MSR_KERNEL_GS_BASE);
	get1(v, HV_INPUT_VTL(3), HV_REG_CR3, &s[3]);
	v->results[4] = get1(v, HV_INPUT_VTL(1), HV_REG_VSM_VP_STATUS, &s[4]);
	return 0;
}

enum { C2_NOP, C2_CHAIN, C2_CALL_UP, C2_SET_CONFIG, C2_PROTECT, C2_ENABLE_VP, C2_SECURE, C2_SECURE_AFTER, C2_REGS, C2_COUNT };
static const vtl2_command_fn commands2[C2_COUNT] = {
	c2_nop, c2_chain, c2_call_up, c2_set_config, c2_protect, c2_enable_vp, c2_secure, c2_secure_after, c2_regs,
};

static __noreturn void vtl2_fail(const char *what, u64 a, u64 b)
{
	struct percpu *pc = this_cpu();

	if (pc->in_panic)
		exit(EXIT_ABORT);
	pc->in_panic = true;
	report(false, "VTL2 on CPU %u: %s (0x%lx, 0x%lx)", pc->cpu, what, a, b);
	report_summary();
}

static u64 serve2(struct vtl2_vp *v, struct vsm_regs *regs)
{
	unsigned cmd = v->cmd;

	if (cmd >= C2_COUNT)
		vtl2_fail("no such command", cmd, 0);
	v->ret_rcx = 0;
	u64 result = commands2[cmd](v, regs);
	v->assist->vtl_control.vtl_return_rax = result;
	v->assist->vtl_control.vtl_return_rcx = v->ret_rcx;
	return 0; /* non-fast: the caller gets RAX and RCX from the control area (§3.3) */
}

/* An intercept (§3.10, §4.2): the message in SINT0's slot, then the page RWX again for VTL2's mask. */
static void take_intercept(struct vtl2_vp *v)
{
	struct hv_message *slot = &v->sim[0];

	if (slot->type == HV_MESSAGE_TYPE_NONE) {
		v->intercepts_without_message++;
		return;
	}
	const struct hv_memory_intercept *p = (const void *)slot->payload;
	u64 page = p->gpa >> HV_PAGE_SHIFT;

	capture(&v->cap, v->cpu, slot, vp_status2(v));
	vsm_modify_protection(&v->hvc, HV_PARTITION_ID_SELF, HV_MAP_GPA_RWX, HV_INPUT_VTL_SELF, &page, 1);
	hv_message_done(slot);
}

u64 vtl2_dispatch(struct vsm_regs *regs)
{
	struct vtl2_vp *v = me2();

	if (!v->ready) {
		/* The first VtlCall: no assist page yet for its entry reason. */
		vtl2_setup(v);
		v->entries[0]++;
		v->last_reason = HV_VTL_ENTRY_VTL_CALL;
		return serve2(v, regs);
	}
	unsigned reason = v->assist->vtl_control.entry_reason;

	v->last_reason = reason;
	if (reason < 4)
		v->entries[reason]++;
	if (reason == HV_VTL_ENTRY_VTL_CALL)
		return serve2(v, regs);
	if (reason == HV_VTL_ENTRY_INTERCEPT)
		take_intercept(v);
	else if (reason != HV_VTL_ENTRY_INTERRUPT)
		vtl2_fail("entry reason none of 1-3 (§3.4)", reason, 0);
	/* The lower VTL was stopped wherever it was: every shared GPR goes back as it was. */
	v->assist->vtl_control.vtl_return_rax = regs->rax;
	v->assist->vtl_control.vtl_return_rcx = regs->rcx;
	return 0;
}

void vtl2_isr(struct ex_regs *r)
{
	struct vtl2_vp *v = me2();

	if (r->vector == UD_VECTOR && v->ud_armed && r->rip == v->ud_rip) {
		v->ud_taken++;
		v->ud_armed = false;
		r->rip += VMCALL_LEN; /* on to the stub's RET */
		return;
	}
	vtl2_fail("unexpected exception: vector, RIP", r->vector, r->rip);
}

// ---------------------------------------------------------------- VTL2's resources and context (built by VTL0)

static void set_gate(u64 *idt, unsigned vec)
{
	u64 a = (u64)(vtl2_isr_stubs + 16 * vec);

	idt[2 * vec] = (a & 0xffff) | ((u64)KERNEL_CS << 16) | ((u64)GATE_INTERRUPT_PRESENT << 40) | (((a >> 16) & 0xffff) << 48);
	idt[2 * vec + 1] = a >> 32;
}

static struct vtl2_vp *vtl2_alloc(unsigned cpu)
{
	struct vtl2_vp *v = alloc_page();
	struct percpu *pc;

	v->cpu = cpu;
	v->vp_index = hv_vp_of[cpu];
	v->hvc = (struct vsm_hvc){ vtl2_hypercall_page, alloc_page(), alloc_page() };
	v->assist = alloc_page();
	v->root = vm_identity_root(PTE_W);
	v->gdt = alloc_page();
	v->idt = alloc_page();
	v->stack = alloc_pages(VTL2_STACK_PAGES);
	v->pc = pc = alloc_page();
	v->sim = alloc_page();
	v->sief = alloc_page();
	/* Its own per-CPU data: smp_id() and the console work in VTL2. */
	pc->self = pc;
	pc->cpu = cpu;
	pc->apic_id = cpu_apic_id(cpu);
	pc->slot = cpu_data(cpu)->slot;
	pc->tss.rsp0 = (u64)v->stack + VTL2_STACK_PAGES * PAGE_SIZE;
	pc->tss.iomap_base = sizeof(pc->tss);
	/* The library's fixed descriptors, then VTL2's TSS (as VTL1's GDT is laid out). */
	u64 base = (u64)&pc->tss, limit = sizeof(pc->tss) - 1;
	memcpy(v->gdt, gdt64, GDT_FIXED_ENTRIES * 8);
	v->gdt[VSM_VTL1_TSS_SEL / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | ((u64)SEG_TSS_BUSY_PRESENT << 40) |
				       (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	v->gdt[VSM_VTL1_TSS_SEL / 8 + 1] = base >> 32;
	for (unsigned vec = 0; vec < VTL2_IDT_VECTORS; vec++)
		set_gate(v->idt, vec);
	return v;
}

static u64 vtl2_stack_top(const struct vtl2_vp *v)
{
	return (u64)v->stack + VTL2_STACK_PAGES * PAGE_SIZE;
}

/* VTL2's initial context for a CPU's VP: VTL1's segments and control registers, VTL2's own tables, stack, CR3, GS base. */
static void vtl2_context(unsigned cpu, struct hv_initial_vp_context *ctx)
{
	struct vtl2_vp *v = vtl2_of(cpu);

	vsm_build_context(cpu, ctx);
	ctx->rip = (u64)vtl2_entry;
	ctx->rsp = vtl2_stack_top(v);
	ctx->rflags = VTL2_RFLAGS;
	ctx->gs.base = (u64)v->pc;
	ctx->tr = (struct hv_segment){ (u64)&v->pc->tss, sizeof(v->pc->tss) - 1, VSM_VTL1_TSS_SEL, SEG_TSS_BUSY_PRESENT };
	ctx->idtr = (struct hv_table){ .limit = VTL2_IDT_VECTORS * 16 - 1, .base = (u64)v->idt };
	ctx->gdtr = (struct hv_table){ .limit = VSM_VTL1_GDT_ENTRIES * 8 - 1, .base = (u64)v->gdt };
	ctx->cr3 = (u64)v->root;
}

// ---------------------------------------------------------------- VTL1 commands

enum { CMD_TO_VTL2 = VSM_CMD_USER, CMD_ENABLE_PARTITION2, CMD_ENABLE_VP2, CMD_WRITE, CMD_GET_REG };

/*
 * VtlCall from VTL1 into VTL2 with the GPRs VTL0 passed (R14 changed, to
 * show it is VTL1's), recording what VTL1 sees; VTL2's GPR changes and
 * its RAX go back to VTL0 (RCX is the library's 0).
 */
static u64 vtl1_to_vtl2(struct vsm_vp *vp, struct vsm_regs *regs)
{
	struct chain_rec *r = &recs[vp->cpu];
	struct call_frame f;

	r->reason1 = vp->last_reason;
	r->vtl1_in = *regs;
	r->status1_before = vsm_get_u64(&vp->hvc, HV_REG_VSM_VP_STATUS);
	r->cr3[1] = read_cr3();
	r->rflags[1] = read_rflags();
	f.r = *regs;
	f.r.r14 = VTL1_MARK | vp->cpu;
	vtl_call_frame(&f, vsm_vtl1_call_stub);
	r->rsp[1] = f.rsp - 8;
	r->vtl1_back = f.r;
	r->status1_after = vsm_get_u64(&vp->hvc, HV_REG_VSM_VP_STATUS);
	r->kgs1 = rdmsr(MSR_KERNEL_GS_BASE);
	*regs = f.r;
	return f.r.rax;
}

static u64 vtl1_enable_partition2(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_enable_partition_vtl(&vp->hvc, HV_PARTITION_ID_SELF, 2);
}

static u64 vtl1_enable_vp2(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_enable_vp_vtl(&vp->hvc, HV_PARTITION_ID_SELF, vp->arg[0], 2, (const struct hv_initial_vp_context *)vp->arg[1]);
}

/* VTL1 writes arg1 to arg0 (write_at); returns what it reads there afterwards. */
static u64 vtl1_write(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	recs[vp->cpu].exec_state1 = exec_state(1);
	write_at((u64 *)vp->arg[0], vp->arg[1]);
	return readq(vp->arg[0]);
}

/* GetVpRegisters(input VTL arg0, register arg1) from VTL1: the status. */
static u64 vtl1_get_reg(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, vp->arg[0], vp->arg[1], NULL);
}

/* VTL1's SINT0 message (in its intercept entry: no printing): record it, make the page RWX again for VTL1's mask. */
static void vtl1_message(struct vsm_vp *vp, const struct hv_message *m)
{
	const struct hv_memory_intercept *p = (const void *)m->payload;
	u64 page = p->gpa >> HV_PAGE_SHIFT;

	capture(&cap1[vp->cpu], vp->cpu, m, 0);
	vsm_modify_protection(&vp->hvc, HV_PARTITION_ID_SELF, HV_MAP_GPA_RWX, HV_INPUT_VTL_SELF, &page, 1);
}

// ---------------------------------------------------------------- VTL0 helpers

/* VTL0 → VTL1 → VTL2 command on this CPU; returns VTL2's RAX. */
static u64 vtl2_call(unsigned cmd, u64 a0, u64 a1, u64 a2)
{
	struct vtl2_vp *v = vtl2_of(smp_id());

	v->arg[0] = a0;
	v->arg[1] = a1;
	v->arg[2] = a2;
	v->cmd = cmd;
	return vsm_call(CMD_TO_VTL2, 0, 0, 0);
}

static u64 vp_status0(void)
{
	return vsm_get_u64(&vtl0_hvc, HV_REG_VSM_VP_STATUS);
}

static u64 partition_status0(void)
{
	return vsm_get_u64(&vtl0_hvc, HV_REG_VSM_PARTITION_STATUS);
}

static bool result_is(u64 r, unsigned status, unsigned reps)
{
	return HV_RESULT_STATUS(r) == status && HV_RESULT_REPS(r) == reps;
}

// ---------------------------------------------------------------- 1. enabling

static void vtl2_start_here(void *arg)
{
	struct vtl2_vp *v = vtl2_of(smp_id());
	u64 r = vtl2_call(C2_NOP, 0, 0, 0);

	(void)arg;
	report(v->ready && r == 0 && v->entries[0] == 1, "CPU %u: VTL2 set itself up in its first entry (VtlCall from VTL1)", smp_id());
	u64 s = vp_status0();
	report(s == HV_VP_STATUS(0, ALL_VTLS), "CPU %u: VsmVpStatus 0x%lx: ActiveVtl 0, EnabledVtlSet {0,1,2}", smp_id(), s);
}

static void vtl1_start_here(void *ok)
{
	if (!vsm_vtl1_start())
		*(volatile bool *)ok = false;
}

static void vtl1_enables_own_vp2(void *arg)
{
	const struct hv_initial_vp_context *ctx = arg;
	u64 s = vsm_call(CMD_ENABLE_VP2, HV_VP_INDEX_SELF, (u64)ctx, 0);

	report(s == HV_STATUS_ACCESS_DENIED,
	       "CPU %u: VTL1 EnableVpVtl(self, VTL2) once VTL2 runs on another VP => ACCESS_DENIED (0x%lx)", smp_id(), s);
}

static bool enable_vtl2(bool vtl0_first)
{
	struct hv_initial_vp_context ctx;
	unsigned s;
	u64 ps, r;

	if (vtl0_first) {
		s = vsm_enable_partition_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, 2);
		ps = partition_status0();
		report(s == HV_STATUS_SUCCESS && ps == HV_PARTITION_STATUS(0x5, 2),
		       "VTL0: EnablePartitionVtl(VTL2) before VTL1 (VTL0 is the highest enabled VTL below 2) => SUCCESS (0x%x); status 0x%lx", s, ps);
		s = vsm_enable_partition();
		ps = partition_status0();
		report(s == HV_STATUS_SUCCESS && ps == HV_PARTITION_STATUS(ALL_VTLS, 2),
		       "VTL0: EnablePartitionVtl(VTL1) with VTL2 enabled (VTL0 is the highest below 1) => SUCCESS (0x%x); status 0x%lx", s, ps);
	} else {
		s = vsm_enable_partition();
		ps = partition_status0();
		report(s == HV_STATUS_SUCCESS && ps == HV_PARTITION_STATUS(0x3, 2), "VTL0: EnablePartitionVtl(VTL1) => SUCCESS (0x%x); status 0x%lx", s, ps);
		s = vsm_enable_partition_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, 2);
		ps = partition_status0();
		report(s == HV_STATUS_ACCESS_DENIED && ps == HV_PARTITION_STATUS(0x3, 2),
		       "VTL0: EnablePartitionVtl(VTL2) with VTL1 enabled (VTL1 is the highest below 2) => ACCESS_DENIED (0x%x); status 0x%lx", s, ps);
	}
	if ((s = vsm_enable_vp_self()) != HV_STATUS_SUCCESS)
		return report(false, "VTL0: EnableVpVtl(self, VTL1) => 0x%x", s);
	if (!vsm_vtl1_start())
		return report(false, "VTL1 on CPU 0 did not set itself up");
	vtl2_context(0, &ctx);
	s = vsm_enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 2, &ctx);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: EnableVpVtl(self, VTL2) => ACCESS_DENIED (0x%x): VTL1 is the highest enabled VTL below 2", s);
	if (!vtl0_first) {
		r = vsm_call(CMD_ENABLE_VP2, HV_VP_INDEX_SELF, (u64)&ctx, 0);
		report(r == HV_STATUS_INVALID_VTL_STATE, "VTL1: EnableVpVtl(self, VTL2) before the partition has VTL2 => INVALID_VTL_STATE (0x%lx)", r);
		r = vsm_call(CMD_ENABLE_PARTITION2, 0, 0, 0);
		ps = partition_status0();
		report(r == HV_STATUS_SUCCESS && ps == HV_PARTITION_STATUS(ALL_VTLS, 2),
		       "VTL1: EnablePartitionVtl(VTL2) => SUCCESS (0x%lx); VsmPartitionStatus 0x%lx: EnabledVtlSet {0,1,2}, MaximumVtl 2", r, ps);
	}
	r = vsm_call(CMD_ENABLE_PARTITION2, 0, 0, 0);
	report(r == HV_STATUS_VTL_ALREADY_ENABLED, "VTL1: EnablePartitionVtl(VTL2) again => VTL_ALREADY_ENABLED (0x%lx)", r);
	s = vsm_enable_partition_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, 2);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: EnablePartitionVtl(VTL2) once enabled => ACCESS_DENIED (0x%x): not the highest enabled VTL below 2", s);
	r = vsm_call(CMD_ENABLE_VP2, HV_VP_INDEX_SELF, (u64)&ctx, 0);
	u64 st = vp_status0();
	report(r == HV_STATUS_SUCCESS && st == HV_VP_STATUS(0, ALL_VTLS),
	       "VTL1: EnableVpVtl(self, VTL2) => SUCCESS (0x%lx); VsmVpStatus 0x%lx: ActiveVtl 0 (enabling does not switch), EnabledVtlSet {0,1,2}", r, st);
	r = vsm_call(CMD_ENABLE_VP2, HV_VP_INDEX_SELF, (u64)&ctx, 0);
	report(r == HV_STATUS_ACCESS_DENIED, "VTL1: EnableVpVtl(self, VTL2) again => ACCESS_DENIED (0x%lx): VTL2 is enabled on a VP", r);
	vtl2_start_here(NULL);

	for (unsigned cpu = 1; cpu < cpu_count(); cpu++) {
		bool ok = true;
		u32 vp = vtl2_of(cpu)->vp_index;

		if ((s = vsm_enable_vp_from_vtl1(cpu)) != HV_STATUS_SUCCESS)
			return report(false, "VTL1 enabling VTL1 on CPU %u's VP => 0x%x", cpu, s);
		on_cpu(cpu, vtl1_start_here, &ok);
		if (!ok)
			return report(false, "VTL1 on CPU %u did not set itself up", cpu);
		vtl2_context(cpu, &ctx);
		r = vsm_call(CMD_ENABLE_VP2, vp, (u64)&ctx, 0);
		report(r == HV_STATUS_ACCESS_DENIED, "VTL1 on CPU 0: EnableVpVtl(VP %u, VTL2) => ACCESS_DENIED (0x%lx)", vp, r);
		on_cpu(cpu, vtl1_enables_own_vp2, &ctx);
		r = vtl2_call(C2_ENABLE_VP, vp, (u64)&ctx, 0);
		report(r == HV_STATUS_SUCCESS, "VTL2 on CPU 0: EnableVpVtl(VP %u, VTL2) => SUCCESS (0x%lx)", vp, r);
		on_cpu(cpu, vtl2_start_here, NULL);
	}
	return true;
}

// ---------------------------------------------------------------- 2. the VtlCall chain

static u64 gpr_pattern(unsigned k)
{
	return 0x0101010101010101UL * (k + 1) + 0x100 * smp_id();
}

static void chain(void *arg)
{
	unsigned cpu = smp_id();
	struct chain_rec *r = &recs[cpu];
	struct vsm_vp *vp1 = vsm_this_vp();
	struct vtl2_vp *v = vtl2_of(cpu);
	u64 e1 = vp1->entries[HV_VTL_ENTRY_VTL_CALL], e2 = v->entries[HV_VTL_ENTRY_VTL_CALL];
	struct call_frame f;
	u64 *in = (u64 *)&f.r;

	(void)arg;
	memset(r, 0, sizeof(*r));
	u64 status0_before = vp_status0();
	v->arg[0] = v->arg[1] = v->arg[2] = 0;
	v->cmd = C2_CHAIN;
	vsm_request(CMD_TO_VTL2, 0, 0, 0);
	for (unsigned k = 0; k < 15; k++)
		in[k] = gpr_pattern(k);
	struct vsm_regs sent = f.r;
	r->cr3[0] = read_cr3();
	r->rflags[0] = read_rflags();
	vtl_call_frame(&f, vsm_vtl0_call_stub);
	r->rsp[0] = f.rsp - 8;
	u64 status0_after = vp_status0();

	report(vp1->entries[HV_VTL_ENTRY_VTL_CALL] == e1 + 1 && r->reason1 == HV_VTL_ENTRY_VTL_CALL &&
	       v->entries[HV_VTL_ENTRY_VTL_CALL] == e2 + 1 && r->reason2 == HV_VTL_ENTRY_VTL_CALL,
	       "CPU %u: VTL0 → VTL1 → VTL2: one entry each, entry reason %u in VTL1's and %u in VTL2's assist page (1 = VtlCall)", cpu,
	       r->reason1, r->reason2);
	report(status0_before == HV_VP_STATUS(0, ALL_VTLS) && r->status1_before == HV_VP_STATUS(1, ALL_VTLS) &&
	       r->status2 == HV_VP_STATUS(2, ALL_VTLS) && r->status1_after == HV_VP_STATUS(1, ALL_VTLS) && status0_after == HV_VP_STATUS(0, ALL_VTLS),
	       "CPU %u: VsmVpStatus along the chain 0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx: ActiveVtl 0, 1, 2, then VtlReturn to 1, then 0", cpu,
	       status0_before, r->status1_before, r->status2, r->status1_after, status0_after);
	/* VTL2's GetVpRegisters: CR3, RSP, RIP, RFLAGS of VTL0 ([0]) and VTL1 ([1]), 16 bytes each. */
	u64 (*seen)[8] = r->seen;
	report(r->cr3[0] == (u64)kernel_root && r->cr3[1] == (u64)vp1->root && r->cr3[2] == (u64)v->root && r->seen_status[0] == HV_STATUS_SUCCESS &&
	       r->seen_status[1] == HV_STATUS_SUCCESS && seen[0][0] == r->cr3[0] && seen[1][0] == r->cr3[1],
	       "CPU %u: CR3 private: VTL0 0x%lx, VTL1 0x%lx, VTL2 0x%lx; VTL2 reads VTL0's 0x%lx and VTL1's 0x%lx (input VTL 0 and 1)", cpu,
	       r->cr3[0], r->cr3[1], r->cr3[2], seen[0][0], seen[1][0]);
	report(seen[0][2] == r->rsp[0] && seen[1][2] == r->rsp[1] && r->rsp[2] == vtl2_stack_top(v) && r->rsp[0] != r->rsp[1],
	       "CPU %u: RSP private: VTL0 0x%lx and VTL1 0x%lx in their VtlCall stubs (as VTL2 reads them), VTL2 0x%lx (the top of its stack, at entry)",
	       cpu, seen[0][2], seen[1][2], r->rsp[2]);
	report(seen[0][4] == vsm_vtl0_call_stub + STUB_AFTER_VMCALL && seen[1][4] == vsm_vtl1_call_stub + STUB_AFTER_VMCALL,
	       "CPU %u: RIP private: VTL0 at 0x%lx, VTL1 at 0x%lx, each past the VMCALL of its own VtlCall stub (§3.4)", cpu, seen[0][4], seen[1][4]);
	report((r->rflags[0] & RFLAGS_PRIVATE_BITS) == X86_EFLAGS_IF && (seen[0][6] & RFLAGS_PRIVATE_BITS) == X86_EFLAGS_IF &&
	       (r->rflags[1] & RFLAGS_PRIVATE_BITS) == 0 && (seen[1][6] & RFLAGS_PRIVATE_BITS) == 0 &&
	       (r->rflags[2] & RFLAGS_PRIVATE_BITS) == X86_EFLAGS_AC,
	       "CPU %u: RFLAGS private: VTL0 0x%lx (IF), VTL1 0x%lx (neither IF nor AC), VTL2 0x%lx (AC); VTL2 reads 0x%lx and 0x%lx", cpu,
	       r->rflags[0], r->rflags[1], r->rflags[2], seen[0][6], seen[1][6]);

	/* Shared GPRs: RDX, RBX, RBP, RSI, RDI, R8-R15 (the stubs use RAX and RCX). */
	bool up1 = true, up2 = true, down = true;
	const u64 *got1 = (const u64 *)&r->vtl1_in, *got2 = (const u64 *)&r->vtl2_in, *s = (const u64 *)&sent, *back = (const u64 *)&f.r;
	for (unsigned k = 2; k < 15; k++) {
		u64 want2 = k == 13 ? (VTL1_MARK | cpu) : s[k];
		u64 want0 = k == 3 ? ~s[k] : k == 13 ? (VTL1_MARK | cpu) : k == 14 ? (VTL2_MARK | cpu) : s[k];
		up1 &= got1[k] == s[k];
		up2 &= got2[k] == want2;
		down &= back[k] == want0 && ((const u64 *)&r->vtl1_back)[k] == want0;
	}
	report(up1 && up2, "CPU %u: shared GPRs up: VTL1 saw VTL0's RDX, RBX, RBP, RSI, RDI, R8-R15; VTL2 saw them with VTL1's R14 0x%lx", cpu,
	       r->vtl2_in.r14);
	report(down && r->vtl1_back.rax == (VTL2_RAX | cpu) && r->vtl1_back.rcx == (VTL2_RCX | cpu) && f.r.rax == (VTL2_RAX | cpu) && f.r.rcx == 0,
	       "CPU %u: shared GPRs down: VTL2's RBX 0x%lx and R15 0x%lx reach VTL1 and VTL0; RAX 0x%lx RCX 0x%lx from VTL2's control area in "
	       "VTL1, RAX 0x%lx RCX 0x%lx from VTL1's in VTL0", cpu, f.r.rbx, f.r.r15, r->vtl1_back.rax, r->vtl1_back.rcx, f.r.rax, f.r.rcx);

	u64 ud = vtl2_call(C2_CALL_UP, 0, 0, 0);
	report(ud == 1 && v->results[0] == HV_VP_STATUS(2, ALL_VTLS) && v->last_reason == HV_VTL_ENTRY_VTL_CALL,
	       "CPU %u: VTL2: VtlCall from the highest VTL => #UD at its VMCALL (%lu taken at VTL2's stub + 8); still in VTL2 (VsmVpStatus 0x%lx)",
	       cpu, ud, v->results[0]);
}

// ---------------------------------------------------------------- 3. protections and intercepts

static bool check_message(const char *what, const struct hv_message *m, unsigned access, u64 gpa, const u8 *insn, unsigned len, u16 state)
{
	const struct hv_memory_intercept *p = (const void *)m->payload;
	bool ok = m->type == HV_MESSAGE_TYPE_GPA_INTERCEPT && m->payload_size == HV_MEMORY_INTERCEPT_BYTES && p->header.vp_index == hv_vp_index() &&
		  (p->header.insn_length_cr8 & 0xf) == len && p->header.access_type == access && p->header.execution_state == state && p->header.rip == (u64)insn &&
		  p->cache_type == HV_CACHE_TYPE_WB && p->insn_byte_count == len && p->access_info == FULL_INFO && p->gva == gpa &&
		  p->gpa == gpa && memcmp(p->insn_bytes, insn, len) == 0;

	if (!ok)
		printf("  %s: type 0x%x size %u VP %u insn len %u access %u state 0x%x RIP 0x%lx cache %u bytes %u info 0x%x GVA 0x%lx GPA 0x%lx\n",
		       what, m->type, m->payload_size, p->header.vp_index, p->header.insn_length_cr8 & 0xf, p->header.access_type, p->header.execution_state, p->header.rip,
		       p->cache_type, p->insn_byte_count, p->access_info, p->gva, p->gpa);
	return ok;
}

static void enable_protections(void)
{
	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	report(s == HV_STATUS_SUCCESS, "VTL1: VsmPartitionConfig EnableVtlProtection, default RWX => SUCCESS (0x%lx)", s);
	struct vtl2_vp *v = vtl2_of(smp_id());
	u64 cfg = vtl2_call(C2_SET_CONFIG, PROTECTION_CONFIG, 0, 0);
	report(v->results[0] == HV_STATUS_SUCCESS && cfg == PROTECTION_CONFIG,
	       "VTL2: its own VsmPartitionConfig EnableVtlProtection, default RWX => SUCCESS (0x%lx), reads 0x%lx", v->results[0], cfg);
	s = vsm_call(CMD_GET_REG, HV_INPUT_VTL(2), HV_REG_VSM_PARTITION_CONFIG, 0);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL1: GetVpRegisters(VsmPartitionConfig) with input VTL2 (above it) => ACCESS_DENIED (0x%lx)", s);
}

static void protections(void *arg)
{
	unsigned cpu = smp_id();
	struct vsm_vp *vp1 = vsm_this_vp();
	struct vtl2_vp *v = vtl2_of(cpu);
	struct captures *c1 = &cap1[cpu], *c2 = &v->cap;
	u64 *a = (u64 *)((u8 *)alloc_page() + OFFSET), *b = (u64 *)((u8 *)alloc_page() + OFFSET), *c = (u64 *)((u8 *)alloc_page() + OFFSET);
	unsigned wlen = write_at_end - write_at_insn, rlen = read_at_end - read_at_insn;
	u64 r;

	(void)arg;
	*a = 0xa0;
	*b = 0xb0;
	*c = 0xc0;
	r = vtl2_call(C2_PROTECT, PAGE_OF(a), HV_MAP_GPA_READABLE, 0);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "CPU %u: VTL2: ModifyVtlProtectionMask(R) of page A => SUCCESS, 1 rep (0x%lx)", cpu, r);
	r = vsm_call(VSM_CMD_PROTECT_PAGE, PAGE_OF(b), 0, 0);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "CPU %u: VTL1: ModifyVtlProtectionMask(no access) of page B => SUCCESS, 1 rep (0x%lx)", cpu, r);
	u64 r2 = vtl2_call(C2_PROTECT, PAGE_OF(c), HV_MAP_GPA_READABLE, 0);
	r = vsm_call(VSM_CMD_PROTECT_PAGE, PAGE_OF(c), 0, 0);
	report(result_is(r2, HV_STATUS_SUCCESS, 1) && result_is(r, HV_STATUS_SUCCESS, 1),
	       "CPU %u: page C: VTL2 read-only (0x%lx), VTL1 no access (0x%lx)", cpu, r2, r);

	/* (a) VTL0 writes A: VTL2's protection, VTL2's intercept; VTL1 is not involved. */
	c1->count = c2->count = 0;
	u64 i1 = vp1->entries[HV_VTL_ENTRY_INTERCEPT], i2 = v->entries[HV_VTL_ENTRY_INTERCEPT];
	write_at(a, 0xa1);
	report(v->entries[HV_VTL_ENTRY_INTERCEPT] == i2 + 1 && v->last_reason == HV_VTL_ENTRY_INTERCEPT && c2->count == 1 &&
	       c2->c[0].vp_status == HV_VP_STATUS(2, ALL_VTLS) && vp1->entries[HV_VTL_ENTRY_INTERCEPT] == i1 && c1->count == 0,
	       "CPU %u: VTL0 write to A: one VTL2 entry with reason 3 (VsmVpStatus 0x%lx there), %u message(s) on VTL2's SINT0; VTL1 not entered",
	       cpu, c2->c[0].vp_status, c2->count);
	report(check_message("VTL0 write to A", &c2->c[0].msg, HV_INTERCEPT_ACCESS_WRITE, (u64)a, write_at_insn, wlen, exec_state(0)) && *a == 0xa1,
	       "CPU %u: VTL2's message: GpaIntercept, write, ExecutionState 0x%x (VTL field 0), RIP, GPA 0x%lx; the write then completed",
	       cpu, exec_state(0), (u64)a);

	/* (b) VTL1 writes A: VTL2's protection constrains VTL1 too; after VTL2's VtlReturn, VTL1 goes on (return stack). */
	r = vtl2_call(C2_PROTECT, PAGE_OF(a), HV_MAP_GPA_READABLE, 0);
	c1->count = c2->count = 0;
	i1 = vp1->entries[HV_VTL_ENTRY_INTERCEPT];
	i2 = v->entries[HV_VTL_ENTRY_INTERCEPT];
	u64 got = vsm_call(CMD_WRITE, (u64)a, 0xa2, 0);
	u64 st = vp_status0();
	report(result_is(r, HV_STATUS_SUCCESS, 1) && v->entries[HV_VTL_ENTRY_INTERCEPT] == i2 + 1 && c2->count == 1 &&
	       c2->c[0].vp_status == HV_VP_STATUS(2, ALL_VTLS) && vp1->entries[HV_VTL_ENTRY_INTERCEPT] == i1 && got == 0xa2 &&
	       st == HV_VP_STATUS(0, ALL_VTLS),
	       "CPU %u: VTL1 write to A (read-only again: 0x%lx): one VTL2 entry with reason 3 (VsmVpStatus 0x%lx), VTL1 resumed and read 0x%lx, VTL0 "
	       "back (0x%lx)", cpu, r, c2->c[0].vp_status, got, st);
	report(check_message("VTL1 write to A", &c2->c[0].msg, HV_INTERCEPT_ACCESS_WRITE, (u64)a, write_at_insn, wlen, recs[cpu].exec_state1),
	       "CPU %u: VTL2's message: GpaIntercept, write, ExecutionState 0x%x (VTL field 1), RIP, GPA 0x%lx", cpu,
	       (unsigned)recs[cpu].exec_state1, (u64)a);

	/* (c) VTL0 reads B: VTL1's protection, VTL1's intercept only. */
	c1->count = c2->count = 0;
	i1 = vp1->entries[HV_VTL_ENTRY_INTERCEPT];
	i2 = v->entries[HV_VTL_ENTRY_INTERCEPT];
	u64 val = read_at(b);
	report(vp1->entries[HV_VTL_ENTRY_INTERCEPT] == i1 + 1 && c1->count == 1 && v->entries[HV_VTL_ENTRY_INTERCEPT] == i2 && c2->count == 0 &&
	       val == 0xb0 &&
	       check_message("VTL0 read of B", &c1->c[0].msg, HV_INTERCEPT_ACCESS_READ, (u64)b, read_at_insn, rlen, exec_state(0)),
	       "CPU %u: VTL0 read of B: one VTL1 entry with reason 3, its message (read, VTL field 0, GPA 0x%lx); VTL2 not entered; read 0x%lx",
	       cpu, (u64)b, val);

	/* (d) VTL0 writes C, which VTL1 and VTL2 both deny: VTL1 first (§3.10), then VTL2 when the write runs again. */
	c1->count = c2->count = 0;
	i1 = vp1->entries[HV_VTL_ENTRY_INTERCEPT];
	i2 = v->entries[HV_VTL_ENTRY_INTERCEPT];
	write_at(c, 0xc1);
	report(vp1->entries[HV_VTL_ENTRY_INTERCEPT] == i1 + 1 && c1->count == 1 && v->entries[HV_VTL_ENTRY_INTERCEPT] == i2 + 1 && c2->count == 1 &&
	       c1->c[0].seq + 1 == c2->c[0].seq && *c == 0xc1,
	       "CPU %u: VTL0 write to C (VTL1: no access, VTL2: read-only): VTL1 notified first (intercept %u), VTL2 next (intercept %u); "
	       "the write then completed", cpu, c1->c[0].seq, c2->c[0].seq);
	report(check_message("VTL0 write to C, VTL1", &c1->c[0].msg, HV_INTERCEPT_ACCESS_WRITE, (u64)c, write_at_insn, wlen, exec_state(0)) &&
	       check_message("VTL0 write to C, VTL2", &c2->c[0].msg, HV_INTERCEPT_ACCESS_WRITE, (u64)c, write_at_insn, wlen, exec_state(0)),
	       "CPU %u: both messages: GpaIntercept, write, VTL field 0, GPA 0x%lx", cpu, (u64)c);
}

// ---------------------------------------------------------------- 4. VSM registers from VTL2

static void registers(void *arg)
{
	unsigned cpu = smp_id();
	struct vtl2_vp *v = vtl2_of(cpu);
	u64 n;

	(void)arg;
	n = vtl2_call(C2_SECURE, 0, 0, 0);
	const unsigned *st = v->st;
	bool ok = n == 10;
	for (unsigned i = 0; i < 7; i++)
		ok &= st[i] == HV_STATUS_SUCCESS;
	report(ok && v->results[1] == HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED && v->results[2] == HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED &&
	       v->results[3] == 0 && v->results[4] == 0,
	       "CPU %u: VTL2: SecureConfigVtl0 and Vtl1 TlbLocked => SUCCESS, read back 0x%lx and 0x%lx; VTL1's SecureConfigVtl0 (input VTL1) "
	       "still 0x%lx; Vtl1 cleared reads 0x%lx", cpu, v->results[1], v->results[2], v->results[3], v->results[4]);
	report(st[7] == HV_STATUS_ACCESS_DENIED && st[8] == HV_STATUS_INVALID_REGISTER_VALUE && st[9] == HV_STATUS_SUCCESS &&
	       v->results[5] == HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED,
	       "CPU %u: VTL2: SecureConfigVtl2 (not below it) => ACCESS_DENIED (0x%x); SecureConfigVtl0 MbecEnabled (no MBEC) => "
	       "INVALID_REGISTER_VALUE (0x%x), still 0x%lx", cpu, st[7], st[8], v->results[5]);
	n = vtl2_call(C2_SECURE_AFTER, 0, 0, 0);
	report(n == HV_STATUS_SUCCESS && v->results[1] == 0,
	       "CPU %u: VTL2, next entry: SecureConfigVtl0 reads 0x%lx: the VtlReturn released VTL2's lock on VTL0's TLB (§3.9)", cpu, v->results[1]);

	u64 kgs0 = rdmsr(MSR_KERNEL_GS_BASE);
	vtl2_call(C2_REGS, 0, 0, 0);
	report(st[0] == HV_STATUS_SUCCESS && st[1] == HV_STATUS_SUCCESS && v->results[1] == (VTL1_KGS | cpu) && recs[cpu].kgs1 == (VTL1_KGS | cpu),
	       "CPU %u: VTL2: SetVpRegisters(KernelGsBase 0x%lx) with input VTL1 => SUCCESS, GetVpRegisters reads it back, VTL1's RDMSR "
	       "reads 0x%lx", cpu, VTL1_KGS | cpu, recs[cpu].kgs1);
	report(st[2] == HV_STATUS_SUCCESS && v->results[2] == v->results[3] && v->results[2] != (VTL1_KGS | cpu) && rdmsr(MSR_KERNEL_GS_BASE) == kgs0,
	       "CPU %u: KernelGsBase is private: VTL2's own 0x%lx (input VTL2 = its RDMSR), VTL0's 0x%lx unchanged", cpu, v->results[2], kgs0);
	report(st[3] == HV_STATUS_INVALID_PARAMETER && st[4] == HV_STATUS_SUCCESS && v->results[4] == HV_VP_STATUS(2, ALL_VTLS),
	       "CPU %u: VTL2: input VTL 3 (above MaximumVtl 2) => INVALID_PARAMETER (0x%x); VsmVpStatus via input VTL1 is the VP's: 0x%lx",
	       cpu, st[3], v->results[4]);
	unsigned g = vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(2), HV_REG_CR3, NULL);
	report(g == HV_STATUS_ACCESS_DENIED, "CPU %u: VTL0: GetVpRegisters(CR3) with input VTL2 => ACCESS_DENIED (0x%x)", cpu, g);
	report(v->entries[HV_VTL_ENTRY_INTERRUPT] == 0 && v->intercepts_without_message == 0,
	       "CPU %u: VTL2 was never entered for an interrupt, and found a message at every intercept entry", cpu);
}

// ---------------------------------------------------------------- main

/* Without --max-vtl 2: MaximumVtl 1 and no VTL2. */
static __noreturn void no_vtl2(u64 ps)
{
	report(ps == HV_PARTITION_STATUS(0x1, 1), "VsmPartitionStatus 0x%lx: EnabledVtlSet {0}, MaximumVtl 1", ps);
	unsigned s = vsm_enable_partition_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, 2);
	report(s == HV_STATUS_ACCESS_DENIED, "VTL0: EnablePartitionVtl(VTL2) above MaximumVtl 1 => ACCESS_DENIED (0x%x)", s);
	report_skip("MaximumVtl 1 (run with --max-vtl 2): no VTL2 to test");
	report_summary();
}

int main(int argc, char **argv)
{
	bool vtl0_first = argc > 1 && strcmp(argv[1], "vtl0-enables-vtl2") == 0;
	u64 offsets;
	unsigned s;

	vsm_require(false);
	vsm_register_command(CMD_TO_VTL2, vtl1_to_vtl2);
	vsm_register_command(CMD_ENABLE_PARTITION2, vtl1_enable_partition2);
	vsm_register_command(CMD_ENABLE_VP2, vtl1_enable_vp2);
	vsm_register_command(CMD_WRITE, vtl1_write);
	vsm_register_command(CMD_GET_REG, vtl1_get_reg);
	vsm_register_message_handler(vtl1_message);
	vsm_init();
	vtl0_hvc = vsm_vtl0_hvc();
	if ((s = vsm_read_code_page_offsets(&offsets)) != HV_STATUS_SUCCESS) {
		report(false, "GetVpRegisters(VsmCodePageOffsets) => 0x%x", s);
		report_summary();
	}
	u64 ps = partition_status0();
	if (HV_PARTITION_STATUS_MAXIMUM_VTL(ps) != 2)
		no_vtl2(ps);
	report(ps == HV_PARTITION_STATUS(0x1, 2), "VsmPartitionStatus 0x%lx: EnabledVtlSet {0}, MaximumVtl 2", ps);
	report_info("%u CPUs; %s", cpu_count(), vtl0_first ? "VTL0 enables VTL2 for the partition" : "VTL1 enables VTL2 for the partition");
	vtl2_hypercall_page = alloc_page();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		v2s[cpu] = vtl2_alloc(cpu);
	if (!enable_vtl2(vtl0_first))
		report_summary();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, chain, NULL);
	enable_protections();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, protections, NULL);
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, registers, NULL);
	report_summary();
}
