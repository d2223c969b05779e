/**
 * The Hyper-V CPUID leaves 0x40000000..0x4000000A (fact sheet §6.1) for a
 * feature set. The VMM appends them to its CPUID table (KVM_SET_CPUID2);
 * leaf 1 ECX bit 31 (hypervisor present) is the VMM's and stays set.
 *
 * We publish every leaf up to 0x4000000A, the ones we have nothing for as
 * zeros, so that a guest reading any of them gets a defined answer (QEMU
 * stops at 0x40000005 unless it exposes nested features).
 */
import type { CpuidEntry } from '../cpuid.js';
import { HV_INTERFACE_SIGNATURE, HvCpuidLeaf } from '../../spec/tlfs.js';
import type { HvFeatures } from './features.js';

/** CPUID 0x40000005 EBX: maximum logical processors (QEMU's hyperv_limits[0]). */
export const HV_LIMIT_LOGICAL_PROCESSORS = 64;

export interface HvCpuidOptions {
  /** CPUID 0x40000005 EAX: maximum virtual processors the partition supports. */
  maxVps: number;
}

function leaf(fn: number, eax: number, ebx = 0, ecx = 0, edx = 0): CpuidEntry {
  return { function: fn, index: 0, significantIndex: false, eax: eax | 0, ebx: ebx | 0, ecx: ecx | 0, edx: edx | 0 };
}

/** The vendor string as three little-endian registers, zero-padded to 12 bytes. */
export function vendorRegisters(vendor: string): [number, number, number] {
  const bytes = new Uint8Array(12);
  for (let i = 0; i < vendor.length && i < 12; i++) bytes[i] = vendor.charCodeAt(i) & 0xff;
  const dv = new DataView(bytes.buffer);
  return [dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true)];
}

/** Entries to append to the VMM's CPUID table; none when Hyper-V is not enabled. */
export function hypervCpuidEntries(features: HvFeatures, opts: HvCpuidOptions): CpuidEntry[] {
  if (!features.enabled) return [];
  if (!Number.isInteger(opts.maxVps) || opts.maxVps < 1 || opts.maxVps > 0xffffffff) {
    throw new RangeError(`maxVps ${opts.maxVps} is not a positive 32-bit number`);
  }
  const [vb, vc, vd] = vendorRegisters(features.vendorId);
  const v = features.version;
  const entries = [
    leaf(HvCpuidLeaf.VendorAndMax, HvCpuidLeaf.NestedFeatures, vb, vc, vd),
    leaf(HvCpuidLeaf.Interface, HV_INTERFACE_SIGNATURE),
    leaf(HvCpuidLeaf.Version, v.build, (v.major << 16) | v.minor, v.spack, (v.sbranch << 24) | (v.snumber & 0xffffff)),
    leaf(HvCpuidLeaf.Features, features.privilegesLow, features.privilegesHigh, 0, features.featuresEdx),
    leaf(HvCpuidLeaf.Recommendations, features.recommendations, features.spinlockRetries),
    leaf(HvCpuidLeaf.Limits, opts.maxVps, HV_LIMIT_LOGICAL_PROCESSORS),
  ];
  for (let fn = HvCpuidLeaf.Limits + 1; fn <= HvCpuidLeaf.NestedFeatures; fn++) entries.push(leaf(fn, 0));
  return entries;
}
