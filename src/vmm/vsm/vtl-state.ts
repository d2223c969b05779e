/**
 * VTL-private versus shared virtual-processor state on x64
 * (tlfs-vsm-facts §3.2, TLFS vsm.md "Virtual Processor State Isolation"),
 * as a table, and the three operations a VTL switch needs on the kvm Vcpus
 * that stand for one VP's VTLs (DESIGN §1: each (VP, VTL) is its own Vcpu):
 *
 * - copyShared(from, to): the shared registers follow the VP into the VTL
 *   it enters. This is all a VTL switch must copy: private state already
 *   lives apart, in each VTL's own Vcpu.
 * - savePrivate(vcpu) / loadPrivate(vcpu, state): the private registers as
 *   one value, for EnableVpVtl's initial context, Get/SetVpRegisters on
 *   another VTL, snapshots and tests.
 *
 * Everything goes through the kvm vCPU API, named by each row's mechanism:
 * KVM_GET/SET_REGS, _SREGS (CR2 too: with an unchanged paging context it
 * does not flush), _FPU (x87, MXCSR, XMM), _DEBUGREGS, _XCRS and _MSRS (the
 * private MSR record of cpu-state-adapter.ts). Rows whose mechanism is
 * 'per-vcpu' or 'per-partition' are private or shared by construction and
 * are never copied; 'not-modelled' rows name state our CPU does not have.
 */
import type { Vcpu } from '../../kvm/vcpu.js';
import {
  KVM_COPY_STATE_CR2, KVM_COPY_STATE_DB, KVM_COPY_STATE_DR6, KVM_COPY_STATE_FPU, KVM_COPY_STATE_GPRS, KVM_COPY_STATE_XCR0,
  type KvmCopyState,
} from '../../kvm/vcpu-copy.js';
import type { KvmSregs } from '../../kvm/vcpu-regs.js';
import { HvMsr, HvRegisterName } from '../../spec/tlfs.js';
import {
  MSR_CSTAR, MSR_EFER, MSR_FMASK, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT, MSR_STAR,
  MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, MSR_TSC, MSR_TSC_AUX,
} from '../../x86/regs.js';
import { checkPrivateMsrs, readPrivateMsrs, writePrivateMsrs, type PrivateMsrs } from './cpu-state-adapter.js';
import { VsmError, u64 } from './errors.js';

/** Whose the state is: one copy per VTL, one copy per VP, or private unless VsmCapabilities.Dr6Shared. */
export type VtlStateScope = 'private' | 'shared' | 'dr6';

/** How the VMM reaches it (see the file comment). */
export type VtlStateMechanism = 'regs' | 'sregs' | 'fpu' | 'debugregs' | 'xcrs' | 'msrs' | 'per-vcpu' | 'per-partition' | 'not-modelled';

export interface VtlStateItem {
  readonly name: string;
  readonly category: 'gpr' | 'control' | 'debug' | 'segment' | 'msr' | 'apic' | 'fpu' | 'synthetic-msr' | 'overlay';
  readonly scope: VtlStateScope;
  readonly mechanism: VtlStateMechanism;
  /** HV_REGISTER_NAME where §3.7 gives one. */
  readonly hvRegister?: number;
  /** MSR number, for MSRs. */
  readonly msr?: number;
}

const item = (name: string, category: VtlStateItem['category'], scope: VtlStateScope, mechanism: VtlStateMechanism,
  extra: { hvRegister?: number; msr?: number } = {}): VtlStateItem => ({ name, category, scope, mechanism, ...extra });

