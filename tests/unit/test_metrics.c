#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/message.h"
#include "ops/metrics.h"
#include "proc.h"
#include "version.h"

/* Every family of SPEC §19, in the order of its table. */
static const struct {
	const char *name;
	const char *type;
} families[] = {
	{ "ilagent_received_total", "counter" },
	{ "ilagent_rejected_total", "counter" },
	{ "ilagent_filtered_total", "counter" },
	{ "ilagent_deduplicated_total", "counter" },
	{ "ilagent_committed_total", "counter" },
	{ "ilagent_forwarded_total", "counter" },
	{ "ilagent_retried_total", "counter" },
	{ "ilagent_dead_lettered_total", "counter" },
	{ "ilagent_heartbeats_expired_total", "counter" },
	{ "ilagent_dead_letters_evicted_total", "counter" },
	{ "ilagent_ilert_requests_total", "counter" },
	{ "ilagent_http_requests_total", "counter" },
	{ "ilagent_heartbeat_pings_total", "counter" },
	{ "ilagent_policy_cache_total", "counter" },
	{ "ilagent_mqtt_connections_total", "counter" },
	{ "ilagent_tls_reloads_total", "counter" },
	{ "ilagent_kafka_rebalances_total", "counter" },
	{ "ilagent_intake_pauses_total", "counter" },
	{ "ilagent_queue_rows", "gauge" },
	{ "ilagent_queue_retrying_rows", "gauge" },
	{ "ilagent_queue_oldest_age_seconds", "gauge" },
	{ "ilagent_dead_letter_rows", "gauge" },
	{ "ilagent_legacy_mqtt_queue_rows", "gauge" },
	{ "ilagent_in_flight", "gauge" },
	{ "ilagent_ring_fill_ratio", "gauge" },
	{ "ilagent_intake_paused", "gauge" },
	{ "ilagent_component_ready", "gauge" },
	{ "ilagent_build_info", "gauge" },
	{ "ilagent_start_time_seconds", "gauge" },
	{ "ilagent_commit_latency_seconds", "histogram" },
	{ "ilagent_forward_duration_seconds", "histogram" },
	{ "ilagent_delivery_delay_seconds", "histogram" },
};
#define FAMILY_COUNT (sizeof families / sizeof families[0])

static const char *const sources[] = { "http", "mqtt", "kafka", "legacy" };
static const char *const kinds[] = { "event", "heartbeat", "policy" };

/* Where the whole line occurs in text, or NULL. */
static const char *find_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = strstr(text, line); p; p = strstr(p + 1, line)) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return p;
	}
	return NULL;
}

#define assert_line(text, line)                                                              \
	do {                                                                                 \
		if (!find_line((text), (line)))                                              \
			fail_msg("missing line: %s", (line));                                \
	} while (0)

#define assert_no_line(text, line)                                                           \
	do {                                                                                 \
		if (find_line((text), (line)))                                               \
			fail_msg("unexpected line: %s", (line));                             \
	} while (0)

static char *render(void)
{
	char *text = metrics_render();
	assert_non_null(text);
	return text;
}

static int setup(void **state)
{
	(void)state;
	metrics_init();
	return 0;
}

/* ---- families ------------------------------------------------------------------------- */

static void test_all_families_help_and_type_in_order(void **state)
{
	(void)state;
	char *text = render();
	const char *prev = text;
	char line[160];
	for (size_t i = 0; i < FAMILY_COUNT; i++) {
		snprintf(line, sizeof line, "# HELP %s ", families[i].name);
		const char *help = strstr(text, line);
		if (!help || (help != text && help[-1] != '\n'))
			fail_msg("no HELP for %s", families[i].name);
		if (help < prev)
			fail_msg("%s out of order", families[i].name);
		assert_true(help[strlen(line)] != '\n'); /* a non-empty help text */
		snprintf(line, sizeof line, "# TYPE %s %s", families[i].name, families[i].type);
		const char *type = find_line(text, line);
		if (!type)
			fail_msg("missing line: %s", line);
		/* TYPE directly follows its HELP line. */
		assert_ptr_equal(strchr(help, '\n') + 1, type);
		prev = type;
	}
	/* No other families. */
	size_t helps = 0;
	for (const char *p = strstr(text, "# HELP "); p; p = strstr(p + 1, "# HELP "))
		helps++;
	assert_int_equal(helps, FAMILY_COUNT);
	free(text);
}

