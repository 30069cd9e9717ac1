#include "store/db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/text.h"
#include "ops/log.h"
#include "store/queue.h"
#include "store/store_priv.h"

#define SETUP_PREFIX "Failed to setup SQLite connection"
#define SQLITE_MIN_VERSION 3025000

/* ---- lock file ------------------------------------------------------------------------ */

struct store_lock {
	int fd;
};

int store_lock_acquire(const char *db_path, struct store_lock **out, char *msg, size_t msg_size)
{
	*out = NULL;
	struct tbuf name;
	tbuf_init(&name);
	tbuf_printf(&name, "%s.lock", db_path);
	if (name.oom) {
		tbuf_free(&name);
		snprintf(msg, msg_size, SETUP_PREFIX ": %s: out of memory", db_path);
		return ILA_ERR_NOMEM;
	}
	int fd = open(name.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(msg, msg_size, SETUP_PREFIX ": %s: cannot open lock file %s: %s", db_path,
			 name.data, strerror(errno));
		tbuf_free(&name);
		return ILA_ERR_IO;
	}
	tbuf_free(&name);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			snprintf(msg, msg_size, SETUP_PREFIX ": %s is in use by another ilagent daemon",
				 db_path);
			return ILA_ERR_BUSY;
		}
		snprintf(msg, msg_size, SETUP_PREFIX ": %s: cannot lock %s.lock: %s", db_path,
			 db_path, strerror(e));
		return ILA_ERR_IO;
	}
	struct store_lock *lock = malloc(sizeof(*lock));
	if (!lock) {
		close(fd);
		snprintf(msg, msg_size, SETUP_PREFIX ": %s: out of memory", db_path);
		return ILA_ERR_NOMEM;
	}
	lock->fd = fd;
	*out = lock;
	return 0;
}

void store_lock_release(struct store_lock *lock)
{
	if (!lock)
		return;
	/* Closing the only descriptor releases the flock; the file stays so that a waiting
	 * daemon and this one always lock the same inode. */
	close(lock->fd);
	free(lock);
}

/* ---- shared connection helpers (store_priv.h) ----------------------------------------- */

int store_map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return 0;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return ILA_ERR_CORRUPT;
	case SQLITE_NOMEM: return ILA_ERR_NOMEM;
	default: return ILA_ERR_STORE;
	}
}

int store_fail(struct store *st, int rc)
{
	const char *text = st->db ? sqlite3_errmsg(st->db) : NULL;
	if (!text || !*text || strcmp(text, "not an error") == 0)
		text = sqlite3_errstr(rc);
	snprintf(st->errmsg, sizeof(st->errmsg), "%s", text);
	int err = store_map_rc(rc);
	st->last_err = err ? err : ILA_ERR_STORE;
	return st->last_err;
}

int store_last_err(const struct store *st)
{
	return st->last_err ? st->last_err : ILA_ERR_STORE;
}

int store_fail_msg(struct store *st, int err, const char *msg)
{
	snprintf(st->errmsg, sizeof(st->errmsg), "%s", msg);
	st->last_err = err;
	return err;
}

sqlite3_stmt *store_stmt(struct store *st, enum store_stmt_id id, const char *sql)
{
	sqlite3_stmt *s = st->stmts[id];
	if (!s) {
		int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
		if (rc != SQLITE_OK) {
			store_fail(st, rc);
			return NULL;
		}
		st->stmts[id] = s;
		return s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

int store_exec(struct store *st, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &err);
	if (rc == SQLITE_OK)
		return 0;
	snprintf(st->errmsg, sizeof(st->errmsg), "%s", err ? err : sqlite3_errstr(rc));
	sqlite3_free(err);
	int mapped = store_map_rc(rc);
	st->last_err = mapped ? mapped : ILA_ERR_STORE;
	return st->last_err;
}

int store_bind_text(sqlite3_stmt *s, int idx, const char *text)
{
	if (!text)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_text(s, idx, text, -1, SQLITE_TRANSIENT);
}

char *store_column_dup(sqlite3_stmt *s, int col, bool *oom)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return NULL;
	const unsigned char *text = sqlite3_column_text(s, col);
	int len = sqlite3_column_bytes(s, col);
	char *copy = malloc((size_t)len + 1);
	if (!copy || !text) {
		free(copy);
		*oom = true;
		return NULL;
	}
	memcpy(copy, text, (size_t)len);
	copy[len] = '\0';
	return copy;
}

