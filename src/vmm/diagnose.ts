/** One-line state summaries of a vCPU for crash reports (registers, RIP, recent blocks). */
import type { Vcpu } from '../kvm/vcpu.js';
import { GPR_NAMES } from '../x86/regs.js';

function hex64(lo: number, hi: number): string {
  return ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

export function describeVcpu(v: Vcpu): string {
  const c = v.cpu;
  const regs = GPR_NAMES.map((n, k) => `${n}=${hex64(c.rlo[k], c.rhi[k])}`).join(' ');
  const recent: string[] = [];
  for (let k = 1; k <= 8; k++) {
    const p = (c.recentPos - 8 + k) & 15;
    if (c.recentLo[p] !== 0 || c.recentHi[p] !== 0) recent.push(hex64(c.recentLo[p], c.recentHi[p]));
  }
  return `vCPU ${v.id}: rip=${hex64(c.ripLo, c.ripHi)} rflags=${c.getRflags().toString(16)} cs=${c.segSel[1].toString(16)} ` +
    `cpl=${c.cpl} mode=${c.codeSize}-bit cr0=${(c.cr0 >>> 0).toString(16)} cr2=${hex64(c.cr2Lo, c.cr2Hi)} ` +
    `cr3=${hex64(c.cr3Lo, c.cr3Hi)} cr4=${c.cr4.toString(16)} efer=${c.efer.toString(16)} ${regs} ` +
    `recent blocks: ${recent.join(' ')}`;
}
