/**
 * Runs a snippet of machine code in 64-bit user mode on a fresh CPU: the CPU
 * side of the differential tests against the host CPU (test/x86/diff).
 * Data window: 4 KiB read/write at DATA_BASE; code page at CODE_BASE; both
 * identity-mapped user pages. Exceptions stop the run and are reported.
 */
import { PhysMemory } from '../memory/phys-memory.js';
import { Cpu, CpuRunState } from './cpu.js';
import { NullCpuHost } from './null-host.js';
import { ATTR_DB, ATTR_G, ATTR_L, ATTR_P, ATTR_S } from './segment-cache.js';
import { CR0_PE, CR0_PG, CR0_WP, CR4_OSFXSR, CR4_PAE, CS, DS, EFER_LMA, EFER_LME, EFER_NXE, ES, FS, GS, SS } from './regs.js';

export const DATA_BASE = 0x10000000n;
export const CODE_BASE = 0x20000000n;
const DATA = 0x10000000, CODE = 0x20000000;
const PML4 = 0x1000, PDPT = 0x2000, PD = 0x3000, PT_DATA = 0x4000, PT_CODE = 0x5000;

export interface SnippetState {
  gpr: BigUint64Array;
  rflags: bigint;
  mem: Uint8Array;
}

let mem: PhysMemory | null = null;
let cpu: Cpu | null = null;

function setup(): { mem: PhysMemory; cpu: Cpu } {
  if (mem !== null && cpu !== null) return { mem, cpu };
  mem = new PhysMemory(0x40000000);
  // 4-level identity map of the two pages, user + writable, through 4 KiB page tables.
  const e = (addr: number) => BigInt(addr) | 7n; // P | W | U
  mem.write64(PML4, e(PDPT));
  mem.write64(PDPT + 8 * Math.floor(DATA / 0x40000000), e(PD));
  mem.write64(PD + 8 * ((DATA >>> 21) & 0x1ff), e(PT_DATA));
  mem.write64(PD + 8 * ((CODE >>> 21) & 0x1ff), e(PT_CODE));
  mem.write64(PT_DATA + 8 * ((DATA >>> 12) & 0x1ff), e(DATA));
  mem.write64(PT_CODE + 8 * ((CODE >>> 12) & 0x1ff), e(CODE));
  cpu = new Cpu(mem, new NullCpuHost());
  return { mem, cpu };
}

function enterUserMode(c: Cpu): void {
  c.reset();
  c.cr4 = CR4_PAE | CR4_OSFXSR;
  c.efer = EFER_LME | EFER_LMA | EFER_NXE;
  c.cr3Lo = PML4; c.cr3Hi = 0;
  c.cr0 = CR0_PE | CR0_PG | CR0_WP | 0x10;
  const flat = (seg: number, sel: number, attr: number) => {
    c.segSel[seg] = sel; c.segBaseLo[seg] = 0; c.segBaseHi[seg] = 0; c.segLimit[seg] = -1; c.segAttr[seg] = attr;
  };
  const user = 3 << 5;
  flat(CS, 0x33, ATTR_P | ATTR_S | 0xb | ATTR_L | ATTR_G | user);
  for (const s of [SS, DS, ES, FS, GS]) flat(s, 0x2b, ATTR_P | ATTR_S | 0x3 | ATTR_DB | ATTR_G | user);
  c.cpl = 3;
  c.updateMode();
  c.mmu.flushAll();
}

/** Runs `code` from CODE_BASE until RIP reaches its end or an exception is raised. */
export function runSnippet(code: Uint8Array, init: SnippetState): SnippetState & { exception: number | null } {
  if (code.length > 4000) throw new RangeError('snippet longer than a page');
  const stepped = execute(code, init, false);
  // The same snippet as compiled blocks must give the same result (block-compiler.ts skips
  // bookkeeping around pure handlers; this keeps that honest under the differential tests).
  const compiled = execute(code, init, true);
  const diff = describeDifference(stepped, compiled);
  if (diff !== null) throw new Error(`interpreter and compiled block disagree on ${Buffer.from(code).toString('hex')}: ${diff}`);
  return stepped;
}

function describeDifference(a: SnippetResult, b: SnippetResult): string | null {
  for (let r = 0; r < 16; r++) if (a.gpr[r] !== b.gpr[r]) return `register ${r}: ${a.gpr[r].toString(16)} vs ${b.gpr[r].toString(16)}`;
  if (a.rflags !== b.rflags) return `rflags ${a.rflags.toString(16)} vs ${b.rflags.toString(16)}`;
  if (a.exception !== b.exception) return `exception ${a.exception} vs ${b.exception}`;
  for (let k = 0; k < a.mem.length; k++) if (a.mem[k] !== b.mem[k]) return `memory byte ${k}`;
  return null;
}

type SnippetResult = SnippetState & { exception: number | null };

/** One run: instruction by instruction (the interpreter), or whole blocks compiled on first use. */
function execute(code: Uint8Array, init: SnippetState, compiled: boolean): SnippetResult {
  const { mem: m, cpu: c } = setup();
  enterUserMode(c);
  // A trailing UD2 catches runaway execution past the end.
  const page = new Uint8Array(4096);
  page.set(code);
  page[code.length] = 0x0f; page[code.length + 1] = 0x0b;
  m.write(CODE, page);
  m.write(DATA, init.mem);
  for (let r = 0; r < 16; r++) {
    const v = init.gpr[r];
    c.rlo[r] = Number(v & 0xffffffffn) | 0;
    c.rhi[r] = Number((v >> 32n) & 0xffffffffn) | 0;
  }
  c.setRflags(Number(init.rflags & 0x3f7fd5n) | 2);
  c.ripLo = CODE; c.ripHi = 0;
  c.jitThreshold = compiled ? 1 : Number.MAX_SAFE_INTEGER;
  let exception: number | null = null;
  c.exceptionIntercept = (v) => { exception = v; return true; };
  const end = CODE + code.length;
  if (compiled) {
    c.run(100000);
    // Reaching the trailing UD2 means the snippet completed.
    if (exception === 6 && c.ripLo === end && c.ripHi === 0) exception = null;
  } else {
    for (let guard = 0; guard < 100000 && exception === null && c.runState === CpuRunState.Running; guard++) {
      if (c.ripLo === end && c.ripHi === 0) break;
      c.run(1);
    }
  }
  const gpr = new BigUint64Array(16);
  for (let r = 0; r < 16; r++) gpr[r] = (BigInt(c.rhi[r] >>> 0) << 32n) | BigInt(c.rlo[r] >>> 0);
  return { gpr, rflags: BigInt(c.getRflags()), mem: m.read(DATA, 4096), exception };
}
