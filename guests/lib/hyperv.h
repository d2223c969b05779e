/*
 * Hyper-V from the guest side: detection and the CPUID leaves
 * 0x40000000-0x4000000A, the synthetic MSRs, the guest OS ID, partition
 * reference time (TIME_REF_COUNT and the reference TSC page). Hypercalls are
 * in hyperv-hypercall.h, the SynIC, synthetic timers and QEMU's hyperv-testdev
 * in hyperv-synic.h; this header includes both.
 *
 * Numbers: Hyper-V TLFS as summarised in shared/spec/tlfs-vsm-facts.md
 * (section numbers below refer to it).
 */
#ifndef GUEST_HYPERV_H
#define GUEST_HYPERV_H

#include "types.h"

/* CPUID leaves (§6.1). */
#define HV_CPUID_VENDOR_AND_MAX 0x40000000
#define HV_CPUID_INTERFACE 0x40000001
#define HV_CPUID_VERSION 0x40000002
#define HV_CPUID_FEATURES 0x40000003
#define HV_CPUID_RECOMMENDATIONS 0x40000004
#define HV_CPUID_LIMITS 0x40000005
#define HV_CPUID_HW_FEATURES 0x40000006
#define HV_CPUID_CPU_MANAGEMENT 0x40000007
#define HV_CPUID_NESTED_HV_FEATURES 0x40000009
#define HV_CPUID_NESTED_FEATURES 0x4000000A
#define HV_SIGNATURE_HV1 0x31237648      /* "Hv#1" in 0x40000001 EAX */
#define HV_CPUID_MIN_MAX_LEAF 0x40000005 /* a Hyper-V interface publishes at least up to here */

/* Partition privilege mask bits, 0..63 over CPUID 0x40000003 EBX:EAX (§6.2). */
#define HV_PRIV_VP_RUNTIME 0
#define HV_PRIV_PARTITION_REFERENCE_COUNTER 1
#define HV_PRIV_SYNIC_REGS 2
#define HV_PRIV_SYNTHETIC_TIMER_REGS 3
#define HV_PRIV_INTR_CTRL_REGS 4
#define HV_PRIV_HYPERCALL_MSRS 5
#define HV_PRIV_VP_INDEX 6
#define HV_PRIV_RESET_REG 7
#define HV_PRIV_STATS_REG 8
#define HV_PRIV_PARTITION_REFERENCE_TSC 9
#define HV_PRIV_GUEST_IDLE_REG 10
#define HV_PRIV_FREQUENCY_REGS 11
#define HV_PRIV_DEBUG_REGS 12
#define HV_PRIV_REENLIGHTENMENT_CONTROLS 13
#define HV_PRIV_ROOT_SCHEDULER_REG 14
#define HV_PRIV_TSC_INVARIANT_CONTROLS 15
#define HV_PRIV_CREATE_PARTITIONS 32
#define HV_PRIV_POST_MESSAGES 36
#define HV_PRIV_SIGNAL_EVENTS 37
#define HV_PRIV_EXTENDED_GVA_RANGES_FLUSH 47
#define HV_PRIV_VSM 48
#define HV_PRIV_VP_REGISTERS 49
#define HV_PRIV_FAST_HYPERCALL_OUTPUT 51
#define HV_PRIV_EXTENDED_HYPERCALLS 52
#define HV_PRIV_START_VIRTUAL_PROCESSOR 53

/* CPUID 0x40000003 EDX feature bits (§6.3). */
#define HV_FEAT_CPU_DYNAMIC_PARTITIONING 3
#define HV_FEAT_XMM_HYPERCALL_INPUT 4
#define HV_FEAT_GUEST_IDLE 5
#define HV_FEAT_FREQUENCY_MSRS 8
#define HV_FEAT_GUEST_CRASH_MSRS 10
#define HV_FEAT_EXTENDED_GVA_RANGES_FLUSH 14
#define HV_FEAT_XMM_HYPERCALL_OUTPUT 15
#define HV_FEAT_SINT_POLLING 17
#define HV_FEAT_HYPERCALL_MSR_LOCK 18
#define HV_FEAT_DIRECT_SYNTHETIC_TIMERS 19

/* CPUID 0x40000004 EAX recommendation bits (§6.4). */
#define HV_REC_HYPERCALL_ADDRESS_SWITCH 0
#define HV_REC_HYPERCALL_LOCAL_FLUSH 1
#define HV_REC_HYPERCALL_REMOTE_FLUSH 2
#define HV_REC_MSR_APIC_ACCESS 3
#define HV_REC_MSR_RESET 4
#define HV_REC_RELAXED_TIMING 5
#define HV_REC_DEPRECATE_AUTO_EOI 9
#define HV_REC_SYNTHETIC_CLUSTER_IPI 10
#define HV_REC_EX_PROCESSOR_MASKS 11
#define HV_REC_NO_NONARCH_CORESHARING 18
#define HV_SPINLOCK_NEVER_NOTIFY 0xffffffffu /* 0x40000004 EBX */

