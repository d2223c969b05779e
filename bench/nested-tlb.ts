/**
 * KVM on Hyper-V (issue 7; kvm-api-facts §6): what running as L2 under the
 * L0 model costs, how many L0 hypercalls a remote flush makes, and the 2023
 * stale-root bug with the fix off and on. No target: the issue sets none.
 *
 * - speed: bench-int and bench-mem in-process with the guest as L2
 *   (`startOnHyperv`, identity root) against the same machine without it;
 *   1 warm-up run and the median of 3, MIPS on host wall time;
 * - TLB misses: a 64-bit loop that reloads CR3 and then reads 256 pages,
 *   each read a TLB miss and a page walk (through L0 as L2): host ns per
 *   miss, plain and as L2;
 * - remote flushes with 8 vCPUs: L0 hypercalls per kvm_flush_remote_tlbs when
 *   all share one root (first flush, later flushes) and when they alternate
 *   between two roots (the dedupe quirk flushes the second root once per vCPU),
 *   and host time per flush;
 * - stale root: the L2 read after a root reuse, fix off and on.
 *
 *   node dist/bench/nested-tlb.js
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Machine } from '../src/vmm/machine.js';
import { Vm } from '../src/kvm/vm.js';
import { OnHyperv } from '../src/kvm/on-hyperv/on-hyperv.js';
import { startOnHyperv } from '../src/kvm/on-hyperv/modes.js';
import { benchImage, BenchError, hostSeconds, log, median, round, runMain } from './common.js';

const SPEED: readonly { name: string; iters: number }[] = [{ name: 'int', iters: 2_000_000 }, { name: 'mem', iters: 15 }];

function mips(name: string, iters: number, nested: boolean): number {
  const image = readFileSync(benchImage(name));
  const once = (): number => {
    const m = new Machine({ image, imagePath: name, smp: 1, memory: 128 << 20, append: `iters=${iters}`, timeoutSeconds: 300, serial: () => {} });
    if (nested) startOnHyperv(m.vm, m.vcpus, 'fixed');
    const t0 = process.hrtime.bigint();
    const r = m.run();
    const s = hostSeconds(t0);
    if (r.kind !== 'exit' || r.code !== 0) throw new BenchError(`bench-${name} did not exit with 0${nested ? ' as L2' : ''}: ${JSON.stringify(r)}`);
    return m.totalInsns / s / 1e6;
  };
  once();
  return round(median([once(), once(), once()]), 1);
}

/** Host ns per TLB miss of the CR3-reload loop (see the file comment), plain or as L2. */
function tlbMissNs(nested: boolean): number {
  const OUTER = 2000, PAGES = 256;
  const vm = new Vm({ memorySize: 4 << 20 });
  const v = vm.createVcpu(0);
  const P = 1n, W = 2n, PS = 0x80n;
  vm.mem.write64(0x20000, 0x21000n | P | W);
  vm.mem.write64(0x21000, 0x22000n | P | W);
  vm.mem.write64(0x22000, 0n | P | W | PS); // 2 MiB at 0: one TLB entry per 4 KiB page all the same
  vm.mem.write64(0x508, 0x00af9b000000ffffn);
  vm.mem.write64(0x510, 0x00cf93000000ffffn);
  vm.mem.write(0x1000, Uint8Array.from([
    0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8,       // loop: mov rax, cr3; mov cr3, rax
    0xbe, 0x00, 0x00, 0x10, 0x00,             // mov esi, 0x100000
    0xb9, 0x00, 0x01, 0x00, 0x00,             // mov ecx, 256
    0x8b, 0x06,                               // inner: mov eax, [rsi]
    0x48, 0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, // add rsi, 0x1000
    0xff, 0xc9, 0x75, 0xf3,                   // dec ecx; jnz inner
    0xff, 0xcb, 0x75, 0xdf, 0xf4,             // dec ebx; jnz loop; hlt
  ]));
  const s = v.getSregs();
  const seg = (selector: number, type: number, l: number) => ({ base: 0n, limit: 0xffffffff, selector, type, present: 1, dpl: 0, db: l ? 0 : 1, s: 1, l, g: 1, avl: 0, unusable: 0 });
  s.cs = seg(8, 0xb, 1);
  s.ds = s.es = s.fs = s.gs = s.ss = seg(16, 3, 0);
  s.gdt = { base: 0x500n, limit: 23 };
  s.cr0 |= 1n | (1n << 31n); s.cr3 = 0x20000n; s.cr4 = 1n << 5n; s.efer = (1n << 8n) | (1n << 10n);
  v.setSregs(s);
  const time = (): number => {
    v.setRegs({ ...v.getRegs(), rip: 0x1000n, rbx: BigInt(OUTER), rflags: 2n });
    v.setMpState(0);
    const t0 = process.hrtime.bigint();
    const exit = v.run(1e9);
    const secs = hostSeconds(t0);
    if (exit.reason !== 'hlt') throw new BenchError(`the TLB-miss loop ended with ${exit.reason}`);
    return secs;
  };
  if (nested) new OnHyperv(vm).attach(v).mmuLoad();
  time();
  return round(median([time(), time(), time()]) / (OUTER * PAGES) * 1e9, 1);
}

