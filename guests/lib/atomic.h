/* Atomic operations (LOCK-prefixed instructions) and a ticket-free spinlock. */
#ifndef GUEST_ATOMIC_H
#define GUEST_ATOMIC_H

#include "x86.h"

/* LOCK XADD: add and return the previous value. */
static inline u64 atomic_fetch_add(volatile u64 *p, u64 v)
{
	asm volatile("lock xaddq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static inline u32 atomic_fetch_add32(volatile u32 *p, u32 v)
{
	asm volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static inline void atomic_inc(volatile u64 *p) { asm volatile("lock incq %0" : "+m"(*p) : : "memory"); }
static inline void atomic_dec(volatile u64 *p) { asm volatile("lock decq %0" : "+m"(*p) : : "memory"); }
static inline void atomic_inc32(volatile u32 *p) { asm volatile("lock incl %0" : "+m"(*p) : : "memory"); }

/* LOCK CMPXCHG: if *p == old store new; return the value *p held before. */
static inline u64 atomic_cmpxchg(volatile u64 *p, u64 old, u64 new)
{
	asm volatile("lock cmpxchgq %2, %1" : "+a"(old), "+m"(*p) : "r"(new) : "memory");
	return old;
}

static inline u32 atomic_cmpxchg32(volatile u32 *p, u32 old, u32 new)
{
	asm volatile("lock cmpxchgl %2, %1" : "+a"(old), "+m"(*p) : "r"(new) : "memory");
	return old;
}

static inline u64 atomic_xchg(volatile u64 *p, u64 v)
{
	asm volatile("xchgq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static inline void atomic_or(volatile u64 *p, u64 v) { asm volatile("lock orq %1, %0" : "+m"(*p) : "r"(v) : "memory"); }

static inline u64 atomic_read(const volatile u64 *p) { return *p; }
static inline void atomic_set(volatile u64 *p, u64 v) { *p = v; }

/* A test-and-test-and-set lock built on CMPXCHG. */
struct spinlock {
	volatile u32 v;
};

static inline bool spin_trylock(struct spinlock *l)
{
	return atomic_cmpxchg32(&l->v, 0, 1) == 0;
}

static inline void spin_lock(struct spinlock *l)
{
	while (!spin_trylock(l))
		while (l->v)
			pause();
}

static inline void spin_unlock(struct spinlock *l)
{
	barrier();
	l->v = 0;
}

#endif
