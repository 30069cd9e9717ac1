/* MQTT messages ilagent 0.9.0 left buffered in mqtt_queue (SPEC §16.7, §15, §17.1, §20.1): kept
 * with a warning while no topic option is configured; converted at the next start with the
 * topic options (events mapped and deduplicated, heartbeats and policy updates committed,
 * invalid and filtered rows deleted, rows of unmatched topics kept), in inserted_at order,
 * delivered to /api/v1/events/mqtt/<key>. */
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

#define BULK 1203 /* more than two conversion transactions of 500 rows */

static const char *const env_api[] = { "ILERT_API_KEY=apikey-0123456789abcdef", NULL };

static void raw_exec(const char *path, const char *sql)
{
	assert_int_equal(db_exec(path, sql), 0);
}

/* The tables as ilagent 0.9.0 left them (mig_1 … mig_5 applied), without rows. */
static void create_090_file(const char *path)
{
	raw_exec(path,
		 LEGACY_090_SCHEMA_SQL);
}

/* One event row of the 0.9.0 queue and the buffered messages of every kind. The bulk rows
 * were inserted in the reverse order of their inserted_at: conversion follows inserted_at. */
static void fill_090_rows(const char *path)
{
	raw_exec(path,
		 "INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
		 "created_at, inserted_at) VALUES ('old', 'il1apiOLD00001', 'ALERT', NULL, 'old row', "
		 "'c', '2024-01-01 00:00:00.000');"
		 "INSERT INTO mqtt_queue (id, topic, payload, inserted_at) VALUES "
		 "('m1', 'alerts/a', '{\"integrationKey\":\"il1apiMQTT0001\",\"summary\":\"one\","
		 "\"alertKey\":\"X\"}', '2024-01-01 00:00:01.000'),"
		 "('m2', 'alerts/a', '{\"integrationKey\":\"il1apiMQTT0001\",\"summary\":\"one\","
		 "\"alertKey\":\"x\"}', '2024-01-01 00:00:02.000'),"
		 "('m3', 'alerts/c', 'not json', '2024-01-01 00:00:03.000'),"
		 "('m4', 'alerts/d', '{\"integrationKey\":\"il1apiMQTT0002\"}', "
		 "'2024-01-01 00:00:04.000'),"
		 "('m5', 'beats', '{\"integrationKey\":\"il1hbt-legacy\"}', '2024-01-01 00:00:05.000'),"
		 "('m6', 'other/topic', '{\"integrationKey\":\"il1apiMQTT0001\"}', "
		 "'2024-01-01 00:00:06.000'),"
		 "('m7', 'policy/p', '{\"data\":{\"email\":\"ops@example.com\",\"shift\":\"2\"},"
		 "\"location\":\"plant\"}', '2024-01-01 00:00:07.000'),"
		 "('m8', 'policy/q', '{\"data\":{\"shift\":1},\"location\":\"plant\"}', "
		 "'2024-01-01 00:00:08.000');"
		 "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1202) "
		 "INSERT INTO mqtt_queue (id, topic, payload, inserted_at) SELECT 'bulk' || i, "
		 "'alerts/bulk', '{\"integrationKey\":\"il1apiBULK0001\",\"alertKey\":\"bulk\","
		 "\"summary\":\"bulk-' || i || '\"}', strftime('%Y-%m-%d %H:%M:%f', "
		 "'2024-01-02 00:00:00', '+' || (1202 - i) || ' seconds') FROM n;");
}

