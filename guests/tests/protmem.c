/*
 * Protected guest memory from the guest side (kvm-api-facts.md §4), with a
 * DMA test device at ports 0x3100-0x310f that only vsmvisor's protmem test
 * adds (test/guests/protmem.test.ts): the guest gives it an address, asks
 * it to write a 16-byte pattern there or to read a dword from there, and
 * reads back a status: 0 done, 1 refused because the page is private to the
 * guest, 2 refused for another reason.
 *
 * mode=rfc (default; run with --protected-memory rfc), the protmem RFC (§4.1):
 *  - CPUID 0x40000001 EAX bit 15 (MEM_PROTECTED), not bit 16;
 *  - ENABLE (12) from CPL 3 is -1; from CPL 0 it is 0 (and again 0);
 *  - before ENABLE the device reaches guest memory, after it not;
 *  - the guest's own accesses (LOCK XADD, string copies, page walks) still work;
 *  - SHARE (13) a buffer: the device writes into it and the guest sees it,
 *    and reads what the guest wrote; UNSHARE (14): the device is refused
 *    again, the guest keeps its data;
 *  - 0 pages => 0, a GFN in no memslot => 0, past the end of the memslot
 *    => -22, an unknown number => -1000.
 * mode=upstream (run with --protected-memory upstream, §4.2): bit 16, not 15;
 * 13 and 14 are -1000; MAP_GPA_RANGE (12) misaligned or with 0 pages => -22;
 * converting a buffer to private makes the device fail, back to shared
 * makes it work.
 */
#include "libguest.h"
#include "kvm-hypercall.h"

#define DEV_ADDR 0x3100
#define DEV_CMD 0x3104
#define DEV_STATUS 0x3108
#define DEV_DATA 0x310c
#define CMD_WRITE_PATTERN 1
#define CMD_READ_DWORD 2
#define ST_DONE 0
#define ST_PRIVATE 1
#define PAGE 4096

static bool have_device;

static unsigned dev(u32 cmd, const void *p)
{
	outl((u32)(u64)p, DEV_ADDR);
	outl(cmd, DEV_CMD);
	return inl(DEV_STATUS);
}

static bool has_pattern(const volatile u8 *p)
{
	for (int k = 0; k < 16; k++)
		if (p[k] != (u8)(0xd0 + k))
			return false;
	return true;
}

static bool all_bytes(const volatile u8 *p, u8 v, int n)
{
	for (int k = 0; k < n; k++)
		if (p[k] != v)
			return false;
	return true;
}

static u64 gfn(const void *p) { return (u64)p / PAGE; }

/* Device checks only run with the device present (an unclaimed port reads all-ones). */
static void report_dev(bool cond, const char *what)
{
	if (have_device)
		report(cond, "%s", what);
	else
		report_skip("%s: no DMA test device at port 0x3100", what);
}

static u64 user_enable(void *arg)
{
	(void)arg;
	return kvm_hypercall0(KVM_HC_ENABLE_MEM_PROTECTED);
}

