/**
 * The PC machine: one Vm with N vCPUs, the devices on the I/O bus, a Multiboot
 * kernel, and the deterministic scheduler that runs every vCPU on one thread
 * (DESIGN §3.5): fixed instruction quanta in rounds, PAUSE and HLT yield, and
 * when every vCPU is halted guest time jumps to the next timer.
 *
 * With hv-vsm (AccessVsm) the machine is also a VSM partition (vsm/partition.ts):
 * the scheduler runs virtual processors, each of which has one Vcpu per
 * enabled VTL of which only the active VTL's runs; the others wait in
 * HV_INACTIVE_VTL. A parked higher VTL whose Vcpu reports a wake-up is
 * entered with entry reason "interrupt" before the VP runs again; a parked
 * lower VTL waits until the VP returns to it (tlfs-vsm-facts §3.10).
 */
import { GuestClock } from '../kvm/clock.js';
import { chromeJsonOf } from '../kvm/trace.js';
import { KVM_MEMORY_EXIT_FLAG_EXEC, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEMORY_EXIT_FLAG_WRITE, type VcpuExit } from '../kvm/exits.js';
import type { Vcpu } from '../kvm/vcpu.js';
import { Vm } from '../kvm/vm.js';
import { CpuRunState } from '../x86/cpu.js';
import { enterMultiboot } from './boot.js';
import { defaultCpuid } from './cpuid.js';
import { hypervCpuidEntries } from '../kvm/hyperv/cpuid.js';
import { HvFeatureError, resolveHvFeatures, type HvConfig } from '../kvm/hyperv/features.js';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_CPUID_SIGNATURE, KVM_EINVAL, KVM_ENOSYS, KVM_EXIT_HYPERCALL_VALID_MASK, KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MAP_GPA_RANGE_PAGE_SZ_1G, KVM_MAP_GPA_RANGE_PAGE_SZ_2M, kvmPvCpuidEntries,
} from '../kvm/kvm-hypercall.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../kvm/memory-attributes.js';
import { KvmError } from '../kvm/errors.js';
import { GuestMemoryAccess } from './guest-memory-access.js';
import { HYPERV_TESTDEV_PORT, HYPERV_TESTDEV_PORT_COUNT, HypervTestDev } from './devices/hyperv-testdev.js';
import { DebugExit, DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT } from './devices/debug-exit.js';
import { FwCfg, FW_CFG_PORT_COUNT, FW_CFG_SELECTOR_PORT } from './devices/fw-cfg.js';
import { Pic8259, PIC_MASTER_BASE, PIC_PORT_COUNT, PIC_SLAVE_BASE } from './devices/pic.js';
import { COM1_BASE, Uart16550, UART_PORT_COUNT } from './devices/uart16550.js';
import { Doorbell, DOORBELL_PORT, DOORBELL_PORT_COUNT } from './devices/doorbell.js';
import { EventFdPoll } from '../kvm/eventfd.js';
import { IoBus, type PioSize } from './io-bus.js';
import { loadMultiboot, type MultibootModule } from './loader/multiboot.js';
import { describeVcpu } from './diagnose.js';
import { HvCall, HvStatus, HvVtlEntryReason } from '../spec/tlfs.js';
import { VsmPartition } from './vsm/partition.js';
import { handleVsmHypercall } from './vsm/hc-vsm.js';
import { vpHasStarted } from './vsm/hc-vp.js';
import { handleProtectionFault } from './vsm/memory-intercept.js';
import { handleRegisterAccess } from './vsm/cr-intercept.js';
import { handleUnrecoverableException } from './vsm/unrecoverable-exception.js';
import { enterHigherVtl, notifyLowerVtlInterrupt } from './vsm/vtl-switch.js';

/** One line: which access of which page the memory attributes denied. */
function describeMemoryFault(e: Extract<VcpuExit, { reason: 'memory-fault' }>): string {
  const kind = (e.flags & KVM_MEMORY_EXIT_FLAG_WRITE) ? 'write' : (e.flags & KVM_MEMORY_EXIT_FLAG_EXEC) ? 'execute' : 'read';
  const gva = e.gvaValid ? ` (GVA 0x${e.gva.toString(16)})` : '';
  return `${kind}${(e.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) ? ' of private memory' : ''} at GPA 0x${e.gpa.toString(16)}${gva} denied by memory attributes`;
}

