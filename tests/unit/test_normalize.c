/* Normalization (SPEC §7, §10.5, §10.6, §11): every HTTP error row with its exact text and
 * check order, batches, the echo, alertKey and ordering key, dedup content, parser limits,
 * and the consumer rules: classification, filter, every mapping step, heartbeat and policy
 * messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/config.h"
#include "core/err.h"
#include "core/text.h"
#include "pipeline/normalize.h"
#include "proc.h"

#define HDR "\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\""

/* ---- helpers ------------------------------------------------------------------------------ */

static void expect_http_error(const char *body, const char *text)
{
	struct pending_item item;
	char *echo = (char *)1, *error = NULL;
	int rc = normalize_http_event(body, strlen(body), &item, &echo, &error);
	if (rc != ILA_ERR_INVALID || !error || strcmp(error, text) != 0)
		fail_msg("body %s: rc %d, error '%s', expected '%s'", body, rc,
			 error ? error : "(null)", text);
	assert_null(echo);
	free(error);
}

/* The error must start with "Invalid JSON: " followed by some detail. */
static void expect_invalid_json(const char *body, size_t len)
{
	struct pending_item item;
	char *echo = NULL, *error = NULL;
	int rc = normalize_http_event(body, len, &item, &echo, &error);
	assert_int_equal(rc, ILA_ERR_INVALID);
	assert_non_null(error);
	if (strncmp(error, "Invalid JSON: ", 14) != 0 || strlen(error) <= 14)
		fail_msg("body %.*s: error '%s'", (int)len, body, error);
	assert_null(echo);
	free(error);
}

static void http_ok(const char *body, struct pending_item *item, char **echo)
{
	char *error = NULL;
	int rc = normalize_http_event(body, strlen(body), item, echo, &error);
	if (rc != 0)
		fail_msg("body %s: rc %d, error '%s'", body, rc, error ? error : "(null)");
	assert_null(error);
	assert_int_equal(item->kind, STORE_KIND_EVENT);
}

static void expect_echo(const char *body, const char *expected)
{
	struct pending_item item;
	char *echo = NULL;
	http_ok(body, &item, &echo);
	assert_string_equal(echo, expected);
	free(echo);
	pending_item_clear(&item);
}

static void expect_batch_error(const char *body, const char *text, int index)
{
	struct pending_item *items = (struct pending_item *)1;
	size_t count = 99;
	char *error = NULL;
	int idx = -7;
	int rc = normalize_http_batch(body, strlen(body), &items, &count, &error, &idx);
	if (rc != ILA_ERR_INVALID || !error || strcmp(error, text) != 0)
		fail_msg("batch %s: rc %d, error '%s', expected '%s'", body, rc,
			 error ? error : "(null)", text);
	assert_int_equal(idx, index);
	assert_null(items);
	assert_int_equal(count, 0);
	free(error);
}

static void items_free(struct pending_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pending_item_clear(&items[i]);
	free(items);
}

/* n nested arrays around "1": depth n. */
static char *nested(const char *prefix, int n, const char *suffix)
{
	size_t plen = strlen(prefix), slen = strlen(suffix);
	char *s = malloc(plen + 2 * (size_t)n + 2 + slen);
	assert_non_null(s);
	char *p = s;
	memcpy(p, prefix, plen);
	p += plen;
	memset(p, '[', (size_t)n);
	p += n;
	*p++ = '1';
	memset(p, ']', (size_t)n);
	p += n;
	memcpy(p, suffix, slen + 1);
	return s;
}

/* ---- §10.5 rows in check order -------------------------------------------------------------- */

static void test_invalid_json(void **state)
{
	(void)state;
	static const char *const bodies[] = {
		"", " ", "{", "{\"a\":}", "not json", "{} x", "{\"a\":1,}", "{'a':1}",
		"{\"a\":\"\\x\"}", "[1,2", "{\"integrationKey\":\"k\"",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_invalid_json(bodies[i], strlen(bodies[i]));
	/* A NUL byte in the body, and "\u0000" which the string fields cannot carry. */
	expect_invalid_json("{\"a\":1}\0", 8);
	const char *nul = "{" HDR ",\"details\":\"a\\u0000b\"}";
	expect_invalid_json(nul, strlen(nul));
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	static const char *const bodies[] = {
		"{" HDR ",\"details\":\"\xff\"}",             /* invalid byte */
		"{" HDR ",\"details\":\"\xc0\xaf\"}",         /* overlong */
		"{" HDR ",\"details\":\"\xed\xa0\x80\"}",     /* UTF-16 surrogate */
		"{" HDR ",\"details\":\"\xe2\x82\"}",         /* truncated sequence */
		"{" HDR ",\"details\":\"\\ud800\"}",          /* lone escaped surrogate */
		"{\xff" HDR "}",                               /* outside a string */
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_invalid_json(bodies[i], strlen(bodies[i]));
}

static void test_depth_limit(void **state)
{
	(void)state;
	/* The event object is level 1; 63 arrays below it make 64. */
	char *ok = nested("{" HDR ",\"customDetails\":", 63, "}");
	struct pending_item item;
	char *echo = NULL;
	http_ok(ok, &item, &echo);
	pending_item_clear(&item);
	free(echo);
	free(ok);

	char *deep = nested("{" HDR ",\"customDetails\":", 64, "}");
	expect_http_error(deep, "Invalid JSON: nesting depth exceeds 64");
	free(deep);

	/* Deep and unterminated: still rejected cheaply as too deep. */
	char *huge = nested("", 100000, "");
	expect_http_error(huge, "Invalid JSON: nesting depth exceeds 64");
	free(huge);

	/* Brackets inside strings (escaped quotes included) do not nest. */
	char *inner = nested("{" HDR ",\"details\":\"\\\"", 100, "\\\"\"}");
	http_ok(inner, &item, &echo);
	assert_int_equal(strncmp(item.ev.details, "\"[[[", 4), 0);
	pending_item_clear(&item);
	free(echo);
	free(inner);
}

static void test_not_an_object(void **state)
{
	(void)state;
	static const char *const bodies[] = { "[]", "[{" HDR "}]", "\"x\"", "5", "null", "true" };
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_http_error(bodies[i], "Request body must be a JSON object.");
}

static void test_duplicates(void **state)
{
	(void)state;
	expect_http_error("{\"integrationKey\":\"a\",\"apiKey\":\"b\",\"eventType\":\"ALERT\","
			  "\"summary\":\"s\"}",
			  "Duplicate field 'apiKey'.");
	expect_http_error("{\"apiKey\":\"a\",\"integrationKey\":\"b\",\"eventType\":\"ALERT\","
			  "\"summary\":\"s\"}",
			  "Duplicate field 'integrationKey'.");
	expect_http_error("{" HDR ",\"summary\":\"t\"}", "Duplicate field 'summary'.");
	expect_http_error("{" HDR ",\"customDetails\":1,\"customDetails\":2}",
			  "Duplicate field 'customDetails'.");
	/* A null counts as given. */
	expect_http_error("{" HDR ",\"alertKey\":null,\"alertKey\":\"a\"}",
			  "Duplicate field 'alertKey'.");
	/* An escaped spelling is the same name. */
	expect_http_error("{" HDR ",\"summ\\u0061ry\":\"t\"}", "Duplicate field 'summary'.");
	/* The first repeat in document order is named. */
	expect_http_error("{" HDR ",\"details\":\"a\",\"eventType\":\"ALERT\",\"details\":\"b\"}",
			  "Duplicate field 'eventType'.");
	/* Duplicates come before missing fields and wrong types. */
	expect_http_error("{\"summary\":5,\"summary\":6}", "Duplicate field 'summary'.");

	/* Inside customDetails the last member wins; unknown top-level keys may repeat. */
	struct pending_item item;
	char *echo = NULL;
	http_ok("{" HDR ",\"x\":1,\"x\":2,\"customDetails\":{\"a\":1,\"b\":[],\"a\":3,"
		"\"n\":{\"summary\":1,\"summary\":2}}}",
		&item, &echo);
	assert_string_equal(item.ev.custom_details, "{\"a\":3,\"b\":[],\"n\":{\"summary\":2}}");
	pending_item_clear(&item);
	free(echo);
	/* Known names nested deeper are not top-level members. */
	http_ok("{" HDR ",\"images\":[{\"src\":\"a\",\"src\":\"b\"}]}", &item, &echo);
	assert_string_equal(item.ev.images, "[{\"src\":\"b\"}]");
	pending_item_clear(&item);
	free(echo);
}

static void test_missing(void **state)
{
	(void)state;
	expect_http_error("{}", "Missing field 'integrationKey'.");
	expect_http_error("{\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Missing field 'integrationKey'.");
	expect_http_error("{\"integrationKey\":null,\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Missing field 'integrationKey'.");
	/* The alias is named when the client used it. */
	expect_http_error("{\"apiKey\":null,\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Missing field 'apiKey'.");
	expect_http_error("{\"integrationKey\":\"k\",\"summary\":\"s\"}", "Missing field 'eventType'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":null,\"summary\":\"s\"}",
			  "Missing field 'eventType'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"ALERT\"}",
			  "Missing field 'summary'.");
	expect_http_error("{\"apiKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":null}",
			  "Missing field 'summary'.");
	/* Order: integrationKey, eventType, summary. */
	expect_http_error("{\"summary\":\"s\"}", "Missing field 'integrationKey'.");
	expect_http_error("{\"integrationKey\":\"k\"}", "Missing field 'eventType'.");
	/* Missing beats a wrong type elsewhere. */
	expect_http_error("{\"integrationKey\":5,\"eventType\":\"ALERT\"}", "Missing field 'summary'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"images\":5}",
			  "Missing field 'summary'.");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_http_error("{\"integrationKey\":5,\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Invalid type for field 'integrationKey'.");
	expect_http_error("{\"apiKey\":[],\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Invalid type for field 'apiKey'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":1,\"summary\":\"s\"}",
			  "Invalid type for field 'eventType'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":{}}",
			  "Invalid type for field 'summary'.");
	expect_http_error("{" HDR ",\"details\":5}", "Invalid type for field 'details'.");
	expect_http_error("{" HDR ",\"alertKey\":true}", "Invalid type for field 'alertKey'.");
	expect_http_error("{" HDR ",\"priority\":1}", "Invalid type for field 'priority'.");
	expect_http_error("{" HDR ",\"images\":{}}", "Invalid type for field 'images'.");
	expect_http_error("{" HDR ",\"links\":\"x\"}", "Invalid type for field 'links'.");
	/* Wire-model order, whatever the document order. */
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":7,"
			  "\"eventType\":8}",
			  "Duplicate field 'eventType'.");
	expect_http_error("{\"links\":1,\"priority\":2," HDR "}", "Invalid type for field 'priority'.");
	expect_http_error("{\"details\":1,\"summary\":2,\"integrationKey\":\"k\",\"eventType\":\"X\"}",
			  "Invalid type for field 'summary'.");
	/* A type error beats an invalid images/links element and unsupported values. */
	expect_http_error("{\"integrationKey\":\"\",\"eventType\":\"bad\",\"summary\":\"s\","
			  "\"images\":[1],\"links\":5}",
			  "Invalid type for field 'links'.");
	/* Optional keys: null is absent; customDetails takes any JSON value. */
	static const char *const ok[] = {
		"{" HDR ",\"details\":null,\"alertKey\":null,\"priority\":null,\"images\":null,"
		"\"links\":null,\"customDetails\":null}",
		"{" HDR ",\"customDetails\":5}",
		"{" HDR ",\"customDetails\":\"text\"}",
		"{" HDR ",\"customDetails\":[1,{\"a\":null}]}",
		"{" HDR ",\"customDetails\":false}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct pending_item item;
		char *echo = NULL;
		http_ok(ok[i], &item, &echo);
		pending_item_clear(&item);
		free(echo);
	}
}

