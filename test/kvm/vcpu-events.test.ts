// KVM_GET/SET_VCPU_EVENTS (struct kvm_vcpu_events, upstream api.rst
// "KVM_GET_VCPU_EVENTS"/"KVM_SET_VCPU_EVENTS", x86.c
// kvm_vcpu_ioctl_x86_set_vcpu_events): an injected exception is delivered at
// the next run() before anything executes; NMI pending/masked; the interrupt
// shadow; KVM's validation (flags, exception vector) with EINVAL and no change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import {
  KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_PAYLOAD, KVM_VCPUEVENT_VALID_SHADOW, KVM_VCPUEVENT_VALID_SIPI_VECTOR,
  KVM_VCPUEVENT_VALID_SMM, KVM_VCPUEVENT_VALID_TRIPLE_FAULT, KVM_X86_SHADOW_INT_MOV_SS, KVM_X86_SHADOW_INT_STI,
  type KvmVcpuEvents,
} from '../../src/kvm/vcpu-events.js';
import { makeHypercallControl } from '../../src/kvm/hyperv/hypercall-input.js';
import { HvCall } from '../../src/spec/tlfs.js';
import { enterFlat32, loadIdt, setGate32, writeCode } from './guest-setup.js';
import { CALL_SITE, HvMachine, STACKS } from './hypercall-machine.js';

const MiB = 1 << 20;
const NO_EXCEPTION = { injected: 0, nr: 0, hasErrorCode: 0, pending: 0, errorCode: 0 };

/** Flat 32-bit code at 0x1000, IDT at 0x6000: #UD, #GP, NMI, 0x30 handlers each `out <port>, al; hlt`. */
function setup(code: readonly number[]): Vcpu {
  const v = new Vm({ memorySize: 2 * MiB }).createVcpu(0);
  writeCode(v, 0x1000, code);
  const handlers: [number, number][] = [[6, 0x86], [13, 0x8d], [2, 0x82], [0x30, 0x81]];
  handlers.forEach(([vector, port], k) => {
    writeCode(v, 0x7000 + 0x10 * k, [0xe6, port, 0xf4]);
    setGate32(v, 0x6000, vector, 0x7000 + 0x10 * k);
  });
  enterFlat32(v, 0x1000);
  loadIdt(v, 0x6000);
  v.apic.mmioWrite(0xf0, 0x1ff); // SPIV: software-enabled
  return v;
}

const out = (port: number) => ({ reason: 'io', direction: 'out', port, size: 1, value: 0 });
const stack32 = (v: Vcpu, n: number): number[] => {
  const sp = Number(v.getRegs().rsp);
  return Array.from({ length: n }, (_, k) => v.vm.mem.read32(sp + 4 * k));
};
const withException = (v: Vcpu, e: Partial<KvmVcpuEvents['exception']>): KvmVcpuEvents => {
  const ev = v.getVcpuEvents();
  return { ...ev, exception: { ...ev.exception, injected: 1, ...e } };
};

