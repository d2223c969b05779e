/**
 * Hyper-V Top Level Functional Specification numbers: the single source of
 * every Hyper-V constant the project uses (DESIGN §1: one module per spec).
 * Section numbers (§) refer to /work/shared/spec/tlfs-vsm-facts.md.
 *
 * 32-bit values are plain numbers; 64-bit masks are bigints (API edges only).
 */

// ---------------------------------------------------------------- key constants

export const HV_PAGE_SIZE = 4096;
export const HV_PAGE_SHIFT = 12;
export const HV_PARTITION_ID_SELF = 0xffff_ffff_ffff_ffffn;
export const HV_VP_INDEX_SELF = 0xffff_fffe;
export const HV_ANY_VP = 0xffff_ffff;
export const HV_SYNIC_SINT_COUNT = 16;
export const HV_SYNIC_STIMER_COUNT = 4;
/** SINT used for intercept messages. */
export const HV_SYNIC_INTERCEPTION_SINT_INDEX = 0;

// ---------------------------------------------------------------- §1.1 hypercall input value (RCX)

export const HV_HYPERCALL_CODE_MASK = 0xffff;
export const HV_HYPERCALL_FAST_BIT = 16;
export const HV_HYPERCALL_VARHEAD_SHIFT = 17;
export const HV_HYPERCALL_VARHEAD_MASK = 0x3ff; // 10 bits, 26:17
export const HV_HYPERCALL_NESTED_BIT = 31;
export const HV_HYPERCALL_REP_COUNT_SHIFT = 32;
export const HV_HYPERCALL_REP_START_SHIFT = 48;
export const HV_HYPERCALL_REP_MASK = 0xfff; // 12 bits
/** RsvdZ bits of the control word: 30:27, 47:44, 63:60. */
export const HV_HYPERCALL_RSVDZ_MASK = 0xf000_f000_7800_0000n;
/** Extended hypercalls have call codes at and above this. */
export const HV_EXTENDED_HYPERCALL_FIRST = 0x8000;

// ---------------------------------------------------------------- §1.2 hypercall result value (RAX)

export const HV_RESULT_REPS_COMPLETED_SHIFT = 32;

// ---------------------------------------------------------------- §1.3 instruction lengths

export const VMCALL_BYTES: readonly number[] = [0x0f, 0x01, 0xc1];
export const VMMCALL_BYTES: readonly number[] = [0x0f, 0x01, 0xd9];

// ---------------------------------------------------------------- §1.4 guest OS ID / hypercall MSR

export const HV_HYPERCALL_MSR_ENABLE = 1n << 0n;
export const HV_HYPERCALL_MSR_LOCKED = 1n << 1n;
export const HV_HYPERCALL_MSR_PFN_SHIFT = 12n;

// ---------------------------------------------------------------- §1.6 HV_STATUS codes

export const HvStatus = {
  SUCCESS: 0x0000,
  INVALID_HYPERCALL_CODE: 0x0002,
  INVALID_HYPERCALL_INPUT: 0x0003,
  INVALID_ALIGNMENT: 0x0004,
  INVALID_PARAMETER: 0x0005,
  ACCESS_DENIED: 0x0006,
  INVALID_PARTITION_STATE: 0x0007,
  OPERATION_DENIED: 0x0008,
  UNKNOWN_PROPERTY: 0x0009,
  PROPERTY_VALUE_OUT_OF_RANGE: 0x000a,
  INSUFFICIENT_MEMORY: 0x000b,
  PARTITION_TOO_DEEP: 0x000c,
  INVALID_PARTITION_ID: 0x000d,
  INVALID_VP_INDEX: 0x000e,
  NOT_FOUND: 0x0010,
  INVALID_PORT_ID: 0x0011,
  INVALID_CONNECTION_ID: 0x0012,
  INSUFFICIENT_BUFFERS: 0x0013,
  NOT_ACKNOWLEDGED: 0x0014,
  INVALID_VP_STATE: 0x0015,
  ACKNOWLEDGED: 0x0016,
  INVALID_SAVE_RESTORE_STATE: 0x0017,
  INVALID_SYNIC_STATE: 0x0018,
  OBJECT_IN_USE: 0x0019,
  INVALID_PROXIMITY_DOMAIN_INFO: 0x001a,
  NO_DATA: 0x001b,
  INACTIVE: 0x001c,
  NO_RESOURCES: 0x001d,
  FEATURE_UNAVAILABLE: 0x001e,
  PARTIAL_PACKET: 0x001f,
  PROCESSOR_FEATURE_NOT_SUPPORTED: 0x0020,
  PROCESSOR_CACHE_LINE_FLUSH_SIZE_INCOMPATIBLE: 0x0030,
  INSUFFICIENT_BUFFER: 0x0033,
  INCOMPATIBLE_PROCESSOR: 0x0037,
  INSUFFICIENT_DEVICE_DOMAINS: 0x0038,
  CPUID_FEATURE_VALIDATION_ERROR: 0x003c,
  CPUID_XSAVE_FEATURE_VALIDATION_ERROR: 0x003d,
  PROCESSOR_STARTUP_TIMEOUT: 0x003e,
  SMX_ENABLED: 0x003f,
  INVALID_LP_INDEX: 0x0041,
  INVALID_REGISTER_VALUE: 0x0050,
  INVALID_VTL_STATE: 0x0051,
  NX_NOT_DETECTED: 0x0055,
  INVALID_DEVICE_ID: 0x0057,
  INVALID_DEVICE_STATE: 0x0058,
  PENDING_PAGE_REQUESTS: 0x0059,
  PAGE_REQUEST_INVALID: 0x0060,
  KEY_ALREADY_EXISTS: 0x0065,
  DEVICE_ALREADY_IN_DOMAIN: 0x0066,
  INVALID_CPU_GROUP_ID: 0x006f,
  INVALID_CPU_GROUP_STATE: 0x0070,
  OPERATION_FAILED: 0x0071,
  NOT_ALLOWED_WITH_NESTED_VIRT_ACTIVE: 0x0072,
  INSUFFICIENT_ROOT_MEMORY: 0x0073,
  EVENT_BUFFER_ALREADY_FREED: 0x0074,
  TIME_OUT: 0x0078,
  CALL_PENDING: 0x0079,
  VTL_ALREADY_ENABLED: 0x0086,
  UNKNOWN_REGISTER_NAME: 0x0087,
} as const;
export type HvStatusCode = (typeof HvStatus)[keyof typeof HvStatus];

// ---------------------------------------------------------------- §2.1 hypercall codes

