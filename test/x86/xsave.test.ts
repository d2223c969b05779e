/**
 * XSAVE and XRSTOR, standard form (SDM vol. 1 13.7, 13.8; vol. 2 XSAVE,
 * XRSTOR), for the components this CPU has: x87 (XCR0 bit 0) and SSE (bit 1),
 * both in the legacy region. 32-bit protected mode at CPL 0 without paging
 * (XMM0-7 in the image), CR4.OSFXSR and CR4.OSXSAVE set, XCR0 = 3 unless a
 * case says otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { Cpu } from '../../src/x86/cpu.js';
import { NullCpuHost } from '../../src/x86/null-host.js';
import { ATTR_DB, ATTR_G, ATTR_P, ATTR_S } from '../../src/x86/segment-cache.js';
import { CR0_EM, CR0_PE, CR0_TS, CR4_OSFXSR, CR4_OSXSAVE, CS, DS, ES, FS, GS, SS } from '../../src/x86/regs.js';

const GP = 13, UD = 6, NM = 7;
const RAX = 0, RDX = 2, RBX = 3, RSI = 6, RDI = 7;
const AREA = 0x3000, SRC = 0x2000, FX = 0x5000;
const XSAVE_EDI = [0x0f, 0xae, 0x27], XRSTOR_ESI = [0x0f, 0xae, 0x2e], FXSAVE_EBX = [0x0f, 0xae, 0x03];

interface Run { c: Cpu; mem: PhysMemory; vector: number | null }

/** Runs `code` at 0x1000 (EAX = `mask`, EDX = 0, ESI = SRC, EDI = AREA, EBX = FX) after `setup`. */
function run(code: number[], o: { mask?: number; xcr0?: number; setup?: (c: Cpu, mem: PhysMemory) => void } = {}): Run {
  const mem = new PhysMemory(0x100000);
  const c = new Cpu(mem, new NullCpuHost());
  c.cr0 = CR0_PE | 0x10;
  c.cr4 = CR4_OSFXSR | CR4_OSXSAVE;
  for (const s of [CS, SS, DS, ES, FS, GS]) {
    c.segSel[s] = s === CS ? 8 : 16; c.segBaseLo[s] = 0; c.segBaseHi[s] = 0; c.segLimit[s] = -1;
    c.segAttr[s] = ATTR_P | ATTR_S | ATTR_DB | ATTR_G | (s === CS ? 0xb : 0x3);
  }
  c.cpl = 0;
  c.updateMode();
  c.xcr0 = o.xcr0 ?? 3;
  mem.write(0x1000, new Uint8Array(code));
  c.ripLo = 0x1000;
  c.rlo[RAX] = o.mask ?? 3; c.rlo[RDX] = 0; c.rlo[RSI] = SRC; c.rlo[RDI] = AREA; c.rlo[RBX] = FX;
  let vector: number | null = null;
  c.exceptionIntercept = (v) => { vector = v; return true; };
  o.setup?.(c, mem);
  for (let g = 0; g < 100 && vector === null && c.ripLo !== 0x1000 + code.length; g++) c.run(1);
  return { c, mem, vector };
}

/** Recognisable state: x87 fields and ST registers, MXCSR 0x1fc0, XMMk = bytes 0x40 + k. */
function setState(c: Cpu): void {
  const f = c.fpuImage;
  for (let k = 0; k < 24; k++) f[k] = 0x10 + k;
  for (let k = 0; k < 8; k++) for (let b = 0; b < 10; b++) f[32 + 16 * k + b] = 0x80 + 8 * k + b;
  c.mxcsr = 0x1fc0;
  for (let k = 0; k < 64; k++) c.xmm[k] = 0x01010101 * (0x40 + (k >> 2));
}

const bytes = (mem: PhysMemory, at: number, n: number): number[] => [...mem.read(at, n)];
const fill = (n: number, v: number): number[] => new Array(n).fill(v);

