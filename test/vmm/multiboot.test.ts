import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { ImageError, parseElf } from '../../src/vmm/loader/elf.js';
import {
  BOOT_INFO_BASE,
  findMultibootHeader,
  loadMultiboot,
  pcMemoryMap,
  type MultibootModule,
} from '../../src/vmm/loader/multiboot.js';
import { buildElf, bytesOf, multibootHeader } from './elf-writer.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const code = [0xf4, 0xeb, 0xfd]; // hlt; jmp $-1

/** A kvm-unit-tests-shaped kernel: header first in .text at 4 MiB, data+bss after (pc-platform-facts §1.1-1.2). */
function kernel(flags = 0, cls: 32 | 64 = 32, entry: number = 0x40000c) {
  return buildElf({
    cls,
    entry,
    segments: [
      { paddr: 0x400000, data: bytesOf(multibootHeader(flags), code) },
      { paddr: 0x401000, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), memsz: 0x2000, flags: 6 },
    ],
  }).bytes;
}

/** A kernel with a single text segment at `paddr` (header included) and `memsz` bytes. */
function kernelAt(paddr: number, memsz?: number) {
  return buildElf({ cls: 32, entry: paddr, segments: [{ paddr, data: bytesOf(multibootHeader(0), code), memsz }] }).bytes;
}

