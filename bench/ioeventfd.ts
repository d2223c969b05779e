/**
 * ioeventfd speed (issue 6, "Speed"): guest writes handled by ioeventfd per
 * host second against the same writes handled as VMM exits, as a ratio, in
 * one run. One guest loop per case, run twice on the same vCPU:
 *  - with an ioeventfd registered (kvm-api-facts §5.1): every write
 *    completes in the kernel and signals an EventFd; run() returns only at
 *    the loop's HLT;
 *  - without: every write is an `mmio`/`io` exit, and the host (the VMM)
 *    signals the same EventFd and calls run() again, which is what a VMM
 *    does for a doorbell it emulates itself.
 * Cases: a 4-byte MMIO write, a 2-byte PIO write (OUT), and for our read
 * support (§5.2) a 4-byte MMIO read answered by DATAREAD against the same
 * read answered by the VMM (exit, completeMmio, re-execution).
 * Each loop runs N times, N doubled until it takes at least MIN_SECONDS;
 * the EventFd must count exactly N, or the report lists a problem. The vCPU
 * runs through the kvm API directly (no scheduler, no devices, no tracing).
 * No targets: the issue asks for the ratio, not a number.
 *
 *   node dist/bench/ioeventfd.js
 */
import { fileURLToPath } from 'node:url';
import { EventFd } from '../src/kvm/eventfd.js';
import { KVM_IOEVENTFD_FLAG_DATAREAD, KVM_IOEVENTFD_FLAG_DEASSIGN, KVM_IOEVENTFD_FLAG_PIO, type KvmIoeventfd } from '../src/kvm/ioeventfd.js';
import type { Vcpu } from '../src/kvm/vcpu.js';
import { CODE, HvMachine, P, W } from '../test/kvm/hypercall-machine.js';
import { BenchError, hostSeconds, log, round, runMain } from './common.js';

const MIN_SECONDS = 0.3;
const MMIO = 0xfeb0_0000;
const PORT = 0x6000;

export interface HandledRate { accesses: number; hostSeconds: number; perHostSecond: number; exits: number }

export interface IoeventfdCase {
  what: string;
  ioeventfd: HandledRate;
  vmmExit: HandledRate;
  /** ioeventfd accesses per second / VMM-exit accesses per second. */
  ratio: number;
}

export interface IoeventfdReport { cases: IoeventfdCase[]; target: null; problems: string[] }

interface Case { what: string; loopBody: string; registration: Omit<KvmIoeventfd, 'fd'> }

const CASES: Case[] = [
  { what: 'MMIO write, 4 bytes', loopBody: 'mov dword ptr [rbx], eax', registration: { addr: BigInt(MMIO), len: 4, flags: 0, datamatch: 0n } },
  { what: 'PIO write (OUT), 2 bytes', loopBody: 'out dx, ax', registration: { addr: BigInt(PORT), len: 2, flags: KVM_IOEVENTFD_FLAG_PIO, datamatch: 0n } },
  {
    what: 'MMIO read, 4 bytes (DATAREAD, our read support)', loopBody: 'mov eax, dword ptr [rbx]',
    registration: { addr: BigInt(MMIO), len: 4, flags: KVM_IOEVENTFD_FLAG_DATAREAD, datamatch: 0n, dataread: 7n },
  },
];

/**
 * Runs the loop `n` times to its HLT. Exits are handled as a VMM would:
 * signal the EventFd (and answer a read with the same value DATAREAD gives).
 */
function runLoop(m: HvMachine, v: Vcpu, body: string, n: number, fd: EventFd): { seconds: number; exits: number } {
  m.asm(`.code64
    mov ebx, ${MMIO}
    mov edx, ${PORT}
    mov ecx, ${n}
  1:
    ${body}
    dec ecx
    jnz 1b
    hlt`, CODE);
  m.jump(v, CODE);
  let exits = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    const e = v.run(1 << 30);
    if (e.reason === 'hlt') break;
    if (e.reason === 'mmio' || e.reason === 'io') {
      exits++;
      fd.signal(1);
      if (e.reason === 'mmio' && !e.isWrite) v.completeMmio(7n);
      continue;
    }
    if (e.reason !== 'preempted') throw new BenchError(`the benchmark loop stopped with '${e.reason}'`);
  }
  return { seconds: hostSeconds(start), exits };
}

function measure(m: HvMachine, v: Vcpu, c: Case, registered: boolean, problems: string[]): HandledRate {
  for (let n = 1000; ; n *= 2) {
    const fd = new EventFd();
    const reg = { ...c.registration, fd };
    if (registered) m.vm.ioeventfd(reg);
    const r = runLoop(m, v, c.loopBody, n, fd);
    if (registered) m.vm.ioeventfd({ ...reg, flags: reg.flags | KVM_IOEVENTFD_FLAG_DEASSIGN });
    if (r.seconds < MIN_SECONDS && n < 1 << 26) continue;
    const how = registered ? 'ioeventfd' : 'VMM exits';
    if (fd.value !== BigInt(n)) problems.push(`${c.what} (${how}): the EventFd counted ${fd.value} of ${n} accesses`);
    if (r.exits !== (registered ? 0 : n)) problems.push(`${c.what} (${how}): ${r.exits} exits for ${n} accesses`);
    return { accesses: n, hostSeconds: round(r.seconds, 4), perHostSecond: round(n / r.seconds, 0), exits: r.exits };
  }
}

export function benchIoeventfd(): IoeventfdReport {
  const problems: string[] = [];
  const m = new HvMachine({ flags: [], trace: false });
  m.map(MMIO, MMIO, P | W);
  const v = m.vcpu(0);
  const cases = CASES.map((c) => {
    // A warm-up of each path first, so neither side pays for the JIT alone.
    measureOnce(m, v, c);
    const ioeventfd = measure(m, v, c, true, problems);
    const vmmExit = measure(m, v, c, false, problems);
    const ratio = round(ioeventfd.perHostSecond / vmmExit.perHostSecond, 2);
    log(`ioeventfd: ${c.what}: ${ioeventfd.perHostSecond} per host s with ioeventfd, ${vmmExit.perHostSecond} as VMM exits: ${ratio}x`);
    return { what: c.what, ioeventfd, vmmExit, ratio };
  });
  return { cases, target: null, problems };
}

function measureOnce(m: HvMachine, v: Vcpu, c: Case): void {
  for (const registered of [true, false]) {
    const fd = new EventFd();
    const reg = { ...c.registration, fd };
    if (registered) m.vm.ioeventfd(reg);
    runLoop(m, v, c.loopBody, 20_000, fd);
    if (registered) m.vm.ioeventfd({ ...reg, flags: reg.flags | KVM_IOEVENTFD_FLAG_DEASSIGN });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runMain(benchIoeventfd);
