/** One-line state summaries of a vCPU for crash reports: RIP, registers, control registers, last instructions. */
import type { Vcpu } from '../kvm/vcpu.js';
import { disassemble, type CodeSize } from '../x86/disasm.js';
import { GPR_NAMES } from '../x86/regs.js';

function hex64(lo: number, hi: number): string {
  return ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

export function describeVcpu(v: Vcpu): string {
  const c = v.cpu;
  const regs = GPR_NAMES.map((n, k) => `${n}=${hex64(c.rlo[k], c.rhi[k])}`).join(' ');
  const last = c.recentInstructions(8).map(({ insn: i, codeSize }) => {
    let text: string;
    try { text = disassemble(i.bytes, codeSize as CodeSize, (BigInt(i.hi >>> 0) << 32n) | BigInt(i.lo >>> 0)).trim(); } catch { text = i.name; }
    return `${hex64(i.lo, i.hi)}: ${text}`;
  });
  return `vCPU ${v.id}: rip=${hex64(c.ripLo, c.ripHi)} rflags=${c.getRflags().toString(16)} cs=${c.segSel[1].toString(16)} ` +
    `cpl=${c.cpl} mode=${c.codeSize}-bit cr0=${(c.cr0 >>> 0).toString(16)} cr2=${hex64(c.cr2Lo, c.cr2Hi)} ` +
    `cr3=${hex64(c.cr3Lo, c.cr3Hi)} cr4=${c.cr4.toString(16)} efer=${c.efer.toString(16)} ${regs}; ` +
    `last instructions: ${last.length > 0 ? last.join(' | ') : '(none)'}`;
}
