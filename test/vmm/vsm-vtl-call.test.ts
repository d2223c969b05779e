// VtlCall / VtlReturn checks (tlfs-vsm-facts §3.4): #UD cases, the next
// higher enabled VTL, the fast-return bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkVtlCall, checkVtlReturn, nextHigherVtl } from '../../src/vmm/vsm/vtl-call.js';

/** The protocol registers as int32 halves, from u64s. */
const regs = (control: bigint, input: bigint) => ({
  controlLo: Number(BigInt.asIntN(32, control)), controlHi: Number(BigInt.asIntN(32, control >> 32n)),
  inputLo: Number(BigInt.asIntN(32, input)), inputHi: Number(BigInt.asIntN(32, input >> 32n)),
});

test('§3.4: VtlCall enters the next higher enabled VTL, never skipping one', () => {
  assert.equal(nextHigherVtl(0b011, 0), 1);
  assert.equal(nextHigherVtl(0b101, 0), 2); // VTLs need not be consecutive (§3.1): VTL1 not enabled here
  assert.equal(nextHigherVtl(0b111, 1), 2);
  assert.equal(nextHigherVtl(0b011, 1), -1);
  assert.deepEqual(checkVtlCall(regs(0x11n, 0n), { activeVtl: 0, enabledVtlSet: 0b111 }), { ok: true, targetVtl: 1 });
});

test('§3.4: VtlCall is #UD for extra control-word bits, a non-zero input, or no higher VTL', () => {
  const vp = { activeVtl: 0, enabledVtlSet: 0b11 };
  assert.equal(checkVtlCall(regs(0x11n | (1n << 16n), 0n), vp).ok, false); // fast bit
  assert.equal(checkVtlCall(regs(0x11n | (1n << 32n), 0n), vp).ok, false); // rep count
  assert.equal(checkVtlCall(regs(0x12n, 0n), vp).ok, false);
  assert.equal(checkVtlCall(regs(0x11n, 1n), vp).ok, false);
  assert.equal(checkVtlCall(regs(0x11n, 0n), { activeVtl: 1, enabledVtlSet: 0b11 }).ok, false);
  assert.equal(checkVtlCall(regs(0x11n, 0n), { activeVtl: 0, enabledVtlSet: 0b1 }).ok, false);
});

test('§3.4: VtlReturn: bit 0 of the input is "fast", bits 63:1 must be 0, VTL0 cannot return', () => {
  const vp = { activeVtl: 1, enabledVtlSet: 0b11 };
  assert.deepEqual(checkVtlReturn(regs(0x12n, 0n), vp), { ok: true, fast: false });
  assert.deepEqual(checkVtlReturn(regs(0x12n, 1n), vp), { ok: true, fast: true });
  assert.equal(checkVtlReturn(regs(0x12n, 2n), vp).ok, false);
  assert.equal(checkVtlReturn(regs(0x12n | (1n << 63n), 0n), vp).ok, false);
  assert.equal(checkVtlReturn(regs(0x12n, 0n), { activeVtl: 0, enabledVtlSet: 0b11 }).ok, false);
  assert.equal(checkVtlReturn(regs(0x12n, 1n << 32n), vp).ok, false, 'a high-half input bit');
  assert.equal(checkVtlCall(regs(0x11n, 1n << 63n), { activeVtl: 0, enabledVtlSet: 0b11 }).ok, false, 'bit 63 of the VtlCall input');
});
