/*
 * Source of the 32-bit and 16-bit cross-check corpus: compiled at test time
 * with the system gcc (-m32, and -m16, which emits 32-bit operations with
 * 66h/67h prefixes for 16-bit mode) at several optimisation levels, so the
 * corpus holds the code a compiler really emits for those modes.
 * Freestanding: no library calls beyond what gcc emits itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct node { struct node *next; int32_t key; int16_t half; int8_t byte; int64_t wide; };
struct big { uint32_t words[12]; };

int32_t mul_shift(int32_t a, int32_t b) { return a * b + (a >> 3) - (int32_t)((uint32_t)b >> 5); }
int64_t div64(int64_t x, int64_t y) { return y ? x / y + x % y : 0; }
uint64_t shifts64(uint64_t a, unsigned n) { return (a << (n & 63)) ^ (a >> ((n + 7) & 63)) ^ ((int64_t)a >> 3); }
uint64_t mul64(uint64_t a, uint64_t b) { return a * b + (a >> 32) * (b & 0xffffffffu); }

int32_t list_sum(const struct node *n) {
  int32_t s = 0;
  for (; n; n = n->next) s += n->key * n->half + n->byte + (int32_t)n->wide;
  return s;
}

void copy_bytes(char *d, const char *s, size_t n) { while (n--) *d++ = *s++; }
void copy_struct(struct big *d, const struct big *s) { *d = *s; }
void clear_struct(struct big *d) { *d = (struct big){ { 0 } }; }

size_t str_len(const char *s) { const char *p = s; while (*p) p++; return (size_t)(p - s); }
int str_cmp(const char *a, const char *b) {
  while (*a && *a == *b) { a++; b++; }
  return (unsigned char)*a - (unsigned char)*b;
}

int table_switch(int x) {
  switch (x) {
  case 0: return 3; case 1: return 9; case 2: return 17; case 3: return 1;
  case 4: return 99; case 5: return -7; case 6: return 1000; case 7: return 12;
  default: return -1;
  }
}

int bit_tricks(uint32_t x) {
  return __builtin_popcount(x) + __builtin_ctz(x | 1) + __builtin_clz(x | 1) + (int)__builtin_bswap32(x);
}

int32_t var_sum(int n, ...) {
  va_list ap;
  va_start(ap, n);
  int32_t s = 0;
  while (n-- > 0) s += va_arg(ap, int32_t);
  va_end(ap);
  return s;
}

int16_t short_ops(int16_t a, uint8_t b) { return (int16_t)((int16_t)(a * b) ^ (a >> 2)); }
int8_t byte_ops(int8_t a, int8_t b) { return (int8_t)(a / (b | 1) + (a & b) - (a | b)); }
int compare_chain(int32_t a, int32_t b, uint32_t c, uint32_t d) { return (a < b) + 2 * (c > d) + 4 * (a == b) + 8 * (c <= d); }
int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

typedef int32_t (*binop)(int32_t, int32_t);
int32_t apply(binop f, int32_t a, int32_t b) { return f(a, b) + f(b, a); }

volatile uint32_t sink;
void spin(uint32_t n) { for (uint32_t k = 0; k < n; k++) sink += k; }

uint32_t checksum(const uint8_t *p, size_t n) {
  uint32_t a = 1, b = 0;
  for (size_t k = 0; k < n; k++) { a = (a + p[k]) % 65521; b = (b + a) % 65521; }
  return (b << 16) | a;
}

void bubble(int32_t *v, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j + 1 < n - i; j++)
      if (v[j] > v[j + 1]) { int32_t t = v[j]; v[j] = v[j + 1]; v[j + 1] = t; }
}

uint64_t fib64(unsigned n) { uint64_t a = 0, b = 1; while (n--) { uint64_t t = a + b; a = b; b = t; } return a; }
