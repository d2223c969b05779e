/**
 * HV_REGISTER_VALUE (16 bytes; tlfs-vsm-facts §2.15) in the shapes
 * Get/SetVpRegisters use: a 64-bit value (upper 8 bytes zero on output,
 * ignored on input), a 128-bit value (XMM, pending event), a segment
 * (HV_X64_SEGMENT_REGISTER) or a table register (HV_X64_TABLE_REGISTER).
 */
import type { KvmDtable } from '../../kvm/vcpu-regs.js';
import { HV_REGISTER_VALUE_BYTES } from '../../spec/tlfs.js';
import { VsmError, u64 } from './errors.js';
import type { HvSegment } from './intercept-message.js';
import { readHvSegment, readHvTable, writeHvSegment, writeHvTable } from './segment.js';

export type RegisterKind = 'u64' | 'u128' | 'segment' | 'table';

export type RegisterValue =
  | { readonly kind: 'u64'; readonly value: bigint }
  | { readonly kind: 'u128'; readonly low: bigint; readonly high: bigint }
  | { readonly kind: 'segment'; readonly segment: HvSegment }
  | { readonly kind: 'table'; readonly table: KvmDtable };

export function encodeRegisterValue(v: RegisterValue): Uint8Array {
  const out = new Uint8Array(HV_REGISTER_VALUE_BYTES);
  const dv = new DataView(out.buffer);
  switch (v?.kind) {
    case 'u64': dv.setBigUint64(0, u64(v.value, 'register value'), true); break;
    case 'u128':
      dv.setBigUint64(0, u64(v.low, 'register value (low)'), true);
      dv.setBigUint64(8, u64(v.high, 'register value (high)'), true);
      break;
    case 'segment': writeHvSegment(out, 0, v.segment); break;
    case 'table': writeHvTable(out, 0, v.table); break;
    default: throw new VsmError(`register value kind ${String((v as { kind?: unknown })?.kind)} is not u64, u128, segment or table`);
  }
  return out;
}

/**
 * Decodes 16 bytes as `kind`; null when the bytes are not a valid value of
 * that kind (a segment with reserved attribute bits 11:8), which
 * SetVpRegisters answers with INVALID_REGISTER_VALUE.
 */
export function decodeRegisterValue(kind: RegisterKind, bytes: Uint8Array): RegisterValue | null {
  if (!(bytes instanceof Uint8Array) || bytes.length !== HV_REGISTER_VALUE_BYTES) throw new VsmError(`a register value is ${HV_REGISTER_VALUE_BYTES} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (kind) {
    case 'u64': return { kind, value: dv.getBigUint64(0, true) };
    case 'u128': return { kind, low: dv.getBigUint64(0, true), high: dv.getBigUint64(8, true) };
    case 'segment': { const segment = readHvSegment(bytes, 0); return segment === null ? null : { kind, segment }; }
    case 'table': return { kind, table: readHvTable(bytes, 0) };
    default: throw new VsmError(`register value kind ${String(kind)} is not u64, u128, segment or table`);
  }
}
