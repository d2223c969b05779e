/**
 * The vsmvisor command end to end (issue 3, "The runner"): exit statuses,
 * one-sentence errors for bad input, one-line diagnoses for guests that shut
 * down or run out of budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../paths.js';
import { buildElf, bytesOf, multibootHeader } from '../vmm/elf-writer.js';

const BIN = join(REPO, 'bin/vsmvisor.js');
const HELLO = join(REPO, 'guests/build/hello.elf');
const dir = mkdtempSync(join(tmpdir(), 'vsmvisor-cli-'));

function vsm(...args: string[]) {
  const p = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: p.status, out: p.stdout, err: p.stderr };
}

/** A one-line diagnosis: exactly one line on stderr. */
function oneLine(err: string): string {
  const lines = err.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${err}`);
  return lines[0];
}

/** A Multiboot ELF32 image whose code (32-bit protected mode, at 0x100000) is `code`. */
function image(name: string, code: number[]): string {
  const text = bytesOf(multibootHeader(0), code);
  const elf = buildElf({ cls: 32, entry: 0x100000 + 12, segments: [{ paddr: 0x100000, data: text, memsz: text.length + 64 }] });
  const path = join(dir, name);
  writeFileSync(path, elf.bytes);
  return path;
}

test('a guest that writes 0 to port 0xF4 exits with status 0 and its serial output on stdout', { skip: !existsSync(HELLO) && 'guests not built' }, () => {
  const r = vsm('run', HELLO);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /^Hello from vsmvisor guest$/m);
  assert.equal(r.err, '');
});

test('the exit status is the raw value written to 0xF4', () => {
  // mov eax, 42 ; out 0xf4, eax ; hlt
  const r = vsm('run', image('exit42.elf', [0xb8, 42, 0, 0, 0, 0xe7, 0xf4, 0xf4]));
  assert.equal(r.status, 42, r.err);
});

test('a triple fault exits with status 3 and a one-line diagnosis', () => {
  // lidt [limit 0] ; int3  -> #GP delivering #BP -> #DF -> triple fault
  const idtr = 0x100000 + 12 + 8; // six zero bytes right after the code
  const code = [0x0f, 0x01, 0x1d, idtr & 0xff, (idtr >> 8) & 0xff, (idtr >> 16) & 0xff, 0, 0xcc, 0, 0, 0, 0, 0, 0];
  const r = vsm('run', image('triple.elf', code));
  assert.equal(r.status, 3);
  const line = oneLine(r.err);
  assert.match(line, /^vsmvisor: guest shut down \(triple fault/);
  assert.match(line, /rip=100013 /);
  assert.match(line, /last instructions: 10000c: lidt .*\| 100013: int3$/);
});

test('running out of --max-insns exits with status 4 and a one-line diagnosis', () => {
  const r = vsm('run', image('spin.elf', [0xeb, 0xfe]), '--max-insns', '1000');
  assert.equal(r.status, 4);
  assert.match(oneLine(r.err), /^vsmvisor: stopped: instruction budget of 1000 used up; vCPU 0: rip=10000c .*last instructions: 10000c: jmp/);
});

test('a guest that halts with interrupts disabled and no timer is reported as hung (status 3)', () => {
  const r = vsm('run', image('hang.elf', [0xfa, 0xf4]));
  assert.equal(r.status, 3);
  assert.match(oneLine(r.err), /^vsmvisor: guest hung \(every vCPU is halted and no timer is armed\)/);
});

test('bad input gets one clear sentence and status 2, never a stack trace', () => {
  const cases: [string[], RegExp][] = [
    [['run', join(dir, 'missing.elf')], /^vsmvisor: cannot read image '.*missing\.elf': no such file\.$/],
    [['run', dir], /^vsmvisor: cannot read image '.*': it is a directory\.$/],
    [['run', HELLO, '--smp', '0'], /^vsmvisor: .*smp.*$/],
    [['run', HELLO, '-m', 'lots'], /^vsmvisor: .*-m.*$/],
    [['run', HELLO, '--hv', 'hv-bogus'], /^vsmvisor: .*hv-bogus.*$/],
    [['run', HELLO, '--initrd', join(dir, 'nope')], /^vsmvisor: cannot read initrd '.*nope': no such file\.$/],
    [['frobnicate'], /^vsmvisor: .+$/],
  ];
  writeFileSync(join(dir, 'garbage.elf'), Buffer.from('this is not an ELF image at all'));
  cases.push([['run', join(dir, 'garbage.elf')], /^vsmvisor: .+$/]);
  for (const [args, re] of cases) {
    const r = vsm(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: status ${r.status}, stderr ${r.err}`);
    assert.match(oneLine(r.err), re, args.join(' '));
    assert.doesNotMatch(r.err, /\n\s+at /, 'stack trace printed');
  }
});

test('--serial writes the guest output to a file instead of stdout', { skip: !existsSync(HELLO) && 'guests not built' }, () => {
  const out = join(dir, 'serial.txt');
  const r = vsm('run', HELLO, '--serial', out);
  assert.equal(r.status, 0);
  assert.equal(r.out, '');
  assert.match(spawnSync('cat', [out], { encoding: 'utf8' }).stdout, /Hello from vsmvisor guest/);
});