function rejects(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImageError, `expected ImageError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

function cstring(mem: PhysMemory, addr: number): string {
  const bytes: number[] = [];
  for (let a = addr; mem.read8(a) !== 0; a++) bytes.push(mem.read8(a));
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function isZero(mem: PhysMemory, addr: number, len: number): boolean {
  return mem.read(addr, len).every((b) => b === 0);
}

// ---- header search (Multiboot 0.6.96 §3.1.1-3.1.2) ----

test('the header is found 4-byte aligned within the first 8192 bytes', () => {
  const at = (off: number, total = off + 16) => {
    const f = new Uint8Array(total);
    f.set(multibootHeader(0), off);
    return f;
  };
  assert.equal(findMultibootHeader(at(0)).offset, 0);
  assert.equal(findMultibootHeader(at(8180)).offset, 8180); // last place a 12-byte header fits
  const none = 'the image has no Multiboot header (magic 0x1BADB002, 4-byte aligned) in its first 8192 bytes';
  rejects(() => findMultibootHeader(at(8184)), none);
  rejects(() => findMultibootHeader(at(8192)), none);
  rejects(() => findMultibootHeader(at(2)), none); // not 4-byte aligned
  rejects(() => findMultibootHeader(new Uint8Array(8)), none);
  rejects(() => loadMultiboot(new PhysMemory(16 * MiB), buildElf({ cls: 32, entry: 0x400000, segments: [{ paddr: 0x400000, data: new Uint8Array(code) }] }).bytes, { imagePath: 'k' }), none);
});

test('a bad checksum is reported, and a later valid header still wins', () => {
  const bad = bytesOf(multibootHeader(0, undefined, 1), new Uint8Array(4));
  rejects(
    () => findMultibootHeader(bad),
    'the Multiboot header at file offset 0x0 has a bad checksum (magic + flags + checksum must be 0 modulo 2^32)',
  );
  const thenGood = bytesOf(multibootHeader(0, undefined, 1), multibootHeader(2));
  assert.deepEqual(findMultibootHeader(thenGood), { offset: 12, flags: 2 });
});

test('required flag bits: 0 and 1 accepted, 2 (video) and other low bits refused, high bits ignored', () => {
  assert.equal(findMultibootHeader(multibootHeader(0x3)).flags, 3);
  assert.equal(findMultibootHeader(multibootHeader(0x20000)).flags, 0x20000); // bit 17: optional
  rejects(
    () => findMultibootHeader(multibootHeader(0x4)),
    'the kernel requires a video mode (Multiboot flag bit 2), but vsmvisor has no display',
  );
  rejects(
    () => findMultibootHeader(multibootHeader(0x8008)),
    'the kernel requires Multiboot features this loader does not know (flag bits 3, 15)',
  );
});

// ---- memory map ----

test('memory map for 128 MiB: low RAM, legacy hole reserved, RAM from 1 MiB', () => {
  assert.deepEqual(pcMemoryMap(128 * MiB), [
    { base: 0, length: 0xa0000, type: 1 },
    { base: 0xa0000, length: 0x60000, type: 2 },
    { base: 0x100000, length: 127 * MiB, type: 1 },
  ]);
});

test('memory map above 3.5 GiB: the MMIO window is reserved and RAM resumes at 4 GiB', () => {
  assert.deepEqual(pcMemoryMap(0xf0000000), [
    { base: 0, length: 0xa0000, type: 1 },
    { base: 0xa0000, length: 0x60000, type: 2 },
    { base: 0x100000, length: 0xe0000000 - 0x100000, type: 1 },
    { base: 0xe0000000, length: 0x10000000, type: 2 },
  ]);
  assert.deepEqual(pcMemoryMap(8 * GiB).slice(3), [
    { base: 0xe0000000, length: 0x20000000, type: 2 },
    { base: 4 * GiB, length: 4 * GiB, type: 1 },
  ]);
});

// ---- a full load, every MBI field (Multiboot 0.6.96 §3.3, pc-platform-facts §1.4) ----

test('full ELF load with a module: segments, entry state and every MBI field', () => {
  const mem = new PhysMemory(128 * MiB);
  mem.fill(0x401000, 0x2000, 0xcc); // bss must be zeroed, not just left untouched
  const env = new TextEncoder().encode('NR_CPUS=4\nMEMSIZE=128\n');
  const boot = loadMultiboot(mem, kernel(0x3), {
    imagePath: 'guests/build/t.elf',
    append: 'foo bar',
    modules: [{ data: env, string: 'env.txt' }],
  });

  // Entry state (§3.2): EAX magic, EBX = MBI.
  assert.equal(boot.entry, 0x40000c);
  assert.equal(boot.eax, 0x2badb002);
  assert.equal(boot.ebx, 0x10000);
  assert.equal(boot.kernelStart, 0x400000);
  assert.equal(boot.kernelEnd, 0x403000);
  assert.equal(boot.highestAddress, 0x403000);
  assert.equal(boot.cmdline, 'guests/build/t.elf foo bar');

  // Segments: filesz copied, the rest zeroed up to memsz.
  assert.deepEqual([...mem.read(0x400000, 15)], [...multibootHeader(0x3), ...code]);
  assert.deepEqual([...mem.read(0x401000, 9)], [1, 2, 3, 4, 5, 6, 7, 8, 0]);
  assert.ok(isZero(mem, 0x401008, 0x2000 - 8), 'bss is zero');

  // MBI layout: 116-byte MBI, mmap at +0x80, module list at +0xD0, strings from +0xE0.
  const mbi = boot.ebx;
  assert.equal(mem.read32(mbi + 0), 0x24d, 'flags: mem (0), cmdline (2), mods (3), mmap (6), loader name (9)');
  assert.equal(mem.read32(mbi + 4), 640, 'mem_lower in KiB');
  assert.equal(mem.read32(mbi + 8), (128 * MiB - MiB) / 1024, 'mem_upper: KiB from 1 MiB to the end of RAM');
  assert.equal(mem.read32(mbi + 12), 0, 'boot_device (flag 1 clear)');
  assert.equal(mem.read32(mbi + 16), 0x100e0, 'cmdline');
  assert.equal(cstring(mem, 0x100e0), 'guests/build/t.elf foo bar');
  assert.equal(mem.read32(mbi + 20), 1, 'mods_count');
  assert.equal(mem.read32(mbi + 24), 0x100d0, 'mods_addr');
  assert.ok(isZero(mem, mbi + 28, 16), 'symbol info (flags 4/5 clear)');
  assert.equal(mem.read32(mbi + 44), 3 * 24, 'mmap_length');
  assert.equal(mem.read32(mbi + 48), 0x10080, 'mmap_addr');
  assert.ok(isZero(mem, mbi + 52, 12), 'drives and config table (flags 7/8 clear)');
  assert.equal(mem.read32(mbi + 64), 0x100fb, 'boot_loader_name');
  assert.equal(cstring(mem, 0x100fb), 'vsmvisor');
  assert.ok(isZero(mem, mbi + 68, 116 - 68), 'APM, VBE and framebuffer fields (flags 10-12 clear)');

  // Memory map entries {u32 size = 20, u64 base, u64 length, u32 type}.
  const entries = [];
  for (let e = 0x10080; e < 0x10080 + 72; e += mem.read32(e) + 4) {
    entries.push([mem.read32(e), mem.read64(e + 4), mem.read64(e + 12), mem.read32(e + 20)]);
  }
  assert.deepEqual(entries, [
    [20, 0n, 0xa0000n, 1],
    [20, 0xa0000n, 0x60000n, 2],
    [20, 0x100000n, BigInt(127 * MiB), 1],
  ]);

  // Module entry {mod_start, mod_end (exclusive), string, reserved}; contents page-aligned low.
  assert.equal(mem.read32(0x100d0), 0x11000, 'mod_start: first page after the boot information');
  assert.equal(mem.read32(0x100d4), 0x11000 + env.length, 'mod_end');
  assert.equal(mem.read32(0x100d8), 0x10104, 'module string');
  assert.equal(mem.read32(0x100dc), 0, 'reserved');
  assert.equal(cstring(mem, 0x10104), 'env.txt');
  assert.deepEqual(mem.read(0x11000, env.length), env);
  assert.deepEqual(boot.modules, [{ start: 0x11000, end: 0x11000 + env.length, string: 'env.txt' }]);

  // Page 0 (AP trampoline) and the legacy hole are untouched.
  assert.ok(isZero(mem, 0, 0x1000));
  assert.ok(isZero(mem, 0xa0000, 0x60000));
});

test('without modules or --append: flag 3 clear, mods 0, command line is the image path alone', () => {
  const mem = new PhysMemory(64 * MiB);
  const boot = loadMultiboot(mem, kernel(), { imagePath: 'hello.elf' });
  assert.equal(mem.read32(boot.ebx), 0x245);
  assert.equal(mem.read32(boot.ebx + 20), 0);
  assert.equal(mem.read32(boot.ebx + 24), 0);
  assert.equal(cstring(mem, mem.read32(boot.ebx + 16)), 'hello.elf');
  assert.equal(mem.read32(boot.ebx + 8), 63 * 1024);
  assert.deepEqual(boot.modules, []);
});

test('RAM above 4 GiB: mem_upper stops at the MMIO window and the mmap lists RAM at 4 GiB', () => {
  const mem = new PhysMemory(8 * GiB);
  const boot = loadMultiboot(mem, kernel(0, 64), { imagePath: 'k' });
  assert.equal(mem.read32(boot.ebx + 8), (0xe0000000 - MiB) / 1024);
  assert.equal(mem.read32(boot.ebx + 44), 5 * 24);
  const last = mem.read32(boot.ebx + 48) + 4 * 24;
  assert.deepEqual([mem.read32(last), mem.read64(last + 4), mem.read64(last + 12), mem.read32(last + 20)], [
    20,
    0x100000000n,
    0x100000000n,
    1,
  ]);
});

test('modules too large for low memory go page-aligned after the kernel', () => {
  const mem = new PhysMemory(64 * MiB);
  const big = new Uint8Array(700 * 1024).fill(0xab);
  const small = new Uint8Array([9, 9, 9]);
  const mods: MultibootModule[] = [
    { data: big, string: 'big' },
    { data: small, string: 'small' },
  ];
  const boot = loadMultiboot(mem, kernel(), { imagePath: 'k', modules: mods });
  const bigEnd = 0x403000 + big.length;
  const smallStart = Math.ceil(bigEnd / 4096) * 4096;
  assert.deepEqual(boot.modules, [
    { start: 0x403000, end: bigEnd, string: 'big' },
    { start: smallStart, end: smallStart + 3, string: 'small' },
  ]);
  assert.equal(boot.highestAddress, smallStart + 3);
  assert.deepEqual(mem.read(0x403000, big.length), big);
  assert.deepEqual([...mem.read(smallStart, 3)], [9, 9, 9]);
  const list = mem.read32(boot.ebx + 24);
  assert.deepEqual([mem.read32(list), mem.read32(list + 4), mem.read32(list + 16), mem.read32(list + 20)], [
    0x403000,
    bigEnd,
    smallStart,
    smallStart + 3,
  ]);
});

test('a module that would overlap a low kernel goes above 1 MiB instead', () => {
  const mem = new PhysMemory(16 * MiB);
  const boot = loadMultiboot(mem, kernelAt(0x20000, 0x1000), {
    imagePath: 'k',
    modules: [{ data: new Uint8Array(0x10000).fill(1), string: 'm' }],
  });
  assert.deepEqual(boot.modules, [{ start: 0x100000, end: 0x110000, string: 'm' }]);
});

// ---- the address-field (flag bit 16) form, §3.1.3 ----

/** A flat binary: 0x20 bytes of padding, the header at 0x20, code at 0x40. */
function flat(fields: { header: number; load: number; loadEnd: number; bssEnd: number; entry: number }) {
  const hdr = multibootHeader(0x10000, [fields.header, fields.load, fields.loadEnd, fields.bssEnd, fields.entry]);
  return bytesOf(new Uint8Array(0x20).fill(0x90), hdr, code);
}

test('flag bit 16: load_addr/load_end_addr/bss_end_addr/entry_addr are honoured', () => {
  const len = 0x20 + 32 + code.length;
  const image = flat({ header: 0x100020, load: 0x100000, loadEnd: 0x100000 + len, bssEnd: 0x102000, entry: 0x100040 });
  const mem = new PhysMemory(16 * MiB);
  mem.fill(0x100000 + len, 0x100, 0xcc);
  const boot = loadMultiboot(mem, image, { imagePath: 'flat.bin' });
  assert.equal(boot.entry, 0x100040);
  assert.equal(boot.kernelStart, 0x100000);
  assert.equal(boot.kernelEnd, 0x102000);
  assert.deepEqual(mem.read(0x100000, len), image);
  assert.ok(isZero(mem, 0x100000 + len, 0x2000 - len));

  // load_end_addr = 0: the rest of the file; bss_end_addr = 0: no bss.
  const mem2 = new PhysMemory(16 * MiB);
  const whole = flat({ header: 0x200020, load: 0x200000, loadEnd: 0, bssEnd: 0, entry: 0x200040 });
  const boot2 = loadMultiboot(mem2, whole, { imagePath: 'flat.bin' });
  assert.equal(boot2.kernelEnd, 0x200000 + whole.length);
  assert.deepEqual(mem2.read(0x200000, whole.length), whole);
});

test('flag bit 16: inconsistent address fields are refused', () => {
  const mem = new PhysMemory(16 * MiB);
  const load = (f: Parameters<typeof flat>[0]) => () => loadMultiboot(mem, flat(f), { imagePath: 'k' });
  const base = { header: 0x100020, load: 0x100000, loadEnd: 0, bssEnd: 0, entry: 0x100040 };
  rejects(load({ ...base, load: 0x100030 }), 'the Multiboot load_addr 0x100030 is above header_addr 0x100020');
  rejects(load({ ...base, load: 0xffff0 }), 'the Multiboot header_addr 0x100020 puts load_addr 0xFFFF0 before the start of the file');
  rejects(load({ ...base, loadEnd: 0xfffff }), 'the Multiboot load_end_addr 0xFFFFF is below load_addr 0x100000');
  rejects(
    load({ ...base, loadEnd: 0x100100 }),
    'the Multiboot address fields ask for 0x100 bytes from file offset 0x0, past the end of the 67-byte file',
  );
  rejects(
    load({ ...base, bssEnd: 0x100010 }),
    'the Multiboot bss_end_addr 0x100010 is below the end of the loaded data 0x100043',
  );
  rejects(
    load({ header: 0xffffffff, load: 0xfffffff0, loadEnd: 0, bssEnd: 0, entry: 0xfffffff0 }),
    'the Multiboot image at 0xFFFFFFF0 (0x32 bytes) extends past 4 GiB',
  );
  rejects(
    load({ ...base, loadEnd: 0x100000 }),
    'the Multiboot kernel image has nothing to load (its size is 0)',
  );
  rejects(
    () => findMultibootHeader(multibootHeader(0x10000)),
    'the Multiboot header at file offset 0x0 sets flag bit 16 but its address fields are cut off by the end of the file',
  );
  assert.equal(mem.allocatedBytes, 0, 'refused images write nothing');
});

// ---- refusals ----

test('kernel segments outside RAM, in the legacy hole or over the boot information are refused, writing nothing', () => {
  const mem = new PhysMemory(128 * MiB);
  const ram = '(0x0-0xA0000, 0x100000-0x8000000)';
  rejects(
    () => loadMultiboot(mem, kernelAt(0xb8000), { imagePath: 'k' }),
    `the kernel segment at 0xB8000-0xB800F is not inside guest RAM ${ram}`,
  );
  rejects(
    () => loadMultiboot(mem, kernelAt(0x7fff000, 0x2000), { imagePath: 'k' }),
    `the kernel segment at 0x7FFF000-0x8001000 is not inside guest RAM ${ram}`,
  );
  // Boot info for imagePath 'k': MBI + mmap (0x10000-0x100C8), then "k\0" at 0x100D0 and "vsmvisor\0".
  rejects(
    () => loadMultiboot(mem, kernelAt(0x10000), { imagePath: 'k' }),
    'the kernel segment at 0x10000-0x1000F overlaps the Multiboot boot information at 0x10000-0x100DB',
  );
  assert.equal(mem.allocatedBytes, 0);
});

test('an ELF64 entry point above 4 GiB is refused', () => {
  rejects(
    () => loadMultiboot(new PhysMemory(16 * MiB), kernel(0, 64, 2 ** 32), { imagePath: 'k' }),
    'the kernel entry point 0x100000000 is above 4 GiB, but a Multiboot kernel starts in 32-bit mode',
  );
});

test('a header without address fields in a non-ELF file is refused', () => {
  rejects(
    () => loadMultiboot(new PhysMemory(16 * MiB), bytesOf(multibootHeader(0), code), { imagePath: 'k' }),
    'the Multiboot header has no address fields (flag bit 16) and the image is not an ELF file, so there is nothing to load',
  );
});

test('strings with NUL, an oversized command line and modules beyond RAM are refused', () => {
  const mem = new PhysMemory(8 * MiB);
  rejects(
    () => loadMultiboot(mem, kernel(), { imagePath: 'k', append: 'a\0b' }),
    'the kernel command line contains a NUL character, which would cut it short',
  );
  rejects(
    () => loadMultiboot(mem, kernel(), { imagePath: 'k', modules: [{ data: new Uint8Array(1), string: 'x\0' }] }),
    'the string of module 0 contains a NUL character, which would cut it short',
  );
  const size = 0xd0 + 2 + 600 * 1024 + 9;
  rejects(
    () => loadMultiboot(mem, kernel(), { imagePath: 'k', append: 'x'.repeat(600 * 1024 - 1) }),
    `the command line and module strings need ${size} bytes of boot information, more than fits between 0x10000 and 0xA0000`,
  );
  rejects(
    () => loadMultiboot(mem, kernel(), { imagePath: 'k', modules: [{ data: new Uint8Array(5 * MiB), string: 'm' }] }),
    'the module area after the kernel at 0x403000-0x903000 is not inside guest RAM (0x0-0xA0000, 0x100000-0x800000)',
  );
  assert.equal(mem.allocatedBytes, 0);
});

// ---- real guests, when the guest build has produced them ----

for (const name of ['hello.elf', 'hello.elf64']) {
  const file = new URL(`../../../guests/build/${name}`, import.meta.url);
  const skip = existsSync(file) ? false : `guests/build/${name} is not built (run npm run guests)`;
  test(`guests/build/${name} loads as a Multiboot kernel`, { skip }, () => {
    const image = new Uint8Array(readFileSync(file));
    const mem = new PhysMemory(128 * MiB);
    const boot = loadMultiboot(mem, image, { imagePath: `guests/build/${name}`, append: 'x' });
    assert.equal(boot.eax, 0x2badb002);
    assert.equal(boot.ebx, BOOT_INFO_BASE);
    assert.ok(boot.entry >= boot.kernelStart && boot.entry < boot.kernelEnd, 'entry lies inside the loaded image');
    assert.equal(cstring(mem, mem.read32(boot.ebx + 16)), `guests/build/${name} x`);
    // Every PT_LOAD is in memory as the file has it, zero-filled up to p_memsz.
    for (const s of parseElf(image).segments) {
      assert.deepEqual(mem.read(s.paddr, s.filesz), image.subarray(s.offset, s.offset + s.filesz));
      assert.ok(isZero(mem, s.paddr + s.filesz, s.memsz - s.filesz));
    }
  });
}
