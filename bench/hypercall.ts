/**
 * Hypercall speed (issue 4, "Speed"): round trips per host second of
 *  - a null fast hypercall: HvCallNotifyLongSpinWait (fast; advisory, always
 *    SUCCESS), and for comparison an unknown call code (INVALID_HYPERCALL_CODE
 *    after the first generic check);
 *  - an XMM-fast HvCallFlushVirtualAddressSpace to 1, 8 and 64 vCPUs of a
 *    64-vCPU VM. The targets do not run, so after the first call their TLBs
 *    are empty: this is the dispatch plus the per-target flush work
 *    (TLB clear and fast-cache drop), not the refill the targets pay later;
 *  - a PostMessage round trip on one vCPU: a memory-based PostMessage to its
 *    own SINT, the SINT interrupt, a handler that frees the slot, writes EOM
 *    and EOI, and returns.
 * Each guest loop runs N times, N doubled until the loop takes at least
 * MIN_SECONDS; the vCPU runs through Vcpu.run() with the kvm API directly
 * (no scheduler, no devices). No targets: issue 4 sets no numbers.
 *
 *   node dist/bench/hypercall.js
 */
import { fileURLToPath } from 'node:url';
import { makeHypercallControl } from '../src/kvm/hyperv/hypercall-input.js';
import type { Vcpu } from '../src/kvm/vcpu.js';
import { HvCall, HvMsr } from '../src/spec/tlfs.js';
import { HvMachine, INPUT } from '../test/kvm/hypercall-machine.js';
import { BenchError, hostSeconds, log, round, runMain } from './common.js';

const MIN_SECONDS = 0.4;
const LOOP = 0x12000;
const COUNT = 0x31000;

export interface RateReport {
  what: string;
  roundTrips: number;
  hostSeconds: number;
  roundTripsPerHostSecond: number;
  guestInsnsPerRoundTrip: number;
}

export interface HypercallReport {
  nullHypercall: RateReport;
  unknownCode: RateReport;
  flush: (RateReport & { targets: number })[];
  postMessage: RateReport;
  target: null;
  problems: string[];
}

/**
 * Runs `program(n)` (assembled at LOOP, ending in HLT) for growing n until it
 * takes MIN_SECONDS; `check(n)` verifies the guest did what it should.
 */
function measure(m: HvMachine, v: Vcpu, what: string, program: (n: number) => string, check: (n: number) => string | null, problems: string[]): RateReport {
  for (let n = 1000; ; n *= 2) {
    m.asm(program(n), LOOP);
    m.jump(v, LOOP);
    const insns0 = v.cpu.icount;
    const start = process.hrtime.bigint();
    const exit = m.runToExit(v, 100 * n + 1000);
    const s = hostSeconds(start);
    if (exit.reason !== 'hlt') throw new BenchError(`${what}: the guest stopped with '${exit.reason}' instead of HLT`);
    if (s < MIN_SECONDS && n < 1 << 24) continue;
    const bad = check(n);
    if (bad !== null) problems.push(`${what}: ${bad}`);
    return {
      what, roundTrips: n, hostSeconds: round(s, 4), roundTripsPerHostSecond: round(n / s, 0),
      guestInsnsPerRoundTrip: round((v.cpu.icount - insns0) / n, 2),
    };
  }
}

/** A loop of `n` VMCALLs with RCX = `control` that counts non-zero RAX results in [COUNT]. */
function callLoop(control: bigint, setup = ''): (n: number) => string {
  return (n) => `.code64
    mov qword ptr [${COUNT}], 0
    ${setup}
    mov r9, ${n}
  again:
    mov rcx, ${control}
    vmcall
    test ax, ax
    jz ok
    inc qword ptr [${COUNT}]
  ok:
    dec r9
    jnz again
    hlt`;
}

function nullCalls(problems: string[]): [RateReport, RateReport] {
  const m = new HvMachine({ flags: ['hv-relaxed'], spinlocks: 0x1000, trace: false });
  const v = m.vcpu(0);
  const spin = makeHypercallControl({ code: HvCall.NotifyLongSpinWait, fast: true });
  const failures = (expected: (n: number) => number) => (n: number) => {
    const got = Number(m.vm.mem.read64(COUNT));
    return got === expected(n) ? null : `${got} of ${n} calls did not return the expected status`;
  };
  const a = measure(m, v, 'HvCallNotifyLongSpinWait (fast)', callLoop(spin), failures(() => 0), problems);
  const b = measure(m, v, 'unknown call code 0x0001 (fast)', callLoop(makeHypercallControl({ code: HvCall.SwitchVirtualAddressSpace, fast: true })),
    failures((n) => n), problems);
  return [a, b];
}

