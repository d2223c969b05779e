/** The instruction-form table: every form in scope, and what is deliberately left out (printed with every run). */
import { aluForms } from './alu.js';
import { atomicForms } from './atomic.js';
import { bitForms } from './bits.js';
import { condForms } from './cond.js';
import { controlForms } from './control.js';
import { faultForms } from './faults.js';
import type { Form, Omission } from './form.js';
import { moveForms } from './move.js';
import { mulDivForms } from './muldiv.js';
import { shiftForms } from './shift.js';
import { sseForms } from './sse.js';
import { stackForms } from './stack.js';
import { stringForms } from './string.js';

export const ALL_FORMS: readonly Form[] = [
  ...aluForms, ...shiftForms, ...mulDivForms, ...bitForms, ...condForms, ...atomicForms,
  ...moveForms, ...stringForms, ...stackForms, ...controlForms, ...sseForms, ...faultForms,
];

export const OMISSIONS: readonly Omission[] = [
  { what: 'SHLD/SHRD r/m16 with a masked count of 17..31', reason: 'result and flags undefined (SDM SHLD/SHRD: "If the count is greater than the operand size, the result is undefined")' },
  { what: 'BSWAP r16', reason: 'result undefined (SDM BSWAP: "When the BSWAP instruction references a 16-bit register, the result is undefined")' },
  { what: 'SAL alias D0..D3/C0/C1 /6', reason: 'undocumented by Intel; vendor-specific' },
  { what: '66h-prefixed near branches (JMP/CALL/Jcc rel16, RET with 66h)', reason: 'vendor-specific in 64-bit mode: Intel ignores 66h, AMD truncates RIP to 16 bits' },
  { what: 'MOVSXD r16, r/m16 (66 63)', reason: 'vendor-specific (Intel: loads 16 bits; AMD documents only 32/64-bit forms)' },
  { what: 'C0/C1 with an immediate count of 1 on a memory operand', reason: 'GAS always emits D0/D1 for a count of 1; the register form is hand-encoded, the memory form covers D0/D1 instead' },
  { what: 'RIP-relative memory operands other than in a snippet\'s last instruction', reason: 'the displacement is computed from the snippet end; single-instruction snippets cover them' },
  { what: 'XMM register state', reason: 'SnippetState has no XMM field: SSE forms load inputs from and store results to the data window' },
  { what: 'SSE beyond the listed moves/logic/compares/adds (shuffles other than PSHUFD, PSHUFB, MOVNT*, FXSAVE/FXRSTOR, LDMXCSR, float arithmetic, AVX)', reason: 'not yet in the table' },
  { what: 'x87, MMX, BMI1/BMI2 beyond TZCNT (ANDN, BEXTR, SHLX, PDEP...), ADX, MOVBE, CRC32, RDRAND/RDSEED, RDTSC/RDTSCP/RDPID', reason: 'not in the CPU\'s scope yet, or not deterministic' },
  { what: 'SYSCALL, INT n, INTO-in-compat, IRET, far CALL/JMP/RET, segment-register loads and FS/GS-relative accesses', reason: 'need OS/descriptor state that the user-mode snippet contract does not describe' },
  { what: 'Self-modifying code and accesses to the code page', reason: 'the contract does not say whether the code page is readable or writable' },
  { what: 'CPUID, XGETBV, SGDT/SIDT/SMSW/STR (UMIP: emulated by Linux for user space)', reason: 'results depend on the host or the kernel, not on the architecture' },
];
