/*
 * Virtual Secure Mode, step 1: enabling VTL1 and switching to it and back
 * (tlfs-vsm-facts.md §2.11-§2.15, §3.1-§3.7), with the VSM library
 * (lib/vsm.h) on this VP only.
 *
 * VTL0 (this kernel) reads HvRegisterVsmCodePageOffsets, enables VTL1 for
 * the partition and for its VP with the library's initial context (its own
 * stack, page tables, GDT/IDT and RFLAGS), then VtlCalls into it:
 *  1. setup: VTL1 sets its own guest OS ID, hypercall page and VP assist
 *     page (all per VTL, §3.2), reads its code-page offsets, returns; then
 *     it sets its own FS base, TPR and RFLAGS.AC;
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
#include "vsm.h"

/* VTL1's commands (lib/vsm.h). */
enum { CMD_SETUP = VSM_CMD_USER, CMD_CHECK1, CMD_CHECK2, CMD_NEGATIVE };

#define VTL1_FS_BASE 0x2000000UL
#define VTL0_FS_BASE 0x1000000UL
#define RET_RAX 0xa1a1a1a1a1a1a1a1UL
#define RET_RCX 0xc1c1c1c1c1c1c1c1UL

static struct vsm_hvc vtl0_hvc;
static u64 vtl0_cr3;

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

static u64 vtl1_setup(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)vp;
	(void)regs;
	wrmsr(MSR_FS_BASE, VTL1_FS_BASE);
	write_cr8(5);
	rflags_set(X86_EFLAGS_AC);
	return 0;
}

static u64 pattern(unsigned i) { return 0x0101010101010101UL * (i + 1); }

static u64 vtl1_check1(struct vsm_vp *vp, struct vsm_regs *seen)
{
	struct hv_vtl_control *control = &vp->assist->vtl_control;

	report_prefix("VTL1");
	report(control->entry_reason == HV_VTL_ENTRY_VTL_CALL, "entry reason %u = 1 (VtlCall) in its VP assist page",
	       control->entry_reason);
	report(seen->rax == 0 && seen->rcx == HVCALL_VTL_CALL,
	       "RAX = 0x%lx, RCX = 0x%lx: the VtlCall stub's input and code", seen->rax, seen->rcx);
	report(control->vtl_return_rax == 0 && control->vtl_return_rcx == HVCALL_VTL_CALL,
	       "VTL0's RAX/RCX at the call (0x%lx, 0x%lx) are saved in the VTL control area",
	       control->vtl_return_rax, control->vtl_return_rcx);
	u64 *shared_regs = &seen->rdx;
	bool shared = true;
	for (unsigned i = 0; i < 13; i++)
		shared &= shared_regs[i] == pattern(i);
	report(shared, "RDX, RBX, RBP, RSI, RDI, R8-R15 are VTL0's (shared)");
	report(read_cr3() == (u64)vp->root, "CR3 = 0x%lx, its own (private)", read_cr3());
	u64 rsp = read_rsp();
	report(rsp > (u64)vp->stack && rsp <= (u64)vp->stack + VSM_VTL1_STACK_PAGES * PAGE_SIZE, "RSP 0x%lx is on its own stack", rsp);
	u64 f = read_rflags();
	report((f & X86_EFLAGS_AC) && !(f & X86_EFLAGS_IF), "RFLAGS 0x%lx: its AC from setup, IF = 0 from the context", f);
	report(rdmsr(MSR_FS_BASE) == VTL1_FS_BASE && read_cr8() == 5, "FS base 0x%lx and TPR %lu are its own", rdmsr(MSR_FS_BASE), read_cr8());
	u64 st = vsm_get_u64(&vp->hvc, HV_REG_VSM_VP_STATUS);
	report((st & 0xf) == 1 && ((st >> 16) & 0xffff) == 0x3, "VsmVpStatus 0x%lx: active VTL 1, VTLs {0, 1} enabled", st);
	u64 cr3_0[2] = { 0, 0 };
	unsigned s = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_CR3, cr3_0);
	report(s == HV_STATUS_SUCCESS && cr3_0[0] == vtl0_cr3, "GetVpRegisters(VTL0's CR3) = 0x%lx (0x%x)", cr3_0[0], s);
	/* Hand back: new shared registers, and RAX/RCX through the VTL control area (non-fast return, §3.3). */
	for (unsigned i = 0; i < 13; i++)
		shared_regs[i] = ~pattern(i);
	control->vtl_return_rax = RET_RAX;
	control->vtl_return_rcx = RET_RCX;
	vsm_return_raw(vp, 0);
	report_prefix(NULL);
	return 0;
}

