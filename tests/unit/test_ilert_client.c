/* ilert client: Retry-After parsing, outcome classes, metric labels, URL building with
 * percent-encoded and masked keys, body excerpts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "core/err.h"
#include "ilert/client.h"

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define T0_S 784111777LL
#define T0_MS (T0_S * 1000)

static int64_t retry_after(const char *value, int64_t now_ms)
{
	int64_t delay = -42;
	assert_int_equal(ilert_parse_retry_after(value, now_ms, &delay), 0);
	return delay;
}

static void assert_retry_after_invalid(const char *value)
{
	int64_t delay = -42;
	assert_int_equal(ilert_parse_retry_after(value, T0_MS, &delay), ILA_ERR_INVALID);
	assert_int_equal(delay, -42);
}

static void test_retry_after_delta(void **state)
{
	(void)state;
	assert_int_equal(retry_after("0", T0_MS), 0);
	assert_int_equal(retry_after("1", T0_MS), 1000);
	assert_int_equal(retry_after("120", T0_MS), 120000);
	assert_int_equal(retry_after(" 7\t", T0_MS), 7000);
	assert_int_equal(retry_after("0007", T0_MS), 7000);
	assert_int_equal(retry_after("3600", T0_MS), 3600000);
}

static void test_retry_after_cap(void **state)
{
	(void)state;
	assert_int_equal(retry_after("3601", T0_MS), 3600000);
	assert_int_equal(retry_after("86400", T0_MS), 3600000);
	assert_int_equal(retry_after("99999999999999999999999999999", T0_MS), 3600000);
	assert_int_equal(retry_after("Sun, 06 Nov 1994 10:49:37 GMT", T0_MS), 3600000);
	assert_int_equal(retry_after("Fri, 01 Jan 2100 00:00:00 GMT", T0_MS), 3600000);
}

static void test_retry_after_imf_fixdate(void **state)
{
	(void)state;
	assert_int_equal(retry_after("Sun, 06 Nov 1994 08:50:37 GMT", T0_MS), 60000);
	/* Milliseconds of "now" count: the date is 59.5 s away. */
	assert_int_equal(retry_after("Sun, 06 Nov 1994 08:50:37 GMT", T0_MS + 500), 59500);
	assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T0_MS), 0);
	/* Across a month end and a year end. */
	assert_int_equal(retry_after("Thu, 01 Jan 2026 00:00:10 GMT",
				     (int64_t)1767225600 * 1000),
			 10000);
}

static void test_retry_after_past_is_zero(void **state)
{
	(void)state;
	assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:36 GMT", T0_MS), 0);
	assert_int_equal(retry_after("Thu, 01 Jan 1970 00:00:00 GMT", T0_MS), 0);
	assert_int_equal(retry_after("Sunday, 06-Nov-94 07:00:00 GMT", T0_MS), 0);
}

static void test_retry_after_obsolete_dates(void **state)
{
	(void)state;
	assert_int_equal(retry_after("Sunday, 06-Nov-94 08:49:47 GMT", T0_MS), 10000);
	assert_int_equal(retry_after("Sun Nov  6 08:49:57 1994", T0_MS), 20000);
	assert_int_equal(retry_after("Sun Nov 06 08:49:57 1994", T0_MS), 20000);
	assert_int_equal(retry_after("Thursday, 01-Jan-26 00:00:05 GMT",
				     (int64_t)1767225600 * 1000),
			 5000);
}

static void test_retry_after_garbage(void **state)
{
	(void)state;
	assert_retry_after_invalid(NULL);
	assert_retry_after_invalid("");
	assert_retry_after_invalid("   ");
	assert_retry_after_invalid("soon");
	assert_retry_after_invalid("-5");
	assert_retry_after_invalid("+5");
	assert_retry_after_invalid("1.5");
	assert_retry_after_invalid("10s");
	assert_retry_after_invalid("1 0");
	assert_retry_after_invalid("Sun, 06 Nov 1994 08:49:37 UTC");
	assert_retry_after_invalid("Sun, 06 Nov 1994 08:49:37");
	assert_retry_after_invalid("Sun, 06 Nov 1994 08:49:37 GMT trailing");
	assert_retry_after_invalid("Sun, 32 Nov 1994 08:49:37 GMT");
	assert_retry_after_invalid("Sun, 00 Nov 1994 08:49:37 GMT");
	assert_retry_after_invalid("Sun, 06 Foo 1994 08:49:37 GMT");
	assert_retry_after_invalid("Sun, 06 Nov 1994 24:49:37 GMT");
	assert_retry_after_invalid("Sun, 06 Nov 1994 08:60:37 GMT");
	assert_retry_after_invalid("Xyz, 06 Nov 1994 08:49:37 GMT");
	assert_retry_after_invalid("Sun, 6 Nov 1994 08:49:37 GMT");
	assert_retry_after_invalid("1994-11-06T08:49:37Z");
}