static void test_invalid_elements(void **state)
{
	(void)state;
	static const char *const images[] = {
		"[5]", "[{}]", "[{\"src\":1}]", "[{\"src\":null}]", "[{\"href\":\"h\"}]",
		"[{\"src\":\"a\",\"alt\":3}]", "[{\"src\":\"a\",\"href\":[]}]",
		"[{\"src\":\"a\"},\"b\"]", "[null]", "[[]]",
	};
	char body[256];
	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++) {
		snprintf(body, sizeof(body), "{" HDR ",\"images\":%s}", images[i]);
		expect_http_error(body, "Invalid value for field 'images'.");
	}
	static const char *const links[] = {
		"[5]", "[{}]", "[{\"text\":\"t\"}]", "[{\"href\":2}]", "[{\"href\":\"h\",\"text\":{}}]",
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(body, sizeof(body), "{" HDR ",\"links\":%s}", links[i]);
		expect_http_error(body, "Invalid value for field 'links'.");
	}
	/* images are checked before links, both before unsupported values. */
	expect_http_error("{\"integrationKey\":\"\",\"eventType\":\"x\",\"summary\":\"s\","
			  "\"links\":[1],\"images\":[2]}",
			  "Invalid value for field 'images'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"x\",\"summary\":\"s\","
			  "\"links\":[1]}",
			  "Invalid value for field 'links'.");
	/* Null optional members, extra members and empty arrays are fine. */
	struct pending_item item;
	char *echo = NULL;
	http_ok("{" HDR ",\"images\":[{\"src\":\"a\",\"href\":null,\"alt\":null,\"w\":1}],"
		"\"links\":[]}",
		&item, &echo);
	pending_item_clear(&item);
	free(echo);
}

static void test_unsupported_values(void **state)
{
	(void)state;
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"alert\",\"summary\":\"s\"}",
			  "Unsupported value for field 'eventType'.");
	expect_http_error("{\"integrationKey\":\"k\",\"eventType\":\"HEARTBEAT\",\"summary\":\"s\"}",
			  "Unsupported value for field 'eventType'.");
	expect_http_error("{" HDR ",\"priority\":\"high\"}",
			  "Unsupported value for field 'priority'.");
	expect_http_error("{" HDR ",\"priority\":\"\"}", "Unsupported value for field 'priority'.");
	expect_http_error("{\"integrationKey\":\"\",\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Unsupported value for field 'integrationKey'.");
	expect_http_error("{\"apiKey\":\"\",\"eventType\":\"ALERT\",\"summary\":\"s\"}",
			  "Unsupported value for field 'integrationKey'.");
	/* Order: eventType, priority, integrationKey. */
	expect_http_error("{\"integrationKey\":\"\",\"eventType\":\"X\",\"summary\":\"s\","
			  "\"priority\":\"X\"}",
			  "Unsupported value for field 'eventType'.");
	expect_http_error("{\"integrationKey\":\"\",\"eventType\":\"ALERT\",\"summary\":\"s\","
			  "\"priority\":\"X\"}",
			  "Unsupported value for field 'priority'.");
	/* Every allowed value passes. */
	static const char *const types[] = { "ALERT", "ACCEPT", "RESOLVE", "COMMENT" };
	for (size_t i = 0; i < 4; i++) {
		char body[160];
		snprintf(body, sizeof(body),
			 "{\"integrationKey\":\"k\",\"eventType\":\"%s\",\"summary\":\"\","
			 "\"priority\":\"%s\"}",
			 types[i], i % 2 ? "LOW" : "HIGH");
		struct pending_item item;
		char *echo = NULL;
		http_ok(body, &item, &echo);
		assert_string_equal(item.ev.event_type, types[i]);
		pending_item_clear(&item);
		free(echo);
	}
}

/* ---- accepted events: item, echo, alert key, dedup content ---------------------------------- */

static void test_full_event(void **state)
{
	(void)state;
	const char *body =
		"{\"customDetails\":{\"z\":1,\"a\":{\"y\":[true,null],\"b\":\"\\u00e9\"}},"
		"\"apiKey\":\"il1api123\",\"eventType\":\"ACCEPT\",\"summary\":\"Disk \\\"/\\\" full\","
		"\"details\":\"line1\\nline2\",\"alertKey\":\"  Host-1/Disk \",\"priority\":\"HIGH\","
		"\"images\":[{\"alt\":\"A\",\"src\":\"https://i/1.png\",\"extra\":5},"
		"{\"src\":\"s2\",\"href\":\"h2\"}],"
		"\"links\":[{\"text\":\"T\",\"href\":\"https://l\"},{\"href\":\"h\"}],"
		"\"routingKey\":\"ignored\",\"unknown\":{\"deep\":[1]}}";
	struct pending_item item;
	char *echo = NULL;
	http_ok(body, &item, &echo);
	assert_string_equal(
		echo,
		"{\"integrationKey\":\"il1api123\",\"eventType\":\"ACCEPT\","
		"\"summary\":\"Disk \\\"/\\\" full\",\"details\":\"line1\\nline2\","
		"\"alertKey\":\"Host-1/Disk\",\"priority\":\"HIGH\","
		"\"images\":[{\"src\":\"https://i/1.png\",\"href\":null,\"alt\":\"A\"},"
		"{\"src\":\"s2\",\"href\":\"h2\",\"alt\":null}],"
		"\"links\":[{\"href\":\"https://l\",\"text\":\"T\"},{\"href\":\"h\",\"text\":null}],"
		"\"customDetails\":{\"z\":1,\"a\":{\"y\":[true,null],\"b\":\"\xc3\xa9\"}}}");
	assert_string_equal(item.ev.integration_key, "il1api123");
	assert_string_equal(item.ev.event_type, "ACCEPT");
	assert_string_equal(item.ev.summary, "Disk \"/\" full");
	assert_string_equal(item.ev.details, "line1\nline2");
	assert_string_equal(item.ev.alert_key, "Host-1/Disk");
	assert_string_equal(item.ev.priority, "HIGH");
	/* Stored as received: compact, received member order, extra members kept. */
	assert_string_equal(item.ev.images, "[{\"alt\":\"A\",\"src\":\"https://i/1.png\",\"extra\":5},"
					    "{\"src\":\"s2\",\"href\":\"h2\"}]");
	assert_string_equal(item.ev.links, "[{\"text\":\"T\",\"href\":\"https://l\"},{\"href\":\"h\"}]");
	assert_string_equal(item.ev.custom_details,
			    "{\"z\":1,\"a\":{\"y\":[true,null],\"b\":\"\xc3\xa9\"}}");
	assert_null(item.event_api_path);
	assert_null(item.payload);
	assert_int_equal(item.accepted_at, 0);
	assert_string_equal(item.order_key, "il1api123\x1fhost-1/disk");
	assert_string_equal(
		item.dedup_content,
		"{\"summary\":\"Disk \\\"/\\\" full\",\"details\":\"line1\\nline2\","
		"\"priority\":\"HIGH\",\"images\":[{\"alt\":\"A\",\"src\":\"https://i/1.png\","
		"\"extra\":5},{\"src\":\"s2\",\"href\":\"h2\"}],\"links\":[{\"text\":\"T\","
		"\"href\":\"https://l\"},{\"href\":\"h\"}],\"customDetails\":{\"z\":1,\"a\":{\"y\":"
		"[true,null],\"b\":\"\xc3\xa9\"}}}");
	pending_item_clear(&item);
	free(echo);
}

static void test_minimal_event(void **state)
{
	(void)state;
	struct pending_item item;
	char *echo = NULL;
	http_ok("{\"apiKey\":\"k\",\"eventType\":\"RESOLVE\",\"summary\":\"\"}", &item, &echo);
	assert_string_equal(echo, "{\"integrationKey\":\"k\",\"eventType\":\"RESOLVE\",\"summary\":\"\","
				  "\"details\":null,\"alertKey\":null,\"priority\":null,"
				  "\"images\":null,\"links\":null,\"customDetails\":null}");
	assert_string_equal(item.ev.integration_key, "k");
	assert_string_equal(item.ev.summary, "");
	assert_null(item.ev.details);
	assert_null(item.ev.alert_key);
	assert_null(item.ev.priority);
	assert_null(item.ev.images);
	assert_null(item.ev.links);
	assert_null(item.ev.custom_details);
	assert_null(item.order_key);
	assert_null(item.dedup_content);
	pending_item_clear(&item);
	free(echo);
	/* Explicit nulls are the same as absent. */
	expect_echo("{\"integrationKey\":\"k\",\"eventType\":\"COMMENT\",\"summary\":\"x\","
		    "\"details\":null,\"alertKey\":null,\"priority\":null,\"images\":null,"
		    "\"links\":null,\"customDetails\":null}",
		    "{\"integrationKey\":\"k\",\"eventType\":\"COMMENT\",\"summary\":\"x\","
		    "\"details\":null,\"alertKey\":null,\"priority\":null,"
		    "\"images\":null,\"links\":null,\"customDetails\":null}");
	/* Empty arrays stay arrays. */
	expect_echo("{" HDR ",\"images\":[],\"links\":[]}",
		    "{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\","
		    "\"details\":null,\"alertKey\":null,\"priority\":null,"
		    "\"images\":[],\"links\":[],\"customDetails\":null}");
}

