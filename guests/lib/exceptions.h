/*
 * Exception and interrupt handling.
 *
 * Every vector enters isr_dispatch() with a struct ex_regs. Dispatch order:
 *  1. a handler installed with handle_exception() for that vector;
 *  2. otherwise the innermost expect_exception()/run_user() on this CPU
 *     catches it: the exception is recorded and that call returns;
 *  3. otherwise it is unexpected: the vector, error code, RIP and CR2 are
 *     printed as a FAIL line and the guest exits with status 1.
 */
#ifndef GUEST_EXCEPTIONS_H
#define GUEST_EXCEPTIONS_H

#include "types.h"

struct ex_regs {
	u64 rax, rbx, rcx, rdx, rsi, rdi, rbp;
	u64 r8, r9, r10, r11, r12, r13, r14, r15;
	u64 vector;
	u64 error_code; /* 0 for vectors without a CPU-pushed error code */
	u64 rip, cs, rflags, rsp, ss; /* the interrupt frame */
};

typedef void (*exception_handler)(struct ex_regs *regs);

/* Install a handler for a vector (NULL removes it); returns the previous one. */
exception_handler handle_exception(unsigned vector, exception_handler h);

#define NO_EXCEPTION 0xffffffffu

/* What a caught exception looked like. */
struct ex_info {
	unsigned vector;   /* NO_EXCEPTION when none happened */
	u64 error_code;
	u64 rip, cs, rflags, rsp, ss; /* the frame the CPU pushed */
	u64 cr2;           /* CR2 when the handler ran */
	u64 frame_addr;    /* where the frame was: tells which stack (IST) the CPU used */
};

/*
 * Run fn(arg). Returns false if it returned normally, true if an exception
 * was raised inside it (details in *info, which may be NULL). The CPU state
 * after a caught exception is that of the call to expect_exception():
 * callee-saved registers, RSP and RFLAGS as they were at the call.
 */
bool expect_exception(void (*fn)(void *), void *arg, struct ex_info *info);

/*
 * Run fn(arg) at CPL3 on a per-CPU user stack and come back. Returns false
 * and stores fn's return value in *ret when fn returned, true with *info
 * filled when an exception at CPL3 ended it. fn must be mapped user-accessible
 * (the default page tables map everything with U=1).
 */
bool run_user(u64 (*fn)(void *), void *arg, u64 *ret, struct ex_info *info);

const char *exception_mnemonic(unsigned vector);

/* Internal: saved kernel context (lib/ctx.S). */
struct jmp_ctx {
	u64 rbx, rbp, r12, r13, r14, r15, rsp, rip, rflags;
};
u64 ctx_save(struct jmp_ctx *ctx) __attribute__((returns_twice));

#endif
