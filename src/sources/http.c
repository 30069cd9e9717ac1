/* The HTTP source (SPEC §10). One request context per HTTP request; a request that waits
 * for its commit, for room in the intake ring or for a proxied ping is a suspended
 * connection, and whoever ends the wait (pipeline stage, admission retry thread, ping
 * thread) stores the outcome in the context and resumes the connection; the server thread
 * then answers it.
 *
 * Choices libmicrohttpd 0.9.75 forces or suggests:
 * * A response cannot be queued while the body is being received. A body that turns out to
 *   be too large while arriving (no Content-Length) is therefore discarded unstored until it
 *   ends and then answered 413; beyond DISCARD_MAX_BYTES more the 413 is written to the
 *   socket directly and the connection closed, so a client cannot keep a server thread busy
 *   reading forever and still learns why.
 * * The listening socket is opened here so that a bind failure can name its reason.
 * * The URL is not unescaped by the server (identity unescape callback): the heartbeat key
 *   is one raw path segment, percent-decoded here, so "%2F" stays inside the key.
 *
 * A full intake ring: the server thread tries once; on failure the request is suspended and
 * handed to one admission retry thread, which retries every few milliseconds in arrival
 * order until admitted or until the admission wait (5 s) has passed (503 "Busy"). No server
 * thread ever sleeps, and the retry thread uses its own intake slot, so its attempts do not
 * compete with the server threads' rings.
 *
 * Proxied pings run on up to max_pings threads started on demand, each with its own ilert
 * client (keep-alive), so a slow ilert delays nothing but the pings themselves.
 *
 * Lifetime: a context holds one reference for the server (dropped in the request-completed
 * callback) and one while a wait is outstanding (dropped by whoever ends the wait, after
 * resuming). The source counts outstanding waits; stop refuses new waits and waits for the
 * count to reach zero before stopping the server, so no completion can touch freed memory. */
#include "sources/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/text.h"
#include "ilert/client.h"
#include "ilert/heartbeat.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "ops/readiness.h"
#include "version.h"

#define COMPONENT "http"
#define JSON_TYPE "application/json"
#define PLAIN_UTF8_TYPE "text/plain; charset=utf-8"
#define HEARTBEAT_PREFIX "/api/heartbeats/"
#define QUEUE_FULL_RETRY_AFTER "5"
#define BUSY_RETRY_AFTER "1"
#define ADMIT_RETRY_INTERVAL_MS 5
#define DISCARD_MAX_BYTES (1024 * 1024)
#define LISTEN_BACKLOG 512
/* How long stop lets resumed requests write their answers before closing connections. */
#define STOP_FLUSH_MS 2000
#define STOP_POLL_MS 5
#define MAX_PING_THREADS 256

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum route {
	ROUTE_NONE = 0,
	ROUTE_ROOT,
	ROUTE_HEALTH,
	ROUTE_READY,
	ROUTE_METRICS,
	ROUTE_EVENTS,
	ROUTE_BATCH,
	ROUTE_HEARTBEAT,
};

struct route_info {
	const char *path; /* exact path; NULL for the heartbeat route (prefix) */
	enum metric_route metric;
	bool post; /* POST only; otherwise GET and HEAD */
	bool open; /* never requires the token (§10.2) */
};

static const struct route_info routes[] = {
	[ROUTE_NONE] = { NULL, MRT_OTHER, false, true },
	[ROUTE_ROOT] = { "/", MRT_ROOT, false, false },
	[ROUTE_HEALTH] = { "/health", MRT_HEALTH, false, true },
	[ROUTE_READY] = { "/ready", MRT_READY, false, true },
	[ROUTE_METRICS] = { "/metrics", MRT_METRICS, false, false },
	[ROUTE_EVENTS] = { "/api/events", MRT_EVENTS, true, false },
	[ROUTE_BATCH] = { "/api/events/batch", MRT_EVENTS_BATCH, true, false },
	[ROUTE_HEARTBEAT] = { NULL, MRT_HEARTBEATS, false, false },
};

enum phase {
	PHASE_RECEIVING, /* headers seen, body (if any) arriving */
	PHASE_WAITING,   /* suspended until a wait ends */
	PHASE_READY,     /* the wait ended: answer on the next call */
	PHASE_ANSWERED,
};

/* How a wait ended. */
enum outcome {
	OUTCOME_TICKET,        /* the pipeline completed the ticket */
	OUTCOME_BUSY,          /* no room in the intake ring within the admission wait */
	OUTCOME_SHUTTING_DOWN, /* not admitted because the source stops */
	OUTCOME_PING_DONE,     /* hb_ok holds the result */
	OUTCOME_PING_FULL,     /* max_pings already in flight */
};

struct request {
	struct http_source *src;
	struct MHD_Connection *conn;
	atomic_int refs;
	enum route route;
	bool head;
	bool offered; /* an event route's message: counted in ilagent_received_total */
	char method[12];
	char *log_path; /* the path as logged: heartbeat keys masked */
	int64_t started_ns;
	enum phase phase;
	enum outcome outcome;

