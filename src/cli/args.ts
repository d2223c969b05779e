/**
 * Command-line parsing for `vsmvisor`. Pure: argv in, a command out, or a
 * UsageError whose message is one sentence (the CLI prints it and exits 2).
 *
 *   vsmvisor run IMAGE [--smp N] [-m SIZE] [--append TEXT] [--initrd FILE]...
 *                      [--hv LIST] [--max-insns N] [--timeout SECONDS]
 *                      [--serial FILE] [--trace FILE] [--device NAME]... [--protected-memory rfc|upstream]
 *                      [--on-hyperv fixed|unfixed|plain] [--max-vtl 1|2]
 *   vsmvisor --help | -h        vsmvisor run --help
 *   vsmvisor --version
 *
 * Options take their value as the next argument or after '=' (`--smp=4`); the
 * next argument is taken even if it starts with '-', so `--append -v` works.
 * `--` ends the options. Each option may be given once, except --initrd, which
 * adds one Multiboot module per use, in order, and --device (one device each).
 */

import { ON_HYPERV_MODES, type OnHypervMode } from '../kvm/on-hyperv/modes.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export const MIN_CPUS = 1;
export const MAX_CPUS = 256;
export const DEFAULT_CPUS = 1;
/** RAM bounds: above 1 MiB is needed for Multiboot's upper memory; 64 GiB is the design's largest guest. */
export const MIN_MEMORY = 2 * 1024 * 1024;
export const MAX_MEMORY = 64 * 1024 * 1024 * 1024;
/** QEMU's default RAM size. */
export const DEFAULT_MEMORY = 128 * 1024 * 1024;
export const DEFAULT_GUEST_MIPS = 1000;
export const DEFAULT_TSC_MHZ = 1000;

export const USAGE = `usage: vsmvisor run IMAGE [options]
       vsmvisor --help | --version

Runs a Multiboot v1 kernel (ELF) on the vsmvisor virtual machine.

options for run:
  --smp N             number of virtual CPUs, ${MIN_CPUS}-${MAX_CPUS} (default ${DEFAULT_CPUS})
  -m SIZE             guest RAM; a plain number is MiB, or use a K/M/G/T suffix
                      (default 128M, between 2M and 64G, a multiple of 4K)
  --append TEXT       kernel arguments (the command line is "IMAGE TEXT")
  --initrd FILE       load FILE as a Multiboot module (repeat for more modules)
  --hv LIST           Hyper-V enlightenments, comma-separated QEMU names, e.g.
                      hv-vpindex,hv-synic,hv-vapic,hv-vsm,hv-spinlocks=0x1fff
  --max-insns N       stop after N guest instructions (e.g. 5000000 or 1e9)
  --timeout SECONDS   stop after this much wall-clock time
  --serial FILE       write the serial port to FILE instead of stdout
  --guest-mips N      guest time runs at N million instructions per guest
                      second (default ${DEFAULT_GUEST_MIPS}: 1 ns per instruction)
  --tsc-mhz N         guest TSC frequency in MHz (default ${DEFAULT_TSC_MHZ})
  --trace FILE        write a Chrome trace-event JSON trace to FILE
  --device NAME       add a device; NAME is 'doorbell' (the ioeventfd example
                      device: MMIO 0xFEB00000, ports 0x6000-0x6007)
  --protected-memory rfc|upstream
                      protected guest memory: 'rfc' = the KVM protected memory
                      RFC's hypercalls 12/13/14 (not with --hv); 'upstream' =
                      private memory with the MAP_GPA_RANGE hypercall (12)
  --max-vtl 1|2       with hv-vsm: the highest VTL the guest may enable
                      (HvRegisterVsmPartitionStatus.MaximumVtl; default 1)
  --on-hyperv fixed|unfixed|plain
                      run the guest as L2 of our core running on a model of
                      Hyper-V (identity second-level tables, L0 flushes in the
                      trace): 'fixed' = enlightened TLB with the 2023 fix,
                      'unfixed' = without it, 'plain' = no enlightened TLB
  -h, --help          show this help
`;

