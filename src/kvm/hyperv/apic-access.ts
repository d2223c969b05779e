/**
 * HV_X64_MSR_EOI / ICR / TPR (hv-vapic, fact sheet §6.5): fast paths to the
 * local APIC's EOI, ICR and TPR that work in xAPIC and x2APIC mode alike (KVM
 * kvm_hv_vapic_msr_write/read). They go through the APIC's own register
 * interface for its current mode, so every APIC rule (reserved bits, illegal
 * vectors, EOI bookkeeping) applies. A disabled APIC makes them #GP.
 */
import { REG_EOI, REG_ICR_HIGH, REG_ICR_LOW, REG_TPR, x2apicMsr as x2msr } from '../lapic-regs.js';
import type { HvApic } from './context.js';

/** Writes EOI (the value is ignored, as KVM ignores it). False = #GP. */
export function apicEoi(apic: HvApic): boolean {
  if (apic.mode === 'xapic') { apic.mmioWrite(REG_EOI, 0); return true; }
  if (apic.mode === 'x2apic') return apic.wrmsr(x2msr(REG_EOI), 0n);
  return false;
}

/**
 * Writes the 64-bit ICR: bits 31:0 are ICR low, bits 63:32 ICR high (in xAPIC
 * mode the destination is bits 63:56, in x2APIC mode bits 63:32). Sends the IPI.
 */
export function apicWriteIcr(apic: HvApic, value: bigint): boolean {
  const lo = Number(value & 0xffffffffn);
  const hi = Number((value >> 32n) & 0xffffffffn);
  if (apic.mode === 'xapic') {
    apic.mmioWrite(REG_ICR_HIGH, hi);
    apic.mmioWrite(REG_ICR_LOW, lo); // the low write sends
    return true;
  }
  if (apic.mode === 'x2apic') return apic.wrmsr(x2msr(REG_ICR_LOW), value);
  return false;
}

export function apicReadIcr(apic: HvApic): bigint | undefined {
  if (apic.mode === 'xapic') {
    return (BigInt(apic.mmioRead(REG_ICR_HIGH) >>> 0) << 32n) | BigInt(apic.mmioRead(REG_ICR_LOW) >>> 0);
  }
  if (apic.mode === 'x2apic') return apic.rdmsr(x2msr(REG_ICR_LOW));
  return undefined;
}

/** TPR write: bits 7:0; anything above is #GP (as for the x2APIC TPR MSR). */
export function apicWriteTpr(apic: HvApic, value: bigint): boolean {
  if (value > 0xffn) return false;
  if (apic.mode === 'xapic') { apic.mmioWrite(REG_TPR, Number(value)); return true; }
  if (apic.mode === 'x2apic') return apic.wrmsr(x2msr(REG_TPR), value);
  return false;
}

export function apicReadTpr(apic: HvApic): bigint | undefined {
  if (apic.mode === 'xapic') return BigInt(apic.mmioRead(REG_TPR) & 0xff);
  if (apic.mode === 'x2apic') return apic.rdmsr(x2msr(REG_TPR));
  return undefined;
}
