// PhysMemory's 64-bit accesses (src/memory/phys-memory.ts): little-endian
// u64s inside a chunk and across a chunk boundary, untouched memory reads 0
// without allocating, writes drop decoded code on the page, and out-of-RAM
// ranges are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNK_SIZE, PAGE_SIZE, PhysMemory } from '../../src/memory/phys-memory.js';

test('read64/write64: little-endian u64s in a chunk and across a chunk boundary', () => {
  const m = new PhysMemory(4 * CHUNK_SIZE);
  for (const at of [0x10, CHUNK_SIZE - 8, CHUNK_SIZE - 5, 2 * CHUNK_SIZE - 1]) {
    m.write64(at, 0xfedc_ba98_7654_3210n);
    assert.equal(m.read64(at), 0xfedc_ba98_7654_3210n, `at 0x${at.toString(16)}`);
    assert.deepEqual([...m.read(at, 8)], [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
    assert.equal(m.read32(at), 0x7654_3210);
  }
  m.write64(0x40, 0xffff_ffff_ffff_ffffn);
  assert.equal(m.read64(0x40), 0xffff_ffff_ffff_ffffn);
  assert.equal(m.read64(3 * CHUNK_SIZE + 8), 0n, 'untouched memory');
  assert.equal(m.allocatedBytes, 3 * CHUNK_SIZE, 'the writes allocated chunks 0-2; the read of chunk 3 allocated nothing');
  assert.throws(() => m.read64(4 * CHUNK_SIZE - 4), RangeError);
  assert.throws(() => m.write64(4 * CHUNK_SIZE - 4, 1n), RangeError);
});

test('write64 drops decoded code on the pages it touches, both of them across a page boundary', () => {
  const m = new PhysMemory(2 * CHUNK_SIZE);
  const dropped: number[] = [];
  m.onCodeWrite((pfn) => dropped.push(pfn));
  m.markCode(3); m.markCode(4); m.markCode(9);
  m.write64(4 * PAGE_SIZE - 4, 1n);
  assert.deepEqual(dropped, [3, 4]);
  assert.equal(m.isCode(9), true);
  m.write64(9 * PAGE_SIZE + 8, 2n);
  assert.deepEqual(dropped, [3, 4, 9]);
});
