/* Queue operations: inserting batches with seq allocation, delete, reschedule, dead letters
 * (move, eviction, excerpt), re-queue, purge, stats and the per-key head. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon_harness.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#include "core/err.h"
#include "store/db.h"
#include "store/queue.h"
#include "store/store_priv.h"

struct fixture {
	char *dir;
	char path[512];
	struct store *st;
};

static struct store *open_store(const char *path)
{
	/* synchronous=NORMAL: fsyncs would only slow the suite (durability is not tested). */
	struct store_options o = { .path = path, .mode = STORE_MODE_DAEMON, .sync_normal = true };
	struct store *st = NULL;
	char msg[STORE_MSG_SIZE];
	int err = store_open(&o, &st, msg, sizeof(msg));
	if (err)
		fail_msg("store_open: %s", msg);
	return st;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = test_mkdtemp();
	if (!f->dir)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/q.db3", f->dir);
	f->st = open_store(f->path);
	*state = f;
	return f->st ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->st);
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- raw reads through a second connection ------------------------------------------- */

static char *raw_rows(const char *path, const char *sql)
{
	char *rows = db_query_rows(path, sql);
	assert_non_null(rows);
	return rows;
}

static void assert_query(const char *path, const char *sql, const char *expected)
{
	char *got = raw_rows(path, sql);
	if (strcmp(got, expected) != 0)
		fail_msg("query %s\n got:\n%s\n want:\n%s", sql, got, expected);
	free(got);
}

static void raw_exec(const char *path, const char *sql)
{
	assert_int_equal(db_exec(path, sql), 0);
}

static bool is_uuid_v4(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static struct store_new_item event_item(const char *summary, const char *order_key)
{
	struct store_new_item it = {
		.kind = STORE_KIND_EVENT, .integration_key = "il1apiKey123456",
		.event_type = "ALERT", .summary = summary, .source = "http",
		.order_key = order_key, .accepted_at = 1700000000000,
	};
	return it;
}

static void insert_one(struct store *st, const struct store_new_item *it, char id[UUID_STR_LEN],
		       int64_t *seq)
{
	assert_int_equal(store_item_insert(st, it, id, seq), 0);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_insert_batch_seq_and_contents(void **state)
{
	struct fixture *f = *state;
	struct store_new_item full = {
		.kind = STORE_KIND_EVENT, .integration_key = "il1apiKey123456",
		.event_type = "ALERT", .alert_key = "Disk", .summary = "disk full",
		.details = "det", .priority = "HIGH", .images = "[{\"src\":\"s\"}]",
		.links = "[{\"href\":\"h\"}]", .custom_details = "{\"a\":1}",
		.event_api_path = "/v1/events/mqtt/il1apiKey123456", .source = "mqtt",
		.order_key = "il1apiKey123456\x1f" "disk", .accepted_at = 1700000000123,
	};
	struct store_new_item beat = { .kind = STORE_KIND_HEARTBEAT, .integration_key = "hbkey",
				       .event_type = "HEARTBEAT", .summary = "",
				       .payload = "{\"integrationKey\":\"hbkey\"}",
				       .source = "kafka", .accepted_at = 1700000000124 };
	struct store_new_item policy = { .kind = STORE_KIND_POLICY, .integration_key = "",
					 .event_type = "POLICY", .summary = "",
					 .payload = "{\"email\":\"a@b.c\",\"routingKey\":\"rk\","
						    "\"shift\":1}",
					 .source = "mqtt", .order_key = "policy\x1frk",
					 .accepted_at = 1700000000125 };
	char ids[3][UUID_STR_LEN];
	int64_t seqs[3];
	assert_int_equal(store_begin(f->st), 0);
	assert_true(store_in_transaction(f->st));
	insert_one(f->st, &full, ids[0], &seqs[0]);
	insert_one(f->st, &beat, ids[1], &seqs[1]);
	insert_one(f->st, &policy, ids[2], &seqs[2]);
	/* Nothing is visible to others before the commit. */
	assert_query(f->path, "SELECT count(*) FROM event_items", "0\n");
	assert_int_equal(store_commit(f->st), 0);
	assert_false(store_in_transaction(f->st));

	for (int i = 0; i < 3; i++) {
		assert_int_equal(seqs[i], i + 1);
		assert_true(is_uuid_v4(ids[i]));
	}
	assert_string_not_equal(ids[0], ids[1]);
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "3\n");
	assert_query(f->path,
		     "SELECT seq, kind, integration_key, event_type, alert_key, summary, details, "
		     "priority, images, links, custom_details, event_api_path, payload, source, "
		     "replace(order_key, char(31), '/'), accepted_at, attempts, next_attempt_at, "
		     "last_status, last_error, inserted_at IS NOT NULL FROM event_items ORDER BY seq",
		     "1|event|il1apiKey123456|ALERT|Disk|disk full|det|HIGH|[{\"src\":\"s\"}]|"
		     "[{\"href\":\"h\"}]|{\"a\":1}|/v1/events/mqtt/il1apiKey123456|<NULL>|mqtt|"
		     "il1apiKey123456/disk|1700000000123|0|0|<NULL>|<NULL>|1\n"
		     "2|heartbeat|hbkey|HEARTBEAT|<NULL>||<NULL>|<NULL>|<NULL>|<NULL>|<NULL>|<NULL>|"
		     "{\"integrationKey\":\"hbkey\"}|kafka|<NULL>|1700000000124|0|0|<NULL>|<NULL>|1\n"
		     "3|policy||POLICY|<NULL>||<NULL>|<NULL>|<NULL>|<NULL>|<NULL>|<NULL>|"
		     "{\"email\":\"a@b.c\",\"routingKey\":\"rk\",\"shift\":1}|mqtt|policy/rk|"
		     "1700000000125|0|0|<NULL>|<NULL>|1\n");
	assert_query(f->path,
		     "SELECT count(*) FROM event_items WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-"
		     "[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9]"
		     "[0-9][0-9][0-9][0-9] UTC'",
		     "3\n");

	struct store_item got;
	assert_int_equal(store_item_get(f->st, ids[0], &got), 0);
	assert_string_equal(got.id, ids[0]);
	assert_int_equal(got.kind, STORE_KIND_EVENT);
	assert_string_equal(got.custom_details, "{\"a\":1}");
	assert_string_equal(got.order_key, "il1apiKey123456\x1f" "disk");
	assert_null(got.last_error);
	assert_int_equal(got.last_status, 0);
	store_item_clear(&got);
	assert_int_equal(store_item_get(f->st, "missing", &got), ILA_ERR_NOTFOUND);

	/* The sequence continues across a reopen. */
	store_close(f->st);
	f->st = open_store(f->path);
	struct store_new_item ev = event_item("after reopen", NULL);
	int64_t seq;
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 4);
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "4\n");
}