static char *queue_stats(const struct daemon_fixture *f)
{
	const char *const args[] = { "queue", "stats", "-f", f->db, NULL };
	struct proc_result r;
	assert_int_equal(proc_run_ilagent(args, NULL, 20000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	char *out = strdup(r.out);
	proc_result_free(&r);
	return out;
}

static char *summary_of(const struct fake_request *req)
{
	const char *s = req->body ? strstr(req->body, "\"summary\":\"") : NULL;
	if (!s)
		return strdup("");
	s += strlen("\"summary\":\"");
	return strndup(s, strcspn(s, "\""));
}

static bool wait_queued_zero(const struct daemon_fixture *f, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	while (clock_mono_ms() < deadline) {
		if (db_query_int(f->db, "SELECT COUNT(*) FROM event_items") == 0)
			return true;
		usleep(20000);
	}
	return false;
}

/* Without topic options the buffered messages stay (drain mode delivers the rest and exits);
 * the next start with the topic options converts them. */
static void test_kept_without_topics_then_converted(void **state)
{
	struct daemon_fixture *f = *state;
	create_090_file(f->db);
	fill_090_rows(f->db);
	const int buffered = 8 + BULK;

	const char *const args[] = { test_ilagent_bin(), "daemon", "-f", f->db, "--api_url",
				     fake_ilert_url(f->fake), NULL };
	struct proc_result r;
	assert_int_equal(proc_run(args, NULL, NULL, 30000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	char want[200];
	snprintf(want, sizeof(want),
		 " WARN store: %d buffered MQTT messages remain in mqtt_queue; start with the topic "
		 "options to deliver them\n",
		 buffered);
	if (!strstr(r.err, want))
		fail_msg("missing warning %s in:\n%s", want, r.err);
	proc_result_free(&r);
	/* The 0.9.0 event row was delivered, the buffered messages were not touched. */
	assert_int_equal(fake_ilert_count(f->fake), 1);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_string_equal(req->path, "/api/events");
	fake_request_free(req);
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM mqtt_queue"), buffered);
	char *stats = queue_stats(f);
	snprintf(want, sizeof(want), "dead\t0\nlegacy_mqtt_queue\t%d\n", buffered);
	assert_non_null(strstr(stats, want));
	free(stats);

	/* With the topic options (and no -m): converted at start, then delivered. --max_queue
	 * does not hold the conversion back. */
	fake_ilert_reset(f->fake);
	const char *const extra[] = { "--event_topic", "alerts/#", "--heartbeat_topic", "beats",
				      "--policy_topic", "policy/+", "--policy_routing_keys",
				      "location", "--max_queue", "100", NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, env_api));
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM mqtt_queue"), 1);
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM mqtt_queue WHERE id = 'm6'"), 1);
	assert_true(wait_queued_zero(f, 30000));

	/* Requests: m1 (m2 was its duplicate), m4, the policy lookup of m7 (answered without a
	 * user id: dead letter), the bulk rows in inserted_at order; no heartbeat (expired). */
	int total = fake_ilert_count(f->fake);
	assert_int_equal(total, 3 + BULK);
	int next_bulk = BULK - 1, one = 0, four = 0, policy = 0;
	for (int i = 0; i < total; i++) {
		struct fake_request *q = fake_ilert_request(f->fake, i);
		char *s = summary_of(q);
		if (strcmp(q->path, "/api/users/search-email") == 0) {
			assert_string_equal(q->body, "{\"email\":\"ops@example.com\"}");
			policy++;
		} else if (strncmp(s, "bulk-", 5) == 0) {
			assert_string_equal(q->path, "/api/v1/events/mqtt/il1apiBULK0001");
			if (atoi(s + 5) != next_bulk)
				fail_msg("request %d carries %s, expected bulk-%d", i, s, next_bulk);
			next_bulk--;
		} else if (strcmp(s, "one") == 0) {
			assert_string_equal(q->path, "/api/v1/events/mqtt/il1apiMQTT0001");
			assert_non_null(strstr(q->body, "\"alertKey\":\"X\""));
			assert_non_null(strstr(q->body, "\"customDetails\":{\"topic\":\"alerts/a\"}"));
			one++;
		} else {
			assert_string_equal(q->path, "/api/v1/events/mqtt/il1apiMQTT0002");
			assert_string_equal(q->body,
					    "{\"integrationKey\":\"il1apiMQTT0002\",\"eventType\":\"ALERT\","
					    "\"summary\":\"New alert from alerts/d\",\"alertKey\":null,"
					    "\"details\":null,\"priority\":null,\"images\":null,\"links\":null,"
					    "\"customDetails\":{\"topic\":\"alerts/d\"}}");
			four++;
		}
		char *auth = fake_request_header(q, "Authorization");
		assert_string_equal(auth, "Bearer apikey-0123456789abcdef");
		free(auth);
		free(s);
		fake_request_free(q);
	}
	assert_int_equal(next_bulk, -1);
	assert_true(one == 1 && four == 1 && policy == 1);
	/* The policy item kept its original acceptance time and normalized payload. */
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM dead_letters WHERE kind = 'policy' "
				      "AND source = 'mqtt' AND accepted_at = 1704067207000 AND payload = "
				      "'{\"email\":\"ops@example.com\",\"routingKey\":\"plant\",\"shift\":2}'"),
			 1);

	char url[128];
	snprintf(url, sizeof(url), "%s/metrics", f->d.base);
	struct http_reply m;
	assert_int_equal(http_request("GET", url, NULL, NULL, 0, NULL, 5000, &m), 0);
	assert_true(metrics_sample(m.body, "ilagent_committed_total{source=\"mqtt\",kind=\"event\"}") == 2 + BULK);
	assert_true(metrics_sample(m.body, "ilagent_committed_total{source=\"mqtt\",kind=\"heartbeat\"}") == 1);
	assert_true(metrics_sample(m.body, "ilagent_committed_total{source=\"mqtt\",kind=\"policy\"}") == 1);
	assert_true(metrics_sample(m.body, "ilagent_deduplicated_total{source=\"mqtt\"}") == 1);
	assert_true(metrics_sample(m.body, "ilagent_rejected_total{source=\"mqtt\",reason=\"invalid\"}") == 2);
	assert_true(metrics_sample(m.body, "ilagent_heartbeats_expired_total{source=\"mqtt\"}") == 1);
	assert_true(metrics_sample(m.body, "ilagent_legacy_mqtt_queue_rows") == 1);
	http_reply_free(&m);
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);

	char *log = daemon_log(&f->d);
	assert_non_null(strstr(log, " WARN store: 1 buffered MQTT messages remain in mqtt_queue; "
				    "their topics match none of the topic options\n"));
	assert_non_null(strstr(log, "Policy message missing email at 'data.email'"));
	assert_null(strstr(log, "start with the topic options"));
	free(log);
	stats = queue_stats(f);
	assert_non_null(strstr(stats, "queued\t0\n"));
	assert_non_null(strstr(stats, "dead\t1\nlegacy_mqtt_queue\t1\n"));
	free(stats);
}

