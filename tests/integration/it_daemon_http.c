/* The daemon's HTTP interface through the built binary (SPEC §9, §10, §15, §18, §19, §20.3,
 * §5): every rejection row of POST /api/events and /api/events/batch with its exact answer and
 * nothing stored or sent, body limits, the queue-full answers, routing, methods, HEAD,
 * authentication, dedup, the heartbeat proxy, /metrics (checked by promtool), the answers
 * while draining at shutdown and the JSON log format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/text.h"
#include "daemon_harness.h"
#include "fake_ilert.h"
#include "proc.h"
#include "version.h"

#define JSON_TYPE "application/json"
#define PLAIN_UTF8 "text/plain; charset=utf-8"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define EVENTS "/api/events"
#define BATCH "/api/events/batch"
#define VALID "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\"}"

static void start(struct daemon_fixture *f, const char *const extra[], const char *const env[])
{
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, extra, env));
}

static void stop_ok(struct daemon_fixture *f)
{
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 20000), 0);
}

/* ---- requests and answers ------------------------------------------------------------- */

static void send_req(const struct daemon_fixture *f, const char *method, const char *path,
		     const char *content_type, const char *body, const char *const headers[],
		     struct http_reply *r)
{
	char url[1024];
	snprintf(url, sizeof(url), "%s%s", f->d.base, path);
	if (http_request(method, url, content_type, body, body ? strlen(body) : 0, headers, 20000,
			 r) != 0)
		fail_msg("%s %s: no answer", method, path);
}

static void check_header(const struct http_reply *r, const char *name, const char *want,
			 const char *what)
{
	char *v = http_reply_header(r, name);
	bool ok = want ? v && strcmp(v, want) == 0 : v == NULL;
	if (!ok)
		fail_msg("%s: header %s is '%s', expected '%s'", what, name, v ? v : "(none)",
			 want ? want : "(none)");
	free(v);
}

/* One request; asserts the status, the Content-Type (NULL: no check) and the exact body. */
static void expect(const struct daemon_fixture *f, const char *method, const char *path,
		   const char *content_type, const char *body, const char *const headers[],
		   long status, const char *want_type, const char *want_body)
{
	struct http_reply r;
	send_req(f, method, path, content_type, body, headers, &r);
	char what[200];
	snprintf(what, sizeof(what), "%s %s (%.80s)", method, path, body ? body : "");
	if (r.status != status || strcmp(r.body, want_body) != 0)
		fail_msg("%s: answered %ld '%s', expected %ld '%s'", what, r.status, r.body, status,
			 want_body);
	if (want_type)
		check_header(&r, "Content-Type", want_type, what);
	http_reply_free(&r);
}

static void expect_error(const struct daemon_fixture *f, const char *path, const char *content_type,
			 const char *body, long status, const char *text)
{
	char want[512];
	snprintf(want, sizeof(want), "{\"error\":\"%s\"}", text);
	expect(f, "POST", path, content_type, body, NULL, status, JSON_TYPE, want);
}

/* 400 whose body is exactly {"error":"Invalid JSON: <some detail>"}. */
static void expect_invalid_json(const struct daemon_fixture *f, const char *path,
				const char *content_type, const char *body)
{
	struct http_reply r;
	send_req(f, "POST", path, content_type, body, NULL, &r);
	json_error_t jerr;
	json_t *o = json_loads(r.body, 0, &jerr);
	const char *e = json_string_value(json_object_get(o, "error"));
	static const char prefix[] = "Invalid JSON: ";
	if (r.status != 400 || !json_is_object(o) || json_object_size(o) != 1 || !e ||
	    strncmp(e, prefix, strlen(prefix)) != 0 || strlen(e) == strlen(prefix))
		fail_msg("POST %s (%.80s): answered %ld '%s', expected 400 Invalid JSON", path, body,
			 r.status, r.body);
	check_header(&r, "Content-Type", JSON_TYPE, "Invalid JSON answer");
	json_decref(o);
	http_reply_free(&r);
}

static void post_ok(const struct daemon_fixture *f, const char *path, const char *body)
{
	struct http_reply r;
	send_req(f, "POST", path, JSON_TYPE, body, NULL, &r);
	if (r.status != 200)
		fail_msg("POST %s answered %ld %s", path, r.status, r.body);
	http_reply_free(&r);
}

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

/* Waits until the fake saw n requests and the queue is empty, then a moment longer, and
 * asserts that exactly n requests arrived. */
static void expect_deliveries(const struct daemon_fixture *f, int n)
{
	assert_int_equal(fake_ilert_wait_count(f->fake, n, 10000), n);
	assert_true(wait_queued(f, 0, 10000));
	usleep(300000);
	assert_int_equal(fake_ilert_count(f->fake), n);
}

/* Nothing was stored and nothing was sent; then a valid event still goes through, alone. */
static void expect_nothing_stored_or_sent(const struct daemon_fixture *f)
{
	assert_int_equal(queued(f), 0);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM dead_letters"), 0);
	assert_int_equal(fake_ilert_count(f->fake), 0);
	post_ok(f, EVENTS, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"sentinel\"}");
	expect_deliveries(f, 1);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_non_null(strstr(req->body, "\"summary\":\"sentinel\""));
	fake_request_free(req);
}

static const char *metric_line(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return p + n + 1;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* The value of one series on /metrics; -1 when absent. */
static double metric(const struct daemon_fixture *f, const char *series, const char *const headers[])
{
	struct http_reply r;
	send_req(f, "GET", "/metrics", NULL, NULL, headers, &r);
	assert_int_equal(r.status, 200);
	const char *v = metric_line(r.body, series);
	double value = v ? strtod(v, NULL) : -1;
	http_reply_free(&r);
	return value;
}

static void wait_metric(const struct daemon_fixture *f, const char *series, double want)
{
	int64_t deadline = clock_mono_ms() + 10000;
	double v;
	while ((v = metric(f, series, NULL)) != want && clock_mono_ms() < deadline)
		usleep(50000);
	if (v != want)
		fail_msg("%s is %g, expected %g", series, v, want);
}

static char *repeat(const char *s, int n)
{
	struct tbuf b;
	tbuf_init(&b);
	for (int i = 0; i < n; i++)
		tbuf_puts(&b, s);
	return tbuf_take(&b);
}

/* An event whose customDetails nest so that the whole object has the given depth. */
static char *event_with_depth(int depth)
{
	char *open = repeat("[", depth - 1), *close = repeat("]", depth - 1);
	struct tbuf b;
	tbuf_init(&b);
	tbuf_printf(&b, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"deep\","
			"\"customDetails\":%s%s}", open, close);
	free(open);
	free(close);
	return tbuf_take(&b);
}

/* A valid event of exactly len bytes. */
static char *event_of_size(size_t len)
{
	static const char head[] = "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"";
	size_t pad = len - (sizeof(head) - 1) - 2;
	char *s = malloc(len + 1);
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'x', pad);
	memcpy(s + len - 2, "\"}", 3);
	return s;
}

/* ---- POST /api/events rejections (§10.5) ---------------------------------------------- */

struct reject_case {
	const char *content_type; /* NULL: no Content-Type header */
	const char *body;
	const char *error; /* NULL: "Invalid JSON: <detail>" */
};

