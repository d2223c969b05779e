/*
 * VTL memory protections and GPA intercepts (tlfs-vsm-facts.md §2.18, §3.7,
 * §3.8, §3.10, §4.2-§4.5), with the VSM library (lib/vsm.h) on every VP.
 *
 * 1. The write-once VsmPartitionConfig (§3.7), from VTL1: before
 *    EnableVtlProtection, ModifyVtlProtectionMask is ACCESS_DENIED and a
 *    default mask of W without R is INVALID_REGISTER_VALUE; enabling with
 *    the default mask RWX succeeds; then a different default mask or a
 *    cleared EnableVtlProtection is INVALID_REGISTER_VALUE, the same value
 *    again is accepted. VTL0 has no instance (INVALID_PARAMETER) and may not
 *    touch VTL1's (ACCESS_DENIED).
 * 2. ModifyVtlProtectionMask's negative cases (§2.18, §3.8): from VTL0,
 *    target VTL0 ⇒ INVALID_PARAMETER, input VTL1 ⇒ ACCESS_DENIED; from
 *    VTL1, partition ≠ self ⇒ ACCESS_DENIED, masks that are not none, R,
 *    RW, RX, RWX ⇒ INVALID_REGISTER_VALUE, a rep count of 0 ⇒
 *    INVALID_HYPERCALL_INPUT, a non-RAM page at element i ⇒
 *    INVALID_PARAMETER with i reps completed and the elements before it
 *    applied (one shown by an intercept, one by a translation), the
 *    element after it not; the XMM fast form likewise.
 * 3. Intercepts on each VP: VTL0 reads a no-access page, writes a
 *    read-only page, calls into a non-executable page, and touches a fresh
 *    VA whose page table VTL1 made no-access. VTL0 runs each access in an
 *    assembly function that loads every GPR with a known value right before
 *    the labelled instruction; VTL1's SINT0 handler copies the message and
 *    lifts the protection; VTL0 then builds the message it expects from
 *    that context alone (§4.4 header: VP index, instruction length, access
 *    type, execution state, CS from its GDT entry, RIP, RFLAGS; §4.5: WB
 *    cache type, the instruction bytes at the label (none for an execute
 *    fault), GVA, GPA, access info; DS, SS and the GPRs after it) and
 *    compares all 256 bytes. The access then completed exactly once. A read
 *    that VTL1 lets fault twice enters VTL1 twice (entry reason 3) with the
 *    same message.
 *
 * Run with --hv hv-vpindex,hv-synic,hv-vapic,hv-vsm,hv-xmm-input at any CPU
 * count; the counts in test/guests/vsm-protect.test.ts depend on it.
 * Without VSM every check is skipped (QEMU TCG has no Hyper-V).
 */
#include "libguest.h"
#include "hyperv.h"
#include "vsm.h"
#include "access-fn.h"

enum { CMD_GET_CONFIG = VSM_CMD_USER, CMD_PROTECT, CMD_TRANSLATE };

/* The local APIC's page: MMIO, not guest RAM (pc-platform-facts). */
#define NON_RAM_PAGE (0xfee00000UL >> HV_PAGE_SHIFT)
#define PROTECTION_CONFIG (HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX))
#define WALK_VA 0x3000000000UL    /* outside the identity map: its page table is a fresh page */
#define OFFSET 0x238              /* where in a page the accesses go */
#define DATA_VALUE 0x0123456789abcdefUL
/* What the partition is called in intercept messages (src/vmm/vsm/memory-intercept.ts; the sheet gives no value). */
#define ORIGINATION_ID 1
#define MAX_CAPTURE 4
#define PAGE_OF(p) ((u64)(p) >> HV_PAGE_SHIFT)

static struct vsm_hvc vtl0_hvc;

// ---------------------------------------------------------------- the faulting accesses

/* The access functions (lib/access-fn.h): fc_in before, fc_out after, fc_rflags at the access. */
ACCESS_FN(access_read, "add (%rsi), %rax");   /* a data read: RAX += [RSI] */
ACCESS_FN(access_write, "add %rdx, (%rsi)");  /* a data write (read-modify-write): [RSI] += RDX */
ACCESS_FN(access_call, "call *%rdi");         /* an instruction fetch at RDI */

/* What the executed page holds: incq (%rsi); ret. */
static const u8 exec_code[] = { 0x48, 0xff, 0x06, 0xc3 };

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };

