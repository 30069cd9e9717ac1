#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proc.h"

#include "core/clock.h"
#include "core/text.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *sink_bin(void)
{
	const char *bin = getenv("ILAGENT_SINK_BIN");
	return bin && *bin ? bin : "build/ilagent-sink";
}

struct running_sink {
	char *dir;
	char *out_path;
	char *err_path;
	struct proc_bg *proc;
	int port;
	char base[64];
};

static char *join(const char *dir, const char *name)
{
	struct tbuf b;
	tbuf_init(&b);
	tbuf_printf(&b, "%s/%s", dir, name);
	return tbuf_take(&b);
}

/* Starts the sink with extra arguments (after --port 0) and reads its port from stdout. */
static void sink_launch(struct running_sink *rs, const char *const extra[])
{
	memset(rs, 0, sizeof(*rs));
	rs->dir = test_mkdtemp();
	assert_non_null(rs->dir);
	rs->out_path = join(rs->dir, "stdout");
	rs->err_path = join(rs->dir, "stderr");
	const char *argv[16] = { sink_bin(), "--port", "0" };
	size_t n = 3;
	for (size_t i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	rs->proc = proc_bg_start(argv, NULL, rs->out_path, rs->err_path);
	assert_non_null(rs->proc);
	static const char prefix[] = "listening on http://127.0.0.1:";
	assert_true(test_wait_file_contains(rs->out_path, prefix, 10000));
	/* The line is written at once, but wait for its end to read the whole port. */
	char *out = NULL;
	int64_t deadline = clock_mono_ms() + 5000;
	for (;;) {
		out = test_read_file(rs->out_path, NULL);
		if (out && strchr(out, '\n'))
			break;
		free(out);
		out = NULL;
		assert_true(clock_mono_ms() < deadline);
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	assert_memory_equal(out, prefix, strlen(prefix));
	rs->port = atoi(out + strlen(prefix));
	assert_true(rs->port > 0 && rs->port < 65536);
	free(out);
	snprintf(rs->base, sizeof(rs->base), "http://127.0.0.1:%d", rs->port);
}

static void sink_cleanup(struct running_sink *rs)
{
	proc_bg_destroy(rs->proc);
	test_rmtree(rs->dir);
	free(rs->err_path);
	free(rs->out_path);
	free(rs->dir);
}

static int sink_terminate(struct running_sink *rs, int sig)
{
	assert_int_equal(proc_bg_signal(rs->proc, sig), 0);
	int code = -2;
	assert_true(proc_bg_wait(rs->proc, 10000, &code));
	return code;
}

struct http_result {
	CURLcode rc;
	long status;
	long connects;
	struct tbuf body;
};

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
	tbuf_append(userdata, data, size * n);
	return size * n;
}

static void http(CURL *h, const char *base, const char *method, const char *path,
		 const char *body, struct http_result *r)
{
	memset(r, 0, sizeof(*r));
	tbuf_init(&r->body);
	struct tbuf url;
	tbuf_init(&url);
	tbuf_printf(&url, "%s%s", base, path);
	curl_easy_setopt(h, CURLOPT_URL, tbuf_cstr(&url));
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	r->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
	tbuf_free(&url);
}

static void expect_answer(CURL *h, const char *base, const char *method, const char *path,
			  const char *body, long status, const char *answer)
{
	struct http_result r;
	http(h, base, method, path, body, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, status);
	assert_string_equal(tbuf_cstr(&r.body), answer);
	tbuf_free(&r.body);
}

static char *get_stats(CURL *h, const char *base)
{
	struct http_result r;
	http(h, base, "GET", "/_sink/stats", NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	return tbuf_take(&r.body);
}

static void check_record_line(json_t *line, const char *method, const char *path,
			      const char *body)
{
	assert_non_null(line);
	assert_int_equal(json_object_size(line), 3);
	assert_string_equal(json_string_value(json_object_get(line, "method")), method);
	assert_string_equal(json_string_value(json_object_get(line, "path")), path);
	assert_string_equal(json_string_value(json_object_get(line, "body")), body);
}

static void test_counts_stats_record_and_final_output(void **state)
{
	(void)state;
	struct running_sink rs;
	char *record_dir = test_mkdtemp();
	char *record = join(record_dir, "requests.jsonl");
	const char *extra[] = { "--record", record, NULL };
	sink_launch(&rs, extra);

	CURL *h = curl_easy_init();
	for (int i = 0; i < 3; i++) {
		char body[32];
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		expect_answer(h, rs.base, "POST", "/api/events", body, 202, "{}");
	}
	expect_answer(h, rs.base, "POST", "/api/v1/events/mqtt/key%201", "{\"m\":1}", 202, "{}");
	expect_answer(h, rs.base, "POST", "/api/v1/events/kafka/k2", "{\"k\":1}", 202, "{}");
	expect_answer(h, rs.base, "GET", "/api/heartbeats/il1hbt1", NULL, 202, "{}");
	expect_answer(h, rs.base, "GET", "/api/heartbeats/il1hbt2?x=1", NULL, 202, "{}");
	expect_answer(h, rs.base, "HEAD", "/api/pings/abc", NULL, 202, "");
	expect_answer(h, rs.base, "PUT", "/api/escalation-policies/7/levels/1", "{\"u\":2}", 202,
		      "{}");

	/* Keep-alive: the last request reused the first connection. */
	struct http_result r;
	http(h, rs.base, "POST", "/api/events/", "tail", &r);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.connects, 0);
	tbuf_free(&r.body);

	const char *expect_stats = "{\"requests\":10,\"events\":4,\"mqtt\":1,\"kafka\":1,"
				   "\"heartbeats\":2,\"pings\":1,\"other\":1}";
	char *stats = get_stats(h, rs.base);
	assert_string_equal(stats, expect_stats);
	free(stats);
	/* Polling the stats does not count. */
	stats = get_stats(h, rs.base);
	assert_string_equal(stats, expect_stats);
	free(stats);
	curl_easy_cleanup(h);

	int64_t t0 = clock_mono_ms();
	assert_int_equal(sink_terminate(&rs, SIGTERM), 0);
	assert_true(clock_mono_ms() - t0 < 3000);
	char *out = test_read_file(rs.out_path, NULL);
	char expect_out[512];
	snprintf(expect_out, sizeof(expect_out), "listening on http://127.0.0.1:%d\n", rs.port);
	assert_memory_equal(out, expect_out, strlen(expect_out));
	assert_non_null(strstr(out, "\nrequests 10\n"));
	assert_non_null(strstr(out, "\nby path\n"
				    "  /api/events 4\n"
				    "  /api/v1/events/mqtt 1\n"
				    "  /api/v1/events/kafka 1\n"
				    "  /api/heartbeats 2\n"
				    "  /api/pings 1\n"
				    "  other 1\n"));
	free(out);
	char *err = test_read_file(rs.err_path, NULL);
	assert_string_equal(err, "");
	free(err);

	/* --record: one JSON line per counted request, in order. */
	char *rec = test_read_file(record, NULL);
	assert_non_null(rec);
	const char *expect_lines[][3] = {
		{ "POST", "/api/events", "{\"n\":0}" },
		{ "POST", "/api/events", "{\"n\":1}" },
		{ "POST", "/api/events", "{\"n\":2}" },
		{ "POST", "/api/v1/events/mqtt/key 1", "{\"m\":1}" },
		{ "POST", "/api/v1/events/kafka/k2", "{\"k\":1}" },
		{ "GET", "/api/heartbeats/il1hbt1", "" },
		{ "GET", "/api/heartbeats/il1hbt2", "" },
		{ "HEAD", "/api/pings/abc", "" },
		{ "PUT", "/api/escalation-policies/7/levels/1", "{\"u\":2}" },
		{ "POST", "/api/events/", "tail" },
	};
	size_t nexpect = sizeof(expect_lines) / sizeof(expect_lines[0]);
	char *save = NULL;
	size_t n = 0;
	for (char *line = strtok_r(rec, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_true(n < nexpect);
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);
		check_record_line(j, expect_lines[n][0], expect_lines[n][1], expect_lines[n][2]);
		json_decref(j);
		n++;
	}
	assert_int_equal(n, nexpect);
	free(rec);

	sink_cleanup(&rs);
	test_rmtree(record_dir);
	free(record);
	free(record_dir);
}

static void test_status_option_and_sigint(void **state)
{
	(void)state;
	struct running_sink rs;
	const char *extra[] = { "--status", "503", "--threads", "1", NULL };
	sink_launch(&rs, extra);
	CURL *h = curl_easy_init();
	expect_answer(h, rs.base, "POST", "/api/events", "{}", 503, "{}");
	expect_answer(h, rs.base, "GET", "/whatever", NULL, 503, "{}");
	char *stats = get_stats(h, rs.base);
	assert_string_equal(stats, "{\"requests\":2,\"events\":1,\"mqtt\":0,\"kafka\":0,"
				   "\"heartbeats\":0,\"pings\":0,\"other\":1}");
	free(stats);
	curl_easy_cleanup(h);
	assert_int_equal(sink_terminate(&rs, SIGINT), 0);
	char *out = test_read_file(rs.out_path, NULL);
	assert_non_null(strstr(out, "\nrequests 2\n"));
	free(out);
	sink_cleanup(&rs);
}

static void test_quiet_prints_only_listening_line(void **state)
{
	(void)state;
	struct running_sink rs;
	const char *extra[] = { "--quiet", NULL };
	sink_launch(&rs, extra);
	CURL *h = curl_easy_init();
	expect_answer(h, rs.base, "POST", "/api/events", "{}", 202, "{}");
	curl_easy_cleanup(h);
	assert_int_equal(sink_terminate(&rs, SIGTERM), 0);
	char *out = test_read_file(rs.out_path, NULL);
	char expect_out[128];
	snprintf(expect_out, sizeof(expect_out), "listening on http://127.0.0.1:%d\n", rs.port);
	assert_string_equal(out, expect_out);
	free(out);
	sink_cleanup(&rs);
}

/* Large bodies are read to the end (otherwise the connection could not be reused), then
 * dropped; chunked bodies too. */
static void test_large_and_chunked_bodies(void **state)
{
	(void)state;
	struct running_sink rs;
	sink_launch(&rs, NULL);
	size_t n = 2 * 1024 * 1024;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	CURL *h = curl_easy_init();
	expect_answer(h, rs.base, "POST", "/api/events", big, 202, "{}");
	struct curl_slist *hdrs = curl_slist_append(NULL, "Transfer-Encoding: chunked");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	expect_answer(h, rs.base, "POST", "/api/events", big, 202, "{}");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	struct http_result r;
	http(h, rs.base, "POST", "/api/pings/after", "{}", &r);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.connects, 0);
	tbuf_free(&r.body);
	char *stats = get_stats(h, rs.base);
	assert_non_null(strstr(stats, "{\"requests\":3,\"events\":2,"));
	free(stats);
	curl_easy_cleanup(h);
	free(big);
	assert_int_equal(sink_terminate(&rs, SIGTERM), 0);
	sink_cleanup(&rs);
}

