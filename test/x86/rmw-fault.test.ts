// A read-modify-write instruction reads its memory operand with write intent
// (SDM vol. 3 §4.7): on a page it may read but not write, it faults as a
// write before anything changes (no flags, no register, no memory), both
// for paging (#PF with W in the error code) and for memory attributes
// (a memory-fault exit with the WRITE flag, kvm-api-facts §2.5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVM_MEMORY_EXIT_FLAG_WRITE } from '../../src/kvm/exits.js';
import { HvMachine, P, U } from '../kvm/hypercall-machine.js';

const VA = 0x600000, PA = 0x300000, CODE = 0x170000;

const FORMS: [string, string][] = [
  ['add [rsi], rdx', 'add qword ptr [rsi], rdx'],
  ['inc dword [rsi]', 'inc dword ptr [rsi]'],
  ['neg byte [rsi]', 'neg byte ptr [rsi]'],
  ['shl qword [rsi], 3', 'shl qword ptr [rsi], 3'],
  ['shld [rsi], rdx, 4', 'shld qword ptr [rsi], rdx, 4'],
  ['xadd [rsi], rdx', 'xadd qword ptr [rsi], rdx'],
  ['cmpxchg [rsi], rdx', 'cmpxchg qword ptr [rsi], rdx'],
  ['xchg [rsi], rdx', 'xchg qword ptr [rsi], rdx'],
  ['bts [rsi], 5', 'bts qword ptr [rsi], 5'],
  ['lock or [rsi], edx', 'lock or dword ptr [rsi], edx'],
];

for (const [name, insn] of FORMS) {
  test(`${name} on a read-only page: a write memory fault, flags and registers unchanged`, () => {
    const m = new HvMachine({ flags: [], trace: false });
    const v = m.vcpu(0);
    m.map(VA, PA, P | U | 2n);
    m.vm.mem.write64(PA, 0x1234n);
    m.vm.setMemoryAttributes({ address: PA, size: 0x1000, attributes: 6, flags: 0 }); // NW|NX: read-only
    const L = m.asm(`.code64
      mov rsi, ${VA}
      mov rdx, 0x8000000000000001
      mov rax, 0x77
      push 0x0a97
      popfq
    fault:
      ${insn}
      hlt`, CODE);
    m.jump(v, CODE);
    const e = m.runToExit(v);
    assert.equal(e.reason, 'memory-fault');
    if (e.reason !== 'memory-fault') return;
    assert.equal(e.flags & 7, KVM_MEMORY_EXIT_FLAG_WRITE, 'a write fault');
    const r = v.getRegs();
    assert.equal(r.rip, BigInt(L.fault));
    assert.equal(r.rflags, 0xa97n, 'flags as before the instruction');
    assert.deepEqual([r.rdx, r.rax], [0x8000000000000001n, 0x77n]);
    assert.equal(m.vm.mem.read64(PA), 0x1234n);
  });
}

test('add [rsi], rdx on a read-only PTE: #PF with error code P|W, flags unchanged', () => {
  const m = new HvMachine({ flags: [], trace: false });
  const v = m.vcpu(0);
  m.map(VA, PA, P);
  const L = m.asm(`.code64
    mov rsi, ${VA}
    push 0x0a97
    popfq
  fault:
    add qword ptr [rsi], rdx
    hlt`, CODE);
  m.jump(v, CODE);
  m.runToExit(v);
  assert.equal(m.stubVector(v), 14, '#PF');
  assert.equal(v.getSregs().cr2, BigInt(VA));
  // HvMachine's stub frame: the error code is on the stack under RIP (see hypercall-machine.ts).
  const r = v.getRegs();
  const frame = Number(r.rsp);
  assert.equal(m.vm.mem.read64(frame) & 7n, 3n, 'error code: present, write, supervisor');
  assert.equal(m.vm.mem.read64(frame + 8), BigInt(L.fault));
  assert.equal(m.vm.mem.read64(frame + 24) & 0xfffn, 0xa97n, 'RFLAGS in the frame as before the instruction');
});
