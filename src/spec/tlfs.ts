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
