#include "fake_ilert.h"

#include "core/clock.h"
#include "core/text.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Requests larger than this are refused by closing the connection: a fake has no business
 * buffering more, and a runaway client should fail loudly. */
#define FAKE_MAX_HEAD (1024 * 1024)
#define FAKE_MAX_BODY (256 * 1024 * 1024)

struct owned_reply {
	struct fake_reply r; /* strings below are owned copies */
	struct owned_reply *next;
};

struct conn {
	struct fake_ilert *f;
	int fd;
	int id;
	pthread_t thread;
	bool finished; /* guarded by f->mu; the thread is ready to be joined */
	struct conn *next;
	char *buf;
	size_t len, pos, cap;
};

struct fake_ilert {
	int listen_fd;
	int port;
	char url[48];
	/* Every blocking wait also polls stop_rd: one byte written at stop wakes them all. */
	int stop_rd, stop_wr;
	pthread_t accept_thread;

	pthread_mutex_t mu;
	pthread_cond_t changed; /* a request was recorded */
	struct fake_request **reqs;
	int nreqs, cap_reqs;
	struct owned_reply *script_head, *script_tail;
	struct owned_reply default_reply;
	struct conn *conns;
	int nconns_total;
};

/* ---- replies ---- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void reply_clear(struct fake_reply *r)
{
	free((char *)r->body);
	free((char *)r->content_type);
	free((char *)r->retry_after);
	free((char *)r->headers);
	memset(r, 0, sizeof(*r));
}

static void reply_copy(struct fake_reply *dst, const struct fake_reply *src)
{
	*dst = *src;
	dst->body = dup_or_null(src->body);
	dst->content_type = dup_or_null(src->content_type);
	dst->retry_after = dup_or_null(src->retry_after);
	dst->headers = dup_or_null(src->headers);
}

static void script_clear(struct fake_ilert *f)
{
	struct owned_reply *o = f->script_head;
	while (o) {
		struct owned_reply *next = o->next;
		reply_clear(&o->r);
		free(o);
		o = next;
	}
	f->script_head = f->script_tail = NULL;
}

void fake_ilert_push_n(struct fake_ilert *f, const struct fake_reply *reply, int n)
{
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < n; i++) {
		struct owned_reply *o = calloc(1, sizeof(*o));
		if (!o)
			break;
		reply_copy(&o->r, reply);
		if (f->script_tail)
			f->script_tail->next = o;
		else
			f->script_head = o;
		f->script_tail = o;
	}
	pthread_mutex_unlock(&f->mu);
}

void fake_ilert_push(struct fake_ilert *f, const struct fake_reply *reply)
{
	fake_ilert_push_n(f, reply, 1);
}

void fake_ilert_set_default(struct fake_ilert *f, const struct fake_reply *reply)
{
	pthread_mutex_lock(&f->mu);
	reply_clear(&f->default_reply.r);
	reply_copy(&f->default_reply.r, reply);
	pthread_mutex_unlock(&f->mu);
}

/* ---- recorded requests ---- */

void fake_request_free(struct fake_request *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->target);
	free(r->path);
	free(r->headers);
	free(r->body);
	free(r);
}

static struct fake_request *request_copy(const struct fake_request *src)
{
	struct fake_request *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	*r = *src;
	r->method = strdup(src->method);
	r->target = strdup(src->target);
	r->path = strdup(src->path);
	r->headers = strdup(src->headers);
	r->body = malloc(src->body_len + 1);
	if (!r->method || !r->target || !r->path || !r->headers || !r->body) {
		fake_request_free(r);
		return NULL;
	}
	memcpy(r->body, src->body, src->body_len + 1);
	return r;
}

char *fake_request_header(const struct fake_request *r, const char *name)
{
	if (!r || !r->headers)
		return NULL;
	size_t name_len = strlen(name);
	const char *line = r->headers;
	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t line_len = eol ? (size_t)(eol - line) : strlen(line);
		if (line_len > name_len && line[name_len] == ':' &&
		    strncasecmp(line, name, name_len) == 0) {
			const char *v = line + name_len + 1;
			const char *end = line + line_len;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
				end--;
			return strndup(v, (size_t)(end - v));
		}
		line += line_len + (eol ? 1 : 0);
	}
	return NULL;
}

