/**
 * What the in-kernel Hyper-V state needs from the vCPU that owns it: guest
 * time, the TSC, run time, and its local APIC. The kvm layer's Vcpu provides
 * this (see the integration notes in partition.ts); tests provide fakes.
 */
import type { ApicMode } from '../lapic.js';

/** The local APIC operations Hyper-V uses; `LocalApic` has this shape. */
export interface HvApic {
  readonly mode: ApicMode;
  /** APIC timer input clock in Hz (HV_X64_MSR_APIC_FREQUENCY). */
  readonly apicHz: number;
  /** A fixed, edge-triggered interrupt for this APIC (SINT, direct stimer). */
  acceptFixed(vector: number): void;
  /** xAPIC register access by offset (used in xAPIC mode). */
  mmioRead(offset: number): number;
  mmioWrite(offset: number, value: number): void;
  /** x2APIC register access (used in x2APIC mode); undefined/false mean #GP. */
  rdmsr(index: number): bigint | undefined;
  wrmsr(index: number, value: bigint): boolean;
}

export interface HvVcpuContext {
  /** Guest time of this vCPU in ns (deterministic, DESIGN §3.5). */
  nowNs(): number;
  /** The guest TSC of this vCPU now (including any IA32_TSC write). */
  readTsc(): number;
  /** Guest ns this vCPU has spent executing instructions (HV_X64_MSR_VP_RUNTIME). */
  runtimeNs(): number;
  readonly apic: HvApic;
}

/** Optional trace sink: KVM tracepoint names (kvm_hv_synic_set_irq, kvm_hv_stimer_expiration, ...). */
export type HvTrace = (name: string, args: Record<string, string | number | boolean>) => void;
