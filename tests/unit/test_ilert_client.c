/* ilert client: Retry-After parsing, outcome classes, metric labels, URL building with
 * percent-encoded and masked keys, body excerpts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/config.h"
#include "core/clock.h"
#include "core/err.h"
#include "fake_ilert.h"
#include "ilert/client.h"
#include "ilert/heartbeat.h"
#include "ops/metrics.h"
#include "proc.h"
#include "version.h"

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

/* ---- requests against the fake ilert ---- */

static struct ilert_client *client_to(struct fake_ilert *f, int timeout_s, const char *api_key)
{
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.api_url = (char *)fake_ilert_url(f);
	cfg.beat_url = (char *)fake_ilert_url(f);
	cfg.api_timeout = timeout_s;
	cfg.api_key = (char *)api_key;
	struct ilert_client *c = ilert_client_create(&cfg);
	assert_non_null(c);
	return c;
}

static int fake_setup(void **state)
{
	*state = fake_ilert_start();
	return *state ? 0 : -1;
}

static int fake_teardown(void **state)
{
	fake_ilert_stop(*state);
	return 0;
}

static int fake_clear(void **state)
{
	fake_ilert_reset(*state);
	struct fake_reply dflt = { .status = 202, .body = "{}" };
	fake_ilert_set_default(*state, &dflt);
	return 0;
}

static void assert_header(const struct fake_request *r, const char *name, const char *want)
{
	char *got = fake_request_header(r, name);
	if (!want) {
		if (got)
			fail_msg("unexpected header %s: %s", name, got);
		return;
	}
	if (!got)
		fail_msg("missing header %s", name);
	assert_string_equal(got, want);
	free(got);
}

static void test_send_headers_auth_and_keep_alive(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 5, "secret-token-123");
	int conns_before = fake_ilert_connection_count(f);
	const char *body = "{\"a\":1}";
	struct ilert_request req = { .method = ILERT_POST, .path = "/events", .body = body,
				     .body_len = strlen(body), .auth = true };
	struct ilert_result res;
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 202);
	assert_string_equal(res.body, "{}");
	assert_int_equal(res.body_len, 2);
	assert_string_equal(res.error, "");
	/* Measured below the millisecond: loopback answers take less, and the duration
	 * histogram's sum must not read 0. */
	assert_true(res.duration_s > 0.0 && res.duration_s < 5.0);
	ilert_result_free(&res);
	req.auth = false;
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	ilert_result_free(&res);

	assert_int_equal(fake_ilert_count(f), 2);
	struct fake_request *r0 = fake_ilert_request(f, 0), *r1 = fake_ilert_request(f, 1);
	assert_string_equal(r0->method, "POST");
	assert_string_equal(r0->target, "/api/events");
	assert_string_equal(r0->body, body);
	assert_header(r0, "User-Agent", "ilagent/" ILAGENT_VERSION);
	assert_header(r0, "Accept", "application/json");
	assert_header(r0, "Content-Type", "application/json");
	assert_header(r0, "Authorization", "Bearer secret-token-123");
	assert_header(r0, "Expect", NULL);
	assert_header(r1, "Authorization", NULL);
	assert_header(r1, "User-Agent", "ilagent/" ILAGENT_VERSION);
	/* One reused keep-alive connection for both requests. */
	assert_int_equal(r0->connection, r1->connection);
	assert_int_equal(fake_ilert_connection_count(f), conns_before + 1);
	fake_request_free(r0);
	fake_request_free(r1);
	ilert_client_destroy(c);
}

static void test_send_auth_without_key_sends_none(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 5, NULL);
	struct ilert_request req = { .method = ILERT_GET, .path = "/x", .auth = true };
	struct ilert_result res;
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	ilert_result_free(&res);
	struct fake_request *r = fake_ilert_request(f, 0);
	assert_non_null(r);
	assert_header(r, "Authorization", NULL);
	fake_request_free(r);
	ilert_client_destroy(c);
}

