/**
 * STOPGAP ADAPTER: CPU state the kvm Vcpu register API does not expose yet,
 * read and written straight from `vcpu.cpu`. Every function here stands for a
 * KVM ioctl our kvm layer lacks (listed per function); when kvm grows them,
 * this file goes away and callers switch to the Vcpu methods.
 *
 * Values are bigints at this edge, like vcpu-regs.ts. Setters check every
 * value before writing anything and throw VsmError for bad ones.
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import { VsmError, u64 } from './errors.js';

const big = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
const lo32 = (v: bigint): number => Number(v & 0xffffffffn) | 0;
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn) | 0;

/** Bits 63:47 all equal (48-bit linear addresses). */
function canonical(v: bigint): boolean {
  const top = v >> 47n;
  return top === 0n || top === (1n << 17n) - 1n;
}

// ---------------------------------------------------------------- MSRs (missing: KVM_GET_MSRS / KVM_SET_MSRS)

/** The VTL-private architectural MSRs of tlfs-vsm-facts §3.2 that are not in KVM_GET_SREGS (EFER, FS/GS base are). */
export interface PrivateMsrs {
  sysenterCs: bigint; sysenterEsp: bigint; sysenterEip: bigint;
  star: bigint; lstar: bigint; cstar: bigint; sfmask: bigint;
  pat: bigint; kernelGsBase: bigint; tscAux: bigint;
}
export const PRIVATE_MSR_FIELDS: readonly (keyof PrivateMsrs)[] = [
  'sysenterCs', 'sysenterEsp', 'sysenterEip', 'star', 'lstar', 'cstar', 'sfmask', 'pat', 'kernelGsBase', 'tscAux',
];

export function readPrivateMsrs(vcpu: Vcpu): PrivateMsrs {
  const c = vcpu.cpu;
  return {
    sysenterCs: BigInt(c.sysenterCs & 0xffff),
    sysenterEsp: big(c.sysenterEspLo, c.sysenterEspHi),
    sysenterEip: big(c.sysenterEipLo, c.sysenterEipHi),
    star: big(c.starLo, c.starHi),
    lstar: big(c.lstarLo, c.lstarHi),
    cstar: big(c.cstarLo, c.cstarHi),
    sfmask: BigInt(c.fmask >>> 0),
    pat: big(c.patLo, c.patHi),
    kernelGsBase: big(c.kernelGsBaseLo, c.kernelGsBaseHi),
    tscAux: BigInt(c.tscAux >>> 0),
  };
}

/** What WRMSR accepts for each of these MSRs on our CPU (ops/system.ts): the same checks, as VsmError. */
export function checkPrivateMsrs(m: PrivateMsrs): void {
  if (typeof m !== 'object' || m === null) throw new VsmError('the private MSR set is not an object');
  for (const f of PRIVATE_MSR_FIELDS) u64(m[f], `MSR ${f}`);
  if (m.sysenterCs > 0xffffn) throw new VsmError(`SYSENTER_CS 0x${m.sysenterCs.toString(16)} does not fit 16 bits`);
  for (const f of ['sfmask', 'tscAux'] as const) {
    if (m[f] > 0xffffffffn) throw new VsmError(`MSR ${f} 0x${m[f].toString(16)} sets bits 63:32, which are reserved`);
  }
  for (const f of ['sysenterEsp', 'sysenterEip', 'lstar', 'cstar', 'kernelGsBase'] as const) {
    if (!canonical(m[f])) throw new VsmError(`MSR ${f} 0x${m[f].toString(16)} is not a canonical address`);
  }
  for (let k = 0n; k < 8n; k++) {
    const t = (m.pat >> (8n * k)) & 0xffn;
    if (t === 2n || t === 3n || t > 7n) throw new VsmError(`PAT 0x${m.pat.toString(16)} entry ${k} is not a valid memory type`);
  }
}

export function writePrivateMsrs(vcpu: Vcpu, m: PrivateMsrs): void {
  checkPrivateMsrs(m);
  const c = vcpu.cpu;
  c.sysenterCs = Number(m.sysenterCs);
  c.sysenterEspLo = lo32(m.sysenterEsp); c.sysenterEspHi = hi32(m.sysenterEsp);
  c.sysenterEipLo = lo32(m.sysenterEip); c.sysenterEipHi = hi32(m.sysenterEip);
  c.starLo = lo32(m.star); c.starHi = hi32(m.star);
  c.lstarLo = lo32(m.lstar); c.lstarHi = hi32(m.lstar);
  c.cstarLo = lo32(m.cstar); c.cstarHi = hi32(m.cstar);
  c.fmask = lo32(m.sfmask);
  c.patLo = lo32(m.pat); c.patHi = hi32(m.pat);
  c.kernelGsBaseLo = lo32(m.kernelGsBase); c.kernelGsBaseHi = hi32(m.kernelGsBase);
  c.tscAux = lo32(m.tscAux);
}