static void test_string_escaping(void **state)
{
	(void)state;
	struct pending_item item;
	char *echo = NULL;
	http_ok("{" HDR ",\"details\":\"q\\\" b\\\\ \\/ \\b\\f\\n\\r\\t \\u0001\\u001f \\u007f "
		"\\u20ac \xf0\x9f\x98\x80\"}",
		&item, &echo);
	assert_string_equal(item.ev.details,
			    "q\" b\\ / \b\f\n\r\t \x01\x1f \x7f \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_non_null(strstr(echo, "\"details\":\"q\\\" b\\\\ / \\b\\f\\n\\r\\t \\u0001\\u001f "
				     "\x7f \xe2\x82\xac \xf0\x9f\x98\x80\""));
	pending_item_clear(&item);
	free(echo);
}

static void test_alert_key(void **state)
{
	(void)state;
	struct pending_item item;
	char *echo = NULL;
	http_ok("{" HDR ",\"alertKey\":\" \\t\\r\\n\\u000b\\fAbC-Ä x\\n \"}", &item, &echo);
	assert_string_equal(item.ev.alert_key, "AbC-\xc3\x84 x");
	/* Case folding is ASCII only: Ä stays. */
	assert_string_equal(item.order_key, "k\x1f" "abc-\xc3\x84 x");
	assert_non_null(strstr(echo, "\"alertKey\":\"AbC-\xc3\x84 x\""));
	assert_non_null(item.dedup_content);
	pending_item_clear(&item);
	free(echo);

	/* Whitespace only or empty: absent, no ordering key, never a duplicate. */
	static const char *const empty[] = { "\"\"", "\" \\t\\n \"" };
	for (size_t i = 0; i < 2; i++) {
		char body[128];
		snprintf(body, sizeof(body), "{" HDR ",\"alertKey\":%s}", empty[i]);
		http_ok(body, &item, &echo);
		assert_null(item.ev.alert_key);
		assert_null(item.order_key);
		assert_null(item.dedup_content);
		assert_non_null(strstr(echo, "\"alertKey\":null"));
		pending_item_clear(&item);
		free(echo);
	}
	/* Whitespace other than the §7.3 set is kept. */
	http_ok("{" HDR ",\"alertKey\":\"\xc2\xa0x\"}", &item, &echo);
	assert_string_equal(item.ev.alert_key, "\xc2\xa0x");
	pending_item_clear(&item);
	free(echo);
}

static char *dedup_of(const char *body)
{
	struct pending_item item;
	char *echo = NULL;
	http_ok(body, &item, &echo);
	char *content = item.dedup_content ? strdup(item.dedup_content) : NULL;
	pending_item_clear(&item);
	free(echo);
	return content;
}

