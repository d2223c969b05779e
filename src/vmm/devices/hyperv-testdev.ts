/**
 * QEMU's hyperv-testdev at I/O port 0x3000 (pc-platform-facts §2.6): lets a
 * test guest drive the SynIC from "the host side". A 32-bit OUT carries the
 * SINT in bits 7:0, the VP index in 15:8, the command in 23:16 and a
 * connection id in 31:24. Reads return 0; other access sizes are ignored, as
 * QEMU accepts only 4-byte accesses.
 *
 * Commands map onto the in-kernel SynIC API:
 * - SINT route create/destroy/set: a route is a (VP, SINT) the device may
 *   assert; SET asserts the SINT as a device interrupt would.
 * - Message connection: HvPostMessage to the connection id posts the same
 *   message into the (VP, SINT) slot (queued with MessagePending when busy).
 * - Event connection: HvSignalEvent to the connection id sets event flag
 *   <connection id> of the (VP, SINT) and interrupts only on a 0 → 1 change
 *   (QEMU signals "the same event flag we've got"; FlagNumber must be 0).
 * Commands that make no sense (unknown VP, a route or connection that does or
 * does not exist) are ignored and counted: QEMU aborts there, a guest must not
 * be able to stop us.
 */
import { KvmError } from '../../kvm/errors.js';
import type { HvConnections } from '../../kvm/hyperv/connections.js';
import type { PioDevice, PioSize } from '../io-bus.js';

export const HYPERV_TESTDEV_PORT = 0x3000;
export const HYPERV_TESTDEV_PORT_COUNT = 4;

export const HvTestDevCommand = {
  SintRouteCreate: 1,
  SintRouteDestroy: 2,
  SintRouteSetSint: 3,
  MsgConnCreate: 4,
  MsgConnDestroy: 5,
  EvtConnCreate: 6,
  EvtConnDestroy: 7,
} as const;

/** What the device needs from the partition (HvPartition has this shape). */
export interface HvTestDevTarget {
  readonly connections: HvConnections;
  vp(index: number): { readonly synic: { assertSint(sint: number): boolean } } | undefined;
}

/** Encodes a command word as the guest writes it (kvm-unit-tests `synic_ctl`). */
export function hvTestDevCommand(cmd: number, vpIndex: number, sint: number, connId = 0): number {
  return (((connId & 0xff) << 24) | ((cmd & 0xff) << 16) | ((vpIndex & 0xff) << 8) | (sint & 0xff)) >>> 0;
}

export class HypervTestDev implements PioDevice {
  private readonly routes = new Set<number>();
  /** Commands ignored because they did not fit the current state. */
  ignored = 0;

  constructor(private readonly target: HvTestDevTarget) {}

  pioRead(_port: number, _size: PioSize): number { return 0; }

  pioWrite(port: number, size: PioSize, value: number): void {
    if (size !== 4 || port !== HYPERV_TESTDEV_PORT) { this.ignored++; return; }
    const sint = value & 0xff;
    const vp = (value >>> 8) & 0xff;
    const cmd = (value >>> 16) & 0xff;
    const conn = (value >>> 24) & 0xff;
    if (!this.run(cmd, vp, sint, conn)) this.ignored++;
  }

  private run(cmd: number, vp: number, sint: number, conn: number): boolean {
    const key = (vp << 8) | sint;
    const c = this.target.connections;
    if (cmd !== HvTestDevCommand.MsgConnDestroy && cmd !== HvTestDevCommand.EvtConnDestroy) {
      if (this.target.vp(vp) === undefined || sint > 15) return false;
    }
    try {
      switch (cmd) {
        case HvTestDevCommand.SintRouteCreate:
          if (this.routes.has(key)) return false;
          this.routes.add(key);
          return true;
        case HvTestDevCommand.SintRouteDestroy:
          return this.routes.delete(key);
        case HvTestDevCommand.SintRouteSetSint:
          if (!this.routes.has(key)) return false;
          this.target.vp(vp)!.synic.assertSint(sint);
          return true;
        case HvTestDevCommand.MsgConnCreate:
          c.registerMessageConnection(conn, vp, sint);
          return true;
        case HvTestDevCommand.MsgConnDestroy:
          c.unregisterMessageConnection(conn);
          return true;
        case HvTestDevCommand.EvtConnCreate:
          c.registerEventConnection(conn, vp, sint, conn, 1);
          return true;
        case HvTestDevCommand.EvtConnDestroy:
          c.unregisterEventConnection(conn);
          return true;
        default:
          return false;
      }
    } catch (e) {
      if (e instanceof KvmError) return false; // duplicate or missing connection (EEXIST / ENOENT)
      throw e;
    }
  }
}
