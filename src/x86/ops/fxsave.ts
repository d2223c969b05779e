/**
 * x87/SSE state save and restore (SDM vol. 2 FXSAVE, FXRSTOR, LDMXCSR, STMXCSR,
 * XSAVE, XRSTOR; the image layouts are FXSAVE's "Layout of FXSAVE and FXRSTOR
 * Memory Region" tables, which are also the legacy region of an XSAVE area,
 * SDM vol. 1 ch. 13).
 *
 * The 512-byte image: FCW 0, FSW 2, abridged FTW 4, FOP 6, FPU IP and DP at
 * 8 and 16 (64-bit offsets with REX.W; 32-bit offsets plus CS and DS selectors
 * at 12 and 20 without), MXCSR 24, MXCSR_MASK 28, ST0-ST7 at 32 + 16k (80 bits
 * each), XMM0-XMM7 at 160 + 16k, XMM8-XMM15 after them in 64-bit mode only.
 * Bytes 288 (416 in 64-bit mode) to 511 are not written.
 *
 * There is no x87 unit: its state lives in c.fpuImage, kept in the REX.W
 * layout (bytes 0-23 and 32-159), with FCS and FDS, which that layout has no
 * room for, at bytes FCS_AT and FDS_AT (inside the XMM area, which c.fpuImage
 * does not use because the XMM registers live in c.xmm).
 */
import type { Cpu } from '../cpu.js';
import { fault, faultErr } from '../fault.js';
import type { Handler, Insn } from '../insn.js';
import { def } from '../opcode-table.js';
import { CR0_EM, CR0_TS, CR4_OSXSAVE, GP, NM, UD } from '../regs.js';
import { addrPlus, requireAligned, sseOk } from './sse.js';

/** MXCSR bits this CPU implements (with DAZ): writing any other bit raises #GP(0). */
export const MXCSR_MASK = 0xffff;
const FCS_AT = 160, FDS_AT = 162;
const X87_END = 160;

/** FXSAVE/FXRSTOR: #NM when CR0.TS or CR0.EM is set (SDM FXSAVE "Protected Mode Exceptions"). */
function fxOk(c: Cpu): void {
  if (c.cr0 & (CR0_TS | CR0_EM)) fault(NM);
}

/** XMM registers in the image: 16 in 64-bit mode, else 8. */
function xmmCount(c: Cpu): number { return c.codeSize === 64 ? 16 : 8; }

const image = new Uint8Array(512);
const imageDv = new DataView(image.buffer);

/** The image as FXSAVE (rexW: FXSAVE64) writes it, into `image`; returns its length. */
function buildImage(c: Cpu, rexW: boolean): number {
  const f = c.fpuImage;
  const len = X87_END + 16 * xmmCount(c);
  image.fill(0, 0, len);
  image.set(f.subarray(0, X87_END));
  if (!rexW) {
    // 32-bit FPU IP/DP with their selectors instead of the 64-bit pointers.
    image.fill(0, 12, 16); image.fill(0, 20, 24);
    image[12] = f[FCS_AT]; image[13] = f[FCS_AT + 1];
    image[20] = f[FDS_AT]; image[21] = f[FDS_AT + 1];
  }
  image.fill(0, 24, 32);
  imageDv.setInt32(24, c.mxcsr, true);
  imageDv.setInt32(28, MXCSR_MASK, true);
  for (let k = 0; k < 4 * xmmCount(c); k++) imageDv.setInt32(X87_END + 4 * k, c.xmm[k], true);
  return len;
}

/** Loads the x87 state (bytes 0-23 and 32-159) from `image` (rexW: the 64-bit IP/DP layout). */
function loadX87(c: Cpu, rexW: boolean): void {
  const f = c.fpuImage;
  f.fill(0, 0, FDS_AT + 2);
  f.set(image.subarray(0, 24));
  f.fill(0, 24, 32);
  // Only the 80 bits of each ST/MM register; the padding is reserved.
  for (let k = 0; k < 8; k++) f.set(image.subarray(32 + 16 * k, 42 + 16 * k), 32 + 16 * k);
  if (!rexW) {
    f[FCS_AT] = image[12]; f[FCS_AT + 1] = image[13];
    f[FDS_AT] = image[20]; f[FDS_AT + 1] = image[21];
    f.fill(0, 12, 16); f.fill(0, 20, 24);
  }
}

