/* Operations on the queue tables (SPEC §16.6, §14.4, §14.8, §17): transactions, inserting
 * items with seq allocation, delete, reschedule, dead-lettering, listing, re-queueing.
 * Same threading rule as the connection (db.h): one thread at a time per struct store. */
#ifndef ILAGENT_STORE_QUEUE_H
#define ILAGENT_STORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"
#include "store/db.h"

/* Bytes of the last response body kept with a dead letter (§14.8). */
#define STORE_BODY_EXCERPT_MAX 1024

enum store_kind {
	STORE_KIND_EVENT = 0,
	STORE_KIND_HEARTBEAT,
	STORE_KIND_POLICY,
	STORE_KIND_UNKNOWN, /* read back only: a kind text this program does not know */
};

/* "event", "heartbeat", "policy" ("unknown" for STORE_KIND_UNKNOWN). */
const char *store_kind_name(enum store_kind kind);
/* The kind for a stored text; STORE_KIND_UNKNOWN when it is none of the three. */
enum store_kind store_kind_parse(const char *text);

/* ---- transactions ------------------------------------------------------------------
 * Every operation below runs inside the transaction opened by store_begin() when there is
 * one (so the commit stage can apply a whole batch atomically), otherwise in a
 * transaction of its own. */

/* BEGIN IMMEDIATE: the write lock is taken at once (waits up to the busy timeout). */
int store_begin(struct store *st);
/* Writes the seq high-water mark back when items were inserted, then COMMIT. On failure the
 * transaction is rolled back (nothing of it is stored) and the error is returned. */
int store_commit(struct store *st);
/* Rolls back the open transaction, if any. Safe after a failed statement. */
void store_rollback(struct store *st);
/* True while a transaction opened by store_begin() is open. */
bool store_in_transaction(const struct store *st);

/* ---- queued items (event_items) ---------------------------------------------------- */

/* A new item to commit (§16.6). Strings are borrowed; NULL stores SQL NULL. */
struct store_new_item {
	enum store_kind kind;
	const char *integration_key; /* NOT NULL column: NULL is stored as '' */
	const char *event_type;      /* NOT NULL column: NULL is stored as '' */
	const char *alert_key;
	const char *summary; /* NOT NULL column: NULL is stored as '' */
	const char *details;
	const char *priority;
	const char *images;         /* compact JSON text */
	const char *links;          /* compact JSON text */
	const char *custom_details; /* compact JSON text */
	const char *event_api_path;
	const char *payload;
	const char *source;
	const char *order_key;
	int64_t accepted_at; /* Unix ms */
};

/* Inserts one item with a fresh UUID v4 id and the next seq of the transaction. id_out and
 * seq_out may be NULL. */
int store_item_insert(struct store *st, const struct store_new_item *item,
		      char id_out[UUID_STR_LEN], int64_t *seq_out);
/* Deletes by id; a missing id is not an error. */
int store_item_delete(struct store *st, const char *id);

/* Retry bookkeeping after a failed attempt (§14.4). last_status 0 stores NULL (transport
 * error); last_error may be NULL. ILA_ERR_NOTFOUND when the row is gone. */
struct store_retry {
	int64_t attempts;
	int64_t next_attempt_at; /* Unix ms, 0 = due */
	int last_status;
	const char *last_error;
};
int store_item_reschedule(struct store *st, const char *id, const struct store_retry *retry);

/* A queued row as read back. Strings are heap copies owned by the struct (NULL for SQL
 * NULL); free them with store_item_clear(). */
struct store_item {
	char *id;
	int64_t seq;
	enum store_kind kind;
	char *integration_key;
	char *event_type;
	char *alert_key;
	char *summary;
	char *created_at;
	char *priority;
	char *images;
	char *links;
	char *custom_details;
	char *details;
	char *event_api_path;
	char *payload;
	char *source; /* NULL for rows of older versions ("legacy") */
	char *order_key;
	int64_t accepted_at;
	int64_t attempts;
	int64_t next_attempt_at;
	int last_status; /* 0 = NULL */
	char *last_error;
};

struct store_item_list {
	struct store_item *items;
	size_t count;
};

void store_item_clear(struct store_item *item);
/* Frees the rows and the array; the list is empty afterwards. Accepts an empty list. */
void store_item_list_free(struct store_item_list *list);

/* Rows with seq > after_seq in seq order, at most limit (0 = no limit). */
int store_items_page(struct store *st, int64_t after_seq, size_t limit,
		     struct store_item_list *out);
/* Rows due at now_ms (next_attempt_at <= now_ms) with seq > after_seq, in seq order, at
 * most limit (0 = no limit). */
