// HV_REGISTER_NAME table and access rules (tlfs-vsm-facts §3.7, §2.15, §1.6),
// HV_REGISTER_VALUE encodings (§2.13, §2.15) and the VSM register bit layouts
// and write rules (§3.6, §3.7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HvStatus } from '../../src/spec/tlfs.js';
import { checkRegisterAccess, registerInfo, REGISTERS } from '../../src/vmm/vsm/register-names.js';
import { decodeRegisterValue, encodeRegisterValue } from '../../src/vmm/vsm/register-value.js';
import {
  checkPartitionConfigWrite as checkConfig, checkSecureConfigWrite, checkWaitForTlbLockWrite, codePageOffsetsFor, decodeCapabilities,
  decodeCodePageOffsets, decodePartitionConfig, decodeSecureConfig, decodeVina, defaultProtection, DEFAULT_VSM_CAPABILITIES, vsmCapabilities,
  encodeCapabilities, encodePartitionConfig, encodePartitionStatus, encodeSecureConfig, encodeVina, encodeVpStatus,
} from '../../src/vmm/vsm/vsm-registers.js';
import { VsmError } from '../../src/vmm/vsm/errors.js';

const S = HvStatus;
const num = (name: string) => REGISTERS.find((r) => r.name === name)?.number;

test('§3.7: register numbers of the VSM registers and of the x64 registers Get/SetVpRegisters name', () => {
  const expected: [string, number][] = [
    ['VsmCodePageOffsets', 0x000d0002], ['VsmVpStatus', 0x000d0003], ['VsmPartitionStatus', 0x000d0004], ['VsmVina', 0x000d0005],
    ['VsmCapabilities', 0x000d0006], ['VsmPartitionConfig', 0x000d0007], ['VsmVpSecureConfigVtl0', 0x000d0010],
    ['VsmVpSecureConfigVtl14', 0x000d001e], ['VsmVpWaitForTlbLock', 0x000d0020], ['CrInterceptControl', 0x000e0000],
    ['CrInterceptIa32MiscEnableMask', 0x000e0003], ['PendingInterruption', 0x00010002], ['PendingEvent1', 0x00010005],
    ['Rax', 0x00020000], ['Rcx', 0x00020001], ['Rdx', 0x00020002], ['Rbx', 0x00020003], ['Rsp', 0x00020004], ['Rdi', 0x00020007],
    ['R15', 0x0002000f], ['Rip', 0x00020010], ['Rflags', 0x00020011], ['Xmm0', 0x00030000], ['Xmm15', 0x0003000f],
    ['Cr0', 0x00040000], ['Cr2', 0x00040001], ['Cr3', 0x00040002], ['Cr4', 0x00040003], ['Cr8', 0x00040004], ['Xfem', 0x00040005],
    ['Dr0', 0x00050000], ['Dr3', 0x00050003], ['Dr6', 0x00050004], ['Dr7', 0x00050005],
    ['Es', 0x00060000], ['Cs', 0x00060001], ['Ss', 0x00060002], ['Ds', 0x00060003], ['Fs', 0x00060004], ['Gs', 0x00060005],
    ['Ldtr', 0x00060006], ['Tr', 0x00060007], ['Idtr', 0x00070000], ['Gdtr', 0x00070001],
    ['Tsc', 0x00080000], ['Efer', 0x00080001], ['KernelGsBase', 0x00080002], ['ApicBase', 0x00080003], ['Pat', 0x00080004],
    ['SysenterCs', 0x00080005], ['SysenterEip', 0x00080006], ['SysenterEsp', 0x00080007], ['Star', 0x00080008],
    ['Lstar', 0x00080009], ['Cstar', 0x0008000a], ['Sfmask', 0x0008000b], ['TscAux', 0x0008007b],
    ['Hypercall', 0x00090001], ['GuestOsId', 0x00090002], ['VpIndex', 0x00090003], ['TimeRefCount', 0x00090004],
    ['VpAssistPage', 0x00090013], ['ReferenceTsc', 0x00090017], ['Sint0', 0x000a0000], ['Sint15', 0x000a000f],
    ['Scontrol', 0x000a0010], ['Sversion', 0x000a0011], ['Sifp', 0x000a0012], ['Sipp', 0x000a0013], ['Eom', 0x000a0014],
    ['Sirbp', 0x000a0015], ['Stimer0Config', 0x000b0000], ['Stimer0Count', 0x000b0001], ['Stimer3Config', 0x000b0006], ['Stimer3Count', 0x000b0007],
  ];
  for (const [name, n] of expected) assert.equal(num(name), n, name);
  assert.equal(new Set(REGISTERS.map((r) => r.number)).size, REGISTERS.length); // no number twice
});

