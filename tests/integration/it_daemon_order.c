/* Delivery order and eligibility through the running daemon (SPEC §14, §15, §16.5-§16.6, §17,
 * §20): a backlog across a restart, a parked ordering key with a long tail, dead letters
 * re-queued by another process, --rate_limit, the 429 cool-down, the host brake during an
 * outage, heartbeat items (expired and fresh) and a file left by ilagent 0.9.0. Queue files are
 * prepared with the store API and plain SQL, then the daemon runs against the fake ilert. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "daemon_harness.h"
#include "fake_ilert.h"
#include "proc.h"
#include "store/db.h"
#include "store/queue.h"

#define IK_A "il1apiAAAA0001"
#define IK_B "il1apiBBBB0002"
#define SEP "\x1f"

static const char *const api_env[] = { "ILERT_API_KEY=apikey-0123456789abcdef", NULL };

/* ---- preparing queue files ------------------------------------------------------------- */

static struct store *db_open(const char *path)
{
	struct store_options o = { .path = path, .mode = STORE_MODE_DAEMON, .sync_normal = true };
	struct store *st = NULL;
	char msg[STORE_MSG_SIZE];
	if (store_open(&o, &st, msg, sizeof(msg)) != 0)
		fail_msg("store_open: %s", msg);
	return st;
}

/* An event row as the daemon commits it (order key per §2 when there is an alert key). */
static void add_event(struct store *st, const char *ik, const char *alert_key, const char *summary,
		      int64_t accepted_at, int64_t *seq)
{
	char order_key[256];
	if (alert_key)
		snprintf(order_key, sizeof(order_key), "%s" SEP "%s", ik, alert_key);
	struct store_new_item it = {
		.kind = STORE_KIND_EVENT, .integration_key = ik, .event_type = "ALERT",
		.alert_key = alert_key, .summary = summary, .source = "http",
		.order_key = alert_key ? order_key : NULL, .accepted_at = accepted_at,
	};
	assert_int_equal(store_item_insert(st, &it, NULL, seq), 0);
}

static void add_heartbeat(struct store *st, const char *key, int64_t accepted_at)
{
	char payload[256];
	snprintf(payload, sizeof(payload), "{\"integrationKey\":\"%s\"}", key);
	struct store_new_item it = {
		.kind = STORE_KIND_HEARTBEAT, .integration_key = key, .event_type = "HEARTBEAT",
		.summary = "", .payload = payload, .source = "mqtt", .accepted_at = accepted_at,
	};
	assert_int_equal(store_item_insert(st, &it, NULL, NULL), 0);
}

/* Plain SQL on the file, safe while the daemon runs (waits for its write lock). */
static void raw_exec(const char *path, const char *sql)
{
	assert_int_equal(db_exec(path, sql), 0);
}

