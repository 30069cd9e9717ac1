/* What flows through the pipeline (DESIGN §2-3): a source's raw message with its ticket,
 * the items normalize makes of it, and the outcome a source learns through the ticket.
 * A message has exactly one owner; pushing it into a mailbox hands it on. A ticket is owned
 * by its source and completed exactly once, by the stage that decides the message's fate. */
#ifndef ILAGENT_CORE_MESSAGE_H
#define ILAGENT_CORE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "store/queue.h"

enum source { SOURCE_HTTP = 0, SOURCE_MQTT, SOURCE_KAFKA, SOURCE_LEGACY, SOURCE_COUNT };

/* "http", "mqtt", "kafka", "legacy". */
const char *source_name(enum source source);
/* The source of a stored `source` column (NULL → legacy). */
enum source source_parse(const char *text);

enum message_kind {
	MSG_HTTP_EVENT, /* POST /api/events: one event object */
	MSG_HTTP_BATCH, /* POST /api/events/batch: an array of event objects */
	MSG_CONSUMER,   /* MQTT/Kafka payload, classified by topic */
};

enum ticket_status {
	TICKET_ACCEPTED,      /* committed or deduplicated: acknowledge */
	TICKET_REJECTED,      /* invalid / filtered / unmatched: acknowledge, never retry */
	TICKET_STORE_ERROR,   /* the commit failed: HTTP 500 */
	TICKET_QUEUE_FULL,    /* intake paused: HTTP 503 + Retry-After: 5 */
	TICKET_SHUTTING_DOWN, /* not admitted because shutdown began: HTTP 503 */
};

/* Why a consumer message was rejected (the `reason`/counter it lands in). */
enum reject_reason {
	REJECT_NONE = 0,
	REJECT_INVALID,
	REJECT_TOO_LARGE,
	REJECT_UNMATCHED_TOPIC,
	REJECT_FILTERED,
};

/* Embedded in a source's per-message context; complete() recovers the context (container
 * of) and acknowledges the source. Fields are written by the completing stage right before
 * it calls complete(); after that call the stage never touches the ticket again. */
struct ticket {
	void (*complete)(struct ticket *t);
	enum ticket_status status;
	enum reject_reason reject_reason;
	char *error;      /* heap: the HTTP error text of §10.5 ("Missing field 'summary'.") */
	int error_index;  /* batch: index of the first invalid element, -1 otherwise */
	char *echo;       /* heap: §7.4 echo of an accepted single HTTP event */
	size_t accepted;  /* batch: number of elements acknowledged (duplicates included) */
	size_t duplicates;
};

/* One normalized item waiting for its commit. Strings are heap-owned. */
struct pending_item {
	enum store_kind kind;
	struct event ev;      /* event fields (kind event); heartbeat: ev.integration_key */
	char *event_api_path; /* NULL for HTTP */
	char *payload;        /* heartbeat / policy JSON */
	char *order_key;      /* §2, NULL when none */
	char *dedup_content;  /* compact JSON of the compared content (§9); NULL: never a dup */
	int64_t accepted_at;  /* 0 = the commit time; set for converted legacy rows */
};

struct message {
	enum source source;
	enum message_kind kind;
	char *body; /* raw payload (heap), NUL-terminated for convenience */
	size_t body_len;
	char *topic; /* consumers: the topic (without a $share prefix) */
	char *key;   /* Kafka message key, NULL when none */
	int64_t admitted_ns; /* clock_mono_ns() when admitted to the pipeline */
	struct ticket *ticket; /* may be NULL (nothing to acknowledge) */
	bool retry_on_store_error; /* consumers: keep retrying a failed commit; HTTP: give up */
	/* Filled by normalize. */
	struct pending_item *items;
	size_t item_count;
};

/* A message owning a copy of body. NULL on out of memory. */
struct message *message_create(enum source source, enum message_kind kind, const char *body,
			       size_t body_len);
/* Frees the message, its items and strings (not the ticket). Accepts NULL. */
void message_destroy(struct message *msg);
/* Frees the strings of an item (not the item memory itself). */
void pending_item_clear(struct pending_item *item);

/* The row to insert for a pending item (strings borrowed from it). */
struct store_new_item pending_item_row(const struct pending_item *item, enum source source,
				       int64_t accepted_at);

/* Completes a ticket (if any) with status; error (copied) may be NULL. */
void ticket_finish(struct ticket *t, enum ticket_status status, const char *error);

#endif
