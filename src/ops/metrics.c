/* The process-wide registry of SPEC §19 and its Prometheus text rendering.
 *
 * Every value is one lock-free 64-bit atomic in a single static struct: counters and
 * integer gauges directly, double gauges and histogram sums as the bits of the double.
 * Updates use relaxed ordering: each series only has to be exact on its own, no reader
 * relies on an order between two series. Updates never allocate or lock; only the
 * renderer allocates its output buffer. */
#include "ops/metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/text.h"
#include "version.h"

typedef _Atomic uint64_t metric_u64;

#define NKIND METRIC_KIND_COUNT
#define NSOURCE SOURCE_COUNT
#define NDEAD 2 /* permanent, exhausted */

/* The code label: one slot per status 100-599, then `network` and `timeout`. A fixed
 * table keeps the update allocation-free; a status outside the range cannot come from a
 * well-formed HTTP exchange and is not counted. */
#define CODE_FIRST 100
#define CODE_LAST 599
#define CODE_NETWORK (CODE_LAST - CODE_FIRST + 1)
#define CODE_TIMEOUT (CODE_NETWORK + 1)
#define CODE_SLOTS (CODE_TIMEOUT + 1)

#define MAX_BOUNDS 12

struct histogram {
	metric_u64 buckets[MAX_BOUNDS + 1]; /* per bucket, not cumulative; last is +Inf */
	metric_u64 sum_bits;
};

struct histogram_spec {
	const char *name;
	int nbounds;
	double bounds[MAX_BOUNDS];
};

static const struct histogram_spec commit_latency_spec = {
	"ilagent_commit_latency_seconds", 12,
	{ 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 },
};
static const struct histogram_spec forward_duration_spec = {
	"ilagent_forward_duration_seconds", 12,
	{ 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60 },
};
static const struct histogram_spec delivery_delay_spec = {
	"ilagent_delivery_delay_seconds", 11,
	{ 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600 },
};

/* Only 64-bit atomics live here, so a zero-filled struct is the reset state
 * (0.0 has all bits clear). */
static struct {
	metric_u64 received[NSOURCE];
	metric_u64 rejected[NSOURCE][MR_COUNT];
	metric_u64 filtered[NSOURCE];
	metric_u64 deduplicated[NSOURCE];
	metric_u64 committed[NSOURCE][NKIND];
	metric_u64 forwarded[NSOURCE][NKIND];
	metric_u64 retried[NSOURCE][NKIND][MC_COUNT];
	metric_u64 dead_lettered[NSOURCE][NKIND][NDEAD];
	metric_u64 heartbeats_expired[NSOURCE];
	metric_u64 dead_letters_evicted;
	metric_u64 ilert_requests[ME_COUNT][CODE_SLOTS];
	metric_u64 http_requests[MRT_COUNT][CODE_SLOTS];
	metric_u64 heartbeat_pings[MP_COUNT][2]; /* [origin][failure] */
	metric_u64 policy_cache[2][2];           /* [policy cache][miss] */
	metric_u64 mqtt_connections[2];          /* [failure] */
	metric_u64 tls_reloads[2];               /* [invalid] */
	metric_u64 kafka_rebalances[2];          /* [revoke] */
	metric_u64 intake_pauses;

	metric_u64 queue_rows[NKIND]; /* int64 */
	metric_u64 retrying_rows;     /* int64 */
	metric_u64 oldest_age_bits;
	metric_u64 dead_rows;   /* int64 */
	metric_u64 legacy_rows; /* int64 */
	metric_u64 in_flight;   /* int64, two's complement wrap keeps +/- exact */
	metric_u64 ring_fill_bits[MRING_COUNT];
	metric_u64 paused;
	metric_u64 component_enabled[MCOMP_COUNT];
	metric_u64 component_ready[MCOMP_COUNT];
	metric_u64 start_time_bits;

	struct histogram commit_latency;
	struct histogram forward_duration[NKIND];
	struct histogram delivery_delay[NKIND];
} reg;