static u64 vtl1_check2(struct vsm_vp *vp, struct vsm_regs *seen)
{
	struct hv_vtl_control *control = &vp->assist->vtl_control;

	(void)seen;
	report_prefix("VTL1, second entry");
	report(control->entry_reason == HV_VTL_ENTRY_VTL_CALL, "entry reason %u = 1", control->entry_reason);
	u64 f = read_rflags();
	report((f & X86_EFLAGS_AC) && !(f & X86_EFLAGS_IF), "RFLAGS 0x%lx kept (AC set, IF clear)", f);
	report(read_cr3() == (u64)vp->root && rdmsr(MSR_FS_BASE) == VTL1_FS_BASE && read_cr8() == 5,
	       "CR3, FS base and TPR kept");
	report(control->vtl_return_rax == 0 && control->vtl_return_rcx == HVCALL_VTL_CALL,
	       "VtlReturnX64Rax/Rcx hold VTL0's RAX/RCX of this second call (saved on every VtlCall entry)");
	vsm_return_raw(vp, 1); /* fast return */
	report_prefix(NULL);
	return 0;
}

static u64 vtl1_negative(struct vsm_vp *vp, struct vsm_regs *seen)
{
	(void)seen;
	report_prefix("VTL1");
	report(stub_ud(vsm_vtl1_call_stub, 0), "VtlCall from the highest enabled VTL => #UD");
	report(stub_ud(vsm_vtl1_return_stub, 2), "VtlReturn with input bit 1 set => #UD");
	struct hv_initial_vp_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	unsigned s = vsm_enable_vp_vtl(&vp->hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
	report(s == HV_STATUS_VTL_ALREADY_ENABLED, "EnableVpVtl(self, VTL1) => VTL_ALREADY_ENABLED (0x%x)", s);
	s = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, 0x1f);
	u64 cfg[2] = { 0, 0 };
	unsigned g = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, cfg);
	report(s == HV_STATUS_SUCCESS && g == HV_STATUS_SUCCESS && cfg[0] == 0x1f,
	       "VsmPartitionConfig = EnableVtlProtection, default mask RWX (0x%x, reads 0x%lx)", s, cfg[0]);
	s = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, 0x1e);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "clearing EnableVtlProtection => INVALID_REGISTER_VALUE (0x%x)", s);
	u64 sc[2] = { ~0UL, 0 };
	s = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, sc);
	report(s == HV_STATUS_SUCCESS && sc[0] == 0, "VsmVpSecureConfigVtl0 reads 0 (0x%x)", s);
	vsm_return_raw(vp, 1);
	report_prefix(NULL);
	return 0;
}

// ---------------------------------------------------------------- VTL0

static unsigned get_reg(u8 input_vtl, u32 name, void *value)
{
	return vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, input_vtl, name, value);
}

static unsigned enable_partition_vtl(u64 partition, u8 vtl)
{
	return vsm_enable_partition_vtl(&vtl0_hvc, partition, vtl);
}

static unsigned enable_vp_vtl(u32 vp, u8 vtl, const struct hv_initial_vp_context *ctx)
{
	return vsm_enable_vp_vtl(&vtl0_hvc, HV_PARTITION_ID_SELF, vp, vtl, ctx);
}

static bool read_offsets(void)
{
	u64 v;
	unsigned s = vsm_read_code_page_offsets(&v);

	if (!report(s == HV_STATUS_SUCCESS, "GetVpRegisters(VsmCodePageOffsets) (0x%x)", s))
		return false;
	report_info("VsmCodePageOffsets = 0x%lx: VtlCall at +0x%lx, VtlReturn at +0x%lx", v, v & 0xfff, (v >> 12) & 0xfff);
	return true;
}

static void test_before_enable(void)
{
	report(stub_ud(vsm_vtl0_call_stub, 0), "VtlCall with no VTL1 => #UD");
	report(stub_ud(vsm_vtl0_return_stub, 0), "VtlReturn from VTL0 => #UD");
	struct hv_initial_vp_context ctx;
	vsm_build_context(smp_id(), &ctx);
	unsigned s = enable_vp_vtl(HV_VP_INDEX_SELF, 1, &ctx);
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
	s = vsm_enable_partition();
	if (!report(s == HV_STATUS_SUCCESS, "EnablePartitionVtl(self, VTL1) (0x%x)", s))
		return false;
	s = enable_partition_vtl(HV_PARTITION_ID_SELF, 1);
	report(s == HV_STATUS_VTL_ALREADY_ENABLED, "EnablePartitionVtl(VTL1) again => VTL_ALREADY_ENABLED (0x%x)", s);
	u64 ps = vsm_get_u64(&vtl0_hvc, HV_REG_VSM_PARTITION_STATUS);
	report((ps & 0xffff) == 0x3, "VsmPartitionStatus 0x%lx: VTLs {0, 1} enabled", ps);
	return true;
}

