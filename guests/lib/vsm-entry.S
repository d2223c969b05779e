/*
 * The register-level parts of VSM (lib/vsm.h; tlfs-vsm-facts.md §3.2-§3.4,
 * §3.6): VTL0's VtlCall with chosen shared GPRs, VTL1's service loop around
 * its VtlReturn, and VTL1's interrupt entry stubs.
 *
 * struct vsm_regs: rax, rcx, rdx, rbx, rbp, rsi, rdi, r8-r15 (8 bytes each).
 */
#include "isr-table.inc"

	.text

/*
 * void vsm_vtl_call_regs(struct vsm_regs *r): load RDX..R15 from *r, call
 * VTL0's VtlCall stub with RCX = 0 (the control input), store every GPR
 * back into *r. RAX and RCX come back from the VTL control area (non-fast
 * return) or as the VtlReturn stub left them (fast).
 */
	.globl vsm_vtl_call_regs
vsm_vtl_call_regs:
	push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15
	push %rdi
	mov 16(%rdi), %rdx; mov 24(%rdi), %rbx; mov 32(%rdi), %rbp; mov 40(%rdi), %rsi
	mov 56(%rdi), %r8; mov 64(%rdi), %r9; mov 72(%rdi), %r10; mov 80(%rdi), %r11
	mov 88(%rdi), %r12; mov 96(%rdi), %r13; mov 104(%rdi), %r14; mov 112(%rdi), %r15
	mov 48(%rdi), %rdi
	xor %ecx, %ecx
	call *vsm_vtl0_call_stub(%rip)
	xchg %rdi, (%rsp)
	mov %rax, 0(%rdi); mov %rcx, 8(%rdi); mov %rdx, 16(%rdi); mov %rbx, 24(%rdi)
	mov %rbp, 32(%rdi); mov %rsi, 40(%rdi)
	mov %r8, 56(%rdi); mov %r9, 64(%rdi); mov %r10, 72(%rdi); mov %r11, 80(%rdi)
	mov %r12, 88(%rdi); mov %r13, 96(%rdi); mov %r14, 104(%rdi); mov %r15, 112(%rdi)
	pop %rax; mov %rax, 48(%rdi)
	pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx
	ret

/*
 * VTL1's loop. The initial context (EnableVpVtl) starts it here on the top
 * of the VP's VTL1 stack. Every entry stores the shared GPRs it found as a
 * struct vsm_regs on the stack and calls vsm_vtl1_dispatch(regs), which
 * returns the VtlReturn control input; the GPRs are reloaded from the
 * structure (RAX and RCX excepted: the stub uses them) and VTL1 calls its
 * VtlReturn stub. The next entry into VTL1 resumes after that call.
 */
	.globl vsm_vtl1_entry
vsm_vtl1_entry:
1:	sub $8, %rsp                    /* 15 GPRs + 8: RSP stays 16-byte aligned at the call */
	push %r15; push %r14; push %r13; push %r12; push %r11; push %r10; push %r9; push %r8
	push %rdi; push %rsi; push %rbp; push %rbx; push %rdx; push %rcx; push %rax
	mov %rsp, %rdi
	call vsm_vtl1_dispatch
	mov %rax, %rcx
	mov 16(%rsp), %rdx; mov 24(%rsp), %rbx; mov 32(%rsp), %rbp; mov 40(%rsp), %rsi
	mov 48(%rsp), %rdi; mov 56(%rsp), %r8; mov 64(%rsp), %r9; mov 72(%rsp), %r10
	mov 80(%rsp), %r11; mov 88(%rsp), %r12; mov 96(%rsp), %r13; mov 104(%rsp), %r14
	mov 112(%rsp), %r15
	add $128, %rsp
	call *vsm_vtl1_return_stub(%rip)
	jmp 1b

/*
 * VTL1's IDT entry stubs, 16 bytes apart: a dummy error code where the CPU
 * pushes none, the vector, then a struct ex_regs (lib/exceptions.h) for
 * vsm_vtl1_isr(). Not lib/isr.S's stubs: their dispatcher's handler table
 * is VTL0's, and VTL1 must neither run VTL0's handlers nor report as VTL0.
 */
	ISR_TABLE vsm_vtl1_isr_stubs, vsm_vtl1_isr, 256
