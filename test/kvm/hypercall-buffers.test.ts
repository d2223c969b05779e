// Guest-memory buffers of memory-based hypercalls, as the kernel and the VMM
// both check them (hc-buffers.ts): tlfs-vsm-facts.md §1.1/§1.5 (alignment,
// page crossing, GPA space), kvm-api-facts.md §2.7 (memory attributes), §1.4
// (the hypercall page is read+execute only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHypercallBuffer, readHypercallInput, writeHypercallOutput } from '../../src/kvm/hyperv/hc-buffers.js';
import { resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { Vm } from '../../src/kvm/vm.js';
import { HvStatus } from '../../src/spec/tlfs.js';
import { ACCESS_READ, ACCESS_WRITE } from '../../src/x86/host.js';

function vm(): Vm {
  const v = new Vm({ memorySize: 1 << 20, hyperv: resolveHvFeatures({ flags: new Set(['hv-vpindex']) }) });
  v.hyperv!.writeGuestOsId(1n);
  return v;
}

test('reads: alignment, crossing and GPA space are INVALID_ALIGNMENT; no RAM or no read permission INVALID_HYPERCALL_INPUT', () => {
  const v = vm();
  v.mem.write64(0x5000, 0x1122334455667788n);
  const ok = readHypercallInput(v, 0x5000, 0, 8);
  assert.deepEqual(ok, Uint8Array.from([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]));
  assert.equal(readHypercallInput(v, 0x5004, 0, 8), HvStatus.INVALID_ALIGNMENT);
  assert.equal(readHypercallInput(v, 0x5ff8, 0, 16), HvStatus.INVALID_ALIGNMENT);
  assert.equal(readHypercallInput(v, 0x0, 0x100, 8), HvStatus.INVALID_ALIGNMENT, 'GPA 2^40');
  assert.equal(readHypercallInput(v, 0x0, -1, 8), HvStatus.INVALID_ALIGNMENT, 'GPA 0xffffffff00000000');
  assert.equal(readHypercallInput(v, 0x200000, 0, 8), HvStatus.INVALID_HYPERCALL_INPUT, 'beyond the 1 MiB of RAM');
  v.setMemoryAttributes({ address: 0x5000, size: 0x1000, attributes: 7, flags: 0 });
  assert.equal(readHypercallInput(v, 0x5000, 0, 8), HvStatus.INVALID_HYPERCALL_INPUT);
});

test('writes need write permission and never go into the hypercall page', () => {
  const v = vm();
  const data = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(writeHypercallOutput(v, 0x6000, 0, data), HvStatus.SUCCESS);
  assert.equal(v.mem.read64(0x6000), 0x0807060504030201n);
  v.setMemoryAttributes({ address: 0x6000, size: 0x1000, attributes: 2 /* NW */, flags: 0 });
  assert.equal(checkHypercallBuffer(v, 0x6000, 0, 8, ACCESS_READ), HvStatus.SUCCESS, 'still readable');
  assert.equal(writeHypercallOutput(v, 0x6000, 0, Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9])), HvStatus.INVALID_HYPERCALL_INPUT);
  assert.equal(v.mem.read64(0x6000), 0x0807060504030201n, 'nothing written');
  assert.equal(v.hyperv!.writeHypercall(0x7001n), true);
  assert.equal(checkHypercallBuffer(v, 0x7000, 0, 8, ACCESS_READ), HvStatus.SUCCESS);
  assert.equal(checkHypercallBuffer(v, 0x7000, 0, 8, ACCESS_WRITE), HvStatus.INVALID_HYPERCALL_INPUT, 'the hypercall page is read+execute');
});
