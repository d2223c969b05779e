/**
 * The hypercall dispatcher of one vCPU (DESIGN §7, OpenVMM style): the
 * generic checks once, then one handler per call with its input block.
 * Vcpu.hypercall() calls dispatch() when the guest executes VMCALL/VMMCALL.
 *
 * Order of the generic checks (fact sheet §1.1-§1.3, KVM kvm_hv_hypercall):
 *  1. no Hyper-V interface (none configured, or GUEST_OS_ID still 0, §1.4) ⇒ #UD
 *     (KVM would run the VMCALL as a KVM PV hypercall instead; we have none);
 *     CPL > 0 or real mode ⇒ #UD (§1.1).
 *  2. the caller's convention: 64-bit (EFER.LMA and CS.L) uses RCX, RDX, R8,
 *     a 32-bit caller EDX:EAX, EBX:ECX, EDI:ESI, and gets its result in EDX:EAX.
 *  3. a code not in CALLS ⇒ INVALID_HYPERCALL_CODE (the fact sheet's order;
 *     KVM checks reserved bits before it notices an unknown code).
 *  4. not available by the partition's CPUID ⇒ ACCESS_DENIED
 *     (HvFeatures.hypercallAllowed, KVM hv_check_hypercall_access).
 *  5. the control word (hypercall-input.ts validateHypercallControl): RsvdZ
 *     bits, rep fields, variable header ⇒ INVALID_HYPERCALL_INPUT. Not for
 *     VtlCall/VtlReturn, whose stricter rules (#UD) are the VMM's (§3.4).
 *     The nested bit (31) is ignored: we are the L0 hypervisor.
 *  6. calls the VMM handles go to it now (fast XMM-capable ones #UD without
 *     XMM input first, as KVM does).
 *  7. input size = fixed header + 8 × variable header + rep elements.
 *     Fast: more than 112 bytes ⇒ INVALID_HYPERCALL_INPUT; more than 16 bytes
 *     needs XMM input (CPUID 0x40000003 EDX bit 4, else #UD) and a 64-bit
 *     caller (32-bit callers have no XMM block: INVALID_HYPERCALL_INPUT).
 *     Slow: hc-buffers.ts (alignment, page crossing, RAM, memory attributes).
 *  8. the handler.
 * A rep call that fails a check of step 7 reports its rep start as the reps
 * completed (the elements before it were done by earlier executions).
 *
 * Outcomes: a status (RAX written, RIP already past the VMCALL); #UD (thrown,
 * RIP on the VMCALL); continuation of a rep call (below); suspension (TLB-flush
 * inhibit: nothing written, RIP left on the VMCALL); an exit to the VMM
 * ('hyperv-hcall', RIP left on the VMCALL until the VMM answers with
 * Vcpu.completeHypercall(), applied at the next run(): XMM output, RAX, RIP).
 *
 * Continuation (§1.2): a rep call processes at most HV_REPS_PER_EXECUTION
 * reps per execution (a small, deterministic stand-in for Hyper-V's time
 * budget); if reps remain, the rep start in the control word becomes the reps
 * completed and RIP stays on the VMCALL, so the guest re-executes it, after
 * any interrupt that is pending.
 */
import {
  HV_CALL_CLASS,
  HV_FAST_GPR_BYTES,
  HV_FAST_PAIR_BYTES,
  HV_FAST_XMM_BYTES,
  HV_GVA_RANGE_BYTES,
  HV_HYPERCALL_INSN_BYTES,
  HV_HYPERCALL_XMM_REGISTERS,
  HV_POST_MESSAGE_INPUT_SIZE,
  HvCall,
  HvFlushInput,
  HvIpiInput,
  HvSignalEventInput,
  HvStatus,
  type HvCallClass,
} from '../../spec/tlfs.js';
import { CR0_PE, UD } from '../../x86/regs.js';
import { fault } from '../../x86/fault.js';
import { HypervHcallExit, type VcpuExit } from '../exits.js';
import type { Vcpu } from '../vcpu.js';
import type { XmmRegister } from '../vcpu-regs.js';
import { HC_SUSPEND, HC_TO_VMM, type HcCall, type HcHandler } from './hc-call.js';
import { flushVirtualAddressList, flushVirtualAddressListEx, flushVirtualAddressSpace, flushVirtualAddressSpaceEx } from './hc-flush.js';
import { HcInput } from './hc-input.js';
import { sendSyntheticClusterIpi, sendSyntheticClusterIpiEx } from './hc-ipi.js';
import { notifyLongSpinWait, postMessage, signalEvent } from './hc-synic.js';
import { readHypercallInput } from './hc-buffers.js';
import { hypercallResult, parseHypercallControlParts, validateHypercallControl, withRepStart } from './hypercall-input.js';
import { suspendForTlbFlush } from './tlb-flush-inhibit.js';
import { u64FromHalves as u64 } from '../../x86/u64.js';

