/**
 * A VSM rig for the vsm-enable / vsm-switch / vsm-hcall tests: HvMachine's
 * 64-bit Vm (test/kvm/hypercall-machine.ts) with hv-vsm, a VsmPartition
 * over it, and a tiny scheduler that does what the machine's does for one
 * VP: run the active VTL's Vcpu and hand `hyperv-hcall` exits to
 * hc-vsm.ts. Guest code is assembled at test time.
 */
import type { VcpuExit } from '../../src/kvm/exits.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import { HvCall, HvInitialVpContext as C, HvStatus } from '../../src/spec/tlfs.js';
import { parseHypercallResult } from '../../src/kvm/hyperv/hypercall-input.js';
import { handleVsmHypercall } from '../../src/vmm/vsm/hc-vsm.js';
import { loadInitialVpContext } from '../../src/vmm/vsm/initial-vp-context.js';
import { handleProtectionFault } from '../../src/vmm/vsm/memory-intercept.js';
import { handleRegisterAccess } from '../../src/vmm/vsm/cr-intercept.js';
import { handleUnrecoverableException } from '../../src/vmm/vsm/unrecoverable-exception.js';
import { VsmPartition, type VsmVp } from '../../src/vmm/vsm/partition.js';
import { hvSegmentFromKvm, writeHvSegment, writeHvTable } from '../../src/vmm/vsm/segment.js';
import { HvMachine, LINUX_GUEST_OS_ID } from '../kvm/hypercall-machine.js';
import { KVM_MP_STATE_HV_INACTIVE_VTL } from '../../src/kvm/mp-state.js';
import { HvMsr } from '../../src/spec/tlfs.js';
import { Machine } from '../../src/vmm/machine.js';
import { assemble } from '../x86/helpers/test-machine.js';
import { buildElf, bytesOf, multibootHeader } from './elf-writer.js';

export const VSM_FLAGS = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm', 'hv-xmm-input', 'hv-xmm-output'];
/** Scratch areas of the rig (HvMachine leaves 0x100000-0x1fffff and 0x300000-0x3fffff free and identity-mapped). */
export const VTL1_CODE = 0x100000, VTL1_STACK_TOP = 0x108000, OUT = 0x110000, CONTEXT = 0x120000;
export const VTL0_ASSIST = 0x130000, VTL1_ASSIST = 0x131000, VTL1_PML4 = 0x300000;

export interface CallResult {
  /** The exit that ended the run after the call (hlt normally). */
  readonly exit: VcpuExit;
  readonly status: number;
  readonly reps: number;
  readonly rax: bigint;
  /** The Vcpu took #UD (halted in HvMachine's vector-6 stub). */
  readonly ud: boolean;
}

export class VsmRig {
  readonly m: HvMachine;
  readonly p: VsmPartition;

  constructor(o: { ids?: readonly number[]; maximumVtl?: number; flags?: readonly string[]; spinlocks?: number; memorySize?: number; trace?: boolean } = {}) {
    this.m = new HvMachine({ flags: o.flags ?? VSM_FLAGS, ids: o.ids ?? [0], spinlocks: o.spinlocks, memorySize: o.memorySize, trace: o.trace });
    this.p = new VsmPartition(this.m.vm, { maximumVtl: o.maximumVtl });
  }

  vp(index = 0): VsmVp { return this.p.vps[index]!; }
  vcpu(index = 0, vtl = 0): Vcpu { return this.vp(index).vcpus[vtl]!; }

  /**
   * One hypercall from `v` (which must be its VP's active Vcpu) at HvMachine's
   * CALL_SITE (`vmcall; hlt`), answered by hc-vsm.ts; runs until the HLT.
   */
  call(v: Vcpu, control: bigint, rdx = 0n, r8 = 0n, xmm: readonly bigint[] = []): CallResult {
    const first = this.m.hypercall(v, control, rdx, r8, xmm);
    let exit = first.exit;
    if (exit.reason === 'hyperv-hcall') {
      if (!handleVsmHypercall(this.p, v, exit)) throw new Error(`hc-vsm did not take call 0x${(control & 0xffffn).toString(16)}`);
      exit = this.m.runToExit(v);
    }
    const rax = v.getRegs().rax;
    return { exit, rax, ...repsOf(rax), ud: this.m.stubVector(v) === 6 };
  }

