/**
 * Every HV_REGISTER_NAME Get/SetVpRegisters understands here (tlfs-vsm-facts
 * §3.7 and its list of other register names), with its value kind, where it
 * lives and who may access it, plus the access check both calls run per
 * element before touching a value (§2.15, §1.6):
 *
 * | Condition | Status |
 * |---|---|
 * | name not in the table (or not supported: isolation registers) | UNKNOWN_REGISTER_NAME (0x87; hvdef/openvmm; the sheet also allows INVALID_PARAMETER) |
 * | Set of a read-only register | INVALID_PARAMETER |
 * | a register that exists only for VTL ≥ 1 (VSM config, VINA, CR intercepts) with target VTL 0 | INVALID_PARAMETER |
 * | VsmVpSecureConfigVtlN with target VTL ≤ N (only a higher VTL configures VTL N) | ACCESS_DENIED |
 *
 * Value checks (reserved bits, write-once fields) come after, per register
 * (vsm-registers.ts for the VSM ones): INVALID_REGISTER_VALUE. The target
 * VTL itself is decoded first (input-vtl.ts). Write-only registers read as 0.
 */
import { HvRegisterName as N, HvStatus } from '../../spec/tlfs.js';
import type { RegisterKind } from './register-value.js';
import { uint } from './errors.js';

/**
 * Where one instance of the register lives:
 * - 'vtl': per VP per VTL (private state, §3.2, and per-VTL synthetic registers);
 * - 'vp': per VP, the same for all VTLs (shared state, §3.2);
 * - 'partition-vtl': per partition, one instance per VTL;
 * - 'partition': per partition, shared by all VTLs.
 */
export type RegisterScope = 'vtl' | 'vp' | 'partition-vtl' | 'partition';
export type RegisterAccess = 'rw' | 'ro' | 'wo';

export interface RegisterInfo {
  readonly name: string;
  readonly number: number;
  readonly kind: RegisterKind;
  readonly scope: RegisterScope;
  readonly access: RegisterAccess;
  /** The register exists only in VTLs ≥ 1 (target VTL 0 is INVALID_PARAMETER). */
  readonly higherVtlOnly?: boolean;
  /** VsmVpSecureConfigVtlN: the lower VTL N it configures (target VTL must be above it). */
  readonly configuresVtl?: number;
  /** Some fields are write-once (VsmPartitionConfig: EnableVtlProtection and the default mask, §3.7). */
  readonly writeOnce?: boolean;
}

const reg = (name: string, number: number, kind: RegisterKind, scope: RegisterScope, access: RegisterAccess,
  extra: Partial<RegisterInfo> = {}): RegisterInfo => ({ name, number, kind, scope, access, ...extra });
const seq = (prefix: string, first: number, count: number, f: (name: string, n: number, k: number) => RegisterInfo) =>
  Array.from({ length: count }, (_, k) => f(`${prefix}${k}`, first + k, k));

const GPR_NAMES = ['Rax', 'Rcx', 'Rdx', 'Rbx', 'Rsp', 'Rbp', 'Rsi', 'Rdi', 'R8', 'R9', 'R10', 'R11', 'R12', 'R13', 'R14', 'R15'];

