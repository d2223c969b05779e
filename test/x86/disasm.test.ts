/**
 * The trace/crash disassembler (src/x86/disasm.ts, DESIGN §3.8): Intel syntax
 * through iced-x86, loaded on first use. Expected texts are the Intel-syntax
 * forms of the encodings (SDM vol. 2 opcode tables) in iced's XED-style
 * formatter with 0x-prefixed lower-case hex (numbers below 10 in decimal, iced's default).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { disassemble, disassembleLines, disassembleListing, DisasmInputError } from '../../src/x86/disasm.js';

const b = (hex: string): Uint8Array => Uint8Array.from(hex.split(' ').map((x) => parseInt(x, 16)));

test('64-bit: one instruction, memory operand and RIP-relative target resolved against rip', () => {
  assert.equal(disassemble(b('48 8b 44 24 08'), 64), 'mov rax, [rsp+8]');
  // RIP-relative: next RIP (0xffffffff81000007) + disp32 0x10.
  assert.equal(disassemble(b('48 8b 05 10 00 00 00'), 64, 0xffffffff81000000n), 'mov rax, [0xffffffff81000017]');
  assert.equal(disassemble(b('f3 48 ab'), 64), 'rep stosq [rdi]');
});

test('16- and 32-bit modes decode with their own operand and address sizes', () => {
  assert.equal(disassemble(b('8b 46 fc'), 16), 'mov ax, [bp-4]');
  assert.equal(disassemble(b('66 b8 78 56 34 12'), 16), 'mov eax, 0x12345678');
  assert.equal(disassemble(b('0f 22 d8'), 32), 'mov cr3, eax');
});

test('several instructions give one line each; invalid bytes print as (bad)', () => {
  assert.equal(disassemble(b('fa 0f 0b 06'), 64), 'cli\nud2\n(bad)'); // 06 (push es) is invalid in 64-bit mode
  const lines = disassembleLines(b('55 c3'), 64, 0x1000);
  assert.deepEqual(lines.map((l) => [l.rip, [...l.bytes], l.text, l.valid]),
    [[0x1000n, [0x55], 'push rbp', true], [0x1001n, [0xc3], 'ret', true]]);
  assert.deepEqual(disassembleLines(b('48'), 64).map((l) => l.valid), [false]); // a lone REX prefix: truncated
  assert.equal(disassemble(new Uint8Array(0), 64), '');
});

test('listing for crash reports: address, bytes, text', () => {
  assert.equal(disassembleListing(b('e8 00 00 00 00 c3'), 64, 0x400000n),
    `0000000000400000  ${'e8 00 00 00 00'.padEnd(30)} call 0x400005\n0000000000400005  ${'c3'.padEnd(30)} ret`);
  assert.equal(disassembleListing(b('fa'), 16, 0x7000), `00007000  ${'fa'.padEnd(30)} cli`);
});

test('bad arguments get a DisasmInputError with one sentence', () => {
  assert.throws(() => disassemble(b('90'), 8 as never), (e) => e instanceof DisasmInputError && /code size 8/.test(e.message));
  assert.throws(() => disassemble(b('90'), 64, -1), DisasmInputError);
  assert.throws(() => disassemble(b('90'), 64, 1n << 64n), DisasmInputError);
  assert.throws(() => disassemble([0x90] as never, 64), DisasmInputError);
});

test('iced-x86 is loaded on the first disassembly, not when the module is imported (DESIGN §3.8: never on the hot path)', () => {
  // A fresh process: import disasm.js, look for iced-x86 in the CommonJS module cache, disassemble, look again.
  const url = new URL('../../src/x86/disasm.js', import.meta.url).href;
  const script = `
    import { createRequire } from 'node:module';
    const m = await import(${JSON.stringify(url)});
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('iced_x86'));
    const before = loaded();
    m.disassemble(new Uint8Array([0x90]), 64);
    console.log(JSON.stringify([before, loaded()]));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [false, true]);
});
