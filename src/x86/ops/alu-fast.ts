/**
 * Specialized handlers for the hottest integer forms: ADD OR AND SUB XOR CMP
 * TEST with 32- and 64-bit register destinations, from a register or an
 * immediate. Each (operation, size, form) gets its own function generated once
 * at load time from the template below, so the JIT sees straight-line code
 * with constants instead of branches on closure variables. They record the
 * same lazy-flag state as alu()/alu64() in alu.ts, which handle every other
 * form; the differential tests cover both paths.
 */
import { markPure, type Handler } from '../insn.js';
import { FOp } from '../flags.js';

const ADD = 0, OR = 1, AND = 4, SUB = 5, CMP = 7, TEST = 8; // XOR (6) is the default case

function expr32(op: number): { r: string; f: FOp } {
  switch (op) {
    case ADD: return { r: '(a + b) | 0', f: FOp.Add };
    case SUB: case CMP: return { r: '(a - b) | 0', f: FOp.Sub };
    case AND: case TEST: return { r: 'a & b', f: FOp.Logic };
    case OR: return { r: 'a | b', f: FOp.Logic };
    default: return { r: 'a ^ b', f: FOp.Logic };
  }
}

function expr64(op: number): { lo: string; hi: string; f: FOp } {
  switch (op) {
    case ADD: return { lo: 's | 0', hi: '(ah + bh + (s > 4294967295 ? 1 : 0)) | 0', f: FOp.Add };
    case SUB: case CMP: return { lo: '(a - b) | 0', hi: '(ah - bh - ((a >>> 0) < (b >>> 0) ? 1 : 0)) | 0', f: FOp.Sub };
    case AND: case TEST: return { lo: 'a & b', hi: 'ah & bh', f: FOp.Logic };
    case OR: return { lo: 'a | b', hi: 'ah | bh', f: FOp.Logic };
    default: return { lo: 'a ^ b', hi: 'ah ^ bh', f: FOp.Logic };
  }
}

/**
 * form 'rm-reg': dest i.rm, source i.reg; 'reg-rm': dest i.reg, source i.rm
 * (both registers); 'rm-imm': dest i.rm, source the immediate.
 */
function make(op: number, sz: 4 | 8, form: 'rm-reg' | 'reg-rm' | 'rm-imm'): Handler {
  const dst = form === 'reg-rm' ? 'i.reg' : 'i.rm';
  const srcLo = form === 'rm-imm' ? 'i.imm' : form === 'reg-rm' ? 'R[i.rm]' : 'R[i.reg]';
  const srcHi = form === 'rm-imm' ? '(i.imm >> 31)' : form === 'reg-rm' ? 'H[i.rm]' : 'H[i.reg]';
  const write = op !== CMP && op !== TEST;
  let body: string;
  if (sz === 4) {
    const e = expr32(op);
    body = `const R = c.rlo, d = ${dst}; const a = R[d], b = ${srcLo}; const r = ${e.r};
      ${write ? 'R[d] = r; c.rhi[d] = 0;' : ''}
      c.fOp = ${e.f}; c.fSize = 4; c.fA = a; c.fB = b; c.fRes = r;`;
  } else {
    const e = expr64(op);
    body = `const R = c.rlo, H = c.rhi, d = ${dst};
      const a = R[d], ah = H[d], b = ${srcLo}, bh = ${srcHi};
      ${op === ADD ? 'const s = (a >>> 0) + (b >>> 0);' : ''}
      const r = ${e.lo}, rh = ${e.hi};
      ${write ? 'R[d] = r; H[d] = rh;' : ''}
      c.fOp = ${e.f}; c.fSize = 8; c.fA = a; c.fAHi = ah; c.fB = b; c.fBHi = bh; c.fRes = r; c.fResHi = rh;`;
  }
  return markPure(new Function('c', 'i', body) as Handler);
}

const cache = new Map<string, Handler>();

/** The specialized handler for an operation (0-7 as in the opcode, 8 = TEST), or undefined. */
export function fastAlu(op: number, sz: number, form: 'rm-reg' | 'reg-rm' | 'rm-imm'): Handler | undefined {
  if (sz !== 4 && sz !== 8) return undefined;
  if (op === 2 || op === 3) return undefined; // ADC and SBB need CF: alu.ts
  const key = `${op}/${sz}/${form}`;
  let h = cache.get(key);
  if (h === undefined) { h = make(op, sz, form); cache.set(key, h); }
  return h;
}