function flushes(problems: string[]): (RateReport & { targets: number })[] {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-tlbflush', 'hv-xmm-input'], ids: Array.from({ length: 64 }, (_, k) => k), trace: false });
  const v = m.vcpu(0);
  const control = makeHypercallControl({ code: HvCall.FlushVirtualAddressSpace, fast: true });
  return ([[1, 0b10n], [8, 0x1fen], [64, 0xffff_ffff_ffff_ffffn]] as const).map(([targets, mask]) => {
    // RDX = 0 (address space), R8 = HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES, XMM0 low = processor mask.
    const setup = `mov rax, ${mask}\n movq xmm0, rax\n xor edx, edx\n mov r8d, 2`;
    const r = measure(m, v, `HvCallFlushVirtualAddressSpace (XMM fast) to ${targets} vCPU${targets > 1 ? 's' : ''}`, callLoop(control, setup), (n) => {
      const bad = Number(m.vm.mem.read64(COUNT));
      return bad === 0 ? null : `${bad} of ${n} flushes failed`;
    }, problems);
    return { ...r, targets };
  });
}

function postMessages(problems: string[]): RateReport {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic', 'hv-vapic'], trace: false });
  const v = m.vcpu(0);
  const SIMP = 0x60000, SINT = 2, VECTOR = 0x50, CONN = 5, HANDLED = COUNT + 8;
  const vp = v.hv!;
  for (const [msr, value] of [[HvMsr.SCONTROL, 1n], [HvMsr.SIMP, BigInt(SIMP) | 1n], [HvMsr.SINT0 + SINT, BigInt(VECTOR)]] as const) {
    if (!vp.wrmsr(msr, value)) throw new BenchError(`the SynIC set-up write to MSR 0x${msr.toString(16)} failed`);
  }
  m.partition.connections.registerMessageConnection(CONN, 0, SINT);
  m.writeQwords(INPUT, [BigInt(CONN), 0x10_0000_0001n, 0x1122334455667788n, 0x99aabbccddeeff00n]); // type 1, 16 bytes
  const L = m.asm(`.code64
  handler:
    push rax
    push rcx
    push rdx
    inc qword ptr [${HANDLED}]
    mov dword ptr [${SIMP + SINT * 256}], 0
    xor eax, eax
    xor edx, edx
    mov ecx, ${HvMsr.EOM}
    wrmsr
    mov ecx, ${HvMsr.EOI}
    wrmsr
    pop rdx
    pop rcx
    pop rax
    iretq`, 0x14000);
  m.setGate(VECTOR, L.handler);
  const control = makeHypercallControl({ code: HvCall.PostMessage });
  const setup = `mov qword ptr [${HANDLED}], 0\n mov rdx, ${INPUT}\n xor r8d, r8d\n sti`;
  return measure(m, v, 'PostMessage round trip (post, SINT interrupt, slot freed, EOM, EOI)', (n) => callLoop(control, setup)(n).replace('hlt', 'cli\n hlt'), (n) => {
    const bad = Number(m.vm.mem.read64(COUNT)), handled = Number(m.vm.mem.read64(HANDLED));
    return bad === 0 && handled === n ? null : `${bad} posts failed, ${handled} of ${n} messages handled`;
  }, problems);
}

export function benchHypercall(): HypercallReport {
  const problems: string[] = [];
  const [nullHypercall, unknownCode] = nullCalls(problems);
  const flush = flushes(problems);
  const postMessage = postMessages(problems);
  for (const r of [nullHypercall, unknownCode, ...flush, postMessage]) {
    log(`hypercall: ${r.what}: ${r.roundTripsPerHostSecond} per host second (${r.roundTrips} in ${r.hostSeconds} s, ${r.guestInsnsPerRoundTrip} guest insns each)`);
  }
  return { nullHypercall, unknownCode, flush, postMessage, target: null, problems };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runMain(benchHypercall);