/* Distinct GPR values for this CPU and case; the caller sets the ones the access uses. */
static void fill_gprs(unsigned tag)
{
	for (unsigned k = 0; k < 16; k++)
		fc_in[k] = 0x1000000000000000UL * (k + 1) + 0x10101UL * tag + smp_id();
}

// ---------------------------------------------------------------- VTL1

/* Messages VTL1's SINT0 handler saw, per CPU; it lifts the protection at message lift_after. */
struct capture {
	volatile u32 count;
	struct hv_message msg[MAX_CAPTURE];
};
static struct capture captured[MAX_CPUS];
static volatile u32 lift_after;
static volatile u64 lift_page;

/*
 * SINT0 message (in VTL1's intercept entry; no printing). At message
 * lift_after (or once the capture is full, so a wrong message cannot loop
 * for ever) it makes the page VTL0 faulted on, and the one the test named,
 * RWX again.
 */
static void on_message(struct vsm_vp *vp, const struct hv_message *m)
{
	struct capture *c = &captured[vp->cpu];
	u32 k = c->count++;

	if (k < MAX_CAPTURE)
		memcpy(&c->msg[k], m, sizeof(*m));
	if (k + 1 >= lift_after || k + 1 >= MAX_CAPTURE) {
		const struct hv_memory_intercept *p = (const void *)m->payload;
		u64 pages[2] = { lift_page, p->gpa >> HV_PAGE_SHIFT };
		vsm_modify_protection(&vp->hvc, HV_PARTITION_ID_SELF, HV_MAP_GPA_RWX, HV_INPUT_VTL_SELF, pages, 2);
	}
}

static u64 vtl1_get_config(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_get_u64(&vp->hvc, HV_REG_VSM_PARTITION_CONFIG);
}

/* ModifyVtlProtectionMask from VTL1 as a request in shared memory describes it. */
struct protect_req {
	u64 partition;
	u32 mask;
	u8 input_vtl;
	bool fast;
	unsigned n;
	u64 pages[12];
};

static u64 vtl1_protect(struct vsm_vp *vp, struct vsm_regs *regs)
{
	const struct protect_req *q = (const void *)vp->arg[0];

	(void)regs;
	if (q->fast)
		return vsm_modify_protection_fast(&vp->hvc, q->partition, q->mask, q->input_vtl, q->pages, q->n);
	return vsm_modify_protection(&vp->hvc, q->partition, q->mask, q->input_vtl, q->pages, q->n);
}

static struct hv_translate_output translated;

/* TranslateVirtualAddress for this VP's VTL0 (arg0 = flags without the input VTL, arg1 = GVA); returns the result value. */
static u64 vtl1_translate(struct vsm_vp *vp, struct vsm_regs *regs)
{
	(void)regs;
	return vsm_translate(&vp->hvc, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, vp->arg[0] | HV_TRANSLATE_GVA_INPUT_VTL(HV_INPUT_VTL(0)),
			     vp->arg[1] >> HV_PAGE_SHIFT, &translated);
}

// ---------------------------------------------------------------- VTL0 helpers

static u64 protect_from_vtl1(u64 partition, u32 mask, u8 input_vtl, const u64 *pages, unsigned n, bool fast)
{
	struct protect_req q = { .partition = partition, .mask = mask, .input_vtl = input_vtl, .fast = fast, .n = n };

	memcpy(q.pages, pages, 8 * n);
	return vsm_call(CMD_PROTECT, (u64)&q, 0, 0);
}

static u64 protect1(u64 page, u32 mask)
{
	return protect_from_vtl1(HV_PARTITION_ID_SELF, mask, HV_INPUT_VTL_SELF, &page, 1, false);
}

/* The result code of VTL1 translating gva for this VP's VTL0 (the call's status must be SUCCESS). */
static unsigned translate_code(u64 flags, u64 gva)
{
	u64 r = vsm_call(CMD_TRANSLATE, flags, gva, 0);

	if (HV_RESULT_STATUS(r) != HV_STATUS_SUCCESS)
		return 0x10000 | HV_RESULT_STATUS(r);
	return (u32)translated.result;
}

static bool result_is(u64 r, unsigned status, unsigned reps)
{
	return HV_RESULT_STATUS(r) == status && HV_RESULT_REPS(r) == reps;
}

