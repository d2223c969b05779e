/*
 * Interrupt entry stubs: one per vector, 16 bytes apart starting at
 * isr_stubs, each building a struct ex_regs (lib/exceptions.h) for
 * isr_dispatch(regs) (lib/isr-table.inc). Whatever the C code leaves in the
 * structure is restored, so a handler can change RIP, RSP, RFLAGS or any
 * register before the IRETQ.
 */
#include "isr-table.inc"

	.text
	ISR_TABLE isr_stubs, isr_dispatch, 256
