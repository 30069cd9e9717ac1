/* Opening the queue file: fresh files, files written by ilagent 0.9.0, partially migrated
 * files, refused files (corrupt, not SQLite, foreign, failing migration) and the lock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon_harness.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

#include "core/clock.h"
#include "core/err.h"
#include "store/db.h"
#include "store/queue.h"
#include "store/store_priv.h"

struct fixture {
	char *dir;
	char path[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = test_mkdtemp();
	if (!f->dir)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ilagent.db3", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- raw SQLite access, independent of the code under test ---------------------------- */

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
					 NULL),
			 SQLITE_OK);
	return db;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	char *err = NULL;
	/* Durability of the test's own writes does not matter; fsyncs only slow the suite. */
	assert_int_equal(sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, NULL), SQLITE_OK);
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fail_msg("SQL failed: %s: %s", err ? err : "?", sql);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* Text of the first column of the first row ("<NULL>" for NULL); caller frees. */
static char *raw_text(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	const char *t = (const char *)sqlite3_column_text(s, 0);
	char *copy = strdup(t ? t : "<NULL>");
	sqlite3_finalize(s);
	sqlite3_close(db);
	return copy;
}

/* All rows of a query as "a|b|c\n" lines (NULL as "<NULL>"); caller frees. */
static char *raw_rows(const char *path, const char *sql)
{
	char *rows = db_query_rows(path, sql);
	assert_non_null(rows);
	return rows;
}

static void assert_query(const char *path, const char *sql, const char *expected)
{
	char *got = raw_rows(path, sql);
	assert_string_equal(got, expected);
	free(got);
}

/* ---- files as older versions left them ----------------------------------------------- */

static const char bookkeeping_sql[] =
	"CREATE TABLE IF NOT EXISTS ilagent (key TEXT PRIMARY KEY, val TEXT NOT NULL, "
	"created_at TEXT NOT NULL);";

/* §16.3, verbatim. */
static const char *const mig_sql_090[] = {
	"CREATE TABLE event_items (id TEXT PRIMARY KEY, api_key TEXT NOT NULL, event_type TEXT "
	"NOT NULL, incident_key TEXT NULL, summary TEXT NOT NULL, created_at TEXT NOT NULL, "
	"priority TEXT NULL, images TEXT NULL, links TEXT NULL, custom_details TEXT NULL, "
	"details TEXT NULL);",
	"ALTER TABLE event_items RENAME COLUMN incident_key TO alert_key;"
	"ALTER TABLE event_items ADD COLUMN inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d "
	"%H:%M:%f', 'NOW'));",
	"ALTER TABLE event_items ADD COLUMN event_api_path TEXT NULL;",
	"ALTER TABLE event_items RENAME COLUMN api_key TO integration_key;",
	"CREATE TABLE mqtt_queue (id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT "
	"NULL, inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')));",
};

/* §16.4 mig_6, verbatim. */
static const char mig_6_sql[] =
	"ALTER TABLE event_items ADD COLUMN kind            TEXT    NOT NULL DEFAULT 'event';"
	"ALTER TABLE event_items ADD COLUMN payload         TEXT    NULL;"
	"ALTER TABLE event_items ADD COLUMN source          TEXT    NULL;"
	"ALTER TABLE event_items ADD COLUMN order_key       TEXT    NULL;"
	"ALTER TABLE event_items ADD COLUMN seq             INTEGER NULL;"
	"ALTER TABLE event_items ADD COLUMN accepted_at     INTEGER NULL;"
	"ALTER TABLE event_items ADD COLUMN attempts        INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE event_items ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE event_items ADD COLUMN last_status     INTEGER NULL;"
	"ALTER TABLE event_items ADD COLUMN last_error      TEXT    NULL;";

/* Applies mig_1..mig_<upto> (upto ≤ 6) as the older programs did, with bookkeeping rows. */
static void build_old_file(const char *path, int upto)
{
	raw_exec(path, bookkeeping_sql);
	for (int i = 1; i <= upto; i++) {
		char sql[128];
		raw_exec(path, i <= 5 ? mig_sql_090[i - 1] : mig_6_sql);
		snprintf(sql, sizeof(sql),
			 "INSERT INTO ilagent VALUES ('mig_%d', '1', '2024-05-01 "
			 "08:00:00.000000000 UTC')",
			 i);
		raw_exec(path, sql);
	}
}

