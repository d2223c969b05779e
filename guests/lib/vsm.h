/*
 * Virtual Secure Mode from the guest side (tlfs-vsm-facts.md §2.11-§2.15,
 * §3.1-§3.7, §3.10, §4.1-§4.5): VTL1 on every VP of this kernel, and a
 * small VTL1 "secure kernel" that serves VTL0's requests.
 *
 * Each CPU's VP gets a struct vsm_vp. VTL1 on it has its own page tables
 * (CR3), GDT with its own TSS, IDT whose handlers report an unexpected
 * exception and stop, stack, per-CPU data (GS base), VP assist page, SynIC
 * pages, hypercall input/output pages; one VTL1 hypercall page and guest OS
 * ID serve every VP's VTL1. All of it lives in the one guest memory that
 * both VTLs share, identity-mapped in both.
 *
 * Enabling (§2.12, §2.13 and hc-vsm.ts's rules): VTL0 enables VTL1 for the
 * partition, then for its own VP (VTL0 may do that only on its own VP and
 * only before VTL1 is enabled on any VP). Every other VP's VTL1 is enabled
 * by VTL1 of a VP that already has it (VSM_CMD_ENABLE_VP). Enabling does not
 * switch: the first VtlCall on a VP enters its VTL1 at vsm_vtl1_entry, which
 * sets itself up (vsm_vtl1_start()).
 *
 * The service loop: VTL0 puts a request (command + 3 arguments) into its
 * VP's mailbox and VtlCalls; VTL1 runs the command registered for it and
 * VtlReturns with the result in RAX through its VTL control area (non-fast
 * return, §3.3). Entries for an interrupt (reason 2) or an intercept
 * (reason 3) open an interrupt window so the pending interrupt reaches
 * VTL1's IDT: registered interrupt callbacks run, and the SINT0 handler
 * hands the message in SIM slot 0 to the message callback, then frees the
 * slot (MessageType = 0, EOM if MessagePending, §4.2). VTL1 then returns
 * with every shared GPR as it found it (RAX and RCX through the control
 * area), so the interrupted VTL0 code does not notice.
 *
 * At the end: wrappers for ModifyVtlProtectionMask and
 * TranslateVirtualAddress(Ex) (§2.16, §2.18, slow and XMM fast), their
 * flags and result codes (§3.8, §5.1-§5.4), and the memory intercept
 * payload (§4.4, §4.5) for tests that check protections, intercepts and
 * TLB locks (§3.9); then the CrInterceptControl registers and the register
 * and MSR intercept payloads (§3.7, §4.6), with helpers that build a
 * message's §4.4 header from VTL0's state and compare messages.
 */
#ifndef GUEST_VSM_H
#define GUEST_VSM_H

#include "types.h"
#include "hyperv.h"
#include "percpu.h"

/* Call codes (§2.1). */
#define HVCALL_MODIFY_VTL_PROTECTION_MASK 0x000c
#define HVCALL_ENABLE_PARTITION_VTL 0x000d
#define HVCALL_ENABLE_VP_VTL 0x000f
#define HVCALL_VTL_CALL 0x0011
#define HVCALL_VTL_RETURN 0x0012
#define HVCALL_GET_VP_REGISTERS 0x0050
#define HVCALL_SET_VP_REGISTERS 0x0051

/* Statuses (§1.6) not in hyperv-hypercall.h. */
#define HV_STATUS_INVALID_PARTITION_ID 0x000d
#define HV_STATUS_INVALID_VP_INDEX 0x000e
#define HV_STATUS_INVALID_REGISTER_VALUE 0x0050
#define HV_STATUS_INVALID_VTL_STATE 0x0051
#define HV_STATUS_VTL_ALREADY_ENABLED 0x0086
#define HV_STATUS_UNKNOWN_REGISTER_NAME 0x0087

#define HV_VP_INDEX_SELF 0xfffffffeU
/* HV_INPUT_VTL (§2.11): 0 = the caller's VTL. */
#define HV_INPUT_VTL(vtl) (0x10 | (vtl))
#define HV_INPUT_VTL_SELF 0