/* Every sample belongs to the family declared above it; counters end in _total. */
static void test_samples_follow_their_family(void **state)
{
	(void)state;
	metrics_ilert_request(ME_EVENTS, 202, 0);
	metrics_http_request(MRT_HEALTH, 204);
	metrics_set_component(MCOMP_DAEMON, 1, 1);
	char *text = render();
	char family[96] = "";
	char type[16] = "";
	size_t samples = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (sscanf(line, "# TYPE %95s %15s", family, type) == 2) {
			if (strcmp(type, "counter") == 0)
				assert_non_null(strstr(family, "_total"));
			continue;
		}
		size_t n = strcspn(line, "{ ");
		char name[128];
		assert_true(n < sizeof name);
		memcpy(name, line, n);
		name[n] = '\0';
		if (strcmp(type, "histogram") == 0) {
			size_t f = strlen(family);
			assert_memory_equal(name, family, f);
			const char *suffix = name + f;
			if (strcmp(suffix, "_bucket") && strcmp(suffix, "_sum") &&
			    strcmp(suffix, "_count"))
				fail_msg("sample %s in histogram %s", name, family);
		} else {
			assert_string_equal(name, family);
		}
		samples++;
	}
	assert_true(samples > 0);
	free(text);
}

/* ---- zero series ---------------------------------------------------------------------- */

static void test_enumerated_series_start_at_zero(void **state)
{
	(void)state;
	char *text = render();
	char line[200];
	for (int s = 0; s < 4; s++) {
		snprintf(line, sizeof line, "ilagent_received_total{source=\"%s\"} 0", sources[s]);
		assert_line(text, line);
		snprintf(line, sizeof line, "ilagent_filtered_total{source=\"%s\"} 0", sources[s]);
		assert_line(text, line);
		snprintf(line, sizeof line, "ilagent_deduplicated_total{source=\"%s\"} 0",
			 sources[s]);
		assert_line(text, line);
		snprintf(line, sizeof line, "ilagent_heartbeats_expired_total{source=\"%s\"} 0",
			 sources[s]);
		assert_line(text, line);
		for (int k = 0; k < 3; k++) {
			snprintf(line, sizeof line,
				 "ilagent_committed_total{source=\"%s\",kind=\"%s\"} 0", sources[s],
				 kinds[k]);
			assert_line(text, line);
			snprintf(line, sizeof line,
				 "ilagent_forwarded_total{source=\"%s\",kind=\"%s\"} 0", sources[s],
				 kinds[k]);
			assert_line(text, line);
		}
	}
	static const char *const reasons[] = { "invalid", "too_large", "unmatched_topic",
					       "unauthorized", "queue_full", "busy",
					       "shutting_down", "store_error" };
	for (size_t r = 0; r < 8; r++) {
		snprintf(line, sizeof line, "ilagent_rejected_total{source=\"kafka\",reason=\"%s\"} 0",
			 reasons[r]);
		assert_line(text, line);
	}
	static const char *const causes[] = { "network", "timeout", "http_408", "http_425",
					      "http_429", "http_5xx", "invalid_response",
					      "stale_cache" };
	for (size_t c = 0; c < 8; c++) {
		snprintf(line, sizeof line,
			 "ilagent_retried_total{source=\"legacy\",kind=\"policy\",cause=\"%s\"} 0",
			 causes[c]);
		assert_line(text, line);
	}
	assert_line(text, "ilagent_dead_lettered_total{source=\"mqtt\",kind=\"heartbeat\",reason=\"permanent\"} 0");
	assert_line(text, "ilagent_dead_lettered_total{source=\"mqtt\",kind=\"heartbeat\",reason=\"exhausted\"} 0");
	assert_line(text, "ilagent_dead_letters_evicted_total 0");
	assert_line(text, "ilagent_heartbeat_pings_total{origin=\"pinger\",outcome=\"success\"} 0");
	assert_line(text, "ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"failure\"} 0");
	assert_line(text, "ilagent_policy_cache_total{cache=\"user\",result=\"hit\"} 0");
	assert_line(text, "ilagent_policy_cache_total{cache=\"policy\",result=\"miss\"} 0");
	assert_line(text, "ilagent_mqtt_connections_total{result=\"success\"} 0");
	assert_line(text, "ilagent_mqtt_connections_total{result=\"failure\"} 0");
	assert_line(text, "ilagent_tls_reloads_total{result=\"applied\"} 0");
	assert_line(text, "ilagent_tls_reloads_total{result=\"invalid\"} 0");
	assert_line(text, "ilagent_kafka_rebalances_total{type=\"assign\"} 0");
	assert_line(text, "ilagent_kafka_rebalances_total{type=\"revoke\"} 0");
	assert_line(text, "ilagent_intake_pauses_total 0");
	assert_line(text, "ilagent_queue_rows{kind=\"event\"} 0");
	assert_line(text, "ilagent_queue_rows{kind=\"heartbeat\"} 0");
	assert_line(text, "ilagent_queue_rows{kind=\"policy\"} 0");
	assert_line(text, "ilagent_queue_retrying_rows 0");
	assert_line(text, "ilagent_queue_oldest_age_seconds 0");
	assert_line(text, "ilagent_dead_letter_rows 0");
	assert_line(text, "ilagent_legacy_mqtt_queue_rows 0");
	assert_line(text, "ilagent_in_flight 0");
	assert_line(text, "ilagent_ring_fill_ratio{ring=\"intake\"} 0");
	assert_line(text, "ilagent_ring_fill_ratio{ring=\"dispatch\"} 0");
	assert_line(text, "ilagent_intake_paused 0");
	assert_line(text, "ilagent_commit_latency_seconds_bucket{le=\"0.0005\"} 0");
	assert_line(text, "ilagent_commit_latency_seconds_bucket{le=\"+Inf\"} 0");
	assert_line(text, "ilagent_commit_latency_seconds_sum 0");
	assert_line(text, "ilagent_commit_latency_seconds_count 0");
	for (int k = 0; k < 3; k++) {
		snprintf(line, sizeof line,
			 "ilagent_forward_duration_seconds_count{kind=\"%s\"} 0", kinds[k]);
		assert_line(text, line);
		snprintf(line, sizeof line,
			 "ilagent_delivery_delay_seconds_bucket{kind=\"%s\",le=\"+Inf\"} 0", kinds[k]);
		assert_line(text, line);
	}
	/* Code-labelled and component series only exist once they have something to say. */
	assert_null(strstr(text, "ilagent_ilert_requests_total{"));
	assert_null(strstr(text, "ilagent_http_requests_total{"));
	assert_null(strstr(text, "ilagent_component_ready{"));
	free(text);
}

