/*
 * Virtual Secure Mode, step 1: enabling VTL1 and switching to it and back
 * (tlfs-vsm-facts.md §2.11-§2.15, §3.1-§3.7).
 *
 * VTL0 (this kernel) reads HvRegisterVsmCodePageOffsets, enables VTL1 for
 * the partition and for its VP with an initial context pointing at
 * vtl1_entry (code in this image, its own stack, page tables and RFLAGS),
 * then VtlCalls into it:
 *  1. setup: VTL1 sets its own guest OS ID, hypercall page and VP assist
 *     page (all per VTL, §3.2), reads its code-page offsets, returns;
 *  2. VTL1 checks the entry reason (1, §3.4) in its assist page, the shared
 *     registers VTL0 passed (§3.2), its private CR3/RSP/RFLAGS, then
 *     changes shared and private state and makes a VtlReturn that loads RAX
 *     and RCX from its VTL control area (§3.3); VTL0 checks what was shared
 *     and that its own CR3, FS base, TPR and RFLAGS were not touched;
 *  3. the second VtlCall finds VTL1's private state as VTL1 left it and the
 *     VtlReturn fields saved again on entry; VTL1 returns "fast", so
 *     VTL0 sees RAX/RCX as the stub left them;
 *  4. VTL1's own negative cases (VtlCall from the highest VTL, a bad
 *     VtlReturn input, enabling again, write-once VsmPartitionConfig).
 * Negative cases from VTL0, each with its TLFS status: VtlCall/VtlReturn
 * #UD, EnablePartitionVtl (bad partition, bad VTL, above the maximum,
 * twice), EnableVpVtl (before the partition, bad VP, VTL0, real mode, from
 * VTL0 once VTL1 runs), Get/SetVpRegisters (input VTL, unknown and
 * read-only registers).
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm; without VSM every
 * check is skipped (QEMU TCG has no Hyper-V).
 */
#include "libguest.h"
#include "hyperv.h"

/* Call codes (§2.1), statuses (§1.6), register names (§3.7), HV_INPUT_VTL (§2.11). */
#define HVCALL_ENABLE_PARTITION_VTL 0x000d
#define HVCALL_ENABLE_VP_VTL 0x000f
#define HVCALL_VTL_CALL 0x0011
#define HVCALL_VTL_RETURN 0x0012
#define HVCALL_GET_VP_REGISTERS 0x0050
#define HVCALL_SET_VP_REGISTERS 0x0051
#define HV_STATUS_INVALID_PARTITION_ID 0x000d
#define HV_STATUS_INVALID_VP_INDEX 0x000e
#define HV_STATUS_INVALID_REGISTER_VALUE 0x0050
#define HV_STATUS_INVALID_VTL_STATE 0x0051
#define HV_STATUS_VTL_ALREADY_ENABLED 0x0086
#define HV_STATUS_UNKNOWN_REGISTER_NAME 0x0087
#define HV_VP_INDEX_SELF 0xfffffffeU
#define HV_INPUT_VTL(vtl) (0x10 | (vtl))
#define HV_INPUT_VTL_SELF 0

#define REG_CS 0x00060001
#define REG_SS 0x00060002
#define REG_DS 0x00060003
#define REG_ES 0x00060000
#define REG_LDTR 0x00060006
#define REG_TR 0x00060007
#define REG_IDTR 0x00070000
#define REG_GDTR 0x00070001
#define REG_CR0 0x00040000
#define REG_CR3 0x00040002
#define REG_CR4 0x00040003
#define REG_EFER 0x00080001
#define REG_VSM_CODE_PAGE_OFFSETS 0x000d0002
#define REG_VSM_VP_STATUS 0x000d0003
#define REG_VSM_PARTITION_STATUS 0x000d0004
#define REG_VSM_PARTITION_CONFIG 0x000d0007
#define REG_VSM_VP_SECURE_CONFIG_VTL0 0x000d0010

#define VTL_ENTRY_REASON_VTL_CALL 1
#define MSR_PAT 0x277
#define VTL1_STACK_PAGES 4

