/*
 * Exception delivery: vectors, pushed error codes, saved RIP/CS/SS, CR2,
 * IST stack switching for #DF, software INT n through IDT gates (privilege
 * and presence checks) and IRETQ back to the interrupted code.
 * Rules: Intel SDM vol. 3 ch. 6 (exception classes, error codes, double
 * faults) and 4.7 (page-fault error code).
 */
#include "libguest.h"

#define TEST_VA 0x1000000000UL       /* 64 GiB: outside the 0-4 GiB identity map */
#define NONCANONICAL 0x800000000000UL

/*
 * Triggers. Each is a function taking one argument (ignored) whose faulting
 * instruction carries a label, so the saved RIP can be compared exactly.
 */
asm(".pushsection .text\n"
    "trig_div0: xor %ecx, %ecx; mov $1, %eax; xor %edx, %edx\n"
    "div0_insn: divl %ecx\n ret\n"
    "trig_idiv_overflow: mov $0x8000000000000000, %rax; cqo; mov $-1, %rcx\n"
    "idiv_insn: idivq %rcx\n ret\n"
    "trig_ud2:\n ud2_insn: ud2\n ret\n"
    "trig_int3: int3\n int3_next: ret\n"
    "trig_rdmsr_bad: mov $0xdeadbeef, %ecx\n rdmsr_insn: rdmsr\n ret\n"
    "trig_rdmsr_user: mov $0xc0000080, %ecx\n rdmsr_user_insn: rdmsr\n ret\n"
    "trig_rdmsr_x2apic_id: mov $0x802, %ecx\n rdmsr_id_insn: rdmsr\n ret\n"
    "trig_rdmsr_x2apic_eoi: mov $0x80b, %ecx\n rdmsr_eoi_insn: rdmsr\n ret\n"
    "trig_noncanonical: mov $0x800000000000, %rax\n noncanon_insn: mov (%rax), %rax\n ret\n"
    "trig_ss_noncanonical: mov $0x800000000000, %rbp\n ss_insn: mov (%rbp), %rax\n ret\n"
    "trig_bad_selector: mov $0x800, %eax\n badsel_insn: mov %eax, %ds\n ret\n"
    "trig_read: mov (%rdi), %rax\n read_insn: ret\n"
    "trig_write: write_insn: movq $1, (%rdi)\n ret\n"
    "trig_call: call *%rdi\n ret\n"
    "trig_int41: int $0x41\n int41_next: ret\n"
    "trig_int42: int42_insn: int $0x42\n ret\n"
    "trig_hlt: hlt_insn: hlt\n ret\n"
    "trig_mov_cr3: mov_cr3_insn: mov %cr3, %rax\n ret\n"
    "trig_cli: cli_insn: cli\n ret\n"
    "trig_inb: in_insn: inb $0x80, %al\n ret\n"
    /* Push onto an unmapped stack: the #PF cannot be delivered on it, so #DF follows. */
    "trig_bad_stack: mov %rdi, %rsp\n push %rax\n ret\n"
    /* int41_roundtrip(in, out): load 15 GPRs from in[], INT $0x41, store them to out[]. */
    "int41_roundtrip:\n"
    " push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15; push %rsi\n"
    " mov 0(%rdi), %rax; mov 8(%rdi), %rbx; mov 16(%rdi), %rcx; mov 24(%rdi), %rdx\n"
    " mov 32(%rdi), %rsi; mov 48(%rdi), %rbp; mov 56(%rdi), %r8; mov 64(%rdi), %r9\n"
    " mov 72(%rdi), %r10; mov 80(%rdi), %r11; mov 88(%rdi), %r12; mov 96(%rdi), %r13\n"
    " mov 104(%rdi), %r14; mov 112(%rdi), %r15; mov 40(%rdi), %rdi\n"
    " int $0x41\n"
    " push %rdi; mov 8(%rsp), %rdi\n"
    " mov %rax, 0(%rdi); mov %rbx, 8(%rdi); mov %rcx, 16(%rdi); mov %rdx, 24(%rdi)\n"
    " mov %rsi, 32(%rdi); pop %rax; mov %rax, 40(%rdi); mov %rbp, 48(%rdi)\n"
    " mov %r8, 56(%rdi); mov %r9, 64(%rdi); mov %r10, 72(%rdi); mov %r11, 80(%rdi)\n"
    " mov %r12, 88(%rdi); mov %r13, 96(%rdi); mov %r14, 104(%rdi); mov %r15, 112(%rdi)\n"
    " add $8, %rsp; pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
    " ret\n"
    ".popsection\n");

