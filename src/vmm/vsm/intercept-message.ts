/**
 * Byte-exact x64 intercept messages (tlfs-vsm-facts §4.2-§4.6) built from a
 * plain "faulting context": the 40-byte intercept header every x64 intercept
 * payload starts with, the memory intercept message (GpaIntercept,
 * UnmappedGpa, UnacceptedGpa), and the RegisterIntercept and MsrIntercept
 * messages of the CR/MSR intercepts (cr-intercept.ts).
 *
 * Memory intercept length: the fact sheet (§4.5, from hvdef and Linux) ends
 * the message at 0x50, after InstructionBytes. The Windows header of the same
 * struct continues with DsSegment @0x50, SsSegment @0x60 and RAX, RCX, RDX,
 * RBX, RSP, RBP, RSI, RDI, R8-R15 @0x70..0xEF (the layout §4.6 gives the
 * exception intercept), and issue 5 asks for DS, SS and all GPRs. We send
 * that 0xF0-byte form by default (the first 0x50 bytes are the sheet's, so
 * readers of the short struct see the same bytes); `withRegisters: false`
 * builds the 0x50-byte form.
 *
 * Builders check every field and throw VsmError: a bad context is a VMM bug.
 */
import {
  HV_INTERCEPT_MAX_INSTRUCTION_BYTES, HV_SEGMENT_ATTR_RESERVED, HvCacheType, HvExecutionState, HvInterceptAccessType,
  HvInterceptHeader, HvMemoryAccessInfo, HvMemoryIntercept, HvMessageType, HvMsrInterceptMessage, HvRegisterInterceptMessage, HvSegmentRegister,
  HV_REGISTER_INTERCEPT_IS_MEMORY_OP,
} from '../../spec/tlfs.js';
import type { HvMessage } from '../../kvm/hyperv/message.js';
import { VsmError, u64, uint } from './errors.js';

/** HV_X64_SEGMENT_REGISTER: attributes in the TLFS layout (= our segment cache's VMX layout: type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15). */
export interface HvSegment { base: bigint; limit: number; selector: number; attributes: number }

/** ExecutionState (§4.4). */
export interface ExecutionState {
  cpl: number; cr0Pe: boolean; cr0Am: boolean; eferLma: boolean; debugActive: boolean; interruptionPending: boolean;
  /** The VTL that was executing. */
  vtl: number;
  enclaveMode: boolean; interruptShadow: boolean; virtualizationFaultActive: boolean;
}

/** Everything the 40-byte header carries (§4.4). */
export interface InterceptHeaderContext {
  vpIndex: number;
  /** Length of the intercepted instruction, 0..15 (4 bits). */
  instructionLength: number;
  /** CR8 (TPR), 0..15 (4 bits). */
  cr8: number;
  /** HvInterceptAccessType: 0 read, 1 write, 2 execute. */
  accessType: number;
  executionState: ExecutionState;
  cs: HvSegment;
  /** RIP of the intercepted instruction (for an execute fault: the address fetched). */
  rip: bigint;
  rflags: bigint;
}

/** MemoryAccessInfo (§4.5). */
export interface MemoryAccessInfo {
  gvaValid: boolean; gvaGpaValid: boolean; hypercallOutputPending: boolean; tlbLocked: boolean; supervisorShadowStack: boolean;
}

/** The 16 GPRs in the message's order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15). */
export interface InterceptGprs {
  rax: bigint; rcx: bigint; rdx: bigint; rbx: bigint; rsp: bigint; rbp: bigint; rsi: bigint; rdi: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint;
}
export const INTERCEPT_GPR_ORDER: readonly (keyof InterceptGprs)[] = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
];

export interface MemoryInterceptContext extends InterceptHeaderContext {
  /** HV_CACHE_TYPE of the GPA (§5.4). */
  cacheType: number;
  /** Bytes of the faulting instruction (≤ 16); none for execute faults. */
  instructionBytes: Uint8Array;
  memoryAccessInfo: MemoryAccessInfo;
  tprPriority: number;
  gva: bigint;
  gpa: bigint;
  ds: HvSegment;
  ss: HvSegment;
  gprs: InterceptGprs;
}

/** Offsets of the Windows-header extension after the sheet's 0x50 bytes (see the file comment). */
export const MemoryInterceptExtension = { Ds: 0x50, Ss: 0x60, Gprs: 0x70, Bytes: 0xf0 } as const;

const ACCESS_TYPES: readonly number[] = Object.values(HvInterceptAccessType);
const CACHE_TYPES: readonly number[] = Object.values(HvCacheType);

