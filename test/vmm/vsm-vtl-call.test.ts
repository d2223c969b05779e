// VtlCall / VtlReturn checks (tlfs-vsm-facts §3.4): #UD cases, the next
// higher enabled VTL, the fast-return bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkVtlCall, checkVtlReturn, nextHigherVtl } from '../../src/vmm/vsm/vtl-call.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';

test('§3.4: VtlCall enters the next higher enabled VTL, never skipping one', () => {
  assert.equal(nextHigherVtl(0b011, 0), 1);
  assert.equal(nextHigherVtl(0b101, 0), 2); // VTLs need not be consecutive (§3.1): VTL1 not enabled here
  assert.equal(nextHigherVtl(0b111, 1), 2);
  assert.equal(nextHigherVtl(0b011, 1), -1);
  assert.deepEqual(checkVtlCall({ control: 0x11n, input: 0n }, { activeVtl: 0, enabledVtlSet: 0b111 }), { ok: true, targetVtl: 1 });
});

test('§3.4: VtlCall is #UD for extra control-word bits, a non-zero input, or no higher VTL', () => {
  const vp = { activeVtl: 0, enabledVtlSet: 0b11 };
  assert.equal(checkVtlCall({ control: 0x11n | (1n << 16n), input: 0n }, vp).ok, false); // fast bit
  assert.equal(checkVtlCall({ control: 0x11n | (1n << 32n), input: 0n }, vp).ok, false); // rep count
  assert.equal(checkVtlCall({ control: 0x12n, input: 0n }, vp).ok, false);
  assert.equal(checkVtlCall({ control: 0x11n, input: 1n }, vp).ok, false);
  assert.equal(checkVtlCall({ control: 0x11n, input: 0n }, { activeVtl: 1, enabledVtlSet: 0b11 }).ok, false);
  assert.equal(checkVtlCall({ control: 0x11n, input: 0n }, { activeVtl: 0, enabledVtlSet: 0b1 }).ok, false);
});

test('§3.4: VtlReturn: bit 0 of the input is "fast", bits 63:1 must be 0, VTL0 cannot return', () => {
  const vp = { activeVtl: 1, enabledVtlSet: 0b11 };
  assert.deepEqual(checkVtlReturn({ control: 0x12n, input: 0n }, vp), { ok: true, fast: false });
  assert.deepEqual(checkVtlReturn({ control: 0x12n, input: 1n }, vp), { ok: true, fast: true });
  assert.equal(checkVtlReturn({ control: 0x12n, input: 2n }, vp).ok, false);
  assert.equal(checkVtlReturn({ control: 0x12n | (1n << 63n), input: 0n }, vp).ok, false);
  assert.equal(checkVtlReturn({ control: 0x12n, input: 0n }, { activeVtl: 0, enabledVtlSet: 0b11 }).ok, false);
  assert.throws(() => checkVtlReturn({ control: -1n, input: 0n }, vp), VsmError);
});