void trig_div0(void *), trig_idiv_overflow(void *), trig_ud2(void *), trig_int3(void *);
void trig_rdmsr_x2apic_id(void *), trig_rdmsr_x2apic_eoi(void *);
extern char rdmsr_id_insn[], rdmsr_eoi_insn[];
void trig_rdmsr_bad(void *), trig_noncanonical(void *), trig_ss_noncanonical(void *);
void trig_bad_selector(void *), trig_read(void *), trig_write(void *), trig_call(void *);
void trig_int41(void *), trig_int42(void *), trig_bad_stack(void *);
u64 trig_rdmsr_user(void *);
extern char rdmsr_user_insn[];
u64 trig_hlt(void *), trig_mov_cr3(void *), trig_cli(void *), trig_inb(void *);
void int41_roundtrip(const u64 *in, u64 *out);
extern char div0_insn[], idiv_insn[], ud2_insn[], int3_next[], rdmsr_insn[], noncanon_insn[];
extern char ss_insn[], badsel_insn[], read_insn[], write_insn[], int41_next[], int42_insn[];
extern char hlt_insn[], mov_cr3_insn[], cli_insn[], in_insn[];

/*
 * Where QEMU TCG is known to differ from the SDM, the SDM's behaviour is a
 * PASS, QEMU's exact deviation a SKIP that names it, anything else a FAIL.
 */
static void verdict(bool exact, bool qemu_deviation, const char *what, const char *deviation)
{
	if (exact)
		report(true, "%s", what);
	else if (qemu_deviation)
		report_skip("%s: got %s (known QEMU TCG deviation from the SDM)", what, deviation);
	else
		report(false, "%s", what);
}

/* Expect fn(arg) to raise vector with error code err at RIP rip (0 = do not check RIP). */
static bool expect(const char *what, void (*fn)(void *), void *arg, unsigned vector, u64 err,
		   void *rip)
{
	struct ex_info ex;
	bool raised = expect_exception(fn, arg, &ex);

	if (!raised)
		return report(false, "%s: no exception (expected %s)", what, exception_mnemonic(vector));
	return report(ex.vector == vector && ex.error_code == err && (!rip || ex.rip == (u64)rip) &&
			      ex.cs == KERNEL_CS,
		      "%s: %s error code 0x%lx RIP 0x%lx (got vector %u error code 0x%lx RIP 0x%lx)",
		      what, exception_mnemonic(vector), err, (u64)rip, ex.vector, ex.error_code, ex.rip);
}

static void test_faults(void)
{
	/* #DE is a fault: RIP points at the dividing instruction. */
	expect("div by zero", trig_div0, NULL, DE_VECTOR, 0, div0_insn);
	expect("idiv overflow (INT64_MIN / -1)", trig_idiv_overflow, NULL, DE_VECTOR, 0, idiv_insn);
	expect("ud2", trig_ud2, NULL, UD_VECTOR, 0, ud2_insn);
	/* #BP is a trap: RIP points after INT3. */
	expect("int3", trig_int3, NULL, BP_VECTOR, 0, int3_next);
	struct ex_info ex;
	bool raised;

	/* x2APIC MSRs #GP unless the APIC is in x2APIC mode; in x2APIC mode EOI is write-only. */
	if (apic_x2apic_mode()) {
		raised = expect_exception(trig_rdmsr_x2apic_eoi, NULL, &ex);
		verdict(raised && ex.vector == GP_VECTOR && ex.error_code == 0 &&
				ex.rip == (u64)rdmsr_eoi_insn,
			!raised, "rdmsr of the write-only x2APIC EOI MSR: #GP(0)", "no exception");
	} else {
		raised = expect_exception(trig_rdmsr_x2apic_id, NULL, &ex);
		verdict(raised && ex.vector == GP_VECTOR && ex.error_code == 0 &&
				ex.rip == (u64)rdmsr_id_insn,
			!raised, "rdmsr of x2APIC MSR 0x802 in xAPIC mode: #GP(0)", "no exception");
	}
	raised = expect_exception(trig_rdmsr_bad, NULL, &ex);
	verdict(raised && ex.vector == GP_VECTOR && ex.error_code == 0 && ex.rip == (u64)rdmsr_insn,
		!raised, "rdmsr of nonexistent MSR 0xdeadbeef: #GP(0)", "no exception");
	expect("load from a non-canonical address", trig_noncanonical, NULL, GP_VECTOR, 0,
	       noncanon_insn);
	/* Non-canonical references through RBP/RSP use SS: #SS(0). */
	raised = expect_exception(trig_ss_noncanonical, NULL, &ex);
	verdict(raised && ex.vector == SS_VECTOR && ex.error_code == 0 && ex.rip == (u64)ss_insn,
		raised && ex.vector == GP_VECTOR && ex.error_code == 0 && ex.rip == (u64)ss_insn,
		"non-canonical RBP-based load: #SS(0)", "#GP(0)");
	/* A selector beyond the GDT limit: #GP with the selector as error code. */
	expect("mov to DS of selector 0x800", trig_bad_selector, NULL, GP_VECTOR, 0x800, badsel_insn);
}