static void test_many_parallel_clients(void **state)
{
	(void)state;
	struct running_sink rs;
	sink_launch(&rs, NULL);
	enum { CLIENTS = 32, PER_CLIENT = 50 };
	struct tbuf url;
	tbuf_init(&url);
	tbuf_printf(&url, "%s/api/v1/events/kafka/k", rs.base);
	CURLM *m = curl_multi_init();
	CURL *h[CLIENTS];
	int done[CLIENTS] = { 0 };
	struct tbuf sink_body;
	tbuf_init(&sink_body);
	for (int i = 0; i < CLIENTS; i++) {
		h[i] = curl_easy_init();
		curl_easy_setopt(h[i], CURLOPT_URL, tbuf_cstr(&url));
		curl_easy_setopt(h[i], CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, "{\"summary\":\"x\"}");
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &sink_body);
		curl_easy_setopt(h[i], CURLOPT_PRIVATE, &done[i]);
		curl_multi_add_handle(m, h[i]);
	}
	int ok = 0;
	int running = CLIENTS;
	int64_t deadline = clock_mono_ms() + 30000;
	while (running > 0 && clock_mono_ms() < deadline) {
		int still;
		curl_multi_perform(m, &still);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			long status = 0;
			int *count = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&count);
			if (msg->data.result == CURLE_OK && status == 202)
				ok++;
			curl_multi_remove_handle(m, msg->easy_handle);
			if (++*count < PER_CLIENT)
				curl_multi_add_handle(m, msg->easy_handle);
			else
				running--;
		}
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	for (int i = 0; i < CLIENTS; i++) {
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
	}
	curl_multi_cleanup(m);
	tbuf_free(&sink_body);
	tbuf_free(&url);
	assert_int_equal(ok, CLIENTS * PER_CLIENT);

	CURL *q = curl_easy_init();
	char *stats = get_stats(q, rs.base);
	char expect[160];
	snprintf(expect, sizeof(expect),
		 "{\"requests\":%d,\"events\":0,\"mqtt\":0,\"kafka\":%d,\"heartbeats\":0,"
		 "\"pings\":0,\"other\":0}",
		 CLIENTS * PER_CLIENT, CLIENTS * PER_CLIENT);
	assert_string_equal(stats, expect);
	free(stats);
	curl_easy_cleanup(q);
	assert_int_equal(sink_terminate(&rs, SIGTERM), 0);
	sink_cleanup(&rs);
}

