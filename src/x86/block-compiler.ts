/**
 * Hot blocks are compiled into one JavaScript function that calls each
 * instruction's handler from its own call site. Each site then sees a single
 * handler, so V8 can inline it: the decoded-block cache keeps its structure and
 * semantics (the same handlers run in the same order), only the dispatch
 * changes. The function returns how many instructions retired; a handler that
 * sets c.brk ends the block after itself, a throw leaves c.cur on the faulting
 * instruction.
 */
import type { Cpu } from './cpu.js';
import { isPure, type Insn } from './insn.js';

export type CompiledBlock = (c: Cpu) => number;

/** Executions after which a block is compiled. */
export const HOT_THRESHOLD = 32;

export function compileBlock(insns: readonly Insn[]): CompiledBlock {
  const params: string[] = [];
  const args: unknown[] = [];
  let body = '';
  insns.forEach((ins, k) => {
    params.push(`h${k}`, `i${k}`);
    args.push(ins.exec, ins);
    const last = k === insns.length - 1;
    // Pure handlers (register-only, cannot fault or end the block) need neither c.cur nor the brk check.
    if (isPure(ins.exec) && !last) { body += `h${k}(c, i${k});\n`; return; }
    body += `c.cur = i${k}; h${k}(c, i${k});`;
    body += last ? `return ${k + 1};\n` : ` if (c.brk) return ${k + 1};\n`;
  });
  const factory = new Function(...params, `return function block(c) {\n${body}};`) as (...a: unknown[]) => CompiledBlock;
  return factory(...args);
}
