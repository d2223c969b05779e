/*
 * Mode-based execute control, MBEC (tlfs-vsm-facts.md §2.12, §3.7, §3.8,
 * §4.4, §4.5), with the VSM library (lib/vsm.h) on every VP.
 *
 * 1. Enabling (BSP, VTL0): VsmCapabilities.MbecVtlMask offers MBEC for
 *    VTL1..MaximumVtl (from VsmPartitionStatus), never VTL0;
 *    EnablePartitionVtl(VTL1) asking for shadow stacks, HVPT or a reserved
 *    flag is INVALID_PARAMETER and changes nothing, with EnableMbec alone
 *    it succeeds and VsmPartitionStatus.MbecEnabledVtlSet = {VTL1}.
 * 2. ModifyVtlProtectionMask from VTL1 (EnableMbec): KX != UX with KX = 0
 *    (R+UX 0x9, R+W+UX 0xB) is accepted, like R+KX+UX 0xD; KX without UX
 *    (0x5, 0x7) and UX without R (0x8, 0xA, 0xC) are
 *    INVALID_REGISTER_VALUE with 0 reps completed.
 * 3. Registers, on each VP: VsmVpStatus.ActiveMbecEnabled is 0 in VTL0
 *    until VTL1 sets SecureConfigVtl0.MbecEnabled on that VP (so on VP1 it
 *    is still 0 after VP0's VTL1 set it), then 1; read by VTL1 it is 0
 *    (nobody enabled MBEC for VTL1). MbecEnabled reads back; TlbLocked
 *    beside it reads back in the same entry and goes with the VtlReturn,
 *    MbecEnabled stays.
 * 4. Execution, on each VP. VTL0 switches to its own page tables: the
 *    identity map as supervisor pages (so CR4.SMEP can be on), plus a code
 *    page P under three aliases: U/S=1 at every level (a user-mode
 *    address), U/S=0 in the PTE, and U/S=1 in the PTE but 0 in the PDE
 *    (not a user-mode address either). P's code counts its runs and
 *    returns a quadword of P read through the alias it runs from. CPL3
 *    code runs from a page-aligned trampoline mapped U/S=1 that loads
 *    every GPR from a user-accessible block right before its CALL into P,
 *    so a test knows the exact state at the fetch. Expected, with
 *    MbecEnabled = 1 and SMEP = 1: CPL3 runs P under R+UX (0x9); CPL0
 *    fetching P (either supervisor alias) under 0x9 or R+W+UX is an
 *    Execute intercept, not SMEP's #PF; R+KX+UX (0xD) runs both; CPL3
 *    under R (0x1) or RW (0x3) is an Execute intercept with CPL 3 in the
 *    message; CPL0 fetching the user alias is SMEP's #PF (P | I/D), not
 *    an intercept, even under 0x9; data reads of a 0x9 page work at CPL0
 *    and CPL3, a write is a Write intercept. With
 *    SMEP = 0, KX governs every fetch (CPL3 and CPL0 via the U/S=1 alias
 *    under 0x9 intercepted); SMEP on again restores UX for CPL3. With
 *    MbecEnabled = 0, KX governs (CPL3 under 0x9 intercepted), and masks
 *    with KX != UX are still accepted. The first fetch after SMEP goes off
 *    and after MbecEnabled is cleared finds P's mask as it was when the
 *    same fetch last ran (no ModifyVtlProtectionMask in between): the new
 *    rule must apply at once. Each intercept: one VTL entry with
 *    reason 3 and one SINT0 message, which VTL1 answers by setting the
 *    mask that the rule says is the least that lets the fetch (or write)
 *    through, so the re-executed access completing once also checks the
 *    rule; the message is compared byte for byte with one VTL0 builds from
 *    the faulting context (as vsm-intercept does; for an execute fault no
 *    instruction bytes and instruction length 0).
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm at any CPU count; the
 * counts in test/guests/vsm-mbec.test.ts depend on it. Without VSM every
 * check is skipped (QEMU TCG has no Hyper-V).
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"
#include "access-fn.h"

enum { CMD_GET = VSM_CMD_USER, CMD_SET_SECURE, CMD_SET_SECURE_READ };

#define PROTECTION_CONFIG (HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX))
#define R HV_MAP_GPA_READABLE
#define W HV_MAP_GPA_WRITABLE
#define KX HV_MAP_GPA_KERNEL_EXECUTABLE
#define UX HV_MAP_GPA_USER_EXECUTABLE
#define ALIAS_VA 0x5000000000UL    /* outside the identity map: the code page's first two aliases, 64 KiB per CPU */
#define MIXED_OFFSET 0x40000000UL /* the aliases with a U/S=0 PDE: a 2 MiB region per CPU */
#define DATA_OFFSET 0x800          /* the quadword P's code returns */
#define ORIGINATION_ID 1           /* as vsm-intercept: the partition's ID in intercept messages */
#define MAX_CAPTURE 4
#define PAGE_OF(p) ((u64)(p) >> HV_PAGE_SHIFT)
#define FULL_INFO (HV_MEMORY_ACCESS_GVA_VALID | HV_MEMORY_ACCESS_GVA_GPA_VALID | HV_MEMORY_ACCESS_TLB_LOCKED)

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };

