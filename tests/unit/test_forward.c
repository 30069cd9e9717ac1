/* Delivery of queued items (SPEC §14.3-§14.7): backoff, host brake, rate limiter and
 * cool-down table, and forward_deliver for events, heartbeats and policy items against the
 * fake ilert (exact requests and every outcome row of §14.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "ops/metrics.h"
#include "pipeline/forward.h"
#include "proc.h"
#include "fake_ilert.h"

#define API_KEY "test-api-key-0123456789"

/* ---- forward_backoff_ms -------------------------------------------------------------------- */

/* splitmix64: a fixed, well-spread sequence of "random" inputs. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int64_t ceiling_ms(int64_t attempt, int max_backoff_s)
{
	int64_t c = 1000;
	for (int64_t i = 1; i < attempt && c < (int64_t)max_backoff_s * 1000; i++)
		c *= 2;
	return c < (int64_t)max_backoff_s * 1000 ? c : (int64_t)max_backoff_s * 1000;
}

static void test_backoff_exact_points(void **state)
{
	(void)state;
	/* attempt 1: [0, 1000] */
	assert_int_equal(forward_backoff_ms(1, 60, 0), 100);
	assert_int_equal(forward_backoff_ms(1, 60, 99), 100);
	assert_int_equal(forward_backoff_ms(1, 60, 100), 100);
	assert_int_equal(forward_backoff_ms(1, 60, 101), 101);
	assert_int_equal(forward_backoff_ms(1, 60, 1000), 1000);
	assert_int_equal(forward_backoff_ms(1, 60, 1001), 100); /* 1001 mod 1001 = 0 → floor */
	/* attempt n: the ceiling 1 s × 2^(n−1) is reachable */
	assert_int_equal(forward_backoff_ms(2, 60, 2000), 2000);
	assert_int_equal(forward_backoff_ms(3, 60, 4000), 4000);
	assert_int_equal(forward_backoff_ms(6, 60, 32000), 32000);
	/* ... and capped by --retry_max_backoff */
	assert_int_equal(forward_backoff_ms(7, 60, 60000), 60000);
	assert_int_equal(forward_backoff_ms(7, 60, 60001), 100);
	assert_int_equal(forward_backoff_ms(50, 60, 60000), 60000);
	assert_int_equal(forward_backoff_ms(2, 1, 1000), 1000);
	assert_int_equal(forward_backoff_ms(2, 1, 1001), 100);
	assert_int_equal(forward_backoff_ms(1000000, 86400, 86400000), 86400000);
	assert_int_equal(forward_backoff_ms(INT64_MAX, 86400, 86400000), 86400000);
	assert_int_equal(forward_backoff_ms(INT64_MAX, 86400, 12345678), 12345678);
}

static void test_backoff_bounds_for_many_attempts_and_randoms(void **state)
{
	(void)state;
	const int caps[] = { 1, 2, 60, 3600, 86400 };
	uint64_t rs = 42;
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		for (int64_t attempt = 1; attempt <= 70; attempt++) {
			int64_t hi = ceiling_ms(attempt, caps[c]);
			bool saw_low = false, saw_high = false;
			for (int i = 0; i < 400; i++) {
				uint64_t r = i == 0 ? 0 : i == 1 ? UINT64_MAX : next_random(&rs);
				int64_t d = forward_backoff_ms(attempt, caps[c], r);
				if (d < 100 || d > hi)
					fail_msg("attempt %lld cap %d: %lld outside [100, %lld]",
						 (long long)attempt, caps[c], (long long)d, (long long)hi);
				saw_low |= d < 100 + hi / 4;
				saw_high |= d > hi - hi / 4;
			}
			/* the whole range is used, not just one end */
			assert_true(saw_low);
			assert_true(saw_high);
		}
	}
}

static void test_backoff_is_uniform(void **state)
{
	(void)state;
	uint64_t rs = 7;
	double sum = 0;
	const int n = 20000;
	for (int i = 0; i < n; i++)
		sum += (double)forward_backoff_ms(5, 60, next_random(&rs));
	double mean = sum / n; /* uniform on [0, 16000] with values < 100 raised: ≈ 8000.3 */
	assert_true(mean > 7800 && mean < 8200);
}

/* ---- host brake ---------------------------------------------------------------------------- */

static void test_brake_doubles_up_to_cap(void **state)
{
	(void)state;
	struct host_brake b = { 0 };
	assert_false(host_brake_active(&b, 0));
	host_brake_fail(&b, 1000, 5, 0);
	assert_int_equal(b.until_ms, 2000);
	assert_true(host_brake_active(&b, 1999));
	assert_false(host_brake_active(&b, 2000));
	const int64_t want[] = { 2000, 4000, 5000, 5000, 5000 };
	int64_t now = 2000;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		host_brake_fail(&b, now, 5, 0);
		assert_int_equal(b.until_ms, now + want[i]);
		now = b.until_ms;
	}
}

static void test_brake_failures_while_braked_do_not_double(void **state)
{
	(void)state;
	struct host_brake b = { 0 };
	host_brake_fail(&b, 0, 60, 0);
	/* Requests that were in flight when the brake came on report later. */
	host_brake_fail(&b, 10, 60, 0);
	host_brake_fail(&b, 999, 60, 0);
	assert_int_equal(b.until_ms, 1000);
	assert_int_equal(b.failures, 1);
	/* The first request after the brake fails: 2 s. */
	host_brake_fail(&b, 1000, 60, 0);
	assert_int_equal(b.until_ms, 3000);
	assert_int_equal(b.failures, 2);
}

static void test_brake_hint_replaces_and_extends(void **state)
{
	(void)state;
	struct host_brake b = { 0 };
	/* 503 Retry-After 120 s: beyond --retry_max_backoff, it wins */
	host_brake_fail(&b, 0, 60, 120000);
	assert_int_equal(b.until_ms, 120000);
	/* a later hint while braked extends, an earlier one does not shorten */
	host_brake_fail(&b, 1000, 60, 200000);
	assert_int_equal(b.until_ms, 201000);
	host_brake_fail(&b, 2000, 60, 5000);
	assert_int_equal(b.until_ms, 201000);
	/* a hint shorter than the doubling also replaces it */
	struct host_brake c = { 0 };
	host_brake_fail(&c, 0, 60, 0);
	host_brake_fail(&c, 1000, 60, 0);
	host_brake_fail(&c, 3000, 60, 0); /* 4 s */
	assert_int_equal(c.until_ms, 7000);
	host_brake_fail(&c, 7000, 60, 300);
	assert_int_equal(c.until_ms, 7300);
}

static void test_brake_released_by_success(void **state)
{
	(void)state;
	struct host_brake b = { 0 };
	host_brake_fail(&b, 0, 60, 0);
	host_brake_fail(&b, 1000, 60, 0);
	host_brake_fail(&b, 3000, 60, 0);
	assert_true(host_brake_active(&b, 6000));
	host_brake_ok(&b);
	assert_false(host_brake_active(&b, 6000));
	assert_int_equal(b.failures, 0);
	host_brake_fail(&b, 7000, 60, 0);
	assert_int_equal(b.until_ms, 8000); /* back to 1 s */
}

/* ---- rate limiter -------------------------------------------------------------------------- */

static void test_rate_limiter_off(void **state)
{
	(void)state;
	assert_null(rate_limiter_create(0, 10));
	rate_limiter_destroy(NULL);
}

