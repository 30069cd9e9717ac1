/* The dispatch stage and the forwarder threads.
 *
 * The dispatcher keeps a bounded buffer of eligible-looking rows in seq order and hands the
 * lowest eligible one to the least busy forwarder (SPEC §14.1-§14.2). At most one row per
 * ordering key is in memory (buffered or in flight); a key's next row is fetched from the
 * database (index event_items_order) once the outcome of the previous one is committed, so
 * rows held back behind a blocked key are never scanned again and again.
 *
 * Rows reach the buffer three ways:
 *  - fresh commits handed over by persist, while the dispatcher is caught up;
 *  - a forward scan of the database in seq order from a cursor, after a restart or when
 *    hand-offs were dropped (buffer full): every row is visited once per pass;
 *  - every second, rows whose retry came due (index event_items_due).
 * Memory therefore stays flat whatever the size of the backlog.
 *
 * Rows are handed out ahead of time (up to FORWARDER_DEPTH per forwarder wait in the work
 * queue), so a host brake or 429 cool-down learned from one result must also stop rows that
 * are already waiting there: forwarders record what they learn in the delivery gate and
 * check it right before starting a row; a row held back there returns to the dispatcher
 * unattempted (FWD_UNCHANGED) and waits in the buffer like any other (§14.5). While a host
 * is braked after failures, one row at a time probes it until a success releases it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/strmap.h"
#include "ilert/heartbeat.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "pipeline/stages.h"

#define SCAN_PAGES_PER_ROUND 4
#define WAITING_KEYS_MAX 100000
#define TICK_MS 1000

enum consider { TAKEN, SKIPPED, FULL };

struct dispatcher {
	struct pipeline *p;
	struct store_item **store; /* 2 × cap entries holding the window below */
	struct store_item **buf;   /* buffered rows, ascending seq */
	size_t count, cap;
	struct strmap *busy_keys; /* order_key → item, for rows buffered or in flight */
	/* Keys that may have rows in the database that are not in memory (a parked retry, or
	 * rows waiting behind a busy key). A key not in this set has no row older than the one
	 * at hand, so no index probe is needed: with distinct alert keys that saves two reads
	 * per delivered row. Past WAITING_KEYS_MAX keys the set stops growing and every keyed
	 * row is probed again. */
	struct strmap *waiting_keys; /* owned key copies */
	bool waiting_overflow;
	struct strmap *known_ids; /* id → item, same rows */
	int64_t cursor;           /* every row with seq <= cursor has been considered */
	bool behind;              /* rows beyond the cursor must be read from the database */
	int in_flight;            /* handed out, outcome not yet applied */
	int host_in_flight[2];    /* the same, per host (enum ilert_base) */
	struct host_brake brakes[2];
	struct rate_limiter *rate;
	struct cooldown_table *cooldown;
	int64_t next_tick_ms;
	int64_t scan_retry_ms; /* after a failed read: mono ms before which no scan is tried */
};

/* ---- the delivery gate ---------------------------------------------------------------- */

struct delivery_gate {
	atomic_llong host_until[2];   /* Unix ms: no request to the host starts before */
	atomic_llong cooldown_latest; /* latest cool-down end recorded: skips the lookup after it */
	pthread_mutex_t lock;         /* guards cooldown */
	struct cooldown_table *cooldown;
};