// ---------------------------------------------------------------- code

/*
 * P's code, copied to offset 0 of the page: incq (%rsi); mov 0x7f6(%rip), %rax
 * (the quadword at P + 0x800, through the alias it runs from); ret.
 */
static const u8 page_code[] = { 0x48, 0xff, 0x06, 0x48, 0x8b, 0x05, 0xf6, 0x07, 0x00, 0x00, 0xc3 };
_Static_assert(3 + 7 + 0x7f6 == DATA_OFFSET, "the RIP-relative load reads P + DATA_OFFSET");

/* CPL0 accesses (lib/access-fn.h): every GPR from fc_in, the instruction, fc_out. */
ACCESS_FN(access_call, "call *%rdi");
ACCESS_FN(access_write, "add %rdx, (%rsi)");

/*
 * The CPL3 side: run_user() enters mbec_user_tramp(block) at CPL3. It loads
 * DS and ES with the user data selector, stores RFLAGS and RSP, loads every
 * GPR but RSP and RDI (the block pointer) from block->in, calls
 * block->target, stores every GPR into block->out and leaves through the
 * user-exit gate with RAX. It has a page of its own (mapped U/S=1 in
 * VTL0's tables here, supervisor otherwise): with SMEP on, CPL0 must not
 * execute a user page, and CPL3 must not touch a supervisor one, so the
 * block and the user stack are user pages too.
 */
struct ublock {
	u64 in[16];     /* GPRs at the call (message order); in[RSP] stored by the trampoline, in[RDI] = the block */
	u64 out[16];    /* GPRs after the call */
	u64 target;
	u64 rflags;     /* RFLAGS at the call */
	u64 counter;    /* P's code increments it */
};
_Static_assert(__builtin_offsetof(struct ublock, out) == 128 && __builtin_offsetof(struct ublock, target) == 256 &&
	       __builtin_offsetof(struct ublock, rflags) == 264, "the trampoline's offsets");
_Static_assert(USER_EXIT_VECTOR == 0x80 && USER_DS == 0x23, "the trampoline's constants");

u64 mbec_user_tramp(void *block);
extern const u8 mbec_user_page[], mbec_user_page_end[];
asm(".pushsection .text\n"
    ".balign 4096\n"
    ".globl mbec_user_page, mbec_user_tramp, mbec_user_page_end\n"
    "mbec_user_page:\n"
    "mbec_user_tramp:\n"
    "mov $0x23, %ax\n mov %ax, %ds\n mov %ax, %es\n"
    "pushfq\n popq 264(%rdi)\n"
    "mov %rsp, 32(%rdi)\n"
    "mov 0(%rdi), %rax\n mov 8(%rdi), %rcx\n mov 16(%rdi), %rdx\n mov 24(%rdi), %rbx\n"
    "mov 40(%rdi), %rbp\n mov 48(%rdi), %rsi\n mov 64(%rdi), %r8\n mov 72(%rdi), %r9\n"
    "mov 80(%rdi), %r10\n mov 88(%rdi), %r11\n mov 96(%rdi), %r12\n mov 104(%rdi), %r13\n"
    "mov 112(%rdi), %r14\n mov 120(%rdi), %r15\n"
    "call *256(%rdi)\n"
    "mov %rax, 128(%rdi)\n mov %rcx, 136(%rdi)\n mov %rdx, 144(%rdi)\n mov %rbx, 152(%rdi)\n"
    "mov %rsp, 160(%rdi)\n mov %rbp, 168(%rdi)\n mov %rsi, 176(%rdi)\n mov %rdi, 184(%rdi)\n"
    "mov %r8, 192(%rdi)\n mov %r9, 200(%rdi)\n mov %r10, 208(%rdi)\n mov %r11, 216(%rdi)\n"
    "mov %r12, 224(%rdi)\n mov %r13, 232(%rdi)\n mov %r14, 240(%rdi)\n mov %r15, 248(%rdi)\n"
    "mov %rax, %rdi\n int $0x80\n ud2\n"
    ".balign 4096\n"
    "mbec_user_page_end:\n"
    ".popsection\n");

// ---------------------------------------------------------------- VTL1

/* Messages VTL1's SINT0 handler saw, per CPU, and the mask it then gives the faulting page. */
struct capture {
	volatile u32 count;
	volatile u32 lift_mask;
	struct hv_message msg[MAX_CAPTURE];
};
static struct capture captured[MAX_CPUS];

/*
 * A SINT0 message (VTL1's intercept entry; no printing): keep it and give
 * the page the test's mask; from the MAX_CAPTURE-th on RWX, so a host that
 * keeps faulting cannot loop for ever.
 */
static void on_message(struct vsm_vp *vp, const struct hv_message *m)
{
	struct capture *c = &captured[vp->cpu];
	u32 k = c->count++;

	if (k < MAX_CAPTURE)
		memcpy(&c->msg[k], m, sizeof(*m));
	if (m->type != HV_MESSAGE_TYPE_GPA_INTERCEPT)
		return;
	u64 page = ((const struct hv_memory_intercept *)m->payload)->gpa >> HV_PAGE_SHIFT;
	vsm_modify_protection(&vp->hvc, HV_PARTITION_ID_SELF, k + 1 >= MAX_CAPTURE ? HV_MAP_GPA_RWX : c->lift_mask, HV_INPUT_VTL_SELF,
			      &page, 1);
}