/* ---- counters ------------------------------------------------------------------------- */

static void test_counters_update(void **state)
{
	(void)state;
	metrics_received(SOURCE_HTTP, 5);
	metrics_received(SOURCE_HTTP, 2);
	metrics_received(SOURCE_LEGACY, 1);
	metrics_rejected(SOURCE_MQTT, MR_UNMATCHED_TOPIC, 3);
	metrics_rejected(SOURCE_HTTP, MR_QUEUE_FULL, 1000);
	metrics_filtered(SOURCE_KAFKA);
	metrics_filtered(SOURCE_KAFKA);
	metrics_deduplicated(SOURCE_MQTT, 4);
	metrics_committed(SOURCE_HTTP, STORE_KIND_EVENT, 6);
	metrics_committed(SOURCE_KAFKA, STORE_KIND_POLICY, 1);
	metrics_forwarded(SOURCE_HTTP, STORE_KIND_EVENT);
	metrics_forwarded(SOURCE_MQTT, STORE_KIND_HEARTBEAT);
	metrics_retried(SOURCE_HTTP, STORE_KIND_EVENT, MC_HTTP_429);
	metrics_retried(SOURCE_HTTP, STORE_KIND_EVENT, MC_HTTP_429);
	metrics_retried(SOURCE_KAFKA, STORE_KIND_POLICY, MC_STALE_CACHE);
	metrics_dead_lettered(SOURCE_LEGACY, STORE_KIND_EVENT, STORE_DEAD_EXHAUSTED);
	metrics_dead_lettered(SOURCE_HTTP, STORE_KIND_HEARTBEAT, STORE_DEAD_PERMANENT);
	metrics_heartbeat_expired(SOURCE_MQTT);
	metrics_dead_letters_evicted(17);
	metrics_heartbeat_ping(MP_PINGER, 1);
	metrics_heartbeat_ping(MP_PROXY, 0);
	metrics_heartbeat_ping(MP_PROXY, 0);
	metrics_policy_cache(1, 1);
	metrics_policy_cache(0, 0);
	metrics_policy_cache(0, 0);
	metrics_mqtt_connection(1);
	metrics_mqtt_connection(0);
	metrics_mqtt_connection(0);
	metrics_tls_reload(1);
	metrics_tls_reload(0);
	metrics_tls_reload(0);
	metrics_kafka_rebalance(1);
	metrics_kafka_rebalance(0);
	metrics_kafka_rebalance(0);
	metrics_intake_pause();
	/* Out-of-range labels are ignored, not written past the tables. */
	metrics_received(SOURCE_COUNT, 9);
	metrics_committed(SOURCE_HTTP, STORE_KIND_UNKNOWN, 9);
	metrics_rejected(SOURCE_HTTP, MR_COUNT, 9);

	char *text = render();
	assert_line(text, "ilagent_received_total{source=\"http\"} 7");
	assert_line(text, "ilagent_received_total{source=\"mqtt\"} 0");
	assert_line(text, "ilagent_received_total{source=\"legacy\"} 1");
	assert_line(text, "ilagent_rejected_total{source=\"mqtt\",reason=\"unmatched_topic\"} 3");
	assert_line(text, "ilagent_rejected_total{source=\"http\",reason=\"queue_full\"} 1000");
	assert_line(text, "ilagent_rejected_total{source=\"http\",reason=\"invalid\"} 0");
	assert_line(text, "ilagent_filtered_total{source=\"kafka\"} 2");
	assert_line(text, "ilagent_deduplicated_total{source=\"mqtt\"} 4");
	assert_line(text, "ilagent_committed_total{source=\"http\",kind=\"event\"} 6");
	assert_line(text, "ilagent_committed_total{source=\"kafka\",kind=\"policy\"} 1");
	assert_line(text, "ilagent_forwarded_total{source=\"http\",kind=\"event\"} 1");
	assert_line(text, "ilagent_forwarded_total{source=\"mqtt\",kind=\"heartbeat\"} 1");
	assert_line(text, "ilagent_retried_total{source=\"http\",kind=\"event\",cause=\"http_429\"} 2");
	assert_line(text, "ilagent_retried_total{source=\"kafka\",kind=\"policy\",cause=\"stale_cache\"} 1");
	assert_line(text, "ilagent_dead_lettered_total{source=\"legacy\",kind=\"event\",reason=\"exhausted\"} 1");
	assert_line(text, "ilagent_dead_lettered_total{source=\"http\",kind=\"heartbeat\",reason=\"permanent\"} 1");
	assert_line(text, "ilagent_heartbeats_expired_total{source=\"mqtt\"} 1");
	assert_line(text, "ilagent_dead_letters_evicted_total 17");
	assert_line(text, "ilagent_heartbeat_pings_total{origin=\"pinger\",outcome=\"success\"} 1");
	assert_line(text, "ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"failure\"} 2");
	assert_line(text, "ilagent_policy_cache_total{cache=\"user\",result=\"hit\"} 1");
	assert_line(text, "ilagent_policy_cache_total{cache=\"policy\",result=\"miss\"} 2");
	assert_line(text, "ilagent_mqtt_connections_total{result=\"success\"} 1");
	assert_line(text, "ilagent_mqtt_connections_total{result=\"failure\"} 2");
	assert_line(text, "ilagent_tls_reloads_total{result=\"applied\"} 1");
	assert_line(text, "ilagent_tls_reloads_total{result=\"invalid\"} 2");
	assert_line(text, "ilagent_kafka_rebalances_total{type=\"assign\"} 1");
	assert_line(text, "ilagent_kafka_rebalances_total{type=\"revoke\"} 2");
	assert_line(text, "ilagent_intake_pauses_total 1");
	free(text);

	/* metrics_init starts over. */
	metrics_init();
	text = render();
	assert_line(text, "ilagent_received_total{source=\"http\"} 0");
	assert_line(text, "ilagent_dead_letters_evicted_total 0");
	free(text);
}