static void test_dedup_content(void **state)
{
	(void)state;
	char *c = dedup_of("{\"alertKey\":\"a\"," HDR "}");
	assert_string_equal(c, "{\"summary\":\"s\",\"details\":null,\"priority\":null,"
			       "\"images\":null,\"links\":null,\"customDetails\":null}");
	free(c);
	/* The event type and keys are not content; top-level order does not matter. */
	char *a = dedup_of("{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\","
			   "\"alertKey\":\"a\",\"priority\":\"LOW\",\"details\":\"d\"}");
	char *b = dedup_of("{\"details\":\"d\",\"priority\":\"LOW\",\"alertKey\":\" A \","
			   "\"summary\":\"s\",\"eventType\":\"RESOLVE\",\"apiKey\":\"other\"}");
	assert_string_equal(a, b);
	assert_string_equal(a, "{\"summary\":\"s\",\"details\":\"d\",\"priority\":\"LOW\","
			       "\"images\":null,\"links\":null,\"customDetails\":null}");
	free(a);
	free(b);
	/* Member order inside values is part of the content. */
	a = dedup_of("{" HDR ",\"alertKey\":\"a\",\"customDetails\":{\"x\":1,\"y\":2}}");
	b = dedup_of("{" HDR ",\"alertKey\":\"a\",\"customDetails\":{\"y\":2,\"x\":1}}");
	assert_string_not_equal(a, b);
	assert_non_null(strstr(a, "\"customDetails\":{\"x\":1,\"y\":2}}"));
	free(a);
	free(b);
	/* Whitespace in the document is not. */
	a = dedup_of("{" HDR ",\"alertKey\":\"a\",\"customDetails\":{\"x\":[1,2]}}");
	b = dedup_of("{ " HDR " , \"alertKey\" : \"a\" ,\n\"customDetails\" : { \"x\" : [ 1 , 2 ] } }");
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void test_numbers(void **state)
{
	(void)state;
	struct pending_item item;
	char *echo = NULL;
	http_ok("{" HDR ",\"customDetails\":{\"i\":42,\"n\":-7,\"z\":0,\"f\":1.5,\"e\":1e3,"
		"\"max\":9223372036854775807}}",
		&item, &echo);
	assert_string_equal(item.ev.custom_details, "{\"i\":42,\"n\":-7,\"z\":0,\"f\":1.5,"
						    "\"e\":1000.0,\"max\":9223372036854775807}");
	pending_item_clear(&item);
	free(echo);
	/* An integer beyond 64 bits is still valid JSON: its value is kept as a double. */
	http_ok("{" HDR ",\"customDetails\":{\"big\":123456789012345678901234,\"i\":2}}", &item,
		&echo);
	json_t *parsed = json_loads(item.ev.custom_details, 0, NULL);
	assert_non_null(parsed);
	assert_true(json_is_real(json_object_get(parsed, "big")));
	assert_true(json_real_value(json_object_get(parsed, "big")) == 123456789012345678901234.0);
	assert_true(json_number_value(json_object_get(parsed, "i")) == 2.0);
	json_decref(parsed);
	pending_item_clear(&item);
	free(echo);
	/* A real that overflows a double is not representable. */
	expect_invalid_json("{" HDR ",\"customDetails\":1e999}",
			    strlen("{" HDR ",\"customDetails\":1e999}"));
}

/* ---- batches (§10.6) ------------------------------------------------------------------------ */

static void test_batch_body_errors(void **state)
{
	(void)state;
	expect_batch_error("{" HDR "}", "Request body must be a JSON array.", -1);
	expect_batch_error("5", "Request body must be a JSON array.", -1);
	expect_batch_error("null", "Request body must be a JSON array.", -1);
	struct pending_item *items = NULL;
	size_t count = 0;
	char *error = NULL;
	int index = 0;
	assert_int_equal(normalize_http_batch("[", 1, &items, &count, &error, &index),
			 ILA_ERR_INVALID);
	assert_int_equal(strncmp(error, "Invalid JSON: ", 14), 0);
	assert_int_equal(index, -1);
	free(error);

	/* 1000 events are fine, 1001 are not, whatever the elements are. */
	struct tbuf b;
	tbuf_init(&b);
	tbuf_putc(&b, '[');
	for (int i = 0; i < 1000; i++)
		tbuf_printf(&b, "%s{\"integrationKey\":\"k\",\"eventType\":\"ALERT\","
				"\"summary\":\"%d\"}",
			    i ? "," : "", i);
	tbuf_putc(&b, ']');
	assert_int_equal(normalize_http_batch(b.data, b.len, &items, &count, &error, &index), 0);
	assert_int_equal(count, 1000);
	assert_string_equal(items[999].ev.summary, "999");
	items_free(items, count);
	b.len--;
	tbuf_puts(&b, ",5]");
	assert_int_equal(normalize_http_batch(b.data, b.len, &items, &count, &error, &index),
			 ILA_ERR_INVALID);
	assert_string_equal(error, "Batch must not contain more than 1000 events.");
	assert_int_equal(index, -1);
	assert_null(items);
	free(error);
	tbuf_free(&b);
}

static void test_batch_elements(void **state)
{
	(void)state;
	struct pending_item *items = NULL;
	size_t count = 7;
	char *error = NULL;
	int index = 0;
	assert_int_equal(normalize_http_batch("[]", 2, &items, &count, &error, &index), 0);
	assert_int_equal(count, 0);
	assert_null(error);
	free(items);
	assert_int_equal(normalize_http_batch(" [ ] ", 5, &items, &count, &error, &index), 0);
	assert_int_equal(count, 0);
	free(items);

	expect_batch_error("[{" HDR "},{}]", "Event at index 1: Missing field 'integrationKey'.", 1);
	expect_batch_error("[{" HDR "},5]", "Event at index 1: Request body must be a JSON object.", 1);
	expect_batch_error("[[]]", "Event at index 0: Request body must be a JSON object.", 0);
	/* The first invalid element wins. */
	expect_batch_error("[{" HDR "},{" HDR ",\"priority\":\"x\"},{}]",
			   "Event at index 1: Unsupported value for field 'priority'.", 1);
	/* Duplicates are per element: a repeat inside customDetails or across elements is fine,
	 * a repeat at an element's top level is not. */
	expect_batch_error("[{" HDR ",\"customDetails\":{\"a\":1,\"a\":2}},{" HDR "},"
			   "{" HDR ",\"details\":\"a\",\"details\":\"b\"}]",
			   "Event at index 2: Duplicate field 'details'.", 2);
	expect_batch_error("[{\"a\":[{\"summary\":1}],\"b\":{\"c\":\",\"}}, {" HDR ",\"x\":[1,{}],"
			   "\"summary\":\"t\"}]",
			   "Event at index 0: Missing field 'integrationKey'.", 0);
	expect_batch_error("[{" HDR "}, {" HDR ",\"x\":[1,{}],\"summary\":\"t\"}]",
			   "Event at index 1: Duplicate field 'summary'.", 1);
	expect_batch_error("[{" HDR ",\"images\":[{\"alt\":\"x\"}]}]",
			   "Event at index 0: Invalid value for field 'images'.", 0);

	const char *ok = "[{\"apiKey\":\"a\",\"eventType\":\"ALERT\",\"summary\":\"1\","
			 "\"alertKey\":\"X\"},"
			 "{\"integrationKey\":\"b\",\"eventType\":\"RESOLVE\",\"summary\":\"2\","
			 "\"customDetails\":{\"a\":1,\"a\":2}}]";
	assert_int_equal(normalize_http_batch(ok, strlen(ok), &items, &count, &error, &index), 0);
	assert_int_equal(count, 2);
	assert_string_equal(items[0].ev.integration_key, "a");
	assert_string_equal(items[0].order_key, "a\x1fx");
	assert_non_null(items[0].dedup_content);
	assert_string_equal(items[1].ev.event_type, "RESOLVE");
	assert_string_equal(items[1].ev.custom_details, "{\"a\":2}");
	assert_null(items[1].order_key);
	items_free(items, count);
}

static void test_batch_depth(void **state)
{
	(void)state;
	/* An element may nest as deep as a single event. */
	char *ok = nested("[{" HDR ",\"customDetails\":", 63, "}]");
	struct pending_item *items = NULL;
	size_t count = 0;
	char *error = NULL;
	int index = 0;
	assert_int_equal(normalize_http_batch(ok, strlen(ok), &items, &count, &error, &index), 0);
	assert_int_equal(count, 1);
	items_free(items, count);
	free(ok);
	/* A deeper element is the invalid element, named by its index (§10.6). */
	char *deep = nested("[{" HDR ",\"customDetails\":", 64, "}]");
	expect_batch_error(deep, "Event at index 0: Invalid JSON: nesting depth exceeds 64", 0);
	free(deep);
	deep = nested("[{" HDR "},{" HDR ",\"customDetails\":", 64, "},{" HDR "}]");
	expect_batch_error(deep, "Event at index 1: Invalid JSON: nesting depth exceeds 64", 1);
	free(deep);
	deep = nested("[{" HDR "},{" HDR ",\"customDetails\":", 64, "},{" HDR ",\"details\":{}}]");
	expect_batch_error(deep, "Event at index 1: Invalid JSON: nesting depth exceeds 64", 1);
	free(deep);
	/* The first invalid element wins, also before a deeper one. */
	deep = nested("[{\"integrationKey\":\"k\"},{" HDR ",\"customDetails\":", 64, "}]");
	expect_batch_error(deep, "Event at index 0: Missing field 'eventType'.", 0);
	free(deep);
	/* Not an array: that is said first, however deep. */
	deep = nested("{" HDR ",\"customDetails\":", 70, "}");
	expect_batch_error(deep, "Request body must be a JSON array.", -1);
	free(deep);
}

/* ---- normalize_message for HTTP ------------------------------------------------------------- */

struct test_ticket {
	struct ticket t;
	int completed;
};

static void ticket_complete(struct ticket *t)
{
	((struct test_ticket *)t)->completed++;
}

static void ticket_reset(struct test_ticket *tt)
{
	free(tt->t.error);
	free(tt->t.echo);
	memset(tt, 0, sizeof(*tt));
	tt->t.complete = ticket_complete;
	tt->t.error_index = -1;
}

static struct config *config_new(void)
{
	struct config *cfg = malloc(sizeof(*cfg));
	assert_non_null(cfg);
	config_init(cfg);
	return cfg;
}

static void test_message_http(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	struct normalize_rules *rules = normalize_rules_create(cfg, SOURCE_HTTP);
	assert_non_null(rules);
	struct test_ticket tt = { 0 };
	ticket_reset(&tt);

	const char *body = "{" HDR ",\"alertKey\":\"A\"}";
	struct message *msg = message_create(SOURCE_HTTP, MSG_HTTP_EVENT, body, strlen(body));
	msg->ticket = &tt.t;
	assert_true(normalize_message(rules, msg));
	assert_int_equal(msg->item_count, 1);
	assert_string_equal(msg->items[0].order_key, "k\x1f" "a");
	assert_non_null(msg->items[0].dedup_content);
	assert_non_null(tt.t.echo);
	assert_non_null(strstr(tt.t.echo, "\"alertKey\":\"A\""));
	assert_int_equal(tt.completed, 0);
	message_destroy(msg);
	ticket_reset(&tt);

	body = "{\"integrationKey\":\"k\"}";
	msg = message_create(SOURCE_HTTP, MSG_HTTP_EVENT, body, strlen(body));
	msg->ticket = &tt.t;
	assert_false(normalize_message(rules, msg));
	assert_int_equal(tt.t.status, TICKET_REJECTED);
	assert_int_equal(tt.t.reject_reason, REJECT_INVALID);
	assert_string_equal(tt.t.error, "Missing field 'eventType'.");
	assert_int_equal(tt.t.error_index, -1);
	assert_null(tt.t.echo);
	assert_int_equal(tt.completed, 0);
	assert_int_equal(msg->item_count, 0);
	message_destroy(msg);
	ticket_reset(&tt);

	body = "[{" HDR "},{" HDR "},{" HDR ",\"eventType\":\"x\"}]";
	msg = message_create(SOURCE_HTTP, MSG_HTTP_BATCH, body, strlen(body));
	msg->ticket = &tt.t;
	assert_false(normalize_message(rules, msg));
	assert_string_equal(tt.t.error, "Event at index 2: Duplicate field 'eventType'.");
	assert_int_equal(tt.t.error_index, 2);
	assert_int_equal(tt.t.reject_reason, REJECT_INVALID);
	assert_int_equal(msg->item_count, 0);
	message_destroy(msg);
	ticket_reset(&tt);

	body = "[{" HDR "},{" HDR ",\"alertKey\":\"b\"}]";
	msg = message_create(SOURCE_HTTP, MSG_HTTP_BATCH, body, strlen(body));
	msg->ticket = &tt.t;
	assert_true(normalize_message(rules, msg));
	assert_int_equal(msg->item_count, 2);
	assert_null(tt.t.echo);
	message_destroy(msg);
	ticket_reset(&tt);
	normalize_rules_destroy(rules);

	/* --dedup_window 0: no dedup content is computed. */
	cfg->dedup_window = 0;
	rules = normalize_rules_create(cfg, SOURCE_HTTP);
	body = "{" HDR ",\"alertKey\":\"A\"}";
	msg = message_create(SOURCE_HTTP, MSG_HTTP_EVENT, body, strlen(body));
	assert_true(normalize_message(rules, msg)); /* no ticket: nothing to fill */
	assert_non_null(msg->items[0].order_key);
	assert_null(msg->items[0].dedup_content);
	message_destroy(msg);
	normalize_rules_destroy(rules);
	free(cfg);
}

/* ---- consumers (§11) ------------------------------------------------------------------------ */

/* The consumer options of one case; NULL/0 = not given. */
struct opts {
	const char *event_key, *map_key_etype, *map_key_alert_key, *map_key_summary;
	const char *map_val_alert, *map_val_accept, *map_val_resolve;
	const char *filter_key, *filter_val;
	bool forward;
};

static struct normalize_rules *rules_for(enum source proto, const struct opts *o)
{
	struct config cfg;
	config_init(&cfg);
	cfg.event_topic = (char *)(proto == SOURCE_KAFKA ? "events" : "ev/#");
	cfg.heartbeat_topic = (char *)(proto == SOURCE_KAFKA ? "beats" : "hb/+");
	cfg.policy_topic = (char *)(proto == SOURCE_KAFKA ? "policies" : "policy");
	cfg.policy_routing_keys = (char *)"location,slot";
	cfg.map_key_email = (char *)"data.email";
	cfg.map_key_shift = (char *)"data.shift";
	if (o) {
		cfg.event_key = (char *)o->event_key;
		cfg.map_key_etype = (char *)o->map_key_etype;
		cfg.map_key_alert_key = (char *)o->map_key_alert_key;
		cfg.map_key_summary = (char *)o->map_key_summary;
		cfg.map_val_etype_alert = (char *)o->map_val_alert;
		cfg.map_val_etype_accept = (char *)o->map_val_accept;
		cfg.map_val_etype_resolve = (char *)o->map_val_resolve;
		cfg.filter_key = (char *)o->filter_key;
		cfg.filter_val = (char *)o->filter_val;
		cfg.forward_message_payload = o->forward;
	}
	struct normalize_rules *r = normalize_rules_create(&cfg, proto);
	assert_non_null(r);
	return r; /* the config's strings are literals: nothing to free */
}

/* One mapping case: expected event fields when accepted, or the reason and warning. */
struct map_case {
	const char *name;
	struct opts o;
	const char *payload;
	enum reject_reason reason; /* REJECT_NONE: accepted */
	const char *warning;       /* rejected: exact warning text (NULL: none) */
	const char *ik, *etype, *summary, *alert_key, *custom;
};

static void run_map_case(const struct map_case *c, enum source proto, const char *topic,
			 const char *key)
{
	struct normalize_rules *r = rules_for(proto, &c->o);
	struct pending_item item;
	enum reject_reason reason = REJECT_NONE;
	char *error = NULL;
	int rc = normalize_consumer(r, topic, key, c->payload, strlen(c->payload), &item, &reason,
				    &error);
	if (c->reason != REJECT_NONE) {
		if (rc != ILA_ERR_INVALID || reason != c->reason)
			fail_msg("%s: rc %d reason %d, expected reason %d", c->name, rc, reason,
				 c->reason);
		if ((c->warning == NULL) != (error == NULL) ||
		    (c->warning && strcmp(c->warning, error) != 0))
			fail_msg("%s: warning '%s', expected '%s'", c->name, error ? error : "(null)",
				 c->warning ? c->warning : "(null)");
		free(error);
		normalize_rules_destroy(r);
		return;
	}
	if (rc != 0)
		fail_msg("%s: rc %d reason %d error '%s'", c->name, rc, reason,
			 error ? error : "(null)");
	assert_int_equal(item.kind, STORE_KIND_EVENT);
#define FIELD_EQ(got, want)                                                                   \
	do {                                                                                  \
		if ((want) && (!(got) || strcmp((got), (want)) != 0))                         \
			fail_msg("%s: %s is '%s', expected '%s'", c->name, #got,               \
				 (got) ? (got) : "(null)", (want));                          \
	} while (0)
	FIELD_EQ(item.ev.integration_key, c->ik);
	FIELD_EQ(item.ev.event_type, c->etype);
	FIELD_EQ(item.ev.summary, c->summary);
	FIELD_EQ(item.ev.custom_details, c->custom);
#undef FIELD_EQ
	if (c->alert_key == NULL ? item.ev.alert_key != NULL
				 : !item.ev.alert_key || strcmp(item.ev.alert_key, c->alert_key))
		fail_msg("%s: alert_key '%s', expected '%s'", c->name,
			 item.ev.alert_key ? item.ev.alert_key : "(null)",
			 c->alert_key ? c->alert_key : "(null)");
	pending_item_clear(&item);
	normalize_rules_destroy(r);
}

static const struct map_case map_cases[] = {
	/* step 1: the wire model, all keys optional */
	{ "empty object", { 0 }, "{}", REJECT_INVALID,
	  "Rejected event message: Unsupported value for field 'integrationKey'.", 0, 0, 0, 0, 0 },
	{ "not an object", { 0 }, "[1]", REJECT_INVALID,
	  "Rejected event message: Request body must be a JSON object.", 0, 0, 0, 0, 0 },
	{ "wrong type", { 0 }, "{\"summary\":5}", REJECT_INVALID,
	  "Rejected event message: Invalid type for field 'summary'.", 0, 0, 0, 0, 0 },
	{ "bad image", { 0 }, "{\"images\":[{}]}", REJECT_INVALID,
	  "Rejected event message: Invalid value for field 'images'.", 0, 0, 0, 0, 0 },
	{ "duplicate", { 0 }, "{\"apiKey\":\"a\",\"integrationKey\":\"b\"}", REJECT_INVALID,
	  "Rejected event message: Duplicate field 'integrationKey'.", 0, 0, 0, 0, 0 },
	{ "wire values", { 0 },
	  "{\"integrationKey\":\"ik\",\"eventType\":\"COMMENT\",\"summary\":\"s\","
	  "\"alertKey\":\" a \",\"customDetails\":{\"b\":1}}",
	  REJECT_NONE, NULL, "ik", "COMMENT", "s", "a", "{\"b\":1}" },
	/* step 2: filter */
	{ "filter key missing", { .filter_key = "type" }, "{\"integrationKey\":\"k\"}",
	  REJECT_FILTERED, NULL, 0, 0, 0, 0, 0 },
	{ "filter key present", { .filter_key = "type" }, "{\"integrationKey\":\"k\",\"type\":null}",
	  REJECT_NONE, NULL, "k", 0, 0, 0, 0 },
	{ "filter value equal", { .filter_key = "type", .filter_val = "alarm" },
	  "{\"integrationKey\":\"k\",\"type\":\"alarm\"}", REJECT_NONE, NULL, "k", 0, 0, 0, 0 },
	{ "filter value case", { .filter_key = "type", .filter_val = "alarm" },
	  "{\"integrationKey\":\"k\",\"type\":\"ALARM\"}", REJECT_FILTERED, NULL, 0, 0, 0, 0, 0 },
	{ "filter value null", { .filter_key = "type", .filter_val = "alarm" },
	  "{\"integrationKey\":\"k\",\"type\":null}", REJECT_FILTERED, NULL, 0, 0, 0, 0, 0 },
	{ "filter value number", { .filter_key = "n", .filter_val = "5" },
	  "{\"integrationKey\":\"k\",\"n\":5}", REJECT_FILTERED, NULL, 0, 0, 0, 0, 0 },
	{ "filter is top level only", { .filter_key = "a.b" },
	  "{\"integrationKey\":\"k\",\"a\":{\"b\":1}}", REJECT_FILTERED, NULL, 0, 0, 0, 0, 0 },
	{ "filter before validation", { .filter_key = "type" }, "{\"eventType\":\"bad\"}",
	  REJECT_FILTERED, NULL, 0, 0, 0, 0, 0 },
	{ "invalid before filter", { .filter_key = "type" }, "{\"details\":1}", REJECT_INVALID,
	  "Rejected event message: Invalid type for field 'details'.", 0, 0, 0, 0, 0 },
	/* step 3: --event_key */
	{ "event key", { .event_key = "EK" }, "{\"integrationKey\":\"k\"}", REJECT_NONE, NULL, "EK",
	  0, 0, 0, 0 },
	{ "event key without key", { .event_key = "EK" }, "{}", REJECT_NONE, NULL, "EK", 0, 0, 0,
	  0 },
	/* step 4: --map_key_alert_key */
	{ "alert key mapped", { .map_key_alert_key = "data.id" },
	  "{\"integrationKey\":\"k\",\"alertKey\":\"old\",\"data\":{\"id\":\" new \"}}", REJECT_NONE,
	  NULL, "k", 0, 0, "new", 0 },
	{ "alert key non-string", { .map_key_alert_key = "data.id" },
	  "{\"integrationKey\":\"k\",\"alertKey\":\"old\",\"data\":{\"id\":5}}", REJECT_NONE, NULL,
	  "k", 0, 0, "old", 0 },
	{ "alert key null", { .map_key_alert_key = "data.id" },
	  "{\"integrationKey\":\"k\",\"alertKey\":\"old\",\"data\":{\"id\":null}}", REJECT_NONE, NULL,
	  "k", 0, 0, "old", 0 },
	{ "alert key not found", { .map_key_alert_key = "data.id" },
	  "{\"integrationKey\":\"k\",\"alertKey\":\"old\",\"data\":{}}", REJECT_NONE, NULL, "k", 0, 0,
	  "old", 0 },
	{ "alert key through array", { .map_key_alert_key = "data.0" },
	  "{\"integrationKey\":\"k\",\"data\":[\"x\"]}", REJECT_NONE, NULL, "k", 0, 0, NULL, 0 },
	{ "alert key through string", { .map_key_alert_key = "data.id" },
	  "{\"integrationKey\":\"k\",\"data\":\"id\"}", REJECT_NONE, NULL, "k", 0, 0, NULL, 0 },
	{ "alert key empty segment", { .map_key_alert_key = "data..id" },
	  "{\"integrationKey\":\"k\",\"data\":{\"\":{\"id\":\"x\"}}}", REJECT_NONE, NULL, "k", 0, 0,
	  NULL, 0 },
	{ "alert key trailing dot", { .map_key_alert_key = "id." },
	  "{\"integrationKey\":\"k\",\"id\":\"x\"}", REJECT_NONE, NULL, "k", 0, 0, NULL, 0 },
	{ "alert key top level", { .map_key_alert_key = "id" },
	  "{\"integrationKey\":\"k\",\"id\":\"x\"}", REJECT_NONE, NULL, "k", 0, 0, "x", 0 },
	{ "alert key mapped blank", { .map_key_alert_key = "id" },
	  "{\"integrationKey\":\"k\",\"alertKey\":\"old\",\"id\":\"  \"}", REJECT_NONE, NULL, "k", 0,
	  0, NULL, 0 },
	/* step 5: --map_key_summary */
	{ "summary mapped", { .map_key_summary = "a.b.c" },
	  "{\"integrationKey\":\"k\",\"summary\":\"old\",\"a\":{\"b\":{\"c\":\"new\"}}}", REJECT_NONE,
	  NULL, "k", 0, "new", 0, 0 },
	{ "summary non-string", { .map_key_summary = "a" },
	  "{\"integrationKey\":\"k\",\"summary\":\"old\",\"a\":{}}", REJECT_NONE, NULL, "k", 0, "old",
	  0, 0 },
	{ "summary non-string no fallback value", { .map_key_summary = "a" },
	  "{\"integrationKey\":\"k\",\"a\":true}", REJECT_NONE, NULL, "k", 0, "New alert from ev/a",
	  0, 0 },
	/* step 6: --map_key_etype and value mapping */
	{ "etype mapped as is", { .map_key_etype = "state" },
	  "{\"integrationKey\":\"k\",\"state\":\"RESOLVE\"}", REJECT_NONE, NULL, "k", "RESOLVE", "",
	  0, 0 },
	{ "etype alert value", { .map_key_etype = "state", .map_val_alert = "firing" },
	  "{\"integrationKey\":\"k\",\"state\":\"firing\"}", REJECT_NONE, NULL, "k", "ALERT",
	  "New alert from ev/a", 0, 0 },
	{ "etype accept value", { .map_key_etype = "s", .map_val_accept = "ack" },
	  "{\"integrationKey\":\"k\",\"s\":\"ack\"}", REJECT_NONE, NULL, "k", "ACCEPT", "", 0, 0 },
	{ "etype resolve value", { .map_key_etype = "s", .map_val_resolve = "ok" },
	  "{\"integrationKey\":\"k\",\"s\":\"ok\"}", REJECT_NONE, NULL, "k", "RESOLVE", "", 0, 0 },
	{ "etype later value wins",
	  { .map_key_etype = "s", .map_val_alert = "x", .map_val_accept = "x",
	    .map_val_resolve = "x" },
	  "{\"integrationKey\":\"k\",\"s\":\"x\"}", REJECT_NONE, NULL, "k", "RESOLVE", "", 0, 0 },
	{ "etype alert and accept", { .map_key_etype = "s", .map_val_alert = "x", .map_val_accept = "x" },
	  "{\"integrationKey\":\"k\",\"s\":\"x\"}", REJECT_NONE, NULL, "k", "ACCEPT", "", 0, 0 },
	{ "etype value case-sensitive", { .map_key_etype = "s", .map_val_resolve = "ok" },
	  "{\"integrationKey\":\"k\",\"s\":\"OK\"}", REJECT_INVALID,
	  "Rejected event message: Unsupported value for field 'eventType'.", 0, 0, 0, 0, 0 },
	{ "etype unmatched stays", { .map_key_etype = "s", .map_val_resolve = "ok" },
	  "{\"integrationKey\":\"k\",\"s\":\"weird\"}", REJECT_INVALID,
	  "Rejected event message: Unsupported value for field 'eventType'.", 0, 0, 0, 0, 0 },
	{ "etype non-string keeps previous", { .map_key_etype = "s", .map_val_resolve = "1" },
	  "{\"integrationKey\":\"k\",\"eventType\":\"ACCEPT\",\"s\":1}", REJECT_NONE, NULL, "k",
	  "ACCEPT", "", 0, 0 },
	{ "etype not found keeps previous", { .map_key_etype = "s" },
	  "{\"integrationKey\":\"k\",\"eventType\":\"COMMENT\"}", REJECT_NONE, NULL, "k", "COMMENT",
	  "", 0, 0 },
	{ "value mapping only with a found string",
	  { .map_key_etype = "s", .map_val_resolve = "firing" },
	  "{\"integrationKey\":\"k\",\"eventType\":\"firing\"}", REJECT_INVALID,
	  "Rejected event message: Unsupported value for field 'eventType'.", 0, 0, 0, 0, 0 },
	{ "value mapping without map key", { .map_val_alert = "firing" },
	  "{\"integrationKey\":\"k\",\"eventType\":\"firing\"}", REJECT_INVALID,
	  "Rejected event message: Unsupported value for field 'eventType'.", 0, 0, 0, 0, 0 },
	{ "empty value does not match nothing", { .map_key_etype = "s", .map_val_resolve = "" },
	  "{\"integrationKey\":\"k\"}", REJECT_NONE, NULL, "k", "ALERT", "New alert from ev/a", 0,
	  0 },
	{ "empty value matches empty string", { .map_key_etype = "s", .map_val_resolve = "" },
	  "{\"integrationKey\":\"k\",\"s\":\"\"}", REJECT_NONE, NULL, "k", "RESOLVE", "", 0, 0 },
	/* step 7: summary fallback */
	{ "fallback explicit ALERT", { 0 }, "{\"integrationKey\":\"k\",\"eventType\":\"ALERT\"}",
	  REJECT_NONE, NULL, "k", "ALERT", "New alert from ev/a", 0, 0 },
	{ "no fallback for RESOLVE", { 0 }, "{\"integrationKey\":\"k\",\"eventType\":\"RESOLVE\"}",
	  REJECT_NONE, NULL, "k", "RESOLVE", "", 0, 0 },
	{ "no fallback for invalid type", { 0 }, "{\"integrationKey\":\"k\",\"eventType\":\"alert\"}",
	  REJECT_INVALID, "Rejected event message: Unsupported value for field 'eventType'.", 0, 0,
	  0, 0, 0 },
	{ "explicit empty summary kept", { 0 }, "{\"integrationKey\":\"k\",\"summary\":\"\"}",
	  REJECT_NONE, NULL, "k", "ALERT", "", 0, 0 },
	{ "null summary is absent", { 0 }, "{\"integrationKey\":\"k\",\"summary\":null}",
	  REJECT_NONE, NULL, "k", "ALERT", "New alert from ev/a", 0, 0 },
	/* step 8: defaults; §7.3 then rejects an empty integration key */
	{ "empty integration key", { 0 }, "{\"summary\":\"s\"}", REJECT_INVALID,
	  "Rejected event message: Unsupported value for field 'integrationKey'.", 0, 0, 0, 0, 0 },
	{ "defaults", { 0 }, "{\"apiKey\":\"a\"}", REJECT_NONE, NULL, "a", "ALERT",
	  "New alert from ev/a", NULL, "{\"topic\":\"ev/a\"}" },
	/* step 9: customDetails */
	{ "custom kept", { .forward = true },
	  "{\"integrationKey\":\"k\",\"customDetails\":[1,\"x\"]}", REJECT_NONE, NULL, "k", 0, 0, 0,
	  "[1,\"x\"]" },
	{ "custom scalar kept", { 0 }, "{\"integrationKey\":\"k\",\"customDetails\":\"x\"}",
	  REJECT_NONE, NULL, "k", 0, 0, 0, "\"x\"" },
	{ "forward payload", { .forward = true },
	  "{\"z\":1,\"integrationKey\":\"k\",\"summary\":\"s\",\"customDetails\":null,"
	  "\"n\":{\"integrationKey\":\"inner\",\"a\":1,\"a\":2}}",
	  REJECT_NONE, NULL, "k", "ALERT", "s", 0,
	  "{\"z\":1,\"summary\":\"s\",\"customDetails\":null,\"n\":{\"integrationKey\":\"inner\","
	  "\"a\":2}}" },
	{ "forward payload alias", { .forward = true, .event_key = "EK" },
	  "{\"apiKey\":\"k\",\"x\":true}", REJECT_NONE, NULL, "EK", 0, 0, 0, "{\"x\":true}" },
	{ "default details", { 0 }, "{\"integrationKey\":\"k\",\"x\":1}", REJECT_NONE, NULL, "k", 0,
	  0, 0, "{\"topic\":\"ev/a\"}" },
	/* step 10: §7.3 */
	{ "priority invalid", { 0 }, "{\"integrationKey\":\"k\",\"priority\":\"MEDIUM\"}",
	  REJECT_INVALID, "Rejected event message: Unsupported value for field 'priority'.", 0, 0, 0,
	  0, 0 },
	{ "priority valid", { 0 }, "{\"integrationKey\":\"k\",\"priority\":\"LOW\"}", REJECT_NONE,
	  NULL, "k", 0, 0, 0, 0 },
};

static void test_consumer_mapping(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(map_cases) / sizeof(map_cases[0]); i++)
		run_map_case(&map_cases[i], SOURCE_MQTT, "ev/a", NULL);
}

