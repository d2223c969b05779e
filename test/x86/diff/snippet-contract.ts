/**
 * The shape of the CPU's snippet runner (src/x86/snippet.ts, owned by the CPU
 * author). Restated here so the harness compiles before that module exists;
 * cpu-under-test.ts checks at load time that the real module agrees.
 */

export interface SnippetState {
  /** 16 entries: rax rcx rdx rbx rsp rbp rsi rdi r8 .. r15. */
  gpr: BigUint64Array;
  /** Only CF PF AF ZF SF OF and DF are meaningful in input; bit 1 is set. */
  rflags: bigint;
  /** Contents of the 4096-byte data window at DATA_BASE. */
  mem: Uint8Array;
}

export interface SnippetResult extends SnippetState {
  /** Exception vector raised by the snippet (state is then the state at the fault), or null. */
  exception: number | null;
}

export type RunSnippet = (code: Uint8Array, init: SnippetState) => SnippetResult;

export const DATA_BASE = 0x10000000n;
export const DATA_SIZE = 4096;
export const CODE_BASE = 0x20000000n;
