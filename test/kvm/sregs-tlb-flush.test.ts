// KVM_SET_SREGS flushes the guest TLB only when KVM does: x86.c
// __set_sregs_common sets mmu_reset_needed when CR3, EFER, CR0 or CR4 differs
// from the vCPU's value, or when PAE paging outside long mode reloads the
// PDPTEs; __set_sregs then resets the MMU and requests KVM_REQ_TLB_FLUSH_GUEST.
// Anything else (CR2, CR8, segments, tables, the same paging context) keeps
// the cached translations, which a guest can observe (DESIGN §3.3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { KvmSregs } from '../../src/kvm/vcpu-regs.js';
import { enterFlat32, enterLong64, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const PD = 0x22000; // enterLong64's page directory (tables at 0x20000)
const P = 1n, W = 2n, PS = 0x80n, A = 0x20n, D = 0x40n;

/** 64-bit mode; VA 2 MiB..4 MiB maps PA 2 MiB, where [0x205000] = 0x11 and PA 0x5000 = 0x22. */
function setup(): Vcpu {
  const v = new Vm({ memorySize: 4 * MiB }).createVcpu(0);
  enterLong64(v, 0x1000);
  v.vm.mem.write64(PD + 8, 0x200000n | P | W | PS | A | D);
  v.vm.mem.write32(0x205000, 0x11);
  v.vm.mem.write32(0x005000, 0x22);
  writeCode(v, 0x1000, [0x8b, 0x04, 0x25, 0x00, 0x50, 0x20, 0x00, 0xf4]); // mov eax, [0x205000]; hlt
  return v;
}

/** Runs the load again from RIP 0x1000 and returns what it read. */
function load(v: Vcpu): bigint {
  v.setRegs({ ...v.getRegs(), rip: 0x1000n, rax: 0n });
  v.setMpState(0); // RUNNABLE again after the HLT
  assert.equal(v.run(10).reason, 'hlt');
  return v.getRegs().rax;
}

/** Caches the translation of VA 0x205000, then remaps it to PA 0x5000 behind the TLB's back. */
function staleMapping(): Vcpu {
  const v = setup();
  assert.equal(load(v), 0x11n);
  v.vm.mem.write64(PD + 8, 0n | P | W | PS | A | D);
  assert.equal(load(v), 0x11n, 'the TLB still holds the old translation');
  return v;
}

test('the same paging context with a new CR2, CR8, FS base and IDT: no flush, the stale translation stays', () => {
  const v = staleMapping();
  const s = v.getSregs();
  v.setSregs({ ...s, cr2: 0xdead_b000n, cr8: 3n, fs: { ...s.fs, base: 0x1234n }, idt: { base: 0x9000n, limit: 0xfff } });
  assert.deepEqual([v.getSregs().cr2, v.getSregs().cr8], [0xdead_b000n, 3n]);
  assert.equal(load(v), 0x11n);
  v.setSregs(v.getSregs()); // writing back the same values, CR3 included, is no flush either (KVM compares values)
  assert.equal(load(v), 0x11n);
});

const changes: [string, (s: KvmSregs) => KvmSregs][] = [
  ['CR3', (s) => ({ ...s, cr3: s.cr3 | 0x8n })],           // PWT: another CR3 value, same tables
  ['CR4', (s) => ({ ...s, cr4: s.cr4 | (1n << 7n) })],     // PGE
  ['CR0', (s) => ({ ...s, cr0: s.cr0 | (1n << 16n) })],    // WP
  ['EFER', (s) => ({ ...s, efer: s.efer | (1n << 11n) })], // NXE
];
for (const [name, change] of changes) {
  test(`a different ${name} value flushes the TLB: the new mapping is used`, () => {
    const v = staleMapping();
    v.setSregs(change(v.getSregs()));
    assert.equal(load(v), 0x22n);
  });
}

test('PAE paging outside long mode: every KVM_SET_SREGS reloads the PDPTEs and flushes, as KVM does', () => {
  const v = new Vm({ memorySize: 4 * MiB }).createVcpu(0);
  const mem = v.vm.mem;
  mem.write64(0x20000, 0x21000n | P);                    // PDPTE 0 -> PD
  mem.write64(0x21000, 0n | P | W | PS | A | D);          // 0..2 MiB 1:1
  mem.write64(0x21008, 0x200000n | P | W | PS | A | D);   // 2..4 MiB 1:1
  mem.write32(0x205000, 0x11); mem.write32(0x005000, 0x22);
  writeCode(v, 0x1000, [0xa1, 0x00, 0x50, 0x20, 0x00, 0xf4]); // mov eax, [0x205000]; hlt
  enterFlat32(v, 0x1000);
  const s = v.getSregs();
  v.setSregs({ ...s, cr0: s.cr0 | (1n << 31n), cr3: 0x20000n, cr4: 1n << 5n });
  assert.equal(load(v), 0x11n);
  mem.write64(0x21008, 0n | P | W | PS | A | D);
  assert.equal(load(v), 0x11n);
  v.setSregs({ ...v.getSregs(), cr2: 0x1000n });
  assert.equal(load(v), 0x22n);
});
