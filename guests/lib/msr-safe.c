/* RDMSR/WRMSR under expect_exception() (see msr-safe.h). */
#include "msr-safe.h"
#include "exceptions.h"
#include "x86.h"

struct msr_access {
	u32 index;
	u64 value;
};

static void do_rdmsr(void *arg)
{
	struct msr_access *a = arg;

	a->value = rdmsr(a->index);
}

static void do_wrmsr(void *arg)
{
	struct msr_access *a = arg;

	wrmsr(a->index, a->value);
}

unsigned rdmsr_safe(u32 index, u64 *value)
{
	struct msr_access a = { index, 0 };
	struct ex_info ex;

	if (expect_exception(do_rdmsr, &a, &ex))
		return ex.vector;
	*value = a.value;
	return NO_EXCEPTION;
}

unsigned wrmsr_safe(u32 index, u64 value)
{
	struct msr_access a = { index, value };
	struct ex_info ex;

	return expect_exception(do_wrmsr, &a, &ex) ? ex.vector : NO_EXCEPTION;
}
