// The host side of protected memory (kvm-api-facts §4.1 "Host-side behaviour",
// §4.2; issue 6's test list): device models reach guest memory only through
// GuestMemoryAccess, which refuses pages the guest has not shared (the SIGBUS
// analogue) and copies nothing; get_user_pages without the KVM flag is EFAULT;
// the guest's own accesses and KVM's (emulated instructions, locked
// read-modify-write, string ops, page walks) are not affected; pages the
// host gets back are zeroed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { KvmError } from '../../src/kvm/errors.js';
import { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE } from '../../src/kvm/kvm-hypercall.js';
import { pinGuestMemory } from '../../src/kvm/protected-memory.js';
import { GuestMemoryAccess, GuestMemoryAccessError, ProtectedMemoryError } from '../../src/vmm/guest-memory-access.js';
import { assemble } from '../x86/helpers/test-machine.js';
import { enterLong64, writeCode } from './guest-setup.js';

const MiB = 1 << 20;
const CODE = 0x1000, PROG = 0x2000, BUF = 0x30000;
const bytes = (n: number, f: (k: number) => number) => Uint8Array.from({ length: n }, (_, k) => f(k) & 0xff);

/** RFC-mode VM: slot 0 = 4 MiB, 64-bit vCPU; `vmcall; hlt` at CODE. */
function setup(): { vm: Vm; v: Vcpu; dev: GuestMemoryAccess } {
  const vm = new Vm({ memorySize: 16 * MiB, defaultMemslot: false, protectedMemoryRfc: true });
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 4 * MiB });
  const v = vm.createVcpu(0);
  writeCode(v, CODE, [0x0f, 0x01, 0xc1, 0xf4]);
  enterLong64(v, CODE);
  return { vm, v, dev: new GuestMemoryAccess(vm) };
}

/** The guest's own hypercall (the KVM ABI): returns RAX. */
function hypercall(v: Vcpu, nr: number, a0 = 0, a1 = 0): bigint {
  v.setMpState(0);
  const r = v.getRegs();
  r.rip = BigInt(CODE); r.rax = BigInt(nr); r.rbx = BigInt(a0); r.rcx = BigInt(a1);
  v.setRegs(r);
  assert.equal(v.run(100).reason, 'hlt');
  return v.getRegs().rax;
}
const enable = (v: Vcpu) => assert.equal(hypercall(v, KVM_HC_ENABLE_MEM_PROTECTED), 0n);
const share = (v: Vcpu, gpa: number, pages = 1) => assert.equal(hypercall(v, KVM_HC_MEM_SHARE, gpa / 4096, pages), 0n);
const unshare = (v: Vcpu, gpa: number, pages = 1) => assert.equal(hypercall(v, KVM_HC_MEM_UNSHARE, gpa / 4096, pages), 0n);

/** Runs guest code (Intel syntax, 64-bit) at PROG until HLT; it must not exit otherwise. */
function runGuest(v: Vcpu, src: string): void {
  const a = assemble(`.code64\n${src}\nhlt\n`, PROG);
  v.vm.mem.write(PROG, a.bytes);
  v.setMpState(0);
  const r = v.getRegs(); r.rip = BigInt(PROG); v.setRegs(r);
  const e = v.run(10_000);
  assert.equal(e.reason, 'hlt', `guest code stopped with ${e.reason}`);
}

const isProtected = (e: unknown, gpa: number, access: 'read' | 'write') =>
  e instanceof ProtectedMemoryError && e.gpa === gpa && e.access === access && /nothing was copied/.test(e.message);

test('a device model reading or writing a private page fails, and nothing is copied in either direction', () => {
  const { vm, v, dev } = setup();
  const secret = bytes(64, (k) => 0x40 + k);
  vm.mem.write(BUF, secret);
  enable(v);
  assert.throws(() => dev.read(BUF, 16), (e) => isProtected(e, BUF, 'read'));
  const dest = new Uint8Array(16).fill(0xee);
  assert.throws(() => dev.readInto(BUF + 8, dest), (e) => isProtected(e, BUF, 'read'));
  assert.deepEqual(dest, new Uint8Array(16).fill(0xee), 'the destination is untouched');
  assert.throws(() => dev.write(BUF, new Uint8Array(16).fill(0xaa)), (e) => isProtected(e, BUF, 'write'));
  assert.deepEqual(vm.mem.read(BUF, 64), secret, 'guest memory is untouched');
});

