/* A scriptable fake ilert API for tests: an HTTP/1.1 server on 127.0.0.1 that answers each
 * request with the next scripted reply (or the default reply), and records every request.
 * It can also act as an HTTP proxy target (absolute-form request lines are recorded as is).
 * Thread safe: the test thread scripts and inspects while server threads answer. */
#ifndef ILAGENT_TEST_FAKE_ILERT_H
#define ILAGENT_TEST_FAKE_ILERT_H

#include <stdbool.h>
#include <stddef.h>

struct fake_reply {
	int status;              /* HTTP status; 0 means 202 */
	const char *body;        /* response body; NULL = empty */
	const char *content_type;/* NULL = application/json */
	const char *retry_after; /* value of a Retry-After header, NULL = none */
	const char *headers;     /* extra raw header lines "Name: value\r\n...", NULL = none */
	int delay_ms;            /* wait this long before answering (for timeouts) */
	bool reset;              /* close the connection with a TCP RST instead of answering;
	                          * curl resends a request reset on a reused connection once
	                          * on a fresh one (PLATFORM.md), which takes the next reply */
	bool close;              /* answer with "Connection: close", then close the connection */
};

struct fake_request {
	char *method;      /* "POST", "GET", "HEAD", "PUT" */
	char *target;      /* request target as sent: "/api/events?x=1", or absolute form via proxy */
	char *path;        /* target without query string and without scheme://host of absolute form */
	char *headers;     /* all header lines, "Name: value\n" each, as received */
	char *body;        /* request body, NUL-terminated */
	size_t body_len;
	long long received_ms; /* CLOCK_REALTIME ms when the request was complete */
	int connection;    /* 1-based number of the TCP connection it arrived on (keep-alive) */
};

struct fake_ilert;

/* Starts on an ephemeral port of 127.0.0.1. NULL on failure. Requests are recorded before
 * they are answered; each connection keeps alive until the client closes or asks to. */
struct fake_ilert *fake_ilert_start(void);
/* Closes every connection (pending delays are abandoned unanswered), joins all threads and
 * frees everything; returns promptly. Accepts NULL. */
void fake_ilert_stop(struct fake_ilert *f);
int fake_ilert_port(const struct fake_ilert *f);
/* "http://127.0.0.1:<port>" (owned by f). */
const char *fake_ilert_url(const struct fake_ilert *f);

/* Queues a reply for the next unanswered request (FIFO). Strings are copied. */
void fake_ilert_push(struct fake_ilert *f, const struct fake_reply *reply);
/* Queues the same reply n times. */
void fake_ilert_push_n(struct fake_ilert *f, const struct fake_reply *reply, int n);
/* Reply used when the script is empty (initially 202 with body "{}"). Copied. */
void fake_ilert_set_default(struct fake_ilert *f, const struct fake_reply *reply);

/* Number of requests recorded so far (complete requests, including reset ones). */
int fake_ilert_count(struct fake_ilert *f);
/* Number of TCP connections accepted so far (not cleared by fake_ilert_reset). */
int fake_ilert_connection_count(struct fake_ilert *f);
/* Waits up to timeout_ms until at least n requests were recorded; returns the count. */
int fake_ilert_wait_count(struct fake_ilert *f, int n, int timeout_ms);
/* Copy of recorded request i (0-based); NULL if out of range. Free with
 * fake_request_free(). */
struct fake_request *fake_ilert_request(struct fake_ilert *f, int i);
void fake_request_free(struct fake_request *r); /* accepts NULL */
/* Value of header name (case-insensitive) in r, as a heap copy; NULL if absent. */
char *fake_request_header(const struct fake_request *r, const char *name);
/* Forgets recorded requests and scripted replies (the default reply stays). */
void fake_ilert_reset(struct fake_ilert *f);

#endif
