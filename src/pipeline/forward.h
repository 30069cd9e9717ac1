/* Delivery of one queued item to ilert and the verdict on its row (SPEC §14.4-§14.8), plus the
 * host brake, rate limiter and 429 cool-down the dispatcher keeps. forward_deliver: a forwarder
 * thread with its own client; policy_cache: any thread; brake/limiter/cool-down: one thread. */
#ifndef ILAGENT_PIPELINE_FORWARD_H
#define ILAGENT_PIPELINE_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ilert/client.h"
#include "ops/metrics.h"
#include "store/queue.h"

/* SPEC §23 constants used by delivery and by its callers. */
#define FORWARD_HEARTBEAT_TTL_MS 60000      /* a heartbeat item expires 60 s after acceptance */
#define FORWARD_RETRY_FLOOR_MS 100          /* every computed delay is at least this */
#define FORWARD_RETRY_429_FLOOR_MS 10000    /* 429 without Retry-After */
#define FORWARD_RATE_WINDOW_MS 60000        /* --rate_limit window */
#define FORWARD_MAX_KEYS 10000              /* rate-limit / cool-down / policy cache entries */

enum forward_action {
	FWD_DELETE,     /* delivered (2xx): delete the row */
	FWD_RESCHEDULE, /* retryable failure: write attempts, next_attempt_at, last_status/error */
	FWD_DEAD,       /* permanent failure or attempts exhausted: move to dead letters */
	FWD_EXPIRED,    /* heartbeat past its TTL (before sending, or its retry would start after
			 * it): delete, count as expired */
	FWD_UNCHANGED,  /* no attempt counted: the request was aborted at shutdown (or the item
			 * never started); the row stays exactly as it is */
};

/* Lookups of policy items (§14.7): email → user id and routing key → policy id with the
 * escalation timeouts of its rules, each at most max_entries (least recently used forgotten).
 * Thread safe. */
struct policy_cache;
struct policy_cache *policy_cache_create(size_t max_entries); /* NULL on out of memory */
void policy_cache_destroy(struct policy_cache *c);              /* accepts NULL */

/* Settings from the config that delivery needs. */
struct forward_settings {
	int64_t max_retries;   /* --max_retries; 0 = unlimited */
	int retry_max_backoff; /* --retry_max_backoff, seconds */
	int policy_cache_ttl;  /* --policy_cache_ttl, seconds; 0 = no caching */
	/* The cache the forwarders share; NULL uses one process-wide cache. */
	struct policy_cache *cache;
};

struct forward_result {
	enum forward_action action;
	int64_t attempts;        /* attempts after this delivery: +1 when a request was made */
	int64_t next_attempt_at; /* FWD_RESCHEDULE: Unix ms */
	int last_status;         /* HTTP status of the deciding request; 0 = transport error/none */
	char *last_error;        /* heap, NULL on success; names the policy step that failed */
	char *body;              /* heap: start of the deciding response body, enough for the
				  * dead-letter excerpt (§14.8); NULL when there was none */
	size_t body_len;
	enum store_dead_reason dead_reason;  /* FWD_DEAD */
	bool retried;                        /* FWD_RESCHEDULE: count ilagent_retried_total */
	enum metric_retry_cause retry_cause; /* ... with this cause */
	/* What the dispatcher must remember (valid whatever the action): */
	enum ilert_base host;   /* the host the requests went to */
	bool host_ok;           /* some request got a 2xx: release the host's brake first */
	bool host_failed;       /* the deciding request failed by transport error, timeout or 5xx:
				 * then brake the host */
	int64_t host_hint_ms;   /* 503 with Retry-After: the brake lasts this long, 0 = none */
	int64_t cooldown_until; /* 429 on an event: no event of its integration key starts
				 * before this Unix ms, 0 = none */
	double duration_s;      /* time spent in requests */
};

/* Makes one delivery attempt of item (a policy item runs its steps) and fills res. now_ms is
 * the start time (Unix ms): it decides heartbeat expiry and the retry time. The ilert
 * requests use client; an abort of the client (ilert_client_set_abort) yields FWD_UNCHANGED.
 * Returns 0, or ILA_ERR_NOMEM with res cleared. Clear res with forward_result_clear(). */
int forward_deliver(struct ilert_client *client, const struct forward_settings *settings,
		    const struct store_item *item, int64_t now_ms, struct forward_result *res);
void forward_result_clear(struct forward_result *res);

/* §14.5: a uniformly random delay in [0, min(max_backoff_s s, 1 s × 2^(attempt−1))] ms,
 * raised to at least 100 ms. attempt is the number of failed attempts so far (≥ 1); random is
 * a uniformly distributed 64-bit value supplied by the caller. */
int64_t forward_backoff_ms(int64_t attempt, int max_backoff_s, uint64_t random);

/* Host brake (§14.5). A failure brakes the host for 1 s, doubling with each further
 * consecutive failure up to max_backoff_s; a hint (503 Retry-After) replaces that delay.
 * A failure reported while the brake is on came from a request started before it (none
 * start while braked), so it does not double the delay; its hint may extend it. The first
 * success releases the brake and resets the doubling. */
struct host_brake {
	int failures; /* consecutive failures that set or doubled the brake */
	int64_t until_ms;
};
void host_brake_fail(struct host_brake *b, int64_t now_ms, int max_backoff_s, int64_t hint_ms);
void host_brake_ok(struct host_brake *b);
bool host_brake_active(const struct host_brake *b, int64_t now_ms);

/* §14.3: at most per_minute starts per key in any rolling 60 s window, exactly; at most
 * max_keys keys are tracked (least recently used forgotten). NULL when per_minute is 0 (no
 * limit) or out of memory. */
struct rate_limiter;
struct rate_limiter *rate_limiter_create(int per_minute, size_t max_keys);
void rate_limiter_destroy(struct rate_limiter *rl); /* accepts NULL */
/* 0 when a start at now_ms keeps every window within the limit, else the earliest Unix ms
 * at which one does. */
int64_t rate_limiter_wait(struct rate_limiter *rl, const char *key, int64_t now_ms);
/* Records a start at now_ms (times must not go backwards per key). */
void rate_limiter_record(struct rate_limiter *rl, const char *key, int64_t now_ms);
/* Takes back the most recent start recorded for key: a row was handed out but came back
 * unstarted, so it must not use up a delivery of the window. */
void rate_limiter_unrecord(struct rate_limiter *rl, const char *key);

/* §14.5 429 cool-down per integration key; at most max_keys keys (least recently used
 * forgotten; keys whose cool-down has ended are dropped when looked up). */
struct cooldown_table;
struct cooldown_table *cooldown_table_create(size_t max_keys); /* NULL on out of memory */
void cooldown_table_destroy(struct cooldown_table *t);         /* accepts NULL */
/* Holds the key back until until_ms (a later deadline already set is kept). */
void cooldown_set(struct cooldown_table *t, const char *key, int64_t until_ms);
/* 0 when the key is not cooling down at now_ms, else the Unix ms it ends. */
int64_t cooldown_until(struct cooldown_table *t, const char *key, int64_t now_ms);

#endif
