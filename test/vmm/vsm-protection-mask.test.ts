// VTL protections (tlfs-vsm-facts §3.8, §2.18, §2.11) and their kvm memory
// attributes (kvm-api-facts §2.2/§2.3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { HvStatus } from '../../src/spec/tlfs.js';
import { decodeInputVtl, encodeInputVtl } from '../../src/vmm/vsm/input-vtl.js';
import {
  attributesToMask, effectiveMask, interceptTargetVtl, maskAllows, maskToAttributes, validateProtectionMask,
} from '../../src/vmm/vsm/protection-mask.js';
import { checkProtectionHeader, checkProtectionPage, planProtection, type ProtectionCallerView } from '../../src/vmm/vsm/modify-vtl-protection-mask.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';

const S = HvStatus;

test('§2.11: HV_INPUT_VTL: RsvdZ 7:5, UseTargetVtl bit 4, TargetVtl 3:0, then implemented and not above the caller', () => {
  assert.deepEqual(decodeInputVtl(0x00, 1, 1), { ok: true, vtl: 1 });   // UseTargetVtl = 0: the caller's VTL
  assert.deepEqual(decodeInputVtl(0x05, 1, 1), { ok: true, vtl: 1 });   // TargetVtl ignored without bit 4
  assert.deepEqual(decodeInputVtl(0x10, 1, 1), { ok: true, vtl: 0 });
  assert.deepEqual(decodeInputVtl(0x11, 1, 1), { ok: true, vtl: 1 });
  assert.deepEqual(decodeInputVtl(0x20, 1, 1), { ok: false, status: S.INVALID_PARAMETER });
  assert.deepEqual(decodeInputVtl(0x80, 0, 1), { ok: false, status: S.INVALID_PARAMETER });
  assert.deepEqual(decodeInputVtl(0x12, 1, 1), { ok: false, status: S.INVALID_PARAMETER }); // VTL2 not implemented
  assert.deepEqual(decodeInputVtl(0x11, 0, 1), { ok: false, status: S.ACCESS_DENIED });    // above the caller
  assert.deepEqual(decodeInputVtl(0x12, 2, 2), { ok: true, vtl: 2 });
  assert.equal(encodeInputVtl(1), 0x11);
  assert.throws(() => decodeInputVtl(0x100, 0, 1), VsmError);
});

test('§3.8 + kvm §2.3: the five non-MBEC masks and the two MBEC masks map to kvm\'s seven valid attribute combinations and back', () => {
  const table: [number, number, boolean][] = [
    [0x0, 0x7, false], [0x1, 0x6, false], [0x3, 0x4, false], [0xd, 0x2, false], [0xf, 0x0, false],
    [0x9, 0x16, true], [0xb, 0x14, true], // R+UX: NW|NX|XU; RW+UX: NX|XU
  ];
  for (const [mask, attrs, needsMbec] of table) {
    assert.equal(validateProtectionMask(mask, true), S.SUCCESS, `mask 0x${mask.toString(16)} with MBEC`);
    assert.equal(validateProtectionMask(mask, false), needsMbec ? S.INVALID_REGISTER_VALUE : S.SUCCESS, `mask 0x${mask.toString(16)} without MBEC`);
    assert.equal(maskToAttributes(mask), attrs, `mask 0x${mask.toString(16)}`);
    assert.equal(attributesToMask(attrs), mask, `attrs 0x${attrs.toString(16)}`);
  }
  assert.throws(() => attributesToMask(1), VsmError); // NR alone is EINVAL in kvm
  assert.throws(() => attributesToMask(8), VsmError); // PRIVATE is not a protection
  assert.throws(() => attributesToMask(0x10), VsmError); // XU without NX is EINVAL in kvm
});

test('§3.8: write or execute without read, KX without UX (even with MBEC), and UX without KX without MBEC are INVALID_REGISTER_VALUE', () => {
  for (const mbec of [false, true]) {
    for (const m of [0x2, 0x4, 0x6, 0x8, 0xc, 0xe, 0xa]) assert.equal(validateProtectionMask(m, mbec), S.INVALID_REGISTER_VALUE, `0x${m.toString(16)}`);
    for (const m of [0x5, 0x7]) assert.equal(validateProtectionMask(m, mbec), S.INVALID_REGISTER_VALUE, `0x${m.toString(16)} (KX=1, UX=0: undefined)`);
  }
  for (const m of [0x9, 0xb]) assert.equal(validateProtectionMask(m, false), S.INVALID_REGISTER_VALUE, `0x${m.toString(16)} without MBEC`);
  assert.throws(() => maskToAttributes(0x5), /not one of/);
});