/* What one fault should produce, from VTL0's side. */
struct fault {
	unsigned access;
	const u8 *insn;            /* the instruction at RIP (NULL: an execute fault, no bytes) */
	unsigned insn_len;
	u64 rip, gva, gpa;
	u8 access_info;
	long rsp_delta;            /* RSP at the fault minus RSP before the instruction */
};

/* The GpaIntercept message for f in VTL0's state now, built from the fault context alone. */
static void expected_message(struct hv_message *m, const struct fault *f)
{
	struct hv_memory_intercept *p = (void *)m->payload;

	memset(m, 0, sizeof(*m));
	m->type = HV_MESSAGE_TYPE_GPA_INTERCEPT;
	m->payload_size = HV_MEMORY_INTERCEPT_BYTES;
	m->origin = ORIGINATION_ID;
	vsm_intercept_header(&p->header, f->access, f->insn_len, f->rip, fc_rflags);
	p->cache_type = HV_CACHE_TYPE_WB;
	p->insn_byte_count = f->insn_len;
	p->access_info = f->access_info;
	p->gva = f->gva;
	p->gpa = f->gpa;
	if (f->insn_len)
		memcpy(p->insn_bytes, f->insn, f->insn_len);
	p->ds = vsm_gdt_segment(read_ds());
	p->ss = vsm_gdt_segment(read_ss());
	memcpy(p->gprs, fc_in, sizeof(p->gprs));
	p->gprs[RSP] = fc_in[RSP] + f->rsp_delta;
}

/*
 * Runs access() (fc_in set) with the protection already in place, lets
 * VTL1 lift it at fault number `faults`, and checks the entries and every
 * message against f (2 checks + one per message).
 */
static void check_intercepts(const char *what, void (*access)(void), const struct fault *f, unsigned faults, u64 page)
{
	struct vsm_vp *vp = vsm_this_vp();
	struct capture *c = &captured[smp_id()];
	u64 intercepts = vp->entries[HV_VTL_ENTRY_INTERCEPT], messages = vp->messages;
	struct hv_message want;
	char who[64];

	c->count = 0;
	lift_page = page;
	lift_after = faults;
	access();
	snprintf(who, sizeof(who), "VP%u %s", vp->vp_index, what);
	report(vp->entries[HV_VTL_ENTRY_INTERCEPT] - intercepts == faults && vp->last_reason == HV_VTL_ENTRY_INTERCEPT &&
	       vp->messages - messages == faults && c->count == faults,
	       "%s: %u VTL entr%s with reason 3 (intercept), %u SINT0 message(s)", who,
	       (unsigned)(vp->entries[HV_VTL_ENTRY_INTERCEPT] - intercepts), faults == 1 ? "y" : "ies", c->count);
	expected_message(&want, f);
	for (unsigned k = 0; k < faults && k < MAX_CAPTURE; k++)
		report(vsm_same_bytes(who, &c->msg[k], &want, sizeof(want)),
		       "%s: message %u is the GpaIntercept expected from the faulting context, byte for byte (access %u, GPA 0x%lx, info 0x%x)",
		       who, k + 1, f->access, f->gpa, f->access_info);
	report(c->count == faults, "%s: VTL1 lifted the protection after fault %u and VTL0 went on", who, faults);
}

// ---------------------------------------------------------------- 1. VsmPartitionConfig

