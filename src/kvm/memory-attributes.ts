/**
 * Memory attributes (KVM_SET_MEMORY_ATTRIBUTES, kvm-api-facts.md §2): per
 * 4 KiB guest frame, the proposed negated permissions NR/NW/NX (VSM-18
 * patches 15-16), the upstream PRIVATE bit, and XU, our extension for
 * mode-based execute control (src/kvm/README.md "Mode-based execute
 * control"). The VMM sets them on a Vm (VSM: ModifyVtlProtectionMask on the
 * lower VTL's Vm); every vCPU access the attributes deny becomes a
 * memory-fault exit.
 *
 * Stored as ranges (gfn-range-map.ts), not per page (DESIGN §3.4). There is
 * no getter in KVM; get()/ranges() exist for the VMM's in-kernel-style checks
 * (§2.7) and for tests.
 */
import { ACCESS_ALL, ACCESS_EXEC, ACCESS_EXEC_USER, ACCESS_READ, ACCESS_WRITE } from '../x86/host.js';
import { KvmError } from './errors.js';
import { GfnRangeMap, type GfnRange } from './gfn-range-map.js';

/** Attribute bits (§2.2). */
export const KVM_MEMORY_ATTRIBUTE_NR = 1 << 0;
export const KVM_MEMORY_ATTRIBUTE_NW = 1 << 1;
export const KVM_MEMORY_ATTRIBUTE_NX = 1 << 2;
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3;
/**
 * Our extension (not upstream, not in the VSM-18 series): with NX, user
 * execute stays allowed. It matters only to a vCPU with mode-based execute
 * control on (Vcpu.setMbecControl), whose fetches from user-mode linear
 * addresses it governs instead of NX (Intel EPT's XU bit beside XS); other
 * vCPUs ignore it. Positive, unlike NR/NW/NX, so that NX alone keeps
 * meaning "no execute" for every vCPU and 0 stays "no restriction". Valid
 * only with NX and without NR (execute without read is EINVAL, §2.3).
 */
export const KVM_MEMORY_ATTRIBUTE_XU = 1 << 4;
/** Capability whose CHECK_EXTENSION answer is the mask of supported bits (§2.1). */
export const KVM_CAP_MEMORY_ATTRIBUTES = 233;
/** The system-scope answer (no VM): every bit any VM type may support (§2.1). */
export const KVM_MEMORY_ATTRIBUTES_ALL = 0x1f;

const NR = KVM_MEMORY_ATTRIBUTE_NR, NW = KVM_MEMORY_ATTRIBUTE_NW, NX = KVM_MEMORY_ATTRIBUTE_NX;
const PRIVATE = KVM_MEMORY_ATTRIBUTE_PRIVATE, XU = KVM_MEMORY_ATTRIBUTE_XU;
const U64_LIMIT = 1n << 64n;
const PAGE = 4096n;

/** struct kvm_memory_attributes (§2.1); u64 fields as bigint or safe integers. */
export interface MemoryAttributesRequest {
  address: bigint | number;
  size: bigint | number;
  attributes: bigint | number;
  flags: bigint | number;
}

/** What one accepted request changed (the kvm_vm_set_mem_attributes trace event's fields, §2.8). */
export interface MemoryAttributesChange { readonly gfn: number; readonly count: number; readonly attributes: number }

/** CHECK_EXTENSION(KVM_CAP_MEMORY_ATTRIBUTES) for a VM: NR|NW|NX|XU always, PRIVATE only with private memory (§2.1). */
export function supportedMemoryAttributes(privateMemory: boolean): number {
  return NR | NW | NX | XU | (privateMemory ? PRIVATE : 0);
}

/**
 * Whether `attrs` is one of the valid combinations of §2.3: no unsupported
 * bit, no write or execute permission without read (NR needs NW and NX,
 * and excludes XU), XU only with NX, and PRIVATE only alone.
 */
export function validAttributes(attrs: bigint, supported: number): boolean {
  if ((attrs & ~BigInt(supported)) !== 0n) return false;
  const a = Number(attrs);
  if (a & PRIVATE) return a === PRIVATE;
  if ((a & XU) && (a & (NR | NX)) !== NX) return false;
  return (a & NR) === 0 || (a & (NW | NX)) === (NW | NX);
}

