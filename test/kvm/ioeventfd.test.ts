/**
 * KVM_IOEVENTFD (kvm-api-facts.md §5): every assign check and errno in
 * upstream's order (§5.1), the collision and deassign rules, matching on
 * each length with and without DATAMATCH, PIO against MMIO, and our read
 * support (§5.2, our design: DATAREAD 0x20, value in pad[0..7]). Guest
 * accesses run as real x86 code on a vCPU driven through the kvm API; a
 * matched access must complete with no exit at all (no kvm_exit trace
 * event, run() ends only at the program's HLT), and everything else must
 * still reach the host as an ordinary io/mmio exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventFd, EventFdPoll, EVENTFD_COUNTER_MAX } from '../../src/kvm/eventfd.js';
import {
  KVM_IOEVENTFD, KVM_IOEVENTFD_FLAG_DATAMATCH as DATAMATCH, KVM_IOEVENTFD_FLAG_DATAREAD as DATAREAD,
  KVM_IOEVENTFD_FLAG_DEASSIGN as DEASSIGN, KVM_IOEVENTFD_FLAG_PIO as PIO, KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY as CCW,
  KVM_IOEVENTFD_LAYOUT, type KvmIoeventfd,
} from '../../src/kvm/ioeventfd.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { Vm } from '../../src/kvm/vm.js';
import { CODE, HvMachine, P, W } from './hypercall-machine.js';

const U64_MAX = (1n << 64n) - 1n;
const MMIO = 0xfeb0_0000; // not RAM (the machine has 16 MiB)
const PORT = 0x6000;
/** A GPA that is MMIO although it is below 64 KiB, so a port and a GPA can have the same number (PIO vs MMIO). */
const LOW_MMIO = 0x6000;

