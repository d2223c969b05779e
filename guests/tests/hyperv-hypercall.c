/*
 * The hypercall ABI from the guest side (tlfs-vsm-facts.md §1, §2):
 * - calls go through the hypercall page; VMCALL at CPL3 is #UD (§1.1);
 * - control word: unknown code => INVALID_HYPERCALL_CODE (2); RsvdZ bits, rep
 *   fields on a simple call, rep count 0 or start >= count, a variable header
 *   on a call without one => INVALID_HYPERCALL_INPUT (3); reps completed is
 *   absolute (§1.2);
 * - slow calls: input GPA not 8-byte aligned or beyond the GPA space =>
 *   INVALID_ALIGNMENT (4); an input block crossing a page => 4 (TLFS) or 3
 *   (hv1_hypercall), both allowed by §1.1;
 * - fast calls: 16 bytes in RDX/R8; XMM fast input (EDX bit 4) up to 112
 *   bytes, input registers left alone; XMM input when not advertised => #UD;
 *   input that does not fit 112 bytes => 3; XMM fast output (EDX bit 15);
 * - availability follows CPUID: a call whose privilege/recommendation is
 *   absent => ACCESS_DENIED (6);
 * - NotifyLongSpinWait => SUCCESS (§2.8);
 * - PostMessage / SignalEvent with hyperv-testdev connections: SUCCESS, or
 *   INVALID_CONNECTION_ID (0x12) for an unregistered one (§2.9, §2.10);
 * - PV IPIs (§2.6): SendSyntheticClusterIpi with processor masks, the Ex form
 *   with sparse VP sets and HV_GENERIC_SET_ALL; vectors outside 0x10-0xFF and
 *   non-zero flags => INVALID_PARAMETER (5); bank words != popcount(valid
 *   banks) => 5 (§2.5).
 * Run with --hv hv-vpindex,hv-synic,hv-time,hv-tlbflush,hv-ipi,hv-xmm-input,
 * hv-xmm-output,hv-spinlocks=0x1fff --smp 4; and with --hv hv-vpindex for the
 * ACCESS_DENIED side.
 */
#include "libguest.h"
#include "hyperv.h"

#define VEC_IPI 0x70
#define WAIT (1UL << 30)   /* TSC cycles */
#define QUIET (1UL << 21)
#define MSG_CONN 0x11
#define EVT_CONN 0x22
#define BAD_CONN 0x99
#define MSG_SINT 5
#define EVT_SINT 6
#define VEC_MSG 0xc5
#define VEC_EVT 0xc6

static volatile u64 ipi_count[MAX_CPUS];

static bool full_run; /* every gate of the ABI checks below is open */

static unsigned status_of(u64 result) { return HV_RESULT_STATUS(result); }

static void ipi_handler(struct ex_regs *regs)
{
	(void)regs;
	ipi_count[smp_id()]++;
	apic_eoi();
}


/* ---------------------------------------------------------------- calling convention */

static u64 user_call(void *arg)
{
	(void)arg;
	return hv_hypercall(HVCALL_NOTIFY_LONG_SPIN_WAIT | HV_HYPERCALL_FAST, 0, 0);
}

static void test_entry(void)
{
	u64 r = ~0UL;
	unsigned vec = hv_hypercall_catch(HVCALL_NOTIFY_LONG_SPIN_WAIT | HV_HYPERCALL_FAST, 1, 0, &r);
	bool spin_ok = hv_spin_retries() != 0 && hv_spin_retries() != HV_SPINLOCK_NEVER_NOTIFY;

	if (vec != NO_EXCEPTION) {
		report(false, "a call through the hypercall page raised %s: no hypercall dispatcher, the rest cannot run",
		       exception_mnemonic(vec));
		report_summary();
	}
	report(true, "a call through the hypercall page returns");
	if (spin_ok)
		report(status_of(r) == HV_STATUS_SUCCESS, "NotifyLongSpinWait (fast) => SUCCESS (result 0x%lx)", r);
	else
		report(status_of(r) == HV_STATUS_ACCESS_DENIED,
		       "NotifyLongSpinWait with spin retries 0x%x (never notify) => ACCESS_DENIED (result 0x%lx)",
		       hv_spin_retries(), r);

	struct ex_info ex;
	u64 ret;
	bool faulted = run_user(user_call, NULL, &ret, &ex);
	report(faulted && ex.vector == UD_VECTOR, "a hypercall at CPL3 is #UD (%s)",
	       faulted ? exception_mnemonic(ex.vector) : "returned");
}