/* HV_X64_SEGMENT_REGISTER, HV_X64_TABLE_REGISTER and HV_INITIAL_VP_CONTEXT (§2.13). */
struct hv_segment { u64 base; u32 limit; u16 selector; u16 attributes; };
struct hv_table { u16 pad[3]; u16 limit; u64 base; };
struct hv_initial_vp_context {
	u64 rip, rsp, rflags;
	struct hv_segment cs, ds, es, fs, gs, ss, tr, ldtr;
	struct hv_table idtr, gdtr;
	u64 efer, cr0, cr3, cr4, pat;
};
_Static_assert(sizeof(struct hv_initial_vp_context) == 224, "HV_INITIAL_VP_CONTEXT is 224 bytes");

/* HV_VP_VTL_CONTROL in the VP assist page (§3.3). */
struct hv_vtl_control {
	u32 apic_assist, reserved0;
	u32 entry_reason;
	u8 vina_status, reserved1;
	u16 reserved2;
	u64 vtl_return_rax, vtl_return_rcx;
};

/* The GPRs a VTL switch carries, in the order vtl_call_regs and vtl1_entry store them. */
struct vtl_regs { u64 rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15; };

/* One VTL's way to make hypercalls: its hypercall page and buffers (the page is per VTL, §1.4). */
struct hvc { void *page; u64 *in; u64 *out; };

/* Shared by both VTLs (one memory): what VTL1 is asked to do, and the addresses of the stubs. */
enum { CMD_SETUP, CMD_CHECK1, CMD_CHECK2, CMD_NEGATIVE };
static volatile int vtl1_cmd;
struct vtl_regs vtl1_seen, vtl1_out;
u64 vtl0_call_addr, vtl1_return_addr;
static u64 vtl0_return_addr, vtl1_call_addr;
static struct hvc vtl0_hvc, vtl1_hvc;
static struct hv_vtl_control *vtl1_control;
static u64 *vtl1_root, vtl0_cr3;
static u8 *vtl1_stack;

#define VTL1_FS_BASE 0x2000000UL
#define VTL0_FS_BASE 0x1000000UL
#define RET_RAX 0xa1a1a1a1a1a1a1a1UL
#define RET_RCX 0xc1c1c1c1c1c1c1c1UL

/*
 * VTL0: load the shared GPRs from *r, VtlCall (control input 0 in RCX, the
 * stub at hypercall page + VtlCallOffset), store every GPR back into *r.
 */
void vtl_call_regs(struct vtl_regs *r);
asm(".text\n"
    ".globl vtl_call_regs\n"
    "vtl_call_regs:\n"
    "	push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
    "	push %rdi\n"
    "	mov 16(%rdi), %rdx; mov 24(%rdi), %rbx; mov 32(%rdi), %rbp; mov 40(%rdi), %rsi\n"
    "	mov 56(%rdi), %r8; mov 64(%rdi), %r9; mov 72(%rdi), %r10; mov 80(%rdi), %r11\n"
    "	mov 88(%rdi), %r12; mov 96(%rdi), %r13; mov 104(%rdi), %r14; mov 112(%rdi), %r15\n"
    "	mov 48(%rdi), %rdi\n"
    "	xor %ecx, %ecx\n"
    "	call *vtl0_call_addr(%rip)\n"
    "	xchg %rdi, (%rsp)\n"
    "	mov %rax, 0(%rdi); mov %rcx, 8(%rdi); mov %rdx, 16(%rdi); mov %rbx, 24(%rdi)\n"
    "	mov %rbp, 32(%rdi); mov %rsi, 40(%rdi)\n"
    "	mov %r8, 56(%rdi); mov %r9, 64(%rdi); mov %r10, 72(%rdi); mov %r11, 80(%rdi)\n"
    "	mov %r12, 88(%rdi); mov %r13, 96(%rdi); mov %r14, 104(%rdi); mov %r15, 112(%rdi)\n"
    "	pop %rax; mov %rax, 48(%rdi)\n"
    "	pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
    "	ret\n");

