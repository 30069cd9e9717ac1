/* `ilagent daemon` delivering to a fake ilert (SPEC §8, §14, §20, §21): request shape, order
 * per key through failures, dead letters, graceful shutdown with in-flight deliveries, the
 * second signal, the daemon without intake, the lock and bind failures, the pinger. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "core/clock.h"
#include "daemon_harness.h"
#include "fake_ilert.h"
#include "proc.h"
#include "version.h"

static long long queued(const struct daemon_fixture *f)
{
	return db_query_int(f->d.db, "SELECT COUNT(*) FROM event_items");
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

static void post_ok(const struct daemon_fixture *f, const char *json)
{
	struct http_reply r;
	http_post_json(f->d.base, "/api/events", json, &r);
	if (r.status != 200)
		fail_msg("POST /api/events answered %ld %s", r.status, r.body);
	http_reply_free(&r);
}

static const char *const api_env[] = { "ILERT_API_KEY=apikey-0123456789abcdef", NULL };

static void test_event_delivered(void **state)
{
	struct daemon_fixture *f = *state;
	const char *const extra[] = { "--dedup_window", "0", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, api_env));
	proc_bg_signal(f->d.proc, SIGHUP); /* ignored: the daemon keeps serving */
	usleep(200000);
	struct http_reply r;
	http_post_json(f->d.base, "/api/events",
		       "{\"apiKey\":\"il1api123\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\","
		       "\"alertKey\":\"  db-1  \",\"priority\":\"HIGH\",\"details\":\"d\","
		       "\"images\":[{\"src\":\"http://i\"}],\"links\":[{\"href\":\"http://l\",\"text\":\"t\"}],"
		       "\"customDetails\":{\"b\":1,\"a\":[true,null]},\"unknown\":5}",
		       &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body,
			    "{\"integrationKey\":\"il1api123\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\","
			    "\"details\":\"d\",\"alertKey\":\"db-1\",\"priority\":\"HIGH\","
			    "\"images\":[{\"src\":\"http://i\",\"href\":null,\"alt\":null}],"
			    "\"links\":[{\"href\":\"http://l\",\"text\":\"t\"}],\"customDetails\":{\"b\":1,\"a\":[true,null]}}");
	http_reply_free(&r);

	assert_int_equal(fake_ilert_wait_count(f->fake, 1, 10000), 1);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_string_equal(req->method, "POST");
	assert_string_equal(req->path, "/api/events");
	assert_string_equal(req->body,
			    "{\"integrationKey\":\"il1api123\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\","
			    "\"alertKey\":\"db-1\",\"details\":\"d\",\"priority\":\"HIGH\","
			    "\"images\":[{\"src\":\"http://i\",\"href\":null,\"alt\":null}],"
			    "\"links\":[{\"href\":\"http://l\",\"text\":\"t\"}],\"customDetails\":{\"b\":1,\"a\":[true,null]}}");
	char *auth = fake_request_header(req, "Authorization");
	assert_string_equal(auth, "Bearer apikey-0123456789abcdef");
	char *ua = fake_request_header(req, "User-Agent");
	assert_string_equal(ua, "ilagent/" ILAGENT_VERSION);
	free(auth);
	free(ua);
	fake_request_free(req);
	assert_true(wait_queued(f, 0, 5000));
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	char *log = daemon_log(&f->d);
	assert_non_null(strstr(log, "Received SIGTERM, shutting down"));
	assert_null(strstr(log, "apikey-0123456789abcdef")); /* masked */
	free(log);
}

/* ilert fails for a while (503, timeouts, resets), then recovers: every event arrives and
 * each key's events arrive in acceptance order. */
