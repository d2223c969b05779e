/*
 * Hyper-V CPUID leaves 0x40000000-0x4000000A and synthetic MSR availability
 * for one set of enlightenments. The set the VMM was given comes on the
 * command line, by QEMU's flag names without "hv-":
 *
 *   expect=none                      no Hyper-V interface at all
 *   expect=vpindex,synic,time,...    exactly these enlightenments
 *   spinlocks=N                      hv-spinlocks (0x40000004 EBX; default never)
 *   vendor=STRING                    hv-vendor-id (default "Microsoft Hv")
 *   build= major= minor= spack= sbranch= snumber=   hv-version-id-* to check
 *   coresharing=on                   hv-no-nonarch-coresharing=on
 *
 * What each flag sets is QEMU's table (target/i386/kvm/kvm.c,
 * kvm_hyperv_properties, and hyperv_fill_cpuids), with the bit numbers of
 * tlfs-vsm-facts.md §6.2-6.4, plus this VMM's own flags hv-xmm-output,
 * hv-tlbflush-ext (privilege 47 as §2.2 requires) and hv-vsm (§3.1, §2.14).
 * Then every synthetic MSR must #GP exactly when the privilege (or feature
 * bit) that gates it is absent from CPUID (§6.5 "Synthetic MSR access without
 * the matching privilege => #GP").
 */
#include "libguest.h"
#include "hyperv.h"

#define PRIV(n) BIT(n)

struct hv_flag {
	const char *name;
	u64 privileges;  /* 0x40000003 EBX:EAX */
	u32 features;    /* 0x40000003 EDX */
	u32 recommend;   /* 0x40000004 EAX */
};

static const struct hv_flag flags[] = {
	{ "relaxed", 0, 0, BIT(HV_REC_RELAXED_TIMING) },
	{ "vapic", PRIV(HV_PRIV_INTR_CTRL_REGS), 0, 0 }, /* + MSR APIC access recommended unless avic, below */
	{ "time", PRIV(HV_PRIV_PARTITION_REFERENCE_COUNTER) | PRIV(HV_PRIV_PARTITION_REFERENCE_TSC), 0, 0 },
	{ "crash", 0, BIT(HV_FEAT_GUEST_CRASH_MSRS), 0 },
	{ "reset", PRIV(HV_PRIV_RESET_REG), 0, 0 },
	{ "vpindex", PRIV(HV_PRIV_VP_INDEX), 0, 0 },
	{ "runtime", PRIV(HV_PRIV_VP_RUNTIME), 0, 0 },
	/* QEMU: "SynIC and Vmbus devices require messages/signals hypercalls". */
	{ "synic", PRIV(HV_PRIV_SYNIC_REGS) | PRIV(HV_PRIV_POST_MESSAGES) | PRIV(HV_PRIV_SIGNAL_EVENTS), 0, 0 },
	{ "stimer", PRIV(HV_PRIV_SYNTHETIC_TIMER_REGS), 0, 0 },
	{ "frequencies", PRIV(HV_PRIV_FREQUENCY_REGS), BIT(HV_FEAT_FREQUENCY_MSRS), 0 },
	{ "reenlightenment", PRIV(HV_PRIV_REENLIGHTENMENT_CONTROLS), 0, 0 },
	{ "tlbflush", 0, 0, BIT(HV_REC_HYPERCALL_REMOTE_FLUSH) | BIT(HV_REC_EX_PROCESSOR_MASKS) },
	{ "ipi", 0, 0, BIT(HV_REC_SYNTHETIC_CLUSTER_IPI) | BIT(HV_REC_EX_PROCESSOR_MASKS) },
	{ "stimer-direct", 0, BIT(HV_FEAT_DIRECT_SYNTHETIC_TIMERS), 0 },
	{ "avic", 0, 0, BIT(HV_REC_DEPRECATE_AUTO_EOI) },
	{ "xmm-input", 0, BIT(HV_FEAT_XMM_HYPERCALL_INPUT), 0 },
	{ "tlbflush-ext", PRIV(HV_PRIV_EXTENDED_GVA_RANGES_FLUSH), BIT(HV_FEAT_EXTENDED_GVA_RANGES_FLUSH), 0 },
	{ "xmm-output", PRIV(HV_PRIV_FAST_HYPERCALL_OUTPUT), BIT(HV_FEAT_XMM_HYPERCALL_OUTPUT), 0 },
	{ "vsm", PRIV(HV_PRIV_VSM) | PRIV(HV_PRIV_VP_REGISTERS) | PRIV(HV_PRIV_START_VIRTUAL_PROCESSOR), 0, 0 },
};

struct expected {
	bool present;
	u64 privileges;
	u32 features, recommend, spin;
	char vendor[13];
};

