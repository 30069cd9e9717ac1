/* Backpressure and store failures (SPEC §15, §16.1, §18): the queue-full pause with 503 +
 * Retry-After and the resume below 90 %, and a database that refuses writes (another
 * process holds the write lock) → 500, readiness reports it, nothing is lost, it recovers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "daemon_harness.h"
#include "fake_ilert.h"
#include "proc.h"

static const char *const event_json =
	"{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\"}";

static void get(const struct test_daemon *d, const char *path, struct http_reply *r)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", d->base, path);
	http_request("GET", url, NULL, NULL, 0, NULL, 10000, r);
}

/* Polls GET path until it answers status; returns the last body (heap). */
static char *wait_status(const struct test_daemon *d, const char *path, long status, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	for (;;) {
		struct http_reply r;
		get(d, path, &r);
		if (r.status == status || clock_mono_ms() > deadline) {
			if (r.status != status)
				fail_msg("GET %s answered %ld %s, expected %ld", path, r.status, r.body, status);
			char *body = strdup(r.body);
			http_reply_free(&r);
			return body;
		}
		http_reply_free(&r);
		usleep(50000);
	}
}

static void test_queue_full_pauses_and_resumes(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	struct fake_ilert *fake = fake_ilert_start();
	struct fake_reply down = { .status = 503, .body = "{}" };
	fake_ilert_set_default(fake, &down);
	struct test_daemon d;
	const char *const extra[] = { "--max_queue", "20", "--retry_max_backoff", "1", "--dedup_window", "0", NULL };
	assert_true(daemon_start(&d, dir, fake_ilert_url(fake), true, extra, NULL));

	int accepted = 0;
	struct http_reply r;
	for (;;) {
		http_post_json(d.base, "/api/events", event_json, &r);
		if (r.status != 200)
			break;
		accepted++;
		http_reply_free(&r);
		assert_true(accepted <= 25);
	}
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "{\"error\":\"Queue is full, retry later.\"}");
	char *ra = http_reply_header(&r, "Retry-After");
	assert_string_equal(ra, "5");
	free(ra);
	http_reply_free(&r);
	assert_true(accepted >= 20);
	assert_int_equal(db_query_int(d.db, "SELECT COUNT(*) FROM event_items"), accepted);

	char *ready = wait_status(&d, "/ready", 503, 3000);
	char expected[256];
	snprintf(expected, sizeof(expected),
		 "{\"component\":\"queue\",\"queued\":%d,\"max_queue\":20,\"error\":\"queue full\"}", accepted);
	assert_string_equal(ready, expected);
	free(ready);

	/* ilert recovers: the queue drains below 90 % and intake resumes. */
	struct fake_reply up = { .status = 202, .body = "{}" };
	fake_ilert_set_default(fake, &up);
	free(wait_status(&d, "/ready", 204, 20000));
	http_post_json(d.base, "/api/events", event_json, &r);
	assert_int_equal(r.status, 200);
	http_reply_free(&r);
	assert_int_equal(daemon_stop(&d, SIGTERM, 15000), 0);
	daemon_cleanup(&d);
	fake_ilert_stop(fake);
	test_rmtree(dir);
	free(dir);
}

