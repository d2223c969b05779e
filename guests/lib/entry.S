/*
 * Multiboot v1 entry. The loader enters "start" in 32-bit protected mode with
 * EAX = 0x2BADB002 and EBX = MBI. Application processors arrive at
 * "ap_start32" from the real-mode trampoline (lib/trampoline.S). Both then take
 * the same path: GDT, GS_BASE for per-CPU data, PAE + boot page tables
 * (0-4 GiB identity, 2 MiB pages), EFER.LME, CR0.PG, far jump to 64-bit code.
 */
#include "layout.h"

#define MSR_EFER 0xc0000080
#define MSR_GS_BASE 0xc0000101
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10

	.section .init, "ax"
	.code32
	.align 4
mb_header:
	.long 0x1badb002                /* magic */
	.long 0                         /* flags: nothing required, use the ELF headers */
	.long -0x1badb002               /* checksum: magic + flags + checksum = 0 */

	.globl start
start:
	mov %eax, boot_magic
	mov %ebx, boot_mbi
	mov $(cpu_stacks + STACK_SIZE), %esp
	/* Record the state the loader left, for the boot test. */
	mov %cr0, %eax
	mov %eax, boot_entry_cr0
	mov %cr4, %eax
	mov %eax, boot_entry_cr4
	pushfl
	popl boot_entry_eflags
	mov %cs, %ax
	mov %ax, boot_entry_cs
	mov %ds, %ax
	mov %ax, boot_entry_ds
	mov %ss, %ax
	mov %ax, boot_entry_ss
	xor %esi, %esi                  /* CPU index 0 */
	jmp enter_long_mode

	/* APs: the trampoline's GDT has flat code at 0x08 and data at 0x10. */
	.globl ap_start32
ap_start32:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $1, %eax
	lock xadd %eax, cpu_next        /* claim a CPU index and with it a stack */
	cmp $MAX_CPUS, %eax
	jae ap_park
	mov %eax, %esi
	inc %eax
	imul $STACK_SIZE, %eax
	add $cpu_stacks, %eax
	mov %eax, %esp
	jmp enter_long_mode
ap_park:
	lock incl cpus_parked           /* more CPUs than MAX_CPUS: stay halted */
1:	cli
	hlt
	jmp 1b

/* ESI = CPU index, ESP = its stack. */
enter_long_mode:
	lgdtl gdt64_desc
	mov $KERNEL_DS, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs                    /* replaces the hidden GS base ... */
	mov %ax, %ss
	call set_gs_base                /* ... so the MSR is written after the load */
	mov $0x20, %eax                 /* CR4.PAE only */
	mov %eax, %cr4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $0x100, %eax                 /* EFER.LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax            /* PG | PE: EFER.LMA becomes 1, compatibility mode */
	mov %eax, %cr0
	ljmp $KERNEL_CS, $start64

/* GS_BASE = &percpu_area[ESI]; also store the self pointer (offset 0). */
set_gs_base:
	mov %esi, %eax
	imull percpu_stride, %eax
	add $percpu_area, %eax
	mov %eax, (%eax)
	xor %edx, %edx
	mov $MSR_GS_BASE, %ecx
	wrmsr
	ret

	.code64
start64:
	mov $KERNEL_DS, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs                   /* FS and GS stay null in 64-bit mode: */
	mov %eax, %gs                   /* their bases come from the MSRs only */
	mov %esp, %esp                  /* zero the upper halves left from 32-bit mode */
	mov %esi, %esi
	mov %esi, %eax
	imull percpu_stride(%rip), %eax
	add $percpu_area, %rax
	mov %rax, %rdx
	shr $32, %rdx
	mov $MSR_GS_BASE, %ecx
	wrmsr
	xor %ebp, %ebp
	mov %esi, %edi
	test %edi, %edi
	jnz 1f
	call bsp_main
	jmp 2f
1:	call ap_main
2:	cli
	hlt
	jmp 2b

	.data
	.align 16
	.globl gdt64
gdt64:
	.quad 0                         /* 0x00 null */
	.quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit (L=1) */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00cffa000000ffff        /* 0x18 user code, 32-bit */
	.quad 0x00cff2000000ffff        /* 0x20 user data */
	.quad 0x00affa000000ffff        /* 0x28 user code, 64-bit */
	.quad 0x00cf9a000000ffff        /* 0x30 kernel code, 32-bit */
	.quad 0                         /* 0x38 spare */
	.fill 2 * MAX_CPUS, 8, 0        /* 0x40: one 16-byte TSS descriptor per CPU */
gdt64_end:
	.align 8
	.word 0
gdt64_desc:
	.word gdt64_end - gdt64 - 1
	.quad gdt64

	.globl cpu_next, cpus_parked
cpu_next:
	.long 1                         /* next AP index; 0 is the BSP */
cpus_parked:
	.long 0

	/* Boot page tables: PML4 -> PDPT -> 4 page directories of 2 MiB pages (P|RW|A|D|PS). */
	.align 4096
	.globl boot_pml4
boot_pml4:
	.quad boot_pdpt + 0x3
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + 0x0003
	.quad boot_pd + 0x1003
	.quad boot_pd + 0x2003
	.quad boot_pd + 0x3003
	.fill 508, 8, 0
boot_pd:
	page = 0
	.rept 2048
	.quad (page << 21) | 0xe3
	page = page + 1
	.endr

	.bss
	.align 16
	.globl boot_magic, boot_mbi, boot_entry_cr0, boot_entry_cr4, boot_entry_eflags
	.globl boot_entry_cs, boot_entry_ds, boot_entry_ss
boot_magic: .long 0
boot_mbi: .long 0
boot_entry_cr0: .long 0
boot_entry_cr4: .long 0
boot_entry_eflags: .long 0
boot_entry_cs: .word 0
boot_entry_ds: .word 0
boot_entry_ss: .word 0

	.align 4096
	.globl cpu_stacks
cpu_stacks:
	.skip STACK_SIZE * MAX_CPUS