/* Rows as ilagent 0.9.0 inserted them (after mig_5). */
static const char rows_090[] =
	"INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
	"created_at, priority, images, links, custom_details, details, inserted_at, "
	"event_api_path) VALUES "
	"('r1', 'il1apiKeyA12345', 'ALERT', '  Disk-Full \t', 'disk full', 'c1', 'HIGH', "
	" '[{\"src\":\"s\"}]', '[{\"href\":\"h\"}]', '{\"a\":1}', 'det1', "
	" '2024-01-01 10:00:02.000', NULL),"
	"('r2', 'il1apiKeyA12345', 'RESOLVE', '', 'empty key', 'c2', NULL, NULL, NULL, NULL, "
	" NULL, '2024-01-01 10:00:01.500', '/v1/events/mqtt/il1apiKeyA12345'),"
	"('r3', 'il1apiKeyB12345', 'ALERT', NULL, 'no key', 'c3', 'LOW', NULL, NULL, NULL, NULL, "
	" NULL, NULL),"
	"('r4', 'il1apiKeyB12345', 'ACCEPT', 'MiXeD', 'mixed', 'c4', NULL, NULL, NULL, NULL, "
	" 'det4', '2024-01-01 10:00:03.250', NULL),"
	"('r5', 'il1apiKeyA12345', 'COMMENT', ' x ', 'same time', 'c5', NULL, NULL, NULL, NULL, "
	" NULL, '2024-01-01 10:00:01.500', NULL)";

/* ---- helpers around the code under test ------------------------------------------------ */

/* synchronous=NORMAL keeps the suite fast; test_fresh_file checks the FULL default. */
static struct store *open_ok(const char *path, enum store_mode mode)
{
	struct store_options o = { .path = path, .mode = mode, .sync_normal = true };
	struct store *st = NULL;
	char msg[STORE_MSG_SIZE];
	int err = store_open(&o, &st, msg, sizeof(msg));
	if (err)
		fail_msg("store_open: %d %s", err, msg);
	assert_non_null(st);
	return st;
}

static int open_fail(const char *path, enum store_mode mode, char *msg, size_t msg_size)
{
	struct store_options o = { .path = path, .mode = mode };
	struct store *st = (struct store *)1;
	int err = store_open(&o, &st, msg, msg_size);
	assert_null(st);
	assert_int_not_equal(err, 0);
	return err;
}

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static void assert_no_side_files(const char *path)
{
	const char *suffix[] = { "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < 3; i++) {
		char p[600];
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		if (exists(p))
			fail_msg("side file left behind: %s", p);
	}
}

/* Opening must fail with the message and leave the file byte-identical. */
static void assert_refused_unchanged(const char *path, enum store_mode mode, int want_err,
				     const char *want_msg)
{
	size_t before_len = 0, after_len = 0;
	char *before = test_read_file(path, &before_len);
	assert_non_null(before);
	char msg[STORE_MSG_SIZE];
	int err = open_fail(path, mode, msg, sizeof(msg));
	assert_int_equal(err, want_err);
	assert_string_equal(msg, want_msg);
	char *after = test_read_file(path, &after_len);
	assert_non_null(after);
	assert_int_equal(after_len, before_len);
	assert_memory_equal(after, before, before_len);
	assert_no_side_files(path);
	free(after);
	free(before);
}

static bool is_db_timestamp(const char *t)
{
	/* YYYY-MM-DD HH:MM:SS.fffffffff UTC */
	const char *shape = "dddd-dd-dd dd:dd:dd.ddddddddd UTC";
	if (strlen(t) != strlen(shape))
		return false;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != shape[i])
			return false;
	}
	return true;
}