static void test_send_methods(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 5, NULL);
	struct ilert_result res;
	struct ilert_request get = { .method = ILERT_GET, .path = "/a?routing-key=x%20y" };
	struct ilert_request head = { .method = ILERT_HEAD, .base = ILERT_BASE_BEAT,
				      .path = "/pings/", .key = "k 1" };
	struct ilert_request put = { .method = ILERT_PUT, .path = "/levels/2", .body = "{\"p\":1}",
				     .body_len = 7 };
	struct ilert_request post_empty = { .method = ILERT_POST, .path = "/empty" };
	const struct ilert_request *reqs[] = { &get, &head, &put, &post_empty, &get };
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(ilert_client_send(c, reqs[i], &res), 0);
		assert_int_equal(res.status, 202);
		ilert_result_free(&res);
	}
	static const char *const want[][3] = {
		{ "GET", "/api/a?routing-key=x%20y", "" },
		{ "HEAD", "/api/pings/k%201", "" },
		{ "PUT", "/api/levels/2", "{\"p\":1}" },
		{ "POST", "/api/empty", "" },
		{ "GET", "/api/a?routing-key=x%20y", "" },
	};
	for (int i = 0; i < 5; i++) {
		struct fake_request *r = fake_ilert_request(f, i);
		assert_non_null(r);
		assert_string_equal(r->method, want[i][0]);
		assert_string_equal(r->target, want[i][1]);
		assert_string_equal(r->body, want[i][2]);
		assert_header(r, "Content-Type", "application/json");
		fake_request_free(r);
	}
	ilert_client_destroy(c);
}

static void test_send_captures_retry_after_and_correlation_id(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 5, NULL);
	char date[64];
	time_t later = time(NULL) + 30;
	struct tm tm;
	gmtime_r(&later, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	struct fake_reply r429 = { .status = 429, .retry_after = "7",
				   .headers = "Correlation-Id: corr-429\r\n" };
	struct fake_reply r503 = { .status = 503, .retry_after = date };
	struct fake_reply bad = { .status = 503, .retry_after = "soon" };
	struct fake_reply ok = { .status = 202, .headers = "correlation-id: c-202\r\n" };
	fake_ilert_push(f, &r429);
	fake_ilert_push(f, &r503);
	fake_ilert_push(f, &bad);
	fake_ilert_push(f, &ok);
	struct ilert_request req = { .method = ILERT_POST, .path = "/events", .body = "{}",
				     .body_len = 2 };
	struct ilert_result res;

	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 429);
	assert_int_equal(res.retry_after_ms, 7000);
	assert_string_equal(res.correlation_id, "corr-429");
	assert_int_equal(ilert_result_outcome(&res), ILERT_OUTCOME_RETRYABLE);
	assert_string_equal(ilert_retry_cause(&res), "http_429");
	ilert_result_free(&res);

	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 503);
	assert_in_range(res.retry_after_ms, 27000, 30000);
	assert_null(res.correlation_id);
	ilert_result_free(&res);

	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.retry_after_ms, -1);
	ilert_result_free(&res);

	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(ilert_result_outcome(&res), ILERT_OUTCOME_SUCCESS);
	assert_int_equal(res.retry_after_ms, -1);
	assert_string_equal(res.correlation_id, "c-202");
	ilert_result_free(&res);
	ilert_client_destroy(c);
}

static void test_send_body_read_limit(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 10, NULL);
	size_t big_len = ILERT_BODY_LIMIT + ILERT_BODY_LIMIT / 2;
	char *big = malloc(big_len + 1);
	assert_non_null(big);
	memset(big, 'b', big_len);
	big[big_len] = '\0';
	struct fake_reply huge = { .status = 500, .body = big };
	fake_ilert_push(f, &huge);
	free(big);
	struct ilert_request req = { .method = ILERT_GET, .path = "/big" };
	struct ilert_result res;
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 500);
	assert_int_equal(res.body_len, ILERT_BODY_LIMIT);
	assert_int_equal(strlen(res.body), ILERT_BODY_LIMIT);
	assert_true(res.body_truncated);
	ilert_result_free(&res);
	/* The rest was read and dropped, so the connection is still in step. */
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 202);
	assert_string_equal(res.body, "{}");
	assert_false(res.body_truncated);
	ilert_result_free(&res);
	struct fake_request *r0 = fake_ilert_request(f, 0), *r1 = fake_ilert_request(f, 1);
	assert_int_equal(r0->connection, r1->connection);
	fake_request_free(r0);
	fake_request_free(r1);
	ilert_client_destroy(c);
}

static void test_send_redirect_not_followed(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 5, NULL);
	char headers[128];
	snprintf(headers, sizeof(headers), "Location: %s/api/elsewhere\r\n", fake_ilert_url(f));
	struct fake_reply moved = { .status = 302, .body = "moved", .headers = headers };
	fake_ilert_push(f, &moved);
	struct ilert_request req = { .method = ILERT_POST, .path = "/events", .body = "{}",
				     .body_len = 2 };
	struct ilert_result res;
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 302);
	assert_string_equal(res.body, "moved");
	assert_int_equal(ilert_result_outcome(&res), ILERT_OUTCOME_PERMANENT);
	ilert_result_free(&res);
	assert_int_equal(fake_ilert_wait_count(f, 2, 300), 1);
	ilert_client_destroy(c);
}

