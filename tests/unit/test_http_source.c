#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_ilert.h"
#include "proc.h"

#include "cli/config.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/intake.h"
#include "core/message.h"
#include "core/text.h"
#include "ilert/client.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "ops/readiness.h"
#include "sources/http.h"
#include "version.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- a fake intake: scripted ticket outcomes, completed from its own thread --------------- */

struct outcome {
	enum ticket_status status;
	const char *echo; /* NULL: the message body is echoed */
	const char *error;
	int error_index;
	size_t accepted;
	int delay_ms; /* completion delay */
	bool sync;    /* complete inside admit(), on the caller's thread */
};

struct pending {
	struct message *msg;
	struct outcome o;
	int64_t due_ms;
};

#define MAX_SCRIPT 64
#define MAX_PENDING 256

struct fake_intake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum intake_state state;
	int refuse; /* refuse the next n admissions; -1 refuses all */
	struct outcome script[MAX_SCRIPT];
	int script_len, script_pos;
	struct outcome dflt;
	struct pending pend[MAX_PENDING];
	int npend;
	bool stop;
	pthread_t thread;
	/* records */
	int admit_calls;
	int admitted;
	enum source last_source;
	enum message_kind last_kind;
	char *last_body;
	bool last_retry_on_store_error;
	bool last_had_ticket;
	int64_t last_admitted_ns;
};

static void complete_message(struct message *msg, const struct outcome *o)
{
	struct ticket *t = msg->ticket;
	t->status = o->status;
	if (o->status == TICKET_ACCEPTED && msg->kind == MSG_HTTP_EVENT)
		t->echo = strdup(o->echo ? o->echo : msg->body);
	if (o->error)
		t->error = strdup(o->error);
	t->error_index = o->error_index;
	t->accepted = o->accepted;
	message_destroy(msg);
	t->complete(t);
}

static void *fake_main(void *arg)
{
	struct fake_intake *fi = arg;
	pthread_mutex_lock(&fi->lock);
	for (;;) {
		int64_t now = clock_mono_ms();
		int due = -1;
		int64_t next = -1;
		for (int i = 0; i < fi->npend; i++) {
			if (fi->pend[i].due_ms <= now) {
				due = i;
				break;
			}
			if (next < 0 || fi->pend[i].due_ms < next)
				next = fi->pend[i].due_ms;
		}
		if (due >= 0) {
			struct pending p = fi->pend[due];
			fi->pend[due] = fi->pend[--fi->npend];
			pthread_mutex_unlock(&fi->lock);
			complete_message(p.msg, &p.o);
			pthread_mutex_lock(&fi->lock);
			continue;
		}
		if (fi->stop && fi->npend == 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 2 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&fi->cond, &fi->lock, &ts);
	}
	pthread_mutex_unlock(&fi->lock);
	return NULL;
}

static bool fake_admit(void *ctx, struct message *msg)
{
	struct fake_intake *fi = ctx;
	pthread_mutex_lock(&fi->lock);
	fi->admit_calls++;
	if (fi->refuse != 0) {
		if (fi->refuse > 0)
			fi->refuse--;
		pthread_mutex_unlock(&fi->lock);
		return false;
	}
	fi->admitted++;
	fi->last_source = msg->source;
	fi->last_kind = msg->kind;
	free(fi->last_body);
	fi->last_body = strndup(msg->body, msg->body_len);
	fi->last_retry_on_store_error = msg->retry_on_store_error;
	fi->last_had_ticket = msg->ticket != NULL;
	fi->last_admitted_ns = msg->admitted_ns;
	struct outcome o =
		fi->script_pos < fi->script_len ? fi->script[fi->script_pos++] : fi->dflt;
	if (o.sync) {
		pthread_mutex_unlock(&fi->lock);
		complete_message(msg, &o);
		return true;
	}
	assert_true(fi->npend < MAX_PENDING);
	fi->pend[fi->npend++] = (struct pending){ msg, o, clock_mono_ms() + o.delay_ms };
	pthread_cond_signal(&fi->cond);
	pthread_mutex_unlock(&fi->lock);
	return true;
}

static enum intake_state fake_state(void *ctx)
{
	struct fake_intake *fi = ctx;
	pthread_mutex_lock(&fi->lock);
	enum intake_state s = fi->state;
	pthread_mutex_unlock(&fi->lock);
	return s;
}

static struct fake_intake *fake_intake_start(void)
{
	struct fake_intake *fi = calloc(1, sizeof(*fi));
	assert_non_null(fi);
	pthread_mutex_init(&fi->lock, NULL);
	pthread_cond_init(&fi->cond, NULL);
	fi->dflt = (struct outcome){ .status = TICKET_ACCEPTED, .delay_ms = 2, .error_index = -1 };
	assert_int_equal(pthread_create(&fi->thread, NULL, fake_main, fi), 0);
	return fi;
}

static void fake_intake_stop(struct fake_intake *fi)
{
	pthread_mutex_lock(&fi->lock);
	fi->stop = true;
	pthread_cond_signal(&fi->cond);
	pthread_mutex_unlock(&fi->lock);
	pthread_join(fi->thread, NULL);
	free(fi->last_body);
	pthread_mutex_destroy(&fi->lock);
	pthread_cond_destroy(&fi->cond);
	free(fi);
}

static void fake_script(struct fake_intake *fi, struct outcome o)
{
	pthread_mutex_lock(&fi->lock);
	assert_true(fi->script_len < MAX_SCRIPT);
	fi->script[fi->script_len++] = o;
	pthread_mutex_unlock(&fi->lock);
}

static void fake_set_state(struct fake_intake *fi, enum intake_state s)
{
	pthread_mutex_lock(&fi->lock);
	fi->state = s;
	pthread_mutex_unlock(&fi->lock);
}

static void fake_set_refuse(struct fake_intake *fi, int n)
{
	pthread_mutex_lock(&fi->lock);
	fi->refuse = n;
	pthread_mutex_unlock(&fi->lock);
}

static int fake_admitted(struct fake_intake *fi)
{
	pthread_mutex_lock(&fi->lock);
	int n = fi->admitted;
	pthread_mutex_unlock(&fi->lock);
	return n;
}

static int fake_admit_calls(struct fake_intake *fi)
{
	pthread_mutex_lock(&fi->lock);
	int n = fi->admit_calls;
	pthread_mutex_unlock(&fi->lock);
	return n;
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct fx {
	struct config cfg;
	struct fake_intake *fi;
	struct fake_ilert *ilert;
	struct http_source *src;
	char base[64];
};

static void fx_config(struct fx *fx, const char *token)
{
	config_init(&fx->cfg);
	fx->cfg.cmd = CMD_DAEMON;
	fx->cfg.http_enabled = true;
	fx->cfg.port = test_free_port();
	fx->cfg.bind = strdup("127.0.0.1");
	fx->cfg.api_url = strdup(fake_ilert_url(fx->ilert));
	fx->cfg.beat_url = strdup(fake_ilert_url(fx->ilert));
	fx->cfg.api_timeout = 5;
	fx->cfg.api_key = strdup("apikey-0123456789");
	fx->cfg.max_body = 100;
	fx->cfg.max_batch_body = 200;
	if (token)
		fx->cfg.http_token = strdup(token);
	snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%d", fx->cfg.port);
}

static void fx_start_with(struct fx *fx, const struct http_source_settings *s)
{
	struct intake in = { .ctx = fx->fi, .admit = fake_admit, .state = fake_state };
	char msg[256] = "";
	int err = http_source_start_with(&fx->cfg, &in, s, &fx->src, msg, sizeof(msg));
	if (err)
		fail_msg("start failed: %s", msg);
	assert_int_equal(http_source_port(fx->src), fx->cfg.port);
}

static struct fx *fx_new(const char *token, const struct http_source_settings *s)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	metrics_init();
	readiness_init();
	fx->ilert = fake_ilert_start();
	assert_non_null(fx->ilert);
	fx->fi = fake_intake_start();
	fx_config(fx, token);
	struct http_source_settings dflt;
	http_source_settings_default(&dflt);
	fx_start_with(fx, s ? s : &dflt);
	return fx;
}

