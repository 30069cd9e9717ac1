#include "store/legacy.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "store/store_priv.h"

/* Used once per daemon start, so the statements are prepared per call instead of being kept
 * with the connection. */
static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		store_fail(st, rc);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

void store_mqtt_rows_free(struct store_mqtt_rows *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->count; i++) {
		struct store_mqtt_row *r = &list->rows[i];
		free(r->id);
		free(r->topic);
		free(r->payload);
		free(r->inserted_at);
	}
	free(list->rows);
	list->rows = NULL;
	list->count = 0;
}

int store_mqtt_queue_count(struct store *st, int64_t *count)
{
	sqlite3_stmt *s = prepare(st, "SELECT count(*) FROM mqtt_queue");
	if (!s)
		return store_last_err(st);
	int rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW)
		*count = sqlite3_column_int64(s, 0);
	else
		err = store_fail(st, rc);
	sqlite3_finalize(s);
	return err;
}

static int row_read(sqlite3_stmt *s, struct store_mqtt_row *r)
{
	bool oom = false;
	memset(r, 0, sizeof(*r));
	r->id = store_column_dup(s, 0, &oom);
	r->topic = store_column_dup(s, 1, &oom);
	r->inserted_at = store_column_dup(s, 3, &oom);
	/* The payload may hold any bytes (a NUL included): copy by length. */
	const void *p = sqlite3_column_blob(s, 2);
	size_t n = (size_t)sqlite3_column_bytes(s, 2);
	r->payload = malloc(n + 1);
	if (r->payload) {
		if (n)
			memcpy(r->payload, p, n);
		r->payload[n] = '\0';
		r->payload_len = n;
	}
	if (oom || !r->payload || !r->id || !r->topic)
		return ILA_ERR_NOMEM;
	return 0;
}

int store_mqtt_queue_page(struct store *st, int64_t skip, size_t limit,
			  struct store_mqtt_rows *out)
{
	out->rows = NULL;
	out->count = 0;
	sqlite3_stmt *s = prepare(st, "SELECT id, topic, payload, inserted_at FROM mqtt_queue "
				      "ORDER BY inserted_at, rowid LIMIT ?1 OFFSET ?2");
	if (!s)
		return store_last_err(st);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)limit);
	sqlite3_bind_int64(s, 2, skip);
	out->rows = calloc(limit ? limit : 1, sizeof(*out->rows));
	int rc = SQLITE_DONE, err = 0;
	if (!out->rows)
		err = store_fail_msg(st, ILA_ERR_NOMEM, "out of memory");
	while (!err && out->count < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		/* A partly filled row is counted so that the free below releases it. */
		err = row_read(s, &out->rows[out->count++]);
		if (err)
			store_fail_msg(st, err, "out of memory");
	}
	if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = store_fail(st, rc);
	sqlite3_finalize(s);
	if (err)
		store_mqtt_rows_free(out);
	return err;
}

int store_mqtt_queue_delete(struct store *st, const char *id)
{
	bool own;
	int err = store_txn_enter(st, &own);
	if (err)
		return err;
	sqlite3_stmt *s = prepare(st, "DELETE FROM mqtt_queue WHERE id = ?1");
	if (!s)
		return store_txn_leave(st, own, store_last_err(st));
	store_bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		err = store_fail(st, rc);
	sqlite3_finalize(s);
	return store_txn_leave(st, own, err);
}
