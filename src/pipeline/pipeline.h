/* The durable pipeline of DESIGN §2: intake mailbox → normalize → persist (dedup, SQLite group
 * commit, outcome application) → dispatch → forwarders. The daemon creates and stops it;
 * sources call only pipeline_admit() and the read-only state functions, from any thread. */
#ifndef ILAGENT_PIPELINE_PIPELINE_H
#define ILAGENT_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/config.h"
#include "core/intake.h"
#include "core/message.h"
#include "store/db.h"
#include "store/queue.h"

struct pipeline;

/* Takes ownership of the writer and reader connections (both open on the same file).
 * NULL on out of memory. */
struct pipeline *pipeline_create(const struct config *cfg, struct store *writer,
				 struct store *reader);
/* Starts the stage threads and forwarders. 0 or a negative ila_err. */
int pipeline_start(struct pipeline *p);

/* Any thread: hands msg (with its ticket) to the pipeline through the calling thread's intake
 * slot. True: the pipeline owns msg and will complete its ticket. False: the intake ring is
 * full (or no slot is left); the caller still owns msg. Does not check the intake state. */
bool pipeline_admit(struct pipeline *p, struct message *msg);

enum intake_state pipeline_intake_state(const struct pipeline *p);
/* The intake interface sources are started with (valid as long as p). */
struct intake pipeline_intake(struct pipeline *p);
/* Rows in event_items as the pipeline counts them. */
int64_t pipeline_queued(const struct pipeline *p);
/* True while the store is failing (§18: from a failed write until the next successful one);
 * the last database error is copied into err. */
bool pipeline_store_failing(const struct pipeline *p, char *err, size_t err_size);
/* Fill ratios 0-1 of the intake mailbox and the dispatch buffer (metrics). */
double pipeline_intake_fill(const struct pipeline *p);
double pipeline_dispatch_fill(const struct pipeline *p);

/* True once the pipeline hit unrecoverable database corruption; reason copied into msg. The
 * daemon then runs the shutdown and exits 1. */
bool pipeline_fatal(const struct pipeline *p, char *msg, size_t msg_size);
/* The queue gauges (§19) are maintained by persist and re-counted by the daemon: read
 * pipeline_gauge_generation(), then the counts s on another connection, then
 * pipeline_recount() resets the gauges to s unless a commit changed them meanwhile (false:
 * try again later; generation -1 resets them anyway). */
int64_t pipeline_gauge_generation(const struct pipeline *p);
bool pipeline_recount(struct pipeline *p, const struct store_stats *s, int64_t generation);
/* True when nothing is queued, in memory or in flight (drain mode, §20.2). */
bool pipeline_idle(const struct pipeline *p);
/* Any thread: makes pipeline_wait_event return (e.g. a signal arrived). */
void pipeline_wake(struct pipeline *p);
/* Blocks up to timeout_ms until something changed that the daemon may want to look at
 * (fatal error, queue became empty). */
void pipeline_wait_event(struct pipeline *p, int timeout_ms);

/* Shutdown, in this order (§20.3): close intake (new admissions answer "shutting down"),
 * drain normalize and persist (every admitted message committed and acknowledged), then stop
 * the forwarders giving in-flight deliveries grace_ms (pipeline_abandon cuts it short from a
 * signal handler's thread), then close both connections. */
void pipeline_close_intake(struct pipeline *p);
void pipeline_drain(struct pipeline *p);
void pipeline_stop_delivery(struct pipeline *p, int grace_ms);
void pipeline_abandon(struct pipeline *p);
void pipeline_destroy(struct pipeline *p);

#endif