static void partition_config(void)
{
	u64 page = (u64)alloc_page(), v[2];
	u64 r = protect1(PAGE_OF(page), 0);

	report(result_is(r, HV_STATUS_ACCESS_DENIED, 0), "VTL1: ModifyVtlProtectionMask before EnableVtlProtection => ACCESS_DENIED (0x%lx)", r);
	u64 s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_WRITABLE), 0, 0);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE && vsm_call(CMD_GET_CONFIG, 0, 0, 0) == 0,
	       "VTL1: VsmPartitionConfig EnableVtlProtection with default mask W (0x2) => INVALID_REGISTER_VALUE (0x%lx), still 0", s);
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	u64 cfg = vsm_call(CMD_GET_CONFIG, 0, 0, 0);
	report(s == HV_STATUS_SUCCESS && cfg == PROTECTION_CONFIG,
	       "VTL1: VsmPartitionConfig EnableVtlProtection, default mask RWX (0x%lx) => SUCCESS (0x%lx), reads 0x%lx",
	       (u64)PROTECTION_CONFIG, s, cfg);
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, HV_VSM_CONFIG_ENABLE_VTL_PROTECTION | HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_READABLE), 0, 0);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "VTL1: changing the default mask to R afterwards => INVALID_REGISTER_VALUE (0x%lx)", s);
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, HV_VSM_CONFIG_DEFAULT_MASK(HV_MAP_GPA_RWX), 0, 0);
	report(s == HV_STATUS_INVALID_REGISTER_VALUE, "VTL1: clearing EnableVtlProtection => INVALID_REGISTER_VALUE (0x%lx)", s);
	s = vsm_call(VSM_CMD_SET_PARTITION_CONFIG, PROTECTION_CONFIG, 0, 0);
	cfg = vsm_call(CMD_GET_CONFIG, 0, 0, 0);
	report(s == HV_STATUS_SUCCESS && cfg == PROTECTION_CONFIG, "VTL1: writing the same value again => SUCCESS (0x%lx), reads 0x%lx", s, cfg);
	s = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL_SELF, HV_REG_VSM_PARTITION_CONFIG, PROTECTION_CONFIG);
	report(s == HV_STATUS_INVALID_PARAMETER, "VTL0: SetVpRegisters(VsmPartitionConfig) of VTL0 (no instance) => INVALID_PARAMETER (0x%lx)", s);
	s = vsm_set_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(1), HV_REG_VSM_PARTITION_CONFIG, 0);
	unsigned g = vsm_get_reg(&vtl0_hvc, HV_VP_INDEX_SELF, HV_INPUT_VTL(1), HV_REG_VSM_PARTITION_CONFIG, v);
	report(s == HV_STATUS_ACCESS_DENIED && g == HV_STATUS_ACCESS_DENIED,
	       "VTL0: Set/GetVpRegisters(VsmPartitionConfig) of VTL1 => ACCESS_DENIED (0x%lx, 0x%x)", s, g);
	/* The default mask RWX applies to every page: VTL0 still reads and writes this one, no intercept. */
	u64 before = vsm_this_vp()->entries[HV_VTL_ENTRY_INTERCEPT];
	writeq(page, DATA_VALUE);
	report(readq(page) == DATA_VALUE && vsm_this_vp()->entries[HV_VTL_ENTRY_INTERCEPT] == before,
	       "VTL0: with the default mask RWX a page is read and written without intercepts");
}

// ---------------------------------------------------------------- 2. ModifyVtlProtectionMask