static const struct reject_case event_rejects[] = {
	/* content type */
	{ NULL, VALID, "Content type must be application/json." },
	{ "text/plain", VALID, "Content type must be application/json." },
	{ "application/x-www-form-urlencoded", VALID, "Content type must be application/json." },
	{ "application/json-seq", VALID, "Content type must be application/json." },
	{ "application/jsonx", VALID, "Content type must be application/json." },
	{ "json", VALID, "Content type must be application/json." },
	{ "text/plain", "{not json", "Content type must be application/json." },
	{ NULL, "", "Content type must be application/json." },
	/* parsing */
	{ JSON_TYPE, "{\"integrationKey\":", NULL },
	{ JSON_TYPE, "", NULL },
	{ JSON_TYPE, VALID " x", NULL },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"a\xff\"}", NULL },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"\xc3\x28\"}", NULL },
	{ JSON_TYPE, "{\"\xfe\":1,\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\"}", NULL },
	/* not an object */
	{ JSON_TYPE, "[]", "Request body must be a JSON object." },
	{ JSON_TYPE, "[" VALID "]", "Request body must be a JSON object." },
	{ JSON_TYPE, "\"text\"", "Request body must be a JSON object." },
	{ JSON_TYPE, "42", "Request body must be a JSON object." },
	{ JSON_TYPE, "null", "Request body must be a JSON object." },
	/* duplicates (before missing fields) */
	{ JSON_TYPE, "{\"summary\":\"a\",\"summary\":\"b\"}", "Duplicate field 'summary'." },
	{ JSON_TYPE,
	  "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"eventType\":\"ALERT\",\"summary\":\"s\"}",
	  "Duplicate field 'eventType'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\","
		     "\"customDetails\":1,\"customDetails\":2}", "Duplicate field 'customDetails'." },
	/* missing, in the order integrationKey, eventType, summary */
	{ JSON_TYPE, "{}", "Missing field 'integrationKey'." },
	{ JSON_TYPE, "{\"summary\":\"s\",\"eventType\":\"ALERT\"}", "Missing field 'integrationKey'." },
	{ JSON_TYPE, "{\"integrationKey\":null,\"eventType\":\"ALERT\",\"summary\":\"s\"}",
	  "Missing field 'integrationKey'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"summary\":\"s\"}", "Missing field 'eventType'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":null,\"summary\":\"s\"}",
	  "Missing field 'eventType'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\"}", "Missing field 'summary'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":7}", "Missing field 'summary'." },
	/* wrong types, in wire-model order whatever the document order */
	{ JSON_TYPE, "{\"integrationKey\":1,\"eventType\":2,\"summary\":3}",
	  "Invalid type for field 'integrationKey'." },
	{ JSON_TYPE, "{\"summary\":3,\"eventType\":2,\"integrationKey\":\"ik\"}",
	  "Invalid type for field 'eventType'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":true}",
	  "Invalid type for field 'summary'." },
	{ JSON_TYPE, "{\"links\":1,\"details\":{},\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\"}",
	  "Invalid type for field 'details'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"priority\":1,\"alertKey\":[]}",
	  "Invalid type for field 'alertKey'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"BAD\",\"summary\":\"s\",\"priority\":1}",
	  "Invalid type for field 'priority'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":{\"src\":\"x\"}}",
	  "Invalid type for field 'images'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"links\":\"http://l\"}",
	  "Invalid type for field 'links'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[1],\"links\":5}",
	  "Invalid type for field 'links'." },
	/* invalid images / links elements */
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[1]}",
	  "Invalid value for field 'images'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[{}]}",
	  "Invalid value for field 'images'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[{\"src\":1}]}",
	  "Invalid value for field 'images'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[{\"src\":\"x\",\"href\":2}]}",
	  "Invalid value for field 'images'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[{\"src\":\"x\",\"alt\":[]}]}",
	  "Invalid value for field 'images'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"links\":[\"http://l\"]}",
	  "Invalid value for field 'links'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"links\":[{\"text\":\"t\"}]}",
	  "Invalid value for field 'links'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"links\":[{\"href\":\"h\",\"text\":2}]}",
	  "Invalid value for field 'links'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"BAD\",\"summary\":\"s\",\"images\":[{\"href\":\"h\"}]}",
	  "Invalid value for field 'images'." },
	/* unsupported values, in the order eventType, priority, integrationKey */
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"alert\",\"summary\":\"s\"}",
	  "Unsupported value for field 'eventType'." },
	{ JSON_TYPE, "{\"integrationKey\":\"\",\"eventType\":\"TRIGGER\",\"summary\":\"s\",\"priority\":\"x\"}",
	  "Unsupported value for field 'eventType'." },
	{ JSON_TYPE, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"priority\":\"high\"}",
	  "Unsupported value for field 'priority'." },
	{ JSON_TYPE, "{\"integrationKey\":\"\",\"eventType\":\"RESOLVE\",\"summary\":\"s\",\"priority\":\"MEDIUM\"}",
	  "Unsupported value for field 'priority'." },
	{ JSON_TYPE, "{\"integrationKey\":\"\",\"eventType\":\"ALERT\",\"summary\":\"s\"}",
	  "Unsupported value for field 'integrationKey'." },
	{ JSON_TYPE, "{\"apiKey\":\"\",\"eventType\":\"COMMENT\",\"summary\":\"s\"}",
	  "Unsupported value for field 'integrationKey'." },
};

static void test_event_rejections(void **state)
{
	struct daemon_fixture *f = *state;
	start(f, NULL, NULL);
	for (size_t i = 0; i < sizeof(event_rejects) / sizeof(event_rejects[0]); i++) {
		const struct reject_case *c = &event_rejects[i];
		if (c->error)
			expect_error(f, EVENTS, c->content_type, c->body, 400, c->error);
		else
			expect_invalid_json(f, EVENTS, c->content_type, c->body);
	}
	/* Depth 65 is too deep; a body of depth 65 is rejected as invalid JSON. */
	char *deep = event_with_depth(65);
	expect_invalid_json(f, EVENTS, JSON_TYPE, deep);
	free(deep);
	/* The default body limit is 16000 bytes. */
	char *over = event_of_size(16001);
	expect_error(f, EVENTS, JSON_TYPE, over, 413, "Payload too large.");
	free(over);
	/* integrationKey and apiKey together: the spec leaves open which of the two is named. */
	struct http_reply r;
	send_req(f, "POST", EVENTS, JSON_TYPE,
		 "{\"integrationKey\":\"ik\",\"apiKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\"}",
		 NULL, &r);
	assert_int_equal(r.status, 400);
	if (strcmp(r.body, "{\"error\":\"Duplicate field 'apiKey'.\"}") != 0 &&
	    strcmp(r.body, "{\"error\":\"Duplicate field 'integrationKey'.\"}") != 0)
		fail_msg("integrationKey + apiKey answered %s", r.body);
	http_reply_free(&r);
	send_req(f, "POST", EVENTS, JSON_TYPE,
		 "{\"apiKey\":\"ik\",\"eventType\":\"ALERT\",\"integrationKey\":\"ik\"}", NULL, &r);
	assert_int_equal(r.status, 400);
	if (strcmp(r.body, "{\"error\":\"Duplicate field 'apiKey'.\"}") != 0 &&
	    strcmp(r.body, "{\"error\":\"Duplicate field 'integrationKey'.\"}") != 0)
		fail_msg("apiKey + integrationKey answered %s", r.body);
	http_reply_free(&r);
	expect_nothing_stored_or_sent(f);
	stop_ok(f);
}

/* Accepted variants: JSON media types, depth 64, null optionals, the apiKey alias, unknown
 * and repeated unknown keys, duplicate members inside customDetails, the query string. */
static void test_event_accepted_variants(void **state)
{
	struct daemon_fixture *f = *state;
	const char *const extra[] = { "--dedup_window", "0", NULL };
	start(f, extra, NULL);
	static const char echo_s[] =
		"{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"details\":null,"
		"\"alertKey\":null,\"priority\":null,\"images\":null,\"links\":null,\"customDetails\":null}";
	const char *types[] = { "application/json", "application/problem+json",
				"text/json; charset=utf-8", "Application/JSON",
				"application/json;charset=UTF-8", "application/vnd.api+json" };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		expect(f, "POST", EVENTS, types[i], VALID, NULL, 200, JSON_TYPE, echo_s);
	expect(f, "POST", EVENTS "?source=x", JSON_TYPE, VALID, NULL, 200, JSON_TYPE, echo_s);
	expect(f, "POST", EVENTS, JSON_TYPE,
	       "{\"apiKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"details\":null,"
	       "\"alertKey\":\"  \",\"priority\":null,\"images\":null,\"links\":null,"
	       "\"customDetails\":null,\"x\":1,\"x\":2}",
	       NULL, 200, JSON_TYPE, echo_s);
	expect(f, "POST", EVENTS, JSON_TYPE,
	       "{\"summary\":\"\",\"eventType\":\"COMMENT\",\"integrationKey\":\"ik\",\"priority\":\"LOW\","
	       "\"alertKey\":\"\\tA b\\n\",\"links\":[{\"href\":\"h\",\"text\":null}],\"images\":[],"
	       "\"customDetails\":{\"b\":{\"c\":1,\"c\":2},\"a\":1}}",
	       NULL, 200, JSON_TYPE,
	       "{\"integrationKey\":\"ik\",\"eventType\":\"COMMENT\",\"summary\":\"\",\"details\":null,"
	       "\"alertKey\":\"A b\",\"priority\":\"LOW\",\"images\":[],"
	       "\"links\":[{\"href\":\"h\",\"text\":null}],\"customDetails\":{\"b\":{\"c\":2},\"a\":1}}");
	char *deep = event_with_depth(64);
	struct http_reply r;
	send_req(f, "POST", EVENTS, JSON_TYPE, deep, NULL, &r);
	if (r.status != 200)
		fail_msg("depth 64 answered %ld %s", r.status, r.body);
	http_reply_free(&r);
	free(deep);
	char *at_limit = event_of_size(16000);
	send_req(f, "POST", EVENTS, JSON_TYPE, at_limit, NULL, &r);
	if (r.status != 200)
		fail_msg("16000 bytes answered %ld %s", r.status, r.body);
	http_reply_free(&r);
	free(at_limit);
	expect_deliveries(f, 11);
	stop_ok(f);
}

