/*
 * SynIC messages and event flags through HvPostMessage / HvSignalEvent to
 * hyperv-testdev connections (tlfs-vsm-facts.md §2.9, §2.10, §4.2;
 * pc-platform-facts.md §2.6), on every CPU:
 * - a posted message lands in the target VP's SIM slot of the connection's
 *   SINT (type, size and payload as posted) and raises that SINT there only;
 * - a busy slot queues further messages: MessagePending is set in the slot;
 *   when the guest frees the slot and writes EOM the next one comes (itself
 *   flagged MessagePending while more wait), in posting order;
 * - PostMessage errors: type 0 or with bit 31, payload over 240 bytes =>
 *   INVALID_PARAMETER; target SynIC or SIM disabled => INVALID_SYNIC_STATE;
 *   a full queue => INSUFFICIENT_BUFFERS (if the hypervisor limits it);
 * - SignalEvent sets the connection's flag in the SIEF page and interrupts
 *   only when the flag goes from 0 to 1; flag number beyond the port's flags
 *   => INVALID_PARAMETER; SINT masked or SIEF disabled => INVALID_SYNIC_STATE;
 * - destroyed connections => INVALID_CONNECTION_ID.
 * Run with --hv hv-vpindex,hv-synic --smp 4.
 */
#include "libguest.h"
#include "hyperv.h"

#define MSG_SINT 5
#define EVT_SINT 6
#define VEC_MSG 0xc5
#define VEC_EVT 0xc6
#define MSG_CONN(cpu) (0x10 + (cpu))
#define EVT_CONN(cpu) (0x40 + (cpu))
#define MSG_TYPE 0x77
#define WAIT (1UL << 30)
#define QUIET (1UL << 21)
#define LOG 128

struct cpu_state {
	volatile u64 msg_irqs, evt_irqs;
	volatile bool consume;                /* the handler frees the slot */
	volatile u64 logged;                  /* messages consumed */
	volatile u64 payload0[LOG], payload1[LOG];
	volatile u32 type[LOG], size[LOG];
	volatile u8 flags[LOG];
};

static struct cpu_state st[MAX_CPUS];
static u32 vp_of[MAX_CPUS];

/* Copy the message in this CPU's slot into its log and free the slot (EOM if MessagePending). */
static void take_slot(void *arg)
{
	unsigned cpu = smp_id();
	struct cpu_state *s = &st[cpu];
	struct hv_message *m = hv_sim_slot(cpu, MSG_SINT);
	u64 n = s->logged;

	(void)arg;
	if (m->type == HV_MESSAGE_TYPE_NONE)
		return;
	if (n < LOG) {
		s->type[n] = m->type;
		s->size[n] = m->payload_size;
		s->flags[n] = m->flags;
		s->payload0[n] = m->payload[0];
		s->payload1[n] = m->payload[1];
	}
	s->logged = n + 1;
	hv_message_done(m);
}

static void msg_handler(struct ex_regs *regs)
{
	(void)regs;
	st[smp_id()].msg_irqs++;
	if (st[smp_id()].consume)
		take_slot(NULL);
	apic_eoi();
}

static void evt_handler(struct ex_regs *regs)
{
	(void)regs;
	st[smp_id()].evt_irqs++;
	apic_eoi();
}

static void setup_cpu(void *arg)
{
	(void)arg;
	vp_of[smp_id()] = hv_vp_index();
	st[smp_id()].consume = true;
	hv_synic_enable();
	hv_sint_set(MSG_SINT, VEC_MSG, 0);
	hv_sint_set(EVT_SINT, VEC_EVT, 0);
}

static bool wait_for(volatile u64 *c, u64 want) { return wait_until_at_least(c, want, WAIT); }

static void quiet(void)
{
	u64 t = rdtsc();

	while (rdtsc() - t < QUIET)
		pause();
}

static u64 post(u32 conn, u32 type, u32 size, u64 p0, u64 p1)
{
	struct hv_post_message_input *in = hv_input_page();

	memset(in, 0, sizeof(*in));
	in->connection_id = conn;
	in->message_type = type;
	in->payload_size = size;
	in->payload[0] = p0;
	in->payload[1] = p1;
	return hv_hypercall(HVCALL_POST_MESSAGE, (u64)in, 0);
}

static u64 signal(u32 conn, u16 flag)
{
	/* Fast: RDX = ConnectionId | FlagNumber << 32. */
	return hv_hypercall_fast(HVCALL_SIGNAL_EVENT, conn | ((u64)flag << 32), 0);
}