static void protection_negative(void)
{
	u64 pages[4] = { PAGE_OF(alloc_page()), PAGE_OF(alloc_page()), NON_RAM_PAGE, PAGE_OF(alloc_page()) };
	u64 b = pages[1] << HV_PAGE_SHIFT, r;

	writeq(b + OFFSET, DATA_VALUE);

	r = vsm_modify_protection(&vtl0_hvc, HV_PARTITION_ID_SELF, 0, HV_INPUT_VTL_SELF, pages, 1);
	report(result_is(r, HV_STATUS_INVALID_PARAMETER, 0), "VTL0: ModifyVtlProtectionMask for its own VTL0 => INVALID_PARAMETER (0x%lx)", r);
	r = vsm_modify_protection(&vtl0_hvc, HV_PARTITION_ID_SELF, 0, HV_INPUT_VTL(0), pages, 1);
	report(result_is(r, HV_STATUS_INVALID_PARAMETER, 0), "VTL0: ModifyVtlProtectionMask with input VTL0 => INVALID_PARAMETER (0x%lx)", r);
	r = vsm_modify_protection(&vtl0_hvc, HV_PARTITION_ID_SELF, 0, HV_INPUT_VTL(1), pages, 1);
	report(result_is(r, HV_STATUS_ACCESS_DENIED, 0), "VTL0: ModifyVtlProtectionMask with input VTL1 (above it) => ACCESS_DENIED (0x%lx)", r);

	r = protect_from_vtl1(0, 0, HV_INPUT_VTL_SELF, pages, 1, false);
	report(result_is(r, HV_STATUS_ACCESS_DENIED, 0), "VTL1: ModifyVtlProtectionMask of partition 0 (not self) => ACCESS_DENIED (0x%lx)", r);
	static const u32 bad_masks[] = { HV_MAP_GPA_WRITABLE, HV_MAP_GPA_KERNEL_EXECUTABLE | HV_MAP_GPA_USER_EXECUTABLE,
					 HV_MAP_GPA_READABLE | HV_MAP_GPA_KERNEL_EXECUTABLE, HV_MAP_GPA_READABLE | HV_MAP_GPA_USER_EXECUTABLE,
					 HV_MAP_GPA_RWX & ~HV_MAP_GPA_READABLE };
	for (unsigned i = 0; i < ARRAY_SIZE(bad_masks); i++) {
		r = protect1(pages[0], bad_masks[i]);
		report(result_is(r, HV_STATUS_INVALID_REGISTER_VALUE, 0), "VTL1: ModifyVtlProtectionMask with mask 0x%x => INVALID_REGISTER_VALUE (0x%lx)",
		       bad_masks[i], r);
	}
	r = protect_from_vtl1(HV_PARTITION_ID_SELF, 0, HV_INPUT_VTL_SELF, pages, 0, false);
	report(result_is(r, HV_STATUS_INVALID_HYPERCALL_INPUT, 0), "VTL1: ModifyVtlProtectionMask with rep count 0 => INVALID_HYPERCALL_INPUT (0x%lx)", r);
	r = protect_from_vtl1(HV_PARTITION_ID_SELF, 0, 0x20 | HV_INPUT_VTL(1), pages, 1, false);
	report(result_is(r, HV_STATUS_INVALID_PARAMETER, 0), "VTL1: ModifyVtlProtectionMask with input VTL bit 5 set => INVALID_PARAMETER (0x%lx)", r);

	/* Elements 0 and 1 apply, element 2 is not RAM, element 3 is not reached. */
	r = protect_from_vtl1(HV_PARTITION_ID_SELF, 0, HV_INPUT_VTL_SELF, pages, 4, false);
	report(result_is(r, HV_STATUS_INVALID_PARAMETER, 2),
	       "VTL1: ModifyVtlProtectionMask(no access) of {RAM, RAM, APIC page, RAM} => INVALID_PARAMETER, 2 reps completed (0x%lx)", r);
	unsigned c0 = translate_code(HV_TRANSLATE_GVA_VALIDATE_READ, pages[0] << HV_PAGE_SHIFT);
	unsigned c3 = translate_code(HV_TRANSLATE_GVA_VALIDATE_READ, pages[3] << HV_PAGE_SHIFT);
	report(c0 == HV_TRANSLATE_GVA_GPA_NO_READ_ACCESS && c3 == HV_TRANSLATE_GVA_SUCCESS,
	       "VTL1: element 0 was applied (read translation => %u GpaNoReadAccess), element 3 was not (=> %u Success)", c0, c3);
	fill_gprs(1);
	fc_in[RSI] = b + OFFSET;
	struct fault f = { .access = HV_INTERCEPT_ACCESS_READ, .insn = access_read_insn, .insn_len = access_read_end - access_read_insn,
			   .rip = (u64)access_read_insn, .gva = b + OFFSET, .gpa = b + OFFSET,
			   .access_info = HV_MEMORY_ACCESS_GVA_VALID | HV_MEMORY_ACCESS_GVA_GPA_VALID | HV_MEMORY_ACCESS_TLB_LOCKED };
	check_intercepts("read of element 1", access_read, &f, 1, pages[1]);
	report(fc_out[RAX] == fc_in[RAX] + DATA_VALUE, "VP%u VTL0: the read of element 1 completed once (RAX 0x%lx)", hv_vp_index(), fc_out[RAX]);
	r = protect1(pages[0], HV_MAP_GPA_RWX);
	report(result_is(r, HV_STATUS_SUCCESS, 1) && translate_code(HV_TRANSLATE_GVA_VALIDATE_READ, pages[0] << HV_PAGE_SHIFT) == 0,
	       "VTL1: ModifyVtlProtectionMask(RWX) of element 0 => SUCCESS, 1 rep (0x%lx); it reads again", r);

	/* The XMM fast form: header and up to 12 pages in RDX, R8, XMM0-XMM5 (§1.3). */
	u64 fast[2] = { pages[0], pages[3] };
	r = protect_from_vtl1(HV_PARTITION_ID_SELF, HV_MAP_GPA_READABLE, HV_INPUT_VTL_SELF, fast, 2, true);
	unsigned w0 = translate_code(HV_TRANSLATE_GVA_VALIDATE_WRITE, pages[0] << HV_PAGE_SHIFT);
	unsigned w3 = translate_code(HV_TRANSLATE_GVA_VALIDATE_WRITE, pages[3] << HV_PAGE_SHIFT);
	unsigned r3 = translate_code(HV_TRANSLATE_GVA_VALIDATE_READ, pages[3] << HV_PAGE_SHIFT);
	report(result_is(r, HV_STATUS_SUCCESS, 2) && w0 == HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS && w3 == HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS &&
	       r3 == HV_TRANSLATE_GVA_SUCCESS,
	       "VTL1: fast ModifyVtlProtectionMask(R) of 2 pages => SUCCESS, 2 reps (0x%lx); writes => %u, %u (GpaNoWriteAccess), read => %u",
	       r, w0, w3, r3);
	r = protect_from_vtl1(HV_PARTITION_ID_SELF, HV_MAP_GPA_WRITABLE, HV_INPUT_VTL_SELF, fast, 2, true);
	report(result_is(r, HV_STATUS_INVALID_REGISTER_VALUE, 0), "VTL1: fast ModifyVtlProtectionMask with mask W => INVALID_REGISTER_VALUE (0x%lx)", r);
	u64 fast_bad[2] = { pages[0], NON_RAM_PAGE };
	r = protect_from_vtl1(HV_PARTITION_ID_SELF, HV_MAP_GPA_RWX, HV_INPUT_VTL_SELF, fast_bad, 2, true);
	w0 = translate_code(HV_TRANSLATE_GVA_VALIDATE_WRITE, pages[0] << HV_PAGE_SHIFT);
	report(result_is(r, HV_STATUS_INVALID_PARAMETER, 1) && w0 == HV_TRANSLATE_GVA_SUCCESS,
	       "VTL1: fast ModifyVtlProtectionMask(RWX) of {RAM, APIC page} => INVALID_PARAMETER, 1 rep (0x%lx); element 0 writable again (%u)", r, w0);
	r = protect1(pages[3], HV_MAP_GPA_RWX);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VTL1: ModifyVtlProtectionMask(RWX) of the last page => SUCCESS (0x%lx)", r);
}