static void assert_full_schema(const char *path)
{
	assert_query(path, "SELECT group_concat(name, ',') FROM pragma_table_info('event_items')",
		     "id,integration_key,event_type,alert_key,summary,created_at,priority,images,"
		     "links,custom_details,details,inserted_at,event_api_path,kind,payload,source,"
		     "order_key,seq,accepted_at,attempts,next_attempt_at,last_status,last_error\n");
	assert_query(path, "SELECT group_concat(name, ',') FROM pragma_table_info('dead_letters')",
		     "id,item_id,kind,source,integration_key,event_type,alert_key,summary,details,"
		     "priority,images,links,custom_details,event_api_path,payload,order_key,"
		     "created_at,accepted_at,attempts,reason,last_status,last_error,body_excerpt,"
		     "dead_at\n");
	assert_query(path, "SELECT group_concat(name, ',') FROM pragma_table_info('mqtt_queue')",
		     "id,topic,payload,inserted_at\n");
	assert_query(path,
		     "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT "
		     "NULL ORDER BY name",
		     "dead_letters_dead_at|dead_letters\n"
		     "event_items_due|event_items\n"
		     "event_items_order|event_items\n"
		     "event_items_seq|event_items\n");
	assert_query(path,
		     "SELECT name, \"unique\", partial FROM pragma_index_list('event_items') WHERE "
		     "origin = 'c' ORDER BY name",
		     "event_items_due|0|0\nevent_items_order|0|1\nevent_items_seq|1|0\n");
	assert_query(path,
		     "SELECT group_concat(name, ',') FROM pragma_index_info('event_items_order')",
		     "order_key,seq\n");
	assert_query(path,
		     "SELECT group_concat(name, ',') FROM pragma_index_info('event_items_due')",
		     "next_attempt_at,seq\n");
	assert_query(path, "SELECT key, val FROM ilagent WHERE key LIKE 'mig_%' ORDER BY key",
		     "mig_1|1\nmig_2|1\nmig_3|1\nmig_4|1\nmig_5|1\nmig_6|1\nmig_7|1\nmig_8|1\n"
		     "mig_9|1\n");
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_fresh_file(void **state)
{
	struct fixture *f = *state;
	assert_false(exists(f->path));
	struct store_options o = { .path = f->path, .mode = STORE_MODE_DAEMON };
	struct store *st = NULL;
	char msg[STORE_MSG_SIZE];
	assert_int_equal(store_open(&o, &st, msg, sizeof(msg)), 0);
	assert_true(store_is_wal(st));
	assert_string_equal(store_path(st), f->path);

	/* Connection settings of §16.1. */
	sqlite3 *db = st->db;
	sqlite3_stmt *s;
	const char *checks[][2] = {
		{ "PRAGMA busy_timeout", "5000" },     { "PRAGMA foreign_keys", "0" },
		{ "PRAGMA journal_size_limit", "67108864" }, { "PRAGMA synchronous", "2" },
		{ "PRAGMA journal_mode", "wal" },
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		assert_int_equal(sqlite3_prepare_v2(db, checks[i][0], -1, &s, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0), checks[i][1]);
		sqlite3_finalize(s);
	}
	store_close(st);

	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_full_schema(f->path);
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "0\n");
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM ilagent"), 10);
	char *ts = raw_text(f->path, "SELECT created_at FROM ilagent WHERE key = 'mig_9'");
	assert_true(is_db_timestamp(ts));
	free(ts);
	assert_query(f->path, "PRAGMA journal_mode", "wal\n");

	/* A second open changes nothing. */
	st = open_ok(f->path, STORE_MODE_QUEUE);
	store_close(st);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM ilagent"), 10);
}

static void test_sync_normal(void **state)
{
	struct fixture *f = *state;
	struct store_options o = { .path = f->path, .mode = STORE_MODE_DAEMON, .sync_normal = true };
	struct store *st = NULL;
	char msg[STORE_MSG_SIZE];
	assert_int_equal(store_open(&o, &st, msg, sizeof(msg)), 0);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(st->db, "PRAGMA synchronous", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 1);
	sqlite3_finalize(s);
	store_close(st);
}