/**
 * QEMU's on/off Hyper-V flags (docs/system/i386/hyperv.rst), plus two of ours:
 * hv-vsm (Virtual Secure Mode, which this VMM exists to emulate) and
 * hv-xmm-output (XMM fast hypercall output, requested by our issue; QEMU only
 * has hv-xmm-input). hv-apicv is QEMU's alias of hv-avic and is stored as hv-avic.
 */
export const HV_BOOLEAN_FLAGS = [
  'hv-relaxed',
  'hv-vapic',
  'hv-time',
  'hv-crash',
  'hv-reset',
  'hv-vpindex',
  'hv-runtime',
  'hv-synic',
  'hv-stimer',
  'hv-stimer-direct',
  'hv-frequencies',
  'hv-reenlightenment',
  'hv-tlbflush',
  'hv-tlbflush-ext',
  'hv-tlbflush-direct',
  'hv-evmcs',
  'hv-ipi',
  'hv-avic',
  'hv-emsr-bitmap',
  'hv-xmm-input',
  'hv-syndbg',
  'hv-passthrough',
  'hv-enforce-cpuid',
  'hv-vsm',
  'hv-xmm-output',
] as const;
export type HvFlag = (typeof HV_BOOLEAN_FLAGS)[number];

const HV_ALIASES: Readonly<Partial<Record<string, HvFlag>>> = { 'hv-apicv': 'hv-avic' };

/** QEMU's hv-version-id-* fields (CPUID 0x40000002) and their widths in bits. */
const HV_VERSION_ID_BITS = { build: 32, major: 16, minor: 16, spack: 32, sbranch: 8, snumber: 24 } as const;
export type HvVersionIdField = keyof typeof HV_VERSION_ID_BITS;

export type Coresharing = 'on' | 'off' | 'auto';

export interface HvOptions {
  /** Enabled on/off enlightenments (a later `name=off` removes an earlier one). */
  readonly flags: ReadonlySet<HvFlag>;
  /** hv-spinlocks=N: spinlock retry count (u32; 0xFFFFFFFF = never notify). */
  readonly spinlocks?: number;
  /** hv-vendor-id=STR: CPUID 0x40000000 vendor, at most 12 ASCII characters. */
  readonly vendorId?: string;
  readonly noNonarchCoresharing?: Coresharing;
  readonly versionId: Readonly<Partial<Record<HvVersionIdField, number>>>;
}

export interface RunOptions {
  readonly image: string;
  readonly smp: number;
  /** Guest RAM in bytes. */
  readonly memory: number;
  readonly append?: string;
  /** Module files, in command-line order. */
  readonly initrd: readonly string[];
  readonly hv: HvOptions;
  readonly maxInsns?: number;
  readonly timeoutSeconds?: number;
  readonly serial?: string;
  readonly trace?: string;
  /** Guest instructions per guest microsecond (guest time = instructions / guestMips µs). */
  readonly guestMips: number;
  readonly tscMhz: number;
  /** --device: devices beyond the PC platform, in command-line order; absent when none is given. */
  readonly devices?: readonly DeviceName[];
  /** --protected-memory: which protected-memory ABI the VM offers; absent = none. */
  readonly protectedMemory?: 'rfc' | 'upstream';
  /** --max-vtl: the VSM partition's maximum VTL (1 or 2); absent = 1. Needs hv-vsm. */
  readonly maxVtl?: number;
  /** --on-hyperv: run as L2 under the Hyper-V (L0) model; absent = not nested. */
  readonly onHyperv?: OnHypervMode;
}

export type CliCommand =
  | { readonly kind: 'run'; readonly options: RunOptions }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' };

const RUN_VALUE_OPTIONS = [
  '--smp',
  '-m',
  '--append',
  '--initrd',
  '--hv',
  '--max-insns',
  '--timeout',
  '--serial',
  '--trace',
  '--guest-mips',
  '--tsc-mhz',
  '--device',
  '--protected-memory',
  '--on-hyperv',
  '--max-vtl',
] as const;
type RunValueOption = (typeof RUN_VALUE_OPTIONS)[number];