/* ---- label values ---------------------------------------------------------------------- */

static const char *const kind_names[NKIND] = { "event", "heartbeat", "policy" };
static const char *const reject_names[MR_COUNT] = {
	"invalid", "too_large", "unmatched_topic", "unauthorized",
	"queue_full", "busy", "shutting_down", "store_error",
};
static const char *const cause_names[MC_COUNT] = {
	"network", "timeout", "http_408", "http_425", "http_429", "http_5xx",
	"invalid_response", "stale_cache",
};
static const char *const dead_names[NDEAD] = { "permanent", "exhausted" };
static const char *const endpoint_names[ME_COUNT] = {
	"events", "events_mqtt", "events_kafka", "heartbeats", "pings",
	"users_search_email", "escalation_policies_resolve", "escalation_policy_levels",
};
static const char *const route_names[MRT_COUNT] = {
	"/", "/health", "/ready", "/metrics", "/api/events", "/api/events/batch",
	"/api/heartbeats/{key}", "other",
};
static const char *const origin_names[MP_COUNT] = { "pinger", "proxy" };
static const char *const outcome_names[2] = { "success", "failure" };
static const char *const cache_names[2] = { "user", "policy" };
static const char *const hit_names[2] = { "hit", "miss" };
static const char *const applied_names[2] = { "applied", "invalid" };
static const char *const rebalance_names[2] = { "assign", "revoke" };
static const char *const ring_names[MRING_COUNT] = { "intake", "dispatch" };
static const char *const component_names[MCOMP_COUNT] = { "daemon", "mqtt", "kafka", "queue" };

/* ---- updates --------------------------------------------------------------------------- */