static void test_control_word(void)
{
	static const u64 rsvd_bits[] = { BIT(27), BIT(30), BIT(44), BIT(47), BIT(60), BIT(63) };
	static const u16 unknown[] = { 0x00fe, 0x7ffe };
	u64 cr3 = read_cr3();
	u64 *in = hv_input_page();
	u64 r;

	for (unsigned i = 0; i < ARRAY_SIZE(unknown); i++) {
		r = hv_hypercall(unknown[i], 0, 0);
		report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_CODE, "unknown call code 0x%x => 2 (result 0x%lx)",
		       unknown[i], r);
	}
	if (!full_run) {
		report_skip("control-word rules: need hv-spinlocks and hv-tlbflush for calls to check them with");
		return;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(rsvd_bits); i++) {
		r = hv_hypercall_fast(HVCALL_NOTIFY_LONG_SPIN_WAIT | rsvd_bits[i], 1, 0);
		report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT, "RsvdZ bit %u of the control word => 3 (0x%lx)",
		       __builtin_ctzl(rsvd_bits[i]), r);
	}
	r = hv_hypercall_fast(HVCALL_NOTIFY_LONG_SPIN_WAIT | HV_HYPERCALL_REP_COUNT(1), 1, 0);
	report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT, "simple call with rep count 1 => 3 (0x%lx)", r);
	r = hv_hypercall_fast(HVCALL_NOTIFY_LONG_SPIN_WAIT | HV_HYPERCALL_REP_START(1), 1, 0);
	report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT, "simple call with rep start 1 => 3 (0x%lx)", r);
	r = hv_hypercall_fast(HVCALL_NOTIFY_LONG_SPIN_WAIT | HV_HYPERCALL_VARHEAD(1), 1, 0);
	report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT,
	       "variable header on a call without one => 3 (0x%lx)", r);

	/* A rep call: FlushVirtualAddressList, header + 4 GVA ranges, flushing on every processor. */
	struct hv_flush_input *f = (void *)in;
	f->address_space = cr3;
	f->flags = HV_FLUSH_ALL_PROCESSORS;
	f->processor_mask = 0;
	for (unsigned i = 0; i < 4; i++)
		f->gva_list[i] = HV_GVA_RANGE(0x3000000000UL + i * PAGE_SIZE, 0);
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, (u64)in, 0);
	report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT, "rep call with rep count 0 => 3 (0x%lx)", r);
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(2) | HV_HYPERCALL_REP_START(2),
			 (u64)in, 0);
	report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT, "rep start 2 >= rep count 2 => 3 (0x%lx)", r);
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(4), (u64)in, 0);
	report(status_of(r) == HV_STATUS_SUCCESS && HV_RESULT_REPS(r) == 4, "rep count 4 => SUCCESS, 4 reps completed (0x%lx)",
	       r);
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(4) | HV_HYPERCALL_REP_START(2),
			 (u64)in, 0);
	report(status_of(r) == HV_STATUS_SUCCESS && HV_RESULT_REPS(r) == 4,
	       "rep start 2, count 4 => reps completed 4, absolute (0x%lx)", r);
	/* More reps than one execution may handle: the continuation is invisible to the caller. */
	for (unsigned i = 0; i < 100; i++)
		f->gva_list[i] = HV_GVA_RANGE(0x3000000000UL + i * PAGE_SIZE, 0);
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST | HV_HYPERCALL_REP_COUNT(100), (u64)in, 0);
	report(status_of(r) == HV_STATUS_SUCCESS && HV_RESULT_REPS(r) == 100, "rep count 100 => 100 reps completed (0x%lx)", r);
}