static void test_store_error_then_recovery(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	struct fake_ilert *fake = fake_ilert_start();
	struct test_daemon d;
	assert_true(daemon_start(&d, dir, fake_ilert_url(fake), true, NULL, NULL));
	struct http_reply r;
	http_post_json(d.base, "/api/events", event_json, &r);
	assert_int_equal(r.status, 200);
	http_reply_free(&r);

	/* Another process takes the write lock: commits fail after the busy timeout. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(d.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	http_post_json(d.base, "/api/events",
		       "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"refused\"}", &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.body, "{\"error\":\"Internal error occurred.\"}");
	http_reply_free(&r);
	char *ready = wait_status(&d, "/ready", 503, 3000);
	assert_true(strncmp(ready, "{\"component\":\"queue\",\"queued\":", 30) == 0);
	assert_non_null(strstr(ready, ",\"max_queue\":1000000,\"error\":\"database error: "));
	free(ready);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	/* Writes succeed again: accepted, readiness clears, nothing was stored twice. */
	http_post_json(d.base, "/api/events",
		       "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"after\"}", &r);
	assert_int_equal(r.status, 200);
	http_reply_free(&r);
	free(wait_status(&d, "/ready", 204, 5000));
	int64_t deadline = clock_mono_ms() + 10000;
	while (db_query_int(d.db, "SELECT COUNT(*) FROM event_items") != 0 && clock_mono_ms() < deadline)
		usleep(50000);
	int n = fake_ilert_count(fake);
	int refused = 0, after = 0;
	for (int i = 0; i < n; i++) {
		struct fake_request *req = fake_ilert_request(fake, i);
		refused += strstr(req->body, "\"refused\"") != NULL;
		after += strstr(req->body, "\"after\"") != NULL;
		fake_request_free(req);
	}
	assert_int_equal(refused, 0); /* the client was told it was not stored */
	assert_int_equal(after, 1);
	assert_int_equal(daemon_stop(&d, SIGTERM, 15000), 0);
	daemon_cleanup(&d);
	fake_ilert_stop(fake);
	test_rmtree(dir);
	free(dir);
}

/* §15: rows `ilagent queue retry` puts back while the daemon runs count toward --max_queue:
 * the next commit sees them and pauses intake, and /ready reports the real row count. */
static void test_requeued_rows_count_toward_limit(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	struct fake_ilert *fake = fake_ilert_start();
	struct fake_reply bad = { .status = 400, .body = "{}" };
	fake_ilert_set_default(fake, &bad);
	struct test_daemon d;
	const char *const extra[] = { "--max_queue", "5", "--dedup_window", "0", NULL };
	assert_true(daemon_start(&d, dir, fake_ilert_url(fake), true, extra, NULL));
	struct http_reply r;
	for (int i = 0; i < 5; i++) {
		char body[128];
		snprintf(body, sizeof(body),
			 "{\"integrationKey\":\"ik%d\",\"eventType\":\"ALERT\",\"summary\":\"s\"}", i);
		http_post_json(d.base, "/api/events", body, &r);
		assert_int_equal(r.status, 200);
		http_reply_free(&r);
	}
	int64_t deadline = clock_mono_ms() + 10000;
	while (db_query_int(d.db, "SELECT COUNT(*) FROM dead_letters") != 5 && clock_mono_ms() < deadline)
		usleep(20000);
	assert_int_equal(db_query_int(d.db, "SELECT COUNT(*) FROM dead_letters"), 5);

	/* ilert is down for a minute; the operator re-queues the dead letters. */
	struct fake_reply down = { .status = 503, .body = "{}", .retry_after = "60" };
	fake_ilert_set_default(fake, &down);
	const char *const retry[] = { "queue", "retry", "--all", "-f", d.db, NULL };
	struct proc_result pr;
	assert_int_equal(proc_run_ilagent(retry, NULL, 20000, &pr), 0);
	assert_int_equal(pr.exit_code, 0);
	proc_result_free(&pr);
	assert_int_equal(db_query_int(d.db, "SELECT COUNT(*) FROM event_items"), 5);

	/* Admitted before the daemon could know: committed. Then the queue is full. */
	http_post_json(d.base, "/api/events", event_json, &r);
	assert_int_equal(r.status, 200);
	http_reply_free(&r);
	http_post_json(d.base, "/api/events", event_json, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "{\"error\":\"Queue is full, retry later.\"}");
	http_reply_free(&r);
	char *ready = wait_status(&d, "/ready", 503, 3000);
	assert_string_equal(ready, "{\"component\":\"queue\",\"queued\":6,\"max_queue\":5,\"error\":\"queue full\"}");
	free(ready);
	assert_int_equal(db_query_int(d.db, "SELECT COUNT(*) FROM event_items"), 6);
	assert_int_equal(daemon_stop(&d, SIGTERM, 15000), 0);
	daemon_cleanup(&d);
	fake_ilert_stop(fake);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_full_pauses_and_resumes),
		cmocka_unit_test(test_store_error_then_recovery),
		cmocka_unit_test(test_requeued_rows_count_toward_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
