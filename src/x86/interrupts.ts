/**
 * Exception and interrupt delivery through the IVT/IDT in every mode
 * (SDM vol. 3 ch. 6): real mode, protected mode (32-bit gates, stack switch
 * through the TSS), long mode (64-bit gates, IST, stack alignment), plus the
 * double-fault rules and triple fault as a shutdown reported to the owner.
 */
import { CpuRunState, type Cpu } from './cpu.js';
import { CpuFault, faultErr } from './fault.js';
import { materializeFlags } from './flags.js';
import { attrDpl, attrFromDescHigh } from './segment-cache.js';
import { loadCodeSegment, loadStackForCpl, readDescriptor, readTss32, readTss64 } from './segments.js';
import {
  AC, CR0_PE, CS, DF_, GP, IF, NP, NT, RF, RSP, SS, TF, VM, PF_,
} from './regs.js';

export const enum EventKind { Exception = 0, External = 1, Nmi = 2, Software = 3, Int3 = 4 }

const CONTRIBUTORY = new Set([0, 10, 11, 12, 13]);

/** SDM table 6-5: does a fault while delivering `first` turn into #DF? */
function isDoubleFault(first: number, second: number): boolean {
  if (first === PF_) return second === PF_ || CONTRIBUTORY.has(second);
  if (CONTRIBUTORY.has(first)) return CONTRIBUTORY.has(second);
  return false;
}

const tmp = new Int32Array(2);

export function deliverEvent(c: Cpu, kind: EventKind, vector: number, hasErr: boolean, err: number): void {
  // Exceptions and software interrupts the owner intercepts are not delivered (RIP as the event left it).
  if ((kind === EventKind.Exception || kind === EventKind.Int3 || kind === EventKind.Software) &&
    c.exceptionIntercept !== null && c.deliveryDepth === 0 && c.exceptionIntercept(vector, err)) {
    c.requestStop();
    return;
  }
  if (c.onDeliver !== null) c.onDeliver(kind, vector, hasErr, err);
  try {
    c.deliveryDepth++;
    deliver(c, kind, vector, hasErr, err);
    c.deliveryDepth--;
    // NMIs are blocked from a successful delivery until the next IRET (a delivery that faulted or was abandoned blocks nothing).
    if (kind === EventKind.Nmi) c.nmiBlocked = true;
    c.runState = CpuRunState.Running;
  } catch (e) {
    c.deliveryDepth--;
    if (!(e instanceof CpuFault)) throw e;
    // A fault while delivering INT n / INT3 is reported at that instruction.
    if ((kind === EventKind.Software || kind === EventKind.Int3) && c.cur !== null) { c.ripLo = c.cur.lo; c.ripHi = c.cur.hi; }
    if (kind === EventKind.Exception && vector === DF_) {
      c.runState = CpuRunState.Shutdown;
      c.host.shutdown(`triple fault (exception ${e.vector} while delivering a double fault)`);
      return;
    }
    if (c.deliveryDepth > 4) {
      c.runState = CpuRunState.Shutdown;
      c.host.shutdown('triple fault (nested exception delivery)');
      return;
    }
    if (kind === EventKind.Exception && isDoubleFault(vector, e.vector)) {
      deliverEvent(c, EventKind.Exception, DF_, true, 0);
    } else {
      deliverEvent(c, EventKind.Exception, e.vector, e.hasError, e.errorCode);
    }
  }
}

/** Error code for a fault on an IDT entry (SDM 6.13): index << 3 | IDT bit | EXT. */
function idtErr(vector: number, kind: EventKind): number {
  return (vector << 3) | 2 | (kind === EventKind.External || kind === EventKind.Nmi ? 1 : 0);
}

function deliver(c: Cpu, kind: EventKind, vector: number, hasErr: boolean, err: number): void {
  const flags = materializeFlags(c);
  if (!(c.cr0 & CR0_PE)) { deliverReal(c, vector, flags); return; }
  if (c.longMode) deliverLong(c, kind, vector, hasErr, err, flags);
  else deliverProtected(c, kind, vector, hasErr, err, flags);
}