/* GetVpRegisters(arg0) of this VP in VTL1: the value into *(u64 *)arg1, returns the status. */
static u64 vtl1_get(struct vsm_vp *vp, struct vsm_regs *regs)
{
	u64 v[2] = { ~0UL, ~0UL };
	unsigned s = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, vp->arg[0], v);

	(void)regs;
	*(volatile u64 *)vp->arg[1] = v[0];
	return s;
}

/* SecureConfigVtl0 = arg0 on this VP; returns the status. */
static u64 vtl1_set_secure(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, vp->arg[0]);
}

/* SecureConfigVtl0 = arg0, then in the same entry SecureConfigVtl0 and VsmVpStatus into arg1[0], arg1[1]; returns the status of the set. */
static u64 vtl1_set_secure_read(struct vsm_vp *vp, struct vsm_regs *regs)
{
	volatile u64 *out = (volatile u64 *)vp->arg[1];
	unsigned s = vsm_set_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, vp->arg[0]);
	u64 v[2] = { ~0UL, ~0UL };

	(void)regs;
	out[0] = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_SECURE_CONFIG_VTL0, v) == HV_STATUS_SUCCESS ? v[0] : ~0UL;
	out[1] = vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_VP_STATUS, v) == HV_STATUS_SUCCESS ? v[0] : ~0UL;
	return s;
}

// ---------------------------------------------------------------- VTL0 helpers

static bool result_is(u64 r, unsigned status, unsigned reps)
{
	return HV_RESULT_STATUS(r) == status && HV_RESULT_REPS(r) == reps;
}

/* ModifyVtlProtectionMask of one page by VTL1; returns the result value. */
static u64 protect(u64 page, u32 mask)
{
	return vsm_call(VSM_CMD_PROTECT_PAGE, PAGE_OF(page), mask, 0);
}

/* A VSM register of this VP as VTL1 reads it (~0 when the call fails, its status in *status). */
static u64 vtl1_reg(u32 name, unsigned *status)
{
	volatile u64 v = ~0UL;
	unsigned s = vsm_call(CMD_GET, name, (u64)&v, 0);

	if (status)
		*status = s;
	return s == HV_STATUS_SUCCESS ? v : ~0UL;
}

/* A VSM register of this VP as VTL0 reads it (~0 when the call fails). */
static u64 vtl0_reg(u32 name)
{
	struct vsm_hvc h = vsm_vtl0_hvc();
	u64 v[2];

	return vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, name, v) == HV_STATUS_SUCCESS ? v[0] : ~0UL;
}

// ---------------------------------------------------------------- 1, 2. enabling and masks (BSP)

static unsigned max_vtl;

/* VsmCapabilities, the refused flags and EnablePartitionVtl(VTL1, EnableMbec); then VTL1 on every VP. Returns whether VSM runs. */
static bool enabling(void)
{
	struct vsm_hvc h;
	u64 offsets, cap[2];
	unsigned s;

	vsm_init();
	h = vsm_vtl0_hvc();
	if ((s = vsm_read_code_page_offsets(&offsets)) != HV_STATUS_SUCCESS)
		return report(false, "VSM setup: GetVpRegisters(VsmCodePageOffsets) => 0x%x", s);
	u64 ps0 = vsm_get_u64(&h, HV_REG_VSM_PARTITION_STATUS);
	max_vtl = HV_PARTITION_STATUS_MAXIMUM_VTL(ps0);
	report(max_vtl >= 1 && ps0 == HV_PARTITION_STATUS(0x1, max_vtl),
	       "VTL0: VsmPartitionStatus 0x%lx before enabling: EnabledVtlSet {0}, MaximumVtl %u, MbecEnabledVtlSet {}", ps0, max_vtl);
	unsigned want = (BIT(max_vtl + 1) - 1) & ~1U; /* VTL1..MaximumVtl */
	s = vsm_get_reg(&h, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_CAPABILITIES, cap);
	report(s == HV_STATUS_SUCCESS && HV_VSM_CAPABILITIES_MBEC_VTL_MASK(cap[0]) == want,
	       "VTL0: VsmCapabilities 0x%lx (0x%x): MbecVtlMask 0x%x = VTL1..VTL%u, not VTL0", cap[0], s,
	       HV_VSM_CAPABILITIES_MBEC_VTL_MASK(cap[0]), max_vtl);

	static const u8 refused[] = {
		HV_ENABLE_PARTITION_VTL_SUPERVISOR_SHADOW_STACK, HV_ENABLE_PARTITION_VTL_HARDWARE_HVPT,
		HV_ENABLE_PARTITION_VTL_MBEC | HV_ENABLE_PARTITION_VTL_SUPERVISOR_SHADOW_STACK, HV_ENABLE_PARTITION_VTL_MBEC | BIT(3),
	};
	for (unsigned i = 0; i < ARRAY_SIZE(refused); i++) {
		s = vsm_enable_partition_vtl_flags(&h, HV_PARTITION_ID_SELF, 1, refused[i]);
		u64 ps = vsm_get_u64(&h, HV_REG_VSM_PARTITION_STATUS);
		report(s == HV_STATUS_INVALID_PARAMETER && ps == ps0,
		       "VTL0: EnablePartitionVtl(VTL1, flags 0x%x) => INVALID_PARAMETER (0x%x); VsmPartitionStatus still 0x%lx", refused[i], s, ps);
	}
	s = vsm_enable_partition_vtl_flags(&h, HV_PARTITION_ID_SELF, 1, HV_ENABLE_PARTITION_VTL_MBEC);
	u64 ps = vsm_get_u64(&h, HV_REG_VSM_PARTITION_STATUS);
	report(s == HV_STATUS_SUCCESS && ps == (HV_PARTITION_STATUS(0x3, max_vtl) | HV_PARTITION_STATUS_MBEC_SET(0x2)),
	       "VTL0: EnablePartitionVtl(VTL1, EnableMbec) => SUCCESS (0x%x); VsmPartitionStatus 0x%lx: EnabledVtlSet {0, 1}, MbecEnabledVtlSet {1}",
	       s, ps);
	if (s != HV_STATUS_SUCCESS) {
		/* Go on without MBEC, so every later check still reports. */
		s = vsm_enable_partition_vtl(&h, HV_PARTITION_ID_SELF, 1);
		if (s != HV_STATUS_SUCCESS)
			return report(false, "VSM setup: EnablePartitionVtl(self, VTL1) => 0x%x", s);
	}
	if (!vsm_setup_vps())
		return false;

	u64 cap1 = vtl1_reg(HV_REG_VSM_CAPABILITIES, &s);
	u64 ps1 = vtl1_reg(HV_REG_VSM_PARTITION_STATUS, NULL);
	report(s == HV_STATUS_SUCCESS && cap1 == cap[0] && ps1 == ps,
	       "VTL1: VsmCapabilities 0x%lx and VsmPartitionStatus 0x%lx, as VTL0 read them", cap1, ps1);
	u64 r = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	report(r == HV_STATUS_SUCCESS, "VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX => SUCCESS (0x%lx)", r);
	return true;
}