static void test_slow_buffers(void)
{
	u64 cr3 = read_cr3();
	u8 *two = alloc_pages(2);
	u64 r;

	if (!full_run) {
		report_skip("slow-call buffer rules: need hv-tlbflush for a call to check them with");
		return;
	}
	struct hv_flush_input good = { cr3, HV_FLUSH_ALL_PROCESSORS | HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES, 0 };
	memcpy(two + 8, &good, sizeof(good));
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)two + 8, 0);
	report(status_of(r) == HV_STATUS_SUCCESS, "FlushVirtualAddressSpace, input at an 8-byte aligned GPA => 0 (0x%lx)", r);
	memcpy(two + 4, &good, sizeof(good));
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)two + 4, 0);
	report(status_of(r) == HV_STATUS_INVALID_ALIGNMENT, "input GPA 4 bytes off alignment => 4 (0x%lx)", r);
	memcpy(two + PAGE_SIZE - 16, &good, sizeof(good));
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)two + PAGE_SIZE - 16, 0);
	report(status_of(r) == HV_STATUS_INVALID_ALIGNMENT || status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT,
	       "24-byte input crossing a page => 4 (TLFS) or 3 (0x%lx)", r);
	u64 beyond = 1UL << cpu_phys_addr_bits();
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, beyond, 0);
	report(status_of(r) == HV_STATUS_INVALID_ALIGNMENT, "input GPA 0x%lx beyond the GPA space => 4 (0x%lx)", beyond, r);
	/* The output GPA of a call without output is ignored (§1.5). */
	memcpy(two + 8, &good, sizeof(good));
	r = hv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, (u64)two + 8, 3);
	report(status_of(r) == HV_STATUS_SUCCESS, "a misaligned output GPA is ignored by a call without output (0x%lx)", r);
}

static void test_xmm(void)
{
	struct hv_flush_input f = { read_cr3(), HV_FLUSH_ALL_PROCESSORS | HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES, 0 };
	u64 regs[HV_XMM_BLOCK_BYTES / 8];
	u64 r = 0;

	if (!hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH)) {
		report_skip("XMM fast input: needs hv-tlbflush for a call with more than 16 bytes of input");
		return;
	}
	if (!hv_has_feature(HV_FEAT_XMM_HYPERCALL_INPUT)) {
		unsigned vec = hv_hypercall_xmm_catch(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, &f, sizeof(f), NULL, 0, &r);
		report(vec == UD_VECTOR, "24 bytes of fast input without XMM input advertised => #UD (vector %d, 0x%lx)",
		       (int)vec, r);
		report_skip("XMM fast input: not advertised (CPUID 0x40000003 EDX bit 4)");
		return;
	}
	r = hv_hypercall_xmm(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, &f, sizeof(f), NULL, 0, regs);
	report(status_of(r) == HV_STATUS_SUCCESS, "FlushVirtualAddressSpace, XMM fast (RDX, R8, XMM0) => 0 (0x%lx)", r);
	report(regs[0] == f.address_space && regs[1] == f.flags && regs[2] == f.processor_mask,
	       "input registers RDX, R8, XMM0 are left alone");

	if (hv_has_privilege(HV_PRIV_POST_MESSAGES)) {
		/* PostMessage's 256-byte input cannot be passed in registers (at most 112 bytes). */
		r = hv_hypercall_fast(HVCALL_POST_MESSAGE, 0, 0);
		report(status_of(r) == HV_STATUS_INVALID_HYPERCALL_INPUT,
		       "fast PostMessage (256-byte input does not fit 112 bytes) => 3 (0x%lx)", r);
	}
}

