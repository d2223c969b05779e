/* The few libc string functions the library and the compiler need. */
#ifndef GUEST_STRING_H
#define GUEST_STRING_H

#include "types.h"

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);
bool str_starts_with(const char *s, const char *prefix);
bool str_ends_with(const char *s, const char *suffix);
/* Parse an unsigned decimal or 0x-prefixed hex number; *end gets the first unparsed char. */
u64 strtou64(const char *s, const char **end);

#endif