/* Register names (§3.7). */
#define HV_REG_RIP 0x00020010
#define HV_REG_RFLAGS 0x00020011
#define HV_REG_CR0 0x00040000
#define HV_REG_CR2 0x00040001
#define HV_REG_CR3 0x00040002
#define HV_REG_CR4 0x00040003
#define HV_REG_CR8 0x00040004
#define HV_REG_DR0 0x00050000
#define HV_REG_ES 0x00060000
#define HV_REG_CS 0x00060001
#define HV_REG_SS 0x00060002
#define HV_REG_DS 0x00060003
#define HV_REG_FS 0x00060004
#define HV_REG_GS 0x00060005
#define HV_REG_LDTR 0x00060006
#define HV_REG_TR 0x00060007
#define HV_REG_IDTR 0x00070000
#define HV_REG_GDTR 0x00070001
#define HV_REG_EFER 0x00080001
#define HV_REG_KERNEL_GS_BASE 0x00080002
#define HV_REG_VSM_CODE_PAGE_OFFSETS 0x000d0002
#define HV_REG_VSM_VP_STATUS 0x000d0003
#define HV_REG_VSM_PARTITION_STATUS 0x000d0004
#define HV_REG_VSM_PARTITION_CONFIG 0x000d0007
#define HV_REG_VSM_VP_SECURE_CONFIG_VTL0 0x000d0010

/* HvRegisterVsmVpStatus (§3.7): 3:0 ActiveVtl, 31:16 EnabledVtlSet. */
#define HV_VP_STATUS(active_vtl, enabled_set) ((u64)(active_vtl) | ((u64)(enabled_set) << 16))

/* HV_VTL_ENTRY_REASON (§3.4). */
#define HV_VTL_ENTRY_VTL_CALL 1
#define HV_VTL_ENTRY_INTERRUPT 2
#define HV_VTL_ENTRY_INTERCEPT 3

/* HV_X64_SEGMENT_REGISTER, HV_X64_TABLE_REGISTER and HV_INITIAL_VP_CONTEXT (§2.13). */
struct hv_segment { u64 base; u32 limit; u16 selector; u16 attributes; };
struct hv_table { u16 pad[3]; u16 limit; u64 base; };
struct hv_initial_vp_context {
	u64 rip, rsp, rflags;
	struct hv_segment cs, ds, es, fs, gs, ss, tr, ldtr;
	struct hv_table idtr, gdtr;
	u64 efer, cr0, cr3, cr4, pat;
};

/* HV_VP_VTL_CONTROL (§3.3), at offset 8 of the higher VTL's VP assist page. */
struct hv_vtl_control {
	volatile u32 entry_reason;
	volatile u8 vina_status;
	u8 reserved1;
	u16 reserved2;
	volatile u64 vtl_return_rax, vtl_return_rcx;
};

/* HV_VP_ASSIST_PAGE (§3.3), up to the intercept message slot. */
struct hv_vp_assist_page {
	u32 apic_assist, reserved0;
	struct hv_vtl_control vtl_control;
	u8 other[0x70 - 0x20];
	struct hv_message intercept_message; /* used when VsmPartitionConfig.InterceptPage = 1 */
};

/* The GPRs a VTL switch carries (all but RSP), in the order the entry code stores them. */
struct vsm_regs { u64 rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15; };

/* One VTL's way to make slow hypercalls: its hypercall page and input/output pages. */
struct vsm_hvc { void *page; u64 *in; u64 *out; };

#define VSM_VTL1_STACK_PAGES 4
#define VSM_VTL1_GDT_ENTRIES (GDT_FIXED_ENTRIES + 2) /* the library's fixed entries, then one TSS */
#define VSM_VTL1_TSS_SEL (GDT_FIXED_ENTRIES * 8)
/* VTL1's SINT0 vector: intercept messages arrive on SINT0 (§3.10, §4.2). */
#define VSM_SINT0_VECTOR 0x40
#define VSM_MAX_COMMANDS 32

struct vsm_vp;
/*
 * A VTL1 command: runs in VTL1 on the VP that VtlCalled, with the shared
 * GPRs VTL0 passed in *regs (which it may change: VTL0 gets them back,
 * except RAX and RCX). Its result reaches VTL0 in RAX.
 */
typedef u64 (*vsm_command_fn)(struct vsm_vp *vp, struct vsm_regs *regs);
/*
 * A VTL1 interrupt handler (the library sends the EOI afterwards), and what
 * VTL1 does with a SynIC message from SINT0 (an intercept, §4.2-§4.5; the
 * slot is freed afterwards). Both run in an interrupt or intercept entry,
 * while VTL0 on that VP may be anywhere, holding any lock (the console's,
 * the allocator's): they must not print or allocate.
 */
