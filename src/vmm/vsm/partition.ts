/**
 * The VMM's VSM partition (DESIGN §1, §4; README.md): one kvm `Vm` per
 * enabled VTL over the same guest memory, one `Vcpu` per (VP, VTL) pair,
 * and the VSM state the TLFS gives the partition and its VPs: enabled VTL
 * sets, each VP's active VTL and the VTLs it entered from, the values of the
 * VSM registers (tlfs-vsm-facts §3.6, §3.7), the memory protections
 * (protections.ts), TLB-lock holders and waits (§3.9), and the INIT/SIPI
 * blocks of lower VTLs (§3.10).
 *
 * VTL0 is the machine's own Vm and Vcpus. Enabling VTL n for the partition
 * creates VTL n's Vm (same memory, same memslots, same clock, same Hyper-V
 * features, so AccessVsm lets its Vcpus park in HV_INACTIVE_VTL); enabling
 * it on a VP creates that Vm's Vcpu with the VP's index as its id. kvm knows
 * nothing of this: the hypercall handlers (hc-vsm.ts) and the switch
 * (vtl-switch.ts) are the only users of these objects besides the scheduler.
 */
import { KVM_X86_MBEC_ENABLE, KVM_X86_MBEC_ONLY_WITH_SMEP } from '../../kvm/mbec.js';
import type { Vcpu } from '../../kvm/vcpu.js';
import { Vm } from '../../kvm/vm.js';
import { PAGE_SIZE } from '../../memory/phys-memory.js';
import { HvRegisterName as N, HvStatus, HvVsmVpSecureConfig } from '../../spec/tlfs.js';
import { VsmError, u64, uint } from './errors.js';
import { VtlProtections } from './protections.js';
import { applyRegisterAccessExits, readCrInterceptRegister, writeCrInterceptRegister, type CrInterceptRegisters } from './cr-intercept.js';
import {
  vsmCapabilities, checkPartitionConfigWrite, checkSecureConfigWrite, checkWaitForTlbLockWrite, decodeVina, encodeVina, codePageOffsetsFor, decodePartitionConfig,
  decodeSecureConfig, encodeCapabilities, encodePartitionStatus, encodeVpStatus, type VsmCapabilities,
} from './vsm-registers.js';

/** The VTLs this VMM can run: 0, 1 and 2 (DESIGN §4 "any number of VTLs the partition allows (0..2)"). */
export const VSM_MAX_SUPPORTED_VTL = 2;

export interface VsmPartitionOptions {
  /** HvRegisterVsmPartitionStatus.MaximumVtl: the highest VTL the guest may enable (1, as Hyper-V, or 2). Default 1. */
  readonly maximumVtl?: number;
  /** Makes a new Vcpu one of the machine's (CPUID, scheduler settings); called before its context is loaded. */
  readonly prepareVcpu?: (vcpu: Vcpu, vtl: number) => void;
}

/** One virtual processor: its Vcpu in each VTL enabled on it, and where it is. */
export class VsmVp {
  /** The VTL the VP runs in now (HvRegisterVsmVpStatus.ActiveVtl). */
  activeVtl = 0;
  /** Bit n: VTL n is enabled on this VP (EnabledVtlSet); VTL0 always is. */
  enabledVtlSet = 1;
  /** Index = VTL: the Vcpu of that VTL, once created. A Vcpu exists before its VTL is enabled only if a load of its initial context failed. */
  readonly vcpus: (Vcpu | undefined)[] = [];
  /** The VTLs this VP entered higher VTLs from, innermost last: VtlReturn goes back to the top one (README.md). */
  readonly returnStack: number[] = [];
  /** Index = VTL: whether it ran 64-bit code when the VP left it by a VtlCall (undefined: unknown, ask its Vcpu). */
  readonly leftLong: (boolean | undefined)[] = [];
  /** MP state a lower VTL's Vcpu had when the VP left it (HALTED if an interrupt entry found it halted). */
  readonly resumeMpState: number[] = [];
  /** HvRegisterVsmVpSecureConfigVtlN values, key = 16 × configuring VTL + N (§3.7: one per (higher VTL, lower VTL) pair). */
  readonly secureConfig = new Map<number, bigint>();
  /** Bit n: StartVirtualProcessor started this VP's VTL n (hc-vp.ts): one started in VTL1 is started again in VTL0. */
  startedVtls = 0;
  /** Index = VTL: its HvRegisterVsmVina value (bits 10:0; §3.7), 0 = VINA off. */
  readonly vina: bigint[] = [];
  /** Index = lower VTL L: bit H is set while VTL H holds L's TLB lock on this VP (§3.9). */
  readonly tlbLockHolders: number[] = [];
  /** Index = lower VTL L: how many times L's lock on this VP went from held to free (WaitForTlbLock compares it). */
  readonly tlbUnlocks: number[] = [];
  /** Index = higher VTL: its CrInterceptControl and mask registers on this VP (cr-intercept.ts). */
  readonly crIntercepts: (CrInterceptRegisters | undefined)[] = [];
  /** Index = VTL L: before the VP resumes L it waits for these VPs' L locks held at the WaitForTlbLock write (§3.9). */
  readonly tlbWaits: ({ vp: VsmVp; unlocks: number }[] | undefined)[] = [];

