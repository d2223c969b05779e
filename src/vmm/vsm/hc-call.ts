/**
 * What the VMM's VSM hypercall handlers (hc-vsm.ts, hc-vp.ts) share: the
 * exit being answered with its caller located in the partition, the answer,
 * and the input as the §1.3 register conventions give it (tlfs-vsm-facts
 * §1.1-§1.3; kvm-api-facts §3.1).
 */
import type { VcpuExit } from '../../kvm/exits.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import type { XmmRegister } from '../../kvm/vcpu-regs.js';
import { ACCESS_READ } from '../../x86/host.js';
import { hypercallResult, type HypercallControl } from '../../kvm/hyperv/hypercall-input.js';
import { HV_FAST_GPR_BYTES, HV_FAST_PAIR_BYTES, HV_FAST_XMM_BYTES, HvStatus } from '../../spec/tlfs.js';
import { BUFFER_INTERCEPTED, checkVsmHypercallBuffer } from './memory-intercept.js';
import type { VsmPartition, VsmVp } from './partition.js';

export type HcallExit = Extract<VcpuExit, { reason: 'hyperv-hcall' }>;

/** One exit being answered. */
export interface Call {
  readonly p: VsmPartition;
  readonly vcpu: Vcpu;
  readonly vp: VsmVp;
  /** The caller's VTL. */
  readonly vtl: number;
  readonly exit: HcallExit;
  readonly control: HypercallControl;
  /** 64-bit caller (§1.3 register convention). */
  readonly long: boolean;
}

/** Completes the call with `status`; BUFFER_INTERCEPTED leaves it unanswered (a buffer intercept took the VP to a higher VTL). */
export function answer(c: Call, status: number, reps = 0, xmm?: readonly XmmRegister[]): void {
  if (status === BUFFER_INTERCEPTED) return;
  c.vcpu.completeHypercall(hypercallResult(status, reps), xmm);
}

/** A slow call's buffer at hi:lo (memory-intercept.ts checkVsmHypercallBuffer): SUCCESS, a status, or BUFFER_INTERCEPTED. */
export function checkBuffer(c: Call, lo: number, hi: number, len: number, access: number): number {
  return checkVsmHypercallBuffer(c.p, c.vcpu, lo, hi, len, access);
}

/** The low and high 32 bits of a u64 register value (a GPA in RDX or R8, as the buffer checks take it). */
export const lo32 = (v: bigint) => Number(v & 0xffffffffn);
export const hi32 = (v: bigint) => Number(v >> 32n);

export const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
export const allZero = (b: Uint8Array) => b.every((x) => x === 0);

/**
 * The first `size` input bytes: from guest memory (slow call, with the
 * §1.1/§1.5 buffer checks, or BUFFER_INTERCEPTED: checkBuffer), or from
 * RDX, R8 and XMM0-5 (fast call; more than 112 bytes, or more than 16 from
 * a 32-bit caller, does not fit: INVALID_HYPERCALL_INPUT). kvm has already
 * #UD'd XMM input it does not offer.
 */
export function readInput(c: Call, size: number): Uint8Array | number {
  const [rdx] = c.exit.params;
  if (!c.control.fast) {
    const lo = lo32(rdx), hi = hi32(rdx);
    const s = checkBuffer(c, lo, hi, size, ACCESS_READ);
    return s !== HvStatus.SUCCESS ? s : c.vcpu.vm.mem.read(Number(rdx), size);
  }
  if (size > HV_FAST_XMM_BYTES || (size > HV_FAST_GPR_BYTES && !c.long)) return HvStatus.INVALID_HYPERCALL_INPUT;
  return fastBlock(c.exit).subarray(0, size);
}

/** The 112-byte fast register block: RDX, R8, then XMM0..XMM5 (§1.3). */
export function fastBlock(exit: HcallExit): Uint8Array {
  const block = new Uint8Array(HV_FAST_XMM_BYTES);
  const dv = new DataView(block.buffer);
  dv.setBigUint64(0, exit.params[0], true);
  dv.setBigUint64(8, exit.params[1], true);
  exit.xmm.forEach((x, k) => {
    dv.setBigUint64(HV_FAST_PAIR_BYTES * (k + 1), x.low, true);
    dv.setBigUint64(HV_FAST_PAIR_BYTES * (k + 1) + 8, x.high, true);
  });
  return block;
}