struct delivery_gate *delivery_gate_create(void)
{
	struct delivery_gate *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->cooldown = cooldown_table_create(10000);
	if (!g->cooldown) {
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	return g;
}

void delivery_gate_destroy(struct delivery_gate *g)
{
	if (!g)
		return;
	cooldown_table_destroy(g->cooldown);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void atomic_raise(atomic_llong *v, int64_t to)
{
	long long cur = atomic_load(v);
	while (cur < to && !atomic_compare_exchange_weak(v, &cur, to))
		;
}

static enum ilert_base item_host(const struct store_item *item)
{
	if (item->kind == STORE_KIND_HEARTBEAT &&
	    !ilert_heartbeat_uses_api(item->integration_key ? item->integration_key : ""))
		return ILERT_BASE_BEAT;
	return ILERT_BASE_API;
}

/* Forwarder: true when item must not start now; *cooldown_until tells the dispatcher about a
 * cool-down it may not have learned yet. */
static bool gate_holds(struct delivery_gate *g, const struct store_item *item, int64_t now_ms,
		       int64_t *cooldown_until_ms)
{
	if (atomic_load(&g->host_until[item_host(item)]) > now_ms)
		return true;
	if (item->kind != STORE_KIND_EVENT || !item->integration_key ||
	    atomic_load(&g->cooldown_latest) <= now_ms)
		return false;
	pthread_mutex_lock(&g->lock);
	int64_t until = cooldown_until(g->cooldown, item->integration_key, now_ms);
	pthread_mutex_unlock(&g->lock);
	*cooldown_until_ms = until;
	return until != 0;
}

/* Forwarder: what a result means for the rows other forwarders are about to start. The
 * dispatcher's brake (doubling, probing) decides about new hand-outs; this only needs to stop
 * rows handed out before the dispatcher knew. */
static void gate_learn(struct delivery_gate *g, const struct store_item *item,
		       const struct forward_result *r, int64_t now_ms)
{
	if (r->host_ok)
		atomic_store(&g->host_until[r->host], 0);
	if (r->host_failed)
		atomic_raise(&g->host_until[r->host],
			     now_ms + (r->host_hint_ms > 0 ? r->host_hint_ms : 1000));
	if (r->cooldown_until && item->integration_key) {
		pthread_mutex_lock(&g->lock);
		cooldown_set(g->cooldown, item->integration_key, r->cooldown_until);
		pthread_mutex_unlock(&g->lock);
		atomic_raise(&g->cooldown_latest, r->cooldown_until);
	}
}

/* ---- bookkeeping ------------------------------------------------------------------- */

static void track(struct dispatcher *d, struct store_item *item)
{
	if (strmap_put(d->known_ids, item->id, item) != 0 ||
	    (item->order_key && strmap_put(d->busy_keys, item->order_key, item) != 0))
		abort(); /* the maps are tiny; failing to grow them is out of memory */
	atomic_store(&d->p->in_memory, (int)strmap_count(d->known_ids));
}

static void untrack(struct dispatcher *d, struct store_item *item)
{
	strmap_remove(d->known_ids, item->id);
	if (item->order_key)
		strmap_remove(d->busy_keys, item->order_key);
	atomic_store(&d->p->in_memory, (int)strmap_count(d->known_ids));
}

/* The buffer is a window [buf, buf + count) inside store (2 × cap entries): rows leave
 * mostly from the front and arrive mostly at the back, so both are O(1) in the common case
 * instead of moving the whole array for every row handed out. */
static void buffer_insert(struct dispatcher *d, struct store_item *item)
{
	if ((size_t)(d->buf - d->store) + d->count + 1 > 2 * d->cap) {
		memmove(d->store, d->buf, d->count * sizeof(*d->buf));
		d->buf = d->store;
	}
	size_t lo = 0, hi = d->count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (d->buf[mid]->seq < item->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&d->buf[lo + 1], &d->buf[lo], (d->count - lo) * sizeof(*d->buf));
	d->buf[lo] = item;
	d->count++;
	atomic_store(&d->p->buffered, (int)d->count);
}

static void buffer_remove_at(struct dispatcher *d, size_t i)
{
	if (i < d->count / 2) {
		memmove(&d->buf[1], &d->buf[0], i * sizeof(*d->buf));
		d->buf++;
	} else {
		memmove(&d->buf[i], &d->buf[i + 1], (d->count - i - 1) * sizeof(*d->buf));
	}
	d->count--;
	if (d->count == 0)
		d->buf = d->store;
	atomic_store(&d->p->buffered, (int)d->count);
}

static void note_waiting(struct dispatcher *d, const char *key)
{
	if (d->waiting_overflow || strmap_contains(d->waiting_keys, key))
		return;
	char *copy = strmap_count(d->waiting_keys) < WAITING_KEYS_MAX ? strdup(key) : NULL;
	if (!copy || strmap_put(d->waiting_keys, copy, copy) != 0) {
		free(copy);
		d->waiting_overflow = true;
	}
}

static void forget_waiting(struct dispatcher *d, const char *key)
{
	free(strmap_remove(d->waiting_keys, key));
}

static bool may_wait_in_db(const struct dispatcher *d, const char *key)
{
	return d->waiting_overflow || strmap_contains(d->waiting_keys, key);
}

/* A read that failed: corruption ends the daemon (§16.1) like a failed commit does; other
 * errors (busy, I/O) are retried by the caller. */
static void read_failed(struct dispatcher *d, int err)
{
	if (err == ILA_ERR_CORRUPT)
		stage_set_fatal(d->p, store_errmsg(d->p->reader));
}

/* True when the key has a row with a lower seq in the database (a parked retry, or rows of
 * a previous run): then this row must wait for it. */
static bool blocked_in_db(struct dispatcher *d, const struct store_item *item)
{
	int64_t head_seq;
	if (!may_wait_in_db(d, item->order_key))
		return false;
	int err = store_item_head_seq(d->p->reader, item->order_key, &head_seq);
	if (err == ILA_ERR_NOTFOUND)
		return false;
	if (err) {
		read_failed(d, err);
		return true; /* unknown: be safe, the row is found again later */
	}
	return head_seq < item->seq;
}

/* Decides whether a row read or handed over may enter the buffer. */
static enum consider consider_row(struct dispatcher *d, struct store_item *item, int64_t now_ms)
{
	if (strmap_contains(d->known_ids, item->id))
		return SKIPPED;
	if (item->next_attempt_at > now_ms) {
		if (item->order_key)
			note_waiting(d, item->order_key);
		return SKIPPED; /* found by the due scan when its time comes */
	}
	if (item->order_key &&
	    (strmap_contains(d->busy_keys, item->order_key) || blocked_in_db(d, item))) {
		note_waiting(d, item->order_key);
		return SKIPPED; /* fetched when the row ahead of it is done */
	}
	if (d->count >= d->cap)
		return FULL;
	buffer_insert(d, item);
	track(d, item);
	return TAKEN;
}

static struct store_item *heap_item(struct store_item *row)
{
	struct store_item *item = malloc(sizeof(*item));
	if (!item)
		return NULL;
	*item = *row;
	memset(row, 0, sizeof(*row));
	return item;
}

/* ---- sources of rows ----------------------------------------------------------------- */

static void go_behind(struct dispatcher *d)
{
	d->behind = true;
	atomic_store(&d->p->handoff_suspended, 1);
}

static void on_fresh(struct dispatcher *d, struct store_item *item, int64_t now_ms)
{
	if (d->behind || item->seq <= d->cursor) {
		stage_item_free(item);
		return;
	}
	if (item->seq != d->cursor + 1) {
		/* Someone else (`ilagent queue retry`) committed rows in between. */
		go_behind(d);
		stage_item_free(item);
		return;
	}
	enum consider c = consider_row(d, item, now_ms);
	if (c == FULL) {
		go_behind(d);
		stage_item_free(item);
		return;
	}
	d->cursor = item->seq;
	if (c == SKIPPED)
		stage_item_free(item);
}

/* Reads rows beyond the cursor; leaves behind mode once the end is reached with hand-offs
 * enabled again. */
/* Reading pays off only for a good part of a page: rows read without room are dropped and
 * read again later. */
static bool scan_has_room(const struct dispatcher *d)
{
	return d->count == 0 || d->cap - d->count >= DISPATCH_PAGE / 4;
}

static void scan_forward(struct dispatcher *d, int64_t now_ms)
{
	for (int page = 0; page < SCAN_PAGES_PER_ROUND && scan_has_room(d); page++) {
		size_t room = d->cap - d->count;
		size_t limit = room < DISPATCH_PAGE ? room : DISPATCH_PAGE;
		struct store_item_list list;
		int err = store_items_page(d->p->reader, d->cursor, limit, &list);
		if (err) {
			log_limited(LOG_LVL_WARN, "forward", "reading the queue failed: %s",
				    store_errmsg(d->p->reader));
			read_failed(d, err);
			d->scan_retry_ms = clock_mono_ms() + 200; /* no busy loop on a failing read */
			return;
		}
		bool full = false;
		for (size_t i = 0; i < list.count && !full; i++) {
			struct store_item *item = heap_item(&list.items[i]);
			if (!item) {
				full = true;
				break;
			}
			enum consider c = consider_row(d, item, now_ms);
			if (c == FULL) {
				stage_item_free(item);
				full = true;
				break;
			}
			d->cursor = item->seq;
			if (c == SKIPPED)
				stage_item_free(item);
		}
		size_t n = list.count;
		store_item_list_free(&list);
		if (full)
			return;
		if (n == limit)
			continue;
		/* The end is reached. Re-enable hand-offs, then look once more: rows committed
		 * while hand-offs were off are visible now. */
		if (atomic_exchange(&d->p->handoff_suspended, 0))
			continue;
		d->behind = false;
		return;
	}
}

/* Rows whose retry time has come (they are not in memory while they wait). */
static void scan_due(struct dispatcher *d, int64_t now_ms)
{
	struct store_item_list list;
	int err = store_items_retry_due(d->p->reader, now_ms, DISPATCH_PAGE, &list);
	if (err) {
		read_failed(d, err);
		return;
	}
	for (size_t i = 0; i < list.count; i++) {
		if (d->count >= d->cap)
			break;
		struct store_item *item = heap_item(&list.items[i]);
		if (item && consider_row(d, item, now_ms) != TAKEN)
			stage_item_free(item);
	}
	store_item_list_free(&list);
}

/* After a row of a key left the queue, its next row may go. */
static void fetch_successor(struct dispatcher *d, const char *order_key, int64_t now_ms)
{
	struct store_item row;
	if (!may_wait_in_db(d, order_key))
		return;
	int err = store_item_head(d->p->reader, order_key, &row);
	if (err == ILA_ERR_NOTFOUND)
		forget_waiting(d, order_key);
	else if (err)
		read_failed(d, err);
	if (err)
		return;
	struct store_item *item = heap_item(&row);
	if (!item)
		return;
	/* Beyond the cursor the forward scan or a hand-off will bring it in order. */
	if (item->seq > d->cursor || consider_row(d, item, now_ms) != TAKEN)
		stage_item_free(item);
}

/* A row that came back unstarted (held back by the gate) waits in the buffer again; when
 * there is no room, the forward scan finds it again from a cursor moved back before it. */
static void take_back(struct dispatcher *d, struct store_item *item, int64_t now_ms)
{
	if (consider_row(d, item, now_ms) == TAKEN)
		return;
	if (item->seq <= d->cursor)
		d->cursor = item->seq - 1;
	go_behind(d);
	stage_item_free(item);
}

static void on_applied(struct dispatcher *d, struct outcome *o, int64_t now_ms)
{
	struct store_item *item = o->item;
	const struct forward_result *r = &o->res;
	d->in_flight--;
	d->host_in_flight[item_host(item)]--;
	metrics_add_in_flight(-1);
	untrack(d, item);
	if (r->host_ok)
		host_brake_ok(&d->brakes[r->host]);
	if (r->host_failed)
		host_brake_fail(&d->brakes[r->host], now_ms, d->p->cfg->retry_max_backoff,
				r->host_hint_ms);
	if (r->cooldown_until && item->integration_key)
		cooldown_set(d->cooldown, item->integration_key, r->cooldown_until);
	if (r->action == FWD_UNCHANGED && !atomic_load(&d->p->dispatch_stop) &&
	    !atomic_load(&d->p->abandon)) {
		if (d->rate && item->kind == STORE_KIND_EVENT && item->integration_key)
			rate_limiter_unrecord(d->rate, item->integration_key);
		o->item = NULL;
		take_back(d, item, now_ms);
	} else if (item->order_key && r->action == FWD_RESCHEDULE) {
		note_waiting(d, item->order_key); /* parked until its retry time */
	} else if (item->order_key && r->action != FWD_UNCHANGED) {
		fetch_successor(d, item->order_key, now_ms);
	}
	stage_outcome_free(o);
}

/* ---- handing out ----------------------------------------------------------------------- */

/* 0 when the item may start now, -1 when it waits for an outcome (a braked host being probed),
 * else the Unix ms it may (brake, cool-down, rate limit). */
static int64_t item_wait_until(struct dispatcher *d, const struct store_item *item, int64_t now_ms)
{
	enum ilert_base host = item_host(item);
	const struct host_brake *b = &d->brakes[host];
	if (host_brake_active(b, now_ms))
		return b->until_ms;
	if (b->failures > 0 && d->host_in_flight[host] > 0)
		return -1;
	if (item->kind != STORE_KIND_EVENT || !item->integration_key)
		return 0;
	int64_t until = cooldown_until(d->cooldown, item->integration_key, now_ms);
	if (until)
		return until;
	return d->rate ? rate_limiter_wait(d->rate, item->integration_key, now_ms) : 0;
}

/* Hands out eligible rows in seq order; returns the earliest time a held-back row may go. */
static int64_t hand_out(struct dispatcher *d, int64_t now_ms)
{
	int64_t next = 0;
	size_t i = 0;
	int limit = d->p->forwarder_count * FORWARDER_DEPTH;
	while (i < d->count && d->in_flight < limit) {
		struct store_item *item = d->buf[i];
		int64_t wait = item_wait_until(d, item, now_ms);
		if (wait) {
			if (wait > 0 && (!next || wait < next))
				next = wait;
			i++;
			continue;
		}
		if (!workq_push(d->p->work, item))
			break;
		buffer_remove_at(d, i);
		if (d->rate && item->kind == STORE_KIND_EVENT && item->integration_key)
			rate_limiter_record(d->rate, item->integration_key, now_ms);
		d->in_flight++;
		d->host_in_flight[item_host(item)]++;
		metrics_add_in_flight(1);
	}
	return next;
}

/* ---- main loop --------------------------------------------------------------------------- */

static void drain_mailbox(struct dispatcher *d, int64_t now_ms)
{
	void *ptr;
	while ((ptr = mailbox_pop(d->p->to_dispatch))) {
		if (is_outcome(ptr))
			on_applied(d, untag_outcome(ptr), now_ms);
		else
			on_fresh(d, ptr, now_ms);
	}
}

static void dispatcher_free(struct dispatcher *d)
{
	for (size_t i = 0; i < d->count; i++) {
		untrack(d, d->buf[i]);
		stage_item_free(d->buf[i]);
	}
	free(d->store);
	strmap_destroy(d->busy_keys);
	strmap_free_all(d->waiting_keys);
	strmap_destroy(d->known_ids);
	rate_limiter_destroy(d->rate);
	cooldown_table_destroy(d->cooldown);
}

void *dispatch_main(void *arg)
{
	struct pipeline *p = arg;
	struct dispatcher d = { .p = p, .behind = true };
	d.cap = (size_t)p->dispatch_capacity;
	d.store = calloc(2 * d.cap, sizeof(*d.store));
	d.buf = d.store;
	d.busy_keys = strmap_create();
	d.waiting_keys = strmap_create();
	d.known_ids = strmap_create();
	d.rate = rate_limiter_create(p->cfg->rate_limit, 10000);
	d.cooldown = cooldown_table_create(10000);
	if (!d.buf || !d.busy_keys || !d.waiting_keys || !d.known_ids || !d.cooldown ||
	    (p->cfg->rate_limit && !d.rate))
		abort();
	atomic_store(&p->handoff_suspended, 1);

	while (!atomic_load(&p->dispatch_stop)) {
		int64_t now = clock_now_ms();
		drain_mailbox(&d, now);
		int64_t mono = clock_mono_ms();
		if (d.behind && mono >= d.scan_retry_ms)
			scan_forward(&d, now);
		mono = clock_mono_ms();
		if (mono >= d.next_tick_ms) {
			scan_due(&d, now);
			/* Rows committed by another process after our last hand-off. */
			if (!d.behind)
				go_behind(&d);
			d.next_tick_ms = mono + TICK_MS;
		}
		int64_t next = hand_out(&d, now);
		metrics_set_ring_fill(MRING_DISPATCH, d.cap ? (double)d.count / (double)d.cap : 0);
		int timeout = (int)(d.next_tick_ms - mono);
		if (next && next - now < timeout)
			timeout = (int)(next - now);
		if (d.behind && scan_has_room(&d) && mono >= d.scan_retry_ms)
			timeout = 0;
		if (timeout < 0)
			timeout = 0;
		if (timeout > 0)
			mailbox_wait(p->to_dispatch, timeout);
		if (!d.behind && d.in_flight == 0 && d.count == 0)
			pipeline_notify(p);
	}

	/* Stop handing out; forwarders finish what they hold (or abandon it). Their outcomes
	 * come back through persist until it is done. */
	atomic_store(&p->forwarders_stop, 1);
	workq_wake_all(p->work);
	while (!atomic_load(&p->persist_done) || mailbox_count(p->to_dispatch)) {
		drain_mailbox(&d, clock_now_ms());
		if (atomic_load(&p->persist_done) && !mailbox_count(p->to_dispatch))
			break;
		mailbox_wait(p->to_dispatch, 100);
	}
	void *ptr;
	while ((ptr = mailbox_pop(p->to_dispatch))) {
		if (is_outcome(ptr))
			stage_outcome_free(untag_outcome(ptr));
		else
			stage_item_free(ptr);
	}
	dispatcher_free(&d);
	return NULL;
}

/* ---- forwarders ------------------------------------------------------------------------ */

static void report(struct forwarder *f, struct outcome *o)
{
	/* Persist never waits on a forwarder, so this wait ends. */
	while (!mailbox_push(f->out_slot, tag_outcome(o)))
		usleep(500);
}

static void count_delivery(const struct store_item *item, const struct forward_result *res)
{
	enum source src = source_parse(item->source);
	metrics_observe_forward_duration(item->kind, res->duration_s);
	if (res->action == FWD_DELETE) {
		metrics_forwarded(src, item->kind);
		metrics_observe_delivery_delay(item->kind,
					       (double)(clock_now_ms() - item->accepted_at) / 1000.0);
	} else if (res->retried) {
		metrics_retried(src, item->kind, res->retry_cause);
	}
}

void *forwarder_main(void *arg)
{
	struct forwarder *f = arg;
	struct pipeline *p = f->p;
	while (!atomic_load(&p->forwarders_stop)) {
		struct store_item *item = workq_pop(p->work);
		if (!item) {
			workq_wait(p->work, 1000);
			continue;
		}
		struct outcome *o = calloc(1, sizeof(*o));
		if (!o)
			abort();
		o->item = item;
		o->forwarder = f->index;
		o->started_ms = clock_now_ms();
		if (gate_holds(p->gate, item, o->started_ms, &o->res.cooldown_until)) {
			o->res.action = FWD_UNCHANGED;
			report(f, o);
			continue;
		}
		if (forward_deliver(f->client, &p->fwd_settings, item, o->started_ms, &o->res) != 0)
			abort();
		gate_learn(p->gate, item, &o->res, clock_now_ms());
		if (atomic_load(&p->abandon) && o->res.action != FWD_DELETE) {
			/* Cut short by the shutdown: the row stays as it was (§20.3). */
			forward_result_clear(&o->res);
			o->res.action = FWD_UNCHANGED;
		}
		count_delivery(item, &o->res);
		report(f, o);
	}
	return NULL;
}

void stage_return_unstarted(struct pipeline *p)
{
	/* Every forwarder has exited: forwarder 0's slot has no other producer now. */
	struct store_item *item;
	while ((item = workq_pop(p->work))) {
		struct outcome *o = calloc(1, sizeof(*o));
		if (!o)
			abort();
		o->item = item;
		o->res.action = FWD_UNCHANGED;
		report(&p->forwarders[0], o);
	}
}
