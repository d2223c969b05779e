/**
 * Guest time (DESIGN §3.5): derived from executed instructions, never from the
 * host clock. The scheduler runs vCPUs in rounds; each round starts at
 * `roundStartNs`, and a vCPU's time inside a round is that plus its own
 * retired instructions times `nsPerInsn`. When every vCPU is halted the
 * scheduler jumps time forward to the next timer deadline.
 */
export class GuestClock {
  /** Guest nanoseconds at the start of the current scheduling round. */
  roundStartNs = 0;
  constructor(
    /** Virtual nanoseconds per retired instruction (1 = a 1000-MIPS guest). */
    readonly nsPerInsn = 1,
    /** Guest TSC frequency in Hz. */
    readonly tscHz = 1_000_000_000,
  ) {
    if (!(nsPerInsn > 0) || !(tscHz > 0)) throw new RangeError('clock rates must be positive');
  }

  /** Latest guest time any vCPU has observed (see observe()). */
  private observedNs = 0;

  /**
   * A guest-visible time read (TSC, reference counter) at a vCPU's local time
   * `ns`. vCPUs run one after another within a round, each with its own local
   * time, so a vCPU that ran fewer instructions is "earlier" than one that ran
   * more; but whatever one vCPU observes can reach another only later in host
   * order. Returning the maximum of the local time and every earlier
   * observation keeps time monotonic across vCPUs (a read never precedes a
   * read that causally came before it), deterministically.
   */
  observe(ns: number): number {
    if (ns > this.observedNs) this.observedNs = ns;
    return this.observedNs;
  }

  /** TSC value for a guest time in ns. */
  tscAt(ns: number): number {
    return this.tscHz === 1e9 ? ns : Math.floor(ns * this.tscHz / 1e9);
  }
}