typedef void (*vsm_irq_fn)(struct vsm_vp *vp, unsigned vector);
typedef void (*vsm_message_fn)(struct vsm_vp *vp, const struct hv_message *msg);

/* Commands the library itself serves; tests number theirs from VSM_CMD_USER. */
enum {
	VSM_CMD_NOP,
	VSM_CMD_ENABLE_VP, /* arg[0] = CPU number: EnableVpVtl of its VP with its VTL1 context; returns the status */
	VSM_CMD_SET_PARTITION_CONFIG, /* arg[0] = value: SetVpRegisters(VTL1's VsmPartitionConfig); returns the status */
	VSM_CMD_PROTECT_PAGE, /* arg[0] = GPA page number, arg[1] = mask: ModifyVtlProtectionMask for VTL1; returns the result value */
	VSM_CMD_USER,
};

struct vsm_vp {
	unsigned cpu;
	u32 vp_index;
	/* VTL1's own state. */
	struct vsm_hvc hvc;                 /* VTL1's hypercall page (shared by all VPs) and this VP's buffers */
	struct hv_vp_assist_page *assist;
	u64 *root;                          /* CR3 */
	u64 *gdt;
	u64 *idt;                           /* 256 gates of 16 bytes */
	u8 *stack;                          /* VSM_VTL1_STACK_PAGES pages */
	u8 *ist;                            /* #DF and NMI stacks, one page each */
	struct percpu *pc;                  /* GS base: VTL1's per-CPU data and TSS */
	struct hv_message *sim;             /* SynIC message page */
	u8 *sief;                           /* SynIC event flags page */
	/* The mailbox: VTL0 writes the request, VTL1 answers in RAX. */
	volatile u32 cmd;
	volatile u64 arg[3];
	/* What VTL1 saw. */
	volatile bool ready;                /* set up by its first entry */
	volatile u64 entries[4];            /* entries by reason; [0]: the first, before the assist page existed */
	volatile u32 last_reason;
	volatile u64 irqs;                  /* interrupts taken, SINT0 included */
	volatile u32 last_vector;
	volatile u64 messages;              /* SINT0 / intercept-slot messages handled */
	struct hv_message last_message;
	/* A command's own VtlReturn: input (0 or 1), with the control area as the command left it. */
	bool raw_return;
	u64 raw_input;
	/*
	 * The shared GPRs of the current entry, as VTL0 gets them back (RAX and
	 * RCX through the control area, the rest as VTL1 reloads them): a
	 * command, interrupt or message handler may change them, e.g. to give
	 * VTL0 the result of an RDMSR it emulates. SetVpRegisters cannot: these
	 * registers are shared (§3.2) and VTL1 holds them while it runs.
	 */
	struct vsm_regs *regs;
};

/* Stubs in the hypercall pages (§3.6): VTL0's VtlCall, VTL1's VtlCall and VtlReturn. */
extern u64 vsm_vtl0_call_stub, vsm_vtl0_return_stub, vsm_vtl1_call_stub, vsm_vtl1_return_stub;
/* VTL0's hypercall page with this CPU's input/output pages. */
struct vsm_hvc vsm_vtl0_hvc(void);
/* The VP of a CPU / of this CPU (in either VTL). */
struct vsm_vp *vsm_vp_of(unsigned cpu);
static inline struct vsm_vp *vsm_this_vp(void) { return vsm_vp_of(smp_id()); }