  /**
   * Runs VP `index` like the machine's scheduler (only the active VTL's
   * Vcpu, VSM exits to hc-vsm.ts, protection faults to memory-intercept.ts,
   * register accesses to cr-intercept.ts, triple faults to unrecoverable-exception.ts)
   * until the active Vcpu halts; returns the VTL it halted in.
   */
  drive(index = 0, maxExits = 100): number {
    const vp = this.vp(index);
    for (let n = 0; n < maxExits; n++) {
      const v = vp.active;
      const e = this.m.runToExit(v);
      if (e.reason === 'hyperv-hcall') {
        if (!handleVsmHypercall(this.p, v, e)) v.completeHypercall(BigInt(HvStatus.INVALID_HYPERCALL_CODE));
        continue;
      }
      if (e.reason === 'hlt') return vp.activeVtl;
      if (e.reason === 'memory-fault' && handleProtectionFault(this.p, v, e).kind === 'intercepted') continue;
      if (e.reason === 'register-access' && handleRegisterAccess(this.p, v, e).kind === 'intercepted') continue;
      if (e.reason === 'shutdown' && handleUnrecoverableException(this.p, v, e).kind === 'intercepted') continue;
      throw new Error(`VP ${index} stopped with a ${e.reason} exit in VTL${vp.activeVtl}`);
    }
    throw new Error(`VP ${index} made more than ${maxExits} exits`);
  }

  /** Assembles 64-bit code at `org`. */
  asm(src: string, org: number): Record<string, number> { return this.m.asm(`.code64\n${src}`, org); }

  /** Enables VTL `vtl` for the partition from the host side, with MBEC when `mbec` (the hypercall path is tested in vsm-enable). */
  enablePartitionVtl(vtl = 1, mbec = false): void {
    const vm = this.p.enablePartitionVtl(vtl, mbec);
    vm.hyperv!.writeGuestOsId(LINUX_GUEST_OS_ID);
  }

  /**
   * Enables VTL `vtl` on VP `index` from the host side, as EnableVpVtl does
   * (the hypercall path is tested in vsm-enable): loads `context` (default:
   * the VP's VTL0 context with RIP VTL1_CODE, RSP VTL1_STACK_TOP), parks the
   * Vcpu in HV_INACTIVE_VTL and commits it to the VP. The partition VTL must
   * be enabled.
   */
  enableVpVtl(index = 0, vtl = 1, context?: Uint8Array): Vcpu {
    const vp = this.vp(index);
    const v = this.p.vcpuForVpVtl(vp, vtl);
    const status = loadInitialVpContext(v, context ?? contextFrom(this.vcpu(index), { rip: VTL1_CODE, rsp: VTL1_STACK_TOP }), vtl, { dr6Shared: false });
    if (status !== HvStatus.SUCCESS) throw new Error(`VP ${index}: the VTL${vtl} initial context was refused (status 0x${status.toString(16)})`);
    v.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
    this.p.commitVpVtl(vp, vtl);
    return v;
  }

  /** A page-table root with HvMachine's mappings at another address: a private CR3 value for VTL1. */
  copyPml4(at = VTL1_PML4): number {
    this.m.vm.mem.write(at, this.m.vm.mem.read(this.m.pml4, 0x1000));
    return at;
  }
}

function repsOf(rax: bigint): { status: number; reps: number } {
  const r = parseHypercallResult(rax);
  return { status: r.status, reps: r.repsCompleted };
}

/** VTL0's code in interceptRig, and VTL1's SIMP page: its SINT0 message slot is at the page's start, the payload 16 bytes in. */
export const INTERCEPT_VTL0_CODE = 0x170000, VTL1_SIM = 0x160000;

/**
 * VP 0 with VTL1 enabled and ready to take intercepts: VP assist page at
 * VTL1_ASSIST, SIMP at VTL1_SIM, SynIC on, SINT0 masked (a message still
 * goes into the slot, §4.2). VTL1 halts at each entry and makes a non-fast
 * VtlReturn once it runs on; the VP is in VTL0 at INTERCEPT_VTL0_CODE,
 * running `vtl0` (its labels in `l0`).
 */
