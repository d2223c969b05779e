/*
 * Saved kernel contexts (a setjmp without longjmp: the exception dispatcher
 * resumes a context by rewriting the interrupt frame) and the CPL3 entry.
 * struct jmp_ctx layout: rbx, rbp, r12, r13, r14, r15, rsp, rip, rflags.
 */
#include "layout.h"

	.text
	.globl ctx_save
ctx_save:
	mov %rbx, 0(%rdi)
	mov %rbp, 8(%rdi)
	mov %r12, 16(%rdi)
	mov %r13, 24(%rdi)
	mov %r14, 32(%rdi)
	mov %r15, 40(%rdi)
	lea 8(%rsp), %rax               /* RSP after our return */
	mov %rax, 48(%rdi)
	mov (%rsp), %rax                /* our return address */
	mov %rax, 56(%rdi)
	pushfq
	popq 64(%rdi)
	xor %eax, %eax
	ret

/*
 * enter_user(fn, arg, user_rsp, rsp0_slot): store the current kernel stack
 * pointer as TSS.RSP0 (interrupts from CPL3 land below this frame), then IRETQ
 * to fn(arg) at CPL3. Never returns here; see run_user().
 */
	.globl enter_user
enter_user:
	mov %rsp, %rax
	and $-16, %rax
	mov %rax, (%rcx)
	mov %rdi, %r8
	mov %rsi, %rdi
	pushq $0x23                     /* SS = user data | RPL 3 */
	pushq %rdx                      /* RSP */
	pushfq
	pushq $0x2b                     /* CS = 64-bit user code | RPL 3 */
	pushq %r8                       /* RIP */
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ebp, %ebp
	xor %r12d, %r12d
	xor %r13d, %r13d
	xor %r14d, %r14d
	xor %r15d, %r15d
	iretq

/* The user function returns here (its return address on the user stack). */
	.globl user_exit_stub
user_exit_stub:
	mov %rax, %rdi
	int $USER_EXIT_VECTOR
	ud2
