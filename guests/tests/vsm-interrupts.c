/*
 * Interrupts across VTLs (tlfs-vsm-facts.md §3.2, §3.4, §3.10, §4.1, §6.5;
 * PV IPIs §2.5, §2.6, §2.11; GetVpIndexFromApicId §2.17), with VTL1 on
 * every VP through the VSM library (lib/vsm.h).
 *
 * Every test vector has a handler in both VTLs (VTL0's IDT and VTL1's
 * through vsm_register_irq) that counts per (VTL, CPU, vector), so each
 * check says exactly which VTL of which VP took an interrupt. "Nothing else
 * arrived" is proved with a fence: an interrupt of a lower vector sent
 * afterwards to the same (VP, VTL) and waited for; a pending test vector
 * would have been delivered before it (higher vectors first).
 *
 * - APIC IPIs go to the sender's VTL (§3.10): VTL0's reach VTL0 of the
 *   target and never enter its VTL1; VTL1's reach VTL1 of the target and
 *   enter it at once (entry reason 2) while its VTL0 spins, with IF = 0 and
 *   with IF = 1 (VTL1 reads VTL0's RFLAGS in its handler). An interrupt for
 *   VTL0 (APIC IPI, PV IPI naming VTL0, VTL0's APIC timer, VTL0's synthetic
 *   timer) arriving while the VP is in VTL1 stays pending until VTL1
 *   returns: VTL1 watches VTL0's handler count, then VTL0 takes it.
 * - Timers: VTL1's one-shot APIC timer and its direct-mode synthetic timer
 *   enter VTL1 while VTL0 spins with IF = 0; VTL0's own timers reach VTL0.
 *   VTL1's TPR blocking its expired timer's vector means no entry, until
 *   VTL1 lowers its TPR: then the VP comes right back into VTL1 (§3.10).
 * - Per-VTL APIC (§3.2): TPR (CR8), LVT timer, divide and initial count
 *   are separate; VTL1 disabling its APIC (SVR bit 8, then IA32_APIC_BASE
 *   enable) leaves VTL0's APIC enabled and delivering; VTL1's APIC works
 *   again once re-enabled.
 * - Per-VTL synthetic MSRs (§6.5): STIMERn_CONFIG/COUNT and REFERENCE_TSC
 *   are private; TIME_REF_COUNT and the TSC pages of both VTLs give one
 *   clock: VTL0, VTL1, VTL0 read page and MSR in turn and every value is
 *   >= the one before; both pages hold the same scale and offset.
 * - PV IPIs (§2.6, hc-vp.ts): VTL0 naming VTL1 => ACCESS_DENIED; VTL1
 *   naming VTL0 reaches VTL0 (also of a VP sitting in VTL1, where it
 *   waits); VTL1 naming VTL1 (or its own VTL implicitly) enters VTL1 of the
 *   target; the Ex form with a sparse VP set reaches exactly that set; bad
 *   vector, Flags, reserved input-VTL bits or VP set => INVALID_PARAMETER.
 * - GetVpIndexFromApicId (§2.17) from both VTLs for every CPU's APIC ID,
 *   and its negative cases.
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm,hv-ipi,hv-time,
 * hv-stimer,hv-stimer-direct,hv-frequencies and --smp 2 or more; the counts
 * in test/guests/vsm-interrupts.test.ts depend on it.
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"

enum {
	CMD_SEND_IPI = VSM_CMD_USER, /* arg0 = APIC ID, arg1 = vector: a fixed IPI from VTL1 */
	CMD_SELF_IPI,                /* arg0 = vector: VTL1 self-IPI, then VtlReturn (the VP comes right back) */
	CMD_HOLD,                    /* stay in VTL1 until arg0's flag is set, then arg1 scheduling rounds */
	CMD_HOLD_UNTIL,              /* stay in VTL1 until TIME_REF_COUNT > arg0 */
	CMD_APIC_TIMER,              /* arg0 = vector, arg1 = initial count: VTL1's one-shot APIC timer (divide 1) */
	CMD_SET_TPR,                 /* arg0 = VTL1's TPR */
	CMD_STIMER,                  /* arg0 = timer, arg1 = CONFIG, arg2 = COUNT: VTL1's synthetic timer */
	CMD_MSRS,                    /* arg0 = struct msr_io *: read, then write, VTL1's MSRs */
	CMD_APIC_REGS,               /* arg0 = struct apic_regs *: read VTL1's, then write arg1's (if not NULL) */
	CMD_APIC_SW_DISABLE,         /* arg0 = 1: SVR bit 8 clear; 0: set again; returns SVR */
	CMD_APIC_HW_DISABLE,         /* arg0 = 1: IA32_APIC_BASE enable clear; 0: as it was again; returns the MSR */
	CMD_CLOCK,                   /* arg0 = struct clock_read *: VTL1's TSC page time and TIME_REF_COUNT */
	CMD_PV_IPI,                  /* arg0 = struct pv_ipi *: returns the hypercall result */
	CMD_APIC_LOOKUP,             /* arg0 = struct lookup *: returns the hypercall result */
};

/* Test vectors; FENCE is the lowest, so a pending test vector is delivered before it. */
#define V_FENCE 0x50
#define V_IPI 0x61
#define V_TIMER 0x62
#define V_STIMER 0x63
#define V_PV 0x64
static const u8 vectors[] = { V_FENCE, V_IPI, V_TIMER, V_STIMER, V_PV };
#define NVEC (sizeof(vectors))

#define WAIT (1UL << 30)  /* TSC cycles to wait for an interrupt that must come */
#define HOLD_ROUNDS 64    /* PAUSEs (each ends the VP's quantum) a VTL1 hold lasts after its event */
#define TIMER_COUNT 20000 /* APIC timer ticks (divide 1) */
#define STIMER_DELAY 200  /* reference units (100 ns) until a synthetic timer fires */
#define VTL1_BLOCKING_TPR 0x70 /* priority class 7: blocks every test vector */

/* hits[vtl][cpu][i]: interrupts of vectors[i] taken by that VTL of that CPU. */
static volatile u64 hits[2][MAX_CPUS][NVEC];
/* VTL0's RFLAGS as VTL1 found it at its last interrupt entry (GetVpRegisters). */
static volatile u64 vtl0_rflags[MAX_CPUS];
static struct vsm_hvc vtl0_hvc;

static unsigned vec_index(unsigned vector)
{
	for (unsigned i = 0; i < NVEC; i++)
		if (vectors[i] == vector)
			return i;
	abort_msg("vector 0x%x is not a test vector", vector);
}

static volatile u64 *hit(unsigned vtl, unsigned cpu, unsigned vector)
{
	return &hits[vtl][cpu][vec_index(vector)];
}

static void vtl0_irq(struct ex_regs *regs)
{
	(*hit(0, smp_id(), regs->vector))++;
	apic_eoi();
}