/** Reps one execution of a rep call processes before it continues (see above). */
export const HV_REPS_PER_EXECUTION = 16;

/** What dispatch() tells the Vcpu to do. */
export const HcOutcome = {
  /** Completed: RAX written, RIP past the VMCALL. */
  Done: 0,
  /** Completed, and the vCPU gives up its quantum (NotifyLongSpinWait). */
  Yield: 1,
  /** Exit to the VMM with `dispatcher.exit`; RIP stays on the VMCALL. */
  Exit: 2,
  /** Suspended by TLB-flush inhibit; RIP stays on the VMCALL. */
  Suspend: 3,
  /** Rep call continued: RIP is back on the VMCALL with a new rep start. */
  Continue: 4,
} as const;
export type HcOutcome = (typeof HcOutcome)[keyof typeof HcOutcome];

interface HypercallDef {
  /** Fixed input header bytes. */
  readonly header: number;
  /** Bytes per rep input element. */
  readonly rep: number;
  /** null: the VMM handles the call. */
  readonly handler: HcHandler | null;
  /** VMM calls whose fast form reads XMM input (KVM is_xmm_fast_hypercall, kvm-api-facts §3.2). */
  readonly xmmFast?: boolean;
}

const vmm = (xmmFast = false): HypercallDef => ({ header: 0, rep: 0, handler: null, xmmFast });

/** Every call this hypervisor answers; others are INVALID_HYPERCALL_CODE. */
const CALLS: ReadonlyMap<number, HypercallDef> = new Map<number, HypercallDef>([
  [HvCall.FlushVirtualAddressSpace, { header: HvFlushInput.HeaderBytes, rep: 0, handler: flushVirtualAddressSpace }],
  [HvCall.FlushVirtualAddressList, { header: HvFlushInput.HeaderBytes, rep: HV_GVA_RANGE_BYTES, handler: flushVirtualAddressList }],
  [HvCall.FlushVirtualAddressSpaceEx, { header: HvFlushInput.ExHeaderBytes, rep: 0, handler: flushVirtualAddressSpaceEx }],
  [HvCall.FlushVirtualAddressListEx, { header: HvFlushInput.ExHeaderBytes, rep: HV_GVA_RANGE_BYTES, handler: flushVirtualAddressListEx }],
  [HvCall.SendSyntheticClusterIpi, { header: HvIpiInput.HeaderBytes, rep: 0, handler: sendSyntheticClusterIpi }],
  [HvCall.SendSyntheticClusterIpiEx, { header: HvIpiInput.ExHeaderBytes, rep: 0, handler: sendSyntheticClusterIpiEx }],
  [HvCall.PostMessage, { header: HV_POST_MESSAGE_INPUT_SIZE, rep: 0, handler: postMessage }],
  [HvCall.SignalEvent, { header: HvSignalEventInput.Bytes, rep: 0, handler: signalEvent }],
  // Advisory: the spin count is not read (KVM does not read it either).
  [HvCall.NotifyLongSpinWait, { header: 0, rep: 0, handler: notifyLongSpinWait }],
  // VSM: the VMM's calls (kvm-api-facts §3.2), gated by HvFeatures.hypercallAllowed.
  [HvCall.ModifyVtlProtectionMask, vmm(true)],
  [HvCall.EnablePartitionVtl, vmm()],
  [HvCall.EnableVpVtl, vmm()],
  [HvCall.VtlCall, vmm()],
  [HvCall.VtlReturn, vmm()],
  [HvCall.GetVpRegisters, vmm(true)],
  [HvCall.SetVpRegisters, vmm(true)],
  [HvCall.TranslateVirtualAddress, vmm(true)],
  [HvCall.TranslateVirtualAddressEx, vmm()],
  [HvCall.StartVirtualProcessor, vmm()],
  [HvCall.GetVpIndexFromApicId, vmm(true)],
]);

