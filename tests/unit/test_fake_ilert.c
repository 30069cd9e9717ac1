#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_ilert.h"

#include "core/clock.h"
#include "core/text.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct resp {
	CURLcode rc;
	long status;
	long connects; /* new connections this transfer opened */
	struct tbuf body;
	struct tbuf headers;
};

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
	tbuf_append(userdata, data, size * n);
	return size * n;
}

struct req_opts {
	const char *method; /* NULL = GET, or POST when body is set */
	const char *body;
	const char *const *headers; /* NULL-terminated */
	long timeout_ms;
	const char *proxy;
};

static void resp_free(struct resp *r)
{
	tbuf_free(&r->body);
	tbuf_free(&r->headers);
}

/* Performs one request on h (reused between calls for keep-alive). */
static void perform(CURL *h, const char *url, const struct req_opts *o, struct resp *r)
{
	memset(r, 0, sizeof(*r));
	tbuf_init(&r->body);
	tbuf_init(&r->headers);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &r->headers);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms ? o->timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, o->proxy ? o->proxy : "");
	curl_easy_setopt(h, CURLOPT_NOPROXY, o->proxy ? "" : "*");
	struct curl_slist *list = NULL;
	for (size_t i = 0; o->headers && o->headers[i]; i++)
		list = curl_slist_append(list, o->headers[i]);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	if (o->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, o->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(o->body));
	}
	if (o->method && strcmp(o->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, o->method);
	r->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	curl_slist_free_all(list);
}

static void request_once(const char *url, const struct req_opts *o, struct resp *r)
{
	CURL *h = curl_easy_init();
	assert_non_null(h);
	perform(h, url, o, r);
	curl_easy_cleanup(h);
}

static char *url_of(struct fake_ilert *f, const char *path)
{
	struct tbuf b;
	tbuf_init(&b);
	tbuf_printf(&b, "%s%s", fake_ilert_url(f), path);
	return tbuf_take(&b);
}

static int setup(void **state)
{
	struct fake_ilert *f = fake_ilert_start();
	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fake_ilert_stop(*state);
	return 0;
}

static void test_start_port_url(void **state)
{
	struct fake_ilert *f = *state;
	int port = fake_ilert_port(f);
	assert_true(port > 0 && port < 65536);
	char expect[64];
	snprintf(expect, sizeof(expect), "http://127.0.0.1:%d", port);
	assert_string_equal(fake_ilert_url(f), expect);
	assert_int_equal(fake_ilert_count(f), 0);
	assert_null(fake_ilert_request(f, 0));
	assert_null(fake_ilert_request(f, -1));
	fake_ilert_stop(NULL);
}

static void test_default_reply_and_recording(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events?source=test&x=1");
	const char *hdrs[] = { "Content-Type: application/json", "X-Test: one two ", NULL };
	struct req_opts o = { .body = "{\"summary\":\"s\"}", .headers = hdrs };
	int64_t before = clock_now_ms();
	struct resp r;
	request_once(url, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 202);
	assert_string_equal(tbuf_cstr(&r.body), "{}");
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Content-Length: 2\r\n"));
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Content-Type: application/json\r\n"));
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Connection: keep-alive\r\n"));
	resp_free(&r);

	assert_int_equal(fake_ilert_count(f), 1);
	struct fake_request *req = fake_ilert_request(f, 0);
	assert_non_null(req);
	assert_string_equal(req->method, "POST");
	assert_string_equal(req->target, "/api/events?source=test&x=1");
	assert_string_equal(req->path, "/api/events");
	assert_string_equal(req->body, "{\"summary\":\"s\"}");
	assert_int_equal(req->body_len, strlen("{\"summary\":\"s\"}"));
	assert_true(req->received_ms >= before - 5 && req->received_ms <= clock_now_ms() + 5);
	assert_int_equal(req->connection, 1);
	assert_non_null(strstr(req->headers, "X-Test: one two \n"));
	assert_non_null(strstr(req->headers, "Content-Type: application/json\n"));
	char *v = fake_request_header(req, "x-test");
	assert_string_equal(v, "one two");
	free(v);
	v = fake_request_header(req, "CONTENT-LENGTH");
	assert_string_equal(v, "15");
	free(v);
	v = fake_request_header(req, "Host");
	char host[64];
	snprintf(host, sizeof(host), "127.0.0.1:%d", fake_ilert_port(f));
	assert_string_equal(v, host);
	free(v);
	assert_null(fake_request_header(req, "X-Absent"));
	assert_null(fake_request_header(req, "X-Tes"));
	fake_request_free(req);
	fake_request_free(NULL);
	free(url);
}

