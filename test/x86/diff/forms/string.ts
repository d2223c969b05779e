/** MOVS/STOS/LODS/SCAS/CMPS in all sizes, with REP/REPE/REPNE, DF=0 and DF=1, 64- and 32-bit addressing. */
import type { CaseBuilder } from '../case-builder.js';
import { DF, FLAG_RULES } from '../flag-masks.js';
import { RAX, RCX, RDI, RSI, type OpSize } from '../regs.js';
import { DATA_BASE } from '../snippet-contract.js';
import { ALL_SIZES, form, type Form } from './form.js';

type StrOp = 'movs' | 'stos' | 'lods' | 'scas' | 'cmps';
type Prefix = '' | 'rep' | 'repe' | 'repne';

const SUFFIX: Record<OpSize, string> = { 1: 'b', 2: 'w', 4: 'd', 8: 'q' };
/** Largest span a case walks: 8 elements of 8 bytes; pointers stay this far from the window edges. */
const MARGIN = 128;

function windowPointer(b: CaseBuilder, addr32: boolean, offset: number): bigint {
  const low = DATA_BASE + BigInt(offset);
  return addr32 ? (b.rng.bits(32) << 32n) | low : low;
}

/** Window offset of element k walked from `start` in the direction DF selects. */
function element(start: number, k: number, size: number, down: boolean): number {
  return down ? start - k * size : start + k * size;
}

function stringForm(op: StrOp, prefix: Prefix, addr32 = false): Form {
  const name = `string/${addr32 ? 'addr32 ' : ''}${prefix === '' ? '' : prefix + ' '}${op}`;
  return form(name, (b) => {
    b.setDefinedFlags(op === 'scas' || op === 'cmps' ? FLAG_RULES.strcmp.defined : FLAG_RULES.none.defined);
    const size = b.cycle(ALL_SIZES);
    const down = (b.rflags & DF) !== 0;
    const count = prefix === '' ? 1 : b.rng.int(9);
    const countValue = BigInt(count);
    // Without a REP prefix RCX is not used at all; with 0x67 only ECX counts.
    if (prefix === '') b.reserve(RCX, b.rng.bits(64));
    else b.reserve(RCX, addr32 ? (b.rng.bits(32) << 32n) | countValue : countValue);
    const src = b.rng.range(MARGIN, 4096 - MARGIN);
    let dst = b.rng.chance(0.3) ? src + b.rng.range(-16, 16) : b.rng.range(MARGIN, 4096 - MARGIN);
    if (op === 'stos' || op === 'scas' || op === 'movs' || op === 'cmps') b.reserve(RDI, windowPointer(b, addr32, dst));
    else b.reserve(RDI, b.rng.bits(64));
    if (op === 'movs' || op === 'lods' || op === 'cmps') b.reserve(RSI, windowPointer(b, addr32, src));
    else b.reserve(RSI, b.rng.bits(64));
    b.reserve(RAX, b.rng.regValue(size * 8));
    const n = Math.max(count, 1);
    if (op === 'cmps' || op === 'scas') {
      // Mostly equal data, so REPE runs for a while and REPNE stops early; sometimes one difference.
      if (op === 'cmps' && Math.abs(dst - src) < 8 * n) dst = src + (dst >= src ? 1 : -1) * 8 * n;
      if (op === 'cmps') b.reserve(RDI, windowPointer(b, addr32, dst));
      for (let k = 0; k < n; k++) {
        const value = op === 'cmps' ? b.readMem(element(src, k, size, down), size) : b.getReg(RAX);
        if (b.rng.chance(prefix === 'repne' ? 0.2 : 0.85)) b.writeMem(element(dst, k, size, down), size, value);
      }
    }
    if (addr32) b.bytes(0x67);
    b.emit(`${prefix === '' ? '' : prefix + ' '}${op}${SUFFIX[size]}`);
  });
}

export const stringForms: readonly Form[] = [
  stringForm('movs', ''), stringForm('movs', 'rep'),
  stringForm('stos', ''), stringForm('stos', 'rep'),
  stringForm('lods', ''), stringForm('lods', 'rep'),
  stringForm('scas', ''), stringForm('scas', 'repe'), stringForm('scas', 'repne'),
  stringForm('cmps', ''), stringForm('cmps', 'repe'), stringForm('cmps', 'repne'),
  stringForm('movs', 'rep', true), stringForm('stos', 'rep', true), stringForm('cmps', 'repe', true),
];
