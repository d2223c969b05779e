/**
 * The x86 I/O port space (0x0000-0xFFFF) and the devices that claim parts of it.
 *
 * An access goes to the device whose range holds its first port; the device sees
 * the absolute port number and the access size. Ports nobody claims behave like an
 * empty ISA bus (pc-platform-facts.md §2.1): reads return all-ones for the access
 * size, writes are dropped.
 */

export type PioSize = 1 | 2 | 4;

/** A device reachable through IN/OUT. Values are unsigned and fit the access size. */
export interface PioDevice {
  pioRead(port: number, size: PioSize): number;
  pioWrite(port: number, size: PioSize, value: number): void;
}

/** Raised for a bad registration (a programming error in the machine, not guest input). */
export class IoBusError extends Error {
  override name = 'IoBusError';
}

interface Region {
  readonly base: number;
  readonly end: number; // exclusive
  readonly device: PioDevice;
  readonly name: string;
}

const PORT_SPACE = 0x10000;

/** The all-ones value an unclaimed read returns for each access size. */
export function allOnes(size: PioSize): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

export class IoBus {
  /** Region index per port: a 64 Ki table makes dispatch one lookup. */
  private readonly owner = new Int16Array(PORT_SPACE).fill(-1);
  private readonly regions: Region[] = [];

  register(base: number, length: number, device: PioDevice, name: string): void {
    if (!Number.isInteger(base) || !Number.isInteger(length) || length <= 0 || base < 0 || base + length > PORT_SPACE) {
      throw new IoBusError(`I/O range for ${name} (base ${base}, length ${length}) is not inside ports 0x0-0xFFFF`);
    }
    for (let p = base; p < base + length; p++) {
      const other = this.owner[p];
      if (other >= 0) {
        throw new IoBusError(
          `I/O range 0x${hex(base)}-0x${hex(base + length - 1)} for ${name} overlaps ${this.regions[other].name} at port 0x${hex(p)}`,
        );
      }
    }
    const index = this.regions.length;
    this.regions.push({ base, end: base + length, device, name });
    this.owner.fill(index, base, base + length);
  }

  read(port: number, size: PioSize): number {
    const r = this.regionAt(port);
    if (r === undefined) return allOnes(size);
    // Devices return values of the access size; mask anyway so a sloppy device
    // cannot leak sign bits or wider values into a register.
    const v = r.device.pioRead(port, size);
    return size === 4 ? v >>> 0 : v & allOnes(size);
  }

  write(port: number, size: PioSize, value: number): void {
    const r = this.regionAt(port);
    if (r === undefined) return;
    r.device.pioWrite(port, size, size === 4 ? value >>> 0 : value & allOnes(size));
  }

  /** The name of the device claiming `port`, for traces; undefined if unclaimed. */
  nameAt(port: number): string | undefined {
    return this.regionAt(port)?.name;
  }

  private regionAt(port: number): Region | undefined {
    const i = this.owner[port & 0xffff];
    return i >= 0 ? this.regions[i] : undefined;
  }
}

function hex(n: number): string {
  return n.toString(16).toUpperCase();
}