/* ---- POST /api/events/batch (§10.6) --------------------------------------------------- */

#define BAD_SUMMARY "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\"}"

static void test_batch_rejections(void **state)
{
	struct daemon_fixture *f = *state;
	start(f, NULL, NULL);
	expect_error(f, BATCH, NULL, "[]", 400, "Content type must be application/json.");
	expect_error(f, BATCH, "text/plain", "[" VALID "]", 400,
		     "Content type must be application/json.");
	expect_invalid_json(f, BATCH, JSON_TYPE, "[");
	expect_invalid_json(f, BATCH, JSON_TYPE, "[" VALID ",]");
	expect_invalid_json(f, BATCH, JSON_TYPE, "[\"\xff\"]");
	expect_error(f, BATCH, JSON_TYPE, VALID, 400, "Request body must be a JSON array.");
	expect_error(f, BATCH, JSON_TYPE, "\"x\"", 400, "Request body must be a JSON array.");
	expect_error(f, BATCH, JSON_TYPE, "null", 400, "Request body must be a JSON array.");

	/* 1001 elements: too many, whatever they hold; 1000 are looked at one by one. */
	char *many = repeat(",{}", 1000);
	struct tbuf b;
	tbuf_init(&b);
	tbuf_printf(&b, "[{}%s]", many);
	free(many);
	char *body = tbuf_take(&b);
	expect_error(f, BATCH, JSON_TYPE, body, 400, "Batch must not contain more than 1000 events.");
	free(body);
	many = repeat(",{}", 999);
	tbuf_init(&b);
	tbuf_printf(&b, "[{}%s]", many);
	free(many);
	body = tbuf_take(&b);
	expect(f, "POST", BATCH, JSON_TYPE, body, NULL, 400, JSON_TYPE,
	       "{\"error\":\"Event at index 0: Missing field 'integrationKey'.\",\"index\":0}");
	free(body);

	static const struct {
		const char *body;
		const char *answer;
	} cases[] = {
		{ "[" VALID "," VALID "," BAD_SUMMARY "]",
		  "{\"error\":\"Event at index 2: Missing field 'summary'.\",\"index\":2}" },
		{ "[" VALID ",5]",
		  "{\"error\":\"Event at index 1: Request body must be a JSON object.\",\"index\":1}" },
		{ "[[]]", "{\"error\":\"Event at index 0: Request body must be a JSON object.\",\"index\":0}" },
		{ "[" VALID ",{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"a\",\"summary\":\"b\"}]",
		  "{\"error\":\"Event at index 1: Duplicate field 'summary'.\",\"index\":1}" },
		{ "[" VALID ",{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":1}," BAD_SUMMARY "]",
		  "{\"error\":\"Event at index 1: Invalid type for field 'summary'.\",\"index\":1}" },
		{ "[" VALID "," VALID "," VALID ",{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"images\":[{}]}]",
		  "{\"error\":\"Event at index 3: Invalid value for field 'images'.\",\"index\":3}" },
		{ "[{\"integrationKey\":\"ik\",\"eventType\":\"Alert\",\"summary\":\"s\"}]",
		  "{\"error\":\"Event at index 0: Unsupported value for field 'eventType'.\",\"index\":0}" },
		{ "[" VALID ",{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"s\",\"priority\":\"low\"}]",
		  "{\"error\":\"Event at index 1: Unsupported value for field 'priority'.\",\"index\":1}" },
		{ "[" VALID ",{\"apiKey\":\"\",\"eventType\":\"ALERT\",\"summary\":\"s\"}]",
		  "{\"error\":\"Event at index 1: Unsupported value for field 'integrationKey'.\",\"index\":1}" },
		{ "[{\"summary\":\"s\",\"eventType\":\"ALERT\"}," VALID "]",
		  "{\"error\":\"Event at index 0: Missing field 'integrationKey'.\",\"index\":0}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(f, "POST", BATCH, JSON_TYPE, cases[i].body, NULL, 400, JSON_TYPE,
		       cases[i].answer);
	expect_nothing_stored_or_sent(f);
	stop_ok(f);
}

/* ilert answers 503, so committed rows stay in the queue to be looked at. */
static void test_batch_commits_in_order(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply down = { .status = 503, .body = "{}" };
	fake_ilert_set_default(f->fake, &down);
	const char *const extra[] = { "--retry_max_backoff", "60", NULL };
	start(f, extra, NULL);
	expect(f, "POST", BATCH, JSON_TYPE, "[]", NULL, 200, JSON_TYPE, "{\"accepted\":0}");
	expect(f, "POST", BATCH, "application/json; charset=utf-8", " [ ] ", NULL, 200, JSON_TYPE,
	       "{\"accepted\":0}");
	assert_int_equal(queued(f), 0);
	expect(f, "POST", BATCH, JSON_TYPE,
	       "[{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"first\",\"alertKey\":\"k\"},"
	       "{\"apiKey\":\"ik2\",\"eventType\":\"ACCEPT\",\"summary\":\"second\"},"
	       "{\"integrationKey\":\"ik\",\"eventType\":\"RESOLVE\",\"summary\":\"third\",\"alertKey\":\"K\"}]",
	       NULL, 200, JSON_TYPE, "{\"accepted\":3}");
	assert_int_equal(queued(f), 3);
	/* Sequence numbers increase in array order. */
	assert_int_equal(db_query_int(f->d.db,
				      "SELECT (SELECT seq FROM event_items WHERE summary='first') < "
				      "(SELECT seq FROM event_items WHERE summary='second') AND "
				      "(SELECT seq FROM event_items WHERE summary='second') < "
				      "(SELECT seq FROM event_items WHERE summary='third')"),
			 1);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(DISTINCT seq) FROM event_items"), 3);
	assert_int_equal(db_query_int(f->d.db,
				      "SELECT COUNT(*) FROM event_items WHERE source='http' AND kind='event' "
				      "AND event_api_path IS NULL AND seq IS NOT NULL"),
			 3);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM event_items WHERE "
					       "integration_key='ik2' AND summary='second'"),
			 1);
	/* One bad element: nothing of the batch is stored. */
	expect(f, "POST", BATCH, JSON_TYPE,
	       "[{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"fourth\"},"
	       "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"fifth\"}," BAD_SUMMARY "]",
	       NULL, 400, JSON_TYPE,
	       "{\"error\":\"Event at index 2: Missing field 'summary'.\",\"index\":2}");
	assert_int_equal(queued(f), 3);
	/* An element may nest as deep as a single event. */
	char *deep = event_with_depth(64);
	char *batch = malloc(strlen(deep) + 3);
	sprintf(batch, "[%s]", deep);
	expect(f, "POST", BATCH, JSON_TYPE, batch, NULL, 200, JSON_TYPE, "{\"accepted\":1}");
	free(batch);
	free(deep);
	assert_int_equal(queued(f), 4);
	/* A deeper element is the invalid element: named by its index, nothing stored. */
	deep = event_with_depth(65);
	batch = malloc(strlen(deep) + strlen(VALID) + 4);
	sprintf(batch, "[%s,%s]", VALID, deep);
	expect(f, "POST", BATCH, JSON_TYPE, batch, NULL, 400, JSON_TYPE,
	       "{\"error\":\"Event at index 1: Invalid JSON: nesting depth exceeds 64\",\"index\":1}");
	free(batch);
	free(deep);
	assert_int_equal(queued(f), 4);
	assert_int_equal(db_query_int(f->d.db, "SELECT MAX(seq) = (SELECT seq FROM event_items "
					       "WHERE summary='deep') FROM event_items"),
			 1);
	/* The largest batch: 1000 elements, committed together in array order. */
	struct tbuf b;
	tbuf_init(&b);
	tbuf_putc(&b, '[');
	for (int i = 0; i < 1000; i++)
		tbuf_printf(&b, "%s{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"n%d\"}",
			    i ? "," : "", i);
	tbuf_putc(&b, ']');
	char *big = tbuf_take(&b);
	expect(f, "POST", BATCH, JSON_TYPE, big, NULL, 200, JSON_TYPE, "{\"accepted\":1000}");
	free(big);
	assert_int_equal(queued(f), 1004);
	assert_int_equal(db_query_int(f->d.db,
				      "SELECT COUNT(*) FROM (SELECT summary, ROW_NUMBER() OVER (ORDER BY seq) AS r "
				      "FROM event_items WHERE summary LIKE 'n%') WHERE summary != 'n' || (r - 1)"),
			 0);
	stop_ok(f);
}