static void vtl1_irq(struct vsm_vp *vp, unsigned vector)
{
	u64 v[2];

	if (vsm_get_reg(&vp->hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(0), HV_REG_RFLAGS, v) == HV_STATUS_SUCCESS)
		vtl0_rflags[vp->cpu] = v[0];
	(*hit(1, vp->cpu, vector))++;
}

static bool wait_hit(unsigned vtl, unsigned cpu, unsigned vector, u64 want)
{
	return wait_until_at_least(hit(vtl, cpu, vector), want, WAIT);
}

/* Fences: every interrupt sent to (cpu, VTL) before has been taken once this returns true. */
static bool fence0(unsigned cpu)
{
	u64 b = *hit(0, cpu, V_FENCE);

	if (cpu == smp_id())
		apic_self_ipi(V_FENCE);
	else
		apic_send_ipi(cpu_apic_id(cpu), V_FENCE);
	return wait_hit(0, cpu, V_FENCE, b + 1);
}

static bool fence1(unsigned cpu)
{
	u64 b = *hit(1, cpu, V_FENCE);

	if (cpu == smp_id())
		vsm_call(CMD_SELF_IPI, V_FENCE, 0, 0);
	else
		vsm_call(CMD_SEND_IPI, cpu_apic_id(cpu), V_FENCE, 0);
	return wait_hit(1, cpu, V_FENCE, b + 1);
}

static u64 entries2(unsigned cpu)
{
	return vsm_vp_of(cpu)->entries[HV_VTL_ENTRY_INTERRUPT];
}

// ---------------------------------------------------------------- hypercall helpers (either VTL)

struct pv_ipi {
	bool ex;
	u32 vector;
	u8 target_vtl, flags;
	u64 mask;              /* non-Ex */
	u64 valid_banks;       /* Ex, sparse format */
	unsigned nbanks;       /* bank words written and announced as the variable header */
	u64 banks[2];
};

static u64 pv_ipi_call(const struct vsm_hvc *h, const struct pv_ipi *p)
{
	if (!p->ex) {
		struct hv_ipi_input *in = (void *)h->in;
		memset(in, 0, sizeof(*in));
		in->vector = p->vector;
		in->target_vtl = p->target_vtl;
		in->flags = p->flags;
		in->processor_mask = p->mask;
		return vsm_hvc_call(h, HVCALL_SEND_SYNTHETIC_CLUSTER_IPI);
	}
	struct hv_ipi_ex_input *in = (void *)h->in;
	memset(in, 0, sizeof(*in) + sizeof(p->banks));
	in->vector = p->vector;
	in->target_vtl = p->target_vtl;
	in->flags = p->flags;
	in->format = HV_GENERIC_SET_SPARSE_4K;
	in->valid_banks = p->valid_banks;
	for (unsigned i = 0; i < p->nbanks; i++)
		in->banks[i] = p->banks[i];
	return vsm_hvc_call(h, HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX | HV_HYPERCALL_VARHEAD(p->nbanks));
}

struct lookup {
	u64 partition;
	u8 target_vtl, pad;    /* pad: byte 9 (the first padding byte) */
	unsigned n;
	u32 ids[MAX_CPUS + 1];
	u32 out[MAX_CPUS + 1];
};

static u64 lookup_call(const struct vsm_hvc *h, struct lookup *l)
{
	u32 *ids = (u32 *)&h->in[2], *out = (u32 *)h->out;

	h->in[0] = l->partition;
	h->in[1] = l->target_vtl | ((u64)l->pad << 8);
	for (unsigned i = 0; i < l->n; i++)
		ids[i] = l->ids[i];
	memset(out, 0xff, 4 * l->n);
	u64 r = vsm_hvc_call(h, HVCALL_GET_VP_INDEX_FROM_APIC_ID | HV_HYPERCALL_REP_COUNT(l->n));
	for (unsigned i = 0; i < l->n; i++)
		l->out[i] = out[i];
	return r;
}

// ---------------------------------------------------------------- VTL1 commands

static u64 vtl1_send_ipi(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_send_ipi(vp->arg[0], vp->arg[1]);
	return 0;
}

/* IF = 0 keeps the self-IPI pending across a fast VtlReturn: the VP comes right back for it (§3.4). */
static u64 vtl1_self_ipi(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_self_ipi(vp->arg[0]);
	vsm_return_raw(vp, 1);
	return 0;
}

/* What VTL1 saw of VTL0's handler counts while it held the VP (by CPU). */
static volatile u64 held_seen[MAX_CPUS];
static volatile u64 in_vtl1[MAX_CPUS];
static volatile unsigned held_vector[MAX_CPUS];

static void hold_rounds(void)
{
	for (unsigned i = 0; i < HOLD_ROUNDS; i++)
		pause();
}

static u64 vtl1_hold(struct vsm_vp *vp, struct vsm_regs *regs)
{
	volatile u64 *flag = (volatile u64 *)vp->arg[0];

	(void)regs;
	in_vtl1[vp->cpu] = 1;
	while (!*flag)
		pause();
	hold_rounds();
	held_seen[vp->cpu] = *hit(0, vp->cpu, held_vector[vp->cpu]);
	return 0;
}

static u64 vtl1_hold_until(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	while (hv_time_ref_count() <= vp->arg[0])
		pause();
	hold_rounds();
	held_seen[vp->cpu] = *hit(0, vp->cpu, held_vector[vp->cpu]);
	return 0;
}

static u64 vtl1_apic_timer(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_timer_set_divide(1);
	apic_timer_start(vp->arg[0], APIC_LVT_TIMER_ONESHOT, vp->arg[1], false);
	return 0;
}

static u64 vtl1_set_tpr(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_set_tpr(vp->arg[0]);
	return 0;
}

static u64 vtl1_stimer(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	if (vp->arg[1])
		hv_stimer_set(vp->arg[0], vp->arg[1], vp->arg[2]);
	else
		hv_stimer_stop(vp->arg[0]);
	return 0;
}

/* Up to 4 MSRs: each is read into before[], then written with value[] when write[] is set, then read into after[]. */
struct msr_io {
	unsigned n;
	u32 index[4];
	bool write[4];
	u64 value[4], before[4], after[4];
};

static void msr_io_run(struct msr_io *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		m->before[i] = rdmsr(m->index[i]);
		if (m->write[i])
			wrmsr(m->index[i], m->value[i]);
		m->after[i] = rdmsr(m->index[i]);
	}
}

static u64 vtl1_msrs(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	msr_io_run((struct msr_io *)vp->arg[0]);
	return 0;
}

struct apic_regs { u32 tpr, lvtt, tdcr, tmict; u64 cr8; };

static void apic_regs_read(struct apic_regs *a)
{
	a->tpr = apic_read(APIC_TASKPRI);
	a->lvtt = apic_read(APIC_LVTT);
	a->tdcr = apic_read(APIC_TDCR);
	a->tmict = apic_read(APIC_TMICT);
	a->cr8 = read_cr8();
}