static u64 total_msg_irqs(void)
{
	u64 n = 0;

	for (unsigned i = 0; i < cpu_count(); i++)
		n += st[i].msg_irqs;
	return n;
}

/* ---------------------------------------------------------------- delivery to every CPU */

static volatile u64 remote_result;

static void post_from_here(void *arg)
{
	remote_result = post(MSG_CONN((u64)arg), MSG_TYPE, 16, 0xc0ffee, smp_id());
}

static void test_delivery(void)
{
	for (unsigned c = 0; c < cpu_count(); c++) {
		struct cpu_state *s = &st[c];
		u64 n = s->logged, all = total_msg_irqs();
		u64 r = post(MSG_CONN(c), MSG_TYPE, 16, 0x1000 + c, 0x2000 + c);
		bool got = wait_for(&s->logged, n + 1);

		quiet();
		report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && got && total_msg_irqs() == all + 1,
		       "PostMessage to CPU %u (VP %u) => SUCCESS (0x%lx), one interrupt there", c, vp_of[c], r);
		report(got && s->type[n] == MSG_TYPE && s->size[n] == 16 && s->payload0[n] == 0x1000 + c &&
		       s->payload1[n] == 0x2000 + c && !(s->flags[n] & HV_MESSAGE_FLAG_PENDING),
		       "CPU %u: slot had type 0x%x, %u bytes, payload 0x%lx 0x%lx, no MessagePending", c, s->type[n],
		       s->size[n], s->payload0[n], s->payload1[n]);
	}
	if (cpu_count() > 1) {
		u64 n = st[0].logged;
		on_cpu(1, post_from_here, (void *)0UL);
		report(HV_RESULT_STATUS(remote_result) == HV_STATUS_SUCCESS && wait_for(&st[0].logged, n + 1) &&
		       st[0].payload1[n] == 1, "PostMessage from CPU 1 to CPU 0 arrives (0x%lx)", remote_result);
	}
}

/* ---------------------------------------------------------------- queueing, MessagePending, EOM */

static void test_queue(unsigned t)
{
	struct cpu_state *s = &st[t];
	struct hv_message *slot = hv_sim_slot(t, MSG_SINT);
	u64 irqs = s->msg_irqs, n = s->logged;
	u64 r[3];

	s->consume = false;
	for (unsigned i = 0; i < 3; i++)
		r[i] = post(MSG_CONN(t), MSG_TYPE + i, 8, 0x100 + i, 0);
	report(!HV_RESULT_STATUS(r[0]) && !HV_RESULT_STATUS(r[1]) && !HV_RESULT_STATUS(r[2]),
	       "CPU %u: three messages posted into one slot => SUCCESS each (0x%lx 0x%lx 0x%lx)", t, r[0], r[1], r[2]);
	report(wait_for(&s->msg_irqs, irqs + 1), "CPU %u: the first one interrupts", t);
	quiet();
	report(slot->type == MSG_TYPE && slot->payload[0] == 0x100 && s->msg_irqs == irqs + 1,
	       "CPU %u: the slot holds the first (type 0x%x), the others wait without interrupting", t, slot->type);
	report(slot->flags & HV_MESSAGE_FLAG_PENDING, "CPU %u: MessagePending is set in the busy slot (flags 0x%x)", t,
	       slot->flags);

	for (unsigned i = 1; i <= 3; i++) {
		on_cpu(t, take_slot, NULL); /* MessageType = 0, EOM because MessagePending was set */
		if (i < 3)
			report(wait_for(&s->msg_irqs, irqs + 1 + i) && slot->type == MSG_TYPE + i &&
			       slot->payload[0] == 0x100 + i,
			       "CPU %u: after EOM message %u arrives with its interrupt (type 0x%x)", t, i + 1, slot->type);
	}
	quiet();
	report(s->logged == n + 3 && s->payload0[n] == 0x100 && s->payload0[n + 1] == 0x101 && s->payload0[n + 2] == 0x102,
	       "CPU %u: the three were consumed in posting order", t);
	report((s->flags[n + 1] & HV_MESSAGE_FLAG_PENDING) && !(s->flags[n + 2] & HV_MESSAGE_FLAG_PENDING),
	       "CPU %u: the second carried MessagePending (one more waited), the last did not (0x%x, 0x%x)", t,
	       s->flags[n + 1], s->flags[n + 2]);
	report(slot->type == HV_MESSAGE_TYPE_NONE && s->msg_irqs == irqs + 3, "CPU %u: then the slot stays free", t);

	/* Fill the queue: the hypervisor may refuse with INSUFFICIENT_BUFFERS; what it accepts it must deliver. */
	u64 before = s->logged, accepted = 0, last = 0;
	for (unsigned i = 0; i < 64; i++) {
		last = post(MSG_CONN(t), MSG_TYPE, 8, 0x5000 + accepted, 0);
		if (HV_RESULT_STATUS(last) != HV_STATUS_SUCCESS)
			break;
		accepted++;
	}
	if (HV_RESULT_STATUS(last) == HV_STATUS_INSUFFICIENT_BUFFERS)
		report(true, "CPU %u: a full queue => INSUFFICIENT_BUFFERS after %lu messages", t, accepted);
	else
		report(HV_RESULT_STATUS(last) == HV_STATUS_SUCCESS, "CPU %u: %lu messages accepted (last 0x%lx)", t,
		       accepted, last);
	for (u64 i = 0; i < accepted + 1 && slot->type != HV_MESSAGE_TYPE_NONE; i++) {
		u64 seen = s->msg_irqs;
		on_cpu(t, take_slot, NULL);
		if (i + 1 < accepted)
			wait_for(&s->msg_irqs, seen + 1);
	}
	bool in_order = s->logged == before + accepted;
	for (u64 i = 0; in_order && i < accepted && before + i < LOG; i++)
		in_order = s->payload0[before + i] == 0x5000 + i;
	report(in_order, "CPU %u: all %lu accepted messages were delivered, in order (%lu consumed)", t, accepted,
	       s->logged - before);
	s->consume = true;
}