/* ---- accessors -------------------------------------------------------------------------- */

const char *store_path(const struct store *st)
{
	return st->path;
}

bool store_is_wal(const struct store *st)
{
	return st->wal;
}

const char *store_errmsg(const struct store *st)
{
	return st->errmsg;
}

/* ---- backfill of rows written by older versions (§16.5) ---------------------------------- */

/* alert_key trimmed (empty → NULL) and the ordering key derived from it. */
static int backfill_keys(const char *raw_alert, const char *integration_key, char **alert,
			 char **order_key)
{
	*alert = NULL;
	*order_key = NULL;
	if (!raw_alert)
		return 0;
	char *trimmed = text_trim_dup(raw_alert);
	if (!trimmed)
		return ILA_ERR_NOMEM;
	if (!*trimmed) {
		free(trimmed);
		return 0;
	}
	struct tbuf key;
	tbuf_init(&key);
	tbuf_printf(&key, "%s\x1f%s", integration_key ? integration_key : "", trimmed);
	char *folded = tbuf_take(&key);
	if (!folded) {
		free(trimmed);
		return ILA_ERR_NOMEM;
	}
	text_casefold(folded + strlen(integration_key ? integration_key : "") + 1);
	*alert = trimmed;
	*order_key = folded;
	return 0;
}

static int backfill_row(struct store *st, sqlite3_stmt *upd, sqlite3_stmt *sel, int64_t now)
{
	const char *raw_alert = (const char *)sqlite3_column_text(sel, 1);
	const char *integration_key = (const char *)sqlite3_column_text(sel, 2);
	const char *inserted_at = (const char *)sqlite3_column_text(sel, 3);
	char *alert, *order_key;
	int err = backfill_keys(raw_alert, integration_key, &alert, &order_key);
	if (err)
		return store_fail_msg(st, err, "out of memory");
	int64_t accepted_at;
	if (!inserted_at || clock_parse_db_timestamp(inserted_at, &accepted_at) != 0)
		accepted_at = now;
	int64_t seq;
	err = store_seq_next(st, &seq);
	if (!err) {
		sqlite3_reset(upd);
		store_bind_text(upd, 1, alert);
		store_bind_text(upd, 2, order_key);
		sqlite3_bind_int64(upd, 3, accepted_at);
		sqlite3_bind_int64(upd, 4, seq);
		sqlite3_bind_int64(upd, 5, sqlite3_column_int64(sel, 0));
		int rc = sqlite3_step(upd);
		if (rc != SQLITE_DONE)
			err = store_fail(st, rc);
	}
	free(alert);
	free(order_key);
	return err;
}

/* Gives every row with seq IS NULL its §16.5 defaults inside the caller's transaction.
 * The ORDER BY needs a sorter, so all rows are read before the first UPDATE runs. */
static int backfill_rows(struct store *st, int64_t *count)
{
	static const char sel_sql[] =
		"SELECT rowid, alert_key, integration_key, inserted_at FROM event_items "
		"WHERE seq IS NULL ORDER BY inserted_at, rowid";
	static const char upd_sql[] =
		"UPDATE event_items SET alert_key = ?1, order_key = ?2, accepted_at = ?3, seq = ?4, "
		"attempts = 0, next_attempt_at = 0 WHERE rowid = ?5";
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int rc = sqlite3_prepare_v2(st->db, sel_sql, -1, &sel, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, upd_sql, -1, &upd, NULL);
	if (rc != SQLITE_OK) {
		int err = store_fail(st, rc);
		sqlite3_finalize(upd);
		sqlite3_finalize(sel);
		return err;
	}
	int64_t now = clock_now_ms();
	int err = 0;
	*count = 0;
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		err = backfill_row(st, upd, sel, now);
		if (err)
			break;
		(*count)++;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc);
	sqlite3_finalize(upd);
	sqlite3_finalize(sel);
	return err;
}

