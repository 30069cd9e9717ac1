/* Dead letters (SPEC §14.8, §16.6 "Re-queue", §17): the part of store/queue.h that works on
 * the dead_letters table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/text.h"
#include "store/queue.h"
#include "store/store_priv.h"

#define DEAD_COLUMNS                                                                         \
	"id, item_id, kind, source, integration_key, event_type, alert_key, summary, details, " \
	"priority, images, links, custom_details, event_api_path, payload, order_key, "         \
	"created_at, accepted_at, attempts, reason, last_status, last_error, body_excerpt, "    \
	"dead_at"

/* Dead letters re-queued per round of store_dead_requeue_all (ids held in memory). */
#define REQUEUE_ROUND 256

const char *store_dead_reason_name(enum store_dead_reason reason)
{
	return reason == STORE_DEAD_EXHAUSTED ? "exhausted" : "permanent";
}

/* ---- moving an item in --------------------------------------------------------------- */

static int dead_insert(struct store *st, const char *item_id, const struct store_dead_info *info,
		       const char *excerpt)
{
	sqlite3_stmt *s = store_stmt(
		st, SQL_DEAD_INSERT,
		"INSERT INTO dead_letters (item_id, kind, source, integration_key, event_type, "
		"alert_key, summary, details, priority, images, links, custom_details, "
		"event_api_path, payload, order_key, created_at, accepted_at, attempts, reason, "
		"last_status, last_error, body_excerpt, dead_at) SELECT id, kind, source, "
		"integration_key, event_type, alert_key, summary, details, priority, images, links, "
		"custom_details, event_api_path, payload, order_key, created_at, "
		"coalesce(accepted_at, ?7), ?2, ?3, ?4, ?5, ?6, ?7 FROM event_items WHERE id = ?1");
	if (!s)
		return store_last_err(st);
	store_bind_text(s, 1, item_id);
	sqlite3_bind_int64(s, 2, info->attempts);
	store_bind_text(s, 3, store_dead_reason_name(info->reason));
	if (info->last_status)
		sqlite3_bind_int(s, 4, info->last_status);
	else
		sqlite3_bind_null(s, 4);
	store_bind_text(s, 5, info->last_error);
	store_bind_text(s, 6, excerpt);
	sqlite3_bind_int64(s, 7, info->dead_at);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	if (sqlite3_changes(st->db) == 0)
		return store_fail_msg(st, ILA_ERR_NOTFOUND, "no queued item with this id");
	return 0;
}

static int dead_evict(struct store *st, int64_t max_dead, int64_t *evicted)
{
	*evicted = 0;
	if (max_dead <= 0)
		return 0;
	sqlite3_stmt *s = store_stmt(st, SQL_DEAD_COUNT, "SELECT count(*) FROM dead_letters");
	if (!s)
		return store_last_err(st);
	int rc = sqlite3_step(s);
	int64_t count = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return store_fail(st, rc);
	if (count <= max_dead)
		return 0;
	s = store_stmt(st, SQL_DEAD_EVICT,
		       "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY "
		       "id LIMIT ?1)");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, count - max_dead);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	*evicted = sqlite3_changes(st->db);
	return 0;
}

static int dead_move_locked(struct store *st, const char *item_id,
			    const struct store_dead_info *info, const char *excerpt,
			    int64_t max_dead, int64_t *evicted)
{
	int err = dead_insert(st, item_id, info, excerpt);
	if (err)
		return err;
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_DELETE, "DELETE FROM event_items WHERE id = ?1");
	if (!s)
		return store_last_err(st);
	store_bind_text(s, 1, item_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	return dead_evict(st, max_dead, evicted);
}

int store_dead_move(struct store *st, const char *item_id, const struct store_dead_info *info,
		    int64_t max_dead, int64_t *evicted)
{
	int64_t dropped = 0;
	char *excerpt = NULL;
	if (info->body) {
		excerpt = text_utf8_sanitize(info->body, info->body_len, STORE_BODY_EXCERPT_MAX);
		if (!excerpt)
			return store_fail_msg(st, ILA_ERR_NOMEM, "out of memory");
	}
	bool own;
	int err = store_txn_enter(st, &own);
	if (!err) {
		err = dead_move_locked(st, item_id, info, excerpt, max_dead, &dropped);
		err = store_txn_leave(st, own, err);
	}
	free(excerpt);
	if (evicted)
		*evicted = err ? 0 : dropped;
	return err;
}