static void test_rollback_discards_batch(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("kept", NULL);
	int64_t seq;
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 1);

	assert_int_equal(store_begin(f->st), 0);
	insert_one(f->st, &ev, NULL, &seq);
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 3);
	store_rollback(f->st);
	assert_false(store_in_transaction(f->st));
	assert_query(f->path, "SELECT count(*), max(seq) FROM event_items", "1|1\n");
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "1\n");

	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 2);
	/* A second begin inside a transaction is a caller error. */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_begin(f->st), ILA_ERR_INVALID);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_commit(f->st), ILA_ERR_INVALID);
}

/* A stale high-water mark (a file copied back, a manual edit) never yields a duplicate. */
static void test_seq_never_below_existing_rows(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("x", NULL);
	int64_t seq;
	insert_one(f->st, &ev, NULL, &seq);
	insert_one(f->st, &ev, NULL, &seq);
	raw_exec(f->path, "UPDATE ilagent SET val = '0' WHERE key = 'seq_hwm'");
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 3);
	/* Another writer (e.g. `queue retry`) advancing the mark between transactions. */
	raw_exec(f->path, "UPDATE ilagent SET val = '100' WHERE key = 'seq_hwm'");
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 101);
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("x", NULL);
	char a[UUID_STR_LEN], b[UUID_STR_LEN];
	insert_one(f->st, &ev, a, NULL);
	insert_one(f->st, &ev, b, NULL);
	assert_int_equal(store_item_delete(f->st, a), 0);
	assert_int_equal(store_item_delete(f->st, a), 0);
	assert_int_equal(store_item_delete(f->st, "no-such-id"), 0);
	int64_t n = -1;
	assert_int_equal(store_items_count(f->st, &n), 0);
	assert_int_equal(n, 1);
	struct store_item got;
	assert_int_equal(store_item_get(f->st, b, &got), 0);
	store_item_clear(&got);
}

