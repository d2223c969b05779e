/** PUSH/POP (register, immediate, memory, 16- and 64-bit), PUSHF/POPF, ENTER/LEAVE. RSP points into the data window. */
import type { CaseBuilder } from '../case-builder.js';
import { FLAG_RULES, INPUT_FLAGS, RFLAGS_FIXED1 } from '../flag-masks.js';
import { RBP, RSP } from '../regs.js';
import { DATA_BASE } from '../snippet-contract.js';
import { form, immText, type Form } from './form.js';

const NONE = FLAG_RULES.none.defined;

/**
 * RFLAGS bits a PUSHF image may legitimately differ in between the host and the CPU under test:
 * TF, IF, IOPL, NT, RF, VM, AC, VIF, VIP, ID. The host runs with IF=1; status flags, DF, bit 1 and
 * the reserved zero bits are compared.
 */
const PUSHF_IGNORED = 0x3f7300;

function ignorePushedFlags(b: CaseBuilder, offset: number, bytes: number): void {
  for (let i = 0; i < bytes; i++) {
    const m = (PUSHF_IGNORED >> (8 * i)) & 0xff;
    if (m !== 0) b.ignoreMemBits(offset + i, m);
  }
}

function pushPopForms(): Form[] {
  return [
    form('stack/push r64 (50+r)', (b) => {
      b.stack();
      b.emit(`push ${b.pickReg(8).name}`);
    }),
    form('stack/push r16 (66 50+r)', (b) => {
      b.stack();
      b.emit(`push ${b.pickReg(2).name}`);
    }),
    form('stack/pop r64 (58+r)', (b) => {
      b.stack();
      b.emit(`pop ${b.pickReg(8).name}`);
    }),
    form('stack/pop r16 (66 58+r)', (b) => {
      b.stack();
      b.emit(`pop ${b.pickReg(2).name}`);
    }),
    form('stack/push imm8 sign-extended (6A)', (b) => {
      b.stack();
      b.emit(`push ${immText(b, 8)}`);
    }),
    form('stack/push imm32 sign-extended (68)', (b) => {
      b.stack();
      b.emit(`push ${b.forcedImm(BigInt(immText(b, 32)))}`);
    }),
    form('stack/push imm16 (66 68)', (b) => {
      b.stack();
      const v = b.rng.int(0x10000);
      b.bytes(0x66, 0x68, v, v >> 8);
    }),
    form('stack/push m64 (FF /6)', (b) => {
      b.stack();
      b.emit(`push ${b.memOp(8).text}`);
    }),
    form('stack/push m16 (66 FF /6)', (b) => {
      b.stack();
      b.emit(`push ${b.memOp(2).text}`);
    }),
    // POP to memory: an RSP-based address is computed after RSP has been incremented (SDM POP).
    form('stack/pop m64 (8F /0)', (b) => {
      const sp = b.stack({ misalign: false });
      if (b.rng.chance(0.3)) b.emit(`pop qword ptr [rsp + ${b.rng.int(16) * 8}]`);
      else b.emit(`pop ${b.memOp(8, { exclude: [RSP] }).text}`);
      b.note(`rsp at window offset 0x${sp.toString(16)}`);
    }),
    form('stack/pop m16 (66 8F /0)', (b) => {
      b.stack();
      b.emit(`pop ${b.memOp(2).text}`);
    }),
    form('stack/push rsp (pushes the old value)', (b) => {
      b.stack();
      b.emit('push rsp');
    }),
    form('stack/pop rsp (RSP = popped value)', (b) => {
      b.stack();
      b.emit('pop rsp');
    }),
  ];
}

function flagsForms(): Form[] {
  return [
    form('stack/pushfq (9C)', (b) => {
      const sp = b.stack({ misalign: false });
      ignorePushedFlags(b, sp - 8, 8);
      b.emit('pushfq');
    }),
    form('stack/pushf16 (66 9C)', (b) => {
      const sp = b.stack({ misalign: false });
      ignorePushedFlags(b, sp - 2, 2);
      b.bytes(0x66, 0x9c);
    }),
    // The popped image holds only status flags, DF and bit 1: TF/AC/NT would change how the host runs.
    form('stack/popfq (9D)', (b) => {
      b.setDefinedFlags(FLAG_RULES.popf.defined);
      const sp = b.stack({ misalign: false });
      b.writeMem(sp, 8, BigInt((b.rng.u32() & INPUT_FLAGS) | RFLAGS_FIXED1));
      b.emit('popfq');
    }),
    form('stack/popf16 (66 9D)', (b) => {
      b.setDefinedFlags(FLAG_RULES.popf.defined);
      const sp = b.stack({ misalign: false });
      b.writeMem(sp, 2, BigInt((b.rng.u32() & INPUT_FLAGS) | RFLAGS_FIXED1));
      b.bytes(0x66, 0x9d);
    }),
  ];
}

function frameForms(): Form[] {
  return [
    form('stack/enter imm16, level (C8)', (b) => {
      b.setDefinedFlags(NONE);
      b.stack({ lo: 0xc00, hi: 0xe00, misalign: false });
      b.reserve(RBP, DATA_BASE + BigInt(b.rng.range(0x400, 0x800)));
      const level = b.cycle([0, 1, 2, 3, 0, 1, 5, 31]);
      b.emit(`enter ${b.rng.pick([0, 8, 16, 0x28, 0x100])}, ${level}`);
    }),
    form('stack/leave (C9)', (b) => {
      b.setDefinedFlags(NONE);
      b.stack();
      b.reserve(RBP, DATA_BASE + BigInt(b.rng.range(0x100, 0xf00) & ~7));
      b.emit('leave');
    }),
    // 66 C9: the stack address size is still 64 bits, so RSP = RBP in full; then only BP is popped (SDM LEAVE).
    form('stack/leave16 (66 C9)', (b) => {
      b.setDefinedFlags(NONE);
      b.reserve(RSP, b.rng.bits(64));
      b.reserve(RBP, DATA_BASE + BigInt(b.rng.range(0x100, 0xf00)));
      b.bytes(0x66, 0xc9);
    }),
  ];
}

export const stackForms: readonly Form[] = [...pushPopForms(), ...flagsForms(), ...frameForms()];
