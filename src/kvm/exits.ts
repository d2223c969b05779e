/** Why Vcpu.run() returned: the KVM exit reasons this core produces (kvm-api-facts.md names where one exists). */
export type VcpuExit =
  | { readonly reason: 'io'; readonly direction: 'in' | 'out'; readonly port: number; readonly size: number; readonly value: number }
  | { readonly reason: 'mmio'; readonly isWrite: boolean; readonly gpa: number; readonly size: number; readonly value: bigint }
  | { readonly reason: 'hlt' }
  | { readonly reason: 'shutdown'; readonly why: string }
  /** The instruction budget of this run() call is used up (KVM_EXIT_INTR's role: the VMM gets control back). */
  | { readonly reason: 'preempted' };