static void test_code_labels_only_when_seen(void **state)
{
	(void)state;
	metrics_ilert_request(ME_EVENTS, 202, 0);
	metrics_ilert_request(ME_EVENTS, 202, 0);
	metrics_ilert_request(ME_EVENTS, 503, 0);
	metrics_ilert_request(ME_EVENTS_MQTT, 0, 0);
	metrics_ilert_request(ME_PINGS, 0, 1);
	metrics_ilert_request(ME_ESCALATION_POLICY_LEVELS, 100, 0);
	metrics_ilert_request(ME_USERS_SEARCH_EMAIL, 599, 0);
	metrics_http_request(MRT_HEARTBEATS, 200);
	metrics_http_request(MRT_ROOT, 200);
	metrics_http_request(MRT_EVENTS_BATCH, 413);
	metrics_http_request(MRT_OTHER, 404);
	metrics_http_request(MRT_OTHER, 404);
	/* Not HTTP statuses: not counted. */
	metrics_ilert_request(ME_EVENTS, 99, 0);
	metrics_ilert_request(ME_EVENTS, 600, 0);
	metrics_http_request(MRT_HEALTH, 0);
	metrics_http_request(MRT_HEALTH, 1000);

	char *text = render();
	/* Ascending codes, transport errors after them, endpoints in enum order. */
	const char *expected =
		"# TYPE ilagent_ilert_requests_total counter\n"
		"ilagent_ilert_requests_total{endpoint=\"events\",code=\"202\"} 2\n"
		"ilagent_ilert_requests_total{endpoint=\"events\",code=\"503\"} 1\n"
		"ilagent_ilert_requests_total{endpoint=\"events_mqtt\",code=\"network\"} 1\n"
		"ilagent_ilert_requests_total{endpoint=\"pings\",code=\"timeout\"} 1\n"
		"ilagent_ilert_requests_total{endpoint=\"users_search_email\",code=\"599\"} 1\n"
		"ilagent_ilert_requests_total{endpoint=\"escalation_policy_levels\",code=\"100\"} 1\n"
		"# HELP ilagent_http_requests_total ";
	if (!strstr(text, expected))
		fail_msg("ilert request series differ:\n%s", text);
	expected = "# TYPE ilagent_http_requests_total counter\n"
		   "ilagent_http_requests_total{route=\"/\",code=\"200\"} 1\n"
		   "ilagent_http_requests_total{route=\"/api/events/batch\",code=\"413\"} 1\n"
		   "ilagent_http_requests_total{route=\"/api/heartbeats/{key}\",code=\"200\"} 1\n"
		   "ilagent_http_requests_total{route=\"other\",code=\"404\"} 2\n"
		   "# HELP ilagent_heartbeat_pings_total ";
	if (!strstr(text, expected))
		fail_msg("http request series differ:\n%s", text);
	free(text);

	metrics_http_request(MRT_HEALTH, 204);
	metrics_http_request(MRT_READY, 503);
	metrics_http_request(MRT_METRICS, 200);
	metrics_http_request(MRT_EVENTS, 202);
	metrics_ilert_request(ME_EVENTS_KAFKA, 429, 0);
	metrics_ilert_request(ME_HEARTBEATS, 202, 0);
	metrics_ilert_request(ME_ESCALATION_POLICIES_RESOLVE, 404, 0);
	text = render();
	assert_line(text, "ilagent_http_requests_total{route=\"/health\",code=\"204\"} 1");
	assert_line(text, "ilagent_http_requests_total{route=\"/ready\",code=\"503\"} 1");
	assert_line(text, "ilagent_http_requests_total{route=\"/metrics\",code=\"200\"} 1");
	assert_line(text, "ilagent_http_requests_total{route=\"/api/events\",code=\"202\"} 1");
	assert_line(text, "ilagent_ilert_requests_total{endpoint=\"events_kafka\",code=\"429\"} 1");
	assert_line(text, "ilagent_ilert_requests_total{endpoint=\"heartbeats\",code=\"202\"} 1");
	assert_line(text, "ilagent_ilert_requests_total{endpoint=\"escalation_policies_resolve\",code=\"404\"} 1");
	free(text);
}

