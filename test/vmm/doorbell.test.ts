/**
 * The doorbell device (src/vmm/devices/doorbell.ts), driven by a vCPU
 * running real code: the doorbell and identification registers are
 * ioeventfds (kvm-api-facts §5.1, and §5.2 our read support), so the guest's
 * common accesses never exit; the device answers the ring when its
 * notifiers are serviced; accesses the ioeventfds do not take reach the
 * device as exits and behave the same; bad guest input (a ring that is not
 * RAM, is refused by memory attributes, or runs ahead) never crashes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventFdPoll } from '../../src/kvm/eventfd.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import { KVM_MEMORY_ATTRIBUTE_NW } from '../../src/kvm/memory-attributes.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import {
  DB_CONFIG, DB_DOORBELL, DB_IRQ, DB_MAGIC, DB_PIO_DOORBELL, DB_PIO_MAGIC, DB_RING, Doorbell, DOORBELL_CONFIG, DOORBELL_MAGIC,
  DOORBELL_MMIO_BASE as BASE, DOORBELL_OP_SQUARE, DOORBELL_PORT as PORT, DOORBELL_RING_ENTRIES, RING_CONSUMED, RING_ENTRY0,
  RING_ENTRY_SIZE, RING_EXIT_KICKS, RING_IRQS, RING_KICKS, RING_PRODUCED, RING_READS, RING_SERVICES,
} from '../../src/vmm/devices/doorbell.js';
import { GuestMemoryAccess } from '../../src/vmm/guest-memory-access.js';
import { CODE, HvMachine, P, W } from '../kvm/hypercall-machine.js';

const RING = 0x90000;
const VECTOR = 0x41;

interface Rig { m: HvMachine; v: Vcpu; dev: Doorbell }

function rig(): Rig {
  const m = new HvMachine({ flags: [], trace: true });
  m.map(BASE, BASE, P | W);
  const dev = new Doorbell(m.vm, new GuestMemoryAccess(m.vm));
  return { m, v: m.vcpu(0), dev };
}

/** Runs `src` to its HLT, passing every exit to the device the way Machine.handleExit does; returns the exits. */
function run(r: Rig, src: string): VcpuExit[] {
  r.m.asm(`.code64\n${src}\nhlt`, CODE);
  r.m.jump(r.v, CODE);
  const exits: VcpuExit[] = [];
  for (;;) {
    const e = r.m.runToExit(r.v);
    if (e.reason === 'hlt') return exits;
    exits.push(e);
    if (e.reason === 'mmio' && r.dev.ownsMmio(e.gpa)) {
      if (e.isWrite) r.dev.mmioWrite(r.v, e.gpa, e.size, e.value); else r.v.completeMmio(r.dev.mmioRead(e.gpa, e.size));
    } else if (e.reason === 'io' && e.port >= PORT && e.port < PORT + 8) {
      if (e.direction === 'out') r.dev.pioWrite(e.port, e.size as 1 | 2 | 4, e.value >>> 0);
      else r.v.completeIo(r.dev.pioRead(e.port, e.size as 1 | 2 | 4));
    } else {
      assert.fail(`unexpected exit ${JSON.stringify(e, (_, x) => typeof x === 'bigint' ? x.toString(16) : x)}`);
    }
  }
}

/** The guest's side of the protocol: `n` SQUARE requests with arguments first..first+n-1, each followed by a doorbell write. */
function requests(first: number, n: number, ring: 'mmio' | 'pio' = 'mmio'): string {
  const kick = ring === 'mmio' ? `mov dword ptr [rbx + ${DB_DOORBELL}], eax` : `mov edx, ${PORT + DB_PIO_DOORBELL}\n mov eax, 1\n out dx, ax`;
  return `mov ebx, ${BASE}
    mov r8d, ${first}
    mov r9d, ${n}
  1:
    mov eax, dword ptr [${RING + RING_PRODUCED}]
    mov ecx, eax
    and ecx, ${DOORBELL_RING_ENTRIES - 1}
    shl ecx, 4
    mov dword ptr [${RING + RING_ENTRY0} + rcx], ${DOORBELL_OP_SQUARE}
    mov dword ptr [${RING + RING_ENTRY0 + 4} + rcx], r8d
    inc eax
    mov dword ptr [${RING + RING_PRODUCED}], eax
    ${kick}
    inc r8d
    dec r9d
    jnz 1b`;
}

