/**
 * Control transfer out of an instruction. A `CpuFault` is an architectural
 * exception raised by the executing instruction; `CpuAbort` abandons the
 * instruction at the owner's request (RIP stays on it). Neither extends Error,
 * so throwing them captures no stack trace.
 */
export class CpuFault {
  constructor(readonly vector: number, readonly errorCode: number, readonly hasError: boolean) {}
}
export class CpuAbort {}
export const ABORT = new CpuAbort();

export function fault(vector: number): never {
  throw new CpuFault(vector, 0, false);
}
export function faultErr(vector: number, errorCode: number): never {
  throw new CpuFault(vector, errorCode, true);
}
