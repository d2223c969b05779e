/** Registers every instruction group in the opcode table (import for side effects). */
import './alu.js';
import './shift.js';
import './mov.js';
import './stack.js';
import './branch.js';
import './system.js';
import './string.js';
import './sse-move.js';
import './sse-logic.js';
import './sse-int.js';
import './sse-shuffle.js';
import './sse-shift.js';
import './fxsave.js';
import './segment-query.js';