static void test_reschedule(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("x", NULL);
	char id[UUID_STR_LEN];
	insert_one(f->st, &ev, id, NULL);
	struct store_retry r = { .attempts = 3, .next_attempt_at = 1700000005000,
				 .last_status = 503, .last_error = "HTTP 503: busy" };
	assert_int_equal(store_item_reschedule(f->st, id, &r), 0);
	assert_query(f->path,
		     "SELECT attempts, next_attempt_at, last_status, last_error FROM event_items",
		     "3|1700000005000|503|HTTP 503: busy\n");
	struct store_retry t = { .attempts = 4, .next_attempt_at = 1700000009000,
				 .last_status = 0, .last_error = "timeout" };
	assert_int_equal(store_item_reschedule(f->st, id, &t), 0);
	assert_query(f->path,
		     "SELECT attempts, next_attempt_at, last_status, last_error FROM event_items",
		     "4|1700000009000|<NULL>|timeout\n");
	assert_int_equal(store_item_reschedule(f->st, "gone", &t), ILA_ERR_NOTFOUND);
}

static struct store_dead_info dead_info(const char *body, size_t len)
{
	struct store_dead_info d = { .reason = STORE_DEAD_PERMANENT, .attempts = 1,
				     .last_status = 400, .last_error = "HTTP 400",
				     .body = body, .body_len = len, .dead_at = 1700000100000 };
	return d;
}

static void test_dead_move(void **state)
{
	struct fixture *f = *state;
	struct store_new_item full = {
		.kind = STORE_KIND_EVENT, .integration_key = "il1apiKey123456",
		.event_type = "ALERT", .alert_key = "Disk", .summary = "disk full",
		.details = "det", .priority = "LOW", .images = "[]", .links = "[]",
		.custom_details = "{}", .event_api_path = "/v1/events/kafka/il1apiKey123456",
		.source = "kafka", .order_key = "o", .accepted_at = 1700000000000,
	};
	char id[UUID_STR_LEN];
	insert_one(f->st, &full, id, NULL);
	static const char body[] = "{\"error\":\"bad\xff\xfe\"}";
	struct store_dead_info d = dead_info(body, sizeof(body) - 1);
	int64_t evicted = -1;
	assert_int_equal(store_dead_move(f->st, id, &d, 100000, &evicted), 0);
	assert_int_equal(evicted, 0);
	assert_query(f->path, "SELECT count(*) FROM event_items", "0\n");
	char want[2048];
	snprintf(want, sizeof(want),
		 "1|%s|event|kafka|il1apiKey123456|ALERT|Disk|disk full|det|LOW|[]|[]|{}|"
		 "/v1/events/kafka/il1apiKey123456|<NULL>|o|1700000000000|1|permanent|400|"
		 "HTTP 400|{\"error\":\"bad\xef\xbf\xbd\xef\xbf\xbd\"}|1700000100000|1\n",
		 id);
	assert_query(f->path,
		     "SELECT id, item_id, kind, source, integration_key, event_type, alert_key, "
		     "summary, details, priority, images, links, custom_details, event_api_path, "
		     "payload, order_key, accepted_at, attempts, reason, last_status, last_error, "
		     "body_excerpt, dead_at, created_at LIKE '% UTC' FROM dead_letters",
		     want);

	/* Unknown item: nothing happens. */
	assert_int_equal(store_dead_move(f->st, id, &d, 0, &evicted), ILA_ERR_NOTFOUND);
	assert_query(f->path, "SELECT count(*) FROM dead_letters", "1\n");

	/* Exhausted transport failure without a body. */
	insert_one(f->st, &full, id, NULL);
	struct store_dead_info e = { .reason = STORE_DEAD_EXHAUSTED, .attempts = 100,
				     .last_status = 0, .last_error = "connection refused",
				     .dead_at = 1700000200000 };
	assert_int_equal(store_dead_move(f->st, id, &e, 0, NULL), 0);
	assert_query(f->path,
		     "SELECT reason, attempts, last_status, last_error, body_excerpt FROM "
		     "dead_letters WHERE id = 2",
		     "exhausted|100|<NULL>|connection refused|<NULL>\n");
}

