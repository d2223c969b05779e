/**
 * Exceptions a user-mode snippet can raise, and the state at the fault:
 * #UD (UD2, opcodes invalid in 64-bit mode, misplaced LOCK), #DE, #GP
 * (privileged instructions at CPL 3, non-canonical addresses, misaligned SSE
 * and CMPXCHG16B operands), #SS (non-canonical stack address), #PF (the guard
 * pages around the data window, including a REP STOS that runs into one part-way),
 * #BP (INT3, a trap: RIP is after it).
 */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES } from '../flag-masks.js';
import { RAX, RBP, RCX, RDI, RSP } from '../regs.js';
import { DATA_BASE } from '../snippet-contract.js';
import { form, type Form } from './form.js';

/** Canonical in neither 48- nor 57-bit linear addressing. */
const NON_CANONICAL = 0x4000_0000_1000_0000n;

function fault(id: string, gen: (b: CaseBuilder) => void, weight = 0.34, requires?: readonly string[]): Form {
  return form(`faults/${id}`, (b) => {
    b.setDefinedFlags(FLAG_RULES.none.defined);
    gen(b);
  }, requires === undefined ? { weight } : { weight, requires });
}

const INVALID_IN_64: ReadonlyArray<[string, number[]]> = [
  ['push es (06)', [0x06]], ['pop es (07)', [0x07]], ['push cs (0E)', [0x0e]], ['daa (27)', [0x27]], ['das (2F)', [0x2f]],
  ['aaa (37)', [0x37]], ['aas (3F)', [0x3f]], ['pusha (60)', [0x60]], ['popa (61)', [0x61]], ['into (CE)', [0xce]],
  ['aam (D4)', [0xd4, 0x0a]], ['aad (D5)', [0xd5, 0x0a]], ['jmp far ptr16:32 (EA)', [0xea, 0, 0, 0, 0, 0, 0]], ['salc (D6)', [0xd6]],
];

const PRIVILEGED: ReadonlyArray<[string, number[]]> = [
  ['hlt (F4)', [0xf4]], ['cli (FA)', [0xfa]], ['sti (FB)', [0xfb]], ['in al, dx (EC)', [0xec]], ['out dx, al (EE)', [0xee]],
  ['in eax, imm8 (E5)', [0xe5, 0x80]], ['mov cr0, rax (0F 22 C0)', [0x0f, 0x22, 0xc0]], ['mov rax, cr3 (0F 20 D8)', [0x0f, 0x20, 0xd8]],
  ['mov dr7, rax (0F 23 F8)', [0x0f, 0x23, 0xf8]], ['lgdt [rax] (0F 01 10)', [0x0f, 0x01, 0x10]], ['lidt [rax] (0F 01 18)', [0x0f, 0x01, 0x18]],
  ['wbinvd (0F 09)', [0x0f, 0x09]], ['invd (0F 08)', [0x0f, 0x08]], ['rdmsr (0F 32)', [0x0f, 0x32]], ['wrmsr (0F 30)', [0x0f, 0x30]],
  ['clts (0F 06)', [0x0f, 0x06]], ['invlpg [rax] (0F 01 38)', [0x0f, 0x01, 0x38]], ['swapgs (0F 01 F8)', [0x0f, 0x01, 0xf8]],
  ['lmsw ax (0F 01 F0)', [0x0f, 0x01, 0xf0]], ['ltr ax (0F 00 D8)', [0x0f, 0x00, 0xd8]], ['lldt ax (0F 00 D0)', [0x0f, 0x00, 0xd0]],
];

export const faultForms: readonly Form[] = [
  fault('ud2 (0F 0B) -> #UD', (b) => b.emit('ud2')),
  ...INVALID_IN_64.map(([name, bytes]) => fault(`${name} invalid in 64-bit mode -> #UD`, (b) => b.bytes(...bytes))),
  fault('lock on a register destination (F0 01 D8) -> #UD', (b) => b.bytes(0xf0, 0x01, 0xd8)),
  fault('lock mov [rbx], eax (F0 89 03) -> #UD', (b) => {
    b.reserve(3, DATA_BASE + 0x100n);
    b.bytes(0xf0, 0x89, 0x03);
  }),
  fault('lock nop (F0 90) -> #UD', (b) => b.bytes(0xf0, 0x90)),
  ...PRIVILEGED.map(([name, bytes]) => fault(`${name} at CPL 3 -> #GP`, (b) => {
    b.reserve(RAX, DATA_BASE + 0x200n);
    b.bytes(...bytes);
  })),
  fault('div by zero -> #DE (state unchanged)', (b) => {
    b.reserve(RCX, b.rng.bits(64) & ~0xffffffffn);
    b.emit('div ecx');
  }),
  fault('int3 (CC) -> #BP after the instruction', (b) => b.emit('int3')),
  fault('load from the guard page above the window -> #PF', (b) => {
    b.emit(`mov rax, ${b.memOp(8, { address: DATA_BASE + 4096n + BigInt(b.rng.int(64)) }).text}`);
  }),
  fault('store across the window end -> #PF (nothing written)', (b) => {
    b.emit(`mov ${b.memOp(8, { address: DATA_BASE + 4096n - BigInt(b.rng.range(1, 7)) }).text}, rcx`);
  }),
  fault('store below the window -> #PF', (b) => {
    b.emit(`mov ${b.memOp(4, { address: DATA_BASE - 4n - BigInt(b.rng.int(32)) }).text}, ecx`);
  }),
  fault('push with RSP at the window start -> #PF', (b) => {
    b.reserve(RSP, DATA_BASE + BigInt(b.rng.int(8)));
    b.emit('push rax');
  }),
  fault('load from a non-canonical address -> #GP', (b) => {
    b.emit(`mov rax, ${b.memOp(8, { address: NON_CANONICAL + BigInt(b.rng.int(4096)), exclude: [RSP, RBP] }).text}`);
  }),
  fault('non-canonical RBP-based address -> #SS', (b) => {
    b.reserve(RBP, NON_CANONICAL);
    b.emit('mov rax, qword ptr [rbp + 8]');
  }),
  fault('push with a non-canonical RSP -> #SS', (b) => {
    b.reserve(RSP, NON_CANONICAL);
    b.emit('push rax');
  }),
  fault('movdqa from a misaligned address -> #GP', (b) => {
    b.emit(`movdqa xmm1, ${b.memOp(16, { offset: b.rng.range(1, 200) * 16 + b.rng.range(1, 15) }).text}`);
  }),
  fault('pxor with a misaligned memory operand -> #GP', (b) => {
    b.emit(`pxor xmm2, ${b.memOp(16, { offset: b.rng.range(1, 200) * 16 + 8 }).text}`);
  }, 0.2),
  fault('cmpxchg16b on a misaligned address -> #GP', (b) => {
    b.emit(`lock cmpxchg16b ${b.memOp(16, { offset: b.rng.range(1, 200) * 16 + 8, exclude: [0, 1, 2, 3] }).text}`);
  }, 0.34, ['cx16']),
  // The fault is taken on the first element that crosses into the guard page; the elements
  // before it are stored and RCX/RDI reflect exactly that progress (SDM REP: "the registers are
  // updated ... so that the instruction can be restarted").
  fault('rep stosb running into the guard page -> #PF part-way', (b) => {
    b.reserve(RDI, DATA_BASE + 4096n - BigInt(b.rng.range(1, 40)));
    b.reserve(RCX, BigInt(b.rng.range(41, 100)));
    b.rflags &= ~0x400;
    b.emit(`rep stos${b.cycle(['b', 'w', 'd', 'q'])}`);
  }, 1),
];