test('the same image and options give the same output byte for byte', { skip: !existsSync(HELLO) && 'guests not built' }, () => {
  const smp = join(REPO, 'guests/build/smp.elf');
  const a = vsm('run', smp, '--smp', '4');
  const b = vsm('run', smp, '--smp', '4');
  assert.equal(a.status, 0);
  assert.equal(a.out, b.out);
});

test('--trace writes KVM-named trace events as Chrome trace JSON; an undefined opcode shows up as kvm_inj_exception #UD', () => {
  // ud2 at 0x10000c with no IDT: #UD, then #GP, #DF, triple fault; the first delivery attempt is traced.
  const img = image('ud.elf', [0x0f, 0x0b]);
  const file = join(dir, 'trace.json');
  const r = vsm('run', img, '--trace', file);
  assert.equal(r.status, 3);
  const trace = JSON.parse(spawnSync('cat', [file], { encoding: 'utf8' }).stdout) as { traceEvents: { name: string; ph: string; tid: number; args: Record<string, unknown> }[] };
  const ud = trace.traceEvents.filter((e) => e.name === 'kvm_inj_exception' && e.args.exception === 6);
  assert.equal(ud.length, 1);
  assert.deepEqual({ ...ud[0].args }, { exception: 6, has_error: false, error_code: 0, rip: '10000c', soft: false, insn: '0f 0b', insn_name: 'ud2' });
  assert.equal(ud[0].ph, 'i');
  assert.equal(ud[0].tid, 1);
});

test('--trace records port I/O and IPIs of a real guest', { skip: !existsSync(join(REPO, 'guests/build/ipi.elf')) && 'guests not built' }, () => {
  const file = join(dir, 'ipi-trace.json');
  const r = vsm('run', join(REPO, 'guests/build/ipi.elf'), '--smp', '2', '--trace', file);
  assert.equal(r.status, 0);
  const ev = (JSON.parse(spawnSync('cat', [file], { encoding: 'utf8' }).stdout) as { traceEvents: { name: string; args: Record<string, unknown> }[] }).traceEvents;
  // Every serial byte is an OUT to 0x3F8; one more is the divisor latch written during UART init (DLAB=1, not output).
  const serial = ev.filter((e) => e.name === 'kvm_pio' && e.args.port === 0x3f8 && e.args.rw === 'write');
  assert.equal(serial.length, Buffer.byteLength(r.out) + 1);
  assert.ok(ev.some((e) => e.name === 'kvm_apic_ipi'));
  assert.ok(ev.some((e) => e.name === 'kvm_inj_virq'));
  // The exit code write is the last port write.
  const last = ev.filter((e) => e.name === 'kvm_pio').at(-1)!;
  assert.deepEqual({ port: last.args.port, val: last.args.val }, { port: 0xf4, val: 0 });
});

test('--max-vtl sets the VSM partition\'s MaximumVtl; without hv-vsm it is a usage error (exit 2)', { skip: !existsSync(join(REPO, 'guests/build/vsm-basic.elf')) && 'guest not built' }, () => {
  const image = join(REPO, 'guests/build/vsm-basic.elf');
  const r = vsm('run', image, '--hv', 'hv-vpindex,hv-synic,hv-vapic,hv-vsm', '--max-vtl', '2');
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /^PASS: VsmPartitionStatus 0x20001: maximum VTL 2, only VTL0 enabled\r?$/m);
  const bad = vsm('run', HELLO, '--max-vtl', '2');
  assert.equal(bad.status, 2);
  assert.equal(oneLine(bad.err), 'vsmvisor: a maximum VTL (--max-vtl) needs hv-vsm');
});

test('a reader that goes away (vsmvisor run ... | head) does not crash the runner: output is dropped, the guest\'s status stands', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [BIN, 'run', HELLO], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy(); // the read end closes before the guest has written anything: every write gets EPIPE
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  assert.equal(err, '');
  assert.equal(status, 0);
});

test('--trace with hv-vsm: one trace process per VTL, VTL entries in the entered VTL, returns in the VTL returned to', { skip: !existsSync(join(REPO, 'guests/build/vsm-basic.elf')) && 'guest not built' }, () => {
  const path = join(dir, 'vsm-trace.json');
  const r = vsm('run', join(REPO, 'guests/build/vsm-basic.elf'), '--hv', 'hv-vpindex,hv-synic,hv-vapic,hv-vsm', '--trace', path);
  assert.equal(r.status, 0, r.err);
  const events = (JSON.parse(readFileSync(path, 'utf8')) as { traceEvents: { name: string; pid: number; args: Record<string, unknown> }[] }).traceEvents;
  assert.deepEqual(events.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args.name]), [[1, 'VTL0'], [2, 'VTL1']]);
  const enters = events.filter((e) => e.name === 'vsm_vtl_enter'), returns = events.filter((e) => e.name === 'vsm_vtl_return');
  assert.ok(enters.length > 0);
  assert.ok(enters.every((e) => e.pid === 2 && e.args.to === 1));
  assert.ok(returns.every((e) => e.pid === 1 && e.args.to === 0));
  assert.equal(returns.length, enters.length, 'vsm-basic ends in VTL0: every entry was returned from');
});