  constructor(readonly index: number, vtl0: Vcpu) { this.vcpus[0] = vtl0; }

  /** The Vcpu of the active VTL: the only one of this VP that runs. */
  get active(): Vcpu { return this.vcpus[this.activeVtl]!; }

  isEnabled(vtl: number): boolean { return (this.enabledVtlSet & (1 << vtl)) !== 0; }

  /** The lowest VTL above `lower` enabled on this VP for which `claims` holds, or -1 (§3.10: the lower of the intercepting VTLs first). */
  lowestAbove(lower: number, claims: (vtl: number) => boolean): number {
    for (let h = lower + 1; h < this.vcpus.length; h++) if (this.isEnabled(h) && claims(h)) return h;
    return -1;
  }
}

export class VsmPartition {
  readonly maximumVtl: number;
  /** What HvRegisterVsmCapabilities reports (vsm-registers.ts): MBEC for every VTL from 1 to the maximum. */
  readonly capabilities: VsmCapabilities;
  /** Index = VTL: that VTL's Vm once the partition enabled it; [0] is the machine's Vm. */
  readonly vms: (Vm | undefined)[];
  /** Index = VP index (= the VTL0 Vcpu id). */
  readonly vps: (VsmVp | undefined)[] = [];
  /** Bit n: VTL n is enabled for the partition (HvRegisterVsmPartitionStatus.EnabledVtlSet). */
  enabledVtlSet = 1;
  /** Bit n: VTL n has been enabled on at least one VP (EnableVpVtl's privilege rule, §2.13). */
  enabledOnAnyVp = 1;
  /** Bit n: VTL n was enabled with EnableMbec (HvRegisterVsmPartitionStatus.MbecEnabledVtlSet, §2.12). */
  mbecEnabledVtlSet = 0;
  private readonly prepareVcpu: (vcpu: Vcpu, vtl: number) => void;
  /** HvRegisterVsmPartitionConfig of each VTL ≥ 1 (index = VTL). */
  private readonly partitionConfig: bigint[] = [];
  private readonly owners = new Map<Vcpu, { vp: VsmVp; vtl: number }>();
  /** The VTL memory protections and their memory attributes on the lower VTLs' Vms (protections.ts). */
  readonly protections: VtlProtections;

  constructor(vtl0: Vm, opts: VsmPartitionOptions = {}) {
    if (vtl0.hyperv === null || !vtl0.hyperv.features.has('AccessVsm')) {
      throw new VsmError('a VSM partition needs a Vm whose Hyper-V features grant AccessVsm (hv-vsm)');
    }
    this.maximumVtl = uint(opts.maximumVtl ?? 1, VSM_MAX_SUPPORTED_VTL, 'maximum VTL');
    if (this.maximumVtl < 1) throw new VsmError('the maximum VTL of a VSM partition must be at least 1');
    this.capabilities = vsmCapabilities(this.maximumVtl);
    this.prepareVcpu = opts.prepareVcpu ?? (() => {});
    this.vms = [vtl0];
    this.protections = new VtlProtections(this.maximumVtl, (vtl) => this.vms[vtl], Math.floor(vtl0.mem.size / PAGE_SIZE));
    for (const v of vtl0.vcpus) {
      const vp = new VsmVp(v.id, v);
      this.vps[v.id] = vp;
      this.owners.set(v, { vp, vtl: 0 });
    }
  }