static void test_order_kept_through_failures(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply bad503 = { .status = 503, .body = "{}" };
	struct fake_reply slow = { .status = 202, .delay_ms = 2500 };
	struct fake_reply reset = { .reset = true };
	fake_ilert_push_n(f->fake, &bad503, 3);
	fake_ilert_push(f->fake, &slow);
	fake_ilert_push(f->fake, &reset);
	fake_ilert_push_n(f->fake, &bad503, 2);
	const char *const extra[] = { "--retry_max_backoff", "1", "--api_timeout", "1",
				      "--dedup_window", "0", "--forwarders", "4", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	enum { KEYS = 5, PER_KEY = 8 };
	for (int n = 0; n < PER_KEY; n++) {
		for (int k = 0; k < KEYS; k++) {
			char body[256];
			snprintf(body, sizeof(body),
				 "{\"integrationKey\":\"ik\",\"eventType\":\"%s\",\"summary\":\"%d\",\"alertKey\":\"Key-%d\"}",
				 n == PER_KEY - 1 ? "RESOLVE" : "ALERT", n, k);
			post_ok(f, body);
		}
	}
	assert_true(wait_queued(f, 0, 60000));
	/* The successful deliveries per key are the summaries 0..PER_KEY-1 in order. */
	int next[KEYS] = { 0 };
	int count = fake_ilert_count(f->fake);
	for (int i = 7; i < count; i++) { /* the first 7 requests got the scripted failures */
		struct fake_request *req = fake_ilert_request(f->fake, i);
		int k, n;
		const char *key = strstr(req->body, "\"alertKey\":\"Key-");
		const char *sum = strstr(req->body, "\"summary\":\"");
		assert_non_null(key);
		assert_non_null(sum);
		k = atoi(key + strlen("\"alertKey\":\"Key-"));
		n = atoi(sum + strlen("\"summary\":\""));
		if (n != next[k])
			fail_msg("key %d: got summary %d, expected %d (request %d)", k, n, next[k], i);
		next[k]++;
		fake_request_free(req);
	}
	for (int k = 0; k < KEYS; k++)
		assert_int_equal(next[k], PER_KEY);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

static void test_dead_letters(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply bad = { .status = 400, .body = "{\"message\":\"bad key\"}" };
	fake_ilert_push(f->fake, &bad);
	struct fake_reply err = { .status = 500, .body = "oops" };
	fake_ilert_set_default(f->fake, &err);
	const char *const extra[] = { "--max_retries", "2", "--retry_max_backoff", "1", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	post_ok(f, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"permanent\"}");
	assert_true(wait_queued(f, 0, 10000));
	assert_int_equal(db_query_int(f->d.db, "SELECT attempts FROM dead_letters WHERE reason='permanent' AND last_status=400"), 1);
	post_ok(f, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"exhausted\"}");
	assert_true(wait_queued(f, 0, 20000));
	assert_int_equal(db_query_int(f->d.db, "SELECT attempts FROM dead_letters WHERE reason='exhausted' AND last_status=500 AND summary='exhausted'"), 2);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM dead_letters WHERE body_excerpt='{\"message\":\"bad key\"}'"), 1);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	char *log = daemon_log(&f->d);
	assert_non_null(strstr(log, "to dead letters after 1 attempt(s): permanent"));
	assert_non_null(strstr(log, "to dead letters after 2 attempt(s): exhausted"));
	free(log);
}

/* --max_dead bounds the dead letters: the oldest rows go, counted and logged at warn. */
static void test_dead_letters_bounded(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply bad = { .status = 400, .body = "{}" };
	fake_ilert_set_default(f->fake, &bad);
	const char *const extra[] = { "--max_dead", "2", "--dedup_window", "0", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	for (int i = 1; i <= 4; i++) {
		char body[128];
		snprintf(body, sizeof(body),
			 "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s%d\"}", i);
		post_ok(f, body);
	}
	assert_true(wait_queued(f, 0, 10000));
	assert_int_equal(fake_ilert_count(f->fake), 4);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM dead_letters"), 2);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM dead_letters WHERE summary IN ('s3','s4')"), 2);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	char *log = daemon_log(&f->d);
	/* One line per transaction that evicted: outcomes committed together evict together. */
	const char *line = strstr(log, "WARN store: evicted ");
	assert_non_null(line);
	assert_non_null(strstr(line, " oldest dead letter(s) beyond --max_dead 2"));
	free(log);
}

/* SIGTERM while a delivery is in flight: it finishes within --shutdown_timeout and its
 * result is recorded. */
static void test_shutdown_waits_for_in_flight(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply slow = { .status = 202, .delay_ms = 1500 };
	fake_ilert_push(f->fake, &slow);
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, NULL));
	post_ok(f, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"slow\"}");
	usleep(300000); /* the request is at the fake, waiting for its answer */
	int64_t t0 = clock_mono_ms();
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	assert_true(clock_mono_ms() - t0 >= 900);
	assert_int_equal(queued(f), 0);
}

