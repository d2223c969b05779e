/**
 * A transmit-only 16550 UART (COM1 at 0x3F8), enough for polled serial drivers
 * (pc-platform-facts.md §2.2).
 *
 * The transmitter is always ready (LSR 0x60), nothing is ever received (RBR reads
 * 0, LSR.DR stays 0) and no interrupt is ever pending (IIR 0x01): the guest never
 * waits and never gets an IRQ. Register masks follow the 16550 data sheet (IER
 * bits 7-4 and MCR bits 7-5 are hard-wired to 0).
 */

import type { PioDevice, PioSize } from '../io-bus.js';

export const COM1_BASE = 0x3f8;
export const UART_PORT_COUNT = 8;

/** Register offsets from the base port. */
export const UART_THR_RBR_DLL = 0;
export const UART_IER_DLM = 1;
export const UART_IIR_FCR = 2;
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const LCR_DLAB = 0x80;
export const MCR_LOOP = 0x10;
/** IIR: bit 0 set = no interrupt pending. */
export const IIR_NO_INTERRUPT = 0x01;
/** LSR: THR empty (bit 5) + transmitter empty (bit 6). */
export const LSR_IDLE = 0x60;
/** MSR: CTS (bit 4), DSR (bit 5), DCD (bit 7) asserted: a cable with a listener. */
export const MSR_CONNECTED = 0xb0;

export type SerialSink = (byte: number) => void;

export class Uart16550 implements PioDevice {
  ier = 0;
  lcr = 0;
  mcr = 0;
  scr = 0;
  fcr = 0;
  /** Divisor latch, written with DLAB = 1. Stored so drivers can read it back. */
  divisor = 0;

  constructor(
    private readonly sink: SerialSink,
    readonly base = COM1_BASE,
  ) {}

  private get dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }

  pioRead(port: number, _size: PioSize): number {
    switch (port - this.base) {
      case UART_THR_RBR_DLL:
        return this.dlab ? this.divisor & 0xff : 0; // RBR: nothing received
      case UART_IER_DLM:
        return this.dlab ? (this.divisor >>> 8) & 0xff : this.ier;
      case UART_IIR_FCR:
        return IIR_NO_INTERRUPT;
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR:
        return LSR_IDLE;
      case UART_MSR:
        return MSR_CONNECTED;
      case UART_SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  pioWrite(port: number, _size: PioSize, value: number): void {
    const v = value & 0xff;
    switch (port - this.base) {
      case UART_THR_RBR_DLL:
        if (this.dlab) this.divisor = (this.divisor & 0xff00) | v;
        // In loopback mode the byte goes to the (absent) receiver, not the line.
        else if ((this.mcr & MCR_LOOP) === 0) this.sink(v);
        return;
      case UART_IER_DLM:
        if (this.dlab) this.divisor = (this.divisor & 0x00ff) | (v << 8);
        else this.ier = v & 0x0f;
        return;
      case UART_IIR_FCR:
        this.fcr = v; // FIFO control: no FIFO to control, remembered for traces
        return;
      case UART_LCR:
        this.lcr = v;
        return;
      case UART_MCR:
        this.mcr = v & 0x1f;
        return;
      case UART_SCR:
        this.scr = v;
        return;
      default:
        return; // LSR and MSR are read-only
    }
  }
}