/* ---- reading ------------------------------------------------------------------------ */

void store_dead_clear(struct store_dead *row)
{
	if (!row)
		return;
	free(row->item_id);
	free(row->source);
	free(row->integration_key);
	free(row->event_type);
	free(row->alert_key);
	free(row->summary);
	free(row->details);
	free(row->priority);
	free(row->images);
	free(row->links);
	free(row->custom_details);
	free(row->event_api_path);
	free(row->payload);
	free(row->order_key);
	free(row->created_at);
	free(row->reason);
	free(row->last_error);
	free(row->body_excerpt);
	memset(row, 0, sizeof(*row));
}

void store_dead_list_free(struct store_dead_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->count; i++)
		store_dead_clear(&list->rows[i]);
	free(list->rows);
	list->rows = NULL;
	list->count = 0;
}

static int dead_read(sqlite3_stmt *s, struct store_dead *d)
{
	bool oom = false;
	memset(d, 0, sizeof(*d));
	d->id = sqlite3_column_int64(s, 0);
	d->item_id = store_column_dup(s, 1, &oom);
	d->kind = store_kind_parse((const char *)sqlite3_column_text(s, 2));
	d->source = store_column_dup(s, 3, &oom);
	d->integration_key = store_column_dup(s, 4, &oom);
	d->event_type = store_column_dup(s, 5, &oom);
	d->alert_key = store_column_dup(s, 6, &oom);
	d->summary = store_column_dup(s, 7, &oom);
	d->details = store_column_dup(s, 8, &oom);
	d->priority = store_column_dup(s, 9, &oom);
	d->images = store_column_dup(s, 10, &oom);
	d->links = store_column_dup(s, 11, &oom);
	d->custom_details = store_column_dup(s, 12, &oom);
	d->event_api_path = store_column_dup(s, 13, &oom);
	d->payload = store_column_dup(s, 14, &oom);
	d->order_key = store_column_dup(s, 15, &oom);
	d->created_at = store_column_dup(s, 16, &oom);
	d->accepted_at = sqlite3_column_int64(s, 17);
	d->attempts = sqlite3_column_int64(s, 18);
	d->reason = store_column_dup(s, 19, &oom);
	d->last_status = sqlite3_column_int(s, 20);
	d->last_error = store_column_dup(s, 21, &oom);
	d->body_excerpt = store_column_dup(s, 22, &oom);
	d->dead_at = sqlite3_column_int64(s, 23);
	if (oom) {
		store_dead_clear(d);
		return ILA_ERR_NOMEM;
	}
	return 0;
}

static int dead_read_row(sqlite3_stmt *s, void *row)
{
	return dead_read(s, row);
}

int store_dead_page(struct store *st, int64_t before_id, size_t limit,
		    struct store_dead_list *out)
{
	out->rows = NULL;
	out->count = 0;
	sqlite3_stmt *s = store_stmt(st, SQL_DEAD_PAGE,
				     "SELECT " DEAD_COLUMNS " FROM dead_letters WHERE id < ?1 ORDER "
				     "BY id DESC LIMIT ?2");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, before_id > 0 ? before_id : INT64_MAX);
	sqlite3_bind_int64(s, 2, limit == 0 ? -1 : (sqlite3_int64)limit);
	int err = store_collect(st, s, sizeof(struct store_dead), dead_read_row,
				(void **)&out->rows, &out->count);
	if (err)
		store_dead_list_free(out);
	return err;
}

/* ---- re-queueing ----------------------------------------------------------------------- */

/* The dead letter's item_id, and whether that id is queued again meanwhile. */
static int requeue_lookup(struct store *st, int64_t dead_id, char item_id[UUID_STR_LEN],
			  bool *id_taken)
{
	sqlite3_stmt *s = store_stmt(st, SQL_DEAD_GET,
				     "SELECT d.item_id, EXISTS (SELECT 1 FROM event_items e WHERE "
				     "e.id = d.item_id) FROM dead_letters d WHERE d.id = ?1");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, dead_id);
	int rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(s, 0);
		size_t len = text ? strlen(text) : 0;
		/* An id that is not a UUID of ours cannot be reused as is. */
		*id_taken = sqlite3_column_int(s, 1) != 0 || len == 0 || len >= UUID_STR_LEN;
		if (!*id_taken)
			memcpy(item_id, text, len + 1);
	} else if (rc == SQLITE_DONE) {
		err = store_fail_msg(st, ILA_ERR_NOTFOUND, "no dead letter with this id");
	} else {
		err = store_fail(st, rc);
	}
	sqlite3_reset(s);
	return err;
}

