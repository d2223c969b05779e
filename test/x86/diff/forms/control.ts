/**
 * Near CALL/RET/JMP whose targets stay inside the snippet, so control always
 * ends at the snippet's end: CALL rel32, CALL r/m64, RET, RET imm16, JMP rel8/rel32, JMP r/m64.
 * Targets and return addresses are absolute (CODE_BASE is the same on both sides).
 */
import { FLAG_RULES } from '../flag-masks.js';
import { CODE_BASE } from '../snippet-contract.js';
import { form, type Form } from './form.js';

const NONE = FLAG_RULES.none.defined;

export const controlForms: readonly Form[] = [
  // call L1 ; jmp L2 ; L1: ret ; L2:   (call pushes CODE_BASE+5, ret comes back to the jmp)
  form('control/call rel32 + ret (E8, C3)', (b) => {
    b.setDefinedFlags(NONE);
    b.stack();
    b.bytes(0xe8, 2, 0, 0, 0, 0xeb, 1, 0xc3);
  }),
  // As above with RET imm16, which also releases imm16 bytes of stack.
  form('control/call rel32 + ret imm16 (C2)', (b) => {
    b.setDefinedFlags(NONE);
    b.stack({ lo: 0x400, hi: 0x800 });
    const n = b.rng.pick([0, 8, 16, 0x18, 0x100, 0x3]);
    b.bytes(0xe8, 2, 0, 0, 0, 0xeb, 3, 0xc2, n, n >> 8);
  }),
  // jmp +1 ; ret ; call r64 -> ret at CODE_BASE+2 returns to the end.
  form('control/call r64 (FF /2)', (b) => {
    b.setDefinedFlags(NONE);
    b.stack();
    const r = b.pickReg(8, { exclude: [4] });
    b.reserve(r.index, CODE_BASE + 2n);
    b.bytes(0xeb, 1, 0xc3);
    b.emit(`call ${r.name}`);
  }),
  form('control/call m64 (FF /2)', (b) => {
    b.setDefinedFlags(NONE);
    b.stack();
    const m = b.memOp(8);
    b.writeMem(m.offset, 8, CODE_BASE + 2n);
    b.bytes(0xeb, 1, 0xc3);
    b.emit(`call ${m.text}`);
  }),
  form('control/jmp rel8 (EB)', (b) => {
    b.setDefinedFlags(NONE);
    b.bytes(0xeb, 4, 0x48, 0x8d, 0x40, 0x01);
  }),
  form('control/jmp rel32 (E9)', (b) => {
    b.setDefinedFlags(NONE);
    b.bytes(0xe9, 4, 0, 0, 0, 0x48, 0x8d, 0x40, 0x01);
  }),
  form('control/jmp r64 (FF /4)', (b) => {
    b.setDefinedFlags(NONE);
    const r = b.pickReg(8);
    b.reserve(r.index);
    b.emit(`jmp ${r.name}`);
    b.afterAssembly((len, gpr) => {
      gpr[r.index] = CODE_BASE + BigInt(len);
    });
  }),
  form('control/jmp m64 (FF /4)', (b) => {
    b.setDefinedFlags(NONE);
    const m = b.memOp(8);
    b.emit(`jmp ${m.text}`);
    b.afterAssembly((len, _gpr, mem) => {
      const target = CODE_BASE + BigInt(len);
      for (let i = 0; i < 8; i++) mem[m.offset + i] = Number((target >> BigInt(8 * i)) & 0xffn);
    });
  }),
];