function remoteFlushes(mixed: boolean): { first: number; later: number; microsecondsPerFlush: number } {
  const vm = new Vm({ memorySize: 4 << 20 });
  const oh = new OnHyperv(vm);
  const roots = [oh.allocRoot(), oh.allocRoot()];
  for (let k = 0; k < 8; k++) oh.attach(vm.createVcpu(k)).mmuLoad(roots[mixed ? k % 2 : 0]);
  const count = (): number => { const before = oh.l0.callCount; oh.flushRemoteTlbs(); return oh.l0.callCount - before; };
  const first = count(), later = count();
  const n = 20_000;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) oh.flushRemoteTlbs();
  return { first, later, microsecondsPerFlush: round(hostSeconds(t0) / n * 1e6, 2) };
}

function staleRead(fix: boolean): string {
  const vm = new Vm({ memorySize: 1 << 20 });
  const oh = new OnHyperv(vm, { fix });
  const v = vm.createVcpu(0);
  const ov = oh.attach(v);
  const s = v.getSregs();
  s.cr0 |= 1n;
  s.cs = { ...s.cs, base: 0n, limit: 0xffffffff, selector: 8, db: 1, g: 1 };
  s.ds = { ...s.ds, base: 0n, limit: 0xffffffff, selector: 16, db: 1, g: 1 };
  v.setSregs(s);
  vm.mem.write(0x1000, Uint8Array.from([0xa1, 0x00, 0x50, 0x00, 0x00, 0xf4])); // mov eax, [0x5000]; hlt
  vm.mem.write32(0x5000, 0x01d);
  vm.mem.write32(0x6000, 0x9e3);
  const read = (): string => {
    v.setRegs({ ...v.getRegs(), rip: 0x1000n, rax: 0n });
    v.setMpState(0);
    v.run(10);
    return `0x${v.getRegs().rax.toString(16)}`;
  };
  ov.mmuLoad();
  read();
  oh.moveL2Page(5, 6);
  return read();
}

export function benchNested(): { problems: string[] } & Record<string, unknown> {
  const speed = SPEED.map(({ name, iters }) => {
    const plain = mips(name, iters, false), nested = mips(name, iters, true);
    log(`nested: bench-${name} iters=${iters}: ${plain} MIPS plain, ${nested} MIPS as L2 (${round(plain / nested, 2)}x)`);
    return { workload: name, iters, plainMips: plain, l2Mips: nested, slowdown: round(plain / nested, 2) };
  });
  const miss = { plainNs: tlbMissNs(false), l2Ns: tlbMissNs(true) };
  log(`nested: a TLB miss costs ${miss.plainNs} ns plain, ${miss.l2Ns} ns as L2`);
  const same = remoteFlushes(false), mixed = remoteFlushes(true);
  log(`nested: 8 vCPUs, one root: ${same.first} then ${same.later} hypercall(s) per flush; two roots: ${mixed.first} then ${mixed.later}`);
  const stale = { fixOff: staleRead(false), fixOn: staleRead(true), oldData: '0x1d', newData: '0x9e3' };
  const problems = stale.fixOff === stale.oldData && stale.fixOn === stale.newData ? [] : [`stale-root scenario read ${stale.fixOff} / ${stale.fixOn}`];
  return { speed, tlbMiss: { ...miss, slowdown: round(miss.l2Ns / miss.plainNs, 2) }, remoteFlush8Vcpus: { sameRoot: same, alternatingRoots: mixed }, staleRoot: stale, problems };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runMain(benchNested);