static void test_classify_status(void **state)
{
	(void)state;
	static const struct {
		long status;
		enum ilert_outcome outcome;
	} cases[] = {
		{ 200, ILERT_OUTCOME_SUCCESS },	  { 201, ILERT_OUTCOME_SUCCESS },
		{ 202, ILERT_OUTCOME_SUCCESS },	  { 204, ILERT_OUTCOME_SUCCESS },
		{ 299, ILERT_OUTCOME_SUCCESS },	  { 100, ILERT_OUTCOME_PERMANENT },
		{ 101, ILERT_OUTCOME_PERMANENT }, { 199, ILERT_OUTCOME_PERMANENT },
		{ 300, ILERT_OUTCOME_PERMANENT }, { 301, ILERT_OUTCOME_PERMANENT },
		{ 302, ILERT_OUTCOME_PERMANENT }, { 304, ILERT_OUTCOME_PERMANENT },
		{ 400, ILERT_OUTCOME_PERMANENT }, { 401, ILERT_OUTCOME_PERMANENT },
		{ 403, ILERT_OUTCOME_PERMANENT }, { 404, ILERT_OUTCOME_PERMANENT },
		{ 409, ILERT_OUTCOME_PERMANENT }, { 413, ILERT_OUTCOME_PERMANENT },
		{ 424, ILERT_OUTCOME_PERMANENT }, { 426, ILERT_OUTCOME_PERMANENT },
		{ 428, ILERT_OUTCOME_PERMANENT }, { 430, ILERT_OUTCOME_PERMANENT },
		{ 499, ILERT_OUTCOME_PERMANENT }, { 408, ILERT_OUTCOME_RETRYABLE },
		{ 425, ILERT_OUTCOME_RETRYABLE }, { 429, ILERT_OUTCOME_RETRYABLE },
		{ 500, ILERT_OUTCOME_RETRYABLE }, { 502, ILERT_OUTCOME_RETRYABLE },
		{ 503, ILERT_OUTCOME_RETRYABLE }, { 504, ILERT_OUTCOME_RETRYABLE },
		{ 599, ILERT_OUTCOME_RETRYABLE }, { 600, ILERT_OUTCOME_PERMANENT },
		{ 0, ILERT_OUTCOME_RETRYABLE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (ilert_classify_status(cases[i].status) != cases[i].outcome)
			fail_msg("status %ld: got %d, want %d", cases[i].status,
				 ilert_classify_status(cases[i].status), cases[i].outcome);
	}
}

static struct ilert_result result_with(long status, bool timed_out)
{
	struct ilert_result res;
	ilert_result_init(&res);
	res.status = status;
	res.timed_out = timed_out;
	return res;
}

static void test_result_outcome_transport(void **state)
{
	(void)state;
	struct ilert_result net = result_with(0, false), tmo = result_with(0, true);
	assert_int_equal(ilert_result_outcome(&net), ILERT_OUTCOME_RETRYABLE);
	assert_int_equal(ilert_result_outcome(&tmo), ILERT_OUTCOME_RETRYABLE);
	struct ilert_result ok = result_with(202, false), bad = result_with(404, false);
	assert_int_equal(ilert_result_outcome(&ok), ILERT_OUTCOME_SUCCESS);
	assert_int_equal(ilert_result_outcome(&bad), ILERT_OUTCOME_PERMANENT);
}

static void assert_cause(long status, bool timed_out, const char *want)
{
	struct ilert_result res = result_with(status, timed_out);
	const char *got = ilert_retry_cause(&res);
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

static void test_retry_cause_labels(void **state)
{
	(void)state;
	assert_cause(0, false, "network");
	assert_cause(0, true, "timeout");
	assert_cause(408, false, "http_408");
	assert_cause(425, false, "http_425");
	assert_cause(429, false, "http_429");
	assert_cause(500, false, "http_5xx");
	assert_cause(503, false, "http_5xx");
	assert_cause(599, false, "http_5xx");
	assert_cause(200, false, NULL);
	assert_cause(202, false, NULL);
	assert_cause(301, false, NULL);
	assert_cause(400, false, NULL);
	assert_cause(404, false, NULL);
}

static void test_code_labels(void **state)
{
	(void)state;
	char buf[16];
	struct ilert_result res = result_with(202, false);
	assert_string_equal(ilert_code_label(&res, buf, sizeof(buf)), "202");
	res = result_with(503, false);
	assert_string_equal(ilert_code_label(&res, buf, sizeof(buf)), "503");
	res = result_with(0, false);
	assert_string_equal(ilert_code_label(&res, buf, sizeof(buf)), "network");
	res = result_with(0, true);
	assert_string_equal(ilert_code_label(&res, buf, sizeof(buf)), "timeout");
}

static void test_endpoint_labels(void **state)
{
	(void)state;
	assert_string_equal(ilert_endpoint_label(ILERT_EP_EVENTS), "events");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_EVENTS_MQTT), "events_mqtt");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_EVENTS_KAFKA), "events_kafka");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_HEARTBEATS), "heartbeats");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_PINGS), "pings");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_USERS_SEARCH_EMAIL),
			    "users_search_email");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_ESCALATION_POLICIES_RESOLVE),
			    "escalation_policies_resolve");
	assert_string_equal(ilert_endpoint_label(ILERT_EP_ESCALATION_POLICY_LEVELS),
			    "escalation_policy_levels");
}