/* Records req (taking ownership) and picks its reply in the same critical section, so the
 * n-th recorded request always gets the n-th scripted reply even across connections. */
static void record_and_pick(struct fake_ilert *f, struct fake_request *req,
			    struct fake_reply *reply)
{
	pthread_mutex_lock(&f->mu);
	if (f->nreqs == f->cap_reqs) {
		int cap = f->cap_reqs ? f->cap_reqs * 2 : 64;
		struct fake_request **grown = realloc(f->reqs, (size_t)cap * sizeof(*grown));
		if (grown) {
			f->reqs = grown;
			f->cap_reqs = cap;
		}
	}
	if (f->nreqs < f->cap_reqs)
		f->reqs[f->nreqs++] = req;
	else
		fake_request_free(req);
	struct owned_reply *o = f->script_head;
	if (o) {
		f->script_head = o->next;
		if (!f->script_head)
			f->script_tail = NULL;
		*reply = o->r; /* ownership of the strings moves to the caller */
		free(o);
	} else {
		reply_copy(reply, &f->default_reply.r);
	}
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->mu);
}

int fake_ilert_count(struct fake_ilert *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->nreqs;
	pthread_mutex_unlock(&f->mu);
	return n;
}

int fake_ilert_connection_count(struct fake_ilert *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->nconns_total;
	pthread_mutex_unlock(&f->mu);
	return n;
}

int fake_ilert_wait_count(struct fake_ilert *f, int n, int timeout_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->mu);
	while (f->nreqs < n) {
		if (pthread_cond_timedwait(&f->changed, &f->mu, &deadline) == ETIMEDOUT)
			break;
	}
	int got = f->nreqs;
	pthread_mutex_unlock(&f->mu);
	return got;
}

struct fake_request *fake_ilert_request(struct fake_ilert *f, int i)
{
	struct fake_request *copy = NULL;
	pthread_mutex_lock(&f->mu);
	if (i >= 0 && i < f->nreqs)
		copy = request_copy(f->reqs[i]);
	pthread_mutex_unlock(&f->mu);
	return copy;
}

void fake_ilert_reset(struct fake_ilert *f)
{
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->nreqs; i++)
		fake_request_free(f->reqs[i]);
	f->nreqs = 0;
	script_clear(f);
	pthread_mutex_unlock(&f->mu);
}

/* ---- connection I/O ---- */

/* Waits until fd is ready for events or stop was requested; false on stop, error or when
 * timeout_ms (>= 0) passed without readiness. */
static bool wait_ready(struct fake_ilert *f, int fd, short events, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = events },
				 { .fd = f->stop_rd, .events = POLLIN } };
	for (;;) {
		int r = poll(pfd, 2, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || pfd[1].revents)
			return false;
		return true;
	}
}

/* Sleeps delay_ms unless stop comes first; false when stopped. */
static bool delay_unless_stopped(struct fake_ilert *f, int delay_ms)
{
	int64_t deadline = clock_mono_ms() + delay_ms;
	struct pollfd pfd = { .fd = f->stop_rd, .events = POLLIN };
	for (;;) {
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0)
			return true;
		int r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return false;
		if (r < 0 && errno != EINTR)
			return false;
	}
}

/* Reads more bytes into the connection buffer; false on EOF, error or stop. */
static bool conn_fill(struct conn *c)
{
	if (c->pos == c->len) {
		c->pos = c->len = 0;
	} else if (c->pos > 0 && c->pos >= c->cap / 2) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (c->cap - c->len < 4096) {
		size_t cap = c->cap ? c->cap * 2 : 16384;
		char *grown = realloc(c->buf, cap);
		if (!grown)
			return false;
		c->buf = grown;
		c->cap = cap;
	}
	for (;;) {
		if (!wait_ready(c->f, c->fd, POLLIN, -1))
			return false;
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n > 0) {
			c->len += (size_t)n;
			return true;
		}
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			return false;
	}
}

/* Waits until the unread data contains pattern; returns its offset from c->pos or -1. */
static long conn_find(struct conn *c, const char *pattern, size_t limit)
{
	size_t plen = strlen(pattern);
	for (;;) {
		const char *hit = memmem(c->buf + c->pos, c->len - c->pos, pattern, plen);
		if (hit)
			return (long)(hit - (c->buf + c->pos));
		if (c->len - c->pos > limit || !conn_fill(c))
			return -1;
	}
}