const R = HvRegisterName;
const SHARED_GPRS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
const GPR_REGISTER: Record<string, number> = {
  rax: R.Rax, rbx: R.Rbx, rcx: R.Rcx, rdx: R.Rdx, rsi: R.Rsi, rdi: R.Rdi, rbp: R.Rbp, r8: R.R8, r9: R.R9,
  r10: R.R10, r11: R.R11, r12: R.R12, r13: R.R13, r14: R.R14, r15: R.R15,
};
const PRIVATE_SYNTHETIC = [
  ['HYPERCALL', HvMsr.HYPERCALL], ['GUEST_OS_ID', HvMsr.GUEST_OS_ID], ['REFERENCE_TSC', HvMsr.REFERENCE_TSC],
  ['APIC_FREQUENCY', HvMsr.APIC_FREQUENCY], ['EOI', HvMsr.EOI], ['ICR', HvMsr.ICR], ['TPR', HvMsr.TPR],
  ['VP_ASSIST_PAGE', HvMsr.VP_ASSIST_PAGE], ['NPIEP_CONFIG', undefined], ['SIRBP', HvMsr.SIRBP], ['SCONTROL', HvMsr.SCONTROL],
  ['SVERSION', HvMsr.SVERSION], ['SIEFP', HvMsr.SIEFP], ['SIMP', HvMsr.SIMP], ['EOM', HvMsr.EOM],
  ...Array.from({ length: 16 }, (_, n) => [`SINT${n}`, HvMsr.SINT0 + n] as const),
  ...Array.from({ length: 4 }, (_, n) => [[`STIMER${n}_CONFIG`, HvMsr.STIMER0_CONFIG + 2 * n], [`STIMER${n}_COUNT`, HvMsr.STIMER0_COUNT + 2 * n]] as const).flat(),
] as const;
const SHARED_SYNTHETIC = [
  ['TSC_FREQUENCY', HvMsr.TSC_FREQUENCY], ['VP_INDEX', HvMsr.VP_INDEX], ['VP_RUNTIME', HvMsr.VP_RUNTIME], ['RESET', HvMsr.RESET],
  ['TIME_REF_COUNT', HvMsr.TIME_REF_COUNT], ['GUEST_IDLE', HvMsr.GUEST_IDLE], ['DEBUG_DEVICE_OPTIONS', undefined],
] as const;