static void masks(void)
{
	static const struct { u32 mask; const char *name; unsigned status; unsigned reps; } cases[] = {
		{ R | UX, "R+UX", HV_STATUS_SUCCESS, 1 },
		{ R | W | UX, "R+W+UX", HV_STATUS_SUCCESS, 1 },
		{ R | KX | UX, "R+KX+UX", HV_STATUS_SUCCESS, 1 },
		{ R | KX, "R+KX: KX without UX", HV_STATUS_INVALID_REGISTER_VALUE, 0 },
		{ R | W | KX, "R+W+KX: KX without UX", HV_STATUS_INVALID_REGISTER_VALUE, 0 },
		{ UX, "UX without R", HV_STATUS_INVALID_REGISTER_VALUE, 0 },
		{ W | UX, "W+UX without R", HV_STATUS_INVALID_REGISTER_VALUE, 0 },
		{ KX | UX, "KX+UX without R", HV_STATUS_INVALID_REGISTER_VALUE, 0 },
	};
	u64 page = (u64)alloc_page();

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		u64 r = protect(page, cases[i].mask);
		report(result_is(r, cases[i].status, cases[i].reps), "VTL1 (EnableMbec): ModifyVtlProtectionMask 0x%x (%s) => %s, %u rep%s (0x%lx)",
		       cases[i].mask, cases[i].name, cases[i].status ? "INVALID_REGISTER_VALUE" : "SUCCESS", cases[i].reps,
		       cases[i].reps == 1 ? "" : "s", r);
	}
	u64 r = protect(page, HV_MAP_GPA_RWX);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VTL1: ModifyVtlProtectionMask 0xf (RWX) of the page again => SUCCESS (0x%lx)", r);
}

// ---------------------------------------------------------------- 3. registers (each VP)

static volatile unsigned vps_with_mbec;

