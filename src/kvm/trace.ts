/**
 * Trace events, named after KVM's tracepoints where one exists (kvm_exit,
 * kvm_pio, kvm_mmio, kvm_inj_exception, kvm_inj_virq, kvm_apic_ipi, ...),
 * collected through one API and written on request as Chrome trace-event JSON
 * (DESIGN §3.9), which Perfetto and chrome://tracing open. Timestamps are guest
 * time, so traces are as deterministic as the run.
 */
export interface TraceEvent {
  readonly name: string;
  /** Guest time in ns. */
  readonly ns: number;
  /** vCPU id, or -1 for VM-wide events. */
  readonly vcpu: number;
  readonly args: Readonly<Record<string, string | number | boolean>>;
}

export class TraceLog {
  readonly events: TraceEvent[] = [];
  /** Events beyond this are counted but not kept (a runaway guest must not exhaust host memory). */
  readonly limit: number;
  dropped = 0;

  constructor(limit = 1_000_000) { this.limit = limit; }

  emit(name: string, vcpu: number, ns: number, args: TraceEvent['args'] = {}): void {
    if (this.events.length >= this.limit) { this.dropped++; return; }
    this.events.push({ name, ns, vcpu, args });
  }

  /** Events with this name (tests and tools). */
  named(name: string): TraceEvent[] { return this.events.filter((e) => e.name === name); }

  /** Chrome trace-event JSON: instant events, one thread per vCPU, timestamps in µs of guest time. */
  toChromeJson(): string {
    return chromeJson(this.events.map((e) => chromeEvent(e, 1)), { droppedEvents: this.dropped });
  }
}

/** One Chrome instant event: process `pid`, one thread per vCPU (thread 0: VM-wide events). */
function chromeEvent(e: TraceEvent, pid: number): string {
  return JSON.stringify({ name: e.name, ph: 'i', s: 't', pid, tid: e.vcpu < 0 ? 0 : e.vcpu + 1, ts: e.ns / 1000, args: e.args });
}

function chromeJson(events: readonly string[], meta: object): string {
  return `{"traceEvents":[\n${events.join(',\n')}\n],"otherData":${JSON.stringify(meta)}}\n`;
}

/**
 * Several VMs' traces as one Chrome trace-event JSON (a VMM with several VMs,
 * e.g. one per VTL): each log is a process with its name, its events in
 * guest-time order with the others'.
 */
export function chromeJsonOf(sources: readonly { readonly log: TraceLog; readonly pid: number; readonly name: string }[]): string {
  const names = sources.map((x) => JSON.stringify({ name: 'process_name', ph: 'M', pid: x.pid, args: { name: x.name } }));
  const events = sources.flatMap((x) => x.log.events.map((e) => ({ e, pid: x.pid })));
  events.sort((a, b) => a.e.ns - b.e.ns); // stable: one log's order stays
  const dropped = sources.reduce((n, x) => n + x.log.dropped, 0);
  return chromeJson([...names, ...events.map(({ e, pid }) => chromeEvent(e, pid))], { droppedEvents: dropped });
}
