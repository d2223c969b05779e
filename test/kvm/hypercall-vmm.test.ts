// Hypercalls the VMM handles: the 'hyperv-hcall' exit (KVM_EXIT_HYPERV, type
// HCALL) and its completion (kvm-api-facts.md §3.1: XMM output, RAX, RIP; §3.2:
// which calls exit), and the machine's default answers (QEMU without a
// handler: INVALID_CONNECTION_ID for PostMessage/SignalEvent, else
// INVALID_HYPERCALL_CODE).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { VcpuExit } from '../../src/kvm/exits.js';
import { HvCall, HvStatus } from '../../src/spec/tlfs.js';
import { Machine } from '../../src/vmm/machine.js';
import { assemble } from '../x86/helpers/test-machine.js';
import { buildElf, bytesOf, multibootHeader } from '../vmm/elf-writer.js';
import { AFTER_CALL, CALL_SITE, CODE, HvMachine, INPUT } from './hypercall-machine.js';

const VSM_FLAGS = ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm', 'hv-xmm-input'];
const post = makeHypercallControl({ code: HvCall.PostMessage });
const getVpRegsFast = makeHypercallControl({ code: HvCall.GetVpRegisters, fast: true, repCount: 1 });

const errno = (f: () => void): string => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : String(e); } return 'none'; };

test('PostMessage to a connection the kernel does not know exits to the VMM; the answer lands in RAX at the next run', () => {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic'] });
  const v = m.vcpu(0);
  m.writeQwords(INPUT, [99n, 1n]);
  const r = m.hypercall(v, post, BigInt(INPUT), 0x1230n);
  assert.equal(r.exit.reason, 'hyperv-hcall');
  const e = r.exit as Extract<VcpuExit, { reason: 'hyperv-hcall' }>;
  assert.deepEqual({ code: e.code, input: e.input, params: e.params, xmm: e.xmm, longMode: e.longMode }, {
    code: HvCall.PostMessage, input: post, params: [BigInt(INPUT), 0x1230n],
    xmm: Array.from({ length: 6 }, () => ({ low: 0n, high: 0n })), longMode: true,
  });
  assert.equal(r.rip, BigInt(CALL_SITE), 'RIP stays on the VMCALL until the VMM answers');
  assert.equal(r.rax, 0xdeadn);
  // No answer: the next run executes the VMCALL again and exits again.
  assert.equal(m.runToExit(v).reason, 'hyperv-hcall');
  assert.equal(m.vm.trace!.named('kvm_hv_hypercall').length, 2);
  v.completeHypercall(BigInt(HvStatus.INVALID_CONNECTION_ID));
  assert.equal(v.getRegs().rip, BigInt(CALL_SITE), 'applied at the next run, as KVM completes in KVM_RUN');
  assert.equal(m.runToExit(v).reason, 'hlt');
  const regs = v.getRegs();
  assert.equal(regs.rax, BigInt(HvStatus.INVALID_CONNECTION_ID));
  assert.equal(regs.rip, AFTER_CALL, 'RIP advanced past the 3-byte VMCALL, then the HLT ran');
  assert.deepEqual(m.vm.trace!.named('kvm_exit').filter((e) => e.args.reason === 'hyperv-hcall').length, 2);
});

test('completeHypercall checks: only after a hyperv-hcall exit, once, with a u64 result and at most 6 XMM registers', () => {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic'] });
  const v = m.vcpu(0);
  assert.equal(errno(() => v.completeHypercall(0n)), 'EINVAL', 'nothing to answer');
  m.writeQwords(INPUT, [99n, 1n]);
  m.hypercall(v, post, BigInt(INPUT));
  assert.equal(errno(() => v.completeHypercall(-1n)), 'EINVAL');
  assert.equal(errno(() => v.completeHypercall(1n << 64n)), 'EINVAL');
  assert.equal(errno(() => v.completeHypercall(0n, Array.from({ length: 7 }, () => ({ low: 0n, high: 0n })))), 'EINVAL');
  assert.equal(errno(() => v.completeHypercall(0n, [{ low: 1, high: 0n } as never])), 'EINVAL');
  v.completeHypercall(0n);
  assert.equal(errno(() => v.completeHypercall(0n)), 'EINVAL', 'already answered');
});

