/* Everything a test guest needs: include this one header. See guests/README.md. */
#ifndef GUEST_LIBGUEST_H
#define GUEST_LIBGUEST_H

#include "types.h"
#include "layout.h"
#include "x86.h"
#include "atomic.h"
#include "string.h"
#include "printf.h"
#include "report.h"
#include "multiboot.h"
#include "percpu.h"
#include "desc.h"
#include "exceptions.h"
#include "alloc.h"
#include "vm.h"
#include "apic.h"
#include "fwcfg.h"
#include "smp.h"

/* Provided by each test guest. Called on the BSP with interrupts enabled. */
int main(int argc, char **argv);

#endif