	struct tbuf body;
	size_t limit;
	bool too_large;
	size_t discarded;

	struct ticket ticket;
	struct message *msg; /* waiting for room in the intake ring */
	int64_t admit_deadline_ms;

	char *hb_key;
	bool hb_ok;

	struct request *next; /* admission retry list or ping queue */
};

struct admit_retry {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct request *head, *tail;
	bool stopping;
	pthread_t thread;
	bool thread_started;
};

struct ping_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct request *head, *tail;
	int queued;
	int active; /* accepted pings not yet answered (queued or running) */
	int idle;   /* threads waiting for a job */
	int threads;
	pthread_t tids[MAX_PING_THREADS];
	bool stopping;
	atomic_int abort;
};

struct http_source {
	const struct config *cfg;
	struct intake intake;
	struct http_source_settings settings;
	struct MHD_Daemon *mhd;
	char *token;
	size_t token_len;

	/* Hot-path state without locks: a wait begins by counting itself and then looking at
	 * stopping; stop sets stopping and then waits for the count to drop to zero, so either
	 * the wait sees stopping or stop sees the wait (sequentially consistent atomics). */
	atomic_int stopping; /* no new waits begin */
	atomic_int waits;    /* waits begun and not yet ended */
	atomic_int live;     /* request contexts alive */

	struct admit_retry retry;
	struct ping_pool pings;
};

/* ---- helpers -------------------------------------------------------------------------- */

void http_source_settings_default(struct http_source_settings *s)
{
	s->thread_pool = 2;
	s->connection_limit = 512;
	s->idle_timeout_s = 15;
	s->admit_wait_ms = 5000;
	s->max_pings = 32;
}

static bool is_token_char(char c)
{
	/* RFC 9110 tchar */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

bool http_content_type_is_json(const char *value)
{
	if (!value)
		return false;
	const char *p = skip_ows(value);
	const char *type = p;
	while (is_token_char(*p))
		p++;
	if (p == type || *p != '/')
		return false;
	const char *sub = ++p;
	while (is_token_char(*p))
		p++;
	size_t sub_len = (size_t)(p - sub);
	p = skip_ows(p);
	if (*p && *p != ';')
		return false;
	if (sub_len == 4 && strncasecmp(sub, "json", 4) == 0)
		return true;
	/* <name>+json with a non-empty name */
	return sub_len > 5 && strncasecmp(sub + sub_len - 5, "+json", 5) == 0;
}

/* Compares in time that depends only on the length of the presented value. */
static bool equal_constant_time(const char *given, size_t given_len, const char *want,
				size_t want_len)
{
	volatile unsigned char diff = given_len != want_len;
	for (size_t i = 0; i < given_len; i++)
		diff |= (unsigned char)(given[i] ^ want[i % want_len]);
	return diff == 0;
}

static bool authorized(const struct http_source *src, struct MHD_Connection *conn)
{
	if (!src->token)
		return true;
	const char *v =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!v)
		return false;
	v = skip_ows(v);
	if (strncasecmp(v, "bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
		return false;
	const char *token = skip_ows(v + 6);
	size_t len = strlen(token);
	while (len && (token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	return equal_constant_time(token, len, src->token, src->token_len);
}

/* ---- request contexts ----------------------------------------------------------------- */

static struct request *request_create(struct http_source *src, struct MHD_Connection *conn,
				      const char *method)
{
	struct request *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->src = src;
	r->conn = conn;
	atomic_init(&r->refs, 1);
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	r->started_ns = clock_mono_ns();
	r->phase = PHASE_RECEIVING;
	r->ticket.error_index = -1;
	tbuf_init(&r->body);
	atomic_fetch_add(&src->live, 1);
	return r;
}

static void request_unref(struct request *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	struct http_source *src = r->src;
	tbuf_free(&r->body);
	message_destroy(r->msg);
	free(r->ticket.error);
	free(r->ticket.echo);
	free(r->hb_key);
	free(r->log_path);
	free(r);
	atomic_fetch_sub(&src->live, 1);
}

/* Starts a wait: false once the source stops (the caller answers "Shutting down."). */
static bool wait_begin(struct request *r)
{
	struct http_source *src = r->src;
	atomic_fetch_add(&src->waits, 1);
	if (atomic_load(&src->stopping)) {
		atomic_fetch_sub(&src->waits, 1);
		return false;
	}
	atomic_fetch_add(&r->refs, 1);
	r->phase = PHASE_WAITING;
	return true;
}

/* Any thread: the outcome is stored in r; hand the request back to its server thread. */
static void wait_end(struct request *r, enum outcome outcome)
{
	struct http_source *src = r->src;
	r->outcome = outcome;
	r->phase = PHASE_READY;
	MHD_resume_connection(r->conn);
	request_unref(r);
	atomic_fetch_sub(&src->waits, 1); /* the last touch of src */
}

static void on_ticket_complete(struct ticket *t)
{
	wait_end(container_of(t, struct request, ticket), OUTCOME_TICKET);
}

/* ---- answers -------------------------------------------------------------------------- */

struct header {
	const char *name;
	const char *value;
};

static void access_log(const struct request *r, unsigned status)
{
	if (!log_enabled(LOG_LVL_INFO))
		return;
	double ms = (double)(clock_mono_ns() - r->started_ns) / 1e6;
	log_info(COMPONENT, "%s %s %u %.3fms", r->method, r->log_path ? r->log_path : "?", status,
		 ms);
}

/* Counts and logs the answer with status. */
static void answered(struct request *r, unsigned status)
{
	r->phase = PHASE_ANSWERED;
	metrics_http_request(routes[r->route].metric, (int)status);
	if (r->offered) {
		size_t n = 1;
		if (r->route == ROUTE_BATCH && status == MHD_HTTP_OK)
			n = r->ticket.accepted;
		metrics_received(SOURCE_HTTP, n);
	}
	access_log(r, status);
}

static enum MHD_Result respond(struct request *r, unsigned status, const char *content_type,
			       const char *body, size_t len, const struct header *headers,
			       size_t header_count)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)(body ? body : ""),
								    MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	for (size_t i = 0; i < header_count; i++)
		MHD_add_response_header(resp, headers[i].name, headers[i].value);
	enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	answered(r, status);
	return ok;
}

static enum MHD_Result respond_empty(struct request *r, unsigned status)
{
	return respond(r, status, NULL, NULL, 0, NULL, 0);
}

/* {"error":"<text>"} or {"error":"<text>","index":<i>}, escaped by jansson. */
static char *error_json(const char *text, int index)
{
	char *safe = text_utf8_sanitize(text, strlen(text), SIZE_MAX);
	json_t *o = json_object();
	char *out = NULL;
	if (safe && o && json_object_set_new(o, "error", json_string(safe)) == 0 &&
	    (index < 0 || json_object_set_new(o, "index", json_integer(index)) == 0))
		out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(safe);
	return out;
}

/* A JSON error answer; reject (an enum metric_reject, or -1) is counted for event routes. */
static enum MHD_Result respond_error(struct request *r, unsigned status, const char *text,
				     int index, const char *retry_after, int reject)
{
	if (reject >= 0 && r->offered)
		metrics_rejected(SOURCE_HTTP, (enum metric_reject)reject, 1);
	char *body = error_json(text, index);
	if (!body)
		return MHD_NO;
	struct header h = { MHD_HTTP_HEADER_RETRY_AFTER, retry_after };
	enum MHD_Result ok =
		respond(r, status, JSON_TYPE, body, strlen(body), &h, retry_after ? 1 : 0);
	free(body);
	return ok;
}

static enum MHD_Result respond_shutting_down(struct request *r)
{
	return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "Shutting down.", -1, NULL,
			     MR_SHUTTING_DOWN);
}

static enum MHD_Result respond_queue_full(struct request *r)
{
	return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "Queue is full, retry later.", -1,
			     QUEUE_FULL_RETRY_AFTER, MR_QUEUE_FULL);
}