static void simp_off(void *arg) { (void)arg; wrmsr(HV_X64_MSR_SIMP, rdmsr(HV_X64_MSR_SIMP) & ~HV_PAGE_MSR_ENABLE); }
static void simp_on(void *arg) { (void)arg; wrmsr(HV_X64_MSR_SIMP, rdmsr(HV_X64_MSR_SIMP) | HV_PAGE_MSR_ENABLE); }
static void scontrol_off(void *arg) { (void)arg; wrmsr(HV_X64_MSR_SCONTROL, 0); }
static void scontrol_on(void *arg) { (void)arg; wrmsr(HV_X64_MSR_SCONTROL, HV_SCONTROL_ENABLE); }

static void test_post_errors(unsigned t)
{
	u64 r;

	r = post(MSG_CONN(t), 0, 8, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER, "message type 0 => INVALID_PARAMETER (0x%lx)", r);
	r = post(MSG_CONN(t), 0x80000001u, 8, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER, "message type with bit 31 => INVALID_PARAMETER (0x%lx)", r);
	r = post(MSG_CONN(t), MSG_TYPE, HV_MESSAGE_PAYLOAD_MAX + 1, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER, "payload of 241 bytes => INVALID_PARAMETER (0x%lx)", r);
	u64 n = st[t].logged;
	r = post(MSG_CONN(t), MSG_TYPE, HV_MESSAGE_PAYLOAD_MAX, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && wait_for(&st[t].logged, n + 1) &&
	       st[t].size[n] == HV_MESSAGE_PAYLOAD_MAX, "payload of 240 bytes => SUCCESS (0x%lx) and delivered", r);

	on_cpu(t, simp_off, NULL);
	r = post(MSG_CONN(t), MSG_TYPE, 8, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_SYNIC_STATE, "CPU %u: SIM disabled => INVALID_SYNIC_STATE (0x%lx)", t, r);
	on_cpu(t, simp_on, NULL);
	on_cpu(t, scontrol_off, NULL);
	r = post(MSG_CONN(t), MSG_TYPE, 8, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_SYNIC_STATE, "CPU %u: SCONTROL disabled => INVALID_SYNIC_STATE (0x%lx)", t, r);
	on_cpu(t, scontrol_on, NULL);
	quiet();
}

/* ---------------------------------------------------------------- event flags */

static void siefp_off(void *arg) { (void)arg; wrmsr(HV_X64_MSR_SIEFP, rdmsr(HV_X64_MSR_SIEFP) & ~HV_PAGE_MSR_ENABLE); }
static void siefp_on(void *arg) { (void)arg; wrmsr(HV_X64_MSR_SIEFP, rdmsr(HV_X64_MSR_SIEFP) | HV_PAGE_MSR_ENABLE); }
static void evt_sint_masked(void *arg) { (void)arg; hv_sint_set(EVT_SINT, VEC_EVT, HV_SINT_MASKED); }
static void evt_sint_unmasked(void *arg) { (void)arg; hv_sint_set(EVT_SINT, VEC_EVT, 0); }

