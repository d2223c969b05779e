/**
 * Copying register state from one vCPU to another in place (our extension,
 * not an upstream ioctl; src/kvm/README.md "KVM_COPY_VCPU_STATE").
 *
 * A VMM that keeps several vCPUs whose state is partly one (VSM: one vCPU
 * per (VP, VTL), with the shared registers following the VP at every VTL
 * switch, kvm-api-facts §3) would otherwise copy through KVM_GET/SET_REGS,
 * _FPU, _SREGS, _XCRS and _DEBUGREGS on every switch: five structures out
 * and in, with their checks, for some twenty registers. This copies the
 * classes the caller names, directly: which registers are shared is the
 * caller's business, kvm only moves them. The values are architectural
 * state the source vCPU holds, so the destination gets nothing a SET ioctl
 * would refuse, and nothing else changes (no TLB flush: CR2 is not part of
 * the paging context).
 */
import type { Cpu } from '../x86/cpu.js';
import { KvmError } from './errors.js';

/** General-purpose registers named by `gprMask` (bit n = register n: RAX 0, RCX 1, RDX 2, RBX 3, RSP 4, RBP 5, RSI 6, RDI 7, R8-R15 8-15). */
export const KVM_COPY_STATE_GPRS = 1 << 0;
/** The x87 state, MXCSR and XMM0-XMM15 (what KVM_GET/SET_FPU carries). */
export const KVM_COPY_STATE_FPU = 1 << 1;
/** CR2. */
export const KVM_COPY_STATE_CR2 = 1 << 2;
/** XCR0. */
export const KVM_COPY_STATE_XCR0 = 1 << 3;
/** DR0-DR3. */
export const KVM_COPY_STATE_DB = 1 << 4;
/** DR6. */
export const KVM_COPY_STATE_DR6 = 1 << 5;
const ALL = 0x3f;

export interface KvmCopyState {
  /** KVM_COPY_STATE_* bits. */
  readonly classes: number;
  /** With KVM_COPY_STATE_GPRS: which of the 16 GPRs (bits 15:0). */
  readonly gprMask: number;
}

/** Checks the request (EINVAL, nothing copied): unknown class bits, a GPR mask beyond 16 bits. */
export function checkCopyState(req: KvmCopyState): void {
  if (typeof req !== 'object' || req === null) throw new KvmError('EFAULT', 'the copy-state argument is not an object');
  const { classes, gprMask } = req;
  if (!Number.isInteger(classes) || classes < 0 || (classes & ~ALL) !== 0) throw new KvmError('EINVAL', `copy-state classes 0x${Number(classes).toString(16)} has unknown bits (known 0x${ALL.toString(16)})`);
  if (!Number.isInteger(gprMask) || gprMask < 0 || gprMask > 0xffff) throw new KvmError('EINVAL', `copy-state GPR mask ${String(gprMask)} is not a 16-bit mask`);
}

/** The GPRs a copy keeps in the destination (those not in the mask), saved across the whole-file copy. */
const kept = new Int32Array(32);

export function copyState(from: Cpu, to: Cpu, req: KvmCopyState): void {
  const { classes, gprMask } = req;
  if ((classes & (KVM_COPY_STATE_GPRS | KVM_COPY_STATE_FPU)) === (KVM_COPY_STATE_GPRS | KVM_COPY_STATE_FPU)) {
    // GPRs, XMM and x87 sit in one buffer (Cpu.regFile): one set(), with the GPRs outside the mask put back.
    const keep = ~gprMask & 0xffff;
    for (let m = keep; m !== 0; m &= m - 1) {
      const r = 31 - Math.clz32(m & -m);
      kept[2 * r] = to.rlo[r]; kept[2 * r + 1] = to.rhi[r];
    }
    to.regFile.set(from.regFile);
    for (let m = keep; m !== 0; m &= m - 1) {
      const r = 31 - Math.clz32(m & -m);
      to.rlo[r] = kept[2 * r]; to.rhi[r] = kept[2 * r + 1];
    }
    to.mxcsr = from.mxcsr;
  } else if (classes & KVM_COPY_STATE_GPRS) {
    for (let r = 0, m = gprMask; m !== 0; r++, m >>>= 1) {
      if (m & 1) { to.rlo[r] = from.rlo[r]; to.rhi[r] = from.rhi[r]; }
    }
  } else if (classes & KVM_COPY_STATE_FPU) {
    to.fpuImage.set(from.fpuImage);
    to.xmm.set(from.xmm);
    to.mxcsr = from.mxcsr;
  }
  if (classes & KVM_COPY_STATE_CR2) { to.cr2Lo = from.cr2Lo; to.cr2Hi = from.cr2Hi; }
  if (classes & KVM_COPY_STATE_XCR0) to.xcr0 = from.xcr0;
  if (classes & KVM_COPY_STATE_DB) {
    for (let k = 0; k < 4; k++) { to.drLo[k] = from.drLo[k]; to.drHi[k] = from.drHi[k]; }
  }
  if (classes & KVM_COPY_STATE_DR6) { to.drLo[6] = from.drLo[6]; to.drHi[6] = from.drHi[6]; }
}
