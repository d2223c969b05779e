/*
 * Entry into and exit from one differential-test snippet (GNU as, Intel syntax).
 *
 * The snippet gets every GPR and RFLAGS from the case, so nothing here may
 * depend on a register while the snippet's state is live. All accesses use
 * absolute 32-bit addresses into the state block mapped at STATE_BASE, which
 * needs no base register; RSP is free for the snippet (the host stack pointer
 * is parked in the block). Layout must match struct state_block in runner.c.
 */
#define SB 0x30000000
#define IN_GPR      (SB + 0)
#define IN_RFLAGS   (SB + 128)
#define OUT_GPR     (SB + 256)
#define OUT_RFLAGS  (SB + 384)
#define HOST_RSP    (SB + 512)
#define CODE_PTR    (SB + 520)

        .intel_syntax noprefix
        .text

/* void dt_enter(void): load the case state and jump to the snippet. Returns through dt_return. */
        .globl dt_enter
        .type dt_enter, @function
dt_enter:
        push rbx
        push rbp
        push r12
        push r13
        push r14
        push r15
        mov qword ptr [HOST_RSP], rsp
        /* Flags first, on the host stack: nothing below changes them. */
        push qword ptr [IN_RFLAGS]
        popfq
        mov rax, qword ptr [IN_GPR + 0]
        mov rcx, qword ptr [IN_GPR + 8]
        mov rdx, qword ptr [IN_GPR + 16]
        mov rbx, qword ptr [IN_GPR + 24]
        mov rbp, qword ptr [IN_GPR + 40]
        mov rsi, qword ptr [IN_GPR + 48]
        mov rdi, qword ptr [IN_GPR + 56]
        mov r8,  qword ptr [IN_GPR + 64]
        mov r9,  qword ptr [IN_GPR + 72]
        mov r10, qword ptr [IN_GPR + 80]
        mov r11, qword ptr [IN_GPR + 88]
        mov r12, qword ptr [IN_GPR + 96]
        mov r13, qword ptr [IN_GPR + 104]
        mov r14, qword ptr [IN_GPR + 112]
        mov r15, qword ptr [IN_GPR + 120]
        mov rsp, qword ptr [IN_GPR + 32]
        jmp qword ptr [CODE_PTR]
        .size dt_enter, . - dt_enter

/* Reached by the "jmp [rip+0]; .quad dt_return" placed right after the snippet bytes. */
        .globl dt_return
        .type dt_return, @function
dt_return:
        mov qword ptr [OUT_GPR + 0], rax
        mov qword ptr [OUT_GPR + 8], rcx
        mov qword ptr [OUT_GPR + 16], rdx
        mov qword ptr [OUT_GPR + 24], rbx
        mov qword ptr [OUT_GPR + 32], rsp
        mov qword ptr [OUT_GPR + 40], rbp
        mov qword ptr [OUT_GPR + 48], rsi
        mov qword ptr [OUT_GPR + 56], rdi
        mov qword ptr [OUT_GPR + 64], r8
        mov qword ptr [OUT_GPR + 72], r9
        mov qword ptr [OUT_GPR + 80], r10
        mov qword ptr [OUT_GPR + 88], r11
        mov qword ptr [OUT_GPR + 96], r12
        mov qword ptr [OUT_GPR + 104], r13
        mov qword ptr [OUT_GPR + 112], r14
        mov qword ptr [OUT_GPR + 120], r15
        mov rsp, qword ptr [HOST_RSP]
        pushfq
        pop qword ptr [OUT_RFLAGS]
        /* Back to ABI-clean flags (DF=0, no AC/TF) before returning to C. */
        push 2
        popfq
        pop r15
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret
        .size dt_return, . - dt_return

        .section .note.GNU-stack, "", @progbits