/* A handler that moves RIP past a 2-byte instruction and IRETQs back. */
static volatile u64 ud_count, ud_rip;
static void skip_ud2(struct ex_regs *regs)
{
	ud_count++;
	ud_rip = regs->rip;
	regs->rip += 2;
}

static volatile u64 bp_count;
static void count_bp(struct ex_regs *regs)
{
	(void)regs;
	bp_count++;
}

static void test_resume(void)
{
	handle_exception(UD_VECTOR, skip_ud2);
	asm volatile("ud2_resume: ud2" ::: "memory");
	handle_exception(UD_VECTOR, NULL);
	extern char ud2_resume[];
	report(ud_count == 1 && ud_rip == (u64)ud2_resume,
	       "#UD handler skips UD2 and IRETQ resumes after it");

	handle_exception(BP_VECTOR, count_bp);
	asm volatile("int3; int3" ::: "memory");
	handle_exception(BP_VECTOR, NULL);
	report(bp_count == 2, "two INT3 traps return to the next instruction (%lu)", bp_count);
}

/* Software INT n to a handler: IRETQ returns with every register and RFLAGS intact. */
static volatile u64 int41_count, int41_err;
static void int41_handler(struct ex_regs *regs)
{
	int41_count++;
	int41_err = regs->error_code;
}

static void test_int_n(void)
{
	u64 in[15], out[15];
	u64 f_before, f_after;
	bool same = true;

	handle_exception(0x41, int41_handler);
	for (int i = 0; i < 15; i++)
		in[i] = (0x1111111111111111UL * (i + 1)) ^ 0x0123456789abcdefUL;
	int41_roundtrip(in, out);
	for (int i = 0; i < 15; i++)
		same &= in[i] == out[i];
	report(int41_count == 1, "INT $0x41 reached its handler");
	report(int41_err == 0, "INT n pushes no error code");
	report(same, "INT $0x41 + IRETQ preserve all 15 GPRs");

	/* CF set before INT must still be set after IRETQ; all of RFLAGS must match. */
	asm volatile("stc; pushfq; pop %0; int $0x41; pushfq; pop %1"
		     : "=r"(f_before), "=r"(f_after) : : "memory", "cc");
	report(f_before == f_after && (f_after & 1), "INT $0x41 + IRETQ preserve RFLAGS (0x%lx)",
	       f_after);
	handle_exception(0x41, NULL);

	/*
	 * A gate with P = 0: #NP whose error code is in selector format with the
	 * IDT bit (1) set and the vector as index: vector * 8 + 2, also in long
	 * mode where gates are 16 bytes (QEMU pushes vector * 16 + 2).
	 */
	struct ex_info ex;
	bool raised;

	set_idt_present(0x42, false);
	raised = expect_exception(trig_int42, NULL, &ex);
	set_idt_present(0x42, true);
	verdict(raised && ex.vector == NP_VECTOR && ex.error_code == 0x42 * 8 + 2 &&
			ex.rip == (u64)int42_insn,
		raised && ex.vector == NP_VECTOR && ex.error_code == 0x42 * 16 + 2,
		"INT $0x42 through a not-present gate: #NP(0x212)", "#NP(0x422)");
}

/* CPL3: privileged instructions and a DPL-0 gate fault with #GP; CS/SS in the frame are the user's. */
static void expect_user(const char *what, u64 (*fn)(void *), unsigned vector, u64 err, void *rip)
{
	struct ex_info ex;
	u64 ret;

	if (!run_user(fn, NULL, &ret, &ex)) {
		report(false, "CPL3 %s: no exception", what);
		return;
	}
	report(ex.vector == vector && ex.error_code == err && ex.rip == (u64)rip &&
		       ex.cs == USER_CS && ex.ss == USER_DS,
	       "CPL3 %s: %s(0x%lx) at 0x%lx, CS 0x%x SS 0x%x (got vector %u error 0x%lx RIP 0x%lx CS 0x%lx SS 0x%lx)",
	       what, exception_mnemonic(vector), err, (u64)rip, USER_CS, USER_DS, ex.vector,
	       ex.error_code, ex.rip, ex.cs, ex.ss);
}

