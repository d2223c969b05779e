// KVM_GET/SET_DEBUGREGS (struct kvm_debugregs; upstream api.rst
// "KVM_GET_DEBUGREGS", x86.c kvm_vcpu_ioctl_x86_set_debugregs: flags must be
// 0, DR6/DR7 bits 63:32 must be 0). DR6/DR7 get the fixed bits MOV DR gives
// them (SDM 17.2.3, 17.2.4), and the guest's MOV from DRn reads what was set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm } from '../../src/kvm/vm.js';
import { KvmError } from '../../src/kvm/errors.js';
import type { Vcpu } from '../../src/kvm/vcpu.js';
import type { KvmDebugRegs } from '../../src/kvm/vcpu-debugregs.js';
import { enterLong64, writeCode } from './guest-setup.js';

function vcpu(): Vcpu {
  const v = new Vm({ memorySize: 2 << 20 }).createVcpu(0);
  enterLong64(v, 0x1000);
  return v;
}
const errno = (f: () => unknown): string => { try { f(); } catch (e) { return e instanceof KvmError ? e.code : String(e); } return 'none'; };

test('power-up values: DR0-DR3 0, DR6 0xFFFF0FF0, DR7 0x400 (SDM table 9-1)', () => {
  assert.deepEqual(vcpu().getDebugRegs(), { db: [0n, 0n, 0n, 0n], dr6: 0xffff0ff0n, dr7: 0x400n, flags: 0 });
});

test('KVM_SET_DEBUGREGS: DR0-DR3 as given, DR6/DR7 with their fixed bits; the guest reads them with MOV', () => {
  const v = vcpu();
  v.setDebugRegs({ db: [0xffff_8000_0000_1000n, 2n, 3n, 0x1234_5678_9abc_def0n], dr6: 0x1n, dr7: 0xffff_ffffn, flags: 0 });
  assert.deepEqual(v.getDebugRegs(), {
    db: [0xffff_8000_0000_1000n, 2n, 3n, 0x1234_5678_9abc_def0n],
    dr6: 0xffff0ff1n, // bits 31:16 and 11:4 read as 1
    dr7: 0xffff27ffn, // bit 10 reads as 1; bits 15:14, 12 and 11 as 0
    flags: 0,
  });
  writeCode(v, 0x1000, [0x0f, 0x21, 0xf8, 0x0f, 0x21, 0xc3, 0x0f, 0x21, 0xd9, 0xf4]); // mov rax, dr7; mov rbx, dr0; mov rcx, dr3; hlt
  assert.equal(v.run(10).reason, 'hlt');
  const r = v.getRegs();
  assert.deepEqual([r.rax, r.rbx, r.rcx], [0xffff27ffn, 0xffff_8000_0000_1000n, 0x1234_5678_9abc_def0n]);
});

test('KVM\'s checks: EINVAL for flags, DR6/DR7 bits 63:32 and malformed values (EFAULT for a non-object); nothing changes', () => {
  const v = vcpu();
  v.setDebugRegs({ db: [1n, 2n, 3n, 4n], dr6: 0n, dr7: 0x1n, flags: 0 });
  const before = v.getDebugRegs();
  const good: KvmDebugRegs = { db: [9n, 9n, 9n, 9n], dr6: 0n, dr7: 0n, flags: 0 };
  const bad: [unknown, string, string][] = [
    [null, 'EFAULT', 'non-object'],
    [{ ...good, flags: 1 }, 'EINVAL', 'flags'],
    [{ ...good, dr6: 1n << 32n }, 'EINVAL', 'DR6 bit 32'],
    [{ ...good, dr7: 1n << 63n }, 'EINVAL', 'DR7 bit 63'],
    [{ ...good, db: [1n, 2n, 3n] }, 'EINVAL', 'db[3]'],
    [{ ...good, db: [1n, 2n, 3n, -1n] }, 'EINVAL', 'DR3 negative'],
    [{ ...good, dr7: 1 }, 'EINVAL', 'DR7 a number'],
  ];
  for (const [d, code, why] of bad) {
    assert.equal(errno(() => v.setDebugRegs(d as never)), code, why);
    assert.deepEqual(v.getDebugRegs(), before, why);
  }
});
