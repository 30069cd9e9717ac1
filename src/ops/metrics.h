/* Prometheus metrics of SPEC §19: a fixed set of families with bounded label values, kept
 * as atomic counters/gauges in one process-wide registry, rendered as text format 0.0.4.
 * Any thread may update; metrics_render may run on any thread concurrently with updates. */
#ifndef ILAGENT_OPS_METRICS_H
#define ILAGENT_OPS_METRICS_H

#include <stdint.h>

#include "core/message.h"
#include "store/queue.h"

/* Label value sets. */
enum metric_reject {
	MR_INVALID, MR_TOO_LARGE, MR_UNMATCHED_TOPIC, MR_UNAUTHORIZED, MR_QUEUE_FULL, MR_BUSY,
	MR_SHUTTING_DOWN, MR_STORE_ERROR, MR_COUNT
};
enum metric_retry_cause {
	MC_NETWORK, MC_TIMEOUT, MC_HTTP_408, MC_HTTP_425, MC_HTTP_429, MC_HTTP_5XX,
	MC_INVALID_RESPONSE, MC_STALE_CACHE, MC_COUNT
};
enum metric_endpoint {
	ME_EVENTS, ME_EVENTS_MQTT, ME_EVENTS_KAFKA, ME_HEARTBEATS, ME_PINGS,
	ME_USERS_SEARCH_EMAIL, ME_ESCALATION_POLICIES_RESOLVE, ME_ESCALATION_POLICY_LEVELS,
	ME_COUNT
};
enum metric_route {
	MRT_ROOT, MRT_HEALTH, MRT_READY, MRT_METRICS, MRT_EVENTS, MRT_EVENTS_BATCH,
	MRT_HEARTBEATS, MRT_OTHER, MRT_COUNT
};
enum metric_ping_origin { MP_PINGER, MP_PROXY, MP_COUNT };
enum metric_component { MCOMP_DAEMON, MCOMP_MQTT, MCOMP_KAFKA, MCOMP_QUEUE, MCOMP_COUNT };
enum metric_ring { MRING_INTAKE, MRING_DISPATCH, MRING_COUNT };

#define METRIC_KIND_COUNT 3 /* store_kind event, heartbeat, policy */

/* Resets everything and records the process start time. Call once at startup. */
void metrics_init(void);

void metrics_received(enum source s, uint64_t n);
void metrics_rejected(enum source s, enum metric_reject reason, uint64_t n);
void metrics_filtered(enum source s);
void metrics_deduplicated(enum source s, uint64_t n);
void metrics_committed(enum source s, enum store_kind k, uint64_t n);
void metrics_forwarded(enum source s, enum store_kind k);
void metrics_retried(enum source s, enum store_kind k, enum metric_retry_cause cause);
void metrics_dead_lettered(enum source s, enum store_kind k, enum store_dead_reason reason);
void metrics_heartbeat_expired(enum source s);
void metrics_dead_letters_evicted(uint64_t n);
/* status: an HTTP status, or 0 for a transport error with timed_out telling which. Series
 * with a code label appear once their code was counted; a status outside 100-599 is not. */
void metrics_ilert_request(enum metric_endpoint e, int status, int timed_out);
void metrics_http_request(enum metric_route r, int status);
void metrics_heartbeat_ping(enum metric_ping_origin o, int success);
void metrics_policy_cache(int user_cache, int hit);
void metrics_mqtt_connection(int success);
void metrics_tls_reload(int applied);
void metrics_kafka_rebalance(int assign);
void metrics_intake_pause(void);

/* Gauges. */
void metrics_set_queue_rows(enum store_kind k, int64_t rows);
void metrics_set_retrying_rows(int64_t rows);
void metrics_set_oldest_age(double seconds);
void metrics_set_dead_rows(int64_t rows);
void metrics_set_legacy_rows(int64_t rows);
void metrics_add_in_flight(int delta);
void metrics_set_ring_fill(enum metric_ring r, double ratio);
void metrics_set_paused(int paused);
/* enabled: whether the component exists in this run (disabled ones are not exported). */
void metrics_set_component(enum metric_component c, int enabled, int ready);

/* Histograms (seconds). A negative duration counts as 0, NaN is ignored. */
void metrics_observe_commit_latency(double seconds);
void metrics_observe_forward_duration(enum store_kind k, double seconds);
void metrics_observe_delivery_delay(enum store_kind k, double seconds);

/* The Content-Type of the text metrics_render returns. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The whole exposition text (heap string, caller frees); NULL on out of memory. */
char *metrics_render(void);

#endif
