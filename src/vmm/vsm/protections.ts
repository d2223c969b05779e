/**
 * The VTL memory protections of a VSM partition (tlfs-vsm-facts §3.8) and
 * their kvm form: RWX memory attributes on the Vm of every lower VTL
 * (kvm-api-facts §2). A protection set by VTL n says what the VTLs below n
 * may do with a page; VTL L's Vm carries the AND of the masks of every VTL
 * above L (`effectiveMask`), and an access its attributes deny comes back as
 * a memory-fault exit, which the VMM turns into an intercept for the lowest
 * VTL whose mask denies it (`interceptTargetVtl`, §3.10).
 *
 * Where the masks live. The masks of the highest VTL, M, are not stored
 * here: only M protects VTL M-1, so VTL M-1's attributes are exactly M's
 * masks (protection-mask.ts maps the seven masks to seven attribute values
 * one to one). The masks of a VTL n < M are kept in a range map of
 * their own, because VTL n-1's attributes also carry the masks above n.
 * With the default maximum VTL 1 the partition therefore stores VTL1's
 * protections once, in VTL0's attributes (issue 5's memory target counts
 * every byte of it). A page VTL n never protected has no mask (the same as
 * RWX for every access).
 */
import { GfnRangeMap } from '../../kvm/gfn-range-map.js';
import type { Vm } from '../../kvm/vm.js';
import { PAGE_SIZE } from '../../memory/phys-memory.js';
import { VsmError, uint } from './errors.js';
import { attributesToMask, interceptTargetVtl, maskToAttributes, PROTECTION_ALL, PROTECTION_ATTRIBUTES } from './protection-mask.js';

export class VtlProtections {
  /** Index = VTL n (1 ≤ n < maximumVtl): n's masks, stored as mask + 1 (0 = none). */
  private readonly explicit: (GfnRangeMap | undefined)[] = [];

  /**
   * `vms(n)`: VTL n's Vm, or undefined before the partition enables it.
   * Pages are frames below `frames` (the guest-physical address space).
   */
  constructor(readonly maximumVtl: number, private readonly vms: (vtl: number) => Vm | undefined, readonly frames: number) {
    for (let n = 1; n < maximumVtl; n++) this.explicit[n] = new GfnRangeMap();
  }

  /**
   * VTL `vtl` sets `mask` (a valid protection mask) on frames [start, end).
   * The attributes of every VTL below it are recomputed for those frames.
   */
  protect(vtl: number, start: number, end: number, mask: number): void {
    uint(vtl, this.maximumVtl, 'protecting VTL');
    if (vtl === 0) throw new VsmError('VTL0 cannot protect memory');
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > this.frames || start >= end) {
      throw new VsmError(`frames [${start}, ${end}) are not a range of the partition's ${this.frames} frames`);
    }
    const attrs = maskToAttributes(mask); // also validates the mask
    const below = this.vms(vtl - 1);
    if (below === undefined) throw new VsmError(`VTL${vtl} protects memory but VTL${vtl - 1} has no Vm`);
    if (vtl < this.maximumVtl) {
      this.explicit[vtl]!.set(start, end, mask + 1);
      // VTL vtl-1 sees this mask AND what the VTLs above vtl allow, which is VTL vtl's own effective mask.
      const self = this.vms(vtl);
      if (self === undefined) throw new VsmError(`VTL${vtl} protects memory but has no Vm`);
      self.memoryAttributes.forEachIn(start, end, (s, e, a) => setAttributes(below, s, e, maskToAttributes(mask & attributesToMask(a))));
    } else {
      setAttributes(below, start, end, attrs);
    }
    // Further down, VTL L sees the mask of VTL L+1 AND VTL L+1's effective mask.
    for (let l = vtl - 2; l >= 0; l--) {
      const vm = this.vms(l);
      if (vm === undefined) continue;
      const upper = this.vms(l + 1)!, masks = this.explicit[l + 1]!;
      masks.forEachIn(start, end, (s, e, m) => {
        const own = m === 0 ? PROTECTION_ALL : m - 1;
        upper.memoryAttributes.forEachIn(s, e, (s2, e2, a) => setAttributes(vm, s2, e2, maskToAttributes(own & attributesToMask(a))));
      });
    }
  }

  /** Bytes of the VMM's own mask stores (benchmarks; kvm's attributes are counted by each Vm). */
  get storageBytes(): number {
    return this.explicit.reduce((sum, m) => sum + (m?.storageBytes ?? 0), 0);
  }

  /** VTL `vtl`'s mask of frame `gfn`, or undefined where it set none. */
  maskOf(vtl: number, gfn: number): number | undefined {
    if (vtl === this.maximumVtl) {
      const below = this.vms(vtl - 1);
      if (below === undefined || this.vms(vtl) === undefined) return undefined;
      const a = below.memoryAttributes.get(gfn) & PROTECTION_ATTRIBUTES;
      return a === 0 ? undefined : attributesToMask(a);
    }
    const m = this.explicit[vtl]?.get(gfn) ?? 0;
    return m === 0 ? undefined : m - 1;
  }

  /** Index = VTL: each VTL's mask of frame `gfn` (for protection-mask.ts's effectiveMask / interceptTargetVtl). */
  masksAt(gfn: number): (number | undefined)[] {
    const out: (number | undefined)[] = [undefined];
    for (let n = 1; n <= this.maximumVtl; n++) out.push(this.maskOf(n, gfn));
    return out;
  }

  /**
   * The VTL an access (HvInterceptAccessType) by VTL `lower` to frame `gfn`
   * is intercepted to, or -1 when no VTL's protection denies it (the fault
   * was not a VTL protection's). `userExecute`: an execute checked against
   * UX (protection-mask.ts maskAllows).
   */
  interceptTarget(gfn: number, lower: number, accessType: number, userExecute = false): number {
    return interceptTargetVtl(this.masksAt(gfn), lower, accessType, userExecute);
  }
}

function setAttributes(vm: Vm, start: number, end: number, attributes: number): void {
  vm.setMemoryAttributes({ address: start * PAGE_SIZE, size: (end - start) * PAGE_SIZE, attributes, flags: 0 });
}