static void apic_regs_write(const struct apic_regs *a)
{
	apic_write(APIC_TASKPRI, a->tpr);
	apic_write(APIC_LVTT, a->lvtt);
	apic_write(APIC_TDCR, a->tdcr);
	apic_write(APIC_TMICT, a->tmict);
}

static u64 vtl1_apic_regs(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_regs_read((struct apic_regs *)vp->arg[0]);
	if (vp->arg[1])
		apic_regs_write((const struct apic_regs *)vp->arg[1]);
	return 0;
}

static u64 vtl1_apic_sw_disable(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	apic_write(APIC_SPIV, (vp->arg[0] ? 0 : APIC_SPIV_ENABLE) | SPURIOUS_VECTOR);
	return apic_read(APIC_SPIV);
}

/*
 * Through IA32_APIC_BASE, without lib/apic.c's apic_init_cpu(): its mode
 * variables are shared by both VTLs and every CPU. x2APIC -> disabled is a
 * legal transition, back goes through xAPIC; the APIC then comes back in
 * its reset state, so SVR and the LVTs are set up again as vtl1_setup() did.
 */
static u64 vtl1_base_before;

static u64 vtl1_apic_hw_disable(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	if (vp->arg[0]) {
		vtl1_base_before = rdmsr(MSR_IA32_APICBASE);
		wrmsr(MSR_IA32_APICBASE, vtl1_base_before & ~(APIC_BASE_EN | APIC_BASE_EXTD));
	} else {
		wrmsr(MSR_IA32_APICBASE, vtl1_base_before & ~APIC_BASE_EXTD);
		wrmsr(MSR_IA32_APICBASE, vtl1_base_before);
		apic_write(APIC_SPIV, APIC_SPIV_ENABLE | SPURIOUS_VECTOR);
		apic_write(APIC_TASKPRI, 0);
		apic_write(APIC_LVTT, APIC_LVT_MASKED);
		apic_write(APIC_LVT0, APIC_LVT_MASKED);
		apic_write(APIC_LVT1, APIC_LVT_MASKED);
		apic_write(APIC_LVTERR, APIC_LVT_MASKED);
	}
	return rdmsr(MSR_IA32_APICBASE);
}

struct clock_read { struct hv_tsc_page *page; u64 page_time, ref_count; bool page_valid; };

static void clock_read(struct clock_read *c)
{
	c->page_valid = hv_tsc_page_read(c->page, &c->page_time, NULL);
	c->ref_count = hv_time_ref_count();
}

static u64 vtl1_clock(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	clock_read((struct clock_read *)vp->arg[0]);
	return 0;
}

static u64 vtl1_pv_ipi(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return pv_ipi_call(&vp->hvc, (const struct pv_ipi *)vp->arg[0]);
}

static u64 vtl1_apic_lookup(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return lookup_call(&vp->hvc, (struct lookup *)vp->arg[0]);
}

// ---------------------------------------------------------------- APIC IPIs (§3.10)

/* VTL0 of CPU 0 sends a fixed IPI to VTL0 of each AP (idle, halted) and to itself. */
static void test_vtl0_ipis(void)
{
	for (unsigned c = 0; c < cpu_count(); c++) {
		u64 b0 = *hit(0, c, V_IPI), b1 = *hit(1, c, V_IPI), e = entries2(c);

		if (c == 0)
			apic_self_ipi(V_IPI);
		else
			apic_send_ipi(cpu_apic_id(c), V_IPI);
		bool got = wait_hit(0, c, V_IPI, b0 + 1);
		bool fenced = fence0(c) && fence1(c);
		report(got && fenced && *hit(0, c, V_IPI) == b0 + 1 && *hit(1, c, V_IPI) == b1 && entries2(c) == e + 1,
		       "VP%u VTL0's %s IPI 0x%x reached VP%u VTL0 once (%lu), not its VTL1 (%lu): VTL1 entered for the fence only",
		       hv_vp_of[0], c == 0 ? "self" : "fixed", V_IPI, hv_vp_of[c], *hit(0, c, V_IPI) - b0,
		       *hit(1, c, V_IPI) - b1);
	}
}

/* A VTL0 loop on an AP: IF as asked, spin until released (with PAUSE only when IF = 0). */
static volatile u64 spinning[MAX_CPUS], release_spin[MAX_CPUS], spin_done[MAX_CPUS];

static void vtl0_spin(void *arg)
{
	unsigned c = smp_id();
	bool irqs_on = arg != NULL;

	if (!irqs_on)
		cli();
	spinning[c] = 1;
	if (irqs_on) {
		while (!release_spin[c])
			barrier(); /* no PAUSE: only the end of its quantum lets the scheduler look */
	} else {
		while (!release_spin[c])
			pause();
	}
	spin_done[c]++;
	sti();
}

static void spin_start(unsigned c, bool irqs_on)
{
	spinning[c] = 0;
	release_spin[c] = 0;
	on_cpu_async(c, vtl0_spin, irqs_on ? (void *)1 : NULL);
	while (!spinning[c])
		pause();
}

static void spin_stop(unsigned c)
{
	release_spin[c] = 1;
	on_cpu_wait(c);
}

/* VTL1 of CPU 0 interrupts VTL1 of another VP (APIC IPI, or PV IPI when pv) while that VP's VTL0 spins. */
static void vtl1_preempts(unsigned c, bool irqs_on, const struct pv_ipi *pv)
{
	unsigned vector = pv ? pv->vector : V_IPI;
	u64 b0 = *hit(0, c, vector), b1 = *hit(1, c, vector), e = entries2(c), done = spin_done[c];
	u64 r = 0;
	const char *how = pv ? (pv->target_vtl ? "PV IPI naming VTL1" : "PV IPI (its own VTL)") : "APIC IPI";

	spin_start(c, irqs_on);
	vtl0_rflags[c] = ~0UL;
	if (pv)
		r = vsm_call(CMD_PV_IPI, (u64)pv, 0, 0);
	else
		vsm_call(CMD_SEND_IPI, cpu_apic_id(c), vector, 0);
	bool got = wait_hit(1, c, vector, b1 + 1);
	bool spun = spin_done[c] == done && *hit(0, c, vector) == b0;
	struct vsm_vp *other = vsm_vp_of(c);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && got && spun && entries2(c) == e + 1 &&
	       other->last_reason == HV_VTL_ENTRY_INTERRUPT && other->last_vector == vector,
	       "VP%u VTL1's %s 0x%x entered VP%u VTL1 (entry reason %u, %lu entry) while its VTL0 spun with IF = %u (0x%lx)",
	       hv_vp_of[0], how, vector, hv_vp_of[c], other->last_reason, entries2(c) - e, irqs_on, r);
	report((vtl0_rflags[c] & X86_EFLAGS_IF) == (irqs_on ? X86_EFLAGS_IF : 0),
	       "VP%u VTL1 found VTL0's RFLAGS 0x%lx (IF = %u): VTL0's IF did not matter", hv_vp_of[c], vtl0_rflags[c],
	       irqs_on);
	spin_stop(c);
	bool fenced = fence0(c);
	report(fenced && spin_done[c] == done + 1 && *hit(0, c, vector) == b0,
	       "VP%u VTL0 went on spinning and left its loop when released; it took no 0x%x itself", hv_vp_of[c], vector);
}