static u64 user_return_42(void *arg)
{
	(void)arg;
	return 42;
}

static u64 user_int3(void *arg)
{
	(void)arg;
	asm volatile("int3");
	return 0;
}

static u64 user_int41(void *arg)
{
	(void)arg;
	asm volatile("int $0x41");
	return 0;
}

static void test_user(void)
{
	struct ex_info ex;
	u64 ret = 0;

	bool faulted = run_user(user_return_42, NULL, &ret, &ex);

	report(!faulted && ret == 42, "CPL3 function runs and returns 42 (got %lu)", ret);
	report(read_cs() == KERNEL_CS && read_ss() == KERNEL_DS, "back at CPL0 with CS 0x8, SS 0x10");
	expect_user("HLT", trig_hlt, GP_VECTOR, 0, hlt_insn);
	expect_user("RDMSR", trig_rdmsr_user, GP_VECTOR, 0, rdmsr_user_insn);
	expect_user("MOV from CR3", trig_mov_cr3, GP_VECTOR, 0, mov_cr3_insn);
	expect_user("CLI with IOPL 0", trig_cli, GP_VECTOR, 0, cli_insn);
	expect_user("IN with IOPL 0 and no I/O bitmap", trig_inb, GP_VECTOR, 0, in_insn);
	/* INT n checks the gate's DPL against CPL: #GP(vector * 8 + 2). */
	run_user(user_int41, NULL, &ret, &ex);
	verdict(ex.vector == GP_VECTOR && ex.error_code == 0x41 * 8 + 2 && (ex.cs & 3) == 3,
		ex.vector == GP_VECTOR && ex.error_code == 0x41 * 16 + 2,
		"CPL3 INT $0x41 through a DPL-0 gate: #GP(0x20a)", "#GP(0x412)");
	/* INT3's gate has DPL 3. */
	run_user(user_int3, NULL, &ret, &ex);
	report(ex.vector == BP_VECTOR && (ex.cs & 3) == 3, "CPL3 INT3 through a DPL-3 gate: #BP (got %u)",
	       ex.vector);
}

/* Page faults: error code bits P, W/R, U/S, RSVD, I/D and CR2 (SDM 4.7). */
static u64 user_target;
static u64 user_read(void *arg) { (void)arg; return *(volatile u64 *)user_target; }
static u64 user_write(void *arg) { (void)arg; *(volatile u64 *)user_target = 1; return 0; }

static void expect_pf(const char *what, void (*fn)(void *), u64 va, u64 err)
{
	struct ex_info ex;

	if (!expect_exception(fn, (void *)va, &ex)) {
		report(false, "#PF %s: no exception", what);
		return;
	}
	report(ex.vector == PF_VECTOR && ex.error_code == err && ex.cr2 == va,
	       "#PF %s: error code 0x%lx, CR2 0x%lx (got vector %u error 0x%lx CR2 0x%lx)", what, err,
	       va, ex.vector, ex.error_code, ex.cr2);
}

static void expect_user_pf(const char *what, u64 (*fn)(void *), u64 va, u64 err)
{
	struct ex_info ex;
	u64 ret;

	user_target = va;
	if (!run_user(fn, NULL, &ret, &ex)) {
		report(false, "#PF %s: no exception", what);
		return;
	}
	report(ex.vector == PF_VECTOR && ex.error_code == err && ex.cr2 == va,
	       "#PF %s: error code 0x%lx, CR2 0x%lx (got vector %u error 0x%lx CR2 0x%lx)", what, err,
	       va, ex.vector, ex.error_code, ex.cr2);
}

