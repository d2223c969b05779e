/* Thin wrappers around single x86 instructions and architectural constants. */
#ifndef GUEST_X86_H
#define GUEST_X86_H

#include "types.h"

/* Segment selectors of the library GDT (see lib/entry.S). */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS32 0x1b
#define USER_DS 0x23
#define USER_CS 0x2b
#define KERNEL_CS32 0x30
#define TSS_SEL(cpu) (0x40 + 16 * (cpu))

/* Control register bits. */
#define X86_CR0_PE BIT(0)
#define X86_CR0_MP BIT(1)
#define X86_CR0_ET BIT(4)
#define X86_CR0_NE BIT(5)
#define X86_CR0_WP BIT(16)
#define X86_CR0_AM BIT(18)
#define X86_CR0_PG BIT(31)
#define X86_CR4_PSE BIT(4)
#define X86_CR4_PAE BIT(5)
#define X86_CR4_PGE BIT(7)
#define X86_CR4_OSFXSR BIT(9)
#define X86_CR4_UMIP BIT(11)
#define X86_CR4_LA57 BIT(12)
#define X86_CR4_PCIDE BIT(17)
#define X86_CR4_SMEP BIT(20)
#define X86_CR4_SMAP BIT(21)
#define X86_EFLAGS_IF BIT(9)
#define X86_EFLAGS_AC BIT(18)

/* MSRs. */
#define MSR_IA32_APICBASE 0x1b
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_EFER 0xc0000080
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_FMASK 0xc0000084
#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102
#define EFER_SCE BIT(0)
#define EFER_LME BIT(8)
#define EFER_LMA BIT(10)
#define EFER_NXE BIT(11)

/* Exception vectors. */
#define DE_VECTOR 0
#define DB_VECTOR 1
#define NMI_VECTOR 2
#define BP_VECTOR 3
#define OF_VECTOR 4
#define BR_VECTOR 5
#define UD_VECTOR 6
#define NM_VECTOR 7
#define DF_VECTOR 8
#define TS_VECTOR 10
#define NP_VECTOR 11
#define SS_VECTOR 12
#define GP_VECTOR 13
#define PF_VECTOR 14
#define MF_VECTOR 16
#define AC_VECTOR 17
#define MC_VECTOR 18
#define XM_VECTOR 19

/* Page-fault error code bits. */
#define PFERR_PRESENT BIT(0)
#define PFERR_WRITE BIT(1)
#define PFERR_USER BIT(2)
#define PFERR_RSVD BIT(3)
#define PFERR_FETCH BIT(4)

struct cpuid {
	u32 a, b, c, d;
};

static inline struct cpuid cpuid_count(u32 leaf, u32 subleaf)
{
	struct cpuid r;
	asm volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(subleaf));
	return r;
}

static inline struct cpuid cpuid(u32 leaf)
{
	return cpuid_count(leaf, 0);
}

/* CPUID feature tests used by the library and the tests. */
static inline u32 cpuid_max_basic(void) { return cpuid(0).a; }
static inline u32 cpuid_max_ext(void) { return cpuid(0x80000000).a; }
static inline bool cpu_has_x2apic(void) { return cpuid(1).c & BIT(21); }
static inline bool cpu_has_tsc_deadline(void) { return cpuid(1).c & BIT(24); }
static inline bool cpu_has_pcid(void) { return cpuid(1).c & BIT(17); }
static inline bool cpu_has_pge(void) { return cpuid(1).d & BIT(13); }
static inline bool cpu_has_leaf7(void) { return cpuid_max_basic() >= 7; }
static inline bool cpu_has_smep(void) { return cpu_has_leaf7() && (cpuid_count(7, 0).b & BIT(7)); }
static inline bool cpu_has_smap(void) { return cpu_has_leaf7() && (cpuid_count(7, 0).b & BIT(20)); }
static inline bool cpu_has_invpcid(void) { return cpu_has_leaf7() && (cpuid_count(7, 0).b & BIT(10)); }
static inline bool cpu_has_nx(void) { return cpuid_max_ext() >= 0x80000001 && (cpuid(0x80000001).d & BIT(20)); }
static inline bool cpu_has_1g_pages(void) { return cpuid_max_ext() >= 0x80000001 && (cpuid(0x80000001).d & BIT(26)); }

static inline u32 cpu_phys_addr_bits(void)
{
	return cpuid_max_ext() >= 0x80000008 ? (cpuid(0x80000008).a & 0xff) : 36;
}

static inline u64 rdmsr(u32 index)
{
	u32 lo, hi;
	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(index) : "memory");
	return lo | ((u64)hi << 32);
}

static inline void wrmsr(u32 index, u64 val)
{
	asm volatile("wrmsr" : : "a"((u32)val), "d"((u32)(val >> 32)), "c"(index) : "memory");
}

static inline u64 rdtsc(void)
{
	u32 lo, hi;
	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return lo | ((u64)hi << 32);
}