static void fx_free(struct fx *fx)
{
	http_source_stop(fx->src);
	fake_intake_stop(fx->fi);
	fake_ilert_stop(fx->ilert);
	config_free(&fx->cfg);
	readiness_init();
	free(fx);
}

static int setup(void **state)
{
	*state = fx_new(NULL, NULL);
	return 0;
}

static int setup_token(void **state)
{
	*state = fx_new("s3cret-token-value", NULL);
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* ---- a small libcurl client ------------------------------------------------------------------ */

struct resp {
	CURLcode rc;
	long status;
	struct tbuf body;
	struct tbuf headers;
	int64_t elapsed_ms;
};

struct req {
	const char *method; /* default GET */
	const char *path;
	const char *body;         /* POST body */
	size_t body_len;          /* 0: strlen(body) */
	const char *content_type; /* NULL: application/json for POST; "" removes the header */
	const char *auth;         /* full Authorization value */
	bool chunked;
	const char *const *headers; /* extra, NULL-terminated */
	long timeout_ms;
};

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
	tbuf_append(userdata, data, size * n);
	return size * n;
}

struct upload {
	const char *data;
	size_t len, pos;
};

static size_t read_body(char *buf, size_t size, size_t n, void *userdata)
{
	struct upload *u = userdata;
	size_t want = size * n, left = u->len - u->pos;
	if (want > left)
		want = left;
	if (u->len < 10000 && want > 7)
		want = 7; /* many small chunks */
	memcpy(buf, u->data + u->pos, want);
	u->pos += want;
	return want;
}

struct prepared {
	CURL *h;
	struct curl_slist *list;
	struct upload up;
	struct resp *r;
	char url[256];
	char ct[128];
	char auth[256];
};

static void prepare(struct prepared *p, struct fx *fx, const struct req *q, struct resp *r)
{
	memset(r, 0, sizeof(*r));
	tbuf_init(&r->body);
	tbuf_init(&r->headers);
	p->r = r;
	p->list = NULL;
	p->h = curl_easy_init();
	assert_non_null(p->h);
	CURL *h = p->h;
	snprintf(p->url, sizeof(p->url), "%s%s", fx->base, q->path);
	curl_easy_setopt(h, CURLOPT_URL, p->url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &r->headers);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, q->timeout_ms ? q->timeout_ms : 8000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	const char *method = q->method ? q->method : (q->body ? "POST" : "GET");
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (q->body) {
		size_t len = q->body_len ? q->body_len : strlen(q->body);
		if (q->chunked) {
			p->up = (struct upload){ q->body, len, 0 };
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
			curl_easy_setopt(h, CURLOPT_READDATA, &p->up);
			p->list = curl_slist_append(p->list, "Transfer-Encoding: chunked");
		} else {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
		}
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	const char *ct = q->content_type;
	if (!ct && q->body)
		ct = "application/json";
	if (ct) {
		snprintf(p->ct, sizeof(p->ct), "Content-Type:%s%s", *ct ? " " : "", ct);
		p->list = curl_slist_append(p->list, p->ct);
	}
	if (q->auth) {
		snprintf(p->auth, sizeof(p->auth), "Authorization: %s", q->auth);
		p->list = curl_slist_append(p->list, p->auth);
	}
	/* The body goes out with the headers unless a test asks for 100-continue. */
	p->list = curl_slist_append(p->list, "Expect:");
	for (size_t i = 0; q->headers && q->headers[i]; i++)
		p->list = curl_slist_append(p->list, q->headers[i]);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, p->list);
}

static void finish(struct prepared *p)
{
	curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &p->r->status);
	curl_easy_cleanup(p->h);
	curl_slist_free_all(p->list);
}

static void request(struct fx *fx, const struct req *q, struct resp *r)
{
	struct prepared p;
	prepare(&p, fx, q, r);
	int64_t t0 = clock_mono_ms();
	r->rc = curl_easy_perform(p.h);
	r->elapsed_ms = clock_mono_ms() - t0;
	finish(&p);
}

static void resp_free(struct resp *r)
{
	tbuf_free(&r->body);
	tbuf_free(&r->headers);
}

/* Value of a response header (last response, case-insensitive name) or NULL; static buffer. */
static const char *header(struct resp *r, const char *name)
{
	static char value[512];
	const char *text = tbuf_cstr(&r->headers);
	/* only the final response's headers */
	const char *start = text, *p;
	while ((p = strstr(start + 1, "\r\n\r\nHTTP/")) != NULL)
		start = p + 4;
	size_t nlen = strlen(name);
	for (const char *line = start; *line;) {
		const char *eol = strstr(line, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ')
				v++;
			snprintf(value, sizeof(value), "%.*s", (int)(eol - v), v);
			return value;
		}
		line = eol + 2;
	}
	return NULL;
}

static const char *body(struct resp *r)
{
	return tbuf_cstr(&r->body);
}

/* One request; asserts status, and (when given) body and Content-Type exactly. */
static void expect(struct fx *fx, const struct req *q, long status, const char *want_body,
		   const char *want_type)
{
	struct resp r;
	request(fx, q, &r);
	if (r.rc != CURLE_OK)
		fail_msg("%s %s: %s", q->method ? q->method : "?", q->path,
			 curl_easy_strerror(r.rc));
	if (r.status != status)
		fail_msg("%s %s: status %ld, want %ld (body %s)", q->method ? q->method : "",
			 q->path, r.status, status, body(&r));
	if (want_body)
		assert_string_equal(body(&r), want_body);
	if (want_type) {
		const char *ct = header(&r, "Content-Type");
		assert_non_null(ct);
		assert_string_equal(ct, want_type);
	}
	resp_free(&r);
}

static bool metrics_has_line(const char *line)
{
	char *text = metrics_render();
	assert_non_null(text);
	size_t n = strlen(line);
	bool found = false;
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) {
			found = true;
			break;
		}
	}
	free(text);
	return found;
}

#define assert_metric(line)                                                                        \
	do {                                                                                       \
		if (!metrics_has_line(line))                                                       \
			fail_msg("metric line missing: %s", line);                                 \
	} while (0)

/* ---- content type rule ------------------------------------------------------------------- */

