// x64 intercept messages (tlfs-vsm-facts §4.2 message, §4.4 header, §4.5
// memory intercept): every expected byte is written here by hand from the
// tables, then compared with the builder's output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import {
  encodeExecutionState, encodeInterceptHeader, encodeMemoryIntercept, memoryInterceptMessage, type MemoryInterceptContext,
} from '../../src/vmm/vsm/intercept-message.js';
import { faultGpa, memoryInterceptContext, type MemoryFaultExit } from '../../src/vmm/vsm/intercept-context.js';
import { encodeMessage } from '../../src/kvm/hyperv/message.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';
import { enterFlat32, enterLong64, writeCode } from '../kvm/guest-setup.js';

/** Little-endian bytes of `v` (n bytes). */
function le(v: bigint | number, n: number): number[] {
  let x = BigInt(v);
  return Array.from({ length: n }, () => { const b = Number(x & 0xffn); x >>= 8n; return b; });
}
/** Writes `bytes` at `off` of `out`. */
function put(out: number[], off: number, bytes: number[]): void { bytes.forEach((b, k) => { out[off + k] = b; }); }
/** HV_X64_SEGMENT_REGISTER by hand: base u64 @0, limit u32 @8, selector u16 @12, attributes u16 @14 (§2.13). */
const seg = (base: bigint, limit: number, sel: number, attr: number) => [...le(base, 8), ...le(limit, 4), ...le(sel, 2), ...le(attr, 2)];

const GPRS = {
  rax: 0x1111n, rcx: 0x2222n, rdx: 0x3333n, rbx: 0x4444n, rsp: 0x5555n, rbp: 0x6666n, rsi: 0x7777n, rdi: 0x8888n,
  r8: 0x9999n, r9: 0xaaaan, r10: 0xbbbbn, r11: 0xccccn, r12: 0xddddn, r13: 0xeeeen, r14: 0xffffn, r15: 0x1_0000n,
};

function context(over: Partial<MemoryInterceptContext> = {}): MemoryInterceptContext {
  return {
    vpIndex: 3, instructionLength: 7, cr8: 0xa, accessType: 1,
    executionState: {
      cpl: 0, cr0Pe: true, cr0Am: false, eferLma: true, debugActive: false, interruptionPending: false,
      vtl: 0, enclaveMode: false, interruptShadow: true, virtualizationFaultActive: false,
    },
    cs: { base: 0n, limit: 0xffffffff, selector: 0x08, attributes: 0xa09b },
    rip: 0xffff_8000_0010_2030n, rflags: 0x246n,
    cacheType: 6, instructionBytes: Uint8Array.from([0x48, 0x89, 0x43, 0x08, 0x90, 0x90, 0x90]),
    memoryAccessInfo: { gvaValid: true, gvaGpaValid: false, hypercallOutputPending: false, tlbLocked: false, supervisorShadowStack: false },
    tprPriority: 0, gva: 0xffff_8000_0020_0008n, gpa: 0x20_0008n,
    ds: { base: 0n, limit: 0xffffffff, selector: 0x10, attributes: 0xc093 },
    ss: { base: 0x1000n, limit: 0xfffff, selector: 0x18, attributes: 0x4093 },
    gprs: GPRS,
    ...over,
  };
}

test('§4.4: ExecutionState packs CPL 1:0, PE 2, AM 3, LMA 4, DebugActive 5, InterruptionPending 6, VTL 10:7, shadow 12', () => {
  const base = { cpl: 0, cr0Pe: false, cr0Am: false, eferLma: false, debugActive: false, interruptionPending: false, vtl: 0, enclaveMode: false, interruptShadow: false, virtualizationFaultActive: false };
  assert.equal(encodeExecutionState({ ...base, cpl: 3 }), 0x0003);
  assert.equal(encodeExecutionState({ ...base, cr0Pe: true }), 0x0004);
  assert.equal(encodeExecutionState({ ...base, cr0Am: true }), 0x0008);
  assert.equal(encodeExecutionState({ ...base, eferLma: true }), 0x0010);
  assert.equal(encodeExecutionState({ ...base, debugActive: true }), 0x0020);
  assert.equal(encodeExecutionState({ ...base, interruptionPending: true }), 0x0040);
  assert.equal(encodeExecutionState({ ...base, vtl: 1 }), 0x0080);
  assert.equal(encodeExecutionState({ ...base, vtl: 15 }), 0x0780);
  assert.equal(encodeExecutionState({ ...base, enclaveMode: true }), 0x0800);
  assert.equal(encodeExecutionState({ ...base, interruptShadow: true }), 0x1000);
  assert.equal(encodeExecutionState({ ...base, virtualizationFaultActive: true }), 0x2000);
  assert.throws(() => encodeExecutionState({ ...base, vtl: 16 }), VsmError);
});

