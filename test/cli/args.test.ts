import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_MEMORY,
  UsageError,
  parseArgs,
  parseHvList,
  type CliCommand,
  type RunOptions,
} from '../../src/cli/args.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function run(...argv: string[]): RunOptions {
  const c: CliCommand = parseArgs(['run', ...argv]);
  assert.equal(c.kind, 'run');
  return (c as Extract<CliCommand, { kind: 'run' }>).options;
}

function usage(argv: string[], message: string): void {
  assert.throws(() => parseArgs(argv), (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

test('defaults: 1 CPU, 128 MiB (QEMU default), no Hyper-V flags', () => {
  assert.deepEqual(run('img.elf'), {
    image: 'img.elf',
    smp: 1,
    memory: 128 * MiB,
    append: undefined,
    initrd: [],
    hv: { flags: new Set(), versionId: {} },
    maxInsns: undefined,
    timeoutSeconds: undefined,
    serial: undefined,
    trace: undefined,
    guestMips: 1000,
    tscMhz: 1000,
  });
  assert.equal(DEFAULT_MEMORY, 128 * MiB);
});

test('every option, in both "--opt value" and "--opt=value" forms', () => {
  const o = run(
    '--smp', '4', '-m', '1G', 'k.elf', '--append=-v  x=1', '--initrd', 'env', '--initrd=second',
    '--hv', 'hv-vpindex,hv-synic', '--max-insns=1e9', '--timeout', '2.5', '--serial', 'out.txt', '--trace=t.json',
  );
  assert.equal(o.image, 'k.elf');
  assert.equal(o.smp, 4);
  assert.equal(o.memory, GiB);
  assert.equal(o.append, '-v  x=1');
  assert.deepEqual(o.initrd, ['env', 'second']);
  assert.deepEqual([...o.hv.flags], ['hv-vpindex', 'hv-synic']);
  assert.equal(o.maxInsns, 1e9);
  assert.equal(o.timeoutSeconds, 2.5);
  assert.equal(o.serial, 'out.txt');
  assert.equal(o.trace, 't.json');
});

test('an option value may start with "-" and "--" ends the options', () => {
  assert.equal(run('k', '--append', '--smp').append, '--smp');
  assert.equal(run('--', '-weird.elf').image, '-weird.elf');
});

test('help and version', () => {
  assert.deepEqual(parseArgs(['--help']), { kind: 'help' });
  assert.deepEqual(parseArgs(['-h']), { kind: 'help' });
  assert.deepEqual(parseArgs(['run', 'k', '--help']), { kind: 'help' });
  assert.deepEqual(parseArgs(['run', '-h']), { kind: 'help' });
  assert.deepEqual(parseArgs(['--version']), { kind: 'version' });
});

test('-m sizes: plain MiB, K/M/G/T suffixes in any case, fractions (QEMU -m)', () => {
  assert.equal(run('k', '-m', '512').memory, 512 * MiB);
  assert.equal(run('k', '-m', '2048k').memory, 2 * MiB);
  assert.equal(run('k', '-m', '2048K').memory, 2 * MiB);
  assert.equal(run('k', '-m', '256m').memory, 256 * MiB);
  assert.equal(run('k', '-m', '1.5G').memory, 1.5 * GiB);
  assert.equal(run('k', '-m', '64g').memory, 64 * GiB);
  assert.equal(run('k', '-m', '2M').memory, 2 * MiB);
});

test('-m errors: syntax, not a multiple of 4 KiB, outside 2 MiB..64 GiB', () => {
  const syntax = (v: string) => `-m must be a size such as 512, 512M or 4G (a plain number is MiB), not '${v}'`;
  usage(['run', 'k', '-m', '512MB'], syntax('512MB'));
  usage(['run', 'k', '-m', '-1'], syntax('-1'));
  usage(['run', 'k', '-m', ''], syntax(''));
  usage(['run', 'k', '-m', '0x100'], syntax('0x100'));
  usage(['run', 'k', '-m', '4097K'], '-m 4097K is not a whole multiple of 4 KiB');
  usage(['run', 'k', '-m', '2.0001M'], '-m 2.0001M is not a whole multiple of 4 KiB');
  const range = (v: string) => `-m ${v} is outside the supported guest RAM sizes of 2 MiB to 64 GiB`;
  usage(['run', 'k', '-m', '1'], range('1'));
  usage(['run', 'k', '-m', '2044K'], range('2044K'));
  usage(['run', 'k', '-m', '65G'], range('65G'));
  usage(['run', 'k', '-m', '1T'], range('1T'));
});

test('--smp accepts 1..256 and nothing else', () => {
  assert.equal(run('k', '--smp', '1').smp, 1);
  assert.equal(run('k', '--smp', '64').smp, 64);
  assert.equal(run('k', '--smp', '256').smp, 256);
  for (const v of ['0', '257', '2.5', '-1', 'four', '', '0x4']) {
    usage(['run', 'k', '--smp', v], `--smp must be a whole number from 1 to 256, not '${v}'`);
  }
});

test('--max-insns: positive whole numbers, plain or scientific', () => {
  assert.equal(run('k', '--max-insns', '5000000').maxInsns, 5000000);
  assert.equal(run('k', '--max-insns', '2.5e6').maxInsns, 2500000);
  for (const v of ['0', '-5', '1.5', '1e-3', '10k', '1e400', '', 'many']) {
    usage(['run', 'k', '--max-insns', v], `--max-insns must be a positive whole number such as 1000000 or 1e9, not '${v}'`);
  }
});

test('--timeout: positive seconds, fractions allowed', () => {
  assert.equal(run('k', '--timeout', '30').timeoutSeconds, 30);
  assert.equal(run('k', '--timeout', '0.25').timeoutSeconds, 0.25);
  for (const v of ['0', '0.0', '-1', '1s', 'inf', '']) {
    usage(['run', 'k', '--timeout', v], `--timeout must be a positive number of seconds, not '${v}'`);
  }
});

test('command and structure errors', () => {
  usage([], "no command given; try 'vsmvisor --help'");
  usage(['boot', 'k'], "unknown command 'boot'; the command is 'run' (try 'vsmvisor --help')");
  usage(['--smp', '2'], "unknown option '--smp'; try 'vsmvisor --help'");
  usage(['--version', 'x'], "'--version' takes no further arguments, but got 'x'");
  usage(['run'], "missing IMAGE: the usage is 'vsmvisor run IMAGE [options]'");
  usage(['run', '--smp', '2'], "missing IMAGE: the usage is 'vsmvisor run IMAGE [options]'");
  usage(['run', 'a', 'b'], "unexpected argument 'b': only one IMAGE is allowed");
  usage(['run', ''], 'the IMAGE path is empty');
  usage(['run', 'k', '--frobnicate'], "unknown option '--frobnicate' for 'vsmvisor run'; try 'vsmvisor --help'");
  usage(['run', 'k', '--smp=2', '--smp', '3'], "option '--smp' is given more than once");
  usage(['run', 'k', '--smp'], "option '--smp' needs a value");
  usage(['run', 'k', '--help=yes'], "option '--help' takes no value");
  usage(['run', 'k', '--initrd='], "option '--initrd' needs a file name, not an empty string");
  usage(['run', 'k', '--serial='], "option '--serial' needs a file name, not an empty string");
  usage(['run', 'k', '--trace', ''], "option '--trace' needs a file name, not an empty string");
});

// ---- --hv: QEMU's names (docs/system/i386/hyperv.rst) plus hv-vsm and hv-xmm-output ----

test('--hv accepts every QEMU on/off flag name and ours', () => {
  const names = [
    'hv-relaxed', 'hv-vapic', 'hv-time', 'hv-crash', 'hv-reset', 'hv-vpindex', 'hv-runtime', 'hv-synic',
    'hv-stimer', 'hv-stimer-direct', 'hv-frequencies', 'hv-reenlightenment', 'hv-tlbflush', 'hv-tlbflush-ext',
    'hv-tlbflush-direct', 'hv-evmcs', 'hv-ipi', 'hv-avic', 'hv-emsr-bitmap', 'hv-xmm-input', 'hv-syndbg',
    'hv-passthrough', 'hv-enforce-cpuid', 'hv-vsm', 'hv-xmm-output',
  ];
  assert.deepEqual([...run('k', '--hv', names.join(',')).hv.flags].sort(), [...names].sort());
});

test('--hv aliases and on/off forms: hv-apicv = hv-avic, hv_x = hv-x, later settings win', () => {
  assert.deepEqual([...parseHvList('hv-apicv').flags], ['hv-avic']);
  assert.deepEqual([...parseHvList('hv_relaxed,hv_vpindex').flags], ['hv-relaxed', 'hv-vpindex']);
  assert.deepEqual([...parseHvList('hv-time=on,hv-relaxed,hv-relaxed=off').flags], ['hv-time']);
  assert.deepEqual([...parseHvList('hv-time=yes,hv-ipi=true,hv-ipi=no').flags], ['hv-time']);
});

test('--hv value flags: spinlocks, vendor id, coresharing, version ids', () => {
  const hv = parseHvList(
    'hv-spinlocks=0x1fff,hv-vendor-id=KVMKVMKVMKVM,hv-no-nonarch-coresharing=auto,' +
      'hv-version-id-build=14393,hv-version-id-major=10,hv-version-id-sbranch=255,hv-version-id-snumber=0xffffff',
  );
  assert.equal(hv.spinlocks, 0x1fff);
  assert.equal(hv.vendorId, 'KVMKVMKVMKVM');
  assert.equal(hv.noNonarchCoresharing, 'auto');
  assert.deepEqual(hv.versionId, { build: 14393, major: 10, sbranch: 255, snumber: 0xffffff });
  assert.equal(parseHvList('hv-spinlocks=4294967295').spinlocks, 0xffffffff);
});

test('--hv errors name the bad flag', () => {
  const hv = (list: string, message: string) => usage(['run', 'k', '--hv', list], message);
  hv('hv-relaxed,hv-bogus', "--hv flag 'hv-bogus' is not a known Hyper-V flag; see QEMU's hyperv documentation for the names");
  hv('relaxed', "--hv flag 'relaxed' is not a known Hyper-V flag; see QEMU's hyperv documentation for the names");
  hv('HV-RELAXED', "--hv flag 'HV-RELAXED' is not a known Hyper-V flag; see QEMU's hyperv documentation for the names");
  hv('hv-version-id-constructor=1', "--hv flag 'hv-version-id-constructor' is not a known Hyper-V flag; see QEMU's hyperv documentation for the names");
  hv('hv-relaxed,,hv-time', "--hv 'hv-relaxed,,hv-time' has an empty entry; separate flag names with single commas");
  hv('', "--hv '' has an empty entry; separate flag names with single commas");
  hv('hv-relaxed=maybe', "--hv flag 'hv-relaxed' takes on or off, not 'maybe'");
  hv('hv-spinlocks', "--hv flag 'hv-spinlocks' needs a value (hv-spinlocks=N)");
  hv('hv-spinlocks=', "--hv flag 'hv-spinlocks' needs a value (hv-spinlocks=N)");
  hv('hv-spinlocks=0x100000000', "--hv flag 'hv-spinlocks' needs a whole number from 0 to 0xFFFFFFFF, not '0x100000000'");
  hv('hv-spinlocks=-1', "--hv flag 'hv-spinlocks' needs a whole number from 0 to 0xFFFFFFFF, not '-1'");
  hv('hv-version-id-major=65536', "--hv flag 'hv-version-id-major' needs a whole number from 0 to 0xFFFF, not '65536'");
  hv('hv-vendor-id=ThirteenChars', "--hv flag 'hv-vendor-id' takes at most 12 printable ASCII characters, not 'ThirteenChars'");
  hv('hv-vendor-id', "--hv flag 'hv-vendor-id' needs a value (hv-vendor-id=STRING)");
  hv('hv-no-nonarch-coresharing=yes', "--hv flag 'hv-no-nonarch-coresharing' takes on, off or auto, not 'yes'");
  hv('hv-no-nonarch-coresharing', "--hv flag 'hv-no-nonarch-coresharing' needs a value (on, off or auto)");
  usage(['run', 'k', '--hv', 'hv-time', '--hv', 'hv-ipi'], "option '--hv' is given more than once");
});

test('--guest-mips and --tsc-mhz set the guest clock rates (issue 3: configurable frequency)', () => {
  const run = (...a: string[]) => {
    const c = parseArgs(['run', 'x.elf', ...a]);
    assert.equal(c.kind, 'run');
    return (c as { kind: 'run'; options: { guestMips: number; tscMhz: number } }).options;
  };
  assert.deepEqual([run().guestMips, run().tscMhz], [1000, 1000]);
  assert.equal(run('--guest-mips', '250').guestMips, 250);
  assert.equal(run('--tsc-mhz=2400.5').tscMhz, 2400.5);
  for (const bad of ['0', '-5', 'fast', '2000000', '']) {
    assert.throws(() => run('--guest-mips', bad), (e: Error) => e instanceof UsageError && /--guest-mips must be a number from 1 to 1000000/.test(e.message));
  }
  assert.throws(() => run('--tsc-mhz', 'x'), /--tsc-mhz must be a number/);
});

test('--device adds devices in order; unknown or repeated names are errors', () => {
  const c = parseArgs(['run', 'x.elf', '--device', 'doorbell']);
  assert.equal(c.kind, 'run');
  assert.deepEqual((c as Extract<CliCommand, { kind: 'run' }>).options.devices, ['doorbell']);
  assert.throws(() => parseArgs(['run', 'x.elf', '--device', 'toaster']), UsageError);
  assert.throws(() => parseArgs(['run', 'x.elf', '--device', 'doorbell', '--device', 'doorbell']), UsageError);
});

test('--protected-memory takes rfc or upstream (kvm-api-facts §4.3: never both meanings of hypercall 12)', () => {
  const get = (v: string) => (parseArgs(['run', 'x.elf', '--protected-memory', v]) as Extract<CliCommand, { kind: 'run' }>).options.protectedMemory;
  assert.equal(get('rfc'), 'rfc');
  assert.equal(get('upstream'), 'upstream');
  assert.equal((parseArgs(['run', 'x.elf']) as Extract<CliCommand, { kind: 'run' }>).options.protectedMemory, undefined);
  assert.throws(() => get('both'), (e: Error) => e instanceof UsageError && e.message === "--protected-memory must be 'rfc' or 'upstream', not 'both'");
});

test('--max-vtl takes 1 or 2 (the VTLs this VMM runs)', () => {
  const get = (v: string) => (parseArgs(['run', 'x.elf', '--max-vtl', v]) as Extract<CliCommand, { kind: 'run' }>).options.maxVtl;
  assert.equal(get('1'), 1);
  assert.equal(get('2'), 2);
  assert.equal((parseArgs(['run', 'x.elf']) as Extract<CliCommand, { kind: 'run' }>).options.maxVtl, undefined);
  for (const bad of ['0', '3', '2.0', 'two']) {
    assert.throws(() => get(bad), (e: Error) => e instanceof UsageError && e.message === `--max-vtl must be 1 or 2, not '${bad}'`);
  }
});
