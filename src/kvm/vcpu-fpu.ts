/**
 * The vCPU's x87/SSE state and its XSAVE feature mask, in KVM's shapes:
 * KVM_GET/SET_FPU (struct kvm_fpu) and KVM_GET/SET_XCRS (struct kvm_xcrs),
 * upstream api.rst "KVM_GET_FPU", "KVM_GET_XCRS"; x86.c
 * kvm_arch_vcpu_ioctl_{get,set}_fpu and kvm_vcpu_ioctl_x86_set_xcrs.
 *
 * kvm_fpu is the FXSAVE image spread out: fpr[8][16] (ST0-ST7, 80 bits plus
 * padding), fcw, fsw, ftwx (the abridged tag byte), last_opcode, last_ip,
 * last_dp (the 64-bit FXSAVE64 pointers), xmm[16][16] and mxcsr. Our CPU
 * keeps the x87 part in `cpu.fpuImage` in that same 64-bit layout (see
 * x86/ops/fxsave.ts), XMM in `cpu.xmm` and MXCSR in `cpu.mxcsr`.
 *
 * setFpu checks (EINVAL, nothing changed): field shapes and ranges, and
 * MXCSR bits this CPU does not implement (FXRSTOR would raise #GP; KVM
 * copies the value and the next restore of the guest state would fault).
 * It stores 80 bits per ST register (the padding reads back 0, as FXRSTOR
 * ignores it) and clears the FCS/FDS selectors our image keeps for 32-bit
 * FXSAVE, which the 64-bit layout has no room for.
 *
 * setXcrs (EINVAL, nothing changed): flags ≠ 0, more than KVM_MAX_XCRS (16)
 * entries, or an XCR0 value XSETBV would refuse (x87 bit 0 clear, or a bit
 * outside the x87 | SSE components this CPU has; KVM's __kvm_set_xcr checks
 * against the guest's supported XCR0 the same way). Only the first entry
 * for XCR0 is used; entries for other XCRs are ignored, as KVM does.
 */
import type { Cpu } from '../x86/cpu.js';
import { MXCSR_MASK } from '../x86/ops/fxsave.js';
import { KvmError } from './errors.js';
import type { XmmRegister } from './vcpu-regs.js';

/** struct kvm_fpu (less its padding). */
export interface KvmFpu {
  /** ST0-ST7 / MM0-MM7: 8 entries of 16 bytes (the 80-bit value in bytes 0-9). */
  fpr: Uint8Array[];
  fcw: number; fsw: number; ftwx: number; lastOpcode: number;
  lastIp: bigint; lastDp: bigint;
  /** XMM0-XMM15. */
  xmm: XmmRegister[];
  mxcsr: number;
}

/** struct kvm_xcr. */
export interface KvmXcr { xcr: number; value: bigint }
/** struct kvm_xcrs (nr_xcrs is xcrs.length). */
export interface KvmXcrs { flags: number; xcrs: KvmXcr[] }

export const KVM_MAX_XCRS = 16;
/** XCR0 bits this CPU implements: x87 (bit 0, always set) and SSE (bit 1), what XSETBV accepts. */
export const XCR0_SUPPORTED = 0x3;
const XCR_XFEATURE_ENABLED_MASK = 0;

/** ST0 in the image; FDS_AT ends the FCS/FDS bytes our image keeps for 32-bit FXSAVE (ops/fxsave.ts). */
const ST_AT = 32, FDS_AT = 162;

export function getFpu(c: Cpu): KvmFpu {
  const f = c.fpuImage, dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const x = c.xmm;
  const half = (k: number) => (BigInt(x[k + 1] >>> 0) << 32n) | BigInt(x[k] >>> 0);
  return {
    fpr: Array.from({ length: 8 }, (_, k) => f.slice(ST_AT + 16 * k, ST_AT + 16 * k + 16)),
    fcw: dv.getUint16(0, true), fsw: dv.getUint16(2, true), ftwx: f[4], lastOpcode: dv.getUint16(6, true),
    lastIp: dv.getBigUint64(8, true), lastDp: dv.getBigUint64(16, true),
    xmm: Array.from({ length: 16 }, (_, k) => ({ low: half(4 * k), high: half(4 * k + 2) })),
    mxcsr: c.mxcsr >>> 0,
  };
}

function uint(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new KvmError('EINVAL', `${what} must be an integer in 0..${max}, got ${String(v)}`);
  return v;
}
function u64(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) throw new KvmError('EINVAL', `${what} must be a bigint in 0..2^64-1, got ${String(v)}`);
  return v;
}