/* Synthetic MSRs (§1.4, §4.1, §6.5). */
#define HV_X64_MSR_GUEST_OS_ID 0x40000000
#define HV_X64_MSR_HYPERCALL 0x40000001
#define HV_X64_MSR_VP_INDEX 0x40000002
#define HV_X64_MSR_RESET 0x40000003
#define HV_X64_MSR_VP_RUNTIME 0x40000010
#define HV_X64_MSR_TIME_REF_COUNT 0x40000020
#define HV_X64_MSR_REFERENCE_TSC 0x40000021
#define HV_X64_MSR_TSC_FREQUENCY 0x40000022
#define HV_X64_MSR_APIC_FREQUENCY 0x40000023
#define HV_X64_MSR_EOI 0x40000070
#define HV_X64_MSR_ICR 0x40000071
#define HV_X64_MSR_TPR 0x40000072
#define HV_X64_MSR_VP_ASSIST_PAGE 0x40000073
#define HV_X64_MSR_SCONTROL 0x40000080
#define HV_X64_MSR_SVERSION 0x40000081
#define HV_X64_MSR_SIEFP 0x40000082
#define HV_X64_MSR_SIMP 0x40000083
#define HV_X64_MSR_EOM 0x40000084
#define HV_X64_MSR_SINT(n) (0x40000090 + (n))
#define HV_X64_MSR_STIMER_CONFIG(n) (0x400000B0 + 2 * (n))
#define HV_X64_MSR_STIMER_COUNT(n) (0x400000B1 + 2 * (n))
#define HV_X64_MSR_GUEST_IDLE 0x400000F0
#define HV_X64_MSR_CRASH_P(n) (0x40000100 + (n))
#define HV_X64_MSR_CRASH_CTL 0x40000105
#define HV_X64_MSR_REENLIGHTENMENT_CONTROL 0x40000106
#define HV_X64_MSR_TSC_EMULATION_CONTROL 0x40000107
#define HV_X64_MSR_TSC_EMULATION_STATUS 0x40000108
#define HV_X64_MSR_TSC_INVARIANT_CONTROL 0x40000118

/* HV_X64_MSR_HYPERCALL (§1.4). */
#define HV_HYPERCALL_ENABLE BIT(0)
#define HV_HYPERCALL_LOCKED BIT(1)
#define HV_HYPERCALL_RSVDP_MASK 0xffcUL /* bits 11:2 */
/* Enable bit of REFERENCE_TSC, VP_ASSIST_PAGE, SIMP and SIEFP; bits 63:12 are the page (§3.3, §4.1, §6.5). */
#define HV_PAGE_MSR_ENABLE BIT(0)

/*
 * Our guest OS ID: the open-source encoding (bit 63 set, §1.4) with OS type
 * 0x7f, which no listed OS uses, OS ID 0 and build 1. Any non-zero value
 * enables the hypercall page.
 */
#define HV_GUEST_OS_ID_VSMVISOR_TESTS ((1UL << 63) | (0x7fUL << 56) | 1)

#define HV_REFERENCE_TIME_HZ 10000000UL /* TIME_REF_COUNT counts 100 ns units */

/* The reference TSC page (§6.5). */
struct hv_tsc_page {
	volatile u32 sequence;   /* 0 = invalid: use TIME_REF_COUNT */
	u32 reserved;
	volatile u64 scale;
	volatile s64 offset;
};

/* What CPUID says about Hyper-V. */
bool hv_present(void);        /* CPUID.1:ECX[31], max leaf >= 0x40000005, interface "Hv#1" */
u32 hv_max_leaf(void);
void hv_vendor(char out[13]); /* 0x40000000 EBX:ECX:EDX as a string */
u64 hv_privileges(void);      /* 0x40000003 EBX:EAX */
u32 hv_features(void);        /* 0x40000003 EDX */
u32 hv_recommendations(void); /* 0x40000004 EAX */
u32 hv_spin_retries(void);    /* 0x40000004 EBX */
static inline bool hv_has_privilege(unsigned bit) { return hv_privileges() & BIT(bit); }
static inline bool hv_has_feature(unsigned bit) { return hv_features() & BIT(bit); }
static inline bool hv_recommends(unsigned bit) { return hv_recommendations() & BIT(bit); }

/* This VP's index (HV_X64_MSR_VP_INDEX). */
u32 hv_vp_index(void);
/* Every CPU's VP index, by CPU number, after hv_collect_vp_indexes() (runs on all CPUs). */
extern u32 hv_vp_of[];
void hv_collect_vp_indexes(void);
/* The processor mask (VP-index bits) of a set of CPU numbers (bit n = CPU n). */
u64 hv_vp_mask(u64 cpus);
/* Write HV_X64_MSR_GUEST_OS_ID if it is still 0 (the hypercall page needs a non-zero ID). */
void hv_set_guest_os_id(void);

/* Partition reference time in 100 ns units (HV_X64_MSR_TIME_REF_COUNT). */
u64 hv_time_ref_count(void);
/* ((tsc * scale) >> 64) + offset: the reference TSC page formula (§6.5). */
u64 hv_tsc_page_time(u64 tsc, u64 scale, s64 offset);
/* Enable the reference TSC page at a fresh page of RAM (HV_X64_MSR_REFERENCE_TSC); returns it. */
struct hv_tsc_page *hv_tsc_page_enable(void);
/*
 * Reference time from the TSC page: reads sequence, scale, offset and the TSC,
 * and retries while the sequence changes under it. False when the page says
 * invalid (sequence 0), in which case TIME_REF_COUNT must be used.
 */
bool hv_tsc_page_read(const struct hv_tsc_page *page, u64 *time, u32 *sequence);

#include "msr-safe.h"
#include "hyperv-hypercall.h"
#include "hyperv-synic.h"

#endif