static void expect_consumer_event(enum source proto, const struct opts *o, const char *topic,
				  const char *key, const char *payload, struct pending_item *item)
{
	struct normalize_rules *r = rules_for(proto, o);
	enum reject_reason reason = REJECT_NONE;
	char *error = NULL;
	int rc = normalize_consumer(r, topic, key, payload, strlen(payload), item, &reason, &error);
	if (rc != 0)
		fail_msg("%s: rc %d reason %d error %s", payload, rc, reason, error ? error : "-");
	normalize_rules_destroy(r);
}

static void test_consumer_event_item(void **state)
{
	(void)state;
	struct pending_item item;
	/* MQTT: default details, api path, ordering key, dedup content. */
	expect_consumer_event(SOURCE_MQTT, NULL, "ev/\"q\"", NULL,
			      "{\"integrationKey\":\"a b/c%\",\"alertKey\":\"X\"}", &item);
	assert_string_equal(item.event_api_path, "/v1/events/mqtt/a b/c%");
	assert_string_equal(item.ev.custom_details, "{\"topic\":\"ev/\\\"q\\\"\"}");
	assert_string_equal(item.ev.summary, "New alert from ev/\"q\"");
	assert_string_equal(item.order_key, "a b/c%\x1fx");
	assert_string_equal(item.dedup_content,
			    "{\"summary\":\"New alert from ev/\\\"q\\\"\",\"details\":null,"
			    "\"priority\":null,\"images\":null,\"links\":null,"
			    "\"customDetails\":{\"topic\":\"ev/\\\"q\\\"\"}}");
	assert_null(item.payload);
	pending_item_clear(&item);

	/* Kafka: messageKey first, then topic; a missing key is "". */
	expect_consumer_event(SOURCE_KAFKA, NULL, "events", "key-1",
			      "{\"integrationKey\":\"ik\",\"summary\":\"s\"}", &item);
	assert_string_equal(item.event_api_path, "/v1/events/kafka/ik");
	assert_string_equal(item.ev.custom_details, "{\"messageKey\":\"key-1\",\"topic\":\"events\"}");
	assert_null(item.order_key);
	assert_null(item.dedup_content);
	pending_item_clear(&item);
	expect_consumer_event(SOURCE_KAFKA, NULL, "events", NULL, "{\"integrationKey\":\"ik\"}",
			      &item);
	assert_string_equal(item.ev.custom_details, "{\"messageKey\":\"\",\"topic\":\"events\"}");
	pending_item_clear(&item);
	/* A key that is not UTF-8 becomes "". */
	expect_consumer_event(SOURCE_KAFKA, NULL, "events", "k\xff",
			      "{\"integrationKey\":\"ik\"}", &item);
	assert_string_equal(item.ev.custom_details, "{\"messageKey\":\"\",\"topic\":\"events\"}");
	pending_item_clear(&item);
	/* The key is never used as the integration key. */
	expect_consumer_event(SOURCE_KAFKA, &(struct opts){ .event_key = "EK" }, "events", "mk",
			      "{\"integrationKey\":\"ik\"}", &item);
	assert_string_equal(item.event_api_path, "/v1/events/kafka/EK");
	pending_item_clear(&item);
	/* Integers beyond 64 bits in a consumer payload are kept as doubles too. */
	expect_consumer_event(SOURCE_MQTT, NULL, "ev/x", NULL,
			      "{\"integrationKey\":\"ik\",\"customDetails\":[18446744073709551615]}",
			      &item);
	assert_string_equal(item.ev.custom_details, "[1.8446744073709552e19]");
	pending_item_clear(&item);
}