/*
 * VTL1's loop: every entry stores the GPRs it found into vtl1_seen, runs
 * vtl1_main() (which returns the VtlReturn control input: 0, or 1 for a
 * fast return), loads vtl1_out into the GPRs the stub does not use, and
 * VtlReturns. The next VtlCall resumes after that call.
 */
u64 vtl1_main(void);
void vtl1_entry(void);
asm(".text\n"
    ".globl vtl1_entry\n"
    "vtl1_entry:\n"
    "1:	mov %rax, vtl1_seen+0(%rip); mov %rcx, vtl1_seen+8(%rip); mov %rdx, vtl1_seen+16(%rip)\n"
    "	mov %rbx, vtl1_seen+24(%rip); mov %rbp, vtl1_seen+32(%rip); mov %rsi, vtl1_seen+40(%rip)\n"
    "	mov %rdi, vtl1_seen+48(%rip); mov %r8, vtl1_seen+56(%rip); mov %r9, vtl1_seen+64(%rip)\n"
    "	mov %r10, vtl1_seen+72(%rip); mov %r11, vtl1_seen+80(%rip); mov %r12, vtl1_seen+88(%rip)\n"
    "	mov %r13, vtl1_seen+96(%rip); mov %r14, vtl1_seen+104(%rip); mov %r15, vtl1_seen+112(%rip)\n"
    "	call vtl1_main\n"
    "	mov %rax, %rcx\n"
    "	mov vtl1_out+16(%rip), %rdx; mov vtl1_out+24(%rip), %rbx; mov vtl1_out+32(%rip), %rbp\n"
    "	mov vtl1_out+40(%rip), %rsi; mov vtl1_out+48(%rip), %rdi; mov vtl1_out+56(%rip), %r8\n"
    "	mov vtl1_out+64(%rip), %r9; mov vtl1_out+72(%rip), %r10; mov vtl1_out+80(%rip), %r11\n"
    "	mov vtl1_out+88(%rip), %r12; mov vtl1_out+96(%rip), %r13; mov vtl1_out+104(%rip), %r14\n"
    "	mov vtl1_out+112(%rip), %r15\n"
    "	call *vtl1_return_addr(%rip)\n"
    "	jmp 1b\n");

static u64 hvc_call(const struct hvc *h, u64 control)
{
	register u64 r8 asm("r8") = (u64)h->out;
	u64 rdx = (u64)h->in, rcx = control, result;

	asm volatile("call *%[page]"
		     : "=a"(result), "+c"(rcx), "+d"(rdx), "+r"(r8)
		     : [page] "r"(h->page)
		     : "cc", "memory", "r9", "r10", "r11");
	return result;
}

static unsigned status_of(u64 r) { return HV_RESULT_STATUS(r); }

/* GetVpRegisters of one register of this VP; returns the status, the value in *value. */
static unsigned get_reg(const struct hvc *h, u8 input_vtl, u32 name, void *value)
{
	h->in[0] = HV_PARTITION_ID_SELF;
	h->in[1] = HV_VP_INDEX_SELF | ((u64)input_vtl << 32);
	h->in[2] = name;
	h->out[0] = h->out[1] = ~0UL;
	unsigned s = status_of(hvc_call(h, HVCALL_GET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(1)));
	if (value)
		memcpy(value, h->out, 16);
	return s;
}

static u64 get_u64(const struct hvc *h, u32 name)
{
	u64 v[2];
	unsigned s = get_reg(h, HV_INPUT_VTL_SELF, name, v);

	if (s != HV_STATUS_SUCCESS)
		abort_msg("GetVpRegisters(0x%x) failed with status 0x%x", name, s);
	return v[0];
}

/* SetVpRegisters of one 64-bit register of this VP. */
static unsigned set_reg(const struct hvc *h, u8 input_vtl, u32 name, u64 value)
{
	h->in[0] = HV_PARTITION_ID_SELF;
	h->in[1] = HV_VP_INDEX_SELF | ((u64)input_vtl << 32);
	h->in[2] = name;
	h->in[3] = 0;
	h->in[4] = value;
	h->in[5] = 0;
	return status_of(hvc_call(h, HVCALL_SET_VP_REGISTERS | HV_HYPERCALL_REP_COUNT(1)));
}

