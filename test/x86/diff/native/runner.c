/*
 * Native side of the x86 differential test: runs batches of instruction
 * snippets on the host CPU and reports the resulting state.
 *
 * Protocol (all little-endian, fixed-size records; see native-runner.ts):
 *   stdout starts with a header: "VSMDIFF1", u32 input record size, u32 output record size.
 *   stdin: input records until EOF:
 *     u32 code_len, u32 0, u8 code[248], u64 gpr[16], u64 rflags, u8 mem[4096]
 *   stdout: one output record per input record, in order:
 *     i32 vector (-1 none, -2 timeout), u32 signal, u64 gpr[16], u64 rflags,
 *     u64 rip, u64 error_code, u64 fault_address, u8 mem[4096]
 *
 * Isolation: the data window (DATA_BASE, one page, between two PROT_NONE guard
 * pages) and the code page are rewritten for every case; the trampoline loads
 * all 16 GPRs and RFLAGS from the state block and never uses the snippet's
 * RSP, so RSP may hold any value. Faults arrive as signals on an alternate
 * stack; the handler records the register state at the fault from the
 * ucontext and siglongjmps back to the batch loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#define DATA_BASE 0x10000000UL
#define DATA_SIZE 4096
#define CODE_BASE 0x20000000UL
#define CODE_SIZE 4096
#define STATE_BASE 0x30000000UL
#define MAX_CODE 248

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

struct in_record {
  uint32_t code_len;
  uint32_t zero;
  uint8_t code[MAX_CODE];
  uint64_t gpr[16];
  uint64_t rflags;
  uint8_t mem[DATA_SIZE];
} __attribute__((packed));

struct out_record {
  int32_t vector;
  uint32_t signal;
  uint64_t gpr[16];
  uint64_t rflags;
  uint64_t rip;
  uint64_t error_code;
  uint64_t fault_address;
  uint8_t mem[DATA_SIZE];
} __attribute__((packed));

/* Offsets are hard-coded in trampoline.S. */
struct state_block {
  uint64_t in_gpr[16];    /* 0 */
  uint64_t in_rflags;     /* 128 */
  uint64_t pad0[15];
  uint64_t out_gpr[16];   /* 256 */
  uint64_t out_rflags;    /* 384 */
  uint64_t pad1[15];
  uint64_t host_rsp;      /* 512 */
  uint64_t code_ptr;      /* 520 */
};

/* The only RFLAGS bits a case may set: CF PF AF ZF SF DF OF, plus reserved bit 1. */
#define CASE_RFLAGS_MASK 0xCD5UL

extern void dt_enter(void);
extern void dt_return(void);

static sigjmp_buf case_jmp;
static volatile sig_atomic_t in_case;
static struct out_record fault_state;