export const REGISTERS: readonly RegisterInfo[] = [
  // interrupt / event state of the VP in that VTL
  reg('PendingInterruption', N.PendingInterruption, 'u64', 'vtl', 'rw'),
  reg('InterruptState', N.InterruptState, 'u64', 'vtl', 'rw'),
  reg('PendingEvent0', N.PendingEvent0, 'u128', 'vtl', 'rw'),
  reg('PendingEvent1', N.PendingEvent1, 'u128', 'vtl', 'rw'),
  // GPRs: RSP, RIP, RFLAGS private; the rest shared (§3.2)
  ...GPR_NAMES.map((g, k) => reg(g, N.Rax + k, 'u64', g === 'Rsp' ? 'vtl' : 'vp', 'rw')),
  reg('Rip', N.Rip, 'u64', 'vtl', 'rw'),
  reg('Rflags', N.Rflags, 'u64', 'vtl', 'rw'),
  ...seq('Xmm', N.Xmm0, 16, (name, n) => reg(name, n, 'u128', 'vp', 'rw')),
  // control registers
  reg('Cr0', N.Cr0, 'u64', 'vtl', 'rw'),
  reg('Cr2', N.Cr2, 'u64', 'vp', 'rw'),
  reg('Cr3', N.Cr3, 'u64', 'vtl', 'rw'),
  reg('Cr4', N.Cr4, 'u64', 'vtl', 'rw'),
  reg('Cr8', N.Cr8, 'u64', 'vtl', 'rw'),
  reg('Xfem', N.Xfem, 'u64', 'vp', 'rw'),
  // debug registers (DR6's side depends on VsmCapabilities.Dr6Shared: 'vtl' with Dr6Shared = 0, our default)
  ...seq('Dr', N.Dr0, 4, (name, n) => reg(name, n, 'u64', 'vp', 'rw')),
  reg('Dr6', N.Dr6, 'u64', 'vtl', 'rw'),
  reg('Dr7', N.Dr7, 'u64', 'vtl', 'rw'),
  // segments and tables
  ...(['Es', 'Cs', 'Ss', 'Ds', 'Fs', 'Gs', 'Ldtr', 'Tr'] as const).map((s, k) => reg(s, N.Es + k, 'segment', 'vtl', 'rw')),
  reg('Idtr', N.Idtr, 'table', 'vtl', 'rw'),
  reg('Gdtr', N.Gdtr, 'table', 'vtl', 'rw'),
  // MSR-backed architectural registers
  reg('Tsc', N.Tsc, 'u64', 'vtl', 'rw'),
  reg('Efer', N.Efer, 'u64', 'vtl', 'rw'),
  reg('KernelGsBase', N.KernelGsBase, 'u64', 'vtl', 'rw'),
  reg('ApicBase', N.ApicBase, 'u64', 'vtl', 'rw'),
  reg('Pat', N.Pat, 'u64', 'vtl', 'rw'),
  reg('SysenterCs', N.SysenterCs, 'u64', 'vtl', 'rw'),
  reg('SysenterEip', N.SysenterEip, 'u64', 'vtl', 'rw'),
  reg('SysenterEsp', N.SysenterEsp, 'u64', 'vtl', 'rw'),
  reg('Star', N.Star, 'u64', 'vtl', 'rw'),
  reg('Lstar', N.Lstar, 'u64', 'vtl', 'rw'),
  reg('Cstar', N.Cstar, 'u64', 'vtl', 'rw'),
  reg('Sfmask', N.Sfmask, 'u64', 'vtl', 'rw'),
  reg('TscAux', N.TscAux, 'u64', 'vtl', 'rw'),
  // synthetic MSRs (§3.2 says which are private)
  reg('Hypercall', N.Hypercall, 'u64', 'partition-vtl', 'rw'),
  reg('GuestOsId', N.GuestOsId, 'u64', 'partition-vtl', 'rw'),
  reg('VpIndex', N.VpIndex, 'u64', 'vp', 'ro'),
  reg('TimeRefCount', N.TimeRefCount, 'u64', 'partition', 'ro'),
  reg('VpAssistPage', N.VpAssistPage, 'u64', 'vtl', 'rw'),
  reg('ReferenceTsc', N.ReferenceTsc, 'u64', 'partition-vtl', 'rw'),
  ...seq('Sint', N.Sint0, 16, (name, n) => reg(name, n, 'u64', 'vtl', 'rw')),
  reg('Scontrol', N.Scontrol, 'u64', 'vtl', 'rw'),
  reg('Sversion', N.Sversion, 'u64', 'vtl', 'ro'),
  reg('Sifp', N.Sifp, 'u64', 'vtl', 'rw'),
  reg('Sipp', N.Sipp, 'u64', 'vtl', 'rw'),
  reg('Eom', N.Eom, 'u64', 'vtl', 'wo'),
  reg('Sirbp', N.Sirbp, 'u64', 'vtl', 'rw'),
  ...seq('Stimer', N.Stimer0Config, 8, (_n, n, k) => reg(`Stimer${k >> 1}${k & 1 ? 'Count' : 'Config'}`, n, 'u64', 'vtl', 'rw')),
  // VSM registers (§3.7)
  reg('VsmCodePageOffsets', N.VsmCodePageOffsets, 'u64', 'partition-vtl', 'ro'),
  reg('VsmVpStatus', N.VsmVpStatus, 'u64', 'vp', 'ro'),
  reg('VsmPartitionStatus', N.VsmPartitionStatus, 'u64', 'partition', 'ro'),
  reg('VsmVina', N.VsmVina, 'u64', 'vtl', 'rw', { higherVtlOnly: true }),
  reg('VsmCapabilities', N.VsmCapabilities, 'u64', 'partition', 'ro'),
  reg('VsmPartitionConfig', N.VsmPartitionConfig, 'u64', 'partition-vtl', 'rw', { higherVtlOnly: true, writeOnce: true }),
  ...seq('VsmVpSecureConfigVtl', N.VsmVpSecureConfigVtl0, 15, (name, n, k) =>
    reg(name, n, 'u64', 'vtl', 'rw', { configuresVtl: k })),
  // The target VTL is the one the VP waits to resume (§3.9), a lower VTL than the writer's (HV_INPUT_VTL), so VTL0 has one.
  reg('VsmVpWaitForTlbLock', N.VsmVpWaitForTlbLock, 'u64', 'vtl', 'wo'),
  reg('CrInterceptControl', N.CrInterceptControl, 'u64', 'vtl', 'rw', { higherVtlOnly: true }),
  reg('CrInterceptCr0Mask', N.CrInterceptCr0Mask, 'u64', 'vtl', 'rw', { higherVtlOnly: true }),
  reg('CrInterceptCr4Mask', N.CrInterceptCr4Mask, 'u64', 'vtl', 'rw', { higherVtlOnly: true }),
  reg('CrInterceptIa32MiscEnableMask', N.CrInterceptIa32MiscEnableMask, 'u64', 'vtl', 'rw', { higherVtlOnly: true }),
];

const BY_NUMBER = new Map(REGISTERS.map((r) => [r.number, r]));

/** The register named `number`, or undefined (GuestVsmPartitionConfig and IsolationCapabilities are isolation-only: unknown here). */
export function registerInfo(number: number): RegisterInfo | undefined { return BY_NUMBER.get(number); }

/** The access check of the table above; SUCCESS or the status for this element. */
export function checkRegisterAccess(number: number, op: 'get' | 'set', targetVtl: number): number {
  uint(number, 0xffffffff, 'register name');
  uint(targetVtl, 15, 'target VTL');
  const r = BY_NUMBER.get(number);
  if (r === undefined) return HvStatus.UNKNOWN_REGISTER_NAME;
  if (op === 'set' && r.access === 'ro') return HvStatus.INVALID_PARAMETER;
  if (r.higherVtlOnly && targetVtl === 0) return HvStatus.INVALID_PARAMETER;
  if (r.configuresVtl !== undefined && targetVtl <= r.configuresVtl) return HvStatus.ACCESS_DENIED;
  return HvStatus.SUCCESS;
}