/** The x87 state's initial configuration (SDM vol. 1 13.6): FCW 037FH, everything else 0 (abridged FTW 0: all empty). */
function initX87(c: Cpu): void {
  const f = c.fpuImage;
  f.fill(0, 0, FDS_AT + 2);
  f[0] = 0x7f; f[1] = 0x03;
}

/** Loads the XMM registers the mode has from `image`. */
function loadXmm(c: Cpu): void {
  for (let k = 0; k < 4 * xmmCount(c); k++) c.xmm[k] = imageDv.getInt32(X87_END + 4 * k, true);
}

/** Loads state from `image` as FXRSTOR (rexW: FXRSTOR64) does, after its checks. */
function loadImage(c: Cpu, rexW: boolean): void {
  loadX87(c, rexW);
  c.mxcsr = imageDv.getInt32(24, true);
  loadXmm(c);
}

/** The memory operand's linear address, checked for 16-byte alignment; hi in c.tHi. */
function imageAddr(c: Cpu, i: Insn): number {
  const lo = i.ea(c, i);
  requireAligned(lo);
  return lo;
}

const fxsave: Handler = (c, i) => {
  fxOk(c);
  const lo = imageAddr(c, i), hi = c.tHi;
  const len = buildImage(c, i.osz === 8);
  // Probe both ends first so that a #PF on the second page writes nothing.
  c.mmu.probeWrite(lo, hi, len);
  for (let k = 0; k < len; k += 8) {
    const a = addrPlus(c, lo, hi, k);
    c.mmu.write64(a, c.tHi, imageDv.getInt32(k, true), imageDv.getInt32(k + 4, true));
  }
};

const fxrstor: Handler = (c, i) => {
  fxOk(c);
  const lo = imageAddr(c, i), hi = c.tHi;
  const len = X87_END + 16 * xmmCount(c);
  for (let k = 0; k < len; k += 8) {
    const a = addrPlus(c, lo, hi, k);
    const v = c.mmu.read64(a, c.tHi);
    imageDv.setInt32(k, v, true); imageDv.setInt32(k + 4, c.tHi, true);
  }
  // Reserved MXCSR bits set: #GP(0), and nothing is loaded.
  if (imageDv.getInt32(24, true) & ~MXCSR_MASK) faultErr(GP, 0);
  loadImage(c, i.osz === 8);
};

// ---- XSAVE, XRSTOR (SDM vol. 1 13.7, 13.8; standard form only) ----

/** The XSAVE-managed state components this CPU has (XCR0 bits): x87 (0) and SSE (1), both in the legacy region. */
export const XSAVE_SUPPORTED = 3;
/** A standard-form XSAVE area for them: the 512-byte legacy region and the 64-byte header (CPUID 0DH.0 EBX/ECX). */
export const XSAVE_AREA_BYTES = 576;
const HEADER = 512;
/** XRSTOR's header: XSTATE_BV, XCOMP_BV and bytes 16-23, as int32 halves. */
const header = new Int32Array(6);

/** XSAVE/XRSTOR: #UD without CR4.OSXSAVE, #NM with CR0.TS, then #GP(0) unless the area is 64-byte aligned. */
function xsaveArea(c: Cpu, i: Insn): number {
  if (!(c.cr4 & CR4_OSXSAVE)) fault(UD);
  if (c.cr0 & CR0_TS) fault(NM);
  const lo = i.ea(c, i);
  if (lo & 63) faultErr(GP, 0);
  return lo;
}

/** The requested-feature bitmap: XCR0 AND the instruction mask EDX:EAX (XCR0 has no bit above 1 here). */
function rfbm(c: Cpu): number { return c.xcr0 & c.rlo[0]; }

/** Writes image bytes [from, to) (multiples of 8) to the area at lo:hi. */
function writeImage(c: Cpu, lo: number, hi: number, from: number, to: number): void {
  for (let k = from; k < to; k += 8) {
    const a = addrPlus(c, lo, hi, k);
    c.mmu.write64(a, c.tHi, imageDv.getInt32(k, true), imageDv.getInt32(k + 4, true));
  }
}

/**
 * XSAVE: each requested component into its place in the legacy region (x87:
 * bytes 0-23 and 32-159; SSE: MXCSR and MXCSR_MASK at 24-31 and the XMM
 * registers from 160), then XSTATE_BV read and written back with the
 * requested bits set: we report every component as in use (XINUSE = 1, which
 * the SDM allows for a component in its initial configuration too). Nothing
 * else of the header is written. Both pages are probed first.
 */
