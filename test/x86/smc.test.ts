/**
 * Self-modifying code (DESIGN §3.2): every write path must invalidate decoded
 * code, including writes through the fast write cache to a page that was
 * cached for writing before it first held code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CODE, TestMachine, reg } from './helpers/test-machine.js';
import { RAX } from '../../src/x86/regs.js';

test('code written, run, rewritten through the fast write path and run again: the new code runs', () => {
  const m = new TestMachine();
  m.enterLong64();
  const BUF = 0x50000; // identity-mapped data page that will hold generated code
  // Generate "mov eax, 1; ret" in BUF, call it; rewrite the immediate to 2 with the same store
  // instruction (so its page is in the fast write cache); call it again.
  const L = m.asm(`.code64
    mov rdi, ${BUF}
    mov dword ptr [rdi], 0x000001b8      # b8 01 00 00 00: mov eax, 1
    mov byte ptr [rdi + 4], 0
    mov byte ptr [rdi + 5], 0xc3         # ret
    mov dword ptr [rdi + 8], 0           # another write to the same page: now fast-cached for writes
    call rdi
    mov ebx, eax
    mov dword ptr [rdi], 0x000002b8      # mov eax, 2 (through the fast write cache)
    call rdi
    hlt`, CODE);
  void L;
  m.runToHalt();
  assert.equal(reg(m.cpu, 3), 1n, 'first call ran the first code');
  assert.equal(reg(m.cpu, RAX), 2n, 'second call ran the rewritten code, not the stale decoded block');
});