static unsigned enable_partition_vtl(u64 partition, u8 vtl)
{
	vtl0_hvc.in[0] = partition;
	vtl0_hvc.in[1] = vtl;
	return status_of(hvc_call(&vtl0_hvc, HVCALL_ENABLE_PARTITION_VTL));
}

static unsigned enable_vp_vtl(const struct hvc *h, u64 partition, u32 vp, u8 vtl, const struct hv_initial_vp_context *ctx)
{
	h->in[0] = partition;
	h->in[1] = vp | ((u64)vtl << 32);
	memcpy(&h->in[2], ctx, sizeof(*ctx));
	return status_of(hvc_call(h, HVCALL_ENABLE_VP_VTL));
}

static u64 rflags_set(u64 set)
{
	u64 f = read_rflags() | set;

	asm volatile("push %0; popfq" : : "r"(f) : "cc", "memory");
	return f;
}

/* Calls the stub at `addr` with RCX = `input`, as VtlCall/VtlReturn callers do (RAX, RCX clobbered). */
static void call_stub(u64 addr, u64 input)
{
	asm volatile("call *%0" : "+r"(addr), "+c"(input) : : "rax", "rdx", "r8", "r9", "r10", "r11", "cc", "memory");
}

struct stub_arg { u64 addr, input; };
static void stub_fn(void *p) { struct stub_arg *a = p; call_stub(a->addr, a->input); }

/*
 * Whether calling the stub raised #UD at its VMCALL: the #UD's RIP is inside
 * the stub (the call did not complete and return). The stub layout is the
 * hypervisor's (§3.6); ours has the VMCALL at +8.
 */
static bool stub_ud(u64 addr, u64 input)
{
	struct stub_arg a = { addr, input };
	struct ex_info ex;

	return expect_exception(stub_fn, &a, &ex) && ex.vector == 6 && ex.rip >= addr && ex.rip < addr + 16;
}

// ---------------------------------------------------------------- VTL1

static void vtl1_setup(void)
{
	hv_set_guest_os_id(); /* VTL1's own GUEST_OS_ID (per VTL) */
	wrmsr(HV_X64_MSR_HYPERCALL, (u64)vtl1_hvc.page | HV_HYPERCALL_ENABLE);
	wrmsr(HV_X64_MSR_VP_ASSIST_PAGE, (u64)vtl1_control | HV_PAGE_MSR_ENABLE);
	u64 off = get_u64(&vtl1_hvc, REG_VSM_CODE_PAGE_OFFSETS);
	vtl1_call_addr = (u64)vtl1_hvc.page + (off & 0xfff);
	vtl1_return_addr = (u64)vtl1_hvc.page + ((off >> 12) & 0xfff);
	wrmsr(MSR_FS_BASE, VTL1_FS_BASE);
	write_cr8(5);
	rflags_set(X86_EFLAGS_AC);
}

static u64 pattern(unsigned i) { return 0x0101010101010101UL * (i + 1); }

