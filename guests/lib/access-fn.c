/* The register images of the access functions (access-fn.h). */
#include "access-fn.h"

u64 fc_in[16], fc_out[16], fc_rflags;
