/* Sizes shared by the assembly entry code and C (keep this file cpp-only). */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

#define MAX_CPUS 64
#define STACK_SIZE 16384        /* per-CPU kernel stack */
#define IST_STACK_SIZE 4096     /* per-CPU #DF and NMI stacks */
#define GDT_FIXED_ENTRIES 8     /* null, kcode64, kdata, ucode32, udata, ucode64, kcode32, spare */
#define GDT_ENTRIES (GDT_FIXED_ENTRIES + 2 * MAX_CPUS) /* + one 16-byte TSS descriptor per CPU */
#define USER_EXIT_VECTOR 0x80   /* DPL-3 gate user code uses to return to the kernel */
#define IPI_VECTOR 0x20         /* on_cpu() work notification */
#define SPURIOUS_VECTOR 0xff

#endif