/* ---- gauges --------------------------------------------------------------------------- */

static void test_gauges(void **state)
{
	(void)state;
	metrics_set_queue_rows(STORE_KIND_EVENT, 1000000);
	metrics_set_queue_rows(STORE_KIND_HEARTBEAT, 3);
	metrics_set_queue_rows(STORE_KIND_POLICY, 0);
	metrics_set_retrying_rows(12);
	metrics_set_oldest_age(12.25);
	metrics_set_dead_rows(100000);
	metrics_set_legacy_rows(42);
	metrics_add_in_flight(1);
	metrics_add_in_flight(1);
	metrics_add_in_flight(1);
	metrics_add_in_flight(-1);
	metrics_set_ring_fill(MRING_INTAKE, 0.5);
	metrics_set_ring_fill(MRING_DISPATCH, 1);
	metrics_set_paused(1);
	metrics_set_component(MCOMP_DAEMON, 1, 1);
	metrics_set_component(MCOMP_QUEUE, 1, 0);
	metrics_set_component(MCOMP_KAFKA, 0, 1);

	char *text = render();
	assert_line(text, "ilagent_queue_rows{kind=\"event\"} 1000000");
	assert_line(text, "ilagent_queue_rows{kind=\"heartbeat\"} 3");
	assert_line(text, "ilagent_queue_rows{kind=\"policy\"} 0");
	assert_line(text, "ilagent_queue_retrying_rows 12");
	assert_line(text, "ilagent_queue_oldest_age_seconds 12.25");
	assert_line(text, "ilagent_dead_letter_rows 100000");
	assert_line(text, "ilagent_legacy_mqtt_queue_rows 42");
	assert_line(text, "ilagent_in_flight 2");
	assert_line(text, "ilagent_ring_fill_ratio{ring=\"intake\"} 0.5");
	assert_line(text, "ilagent_ring_fill_ratio{ring=\"dispatch\"} 1");
	assert_line(text, "ilagent_intake_paused 1");
	const char *ready = "# TYPE ilagent_component_ready gauge\n"
			    "ilagent_component_ready{component=\"daemon\"} 1\n"
			    "ilagent_component_ready{component=\"queue\"} 0\n"
			    "# HELP ilagent_build_info ";
	if (!strstr(text, ready))
		fail_msg("component series differ:\n%s", text);
	free(text);

	metrics_add_in_flight(-2);
	metrics_set_paused(0);
	metrics_set_oldest_age(0);
	metrics_set_ring_fill(MRING_INTAKE, 0.000244140625);
	metrics_set_component(MCOMP_MQTT, 1, 1);
	metrics_set_component(MCOMP_DAEMON, 1, 0);
	metrics_set_component(MCOMP_QUEUE, 0, 0);
	text = render();
	assert_line(text, "ilagent_in_flight 0");
	assert_line(text, "ilagent_intake_paused 0");
	assert_line(text, "ilagent_queue_oldest_age_seconds 0");
	assert_line(text, "ilagent_ring_fill_ratio{ring=\"intake\"} 0.000244140625");
	assert_line(text, "ilagent_component_ready{component=\"daemon\"} 0");
	assert_line(text, "ilagent_component_ready{component=\"mqtt\"} 1");
	assert_null(strstr(text, "ilagent_component_ready{component=\"queue\"}"));
	assert_null(strstr(text, "ilagent_component_ready{component=\"kafka\"}"));
	free(text);
}