static void test_content_type_rule(void **state)
{
	const char *yes[] = { "application/json",
			      "application/json; charset=utf-8",
			      "APPLICATION/JSON",
			      "Application/Json;charset=UTF-8",
			      "text/json",
			      "application/vnd.api+json",
			      "application/problem+JSON ; x=y",
			      "  application/json  ",
			      "application/json;" };
	const char *no[] = { NULL,
			     "",
			     "text/plain",
			     "application/jsonx",
			     "application/x-json",
			     "json",
			     "/json",
			     "application/",
			     "application/+json",
			     "application/json text",
			     "application json",
			     "application/js on",
			     "multipart/form-data; boundary=json" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!http_content_type_is_json(yes[i]))
			fail_msg("refused: %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (http_content_type_is_json(no[i]))
			fail_msg("accepted: %s", no[i] ? no[i] : "(null)");
}

static void test_default_settings(void **state)
{
	struct fx *fx = *state;
	struct http_source_settings s;
	http_source_settings_default(&s);
	assert_int_equal(s.thread_pool, 2);
	assert_int_equal(s.connection_limit, 512);
	assert_int_equal(s.idle_timeout_s, 15);
	assert_int_equal(s.admit_wait_ms, 5000);
	assert_int_equal(s.max_pings, 32);
	const struct http_source_settings *used = http_source_settings(fx->src);
	assert_memory_equal(used, &s, sizeof(s));
}

/* ---- routing ---------------------------------------------------------------------------- */

static void test_unknown_paths_404(void **state)
{
	struct fx *fx = *state;
	const char *paths[] = { "/nope",
				"/api/events/",
				"/health/",
				"/API/events",
				"//health",
				"/api/heartbeats",
				"/api/heartbeats/",
				"/api/heartbeats/a/b",
				"/api/heartbeats/a/",
				"/api/heartbeats/%zz",
				"/api/heartbeats/%00",
				"/metrics/x",
				"/ready.json",
				"/api" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct req q = { .path = paths[i] };
		struct resp r;
		request(fx, &q, &r);
		if (r.status != 404)
			fail_msg("GET %s: %ld", paths[i], r.status);
		assert_string_equal(body(&r), "");
		assert_null(header(&r, "Content-Type"));
		resp_free(&r);
	}
	struct req post = { .path = "/api/event", .body = "{}" };
	expect(fx, &post, 404, "", NULL);
	struct req del = { .method = "DELETE", .path = "/api/heartbeats/a/b" };
	expect(fx, &del, 404, "", NULL);
	/* the query string is ignored */
	struct req q = { .path = "/health?x=1&y" };
	expect(fx, &q, 204, "", NULL);
	struct req q2 = { .path = "/api/events?debug=1", .body = "{\"a\":1}" };
	expect(fx, &q2, 200, "{\"a\":1}", "application/json");
	assert_int_equal(fake_admitted(fx->fi), 1);
	assert_metric("ilagent_http_requests_total{route=\"other\",code=\"404\"} 16");
}

static void check_405(struct fx *fx, const char *method, const char *path, const char *allow)
{
	struct req q = { .method = method, .path = path };
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0)
		q.body = "{}";
	struct resp r;
	request(fx, &q, &r);
	if (r.status != 405)
		fail_msg("%s %s: %ld", method, path, r.status);
	assert_string_equal(body(&r), "");
	const char *a = header(&r, "Allow");
	assert_non_null(a);
	assert_string_equal(a, allow);
	resp_free(&r);
}