static void test_rate_limiter_exact_window(void **state)
{
	(void)state;
	struct rate_limiter *rl = rate_limiter_create(3, 100);
	assert_non_null(rl);
	assert_int_equal(rate_limiter_wait(rl, "k", 0), 0);
	rate_limiter_record(rl, "k", 0);
	rate_limiter_record(rl, "k", 10);
	assert_int_equal(rate_limiter_wait(rl, "k", 20), 0);
	rate_limiter_record(rl, "k", 20);
	assert_int_equal(rate_limiter_wait(rl, "k", 21), 60000);
	assert_int_equal(rate_limiter_wait(rl, "k", 59999), 60000);
	assert_int_equal(rate_limiter_wait(rl, "other", 21), 0); /* per key */
	assert_int_equal(rate_limiter_wait(rl, "k", 60000), 0);
	rate_limiter_record(rl, "k", 60000);
	assert_int_equal(rate_limiter_wait(rl, "k", 60000), 60010);
	assert_int_equal(rate_limiter_wait(rl, "k", 60010), 0);
	rate_limiter_destroy(rl);
}

/* A row that came back unstarted gives its start back. */
static void test_rate_limiter_unrecord(void **state)
{
	(void)state;
	struct rate_limiter *rl = rate_limiter_create(2, 100);
	rate_limiter_record(rl, "k", 0);
	rate_limiter_record(rl, "k", 5);
	assert_int_equal(rate_limiter_wait(rl, "k", 6), 60000);
	rate_limiter_unrecord(rl, "k");
	assert_int_equal(rate_limiter_wait(rl, "k", 6), 0);
	rate_limiter_record(rl, "k", 7);
	assert_int_equal(rate_limiter_wait(rl, "k", 8), 60000); /* the oldest start still counts */
	rate_limiter_unrecord(rl, "absent");                    /* unknown keys are ignored */
	rate_limiter_unrecord(rl, "k");
	rate_limiter_unrecord(rl, "k");
	rate_limiter_unrecord(rl, "k"); /* never below zero */
	assert_int_equal(rate_limiter_wait(rl, "k", 9), 0);
	rate_limiter_destroy(rl);
}

/* Starts whenever allowed at random times; every 60 s window must hold at most N starts,
 * and every refusal must be necessary: at the time given, a start is allowed, one ms
 * earlier it would not have been. */
static int starts_in_window(const int64_t *starts, size_t n, int64_t t)
{
	int c = 0;
	for (size_t i = 0; i < n; i++)
		c += starts[i] > t - 60000 && starts[i] <= t;
	return c;
}

static void test_rate_limiter_rolling_window_property(void **state)
{
	(void)state;
	const int limits[] = { 1, 2, 5, 17, 50 };
	uint64_t rs = 99;
	for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
		int limit = limits[l];
		struct rate_limiter *rl = rate_limiter_create(limit, 10);
		assert_non_null(rl);
		size_t cap = 4000, n = 0;
		int64_t *starts = calloc(cap, sizeof(int64_t));
		int64_t t = 1000000;
		for (int step = 0; step < 3000 && n < cap; step++) {
			t += (int64_t)(next_random(&rs) % 3000);
			int64_t wait = rate_limiter_wait(rl, "key", t);
			int before = starts_in_window(starts, n, t);
			if (wait == 0) {
				assert_true(before < limit);
				rate_limiter_record(rl, "key", t);
				starts[n++] = t;
			} else {
				assert_true(wait > t);
				assert_int_equal(before, limit);
				assert_true(starts_in_window(starts, n, wait) < limit);
				assert_int_equal(starts_in_window(starts, n, wait - 1), limit);
			}
		}
		for (size_t i = 0; i < n; i++)
			assert_true(starts_in_window(starts, n, starts[i] + 59999) <= limit);
		assert_true(n >= 50);
		free(starts);
		rate_limiter_destroy(rl);
	}
}

static void test_rate_limiter_forgets_least_recently_used(void **state)
{
	(void)state;
	struct rate_limiter *rl = rate_limiter_create(1, 2);
	assert_non_null(rl);
	rate_limiter_record(rl, "a", 0);
	rate_limiter_record(rl, "b", 1);
	assert_int_equal(rate_limiter_wait(rl, "a", 2), 60000); /* touches a: b is now oldest */
	rate_limiter_record(rl, "c", 3);                         /* forgets b */
	assert_int_equal(rate_limiter_wait(rl, "b", 4), 0);
	assert_int_equal(rate_limiter_wait(rl, "a", 4), 60000);
	assert_int_equal(rate_limiter_wait(rl, "c", 4), 60003);
	rate_limiter_record(rl, "d", 5); /* forgets the least recently used: a */
	assert_int_equal(rate_limiter_wait(rl, "a", 6), 0);
	assert_int_equal(rate_limiter_wait(rl, "c", 6), 60003);
	assert_int_equal(rate_limiter_wait(rl, "d", 6), 60005);
	rate_limiter_destroy(rl);
}

static void test_rate_limiter_large_limit(void **state)
{
	(void)state;
	struct rate_limiter *rl = rate_limiter_create(100000, 4);
	assert_non_null(rl);
	for (int64_t i = 0; i < 100000; i++) {
		assert_int_equal(rate_limiter_wait(rl, "k", i / 2), 0);
		rate_limiter_record(rl, "k", i / 2);
	}
	assert_int_equal(rate_limiter_wait(rl, "k", 50000), 60000);
	assert_int_equal(rate_limiter_wait(rl, "k", 60000), 0);
	rate_limiter_destroy(rl);
}

/* ---- cool-down ------------------------------------------------------------------------------ */

static void test_cooldown_table(void **state)
{
	(void)state;
	struct cooldown_table *t = cooldown_table_create(2);
	assert_non_null(t);
	assert_int_equal(cooldown_until(t, "a", 0), 0);
	cooldown_set(t, "a", 5000);
	assert_int_equal(cooldown_until(t, "a", 4999), 5000);
	assert_int_equal(cooldown_until(t, "b", 4999), 0);
	cooldown_set(t, "a", 3000); /* an earlier deadline does not shorten it */
	assert_int_equal(cooldown_until(t, "a", 0), 5000);
	cooldown_set(t, "a", 9000);
	assert_int_equal(cooldown_until(t, "a", 5000), 9000);
	assert_int_equal(cooldown_until(t, "a", 9000), 0);
	/* ended: dropped, a new deadline starts afresh */
	cooldown_set(t, "a", 100);
	assert_int_equal(cooldown_until(t, "a", 50), 100);
	/* LRU: a, b, then c forgets the least recently used */
	cooldown_set(t, "b", 20000);
	assert_int_equal(cooldown_until(t, "a", 60), 100); /* touches a */
	cooldown_set(t, "c", 30000);                       /* forgets b */
	assert_int_equal(cooldown_until(t, "b", 70), 0);
	assert_int_equal(cooldown_until(t, "a", 70), 100);
	assert_int_equal(cooldown_until(t, "c", 70), 30000);
	cooldown_table_destroy(t);
	cooldown_table_destroy(NULL);
}

/* ---- forward_deliver against the fake ilert ------------------------------------------------ */

struct fx {
	struct fake_ilert *api;
	struct fake_ilert *beat;
	struct ilert_client *client;
	struct forward_settings s;
	struct policy_cache *cache;
	struct forward_result res;
};

static struct ilert_client *client_for(const char *api, const char *beat)
{
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.api_url = (char *)api;
	cfg.beat_url = (char *)beat;
	cfg.api_timeout = 1;
	cfg.api_key = (char *)API_KEY;
	struct ilert_client *c = ilert_client_create(&cfg);
	assert_non_null(c);
	return c;
}