/** CALLS by code, each with its class (HV_CALL_CLASS): the dispatcher's one lookup per call. */
const CALL_TABLE: ({ readonly def: HypercallDef; readonly cls: HvCallClass } | undefined)[] = [];
for (const [code, def] of CALLS) {
  const cls = HV_CALL_CLASS.get(code);
  if (cls === undefined) throw new Error(`hypercall 0x${code.toString(16)} has no class in HV_CALL_CLASS`);
  CALL_TABLE[code] = { def, cls };
}

/** Calls whose successful fast form returns output in XMM registers (kvm-api-facts §3.1 step 1). */
const XMM_OUTPUT_CALLS: ReadonlySet<number> = new Set([HvCall.GetVpRegisters, HvCall.TranslateVirtualAddress, HvCall.GetVpIndexFromApicId]);
/** Calls that never get a result in RAX (kvm-api-facts §3.1 step 2). */
const NO_RESULT_CALLS: ReadonlySet<number> = new Set([HvCall.VtlCall, HvCall.VtlReturn]);

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7, R8 = 8;


class MutableCall implements HcCall {
  code = 0; fast = false; varHeaderQwords = 0; repCount = 0; repStart = 0; repEnd = 0;
  repsDone = 0; waitingOn: Vcpu | null = null; yieldVcpu = false;
  constructor(readonly vcpu: Vcpu, readonly input: HcInput) {}
}

export class HypercallDispatcher {
  private readonly registers = new Uint8Array(HV_FAST_XMM_BYTES);
  private readonly regView = new DataView(this.registers.buffer);
  private readonly call: MutableCall;
  /** The exit for the VMM after dispatch() returned Exit. */
  exit: VcpuExit | null = null;
  /** The call the VMM owes an answer for (-1: none), and how it was made. */
  private pendingCode = -1;
  private pendingFast = false;
  private pendingLong = false;
  /** The VMM's answer to it, once given (plain fields: a VSM VMM answers on every VTL switch). */
  private answered = false;
  private answerResult = 0n;
  private answerXmm: readonly XmmRegister[] | undefined = undefined;
  /** The answer carried XMM output the guest may not receive: the VMCALL faults (#UD) when it runs again. */
  private udOnRetry = false;

  constructor(private readonly vcpu: Vcpu) {
    this.call = new MutableCall(vcpu, new HcInput(this.registers, 0));
  }

