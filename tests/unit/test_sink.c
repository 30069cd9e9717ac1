#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proc.h"
#include "sink.h"

#include "core/err.h"
#include "core/text.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
	tbuf_append(userdata, data, size * n);
	return size * n;
}

/* POSTs body (len bytes) to base+path; returns the status, answer in *answer if given. */
static long post(const char *base, const char *path, const char *body, size_t len,
		 char **answer)
{
	CURL *h = curl_easy_init();
	struct tbuf url, out;
	tbuf_init(&url);
	tbuf_init(&out);
	tbuf_printf(&url, "%s%s", base, path);
	curl_easy_setopt(h, CURLOPT_URL, tbuf_cstr(&url));
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	tbuf_free(&url);
	if (answer)
		*answer = tbuf_take(&out);
	else
		tbuf_free(&out);
	return status;
}

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(sink_classify("/api/events"), SINK_EVENTS);
	assert_int_equal(sink_classify("/api/events/"), SINK_EVENTS);
	assert_int_equal(sink_classify("/api/eventsx"), SINK_OTHER);
	assert_int_equal(sink_classify("/api/v1/events/mqtt/abc"), SINK_MQTT);
	assert_int_equal(sink_classify("/api/v1/events/kafka/abc"), SINK_KAFKA);
	assert_int_equal(sink_classify("/api/v1/events/other/abc"), SINK_OTHER);
	assert_int_equal(sink_classify("/api/heartbeats/il1hbt123"), SINK_HEARTBEATS);
	assert_int_equal(sink_classify("/api/pings/key"), SINK_PINGS);
	assert_int_equal(sink_classify("/api/escalation-policies/resolve"), SINK_OTHER);
	assert_int_equal(sink_classify("/"), SINK_OTHER);
	assert_int_equal(sink_classify(""), SINK_OTHER);

	assert_string_equal(sink_family_path(SINK_EVENTS), "/api/events");
	assert_string_equal(sink_family_path(SINK_MQTT), "/api/v1/events/mqtt");
	assert_string_equal(sink_family_path(SINK_KAFKA), "/api/v1/events/kafka");
	assert_string_equal(sink_family_path(SINK_HEARTBEATS), "/api/heartbeats");
	assert_string_equal(sink_family_path(SINK_PINGS), "/api/pings");
	assert_string_equal(sink_family_path(SINK_OTHER), "other");
	assert_string_equal(sink_family_key(SINK_EVENTS), "events");
	assert_string_equal(sink_family_key(SINK_PINGS), "pings");
}

static void test_stats_json(void **state)
{
	(void)state;
	struct sink_stats st = { .requests = 21, .by_family = { 1, 2, 3, 4, 5, 6 } };
	char buf[256];
	int n = sink_stats_json(&st, buf, sizeof(buf));
	const char *expect = "{\"requests\":21,\"events\":1,\"mqtt\":2,\"kafka\":3,"
			     "\"heartbeats\":4,\"pings\":5,\"other\":6}";
	assert_string_equal(buf, expect);
	assert_int_equal(n, strlen(expect));
}

static void test_bad_options(void **state)
{
	(void)state;
	struct sink *s = (struct sink *)1;
	struct sink_options bad_bind = { .bind = "not-an-address" };
	assert_int_equal(sink_start(&bad_bind, &s), ILA_ERR_INVALID);
	assert_null(s);
	struct sink_options bad_status = { .status = 42 };
	assert_int_equal(sink_start(&bad_status, &s), ILA_ERR_INVALID);
	struct sink_options bad_port = { .port = 70000 };
	assert_int_equal(sink_start(&bad_port, &s), ILA_ERR_INVALID);
	struct sink_options bad_record = { .record = "/nonexistent-dir/rec.jsonl" };
	assert_int_equal(sink_start(&bad_record, &s), ILA_ERR_IO);
	assert_null(s);
	sink_stop(NULL);
}

static void test_in_process_counts_and_records(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	assert_non_null(dir);
	struct tbuf rec_path;
	tbuf_init(&rec_path);
	tbuf_printf(&rec_path, "%s/rec.jsonl", dir);
	struct sink_options o = { .status = 200, .threads = 3, .record = tbuf_cstr(&rec_path) };
	struct sink *s = NULL;
	assert_int_equal(sink_start(&o, &s), 0);
	assert_non_null(s);
	assert_true(sink_port(s) > 0);
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", sink_port(s));

	char *answer = NULL;
	assert_int_equal(post(base, "/api/events", "{\"a\":1}", 7, &answer), 200);
	assert_string_equal(answer, "{}");
	free(answer);
	/* Bytes that are not UTF-8 and a NUL still give a valid JSON line. */
	assert_int_equal(post(base, "/api/pings/k", "a\xff" "b\0c", 5, NULL), 200);
	assert_int_equal(post(base, "/other", NULL, 0, NULL), 200);
	assert_int_equal(post(base, SINK_STATS_PATH, NULL, 0, &answer), 200);
	assert_string_equal(answer, "{\"requests\":3,\"events\":1,\"mqtt\":0,\"kafka\":0,"
				    "\"heartbeats\":0,\"pings\":1,\"other\":1}");
	free(answer);

	struct sink_stats st;
	sink_get_stats(s, &st);
	assert_int_equal(st.requests, 3);
	assert_int_equal(st.by_family[SINK_EVENTS], 1);
	assert_int_equal(st.by_family[SINK_PINGS], 1);
	assert_int_equal(st.by_family[SINK_OTHER], 1);
	sink_stop(s);

	char *rec = test_read_file(tbuf_cstr(&rec_path), NULL);
	assert_non_null(rec);
	const char *lines[3];
	char *save = NULL;
	int n = 0;
	for (char *l = strtok_r(rec, "\n", &save); l && n < 3; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	assert_int_equal(n, 3);
	assert_string_equal(lines[0], "{\"method\":\"POST\",\"path\":\"/api/events\","
				      "\"body\":\"{\\\"a\\\":1}\"}");
	json_t *j = json_loads(lines[1], JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/api/pings/k");
	json_t *body = json_object_get(j, "body");
	assert_int_equal(json_string_length(body), 7);
	assert_memory_equal(json_string_value(body), "a\xef\xbf\xbd" "b\0c", 7);
	json_decref(j);
	assert_string_equal(lines[2], "{\"method\":\"GET\",\"path\":\"/other\",\"body\":\"\"}");
	free(rec);
	test_rmtree(dir);
	tbuf_free(&rec_path);
	free(dir);
}

static void test_ipv6_loopback(void **state)
{
	(void)state;
	struct sink_options o = { .bind = "::1", .threads = 1 };
	struct sink *s = NULL;
	int rc = sink_start(&o, &s);
	if (rc == ILA_ERR_IO) {
		skip(); /* no IPv6 on this host */
		return;
	}
	assert_int_equal(rc, 0);
	char base[64];
	snprintf(base, sizeof(base), "http://[::1]:%d", sink_port(s));
	assert_int_equal(post(base, "/api/events", "{}", 2, NULL), 202);
	struct sink_stats st;
	sink_get_stats(s, &st);
	assert_int_equal(st.by_family[SINK_EVENTS], 1);
	sink_stop(s);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_stats_json),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_in_process_counts_and_records),
		cmocka_unit_test(test_ipv6_loopback),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return failed;
}
