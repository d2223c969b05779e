/**
 * HV_X64_SEGMENT_REGISTER and HV_X64_TABLE_REGISTER (tlfs-vsm-facts §2.13)
 * and their conversion from and to KVM's kvm_segment / kvm_dtable.
 *
 * The TLFS attribute word (type 3:0, S 4, DPL 6:5, P 7, reserved 11:8, AVL
 * 12, L 13, D/B 14, G 15) is the VMX access-rights layout our segment cache
 * uses (src/x86/segment-cache.ts). KVM's "unusable" has no TLFS bit: an
 * unusable segment is one with P = 0 (what our CPU keeps, too). Limits are
 * byte limits, granularity applied, in both.
 */
import type { KvmDtable, KvmSegment } from '../../kvm/vcpu-regs.js';
import { HV_SEGMENT_ATTR_RESERVED, HvSegmentRegister, HvTableRegister } from '../../spec/tlfs.js';
import type { HvSegment } from './intercept-message.js';
import { VsmError, u64, uint } from './errors.js';

export type { HvSegment };

export function hvSegmentFromKvm(s: KvmSegment): HvSegment {
  const present = s.present && !s.unusable ? 1 : 0;
  return {
    base: s.base, limit: s.limit >>> 0, selector: s.selector & 0xffff,
    attributes: (s.type & 0xf) | (s.s << 4) | (s.dpl << 5) | (present << 7) | (s.avl << 12) | (s.l << 13) | (s.db << 14) | (s.g << 15),
  };
}

export function kvmSegmentFromHv(h: HvSegment): KvmSegment {
  const a = h.attributes;
  const present = (a >> 7) & 1;
  return {
    base: h.base, limit: h.limit >>> 0, selector: h.selector,
    type: a & 0xf, s: (a >> 4) & 1, dpl: (a >> 5) & 3, present, avl: (a >> 12) & 1, l: (a >> 13) & 1, db: (a >> 14) & 1,
    g: (a >> 15) & 1, unusable: present ? 0 : 1,
  };
}

/** Reads an HV_X64_SEGMENT_REGISTER; reserved attribute bits 11:8 are refused (the caller maps that to its status). */
export function readHvSegment(bytes: Uint8Array, off: number): HvSegment | null {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const attributes = dv.getUint16(off + HvSegmentRegister.Attributes, true);
  if (attributes & HV_SEGMENT_ATTR_RESERVED) return null;
  return {
    base: dv.getBigUint64(off + HvSegmentRegister.Base, true), limit: dv.getUint32(off + HvSegmentRegister.Limit, true),
    selector: dv.getUint16(off + HvSegmentRegister.Selector, true), attributes,
  };
}

/** HV_X64_TABLE_REGISTER: 6 pad bytes, limit u16 @6, base u64 @8. */
export function readHvTable(bytes: Uint8Array, off: number): KvmDtable {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { limit: dv.getUint16(off + HvTableRegister.Limit, true), base: dv.getBigUint64(off + HvTableRegister.Base, true) };
}

export function writeHvTable(bytes: Uint8Array, off: number, t: KvmDtable): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes.fill(0, off, off + HvTableRegister.Limit);
  dv.setUint16(off + HvTableRegister.Limit, uint(t.limit, 0xffff, 'table limit'), true);
  dv.setBigUint64(off + HvTableRegister.Base, u64(t.base, 'table base'), true);
}

export function writeHvSegment(bytes: Uint8Array, off: number, s: HvSegment): void {
  if (s.attributes & HV_SEGMENT_ATTR_RESERVED) throw new VsmError(`segment attributes 0x${s.attributes.toString(16)} set the reserved bits 11:8`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  dv.setBigUint64(off + HvSegmentRegister.Base, u64(s.base, 'segment base'), true);
  dv.setUint32(off + HvSegmentRegister.Limit, uint(s.limit, 0xffffffff, 'segment limit'), true);
  dv.setUint16(off + HvSegmentRegister.Selector, uint(s.selector, 0xffff, 'segment selector'), true);
  dv.setUint16(off + HvSegmentRegister.Attributes, uint(s.attributes, 0xffff, 'segment attributes'), true);
}