/* ---- migrations (§16.2–§16.4) ------------------------------------------------------------- */

static const char sql_bookkeeping[] =
	"CREATE TABLE IF NOT EXISTS ilagent (key TEXT PRIMARY KEY, val TEXT NOT NULL, "
	"created_at TEXT NOT NULL)";

static const char sql_mig_1[] =
	"CREATE TABLE event_items (id TEXT PRIMARY KEY, api_key TEXT NOT NULL, event_type TEXT "
	"NOT NULL, incident_key TEXT NULL, summary TEXT NOT NULL, created_at TEXT NOT NULL, "
	"priority TEXT NULL, images TEXT NULL, links TEXT NULL, custom_details TEXT NULL, details "
	"TEXT NULL)";

static const char sql_mig_2_alter[] =
	"ALTER TABLE event_items RENAME COLUMN incident_key TO alert_key;"
	"ALTER TABLE event_items ADD COLUMN inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d "
	"%H:%M:%f', 'NOW'))";

/* SQLite refuses ADD COLUMN with a non-constant default on a non-empty table, so a file
 * that still holds rows gets the mig_2 shape by copying into a new table. */
static const char sql_mig_2_rebuild[] =
	"CREATE TABLE event_items_mig_2 (id TEXT PRIMARY KEY, api_key TEXT NOT NULL, event_type "
	"TEXT NOT NULL, alert_key TEXT NULL, summary TEXT NOT NULL, created_at TEXT NOT NULL, "
	"priority TEXT NULL, images TEXT NULL, links TEXT NULL, custom_details TEXT NULL, details "
	"TEXT NULL, inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')));"
	"INSERT INTO event_items_mig_2 (id, api_key, event_type, alert_key, summary, created_at, "
	"priority, images, links, custom_details, details, inserted_at) SELECT id, api_key, "
	"event_type, incident_key, summary, created_at, priority, images, links, custom_details, "
	"details, STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW') FROM event_items ORDER BY rowid;"
	"DROP TABLE event_items;"
	"ALTER TABLE event_items_mig_2 RENAME TO event_items";

static const char sql_mig_3[] = "ALTER TABLE event_items ADD COLUMN event_api_path TEXT NULL";

static const char sql_mig_4[] = "ALTER TABLE event_items RENAME COLUMN api_key TO integration_key";

static const char sql_mig_5[] =
	"CREATE TABLE mqtt_queue (id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT "
	"NULL, inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')))";

static const char sql_mig_6[] =
	"ALTER TABLE event_items ADD COLUMN kind            TEXT    NOT NULL DEFAULT 'event';"
	"ALTER TABLE event_items ADD COLUMN payload         TEXT    NULL;"
	"ALTER TABLE event_items ADD COLUMN source          TEXT    NULL;"
	"ALTER TABLE event_items ADD COLUMN order_key       TEXT    NULL;"
	"ALTER TABLE event_items ADD COLUMN seq             INTEGER NULL;"
	"ALTER TABLE event_items ADD COLUMN accepted_at     INTEGER NULL;"
	"ALTER TABLE event_items ADD COLUMN attempts        INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE event_items ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE event_items ADD COLUMN last_status     INTEGER NULL;"
	"ALTER TABLE event_items ADD COLUMN last_error      TEXT    NULL";

static const char sql_mig_8[] =
	"CREATE TABLE dead_letters ("
	"  id              INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  item_id         TEXT    NOT NULL,"
	"  kind            TEXT    NOT NULL,"
	"  source          TEXT    NULL,"
	"  integration_key TEXT    NOT NULL,"
	"  event_type      TEXT    NOT NULL,"
	"  alert_key       TEXT    NULL,"
	"  summary         TEXT    NOT NULL,"
	"  details         TEXT    NULL,"
	"  priority        TEXT    NULL,"
	"  images          TEXT    NULL,"
	"  links           TEXT    NULL,"
	"  custom_details  TEXT    NULL,"
	"  event_api_path  TEXT    NULL,"
	"  payload         TEXT    NULL,"
	"  order_key       TEXT    NULL,"
	"  created_at      TEXT    NOT NULL,"
	"  accepted_at     INTEGER NOT NULL,"
	"  attempts        INTEGER NOT NULL,"
	"  reason          TEXT    NOT NULL,"
	"  last_status     INTEGER NULL,"
	"  last_error      TEXT    NULL,"
	"  body_excerpt    TEXT    NULL,"
	"  dead_at         INTEGER NOT NULL"
	");"
	"CREATE INDEX dead_letters_dead_at ON dead_letters(dead_at)";

