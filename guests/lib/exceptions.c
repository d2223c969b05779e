/* Exception dispatch, catching exceptions for tests, and the unexpected-exception report. */
#include "catch.h"
#include "percpu.h"
#include "layout.h"
#include "x86.h"
#include "printf.h"
#include "report.h"
#include "string.h"

static exception_handler handlers[256];

exception_handler handle_exception(unsigned vector, exception_handler h)
{
	exception_handler old = handlers[vector & 0xff];

	handlers[vector & 0xff] = h;
	return old;
}

const char *exception_mnemonic(unsigned v)
{
	static const char *const names[32] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
		"#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
		"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23",
		"#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
	};
	return v < 32 ? names[v] : "interrupt";
}

/* Make the IRETQ land as if ctx_save(ctx) had just returned val. */
static void resume_context(struct ex_regs *regs, const struct jmp_ctx *ctx, u64 val)
{
	regs->rbx = ctx->rbx;
	regs->rbp = ctx->rbp;
	regs->r12 = ctx->r12;
	regs->r13 = ctx->r13;
	regs->r14 = ctx->r14;
	regs->r15 = ctx->r15;
	regs->rsp = ctx->rsp;
	regs->rip = ctx->rip;
	regs->rflags = ctx->rflags;
	regs->cs = KERNEL_CS;
	regs->ss = KERNEL_DS;
	regs->rax = val;
}

static void record(struct ex_info *info, const struct ex_regs *regs)
{
	info->vector = regs->vector;
	info->error_code = regs->error_code;
	info->rip = regs->rip;
	info->cs = regs->cs;
	info->rflags = regs->rflags;
	info->rsp = regs->rsp;
	info->ss = regs->ss;
	info->cr2 = read_cr2();
	info->frame_addr = (u64)&regs->rip;
}

static __noreturn void unhandled(struct ex_regs *r)
{
	struct percpu *pc = this_cpu();

	if (pc->in_panic)
		exit(63); /* faulted while reporting a fault */
	pc->in_panic = true;
	report(false, "unhandled exception %lu (%s) on CPU %u: error code 0x%lx, RIP 0x%lx, CR2 0x%lx",
	       r->vector, exception_mnemonic(r->vector), pc->cpu, r->error_code, r->rip, read_cr2());
	printf("  CS %lx RFLAGS %lx RSP %lx SS %lx CR0 %lx CR3 %lx CR4 %lx\n",
	       r->cs, r->rflags, r->rsp, r->ss, read_cr0(), read_cr3(), read_cr4());
	printf("  RAX %016lx RBX %016lx RCX %016lx RDX %016lx\n", r->rax, r->rbx, r->rcx, r->rdx);
	printf("  RSI %016lx RDI %016lx RBP %016lx R8  %016lx\n", r->rsi, r->rdi, r->rbp, r->r8);
	printf("  R9  %016lx R10 %016lx R11 %016lx R12 %016lx\n", r->r9, r->r10, r->r11, r->r12);
	printf("  R13 %016lx R14 %016lx R15 %016lx\n", r->r13, r->r14, r->r15);
	report_summary();
}

void isr_dispatch(struct ex_regs *regs)
{
	struct percpu *pc = this_cpu();
	unsigned vec = regs->vector;
	struct catch_frame *cf = pc->catch_top;

	if (vec == USER_EXIT_VECTOR && (regs->cs & 3) == 3) {
		if (!cf || !cf->user)
			unhandled(regs);
		cf->retval = regs->rdi;
		pc->catch_top = cf->prev;
		resume_context(regs, &cf->ctx, RESUME_USER_RETURN);
		return;
	}
	if (handlers[vec]) {
		handlers[vec](regs);
		return;
	}
	if (cf) {
		record(&cf->info, regs);
		pc->catch_top = cf->prev;
		resume_context(regs, &cf->ctx, RESUME_EXCEPTION);
		return;
	}
	unhandled(regs);
}

bool expect_exception(void (*fn)(void *), void *arg, struct ex_info *info)
{
	struct percpu *pc = this_cpu();
	struct catch_frame cf;

	memset(&cf, 0, sizeof(cf));
	cf.info.vector = NO_EXCEPTION;
	cf.prev = pc->catch_top;
	pc->catch_top = &cf;
	if (ctx_save(&cf.ctx) == 0) {
		fn(arg);
		pc->catch_top = cf.prev;
	}
	if (info)
		*info = cf.info;
	return cf.info.vector != NO_EXCEPTION;
}
