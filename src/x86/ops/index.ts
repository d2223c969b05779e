/** Registers every instruction group in the opcode table (import for side effects). */
import './alu.js';
import './shift.js';
import './mov.js';
import './stack.js';
import './branch.js';
import './system.js';