static const char sql_mig_9[] =
	"CREATE UNIQUE INDEX event_items_seq   ON event_items(seq);"
	"CREATE INDEX        event_items_order ON event_items(order_key, seq) WHERE order_key IS "
	"NOT NULL;"
	"CREATE INDEX        event_items_due   ON event_items(next_attempt_at, seq)";

static int query_int(struct store *st, const char *sql, int64_t *value)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*value = sqlite3_column_int64(s, 0);
			rc = SQLITE_OK;
		}
	}
	int err = rc == SQLITE_OK ? 0 : store_fail(st, rc);
	sqlite3_finalize(s);
	return err;
}

static int mig_2_apply(struct store *st)
{
	int64_t has_rows = 0;
	int err = query_int(st, "SELECT EXISTS (SELECT 1 FROM event_items)", &has_rows);
	if (err)
		return err;
	return store_exec(st, has_rows ? sql_mig_2_rebuild : sql_mig_2_alter);
}

static int mig_7_apply(struct store *st)
{
	int64_t count;
	int err = backfill_rows(st, &count);
	if (err)
		return err;
	/* seq_hwm is written even for an empty table: its presence marks the new format. */
	err = store_hwm_load(st);
	if (!err)
		st->hwm_dirty = true;
	if (!err && count > 0)
		log_info("store", "Backfilled %lld queued row(s) of an older version",
			 (long long)count);
	return err;
}

struct migration {
	int number;
	const char *sql;               /* plain statements, or NULL when apply is set */
	int (*apply)(struct store *st); /* runs inside the migration's transaction */
};

static const struct migration migrations[] = {
	{ 1, sql_mig_1, NULL }, { 2, NULL, mig_2_apply }, { 3, sql_mig_3, NULL },
	{ 4, sql_mig_4, NULL }, { 5, sql_mig_5, NULL },   { 6, sql_mig_6, NULL },
	{ 7, NULL, mig_7_apply }, { 8, sql_mig_8, NULL }, { 9, sql_mig_9, NULL },
};

static int mig_recorded(struct store *st, int number, bool *done)
{
	char key[16];
	snprintf(key, sizeof(key), "mig_%d", number);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "SELECT 1 FROM ilagent WHERE key = ?1", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
	}
	int err = 0;
	if (rc == SQLITE_ROW)
		*done = true;
	else if (rc == SQLITE_DONE)
		*done = false;
	else
		err = store_fail(st, rc);
	sqlite3_finalize(s);
	return err;
}

static int mig_record(struct store *st, int number)
{
	char key[16], now[48];
	snprintf(key, sizeof(key), "mig_%d", number);
	clock_db_timestamp(now, sizeof(now));
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(
		st->db, "INSERT INTO ilagent (key, val, created_at) VALUES (?1, '1', ?2)", -1, &s,
		NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, now, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
	}
	int err = rc == SQLITE_DONE ? 0 : store_fail(st, rc);
	sqlite3_finalize(s);
	return err;
}

/* One migration in one transaction with its bookkeeping row. The row is checked inside the
 * write transaction so that two processes starting together apply it once. */
static int mig_run(struct store *st, const struct migration *m, bool *applied)
{
	*applied = false;
	int err = store_begin(st);
	if (err)
		return err;
	bool done = false;
	err = mig_recorded(st, m->number, &done);
	if (!err && !done) {
		err = m->apply ? m->apply(st) : store_exec(st, m->sql);
		if (!err)
			err = mig_record(st, m->number);
	}
	if (err || done) {
		/* Keep the message of the failure, not of the rollback. */
		store_rollback(st);
		return err;
	}
	err = store_commit(st);
	if (!err)
		*applied = true;
	return err;
}