test('XSAVE: #UD without CR4.OSXSAVE, #NM with CR0.TS (not CR0.EM), #GP(0) for an area not 64-byte aligned; nothing written', () => {
  const prefill = (_c: Cpu, mem: PhysMemory) => mem.fill(AREA, 0x300, 0xcc);
  for (const code of [XSAVE_EDI, XRSTOR_ESI]) {
    assert.equal(run(code, { setup: (c, m) => { prefill(c, m); c.cr4 = CR4_OSFXSR; } }).vector, UD);
    assert.equal(run(code, { setup: (c, m) => { prefill(c, m); c.cr0 |= CR0_TS; } }).vector, NM);
    const r = run(code, { setup: (c, m) => { prefill(c, m); c.rlo[RDI] = AREA + 0x20; c.rlo[RSI] = AREA + 0x20; } });
    assert.equal(r.vector, GP);
    assert.deepEqual(bytes(r.mem, AREA, 0x300), fill(0x300, 0xcc));
  }
  const em = run(XSAVE_EDI, { setup: (c) => { c.cr0 |= CR0_EM; } });
  assert.equal(em.vector, null, 'CR0.EM does not matter to XSAVE');
});

test('XSAVE of x87 and SSE writes what FXSAVE writes in bytes 0-287, sets XSTATE_BV bits 0 and 1, and leaves the rest of the area alone', () => {
  const r = run([...FXSAVE_EBX, ...XSAVE_EDI], { setup: (c, mem) => { setState(c); mem.fill(AREA, 576, 0xcc); } });
  assert.equal(r.vector, null);
  assert.deepEqual(bytes(r.mem, AREA, 288), bytes(r.mem, FX, 288));
  assert.equal(r.mem.read32(AREA + 24), 0x1fc0);
  assert.deepEqual(bytes(r.mem, AREA + 288, 224), fill(224, 0xcc), 'XMM8-15 (not in 32-bit mode) and bytes 416-511');
  assert.equal(r.mem.read64(AREA + 512), 0xcccccccc_cccccccfn, 'XSTATE_BV: bits 0 and 1 set, the others unchanged');
  assert.deepEqual(bytes(r.mem, AREA + 520, 56), fill(56, 0xcc), 'no other header byte is written');
});

test('XSAVE saves only the requested components (EDX:EAX AND XCR0); MXCSR goes with SSE', () => {
  const cases: { mask: number; xcr0?: number; x87: boolean; sse: boolean }[] = [
    { mask: 1, x87: true, sse: false }, { mask: 2, x87: false, sse: true },
    { mask: 3, xcr0: 1, x87: true, sse: false }, { mask: 0, x87: false, sse: false },
  ];
  for (const k of cases) {
    const r = run([...FXSAVE_EBX, ...XSAVE_EDI], { mask: k.mask, xcr0: k.xcr0, setup: (c, mem) => { setState(c); mem.fill(AREA, 576, 0xcc); } });
    const what = `mask ${k.mask}, XCR0 ${k.xcr0 ?? 3}`;
    assert.equal(r.vector, null, what);
    const x87 = [...bytes(r.mem, AREA, 24), ...bytes(r.mem, AREA + 32, 128)], fx87 = [...bytes(r.mem, FX, 24), ...bytes(r.mem, FX + 32, 128)];
    assert.deepEqual(x87, k.x87 ? fx87 : fill(152, 0xcc), `${what}: x87 bytes`);
    const sse = [...bytes(r.mem, AREA + 24, 8), ...bytes(r.mem, AREA + 160, 128)], fsse = [...bytes(r.mem, FX + 24, 8), ...bytes(r.mem, FX + 160, 128)];
    assert.deepEqual(sse, k.sse ? fsse : fill(136, 0xcc), `${what}: MXCSR and XMM bytes`);
    assert.equal(r.mem.read32(AREA + 512), (0xcccccccc | (k.x87 ? 1 : 0) | (k.sse ? 2 : 0)) >>> 0, `${what}: XSTATE_BV`);
  }
});