static int group_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	fx->api = fake_ilert_start();
	fx->beat = fake_ilert_start();
	if (!fx->api || !fx->beat)
		return -1;
	fx->client = client_for(fake_ilert_url(fx->api), fake_ilert_url(fx->beat));
	metrics_init();
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;
	ilert_client_destroy(fx->client);
	fake_ilert_stop(fx->api);
	fake_ilert_stop(fx->beat);
	free(fx);
	return 0;
}

static int each_setup(void **state)
{
	struct fx *fx = *state;
	struct fake_reply dflt = { .status = 202, .body = "{}" };
	fake_ilert_reset(fx->api);
	fake_ilert_reset(fx->beat);
	fake_ilert_set_default(fx->api, &dflt);
	fake_ilert_set_default(fx->beat, &dflt);
	fx->cache = policy_cache_create(FORWARD_MAX_KEYS);
	if (!fx->cache)
		return -1;
	fx->s = (struct forward_settings){ .max_retries = 100, .retry_max_backoff = 60,
					   .policy_cache_ttl = 0, .cache = fx->cache };
	memset(&fx->res, 0, sizeof(fx->res));
	return 0;
}

static int each_teardown(void **state)
{
	struct fx *fx = *state;
	forward_result_clear(&fx->res);
	policy_cache_destroy(fx->cache);
	fx->cache = NULL;
	return 0;
}

static void set(char **field, const char *value)
{
	free(*field);
	*field = value ? strdup(value) : NULL;
}

static struct store_item *item_new(enum store_kind kind, const char *integration_key)
{
	struct store_item *it = calloc(1, sizeof(*it));
	assert_non_null(it);
	set(&it->id, "6f1c1b2e-8a44-4c61-9a53-5d0c6c6b7a01");
	it->kind = kind;
	set(&it->integration_key, integration_key);
	set(&it->source, "mqtt");
	it->accepted_at = clock_now_ms();
	it->seq = 1;
	return it;
}

static struct store_item *event_new(const char *type)
{
	struct store_item *it = item_new(STORE_KIND_EVENT, "il1api123");
	set(&it->event_type, type);
	set(&it->summary, "disk full");
	set(&it->source, "http");
	return it;
}

static struct store_item *policy_new(const char *email, const char *rk, int shift)
{
	struct store_item *it = item_new(STORE_KIND_POLICY, "");
	set(&it->event_type, "POLICY");
	set(&it->summary, "");
	size_t size = strlen(email) + strlen(rk) + 64;
	char *payload = malloc(size);
	assert_non_null(payload);
	snprintf(payload, size, "{\"email\":\"%s\",\"routingKey\":\"%s\",\"shift\":%d}", email,
		 rk, shift);
	set(&it->payload, payload);
	free(payload);
	return it;
}

static void item_free(struct store_item *it)
{
	store_item_clear(it);
	free(it);
}

static void push(struct fake_ilert *f, int status, const char *body, const char *retry_after)
{
	struct fake_reply r = { .status = status, .body = body, .retry_after = retry_after };
	fake_ilert_push(f, &r);
}

static void deliver(struct fx *fx, const struct store_item *it, int64_t now_ms)
{
	forward_result_clear(&fx->res);
	assert_int_equal(forward_deliver(fx->client, &fx->s, it, now_ms, &fx->res), 0);
}

static void assert_request(struct fake_ilert *f, int i, const char *method, const char *target,
			   const char *body)
{
	struct fake_request *r = fake_ilert_request(f, i);
	if (!r)
		fail_msg("request %d missing", i);
	assert_string_equal(r->method, method);
	assert_string_equal(r->target, target);
	if (body)
		assert_string_equal(r->body, body);
	else
		assert_int_equal(r->body_len, 0);
	char *auth = fake_request_header(r, "Authorization");
	assert_non_null(auth);
	assert_string_equal(auth, "Bearer " API_KEY);
	free(auth);
	fake_request_free(r);
}

static const char *EVENT_BODY =
	"{\"integrationKey\":\"il1api123\",\"eventType\":\"ALERT\",\"summary\":\"disk full\","
	"\"alertKey\":null,\"details\":null,\"priority\":null,\"images\":null,\"links\":null,"
	"\"customDetails\":null}";

static void test_event_2xx_deletes(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	it->attempts = 2;
	push(fx->api, 202, "{}", NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fx->res.attempts, 3);
	assert_null(fx->res.last_error);
	assert_null(fx->res.body);
	assert_false(fx->res.retried);
	assert_int_equal(fx->res.host, ILERT_BASE_API);
	assert_true(fx->res.host_ok);
	assert_false(fx->res.host_failed);
	assert_int_equal(fx->res.cooldown_until, 0);
	assert_true(fx->res.duration_s >= 0);
	assert_int_equal(fake_ilert_count(fx->api), 1);
	assert_request(fx->api, 0, "POST", "/api/events", EVENT_BODY);
	assert_int_equal(fake_ilert_count(fx->beat), 0);
	item_free(it);
}

static void test_event_any_2xx_deletes(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("RESOLVE");
	const int codes[] = { 200, 201, 204, 299 };
	for (size_t i = 0; i < 4; i++) {
		push(fx->api, codes[i], NULL, NULL);
		deliver(fx, it, clock_now_ms());
		assert_int_equal(fx->res.action, FWD_DELETE);
		assert_int_equal(fx->res.last_status, codes[i]);
	}
	item_free(it);
}

static void test_event_400_dead_permanent_with_body(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	push(fx->api, 400, "{\"message\":\"bad key\"}", NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
	assert_int_equal(fx->res.attempts, 1); /* a permanent failure after one request */
	assert_int_equal(fx->res.last_status, 400);
	assert_string_equal(fx->res.last_error, "HTTP 400: {\"message\":\"bad key\"}");
	assert_non_null(fx->res.body);
	assert_int_equal(fx->res.body_len, strlen("{\"message\":\"bad key\"}"));
	assert_string_equal(fx->res.body, "{\"message\":\"bad key\"}");
	assert_false(fx->res.retried);
	assert_false(fx->res.host_ok);
	assert_false(fx->res.host_failed);
	item_free(it);
}

static void test_event_permanent_statuses(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	it->attempts = 5;
	const int codes[] = { 301, 304, 401, 403, 404, 409, 413, 422 };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		push(fx->api, codes[i], NULL, NULL);
		deliver(fx, it, clock_now_ms());
		assert_int_equal(fx->res.action, FWD_DEAD);
		assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
		assert_int_equal(fx->res.attempts, 6);
		assert_int_equal(fx->res.last_status, codes[i]);
		char want[32];
		snprintf(want, sizeof(want), "HTTP %d", codes[i]);
		assert_string_equal(fx->res.last_error, want);
	}
	item_free(it);
}