int store_items_due(struct store *st, int64_t now_ms, int64_t after_seq, size_t limit,
		    struct store_item_list *out);
/* Rows waiting for a retry whose time has come (0 < next_attempt_at <= now_ms), in seq
 * order, at most limit (0 = no limit); read through index event_items_due, so rows that
 * were never tried (next_attempt_at 0) cost nothing here. */
int store_items_retry_due(struct store *st, int64_t now_ms, size_t limit,
			  struct store_item_list *out);
/* The lowest-seq row of an ordering key (index event_items_order). ILA_ERR_NOTFOUND when
 * the key has no row. */
int store_item_head(struct store *st, const char *order_key, struct store_item *out);
/* Only the seq of that row (read from the index alone). ILA_ERR_NOTFOUND when none. */
int store_item_head_seq(struct store *st, const char *order_key, int64_t *seq);
/* One row by id; ILA_ERR_NOTFOUND when absent. */
int store_item_get(struct store *st, const char *id, struct store_item *out);
/* Rows in event_items. */
int store_items_count(struct store *st, int64_t *count);

/* Counters of `ilagent queue stats` (§17.1), read in one consistent snapshot. */
struct store_stats {
	int64_t queued;
	int64_t queued_event;
	int64_t queued_heartbeat;
	int64_t queued_policy;
	int64_t retrying;
	bool has_oldest;
	int64_t oldest_accepted_at; /* min(accepted_at), valid when has_oldest */
	int64_t dead;
	int64_t legacy_mqtt_queue;
};
int store_stats_read(struct store *st, struct store_stats *out);

/* ---- dead letters (dead_letters) ---------------------------------------------------- */

enum store_dead_reason { STORE_DEAD_PERMANENT = 0, STORE_DEAD_EXHAUSTED };

/* "permanent" / "exhausted". */
const char *store_dead_reason_name(enum store_dead_reason reason);

/* What is known about the last attempt of an item that goes to dead letters (§14.8). */
struct store_dead_info {
	enum store_dead_reason reason;
	int64_t attempts;
	int last_status;        /* 0 = NULL (transport error or no request) */
	const char *last_error; /* may be NULL */
	const char *body;       /* last response body (any bytes) or NULL */
	size_t body_len;
	int64_t dead_at; /* Unix ms */
};

/* Moves the item from event_items to dead_letters; the body excerpt keeps at most
 * STORE_BODY_EXCERPT_MAX bytes with invalid UTF-8 replaced by U+FFFD. When max_dead > 0 and
 * the table then holds more rows, the oldest (lowest id) are deleted and their number is
 * stored in *evicted (may be NULL). ILA_ERR_NOTFOUND when the item is not queued. */
int store_dead_move(struct store *st, const char *item_id, const struct store_dead_info *info,
		    int64_t max_dead, int64_t *evicted);

/* A dead letter as read back; strings owned, free with store_dead_clear(). */
struct store_dead {
	int64_t id;
	char *item_id;
	enum store_kind kind;
	char *source;
	char *integration_key;
	char *event_type;
	char *alert_key;
	char *summary;
	char *details;
	char *priority;
	char *images;
	char *links;
	char *custom_details;
	char *event_api_path;
	char *payload;
	char *order_key;
	char *created_at;
	int64_t accepted_at;
	int64_t attempts;
	char *reason;
	int last_status; /* 0 = NULL */
	char *last_error;
	char *body_excerpt;
	int64_t dead_at;
};

struct store_dead_list {
	struct store_dead *rows;
	size_t count;
};

void store_dead_clear(struct store_dead *row);
void store_dead_list_free(struct store_dead_list *list);

/* Dead letters newest first (descending id) with id < before_id (0 = from the newest), at
 * most limit (0 = no limit). */
int store_dead_page(struct store *st, int64_t before_id, size_t limit,
		    struct store_dead_list *out);
/* Re-queues one dead letter (§16.6): its item_id as id unless that id is queued (then a
 * fresh UUID), a new seq, attempts 0, due at once, heartbeats accepted at now_ms; the dead
 * letter is deleted in the same transaction. ILA_ERR_NOTFOUND for an unknown dead_id.
 * new_id may be NULL. */
int store_dead_requeue(struct store *st, int64_t dead_id, int64_t now_ms,
		       char new_id[UUID_STR_LEN]);
/* Re-queues every dead letter, oldest first, in one transaction; *count gets the number. */
int store_dead_requeue_all(struct store *st, int64_t now_ms, int64_t *count);
/* Deletes every dead letter; *count gets the number. */
int store_dead_purge(struct store *st, int64_t *count);

#endif