test('the whole range is checked before copying: a write from a shared page into a private one writes neither', () => {
  const { vm, v, dev } = setup();
  enable(v);
  share(v, BUF);
  vm.mem.write(BUF + 0xff0, new Uint8Array(0x20).fill(0x11));
  assert.throws(() => dev.write(BUF + 0xff0, new Uint8Array(0x20).fill(0x99)), (e) => isProtected(e, BUF + 0x1000, 'write'));
  assert.deepEqual(vm.mem.read(BUF + 0xff0, 0x20), new Uint8Array(0x20).fill(0x11), 'not even the shared half was written');
  const dest = new Uint8Array(0x20);
  assert.throws(() => dev.readInto(BUF + 0xff0, dest), (e) => isProtected(e, BUF + 0x1000, 'read'));
  assert.deepEqual(dest, new Uint8Array(0x20), 'not even the shared half was read');
});

test('after MEM_SHARE the device model reads and writes the page, and the guest sees its writes', () => {
  const { vm, v, dev } = setup();
  vm.mem.write(BUF, bytes(16, (k) => k + 1));
  enable(v);
  share(v, BUF);
  assert.deepEqual(dev.read(BUF, 16), bytes(16, (k) => k + 1));
  dev.write(BUF + 0x100, bytes(8, (k) => 0xa0 + k));
  runGuest(v, `mov rax, [${BUF + 0x100}]`);
  assert.equal(v.getRegs().rax, 0xa7a6a5a4a3a2a1a0n);
  assert.throws(() => dev.read(BUF + 0x1000, 1), (e) => isProtected(e, BUF + 0x1000, 'read'), 'the next page stays private');
});

test('after MEM_UNSHARE the device model fails again; the guest keeps its data; the host gets the page back only zeroed', () => {
  const { vm, v, dev } = setup();
  enable(v);
  share(v, BUF);
  dev.write(BUF, bytes(8, () => 0x5a));
  unshare(v, BUF);
  const dest = new Uint8Array(8);
  assert.throws(() => dev.readInto(BUF, dest), (e) => isProtected(e, BUF, 'read'));
  assert.deepEqual(dest, new Uint8Array(8), 'the content is gone for the host: nothing came back');
  runGuest(v, `mov rax, [${BUF}]`);
  assert.equal(v.getRegs().rax, 0x5a5a5a5a5a5a5a5an, 'UNSHARE does not zero: the guest still has its data');

  // Memory goes back to the host when its memslot is deleted ("freed protected
  // pages are zeroed before return to the host", §4.1): protected pages are
  // zeroed, shared ones keep their content, and nothing stays protected.
  const SLOT1 = 8 * MiB;
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: SLOT1, memorySize: MiB }); // protected at once (after ENABLE)
  vm.mem.write(SLOT1, new Uint8Array(4096).fill(0x77));          // the guest's data in a private page
  vm.mem.write(SLOT1 + 0x1000, new Uint8Array(4096).fill(0x66)); // and in a page it shared
  share(v, SLOT1 + 0x1000);
  unshare(v, SLOT1 + 0x1000);
  share(v, SLOT1 + 0x1000);
  assert.throws(() => dev.read(SLOT1, 1), ProtectedMemoryError);
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: SLOT1, memorySize: 0 });
  assert.deepEqual(vm.mem.read(SLOT1, 4096), new Uint8Array(4096), 'the private page was zeroed');
  assert.deepEqual(vm.mem.read(SLOT1 + 0x1000, 4096), new Uint8Array(4096).fill(0x66), 'the shared page kept its content');
  assert.deepEqual(vm.protectedMemory!.ranges().map((r) => [r.start, r.end]), [[0, 1024]], 'slot 1 left nothing protected');
  assert.throws(() => dev.read(SLOT1, 1), GuestMemoryAccessError, 'no longer guest RAM at all');
  // Created again (still mem_protected): protected from the start, and zero.
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: SLOT1, memorySize: MiB });
  assert.throws(() => dev.read(SLOT1 + 0x1000, 1), ProtectedMemoryError);
});