/* Writes all of data to the connection's socket, giving up when it would block: the answer
 * is a few hundred bytes into a send buffer that holds nothing else at this point. */
static void write_socket(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

/* Reads what the client has already sent and nobody will read, so that closing the socket
 * sends a FIN after the answer rather than a reset, which some clients report instead of the
 * answer. */
static void drain_socket(int fd)
{
	char buf[4096];
	for (int i = 0; i < 256; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
	}
}

/* A body found too large while it arrives: libmicrohttpd queues an answer only before the
 * body or after its end, so the 413 is written to the socket here, the rest of the body is
 * not read, and returning MHD_NO makes the server close the connection. */
static enum MHD_Result answer_too_large_now(struct request *r)
{
	if (r->offered)
		metrics_rejected(SOURCE_HTTP, MR_TOO_LARGE, 1);
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char *body = error_json("Payload too large.", -1);
	if (ci && body) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
		struct tbuf b;
		tbuf_init(&b);
		tbuf_printf(&b,
			    "HTTP/1.1 413 Content Too Large\r\nDate: %s\r\nConnection: close\r\n"
			    "Content-Type: " JSON_TYPE "\r\nContent-Length: %zu\r\n\r\n%s",
			    date, strlen(body), body);
		int fd = ci->connect_fd, one = 1, zero = 0;
		/* An answer held back by a cork would be discarded by the close. */
		setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!b.oom)
			write_socket(fd, tbuf_cstr(&b), b.len);
		tbuf_free(&b);
		drain_socket(fd);
	}
	free(body);
	answered(r, MHD_HTTP_CONTENT_TOO_LARGE);
	return MHD_NO;
}

static enum MHD_Result respond_internal_error(struct request *r)
{
	return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error occurred.", -1,
			     NULL, -1);
}