/* GetVpIndexFromApicId (§2.17): slow and with XMM fast output, when the partition may call it. */
static void test_xmm_output(void)
{
	unsigned n = cpu_count() < 4 ? cpu_count() : 4;
	u64 r;

	if (!hv_has_privilege(HV_PRIV_START_VIRTUAL_PROCESSOR)) {
		report_skip("GetVpIndexFromApicId / XMM fast output: need hv-vsm (StartVirtualProcessor privilege)");
		return;
	}
	u64 *in = hv_input_page();
	u32 *out = hv_output_page();
	in[0] = HV_PARTITION_ID_SELF;
	in[1] = 0; /* target VTL 0 */
	u32 *ids = (u32 *)&in[2];
	for (unsigned i = 0; i < n; i++)
		ids[i] = cpu_apic_id(i);
	memset(out, 0xff, 16);
	r = hv_hypercall(HVCALL_GET_VP_INDEX_FROM_APIC_ID | HV_HYPERCALL_REP_COUNT(n), (u64)in, (u64)out);
	bool same = true;
	for (unsigned i = 0; i < n; i++)
		same &= out[i] == hv_vp_of[i];
	report(status_of(r) == HV_STATUS_SUCCESS && HV_RESULT_REPS(r) == n && same,
	       "GetVpIndexFromApicId (slow) maps %u APIC IDs to their VP indices (0x%lx)", n, r);

	if (!hv_has_feature(HV_FEAT_XMM_HYPERCALL_OUTPUT) || !hv_has_feature(HV_FEAT_XMM_HYPERCALL_INPUT)) {
		report_skip("XMM fast output: needs hv-xmm-input and hv-xmm-output");
		return;
	}
	u32 xout[4];
	memset(xout, 0xff, sizeof(xout));
	/* Input 16 + 4n bytes: RDX, R8, XMM0; output from the next pair (XMM1). */
	r = hv_hypercall_xmm(HVCALL_GET_VP_INDEX_FROM_APIC_ID | HV_HYPERCALL_REP_COUNT(n), in, 16 + 4 * n, xout, 4 * n,
			     NULL);
	same = true;
	for (unsigned i = 0; i < n; i++)
		same &= xout[i] == hv_vp_of[i];
	report(status_of(r) == HV_STATUS_SUCCESS && same,
	       "GetVpIndexFromApicId with XMM fast output returns the VP indices in XMM1 (0x%lx)", r);
}

/* ---------------------------------------------------------------- access follows CPUID */

static void test_access(void)
{
	struct { u16 code; const char *name; bool allowed; u64 rep; } calls[] = {
		{ HVCALL_POST_MESSAGE, "PostMessage", hv_has_privilege(HV_PRIV_POST_MESSAGES), 0 },
		{ HVCALL_SIGNAL_EVENT, "SignalEvent", hv_has_privilege(HV_PRIV_SIGNAL_EVENTS), 0 },
		{ HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, "FlushVirtualAddressSpace",
		  hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH), 0 },
		{ HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, "FlushVirtualAddressList",
		  hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH), HV_HYPERCALL_REP_COUNT(1) },
		{ HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX, "FlushVirtualAddressSpaceEx",
		  hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH) && hv_recommends(HV_REC_EX_PROCESSOR_MASKS), 0 },
		{ HVCALL_SEND_SYNTHETIC_CLUSTER_IPI, "SendSyntheticClusterIpi",
		  hv_recommends(HV_REC_SYNTHETIC_CLUSTER_IPI), 0 },
		{ HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX, "SendSyntheticClusterIpiEx",
		  hv_recommends(HV_REC_SYNTHETIC_CLUSTER_IPI) && hv_recommends(HV_REC_EX_PROCESSOR_MASKS), 0 },
		{ HVCALL_GET_VP_INDEX_FROM_APIC_ID, "GetVpIndexFromApicId",
		  hv_has_privilege(HV_PRIV_START_VIRTUAL_PROCESSOR), HV_HYPERCALL_REP_COUNT(1) },
	};
	void *in = hv_input_page();
	unsigned denied = 0;

	memset(in, 0, PAGE_SIZE);
	for (unsigned i = 0; i < ARRAY_SIZE(calls); i++) {
		if (calls[i].allowed)
			continue;
		denied++;
		u64 r = hv_hypercall(calls[i].code | calls[i].rep, (u64)in, (u64)hv_output_page());
		report(status_of(r) == HV_STATUS_ACCESS_DENIED, "%s without its CPUID gate => ACCESS_DENIED (0x%lx)",
		       calls[i].name, r);
	}
	if (!denied)
		report_info("every call is available in this configuration: nothing to deny");
}

/* ---------------------------------------------------------------- PostMessage / SignalEvent */

static volatile u64 msg_irqs, evt_irqs;

static void msg_handler(struct ex_regs *regs) { (void)regs; msg_irqs++; apic_eoi(); }
static void evt_handler(struct ex_regs *regs) { (void)regs; evt_irqs++; apic_eoi(); }