static void test_event_body_kept_for_excerpt_only(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	size_t n = 100000;
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	push(fx->api, 422, big, NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	/* the dead letter keeps 1024 bytes: a little more is enough, not the whole body */
	assert_true(fx->res.body_len >= STORE_BODY_EXCERPT_MAX);
	assert_true(fx->res.body_len < 2 * STORE_BODY_EXCERPT_MAX);
	assert_memory_equal(fx->res.body, big, fx->res.body_len);
	/* last_error carries a 200-character excerpt */
	assert_int_equal(strlen(fx->res.last_error), strlen("HTTP 422: ") + 200);
	free(big);
	item_free(it);
}

static void test_event_500_reschedules_in_backoff_range(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	it->attempts = 2;
	for (int round = 0; round < 5; round++) {
		push(fx->api, 500, "oops\r\nmore", NULL);
		int64_t now = clock_now_ms();
		deliver(fx, it, now);
		assert_int_equal(fx->res.action, FWD_RESCHEDULE);
		assert_int_equal(fx->res.attempts, 3);
		/* third failed attempt: [0, 4 s], at least 100 ms */
		assert_true(fx->res.next_attempt_at >= now + 100);
		assert_true(fx->res.next_attempt_at <= now + 4000);
		assert_int_equal(fx->res.last_status, 500);
		assert_string_equal(fx->res.last_error, "HTTP 500: oops  more");
		assert_true(fx->res.retried);
		assert_int_equal(fx->res.retry_cause, MC_HTTP_5XX);
		assert_true(fx->res.host_failed);
		assert_false(fx->res.host_ok);
		assert_int_equal(fx->res.host_hint_ms, 0);
		assert_int_equal(fx->res.cooldown_until, 0);
	}
	item_free(it);
}

static void test_event_retryable_statuses_and_causes(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	const struct {
		int status;
		enum metric_retry_cause cause;
		bool host_failed;
	} cases[] = {
		{ 408, MC_HTTP_408, false }, { 425, MC_HTTP_425, false },
		{ 502, MC_HTTP_5XX, true },  { 504, MC_HTTP_5XX, true },
		{ 599, MC_HTTP_5XX, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		push(fx->api, cases[i].status, NULL, NULL);
		int64_t now = clock_now_ms();
		deliver(fx, it, now);
		assert_int_equal(fx->res.action, FWD_RESCHEDULE);
		assert_int_equal(fx->res.retry_cause, cases[i].cause);
		assert_int_equal(fx->res.host_failed, cases[i].host_failed);
		assert_true(fx->res.next_attempt_at >= now + 100 && fx->res.next_attempt_at <= now + 1000);
	}
	item_free(it);
}

static void test_event_retry_after_ignored_unless_429_or_503(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	push(fx->api, 500, NULL, "30");
	int64_t now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_true(fx->res.next_attempt_at <= now + 1000);
	assert_int_equal(fx->res.host_hint_ms, 0);
	item_free(it);
}

static void test_event_429_without_retry_after(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	push(fx->api, 429, NULL, NULL);
	int64_t now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.next_attempt_at, now + 10000); /* backoff ≤ 1 s, floor 10 s */
	assert_int_equal(fx->res.cooldown_until, now + 10000);
	assert_int_equal(fx->res.retry_cause, MC_HTTP_429);
	assert_false(fx->res.host_failed);
	assert_int_equal(fx->res.host_hint_ms, 0);
	/* a backoff above the floor stays: attempt 7 with cap 60 s → [10 s, 60 s] */
	it->attempts = 6;
	push(fx->api, 429, NULL, NULL);
	now = clock_now_ms();
	deliver(fx, it, now);
	assert_true(fx->res.next_attempt_at >= now + 10000);
	assert_true(fx->res.next_attempt_at <= now + 60000);
	assert_int_equal(fx->res.cooldown_until, fx->res.next_attempt_at);
	item_free(it);
}

static void test_event_429_with_retry_after(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	push(fx->api, 429, NULL, "2");
	int64_t now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.next_attempt_at, now + 2000); /* the header, not the 10 s floor */
	assert_int_equal(fx->res.cooldown_until, now + 2000);
	/* Retry-After: 0 → the 100 ms floor */
	push(fx->api, 429, NULL, "0");
	now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.next_attempt_at, now + 100);
	assert_int_equal(fx->res.cooldown_until, now + 100);
	/* capped at 3600 s */
	push(fx->api, 429, NULL, "999999");
	now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.next_attempt_at, now + 3600000);
	/* an HTTP-date in the past counts as 0 */
	push(fx->api, 429, NULL, "Sun, 06 Nov 1994 08:49:37 GMT");
	now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.next_attempt_at, now + 100);
	item_free(it);
}

static void test_event_503_with_retry_after_hints_host(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	push(fx->api, 503, "busy", "7");
	int64_t now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.next_attempt_at, now + 7000);
	assert_int_equal(fx->res.host_hint_ms, 7000);
	assert_true(fx->res.host_failed);
	assert_int_equal(fx->res.cooldown_until, 0); /* cool-down is for 429 only */
	assert_int_equal(fx->res.retry_cause, MC_HTTP_5XX);
	assert_string_equal(fx->res.last_error, "HTTP 503: busy");
	/* without the header: backoff, no hint */
	push(fx->api, 503, NULL, NULL);
	now = clock_now_ms();
	deliver(fx, it, now);
	assert_true(fx->res.next_attempt_at <= now + 1000);
	assert_int_equal(fx->res.host_hint_ms, 0);
	assert_true(fx->res.host_failed);
	item_free(it);
}

static void test_event_timeout(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	struct fake_reply slow = { .status = 202, .delay_ms = 1800 };
	fake_ilert_push(fx->api, &slow);
	int64_t now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.attempts, 1);
	assert_int_equal(fx->res.last_status, 0);
	assert_int_equal(fx->res.retry_cause, MC_TIMEOUT);
	assert_true(fx->res.host_failed);
	assert_false(fx->res.host_ok);
	assert_non_null(fx->res.last_error);
	assert_non_null(strstr(fx->res.last_error, "timed out"));
	assert_null(fx->res.body);
	assert_true(fx->res.duration_s >= 0.9);
	item_free(it);
}

static void test_event_connection_refused(void **state)
{
	struct fx *fx = *state;
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", test_free_port());
	struct ilert_client *c = client_for(url, url);
	struct store_item *it = event_new("ALERT");
	it->attempts = 1;
	int64_t now = clock_now_ms();
	forward_result_clear(&fx->res);
	assert_int_equal(forward_deliver(c, &fx->s, it, now, &fx->res), 0);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.attempts, 2);
	assert_int_equal(fx->res.last_status, 0);
	assert_int_equal(fx->res.retry_cause, MC_NETWORK);
	assert_true(fx->res.host_failed);
	assert_int_equal(fx->res.host, ILERT_BASE_API);
	assert_non_null(fx->res.last_error);
	assert_true(strlen(fx->res.last_error) > 0);
	assert_true(fx->res.next_attempt_at >= now + 100 && fx->res.next_attempt_at <= now + 2000);
	item_free(it);
	ilert_client_destroy(c);
}

static void test_event_max_retries_exhausted(void **state)
{
	struct fx *fx = *state;
	fx->s.max_retries = 3;
	struct store_item *it = event_new("ALERT");
	it->attempts = 1;
	push(fx->api, 500, "e1", NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.attempts, 2);
	it->attempts = 2;
	push(fx->api, 500, "e2", NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_EXHAUSTED);
	assert_int_equal(fx->res.attempts, 3);
	assert_int_equal(fx->res.last_status, 500);
	assert_string_equal(fx->res.last_error, "HTTP 500: e2");
	assert_string_equal(fx->res.body, "e2");
	assert_false(fx->res.retried);
	assert_true(fx->res.host_failed);
	/* a 429 that exhausts still cools the key down: ilert said so */
	push(fx->api, 429, NULL, "5");
	int64_t now = clock_now_ms();
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_EXHAUSTED);
	assert_int_equal(fx->res.cooldown_until, now + 5000);
	/* max_retries 1: the first failure exhausts */
	fx->s.max_retries = 1;
	it->attempts = 0;
	push(fx->api, 502, NULL, NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_EXHAUSTED);
	assert_int_equal(fx->res.attempts, 1);
	/* 0 = unlimited */
	fx->s.max_retries = 0;
	it->attempts = 100000;
	push(fx->api, 500, NULL, NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.attempts, 100001);
	item_free(it);
}