static const struct hv_flag *find_flag(const char *name, size_t len)
{
	if (len > 3 && strncmp(name, "hv-", 3) == 0) {
		name += 3;
		len -= 3;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(flags); i++)
		if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

static void parse_expected(struct expected *e)
{
	const char *list = arg_value("expect");
	const char *s;
	const char *vendor = arg_value("vendor");
	bool vapic = false, avic = false, any = false;

	memset(e, 0, sizeof(*e));
	if (!list)
		abort_msg("give the enabled set as expect=flag,flag,... or expect=none");
	e->spin = HV_SPINLOCK_NEVER_NOTIFY;
	if ((s = arg_value("spinlocks")))
		e->spin = (u32)strtou64(s, NULL);
	if (!vendor)
		vendor = "Microsoft Hv";
	memcpy(e->vendor, vendor, strlen(vendor) > 12 ? 12 : strlen(vendor));
	if (strcmp(list, "none") == 0)
		return;
	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const struct hv_flag *f = len ? find_flag(p, len) : NULL;

		if (len && !f)
			abort_msg("expect=: unknown flag at '%s'", p);
		if (f) {
			any = true;
			e->privileges |= f->privileges;
			e->features |= f->features;
			e->recommend |= f->recommend;
			vapic |= strcmp(f->name, "vapic") == 0;
			avic |= strcmp(f->name, "avic") == 0;
		}
		p += len + (comma != NULL);
	}
	/* Any enlightenment, or a spinlock count, makes a Hyper-V interface. */
	e->present = any || e->spin != HV_SPINLOCK_NEVER_NOTIFY;
	if (!e->present)
		return;
	/* Unconditional in QEMU's hyperv_fill_cpuids: the hypercall MSRs and CPU dynamic partitioning. */
	e->privileges |= PRIV(HV_PRIV_HYPERCALL_MSRS);
	e->features |= BIT(HV_FEAT_CPU_DYNAMIC_PARTITIONING);
	/* QEMU: the MSR APIC access recommendation comes with hv-vapic, unless hv-avic is on. */
	if (vapic && !avic)
		e->recommend |= BIT(HV_REC_MSR_APIC_ACCESS);
	if ((s = arg_value("coresharing")) && strcmp(s, "on") == 0)
		e->recommend |= BIT(HV_REC_NO_NONARCH_CORESHARING);
}

static void check_version(void)
{
	static const char *const fields[] = { "build", "major", "minor", "spack", "sbranch", "snumber" };
	struct cpuid r = cpuid(HV_CPUID_VERSION);
	/* 0x40000002 (§6.1): EAX build; EBX major 31:16, minor 15:0; ECX service pack; EDX branch 31:24, number 23:0. */
	u32 got[6] = { r.a, r.b >> 16, r.b & 0xffff, r.c, r.d >> 24, r.d & 0xffffff };
	bool any = false;

	for (unsigned i = 0; i < ARRAY_SIZE(fields); i++) {
		const char *v = arg_value(fields[i]);

		if (!v)
			continue;
		any = true;
		report(got[i] == (u32)strtou64(v, NULL), "0x40000002 %s = 0x%x (expected %s)", fields[i], got[i], v);
	}
	if (!any)
		report_info("0x40000002: build 0x%x, version %u.%u, service pack %u, branch %u, number %u",
			    got[0], got[1], got[2], got[3], got[4], got[5]);
}