export const HvCall = {
  SwitchVirtualAddressSpace: 0x0001,
  FlushVirtualAddressSpace: 0x0002,
  FlushVirtualAddressList: 0x0003,
  NotifyLongSpinWait: 0x0008,
  SendSyntheticClusterIpi: 0x000b,
  ModifyVtlProtectionMask: 0x000c,
  EnablePartitionVtl: 0x000d,
  EnableVpVtl: 0x000f,
  VtlCall: 0x0011,
  VtlReturn: 0x0012,
  FlushVirtualAddressSpaceEx: 0x0013,
  FlushVirtualAddressListEx: 0x0014,
  SendSyntheticClusterIpiEx: 0x0015,
  InstallIntercept: 0x004d,
  GetVpRegisters: 0x0050,
  SetVpRegisters: 0x0051,
  TranslateVirtualAddress: 0x0052,
  PostMessage: 0x005c,
  SignalEvent: 0x005d,
  RegisterInterceptResult: 0x0091,
  AssertVirtualInterrupt: 0x0094,
  StartVirtualProcessor: 0x0099,
  GetVpIndexFromApicId: 0x009a,
  TranslateVirtualAddressEx: 0x00ac,
  FlushGuestPhysicalAddressSpace: 0x00af,
  FlushGuestPhysicalAddressList: 0x00b0,
  SignalEventDirect: 0x00c0,
  PostMessageDirect: 0x00c1,
  CheckSparseGpaPageVtlAccess: 0x00d4,
  AcceptGpaPages: 0x00d9,
  ModifySparseGpaPageHostVisibility: 0x00db,
  GetVpCpuidValues: 0x00f4,
  ExtQueryCapabilities: 0x8001,
} as const;
export type HvCallCode = (typeof HvCall)[keyof typeof HvCall];

/**
 * The class of each call (§2.1 "Kind"): 'simple', 'rep', and whether it takes a
 * variable header; VtlCall/VtlReturn are 'special' (entered through the hypercall
 * page, control word must hold only the call code, §3.4).
 */
export interface HvCallClass {
  readonly rep: boolean;
  readonly variableHeader: boolean;
  readonly special: boolean;
}
const simple: HvCallClass = { rep: false, variableHeader: false, special: false };
const rep: HvCallClass = { rep: true, variableHeader: false, special: false };
export const HV_CALL_CLASS: ReadonlyMap<number, HvCallClass> = new Map<number, HvCallClass>([
  [HvCall.SwitchVirtualAddressSpace, simple],
  [HvCall.FlushVirtualAddressSpace, simple],
  [HvCall.FlushVirtualAddressList, rep],
  [HvCall.NotifyLongSpinWait, simple],
  [HvCall.SendSyntheticClusterIpi, simple],
  [HvCall.ModifyVtlProtectionMask, rep],
  [HvCall.EnablePartitionVtl, simple],
  [HvCall.EnableVpVtl, simple],
  [HvCall.VtlCall, { rep: false, variableHeader: false, special: true }],
  [HvCall.VtlReturn, { rep: false, variableHeader: false, special: true }],
  [HvCall.FlushVirtualAddressSpaceEx, { rep: false, variableHeader: true, special: false }],
  [HvCall.FlushVirtualAddressListEx, { rep: true, variableHeader: true, special: false }],
  [HvCall.SendSyntheticClusterIpiEx, { rep: false, variableHeader: true, special: false }],
  [HvCall.InstallIntercept, simple],
  [HvCall.GetVpRegisters, rep],
  [HvCall.SetVpRegisters, rep],
  [HvCall.TranslateVirtualAddress, simple],
  [HvCall.PostMessage, simple],
  [HvCall.SignalEvent, simple],
  [HvCall.RegisterInterceptResult, simple],
  [HvCall.AssertVirtualInterrupt, simple],
  [HvCall.StartVirtualProcessor, simple],
  [HvCall.GetVpIndexFromApicId, rep],
  [HvCall.TranslateVirtualAddressEx, simple],
  [HvCall.FlushGuestPhysicalAddressSpace, simple],
  [HvCall.FlushGuestPhysicalAddressList, rep],
  [HvCall.SignalEventDirect, simple],
  [HvCall.PostMessageDirect, simple],
  [HvCall.CheckSparseGpaPageVtlAccess, rep],
  [HvCall.AcceptGpaPages, rep],
  [HvCall.ModifySparseGpaPageHostVisibility, rep],
  [HvCall.GetVpCpuidValues, rep],
  [HvCall.ExtQueryCapabilities, simple],
]);

// ---------------------------------------------------------------- §2.9/§2.10 PostMessage / SignalEvent

export const HV_MESSAGE_SIZE = 256;
export const HV_MESSAGE_HEADER_SIZE = 16;
export const HV_MESSAGE_PAYLOAD_MAX = 240;
/** HvPostMessage input: ConnectionId u32 @0, RsvdZ u32 @4, MessageType u32 @8, PayloadSize u32 @12, Payload @16. */
export const HV_POST_MESSAGE_INPUT_SIZE = 256;
/** Event flags per SINT in the SIEF page (256 bytes × 8). */
export const HV_EVENT_FLAGS_PER_SINT = 2048;

// ---------------------------------------------------------------- §3.3 VP assist page

export const HV_VP_ASSIST_PAGE_ENABLE = 1n << 0n;
/** Offsets inside HV_VP_ASSIST_PAGE. */
export const HvVpAssist = {
  ApicAssist: 0x000,
  VtlControl: 0x008,
  EntryReason: 0x008,
  VinaStatus: 0x00c,
  VtlReturnRax: 0x010,
  VtlReturnRcx: 0x018,
  NestedEnlightenmentsControl: 0x020,
  EnlightenVmEntry: 0x028,
  CurrentNestedVmcs: 0x030,
  SyntheticTimeUnhaltedTimerExpired: 0x038,
  VirtualizationFaultInformation: 0x040,
  InterceptMessage: 0x070,
  VtlReturnActions: 0x170,
} as const;

// ---------------------------------------------------------------- §3.6 hypercall page layout (hv1_emulator's)

/** Offsets of the stubs this implementation puts in the hypercall page. */
export const HvHypercallPage = {
  Hypercall: 0x00,
  VtlCall32: 0x04,
  VtlCall64: 0x0f,
  VtlReturn32: 0x1b,
  VtlReturn64: 0x26,
  /** Bytes used by all stubs. */
  StubEnd: 0x32,
  /** Filler of the rest of the page (INT3). */
  Filler: 0xcc,
} as const;

// ---------------------------------------------------------------- §4.1 SynIC registers

