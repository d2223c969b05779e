/*
 * u64 hv_xmm_call(void *page, u64 control, u64 *block)
 *
 * The register half of an XMM fast hypercall (tlfs-vsm-facts.md §1.3):
 * RCX = control, RDX/R8 = block[0..1], XMM0-XMM5 = block[2..13]; call the
 * hypercall page; store RDX, R8 and XMM0-XMM5 back into the block (output
 * pairs come back there) and return RAX. The caller has set CR4.OSFXSR: the
 * rest of the library is built without SSE, so nothing else owns these
 * registers.
 */
	.text
	.globl hv_xmm_call
hv_xmm_call:
	push %rbx
	mov %rdx, %rbx
	mov %rsi, %rcx
	mov 0(%rbx), %rdx
	mov 8(%rbx), %r8
	movdqu 16(%rbx), %xmm0
	movdqu 32(%rbx), %xmm1
	movdqu 48(%rbx), %xmm2
	movdqu 64(%rbx), %xmm3
	movdqu 80(%rbx), %xmm4
	movdqu 96(%rbx), %xmm5
	call *%rdi
	mov %rdx, 0(%rbx)
	mov %r8, 8(%rbx)
	movdqu %xmm0, 16(%rbx)
	movdqu %xmm1, 32(%rbx)
	movdqu %xmm2, 48(%rbx)
	movdqu %xmm3, 64(%rbx)
	movdqu %xmm4, 80(%rbx)
	movdqu %xmm5, 96(%rbx)
	pop %rbx
	ret