/* A second signal abandons the in-flight delivery: the row stays, unchanged, and the next
 * start delivers it. */
static void test_second_signal_abandons(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply hang = { .status = 202, .delay_ms = 20000 };
	fake_ilert_push(f->fake, &hang);
	const char *const extra[] = { "--shutdown_timeout", "60", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	post_ok(f, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"hang\"}");
	assert_int_equal(fake_ilert_wait_count(f->fake, 1, 5000), 1);
	proc_bg_signal(f->d.proc, SIGTERM);
	usleep(300000);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(daemon_stop(&f->d, SIGINT, 10000), 0);
	assert_true(clock_mono_ms() - t0 < 5000);
	assert_int_equal(queued(f), 1);
	assert_int_equal(db_query_int(f->d.db, "SELECT attempts FROM event_items"), 0);

	/* The next start, without any intake, delivers it and exits 0 once empty. */
	fake_ilert_reset(f->fake);
	struct test_daemon again;
	const char *const args[] = { test_ilagent_bin(), "daemon", "-f", f->d.db, "--api_url",
				     fake_ilert_url(f->fake), NULL };
	struct proc_result r;
	assert_int_equal(proc_run(args, NULL, NULL, 20000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	proc_result_free(&r);
	assert_int_equal(fake_ilert_count(f->fake), 1);
	assert_int_equal(queued(f), 0);
	(void)again;
}

static void test_drain_mode_empty_queue_exits(void **state)
{
	struct daemon_fixture *f = *state;
	char db[600];
	snprintf(db, sizeof(db), "%s/empty.db3", f->dir);
	const char *const args[] = { test_ilagent_bin(), "daemon", "-f", db, "--api_url",
				     fake_ilert_url(f->fake), NULL };
	struct proc_result r;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(proc_run(args, NULL, NULL, 20000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_true(clock_mono_ms() - t0 < 5000);
	proc_result_free(&r);
	assert_int_equal(fake_ilert_count(f->fake), 0);
}

static void test_lock_and_bind_failures(void **state)
{
	struct daemon_fixture *f = *state;
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, NULL));
	/* a second daemon on the same file */
	const char *const args[] = { test_ilagent_bin(), "daemon", "-f", f->d.db, "-p", "1", NULL };
	struct proc_result r;
	assert_int_equal(proc_run(args, NULL, NULL, 20000, &r), 0);
	assert_int_equal(r.exit_code, 1);
	char expected[1024];
	snprintf(expected, sizeof(expected),
		 "ilagent: error: Failed to setup SQLite connection: %s is in use by another ilagent daemon\n",
		 f->d.db);
	const char *last = strstr(r.err, "ilagent: error:");
	assert_non_null(last);
	assert_string_equal(last, expected);
	proc_result_free(&r);

	/* another file, the same port */
	char db2[600], port[16], prefix[128];
	snprintf(db2, sizeof(db2), "%s/other.db3", f->dir);
	snprintf(port, sizeof(port), "%d", f->d.port);
	const char *const args2[] = { test_ilagent_bin(), "daemon", "-f", db2, "-p", port,
				      "--bind", "127.0.0.1", NULL };
	assert_int_equal(proc_run(args2, NULL, NULL, 20000, &r), 0);
	assert_int_equal(r.exit_code, 1);
	snprintf(prefix, sizeof(prefix), "ilagent: error: Failed to bind to http port 127.0.0.1:%s: ", port);
	last = strstr(r.err, "ilagent: error:");
	assert_non_null(last);
	assert_true(strncmp(last, prefix, strlen(prefix)) == 0);
	assert_non_null(strchr(last, '\n'));
	assert_int_equal(strchr(last, '\n')[1], '\0'); /* the last line */
	proc_result_free(&r);
	assert_int_equal(daemon_stop(&f->d, SIGINT, 15000), 0);
	char *log = daemon_log(&f->d);
	assert_non_null(strstr(log, "Received SIGINT, shutting down"));
	free(log);
}

static void test_pinger(void **state)
{
	struct daemon_fixture *f = *state;
	const char *const extra[] = { "-b", "il1hbt-pinger-key", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), false, extra, api_env));
	assert_int_equal(fake_ilert_wait_count(f->fake, 1, 10000), 1);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_string_equal(req->method, "GET");
	assert_string_equal(req->path, "/api/heartbeats/il1hbt-pinger-key");
	char *auth = fake_request_header(req, "Authorization");
	assert_string_equal(auth, "Bearer apikey-0123456789abcdef");
	free(auth);
	fake_request_free(req);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

/* MQTT/Kafka options of a consumer this build does not have: reported, never ignored. */
static void test_missing_consumer_reported(void **state)
{
	struct daemon_fixture *f = *state;
	const char *const extra[] = { "-m", "127.0.0.1", "-e", "alerts/#", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, NULL));
	struct http_reply r;
	char url[128];
	snprintf(url, sizeof(url), "%s/ready", f->d.base);
	http_request("GET", url, NULL, NULL, 0, NULL, 5000, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "{\"component\":\"mqtt\",\"connected\":false,"
				    "\"subscriptions_ready\":false,"
				    "\"error\":\"MQTT consumer not available in this build\"}");
	http_reply_free(&r);
	post_ok(f, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"http still works\"}");
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	char *log = daemon_log(&f->d);
	assert_non_null(strstr(log, "ERROR mqtt: the MQTT consumer is not available in this build"));
	free(log);
}

/* The value of one metric sample of the running daemon, -1 when absent. */
static long long metric_value(const struct daemon_fixture *f, const char *series)
{
	return (long long)daemon_metric(f->d.base, series);
}

/* §19: queue gauges follow commits and outcomes at once; the 10 s recount from the database
 * only corrects them. All checks run within the first recount interval. */
static void test_queue_gauges_follow_commits(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply bad = { .status = 400, .body = "{}" };
	fake_ilert_set_default(f->fake, &bad);
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, NULL));
	int64_t t0 = clock_mono_ms();
	post_ok(f, "{\"integrationKey\":\"ik1\",\"eventType\":\"ALERT\",\"summary\":\"dead\"}");
	assert_true(wait_queued(f, 0, 3000));
	assert_int_equal(metric_value(f, "ilagent_dead_letter_rows"), 1);
	assert_int_equal(metric_value(f, "ilagent_queue_rows{kind=\"event\"}"), 0);

	struct fake_reply busy = { .status = 503, .body = "{}", .retry_after = "60" };
	fake_ilert_set_default(f->fake, &busy);
	post_ok(f, "{\"integrationKey\":\"ik2\",\"eventType\":\"ALERT\",\"summary\":\"a\"}");
	int64_t deadline = clock_mono_ms() + 3000;
	while (db_query_int(f->d.db, "SELECT COUNT(*) FROM event_items WHERE attempts = 1") != 1 &&
	       clock_mono_ms() < deadline)
		usleep(20000);
	/* Posted only once the first failed: the host is braked for the Retry-After, so this one
	 * stays untried (posted together, parallel forwarders could start both). */
	post_ok(f, "{\"integrationKey\":\"ik3\",\"eventType\":\"ALERT\",\"summary\":\"b\"}");
	usleep(300 * 1000);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM event_items WHERE attempts = 1"), 1);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM event_items WHERE attempts = 0"), 1);
	assert_int_equal(metric_value(f, "ilagent_queue_rows{kind=\"event\"}"), 2);
	assert_int_equal(metric_value(f, "ilagent_queue_retrying_rows"), 1);
	assert_int_equal(metric_value(f, "ilagent_dead_letter_rows"), 1);
	assert_true(metric_value(f, "ilagent_queue_oldest_age_seconds") >= 0);
	assert_true(clock_mono_ms() - t0 < 9000);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_event_delivered, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_order_kept_through_failures, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_dead_letters, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_dead_letters_bounded, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_waits_for_in_flight, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_second_signal_abandons, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_drain_mode_empty_queue_exits, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_bind_failures, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_pinger, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_missing_consumer_reported, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_queue_gauges_follow_commits, daemon_fixture_setup, daemon_fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
