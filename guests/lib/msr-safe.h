/*
 * RDMSR/WRMSR that may fault: the access runs under expect_exception(), so a
 * #GP comes back as a vector instead of ending the guest. Used to check which
 * MSRs exist and which values they refuse.
 */
#ifndef GUEST_MSR_SAFE_H
#define GUEST_MSR_SAFE_H

#include "types.h"

/* NO_EXCEPTION (exceptions.h) on success with *value set, else the vector raised (normally GP_VECTOR). */
unsigned rdmsr_safe(u32 index, u64 *value);
unsigned wrmsr_safe(u32 index, u64 value);

#endif
