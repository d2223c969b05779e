/*
 * Virtual Secure Mode on every VP of an SMP guest (tlfs-vsm-facts.md
 * §2.11-§2.15, §3.1-§3.4, §3.7, §3.10), with the VSM library (lib/vsm.h).
 *
 * Enabling (§2.13): VTL0 enables VTL1 for the partition and on VP0; every
 * other VP gets VTL1 from VTL1 on VP0 (VTL0 may not do it there), then its
 * first VtlCall lets its VTL1 set itself up. Checked on the way: the other
 * VP's VsmVpStatus before, GetVpRegisters of a VTL it does not have yet,
 * VTL0's EnableVpVtl refused, enabling twice.
 *
 * Isolation, on each VP in turn (§3.2): VTL0 sets its private state (FS
 * base, KERNEL_GS_BASE, TPR, RFLAGS.AC) and the shared state (GPRs, CR2,
 * DR0-DR3, XMM0-XMM15) to values of its own and VtlCalls. VTL1 finds the
 * shared values and its own private ones (CR3, RSP, RFLAGS, FS/GS base,
 * KERNEL_GS_BASE, TPR, IDTR, GDTR, as the library's initial context and its
 * setup left them), sets new values for both kinds and VtlReturns with a
 * result in RAX (control area, §3.3). VTL0 finds VTL1's shared values and
 * its own private ones. A second VtlCall shows that each VTL kept its own
 * private state.
 *
 * Interrupt entries (§3.10, entry reason 2): VTL1 sends itself an IPI with
 * IF = 0 and VtlReturns: the VP goes right back into VTL1 for it, and VTL0
 * then finds RAX, RCX (a fast return) and the other GPRs as VTL1 left them. VTL1 on VP0
 * sends an IPI to another VP's VTL1, which takes it while its VTL0 idles.
 *
 * Remote VPs (§2.15): VTL1 on VP0 reads another VP's VTL0 and VTL1
 * registers and its VsmVpStatus, and writes its VTL0 KERNEL_GS_BASE, which
 * that VP's VTL0 then reads; VTL0 may not read another VP's VTL1 registers.
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm at any CPU count; the
 * test counts in test/guests/vsm.test.ts depend on it. Without VSM every
 * check is skipped (QEMU TCG has no Hyper-V).
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"

enum { CMD_ISOLATE1 = VSM_CMD_USER, CMD_ISOLATE2, CMD_SELF_IPI, CMD_SEND_IPI, CMD_GET, CMD_REMOTE };

#define TEST_VECTOR 0x41 /* above both TPRs below */
#define VTL0_TPR 1
#define VTL1_TPR 3
#define FLAGS_CHECKED (BIT(8) | X86_EFLAGS_IF | BIT(10) | X86_EFLAGS_AC) /* TF, IF, DF, AC */
#define CALL_RESULT(cpu) (0x5e5e000000000000UL | (cpu))
#define GPR_COUNT 13 /* RDX, RBX, RBP, RSI, RDI, R8-R15: struct vsm_regs from rdx */

/* Distinct values per CPU and VTL (vtl 2: what VP0's VTL1 writes remotely). */
static u64 fs_base(unsigned vtl, unsigned cpu) { return 0x10000000UL * (vtl + 1) + cpu * 0x1000; }
static u64 kgs_base(unsigned vtl, unsigned cpu) { return 0x40000000UL + 0x1000000UL * vtl + cpu * 0x1000; }
static u64 cr2_value(unsigned vtl, unsigned cpu) { return 0x50000000UL + 0x1000000UL * vtl + cpu * 8; }
static u64 dr_value(unsigned vtl, unsigned cpu, unsigned k) { return 0x60000000UL + 0x1000000UL * vtl + k * 0x100 + cpu * 8; }
static u64 xmm_value(unsigned vtl, unsigned cpu, unsigned q) { return 0x7000000000000000UL | ((u64)vtl << 48) | (q << 8) | cpu; }
static u64 gpr_value(unsigned cpu, unsigned k) { return 0x0101010101010101UL * (k + 1) + cpu; }

extern u64 gdt64[GDT_ENTRIES]; /* lib/entry.S: VTL0's GDT */
static struct vsm_hvc vtl0_hvc;
/* CMD_GET's output (shared memory). */
static u64 got[2];