/** An area at SRC holding what XSAVE of setState's state writes, with `bv` as XSTATE_BV. */
function savedArea(bv: bigint): (c: Cpu, mem: PhysMemory) => void {
  return (c, mem) => {
    const donor = run(XSAVE_EDI, { setup: (d, m) => { setState(d); m.fill(AREA, 576, 0); } });
    mem.write(SRC, donor.mem.read(AREA, 576));
    mem.write64(SRC + 512, bv);
    c.xmm.fill(-1); c.fpuImage.fill(0xee, 0, 24); c.mxcsr = 0x1f80;
  };
}

test('XRSTOR loads the components whose XSTATE_BV bit is set', () => {
  const r = run(XRSTOR_ESI, { setup: savedArea(3n) });
  assert.equal(r.vector, null);
  assert.equal(r.c.mxcsr, 0x1fc0);
  assert.deepEqual([...r.c.xmm.subarray(0, 32)], Array.from({ length: 32 }, (_, k) => 0x01010101 * (0x40 + (k >> 2))));
  assert.deepEqual([...r.c.xmm.subarray(32)], fill(32, -1), 'XMM8-15 are not in the 32-bit area');
  assert.deepEqual([...r.c.fpuImage.subarray(0, 2)], [0x10, 0x11], 'FCW from the area');
});

test('XRSTOR with an XSTATE_BV bit clear puts that component in its initial configuration; MXCSR is still loaded with SSE requested', () => {
  const r = run(XRSTOR_ESI, { setup: savedArea(0n) });
  assert.equal(r.vector, null);
  assert.deepEqual([...r.c.fpuImage.subarray(0, 24)], [0x7f, 0x03, ...fill(22, 0)], 'x87 init: FCW 037FH, the rest 0');
  assert.deepEqual([...r.c.xmm.subarray(0, 32)], fill(32, 0), 'XMM0-7 zero');
  assert.deepEqual([...r.c.xmm.subarray(32)], fill(32, -1));
  assert.equal(r.c.mxcsr, 0x1fc0, 'standard form: MXCSR from memory whenever RFBM[1] = 1');
  const x87only = run(XRSTOR_ESI, { mask: 1, setup: savedArea(0n) });
  assert.equal(x87only.c.mxcsr, 0x1f80, 'SSE not requested: MXCSR and XMM untouched');
  assert.deepEqual([...x87only.c.xmm], fill(64, -1));
});

test('XRSTOR #GP(0), with nothing changed: compacted form, XSTATE_BV bits XCR0 does not enable, header bytes 8-23 not zero, reserved MXCSR bits', () => {
  const bad: [string, (c: Cpu, mem: PhysMemory) => void, number?][] = [
    ['XCOMP_BV[63] (no XSAVEC)', (c, mem) => { savedArea(3n)(c, mem); mem.write64(SRC + 520, 1n << 63n); }],
    ['XSTATE_BV bit 2', (c, mem) => { savedArea(7n)(c, mem); }],
    ['XSTATE_BV bit 1 with XCR0 = 1', (c, mem) => { savedArea(3n)(c, mem); c.xcr0 = 1; }],
    ['XCOMP_BV = 1', (c, mem) => { savedArea(3n)(c, mem); mem.write64(SRC + 520, 1n); }],
    ['header bytes 16-23', (c, mem) => { savedArea(3n)(c, mem); mem.write8(SRC + 530, 1); }],
    ['MXCSR bit 16', (c, mem) => { savedArea(3n)(c, mem); mem.write32(SRC + 24, 0x11f80); }],
  ];
  for (const [what, setup] of bad) {
    const r = run(XRSTOR_ESI, { setup });
    assert.equal(r.vector, GP, what);
    assert.equal(r.c.mxcsr, 0x1f80, what);
    assert.deepEqual([...r.c.xmm], fill(64, -1), what);
    assert.deepEqual([...r.c.fpuImage.subarray(0, 24)], fill(24, 0xee), what);
  }
  const r = run(XRSTOR_ESI, { mask: 1, setup: (c, mem) => { savedArea(3n)(c, mem); mem.write32(SRC + 24, 0x11f80); } });
  assert.equal(r.vector, null, 'a bad MXCSR does not matter when SSE is not requested');
});