export const HV_SYNIC_VERSION = 1;
export const HV_SYNIC_CONTROL_ENABLE = 1n << 0n;
export const HV_SYNIC_SIEFP_ENABLE = 1n << 0n;
export const HV_SYNIC_SIMP_ENABLE = 1n << 0n;
export const HV_SYNIC_SINT_VECTOR_MASK = 0xffn;
export const HV_SYNIC_SINT_MASKED = 1n << 16n;
export const HV_SYNIC_SINT_AUTO_EOI = 1n << 17n;
export const HV_SYNIC_SINT_POLLING = 1n << 18n;
export const HV_SYNIC_SINT_AS_INTERCEPT = 1n << 19n;
export const HV_SYNIC_SINT_PROXY = 1n << 20n;
/** SINTn reset value: masked, vector 0. */
export const HV_SYNIC_SINT_RESET = 0x1_0000n;
/** Lowest valid SINT vector. */
export const HV_SYNIC_FIRST_VALID_VECTOR = 16;

// ---------------------------------------------------------------- §4.2 HV_MESSAGE layout

export const HvMessageOffset = {
  MessageType: 0,
  PayloadSize: 4,
  MessageFlags: 5,
  Reserved: 6,
  OriginationId: 8,
  Payload: 16,
} as const;
export const HV_MESSAGE_FLAG_PENDING = 0x01;

// ---------------------------------------------------------------- §4.3 message types

export const HvMessageType = {
  None: 0x0000_0000,
  UnmappedGpa: 0x8000_0000,
  GpaIntercept: 0x8000_0001,
  UnacceptedGpa: 0x8000_0003,
  GpaAttributeIntercept: 0x8000_0004,
  EnablePartitionVtlIntercept: 0x8000_0005,
  TimerExpired: 0x8000_0010,
  InvalidVpRegisterValue: 0x8000_0020,
  UnrecoverableException: 0x8000_0021,
  UnsupportedFeature: 0x8000_0022,
  TlbPageSizeMismatch: 0x8000_0023,
  OpaqueIntercept: 0x8000_003f,
  EventLogBufferComplete: 0x8000_0040,
  HypercallIntercept: 0x8000_0050,
  SynicEventIntercept: 0x8000_0060,
  SynicSintIntercept: 0x8000_0061,
  SynicSintDeliverable: 0x8000_0062,
  AsyncCallCompletion: 0x8000_0070,
  X64IoPortIntercept: 0x8001_0000,
  MsrIntercept: 0x8001_0001,
  X64CpuidIntercept: 0x8001_0002,
  ExceptionIntercept: 0x8001_0003,
  X64ApicEoi: 0x8001_0004,
  X64LegacyFpError: 0x8001_0005,
  RegisterIntercept: 0x8001_0006,
  X64Halt: 0x8001_0007,
  X64InterruptionDeliverable: 0x8001_0008,
  X64SipiIntercept: 0x8001_0009,
  X64RdtscIntercept: 0x8001_000a,
  X64ApicSmiIntercept: 0x8001_000b,
  X64ApicInitSipiIntercept: 0x8001_000d,
  X64ApicWriteIntercept: 0x8001_000e,
  X64ExceptionTrapIntercept: 0x8001_0012,
  X64MsrListIntercept: 0x8001_0015,
} as const;
/** Message types with bit 31 set are reserved for the hypervisor (§2.9). */
export const HV_MESSAGE_TYPE_HYPERVISOR_BIT = 0x8000_0000;

/** HV_TIMER_MESSAGE_PAYLOAD (§4.3): timer index u32 @0, rsvd u32 @4, expiration u64 @8, delivery u64 @16. */
export const HvTimerPayload = { TimerIndex: 0, Reserved: 4, ExpirationTime: 8, DeliveryTime: 16, Size: 24 } as const;

// ---------------------------------------------------------------- §6.1 CPUID leaves

export const HvCpuidLeaf = {
  VendorAndMax: 0x4000_0000,
  Interface: 0x4000_0001,
  Version: 0x4000_0002,
  Features: 0x4000_0003,
  Recommendations: 0x4000_0004,
  Limits: 0x4000_0005,
  HardwareFeatures: 0x4000_0006,
  CpuManagement: 0x4000_0007,
  NestedHypervisorFeatures: 0x4000_0009,
  NestedFeatures: 0x4000_000a,
} as const;
/** "Hv#1" in EAX of leaf 0x40000001. */
export const HV_INTERFACE_SIGNATURE = 0x3123_7648;
/** Leaf 1 ECX bit 31: a hypervisor is present. */
export const CPUID_1_ECX_HYPERVISOR = 31;
export const HV_DEFAULT_VENDOR = 'Microsoft Hv';
/** Spin retry count that means "never notify" (leaf 0x40000004 EBX). */
export const HV_SPINLOCK_NEVER_NOTIFY = 0xffff_ffff;

// ---------------------------------------------------------------- §6.2 partition privilege mask (bit numbers 0..63)

export const HvPrivilege = {
  AccessVpRunTimeReg: 0,
  AccessPartitionReferenceCounter: 1,
  AccessSynicRegs: 2,
  AccessSyntheticTimerRegs: 3,
  AccessIntrCtrlRegs: 4,
  AccessHypercallMsrs: 5,
  AccessVpIndex: 6,
  AccessResetReg: 7,
  AccessStatsReg: 8,
  AccessPartitionReferenceTsc: 9,
  AccessGuestIdleReg: 10,
  AccessFrequencyRegs: 11,
  AccessDebugRegs: 12,
  AccessReenlightenmentControls: 13,
  AccessRootSchedulerReg: 14,
  AccessTscInvariantControls: 15,
  CreatePartitions: 32,
  AccessPartitionId: 33,
  AccessMemoryPool: 34,
  AdjustMessageBuffers: 35,
  PostMessages: 36,
  SignalEvents: 37,
  CreatePort: 38,
  ConnectPort: 39,
  AccessStats: 40,
  Debugging: 43,
  CpuManagement: 44,
  ConfigureProfiler: 45,
  AccessVpExitTracing: 46,
  EnableExtendedGvaRangesForFlushVirtualAddressList: 47,
  AccessVsm: 48,
  AccessVpRegisters: 49,
  FastHypercallOutput: 51,
  EnableExtendedHypercalls: 52,
  StartVirtualProcessor: 53,
  Isolation: 54,
} as const;
export type HvPrivilegeName = keyof typeof HvPrivilege;

// ---------------------------------------------------------------- §6.3 CPUID 0x40000003 EDX (bit numbers)