/*
 * VTL0 of CPU c VtlCalls into a hold; meanwhile CPU 0 sends VTL0 of CPU c
 * an interrupt (send()). VTL1 sees VTL0's count unchanged; VTL0 takes the
 * interrupt once VTL1 has returned.
 */
static volatile u64 sent[MAX_CPUS], after_return[MAX_CPUS];

static void vtl0_hold(void *arg)
{
	unsigned c = smp_id();

	(void)arg;
	vsm_call(CMD_HOLD, (u64)&sent[c], 0, 0);
	wait_until_at_least(hit(0, c, held_vector[c]), held_seen[c] + 1, WAIT);
	after_return[c] = *hit(0, c, held_vector[c]);
}

static void held_for_vtl0(unsigned c, const char *what, unsigned vector, u64 (*send)(unsigned c))
{
	u64 b0 = *hit(0, c, vector), b1 = *hit(1, c, vector);

	in_vtl1[c] = 0;
	sent[c] = 0;
	held_vector[c] = vector;
	held_seen[c] = ~0UL;
	on_cpu_async(c, vtl0_hold, NULL);
	while (!in_vtl1[c])
		pause();
	u64 r = send(c);
	sent[c] = 1;
	on_cpu_wait(c);
	bool fenced = fence1(c);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && held_seen[c] == b0 && after_return[c] == b0 + 1 && fenced &&
	       *hit(1, c, vector) == b1,
	       "%s 0x%x for VP%u VTL0 while VP%u is in VTL1: pending there (VTL0 count +%lu in VTL1), taken by VTL0 after VtlReturn (+%lu) (0x%lx)",
	       what, vector, hv_vp_of[c], hv_vp_of[c], held_seen[c] - b0, after_return[c] - b0, r);
}

static u64 send_vtl0_apic_ipi(unsigned c)
{
	apic_send_ipi(cpu_apic_id(c), V_IPI);
	return 0;
}

static u64 send_vtl1_pv_to_vtl0(unsigned c)
{
	struct pv_ipi p = { .vector = V_PV, .target_vtl = HV_INPUT_VTL(0), .mask = BIT(hv_vp_of[c]) };

	return vsm_call(CMD_PV_IPI, (u64)&p, 0, 0);
}

static void test_cross_vp(void)
{
	if (cpu_count() < 2) {
		report_skip("IPIs between VPs: needs --smp 2 or more");
		return;
	}
	for (unsigned c = 1; c < cpu_count(); c++) {
		vtl1_preempts(c, false, NULL);
		vtl1_preempts(c, true, NULL);
		held_for_vtl0(c, "VP0 VTL0's APIC IPI", V_IPI, send_vtl0_apic_ipi);
		held_for_vtl0(c, "VP0 VTL1's PV IPI naming VTL0", V_PV, send_vtl1_pv_to_vtl0);
	}
}

// ---------------------------------------------------------------- timers (§3.10, §6.5)

/* VTL0 on CPU 0 spins with IF = 0 until VTL1 took the vector (or the wait ends). */
static bool spin_for_vtl1(unsigned vector, u64 want)
{
	cli();
	bool got = wait_hit(1, 0, vector, want);
	sti();
	return got;
}

static void test_timers(void)
{
	struct vsm_vp *vp = vsm_vp_of(0);
	u64 b0 = *hit(0, 0, V_TIMER), b1 = *hit(1, 0, V_TIMER), e = entries2(0);

	/* VTL1's one-shot APIC timer while VTL0 spins. */
	vsm_call(CMD_APIC_TIMER, V_TIMER, TIMER_COUNT, 0);
	bool got = spin_for_vtl1(V_TIMER, b1 + 1);
	report(got && entries2(0) == e + 1 && vp->last_reason == HV_VTL_ENTRY_INTERRUPT && vp->last_vector == V_TIMER &&
	       *hit(0, 0, V_TIMER) == b0,
	       "VTL1's one-shot APIC timer (vector 0x%x, %u ticks) entered VTL1 (entry reason %u) while VTL0 spun with IF = 0; VTL0 took nothing",
	       V_TIMER, TIMER_COUNT, vp->last_reason);

	/* VTL0's one-shot APIC timer while the VP is in VTL1: pending until VtlReturn. */
	u64 apic_hz = rdmsr(HV_X64_MSR_APIC_FREQUENCY);
	b0 = *hit(0, 0, V_TIMER);
	b1 = *hit(1, 0, V_TIMER);
	held_vector[0] = V_TIMER;
	apic_timer_set_divide(1);
	apic_timer_start(V_TIMER, APIC_LVT_TIMER_ONESHOT, TIMER_COUNT, false);
	/* It expires within ceil(count / apic_hz) seconds of now, in 100 ns units, plus one unit of rounding. */
	u64 expiry = hv_time_ref_count() + (TIMER_COUNT * HV_REFERENCE_TIME_HZ + apic_hz - 1) / apic_hz + 1;
	vsm_call(CMD_HOLD_UNTIL, expiry, 0, 0);
	got = wait_hit(0, 0, V_TIMER, b0 + 1);
	report(held_seen[0] == b0 && got && *hit(0, 0, V_TIMER) == b0 + 1 && *hit(1, 0, V_TIMER) == b1,
	       "VTL0's one-shot APIC timer (APIC %lu Hz) expiring while the VP held VTL1 until reference time %lu: VTL0 took it after VtlReturn only",
	       apic_hz, expiry);
	apic_timer_stop();
	vsm_call(CMD_APIC_TIMER, V_TIMER, 0, 0); /* VTL1's too: initial count 0 stops it */

	/* VTL1's TPR blocks its timer's interrupt: no entry (§3.10) until VTL1 lowers its TPR, then one at once. */
	b0 = *hit(0, 0, V_TIMER);
	b1 = *hit(1, 0, V_TIMER);
	e = entries2(0);
	vsm_call(CMD_SET_TPR, VTL1_BLOCKING_TPR, 0, 0);
	vsm_call(CMD_APIC_TIMER, V_TIMER, TIMER_COUNT, 0);
	expiry = hv_time_ref_count() + (TIMER_COUNT * HV_REFERENCE_TIME_HZ + apic_hz - 1) / apic_hz + 1;
	cli();
	while (hv_time_ref_count() <= expiry)
		pause();
	hold_rounds();
	sti();
	bool blocked = *hit(1, 0, V_TIMER) == b1 && entries2(0) == e;
	vsm_call(CMD_SET_TPR, 0, 0, 0);
	report(blocked && *hit(1, 0, V_TIMER) == b1 + 1 && entries2(0) == e + 1 && vp->last_vector == V_TIMER &&
	       *hit(0, 0, V_TIMER) == b0,
	       "VTL1's expired timer 0x%x under its TPR 0x%x entered nothing; VTL1 lowering TPR to 0 brought the VP right back (entry reason %u)",
	       V_TIMER, VTL1_BLOCKING_TPR, vp->last_reason);
	vsm_call(CMD_APIC_TIMER, V_TIMER, 0, 0);
}