static void registers(void *arg)
{
	unsigned vp = hv_vp_index(), s;
	u64 st0 = vtl0_reg(HV_REG_VSM_VP_STATUS);

	(void)arg;
	report(st0 == HV_VP_STATUS(0, 0x3), "VP%u VTL0: VsmVpStatus 0x%lx: ActiveMbecEnabled 0 before VTL1 set MbecEnabled on this VP (set on %u other VP%s)",
	       vp, st0, vps_with_mbec, vps_with_mbec == 1 ? "" : "s");
	u64 st1 = vtl1_reg(HV_REG_VSM_VP_STATUS, NULL);
	u64 sc = vtl1_reg(HV_REG_VSM_VP_SECURE_CONFIG_VTL0, NULL);
	report(st1 == HV_VP_STATUS(1, 0x3) && sc == 0, "VP%u VTL1: VsmVpStatus 0x%lx: ActiveMbecEnabled 0 (MBEC is not enabled for VTL1); SecureConfigVtl0 0x%lx",
	       vp, st1, sc);
	s = vsm_call(CMD_SET_SECURE, HV_VSM_VP_SECURE_CONFIG_MBEC_ENABLED, 0, 0);
	sc = vtl1_reg(HV_REG_VSM_VP_SECURE_CONFIG_VTL0, NULL);
	report(s == HV_STATUS_SUCCESS && sc == HV_VSM_VP_SECURE_CONFIG_MBEC_ENABLED,
	       "VP%u VTL1: SecureConfigVtl0 MbecEnabled => SUCCESS (0x%x), reads 0x%lx", vp, s, sc);
	if (s == HV_STATUS_SUCCESS)
		vps_with_mbec++;
	st0 = vtl0_reg(HV_REG_VSM_VP_STATUS);
	report(st0 == (HV_VP_STATUS(0, 0x3) | HV_VP_STATUS_ACTIVE_MBEC_ENABLED),
	       "VP%u VTL0: VsmVpStatus 0x%lx: ActiveMbecEnabled 1 once VTL1 set MbecEnabled for VTL0 on this VP", vp, st0);
	volatile u64 in_entry[2] = { ~0UL, ~0UL };
	s = vsm_call(CMD_SET_SECURE_READ, HV_VSM_VP_SECURE_CONFIG_MBEC_ENABLED | HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED, (u64)in_entry, 0);
	sc = vtl1_reg(HV_REG_VSM_VP_SECURE_CONFIG_VTL0, NULL);
	st0 = vtl0_reg(HV_REG_VSM_VP_STATUS);
	report(s == HV_STATUS_SUCCESS && in_entry[0] == 0x3 && in_entry[1] == HV_VP_STATUS(1, 0x3) && sc == HV_VSM_VP_SECURE_CONFIG_MBEC_ENABLED &&
	       st0 == (HV_VP_STATUS(0, 0x3) | HV_VP_STATUS_ACTIVE_MBEC_ENABLED),
	       "VP%u VTL1: SecureConfigVtl0 MbecEnabled | TlbLocked => SUCCESS (0x%x), reads 0x%lx in that entry (VsmVpStatus 0x%lx), "
	       "0x%lx in the next (TlbLocked went with the VtlReturn, MbecEnabled stayed); VTL0's VsmVpStatus 0x%lx",
	       vp, s, in_entry[0], in_entry[1], sc, st0);
}

// ---------------------------------------------------------------- 4. execution (each VP)

struct mbec_vp {
	u64 *root;             /* VTL0's tables for the test */
	u8 *page;              /* P */
	u64 uva, sva;          /* P's U/S=1 and U/S=0 aliases */
	u64 xva;               /* P's alias with U/S=1 in the PTE but not in the PDE: a supervisor address */
	u64 data;              /* the quadword at P + DATA_OFFSET */
	struct ublock *ub;     /* user page */
	unsigned vp;
};

/* What one run should do and, if it faults, the mask VTL1 then sets. */
struct run {
	const char *what;
	bool user;             /* CPL3 through the trampoline to uva; else CPL0 access_call to `va` */
	u64 va;                /* CPL0: the alias called */
	u32 mask;              /* P's mask for the run */
	u32 lift;              /* 0: no intercept expected; else VTL1's mask after the intercept */
	bool keep;             /* P has `mask` already (the previous run set it and ran): no ModifyVtlProtectionMask */
};

static void fill_gprs(u64 *gprs, unsigned tag)
{
	for (unsigned k = 0; k < 16; k++)
		gprs[k] = 0x1000000000000000UL * (k + 1) + 0x10101UL * tag + smp_id();
}

static void call_access(void *fn)
{
	((void (*)(void))fn)();
}

/* The GpaIntercept message for an execute fault at `rip` (P's alias) in VTL0's state now. */
static void expected_exec(struct hv_message *m, const struct mbec_vp *v, bool user, u64 rip)
{
	struct hv_memory_intercept *p = (void *)m->payload;

	memset(m, 0, sizeof(*m));
	m->type = HV_MESSAGE_TYPE_GPA_INTERCEPT;
	m->payload_size = HV_MEMORY_INTERCEPT_BYTES;
	m->origin = ORIGINATION_ID;
	vsm_intercept_header(&p->header, HV_INTERCEPT_ACCESS_EXECUTE, 0, rip, user ? v->ub->rflags : fc_rflags);
	if (user) {
		p->header.execution_state = (p->header.execution_state & ~3) | 3;
		p->header.cs = vsm_gdt_segment(USER_CS);
	}
	p->cache_type = HV_CACHE_TYPE_WB;
	p->access_info = FULL_INFO;
	p->gva = rip;
	p->gpa = (u64)v->page;
	p->ds = vsm_gdt_segment(user ? USER_DS : read_ds());
	p->ss = vsm_gdt_segment(user ? USER_DS : read_ss());
	memcpy(p->gprs, user ? v->ub->in : fc_in, sizeof(p->gprs));
	p->gprs[RSP] -= 8; /* the CALL's return address */
}

/*
 * Sets P's mask, runs P's code once (CPL3 from uva or CPL0 from r->va),
 * with VTL1 setting r->lift at an intercept; checks that the code ran once
 * and that intercepts happened as expected (1 check, or 2 with an
 * intercept: the second compares the message).
 */
