/* One delivery attempt and its consequences (SPEC §14.4-§14.7), plus the host brake, the
 * rate limiter and the 429 cool-down table the dispatcher keeps. */
#include "pipeline/forward.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/err.h"
#include "core/event.h"
#include "core/strmap.h"
#include "core/text.h"
#include "ilert/events.h"
#include "ilert/heartbeat.h"
#include "ops/log.h"

#define HEARTBEAT_TTL_MS 60000
#define RETRY_FLOOR_MS 100
#define RETRY_429_FLOOR_MS 10000
#define POLICY_CACHE_MAX 10000

static uint64_t random64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint64_t)rand() << 32 ^ (uint64_t)rand();
	return v;
}

int64_t forward_backoff_ms(int64_t attempt, int max_backoff_s, uint64_t random)
{
	int64_t cap = (int64_t)max_backoff_s * 1000;
	int64_t exp = 1000;
	for (int64_t i = 1; i < attempt && exp < cap; i++)
		exp *= 2;
	if (exp > cap)
		exp = cap;
	int64_t delay = (int64_t)(random % (uint64_t)(exp + 1));
	return delay < RETRY_FLOOR_MS ? RETRY_FLOOR_MS : delay;
}

void forward_result_clear(struct forward_result *res)
{
	free(res->last_error);
	free(res->body);
	memset(res, 0, sizeof(*res));
}

static enum metric_retry_cause cause_of(const char *label)
{
	static const struct { const char *name; enum metric_retry_cause cause; } map[] = {
		{ "network", MC_NETWORK }, { "timeout", MC_TIMEOUT }, { "http_408", MC_HTTP_408 },
		{ "http_425", MC_HTTP_425 }, { "http_429", MC_HTTP_429 }, { "http_5xx", MC_HTTP_5XX },
	};
	for (size_t i = 0; label && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, label) == 0)
			return map[i].cause;
	return MC_NETWORK;
}

static char *describe(const char *step, const struct ilert_result *r)
{
	struct tbuf b;
	tbuf_init(&b);
	if (step)
		tbuf_printf(&b, "%s: ", step);
	if (r->status)
		tbuf_printf(&b, "HTTP %ld", r->status);
	else
		tbuf_puts(&b, r->error[0] ? r->error : "no response");
	return tbuf_take(&b);
}

/* Fills res from the final request of an attempt (the one that decided it). */
static void conclude(const struct forward_settings *s, const struct store_item *item,
		     int64_t now_ms, const char *step, const struct ilert_result *r,
		     enum ilert_outcome outcome, struct forward_result *res)
{
	res->attempts = item->attempts + 1;
	res->last_status = (int)r->status;
	res->host_ok = r->status != 0 && r->status < 500;
	res->host_failed = r->status == 0 || r->status >= 500;
	if (outcome == ILERT_OUTCOME_SUCCESS) {
		res->action = FWD_DELETE;
		return;
	}
	res->last_error = describe(step, r);
	if (r->body) {
		res->body = malloc(r->body_len + 1);
		if (res->body) {
			memcpy(res->body, r->body, r->body_len);
			res->body[r->body_len] = '\0';
			res->body_len = r->body_len;
		}
	}
	if (outcome == ILERT_OUTCOME_PERMANENT) {
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_PERMANENT;
		return;
	}
	if (s->max_retries > 0 && res->attempts >= s->max_retries) {
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_EXHAUSTED;
		return;
	}
	int64_t delay = forward_backoff_ms(res->attempts, s->retry_max_backoff, random64());
	bool has_retry_after = r->retry_after_ms >= 0;
	if ((r->status == 429 || r->status == 503) && has_retry_after)
		delay = r->retry_after_ms < RETRY_FLOOR_MS ? RETRY_FLOOR_MS : r->retry_after_ms;
	else if (r->status == 429 && delay < RETRY_429_FLOOR_MS)
		delay = RETRY_429_FLOOR_MS;
	if (r->status == 503 && has_retry_after)
		res->host_hint_ms = delay;
	res->next_attempt_at = now_ms + delay;
	if (item->kind == STORE_KIND_HEARTBEAT &&
	    res->next_attempt_at > item->accepted_at + HEARTBEAT_TTL_MS) {
		res->action = FWD_EXPIRED;
		return;
	}
	if (r->status == 429 && item->kind == STORE_KIND_EVENT)
		res->cooldown_until = res->next_attempt_at;
	res->action = FWD_RESCHEDULE;
	res->retried = true;
	res->retry_cause = cause_of(ilert_retry_cause(r));
}

