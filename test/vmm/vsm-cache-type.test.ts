// HV_CACHE_TYPE (tlfs-vsm-facts §5.4) from the PAT entry a leaf paging entry selects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheTypeFromPat, patIndex } from '../../src/vmm/vsm/cache-type.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';

const RESET_PAT = 0x0007_0406_0007_0406n; // WB, WT, UC-, UC, WB, WT, UC-, UC

test('§5.4: the power-on PAT gives WB 6, WT 4, UC- as Uncached 0, UC 0', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((k) => cacheTypeFromPat(RESET_PAT, k)), [6, 4, 0, 0, 6, 4, 0, 0]);
  assert.equal(cacheTypeFromPat(0x0105n, 0), 5); // WP
  assert.equal(cacheTypeFromPat(0x0105n, 1), 1); // WC
  assert.throws(() => cacheTypeFromPat(0x02n, 0), /not a memory type/);
  assert.throws(() => cacheTypeFromPat(RESET_PAT, 8), VsmError);
});

test('SDM 4.9.2: PAT index = PAT:PCD:PWT, PAT at bit 7 in a 4 KiB entry and bit 12 in a large one', () => {
  assert.equal(patIndex(0x08n, false), 1);          // PWT
  assert.equal(patIndex(0x10n, false), 2);          // PCD
  assert.equal(patIndex(0x80n, false), 4);          // PAT (4 KiB)
  assert.equal(patIndex(0x80n, true), 0);           // bit 7 is PS in a large entry, not PAT
  assert.equal(patIndex(0x1098n, true), 7);         // PAT bit 12 + PCD + PWT
});