static void rflags_write(u64 f)
{
	asm volatile("push %0; popfq" : : "r"(f) : "cc", "memory");
}

static void write_drs(const u64 *v)
{
	asm volatile("mov %0, %%dr0; mov %1, %%dr1; mov %2, %%dr2; mov %3, %%dr3"
		     : : "r"(v[0]), "r"(v[1]), "r"(v[2]), "r"(v[3]) : "memory");
}

static void read_drs(u64 *v)
{
	asm volatile("mov %%dr0, %0; mov %%dr1, %1; mov %%dr2, %2; mov %%dr3, %3"
		     : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3]));
}

/* XMM0-XMM15 from/to 32 quadwords; CR4.OSFXSR is set around them (the library builds without SSE). */
static void write_xmms(const u64 *v)
{
	u64 cr4 = set_cr4_bits(X86_CR4_OSFXSR, 0);

	asm volatile("movdqu 0(%0), %%xmm0; movdqu 16(%0), %%xmm1; movdqu 32(%0), %%xmm2; movdqu 48(%0), %%xmm3\n\t"
		     "movdqu 64(%0), %%xmm4; movdqu 80(%0), %%xmm5; movdqu 96(%0), %%xmm6; movdqu 112(%0), %%xmm7\n\t"
		     "movdqu 128(%0), %%xmm8; movdqu 144(%0), %%xmm9; movdqu 160(%0), %%xmm10; movdqu 176(%0), %%xmm11\n\t"
		     "movdqu 192(%0), %%xmm12; movdqu 208(%0), %%xmm13; movdqu 224(%0), %%xmm14; movdqu 240(%0), %%xmm15"
		     : : "r"(v) : "memory");
	write_cr4(cr4);
}

static void read_xmms(u64 *v)
{
	u64 cr4 = set_cr4_bits(X86_CR4_OSFXSR, 0);

	asm volatile("movdqu %%xmm0, 0(%0); movdqu %%xmm1, 16(%0); movdqu %%xmm2, 32(%0); movdqu %%xmm3, 48(%0)\n\t"
		     "movdqu %%xmm4, 64(%0); movdqu %%xmm5, 80(%0); movdqu %%xmm6, 96(%0); movdqu %%xmm7, 112(%0)\n\t"
		     "movdqu %%xmm8, 128(%0); movdqu %%xmm9, 144(%0); movdqu %%xmm10, 160(%0); movdqu %%xmm11, 176(%0)\n\t"
		     "movdqu %%xmm12, 192(%0); movdqu %%xmm13, 208(%0); movdqu %%xmm14, 224(%0); movdqu %%xmm15, 240(%0)"
		     : : "r"(v) : "memory");
	write_cr4(cr4);
}

/* Set the shared registers (other than the GPRs) to a VTL's values for this CPU. */
static void set_shared(unsigned vtl, unsigned cpu)
{
	u64 dr[4], xmm[32];

	for (unsigned k = 0; k < 4; k++)
		dr[k] = dr_value(vtl, cpu, k);
	for (unsigned q = 0; q < 32; q++)
		xmm[q] = xmm_value(vtl, cpu, q);
	write_drs(dr);
	write_xmms(xmm);
	write_cr2(cr2_value(vtl, cpu));
}

/* Report whether CR2, DR0-DR3 and XMM0-XMM15 hold a VTL's values for this CPU (3 checks). */
static void check_shared(const char *who, unsigned vtl, unsigned cpu)
{
	u64 dr[4], xmm[32], cr2 = read_cr2();
	bool ok = true;

	read_drs(dr);
	read_xmms(xmm);
	report(cr2 == cr2_value(vtl, cpu), "%s: CR2 0x%lx is VTL%u's (shared)", who, cr2, vtl);
	for (unsigned k = 0; k < 4; k++)
		ok &= dr[k] == dr_value(vtl, cpu, k);
	report(ok, "%s: DR0-DR3 0x%lx.. 0x%lx are VTL%u's (shared)", who, dr[0], dr[3], vtl);
	ok = true;
	for (unsigned q = 0; q < 32; q++)
		ok &= xmm[q] == xmm_value(vtl, cpu, q);
	report(ok, "%s: XMM0-XMM15 (XMM0 0x%lx_%016lx) are VTL%u's (shared)", who, xmm[1], xmm[0], vtl);
}