static enum MHD_Result answer_ticket(struct request *r)
{
	struct ticket *t = &r->ticket;
	switch (t->status) {
	case TICKET_ACCEPTED:
		if (r->route == ROUTE_BATCH) {
			char body[48];
			int n = snprintf(body, sizeof(body), "{\"accepted\":%zu}", t->accepted);
			return respond(r, MHD_HTTP_OK, JSON_TYPE, body, (size_t)n, NULL, 0);
		}
		return respond(r, MHD_HTTP_OK, JSON_TYPE, t->echo ? t->echo : "{}",
			       t->echo ? strlen(t->echo) : 2, NULL, 0);
	case TICKET_REJECTED:
		/* normalize counted the rejection */
		return respond_error(r, MHD_HTTP_BAD_REQUEST,
				     t->error ? t->error : "Invalid request.",
				     r->route == ROUTE_BATCH ? t->error_index : -1, NULL, -1);
	case TICKET_STORE_ERROR:
		/* persist counted the rejection */
		return respond_internal_error(r);
	case TICKET_QUEUE_FULL:
		return respond_queue_full(r);
	case TICKET_SHUTTING_DOWN:
		return respond_shutting_down(r);
	}
	return respond_internal_error(r);
}

static enum MHD_Result answer_outcome(struct request *r)
{
	static const char proxy_failed[] = "Failed to proxy heartbeat";
	switch (r->outcome) {
	case OUTCOME_TICKET:
		return answer_ticket(r);
	case OUTCOME_BUSY:
		return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "Busy, retry later.", -1,
				     BUSY_RETRY_AFTER, MR_BUSY);
	case OUTCOME_SHUTTING_DOWN:
		return respond_shutting_down(r);
	case OUTCOME_PING_DONE:
		if (r->hb_ok)
			return respond(r, MHD_HTTP_ACCEPTED, JSON_TYPE, "{}", 2, NULL, 0);
		return respond(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", proxy_failed,
			       sizeof(proxy_failed) - 1, NULL, 0);
	case OUTCOME_PING_FULL:
		return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
				     "Too many concurrent heartbeat requests.", -1,
				     BUSY_RETRY_AFTER, -1);
	}
	return respond_internal_error(r);
}

/* ---- simple routes ------------------------------------------------------------------------ */

static enum MHD_Result answer_root(struct request *r)
{
	static const char body[] = "ilagent/" ILAGENT_VERSION;
	return respond(r, MHD_HTTP_OK, PLAIN_UTF8_TYPE, body, sizeof(body) - 1, NULL, 0);
}

static enum MHD_Result answer_health(struct request *r)
{
	bool down = readiness_shutting_down() || atomic_load(&r->src->stopping);
	return respond_empty(r, down ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_NO_CONTENT);
}

static enum MHD_Result answer_ready(struct request *r)
{
	char *json = NULL;
	int status = readiness_render(&json);
	enum MHD_Result ok;
	if (status == MHD_HTTP_NO_CONTENT || !json)
		ok = respond_empty(r, (unsigned)status);
	else
		ok = respond(r, (unsigned)status, JSON_TYPE, json, strlen(json), NULL, 0);
	free(json);
	return ok;
}

static enum MHD_Result answer_metrics(struct request *r)
{
	char *text = metrics_render();
	if (!text)
		return respond_internal_error(r);
	enum MHD_Result ok =
		respond(r, MHD_HTTP_OK, METRICS_CONTENT_TYPE, text, strlen(text), NULL, 0);
	free(text);
	return ok;
}

/* ---- admission retry -------------------------------------------------------------------- */

static bool intake_closed(struct http_source *src)
{
	return intake_state(&src->intake) == INTAKE_CLOSED;
}

static void retry_shut_out(struct request *r)
{
	message_destroy(r->msg);
	r->msg = NULL;
	wait_end(r, OUTCOME_SHUTTING_DOWN);
}

/* One pass over the waiting requests in arrival order; returns those still waiting. Once an
 * admission fails, later requests are not tried in this pass, so the order is kept. */
static struct request *retry_pass(struct http_source *src, struct request *list)
{
	struct request *keep = NULL, **tail = &keep;
	int64_t now = clock_mono_ms();
	bool blocked = false, closed = intake_closed(src);
	while (list) {
		struct request *r = list;
		list = r->next;
		r->next = NULL;
		if (closed) {
			retry_shut_out(r);
			continue;
		}
		if (!blocked) {
			struct message *msg = r->msg;
			msg->admitted_ns = clock_mono_ns();
			r->msg = NULL;
			/* On success r may be answered and freed at once: do not touch it. */
			if (intake_admit(&src->intake, msg))
				continue;
			r->msg = msg;
			blocked = true;
		}
		if (now >= r->admit_deadline_ms) {
			message_destroy(r->msg);
			r->msg = NULL;
			wait_end(r, OUTCOME_BUSY);
			continue;
		}
		*tail = r;
		tail = &r->next;
	}
	return keep;
}

