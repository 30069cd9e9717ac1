/* One delivery attempt and the verdict on its row (SPEC §14.4-§14.7), plus the host brake,
 * the rate limiter, the 429 cool-down table and the policy lookup cache. */
#include "pipeline/forward.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/event.h"
#include "core/strmap.h"
#include "core/text.h"
#include "ilert/events.h"
#include "ilert/heartbeat.h"
#include "ops/log.h"

#define RETRY_BASE_MS 1000
#define RETRY_AFTER_CAP_MS ((int64_t)ILERT_RETRY_AFTER_CAP_S * 1000)
/* The store keeps the first STORE_BODY_EXCERPT_MAX bytes of a body, never splitting a UTF-8
 * sequence: a sequence starting inside that prefix ends at most 3 bytes beyond it. */
#define BODY_KEEP (STORE_BODY_EXCERPT_MAX + 4)
#define LAST_ERROR_EXCERPT 200

/* The policy steps as named in last_error. */
#define STEP_USER "user lookup"
#define STEP_POLICY "policy lookup"
#define STEP_LEVEL "level update"
/* Appended to last_error when a level update failed with cached lookups (§14.7): the next
 * attempt then reads nothing from the cache, even if another item refilled it meanwhile,
 * so the rule retries exactly once with fresh lookups. */
#define STALE_NOTE " (cached lookups evicted)"

/* ---- least-recently-used key tables ------------------------------------------------------ */

/* A node is the first member of each table's entry type. Keys are owned by their node. */
struct lru_node {
	char *key;
	struct lru_node *prev, *next; /* head = most recently used */
};

struct lru {
	struct strmap *map;
	struct lru_node *head, *tail;
	size_t max;
	void (*free_node)(struct lru_node *n);
};

static int lru_init(struct lru *t, size_t max, void (*free_node)(struct lru_node *n))
{
	memset(t, 0, sizeof(*t));
	t->map = strmap_create();
	t->max = max ? max : 1;
	t->free_node = free_node;
	return t->map ? 0 : ILA_ERR_NOMEM;
}

static void lru_unlink(struct lru *t, struct lru_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		t->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		t->tail = n->prev;
	n->prev = n->next = NULL;
}

static void lru_push_front(struct lru *t, struct lru_node *n)
{
	n->prev = NULL;
	n->next = t->head;
	if (t->head)
		t->head->prev = n;
	t->head = n;
	if (!t->tail)
		t->tail = n;
}

static void lru_remove(struct lru *t, struct lru_node *n)
{
	lru_unlink(t, n);
	strmap_remove(t->map, n->key);
	t->free_node(n);
}

/* The node of key, marked as most recently used; NULL when absent. */
static struct lru_node *lru_find(struct lru *t, const char *key)
{
	struct lru_node *n = strmap_get(t->map, key);
	if (n) {
		lru_unlink(t, n);
		lru_push_front(t, n);
	}
	return n;
}

/* Adds n (whose key is set and absent from t), forgetting the least recently used node when
 * the table is full. On failure n is freed. */
static int lru_insert(struct lru *t, struct lru_node *n)
{
	if (strmap_count(t->map) >= t->max && t->tail)
		lru_remove(t, t->tail);
	if (strmap_put(t->map, n->key, n) != 0) {
		t->free_node(n);
		return ILA_ERR_NOMEM;
	}
	lru_push_front(t, n);
	return 0;
}

static void lru_free(struct lru *t)
{
	struct lru_node *n = t->head;
	while (n) {
		struct lru_node *next = n->next;
		t->free_node(n);
		n = next;
	}
	strmap_destroy(t->map);
	memset(t, 0, sizeof(*t));
}

/* ---- policy lookup cache ------------------------------------------------------------------ */

struct lookup {
	struct lru_node node;
	int64_t id;
	int64_t *timeouts; /* policy: escalationTimeout of each rule, -1 where not an integer */
	size_t timeout_count;
	int64_t expires_ms;
};

struct policy_cache {
	pthread_mutex_t lock;
	struct lru users;    /* email → user id */
	struct lru policies; /* routing key → policy id and rule timeouts */
};

static void lookup_free(struct lru_node *n)
{
	struct lookup *l = (struct lookup *)n;
	free(l->timeouts);
	free(l->node.key);
	free(l);
}