export interface MachineOptions {
  image: Uint8Array;
  imagePath: string;
  smp: number;
  memory: number;
  append?: string;
  modules?: MultibootModule[];
  /** Stop after this many instructions in total (all vCPUs). */
  maxInsns?: number;
  /** Stop after this much host time. */
  timeoutSeconds?: number;
  /** Serial output bytes. */
  serial: (bytes: Uint8Array) => void;
  /** Instructions per vCPU per scheduling round. */
  quantum?: number;
  /** Guest time rate: million instructions per guest second (default 1000, 1 ns each). */
  guestMips?: number;
  /** Guest TSC frequency in Hz (default 1 GHz). */
  tscHz?: number;
  /** Collect trace events (vm.trace). */
  trace?: boolean;
  /** Hyper-V enlightenments (the CLI's --hv). */
  hv?: HvConfig;
  /** Add QEMU's hyperv-testdev at port 0x3000. */
  hypervTestDev?: boolean;
  /** Add the example doorbell device driven by ioeventfd (devices/doorbell.ts; the CLI's --device doorbell). */
  doorbell?: boolean;
  /**
   * Protected guest memory (kvm-api-facts §4; the CLI's --protected-memory):
   * 'rfc' runs the VM in protmem RFC mode (hypercalls 12/13/14, CPUID
   * 0x40000001 EAX bit 15; not with Hyper-V); 'upstream' gives it private
   * memory and MAP_GPA_RANGE exits (CPUID bit 16), which this VMM answers by
   * setting or clearing the PRIVATE attribute. Absent: neither.
   */
  protectedMemory?: 'rfc' | 'upstream';
  /** With hv-vsm: the partition's maximum VTL (1, the default, or 2; the CLI's --max-vtl). */
  maxVtl?: number;
}

export type MachineResult =
  | { kind: 'exit'; code: number }
  | { kind: 'shutdown'; vcpu: number; why: string; detail: string }
  | { kind: 'hang'; why: string; detail: string }
  | { kind: 'budget'; detail: string }
  | { kind: 'timeout'; detail: string };

export class Machine {
  readonly vm: Vm;
  readonly io = new IoBus();
  readonly vcpus: Vcpu[] = [];
  /** The VMM's event loop: EventFds and their handlers, dispatched after every scheduling round (kvm/eventfd.ts). */
  readonly eventFds = new EventFdPoll();
  /** The doorbell device, when MachineOptions.doorbell asks for it. */
  readonly doorbell: Doorbell | null = null;
  /** The VSM partition (VTL Vms and Vcpus beyond VTL0), when the Hyper-V features grant AccessVsm (hv-vsm). */
  readonly vsm: VsmPartition | null = null;
  /** The only way device models may reach guest memory (guest-memory-access.ts). */
  readonly guestMemory: GuestMemoryAccess;
  private readonly opts: MachineOptions;
  private readonly quantum: number;
  private exitCode: number | null = null;
  private serialBuf: number[] = [];
  /** Total instructions retired by all vCPUs. */
  totalInsns = 0;