test('fast SignalEvent to an unknown connection exits with the guest XMM registers (§3.1: filled for fast calls)', () => {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic'] });
  const v = m.vcpu(0);
  const control = makeHypercallControl({ code: HvCall.SignalEvent, fast: true });
  const r = m.hypercall(v, control, 42n, 7n, [0x11n, 0x22n, 0x33n, 0x44n]);
  assert.equal(r.exit.reason, 'hyperv-hcall');
  if (r.exit.reason !== 'hyperv-hcall') return;
  assert.deepEqual(r.exit.params, [42n, 7n]);
  assert.deepEqual(r.exit.xmm.slice(0, 3), [{ low: 0x11n, high: 0x22n }, { low: 0x33n, high: 0x44n }, { low: 0n, high: 0n }]);
});

test('XMM output (§3.1 step 1): a successful fast GetVpRegisters gets XMM0..5 from the answer', () => {
  const m = new HvMachine({ flags: [...VSM_FLAGS, 'hv-xmm-output'] });
  const v = m.vcpu(0);
  assert.equal(m.hypercall(v, getVpRegsFast, 1n, 0n, [0x1234n, 0n]).exit.reason, 'hyperv-hcall');
  v.completeHypercall(1n << 32n, [{ low: 0xaaaan, high: 0xbbbbn }, { low: 0xccccn, high: 0xddddn }]);
  assert.equal(m.runToExit(v).reason, 'hlt');
  assert.deepEqual(v.getXmm(0), { low: 0xaaaan, high: 0xbbbbn });
  assert.deepEqual(v.getXmm(1), { low: 0xccccn, high: 0xddddn });
  assert.equal(v.getRegs().rax, 1n << 32n);
  // A failed call gets no XMM output.
  m.hypercall(v, getVpRegsFast, 1n, 0n, [0x1234n, 0n]);
  v.completeHypercall(BigInt(HvStatus.INVALID_PARAMETER), [{ low: 1n, high: 2n }]);
  m.runToExit(v);
  assert.deepEqual(v.getXmm(0), { low: 0x1234n, high: 0n });
  assert.equal(v.getRegs().rax, BigInt(HvStatus.INVALID_PARAMETER));
});

test('XMM output without hv-xmm-output is #UD at completion, and fast XMM input without hv-xmm-input is #UD at once', () => {
  const m = new HvMachine({ flags: VSM_FLAGS });
  const v = m.vcpu(0);
  m.hypercall(v, getVpRegsFast, 1n, 0n);
  v.completeHypercall(0n, [{ low: 1n, high: 2n }]);
  m.runToExit(v);
  assert.equal(m.stubVector(v), 6, '#UD');
  assert.equal(v.getRegs().rax, 0xdeadn, 'no result written');
  const noXmm = new HvMachine({ flags: VSM_FLAGS.filter((f) => f !== 'hv-xmm-input') });
  const r = noXmm.hypercall(noXmm.vcpu(0), getVpRegsFast, 1n, 0n);
  assert.equal(r.ud, true);
});

test('VtlCall and VtlReturn exit without the generic checks and never get a result in RAX (§3.1 step 2)', () => {
  const m = new HvMachine({ flags: VSM_FLAGS });
  const v = m.vcpu(0);
  for (const code of [HvCall.VtlCall, HvCall.VtlReturn]) {
    const r = m.hypercall(v, BigInt(code) | (1n << 40n) /* a rep count: the VMM's rules (#UD) apply, not ours */);
    assert.equal(r.exit.reason, 'hyperv-hcall');
    v.completeHypercall(BigInt(HvStatus.SUCCESS));
    m.runToExit(v);
    assert.equal(v.getRegs().rax, 0xdeadn, 'RAX untouched');
    assert.equal(v.getRegs().rip, AFTER_CALL, 'RIP still advanced');
  }
});

