/* A fast stand-in for the ilert API for load tests: answers every request with one fixed
 * status and "{}", counts requests per ilert path family, and optionally records them.
 * sink_start/sink_stop from one controlling thread; sink_get_stats from any thread. */
#ifndef ILAGENT_TEST_SINK_H
#define ILAGENT_TEST_SINK_H

#include <stddef.h>
#include <stdint.h>

/* GET (any method) of this path answers the counters as JSON and is not counted itself. */
#define SINK_STATS_PATH "/_sink/stats"

struct sink_options {
	const char *bind;   /* IPv4 or IPv6 literal; NULL = "127.0.0.1" */
	int port;           /* 0 = ephemeral */
	int status;         /* answer status; 0 = 202 */
	int threads;        /* server threads; 0 = 2 */
	const char *record; /* append one JSON line per request here; NULL = no recording */
};

/* The ilert path families the counters distinguish (SPEC §6.2). */
enum sink_family {
	SINK_EVENTS,     /* /api/events */
	SINK_MQTT,       /* /api/v1/events/mqtt/... */
	SINK_KAFKA,      /* /api/v1/events/kafka/... */
	SINK_HEARTBEATS, /* /api/heartbeats/... */
	SINK_PINGS,      /* /api/pings/... */
	SINK_OTHER,
	SINK_FAMILY_COUNT
};

struct sink_stats {
	uint64_t requests; /* everything but SINK_STATS_PATH */
	uint64_t by_family[SINK_FAMILY_COUNT];
};

struct sink;

/* Starts serving. Returns 0 and *out, or ILA_ERR_INVALID (bad options), ILA_ERR_IO (bind or
 * record file failed), ILA_ERR_NOMEM. */
int sink_start(const struct sink_options *opts, struct sink **out);
/* Closes all connections, joins the server threads, frees. Accepts NULL. */
void sink_stop(struct sink *s);
/* The port actually bound (useful with port 0). */
int sink_port(const struct sink *s);
/* A snapshot of the counters (each read atomically; the set is not one instant). */
void sink_get_stats(const struct sink *s, struct sink_stats *st);

/* Which family a request path (without query) belongs to. */
enum sink_family sink_classify(const char *path);
/* The family's display name: "/api/events", ..., "other". */
const char *sink_family_path(enum sink_family fam);
/* The family's key in the stats JSON: "events", "mqtt", "kafka", "heartbeats", "pings",
 * "other". */
const char *sink_family_key(enum sink_family fam);
/* {"requests":N,"events":N,"mqtt":N,"kafka":N,"heartbeats":N,"pings":N,"other":N} into out;
 * returns the length snprintf would have produced. */
int sink_stats_json(const struct sink_stats *st, char *out, size_t out_size);

#endif