static void timed_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cond, lock, &ts);
}

static void *retry_main(void *arg)
{
	struct http_source *src = arg;
	struct admit_retry *q = &src->retry;
	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		if (!q->head) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		struct request *list = q->head;
		q->head = q->tail = NULL;
		pthread_mutex_unlock(&q->lock);
		struct request *keep = retry_pass(src, list);
		pthread_mutex_lock(&q->lock);
		if (keep) {
			struct request *last = keep;
			while (last->next)
				last = last->next;
			last->next = q->head;
			if (!q->head)
				q->tail = last;
			q->head = keep;
		}
		if (q->head && !q->stopping)
			timed_wait_ms(&q->cond, &q->lock, ADMIT_RETRY_INTERVAL_MS);
	}
	struct request *list = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	while (list) {
		struct request *r = list;
		list = r->next;
		retry_shut_out(r);
	}
	return NULL;
}

/* The server thread could not admit r->msg: the retry thread takes over the wait. */
static void retry_enqueue(struct http_source *src, struct request *r)
{
	struct admit_retry *q = &src->retry;
	r->admit_deadline_ms = clock_mono_ms() + src->settings.admit_wait_ms;
	r->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		retry_shut_out(r);
		return;
	}
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

static void retry_stop(struct admit_retry *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (q->thread_started)
		pthread_join(q->thread, NULL);
}

/* ---- heartbeat proxy ---------------------------------------------------------------------- */

static bool ping_once(struct http_source *src, struct ilert_client *client, const char *key)
{
	if (!client)
		return false;
	struct ilert_result res;
	ilert_result_init(&res);
	int err = ilert_heartbeat_ping(client, key, false, &res);
	bool ok = !err && ilert_result_outcome(&res) == ILERT_OUTCOME_SUCCESS;
	if (!ok && !res.aborted)
		ilert_heartbeat_log_failure(COMPONENT, &res);
	ilert_result_free(&res);
	return ok;
}

static void *ping_main(void *arg)
{
	struct http_source *src = arg;
	struct ping_pool *p = &src->pings;
	struct ilert_client *client = ilert_client_create(src->cfg);
	if (client)
		ilert_client_set_abort(client, &p->abort);
	else
		log_error(COMPONENT, "could not create an HTTP client for the heartbeat proxy");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (!p->head) {
			if (p->stopping)
				break;
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		struct request *r = p->head;
		p->head = r->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		p->idle--;
		pthread_mutex_unlock(&p->lock);

		r->hb_ok = ping_once(src, client, r->hb_key);
		metrics_heartbeat_ping(MP_PROXY, r->hb_ok);

		pthread_mutex_lock(&p->lock);
		p->active--; /* before the answer: a client's next ping finds the slot free */
		p->idle++;
		pthread_mutex_unlock(&p->lock);
		wait_end(r, OUTCOME_PING_DONE);
		pthread_mutex_lock(&p->lock);
	}
	p->idle--;
	pthread_mutex_unlock(&p->lock);
	ilert_client_destroy(client);
	return NULL;
}

/* Queues a ping for r (already suspended) and returns true; the ping thread ends the wait.
 * False: *now is the outcome to end the wait with at once. */
static bool ping_submit(struct http_source *src, struct request *r, enum outcome *now)
{
	struct ping_pool *p = &src->pings;
	pthread_mutex_lock(&p->lock);
	if (p->stopping || p->active >= src->settings.max_pings) {
		*now = p->stopping ? OUTCOME_SHUTTING_DOWN : OUTCOME_PING_FULL;
		pthread_mutex_unlock(&p->lock);
		return false;
	}
	if (p->idle <= p->queued && p->threads < src->settings.max_pings &&
	    p->threads < MAX_PING_THREADS) {
		if (pthread_create(&p->tids[p->threads], NULL, ping_main, src) == 0) {
			p->threads++;
			p->idle++;
		} else if (p->threads == 0) {
			pthread_mutex_unlock(&p->lock);
			log_error(COMPONENT, "could not start a heartbeat proxy thread");
			r->hb_ok = false;
			*now = OUTCOME_PING_DONE;
			return false;
		}
	}
	p->active++;
	p->queued++;
	r->next = NULL;
	if (p->tail)
		p->tail->next = r;
	else
		p->head = r;
	p->tail = r;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return true;
}

static void pings_stop(struct ping_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	atomic_store(&p->abort, 1);
	pthread_cond_broadcast(&p->cond);
	int n = p->threads;
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < n; i++)
		pthread_join(p->tids[i], NULL);
}

/* ---- request handling --------------------------------------------------------------------- */