static void expect_consumer_reject(enum source proto, const struct opts *o, const char *topic,
				   const char *payload, size_t len, enum reject_reason want,
				   const char *warning)
{
	struct normalize_rules *r = rules_for(proto, o);
	struct pending_item item;
	enum reject_reason reason = REJECT_NONE;
	char *error = NULL;
	int rc = normalize_consumer(r, topic, NULL, payload, len, &item, &reason, &error);
	if (rc != ILA_ERR_INVALID || reason != want)
		fail_msg("%s on %s: rc %d reason %d, expected %d", payload, topic, rc, reason, want);
	if ((warning == NULL) != (error == NULL) || (warning && strcmp(warning, error) != 0))
		fail_msg("%s: warning '%s', expected '%s'", payload, error ? error : "(null)",
			 warning ? warning : "(null)");
	free(error);
	normalize_rules_destroy(r);
}

static void expect_consumer_kind(enum source proto, const char *topic, const char *payload,
				 enum store_kind kind)
{
	struct pending_item item;
	expect_consumer_event(proto, NULL, topic, NULL, payload, &item);
	assert_int_equal(item.kind, kind);
	pending_item_clear(&item);
}

static void test_classification(void **state)
{
	(void)state;
	const char *any = "{\"integrationKey\":\"k\",\"location\":\"l\","
			  "\"data\":{\"email\":\"e@x\"}}";
	/* MQTT filters: event ev/#, heartbeat hb/+, policy "policy". */
	expect_consumer_kind(SOURCE_MQTT, "ev", any, STORE_KIND_EVENT);
	expect_consumer_kind(SOURCE_MQTT, "ev/a/b", any, STORE_KIND_EVENT);
	expect_consumer_kind(SOURCE_MQTT, "hb/x", any, STORE_KIND_HEARTBEAT);
	expect_consumer_kind(SOURCE_MQTT, "policy", any, STORE_KIND_POLICY);
	expect_consumer_reject(SOURCE_MQTT, NULL, "hb/x/y", any, strlen(any),
			       REJECT_UNMATCHED_TOPIC, NULL);
	expect_consumer_reject(SOURCE_MQTT, NULL, "other", any, strlen(any), REJECT_UNMATCHED_TOPIC,
			       NULL);
	/* Kafka: exact names; an unmatched topic carries the Kafka warning. */
	expect_consumer_kind(SOURCE_KAFKA, "events", any, STORE_KIND_EVENT);
	expect_consumer_kind(SOURCE_KAFKA, "beats", any, STORE_KIND_HEARTBEAT);
	expect_consumer_kind(SOURCE_KAFKA, "policies", any, STORE_KIND_POLICY);
	expect_consumer_reject(SOURCE_KAFKA, NULL, "event", any, strlen(any), REJECT_UNMATCHED_TOPIC,
			       "Received Kafka message from unsubscribed topic");

	/* Precedence: heartbeat, then policy, then event, whatever the order of the options. */
	struct config cfg;
	config_init(&cfg);
	cfg.event_topic = (char *)"#";
	cfg.heartbeat_topic = (char *)"a/+";
	cfg.policy_topic = (char *)"a/#";
	cfg.policy_routing_keys = (char *)"location";
	struct normalize_rules *r = normalize_rules_create(&cfg, SOURCE_MQTT);
	assert_non_null(r);
	static const struct {
		const char *topic;
		enum store_kind kind;
	} want[] = { { "a/b", STORE_KIND_HEARTBEAT },
		     { "a", STORE_KIND_POLICY },
		     { "a/b/c", STORE_KIND_POLICY },
		     { "b", STORE_KIND_EVENT } };
	for (size_t i = 0; i < 4; i++) {
		struct pending_item item;
		enum reject_reason reason;
		char *error = NULL;
		assert_int_equal(normalize_consumer(r, want[i].topic, NULL, any, strlen(any), &item,
						    &reason, &error),
				 0);
		assert_int_equal(item.kind, want[i].kind);
		pending_item_clear(&item);
	}
	normalize_rules_destroy(r);

	/* HTTP rules classify nothing. */
	r = normalize_rules_create(&cfg, SOURCE_HTTP);
	struct pending_item item;
	enum reject_reason reason;
	char *error = NULL;
	assert_int_equal(normalize_consumer(r, "b", NULL, any, strlen(any), &item, &reason, &error),
			 ILA_ERR_INVALID);
	assert_int_equal(reason, REJECT_UNMATCHED_TOPIC);
	free(error);
	normalize_rules_destroy(r);
}

