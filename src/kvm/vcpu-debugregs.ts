/**
 * KVM_GET_DEBUGREGS / KVM_SET_DEBUGREGS (struct kvm_debugregs { db[4], dr6,
 * dr7, flags, reserved[9] }; upstream api.rst "KVM_GET_DEBUGREGS", x86.c
 * kvm_vcpu_ioctl_x86_set_debugregs).
 *
 * Set checks, as KVM's (EINVAL, nothing changed): flags ≠ 0, DR6 or DR7 with
 * bits 63:32 set (kvm_dr6_valid / kvm_dr7_valid), and values that are not
 * u64 bigints. DR0-DR3 are stored as given. DR6 and DR7 get the fixed bits a
 * MOV to DR6/DR7 gives them (DR6 bits 31:16 and 11:4 read as 1, DR7 bit 10
 * as 1 and bits 15:14, 12 and 11 as 0): our CPU keeps the value a guest reads,
 * where KVM keeps the raw value and the hardware supplies the fixed bits.
 * Breakpoints themselves are not implemented by the CPU (stored only).
 */
import type { Cpu } from '../x86/cpu.js';
import { KvmError } from './errors.js';
import { u64FromHalves as big } from '../x86/u64.js';

/** struct kvm_debugregs (less reserved[]). */
export interface KvmDebugRegs { db: [bigint, bigint, bigint, bigint]; dr6: bigint; dr7: bigint; flags: number }

const lo32 = (v: bigint): number => Number(v & 0xffffffffn) | 0;
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn) | 0;

/** DR6 bits that read as 1 (SDM 17.2.3: 31:16 and 11:4 on processors without RTM/bus-lock detection). */
export const DR6_FIXED_1 = 0xffff0ff0;
/** DR7: bit 10 reads as 1; bits 15:14, 12 and 11 (RTM, absent) read as 0 (SDM 17.2.4). */
export const DR7_FIXED_1 = 0x400, DR7_FIXED_0 = 0xd800;

function u64(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) throw new KvmError('EINVAL', `${what} must be a bigint in 0..2^64-1, got ${String(v)}`);
  return v;
}

export function getDebugRegs(c: Cpu): KvmDebugRegs {
  const r = (k: number) => big(c.drLo[k], c.drHi[k]);
  return { db: [r(0), r(1), r(2), r(3)], dr6: r(6), dr7: r(7), flags: 0 };
}

export function setDebugRegs(c: Cpu, d: KvmDebugRegs): void {
  if (typeof d !== 'object' || d === null) throw new KvmError('EFAULT', 'the debug registers argument is not an object');
  if (d.flags !== 0) throw new KvmError('EINVAL', `debug registers flags must be 0, got ${String(d.flags)}`);
  if (!Array.isArray(d.db) || d.db.length !== 4) throw new KvmError('EINVAL', 'debug registers need db[4] (DR0-DR3)');
  const db = d.db.map((v, k) => u64(v, `DR${k}`));
  const dr6 = u64(d.dr6, 'DR6'), dr7 = u64(d.dr7, 'DR7');
  if (dr6 >> 32n) throw new KvmError('EINVAL', `DR6 0x${dr6.toString(16)} sets bits 63:32, which are reserved`);
  if (dr7 >> 32n) throw new KvmError('EINVAL', `DR7 0x${dr7.toString(16)} sets bits 63:32, which are reserved`);
  db.forEach((v, k) => { c.drLo[k] = lo32(v); c.drHi[k] = hi32(v); });
  c.drLo[6] = lo32(dr6) | DR6_FIXED_1; c.drHi[6] = 0;
  c.drLo[7] = (lo32(dr7) & ~DR7_FIXED_0) | DR7_FIXED_1; c.drHi[7] = 0;
}
