/**
 * The protmem guest (guests/tests/protmem.c) on the real Machine with
 * --protected-memory rfc and upstream, plus a DMA test device that exists
 * only here: a device model that reaches guest memory the way every device
 * must, through machine.guestMemory (src/vmm/guest-memory-access.ts). The
 * guest enables protection, shares a buffer, the device writes into it and
 * the guest sees it; after unsharing, the device's access is refused and
 * the guest reads the error status (kvm-api-facts §4.1, §4.2; issue 6).
 *
 * Also the CLI: --protected-memory runs the guest (without the test device,
 * so the device checks are skipped) and rejects bad combinations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Machine, type MachineResult } from '../../src/vmm/machine.js';
import type { PioDevice, PioSize } from '../../src/vmm/io-bus.js';
import { GuestMemoryAccess, GuestMemoryAccessError, ProtectedMemoryError } from '../../src/vmm/guest-memory-access.js';
import { REPO } from '../paths.js';

const IMAGE = join(REPO, 'guests', 'build', 'protmem.elf');
const skip = !existsSync(IMAGE) && 'guests not built (make -C guests)';

const DEV_BASE = 0x3100;
const STATUS = { done: 0, private: 1, other: 2 } as const;

/** The DMA test device of protmem.c: address at +0, command at +4 (1 write pattern, 2 read dword), status +8, data +12. */
class DmaTestDevice implements PioDevice {
  private addr = 0;
  private status: number = STATUS.done;
  private data = 0;
  /** GPAs of the pages whose access the accessor refused as private. */
  readonly refused: number[] = [];

  constructor(private readonly mem: GuestMemoryAccess) {}

  pioRead(port: number, _size: PioSize): number {
    if (port === DEV_BASE + 8) return this.status;
    if (port === DEV_BASE + 12) return this.data;
    return 0;
  }

  pioWrite(port: number, _size: PioSize, value: number): void {
    if (port === DEV_BASE) { this.addr = value >>> 0; return; }
    if (port !== DEV_BASE + 4) return;
    try {
      if (value === 1) this.mem.write(this.addr, Uint8Array.from({ length: 16 }, (_, k) => 0xd0 + k));
      else if (value === 2) this.data = this.mem.read32(this.addr);
      this.status = STATUS.done;
    } catch (e) {
      if (e instanceof ProtectedMemoryError) { this.status = STATUS.private; this.refused.push(e.gpa); return; }
      if (e instanceof GuestMemoryAccessError) { this.status = STATUS.other; return; }
      throw e;
    }
  }
}

function run(mode: 'rfc' | 'upstream'): { result: MachineResult; out: string; device: DmaTestDevice } {
  const chunks: Buffer[] = [];
  const machine = new Machine({
    image: readFileSync(IMAGE), imagePath: IMAGE, smp: 1, memory: 64 << 20, append: `mode=${mode}`,
    serial: (b) => chunks.push(Buffer.from(b)), protectedMemory: mode, maxInsns: 50_000_000,
  });
  const device = new DmaTestDevice(machine.guestMemory);
  machine.io.register(DEV_BASE, 16, device, 'dma-test');
  const result = machine.run();
  return { result, out: Buffer.concat(chunks).toString('latin1'), device };
}

test('protmem guest, RFC mode: share, device DMA into the shared buffer, unshare, the device gets an error status', { skip }, () => {
  const { result, out, device } = run('rfc');
  assert.deepEqual(result, { kind: 'exit', code: 0 }, out);
  assert.match(out, /^SUMMARY: 22 tests, 0 failures, 0 skipped$/m);
  assert.match(out, /^INFO: KVM CPUID leaves at 0x40000000$/m);
  for (const line of [
    /^PASS: CPUID features 0x8000: MEM_PROTECTED \(bit 15\) without HC_MAP_GPA_RANGE \(bit 16\)$/m,
    /^PASS: ENABLE from CPL 3 returns -1 \(-KVM_EPERM\): -1$/m,
    /^PASS: after SHARE the device writes into the buffer and the guest sees it$/m,
    /^PASS: after UNSHARE the device is refused again \(error status\) and writes nothing$/m,
    /^PASS: the guest's own LOCK XADD on a private page works$/m,
    /^PASS: SHARE running past the end of the memslot returns -22: -22$/m,
  ]) assert.match(out, line);
  // Refused: after ENABLE write+read, the unshared neighbour, after UNSHARE write+read, the last check.
  assert.equal(device.refused.length, 6);
});

test('protmem guest, upstream mode: MAP_GPA_RANGE through the VMM\'s exit handler makes the device fail and work again', { skip }, () => {
  const { result, out, device } = run('upstream');
  assert.deepEqual(result, { kind: 'exit', code: 0 }, out);
  assert.match(out, /^SUMMARY: 10 tests, 0 failures, 0 skipped$/m);
  assert.match(out, /^PASS: CPUID features 0x10000: HC_MAP_GPA_RANGE \(bit 16\) without MEM_PROTECTED \(bit 15\)$/m);
  assert.match(out, /^PASS: hypercall 13 \(the RFC's SHARE\) is unknown upstream: -1000$/m);
  assert.equal(device.refused.length, 1);
});

function cli(...args: string[]) {
  const p = spawnSync(process.execPath, [join(REPO, 'bin/vsmvisor.js'), ...args], { encoding: 'utf8' });
  return { status: p.status, out: p.stdout, err: p.stderr };
}

test('CLI: --protected-memory rfc runs the guest (no test device: its checks are skipped)', { skip }, () => {
  const r = cli('run', IMAGE, '-m', '64M', '--protected-memory', 'rfc');
  assert.equal(r.status, 0, r.out + r.err);
  assert.match(r.out, /^SUMMARY: 22 tests, 0 failures, 10 skipped$/m);
  assert.match(r.out, /^PASS: ENABLE returns 0$/m);
});

test('CLI: without --protected-memory the guest finds no KVM interface; bad values and RFC with --hv are usage errors', { skip }, () => {
  const none = cli('run', IMAGE, '-m', '64M');
  assert.equal(none.status, 38, 'everything skipped');
  assert.match(none.out, /^SKIP: no KVM paravirtual interface/m);
  const bad = cli('run', IMAGE, '--protected-memory', 'sev');
  assert.equal(bad.status, 2);
  assert.equal(bad.err, "vsmvisor: --protected-memory must be 'rfc' or 'upstream', not 'sev'\n");
  const hv = cli('run', IMAGE, '--protected-memory', 'rfc', '--hv', 'hv-relaxed');
  assert.equal(hv.status, 2);
  assert.equal(hv.err, 'vsmvisor: protected memory in RFC mode cannot be combined with Hyper-V enlightenments: both are advertised in CPUID leaves 0x40000000-0x40000001\n');
});