static bool conn_need(struct conn *c, size_t n)
{
	while (c->len - c->pos < n) {
		if (!conn_fill(c))
			return false;
	}
	return true;
}

static bool send_all(struct fake_ilert *f, int fd, const char *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && wait_ready(f, fd, POLLOUT, -1))
			continue;
		return false;
	}
	return true;
}

/* ---- request parsing ---- */

struct parsed_head {
	bool chunked;
	bool has_length;
	size_t content_length;
	bool expect_continue;
	bool close;
};

/* "/a/b?x" → "/a/b"; "http://host:1/a?x" → "/a"; "http://host" → "/". */
static char *path_of_target(const char *target)
{
	const char *p = target;
	const char *scheme_end = strstr(target, "://");
	if (target[0] != '/' && scheme_end) {
		const char *host = scheme_end + 3;
		p = host + strcspn(host, "/?#");
		if (*p != '/')
			return strdup("/");
	}
	return strndup(p, strcspn(p, "?#"));
}

static bool header_is(const char *line, size_t name_len, const char *name)
{
	return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

static bool value_has_token(const char *v, size_t len, const char *token)
{
	size_t tlen = strlen(token);
	for (size_t i = 0; i + tlen <= len; i++) {
		if (strncasecmp(v + i, token, tlen) == 0)
			return true;
	}
	return false;
}

/* Parses the head block (request line + header lines, CRLF separated, no final blank
 * line) into req and h. False when malformed. */
static bool parse_head(char *head, struct fake_request *req, struct parsed_head *h)
{
	char *line_end = strstr(head, "\r\n");
	if (line_end)
		*line_end = '\0';
	char *sp1 = strchr(head, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2)
		return false;
	req->method = strndup(head, (size_t)(sp1 - head));
	req->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	if (!req->method || !req->target)
		return false;
	req->path = path_of_target(req->target);
	bool http10 = strcmp(sp2 + 1, "HTTP/1.0") == 0;
	bool keep_alive_10 = false;

	struct tbuf headers;
	tbuf_init(&headers);
	char *line = line_end ? line_end + 2 : head + strlen(head);
	while (*line) {
		char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		tbuf_append(&headers, line, len);
		tbuf_putc(&headers, '\n');
		char *colon = memchr(line, ':', len);
		if (colon) {
			size_t name_len = (size_t)(colon - line);
			const char *v = colon + 1;
			size_t vlen = len - name_len - 1;
			while (vlen && (*v == ' ' || *v == '\t')) {
				v++;
				vlen--;
			}
			if (header_is(line, name_len, "Content-Length")) {
				h->has_length = true;
				h->content_length = strtoull(v, NULL, 10);
			} else if (header_is(line, name_len, "Transfer-Encoding")) {
				h->chunked = value_has_token(v, vlen, "chunked");
			} else if (header_is(line, name_len, "Expect")) {
				h->expect_continue = value_has_token(v, vlen, "100-continue");
			} else if (header_is(line, name_len, "Connection") ||
				   header_is(line, name_len, "Proxy-Connection")) {
				if (value_has_token(v, vlen, "close"))
					h->close = true;
				if (value_has_token(v, vlen, "keep-alive"))
					keep_alive_10 = true;
			}
		}
		line += len + (end ? 2 : 0);
	}
	if (http10 && !keep_alive_10)
		h->close = true;
	req->headers = tbuf_take(&headers);
	return req->path && req->headers;
}

static bool read_chunked(struct conn *c, struct tbuf *body)
{
	for (;;) {
		long eol = conn_find(c, "\r\n", 4096);
		if (eol < 0)
			return false;
		char *size_text = c->buf + c->pos;
		char *endp = NULL;
		unsigned long long size = strtoull(size_text, &endp, 16);
		if (endp == size_text)
			return false;
		c->pos += (size_t)eol + 2;
		if (size == 0)
			break;
		if (size > FAKE_MAX_BODY || body->len + size > FAKE_MAX_BODY ||
		    !conn_need(c, (size_t)size + 2))
			return false;
		tbuf_append(body, c->buf + c->pos, (size_t)size);
		c->pos += (size_t)size + 2;
	}
	/* Trailer section: header lines up to an empty line. */
	for (;;) {
		long eol = conn_find(c, "\r\n", FAKE_MAX_HEAD);
		if (eol < 0)
			return false;
		c->pos += (size_t)eol + 2;
		if (eol == 0)
			return true;
	}
}

static bool read_body(struct conn *c, const struct parsed_head *h, struct tbuf *body)
{
	if (h->expect_continue && (h->chunked || (h->has_length && h->content_length > 0))) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (!send_all(c->f, c->fd, cont, sizeof(cont) - 1))
			return false;
	}
	if (h->chunked)
		return read_chunked(c, body);
	if (!h->has_length || h->content_length == 0)
		return true;
	if (h->content_length > FAKE_MAX_BODY || !conn_need(c, h->content_length))
		return false;
	tbuf_append(body, c->buf + c->pos, h->content_length);
	c->pos += h->content_length;
	return true;
}