/* Sets r->route (and r->hb_key); ROUTE_NONE for an unknown path. */
static void route_lookup(struct request *r, const char *url)
{
	for (enum route rt = ROUTE_ROOT; rt < ROUTE_HEARTBEAT; rt++) {
		if (strcmp(url, routes[rt].path) == 0) {
			r->route = rt;
			return;
		}
	}
	r->route = ROUTE_NONE;
	if (strncmp(url, HEARTBEAT_PREFIX, strlen(HEARTBEAT_PREFIX)) != 0)
		return;
	const char *raw = url + strlen(HEARTBEAT_PREFIX);
	if (!*raw || strchr(raw, '/'))
		return;
	char *key = text_percent_decode(raw);
	if (!key || !*key) {
		free(key);
		return;
	}
	r->hb_key = key;
	r->route = ROUTE_HEARTBEAT;
}

/* The path for the access log, with the key segment of a heartbeat path masked (§5). */
static char *log_path_of(const struct request *r, const char *url)
{
	size_t plen = strlen(HEARTBEAT_PREFIX);
	if (strncmp(url, HEARTBEAT_PREFIX, plen) != 0)
		return strdup(url);
	char masked[64];
	text_mask(r->hb_key ? r->hb_key : url + plen, masked, sizeof(masked));
	struct tbuf b;
	tbuf_init(&b);
	tbuf_puts(&b, HEARTBEAT_PREFIX);
	tbuf_puts(&b, masked);
	return tbuf_take(&b);
}

static bool method_allowed(const struct request *r)
{
	if (routes[r->route].post)
		return strcmp(r->method, MHD_HTTP_METHOD_POST) == 0;
	return strcmp(r->method, MHD_HTTP_METHOD_GET) == 0 || r->head;
}

static bool source_stopping(struct http_source *src)
{
	return atomic_load(&src->stopping) != 0;
}

/* §10.3 steps 3 and 4 for the event routes, from the headers alone. True when answered. */
static bool screen_event(struct request *r, enum MHD_Result *res)
{
	struct http_source *src = r->src;
	enum intake_state state = intake_state(&src->intake);
	if (state == INTAKE_CLOSED || source_stopping(src)) {
		*res = respond_shutting_down(r);
		return true;
	}
	if (state == INTAKE_PAUSED) {
		*res = respond_queue_full(r);
		return true;
	}
	r->limit =
		(size_t)(r->route == ROUTE_BATCH ? src->cfg->max_batch_body : src->cfg->max_body);
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		errno = 0;
		unsigned long long n = strtoull(cl, NULL, 10);
		if (errno == ERANGE || n > r->limit) {
			*res = respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "Payload too large.",
					     -1, NULL, MR_TOO_LARGE);
			return true;
		}
	}
	return false;
}

static enum MHD_Result respond_unauthorized(struct request *r)
{
	struct header h = { MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"ilagent\"" };
	if (r->offered)
		metrics_rejected(SOURCE_HTTP, MR_UNAUTHORIZED, 1);
	char *body = error_json("Unauthorized.", -1);
	if (!body)
		return MHD_NO;
	enum MHD_Result ok =
		respond(r, MHD_HTTP_UNAUTHORIZED, JSON_TYPE, body, strlen(body), &h, 1);
	free(body);
	return ok;
}

/* §10.3 steps 1 to 4, everything decided from the request line and headers. True when it
 * answered (*res set); false when the request goes on. Runs again once the request is
 * complete, so the intake state is looked at when the message is about to be admitted. */
static bool screen(struct request *r, enum MHD_Result *res)
{
	if (r->route == ROUTE_NONE) {
		*res = respond_empty(r, MHD_HTTP_NOT_FOUND);
		return true;
	}
	if (!method_allowed(r)) {
		struct header h = { MHD_HTTP_HEADER_ALLOW,
				    routes[r->route].post ? "POST" : "GET, HEAD" };
		*res = respond(r, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, NULL, 0, &h, 1);
		return true;
	}
	r->offered = routes[r->route].post;
	if (!routes[r->route].open && !authorized(r->src, r->conn)) {
		*res = respond_unauthorized(r);
		return true;
	}
	if (r->route == ROUTE_HEARTBEAT && (intake_closed(r->src) || source_stopping(r->src))) {
		*res = respond_shutting_down(r);
		return true;
	}
	if (routes[r->route].post)
		return screen_event(r, res);
	return false;
}

/* A request announcing a body is screened before the body is read, so a rejected body is
 * never read (the server then closes the connection after the answer). Requests without a
 * body are answered once complete, which keeps their connection alive. */
static bool has_body(struct MHD_Connection *conn)
{
	const char *cl =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > 0)
		return true;
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static enum MHD_Result on_headers(struct request *r, const char *url)
{
	route_lookup(r, url);
	r->log_path = log_path_of(r, url);
	enum MHD_Result res = MHD_YES;
	if (has_body(r->conn) && screen(r, &res))
		return res;
	return MHD_YES;
}

static enum MHD_Result on_body(struct request *r, const char *data, size_t size)
{
	if (!routes[r->route].post)
		return MHD_YES; /* a body on a GET route is ignored */
	if (r->too_large) {
		r->discarded += size;
		return r->discarded > DISCARD_MAX_BYTES ? answer_too_large_now(r) : MHD_YES;
	}
	if (size > r->limit - r->body.len) {
		r->too_large = true;
		r->discarded = size;
		tbuf_free(&r->body);
		return MHD_YES;
	}
	tbuf_append(&r->body, data, size);
	return r->body.oom ? MHD_NO : MHD_YES;
}