/** The 40-byte header of context() by hand (§4.4). */
function headerBytes(): number[] {
  const h: number[] = new Array(40).fill(0);
  put(h, 0x00, le(3, 4));                 // VpIndex
  h[0x04] = 7 | (0xa << 4);               // InstructionLength 3:0, CR8 7:4
  h[0x05] = 1;                            // write
  put(h, 0x06, le(0x1014, 2));            // PE | LMA | InterruptShadow
  put(h, 0x08, seg(0n, 0xffffffff, 0x08, 0xa09b));
  put(h, 0x18, le(0xffff_8000_0010_2030n, 8));
  put(h, 0x20, le(0x246n, 8));
  return h;
}

test('§4.4: the 40-byte header, byte by byte', () => {
  assert.deepEqual([...encodeInterceptHeader(context())], headerBytes());
});

test('§4.5: the memory intercept payload: 0x50 bytes of the sheet, then DS, SS and the 16 GPRs (0xF0 in all)', () => {
  const m: number[] = new Array(0xf0).fill(0);
  put(m, 0, headerBytes());
  put(m, 0x28, le(6, 4));                                        // CacheType WB
  m[0x2c] = 7;                                                   // InstructionByteCount
  m[0x2d] = 0x01;                                                // GvaValid
  m[0x2e] = 0;                                                   // TprPriority
  put(m, 0x30, le(0xffff_8000_0020_0008n, 8));                   // GVA
  put(m, 0x38, le(0x20_0008n, 8));                               // GPA
  put(m, 0x40, [0x48, 0x89, 0x43, 0x08, 0x90, 0x90, 0x90]);      // InstructionBytes (rest zero)
  put(m, 0x50, seg(0n, 0xffffffff, 0x10, 0xc093));               // DS
  put(m, 0x60, seg(0x1000n, 0xfffff, 0x18, 0x4093));             // SS
  [0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0x8888, 0x9999, 0xaaaa, 0xbbbb, 0xcccc, 0xdddd, 0xeeee, 0xffff, 0x10000]
    .forEach((v, k) => put(m, 0x70 + 8 * k, le(v, 8)));          // RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15
  assert.deepEqual([...encodeMemoryIntercept(context())], m);
  assert.deepEqual([...encodeMemoryIntercept(context(), { withRegisters: false })], m.slice(0, 0x50));
});

test('§4.5: MemoryAccessInfo bits: GvaValid 0, GvaGpaValid 1, HypercallOutputPending 2, TlbLocked 3, SSS 4', () => {
  const info = (o: object) => encodeMemoryIntercept(context({
    memoryAccessInfo: { gvaValid: false, gvaGpaValid: false, hypercallOutputPending: false, tlbLocked: false, supervisorShadowStack: false, ...o },
  }))[0x2d];
  assert.equal(info({}), 0);
  assert.equal(info({ gvaValid: true, gvaGpaValid: true }), 0x03);
  assert.equal(info({ hypercallOutputPending: true }), 0x04);
  assert.equal(info({ tlbLocked: true }), 0x08);
  assert.equal(info({ supervisorShadowStack: true }), 0x10);
});

test('§4.2/§4.3: the GpaIntercept message: type 0x80000001, payload size 240, origination ID, then the payload', () => {
  const msg = memoryInterceptMessage(context(), 0x1234n);
  const bytes = encodeMessage(msg);
  assert.deepEqual([...bytes.slice(0, 16)], [0x01, 0x00, 0x00, 0x80, 0xf0, 0, 0, 0, ...le(0x1234n, 8)]);
  assert.deepEqual([...bytes.slice(16)], [...encodeMemoryIntercept(context())]);
  assert.equal(memoryInterceptMessage(context(), 0n, { type: 0x8000_0000 }).type, 0x8000_0000); // UnmappedGpa
  assert.throws(() => memoryInterceptMessage(context(), 0n, { type: 0x8001_0000 }), /not a memory intercept type/);
});

test('bad contexts are VMM bugs: clear VsmErrors, nothing half-built', () => {
  assert.throws(() => encodeMemoryIntercept(context({ accessType: 2 })), /execute intercept carries no instruction bytes/);
  assert.throws(() => encodeMemoryIntercept(context({ cacheType: 3 })), /HV_CACHE_TYPE/);
  assert.throws(() => encodeMemoryIntercept(context({ instructionBytes: new Uint8Array(17) })), /at most 16/);
  assert.throws(() => encodeMemoryIntercept(context({ cs: { base: 0n, limit: 0, selector: 0, attributes: 0x0100 } })), /reserved bits 11:8/);
  assert.throws(() => encodeInterceptHeader(context({ instructionLength: 16 })), VsmError);
  assert.throws(() => encodeInterceptHeader(context({ accessType: 3 })), /access type/);
  assert.throws(() => encodeMemoryIntercept(context({ gpa: -1n })), VsmError);
});

// ---- from a real Vcpu's memory-fault exit (kvm-api-facts §2.5/§2.6) ----

function expectFault(exit: ReturnType<import('../../src/kvm/vcpu.js').Vcpu['run']>): MemoryFaultExit {
  assert.equal(exit.reason, 'memory-fault');
  return exit as MemoryFaultExit;
}