static void test_send_timeout(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 1, NULL);
	struct fake_reply slow = { .status = 202, .delay_ms = 3000 };
	fake_ilert_push(f, &slow);
	struct ilert_request req = { .method = ILERT_GET, .path = "/slow" };
	struct ilert_result res;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(ilert_client_send(c, &req, &res), ILA_ERR_TIMEOUT);
	int64_t took = clock_mono_ms() - t0;
	assert_in_range(took, 900, 2500);
	assert_int_equal(res.status, 0);
	assert_true(res.timed_out);
	assert_true(strlen(res.error) > 0);
	assert_null(res.body);
	assert_int_equal(ilert_result_outcome(&res), ILERT_OUTCOME_RETRYABLE);
	assert_string_equal(ilert_retry_cause(&res), "timeout");
	ilert_result_free(&res);
	ilert_client_destroy(c);
}

static void test_send_connection_refused(void **state)
{
	(void)state;
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", test_free_port());
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.api_url = url;
	cfg.beat_url = url;
	cfg.api_timeout = 5;
	struct ilert_client *c = ilert_client_create(&cfg);
	assert_non_null(c);
	struct ilert_request req = { .method = ILERT_GET, .path = "/x" };
	struct ilert_result res;
	assert_int_equal(ilert_client_send(c, &req, &res), ILA_ERR_NET);
	assert_int_equal(res.status, 0);
	assert_false(res.timed_out);
	assert_true(strlen(res.error) > 0);
	assert_string_equal(ilert_retry_cause(&res), "network");
	ilert_result_free(&res);
	ilert_client_destroy(c);
}

static atomic_int abort_flag;

static void *set_abort_later(void *arg)
{
	(void)arg;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000000L };
	nanosleep(&ts, NULL);
	atomic_store(&abort_flag, 1);
	return NULL;
}

static void test_abort_in_flight_and_before_start(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 20, NULL);
	atomic_store(&abort_flag, 0);
	ilert_client_set_abort(c, &abort_flag);
	struct fake_reply slow = { .status = 202, .delay_ms = 10000 };
	fake_ilert_push(f, &slow);
	struct ilert_request req = { .method = ILERT_GET, .path = "/slow" };
	struct ilert_result res;
	pthread_t setter;
	assert_int_equal(pthread_create(&setter, NULL, set_abort_later, NULL), 0);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(ilert_client_send(c, &req, &res), ILA_ERR_NET);
	int64_t took = clock_mono_ms() - t0;
	pthread_join(setter, NULL);
	assert_in_range(took, 150, 2500);
	assert_true(res.aborted);
	assert_false(res.timed_out);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.error, "request aborted");
	ilert_result_free(&res);
	assert_int_equal(fake_ilert_count(f), 1);

	/* With the flag already set nothing is sent at all. */
	assert_int_equal(ilert_client_send(c, &req, &res), ILA_ERR_NET);
	assert_true(res.aborted);
	ilert_result_free(&res);
	assert_int_equal(fake_ilert_wait_count(f, 2, 200), 1);

	/* Cleared again, requests go through. */
	atomic_store(&abort_flag, 0);
	assert_int_equal(ilert_client_send(c, &req, &res), 0);
	assert_int_equal(res.status, 202);
	assert_false(res.aborted);
	ilert_result_free(&res);
	ilert_client_destroy(c);
}

static void test_heartbeat_routes(void **state)
{
	struct fake_ilert *f = *state;
	struct ilert_client *c = client_to(f, 5, "api-key-abcdef");
	struct fake_reply nf = { .status = 404 };
	fake_ilert_push(f, &nf);
	struct ilert_result res;
	assert_int_equal(ilert_heartbeat_ping(c, "il1hbt/x y", true, &res), 0);
	assert_int_equal(res.status, 404);
	ilert_result_free(&res);
	assert_int_equal(ilert_heartbeat_ping(c, "beatkey", false, &res), 0);
	assert_int_equal(res.status, 202);
	ilert_result_free(&res);

	struct fake_request *r0 = fake_ilert_request(f, 0), *r1 = fake_ilert_request(f, 1);
	assert_string_equal(r0->method, "GET");
	assert_string_equal(r0->target, "/api/heartbeats/il1hbt%2Fx%20y");
	assert_header(r0, "Authorization", "Bearer api-key-abcdef");
	assert_string_equal(r1->method, "HEAD");
	assert_string_equal(r1->target, "/api/pings/beatkey");
	assert_header(r1, "Authorization", NULL);
	fake_request_free(r0);
	fake_request_free(r1);
	assert_true(ilert_heartbeat_uses_api("il1hbt"));
	assert_false(ilert_heartbeat_uses_api("IL1HBT123"));
	assert_false(ilert_heartbeat_uses_api("xil1hbt"));
	ilert_client_destroy(c);
}