static void die(const char *what) {
  fprintf(stderr, "vsmdiff-runner: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void *map_fixed(unsigned long addr, int prot) {
  void *p = mmap((void *)addr, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) die("mmap of a fixed test page failed");
  if ((unsigned long)p != addr) {
    fprintf(stderr, "vsmdiff-runner: the kernel did not map 0x%lx at the requested address\n", addr);
    exit(2);
  }
  return p;
}

/*
 * The exception vector comes from the trap number Linux stores in the
 * signal context (REG_TRAPNO); it is exact for #DE(0) #DB(1) #BP(3) #UD(6)
 * #SS(12) #GP(13) #PF(14) #MF(16) #AC(17) #XM(19). If it is ever missing the
 * signal number gives a fallback guess.
 */
static int vector_of(int sig, const siginfo_t *si, long trapno) {
  if (trapno >= 0 && trapno < 32) return (int)trapno;
  switch (sig) {
    case SIGFPE: return 0;
    case SIGTRAP: return 3;
    case SIGILL: return 6;
    case SIGBUS: return 12;
    case SIGSEGV: return si->si_code == SI_KERNEL ? 13 : 14;
  }
  return -3;
}

static void on_signal(int sig, siginfo_t *si, void *ctx) {
  if (!in_case) {
    if (sig == SIGALRM) return;
    /* A fault in the harness itself: die with the default action. */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  const greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
  static const int order[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
  for (int i = 0; i < 16; i++) fault_state.gpr[i] = (uint64_t)g[order[i]];
  fault_state.rflags = (uint64_t)g[REG_EFL];
  fault_state.rip = (uint64_t)g[REG_RIP];
  fault_state.error_code = (uint64_t)g[REG_ERR];
  fault_state.fault_address = (uint64_t)si->si_addr;
  fault_state.signal = (uint32_t)sig;
  fault_state.vector = sig == SIGALRM ? -2 : vector_of(sig, si, (long)g[REG_TRAPNO]);
  in_case = 0;
  siglongjmp(case_jmp, 1);
}

static void install_handlers(void) {
  static uint8_t alt_stack[64 * 1024];
  stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) die("sigaltstack");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  /* SA_NODEFER: siglongjmp leaves the handler without restoring the mask. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGALRM};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, NULL) != 0) die("sigaction");
}

static void set_timer(long usec) {
  struct itimerval t = {{0, 0}, {usec / 1000000, usec % 1000000}};
  setitimer(ITIMER_REAL, &t, NULL);
}

static int read_full(void *buf, size_t len) {
  size_t got = fread(buf, 1, len, stdin);
  if (got == len) return 1;
  if (got == 0 && feof(stdin)) return 0;
  fprintf(stderr, "vsmdiff-runner: truncated input record (%zu of %zu bytes)\n", got, len);
  exit(2);
}

int main(void) {
  static struct in_record in;
  static struct out_record out;
  map_fixed(DATA_BASE - 4096, PROT_NONE);
  map_fixed(DATA_BASE + DATA_SIZE, PROT_NONE);
  uint8_t *data = map_fixed(DATA_BASE, PROT_READ | PROT_WRITE);
  uint8_t *code = map_fixed(CODE_BASE, PROT_READ | PROT_WRITE | PROT_EXEC);
  struct state_block *sb = map_fixed(STATE_BASE, PROT_READ | PROT_WRITE);
  install_handlers();
  setvbuf(stdout, NULL, _IOFBF, 1 << 20);

  fwrite("VSMDIFF1", 1, 8, stdout);
  uint32_t sizes[2] = {sizeof in, sizeof out};
  fwrite(sizes, 4, 2, stdout);

  while (read_full(&in, sizeof in)) {
    if (in.code_len > MAX_CODE - 14) {
      fprintf(stderr, "vsmdiff-runner: snippet of %u bytes is too long\n", in.code_len);
      return 2;
    }
    memset(code, 0xCC, CODE_SIZE); /* int3: a stray jump traps as #BP */
    memcpy(code, in.code, in.code_len);
    /* jmp qword ptr [rip+0]; .quad dt_return: leaves every register and flag alone. */
    uint8_t *tail = code + in.code_len;
    const uint8_t jmp_rip0[6] = {0xFF, 0x25, 0, 0, 0, 0};
    memcpy(tail, jmp_rip0, 6);
    uint64_t ret = (uint64_t)(uintptr_t)dt_return;
    memcpy(tail + 6, &ret, 8);
    memcpy(data, in.mem, DATA_SIZE);
    memcpy(sb->in_gpr, in.gpr, sizeof in.gpr);
    sb->in_rflags = (in.rflags & CASE_RFLAGS_MASK) | 2;
    sb->code_ptr = CODE_BASE;

    set_timer(1000000);
    in_case = 1;
    if (sigsetjmp(case_jmp, 0) == 0) {
      dt_enter();
      in_case = 0;
      set_timer(0);
      out.vector = -1;
      out.signal = 0;
      memcpy(out.gpr, sb->out_gpr, sizeof out.gpr);
      out.rflags = sb->out_rflags;
      out.rip = CODE_BASE + in.code_len;
      out.error_code = 0;
      out.fault_address = 0;
    } else {
      set_timer(0);
      memcpy(&out, &fault_state, offsetof(struct out_record, mem));
    }
    memcpy(out.mem, data, DATA_SIZE);
    if (fwrite(&out, sizeof out, 1, stdout) != 1) die("write of a result record");
  }
  if (fflush(stdout) != 0) die("flush of results");
  return 0;
}
