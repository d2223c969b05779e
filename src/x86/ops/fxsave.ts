/**
 * x87/SSE state save and restore (SDM vol. 2 FXSAVE, FXRSTOR, LDMXCSR, STMXCSR;
 * the image layouts are FXSAVE's "Layout of FXSAVE and FXRSTOR Memory Region" tables).
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
import { CR0_EM, CR0_TS, GP, NM } from '../regs.js';
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

/** Loads state from `image` as FXRSTOR (rexW: FXRSTOR64) does, after its checks. */
function loadImage(c: Cpu, rexW: boolean): void {
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
  c.mxcsr = imageDv.getInt32(24, true);
  for (let k = 0; k < 4 * xmmCount(c); k++) c.xmm[k] = imageDv.getInt32(X87_END + 4 * k, true);
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