static bool wait_for(volatile u64 *c, u64 want) { return wait_until_at_least(c, want, WAIT); }

static void test_messages(void)
{
	if (!hv_has_privilege(HV_PRIV_POST_MESSAGES) || !hv_has_privilege(HV_PRIV_SYNIC_REGS)) {
		report_skip("PostMessage / SignalEvent: need hv-synic");
		return;
	}
	handle_exception(VEC_MSG, msg_handler);
	handle_exception(VEC_EVT, evt_handler);
	hv_synic_enable();
	hv_sint_set(MSG_SINT, VEC_MSG, 0);
	hv_sint_set(EVT_SINT, VEC_EVT, 0);
	hv_msg_conn_create(MSG_CONN, hv_vp_of[0], MSG_SINT);
	hv_evt_conn_create(EVT_CONN, hv_vp_of[0], EVT_SINT);

	struct hv_post_message_input *pm = hv_input_page();
	struct hv_message *slot = hv_sim_slot(0, MSG_SINT);
	memset(pm, 0, sizeof(*pm));
	pm->connection_id = MSG_CONN;
	pm->message_type = 0x42;
	pm->payload_size = 16;
	pm->payload[0] = 0x0123456789abcdefUL;
	pm->payload[1] = 0xfedcba9876543210UL;
	u64 r = hv_hypercall(HVCALL_POST_MESSAGE, (u64)pm, 0);
	report(status_of(r) == HV_STATUS_SUCCESS, "PostMessage to a registered connection => SUCCESS (0x%lx)", r);
	report(wait_for(&msg_irqs, 1), "its SINT interrupt arrives");
	report(slot->type == 0x42 && slot->payload_size == 16 && slot->payload[0] == pm->payload[0] &&
	       slot->payload[1] == pm->payload[1], "the slot holds type 0x%x, %u payload bytes as posted", slot->type,
	       slot->payload_size);
	hv_message_done(slot);
	pm->connection_id = BAD_CONN;
	r = hv_hypercall(HVCALL_POST_MESSAGE, (u64)pm, 0);
	report(status_of(r) == HV_STATUS_INVALID_CONNECTION_ID, "PostMessage to an unknown connection => 0x12 (0x%lx)", r);

	struct hv_signal_event_input *se = hv_input_page();
	volatile u8 *flags = hv_sief_flags(0, EVT_SINT);
	memset(se, 0, sizeof(*se));
	se->connection_id = EVT_CONN;
	r = hv_hypercall(HVCALL_SIGNAL_EVENT, (u64)se, 0);
	report(status_of(r) == HV_STATUS_SUCCESS && wait_for(&evt_irqs, 1),
	       "SignalEvent (slow) => SUCCESS and an interrupt (0x%lx)", r);
	/* hyperv-testdev's event connection sets flag number <connection id> (pc-platform-facts §2.6). */
	report(hv_event_flag_test_and_clear(flags, EVT_CONN), "flag %u of SINT%u is set", EVT_CONN, EVT_SINT);
	r = hv_hypercall_fast(HVCALL_SIGNAL_EVENT, EVT_CONN, 0);
	report(status_of(r) == HV_STATUS_SUCCESS && wait_for(&evt_irqs, 2),
	       "SignalEvent (fast, connection in RDX) => SUCCESS and an interrupt (0x%lx)", r);
	report(hv_event_flag_test_and_clear(flags, EVT_CONN), "and sets the flag the same way");
	r = hv_hypercall_fast(HVCALL_SIGNAL_EVENT, BAD_CONN, 0);
	report(status_of(r) == HV_STATUS_INVALID_CONNECTION_ID, "SignalEvent (fast) to an unknown connection => 0x12 (0x%lx)", r);
	se->connection_id = BAD_CONN;
	r = hv_hypercall(HVCALL_SIGNAL_EVENT, (u64)se, 0);
	report(status_of(r) == HV_STATUS_INVALID_CONNECTION_ID, "SignalEvent (slow) to an unknown connection => 0x12 (0x%lx)", r);

	hv_msg_conn_destroy(MSG_CONN);
	hv_evt_conn_destroy(EVT_CONN);
	pm->connection_id = MSG_CONN;
	r = hv_hypercall(HVCALL_POST_MESSAGE, (u64)pm, 0);
	report(status_of(r) == HV_STATUS_INVALID_CONNECTION_ID, "PostMessage after the connection is destroyed => 0x12 (0x%lx)", r);
	hv_synic_disable();
}

