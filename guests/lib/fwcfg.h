/* QEMU fw_cfg, legacy I/O interface: 16-bit selector at 0x510, 8-bit data at 0x511. */
#ifndef GUEST_FWCFG_H
#define GUEST_FWCFG_H

#include "types.h"

#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_MAX_CPUS 0x0f

/* True when key 0 reads "QEMU". */
bool fwcfg_present(void);
/* Select key and read size (1..8) bytes, little endian. */
u64 fwcfg_read(u16 key, unsigned size);

#endif