test('a 32-bit caller gets the VMM\'s answer in EDX:EAX', () => {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic'] });
  const v = m.vcpu(0);
  m.writeQwords(INPUT, [99n, 1n]);
  m.asm(`.code32
    mov eax, ${Number(post)}
    xor edx, edx
    mov ecx, ${INPUT}
    xor ebx, ebx
    vmcall
    hlt`, CODE + 0x400);
  m.enter32(v, CODE + 0x400);
  assert.equal(m.runToExit(v).reason, 'hyperv-hcall');
  v.completeHypercall(0x0000_0005_0000_0012n);
  m.runToExit(v);
  assert.equal(v.getRegs().rax, 0x12n);
  assert.equal(v.getRegs().rdx, 5n);
});

/** A Multiboot image whose 32-bit code is `src` (GNU as) at 0x10000c; the machine runs it with `flags`. */
function machineWith(src: string, flags: string[]): Machine {
  const code = assemble(`.code32\n${src}`, 0x100000 + 12).bytes;
  const text = bytesOf(multibootHeader(0), code);
  const elf = buildElf({ cls: 32, entry: 0x100000 + 12, segments: [{ paddr: 0x100000, data: text, memsz: text.length + 64 }] });
  return new Machine({ image: elf.bytes, imagePath: 'hcall.elf', smp: 1, memory: 16 << 20, serial: () => {}, hv: { flags: new Set(flags) }, maxInsns: 100_000 });
}

const GUEST_OS_ID = `
  mov ecx, 0x40000000
  xor eax, eax
  mov edx, 0x81000000
  wrmsr`;

test('the machine answers unhandled PostMessage/SignalEvent with INVALID_CONNECTION_ID and passes VSM calls to src/vmm/vsm', () => {
  const cases: [string, string[], number][] = [
    // PostMessage: ConnectionId 77 at 0x200000, MessageType 1, PayloadSize 0.
    [`mov dword ptr [0x200000], 77
      mov dword ptr [0x200008], 1
      mov eax, ${HvCall.PostMessage}
      mov ecx, 0x200000`, ['hv-vpindex', 'hv-synic'], HvStatus.INVALID_CONNECTION_ID],
    [`mov eax, ${HvCall.SignalEvent | 0x10000}
      mov ecx, 77`, ['hv-vpindex', 'hv-synic'], HvStatus.INVALID_CONNECTION_ID],
    // A VSM call goes to the partition (src/vmm/vsm/hc-vp.ts): its input at GPA 0 names partition 0, not self.
    [`mov eax, ${HvCall.StartVirtualProcessor}
      xor ecx, ecx`, ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'], HvStatus.INVALID_PARTITION_ID],
  ];
  for (const [call, flags, status] of cases) {
    const m = machineWith(`${GUEST_OS_ID}
      ${call}
      xor edx, edx
      xor ebx, ebx
      xor esi, esi
      xor edi, edi
      vmcall
      out 0xf4, eax
      hlt`, flags);
    assert.deepEqual(m.run(), { kind: 'exit', code: status });
  }
});

test('the machine stops cleanly with a one-line diagnosis on a memory-fault exit it cannot handle', () => {
  const m = machineWith(`mov eax, dword ptr [0x300000]
    out 0xf4, eax
    hlt`, []);
  m.vm.setMemoryAttributes({ address: 0x300000, size: 0x1000, attributes: 7, flags: 0 });
  const r = m.run();
  assert.equal(r.kind, 'shutdown');
  if (r.kind !== 'shutdown') return;
  assert.equal(r.why, 'unhandled memory-fault exit: read at GPA 0x300000 (GVA 0x300000) denied by memory attributes');
  assert.match(r.detail, /^vCPU 0: rip=10000c /);
});
