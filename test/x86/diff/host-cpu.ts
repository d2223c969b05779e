/** Identity and feature flags of the host CPU (from /proc/cpuinfo), which decide vendor rules and skipped forms. */
import { readFileSync } from 'node:fs';

export type Vendor = 'intel' | 'amd' | 'other';

export interface HostCpu {
  readonly vendor: Vendor;
  readonly vendorId: string;
  readonly modelName: string;
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  /** Linux cpuinfo flag names (popcnt, abm, bmi1, cx16, lahf_lm, sse4_1, ...). */
  readonly flags: ReadonlySet<string>;
}

export function parseCpuinfo(text: string): HostCpu {
  const first = text.split(/\n\s*\n/)[0] ?? '';
  const field = (name: string): string => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first);
    return m === null ? '' : m[1].trim();
  };
  const vendorId = field('vendor_id');
  return {
    vendor: vendorId === 'GenuineIntel' ? 'intel' : vendorId === 'AuthenticAMD' ? 'amd' : 'other',
    vendorId,
    modelName: field('model name'),
    family: Number(field('cpu family')) || 0,
    model: Number(field('model')) || 0,
    stepping: Number(field('stepping')) || 0,
    flags: new Set(field('flags').split(/\s+/).filter((f) => f.length > 0)),
  };
}

export function readHostCpu(): HostCpu {
  return parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
}

export function describeHostCpu(cpu: HostCpu): string {
  return `${cpu.vendorId} (${cpu.vendor}) "${cpu.modelName}" family ${cpu.family} model ${cpu.model} stepping ${cpu.stepping}`;
}