test('§3.2/§3.7: scope and kind: RSP/RIP/RFLAGS/CRs/segments per VTL, other GPRs/XMM/CR2 per VP, XMM 128-bit, segments and tables', () => {
  assert.equal(registerInfo(0x00020004)?.scope, 'vtl');  // RSP
  assert.equal(registerInfo(0x00020000)?.scope, 'vp');   // RAX
  assert.equal(registerInfo(0x00040001)?.scope, 'vp');   // CR2
  assert.equal(registerInfo(0x00040002)?.scope, 'vtl');  // CR3
  assert.equal(registerInfo(0x00030005)?.kind, 'u128');
  assert.equal(registerInfo(0x00060001)?.kind, 'segment');
  assert.equal(registerInfo(0x00070001)?.kind, 'table');
  assert.equal(registerInfo(0x000d0007)?.scope, 'partition-vtl');
  assert.equal(registerInfo(0x000d0004)?.scope, 'partition');
  assert.equal(registerInfo(0x000d0003)?.scope, 'vp');   // VsmVpStatus: per VP, shared by all VTLs
});

test('§2.15/§1.6: access check: unknown name, read-only set, VTL0 instances that do not exist, secure config of a VTL ≥ target', () => {
  assert.equal(checkRegisterAccess(0x00020000, 'get', 0), S.SUCCESS);
  assert.equal(checkRegisterAccess(0x00020012, 'get', 0), S.UNKNOWN_REGISTER_NAME);
  assert.equal(checkRegisterAccess(0x000d0008, 'get', 1), S.UNKNOWN_REGISTER_NAME); // GuestVsmPartitionConfig (isolation only)
  for (const ro of [0x000d0002, 0x000d0003, 0x000d0004, 0x000d0006, 0x00090003, 0x00090004, 0x000a0011]) {
    assert.equal(checkRegisterAccess(ro, 'get', 1), S.SUCCESS);
    assert.equal(checkRegisterAccess(ro, 'set', 1), S.INVALID_PARAMETER, `0x${ro.toString(16)}`);
  }
  assert.equal(checkRegisterAccess(0x000a0014, 'get', 0), S.SUCCESS); // EOM is write-only: reads as 0
  assert.equal(checkRegisterAccess(0x000d0007, 'set', 0), S.INVALID_PARAMETER); // VTL0 has no VsmPartitionConfig
  assert.equal(checkRegisterAccess(0x000d0007, 'set', 1), S.SUCCESS);
  assert.equal(checkRegisterAccess(0x000d0005, 'get', 0), S.INVALID_PARAMETER); // VINA: higher VTLs only
  assert.equal(checkRegisterAccess(0x000d0010, 'set', 1), S.SUCCESS);       // VTL1 configures VTL0
  assert.equal(checkRegisterAccess(0x000d0011, 'set', 1), S.ACCESS_DENIED); // VTL1 cannot configure VTL1
  assert.equal(checkRegisterAccess(0x000d0010, 'get', 0), S.ACCESS_DENIED);
  assert.equal(checkRegisterAccess(0x000d0011, 'set', 2), S.SUCCESS);
  assert.throws(() => checkRegisterAccess(-1, 'get', 0), VsmError);
});