/* Reads one complete request; NULL on EOF, stop, or a malformed request. */
static struct fake_request *read_request(struct conn *c, struct parsed_head *h)
{
	/* Tolerate stray CRLFs between requests (RFC 9112 §2.2). */
	for (;;) {
		if (!conn_need(c, 2))
			return NULL;
		if (c->buf[c->pos] != '\r' || c->buf[c->pos + 1] != '\n')
			break;
		c->pos += 2;
	}
	long head_len = conn_find(c, "\r\n\r\n", FAKE_MAX_HEAD);
	if (head_len < 0)
		return NULL;
	char *head = strndup(c->buf + c->pos, (size_t)head_len);
	c->pos += (size_t)head_len + 4;
	struct fake_request *req = calloc(1, sizeof(*req));
	struct tbuf body;
	tbuf_init(&body);
	memset(h, 0, sizeof(*h));
	if (!head || !req || !parse_head(head, req, h) || !read_body(c, h, &body) || body.oom)
		goto fail;
	req->body_len = body.len;
	req->body = tbuf_take(&body);
	if (!req->body)
		goto fail;
	req->received_ms = clock_now_ms();
	req->connection = c->id;
	free(head);
	return req;
fail:
	tbuf_free(&body);
	fake_request_free(req);
	free(head);
	return NULL;
}

/* ---- answering ---- */

static const char *reason_phrase(int status)
{
	static const struct {
		int code;
		const char *text;
	} table[] = {
		{ 200, "OK" },
		{ 201, "Created" },
		{ 202, "Accepted" },
		{ 204, "No Content" },
		{ 301, "Moved Permanently" },
		{ 302, "Found" },
		{ 304, "Not Modified" },
		{ 307, "Temporary Redirect" },
		{ 400, "Bad Request" },
		{ 401, "Unauthorized" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 409, "Conflict" },
		{ 413, "Content Too Large" },
		{ 422, "Unprocessable Content" },
		{ 425, "Too Early" },
		{ 429, "Too Many Requests" },
		{ 500, "Internal Server Error" },
		{ 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].code == status)
			return table[i].text;
	}
	return "Status";
}