/* Slow hypercall through h; returns the result value (§1.2). */
u64 vsm_hvc_call(const struct vsm_hvc *h, u64 control);
/* GetVpRegisters of one register (16 bytes into *value when not NULL); returns the status. */
unsigned vsm_get_reg(const struct vsm_hvc *h, u32 vp, u8 input_vtl, u32 name, void *value);
/* GetVpRegisters of n registers in one rep call; values[i] gets 16 bytes each. Returns the status. */
unsigned vsm_get_regs(const struct vsm_hvc *h, u32 vp, u8 input_vtl, const u32 *names, unsigned n, void *values);
/* The 64-bit value of one register of this VP in the caller's VTL; aborts on failure. */
u64 vsm_get_u64(const struct vsm_hvc *h, u32 name);
/* SetVpRegisters of one 64-bit register; returns the status. */
unsigned vsm_set_reg(const struct vsm_hvc *h, u32 vp, u8 input_vtl, u32 name, u64 value);
/* SetVpRegisters of one register with a 16-byte value (a segment or table register, §2.13); returns the status. */
unsigned vsm_set_reg128(const struct vsm_hvc *h, u32 vp, u8 input_vtl, u32 name, const void *value);
unsigned vsm_enable_partition_vtl(const struct vsm_hvc *h, u64 partition, u8 vtl);
/* EnablePartitionVtl with its Flags byte (§2.12: HV_ENABLE_PARTITION_VTL_*); returns the status. */
unsigned vsm_enable_partition_vtl_flags(const struct vsm_hvc *h, u64 partition, u8 vtl, u8 flags);
unsigned vsm_enable_vp_vtl(const struct vsm_hvc *h, u64 partition, u32 vp, u8 vtl, const struct hv_initial_vp_context *ctx);

/*
 * Skips the whole test (report_skip, then report_summary, which exits 38)
 * unless Hyper-V offers AccessVsm and AccessVpRegisters, and with
 * `start_vp` also StartVirtualProcessor. The first thing a VSM test does.
 */
void vsm_require(bool start_vp);

/*
 * VTL0, on the BSP: the hypercall page, every CPU's VP index and VTL1
 * resources. Call once, before everything below.
 */
void vsm_init(void);
/* Reads VsmCodePageOffsets into *value and sets the VTL0 stubs; returns the status. */
unsigned vsm_read_code_page_offsets(u64 *value);
/* VTL1's initial context for a CPU's VP (segments from this VP's VTL0, VTL1's own tables, stack, CR3, GS base). */
void vsm_build_context(unsigned cpu, struct hv_initial_vp_context *ctx);
/* VTL0: EnablePartitionVtl(self, VTL1); EnableVpVtl(self, VTL1) with this CPU's VTL1 context. Return the status. */
unsigned vsm_enable_partition(void);
unsigned vsm_enable_vp_self(void);
/* VTL0: the first VtlCall on this CPU, in which VTL1 sets itself up; returns whether it did. */
bool vsm_vtl1_start(void);
/* VTL0 on a CPU whose VTL1 runs: VTL1 enables VTL1 on another CPU's VP (VSM_CMD_ENABLE_VP); returns the status. */
unsigned vsm_enable_vp_from_vtl1(unsigned cpu);
/*
 * The whole sequence for every CPU: partition, this VP, VTL1 here enables
 * the other VPs, each VP's VTL1 sets itself up. Reports only failures
 * (FAIL lines); returns whether everything worked.
 */
bool vsm_setup_all(void);
/*
 * vsm_setup_all() after its EnablePartitionVtl, for a test that enables
 * the partition's VTL1 itself (e.g. with flags): this VP, VTL1 here enables
 * the other VPs, each VP's VTL1 sets itself up. Needs vsm_init() and
 * vsm_read_code_page_offsets() first. Reports only failures.
 */
bool vsm_setup_vps(void);

/* VTL0: VtlCall with the shared GPRs from *r (RCX = 0, the control input); stores what came back in *r. */
void vsm_vtl_call_regs(struct vsm_regs *r);
/* VTL0: put a request into this VP's mailbox (for vsm_vtl_call_regs). */
void vsm_request(unsigned cmd, u64 a0, u64 a1, u64 a2);
/* VTL0: request, VtlCall, and VTL1's result. */
u64 vsm_call(unsigned cmd, u64 a0, u64 a1, u64 a2);

/* Register VTL1's handler of a command, an interrupt vector, SINT0 messages (any VP; call from VTL0 before use). */
void vsm_register_command(unsigned cmd, vsm_command_fn fn);
void vsm_register_irq(unsigned vector, vsm_irq_fn fn);
void vsm_register_message_handler(vsm_message_fn fn);
/*
 * VTL1, inside a command: VtlReturn with this control input (bit 0 = fast)
 * and the VTL control area as the command left it, instead of the result.
 */
void vsm_return_raw(struct vsm_vp *vp, u64 input);

// ---------------------------------------------------------------- protections, translation, TLB locks

