/**
 * QEMU's firmware configuration device, legacy I/O interface only
 * (pc-platform-facts.md §2.4): a 16-bit write to 0x510 selects an item and rewinds
 * the read offset; each 8-bit read of 0x511 returns the item's next byte, and 0
 * past its end or for an item that does not exist. Integers are little endian.
 *
 * Items provided: 0x00 signature "QEMU", 0x01 interface ID (1: traditional
 * interface only, no DMA; QEMU docs/specs/fw_cfg.rst), 0x03 RAM size (u64),
 * 0x05 CPU count (u16), 0x0F max CPUs (u16), 0x11 "max RAM" (u64 0, the key
 * kvm-unit-tests reads and QEMU answers with 0).
 *
 * The two ports behave as QEMU's combined fw_cfg I/O region (hw/nvram/fw_cfg.c):
 * it accepts 8-bit reads (data, at either port) and 16-bit writes (select, at
 * either port); 8-bit writes (the deprecated data write) are dropped. Accesses it
 * refuses read as all-ones, as on an empty bus. Selector bit 14 (the write
 * channel) does not change which item is read.
 */

import type { PioDevice, PioSize } from '../io-bus.js';
import { allOnes } from '../io-bus.js';

export const FW_CFG_SELECTOR_PORT = 0x510;
export const FW_CFG_DATA_PORT = 0x511;
export const FW_CFG_PORT_COUNT = 2;

export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_MAX_RAM = 0x11;

const FW_CFG_WRITE_CHANNEL = 0x4000;

export interface FwCfgConfig {
  /** Guest RAM in bytes. */
  ramSize: number;
  cpuCount: number;
  maxCpus: number;
}

export class FwCfgError extends Error {
  override name = 'FwCfgError';
}

export class FwCfg implements PioDevice {
  private readonly items = new Map<number, Uint8Array>();
  private selected: Uint8Array | undefined;
  private offset = 0;
  /** The last selector value written, for traces and tests. */
  selector = 0;

  constructor(config: FwCfgConfig) {
    const { ramSize, cpuCount, maxCpus } = config;
    if (!Number.isSafeInteger(ramSize) || ramSize < 0) {
      throw new FwCfgError(`fw_cfg RAM size must be a non-negative integer, got ${ramSize}`);
    }
    for (const [what, n] of [['CPU count', cpuCount], ['max CPUs', maxCpus]] as const) {
      if (!Number.isInteger(n) || n < 1 || n > 0xffff) {
        throw new FwCfgError(`fw_cfg ${what} must be an integer from 1 to 65535, got ${n}`);
      }
    }
    this.items.set(FW_CFG_SIGNATURE, new TextEncoder().encode('QEMU'));
    this.items.set(FW_CFG_ID, le(1, 4));
    this.items.set(FW_CFG_RAM_SIZE, le(ramSize, 8));
    this.items.set(FW_CFG_NB_CPUS, le(cpuCount, 2));
    this.items.set(FW_CFG_MAX_CPUS, le(maxCpus, 2));
    this.items.set(FW_CFG_MAX_RAM, le(0, 8));
  }

  pioRead(_port: number, size: PioSize): number {
    if (size !== 1) return allOnes(size);
    const item = this.selected;
    if (item === undefined || this.offset >= item.length) return 0;
    return item[this.offset++];
  }

  pioWrite(_port: number, size: PioSize, value: number): void {
    if (size !== 2) return;
    this.selector = value & 0xffff;
    this.selected = this.items.get(this.selector & ~FW_CFG_WRITE_CHANNEL);
    this.offset = 0;
  }
}

/** `value` as `bytes` little-endian bytes; `value` is a non-negative safe integer. */
function le(value: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let v = value;
  for (let i = 0; i < bytes; i++) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}
