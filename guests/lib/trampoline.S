/*
 * AP start-up trampoline. smp_init() copies [ap_tramp_start, ap_tramp_end)
 * to physical address 0 and sends SIPI vector 0, so an AP starts here in
 * real mode with CS:IP = 0000:0000 and DS = 0. Every address below is an
 * offset from ap_tramp_start, i.e. a physical address once copied.
 */
	.section .rodata
	.code16
	.align 16
	.globl ap_tramp_start, ap_tramp_end
ap_tramp_start:
	cli
	mov %cr0, %eax
	orl $1, %eax                    /* 66h-prefixed: set CR0.PE */
	mov %eax, %cr0
	lgdtl (tramp_gdt_desc - ap_tramp_start)
	ljmpl $0x08, $ap_start32        /* 66h far jump into 32-bit code (lib/entry.S) */

	.align 8
tramp_gdt:
	.quad 0
	.quad 0x00cf9a000000ffff        /* 0x08 flat 32-bit code */
	.quad 0x00cf92000000ffff        /* 0x10 flat data */
tramp_gdt_desc:
	.word tramp_gdt_desc - tramp_gdt - 1
	.long tramp_gdt - ap_tramp_start
ap_tramp_end:
	.code64
