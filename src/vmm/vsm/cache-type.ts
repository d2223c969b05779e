/**
 * HV_CACHE_TYPE (tlfs-vsm-facts §5.4) of a guest access, as the memory
 * intercept message and the TranslateVirtualAddress result report it: the
 * PAT memory type the leaf paging entry selects (WB when paging is off).
 * HV_CACHE_TYPE values equal the PAT encodings, except that PAT's UC- (7)
 * has no HV_CACHE_TYPE: we report it as Uncached (the sheet is silent).
 * MTRRs are not modelled (our CPU has none), so the PAT type is the type.
 */
import { HvCacheType } from '../../spec/tlfs.js';
import { VsmError, u64 } from './errors.js';

/** PAT index of a leaf entry (SDM 4.9.2): PWT bit 3, PCD bit 4, PAT bit 7 (4 KiB) or bit 12 (2 MiB / 1 GiB). */
export function patIndex(leafEntry: bigint, largePage: boolean): number {
  u64(leafEntry, 'paging entry');
  const pwt = Number((leafEntry >> 3n) & 1n), pcd = Number((leafEntry >> 4n) & 1n);
  const pat = Number((leafEntry >> (largePage ? 12n : 7n)) & 1n);
  return (pat << 2) | (pcd << 1) | pwt;
}

/** The HV_CACHE_TYPE of PAT entry `index` (0..7) of the IA32_PAT value `pat`. */
export function cacheTypeFromPat(pat: bigint, index: number): number {
  u64(pat, 'IA32_PAT');
  if (!Number.isInteger(index) || index < 0 || index > 7) throw new VsmError(`PAT index ${String(index)} is not in 0..7`);
  const type = Number((pat >> BigInt(8 * index)) & 0xffn);
  switch (type) {
    case 0: case 7: return HvCacheType.Uncached;
    case 1: return HvCacheType.WriteCombining;
    case 4: return HvCacheType.WriteThrough;
    case 5: return HvCacheType.WriteProtected;
    case 6: return HvCacheType.WriteBack;
    default: throw new VsmError(`PAT entry ${index} holds ${type}, which is not a memory type`);
  }
}