static struct message *build_message(struct request *r)
{
	enum message_kind kind = r->route == ROUTE_BATCH ? MSG_HTTP_BATCH : MSG_HTTP_EVENT;
	struct message *msg = message_create(SOURCE_HTTP, kind, NULL, 0);
	if (!msg)
		return NULL;
	size_t len = r->body.len;
	char *body = tbuf_take(&r->body); /* hand the buffer over instead of copying it */
	if (!body) {
		message_destroy(msg);
		return NULL;
	}
	free(msg->body);
	msg->body = body;
	msg->body_len = len;
	msg->retry_on_store_error = false;
	r->ticket.complete = on_ticket_complete;
	msg->ticket = &r->ticket;
	return msg;
}

static enum MHD_Result submit_event(struct request *r)
{
	struct http_source *src = r->src;
	if (r->too_large)
		return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "Payload too large.", -1, NULL,
				     MR_TOO_LARGE);
	const char *ct =
		MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!http_content_type_is_json(ct))
		return respond_error(r, MHD_HTTP_BAD_REQUEST,
				     "Content type must be application/json.", -1, NULL,
				     MR_INVALID);
	struct message *msg = build_message(r);
	if (!msg)
		return respond_internal_error(r);
	if (!wait_begin(r)) {
		message_destroy(msg);
		return respond_shutting_down(r);
	}
	/* Suspend before admitting: the ticket may complete (and resume) at once. */
	MHD_suspend_connection(r->conn);
	msg->admitted_ns = clock_mono_ns();
	if (!intake_admit(&src->intake, msg)) {
		r->msg = msg;
		retry_enqueue(src, r);
	}
	return MHD_YES;
}

static enum MHD_Result submit_ping(struct request *r)
{
	if (!wait_begin(r))
		return respond_shutting_down(r);
	MHD_suspend_connection(r->conn);
	enum outcome now;
	if (!ping_submit(r->src, r, &now))
		wait_end(r, now);
	return MHD_YES;
}

/* The request is complete: screen it (again) and serve its route. */
static enum MHD_Result on_complete(struct request *r)
{
	enum MHD_Result res;
	if (screen(r, &res))
		return res;
	switch (r->route) {
	case ROUTE_ROOT:
		return answer_root(r);
	case ROUTE_HEALTH:
		return answer_health(r);
	case ROUTE_READY:
		return answer_ready(r);
	case ROUTE_METRICS:
		return answer_metrics(r);
	case ROUTE_HEARTBEAT:
		return submit_ping(r);
	case ROUTE_EVENTS:
	case ROUTE_BATCH:
		return submit_event(r);
	case ROUTE_NONE:
		break;
	}
	return respond_empty(r, MHD_HTTP_NOT_FOUND);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct request *r = *con_cls;
	if (!r) {
		r = request_create(cls, conn, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		return on_headers(r, url);
	}
	if (*upload_data_size) {
		size_t size = *upload_data_size;
		*upload_data_size = 0;
		return on_body(r, upload_data, size);
	}
	switch (r->phase) {
	case PHASE_RECEIVING:
		return on_complete(r);
	case PHASE_READY:
		return answer_outcome(r);
	case PHASE_WAITING:
	case PHASE_ANSWERED:
		break;
	}
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode code)
{
	struct request *r = *con_cls;
	*con_cls = NULL;
	if (r)
		request_unref(r);
}

/* Keeps the path as sent: the heartbeat key is decoded per segment here. */
static size_t keep_raw(void *cls, struct MHD_Connection *conn, char *s)
{
	return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	if (!log_enabled(LOG_LVL_DEBUG))
		return;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_debug(COMPONENT, "%s", line);
}

/* ---- start / stop ------------------------------------------------------------------------- */

static const char *bind_address(const struct config *cfg)
{
	return cfg->bind ? cfg->bind : "0.0.0.0";
}

static void bind_error(const struct config *cfg, const char *reason, char *msg, size_t size)
{
	const char *addr = bind_address(cfg);
	bool v6 = strchr(addr, ':') != NULL;
	snprintf(msg, size, "Failed to bind to http port %s%s%s:%d: %s", v6 ? "[" : "", addr,
		 v6 ? "]" : "", cfg->port, reason);
}

static int open_listener(const struct config *cfg, int *out, char *msg, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	const char *addr = bind_address(cfg);
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)cfg->port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)cfg->port);
		len = sizeof(*v6);
	} else {
		bind_error(cfg, "not an IPv4 or IPv6 address", msg, size);
		return ILA_ERR_IO;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		bind_error(cfg, strerror(errno), msg, size);
		return ILA_ERR_IO;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		bind_error(cfg, strerror(errno), msg, size);
		close(fd);
		return ILA_ERR_IO;
	}
	*out = fd;
	return 0;
}