export const HvFeatureEdx = {
  Mwait: 0,
  GuestDebugging: 1,
  PerformanceMonitor: 2,
  CpuDynamicPartitioning: 3,
  XmmHypercallInput: 4,
  GuestIdleState: 5,
  HypervisorSleepState: 6,
  NumaDistanceQuery: 7,
  TimerFrequencyMsrs: 8,
  SyntheticMachineCheck: 9,
  GuestCrashMsrs: 10,
  DebugMsrs: 11,
  Npiep: 12,
  DisableHypervisor: 13,
  ExtendedGvaRangesForFlush: 14,
  XmmHypercallOutput: 15,
  SvmFeatures: 16,
  SintPollingMode: 17,
  HypercallMsrLock: 18,
  DirectSyntheticTimers: 19,
  VsmPatRegister: 20,
  VsmBndcfgsRegister: 21,
  WatchdogTimer: 22,
  SyntheticTimeUnhaltedTimer: 23,
  Lbr: 26,
  Ipt: 27,
  CrossVtlFlush: 28,
  IdleSpecCtrl: 29,
  TranslateGvaFlags: 30,
  ApicEoiIntercept: 31,
} as const;

// ---------------------------------------------------------------- §6.4 CPUID 0x40000004 EAX (bit numbers)

export const HvRecommendation = {
  HypercallAddressSpaceSwitch: 0,
  HypercallLocalFlush: 1,
  HypercallRemoteFlush: 2,
  MsrApicAccess: 3,
  MsrSystemReset: 4,
  RelaxedTiming: 5,
  DmaRemapping: 6,
  InterruptRemapping: 7,
  X2apicMsrs: 8,
  DeprecateAutoEoi: 9,
  SyntheticClusterIpi: 10,
  ExProcessorMasks: 11,
  Nested: 12,
  IntForMbecSyscalls: 13,
  EnlightenedVmcs: 14,
  SyncedTimeline: 15,
  DirectLocalFlushEntire: 17,
  NoNonArchitecturalCoreSharing: 18,
} as const;

// ---------------------------------------------------------------- §6.5 synthetic MSRs

export const HvMsr = {
  GUEST_OS_ID: 0x4000_0000,
  HYPERCALL: 0x4000_0001,
  VP_INDEX: 0x4000_0002,
  RESET: 0x4000_0003,
  VP_RUNTIME: 0x4000_0010,
  TIME_REF_COUNT: 0x4000_0020,
  REFERENCE_TSC: 0x4000_0021,
  TSC_FREQUENCY: 0x4000_0022,
  APIC_FREQUENCY: 0x4000_0023,
  EOI: 0x4000_0070,
  ICR: 0x4000_0071,
  TPR: 0x4000_0072,
  VP_ASSIST_PAGE: 0x4000_0073,
  SCONTROL: 0x4000_0080,
  SVERSION: 0x4000_0081,
  SIEFP: 0x4000_0082,
  SIMP: 0x4000_0083,
  EOM: 0x4000_0084,
  SIRBP: 0x4000_0085,
  SINT0: 0x4000_0090,
  SINT15: 0x4000_009f,
  STIMER0_CONFIG: 0x4000_00b0,
  STIMER0_COUNT: 0x4000_00b1,
  STIMER3_COUNT: 0x4000_00b7,
  GUEST_IDLE: 0x4000_00f0,
  CRASH_P0: 0x4000_0100,
  CRASH_P4: 0x4000_0104,
  CRASH_CTL: 0x4000_0105,
  REENLIGHTENMENT_CONTROL: 0x4000_0106,
  TSC_EMULATION_CONTROL: 0x4000_0107,
  TSC_EMULATION_STATUS: 0x4000_0108,
  TSC_INVARIANT_CONTROL: 0x4000_0118,
  NESTED_VP_INDEX: 0x4000_1002,
} as const;
/** First and last MSR of the synthetic range the in-kernel Hyper-V answers. */
export const HV_MSR_RANGE_FIRST = 0x4000_0000;
export const HV_MSR_RANGE_LAST = 0x4000_01ff;

/** STIMERn_CONFIG bits (§6.5). */
export const HvStimerConfig = {
  Enable: 1n << 0n,
  Periodic: 1n << 1n,
  Lazy: 1n << 2n,
  AutoEnable: 1n << 3n,
  ApicVectorShift: 4n,
  ApicVectorMask: 0xffn,
  DirectMode: 1n << 12n,
  SintShift: 16n,
  SintMask: 0xfn,
} as const;
/** Every defined STIMER CONFIG bit (the rest are reserved). */
export const HV_STIMER_CONFIG_DEFINED = 0x000f_1fffn;

/** CRASH_CTL bit 63: notify (guest crashed; P0..P4 hold parameters); bit 62: crash message. */
export const HV_CRASH_CTL_NOTIFY = 1n << 63n;
export const HV_CRASH_CTL_NOTIFY_MSG = 1n << 62n;

/** REFERENCE_TSC MSR: bit 0 enable, 63:12 page number. */
export const HV_REFERENCE_TSC_ENABLE = 1n << 0n;
/** Reference TSC page layout (§6.5): sequence u32 @0, rsvd u32 @4, scale u64 @8, offset i64 @16. */
export const HvTscPage = { Sequence: 0, Reserved: 4, Scale: 8, Offset: 16 } as const;
/** Sequence value meaning "page not valid, use TIME_REF_COUNT". */
export const HV_TSC_PAGE_INVALID_SEQUENCE = 0;
/** Reference time unit: 100 ns. */
export const HV_REFERENCE_TIME_NS = 100;

// ---------------------------------------------------------------- §1.3 register-based (fast) calls

/** Bytes of one register pair of the fast-call block (RDX:R8, then XMM0..XMM5). */
export const HV_FAST_PAIR_BYTES = 16;
/** Fast input through RDX and R8 only: the first pair. */
export const HV_FAST_GPR_BYTES = 16;
/** XMM fast input: RDX:R8 plus XMM0..XMM5, 7 pairs (CPUID 0x40000003 EDX bit 4). */
export const HV_FAST_XMM_BYTES = 112;
/** XMM registers that carry fast input and output. */
export const HV_HYPERCALL_XMM_REGISTERS = 6;
/** Bytes of the VMCALL/VMMCALL instruction, skipped on completion. */
export const HV_HYPERCALL_INSN_BYTES = 3;
/** Highest bit of the guest physical address space: our CPU reports 40 (CPUID 0x80000008). */
export const HV_GPA_BITS = 40;

// ---------------------------------------------------------------- §2.2 flush flags (HV_FLUSH_FLAGS)

export const HV_FLUSH_ALL_PROCESSORS = 0x1;
export const HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES = 0x2;
export const HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY = 0x4;
export const HV_FLUSH_USE_EXTENDED_RANGE_FORMAT = 0x8;
/** Every flag bit a flush accepts; any other bit is INVALID_PARAMETER (openhcl hcvm_validate_flush_inputs). */
export const HV_FLUSH_DEFINED_FLAGS = 0xf;