static void test_usage_errors_and_help(void **state)
{
	(void)state;
	struct proc_result res;
	const char *bad_port[] = { sink_bin(), "--port", "abc", NULL };
	assert_int_equal(proc_run(bad_port, NULL, NULL, 10000, &res), 0);
	assert_int_equal(res.exit_code, 2);
	assert_string_equal(res.out, "");
	assert_non_null(strstr(res.err, "ilagent-sink: error: invalid --port 'abc' (0-65535)\n"));
	proc_result_free(&res);

	const char *bad_opt[] = { sink_bin(), "--nope", NULL };
	assert_int_equal(proc_run(bad_opt, NULL, NULL, 10000, &res), 0);
	assert_int_equal(res.exit_code, 2);
	assert_non_null(strstr(res.err, "ilagent-sink: error: unknown option '--nope'\n"));
	proc_result_free(&res);

	const char *bad_status[] = { sink_bin(), "--status", "99", NULL };
	assert_int_equal(proc_run(bad_status, NULL, NULL, 10000, &res), 0);
	assert_int_equal(res.exit_code, 2);
	proc_result_free(&res);

	const char *help[] = { sink_bin(), "--help", NULL };
	assert_int_equal(proc_run(help, NULL, NULL, 10000, &res), 0);
	assert_int_equal(res.exit_code, 0);
	assert_memory_equal(res.out, "Usage: ilagent-sink", strlen("Usage: ilagent-sink"));
	for (const char *const *opt = (const char *const[]){ "--port N", "--bind ADDR",
							      "--status CODE", "--threads N",
							      "--record FILE", "--quiet",
							      "--help", NULL };
	     *opt; opt++)
		assert_non_null(strstr(res.out, *opt));
	assert_string_equal(res.err, "");
	proc_result_free(&res);
}

static void test_port_in_use_fails(void **state)
{
	(void)state;
	struct running_sink rs;
	sink_launch(&rs, NULL);
	char port[16];
	snprintf(port, sizeof(port), "%d", rs.port);
	const char *argv[] = { sink_bin(), "--port", port, NULL };
	struct proc_result res;
	assert_int_equal(proc_run(argv, NULL, NULL, 10000, &res), 0);
	assert_int_equal(res.exit_code, 1);
	assert_string_equal(res.out, "");
	assert_non_null(strstr(res.err, "ilagent-sink: error: cannot listen on 127.0.0.1:"));
	proc_result_free(&res);
	assert_int_equal(sink_terminate(&rs, SIGTERM), 0);
	sink_cleanup(&rs);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_stats_record_and_final_output),
		cmocka_unit_test(test_status_option_and_sigint),
		cmocka_unit_test(test_quiet_prints_only_listening_line),
		cmocka_unit_test(test_large_and_chunked_bodies),
		cmocka_unit_test(test_many_parallel_clients),
		cmocka_unit_test(test_usage_errors_and_help),
		cmocka_unit_test(test_port_in_use_fails),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return failed;
}
