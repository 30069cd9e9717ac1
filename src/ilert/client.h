/* HTTP client for the ilert API (SPEC §6.1-§6.3): one libcurl easy handle and its
 * keep-alive connections, request headers, bounded response capture, outcome classes.
 * A client is single-threaded (the daemon makes one per forwarder thread); the pure
 * functions below are safe from any thread; ilert_global_init() runs on the main thread. */
#ifndef ILAGENT_ILERT_CLIENT_H
#define ILAGENT_ILERT_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/config.h"

/* Response bodies are read up to this many bytes; the rest is discarded (§6.1). */
#define ILERT_BODY_LIMIT (1024 * 1024)
/* Retry-After values are capped at this many seconds (§14.5, §23). */
#define ILERT_RETRY_AFTER_CAP_S 3600
/* Size of the transport error text in a result (CURL_ERROR_SIZE). */
#define ILERT_ERROR_SIZE 256

/* Initialises libcurl (and its TLS library) once per process. Must run on the main thread
 * before any thread creates a client; later calls do nothing. Returns 0 or ILA_ERR_IO. */
int ilert_global_init(void);
/* Releases what ilert_global_init() set up, after every client is destroyed. */
void ilert_global_cleanup(void);

enum ilert_base { ILERT_BASE_API = 0, ILERT_BASE_BEAT };
enum ilert_method { ILERT_GET = 0, ILERT_HEAD, ILERT_POST, ILERT_PUT };

/* The calls of §6.2, named as the `endpoint` label of ilagent_ilert_requests_total (§19). */
enum ilert_endpoint {
	ILERT_EP_EVENTS = 0,
	ILERT_EP_EVENTS_MQTT,
	ILERT_EP_EVENTS_KAFKA,
	ILERT_EP_HEARTBEATS,
	ILERT_EP_PINGS,
	ILERT_EP_USERS_SEARCH_EMAIL,
	ILERT_EP_ESCALATION_POLICIES_RESOLVE,
	ILERT_EP_ESCALATION_POLICY_LEVELS,
	ILERT_EP_COUNT
};
const char *ilert_endpoint_label(enum ilert_endpoint ep);

struct ilert_request {
	enum ilert_method method;
	enum ilert_base base;
	enum ilert_endpoint endpoint;
	/* Path after "/api", sent as given (callers encode what they interpolate), e.g.
	 * "/events", "/v1/events/mqtt/", "/escalation-policies/resolve?routing-key=a%20b". */
	const char *path;
	/* A secret path segment appended after path: percent-encoded (§6.1) in the URL and
	 * masked (§2) in log lines. NULL for none. */
	const char *key;
	const char *body; /* NULL: no body (GET, HEAD) */
	size_t body_len;
	/* Send "Authorization: Bearer <api key>" when the client has an API key. */
	bool auth;
};

struct ilert_result {
	long status;       /* HTTP status of the final response; 0 for a transport error */
	bool timed_out;    /* the transport error was the --api_timeout deadline */
	bool aborted;      /* given up because the abort flag was set (ilert_client_set_abort) */
	char error[ILERT_ERROR_SIZE]; /* transport error text; "" when a response arrived */
	char *body;        /* NUL-terminated, at most ILERT_BODY_LIMIT bytes; NULL when no
			    * response arrived */
	size_t body_len;
	bool body_truncated;    /* the response body was longer than ILERT_BODY_LIMIT */
	int64_t retry_after_ms; /* parsed Retry-After (capped); -1 when absent or invalid */
	char *correlation_id;   /* the correlation-id response header, NULL when absent */
	double duration_s;      /* wall time of the request (sub-millisecond for the metrics) */
};

void ilert_result_init(struct ilert_result *res);
/* Frees owned memory and re-initialises; accepts an initialised result. */
void ilert_result_free(struct ilert_result *res);

struct ilert_client;

/* A client for cfg->api_url, cfg->beat_url, cfg->api_timeout and cfg->api_key (all
 * copied). NULL on failure. */
struct ilert_client *ilert_client_create(const struct config *cfg);
void ilert_client_destroy(struct ilert_client *c); /* accepts NULL */

/* Makes the request in progress, and every later one, give up once *flag is non-zero (any
 * thread may set it, e.g. at shutdown): an in-flight transfer ends within about a second.
 * NULL removes it. flag must outlive the client. */
void ilert_client_set_abort(struct ilert_client *c, atomic_int *flag);

/* The URL req goes to: base + "/api" + path + percent-encoded key, or with masked the key
 * in its masked form (§2) for log lines. Caller frees; NULL on out of memory. */
char *ilert_client_url(const struct ilert_client *c, const struct ilert_request *req,
		       bool masked);

/* Makes one request (URL = base + "/api" + path + encoded key; no redirects followed) and
 * counts it in ilagent_ilert_requests_total. res is initialised here (free an earlier result first) and must be freed by the caller
 * whatever the return value. Returns 0 when a response arrived (any status),
 * ILA_ERR_TIMEOUT or ILA_ERR_NET for a transport error (also when aborted, res->aborted
 * set), ILA_ERR_NOMEM when nothing could be sent; res->error describes every non-zero
 * return. */
int ilert_client_send(struct ilert_client *c, const struct ilert_request *req,
		      struct ilert_result *res);

/* §6.3 outcome classes. */
enum ilert_outcome { ILERT_OUTCOME_SUCCESS = 0, ILERT_OUTCOME_RETRYABLE, ILERT_OUTCOME_PERMANENT };

/* Class of an HTTP status; status 0 (no response) is retryable. */
enum ilert_outcome ilert_classify_status(long status);
enum ilert_outcome ilert_result_outcome(const struct ilert_result *res);
/* The `cause` label of a retryable result (§19): "network", "timeout", "http_408",
 * "http_425", "http_429", "http_5xx"; NULL when the result is not retryable. */
const char *ilert_retry_cause(const struct ilert_result *res);
/* The `code` label of ilagent_ilert_requests_total: the status ("202"), "timeout" or
 * "network". Writes into out (≥ 16 bytes) and returns it. */
char *ilert_code_label(const struct ilert_result *res, char *out, size_t out_size);

/* The first max_chars characters of a response body (all of it if shorter) as one line:
 * bytes that are not UTF-8 become U+FFFD, CR and LF become spaces, a NUL byte ends it.
 * body may be NULL ("").
 * Caller frees; NULL on out of memory. */
char *ilert_body_excerpt(const char *body, size_t len, size_t max_chars);

/* Parses a Retry-After value (delta-seconds, or an HTTP-date in IMF-fixdate, RFC 850 or
 * asctime form) relative to now_ms (Unix ms). *delay_ms := the delay, 0 for a date in the
 * past, at most ILERT_RETRY_AFTER_CAP_S seconds. Returns 0 or ILA_ERR_INVALID. */
int ilert_parse_retry_after(const char *value, int64_t now_ms, int64_t *delay_ms);

#endif