static void check_leaves(const struct expected *e)
{
	char vendor[13];
	struct cpuid r;
	u32 max = hv_max_leaf();

	report(cpuid(1).c & BIT(31), "CPUID.1:ECX[31] hypervisor present");
	report(max >= HV_CPUID_MIN_MAX_LEAF && max <= 0x400000ff,
	       "0x40000000 EAX: maximum leaf 0x%x is at least 0x40000005", max);
	hv_vendor(vendor);
	report(memcmp(vendor, e->vendor, 12) == 0, "0x40000000 vendor \"%s\" (expected \"%s\")", vendor, e->vendor);

	r = cpuid(HV_CPUID_INTERFACE);
	report(r.a == HV_SIGNATURE_HV1, "0x40000001 EAX interface signature \"Hv#1\" (got 0x%x)", r.a);
	report(r.b == 0 && r.c == 0 && r.d == 0, "0x40000001 EBX-EDX reserved, zero (got 0x%x 0x%x 0x%x)", r.b, r.c, r.d);

	check_version();

	r = cpuid(HV_CPUID_FEATURES);
	report(r.a == (u32)e->privileges, "0x40000003 EAX privileges 31:0 = 0x%x (expected 0x%x)", r.a, (u32)e->privileges);
	report(r.b == (u32)(e->privileges >> 32), "0x40000003 EBX privileges 63:32 = 0x%x (expected 0x%x)",
	       r.b, (u32)(e->privileges >> 32));
	report(r.d == e->features, "0x40000003 EDX features = 0x%x (expected 0x%x)", r.d, e->features);
	report_info("0x40000003 ECX power management = 0x%x", r.c);

	r = cpuid(HV_CPUID_RECOMMENDATIONS);
	report(r.a == e->recommend, "0x40000004 EAX recommendations = 0x%x (expected 0x%x)", r.a, e->recommend);
	report(r.b == e->spin, "0x40000004 EBX spinlock retries = 0x%x (expected 0x%x)", r.b, e->spin);
	report_info("0x40000004 ECX implemented physical address bits = %u", r.c & 0x7f);

	r = cpuid(HV_CPUID_LIMITS);
	report(r.a >= cpu_count(), "0x40000005 EAX maximum VPs %u covers the %u CPUs", r.a, cpu_count());
	report_info("0x40000005 EBX maximum logical processors %u, ECX interrupt vectors %u", r.b, r.c);

	if (max >= HV_CPUID_HW_FEATURES)
		report_info("0x40000006 EAX hardware features in use = 0x%x", cpuid(HV_CPUID_HW_FEATURES).a);
	/*
	 * 0x40000007 is for the root partition only, 0x40000009/0x4000000A describe
	 * nested virtualization, which no flag here enables: all zero when published.
	 */
	static const u32 zero_leaves[] = { HV_CPUID_CPU_MANAGEMENT, HV_CPUID_NESTED_HV_FEATURES, HV_CPUID_NESTED_FEATURES };
	for (unsigned i = 0; i < ARRAY_SIZE(zero_leaves); i++) {
		u32 leaf = zero_leaves[i];

		if (leaf > max) {
			report_skip("leaf 0x%x is above the maximum leaf 0x%x", leaf, max);
			continue;
		}
		r = cpuid(leaf);
		report(!r.a && !r.b && !r.c && !r.d, "leaf 0x%x is all zero (got 0x%x 0x%x 0x%x 0x%x)",
		       leaf, r.a, r.b, r.c, r.d);
	}
}

/* A synthetic MSR and what gates it (§6.5): a privilege bit, or a 0x40000003 EDX feature bit. */
struct gated_msr {
	u32 index;
	const char *name;
	int priv, feat;  /* -1 when not gated by that kind */
	bool write;      /* also check a write of write_value (harmless when allowed) */
	u64 write_value;
	bool read_only_probe_when_denied; /* reading it when allowed would change state */
};

#define P(i, n, p) { i, n, p, -1, false, 0, false }
#define PW(i, n, p, v) { i, n, p, -1, true, v, false }
#define F(i, n, f) { i, n, -1, f, false, 0, false }
#define FW(i, n, f, v) { i, n, -1, f, true, v, false }