#define HVCALL_TRANSLATE_VIRTUAL_ADDRESS 0x0052
#define HVCALL_TRANSLATE_VIRTUAL_ADDRESS_EX 0x00ac
#define HV_REG_VSM_VP_WAIT_FOR_TLB_LOCK 0x000d0020
/* GPA and GVA page numbers (§2.16, §2.18) count 4 KiB pages. */
#define HV_PAGE_SHIFT 12

/* HvRegisterVsmPartitionConfig (§3.7): bit 0 EnableVtlProtection, 4:1 DefaultVtlProtectionMask. */
#define HV_VSM_CONFIG_ENABLE_VTL_PROTECTION BIT(0)
#define HV_VSM_CONFIG_DEFAULT_MASK(mask) ((u64)(mask) << 1)
/* HvRegisterVsmVpSecureConfigVtlN (§3.7) and HvRegisterVsmVpWaitForTlbLock (§3.9). */
#define HV_VSM_VP_SECURE_CONFIG_TLB_LOCKED BIT(1)
#define HV_VSM_WAIT_FOR_TLB_LOCK BIT(0)

/* Protection mask bits (§3.8); without MBEC the masks are none, R, RW, RX (R|KX|UX) and RWX. */
#define HV_MAP_GPA_READABLE 0x1
#define HV_MAP_GPA_WRITABLE 0x2
#define HV_MAP_GPA_KERNEL_EXECUTABLE 0x4
#define HV_MAP_GPA_USER_EXECUTABLE 0x8
#define HV_MAP_GPA_RWX 0xf

/* HV_TRANSLATE_GVA_CONTROL_FLAGS (§5.1). */
#define HV_TRANSLATE_GVA_VALIDATE_READ BIT(0)
#define HV_TRANSLATE_GVA_VALIDATE_WRITE BIT(1)
#define HV_TRANSLATE_GVA_VALIDATE_EXECUTE BIT(2)
#define HV_TRANSLATE_GVA_PRIVILEGE_EXEMPT BIT(3)
#define HV_TRANSLATE_GVA_SET_PAGE_TABLE_BITS BIT(4)
#define HV_TRANSLATE_GVA_TLB_FLUSH_INHIBIT BIT(5)
#define HV_TRANSLATE_GVA_SUPERVISOR_ACCESS BIT(6)
#define HV_TRANSLATE_GVA_USER_ACCESS BIT(7)
#define HV_TRANSLATE_GVA_INPUT_VTL(input_vtl) ((u64)(input_vtl) << 56)

/* HV_TRANSLATE_GVA_RESULT (§5.2): code 31:0, cache type 39:32, overlay page bit 40. */
#define HV_TRANSLATE_RESULT(code, cache, overlay) ((u64)(code) | ((u64)(cache) << 32) | ((overlay) ? BIT(40) : 0))
enum {
	HV_TRANSLATE_GVA_SUCCESS,
	HV_TRANSLATE_GVA_PAGE_NOT_PRESENT,
	HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION,
	HV_TRANSLATE_GVA_INVALID_PAGE_TABLE_FLAGS,
	HV_TRANSLATE_GVA_GPA_UNMAPPED,
	HV_TRANSLATE_GVA_GPA_NO_READ_ACCESS,
	HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS,
	HV_TRANSLATE_GVA_GPA_ILLEGAL_OVERLAY_ACCESS,
	HV_TRANSLATE_GVA_INTERCEPT,
};

/* HV_CACHE_TYPE (§5.4). */
#define HV_CACHE_TYPE_UC 0
#define HV_CACHE_TYPE_WC 1
#define HV_CACHE_TYPE_WT 4
#define HV_CACHE_TYPE_WP 5
#define HV_CACHE_TYPE_WB 6

/* Memory intercept messages (§4.3-§4.5). */
#define HV_MESSAGE_TYPE_GPA_INTERCEPT 0x80000001u
#define HV_INTERCEPT_ACCESS_READ 0
#define HV_INTERCEPT_ACCESS_WRITE 1
#define HV_INTERCEPT_ACCESS_EXECUTE 2
/* ExecutionState (§4.4). */
#define HV_EXEC_STATE_CR0_PE BIT(2)
#define HV_EXEC_STATE_CR0_AM BIT(3)
#define HV_EXEC_STATE_EFER_LMA BIT(4)
#define HV_EXEC_STATE_DEBUG_ACTIVE BIT(5)
#define HV_EXEC_STATE_VTL(vtl) ((u16)(vtl) << 7)
/* MemoryAccessInfo (§4.5). */
#define HV_MEMORY_ACCESS_GVA_VALID BIT(0)
#define HV_MEMORY_ACCESS_GVA_GPA_VALID BIT(1)
#define HV_MEMORY_ACCESS_TLB_LOCKED BIT(3)