static void vtl1_check1(void)
{
	report_prefix("VTL1");
	report(vtl1_control->entry_reason == VTL_ENTRY_REASON_VTL_CALL, "entry reason %u = 1 (VtlCall) in its VP assist page",
	       vtl1_control->entry_reason);
	report(vtl1_seen.rax == 0 && vtl1_seen.rcx == HVCALL_VTL_CALL,
	       "RAX = 0x%lx, RCX = 0x%lx: the VtlCall stub's input and code", vtl1_seen.rax, vtl1_seen.rcx);
	report(vtl1_control->vtl_return_rax == 0 && vtl1_control->vtl_return_rcx == HVCALL_VTL_CALL,
	       "VTL0's RAX/RCX at the call (0x%lx, 0x%lx) are saved in the VTL control area",
	       vtl1_control->vtl_return_rax, vtl1_control->vtl_return_rcx);
	const u64 *seen = &vtl1_seen.rdx;
	bool shared = true;
	for (unsigned i = 0; i < 13; i++)
		shared &= seen[i] == pattern(i);
	report(shared, "RDX, RBX, RBP, RSI, RDI, R8-R15 are VTL0's (shared)");
	report(read_cr3() == (u64)vtl1_root, "CR3 = 0x%lx, its own (private)", read_cr3());
	u64 rsp = read_rsp();
	report(rsp > (u64)vtl1_stack && rsp <= (u64)vtl1_stack + VTL1_STACK_PAGES * PAGE_SIZE, "RSP 0x%lx is on its own stack", rsp);
	u64 f = read_rflags();
	report((f & X86_EFLAGS_AC) && !(f & X86_EFLAGS_IF), "RFLAGS 0x%lx: its AC from setup, IF = 0 from the context", f);
	report(rdmsr(MSR_FS_BASE) == VTL1_FS_BASE && read_cr8() == 5, "FS base 0x%lx and TPR %lu are its own", rdmsr(MSR_FS_BASE), read_cr8());
	u64 st = get_u64(&vtl1_hvc, REG_VSM_VP_STATUS);
	report((st & 0xf) == 1 && ((st >> 16) & 0xffff) == 0x3, "VsmVpStatus 0x%lx: active VTL 1, VTLs {0, 1} enabled", st);
	u64 cr3_0[2] = { 0, 0 };
	unsigned s = get_reg(&vtl1_hvc, HV_INPUT_VTL(0), REG_CR3, cr3_0);
	report(s == HV_STATUS_SUCCESS && cr3_0[0] == vtl0_cr3, "GetVpRegisters(VTL0's CR3) = 0x%lx (0x%x)", cr3_0[0], s);
	/* Hand back: new shared registers, and RAX/RCX through the VTL control area (non-fast return, §3.3). */
	u64 *out = &vtl1_out.rdx;
	for (unsigned i = 0; i < 13; i++)
		out[i] = ~pattern(i);
	vtl1_control->vtl_return_rax = RET_RAX;
	vtl1_control->vtl_return_rcx = RET_RCX;
	report_prefix(NULL);
}

static void vtl1_check2(void)
{
	report_prefix("VTL1, second entry");
	report(vtl1_control->entry_reason == VTL_ENTRY_REASON_VTL_CALL, "entry reason %u = 1", vtl1_control->entry_reason);
	u64 f = read_rflags();
	report((f & X86_EFLAGS_AC) && !(f & X86_EFLAGS_IF), "RFLAGS 0x%lx kept (AC set, IF clear)", f);
	report(read_cr3() == (u64)vtl1_root && rdmsr(MSR_FS_BASE) == VTL1_FS_BASE && read_cr8() == 5,
	       "CR3, FS base and TPR kept");
	report(vtl1_control->vtl_return_rax == 0 && vtl1_control->vtl_return_rcx == HVCALL_VTL_CALL,
	       "VtlReturnX64Rax/Rcx hold VTL0's RAX/RCX of this second call (saved on every VtlCall entry)");
	report_prefix(NULL);
}

static void vtl1_negative(void)
{
	report_prefix("VTL1");
	report(stub_ud(vtl1_call_addr, 0), "VtlCall from the highest enabled VTL => #UD");
	report(stub_ud(vtl1_return_addr, 2), "VtlReturn with input bit 1 set => #UD");
	struct hv_initial_vp_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	unsigned s = enable_vp_vtl(&vtl1_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
	report(s == HV_STATUS_VTL_ALREADY_ENABLED, "EnableVpVtl(self, VTL1) => VTL_ALREADY_ENABLED (0x%x)", s);
	s = set_reg(&vtl1_hvc, HV_INPUT_VTL_SELF, REG_VSM_PARTITION_CONFIG, 0x1f);
	u64 cfg[2] = { 0, 0 };
	unsigned g = get_reg(&vtl1_hvc, HV_INPUT_VTL_SELF, REG_VSM_PARTITION_CONFIG, cfg);
	report(s == HV_STATUS_SUCCESS && g == HV_STATUS_SUCCESS && cfg[0] == 0x1f,
	       "VsmPartitionConfig = EnableVtlProtection, default mask RWX (0x%x, reads 0x%lx)", s, cfg[0]);
	s = set_reg(&vtl1_hvc, HV_INPUT_VTL_SELF, REG_VSM_PARTITION_CONFIG, 0x1e);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "clearing EnableVtlProtection => INVALID_REGISTER_VALUE (0x%x)", s);
	u64 sc[2] = { ~0UL, 0 };
	s = get_reg(&vtl1_hvc, HV_INPUT_VTL_SELF, REG_VSM_VP_SECURE_CONFIG_VTL0, sc);
	report(s == HV_STATUS_SUCCESS && sc[0] == 0, "VsmVpSecureConfigVtl0 reads 0 (0x%x)", s);
	report_prefix(NULL);
}