static const struct gated_msr msrs[] = {
	P(HV_X64_MSR_GUEST_OS_ID, "GUEST_OS_ID", HV_PRIV_HYPERCALL_MSRS),
	P(HV_X64_MSR_HYPERCALL, "HYPERCALL", HV_PRIV_HYPERCALL_MSRS),
	P(HV_X64_MSR_VP_INDEX, "VP_INDEX", HV_PRIV_VP_INDEX),
	P(HV_X64_MSR_RESET, "RESET", HV_PRIV_RESET_REG),
	P(HV_X64_MSR_VP_RUNTIME, "VP_RUNTIME", HV_PRIV_VP_RUNTIME),
	P(HV_X64_MSR_TIME_REF_COUNT, "TIME_REF_COUNT", HV_PRIV_PARTITION_REFERENCE_COUNTER),
	PW(HV_X64_MSR_REFERENCE_TSC, "REFERENCE_TSC", HV_PRIV_PARTITION_REFERENCE_TSC, 0),
	P(HV_X64_MSR_TSC_FREQUENCY, "TSC_FREQUENCY", HV_PRIV_FREQUENCY_REGS),
	P(HV_X64_MSR_APIC_FREQUENCY, "APIC_FREQUENCY", HV_PRIV_FREQUENCY_REGS),
	P(HV_X64_MSR_ICR, "ICR", HV_PRIV_INTR_CTRL_REGS),
	PW(HV_X64_MSR_TPR, "TPR", HV_PRIV_INTR_CTRL_REGS, 0),
	PW(HV_X64_MSR_VP_ASSIST_PAGE, "VP_ASSIST_PAGE", HV_PRIV_INTR_CTRL_REGS, 0),
	PW(HV_X64_MSR_SCONTROL, "SCONTROL", HV_PRIV_SYNIC_REGS, 0),
	P(HV_X64_MSR_SVERSION, "SVERSION", HV_PRIV_SYNIC_REGS),
	PW(HV_X64_MSR_SIEFP, "SIEFP", HV_PRIV_SYNIC_REGS, 0),
	PW(HV_X64_MSR_SIMP, "SIMP", HV_PRIV_SYNIC_REGS, 0),
	P(HV_X64_MSR_EOM, "EOM", HV_PRIV_SYNIC_REGS),
	PW(HV_X64_MSR_SINT(0), "SINT0", HV_PRIV_SYNIC_REGS, HV_SINT_RESET_VALUE),
	PW(HV_X64_MSR_SINT(15), "SINT15", HV_PRIV_SYNIC_REGS, HV_SINT_RESET_VALUE),
	PW(HV_X64_MSR_STIMER_CONFIG(0), "STIMER0_CONFIG", HV_PRIV_SYNTHETIC_TIMER_REGS, 0),
	PW(HV_X64_MSR_STIMER_COUNT(0), "STIMER0_COUNT", HV_PRIV_SYNTHETIC_TIMER_REGS, 0),
	PW(HV_X64_MSR_STIMER_CONFIG(3), "STIMER3_CONFIG", HV_PRIV_SYNTHETIC_TIMER_REGS, 0),
	PW(HV_X64_MSR_STIMER_COUNT(3), "STIMER3_COUNT", HV_PRIV_SYNTHETIC_TIMER_REGS, 0),
	/* Reading GUEST_IDLE idles the VP: only probed where it must #GP. */
	{ HV_X64_MSR_GUEST_IDLE, "GUEST_IDLE", HV_PRIV_GUEST_IDLE_REG, -1, false, 0, true },
	FW(HV_X64_MSR_CRASH_P(0), "CRASH_P0", HV_FEAT_GUEST_CRASH_MSRS, 0),
	F(HV_X64_MSR_CRASH_P(4), "CRASH_P4", HV_FEAT_GUEST_CRASH_MSRS),
	F(HV_X64_MSR_CRASH_CTL, "CRASH_CTL", HV_FEAT_GUEST_CRASH_MSRS),
	PW(HV_X64_MSR_REENLIGHTENMENT_CONTROL, "REENLIGHTENMENT_CONTROL", HV_PRIV_REENLIGHTENMENT_CONTROLS, 0),
	P(HV_X64_MSR_TSC_EMULATION_CONTROL, "TSC_EMULATION_CONTROL", HV_PRIV_REENLIGHTENMENT_CONTROLS),
	P(HV_X64_MSR_TSC_EMULATION_STATUS, "TSC_EMULATION_STATUS", HV_PRIV_REENLIGHTENMENT_CONTROLS),
	P(HV_X64_MSR_TSC_INVARIANT_CONTROL, "TSC_INVARIANT_CONTROL", HV_PRIV_TSC_INVARIANT_CONTROLS),
};

static void check_msrs(u64 privileges, u32 features)
{
	for (unsigned i = 0; i < ARRAY_SIZE(msrs); i++) {
		const struct gated_msr *m = &msrs[i];
		bool allowed = m->priv >= 0 ? (privileges & BIT(m->priv)) : (features & BIT(m->feat));
		const char *gate = m->priv >= 0 ? "privilege" : "feature";
		int bit = m->priv >= 0 ? m->priv : m->feat;
		u64 v;

		if (allowed && m->read_only_probe_when_denied) {
			report_skip("%s: readable by CPUID (%s %d); reading it would idle the VP", m->name, gate, bit);
			continue;
		}
		unsigned vec = rdmsr_safe(m->index, &v);
		if (allowed)
			report(vec == NO_EXCEPTION, "RDMSR %s (0x%x) works with %s bit %d set", m->name, m->index, gate, bit);
		else
			report(vec == GP_VECTOR, "RDMSR %s (0x%x) is #GP without %s bit %d (got vector %d)",
			       m->name, m->index, gate, bit, (int)vec);
		if (!m->write)
			continue;
		vec = wrmsr_safe(m->index, m->write_value);
		if (allowed)
			report(vec == NO_EXCEPTION, "WRMSR %s = 0x%lx works with %s bit %d set", m->name, m->write_value, gate, bit);
		else
			report(vec == GP_VECTOR, "WRMSR %s is #GP without %s bit %d (got vector %d)", m->name, gate, bit, (int)vec);
	}
}

int main(int argc, char **argv)
{
	struct expected e;

	(void)argc;
	(void)argv;
	parse_expected(&e);
	if (!e.present) {
		struct cpuid r = cpuid(HV_CPUID_INTERFACE);

		report(!hv_present(), "no Hyper-V interface (0x40000001 EAX = 0x%x, not \"Hv#1\")", r.a);
		check_msrs(0, 0);
		report_summary();
	}
	report(hv_present(), "Hyper-V interface detected");
	check_leaves(&e);
	/* MSR gating follows what CPUID says (which was just compared with the expected set). */
	check_msrs(hv_privileges(), hv_features());
	report_summary();
}