/** tlfs-vsm-facts §3.2, row by row. */
export const VTL_STATE: readonly VtlStateItem[] = [
  // GPRs
  item('rsp', 'gpr', 'private', 'regs', { hvRegister: R.Rsp }),
  item('rip', 'gpr', 'private', 'regs', { hvRegister: R.Rip }),
  item('rflags', 'gpr', 'private', 'regs', { hvRegister: R.Rflags }),
  ...SHARED_GPRS.map((g) => item(g, 'gpr', 'shared', 'regs', { hvRegister: GPR_REGISTER[g] })),
  // control registers
  item('cr0', 'control', 'private', 'sregs', { hvRegister: R.Cr0 }),
  item('cr3', 'control', 'private', 'sregs', { hvRegister: R.Cr3 }),
  item('cr4', 'control', 'private', 'sregs', { hvRegister: R.Cr4 }),
  item('cr8', 'control', 'private', 'sregs', { hvRegister: R.Cr8 }), // the TPR of this VTL's own local APIC
  item('cr2', 'control', 'shared', 'sregs', { hvRegister: R.Cr2 }),
  item('xcr0', 'control', 'shared', 'xcrs', { hvRegister: R.Xfem }),
  // debug registers
  item('dr7', 'debug', 'private', 'debugregs', { hvRegister: R.Dr7 }),
  item('dr6', 'debug', 'dr6', 'debugregs', { hvRegister: R.Dr6 }),
  ...[0, 1, 2, 3].map((k) => item(`dr${k}`, 'debug', 'shared', 'debugregs', { hvRegister: R.Dr0 + k })),
  // descriptor tables and segments
  item('idtr', 'segment', 'private', 'sregs', { hvRegister: R.Idtr }),
  item('gdtr', 'segment', 'private', 'sregs', { hvRegister: R.Gdtr }),
  ...(['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldtr'] as const).map((s) =>
    item(s, 'segment', 'private', 'sregs', { hvRegister: ({ cs: R.Cs, ds: R.Ds, es: R.Es, fs: R.Fs, gs: R.Gs, ss: R.Ss, tr: R.Tr, ldtr: R.Ldtr })[s] })),
  // architectural MSRs
  item('SYSENTER_CS', 'msr', 'private', 'msrs', { msr: MSR_SYSENTER_CS, hvRegister: R.SysenterCs }),
  item('SYSENTER_ESP', 'msr', 'private', 'msrs', { msr: MSR_SYSENTER_ESP, hvRegister: R.SysenterEsp }),
  item('SYSENTER_EIP', 'msr', 'private', 'msrs', { msr: MSR_SYSENTER_EIP, hvRegister: R.SysenterEip }),
  item('STAR', 'msr', 'private', 'msrs', { msr: MSR_STAR, hvRegister: R.Star }),
  item('LSTAR', 'msr', 'private', 'msrs', { msr: MSR_LSTAR, hvRegister: R.Lstar }),
  item('CSTAR', 'msr', 'private', 'msrs', { msr: MSR_CSTAR, hvRegister: R.Cstar }),
  item('SFMASK', 'msr', 'private', 'msrs', { msr: MSR_FMASK, hvRegister: R.Sfmask }),
  item('EFER', 'msr', 'private', 'sregs', { msr: MSR_EFER, hvRegister: R.Efer }),
  item('PAT', 'msr', 'private', 'msrs', { msr: MSR_PAT, hvRegister: R.Pat }),
  item('KERNEL_GS_BASE', 'msr', 'private', 'msrs', { msr: MSR_KERNEL_GS_BASE, hvRegister: R.KernelGsBase }),
  item('FS.BASE', 'msr', 'private', 'sregs', { msr: MSR_FS_BASE }),
  item('GS.BASE', 'msr', 'private', 'sregs', { msr: MSR_GS_BASE }),
  item('TSC_AUX', 'msr', 'private', 'msrs', { msr: MSR_TSC_AUX, hvRegister: R.TscAux }),
  item('TSC', 'msr', 'private', 'per-vcpu', { msr: MSR_TSC, hvRegister: R.Tsc }), // each Vcpu keeps its own TSC offset
  item('MTRRs', 'msr', 'shared', 'not-modelled'),
  item('MCG_CAP', 'msr', 'shared', 'not-modelled'),
  item('MCG_STATUS', 'msr', 'shared', 'not-modelled'),
  // local APIC: a whole instance per VTL, which each Vcpu has
  item('local APIC', 'apic', 'private', 'per-vcpu', { hvRegister: R.ApicBase }),
  // FP / vector state
  item('x87', 'fpu', 'shared', 'fpu'),
  item('mxcsr', 'fpu', 'shared', 'fpu'),
  ...Array.from({ length: 16 }, (_, k) => item(`xmm${k}`, 'fpu', 'shared', 'fpu', { hvRegister: R.Xmm0 + k })),
  item('AVX', 'fpu', 'shared', 'not-modelled'),
  // synthetic MSRs: each VTL's Vm has its own HvPartition and each Vcpu its own HvVp
  ...PRIVATE_SYNTHETIC.map(([n, msr]) => item(n, 'synthetic-msr', 'private', 'per-vcpu', msr === undefined ? {} : { msr })),
  ...SHARED_SYNTHETIC.map(([n, msr]) => item(n, 'synthetic-msr', 'shared', 'per-partition', msr === undefined ? {} : { msr })),
  // overlay pages
  item('hypercall page', 'overlay', 'private', 'per-vcpu'),
  item('SIM/SIEF pages', 'overlay', 'private', 'per-vcpu'),
  item('VP assist page', 'overlay', 'private', 'per-vcpu'),
];

/** Options every operation takes: VsmCapabilities.Dr6Shared decides DR6's side (§3.2). */
export interface VtlStateOptions { readonly dr6Shared: boolean }

/** The private registers of one VTL of one VP that live in CPU registers (the 'regs', 'sregs', 'debugregs' and 'msrs' rows). */
export interface VtlPrivateState {
  rip: bigint; rsp: bigint; rflags: bigint;
  /** Segments, descriptor tables, CR0/CR3/CR4/CR8, EFER (FS/GS base are the segment bases), APIC base. */
  sregs: Omit<KvmSregs, 'cr2'>;
  msrs: PrivateMsrs;
  dr7: bigint;
  /** Only when DR6 is private (Dr6Shared = 0). */
  dr6?: bigint;
}

