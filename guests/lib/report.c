/* PASS/FAIL/SKIP/INFO lines, the SUMMARY line and the exit port. */
#include "report.h"
#include "printf.h"
#include "atomic.h"
#include "x86.h"

static volatile u32 tests, failures, skipped;
static const char *prefix;

void report_prefix(const char *p)
{
	prefix = p;
}

unsigned report_failures(void)
{
	return failures;
}

/* Format "<kind>: [prefix: ]<message>\n" and write it in one console write. */
static void line(const char *kind, const char *fmt, va_list ap)
{
	char buf[512];
	int n = prefix ? snprintf(buf, sizeof(buf), "%s: %s: ", kind, prefix)
		       : snprintf(buf, sizeof(buf), "%s: ", kind);

	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	console_write(buf, n);
}

bool report(bool cond, const char *fmt, ...)
{
	va_list ap;

	atomic_inc32(&tests);
	if (!cond)
		atomic_inc32(&failures);
	va_start(ap, fmt);
	line(cond ? "PASS" : "FAIL", fmt, ap);
	va_end(ap);
	return cond;
}

void report_skip(const char *fmt, ...)
{
	va_list ap;

	atomic_inc32(&tests);
	atomic_inc32(&skipped);
	va_start(ap, fmt);
	line("SKIP", fmt, ap);
	va_end(ap);
}

void report_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("INFO", fmt, ap);
	va_end(ap);
}

__noreturn void report_summary(void)
{
	printf("SUMMARY: %u tests, %u failures, %u skipped\n", tests, failures, skipped);
	if (failures)
		exit(EXIT_FAIL);
	if (tests && skipped == tests)
		exit(EXIT_ALL_SKIPPED);
	exit(EXIT_PASS);
}

__noreturn void exit(int code)
{
	outl(code, DEBUG_EXIT_PORT);
	/* Still running: there is no isa-debug-exit device. Say so and stop this CPU. */
	printf("--- exit code %d (no debug-exit device at port 0xf4) ---\n", code);
	for (;;) {
		cli();
		hlt();
	}
}

__noreturn void abort_msg(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("ABORT: %s\n", buf);
	exit(EXIT_ABORT);
}

__noreturn void abort(void)
{
	abort_msg("abort() called");
}