struct policy_cache *policy_cache_create(size_t max_entries)
{
	struct policy_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return NULL;
	}
	if (lru_init(&c->users, max_entries, lookup_free) != 0 ||
	    lru_init(&c->policies, max_entries, lookup_free) != 0) {
		lru_free(&c->users);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return c;
}

void policy_cache_destroy(struct policy_cache *c)
{
	if (!c)
		return;
	lru_free(&c->policies);
	lru_free(&c->users);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct policy_cache *process_cache;
static pthread_once_t process_cache_once = PTHREAD_ONCE_INIT;

static void process_cache_init(void)
{
	process_cache = policy_cache_create(FORWARD_MAX_KEYS);
}

static struct policy_cache *cache_for(const struct forward_settings *s)
{
	if (s->policy_cache_ttl <= 0)
		return NULL;
	if (s->cache)
		return s->cache;
	pthread_once(&process_cache_once, process_cache_init);
	return process_cache;
}

/* A fresh entry of key: copies its id (and rule timeouts, caller frees) and returns true.
 * An expired entry is dropped. */
static bool cache_get(struct policy_cache *c, struct lru *t, const char *key, int64_t now_ms,
		      int64_t *id, int64_t **timeouts, size_t *timeout_count)
{
	bool hit = false;
	pthread_mutex_lock(&c->lock);
	struct lookup *l = (struct lookup *)lru_find(t, key);
	if (l && l->expires_ms <= now_ms) {
		lru_remove(t, &l->node);
		l = NULL;
	}
	if (l) {
		hit = true;
		*id = l->id;
		if (timeouts) {
			*timeouts = NULL;
			*timeout_count = 0;
			if (l->timeout_count) {
				*timeouts = malloc(l->timeout_count * sizeof(int64_t));
				if (*timeouts) {
					memcpy(*timeouts, l->timeouts, l->timeout_count * sizeof(int64_t));
					*timeout_count = l->timeout_count;
				} else {
					hit = false; /* look it up again rather than use wrong timeouts */
				}
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

/* Stores a successful lookup; out of memory only means it is not cached. */
static void cache_put(struct policy_cache *c, struct lru *t, const char *key, int64_t id,
		      const int64_t *timeouts, size_t timeout_count, int64_t expires_ms)
{
	struct lookup *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	l->node.key = strdup(key);
	if (timeout_count) {
		l->timeouts = malloc(timeout_count * sizeof(int64_t));
		if (l->timeouts)
			memcpy(l->timeouts, timeouts, timeout_count * sizeof(int64_t));
	}
	if (!l->node.key || (timeout_count && !l->timeouts)) {
		lookup_free(&l->node);
		return;
	}
	l->timeout_count = timeout_count;
	l->id = id;
	l->expires_ms = expires_ms;
	pthread_mutex_lock(&c->lock);
	struct lru_node *old = lru_find(t, key);
	if (old)
		lru_remove(t, old);
	lru_insert(t, &l->node);
	pthread_mutex_unlock(&c->lock);
}

static void cache_evict(struct policy_cache *c, struct lru *t, const char *key)
{
	pthread_mutex_lock(&c->lock);
	struct lru_node *n = lru_find(t, key);
	if (n)
		lru_remove(t, n);
	pthread_mutex_unlock(&c->lock);
}

/* ---- retry timing ------------------------------------------------------------------------ */

static uint64_t random64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = ((uint64_t)(unsigned)rand() << 32) ^ (uint64_t)(unsigned)rand();
	return v;
}

int64_t forward_backoff_ms(int64_t attempt, int max_backoff_s, uint64_t random)
{
	int64_t cap = max_backoff_s > 0 ? (int64_t)max_backoff_s * 1000 : 0;
	int64_t ceiling = RETRY_BASE_MS;
	for (int64_t n = 1; n < attempt && ceiling < cap; n++)
		ceiling *= 2;
	if (ceiling > cap)
		ceiling = cap;
	int64_t delay = (int64_t)(random % ((uint64_t)ceiling + 1));
	return delay < FORWARD_RETRY_FLOOR_MS ? FORWARD_RETRY_FLOOR_MS : delay;
}

static bool has_retry_after(const struct ilert_result *r)
{
	return (r->status == 429 || r->status == 503) && r->retry_after_ms >= 0;
}

/* §14.5: the delay before the next attempt after the attempts-th failed one. */
static int64_t retry_delay_ms(const struct forward_settings *s, int64_t attempts,
			      const struct ilert_result *r)
{
	int64_t delay;
	if (has_retry_after(r)) {
		delay = r->retry_after_ms < RETRY_AFTER_CAP_MS ? r->retry_after_ms : RETRY_AFTER_CAP_MS;
	} else {
		delay = forward_backoff_ms(attempts, s->retry_max_backoff, random64());
		if (r->status == 429 && delay < FORWARD_RETRY_429_FLOOR_MS)
			delay = FORWARD_RETRY_429_FLOOR_MS;
	}
	return delay < FORWARD_RETRY_FLOOR_MS ? FORWARD_RETRY_FLOOR_MS : delay;
}

/* ---- concluding an attempt --------------------------------------------------------------- */

/* How the deciding request of an attempt is judged. */
struct verdict {
	enum ilert_outcome outcome;
	const char *step;   /* policy step, NULL for events and heartbeats */
	const char *why;    /* our reason for refusing a 2xx answer, NULL otherwise */
	bool cause_set;     /* retry_cause below instead of the one derived from the result */
	enum metric_retry_cause cause;
	bool immediate;     /* retry at once (stale cached lookups) */
};

static enum metric_retry_cause cause_of(const struct ilert_result *r)
{
	switch (r->status) {
	case 0: return r->timed_out ? MC_TIMEOUT : MC_NETWORK;
	case 408: return MC_HTTP_408;
	case 425: return MC_HTTP_425;
	case 429: return MC_HTTP_429;
	default: return MC_HTTP_5XX;
	}
}

/* "[<step>: ]<why>", "[<step>: ]HTTP <code>[: <body excerpt>]" or "[<step>: ]<transport
 * error>". */
static char *describe(const struct verdict *v, const struct ilert_result *r)
{
	struct tbuf b;
	tbuf_init(&b);
	if (v->step)
		tbuf_printf(&b, "%s: ", v->step);
	if (v->why) {
		tbuf_puts(&b, v->why);
	} else if (r->status) {
		tbuf_printf(&b, "HTTP %ld", r->status);
		char *excerpt = r->body_len ? ilert_body_excerpt(r->body, r->body_len, LAST_ERROR_EXCERPT)
					    : NULL;
		if (excerpt && *excerpt)
			tbuf_printf(&b, ": %s", excerpt);
		free(excerpt);
	} else {
		tbuf_puts(&b, r->error[0] ? r->error : "no response");
	}
	return tbuf_take(&b);
}

static void keep_body(struct forward_result *res, const struct ilert_result *r)
{
	if (!r->body)
		return;
	size_t len = r->body_len < BODY_KEEP ? r->body_len : BODY_KEEP;
	res->body = malloc(len + 1);
	if (!res->body)
		return;
	memcpy(res->body, r->body, len);
	res->body[len] = '\0';
	res->body_len = len;
}

/* Bookkeeping of every response of an attempt, before its verdict. */
static void note_request(struct forward_result *res, const struct ilert_result *r)
{
	res->duration_s += r->duration_s;
	if (r->status >= 200 && r->status <= 299)
		res->host_ok = true;
}

static const char *log_component(const struct store_item *item)
{
	return item->kind == STORE_KIND_POLICY ? "policy" : "forward";
}

/* One rate-limited line per failed request; the texts carry no ids or keys so that an
 * outage folds into one line per 10 s. */
static void log_failure(const struct store_item *item, const struct verdict *v,
			const struct ilert_result *r, const struct forward_result *res)
{
	if (item->kind == STORE_KIND_HEARTBEAT && !v->why) {
		if (r->status)
			log_limited(LOG_LVL_ERROR, "forward", "Bad heartbeat http response %ld",
				    r->status);
		else
			log_limited(LOG_LVL_ERROR, "forward", "Heartbeat ping failed: %s",
				    r->timed_out ? "timeout" : "network error");
	} else if (res->action == FWD_RESCHEDULE) {
		char code[16];
		log_limited(LOG_LVL_WARN, log_component(item), "%s delivery failed%s%s (%s), will retry",
			    store_kind_name(item->kind), v->step ? " at " : "", v->step ? v->step : "",
			    v->why ? v->why : ilert_code_label(r, code, sizeof(code)));
	}
	if (log_enabled(LOG_LVL_DEBUG))
		log_msg_ctx(LOG_LVL_DEBUG, log_component(item),
			    &(struct log_ctx){ .kind = store_kind_name(item->kind), .item = item->id,
					       .status = (int)r->status },
			    "%s %s attempt %lld failed: %s", store_kind_name(item->kind), item->id,
			    (long long)res->attempts, res->last_error ? res->last_error : "");
}

/* Fills res from the deciding request r of an attempt that made at least one request. */
static void conclude(const struct forward_settings *s, const struct store_item *item,
		     int64_t now_ms, const struct ilert_result *r, const struct verdict *v,
		     struct forward_result *res)
{
	res->attempts = item->attempts + 1;
	res->last_status = (int)r->status;
	res->host_failed = r->status == 0 || (r->status >= 500 && r->status <= 599);
	if (v->outcome == ILERT_OUTCOME_SUCCESS) {
		res->action = FWD_DELETE;
		return;
	}
	res->last_error = describe(v, r);
	keep_body(res, r);
	if (v->outcome == ILERT_OUTCOME_PERMANENT) {
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_PERMANENT;
		log_failure(item, v, r, res);
		return;
	}
	/* Retryable. What the answer says about the host and the key holds whatever becomes
	 * of this row. */
	int64_t at = now_ms + (v->immediate ? 0 : retry_delay_ms(s, res->attempts, r));
	if (r->status == 503 && has_retry_after(r))
		res->host_hint_ms = at - now_ms;
	if (r->status == 429 && item->kind == STORE_KIND_EVENT)
		res->cooldown_until = at;
	if (s->max_retries > 0 && res->attempts >= s->max_retries) {
		res->action = FWD_DEAD;
		res->dead_reason = STORE_DEAD_EXHAUSTED;
	} else if (item->kind == STORE_KIND_HEARTBEAT &&
		   at - item->accepted_at >= FORWARD_HEARTBEAT_TTL_MS) {
		res->action = FWD_EXPIRED;
	} else {
		res->action = FWD_RESCHEDULE;
		res->next_attempt_at = at;
		res->retried = true;
		res->retry_cause = v->cause_set ? v->cause : cause_of(r);
	}
	log_failure(item, v, r, res);
}

/* The verdict on a response judged by its status alone (§6.3). */
static struct verdict by_status(const struct ilert_result *r, const char *step)
{
	return (struct verdict){ .outcome = ilert_result_outcome(r), .step = step };
}

/* No request: the row is decided by what it holds. */
static void reject_without_request(const struct store_item *item, const char *why,
				   struct forward_result *res)
{
	res->action = FWD_DEAD;
	res->dead_reason = STORE_DEAD_PERMANENT;
	res->attempts = item->attempts;
	res->last_error = strdup(why);
}

/* An aborted request (shutdown) counts for nothing: the row stays as it is (§20.3). */
static void abandon(const struct store_item *item, struct forward_result *res)
{
	free(res->last_error);
	free(res->body);
	res->last_error = NULL;
	res->body = NULL;
	res->body_len = 0;
	res->action = FWD_UNCHANGED;
	res->attempts = item->attempts;
	res->host_ok = res->host_failed = false;
}

/* ---- events and heartbeats --------------------------------------------------------------- */

static int deliver_event(struct ilert_client *client, const struct forward_settings *s,
			 const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	res->host = ILERT_BASE_API;
	char why[96];
	if (!event_type_valid(item->event_type)) {
		/* Only rows written by older versions can hold these: no request can succeed. */
		snprintf(why, sizeof(why), "invalid event type '%.40s'",
			 item->event_type ? item->event_type : "");
		reject_without_request(item, why, res);
		return 0;
	}
	if (!event_priority_valid(item->priority)) {
		snprintf(why, sizeof(why), "invalid priority '%.40s'", item->priority);
		reject_without_request(item, why, res);
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
	if (r.aborted) {
		abandon(item, res);
	} else {
		note_request(res, &r);
		struct verdict v = by_status(&r, NULL);
		conclude(s, item, now_ms, &r, &v, res);
	}
	ilert_result_free(&r);
	return 0;
}

static int deliver_heartbeat(struct ilert_client *client, const struct forward_settings *s,
			     const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	const char *key = item->integration_key ? item->integration_key : "";
	res->host = ilert_heartbeat_uses_api(key) ? ILERT_BASE_API : ILERT_BASE_BEAT;
	if (now_ms - item->accepted_at >= FORWARD_HEARTBEAT_TTL_MS) {
		res->action = FWD_EXPIRED;
		res->attempts = item->attempts;
		return 0;
	}
	struct ilert_result r;
	ilert_result_init(&r);
	ilert_heartbeat_ping(client, key, true, &r);
	if (r.aborted) {
		abandon(item, res);
	} else {
		note_request(res, &r);
		struct verdict v = by_status(&r, NULL);
		conclude(s, item, now_ms, &r, &v, res);
	}
	ilert_result_free(&r);
	return 0;
}

/* ---- policy items (§14.7) ---------------------------------------------------------------- */

struct policy_job {
	const char *email;
	const char *routing_key;
	int64_t shift;
};

/* The stored payload {"email":…,"routingKey":…,"shift":…}; *root owns the strings. */
static int parse_policy_payload(const char *payload, json_t **root, struct policy_job *job)
{
	*root = payload ? json_loads(payload, 0, NULL) : NULL;
	json_t *email = json_object_get(*root, "email");
	json_t *rk = json_object_get(*root, "routingKey");
	json_t *shift = json_object_get(*root, "shift");
	if (!json_is_string(email) || !json_is_string(rk) || !json_is_integer(shift) ||
	    json_integer_value(shift) < 0)
		return ILA_ERR_INVALID;
	job->email = json_string_value(email);
	job->routing_key = json_string_value(rk);
	job->shift = json_integer_value(shift);
	return 0;
}

/* The integer escalationTimeout of each rule (-1 where absent); *count 0 for no array. */
static int rule_timeouts(json_t *doc, int64_t **out, size_t *count)
{
	json_t *rules = json_object_get(doc, "escalationRules");
	size_t n = json_is_array(rules) ? json_array_size(rules) : 0;
	*out = NULL;
	*count = 0;
	if (!n)
		return 0;
	int64_t *t = malloc(n * sizeof(int64_t));
	if (!t)
		return ILA_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(json_array_get(rules, i), "escalationTimeout");
		t[i] = json_is_integer(v) ? json_integer_value(v) : -1;
	}
	*out = t;
	*count = n;
	return 0;
}

/* escalationRules[shift].escalationTimeout when it is an integer, else 1. */
static int64_t escalation_timeout(const int64_t *timeouts, size_t count, int64_t shift)
{
	if (shift < 0 || (uint64_t)shift >= count || timeouts[shift] < 0)
		return 1;
	return timeouts[shift];
}

struct policy_attempt {
	struct ilert_client *client;
	const struct forward_settings *s;
	const struct store_item *item;
	int64_t now_ms;
	struct forward_result *res;
	struct ilert_result r; /* the latest request */
};

/* Sends one step and judges it. For steps 1 and 2 (not_found set) a 2xx must be JSON with an
 * integer "id": *id and *doc (caller frees) are set then. Returns true when the step passed;
 * otherwise *v holds the verdict (the attempt is not concluded yet) or *aborted is set. */
static bool policy_step(struct policy_attempt *pa, const struct ilert_request *req,
			const char *step, const char *not_found, int64_t *id, json_t **doc,
			struct verdict *v, bool *aborted)
{
	ilert_result_free(&pa->r);
	ilert_client_send(pa->client, req, &pa->r);
	if (pa->r.aborted) {
		*aborted = true;
		return false;
	}
	note_request(pa->res, &pa->r);
	*v = by_status(&pa->r, step);
	if (v->outcome != ILERT_OUTCOME_SUCCESS)
		return false;
	if (!not_found)
		return true;
	const struct ilert_result *r = &pa->r;
	json_t *root = r->body && !r->body_truncated
			       ? json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL)
			       : NULL;
	if (!root) {
		*v = (struct verdict){ .outcome = ILERT_OUTCOME_RETRYABLE, .step = step,
				       .why = "invalid JSON response", .cause_set = true,
				       .cause = MC_INVALID_RESPONSE };
		return false;
	}
	json_t *jid = json_object_get(root, "id");
	if (!json_is_integer(jid)) {
		json_decref(root);
		*v = (struct verdict){ .outcome = ILERT_OUTCOME_PERMANENT, .step = step,
				       .why = not_found };
		return false;
	}
	*id = json_integer_value(jid);
	*doc = root;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = s ? strlen(s) : 0, m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Runs the three steps; returns 0 or ILA_ERR_NOMEM. */
static int policy_run(struct policy_attempt *pa, const struct policy_job *job)
{
	struct policy_cache *cache = cache_for(pa->s);
	int64_t ttl_ms = (int64_t)pa->s->policy_cache_ttl * 1000;
	/* The attempt after an eviction uses fresh lookups only (see STALE_NOTE). */
	bool read_cache = cache && !(pa->item->attempts > 0 &&
				     ends_with(pa->item->last_error, STALE_NOTE));
	int64_t user_id = 0, policy_id = 0;
	int64_t *timeouts = NULL;
	size_t timeout_count = 0;
	json_t *doc = NULL;
	struct verdict v;
	bool aborted = false;
	bool user_cached = false, policy_cached = false;
	int err = 0;

	/* 1. user by email */
	if (read_cache) {
		user_cached = cache_get(cache, &cache->users, job->email, pa->now_ms, &user_id, NULL,
					NULL);
		metrics_policy_cache(1, user_cached);
	}
	if (!user_cached) {
		json_t *body = json_pack("{s:s}", "email", job->email);
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		if (!text)
			return ILA_ERR_NOMEM;
		struct ilert_request req = {
			.method = ILERT_POST, .base = ILERT_BASE_API,
			.endpoint = ILERT_EP_USERS_SEARCH_EMAIL, .path = "/users/search-email",
			.body = text, .body_len = strlen(text), .auth = true,
		};
		bool ok = policy_step(pa, &req, STEP_USER, "user not found", &user_id, &doc, &v,
				      &aborted);
		free(text);
		json_decref(doc);
		doc = NULL;
		if (!ok)
			goto failed;
		if (cache)
			cache_put(cache, &cache->users, job->email, user_id, NULL, 0,
				  pa->now_ms + ttl_ms);
	}

	/* 2. escalation policy by routing key */
	if (read_cache) {
		policy_cached = cache_get(cache, &cache->policies, job->routing_key, pa->now_ms,
					  &policy_id, &timeouts, &timeout_count);
		metrics_policy_cache(0, policy_cached);
	}
	if (!policy_cached) {
		char *rk = text_percent_encode(job->routing_key);
		if (!rk)
			return ILA_ERR_NOMEM;
		struct tbuf path;
		tbuf_init(&path);
		tbuf_printf(&path, "/escalation-policies/resolve?routing-key=%s", rk);
		free(rk);
		char *p = path.oom ? NULL : tbuf_take(&path);
		tbuf_free(&path);
		if (!p)
			return ILA_ERR_NOMEM;
		struct ilert_request req = {
			.method = ILERT_GET, .base = ILERT_BASE_API,
			.endpoint = ILERT_EP_ESCALATION_POLICIES_RESOLVE, .path = p, .auth = true,
		};
		bool ok = policy_step(pa, &req, STEP_POLICY, "escalation policy not found",
				      &policy_id, &doc, &v, &aborted);
		free(p);
		if (ok)
			err = rule_timeouts(doc, &timeouts, &timeout_count);
		json_decref(doc);
		doc = NULL;
		if (err)
			return err;
		if (!ok)
			goto failed;
		if (cache)
			cache_put(cache, &cache->policies, job->routing_key, policy_id, timeouts,
				  timeout_count, pa->now_ms + ttl_ms);
	}

	/* 3. escalation level */
	{
		int64_t timeout = escalation_timeout(timeouts, timeout_count, job->shift);
		json_t *body = json_pack("{s:I,s:[{s:I}]}", "escalationTimeout", (json_int_t)timeout,
					 "users", "id", (json_int_t)user_id);
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		char path[96];
		snprintf(path, sizeof(path), "/escalation-policies/%lld/levels/%lld",
			 (long long)policy_id, (long long)job->shift);
		free(timeouts);
		timeouts = NULL;
		if (!text)
			return ILA_ERR_NOMEM;
		struct ilert_request req = {
			.method = ILERT_PUT, .base = ILERT_BASE_API,
			.endpoint = ILERT_EP_ESCALATION_POLICY_LEVELS, .path = path,
			.body = text, .body_len = strlen(text), .auth = true,
		};
		bool ok = policy_step(pa, &req, STEP_LEVEL, NULL, NULL, NULL, &v, &aborted);
		free(text);
		if (ok) {
			conclude(pa->s, pa->item, pa->now_ms, &pa->r, &v, pa->res);
			return 0;
		}
		if (!aborted && v.outcome == ILERT_OUTCOME_PERMANENT && (user_cached || policy_cached)) {
			/* The cached ids may be stale: forget both and retry once, at once. */
			cache_evict(cache, &cache->users, job->email);
			cache_evict(cache, &cache->policies, job->routing_key);
			v = (struct verdict){ .outcome = ILERT_OUTCOME_RETRYABLE, .step = STEP_LEVEL,
					      .cause_set = true, .cause = MC_STALE_CACHE,
					      .immediate = true };
			conclude(pa->s, pa->item, pa->now_ms, &pa->r, &v, pa->res);
			if (pa->res->last_error) {
				struct tbuf b;
				tbuf_init(&b);
				tbuf_puts(&b, pa->res->last_error);
				tbuf_puts(&b, STALE_NOTE);
				char *noted = tbuf_take(&b);
				tbuf_free(&b);
				if (noted) {
					free(pa->res->last_error);
					pa->res->last_error = noted;
				}
			}
			return 0;
		}
	}
failed:
	free(timeouts);
	if (aborted)
		abandon(pa->item, pa->res);
	else
		conclude(pa->s, pa->item, pa->now_ms, &pa->r, &v, pa->res);
	return 0;
}

static int deliver_policy(struct ilert_client *client, const struct forward_settings *s,
			  const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	res->host = ILERT_BASE_API;
	json_t *payload = NULL;
	struct policy_job job;
	if (parse_policy_payload(item->payload, &payload, &job) != 0) {
		json_decref(payload);
		reject_without_request(item, "invalid policy payload", res);
		return 0;
	}
	struct policy_attempt pa = {
		.client = client, .s = s, .item = item, .now_ms = now_ms, .res = res,
	};
	ilert_result_init(&pa.r);
	int err = policy_run(&pa, &job);
	ilert_result_free(&pa.r);
	json_decref(payload);
	return err;
}

int forward_deliver(struct ilert_client *client, const struct forward_settings *settings,
		    const struct store_item *item, int64_t now_ms, struct forward_result *res)
{
	memset(res, 0, sizeof(*res));
	int err = 0;
	switch (item->kind) {
	case STORE_KIND_EVENT:
		err = deliver_event(client, settings, item, now_ms, res);
		break;
	case STORE_KIND_HEARTBEAT:
		err = deliver_heartbeat(client, settings, item, now_ms, res);
		break;
	case STORE_KIND_POLICY:
		err = deliver_policy(client, settings, item, now_ms, res);
		break;
	default:
		reject_without_request(item, "unknown item kind", res);
		break;
	}
	if (err)
		forward_result_clear(res);
	return err;
}

void forward_result_clear(struct forward_result *res)
{
	free(res->last_error);
	free(res->body);
	memset(res, 0, sizeof(*res));
}

/* ---- host brake -------------------------------------------------------------------------- */

void host_brake_fail(struct host_brake *b, int64_t now_ms, int max_backoff_s, int64_t hint_ms)
{
	if (host_brake_active(b, now_ms)) {
		if (hint_ms > 0 && now_ms + hint_ms > b->until_ms)
			b->until_ms = now_ms + hint_ms;
		return;
	}
	int64_t cap = max_backoff_s > 0 ? (int64_t)max_backoff_s * 1000 : RETRY_BASE_MS;
	int64_t delay = RETRY_BASE_MS;
	for (int i = 0; i < b->failures && delay < cap; i++)
		delay *= 2;
	if (delay > cap)
		delay = cap;
	if (hint_ms > 0)
		delay = hint_ms;
	if (b->failures < 64)
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

/* ---- rate limiter ------------------------------------------------------------------------ */

/* The starts of a key inside the current window, oldest first, at most `limit` of them:
 * the limit-th most recent start alone decides when the next may go. */
struct rate_entry {
	struct lru_node node;
	int64_t *starts; /* ring */
	size_t head, count, cap;
};

struct rate_limiter {
	struct lru keys;
	size_t limit;
};

static void rate_entry_free(struct lru_node *n)
{
	struct rate_entry *e = (struct rate_entry *)n;
	free(e->starts);
	free(e->node.key);
	free(e);
}

struct rate_limiter *rate_limiter_create(int per_minute, size_t max_keys)
{
	if (per_minute <= 0)
		return NULL;
	struct rate_limiter *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	if (lru_init(&rl->keys, max_keys, rate_entry_free) != 0) {
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
	lru_free(&rl->keys);
	free(rl);
}

/* Drops starts that no window containing now_ms can hold. Memory follows the recent rate. */
static void rate_prune(struct rate_entry *e, int64_t now_ms)
{
	while (e->count && e->starts[e->head] <= now_ms - FORWARD_RATE_WINDOW_MS) {
		e->head = (e->head + 1) % e->cap;
		e->count--;
	}
	if (!e->count) {
		free(e->starts);
		e->starts = NULL;
		e->head = e->cap = 0;
	}
}

int64_t rate_limiter_wait(struct rate_limiter *rl, const char *key, int64_t now_ms)
{
	struct rate_entry *e = (struct rate_entry *)lru_find(&rl->keys, key);
	if (!e)
		return 0;
	rate_prune(e, now_ms);
	if (e->count < rl->limit)
		return 0;
	return e->starts[e->head] + FORWARD_RATE_WINDOW_MS;
}

static int rate_grow(struct rate_entry *e, size_t limit)
{
	size_t ncap = e->cap ? e->cap * 2 : 16;
	if (ncap > limit)
		ncap = limit;
	int64_t *n = malloc(ncap * sizeof(int64_t));
	if (!n)
		return ILA_ERR_NOMEM;
	for (size_t i = 0; i < e->count; i++)
		n[i] = e->starts[(e->head + i) % e->cap];
	free(e->starts);
	e->starts = n;
	e->head = 0;
	e->cap = ncap;
	return 0;
}

void rate_limiter_record(struct rate_limiter *rl, const char *key, int64_t now_ms)
{
	struct rate_entry *e = (struct rate_entry *)lru_find(&rl->keys, key);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		e->node.key = strdup(key);
		if (!e->node.key) {
			free(e);
			return;
		}
		if (lru_insert(&rl->keys, &e->node) != 0)
			return;
	}
	rate_prune(e, now_ms);
	if (e->count == e->cap && e->cap < rl->limit && rate_grow(e, rl->limit) != 0)
		return;
	if (e->count < e->cap) {
		e->starts[(e->head + e->count) % e->cap] = now_ms;
		e->count++;
	} else {
		/* A start beyond the limit (the caller did not wait): the oldest no longer
		 * decides anything. */
		e->starts[e->head] = now_ms;
		e->head = (e->head + 1) % e->cap;
	}
}

void rate_limiter_unrecord(struct rate_limiter *rl, const char *key)
{
	struct rate_entry *e = (struct rate_entry *)lru_find(&rl->keys, key);
	if (e && e->count > 0)
		e->count--; /* starts are kept oldest first: the newest is the last one */
}

/* ---- cool-down table --------------------------------------------------------------------- */

struct cooldown_entry {
	struct lru_node node;
	int64_t until_ms;
};

struct cooldown_table {
	struct lru keys;
};

static void cooldown_entry_free(struct lru_node *n)
{
	free(n->key);
	free(n);
}

struct cooldown_table *cooldown_table_create(size_t max_keys)
{
	struct cooldown_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (lru_init(&t->keys, max_keys, cooldown_entry_free) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

void cooldown_table_destroy(struct cooldown_table *t)
{
	if (!t)
		return;
	lru_free(&t->keys);
	free(t);
}

void cooldown_set(struct cooldown_table *t, const char *key, int64_t until_ms)
{
	struct cooldown_entry *e = (struct cooldown_entry *)lru_find(&t->keys, key);
	if (e) {
		if (until_ms > e->until_ms)
			e->until_ms = until_ms;
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->node.key = strdup(key);
	if (!e->node.key) {
		free(e);
		return;
	}
	e->until_ms = until_ms;
	lru_insert(&t->keys, &e->node);
}

int64_t cooldown_until(struct cooldown_table *t, const char *key, int64_t now_ms)
{
	struct cooldown_entry *e = (struct cooldown_entry *)lru_find(&t->keys, key);
	if (!e)
		return 0;
	if (e->until_ms > now_ms)
		return e->until_ms;
	lru_remove(&t->keys, &e->node);
	return 0;
}