static inline u64 read_cr0(void) { u64 v; asm volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline void write_cr0(u64 v) { asm volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline u64 read_cr2(void) { u64 v; asm volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline void write_cr2(u64 v) { asm volatile("mov %0, %%cr2" : : "r"(v) : "memory"); }
static inline u64 read_cr3(void) { u64 v; asm volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void write_cr3(u64 v) { asm volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline u64 read_cr4(void) { u64 v; asm volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr4(u64 v) { asm volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }
static inline u64 read_cr8(void) { u64 v; asm volatile("mov %%cr8, %0" : "=r"(v)); return v; }
static inline void write_cr8(u64 v) { asm volatile("mov %0, %%cr8" : : "r"(v) : "memory"); }

static inline u64 read_rflags(void)
{
	u64 f;
	asm volatile("pushfq; popq %0" : "=r"(f));
	return f;
}

static inline u64 read_rsp(void)
{
	u64 v;
	asm volatile("mov %%rsp, %0" : "=r"(v));
	return v;
}

static inline u16 read_cs(void) { u16 v; asm volatile("mov %%cs, %0" : "=r"(v)); return v; }
static inline u16 read_ss(void) { u16 v; asm volatile("mov %%ss, %0" : "=r"(v)); return v; }
static inline u16 read_ds(void) { u16 v; asm volatile("mov %%ds, %0" : "=r"(v)); return v; }
static inline u16 read_gs(void) { u16 v; asm volatile("mov %%gs, %0" : "=r"(v)); return v; }
static inline u16 read_tr(void) { u16 v; asm volatile("str %0" : "=r"(v)); return v; }

static inline void write_ds_es(u16 sel)
{
	asm volatile("mov %0, %%ds; mov %0, %%es" : : "r"(sel) : "memory");
}

/* Set or clear one CR0/CR4 bit; return the old value of the whole register. */
static inline u64 set_cr0_wp(bool on)
{
	u64 old = read_cr0();
	write_cr0(on ? old | X86_CR0_WP : old & ~X86_CR0_WP);
	return old;
}

static inline u64 set_cr4_bits(u64 set, u64 clear)
{
	u64 old = read_cr4();
	write_cr4((old | set) & ~clear);
	return old;
}

static inline void invlpg(const volatile void *va)
{
	asm volatile("invlpg (%0)" : : "r"(va) : "memory");
}

/* INVPCID types (SDM "INVPCID"). */
#define INVPCID_ADDR 0
#define INVPCID_CONTEXT 1
#define INVPCID_ALL_GLOBAL 2
#define INVPCID_ALL_NONGLOBAL 3

static inline void invpcid(u64 type, u64 pcid, u64 addr)
{
	struct { u64 pcid, addr; } desc = { pcid, addr };
	asm volatile("invpcid %0, %1" : : "m"(desc), "r"(type) : "memory");
}

static inline void outb(u8 v, u16 port) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 v, u16 port) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u32 v, u16 port) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/*
 * Memory accesses that are also compiler barriers: the page-table and TLB
 * tests need the access to happen exactly between the surrounding reads and
 * writes of paging structures, which plain volatile accesses do not order.
 */
static inline u64 readq(u64 addr)
{
	u64 v;
	asm volatile("mov (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline void writeq(u64 addr, u64 v)
{
	asm volatile("mov %1, (%0)" : : "r"(addr), "r"(v) : "memory");
}

static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline void sti(void) { asm volatile("sti" ::: "memory"); }
static inline void hlt(void) { asm volatile("hlt" ::: "memory"); }
static inline void pause(void) { asm volatile("pause" ::: "memory"); }
/* STI's interrupt shadow makes "sti; hlt" wait without losing a wake-up. */
static inline void safe_halt(void) { asm volatile("sti; hlt" ::: "memory"); }
static inline void stac(void) { asm volatile(".byte 0x0f, 0x01, 0xcb" ::: "memory"); }
static inline void clac(void) { asm volatile(".byte 0x0f, 0x01, 0xca" ::: "memory"); }

static inline bool irqs_enabled(void) { return read_rflags() & X86_EFLAGS_IF; }

/* Disable interrupts and return whether they were enabled. */
static inline bool irq_save(void)
{
	bool was = irqs_enabled();
	cli();
	return was;
}

static inline void irq_restore(bool was)
{
	if (was)
		sti();
}

struct descriptor_table_ptr {
	u16 limit;
	u64 base;
} __packed;

static inline void lgdt(const struct descriptor_table_ptr *p) { asm volatile("lgdt %0" : : "m"(*p)); }
static inline void lidt(const struct descriptor_table_ptr *p) { asm volatile("lidt %0" : : "m"(*p)); }
static inline void sgdt(struct descriptor_table_ptr *p) { asm volatile("sgdt %0" : "=m"(*p)); }
static inline void sidt(struct descriptor_table_ptr *p) { asm volatile("sidt %0" : "=m"(*p)); }
static inline void ltr(u16 sel) { asm volatile("ltr %0" : : "rm"(sel)); }

#endif