/* HV_X64_INTERCEPT_MESSAGE_HEADER (§4.4): the first 40 bytes of every x64 intercept payload. */
struct hv_intercept_header {
	u32 vp_index;
	u8 insn_length_cr8;     /* 3:0 instruction length, 7:4 CR8 */
	u8 access_type;
	u16 execution_state;
	struct hv_segment cs;
	u64 rip, rflags;
};
#define HV_INTERCEPT_HEADER_BYTES 0x28

/*
 * The memory intercept payload: the sheet's 0x50 bytes (§4.4 header, §4.5)
 * and, as the VMM sends it (src/vmm/vsm/intercept-message.ts), DS, SS and
 * RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15 after them: 0xF0 bytes.
 */
struct hv_memory_intercept {
	struct hv_intercept_header header;
	u32 cache_type;
	u8 insn_byte_count, access_info, tpr_priority, reserved;
	u64 gva, gpa;
	u8 insn_bytes[16];
	struct hv_segment ds, ss;
	u64 gprs[16];
};
#define HV_MEMORY_INTERCEPT_BYTES 0xf0

/* TranslateVirtualAddress output (§2.16) and the Ex output as hvdef lays it out (§5.3, 0x40 bytes). */
struct hv_translate_output { u64 result, gpa_page; };
struct hv_translate_ex_output { u64 result, reserved0, event_info[4], gpa_page, reserved1; };

/*
 * XMM fast hypercall through h's page (§1.3): in_len input bytes in RDX,
 * R8, XMM0-XMM5, out_len output bytes from the pairs after the input.
 * Returns the result value.
 */
u64 vsm_hvc_call_xmm(const struct vsm_hvc *h, u64 control, const void *in, unsigned in_len, void *out, unsigned out_len);
/* ModifyVtlProtectionMask (§2.18) of n GPA pages (n = 0 sends a rep count of 0); returns the result value. */
u64 vsm_modify_protection(const struct vsm_hvc *h, u64 partition, u32 mask, u8 input_vtl, const u64 *gpa_pages, unsigned n);
/* The same as an XMM fast call (at most 12 pages). */
u64 vsm_modify_protection_fast(const struct vsm_hvc *h, u64 partition, u32 mask, u8 input_vtl, const u64 *gpa_pages, unsigned n);
/* TranslateVirtualAddress (§2.16): slow, XMM fast (output in XMM1), and Ex (slow). Return the result value. */
u64 vsm_translate(const struct vsm_hvc *h, u64 partition, u32 vp, u64 flags, u64 gva_page, struct hv_translate_output *out);
u64 vsm_translate_fast(const struct vsm_hvc *h, u64 partition, u32 vp, u64 flags, u64 gva_page, struct hv_translate_output *out);
u64 vsm_translate_ex(const struct vsm_hvc *h, u64 partition, u32 vp, u64 flags, u64 gva_page, struct hv_translate_ex_output *out);

/* Library internal (lib/vsm-entry.S). */
void vsm_vtl1_entry(void);
extern char vsm_vtl1_isr_stubs[];

// ---------------------------------------------------------------- more VTLs than two (issue 5)

#define HV_REG_RSP 0x00020004
/* HvRegisterVsmVpSecureConfigVtlN (§3.7): one per (higher VTL, lower VTL N) pair. */
#define HV_REG_VSM_VP_SECURE_CONFIG_VTL(n) (HV_REG_VSM_VP_SECURE_CONFIG_VTL0 + (n))
#define HV_VSM_VP_SECURE_CONFIG_MBEC_ENABLED BIT(0)
/* HvRegisterVsmPartitionStatus (§3.7): 15:0 EnabledVtlSet, 19:16 MaximumVtl. */
#define HV_PARTITION_STATUS(enabled_set, maximum_vtl) ((u64)(enabled_set) | ((u64)(maximum_vtl) << 16))
#define HV_PARTITION_STATUS_MAXIMUM_VTL(status) ((unsigned)(((status) >> 16) & 0xf))