static void test_build_info_and_start_time(void **state)
{
	(void)state;
	time_t before = time(NULL);
	metrics_init();
	time_t after = time(NULL);
	char *text = render();
	assert_line(text, "ilagent_build_info{version=\"" ILAGENT_VERSION "\"} 1");
	const char *p = strstr(text, "\nilagent_start_time_seconds ");
	assert_non_null(p);
	p += strlen("\nilagent_start_time_seconds ");
	char *end;
	double start = strtod(p, &end);
	assert_int_equal(*end, '\n');
	/* Plain decimal notation, as the process start time of Prometheus clients. */
	assert_null(memchr(p, 'e', (size_t)(end - p)));
	assert_true(start >= (double)before && start < (double)after + 1);
	free(text);
}

/* ---- histograms ----------------------------------------------------------------------- */

static void test_commit_latency_buckets(void **state)
{
	(void)state;
	metrics_observe_commit_latency(0.0005); /* on a bound: le is inclusive */
	metrics_observe_commit_latency(0.003);
	metrics_observe_commit_latency(0.003);
	metrics_observe_commit_latency(2.5);
	metrics_observe_commit_latency(100);
	metrics_observe_commit_latency(-1); /* counts as 0 */
	metrics_observe_commit_latency(NAN); /* ignored */
	char *text = render();
	const char *expected =
		"# TYPE ilagent_commit_latency_seconds histogram\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.0005\"} 2\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.001\"} 2\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.0025\"} 2\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.005\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.01\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.025\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.05\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.1\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.25\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"0.5\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"1\"} 4\n"
		"ilagent_commit_latency_seconds_bucket{le=\"2.5\"} 5\n"
		"ilagent_commit_latency_seconds_bucket{le=\"+Inf\"} 6\n"
		"ilagent_commit_latency_seconds_sum 102.5065\n"
		"ilagent_commit_latency_seconds_count 6\n"
		"# HELP ilagent_forward_duration_seconds ";
	if (!strstr(text, expected))
		fail_msg("commit latency histogram differs:\n%s", text);
	free(text);
}

