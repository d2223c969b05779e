// The range encoding of HvCallFlushGuestPhysicalAddressList as L1 fills its
// input page (kvm-api-facts §6.1): 2048-page chunks from start_gfn, 8-byte
// elements after the 16-byte header, at most 510 of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillFlushList, FILL_FAILED, flushInputPage } from '../../src/kvm/on-hyperv/flush-list.js';
import { decodeGpaRange } from '../../src/l0/gpa-range.js';

function elements(startGfn: number, pages: number): bigint[] | number {
  const page = flushInputPage(0x80_0000_1000);
  const n = fillFlushList(page, startGfn, pages);
  if (n === FILL_FAILED) return n;
  const dv = new DataView(page.buffer);
  return Array.from({ length: n }, (_, k) => dv.getBigUint64(16 + 8 * k, true));
}

test('the header: AddressSpace then Flags = 0', () => {
  const dv = new DataView(flushInputPage(0x80_0000_1000).buffer);
  assert.equal(dv.getBigUint64(0, true), 0x80_0000_1000n);
  assert.equal(dv.getBigUint64(8, true), 0n);
});

test('one page, 2048 pages and 2049 pages: additional_pages in bits 10:0, the first page number from bit 12', () => {
  assert.deepEqual(elements(0x100, 1), [0x100_000n]);
  assert.deepEqual(elements(0x100, 2048), [0x100_7ffn]);
  assert.deepEqual(elements(0x100, 2049), [0x100_7ffn, 0x900_000n]);
  assert.deepEqual(elements(0x1_2345_6789, 5), [0x1_2345_6789_004n]);
});

test('a range of 510 chunks fits, one page more does not (the fill fails)', () => {
  const full = elements(7, 510 * 2048);
  assert.ok(Array.isArray(full));
  assert.equal(full.length, 510);
  assert.equal(full[509], (BigInt(7 + 509 * 2048) << 12n) | 0x7ffn);
  assert.equal(elements(7, 510 * 2048 + 1), FILL_FAILED);
});

test('L0 decodes what L1 encodes', () => {
  const page = flushInputPage(0);
  const n = fillFlushList(page, 0x3ff, 4100);
  const dv = new DataView(page.buffer);
  const got = Array.from({ length: n }, (_, k) => decodeGpaRange(dv.getInt32(16 + 8 * k, true), dv.getInt32(20 + 8 * k, true)));
  assert.deepEqual(got, [{ gfn: 0x3ff, pages: 2048 }, { gfn: 0x3ff + 2048, pages: 2048 }, { gfn: 0x3ff + 4096, pages: 4 }]);
});