  constructor(opts: MachineOptions) {
    this.opts = opts;
    this.quantum = opts.quantum ?? 20_000;
    const hv = resolveHvFeatures(opts.hv ?? { flags: new Set() });
    const pm = opts.protectedMemory;
    if (pm !== undefined && pm !== 'rfc' && pm !== 'upstream') throw new RangeError(`protectedMemory must be 'rfc' or 'upstream', not '${String(pm)}'`);
    if (pm === 'rfc' && hv.enabled) {
      throw new HvFeatureError('protected memory in RFC mode cannot be combined with Hyper-V enlightenments: both are advertised in CPUID leaves 0x40000000-0x40000001');
    }
    if (opts.maxVtl !== undefined && !hv.has('AccessVsm')) throw new HvFeatureError('a maximum VTL (--max-vtl) needs hv-vsm');
    if (pm === 'upstream' && hv.has('AccessVsm')) {
      // VTL protections are RWX attributes, which kvm does not combine with PRIVATE (kvm-api-facts §2.3).
      throw new HvFeatureError('private memory (--protected-memory upstream) cannot be combined with hv-vsm: VTL protections and private pages use the same memory attributes');
    }
    this.vm = new Vm({
      memorySize: opts.memory, clock: new GuestClock(1000 / (opts.guestMips ?? 1000), opts.tscHz ?? 1e9), trace: opts.trace, hyperv: hv,
      protectedMemoryRfc: pm === 'rfc', privateMemory: pm === 'upstream',
    });
    if (pm === 'upstream') this.vm.enableCap(KVM_CAP_EXIT_HYPERCALL, KVM_EXIT_HYPERCALL_VALID_MASK);
    this.guestMemory = new GuestMemoryAccess(this.vm);
    const boot = loadMultiboot(this.vm.mem, opts.image, { imagePath: opts.imagePath, append: opts.append, modules: opts.modules });
    const cpuid = [...defaultCpuid(opts.smp), ...hypervCpuidEntries(hv, { maxVps: opts.smp })];
    // KVM's PV leaves: at 0x40000000, or after Hyper-V's at 0x40000100 as QEMU places them (upstream mode only).
    if (pm !== undefined) cpuid.push(...kvmPvCpuidEntries(this.vm, hv.enabled ? KVM_CPUID_SIGNATURE + 0x100 : KVM_CPUID_SIGNATURE));
    for (let k = 0; k < opts.smp; k++) {
      const v = this.vm.createVcpu(k);
      v.setCpuid(cpuid);
      v.cpu.pauseExits = true;
      if (k === 0) enterMultiboot(v.cpu, boot.entry, boot.eax, boot.ebx);
      else v.cpu.runState = CpuRunState.WaitForSipi;
      this.vcpus.push(v);
    }
    if (hv.has('AccessVsm')) {
      // Vcpus of higher VTLs get the same CPUID and scheduling settings as VTL0's (their state comes from EnableVpVtl).
      this.vsm = new VsmPartition(this.vm, { maximumVtl: opts.maxVtl, prepareVcpu: (v) => { v.setCpuid(cpuid); v.cpu.pauseExits = true; } });
    }
    this.io.register(COM1_BASE, UART_PORT_COUNT, new Uart16550((b) => this.serialByte(b)), 'COM1');
    this.io.register(DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, new DebugExit((v) => { this.exitCode = v; }), 'isa-debug-exit');
    this.io.register(FW_CFG_SELECTOR_PORT, FW_CFG_PORT_COUNT, new FwCfg({ ramSize: opts.memory, cpuCount: opts.smp, maxCpus: opts.smp }), 'fw_cfg');
    this.io.register(PIC_MASTER_BASE, PIC_PORT_COUNT, new Pic8259(PIC_MASTER_BASE), 'PIC master');
    this.io.register(PIC_SLAVE_BASE, PIC_PORT_COUNT, new Pic8259(PIC_SLAVE_BASE), 'PIC slave');
    if (opts.hypervTestDev && this.vm.hyperv !== null) {
      this.io.register(HYPERV_TESTDEV_PORT, HYPERV_TESTDEV_PORT_COUNT, new HypervTestDev(this.vm.hyperv), 'hyperv-testdev');
    }
    if (opts.doorbell) {
      this.doorbell = new Doorbell(this.vm, this.guestMemory);
      this.io.register(DOORBELL_PORT, DOORBELL_PORT_COUNT, this.doorbell, 'doorbell');
      this.doorbell.listen(this.eventFds);
    }
  }

  private serialByte(b: number): void {
    this.serialBuf.push(b);
    if (this.serialBuf.length >= 4096) this.flushSerial();
  }
  flushSerial(): void {
    if (this.serialBuf.length === 0) return;
    this.opts.serial(Uint8Array.from(this.serialBuf));
    this.serialBuf = [];
  }