u64 vtl1_main(void)
{
	switch (vtl1_cmd) {
	case CMD_SETUP: vtl1_setup(); return 0;
	case CMD_CHECK1: vtl1_check1(); return 0;
	case CMD_CHECK2: vtl1_check2(); return 1; /* fast return */
	default: vtl1_negative(); return 1;
	}
}

// ---------------------------------------------------------------- VTL0

static bool read_offsets(void)
{
	u64 v[2];
	unsigned s = get_reg(&vtl0_hvc, HV_INPUT_VTL_SELF, REG_VSM_CODE_PAGE_OFFSETS, v);

	if (!report(s == HV_STATUS_SUCCESS, "GetVpRegisters(VsmCodePageOffsets) (0x%x)", s))
		return false;
	report_info("VsmCodePageOffsets = 0x%lx: VtlCall at +0x%lx, VtlReturn at +0x%lx", v[0], v[0] & 0xfff, (v[0] >> 12) & 0xfff);
	vtl0_call_addr = (u64)vtl0_hvc.page + (v[0] & 0xfff);
	vtl0_return_addr = (u64)vtl0_hvc.page + ((v[0] >> 12) & 0xfff);
	return true;
}

static void build_context(struct hv_initial_vp_context *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->rip = (u64)vtl1_entry;
	ctx->rsp = (u64)vtl1_stack + VTL1_STACK_PAGES * PAGE_SIZE;
	ctx->rflags = 0x2;
	/* Segments and tables as VTL0 has them (read with GetVpRegisters), FS/GS as flat data with VTL1's bases. */
	get_reg(&vtl0_hvc, 0, REG_CS, &ctx->cs);
	get_reg(&vtl0_hvc, 0, REG_DS, &ctx->ds);
	get_reg(&vtl0_hvc, 0, REG_ES, &ctx->es);
	get_reg(&vtl0_hvc, 0, REG_SS, &ctx->ss);
	get_reg(&vtl0_hvc, 0, REG_TR, &ctx->tr);
	get_reg(&vtl0_hvc, 0, REG_LDTR, &ctx->ldtr);
	get_reg(&vtl0_hvc, 0, REG_IDTR, &ctx->idtr);
	get_reg(&vtl0_hvc, 0, REG_GDTR, &ctx->gdtr);
	ctx->fs = ctx->ds;
	ctx->gs = ctx->ds;
	ctx->fs.base = 0;
	ctx->gs.base = rdmsr(MSR_GS_BASE); /* the library's per-CPU data, so VTL1 can print */
	ctx->efer = get_u64(&vtl0_hvc, REG_EFER);
	ctx->cr0 = get_u64(&vtl0_hvc, REG_CR0);
	ctx->cr4 = get_u64(&vtl0_hvc, REG_CR4);
	ctx->cr3 = (u64)vtl1_root;
	ctx->pat = rdmsr(MSR_PAT);
}

static void test_before_enable(void)
{
	report(stub_ud(vtl0_call_addr, 0), "VtlCall with no VTL1 => #UD");
	report(stub_ud(vtl0_return_addr, 0), "VtlReturn from VTL0 => #UD");
	struct hv_initial_vp_context ctx;
	build_context(&ctx);
	unsigned s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
	report(s == HV_STATUS_INVALID_VTL_STATE, "EnableVpVtl before EnablePartitionVtl => INVALID_VTL_STATE (0x%x)", s);
}

