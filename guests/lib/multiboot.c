/* MBI access: command line split into argv, modules, memory map, environment module. */
#include "multiboot.h"
#include "report.h"
#include "string.h"

#define MAX_ARGS 64
#define CMDLINE_MAX 1024

static const struct mb_info *mbi;
static char cmdline_copy[CMDLINE_MAX];
static char argv_buf[CMDLINE_MAX];
static char *argv[MAX_ARGS + 1];
static int argc;

static void split_cmdline(void)
{
	char *p = argv_buf;

	memcpy(argv_buf, cmdline_copy, sizeof(argv_buf));
	while (*p && argc < MAX_ARGS) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		argv[argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	argv[argc] = NULL;
}

void mb_init(void)
{
	if (boot_magic != MULTIBOOT_BOOTLOADER_MAGIC)
		abort_msg("bad Multiboot magic 0x%x in EAX (expected 0x%x)", boot_magic,
			  MULTIBOOT_BOOTLOADER_MAGIC);
	mbi = (const struct mb_info *)(u64)boot_mbi;
	/* The command line is read even without flag bit 2 if the pointer is set (as kvm-unit-tests does). */
	if (mbi->cmdline) {
		const char *s = (const char *)(u64)mbi->cmdline;
		size_t n = 0;

		while (s[n] && n < CMDLINE_MAX - 1)
			n++;
		memcpy(cmdline_copy, s, n);
		cmdline_copy[n] = '\0';
	}
	split_cmdline();
}

const struct mb_info *mb_info(void) { return mbi; }
const char *mb_cmdline(void) { return cmdline_copy; }
int mb_argc(void) { return argc; }
char **mb_argv(void) { return argv; }

bool has_arg(const char *word)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], word) == 0)
			return true;
	return false;
}

const char *arg_value(const char *key)
{
	size_t n = strlen(key);

	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

unsigned mb_module_count(void)
{
	return (mbi->flags & MB_INFO_MODS) ? mbi->mods_count : 0;
}

const struct mb_module *mb_module(unsigned i)
{
	if (i >= mb_module_count())
		return NULL;
	return (const struct mb_module *)(u64)mbi->mods_addr + i;
}

bool mb_mmap_next(const struct mb_mmap_entry **e)
{
	u64 start = mbi->mmap_addr, end = start + mbi->mmap_length;
	u64 next;

	if (!(mbi->flags & MB_INFO_MEM_MAP))
		return false;
	next = *e ? (u64)*e + (*e)->size + 4 : start;
	if (next + sizeof(struct mb_mmap_entry) > end)
		return false;
	*e = (const struct mb_mmap_entry *)next;
	return true;
}

const char *mb_env_value(const char *key, char *buf, size_t size)
{
	const struct mb_module *m = mb_module(0);
	size_t n = strlen(key);

	if (!m || m->mod_end <= m->mod_start)
		return NULL;
	const char *p = (const char *)(u64)m->mod_start, *end = (const char *)(u64)m->mod_end;
	while (p < end) {
		const char *eol = p;
		while (eol < end && *eol != '\n' && *eol != '\0')
			eol++;
		if ((size_t)(eol - p) > n && strncmp(p, key, n) == 0 && p[n] == '=') {
			size_t len = eol - p - n - 1;
			if (len >= size)
				len = size - 1;
			memcpy(buf, p + n + 1, len);
			buf[len] = '\0';
			return buf;
		}
		p = eol + 1;
	}
	return NULL;
}

static u64 max_u64(u64 a, u64 b) { return a > b ? a : b; }

u64 mb_highest_used(void)
{
	u64 top = (u64)mbi + sizeof(*mbi);

	if (mbi->cmdline)
		top = max_u64(top, mbi->cmdline + strlen((const char *)(u64)mbi->cmdline) + 1);
	for (unsigned i = 0; i < mb_module_count(); i++) {
		const struct mb_module *m = mb_module(i);
		top = max_u64(top, (u64)(m + 1));
		top = max_u64(top, m->mod_end);
		if (m->string)
			top = max_u64(top, m->string + strlen((const char *)(u64)m->string) + 1);
	}
	if (mbi->flags & MB_INFO_MEM_MAP)
		top = max_u64(top, (u64)mbi->mmap_addr + mbi->mmap_length);
	if ((mbi->flags & MB_INFO_LOADER_NAME) && mbi->boot_loader_name)
		top = max_u64(top, mbi->boot_loader_name +
				       strlen((const char *)(u64)mbi->boot_loader_name) + 1);
	return top;
}