static void test_scripted_replies_fifo(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	struct fake_reply bad = { .status = 400,
				  .body = "{\"message\":\"bad\"}",
				  .content_type = "text/plain",
				  .headers = "X-Extra: yes\r\ncorrelation-id: abc-123\r\n" };
	fake_ilert_push(f, &bad);
	struct fake_reply busy = { .status = 503 };
	fake_ilert_push_n(f, &busy, 2);
	struct fake_reply ok = { .status = 200, .body = "done" };
	fake_ilert_push(f, &ok);

	struct req_opts o = { .body = "{}" };
	struct resp r;
	request_once(url, &o, &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(tbuf_cstr(&r.body), "{\"message\":\"bad\"}");
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Content-Type: text/plain\r\n"));
	assert_non_null(strstr(tbuf_cstr(&r.headers), "X-Extra: yes\r\n"));
	assert_non_null(strstr(tbuf_cstr(&r.headers), "correlation-id: abc-123\r\n"));
	resp_free(&r);
	for (int i = 0; i < 2; i++) {
		request_once(url, &o, &r);
		assert_int_equal(r.status, 503);
		assert_string_equal(tbuf_cstr(&r.body), "");
		assert_non_null(strstr(tbuf_cstr(&r.headers), "Content-Length: 0\r\n"));
		resp_free(&r);
	}
	request_once(url, &o, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(tbuf_cstr(&r.body), "done");
	resp_free(&r);
	/* Script used up: the default again. */
	request_once(url, &o, &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(tbuf_cstr(&r.body), "{}");
	resp_free(&r);

	struct fake_reply def = { .status = 500, .body = "down" };
	fake_ilert_set_default(f, &def);
	request_once(url, &o, &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(tbuf_cstr(&r.body), "down");
	resp_free(&r);
	assert_int_equal(fake_ilert_count(f), 6);
	free(url);
}

static void test_retry_after(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	struct fake_reply limited = { .status = 429, .retry_after = "7" };
	fake_ilert_push(f, &limited);
	CURL *h = curl_easy_init();
	struct req_opts o = { .body = "{}" };
	struct resp r;
	perform(h, url, &o, &r);
	assert_int_equal(r.status, 429);
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Retry-After: 7\r\n"));
	curl_off_t retry_after = 0;
	curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
	assert_int_equal(retry_after, 7);
	resp_free(&r);
	curl_easy_cleanup(h);
	free(url);
}

static void test_delay_makes_client_time_out(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	struct fake_reply slow = { .status = 202, .delay_ms = 1500 };
	fake_ilert_push(f, &slow);
	struct req_opts o = { .body = "{}", .timeout_ms = 200 };
	struct resp r;
	int64_t t0 = clock_mono_ms();
	request_once(url, &o, &r);
	assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
	assert_true(clock_mono_ms() - t0 < 1000);
	resp_free(&r);
	/* Recorded before the answer was due. */
	assert_int_equal(fake_ilert_count(f), 1);

	/* A shorter delay than the client's timeout is just slow. */
	struct fake_reply lag = { .status = 200, .body = "late", .delay_ms = 150 };
	fake_ilert_push(f, &lag);
	t0 = clock_mono_ms();
	o.timeout_ms = 3000;
	request_once(url, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(tbuf_cstr(&r.body), "late");
	assert_true(clock_mono_ms() - t0 >= 150);
	resp_free(&r);
	free(url);
}

static void test_reset_gives_transport_error(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	struct fake_reply rst = { .reset = true };
	fake_ilert_push(f, &rst);
	struct req_opts o = { .body = "{}" };
	struct resp r;
	request_once(url, &o, &r);
	/* RST, not FIN: a FIN would be CURLE_GOT_NOTHING. */
	assert_int_equal(r.rc, CURLE_RECV_ERROR);
	assert_int_equal(r.status, 0);
	assert_string_equal(tbuf_cstr(&r.body), "");
	resp_free(&r);
	assert_int_equal(fake_ilert_count(f), 1);

	/* The server keeps serving new connections. */
	request_once(url, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 202);
	resp_free(&r);
	free(url);
}

static void test_keep_alive_reuses_connection(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	CURL *h = curl_easy_init();
	struct req_opts o = { .body = "{\"n\":1}" };
	struct resp r;
	perform(h, url, &o, &r);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.connects, 1);
	resp_free(&r);
	o.body = "{\"n\":2}";
	perform(h, url, &o, &r);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.connects, 0);
	resp_free(&r);
	curl_easy_cleanup(h);

	assert_int_equal(fake_ilert_connection_count(f), 1);
	struct fake_request *a = fake_ilert_request(f, 0);
	struct fake_request *b = fake_ilert_request(f, 1);
	assert_string_equal(a->body, "{\"n\":1}");
	assert_string_equal(b->body, "{\"n\":2}");
	assert_int_equal(a->connection, b->connection);
	fake_request_free(a);
	fake_request_free(b);
	free(url);
}

static void test_connection_close(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	CURL *h = curl_easy_init();
	/* The client asks to close. */
	const char *close_hdr[] = { "Connection: close", NULL };
	struct req_opts o = { .body = "{}", .headers = close_hdr };
	struct resp r;
	perform(h, url, &o, &r);
	assert_int_equal(r.status, 202);
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Connection: close\r\n"));
	resp_free(&r);
	/* The script asks to close. */
	struct fake_reply closing = { .status = 200, .close = true };
	fake_ilert_push(f, &closing);
	struct req_opts plain = { .body = "{}" };
	perform(h, url, &plain, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.connects, 1);
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Connection: close\r\n"));
	resp_free(&r);
	perform(h, url, &plain, &r);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.connects, 1);
	resp_free(&r);
	curl_easy_cleanup(h);
	assert_int_equal(fake_ilert_connection_count(f), 3);
	free(url);
}

static void test_head_has_no_body(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/pings/key1");
	struct fake_reply pong = { .status = 200, .body = "{\"ok\":true}" };
	fake_ilert_push(f, &pong);
	CURL *h = curl_easy_init();
	struct req_opts o = { .method = "HEAD", .timeout_ms = 2000 };
	struct resp r;
	perform(h, url, &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(tbuf_cstr(&r.headers), "Content-Length: 11\r\n"));
	assert_string_equal(tbuf_cstr(&r.body), "");
	resp_free(&r);
	/* Had a body been sent, the next response on this connection would be garbled. */
	struct req_opts get = { .timeout_ms = 2000 };
	perform(h, url, &get, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.connects, 0);
	assert_string_equal(tbuf_cstr(&r.body), "{}");
	resp_free(&r);
	curl_easy_cleanup(h);

	struct fake_request *req = fake_ilert_request(f, 0);
	assert_string_equal(req->method, "HEAD");
	assert_string_equal(req->path, "/api/pings/key1");
	assert_int_equal(req->body_len, 0);
	assert_string_equal(req->body, "");
	fake_request_free(req);
	req = fake_ilert_request(f, 1);
	assert_string_equal(req->method, "GET");
	fake_request_free(req);
	free(url);
}

static void test_proxy_absolute_form(void **state)
{
	struct fake_ilert *f = *state;
	struct req_opts o = { .method = "HEAD", .proxy = fake_ilert_url(f) };
	struct resp r;
	request_once("http://beat.example.invalid/api/pings/abc%20d?x=1", &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 202);
	resp_free(&r);
	struct req_opts host_only = { .proxy = fake_ilert_url(f) };
	request_once("http://api.example.invalid:8080", &host_only, &r);
	assert_int_equal(r.status, 202);
	resp_free(&r);

	struct fake_request *req = fake_ilert_request(f, 0);
	assert_string_equal(req->method, "HEAD");
	assert_string_equal(req->target, "http://beat.example.invalid/api/pings/abc%20d?x=1");
	assert_string_equal(req->path, "/api/pings/abc%20d");
	char *host = fake_request_header(req, "Host");
	assert_string_equal(host, "beat.example.invalid");
	free(host);
	fake_request_free(req);
	req = fake_ilert_request(f, 1);
	assert_string_equal(req->target, "http://api.example.invalid:8080/");
	assert_string_equal(req->path, "/");
	fake_request_free(req);
}

struct chunk_src {
	const char *data;
	size_t len, off;
};

static size_t read_small_pieces(char *buf, size_t size, size_t n, void *userdata)
{
	struct chunk_src *s = userdata;
	size_t want = size * n < 7 ? size * n : 7;
	size_t left = s->len - s->off;
	size_t take = left < want ? left : want;
	memcpy(buf, s->data + s->off, take);
	s->off += take;
	return take;
}

static void test_chunked_request_body(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	const char *payload = "{\"summary\":\"chunked body spread over several chunks\"}";
	struct chunk_src src = { .data = payload, .len = strlen(payload) };
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = curl_slist_append(NULL, "Transfer-Encoding: chunked");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_small_pieces);
	curl_easy_setopt(h, CURLOPT_READDATA, &src);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	struct tbuf body;
	tbuf_init(&body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 202);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	tbuf_free(&body);

	struct fake_request *req = fake_ilert_request(f, 0);
	assert_string_equal(req->body, payload);
	assert_int_equal(req->body_len, strlen(payload));
	char *te = fake_request_header(req, "Transfer-Encoding");
	assert_string_equal(te, "chunked");
	free(te);
	fake_request_free(req);
	free(url);
}

static void test_large_body_no_expect_stall(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events/batch");
	size_t n = 300000;
	char *big = malloc(n + 1);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('A' + i % 23);
	big[n] = '\0';
	/* curl sends "Expect: 100-continue" for large bodies and waits 1 s for the interim
	 * answer unless the server gives it. */
	const char *hdrs[] = { "Expect: 100-continue", NULL };
	struct req_opts o = { .body = big, .headers = hdrs };
	struct resp r;
	int64_t t0 = clock_mono_ms();
	request_once(url, &o, &r);
	assert_int_equal(r.status, 202);
	assert_true(clock_mono_ms() - t0 < 900);
	resp_free(&r);
	struct fake_request *req = fake_ilert_request(f, 0);
	assert_int_equal(req->body_len, n);
	assert_memory_equal(req->body, big, n);
	fake_request_free(req);
	free(big);
	free(url);
}

struct delayed_request {
	char *url;
	int delay_ms;
};

static void *send_later(void *arg)
{
	struct delayed_request *d = arg;
	struct timespec ts = { 0, (long)d->delay_ms * 1000000L };
	nanosleep(&ts, NULL);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, d->url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	struct tbuf sink;
	tbuf_init(&sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_perform(h);
	curl_easy_cleanup(h);
	tbuf_free(&sink);
	return NULL;
}

static void test_wait_count(void **state)
{
	struct fake_ilert *f = *state;
	struct delayed_request d = { .url = url_of(f, "/api/heartbeats/il1hbt1"), .delay_ms = 150 };
	pthread_t th;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(pthread_create(&th, NULL, send_later, &d), 0);
	assert_int_equal(fake_ilert_wait_count(f, 1, 5000), 1);
	int64_t took = clock_mono_ms() - t0;
	assert_true(took >= 140 && took < 3000);
	pthread_join(th, NULL);
	/* Not reached: returns the count after the timeout. */
	t0 = clock_mono_ms();
	assert_int_equal(fake_ilert_wait_count(f, 3, 200), 1);
	took = clock_mono_ms() - t0;
	assert_true(took >= 190 && took < 1000);
	/* Already reached: immediate. */
	assert_int_equal(fake_ilert_wait_count(f, 1, 0), 1);
	free(d.url);
}

static void test_reset_forgets(void **state)
{
	struct fake_ilert *f = *state;
	char *url = url_of(f, "/api/events");
	struct req_opts o = { .body = "{}" };
	struct resp r;
	request_once(url, &o, &r);
	resp_free(&r);
	struct fake_reply err = { .status = 500 };
	fake_ilert_push_n(f, &err, 3);
	struct fake_reply def = { .status = 201, .body = "made" };
	fake_ilert_set_default(f, &def);
	assert_int_equal(fake_ilert_count(f), 1);

	fake_ilert_reset(f);
	assert_int_equal(fake_ilert_count(f), 0);
	assert_null(fake_ilert_request(f, 0));
	o.body = "{\"after\":1}";
	request_once(url, &o, &r);
	assert_int_equal(r.status, 201); /* script gone, default kept */
	assert_string_equal(tbuf_cstr(&r.body), "made");
	resp_free(&r);
	assert_int_equal(fake_ilert_count(f), 1);
	struct fake_request *req = fake_ilert_request(f, 0);
	assert_string_equal(req->body, "{\"after\":1}");
	fake_request_free(req);
	free(url);
}

/* Many clients at once, each answer delayed: served in parallel, not one by one. */
static void test_many_concurrent_connections(void **state)
{
	struct fake_ilert *f = *state;
	enum { N = 80 };
	struct fake_reply slow = { .status = 202, .body = "{}", .delay_ms = 300 };
	fake_ilert_set_default(f, &slow);
	char *url = url_of(f, "/api/events");
	CURLM *m = curl_multi_init();
	CURL *h[N];
	struct tbuf bodies[N];
	for (int i = 0; i < N; i++) {
		tbuf_init(&bodies[i]);
		h[i] = curl_easy_init();
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, "{}");
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &bodies[i]);
		curl_multi_add_handle(m, h[i]);
	}
	int64_t t0 = clock_mono_ms();
	int running = 1;
	while (running) {
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	int64_t took = clock_mono_ms() - t0;
	int ok = 0;
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left))) {
		long status = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (msg->data.result == CURLE_OK && status == 202)
			ok++;
	}
	for (int i = 0; i < N; i++) {
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		tbuf_free(&bodies[i]);
	}
	curl_multi_cleanup(m);
	assert_int_equal(ok, N);
	assert_int_equal(fake_ilert_count(f), N);
	assert_true(fake_ilert_connection_count(f) >= 64);
	assert_true(took < 4000); /* one by one would take 24 s */
	free(url);
}