static void test_method_not_allowed_405(void **state)
{
	struct fx *fx = *state;
	const char *get_routes[] = { "/", "/health", "/ready", "/metrics", "/api/heartbeats/k1" };
	const char *bad_for_get[] = { "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
	for (size_t i = 0; i < 5; i++)
		for (size_t m = 0; m < 5; m++)
			check_405(fx, bad_for_get[m], get_routes[i], "GET, HEAD");
	const char *post_routes[] = { "/api/events", "/api/events/batch" };
	const char *bad_for_post[] = { "GET", "HEAD", "PUT", "DELETE", "OPTIONS" };
	for (size_t i = 0; i < 2; i++)
		for (size_t m = 0; m < 5; m++)
			check_405(fx, bad_for_post[m], post_routes[i], "POST");
	assert_int_equal(fake_admitted(fx->fi), 0);
	assert_int_equal(fake_ilert_count(fx->ilert), 0);
	assert_metric("ilagent_http_requests_total{route=\"/api/events\",code=\"405\"} 5");
	assert_metric(
		"ilagent_http_requests_total{route=\"/api/heartbeats/{key}\",code=\"405\"} 5");
}

static void test_root_health_ready_metrics(void **state)
{
	struct fx *fx = *state;
	struct req root = { .path = "/" };
	expect(fx, &root, 200, "ilagent/" ILAGENT_VERSION, "text/plain; charset=utf-8");
	struct req head = { .method = "HEAD", .path = "/" };
	struct resp r;
	request(fx, &head, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(body(&r), "");
	assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
	char len[16];
	snprintf(len, sizeof(len), "%zu", strlen("ilagent/" ILAGENT_VERSION));
	assert_string_equal(header(&r, "Content-Length"), len);
	resp_free(&r);

	struct req health = { .path = "/health" };
	expect(fx, &health, 204, "", NULL);
	struct req hhead = { .method = "HEAD", .path = "/health" };
	expect(fx, &hhead, 204, "", NULL);
	struct req ready = { .path = "/ready" };
	expect(fx, &ready, 204, "", NULL);
	struct req rhead = { .method = "HEAD", .path = "/ready" };
	expect(fx, &rhead, 204, "", NULL);

	struct req metrics = { .path = "/metrics" };
	request(fx, &metrics, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(body(&r), "# TYPE ilagent_http_requests_total counter\n"));
	assert_non_null(strstr(body(&r),
			       "ilagent_http_requests_total{route=\"/health\",code=\"204\"} 2\n"));
	resp_free(&r);
	struct req mhead = { .method = "HEAD", .path = "/metrics" };
	request(fx, &mhead, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(body(&r), "");
	resp_free(&r);
	assert_metric("ilagent_http_requests_total{route=\"/\",code=\"200\"} 2");
	assert_metric("ilagent_http_requests_total{route=\"/ready\",code=\"204\"} 2");
	assert_metric("ilagent_http_requests_total{route=\"/metrics\",code=\"200\"} 2");
}

static void test_ready_and_health_503(void **state)
{
	struct fx *fx = *state;
	struct req ready = { .path = "/ready" };
	readiness_queue_set(true, NULL, 1000, 1000);
	expect(fx, &ready, 503,
	       "{\"component\":\"queue\",\"queued\":1000,\"max_queue\":1000,\"error\":\"queue "
	       "full\"}",
	       "application/json");
	struct req rhead = { .method = "HEAD", .path = "/ready" };
	struct resp r;
	request(fx, &rhead, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(body(&r), "");
	assert_string_equal(header(&r, "Content-Type"), "application/json");
	resp_free(&r);
	readiness_queue_set(false, "database error: disk I/O error", 7, 1000);
	expect(fx, &ready, 503,
	       "{\"component\":\"queue\",\"queued\":7,\"max_queue\":1000,\"error\":\"database "
	       "error: disk I/O error\"}",
	       "application/json");
	readiness_queue_set(false, NULL, 7, 1000);
	expect(fx, &ready, 204, "", NULL);

	struct req health = { .path = "/health" };
	expect(fx, &health, 204, "", NULL);
	readiness_set_shutting_down();
	expect(fx, &health, 503, "", NULL);
	struct req hhead = { .method = "HEAD", .path = "/health" };
	expect(fx, &hhead, 503, "", NULL);
	expect(fx, &ready, 503, "{\"component\":\"daemon\",\"error\":\"shutting down\"}",
	       "application/json");
	assert_metric("ilagent_http_requests_total{route=\"/health\",code=\"503\"} 2");
	assert_metric("ilagent_http_requests_total{route=\"/ready\",code=\"503\"} 4");
}

/* ---- authentication ------------------------------------------------------------------------ */

static void expect_401(struct fx *fx, const struct req *q)
{
	struct resp r;
	request(fx, q, &r);
	if (r.status != 401)
		fail_msg("%s %s auth '%s': %ld", q->method ? q->method : "GET", q->path,
			 q->auth ? q->auth : "(none)", r.status);
	const char *w = header(&r, "WWW-Authenticate");
	assert_non_null(w);
	assert_string_equal(w, "Bearer realm=\"ilagent\"");
	assert_string_equal(header(&r, "Content-Type"), "application/json");
	if (!q->method || strcmp(q->method, "HEAD") != 0)
		assert_string_equal(body(&r), "{\"error\":\"Unauthorized.\"}");
	resp_free(&r);
}

static void test_auth_required(void **state)
{
	struct fx *fx = *state;
	const char *bad[] = { NULL,
			      "Bearer wrong",
			      "Bearer s3cret-token-valu",
			      "Bearer s3cret-token-value2",
			      "Basic s3cret-token-value",
			      "s3cret-token-value",
			      "Bearer",
			      "Bearer ",
			      "Bearers3cret-token-value",
			      "Token s3cret-token-value" };
	const char *paths[] = { "/", "/metrics", "/api/heartbeats/il1hbt123" };
	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		for (size_t i = 0; i < 3; i++) {
			struct req q = { .path = paths[i], .auth = bad[b] };
			expect_401(fx, &q);
			struct req h = { .method = "HEAD", .path = paths[i], .auth = bad[b] };
			expect_401(fx, &h);
		}
		struct req ev = { .path = "/api/events", .body = "{}", .auth = bad[b] };
		expect_401(fx, &ev);
		/* authentication comes before the content type and size checks */
		struct req batch = { .path = "/api/events/batch",
				     .body = "x",
				     .content_type = "text/plain",
				     .auth = bad[b] };
		expect_401(fx, &batch);
	}
	assert_int_equal(fake_admitted(fx->fi), 0);
	assert_int_equal(fake_ilert_count(fx->ilert), 0);

	/* never on /health and /ready; routing comes first */
	struct req health = { .path = "/health" };
	expect(fx, &health, 204, "", NULL);
	struct req ready = { .path = "/ready" };
	expect(fx, &ready, 204, "", NULL);
	struct req nf = { .path = "/nope" };
	expect(fx, &nf, 404, "", NULL);
	struct req m405 = { .method = "DELETE", .path = "/api/events" };
	expect(fx, &m405, 405, "", NULL);

	/* the scheme is case-insensitive */
	const char *good[] = { "Bearer s3cret-token-value", "bearer s3cret-token-value",
			       "BEARER   s3cret-token-value" };
	for (size_t g = 0; g < 3; g++) {
		struct req root = { .path = "/", .auth = good[g] };
		expect(fx, &root, 200, "ilagent/" ILAGENT_VERSION, NULL);
		struct req ev = { .path = "/api/events", .body = "{\"g\":1}", .auth = good[g] };
		expect(fx, &ev, 200, "{\"g\":1}", NULL);
	}
	struct req m = { .path = "/metrics", .auth = good[0] };
	expect(fx, &m, 200, NULL, "text/plain; version=0.0.4; charset=utf-8");
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"unauthorized\"} 20");
	assert_metric("ilagent_http_requests_total{route=\"/\",code=\"401\"} 20");
}

/* ---- events ------------------------------------------------------------------------------ */

static void test_event_accepted_echo(void **state)
{
	struct fx *fx = *state;
	const char *echo = "{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\","
			   "\"details\":null,\"alertKey\":\"a\",\"priority\":null,\"images\":null,"
			   "\"links\":null,\"customDetails\":null}";
	fake_script(fx->fi,
		    (struct outcome){ .status = TICKET_ACCEPTED, .echo = echo, .delay_ms = 30 });
	const char *in = "{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\","
			 "\"alertKey\":\" a \"}";
	int64_t before = clock_mono_ns();
	struct req q = { .path = "/api/events", .body = in };
	expect(fx, &q, 200, echo, "application/json");
	assert_int_equal(fake_admitted(fx->fi), 1);
	assert_int_equal(fx->fi->last_source, SOURCE_HTTP);
	assert_int_equal(fx->fi->last_kind, MSG_HTTP_EVENT);
	assert_string_equal(fx->fi->last_body, in);
	assert_false(fx->fi->last_retry_on_store_error);
	assert_true(fx->fi->last_had_ticket);
	assert_true(fx->fi->last_admitted_ns >= before &&
		    fx->fi->last_admitted_ns <= clock_mono_ns());

	/* a ticket completed on the admitting thread itself */
	fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED,
					      .echo = "{\"sync\":true}",
					      .sync = true });
	expect(fx, &q, 200, "{\"sync\":true}", "application/json");
	/* an empty body is handed on (normalize rejects it) */
	fake_script(fx->fi,
		    (struct outcome){ .status = TICKET_REJECTED,
				      .error = "Invalid JSON: '[' or '{' expected near end of file",
				      .error_index = -1 });
	struct req empty = { .path = "/api/events", .body = "", .body_len = 0 };
	struct resp r;
	request(fx, &empty, &r);
	assert_int_equal(r.status, 400);
	assert_string_equal(body(&r),
			    "{\"error\":\"Invalid JSON: '[' or '{' expected near end of file\"}");
	resp_free(&r);
	assert_string_equal(fx->fi->last_body, "");
	assert_metric("ilagent_http_requests_total{route=\"/api/events\",code=\"200\"} 2");
	assert_metric("ilagent_received_total{source=\"http\"} 3");
}

static void test_batch_accepted(void **state)
{
	struct fx *fx = *state;
	fake_script(fx->fi,
		    (struct outcome){ .status = TICKET_ACCEPTED, .accepted = 3, .delay_ms = 10 });
	const char *in = "[{\"a\":1},{\"a\":2},{\"a\":3}]";
	struct req q = { .path = "/api/events/batch", .body = in };
	expect(fx, &q, 200, "{\"accepted\":3}", "application/json");
	assert_int_equal(fx->fi->last_kind, MSG_HTTP_BATCH);
	assert_string_equal(fx->fi->last_body, in);
	assert_false(fx->fi->last_retry_on_store_error);
	fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED, .accepted = 0 });
	struct req e = { .path = "/api/events/batch", .body = "[]" };
	expect(fx, &e, 200, "{\"accepted\":0}", "application/json");
	assert_metric("ilagent_http_requests_total{route=\"/api/events/batch\",code=\"200\"} 2");
	assert_metric("ilagent_received_total{source=\"http\"} 3");
}

