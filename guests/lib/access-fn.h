/*
 * Access functions for intercept tests: an assembly function per access
 * that loads every GPR from fc_in, runs one labelled instruction, and
 * stores every GPR into fc_out, so a test knows the exact register state
 * at the instruction (for the RAX..R15 of an intercept message) and after
 * it. fc_in/fc_out are in the intercept messages' order (RAX, RCX, RDX,
 * RBX, RSP, RBP, RSI, RDI, R8-R15); fc_in[RSP] is stored by the function;
 * fc_rflags is RFLAGS at the instruction (access-fn.c holds them).
 */
#ifndef GUEST_ACCESS_FN_H
#define GUEST_ACCESS_FN_H

#include "libguest.h"

extern u64 fc_in[16], fc_out[16], fc_rflags;

#define GPR_LOAD(arr) \
	"mov " arr "+0(%rip), %rax\n" "mov " arr "+8(%rip), %rcx\n" "mov " arr "+16(%rip), %rdx\n" \
	"mov " arr "+24(%rip), %rbx\n" "mov " arr "+40(%rip), %rbp\n" "mov " arr "+48(%rip), %rsi\n" \
	"mov " arr "+56(%rip), %rdi\n" "mov " arr "+64(%rip), %r8\n" "mov " arr "+72(%rip), %r9\n" \
	"mov " arr "+80(%rip), %r10\n" "mov " arr "+88(%rip), %r11\n" "mov " arr "+96(%rip), %r12\n" \
	"mov " arr "+104(%rip), %r13\n" "mov " arr "+112(%rip), %r14\n" "mov " arr "+120(%rip), %r15\n"
#define GPR_STORE \
	"mov %rax, fc_out+0(%rip)\nmov %rcx, fc_out+8(%rip)\nmov %rdx, fc_out+16(%rip)\nmov %rbx, fc_out+24(%rip)\n" \
	"mov %rsp, fc_out+32(%rip)\nmov %rbp, fc_out+40(%rip)\nmov %rsi, fc_out+48(%rip)\nmov %rdi, fc_out+56(%rip)\n" \
	"mov %r8, fc_out+64(%rip)\nmov %r9, fc_out+72(%rip)\nmov %r10, fc_out+80(%rip)\nmov %r11, fc_out+88(%rip)\n" \
	"mov %r12, fc_out+96(%rip)\nmov %r13, fc_out+104(%rip)\nmov %r14, fc_out+112(%rip)\nmov %r15, fc_out+120(%rip)\n"

/* void name(void): every GPR from fc_in, then the instruction at name_insn (name_end follows it), then fc_out. */
#define ACCESS_FN(name, insn)                                                                       \
	void name(void);                                                                            \
	extern const u8 name##_insn[], name##_end[];                                                \
	asm(".text\n.globl " #name "\n" #name ":\n"                                                 \
	    "push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\n"                    \
	    "pushfq\npopq fc_rflags(%rip)\nmov %rsp, fc_in+32(%rip)\n" GPR_LOAD("fc_in")      \
	    ".globl " #name "_insn\n" #name "_insn: " insn "\n.globl " #name "_end\n" #name "_end:\n" \
	    GPR_STORE "pop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\nret\n")

#endif
