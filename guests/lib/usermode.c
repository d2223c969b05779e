/*
 * run_user(): IRETQ to CPL3, come back through a DPL-3 interrupt gate
 * (vector USER_EXIT_VECTOR) when the function returns, or through the
 * exception dispatcher when it faults. Either way the dispatcher resumes the
 * context saved here.
 */
#include "catch.h"
#include "percpu.h"
#include "alloc.h"
#include "x86.h"
#include "string.h"

#define USER_STACK_PAGES 2

void enter_user(u64 (*fn)(void *), void *arg, u64 user_rsp, u64 *rsp0_slot) __noreturn;
extern char user_exit_stub[];

bool run_user(u64 (*fn)(void *), void *arg, u64 *ret, struct ex_info *info)
{
	struct percpu *pc = this_cpu();
	struct catch_frame cf;

	if (!pc->user_stack_top)
		pc->user_stack_top = (u64)alloc_pages(USER_STACK_PAGES) + USER_STACK_PAGES * PAGE_SIZE;

	memset(&cf, 0, sizeof(cf));
	cf.user = true;
	cf.info.vector = NO_EXCEPTION;
	cf.prev = pc->catch_top;
	pc->catch_top = &cf;
	if (ctx_save(&cf.ctx) == 0) {
		/* fn's return address: the stub that raises the user-exit interrupt. */
		u64 *rsp = (u64 *)(pc->user_stack_top - 8);

		*rsp = (u64)user_exit_stub;
		/* TSS.RSP0 sits at offset 4: unaligned by the architecture's layout. */
		enter_user(fn, arg, (u64)rsp, (u64 *)((u8 *)&pc->tss + 4));
	}
	/* IRET to CPL3 may have nulled DS/ES (DPL 0 data); reload them. */
	write_ds_es(KERNEL_DS);
	if (cf.info.vector == NO_EXCEPTION) {
		if (ret)
			*ret = cf.retval;
		if (info)
			info->vector = NO_EXCEPTION;
		return false;
	}
	if (info)
		*info = cf.info;
	return true;
}
