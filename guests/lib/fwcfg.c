/* fw_cfg reads: selecting a key resets the data offset to 0. */
#include "fwcfg.h"
#include "x86.h"

u64 fwcfg_read(u16 key, unsigned size)
{
	u64 v = 0;

	outw(key, FW_CFG_PORT_SEL);
	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (u64)inb(FW_CFG_PORT_DATA) << (8 * i);
	return v;
}

bool fwcfg_present(void)
{
	return fwcfg_read(FW_CFG_SIGNATURE, 4) == 0x554d4551; /* "QEMU" */
}