static void source_free(struct http_source *src)
{
	pthread_mutex_destroy(&src->pings.lock);
	pthread_cond_destroy(&src->pings.cond);
	pthread_mutex_destroy(&src->retry.lock);
	pthread_cond_destroy(&src->retry.cond);
	free(src->token);
	free(src);
}

static void init_cond_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

static struct http_source *source_create(const struct config *cfg, const struct intake *intake,
					 const struct http_source_settings *settings)
{
	struct http_source *src = calloc(1, sizeof(*src));
	if (!src)
		return NULL;
	src->cfg = cfg;
	src->intake = *intake;
	src->settings = *settings;
	pthread_mutex_init(&src->retry.lock, NULL);
	init_cond_monotonic(&src->retry.cond);
	pthread_mutex_init(&src->pings.lock, NULL);
	pthread_cond_init(&src->pings.cond, NULL);
	atomic_init(&src->pings.abort, 0);
	atomic_init(&src->stopping, 0);
	atomic_init(&src->waits, 0);
	atomic_init(&src->live, 0);
	if (cfg->http_token && *cfg->http_token) {
		src->token = strdup(cfg->http_token);
		if (!src->token) {
			source_free(src);
			return NULL;
		}
		src->token_len = strlen(src->token);
	}
	return src;
}

int http_source_start_with(const struct config *cfg, const struct intake *intake,
			   const struct http_source_settings *settings, struct http_source **out,
			   char *msg, size_t msg_size)
{
	*out = NULL;
	struct http_source *src = source_create(cfg, intake, settings);
	if (!src) {
		snprintf(msg, msg_size, "could not start the HTTP server: %s",
			 ila_strerror(ILA_ERR_NOMEM));
		return ILA_ERR_NOMEM;
	}
	int fd = -1;
	int err = open_listener(cfg, &fd, msg, msg_size);
	if (err) {
		source_free(src);
		return err;
	}
	if (pthread_create(&src->retry.thread, NULL, retry_main, src) != 0) {
		close(fd);
		source_free(src);
		snprintf(msg, msg_size, "could not start the HTTP server: no thread");
		return ILA_ERR_IO;
	}
	src->retry.thread_started = true;
	/* The epoll loop with a pool of two threads is the fastest mode on two cores
	 * (PLATFORM.md); suspend/resume lets waiting requests hold no thread. */
	unsigned flags =
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	// clang-format off
	src->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, src,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)settings->thread_pool,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)settings->connection_limit,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)settings->idle_timeout_s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, src,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, NULL,
		MHD_OPTION_END);
	// clang-format on
	if (!src->mhd) {
		close(fd);
		retry_stop(&src->retry);
		source_free(src);
		snprintf(msg, msg_size, "could not start the HTTP server");
		return ILA_ERR_IO;
	}
	*out = src;
	return 0;
}

int http_source_start(const struct config *cfg, const struct intake *intake,
		      struct http_source **out, char *msg, size_t msg_size)
{
	struct http_source_settings s;
	http_source_settings_default(&s);
	return http_source_start_with(cfg, intake, &s, out, msg, msg_size);
}

/* Polls until *counter is 0 (deadline_ms < 0: without limit). Stop is not a hot path. */
static void wait_for_zero(atomic_int *counter, int64_t deadline_ms)
{
	int64_t warn_at = clock_mono_ms() + 5000;
	while (atomic_load(counter) > 0) {
		int64_t now = clock_mono_ms();
		if (deadline_ms >= 0 && now >= deadline_ms)
			return;
		if (deadline_ms < 0 && now >= warn_at) {
			log_warn(COMPONENT, "waiting for %d request(s) to be acknowledged",
				 atomic_load(counter));
			warn_at = now + 5000;
		}
		usleep(STOP_POLL_MS * 1000);
	}
}

void http_source_stop(struct http_source *src)
{
	if (!src)
		return;
	atomic_store(&src->stopping, 1);
	/* With internal threads MHD's workers may still touch the quiesced socket until
	 * MHD_stop_daemon returns (libmicrohttpd manual), and a closed descriptor number may be
	 * reused meanwhile. shutdown() refuses new connections at once and keeps the
	 * descriptor valid; it is closed only when no worker is left. */
	MHD_socket lfd = MHD_quiesce_daemon(src->mhd);
	if (lfd != MHD_INVALID_SOCKET)
		shutdown(lfd, SHUT_RDWR);
	pings_stop(&src->pings);
	retry_stop(&src->retry);
	wait_for_zero(&src->waits, -1);
	wait_for_zero(&src->live, clock_mono_ms() + STOP_FLUSH_MS);
	MHD_stop_daemon(src->mhd);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	source_free(src);
}

int http_source_port(const struct http_source *src)
{
	return src->cfg->port;
}

const struct http_source_settings *http_source_settings(const struct http_source *src)
{
	return &src->settings;
}
