/* printf formatting into a bounded buffer, and locked console output. */
#include "printf.h"
#include "serial.h"
#include "string.h"
#include "atomic.h"
#include "percpu.h"

struct out {
	char *buf;
	size_t size;
	size_t len; /* characters produced, even those that did not fit */
};

static void out_char(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void out_padded(struct out *o, const char *s, size_t n, int width, bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;

	if (!left)
		while (fill-- > 0)
			out_char(o, pad);
	for (size_t i = 0; i < n; i++)
		out_char(o, s[i]);
	if (left)
		while (fill-- > 0)
			out_char(o, ' ');
}

static void out_number(struct out *o, u64 v, unsigned base, bool upper, bool negative,
		       int width, bool left, bool zero)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);

	if (zero && !left) {
		/* Zero padding goes between the sign and the digits. */
		if (negative) {
			out_char(o, '-');
			width--;
		}
		while (width-- > n)
			out_char(o, '0');
	} else {
		if (negative)
			tmp[n++] = '-';
	}
	char rev[24];
	for (int i = 0; i < n; i++)
		rev[i] = tmp[n - 1 - i];
	out_padded(o, rev, n, zero && !left ? 0 : width, left, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			out_char(&o, *fmt);
			continue;
		}
		fmt++;
		bool left = false, zero = false;
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				zero = true;
			else
				break;
		}
		int width = 0;
		if (*fmt == '*') {
			width = va_arg(ap, int);
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		int lng = 0;
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}

		switch (*fmt) {
		case 'd':
		case 'i': {
			s64 v = lng ? va_arg(ap, s64) : va_arg(ap, int);
			out_number(&o, v < 0 ? -(u64)v : (u64)v, 10, false, v < 0, width, left, zero);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o': {
			u64 v = lng ? va_arg(ap, u64) : va_arg(ap, unsigned int);
			unsigned base = *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16;
			out_number(&o, v, base, *fmt == 'X', false, width, left, zero);
			break;
		}
		case 'p':
			out_char(&o, '0');
			out_char(&o, 'x');
			out_number(&o, (u64)va_arg(ap, void *), 16, false, false, width, left, zero);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			out_padded(&o, s, strlen(s), width, left, ' ');
			break;
		}
		case 'c':
			out_char(&o, (char)va_arg(ap, int));
			break;
		case '%':
			out_char(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			/* Unknown conversion: print it verbatim so the mistake is visible. */
			out_char(&o, '%');
			out_char(&o, *fmt);
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static struct spinlock console_lock;

static void console_lock_acquire(void)
{
	/*
	 * While reporting an unexpected exception, the lock may be held by the
	 * very code that faulted: give up waiting after a while and print anyway.
	 */
	if (this_cpu()->in_panic) {
		for (u64 i = 0; i < (1UL << 24) && !spin_trylock(&console_lock); i++)
			pause();
		return;
	}
	spin_lock(&console_lock);
}

void console_write(const char *s, size_t n)
{
	/* Keep interrupts off while holding the lock so a handler on this CPU cannot deadlock on it. */
	bool irq = irq_save();

	console_lock_acquire();
	serial_write(s, n);
	spin_unlock(&console_lock);
	irq_restore(irq);
}

int vprintf(const char *fmt, va_list ap)
{
	char buf[512];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	console_write(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	return n;
}

int printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int puts(const char *s)
{
	return printf("%s\n", s);
}