/** Parses the arguments after the program name (process.argv.slice(2)). */
export function parseArgs(argv: readonly string[]): CliCommand {
  if (argv.length === 0) throw new UsageError("no command given; try 'vsmvisor --help'");
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h') return { kind: 'help' };
  if (command === '--version') {
    if (rest.length > 0) throw new UsageError(`'--version' takes no further arguments, but got '${rest[0]}'`);
    return { kind: 'version' };
  }
  if (command === 'run') return parseRun(rest);
  if (command.startsWith('-')) throw new UsageError(`unknown option '${command}'; try 'vsmvisor --help'`);
  throw new UsageError(`unknown command '${command}'; the command is 'run' (try 'vsmvisor --help')`);
}

function parseRun(args: readonly string[]): CliCommand {
  const values = new Map<RunValueOption, string>();
  const initrd: string[] = [];
  const devices: DeviceName[] = [];
  let image: string | undefined;
  let optionsEnded = false;

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (optionsEnded || !arg.startsWith('-') || arg === '-') {
      if (image !== undefined) throw new UsageError(`unexpected argument '${arg}': only one IMAGE is allowed`);
      if (arg === '') throw new UsageError('the IMAGE path is empty');
      image = arg;
      continue;
    }
    if (arg === '--') {
      optionsEnded = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    if (name === '--help' || name === '-h') {
      if (eq >= 0) throw new UsageError(`option '${name}' takes no value`);
      return { kind: 'help' };
    }
    if (!isRunValueOption(name)) throw new UsageError(`unknown option '${name}' for 'vsmvisor run'; try 'vsmvisor --help'`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length) value = args[++i];
    else throw new UsageError(`option '${name}' needs a value`);
    if (name === '--initrd') {
      if (value === '') throw new UsageError("option '--initrd' needs a file name, not an empty string");
      initrd.push(value);
      continue;
    }
    if (name === '--device') {
      devices.push(parseDevice(value, devices));
      continue;
    }
    if (values.has(name)) throw new UsageError(`option '${name}' is given more than once`);
    values.set(name, value);
  }
  if (image === undefined) throw new UsageError("missing IMAGE: the usage is 'vsmvisor run IMAGE [options]'");

  const opt = (name: RunValueOption) => values.get(name);
  const file = (name: RunValueOption): string | undefined => {
    const v = opt(name);
    if (v === '') throw new UsageError(`option '${name}' needs a file name, not an empty string`);
    return v;
  };
  const smpText = opt('--smp');
  const memText = opt('-m');
  const hvText = opt('--hv');
  const insnsText = opt('--max-insns');
  const timeoutText = opt('--timeout');
  return {
    kind: 'run',
    options: {
      image,
      smp: smpText === undefined ? DEFAULT_CPUS : parseCpuCount(smpText),
      memory: memText === undefined ? DEFAULT_MEMORY : parseMemorySize(memText),
      append: opt('--append'),
      initrd,
      hv: hvText === undefined ? { flags: new Set(), versionId: {} } : parseHvList(hvText),
      maxInsns: insnsText === undefined ? undefined : parseInstructionCount(insnsText),
      timeoutSeconds: timeoutText === undefined ? undefined : parseTimeout(timeoutText),
      serial: file('--serial'),
      trace: file('--trace'),
      guestMips: parseRate('--guest-mips', opt('--guest-mips'), DEFAULT_GUEST_MIPS),
      tscMhz: parseRate('--tsc-mhz', opt('--tsc-mhz'), DEFAULT_TSC_MHZ),
      ...(devices.length > 0 ? { devices } : {}),
      // Only when given, so an options object without it stays as it was.
      ...(opt('--protected-memory') === undefined ? {} : { protectedMemory: parseProtectedMemory(opt('--protected-memory')) }),
      ...(opt('--on-hyperv') === undefined ? {} : { onHyperv: parseOnHyperv(opt('--on-hyperv')!) }),
      ...(opt('--max-vtl') === undefined ? {} : { maxVtl: parseMaxVtl(opt('--max-vtl')!) }),
    },
  };
}

