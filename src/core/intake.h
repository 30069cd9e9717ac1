/* The one interface every source uses to hand messages to the pipeline (DESIGN §4: a source
 * is small: start(config, intake), stop(), readiness). The daemon passes the pipeline's
 * intake; tests pass their own. Both functions may be called from any thread. */
#ifndef ILAGENT_CORE_INTAKE_H
#define ILAGENT_CORE_INTAKE_H

#include <stdbool.h>

#include "core/message.h"

enum intake_state {
	INTAKE_OPEN,   /* admitting */
	INTAKE_PAUSED, /* the queue holds --max_queue rows or more (§15): sources hold back */
	INTAKE_CLOSED, /* shutdown began: nothing new is admitted */
};

struct intake {
	void *ctx;
	/* True: the pipeline owns msg and will complete msg->ticket exactly once, from another
	 * thread — or from this one before admit returns, when shutdown began meanwhile
	 * (TICKET_SHUTTING_DOWN). False: the intake ring is full; the caller still owns msg
	 * and may retry. */
	bool (*admit)(void *ctx, struct message *msg);
	enum intake_state (*state)(void *ctx);
};

static inline bool intake_admit(const struct intake *in, struct message *msg)
{
	return in->admit(in->ctx, msg);
}

static inline enum intake_state intake_state(const struct intake *in)
{
	return in->state(in->ctx);
}

#endif