static bool gprs_are(const struct vsm_regs *r, unsigned cpu, bool inverted)
{
	const u64 *g = &r->rdx;
	bool ok = true;

	for (unsigned k = 0; k < GPR_COUNT; k++)
		ok &= g[k] == (inverted ? ~gpr_value(cpu, k) : gpr_value(cpu, k));
	return ok;
}

static void fill_gprs(struct vsm_regs *r, unsigned cpu)
{
	u64 *g = &r->rdx;

	memset(r, 0, sizeof(*r));
	for (unsigned k = 0; k < GPR_COUNT; k++)
		g[k] = gpr_value(cpu, k);
}

// ---------------------------------------------------------------- VTL1

static u64 vtl1_isolate1(struct vsm_vp *vp, struct vsm_regs *regs)
{
	unsigned cpu = vp->cpu;
	char who[24];
	struct descriptor_table_ptr idtr, gdtr;

	snprintf(who, sizeof(who), "VP%u VTL1", vp->vp_index);
	report(vp->assist->vtl_control.entry_reason == HV_VTL_ENTRY_VTL_CALL && regs->rax == 0 && regs->rcx == HVCALL_VTL_CALL,
	       "%s: entry reason %u (VtlCall), RAX 0x%lx and RCX 0x%lx as the VtlCall stub left them", who,
	       vp->assist->vtl_control.entry_reason, regs->rax, regs->rcx);
	report(gprs_are(regs, cpu, false), "%s: RDX, RBX, RBP, RSI, RDI, R8-R15 are VTL0's (shared)", who);
	check_shared(who, 0, cpu);
	u64 f = read_rflags();
	report((f & FLAGS_CHECKED) == 0, "%s: RFLAGS 0x%lx: TF, IF, DF, AC clear (private; VTL0 has IF and AC set)", who, f);
	u64 rsp = read_rsp();
	report(read_cr3() == (u64)vp->root && rsp > (u64)vp->stack && rsp <= (u64)vp->stack + VSM_VTL1_STACK_PAGES * PAGE_SIZE,
	       "%s: CR3 0x%lx is its own page tables, RSP 0x%lx is on its own stack", who, read_cr3(), rsp);
	u64 fs = rdmsr(MSR_FS_BASE), gs = rdmsr(MSR_GS_BASE), kgs = rdmsr(MSR_KERNEL_GS_BASE);
	report(fs == 0 && gs == (u64)vp->pc && kgs == 0,
	       "%s: FS base 0x%lx, GS base 0x%lx (its per-CPU data), KERNEL_GS_BASE 0x%lx: its own", who, fs, gs, kgs);
	report(read_cr8() == 0, "%s: TPR %lu in its own APIC (VTL0's is %u)", who, read_cr8(), VTL0_TPR);
	sidt(&idtr);
	sgdt(&gdtr);
	report(idtr.base == (u64)vp->idt && idtr.limit == 0xfff && gdtr.base == (u64)vp->gdt &&
	       gdtr.limit == VSM_VTL1_GDT_ENTRIES * 8 - 1,
	       "%s: IDTR 0x%lx/0x%x and GDTR 0x%lx/0x%x are its own", who, idtr.base, idtr.limit, gdtr.base, gdtr.limit);
	u64 st = vsm_get_u64(&vp->hvc, HV_REG_VSM_VP_STATUS);
	report(st == HV_VP_STATUS(1, 0x3), "%s: VsmVpStatus 0x%lx: active VTL 1, VTLs {0, 1} enabled", who, st);

	/* Its own values, private and shared, for VTL0 to find (or not). */
	wrmsr(MSR_FS_BASE, fs_base(1, cpu));
	wrmsr(MSR_KERNEL_GS_BASE, kgs_base(1, cpu));
	write_cr8(VTL1_TPR);
	rflags_write(read_rflags() | X86_EFLAGS_AC);
	set_shared(1, cpu);
	u64 *g = &regs->rdx;
	for (unsigned k = 0; k < GPR_COUNT; k++)
		g[k] = ~gpr_value(cpu, k);
	return CALL_RESULT(cpu);
}