export function encodeExecutionState(s: ExecutionState): number {
  if (typeof s !== 'object' || s === null) throw new VsmError('the execution state is not an object');
  const E = HvExecutionState;
  return uint(s.cpl, 3, 'CPL') | (s.cr0Pe ? E.Cr0Pe : 0) | (s.cr0Am ? E.Cr0Am : 0) | (s.eferLma ? E.EferLma : 0)
    | (s.debugActive ? E.DebugActive : 0) | (s.interruptionPending ? E.InterruptionPending : 0)
    | (uint(s.vtl, E.VtlMask, 'VTL') << E.VtlShift) | (s.enclaveMode ? E.EnclaveMode : 0)
    | (s.interruptShadow ? E.InterruptShadow : 0) | (s.virtualizationFaultActive ? E.VirtualizationFaultActive : 0);
}

/** Writes an HV_X64_SEGMENT_REGISTER at `off`. */
export function writeSegment(dv: DataView, off: number, seg: HvSegment, what: string): void {
  if (typeof seg !== 'object' || seg === null) throw new VsmError(`segment ${what} is missing`);
  const attr = uint(seg.attributes, 0xffff, `${what}.attributes`);
  if (attr & HV_SEGMENT_ATTR_RESERVED) throw new VsmError(`${what}.attributes 0x${attr.toString(16)} sets the reserved bits 11:8`);
  dv.setBigUint64(off + HvSegmentRegister.Base, u64(seg.base, `${what}.base`), true);
  dv.setUint32(off + HvSegmentRegister.Limit, uint(seg.limit, 0xffffffff, `${what}.limit`), true);
  dv.setUint16(off + HvSegmentRegister.Selector, uint(seg.selector, 0xffff, `${what}.selector`), true);
  dv.setUint16(off + HvSegmentRegister.Attributes, attr, true);
}

/** Writes the 40-byte HV_X64_INTERCEPT_MESSAGE_HEADER at the start of `dv` (§4.4). */
export function writeInterceptHeader(dv: DataView, h: InterceptHeaderContext): void {
  if (typeof h !== 'object' || h === null) throw new VsmError('the intercept context is not an object');
  const H = HvInterceptHeader;
  if (!ACCESS_TYPES.includes(h.accessType)) throw new VsmError(`intercept access type ${String(h.accessType)} is not 0 (read), 1 (write) or 2 (execute)`);
  dv.setUint32(H.VpIndex, uint(h.vpIndex, 0xffffffff, 'VP index'), true);
  dv.setUint8(H.InstructionLengthCr8, uint(h.instructionLength, 15, 'instruction length') | (uint(h.cr8, 15, 'CR8') << 4));
  dv.setUint8(H.AccessType, h.accessType);
  dv.setUint16(H.ExecutionState, encodeExecutionState(h.executionState), true);
  writeSegment(dv, H.Cs, h.cs, 'CS');
  dv.setBigUint64(H.Rip, u64(h.rip, 'RIP'), true);
  dv.setBigUint64(H.Rflags, u64(h.rflags, 'RFLAGS'), true);
}

export function encodeInterceptHeader(h: InterceptHeaderContext): Uint8Array {
  const out = new Uint8Array(HvInterceptHeader.Bytes);
  writeInterceptHeader(new DataView(out.buffer), h);
  return out;
}

export function encodeMemoryAccessInfo(m: MemoryAccessInfo): number {
  if (typeof m !== 'object' || m === null) throw new VsmError('the memory access info is not an object');
  const I = HvMemoryAccessInfo;
  return (m.gvaValid ? I.GvaValid : 0) | (m.gvaGpaValid ? I.GvaGpaValid : 0) | (m.hypercallOutputPending ? I.HypercallOutputPending : 0)
    | (m.tlbLocked ? I.TlbLocked : 0) | (m.supervisorShadowStack ? I.SupervisorShadowStack : 0);
}