  get vtl0(): Vm { return this.vms[0]!; }

  /** The VP and VTL a Vcpu of this partition stands for, or undefined for a Vcpu that is not ours. */
  locate(vcpu: Vcpu): { vp: VsmVp; vtl: number } | undefined { return this.owners.get(vcpu); }

  isPartitionVtlEnabled(vtl: number): boolean { return (this.enabledVtlSet & (1 << vtl)) !== 0; }

  /** Every Vcpu of VP `index`, lowest VTL first (the scheduler ticks them all). */
  vcpusOf(index: number): Vcpu[] {
    const vp = this.vps[index];
    return vp === undefined ? [] : vp.vcpus.filter((v): v is Vcpu => v !== undefined);
  }

  // ---------------------------------------------------------------- enabling (§2.12, §2.13)

  /**
   * EnablePartitionVtl's effect: VTL `vtl`'s Vm over VTL0's memory, with
   * VTL0's memslots (the caller checked the rules); with `mbec` (EnableMbec,
   * which MbecVtlMask must offer) the VTL may use MBEC (isMbecEnabled).
   */
  enablePartitionVtl(vtl: number, mbec = false): Vm {
    uint(vtl, this.maximumVtl, 'VTL');
    if (vtl === 0 || this.isPartitionVtlEnabled(vtl)) throw new VsmError(`VTL${vtl} is already enabled for the partition`);
    if (mbec && (this.capabilities.mbecVtlMask & (1 << vtl)) === 0) throw new VsmError(`MBEC is not offered for VTL${vtl}`);
    const base = this.vtl0;
    const vm = new Vm({
      memorySize: base.mem.size, memory: base.mem, clock: base.clock, trace: base.trace !== null,
      hyperv: base.hyperv!.features, defaultMemslot: false,
    });
    for (const s of base.memslots.list()) vm.setUserMemoryRegion({ slot: s.id, flags: s.flags, guestPhysAddr: s.guestPhysAddr, memorySize: s.memorySize });
    this.vms[vtl] = vm;
    this.enabledVtlSet |= 1 << vtl;
    if (mbec) this.mbecEnabledVtlSet |= 1 << vtl;
    return vm;
  }

  /**
   * Whether VTL `vtl` was enabled with MBEC: its protections may give user
   * execute without kernel execute (protection-mask.ts) and it may turn MBEC
   * on for the VTLs below it (VsmVpSecureConfigVtlN.MbecEnabled).
   */
  isMbecEnabled(vtl: number): boolean { return (this.mbecEnabledVtlSet & (1 << vtl)) !== 0; }

  /**
   * The Vcpu that will be VP `vp`'s VTL `vtl` (the partition VTL must be
   * enabled): created on first use, with the VP index as its id. It is not
   * enabled until commitVpVtl(): EnableVpVtl loads its initial context in
   * between and may refuse it, and kvm has no way to destroy a vCPU.
   */
  vcpuForVpVtl(vp: VsmVp, vtl: number): Vcpu {
    const vm = this.vms[vtl];
    if (vtl === 0 || vm === undefined) throw new VsmError(`VTL${vtl} is not enabled for the partition`);
    const existing = vp.vcpus[vtl];
    if (existing !== undefined) return existing;
    const v = vm.createVcpu(vp.index);
    // INIT/SIPI never start a VTL above 0 (§2.14: StartVirtualProcessor is the only way; §3.1: no real mode there).
    v.setInitSipiBlocked(true);
    this.prepareVcpu(v, vtl);
    vp.vcpus[vtl] = v;
    this.owners.set(v, { vp, vtl });
    return v;
  }