export function interceptRig(vtl0: string, o: { maximumVtl?: number } = {}): { r: VsmRig; v0: Vcpu; v1: Vcpu; l0: Record<string, number> } {
  const r = new VsmRig({ maximumVtl: o.maximumVtl });
  r.enablePartitionVtl(1);
  const l0 = r.asm(vtl0, INTERCEPT_VTL0_CODE);
  r.asm(`again: hlt\n xor ecx, ecx\n mov rax, rcx\n mov ecx, ${HvCall.VtlReturn}\n vmcall\n jmp again`, VTL1_CODE);
  const v0 = r.vcpu(0);
  r.m.jump(v0, INTERCEPT_VTL0_CODE);
  const v1 = r.enableVpVtl();
  const ok = v1.wrmsr(HvMsr.VP_ASSIST_PAGE, VTL1_ASSIST | 1, 0) && v1.wrmsr(HvMsr.SIMP, VTL1_SIM | 1, 0)
    && v1.wrmsr(HvMsr.SCONTROL, 1, 0) && v1.wrmsr(HvMsr.SINT0, 0x10050, 0);
  if (!ok) throw new Error('VTL1\'s assist page or SynIC refused its set-up');
  return { r, v0, v1, l0 };
}

/**
 * HV_INITIAL_VP_CONTEXT (224 bytes, tlfs-vsm-facts §2.13) copying `v`'s
 * segments, tables, control registers and EFER, with RIP, RSP, RFLAGS
 * and optionally CR3 / CR0 replaced. PAT 0x0007040600070406 (reset value).
 */
export function contextFrom(v: Vcpu, o: { rip: number; rsp: number; rflags?: bigint; cr3?: number; cr0?: bigint }): Uint8Array {
  const b = new Uint8Array(C.Bytes);
  const dv = new DataView(b.buffer);
  const s = v.getSregs();
  dv.setBigUint64(C.Rip, BigInt(o.rip), true);
  dv.setBigUint64(C.Rsp, BigInt(o.rsp), true);
  dv.setBigUint64(C.Rflags, o.rflags ?? 2n, true);
  const segs = [[C.Cs, s.cs], [C.Ds, s.ds], [C.Es, s.es], [C.Fs, s.fs], [C.Gs, s.gs], [C.Ss, s.ss], [C.Tr, s.tr], [C.Ldtr, s.ldt]] as const;
  for (const [off, seg] of segs) writeHvSegment(b, off, hvSegmentFromKvm(seg));
  writeHvTable(b, C.Idtr, s.idt);
  writeHvTable(b, C.Gdtr, s.gdt);
  dv.setBigUint64(C.Efer, s.efer, true);
  dv.setBigUint64(C.Cr0, o.cr0 ?? s.cr0, true);
  dv.setBigUint64(C.Cr3, o.cr3 !== undefined ? BigInt(o.cr3) : s.cr3, true);
  dv.setBigUint64(C.Cr4, s.cr4, true);
  dv.setBigUint64(C.Pat, 0x0007040600070406n, true);
  return b;
}

/**
 * A machine with hv-vsm whose 32-bit VTL0 code is `vtl0` and whose VP 0 has
 * VTL1 (host-enabled, parked) running `vtl1` at 0x200000 with its assist page
 * at 0x202000.
 */
export function machineWithVtl1(vtl0: string, vtl1: string, o: { trace?: boolean } = {}): { m: Machine; v0: Vcpu; v1: Vcpu } {
  const code = assemble(`.code32\n${vtl0}`, 0x100000 + 12).bytes;
  const text = bytesOf(multibootHeader(0), code);
  const elf = buildElf({ cls: 32, entry: 0x100000 + 12, segments: [{ paddr: 0x100000, data: text, memsz: text.length + 64 }] });
  const m = new Machine({ image: elf.bytes, imagePath: 'vsm.elf', smp: 1, memory: 16 << 20, serial: () => {}, hv: { flags: new Set(VSM_FLAGS) }, maxInsns: 200_000, trace: o.trace });
  const p = m.vsm!;
  p.enablePartitionVtl(1);
  const vp = p.vps[0]!;
  const v0 = m.vcpus[0], v1 = p.vcpuForVpVtl(vp, 1);
  v1.setSregs(v0.getSregs()); // flat 32-bit protected mode, as Multiboot enters VTL0
  v1.setRegs({ ...v1.getRegs(), rip: 0x200000n, rsp: 0x201000n, rflags: 2n });
  m.vm.mem.write(0x200000, assemble(`.code32\n${vtl1}`, 0x200000).bytes);
  v1.setMpState(KVM_MP_STATE_HV_INACTIVE_VTL);
  p.commitVpVtl(vp, 1);
  if (!v1.wrmsr(HvMsr.VP_ASSIST_PAGE, 0x202000 | 1, 0)) throw new Error('the VTL1 assist page MSR was refused');
  return { m, v0, v1 };
}