/* ---- body limits (§10.3 step 4) ----------------------------------------------------------- */

/* A batch of one valid event, exactly len bytes. */
static char *batch_of_size(size_t len)
{
	char *ev = event_of_size(len - 2);
	char *s = malloc(len + 1);
	sprintf(s, "[%s]", ev);
	free(ev);
	return s;
}

/* Sends raw bytes and reads the answer until the connection closes or the announced body
 * has arrived (heap, NULL when nothing came within timeout_ms). */
static char *raw_exchange(int port, const char *data, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(fd, data, strlen(data), MSG_NOSIGNAL) != (ssize_t)strlen(data)) {
		close(fd);
		return NULL;
	}
	struct tbuf b;
	tbuf_init(&b);
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		tbuf_append(&b, buf, (size_t)n);
		const char *s = tbuf_cstr(&b);
		const char *end = strstr(s, "\r\n\r\n");
		const char *cl = strstr(s, "\r\nContent-Length:");
		if (end && cl && cl < end && strlen(end + 4) >= strtoul(cl + 17, NULL, 10))
			break;
	}
	close(fd);
	if (b.len == 0) {
		tbuf_free(&b);
		return NULL;
	}
	return tbuf_take(&b);
}

/* Reads an HTTP answer from fd until the connection closes or the announced body has
 * arrived (heap, NULL when nothing came). */
static char *read_answer(int fd)
{
	struct tbuf b;
	tbuf_init(&b);
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		tbuf_append(&b, buf, (size_t)n);
		const char *s = tbuf_cstr(&b);
		const char *end = strstr(s, "\r\n\r\n");
		const char *cl = strstr(s, "\r\nContent-Length:");
		if (end && cl && cl < end && strlen(end + 4) >= strtoul(cl + 17, NULL, 10))
			break;
	}
	if (b.len == 0) {
		tbuf_free(&b);
		return NULL;
	}
	return tbuf_take(&b);
}

/* Sends a chunked POST body of total bytes (64 KiB chunks) the way a client does that reads
 * nothing before it has sent everything, stopping only when the server refuses more; then
 * reads the answer (heap, NULL when nothing came). */
static char *raw_chunked_post(int port, const char *path, size_t total)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return NULL;
	}
	struct tbuf head;
	tbuf_init(&head);
	tbuf_printf(&head, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			   "Transfer-Encoding: chunked\r\n\r\n", path);
	bool ok = send(fd, tbuf_cstr(&head), head.len, MSG_NOSIGNAL) == (ssize_t)head.len;
	tbuf_free(&head);
	static char chunk[8 + 65536 + 2];
	int n = snprintf(chunk, sizeof(chunk), "%x\r\n", 65536);
	memset(chunk + n, ' ', 65536);
	memcpy(chunk + n + 65536, "\r\n", 2);
	size_t chunk_len = (size_t)n + 65536 + 2;
	for (size_t sent = 0; ok && sent < total; sent += 65536)
		ok = send(fd, chunk, chunk_len, MSG_NOSIGNAL) == (ssize_t)chunk_len;
	if (ok)
		send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
	char *answer = read_answer(fd);
	close(fd);
	return answer;
}

static void test_body_limits(void **state)
{
	struct daemon_fixture *f = *state;
	const char *const extra[] = { "--max_body", "100", "--max_batch_body", "200",
				      "--dedup_window", "0", NULL };
	start(f, extra, NULL);
	static const char too_large[] = "Payload too large.";
	char *at = event_of_size(100), *over = event_of_size(101);
	post_ok(f, EVENTS, at);
	expect_error(f, EVENTS, JSON_TYPE, over, 413, too_large);
	/* The size is checked before the content type and the JSON. */
	expect_error(f, EVENTS, NULL, over, 413, too_large);
	over[50] = '{';
	expect_error(f, EVENTS, "text/plain", over, 413, too_large);
	free(at);
	free(over);
	/* The batch route has its own limit. */
	char *batch_at = batch_of_size(200), *batch_over = batch_of_size(201),
	     *batch_mid = batch_of_size(150);
	expect(f, "POST", BATCH, JSON_TYPE, batch_at, NULL, 200, JSON_TYPE, "{\"accepted\":1}");
	expect(f, "POST", BATCH, JSON_TYPE, batch_mid, NULL, 200, JSON_TYPE, "{\"accepted\":1}");
	expect_error(f, BATCH, JSON_TYPE, batch_over, 413, too_large);
	free(batch_at);
	free(batch_over);
	free(batch_mid);

	/* Announced by Content-Length alone: answered without waiting for the body. */
	char *answer = raw_exchange(f->d.port,
				    "POST /api/events HTTP/1.1\r\nHost: x\r\n"
				    "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
				    5000);
	assert_non_null(answer);
	if (strncmp(answer, "HTTP/1.1 413 ", 13) != 0 ||
	    !strstr(answer, "\r\n\r\n{\"error\":\"Payload too large.\"}"))
		fail_msg("Content-Length 1000000 answered:\n%s", answer);
	free(answer);
	answer = raw_exchange(f->d.port,
			      "POST /api/events/batch HTTP/1.1\r\nHost: x\r\n"
			      "Content-Type: application/json\r\nContent-Length: 201\r\n\r\n",
			      5000);
	assert_non_null(answer);
	if (strncmp(answer, "HTTP/1.1 413 ", 13) != 0 ||
	    !strstr(answer, "\r\n\r\n{\"error\":\"Payload too large.\"}"))
		fail_msg("batch Content-Length 201 answered:\n%s", answer);
	free(answer);

	/* Without Content-Length (chunked) the received bytes count. */
	const char *const chunked[] = { "Transfer-Encoding: chunked", NULL };
	over = event_of_size(101);
	expect(f, "POST", EVENTS, JSON_TYPE, over, chunked, 413, JSON_TYPE,
	       "{\"error\":\"Payload too large.\"}");
	free(over);
	at = event_of_size(100);
	struct http_reply r;
	send_req(f, "POST", EVENTS, JSON_TYPE, at, chunked, &r);
	assert_int_equal(r.status, 200);
	http_reply_free(&r);
	free(at);
	/* Far beyond the limit: answered 413 without reading the body to its end, both to a
	 * client that reads while sending and to one that reads only after sending. */
	over = event_of_size(3 * 1024 * 1024);
	expect(f, "POST", BATCH, JSON_TYPE, over, chunked, 413, JSON_TYPE,
	       "{\"error\":\"Payload too large.\"}");
	free(over);
	static const char *const paths[] = { EVENTS, BATCH };
	for (int i = 0; i < 2; i++) {
		answer = raw_chunked_post(f->d.port, paths[i], 8 * 1024 * 1024);
		if (!answer || strncmp(answer, "HTTP/1.1 413 ", 13) != 0 ||
		    !strstr(answer, "\r\nContent-Type: application/json\r\n") ||
		    !strstr(answer, "\r\n\r\n{\"error\":\"Payload too large.\"}"))
			fail_msg("chunked 8 MiB to %s answered:\n%s", paths[i],
				 answer ? answer : "(nothing)");
		free(answer);
	}
	expect_deliveries(f, 4);
	assert_int_equal(metric(f, "ilagent_rejected_total{source=\"http\",reason=\"too_large\"}", NULL), 10);
	assert_int_equal(metric(f, "ilagent_http_requests_total{route=\"/api/events\",code=\"413\"}", NULL), 6);
	stop_ok(f);
}

/* ---- queue full (§10.3 step 3, §15) ------------------------------------------------------- */

static void expect_queue_full(const struct daemon_fixture *f, const char *path, const char *body,
			      const char *const headers[])
{
	struct http_reply r;
	send_req(f, "POST", path, JSON_TYPE, body, headers, &r);
	if (r.status != 503 || strcmp(r.body, "{\"error\":\"Queue is full, retry later.\"}") != 0)
		fail_msg("POST %s while paused: answered %ld '%s'", path, r.status, r.body);
	check_header(&r, "Content-Type", JSON_TYPE, path);
	check_header(&r, "Retry-After", "5", path);
	http_reply_free(&r);
}

/* ilert is down, so the queue fills: both event routes answer 503 + Retry-After: 5 before
 * looking at the body (even an oversized or chunked one), the other routes keep working. */
