/*
 * The synthetic interrupt controller (SynIC), synthetic timers and QEMU's
 * hyperv-testdev from the guest side (tlfs-vsm-facts.md §4.1-4.3, §6.5;
 * pc-platform-facts.md §2.6).
 *
 * Each CPU has its own SynIC: hv_synic_enable() gives this CPU a message page
 * (SIM: 16 slots of 256 bytes, slot n for SINTn) and an event-flags page
 * (SIEF: 16 x 2048 flags) and sets SCONTROL.Enable. A message is consumed by
 * copying it, writing MessageType 0 and, if MessagePending was set, writing
 * EOM so the hypervisor delivers the next one (hv_message_done()).
 */
#ifndef GUEST_HYPERV_SYNIC_H
#define GUEST_HYPERV_SYNIC_H

#include "types.h"

#define HV_SYNIC_SINT_COUNT 16
#define HV_SYNIC_STIMER_COUNT 4
#define HV_SYNIC_VERSION 1
#define HV_SYNIC_FIRST_VALID_VECTOR 16

/* SCONTROL and SINTn (§4.1). */
#define HV_SCONTROL_ENABLE BIT(0)
#define HV_SINT_VECTOR_MASK 0xffUL
#define HV_SINT_MASKED BIT(16)
#define HV_SINT_AUTO_EOI BIT(17)
#define HV_SINT_POLLING BIT(18)
#define HV_SINT_RESET_VALUE HV_SINT_MASKED

/* Messages (§4.2, §4.3). */
#define HV_MESSAGE_TYPE_NONE 0
#define HV_MESSAGE_TYPE_TIMER_EXPIRED 0x80000010u
#define HV_MESSAGE_TYPE_HYPERVISOR_BIT 0x80000000u
#define HV_MESSAGE_FLAG_PENDING BIT(0)
#define HV_MESSAGE_SIZE 256
#define HV_MESSAGE_PAYLOAD_MAX 240
#define HV_EVENT_FLAGS_PER_SINT 2048

struct hv_message {
	volatile u32 type;
	volatile u8 payload_size;
	volatile u8 flags;
	u16 reserved;
	volatile u64 origin;
	volatile u64 payload[30];
};

/* Payload of HvMessageTypeTimerExpired (§4.3), times in 100 ns reference units. */
struct hv_timer_payload {
	u32 timer_index;
	u32 reserved;
	u64 expiration_time;
	u64 delivery_time;
};

/* STIMERn_CONFIG (§6.5). */
#define HV_STIMER_ENABLE BIT(0)
#define HV_STIMER_PERIODIC BIT(1)
#define HV_STIMER_LAZY BIT(2)
#define HV_STIMER_AUTO_ENABLE BIT(3)
#define HV_STIMER_APIC_VECTOR(v) ((u64)(v) << 4)
#define HV_STIMER_DIRECT_MODE BIT(12)
#define HV_STIMER_SINT(n) ((u64)(n) << 16)

/* QEMU hyperv-testdev (pc-platform-facts.md §2.6). */
#define HV_TESTDEV_PORT 0x3000
#define HV_TESTDEV_SINT_ROUTE_CREATE 1
#define HV_TESTDEV_SINT_ROUTE_DESTROY 2
#define HV_TESTDEV_SINT_ROUTE_SET_SINT 3
#define HV_TESTDEV_MSG_CONN_CREATE 4
#define HV_TESTDEV_MSG_CONN_DESTROY 5
#define HV_TESTDEV_EVT_CONN_CREATE 6
#define HV_TESTDEV_EVT_CONN_DESTROY 7

/* This CPU: zero fresh SIM and SIEF pages (allocated once per CPU), enable them and SCONTROL. */
void hv_synic_enable(void);
/* This CPU: every SINT back to its reset value, SCONTROL, SIMP and SIEFP to 0. */
void hv_synic_disable(void);
/* The SIM slot / SIEF flags of a CPU's SINT (pages of hv_synic_enable() on that CPU). */
struct hv_message *hv_sim_slot(unsigned cpu, unsigned sint);
volatile u8 *hv_sief_flags(unsigned cpu, unsigned sint);

/* SINTn of this CPU: vector plus HV_SINT_AUTO_EOI / HV_SINT_POLLING / HV_SINT_MASKED. */
void hv_sint_set(unsigned sint, u8 vector, u64 flags);
void hv_sint_mask(unsigned sint);

/* Free a consumed slot: MessageType = 0, then EOM if MessagePending was set (§4.2). */
void hv_message_done(struct hv_message *msg);
/* Atomically clear an event flag (LOCK BTR); returns whether it was set. */
bool hv_event_flag_test_and_clear(volatile u8 *flags, unsigned flag);
static inline bool hv_event_flag_test(const volatile u8 *flags, unsigned flag)
{
	return flags[flag / 8] & (1u << (flag % 8));
}

/* Program synthetic timer n of this CPU (stops it first; see hyperv-synic.c for the write order). */
void hv_stimer_set(unsigned timer, u64 config, u64 count);
/* CONFIG = 0 and COUNT = 0: the timer stops and forgets any pending expiry. */
void hv_stimer_stop(unsigned timer);

/* One hyperv-testdev command: 32-bit OUT of conn << 24 | cmd << 16 | vp << 8 | sint. */
void hv_testdev(unsigned cmd, unsigned vp, unsigned sint, unsigned conn);
static inline void hv_sint_route_create(unsigned vp, unsigned sint) { hv_testdev(HV_TESTDEV_SINT_ROUTE_CREATE, vp, sint, 0); }
static inline void hv_sint_route_destroy(unsigned vp, unsigned sint) { hv_testdev(HV_TESTDEV_SINT_ROUTE_DESTROY, vp, sint, 0); }
static inline void hv_sint_route_set(unsigned vp, unsigned sint) { hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, vp, sint, 0); }
static inline void hv_msg_conn_create(unsigned conn, unsigned vp, unsigned sint) { hv_testdev(HV_TESTDEV_MSG_CONN_CREATE, vp, sint, conn); }
static inline void hv_msg_conn_destroy(unsigned conn) { hv_testdev(HV_TESTDEV_MSG_CONN_DESTROY, 0, 0, conn); }
static inline void hv_evt_conn_create(unsigned conn, unsigned vp, unsigned sint) { hv_testdev(HV_TESTDEV_EVT_CONN_CREATE, vp, sint, conn); }
static inline void hv_evt_conn_destroy(unsigned conn) { hv_testdev(HV_TESTDEV_EVT_CONN_DESTROY, 0, 0, conn); }

#endif