static void run_code(struct mbec_vp *v, const struct run *r, unsigned tag)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct capture *c = &captured[smp_id()];
	u64 entries = vp->entries[HV_VTL_ENTRY_INTERCEPT], got = ~0UL;
	struct ex_info ex;
	bool faulted;
	char who[160];

	snprintf(who, sizeof(who), "VP%u %s, mask 0x%x", v->vp, r->what, r->mask);
	u64 pr = r->keep ? 0 : protect((u64)v->page, r->mask);
	bool mask_ok = r->keep || result_is(pr, HV_STATUS_SUCCESS, 1);
	char how[40];
	if (r->keep)
		snprintf(how, sizeof(how), "mask kept");
	else
		snprintf(how, sizeof(how), "mask => 0x%lx", pr);
	c->count = 0;
	memset(&c->msg[0], 0, sizeof(c->msg[0]));
	c->lift_mask = r->lift;
	v->ub->counter = 0;
	if (r->user) {
		fill_gprs(v->ub->in, tag);
		v->ub->in[RSI] = (u64)&v->ub->counter;
		v->ub->in[RDI] = (u64)v->ub;
		v->ub->target = v->uva;
		faulted = run_user(mbec_user_tramp, v->ub, &got, &ex);
	} else {
		fill_gprs(fc_in, tag);
		fc_in[RSI] = (u64)&v->ub->counter;
		fc_in[RDI] = r->va;
		faulted = expect_exception(call_access, (void *)access_call, &ex);
		got = fc_out[RAX];
	}
	u64 n = vp->entries[HV_VTL_ENTRY_INTERCEPT] - entries;
	unsigned want = r->lift ? 1 : 0;
	const u64 *in = r->user ? v->ub->in : fc_in, *out = r->user ? v->ub->out : fc_out;
	bool others = true;
	for (unsigned k = 0; k < 16; k++)
		others &= k == RAX || out[k] == in[k];
	if (faulted)
		printf("  %s: exception %u (%s), error code 0x%lx, RIP 0x%lx, CR2 0x%lx\n", who, ex.vector, exception_mnemonic(ex.vector),
		       ex.error_code, ex.rip, ex.cr2);
	if (!r->lift) {
		report(mask_ok && !faulted && got == v->data && others && v->ub->counter == 1 && n == 0 && c->count == 0,
		       "%s: ran (RAX 0x%lx, read from P, counter %lu, other GPRs unchanged), no intercept (%lu) (%s)", who, got, v->ub->counter, n,
		       how);
		return;
	}
	report(mask_ok && !faulted && got == v->data && others && v->ub->counter == 1 && n == want && c->count == want &&
	       vp->last_reason == HV_VTL_ENTRY_INTERCEPT,
	       "%s: %lu intercept (VTL entry with reason 3, %u SINT0 message); with VTL1's mask 0x%x it ran once (RAX 0x%lx, counter %lu, other GPRs unchanged) (%s)",
	       who, n, c->count, r->lift, got, v->ub->counter, how);
	struct hv_message m;
	expected_exec(&m, v, r->user, r->user ? v->uva : r->va);
	const struct hv_memory_intercept *p = (const void *)c->msg[0].payload;
	report(c->count >= 1 && vsm_same_bytes(who, &c->msg[0], &m, sizeof(m)),
	       "%s: the message is the GpaIntercept expected, byte for byte (Execute, CPL %u, GVA 0x%lx, GPA 0x%lx, info 0x%x, %u instruction bytes)", who,
	       p->header.execution_state & 3, p->gva, p->gpa, p->access_info, p->insn_byte_count);
}

/* CPL0 fetch through the U/S=1 alias with SMEP on: #PF (present, instruction fetch), before any VTL check. */
static void smep_fault(struct mbec_vp *v)
{
	struct vsm_vp *vp = vsm_this_vp();
	u64 entries = vp->entries[HV_VTL_ENTRY_INTERCEPT];
	struct ex_info ex;

	u64 pr = protect((u64)v->page, R | UX);
	captured[smp_id()].count = 0;
	v->ub->counter = 0;
	fill_gprs(fc_in, 9);
	fc_in[RSI] = (u64)&v->ub->counter;
	fc_in[RDI] = v->uva;
	bool faulted = expect_exception(call_access, (void *)access_call, &ex);
	u64 n = vp->entries[HV_VTL_ENTRY_INTERCEPT] - entries;
	report(result_is(pr, HV_STATUS_SUCCESS, 1) && faulted && ex.vector == PF_VECTOR && ex.error_code == (PFERR_PRESENT | PFERR_FETCH) &&
	       ex.cr2 == v->uva && ex.rip == v->uva && v->ub->counter == 0 && n == 0,
	       "VP%u SMEP: CPL0 call into the U/S=1 alias, mask 0x9: #PF (vector %u, error 0x%lx, CR2 0x%lx), no intercept (%lu) (mask => 0x%lx)",
	       v->vp, faulted ? ex.vector : 0, ex.error_code, ex.cr2, n, pr);
}