static void test_rejected_bodies(void **state)
{
	struct fx *fx = *state;
	fake_script(fx->fi, (struct outcome){ .status = TICKET_REJECTED,
					      .error = "Missing field 'summary'.",
					      .error_index = -1 });
	struct req q = { .path = "/api/events", .body = "{\"x\":1}" };
	expect(fx, &q, 400, "{\"error\":\"Missing field 'summary'.\"}", "application/json");
	/* error texts are escaped */
	fake_script(fx->fi, (struct outcome){ .status = TICKET_REJECTED,
					      .error = "Invalid JSON: \"x\" \\ \n tab\t",
					      .error_index = -1 });
	expect(fx, &q, 400, "{\"error\":\"Invalid JSON: \\\"x\\\" \\\\ \\n tab\\t\"}",
	       "application/json");
	/* batch: the full text plus the index */
	fake_script(fx->fi, (struct outcome){ .status = TICKET_REJECTED,
					      .error = "Event at index 2: Missing field 'summary'.",
					      .error_index = 2 });
	struct req b = { .path = "/api/events/batch", .body = "[{},{},{}]" };
	expect(fx, &b, 400,
	       "{\"error\":\"Event at index 2: Missing field 'summary'.\",\"index\":2}",
	       "application/json");
	fake_script(fx->fi, (struct outcome){
				    .status = TICKET_REJECTED,
				    .error = "Event at index 0: Invalid type for field 'summary'.",
				    .error_index = 0 });
	expect(fx, &b, 400,
	       "{\"error\":\"Event at index 0: Invalid type for field 'summary'.\",\"index\":0}",
	       "application/json");
	fake_script(fx->fi, (struct outcome){ .status = TICKET_REJECTED,
					      .error = "Request body must be a JSON array.",
					      .error_index = -1 });
	expect(fx, &b, 400, "{\"error\":\"Request body must be a JSON array.\"}",
	       "application/json");
	fake_script(fx->fi,
		    (struct outcome){ .status = TICKET_REJECTED,
				      .error = "Batch must not contain more than 1000 events.",
				      .error_index = -1 });
	expect(fx, &b, 400, "{\"error\":\"Batch must not contain more than 1000 events.\"}",
	       "application/json");
	assert_metric("ilagent_http_requests_total{route=\"/api/events/batch\",code=\"400\"} 4");
}

static void test_store_error_and_ticket_503(void **state)
{
	struct fx *fx = *state;
	struct req q = { .path = "/api/events", .body = "{}" };
	struct req b = { .path = "/api/events/batch", .body = "[{}]" };
	fake_script(fx->fi, (struct outcome){ .status = TICKET_STORE_ERROR, .delay_ms = 5 });
	expect(fx, &q, 500, "{\"error\":\"Internal error occurred.\"}", "application/json");
	fake_script(fx->fi, (struct outcome){ .status = TICKET_STORE_ERROR });
	expect(fx, &b, 500, "{\"error\":\"Internal error occurred.\"}", "application/json");

	fake_script(fx->fi, (struct outcome){ .status = TICKET_QUEUE_FULL });
	struct resp r;
	request(fx, &q, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(body(&r), "{\"error\":\"Queue is full, retry later.\"}");
	assert_string_equal(header(&r, "Retry-After"), "5");
	assert_string_equal(header(&r, "Content-Type"), "application/json");
	resp_free(&r);

	fake_script(fx->fi, (struct outcome){ .status = TICKET_SHUTTING_DOWN, .sync = true });
	request(fx, &b, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(body(&r), "{\"error\":\"Shutting down.\"}");
	assert_null(header(&r, "Retry-After"));
	resp_free(&r);
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"queue_full\"} 1");
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"shutting_down\"} 1");
}

static void test_intake_state(void **state)
{
	struct fx *fx = *state;
	struct req q = { .path = "/api/events", .body = "{}" };
	struct req b = { .path = "/api/events/batch", .body = "[]" };
	/* a body over the limit and a wrong content type: the state check comes first */
	char big[400];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct req big_q = { .path = "/api/events", .body = big, .content_type = "text/plain" };

	fake_set_state(fx->fi, INTAKE_PAUSED);
	struct req *all[] = { &q, &b, &big_q };
	for (int i = 0; i < 3; i++) {
		struct resp r;
		request(fx, all[i], &r);
		assert_int_equal(r.status, 503);
		assert_string_equal(body(&r), "{\"error\":\"Queue is full, retry later.\"}");
		assert_string_equal(header(&r, "Retry-After"), "5");
		assert_string_equal(header(&r, "Content-Type"), "application/json");
		resp_free(&r);
	}
	/* other routes are not affected by a pause */
	struct req hb = { .path = "/api/heartbeats/il1hbtpaused" };
	expect(fx, &hb, 202, "{}", "application/json");
	struct req root = { .path = "/" };
	expect(fx, &root, 200, NULL, NULL);

	fake_set_state(fx->fi, INTAKE_CLOSED);
	for (int i = 0; i < 3; i++) {
		struct resp r;
		request(fx, all[i], &r);
		assert_int_equal(r.status, 503);
		assert_string_equal(body(&r), "{\"error\":\"Shutting down.\"}");
		assert_null(header(&r, "Retry-After"));
		resp_free(&r);
	}
	expect(fx, &hb, 503, "{\"error\":\"Shutting down.\"}", "application/json");
	struct req hbh = { .method = "HEAD", .path = "/api/heartbeats/il1hbtpaused" };
	expect(fx, &hbh, 503, "", "application/json");
	expect(fx, &root, 200, NULL, NULL);
	assert_int_equal(fake_admitted(fx->fi), 0);
	assert_int_equal(fake_ilert_count(fx->ilert), 1);
	fake_set_state(fx->fi, INTAKE_OPEN);
	expect(fx, &q, 200, "{}", NULL);
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"queue_full\"} 3");
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"shutting_down\"} 3");
}

/* ---- body size --------------------------------------------------------------------------------
 */

static char *filled(size_t n, char c)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void expect_413(struct fx *fx, const struct req *q)
{
	struct resp r;
	request(fx, q, &r);
	if (r.rc != CURLE_OK)
		fail_msg("%s (%zu bytes%s): %s", q->path, q->body_len,
			 q->chunked ? ", chunked" : "", curl_easy_strerror(r.rc));
	assert_int_equal(r.status, 413);
	assert_string_equal(body(&r), "{\"error\":\"Payload too large.\"}");
	assert_string_equal(header(&r, "Content-Type"), "application/json");
	resp_free(&r);
}

static void test_too_large_by_content_length(void **state)
{
	struct fx *fx = *state;
	char *body100 = filled(100, ' ');
	body100[0] = '{';
	body100[99] = '}';
	struct req ok = { .path = "/api/events", .body = body100 };
	expect(fx, &ok, 200, body100, NULL);
	char *body101 = filled(101, ' ');
	struct req big = { .path = "/api/events", .body = body101, .body_len = 101 };
	expect_413(fx, &big);
	/* with a wrong content type too: the size check comes first */
	big.content_type = "text/plain";
	expect_413(fx, &big);
	/* a client waiting for 100-continue gets the answer before sending anything */
	char *huge = filled(300000, 'x');
	const char *expect100[] = { "Expect: 100-continue", NULL };
	struct req h = {
		.path = "/api/events", .body = huge, .body_len = 300000, .headers = expect100
	};
	expect_413(fx, &h);

	/* the batch route has its own limit */
	char *body200 = filled(200, ' ');
	body200[0] = '[';
	body200[199] = ']';
	fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED, .accepted = 0 });
	struct req bok = { .path = "/api/events/batch", .body = body200 };
	expect(fx, &bok, 200, "{\"accepted\":0}", NULL);
	char *body201 = filled(201, ' ');
	struct req bbig = { .path = "/api/events/batch", .body = body201, .body_len = 201 };
	expect_413(fx, &bbig);
	assert_int_equal(fake_admitted(fx->fi), 2);
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"too_large\"} 4");
	assert_metric("ilagent_http_requests_total{route=\"/api/events\",code=\"413\"} 3");
	free(body100);
	free(body101);
	free(huge);
	free(body200);
	free(body201);
}