const xsave: Handler = (c, i) => {
  const lo = xsaveArea(c, i), hi = c.tHi;
  const rfb = rfbm(c);
  const bvAt = addrPlus(c, lo, hi, HEADER), bvHi = c.tHi;
  const bv = c.mmu.read32(bvAt, bvHi);
  c.mmu.probeWrite(lo, hi, XSAVE_AREA_BYTES);
  const len = buildImage(c, i.osz === 8);
  if (rfb & 1) { writeImage(c, lo, hi, 0, 24); writeImage(c, lo, hi, 32, X87_END); }
  if (rfb & 2) { writeImage(c, lo, hi, 24, 32); writeImage(c, lo, hi, X87_END, len); }
  c.mmu.write32(bvAt, bvHi, bv | rfb);
};

/**
 * XRSTOR, standard form: #GP(0) for the compacted form (XCOMP_BV[63]; no
 * XSAVEC here), header bytes 8-23 not zero, an XSTATE_BV bit XCR0 does not
 * enable, or (when SSE is requested) a reserved MXCSR bit; nothing changes
 * then. Each requested component is loaded when its XSTATE_BV bit is set and
 * put in its initial configuration otherwise; MXCSR is loaded whenever SSE
 * is requested (the standard form does so even when XSTATE_BV[1] = 0).
 */
const xrstor: Handler = (c, i) => {
  const lo = xsaveArea(c, i), hi = c.tHi;
  const rfb = rfbm(c);
  for (let k = 0; k < 3; k++) {
    const a = addrPlus(c, lo, hi, HEADER + 8 * k);
    header[2 * k] = c.mmu.read64(a, c.tHi); header[2 * k + 1] = c.tHi;
  }
  if (header[3] < 0) faultErr(GP, 0); // XCOMP_BV[63]: the compacted form
  if (header[1] !== 0 || (header[0] & ~c.xcr0) !== 0 || header[2] !== 0 || header[3] !== 0 || header[4] !== 0 || header[5] !== 0) faultErr(GP, 0);
  const len = X87_END + 16 * xmmCount(c);
  for (let k = 0; k < len; k += 8) {
    const a = addrPlus(c, lo, hi, k);
    const v = c.mmu.read64(a, c.tHi);
    imageDv.setInt32(k, v, true); imageDv.setInt32(k + 4, c.tHi, true);
  }
  const mxcsr = imageDv.getInt32(24, true);
  if ((rfb & 2) && (mxcsr & ~MXCSR_MASK)) faultErr(GP, 0);
  const bv = header[0];
  if (rfb & 1) { if (bv & 1) loadX87(c, i.osz === 8); else initX87(c); }
  if (rfb & 2) {
    c.mxcsr = mxcsr;
    if (bv & 2) loadXmm(c); else c.xmm.fill(0, 0, 4 * xmmCount(c));
  }
};

def('NP 0F AE/4.m', { name: 'xsave', bind: (i) => { if (i.osz === 8) i.name = 'xsave64'; return xsave; } });
def('NP 0F AE/5.m', { name: 'xrstor', bind: (i) => { if (i.osz === 8) i.name = 'xrstor64'; return xrstor; } });

def('NP 0F AE/0.m', { name: 'fxsave', bind: (i) => { if (i.osz === 8) i.name = 'fxsave64'; return fxsave; } });
def('NP 0F AE/1.m', { name: 'fxrstor', bind: (i) => { if (i.osz === 8) i.name = 'fxrstor64'; return fxrstor; } });

// LDMXCSR m32 / STMXCSR m32: SSE availability rules apply; reserved bits raise #GP(0).
def('NP 0F AE/2.m', {
  name: 'ldmxcsr',
  exec: (c, i) => {
    sseOk(c);
    const lo = i.ea(c, i);
    const v = c.mmu.read32(lo, c.tHi);
    if (v & ~MXCSR_MASK) faultErr(GP, 0);
    c.mxcsr = v;
  },
});
def('NP 0F AE/3.m', { name: 'stmxcsr', exec: (c, i) => { sseOk(c); const lo = i.ea(c, i); c.mmu.write32(lo, c.tHi, c.mxcsr); } });