/* Data: a 0x9 page reads at CPL0 through both aliases; a CPL0 write is a Write intercept, which VTL1 answers with R+W+UX. */
static void data_accesses(struct mbec_vp *v)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct capture *c = &captured[smp_id()];
	u64 entries = vp->entries[HV_VTL_ENTRY_INTERCEPT];
	u64 a = v->sva + DATA_OFFSET;

	u64 pr = protect((u64)v->page, R | UX);
	c->count = 0;
	u64 rs = readq(a), ru = readq(v->uva + DATA_OFFSET);
	u64 n = vp->entries[HV_VTL_ENTRY_INTERCEPT] - entries;
	report(result_is(pr, HV_STATUS_SUCCESS, 1) && rs == v->data && ru == v->data && n == 0,
	       "VP%u CPL0 reads of a 0x9 page through both aliases: 0x%lx, 0x%lx, no intercept (%lu) (mask => 0x%lx)", v->vp, rs, ru, n, pr);

	memset(&c->msg[0], 0, sizeof(c->msg[0]));
	c->lift_mask = R | W | UX;
	fill_gprs(fc_in, 10);
	fc_in[RSI] = a;
	access_write();
	n = vp->entries[HV_VTL_ENTRY_INTERCEPT] - entries;
	u64 now = readq(a);
	report(n == 1 && c->count == 1 && now == v->data + fc_in[RDX] && memcmp(fc_out, fc_in, sizeof(fc_in)) == 0,
	       "VP%u CPL0 write to a 0x9 page: %lu intercept, %u message; with VTL1's mask 0xb the write completed once (0x%lx), GPRs unchanged",
	       v->vp, n, c->count, now);
	struct hv_message m;
	struct hv_memory_intercept *p = (void *)m.payload;
	unsigned len = access_write_end - access_write_insn;
	memset(&m, 0, sizeof(m));
	m.type = HV_MESSAGE_TYPE_GPA_INTERCEPT;
	m.payload_size = HV_MEMORY_INTERCEPT_BYTES;
	m.origin = ORIGINATION_ID;
	vsm_intercept_header(&p->header, HV_INTERCEPT_ACCESS_WRITE, len, (u64)access_write_insn, fc_rflags);
	p->cache_type = HV_CACHE_TYPE_WB;
	p->insn_byte_count = len;
	p->access_info = FULL_INFO;
	p->gva = a;
	p->gpa = (u64)v->page + DATA_OFFSET;
	memcpy(p->insn_bytes, access_write_insn, len);
	p->ds = vsm_gdt_segment(read_ds());
	p->ss = vsm_gdt_segment(read_ss());
	memcpy(p->gprs, fc_in, sizeof(p->gprs));
	report(c->count >= 1 && vsm_same_bytes("write", &c->msg[0], &m, sizeof(m)),
	       "VP%u CPL0 write to a 0x9 page: the message is the GpaIntercept expected, byte for byte (Write, GVA 0x%lx, GPA 0x%lx)", v->vp, a,
	       (u64)v->page + DATA_OFFSET);
	writeq(a, v->data);
}

/* VTL0's tables for this VP: supervisor identity map, P's aliases, the trampoline, block and user stack as user pages. */
static void build(struct mbec_vp *v)
{
	struct percpu *pc = this_cpu();

	v->vp = hv_vp_index();
	v->root = vm_identity_root(PTE_W);
	for (u64 pa = 3UL << 30; pa < (4UL << 30); pa += LARGE_PAGE_SIZE)
		*vm_walk(v->root, pa, PT_LEVEL_2M, false) |= PTE_PCD | PTE_PWT; /* as the boot tables: MMIO uncached */
	v->page = alloc_page();
	v->data = 0xda7a000000000000UL | ((u64)smp_id() << 32) | 0x5a5a;
	memcpy(v->page, page_code, sizeof(page_code));
	writeq((u64)v->page + DATA_OFFSET, v->data);
	v->uva = ALIAS_VA + 0x10000UL * smp_id();
	v->sva = v->uva + PAGE_SIZE;
	map_4k(v->root, v->uva, (u64)v->page, PTE_U);
	map_4k(v->root, v->sva, (u64)v->page, PTE_W);
	v->xva = ALIAS_VA + MIXED_OFFSET + LARGE_PAGE_SIZE * smp_id();
	map_4k(v->root, v->xva, (u64)v->page, PTE_U);
	*vm_walk(v->root, v->xva, PT_LEVEL_2M, false) &= ~PTE_U; /* the PDE (a table entry: vm_walk made it P|W|U) */
	v->ub = alloc_page();
	map_4k(v->root, (u64)v->ub, (u64)v->ub, PTE_W | PTE_U);
	for (u64 a = (u64)mbec_user_page; a < (u64)mbec_user_page_end; a += PAGE_SIZE)
		map_4k(v->root, a, a, PTE_U);
	if (!pc->user_stack_top)
		pc->user_stack_top = (u64)alloc_pages(2) + 2 * PAGE_SIZE; /* run_user()'s stack: two pages */
	for (u64 a = pc->user_stack_top - 2 * PAGE_SIZE; a < pc->user_stack_top; a += PAGE_SIZE)
		map_4k(v->root, a, a, PTE_W | PTE_U);
}