static void test_existing_file_keeps_mode(void **state)
{
	struct fixture *f = *state;
	int fd = open(f->path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	/* An empty file is a new database. */
	struct store *st = open_ok(f->path, STORE_MODE_DAEMON);
	store_close(st);
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	assert_full_schema(f->path);
}

static void test_empty_sqlite_database_is_new(void **state)
{
	struct fixture *f = *state;
	raw_exec(f->path, "PRAGMA user_version = 7");
	struct store *st = open_ok(f->path, STORE_MODE_QUEUE);
	store_close(st);
	assert_full_schema(f->path);
}

static void test_queue_mode_needs_file(void **state)
{
	struct fixture *f = *state;
	char msg[STORE_MSG_SIZE], want[600];
	int err = open_fail(f->path, STORE_MODE_QUEUE, msg, sizeof(msg));
	assert_int_equal(err, ILA_ERR_NOTFOUND);
	snprintf(want, sizeof(want), "database file not found: %s", f->path);
	assert_string_equal(msg, want);
	assert_false(exists(f->path));
}

static void test_file_of_090(void **state)
{
	struct fixture *f = *state;
	build_old_file(f->path, 5);
	raw_exec(f->path, rows_090);
	int64_t before = clock_now_ms();
	store_close(open_ok(f->path, STORE_MODE_QUEUE));
	int64_t after = clock_now_ms();

	assert_full_schema(f->path);
	/* Old columns untouched except the trimmed alert key. */
	assert_query(f->path,
		     "SELECT id, integration_key, event_type, alert_key, summary, created_at, "
		     "priority, images, links, custom_details, details, inserted_at, event_api_path "
		     "FROM event_items ORDER BY id",
		     "r1|il1apiKeyA12345|ALERT|Disk-Full|disk full|c1|HIGH|[{\"src\":\"s\"}]|"
		     "[{\"href\":\"h\"}]|{\"a\":1}|det1|2024-01-01 10:00:02.000|<NULL>\n"
		     "r2|il1apiKeyA12345|RESOLVE|<NULL>|empty key|c2|<NULL>|<NULL>|<NULL>|<NULL>|"
		     "<NULL>|2024-01-01 10:00:01.500|/v1/events/mqtt/il1apiKeyA12345\n"
		     "r3|il1apiKeyB12345|ALERT|<NULL>|no key|c3|LOW|<NULL>|<NULL>|<NULL>|<NULL>|"
		     "<NULL>|<NULL>\n"
		     "r4|il1apiKeyB12345|ACCEPT|MiXeD|mixed|c4|<NULL>|<NULL>|<NULL>|<NULL>|det4|"
		     "2024-01-01 10:00:03.250|<NULL>\n"
		     "r5|il1apiKeyA12345|COMMENT|x|same time|c5|<NULL>|<NULL>|<NULL>|<NULL>|<NULL>|"
		     "2024-01-01 10:00:01.500|<NULL>\n");
	/* §16.5: seq in inserted_at order (SQL order: NULL first), then rowid. */
	assert_query(f->path,
		     "SELECT id, kind, replace(order_key, char(31), '/'), seq, source, attempts, "
		     "next_attempt_at, last_status, last_error FROM event_items ORDER BY seq",
		     "r3|event|<NULL>|1|<NULL>|0|0|<NULL>|<NULL>\n"
		     "r2|event|<NULL>|2|<NULL>|0|0|<NULL>|<NULL>\n"
		     "r5|event|il1apiKeyA12345/x|3|<NULL>|0|0|<NULL>|<NULL>\n"
		     "r1|event|il1apiKeyA12345/disk-full|4|<NULL>|0|0|<NULL>|<NULL>\n"
		     "r4|event|il1apiKeyB12345/mixed|5|<NULL>|0|0|<NULL>|<NULL>\n");
	assert_query(f->path,
		     "SELECT id, accepted_at FROM event_items WHERE id <> 'r3' ORDER BY id",
		     "r1|1704103202000\nr2|1704103201500\nr4|1704103203250\nr5|1704103201500\n");
	int64_t r3 = raw_int(f->path, "SELECT accepted_at FROM event_items WHERE id = 'r3'");
	assert_true(r3 >= before && r3 <= after);
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "5\n");
	assert_query(f->path, "PRAGMA journal_mode", "wal\n");
}

static void test_unparsable_inserted_at(void **state)
{
	struct fixture *f = *state;
	build_old_file(f->path, 5);
	raw_exec(f->path, "INSERT INTO event_items (id, integration_key, event_type, summary, "
			  "created_at, inserted_at) VALUES ('bad', 'k', 'ALERT', 's', 'c', 'soon')");
	int64_t before = clock_now_ms();
	store_close(open_ok(f->path, STORE_MODE_DAEMON));
	int64_t got = raw_int(f->path, "SELECT accepted_at FROM event_items WHERE id = 'bad'");
	assert_true(got >= before && got <= clock_now_ms());
}