static void test_stimers(void)
{
	struct vsm_vp *vp = vsm_vp_of(0);
	u64 cfg = HV_STIMER_ENABLE | HV_STIMER_DIRECT_MODE | HV_STIMER_APIC_VECTOR(V_STIMER);
	u64 b0 = *hit(0, 0, V_STIMER), b1 = *hit(1, 0, V_STIMER), e = entries2(0);

	if (!hv_has_feature(HV_FEAT_DIRECT_SYNTHETIC_TIMERS)) {
		report_skip("synthetic timers in direct mode: needs hv-stimer-direct");
		return;
	}
	/* VTL1's timer 0 fires into VTL1 while VTL0 spins. */
	u64 count1 = hv_time_ref_count() + STIMER_DELAY;
	vsm_call(CMD_STIMER, 0, cfg, count1);
	bool got = spin_for_vtl1(V_STIMER, b1 + 1);
	report(got && entries2(0) == e + 1 && vp->last_reason == HV_VTL_ENTRY_INTERRUPT && vp->last_vector == V_STIMER &&
	       *hit(0, 0, V_STIMER) == b0,
	       "VTL1's synthetic timer 0 (direct, vector 0x%x) entered VTL1 (entry reason %u) while VTL0 spun; VTL0 took nothing",
	       V_STIMER, vp->last_reason);

	/* VTL0's timer 0 (same index, same vector) fires into VTL0 only. */
	e = entries2(0);
	u64 count0 = hv_time_ref_count() + STIMER_DELAY;
	hv_stimer_set(0, cfg, count0);
	got = wait_hit(0, 0, V_STIMER, b0 + 1);
	bool fenced = fence1(0);
	report(got && fenced && *hit(1, 0, V_STIMER) == b1 + 1 && entries2(0) == e + 1,
	       "VTL0's synthetic timer 0 (direct, vector 0x%x) reached VTL0; VTL1 took nothing (the one entry is the fence's)",
	       V_STIMER);

	/* One-shot timers clear Enable when they fire; each VTL reads its own CONFIG and COUNT. */
	struct msr_io m = { .n = 2, .index = { HV_X64_MSR_STIMER_CONFIG(0), HV_X64_MSR_STIMER_COUNT(0) } };
	vsm_call(CMD_MSRS, (u64)&m, 0, 0);
	u64 c0 = rdmsr(HV_X64_MSR_STIMER_CONFIG(0)), n0 = rdmsr(HV_X64_MSR_STIMER_COUNT(0));
	report(m.before[0] == (cfg & ~HV_STIMER_ENABLE) && m.before[1] == count1 && c0 == (cfg & ~HV_STIMER_ENABLE) &&
	       n0 == count0,
	       "after firing: VTL1's STIMER0 CONFIG 0x%lx COUNT %lu, VTL0's CONFIG 0x%lx COUNT %lu (Enable clear, each its own)",
	       m.before[0], m.before[1], c0, n0);

	/* Timer 1 written in VTL0 (not enabled) is not VTL1's timer 1, and the other way round. */
	u64 cfg0 = HV_STIMER_DIRECT_MODE | HV_STIMER_APIC_VECTOR(0x5a), cfg1 = HV_STIMER_DIRECT_MODE | HV_STIMER_APIC_VECTOR(0x5b);
	wrmsr(HV_X64_MSR_STIMER_COUNT(1), 0x123456);
	wrmsr(HV_X64_MSR_STIMER_CONFIG(1), cfg0);
	m = (struct msr_io){ .n = 2, .index = { HV_X64_MSR_STIMER_CONFIG(1), HV_X64_MSR_STIMER_COUNT(1) },
			     .write = { true, true }, .value = { cfg1, 0x654321 } };
	vsm_call(CMD_MSRS, (u64)&m, 0, 0);
	c0 = rdmsr(HV_X64_MSR_STIMER_CONFIG(1));
	n0 = rdmsr(HV_X64_MSR_STIMER_COUNT(1));
	report(m.before[0] == 0 && m.before[1] == 0 && m.after[0] == cfg1 && m.after[1] == 0x654321 && c0 == cfg0 &&
	       n0 == 0x123456,
	       "STIMER1: VTL1 read 0x%lx/%lu (VTL0 wrote 0x%lx/%u) and wrote 0x%lx/%u; VTL0 reads its own 0x%lx/%lu",
	       m.before[0], m.before[1], cfg0, 0x123456, cfg1, 0x654321, c0, n0);
	hv_stimer_stop(0);
	hv_stimer_stop(1);
	vsm_call(CMD_STIMER, 0, 0, 0);
	vsm_call(CMD_STIMER, 1, 0, 0);

	/* VTL0's timer expiring while the VP is in VTL1 waits for the VtlReturn. */
	b0 = *hit(0, 0, V_STIMER);
	b1 = *hit(1, 0, V_STIMER);
	held_vector[0] = V_STIMER;
	count0 = hv_time_ref_count() + STIMER_DELAY;
	hv_stimer_set(0, cfg, count0);
	vsm_call(CMD_HOLD_UNTIL, count0, 0, 0);
	got = wait_hit(0, 0, V_STIMER, b0 + 1);
	report(held_seen[0] == b0 && got && *hit(0, 0, V_STIMER) == b0 + 1 && *hit(1, 0, V_STIMER) == b1,
	       "VTL0's synthetic timer 0 expiring (at %lu) while the VP held VTL1: VTL0 took it after VtlReturn only", count0);
	hv_stimer_stop(0);
}