test('§3.8: SupervisorShadowStack (0x10) and Adjustable (0x8000) are INVALID_REGISTER_VALUE; other flag bits INVALID_PARAMETER', () => {
  assert.equal(validateProtectionMask(0x11, true), S.INVALID_REGISTER_VALUE);
  assert.equal(validateProtectionMask(0x10, true), S.INVALID_REGISTER_VALUE); // and without R
  assert.equal(validateProtectionMask(0x800f, true), S.INVALID_REGISTER_VALUE);
  for (const m of [0x20 | 0xf, 0x40 | 0xf, 0x1_0000, 0x2_0000, 0x10_0000, 0x8000_0000]) {
    assert.equal(validateProtectionMask(m, true), S.INVALID_PARAMETER, `0x${m.toString(16)}`);
  }
});

test('§3.8: with MBEC absent KX governs execution; effective masks AND the masks of every higher VTL', () => {
  assert.equal(maskAllows(0xd, 2), true);
  assert.equal(maskAllows(0x3, 2), false);
  assert.equal(maskAllows(0x1, 1), false);
  assert.equal(maskAllows(0x1, 0), true);
  // VTL1 gives VTL0 R+W, VTL2 gives VTL0 and VTL1 R+X.
  const masks = [undefined, 0x3, 0xd];
  assert.equal(effectiveMask(masks, 0), 0x1);
  assert.equal(effectiveMask(masks, 1), 0xd);
  assert.equal(effectiveMask(masks, 2), 0xf);
  // §3.10: the lowest intercepting VTL is told first.
  assert.equal(interceptTargetVtl(masks, 0, 1), 2); // write: VTL1 allows, VTL2 denies
  assert.equal(interceptTargetVtl(masks, 0, 2), 1); // execute: VTL1 denies first
  assert.equal(interceptTargetVtl(masks, 0, 0), -1);
  assert.equal(interceptTargetVtl(masks, 1, 1), 2);
});

test('§3.8 MBEC: an execute flagged as a user-mode fetch is checked against UX, any other against KX', () => {
  assert.equal(maskAllows(0x9, 2, true), true);   // R+UX: user fetch allowed
  assert.equal(maskAllows(0x9, 2, false), false); // kernel fetch (or KX governing everything)
  assert.equal(maskAllows(0xd, 2, true), true);
  assert.equal(maskAllows(0x1, 2, true), false);
  assert.equal(maskAllows(0x9, 0, true), true, 'the flag only concerns execution');
  // VTL1 gives VTL0 R+UX, VTL2 gives VTL0 R+W+X: a kernel fetch goes to VTL1, a user fetch is allowed.
  const masks = [undefined, 0x9, 0xf];
  assert.equal(interceptTargetVtl(masks, 0, 2, false), 1);
  assert.equal(interceptTargetVtl(masks, 0, 2, true), -1);
  assert.equal(effectiveMask([undefined, 0x9, 0xb], 0), 0x9, 'the AND of MBEC masks is a valid mask');
});

test('the attributes really deny what the mask denies: a Vm with the RX mask\'s attributes faults on write only', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  vm.setMemoryAttributes({ address: 0x3000n, size: 0x1000n, attributes: BigInt(maskToAttributes(0xd)), flags: 0n });
  assert.equal(vm.memoryAttributes.permissions(3), 0x1 | 0x4 | 0x8); // ACCESS_READ | ACCESS_EXEC | ACCESS_EXEC_USER
  vm.setMemoryAttributes({ address: 0x3000n, size: 0x1000n, attributes: BigInt(maskToAttributes(0x0)), flags: 0n });
  assert.equal(vm.memoryAttributes.permissions(3), 0);
  vm.setMemoryAttributes({ address: 0x3000n, size: 0x1000n, attributes: BigInt(maskToAttributes(0x9)), flags: 0n });
  assert.equal(vm.memoryAttributes.permissions(3), 0x1 | 0x8); // ACCESS_READ | ACCESS_EXEC_USER
});

// ---- HvCallModifyVtlProtectionMask (§2.18) ----

function header(o: { partition?: bigint; flags?: number; vtl?: number; rsvd?: number } = {}): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setBigUint64(0, o.partition ?? 0xffff_ffff_ffff_ffffn, true);
  dv.setUint32(8, o.flags ?? 0x1, true);
  h[12] = o.vtl ?? 0;
  h[13] = o.rsvd ?? 0;
  return h;
}

