// The runner's --on-hyperv option: a whole guest runs as L2 on identity
// second-level tables under the L0 model, and every L0 flush is in the trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../paths.js';
import { parseArgs } from '../../src/cli/args.js';

const BIN = join(REPO, 'bin', 'vsmvisor.js');
const TLB = join(REPO, 'guests/build/tlb.elf');
const VSM = join(REPO, 'guests/build/vsm-basic.elf');

function run(...args: string[]) {
  return spawnSync(process.execPath, [BIN, 'run', ...args], { encoding: 'utf8' });
}

test('--on-hyperv is parsed; absent, the options have no such field; a bad mode is one sentence', () => {
  const c = parseArgs(['run', 'x.elf', '--on-hyperv', 'unfixed']);
  assert.equal(c.kind === 'run' && c.options.onHyperv, 'unfixed');
  const d = parseArgs(['run', 'x.elf']);
  assert.equal(d.kind === 'run' && 'onHyperv' in d.options, false);
  assert.throws(() => parseArgs(['run', 'x.elf', '--on-hyperv', 'on']), /--on-hyperv must be one of fixed, unfixed, plain, not 'on'/);
});

for (const [mode, hypercalls, enlightened] of [['fixed', 2, true], ['unfixed', 0, true], ['plain', 0, false]] as const) {
  test(`the tlb guest passes with --on-hyperv ${mode} --smp 2; the trace has each root load's flushes`, { skip: !existsSync(TLB) && 'guests not built' }, () => {
    const trace = join(mkdtempSync(join(tmpdir(), 'vsm-oh-')), 't.json');
    const p = run(TLB, '--smp', '2', '--on-hyperv', mode, '--trace', trace);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    assert.match(p.stdout, /SUMMARY: \d+ tests, 0 failures/);
    const ev = (JSON.parse(readFileSync(trace, 'utf8')) as { traceEvents: { name: string; tid: number; args: Record<string, unknown> }[] }).traceEvents;
    const space = ev.filter((e) => e.name === 'hv_l0_flush_guest_physical_address_space');
    assert.equal(space.length, hypercalls);
    assert.equal(ev.filter((e) => e.name === 'hyperv_nested_flush_guest_mapping').length, hypercalls);
    if (hypercalls > 0) assert.deepEqual(space.map((e) => e.args.as), ['8000000000', '8000000000'], 'both vCPUs share the identity root');
    const asid = ev.filter((e) => e.name === 'hv_l0_flush_asid');
    assert.deepEqual(asid.map((e) => [e.tid, e.args.asid, e.args.enlightened]), [[1, 1, enlightened], [2, 2, enlightened]]);
  });
}

test('--on-hyperv with hv-vsm is refused with exit status 2', { skip: !existsSync(VSM) && 'guests not built' }, () => {
  const p = run(VSM, '--hv', 'hv-vpindex,hv-vapic,hv-synic,hv-vsm', '--on-hyperv', 'fixed');
  assert.equal(p.status, 2);
  assert.match(p.stderr, /--on-hyperv cannot be combined with hv-vsm/);
});