static void test_input_checks(void **state)
{
	(void)state;
	struct config cfg;
	config_init(&cfg);
	cfg.event_topic = (char *)"t";
	cfg.max_body = 20;
	struct normalize_rules *r = normalize_rules_create(&cfg, SOURCE_MQTT);
	struct pending_item item;
	enum reject_reason reason;
	char *error = NULL;
	const char *exact = "{\"apiKey\":\"k123456\"}"; /* 20 bytes */
	assert_int_equal(strlen(exact), 20);
	assert_int_equal(normalize_consumer(r, "t", NULL, exact, 20, &item, &reason, &error), 0);
	pending_item_clear(&item);
	const char *big = "{\"apiKey\":\"k1234567\"}";
	assert_int_equal(normalize_consumer(r, "t", NULL, big, 21, &item, &reason, &error),
			 ILA_ERR_INVALID);
	assert_int_equal(reason, REJECT_TOO_LARGE);
	assert_string_equal(error, "Message payload too large (21 bytes, limit 20)");
	free(error);
	/* Too large wins over an unmatched topic. */
	assert_int_equal(normalize_consumer(r, "zz", NULL, big, 21, &item, &reason, &error),
			 ILA_ERR_INVALID);
	assert_int_equal(reason, REJECT_TOO_LARGE);
	free(error);
	assert_int_equal(normalize_consumer(r, "t", NULL, "{\"a\":\"\xfe\"}", 9, &item, &reason,
					    &error),
			 ILA_ERR_INVALID);
	assert_int_equal(reason, REJECT_INVALID);
	assert_string_equal(error, "Message payload is not valid UTF-8");
	free(error);
	/* The nesting limit holds for consumer payloads too. */
	normalize_rules_destroy(r);
	cfg.max_body = 16000;
	r = normalize_rules_create(&cfg, SOURCE_MQTT);
	char *deep = nested("{\"a\":", 64, "}");
	assert_int_equal(normalize_consumer(r, "t", NULL, deep, strlen(deep), &item, &reason,
					    &error),
			 ILA_ERR_INVALID);
	assert_int_equal(reason, REJECT_INVALID);
	assert_string_equal(error, "Rejected event message: Invalid JSON: nesting depth exceeds 64");
	free(error);
	free(deep);
	deep = nested("{\"integrationKey\":\"k\",\"a\":", 63, "}");
	assert_int_equal(normalize_consumer(r, "t", NULL, deep, strlen(deep), &item, &reason,
					    &error),
			 0);
	pending_item_clear(&item);
	free(deep);
	/* An empty payload (Kafka without payload) is not JSON. */
	assert_int_equal(normalize_consumer(r, "t", NULL, NULL, 0, &item, &reason, &error),
			 ILA_ERR_INVALID);
	assert_int_equal(reason, REJECT_INVALID);
	assert_int_equal(strncmp(error, "Rejected event message: Invalid JSON: ", 38), 0);
	free(error);
	normalize_rules_destroy(r);
}