  /**
   * Marks VTL `vtl` enabled on `vp` once its Vcpu holds the initial context
   * (the caller parks it). From now on the VP's lower VTLs drop INIT and SIPI,
   * those already sent but not taken included (§3.10; kvm's INIT/SIPI block).
   */
  commitVpVtl(vp: VsmVp, vtl: number): void {
    if (vp.vcpus[vtl] === undefined) throw new VsmError(`VP ${vp.index} has no Vcpu for VTL${vtl}`);
    vp.enabledVtlSet |= 1 << vtl;
    this.enabledOnAnyVp |= 1 << vtl;
    for (let lower = 0; lower < vtl; lower++) vp.vcpus[lower]?.setInitSipiBlocked(true);
    applyRegisterAccessExits(vp); // what the VTLs above it intercept now covers this VTL too
    this.applyMbec(vp, vtl);
  }

  /**
   * Whether VTL `vtl` runs with MBEC on `vp`: a VTL above it set MbecEnabled
   * in its VsmVpSecureConfigVtl`vtl` there (HvRegisterVsmVpStatus.ActiveMbecEnabled
   * while `vtl` is active). Then its fetches from user-mode addresses are
   * checked against the protections' UX, every other fetch against KX.
   */
  mbecActive(vp: VsmVp, vtl: number): boolean {
    for (let h = vtl + 1; h <= this.maximumVtl; h++) {
      if (((vp.secureConfig.get(16 * h + vtl) ?? 0n) & HvVsmVpSecureConfig.MbecEnabled) !== 0n) return true;
    }
    return false;
  }

  /**
   * Gives VTL `vtl`'s Vcpu on `vp` kvm's MBEC while mbecActive: user-mode
   * fetches need XU, which the UX-without-KX masks set. Only with CR4.SMEP
   * (ONLY_WITH_SMEP), as SMEP is available to every VTL here (CPUID 7.0
   * EBX[7], vmm/cpuid.ts): "if SMEP is available and disabled, all execute
   * restrictions are governed by KX" (tlfs-vsm-facts §3.8).
   */
  private applyMbec(vp: VsmVp, vtl: number): void {
    vp.vcpus[vtl]?.setMbecControl(this.mbecActive(vp, vtl) ? KVM_X86_MBEC_ENABLE | KVM_X86_MBEC_ONLY_WITH_SMEP : 0);
  }

  /** VsmPartitionConfig.InterceptPage of VTL `vtl`: its intercept messages go to its VP assist page, not SINT0. */
  usesInterceptPage(vtl: number): boolean {
    return decodePartitionConfig(this.partitionConfig[vtl] ?? 0n).interceptPage;
  }

  /** VsmPartitionConfig.InterceptUnrecoverableException of VTL `vtl`: lower VTLs' triple faults go to it (unrecoverable-exception.ts). */
  interceptsUnrecoverableException(vtl: number): boolean {
    return decodePartitionConfig(this.partitionConfig[vtl] ?? 0n).interceptUnrecoverableException;
  }

  /** VsmPartitionConfig.EnableVtlProtection of VTL `vtl`: ModifyVtlProtectionMask may target it. */
  isProtectionEnabled(vtl: number): boolean {
    return decodePartitionConfig(this.partitionConfig[vtl] ?? 0n).enableVtlProtection;
  }

  // ---------------------------------------------------------------- VSM registers (§3.6, §3.7)

  /**
   * Reads a VSM register for `targetVtl` of `vp` (register-names.ts has
   * checked the access). `caller64` picks the hypercall-page offsets a
   * 64-bit or a 32-bit caller uses (§3.6). Undefined: not one of the VSM
   * registers this step implements (see README.md).
   */
  readVsmRegister(name: number, vp: VsmVp, targetVtl: number, caller64: boolean): bigint | undefined {
    switch (name) {
      case N.VsmCodePageOffsets: return codePageOffsetsFor(caller64);
      case N.VsmVpStatus:
        return encodeVpStatus({ activeVtl: vp.activeVtl, activeMbecEnabled: this.mbecActive(vp, vp.activeVtl), enabledVtlSet: vp.enabledVtlSet });
      case N.VsmPartitionStatus:
        return encodePartitionStatus({ enabledVtlSet: this.enabledVtlSet, maximumVtl: this.maximumVtl, mbecEnabledVtlSet: this.mbecEnabledVtlSet, sssEnabledVtlSet: 0 });
      case N.VsmCapabilities: return encodeCapabilities(this.capabilities);
      case N.VsmPartitionConfig: return this.partitionConfig[targetVtl] ?? 0n;
      case N.VsmVpWaitForTlbLock: return 0n; // write-only (register-names.ts): reads as 0
      case N.VsmVina: return vp.vina[targetVtl] ?? 0n;
      default: {
        const n = name - N.VsmVpSecureConfigVtl0;
        if (n >= 0 && n < 15) return vp.secureConfig.get(16 * targetVtl + n) ?? 0n;
        return readCrInterceptRegister(vp, targetVtl, name);
      }
    }
  }