/* ---------------------------------------------------------------- PV IPIs */


static u64 all_cpus(void) { return cpu_count() >= 64 ? ~0UL : BIT(cpu_count()) - 1; }

/* After a send: exactly the CPUs in `cpus` got one more IPI. */
static bool delivered(u64 cpus, const u64 *before)
{
	bool ok = true;
	u64 t;

	for (unsigned i = 0; i < cpu_count(); i++)
		if (cpus & BIT(i))
			ok &= wait_for(&ipi_count[i], before[i] + 1);
	t = rdtsc();
	while (rdtsc() - t < QUIET)
		pause();
	for (unsigned i = 0; i < cpu_count(); i++)
		ok &= ipi_count[i] == before[i] + !!(cpus & BIT(i));
	return ok;
}

static void snapshot(u64 *b)
{
	for (unsigned i = 0; i < cpu_count(); i++)
		b[i] = ipi_count[i];
}

static u64 send_ipi_slow(u32 vector, u8 flags, u64 cpus)
{
	struct hv_ipi_input *in = hv_input_page();

	memset(in, 0, sizeof(*in));
	in->vector = vector;
	in->flags = flags;
	in->processor_mask = hv_vp_mask(cpus);
	return hv_hypercall(HVCALL_SEND_SYNTHETIC_CLUSTER_IPI, (u64)in, 0);
}

/* Ex input with `nbanks` valid banks: bank 0 holds the VPs of `cpus` (VPs 0..63), banks 1.. are empty. */
static struct hv_ipi_ex_input *build_ipi_ex(u32 vector, u64 format, u64 cpus, unsigned nbanks)
{
	struct hv_ipi_ex_input *in = hv_input_page();

	memset(in, 0, PAGE_SIZE);
	in->vector = vector;
	in->format = format;
	in->valid_banks = format == HV_GENERIC_SET_ALL ? 0 : (BIT(nbanks) - 1);
	in->banks[0] = hv_vp_mask(cpus);
	return in;
}

/* varhead: the bank words the control word announces (normally nbanks). */
static u64 send_ipi_ex(u32 vector, u64 format, u64 cpus, unsigned nbanks, unsigned varhead)
{
	struct hv_ipi_ex_input *in = build_ipi_ex(vector, format, cpus, nbanks);

	return hv_hypercall(HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX | HV_HYPERCALL_VARHEAD(varhead), (u64)in, 0);
}