// ---------------------------------------------------------------- 3. intercepts

static const u8 FULL_INFO = HV_MEMORY_ACCESS_GVA_VALID | HV_MEMORY_ACCESS_GVA_GPA_VALID | HV_MEMORY_ACCESS_TLB_LOCKED;

static void read_intercept(unsigned faults)
{
	u64 page = (u64)alloc_page(), a = page + OFFSET;
	char what[48];

	writeq(a, DATA_VALUE);
	u64 r = protect1(PAGE_OF(page), 0);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VP%u VTL1: ModifyVtlProtectionMask(no access) => SUCCESS (0x%lx)", hv_vp_index(), r);
	fill_gprs(2 + faults);
	fc_in[RSI] = a;
	struct fault f = { .access = HV_INTERCEPT_ACCESS_READ, .insn = access_read_insn, .insn_len = access_read_end - access_read_insn,
			   .rip = (u64)access_read_insn, .gva = a, .gpa = a, .access_info = FULL_INFO };
	snprintf(what, sizeof(what), "read of a no-access page (%u fault%s)", faults, faults == 1 ? "" : "s");
	check_intercepts(what, access_read, &f, faults, PAGE_OF(page));
	bool others = true;
	for (unsigned k = 0; k < 16; k++)
		others &= k == RAX || fc_out[k] == fc_in[k];
	report(fc_out[RAX] == fc_in[RAX] + DATA_VALUE && others,
	       "VP%u VTL0: the read completed once: RAX 0x%lx = 0x%lx + [RSI], other GPRs unchanged", hv_vp_index(), fc_out[RAX], fc_in[RAX]);
}

static void write_intercept(void)
{
	u64 page = (u64)alloc_page(), a = page + OFFSET;

	writeq(a, DATA_VALUE);
	u64 r = protect1(PAGE_OF(page), HV_MAP_GPA_READABLE);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VP%u VTL1: ModifyVtlProtectionMask(R) => SUCCESS (0x%lx)", hv_vp_index(), r);
	fill_gprs(5);
	fc_in[RSI] = a;
	struct fault f = { .access = HV_INTERCEPT_ACCESS_WRITE, .insn = access_write_insn, .insn_len = access_write_end - access_write_insn,
			   .rip = (u64)access_write_insn, .gva = a, .gpa = a, .access_info = FULL_INFO };
	check_intercepts("write to a read-only page", access_write, &f, 1, PAGE_OF(page));
	report(readq(a) == DATA_VALUE + fc_in[RDX] && memcmp(fc_out, fc_in, sizeof(fc_in)) == 0,
	       "VP%u VTL0: the write completed once: [RSI] = 0x%lx = 0x%lx + RDX, GPRs unchanged", hv_vp_index(), readq(a), DATA_VALUE);
}