static void raw_execf(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void raw_execf(const char *path, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	raw_exec(path, sql);
}

/* ---- observing ------------------------------------------------------------------------- */

static long long queued(const struct daemon_fixture *f)
{
	return db_query_int(f->db, "SELECT COUNT(*) FROM event_items");
}

static bool wait_queued(const struct daemon_fixture *f, long long n, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	while (clock_mono_ms() < deadline) {
		if (queued(f) == n)
			return true;
		usleep(20000);
	}
	return false;
}

/* The summary of a recorded event request (heap), "" when there is none. */
static char *summary_of(const struct fake_request *req)
{
	const char *s = req->body ? strstr(req->body, "\"summary\":\"") : NULL;
	if (!s)
		return strdup("");
	s += strlen("\"summary\":\"");
	return strndup(s, strcspn(s, "\""));
}

/* Requests [from, to) carrying summary (count). */
static int count_summary(struct fake_ilert *fake, int from, int to, const char *summary)
{
	int n = 0;
	for (int i = from; i < to; i++) {
		struct fake_request *req = fake_ilert_request(fake, i);
		char *s = summary_of(req);
		n += strcmp(s, summary) == 0;
		free(s);
		fake_request_free(req);
	}
	return n;
}

/* Requests whose summary starts with prefix. */
static int count_prefix(struct fake_ilert *fake, const char *prefix)
{
	int n = 0, total = fake_ilert_count(fake);
	for (int i = 0; i < total; i++) {
		struct fake_request *req = fake_ilert_request(fake, i);
		char *s = summary_of(req);
		n += strncmp(s, prefix, strlen(prefix)) == 0;
		free(s);
		fake_request_free(req);
	}
	return n;
}

/* Summaries "k<key>-<n>" must arrive with n = 0, 1, 2 ... per key, each exactly once;
 * "free-<n>" (no ordering key) exactly once each. Returns the number of requests checked. */
static int check_per_key_order(struct fake_ilert *fake, int keys, int per_key, int free_rows)
{
	int *next = calloc((size_t)keys, sizeof(int));
	char *seen_free = calloc((size_t)free_rows + 1, 1);
	int total = fake_ilert_count(fake);
	for (int i = 0; i < total; i++) {
		struct fake_request *req = fake_ilert_request(fake, i);
		char *s = summary_of(req);
		int k, n;
		if (sscanf(s, "k%d-%d", &k, &n) == 2) {
			assert_in_range(k, 0, keys - 1);
			if (n != next[k])
				fail_msg("key %d: request %d carries item %d, expected %d", k, i, n, next[k]);
			next[k]++;
		} else if (sscanf(s, "free-%d", &n) == 1) {
			assert_in_range(n, 0, free_rows - 1);
			if (seen_free[n])
				fail_msg("free-%d delivered twice", n);
			seen_free[n] = 1;
		} else {
			fail_msg("unexpected request %d: %s %s %s", i, req->method, req->path, req->body);
		}
		free(s);
		fake_request_free(req);
	}
	for (int k = 0; k < keys; k++)
		if (next[k] != per_key)
			fail_msg("key %d: %d of %d items delivered", k, next[k], per_key);
	for (int n = 0; n < free_rows; n++)
		if (!seen_free[n])
			fail_msg("free-%d never delivered", n);
	free(next);
	free(seen_free);
	return total;
}

static bool wait_fake_count(struct fake_ilert *fake, int n, int timeout_ms)
{
	return fake_ilert_wait_count(fake, n, timeout_ms) >= n;
}

/* ---- a backlog across a restart (§14.1, §14.2, §20.3) --------------------------------------- */

enum { BACKLOG_KEYS = 10, BACKLOG_PER_KEY = 200, BACKLOG_FREE = 500 };

/* A backlog larger than the dispatch buffer (forwarders 2: 1024 rows), left by a previous
 * run with one retry already due and one coming due shortly; the daemon is stopped half-way
 * and started again. Every row is delivered exactly once, each key's rows in seq order. */
static void test_backlog_across_restart(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	assert_int_equal(store_begin(st), 0);
	int free_n = 0;
	for (int n = 0; n < BACKLOG_PER_KEY; n++) {
		for (int k = 0; k < BACKLOG_KEYS; k++) {
			char ak[32], sum[32];
			snprintf(ak, sizeof(ak), "key-%d", k);
			snprintf(sum, sizeof(sum), "k%d-%d", k, n);
			add_event(st, k % 2 ? IK_A : IK_B, ak, sum, now, NULL);
		}
		for (int j = 0; j < BACKLOG_FREE / BACKLOG_PER_KEY + (n % 2); j++) {
			char sum[32];
			snprintf(sum, sizeof(sum), "free-%d", free_n++);
			add_event(st, IK_A, NULL, sum, now, NULL);
		}
	}
	assert_int_equal(free_n, BACKLOG_FREE);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	/* key-0's head was tried before and is due again; key-1's head comes due in 1.5 s. */
	raw_execf(f->db, "UPDATE event_items SET attempts = 2, next_attempt_at = %lld, "
			 "last_status = 503 WHERE summary = 'k0-0'", (long long)(now - 5000));
	raw_execf(f->db, "UPDATE event_items SET attempts = 1, next_attempt_at = %lld, "
			 "last_status = 503 WHERE summary = 'k1-0'", (long long)(now + 1500));

	const int total = BACKLOG_KEYS * BACKLOG_PER_KEY + BACKLOG_FREE;
	struct fake_reply slowish = { .status = 202, .body = "{}", .delay_ms = 2 };
	fake_ilert_set_default(f->fake, &slowish);
	const char *const extra[] = { "--forwarders", "2", "--db_sync", "normal", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	assert_true(wait_fake_count(f->fake, total / 3, 30000));
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	int first_run = fake_ilert_count(f->fake);
	assert_true(first_run < total);
	assert_int_equal(queued(f), total - first_run);

	fake_ilert_set_default(f->fake, &(struct fake_reply){ .status = 202, .body = "{}" });
	char *keep = strdup(f->dir);
	daemon_cleanup(&f->d);
	assert_true(daemon_start(&f->d, keep, fake_ilert_url(f->fake), true, extra, NULL));
	free(keep);
	assert_true(wait_queued(f, 0, 40000));
	assert_int_equal(check_per_key_order(f->fake, BACKLOG_KEYS, BACKLOG_PER_KEY, BACKLOG_FREE),
			 total);
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM dead_letters"), 0);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* ---- a parked key with a long tail (§14.1, §14.2) ------------------------------------------ */

enum { PARKED_TAIL = 20000, OTHER_KEYS = 20, OTHER_PER_KEY = 5, OTHER_FREE = 100 };

static void test_parked_key_does_not_block_others(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	assert_int_equal(store_begin(st), 0);
	/* key P (k0): the head and its tail, interleaved with other keys and keyless rows. */
	add_event(st, IK_A, "parked", "k0-0", now, NULL);
	int other = 0, free_n = 0;
	for (int n = 1; n <= PARKED_TAIL; n++) {
		char sum[32];
		snprintf(sum, sizeof(sum), "k0-%d", n);
		add_event(st, IK_A, "parked", sum, now, NULL);
		if (n % 100 == 0 && other < OTHER_KEYS * OTHER_PER_KEY) {
			int k = 1 + other % OTHER_KEYS, i = other / OTHER_KEYS;
			char ak[32];
			snprintf(ak, sizeof(ak), "other-%d", k);
			snprintf(sum, sizeof(sum), "k%d-%d", k, i);
			add_event(st, IK_B, ak, sum, now, NULL);
			other++;
		}
		if (n % 150 == 0 && free_n < OTHER_FREE) {
			snprintf(sum, sizeof(sum), "free-%d", free_n++);
			add_event(st, IK_B, NULL, sum, now, NULL);
		}
	}
	assert_int_equal(other, OTHER_KEYS * OTHER_PER_KEY);
	assert_int_equal(free_n, OTHER_FREE);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	raw_execf(f->db, "UPDATE event_items SET attempts = 1, last_status = 503, "
			 "next_attempt_at = %lld WHERE summary = 'k0-0'", (long long)(now + 3600 * 1000));

	const char *const extra[] = { "--db_sync", "normal", NULL };
	int64_t t0 = clock_mono_ms();
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	const int others = OTHER_KEYS * OTHER_PER_KEY + OTHER_FREE;
	assert_true(wait_fake_count(f->fake, others, 10000));
	int64_t took = clock_mono_ms() - t0;
	if (took > 5000)
		fail_msg("the other keys took %lld ms", (long long)took);
	usleep(1500000);
	assert_int_equal(fake_ilert_count(f->fake), others);
	assert_int_equal(count_prefix(f->fake, "k0-"), 0);
	assert_int_equal(queued(f), PARKED_TAIL + 1);

	/* The head comes due (as a retry time passing would make it): picked up within ~1 s. */
	raw_execf(f->db, "UPDATE event_items SET next_attempt_at = %lld WHERE summary = 'k0-0'",
		  (long long)clock_now_ms());
	int64_t t1 = clock_mono_ms();
	assert_true(wait_fake_count(f->fake, others + 1, 5000));
	int64_t pickup = clock_mono_ms() - t1;
	if (pickup > 2000)
		fail_msg("the due head was picked up after %lld ms", (long long)pickup);
	assert_true(wait_queued(f, 0, 60000));
	struct fake_request *req = fake_ilert_request(f->fake, others);
	char *s = summary_of(req);
	assert_string_equal(s, "k0-0");
	free(s);
	fake_request_free(req);
	/* key 0 holds PARKED_TAIL + 1 rows, the others OTHER_PER_KEY each: check both. */
	int total = fake_ilert_count(f->fake);
	assert_int_equal(total, others + PARKED_TAIL + 1);
	int next[1 + OTHER_KEYS] = { 0 };
	for (int i = 0; i < total; i++) {
		struct fake_request *r = fake_ilert_request(f->fake, i);
		char *sum = summary_of(r);
		int k, n;
		if (sscanf(sum, "k%d-%d", &k, &n) == 2) {
			if (n != next[k])
				fail_msg("key %d: request %d carries item %d, expected %d", k, i, n, next[k]);
			next[k]++;
		}
		free(sum);
		fake_request_free(r);
	}
	assert_int_equal(next[0], PARKED_TAIL + 1);
	for (int k = 1; k <= OTHER_KEYS; k++)
		assert_int_equal(next[k], OTHER_PER_KEY);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* ---- dead letters re-queued by `ilagent queue retry` (§17, §14.2) --------------------------- */

static void run_queue_cmd(const struct daemon_fixture *f, const char *a1, const char *a2, const char *out)
{
	const char *const args[] = { "queue", a1, a2, "-f", f->db, NULL };
	struct proc_result r;
	assert_int_equal(proc_run_ilagent(args, NULL, 20000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.out, out);
	proc_result_free(&r);
}

static void test_requeued_dead_letters_delivered(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	const char *const names[] = { "dead-1", "dead-2", "dead-3" };
	for (int i = 0; i < 3; i++) {
		char id[UUID_STR_LEN];
		struct store_new_item it = {
			.kind = STORE_KIND_EVENT, .integration_key = IK_A, .event_type = "ALERT",
			.alert_key = "same", .summary = names[i], .source = "http",
			.order_key = IK_A SEP "same", .accepted_at = now,
		};
		assert_int_equal(store_item_insert(st, &it, id, NULL), 0);
		struct store_dead_info info = { .reason = STORE_DEAD_EXHAUSTED, .attempts = 3,
						 .last_status = 500, .dead_at = now };
		assert_int_equal(store_dead_move(st, id, &info, 0, NULL), 0);
	}
	store_close(st);
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, NULL));
	usleep(1200000);
	assert_int_equal(fake_ilert_count(f->fake), 0);

	int64_t t0 = clock_mono_ms();
	run_queue_cmd(f, "retry", "2", "requeued 1\n");
	assert_true(wait_fake_count(f->fake, 1, 2500));
	if (clock_mono_ms() - t0 > 2500)
		fail_msg("re-queued row delivered after %lld ms", (long long)(clock_mono_ms() - t0));
	assert_int_equal(count_summary(f->fake, 0, 1, "dead-2"), 1);
	assert_true(wait_queued(f, 0, 2000));

	t0 = clock_mono_ms();
	run_queue_cmd(f, "retry", "--all", "requeued 2\n");
	assert_true(wait_fake_count(f->fake, 3, 2500));
	if (clock_mono_ms() - t0 > 2500)
		fail_msg("re-queued rows delivered after %lld ms", (long long)(clock_mono_ms() - t0));
	/* Oldest dead letter first: they keep their order within the key. */
	assert_int_equal(count_summary(f->fake, 1, 2, "dead-1"), 1);
	assert_int_equal(count_summary(f->fake, 2, 3, "dead-3"), 1);
	assert_true(wait_queued(f, 0, 2000));
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM dead_letters"), 0);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* ---- --rate_limit (§14.3) ------------------------------------------------------------------- */

static void test_rate_limit_per_integration_key(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 6; i++) {
		char sum[32];
		snprintf(sum, sizeof(sum), "a-%d", i);
		add_event(st, IK_A, NULL, sum, now, NULL);
	}
	for (int i = 0; i < 6; i++) {
		char sum[32];
		snprintf(sum, sizeof(sum), "b-%d", i);
		add_event(st, IK_B, i % 2 ? "bk" : NULL, sum, now, NULL);
	}
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	const char *const extra[] = { "--rate_limit", "3", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	assert_true(wait_fake_count(f->fake, 6, 5000));
	usleep(2000000);
	/* Three of each key started (the lowest seqs), the rest held back: key A reaching its
	 * limit does not hold back key B, which has a limit of its own. */
	assert_int_equal(fake_ilert_count(f->fake), 6);
	static const char *const started[] = { "a-0", "a-1", "a-2", "b-0", "b-1", "b-2" };
	for (int i = 0; i < 6; i++)
		assert_int_equal(count_summary(f->fake, 0, 6, started[i]), 1);
	/* Held back rows do not gain attempts. */
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM event_items WHERE attempts = 0"), 6);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* ---- 429 cool-down per integration key (§14.5) --------------------------------------------- */

static void test_429_cools_down_integration_key(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 4; i++) {
		char sum[32];
		snprintf(sum, sizeof(sum), "a-%d", i);
		add_event(st, IK_A, i == 3 ? "ak" : NULL, sum, now, NULL);
		snprintf(sum, sizeof(sum), "b-%d", i);
		add_event(st, IK_B, NULL, sum, now, NULL);
	}
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	/* One forwarder: requests go out one after the other in seq order, so a-0 gets the 429
	 * while a-1… are already waiting to be sent. */
	struct fake_reply too_many = { .status = 429, .body = "{}", .retry_after = "3" };
	fake_ilert_push(f->fake, &too_many);
	const char *const extra[] = { "--forwarders", "1", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	assert_true(wait_fake_count(f->fake, 5, 5000)); /* a-0 (429) and b-0..b-3 */
	struct fake_request *first = fake_ilert_request(f->fake, 0);
	char *s = summary_of(first);
	assert_string_equal(s, "a-0");
	free(s);
	long long t429 = first->received_ms;
	fake_request_free(first);
	assert_true(wait_queued(f, 0, 10000));
	int total = fake_ilert_count(f->fake);
	assert_int_equal(total, 9);
	int b_seen = 0;
	for (int i = 1; i < total; i++) {
		struct fake_request *r = fake_ilert_request(f->fake, i);
		char *sum = summary_of(r);
		long long dt = r->received_ms - t429;
		if (sum[0] == 'a') {
			/* The 3 s count from the start of a-0's attempt, a little before the fake
			 * saw it; without a cool-down a-1 would follow within milliseconds. */
			if (dt < 2500 || dt > 6000)
				fail_msg("%s of the cooling key started %lld ms after the 429", sum, dt);
		} else {
			b_seen++;
			if (dt > 1500)
				fail_msg("%s of another key held back %lld ms", sum, dt);
		}
		free(sum);
		fake_request_free(r);
	}
	assert_int_equal(b_seen, 4);
	assert_int_equal(count_prefix(f->fake, "a-0"), 2);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* ---- host brake during an outage (§14.5) ---------------------------------------------------- */

static void test_outage_brakes_host(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 200; i++) {
		char sum[32], ak[32];
		snprintf(sum, sizeof(sum), "o-%d", i);
		snprintf(ak, sizeof(ak), "ok-%d", i % 40);
		add_event(st, i % 3 ? IK_A : IK_B, i % 2 ? ak : NULL, sum, now, NULL);
	}
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	struct fake_reply down = { .status = 503, .body = "{\"message\":\"down\"}" };
	fake_ilert_set_default(f->fake, &down);
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, NULL));
	usleep(4700000);
	int during = fake_ilert_count(f->fake);
	long long untouched = db_query_int(f->db, "SELECT COUNT(*) FROM event_items WHERE attempts = 0");
	fake_ilert_set_default(f->fake, &(struct fake_reply){ .status = 202, .body = "{}" });
	if (during < 1 || during >= 20)
		fail_msg("%d requests during the outage", during);
	if (untouched < 180)
		fail_msg("only %lld of 200 rows without attempts", untouched);
	assert_true(wait_queued(f, 0, 15000));
	int total = fake_ilert_count(f->fake);
	int ok = 0;
	for (int i = 0; i < 200; i++) {
		char sum[32];
		snprintf(sum, sizeof(sum), "o-%d", i);
		ok += count_summary(f->fake, during, total, sum) >= 1;
	}
	assert_int_equal(ok, 200);
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM dead_letters"), 0);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* ---- heartbeat items (§14.6) ---------------------------------------------------------------- */

static void test_heartbeat_items(void **state)
{
	struct daemon_fixture *f = *state;
	struct store *st = db_open(f->db);
	int64_t now = clock_now_ms();
	assert_int_equal(store_begin(st), 0);
	add_heartbeat(st, "il1hbt-stale-1", now - 120000);
	add_heartbeat(st, "stale-beat-2", now - 120000);
	add_heartbeat(st, "il1hbt-stale-3", now - 61000);
	add_heartbeat(st, "il1hbt-fresh", now - 1000);
	add_heartbeat(st, "beat-fresh-key", now);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, api_env));
	assert_true(wait_queued(f, 0, 5000));
	assert_true(wait_fake_count(f->fake, 2, 2000));
	usleep(300000);
	assert_int_equal(fake_ilert_count(f->fake), 2);
	bool get_seen = false, head_seen = false;
	for (int i = 0; i < 2; i++) {
		struct fake_request *r = fake_ilert_request(f->fake, i);
		char *auth = fake_request_header(r, "Authorization");
		assert_non_null(auth);
		assert_string_equal(auth, "Bearer apikey-0123456789abcdef");
		free(auth);
		if (strcmp(r->method, "GET") == 0) {
			assert_string_equal(r->path, "/api/heartbeats/il1hbt-fresh");
			get_seen = true;
		} else {
			assert_string_equal(r->method, "HEAD");
			assert_string_equal(r->path, "/api/pings/beat-fresh-key");
			head_seen = true;
		}
		fake_request_free(r);
	}
	assert_true(get_seen && head_seen);

	char url[128];
	snprintf(url, sizeof(url), "%s/metrics", f->d.base);
	struct http_reply m;
	assert_int_equal(http_request("GET", url, NULL, NULL, 0, NULL, 5000, &m), 0);
	assert_int_equal(m.status, 200);
	assert_true(metrics_sample(m.body, "ilagent_heartbeats_expired_total{source=\"mqtt\"}") == 3);
	assert_true(metrics_sample(m.body, "ilagent_forwarded_total{source=\"mqtt\",kind=\"heartbeat\"}") == 2);
	http_reply_free(&m);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	char *log = daemon_log(&f->d);
	/* Dropped heartbeats are logged at warn. */
	assert_non_null(strstr(log, " WARN forward: heartbeat "));
	free(log);
}

/* ---- a file left by ilagent 0.9.0, drained without intake (§16.5, §20.2) ------------------ */

static void test_legacy_file_drained(void **state)
{
	struct daemon_fixture *f = *state;
	raw_exec(f->db,
		 LEGACY_090_SCHEMA_SQL
		 "INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
		 "created_at, priority, images, links, custom_details, details, inserted_at, "
		 "event_api_path) VALUES "
		 "('a', 'il1apiKeyAAAA1234', 'ALERT', ' K1 ', 'first', '2024-01-01 00:00:00 UTC', "
		 " 'HIGH', '[{\"src\":\"i\"}]', '[{\"href\":\"l\"}]', '{\"x\":[1,2]}', 'd', "
		 " '2024-01-01 00:00:00.100', NULL),"
		 "('b', 'il1apiKeyAAAA1234', 'RESOLVE', 'k1', 'second', 'c', NULL, NULL, NULL, NULL, "
		 " NULL, '2024-01-01 00:00:00.200', '/v1/events/mqtt/il1apiKeyAAAA1234'),"
		 "('c', 'il1apiKeyBBBB1234', 'ALERT', NULL, 'third', 'c', 'LOW', NULL, NULL, NULL, "
		 " NULL, '2024-01-01 00:00:00.300', '/v1/events/kafka/il1apiKeyBBBB1234'),"
		 "('d', 'il1apiKeyBBBB1234', 'ALERT', '', 'fourth', 'c', NULL, NULL, NULL, NULL, "
		 " NULL, '2024-01-01 00:00:00.400', NULL);");
	const char *const args[] = { test_ilagent_bin(), "daemon", "-f", f->db, "--api_url",
				     fake_ilert_url(f->fake), NULL };
	struct proc_result r;
	assert_int_equal(proc_run(args, NULL, NULL, 30000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	proc_result_free(&r);
	assert_int_equal(fake_ilert_count(f->fake), 4);
	assert_int_equal(queued(f), 0);
	static const char *const paths[] = { "/api/events", "/api/v1/events/mqtt/il1apiKeyAAAA1234",
					     "/api/v1/events/kafka/il1apiKeyBBBB1234", "/api/events" };
	static const char *const sums[] = { "first", "second", "third", "fourth" };
	int pos[4] = { -1, -1, -1, -1 };
	for (int i = 0; i < 4; i++) {
		struct fake_request *req = fake_ilert_request(f->fake, i);
		char *s = summary_of(req);
		for (int j = 0; j < 4; j++)
			if (strcmp(s, sums[j]) == 0) {
				assert_int_equal(pos[j], -1);
				pos[j] = i;
				assert_string_equal(req->method, "POST");
				assert_string_equal(req->path, paths[j]);
			}
		if (strcmp(s, "first") == 0)
			assert_non_null(strstr(req->body, "\"alertKey\":\"K1\""));
		if (strcmp(s, "fourth") == 0)
			assert_non_null(strstr(req->body, "\"alertKey\":null"));
		free(s);
		fake_request_free(req);
	}
	for (int j = 0; j < 4; j++)
		assert_int_not_equal(pos[j], -1);
	/* "first" and "second" share an ordering key (alert keys trimmed and case-folded). */
	assert_true(pos[0] < pos[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backlog_across_restart, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_parked_key_does_not_block_others, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_requeued_dead_letters_delivered, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit_per_integration_key, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_429_cools_down_integration_key, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_outage_brakes_host, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_items, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_legacy_file_drained, daemon_fixture_setup, daemon_fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
