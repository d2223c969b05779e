/**
 * Processor sets of the flush and IPI hypercalls: the 64-VP processor mask
 * of the non-Ex calls (fact sheet §2.4, §2.6) and the sparse HV_VP_SET of
 * the Ex calls (§2.5): a format (0 sparse, 1 all), a valid-banks mask, and
 * one u64 per present bank in ascending bank order, bank b holding VPs
 * 64b..64b+63. The bank words are the call's variable header.
 *
 * VP indices name vCPUs by id (VP_INDEX reads the vCPU id, partition.ts).
 * A set may name VPs that do not exist; they are ignored, as KVM does.
 */
import {
  HV_GENERIC_SET_ALL,
  HV_GENERIC_SET_SPARSE_4K,
  HV_MAX_SPARSE_VCPU_BANKS,
  HV_VCPUS_PER_SPARSE_BANK,
  HvStatus,
  HvVpSetOffset,
} from '../../spec/tlfs.js';
import type { HcInput } from './hc-input.js';

export class VpSet {
  /** Bank words as int32 pairs (low, high), indexed by bank number; absent banks are 0. */
  private readonly words = new Int32Array(2 * HV_MAX_SPARSE_VCPU_BANKS);

  private constructor(
    /** Every VP of the partition. */
    readonly all: boolean,
  ) {}

  /** Every VP (HV_FLUSH_ALL_PROCESSORS, HV_GENERIC_SET_ALL). */
  static everyVp(): VpSet { return new VpSet(true); }

  /** The 64-VP processor mask of the non-Ex calls (bit n = VP n), as int32 halves. */
  static fromMask(lo: number, hi: number): VpSet {
    const s = new VpSet(false);
    s.words[0] = lo; s.words[1] = hi;
    return s;
  }

  has(vp: number): boolean {
    if (this.all) return true;
    const bank = Math.floor(vp / HV_VCPUS_PER_SPARSE_BANK);
    if (bank >= HV_MAX_SPARSE_VCPU_BANKS) return false;
    const bit = vp % HV_VCPUS_PER_SPARSE_BANK;
    return ((this.words[2 * bank + (bit >>> 5)] >>> (bit & 31)) & 1) === 1;
  }

  /** No VP at all (a present bank may be zero, §2.5). */
  get isEmpty(): boolean {
    return !this.all && this.words.every((w) => w === 0);
  }

  /** The members among `items` (anything with a VP index as `id`), in ascending VP index order. */
  select<T extends { readonly id: number }>(items: readonly T[]): T[] {
    const out = items.filter((v) => this.has(v.id));
    for (let k = 1; k < out.length; k++) {
      if (out[k - 1].id > out[k].id) return out.sort((a, b) => a.id - b.id);
    }
    return out;
  }

  /**
   * An HV_VP_SET at `offset` of the input block whose bank words are the
   * variable header (`varHeaderQwords` of them). Format 1 is every VP and
   * ignores the banks (TLFS; the fact sheet's advice is to accept it).
   * Format 0 needs exactly popcount(ValidBanksMask) bank words, else
   * INVALID_PARAMETER (§2.5, hv1_structs); any other format is
   * INVALID_PARAMETER. Returns the set or an HV_STATUS.
   */
  static parse(input: HcInput, offset: number, varHeaderQwords: number): VpSet | number {
    const format = input.u64(offset + HvVpSetOffset.Format);
    if (format === BigInt(HV_GENERIC_SET_ALL)) return VpSet.everyVp();
    if (format !== BigInt(HV_GENERIC_SET_SPARSE_4K)) return HvStatus.INVALID_PARAMETER;
    const maskLo = input.lo(offset + HvVpSetOffset.ValidBanksMask);
    const maskHi = input.hi(offset + HvVpSetOffset.ValidBanksMask);
    if (popcount32(maskLo) + popcount32(maskHi) !== varHeaderQwords) return HvStatus.INVALID_PARAMETER;
    const s = new VpSet(false);
    let at = offset + HvVpSetOffset.BankContents;
    for (let bank = 0; bank < HV_MAX_SPARSE_VCPU_BANKS; bank++) {
      const present = bank < 32 ? (maskLo >>> bank) & 1 : (maskHi >>> (bank - 32)) & 1;
      if (!present) continue;
      s.words[2 * bank] = input.lo(at);
      s.words[2 * bank + 1] = input.hi(at);
      at += 8;
    }
    return s;
  }
}

export function popcount32(v: number): number {
  let x = v >>> 0;
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