static void test_too_large_while_receiving(void **state)
{
	struct fx *fx = *state;
	char *body100 = filled(100, ' ');
	body100[0] = '{';
	body100[99] = '}';
	struct req ok = { .path = "/api/events", .body = body100, .chunked = true };
	expect(fx, &ok, 200, body100, "application/json");
	assert_string_equal(fx->fi->last_body, body100);
	char *body101 = filled(101, ' ');
	struct req big = {
		.path = "/api/events", .body = body101, .body_len = 101, .chunked = true
	};
	expect_413(fx, &big);
	char *body5k = filled(5000, 'y');
	struct req big2 = { .path = "/api/events/batch",
			    .body = body5k,
			    .body_len = 5000,
			    .chunked = true,
			    .content_type = "text/plain" };
	expect_413(fx, &big2);
	assert_int_equal(fake_admitted(fx->fi), 1);
	/* a body far beyond the limit is not read to its end: answered 413 at once, then the
	 * connection is closed */
	char *endless = filled(4 * 1024 * 1024, 'z');
	struct req e = {
		.path = "/api/events", .body = endless, .body_len = 4 * 1024 * 1024, .chunked = true
	};
	expect_413(fx, &e);
	assert_int_equal(fake_admitted(fx->fi), 1);
	/* the server still works */
	expect(fx, &ok, 200, body100, NULL);
	free(body100);
	free(body101);
	free(body5k);
	free(endless);
}

/* ---- content type ------------------------------------------------------------------------------
 */

static void test_content_types(void **state)
{
	struct fx *fx = *state;
	const char *yes[] = { "application/json",         "application/json; charset=utf-8",
			      "APPLICATION/JSON",         "text/json",
			      "application/vnd.api+json", "application/problem+json;x=y" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		struct req q = { .path = "/api/events",
				 .body = "{\"ok\":1}",
				 .content_type = yes[i] };
		expect(fx, &q, 200, "{\"ok\":1}", "application/json");
		fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED, .accepted = 1 });
		struct req b = { .path = "/api/events/batch",
				 .body = "[{}]",
				 .content_type = yes[i] };
		expect(fx, &b, 200, "{\"accepted\":1}", "application/json");
	}
	int admitted = fake_admitted(fx->fi);
	assert_int_equal(admitted, 12);
	const char *no[] = { "",
			     "text/plain",
			     "application/jsonx",
			     "application/x-www-form-urlencoded",
			     "json",
			     "application/+json" };
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		struct req q = { .path = "/api/events", .body = "{}", .content_type = no[i] };
		expect(fx, &q, 400, "{\"error\":\"Content type must be application/json.\"}",
		       "application/json");
		struct req b = { .path = "/api/events/batch", .body = "[]", .content_type = no[i] };
		expect(fx, &b, 400, "{\"error\":\"Content type must be application/json.\"}",
		       "application/json");
	}
	assert_int_equal(fake_admitted(fx->fi), admitted);
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"invalid\"} 12");
}

/* ---- busy ----------------------------------------------------------------------------------- */

struct bg_request {
	struct fx *fx;
	struct req q;
	struct resp r;
	pthread_t thread;
};

static void *bg_main(void *arg)
{
	struct bg_request *b = arg;
	request(b->fx, &b->q, &b->r);
	return NULL;
}

static void bg_start(struct bg_request *b, struct fx *fx, const struct req *q)
{
	b->fx = fx;
	b->q = *q;
	assert_int_equal(pthread_create(&b->thread, NULL, bg_main, b), 0);
}

static void bg_join(struct bg_request *b)
{
	pthread_join(b->thread, NULL);
}

static int setup_short_wait(void **state)
{
	struct http_source_settings s;
	http_source_settings_default(&s);
	s.admit_wait_ms = 300;
	*state = fx_new(NULL, &s);
	return 0;
}

static void test_busy_after_admission_wait(void **state)
{
	struct fx *fx = *state;
	fake_set_refuse(fx->fi, -1);
	struct req q = { .path = "/api/events", .body = "{}" };
	struct bg_request bg;
	bg_start(&bg, fx, &q);
	/* a waiting request holds no server thread */
	usleep(100 * 1000);
	struct req health = { .path = "/health" };
	struct resp h;
	request(fx, &health, &h);
	assert_int_equal(h.status, 204);
	assert_true(h.elapsed_ms < 150);
	resp_free(&h);
	bg_join(&bg);
	assert_int_equal(bg.r.status, 503);
	assert_string_equal(body(&bg.r), "{\"error\":\"Busy, retry later.\"}");
	assert_string_equal(header(&bg.r, "Retry-After"), "1");
	assert_string_equal(header(&bg.r, "Content-Type"), "application/json");
	assert_true(bg.r.elapsed_ms >= 290);
	assert_true(bg.r.elapsed_ms < 1500);
	resp_free(&bg.r);
	assert_true(fake_admit_calls(fx->fi) > 10); /* retried, not waited once */
	assert_int_equal(fake_admitted(fx->fi), 0);

	/* room appears within the wait: admitted and answered normally */
	fake_set_refuse(fx->fi, 20);
	struct req b = { .path = "/api/events/batch", .body = "[{}]" };
	fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED, .accepted = 1 });
	expect(fx, &b, 200, "{\"accepted\":1}", NULL);
	assert_int_equal(fake_admitted(fx->fi), 1);
	assert_int_equal(fx->fi->last_kind, MSG_HTTP_BATCH);
	assert_metric("ilagent_rejected_total{source=\"http\",reason=\"busy\"} 1");
}

/* ---- heartbeat proxy ------------------------------------------------------------------------ */

