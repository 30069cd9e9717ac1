#include "store/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "store/store_priv.h"

/* Columns of event_items in the order read by item_read(). */
#define ITEM_COLUMNS                                                                         \
	"id, seq, kind, integration_key, event_type, alert_key, summary, created_at, priority, " \
	"images, links, custom_details, details, event_api_path, payload, source, order_key, "   \
	"accepted_at, attempts, next_attempt_at, last_status, last_error"

const char *store_kind_name(enum store_kind kind)
{
	switch (kind) {
	case STORE_KIND_EVENT: return "event";
	case STORE_KIND_HEARTBEAT: return "heartbeat";
	case STORE_KIND_POLICY: return "policy";
	default: return "unknown";
	}
}

enum store_kind store_kind_parse(const char *text)
{
	if (!text)
		return STORE_KIND_UNKNOWN;
	if (strcmp(text, "event") == 0)
		return STORE_KIND_EVENT;
	if (strcmp(text, "heartbeat") == 0)
		return STORE_KIND_HEARTBEAT;
	if (strcmp(text, "policy") == 0)
		return STORE_KIND_POLICY;
	return STORE_KIND_UNKNOWN;
}

/* ---- transactions and the sequence --------------------------------------------------- */

static void txn_reset(struct store *st)
{
	st->in_txn = false;
	st->hwm_loaded = false;
	st->hwm_dirty = false;
}

int store_begin(struct store *st)
{
	if (st->in_txn)
		return store_fail_msg(st, ILA_ERR_INVALID, "a transaction is already open");
	int err = store_exec(st, "BEGIN IMMEDIATE");
	if (err)
		return err;
	txn_reset(st);
	st->in_txn = true;
	return 0;
}

void store_rollback(struct store *st)
{
	/* SQLite may already have rolled back by itself (SQLITE_FULL, IOERR, ...). */
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	txn_reset(st);
}

int store_commit(struct store *st)
{
	if (!st->in_txn)
		return store_fail_msg(st, ILA_ERR_INVALID, "no transaction is open");
	if (sqlite3_get_autocommit(st->db)) {
		txn_reset(st);
		return store_fail_msg(st, ILA_ERR_STORE,
				      "the transaction was rolled back after an earlier error");
	}
	int err = store_hwm_flush(st);
	if (!err)
		err = store_exec(st, "COMMIT");
	if (err) {
		char saved[sizeof(st->errmsg)];
		memcpy(saved, st->errmsg, sizeof(saved));
		store_rollback(st);
		memcpy(st->errmsg, saved, sizeof(saved));
		return err;
	}
	txn_reset(st);
	return 0;
}

bool store_in_transaction(const struct store *st)
{
	return st->in_txn;
}

int store_txn_enter(struct store *st, bool *own)
{
	*own = !st->in_txn;
	if (*own)
		return store_begin(st);
	/* After SQLITE_FULL, IOERR and the like SQLite may have rolled the batch back by
	 * itself; running on in autocommit mode would store half a batch. */
	if (sqlite3_get_autocommit(st->db))
		return store_fail_msg(st, ILA_ERR_STORE,
				      "the transaction was rolled back after an earlier error");
	return 0;
}

int store_txn_leave(struct store *st, bool own, int rc)
{
	if (!own)
		return rc;
	if (rc) {
		char saved[sizeof(st->errmsg)];
		memcpy(saved, st->errmsg, sizeof(saved));
		store_rollback(st);
		memcpy(st->errmsg, saved, sizeof(saved));
		return rc;
	}
	return store_commit(st);
}

/* Read-only snapshot for queries of several statements (no write lock). */
static int read_enter(struct store *st, bool *own)
{
	*own = sqlite3_get_autocommit(st->db) != 0;
	return *own ? store_exec(st, "BEGIN") : 0;
}

static int read_leave(struct store *st, bool own, int rc)
{
	if (own && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
	return rc;
}

int store_hwm_load(struct store *st)
{
	sqlite3_stmt *s = store_stmt(
		st, SQL_HWM_READ,
		"SELECT max(coalesce((SELECT CAST(val AS INTEGER) FROM ilagent WHERE key = "
		"'seq_hwm'), 0), coalesce((SELECT max(seq) FROM event_items), 0))");
	if (!s)
		return store_last_err(st);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		int err = store_fail(st, rc);
		sqlite3_reset(s);
		return err;
	}
	st->hwm = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	st->hwm_loaded = true;
	st->hwm_dirty = false;
	return 0;
}

int store_seq_next(struct store *st, int64_t *seq)
{
	if (!st->hwm_loaded) {
		int err = store_hwm_load(st);
		if (err)
			return err;
	}
	st->hwm++;
	st->hwm_dirty = true;
	*seq = st->hwm;
	return 0;
}