static int deliver_event(struct ilert_client *client, const struct forward_settings *s,
			 const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	if (!event_type_valid(item->event_type) || !event_priority_valid(item->priority)) {
		/* Only rows written by older versions can hold these: no request can succeed. */
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_PERMANENT;
		res->attempts = item->attempts;
		res->last_error = strdup(event_type_valid(item->event_type) ? "unsupported priority"
									     : "unsupported event type");
		return 0;
	}
	struct event ev = {
		.integration_key = item->integration_key, .event_type = item->event_type,
		.summary = item->summary, .alert_key = item->alert_key, .details = item->details,
		.priority = item->priority, .images = item->images, .links = item->links,
		.custom_details = item->custom_details,
	};
	struct ilert_result r;
	ilert_result_init(&r);
	ilert_send_event(client, &ev, item->event_api_path, true, &r);
	res->host = ILERT_BASE_API;
	res->duration_s = (double)r.duration_ms / 1000.0;
	conclude(s, item, now_ms, NULL, &r, ilert_result_outcome(&r), res);
	ilert_result_free(&r);
	return 0;
}

static int deliver_heartbeat(struct ilert_client *client, const struct forward_settings *s,
			     const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	if (now_ms - item->accepted_at >= HEARTBEAT_TTL_MS) {
		res->action = FWD_EXPIRED;
		res->attempts = item->attempts;
		return 0;
	}
	const char *key = item->integration_key ? item->integration_key : "";
	struct ilert_result r;
	ilert_result_init(&r);
	ilert_heartbeat_ping(client, key, true, &r);
	res->host = ilert_heartbeat_uses_api(key) ? ILERT_BASE_API : ILERT_BASE_BEAT;
	res->duration_s = (double)r.duration_ms / 1000.0;
	conclude(s, item, now_ms, NULL, &r, ilert_result_outcome(&r), res);
	ilert_result_free(&r);
	return 0;
}

/* ---- policy items (§14.7) ------------------------------------------------------------- */

struct policy_lookup {
	char *key;
	int64_t id;
	json_t *rules; /* policy cache: escalationRules array (or NULL) */
	int64_t expires_ms;
};

/* Shared by all forwarders: lookups are cached for --policy_cache_ttl seconds. */
struct policy_cache {
	pthread_mutex_t lock;
	struct strmap *map;
	struct policy_lookup *ring[POLICY_CACHE_MAX]; /* insertion order, oldest evicted */
	size_t head, count;
};

static struct policy_cache user_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct policy_cache policy_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void lookup_free(struct policy_lookup *l)
{
	if (!l)
		return;
	json_decref(l->rules);
	free(l->key);
	free(l);
}

static void cache_forget_locked(struct policy_cache *c, const char *key)
{
	if (!c->map)
		return;
	struct policy_lookup *l = strmap_remove(c->map, key);
	if (!l)
		return;
	for (size_t i = 0; i < c->count; i++) {
		size_t at = (c->head + i) % POLICY_CACHE_MAX;
		if (c->ring[at] == l)
			c->ring[at] = NULL;
	}
	lookup_free(l);
}

