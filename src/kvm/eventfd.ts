/**
 * An eventfd (eventfd(2)) as our kvm layer and the VMM share it: a 64-bit
 * counter that in-kernel producers signal (ioeventfd: a guest access matched
 * a registration, ioeventfd.ts) and the VMM consumes.
 *
 * There are no file descriptors here: the object is the fd. What a VMM does
 * with a real eventfd maps onto it like this:
 *
 *   read(2), blocking           await fd.wait()   resolves with the value once it is non-zero
 *   read(2), O_NONBLOCK         fd.read()         0n where read(2) fails with EAGAIN
 *   poll(2)/epoll: readable     fd.readable
 *   eventfd_signal() (kernel)   fd.signal(n)
 *   EFD_SEMAPHORE               new EventFd({ semaphore: true }): a read takes 1, not everything
 *
 * Why a synchronous path as well as the promise: the machine runs every vCPU
 * on one thread inside one synchronous Machine.run() (DESIGN §3.5), so a
 * promise only settles after run() returns. The VMM's devices therefore
 * react through an EventFdPoll (below): the machine dispatches it between
 * scheduling rounds, the way a VMM's I/O thread wakes from epoll_wait. That
 * keeps the run deterministic: a signal raised in round k is handled at the
 * end of round k, whatever the host's timing. Host programs that drive a Vm
 * themselves (tests, tools) may use wait() between run() calls instead.
 */
import { KvmError } from './errors.js';

/**
 * The largest value a counter holds. eventfd(2) allows 2^64 - 2; we keep the
 * counter in a double (no BigInt on the signalling path, DESIGN §3.1), exact
 * up to 2^53 - 1, and saturate there: at 10^8 signals per second a guest
 * needs almost three years to get that far.
 */
export const EVENTFD_COUNTER_MAX = Number.MAX_SAFE_INTEGER;

export interface EventFdOptions {
  /** Initial counter value (eventfd(2)'s initval), 0 by default. */
  initval?: bigint | number;
  /** EFD_SEMAPHORE: each read takes 1 instead of the whole counter. */
  semaphore?: boolean;
}

export class EventFd {
  readonly semaphore: boolean;
  private count = 0;
  /** Pending wait() calls, oldest first; each one is a blocking read. */
  private readonly waiters: ((value: bigint) => void)[] = [];

  constructor(opts: EventFdOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw new KvmError('EINVAL', 'EventFd options must be an object');
    const init = opts.initval ?? 0;
    const ok = typeof init === 'bigint' ? init >= 0n && init <= BigInt(EVENTFD_COUNTER_MAX)
      : Number.isSafeInteger(init) && init >= 0;
    if (!ok) throw new KvmError('EINVAL', `EventFd initval must be a whole number from 0 to ${EVENTFD_COUNTER_MAX}, got ${String(init)}`);
    this.count = Number(init);
    this.semaphore = opts.semaphore === true;
  }

  /**
   * eventfd_signal(): add `n` (default 1) to the counter, saturating at
   * EVENTFD_COUNTER_MAX, and wake the oldest waiters. The guest-access path
   * of ioeventfd calls this with n = 1.
   */
  signal(n = 1): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new KvmError('EINVAL', `an eventfd is signalled with a whole number >= 0, got ${String(n)}`);
    this.count = Math.min(EVENTFD_COUNTER_MAX, this.count + n);
    if (this.waiters.length !== 0) this.wakeWaiters();
  }

  /** The counter, without consuming it. */
  get value(): bigint { return BigInt(this.count); }

  /** Whether a read would return something now (poll's POLLIN). */
  get readable(): boolean { return this.count !== 0; }

  /**
   * A non-blocking read(2): the whole counter (or 1 with EFD_SEMAPHORE),
   * which it resets (or decrements). 0n when the counter is 0, where read(2)
   * would fail with EAGAIN: a real read never returns 0, so 0n is unambiguous.
   */
  read(): bigint {
    if (this.count === 0) return 0n;
    if (this.semaphore) { this.count--; return 1n; }
    const v = this.count;
    this.count = 0;
    return BigInt(v);
  }

  /** A blocking read(2): resolves with what read() takes as soon as the counter is non-zero (at once if it already is). */
  wait(): Promise<bigint> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.wakeWaiters();
    });
  }

  /** Hands the counter to waiters in arrival order, each one a read(), while there is something to read. */
  private wakeWaiters(): void {
    while (this.waiters.length !== 0 && this.count !== 0) this.waiters.shift()!(this.read());
  }
}

/** What the VMM runs when an EventFd of an EventFdPoll is readable. It should read (consume) the fd. */
export type EventFdHandler = (fd: EventFd) => void;

/**
 * A set of EventFds with one handler each: epoll plus the handler table of a
 * VMM's event loop (QEMU's event-notifier handlers). dispatch() is
 * level-triggered, like epoll without EPOLLET: a handler that does not read
 * its fd runs again at the next dispatch.
 */
export class EventFdPoll {
  private readonly entries: { readonly fd: EventFd; readonly handler: EventFdHandler }[] = [];

  /** EPOLL_CTL_ADD: EEXIST if `fd` is already in the set, EINVAL for a value that is not an EventFd. */
  add(fd: EventFd, handler: EventFdHandler): void {
    if (!(fd instanceof EventFd)) throw new KvmError('EINVAL', 'only an EventFd can be added to an EventFdPoll');
    if (typeof handler !== 'function') throw new KvmError('EINVAL', 'an EventFdPoll handler must be a function');
    if (this.entries.some((e) => e.fd === fd)) throw new KvmError('EEXIST', 'this EventFd is already in the poll set');
    this.entries.push({ fd, handler });
  }

  /** EPOLL_CTL_DEL: ENOENT if `fd` is not in the set. */
  remove(fd: EventFd): void {
    const k = this.entries.findIndex((e) => e.fd === fd);
    if (k < 0) throw new KvmError('ENOENT', 'this EventFd is not in the poll set');
    this.entries.splice(k, 1);
  }

  get size(): number { return this.entries.length; }

  /**
   * Runs the handler of every readable fd once, in the order they were
   * added; readability is checked just before each handler, so a handler that
   * also drains a later fd keeps that fd's handler from running. Returns how
   * many handlers ran.
   */
  dispatch(): number {
    let ran = 0;
    if (this.entries.length === 0) return 0;
    for (const e of this.entries.slice()) { // a handler may add or remove entries
      if (!e.fd.readable) continue;
      e.handler(e.fd);
      ran++;
    }
    return ran;
  }
}