static void test_heartbeat_proxy(void **state)
{
	struct fx *fx = *state;
	struct req q = { .path = "/api/heartbeats/il1hbtABC" };
	expect(fx, &q, 202, "{}", "application/json");
	struct fake_request *fr = fake_ilert_request(fx->ilert, 0);
	assert_non_null(fr);
	assert_string_equal(fr->method, "GET");
	assert_string_equal(fr->path, "/api/heartbeats/il1hbtABC");
	char *auth = fake_request_header(fr, "Authorization");
	assert_null(auth);
	fake_request_free(fr);

	/* other keys: HEAD on the beat base; the segment is percent-decoded and re-encoded */
	struct req p = { .method = "HEAD", .path = "/api/heartbeats/ab%2Fc%20d+e" };
	struct resp r;
	request(fx, &p, &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(body(&r), "");
	assert_string_equal(header(&r, "Content-Type"), "application/json");
	resp_free(&r);
	fr = fake_ilert_request(fx->ilert, 1);
	assert_non_null(fr);
	assert_string_equal(fr->method, "HEAD");
	assert_string_equal(fr->target, "/api/pings/ab%2Fc%20d%2Be");
	auth = fake_request_header(fr, "Authorization");
	assert_null(auth);
	fake_request_free(fr);

	struct fake_reply fail = { .status = 404 };
	fake_ilert_push(fx->ilert, &fail);
	struct req f = { .path = "/api/heartbeats/il1hbtXYZ" };
	expect(fx, &f, 500, "Failed to proxy heartbeat", "text/plain");
	struct fake_reply fail5 = { .status = 503 };
	fake_ilert_push(fx->ilert, &fail5);
	struct req fh = { .method = "HEAD", .path = "/api/heartbeats/il1hbtXYZ" };
	expect(fx, &fh, 500, "", "text/plain");
	/* a transport error */
	struct fake_reply reset = { .reset = true, .close = true };
	fake_ilert_push_n(fx->ilert, &reset, 2);
	struct req t = { .path = "/api/heartbeats/k2" };
	expect(fx, &t, 500, "Failed to proxy heartbeat", "text/plain");
	assert_int_equal(fake_admitted(fx->fi), 0);
	assert_metric("ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"success\"} 2");
	assert_metric("ilagent_heartbeat_pings_total{origin=\"proxy\",outcome=\"failure\"} 3");
	assert_metric("ilagent_ilert_requests_total{endpoint=\"heartbeats\",code=\"404\"} 1");
	assert_metric("ilagent_ilert_requests_total{endpoint=\"heartbeats\",code=\"503\"} 1");
	assert_metric("ilagent_ilert_requests_total{endpoint=\"pings\",code=\"network\"} 1");
	assert_metric(
		"ilagent_http_requests_total{route=\"/api/heartbeats/{key}\",code=\"202\"} 2");
	assert_metric(
		"ilagent_http_requests_total{route=\"/api/heartbeats/{key}\",code=\"500\"} 3");
}

struct multi_result {
	long status;
	struct tbuf body;
	struct tbuf headers;
};

static void test_heartbeat_concurrency_limit(void **state)
{
	struct fx *fx = *state;
	struct fake_reply slow = { .status = 202, .body = "{}", .delay_ms = 600 };
	fake_ilert_set_default(fx->ilert, &slow);
	enum { N = 33 };
	CURLM *m = curl_multi_init();
	CURL *h[N];
	struct multi_result res[N];
	char url[128];
	for (int i = 0; i < N; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		tbuf_init(&res[i].body);
		tbuf_init(&res[i].headers);
		h[i] = curl_easy_init();
		snprintf(url, sizeof(url), "%s/api/heartbeats/il1hbt%02d", fx->base, i);
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &res[i].body);
		curl_easy_setopt(h[i], CURLOPT_HEADERFUNCTION, collect);
		curl_easy_setopt(h[i], CURLOPT_HEADERDATA, &res[i].headers);
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(h[i], CURLOPT_NOPROXY, "*");
		curl_multi_add_handle(m, h[i]);
	}
	int64_t t0 = clock_mono_ms();
	int running = 1;
	bool probed = false;
	int64_t health_ms = -1;
	while (running) {
		curl_multi_perform(m, &running);
		if (!probed && clock_mono_ms() - t0 > 300) {
			/* pings in flight do not delay other requests */
			probed = true;
			assert_true(fake_ilert_count(fx->ilert) >= 1);
			struct req hq = { .path = "/health" };
			struct resp hr;
			request(fx, &hq, &hr);
			assert_int_equal(hr.status, 204);
			health_ms = hr.elapsed_ms;
			resp_free(&hr);
		}
		curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	int ok = 0, busy = 0;
	for (int i = 0; i < N; i++) {
		long status = 0;
		curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &status);
		if (status == 202) {
			ok++;
			assert_string_equal(tbuf_cstr(&res[i].body), "{}");
		} else if (status == 503) {
			busy++;
			assert_string_equal(
				tbuf_cstr(&res[i].body),
				"{\"error\":\"Too many concurrent heartbeat requests.\"}");
			struct resp tmp = { .headers = res[i].headers };
			assert_string_equal(header(&tmp, "Retry-After"), "1");
			assert_string_equal(header(&tmp, "Content-Type"), "application/json");
		} else {
			fail_msg("ping %d: status %ld", i, status);
		}
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		tbuf_free(&res[i].body);
		tbuf_free(&res[i].headers);
	}
	curl_multi_cleanup(m);
	assert_int_equal(ok, 32);
	assert_int_equal(busy, 1);
	assert_true(probed);
	assert_true(health_ms >= 0 && health_ms < 200);
	assert_int_equal(fake_ilert_count(fx->ilert), 32);
	/* the slots are free again */
	struct fake_reply quick = { .status = 202, .body = "{}" };
	fake_ilert_set_default(fx->ilert, &quick);
	struct req q = { .path = "/api/heartbeats/il1hbtagain" };
	expect(fx, &q, 202, "{}", NULL);
}

/* ---- listener ---------------------------------------------------------------------------- */

static void test_bind_failure_message(void **state)
{
	struct fx *fx = *state;
	/* fx->cfg.port is bound by the running source */
	struct config cfg = fx->cfg;
	struct intake in = { .ctx = fx->fi, .admit = fake_admit, .state = fake_state };
	struct http_source *src = (struct http_source *)0x1;
	char msg[256] = "";
	int err = http_source_start(&cfg, &in, &src, msg, sizeof(msg));
	assert_int_equal(err, ILA_ERR_IO);
	assert_null(src);
	char want[256];
	snprintf(want, sizeof(want),
		 "Failed to bind to http port 127.0.0.1:%d: Address already in use", cfg.port);
	assert_string_equal(msg, want);

	/* an address this host does not have */
	cfg.bind = "192.0.2.1";
	err = http_source_start(&cfg, &in, &src, msg, sizeof(msg));
	assert_int_equal(err, ILA_ERR_IO);
	snprintf(want, sizeof(want),
		 "Failed to bind to http port 192.0.2.1:%d: Cannot assign requested address",
		 cfg.port);
	assert_string_equal(msg, want);

	/* IPv6 literals */
	int s6 = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool have_v6 = s6 >= 0 && bind(s6, (struct sockaddr *)&a6, sizeof(a6)) == 0;
	if (s6 >= 0)
		close(s6);
	if (!have_v6)
		return;
	cfg.bind = "::1";
	cfg.port = test_free_port();
	err = http_source_start(&cfg, &in, &src, msg, sizeof(msg));
	assert_int_equal(err, 0);
	struct http_source *second = NULL;
	err = http_source_start(&cfg, &in, &second, msg, sizeof(msg));
	assert_int_equal(err, ILA_ERR_IO);
	snprintf(want, sizeof(want), "Failed to bind to http port [::1]:%d: Address already in use",
		 cfg.port);
	assert_string_equal(msg, want);
	CURL *h = curl_easy_init();
	char url[64];
	snprintf(url, sizeof(url), "http://[::1]:%d/health", cfg.port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 204);
	curl_easy_cleanup(h);
	http_source_stop(src);
}

static int connect_raw(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Sends GET /health and reads one response; returns the status, 0 when the connection was
 * closed, -1 when nothing arrived within timeout_ms. */
static int raw_health(int fd, int timeout_ms)
{
	static const char rq[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
	if (send(fd, rq, sizeof(rq) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(rq) - 1))
		return 0;
	char buf[512];
	size_t got = 0;
	int64_t deadline = clock_mono_ms() + timeout_ms;
	while (got < sizeof(buf) - 1) {
		int left = (int)(deadline - clock_mono_ms());
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left) <= 0)
			return -1;
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n <= 0)
			return 0;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	int status = 0;
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

/* Waits until the peer closes fd; returns the ms waited, or -1 after timeout_ms. */
static int64_t wait_closed(int fd, int timeout_ms)
{
	int64_t t0 = clock_mono_ms();
	for (;;) {
		int left = timeout_ms - (int)(clock_mono_ms() - t0);
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left) <= 0)
			return -1;
		char c;
		ssize_t n = recv(fd, &c, 1, 0);
		if (n <= 0)
			return clock_mono_ms() - t0;
	}
}