static int migrate(struct store *st, char *msg, size_t msg_size)
{
	for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		bool applied;
		int err = mig_run(st, &migrations[i], &applied);
		if (err) {
			snprintf(msg, msg_size, "Database migration failed (mig_%d): %s",
				 migrations[i].number, st->errmsg);
			return err;
		}
		if (applied)
			log_info("store", "Applied migration mig_%d to %s", migrations[i].number,
				 st->path);
	}
	return 0;
}

/* ---- open ------------------------------------------------------------------------------ */

static int setup_fail(char *msg, size_t msg_size, const char *path, int err, const char *fmt,
		      ...) __attribute__((format(printf, 5, 6)));

static int setup_fail(char *msg, size_t msg_size, const char *path, int err, const char *fmt,
		      ...)
{
	char reason[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	snprintf(msg, msg_size, SETUP_PREFIX ": %s: %s", path, reason);
	return err;
}

/* Makes sure the file exists: queue mode requires it, the daemon creates it empty with mode
 * 0600 (SQLite would create it 0644). *created tells the caller to remove it on failure. */
static int file_prepare(const struct store_options *opts, bool *created, char *msg,
			size_t msg_size)
{
	*created = false;
	struct stat sb;
	if (stat(opts->path, &sb) == 0)
		return 0;
	if (errno != ENOENT)
		return setup_fail(msg, msg_size, opts->path, ILA_ERR_IO, "%s", strerror(errno));
	if (opts->mode == STORE_MODE_QUEUE) {
		snprintf(msg, msg_size, "database file not found: %s", opts->path);
		return ILA_ERR_NOTFOUND;
	}
	int fd = open(opts->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		return setup_fail(msg, msg_size, opts->path, ILA_ERR_IO, "cannot create file: %s",
				  strerror(errno));
	}
	/* Exactly 0600 whatever the umask. */
	if (fchmod(fd, 0600) != 0)
		log_warn("store", "Cannot set mode 0600 on %s: %s", opts->path, strerror(errno));
	close(fd);
	*created = true;
	return 0;
}

static int conn_pragmas(struct store *st, bool sync_normal)
{
	int rc = sqlite3_busy_timeout(st->db, 5000);
	if (rc != SQLITE_OK)
		return store_fail(st, rc);
	/* None of these reads or writes the file, so a file we refuse stays untouched. */
	int err = store_exec(st, "PRAGMA foreign_keys=OFF");
	if (!err)
		err = store_exec(st, "PRAGMA journal_size_limit=67108864");
	if (!err)
		err = store_exec(st, sync_normal ? "PRAGMA synchronous=NORMAL"
						 : "PRAGMA synchronous=FULL");
	return err;
}

/* Reads every page (PRAGMA quick_check), so a damaged file is refused before anything is
 * written to it rather than failing halfway through a migration or at runtime. */
static int conn_check_integrity(struct store *st)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check(1)", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW) {
		const char *verdict = (const char *)sqlite3_column_text(s, 0);
		if (!verdict || strcmp(verdict, "ok") != 0) {
			snprintf(st->errmsg, sizeof(st->errmsg), "database disk image is malformed (%s)",
				 verdict ? verdict : "integrity check failed");
			err = ILA_ERR_CORRUPT;
		}
	} else {
		err = store_fail(st, rc);
	}
	sqlite3_finalize(s);
	return err;
}

/* An empty database is new; one with a schema must hold the ilagent bookkeeping table. */
static int conn_check_ours(struct store *st, bool *is_new)
{
	int64_t objects = 0, bookkeeping = 0;
	int err = query_int(st,
			    "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
			    "ESCAPE '\\'",
			    &objects);
	if (!err)
		err = query_int(st,
				"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
				"'ilagent'",
				&bookkeeping);
	if (err)
		return err;
	if (objects > 0 && bookkeeping == 0)
		return store_fail_msg(st, ILA_ERR_INVALID, "not an ilagent database");
	*is_new = bookkeeping == 0;
	return 0;
}

static int conn_create_bookkeeping(struct store *st)
{
	int err = store_begin(st);
	if (!err)
		err = store_exec(st, sql_bookkeeping);
	if (err) {
		store_rollback(st);
		return err;
	}
	return store_commit(st);
}