static void counter_add(metric_u64 *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void value_set(metric_u64 *v, uint64_t x)
{
	atomic_store_explicit(v, x, memory_order_relaxed);
}

static uint64_t value_get(metric_u64 *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static uint64_t double_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

static double bits_double(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

/* Out-of-range enum values are ignored rather than trusted as indexes. */
static int source_ok(enum source s)
{
	return (unsigned)s < NSOURCE;
}

static int kind_ok(enum store_kind k)
{
	return (unsigned)k < NKIND;
}

void metrics_init(void)
{
	/* Runs before any other thread touches the registry (and between unit tests). */
	memset(&reg, 0, sizeof reg);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double start = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
	value_set(&reg.start_time_bits, double_bits(start));
}

void metrics_received(enum source s, uint64_t n)
{
	if (source_ok(s))
		counter_add(&reg.received[s], n);
}

void metrics_rejected(enum source s, enum metric_reject reason, uint64_t n)
{
	if (source_ok(s) && (unsigned)reason < MR_COUNT)
		counter_add(&reg.rejected[s][reason], n);
}

void metrics_filtered(enum source s)
{
	if (source_ok(s))
		counter_add(&reg.filtered[s], 1);
}

void metrics_deduplicated(enum source s, uint64_t n)
{
	if (source_ok(s))
		counter_add(&reg.deduplicated[s], n);
}

void metrics_committed(enum source s, enum store_kind k, uint64_t n)
{
	if (source_ok(s) && kind_ok(k))
		counter_add(&reg.committed[s][k], n);
}

void metrics_forwarded(enum source s, enum store_kind k)
{
	if (source_ok(s) && kind_ok(k))
		counter_add(&reg.forwarded[s][k], 1);
}

void metrics_retried(enum source s, enum store_kind k, enum metric_retry_cause cause)
{
	if (source_ok(s) && kind_ok(k) && (unsigned)cause < MC_COUNT)
		counter_add(&reg.retried[s][k][cause], 1);
}

void metrics_dead_lettered(enum source s, enum store_kind k, enum store_dead_reason reason)
{
	if (source_ok(s) && kind_ok(k) && (unsigned)reason < NDEAD)
		counter_add(&reg.dead_lettered[s][k][reason], 1);
}

void metrics_heartbeat_expired(enum source s)
{
	if (source_ok(s))
		counter_add(&reg.heartbeats_expired[s], 1);
}

void metrics_dead_letters_evicted(uint64_t n)
{
	counter_add(&reg.dead_letters_evicted, n);
}

/* The code slot for a status, or -1 when it has none. */
static int code_slot(int status, int timed_out)
{
	if (status == 0)
		return timed_out ? CODE_TIMEOUT : CODE_NETWORK;
	if (status < CODE_FIRST || status > CODE_LAST)
		return -1;
	return status - CODE_FIRST;
}

void metrics_ilert_request(enum metric_endpoint e, int status, int timed_out)
{
	int slot = code_slot(status, timed_out);
	if ((unsigned)e < ME_COUNT && slot >= 0)
		counter_add(&reg.ilert_requests[e][slot], 1);
}

void metrics_http_request(enum metric_route r, int status)
{
	int slot = status == 0 ? -1 : code_slot(status, 0);
	if ((unsigned)r < MRT_COUNT && slot >= 0)
		counter_add(&reg.http_requests[r][slot], 1);
}

void metrics_heartbeat_ping(enum metric_ping_origin o, int success)
{
	if ((unsigned)o < MP_COUNT)
		counter_add(&reg.heartbeat_pings[o][success ? 0 : 1], 1);
}

void metrics_policy_cache(int user_cache, int hit)
{
	counter_add(&reg.policy_cache[user_cache ? 0 : 1][hit ? 0 : 1], 1);
}

void metrics_mqtt_connection(int success)
{
	counter_add(&reg.mqtt_connections[success ? 0 : 1], 1);
}

void metrics_tls_reload(int applied)
{
	counter_add(&reg.tls_reloads[applied ? 0 : 1], 1);
}

void metrics_kafka_rebalance(int assign)
{
	counter_add(&reg.kafka_rebalances[assign ? 0 : 1], 1);
}

void metrics_intake_pause(void)
{
	counter_add(&reg.intake_pauses, 1);
}

void metrics_set_queue_rows(enum store_kind k, int64_t rows)
{
	if (kind_ok(k))
		value_set(&reg.queue_rows[k], (uint64_t)rows);
}

void metrics_set_retrying_rows(int64_t rows)
{
	value_set(&reg.retrying_rows, (uint64_t)rows);
}

void metrics_set_oldest_age(double seconds)
{
	value_set(&reg.oldest_age_bits, double_bits(seconds));
}

void metrics_set_dead_rows(int64_t rows)
{
	value_set(&reg.dead_rows, (uint64_t)rows);
}

void metrics_set_legacy_rows(int64_t rows)
{
	value_set(&reg.legacy_rows, (uint64_t)rows);
}

void metrics_add_in_flight(int delta)
{
	/* Unsigned wrap-around adds a negative delta exactly. */
	counter_add(&reg.in_flight, (uint64_t)(int64_t)delta);
}

void metrics_set_ring_fill(enum metric_ring r, double ratio)
{
	if ((unsigned)r < MRING_COUNT)
		value_set(&reg.ring_fill_bits[r], double_bits(ratio));
}

void metrics_set_paused(int paused)
{
	value_set(&reg.paused, paused ? 1 : 0);
}

void metrics_set_component(enum metric_component c, int enabled, int ready)
{
	if ((unsigned)c >= MCOMP_COUNT)
		return;
	value_set(&reg.component_ready[c], ready ? 1 : 0);
	value_set(&reg.component_enabled[c], enabled ? 1 : 0);
}

static void histogram_observe(struct histogram *h, const struct histogram_spec *spec,
			      double seconds)
{
	if (isnan(seconds))
		return;
	/* A wall-clock step can make a measured delay negative; no duration is below zero. */
	if (seconds < 0)
		seconds = 0;
	int i = 0;
	while (i < spec->nbounds && seconds > spec->bounds[i])
		i++;
	counter_add(&h->buckets[i], 1);
	uint64_t old = value_get(&h->sum_bits);
	while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
						      double_bits(bits_double(old) + seconds),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

void metrics_observe_commit_latency(double seconds)
{
	histogram_observe(&reg.commit_latency, &commit_latency_spec, seconds);
}

void metrics_observe_forward_duration(enum store_kind k, double seconds)
{
	if (kind_ok(k))
		histogram_observe(&reg.forward_duration[k], &forward_duration_spec, seconds);
}

void metrics_observe_delivery_delay(enum store_kind k, double seconds)
{
	if (kind_ok(k))
		histogram_observe(&reg.delivery_delay[k], &delivery_delay_spec, seconds);
}

/* ---- rendering ------------------------------------------------------------------------- */

/* The way Prometheus clients print a float: the shortest text that reads back as the same
 * double ("0.0005", "1", "2.5", "1717171717.123"), and NaN, +Inf, -Inf. */
static void format_double(char *out, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) { /* also -0 */
		snprintf(out, size, "0");
		return;
	}
	for (int precision = 15; precision <= 17; precision++) {
		snprintf(out, size, "%.*g", precision, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void put_family(struct tbuf *b, const char *name, const char *type, const char *help)
{
	tbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* labels: the text between the braces, or "" for none. */
static void put_u64(struct tbuf *b, const char *name, const char *labels, uint64_t v)
{
	if (labels[0])
		tbuf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		tbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void put_i64(struct tbuf *b, const char *name, const char *labels, uint64_t bits)
{
	long long v = (long long)(int64_t)bits;
	if (labels[0])
		tbuf_printf(b, "%s{%s} %lld\n", name, labels, v);
	else
		tbuf_printf(b, "%s %lld\n", name, v);
}

static void put_double(struct tbuf *b, const char *name, const char *labels, double v)
{
	char num[40];
	format_double(num, sizeof num, v);
	if (labels[0])
		tbuf_printf(b, "%s{%s} %s\n", name, labels, num);
	else
		tbuf_printf(b, "%s %s\n", name, num);
}

static void render_by_source(struct tbuf *b, const char *name, metric_u64 *values)
{
	char labels[64];
	for (int s = 0; s < NSOURCE; s++) {
		snprintf(labels, sizeof labels, "source=\"%s\"", source_name((enum source)s));
		put_u64(b, name, labels, value_get(&values[s]));
	}
}

static void render_by_source_kind(struct tbuf *b, const char *name, metric_u64 values[][NKIND])
{
	char labels[96];
	for (int s = 0; s < NSOURCE; s++) {
		for (int k = 0; k < NKIND; k++) {
			snprintf(labels, sizeof labels, "source=\"%s\",kind=\"%s\"",
				 source_name((enum source)s), kind_names[k]);
			put_u64(b, name, labels, value_get(&values[s][k]));
		}
	}
}

/* A counter with one label of two values. */
static void render_pair(struct tbuf *b, const char *name, const char *label,
			const char *const values[2], metric_u64 counts[2])
{
	char labels[64];
	for (int i = 0; i < 2; i++) {
		snprintf(labels, sizeof labels, "%s=\"%s\"", label, values[i]);
		put_u64(b, name, labels, value_get(&counts[i]));
	}
}

/* Series with a code label exist only once that code has been counted. */
static void render_codes(struct tbuf *b, const char *name, const char *label,
			 const char *const values[], int nvalues, metric_u64 counts[][CODE_SLOTS])
{
	char labels[128];
	for (int i = 0; i < nvalues; i++) {
		for (int slot = 0; slot < CODE_SLOTS; slot++) {
			uint64_t v = value_get(&counts[i][slot]);
			if (v == 0)
				continue;
			if (slot == CODE_NETWORK)
				snprintf(labels, sizeof labels, "%s=\"%s\",code=\"network\"", label,
					 values[i]);
			else if (slot == CODE_TIMEOUT)
				snprintf(labels, sizeof labels, "%s=\"%s\",code=\"timeout\"", label,
					 values[i]);
			else
				snprintf(labels, sizeof labels, "%s=\"%s\",code=\"%d\"", label,
					 values[i], slot + CODE_FIRST);
			put_u64(b, name, labels, v);
		}
	}
}

/* label: `kind="event"` or "" for an unlabelled histogram. _count is the sum of the
 * buckets read, so `le="+Inf"` and _count always agree even while observations land. */
static void render_histogram(struct tbuf *b, const struct histogram_spec *spec,
			     struct histogram *h, const char *label)
{
	char labels[96];
	char le[40];
	const char *sep = label[0] ? "," : "";
	uint64_t cumulative = 0;
	for (int i = 0; i <= spec->nbounds; i++) {
		cumulative += value_get(&h->buckets[i]);
		if (i < spec->nbounds)
			format_double(le, sizeof le, spec->bounds[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		snprintf(labels, sizeof labels, "%s%sle=\"%s\"", label, sep, le);
		tbuf_printf(b, "%s_bucket{%s} %llu\n", spec->name, labels,
			    (unsigned long long)cumulative);
	}
	char sum_name[64];
	char count_name[64];
	snprintf(sum_name, sizeof sum_name, "%s_sum", spec->name);
	snprintf(count_name, sizeof count_name, "%s_count", spec->name);
	put_double(b, sum_name, label, bits_double(value_get(&h->sum_bits)));
	put_u64(b, count_name, label, cumulative);
}

static void render_kind_histograms(struct tbuf *b, const struct histogram_spec *spec,
				   struct histogram h[NKIND])
{
	char label[32];
	for (int k = 0; k < NKIND; k++) {
		snprintf(label, sizeof label, "kind=\"%s\"", kind_names[k]);
		render_histogram(b, spec, &h[k], label);
	}
}

static void render_intake_counters(struct tbuf *b)
{
	char labels[128];

	put_family(b, "ilagent_received_total", "counter",
		   "Messages or batch elements offered to intake.");
	render_by_source(b, "ilagent_received_total", reg.received);

	put_family(b, "ilagent_rejected_total", "counter", "Messages not accepted, by reason.");
	for (int s = 0; s < NSOURCE; s++) {
		for (int r = 0; r < MR_COUNT; r++) {
			snprintf(labels, sizeof labels, "source=\"%s\",reason=\"%s\"",
				 source_name((enum source)s), reject_names[r]);
			put_u64(b, "ilagent_rejected_total", labels, value_get(&reg.rejected[s][r]));
		}
	}

	put_family(b, "ilagent_filtered_total", "counter",
		   "Messages dropped by --filter_key/--filter_val.");
	render_by_source(b, "ilagent_filtered_total", reg.filtered);

	put_family(b, "ilagent_deduplicated_total", "counter",
		   "Items dropped as duplicates within the deduplication window.");
	render_by_source(b, "ilagent_deduplicated_total", reg.deduplicated);

	put_family(b, "ilagent_committed_total", "counter",
		   "Items accepted into the durable queue.");
	render_by_source_kind(b, "ilagent_committed_total", reg.committed);
}

static void render_delivery_counters(struct tbuf *b)
{
	char labels[128];

	put_family(b, "ilagent_forwarded_total", "counter", "Items delivered to ilert (2xx).");
	render_by_source_kind(b, "ilagent_forwarded_total", reg.forwarded);

	put_family(b, "ilagent_retried_total", "counter",
		   "Failed delivery attempts that will be retried, by cause.");
	for (int s = 0; s < NSOURCE; s++) {
		for (int k = 0; k < NKIND; k++) {
			for (int c = 0; c < MC_COUNT; c++) {
				snprintf(labels, sizeof labels,
					 "source=\"%s\",kind=\"%s\",cause=\"%s\"",
					 source_name((enum source)s), kind_names[k], cause_names[c]);
				put_u64(b, "ilagent_retried_total", labels,
					value_get(&reg.retried[s][k][c]));
			}
		}
	}

	put_family(b, "ilagent_dead_lettered_total", "counter",
		   "Items moved to dead letters, by reason.");
	for (int s = 0; s < NSOURCE; s++) {
		for (int k = 0; k < NKIND; k++) {
			for (int r = 0; r < NDEAD; r++) {
				snprintf(labels, sizeof labels,
					 "source=\"%s\",kind=\"%s\",reason=\"%s\"",
					 source_name((enum source)s), kind_names[k], dead_names[r]);
				put_u64(b, "ilagent_dead_lettered_total", labels,
					value_get(&reg.dead_lettered[s][k][r]));
			}
		}
	}

	put_family(b, "ilagent_heartbeats_expired_total", "counter",
		   "Heartbeat items dropped because their time to live passed.");
	render_by_source(b, "ilagent_heartbeats_expired_total", reg.heartbeats_expired);

	put_family(b, "ilagent_dead_letters_evicted_total", "counter",
		   "Dead letters deleted to stay within --max_dead.");
	put_u64(b, "ilagent_dead_letters_evicted_total", "", value_get(&reg.dead_letters_evicted));
}

static void render_request_counters(struct tbuf *b)
{
	char labels[96];

	put_family(b, "ilagent_ilert_requests_total", "counter",
		   "Requests to the ilert API, by endpoint and HTTP status or transport error.");
	render_codes(b, "ilagent_ilert_requests_total", "endpoint", endpoint_names, ME_COUNT,
		     reg.ilert_requests);

	put_family(b, "ilagent_http_requests_total", "counter",
		   "Answers of the HTTP server, by route and status.");
	render_codes(b, "ilagent_http_requests_total", "route", route_names, MRT_COUNT,
		     reg.http_requests);

	put_family(b, "ilagent_heartbeat_pings_total", "counter",
		   "Synchronous heartbeat pings, by origin and outcome.");
	for (int o = 0; o < MP_COUNT; o++) {
		for (int r = 0; r < 2; r++) {
			snprintf(labels, sizeof labels, "origin=\"%s\",outcome=\"%s\"",
				 origin_names[o], outcome_names[r]);
			put_u64(b, "ilagent_heartbeat_pings_total", labels,
				value_get(&reg.heartbeat_pings[o][r]));
		}
	}

	put_family(b, "ilagent_policy_cache_total", "counter",
		   "Policy item cache lookups, by cache and result.");
	for (int c = 0; c < 2; c++) {
		for (int r = 0; r < 2; r++) {
			snprintf(labels, sizeof labels, "cache=\"%s\",result=\"%s\"", cache_names[c],
				 hit_names[r]);
			put_u64(b, "ilagent_policy_cache_total", labels,
				value_get(&reg.policy_cache[c][r]));
		}
	}

	put_family(b, "ilagent_mqtt_connections_total", "counter",
		   "MQTT connection attempts, by result.");
	render_pair(b, "ilagent_mqtt_connections_total", "result", outcome_names,
		    reg.mqtt_connections);

	put_family(b, "ilagent_tls_reloads_total", "counter",
		   "TLS certificate hot reloads, by result.");
	render_pair(b, "ilagent_tls_reloads_total", "result", applied_names, reg.tls_reloads);

	put_family(b, "ilagent_kafka_rebalances_total", "counter",
		   "Kafka consumer group rebalances, by type.");
	render_pair(b, "ilagent_kafka_rebalances_total", "type", rebalance_names,
		    reg.kafka_rebalances);

	put_family(b, "ilagent_intake_pauses_total", "counter",
		   "Transitions of intake into the paused state.");
	put_u64(b, "ilagent_intake_pauses_total", "", value_get(&reg.intake_pauses));
}

static void render_gauges(struct tbuf *b)
{
	char labels[64];

	put_family(b, "ilagent_queue_rows", "gauge", "Rows in the queue, by kind.");
	for (int k = 0; k < NKIND; k++) {
		snprintf(labels, sizeof labels, "kind=\"%s\"", kind_names[k]);
		put_i64(b, "ilagent_queue_rows", labels, value_get(&reg.queue_rows[k]));
	}

	put_family(b, "ilagent_queue_retrying_rows", "gauge",
		   "Queue rows with at least one failed attempt.");
	put_i64(b, "ilagent_queue_retrying_rows", "", value_get(&reg.retrying_rows));

	put_family(b, "ilagent_queue_oldest_age_seconds", "gauge",
		   "Age of the oldest queued item, 0 when the queue is empty.");
	put_double(b, "ilagent_queue_oldest_age_seconds", "",
		   bits_double(value_get(&reg.oldest_age_bits)));

	put_family(b, "ilagent_dead_letter_rows", "gauge", "Rows in the dead letters table.");
	put_i64(b, "ilagent_dead_letter_rows", "", value_get(&reg.dead_rows));

	put_family(b, "ilagent_legacy_mqtt_queue_rows", "gauge",
		   "Rows left in the legacy mqtt_queue table.");
	put_i64(b, "ilagent_legacy_mqtt_queue_rows", "", value_get(&reg.legacy_rows));

	put_family(b, "ilagent_in_flight", "gauge", "Deliveries to ilert in progress.");
	put_i64(b, "ilagent_in_flight", "", value_get(&reg.in_flight));

	put_family(b, "ilagent_ring_fill_ratio", "gauge",
		   "Fill level of the hand-off rings, 0 to 1.");
	for (int r = 0; r < MRING_COUNT; r++) {
		snprintf(labels, sizeof labels, "ring=\"%s\"", ring_names[r]);
		put_double(b, "ilagent_ring_fill_ratio", labels,
			   bits_double(value_get(&reg.ring_fill_bits[r])));
	}

	put_family(b, "ilagent_intake_paused", "gauge", "1 while intake is paused, else 0.");
	put_u64(b, "ilagent_intake_paused", "", value_get(&reg.paused));

	put_family(b, "ilagent_component_ready", "gauge",
		   "Readiness of each enabled component: 1 ready, 0 not.");
	for (int c = 0; c < MCOMP_COUNT; c++) {
		if (!value_get(&reg.component_enabled[c]))
			continue;
		snprintf(labels, sizeof labels, "component=\"%s\"", component_names[c]);
		put_u64(b, "ilagent_component_ready", labels, value_get(&reg.component_ready[c]));
	}

	put_family(b, "ilagent_build_info", "gauge", "Build information; always 1.");
	put_u64(b, "ilagent_build_info", "version=\"" ILAGENT_VERSION "\"", 1);

	put_family(b, "ilagent_start_time_seconds", "gauge",
		   "Start time of the process since the Unix epoch in seconds.");
	put_double(b, "ilagent_start_time_seconds", "",
		   bits_double(value_get(&reg.start_time_bits)));
}

static void render_histograms(struct tbuf *b)
{
	put_family(b, commit_latency_spec.name, "histogram",
		   "Time from admission to durable commit, per item.");
	render_histogram(b, &commit_latency_spec, &reg.commit_latency, "");

	put_family(b, forward_duration_spec.name, "histogram",
		   "Duration of one ilert request, by kind.");
	render_kind_histograms(b, &forward_duration_spec, reg.forward_duration);

	put_family(b, delivery_delay_spec.name, "histogram",
		   "Time from acceptance to successful delivery, by kind.");
	render_kind_histograms(b, &delivery_delay_spec, reg.delivery_delay);
}

char *metrics_render(void)
{
	struct tbuf b;
	tbuf_init(&b);
	render_intake_counters(&b);
	render_delivery_counters(&b);
	render_request_counters(&b);
	render_gauges(&b);
	render_histograms(&b);
	return tbuf_take(&b);
}