/** Devices --device can add. */
export const DEVICE_NAMES = ['doorbell'] as const;
export type DeviceName = (typeof DEVICE_NAMES)[number];

/** One --device value: a known device, at most once. */
export function parseDevice(text: string, given: readonly DeviceName[]): DeviceName {
  const name = DEVICE_NAMES.find((d) => d === text);
  if (name === undefined) throw new UsageError(`--device '${text}' is not a device this machine has; the devices are: ${DEVICE_NAMES.join(', ')}`);
  if (given.includes(name)) throw new UsageError(`--device ${name} is given more than once`);
  return name;
}

function isRunValueOption(name: string): name is RunValueOption {
  return (RUN_VALUE_OPTIONS as readonly string[]).includes(name);
}

/** --protected-memory: 'rfc' or 'upstream' (kvm-api-facts §4; the two give hypercall 12 different meanings). */
export function parseProtectedMemory(text: string | undefined): 'rfc' | 'upstream' | undefined {
  if (text === undefined || text === 'rfc' || text === 'upstream') return text;
  throw new UsageError(`--protected-memory must be 'rfc' or 'upstream', not '${text}'`);
}

/** --max-vtl: 1 or 2, the VTLs this VMM runs (src/vmm/vsm/partition.ts); the machine refuses it without hv-vsm. */
export function parseMaxVtl(text: string): number {
  if (text !== '1' && text !== '2') throw new UsageError(`--max-vtl must be 1 or 2, not '${text}'`);
  return Number(text);
}

/** --on-hyperv: one of ON_HYPERV_MODES (src/kvm/on-hyperv/modes.ts). */
export function parseOnHyperv(text: string): OnHypervMode {
  const mode = ON_HYPERV_MODES.find((m) => m === text);
  if (mode === undefined) throw new UsageError(`--on-hyperv must be one of ${ON_HYPERV_MODES.join(', ')}, not '${text}'`);
  return mode;
}

/** A positive rate (MIPS, MHz): a number from 1 to 1,000,000. */
export function parseRate(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 1_000_000)) throw new UsageError(`${name} must be a number from 1 to 1000000, not '${text}'`);
  return n;
}

export function parseCpuCount(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= MIN_CPUS && n <= MAX_CPUS)) {
    throw new UsageError(`--smp must be a whole number from ${MIN_CPUS} to ${MAX_CPUS}, not '${text}'`);
  }
  return n;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** QEMU-style size for -m: a plain number is MiB; K, M, G, T suffixes (any case) are binary. */
export function parseMemorySize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)$/.exec(text);
  if (m === null) {
    throw new UsageError(`-m must be a size such as 512, 512M or 4G (a plain number is MiB), not '${text}'`);
  }
  const bytes = Number(m[1]) * SIZE_UNITS[(m[2] || 'm').toLowerCase()];
  if (!Number.isSafeInteger(bytes) || bytes % 4096 !== 0) {
    throw new UsageError(`-m ${text} is not a whole multiple of 4 KiB`);
  }
  if (bytes < MIN_MEMORY || bytes > MAX_MEMORY) {
    throw new UsageError(`-m ${text} is outside the supported guest RAM sizes of 2 MiB to 64 GiB`);
  }
  return bytes;
}

/**
 * --max-insns: a positive whole number, in plain digits or scientific notation
 * (1e9, 2.5e6) as long as the value is whole; no K/M/G suffixes, which would be
 * ambiguous between 1000 and 1024.
 */
export function parseInstructionCount(text: string): number {
  const n = /^\d+(?:\.\d+)?(?:[eE]\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(Number.isSafeInteger(n) && n > 0)) {
    throw new UsageError(`--max-insns must be a positive whole number such as 1000000 or 1e9, not '${text}'`);
  }
  return n;
}