test('§2.15/§2.13: HV_REGISTER_VALUE encodings: u64, u128, segment (base, limit, selector, attributes), table (pad, limit @6, base @8)', () => {
  assert.deepEqual([...encodeRegisterValue({ kind: 'u64', value: 0x0102030405060708n })],
    [8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeRegisterValue({ kind: 'u128', low: 1n, high: 0x8000_0000_0000_0000n })],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
  const segBytes = [0x00, 0x10, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x0f, 0x00, 0x10, 0x00, 0x93, 0xc0];
  assert.deepEqual([...encodeRegisterValue({ kind: 'segment', segment: { base: 0x1000n, limit: 0xfffff, selector: 0x10, attributes: 0xc093 } })], segBytes);
  assert.deepEqual(decodeRegisterValue('segment', Uint8Array.from(segBytes)), { kind: 'segment', segment: { base: 0x1000n, limit: 0xfffff, selector: 0x10, attributes: 0xc093 } });
  const tbl = [0, 0, 0, 0, 0, 0, 0xff, 0x0f, 0x00, 0x90, 0, 0, 0, 0, 0, 0];
  assert.deepEqual([...encodeRegisterValue({ kind: 'table', table: { base: 0x9000n, limit: 0xfff } })], tbl);
  tbl[0] = 0xaa; // pad bytes are ignored on input
  assert.deepEqual(decodeRegisterValue('table', Uint8Array.from(tbl)), { kind: 'table', table: { base: 0x9000n, limit: 0xfff } });
  const u = new Uint8Array(16); u[0] = 5; u[8] = 9; // upper half ignored for 64-bit registers
  assert.deepEqual(decodeRegisterValue('u64', u), { kind: 'u64', value: 5n });
  segBytes[15] = 0xc1; // attribute bit 8: reserved 11:8 → not a valid value
  assert.equal(decodeRegisterValue('segment', Uint8Array.from(segBytes)), null);
  assert.throws(() => decodeRegisterValue('u64', new Uint8Array(8)), VsmError);
});

test('§3.6: VsmCodePageOffsets: call 11:0, return 23:12; ours are 0x0F/0x26 (64-bit) and 0x04/0x1B (32-bit)', () => {
  assert.equal(codePageOffsetsFor(true), 0x2600fn);
  assert.equal(codePageOffsetsFor(false), 0x1b004n);
  assert.deepEqual(decodeCodePageOffsets(0x2600fn), { vtlCallOffset: 0x0f, vtlReturnOffset: 0x26 });
});

test('§3.7: VsmVpStatus and VsmPartitionStatus bit positions', () => {
  assert.equal(encodeVpStatus({ activeVtl: 1, activeMbecEnabled: false, enabledVtlSet: 0b11 }), 0x0003_0001n);
  assert.equal(encodeVpStatus({ activeVtl: 2, activeMbecEnabled: true, enabledVtlSet: 0b101 }), 0x0005_0012n);
  assert.equal(encodePartitionStatus({ enabledVtlSet: 0b11, maximumVtl: 1, mbecEnabledVtlSet: 0, sssEnabledVtlSet: 0 }), 0x1_0003n);
  assert.equal(encodePartitionStatus({ enabledVtlSet: 1, maximumVtl: 2, mbecEnabledVtlSet: 0b10, sssEnabledVtlSet: 0b1 }), 0x10_0022_0001n);
  assert.throws(() => encodeVpStatus({ activeVtl: 16, activeMbecEnabled: false, enabledVtlSet: 0 }), VsmError);
});

test('§3.7: VsmCapabilities in hvdef order: Dr6Shared 0, MbecVtlMask 16:1, DenyLowerVtlStartup 17, InterceptPage 27, ReturnAction 28', () => {
  assert.equal(encodeCapabilities(DEFAULT_VSM_CAPABILITIES), (1n << 17n) | (3n << 27n), 'DenyLowerVtlStartup, the intercept page and return actions');
  // What a partition offers adds MBEC for each VTL from 1 to its maximum (MbecVtlMask bit n = VTL n, at register bit n + 1).
  assert.equal(encodeCapabilities(vsmCapabilities(1)), (1n << 2n) | (1n << 17n) | (3n << 27n));
  assert.equal(encodeCapabilities(vsmCapabilities(2)), (3n << 2n) | (1n << 17n) | (3n << 27n));
  const none = { ...DEFAULT_VSM_CAPABILITIES, denyLowerVtlStartup: false, interceptPageAvailable: false, returnActionAvailable: false };
  assert.equal(encodeCapabilities(none), 0n);
  assert.equal(encodeCapabilities({ ...none, dr6Shared: true }), 1n);
  assert.equal(encodeCapabilities({ ...none, mbecVtlMask: 0b10 }), 0b100n);
  assert.equal(encodeCapabilities({ ...none, denyLowerVtlStartup: true }), 1n << 17n);
  assert.equal(encodeCapabilities({ ...none, hardwareHvptRangeBits: 0x3f }), 0x3fn << 21n);
  assert.equal(encodeCapabilities({ ...none, interceptPageAvailable: true, returnActionAvailable: true }), 3n << 27n);
  assert.equal(encodeCapabilities({ ...none, proxyInterruptRedirectAvailable: true }), 1n << 34n);
  const all = (1n << 35n) - 1n & ~(1n << 33n);
  assert.equal(encodeCapabilities(decodeCapabilities(all)), all);
});

test('§3.7: VsmPartitionConfig: EnableVtlProtection 0, DefaultVtlProtectionMask 4:1, DenyLowerVtlStartup 6, InterceptVpStartup 9', () => {
  const c = decodePartitionConfig(0x21bn); // 0b10_0001_1011
  assert.equal(c.enableVtlProtection, true);
  assert.equal(c.defaultVtlProtectionMask, 0xd);
  assert.equal(c.interceptVpStartup, true);
  assert.equal(c.denyLowerVtlStartup, false);
  assert.equal(encodePartitionConfig(c), 0x21bn);
  assert.equal(defaultProtection(0x21bn), 0xd);
  assert.equal(defaultProtection(0x1an), 0xf); // protection not enabled: the mask does not apply yet
});

test('§3.7: EnableVtlProtection and the default mask are write-once; RsvdZ and unsupported bits are INVALID_REGISTER_VALUE', () => {
  const caps = { interceptPageAvailable: false };
  const checkPartitionConfigWrite = (cur: bigint, next: bigint, c: typeof caps, mbec = false) => checkConfig(cur, next, c, mbec);
  assert.equal(checkPartitionConfigWrite(0n, 0x3n, caps), S.SUCCESS);                    // enable with R
  assert.equal(checkPartitionConfigWrite(0n, 0x13n, caps), S.INVALID_REGISTER_VALUE);    // R+UX (0x9) as the default: needs MBEC
  assert.equal(checkPartitionConfigWrite(0n, 0x13n, caps, true), S.SUCCESS);             // ... which the configured VTL has
  assert.equal(checkPartitionConfigWrite(0n, 0xbn, caps, true), S.INVALID_REGISTER_VALUE); // R+KX (0x5) never
  assert.equal(checkPartitionConfigWrite(0x3n, 0x3n | 0x40n, caps), S.SUCCESS);           // DenyLowerVtlStartup may change
  assert.equal(checkPartitionConfigWrite(0x3n, 0x2n, caps), S.INVALID_REGISTER_VALUE);    // clearing EnableVtlProtection
  assert.equal(checkPartitionConfigWrite(0x3n, 0x1fn, caps), S.INVALID_REGISTER_VALUE);   // changing the mask after enable
  assert.equal(checkPartitionConfigWrite(0n, 0x5n, caps), S.INVALID_REGISTER_VALUE);      // enabling with mask W only (0x2)
  assert.equal(checkPartitionConfigWrite(0n, 0x4n, caps), S.SUCCESS);                    // the mask alone, not yet enabled
  assert.equal(checkPartitionConfigWrite(0n, 1n << 16n, caps), S.INVALID_REGISTER_VALUE);  // RsvdZ
  assert.equal(checkPartitionConfigWrite(0n, 1n << 7n, caps), S.INVALID_REGISTER_VALUE);   // hvdef-only bit
  assert.equal(checkPartitionConfigWrite(0n, 1n << 12n, caps), S.INVALID_REGISTER_VALUE);  // InterceptPage not available
  assert.equal(checkPartitionConfigWrite(0n, 1n << 12n, { interceptPageAvailable: true }), S.SUCCESS);
});

test('§3.7/§3.9: VsmVpSecureConfig: MbecEnabled 0, TlbLocked 1; MbecEnabled only from a VTL with MBEC; no SSS, HVPT', () => {
  assert.deepEqual(decodeSecureConfig(0x2n), { mbecEnabled: false, tlbLocked: true, sssEnabled: false, hwHvptEnabled: false });
  assert.equal(encodeSecureConfig({ mbecEnabled: true, tlbLocked: true, sssEnabled: true, hwHvptEnabled: true }), 0xfn);
  for (const mbec of [false, true]) {
    assert.equal(checkSecureConfigWrite(0x2n, mbec), S.SUCCESS);
    assert.equal(checkSecureConfigWrite(0x0n, mbec), S.SUCCESS);
    assert.equal(checkSecureConfigWrite(0x4n | (mbec ? 1n : 0n), mbec), S.INVALID_REGISTER_VALUE); // shadow stacks
    assert.equal(checkSecureConfigWrite(0x10n, mbec), S.INVALID_REGISTER_VALUE);
  }
  assert.equal(checkSecureConfigWrite(0x1n, false), S.INVALID_REGISTER_VALUE);
  assert.equal(checkSecureConfigWrite(0x3n, true), S.SUCCESS);
});

test('§3.7: VsmVina: vector 7:0, Enabled 8, AutoReset 9, AutoEoi 10, 63:11 RsvdP; WaitForTlbLock bit 0 only', () => {
  assert.deepEqual(decodeVina(0xffff_f000_0000_0731n), { vector: 0x31, enabled: true, autoReset: true, autoEoi: true });
  assert.equal(encodeVina({ vector: 0xf0, enabled: true, autoReset: false, autoEoi: true }), 0x5f0n);
  assert.equal(checkWaitForTlbLockWrite(1n), S.SUCCESS);
  assert.equal(checkWaitForTlbLockWrite(2n), S.INVALID_REGISTER_VALUE);
});