export function setFpu(c: Cpu, fpu: KvmFpu): void {
  if (typeof fpu !== 'object' || fpu === null) throw new KvmError('EFAULT', 'the FPU argument is not an object');
  if (!Array.isArray(fpu.fpr) || fpu.fpr.length !== 8 || !fpu.fpr.every((r) => r instanceof Uint8Array && r.length === 16)) {
    throw new KvmError('EINVAL', 'fpr must be 8 Uint8Arrays of 16 bytes (ST0-ST7)');
  }
  const fcw = uint(fpu.fcw, 0xffff, 'fcw'), fsw = uint(fpu.fsw, 0xffff, 'fsw'), ftwx = uint(fpu.ftwx, 0xff, 'ftwx');
  const fop = uint(fpu.lastOpcode, 0xffff, 'lastOpcode');
  const ip = u64(fpu.lastIp, 'lastIp'), dp = u64(fpu.lastDp, 'lastDp');
  if (!Array.isArray(fpu.xmm) || fpu.xmm.length !== 16) throw new KvmError('EINVAL', 'xmm must hold 16 registers (XMM0-XMM15)');
  const xmm = fpu.xmm.map((r, k) => {
    if (typeof r !== 'object' || r === null) throw new KvmError('EINVAL', `xmm${k} is not { low, high }`);
    return [u64(r.low, `xmm${k}.low`), u64(r.high, `xmm${k}.high`)] as const;
  });
  const mxcsr = uint(fpu.mxcsr, 0xffffffff, 'mxcsr');
  if (mxcsr & ~MXCSR_MASK) throw new KvmError('EINVAL', `MXCSR 0x${mxcsr.toString(16)} sets bits this CPU does not implement (mask 0x${MXCSR_MASK.toString(16)})`);

  const f = c.fpuImage, dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  f.fill(0, 0, FDS_AT + 2);
  dv.setUint16(0, fcw, true); dv.setUint16(2, fsw, true); f[4] = ftwx; dv.setUint16(6, fop, true);
  dv.setBigUint64(8, ip, true); dv.setBigUint64(16, dp, true);
  fpu.fpr.forEach((r, k) => f.set(r.subarray(0, 10), ST_AT + 16 * k));
  xmm.forEach(([low, high], k) => {
    c.xmm[4 * k] = Number(low & 0xffffffffn) | 0; c.xmm[4 * k + 1] = Number(low >> 32n) | 0;
    c.xmm[4 * k + 2] = Number(high & 0xffffffffn) | 0; c.xmm[4 * k + 3] = Number(high >> 32n) | 0;
  });
  c.mxcsr = mxcsr;
}

export function getXcrs(c: Cpu): KvmXcrs {
  return { flags: 0, xcrs: [{ xcr: XCR_XFEATURE_ENABLED_MASK, value: BigInt(c.xcr0 >>> 0) }] };
}

export function setXcrs(c: Cpu, x: KvmXcrs): void {
  if (typeof x !== 'object' || x === null) throw new KvmError('EFAULT', 'the XCRs argument is not an object');
  if (x.flags !== 0) throw new KvmError('EINVAL', `XCRs flags must be 0, got ${String(x.flags)}`);
  if (!Array.isArray(x.xcrs) || x.xcrs.length > KVM_MAX_XCRS) throw new KvmError('EINVAL', `xcrs must be an array of at most ${KVM_MAX_XCRS} entries`);
  let xcr0: bigint | undefined;
  x.xcrs.forEach((e, k) => {
    if (typeof e !== 'object' || e === null) throw new KvmError('EINVAL', `XCR entry ${k} is not { xcr, value }`);
    const n = uint(e.xcr, 0xffffffff, `XCR entry ${k} index`);
    const v = u64(e.value, `XCR entry ${k} value`);
    if (n === XCR_XFEATURE_ENABLED_MASK && xcr0 === undefined) xcr0 = v;
  });
  if (xcr0 === undefined) return;
  if ((xcr0 & 1n) === 0n || (xcr0 & ~BigInt(XCR0_SUPPORTED)) !== 0n) {
    throw new KvmError('EINVAL', `XCR0 0x${xcr0.toString(16)} must set x87 (bit 0) and only bits of 0x${XCR0_SUPPORTED.toString(16)}`);
  }
  c.xcr0 = Number(xcr0);
}
