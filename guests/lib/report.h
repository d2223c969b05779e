/*
 * Test result lines on the serial console, one per check:
 *   PASS: <text>      FAIL: <text>      SKIP: <text>      INFO: <text>
 * and at the end
 *   SUMMARY: <N> tests, <F> failures, <S> skipped
 * N counts passes, failures and skips. The guest then writes its exit code to
 * the isa-debug-exit port 0xF4 (32-bit OUT): 0 all passed, 1 at least one
 * failure, 38 everything skipped, 63 abort. QEMU exits with (code << 1) | 1.
 */
#ifndef GUEST_REPORT_H
#define GUEST_REPORT_H

#include "types.h"

#define EXIT_PASS 0
#define EXIT_FAIL 1
#define EXIT_ALL_SKIPPED 38
#define EXIT_ABORT 63
#define DEBUG_EXIT_PORT 0xf4

/* Print PASS or FAIL with the message; returns cond. Safe on any CPU. */
bool report(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Text put before every following message as "<prefix>: " (NULL clears it). */
void report_prefix(const char *prefix);
unsigned report_failures(void);
/* Print the SUMMARY line and exit with the code described above. */
__noreturn void report_summary(void);

/* Write the code to port 0xF4; if the VM keeps running (no such device), halt. */
__noreturn void exit(int code);
/* Exit with 63 after printing the reason. */
__noreturn void abort_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__noreturn void abort(void);

#endif
