/* The periodic heartbeat pinger of `daemon -b KEY` (SPEC §21): pings at start and every 30 s
 * (start to start) with the daemon's Authorization; failures are logged and counted, never
 * retried or queued. Owns one thread and one ilert client; start/stop from the main thread. */
#ifndef ILAGENT_ILERT_PINGER_H
#define ILAGENT_ILERT_PINGER_H

#include "cli/config.h"

struct pinger;

/* NULL on failure to create the thread or client. */
struct pinger *pinger_start(const struct config *cfg);
/* Stops promptly (an in-progress ping is aborted) and frees. Accepts NULL. */
void pinger_stop(struct pinger *pg);

#endif