/** Flush input layouts (§2.4): HV_TLB_FLUSH and HV_TLB_FLUSH_EX. */
export const HvFlushInput = {
  AddressSpace: 0,
  Flags: 8,
  /** Non-Ex: the 64-VP processor mask. Ex: the VP set (format, valid banks, banks). */
  ProcessorMask: 16,
  VpSet: 16,
  /** Fixed header sizes; Ex bank words follow as the variable header. */
  HeaderBytes: 24,
  ExHeaderBytes: 32,
} as const;

// ---------------------------------------------------------------- §2.3 GVA range element

/** Simple format: bits 11:0 additional pages, bits 63:12 page number. */
export const HV_GVA_RANGE_SIMPLE_ADDITIONAL_MASK = 0xfff;
/** Extended format: bits 10:0 additional (large) pages, bit 11 large page, bit 12 page size (1 GiB), 20:13 reserved. */
export const HV_GVA_RANGE_EXT_ADDITIONAL_MASK = 0x7ff;
export const HV_GVA_RANGE_EXT_LARGE_PAGE = 0x800;
export const HV_GVA_RANGE_EXT_PAGE_SIZE_1G = 0x1000;
export const HV_GVA_RANGE_EXT_LARGE_RESERVED = 0x1fe000;
/** Bytes of one rep element of the flush List calls. */
export const HV_GVA_RANGE_BYTES = 8;

// ---------------------------------------------------------------- §2.5 sparse VP set (HV_VP_SET)

export const HV_GENERIC_SET_SPARSE_4K = 0;
export const HV_GENERIC_SET_ALL = 1;
/** 64 banks of 64 VPs (Linux HV_MAX_SPARSE_VCPU_BANKS). */
export const HV_MAX_SPARSE_VCPU_BANKS = 64;
export const HV_VCPUS_PER_SPARSE_BANK = 64;
/** Offsets inside HV_VP_SET. */
export const HvVpSetOffset = { Format: 0, ValidBanksMask: 8, BankContents: 16 } as const;

// ---------------------------------------------------------------- §2.6 SendSyntheticClusterIpi[Ex]

export const HV_IPI_LOW_VECTOR = 0x10;
export const HV_IPI_HIGH_VECTOR = 0xff;
/** Input layout: Vector u32 @0, TargetVtl u8 @4, Flags u8 @5, Reserved u16 @6, then the mask (u64) or the VP set. */
export const HvIpiInput = {
  Vector: 0, TargetVtl: 4, Flags: 5, Reserved: 6, ProcessorMask: 8, VpSet: 8,
  HeaderBytes: 16, ExHeaderBytes: 24,
} as const;

// ---------------------------------------------------------------- §2.11 HV_INPUT_VTL

export const HV_INPUT_VTL_TARGET_MASK = 0x0f;
export const HV_INPUT_VTL_USE_TARGET = 0x10;
export const HV_INPUT_VTL_RESERVED = 0xe0;
/** Highest VTL Hyper-V implements (VTL0 and VTL1). */
export const HV_MAX_IMPLEMENTED_VTL = 1;

// ---------------------------------------------------------------- §2.8-§2.10 NotifyLongSpinWait, PostMessage, SignalEvent

/** HvPostMessage input offsets (§2.9). */
export const HvPostMessageInput = { ConnectionId: 0, Reserved: 4, MessageType: 8, PayloadSize: 12, Payload: 16 } as const;
/** HvSignalEvent input (§2.10): ConnectionId u32 @0, FlagNumber u16 @4, RsvdZ u16 @6. */
export const HvSignalEventInput = { ConnectionId: 0, FlagNumber: 4, Reserved: 6, Bytes: 8 } as const;

// ================================================================ VSM (Virtual Secure Mode)
// Appended for src/vmm/vsm/. Section numbers (§) refer to tlfs-vsm-facts.md.

// ---------------------------------------------------------------- key constants

/** Architectural VTL limit (VTL 0..15). */
export const HV_NUM_VTLS = 16;
export const HV_INVALID_VTL = 0xff;
export const HV_VTL_ALL = 0xf;

// ---------------------------------------------------------------- §2.12-§2.15 VSM hypercall inputs

/** HvCallEnablePartitionVtl input (§2.12). Flags: bit 0 EnableMbec, bit 1 EnableSupervisorShadowStack, bit 2 EnableHardwareHvpt. */
export const HvEnablePartitionVtlInput = { PartitionId: 0, TargetVtl: 8, Flags: 9, Reserved: 10, Bytes: 16 } as const;
export const HV_ENABLE_PARTITION_VTL_MBEC = 0x1;
export const HV_ENABLE_PARTITION_VTL_SSS = 0x2;
export const HV_ENABLE_PARTITION_VTL_HW_HVPT = 0x4;
/** HvCallEnableVpVtl / HvCallStartVirtualProcessor input (§2.13, §2.14). */
export const HvEnableVpVtlInput = { PartitionId: 0, VpIndex: 8, TargetVtl: 12, Reserved: 13, VpContext: 16, Bytes: 240 } as const;
/** HV_INITIAL_VP_CONTEXT (x64, 224 bytes, §2.13). */
export const HvInitialVpContext = {
  Rip: 0, Rsp: 8, Rflags: 16, Cs: 24, Ds: 40, Es: 56, Fs: 72, Gs: 88, Ss: 104, Tr: 120, Ldtr: 136,
  Idtr: 152, Gdtr: 168, Efer: 184, Cr0: 192, Cr3: 200, Cr4: 208, Pat: 216, Bytes: 224,
} as const;
/** HV_X64_SEGMENT_REGISTER (16 bytes, §2.13): base u64, limit u32, selector u16, attributes u16. */
export const HvSegmentRegister = { Base: 0, Limit: 8, Selector: 12, Attributes: 14, Bytes: 16 } as const;
/** HV_X64_SEGMENT_REGISTER attribute bits (§2.13): 3:0 type, 4 S, 6:5 DPL, 7 P, 11:8 reserved, 12 AVL, 13 L, 14 D/B, 15 G. */
export const HV_SEGMENT_ATTR_RESERVED = 0x0f00;
/** HV_X64_TABLE_REGISTER (16 bytes, §2.13): 6 pad bytes, limit u16 @6, base u64 @8. */
export const HvTableRegister = { Pad: 0, Limit: 6, Base: 8, Bytes: 16 } as const;
/** Get/SetVpRegisters header (§2.15); Get elements are u32 names, Set elements 32 bytes (name u32, 12 RsvdZ, value 16). */
export const HvVpRegistersInput = { PartitionId: 0, VpIndex: 8, TargetVtl: 12, Reserved: 13, HeaderBytes: 16 } as const;
export const HV_GET_VP_REGISTERS_ELEMENT_BYTES = 4;
export const HV_SET_VP_REGISTERS_ELEMENT_BYTES = 32;
export const HV_REGISTER_VALUE_BYTES = 16;
/** HvCallModifyVtlProtectionMask input (§2.18); rep elements are u64 GPA page numbers. */
export const HvModifyVtlProtectionMaskInput = { PartitionId: 0, MapFlags: 8, TargetVtl: 12, Reserved: 13, HeaderBytes: 16, ElementBytes: 8 } as const;

