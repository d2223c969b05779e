/* Internal: catch frames shared by expect_exception() and run_user(). */
#ifndef GUEST_CATCH_H
#define GUEST_CATCH_H

#include "exceptions.h"

/* Values ctx_save() appears to return when a catch frame is resumed. */
#define RESUME_USER_RETURN 1
#define RESUME_EXCEPTION 2

/* Lives on the stack of expect_exception()/run_user(); linked from percpu.catch_top. */
struct catch_frame {
	struct jmp_ctx ctx;
	struct catch_frame *prev;
	bool user;      /* a run_user() frame: also accepts the user-exit gate */
	u64 retval;     /* the user function's return value */
	struct ex_info info;
};

#endif