static void test_pre_mig_2_rows_rebuilt(void **state)
{
	struct fixture *f = *state;
	build_old_file(f->path, 1);
	raw_exec(f->path,
		 "INSERT INTO event_items VALUES ('a', 'il1keyAAAAAAAA', 'ALERT', ' Key1 ', 'sum a', "
		 "'ca', 'HIGH', '[]', '[]', '{}', 'da');"
		 "INSERT INTO event_items VALUES ('b', 'il1keyBBBBBBBB', 'RESOLVE', NULL, 'sum b', "
		 "'cb', NULL, NULL, NULL, NULL, NULL);");
	store_close(open_ok(f->path, STORE_MODE_DAEMON));
	assert_full_schema(f->path);
	assert_query(f->path,
		     "SELECT id, integration_key, event_type, alert_key, summary, created_at, "
		     "priority, images, links, custom_details, details, event_api_path, seq, "
		     "replace(order_key, char(31), '/'), inserted_at IS NOT NULL FROM event_items "
		     "ORDER BY id",
		     "a|il1keyAAAAAAAA|ALERT|Key1|sum a|ca|HIGH|[]|[]|{}|da|<NULL>|1|"
		     "il1keyAAAAAAAA/key1|1\n"
		     "b|il1keyBBBBBBBB|RESOLVE|<NULL>|sum b|cb|<NULL>|<NULL>|<NULL>|<NULL>|<NULL>|"
		     "<NULL>|2|<NULL>|1\n");
	/* inserted_at keeps its column default for rows added later. */
	raw_exec(f->path, "INSERT INTO event_items (id, integration_key, event_type, summary, "
			  "created_at) VALUES ('c', 'k', 'ALERT', 's', 'c')");
	assert_int_equal(
		raw_int(f->path, "SELECT inserted_at IS NOT NULL FROM event_items WHERE id = 'c'"),
		1);
}

static void test_half_migrated_file_finishes(void **state)
{
	struct fixture *f = *state;
	build_old_file(f->path, 6);
	raw_exec(f->path, "INSERT INTO event_items (id, integration_key, event_type, alert_key, "
			  "summary, created_at, inserted_at) VALUES "
			  "('h1', 'ik', 'ALERT', 'AK', 's1', 'c', '2024-02-01 00:00:00.000'),"
			  "('h2', 'ik', 'ALERT', NULL, 's2', 'c', '2024-01-01 00:00:00.000')");
	store_close(open_ok(f->path, STORE_MODE_QUEUE));
	assert_full_schema(f->path);
	assert_query(f->path,
		     "SELECT id, seq, alert_key, replace(order_key, char(31), '/'), accepted_at "
		     "FROM event_items ORDER BY seq",
		     "h2|1|<NULL>|<NULL>|1704067200000\nh1|2|AK|ik/ak|1706745600000\n");
	/* The migrations already recorded keep their original rows. */
	assert_query(f->path, "SELECT created_at FROM ilagent WHERE key = 'mig_6'",
		     "2024-05-01 08:00:00.000000000 UTC\n");
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "2\n");
}

/* A file at mig_7 whose mig_8 cannot run: refused, byte for byte unchanged. */
static void test_failing_migration_leaves_file_unchanged(void **state)
{
	struct fixture *f = *state;
	build_old_file(f->path, 6);
	raw_exec(f->path,
		 "INSERT INTO ilagent VALUES ('mig_7', '1', '2024-05-01 08:00:00.000000000 UTC');"
		 "INSERT INTO ilagent VALUES ('seq_hwm', '0', '2024-05-01 08:00:00.000000000 UTC');"
		 "CREATE TABLE dead_letters (x TEXT);");
	assert_refused_unchanged(f->path, STORE_MODE_DAEMON, ILA_ERR_STORE,
				 "Database migration failed (mig_8): table dead_letters already "
				 "exists");
	assert_refused_unchanged(f->path, STORE_MODE_QUEUE, ILA_ERR_STORE,
				 "Database migration failed (mig_8): table dead_letters already "
				 "exists");
}

