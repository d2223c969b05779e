// Hypercall input value (RCX) parsing and validation, result value (RAX) packing:
// tlfs-vsm-facts.md §1.1 (fields, RsvdZ 30:27, 47:44, 63:60, validation table) and §1.2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  hvStatusName,
  hypercallResult,
  makeHypercallControl,
  parseHypercallControl,
  parseHypercallResult,
  validateHypercallControl,
  withRepStart,
} from '../../src/kvm/hyperv/hypercall-input.js';
import { HvStatus } from '../../src/spec/tlfs.js';

test('fields of a fast rep call: code 15:0, fast 16, rep count 43:32, rep start 59:48', () => {
  assert.deepEqual(parseHypercallControl(0x0001_0002_0001_0003n), {
    code: 0x0003, fast: true, varHeaderQwords: 0, nested: false, repCount: 2, repStart: 1, reservedBitsSet: false,
  });
});

test('variable header size is bits 26:17, nested is bit 31', () => {
  const c = parseHypercallControl(0x0000_0001_0006_0014n);
  assert.equal(c.code, 0x14);
  assert.equal(c.varHeaderQwords, 3);
  assert.equal(c.repCount, 1);
  assert.equal(parseHypercallControl(0x3ffn << 17n).varHeaderQwords, 0x3ff);
  const n = parseHypercallControl(0x8000_0002n);
  assert.equal(n.nested, true);
  assert.equal(n.reservedBitsSet, false);
});

test('each RsvdZ bit is detected, and no other bit is', () => {
  const reserved = [27, 28, 29, 30, 44, 45, 46, 47, 60, 61, 62, 63];
  for (let b = 0; b < 64; b++) {
    assert.equal(parseHypercallControl(1n << BigInt(b)).reservedBitsSet, reserved.includes(b), `bit ${b}`);
  }
});

test('validation order and rules (§1.1 table)', () => {
  const v = (rcx: bigint) => validateHypercallControl(parseHypercallControl(rcx));
  const mk = makeHypercallControl;
  assert.equal(v(mk({ code: 0x0004 })), HvStatus.INVALID_HYPERCALL_CODE); // unknown code
  assert.equal(v(mk({ code: 0x0004 }) | (1n << 30n)), HvStatus.INVALID_HYPERCALL_CODE); // code is checked first
  assert.equal(v(mk({ code: 0x0002 }) | (1n << 30n)), HvStatus.INVALID_HYPERCALL_INPUT); // RsvdZ
  assert.equal(v(mk({ code: 0x0002 })), HvStatus.SUCCESS);
  assert.equal(v(mk({ code: 0x0002, repCount: 1 })), HvStatus.INVALID_HYPERCALL_INPUT); // simple with reps
  assert.equal(v(mk({ code: 0x0002, repStart: 1 })), HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(v(mk({ code: 0x0003 })), HvStatus.INVALID_HYPERCALL_INPUT); // rep call, count 0
  assert.equal(v(mk({ code: 0x0003, repCount: 5, repStart: 5 })), HvStatus.INVALID_HYPERCALL_INPUT); // start >= count
  assert.equal(v(mk({ code: 0x0003, repCount: 5, repStart: 4 })), HvStatus.SUCCESS);
  assert.equal(v(mk({ code: 0x0002, varHeaderQwords: 1 })), HvStatus.INVALID_HYPERCALL_INPUT); // no variable header
  assert.equal(v(mk({ code: 0x0013, varHeaderQwords: 1 })), HvStatus.SUCCESS); // FlushVirtualAddressSpaceEx has one
  assert.equal(v(mk({ code: 0x0014, varHeaderQwords: 2, repCount: 3 })), HvStatus.SUCCESS);
  assert.equal(v(mk({ code: 0x005c, fast: true })), HvStatus.SUCCESS);
});

test('makeHypercallControl is the inverse of parse and rejects values that do not fit', () => {
  const rcx = makeHypercallControl({ code: 0x14, fast: true, varHeaderQwords: 7, repCount: 0xfff, repStart: 0x123 });
  assert.equal(rcx, 0x0123_0fff_000f_0014n);
  assert.throws(() => makeHypercallControl({ code: 0x10000 }), RangeError);
  assert.throws(() => makeHypercallControl({ code: 1, repCount: 0x1000 }), RangeError);
  assert.throws(() => parseHypercallControl(1n << 64n), RangeError);
});

test('result value: status 15:0, reps completed 43:32 (absolute, §1.2)', () => {
  assert.equal(hypercallResult(HvStatus.SUCCESS, 10), 0x0000_000a_0000_0000n); // start 5, count 10 -> 10
  assert.equal(hypercallResult(HvStatus.INVALID_PARAMETER, 3), 0x0000_0003_0000_0005n);
  assert.equal(hypercallResult(HvStatus.ACCESS_DENIED), 0x6n);
  assert.deepEqual(parseHypercallResult(0xffff_f00a_ffff_0012n), { status: 0x12, repsCompleted: 0x00a });
  assert.throws(() => hypercallResult(0x10000), RangeError);
  assert.throws(() => hypercallResult(0, 0x1000), RangeError);
});

test('continuation rewrites only the rep start index', () => {
  assert.equal(withRepStart(0x0001_0002_0001_0003n, 2), 0x0002_0002_0001_0003n);
  assert.equal(withRepStart(0xffff_ffff_ffff_ffffn, 0), 0xf000_ffff_ffff_ffffn);
});

test('status names', () => {
  assert.equal(hvStatusName(0x18), 'HV_STATUS_INVALID_SYNIC_STATE');
  assert.equal(hvStatusName(0x86), 'HV_STATUS_VTL_ALREADY_ENABLED');
  assert.equal(hvStatusName(0x1234), 'HV_STATUS_0x1234');
});
