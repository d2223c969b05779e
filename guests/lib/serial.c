/* 16550 driver: program 115200 8N1 once, then poll LSR.THRE (bit 5) before every byte. */
#include "serial.h"
#include "x86.h"

#define UART_THR 0
#define UART_DLL 0
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LCR_DLAB 0x80
#define UART_LSR_THRE 0x20

static volatile bool serial_ready;

static void serial_init(void)
{
	outb(0x00, SERIAL_PORT + UART_IER);            /* no interrupts */
	outb(UART_LCR_DLAB, SERIAL_PORT + UART_LCR);   /* divisor latch on */
	outb(0x01, SERIAL_PORT + UART_DLL);            /* divisor 1: 115200 baud */
	outb(0x00, SERIAL_PORT + UART_DLM);
	outb(0x03, SERIAL_PORT + UART_LCR);            /* 8N1, latch off */
	outb(0x00, SERIAL_PORT + UART_FCR);            /* FIFO off: one byte at a time */
	outb(0x03, SERIAL_PORT + UART_MCR);            /* DTR | RTS */
	serial_ready = true;
}

void serial_putc(char c)
{
	if (!serial_ready)
		serial_init();
	while (!(inb(SERIAL_PORT + UART_LSR) & UART_LSR_THRE))
		pause();
	outb(c, SERIAL_PORT + UART_THR);
}

void serial_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}