/** --timeout: a positive number of seconds, fractions allowed (0.5). */
export function parseTimeout(text: string): number {
  const n = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(Number.isFinite(n) && n > 0)) {
    throw new UsageError(`--timeout must be a positive number of seconds, not '${text}'`);
  }
  return n;
}

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = {
  on: true,
  yes: true,
  true: true,
  off: false,
  no: false,
  false: false,
};

/**
 * Parses a comma-separated list of QEMU Hyper-V flag names. On/off flags may be
 * bare (enable) or `name=on|off` (also yes/no, true/false); value flags need a
 * value. As in QEMU's -cpu option, '_' in a name means '-' (hv_relaxed), and a
 * later setting overrides an earlier one.
 */
export function parseHvList(text: string): HvOptions {
  const flags = new Set<HvFlag>();
  const versionId: Partial<Record<HvVersionIdField, number>> = {};
  let spinlocks: number | undefined;
  let vendorId: string | undefined;
  let noNonarchCoresharing: Coresharing | undefined;

  for (const item of text.split(',')) {
    if (item === '') throw new UsageError(`--hv '${text}' has an empty entry; separate flag names with single commas`);
    const eq = item.indexOf('=');
    const given = eq >= 0 ? item.slice(0, eq) : item;
    const value = eq >= 0 ? item.slice(eq + 1) : undefined;
    const canonical = given.replaceAll('_', '-');
    const name: string = HV_ALIASES[canonical] ?? canonical;

    if ((HV_BOOLEAN_FLAGS as readonly string[]).includes(name)) {
      const on = value === undefined ? true : BOOLEAN_WORDS[value];
      if (on === undefined) throw new UsageError(`--hv flag '${given}' takes on or off, not '${value}'`);
      if (on) flags.add(name as HvFlag);
      else flags.delete(name as HvFlag);
      continue;
    }
    const need = (form: string): string => {
      if (value === undefined || value === '') throw new UsageError(`--hv flag '${given}' needs a value (${form})`);
      return value;
    };
    if (name === 'hv-spinlocks') {
      spinlocks = parseUnsigned(need('hv-spinlocks=N'), 32, given);
    } else if (name === 'hv-vendor-id') {
      const v = need('hv-vendor-id=STRING');
      if (v.length > 12 || !/^[\x20-\x7e]+$/.test(v)) {
        throw new UsageError(`--hv flag '${given}' takes at most 12 printable ASCII characters, not '${v}'`);
      }
      vendorId = v;
    } else if (name === 'hv-no-nonarch-coresharing') {
      const v = need('on, off or auto');
      if (v !== 'on' && v !== 'off' && v !== 'auto') {
        throw new UsageError(`--hv flag '${given}' takes on, off or auto, not '${v}'`);
      }
      noNonarchCoresharing = v;
    } else if (name.startsWith('hv-version-id-') && Object.hasOwn(HV_VERSION_ID_BITS, name.slice(14))) {
      const field = name.slice(14) as HvVersionIdField;
      versionId[field] = parseUnsigned(need(`${name}=N`), HV_VERSION_ID_BITS[field], given);
    } else {
      throw new UsageError(`--hv flag '${given}' is not a known Hyper-V flag; see QEMU's hyperv documentation for the names`);
    }
  }
  return { flags, spinlocks, vendorId, noNonarchCoresharing, versionId };
}

/** An unsigned value of `bits` bits in decimal or 0x hex, as QEMU's integer properties accept. */
function parseUnsigned(text: string, bits: number, flag: string): number {
  const n = /^(?:\d+|0[xX][0-9a-fA-F]+)$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n < 2 ** bits)) {
    throw new UsageError(`--hv flag '${flag}' needs a whole number from 0 to ${hex(2 ** bits - 1)}, not '${text}'`);
  }
  return n;
}

function hex(n: number): string {
  return '0x' + n.toString(16).toUpperCase();
}
