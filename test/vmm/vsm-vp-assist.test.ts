// The VSM parts of the VP assist page (tlfs-vsm-facts §3.3 layout, §3.4 entry
// reasons, §3.5 VTL return actions), checked byte by byte in guest memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhysMemory } from '../../src/memory/phys-memory.js';
import { VpAssistPage } from '../../src/vmm/vsm/vp-assist.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';

const PAGE = 0x5000;

function page(): { mem: PhysMemory; p: VpAssistPage } {
  const mem = new PhysMemory(1 << 20);
  return { mem, p: new VpAssistPage(mem, PAGE) };
}

test('§3.3: the MSR value gives the page (bit 0 enable, GPA in 63:12); disabled means no page', () => {
  const mem = new PhysMemory(1 << 20);
  assert.equal(VpAssistPage.fromMsr(mem, 0x5000n), null);
  assert.equal(VpAssistPage.fromMsr(mem, 0x5001n)?.gpa, 0x5000);
  assert.equal(VpAssistPage.fromMsr(mem, 0x5ffbn)?.gpa, 0x5000); // bits 11:1 are RsvdP
  assert.throws(() => VpAssistPage.fromMsr(mem, 0x1_0000_0001n), /not guest RAM/);
  assert.throws(() => new VpAssistPage(mem, 0x5008), VsmError);
});

test('§3.3/§3.4: the entry reason is the u32 at 0x08 (1 VtlCall, 2 interrupt, 3 intercept)', () => {
  const { mem, p } = page();
  mem.fill(PAGE, 0x20, 0xee);
  p.writeEntryReason(3);
  assert.deepEqual([...mem.read(PAGE + 0x08, 4)], [3, 0, 0, 0]);
  assert.equal(mem.read8(PAGE + 0x07), 0xee); // ReservedZ0 untouched
  assert.equal(mem.read8(PAGE + 0x0c), 0xee); // VinaStatus untouched
  p.writeEntryReason(1);
  assert.equal(p.entryReason, 1);
  assert.throws(() => p.writeEntryReason(4), /entry reason/);
});

test('§3.3: VinaAsserted is bit 0 of the byte at 0x0C; bits 7:1 are left alone', () => {
  const { mem, p } = page();
  mem.write8(PAGE + 0x0c, 0xf0);
  p.writeVinaAsserted(true);
  assert.equal(mem.read8(PAGE + 0x0c), 0xf1);
  assert.equal(p.vinaAsserted, true);
  p.writeVinaAsserted(false);
  assert.equal(mem.read8(PAGE + 0x0c), 0xf0);
  assert.equal(p.vinaAsserted, false);
});

test('§3.3: VtlReturnX64Rax at 0x10 and VtlReturnX64Rcx at 0x18; the x86 view is EAX 0x10, ECX 0x14, EDX 0x18', () => {
  const { mem, p } = page();
  p.writeVtlReturn64({ raxLo: 0x55667788, raxHi: 0x11223344, rcxLo: 0xddeeff00 | 0, rcxHi: 0x99aabbcc });
  assert.deepEqual([...mem.read(PAGE + 0x10, 16)], [
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99,
  ]);
  assert.deepEqual(p.readVtlReturn64(), { raxLo: 0x55667788, raxHi: 0x11223344, rcxLo: 0xddeeff00, rcxHi: 0x99aabbcc }, 'halves read as uint32s');
  assert.deepEqual(p.readVtlReturn32(), { eax: 0x55667788, ecx: 0x11223344, edx: 0xddeeff00 });
  assert.throws(() => p.writeVtlReturn64({ raxLo: 2 ** 32, raxHi: 0, rcxLo: 0, rcxHi: 0 }), VsmError);
  assert.throws(() => p.writeVtlReturn64({ raxLo: 0, raxHi: 0, rcxLo: 0.5, rcxHi: 0 }), VsmError);
  assert.equal(mem.read64(PAGE + 0x10), 0x1122334455667788n, 'a refused write changes nothing');
});

test('§3.3: the intercept message slot is 256 bytes at 0x70, padded with zeroes', () => {
  const { mem, p } = page();
  mem.fill(PAGE + 0x70, 256, 0xaa);
  p.writeInterceptMessage(Uint8Array.from([1, 0, 0, 0x80, 0x50]));
  assert.deepEqual([...mem.read(PAGE + 0x70, 6)], [1, 0, 0, 0x80, 0x50, 0]);
  assert.equal(mem.read8(PAGE + 0x16f), 0);
  assert.equal(mem.read8(PAGE + 0x170), 0); // the next area is not the slot's: untouched (zero RAM)
  assert.equal(p.readInterceptMessage().length, 256);
  assert.throws(() => p.writeInterceptMessage(new Uint8Array(257)), VsmError);
});

/** A signal-event action as §3.5 lays it out: type u64 1, VP u32 @8, VTL u8 @12, SINT u8 @13, flag u16 @14. */
function signalEventBytes(vp: number, vtl: number, sint: number, flag: number): number[] {
  return [1, 0, 0, 0, 0, 0, 0, 0, vp & 0xff, (vp >> 8) & 0xff, (vp >> 16) & 0xff, vp >>> 24, vtl, sint, flag & 0xff, flag >> 8];
}

test('§3.5: return actions at 0x170 are read in order until type 0, then the area is zeroed', () => {
  const { mem, p } = page();
  mem.write(PAGE + 0x170, Uint8Array.from([...signalEventBytes(2, 0, 5, 0x123), ...signalEventBytes(0x01020304, 1, 15, 2047)]));
  mem.write8(PAGE + 0x190 + 8, 0x77); // after the end marker (type 0 at 0x190): ignored
  const actions = p.takeReturnActions();
  assert.deepEqual(actions, [
    { type: 'signal-event', targetVp: 2, targetVtl: 0, targetSint: 5, flagNumber: 0x123 },
    { type: 'signal-event', targetVp: 0x01020304, targetVtl: 1, targetSint: 15, flagNumber: 2047 },
  ]);
  assert.ok(mem.read(PAGE + 0x170, 256).every((b) => b === 0));
  assert.deepEqual(p.readReturnActions(), []);
});

test('§3.5: an unknown action type stops processing; 16 entries fill the 256-byte area exactly', () => {
  const { mem, p } = page();
  mem.write(PAGE + 0x170, Uint8Array.from([...signalEventBytes(1, 0, 1, 1), 9, 0, 0, 0, 0, 0, 0, 0, ...signalEventBytes(3, 0, 3, 3)]));
  assert.equal(p.readReturnActions().length, 1);
  mem.fill(PAGE + 0x170, 256, 0);
  for (let off = 0; off < 240; off += 16) mem.write(PAGE + 0x170 + off, Uint8Array.from(signalEventBytes(off, 0, 0, 0)));
  mem.write(PAGE + 0x170 + 240, Uint8Array.from(signalEventBytes(240, 0, 0, 0)));
  assert.equal(p.readReturnActions().length, 16); // 16 entries of 16 bytes fill the 256-byte area exactly
  assert.equal(mem.read8(PAGE + 0x270), 0);       // nothing was written past it
});