function caller(o: Partial<ProtectionCallerView> & { enabled?: number[]; protectionOn?: number[]; mbec?: number[] } = {}): ProtectionCallerView {
  const enabled = o.enabled ?? [0, 1], on = o.protectionOn ?? [1], mbec = o.mbec ?? [];
  return {
    callerVtl: o.callerVtl ?? 1, maximumVtl: o.maximumVtl ?? 1,
    isVtlEnabled: (v) => enabled.includes(v), isProtectionEnabled: (v) => on.includes(v), isMbecEnabled: (v) => mbec.includes(v),
    isRam: o.isRam ?? ((gpa) => gpa < 0x10_0000),
  };
}

test('§2.18/§3.8: a VTL1 caller protecting for itself (default VTL) gets the request with its kvm attributes', () => {
  assert.deepEqual(checkProtectionHeader(header({ flags: 0x1 }), caller()), { ok: true, targetVtl: 1, mask: 1, attributes: 6 });
  assert.deepEqual(checkProtectionHeader(header({ flags: 0xf, vtl: 0x11 }), caller()), { ok: true, targetVtl: 1, mask: 0xf, attributes: 0 });
});

test('§2.18/§3.8: header failures in order: partition, RsvdZ, input VTL, VTL0, not enabled, protection off, flags', () => {
  const st = (h: Uint8Array, c = caller()) => { const r = checkProtectionHeader(h, c); return r.ok ? S.SUCCESS : r.status; };
  assert.equal(st(header({ partition: 1n })), S.ACCESS_DENIED);
  assert.equal(st(header({ rsvd: 1 })), S.INVALID_PARAMETER);
  assert.equal(st(header({ vtl: 0x21 })), S.INVALID_PARAMETER);
  assert.equal(st(header({ vtl: 0x12 })), S.INVALID_PARAMETER);                         // VTL2 not implemented
  assert.equal(st(header(), caller({ callerVtl: 0 })), S.INVALID_PARAMETER);             // VTL0 cannot protect
  assert.equal(st(header({ vtl: 0x11 }), caller({ callerVtl: 0 })), S.ACCESS_DENIED);    // above the caller
  assert.equal(st(header({ vtl: 0x10 })), S.INVALID_PARAMETER);                          // target VTL 0
  assert.equal(st(header({ vtl: 0x11 }), caller({ callerVtl: 2, maximumVtl: 2, enabled: [0, 2], protectionOn: [2] })), S.INVALID_VTL_STATE);
  assert.equal(st(header(), caller({ protectionOn: [] })), S.ACCESS_DENIED);             // EnableVtlProtection not set
  assert.equal(st(header({ flags: 0x2 })), S.INVALID_REGISTER_VALUE);
  assert.equal(st(header({ flags: 0x20 })), S.INVALID_PARAMETER);
  // MBEC masks: the target VTL's EnableMbec decides.
  assert.equal(st(header({ flags: 0x9 })), S.INVALID_REGISTER_VALUE);
  assert.equal(st(header({ flags: 0x9 }), caller({ mbec: [1] })), S.SUCCESS);
  assert.equal(st(header({ flags: 0x5 }), caller({ mbec: [1] })), S.INVALID_REGISTER_VALUE);
  assert.equal(st(header({ flags: 0x9, vtl: 0x11 }), caller({ callerVtl: 2, maximumVtl: 2, enabled: [0, 1, 2], protectionOn: [1, 2], mbec: [2] })), S.INVALID_REGISTER_VALUE);
});

test('§3.8/§1.2: a non-RAM page at element i stops the call with reps completed = i (absolute), earlier pages still apply', () => {
  const plan = planProtection(header(), [0x10n, 0x11n, 0x100n, 0x12n], 5, caller());
  assert.equal(plan.status, S.INVALID_PARAMETER);
  assert.equal(plan.repsCompleted, 7);
  assert.deepEqual(plan.pages, [0x10, 0x11]);
  assert.deepEqual(plan.request, { targetVtl: 1, mask: 1, attributes: 6 });
  const ok = planProtection(header({ flags: 0x3 }), [0x20n, 0x21n], 0, caller());
  assert.deepEqual(ok, { status: S.SUCCESS, repsCompleted: 2, request: { targetVtl: 1, mask: 3, attributes: 4 }, pages: [0x20, 0x21] });
  const refused = planProtection(header({ partition: 0n }), [0x20n], 3, caller());
  assert.deepEqual(refused, { status: S.ACCESS_DENIED, repsCompleted: 3, request: null, pages: [] });
  assert.equal(checkProtectionPage(0xffff_ffff_ffff_ffffn, () => true), S.INVALID_PARAMETER); // beyond any address
});