test('the guest\'s own accesses are unaffected, also emulated locked read-modify-write, string ops and page walks, while the device is refused', () => {
  const { vm, v, dev } = setup();
  vm.mem.write64(BUF, 0x1122334455667788n);
  vm.mem.write64(BUF + 8, 100n);
  vm.mem.write32(BUF + 16, 41);
  enable(v);
  // Everything is private now: the code, the stack and the page tables at 0x20000 (enterLong64) too.
  assert.equal(vm.protectedMemory!.isProtected(0x20), true);
  assert.equal(vm.protectedMemory!.isProtected(PROG / 4096), true);
  runGuest(v, `
    mov rax, [${BUF}]
    add qword ptr [${BUF + 8}], 5
    mov ecx, 1
    lock xadd dword ptr [${BUF + 16}], ecx
    mov edx, ecx
    mov esi, ${BUF}
    mov edi, ${BUF + 0x1000}
    mov ecx, 24
    rep movsb
    mov dword ptr [${BUF + 0x2000}], 0xfeedface
    push rax
    pop rbx`);
  const r = v.getRegs();
  assert.equal(r.rax, 0x1122334455667788n, 'load');
  assert.equal(vm.mem.read64(BUF + 8), 105n, 'read-modify-write');
  assert.equal(vm.mem.read32(BUF + 16), 42, 'lock xadd stored the sum');
  assert.equal(r.rdx, 41n, 'lock xadd returned the old value');
  assert.deepEqual(vm.mem.read(BUF + 0x1000, 24), vm.mem.read(BUF, 24), 'rep movsb copied private to private');
  assert.equal(vm.mem.read32(BUF + 0x2000), 0xfeedface);
  assert.equal(r.rbx, r.rax, 'the private stack works');
  for (const gpa of [BUF, BUF + 8, BUF + 16, BUF + 0x1000, BUF + 0x2000, 0x20000]) {
    assert.throws(() => dev.read(gpa, 4), ProtectedMemoryError, `device read of 0x${gpa.toString(16)}`);
  }
});

test('a malicious device model cannot reach a private page by any accessor method, and sees no way to the Vm', () => {
  const { vm, v, dev } = setup();
  vm.mem.write(BUF, bytes(4096, (k) => k * 7));
  enable(v);
  const before = vm.mem.read(BUF, 4096);
  const P = BUF + 0x10;
  const attempts: Record<string, () => unknown> = {
    read: () => dev.read(P, 8),
    readInto: () => dev.readInto(P, new Uint8Array(8)),
    write: () => dev.write(P, new Uint8Array(8).fill(1)),
    fill: () => dev.fill(P, 8, 1),
    read8: () => dev.read8(P), read16: () => dev.read16(P), read32: () => dev.read32(P), read64: () => dev.read64(P),
    write8: () => dev.write8(P, 1), write16: () => dev.write16(P, 1), write32: () => dev.write32(P, 1), write64: () => dev.write64(P, 1n),
    pin: () => dev.pin({ gpa: P, length: 8 }),
  };
  // Every method of the accessor is tried (a new method must be added here).
  const methods = Object.getOwnPropertyNames(GuestMemoryAccess.prototype).filter((n) => n !== 'constructor').sort();
  assert.deepEqual(Object.keys(attempts).sort(), methods);
  for (const [name, attempt] of Object.entries(attempts)) {
    assert.throws(attempt, (e: unknown) => e instanceof ProtectedMemoryError || (e instanceof KvmError && e.code === 'EFAULT'), name);
  }
  // Pinning with the KVM flag is KVM's privilege, not a device model's.
  assert.throws(() => dev.pin({ gpa: P, length: 8 }, { kvm: true }), GuestMemoryAccessError);
  assert.throws(() => (dev.pin as (r: unknown, o: unknown) => unknown)({ gpa: P, length: 8 }, { kvm: 1 }), GuestMemoryAccessError);
  // Misaligned, page-crossing and huge ranges that end or start on the private page.
  assert.throws(() => dev.read(BUF - 3, 8), ProtectedMemoryError);
  assert.throws(() => dev.read(0, 4 * MiB), ProtectedMemoryError);
  assert.deepEqual(vm.mem.read(BUF, 4096), before, 'guest memory is unchanged');
  // The accessor holds the Vm in a private field: nothing to walk to.
  assert.deepEqual(Reflect.ownKeys(dev), []);
  assert.equal((dev as unknown as Record<string, unknown>).vm, undefined);
});

test('a pin taken while the page was shared is refused once the guest unshares it', () => {
  const { vm, v, dev } = setup();
  enable(v);
  share(v, BUF);
  const pin = dev.pin({ gpa: BUF, length: 4096 });
  pin.write(0, bytes(4, () => 0x33));
  assert.deepEqual(pin.read(0, 4), bytes(4, () => 0x33));
  unshare(v, BUF);
  assert.throws(() => pin.read(0, 4), (e) => isProtected(e, BUF, 'read'));
  assert.throws(() => pin.write(0, bytes(4, () => 0x44)), (e) => isProtected(e, BUF, 'write'));
  assert.deepEqual(vm.mem.read(BUF, 4), bytes(4, () => 0x33));
  pin.unpin();
  share(v, BUF);
  assert.throws(() => pin.read(0, 4), (e: unknown) => e instanceof KvmError && e.code === 'EFAULT', 'a released pin stays released');
});

