/*
 * Interrupt entry stubs: one per vector, 16 bytes apart starting at
 * isr_stubs. Each pushes a dummy error code when the CPU does not push one,
 * then the vector number, and joins isr_common, which saves every GPR into a
 * struct ex_regs (lib/exceptions.h) and calls isr_dispatch(regs). Whatever the
 * C code leaves in the structure is restored, so a handler can change RIP,
 * RSP, RFLAGS or any register before the IRETQ.
 */
	.text
	.align 16
	.globl isr_stubs
isr_stubs:
	vec = 0
	.rept 256
	.align 16
	/* Vectors with a CPU-pushed error code: #DF #TS #NP #SS #GP #PF #AC #CP #VC #SX. */
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	vec = vec + 1
	.endr

isr_common:
	push %r15
	push %r14
	push %r13
	push %r12
	push %r11
	push %r10
	push %r9
	push %r8
	push %rbp
	push %rdi
	push %rsi
	push %rdx
	push %rcx
	push %rbx
	push %rax
	cld
	mov %rsp, %rdi                  /* RSP is 16-byte aligned here: 5 + 2 + 15 quadwords */
	call isr_dispatch
	pop %rax
	pop %rbx
	pop %rcx
	pop %rdx
	pop %rsi
	pop %rdi
	pop %rbp
	pop %r8
	pop %r9
	pop %r10
	pop %r11
	pop %r12
	pop %r13
	pop %r14
	pop %r15
	add $16, %rsp                   /* vector and error code */
	iretq