static void execute_intercept(void)
{
	u8 *code = alloc_page();
	u64 *counter = alloc_page();

	memcpy(code, exec_code, sizeof(exec_code));
	*counter = 0;
	u64 r = protect1(PAGE_OF(code), HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VP%u VTL1: ModifyVtlProtectionMask(RW) => SUCCESS (0x%lx)", hv_vp_index(), r);
	fill_gprs(6);
	fc_in[RDI] = (u64)code;
	fc_in[RSI] = (u64)counter;
	struct fault f = { .access = HV_INTERCEPT_ACCESS_EXECUTE, .rip = (u64)code, .gva = (u64)code, .gpa = (u64)code,
			   .access_info = FULL_INFO, .rsp_delta = -8 };
	check_intercepts("call into a non-executable page", access_call, &f, 1, PAGE_OF(code));
	report(*counter == 1 && memcmp(fc_out, fc_in, sizeof(fc_in)) == 0,
	       "VP%u VTL0: the called code ran once (counter %lu), GPRs unchanged", hv_vp_index(), *counter);
}

/*
 * A fresh VA whose page table VTL1 made no-access: the walk's read of the
 * PTE faults (§3.8: the CPU's page-table reads are VTL0 accesses). The GPA
 * is the PTE's, the GVA the address being translated.
 */
static void walk_intercept(void)
{
	u64 va = WALK_VA + 0x1000UL * smp_id(), frame = (u64)alloc_page();

	writeq(frame + OFFSET, DATA_VALUE);
	map_4k(kernel_root, va, frame, PTE_W);
	u64 *pte = vm_walk(kernel_root, va, PT_LEVEL_4K, false);
	u64 table = (u64)pte & ~(PAGE_SIZE - 1);
	u64 r = protect1(PAGE_OF(table), 0);
	report(result_is(r, HV_STATUS_SUCCESS, 1), "VP%u VTL1: ModifyVtlProtectionMask(no access) of the page table => SUCCESS (0x%lx)",
	       hv_vp_index(), r);
	fill_gprs(7);
	fc_in[RSI] = va + OFFSET;
	/* The walk did not give a GPA for the GVA: GvaValid only (§4.5: GvaGpaValid means the translation is valid). */
	struct fault f = { .access = HV_INTERCEPT_ACCESS_READ, .insn = access_read_insn, .insn_len = access_read_end - access_read_insn,
			   .rip = (u64)access_read_insn, .gva = va + OFFSET, .gpa = (u64)pte, .access_info = HV_MEMORY_ACCESS_GVA_VALID };
	check_intercepts("page walk through a no-access page table", access_read, &f, 1, PAGE_OF(table));
	report(fc_out[RAX] == fc_in[RAX] + DATA_VALUE && (*pte & PTE_A),
	       "VP%u VTL0: the read through the new mapping completed once (RAX 0x%lx), the walk set the PTE's A bit", hv_vp_index(), fc_out[RAX]);
	unmap(kernel_root, va);
	invlpg((void *)va);
}

static void intercepts(void *arg)
{
	(void)arg;
	read_intercept(1);
	read_intercept(2);
	write_intercept();
	execute_intercept();
	walk_intercept();
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	vsm_require(false);
	if (!hv_has_feature(HV_FEAT_XMM_HYPERCALL_INPUT)) {
		report_skip("no XMM fast hypercall input (hv-xmm-input): the fast forms cannot be tested");
		report_summary();
	}
	vsm_register_command(CMD_GET_CONFIG, vtl1_get_config);
	vsm_register_command(CMD_PROTECT, vtl1_protect);
	vsm_register_command(CMD_TRANSLATE, vtl1_translate);
	vsm_register_message_handler(on_message);
	if (!vsm_setup_all())
		report_summary();
	vtl0_hvc = vsm_vtl0_hvc();
	report_info("%u CPUs", cpu_count());
	partition_config();
	protection_negative();
	for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
		on_cpu(cpu, intercepts, NULL);
	report_summary();
}
