/* Internals shared by db.c, queue.c and dead.c: the connection struct with its prepared
 * statements, the transaction state and the seq_hwm cache. Not part of the public API.
 * Same threading rule as the connection itself: one thread at a time per struct store. */
#ifndef ILAGENT_STORE_PRIV_H
#define ILAGENT_STORE_PRIV_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* One slot per statement that is prepared once per connection, on first use. */
enum store_stmt_id {
	SQL_HWM_READ,
	SQL_HWM_WRITE,
	SQL_ITEM_INSERT,
	SQL_ITEM_DELETE,
	SQL_ITEM_RESCHEDULE,
	SQL_ITEM_PAGE,
	SQL_ITEM_DUE,
	SQL_ITEM_HEAD,
	SQL_ITEM_HEAD_SEQ,
	SQL_ITEM_RETRY_DUE,
	SQL_ITEM_GET,
	SQL_ITEM_COUNT,
	SQL_STATS_ITEMS,
	SQL_STATS_DEAD,
	SQL_STATS_MQTT,
	SQL_DEAD_INSERT,
	SQL_DEAD_COUNT,
	SQL_DEAD_EVICT,
	SQL_DEAD_PAGE,
	SQL_DEAD_GET,
	SQL_DEAD_IDS,
	SQL_DEAD_DELETE,
	SQL_DEAD_REQUEUE,
	SQL_DEAD_PURGE,
	SQL_STMT_COUNT
};

struct store {
	sqlite3 *db;
	char *path;
	bool wal;
	sqlite3_stmt *stmts[SQL_STMT_COUNT];

	/* Explicit transaction opened by store_begin (or internally by a single operation). */
	bool in_txn;
	/* seq_hwm as read at the first allocation of this transaction; written back by
	 * store_commit when dirty, dropped by rollback. */
	bool hwm_loaded;
	bool hwm_dirty;
	int64_t hwm;

	char errmsg[512];
	int last_err; /* enum ila_err of the last failure */
};

/* The statement for id, prepared with sql on first use and reset/unbound on return.
 * NULL on failure, with the error recorded in st->errmsg. */
sqlite3_stmt *store_stmt(struct store *st, enum store_stmt_id id, const char *sql);

/* The enum ila_err of the last failure recorded on st (ILA_ERR_STORE if none). */
int store_last_err(const struct store *st);
/* Records sqlite's current error for rc in st->errmsg and maps rc to an enum ila_err. */
int store_fail(struct store *st, int rc);
/* Records a message of our own (no sqlite error behind it). Returns err. */
int store_fail_msg(struct store *st, int err, const char *msg);
/* SQLite result code → enum ila_err (CORRUPT/NOTADB → ILA_ERR_CORRUPT, NOMEM → NOMEM,
 * everything else → ILA_ERR_STORE). */
int store_map_rc(int rc);

/* Steps a bound statement to the end, reading each row with read_row into a growing array
 * of elem_size-byte elements (*rows, *count; both reset first) and resets the statement. On
 * failure the rows read so far stay in *rows for the caller's list-free function. */
int store_collect(struct store *st, sqlite3_stmt *s, size_t elem_size,
		  int (*read_row)(sqlite3_stmt *s, void *row), void **rows, size_t *count);

/* Runs one statement without results (for fixed SQL outside the prepared set). */
int store_exec(struct store *st, const char *sql);

/* Reads the sequence high-water mark into st->hwm (max of the stored value and the highest
 * seq in event_items, so a missing or stale row cannot produce a duplicate). */
int store_hwm_load(struct store *st);
/* Next seq of the current transaction (loads the mark on first use). */
int store_seq_next(struct store *st, int64_t *seq);
/* Writes st->hwm back to the ilagent row when it changed. */
int store_hwm_flush(struct store *st);

/* Opens a transaction unless one is open; *own says whether the caller must end it. */
int store_txn_enter(struct store *st, bool *own);
/* Ends a transaction opened by store_txn_enter when own: commit when rc is 0, else
 * rollback. Returns rc, or the commit's error. */
int store_txn_leave(struct store *st, bool own, int rc);

/* Binds text or NULL. */
int store_bind_text(sqlite3_stmt *s, int idx, const char *text);
/* Heap copy of a text column, NULL for SQL NULL. *oom is set when the copy failed. */
char *store_column_dup(sqlite3_stmt *s, int col, bool *oom);

#endif