function deliverReal(c: Cpu, vector: number, flags: number): void {
  if (vector * 4 + 3 > c.idtrLimit) faultErr(GP, 0);
  const ent = c.mmu.sysRead32((c.idtrBaseLo + vector * 4) | 0, 0);
  push16(c, flags);
  push16(c, c.segSel[CS]);
  push16(c, c.ripLo);
  c.flags &= ~(IF | TF | AC | RF);
  c.loadRealSegment(CS, ent >>> 16);
  c.ripLo = ent & 0xffff; c.ripHi = 0;
  c.updateMode();
}

function push16(c: Cpu, v: number): void {
  const sp = (c.rlo[RSP] - 2) & 0xffff;
  c.mmu.write16((c.segBaseLo[SS] + sp) | 0, 0, v & 0xffff);
  c.rlo[RSP] = (c.rlo[RSP] & ~0xffff) | sp;
}

function deliverLong(c: Cpu, kind: EventKind, vector: number, hasErr: boolean, err: number, flags: number): void {
  const off = vector * 16;
  if (off + 15 > c.idtrLimit) faultErr(GP, idtErr(vector, kind));
  const s = (c.idtrBaseLo >>> 0) + off;
  const lo = s | 0, hi = (c.idtrBaseHi + (s > 0xffffffff ? 1 : 0)) | 0;
  const w0 = c.mmu.sysRead32(lo, hi), w1 = c.mmu.sysRead32((lo + 4) | 0, hi);
  const w2 = c.mmu.sysRead32((lo + 8) | 0, hi);
  const type = (w1 >>> 8) & 0x1f; // S bit included: must be a system 64-bit gate
  if (type !== 0xe && type !== 0xf) faultErr(GP, idtErr(vector, kind));
  const gateDpl = (w1 >>> 13) & 3;
  if ((kind === EventKind.Software || kind === EventKind.Int3) && gateDpl < c.cpl) faultErr(GP, idtErr(vector, kind));
  if (!(w1 & 0x8000)) faultErr(NP, idtErr(vector, kind));
  const sel = w0 >>> 16;
  const targetLo = (w0 & 0xffff) | (w1 & 0xffff0000);
  const targetHi = w2;
  const ist = w1 & 7;
  // Target code segment privilege.
  if ((sel & ~3) === 0) faultErr(GP, kind === EventKind.External ? 1 : 0);
  readDescriptor(c, sel, tmp);
  const csAttr = attrFromDescHigh(tmp[1]);
  const newCpl = (csAttr & 4) ? c.cpl : attrDpl(csAttr);
  if (newCpl > c.cpl) faultErr(GP, sel & 0xfffc);
  const oldSs = c.segSel[SS], oldRspLo = c.rlo[RSP], oldRspHi = c.rhi[RSP];
  const oldCs = c.segSel[CS];
  let rspLo: number, rspHi: number;
  if (ist !== 0) { rspLo = readTss64(c, 0x1c + ist * 8); rspHi = c.tHi; }
  else if (newCpl !== c.cpl) { rspLo = readTss64(c, 4 + newCpl * 8); rspHi = c.tHi; }
  else { rspLo = oldRspLo; rspHi = oldRspHi; }
  rspLo &= ~0xf;
  // Build the frame: SS, RSP, RFLAGS, CS, RIP, [error code].
  const frame = [oldSs, 0, oldRspLo, oldRspHi, flags, 0, oldCs, 0, c.ripLo, c.ripHi];
  if (hasErr) frame.push(err, 0);
  const n = frame.length / 2;
  // Compute the new stack pointer and write downward; writes use the new privilege.
  const savedCpl = c.cpl;
  c.cpl = newCpl;
  try {
    let pLo = rspLo, pHi = rspHi;
    for (let k = 0; k < n; k++) {
      const t = (pLo >>> 0) - 8;
      pHi = (pHi + (t < 0 ? -1 : 0)) | 0; pLo = t | 0;
      if (((pHi << 16) >> 16) !== pHi) faultErr(12, 0);
      c.mmu.write64(pLo, pHi, frame[2 * k], frame[2 * k + 1]);
    }
    rspLo = pLo; rspHi = pHi;
  } catch (e) {
    c.cpl = savedCpl;
    throw e;
  }
  c.cpl = savedCpl;
  loadCodeSegment(c, sel, newCpl);
  if (newCpl !== savedCpl || ist !== 0) {
    if (newCpl !== savedCpl) loadStackForCpl(c, newCpl, newCpl);
  }
  c.rlo[RSP] = rspLo; c.rhi[RSP] = rspHi;
  c.ripLo = targetLo; c.ripHi = targetHi;
  c.flags &= ~(TF | NT | RF | VM);
  if (type === 0xe) c.flags &= ~IF;
  }

