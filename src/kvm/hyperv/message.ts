/**
 * HV_MESSAGE (fact sheet §4.2): a 16-byte header and up to 240 bytes of
 * payload, as it is written into a SIM slot; and the TimerExpired message
 * (§4.3) the synthetic timers send.
 */
import {
  HV_MESSAGE_HEADER_SIZE,
  HV_MESSAGE_PAYLOAD_MAX,
  HvMessageOffset,
  HvMessageType,
  HvTimerPayload,
} from '../../spec/tlfs.js';

export interface HvMessage {
  readonly type: number;
  readonly payload: Uint8Array;
  /** OriginationId / sender (0 for timer messages, §4.2). */
  readonly originationId?: bigint;
}

export class HvMessageError extends Error {
  override name = 'HvMessageError';
}

/** Header + payload bytes for a SIM slot (the rest of the 256-byte slot is left as it is, as KVM does). */
export function encodeMessage(msg: HvMessage, flags = 0): Uint8Array {
  if (!Number.isInteger(msg.type) || msg.type < 0 || msg.type > 0xffffffff) {
    throw new HvMessageError(`message type ${msg.type} is not a 32-bit unsigned number`);
  }
  if (msg.payload.length > HV_MESSAGE_PAYLOAD_MAX) {
    throw new HvMessageError(`message payload of ${msg.payload.length} bytes exceeds the ${HV_MESSAGE_PAYLOAD_MAX}-byte limit`);
  }
  const out = new Uint8Array(HV_MESSAGE_HEADER_SIZE + msg.payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(HvMessageOffset.MessageType, msg.type, true);
  dv.setUint8(HvMessageOffset.PayloadSize, msg.payload.length);
  dv.setUint8(HvMessageOffset.MessageFlags, flags & 0xff);
  dv.setBigUint64(HvMessageOffset.OriginationId, msg.originationId ?? 0n, true);
  out.set(msg.payload, HvMessageOffset.Payload);
  return out;
}

/** HvMessageTypeTimerExpired with its 24-byte payload (times in 100 ns reference units). */
export function timerExpiredMessage(timerIndex: number, expirationTime: bigint, deliveryTime: bigint): HvMessage {
  const payload = new Uint8Array(HvTimerPayload.Size);
  const dv = new DataView(payload.buffer);
  dv.setUint32(HvTimerPayload.TimerIndex, timerIndex, true);
  dv.setBigUint64(HvTimerPayload.ExpirationTime, BigInt.asUintN(64, expirationTime), true);
  dv.setBigUint64(HvTimerPayload.DeliveryTime, BigInt.asUintN(64, deliveryTime), true);
  return { type: HvMessageType.TimerExpired, payload };
}