test('§4.1: get_user_pages is EFAULT on protected pages without the KVM flag and succeeds with it; PRIVATE pages cannot be pinned at all', () => {
  const { vm, v } = setup();
  vm.mem.write(BUF, bytes(16, (k) => 0x90 + k));
  enable(v);
  const efault = (e: unknown) => e instanceof KvmError && e.code === 'EFAULT';
  assert.throws(() => pinGuestMemory(vm, { gpa: BUF, length: 16 }, { kvm: false }), efault);
  const kvmPin = pinGuestMemory(vm, { gpa: BUF, length: 16 }, { kvm: true });
  assert.deepEqual(kvmPin.read(0, 16), bytes(16, (k) => 0x90 + k), 'KVM reads a protected page');
  kvmPin.write(0, Uint8Array.of(1));
  assert.equal(vm.mem.read8(BUF), 1, 'and writes it');
  assert.throws(() => kvmPin.read(8, 16), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL', 'outside the pin');
  assert.throws(() => pinGuestMemory(vm, { gpa: 5 * MiB, length: 1 }, { kvm: true }), efault, 'not RAM');
  assert.throws(() => pinGuestMemory(vm, { gpa: BUF, length: 0 }, { kvm: true }), (e: unknown) => e instanceof KvmError && e.code === 'EINVAL');

  const up = new Vm({ memorySize: 4 * MiB, privateMemory: true });
  up.setMemoryAttributes({ address: BUF, size: 4096, attributes: 8, flags: 0 });
  assert.throws(() => pinGuestMemory(up, { gpa: BUF, length: 1 }, { kvm: true }), efault, 'guest_memfd memory is never pinned');
  assert.equal(pinGuestMemory(up, { gpa: BUF + 4096, length: 1 }, { kvm: false }).read(0, 1).length, 1, 'a shared page pins');
});

test('§4.2: the upstream PRIVATE attribute refuses device-model access too, until the page is converted back', () => {
  const vm = new Vm({ memorySize: 4 * MiB, privateMemory: true });
  const dev = new GuestMemoryAccess(vm);
  vm.mem.write(BUF, bytes(4, () => 9));
  vm.setMemoryAttributes({ address: BUF, size: 4096, attributes: 8, flags: 0 });
  assert.throws(() => dev.read32(BUF), (e: unknown) => e instanceof ProtectedMemoryError && /KVM_MEMORY_ATTRIBUTE_PRIVATE/.test(e.message));
  assert.throws(() => dev.write8(BUF + 4095, 1), ProtectedMemoryError);
  vm.setMemoryAttributes({ address: BUF, size: 4096, attributes: 0, flags: 0 });
  assert.equal(dev.read32(BUF), 0x09090909);
});

test('DESIGN §3.4: device accesses honour the Vm\'s RWX attributes: NR refuses reads, NW refuses writes', () => {
  const vm = new Vm({ memorySize: 4 * MiB });
  const dev = new GuestMemoryAccess(vm);
  vm.setMemoryAttributes({ address: BUF, size: 4096, attributes: 0x2, flags: 0 }); // NW
  assert.equal(dev.read32(BUF), 0);
  assert.throws(() => dev.write32(BUF, 1), (e: unknown) => e instanceof GuestMemoryAccessError && /memory attributes \(0x2\)/.test(e.message));
  vm.setMemoryAttributes({ address: BUF, size: 4096, attributes: 0x7, flags: 0 }); // no access
  assert.throws(() => dev.read32(BUF), GuestMemoryAccessError);
  assert.equal(vm.mem.read32(BUF), 0);
});

test('bad device-model requests are clear errors: not RAM, negative or fractional GPAs, non-byte fill values', () => {
  const vm = new Vm({ memorySize: 4 * MiB });
  const dev = new GuestMemoryAccess(vm);
  assert.throws(() => dev.read(4 * MiB - 2, 4), (e: unknown) => e instanceof GuestMemoryAccessError && /0x400000 was refused: it is not guest RAM/.test(e.message));
  assert.throws(() => dev.read(-1, 1), GuestMemoryAccessError);
  assert.throws(() => dev.read(1.5, 1), GuestMemoryAccessError);
  assert.throws(() => dev.fill(0, 1, 256), GuestMemoryAccessError);
  assert.throws(() => dev.write(0, [1, 2] as unknown as Uint8Array), GuestMemoryAccessError);
  assert.deepEqual(dev.read(0x100, 0), new Uint8Array(0), 'an empty read is fine');
});
