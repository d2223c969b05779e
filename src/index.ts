/**
 * The vsmvisor package: the KVM-shaped hypervisor API (src/kvm/README.md), the
 * PC machine that sits on it, and the pieces a host program needs to drive a
 * VM directly, as KVM selftests drive /dev/kvm.
 */
// kvm: VMs, vCPUs, exits, errors, memory, attributes, MP states, registers, tracing.
export { Vm, type VmOptions } from './kvm/vm.js';
export { Vcpu } from './kvm/vcpu.js';
export * from './kvm/exits.js';
export { KvmError, type Errno } from './kvm/errors.js';
export { GuestClock } from './kvm/clock.js';
export { type CpuidEntry } from './kvm/cpuid.js';
export { GuestMemory, type UserMemoryRegion, KVM_USER_MEM_SLOTS } from './kvm/memslots.js';
export {
  KVM_MEMORY_ATTRIBUTE_NR, KVM_MEMORY_ATTRIBUTE_NW, KVM_MEMORY_ATTRIBUTE_NX, KVM_MEMORY_ATTRIBUTE_PRIVATE,
  type MemoryAttributesRequest,
} from './kvm/memory-attributes.js';
export * from './kvm/mp-state.js';
export { type KvmRegs, type KvmSregs, type KvmSegment, type KvmDtable, type XmmRegister } from './kvm/vcpu-regs.js';
export { TraceLog, type TraceEvent } from './kvm/trace.js';
export { LocalApic } from './kvm/lapic.js';
export { EventFd, EventFdPoll } from './kvm/eventfd.js';
export * from './kvm/ioeventfd.js';
export { GuestMemoryAccess, ProtectedMemoryError, GuestMemoryAccessError } from './vmm/guest-memory-access.js';
// Hyper-V enlightenments.
export { resolveHvFeatures, HvFeatures, HvFeatureError, type HvConfig } from './kvm/hyperv/features.js';
export { hypervCpuidEntries } from './kvm/hyperv/cpuid.js';
export { OnHyperv, type OnHypervOptions } from './kvm/on-hyperv/on-hyperv.js';
export { L0Hypervisor } from './l0/l0.js';
// Guest memory and the PC machine.
export { PhysMemory } from './memory/phys-memory.js';
export { Machine, type MachineOptions, type MachineResult } from './vmm/machine.js';
export { defaultCpuid } from './vmm/cpuid.js';
