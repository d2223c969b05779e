/**
 * The vsmvisor command. Exit status: the value the guest wrote to the
 * isa-debug-exit port (0 = success); 2 for bad command-line input or a bad
 * image; 3 when the guest shut down (triple fault) or hung; 4 when a limit
 * (--max-insns, --timeout) stopped it. Diagnoses are one line on stderr.
 */
import { readFileSync, writeFileSync, writeSync, openSync, closeSync } from 'node:fs';
import { parseArgs, USAGE, UsageError, type RunOptions } from './args.js';
import { ImageError } from '../vmm/loader/elf.js';
import { Machine } from '../vmm/machine.js';
import { IoBusError } from '../vmm/io-bus.js';
import { HvFeatureError } from '../kvm/hyperv/features.js';
import { startOnHyperv } from '../kvm/on-hyperv/modes.js';

export const EXIT_USAGE = 2, EXIT_SHUTDOWN = 3, EXIT_LIMIT = 4;

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String(code ?? e);
    throw new UsageError(`cannot read ${what} '${path}': ${why}.`);
  }
}

function runGuest(o: RunOptions): number {
  const image = readInput(o.image, 'image');
  const modules = o.initrd.map((p) => ({ data: readInput(p, 'initrd'), string: p }));
  let fd = 1, serialGone = false;
  if (o.serial !== undefined) {
    try { fd = openSync(o.serial, 'w'); } catch (e) { throw new UsageError(`cannot open serial output file '${o.serial}': ${(e as Error).message}.`); }
  }
  const machine = new Machine({
    image, imagePath: o.image, smp: o.smp, memory: o.memory, append: o.append, modules,
    maxInsns: o.maxInsns, timeoutSeconds: o.timeoutSeconds,
    guestMips: o.guestMips, tscHz: o.tscMhz * 1e6, trace: o.trace !== undefined,
    // QEMU's hyperv-testdev drives the SynIC; it is present whenever the SynIC is.
    hv: o.hv, hypervTestDev: o.hv.flags.has('hv-synic'), protectedMemory: o.protectedMemory, maxVtl: o.maxVtl,
    doorbell: o.devices?.includes('doorbell') === true,
    serial: (b) => { if (!serialGone) serialGone = writeSerial(fd, b); },
  });
  if (o.onHyperv !== undefined) {
    if (machine.vsm !== null) throw new UsageError('--on-hyperv cannot be combined with hv-vsm: only the VTL0 Vm would run nested');
    startOnHyperv(machine.vm, machine.vcpus, o.onHyperv);
  }
  const r = machine.run();
  if (fd !== 1) closeSync(fd);
  if (o.trace !== undefined) writeTrace(o.trace, machine.traceJson());
  switch (r.kind) {
    case 'exit': return r.code & 0xff;
    case 'shutdown': process.stderr.write(`vsmvisor: guest shut down (${r.why}); ${r.detail}\n`); return EXIT_SHUTDOWN;
    case 'hang': process.stderr.write(`vsmvisor: guest hung (${r.why}); ${r.detail}\n`); return EXIT_SHUTDOWN;
    case 'budget': process.stderr.write(`vsmvisor: stopped: ${r.detail}\n`); return EXIT_LIMIT;
    case 'timeout': process.stderr.write(`vsmvisor: stopped: ${r.detail}\n`); return EXIT_LIMIT;
  }
}

/**
 * Writes serial output; true when the reader has gone (EPIPE: `vsmvisor run ... | head`), after which the rest of the
 * output is dropped and the guest runs on, as a serial port with nobody listening.
 */
function writeSerial(fd: number, bytes: Uint8Array): boolean {
  try {
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return true;
    throw e;
  }
}

function writeTrace(path: string, json: string): void {
  try { writeFileSync(path, json); } catch (e) { throw new UsageError(`cannot write trace file '${path}': ${(e as Error).message}.`); }
}

export function main(argv: readonly string[]): number {
  try {
    const cmd = parseArgs(argv);
    if (cmd.kind === 'help') { process.stdout.write(USAGE + '\n'); return 0; }
    if (cmd.kind === 'version') { process.stdout.write('vsmvisor 0.1.0\n'); return 0; }
    return runGuest(cmd.options);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ImageError || e instanceof IoBusError || e instanceof HvFeatureError) {
      process.stderr.write(`vsmvisor: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