/* Earlier migrations stay applied when a later one fails (each is its own transaction). */
static void test_failing_migration_keeps_earlier_ones(void **state)
{
	struct fixture *f = *state;
	build_old_file(f->path, 5);
	raw_exec(f->path, rows_090);
	raw_exec(f->path, "CREATE INDEX event_items_due ON event_items(id)");
	char msg[STORE_MSG_SIZE];
	assert_int_equal(open_fail(f->path, STORE_MODE_DAEMON, msg, sizeof(msg)), ILA_ERR_STORE);
	assert_string_equal(msg,
			    "Database migration failed (mig_9): index event_items_due already exists");
	assert_query(f->path, "SELECT group_concat(key, ',') FROM ilagent WHERE key LIKE 'mig_%'",
		     "mig_1,mig_2,mig_3,mig_4,mig_5,mig_6,mig_7,mig_8\n");
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM event_items WHERE seq IS NULL"), 0);
	assert_no_side_files(f->path);
}

static void make_store_with_rows(const char *path)
{
	struct store *st = open_ok(path, STORE_MODE_DAEMON);
	assert_int_equal(store_begin(st), 0);
	char summary[600];
	memset(summary, 's', sizeof(summary) - 1);
	summary[sizeof(summary) - 1] = '\0';
	for (int i = 0; i < 60; i++) {
		struct store_new_item it = { .kind = STORE_KIND_EVENT,
					     .integration_key = "il1apiKey123456",
					     .event_type = "ALERT",
					     .summary = summary,
					     .accepted_at = 1000 + i };
		assert_int_equal(store_item_insert(st, &it, NULL, NULL), 0);
	}
	assert_int_equal(store_commit(st), 0);
	store_close(st);
}

static void test_corrupt_file_refused(void **state)
{
	struct fixture *f = *state;
	make_store_with_rows(f->path);
	size_t len = 0;
	char *data = test_read_file(f->path, &len);
	assert_non_null(data);
	assert_true(len > 4 * 4096);
	/* Garbage over the pages after the schema page. */
	memset(data + 4096 + 16, 0xA5, len - 4096 - 16);
	assert_int_equal(test_write_file(f->path, data, len), 0);
	free(data);
	char want[700];
	snprintf(want, sizeof(want),
		 "Failed to setup SQLite connection: %s: database disk image is malformed",
		 f->path);
	for (int mode = STORE_MODE_DAEMON; mode <= STORE_MODE_QUEUE; mode++) {
		size_t before_len;
		char *before = test_read_file(f->path, &before_len);
		char msg[STORE_MSG_SIZE];
		assert_int_equal(open_fail(f->path, (enum store_mode)mode, msg, sizeof(msg)),
				 ILA_ERR_CORRUPT);
		if (strncmp(msg, want, strlen(want)) != 0)
			fail_msg("unexpected message: %s", msg);
		size_t after_len;
		char *after = test_read_file(f->path, &after_len);
		assert_int_equal(after_len, before_len);
		assert_memory_equal(after, before, before_len);
		assert_no_side_files(f->path);
		free(after);
		free(before);
	}
}

static void test_damaged_header_refused(void **state)
{
	struct fixture *f = *state;
	make_store_with_rows(f->path);
	size_t len = 0;
	char *data = test_read_file(f->path, &len);
	/* Page size field of the header: 3 is not a power of two. */
	data[16] = 0;
	data[17] = 3;
	assert_int_equal(test_write_file(f->path, data, len), 0);
	free(data);
	char want[700];
	snprintf(want, sizeof(want), "Failed to setup SQLite connection: %s: file is not a database",
		 f->path);
	assert_refused_unchanged(f->path, STORE_MODE_DAEMON, ILA_ERR_CORRUPT, want);
}

static void test_not_sqlite_refused(void **state)
{
	struct fixture *f = *state;
	char text[8192];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (char)('a' + i % 26);
	assert_int_equal(test_write_file(f->path, text, sizeof(text)), 0);
	char want[700];
	snprintf(want, sizeof(want), "Failed to setup SQLite connection: %s: file is not a database",
		 f->path);
	assert_refused_unchanged(f->path, STORE_MODE_DAEMON, ILA_ERR_CORRUPT, want);
	assert_refused_unchanged(f->path, STORE_MODE_QUEUE, ILA_ERR_CORRUPT, want);
}