static void test_connection_limit_512(void **state)
{
	struct fx *fx = *state;
	enum { LIMIT = 512 };
	static int fds[LIMIT];
	for (int i = 0; i < LIMIT; i++) {
		fds[i] = connect_raw(fx->cfg.port);
		/* each connection is being served */
		assert_int_equal(raw_health(fds[i], 2000), 204);
	}
	int extra = connect_raw(fx->cfg.port);
	int st = raw_health(extra, 200);
	if (st != 0 && st != -1) /* closed or never served */
		fail_msg("connection %d: status %d", LIMIT + 1, st);
	close(extra);
	close(fds[0]);
	/* a freed slot is usable again */
	int64_t t0 = clock_mono_ms();
	int again = -1;
	while (again != 204 && clock_mono_ms() - t0 < 2000) {
		int fd = connect_raw(fx->cfg.port);
		again = raw_health(fd, 300);
		close(fd);
	}
	assert_int_equal(again, 204);
	for (int i = 1; i < LIMIT; i++)
		close(fds[i]);
}

static int setup_idle(void **state)
{
	struct http_source_settings s;
	http_source_settings_default(&s);
	s.idle_timeout_s = 1;
	*state = fx_new(NULL, &s);
	return 0;
}

static void test_idle_timeout(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(http_source_settings(fx->src)->idle_timeout_s, 1);
	int fd = connect_raw(fx->cfg.port);
	assert_int_equal(raw_health(fd, 1000), 204);
	/* kept alive after an answer */
	assert_int_equal(raw_health(fd, 1000), 204);
	/* and a connection that never sends a request */
	int silent = connect_raw(fx->cfg.port);
	int64_t waited = wait_closed(fd, 3500);
	close(fd);
	if (waited < 500)
		fail_msg("closed after %lld ms", (long long)waited);
	waited = wait_closed(silent, 3500);
	close(silent);
	assert_true(waited >= 0);
}

/* ---- lifetimes ---------------------------------------------------------------------------- */

static void test_client_gone_before_completion(void **state)
{
	struct fx *fx = *state;
	for (int i = 0; i < 3; i++)
		fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED, .delay_ms = 150 });
	struct req q = { .path = "/api/events", .body = "{}", .timeout_ms = 40 };
	for (int i = 0; i < 3; i++) {
		struct resp r;
		request(fx, &q, &r);
		assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
		resp_free(&r);
	}
	/* the completions arrive after the clients left */
	usleep(250 * 1000);
	assert_int_equal(fake_admitted(fx->fi), 3);
	struct req ok = { .path = "/api/events", .body = "{\"after\":1}" };
	expect(fx, &ok, 200, "{\"after\":1}", NULL);
}

static void test_stop_answers_in_progress(void **state)
{
	struct fx *fx = *state;
	fake_script(fx->fi, (struct outcome){ .status = TICKET_ACCEPTED,
					      .echo = "{\"late\":1}",
					      .delay_ms = 400 });
	struct req q = { .path = "/api/events", .body = "{}" };
	struct bg_request commit;
	bg_start(&commit, fx, &q);
	struct fake_reply slow = { .status = 202, .delay_ms = 4000 };
	fake_ilert_set_default(fx->ilert, &slow);
	struct req hq = { .path = "/api/heartbeats/il1hbtstop" };
	struct bg_request ping;
	bg_start(&ping, fx, &hq);
	usleep(150 * 1000);
	int64_t t0 = clock_mono_ms();
	http_source_stop(fx->src);
	int64_t took = clock_mono_ms() - t0;
	fx->src = NULL;
	bg_join(&commit);
	bg_join(&ping);
	/* the admitted request was answered after its commit */
	assert_int_equal(commit.r.status, 200);
	assert_string_equal(body(&commit.r), "{\"late\":1}");
	/* the proxied ping was cut short */
	assert_int_equal(ping.r.status, 500);
	assert_string_equal(body(&ping.r), "Failed to proxy heartbeat");
	assert_true(took >= 200 && took < 3000);
	resp_free(&commit.r);
	resp_free(&ping.r);
	/* the port is closed */
	struct req health = { .path = "/health", .timeout_ms = 500 };
	struct resp r;
	request(fx, &health, &r);
	assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
	resp_free(&r);
}

static void test_stop_while_waiting_for_room(void **state)
{
	struct fx *fx = *state;
	fake_set_refuse(fx->fi, -1);
	struct req q = { .path = "/api/events", .body = "{}" };
	struct bg_request bg;
	bg_start(&bg, fx, &q);
	usleep(150 * 1000);
	http_source_stop(fx->src);
	fx->src = NULL;
	bg_join(&bg);
	assert_int_equal(bg.r.status, 503);
	assert_string_equal(body(&bg.r), "{\"error\":\"Shutting down.\"}");
	resp_free(&bg.r);
	assert_int_equal(fake_admitted(fx->fi), 0);
}

/* ---- access log -------------------------------------------------------------------------------
 */

static void test_access_log_masks_keys(void **state)
{
	struct fx *fx = *state;
	char *dir = test_mkdtemp();
	char path[512];
	snprintf(path, sizeof(path), "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	dup2(fd, 2);
	close(fd);
	log_setup(LOG_LVL_INFO, false);

	struct req hb = { .path = "/api/heartbeats/il1hbtSecretKey42" };
	expect(fx, &hb, 202, "{}", NULL);
	struct req bad = { .path = "/api/heartbeats/il1hbtSecretKey42/more" };
	expect(fx, &bad, 404, "", NULL);
	struct req ev = { .path = "/api/events", .body = "{}" };
	expect(fx, &ev, 200, "{}", NULL);

	fflush(stderr);
	log_setup(LOG_LVL_WARN, false);
	dup2(saved, 2);
	close(saved);
	char *text = test_read_file(path, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "SecretKey42"));
	assert_non_null(strstr(text, " INFO http: GET /api/heartbeats/il1h\xe2\x80\xa6 202 "));
	assert_non_null(strstr(text, " INFO http: GET /api/heartbeats/il1h\xe2\x80\xa6 404 "));
	assert_non_null(strstr(text, " INFO http: POST /api/events 200 "));
	const char *line = strstr(text, "POST /api/events 200 ");
	double ms = -1;
	assert_int_equal(sscanf(line, "POST /api/events 200 %lfms", &ms), 1);
	assert_true(ms >= 0 && ms < 5000);
	free(text);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	if (ilert_global_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_type_rule),
		cmocka_unit_test_setup_teardown(test_default_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_paths_404, setup, teardown),
		cmocka_unit_test_setup_teardown(test_method_not_allowed_405, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_health_ready_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_and_health_503, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_required, setup_token, teardown),
		cmocka_unit_test_setup_teardown(test_event_accepted_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_error_and_ticket_503, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intake_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_by_content_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_while_receiving, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_after_admission_wait, setup_short_wait,
						teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_proxy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_concurrency_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_failure_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit_512, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup_idle, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_before_completion, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_in_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_while_waiting_for_room, setup_short_wait,
						teardown),
		cmocka_unit_test_setup_teardown(test_access_log_masks_keys, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	ilert_global_cleanup();
	return rc;
}