static void test_event_invalid_stored_values_dead_without_request(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("alert");
	it->attempts = 4;
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
	assert_int_equal(fx->res.attempts, 4);
	assert_int_equal(fx->res.last_status, 0);
	assert_string_equal(fx->res.last_error, "invalid event type 'alert'");
	assert_false(fx->res.host_ok);
	assert_false(fx->res.host_failed);

	set(&it->event_type, "ACCEPT");
	set(&it->priority, "MEDIUM");
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.attempts, 4);
	assert_string_equal(fx->res.last_error, "invalid priority 'MEDIUM'");
	assert_int_equal(fake_ilert_count(fx->api), 0);

	set(&it->priority, "LOW");
	set(&it->event_type, "COMMENT");
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 1);
	item_free(it);
}

static void test_event_invalid_json_columns_sent_as_null(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	set(&it->alert_key, "Host-1");
	set(&it->details, "d");
	set(&it->priority, "HIGH");
	set(&it->images, "[{\"src\":");
	set(&it->links, "not json");
	set(&it->custom_details, "{\"a\":");
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_request(fx->api, 0, "POST", "/api/events",
		       "{\"integrationKey\":\"il1api123\",\"eventType\":\"ALERT\","
		       "\"summary\":\"disk full\",\"alertKey\":\"Host-1\",\"details\":\"d\","
		       "\"priority\":\"HIGH\",\"images\":null,\"links\":null,\"customDetails\":null}");
	item_free(it);
}

static void test_event_api_path_targets(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	set(&it->event_api_path, "/v1/events/mqtt/il1api123");
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_request(fx->api, 0, "POST", "/api/v1/events/mqtt/il1api123", EVENT_BODY);
	/* the stored key is encoded when the URL is built */
	set(&it->event_api_path, "/v1/events/kafka/k y/1");
	deliver(fx, it, clock_now_ms());
	assert_request(fx->api, 1, "POST", "/api/v1/events/kafka/k%20y%2F1", EVENT_BODY);
	set(&it->event_api_path, "");
	deliver(fx, it, clock_now_ms());
	assert_request(fx->api, 2, "POST", "/api/events", EVENT_BODY);
	item_free(it);
}

static void test_aborted_request_leaves_row_unchanged(void **state)
{
	struct fx *fx = *state;
	atomic_int stop = 1;
	ilert_client_set_abort(fx->client, &stop);
	struct store_item *it = event_new("ALERT");
	it->attempts = 3;
	deliver(fx, it, clock_now_ms());
	ilert_client_set_abort(fx->client, NULL);
	assert_int_equal(fx->res.action, FWD_UNCHANGED);
	assert_int_equal(fx->res.attempts, 3);
	assert_null(fx->res.last_error);
	assert_false(fx->res.host_failed);
	assert_false(fx->res.retried);
	assert_int_equal(fake_ilert_count(fx->api), 0);
	item_free(it);
}

static void test_unknown_kind_dead_without_request(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = event_new("ALERT");
	it->kind = STORE_KIND_UNKNOWN;
	it->attempts = 2;
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
	assert_int_equal(fx->res.attempts, 2);
	assert_int_equal(fake_ilert_count(fx->api), 0);
	item_free(it);
}

/* ---- heartbeats ---------------------------------------------------------------------------- */

static void test_heartbeat_expired_without_request(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = item_new(STORE_KIND_HEARTBEAT, "il1hbt123");
	set(&it->event_type, "HEARTBEAT");
	int64_t now = clock_now_ms();
	it->accepted_at = now - 60000;
	it->attempts = 3;
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_EXPIRED);
	assert_int_equal(fx->res.attempts, 3);
	assert_false(fx->res.host_failed);
	assert_false(fx->res.host_ok);
	assert_int_equal(fake_ilert_count(fx->api), 0);
	/* one ms younger: still sent */
	it->accepted_at = now - 59999;
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fx->res.attempts, 4);
	assert_int_equal(fake_ilert_count(fx->api), 1);
	item_free(it);
}

static void test_heartbeat_retry_past_ttl_expires(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = item_new(STORE_KIND_HEARTBEAT, "il1hbt123");
	int64_t now = clock_now_ms();
	/* the next attempt would start at least 100 ms later: after the TTL */
	it->accepted_at = now - 59950;
	push(fx->api, 500, NULL, NULL);
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_EXPIRED);
	assert_int_equal(fx->res.attempts, 1);
	assert_false(fx->res.retried);
	assert_true(fx->res.host_failed); /* the host still failed */
	/* a 503 Retry-After beyond the TTL */
	it->accepted_at = now;
	push(fx->api, 503, NULL, "120");
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_EXPIRED);
	assert_int_equal(fx->res.host_hint_ms, 120000);
	/* within the TTL: rescheduled; a 429 does not cool a heartbeat key down */
	push(fx->api, 429, NULL, "3");
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.next_attempt_at, now + 3000);
	assert_int_equal(fx->res.cooldown_until, 0);
	assert_int_equal(fx->res.retry_cause, MC_HTTP_429);
	/* exhausted before expired */
	fx->s.max_retries = 1;
	it->accepted_at = now - 59950;
	push(fx->api, 500, NULL, NULL);
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_EXHAUSTED);
	item_free(it);
}

static void test_heartbeat_targets_and_auth(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = item_new(STORE_KIND_HEARTBEAT, "il1hbt/ab c");
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fx->res.host, ILERT_BASE_API);
	assert_int_equal(fake_ilert_count(fx->api), 1);
	assert_int_equal(fake_ilert_count(fx->beat), 0);
	assert_request(fx->api, 0, "GET", "/api/heartbeats/il1hbt%2Fab%20c", NULL);

	set(&it->integration_key, "beatkey-1");
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fx->res.host, ILERT_BASE_BEAT);
	assert_int_equal(fake_ilert_count(fx->api), 1);
	assert_int_equal(fake_ilert_count(fx->beat), 1);
	assert_request(fx->beat, 0, "HEAD", "/api/pings/beatkey-1", NULL);

	/* failures of the beat host name that host */
	push(fx->beat, 502, NULL, NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.host, ILERT_BASE_BEAT);
	assert_true(fx->res.host_failed);
	push(fx->beat, 404, NULL, NULL);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
	assert_int_equal(fx->res.attempts, 1);
	assert_string_equal(fx->res.last_error, "HTTP 404");
	item_free(it);
}

/* ---- policy items -------------------------------------------------------------------------- */

#define USER_OK "{\"id\":42,\"firstName\":\"A\"}"
#define POLICY_OK                                                                              \
	"{\"id\":77,\"name\":\"p\",\"escalationRules\":[{\"escalationTimeout\":5},"              \
	"{\"escalationTimeout\":15,\"users\":[]}]}"
#define RESOLVE_TARGET "/api/escalation-policies/resolve?routing-key=plant%203%2Fx"

static void push_policy_ok(struct fake_ilert *f)
{
	push(f, 200, USER_OK, NULL);
	push(f, 200, POLICY_OK, NULL);
	push(f, 200, "{}", NULL);
}

static void test_policy_full_sequence(void **state)
{
	struct fx *fx = *state;
	struct store_item *it = policy_new("ops@example.com", "plant 3/x", 1);
	it->attempts = 1;
	push_policy_ok(fx->api);
	deliver(fx, it, clock_now_ms());
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fx->res.attempts, 2);
	assert_null(fx->res.last_error);
	assert_true(fx->res.host_ok);
	assert_false(fx->res.host_failed);
	assert_int_equal(fx->res.host, ILERT_BASE_API);
	assert_int_equal(fake_ilert_count(fx->api), 3);
	assert_request(fx->api, 0, "POST", "/api/users/search-email",
		       "{\"email\":\"ops@example.com\"}");
	assert_request(fx->api, 1, "GET", RESOLVE_TARGET, NULL);
	assert_request(fx->api, 2, "PUT", "/api/escalation-policies/77/levels/1",
		       "{\"escalationTimeout\":15,\"users\":[{\"id\":42}]}");
	item_free(it);
}