int store_hwm_flush(struct store *st)
{
	if (!st->hwm_dirty)
		return 0;
	sqlite3_stmt *s = store_stmt(st, SQL_HWM_WRITE,
				     "INSERT INTO ilagent (key, val, created_at) VALUES ('seq_hwm', "
				     "?1, ?2) ON CONFLICT(key) DO UPDATE SET val = excluded.val");
	if (!s)
		return store_last_err(st);
	char val[24], now[48];
	snprintf(val, sizeof(val), "%lld", (long long)st->hwm);
	clock_db_timestamp(now, sizeof(now));
	sqlite3_bind_text(s, 1, val, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, now, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	st->hwm_dirty = false;
	return 0;
}

/* ---- writes ----------------------------------------------------------------------------- */

static int item_insert_locked(struct store *st, const struct store_new_item *item,
			      const char *id, int64_t *seq_out)
{
	sqlite3_stmt *s = store_stmt(
		st, SQL_ITEM_INSERT,
		"INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
		"created_at, priority, images, links, custom_details, details, event_api_path, "
		"kind, payload, source, order_key, seq, accepted_at, attempts, next_attempt_at) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
		"?18, 0, 0)");
	if (!s)
		return store_last_err(st);
	int64_t seq;
	int err = store_seq_next(st, &seq);
	if (err)
		return err;
	char now[48];
	clock_db_timestamp(now, sizeof(now));
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, item->integration_key ? item->integration_key : "");
	store_bind_text(s, 3, item->event_type ? item->event_type : "");
	store_bind_text(s, 4, item->alert_key);
	store_bind_text(s, 5, item->summary ? item->summary : "");
	store_bind_text(s, 6, now);
	store_bind_text(s, 7, item->priority);
	store_bind_text(s, 8, item->images);
	store_bind_text(s, 9, item->links);
	store_bind_text(s, 10, item->custom_details);
	store_bind_text(s, 11, item->details);
	store_bind_text(s, 12, item->event_api_path);
	store_bind_text(s, 13, store_kind_name(item->kind));
	store_bind_text(s, 14, item->payload);
	store_bind_text(s, 15, item->source);
	store_bind_text(s, 16, item->order_key);
	sqlite3_bind_int64(s, 17, seq);
	sqlite3_bind_int64(s, 18, item->accepted_at);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	if (seq_out)
		*seq_out = seq;
	return 0;
}

int store_item_insert(struct store *st, const struct store_new_item *item,
		      char id_out[UUID_STR_LEN], int64_t *seq_out)
{
	if (item->kind == STORE_KIND_UNKNOWN)
		return store_fail_msg(st, ILA_ERR_INVALID, "unknown item kind");
	char id[UUID_STR_LEN];
	uuid_v4(id);
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	err = item_insert_locked(st, item, id, seq_out);
	err = store_txn_leave(st, own, err);
	if (!err && id_out)
		memcpy(id_out, id, UUID_STR_LEN);
	return err;
}

/* Runs a prepared statement with one text parameter; *changes gets the rows touched. */
static int exec_by_id(struct store *st, sqlite3_stmt *s, const char *id, int64_t *changes)
{
	store_bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	if (changes)
		*changes = sqlite3_changes(st->db);
	return 0;
}

int store_item_delete(struct store *st, const char *id)
{
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_DELETE, "DELETE FROM event_items WHERE id = ?1");
	err = s ? exec_by_id(st, s, id, NULL) : store_last_err(st);
	return store_txn_leave(st, own, err);
}

static int reschedule_locked(struct store *st, const char *id, const struct store_retry *retry)
{
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_RESCHEDULE,
				     "UPDATE event_items SET attempts = ?2, next_attempt_at = ?3, "
				     "last_status = ?4, last_error = ?5 WHERE id = ?1");
	if (!s)
		return store_last_err(st);
	store_bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, retry->attempts);
	sqlite3_bind_int64(s, 3, retry->next_attempt_at);
	if (retry->last_status)
		sqlite3_bind_int(s, 4, retry->last_status);
	else
		sqlite3_bind_null(s, 4);
	store_bind_text(s, 5, retry->last_error);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc);
	if (sqlite3_changes(st->db) == 0)
		return store_fail_msg(st, ILA_ERR_NOTFOUND, "no queued item with this id");
	return 0;
}

int store_item_reschedule(struct store *st, const char *id, const struct store_retry *retry)
{
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	err = reschedule_locked(st, id, retry);
	return store_txn_leave(st, own, err);
}