static void test_heartbeat(void **state)
{
	(void)state;
	struct pending_item item;
	/* Filter and event key do not apply; other members are ignored. */
	struct opts o = { .event_key = "EK", .filter_key = "type" };
	expect_consumer_event(SOURCE_MQTT, &o, "hb/1", NULL,
			      "{\"summary\":5,\"integrationKey\":\"hb\\\"key\",\"images\":1}", &item);
	assert_int_equal(item.kind, STORE_KIND_HEARTBEAT);
	assert_string_equal(item.payload, "{\"integrationKey\":\"hb\\\"key\"}");
	assert_string_equal(item.ev.integration_key, "hb\"key");
	assert_string_equal(item.ev.event_type, "HEARTBEAT");
	assert_string_equal(item.ev.summary, "");
	assert_null(item.ev.alert_key);
	assert_null(item.ev.custom_details);
	assert_null(item.event_api_path);
	assert_null(item.order_key);
	assert_null(item.dedup_content);
	pending_item_clear(&item);
	expect_consumer_event(SOURCE_KAFKA, NULL, "beats", "k", "{\"apiKey\":\"il1hbt1\"}", &item);
	assert_string_equal(item.payload, "{\"integrationKey\":\"il1hbt1\"}");
	pending_item_clear(&item);

	static const struct {
		const char *payload, *warning;
	} bad[] = {
		{ "[]", "Rejected heartbeat message: Request body must be a JSON object." },
		{ "{}", "Rejected heartbeat message: Missing field 'integrationKey'." },
		{ "{\"integrationKey\":null}", "Rejected heartbeat message: Missing field 'integrationKey'." },
		{ "{\"apiKey\":5}", "Rejected heartbeat message: Invalid type for field 'apiKey'." },
		{ "{\"integrationKey\":\"\"}",
		  "Rejected heartbeat message: Unsupported value for field 'integrationKey'." },
		{ "{\"integrationKey\":\"a\",\"apiKey\":\"b\"}",
		  "Rejected heartbeat message: Duplicate field 'apiKey'." },
		{ "{\"integrationKey\":\"a\",\"integrationKey\":\"b\"}",
		  "Rejected heartbeat message: Duplicate field 'integrationKey'." },
		{ "{\"integrationKey\":", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct normalize_rules *r = rules_for(SOURCE_MQTT, NULL);
		enum reject_reason reason;
		char *error = NULL;
		assert_int_equal(normalize_consumer(r, "hb/x", NULL, bad[i].payload,
						    strlen(bad[i].payload), &item, &reason, &error),
				 ILA_ERR_INVALID);
		assert_int_equal(reason, REJECT_INVALID);
		if (bad[i].warning)
			assert_string_equal(error, bad[i].warning);
		else
			assert_int_equal(strncmp(error, "Rejected heartbeat message: Invalid JSON: ", 42),
					 0);
		free(error);
		normalize_rules_destroy(r);
	}
	/* Repeats of other members do not matter to a heartbeat. */
	expect_consumer_event(SOURCE_MQTT, NULL, "hb/1", NULL,
			      "{\"summary\":1,\"summary\":2,\"integrationKey\":\"k\"}", &item);
	pending_item_clear(&item);
}

static char *policy_payload(const struct config *cfg, const char *payload,
			    enum reject_reason *reason, char **error)
{
	struct normalize_rules *r = normalize_rules_create(cfg, SOURCE_MQTT);
	assert_non_null(r);
	struct pending_item item;
	*error = NULL;
	int rc = normalize_consumer(r, "policy", NULL, payload, strlen(payload), &item, reason,
				    error);
	normalize_rules_destroy(r);
	if (rc)
		return NULL;
	assert_int_equal(item.kind, STORE_KIND_POLICY);
	char *p = strdup(item.payload);
	pending_item_clear(&item);
	return p;
}

static void policy_config(struct config *cfg)
{
	config_init(cfg);
	cfg->policy_topic = (char *)"policy";
	cfg->policy_routing_keys = (char *)" location , ,slot,";
	cfg->map_key_email = (char *)"data.email";
	cfg->map_key_shift = (char *)"data.shift";
}

static void test_policy_item(void **state)
{
	(void)state;
	struct config cfg;
	policy_config(&cfg);
	cfg.policy_topic = (char *)"policies";
	struct normalize_rules *r = normalize_rules_create(&cfg, SOURCE_KAFKA);
	assert_non_null(r);
	struct pending_item item;
	enum reject_reason reason;
	char *error = NULL;
	const char *payload = "{\"location\":\"powerplantthree\",\"slot\":\"50\","
			      "\"data\":{\"email\":\"a\\\"b@x\",\"shift\":\"+5\"},\"x\":1}";
	assert_int_equal(normalize_consumer(r, "policies", "key", payload, strlen(payload), &item,
					    &reason, &error),
			 0);
	assert_int_equal(item.kind, STORE_KIND_POLICY);
	assert_string_equal(item.payload,
			    "{\"email\":\"a\\\"b@x\",\"routingKey\":\"powerplantthree50\",\"shift\":5}");
	assert_string_equal(item.order_key, "policy\x1fpowerplantthree50");
	assert_string_equal(item.ev.integration_key, "");
	assert_string_equal(item.ev.event_type, "POLICY");
	assert_string_equal(item.ev.summary, "");
	assert_null(item.ev.alert_key);
	assert_null(item.event_api_path);
	assert_null(item.dedup_content);
	pending_item_clear(&item);
	normalize_rules_destroy(r);
}

static void test_policy_shift(void **state)
{
	(void)state;
	static const struct {
		const char *shift; /* JSON text of data.shift, NULL: absent */
		int64_t offset;
		const char *want;
	} cases[] = {
		{ "\"+5\"", 0, "5" },
		{ "\"5\"", 0, "5" },
		{ "\"-3\"", 0, "0" },
		{ "\"-3\"", 10, "7" },
		{ "\"12abc\"", 0, "0" },
		{ "\"12abc\"", 2, "2" },
		{ "\" 12\"", 0, "0" },
		{ "\"\"", 0, "0" },
		{ "\"+\"", 0, "0" },
		{ "\"1.0\"", 0, "0" },
		{ "7", 0, "7" },
		{ "7", -2, "5" },
		{ "7", -9, "0" },
		{ "1.0", 0, "1" },
		{ "1.5", 0, "0" },
		{ "1.5", 3, "3" },
		{ "2e1", 0, "20" },
		{ "true", 0, "0" },
		{ "null", 4, "4" },
		{ "{}", 0, "0" },
		{ NULL, 1, "1" },
		{ "\"9223372036854775807\"", 0, "9223372036854775807" },
		{ "\"9223372036854775808\"", 1, "1" },    /* overflow → 0 */
		{ "\"-9223372036854775808\"", 10, "0" },
		{ "9223372036854775807", 10, "9223372036854775807" }, /* saturates */
		{ "\"9223372036854775807\"", INT64_MAX, "9223372036854775807" },
		{ "-9223372036854775808", -1, "0" },                   /* saturates low, then 0 */
		{ "18446744073709551616", 3, "3" },                    /* beyond 64 bits → 0 */
		{ "1e300", 0, "0" },
		{ "-0.0", 0, "0" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		policy_config(&cfg);
		cfg.shift_offset = cases[i].offset;
		char payload[256];
		if (cases[i].shift)
			snprintf(payload, sizeof(payload),
				 "{\"location\":\"l\",\"data\":{\"email\":\"e\",\"shift\":%s}}",
				 cases[i].shift);
		else
			snprintf(payload, sizeof(payload), "{\"location\":\"l\",\"data\":{\"email\":\"e\"}}");
		enum reject_reason reason;
		char *error = NULL;
		char *p = policy_payload(&cfg, payload, &reason, &error);
		if (!p)
			fail_msg("shift %s: rejected: %s", cases[i].shift, error ? error : "-");
		char want[128];
		snprintf(want, sizeof(want), "{\"email\":\"e\",\"routingKey\":\"l\",\"shift\":%s}",
			 cases[i].want);
		if (strcmp(p, want) != 0)
			fail_msg("shift %s offset %lld: got %s, expected %s",
				 cases[i].shift ? cases[i].shift : "(absent)",
				 (long long)cases[i].offset, p, want);
		free(p);
	}
}

static void test_policy_rejections(void **state)
{
	(void)state;
	static const struct {
		const char *payload;
		enum reject_reason reason;
		const char *warning; /* NULL: none; "" : any "Invalid JSON" */
	} cases[] = {
		{ "{\"location\":\"l\"}", REJECT_INVALID, "Policy message missing email at 'data.email'" },
		{ "{\"location\":\"l\",\"data\":{\"email\":\"\"}}", REJECT_INVALID,
		  "Policy message missing email at 'data.email'" },
		{ "{\"location\":\"l\",\"data\":{\"email\":5}}", REJECT_INVALID,
		  "Policy message missing email at 'data.email'" },
		{ "{\"location\":\"l\",\"data\":\"e\"}", REJECT_INVALID,
		  "Policy message missing email at 'data.email'" },
		{ "[1]", REJECT_INVALID, "Policy message missing email at 'data.email'" },
		{ "{\"data\":{\"email\":\"e\"}}", REJECT_INVALID,
		  "No routing key could be extracted from policy message" },
		{ "{\"location\":\"\",\"slot\":5,\"data\":{\"email\":\"e\"}}", REJECT_INVALID,
		  "No routing key could be extracted from policy message" },
		{ "{\"data\":{\"email\":\"e\",\"location\":\"nested\"}}", REJECT_INVALID,
		  "No routing key could be extracted from policy message" },
		{ "{\"location\":", REJECT_INVALID, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		policy_config(&cfg);
		enum reject_reason reason;
		char *error = NULL;
		char *p = policy_payload(&cfg, cases[i].payload, &reason, &error);
		if (p)
			fail_msg("%s: accepted as %s", cases[i].payload, p);
		assert_int_equal(reason, cases[i].reason);
		if (!*cases[i].warning)
			assert_int_equal(strncmp(error, "Rejected policy message: Invalid JSON: ", 39), 0);
		else
			assert_string_equal(error, cases[i].warning);
		free(error);
	}
	/* The email path is the configured one; routing values skip non-strings and empties. */
	struct config cfg;
	policy_config(&cfg);
	cfg.map_key_email = (char *)"user";
	enum reject_reason reason;
	char *error = NULL;
	char *p = policy_payload(&cfg, "{\"slot\":\"s\",\"location\":7}", &reason, &error);
	assert_null(p);
	assert_string_equal(error, "Policy message missing email at 'user'");
	free(error);
	p = policy_payload(&cfg, "{\"slot\":\"s\",\"location\":7,\"user\":\"u\"}", &reason, &error);
	assert_string_equal(p, "{\"email\":\"u\",\"routingKey\":\"s\",\"shift\":0}");
	free(p);

	/* The filter applies to policy messages. */
	policy_config(&cfg);
	cfg.filter_key = (char *)"kind";
	cfg.filter_val = (char *)"policy";
	p = policy_payload(&cfg, "{\"location\":\"l\",\"data\":{\"email\":\"e\"}}", &reason, &error);
	assert_null(p);
	assert_int_equal(reason, REJECT_FILTERED);
	assert_null(error);
	p = policy_payload(&cfg, "[]", &reason, &error);
	assert_null(p);
	assert_int_equal(reason, REJECT_FILTERED);
	p = policy_payload(&cfg, "{\"kind\":\"policy\",\"location\":\"l\",\"data\":{\"email\":\"e\"}}",
			   &reason, &error);
	assert_non_null(p);
	free(p);
}

/* Runs fn with stderr redirected to a file and returns what was written. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	char *dir = test_mkdtemp();
	char path[512];
	snprintf(path, sizeof(path), "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	test_rmtree(dir);
	free(dir);
	return strdup(buf);
}

static void run_message(void *arg)
{
	struct message *msg = arg;
	struct normalize_rules *r = rules_for(msg->source, &(struct opts){ .map_key_summary = "m.s" });
	normalize_message(r, msg);
	normalize_rules_destroy(r);
}

static void test_message_consumer(void **state)
{
	(void)state;
	log_setup(LOG_LVL_WARN, false);
	struct test_ticket tt = { 0 };
	ticket_reset(&tt);
	/* Accepted, with the non-string mapping warning logged. */
	const char *body = "{\"integrationKey\":\"k\",\"m\":{\"s\":[]}}";
	struct message *msg = message_create(SOURCE_KAFKA, MSG_CONSUMER, body, strlen(body));
	msg->topic = strdup("events");
	msg->key = strdup("mk");
	msg->ticket = &tt.t;
	char *log = capture_stderr(run_message, msg);
	assert_int_equal(msg->item_count, 1);
	assert_string_equal(msg->items[0].event_api_path, "/v1/events/kafka/k");
	assert_string_equal(msg->items[0].ev.summary, "New alert from events");
	assert_non_null(strstr(log, "WARN kafka: Value at 'm.s' is not a string; keeping the "
				    "previous summary"));
	assert_null(tt.t.error);
	assert_int_equal(tt.completed, 0);
	free(log);
	message_destroy(msg);

	/* Rejected: the ticket holds reason and warning, and the warning is logged. */
	body = "{\"integrationKey\":\"k\",\"eventType\":\"nope\"}";
	msg = message_create(SOURCE_MQTT, MSG_CONSUMER, body, strlen(body));
	msg->topic = strdup("ev/z");
	msg->ticket = &tt.t;
	log = capture_stderr(run_message, msg);
	assert_int_equal(msg->item_count, 0);
	assert_int_equal(tt.t.status, TICKET_REJECTED);
	assert_int_equal(tt.t.reject_reason, REJECT_INVALID);
	assert_string_equal(tt.t.error,
			    "Rejected event message: Unsupported value for field 'eventType'.");
	assert_int_equal(tt.t.error_index, -1);
	assert_int_equal(tt.completed, 0);
	assert_non_null(strstr(log, "WARN mqtt: Rejected event message: Unsupported value for field "
				    "'eventType'."));
	free(log);
	message_destroy(msg);
	ticket_reset(&tt);

	/* Unmatched MQTT topic: counted, nothing to warn about. */
	msg = message_create(SOURCE_MQTT, MSG_CONSUMER, "{}", 2);
	msg->topic = strdup("nowhere");
	msg->ticket = &tt.t;
	log = capture_stderr(run_message, msg);
	assert_int_equal(tt.t.reject_reason, REJECT_UNMATCHED_TOPIC);
	assert_null(tt.t.error);
	assert_string_equal(log, "");
	free(log);
	message_destroy(msg);
	ticket_reset(&tt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_invalid_elements),
		cmocka_unit_test(test_unsupported_values),
		cmocka_unit_test(test_full_event),
		cmocka_unit_test(test_minimal_event),
		cmocka_unit_test(test_string_escaping),
		cmocka_unit_test(test_alert_key),
		cmocka_unit_test(test_dedup_content),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_batch_body_errors),
		cmocka_unit_test(test_batch_elements),
		cmocka_unit_test(test_batch_depth),
		cmocka_unit_test(test_message_http),
		cmocka_unit_test(test_consumer_mapping),
		cmocka_unit_test(test_consumer_event_item),
		cmocka_unit_test(test_classification),
		cmocka_unit_test(test_input_checks),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_policy_item),
		cmocka_unit_test(test_policy_shift),
		cmocka_unit_test(test_policy_rejections),
		cmocka_unit_test(test_message_consumer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
