#include "sink.h"

#include "core/err.h"
#include "core/text.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char sink_reply_body[] = "{}";

struct sink {
	struct MHD_Daemon *daemon;
	struct MHD_Response *reply; /* shared by every answer: built once */
	unsigned int status;
	int port;
	int record_fd;
	/* Stands for "request seen" when no per-request state is needed (no recording), so the
	 * hot path allocates nothing. */
	char no_state;
	_Atomic uint64_t requests;
	_Atomic uint64_t by_family[SINK_FAMILY_COUNT];
};

/* Request body collected for --record. */
struct sink_request {
	struct tbuf body;
};

static const struct {
	const char *path;
	const char *key;
} family_names[SINK_FAMILY_COUNT] = {
	[SINK_EVENTS] = { "/api/events", "events" },
	[SINK_MQTT] = { "/api/v1/events/mqtt", "mqtt" },
	[SINK_KAFKA] = { "/api/v1/events/kafka", "kafka" },
	[SINK_HEARTBEATS] = { "/api/heartbeats", "heartbeats" },
	[SINK_PINGS] = { "/api/pings", "pings" },
	[SINK_OTHER] = { "other", "other" },
};

const char *sink_family_path(enum sink_family fam)
{
	return (int)fam >= 0 && (int)fam < SINK_FAMILY_COUNT ? family_names[fam].path : "other";
}

const char *sink_family_key(enum sink_family fam)
{
	return (int)fam >= 0 && (int)fam < SINK_FAMILY_COUNT ? family_names[fam].key : "other";
}

/* base itself or base followed by a further path segment. */
static bool path_in_family(const char *path, const char *base)
{
	size_t n = strlen(base);
	return strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

enum sink_family sink_classify(const char *path)
{
	for (int fam = 0; fam < SINK_OTHER; fam++) {
		if (path_in_family(path, family_names[fam].path))
			return (enum sink_family)fam;
	}
	return SINK_OTHER;
}

int sink_stats_json(const struct sink_stats *st, char *out, size_t out_size)
{
	return snprintf(out, out_size,
			"{\"requests\":%llu,\"events\":%llu,\"mqtt\":%llu,\"kafka\":%llu,"
			"\"heartbeats\":%llu,\"pings\":%llu,\"other\":%llu}",
			(unsigned long long)st->requests,
			(unsigned long long)st->by_family[SINK_EVENTS],
			(unsigned long long)st->by_family[SINK_MQTT],
			(unsigned long long)st->by_family[SINK_KAFKA],
			(unsigned long long)st->by_family[SINK_HEARTBEATS],
			(unsigned long long)st->by_family[SINK_PINGS],
			(unsigned long long)st->by_family[SINK_OTHER]);
}

void sink_get_stats(const struct sink *s, struct sink_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->requests = atomic_load_explicit(&s->requests, memory_order_relaxed);
	for (int i = 0; i < SINK_FAMILY_COUNT; i++)
		st->by_family[i] = atomic_load_explicit(&s->by_family[i], memory_order_relaxed);
}

int sink_port(const struct sink *s)
{
	return s->port;
}

/* ---- recording ---- */

static json_t *body_as_json(const struct tbuf *body)
{
	const char *data = body->data ? body->data : "";
	if (text_utf8_valid(data, body->len))
		return json_stringn(data, body->len);
	/* Invalid UTF-8 cannot be a JSON string: record it with U+FFFD replacements. The
	 * sanitizer works on C strings, so NUL-separated pieces go through one by one. */
	struct tbuf clean;
	tbuf_init(&clean);
	size_t off = 0;
	while (off <= body->len) {
		const char *nul = memchr(data + off, '\0', body->len - off);
		size_t piece = nul ? (size_t)(nul - (data + off)) : body->len - off;
		char *fixed = text_utf8_sanitize(data + off, piece, piece * 3);
		if (!fixed) {
			tbuf_free(&clean);
			return NULL;
		}
		tbuf_puts(&clean, fixed);
		free(fixed);
		if (!nul)
			break;
		tbuf_putc(&clean, '\0');
		off += piece + 1;
	}
	json_t *j = clean.oom ? NULL : json_stringn(tbuf_cstr(&clean), clean.len);
	tbuf_free(&clean);
	return j;
}

static void record_request(struct sink *s, const char *method, const char *path,
			   const struct tbuf *body)
{
	json_t *line = json_object();
	json_object_set_new(line, "method", json_string(method));
	json_object_set_new(line, "path", json_string(path));
	json_t *jbody = body_as_json(body);
	json_object_set_new(line, "body", jbody ? jbody : json_null());
	char *text = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!text)
		return;
	size_t len = strlen(text);
	text[len] = '\n'; /* json_dumps leaves no room: write the NUL slot as the newline */
	/* One write per line with O_APPEND keeps lines from different threads whole. */
	ssize_t ignored = write(s->record_fd, text, len + 1);
	(void)ignored;
	free(text);
}