function errno(f: () => void, code: string, message?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KvmError, `expected a KvmError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const reg = (o: Partial<KvmIoeventfd> & { fd: EventFd }): KvmIoeventfd => ({ datamatch: 0n, addr: BigInt(MMIO), len: 4, flags: 0, ...o });

// ---------------------------------------------------------------- a guest to make the accesses

interface Guest { m: HvMachine; v: Vcpu }

function guest(): Guest {
  const m = new HvMachine({ flags: [], trace: true });
  // Punch a hole into RAM at LOW_MMIO so that GPA 0x6000 is MMIO (slots: kvm-api-facts §2 / memslots.ts).
  m.vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 0 });
  m.vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: LOW_MMIO });
  m.vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: LOW_MMIO + 0x1000, memorySize: (16 << 20) - LOW_MMIO - 0x1000 });
  m.map(MMIO, MMIO, P | W);
  return { m, v: m.vcpu(0) };
}

/**
 * Runs `src` (64-bit, Intel syntax) to its final HLT and returns every exit
 * on the way; IN and MMIO reads that exit are answered with `answer`.
 */
function run(g: Guest, src: string, answer = 0x5a5a5a5a5a5a5a5an): VcpuExit[] {
  const L = g.m.asm(`.code64\n${src}\ndone: hlt`, CODE);
  g.m.jump(g.v, CODE);
  const exits: VcpuExit[] = [];
  for (;;) {
    const e = g.m.runToExit(g.v);
    if (e.reason === 'hlt') break;
    exits.push(e);
    if (e.reason === 'io' && e.direction === 'in') g.v.completeIo(Number(answer & 0xffffffffn));
    else if (e.reason === 'mmio' && !e.isWrite) g.v.completeMmio(answer);
    else if (e.reason !== 'io' && e.reason !== 'mmio') assert.fail(`unexpected exit ${e.reason}`);
    assert.ok(exits.length < 1000, 'too many exits');
  }
  assert.equal(g.m.rip(g.v), BigInt(L.done + 1), 'the program ran to its HLT without an exception');
  return exits;
}

const kvmExits = (g: Guest) => g.m.vm.trace!.named('kvm_exit').length;
const rax = (g: Guest) => g.v.getRegs().rax;

const WRITE = { 1: 'mov byte ptr [rbx], al', 2: 'mov word ptr [rbx], ax', 4: 'mov dword ptr [rbx], eax', 8: 'mov qword ptr [rbx], rax' } as const;
const READ = { 1: 'movzx eax, byte ptr [rbx]', 2: 'movzx eax, word ptr [rbx]', 4: 'mov eax, dword ptr [rbx]', 8: 'mov rax, qword ptr [rbx]' } as const;
const OUT = { 1: 'out dx, al', 2: 'out dx, ax', 4: 'out dx, eax' } as const;
const IN = { 1: 'in al, dx', 2: 'in ax, dx', 4: 'in eax, dx' } as const;
type Size = 1 | 2 | 4 | 8;

const mmioWrite = (size: Size, value: bigint, gpa = MMIO) => `mov ebx, ${gpa}\n mov rax, ${value}\n ${WRITE[size]}`;
const mmioRead = (size: Size, gpa = MMIO) => `mov ebx, ${gpa}\n mov rax, -1\n ${READ[size]}`;
const pioWrite = (size: 1 | 2 | 4, value: number, port = PORT) => `mov edx, ${port}\n mov eax, ${value}\n ${OUT[size]}`;
const pioRead = (size: 1 | 2 | 4, port = PORT) => `mov edx, ${port}\n xor eax, eax\n ${IN[size]}`;

// ---------------------------------------------------------------- assign checks, in upstream's order (§5.1)

test('§5.1 identifiers: KVM_IOEVENTFD = 0x4040AE79 (_IOW(KVMIO, 0x79, 64 bytes)); DATAREAD is ours at bit 5, pad carries its value', () => {
  assert.equal(KVM_IOEVENTFD, 0x40000000 | (64 << 16) | (0xae << 8) | 0x79);
  assert.equal(DATAMATCH, 0x1); assert.equal(PIO, 0x2); assert.equal(DEASSIGN, 0x4); assert.equal(CCW, 0x8);
  assert.equal(DATAREAD, 0x20); // §5.2 recommendation: bit 5 or higher, no upstream value moves
  assert.deepEqual([KVM_IOEVENTFD_LAYOUT.len, KVM_IOEVENTFD_LAYOUT.fd, KVM_IOEVENTFD_LAYOUT.flags, KVM_IOEVENTFD_LAYOUT.dataread], [16, 20, 24, 28]);
});

test('§5.1 len must be 0, 1, 2, 4 or 8: anything else is EINVAL and registers nothing', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  for (const len of [3, 5, 6, 7, 9, 16, 0xffffffff]) errno(() => vm.ioeventfd(reg({ len, fd: new EventFd() })), 'EINVAL', /len must be/);
  for (const len of [0, 1, 2, 4, 8]) vm.ioeventfd(reg({ addr: BigInt(MMIO + 16 * len), len, fd: new EventFd() }));
  assert.equal(vm.ioeventfds.list().length, 5);
});

test('§5.1 addr + len must not wrap past 2^64 (upstream: addr + len < addr, so a range ending at 2^64 is refused too)', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const fd = new EventFd();
  errno(() => vm.ioeventfd(reg({ addr: U64_MAX, len: 1, fd })), 'EINVAL', /wraps/);
  errno(() => vm.ioeventfd(reg({ addr: U64_MAX - 7n, len: 8, fd })), 'EINVAL', /wraps/);
  errno(() => vm.ioeventfd(reg({ addr: U64_MAX - 1n, len: 2, fd })), 'EINVAL', /wraps/);
  vm.ioeventfd(reg({ addr: U64_MAX - 8n, len: 8, fd }));
  vm.ioeventfd(reg({ addr: U64_MAX, len: 0, fd })); // len 0 adds nothing: no wrap
  assert.equal(vm.ioeventfds.list().length, 2);
});

test('§5.1 flags outside 0x1F (plus our DATAREAD 0x20) are EINVAL; bit 4 and VIRTIO_CCW_NOTIFY are accepted', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  for (const flags of [0x40, 0x80, 0x100, 0x8000_0000, 0x41]) errno(() => vm.ioeventfd(reg({ flags, fd: new EventFd() })), 'EINVAL', /flags/);
  vm.ioeventfd(reg({ flags: 0x10, fd: new EventFd() }));
  vm.ioeventfd(reg({ flags: CCW, fd: new EventFd() }));
  assert.deepEqual(vm.ioeventfds.list().map((r) => r.bus), ['mmio', 'ccw']);
});

test('§5.1 len 0 with DATAMATCH is EINVAL (on both buses)', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  errno(() => vm.ioeventfd(reg({ len: 0, flags: DATAMATCH, fd: new EventFd() })), 'EINVAL', /len 0/);
  errno(() => vm.ioeventfd(reg({ len: 0, flags: DATAMATCH | PIO, addr: 0x80n, fd: new EventFd() })), 'EINVAL', /len 0/);
  assert.equal(vm.ioeventfds.list().length, 0);
});

test('§5.1 the fd must be an eventfd: any other value is EINVAL (an object API has no closed fd numbers for EBADF)', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  for (const fd of [{}, 3, null, undefined, new EventFdPoll()]) errno(() => vm.ioeventfd(reg({ fd: fd as unknown as EventFd })), 'EINVAL', /EventFd/);
  assert.equal(vm.ioeventfds.list().length, 0);
});

test('§5.1 the checks run in upstream order: len, wrap, flags, len-0 DATAMATCH, fd, collision', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const bad = {} as EventFd;
  errno(() => vm.ioeventfd(reg({ addr: U64_MAX, len: 3, flags: 0x40, fd: bad })), 'EINVAL', /len must be/);
  errno(() => vm.ioeventfd(reg({ addr: U64_MAX, len: 1, flags: 0x40, fd: bad })), 'EINVAL', /wraps/);
  errno(() => vm.ioeventfd(reg({ len: 0, flags: 0x40 | DATAMATCH, fd: bad })), 'EINVAL', /flags/);
  errno(() => vm.ioeventfd(reg({ len: 0, flags: DATAMATCH, fd: bad })), 'EINVAL', /len 0/);
  vm.ioeventfd(reg({ fd: new EventFd() }));
  errno(() => vm.ioeventfd(reg({ fd: bad })), 'EINVAL', /EventFd/); // the fd before the collision
  errno(() => vm.ioeventfd(reg({ fd: new EventFd() })), 'EEXIST');
});

test('bad argument objects: EFAULT for a non-object, EINVAL for fields that are not u64/u32; nothing changes', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  errno(() => vm.ioeventfd(null as unknown as KvmIoeventfd), 'EFAULT');
  errno(() => vm.ioeventfd(reg({ addr: -1n, fd: new EventFd() })), 'EINVAL', /addr must be a u64/);
  errno(() => vm.ioeventfd(reg({ addr: 1n << 64n, fd: new EventFd() })), 'EINVAL', /addr must be a u64/);
  errno(() => vm.ioeventfd(reg({ datamatch: 0.5, fd: new EventFd() })), 'EINVAL', /datamatch must be a u64/);
  errno(() => vm.ioeventfd(reg({ len: 1.5, fd: new EventFd() })), 'EINVAL', /len must be a u32/);
  errno(() => vm.ioeventfd(reg({ flags: -1, fd: new EventFd() })), 'EINVAL', /flags must be a u32/);
  assert.equal(vm.ioeventfds.list().length, 0);
});

// ---------------------------------------------------------------- collisions and deassign (§5.1)

test('§5.1 collision rule: same bus and addr, and (a len 0, or equal lengths and (a wildcard or equal datamatch)) is EEXIST', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const a = BigInt(MMIO);
  vm.ioeventfd(reg({ addr: a, len: 4, fd: new EventFd() }));
  errno(() => vm.ioeventfd(reg({ addr: a, len: 4, fd: new EventFd() })), 'EEXIST'); // two wildcards, another fd
  errno(() => vm.ioeventfd(reg({ addr: a, len: 4, flags: DATAMATCH, datamatch: 7n, fd: new EventFd() })), 'EEXIST'); // wildcard vs datamatch
  errno(() => vm.ioeventfd(reg({ addr: a, len: 0, fd: new EventFd() })), 'EEXIST'); // len 0 covers every length
  vm.ioeventfd(reg({ addr: a, len: 2, fd: new EventFd() })); // different nonzero lengths never collide
  vm.ioeventfd(reg({ addr: a, len: 4, flags: PIO, fd: new EventFd() })); // another bus
  vm.ioeventfd(reg({ addr: a + 4n, len: 4, fd: new EventFd() })); // another address

  const b = BigInt(MMIO + 0x100);
  vm.ioeventfd(reg({ addr: b, len: 8, flags: DATAMATCH, datamatch: 1n, fd: new EventFd() }));
  vm.ioeventfd(reg({ addr: b, len: 8, flags: DATAMATCH, datamatch: 2n, fd: new EventFd() })); // different values do not collide
  errno(() => vm.ioeventfd(reg({ addr: b, len: 8, flags: DATAMATCH, datamatch: 2n, fd: new EventFd() })), 'EEXIST');
  errno(() => vm.ioeventfd(reg({ addr: b, len: 8, fd: new EventFd() })), 'EEXIST'); // a wildcard collides with any datamatch

  const c = BigInt(MMIO + 0x200);
  vm.ioeventfd(reg({ addr: c, len: 0, fd: new EventFd() }));
  errno(() => vm.ioeventfd(reg({ addr: c, len: 1, flags: DATAMATCH, datamatch: 0n, fd: new EventFd() })), 'EEXIST');
  assert.equal(vm.ioeventfds.list().length, 7);
});

test('§5.1 deassign: bus, fd, addr, len, wildcard-ness (and datamatch unless wildcard) must match; one entry goes; else ENOENT', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const fd = new EventFd(), other = new EventFd();
  const a = BigInt(MMIO);
  vm.ioeventfd(reg({ addr: a, len: 4, flags: DATAMATCH, datamatch: 1n, fd }));
  vm.ioeventfd(reg({ addr: a, len: 4, flags: DATAMATCH, datamatch: 2n, fd }));
  vm.ioeventfd(reg({ addr: a, len: 4, flags: PIO, fd }));
  const d = (o: Partial<KvmIoeventfd>) => () => vm.ioeventfd(reg({ addr: a, len: 4, flags: DEASSIGN | DATAMATCH, datamatch: 2n, fd, ...o }));
  errno(d({ fd: other }), 'ENOENT');
  errno(d({ len: 2 }), 'ENOENT');
  errno(d({ addr: a + 4n }), 'ENOENT');
  errno(d({ datamatch: 3n }), 'ENOENT');
  errno(d({ flags: DEASSIGN }), 'ENOENT'); // wildcard-ness differs
  errno(d({ flags: DEASSIGN | DATAMATCH | PIO }), 'ENOENT'); // the PIO one is a wildcard
  d({})();
  assert.deepEqual(vm.ioeventfds.list().map((r) => [r.bus, r.datamatch]), [['mmio', 1n], ['pio', null]]);
  errno(d({}), 'ENOENT'); // gone
  vm.ioeventfd(reg({ addr: a, len: 4, flags: DEASSIGN | PIO, datamatch: 99n, fd })); // wildcard: datamatch is not compared
  assert.equal(vm.ioeventfds.list().length, 1);
});

test('§5.1 deassign is dispatched before the assign checks (kvm_ioeventfd): a bad len is ENOENT, a bad fd EINVAL', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  errno(() => vm.ioeventfd(reg({ len: 3, flags: DEASSIGN | 0x40, fd: new EventFd() })), 'ENOENT');
  errno(() => vm.ioeventfd(reg({ flags: DEASSIGN, fd: {} as EventFd })), 'EINVAL', /EventFd/);
});

// ---------------------------------------------------------------- matching guest writes (§5.1)

for (const size of [1, 2, 4, 8] as const) {
  test(`§5.1 MMIO len ${size}: a write of ${size} bytes completes without an exit and signals once; other sizes exit`, () => {
    const g = guest();
    const fd = new EventFd();
    g.m.vm.ioeventfd(reg({ len: size, fd }));
    assert.deepEqual(run(g, mmioWrite(size, 0x1122334455667788n)), []);
    assert.equal(fd.value, 1n);
    assert.equal(kvmExits(g), 0);
    const others = ([1, 2, 4, 8] as const).filter((s) => s !== size);
    const exits = run(g, others.map((s) => mmioWrite(s, 5n)).join('\n'));
    assert.deepEqual(exits.map((e) => e.reason === 'mmio' && e.isWrite && e.gpa === MMIO ? e.size : -1), others);
    assert.equal(fd.value, 1n);
  });
}

test('§5.1 MMIO DATAMATCH: the value zero-extended from len bytes must equal all 64 bits of datamatch', () => {
  const g = guest();
  const fd1 = new EventFd(), fd2 = new EventFd(), fd8 = new EventFd(), far = new EventFd();
  g.m.vm.ioeventfd(reg({ len: 1, flags: DATAMATCH, datamatch: 0x42n, fd: fd1 }));
  g.m.vm.ioeventfd(reg({ len: 2, flags: DATAMATCH, datamatch: 0x1234n, fd: fd2 }));
  g.m.vm.ioeventfd(reg({ len: 8, flags: DATAMATCH, datamatch: 0x8000_0000_0000_0001n, fd: fd8 }));
  g.m.vm.ioeventfd(reg({ addr: BigInt(MMIO + 8), len: 1, flags: DATAMATCH, datamatch: 0x142n, fd: far })); // bits above len: never
  const exits = run(g, [
    mmioWrite(1, 0x42n), mmioWrite(1, 0x43n), mmioWrite(1, 0xff42n), // 0xff42 is written as the byte 0x42
    mmioWrite(2, 0x1234n), mmioWrite(2, 0x1235n),
    mmioWrite(8, 0x8000_0000_0000_0001n), mmioWrite(8, 1n),
    mmioWrite(1, 0x42n, MMIO + 8),
  ].join('\n'));
  assert.deepEqual([fd1.value, fd2.value, fd8.value, far.value], [2n, 1n, 1n, 0n]);
  assert.deepEqual(exits.map((e) => e.reason === 'mmio' ? [e.size, e.value] : null), [[1, 0x43n], [2, 0x1235n], [8, 1n], [1, 0x42n]]);
});

test('§5.1 MMIO len 0 matches a write of any size at exactly addr, and nothing at addr + 1', () => {
  const g = guest();
  const fd = new EventFd();
  g.m.vm.ioeventfd(reg({ len: 0, fd }));
  assert.deepEqual(run(g, ([1, 2, 4, 8] as const).map((s) => mmioWrite(s, 9n)).join('\n')), []);
  assert.equal(fd.value, 4n);
  const exits = run(g, mmioWrite(1, 9n, MMIO + 1));
  assert.equal(exits.length, 1);
  assert.equal(fd.value, 4n);
});

test('§5.1 PIO: lengths 1/2/4 with and without DATAMATCH, and len 0 (accepted upstream since ANY_LENGTH) for any size', () => {
  const g = guest();
  const w1 = new EventFd(), w2 = new EventFd(), m4 = new EventFd(), any = new EventFd();
  g.m.vm.ioeventfd(reg({ addr: BigInt(PORT), len: 1, flags: PIO, fd: w1 }));
  g.m.vm.ioeventfd(reg({ addr: BigInt(PORT + 2), len: 2, flags: PIO, fd: w2 }));
  g.m.vm.ioeventfd(reg({ addr: BigInt(PORT + 4), len: 4, flags: PIO | DATAMATCH, datamatch: 0xcafef00dn, fd: m4 }));
  g.m.vm.ioeventfd(reg({ addr: BigInt(PORT + 8), len: 0, flags: PIO, fd: any }));
  const exits = run(g, [
    pioWrite(1, 0xaa), pioWrite(2, 0xaa), // size 2 at a len-1 port exits
    pioWrite(2, 0xbbbb, PORT + 2), pioWrite(4, 1, PORT + 2),
    pioWrite(4, 0xcafef00d, PORT + 4), pioWrite(4, 0xcafef00e, PORT + 4),
    pioWrite(1, 1, PORT + 8), pioWrite(2, 2, PORT + 8), pioWrite(4, 3, PORT + 8),
  ].join('\n'));
  assert.deepEqual([w1.value, w2.value, m4.value, any.value], [1n, 1n, 1n, 3n]);
  assert.deepEqual(exits.map((e) => e.reason === 'io' ? [e.port - PORT, e.size, e.value >>> 0] : null),
    [[0, 2, 0xaa], [2, 4, 1], [4, 4, 0xcafef00e]]);
  assert.equal(g.m.vm.trace!.named('kvm_exit').length, 3);
});

test('§5.1 the buses are separate: a PIO registration never fires for MMIO at the same number, nor the reverse', () => {
  const g = guest();
  const pio = new EventFd(), mmio = new EventFd();
  g.m.vm.ioeventfd(reg({ addr: BigInt(LOW_MMIO), len: 2, flags: PIO, fd: pio }));
  const e1 = run(g, mmioWrite(2, 1n, LOW_MMIO));
  assert.deepEqual(e1.map((e) => e.reason), ['mmio']);
  assert.equal(pio.value, 0n);
  g.m.vm.ioeventfd(reg({ addr: BigInt(PORT + 0x100), len: 2, fd: mmio })); // MMIO at GPA 0x6100
  const e2 = run(g, pioWrite(2, 1, PORT + 0x100));
  assert.deepEqual(e2.map((e) => e.reason), ['io']);
  assert.equal(mmio.value, 0n);
  assert.deepEqual(run(g, `${pioWrite(2, 1, LOW_MMIO)}\n${mmioWrite(2, 1n, PORT + 0x100)}`), []);
  assert.deepEqual([pio.value, mmio.value], [1n, 1n]);
});

test('§5.1 reads of a write registration are not handled: they exit as ordinary MMIO/PIO', () => {
  const g = guest();
  const fd = new EventFd();
  g.m.vm.ioeventfd(reg({ len: 4, fd }));
  g.m.vm.ioeventfd(reg({ addr: BigInt(PORT), len: 4, flags: PIO, fd }));
  const exits = run(g, `${mmioRead(4)}\n${pioRead(4)}`, 0x77n);
  assert.deepEqual(exits.map((e) => e.reason), ['mmio', 'io']);
  assert.equal(fd.value, 0n);
  assert.equal(rax(g), 0x77n);
});

test('VIRTIO_CCW_NOTIFY registrations (s390) are accepted on their own bus and never fire for x86 accesses', () => {
  const g = guest();
  const fd = new EventFd();
  g.m.vm.ioeventfd(reg({ len: 4, flags: CCW, fd }));
  assert.equal(run(g, mmioWrite(4, 0n)).length, 1);
  assert.equal(fd.value, 0n);
});

test('after deassign the same write exits again; a matched write never reaches the VMM while registered', () => {
  const g = guest();
  const fd = new EventFd();
  const r = reg({ len: 4, fd });
  g.m.vm.ioeventfd(r);
  const loop = `mov ecx, 1000\n again: ${mmioWrite(4, 3n)}\n dec ecx\n jnz again`;
  assert.deepEqual(run(g, loop), []);
  assert.equal(fd.value, 1000n);
  assert.equal(kvmExits(g), 0);
  const sig = g.m.vm.trace!.named('kvm_ioeventfd_signal');
  assert.equal(sig.length, 1000);
  assert.deepEqual(sig[0].args, { bus: 'mmio', rw: 'write', addr: MMIO.toString(16), len: 4, val: '3' });
  assert.equal(g.m.vm.trace!.named('kvm_mmio').length, 1000); // KVM traces the access itself too
  g.m.vm.ioeventfd({ ...r, flags: DEASSIGN });
  assert.equal(run(g, mmioWrite(4, 3n)).length, 1);
  assert.equal(fd.value, 1000n);
  assert.deepEqual(g.m.vm.trace!.named('kvm_ioeventfd_deassign').map((e) => e.args.addr), [MMIO.toString(16)]);
});

// ---------------------------------------------------------------- read support (§5.2, our design)

const DATA = 0x8877_6655_4433_2211n;

for (const size of [1, 2, 4, 8] as const) {
  test(`§5.2 (ours) MMIO DATAREAD len ${size}: a ${size}-byte read returns the low ${size} bytes of dataread, signals, and does not exit`, () => {
    const g = guest();
    const fd = new EventFd();
    g.m.vm.ioeventfd(reg({ len: size, flags: DATAREAD, dataread: DATA, fd }));
    assert.deepEqual(run(g, mmioRead(size)), []);
    assert.equal(rax(g), size === 8 ? DATA : DATA & ((1n << BigInt(8 * size)) - 1n));
    assert.equal(fd.value, 1n);
    assert.equal(kvmExits(g), 0);
    const others = ([1, 2, 4, 8] as const).filter((s) => s !== size);
    assert.equal(run(g, others.map((s) => mmioRead(s)).join('\n')).length, 3); // other sizes exit
    assert.equal(fd.value, 1n);
  });
}

test('§5.2 (ours) MMIO DATAREAD len 0 answers every access size with its low bytes', () => {
  const g = guest();
  const fd = new EventFd();
  g.m.vm.ioeventfd(reg({ len: 0, flags: DATAREAD, dataread: DATA, fd }));
  for (const size of [1, 2, 4, 8] as const) {
    assert.deepEqual(run(g, mmioRead(size)), []);
    assert.equal(rax(g), size === 8 ? DATA : DATA & ((1n << BigInt(8 * size)) - 1n));
  }
  assert.equal(fd.value, 4n);
});

test('§5.2 (ours) PIO DATAREAD on lengths 1, 2 and 4', () => {
  const g = guest();
  const fd = new EventFd();
  for (const len of [1, 2, 4] as const) g.m.vm.ioeventfd(reg({ addr: BigInt(PORT + 4 * len), len, flags: PIO | DATAREAD, dataread: DATA, fd }));
  for (const len of [1, 2, 4] as const) {
    assert.deepEqual(run(g, pioRead(len, PORT + 4 * len)), []);
    assert.equal(rax(g), DATA & ((1n << BigInt(8 * len)) - 1n));
  }
  assert.equal(fd.value, 3n);
  assert.equal(run(g, pioRead(1, PORT + 8)).length, 1); // 1 byte at the len-2 port exits
});

test('§5.2 (ours) DATAREAD matches reads only: a write to it exits, and pad is ignored without the flag', () => {
  const g = guest();
  const fd = new EventFd(), plain = new EventFd();
  g.m.vm.ioeventfd(reg({ len: 4, flags: DATAREAD, dataread: 5n, fd }));
  g.m.vm.ioeventfd(reg({ addr: BigInt(MMIO + 16), len: 4, dataread: 5n, fd: plain })); // no DATAREAD: a write registration
  const exits = run(g, `${mmioWrite(4, 5n)}\n${mmioRead(4, MMIO + 16)}`, 0x99n);
  assert.deepEqual(exits.map((e) => e.reason === 'mmio' ? e.isWrite : null), [true, false]);
  assert.equal(rax(g), 0x99n);
  assert.deepEqual([fd.value, plain.value], [0n, 0n]);
});

test('§5.2 (ours) EINVAL: DATAREAD with DATAMATCH, with VIRTIO_CCW_NOTIFY, with len 0 on PIO; a bad dataread', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  errno(() => vm.ioeventfd(reg({ flags: DATAREAD | DATAMATCH, datamatch: 1n, fd: new EventFd() })), 'EINVAL', /DATAREAD cannot be combined with DATAMATCH/);
  errno(() => vm.ioeventfd(reg({ flags: DATAREAD | CCW, fd: new EventFd() })), 'EINVAL', /virtio-ccw/);
  errno(() => vm.ioeventfd(reg({ len: 0, flags: DATAREAD | PIO, addr: 0x80n, fd: new EventFd() })), 'EINVAL', /MMIO only/);
  errno(() => vm.ioeventfd(reg({ flags: DATAREAD, dataread: -1n, fd: new EventFd() })), 'EINVAL', /dataread must be a u64/);
  // Upstream's checks come first: len 0 with DATAMATCH is reported as such.
  errno(() => vm.ioeventfd(reg({ len: 0, flags: DATAREAD | DATAMATCH, fd: new EventFd() })), 'EINVAL', /len 0/);
  // Our checks come before the fd.
  errno(() => vm.ioeventfd(reg({ flags: DATAREAD | DATAMATCH, fd: {} as EventFd })), 'EINVAL', /DATAMATCH/);
  assert.equal(vm.ioeventfds.list().length, 0);
});

test('§5.2 (ours) read and write registrations share the collision namespace', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const a = BigInt(MMIO);
  vm.ioeventfd(reg({ addr: a, len: 4, flags: DATAREAD, dataread: 1n, fd: new EventFd() }));
  errno(() => vm.ioeventfd(reg({ addr: a, len: 4, fd: new EventFd() })), 'EEXIST');
  errno(() => vm.ioeventfd(reg({ addr: a, len: 4, flags: DATAMATCH, datamatch: 3n, fd: new EventFd() })), 'EEXIST');
  errno(() => vm.ioeventfd(reg({ addr: a, len: 4, flags: DATAREAD, dataread: 2n, fd: new EventFd() })), 'EEXIST');
  errno(() => vm.ioeventfd(reg({ addr: a, len: 0, fd: new EventFd() })), 'EEXIST');
  vm.ioeventfd(reg({ addr: a, len: 2, fd: new EventFd() })); // another length: fine
  vm.ioeventfd(reg({ addr: a, len: 4, flags: PIO | DATAREAD, fd: new EventFd() })); // another bus: fine
  assert.equal(vm.ioeventfds.list().length, 3);
});

test('§5.2 (ours) deassign of a DATAREAD registration needs the DATAREAD flag; dataread itself is not compared', () => {
  const vm = new Vm({ memorySize: 1 << 20 });
  const fd = new EventFd();
  vm.ioeventfd(reg({ len: 4, flags: DATAREAD, dataread: 1n, fd }));
  errno(() => vm.ioeventfd(reg({ len: 4, flags: DEASSIGN, fd })), 'ENOENT');
  vm.ioeventfd(reg({ len: 4, flags: DEASSIGN | DATAREAD, dataread: 77n, fd }));
  assert.equal(vm.ioeventfds.list().length, 0);
});

test('a DATAREAD read is traced as kvm_ioeventfd_signal and kvm_mmio, never kvm_exit', () => {
  const g = guest();
  g.m.vm.ioeventfd(reg({ len: 8, flags: DATAREAD, dataread: DATA, fd: new EventFd() }));
  run(g, mmioRead(8));
  const t = g.m.vm.trace!;
  assert.deepEqual(t.named('kvm_ioeventfd_signal').map((e) => e.args), [{ bus: 'mmio', rw: 'read', addr: MMIO.toString(16), len: 8, val: DATA.toString(16) }]);
  assert.equal(t.named('kvm_mmio').length, 1);
  assert.equal(t.named('kvm_exit').length, 0);
  assert.deepEqual(t.named('kvm_ioeventfd_assign').map((e) => e.args.dataread), [DATA.toString(16)]);
});

// ---------------------------------------------------------------- the EventFd and the poll set

test('EventFd: read takes the whole counter (EFD_SEMAPHORE: 1), an empty read is 0n, signals saturate', () => {
  const fd = new EventFd({ initval: 2n });
  fd.signal(); fd.signal(3);
  assert.equal(fd.value, 6n);
  assert.equal(fd.read(), 6n);
  assert.equal(fd.read(), 0n);
  assert.equal(fd.readable, false);
  const sem = new EventFd({ semaphore: true, initval: 2 });
  assert.deepEqual([sem.read(), sem.read(), sem.read()], [1n, 1n, 0n]);
  const full = new EventFd({ initval: EVENTFD_COUNTER_MAX - 1 });
  full.signal(5);
  assert.equal(full.value, BigInt(EVENTFD_COUNTER_MAX));
  errno(() => new EventFd({ initval: -1 }), 'EINVAL');
  errno(() => new EventFd({ initval: 1n << 60n }), 'EINVAL');
  errno(() => fd.signal(-1), 'EINVAL');
  errno(() => fd.signal(0.5), 'EINVAL');
});

test('EventFd.wait(): resolves at once when readable, else at the next signal; waiters are served in order', async () => {
  const fd = new EventFd({ initval: 4 });
  assert.equal(await fd.wait(), 4n);
  const order: string[] = [];
  const first = fd.wait().then((v) => { order.push(`first ${v}`); });
  const second = fd.wait().then((v) => { order.push(`second ${v}`); });
  fd.signal(2); // the first blocking read takes everything; the second keeps waiting
  await first;
  assert.deepEqual(order, ['first 2']);
  assert.equal(fd.value, 0n);
  fd.signal();
  await second;
  assert.deepEqual(order, ['first 2', 'second 1']);
});

test('EventFdPoll: level-triggered dispatch of readable fds, in order; EEXIST/ENOENT for add/remove', () => {
  const poll = new EventFdPoll();
  const a = new EventFd(), b = new EventFd();
  const seen: string[] = [];
  poll.add(a, (fd) => { seen.push(`a${fd.read()}`); b.read(); }); // a's handler also drains b
  poll.add(b, () => { seen.push('b'); }); // b's handler does not read: it runs again next time
  assert.equal(poll.dispatch(), 0);
  b.signal();
  assert.equal(poll.dispatch(), 1);
  assert.equal(poll.dispatch(), 1);
  a.signal(2);
  assert.equal(poll.dispatch(), 1); // a ran and drained b first
  assert.deepEqual(seen, ['b', 'b', 'a2']);
  errno(() => poll.add(a, () => {}), 'EEXIST');
  poll.remove(a);
  errno(() => poll.remove(a), 'ENOENT');
  errno(() => poll.add({} as EventFd, () => {}), 'EINVAL');
});