export function savePrivate(vcpu: Vcpu, opts: VtlStateOptions): VtlPrivateState {
  const r = vcpu.getRegs();
  const { cr2: _cr2, ...sregs } = vcpu.getSregs();
  const d = vcpu.getDebugRegs();
  const s: VtlPrivateState = { rip: r.rip, rsp: r.rsp, rflags: r.rflags, sregs, msrs: readPrivateMsrs(vcpu), dr7: d.dr7 };
  if (!opts.dr6Shared) s.dr6 = d.dr6;
  return s;
}

/** DR7 (and DR6 when private) from `state`; DR0-DR3 (and a shared DR6) stay. */
function loadDebug(vcpu: Vcpu, dr7: bigint, dr6: bigint | undefined): void {
  const d = vcpu.getDebugRegs();
  vcpu.setDebugRegs({ ...d, dr7, dr6: dr6 ?? d.dr6 });
}

/**
 * Loads a VTL's private registers into its Vcpu; shared registers (and CR2)
 * keep their values. All or nothing: a value KVM_SET_REGS/SREGS/DEBUGREGS or
 * checkPrivateMsrs rejects throws (KvmError or VsmError) with the Vcpu
 * unchanged. setSregs flushes the Vcpu's TLB exactly when the paging context
 * (CR0, CR3, CR4, EFER) changes, as loading CR3/CR0/CR4 would.
 */
export function loadPrivate(vcpu: Vcpu, state: VtlPrivateState, opts: VtlStateOptions): void {
  if (typeof state !== 'object' || state === null) throw new VsmError('the private VTL state is not an object');
  checkPrivateMsrs(state.msrs);
  u64(state.dr7, 'DR7');
  if (!opts.dr6Shared && state.dr6 === undefined) throw new VsmError('DR6 is private (Dr6Shared = 0) but the state has none');
  const before = savePrivate(vcpu, opts);
  const cr2 = vcpu.getSregs().cr2;
  try {
    vcpu.setSregs({ ...state.sregs, cr2 });
    vcpu.setRegs({ ...vcpu.getRegs(), rip: state.rip, rsp: state.rsp, rflags: state.rflags });
    loadDebug(vcpu, state.dr7, opts.dr6Shared ? undefined : state.dr6);
    writePrivateMsrs(vcpu, state.msrs);
  } catch (e) {
    // Put back what was there (those values were accepted before, so this cannot fail).
    vcpu.setSregs({ ...before.sregs, cr2 });
    vcpu.setRegs({ ...vcpu.getRegs(), rip: before.rip, rsp: before.rsp, rflags: before.rflags });
    loadDebug(vcpu, before.dr7, before.dr6);
    writePrivateMsrs(vcpu, before.msrs);
    throw e;
  }
}

/** kvm's GPR numbering (RAX 0 ... R15 15) of the shared GPRs. */
const GPR_NUMBER: Record<(typeof SHARED_GPRS)[number], number> = {
  rax: 0, rcx: 1, rdx: 2, rbx: 3, rbp: 5, rsi: 6, rdi: 7, r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15,
};
const COPY_SHARED: KvmCopyState = {
  classes: KVM_COPY_STATE_GPRS | KVM_COPY_STATE_FPU | KVM_COPY_STATE_CR2 | KVM_COPY_STATE_XCR0 | KVM_COPY_STATE_DB,
  gprMask: SHARED_GPRS.reduce((m, g) => m | (1 << GPR_NUMBER[g]), 0),
};
const COPY_SHARED_DR6: KvmCopyState = { ...COPY_SHARED, classes: COPY_SHARED.classes | KVM_COPY_STATE_DR6 };

/**
 * Copies the shared state of §3.2 from the Vcpu of the VTL being left to the
 * Vcpu of the VTL being entered: RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8-R15,
 * CR2, XCR0, DR0-DR3 (and DR6 when shared), x87, MXCSR and XMM0-15, with
 * kvm's in-place copy (vcpu-copy.ts): a switch happens on every VtlCall and
 * VtlReturn, and the five GET/SET structures cost far more than the copy.
 * The target's private state, its TLB and its pending events are left alone.
 */
export function copyShared(from: Vcpu, to: Vcpu, opts: VtlStateOptions): void {
  if (from === to) throw new VsmError('copyShared needs two different Vcpus (one per VTL)');
  from.copyStateTo(to, opts.dr6Shared ? COPY_SHARED_DR6 : COPY_SHARED);
}