static bool test_enable_vp(void)
{
	struct hv_initial_vp_context ctx;

	vsm_build_context(smp_id(), &ctx);
	unsigned s = enable_vp_vtl(0xffff, 1, &ctx);
	report(s == HV_STATUS_INVALID_VP_INDEX, "EnableVpVtl(VP 0xffff) => INVALID_VP_INDEX (0x%x)", s);
	s = enable_vp_vtl(HV_VP_INDEX_SELF, 0, &ctx);
	report(s == HV_STATUS_INVALID_PARAMETER, "EnableVpVtl(VTL0) => INVALID_PARAMETER (0x%x)", s);
	struct hv_initial_vp_context real = ctx;
	real.cr0 = 0x10;
	s = enable_vp_vtl(HV_VP_INDEX_SELF, 1, &real);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "EnableVpVtl with a real-mode context => INVALID_REGISTER_VALUE (0x%x)", s);
	s = vsm_enable_vp_self();
	if (!report(s == HV_STATUS_SUCCESS, "EnableVpVtl(self, VTL1) (0x%x)", s))
		return false;
	u64 st = vsm_get_u64(&vtl0_hvc, HV_REG_VSM_VP_STATUS);
	report((st & 0xf) == 0 && ((st >> 16) & 0xffff) == 0x3, "VsmVpStatus 0x%lx: still in VTL0, VTLs {0, 1} enabled", st);
	s = enable_vp_vtl(HV_VP_INDEX_SELF, 1, &ctx);
	report(s == HV_STATUS_ACCESS_DENIED, "EnableVpVtl(VTL1) again from VTL0 => ACCESS_DENIED (0x%x)", s);
	if (cpu_count() > 1) {
		s = enable_vp_vtl(hv_vp_of[1], 1, &ctx);
		report(s == HV_STATUS_ACCESS_DENIED, "EnableVpVtl(VP %u) from VTL0 => ACCESS_DENIED (0x%x)", hv_vp_of[1], s);
	}
	return true;
}

static void test_registers(void)
{
	unsigned s = get_reg(0x20, HV_REG_VSM_VP_STATUS, NULL);
	report(s == HV_STATUS_INVALID_PARAMETER, "GetVpRegisters with HV_INPUT_VTL bit 5 set => INVALID_PARAMETER (0x%x)", s);
	s = get_reg(HV_INPUT_VTL(1), HV_REG_VSM_VP_STATUS, NULL);
	report(s == HV_STATUS_ACCESS_DENIED, "GetVpRegisters of VTL1 from VTL0 => ACCESS_DENIED (0x%x)", s);
	s = get_reg(HV_INPUT_VTL_SELF, 0x00123456, NULL);
	report(s == HV_STATUS_UNKNOWN_REGISTER_NAME, "GetVpRegisters of register 0x123456 => UNKNOWN_REGISTER_NAME (0x%x)", s);
	s = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_STATUS, 0);
	report(s == HV_STATUS_INVALID_PARAMETER, "SetVpRegisters of read-only VsmVpStatus => INVALID_PARAMETER (0x%x)", s);
	s = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, 0);
	report(s == HV_STATUS_INVALID_PARAMETER, "SetVpRegisters of VTL0's VsmPartitionConfig (none) => INVALID_PARAMETER (0x%x)", s);
}

static void test_switch(void)
{
	struct vsm_regs r;

	bool started = vsm_vtl1_start();
	vsm_call(CMD_SETUP, 0, 0, 0);
	report(started && vsm_vtl1_return_stub != 0, "first VtlCall: VTL1 set up its hypercall page and assist page, and returned");

	wrmsr(MSR_FS_BASE, VTL0_FS_BASE);
	vtl0_cr3 = read_cr3();
	memset(&r, 0, sizeof(r));
	u64 *in = &r.rdx;
	for (unsigned i = 0; i < 13; i++)
		in[i] = pattern(i);
	vsm_request(CMD_CHECK1, 0, 0, 0);
	vsm_vtl_call_regs(&r);
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

	vsm_request(CMD_CHECK2, 0, 0, 0);
	vsm_vtl_call_regs(&r);
	report(r.rax == 1 && r.rcx == HVCALL_VTL_RETURN, "fast VtlReturn: RAX 0x%lx, RCX 0x%lx as the stub left them", r.rax, r.rcx);

	vsm_call(CMD_NEGATIVE, 0, 0, 0);
	u64 st = vsm_get_u64(&vtl0_hvc, HV_REG_VSM_VP_STATUS);
	report(st == HV_VP_STATUS(0, 3), "after VTL1's negative cases the VP is back in VTL0 (VsmVpStatus 0x%lx)", st);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	vsm_init();
	vsm_register_command(CMD_SETUP, vtl1_setup);
	vsm_register_command(CMD_CHECK1, vtl1_check1);
	vsm_register_command(CMD_CHECK2, vtl1_check2);
	vsm_register_command(CMD_NEGATIVE, vtl1_negative);
	vtl0_hvc = vsm_vtl0_hvc();
	if (!read_offsets())
		report_summary();
	u64 ps = vsm_get_u64(&vtl0_hvc, HV_REG_VSM_PARTITION_STATUS);
	unsigned max_vtl = (ps >> 16) & 0xf;
	if (!report(max_vtl >= 1 && (ps & 0xffff) == 1, "VsmPartitionStatus 0x%lx: maximum VTL %u, only VTL0 enabled", ps, max_vtl))
		report_summary();
	test_before_enable();
	test_registers();
	if (test_enable_partition(max_vtl) && test_enable_vp())
		test_switch();
	report_summary();
}
