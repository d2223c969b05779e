/* The hypercall page and the slow, fast and XMM fast calling conventions (see hyperv-hypercall.h). */
#include "hyperv.h"
#include "alloc.h"
#include "exceptions.h"
#include "layout.h"
#include "percpu.h"
#include "report.h"
#include "smp.h"
#include "string.h"
#include "x86.h"

void *hv_hypercall_page;
static void *input_pages[MAX_CPUS], *output_pages[MAX_CPUS];

void hv_hypercall_setup(void)
{
	for (unsigned i = 0; i < cpu_count(); i++) {
		if (!input_pages[i])
			input_pages[i] = alloc_page();
		if (!output_pages[i])
			output_pages[i] = alloc_page();
	}
	if (hv_hypercall_page && (rdmsr(HV_X64_MSR_HYPERCALL) & HV_HYPERCALL_ENABLE))
		return;
	hv_set_guest_os_id();
	/*
	 * The page is an overlay (§1.4): it covers the RAM at its GPA while enabled.
	 * A page of our own keeps that RAM out of everybody's way.
	 */
	if (!hv_hypercall_page)
		hv_hypercall_page = alloc_page();
	wrmsr(HV_X64_MSR_HYPERCALL, (u64)hv_hypercall_page | HV_HYPERCALL_ENABLE);
	if (!(rdmsr(HV_X64_MSR_HYPERCALL) & HV_HYPERCALL_ENABLE))
		abort_msg("the hypercall page did not enable (HV_X64_MSR_HYPERCALL = 0x%lx)",
			  rdmsr(HV_X64_MSR_HYPERCALL));
}

static void *page_of(void **pages)
{
	void *p = pages[smp_id()];

	if (!p)
		abort_msg("hypercall pages used before hv_hypercall_setup() (CPU %u)", smp_id());
	return p;
}

void *hv_input_page(void) { return page_of(input_pages); }
void *hv_output_page(void) { return page_of(output_pages); }

static void *page_or_abort(void)
{
	if (!hv_hypercall_page)
		abort_msg("hypercall before hv_hypercall_setup()");
	return hv_hypercall_page;
}

u64 hv_hypercall(u64 control, u64 input_gpa, u64 output_gpa)
{
	void *page = page_or_abort();
	register u64 r8 asm("r8") = output_gpa;
	u64 result;

	/* The page's code is VMCALL; RET. RCX, RDX and R8 may come back changed (rep continuation, fast output). */
	asm volatile("call *%[page]"
		     : "=a"(result), "+c"(control), "+d"(input_gpa), "+r"(r8)
		     : [page] "r"(page)
		     : "cc", "memory", "r9", "r10", "r11");
	return result;
}

u64 hv_hypercall_fast(u64 control, u64 rdx, u64 r8)
{
	return hv_hypercall(control | HV_HYPERCALL_FAST, rdx, r8);
}

u64 hv_hypercall_xmm(u64 control, const void *in, unsigned in_len, void *out, unsigned out_len,
		     u64 *regs_after)
{
	u64 block[HV_XMM_BLOCK_BYTES / 8];
	unsigned out_at = ALIGN_UP(in_len, 16);
	void *page = page_or_abort();

	if (in_len > HV_XMM_BLOCK_BYTES || out_at + out_len > HV_XMM_BLOCK_BYTES)
		abort_msg("XMM fast hypercall: %u bytes in + %u out do not fit 112 bytes", in_len, out_len);
	memset(block, 0, sizeof(block));
	memcpy(block, in, in_len);
	u64 cr4 = set_cr4_bits(X86_CR4_OSFXSR, 0);
	u64 result = hv_xmm_call(page, control | HV_HYPERCALL_FAST, block);
	write_cr4(cr4);
	if (out_len)
		memcpy(out, (u8 *)block + out_at, out_len);
	if (regs_after)
		memcpy(regs_after, block, sizeof(block));
	return result;
}

struct caught_call {
	u64 control, rdx, r8, result;
	const void *in;
	void *out;
	unsigned in_len, out_len;
};

static void call_slow(void *arg)
{
	struct caught_call *c = arg;

	c->result = hv_hypercall(c->control, c->rdx, c->r8);
}

static void call_xmm(void *arg)
{
	struct caught_call *c = arg;

	c->result = hv_hypercall_xmm(c->control, c->in, c->in_len, c->out, c->out_len, NULL);
}

unsigned hv_hypercall_catch(u64 control, u64 rdx, u64 r8, u64 *result)
{
	struct caught_call c = { .control = control, .rdx = rdx, .r8 = r8 };
	struct ex_info ex;

	if (expect_exception(call_slow, &c, &ex))
		return ex.vector;
	*result = c.result;
	return NO_EXCEPTION;
}

unsigned hv_hypercall_xmm_catch(u64 control, const void *in, unsigned in_len, void *out, unsigned out_len,
				u64 *result)
{
	struct caught_call c = { .control = control, .in = in, .in_len = in_len, .out = out, .out_len = out_len };
	u64 cr4 = read_cr4();
	struct ex_info ex;

	if (expect_exception(call_xmm, &c, &ex)) {
		write_cr4(cr4); /* the exception skipped hv_hypercall_xmm()'s restore of CR4.OSFXSR */
		return ex.vector;
	}
	*result = c.result;
	return NO_EXCEPTION;
}