static void test_rfc(u32 features)
{
	u8 *buf = alloc_page();
	u8 *priv = alloc_page();
	u64 ret = 0;
	struct ex_info info;

	report((features & BIT(KVM_FEATURE_MEM_PROTECTED)) && !(features & BIT(KVM_FEATURE_HC_MAP_GPA_RANGE)),
	       "CPUID features 0x%x: MEM_PROTECTED (bit 15) without HC_MAP_GPA_RANGE (bit 16)", features);

	bool ex = run_user(user_enable, NULL, &ret, &info);
	report(!ex && (long)ret == -KVM_EPERM, "ENABLE from CPL 3 returns -1 (-KVM_EPERM): %ld", (long)ret);

	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_DONE && has_pattern(buf), "before ENABLE the device writes guest memory");
	memset(buf, 0, 16);

	report(kvm_hypercall0(KVM_HC_ENABLE_MEM_PROTECTED) == 0, "ENABLE returns 0");
	report(kvm_hypercall0(KVM_HC_ENABLE_MEM_PROTECTED) == 0, "ENABLE again returns 0");
	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_PRIVATE && all_bytes(buf, 0, 16),
		   "after ENABLE the device is refused on a private page and writes nothing");
	report_dev(dev(CMD_READ_DWORD, buf) == ST_PRIVATE, "after ENABLE the device cannot read a private page");

	/* The guest's own accesses to private memory (everything is private now). */
	volatile u64 *counter = (volatile u64 *)priv;
	*counter = 41;
	u64 old = atomic_fetch_add(counter, 1);
	report(old == 41 && *counter == 42, "the guest's own LOCK XADD on a private page works");
	memcpy(priv + 64, "private data", 13);
	report(memcmp(priv + 64, "private data", 13) == 0, "the guest's own string copy into a private page works");

	report(kvm_hypercall2(KVM_HC_MEM_SHARE, gfn(buf), 1) == 0, "SHARE of the buffer returns 0");
	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_DONE && has_pattern(buf),
		   "after SHARE the device writes into the buffer and the guest sees it");
	*(volatile u32 *)(buf + 32) = 0x600dcafe;
	report_dev(dev(CMD_READ_DWORD, buf + 32) == ST_DONE && inl(DEV_DATA) == 0x600dcafe,
		   "after SHARE the device reads what the guest wrote");
	report_dev(dev(CMD_WRITE_PATTERN, priv) == ST_PRIVATE && *counter == 42, "a page that was not shared stays private");

	report(kvm_hypercall2(KVM_HC_MEM_UNSHARE, gfn(buf), 1) == 0, "UNSHARE of the buffer returns 0");
	report_dev(has_pattern(buf), "after UNSHARE the guest still sees its buffer's content (the device wrote it)");
	memset(buf, 0x11, 16);
	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_PRIVATE && all_bytes(buf, 0x11, 16),
		   "after UNSHARE the device is refused again (error status) and writes nothing");
	report_dev(dev(CMD_READ_DWORD, buf) == ST_PRIVATE, "after UNSHARE the device cannot read the buffer");

	report(kvm_hypercall2(KVM_HC_MEM_SHARE, gfn(buf), 0) == 0, "SHARE of 0 pages returns 0");
	report(kvm_hypercall2(KVM_HC_MEM_SHARE, 1UL << 36, 4) == 0, "SHARE of a GFN in no memslot returns 0");
	long r = kvm_hypercall2(KVM_HC_MEM_SHARE, gfn(buf), 1UL << 40);
	report(r == -KVM_EINVAL, "SHARE running past the end of the memslot returns -22: %ld", r);
	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_PRIVATE, "none of these shared the buffer");
	r = kvm_hypercall0(0x20);
	report(r == -KVM_ENOSYS, "an unknown hypercall returns -1000 (-KVM_ENOSYS): %ld", r);
}

static void test_upstream(u32 features)
{
	u8 *buf = alloc_page();
	long r;

	report((features & BIT(KVM_FEATURE_HC_MAP_GPA_RANGE)) && !(features & BIT(KVM_FEATURE_MEM_PROTECTED)),
	       "CPUID features 0x%x: HC_MAP_GPA_RANGE (bit 16) without MEM_PROTECTED (bit 15)", features);
	r = kvm_hypercall2(KVM_HC_MEM_SHARE, gfn(buf), 1);
	report(r == -KVM_ENOSYS, "hypercall 13 (the RFC's SHARE) is unknown upstream: %ld", r);
	r = kvm_hypercall2(KVM_HC_MEM_UNSHARE, gfn(buf), 1);
	report(r == -KVM_ENOSYS, "hypercall 14 (the RFC's UNSHARE) is unknown upstream: %ld", r);
	r = kvm_hypercall3(KVM_HC_MAP_GPA_RANGE, (u64)buf + 8, 1, KVM_MAP_GPA_RANGE_ENCRYPTED);
	report(r == -KVM_EINVAL, "MAP_GPA_RANGE of a misaligned GPA returns -22: %ld", r);
	r = kvm_hypercall3(KVM_HC_MAP_GPA_RANGE, (u64)buf, 0, KVM_MAP_GPA_RANGE_ENCRYPTED);
	report(r == -KVM_EINVAL, "MAP_GPA_RANGE of 0 pages returns -22: %ld", r);

	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_DONE && has_pattern(buf), "memory starts shared: the device writes it");
	r = kvm_hypercall3(KVM_HC_MAP_GPA_RANGE, (u64)buf, 1, KVM_MAP_GPA_RANGE_ENCRYPTED);
	report(r == 0, "MAP_GPA_RANGE to private returns 0: %ld", r);
	/* The guest must not touch buf now: private memory has no backing it could use here. */
	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_PRIVATE, "the device is refused on the private page");
	r = kvm_hypercall3(KVM_HC_MAP_GPA_RANGE, (u64)buf, 1, KVM_MAP_GPA_RANGE_DECRYPTED);
	report(r == 0, "MAP_GPA_RANGE back to shared returns 0: %ld", r);
	memset(buf, 0, 16);
	report_dev(dev(CMD_WRITE_PATTERN, buf) == ST_DONE && has_pattern(buf), "shared again: the device writes it and the guest sees it");
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	u32 base = kvm_cpuid_base();
	if (base == 0) {
		report_skip("no KVM paravirtual interface (CPUID signature KVMKVMKVM); run with --protected-memory");
		report_summary();
	}
	report_info("KVM CPUID leaves at 0x%x", base);
	have_device = inl(DEV_STATUS) != 0xffffffff;
	const char *mode = arg_value("mode");
	if (mode && strcmp(mode, "upstream") == 0)
		test_upstream(cpuid(base + 1).a);
	else
		test_rfc(cpuid(base + 1).a);
	report_summary();
}