/* Rows an older program added after an upgrade (seq NULL) get the §16.5 defaults. */
static int conn_backfill(struct store *st)
{
	int64_t pending = 0;
	int err = query_int(st, "SELECT EXISTS (SELECT 1 FROM event_items WHERE seq IS NULL)",
			    &pending);
	if (err || !pending)
		return err;
	err = store_begin(st);
	int64_t count = 0;
	if (!err)
		err = backfill_rows(st, &count);
	if (err) {
		store_rollback(st);
		return err;
	}
	err = store_commit(st);
	if (!err)
		log_info("store", "Backfilled %lld queued row(s) written by an older version",
			 (long long)count);
	return err;
}

/* Switching to WAL rewrites the header, so it comes last: a refused file stays identical. */
static void conn_enable_wal(struct store *st)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	st->wal = mode && strcmp(mode, "wal") == 0;
	if (!st->wal)
		log_warn("store",
			 "Cannot enable WAL journal mode for %s (%s); using a rollback journal",
			 st->path, mode ? mode : sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
}

static struct store *store_alloc(const char *path)
{
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->path = strdup(path);
	if (!st->path) {
		free(st);
		return NULL;
	}
	return st;
}

/* Everything between sqlite3_open and a usable connection; msg is set on failure. */
static int conn_setup(struct store *st, const struct store_options *opts, char *msg,
		      size_t msg_size)
{
	int rc = sqlite3_open_v2(opts->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		int err = store_fail(st, rc);
		return setup_fail(msg, msg_size, opts->path, err, "%s", st->errmsg);
	}
	if (sqlite3_db_readonly(st->db, "main") == 1)
		return setup_fail(msg, msg_size, opts->path, ILA_ERR_IO, "file is not writable");
	bool is_new = false;
	int err = conn_pragmas(st, opts->sync_normal);
	if (!err && opts->mode == STORE_MODE_ATTACH) {
		/* The first connection chose the journal mode; only learn it. */
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK &&
		    sqlite3_step(s) == SQLITE_ROW) {
			const char *mode = (const char *)sqlite3_column_text(s, 0);
			st->wal = mode && strcmp(mode, "wal") == 0;
		}
		sqlite3_finalize(s);
		return 0;
	}
	if (!err)
		err = conn_check_integrity(st);
	if (!err)
		err = conn_check_ours(st, &is_new);
	if (!err && is_new)
		err = conn_create_bookkeeping(st);
	if (err)
		return setup_fail(msg, msg_size, opts->path, err, "%s", st->errmsg);
	err = migrate(st, msg, msg_size);
	if (err)
		return err;
	err = conn_backfill(st);
	if (err)
		return setup_fail(msg, msg_size, opts->path, err, "%s", st->errmsg);
	conn_enable_wal(st);
	return 0;
}

int store_set_sync(struct store *st, bool full)
{
	return store_exec(st, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

int store_open(const struct store_options *opts, struct store **out, char *msg, size_t msg_size)
{
	*out = NULL;
	msg[0] = '\0';
	if (sqlite3_libversion_number() < SQLITE_MIN_VERSION)
		return setup_fail(msg, msg_size, opts->path, ILA_ERR_INVALID,
				  "SQLite 3.25 or newer is required (found %s)", sqlite3_libversion());
	bool created = false;
	int err = file_prepare(opts, &created, msg, msg_size);
	if (err)
		return err;
	struct store *st = store_alloc(opts->path);
	if (!st) {
		err = setup_fail(msg, msg_size, opts->path, ILA_ERR_NOMEM, "out of memory");
	} else {
		err = conn_setup(st, opts, msg, msg_size);
	}
	if (err) {
		store_close(st);
		if (created)
			unlink(opts->path);
		return err;
	}
	log_debug("store", "Opened %s (%s journal, synchronous %s)", st->path,
		  st->wal ? "WAL" : "rollback", opts->sync_normal ? "NORMAL" : "FULL");
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	for (int i = 0; i < SQL_STMT_COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	if (st->db)
		sqlite3_close(st->db);
	free(st->path);
	free(st);
}