// ---------------------------------------------------------------- mode-based execute control (MBEC)

#define HV_REG_VSM_CAPABILITIES 0x000d0006
/* HvCallEnablePartitionVtl Flags (§2.12): bit 0 EnableMbec, bit 1 EnableSupervisorShadowStack, bit 2 EnableHardwareHvpt. */
#define HV_ENABLE_PARTITION_VTL_MBEC BIT(0)
#define HV_ENABLE_PARTITION_VTL_SUPERVISOR_SHADOW_STACK BIT(1)
#define HV_ENABLE_PARTITION_VTL_HARDWARE_HVPT BIT(2)
/* HvRegisterVsmCapabilities bits 16:1 MbecVtlMask (§3.7, hvdef order): VTL k <-> bit k of the field. */
#define HV_VSM_CAPABILITIES_MBEC_VTL_MASK(cap) ((unsigned)(((cap) >> 1) & 0xffff))
/* HvRegisterVsmPartitionStatus bits 35:20 MbecEnabledVtlSet (§3.7). */
#define HV_PARTITION_STATUS_MBEC_SET(set) ((u64)(set) << 20)
/* HvRegisterVsmVpStatus bit 4 ActiveMbecEnabled (§3.7): MBEC is enabled for the VTL active when read. */
#define HV_VP_STATUS_ACTIVE_MBEC_ENABLED BIT(4)

// ---------------------------------------------------------------- CR and MSR intercepts (CrInterceptControl)

#define HV_REG_RAX 0x00020000
#define HV_REG_RDX 0x00020002
#define HV_REG_XFEM 0x00040005
#define HV_REG_APIC_BASE 0x00080003
#define HV_REG_SYSENTER_CS 0x00080005
#define HV_REG_SYSENTER_EIP 0x00080006
#define HV_REG_SYSENTER_ESP 0x00080007
#define HV_REG_STAR 0x00080008
#define HV_REG_LSTAR 0x00080009
#define HV_REG_CSTAR 0x0008000a
#define HV_REG_SFMASK 0x0008000b
#define HV_REG_TSC_AUX 0x0008007b
/* Per VP, one instance per VTL ≥ 1 (§3.7): what that VTL intercepts of the lower VTLs on this VP. */
#define HV_REG_CR_INTERCEPT_CONTROL 0x000e0000
#define HV_REG_CR_INTERCEPT_CR0_MASK 0x000e0001
#define HV_REG_CR_INTERCEPT_CR4_MASK 0x000e0002
#define HV_REG_CR_INTERCEPT_IA32_MISC_ENABLE_MASK 0x000e0003

/* HvX64RegisterCrInterceptControl bits (§3.7). */
#define HV_CR_INTERCEPT_CR0_WRITE BIT(0)
#define HV_CR_INTERCEPT_CR4_WRITE BIT(1)
#define HV_CR_INTERCEPT_XCR0_WRITE BIT(2)
#define HV_CR_INTERCEPT_IA32_MISC_ENABLE_READ BIT(3)
#define HV_CR_INTERCEPT_IA32_MISC_ENABLE_WRITE BIT(4)
#define HV_CR_INTERCEPT_MSR_LSTAR_READ BIT(5)
#define HV_CR_INTERCEPT_MSR_LSTAR_WRITE BIT(6)
#define HV_CR_INTERCEPT_MSR_STAR_READ BIT(7)
#define HV_CR_INTERCEPT_MSR_STAR_WRITE BIT(8)
#define HV_CR_INTERCEPT_MSR_CSTAR_READ BIT(9)
#define HV_CR_INTERCEPT_MSR_CSTAR_WRITE BIT(10)
#define HV_CR_INTERCEPT_APIC_BASE_MSR_READ BIT(11)
#define HV_CR_INTERCEPT_APIC_BASE_MSR_WRITE BIT(12)
#define HV_CR_INTERCEPT_MSR_EFER_READ BIT(13)
#define HV_CR_INTERCEPT_MSR_EFER_WRITE BIT(14)
#define HV_CR_INTERCEPT_GDTR_WRITE BIT(15)
#define HV_CR_INTERCEPT_IDTR_WRITE BIT(16)
#define HV_CR_INTERCEPT_LDTR_WRITE BIT(17)
#define HV_CR_INTERCEPT_TR_WRITE BIT(18)
#define HV_CR_INTERCEPT_MSR_SYSENTER_CS_WRITE BIT(19)
#define HV_CR_INTERCEPT_MSR_SYSENTER_EIP_WRITE BIT(20)
#define HV_CR_INTERCEPT_MSR_SYSENTER_ESP_WRITE BIT(21)
#define HV_CR_INTERCEPT_MSR_SFMASK_WRITE BIT(22)
#define HV_CR_INTERCEPT_MSR_TSC_AUX_WRITE BIT(23)