static u64 vtl1_isolate2(struct vsm_vp *vp, struct vsm_regs *regs)
{
	unsigned cpu = vp->cpu;
	u64 f = read_rflags();

	(void)regs;
	report((f & FLAGS_CHECKED) == X86_EFLAGS_AC && read_cr3() == (u64)vp->root && rdmsr(MSR_FS_BASE) == fs_base(1, cpu) &&
	       rdmsr(MSR_GS_BASE) == (u64)vp->pc && rdmsr(MSR_KERNEL_GS_BASE) == kgs_base(1, cpu) && read_cr8() == VTL1_TPR,
	       "VP%u VTL1, second entry: RFLAGS 0x%lx (AC kept), CR3, FS/GS base 0x%lx/0x%lx, KERNEL_GS_BASE 0x%lx, TPR %lu as it left them",
	       vp->vp_index, f, rdmsr(MSR_FS_BASE), rdmsr(MSR_GS_BASE), rdmsr(MSR_KERNEL_GS_BASE), read_cr8());
	rflags_write(f & ~X86_EFLAGS_AC);
	return CALL_RESULT(cpu);
}

static volatile u64 test_irqs[MAX_CPUS];

static void vtl1_test_irq(struct vsm_vp *vp, unsigned vector)
{
	(void)vector;
	test_irqs[vp->cpu]++;
}

/*
 * A self-IPI with IF = 0 stays pending in VTL1's APIC across the VtlReturn
 * (§3.10). The return is fast, so VTL0 gets RAX and RCX as the stub left
 * them, not what the control area holds: only the library's interrupt-entry
 * path, which hands back the RAX/RCX it found, keeps them so.
 */
static u64 vtl1_self_ipi(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_self_ipi(TEST_VECTOR);
	vsm_return_raw(vp, 1);
	return 0;
}

static u64 vtl1_send_ipi(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_send_ipi(cpu_apic_id(vp->arg[0]), TEST_VECTOR);
	return 0;
}

/* GetVpRegisters(arg0 = VP index, arg1 = input VTL, arg2 = name) into got[]; returns the status. */
static u64 vtl1_get(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_get_reg(&vp->hvc, vp->arg[0], vp->arg[1], vp->arg[2], got);
}

/* The remote-VP checks, in VTL1 on VP0 about CPU arg0's VP. */
static u64 vtl1_remote(struct vsm_vp *vp, struct vsm_regs *regs)
{
	unsigned cpu = vp->arg[0];
	struct vsm_vp *other = vsm_vp_of(cpu);
	u32 idx = other->vp_index;
	u64 v[4][2];
	const u32 vtl0_names[4] = { HV_REG_CR3, HV_REG_FS, HV_REG_GS, HV_REG_KERNEL_GS_BASE };
	const u32 vtl1_names[3] = { HV_REG_CR3, HV_REG_IDTR, HV_REG_GDTR };

	(void)regs;
	unsigned s = vsm_get_regs(&vp->hvc, idx, HV_INPUT_VTL(0), vtl0_names, 4, v);
	report(s == HV_STATUS_SUCCESS && v[0][0] == (u64)kernel_root && v[1][0] == fs_base(0, cpu) &&
	       v[2][0] == (u64)cpu_data(cpu) && v[3][0] == kgs_base(0, cpu),
	       "VP%u VTL1: GetVpRegisters(VP%u, VTL0: CR3, FS, GS, KERNEL_GS_BASE) = 0x%lx, base 0x%lx, base 0x%lx, 0x%lx (0x%x)",
	       vp->vp_index, idx, v[0][0], v[1][0], v[2][0], v[3][0], s);
	s = vsm_get_regs(&vp->hvc, idx, HV_INPUT_VTL(1), vtl1_names, 3, v);
	report(s == HV_STATUS_SUCCESS && v[0][0] == (u64)other->root && v[1][1] == (u64)other->idt && v[2][1] == (u64)other->gdt,
	       "VP%u VTL1: GetVpRegisters(VP%u, VTL1: CR3, IDTR, GDTR) = its VTL1's own 0x%lx, 0x%lx, 0x%lx (0x%x)",
	       vp->vp_index, idx, v[0][0], v[1][1], v[2][1], s);
	s = vsm_get_reg(&vp->hvc, idx, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_STATUS, v);
	report(s == HV_STATUS_SUCCESS && v[0][0] == HV_VP_STATUS(0, 0x3),
	       "VP%u VTL1: VsmVpStatus of VP%u = 0x%lx: active VTL 0, VTLs {0, 1} enabled (0x%x)", vp->vp_index, idx, v[0][0], s);
	s = vsm_set_reg(&vp->hvc, idx, HV_INPUT_VTL(0), HV_REG_KERNEL_GS_BASE, kgs_base(2, cpu));
	unsigned g = vsm_get_reg(&vp->hvc, idx, HV_INPUT_VTL(0), HV_REG_KERNEL_GS_BASE, v);
	report(s == HV_STATUS_SUCCESS && g == HV_STATUS_SUCCESS && v[0][0] == kgs_base(2, cpu),
	       "VP%u VTL1: SetVpRegisters(VP%u, VTL0: KERNEL_GS_BASE = 0x%lx) (0x%x), reads back 0x%lx", vp->vp_index, idx,
	       kgs_base(2, cpu), s, v[0][0]);
	return 0;
}