static bool test_enable_partition(unsigned max_vtl)
{
	unsigned s = enable_partition_vtl(0, 1);
	report(s == HV_STATUS_INVALID_PARTITION_ID, "EnablePartitionVtl(partition 0) => INVALID_PARTITION_ID (0x%x)", s);
	s = enable_partition_vtl(HV_PARTITION_ID_SELF, 16);
	report(s == HV_STATUS_INVALID_PARAMETER, "EnablePartitionVtl(VTL16) => INVALID_PARAMETER (0x%x)", s);
	if (max_vtl < 15) {
		s = enable_partition_vtl(HV_PARTITION_ID_SELF, max_vtl + 1);
		report(s == HV_STATUS_ACCESS_DENIED, "EnablePartitionVtl(VTL%u, above the maximum) => ACCESS_DENIED (0x%x)", max_vtl + 1, s);
	}
	s = enable_partition_vtl(HV_PARTITION_ID_SELF, 1);
	if (!report(s == HV_STATUS_SUCCESS, "EnablePartitionVtl(self, VTL1) (0x%x)", s))
		return false;
	s = enable_partition_vtl(HV_PARTITION_ID_SELF, 1);
	report(s == HV_STATUS_VTL_ALREADY_ENABLED, "EnablePartitionVtl(VTL1) again => VTL_ALREADY_ENABLED (0x%x)", s);
	u64 ps = get_u64(&vtl0_hvc, REG_VSM_PARTITION_STATUS);
	report((ps & 0xffff) == 0x3, "VsmPartitionStatus 0x%lx: VTLs {0, 1} enabled", ps);
	return true;
}

static bool test_enable_vp(void)
{
	struct hv_initial_vp_context ctx;

	build_context(&ctx);
	unsigned s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, 0xffff, 1, &ctx);
	report(s == HV_STATUS_INVALID_VP_INDEX, "EnableVpVtl(VP 0xffff) => INVALID_VP_INDEX (0x%x)", s);
	s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 0, &ctx);
	report(s == HV_STATUS_INVALID_PARAMETER, "EnableVpVtl(VTL0) => INVALID_PARAMETER (0x%x)", s);
	struct hv_initial_vp_context real = ctx;
	real.cr0 = 0x10;
	s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &real);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "EnableVpVtl with a real-mode context => INVALID_REGISTER_VALUE (0x%x)", s);
	s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
	if (!report(s == HV_STATUS_SUCCESS, "EnableVpVtl(self, VTL1) (0x%x)", s))
		return false;
	u64 st = get_u64(&vtl0_hvc, REG_VSM_VP_STATUS);
	report((st & 0xf) == 0 && ((st >> 16) & 0xffff) == 0x3, "VsmVpStatus 0x%lx: still in VTL0, VTLs {0, 1} enabled", st);
	s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
	report(s == HV_STATUS_ACCESS_DENIED, "EnableVpVtl(VTL1) again from VTL0 => ACCESS_DENIED (0x%x)", s);
	if (cpu_count() > 1) {
		s = enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, hv_vp_of[1], 1, &ctx);
		report(s == HV_STATUS_ACCESS_DENIED, "EnableVpVtl(VP %u) from VTL0 => ACCESS_DENIED (0x%x)", hv_vp_of[1], s);
	}
	return true;
}

static void test_registers(void)
{
	unsigned s = get_reg(&vtl0_hvc, 0x20, REG_VSM_VP_STATUS, NULL);
	report(s == HV_STATUS_INVALID_PARAMETER, "GetVpRegisters with HV_INPUT_VTL bit 5 set => INVALID_PARAMETER (0x%x)", s);
	s = get_reg(&vtl0_hvc, HV_INPUT_VTL(1), REG_VSM_VP_STATUS, NULL);
	report(s == HV_STATUS_ACCESS_DENIED, "GetVpRegisters of VTL1 from VTL0 => ACCESS_DENIED (0x%x)", s);
	s = get_reg(&vtl0_hvc, HV_INPUT_VTL_SELF, 0x00123456, NULL);
	report(s == HV_STATUS_UNKNOWN_REGISTER_NAME, "GetVpRegisters of register 0x123456 => UNKNOWN_REGISTER_NAME (0x%x)", s);
	s = set_reg(&vtl0_hvc, HV_INPUT_VTL_SELF, REG_VSM_VP_STATUS, 0);
	report(s == HV_STATUS_INVALID_PARAMETER, "SetVpRegisters of read-only VsmVpStatus => INVALID_PARAMETER (0x%x)", s);
	s = set_reg(&vtl0_hvc, HV_INPUT_VTL_SELF, REG_VSM_PARTITION_CONFIG, 0);
	report(s == HV_STATUS_INVALID_PARAMETER, "SetVpRegisters of VTL0's VsmPartitionConfig (none) => INVALID_PARAMETER (0x%x)", s);
}