static struct ilert_client *client_for(const char *api, const char *beat)
{
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.api_url = (char *)api;
	cfg.beat_url = (char *)beat;
	cfg.api_timeout = 5;
	struct ilert_client *c = ilert_client_create(&cfg);
	assert_non_null(c);
	return c;
}

static void assert_url(struct ilert_client *c, enum ilert_base base, const char *path,
		       const char *key, bool masked, const char *want)
{
	struct ilert_request req = { .base = base, .path = path, .key = key };
	char *url = ilert_client_url(c, &req, masked);
	assert_non_null(url);
	assert_string_equal(url, want);
	free(url);
}

static void test_url_percent_encodes_keys(void **state)
{
	(void)state;
	struct ilert_client *c = client_for("http://api.example", "https://beat.example:8443");
	assert_url(c, ILERT_BASE_API, "/events", NULL, false, "http://api.example/api/events");
	assert_url(c, ILERT_BASE_API, "/v1/events/mqtt/", "a/b c%", false,
		   "http://api.example/api/v1/events/mqtt/a%2Fb%20c%25");
	assert_url(c, ILERT_BASE_API, "/heartbeats/", "il1hbt-Key_1.~", false,
		   "http://api.example/api/heartbeats/il1hbt-Key_1.~");
	assert_url(c, ILERT_BASE_BEAT, "/pings/", "k?x=1#f&\xc3\xa4", false,
		   "https://beat.example:8443/api/pings/k%3Fx%3D1%23f%26%C3%A4");
	ilert_client_destroy(c);
}

static void test_url_masks_keys_for_logs(void **state)
{
	(void)state;
	struct ilert_client *c = client_for("http://api.example", "http://beat.example");
	assert_url(c, ILERT_BASE_API, "/v1/events/kafka/", "il1api0123456789", true,
		   "http://api.example/api/v1/events/kafka/il1a\xe2\x80\xa6");
	assert_url(c, ILERT_BASE_BEAT, "/pings/", "short", true,
		   "http://beat.example/api/pings/\xe2\x80\xa6");
	ilert_client_destroy(c);
}

static void test_client_default_bases(void **state)
{
	(void)state;
	struct ilert_client *c = client_for(NULL, NULL);
	assert_url(c, ILERT_BASE_API, "/events", NULL, false, "https://api.ilert.com/api/events");
	assert_url(c, ILERT_BASE_BEAT, "/pings/", "k", false, "https://beat.ilert.com/api/pings/k");
	ilert_client_destroy(c);
	ilert_client_destroy(NULL);
}

static void assert_excerpt(const char *body, size_t len, size_t max, const char *want)
{
	char *got = ilert_body_excerpt(body, len, max);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_body_excerpt(void **state)
{
	(void)state;
	assert_excerpt(NULL, 0, 200, "");
	assert_excerpt("", 0, 200, "");
	assert_excerpt("short", 5, 200, "short");
	assert_excerpt("a\r\nb\nc\rd", 8, 200, "a  b c d");
	assert_excerpt("abcdef", 6, 3, "abc");
	/* Characters, not bytes: three two-byte characters and a four-byte one. */
	assert_excerpt("\xc3\xa4\xc3\xb6\xc3\xbc\xf0\x9f\x98\x80x", 11, 4,
		       "\xc3\xa4\xc3\xb6\xc3\xbc\xf0\x9f\x98\x80");
	/* An invalid byte counts as one character, shown as U+FFFD. */
	assert_excerpt("a\xff" "b", 3, 2, "a\xef\xbf\xbd");

	char big[1000];
	memset(big, 'x', sizeof(big));
	char *got = ilert_body_excerpt(big, sizeof(big), 200);
	assert_int_equal(strlen(got), 200);
	free(got);

	char wide[1000];
	for (size_t i = 0; i + 2 <= sizeof(wide); i += 2)
		memcpy(wide + i, "\xc3\xa4", 2);
	got = ilert_body_excerpt(wide, sizeof(wide), 200);
	assert_int_equal(strlen(got), 400);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_after_delta),
		cmocka_unit_test(test_retry_after_cap),
		cmocka_unit_test(test_retry_after_imf_fixdate),
		cmocka_unit_test(test_retry_after_past_is_zero),
		cmocka_unit_test(test_retry_after_obsolete_dates),
		cmocka_unit_test(test_retry_after_garbage),
		cmocka_unit_test(test_classify_status),
		cmocka_unit_test(test_result_outcome_transport),
		cmocka_unit_test(test_retry_cause_labels),
		cmocka_unit_test(test_code_labels),
		cmocka_unit_test(test_endpoint_labels),
		cmocka_unit_test(test_url_percent_encodes_keys),
		cmocka_unit_test(test_url_masks_keys_for_logs),
		cmocka_unit_test(test_client_default_bases),
		cmocka_unit_test(test_body_excerpt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