  /** Runs until the guest exits, shuts down, hangs, or a limit is reached. */
  run(): MachineResult {
    const clock = this.vm.clock;
    const deadline = this.opts.timeoutSeconds !== undefined ? Date.now() + this.opts.timeoutSeconds * 1000 : Infinity;
    const maxInsns = this.opts.maxInsns ?? Infinity;
    let rounds = 0;
    try {
      for (;;) {
        // Guest time advances by the longest any vCPU ran this round (see runVcpu).
        let roundInsns = 0;
        let anyRan = false;
        for (let k = 0; k < this.vcpus.length; k++) {
          const all = this.vcpusOfVp(k);
          for (const v of all) {
            v.startRound();
            v.apic.tick();
            v.hv?.tick();
          }
          if (!this.vpRunnable(k)) continue;
          anyRan = true;
          const used = this.runVp(k);
          if (typeof used !== 'number') return used;
          roundInsns = Math.max(roundInsns, used);
        }
        // Devices react to what the vCPUs signalled this round (ioeventfd -> EventFd), as a VMM's I/O thread would.
        this.eventFds.dispatch();
        if (this.totalInsns >= maxInsns) {
          return { kind: 'budget', detail: `instruction budget of ${maxInsns} used up; ${this.describe(0)}` };
        }
        if (anyRan) {
          clock.roundStartNs += Math.max(1, roundInsns) * clock.nsPerInsn;
        } else {
          // Every vCPU is halted or waiting: jump to the next timer event, if any.
          let next = Infinity;
          for (let k = 0; k < this.vcpus.length; k++) {
            for (const v of this.vcpusOfVp(k)) next = Math.min(next, v.apic.nextTimerDeadlineNs(), v.hv?.nextDeadlineNs() ?? Infinity);
          }
          if (next === Infinity) {
            return { kind: 'hang', why: 'every vCPU is halted and no timer is armed', detail: this.describe(0) };
          }
          clock.roundStartNs = Math.max(clock.roundStartNs + clock.nsPerInsn, next);
        }
        if ((++rounds & 63) === 0) {
          this.flushSerial();
          if (Date.now() > deadline) return { kind: 'timeout', detail: `host timeout of ${this.opts.timeoutSeconds} s reached; ${this.describe(0)}` };
        }
      }
    } finally {
      this.flushSerial();
    }
  }

  /** Every Vcpu of VP `k`: its VTL0 Vcpu, and with VSM those of its higher VTLs. */
  private vcpusOfVp(k: number): Vcpu[] {
    return this.vsm === null ? [this.vcpus[k]] : this.vsm.vcpusOf(this.vcpus[k].id);
  }

  /** Whether VP `k` can make progress: its active Vcpu can, or a parked higher VTL has an event that enters it. */
  private vpRunnable(k: number): boolean {
    if (this.vsm === null) return this.vcpus[k].runnable;
    const vp = this.vsm.vps[this.vcpus[k].id]!;
    if (this.vsm.waitsForTlbLock(vp)) return false;
    if (vp.active.runnable) return true;
    // An interrupt may enter a higher VTL only of a VP that has started (an AP still waiting for its SIPI has not).
    if (!vpHasStarted(vp)) return false;
    for (let vtl = vp.activeVtl + 1; vtl < vp.vcpus.length; vtl++) if (vp.isEnabled(vtl) && vp.vcpus[vtl]!.runnable) return true;
    return false;
  }

  /**
   * The Vcpu VP `k` runs next. With VSM: a parked higher VTL whose Vcpu
   * reports a wake-up (kvm §3.3) is entered first, with entry reason
   * "interrupt"; the highest such VTL wins (§3.10). Parked lower VTLs are
   * never run here: their events wait until the VP returns to them.
   */
  private vcpuToRun(k: number): Vcpu {
    const vsm = this.vsm;
    if (vsm === null) return this.vcpus[k];
    const vp = vsm.vps[this.vcpus[k].id]!;
    if (!vpHasStarted(vp)) return vp.active;
    for (let vtl = vp.vcpus.length - 1; vtl > vp.activeVtl; vtl--) {
      const parked = vp.vcpus[vtl];
      if (parked === undefined || !vp.isEnabled(vtl) || !parked.runnable) continue;
      const e = parked.run(0); // applies a pending VtlReturn completion, then reports the wake-up
      if (e.reason === 'system-event' && e.type === 'wakeup') {
        enterHigherVtl(vsm, vp, vtl, HvVtlEntryReason.Interrupt);
        break;
      }
    }
    notifyLowerVtlInterrupt(vp); // VINA: tell the VTL that runs that a lower one has an interrupt waiting
    return vp.active;
  }