const u32 = (r: Rig, off: number) => r.m.vm.mem.read32(RING + off) >>> 0;
const result = (r: Rig, k: number) => r.m.vm.mem.read64(RING + RING_ENTRY0 + RING_ENTRY_SIZE * (k % DOORBELL_RING_ENTRIES) + 8);

/** The guest sets RING and IRQ (both exits to the device). */
const setup = `mov ebx, ${BASE}\n mov rax, ${RING}\n mov qword ptr [rbx + ${DB_RING}], rax\n mov dword ptr [rbx + ${DB_IRQ}], ${VECTOR}`;

test('the device registers its five ioeventfds: MMIO MAGIC/CONFIG (DATAREAD), DOORBELL; PIO doorbell (DATAMATCH 1) and MAGIC', () => {
  const r = rig();
  assert.deepEqual(r.m.vm.ioeventfds.list().map((x) => [x.bus, Number(x.addr), x.len, x.datamatch, x.dataread]), [
    ['mmio', BASE + DB_MAGIC, 4, null, BigInt(DOORBELL_MAGIC)],
    ['mmio', BASE + DB_CONFIG, 8, null, DOORBELL_CONFIG],
    ['mmio', BASE + DB_DOORBELL, 4, null, null],
    ['pio', PORT + DB_PIO_DOORBELL, 2, 1n, null],
    ['pio', PORT + DB_PIO_MAGIC, 4, null, BigInt(DOORBELL_MAGIC)],
  ]);
});

test('rings and identification reads complete without exits; one service answers every request rung since the last', () => {
  const r = rig();
  assert.deepEqual(run(r, setup).map((e) => e.reason === 'mmio' ? e.gpa - BASE : -1), [DB_RING, DB_IRQ]); // the two set-up registers exit
  const id = `mov ebx, ${BASE}\n mov eax, dword ptr [rbx + ${DB_MAGIC}]\n mov r10, rax\n mov rax, qword ptr [rbx + ${DB_CONFIG}]\n mov r11, rax
    mov edx, ${PORT + DB_PIO_MAGIC}\n in eax, dx\n mov r12, rax`;
  assert.deepEqual(run(r, `${id}\n${requests(3, 40)}\n${requests(43, 10, 'pio')}`), []);
  const regs = r.v.getRegs();
  assert.deepEqual([regs.r10, regs.r11, regs.r12], [BigInt(DOORBELL_MAGIC), DOORBELL_CONFIG, BigInt(DOORBELL_MAGIC)]);
  assert.equal(r.dev.kick.value, 50n); // every ring counted by the kernel, none seen by the VMM yet
  assert.equal(r.dev.reads.value, 3n);
  assert.equal(u32(r, RING_CONSUMED), 0);
  r.dev.service();
  assert.equal(u32(r, RING_CONSUMED), 50);
  for (let k = 0; k < 50; k++) assert.equal(result(r, k), BigInt((3 + k) * (3 + k)));
  assert.deepEqual([u32(r, RING_KICKS), u32(r, RING_EXIT_KICKS), u32(r, RING_READS), u32(r, RING_SERVICES), u32(r, RING_IRQS)], [50, 0, 3, 2, 1]);
  assert.equal(r.v.apic.pendingVector(), VECTOR); // the completion interrupt, for the vCPU that wrote IRQ
  assert.deepEqual([...r.dev.exitAccesses], [['mmio:RING', 1], ['mmio:IRQ', 1]]);
});