static void execution(void *arg)
{
	struct mbec_vp mv, *v = &mv;
	u64 old_cr3 = read_cr3(), old_cr4 = read_cr4();
	unsigned s;

	u64 entries = vsm_this_vp()->entries[HV_VTL_ENTRY_INTERCEPT];
	unsigned planned = 1; /* the write in data_accesses() */

	(void)arg;
	build(v);
	write_cr3((u64)v->root);
	set_cr4_bits(X86_CR4_SMEP, 0);

	/* MbecEnabled = 1, SMEP = 1: CPL3 fetches from the U/S=1 alias need UX, every other fetch KX. */
	struct run with_smep[] = {
		{ "CPL3 call into the U/S=1 alias (UX)", true, 0, R | UX, 0, false },
		{ "CPL0 call into the U/S=0 alias (KX = 0)", false, v->sva, R | UX, R | KX | UX, false },
		{ "CPL0 call into the U/S=0 alias (KX)", false, v->sva, R | KX | UX, 0, false },
		{ "CPL3 call into the U/S=1 alias (UX)", true, 0, R | KX | UX, 0, false },
		{ "CPL3 call into the U/S=1 alias (UX = 0)", true, 0, R, R | UX, false },
		{ "CPL3 call into the U/S=1 alias (UX = 0)", true, 0, R | W, R | W | UX, false },
		{ "CPL0 call into the U/S=0 alias (KX = 0)", false, v->sva, R | W | UX, HV_MAP_GPA_RWX, false },
		{ "CPL0 call into the alias with U/S=1 in its PTE, 0 in its PDE (not a user address: KX = 0, no SMEP #PF)", false, v->xva,
		  R | UX, R | KX | UX, false },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(with_smep); i++) {
		run_code(v, &with_smep[i], i);
		planned += with_smep[i].lift != 0;
	}
	smep_fault(v);
	data_accesses(v);
	/* 0x9 again: CPL3 runs P, so the fetch has been allowed (and may be cached) when the rule changes below. */
	struct run again = { "CPL3 call into the U/S=1 alias (UX), again", true, 0, R | UX, 0, false };
	run_code(v, &again, 19);

	/* SMEP = 0: KX governs every fetch (§3.8 "MBEC + SMEP"); the first run with the mask as it was. */
	set_cr4_bits(0, X86_CR4_SMEP);
	struct run without_smep[] = {
		{ "SMEP off: CPL3 call into the U/S=1 alias (KX = 0)", true, 0, R | UX, R | KX | UX, true },
		{ "SMEP off: CPL0 call into the U/S=1 alias (KX = 0)", false, v->uva, R | UX, R | KX | UX, false },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(without_smep); i++) {
		run_code(v, &without_smep[i], 20 + i);
		planned += without_smep[i].lift != 0;
	}
	set_cr4_bits(X86_CR4_SMEP, 0);
	struct run smep_again = { "SMEP on again: CPL3 call into the U/S=1 alias (UX)", true, 0, R | UX, 0, false };
	run_code(v, &smep_again, 30);

	/*
	 * MbecEnabled = 0 (P's mask still 0x9 from the run before, which ran):
	 * KX governs; masks with KX != UX stay acceptable (VTL1 was enabled
	 * with EnableMbec).
	 */
	s = vsm_call(CMD_SET_SECURE, 0, 0, 0);
	u64 sc = vtl1_reg(HV_REG_VSM_VP_SECURE_CONFIG_VTL0, NULL);
	u64 st0 = vtl0_reg(HV_REG_VSM_VP_STATUS);
	report(s == HV_STATUS_SUCCESS && sc == 0 && st0 == HV_VP_STATUS(0, 0x3),
	       "VP%u VTL1: SecureConfigVtl0 0 => SUCCESS (0x%x), reads 0x%lx; VTL0's VsmVpStatus 0x%lx: ActiveMbecEnabled 0", v->vp, s, sc, st0);
	struct run without_mbec = { "MbecEnabled 0: CPL3 call into the U/S=1 alias (KX = 0)", true, 0, R | UX, R | KX | UX, true };
	run_code(v, &without_mbec, 40);
	planned++;
	u64 r = protect((u64)v->page, R | W | UX);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VP%u MbecEnabled 0: ModifyVtlProtectionMask 0xb (R+W+UX) still => SUCCESS (0x%lx)", v->vp, r);
	r = protect((u64)v->page, R | UX);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VP%u MbecEnabled 0: ModifyVtlProtectionMask 0x9 (R+UX) still => SUCCESS (0x%lx)", v->vp, r);

	r = protect((u64)v->page, HV_MAP_GPA_RWX);
	write_cr4(old_cr4);
	write_cr3(old_cr3);
	u64 n = vsm_this_vp()->entries[HV_VTL_ENTRY_INTERCEPT] - entries;
	report(result_is(r, HV_STATUS_SUCCESS, 1) && n == planned, "VP%u: %lu intercepts in all, the %u planned; P RWX again (0x%lx), VTL0 back on the boot tables",
	       v->vp, n, planned, r);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	if (!cpu_has_smep()) {
		report_skip("no SMEP (CPUID.7.0:EBX[7]): MBEC's user-mode execute checks need it");
		report_summary();
	}
	vsm_register_command(CMD_GET, vtl1_get);
	vsm_register_command(CMD_SET_SECURE, vtl1_set_secure);
	vsm_register_command(CMD_SET_SECURE_READ, vtl1_set_secure_read);
	vsm_register_message_handler(on_message);
	if (!enabling())
		report_summary();
	report_info("%u CPUs, MaximumVtl %u", cpu_count(), max_vtl);
	masks();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, registers, NULL);
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, execution, NULL);
	report_summary();
}
