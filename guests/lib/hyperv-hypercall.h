/*
 * Hyper-V hypercalls from the guest side (tlfs-vsm-facts.md §1, §2): the
 * hypercall page, the control word and result value, and wrappers for the
 * three calling conventions:
 *  - slow (memory): input and output blocks in RAM, their GPAs in RDX and R8;
 *  - fast: up to 16 bytes of input in RDX and R8;
 *  - XMM fast: up to 112 bytes in RDX, R8 and XMM0-XMM5 (CPUID 0x40000003
 *    EDX bit 4), output in the register pairs after the input (EDX bit 15).
 * Every wrapper returns the 64-bit result value from RAX.
 */
#ifndef GUEST_HYPERV_HYPERCALL_H
#define GUEST_HYPERV_HYPERCALL_H

#include "types.h"

/* Call codes (§2.1). */
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE 0x0002
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST 0x0003
#define HVCALL_NOTIFY_LONG_SPIN_WAIT 0x0008
#define HVCALL_SEND_SYNTHETIC_CLUSTER_IPI 0x000b
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX 0x0013
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX 0x0014
#define HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX 0x0015
#define HVCALL_GET_VP_INDEX_FROM_APIC_ID 0x009a
#define HVCALL_POST_MESSAGE 0x005c
#define HVCALL_SIGNAL_EVENT 0x005d

/* Status codes (§1.6). */
#define HV_STATUS_SUCCESS 0x0000
#define HV_STATUS_INVALID_HYPERCALL_CODE 0x0002
#define HV_STATUS_INVALID_HYPERCALL_INPUT 0x0003
#define HV_STATUS_INVALID_ALIGNMENT 0x0004
#define HV_STATUS_INVALID_PARAMETER 0x0005
#define HV_STATUS_ACCESS_DENIED 0x0006
#define HV_STATUS_INVALID_PORT_ID 0x0011
#define HV_STATUS_INVALID_CONNECTION_ID 0x0012
#define HV_STATUS_INSUFFICIENT_BUFFERS 0x0013
#define HV_STATUS_INVALID_SYNIC_STATE 0x0018

/* Control word fields (§1.1). */
#define HV_HYPERCALL_FAST BIT(16)
#define HV_HYPERCALL_VARHEAD(qwords) ((u64)(qwords) << 17)
#define HV_HYPERCALL_REP_COUNT(n) ((u64)(n) << 32)
#define HV_HYPERCALL_REP_START(n) ((u64)(n) << 48)
#define HV_HYPERCALL_RSVDZ_MASK 0xf000f00078000000UL /* bits 30:27, 47:44, 63:60 */

/* Result value fields (§1.2). */
#define HV_RESULT_STATUS(r) ((unsigned)((r) & 0xffff))
#define HV_RESULT_REPS(r) ((unsigned)(((r) >> 32) & 0xfff))

/* Flush flags (§2.2). */
#define HV_FLUSH_ALL_PROCESSORS BIT(0)
#define HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES BIT(1)
#define HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY BIT(2)
#define HV_FLUSH_USE_EXTENDED_RANGE_FORMAT BIT(3)

/* GVA range element, simple format (§2.3): page number and additional pages. */
#define HV_GVA_RANGE(va, extra_pages) (((u64)(va) & ~0xfffUL) | ((u64)(extra_pages) & 0xfff))

/* HV_VP_SET formats (§2.5). */
#define HV_GENERIC_SET_SPARSE_4K 0
#define HV_GENERIC_SET_ALL 1

#define HV_PARTITION_ID_SELF 0xffffffffffffffffUL
#define HV_XMM_BLOCK_BYTES 112 /* RDX, R8, XMM0-XMM5 */

/* Input layouts (§2.4, §2.6, §2.9, §2.10). */
struct hv_flush_input {
	u64 address_space;
	u64 flags;
	u64 processor_mask;
	u64 gva_list[];
};

struct hv_flush_ex_input {
	u64 address_space;
	u64 flags;
	u64 format;
	u64 valid_banks;
	u64 banks[];          /* popcount(valid_banks) words (the variable header), then GVA ranges */
};

struct hv_ipi_input {
	u32 vector;
	u8 target_vtl;
	u8 flags;
	u16 reserved;
	u64 processor_mask;
};

struct hv_ipi_ex_input {
	u32 vector;
	u8 target_vtl;
	u8 flags;
	u16 reserved;
	u64 format;
	u64 valid_banks;
	u64 banks[];
};

struct hv_post_message_input {
	u32 connection_id;
	u32 reserved;
	u32 message_type;
	u32 payload_size;
	u64 payload[30];
};

struct hv_signal_event_input {
	u32 connection_id;
	u16 flag_number;
	u16 reserved;
};

/* The enabled hypercall page (NULL before hv_hypercall_setup()). */
extern void *hv_hypercall_page;

/*
 * Set the guest OS ID if needed, then enable the hypercall page at a fresh
 * page of RAM and allocate per-CPU input/output pages. Idempotent.
 */
void hv_hypercall_setup(void);
/* This CPU's input and output pages for slow calls (zeroed when allocated; callers fill them). */
void *hv_input_page(void);
void *hv_output_page(void);

/* Slow call: control word as given, RDX = input GPA, R8 = output GPA. */
u64 hv_hypercall(u64 control, u64 input_gpa, u64 output_gpa);
/* Fast call: HV_HYPERCALL_FAST is added; RDX and R8 carry 16 bytes of input. */
u64 hv_hypercall_fast(u64 control, u64 rdx, u64 r8);
/*
 * XMM fast call: HV_HYPERCALL_FAST is added; in_len bytes of input go to
 * RDX, R8, XMM0-XMM5 in that order (zero-padded), and out_len bytes of output
 * are read from the register pairs starting at pair ceil(in_len / 16).
 * regs_after, if not NULL, receives the 112-byte register block as it was
 * after the call (to check that input registers were left alone).
 * CR4.OSFXSR is set around the call (the library itself never uses SSE).
 */
u64 hv_hypercall_xmm(u64 control, const void *in, unsigned in_len, void *out, unsigned out_len,
		     u64 *regs_after);

/* hv_hypercall() under expect_exception(): NO_EXCEPTION with *result set, or the vector raised (#UD). */
unsigned hv_hypercall_catch(u64 control, u64 rdx, u64 r8, u64 *result);
/* hv_hypercall_xmm() under expect_exception(), the same way. */
unsigned hv_hypercall_xmm_catch(u64 control, const void *in, unsigned in_len, void *out, unsigned out_len,
				u64 *result);

/* Low level: call the page with RCX, RDX, R8, XMM0-XMM5 from block[0..13] and store them back (hyperv-xmm.S). */
u64 hv_xmm_call(void *page, u64 control, u64 *block);

#endif