/* ---- reads ------------------------------------------------------------------------------ */

void store_item_clear(struct store_item *item)
{
	if (!item)
		return;
	free(item->id);
	free(item->integration_key);
	free(item->event_type);
	free(item->alert_key);
	free(item->summary);
	free(item->created_at);
	free(item->priority);
	free(item->images);
	free(item->links);
	free(item->custom_details);
	free(item->details);
	free(item->event_api_path);
	free(item->payload);
	free(item->source);
	free(item->order_key);
	free(item->last_error);
	memset(item, 0, sizeof(*item));
}

void store_item_list_free(struct store_item_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->count; i++)
		store_item_clear(&list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static int item_read(sqlite3_stmt *s, struct store_item *it)
{
	bool oom = false;
	memset(it, 0, sizeof(*it));
	it->id = store_column_dup(s, 0, &oom);
	it->seq = sqlite3_column_int64(s, 1);
	it->kind = store_kind_parse((const char *)sqlite3_column_text(s, 2));
	it->integration_key = store_column_dup(s, 3, &oom);
	it->event_type = store_column_dup(s, 4, &oom);
	it->alert_key = store_column_dup(s, 5, &oom);
	it->summary = store_column_dup(s, 6, &oom);
	it->created_at = store_column_dup(s, 7, &oom);
	it->priority = store_column_dup(s, 8, &oom);
	it->images = store_column_dup(s, 9, &oom);
	it->links = store_column_dup(s, 10, &oom);
	it->custom_details = store_column_dup(s, 11, &oom);
	it->details = store_column_dup(s, 12, &oom);
	it->event_api_path = store_column_dup(s, 13, &oom);
	it->payload = store_column_dup(s, 14, &oom);
	it->source = store_column_dup(s, 15, &oom);
	it->order_key = store_column_dup(s, 16, &oom);
	it->accepted_at = sqlite3_column_int64(s, 17);
	it->attempts = sqlite3_column_int64(s, 18);
	it->next_attempt_at = sqlite3_column_int64(s, 19);
	it->last_status = sqlite3_column_int(s, 20);
	it->last_error = store_column_dup(s, 21, &oom);
	if (oom) {
		store_item_clear(it);
		return ILA_ERR_NOMEM;
	}
	return 0;
}

int store_collect(struct store *st, sqlite3_stmt *s, size_t elem_size,
		  int (*read_row)(sqlite3_stmt *s, void *row), void **rows, size_t *count)
{
	size_t cap = 0;
	int rc, err = 0;
	*rows = NULL;
	*count = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*count == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *n = realloc(*rows, ncap * elem_size);
			if (!n) {
				err = store_fail_msg(st, ILA_ERR_NOMEM, "out of memory");
				break;
			}
			*rows = n;
			cap = ncap;
		}
		err = read_row(s, (char *)*rows + *count * elem_size);
		if (err) {
			store_fail_msg(st, err, "out of memory");
			break;
		}
		(*count)++;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc);
	sqlite3_reset(s);
	return err;
}

static int item_read_row(sqlite3_stmt *s, void *row)
{
	return item_read(s, row);
}

/* Steps a bound statement to the end, appending every row to out. */
static int item_collect(struct store *st, sqlite3_stmt *s, struct store_item_list *out)
{
	int err = store_collect(st, s, sizeof(struct store_item), item_read_row,
				(void **)&out->items, &out->count);
	if (err)
		store_item_list_free(out);
	return err;
}

static sqlite3_int64 limit_value(size_t limit)
{
	return limit == 0 ? -1 : (sqlite3_int64)limit;
}

int store_items_page(struct store *st, int64_t after_seq, size_t limit,
		     struct store_item_list *out)
{
	out->items = NULL;
	out->count = 0;
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_PAGE,
				     "SELECT " ITEM_COLUMNS " FROM event_items WHERE seq > ?1 "
				     "ORDER BY seq LIMIT ?2");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, after_seq);
	sqlite3_bind_int64(s, 2, limit_value(limit));
	return item_collect(st, s, out);
}

int store_items_due(struct store *st, int64_t now_ms, int64_t after_seq, size_t limit,
		    struct store_item_list *out)
{
	out->items = NULL;
	out->count = 0;
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_DUE,
				     "SELECT " ITEM_COLUMNS " FROM event_items WHERE "
				     "next_attempt_at <= ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, now_ms);
	sqlite3_bind_int64(s, 2, after_seq);
	sqlite3_bind_int64(s, 3, limit_value(limit));
	return item_collect(st, s, out);
}

