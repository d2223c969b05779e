/**
 * A CpuHost with no devices and no policy: ports and MMIO read as all-ones and
 * ignore writes, every page is unrestricted, CPUID is zero, foreign MSRs #GP,
 * no interrupts, TSC 0. For tools and tests; extend it and override what you need.
 */
import { ACCESS_ALL, type CpuHost, type MemFaultInfo, type RegisterAccessInfo } from './host.js';

export class NullCpuHost implements CpuHost {
  ioRead(_port: number, size: number): number { return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff; }
  ioWrite(_port: number, _size: number, _value: number): void {}
  mmioRead(_gpa: number, size: number): number { return size === 1 ? 0xff : size === 2 ? 0xffff : -1; }
  mmioWrite(_gpa: number, _size: number, _lo: number, _hi: number): void {}
  pagePermissions(_pfn: number): number { return ACCESS_ALL; }
  memFault(_info: MemFaultInfo): void {}
  cpuid(_leaf: number, _subleaf: number, out: Int32Array): void { out.fill(0); }
  rdmsr(_index: number, _out: Int32Array): boolean { return false; }
  wrmsr(_index: number, _lo: number, _hi: number): boolean { return false; }
  registerAccess(_info: RegisterAccessInfo): void {}
  hypercall(_isVmmcall: boolean): void {}
  halt(): void {}
  shutdown(_reason: string): void {}
  pendingInterrupt(): number { return -1; }
  acknowledgeInterrupt(_vector: number): void {}
  readCr8(): number { return 0; }
  writeCr8(_value: number): void {}
  readTsc(out: Int32Array): void { out[0] = 0; out[1] = 0; }
}