/* Filtered rows are deleted and counted; a daemon without intake converts, delivers and
 * exits. */
static void test_filtered_rows_deleted(void **state)
{
	struct daemon_fixture *f = *state;
	create_090_file(f->db);
	raw_exec(f->db,
		 "INSERT INTO mqtt_queue (id, topic, payload, inserted_at) VALUES "
		 "('f1', 'site/1/alarm', '{\"integrationKey\":\"il1apiF0000001\",\"summary\":\"keep\","
		 "\"fwd\":\"yes\"}', '2024-03-01 10:00:00.000'),"
		 "('f2', 'site/2/alarm', '{\"integrationKey\":\"il1apiF0000001\",\"summary\":\"drop\","
		 "\"fwd\":\"no\"}', '2024-03-01 10:00:01.000');");
	const char *const args[] = { test_ilagent_bin(), "daemon", "-f", f->db, "--api_url",
				     fake_ilert_url(f->fake), "--event_topic", "site/+/alarm",
				     "--filter_key", "fwd", "--filter_val", "yes", "-vv", NULL };
	struct proc_result r;
	assert_int_equal(proc_run(args, NULL, NULL, 30000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.err, "Converted 2 buffered MQTT messages from mqtt_queue: 1 queued, "
				      "0 duplicates, 0 rejected, 1 filtered"));
	assert_null(strstr(r.err, "remain in mqtt_queue"));
	proc_result_free(&r);
	assert_int_equal(fake_ilert_count(f->fake), 1);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_string_equal(req->path, "/api/v1/events/mqtt/il1apiF0000001");
	assert_non_null(strstr(req->body, "\"summary\":\"keep\""));
	fake_request_free(req);
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM mqtt_queue"), 0);
	assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM event_items"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kept_without_topics_then_converted, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_filtered_rows_deleted, daemon_fixture_setup, daemon_fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