int store_items_retry_due(struct store *st, int64_t now_ms, size_t limit,
			  struct store_item_list *out)
{
	out->items = NULL;
	out->count = 0;
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_RETRY_DUE,
				     "SELECT " ITEM_COLUMNS " FROM event_items INDEXED BY "
				     "event_items_due WHERE next_attempt_at > 0 AND "
				     "next_attempt_at <= ?1 ORDER BY seq LIMIT ?2");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, now_ms);
	sqlite3_bind_int64(s, 2, limit_value(limit));
	return item_collect(st, s, out);
}

static int item_one(struct store *st, sqlite3_stmt *s, struct store_item *out)
{
	struct store_item_list list;
	int err = item_collect(st, s, &list);
	if (err)
		return err;
	if (list.count == 0) {
		store_item_list_free(&list);
		return store_fail_msg(st, ILA_ERR_NOTFOUND, "no such item");
	}
	*out = list.items[0];
	free(list.items);
	return 0;
}

int store_item_head(struct store *st, const char *order_key, struct store_item *out)
{
	memset(out, 0, sizeof(*out));
	/* "order_key = ?" implies "order_key IS NOT NULL", so the partial index applies. */
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_HEAD,
				     "SELECT " ITEM_COLUMNS " FROM event_items INDEXED BY "
				     "event_items_order WHERE order_key = ?1 ORDER BY seq LIMIT 1");
	if (!s)
		return store_last_err(st);
	store_bind_text(s, 1, order_key);
	return item_one(st, s, out);
}

int store_item_head_seq(struct store *st, const char *order_key, int64_t *seq)
{
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_HEAD_SEQ,
				     "SELECT seq FROM event_items INDEXED BY event_items_order "
				     "WHERE order_key = ?1 ORDER BY seq LIMIT 1");
	if (!s)
		return store_last_err(st);
	store_bind_text(s, 1, order_key);
	int rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW)
		*seq = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		err = store_fail_msg(st, ILA_ERR_NOTFOUND, "no such item");
	else
		err = store_fail(st, rc);
	sqlite3_reset(s);
	return err;
}

int store_item_get(struct store *st, const char *id, struct store_item *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_GET,
				     "SELECT " ITEM_COLUMNS " FROM event_items WHERE id = ?1");
	if (!s)
		return store_last_err(st);
	store_bind_text(s, 1, id);
	return item_one(st, s, out);
}

static int count_stmt(struct store *st, sqlite3_stmt *s, int64_t *value)
{
	int rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW)
		*value = sqlite3_column_int64(s, 0);
	else
		err = store_fail(st, rc);
	sqlite3_reset(s);
	return err;
}

int store_items_count(struct store *st, int64_t *count)
{
	sqlite3_stmt *s = store_stmt(st, SQL_ITEM_COUNT, "SELECT count(*) FROM event_items");
	if (!s)
		return store_last_err(st);
	return count_stmt(st, s, count);
}

static int stats_items(struct store *st, struct store_stats *out)
{
	sqlite3_stmt *s = store_stmt(
		st, SQL_STATS_ITEMS,
		"SELECT count(*), coalesce(sum(kind = 'event'), 0), "
		"coalesce(sum(kind = 'heartbeat'), 0), coalesce(sum(kind = 'policy'), 0), "
		"coalesce(sum(attempts > 0), 0), min(accepted_at) FROM event_items");
	if (!s)
		return store_last_err(st);
	int rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW) {
		out->queued = sqlite3_column_int64(s, 0);
		out->queued_event = sqlite3_column_int64(s, 1);
		out->queued_heartbeat = sqlite3_column_int64(s, 2);
		out->queued_policy = sqlite3_column_int64(s, 3);
		out->retrying = sqlite3_column_int64(s, 4);
		out->has_oldest = sqlite3_column_type(s, 5) != SQLITE_NULL;
		out->oldest_accepted_at = out->has_oldest ? sqlite3_column_int64(s, 5) : 0;
	} else {
		err = store_fail(st, rc);
	}
	sqlite3_reset(s);
	return err;
}

int store_stats_read(struct store *st, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	bool own;
	int err = read_enter(st, &own);
	if (err)
		return err;
	err = stats_items(st, out);
	if (!err) {
		sqlite3_stmt *s =
			store_stmt(st, SQL_STATS_DEAD, "SELECT count(*) FROM dead_letters");
		err = s ? count_stmt(st, s, &out->dead) : store_last_err(st);
	}
	if (!err) {
		sqlite3_stmt *s =
			store_stmt(st, SQL_STATS_MQTT, "SELECT count(*) FROM mqtt_queue");
		err = s ? count_stmt(st, s, &out->legacy_mqtt_queue) : store_last_err(st);
	}
	return read_leave(st, own, err);
}