  /**
   * Writes a VSM register (the access check is done): SUCCESS or the status
   * that refuses the value, with nothing changed. Undefined: not a VSM
   * register this step implements. Turning on EnableVtlProtection applies
   * the DefaultVtlProtectionMask to every page for the lower VTLs (§3.7,
   * §3.8); TlbLocked in VsmVpSecureConfigVtlN takes or releases the
   * configuring VTL's lock on VTL N's TLB (§3.9) and MbecEnabled VTL N's
   * MBEC on this VP (applyMbec); VsmVpWaitForTlbLock makes
   * the VP wait before it resumes the target VTL; CrInterceptControl and its
   * masks set what the lower VTLs' register-access exits watch (cr-intercept.ts).
   */
  writeVsmRegister(name: number, vp: VsmVp, targetVtl: number, value: bigint): number | undefined {
    u64(value, 'register value');
    if (name === N.VsmPartitionConfig) {
      const current = this.partitionConfig[targetVtl] ?? 0n;
      const status = checkPartitionConfigWrite(current, value, this.capabilities, this.isMbecEnabled(targetVtl));
      if (status !== HvStatus.SUCCESS) return status;
      const next = decodePartitionConfig(value);
      this.partitionConfig[targetVtl] = value;
      if (next.enableVtlProtection && !decodePartitionConfig(current).enableVtlProtection) {
        this.protections.protect(targetVtl, 0, this.protections.frames, next.defaultVtlProtectionMask);
      }
      if (next.denyLowerVtlStartup) this.denyLowerVtlStartup(targetVtl);
      return HvStatus.SUCCESS;
    }
    const n = name - N.VsmVpSecureConfigVtl0;
    if (n >= 0 && n < 15) {
      const status = checkSecureConfigWrite(value, this.isMbecEnabled(targetVtl));
      if (status !== HvStatus.SUCCESS) return status;
      vp.secureConfig.set(16 * targetVtl + n, value);
      if (decodeSecureConfig(value).tlbLocked) this.lockTlb(vp, targetVtl, n); else this.unlockTlb(vp, targetVtl, n);
      this.applyMbec(vp, n);
      return HvStatus.SUCCESS;
    }
    if (name === N.VsmVina) {
      // Bits 63:11 are RsvdP: ignored and kept 0. Refused (our choice; the sheet names no status): an enabled vector
      // below 16 (an exception vector). AutoEoi makes the VINA interrupt auto-EOI'd (kvm's injectInterrupt autoEoi).
      const v = decodeVina(value);
      if (v.enabled && v.vector < 16) return HvStatus.INVALID_REGISTER_VALUE;
      vp.vina[targetVtl] = encodeVina(v);
      return HvStatus.SUCCESS;
    }
    if (name === N.VsmVpWaitForTlbLock) {
      const status = checkWaitForTlbLockWrite(value);
      if (status !== HvStatus.SUCCESS) return status;
      if (value !== 0n) this.waitForTlbLocks(vp, targetVtl);
      return HvStatus.SUCCESS;
    }
    return writeCrInterceptRegister(vp, targetVtl, name, value);
  }

  /**
   * DenyLowerVtlStartup of VTL `vtl` (§3.7: lower VTLs may not start or reset
   * VPs): StartVirtualProcessor from below is refused (hc-vp.ts), and every
   * Vcpu of a VTL below drops INIT and SIPI (kvm's INIT/SIPI block; IPIs go
   * to the sender's VTL, so these are what lower VTLs could send). Clearing
   * the bit later does not lift the block: a VP's lower VTLs keep dropping
   * them anyway once a higher VTL is enabled on it (§3.10).
   */
  private denyLowerVtlStartup(vtl: number): void {
    for (const vp of this.vps) {
      if (vp === undefined) continue;
      for (let lower = 0; lower < vtl; lower++) vp.vcpus[lower]?.setInitSipiBlocked(true);
    }
  }