static void test_clock(void)
{
	struct hv_tsc_page *p0 = hv_tsc_page_enable(), *p1 = alloc_page();
	u64 ref_tsc0 = (u64)p0 | HV_PAGE_MSR_ENABLE, ref_tsc1 = (u64)p1 | HV_PAGE_MSR_ENABLE;
	struct msr_io m = { .n = 1, .index = { HV_X64_MSR_REFERENCE_TSC }, .write = { true }, .value = { ref_tsc1 } };

	vsm_call(CMD_MSRS, (u64)&m, 0, 0);
	u64 mine = rdmsr(HV_X64_MSR_REFERENCE_TSC);
	report(m.before[0] == 0 && m.after[0] == ref_tsc1 && mine == ref_tsc0,
	       "REFERENCE_TSC per VTL: VTL1 read 0x%lx before writing 0x%lx (reads back 0x%lx); VTL0 still has 0x%lx",
	       m.before[0], ref_tsc1, m.after[0], mine);
	report(p0->sequence != 0 && p1->sequence != 0 && p0->scale == p1->scale && p0->offset == p1->offset,
	       "both TSC pages are valid (sequence %u, %u) with the same scale 0x%lx / 0x%lx and offset %ld / %ld",
	       p0->sequence, p1->sequence, p0->scale, p1->scale, p0->offset, p1->offset);

	struct clock_read c0 = { .page = p0 }, c1 = { .page = p1 }, c2 = { .page = p0 };
	clock_read(&c0);
	vsm_call(CMD_CLOCK, (u64)&c1, 0, 0);
	clock_read(&c2);
	report(c0.page_valid && c1.page_valid && c2.page_valid && c0.page_time <= c0.ref_count &&
	       c0.ref_count <= c1.page_time && c1.page_time <= c1.ref_count && c1.ref_count <= c2.page_time &&
	       c2.page_time <= c2.ref_count,
	       "one clock: VTL0 page %lu <= MSR %lu <= VTL1 page %lu <= MSR %lu <= VTL0 page %lu <= MSR %lu",
	       c0.page_time, c0.ref_count, c1.page_time, c1.ref_count, c2.page_time, c2.ref_count);
	wrmsr(HV_X64_MSR_REFERENCE_TSC, 0);
	m = (struct msr_io){ .n = 1, .index = { HV_X64_MSR_REFERENCE_TSC }, .write = { true }, .value = { 0 } };
	vsm_call(CMD_MSRS, (u64)&m, 0, 0);
}

// ---------------------------------------------------------------- per-VTL APIC (§3.2)

static void test_apic_registers(void)
{
	/* TPR 0x10 / 0x20 block only vectors below 0x20 / 0x30: none of the test's. */
	const struct apic_regs mine = { .tpr = 0x10, .lvtt = APIC_LVT_MASKED | APIC_LVT_TIMER_PERIODIC | 0x5e, .tdcr = 0x3,
					.tmict = 0x12345678 };
	const struct apic_regs theirs = { .tpr = 0x20, .lvtt = APIC_LVT_MASKED | 0x5f, .tdcr = 0x8, .tmict = 0x2222 };
	const struct apic_regs reset = { .lvtt = APIC_LVT_MASKED };
	struct apic_regs seen0, seen1;

	apic_regs_write(&mine);
	vsm_call(CMD_APIC_REGS, (u64)&seen1, (u64)&theirs, 0);
	vsm_call(CMD_APIC_REGS, (u64)&seen1, 0, 0);
	apic_regs_read(&seen0);
	report(seen1.tpr == theirs.tpr && seen1.cr8 == 2 && seen1.lvtt == theirs.lvtt && seen1.tdcr == theirs.tdcr &&
	       seen1.tmict == theirs.tmict,
	       "VTL1's APIC: TPR 0x%x (CR8 %lu), LVTT 0x%x, TDCR 0x%x, TMICT 0x%x as VTL1 wrote them", seen1.tpr, seen1.cr8,
	       seen1.lvtt, seen1.tdcr, seen1.tmict);
	report(seen0.tpr == mine.tpr && seen0.cr8 == 1 && seen0.lvtt == mine.lvtt && seen0.tdcr == mine.tdcr &&
	       seen0.tmict == mine.tmict,
	       "VTL0's APIC: TPR 0x%x (CR8 %lu), LVTT 0x%x, TDCR 0x%x, TMICT 0x%x as VTL0 wrote them", seen0.tpr, seen0.cr8,
	       seen0.lvtt, seen0.tdcr, seen0.tmict);
	apic_regs_write(&reset);
	vsm_call(CMD_APIC_REGS, (u64)&seen1, (u64)&reset, 0);
}

/* VTL0 of CPU 0 takes a self-IPI (and, with 2+ CPUs, an IPI from CPU 1's VTL0). */
static void ipi_to_bsp(void *arg)
{
	(void)arg;
	apic_send_ipi(cpu_apic_id(0), V_IPI);
}

static bool vtl0_apic_delivers(void)
{
	u64 b = *hit(0, 0, V_IPI);
	bool ok;

	apic_self_ipi(V_IPI);
	ok = wait_hit(0, 0, V_IPI, b + 1);
	if (cpu_count() > 1) {
		on_cpu(1, ipi_to_bsp, NULL);
		ok &= wait_hit(0, 0, V_IPI, b + 2);
	}
	return ok && *hit(0, 0, V_IPI) == b + 1 + (cpu_count() > 1);
}

static void test_apic_disable(void)
{
	u64 base0 = rdmsr(MSR_IA32_APICBASE), b1 = *hit(1, 0, V_IPI), e;
	u32 svr0;

	/* Software disable: SVR bit 8. */
	u64 svr1 = vsm_call(CMD_APIC_SW_DISABLE, 1, 0, 0);
	svr0 = apic_read(APIC_SPIV);
	bool delivers = vtl0_apic_delivers();
	report(svr1 == SPURIOUS_VECTOR && svr0 == (APIC_SPIV_ENABLE | SPURIOUS_VECTOR) && delivers,
	       "VTL1 cleared SVR bit 8 (its SVR 0x%lx): VTL0's SVR is 0x%x and VTL0's APIC takes IPIs", svr1, svr0);
	svr1 = vsm_call(CMD_APIC_SW_DISABLE, 0, 0, 0);

	/* Hardware disable: IA32_APIC_BASE enable. */
	u64 vtl1_base = vsm_call(CMD_APIC_HW_DISABLE, 1, 0, 0);
	u64 base0_now = rdmsr(MSR_IA32_APICBASE);
	svr0 = apic_read(APIC_SPIV);
	delivers = vtl0_apic_delivers();
	report(!(vtl1_base & APIC_BASE_EN) && base0_now == base0 && (base0 & APIC_BASE_EN) &&
	       svr0 == (APIC_SPIV_ENABLE | SPURIOUS_VECTOR) && delivers,
	       "VTL1 disabled its APIC (IA32_APIC_BASE 0x%lx): VTL0's IA32_APIC_BASE 0x%lx, SVR 0x%x, VTL0's APIC takes IPIs",
	       vtl1_base, base0_now, svr0);
	u64 restored = vsm_call(CMD_APIC_HW_DISABLE, 0, 0, 0);
	e = entries2(0);
	bool back = fence1(0);
	report(restored == vtl1_base_before && (restored & APIC_BASE_EN) && back && entries2(0) == e + 1 && *hit(1, 0, V_IPI) == b1,
	       "VTL1 re-enabled its APIC (IA32_APIC_BASE 0x%lx, SVR bit 8 %s before): a VTL1 self-IPI enters VTL1 again",
	       restored, (svr1 & APIC_SPIV_ENABLE) ? "set again" : "clear");
}

// ---------------------------------------------------------------- PV IPIs across VTLs (§2.6, §2.11)