static void assert_metric_line(const char *text, const char *line)
{
	if (!strstr(text, line))
		fail_msg("metric line missing: %s", line);
}

static void test_requests_are_counted(void **state)
{
	struct fake_ilert *f = *state;
	metrics_init();
	struct ilert_client *c = client_to(f, 1, NULL);
	struct fake_reply r429 = { .status = 429 };
	struct fake_reply slow = { .status = 202, .delay_ms = 3000 };
	fake_ilert_push(f, &r429);
	fake_ilert_push(f, &slow);
	struct ilert_result res;
	struct ilert_request ev = { .method = ILERT_POST, .endpoint = ILERT_EP_EVENTS_KAFKA,
				    .path = "/v1/events/kafka/", .key = "k", .body = "{}",
				    .body_len = 2 };
	ilert_client_send(c, &ev, &res); /* 429 */
	ilert_result_free(&res);
	ilert_client_send(c, &ev, &res); /* timeout */
	ilert_result_free(&res);
	ilert_heartbeat_ping(c, "beat", false, &res); /* 202 */
	ilert_result_free(&res);
	ilert_heartbeat_ping(c, "il1hbtx", false, &res); /* 202 */
	ilert_result_free(&res);
	ilert_client_destroy(c);

	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", test_free_port());
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.api_url = url;
	cfg.beat_url = url;
	cfg.api_timeout = 5;
	c = ilert_client_create(&cfg);
	assert_non_null(c);
	struct ilert_request user = { .method = ILERT_POST, .endpoint = ILERT_EP_USERS_SEARCH_EMAIL,
				      .path = "/users/search-email", .body = "{}", .body_len = 2 };
	ilert_client_send(c, &user, &res); /* refused */
	ilert_result_free(&res);
	ilert_client_destroy(c);

	char *text = metrics_render();
	assert_non_null(text);
	assert_metric_line(text, "ilagent_ilert_requests_total{endpoint=\"events_kafka\",code=\"429\"} 1\n");
	assert_metric_line(text, "ilagent_ilert_requests_total{endpoint=\"events_kafka\",code=\"timeout\"} 1\n");
	assert_metric_line(text, "ilagent_ilert_requests_total{endpoint=\"pings\",code=\"202\"} 1\n");
	assert_metric_line(text, "ilagent_ilert_requests_total{endpoint=\"heartbeats\",code=\"202\"} 1\n");
	assert_metric_line(text, "ilagent_ilert_requests_total{endpoint=\"users_search_email\",code=\"network\"} 1\n");
	assert_null(strstr(text, "ilagent_ilert_requests_total{endpoint=\"events\","));
	free(text);
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
	const struct CMUnitTest transport[] = {
		cmocka_unit_test_setup(test_send_headers_auth_and_keep_alive, fake_clear),
		cmocka_unit_test_setup(test_send_auth_without_key_sends_none, fake_clear),
		cmocka_unit_test_setup(test_send_methods, fake_clear),
		cmocka_unit_test_setup(test_send_captures_retry_after_and_correlation_id, fake_clear),
		cmocka_unit_test_setup(test_send_body_read_limit, fake_clear),
		cmocka_unit_test_setup(test_send_redirect_not_followed, fake_clear),
		cmocka_unit_test_setup(test_send_timeout, fake_clear),
		cmocka_unit_test_setup(test_send_connection_refused, fake_clear),
		cmocka_unit_test_setup(test_abort_in_flight_and_before_start, fake_clear),
		cmocka_unit_test_setup(test_heartbeat_routes, fake_clear),
		cmocka_unit_test_setup(test_requests_are_counted, fake_clear),
	};
	/* Requests to the local fake must not detour through a proxy from the environment. */
	static const char *const proxies[] = { "http_proxy", "https_proxy", "HTTPS_PROXY",
					       "all_proxy", "ALL_PROXY" };
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	if (ilert_global_init())
		return 1;
	int failed = cmocka_run_group_tests_name("pure", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("transport", transport, fake_setup, fake_teardown);
	ilert_global_cleanup();
	return failed;
}