/** ACCESS_* bits a guest access may use on a frame with these attributes; PRIVATE frames allow none (see Vcpu.memFault). */
const PERMISSIONS = new Uint8Array(32).map((_, a) => {
  if (a & PRIVATE) return 0;
  let p = ACCESS_ALL;
  if (a & NR) p &= ~ACCESS_READ;
  if (a & NW) p &= ~ACCESS_WRITE;
  if (a & NX) p &= (a & XU) ? ~ACCESS_EXEC : ~(ACCESS_EXEC | ACCESS_EXEC_USER);
  return p;
});

export class MemoryAttributes {
  /** Bits this VM accepts (the CHECK_EXTENSION answer). */
  readonly supported: number;
  private readonly map = new GfnRangeMap();
  /** Incremented on every accepted change: vCPUs compare it to know their derived permissions are stale. */
  generation = 0;

  constructor(privateMemory: boolean) {
    this.supported = supportedMemoryAttributes(privateMemory);
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES. Checks in the order of §2.4, all EINVAL (a
   * request that is not an object is the copy failure, EFAULT); on error
   * nothing changes. Attributes 0 remove any restriction. The range need
   * not be RAM: attributes on MMIO addresses are stored and ignored (§2.5).
   */
  set(req: MemoryAttributesRequest): MemoryAttributesChange {
    if (typeof req !== 'object' || req === null) throw new KvmError('EFAULT', 'the memory attributes argument is not an object');
    const flags = u64(req.flags, 'flags');
    if (flags !== 0n) throw new KvmError('EINVAL', `memory attributes flags must be 0, got 0x${flags.toString(16)}`);
    const attrs = u64(req.attributes, 'attributes');
    if (!validAttributes(attrs, this.supported)) {
      throw new KvmError('EINVAL', `memory attributes 0x${attrs.toString(16)} are not a valid combination for this VM (supported 0x${this.supported.toString(16)}; write or execute without read, XU without NX, PRIVATE with restrictions and unsupported bits are rejected)`);
    }
    const size = u64(req.size, 'size');
    const address = u64(req.address, 'address');
    if (size === 0n) throw new KvmError('EINVAL', 'memory attributes size is 0');
    if (address + size > U64_LIMIT) throw new KvmError('EINVAL', `memory attributes range 0x${address.toString(16)}+0x${size.toString(16)} wraps past 2^64`);
    if (address % PAGE !== 0n || size % PAGE !== 0n) {
      throw new KvmError('EINVAL', `memory attributes address 0x${address.toString(16)} and size 0x${size.toString(16)} must be 4 KiB aligned`);
    }
    const gfn = Number(address / PAGE), count = Number(size / PAGE);
    this.map.set(gfn, gfn + count, Number(attrs));
    this.generation++;
    return { gfn, count, attributes: Number(attrs) };
  }

  /** Attributes of a frame (0: unrestricted). */
  get(gfn: number): number { return this.map.get(gfn); }

  /** ACCESS_* bits guest accesses may use on a frame (the vCPU's pagePermissions answer). */
  permissions(gfn: number): number {
    return this.map.size === 0 ? ACCESS_ALL : PERMISSIONS[this.map.get(gfn)];
  }

  /** Calls fn(s, e, attributes) for the pieces of frames [start, end) with one attribute value each (0: unrestricted). */
  forEachIn(start: number, end: number, fn: (s: number, e: number, attributes: number) => void): void {
    this.map.forEachIn(start, end, fn);
  }

  /** Number of stored ranges. */
  get rangeCount(): number { return this.map.size; }
  /** Bytes of range storage (benchmarks). */
  get storageBytes(): number { return this.map.storageBytes; }
  /** The restricted ranges, in GFNs, in order. */
  ranges(): GfnRange[] { return this.map.ranges(); }
}

/** A u64 field: a bigint in 0..2^64-1 or a safe non-negative integer. */
function u64(v: unknown, name: string): bigint {
  if (typeof v === 'bigint' && v >= 0n && v < U64_LIMIT) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new KvmError('EINVAL', `memory attributes ${name} must be a u64 (a bigint or safe integer in 0..2^64-1), got ${String(v)}`);
}