static void test_pv_ipis(void)
{
	unsigned n = cpu_count(), last = n - 1;
	struct pv_ipi p;
	u64 r, b0, b1;

	if (!hv_recommends(HV_REC_SYNTHETIC_CLUSTER_IPI) || !hv_recommends(HV_REC_EX_PROCESSOR_MASKS)) {
		report_skip("PV IPIs: need hv-ipi");
		return;
	}
	/* VTL0 naming VTL1: above the caller. */
	b1 = *hit(1, last, V_PV);
	p = (struct pv_ipi){ .vector = V_PV, .target_vtl = HV_INPUT_VTL(1), .mask = BIT(hv_vp_of[last]) };
	r = pv_ipi_call(&vtl0_hvc, &p);
	p.ex = true;
	p.valid_banks = 1;
	p.nbanks = 1;
	p.banks[0] = BIT(hv_vp_of[last]);
	u64 rex = pv_ipi_call(&vtl0_hvc, &p);
	bool fenced = fence1(last);
	report(HV_RESULT_STATUS(r) == HV_STATUS_ACCESS_DENIED && HV_RESULT_STATUS(rex) == HV_STATUS_ACCESS_DENIED &&
	       fenced && *hit(1, last, V_PV) == b1,
	       "VTL0: SendSyntheticClusterIpi(Ex) naming VTL1 => ACCESS_DENIED (0x%lx, 0x%lx), nothing delivered", r, rex);

	/* VTL0 naming VTL0 explicitly (the VMM's path): VTL0 of the target. */
	b0 = *hit(0, last, V_PV);
	p = (struct pv_ipi){ .vector = V_PV, .target_vtl = HV_INPUT_VTL(0), .mask = BIT(hv_vp_of[last]) };
	r = pv_ipi_call(&vtl0_hvc, &p);
	bool got = wait_hit(0, last, V_PV, b0 + 1);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && got,
	       "VTL0: SendSyntheticClusterIpi naming VTL0 reached VP%u VTL0 (0x%lx)", hv_vp_of[last], r);

	if (n < 2) {
		report_skip("PV IPIs from VTL1 to other VPs: needs --smp 2 or more");
		return;
	}
	/* VTL1 naming VTL0: each AP's VTL0 (idle), not its VTL1. */
	for (unsigned c = 1; c < n; c++) {
		b0 = *hit(0, c, V_PV);
		b1 = *hit(1, c, V_PV);
		u64 e = entries2(c);
		p = (struct pv_ipi){ .vector = V_PV, .target_vtl = HV_INPUT_VTL(0), .mask = BIT(hv_vp_of[c]) };
		r = vsm_call(CMD_PV_IPI, (u64)&p, 0, 0);
		got = wait_hit(0, c, V_PV, b0 + 1);
		fenced = fence1(c);
		report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && got && fenced && *hit(1, c, V_PV) == b1 &&
		       entries2(c) == e + 1,
		       "VP%u VTL1: SendSyntheticClusterIpi naming VTL0 reached VP%u VTL0, not its VTL1 (0x%lx)", hv_vp_of[0],
		       hv_vp_of[c], r);
	}
	/* VTL1 naming VTL1, explicitly and implicitly (input VTL 0: the caller's VTL), while the target's VTL0 spins. */
	p = (struct pv_ipi){ .vector = V_PV, .target_vtl = HV_INPUT_VTL(1), .mask = BIT(hv_vp_of[1]) };
	vtl1_preempts(1, false, &p);
	p.target_vtl = HV_INPUT_VTL_SELF;
	vtl1_preempts(1, true, &p);

	/* Ex, sparse set: the odd-numbered APs (bank 0) plus VP 64 (bank 1, no such VP: skipped). */
	u64 odd = 0;
	for (unsigned c = 1; c < n; c += 2)
		odd |= BIT(hv_vp_of[c]);
	for (unsigned vtl = 0; vtl < 2; vtl++) {
		u64 before[2][MAX_CPUS];
		for (unsigned c = 0; c < n; c++) {
			before[0][c] = *hit(0, c, V_PV);
			before[1][c] = *hit(1, c, V_PV);
		}
		p = (struct pv_ipi){ .ex = true, .vector = V_PV, .target_vtl = HV_INPUT_VTL(vtl), .valid_banks = 0x3,
				     .nbanks = 2, .banks = { odd, 0x1 } };
		r = vsm_call(CMD_PV_IPI, (u64)&p, 0, 0);
		bool ok = HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS;
		for (unsigned c = 0; c < n; c++) {
			bool in = odd & BIT(hv_vp_of[c]);
			if (in)
				ok &= wait_hit(vtl, c, V_PV, before[vtl][c] + 1);
			ok &= fence0(c) && fence1(c);
			ok &= *hit(vtl, c, V_PV) == before[vtl][c] + in && *hit(!vtl, c, V_PV) == before[!vtl][c];
		}
		report(ok, "VP%u VTL1: SendSyntheticClusterIpiEx naming VTL%u, VP set {bank 0: 0x%lx, bank 1: VP 64}: exactly those VPs' VTL%u (0x%lx)",
		       hv_vp_of[0], vtl, odd, vtl, r);
	}

	/* Malformed input: nothing is sent. */
	const struct { const char *what; struct pv_ipi p; unsigned status; } bad[] = {
		{ "vector 0xf", { .vector = 0xf, .target_vtl = HV_INPUT_VTL(0), .mask = BIT(hv_vp_of[1]) }, HV_STATUS_INVALID_PARAMETER },
		{ "vector 0x100", { .vector = 0x100, .target_vtl = HV_INPUT_VTL(0), .mask = BIT(hv_vp_of[1]) }, HV_STATUS_INVALID_PARAMETER },
		{ "Ex, vector 0xf", { .ex = true, .vector = 0xf, .target_vtl = HV_INPUT_VTL(1), .valid_banks = 1, .nbanks = 1,
				      .banks = { BIT(hv_vp_of[1]) } }, HV_STATUS_INVALID_PARAMETER },
		{ "Flags 1", { .vector = V_PV, .target_vtl = HV_INPUT_VTL(0), .flags = 1, .mask = BIT(hv_vp_of[1]) }, HV_STATUS_INVALID_PARAMETER },
		{ "input VTL bit 5 set", { .vector = V_PV, .target_vtl = 0x20 | HV_INPUT_VTL(0), .mask = BIT(hv_vp_of[1]) }, HV_STATUS_INVALID_PARAMETER },
		{ "input VTL 2 (not implemented)", { .vector = V_PV, .target_vtl = HV_INPUT_VTL(2), .mask = BIT(hv_vp_of[1]) }, HV_STATUS_INVALID_PARAMETER },
		{ "Ex, 2 valid banks but 1 bank word", { .ex = true, .vector = V_PV, .target_vtl = HV_INPUT_VTL(0), .valid_banks = 3,
							  .nbanks = 1, .banks = { BIT(hv_vp_of[1]) } }, HV_STATUS_INVALID_PARAMETER },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b0 = *hit(0, 1, V_PV);
		b1 = *hit(1, 1, V_PV);
		r = vsm_call(CMD_PV_IPI, (u64)&bad[i].p, 0, 0);
		fenced = fence0(1) && fence1(1);
		report(HV_RESULT_STATUS(r) == bad[i].status && fenced && *hit(0, 1, V_PV) == b0 && *hit(1, 1, V_PV) == b1,
		       "VP%u VTL1: SendSyntheticClusterIpi%s with %s => INVALID_PARAMETER (0x%lx), nothing delivered",
		       hv_vp_of[0], bad[i].p.ex ? "Ex" : "", bad[i].what, r);
	}
}