static void test_events(void)
{
	for (unsigned c = 0; c < cpu_count(); c++) {
		struct cpu_state *s = &st[c];
		volatile u8 *flags = hv_sief_flags(c, EVT_SINT);
		unsigned flag = EVT_CONN(c); /* hyperv-testdev: the flag number is the connection id */
		u64 irqs = s->evt_irqs;

		u64 r = signal(EVT_CONN(c), 0);
		bool got = wait_for(&s->evt_irqs, irqs + 1);
		report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && got && hv_event_flag_test(flags, flag),
		       "CPU %u: SignalEvent => SUCCESS (0x%lx), flag %u set, one interrupt", c, r, flag);
		r = signal(EVT_CONN(c), 0);
		quiet();
		report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && s->evt_irqs == irqs + 1,
		       "CPU %u: signalling a flag that is still set => SUCCESS, no interrupt (%lu)", c, s->evt_irqs - irqs);
		report(hv_event_flag_test_and_clear(flags, flag), "CPU %u: the guest clears the flag", c);
		r = signal(EVT_CONN(c), 0);
		report(HV_RESULT_STATUS(r) == HV_STATUS_SUCCESS && wait_for(&s->evt_irqs, irqs + 2),
		       "CPU %u: 0 -> 1 again: another interrupt", c);
		hv_event_flag_test_and_clear(flags, flag);
	}
	unsigned t = cpu_count() - 1;
	u64 r = signal(EVT_CONN(t), 1);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_PARAMETER,
	       "flag number 1 on a one-flag connection => INVALID_PARAMETER (0x%lx)", r);
	on_cpu(t, evt_sint_masked, NULL);
	r = signal(EVT_CONN(t), 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_SYNIC_STATE, "CPU %u: SINT masked => INVALID_SYNIC_STATE (0x%lx)", t, r);
	on_cpu(t, evt_sint_unmasked, NULL);
	on_cpu(t, siefp_off, NULL);
	r = signal(EVT_CONN(t), 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_SYNIC_STATE, "CPU %u: SIEF disabled => INVALID_SYNIC_STATE (0x%lx)", t, r);
	on_cpu(t, siefp_on, NULL);
	hv_event_flag_test_and_clear(hv_sief_flags(t, EVT_SINT), EVT_CONN(t));
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!hv_present() || !hv_has_privilege(HV_PRIV_SYNIC_REGS) || !hv_has_privilege(HV_PRIV_POST_MESSAGES) ||
	    !hv_has_privilege(HV_PRIV_VP_INDEX)) {
		report_skip("SynIC messages need --hv hv-vpindex,hv-synic");
		report_summary();
	}
	handle_exception(VEC_MSG, msg_handler);
	handle_exception(VEC_EVT, evt_handler);
	on_cpus(setup_cpu, NULL);
	hv_hypercall_setup();
	for (unsigned c = 0; c < cpu_count(); c++) {
		hv_msg_conn_create(MSG_CONN(c), vp_of[c], MSG_SINT);
		hv_evt_conn_create(EVT_CONN(c), vp_of[c], EVT_SINT);
	}
	u64 r;
	unsigned vec = hv_hypercall_catch(HVCALL_SIGNAL_EVENT | HV_HYPERCALL_FAST, 0xff, 0, &r);
	if (vec != NO_EXCEPTION) {
		report(false, "a hypercall raised %s: no hypercall dispatcher, the rest cannot run", exception_mnemonic(vec));
		report_summary();
	}

	test_delivery();
	test_queue(cpu_count() - 1);
	test_post_errors(cpu_count() - 1);
	test_events();

	for (unsigned c = 0; c < cpu_count(); c++) {
		hv_msg_conn_destroy(MSG_CONN(c));
		hv_evt_conn_destroy(EVT_CONN(c));
	}
	r = post(MSG_CONN(0), MSG_TYPE, 8, 0, 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_CONNECTION_ID, "PostMessage after the connection is destroyed => 0x12 (0x%lx)", r);
	r = signal(EVT_CONN(0), 0);
	report(HV_RESULT_STATUS(r) == HV_STATUS_INVALID_CONNECTION_ID, "SignalEvent after the connection is destroyed => 0x12 (0x%lx)", r);
	report_summary();
}