  /** Handles the VMCALL the CPU just executed (RIP is past it). May throw #UD. */
  dispatch(): HcOutcome {
    const v = this.vcpu, c = v.cpu, hv = v.hv;
    if (this.udOnRetry) { this.udOnRetry = false; fault(UD); }
    if (hv === null || hv.partition.guestOsId === 0n) fault(UD);
    if (c.cpl !== 0 || (c.cr0 & CR0_PE) === 0) fault(UD);
    const long = c.codeSize === 64, r = c.rlo, h = c.rhi;
    const ctlLo = long ? r[RCX] : r[RAX], ctlHi = long ? h[RCX] : r[RDX];
    const inLo = long ? r[RDX] : r[RCX], inHi = long ? h[RDX] : r[RBX];
    const outLo = long ? r[R8] : r[RSI], outHi = long ? h[R8] : r[RDI];
    const control = parseHypercallControlParts(ctlLo, ctlHi);
    const trace = v.vm.trace;
    if (trace !== null) {
      trace.emit('kvm_hv_hypercall', v.id, v.nowNs(), {
        code: control.code.toString(16), fast: control.fast, var_cnt: control.varHeaderQwords, rep_cnt: control.repCount,
        rep_idx: control.repStart, in_gpa: u64(inLo, inHi).toString(16), out_gpa: u64(outLo, outHi).toString(16),
      });
    }
    const entry = control.code < CALL_TABLE.length ? CALL_TABLE[control.code] : undefined;
    if (entry === undefined) return this.finish(long, HvStatus.INVALID_HYPERCALL_CODE, 0);
    const { def, cls } = entry;
    const features = hv.partition.features;
    if (!features.hypercallAllowed(control.code)) return this.finish(long, HvStatus.ACCESS_DENIED, 0);
    if (!cls.special) {
      const s = validateHypercallControl(control);
      if (s !== HvStatus.SUCCESS) return this.finish(long, s, 0);
    }
    if (def.handler === null) {
      if (control.fast && def.xmmFast === true && !features.xmmInput) fault(UD);
      return this.toVmm(control.code, control.fast, long, ctlLo, ctlHi, inLo, inHi, outLo, outHi);
    }
    const failReps = cls.rep ? control.repStart : 0;
    const size = def.header + 8 * control.varHeaderQwords + def.rep * control.repCount;
    const call = this.call;
    if (size === 0) {
      call.input.reset(this.registers, 0);
    } else if (control.fast) {
      if (size > HV_FAST_GPR_BYTES) {
        if (size > HV_FAST_XMM_BYTES) return this.finish(long, HvStatus.INVALID_HYPERCALL_INPUT, failReps);
        if (!features.xmmInput) fault(UD);
        if (!long) return this.finish(long, HvStatus.INVALID_HYPERCALL_INPUT, failReps);
      }
      this.readRegisters(size, inLo, inHi, outLo, outHi);
      call.input.reset(this.registers, size);
    } else {
      const bytes = readHypercallInput(v.vm, inLo, inHi, size);
      if (typeof bytes === 'number') return this.finish(long, bytes, failReps);
      call.input.reset(bytes, size);
    }
    call.code = control.code; call.fast = control.fast; call.varHeaderQwords = control.varHeaderQwords;
    call.repCount = control.repCount; call.repStart = control.repStart;
    call.repEnd = Math.min(control.repCount, control.repStart + HV_REPS_PER_EXECUTION);
    call.repsDone = control.repStart; call.waitingOn = null; call.yieldVcpu = false;
    const status = def.handler(call);
    if (status === HC_SUSPEND) {
      suspendForTlbFlush(v, call.waitingOn!);
      return HcOutcome.Suspend;
    }
    if (status === HC_TO_VMM) return this.toVmm(control.code, control.fast, long, ctlLo, ctlHi, inLo, inHi, outLo, outHi);
    if (cls.rep && status === HvStatus.SUCCESS && call.repsDone < control.repCount) {
      this.continueLater(long, ctlLo, ctlHi, call.repsDone);
      return HcOutcome.Continue;
    }
    this.finish(long, status, cls.rep ? call.repsDone : 0);
    return call.yieldVcpu ? HcOutcome.Yield : HcOutcome.Done;
  }

  /** The fast-call register block: RDX, R8 (EBX:ECX, EDI:ESI), then XMM0..XMM5 as needed. */
  private readRegisters(size: number, inLo: number, inHi: number, outLo: number, outHi: number): void {
    const dv = this.regView, x = this.vcpu.cpu.xmm;
    dv.setInt32(0, inLo, true); dv.setInt32(4, inHi, true);
    dv.setInt32(8, outLo, true); dv.setInt32(12, outHi, true);
    const pairs = Math.ceil(size / HV_FAST_PAIR_BYTES);
    for (let p = 1; p < pairs; p++) {
      const k = (p - 1) << 2;
      for (let w = 0; w < 4; w++) dv.setInt32(p * HV_FAST_PAIR_BYTES + 4 * w, x[k + w], true);
    }
  }

  /** Writes the result (RAX, or EDX:EAX for a 32-bit caller). RIP is already past the VMCALL. */
  private finish(long: boolean, status: number, reps: number): HcOutcome {
    const c = this.vcpu.cpu;
    c.rlo[RAX] = status; c.rhi[RAX] = 0;
    if (long) {
      c.rhi[RAX] = reps;
    } else {
      c.rlo[RDX] = reps; c.rhi[RDX] = 0;
    }
    if (this.vcpu.vm.trace !== null) this.traceDone(hypercallResult(status, reps));
    return HcOutcome.Done;
  }

  private traceDone(result: bigint): void {
    const v = this.vcpu;
    v.vm.trace?.emit('kvm_hv_hypercall_done', v.id, v.nowNs(), { result: result.toString(16) });
  }

