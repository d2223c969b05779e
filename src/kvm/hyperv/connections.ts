/**
 * Connection IDs the VMM registers as targets of HvPostMessage and
 * HvSignalEvent (fact sheet §2.9, §2.10): a message connection names the
 * (VP, SINT) whose SIM slot receives the message; an event connection names
 * the (VP, SINT) and the range of SIEF flags the caller's FlagNumber indexes.
 * Registration errors are errno-style KvmErrors, as KVM's ioctls report them.
 */
import { HV_EVENT_FLAGS_PER_SINT, HV_SYNIC_SINT_COUNT } from '../../spec/tlfs.js';
import { KvmError } from '../errors.js';

export interface MessageConnection {
  readonly vpIndex: number;
  readonly sint: number;
}

export interface EventConnection {
  readonly vpIndex: number;
  readonly sint: number;
  /** Flag set for FlagNumber 0. */
  readonly baseFlag: number;
  /** FlagNumbers 0..flagCount-1 are valid; others get INVALID_PARAMETER. */
  readonly flagCount: number;
}

function checkTarget(connId: number, vpIndex: number, sint: number): void {
  if (!Number.isInteger(connId) || connId < 0 || connId > 0xffffffff) {
    throw new KvmError('EINVAL', `connection id ${connId} is not a 32-bit unsigned number`);
  }
  if (!Number.isInteger(vpIndex) || vpIndex < 0 || vpIndex > 0xffffffff) {
    throw new KvmError('EINVAL', `VP index ${vpIndex} is not a 32-bit unsigned number`);
  }
  if (!Number.isInteger(sint) || sint < 0 || sint >= HV_SYNIC_SINT_COUNT) {
    throw new KvmError('EINVAL', `SINT ${sint} is not in 0..15`);
  }
}

export class HvConnections {
  private readonly messages = new Map<number, MessageConnection>();
  private readonly events = new Map<number, EventConnection>();

  registerMessageConnection(connId: number, vpIndex: number, sint: number): void {
    checkTarget(connId, vpIndex, sint);
    if (this.messages.has(connId)) throw new KvmError('EEXIST', `message connection ${connId} is already registered`);
    this.messages.set(connId, { vpIndex, sint });
  }

  unregisterMessageConnection(connId: number): void {
    if (!this.messages.delete(connId)) throw new KvmError('ENOENT', `message connection ${connId} is not registered`);
  }

  /** Registers an event connection; by default FlagNumber selects any of the SINT's 2048 flags. */
  registerEventConnection(connId: number, vpIndex: number, sint: number, baseFlag = 0, flagCount = HV_EVENT_FLAGS_PER_SINT - baseFlag): void {
    checkTarget(connId, vpIndex, sint);
    if (!Number.isInteger(baseFlag) || !Number.isInteger(flagCount) || baseFlag < 0 || flagCount < 1
      || baseFlag + flagCount > HV_EVENT_FLAGS_PER_SINT) {
      throw new KvmError('EINVAL', `event flags ${baseFlag}+${flagCount} are not inside 0..2047`);
    }
    if (this.events.has(connId)) throw new KvmError('EEXIST', `event connection ${connId} is already registered`);
    this.events.set(connId, { vpIndex, sint, baseFlag, flagCount });
  }

  unregisterEventConnection(connId: number): void {
    if (!this.events.delete(connId)) throw new KvmError('ENOENT', `event connection ${connId} is not registered`);
  }

  messageConnection(connId: number): MessageConnection | undefined { return this.messages.get(connId); }
  eventConnection(connId: number): EventConnection | undefined { return this.events.get(connId); }
}
