/*
 * Minimal printf: %d %i %u %x %X %o %s %c %p %%, the l/ll/z length modifiers,
 * width, '0' padding and '-' left justification. printf output is written to
 * the serial port under a lock, one call at a time, so lines from different
 * CPUs do not interleave.
 */
#ifndef GUEST_PRINTF_H
#define GUEST_PRINTF_H

#include "types.h"

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vprintf(const char *fmt, va_list ap);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int puts(const char *s);
/* Write raw bytes to the console under the console lock. */
void console_write(const char *s, size_t n);

#endif
