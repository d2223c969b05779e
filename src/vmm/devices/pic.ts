/**
 * The legacy 8259A PIC pair (master 0x20/0x21, slave 0xA0/0xA1), programmable but
 * silent: it follows the initialisation and operation command words so that
 * drivers see what they wrote, and it never delivers an interrupt. The machines
 * we run route every interrupt through the local APIC; test kernels only mask
 * the PIC (0xFF to 0x21 and 0xA1, pc-platform-facts.md §2.1). IRR and ISR
 * therefore always read 0.
 *
 * Command word decoding follows the Intel 8259A data sheet: on the command port
 * (A0 = 0) bit 4 set is ICW1, else bit 3 set is OCW3, else OCW2; on the data port
 * (A0 = 1) writes are ICW2/ICW3/ICW4 while an initialisation is in progress and
 * the interrupt mask (OCW1) otherwise. ICW1 clears the mask; the mask also resets
 * to 0 as in QEMU's i8259 (hw/intc/i8259_common.c).
 */

import type { PioDevice, PioSize } from '../io-bus.js';

export const PIC_MASTER_BASE = 0x20;
export const PIC_SLAVE_BASE = 0xa0;
export const PIC_PORT_COUNT = 2;

const ICW1_IC4 = 0x01; // ICW4 needed
const ICW1_SNGL = 0x02; // single PIC: no ICW3
const ICW1_INIT = 0x10;
const OCW3_SELECT = 0x08;
const OCW3_READ_REGISTER = 0x02; // RR: bit 0 (RIS) then selects ISR over IRR

/** Which initialisation word the data port expects next; 0 = none (normal operation). */
type InitStep = 0 | 2 | 3 | 4;

/** One 8259A chip. Register two (master and slave) on the I/O bus. */
export class Pic8259 implements PioDevice {
  imr = 0;
  /** ICW2: vector base (bits 7-3), kept for traces. */
  vectorBase = 0;
  icw3 = 0;
  icw4 = 0;
  readIsr = false;
  private icw1 = 0;
  private initStep: InitStep = 0;

  constructor(readonly base: number) {}

  pioRead(port: number, _size: PioSize): number {
    if (port === this.base + 1) return this.imr;
    // IRR or ISR (whichever OCW3 selected), or the poll word after a poll
    // command (bit 7 clear: no request): all 0, since nothing is ever pending.
    return 0;
  }

  pioWrite(port: number, _size: PioSize, value: number): void {
    const v = value & 0xff;
    if (port === this.base) this.writeCommand(v);
    else this.writeData(v);
  }

  /** True while an ICW1 has started an initialisation that has not yet finished. */
  get initialising(): boolean {
    return this.initStep !== 0;
  }

  private writeCommand(v: number): void {
    if (v & ICW1_INIT) {
      this.icw1 = v;
      this.imr = 0;
      this.readIsr = false;
      this.icw4 = 0; // with IC4 clear all ICW4 functions are cleared
      this.initStep = 2;
    } else if (v & OCW3_SELECT) {
      if (v & OCW3_READ_REGISTER) this.readIsr = (v & 1) !== 0;
    }
    // OCW2 (EOI, rotation) has nothing to act on: no interrupt is ever in service.
  }

  private writeData(v: number): void {
    switch (this.initStep) {
      case 2:
        this.vectorBase = v & 0xf8;
        this.initStep = (this.icw1 & ICW1_SNGL) === 0 ? 3 : this.afterIcw3();
        return;
      case 3:
        this.icw3 = v;
        this.initStep = this.afterIcw3();
        return;
      case 4:
        this.icw4 = v;
        this.initStep = 0;
        return;
      default:
        this.imr = v;
    }
  }

  private afterIcw3(): InitStep {
    return (this.icw1 & ICW1_IC4) !== 0 ? 4 : 0;
  }
}