static void test_dead_excerpt_limit(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	struct store_new_item ev = event_item("x", NULL);
	/* 1023 ASCII bytes then a two-byte character: it does not fit and is not split. */
	char body[2000];
	memset(body, 'a', 1023);
	memcpy(body + 1023, "\xc3\xa9", 2);
	memset(body + 1025, 'b', sizeof(body) - 1025);
	insert_one(f->st, &ev, id, NULL);
	struct store_dead_info d = dead_info(body, sizeof(body));
	assert_int_equal(store_dead_move(f->st, id, &d, 0, NULL), 0);
	assert_query(f->path, "SELECT length(CAST(body_excerpt AS BLOB)) FROM dead_letters",
		     "1023\n");
	/* Long ASCII bodies keep exactly 1024 bytes. */
	memset(body, 'c', sizeof(body));
	insert_one(f->st, &ev, id, NULL);
	assert_int_equal(store_dead_move(f->st, id, &d, 0, NULL), 0);
	assert_query(f->path,
		     "SELECT length(CAST(body_excerpt AS BLOB)), substr(body_excerpt, 1, 3) FROM "
		     "dead_letters WHERE id = 2",
		     "1024|ccc\n");
}

static void test_dead_eviction(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("x", NULL);
	int64_t expected[] = { 0, 0, 1, 1 };
	assert_int_equal(store_begin(f->st), 0);
	for (int i = 0; i < 4; i++) {
		char id[UUID_STR_LEN];
		insert_one(f->st, &ev, id, NULL);
		struct store_dead_info d = dead_info(NULL, 0);
		int64_t evicted = -1;
		assert_int_equal(store_dead_move(f->st, id, &d, 2, &evicted), 0);
		assert_int_equal(evicted, expected[i]);
	}
	assert_int_equal(store_commit(f->st), 0);
	assert_query(f->path, "SELECT group_concat(id, ',') FROM dead_letters", "3,4\n");
	/* A smaller limit later evicts several at once; 0 means unlimited. */
	char id[UUID_STR_LEN];
	insert_one(f->st, &ev, id, NULL);
	struct store_dead_info d = dead_info(NULL, 0);
	int64_t evicted = -1;
	assert_int_equal(store_dead_move(f->st, id, &d, 1, &evicted), 0);
	assert_int_equal(evicted, 2);
	assert_query(f->path, "SELECT group_concat(id, ',') FROM dead_letters", "5\n");
	insert_one(f->st, &ev, id, NULL);
	assert_int_equal(store_dead_move(f->st, id, &d, 0, &evicted), 0);
	assert_int_equal(evicted, 0);
	assert_query(f->path, "SELECT count(*) FROM dead_letters", "2\n");
}

/* Moves a fresh item of the given kind to dead letters; returns the dead-letter id. */
static int64_t make_dead(struct fixture *f, const struct store_new_item *it, char id[UUID_STR_LEN])
{
	insert_one(f->st, it, id, NULL);
	struct store_dead_info d = dead_info("nope", 4);
	assert_int_equal(store_dead_move(f->st, id, &d, 0, NULL), 0);
	struct store_dead_list l;
	assert_int_equal(store_dead_page(f->st, 0, 1, &l), 0);
	assert_int_equal(l.count, 1);
	int64_t dead_id = l.rows[0].id;
	assert_string_equal(l.rows[0].item_id, id);
	store_dead_list_free(&l);
	return dead_id;
}

