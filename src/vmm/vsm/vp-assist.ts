/**
 * The VSM parts of a VP assist page (tlfs-vsm-facts §3.3-§3.5) read and
 * written in guest memory: the VTL control area (entry reason, VINA status,
 * the RAX/RCX a non-fast VtlReturn restores), the intercept-message slot and
 * the VTL return actions. One page per VP per VTL; the control area that
 * matters on a switch is the one in the *higher* VTL's page.
 *
 * The page is enabled through HV_X64_MSR_VP_ASSIST_PAGE (bit 0, GPA in
 * 63:12); kvm's HvVp keeps that MSR (hyperv/vp.ts), fromMsr() turns it into
 * a view. The VMM writes the page directly: it is the hypervisor here, and
 * a VTL's own page is not subject to that VTL's lower-VTL protections.
 */
import { PAGE_SIZE, type PhysMemory } from '../../memory/phys-memory.js';
import {
  HV_VINA_ASSERTED, HV_VP_ASSIST_INTERCEPT_MESSAGE_BYTES, HV_VP_ASSIST_PAGE_ENABLE, HV_VP_ASSIST_VTL_RETURN_ACTIONS_BYTES,
  HvSignalEventReturnAction, HvVpAssist, HvVpAssistX86, HvVtlEntryReason, HvVtlReturnActionType,
} from '../../spec/tlfs.js';
import { VsmError, u64 } from './errors.js';

/** RAX/RCX that a non-fast VtlReturn loads into the lower VTL (x64 caller, §3.3), as int32 or uint32 halves (DESIGN §3.1). */
export interface VtlReturnRegisters64 { raxLo: number; raxHi: number; rcxLo: number; rcxHi: number }
/** The 32-bit caller's view of the same bytes (§3.3): EAX @0x10, ECX @0x14, EDX @0x18. */
export interface VtlReturnRegisters32 { eax: number; ecx: number; edx: number }

/** A signal-event VTL return action (§3.5). Values are as the guest wrote them; the VMM validates them when it signals. */
export interface SignalEventReturnAction {
  readonly type: 'signal-event';
  readonly targetVp: number;
  readonly targetVtl: number;
  readonly targetSint: number;
  readonly flagNumber: number;
}
export type VtlReturnAction = SignalEventReturnAction;

const isWord = (v: number): boolean => Number.isInteger(v) && v >= -0x8000_0000 && v <= 0xffff_ffff;
const PAGE_MASK = ~BigInt(PAGE_SIZE - 1) & ((1n << 64n) - 1n);
const ENTRY_REASONS: readonly number[] = Object.values(HvVtlEntryReason);

