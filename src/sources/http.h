/* The HTTP source (SPEC §10, §18, §19): libmicrohttpd server with the event routes, the
 * heartbeat proxy, /health, /ready, /metrics and /. Requests waiting for their commit or a
 * proxied ping are suspended connections, never blocked server threads.
 * http_source_start/stop are called by the daemon's main thread. */
#ifndef ILAGENT_SOURCES_HTTP_H
#define ILAGENT_SOURCES_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/config.h"
#include "core/intake.h"

struct http_source;

/* Binds --bind:-p and starts serving. cfg must outlive the source; *intake is copied. On a
 * bind failure returns ILA_ERR_IO with msg set to
 * "Failed to bind to http port <addr>:<port>: <reason>" (an IPv6 address in brackets). */
int http_source_start(const struct config *cfg, const struct intake *intake,
		      struct http_source **out, char *msg, size_t msg_size);
/* Stops accepting, answers what is in progress, closes all connections, frees. Accepts NULL.
 * Waits until every admitted message's ticket has completed (the daemon drains the pipeline
 * first); proxied pings in flight are aborted and requests still waiting for room in the
 * intake ring get 503 "Shutting down.". */
void http_source_stop(struct http_source *src);
/* The port actually bound (useful with tests that bind port 0 is not allowed by -p, so this
 * simply returns cfg->port). */
int http_source_port(const struct http_source *src);

/* The limits and waits of §10.1, §10.7, §15 and §23. http_source_start uses the defaults;
 * tests start with shorter waits through http_source_start_with. */
struct http_source_settings {
	int thread_pool;      /* server threads: 2 */
	int connection_limit; /* concurrent connections: 512 */
	int idle_timeout_s;   /* an idle connection is closed after: 15 */
	int admit_wait_ms;    /* how long a request may wait for room in the intake ring: 5000 */
	int max_pings;        /* proxied heartbeats in flight: 32 */
};
void http_source_settings_default(struct http_source_settings *s);
int http_source_start_with(const struct config *cfg, const struct intake *intake,
			   const struct http_source_settings *settings, struct http_source **out,
			   char *msg, size_t msg_size);
/* The settings the running source was started with. */
const struct http_source_settings *http_source_settings(const struct http_source *src);

/* §10.5: true for a JSON media type (application/json, <type>/json, <type>/<name>+json),
 * parameters allowed, letter case ignored. value may be NULL (false). Any thread. */
bool http_content_type_is_json(const char *value);

#endif