static bool send_reply(struct conn *c, const struct fake_reply *reply, bool head_only,
		       bool close_after)
{
	int status = reply->status ? reply->status : 202;
	const char *body = reply->body ? reply->body : "";
	size_t body_len = strlen(body);
	/* These statuses never carry a body on the wire, whatever the script says. */
	bool bodiless = status == 204 || status == 304 || (status >= 100 && status < 200);
	struct tbuf out;
	tbuf_init(&out);
	tbuf_printf(&out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
	tbuf_printf(&out, "Content-Type: %s\r\n",
		    reply->content_type ? reply->content_type : "application/json");
	tbuf_printf(&out, "Content-Length: %zu\r\n", bodiless ? (size_t)0 : body_len);
	if (reply->retry_after)
		tbuf_printf(&out, "Retry-After: %s\r\n", reply->retry_after);
	if (reply->headers)
		tbuf_puts(&out, reply->headers);
	tbuf_printf(&out, "Connection: %s\r\n\r\n", close_after ? "close" : "keep-alive");
	if (!head_only && !bodiless)
		tbuf_append(&out, body, body_len);
	bool ok = !out.oom && send_all(c->f, c->fd, out.data, out.len);
	tbuf_free(&out);
	return ok;
}

static void close_with_reset(int fd)
{
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
	close(fd);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct fake_ilert *f = c->f;
	for (;;) {
		struct parsed_head h;
		struct fake_request *req = read_request(c, &h);
		if (!req)
			break;
		bool head_only = strcmp(req->method, "HEAD") == 0;
		struct fake_reply reply;
		record_and_pick(f, req, &reply); /* req now belongs to f */
		bool stopped = reply.delay_ms > 0 && !delay_unless_stopped(f, reply.delay_ms);
		if (stopped || reply.reset) {
			if (reply.reset) {
				close_with_reset(c->fd);
				c->fd = -1;
			}
			reply_clear(&reply);
			break;
		}
		bool close_after = h.close || reply.close;
		bool sent = send_reply(c, &reply, head_only, close_after);
		reply_clear(&reply);
		if (!sent || close_after)
			break;
	}
	if (c->fd >= 0) {
		shutdown(c->fd, SHUT_WR);
		close(c->fd);
		c->fd = -1;
	}
	free(c->buf);
	c->buf = NULL;
	pthread_mutex_lock(&f->mu);
	c->finished = true;
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* Joins and frees connections whose threads ended; with all, waits for every one. */
static void conns_reap(struct fake_ilert *f, bool all)
{
	pthread_mutex_lock(&f->mu);
	struct conn **link = &f->conns;
	while (*link) {
		struct conn *c = *link;
		if (!all && !c->finished) {
			link = &c->next;
			continue;
		}
		*link = c->next;
		pthread_mutex_unlock(&f->mu);
		pthread_join(c->thread, NULL);
		free(c);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
}

static void conn_spawn(struct fake_ilert *f, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->f = f;
	c->fd = fd;
	pthread_mutex_lock(&f->mu);
	c->id = ++f->nconns_total;
	/* Linked before the thread starts so stop always finds and joins it. */
	c->next = f->conns;
	f->conns = c;
	if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
		f->conns = c->next;
		pthread_mutex_unlock(&f->mu);
		close(fd);
		free(c);
		return;
	}
	pthread_mutex_unlock(&f->mu);
}

static void *accept_main(void *arg)
{
	struct fake_ilert *f = arg;
	for (;;) {
		if (!wait_ready(f, f->listen_fd, POLLIN, -1))
			break;
		int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			break;
		}
		conns_reap(f, false);
		conn_spawn(f, fd);
	}
	return NULL;
}

/* ---- lifecycle ---- */

static int listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 512) != 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(addr.sin_port);
	return fd;
}

struct fake_ilert *fake_ilert_start(void)
{
	struct fake_ilert *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->listen_fd = f->stop_rd = f->stop_wr = -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->changed, &attr);
	pthread_condattr_destroy(&attr);
	f->default_reply.r.status = 202;
	f->default_reply.r.body = strdup("{}");

	int stop_pipe[2];
	if (!f->default_reply.r.body || pipe2(stop_pipe, O_CLOEXEC) != 0)
		goto fail;
	f->stop_rd = stop_pipe[0];
	f->stop_wr = stop_pipe[1];
	f->listen_fd = listen_loopback(&f->port);
	if (f->listen_fd < 0)
		goto fail;
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
	if (pthread_create(&f->accept_thread, NULL, accept_main, f) != 0)
		goto fail;
	return f;
fail:
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->stop_rd >= 0)
		close(f->stop_rd);
	if (f->stop_wr >= 0)
		close(f->stop_wr);
	reply_clear(&f->default_reply.r);
	pthread_cond_destroy(&f->changed);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return NULL;
}

void fake_ilert_stop(struct fake_ilert *f)
{
	if (!f)
		return;
	char byte = 1;
	ssize_t ignored = write(f->stop_wr, &byte, 1);
	(void)ignored;
	pthread_join(f->accept_thread, NULL);
	conns_reap(f, true);
	close(f->listen_fd);
	close(f->stop_rd);
	close(f->stop_wr);
	fake_ilert_reset(f);
	free(f->reqs);
	reply_clear(&f->default_reply.r);
	pthread_cond_destroy(&f->changed);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

int fake_ilert_port(const struct fake_ilert *f)
{
	return f->port;
}

const char *fake_ilert_url(const struct fake_ilert *f)
{
	return f->url;
}
