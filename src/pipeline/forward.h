/* Delivery of one queued item to ilert and the decision about its row (SPEC §14.4-§14.8):
 * builds the request (event §6.4, heartbeat §6.5, policy steps §14.7), classifies the outcome
 * (§6.3), computes the retry delay (full jitter, Retry-After, 429 floor) and reports what the
 * dispatcher must remember (host brake, 429 cool-down). Plus the small policy helpers the
 * dispatcher owns: host brake, per-key rate limiter and cool-down table.
 * forward_deliver runs on a forwarder thread with that thread's own ilert client; a
 * rate_limiter / cooldown table / host_brake belongs to one thread (the dispatcher). */
#ifndef ILAGENT_PIPELINE_FORWARD_H
#define ILAGENT_PIPELINE_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ilert/client.h"
#include "ops/metrics.h"
#include "store/queue.h"

enum forward_action {
	FWD_DELETE,     /* delivered (2xx): delete the row */
	FWD_RESCHEDULE, /* retryable failure: attempts, next_attempt_at, last_status/error */
	FWD_DEAD,       /* permanent failure or attempts exhausted: move to dead letters */
	FWD_EXPIRED,    /* heartbeat older than its TTL: delete without a request */
	FWD_UNCHANGED,  /* not attempted or abandoned at shutdown: the row stays as it is
			 * (never produced by forward_deliver) */
};

/* Settings from the config that delivery needs. */
struct forward_settings {
	int64_t max_retries;   /* 0 = unlimited */
	int retry_max_backoff; /* seconds */
	int policy_cache_ttl;  /* seconds, 0 = off */
};

struct forward_result {
	enum forward_action action;
	int64_t attempts;        /* attempts after this delivery (a request made counts) */
	int64_t next_attempt_at; /* FWD_RESCHEDULE: Unix ms */
	int last_status;         /* HTTP status of the last request, 0 = transport error / none */
	char *last_error;        /* heap, may be NULL */
	char *body;              /* heap: last response body (for the dead-letter excerpt) */
	size_t body_len;
	enum store_dead_reason dead_reason;  /* FWD_DEAD */
	bool retried;                        /* FWD_RESCHEDULE: count ilagent_retried_total */
	enum metric_retry_cause retry_cause; /* ... with this cause */
	/* What the dispatcher must remember: */
	enum ilert_base host;     /* the host the request went to */
	bool host_failed;         /* transport error, timeout or 5xx: brake the host */
	int64_t host_hint_ms;     /* 503 Retry-After delay for the brake, 0 = none */
	bool host_ok;             /* a response that releases the brake */
	int64_t cooldown_until;   /* 429 on an event: no event of this integration key before */
	double duration_s;        /* time spent in requests */
};

/* Delivers item once (one attempt; a policy item runs its steps) and fills res. now_ms is the
 * dispatch time (for the heartbeat TTL and the retry time). Returns 0, or ILA_ERR_NOMEM. */
int forward_deliver(struct ilert_client *client, const struct forward_settings *settings,
		    const struct store_item *item, int64_t now_ms, struct forward_result *res);
void forward_result_clear(struct forward_result *res);

/* §14.5: a uniformly random delay in [0, min(max_backoff_s, 1 s × 2^(attempt-1))] ms, at least
 * 100 ms. random is a uniformly distributed 64-bit value supplied by the caller. */
int64_t forward_backoff_ms(int64_t attempt, int max_backoff_s, uint64_t random);

/* Host brake (§14.5): after a failure no request to the host starts for 1 s, doubling per
 * further consecutive failure up to max_backoff_s (or the hint), until a success. */
struct host_brake {
	int failures;
	int64_t until_ms;
};
void host_brake_fail(struct host_brake *b, int64_t now_ms, int max_backoff_s, int64_t hint_ms);
void host_brake_ok(struct host_brake *b);
bool host_brake_active(const struct host_brake *b, int64_t now_ms);

/* Per-integration-key limits of event deliveries (§14.3 rolling 60 s window, §14.5 cool-down),
 * at most max_keys keys each (least recently used forgotten). */
struct rate_limiter;
struct rate_limiter *rate_limiter_create(int per_minute, size_t max_keys); /* NULL if 0 */
void rate_limiter_destroy(struct rate_limiter *rl);
/* 0 when a delivery may start now, else the earliest Unix ms it may. */
int64_t rate_limiter_wait(struct rate_limiter *rl, const char *key, int64_t now_ms);
void rate_limiter_record(struct rate_limiter *rl, const char *key, int64_t now_ms);

struct cooldown_table;
struct cooldown_table *cooldown_table_create(size_t max_keys);
void cooldown_table_destroy(struct cooldown_table *t);
void cooldown_set(struct cooldown_table *t, const char *key, int64_t until_ms);
/* 0 when the key is not cooling down at now_ms, else the Unix ms it ends. */
int64_t cooldown_until(struct cooldown_table *t, const char *key, int64_t now_ms);

#endif