static void test_policy_escalation_timeout_from_rules(void **state)
{
	struct fx *fx = *state;
	const struct {
		int shift;
		const char *policy;
		const char *put;
	} cases[] = {
		{ 0, POLICY_OK, "{\"escalationTimeout\":5,\"users\":[{\"id\":42}]}" },
		{ 2, POLICY_OK, "{\"escalationTimeout\":1,\"users\":[{\"id\":42}]}" },
		{ 0, "{\"id\":77,\"escalationRules\":[{\"escalationTimeout\":\"9\"}]}",
		  "{\"escalationTimeout\":1,\"users\":[{\"id\":42}]}" },
		{ 0, "{\"id\":77,\"escalationRules\":[{\"escalationTimeout\":2.5}]}",
		  "{\"escalationTimeout\":1,\"users\":[{\"id\":42}]}" },
		{ 0, "{\"id\":77}", "{\"escalationTimeout\":1,\"users\":[{\"id\":42}]}" },
		{ 0, "{\"id\":77,\"escalationRules\":{\"0\":{\"escalationTimeout\":3}}}",
		  "{\"escalationTimeout\":1,\"users\":[{\"id\":42}]}" },
		{ 1, "{\"id\":78,\"escalationRules\":[{},{\"escalationTimeout\":0}]}",
		  "{\"escalationTimeout\":0,\"users\":[{\"id\":42}]}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_item *it = policy_new("a@b.c", "rk", cases[i].shift);
		fake_ilert_reset(fx->api);
		push(fx->api, 200, USER_OK, NULL);
		push(fx->api, 200, cases[i].policy, NULL);
		push(fx->api, 204, NULL, NULL);
		deliver(fx, it, clock_now_ms());
		assert_int_equal(fx->res.action, FWD_DELETE);
		char path[64];
		snprintf(path, sizeof(path), "/api/escalation-policies/%d/levels/%d",
			 strstr(cases[i].policy, "78") ? 78 : 77, cases[i].shift);
		assert_request(fx->api, 2, "PUT", path, cases[i].put);
		item_free(it);
	}
}

struct step_case {
	const char *name;
	int failing_step; /* 1, 2, 3 */
	int status;
	const char *body;
	enum forward_action action;
	enum metric_retry_cause cause; /* when rescheduled */
	const char *last_error;
	bool host_failed;
};

static void test_policy_step_failures(void **state)
{
	struct fx *fx = *state;
	const struct step_case cases[] = {
		{ "user 4xx", 1, 404, NULL, FWD_DEAD, 0, "user lookup: HTTP 404", false },
		{ "user 5xx", 1, 500, "x", FWD_RESCHEDULE, MC_HTTP_5XX, "user lookup: HTTP 500: x", true },
		{ "user 429", 1, 429, NULL, FWD_RESCHEDULE, MC_HTTP_429, "user lookup: HTTP 429", false },
		{ "user no id", 1, 200, "{\"name\":\"x\"}", FWD_DEAD, 0, "user lookup: user not found", false },
		{ "user id not integer", 1, 200, "{\"id\":\"42\"}", FWD_DEAD, 0, "user lookup: user not found", false },
		{ "user array", 1, 200, "[{\"id\":42}]", FWD_DEAD, 0, "user lookup: user not found", false },
		{ "user not JSON", 1, 200, "<html>", FWD_RESCHEDULE, MC_INVALID_RESPONSE,
		  "user lookup: invalid JSON response", false },
		{ "user empty 2xx", 1, 204, NULL, FWD_RESCHEDULE, MC_INVALID_RESPONSE,
		  "user lookup: invalid JSON response", false },
		{ "policy 4xx", 2, 403, "{\"m\":1}", FWD_DEAD, 0, "policy lookup: HTTP 403: {\"m\":1}", false },
		{ "policy 5xx", 2, 503, NULL, FWD_RESCHEDULE, MC_HTTP_5XX, "policy lookup: HTTP 503", true },
		{ "policy no id", 2, 200, "{}", FWD_DEAD, 0, "policy lookup: escalation policy not found", false },
		{ "policy not JSON", 2, 200, "{\"id\":7", FWD_RESCHEDULE, MC_INVALID_RESPONSE,
		  "policy lookup: invalid JSON response", false },
		{ "level 4xx", 3, 400, "bad", FWD_DEAD, 0, "level update: HTTP 400: bad", false },
		{ "level 5xx", 3, 500, NULL, FWD_RESCHEDULE, MC_HTTP_5XX, "level update: HTTP 500", true },
		{ "level 2xx not JSON", 3, 200, "ok", FWD_DELETE, 0, NULL, false },
		{ "level 2xx without id", 3, 202, "{}", FWD_DELETE, 0, NULL, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct step_case *c = &cases[i];
		struct store_item *it = policy_new("a@b.c", "plant 3/x", 1);
		it->attempts = 3;
		fake_ilert_reset(fx->api);
		if (c->failing_step > 1)
			push(fx->api, 200, USER_OK, NULL);
		if (c->failing_step > 2)
			push(fx->api, 200, POLICY_OK, NULL);
		push(fx->api, c->status, c->body, NULL);
		int64_t now = clock_now_ms();
		deliver(fx, it, now);
		if (fx->res.action != c->action)
			fail_msg("%s: action %d, want %d", c->name, fx->res.action, c->action);
		assert_int_equal(fake_ilert_count(fx->api), c->failing_step);
		assert_int_equal(fx->res.attempts, 4); /* one attempt, however many steps */
		assert_int_equal(fx->res.last_status, c->status);
		if (c->last_error)
			assert_string_equal(fx->res.last_error, c->last_error);
		else
			assert_null(fx->res.last_error);
		assert_int_equal(fx->res.host_failed, c->host_failed);
		/* any 2xx of the attempt releases the brake */
		assert_int_equal(fx->res.host_ok, c->failing_step > 1 || c->status / 100 == 2);
		assert_int_equal(fx->res.cooldown_until, 0); /* cool-down is for events */
		if (c->action == FWD_RESCHEDULE) {
			assert_true(fx->res.retried);
			assert_int_equal(fx->res.retry_cause, c->cause);
			assert_true(fx->res.next_attempt_at >= now + 100);
		}
		if (c->action == FWD_DEAD) {
			assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
			if (c->body)
				assert_string_equal(fx->res.body, c->body);
		}
		item_free(it);
	}
}

static void test_policy_invalid_payload_dead_without_request(void **state)
{
	struct fx *fx = *state;
	const char *payloads[] = {
		NULL, "not json", "{\"email\":\"a\",\"routingKey\":\"r\"}",
		"{\"email\":1,\"routingKey\":\"r\",\"shift\":0}",
		"{\"email\":\"a\",\"routingKey\":\"r\",\"shift\":-1}",
	};
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		struct store_item *it = policy_new("a", "r", 0);
		set(&it->payload, payloads[i]);
		it->attempts = 2;
		deliver(fx, it, clock_now_ms());
		assert_int_equal(fx->res.action, FWD_DEAD);
		assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
		assert_int_equal(fx->res.attempts, 2);
		assert_string_equal(fx->res.last_error, "invalid policy payload");
		item_free(it);
	}
	assert_int_equal(fake_ilert_count(fx->api), 0);
}

static uint64_t metric_value(const char *series)
{
	char *text = metrics_render();
	assert_non_null(text);
	const char *at = strstr(text, series);
	uint64_t v = 0;
	if (at)
		v = strtoull(at + strlen(series), NULL, 10);
	free(text);
	return v;
}

#define M_USER_HIT "ilagent_policy_cache_total{cache=\"user\",result=\"hit\"} "
#define M_USER_MISS "ilagent_policy_cache_total{cache=\"user\",result=\"miss\"} "
#define M_POLICY_HIT "ilagent_policy_cache_total{cache=\"policy\",result=\"hit\"} "
#define M_POLICY_MISS "ilagent_policy_cache_total{cache=\"policy\",result=\"miss\"} "

struct cache_counts {
	uint64_t user_hit, user_miss, policy_hit, policy_miss;
};

static struct cache_counts cache_counts(void)
{
	return (struct cache_counts){ metric_value(M_USER_HIT), metric_value(M_USER_MISS),
				      metric_value(M_POLICY_HIT), metric_value(M_POLICY_MISS) };
}

static void assert_counts_delta(struct cache_counts before, uint64_t uh, uint64_t um, uint64_t ph,
				uint64_t pm)
{
	struct cache_counts now = cache_counts();
	assert_int_equal(now.user_hit - before.user_hit, uh);
	assert_int_equal(now.user_miss - before.user_miss, um);
	assert_int_equal(now.policy_hit - before.policy_hit, ph);
	assert_int_equal(now.policy_miss - before.policy_miss, pm);
}

static void test_policy_cache_hit_on_second_item(void **state)
{
	struct fx *fx = *state;
	fx->s.policy_cache_ttl = 300;
	struct cache_counts c0 = cache_counts();
	struct store_item *it = policy_new("ops@example.com", "plant 3/x", 1);
	int64_t now = clock_now_ms();
	push_policy_ok(fx->api);
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 3);
	assert_counts_delta(c0, 0, 1, 0, 1);

	/* same email and routing key: only the level update, with the cached timeouts */
	struct store_item *it2 = policy_new("ops@example.com", "plant 3/x", 1);
	set(&it2->id, "6f1c1b2e-8a44-4c61-9a53-5d0c6c6b7a02");
	deliver(fx, it2, now + 299999);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 4);
	assert_request(fx->api, 3, "PUT", "/api/escalation-policies/77/levels/1",
		       "{\"escalationTimeout\":15,\"users\":[{\"id\":42}]}");
	assert_counts_delta(c0, 1, 1, 1, 1);

	/* another shift of the cached policy uses the cached rule list */
	struct store_item *it3 = policy_new("ops@example.com", "plant 3/x", 0);
	deliver(fx, it3, now + 1000);
	assert_int_equal(fake_ilert_count(fx->api), 5);
	assert_request(fx->api, 4, "PUT", "/api/escalation-policies/77/levels/0",
		       "{\"escalationTimeout\":5,\"users\":[{\"id\":42}]}");

	/* another email, same routing key: user lookup, cached policy */
	struct store_item *it4 = policy_new("dev@example.com", "plant 3/x", 1);
	push(fx->api, 200, "{\"id\":43}", NULL);
	deliver(fx, it4, now + 1000);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 7);
	assert_request(fx->api, 5, "POST", "/api/users/search-email", "{\"email\":\"dev@example.com\"}");
	assert_request(fx->api, 6, "PUT", "/api/escalation-policies/77/levels/1",
		       "{\"escalationTimeout\":15,\"users\":[{\"id\":43}]}");

	/* after the TTL: looked up again */
	push_policy_ok(fx->api);
	deliver(fx, it2, now + 300000);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 10);
	item_free(it);
	item_free(it2);
	item_free(it3);
	item_free(it4);
}