static int requeue_copy(struct store *st, int64_t dead_id, const char *id, int64_t seq,
			int64_t now_ms)
{
	sqlite3_stmt *s = store_stmt(
		st, SQL_DEAD_REQUEUE,
		"INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
		"created_at, priority, images, links, custom_details, details, event_api_path, "
		"kind, payload, source, order_key, seq, accepted_at, attempts, next_attempt_at, "
		"last_status, last_error) SELECT ?2, integration_key, event_type, alert_key, "
		"summary, created_at, priority, images, links, custom_details, details, "
		"event_api_path, kind, payload, source, order_key, ?3, CASE WHEN kind = "
		"'heartbeat' THEN ?4 ELSE accepted_at END, 0, 0, NULL, NULL FROM dead_letters "
		"WHERE id = ?1");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, dead_id);
	store_bind_text(s, 2, id);
	sqlite3_bind_int64(s, 3, seq);
	sqlite3_bind_int64(s, 4, now_ms);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : store_fail(st, rc);
}

static int dead_delete(struct store *st, int64_t dead_id)
{
	sqlite3_stmt *s = store_stmt(st, SQL_DEAD_DELETE, "DELETE FROM dead_letters WHERE id = ?1");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, dead_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : store_fail(st, rc);
}

static int requeue_locked(struct store *st, int64_t dead_id, int64_t now_ms,
			  char new_id[UUID_STR_LEN])
{
	bool taken = false;
	int err = requeue_lookup(st, dead_id, new_id, &taken);
	if (err)
		return err;
	if (taken)
		uuid_v4(new_id);
	int64_t seq;
	err = store_seq_next(st, &seq);
	if (!err)
		err = requeue_copy(st, dead_id, new_id, seq, now_ms);
	if (!err)
		err = dead_delete(st, dead_id);
	return err;
}

int store_dead_requeue(struct store *st, int64_t dead_id, int64_t now_ms,
		       char new_id[UUID_STR_LEN])
{
	char id[UUID_STR_LEN];
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	err = requeue_locked(st, dead_id, now_ms, id);
	err = store_txn_leave(st, own, err);
	if (!err && new_id)
		memcpy(new_id, id, UUID_STR_LEN);
	return err;
}

/* Up to REQUEUE_ROUND dead-letter ids above after_id, oldest first. */
static int requeue_ids(struct store *st, int64_t after_id, int64_t *ids, size_t *count)
{
	sqlite3_stmt *s = store_stmt(st, SQL_DEAD_IDS,
				     "SELECT id FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int64(s, 2, REQUEUE_ROUND);
	int rc;
	*count = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *count < REQUEUE_ROUND)
		ids[(*count)++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_fail(st, rc);
}

/* Ids are read in rounds and the statement is reset before rows are changed, so no cursor
 * walks a table while it is being modified. */
static int requeue_all_locked(struct store *st, int64_t now_ms, int64_t *count)
{
	int64_t ids[REQUEUE_ROUND];
	int64_t after = 0;
	for (;;) {
		size_t n = 0;
		int err = requeue_ids(st, after, ids, &n);
		if (err)
			return err;
		for (size_t i = 0; i < n; i++) {
			char id[UUID_STR_LEN];
			err = requeue_locked(st, ids[i], now_ms, id);
			if (err)
				return err;
			(*count)++;
		}
		if (n < REQUEUE_ROUND)
			return 0;
		after = ids[n - 1];
	}
}

int store_dead_requeue_all(struct store *st, int64_t now_ms, int64_t *count)
{
	int64_t done = 0;
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	err = requeue_all_locked(st, now_ms, &done);
	err = store_txn_leave(st, own, err);
	*count = err ? 0 : done;
	return err;
}

int store_dead_purge(struct store *st, int64_t *count)
{
	*count = 0;
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	sqlite3_stmt *s = store_stmt(st, SQL_DEAD_PURGE, "DELETE FROM dead_letters");
	int64_t n = 0;
	if (!s) {
		err = store_last_err(st);
	} else {
		int rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			err = store_fail(st, rc);
		else
			n = sqlite3_changes(st->db);
	}
	err = store_txn_leave(st, own, err);
	if (!err)
		*count = n;
	return err;
}