function rejects(v: Vcpu, ev: unknown, code: string, message: RegExp): void {
  const before = v.getVcpuEvents();
  const shadow = v.cpu.shadow, queued = v.cpu.queuedEvents.length;
  assert.throws(() => v.setVcpuEvents(ev as KvmVcpuEvents), (e: unknown) => {
    assert.ok(e instanceof KvmError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
  assert.deepEqual(v.getVcpuEvents(), before);
  assert.equal(v.cpu.shadow, shadow);
  assert.equal(v.cpu.queuedEvents.length, queued);
}

test('a fresh vCPU reports no events; flags are NMI_PENDING | SHADOW | SMM (0xd), as KVM without SMM reports them', () => {
  const v = setup([0xf4]);
  assert.deepEqual(v.getVcpuEvents(), {
    exception: NO_EXCEPTION,
    interrupt: { injected: 0, nr: 0, soft: 0, shadow: 0 },
    nmi: { injected: 0, pending: 0, masked: 0 },
    sipiVector: 0,
    flags: 0xd,
    smi: { smm: 0, pending: 0, smmInsideNmi: 0, latchedInit: 0 },
    apicPendingVector: -1,
  });
});

test('an injected #UD is delivered at the next run() before the instruction at RIP executes; the frame holds that RIP', () => {
  const v = setup([0xe6, 0x99, 0xf4]); // out 0x99, al — must not run before the handler
  v.setVcpuEvents(withException(v, { nr: 6 }));
  // KVM without KVM_CAP_EXCEPTION_PAYLOAD reports the queued exception as injected (pending 0).
  assert.deepEqual(v.getVcpuEvents().exception, { injected: 1, nr: 6, hasErrorCode: 0, pending: 0, errorCode: 0 });
  assert.deepEqual(v.run(100), out(0x86));
  assert.deepEqual(stack32(v, 3), [0x1000, 0x08, 0x2]); // EIP, CS, EFLAGS: no error code for #UD (SDM table 6-1)
  assert.equal(v.getRegs().rsp, 0x8000n - 12n);
  assert.deepEqual(v.getVcpuEvents().exception, NO_EXCEPTION, 'delivered once');
});

test('an injected #GP pushes the error code given; RFLAGS.IF does not hold it back', () => {
  const v = setup([0xfa, 0xeb, 0xfe]); // cli; jmp $
  v.setVcpuEvents(withException(v, { nr: 13, hasErrorCode: 1, errorCode: 0x18 }));
  assert.deepEqual(v.run(100), out(0x8d));
  assert.deepEqual(stack32(v, 4), [0x18, 0x1000, 0x08, 0x2]);
});

test('VtlCall with a bad input: the VMM injects #UD at the VMCALL instead of completing the hypercall', () => {
  const m = new HvMachine({ flags: ['hv-vpindex', 'hv-synic', 'hv-vapic', 'hv-vsm'] });
  const v = m.vcpu(0);
  const r = m.hypercall(v, makeHypercallControl({ code: HvCall.VtlCall }));
  assert.equal(r.exit.reason, 'hyperv-hcall');
  v.setVcpuEvents(withException(v, { nr: 6 }));
  assert.equal(m.runToExit(v).reason, 'hlt');
  assert.equal(m.stubVector(v), 6);
  // 64-bit frame on the same stack (CPL 0), 16-byte aligned: RIP, CS, RFLAGS, RSP, SS.
  const rsp = Number(v.getRegs().rsp);
  assert.equal(rsp, STACKS + 0x1000 - 40);
  assert.equal(v.vm.mem.read64(rsp), BigInt(CALL_SITE), 'the fault points at the VMCALL');
  assert.equal(v.vm.mem.read64(rsp + 8), 0x08n);
  assert.equal(v.vm.trace!.named('kvm_inj_exception').at(-1)?.args.exception, 6);
});

test('real mode: an injected exception goes through the IVT and pushes no error code', () => {
  const v = new Vm({ memorySize: 2 * MiB }).createVcpu(0);
  const s = v.getSregs();
  s.cs = { ...s.cs, base: 0n, selector: 0 };
  v.setSregs(s);
  v.setRegs({ ...v.getRegs(), rip: 0x1000n, rsp: 0x8000n });
  v.vm.mem.write32(13 * 4, 0x0000_7000); // IVT[13] = 0000:7000
  writeCode(v, 0x7000, [0xf4]);
  writeCode(v, 0x1000, [0xf4]);
  // In real mode an error-code mismatch is no VM-entry failure: KVM drops the error code.
  v.setVcpuEvents(withException(v, { nr: 13, hasErrorCode: 1, errorCode: 0x55 }));
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getRegs().rip, 0x7001n);
  assert.equal(v.getRegs().rsp, 0x8000n - 6n, 'IP, CS, FLAGS only');
  assert.deepEqual([v.vm.mem.read16(0x7ffa), v.vm.mem.read16(0x7ffc), v.vm.mem.read16(0x7ffe)], [0x1000, 0, 0x2]);
});

test('an injected external interrupt is a re-injection: delivered with IF = 0, not taken from the APIC', () => {
  const v = setup([0xfa, 0xeb, 0xfe]);
  const ev = v.getVcpuEvents();
  v.setVcpuEvents({ ...ev, interrupt: { ...ev.interrupt, injected: 1, nr: 0x30 } });
  assert.deepEqual(v.getVcpuEvents().interrupt, { injected: 1, nr: 0x30, soft: 0, shadow: 0 });
  assert.deepEqual(v.run(100), out(0x81));
  assert.equal(v.apic.pendingVector(), -1);
  assert.equal(v.getVcpuEvents().interrupt.injected, 0);
});

test('injected events go in KVM\'s order: exception, then NMI, then interrupt; each handler starts before the next is delivered', () => {
  const v = setup([0xf4]);
  const ev = v.getVcpuEvents();
  v.setVcpuEvents({
    ...ev, exception: { ...ev.exception, injected: 1, nr: 6 }, nmi: { ...ev.nmi, injected: 1 },
    interrupt: { ...ev.interrupt, injected: 1, nr: 0x30 },
  });
  // The interrupt's frame is on top: it interrupted the NMI handler's first instruction, which interrupted #UD's.
  assert.deepEqual(v.run(100), out(0x81));
  assert.deepEqual(stack32(v, 9), [0x7020, 0x08, 0x2, 0x7000, 0x08, 0x2, 0x1000, 0x08, 0x2]);
  assert.equal(v.getVcpuEvents().nmi.masked, 1, 'NMI delivery blocks NMIs');
});

test('NMI pending and masked: a masked pending NMI waits; unmasking delivers it; KVM_NMI shows up as pending', () => {
  const v = setup([0xeb, 0xfe]); // jmp $
  const ev = v.getVcpuEvents();
  v.setVcpuEvents({ ...ev, nmi: { injected: 0, pending: 1, masked: 1 } });
  assert.deepEqual(v.getVcpuEvents().nmi, { injected: 0, pending: 1, masked: 1 });
  assert.equal(v.run(100).reason, 'preempted');
  v.setVcpuEvents({ ...v.getVcpuEvents(), nmi: { injected: 0, pending: 1, masked: 0 } });
  assert.deepEqual(v.run(100), out(0x82));
  assert.deepEqual(v.getVcpuEvents().nmi, { injected: 0, pending: 0, masked: 1 });
  // Without VALID_NMI_PENDING the pending field is ignored; masked is always applied (set_nmi_mask).
  v.injectNmi();
  assert.equal(v.getVcpuEvents().nmi.pending, 1, 'KVM_NMI is pending before the next run');
  v.setVcpuEvents({ ...v.getVcpuEvents(), flags: 0, nmi: { injected: 0, pending: 0, masked: 1 } });
  assert.deepEqual(v.getVcpuEvents().nmi, { injected: 0, pending: 1, masked: 1 });
  v.setVcpuEvents({ ...v.getVcpuEvents(), flags: KVM_VCPUEVENT_VALID_NMI_PENDING, nmi: { injected: 0, pending: 0, masked: 0 } });
  assert.deepEqual(v.getVcpuEvents().nmi, { injected: 0, pending: 0, masked: 0 }, 'pending 0 clears the APIC latch too');
});

test('the interrupt shadow: STI and MOV SS report their kinds; one the VMM sets holds a pending interrupt for one instruction', () => {
  const v = setup([0xfb, 0x8e, 0xd0, 0xe6, 0x90, 0xf4]); // sti; mov ss, eax; out 0x90, al; hlt
  v.setRegs({ ...v.getRegs(), rax: 0x10n });
  assert.equal(v.run(1).reason, 'preempted');
  assert.equal(v.getVcpuEvents().interrupt.shadow, KVM_X86_SHADOW_INT_STI);
  assert.equal(v.run(1).reason, 'preempted');
  assert.equal(v.getVcpuEvents().interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);
  assert.equal(v.run(1).reason, 'io');
  assert.equal(v.getVcpuEvents().interrupt.shadow, 0);
  // A pending interrupt with IF = 1 is taken at once, unless the VMM sets a shadow.
  const w = setup([0xe6, 0x90, 0xf4]);
  w.setRegs({ ...w.getRegs(), rflags: 0x202n });
  w.injectInterrupt(0x30);
  assert.equal(w.getVcpuEvents().apicPendingVector, 0x30, 'reported from the APIC');
  const ev = w.getVcpuEvents();
  w.setVcpuEvents({ ...ev, interrupt: { ...ev.interrupt, shadow: KVM_X86_SHADOW_INT_STI } });
  assert.equal(w.getVcpuEvents().interrupt.shadow, KVM_X86_SHADOW_INT_STI);
  assert.deepEqual(w.run(100), out(0x90), 'the shadowed instruction runs first');
  assert.deepEqual(w.run(100), out(0x81));
  // Both bits: MOV SS wins (VMX loads one kind). Without VALID_SHADOW the field is ignored.
  const x = setup([0xf4]);
  x.setVcpuEvents({ ...x.getVcpuEvents(), interrupt: { injected: 0, nr: 0, soft: 0, shadow: 3 } });
  assert.equal(x.getVcpuEvents().interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);
  x.setVcpuEvents({ ...x.getVcpuEvents(), flags: KVM_VCPUEVENT_VALID_NMI_PENDING, interrupt: { injected: 0, nr: 0, soft: 0, shadow: 0 } });
  assert.equal(x.getVcpuEvents().interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);
  x.setVcpuEvents({ ...x.getVcpuEvents(), flags: KVM_VCPUEVENT_VALID_SHADOW, interrupt: { injected: 0, nr: 0, soft: 0, shadow: 0 } });
  assert.equal(x.cpu.shadow, false);
});

test('setting events replaces the injected ones: injected = 0 withdraws a queued exception', () => {
  const v = setup([0xe6, 0x99, 0xf4]);
  v.setVcpuEvents(withException(v, { nr: 6 }));
  v.setVcpuEvents({ ...v.getVcpuEvents(), exception: NO_EXCEPTION });
  assert.deepEqual(v.run(100), out(0x99));
});

test('an injected exception waits while the vCPU is halted (KVM injects only into a RUNNABLE vCPU)', () => {
  const v = setup([0xf4, 0xf4]);
  assert.equal(v.run(100).reason, 'hlt');
  v.setVcpuEvents(withException(v, { nr: 6 }));
  assert.equal(v.run(100).reason, 'hlt');
  assert.equal(v.getVcpuEvents().exception.injected, 1);
  v.setMpState(0); // RUNNABLE
  assert.deepEqual(v.run(100), out(0x86));
  assert.deepEqual(stack32(v, 1), [0x1001], 'RIP after the HLT');
});

test('KVM\'s checks: EINVAL (EFAULT for a non-object) and nothing changes', () => {
  const v = setup([0xf4]);
  const ev = v.getVcpuEvents();
  rejects(v, null, 'EFAULT', /not an object/);
  rejects(v, withException(v, { nr: 32 }), 'EINVAL', /vector 32 is not an exception/);
  rejects(v, withException(v, { nr: 2 }), 'EINVAL', /use nmi\.injected/);
  rejects(v, { ...ev, flags: ev.flags | KVM_VCPUEVENT_VALID_PAYLOAD }, 'EINVAL', /KVM_CAP_EXCEPTION_PAYLOAD/);
  rejects(v, { ...ev, flags: KVM_VCPUEVENT_VALID_TRIPLE_FAULT }, 'EINVAL', /TRIPLE_FAULT/);
  rejects(v, { ...ev, flags: KVM_VCPUEVENT_VALID_SIPI_VECTOR }, 'EINVAL', /SIPI_VECTOR/);
  rejects(v, { ...ev, flags: 0x40 }, 'EINVAL', /undefined bits/);
  rejects(v, { ...ev, flags: KVM_VCPUEVENT_VALID_SMM, smi: { ...ev.smi, smm: 1 } }, 'EINVAL', /no SMM/);
  rejects(v, { ...ev, interrupt: { ...ev.interrupt, injected: 1, soft: 1 } }, 'EINVAL', /soft interrupt/);
  rejects(v, { ...ev, nmi: { ...ev.nmi, pending: 256 } }, 'EINVAL', /nmi\.pending must be an integer in 0\.\.255/);
  rejects(v, withException(v, { nr: 13, errorCode: 2 ** 32 }), 'EINVAL', /errorCode/);
  rejects(v, { ...ev, exception: undefined }, 'EINVAL', /exception is missing/);
  // Moved from VM entry (SDM 26.2.1.3): in protected mode the error code must match the vector.
  rejects(v, withException(v, { nr: 13, hasErrorCode: 0 }), 'EINVAL', /needs an error code/);
  rejects(v, withException(v, { nr: 6, hasErrorCode: 1 }), 'EINVAL', /has no error code/);
  // A bad field late in the struct leaves an earlier valid exception unqueued.
  rejects(v, { ...withException(v, { nr: 6 }), nmi: { injected: 0, pending: 0, masked: -1 } }, 'EINVAL', /nmi\.masked/);
  assert.equal(v.run(100).reason, 'hlt', 'nothing was injected');
});

test('a memory-fault exit while delivering an exception leaves it injected (the intercept\'s InterruptionPending); it is delivered once allowed', () => {
  const v = setup([0x0f, 0x0b]); // ud2
  v.vm.setMemoryAttributes({ address: 0x7000n, size: 0x1000n, attributes: 2n, flags: 0n }); // the stack page: NW
  const f = v.run(100);
  assert.equal(f.reason, 'memory-fault');
  assert.equal(f.reason === 'memory-fault' && f.exactGpa, 0x7ffc, 'the first frame slot pushed (EFLAGS)');
  assert.deepEqual(v.getVcpuEvents().exception, { injected: 1, nr: 6, hasErrorCode: 0, pending: 0, errorCode: 0 });
  assert.equal(v.getRegs().rip, 0x1000n);
  v.vm.setMemoryAttributes({ address: 0x7000n, size: 0x1000n, attributes: 0n, flags: 0n });
  assert.deepEqual(v.run(100), out(0x86));
  assert.deepEqual(stack32(v, 3), [0x1000, 0x08, 0x2]);
});