function deliverProtected(c: Cpu, kind: EventKind, vector: number, hasErr: boolean, err: number, flags: number): void {
  const off = vector * 8;
  if (off + 7 > c.idtrLimit) faultErr(GP, idtErr(vector, kind));
  const w0 = c.mmu.sysRead32((c.idtrBaseLo + off) | 0, 0);
  const w1 = c.mmu.sysRead32((c.idtrBaseLo + off + 4) | 0, 0);
  const type = (w1 >>> 8) & 0x1f;
  const is32 = type === 0xe || type === 0xf;
  if (!is32 && type !== 0x6 && type !== 0x7) faultErr(GP, idtErr(vector, kind)); // task gates unsupported
  const gateDpl = (w1 >>> 13) & 3;
  if ((kind === EventKind.Software || kind === EventKind.Int3) && gateDpl < c.cpl) faultErr(GP, idtErr(vector, kind));
  if (!(w1 & 0x8000)) faultErr(NP, idtErr(vector, kind));
  const sel = w0 >>> 16;
  const target = is32 ? ((w0 & 0xffff) | (w1 & 0xffff0000)) : (w0 & 0xffff);
  if ((sel & ~3) === 0) faultErr(GP, 0);
  readDescriptor(c, sel, tmp);
  const csAttr = attrFromDescHigh(tmp[1]);
  const newCpl = (csAttr & 4) ? c.cpl : attrDpl(csAttr);
  if (newCpl > c.cpl) faultErr(GP, sel & 0xfffc);
  const size = is32 ? 4 : 2;
  const oldSs = c.segSel[SS], oldEsp = c.rlo[RSP], oldCs = c.segSel[CS];
  const frame: number[] = [];
  if (newCpl !== c.cpl) frame.push(oldSs, oldEsp);
  frame.push(flags, oldCs, c.ripLo);
  if (hasErr) frame.push(err);
  const savedCpl = c.cpl;
  // The old stack, restored if pushing the frame fails (the event then never happened).
  const ss = [c.segSel[SS], c.segBaseLo[SS], c.segLimit[SS], c.segAttr[SS], c.rlo[RSP]];
  if (newCpl !== c.cpl) {
    const esp0 = readTss32(c, 4 + newCpl * 8);
    const ss0 = readTss32(c, 8 + newCpl * 8) & 0xffff;
    loadStackForCpl(c, ss0, newCpl);
    c.rlo[RSP] = esp0;
  }
  c.cpl = newCpl;
  try {
    const big = (c.segAttr[SS] & (1 << 14)) !== 0;
    let sp = c.rlo[RSP];
    for (const v of frame) {
      sp = big ? (sp - size) | 0 : (sp & ~0xffff) | ((sp - size) & 0xffff);
      const la = (c.segBaseLo[SS] + (big ? sp : sp & 0xffff)) | 0;
      if (size === 4) c.mmu.write32(la, 0, v); else c.mmu.write16(la, 0, v & 0xffff);
    }
    c.rlo[RSP] = sp;
  } catch (e) {
    c.cpl = savedCpl;
    [c.segSel[SS], c.segBaseLo[SS], c.segLimit[SS], c.segAttr[SS], c.rlo[RSP]] = ss;
    throw e;
  }
  loadCodeSegment(c, sel, newCpl);
  c.ripLo = target; c.ripHi = 0;
  c.flags &= ~(TF | NT | RF | VM);
  if ((type & 1) === 0) c.flags &= ~IF;
  }