static void test_requeue_one(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("again", "k\x1f" "a");
	ev.alert_key = "A";
	ev.details = "d";
	char id[UUID_STR_LEN], new_id[UUID_STR_LEN];
	int64_t dead_id = make_dead(f, &ev, id);
	raw_exec(f->path, "UPDATE ilagent SET val = '41' WHERE key = 'seq_hwm'");

	assert_int_equal(store_dead_requeue(f->st, dead_id, 1800000000000, new_id), 0);
	assert_string_equal(new_id, id);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%s|42|event|il1apiKey123456|ALERT|A|again|d|http|k/a|1700000000000|0|0|<NULL>|"
		 "<NULL>\n",
		 id);
	assert_query(f->path,
		     "SELECT id, seq, kind, integration_key, event_type, alert_key, summary, "
		     "details, source, replace(order_key, char(31), '/'), accepted_at, attempts, "
		     "next_attempt_at, last_status, last_error FROM event_items",
		     want);
	assert_query(f->path, "SELECT count(*) FROM dead_letters", "0\n");
	assert_query(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'", "42\n");
	assert_int_equal(store_dead_requeue(f->st, dead_id, 0, NULL), ILA_ERR_NOTFOUND);
}

static void test_requeue_fresh_id_when_taken(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("dup", NULL);
	char id[UUID_STR_LEN], new_id[UUID_STR_LEN];
	int64_t dead_id = make_dead(f, &ev, id);
	/* The same id is queued again meanwhile. */
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO event_items (id, integration_key, event_type, summary, created_at, "
		 "seq, accepted_at) VALUES ('%s', 'k', 'ALERT', 'other', 'c', 77, 1)",
		 id);
	raw_exec(f->path, sql);
	assert_int_equal(store_dead_requeue(f->st, dead_id, 0, new_id), 0);
	assert_string_not_equal(new_id, id);
	assert_true(is_uuid_v4(new_id));
	snprintf(sql, sizeof(sql), "SELECT summary, seq FROM event_items WHERE id = '%s'", new_id);
	assert_query(f->path, sql, "dup|78\n");
}

static void test_requeue_heartbeat_gets_fresh_time(void **state)
{
	struct fixture *f = *state;
	struct store_new_item beat = { .kind = STORE_KIND_HEARTBEAT, .integration_key = "hb",
				       .event_type = "HEARTBEAT", .summary = "",
				       .payload = "{\"integrationKey\":\"hb\"}", .source = "mqtt",
				       .accepted_at = 1000 };
	char id[UUID_STR_LEN];
	int64_t dead_id = make_dead(f, &beat, id);
	assert_int_equal(store_dead_requeue(f->st, dead_id, 1800000000000, NULL), 0);
	assert_query(f->path, "SELECT kind, accepted_at, payload FROM event_items",
		     "heartbeat|1800000000000|{\"integrationKey\":\"hb\"}\n");
}

