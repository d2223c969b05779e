/* GDT, per-CPU TSS and the shared IDT. */
#ifndef GUEST_DESC_H
#define GUEST_DESC_H

#include "types.h"
#include "percpu.h"

#define IST_DF 1   /* #DF runs on IST1 */
#define IST_NMI 2  /* NMI runs on IST2 */

/* Install the TSS descriptor for this CPU (selector TSS_SEL(slot)), fill its IST pointers, load TR. */
void tss_init(struct percpu *pc);
/* Build the IDT (all 256 vectors point at the library stubs) and load it. */
void idt_init(void);
/* Load the already built IDT on this CPU. */
void idt_load(void);
/* Point a gate at an arbitrary entry point (not through the C dispatcher). */
void set_idt_entry(unsigned vec, void *entry, unsigned dpl, unsigned ist);
/* Point a gate back at the library stub for that vector. */
void set_idt_default(unsigned vec, unsigned dpl, unsigned ist);
void set_idt_dpl(unsigned vec, unsigned dpl);
/* Clear or set the gate's P bit (delivery through a non-present gate raises #NP). */
void set_idt_present(unsigned vec, bool present);
/* Entry address of the library stub for a vector. */
void *isr_stub(unsigned vec);

#endif
