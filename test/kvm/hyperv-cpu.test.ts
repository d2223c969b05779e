// End to end with the real x86 CPU: a 64-bit guest enables the hypercall page
// through the synthetic MSRs, CALLs it (VMCALL; RET), reads it, and gets #GP
// when it writes it (tlfs-vsm-facts.md §1.4: "guest can read+execute; guest
// writes ⇒ #GP"). The owner wiring here is what the Vcpu integration does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveHvFeatures } from '../../src/kvm/hyperv/features.js';
import { HvPartition } from '../../src/kvm/hyperv/partition.js';
import { HV_MSR_RANGE_FIRST, HV_MSR_RANGE_LAST } from '../../src/spec/tlfs.js';
import { faultErr } from '../../src/x86/fault.js';
import { GP } from '../../src/x86/regs.js';
import { CODE, TestMachine, reg, setRip } from '../x86/helpers/test-machine.js';
import { FakeClock, FakeVcpu } from './hyperv-fixture.js';

const RBX = 3, R9 = 9;

function machine() {
  const m = new TestMachine();
  m.enterLong64();
  const clock = new FakeClock();
  const partition = new HvPartition({
    features: resolveHvFeatures({ flags: new Set(['hv-time']) }), mem: m.mem, clock,
    onOverlayChange: () => m.cpu.permissionsChanged(),
  });
  const vp = partition.createVp(0, new FakeVcpu(clock, 0));
  const h = m.host;
  h.rdmsr = (index, out) => {
    const v = index >= HV_MSR_RANGE_FIRST && index <= HV_MSR_RANGE_LAST ? vp.rdmsr(index) : undefined;
    if (v === undefined) return false;
    out[0] = Number(v & 0xffffffffn) | 0; out[1] = Number(v >> 32n) | 0;
    return true;
  };
  h.wrmsr = (index, lo, hi) => index >= HV_MSR_RANGE_FIRST && index <= HV_MSR_RANGE_LAST
    && vp.wrmsr(index, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
  h.pagePermissions = (pfn) => partition.pagePermissions(pfn);
  h.onMemFault = (info) => {
    if (partition.isOverlayWrite(info.gpa, info.access)) faultErr(GP, 0);
    m.cpu.abortInstruction();
  };
  return { m, clock, partition };
}

const GUEST = `.code64
  mov ecx, 0x40000000      # GUEST_OS_ID = Linux
  xor eax, eax
  mov edx, 0x81000000
  wrmsr
  mov ecx, 0x40000001      # HYPERCALL: page 0x50, enable
  mov eax, 0x50001
  xor edx, edx
  wrmsr
  mov ecx, 0x40000020      # TIME_REF_COUNT
  rdmsr
  mov r9d, eax
  mov rcx, 0x1234
  mov rax, 0x50000
  call rax                 # the hypercall page: VMCALL; RET
  mov ebx, dword ptr [0x50000]
  hlt
write_page:
  mov byte ptr [0x50010], 0x90
  hlt
`;

test('a guest calls the hypercall page (VMCALL; RET), reads it, and a write to it is #GP(0)', () => {
  const { m, clock, partition } = machine();
  clock.ns = 12_345_600;
  const L = m.asm(GUEST, CODE);
  m.runToHalt();
  assert.equal(partition.hypercallPagePfn, 0x50);
  assert.deepEqual(m.host.of('hypercall'), [{ kind: 'hypercall', isVmmcall: false, rip: 0x50003n }]);
  assert.equal(reg(m.cpu, RBX), 0xc3c1010fn, 'reads see the stub');
  assert.equal(reg(m.cpu, R9), 123_456n, 'TIME_REF_COUNT in 100 ns units');
  assert.equal(m.stubVector(), -1, 'no exception so far');

  m.resume();
  setRip(m.cpu, L.write_page!);
  m.runToHalt();
  assert.equal(m.stubVector(), 13, '#GP');
  assert.equal(m.stack64(1)[0], 0n, 'error code 0');
  assert.equal(m.mem.read8(0x50010), 0xcc, 'the page is unchanged');
});