// ---------------------------------------------------------------- §3.3-§3.5 VP assist page: VTL control, entry, return

/** HV_VTL_ENTRY_REASON (§3.4). */
export const HvVtlEntryReason = { Reserved: 0, VtlCall: 1, Interrupt: 2, Intercept: 3 } as const;
/** x86 (32-bit caller) view of the saved registers in HV_VP_VTL_CONTROL (§3.3). */
export const HvVpAssistX86 = { VtlReturnEax: 0x10, VtlReturnEcx: 0x14, VtlReturnEdx: 0x18 } as const;
/** VinaStatus bit 0 (§3.3). */
export const HV_VINA_ASSERTED = 0x1;
/** Bytes of the intercept-message slot (@0x70) and of the VTL return actions area (@0x170) (§3.3). */
export const HV_VP_ASSIST_INTERCEPT_MESSAGE_BYTES = 256;
export const HV_VP_ASSIST_VTL_RETURN_ACTIONS_BYTES = 256;
/** VtlReturn control input (RAX) bit 0: fast return, do not restore RAX/RCX (§3.4); bits 63:1 RsvdZ. */
export const HV_VTL_RETURN_FAST = 0x1n;
/** VTL return action types (§3.5). */
export const HvVtlReturnActionType = { End: 0, SignalEvent: 1 } as const;
/** Signal-event return action (16 bytes, §3.5). */
export const HvSignalEventReturnAction = { Type: 0, TargetVp: 8, TargetVtl: 12, TargetSint: 13, FlagNumber: 14, Bytes: 16 } as const;

// ---------------------------------------------------------------- §3.6 HvRegisterVsmCodePageOffsets

export const HV_VSM_CODE_PAGE_OFFSET_MASK = 0xfff;
export const HV_VSM_CODE_PAGE_RETURN_SHIFT = 12;

// ---------------------------------------------------------------- §3.7 HV_REGISTER_NAME values

/** Register names Get/SetVpRegisters understand (§3.7 "VSM synthetic registers" and "Other frequently used register names"). */
export const HvRegisterName = {
  PendingInterruption: 0x0001_0002,
  InterruptState: 0x0001_0003,
  PendingEvent0: 0x0001_0004,
  PendingEvent1: 0x0001_0005,
  Rax: 0x0002_0000, Rcx: 0x0002_0001, Rdx: 0x0002_0002, Rbx: 0x0002_0003,
  Rsp: 0x0002_0004, Rbp: 0x0002_0005, Rsi: 0x0002_0006, Rdi: 0x0002_0007,
  R8: 0x0002_0008, R9: 0x0002_0009, R10: 0x0002_000a, R11: 0x0002_000b,
  R12: 0x0002_000c, R13: 0x0002_000d, R14: 0x0002_000e, R15: 0x0002_000f,
  Rip: 0x0002_0010,
  Rflags: 0x0002_0011,
  Xmm0: 0x0003_0000,
  Xmm15: 0x0003_000f,
  Cr0: 0x0004_0000, Cr2: 0x0004_0001, Cr3: 0x0004_0002, Cr4: 0x0004_0003, Cr8: 0x0004_0004, Xfem: 0x0004_0005,
  Dr0: 0x0005_0000, Dr1: 0x0005_0001, Dr2: 0x0005_0002, Dr3: 0x0005_0003, Dr6: 0x0005_0004, Dr7: 0x0005_0005,
  Es: 0x0006_0000, Cs: 0x0006_0001, Ss: 0x0006_0002, Ds: 0x0006_0003, Fs: 0x0006_0004, Gs: 0x0006_0005,
  Ldtr: 0x0006_0006, Tr: 0x0006_0007,
  Idtr: 0x0007_0000, Gdtr: 0x0007_0001,
  Tsc: 0x0008_0000, Efer: 0x0008_0001, KernelGsBase: 0x0008_0002, ApicBase: 0x0008_0003, Pat: 0x0008_0004,
  SysenterCs: 0x0008_0005, SysenterEip: 0x0008_0006, SysenterEsp: 0x0008_0007,
  Star: 0x0008_0008, Lstar: 0x0008_0009, Cstar: 0x0008_000a, Sfmask: 0x0008_000b, TscAux: 0x0008_007b,
  Hypercall: 0x0009_0001, GuestOsId: 0x0009_0002, VpIndex: 0x0009_0003, TimeRefCount: 0x0009_0004,
  VpAssistPage: 0x0009_0013, ReferenceTsc: 0x0009_0017,
  Sint0: 0x000a_0000, Sint15: 0x000a_000f,
  Scontrol: 0x000a_0010, Sversion: 0x000a_0011, Sifp: 0x000a_0012, Sipp: 0x000a_0013, Eom: 0x000a_0014, Sirbp: 0x000a_0015,
  Stimer0Config: 0x000b_0000, Stimer3Count: 0x000b_0007,
  VsmCodePageOffsets: 0x000d_0002,
  VsmVpStatus: 0x000d_0003,
  VsmPartitionStatus: 0x000d_0004,
  VsmVina: 0x000d_0005,
  VsmCapabilities: 0x000d_0006,
  VsmPartitionConfig: 0x000d_0007,
  GuestVsmPartitionConfig: 0x000d_0008,
  VsmVpSecureConfigVtl0: 0x000d_0010,
  VsmVpSecureConfigVtl14: 0x000d_001e,
  VsmVpWaitForTlbLock: 0x000d_0020,
  IsolationCapabilities: 0x000d_0100,
  CrInterceptControl: 0x000e_0000,
  CrInterceptCr0Mask: 0x000e_0001,
  CrInterceptCr4Mask: 0x000e_0002,
  CrInterceptIa32MiscEnableMask: 0x000e_0003,
} as const;

/** HvX64RegisterCrInterceptControl bit numbers (§3.7): each intercepts that access of the lower VTLs; 63:29 RsvdZ. */
export const HvCrInterceptBit = {
  Cr0Write: 0, Cr4Write: 1, Xcr0Write: 2, MiscEnableRead: 3, MiscEnableWrite: 4, LstarRead: 5, LstarWrite: 6,
  StarRead: 7, StarWrite: 8, CstarRead: 9, CstarWrite: 10, ApicBaseRead: 11, ApicBaseWrite: 12, EferRead: 13, EferWrite: 14,
  GdtrWrite: 15, IdtrWrite: 16, LdtrWrite: 17, TrWrite: 18, SysenterCsWrite: 19, SysenterEipWrite: 20, SysenterEspWrite: 21,
  SfmaskWrite: 22, TscAuxWrite: 23, SgxLaunchControlWrite: 24, XssWrite: 25, SCetWrite: 26, SspWrite: 27, InterruptSspTableAddrWrite: 28,
} as const;

