/* COM1 16550 UART output (polled, initialised lazily on first use). */
#ifndef GUEST_SERIAL_H
#define GUEST_SERIAL_H

#include "types.h"

#define SERIAL_PORT 0x3f8

void serial_putc(char c);
/* Write n bytes; each '\n' goes out as "\r\n". Not locked: see console_write. */
void serial_write(const char *s, size_t n);

#endif