static void test_ipi(void)
{
	u64 before[MAX_CPUS], all = all_cpus(), r;
	u64 some = cpu_count() > 2 ? (BIT(1) | BIT(cpu_count() - 1)) : all;

	if (!hv_recommends(HV_REC_SYNTHETIC_CLUSTER_IPI)) {
		report_skip("PV IPIs: need hv-ipi");
		return;
	}
	handle_exception(VEC_IPI, ipi_handler);

	snapshot(before);
	r = send_ipi_slow(VEC_IPI, 0, all);
	report(status_of(r) == HV_STATUS_SUCCESS && delivered(all, before),
	       "SendSyntheticClusterIpi (slow) to all %u VPs: one IPI each (0x%lx)", cpu_count(), r);
	for (unsigned i = 0; i < cpu_count(); i++) {
		snapshot(before);
		/* Fast: RDX = vector | target VTL << 32 | flags << 40, R8 = processor mask. */
		r = hv_hypercall_fast(HVCALL_SEND_SYNTHETIC_CLUSTER_IPI, VEC_IPI, hv_vp_mask(BIT(i)));
		report(status_of(r) == HV_STATUS_SUCCESS && delivered(BIT(i), before),
		       "SendSyntheticClusterIpi (fast) to CPU %u (VP %u) only (0x%lx)", i, hv_vp_of[i], r);
	}
	snapshot(before);
	r = send_ipi_slow(VEC_IPI, 0, some);
	report(status_of(r) == HV_STATUS_SUCCESS && delivered(some, before), "a processor mask of CPUs 0x%lx (0x%lx)",
	       some, r);

	if (hv_recommends(HV_REC_EX_PROCESSOR_MASKS)) {
		snapshot(before);
		r = send_ipi_ex(VEC_IPI, HV_GENERIC_SET_SPARSE_4K, some, 1, 1);
		report(status_of(r) == HV_STATUS_SUCCESS && delivered(some, before),
		       "SendSyntheticClusterIpiEx, sparse set, bank 0 only (0x%lx)", r);
		snapshot(before);
		r = send_ipi_ex(VEC_IPI, HV_GENERIC_SET_SPARSE_4K, some, 3, 3);
		report(status_of(r) == HV_STATUS_SUCCESS && delivered(some, before),
		       "SendSyntheticClusterIpiEx, banks 0-2 with 1 and 2 empty (0x%lx)", r);
		snapshot(before);
		r = send_ipi_ex(VEC_IPI, HV_GENERIC_SET_ALL, 0, 0, 0);
		report(status_of(r) == HV_STATUS_SUCCESS && delivered(all, before),
		       "SendSyntheticClusterIpiEx, HV_GENERIC_SET_ALL (0x%lx)", r);
		snapshot(before);
		r = send_ipi_ex(VEC_IPI, HV_GENERIC_SET_SPARSE_4K, some, 1, 0);
		report(status_of(r) == HV_STATUS_INVALID_PARAMETER && delivered(0, before),
		       "Ex with 1 valid bank but no bank word => INVALID_PARAMETER, nothing sent (0x%lx)", r);
		if (hv_has_feature(HV_FEAT_XMM_HYPERCALL_INPUT)) {
			struct hv_ipi_ex_input *in = build_ipi_ex(VEC_IPI, HV_GENERIC_SET_SPARSE_4K, some, 1);
			snapshot(before);
			r = hv_hypercall_xmm(HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX | HV_HYPERCALL_VARHEAD(1), in, 32, NULL, 0,
					     NULL);
			report(status_of(r) == HV_STATUS_SUCCESS && delivered(some, before),
			       "SendSyntheticClusterIpiEx, XMM fast (32 bytes) (0x%lx)", r);
		} else {
			report_skip("SendSyntheticClusterIpiEx XMM fast: needs hv-xmm-input");
		}
	} else {
		report_skip("SendSyntheticClusterIpiEx: needs the Ex processor masks recommendation");
	}

	static const u32 bad_vectors[] = { 0x0, 0xf, 0x100, 0xffffffff };
	for (unsigned i = 0; i < ARRAY_SIZE(bad_vectors); i++) {
		snapshot(before);
		r = send_ipi_slow(bad_vectors[i], 0, all);
		report(status_of(r) == HV_STATUS_INVALID_PARAMETER && delivered(0, before),
		       "vector 0x%x => INVALID_PARAMETER, nothing sent (0x%lx)", bad_vectors[i], r);
	}
	snapshot(before);
	r = send_ipi_slow(VEC_IPI, 1, all);
	report(status_of(r) == HV_STATUS_INVALID_PARAMETER && delivered(0, before),
	       "non-zero flags => INVALID_PARAMETER, nothing sent (0x%lx)", r);
	if (hv_recommends(HV_REC_EX_PROCESSOR_MASKS)) {
		snapshot(before);
		r = send_ipi_ex(0xf, HV_GENERIC_SET_ALL, 0, 0, 0);
		report(status_of(r) == HV_STATUS_INVALID_PARAMETER && delivered(0, before),
		       "Ex with vector 0xf => INVALID_PARAMETER (0x%lx)", r);
	}
	handle_exception(VEC_IPI, NULL);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_VP_INDEX)) {
		report_skip("Hyper-V with hv-vpindex needed");
		report_summary();
	}
	hv_collect_vp_indexes();
	hv_hypercall_setup();
	full_run = hv_spin_retries() != 0 && hv_spin_retries() != HV_SPINLOCK_NEVER_NOTIFY &&
		   hv_recommends(HV_REC_HYPERCALL_REMOTE_FLUSH);
	test_entry();
	test_control_word();
	test_slow_buffers();
	test_xmm();
	test_xmm_output();
	test_access();
	test_messages();
	test_ipi();
	report_summary();
}