/* Copies the cached id (and rules) for key when fresh; false when absent or expired. */
static bool cache_get(struct policy_cache *c, const char *key, int64_t now_ms, int64_t *id,
		      json_t **rules)
{
	bool hit = false;
	pthread_mutex_lock(&c->lock);
	struct policy_lookup *l = c->map ? strmap_get(c->map, key) : NULL;
	if (l && l->expires_ms > now_ms) {
		*id = l->id;
		if (rules)
			*rules = json_incref(l->rules);
		hit = true;
	} else if (l) {
		cache_forget_locked(c, key);
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void cache_put(struct policy_cache *c, const char *key, int64_t id, json_t *rules,
		      int64_t expires_ms)
{
	struct policy_lookup *l = calloc(1, sizeof(*l));
	if (!l || !(l->key = strdup(key))) {
		free(l);
		return;
	}
	l->id = id;
	l->rules = json_incref(rules);
	l->expires_ms = expires_ms;
	pthread_mutex_lock(&c->lock);
	if (!c->map)
		c->map = strmap_create();
	cache_forget_locked(c, key);
	if (c->count == POLICY_CACHE_MAX) {
		struct policy_lookup *old = c->ring[c->head];
		if (old)
			cache_forget_locked(c, old->key);
		c->head = (c->head + 1) % POLICY_CACHE_MAX;
		c->count--;
	}
	if (c->map && strmap_put(c->map, l->key, l) == 0) {
		c->ring[(c->head + c->count) % POLICY_CACHE_MAX] = l;
		c->count++;
	} else {
		lookup_free(l);
	}
	pthread_mutex_unlock(&c->lock);
}

static void cache_evict(struct policy_cache *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	cache_forget_locked(c, key);
	pthread_mutex_unlock(&c->lock);
}

/* One policy step's response: 2xx with a JSON object holding an integer "id". *doc keeps
 * the parsed object for the caller (freed by it). */
enum step_result { STEP_OK, STEP_RETRY, STEP_PERMANENT };

static enum step_result step_id(const struct ilert_result *r, int64_t *id, json_t **doc,
				const char **why)
{
	enum ilert_outcome o = ilert_result_outcome(r);
	if (o != ILERT_OUTCOME_SUCCESS) {
		*why = NULL;
		return o == ILERT_OUTCOME_PERMANENT ? STEP_PERMANENT : STEP_RETRY;
	}
	json_t *root = r->body && !r->body_truncated ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	if (!root) {
		*why = "invalid JSON response";
		return STEP_RETRY;
	}
	json_t *jid = json_is_object(root) ? json_object_get(root, "id") : NULL;
	if (!json_is_integer(jid)) {
		json_decref(root);
		*why = "not found";
		return STEP_PERMANENT;
	}
	*id = json_integer_value(jid);
	*doc = root;
	return STEP_OK;
}

struct policy_job {
	const char *email;
	const char *routing_key;
	int64_t shift;
};

static int parse_policy_payload(const char *payload, json_t **root, struct policy_job *job)
{
	*root = payload ? json_loads(payload, 0, NULL) : NULL;
	json_t *email = json_object_get(*root, "email");
	json_t *rk = json_object_get(*root, "routingKey");
	json_t *shift = json_object_get(*root, "shift");
	if (!json_is_string(email) || !json_is_string(rk) || !json_is_integer(shift))
		return ILA_ERR_INVALID;
	job->email = json_string_value(email);
	job->routing_key = json_string_value(rk);
	job->shift = json_integer_value(shift);
	return 0;
}

/* Ends the attempt at a failed step: permanent, retryable or invalid-response retry. */
static void policy_step_failed(const struct forward_settings *s, const struct store_item *item,
			       int64_t now_ms, const char *step, const struct ilert_result *r,
			       enum step_result sr, const char *why, struct forward_result *res)
{
	struct ilert_result shown = *r;
	if (why && r->status >= 200 && r->status < 300) {
		/* A 2xx that failed our checks: name the reason, classify as decided. */
		char text[160];
		snprintf(text, sizeof(text), "%s: %s", step, why);
		conclude(s, item, now_ms, step, &shown,
			 sr == STEP_PERMANENT ? ILERT_OUTCOME_PERMANENT : ILERT_OUTCOME_RETRYABLE, res);
		free(res->last_error);
		res->last_error = strdup(text);
		if (res->retried)
			res->retry_cause = MC_INVALID_RESPONSE;
		return;
	}
	conclude(s, item, now_ms, step, r, ilert_result_outcome(r), res);
}

static int deliver_policy(struct ilert_client *client, const struct forward_settings *s,
			  const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	json_t *payload = NULL;
	struct policy_job job;
	res->host = ILERT_BASE_API;
	if (parse_policy_payload(item->payload, &payload, &job) != 0) {
		json_decref(payload);
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_PERMANENT;
		res->attempts = item->attempts;
		res->last_error = strdup("invalid policy payload");
		return 0;
	}
	int64_t ttl_ms = (int64_t)s->policy_cache_ttl * 1000;
	int64_t user_id = 0, policy_id = 0;
	json_t *rules = NULL, *doc = NULL;
	bool user_cached = ttl_ms > 0 && cache_get(&user_cache, job.email, now_ms, &user_id, NULL);
	bool policy_cached = ttl_ms > 0 && cache_get(&policy_cache, job.routing_key, now_ms, &policy_id, &rules);
	if (ttl_ms > 0) {
		metrics_policy_cache(1, user_cached);
		metrics_policy_cache(0, policy_cached);
	}
	struct ilert_result r;
	ilert_result_init(&r);
	const char *why = NULL;
	enum step_result sr;
	double duration = 0;

	if (!user_cached) {
		json_t *body = json_pack("{s:s}", "email", job.email);
		char *text = json_dumps(body, JSON_COMPACT);
		struct ilert_request req = {
			.method = ILERT_POST, .base = ILERT_BASE_API,
			.endpoint = ILERT_EP_USERS_SEARCH_EMAIL, .path = "/users/search-email",
			.body = text, .body_len = text ? strlen(text) : 0, .auth = true,
		};
		ilert_client_send(client, &req, &r);
		free(text);
		json_decref(body);
		duration += (double)r.duration_ms / 1000.0;
		sr = step_id(&r, &user_id, &doc, &why);
		json_decref(doc);
		doc = NULL;
		if (sr != STEP_OK) {
			policy_step_failed(s, item, now_ms, "users/search-email", &r, sr, why, res);
			goto done;
		}
		if (ttl_ms > 0)
			cache_put(&user_cache, job.email, user_id, NULL, now_ms + ttl_ms);
		ilert_result_free(&r);
	}
	if (!policy_cached) {
		char *rk = text_percent_encode(job.routing_key);
		char path[1024];
		snprintf(path, sizeof(path), "/escalation-policies/resolve?routing-key=%s", rk ? rk : "");
		free(rk);
		struct ilert_request req = {
			.method = ILERT_GET, .base = ILERT_BASE_API,
			.endpoint = ILERT_EP_ESCALATION_POLICIES_RESOLVE, .path = path, .auth = true,
		};
		ilert_client_send(client, &req, &r);
		duration += (double)r.duration_ms / 1000.0;
		sr = step_id(&r, &policy_id, &doc, &why);
		if (sr != STEP_OK) {
			policy_step_failed(s, item, now_ms, "escalation-policies/resolve", &r, sr, why, res);
			goto done;
		}
		rules = json_incref(json_object_get(doc, "escalationRules"));
		if (ttl_ms > 0)
			cache_put(&policy_cache, job.routing_key, policy_id, rules, now_ms + ttl_ms);
		ilert_result_free(&r);
	}
	{
		json_t *rule = json_array_get(rules, (size_t)job.shift);
		json_t *timeout = json_object_get(rule, "escalationTimeout");
		json_int_t escalation_timeout = json_is_integer(timeout) ? json_integer_value(timeout) : 1;
		json_t *body = json_pack("{s:I,s:[{s:I}]}", "escalationTimeout", escalation_timeout,
					 "users", "id", (json_int_t)user_id);
		char *text = json_dumps(body, JSON_COMPACT);
		char path[128];
		snprintf(path, sizeof(path), "/escalation-policies/%lld/levels/%lld",
			 (long long)policy_id, (long long)job.shift);
		struct ilert_request req = {
			.method = ILERT_PUT, .base = ILERT_BASE_API,
			.endpoint = ILERT_EP_ESCALATION_POLICY_LEVELS, .path = path,
			.body = text, .body_len = text ? strlen(text) : 0, .auth = true,
		};
		ilert_client_send(client, &req, &r);
		free(text);
		json_decref(body);
		duration += (double)r.duration_ms / 1000.0;
		enum ilert_outcome o = ilert_result_outcome(&r);
		if (o == ILERT_OUTCOME_PERMANENT && (user_cached || policy_cached)) {
			/* Possibly stale lookups: forget them and try again at once. */
			cache_evict(&user_cache, job.email);
			cache_evict(&policy_cache, job.routing_key);
			conclude(s, item, now_ms, "escalation-policies/levels", &r,
				 ILERT_OUTCOME_RETRYABLE, res);
			if (res->action == FWD_RESCHEDULE) {
				res->next_attempt_at = now_ms;
				res->retry_cause = MC_STALE_CACHE;
			}
			goto done;
		}
		conclude(s, item, now_ms, "escalation-policies/levels", &r, o, res);
	}
done:
	res->duration_s = duration;
	ilert_result_free(&r);
	json_decref(doc);
	json_decref(rules);
	json_decref(payload);
	return 0;
}

int forward_deliver(struct ilert_client *client, const struct forward_settings *settings,
		    const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	memset(res, 0, sizeof(*res));
	switch (item->kind) {
	case STORE_KIND_EVENT:
		return deliver_event(client, settings, item, now_ms, res);
	case STORE_KIND_HEARTBEAT:
		return deliver_heartbeat(client, settings, item, now_ms, res);
	case STORE_KIND_POLICY:
		return deliver_policy(client, settings, item, now_ms, res);
	default:
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_PERMANENT;
		res->attempts = item->attempts;
		res->last_error = strdup("unknown item kind");
		return 0;
	}
}

/* ---- host brake ------------------------------------------------------------------------ */

void host_brake_fail(struct host_brake *b, int64_t now_ms, int max_backoff_s, int64_t hint_ms)
{
	int64_t cap = (int64_t)max_backoff_s * 1000;
	int64_t delay = 1000;
	for (int i = 0; i < b->failures && delay < cap; i++)
		delay *= 2;
	if (delay > cap)
		delay = cap;
	if (hint_ms > 0)
		delay = hint_ms;
	b->failures++;
	b->until_ms = now_ms + delay;
}

void host_brake_ok(struct host_brake *b)
{
	b->failures = 0;
	b->until_ms = 0;
}

bool host_brake_active(const struct host_brake *b, int64_t now_ms)
{
	return b->until_ms > now_ms;
}

/* ---- per-key tables ------------------------------------------------------------------------ */

/* A key with a ring of recent start times (rate limiter) or one deadline (cool-down). The
 * tables forget the least recently used key beyond max_keys. */
struct key_entry {
	char *key;
	int64_t *starts; /* rate limiter: ring of the last `limit` start times */
	size_t start_count, start_head, start_cap;
	int64_t until_ms; /* cool-down */
	struct key_entry *prev, *next; /* LRU, head = most recent */
};

struct key_table {
	struct strmap *map;
	struct key_entry *head, *tail;
	size_t max_keys;
};

static void kt_unlink(struct key_table *t, struct key_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void kt_front(struct key_table *t, struct key_entry *e)
{
	e->next = t->head;
	if (t->head)
		t->head->prev = e;
	t->head = e;
	if (!t->tail)
		t->tail = e;
}

static void kt_entry_free(struct key_entry *e)
{
	free(e->starts);
	free(e->key);
	free(e);
}

static struct key_entry *kt_get(struct key_table *t, const char *key, bool create)
{
	struct key_entry *e = strmap_get(t->map, key);
	if (e) {
		kt_unlink(t, e);
		kt_front(t, e);
		return e;
	}
	if (!create)
		return NULL;
	if (strmap_count(t->map) >= t->max_keys && t->tail) {
		struct key_entry *old = t->tail;
		kt_unlink(t, old);
		strmap_remove(t->map, old->key);
		kt_entry_free(old);
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key)) || strmap_put(t->map, e->key, e) != 0) {
		if (e)
			free(e->key);
		free(e);
		return NULL;
	}
	kt_front(t, e);
	return e;
}

static int kt_init(struct key_table *t, size_t max_keys)
{
	t->map = strmap_create();
	t->max_keys = max_keys ? max_keys : 1;
	return t->map ? 0 : ILA_ERR_NOMEM;
}

static void kt_free(struct key_table *t)
{
	struct key_entry *e = t->head;
	while (e) {
		struct key_entry *next = e->next;
		kt_entry_free(e);
		e = next;
	}
	strmap_destroy(t->map);
}

struct rate_limiter {
	struct key_table t;
	size_t limit;
};

struct rate_limiter *rate_limiter_create(int per_minute, size_t max_keys)
{
	if (per_minute <= 0)
		return NULL;
	struct rate_limiter *rl = calloc(1, sizeof(*rl));
	if (!rl || kt_init(&rl->t, max_keys) != 0) {
		free(rl);
		return NULL;
	}
	rl->limit = (size_t)per_minute;
	return rl;
}

void rate_limiter_destroy(struct rate_limiter *rl)
{
	if (!rl)
		return;
	kt_free(&rl->t);
	free(rl);
}

/* The ring holds the starts of the last `limit` deliveries; the oldest of them must be at
 * least 60 s ago before another may start. */
int64_t rate_limiter_wait(struct rate_limiter *rl, const char *key, int64_t now_ms)
{
	struct key_entry *e = kt_get(&rl->t, key, false);
	if (!e || e->start_count < rl->limit)
		return 0;
	int64_t oldest = e->starts[e->start_head];
	return oldest + 60000 > now_ms ? oldest + 60000 : 0;
}

void rate_limiter_record(struct rate_limiter *rl, const char *key, int64_t now_ms)
{
	struct key_entry *e = kt_get(&rl->t, key, true);
	if (!e)
		return;
	if (!e->starts) {
		/* Grows with use up to the limit: most keys never come near it. */
		size_t cap = rl->limit < 16 ? rl->limit : 16;
		e->starts = calloc(cap, sizeof(int64_t));
		if (!e->starts)
			return;
		e->start_count = 0;
		e->start_head = 0;
		e->start_cap = cap;
	}
	size_t cap = e->start_cap;
	if (e->start_count == cap && cap < rl->limit) {
		size_t ncap = cap * 2 < rl->limit ? cap * 2 : rl->limit;
		int64_t *n = calloc(ncap, sizeof(int64_t));
		if (!n)
			return;
		for (size_t i = 0; i < e->start_count; i++)
			n[i] = e->starts[(e->start_head + i) % cap];
		free(e->starts);
		e->starts = n;
		e->start_head = 0;
		e->start_cap = ncap;
		cap = ncap;
	}
	if (e->start_count < cap) {
		e->starts[(e->start_head + e->start_count) % cap] = now_ms;
		e->start_count++;
	} else {
		e->starts[e->start_head] = now_ms;
		e->start_head = (e->start_head + 1) % cap;
	}
}

struct cooldown_table {
	struct key_table t;
};

struct cooldown_table *cooldown_table_create(size_t max_keys)
{
	struct cooldown_table *c = calloc(1, sizeof(*c));
	if (!c || kt_init(&c->t, max_keys) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

void cooldown_table_destroy(struct cooldown_table *c)
{
	if (!c)
		return;
	kt_free(&c->t);
	free(c);
}

void cooldown_set(struct cooldown_table *c, const char *key, int64_t until_ms)
{
	struct key_entry *e = kt_get(&c->t, key, true);
	if (e && until_ms > e->until_ms)
		e->until_ms = until_ms;
}

int64_t cooldown_until(struct cooldown_table *c, const char *key, int64_t now_ms)
{
	struct key_entry *e = kt_get(&c->t, key, false);
	return e && e->until_ms > now_ms ? e->until_ms : 0;
}