/* ---- request handling ---- */

static enum MHD_Result answer_stats(struct sink *s, struct MHD_Connection *conn)
{
	struct sink_stats st;
	sink_get_stats(s, &st);
	char json[512];
	int len = sink_stats_json(&st, json, sizeof(json));
	struct MHD_Response *resp =
		MHD_create_response_from_buffer((size_t)len, json, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result sink_handle(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version,
				   const char *upload_data, size_t *upload_data_size,
				   void **req_cls)
{
	(void)version;
	struct sink *s = cls;
	if (!*req_cls) {
		/* First call: headers only. Answering later lets MHD read the whole body. */
		if (s->record_fd < 0) {
			*req_cls = &s->no_state;
			return MHD_YES;
		}
		struct sink_request *r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		tbuf_init(&r->body);
		*req_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (*req_cls != &s->no_state) {
			struct sink_request *r = *req_cls;
			tbuf_append(&r->body, upload_data, *upload_data_size);
		}
		*upload_data_size = 0; /* consumed (discarded unless recording) */
		return MHD_YES;
	}
	if (strcmp(url, SINK_STATS_PATH) == 0)
		return answer_stats(s, conn);
	enum sink_family fam = sink_classify(url);
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->by_family[fam], 1, memory_order_relaxed);
	if (*req_cls != &s->no_state) {
		struct sink_request *r = *req_cls;
		record_request(s, method, url, &r->body);
	}
	return MHD_queue_response(conn, s->status, s->reply);
}

static void sink_request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
			      enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	(void)toe;
	struct sink *s = cls;
	if (*req_cls && *req_cls != &s->no_state) {
		struct sink_request *r = *req_cls;
		tbuf_free(&r->body);
		free(r);
	}
	*req_cls = NULL;
}

/* ---- lifecycle ---- */

union sink_addr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

static int parse_bind(const char *text, int port, union sink_addr *addr, bool *v6)
{
	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, text, &addr->v4.sin_addr) == 1) {
		addr->v4.sin_family = AF_INET;
		addr->v4.sin_port = htons((uint16_t)port);
		*v6 = false;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &addr->v6.sin6_addr) == 1) {
		addr->v6.sin6_family = AF_INET6;
		addr->v6.sin6_port = htons((uint16_t)port);
		*v6 = true;
		return 0;
	}
	return ILA_ERR_INVALID;
}

static int bound_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

int sink_start(const struct sink_options *opts, struct sink **out)
{
	*out = NULL;
	int status = opts->status ? opts->status : 202;
	int threads = opts->threads ? opts->threads : 2;
	if (opts->port < 0 || opts->port > 65535 || status < 100 || status > 599 || threads < 1 ||
	    threads > 256)
		return ILA_ERR_INVALID;
	union sink_addr addr;
	bool v6 = false;
	if (parse_bind(opts->bind ? opts->bind : "127.0.0.1", opts->port, &addr, &v6) != 0)
		return ILA_ERR_INVALID;

	struct sink *s = calloc(1, sizeof(*s));
	if (!s)
		return ILA_ERR_NOMEM;
	s->status = (unsigned int)status;
	s->record_fd = -1;
	if (opts->record) {
		s->record_fd = open(opts->record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (s->record_fd < 0) {
			free(s);
			return ILA_ERR_IO;
		}
	}
	s->reply = MHD_create_response_from_buffer(sizeof(sink_reply_body) - 1,
						   (void *)sink_reply_body, MHD_RESPMEM_PERSISTENT);
	if (!s->reply) {
		sink_stop(s);
		return ILA_ERR_NOMEM;
	}
	MHD_add_response_header(s->reply, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");

	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO;
	if (v6)
		flags |= MHD_USE_IPv6;
	/* A pool of one is the plain internal thread. */
	unsigned int pool = threads > 1 ? (unsigned int)threads : 0;
	s->daemon = MHD_start_daemon(
		flags, (uint16_t)opts->port, NULL, NULL, sink_handle, s, MHD_OPTION_SOCK_ADDR,
		&addr.sa, MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned int)10000, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
		MHD_OPTION_NOTIFY_COMPLETED, sink_request_done, s, MHD_OPTION_END);
	if (!s->daemon) {
		sink_stop(s);
		return ILA_ERR_IO;
	}
	s->port = bound_port(s->daemon);
	*out = s;
	return 0;
}

void sink_stop(struct sink *s)
{
	if (!s)
		return;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	if (s->reply)
		MHD_destroy_response(s->reply);
	if (s->record_fd >= 0)
		close(s->record_fd);
	free(s);
}
