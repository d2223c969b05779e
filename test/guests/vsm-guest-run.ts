/**
 * Running a VSM test guest from guests/build on the real runner
 * (bin/vsmvisor.js) and checking its report: the shared part of the VSM
 * guest tests (vsm-protect, vsm-mbec, vsm-hcbuffer).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../paths.js';

/** The Hyper-V flags the VSM guests run with. */
export const VSM_GUEST_HV: readonly string[] = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm', 'hv-tlbflush', 'hv-ipi', 'hv-xmm-input', 'hv-xmm-output'];

export const guestImage = (name: string): string => join(REPO, 'guests', 'build', `${name}.elf`);
/** The `skip` option of a test of guest `name`: a reason when it is not built. */
export const skipUnlessBuilt = (name: string): string | false => !existsSync(guestImage(name)) && 'guest not built';

export interface GuestRun { status: number | null; out: string; err: string; summary: { tests: number; failures: number; skipped: number } | null }

/** Boots guest `name` with `smp` CPUs, 128 MiB, the flags `hv`, and `extra` arguments; its exit status, output and SUMMARY. */
export function runGuest(name: string, smp: number, o: { hv?: readonly string[]; extra?: readonly string[] } = {}): GuestRun {
  const args = [join(REPO, 'bin/vsmvisor.js'), 'run', guestImage(name), '--smp', String(smp), '-m', '128M', '--timeout', '60',
    '--hv', (o.hv ?? VSM_GUEST_HV).join(','), ...(o.extra ?? [])];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const m = /^SUMMARY: (\d+) tests, (\d+) failures, (\d+) skipped/m.exec(p.stdout);
  return { status: p.status, out: p.stdout, err: p.stderr, summary: m ? { tests: Number(m[1]), failures: Number(m[2]), skipped: Number(m[3]) } : null };
}

/** Exactly `tests` checks, no FAIL or ABORT line, no skip, exit status 0. */
export function checkRun(o: GuestRun, tests: number): void {
  assert.ok(o.summary !== null, `no SUMMARY line; stderr: ${o.err}\n${o.out.slice(-2000)}`);
  const fails = o.out.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('ABORT'));
  assert.deepEqual(fails, [], 'failures');
  assert.equal(o.status, 0, `exit status ${o.status}; stderr: ${o.err}`);
  assert.deepEqual(o.summary, { tests, failures: 0, skipped: 0 });
}

/** A whole PASS line (regular expression source `s`). */
export const line = (s: string): RegExp => new RegExp(`^PASS: ${s}\\r?$`, 'm');