static void test_page_faults(void)
{
	u64 absent = TEST_VA, ro = TEST_VA + 0x1000, sup = TEST_VA + 0x2000, nx = TEST_VA + 0x3000;
	u64 rsvd = TEST_VA + 0x4000;
	u8 *page = alloc_page();
	unsigned maxphy = cpu_phys_addr_bits();

	page[0] = 0xc3; /* RET, for the fetch tests */
	map_4k(kernel_root, ro, (u64)page, PTE_U);
	map_4k(kernel_root, sup, (u64)page, PTE_W);
	invlpg((void *)absent);
	invlpg((void *)ro);
	invlpg((void *)sup);

	expect_pf("read, not present", trig_read, absent, 0);
	expect_pf("write, not present", trig_write, absent, PFERR_WRITE);
	expect_pf("write to read-only page at CPL0 (CR0.WP = 1)", trig_write, ro,
		  PFERR_PRESENT | PFERR_WRITE);
	expect_user_pf("CPL3 read of a supervisor page", user_read, sup, PFERR_PRESENT | PFERR_USER);
	expect_user_pf("CPL3 write to a supervisor page", user_write, sup,
		       PFERR_PRESENT | PFERR_USER | PFERR_WRITE);
	expect_user_pf("CPL3 read, not present", user_read, absent, PFERR_USER);
	expect_user_pf("CPL3 write to a read-only user page", user_write, ro,
		       PFERR_PRESENT | PFERR_USER | PFERR_WRITE);

	if (rdmsr(MSR_EFER) & EFER_NXE) {
		map_4k(kernel_root, nx, (u64)page, PTE_W | PTE_NX);
		invlpg((void *)nx);
		expect_pf("fetch from an NX page", trig_call, nx, PFERR_PRESENT | PFERR_FETCH);
		/* With EFER.NXE = 1 the I/D bit is reported for every fetch fault. */
		expect_pf("fetch, not present", trig_call, absent, PFERR_FETCH);
	} else {
		report_skip("NX fetch faults: EFER.NXE not available");
	}

	if (maxphy < 52) {
		/* A physical-address bit above MAXPHYADDR is reserved: P | RSVD. */
		map_4k(kernel_root, rsvd, (u64)page | (1UL << maxphy), PTE_W);
		invlpg((void *)rsvd);
		/* SDM 4.7: RSVD can only be set together with P. */
		struct ex_info ex;
		bool raised = expect_exception(trig_read, (void *)rsvd, &ex);
		verdict(raised && ex.vector == PF_VECTOR && ex.error_code == (PFERR_PRESENT | PFERR_RSVD) &&
				ex.cr2 == rsvd,
			raised && ex.vector == PF_VECTOR && ex.error_code == PFERR_RSVD && ex.cr2 == rsvd,
			"#PF read through a PTE with a reserved address bit: error code 0x9",
			"error code 0x8 (RSVD without P)");
		unmap(kernel_root, rsvd);
		invlpg((void *)rsvd);
	} else {
		report_skip("reserved-bit #PF: MAXPHYADDR is 52");
	}
	unmap(kernel_root, ro);
	unmap(kernel_root, sup);
	unmap(kernel_root, nx);
	invlpg((void *)ro);
	invlpg((void *)sup);
	invlpg((void *)nx);
}

/* #DF: a fault while delivering a fault. Delivered on IST1 whatever the stack was. */
static void check_df(const char *what, const struct ex_info *ex, bool raised)
{
	u64 base = this_cpu()->ist_df_base;

	report(raised && ex->vector == DF_VECTOR && ex->error_code == 0,
	       "%s: #DF with error code 0 (got vector %u error 0x%lx)", what, ex->vector,
	       ex->error_code);
	report(raised && ex->frame_addr >= base && ex->frame_addr < base + IST_STACK_SIZE,
	       "%s: #DF frame on the IST1 stack (frame at 0x%lx, IST1 0x%lx-0x%lx)", what,
	       ex->frame_addr, base, base + IST_STACK_SIZE);
}

static void test_double_fault(void)
{
	struct ex_info ex;
	bool raised;

	/* #PF on push to an unmapped stack; delivering it pushes there again: #PF + #PF = #DF. */
	raised = expect_exception(trig_bad_stack, (void *)(TEST_VA + 0x10000), &ex);
	check_df("push to an unmapped stack", &ex, raised);

	/* #GP whose gate is not present: #GP then #NP, both contributory = #DF. */
	set_idt_present(GP_VECTOR, false);
	raised = expect_exception(trig_bad_selector, NULL, &ex);
	set_idt_present(GP_VECTOR, true);
	check_df("#GP through a not-present gate", &ex, raised);

	/* Delivery works normally afterwards. */
	expect("ud2 after the double faults", trig_ud2, NULL, UD_VECTOR, 0, ud2_insn);
}

int main(int argc __unused, char **argv __unused)
{
	test_faults();
	test_resume();
	test_int_n();
	test_user();
	test_page_faults();
	test_double_fault();
	report_summary();
}