// ---------------------------------------------------------------- GetVpIndexFromApicId (§2.17)

static void lookup_fill(struct lookup *l, u8 target_vtl)
{
	memset(l, 0, sizeof(*l));
	l->partition = HV_PARTITION_ID_SELF;
	l->target_vtl = target_vtl;
	l->n = cpu_count();
	for (unsigned i = 0; i < cpu_count(); i++)
		l->ids[i] = cpu_apic_id(i);
}

static bool lookup_matches(const struct lookup *l, unsigned n)
{
	bool ok = true;

	for (unsigned i = 0; i < n; i++)
		ok &= l->out[i] == hv_vp_of[i];
	return ok;
}

static u64 lookup_in(unsigned vtl, struct lookup *l)
{
	return vtl ? vsm_call(CMD_APIC_LOOKUP, (u64)l, 0, 0) : lookup_call(&vtl0_hvc, l);
}

static void test_apic_lookup(void)
{
	unsigned n = cpu_count();
	struct lookup l;
	const struct { unsigned vtl; u8 input; const char *name; } ok_cases[] = {
		{ 1, HV_INPUT_VTL_SELF, "its own VTL" }, { 1, HV_INPUT_VTL(1), "VTL1" }, { 1, HV_INPUT_VTL(0), "VTL0" },
		{ 0, HV_INPUT_VTL_SELF, "its own VTL" }, { 0, HV_INPUT_VTL(0), "VTL0" },
	};
	u64 r;

	for (unsigned i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		lookup_fill(&l, ok_cases[i].input);
		r = lookup_in(ok_cases[i].vtl, &l);
		report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && HV_RESULT_REPS(r) == n && lookup_matches(&l, n),
		       "VTL%u: GetVpIndexFromApicId(%s) of the %u CPUs' APIC IDs: their VP indexes (first %u, last %u) (0x%lx)",
		       ok_cases[i].vtl, ok_cases[i].name, n, l.out[0], l.out[n - 1], r);
	}
	lookup_fill(&l, HV_INPUT_VTL(1));
	r = lookup_in(0, &l);
	report(HV_RESULT_STATUS(r) == HV_STATUS_ACCESS_DENIED, "VTL0: GetVpIndexFromApicId naming VTL1 => ACCESS_DENIED (0x%lx)", r);

	/* An APIC ID no VP has (0xff: the xAPIC broadcast ID) at element n, then at element 0. */
	lookup_fill(&l, HV_INPUT_VTL_SELF);
	l.ids[n] = 0xff;
	l.n = n + 1;
	r = lookup_in(1, &l);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER && HV_RESULT_REPS(r) == n && lookup_matches(&l, n),
	       "VTL1: unknown APIC ID 0xff at element %u => INVALID_PARAMETER with %u reps completed, the %u before answered (0x%lx)",
	       n, HV_RESULT_REPS(r), n, r);
	lookup_fill(&l, HV_INPUT_VTL_SELF);
	l.ids[0] = 0xff;
	r = lookup_in(0, &l);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER && HV_RESULT_REPS(r) == 0,
	       "VTL0: unknown APIC ID 0xff at element 0 => INVALID_PARAMETER with %u reps completed (0x%lx)", HV_RESULT_REPS(r), r);

	const struct { const char *what; u64 partition; u8 input, pad; unsigned status; } bad[] = {
		{ "partition 0", 0, HV_INPUT_VTL_SELF, 0, HV_STATUS_INVALID_PARTITION_ID },
		{ "padding byte 9 = 1", HV_PARTITION_ID_SELF, HV_INPUT_VTL_SELF, 1, HV_STATUS_INVALID_PARAMETER },
		{ "input VTL bit 5 set", HV_PARTITION_ID_SELF, 0x20, 0, HV_STATUS_INVALID_PARAMETER },
		{ "input VTL 2 (not implemented)", HV_PARTITION_ID_SELF, HV_INPUT_VTL(2), 0, HV_STATUS_INVALID_PARAMETER },
	};
	for (unsigned vtl = 0; vtl < 2; vtl++) {
		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			lookup_fill(&l, bad[i].input);
			l.partition = bad[i].partition;
			l.pad = bad[i].pad;
			r = lookup_in(vtl, &l);
			report(HV_RESULT_STATUS(r) == bad[i].status && HV_RESULT_REPS(r) == 0,
			       "VTL%u: GetVpIndexFromApicId with %s => 0x%x (0x%lx)", vtl, bad[i].what, bad[i].status, r);
		}
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(true);
	if (!hv_has_privilege(HV_PRIV_SYNTHETIC_TIMER_REGS) || !hv_has_privilege(HV_PRIV_FREQUENCY_REGS) ||
	    !hv_has_privilege(HV_PRIV_PARTITION_REFERENCE_TSC))
		abort_msg("run with hv-time, hv-stimer and hv-frequencies");
	report_info("%u CPUs, %s mode", cpu_count(), apic_x2apic_mode() ? "x2APIC" : "xAPIC");
	for (unsigned i = 0; i < NVEC; i++) {
		handle_exception(vectors[i], vtl0_irq);
		vsm_register_irq(vectors[i], vtl1_irq);
	}
	vsm_register_command(CMD_SEND_IPI, vtl1_send_ipi);
	vsm_register_command(CMD_SELF_IPI, vtl1_self_ipi);
	vsm_register_command(CMD_HOLD, vtl1_hold);
	vsm_register_command(CMD_HOLD_UNTIL, vtl1_hold_until);
	vsm_register_command(CMD_APIC_TIMER, vtl1_apic_timer);
	vsm_register_command(CMD_SET_TPR, vtl1_set_tpr);
	vsm_register_command(CMD_STIMER, vtl1_stimer);
	vsm_register_command(CMD_MSRS, vtl1_msrs);
	vsm_register_command(CMD_APIC_REGS, vtl1_apic_regs);
	vsm_register_command(CMD_APIC_SW_DISABLE, vtl1_apic_sw_disable);
	vsm_register_command(CMD_APIC_HW_DISABLE, vtl1_apic_hw_disable);
	vsm_register_command(CMD_CLOCK, vtl1_clock);
	vsm_register_command(CMD_PV_IPI, vtl1_pv_ipi);
	vsm_register_command(CMD_APIC_LOOKUP, vtl1_apic_lookup);
	if (!vsm_setup_all())
		report_summary();
	vtl0_hvc = vsm_vtl0_hvc();

	test_vtl0_ipis();
	test_cross_vp();
	test_timers();
	test_stimers();
	test_clock();
	test_apic_registers();
	test_apic_disable();
	test_pv_ipis();
	test_apic_lookup();
	report_summary();
}