test('accesses the ioeventfds do not take exit to the device and behave the same: a 1-byte ring still rings', () => {
  const r = rig();
  run(r, setup);
  const exits = run(r, `${requests(7, 1).replace(`mov dword ptr [rbx + ${DB_DOORBELL}], eax`, `mov byte ptr [rbx + ${DB_DOORBELL}], al`)}
    movzx eax, word ptr [rbx + ${DB_MAGIC + 2}]
    mov r10, rax
    mov edx, ${PORT + DB_PIO_DOORBELL}
    mov eax, 2
    out dx, ax`);
  assert.deepEqual(exits.map((e) => e.reason), ['mmio', 'mmio', 'io']);
  assert.equal(u32(r, RING_CONSUMED), 1); // the exit path processed the ring at once
  assert.equal(result(r, 0), 49n);
  assert.equal(r.v.getRegs().r10, BigInt(DOORBELL_MAGIC >>> 16)); // the same bytes the DATAREAD would give
  assert.deepEqual([r.dev.stats.kicks, r.dev.stats.exitKicks], [1, 1]); // value 2 at the PIO doorbell is not a ring
  assert.equal(r.dev.exitAccesses.get('mmio:DOORBELL'), 1);
  assert.equal(r.dev.exitAccesses.get('pio:DOORBELL'), 1);
  assert.equal(r.dev.mmioRead(BASE + DB_RING, 8), BigInt(RING));
  assert.equal(r.dev.mmioRead(BASE + DB_IRQ, 4), BigInt(VECTOR));
});

test('detach() deassigns every ioeventfd: then each ring exits to the device', () => {
  const r = rig();
  run(r, setup);
  r.dev.detach();
  assert.equal(r.m.vm.ioeventfds.list().length, 0);
  const exits = run(r, requests(1, 5));
  assert.equal(exits.length, 5);
  assert.equal(r.dev.kick.value, 0n);
  assert.deepEqual([r.dev.stats.exitKicks, u32(r, RING_CONSUMED)], [5, 5]);
});

test('the machine reacts through its poll set: listen() services the device when either notifier is readable', () => {
  const r = rig();
  const poll = new EventFdPoll();
  r.dev.listen(poll);
  run(r, setup);
  assert.equal(poll.dispatch(), 0);
  run(r, requests(2, 3));
  assert.equal(poll.dispatch(), 1); // the kick handler drained both fds
  assert.equal(poll.dispatch(), 0);
  assert.equal(u32(r, RING_CONSUMED), 3);
});

test('bad guest input: a ring that is misaligned, not RAM or write-protected is refused with a reason; runaway producers are bounded', () => {
  const r = rig();
  const ringAt = (gpa: bigint) => r.dev.mmioWrite(r.v, BASE + DB_RING, 8, gpa);
  ringAt(BigInt(RING + 8));
  assert.match(r.dev.ringError ?? '', /4 KiB aligned/);
  assert.equal(r.dev.mmioRead(BASE + DB_RING, 8), 0n);
  ringAt(0x4000_0000n); // beyond the 16 MiB of RAM
  assert.match(r.dev.ringError ?? '', /not guest RAM/);
  r.m.vm.setMemoryAttributes({ address: BigInt(RING), size: 0x1000n, attributes: BigInt(KVM_MEMORY_ATTRIBUTE_NW), flags: 0n });
  ringAt(BigInt(RING));
  assert.match(r.dev.ringError ?? '', /memory attributes/);
  r.m.vm.setMemoryAttributes({ address: BigInt(RING), size: 0x1000n, attributes: 0n, flags: 0n });
  ringAt(BigInt(RING));
  assert.equal(r.dev.ringError, null);

  // The guest claims 1000 requests at once: one service answers one ring's worth (64), never more.
  r.m.vm.mem.write32(RING + RING_PRODUCED, 1000);
  r.dev.kick.signal();
  r.dev.service();
  assert.equal(u32(r, RING_CONSUMED), DOORBELL_RING_ENTRIES);
  // Unknown ops answer all-ones; vectors 0-15 disable the interrupt.
  r.m.vm.mem.write32(RING + RING_ENTRY0, 9);
  r.dev.service();
  assert.equal(result(r, 0), (1n << 64n) - 1n);
  r.dev.mmioWrite(r.v, BASE + DB_IRQ, 4, 5n);
  assert.equal(r.dev.mmioRead(BASE + DB_IRQ, 4), 0n);
  const irqs = r.dev.stats.irqs;
  r.dev.service();
  assert.equal(r.dev.stats.irqs, irqs);
});
