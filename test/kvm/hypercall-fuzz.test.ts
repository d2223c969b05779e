// Random hypercalls never crash the host (DESIGN §5: bad hypercall input is an
// HV_STATUS code): seeded random control words, register and memory inputs for
// every implemented call and some unknown ones. Each call must end in one of
// the defined ways: a result with a TLFS status (§1.6), #UD, or an exit to the
// VMM, which is then answered and applied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { HvMachine, INPUT } from './hypercall-machine.js';

const CODES = [
  HvCall.FlushVirtualAddressSpace, HvCall.FlushVirtualAddressList, HvCall.FlushVirtualAddressSpaceEx, HvCall.FlushVirtualAddressListEx,
  HvCall.SendSyntheticClusterIpi, HvCall.SendSyntheticClusterIpiEx, HvCall.PostMessage, HvCall.SignalEvent, HvCall.NotifyLongSpinWait,
  HvCall.GetVpRegisters, HvCall.VtlCall, HvCall.ModifyVtlProtectionMask, 0x0001, 0x7777,
];
const STATUSES = new Set<number>(Object.values(HvStatus));

/** xorshift64*: a fixed sequence, so a failure reproduces. */
function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & 0xffff_ffff_ffff_ffffn;
  };
}

test('3000 random hypercalls end in a status, #UD or a VMM exit, never a host exception', () => {
  const m = new HvMachine({
    flags: ['hv-vpindex', 'hv-tlbflush', 'hv-tlbflush-ext', 'hv-ipi', 'hv-synic', 'hv-vapic', 'hv-xmm-input', 'hv-vsm'],
    ids: [0, 1, 64], spinlocks: 0x1000, trace: false,
  });
  m.partition.connections.registerMessageConnection(1, 1, 2);
  m.partition.connections.registerEventConnection(2, 1, 2);
  const next = rng(0x9e3779b97f4a7c15n);
  const pick = <T>(xs: readonly T[]): T => xs[Number(next() % BigInt(xs.length))];
  const seen = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
    const code = BigInt(pick(CODES));
    // Mostly well-formed control words, sometimes any bits at all.
    const r = next();
    const repCount = (r >> 16n) & 1n ? 0n : (r >> 17n) % 24n;
    const varHeader = (r >> 8n) & 1n ? 0n : (r >> 9n) % 4n;
    const repStart = (r >> 24n) % 4n === 0n ? 1n : 0n;
    const control = (r & 7n) === 0n ? r : code | ((r & 1n) << 16n) | (varHeader << 17n) | (repCount << 32n) | (repStart << 48n);
    const rdx = (next() & 3n) === 0n ? next() : BigInt(INPUT + Number(next() % 64n) * 8);
    const r8 = (next() & 1n) === 0n ? next() : next() & 0xffn;
    for (let k = 0; k < 64; k++) m.vm.mem.write64(INPUT + 8 * k, (next() & 1n) === 0n ? next() : next() & 0x1ffn);
    const xmm = Array.from({ length: 12 }, () => next());
    const v = m.vcpus[i % 3];
    const run = m.hypercall(v, control, rdx, r8, xmm);
    let kind: string;
    if (run.exit.reason === 'hyperv-hcall') {
      v.completeHypercall(next() & 0xffffn);
      assert.equal(m.runToExit(v).reason, 'hlt', 'the answer is applied and the guest goes on');
      kind = 'vmm';
    } else {
      assert.equal(run.exit.reason, 'hlt', `call ${i}: control 0x${control.toString(16)}`);
      if (run.ud) kind = 'ud';
      else {
        assert.ok(STATUSES.has(run.status), `call ${i}: status 0x${run.status.toString(16)} is not an HV_STATUS`);
        kind = `0x${run.status.toString(16)}`;
      }
    }
    seen.set(kind, (seen.get(kind) ?? 0) + 1);
  }
  // The sweep reached success, the VMM and the common errors.
  for (const k of ['0x0', 'vmm', '0x2', '0x3', '0x4', '0x5']) assert.ok((seen.get(k) ?? 0) >= 10, `fewer than 10 calls ended in ${k}: ${JSON.stringify([...seen])}`);
});