// ---------------------------------------------------------------- debug registers (missing: KVM_GET_DEBUGREGS / KVM_SET_DEBUGREGS)

/** DR0-DR3, DR6, DR7 (struct kvm_debugregs' db[4], dr6, dr7). */
export interface DebugRegs { db: [bigint, bigint, bigint, bigint]; dr6: bigint; dr7: bigint }

export function readDebugRegs(vcpu: Vcpu): DebugRegs {
  const c = vcpu.cpu;
  const r = (k: number) => big(c.drLo[k], c.drHi[k]);
  return { db: [r(0), r(1), r(2), r(3)], dr6: r(6), dr7: r(7) };
}

/** KVM_SET_DEBUGREGS' checks: DR6 and DR7 bits 63:32 are reserved (EINVAL there). Fixed bits are forced as MOV DR does. */
export function writeDebugRegs(vcpu: Vcpu, d: DebugRegs): void {
  if (typeof d !== 'object' || d === null || !Array.isArray(d.db) || d.db.length !== 4) throw new VsmError('debug registers need db[4], dr6 and dr7');
  d.db.forEach((v, k) => u64(v, `DR${k}`));
  const dr6 = u64(d.dr6, 'DR6'), dr7 = u64(d.dr7, 'DR7');
  if (dr6 >> 32n !== 0n || dr7 >> 32n !== 0n) throw new VsmError('DR6 and DR7 bits 63:32 are reserved');
  const c = vcpu.cpu;
  d.db.forEach((v, k) => { c.drLo[k] = lo32(v); c.drHi[k] = hi32(v); });
  c.drLo[6] = lo32(dr6) | 0xffff0ff0; c.drHi[6] = 0;
  c.drLo[7] = (lo32(dr7) & ~0xd800) | 0x400; c.drHi[7] = 0;
}

// ---------------------------------------------------------------- XCR0 (missing: KVM_GET_XCRS / KVM_SET_XCRS)

export function readXcr0(vcpu: Vcpu): bigint { return BigInt(vcpu.cpu.xcr0 >>> 0); }

/** XSETBV's rule that matters here: x87 (bit 0) must stay set; our CPU has no state above bit 31. */
export function writeXcr0(vcpu: Vcpu, v: bigint): void {
  u64(v, 'XCR0');
  if ((v & 1n) === 0n || v >> 32n !== 0n) throw new VsmError(`XCR0 0x${v.toString(16)} must set bit 0 and no bit above 31`);
  vcpu.cpu.xcr0 = Number(v) | 0;
}

// ---------------------------------------------------------------- x87 / MXCSR (missing: the non-XMM part of KVM_GET_FPU / KVM_SET_FPU)

/** x87 state (our CPU's FXSAVE-layout image without the XMM area) and MXCSR. */
export interface FpuState { image: Uint8Array; mxcsr: number }

export function readFpu(vcpu: Vcpu): FpuState {
  return { image: vcpu.cpu.fpuImage.slice(), mxcsr: vcpu.cpu.mxcsr >>> 0 };
}

export function writeFpu(vcpu: Vcpu, f: FpuState): void {
  const c = vcpu.cpu;
  if (!(f?.image instanceof Uint8Array) || f.image.length !== c.fpuImage.length) {
    throw new VsmError(`the x87 image must be a Uint8Array of ${c.fpuImage.length} bytes`);
  }
  if (!Number.isInteger(f.mxcsr) || f.mxcsr < 0 || f.mxcsr > 0xffff) throw new VsmError(`MXCSR 0x${f.mxcsr.toString(16)} sets bits this CPU does not implement`);
  c.fpuImage.set(f.image);
  c.mxcsr = f.mxcsr;
}

// ---------------------------------------------------------------- CR2 (KVM_SET_SREGS has it, but also flushes the TLB)

/**
 * CR2 alone. KVM_SET_SREGS would do, but our setSregs() flushes the vCPU's
 * TLB, and a VTL switch must not: DESIGN §3.3 makes a missing flush
 * observable, and CR2 is shared state copied on every switch.
 */
export function readCr2(vcpu: Vcpu): bigint { return big(vcpu.cpu.cr2Lo, vcpu.cpu.cr2Hi); }
export function writeCr2(vcpu: Vcpu, v: bigint): void {
  u64(v, 'CR2');
  vcpu.cpu.cr2Lo = lo32(v); vcpu.cpu.cr2Hi = hi32(v);
}

// ---------------------------------------------------------------- event state (missing: KVM_GET_VCPU_EVENTS)

/** Interrupt shadow (STI / MOV SS blocking), as kvm_vcpu_events.interrupt.shadow reports it. */
export function interruptShadow(vcpu: Vcpu): boolean { return vcpu.cpu.shadow; }
