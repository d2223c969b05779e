import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageError, parseElf } from '../../src/vmm/loader/elf.js';
import { buildElf } from './elf-writer.js';

const code = new Uint8Array([0xf4, 0xeb, 0xfd]); // hlt; jmp $-1
const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);

/** The kvm-unit-tests shape: text at 4 MiB, data+bss after it (pc-platform-facts §1.2). */
function twoSegments(cls: 32 | 64) {
  return buildElf({
    cls,
    entry: 0x400000,
    segments: [
      { paddr: 0x400000, data: code, flags: 5 },
      { paddr: 0x401000, data, memsz: 0x2000, flags: 6 },
    ],
  });
}

function rejects(bytes: Uint8Array, message: string): void {
  assert.throws(() => parseElf(bytes), (e: unknown) => {
    assert.ok(e instanceof ImageError, `expected ImageError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

function patched(bytes: Uint8Array, edit: (dv: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer));
  return copy;
}

test('ELF32 (i386 container) executable: entry and PT_LOAD segments', () => {
  const elf = twoSegments(32);
  const img = parseElf(elf.bytes);
  assert.equal(img.elfClass, 32);
  assert.equal(img.machine, 3);
  assert.equal(img.entry, 0x400000);
  assert.deepEqual(img.segments, [
    { offset: elf.offsets[0], paddr: 0x400000, vaddr: 0x400000n, filesz: 3, memsz: 3, flags: 5 },
    { offset: elf.offsets[1], paddr: 0x401000, vaddr: 0x401000n, filesz: 8, memsz: 0x2000, flags: 6 },
  ]);
});

test('ELF64 executable, including a higher-half p_vaddr that does not fit 2^53', () => {
  const elf = buildElf({
    cls: 64,
    entry: 0x100000,
    segments: [{ paddr: 0x100000, vaddr: 0xffffffff80100000n, data: code, memsz: 0x1000, flags: 7 }],
  });
  const img = parseElf(elf.bytes);
  assert.equal(img.elfClass, 64);
  assert.equal(img.machine, 62);
  assert.equal(img.entry, 0x100000);
  assert.deepEqual(img.segments, [
    { offset: elf.offsets[0], paddr: 0x100000, vaddr: 0xffffffff80100000n, filesz: 3, memsz: 0x1000, flags: 7 },
  ]);
});

test('non-PT_LOAD headers and empty PT_LOADs are skipped; ELF32 may say EM_X86_64 (x32)', () => {
  const elf = buildElf({
    cls: 32,
    machine: 62,
    entry: 0x200000,
    segments: [
      { paddr: 0, data: new Uint8Array(4), type: 4 }, // PT_NOTE
      { paddr: 0x300000, data: new Uint8Array(0), memsz: 0 },
      { paddr: 0x200000, data: code },
    ],
  });
  const img = parseElf(elf.bytes);
  assert.deepEqual(img.segments.map((s) => s.paddr), [0x200000]);
});

test('identification errors', () => {
  rejects(new Uint8Array([0x7f, 0x45, 0x4c, 0x47]), 'the image is not an ELF file (it does not start with 0x7F "ELF")');
  rejects(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1]), 'the ELF identification is truncated (the file is 5 bytes)');
  const good = twoSegments(32).bytes;
  rejects(patched(good, (dv) => dv.setUint8(4, 3)), 'the ELF class 3 is not supported (only ELF32 = 1 and ELF64 = 2 exist)');
  rejects(
    patched(good, (dv) => dv.setUint8(5, 2)),
    'the ELF data encoding 2 is not little endian, which every x86 image must be',
  );
  rejects(patched(good, (dv) => dv.setUint8(6, 0)), 'the ELF identification version 0 is not 1 (EV_CURRENT)');
});

test('truncated ELF headers', () => {
  rejects(twoSegments(32).bytes.subarray(0, 51), 'the ELF header is truncated: the file has 51 bytes but the header needs 52');
  rejects(twoSegments(64).bytes.subarray(0, 63), 'the ELF header is truncated: the file has 63 bytes but the header needs 64');
});

test('type, machine and version errors', () => {
  const good = twoSegments(64).bytes;
  rejects(patched(good, (dv) => dv.setUint16(16, 3, true)), 'the ELF type 3 is not an executable (ET_EXEC = 2)');
  rejects(patched(good, (dv) => dv.setUint16(18, 40, true)), 'the ELF machine 40 is not x86 (EM_386 = 3 or EM_X86_64 = 62)');
  rejects(patched(good, (dv) => dv.setUint32(20, 0, true)), 'the ELF version 0 is not 1 (EV_CURRENT)');
});

test('program header table errors', () => {
  const e32 = twoSegments(32).bytes;
  const e64 = twoSegments(64).bytes;
  rejects(patched(e32, (dv) => dv.setUint16(44, 0, true)), 'the ELF file has no program headers, so there is nothing to load');
  rejects(
    patched(e64, (dv) => dv.setUint16(56, 0xffff, true)),
    'the ELF file uses extended program header numbering (e_phnum = 0xFFFF), which is not supported',
  );
  rejects(
    patched(e32, (dv) => dv.setUint16(42, 31, true)),
    'the ELF program header size 31 is smaller than the 32 bytes of an ELF32 program header',
  );
  rejects(
    patched(e64, (dv) => dv.setUint16(54, 40, true)),
    'the ELF program header size 40 is smaller than the 56 bytes of an ELF64 program header',
  );
  rejects(
    patched(e32, (dv) => dv.setUint32(28, e32.length - 40, true)),
    `the ELF program header table (2 entries of 32 bytes at offset 0x${(e32.length - 40).toString(16).toUpperCase()}) extends past the end of the ${e32.length}-byte file`,
  );
  rejects(
    patched(e32, (dv) => dv.setUint16(44, 1000, true)),
    `the ELF program header table (1000 entries of 32 bytes at offset 0x34) extends past the end of the ${e32.length}-byte file`,
  );
});

test('segment errors: filesz > memsz, data past the end of the file, wrap past 4 GiB', () => {
  const elf = twoSegments(32);
  const ph1 = elf.phoff + elf.phentsize; // second program header
  rejects(
    patched(elf.bytes, (dv) => dv.setUint32(ph1 + 20, 4, true)),
    'ELF segment 1 (PT_LOAD at physical 0x401000) has a file size of 0x8 bytes, larger than its memory size of 0x4',
  );
  rejects(
    patched(elf.bytes, (dv) => dv.setUint32(ph1 + 4, elf.bytes.length - 4, true)),
    `ELF segment 1 (PT_LOAD at physical 0x401000) needs file bytes 0x${(elf.bytes.length - 4).toString(16).toUpperCase()}-0x${(elf.bytes.length + 4).toString(16).toUpperCase()}, past the end of the ${elf.bytes.length}-byte file`,
  );
  rejects(
    patched(elf.bytes, (dv) => dv.setUint32(ph1 + 12, 0xfffff000, true)),
    'ELF segment 1 (PT_LOAD at physical 0xFFFFF000) of 0x2000 bytes wraps past the top of the 32-bit address space',
  );
});

test('a 64-bit field beyond 2^53 is refused', () => {
  const elf = twoSegments(64);
  rejects(
    patched(elf.bytes, (dv) => dv.setBigUint64(elf.phoff + 24, 0x0020000000000000n, true)),
    'the ELF field p_paddr = 0x20000000000000 is too large for any guest address',
  );
  rejects(
    patched(elf.bytes, (dv) => dv.setBigUint64(24, 0xffffffff80000000n, true)),
    'the ELF field e_entry = 0xFFFFFFFF80000000 is too large for any guest address',
  );
});

test('overlapping PT_LOAD segments are refused', () => {
  const elf = buildElf({
    cls: 32,
    entry: 0x400000,
    segments: [
      { paddr: 0x401000, data, memsz: 0x1000 },
      { paddr: 0x400000, data: code, memsz: 0x1001 },
    ],
  });
  rejects(elf.bytes, 'ELF segments at physical 0x400000-0x401001 and 0x401000-0x402000 overlap');
  // Touching (end == start) is fine.
  const touching = buildElf({
    cls: 32,
    entry: 0x400000,
    segments: [
      { paddr: 0x400000, data: code, memsz: 0x1000 },
      { paddr: 0x401000, data },
    ],
  });
  assert.equal(parseElf(touching.bytes).segments.length, 2);
});

test('an ELF with only empty or non-load segments is refused', () => {
  const elf = buildElf({ cls: 64, entry: 0, segments: [{ paddr: 0, data: new Uint8Array(4), type: 4 }] });
  rejects(elf.bytes, 'the ELF file has no loadable (PT_LOAD) segment with a non-zero size');
});
