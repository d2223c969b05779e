/**
 * What a hypercall handler receives and may return. The dispatcher
 * (hypercall.ts) has done the generic checks (control word, availability,
 * alignment, page crossing, register fit) and read the input block; a
 * handler decodes its own fields and returns an HV_STATUS, or one of the
 * two outcomes below that are not a status.
 */
import type { Vcpu } from '../vcpu.js';
import type { HcInput } from './hc-input.js';

/** The caller must be suspended (TLB-flush inhibit); `call.waitingOn` names the inhibitor. */
export const HC_SUSPEND = -1;
/** The VMM handles this call: the vCPU exits with 'hyperv-hcall' (KVM_EXIT_HYPERV, type HCALL). */
export const HC_TO_VMM = -2;

export interface HcCall {
  /** The calling vCPU. */
  readonly vcpu: Vcpu;
  readonly code: number;
  readonly fast: boolean;
  readonly varHeaderQwords: number;
  readonly repCount: number;
  readonly repStart: number;
  /**
   * Rep calls: the rep index (exclusive) at which this execution stops. The
   * dispatcher continues the call from there (rewritten rep start, RIP left
   * on the VMCALL) when it is below repCount.
   */
  readonly repEnd: number;
  /** Fixed header, variable header, rep elements, in that order. */
  readonly input: HcInput;
  /** Rep calls: reps completed, an absolute index (fact sheet §1.2). */
  repsDone: number;
  /** Set with HC_SUSPEND: the inhibited vCPU found first. */
  waitingOn: Vcpu | null;
  /** Set by a handler after which the vCPU should give up its quantum (as PAUSE does). */
  yieldVcpu: boolean;
}

export type HcHandler = (call: HcCall) => number;
