/* Internal contract between the pipeline's stage files (pipeline.c, persist.c, dispatch.c,
 * forwarders in dispatch.c): the shared struct pipeline and the messages exchanged between
 * stages. Not for use outside src/pipeline/. Each field says which thread owns it. */
#ifndef ILAGENT_PIPELINE_STAGES_H
#define ILAGENT_PIPELINE_STAGES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cli/config.h"
#include "core/mailbox.h"
#include "core/workq.h"
#include "pipeline/dedup.h"
#include "pipeline/forward.h"
#include "pipeline/normalize.h"
#include "pipeline/pipeline.h"
#include "store/db.h"
#include "store/queue.h"

/* Ring sizes (SPEC §23: intake ring 4096). */
#define INTAKE_RING_SIZE 4096
#define INTAKE_MAX_PRODUCERS 64
#define PERSIST_RING_SIZE 4096
#define COMMIT_MAX_ITEMS 1000
#define DISPATCH_PAGE 256
/* Rows handed out but not yet reported back, per forwarder: enough to keep every forwarder
 * busy while outcomes travel through a group commit. Handed-out rows wait in one shared
 * queue that idle forwarders take from, so a slow request never holds up the others. */
#define FORWARDER_DEPTH 32

/* A delivered (or failed) item travelling forwarder → persist → dispatcher. */
struct outcome {
	struct store_item *item;
	struct forward_result res;
	int forwarder;
	int64_t started_ms;
};

/* Pointers in the persist and dispatch mailboxes carry their type in the low bit (all are
 * malloc'd, hence at least 2-byte aligned). */
#define TAG_OUTCOME ((uintptr_t)1)
static inline void *tag_outcome(struct outcome *o)
{
	return (void *)((uintptr_t)o | TAG_OUTCOME);
}
static inline bool is_outcome(void *p)
{
	return ((uintptr_t)p & TAG_OUTCOME) != 0;
}
static inline struct outcome *untag_outcome(void *p)
{
	return (struct outcome *)((uintptr_t)p & ~TAG_OUTCOME);
}

/* What forwarders check right before starting an item (host brake, 429 cool-down), shared by
 * the dispatcher and every forwarder (dispatch.c). */
struct delivery_gate;
struct delivery_gate *delivery_gate_create(void);
void delivery_gate_destroy(struct delivery_gate *g); /* accepts NULL */

struct forwarder {
	struct pipeline *p;
	int index;
	pthread_t thread;
	struct mailbox_slot *out_slot; /* this forwarder's slot into the persist mailbox */
	struct ilert_client *client;
};

struct pipeline {
	const struct config *cfg;
	struct store *writer; /* persist thread */
	struct store *reader; /* dispatch thread */
	struct normalize_rules *rules_http, *rules_mqtt, *rules_kafka;
	struct forward_settings fwd_settings;

	struct mailbox *to_persist; /* sources (normalized on their thread), forwarders → persist */
	struct mailbox *to_dispatch; /* persist → dispatch */
	struct mailbox_slot *fresh_slot;   /* committed items (may be dropped: DB has them) */
	struct mailbox_slot *applied_slot; /* applied outcomes (never dropped) */
	atomic_int handoff_suspended; /* persist stops handing off fresh items until rescanned */

	struct workq *work; /* dispatcher → forwarders */
	atomic_int forwarders_stop; /* forwarders take nothing new */
	struct forwarder *forwarders;
	int forwarder_count;
	struct delivery_gate *gate; /* forwarders and dispatcher */

	pthread_t persist_thread, dispatch_thread;
	bool started;

	/* Shutdown flags, set by the daemon thread, read by the stages. */
	atomic_int closed;          /* intake closed */
	atomic_int admitters;       /* sources inside pipeline_admit */
	atomic_int normalize_done;  /* intake closed and no source is inside pipeline_admit */
	atomic_int dispatch_stop;   /* dispatcher hands out nothing new */
	atomic_int forwarders_done; /* every forwarder exited */
	atomic_int persist_done;
	atomic_int abandon;         /* give up in-flight deliveries */
	atomic_int messages_in_persist; /* handed to persist, ticket not yet completed */

	/* State published by persist. */
	atomic_llong queued;
	atomic_int paused;
	atomic_int store_failing;
	atomic_int fatal;
	pthread_mutex_t state_lock; /* guards the texts below */
	char store_error[400];
	char fatal_msg[400];

	/* Queue gauges (§19) kept in memory by persist between the daemon's recounts. */
	atomic_llong gauge_rows[METRIC_KIND_COUNT];
	atomic_llong gauge_retrying;
	atomic_llong gauge_dead;
	atomic_llong gauge_gen; /* bumped by every commit that changed them */

	/* State published by dispatch. */
	atomic_int in_memory; /* items buffered or in flight */
	atomic_int buffered;
	int dispatch_capacity;

	int event_fd; /* wakes pipeline_wait_event */
};

/* Wakes whoever waits in pipeline_wait_event. Any thread. */
void pipeline_notify(struct pipeline *p);
/* The database is corrupted (§16.1): records "database corrupted: <reason>" (the first reason
 * wins) and wakes the daemon, which then shuts down and exits 1. Any thread. */
void stage_set_fatal(struct pipeline *p, const char *reason);
/* Publishes the gauges above as metrics. Any thread. */
void stage_publish_gauges(struct pipeline *p);

void *persist_main(void *arg);
void *dispatch_main(void *arg);
void *forwarder_main(void *arg);
/* After every forwarder exited: rows handed out but never started go back to persist as
 * unchanged outcomes (their rows stay queued as they were). */
void stage_return_unstarted(struct pipeline *p);

/* A store_item built from a committed pending item (strings moved out of it). */
struct store_item *stage_item_from_pending(struct pending_item *pi, enum source source,
					   const char *id, int64_t seq, int64_t accepted_at);
void stage_item_free(struct store_item *item);
void stage_outcome_free(struct outcome *o);
/* Persist is done with a message: frees it and updates messages_in_persist. */
void stage_message_done(struct pipeline *p, struct message *msg);

#endif