// ---------------------------------------------------------------- VTL0

static void isolation(void *arg)
{
	unsigned cpu = smp_id();
	struct vsm_vp *vp = vsm_this_vp();
	struct descriptor_table_ptr idtr0, gdtr0, idtr, gdtr;
	struct vsm_regs r;
	char who[40];

	(void)arg;
	snprintf(who, sizeof(who), "VP%u VTL0 after VtlReturn", vp->vp_index);
	sidt(&idtr0);
	sgdt(&gdtr0);
	wrmsr(MSR_FS_BASE, fs_base(0, cpu));
	wrmsr(MSR_KERNEL_GS_BASE, kgs_base(0, cpu));
	write_cr8(VTL0_TPR);
	set_shared(0, cpu);
	fill_gprs(&r, cpu);
	vsm_request(CMD_ISOLATE1, 0, 0, 0);
	rflags_write(read_rflags() | X86_EFLAGS_AC);
	vsm_vtl_call_regs(&r);
	u64 f = read_rflags();
	rflags_write(f & ~X86_EFLAGS_AC);

	report(r.rax == CALL_RESULT(cpu) && gprs_are(&r, cpu, true),
	       "%s: RAX 0x%lx from VTL1's control area, RDX, RBX, RBP, RSI, RDI, R8-R15 are VTL1's (shared)", who, r.rax);
	check_shared(who, 1, cpu);
	report((f & FLAGS_CHECKED) == (X86_EFLAGS_IF | X86_EFLAGS_AC), "%s: RFLAGS 0x%lx: its own IF and AC, TF and DF clear", who, f);
	report(read_cr3() == (u64)kernel_root, "%s: CR3 0x%lx is its own", who, read_cr3());
	u64 fs = rdmsr(MSR_FS_BASE), gs = rdmsr(MSR_GS_BASE), kgs = rdmsr(MSR_KERNEL_GS_BASE);
	report(fs == fs_base(0, cpu) && gs == (u64)cpu_data(cpu) && kgs == kgs_base(0, cpu),
	       "%s: FS base 0x%lx, GS base 0x%lx, KERNEL_GS_BASE 0x%lx are its own", who, fs, gs, kgs);
	report(read_cr8() == VTL0_TPR, "%s: TPR %lu is its own (VTL1 set %u)", who, read_cr8(), VTL1_TPR);
	sidt(&idtr);
	sgdt(&gdtr);
	report(idtr.base == idtr0.base && idtr.limit == idtr0.limit && gdtr.base == (u64)gdt64 && gdtr.limit == GDT_ENTRIES * 8 - 1 &&
	       gdtr0.base == gdtr.base,
	       "%s: IDTR 0x%lx/0x%x and GDTR 0x%lx/0x%x are its own", who, idtr.base, idtr.limit, gdtr.base, gdtr.limit);
	u64 st = vsm_get_u64(&vtl0_hvc, HV_REG_VSM_VP_STATUS);
	report(st == HV_VP_STATUS(0, 0x3), "%s: VsmVpStatus 0x%lx: active VTL 0, VTLs {0, 1} enabled", who, st);

	vsm_request(CMD_ISOLATE2, 0, 0, 0);
	vsm_vtl_call_regs(&r);
	f = read_rflags();
	report((f & FLAGS_CHECKED) == X86_EFLAGS_IF && rdmsr(MSR_FS_BASE) == fs_base(0, cpu) &&
	       rdmsr(MSR_KERNEL_GS_BASE) == kgs_base(0, cpu) && read_cr8() == VTL0_TPR,
	       "VP%u VTL0 after the second VtlReturn: RFLAGS 0x%lx (AC clear, as it left it), FS base, KERNEL_GS_BASE, TPR its own",
	       vp->vp_index, f);
	write_cr8(0);
}

