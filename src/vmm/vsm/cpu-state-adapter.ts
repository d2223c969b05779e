/**
 * VSM-shaped views of vCPU state that the kvm API holds in KVM's shapes:
 * the VTL-private architectural MSRs as one record (KVM_GET/SET_MSRS), and
 * single registers out of KVM_GET/SET_DEBUGREGS, KVM_GET/SET_XCRS,
 * KVM_GET/SET_FPU and KVM_GET/SET_SREGS (CR2) and KVM_GET_VCPU_EVENTS (the
 * interrupt shadow). Everything goes through those Vcpu calls; nothing here
 * touches the CPU directly any more.
 *
 * Values are bigints at this edge. Setters check every value before writing
 * anything and throw VsmError (or the kvm call's KvmError) for bad ones.
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import {
  MSR_CSTAR, MSR_FMASK, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP,
  MSR_SYSENTER_ESP, MSR_TSC_AUX,
} from '../../x86/regs.js';
import { VsmError, u64 } from './errors.js';

/** Bits 63:47 all equal (48-bit linear addresses). */
function canonical(v: bigint): boolean {
  const top = v >> 47n;
  return top === 0n || top === (1n << 17n) - 1n;
}

// ---------------------------------------------------------------- MSRs (KVM_GET_MSRS / KVM_SET_MSRS)

/** The VTL-private architectural MSRs of tlfs-vsm-facts §3.2 that are not in KVM_GET_SREGS (EFER, FS/GS base are). */
export interface PrivateMsrs {
  sysenterCs: bigint; sysenterEsp: bigint; sysenterEip: bigint;
  star: bigint; lstar: bigint; cstar: bigint; sfmask: bigint;
  pat: bigint; kernelGsBase: bigint; tscAux: bigint;
}
export const PRIVATE_MSR_FIELDS: readonly (keyof PrivateMsrs)[] = [
  'sysenterCs', 'sysenterEsp', 'sysenterEip', 'star', 'lstar', 'cstar', 'sfmask', 'pat', 'kernelGsBase', 'tscAux',
];
/** The MSR number of each field. */
const MSR_OF: Record<keyof PrivateMsrs, number> = {
  sysenterCs: MSR_SYSENTER_CS, sysenterEsp: MSR_SYSENTER_ESP, sysenterEip: MSR_SYSENTER_EIP, star: MSR_STAR,
  lstar: MSR_LSTAR, cstar: MSR_CSTAR, sfmask: MSR_FMASK, pat: MSR_PAT, kernelGsBase: MSR_KERNEL_GS_BASE, tscAux: MSR_TSC_AUX,
};

export function readPrivateMsrs(vcpu: Vcpu): PrivateMsrs {
  const got = vcpu.getMsrs(PRIVATE_MSR_FIELDS.map((f) => MSR_OF[f]));
  if (got.length !== PRIVATE_MSR_FIELDS.length) throw new VsmError(`the Vcpu cannot read MSR ${PRIVATE_MSR_FIELDS[got.length]}`);
  const m = {} as PrivateMsrs;
  PRIVATE_MSR_FIELDS.forEach((f, k) => { m[f] = got[k].data; });
  return m;
}

/**
 * What WRMSR accepts for each of these MSRs on our CPU (ops/system.ts), as
 * VsmError. Stricter than a host write (KVM_SET_MSRS makes SYSENTER_ESP/EIP
 * canonical and keeps SYSENTER_CS bits 15:0): a VTL's register value must be
 * one its guest could have written.
 */
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

/** All ten or none: checkPrivateMsrs first, then one KVM_SET_MSRS. */
export function writePrivateMsrs(vcpu: Vcpu, m: PrivateMsrs): void {
  checkPrivateMsrs(m);
  const before = readPrivateMsrs(vcpu);
  const entries = (x: PrivateMsrs) => PRIVATE_MSR_FIELDS.map((f) => ({ index: MSR_OF[f], data: x[f] }));
  const done = vcpu.setMsrs(entries(m));
  if (done !== PRIVATE_MSR_FIELDS.length) {
    vcpu.setMsrs(entries(before)); // values it held a moment ago: accepted again
    throw new VsmError(`the Vcpu refused MSR ${PRIVATE_MSR_FIELDS[done]} 0x${m[PRIVATE_MSR_FIELDS[done]].toString(16)}`);
  }
}

// ---------------------------------------------------------------- debug registers (KVM_GET/SET_DEBUGREGS)