static void test_requeue_all_and_purge(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	const char *names[] = { "first", "second", "third" };
	for (int i = 0; i < 3; i++) {
		struct store_new_item ev = event_item(names[i], NULL);
		make_dead(f, &ev, id);
	}
	int64_t count = -1;
	assert_int_equal(store_dead_requeue_all(f->st, 0, &count), 0);
	assert_int_equal(count, 3);
	/* Oldest dead letter first, at the tail of the queue. */
	assert_query(f->path, "SELECT summary, seq FROM event_items ORDER BY seq",
		     "first|4\nsecond|5\nthird|6\n");
	assert_int_equal(store_dead_requeue_all(f->st, 0, &count), 0);
	assert_int_equal(count, 0);

	/* More than one round of ids. */
	struct store_new_item ev = event_item("bulk", NULL);
	assert_int_equal(store_begin(f->st), 0);
	for (int i = 0; i < 600; i++) {
		insert_one(f->st, &ev, id, NULL);
		struct store_dead_info d = dead_info(NULL, 0);
		assert_int_equal(store_dead_move(f->st, id, &d, 0, NULL), 0);
	}
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_dead_requeue_all(f->st, 0, &count), 0);
	assert_int_equal(count, 600);
	assert_query(f->path, "SELECT count(*), count(DISTINCT seq) FROM event_items", "603|603\n");

	for (int i = 0; i < 2; i++) {
		struct store_new_item e2 = event_item("p", NULL);
		make_dead(f, &e2, id);
	}
	assert_int_equal(store_dead_purge(f->st, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(store_dead_purge(f->st, &count), 0);
	assert_int_equal(count, 0);
	assert_query(f->path, "SELECT count(*) FROM dead_letters", "0\n");
}

static void test_dead_page_newest_first(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	for (int i = 0; i < 5; i++) {
		struct store_new_item ev = event_item("d", NULL);
		make_dead(f, &ev, id);
	}
	struct store_dead_list l;
	assert_int_equal(store_dead_page(f->st, 0, 2, &l), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.rows[0].id, 5);
	assert_int_equal(l.rows[1].id, 4);
	assert_string_equal(l.rows[0].reason, "permanent");
	assert_string_equal(l.rows[0].body_excerpt, "nope");
	assert_int_equal(l.rows[0].last_status, 400);
	store_dead_list_free(&l);
	assert_int_equal(store_dead_page(f->st, 4, 0, &l), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.rows[2].id, 1);
	store_dead_list_free(&l);
}

static void test_stats(void **state)
{
	struct fixture *f = *state;
	struct store_stats s;
	assert_int_equal(store_stats_read(f->st, &s), 0);
	assert_int_equal(s.queued, 0);
	assert_false(s.has_oldest);

	struct store_new_item ev = event_item("e", NULL);
	struct store_new_item beat = { .kind = STORE_KIND_HEARTBEAT, .integration_key = "hb",
				       .event_type = "HEARTBEAT", .accepted_at = 1500 };
	struct store_new_item pol = { .kind = STORE_KIND_POLICY, .event_type = "POLICY",
				      .accepted_at = 2500 };
	char id[UUID_STR_LEN];
	ev.accepted_at = 2000;
	insert_one(f->st, &ev, id, NULL);
	struct store_retry r = { .attempts = 2, .next_attempt_at = 5 };
	assert_int_equal(store_item_reschedule(f->st, id, &r), 0);
	insert_one(f->st, &ev, NULL, NULL);
	insert_one(f->st, &beat, NULL, NULL);
	insert_one(f->st, &pol, NULL, NULL);
	make_dead(f, &ev, id);
	raw_exec(f->path, "INSERT INTO mqtt_queue (id, topic, payload) VALUES ('m1', 't', 'p'), "
			  "('m2', 't', 'p')");
	assert_int_equal(store_stats_read(f->st, &s), 0);
	assert_int_equal(s.queued, 4);
	assert_int_equal(s.queued_event, 2);
	assert_int_equal(s.queued_heartbeat, 1);
	assert_int_equal(s.queued_policy, 1);
	assert_int_equal(s.retrying, 1);
	assert_true(s.has_oldest);
	assert_int_equal(s.oldest_accepted_at, 1500);
	assert_int_equal(s.dead, 1);
	assert_int_equal(s.legacy_mqtt_queue, 2);
}

static void test_head_of_order_key(void **state)
{
	struct fixture *f = *state;
	char a1[UUID_STR_LEN], a2[UUID_STR_LEN];
	struct store_new_item a = event_item("a1", "K\x1f" "a");
	struct store_new_item b = event_item("b1", "K\x1f" "b");
	struct store_new_item none = event_item("none", NULL);
	insert_one(f->st, &none, NULL, NULL);
	insert_one(f->st, &a, a1, NULL);
	insert_one(f->st, &b, NULL, NULL);
	a.summary = "a2";
	insert_one(f->st, &a, a2, NULL);

	struct store_item head;
	assert_int_equal(store_item_head(f->st, "K\x1f" "a", &head), 0);
	assert_string_equal(head.id, a1);
	assert_int_equal(head.seq, 2);
	store_item_clear(&head);
	assert_int_equal(store_item_delete(f->st, a1), 0);
	assert_int_equal(store_item_head(f->st, "K\x1f" "a", &head), 0);
	assert_string_equal(head.summary, "a2");
	store_item_clear(&head);
	assert_int_equal(store_item_head(f->st, "K\x1f" "c", &head), ILA_ERR_NOTFOUND);
	int64_t seq = -1;
	assert_int_equal(store_item_head_seq(f->st, "K\x1f" "a", &seq), 0);
	assert_int_equal(seq, 4);
	assert_int_equal(store_item_head_seq(f->st, "K\x1f" "b", &seq), 0);
	assert_int_equal(seq, 3);
	assert_int_equal(store_item_head_seq(f->st, "K\x1f" "c", &seq), ILA_ERR_NOTFOUND);
	assert_int_equal(seq, 3);

	/* The planner picks the partial index for this query shape on its own too. */
	char *plan = raw_rows(f->path, "EXPLAIN QUERY PLAN SELECT id FROM event_items WHERE "
				       "order_key = 'x' ORDER BY seq LIMIT 1");
	assert_non_null(strstr(plan, "event_items_order"));
	free(plan);
}

static void test_pages_and_due(void **state)
{
	struct fixture *f = *state;
	char ids[5][UUID_STR_LEN];
	for (int i = 0; i < 5; i++) {
		struct store_new_item ev = event_item("p", NULL);
		insert_one(f->st, &ev, ids[i], NULL);
	}
	struct store_retry later = { .attempts = 1, .next_attempt_at = 5000 };
	assert_int_equal(store_item_reschedule(f->st, ids[1], &later), 0);
	later.next_attempt_at = 9000;
	assert_int_equal(store_item_reschedule(f->st, ids[3], &later), 0);

	struct store_item_list l;
	assert_int_equal(store_items_page(f->st, 0, 2, &l), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.items[0].seq, 1);
	assert_int_equal(l.items[1].seq, 2);
	store_item_list_free(&l);
	assert_int_equal(store_items_page(f->st, 2, 0, &l), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.items[0].seq, 3);
	assert_int_equal(l.items[2].seq, 5);
	store_item_list_free(&l);

	assert_int_equal(store_items_due(f->st, 4999, 0, 0, &l), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.items[0].seq, 1);
	assert_int_equal(l.items[1].seq, 3);
	assert_int_equal(l.items[2].seq, 5);
	store_item_list_free(&l);
	assert_int_equal(store_items_due(f->st, 5000, 1, 2, &l), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.items[0].seq, 2);
	assert_int_equal(l.items[0].attempts, 1);
	assert_int_equal(l.items[0].next_attempt_at, 5000);
	assert_int_equal(l.items[1].seq, 3);
	store_item_list_free(&l);
	store_item_list_free(&l);

	/* Only rows that wait for a retry, once their time has come, in seq order. */
	later.next_attempt_at = 4000;
	assert_int_equal(store_item_reschedule(f->st, ids[4], &later), 0);
	assert_int_equal(store_items_retry_due(f->st, 3999, 0, &l), 0);
	assert_int_equal(l.count, 0);
	store_item_list_free(&l);
	assert_int_equal(store_items_retry_due(f->st, 5000, 0, &l), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.items[0].seq, 2);
	assert_int_equal(l.items[1].seq, 5);
	store_item_list_free(&l);
	assert_int_equal(store_items_retry_due(f->st, 9000, 2, &l), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.items[0].seq, 2);
	assert_int_equal(l.items[1].seq, 4);
	store_item_list_free(&l);
	assert_int_equal(store_items_retry_due(f->st, 9000, 0, &l), 0);
	assert_int_equal(l.count, 3);
	store_item_list_free(&l);
}

/* Outcomes of one batch are applied atomically: a rollback undoes all of them. */
static void test_mixed_batch_rollback(void **state)
{
	struct fixture *f = *state;
	char a[UUID_STR_LEN], b[UUID_STR_LEN], c[UUID_STR_LEN];
	struct store_new_item ev = event_item("x", NULL);
	insert_one(f->st, &ev, a, NULL);
	insert_one(f->st, &ev, b, NULL);
	insert_one(f->st, &ev, c, NULL);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_item_delete(f->st, a), 0);
	struct store_retry r = { .attempts = 1, .next_attempt_at = 1 };
	assert_int_equal(store_item_reschedule(f->st, b, &r), 0);
	struct store_dead_info d = dead_info(NULL, 0);
	assert_int_equal(store_dead_move(f->st, c, &d, 0, NULL), 0);
	insert_one(f->st, &ev, NULL, NULL);
	store_rollback(f->st);
	assert_query(f->path, "SELECT count(*), sum(attempts), max(seq) FROM event_items",
		     "3|0|3\n");
	assert_query(f->path, "SELECT count(*) FROM dead_letters", "0\n");
}