/* HvRegisterVsmPartitionConfig bit 12 (§3.7): intercept messages go to the VP assist page (offset 0x70), not SINT0. */
#define HV_VSM_CONFIG_INTERCEPT_PAGE BIT(12)
/* Bits 10 (unimplemented CPUID leaves) and 11 (a lower VTL's triple fault: an UnrecoverableException message) (§3.7). */
#define HV_VSM_CONFIG_INTERCEPT_CPUID_UNIMPLEMENTED BIT(10)
#define HV_VSM_CONFIG_INTERCEPT_UNRECOVERABLE_EXCEPTION BIT(11)

/* Message types (§4.3) and the payloads of §4.6 after the §4.4 header. */
#define HV_MESSAGE_TYPE_MSR_INTERCEPT 0x80010001u
#define HV_MESSAGE_TYPE_REGISTER_INTERCEPT 0x80010006u
/* UnrecoverableException (§4.3, §4.6): the payload is the §4.4 header only. */
#define HV_MESSAGE_TYPE_UNRECOVERABLE_EXCEPTION 0x80000021u

/*
 * RegisterIntercept (§4.6): a CR0 / CR4 / XCR0 write, or a GDTR / IDTR /
 * LDTR / TR write (LGDT, LIDT, LLDT, LTR); AccessInfo holds the value
 * written: the u64 (CR0, CR4, XCR0), an HV_X64_TABLE_REGISTER (struct
 * hv_table: limit at byte 6, base at 8; GDTR, IDTR) or the 16-bit selector
 * (LDTR, TR), the rest 0.
 */
struct hv_register_intercept {
	struct hv_intercept_header header;
	u8 flags;               /* bit 0 IsMemoryOp */
	u8 reserved8;
	u16 reserved16;
	u32 register_name;
	u64 access_info[2];     /* for a write: the source value, then 0 */
};
#define HV_REGISTER_INTERCEPT_BYTES 0x40
/* RegisterIntercept Flags bit 0: the instruction's source operand was in memory (LGDT, LIDT, LMSW/LLDT/LTR m16). */
#define HV_REGISTER_INTERCEPT_IS_MEMORY_OP BIT(0)

/* MsrIntercept (§4.6): RDMSR or WRMSR, with the full RDX and RAX at the instruction. */
struct hv_msr_intercept {
	struct hv_intercept_header header;
	u32 msr;
	u32 reserved;
	u64 rdx, rax;
};
#define HV_MSR_INTERCEPT_BYTES 0x40

/* HV_X64_SEGMENT_REGISTER of a selector of VTL0's GDT (lib/entry.S), from the descriptor as it is now. */
struct hv_segment vsm_gdt_segment(u16 selector);
/*
 * The §4.4 header of an intercept of VTL0 on this VP at `rip` as VTL0's
 * state is now: VP index, instruction length, CR8, access type, execution
 * state (CPL, CR0.PE/AM, EFER.LMA, DR7 breakpoints, VTL 0), CS; RFLAGS as
 * given. Reads EFER: call it before an EFER read intercept is on.
 */
void vsm_intercept_header(struct hv_intercept_header *h, unsigned access, unsigned insn_len, u64 rip, u64 rflags);
/* Compares `bytes` bytes (a multiple of 8); prints the quadwords that differ (got / expected) under `what`. */
bool vsm_same_bytes(const char *what, const void *got, const void *want, unsigned bytes);
/* SetVpRegisters of n 64-bit registers in one rep call (n ≤ 64); returns the result value (status, reps completed). */
u64 vsm_set_regs(const struct vsm_hvc *h, u32 vp, u8 input_vtl, const u32 *names, const u64 *values, unsigned n);

#endif