static void test_switch(void)
{
	struct vtl_regs r;

	vtl1_cmd = CMD_SETUP;
	memset(&r, 0, sizeof(r));
	vtl_call_regs(&r);
	report(vtl1_return_addr != 0, "first VtlCall: VTL1 set up its hypercall page and assist page, and returned");

	wrmsr(MSR_FS_BASE, VTL0_FS_BASE);
	vtl0_cr3 = read_cr3();
	u64 *in = &r.rdx;
	for (unsigned i = 0; i < 13; i++)
		in[i] = pattern(i);
	vtl1_cmd = CMD_CHECK1;
	vtl_call_regs(&r);
	report_prefix("VTL0 after VtlReturn");
	report(r.rax == RET_RAX && r.rcx == RET_RCX, "RAX 0x%lx, RCX 0x%lx from VTL1's VTL control area", r.rax, r.rcx);
	bool shared = true;
	for (unsigned i = 0; i < 13; i++)
		shared &= in[i] == ~pattern(i);
	report(shared, "RDX, RBX, RBP, RSI, RDI, R8-R15 are what VTL1 left");
	report(read_cr3() == vtl0_cr3, "CR3 0x%lx unchanged", read_cr3());
	report(rdmsr(MSR_FS_BASE) == VTL0_FS_BASE, "FS base 0x%lx unchanged", rdmsr(MSR_FS_BASE));
	report(read_cr8() == 0, "TPR %lu unchanged (VTL1 set 5 in its own APIC)", read_cr8());
	u64 f = read_rflags();
	report((f & X86_EFLAGS_IF) && !(f & X86_EFLAGS_AC), "RFLAGS 0x%lx: IF still set, VTL1's AC not here", f);
	report_prefix(NULL);

	vtl1_cmd = CMD_CHECK2;
	vtl_call_regs(&r);
	report(r.rax == 1 && r.rcx == HVCALL_VTL_RETURN, "fast VtlReturn: RAX 0x%lx, RCX 0x%lx as the stub left them", r.rax, r.rcx);

	vtl1_cmd = CMD_NEGATIVE;
	vtl_call_regs(&r);
	report(true, "VTL1's negative cases ran and it returned");
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_VSM) || !hv_has_privilege(HV_PRIV_VP_REGISTERS)) {
		report_skip("no Hyper-V VSM (AccessVsm and AccessVpRegisters): nothing to test");
		report_summary();
	}
	hv_hypercall_setup();
	hv_collect_vp_indexes();
	vtl0_hvc = (struct hvc){ hv_hypercall_page, hv_input_page(), hv_output_page() };
	vtl1_hvc = (struct hvc){ alloc_page(), alloc_page(), alloc_page() };
	vtl1_control = alloc_page();
	vtl1_stack = alloc_pages(VTL1_STACK_PAGES);
	vtl1_root = vm_identity_root(PTE_W);
	if (!read_offsets())
		report_summary();
	u64 ps = get_u64(&vtl0_hvc, REG_VSM_PARTITION_STATUS);
	unsigned max_vtl = (ps >> 16) & 0xf;
	if (!report(max_vtl >= 1 && (ps & 0xffff) == 1, "VsmPartitionStatus 0x%lx: maximum VTL %u, only VTL0 enabled", ps, max_vtl))
		report_summary();
	test_before_enable();
	test_registers();
	if (test_enable_partition(max_vtl) && test_enable_vp())
		test_switch();
	report_summary();
}