export class VpAssistPage {
  /** A view of the assist page at `gpa`, which must be a page-aligned page of guest RAM. */
  constructor(readonly mem: PhysMemory, readonly gpa: number) {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % PAGE_SIZE !== 0) throw new VsmError(`VP assist page GPA ${String(gpa)} is not a page-aligned address`);
    if (!mem.isRam(gpa) || !mem.isRam(gpa + PAGE_SIZE - 1)) throw new VsmError(`VP assist page 0x${gpa.toString(16)} is not guest RAM`);
  }

  /** The page HV_X64_MSR_VP_ASSIST_PAGE names, or null while it is disabled (§3.3). */
  static fromMsr(mem: PhysMemory, msr: bigint): VpAssistPage | null {
    u64(msr, 'VP_ASSIST_PAGE value');
    if ((msr & HV_VP_ASSIST_PAGE_ENABLE) === 0n) return null;
    return new VpAssistPage(mem, VpAssistPage.gpaOf(msr));
  }

  /** The page's GPA in an HV_X64_MSR_VP_ASSIST_PAGE value (bits 63:12), enabled or not. */
  static gpaOf(msr: bigint): number { return Number(msr & PAGE_MASK); }

  // ---------------------------------------------------------------- HV_VP_VTL_CONTROL (§3.3, §3.4)

  get entryReason(): number { return this.mem.read32(this.gpa + HvVpAssist.EntryReason); }

  /** Written by the hypervisor on every entry into this (higher) VTL: 1 VtlCall, 2 interrupt, 3 intercept (§3.4). */
  writeEntryReason(reason: number): void {
    if (!ENTRY_REASONS.includes(reason)) throw new VsmError(`VTL entry reason ${String(reason)} is not one of 0..3`);
    this.mem.write32(this.gpa + HvVpAssist.EntryReason, reason);
  }

  get vinaAsserted(): boolean { return (this.mem.read8(this.gpa + HvVpAssist.VinaStatus) & HV_VINA_ASSERTED) !== 0; }

  /** Sets or clears VinaAsserted (bit 0 of VinaStatus); the RsvdZ bits 7:1 are left as they are. */
  writeVinaAsserted(asserted: boolean): void {
    const at = this.gpa + HvVpAssist.VinaStatus;
    this.mem.write8(at, (this.mem.read8(at) & ~HV_VINA_ASSERTED) | (asserted ? HV_VINA_ASSERTED : 0));
  }

  /** VtlReturnX64Rax/Rcx; the halves read as uint32s. */
  readVtlReturn64(): VtlReturnRegisters64 {
    const m = this.mem, rax = this.gpa + HvVpAssist.VtlReturnRax, rcx = this.gpa + HvVpAssist.VtlReturnRcx;
    return { raxLo: m.read32(rax), raxHi: m.read32(rax + 4), rcxLo: m.read32(rcx), rcxHi: m.read32(rcx + 4) };
  }

  writeVtlReturn64(r: VtlReturnRegisters64): void {
    if (typeof r !== 'object' || r === null || !isWord(r.raxLo) || !isWord(r.raxHi) || !isWord(r.rcxLo) || !isWord(r.rcxHi)) {
      throw new VsmError('VtlReturnX64Rax/Rcx are given as 32-bit halves (raxLo, raxHi, rcxLo, rcxHi)');
    }
    const m = this.mem, rax = this.gpa + HvVpAssist.VtlReturnRax, rcx = this.gpa + HvVpAssist.VtlReturnRcx;
    m.write32(rax, r.raxLo); m.write32(rax + 4, r.raxHi);
    m.write32(rcx, r.rcxLo); m.write32(rcx + 4, r.rcxHi);
  }

  writeVtlReturn32(r: VtlReturnRegisters32): void {
    const m = this.mem, g = this.gpa;
    m.write32(g + HvVpAssistX86.VtlReturnEax, r.eax >>> 0);
    m.write32(g + HvVpAssistX86.VtlReturnEcx, r.ecx >>> 0);
    m.write32(g + HvVpAssistX86.VtlReturnEdx, r.edx >>> 0);
  }

  readVtlReturn32(): VtlReturnRegisters32 {
    const m = this.mem, g = this.gpa;
    return { eax: m.read32(g + HvVpAssistX86.VtlReturnEax), ecx: m.read32(g + HvVpAssistX86.VtlReturnEcx), edx: m.read32(g + HvVpAssistX86.VtlReturnEdx) };
  }

  // ---------------------------------------------------------------- intercept message slot (§3.3, VsmPartitionConfig.InterceptPage)

  /** Writes a whole HV_MESSAGE (header + payload, at most 256 bytes) into the slot at 0x70, zero-padding the rest. */
  writeInterceptMessage(message: Uint8Array): void {
    if (!(message instanceof Uint8Array) || message.length > HV_VP_ASSIST_INTERCEPT_MESSAGE_BYTES) {
      throw new VsmError(`an intercept message is a Uint8Array of at most ${HV_VP_ASSIST_INTERCEPT_MESSAGE_BYTES} bytes`);
    }
    const slot = new Uint8Array(HV_VP_ASSIST_INTERCEPT_MESSAGE_BYTES);
    slot.set(message);
    this.mem.write(this.gpa + HvVpAssist.InterceptMessage, slot);
  }

  readInterceptMessage(): Uint8Array { return this.mem.read(this.gpa + HvVpAssist.InterceptMessage, HV_VP_ASSIST_INTERCEPT_MESSAGE_BYTES); }

  // ---------------------------------------------------------------- VTL return actions (§3.5)

  /**
   * The return actions the guest queued, in order: entries are scanned from
   * the area's start while at least 8 bytes remain; type 0 ends the list, an
   * unknown type stops processing, and so does a signal-event entry that
   * would run past the 256-byte area (the sheet does not say; we stop).
   */
  readReturnActions(): VtlReturnAction[] {
    const area = this.mem.read(this.gpa + HvVpAssist.VtlReturnActions, HV_VP_ASSIST_VTL_RETURN_ACTIONS_BYTES);
    const dv = new DataView(area.buffer, area.byteOffset, area.byteLength);
    const out: VtlReturnAction[] = [];
    const E = HvSignalEventReturnAction;
    for (let off = 0; off + 8 <= area.length;) {
      const type = dv.getBigUint64(off, true);
      if (type !== BigInt(HvVtlReturnActionType.SignalEvent) || off + E.Bytes > area.length) break;
      out.push({
        type: 'signal-event',
        targetVp: dv.getUint32(off + E.TargetVp, true),
        targetVtl: dv.getUint8(off + E.TargetVtl),
        targetSint: dv.getUint8(off + E.TargetSint),
        flagNumber: dv.getUint16(off + E.FlagNumber, true),
      });
      off += E.Bytes;
    }
    return out;
  }

  /** Whether the area's first entry is anything but the end of the list (a u64 of 0). */
  hasReturnActions(): boolean {
    const at = this.gpa + HvVpAssist.VtlReturnActions;
    return (this.mem.read32(at) | this.mem.read32(at + 4)) !== 0;
  }

  /** What VtlReturn does with the area (§3.5): read the actions, then zero it. */
  takeReturnActions(): VtlReturnAction[] {
    const actions = this.readReturnActions();
    this.mem.fill(this.gpa + HvVpAssist.VtlReturnActions, HV_VP_ASSIST_VTL_RETURN_ACTIONS_BYTES, 0);
    return actions;
  }
}
