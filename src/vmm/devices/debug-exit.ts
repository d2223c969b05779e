/**
 * isa-debug-exit (pc-platform-facts.md §2.3): the guest ends the run by writing
 * its result code to port 0xF4 (QEMU configured with iobase=0xF4, iosize=4).
 *
 * Two exit codes exist for one write of `value`:
 *  - the raw value, which `onExit` receives and `exitValue` keeps. The vsmvisor
 *    runner exits with this raw value (0 = all passed), so callers need no decoding;
 *  - QEMU's process status (value << 1) | 1 (`qemuExitStatus`), which is what the
 *    same guest produces under QEMU (0 -> 1, 1 -> 3, 38 -> 77, 63 -> 127). Scripts
 *    written for QEMU compare against that number.
 *
 * Like QEMU's device, any write in the 4-port window ends the run, whatever its
 * size (the value is the one written, zero-extended); reads return 0.
 */

import type { PioDevice, PioSize } from '../io-bus.js';

export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_PORT_COUNT = 4;

export type DebugExitHandler = (value: number) => void;

/**
 * QEMU's host exit status for a debug-exit write of `value`: QEMU calls
 * exit((value << 1) | 1) and the host keeps the low 8 bits of that.
 */
export function qemuExitStatus(value: number): number {
  return (((value >>> 0) << 1) | 1) & 0xff;
}

export class DebugExit implements PioDevice {
  /** The raw value of the first write, or undefined while the guest has not exited. */
  exitValue: number | undefined;

  constructor(private readonly onExit: DebugExitHandler) {}

  pioRead(_port: number, _size: PioSize): number {
    return 0;
  }

  pioWrite(_port: number, _size: PioSize, value: number): void {
    const v = value >>> 0;
    // The first write decides: a run stops at it, so a second write (another CPU
    // in the same quantum) must not change the reported result.
    if (this.exitValue !== undefined) return;
    this.exitValue = v;
    this.onExit(v);
  }
}