static void test_queue_full_answers(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply down = { .status = 503, .body = "{}" };
	fake_ilert_set_default(f->fake, &down);
	const char *const extra[] = { "--max_queue", "3", "--dedup_window", "0", "--max_body",
				      "100", NULL };
	start(f, extra, NULL);
	struct http_reply r;
	int accepted = 0;
	for (;;) {
		send_req(f, "POST", EVENTS, JSON_TYPE, VALID, NULL, &r);
		if (r.status != 200)
			break;
		http_reply_free(&r);
		assert_true(++accepted <= 10);
	}
	http_reply_free(&r);
	assert_true(accepted >= 3);
	expect_queue_full(f, EVENTS, VALID, NULL);
	expect_queue_full(f, BATCH, "[" VALID "]", NULL);
	expect_queue_full(f, BATCH, "[]", NULL);
	const char *const chunked[] = { "Transfer-Encoding: chunked", NULL };
	expect_queue_full(f, EVENTS, VALID, chunked);
	char *big = event_of_size(5000);
	expect_queue_full(f, EVENTS, big, NULL);
	free(big);
	assert_int_equal(queued(f), accepted);
	/* The other routes keep answering. */
	expect(f, "GET", "/health", NULL, NULL, NULL, 204, NULL, "");
	assert_int_equal(metric(f, "ilagent_rejected_total{source=\"http\",reason=\"queue_full\"}", NULL), 6);
	assert_int_equal(metric(f, "ilagent_intake_paused", NULL), 1);
	stop_ok(f);
}

/* ---- routes, methods, HEAD (§10.3, §10.4) ------------------------------------------------ */

static void test_routes_and_methods(void **state)
{
	struct daemon_fixture *f = *state;
	start(f, NULL, NULL);
	static const struct {
		const char *method, *path;
	} not_found[] = {
		{ "GET", "/nope" },
		{ "GET", "/health/" },
		{ "GET", "/Health" },
		{ "GET", "/metrics/" },
		{ "POST", "/api/events/" },
		{ "POST", "/api/events/batch/" },
		{ "POST", "/api/event" },
		{ "GET", "/api/heartbeats/" },
		{ "GET", "/api/heartbeats" },
		{ "GET", "/api/heartbeats/a/b" },
		{ "GET", "/api/heartbeats/a/" },
		{ "DELETE", "/api" },
		{ "GET", "//health" },
	};
	for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
		const char *body = strcmp(not_found[i].method, "POST") == 0 ? VALID : NULL;
		expect(f, not_found[i].method, not_found[i].path,
		       body ? JSON_TYPE : NULL, body, NULL, 404, NULL, "");
	}
	static const struct {
		const char *method, *path, *allow;
	} not_allowed[] = {
		{ "GET", "/api/events", "POST" },
		{ "HEAD", "/api/events", "POST" },
		{ "PUT", "/api/events", "POST" },
		{ "GET", "/api/events/batch", "POST" },
		{ "DELETE", "/api/events/batch", "POST" },
		{ "POST", "/", "GET, HEAD" },
		{ "POST", "/health", "GET, HEAD" },
		{ "DELETE", "/ready", "GET, HEAD" },
		{ "PUT", "/metrics", "GET, HEAD" },
		{ "POST", "/api/heartbeats/il1hbtkey", "GET, HEAD" },
		{ "OPTIONS", "/", "GET, HEAD" },
	};
	for (size_t i = 0; i < sizeof(not_allowed) / sizeof(not_allowed[0]); i++) {
		struct http_reply r;
		bool with_body = strcmp(not_allowed[i].method, "POST") == 0 ||
				 strcmp(not_allowed[i].method, "PUT") == 0;
		send_req(f, not_allowed[i].method, not_allowed[i].path,
			 with_body ? JSON_TYPE : NULL, with_body ? VALID : NULL, NULL, &r);
		char what[128];
		snprintf(what, sizeof(what), "%s %s", not_allowed[i].method, not_allowed[i].path);
		if (r.status != 405 || r.body[0])
			fail_msg("%s answered %ld '%s', expected 405", what, r.status, r.body);
		check_header(&r, "Allow", not_allowed[i].allow, what);
		http_reply_free(&r);
	}
	/* Nothing reached the fake through the heartbeat route's 405 or the 404s. */
	assert_int_equal(fake_ilert_count(f->fake), 0);
	assert_int_equal(queued(f), 0);
	/* Unknown paths count as route "other"; a wrong method counts on its route. */
	assert_int_equal(metric(f, "ilagent_http_requests_total{route=\"other\",code=\"404\"}", NULL),
			 sizeof(not_found) / sizeof(not_found[0]));
	assert_int_equal(metric(f, "ilagent_http_requests_total{route=\"/api/events\",code=\"405\"}", NULL), 3);
	assert_int_equal(metric(f, "ilagent_http_requests_total{route=\"/api/heartbeats/{key}\",code=\"405\"}", NULL), 1);

	expect(f, "GET", "/", NULL, NULL, NULL, 200, PLAIN_UTF8, "ilagent/" ILAGENT_VERSION);
	expect(f, "GET", "/?x=1", NULL, NULL, NULL, 200, PLAIN_UTF8, "ilagent/" ILAGENT_VERSION);
	struct http_reply r;
	send_req(f, "HEAD", "/", NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "");
	check_header(&r, "Content-Type", PLAIN_UTF8, "HEAD /");
	char length[16];
	snprintf(length, sizeof(length), "%zu", strlen("ilagent/" ILAGENT_VERSION));
	check_header(&r, "Content-Length", length, "HEAD /");
	http_reply_free(&r);
	expect(f, "GET", "/health", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "GET", "/health?probe=1", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "HEAD", "/health", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "GET", "/ready", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "HEAD", "/ready", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "HEAD", "/metrics", NULL, NULL, NULL, 200, METRICS_TYPE, "");
	send_req(f, "GET", "/metrics", NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	check_header(&r, "Content-Type", METRICS_TYPE, "GET /metrics");
	assert_non_null(strstr(r.body, "# TYPE ilagent_build_info gauge\n"));
	http_reply_free(&r);
	stop_ok(f);
}

/* ---- authentication (§10.2) ------------------------------------------------------------- */

#define TOKEN "tok-0123456789abcdef"
#define UNAUTHORIZED "{\"error\":\"Unauthorized.\"}"

static void expect_unauthorized(const struct daemon_fixture *f, const char *method, const char *path,
				const char *content_type, const char *body, const char *auth)
{
	const char *const headers[] = { auth, NULL };
	struct http_reply r;
	send_req(f, method, path, content_type, body, auth ? headers : NULL, &r);
	char what[200];
	snprintf(what, sizeof(what), "%s %s with '%s'", method, path, auth ? auth : "(none)");
	const char *want = strcmp(method, "HEAD") == 0 ? "" : UNAUTHORIZED;
	if (r.status != 401 || strcmp(r.body, want) != 0)
		fail_msg("%s: answered %ld '%s', expected 401", what, r.status, r.body);
	check_header(&r, "WWW-Authenticate", "Bearer realm=\"ilagent\"", what);
	check_header(&r, "Content-Type", JSON_TYPE, what);
	http_reply_free(&r);
}

/* Every protected route refuses a missing or wrong token; the open ones and the route and
 * method checks come first; the accepted schemes. Events are kept queued (ilert answers 503)
 * so the stored rows can be counted. */