  /**
   * Runs one VP for up to its quantum, handling its exits; with VSM the Vcpu
   * may change when a VTL switch happens. Returns the guest time it used, in
   * instructions: what it ran if it halted (it sleeps from then on), the
   * whole quantum otherwise (a PAUSE yields the rest of the quantum, so
   * spin-waits cannot slow guest time down). Returns a result when the
   * machine stops.
   */
  private runVp(k: number): number | MachineResult {
    let left = this.quantum;
    while (left > 0) {
      const v = this.vcpuToRun(k);
      const before = v.cpu.icount;
      const exit = v.run(left);
      const n = v.cpu.icount - before;
      left -= n;
      this.totalInsns += n;
      const stop = this.handleExit(v, exit);
      if (stop !== undefined) return stop;
      if (this.exitCode !== null) return { kind: 'exit', code: this.exitCode };
      if (exit.reason === 'hlt') return this.quantum - left;
      if (exit.reason === 'preempted') break;
      // A VtlReturn into a VTL that must first wait for other VPs' TLB locks (WaitForTlbLock) ends the quantum.
      if (this.vsm !== null && this.vsm.waitsForTlbLock(this.vsm.vps[this.vcpus[k].id]!)) break;
    }
    return this.quantum;
  }

  private handleExit(v: Vcpu, exit: VcpuExit): MachineResult | undefined {
    switch (exit.reason) {
      case 'io':
        if (exit.direction === 'out') this.io.write(exit.port, exit.size as PioSize, exit.value >>> 0);
        else v.completeIo(this.io.read(exit.port, exit.size as PioSize));
        return undefined;
      case 'mmio':
        if (this.doorbell?.ownsMmio(exit.gpa)) {
          if (exit.isWrite) this.doorbell.mmioWrite(v, exit.gpa, exit.size, exit.value);
          else v.completeMmio(this.doorbell.mmioRead(exit.gpa, exit.size));
          return undefined;
        }
        // No other MMIO devices beyond the in-kernel APIC: reads return all-ones, writes are dropped.
        if (!exit.isWrite) v.completeMmio(exit.size === 8 ? 0xffffffffffffffffn : BigInt(2 ** (8 * exit.size) - 1));
        return undefined;
      case 'shutdown':
        // A lower VTL's triple fault goes to a higher VTL that asked for it (vsm/unrecoverable-exception.ts).
        if (this.vsm !== null && handleUnrecoverableException(this.vsm, v, exit).kind === 'intercepted') return undefined;
        return { kind: 'shutdown', vcpu: v.id, why: exit.why, detail: describeVcpu(v) };
      case 'hyperv-hcall':
        // The VSM calls (vsm/hc-vsm.ts VSM_HYPERCALLS) go to the partition.
        if (this.vsm !== null && handleVsmHypercall(this.vsm, v, exit)) return undefined;
        v.completeHypercall(this.answerHypercall(exit));
        return undefined;
      case 'hypercall':
        v.completeKvmHypercall(exit.nr === KVM_HC_MAP_GPA_RANGE ? this.mapGpaRange(exit) : -BigInt(KVM_ENOSYS));
        return undefined;
      case 'memory-fault': {
        // A VTL protection's fault becomes a GPA intercept for the higher VTL (vsm/memory-intercept.ts). Any other
        // fault has no handler here: stop cleanly instead of re-running the access forever.
        const r = this.vsm !== null ? handleProtectionFault(this.vsm, v, exit) : { kind: 'not-vsm' as const };
        if (r.kind === 'intercepted') return undefined;
        const why = r.kind === 'unreportable' ? r.why : `unhandled memory-fault exit: ${describeMemoryFault(exit)}`;
        return { kind: 'shutdown', vcpu: v.id, why, detail: describeVcpu(v) };
      }
      case 'register-access': {
        // Only VSM arms these exits: a lower VTL's CR/MSR access a higher VTL intercepts (vsm/cr-intercept.ts).
        const r = this.vsm !== null ? handleRegisterAccess(this.vsm, v, exit) : { kind: 'not-vsm' as const };
        if (r.kind === 'intercepted') return undefined;
        const what = exit.register === 'msr' ? `MSR 0x${exit.msr.toString(16)}` : exit.register;
        return { kind: 'shutdown', vcpu: v.id, why: `unhandled register-access exit (${exit.write ? 'write' : 'read'} of ${what})`, detail: describeVcpu(v) };
      }
      case 'system-event':
        // Only a parked (inactive-VTL) Vcpu reports wake-ups, and the scheduler never runs one except in vcpuToRun.
        return { kind: 'shutdown', vcpu: v.id, why: `unexpected system-event exit (${exit.type}) from a vCPU the scheduler ran as active`, detail: describeVcpu(v) };
      default:
        return undefined;
    }
  }