static void test_foreign_database_refused(void **state)
{
	struct fixture *f = *state;
	raw_exec(f->path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
			  "INSERT INTO users (name) VALUES ('alice'), ('bob');");
	char want[700];
	snprintf(want, sizeof(want), "Failed to setup SQLite connection: %s: not an ilagent database",
		 f->path);
	assert_refused_unchanged(f->path, STORE_MODE_DAEMON, ILA_ERR_INVALID, want);
	assert_refused_unchanged(f->path, STORE_MODE_QUEUE, ILA_ERR_INVALID, want);

	/* The same in WAL mode (the header differs, the verdict does not). */
	raw_exec(f->path, "PRAGMA journal_mode=WAL");
	assert_refused_unchanged(f->path, STORE_MODE_DAEMON, ILA_ERR_INVALID, want);
}

static void test_created_file_removed_on_failure(void **state)
{
	struct fixture *f = *state;
	char path[600];
	snprintf(path, sizeof(path), "%s/no/such/dir.db3", f->dir);
	char msg[STORE_MSG_SIZE], want[800];
	assert_int_equal(open_fail(path, STORE_MODE_DAEMON, msg, sizeof(msg)), ILA_ERR_IO);
	snprintf(want, sizeof(want),
		 "Failed to setup SQLite connection: %s: cannot create file: No such file or "
		 "directory",
		 path);
	assert_string_equal(msg, want);
}

static void test_seq_null_rows_backfilled_on_open(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path, STORE_MODE_DAEMON);
	struct store_new_item it = { .kind = STORE_KIND_EVENT, .integration_key = "ik",
				     .event_type = "ALERT", .summary = "new",
				     .accepted_at = 42 };
	int64_t seq = 0;
	assert_int_equal(store_item_insert(st, &it, NULL, &seq), 0);
	assert_int_equal(seq, 1);
	store_close(st);

	/* An older program writes after the upgrade: only its own columns. */
	raw_exec(f->path,
		 "INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
		 "created_at, inserted_at) VALUES "
		 "('late2', 'ik', 'RESOLVE', ' Ab ', 's', 'c', '2024-03-01 00:00:01.000'),"
		 "('late1', 'ik', 'ALERT', ' Ab ', 's', 'c', '2024-03-01 00:00:00.000')");
	st = open_ok(f->path, STORE_MODE_QUEUE);
	store_close(st);
	assert_query(f->path,
		     "SELECT id, seq, kind, alert_key, replace(order_key, char(31), '/'), "
		     "accepted_at, attempts, next_attempt_at FROM event_items WHERE seq > 1 "
		     "ORDER BY seq",
		     "late1|2|event|Ab|ik/ab|1709251200000|0|0\n"
		     "late2|3|event|Ab|ik/ab|1709251201000|0|0\n");
	assert_query(f->path, "SELECT summary, seq, accepted_at FROM event_items WHERE seq = 1",
		     "new|1|42\n");
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "3\n");
}

static void test_lock(void **state)
{
	struct fixture *f = *state;
	struct store_lock *a = NULL, *b = NULL;
	char msg[STORE_MSG_SIZE], want[700];
	assert_int_equal(store_lock_acquire(f->path, &a, msg, sizeof(msg)), 0);
	assert_non_null(a);
	char lock_path[600];
	snprintf(lock_path, sizeof(lock_path), "%s.lock", f->path);
	struct stat sb;
	assert_int_equal(stat(lock_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	assert_int_equal(store_lock_acquire(f->path, &b, msg, sizeof(msg)), ILA_ERR_BUSY);
	assert_null(b);
	snprintf(want, sizeof(want),
		 "Failed to setup SQLite connection: %s is in use by another ilagent daemon",
		 f->path);
	assert_string_equal(msg, want);

	/* The queue command does not take the lock: opening works while it is held. */
	store_close(open_ok(f->path, STORE_MODE_DAEMON));

	store_lock_release(a);
	assert_int_equal(store_lock_acquire(f->path, &b, msg, sizeof(msg)), 0);
	store_lock_release(b);
	store_lock_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_normal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_file_keeps_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_sqlite_database_is_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_mode_needs_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_of_090, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unparsable_inserted_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pre_mig_2_rows_rebuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_migrated_file_finishes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_migration_leaves_file_unchanged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failing_migration_keeps_earlier_ones, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_header_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_sqlite_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_database_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_created_file_removed_on_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_seq_null_rows_backfilled_on_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