static void test_kind_histograms(void **state)
{
	(void)state;
	metrics_observe_forward_duration(STORE_KIND_HEARTBEAT, 0.2);
	metrics_observe_forward_duration(STORE_KIND_HEARTBEAT, 25);
	metrics_observe_forward_duration(STORE_KIND_HEARTBEAT, 61);
	metrics_observe_forward_duration(STORE_KIND_UNKNOWN, 1); /* ignored */
	metrics_observe_delivery_delay(STORE_KIND_POLICY, 0.05);
	metrics_observe_delivery_delay(STORE_KIND_POLICY, 4000);
	char *text = render();
	const char *forward =
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"0.01\"} 0\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"0.025\"} 0\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"0.05\"} 0\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"0.1\"} 0\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"0.25\"} 1\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"0.5\"} 1\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"1\"} 1\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"2.5\"} 1\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"5\"} 1\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"10\"} 1\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"25\"} 2\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"60\"} 2\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"heartbeat\",le=\"+Inf\"} 3\n"
		"ilagent_forward_duration_seconds_sum{kind=\"heartbeat\"} 86.2\n"
		"ilagent_forward_duration_seconds_count{kind=\"heartbeat\"} 3\n"
		"ilagent_forward_duration_seconds_bucket{kind=\"policy\",le=\"0.01\"} 0\n";
	if (!strstr(text, forward))
		fail_msg("forward duration histogram differs:\n%s", text);
	assert_line(text, "ilagent_forward_duration_seconds_bucket{kind=\"event\",le=\"+Inf\"} 0");
	assert_line(text, "ilagent_forward_duration_seconds_count{kind=\"policy\"} 0");

	const char *delay =
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"0.05\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"0.1\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"0.5\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"1\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"5\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"10\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"30\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"60\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"300\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"900\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"3600\"} 1\n"
		"ilagent_delivery_delay_seconds_bucket{kind=\"policy\",le=\"+Inf\"} 2\n"
		"ilagent_delivery_delay_seconds_sum{kind=\"policy\"} 4000.05\n"
		"ilagent_delivery_delay_seconds_count{kind=\"policy\"} 2\n";
	if (!strstr(text, delay))
		fail_msg("delivery delay histogram differs:\n%s", text);
	assert_line(text, "ilagent_delivery_delay_seconds_bucket{kind=\"event\",le=\"0.05\"} 0");
	free(text);
}

/* ---- concurrency ---------------------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_received(SOURCE_MQTT, 1);
		metrics_ilert_request(ME_EVENTS, 202, 0);
		metrics_add_in_flight(1);
		metrics_observe_commit_latency(0.25);
		metrics_add_in_flight(-1);
	}
	return NULL;
}

/* Reads the value of a sample line, or -1. */
static long long sample_value(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix);
	if (!p)
		return -1;
	return strtoll(p + strlen(prefix), NULL, 10);
}

static void test_concurrent_updates_are_exact(void **state)
{
	(void)state;
	pthread_t threads[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, hammer, NULL), 0);
	/* Rendering while updates land: the histogram stays self-consistent. */
	for (int r = 0; r < 5; r++) {
		char *text = render();
		long long inf = sample_value(text, "ilagent_commit_latency_seconds_bucket{le=\"+Inf\"} ");
		long long count = sample_value(text, "ilagent_commit_latency_seconds_count ");
		assert_true(inf >= 0);
		assert_int_equal(inf, count);
		free(text);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);

	char *text = render();
	char line[160];
	snprintf(line, sizeof line, "ilagent_received_total{source=\"mqtt\"} %d",
		 THREADS * PER_THREAD);
	assert_line(text, line);
	snprintf(line, sizeof line, "ilagent_ilert_requests_total{endpoint=\"events\",code=\"202\"} %d",
		 THREADS * PER_THREAD);
	assert_line(text, line);
	snprintf(line, sizeof line, "ilagent_commit_latency_seconds_bucket{le=\"0.25\"} %d",
		 THREADS * PER_THREAD);
	assert_line(text, line);
	snprintf(line, sizeof line, "ilagent_commit_latency_seconds_count %d",
		 THREADS * PER_THREAD);
	assert_line(text, line);
	/* 0.25 is exact in binary, so the sum is too. */
	snprintf(line, sizeof line, "ilagent_commit_latency_seconds_sum %d",
		 THREADS * PER_THREAD / 4);
	assert_line(text, line);
	assert_line(text, "ilagent_in_flight 0");
	free(text);
}

/* ---- promtool ------------------------------------------------------------------------- */