  /** Rewrites the rep start and puts RIP back on the VMCALL (§1.2 continuation). */
  private continueLater(long: boolean, ctlLo: number, ctlHi: number, repsDone: number): void {
    const c = this.vcpu.cpu;
    const next = withRepStart(u64(ctlLo, ctlHi), repsDone);
    const hi = Number(next >> 32n) | 0;
    if (long) c.rhi[RCX] = hi; else c.rlo[RDX] = hi;
    this.backToVmcall();
    c.intrCheck = true; // a pending interrupt is taken before the call resumes
  }

  private backToVmcall(): void {
    const c = this.vcpu.cpu, i = c.cur;
    if (i !== null) { c.ripLo = i.lo; c.ripHi = i.hi; }
  }

  private toVmm(code: number, fast: boolean, long: boolean, ctlLo: number, ctlHi: number,
    inLo: number, inHi: number, outLo: number, outHi: number): HcOutcome {
    let xmm: number[] | null = null;
    if (fast) {
      // A plain array: allocating a small typed array costs several times more.
      const x = this.vcpu.cpu.xmm;
      xmm = [];
      for (let k = 0; k < 4 * HV_HYPERCALL_XMM_REGISTERS; k++) xmm.push(x[k]);
    }
    this.exit = new HypervHcallExit(ctlLo, ctlHi, inLo, inHi, outLo, outHi, xmm, long);
    this.pendingCode = code; this.pendingFast = fast; this.pendingLong = long;
    this.answered = false;
    return HcOutcome.Exit;
  }

  /** Whether a 'hyperv-hcall' exit is waiting for completeHypercall(). */
  get awaitingAnswer(): boolean { return this.pendingCode >= 0 && !this.answered; }

  /** Records the VMM's answer to the last 'hyperv-hcall' exit (Vcpu.completeHypercall checks the arguments). */
  answerVmmCall(result: bigint, xmm: readonly XmmRegister[] | undefined): void {
    this.answered = true; this.answerResult = result; this.answerXmm = xmm;
  }

  /**
   * Applies the VMM's answer at the start of the next run (KVM's
   * complete_userspace_io, kvm-api-facts §3.1): XMM output for a successful
   * fast XMM-output call (#UD instead if XMM output is not exposed: RIP
   * stays on the VMCALL, which raises it inside the next cpu.run(), where a
   * fault during delivery is handled like any other), the result in RAX
   * except for VtlCall/VtlReturn, and RIP past the VMCALL.
   */
  applyAnswer(): void {
    if (!this.answered) return;
    const code = this.pendingCode, result = this.answerResult, xmm = this.answerXmm;
    this.pendingCode = -1; this.answered = false; this.answerXmm = undefined;
    const c = this.vcpu.cpu;
    if (!NO_RESULT_CALLS.has(code)) {
      const lo = Number(result & 0xffffffffn) | 0;
      if (this.pendingFast && (lo & 0xffff) === HvStatus.SUCCESS && XMM_OUTPUT_CALLS.has(code) && xmm !== undefined) {
        if (!this.vcpu.hv!.partition.features.xmmOutput) { this.udOnRetry = true; return; }
        xmm.forEach((reg, k) => {
          const o = 4 * k;
          c.xmm[o] = Number(reg.low & 0xffffffffn) | 0; c.xmm[o + 1] = Number(reg.low >> 32n) | 0;
          c.xmm[o + 2] = Number(reg.high & 0xffffffffn) | 0; c.xmm[o + 3] = Number(reg.high >> 32n) | 0;
        });
      }
      const hi = Number(result >> 32n) | 0;
      if (this.pendingLong) { c.rlo[RAX] = lo; c.rhi[RAX] = hi; } else { c.rlo[RAX] = lo; c.rhi[RAX] = 0; c.rlo[RDX] = hi; c.rhi[RDX] = 0; }
    }
    const next = (c.ripLo >>> 0) + HV_HYPERCALL_INSN_BYTES;
    if (c.codeSize === 64) { c.ripHi = next > 0xffffffff ? (c.ripHi + 1) | 0 : c.ripHi; c.ripLo = next | 0; }
    else { c.ripLo = c.codeSize === 32 ? next | 0 : next & 0xffff; c.ripHi = 0; }
    if (this.vcpu.vm.trace !== null) this.traceDone(result);
  }
}