/* A full disk in the middle of a batch: the error is a store error (retryable), nothing of
 * the batch is stored, and the connection works again once there is room. */
static void test_disk_full_batch(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("first", NULL);
	int64_t seq;
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(sqlite3_exec(f->st->db, "PRAGMA max_page_count = 1", NULL, NULL, NULL),
			 SQLITE_OK);
	static char big[64 * 1024];
	memset(big, 'x', sizeof(big) - 1);
	struct store_new_item huge = event_item(big, NULL);
	assert_int_equal(store_begin(f->st), 0);
	int err = 0;
	for (int i = 0; i < 8 && !err; i++)
		err = store_item_insert(f->st, &huge, NULL, NULL);
	assert_int_equal(err, ILA_ERR_STORE);
	assert_string_equal(store_errmsg(f->st), "database or disk is full");
	store_rollback(f->st);
	assert_false(store_in_transaction(f->st));
	assert_query(f->path, "SELECT count(*), max(seq) FROM event_items", "1|1\n");

	assert_int_equal(sqlite3_exec(f->st->db, "PRAGMA max_page_count = 1073741823", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	insert_one(f->st, &huge, NULL, &seq);
	assert_int_equal(seq, 2);
}

/* If SQLite ends a transaction by itself after an error, later operations of the batch must
 * not run (and commit) one by one. */
static void test_transaction_lost_is_detected(void **state)
{
	struct fixture *f = *state;
	struct store_new_item ev = event_item("x", NULL);
	assert_int_equal(store_begin(f->st), 0);
	insert_one(f->st, &ev, NULL, NULL);
	assert_int_equal(sqlite3_exec(f->st->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(store_item_insert(f->st, &ev, NULL, NULL), ILA_ERR_STORE);
	assert_string_equal(store_errmsg(f->st),
			    "the transaction was rolled back after an earlier error");
	assert_int_equal(store_item_delete(f->st, "x"), ILA_ERR_STORE);
	assert_int_equal(store_commit(f->st), ILA_ERR_STORE);
	assert_false(store_in_transaction(f->st));
	assert_query(f->path, "SELECT count(*) FROM event_items", "0\n");
	int64_t seq;
	insert_one(f->st, &ev, NULL, &seq);
	assert_int_equal(seq, 1);
}

static void test_error_classes(void **state)
{
	(void)state;
	assert_int_equal(store_map_rc(SQLITE_CORRUPT), ILA_ERR_CORRUPT);
	assert_int_equal(store_map_rc(SQLITE_NOTADB), ILA_ERR_CORRUPT);
	assert_int_equal(store_map_rc(SQLITE_CORRUPT_INDEX), ILA_ERR_CORRUPT);
	assert_int_equal(store_map_rc(SQLITE_BUSY), ILA_ERR_STORE);
	assert_int_equal(store_map_rc(SQLITE_BUSY_SNAPSHOT), ILA_ERR_STORE);
	assert_int_equal(store_map_rc(SQLITE_FULL), ILA_ERR_STORE);
	assert_int_equal(store_map_rc(SQLITE_IOERR_WRITE), ILA_ERR_STORE);
	assert_int_equal(store_map_rc(SQLITE_CANTOPEN), ILA_ERR_STORE);
	assert_int_equal(store_map_rc(SQLITE_NOMEM), ILA_ERR_NOMEM);
	assert_int_equal(store_map_rc(SQLITE_OK), 0);
	assert_int_equal(store_map_rc(SQLITE_DONE), 0);
}

static void test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(store_kind_name(STORE_KIND_EVENT), "event");
	assert_string_equal(store_kind_name(STORE_KIND_HEARTBEAT), "heartbeat");
	assert_string_equal(store_kind_name(STORE_KIND_POLICY), "policy");
	assert_int_equal(store_kind_parse("policy"), STORE_KIND_POLICY);
	assert_int_equal(store_kind_parse("Event"), STORE_KIND_UNKNOWN);
	assert_int_equal(store_kind_parse(NULL), STORE_KIND_UNKNOWN);
	assert_string_equal(store_dead_reason_name(STORE_DEAD_EXHAUSTED), "exhausted");
	assert_string_equal(store_dead_reason_name(STORE_DEAD_PERMANENT), "permanent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_batch_seq_and_contents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_discards_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_never_below_existing_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reschedule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_excerpt_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_fresh_id_when_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_heartbeat_gets_fresh_time, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_requeue_all_and_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_page_newest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_of_order_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages_and_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed_batch_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_lost_is_detected, setup, teardown),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_kind_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