static void test_policy_failures_not_cached(void **state)
{
	struct fx *fx = *state;
	fx->s.policy_cache_ttl = 300;
	struct store_item *it = policy_new("a@b.c", "rk", 0);
	int64_t now = clock_now_ms();
	push(fx->api, 200, USER_OK, NULL);
	push(fx->api, 500, NULL, NULL);
	deliver(fx, it, now);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	/* the user was found and is cached; the failed policy lookup is not */
	push(fx->api, 200, POLICY_OK, NULL);
	push(fx->api, 200, "{}", NULL);
	deliver(fx, it, now + 10);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 4);
	assert_request(fx->api, 2, "GET", "/api/escalation-policies/resolve?routing-key=rk", NULL);
	item_free(it);
}

static void test_policy_cache_off_counts_nothing(void **state)
{
	struct fx *fx = *state;
	struct cache_counts c0 = cache_counts();
	struct store_item *it = policy_new("a@b.c", "rk", 0);
	for (int i = 0; i < 2; i++) {
		push_policy_ok(fx->api);
		deliver(fx, it, clock_now_ms());
		assert_int_equal(fx->res.action, FWD_DELETE);
	}
	assert_int_equal(fake_ilert_count(fx->api), 6);
	assert_counts_delta(c0, 0, 0, 0, 0);
	item_free(it);
}

static void test_policy_stale_cache_rule(void **state)
{
	struct fx *fx = *state;
	fx->s.policy_cache_ttl = 300;
	int64_t now = clock_now_ms();
	struct store_item *first = policy_new("a@b.c", "plant 3/x", 1);
	push_policy_ok(fx->api);
	deliver(fx, first, now);
	assert_int_equal(fx->res.action, FWD_DELETE);

	/* cached lookups, level update fails permanently: evict, retry at once */
	struct store_item *it = policy_new("a@b.c", "plant 3/x", 1);
	set(&it->id, "6f1c1b2e-8a44-4c61-9a53-5d0c6c6b7a02");
	it->attempts = 1;
	push(fx->api, 404, "{\"message\":\"no level\"}", NULL);
	deliver(fx, it, now + 5);
	assert_int_equal(fake_ilert_count(fx->api), 4);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.attempts, 2);
	assert_int_equal(fx->res.next_attempt_at, now + 5);
	assert_true(fx->res.retried);
	assert_int_equal(fx->res.retry_cause, MC_STALE_CACHE);
	assert_int_equal(fx->res.last_status, 404);
	assert_string_equal(fx->res.last_error,
			    "level update: HTTP 404: {\"message\":\"no level\"} (cached lookups evicted)");
	assert_false(fx->res.host_failed);

	/* both entries are gone: another item looks both up again (and refills the cache) */
	push_policy_ok(fx->api);
	deliver(fx, first, now + 6);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 7);

	/* the retry uses fresh lookups even though the cache was refilled meanwhile; failing
	 * again with fresh data is permanent */
	it->attempts = 2;
	set(&it->last_error,
	    "level update: HTTP 404: {\"message\":\"no level\"} (cached lookups evicted)");
	it->last_status = 404;
	push(fx->api, 200, USER_OK, NULL);
	push(fx->api, 200, POLICY_OK, NULL);
	push(fx->api, 404, "{\"message\":\"no level\"}", NULL);
	deliver(fx, it, now + 7);
	assert_int_equal(fake_ilert_count(fx->api), 10);
	assert_request(fx->api, 7, "POST", "/api/users/search-email", "{\"email\":\"a@b.c\"}");
	assert_request(fx->api, 8, "GET", RESOLVE_TARGET, NULL);
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_PERMANENT);
	assert_int_equal(fx->res.attempts, 3);
	assert_string_equal(fx->res.last_error, "level update: HTTP 404: {\"message\":\"no level\"}");
	assert_string_equal(fx->res.body, "{\"message\":\"no level\"}");
	item_free(first);
	item_free(it);
}