static void self_interrupt(void *arg)
{
	unsigned cpu = smp_id();
	struct vsm_vp *vp = vsm_this_vp();
	u64 entries = vp->entries[HV_VTL_ENTRY_INTERRUPT], irqs = test_irqs[cpu];
	struct vsm_regs r;

	(void)arg;
	fill_gprs(&r, cpu);
	vsm_request(CMD_SELF_IPI, 0, 0, 0);
	vsm_vtl_call_regs(&r);
	report(vp->entries[HV_VTL_ENTRY_INTERRUPT] == entries + 1 && vp->last_reason == HV_VTL_ENTRY_INTERRUPT &&
	       test_irqs[cpu] == irqs + 1 && vp->last_vector == TEST_VECTOR,
	       "VP%u: VTL1's pending self-IPI 0x%x brought the VP back into VTL1 once (entry reason %u), its handler ran %lu time(s)",
	       vp->vp_index, TEST_VECTOR, vp->last_reason, test_irqs[cpu] - irqs);
	report(r.rax == 1 && r.rcx == HVCALL_VTL_RETURN && gprs_are(&r, cpu, false),
	       "VP%u VTL0: RAX 0x%lx and RCX 0x%lx (the fast VtlReturn's), RDX, RBX, RBP, RSI, RDI, R8-R15 intact across the interrupt entry",
	       vp->vp_index, r.rax, r.rcx);
}

static void own_enable_refused(void *arg)
{
	struct hv_initial_vp_context ctx;
	struct vsm_hvc h = vsm_vtl0_hvc();

	(void)arg;
	vsm_build_context(smp_id(), &ctx);
	unsigned s = vsm_enable_vp_vtl(&h, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, 1, &ctx);
	report(s == HV_STATUS_ACCESS_DENIED, "VP%u VTL0: EnableVpVtl(self, VTL1) once VP%u has VTL1 => ACCESS_DENIED (0x%x)",
	       hv_vp_index(), hv_vp_of[0], s);
}

static void start_vtl1(void *arg)
{
	(void)arg;
	report(vsm_vtl1_start(), "VP%u: first VtlCall: VTL1 set itself up and returned", hv_vp_index());
}

static void check_remote_kgs(void *arg)
{
	(void)arg;
	report(rdmsr(MSR_KERNEL_GS_BASE) == kgs_base(2, smp_id()), "VP%u VTL0: KERNEL_GS_BASE 0x%lx as VP%u's VTL1 set it",
	       hv_vp_index(), rdmsr(MSR_KERNEL_GS_BASE), hv_vp_of[0]);
}