  // ---------------------------------------------------------------- TLB locks (§3.9, kvm-api-facts §1)

  /**
   * VTL `holder` locks VTL `lower`'s TLB on `vp`: while any VTL holds it,
   * kvm's TLB-flush inhibit is set on that VP's VTL-`lower` Vcpu, so a
   * VTL-`lower` flush hypercall that targets it suspends its caller.
   */
  lockTlb(vp: VsmVp, holder: number, lower: number): void {
    if (lower >= holder) throw new VsmError(`VTL${holder} cannot lock the TLB of VTL${lower}: only lower VTLs`);
    const before = vp.tlbLockHolders[lower] ?? 0;
    vp.tlbLockHolders[lower] = before | (1 << holder);
    if (before === 0) this.setInhibit(vp, lower, 1);
  }

  /** VTL `holder` releases its lock on VTL `lower`'s TLB on `vp` (nothing if it held none). */
  unlockTlb(vp: VsmVp, holder: number, lower: number): void {
    const before = vp.tlbLockHolders[lower] ?? 0;
    const after = before & ~(1 << holder);
    if (after === before) return;
    vp.tlbLockHolders[lower] = after;
    if (after === 0) {
      vp.tlbUnlocks[lower] = (vp.tlbUnlocks[lower] ?? 0) + 1;
      this.setInhibit(vp, lower, 0);
    }
  }

  /**
   * VtlReturn out of `holder` on `vp` releases every lock it holds there
   * (§3.9), and TlbLocked reads 0 again: the bit is the lock, not a request.
   */
  releaseTlbLocks(vp: VsmVp, holder: number): void {
    for (let lower = 0; lower < holder; lower++) {
      // A TlbLocked secure config always comes with a held lock (writeVsmRegister), so no lock means nothing to do.
      if (((vp.tlbLockHolders[lower] ?? 0) & (1 << holder)) === 0) continue;
      this.unlockTlb(vp, holder, lower);
      const key = 16 * holder + lower, cfg = vp.secureConfig.get(key);
      if (cfg !== undefined && (cfg & HvVsmVpSecureConfig.TlbLocked) !== 0n) vp.secureConfig.set(key, cfg & ~HvVsmVpSecureConfig.TlbLocked);
    }
  }

  /** WaitForTlbLock (§3.9): before `vp` resumes `lower`, the L locks other VPs hold now must be released. */
  private waitForTlbLocks(vp: VsmVp, lower: number): void {
    const waits = this.vps.filter((o): o is VsmVp => o !== undefined && o !== vp && (o.tlbLockHolders[lower] ?? 0) !== 0)
      .map((o) => ({ vp: o, unlocks: o.tlbUnlocks[lower] ?? 0 }));
    vp.tlbWaits[lower] = waits.length > 0 ? waits : undefined;
  }

  /** Whether `vp` must not run yet: it is about to resume a VTL whose WaitForTlbLock is not satisfied. */
  waitsForTlbLock(vp: VsmVp): boolean {
    const l = vp.activeVtl, waits = vp.tlbWaits[l];
    if (waits === undefined) return false;
    if (waits.some((w) => (w.vp.tlbLockHolders[l] ?? 0) !== 0 && (w.vp.tlbUnlocks[l] ?? 0) === w.unlocks)) return true;
    vp.tlbWaits[l] = undefined;
    return false;
  }

  private setInhibit(vp: VsmVp, lower: number, inhibit: number): void {
    const v = vp.vcpus[lower];
    v?.setTlbFlushInhibit({ flags: 0, inhibit });
    v?.vm.trace?.emit(inhibit ? 'vsm_tlb_lock' : 'vsm_tlb_unlock', v.id, v.nowNs(), { vp: vp.index, vtl: lower, holders: vp.tlbLockHolders[lower] ?? 0 });
  }
}