  /**
   * The VMM's answer to a hypercall the kernel passed up (KVM_EXIT_HYPERV)
   * that no VMM service handles (with VSM, vsm/hc-vsm.ts takes its calls
   * first). The answer is what QEMU gives without a
   * handler (target/i386/kvm/hyperv.c, hw/hyperv/hyperv.c): PostMessage and
   * SignalEvent to a connection nobody registered are
   * HV_STATUS_INVALID_CONNECTION_ID, any other call HV_STATUS_INVALID_HYPERCALL_CODE.
   */
  answerHypercall(exit: Extract<VcpuExit, { reason: 'hyperv-hcall' }>): bigint {
    const code = exit.code;
    const status = code === HvCall.PostMessage || code === HvCall.SignalEvent ? HvStatus.INVALID_CONNECTION_ID : HvStatus.INVALID_HYPERCALL_CODE;
    return BigInt(status);
  }

  /**
   * The VMM's side of KVM_HC_MAP_GPA_RANGE (kvm-api-facts §4.2): KVM checked
   * alignment and count; the VMM converts [gpa, gpa + 4 KiB × count) by
   * setting (ENCRYPTED, bit 4) or clearing the PRIVATE attribute, as QEMU's
   * kvm_convert_memory does (the page-size bits are hints; the count is in
   * 4 KiB pages). Attribute bits other than 0, 1 and 4, a range that is not
   * all RAM, or a conversion KVM refuses answer -EINVAL; success is 0.
   */
  mapGpaRange(exit: Extract<VcpuExit, { reason: 'hypercall' }>): bigint {
    const [gpa, npages, attrs] = exit.args;
    const known = BigInt(KVM_MAP_GPA_RANGE_PAGE_SZ_2M | KVM_MAP_GPA_RANGE_PAGE_SZ_1G | KVM_MAP_GPA_RANGE_ENCRYPTED);
    const size = npages * 4096n;
    if ((attrs & ~known) !== 0n || gpa + size > BigInt(this.vm.mem.size)) return -BigInt(KVM_EINVAL);
    for (let a = Number(gpa); a < Number(gpa + size); a += 4096) if (!this.vm.mem.isRam(a)) return -BigInt(KVM_EINVAL);
    try {
      this.vm.setMemoryAttributes({ address: gpa, size, attributes: (attrs & BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED)) !== 0n ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0 });
    } catch (e) {
      if (e instanceof KvmError) return -BigInt(KVM_EINVAL);
      throw e;
    }
    return 0n;
  }

  /**
   * The trace as Chrome trace-event JSON (the CLI's --trace): with VSM, one
   * process per VTL's Vm ("VTL0", "VTL1", ...), threads per VP.
   */
  traceJson(): string {
    if (this.vm.trace === null) throw new RangeError('the machine was built without trace: true');
    if (this.vsm === null) return this.vm.trace.toChromeJson();
    return chromeJsonOf(this.vsm.vms.flatMap((vm, vtl) => vm?.trace ? [{ log: vm.trace, pid: vtl + 1, name: `VTL${vtl}` }] : []));
  }

  /** VP `index`'s Vcpu in the VTL it is in (VTL0's without VSM). */
  describe(index: number): string {
    const v = this.vcpus[index];
    return describeVcpu(this.vsm?.vps[v.id]?.active ?? v);
  }
}
