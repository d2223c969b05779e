// HV_INITIAL_VP_CONTEXT (tlfs-vsm-facts §2.13): built here by hand from the
// offset table, loaded into a fresh Vcpu, which then runs from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { HvStatus } from '../../src/spec/tlfs.js';
import { decodeInitialVpContext, loadInitialVpContext } from '../../src/vmm/vsm/initial-vp-context.js';
import { readPrivateMsrs } from '../../src/vmm/vsm/cpu-state-adapter.js';
import { savePrivate } from '../../src/vmm/vsm/vtl-state.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';

function le(v: bigint | number, n: number): number[] {
  let x = BigInt(v);
  return Array.from({ length: n }, () => { const b = Number(x & 0xffn); x >>= 8n; return b; });
}
const seg = (base: bigint, limit: number, sel: number, attr: number) => [...le(base, 8), ...le(limit, 4), ...le(sel, 2), ...le(attr, 2)];
const table = (base: bigint, limit: number) => [0, 0, 0, 0, 0, 0, ...le(limit, 2), ...le(base, 8)];

/** A 64-bit context: RIP 0x1000, RSP 0x9000, flat CS (L) and data, page tables at 0x20000. */
function context(over: { cr0?: bigint; csAttr?: number; pat?: bigint } = {}): Uint8Array {
  const b = [
    ...le(0x1000n, 8), ...le(0x9000n, 8), ...le(0x2n, 8),                  // RIP @0, RSP @8, RFLAGS @16
    ...seg(0n, 0xffffffff, 0x08, over.csAttr ?? 0xa09b),                   // CS @24
    ...seg(0n, 0xffffffff, 0x10, 0xc093),                                  // DS @40
    ...seg(0n, 0xffffffff, 0x10, 0xc093),                                  // ES @56
    ...seg(0x7000_0000n, 0xffffffff, 0x10, 0xc093),                        // FS @72
    ...seg(0x8000_0000n, 0xffffffff, 0x10, 0xc093),                        // GS @88
    ...seg(0n, 0xffffffff, 0x10, 0xc093),                                  // SS @104
    ...seg(0x3000n, 0x67, 0x18, 0x008b),                                   // TR @120
    ...seg(0n, 0, 0, 0),                                                   // LDTR @136 (unusable)
    ...table(0x4000n, 0xfff),                                              // IDTR @152
    ...table(0x500n, 0x17),                                                // GDTR @168
    ...le(0x500n, 8),                                                      // EFER @184: LME | LMA
    ...le(over.cr0 ?? 0x8000_0011n, 8),                                    // CR0 @192: PG | ET | PE
    ...le(0x20000n, 8),                                                    // CR3 @200
    ...le(0x20n, 8),                                                       // CR4 @208: PAE
    ...le(over.pat ?? 0x0007_0406_0007_0406n, 8),                          // PAT @216
  ];
  assert.equal(b.length, 224);
  return Uint8Array.from(b);
}

function freshVcpu() {
  const vm = new Vm({ memorySize: 4 << 20 });
  const mem = vm.mem;
  mem.write64(0x20000, 0x21000n | 0x23n); mem.write64(0x21000, 0x22000n | 0x23n); mem.write64(0x22000, 0xe3n); // 2 MiB identity map
  mem.write64(0x508, 0x00af9b000000ffffn); mem.write64(0x510, 0x00cf93000000ffffn);
  mem.write(0x1000, Uint8Array.from([0x48, 0x89, 0xe0, 0xf4])); // mov rax, rsp; hlt
  return { vm, v: vm.createVcpu(1) };
}

test('§2.13: the context\'s fields land in the Vcpu and it runs 64-bit code from RIP with RSP', () => {
  const { v } = freshVcpu();
  assert.equal(loadInitialVpContext(v, context(), 1, { dr6Shared: false }), HvStatus.SUCCESS);
  const s = v.getSregs();
  assert.equal(s.cs.l, 1); assert.equal(s.cs.selector, 0x08);
  assert.equal(s.fs.base, 0x7000_0000n); assert.equal(s.gs.base, 0x8000_0000n);
  assert.equal(s.tr.base, 0x3000n); assert.equal(s.tr.type, 0xb); assert.equal(s.ldt.unusable, 1);
  assert.deepEqual(s.idt, { base: 0x4000n, limit: 0xfff }); assert.deepEqual(s.gdt, { base: 0x500n, limit: 0x17 });
  assert.equal(s.efer, 0x500n); assert.equal(s.cr3, 0x20000n); assert.equal(s.cr4, 0x20n);
  assert.equal(readPrivateMsrs(v).pat, 0x0007_0406_0007_0406n);
  assert.equal(v.run(10).reason, 'hlt');
  assert.equal(v.getRegs().rax, 0x9000n);
});

test('§2.13: reserved attribute bits, a context KVM_SET_SREGS refuses, or a bad PAT: INVALID_REGISTER_VALUE, Vcpu unchanged', () => {
  const { v } = freshVcpu();
  const before = savePrivate(v, { dr6Shared: false });
  assert.equal(decodeInitialVpContext(context({ csAttr: 0xa39b })), null);
  assert.equal(loadInitialVpContext(v, context({ csAttr: 0xa39b }), 1, { dr6Shared: false }), HvStatus.INVALID_REGISTER_VALUE);
  assert.equal(loadInitialVpContext(v, context({ cr0: 0x8000_0010n }), 0, { dr6Shared: false }), HvStatus.INVALID_REGISTER_VALUE); // PG without PE
  assert.equal(loadInitialVpContext(v, context({ pat: 0x02n }), 1, { dr6Shared: false }), HvStatus.INVALID_REGISTER_VALUE); // PAT type 2
  assert.deepEqual(savePrivate(v, { dr6Shared: false }), before);
  assert.throws(() => decodeInitialVpContext(new Uint8Array(100)), VsmError);
});

test('§3.1: real mode is not allowed for a VTL above 0; VTL0 may start in it', () => {
  const { v } = freshVcpu();
  const real = context({ cr0: 0x10n, csAttr: 0x009b });
  const dv = new DataView(real.buffer); dv.setBigUint64(184, 0n, true); dv.setBigUint64(208, 0n, true); // EFER 0, CR4 0
  assert.equal(loadInitialVpContext(v, real, 1, { dr6Shared: false }), HvStatus.INVALID_REGISTER_VALUE);
  assert.equal(loadInitialVpContext(v, real, 0, { dr6Shared: false }), HvStatus.SUCCESS);
});