/** The memory intercept payload (§4.5): 0xF0 bytes with DS, SS and the GPRs, or the sheet's 0x50 bytes. */
export function encodeMemoryIntercept(c: MemoryInterceptContext, opts: { withRegisters?: boolean } = {}): Uint8Array {
  const withRegisters = opts.withRegisters ?? true;
  const out = new Uint8Array(withRegisters ? MemoryInterceptExtension.Bytes : HvMemoryIntercept.Bytes);
  const dv = new DataView(out.buffer);
  writeInterceptHeader(dv, c);
  const M = HvMemoryIntercept;
  if (!CACHE_TYPES.includes(c.cacheType)) throw new VsmError(`cache type ${String(c.cacheType)} is not an HV_CACHE_TYPE (0, 1, 4, 5, 6)`);
  const bytes = c.instructionBytes;
  if (!(bytes instanceof Uint8Array) || bytes.length > HV_INTERCEPT_MAX_INSTRUCTION_BYTES) {
    throw new VsmError(`instruction bytes must be a Uint8Array of at most ${HV_INTERCEPT_MAX_INSTRUCTION_BYTES} bytes`);
  }
  if (c.accessType === HvInterceptAccessType.Execute && bytes.length !== 0) {
    throw new VsmError('an execute intercept carries no instruction bytes (the instruction was never fetched)');
  }
  dv.setUint32(M.CacheType, c.cacheType, true);
  dv.setUint8(M.InstructionByteCount, bytes.length);
  dv.setUint8(M.MemoryAccessInfo, encodeMemoryAccessInfo(c.memoryAccessInfo));
  dv.setUint8(M.TprPriority, uint(c.tprPriority, 0xff, 'TPR priority'));
  dv.setBigUint64(M.Gva, u64(c.gva, 'GVA'), true);
  dv.setBigUint64(M.Gpa, u64(c.gpa, 'GPA'), true);
  out.set(bytes, M.InstructionBytes);
  if (withRegisters) {
    const X = MemoryInterceptExtension;
    writeSegment(dv, X.Ds, c.ds, 'DS');
    writeSegment(dv, X.Ss, c.ss, 'SS');
    if (typeof c.gprs !== 'object' || c.gprs === null) throw new VsmError('the GPRs are missing');
    INTERCEPT_GPR_ORDER.forEach((g, k) => dv.setBigUint64(X.Gprs + 8 * k, u64(c.gprs[g], g.toUpperCase()), true));
  }
  return out;
}

const MEMORY_MESSAGE_TYPES: readonly number[] = [HvMessageType.GpaIntercept, HvMessageType.UnmappedGpa, HvMessageType.UnacceptedGpa];

/**
 * The HV_MESSAGE for SINT0 of the higher VTL (or the assist-page slot):
 * GpaIntercept (0x80000001) for a VTL-protection violation. The origination
 * ID is the sender partition's ID (§4.2).
 */
export function memoryInterceptMessage(c: MemoryInterceptContext, originationId: bigint,
  opts: { type?: number; withRegisters?: boolean } = {}): HvMessage {
  const type = opts.type ?? HvMessageType.GpaIntercept;
  if (!MEMORY_MESSAGE_TYPES.includes(type)) throw new VsmError(`message type 0x${type.toString(16)} is not a memory intercept type`);
  return { type, payload: encodeMemoryIntercept(c, opts), originationId: u64(originationId, 'origination ID') };
}

/**
 * HvMessageTypeRegisterIntercept (0x80010006, §4.6): a write to the register
 * `registerName` (an HvRegisterName) whose source value, as the register's
 * HV_REGISTER_VALUE, is `accessInfo` (two u64s); IsMemoryOp when the source
 * operand was in memory.
 */
export function registerInterceptMessage(h: InterceptHeaderContext, registerName: number, accessInfo: readonly [bigint, bigint],
  isMemoryOp: boolean, originationId: bigint): HvMessage {
  const R = HvRegisterInterceptMessage;
  const out = new Uint8Array(R.Bytes), dv = new DataView(out.buffer);
  writeInterceptHeader(dv, h);
  dv.setUint8(R.Flags, isMemoryOp ? HV_REGISTER_INTERCEPT_IS_MEMORY_OP : 0);
  dv.setUint32(R.RegisterName, uint(registerName, 0xffffffff, 'register name'), true);
  dv.setBigUint64(R.AccessInfo, u64(accessInfo[0], 'access info'), true);
  dv.setBigUint64(R.AccessInfo + 8, u64(accessInfo[1], 'access info'), true);
  return { type: HvMessageType.RegisterIntercept, payload: out, originationId: u64(originationId, 'origination ID') };
}

/** HvMessageTypeMsrIntercept (0x80010001, §4.6): an RDMSR or WRMSR (the header's access type) of `msr`, with RDX and RAX. */
export function msrInterceptMessage(h: InterceptHeaderContext, msr: number, rdx: bigint, rax: bigint, originationId: bigint): HvMessage {
  const M = HvMsrInterceptMessage;
  const out = new Uint8Array(M.Bytes), dv = new DataView(out.buffer);
  writeInterceptHeader(dv, h);
  dv.setUint32(M.MsrNumber, uint(msr, 0xffffffff, 'MSR number'), true);
  dv.setBigUint64(M.Rdx, u64(rdx, 'RDX'), true);
  dv.setBigUint64(M.Rax, u64(rax, 'RAX'), true);
  return { type: HvMessageType.MsrIntercept, payload: out, originationId: u64(originationId, 'origination ID') };
}