/** HvRegisterVsmVpStatus (§3.7): 3:0 ActiveVtl, 4 ActiveMbecEnabled, 31:16 EnabledVtlSet; the rest RsvdZ. */
export const HvVsmVpStatus = { ActiveVtlMask: 0xfn, ActiveMbecEnabled: 1n << 4n, EnabledVtlSetShift: 16n, SetMask: 0xffffn } as const;
/** HvRegisterVsmPartitionStatus (§3.7): 15:0 EnabledVtlSet, 19:16 MaximumVtl, 35:20 MbecEnabledVtlSet, 39:36 SssEnabledVtlSet. */
export const HvVsmPartitionStatus = {
  EnabledVtlSetShift: 0n, MaximumVtlShift: 16n, MbecEnabledVtlSetShift: 20n, SssEnabledVtlSetShift: 36n,
} as const;
/** HvRegisterVsmCapabilities bit numbers (§3.7, hvdef order). MbecVtlMask is bits 16:1, HardwareHvptRangeBits 26:21. */
export const HvVsmCapabilitiesBit = {
  Dr6Shared: 0, MbecVtlMaskShift: 1, DenyLowerVtlStartup: 17, SupervisorShadowStack: 18,
  HardwareHvptAvailable: 19, SoftwareHvptAvailable: 20, HardwareHvptRangeBitsShift: 21, InterceptPageAvailable: 27,
  ReturnActionAvailable: 28, Vtl0AliasMapAvailable: 29, InterceptNotPresentAvailable: 30, InstallInterceptEx: 31,
  InterceptSystemResetAvailable: 32, ProxyInterruptRedirectAvailable: 34,
} as const;
/** HvRegisterVsmPartitionConfig bit numbers (§3.7); DefaultVtlProtectionMask is bits 4:1; 63:16 RsvdZ. */
export const HvVsmPartitionConfigBit = {
  EnableVtlProtection: 0, DefaultVtlProtectionMaskShift: 1, ZeroMemoryOnReset: 5, DenyLowerVtlStartup: 6,
  InterceptAcceptance: 7, InterceptEnableVtlProtection: 8, InterceptVpStartup: 9, InterceptCpuidUnimplemented: 10,
  InterceptUnrecoverableException: 11, InterceptPage: 12, InterceptRestorePartitionTime: 13,
  InterceptNotPresent: 14, InterceptSystemReset: 15,
} as const;
/** HvRegisterVsmVpSecureConfigVtlN (§3.7): 0 MbecEnabled, 1 TlbLocked, 2 SupervisorShadowStackEnabled, 3 HardwareHvptEnabled; 63:4 RsvdZ. */
export const HvVsmVpSecureConfig = { MbecEnabled: 1n << 0n, TlbLocked: 1n << 1n, SssEnabled: 1n << 2n, HwHvptEnabled: 1n << 3n } as const;
/** HvRegisterVsmVina (§3.7): 7:0 Vector, 8 Enabled, 9 AutoReset, 10 AutoEoi, 63:11 RsvdP. */
export const HvVsmVina = { VectorMask: 0xffn, Enabled: 1n << 8n, AutoReset: 1n << 9n, AutoEoi: 1n << 10n } as const;
/** HvRegisterVsmVpWaitForTlbLock (§3.7): bit 0 Wait. */
export const HV_VSM_WAIT_FOR_TLB_LOCK = 1n;

// ---------------------------------------------------------------- §3.8 protection mask / HV_MAP_GPA_FLAGS

export const HV_MAP_GPA_READABLE = 0x1;
export const HV_MAP_GPA_WRITABLE = 0x2;
export const HV_MAP_GPA_KERNEL_EXECUTABLE = 0x4;
export const HV_MAP_GPA_USER_EXECUTABLE = 0x8;
/** The four VTL protection bits. */
export const HV_MAP_GPA_PERMISSIONS_ALL = 0xf;
export const HV_MAP_GPA_SUPERVISOR_SHADOW_STACK = 0x10;
export const HV_MAP_GPA_PAGING_WRITABILITY = 0x20;
export const HV_MAP_GPA_VERIFY_PAGING_WRITABILITY = 0x40;
export const HV_MAP_GPA_ADJUSTABLE = 0x8000;

// ---------------------------------------------------------------- §4.4-§4.5 intercept messages

/** InterceptAccessType (§4.4). */
export const HvInterceptAccessType = { Read: 0, Write: 1, Execute: 2 } as const;
/** HV_X64_INTERCEPT_MESSAGE_HEADER offsets in the payload (§4.4), 40 bytes. */
export const HvInterceptHeader = {
  VpIndex: 0x00, InstructionLengthCr8: 0x04, AccessType: 0x05, ExecutionState: 0x06, Cs: 0x08, Rip: 0x18, Rflags: 0x20, Bytes: 0x28,
} as const;
/** ExecutionState bits (§4.4). */
export const HvExecutionState = {
  CplMask: 0x3, Cr0Pe: 1 << 2, Cr0Am: 1 << 3, EferLma: 1 << 4, DebugActive: 1 << 5, InterruptionPending: 1 << 6,
  VtlShift: 7, VtlMask: 0xf, EnclaveMode: 1 << 11, InterruptShadow: 1 << 12, VirtualizationFaultActive: 1 << 13,
} as const;
/** Memory intercept message payload offsets (§4.5); the fact sheet's message ends at 0x50. */
export const HvMemoryIntercept = {
  CacheType: 0x28, InstructionByteCount: 0x2c, MemoryAccessInfo: 0x2d, TprPriority: 0x2e, Reserved: 0x2f,
  Gva: 0x30, Gpa: 0x38, InstructionBytes: 0x40, Bytes: 0x50,
} as const;
/** MemoryAccessInfo bits (§4.5). */
export const HvMemoryAccessInfo = {
  GvaValid: 1 << 0, GvaGpaValid: 1 << 1, HypercallOutputPending: 1 << 2, TlbLocked: 1 << 3, SupervisorShadowStack: 1 << 4,
} as const;
/** RegisterIntercept payload offsets (§4.6), after the 40-byte header: 0x40 bytes. */
export const HvRegisterInterceptMessage = { Flags: 0x28, RegisterName: 0x2c, AccessInfo: 0x30, Bytes: 0x40 } as const;
/** RegisterIntercept Flags: bit 0 IsMemoryOp (§4.6). */
export const HV_REGISTER_INTERCEPT_IS_MEMORY_OP = 1;
/** MsrIntercept payload offsets (§4.6), after the 40-byte header: 0x40 bytes. */
export const HvMsrInterceptMessage = { MsrNumber: 0x28, Rdx: 0x30, Rax: 0x38, Bytes: 0x40 } as const;
/** Instruction bytes an intercept message carries at most (§4.5). */
export const HV_INTERCEPT_MAX_INSTRUCTION_BYTES = 16;