static bool enable_all(void)
{
	u64 offsets;
	unsigned s = vsm_read_code_page_offsets(&offsets);

	if (!report(s == HV_STATUS_SUCCESS, "GetVpRegisters(VsmCodePageOffsets) (0x%x)", s))
		return false;
	s = vsm_enable_partition();
	if (!report(s == HV_STATUS_SUCCESS, "EnablePartitionVtl(self, VTL1) (0x%x)", s))
		return false;
	s = vsm_enable_vp_self();
	if (!report(s == HV_STATUS_SUCCESS, "VP%u VTL0: EnableVpVtl(self, VTL1) (0x%x)", hv_vp_of[0], s))
		return false;
	start_vtl1(NULL);
	for (unsigned cpu = 1; cpu < cpu_count(); cpu++) {
		u32 idx = hv_vp_of[cpu];
		s = vsm_call(CMD_GET, idx, HV_INPUT_VTL(0), HV_REG_VSM_VP_STATUS);
		report(s == HV_STATUS_SUCCESS && got[0] == HV_VP_STATUS(0, 0x1),
		       "VP%u VTL1: VsmVpStatus of VP%u before = 0x%lx: VTL0 only (0x%x)", hv_vp_of[0], idx, got[0], s);
		s = vsm_call(CMD_GET, idx, HV_INPUT_VTL(1), HV_REG_CR3);
		report(s == HV_STATUS_INVALID_VTL_STATE, "VP%u VTL1: GetVpRegisters(VP%u, VTL1) before it has VTL1 => INVALID_VTL_STATE (0x%x)",
		       hv_vp_of[0], idx, s);
		on_cpu(cpu, own_enable_refused, NULL);
		s = vsm_enable_vp_from_vtl1(cpu);
		if (!report(s == HV_STATUS_SUCCESS, "VP%u VTL1: EnableVpVtl(VP%u, VTL1) (0x%x)", hv_vp_of[0], idx, s))
			return false;
		s = vsm_enable_vp_from_vtl1(cpu);
		report(s == HV_STATUS_VTL_ALREADY_ENABLED, "VP%u VTL1: EnableVpVtl(VP%u, VTL1) again => VTL_ALREADY_ENABLED (0x%x)",
		       hv_vp_of[0], idx, s);
		on_cpu(cpu, start_vtl1, NULL);
	}
	u64 ps = vsm_get_u64(&vtl0_hvc, HV_REG_VSM_PARTITION_STATUS);
	report((ps & 0xffff) == 0x3, "VsmPartitionStatus 0x%lx: VTLs {0, 1} enabled", ps);
	return true;
}

static void test_remote(unsigned cpu)
{
	u32 idx = hv_vp_of[cpu];
	u64 v[2];

	vsm_call(CMD_REMOTE, cpu, 0, 0);
	on_cpu(cpu, check_remote_kgs, NULL);
	unsigned s = vsm_get_reg(&vtl0_hvc, idx, HV_INPUT_VTL(1), HV_REG_CR3, v);
	report(s == HV_STATUS_ACCESS_DENIED, "VP%u VTL0: GetVpRegisters(VP%u, VTL1) => ACCESS_DENIED (0x%x)", hv_vp_of[0], idx, s);
	/* VTL1 on VP0 interrupts VP cpu's VTL1, which takes it though its VTL0 idles (halted). */
	struct vsm_vp *other = vsm_vp_of(cpu);
	u64 entries = other->entries[HV_VTL_ENTRY_INTERRUPT], irqs = test_irqs[cpu];
	vsm_call(CMD_SEND_IPI, cpu, 0, 0);
	bool taken = wait_until_at_least(&test_irqs[cpu], irqs + 1, 1UL << 32);
	report(taken && other->entries[HV_VTL_ENTRY_INTERRUPT] == entries + 1 && other->last_reason == HV_VTL_ENTRY_INTERRUPT,
	       "VP%u: VTL1's IPI from VP%u entered its VTL1 (entry reason %u) while its VTL0 idled", idx, hv_vp_of[0],
	       other->last_reason);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	vsm_init();
	vtl0_hvc = vsm_vtl0_hvc();
	vsm_register_command(CMD_ISOLATE1, vtl1_isolate1);
	vsm_register_command(CMD_ISOLATE2, vtl1_isolate2);
	vsm_register_command(CMD_SELF_IPI, vtl1_self_ipi);
	vsm_register_command(CMD_SEND_IPI, vtl1_send_ipi);
	vsm_register_command(CMD_GET, vtl1_get);
	vsm_register_command(CMD_REMOTE, vtl1_remote);
	vsm_register_irq(TEST_VECTOR, vtl1_test_irq);
	report_info("%u CPUs", cpu_count());
	if (!enable_all())
		report_summary();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, isolation, NULL);
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, self_interrupt, NULL);
	for (unsigned cpu = 1; cpu < cpu_count(); cpu++)
		test_remote(cpu);
	report_summary();
}