/* A registry where every kind of series has a non-trivial value. */
static void populate(void)
{
	metrics_received(SOURCE_HTTP, 3);
	metrics_rejected(SOURCE_HTTP, MR_INVALID, 1);
	metrics_filtered(SOURCE_MQTT);
	metrics_deduplicated(SOURCE_KAFKA, 2);
	metrics_committed(SOURCE_HTTP, STORE_KIND_EVENT, 2);
	metrics_forwarded(SOURCE_HTTP, STORE_KIND_EVENT);
	metrics_retried(SOURCE_HTTP, STORE_KIND_EVENT, MC_HTTP_5XX);
	metrics_dead_lettered(SOURCE_MQTT, STORE_KIND_POLICY, STORE_DEAD_PERMANENT);
	metrics_heartbeat_expired(SOURCE_HTTP);
	metrics_dead_letters_evicted(1);
	metrics_ilert_request(ME_EVENTS, 202, 0);
	metrics_ilert_request(ME_PINGS, 0, 1);
	metrics_ilert_request(ME_USERS_SEARCH_EMAIL, 0, 0);
	metrics_http_request(MRT_HEARTBEATS, 200);
	metrics_http_request(MRT_ROOT, 200);
	metrics_heartbeat_ping(MP_PROXY, 1);
	metrics_policy_cache(1, 0);
	metrics_mqtt_connection(1);
	metrics_tls_reload(1);
	metrics_kafka_rebalance(1);
	metrics_intake_pause();
	metrics_set_queue_rows(STORE_KIND_EVENT, 5);
	metrics_set_retrying_rows(1);
	metrics_set_oldest_age(3.5);
	metrics_set_dead_rows(1);
	metrics_set_legacy_rows(0);
	metrics_add_in_flight(2);
	metrics_set_ring_fill(MRING_INTAKE, 0.125);
	metrics_set_paused(1);
	metrics_set_component(MCOMP_DAEMON, 1, 1);
	metrics_set_component(MCOMP_MQTT, 1, 0);
	metrics_set_component(MCOMP_KAFKA, 1, 1);
	metrics_set_component(MCOMP_QUEUE, 1, 1);
	metrics_observe_commit_latency(0.002);
	metrics_observe_forward_duration(STORE_KIND_EVENT, 0.3);
	metrics_observe_delivery_delay(STORE_KIND_EVENT, 1.5);
}

/* promtool reads the exposition from stdin; exit 0 and silence mean it parsed and found
 * nothing to lint. */
static void promtool_check(const char *text)
{
	char *dir = test_mkdtemp();
	assert_non_null(dir);
	char path[512];
	snprintf(path, sizeof path, "%s/metrics.txt", dir);
	assert_int_equal(test_write_file(path, text, strlen(text)), 0);
	char *stored = test_read_file(path, NULL);
	assert_non_null(stored);

	static const char *const argv[] = { "promtool", "check", "metrics", NULL };
	struct proc_result res;
	int rc = proc_run(argv, NULL, stored, 30000, &res);
	free(stored);
	test_rmtree(dir);
	free(dir);
	if (rc != 0)
		fail_msg("promtool could not be started: install the Debian package "
			 "`prometheus` (scripts/deps.sh)");
	if (res.exit_code != 0 || res.out[0] || res.err[0])
		fail_msg("promtool check metrics: exit %d\nstdout: %s\nstderr: %s\ninput:\n%s",
			 res.exit_code, res.out, res.err, text);
	proc_result_free(&res);
}

static void test_promtool_accepts_fresh_registry(void **state)
{
	(void)state;
	char *text = render();
	promtool_check(text);
	free(text);
}

static void test_promtool_accepts_populated_registry(void **state)
{
	(void)state;
	populate();
	char *text = render();
	promtool_check(text);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_all_families_help_and_type_in_order, setup),
		cmocka_unit_test_setup(test_samples_follow_their_family, setup),
		cmocka_unit_test_setup(test_enumerated_series_start_at_zero, setup),
		cmocka_unit_test_setup(test_counters_update, setup),
		cmocka_unit_test_setup(test_code_labels_only_when_seen, setup),
		cmocka_unit_test_setup(test_gauges, setup),
		cmocka_unit_test_setup(test_build_info_and_start_time, setup),
		cmocka_unit_test_setup(test_commit_latency_buckets, setup),
		cmocka_unit_test_setup(test_kind_histograms, setup),
		cmocka_unit_test_setup(test_concurrent_updates_are_exact, setup),
		cmocka_unit_test_setup(test_promtool_accepts_fresh_registry, setup),
		cmocka_unit_test_setup(test_promtool_accepts_populated_registry, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