/* Stop returns fast with idle keep-alive connections and pending delays. */
static void test_stop_is_prompt(void **state)
{
	(void)state;
	struct fake_ilert *f = fake_ilert_start();
	assert_non_null(f);
	char *url = url_of(f, "/api/events");
	CURL *idle = curl_easy_init();
	struct req_opts o = { .body = "{}" };
	struct resp r;
	perform(idle, url, &o, &r); /* connection stays open in idle's cache */
	assert_int_equal(r.status, 202);
	resp_free(&r);
	struct fake_reply slow = { .delay_ms = 20000 };
	fake_ilert_push_n(f, &slow, 2);
	struct req_opts quick = { .body = "{}", .timeout_ms = 150 };
	request_once(url, &quick, &r);
	assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
	resp_free(&r);
	/* A client still waiting for its delayed answer while the server stops. */
	struct delayed_request d = { .url = url, .delay_ms = 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, send_later, &d), 0);
	assert_int_equal(fake_ilert_wait_count(f, 3, 5000), 3);

	int64_t t0 = clock_mono_ms();
	fake_ilert_stop(f);
	assert_true(clock_mono_ms() - t0 < 1000);
	int64_t t1 = clock_mono_ms();
	pthread_join(th, NULL); /* its connection was closed: it ends at once */
	assert_true(clock_mono_ms() - t1 < 2000);
	curl_easy_cleanup(idle);
	free(url);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_port_url, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_reply_and_recording, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scripted_replies_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_makes_client_time_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_gives_transport_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive_reuses_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_has_no_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_absolute_form, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_request_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_body_no_expect_stall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_forgets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent_connections, setup, teardown),
		cmocka_unit_test(test_stop_is_prompt),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return failed;
}
