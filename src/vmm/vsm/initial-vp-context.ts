/**
 * HV_INITIAL_VP_CONTEXT (x64, 224 bytes; tlfs-vsm-facts §2.13), the register
 * state HvCallEnableVpVtl and HvCallStartVirtualProcessor (§2.14) start a
 * VP's VTL with: RIP, RSP, RFLAGS, CS..LDTR, IDTR, GDTR, EFER, CR0, CR3,
 * CR4, PAT. Everything else keeps the target Vcpu's (reset) values.
 *
 * Loading goes through vtl-state.ts's loadPrivate, so KVM_SET_REGS/SREGS's
 * checks apply; a context they refuse, one with reserved segment attribute
 * bits, or real mode for a VTL above 0 (§3.1) is INVALID_REGISTER_VALUE
 * (the status StartVirtualProcessor lists; the sheet gives none for the
 * real-mode rule) and the Vcpu is left unchanged.
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import { KvmError } from '../../kvm/errors.js';
import type { KvmDtable, KvmSegment } from '../../kvm/vcpu-regs.js';
import { HvInitialVpContext as C, HvStatus } from '../../spec/tlfs.js';
import { CR0_PE } from '../../x86/regs.js';
import { VsmError, uint } from './errors.js';
import { kvmSegmentFromHv, readHvSegment, readHvTable } from './segment.js';
import { loadPrivate, savePrivate, type VtlStateOptions } from './vtl-state.js';

export interface InitialVpContext {
  rip: bigint; rsp: bigint; rflags: bigint;
  cs: KvmSegment; ds: KvmSegment; es: KvmSegment; fs: KvmSegment; gs: KvmSegment; ss: KvmSegment; tr: KvmSegment; ldt: KvmSegment;
  idt: KvmDtable; gdt: KvmDtable;
  efer: bigint; cr0: bigint; cr3: bigint; cr4: bigint; pat: bigint;
}

const SEGMENTS = [['cs', C.Cs], ['ds', C.Ds], ['es', C.Es], ['fs', C.Fs], ['gs', C.Gs], ['ss', C.Ss], ['tr', C.Tr], ['ldt', C.Ldtr]] as const;

/** The 224 bytes at the start of `bytes`; null when a segment sets reserved attribute bits 11:8. */
export function decodeInitialVpContext(bytes: Uint8Array): InitialVpContext | null {
  if (!(bytes instanceof Uint8Array) || bytes.length < C.Bytes) throw new VsmError(`HV_INITIAL_VP_CONTEXT is ${C.Bytes} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, C.Bytes);
  const q = (off: number) => dv.getBigUint64(off, true);
  const ctx = {
    rip: q(C.Rip), rsp: q(C.Rsp), rflags: q(C.Rflags),
    idt: readHvTable(bytes, C.Idtr), gdt: readHvTable(bytes, C.Gdtr),
    efer: q(C.Efer), cr0: q(C.Cr0), cr3: q(C.Cr3), cr4: q(C.Cr4), pat: q(C.Pat),
  } as InitialVpContext;
  for (const [name, off] of SEGMENTS) {
    const s = readHvSegment(bytes, off);
    if (s === null) return null;
    ctx[name] = kvmSegmentFromHv(s);
  }
  return ctx;
}

/**
 * Starts `vcpu` (the Vcpu of VTL `vtl`) with the context in `bytes`: SUCCESS,
 * or INVALID_REGISTER_VALUE with the Vcpu unchanged.
 */
export function loadInitialVpContext(vcpu: Vcpu, bytes: Uint8Array, vtl: number, opts: VtlStateOptions): number {
  uint(vtl, 15, 'VTL');
  const ctx = decodeInitialVpContext(bytes);
  if (ctx === null) return HvStatus.INVALID_REGISTER_VALUE;
  if (vtl > 0 && (ctx.cr0 & BigInt(CR0_PE)) === 0n) return HvStatus.INVALID_REGISTER_VALUE;
  const state = savePrivate(vcpu, opts);
  state.rip = ctx.rip; state.rsp = ctx.rsp; state.rflags = ctx.rflags;
  state.sregs = {
    ...state.sregs, cs: ctx.cs, ds: ctx.ds, es: ctx.es, fs: ctx.fs, gs: ctx.gs, ss: ctx.ss, tr: ctx.tr, ldt: ctx.ldt,
    idt: ctx.idt, gdt: ctx.gdt, efer: ctx.efer, cr0: ctx.cr0, cr3: ctx.cr3, cr4: ctx.cr4,
  };
  state.msrs = { ...state.msrs, pat: ctx.pat };
  try {
    loadPrivate(vcpu, state, opts);
  } catch (e) {
    if (e instanceof KvmError || e instanceof VsmError) return HvStatus.INVALID_REGISTER_VALUE;
    throw e;
  }
  return HvStatus.SUCCESS;
}