// ---------------------------------------------------------------- §5 TranslateVirtualAddress, cache types

/** HV_TRANSLATE_GVA_CONTROL_FLAGS (§5.1); bits 63:56 are an HV_INPUT_VTL. */
export const HvTranslateGvaFlags = {
  ValidateRead: 0x001, ValidateWrite: 0x002, ValidateExecute: 0x004, PrivilegeExempt: 0x008,
  SetPageTableBits: 0x010, TlbFlushInhibit: 0x020, SupervisorAccess: 0x040, UserAccess: 0x080,
  EnforceSmap: 0x100, OverrideSmap: 0x200, ShadowStack: 0x400, Defined: 0x7ff, InputVtlShift: 56,
} as const;
/** HV_TRANSLATE_GVA_RESULT_CODE (§5.2). */
export const HvTranslateGvaResult = {
  Success: 0, PageNotPresent: 1, PrivilegeViolation: 2, InvalidPageTableFlags: 3, GpaUnmapped: 4,
  GpaNoReadAccess: 5, GpaNoWriteAccess: 6, GpaIllegalOverlayAccess: 7, Intercept: 8, GpaUnaccepted: 9,
} as const;
/** HV_TRANSLATE_GVA_RESULT (§5.2): 31:0 result code, 39:32 cache type, 40 overlay page. */
export const HV_TRANSLATE_GVA_RESULT_CACHE_SHIFT = 32;
export const HV_TRANSLATE_GVA_RESULT_OVERLAY = 1n << 40n;
/** HV_CACHE_TYPE (§5.4), equal to the x86 PAT/MTRR memory type encodings. */
export const HvCacheType = { Uncached: 0, WriteCombining: 1, WriteThrough: 4, WriteProtected: 5, WriteBack: 6 } as const;

// ================================================================ VSM: StartVirtualProcessor, GetVpIndexFromApicId
// Appended for src/vmm/vsm/hc-vp.ts. Section numbers (§) refer to tlfs-vsm-facts.md.
// (StartVirtualProcessor's input is HvEnableVpVtlInput above: same layout, §2.14.)

/**
 * HvCallGetVpIndexFromApicId input header (§2.17): PartitionId u64, TargetVtl
 * u8 (an HV_INPUT_VTL in Linux's declaration), 7 padding bytes; then the rep
 * elements, u32 APIC IDs (hvdef/Linux element size).
 */
export const HvGetVpIndexFromApicIdInput = { PartitionId: 0, TargetVtl: 8, Reserved: 9, HeaderBytes: 16, ElementBytes: 4 } as const;
/** Its output elements: u32 VP indexes (§2.17, hvdef/hv1_hypercall). */
export const HV_GET_VP_INDEX_FROM_APIC_ID_OUTPUT_BYTES = 4;

// ================================================================ VSM: TranslateVirtualAddress(Ex) layouts
// Appended for src/vmm/vsm/hc-translate.ts. Section numbers (§) refer to tlfs-vsm-facts.md (§2.16, §5.1, §5.3).

/** HvCallTranslateVirtualAddress(Ex) input (§2.16), 32 bytes: the reserved u32 at 12 is in the real ABI (hvdef). */
export const HvTranslateVirtualAddressInput = { PartitionId: 0, VpIndex: 8, Reserved: 12, ControlFlags: 16, GvaPage: 24, Bytes: 32 } as const;
/** HvCallTranslateVirtualAddress output (§2.16), 16 bytes. */
export const HvTranslateVirtualAddressOutput = { TranslationResult: 0, GpaPage: 8, Bytes: 16 } as const;
/** HvCallTranslateVirtualAddressEx output, hvdef's x64 layout (§5.3, "prefer hvdef"), 0x40 bytes. */
export const HvTranslateVirtualAddressExOutput = { TranslationResult: 0, Reserved: 0x08, EventInfo: 0x10, GpaPage: 0x30, Reserved2: 0x38, Bytes: 0x40 } as const;
/** HV_TRANSLATE_GVA_CONTROL_FLAGS bits 55:11, reserved (§5.1). */
export const HV_TRANSLATE_GVA_FLAGS_RESERVED = 0x00ff_ffff_ffff_f800n;

// ---------------------------------------------------------------- §7 nested virtualization (issue 7: KVM running on Hyper-V)

/** CPUID 0x4000000A EAX bits (§7.1). */
export const HvNestedFeature = {
  DirectFlush: 1 << 17,
  GuestMappingFlush: 1 << 18,
  MsrBitmap: 1 << 19,
  VirtExceptionPf: 1 << 20,
  DebugCtl: 1 << 21,
  EnlightenedTlb: 1 << 22,
} as const;
/** The enlightened VMCB's u32 EnlightenmentsControl (control area 0x3E0, §7.2). */
export const HvSvmEnlightenment = { NestedFlushVirtualHypercall: 1 << 0, MsrBitmap: 1 << 1, EnlightenedNptTlb: 1 << 2 } as const;
/** HvCallFlushGuestPhysicalAddressSpace/List fixed input header: AddressSpace u64, Flags u64 (§2.7). */
export const HV_GUEST_MAPPING_FLUSH_HEADER_BYTES = 16;
/** Pages one GPA range element covers at most (11-bit additional_pages; kvm-api-facts §6.1, Linux HV_MAX_FLUSH_PAGES). */
export const HV_MAX_FLUSH_PAGES = 2048;
/** Range elements after the 16-byte header in one 4 KiB input page ((4096 - 16) / 8; kvm-api-facts §6.1). */
export const HV_MAX_FLUSH_REP_COUNT = 510;
/** GPA range element (u64) fields (kvm-api-facts §6.1, tlfs §2.3 extended format). */
export const HvGpaRange = {
  AdditionalPagesMask: 0x7ff,
  LargePage: 1 << 11,
  /** With LargePage: 0 = 2 MiB, 1 = 1 GiB pages. */
  LargePageSize1G: 1 << 12,
  /** With LargePage: bits 20:13 are reserved. */
  LargeReservedMask: 0x1fe000,
  PfnShift: 12,
  LargePfnShift: 21,
} as const;
