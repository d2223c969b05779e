/*
 * KVM's paravirtual interface from the guest side (kvm-api-facts.md §4):
 * the CPUID signature "KVMKVMKVM\0\0\0" at 0x40000000 + k * 0x100 (after
 * Hyper-V's leaves when those take 0x40000000), the feature bits in EAX of
 * the next leaf, and hypercalls: VMCALL with the number in RAX, arguments in
 * RBX, RCX, RDX, RSI, the result (0 or a negative errno) in RAX.
 *
 * Hypercall 12 and feature bit 15 mean different things in the protected
 * memory RFC and upstream (§4.3); a VMM exposes one set per VM.
 */
#ifndef GUEST_KVM_HYPERCALL_H
#define GUEST_KVM_HYPERCALL_H

#include "types.h"
#include "x86.h"

/* CPUID. */
#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_FEATURE_MEM_PROTECTED 15      /* protmem RFC (§4.1); upstream: MSI_EXT_DEST_ID */
#define KVM_FEATURE_HC_MAP_GPA_RANGE 16   /* upstream (§4.2) */

/* Hypercall numbers. */
#define KVM_HC_ENABLE_MEM_PROTECTED 12    /* RFC */
#define KVM_HC_MEM_SHARE 13               /* RFC: a0 = first GFN, a1 = pages */
#define KVM_HC_MEM_UNSHARE 14             /* RFC */
#define KVM_HC_MAP_GPA_RANGE 12           /* upstream: a0 = GPA, a1 = pages, a2 = attributes */
#define KVM_MAP_GPA_RANGE_ENCRYPTED BIT(4)
#define KVM_MAP_GPA_RANGE_DECRYPTED 0

/* Results. */
#define KVM_ENOSYS 1000
#define KVM_EPERM 1
#define KVM_EINVAL 22

static inline long kvm_hypercall3(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2)
{
	long ret;
	asm volatile("vmcall" : "=a"(ret) : "a"(nr), "b"(a0), "c"(a1), "d"(a2) : "memory");
	return ret;
}

static inline long kvm_hypercall0(unsigned long nr) { return kvm_hypercall3(nr, 0, 0, 0); }
static inline long kvm_hypercall2(unsigned long nr, unsigned long a0, unsigned long a1)
{
	return kvm_hypercall3(nr, a0, a1, 0);
}

/* The leaf holding KVM's signature (0x40000000 + k * 0x100), or 0 when there is none. */
static inline u32 kvm_cpuid_base(void)
{
	if (!(cpuid(1).c & BIT(31)))
		return 0; /* no hypervisor */
	for (u32 base = KVM_CPUID_SIGNATURE; base < 0x40010000u; base += 0x100) {
		struct cpuid r = cpuid(base);
		/* "KVMK" "VMKV" "M\0\0\0" in EBX, ECX, EDX */
		if (r.b == 0x4b4d564b && r.c == 0x564b4d56 && r.d == 0x4d)
			return base;
	}
	return 0;
}

/* EAX of KVM's feature leaf (0 without KVM's signature). */
static inline u32 kvm_features(void)
{
	u32 base = kvm_cpuid_base();
	return base ? cpuid(base + 1).a : 0;
}

#endif