/** DR0-DR3, DR6, DR7 (struct kvm_debugregs' db[4], dr6, dr7). */
export interface DebugRegs { db: [bigint, bigint, bigint, bigint]; dr6: bigint; dr7: bigint }

export function readDebugRegs(vcpu: Vcpu): DebugRegs {
  const { db, dr6, dr7 } = vcpu.getDebugRegs();
  return { db, dr6, dr7 };
}

/** KVM_SET_DEBUGREGS (DR6/DR7 bits 63:32 are EINVAL; the fixed bits are forced as MOV DR does). */
export function writeDebugRegs(vcpu: Vcpu, d: DebugRegs): void {
  if (typeof d !== 'object' || d === null) throw new VsmError('debug registers need db[4], dr6 and dr7');
  vcpu.setDebugRegs({ db: d.db, dr6: d.dr6, dr7: d.dr7, flags: 0 });
}

// ---------------------------------------------------------------- XCR0 (KVM_GET/SET_XCRS)

/** KVM_GET_XCRS reports exactly one entry, XCR0. */
export function readXcr0(vcpu: Vcpu): bigint { return vcpu.getXcrs().xcrs[0].value; }

/** XSETBV's rules: x87 (bit 0) set, no bit outside the components the CPU has (KvmError EINVAL otherwise). */
export function writeXcr0(vcpu: Vcpu, v: bigint): void {
  vcpu.setXcrs({ flags: 0, xcrs: [{ xcr: 0, value: u64(v, 'XCR0') }] });
}

// ---------------------------------------------------------------- x87 / MXCSR (KVM_GET/SET_FPU less XMM)

/**
 * x87 state as the 64-bit FXSAVE image (FCW 0, FSW 2, FTW 4, FOP 6, FIP 8,
 * FDP 16, ST0-ST7 at 32 + 16k; everything else 0) and MXCSR.
 */
export interface FpuState { image: Uint8Array; mxcsr: number }
const IMAGE_BYTES = 512, ST_AT = 32;

export function readFpu(vcpu: Vcpu): FpuState {
  const f = vcpu.getFpu();
  const image = new Uint8Array(IMAGE_BYTES), dv = new DataView(image.buffer);
  dv.setUint16(0, f.fcw, true); dv.setUint16(2, f.fsw, true); image[4] = f.ftwx; dv.setUint16(6, f.lastOpcode, true);
  dv.setBigUint64(8, f.lastIp, true); dv.setBigUint64(16, f.lastDp, true);
  f.fpr.forEach((r, k) => image.set(r, ST_AT + 16 * k));
  return { image, mxcsr: f.mxcsr };
}

/** Loads x87 state and MXCSR; the XMM registers keep their values. */
export function writeFpu(vcpu: Vcpu, s: FpuState): void {
  if (!(s?.image instanceof Uint8Array) || s.image.length !== IMAGE_BYTES) {
    throw new VsmError(`the x87 image must be a Uint8Array of ${IMAGE_BYTES} bytes`);
  }
  const dv = new DataView(s.image.buffer, s.image.byteOffset, IMAGE_BYTES);
  vcpu.setFpu({
    ...vcpu.getFpu(),
    fcw: dv.getUint16(0, true), fsw: dv.getUint16(2, true), ftwx: s.image[4], lastOpcode: dv.getUint16(6, true),
    lastIp: dv.getBigUint64(8, true), lastDp: dv.getBigUint64(16, true),
    fpr: Array.from({ length: 8 }, (_, k) => s.image.slice(ST_AT + 16 * k, ST_AT + 16 * k + 16)),
    mxcsr: s.mxcsr,
  });
}

// ---------------------------------------------------------------- CR2 (KVM_GET/SET_SREGS)

/** CR2 alone. setSregs with the same CR0/CR3/CR4/EFER does not flush the TLB (except PAE paging outside long mode, as KVM). */
export function readCr2(vcpu: Vcpu): bigint { return vcpu.getSregs().cr2; }
export function writeCr2(vcpu: Vcpu, v: bigint): void {
  vcpu.setSregs({ ...vcpu.getSregs(), cr2: u64(v, 'CR2') });
}

// ---------------------------------------------------------------- event state (KVM_GET_VCPU_EVENTS)

/** Interrupt shadow (STI / MOV SS blocking), kvm_vcpu_events.interrupt.shadow ≠ 0. */
export function interruptShadow(vcpu: Vcpu): boolean { return vcpu.getVcpuEvents().interrupt.shadow !== 0; }
