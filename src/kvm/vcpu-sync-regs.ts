/**
 * The general-purpose registers as KVM_CAP_SYNC_REGS (KVM_SYNC_X86_REGS)
 * offers them: in the shared kvm_run area, readable after an exit and
 * writable before the next run without a KVM_GET/SET_REGS ioctl (upstream
 * api.rst "kvm_valid_regs", "kvm_dirty_regs"). A VMM that looks at two or
 * three registers per exit (a hypercall's input in RAX, say) uses this
 * instead of building and checking the whole struct kvm_regs. Our vCPU
 * never runs while the VMM holds control, so the view reads and writes the
 * CPU's registers directly: a write is "dirty" state applied at once.
 *
 * Registers are numbered as in struct kvm_regs' x86 encoding: RAX 0, RCX 1,
 * RDX 2, RBX 3, RSP 4, RBP 5, RSI 6, RDI 7, R8-R15 8-15. RIP and RFLAGS,
 * which have rules of their own, go through KVM_SET_REGS.
 */
import type { Cpu } from '../x86/cpu.js';
import { KvmError } from './errors.js';

const U64_MAX = (1n << 64n) - 1n;

export class KvmSyncRegs {
  /** Converts between a u64 and the CPU's int32 halves (cheaper than BigInt arithmetic). */
  private readonly dv = new DataView(new ArrayBuffer(8));

  constructor(private readonly cpu: Cpu) {}

  /** GPR `n` as a u64. */
  gpr(n: number): bigint {
    check(n);
    this.dv.setInt32(0, this.cpu.rlo[n], true);
    this.dv.setInt32(4, this.cpu.rhi[n], true);
    return this.dv.getBigUint64(0, true);
  }

  /** The low and high 32 bits of GPR `n` as int32s (no BigInt: DESIGN §3.1). */
  gprLo(n: number): number { check(n); return this.cpu.rlo[n]!; }
  gprHi(n: number): number { check(n); return this.cpu.rhi[n]!; }

  /** Sets GPR `n` from its halves (int32 or uint32 values; EINVAL for anything else). */
  setGprHalves(n: number, lo: number, hi: number): void {
    check(n);
    if (!isWord(lo) || !isWord(hi)) throw new KvmError('EINVAL', `GPR halves ${String(lo)}, ${String(hi)} are not 32-bit values`);
    this.cpu.rlo[n] = lo; this.cpu.rhi[n] = hi;
  }

  /** Sets GPR `n` (EINVAL for a value that is not a u64). */
  setGpr(n: number, v: bigint): void {
    check(n);
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new KvmError('EINVAL', `GPR value ${String(v)} is not a u64`);
    this.dv.setBigUint64(0, v, true);
    this.cpu.rlo[n] = this.dv.getInt32(0, true);
    this.cpu.rhi[n] = this.dv.getInt32(4, true);
  }
}

const isWord = (v: number): boolean => Number.isInteger(v) && v >= -0x8000_0000 && v <= 0xffff_ffff;

function check(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 15) throw new KvmError('EINVAL', `GPR number ${String(n)} is not 0-15`);
}
