/**
 * The CPUID table the VMM gives each vCPU (pc-platform-facts.md §4): an Intel
 * vendor, leaves 0..0xD and 0x80000000..0x80000008 describing exactly what our
 * CPU implements.
 */
import type { CpuidEntry } from '../kvm/cpuid.js';
import { MAX_PHYS_BITS } from '../x86/mmu.js';
import { XSAVE_AREA_BYTES, XSAVE_SUPPORTED } from '../x86/ops/fxsave.js';

const bit = (n: number) => (1 << n) >>> 0;
function str4(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) | 0;
}
function leaf(fn: number, eax: number, ebx: number, ecx: number, edx: number, index = 0, significantIndex = false): CpuidEntry {
  return { function: fn, index, significantIndex, eax: eax | 0, ebx: ebx | 0, ecx: ecx | 0, edx: edx | 0 };
}

export function defaultCpuid(cpuCount: number): CpuidEntry[] {
  // Leaf 1 EDX: FPU TSC MSR PAE CX8 APIC PGE CMOV PAT PSE CLFSH FXSR SSE SSE2 (PSE=3).
  const edx1 = bit(0) | bit(3) | bit(4) | bit(5) | bit(6) | bit(8) | bit(9) | bit(13) | bit(15) | bit(16) | bit(19) |
    bit(24) | bit(25) | bit(26);
  // Leaf 1 ECX: CX16 (13), PCID (17), x2APIC (21), POPCNT (23), TSC-deadline (24), XSAVE (26), hypervisor (31);
  // OSXSAVE (27) follows CR4 (kvm's Vcpu.cpuid).
  const ecx1 = bit(13) | bit(17) | bit(21) | bit(23) | bit(24) | bit(26) | bit(31);
  const smtShift = Math.ceil(Math.log2(Math.max(1, cpuCount)));
  return [
    leaf(0, 0xd, str4('Genu'), str4('ntel'), str4('ineI')),
    leaf(1, 0x000306a9, (cpuCount & 0xff) << 16 | (8 << 8), ecx1, edx1),
    // Leaf 7.0 EBX: SMEP (7), INVPCID (10), SMAP (20).
    leaf(7, 0, bit(7) | bit(10) | bit(20), 0, 0, 0, true),
    leaf(0xa, 0, 0, 0, 0),
    // Topology: every CPU a core of one package (subleaf 0 SMT level with one thread, subleaf 1 core level).
    leaf(0xb, 0, 1, 0 | (1 << 8), 0, 0, true),
    leaf(0xb, smtShift, cpuCount, 1 | (2 << 8), 0, 1, true),
    leaf(0xb, 0, 0, 2, 0, 2, true),
    // XSAVE (SDM vol. 1 13.2): XCR0 may enable x87 and SSE (EAX), a standard-form area for them is 576 bytes
    // (EBX for the enabled ones, ECX for all); subleaf 1: no XSAVEOPT, XSAVEC, XGETBV with ECX = 1 or XSAVES.
    leaf(0xd, XSAVE_SUPPORTED, XSAVE_AREA_BYTES, XSAVE_AREA_BYTES, 0, 0, true),
    leaf(0xd, 0, 0, 0, 0, 1, true),
    leaf(0x80000000, 0x80000008, 0, 0, 0),
    // 0x80000001: ECX LAHF/SAHF (0), LZCNT (5); EDX SYSCALL (11), NX (20), 1 GiB pages (26), RDTSCP (27), LM (29).
    leaf(0x80000001, 0, 0, bit(0) | bit(5), bit(11) | bit(20) | bit(26) | bit(27) | bit(29)),
    leaf(0x80000008, MAX_PHYS_BITS | (48 << 8), 0, 0, 0),
  ];
}