static void check_token(struct daemon_fixture *f, const char *token)
{
	char good[128], lower[128], upper[128], mixed[128], wrong[128], longer[128], shorter[128],
		basic[128];
	snprintf(good, sizeof(good), "Authorization: Bearer %s", token);
	snprintf(lower, sizeof(lower), "Authorization: bearer %s", token);
	snprintf(upper, sizeof(upper), "Authorization: BEARER %s", token);
	snprintf(mixed, sizeof(mixed), "Authorization: bEaReR %s", token);
	snprintf(wrong, sizeof(wrong), "Authorization: Bearer x%s", token + 1);
	snprintf(longer, sizeof(longer), "Authorization: Bearer %sx", token);
	snprintf(shorter, sizeof(shorter), "Authorization: Bearer %.*s", (int)strlen(token) - 1, token);
	snprintf(basic, sizeof(basic), "Authorization: Basic %s", token);
	const char *bad[] = { NULL, wrong, longer, shorter, basic, "Authorization: Bearer",
			      "Authorization: Bearer ", "Authorization: Token " TOKEN, "Authorization:" };
	static const struct {
		const char *method, *path, *ct, *body;
	} routes[] = {
		{ "GET", "/", NULL, NULL },
		{ "HEAD", "/", NULL, NULL },
		{ "GET", "/metrics", NULL, NULL },
		{ "POST", EVENTS, JSON_TYPE, VALID },
		{ "POST", BATCH, JSON_TYPE, "[" VALID "]" },
		{ "GET", "/api/heartbeats/il1hbt-key-0123456789", NULL, NULL },
		{ "GET", "/api/heartbeats/beat-key", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
			expect_unauthorized(f, routes[i].method, routes[i].path, routes[i].ct,
					    routes[i].body, bad[k]);
	/* Authentication comes before the size and content checks. */
	char *big = repeat("x", 20000);
	expect_unauthorized(f, "POST", EVENTS, NULL, big, NULL);
	expect_unauthorized(f, "POST", BATCH, "text/plain", "{", wrong);
	free(big);
	/* Route lookup and method come before it. */
	expect(f, "GET", "/nope", NULL, NULL, NULL, 404, NULL, "");
	expect(f, "GET", EVENTS, NULL, NULL, NULL, 405, NULL, "");
	/* /health and /ready never need it. */
	const char *const wrong_h[] = { wrong, NULL };
	expect(f, "GET", "/health", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "GET", "/ready", NULL, NULL, NULL, 204, NULL, "");
	expect(f, "HEAD", "/ready", NULL, NULL, wrong_h, 204, NULL, "");
	expect(f, "GET", "/health", NULL, NULL, wrong_h, 204, NULL, "");
	assert_int_equal(queued(f), 0);
	assert_int_equal(fake_ilert_count(f->fake), 0);

	/* Accepted, scheme name in any case. */
	const char *oks[] = { good, lower, upper, mixed };
	for (size_t i = 0; i < sizeof(oks) / sizeof(oks[0]); i++) {
		const char *const h[] = { oks[i], NULL };
		expect(f, "GET", "/", NULL, NULL, h, 200, PLAIN_UTF8, "ilagent/" ILAGENT_VERSION);
		struct http_reply r;
		send_req(f, "POST", EVENTS, JSON_TYPE, VALID, h, &r);
		if (r.status != 200)
			fail_msg("POST with '%s' answered %ld %s", oks[i], r.status, r.body);
		http_reply_free(&r);
	}
	const char *const h[] = { good, NULL };
	expect(f, "POST", BATCH, JSON_TYPE, "[" VALID "]", h, 200, JSON_TYPE, "{\"accepted\":1}");
	/* 9 refusals on each event route, and the two before the size and content checks. */
	assert_int_equal(metric(f, "ilagent_rejected_total{source=\"http\",reason=\"unauthorized\"}", h), 20);
	assert_int_equal(queued(f), 5);
}

static void test_auth_flag(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply down = { .status = 503, .body = "{}" };
	fake_ilert_set_default(f->fake, &down);
	const char *const extra[] = { "--http_token", TOKEN, "--dedup_window", "0",
				      "--retry_max_backoff", "60", NULL };
	const char *const env[] = { "ILAGENT_HTTP_TOKEN", NULL };
	start(f, extra, env);
	check_token(f, TOKEN);
	stop_ok(f);
	char *log = daemon_log(&f->d);
	assert_null(strstr(log, TOKEN));
	free(log);
}

static void test_auth_env(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply down = { .status = 503, .body = "{}" };
	fake_ilert_set_default(f->fake, &down);
	const char *const extra[] = { "--dedup_window", "0", "--retry_max_backoff", "60", NULL };
	const char *const env[] = { "ILAGENT_HTTP_TOKEN=envtok-0123456789", NULL };
	start(f, extra, env);
	check_token(f, "envtok-0123456789");
	stop_ok(f);
	char *log = daemon_log(&f->d);
	assert_null(strstr(log, "envtok-0123456789"));
	free(log);
	daemon_cleanup(&f->d);

	/* The flag wins over the environment. */
	const char *const extra2[] = { "--http_token", "flagtok-0123456789", NULL };
	start(f, extra2, env);
	const char *const env_h[] = { "Authorization: Bearer envtok-0123456789", NULL };
	const char *const flag_h[] = { "Authorization: Bearer flagtok-0123456789", NULL };
	expect_unauthorized(f, "GET", "/", NULL, NULL, env_h[0]);
	expect(f, "GET", "/", NULL, NULL, flag_h, 200, PLAIN_UTF8, "ilagent/" ILAGENT_VERSION);
	stop_ok(f);
}

/* ---- dedup through the daemon (§9) --------------------------------------------------------- */

#define DISK_A "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\",\"alertKey\":\"%s\"," \
	       "\"customDetails\":{\"b\":1,\"a\":2}}"
#define DISK_ECHO "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\",\"details\":null," \
		  "\"alertKey\":\"%s\",\"priority\":null,\"images\":null,\"links\":null,\"customDetails\":{\"b\":1,\"a\":2}}"

static void post_disk(const struct daemon_fixture *f, const char *alert_key, const char *echo_key)
{
	char body[512], echo[512];
	snprintf(body, sizeof(body), DISK_A, alert_key);
	snprintf(echo, sizeof(echo), DISK_ECHO, echo_key);
	expect(f, "POST", EVENTS, JSON_TYPE, body, NULL, 200, JSON_TYPE, echo);
}

static void test_dedup(void **state)
{
	struct daemon_fixture *f = *state;
	/* A slow first delivery keeps the first row in the queue while the duplicates arrive. */
	struct fake_reply slow = { .status = 202, .body = "{}", .delay_ms = 1500 };
	fake_ilert_push(f->fake, &slow);
	start(f, NULL, NULL);
	post_disk(f, "Disk-1", "Disk-1");
	post_disk(f, "Disk-1", "Disk-1");
	post_disk(f, "  DISK-1\\t", "DISK-1"); /* other letter case: the same key */
	post_disk(f, "disk-1", "disk-1");
	assert_int_equal(queued(f), 1);
	assert_int_equal(fake_ilert_wait_count(f->fake, 1, 1000), 1);
	/* Different content or integration key under the same alertKey is not a duplicate. */
	post_ok(f, EVENTS, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\","
			   "\"alertKey\":\"Disk-1\",\"customDetails\":{\"a\":2,\"b\":1}}");
	post_ok(f, EVENTS, "{\"integrationKey\":\"ik2\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\","
			   "\"alertKey\":\"Disk-1\",\"customDetails\":{\"b\":1,\"a\":2}}");
	/* Without alertKey nothing is deduplicated. */
	post_ok(f, EVENTS, VALID);
	post_ok(f, EVENTS, VALID);
	/* A batch: the duplicate inside it and one of an earlier event are counted in accepted. */
	expect(f, "POST", BATCH, JSON_TYPE,
	       "[{\"integrationKey\":\"ik\",\"eventType\":\"RESOLVE\",\"summary\":\"x\",\"alertKey\":\"b-1\"},"
	       "{\"integrationKey\":\"ik\",\"eventType\":\"RESOLVE\",\"summary\":\"x\",\"alertKey\":\"B-1\"},"
	       "{\"integrationKey\":\"ik2\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\",\"alertKey\":\"DISK-1\","
	       "\"customDetails\":{\"b\":1,\"a\":2}}]",
	       NULL, 200, JSON_TYPE, "{\"accepted\":3}");
	expect_deliveries(f, 6);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_string_equal(req->body,
			    "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"Disk full\","
			    "\"alertKey\":\"Disk-1\",\"details\":null,\"priority\":null,\"images\":null,"
			    "\"links\":null,\"customDetails\":{\"b\":1,\"a\":2}}");
	fake_request_free(req);
	assert_int_equal(metric(f, "ilagent_deduplicated_total{source=\"http\"}", NULL), 5);
	assert_int_equal(metric(f, "ilagent_committed_total{source=\"http\",kind=\"event\"}", NULL), 6);
	stop_ok(f);
}

static void test_dedup_disabled_and_window(void **state)
{
	struct daemon_fixture *f = *state;
	const char *const off[] = { "--dedup_window", "0", NULL };
	start(f, off, NULL);
	post_disk(f, "Disk-1", "Disk-1");
	post_disk(f, "Disk-1", "Disk-1");
	expect(f, "POST", BATCH, JSON_TYPE,
	       "[{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"x\",\"alertKey\":\"k\"},"
	       "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"x\",\"alertKey\":\"k\"}]",
	       NULL, 200, JSON_TYPE, "{\"accepted\":2}");
	expect_deliveries(f, 4);
	assert_int_equal(metric(f, "ilagent_deduplicated_total{source=\"http\"}", NULL), 0);
	stop_ok(f);
	daemon_cleanup(&f->d);

	/* A window of 1 s: the same event after it has passed is delivered again. */
	fake_ilert_reset(f->fake);
	const char *const one[] = { "--dedup_window", "1", NULL };
	start(f, one, NULL);
	post_disk(f, "Disk-1", "Disk-1");
	post_disk(f, "Disk-1", "Disk-1");
	usleep(1100000);
	post_disk(f, "Disk-1", "Disk-1");
	expect_deliveries(f, 2);
	stop_ok(f);
}

/* ---- heartbeat proxy (§10.7) ------------------------------------------------------------ */

/* Like daemon_start, but with a separate heartbeat base. */
static bool start_with_beat(struct daemon_fixture *f, const char *const env[])
{
	struct test_daemon *d = &f->d;
	memset(d, 0, sizeof(*d));
	d->dir = strdup(f->dir);
	snprintf(d->db, sizeof(d->db), "%s/ilagent.db3", f->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon-beat.log", f->dir);
	d->port = test_free_port();
	snprintf(d->base, sizeof(d->base), "http://127.0.0.1:%d", d->port);
	char port[16];
	snprintf(port, sizeof(port), "%d", d->port);
	const char *const argv[] = { test_ilagent_bin(), "daemon", "-f", d->db, "--api_url",
				     fake_ilert_url(f->fake), "--beat_url", fake_ilert_url(f->beat),
				     "-vv", "-p", port, "--bind", "127.0.0.1", "--api_timeout", "1", NULL };
	d->proc = proc_bg_start(argv, env, NULL, d->log);
	if (!d->proc)
		return false;
	int64_t deadline = clock_mono_ms() + 15000;
	char url[128];
	snprintf(url, sizeof(url), "%s/health", d->base);
	while (clock_mono_ms() < deadline) {
		struct http_reply r;
		int rc = http_request("GET", url, NULL, NULL, 0, NULL, 1000, &r);
		long status = r.status;
		http_reply_free(&r);
		if (rc == 0 && status == 204)
			return true;
		usleep(20000);
	}
	return false;
}

static void test_heartbeat_proxy(void **state)
{
	struct daemon_fixture *f = *state;
	f->beat = fake_ilert_start();
	assert_non_null(f->beat);
	const char *const env[] = { "ILERT_API_KEY=apikey-0123456789abcdef", NULL };
	assert_true(start_with_beat(f, env));

	expect(f, "GET", "/api/heartbeats/il1hbt-key-0123456789", NULL, NULL, NULL, 202, JSON_TYPE, "{}");
	assert_int_equal(fake_ilert_count(f->fake), 1);
	struct fake_request *req = fake_ilert_request(f->fake, 0);
	assert_string_equal(req->method, "GET");
	assert_string_equal(req->target, "/api/heartbeats/il1hbt-key-0123456789");
	char *auth = fake_request_header(req, "Authorization");
	assert_null(auth);
	fake_request_free(req);

	/* HEAD pings too; the query string is not part of the key. */
	expect(f, "HEAD", "/api/heartbeats/il1hbt-key-0123456789?x=1", NULL, NULL, NULL, 202, JSON_TYPE, "");
	assert_int_equal(fake_ilert_count(f->fake), 2);
	req = fake_ilert_request(f->fake, 1);
	assert_string_equal(req->method, "GET");
	assert_string_equal(req->target, "/api/heartbeats/il1hbt-key-0123456789");
	fake_request_free(req);

	/* ilert fails: 500 text/plain. */
	struct fake_reply err = { .status = 500, .body = "{}" };
	struct fake_reply notfound = { .status = 404, .body = "{}" };
	struct fake_reply redirect = { .status = 302, .headers = "Location: http://127.0.0.1:1/\r\n" };
	fake_ilert_push(f->fake, &err);
	fake_ilert_push(f->fake, &notfound);
	fake_ilert_push(f->fake, &redirect);
	for (int i = 0; i < 3; i++)
		expect(f, "GET", "/api/heartbeats/il1hbt-key-0123456789", NULL, NULL, NULL, 500,
		       "text/plain", "Failed to proxy heartbeat");
	assert_int_equal(fake_ilert_count(f->fake), 5);

	/* Other keys: HEAD /api/pings/<key> on the heartbeat base, key percent-encoded. */
	expect(f, "GET", "/api/heartbeats/beat-key-0123456789", NULL, NULL, NULL, 202, JSON_TYPE, "{}");
	expect(f, "GET", "/api/heartbeats/a%2Fb%20c", NULL, NULL, NULL, 202, JSON_TYPE, "{}");
	assert_int_equal(fake_ilert_count(f->beat), 2);
	req = fake_ilert_request(f->beat, 0);
	assert_string_equal(req->method, "HEAD");
	assert_string_equal(req->target, "/api/pings/beat-key-0123456789");
	auth = fake_request_header(req, "Authorization");
	assert_null(auth);
	fake_request_free(req);
	req = fake_ilert_request(f->beat, 1);
	assert_string_equal(req->method, "HEAD");
	assert_string_equal(req->target, "/api/pings/a%2Fb%20c");
	fake_request_free(req);
	fake_ilert_push(f->beat, &err);
	expect(f, "GET", "/api/heartbeats/beat-key-0123456789", NULL, NULL, NULL, 500,
	       "text/plain", "Failed to proxy heartbeat");

	/* ilert slower than --api_timeout: 500 after the timeout. */
	struct fake_reply slow = { .status = 202, .body = "{}", .delay_ms = 3000 };
	fake_ilert_push(f->beat, &slow);
	int64_t t0 = clock_mono_ms();
	expect(f, "GET", "/api/heartbeats/beat-key-0123456789", NULL, NULL, NULL, 500,
	       "text/plain", "Failed to proxy heartbeat");
	assert_true(clock_mono_ms() - t0 < 2500);

	/* Not queued, not retried. */
	usleep(300000);
	assert_int_equal(fake_ilert_count(f->fake), 5);
	assert_int_equal(fake_ilert_count(f->beat), 4);
	assert_int_equal(queued(f), 0);
	assert_int_equal(metric(f, "ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"success\"}", NULL), 4);
	assert_int_equal(metric(f, "ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"failure\"}", NULL), 5);
	stop_ok(f);
	char *log = daemon_log(&f->d);
	assert_non_null(strstr(log, "Bad heartbeat http response 500"));
	assert_null(strstr(log, "il1hbt-key-0123456789"));
	assert_null(strstr(log, "beat-key-0123456789"));
	assert_null(strstr(log, "apikey-0123456789abcdef"));
	free(log);
}

struct ping_call {
	const char *url;
	long status;
};

static void *ping_thread(void *arg)
{
	struct ping_call *c = arg;
	struct http_reply r;
	http_request("GET", c->url, NULL, NULL, 0, NULL, 20000, &r);
	c->status = r.status;
	http_reply_free(&r);
	return NULL;
}

/* 32 proxied pings in flight: the next gets 503 at once, other requests are not delayed. */
static void test_heartbeat_proxy_limit(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply slow = { .status = 202, .body = "{}", .delay_ms = 2500 };
	fake_ilert_push_n(f->fake, &slow, 32);
	start(f, NULL, NULL);
	char url[256];
	snprintf(url, sizeof(url), "%s/api/heartbeats/il1hbt-limit", f->d.base);
	enum { N = 32 };
	pthread_t tids[N];
	struct ping_call calls[N];
	for (int i = 0; i < N; i++) {
		calls[i] = (struct ping_call){ .url = url };
		assert_int_equal(pthread_create(&tids[i], NULL, ping_thread, &calls[i]), 0);
	}
	assert_int_equal(fake_ilert_wait_count(f->fake, N, 10000), N);
	int64_t t0 = clock_mono_ms();
	struct http_reply r;
	send_req(f, "GET", "/api/heartbeats/il1hbt-limit", NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "{\"error\":\"Too many concurrent heartbeat requests.\"}");
	check_header(&r, "Retry-After", "1", "33rd ping");
	check_header(&r, "Content-Type", JSON_TYPE, "33rd ping");
	http_reply_free(&r);
	expect(f, "GET", "/health", NULL, NULL, NULL, 204, NULL, "");
	post_ok(f, EVENTS, VALID);
	assert_true(clock_mono_ms() - t0 < 1500);
	for (int i = 0; i < N; i++) {
		pthread_join(tids[i], NULL);
		assert_int_equal(calls[i].status, 202);
	}
	/* The slots are free again. */
	expect(f, "GET", "/api/heartbeats/il1hbt-limit", NULL, NULL, NULL, 202, JSON_TYPE, "{}");
	stop_ok(f);
}

/* ---- /metrics (§19) ------------------------------------------------------------------------ */

static void test_metrics(void **state)
{
	struct daemon_fixture *f = *state;
	start(f, NULL, NULL);
	post_disk(f, "m-1", "m-1");
	post_disk(f, "M-1", "M-1");
	post_ok(f, EVENTS, VALID);
	expect_error(f, EVENTS, JSON_TYPE, "{}", 400, "Missing field 'integrationKey'.");
	expect(f, "POST", BATCH, JSON_TYPE, "[" VALID "," VALID "]", NULL, 200, JSON_TYPE,
	       "{\"accepted\":2}");
	expect(f, "GET", "/api/heartbeats/il1hbt-m", NULL, NULL, NULL, 202, JSON_TYPE, "{}");
	expect_deliveries(f, 5);
	wait_metric(f, "ilagent_forwarded_total{source=\"http\",kind=\"event\"}", 4);

	struct http_reply r;
	send_req(f, "GET", "/metrics", NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	check_header(&r, "Content-Type", METRICS_TYPE, "GET /metrics");
	const char *const promtool[] = { "promtool", "check", "metrics", NULL };
	struct proc_result pr;
	assert_int_equal(proc_run(promtool, NULL, r.body, 20000, &pr), 0);
	if (pr.exit_code != 0 || pr.out[0] || pr.err[0])
		fail_msg("promtool check metrics: exit %d\n%s%s", pr.exit_code, pr.out, pr.err);
	proc_result_free(&pr);

	static const struct {
		const char *series;
		double value;
	} want[] = {
		{ "ilagent_committed_total{source=\"http\",kind=\"event\"}", 4 },
		{ "ilagent_forwarded_total{source=\"http\",kind=\"event\"}", 4 },
		{ "ilagent_deduplicated_total{source=\"http\"}", 1 },
		{ "ilagent_received_total{source=\"http\"}", 6 },
		{ "ilagent_rejected_total{source=\"http\",reason=\"invalid\"}", 1 },
		{ "ilagent_http_requests_total{route=\"/api/events\",code=\"200\"}", 3 },
		{ "ilagent_http_requests_total{route=\"/api/events\",code=\"400\"}", 1 },
		{ "ilagent_http_requests_total{route=\"/api/events/batch\",code=\"200\"}", 1 },
		{ "ilagent_http_requests_total{route=\"/api/heartbeats/{key}\",code=\"202\"}", 1 },
		{ "ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"success\"}", 1 },
		{ "ilagent_ilert_requests_total{endpoint=\"events\",code=\"202\"}", 4 },
		{ "ilagent_ilert_requests_total{endpoint=\"heartbeats\",code=\"202\"}", 1 },
		{ "ilagent_build_info{version=\"" ILAGENT_VERSION "\"}", 1 },
		{ "ilagent_component_ready{component=\"daemon\"}", 1 },
		{ "ilagent_intake_paused", 0 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *v = metric_line(r.body, want[i].series);
		if (!v || strtod(v, NULL) != want[i].value)
			fail_msg("%s: got %.20s, expected %g", want[i].series, v ? v : "(absent)",
				 want[i].value);
	}
	assert_non_null(strstr(r.body, "# TYPE ilagent_commit_latency_seconds histogram\n"));
	assert_non_null(metric_line(r.body, "ilagent_commit_latency_seconds_count"));
	assert_true(strtod(metric_line(r.body, "ilagent_commit_latency_seconds_count"), NULL) >= 2);
	http_reply_free(&r);
	/* The scrape itself is counted. */
	assert_true(metric(f, "ilagent_http_requests_total{route=\"/metrics\",code=\"200\"}", NULL) >= 2);
	stop_ok(f);
}

/* ---- shutdown (§18, §20.3) ------------------------------------------------------------------ */

static void test_shutdown_answers(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply slow = { .status = 202, .body = "{}", .delay_ms = 3000 };
	fake_ilert_set_default(f->fake, &slow);
	const char *const extra[] = { "--shutdown_timeout", "30", NULL };
	start(f, extra, NULL);
	post_ok(f, EVENTS, VALID);
	assert_int_equal(fake_ilert_wait_count(f->fake, 1, 5000), 1);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(proc_bg_signal(f->d.proc, SIGTERM), 0);

	int64_t deadline = clock_mono_ms() + 2000;
	long status = 0;
	while (clock_mono_ms() < deadline) {
		struct http_reply r;
		send_req(f, "GET", "/health", NULL, NULL, NULL, &r);
		status = r.status;
		http_reply_free(&r);
		if (status == 503)
			break;
		usleep(20000);
	}
	assert_int_equal(status, 503);
	expect(f, "GET", "/health", NULL, NULL, NULL, 503, NULL, "");
	expect(f, "GET", "/ready", NULL, NULL, NULL, 503, JSON_TYPE,
	       "{\"component\":\"daemon\",\"error\":\"shutting down\"}");
	expect_error(f, EVENTS, JSON_TYPE, VALID, 503, "Shutting down.");
	expect_error(f, BATCH, JSON_TYPE, "[" VALID "]", 503, "Shutting down.");
	expect(f, "GET", "/api/heartbeats/il1hbt-key", NULL, NULL, NULL, 503, JSON_TYPE,
	       "{\"error\":\"Shutting down.\"}");
	/* The intake state is looked at before the size and the content. */
	expect_error(f, EVENTS, NULL, "{", 503, "Shutting down.");
	char *big = repeat("x", 20000);
	expect_error(f, EVENTS, JSON_TYPE, big, 503, "Shutting down.");
	free(big);
	/* Route and method still come first. */
	expect(f, "GET", "/nope", NULL, NULL, NULL, 404, NULL, "");
	expect(f, "GET", EVENTS, NULL, NULL, NULL, 405, NULL, "");
	assert_int_equal(metric(f, "ilagent_component_ready{component=\"daemon\"}", NULL), 0);
	assert_int_equal(metric(f, "ilagent_rejected_total{source=\"http\",reason=\"shutting_down\"}", NULL), 4);
	/* Still draining: the delivery has not been answered yet. */
	int code = -5;
	assert_false(proc_bg_wait(f->d.proc, 0, &code));
	assert_true(proc_bg_wait(f->d.proc, 20000, &code));
	assert_int_equal(code, 0);
	assert_true(clock_mono_ms() - t0 >= 1500);
	proc_bg_destroy(f->d.proc);
	f->d.proc = NULL;
	/* The in-flight delivery finished and only it reached ilert. */
	assert_int_equal(queued(f), 0);
	assert_int_equal(fake_ilert_count(f->fake), 1);
}

/* ---- --log_format json (§5) ------------------------------------------------------------------ */

static void test_log_format_json(void **state)
{
	struct daemon_fixture *f = *state;
	struct fake_reply err = { .status = 500, .body = "{}" };
	fake_ilert_push(f->fake, &err);
	const char *const extra[] = { "--log_format", "json", NULL };
	start(f, extra, NULL);
	expect(f, "GET", "/api/heartbeats/il1hbt-json-0123456789", NULL, NULL, NULL, 500,
	       "text/plain", "Failed to proxy heartbeat");
	expect_error(f, EVENTS, JSON_TYPE, "{\"summary\":\"with \\\"quotes\\\" and \\n\"}", 400,
		     "Missing field 'integrationKey'.");
	post_ok(f, EVENTS, "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"line\\nbreak \\\"q\\\"\"}");
	expect(f, "GET", "/", NULL, NULL, NULL, 200, PLAIN_UTF8, "ilagent/" ILAGENT_VERSION);
	expect_deliveries(f, 2);
	stop_ok(f);

	char *log = daemon_log(&f->d);
	assert_non_null(log);
	static const char *const first[] = { "ts", "level", "component", "msg" };
	int lines = 0;
	bool saw_start = false, saw_signal = false, saw_access = false;
	char *save = NULL;
	for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lines++;
		json_error_t jerr;
		json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(o))
			fail_msg("log line %d is not a JSON object: %s", lines, line);
		void *it = json_object_iter(o);
		for (size_t k = 0; k < 4; k++, it = json_object_iter_next(o, it)) {
			if (!it || strcmp(json_object_iter_key(it), first[k]) != 0 ||
			    !json_is_string(json_object_iter_value(it)))
				fail_msg("log line %d: key %zu is not \"%s\": %s", lines, k, first[k], line);
		}
		const char *msg = json_string_value(json_object_get(o, "msg"));
		const char *comp = json_string_value(json_object_get(o, "component"));
		saw_start |= strstr(msg, "ilagent " ILAGENT_VERSION " started") != NULL;
		saw_signal |= strcmp(msg, "Received SIGTERM, shutting down") == 0 &&
			      strcmp(comp, "main") == 0;
		saw_access |= strncmp(msg, "POST /api/events 400 ", 21) == 0 && strcmp(comp, "http") == 0;
		json_decref(o);
	}
	free(log);
	assert_true(lines >= 3);
	assert_true(saw_start);
	assert_true(saw_signal);
	assert_true(saw_access);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_event_rejections, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_event_accepted_variants, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_batch_rejections, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_batch_commits_in_order, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_body_limits, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_queue_full_answers, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_routes_and_methods, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_auth_flag, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_auth_env, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_dedup, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_dedup_disabled_and_window, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_proxy, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_proxy_limit, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_metrics, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_answers, daemon_fixture_setup, daemon_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_log_format_json, daemon_fixture_setup, daemon_fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
