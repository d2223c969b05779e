// The range store behind memory attributes (DESIGN §3.4: ranges, not per-page
// objects). Checked against a plain per-page array: after random changes,
// every frame reads back what the array says, and the stored ranges are
// sorted, disjoint, non-zero and merged with equal neighbours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GfnRangeMap } from '../../src/kvm/gfn-range-map.js';

/** Deterministic xorshift32 so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

function checkAgainst(map: GfnRangeMap, model: Uint8Array): void {
  for (let g = 0; g < model.length; g++) {
    if (map.get(g) !== model[g]) assert.fail(`gfn ${g}: map says ${map.get(g)}, model ${model[g]}`);
  }
  const rs = map.ranges();
  assert.equal(map.size, rs.length);
  for (let k = 0; k < rs.length; k++) {
    const r = rs[k];
    assert.ok(r.start < r.end && r.value !== 0, `range ${k} is empty or zero`);
    if (k > 0) {
      assert.ok(rs[k - 1].end <= r.start, `ranges ${k - 1} and ${k} overlap or are out of order`);
      assert.ok(!(rs[k - 1].end === r.start && rs[k - 1].value === r.value), `ranges ${k - 1} and ${k} should have merged`);
    }
  }
  // The ranges cover exactly the non-zero frames.
  let covered = 0;
  for (const r of rs) covered += r.end - r.start;
  assert.equal(covered, model.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0));
}

test('an empty map reads 0 everywhere, including huge GFNs', () => {
  const m = new GfnRangeMap();
  assert.equal(m.get(0), 0);
  assert.equal(m.get(2 ** 52 - 1), 0);
  m.set(5, 6, 0); // removing from nothing stores nothing
  assert.equal(m.size, 0);
});

test('set, overwrite the middle, merge equal neighbours, and delete', () => {
  const m = new GfnRangeMap();
  m.set(10, 20, 2);
  m.set(14, 16, 4); // splits [10,20) into three
  assert.deepEqual(m.ranges(), [{ start: 10, end: 14, value: 2 }, { start: 14, end: 16, value: 4 }, { start: 16, end: 20, value: 2 }]);
  m.set(14, 16, 2); // back to one range
  assert.deepEqual(m.ranges(), [{ start: 10, end: 20, value: 2 }]);
  m.set(20, 25, 2); // touching on the right with the same value merges
  m.set(5, 10, 2);  // and on the left
  assert.deepEqual(m.ranges(), [{ start: 5, end: 25, value: 2 }]);
  m.set(0, 100, 0);
  assert.equal(m.size, 0);
  assert.equal(m.get(7), 0);
});

test('values at the top of the 64-bit GFN space are exact', () => {
  const m = new GfnRangeMap();
  const top = 2 ** 52; // (2^64 / 4096): one past the last frame
  m.set(top - 2, top, 7);
  assert.equal(m.get(top - 1), 7);
  assert.equal(m.get(top - 2), 7);
  assert.equal(m.get(top - 3), 0);
});

test('random single-page and range changes agree with a per-page model (thousands of ranges, many blocks)', () => {
  const N = 20000;
  const model = new Uint8Array(N);
  const m = new GfnRangeMap();
  const r = rng(12345);
  let peak = 0;
  for (let op = 0; op < 30000; op++) {
    const kind = r() % 1000;
    let a: number, b: number;
    if (kind < 900) { a = r() % N; b = a + 1; }                       // single page
    else if (kind < 998) { a = r() % N; b = Math.min(N, a + 1 + (r() % 64)); } // short range
    else { a = r() % N; b = Math.min(N, a + 1 + (r() % 3000)); }      // long range over many ranges
    const v = r() % 4 === 0 ? 0 : 1 + (r() % 3);
    m.set(a, b, v);
    model.fill(v, a, b);
    peak = Math.max(peak, m.size);
    if (op % 3000 === 2999) checkAgainst(m, model);
  }
  checkAgainst(m, model);
  assert.ok(peak > 1024, `expected several blocks of ranges (512 each) at some point, peak was ${peak}`);
});

test('ascending single-page changes with alternating values make one range per page and clear in one call', () => {
  const m = new GfnRangeMap();
  const n = 5000;
  for (let g = 0; g < n; g++) m.set(g, g + 1, 1 + (g & 1));
  assert.equal(m.size, n);
  for (let g = 0; g < n; g++) assert.equal(m.get(g), 1 + (g & 1));
  m.set(0, n, 0);
  assert.equal(m.size, 0);
  assert.equal(m.storageBytes, 0);
});

test('descending and interleaved changes agree with the model', () => {
  const N = 3000;
  const model = new Uint8Array(N);
  const m = new GfnRangeMap();
  for (let g = N - 1; g >= 0; g -= 2) { m.set(g, g + 1, 3); model[g] = 3; }
  for (let g = 0; g < N; g += 3) { m.set(g, g + 1, 1); model[g] = 1; }
  checkAgainst(m, model);
  for (let g = 0; g < N; g += 7) { m.set(g, Math.min(N, g + 5), 0); model.fill(0, g, Math.min(N, g + 5)); }
  checkAgainst(m, model);
});