test('§4.4/§4.5: a 64-bit write to a read-only page becomes the expected GpaIntercept payload, byte for byte', () => {
  const vm = new Vm({ memorySize: 4 << 20 });
  const v = vm.createVcpu(2);
  // mov [rbx+8], rax  (48 89 43 08); hlt
  writeCode(v, 0x1000, [0x48, 0x89, 0x43, 0x08, 0xf4]);
  enterLong64(v, 0x1000);
  const r = v.getRegs();
  Object.assign(r, GPRS, { rbx: 0x3000n, rsp: 0x8000n });
  v.setRegs(r);
  vm.setMemoryAttributes({ address: 0x3000n, size: 0x1000n, attributes: 2n, flags: 0n }); // NW
  const exit = expectFault(v.run(10));
  const c = memoryInterceptContext(v, exit, { vpIndex: 2, vtl: 0 });
  const m: number[] = new Array(0xf0).fill(0);
  put(m, 0x00, le(2, 4));
  m[0x04] = 4;                                  // 4-byte instruction, CR8 0
  m[0x05] = 1;                                  // write
  put(m, 0x06, le(0x0014, 2));                  // CPL 0, PE, LMA, VTL 0
  put(m, 0x08, seg(0n, 0xffffffff, 0x08, 0xa09b)); // 64-bit flat code: type B, S, P, L, G
  put(m, 0x18, le(0x1000n, 8));                 // RIP of the faulting instruction
  put(m, 0x20, le(0x2n, 8));                    // RFLAGS
  put(m, 0x28, le(6, 4));                       // WB
  m[0x2c] = 4; m[0x2d] = 0x01;
  put(m, 0x30, le(0x3008n, 8));                 // GVA
  put(m, 0x38, le(0x3008n, 8));                 // GPA: page base + GVA offset
  put(m, 0x40, [0x48, 0x89, 0x43, 0x08]);
  put(m, 0x50, seg(0n, 0xffffffff, 0x10, 0xc093));
  put(m, 0x60, seg(0n, 0xffffffff, 0x10, 0xc093));
  [0x1111, 0x2222, 0x3333, 0x3000, 0x8000, 0x6666, 0x7777, 0x8888, 0x9999, 0xaaaa, 0xbbbb, 0xcccc, 0xdddd, 0xeeee, 0xffff, 0x10000]
    .forEach((x, k) => put(m, 0x70 + 8 * k, le(x, 8)));
  assert.deepEqual([...encodeMemoryIntercept(c)], m);
  assert.equal(vm.mem.read32(0x3008), 0); // the instruction did not complete
});

test('§4.4/§4.5: an instruction fetch from a non-executable page: execute, no instruction bytes, RIP = GVA = target', () => {
  const vm = new Vm({ memorySize: 4 << 20 });
  const v = vm.createVcpu(0);
  writeCode(v, 0x1000, [0xe9, 0xfb, 0x0f, 0x00, 0x00]); // jmp 0x2000
  enterFlat32(v, 0x1000);
  vm.setMemoryAttributes({ address: 0x2000n, size: 0x1000n, attributes: 4n, flags: 0n }); // NX
  const exit = expectFault(v.run(10));
  const c = memoryInterceptContext(v, exit, { vpIndex: 0, vtl: 0, lockTlb: true });
  const p = encodeMemoryIntercept(c);
  assert.equal(p[0x04], 0);                       // no instruction length
  assert.equal(p[0x05], 2);                       // execute
  assert.deepEqual([...p.slice(0x06, 0x08)], le(0x0004, 2)); // CPL 0, PE, no LMA
  assert.deepEqual([...p.slice(0x08, 0x18)], seg(0n, 0xffffffff, 0x08, 0xc09b)); // 32-bit flat code: D/B, G
  assert.deepEqual([...p.slice(0x18, 0x20)], le(0x2000n, 8));
  assert.equal(p[0x2c], 0);                       // InstructionByteCount 0 for execute
  assert.equal(p[0x2d], 0x0b);                    // GvaValid | GvaGpaValid | TlbLocked (lockTlb)
  assert.deepEqual([...p.slice(0x30, 0x40)], [...le(0x2000n, 8), ...le(0x2000n, 8)]);
  assert.ok(p.slice(0x40, 0x50).every((b) => b === 0));
});

test('the GPA is the exit\'s exact GPA: the data byte, or the paging-structure entry of a page-walk fault', () => {
  const exit = { reason: 'memory-fault', flags: 1, gpa: 0x21000, size: 4096, insnLen: 3, gva: 0x40_1234n, gvaValid: true, origin: 1, insnBytes: new Uint8Array(3), exactGpa: 0x21ff8 } as MemoryFaultExit;
  assert.equal(faultGpa(exit), 0x21ff8n);
  assert.equal(faultGpa({ ...exit, origin: 0, exactGpa: 0x21234 } as MemoryFaultExit), 0x21234n);
});