static void test_policy_stale_cache_partial_and_exhausted(void **state)
{
	struct fx *fx = *state;
	fx->s.policy_cache_ttl = 300;
	int64_t now = clock_now_ms();
	struct store_item *a = policy_new("a@b.c", "rk1", 0);
	push_policy_ok(fx->api);
	deliver(fx, a, now);
	assert_int_equal(fx->res.action, FWD_DELETE);

	/* only the user came from the cache: the rule still applies */
	struct store_item *b = policy_new("a@b.c", "rk2", 0);
	push(fx->api, 200, POLICY_OK, NULL);
	push(fx->api, 410, NULL, NULL);
	deliver(fx, b, now + 1);
	assert_int_equal(fake_ilert_count(fx->api), 5);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.retry_cause, MC_STALE_CACHE);
	assert_int_equal(fx->res.next_attempt_at, now + 1);

	/* the user entry was evicted, rk1 is still cached */
	push(fx->api, 200, USER_OK, NULL);
	push(fx->api, 204, NULL, NULL);
	deliver(fx, a, now + 2);
	assert_int_equal(fx->res.action, FWD_DELETE);
	assert_int_equal(fake_ilert_count(fx->api), 7);
	assert_request(fx->api, 6, "PUT", "/api/escalation-policies/77/levels/0",
		       "{\"escalationTimeout\":5,\"users\":[{\"id\":42}]}");
	/* a retryable level failure with cached data is an ordinary retry */
	push(fx->api, 502, NULL, NULL);
	deliver(fx, a, now + 3);
	assert_int_equal(fx->res.action, FWD_RESCHEDULE);
	assert_int_equal(fx->res.retry_cause, MC_HTTP_5XX);
	assert_true(fx->res.next_attempt_at >= now + 3 + 100);

	/* the stale rule counts as retryable: with attempts exhausted it is a dead letter */
	fx->s.max_retries = 2;
	a->attempts = 1;
	push(fx->api, 404, NULL, NULL);
	deliver(fx, a, now + 4);
	assert_int_equal(fx->res.action, FWD_DEAD);
	assert_int_equal(fx->res.dead_reason, STORE_DEAD_EXHAUSTED);
	assert_int_equal(fx->res.attempts, 2);
	item_free(a);
	item_free(b);
}

static void test_policy_cache_bounded(void **state)
{
	struct fx *fx = *state;
	policy_cache_destroy(fx->cache);
	fx->cache = policy_cache_create(2);
	assert_non_null(fx->cache);
	fx->s.cache = fx->cache;
	fx->s.policy_cache_ttl = 300;
	int64_t now = clock_now_ms();
	const char *emails[] = { "u1@x", "u2@x", "u3@x" };
	for (int i = 0; i < 3; i++) {
		struct store_item *it = policy_new(emails[i], "rk", 0);
		push(fx->api, 200, USER_OK, NULL);
		if (i == 0)
			push(fx->api, 200, POLICY_OK, NULL);
		push(fx->api, 200, "{}", NULL);
		deliver(fx, it, now);
		assert_int_equal(fx->res.action, FWD_DELETE);
		item_free(it);
	}
	int before = fake_ilert_count(fx->api);
	/* u1 was forgotten (two entries at most), u3 is still there */
	struct store_item *u3 = policy_new("u3@x", "rk", 0);
	deliver(fx, u3, now);
	assert_int_equal(fake_ilert_count(fx->api), before + 1);
	struct store_item *u1 = policy_new("u1@x", "rk", 0);
	push(fx->api, 200, USER_OK, NULL);
	deliver(fx, u1, now);
	assert_int_equal(fake_ilert_count(fx->api), before + 3);
	item_free(u3);
	item_free(u1);
}

static void test_policy_long_routing_key(void **state)
{
	struct fx *fx = *state;
	char rk[3001];
	memset(rk, '/', 3000);
	rk[3000] = '\0';
	struct store_item *it = policy_new("a@b.c", rk, 0);
	push_policy_ok(fx->api);
	deliver(fx, it, clock_now_ms());
	if (fx->res.action != FWD_DELETE)
		fail_msg("action %d: %s", fx->res.action, fx->res.last_error);
	struct fake_request *r = fake_ilert_request(fx->api, 1);
	assert_non_null(r);
	const char *prefix = "/api/escalation-policies/resolve?routing-key=";
	assert_int_equal(strlen(r->target), strlen(prefix) + 9000);
	assert_memory_equal(r->target, prefix, strlen(prefix));
	assert_memory_equal(r->target + strlen(prefix), "%2F%2F%2F", 9);
	fake_request_free(r);
	item_free(it);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, each_setup, each_teardown)

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_backoff_exact_points),
		cmocka_unit_test(test_backoff_bounds_for_many_attempts_and_randoms),
		cmocka_unit_test(test_backoff_is_uniform),
		cmocka_unit_test(test_brake_doubles_up_to_cap),
		cmocka_unit_test(test_brake_failures_while_braked_do_not_double),
		cmocka_unit_test(test_brake_hint_replaces_and_extends),
		cmocka_unit_test(test_brake_released_by_success),
		cmocka_unit_test(test_rate_limiter_off),
		cmocka_unit_test(test_rate_limiter_exact_window),
		cmocka_unit_test(test_rate_limiter_unrecord),
		cmocka_unit_test(test_rate_limiter_rolling_window_property),
		cmocka_unit_test(test_rate_limiter_forgets_least_recently_used),
		cmocka_unit_test(test_rate_limiter_large_limit),
		cmocka_unit_test(test_cooldown_table),
	};
	const struct CMUnitTest delivery[] = {
		T(test_event_2xx_deletes),
		T(test_event_any_2xx_deletes),
		T(test_event_400_dead_permanent_with_body),
		T(test_event_permanent_statuses),
		T(test_event_body_kept_for_excerpt_only),
		T(test_event_500_reschedules_in_backoff_range),
		T(test_event_retryable_statuses_and_causes),
		T(test_event_retry_after_ignored_unless_429_or_503),
		T(test_event_429_without_retry_after),
		T(test_event_429_with_retry_after),
		T(test_event_503_with_retry_after_hints_host),
		T(test_event_timeout),
		T(test_event_connection_refused),
		T(test_event_max_retries_exhausted),
		T(test_event_invalid_stored_values_dead_without_request),
		T(test_event_invalid_json_columns_sent_as_null),
		T(test_event_api_path_targets),
		T(test_aborted_request_leaves_row_unchanged),
		T(test_unknown_kind_dead_without_request),
		T(test_heartbeat_expired_without_request),
		T(test_heartbeat_retry_past_ttl_expires),
		T(test_heartbeat_targets_and_auth),
		T(test_policy_full_sequence),
		T(test_policy_escalation_timeout_from_rules),
		T(test_policy_step_failures),
		T(test_policy_invalid_payload_dead_without_request),
		T(test_policy_cache_hit_on_second_item),
		T(test_policy_failures_not_cached),
		T(test_policy_cache_off_counts_nothing),
		T(test_policy_stale_cache_rule),
		T(test_policy_stale_cache_partial_and_exhausted),
		T(test_policy_cache_bounded),
		T(test_policy_long_routing_key),
	};
	int failed = cmocka_run_group_tests_name("forward helpers", pure, NULL, NULL);
	failed += cmocka_run_group_tests_name("forward_deliver", delivery, group_setup, group_teardown);
	return failed;
}
