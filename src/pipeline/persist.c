/* The persist stage: the only SQLite writer. It groups normalized messages and forwarder
 * outcomes into one transaction (up to COMMIT_MAX_ITEMS new items), commits, and only then
 * completes tickets, updates the dedup state, hands committed rows to the dispatcher and
 * reports applied outcomes back to it. A failed transaction is retried with backoff for
 * everything that may wait (consumer messages, outcomes); HTTP requests in it get 500. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "pipeline/stages.h"

#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 5000
#define MAX_OUTCOMES_PER_TXN 4096
#define LINGER_BELOW_OUTCOMES 64
#define LINGER_NS 1000000
#define LINGER_AFTER_INTAKE_MS 100 /* no linger this soon after items were accepted */

struct batch {
	struct message **msgs;
	size_t msg_count, msg_cap;
	size_t item_count;
	struct outcome **outcomes;
	size_t outcome_count, outcome_cap;
};

/* Per committed item: where it came from, for the hand-off after the commit. */
struct inserted {
	struct message *msg;
	size_t index;
	char id[UUID_STR_LEN];
	int64_t seq;
	int64_t accepted_at;
};

struct persist {
	struct pipeline *p;
	struct dedup *dedup;
	struct batch pending; /* gathered, not yet committed */
	struct message *carry; /* popped, but would have made the transaction too large */
	struct inserted *inserted;
	size_t inserted_cap;
	uint64_t duplicates[SOURCE_COUNT]; /* of the current transaction */
	/* seq of the last row this thread inserted, 0 = none yet. A later insert with a gap
	 * means another process (`ilagent queue retry`) added rows: then the queue is counted
	 * again so that the pause of §15 follows what the table really holds. */
	int64_t last_seq;
	bool recount; /* the current transaction counts the queue before it commits */
	bool lingered; /* the pending outcomes already waited once for company */
	int64_t last_intake_ms; /* mono ms of the last transaction with items to accept */
	bool sync_full_now;  /* the connection's current synchronous setting */
	int64_t retry_at_ms; /* mono ms of the next attempt after a failed commit, 0 = none */
	int64_t retry_delay_ms;
};

static bool push_ptr(void ***arr, size_t *count, size_t *cap, void *ptr)
{
	if (*count == *cap) {
		size_t n = *cap ? *cap * 2 : 64;
		void **a = realloc(*arr, n * sizeof(void *));
		if (!a)
			return false;
		*arr = a;
		*cap = n;
	}
	(*arr)[(*count)++] = ptr;
	return true;
}

static void update_pause(struct pipeline *p)
{
	int64_t queued = atomic_load(&p->queued);
	int64_t max = p->cfg->max_queue;
	int paused = atomic_load(&p->paused);
	if (!paused && queued >= max) {
		atomic_store(&p->paused, 1);
		metrics_intake_pause();
		metrics_set_paused(1);
		log_warn("store", "queue holds %lld rows (--max_queue %lld): intake paused",
			 (long long)queued, (long long)max);
	} else if (paused && queued * 10 < max * 9) {
		atomic_store(&p->paused, 0);
		metrics_set_paused(0);
		log_info("store", "queue holds %lld rows: intake resumed", (long long)queued);
	}
}

static void set_store_state(struct pipeline *p, bool failing, const char *error)
{
	pthread_mutex_lock(&p->state_lock);
	if (failing)
		snprintf(p->store_error, sizeof(p->store_error), "%s", error ? error : "");
	else
		p->store_error[0] = '\0';
	pthread_mutex_unlock(&p->state_lock);
	atomic_store(&p->store_failing, failing ? 1 : 0);
}

static void add_message(struct batch *b, struct message *msg)
{
	if (!push_ptr((void ***)&b->msgs, &b->msg_count, &b->msg_cap, msg))
		abort(); /* nothing sensible is left to do without memory */
	b->item_count += msg->item_count;
}

/* Moves pending messages/outcomes out of the mailbox until the batch is full: at most
 * COMMIT_MAX_ITEMS new items per transaction (a single larger message still goes alone). */
static void gather(struct persist *ps)
{
	struct pipeline *p = ps->p;
	struct batch *b = &ps->pending;
	void *ptr;
	if (ps->carry) {
		add_message(b, ps->carry);
		ps->carry = NULL;
	}
	while (b->item_count < COMMIT_MAX_ITEMS && b->outcome_count < MAX_OUTCOMES_PER_TXN &&
	       (ptr = mailbox_pop(p->to_persist))) {
		if (is_outcome(ptr)) {
			if (!push_ptr((void ***)&b->outcomes, &b->outcome_count, &b->outcome_cap,
				      untag_outcome(ptr)))
				abort(); /* cannot lose an outcome; out of memory is fatal */
			continue;
		}
		struct message *msg = ptr;
		if (b->item_count && b->item_count + msg->item_count > COMMIT_MAX_ITEMS) {
			ps->carry = msg;
			return;
		}
		add_message(b, msg);
	}
}

static int apply_outcome(struct persist *ps, struct outcome *o, int64_t now_ms, int64_t *removed,
			 int64_t *evicted)
{
	struct store *st = ps->p->writer;
	const struct forward_result *r = &o->res;
	int err = 0;
	switch (r->action) {
	case FWD_UNCHANGED:
		break;
	case FWD_DELETE:
	case FWD_EXPIRED:
		err = store_item_delete(st, o->item->id);
		(*removed)++;
		break;
	case FWD_RESCHEDULE: {
		struct store_retry retry = {
			.attempts = r->attempts, .next_attempt_at = r->next_attempt_at,
			.last_status = r->last_status, .last_error = r->last_error,
		};
		err = store_item_reschedule(st, o->item->id, &retry);
		break;
	}
	case FWD_DEAD: {
		struct store_dead_info info = {
			.reason = r->dead_reason, .attempts = r->attempts,
			.last_status = r->last_status, .last_error = r->last_error,
			.body = r->body, .body_len = r->body_len, .dead_at = now_ms,
		};
		int64_t ev = 0;
		err = store_dead_move(st, o->item->id, &info, ps->p->cfg->max_dead, &ev);
		*evicted += ev;
		(*removed)++;
		break;
	}
	}
	return err == ILA_ERR_NOTFOUND ? 0 : err;
}

static int insert_items(struct persist *ps, int64_t now_ms, size_t *inserted_count)
{
	struct batch *b = &ps->pending;
	if (ps->inserted_cap < b->item_count) {
		struct inserted *n = realloc(ps->inserted, b->item_count * sizeof(*n));
		if (!n)
			return ILA_ERR_NOMEM;
		ps->inserted = n;
		ps->inserted_cap = b->item_count;
	}
	for (size_t m = 0; m < b->msg_count; m++) {
		struct message *msg = b->msgs[m];
		for (size_t i = 0; i < msg->item_count; i++) {
			struct pending_item *it = &msg->items[i];
			if (dedup_check(ps->dedup, it, now_ms)) {
				ps->duplicates[msg->source]++;
				continue;
			}
			struct inserted *ins = &ps->inserted[*inserted_count];
			ins->msg = msg;
			ins->index = i;
			ins->accepted_at = it->accepted_at ? it->accepted_at : now_ms;
			struct store_new_item row =
				pending_item_row(it, msg->source, ins->accepted_at);
			int err = store_item_insert(ps->p->writer, &row, ins->id, &ins->seq);
			if (err)
				return err;
			if (ins->seq != ps->last_seq + 1)
				ps->recount = true;
			ps->last_seq = ins->seq;
			dedup_stage(ps->dedup, it, now_ms);
			(*inserted_count)++;
		}
	}
	return 0;
}

/* Hands committed rows to the dispatcher, unless it asked to find them in the database. */
static void hand_off(struct persist *ps, size_t count)
{
	struct pipeline *p = ps->p;
	for (size_t k = 0; k < count; k++) {
		struct inserted *ins = &ps->inserted[k];
		if (atomic_load(&p->handoff_suspended))
			return;
		struct store_item *item = stage_item_from_pending(
			&ins->msg->items[ins->index], ins->msg->source, ins->id, ins->seq,
			ins->accepted_at);
		if (!item || !mailbox_push(p->fresh_slot, item)) {
			stage_item_free(item);
			atomic_store(&p->handoff_suspended, 1);
			mailbox_wake(p->to_dispatch);
			return;
		}
	}
}

static void push_applied(struct pipeline *p, struct outcome *o)
{
	/* The dispatcher never waits on persist, so this wait always ends. */
	while (!mailbox_push(p->applied_slot, tag_outcome(o)))
		usleep(200);
}

static void log_outcome(struct pipeline *p, const struct outcome *o)
{
	const struct forward_result *r = &o->res;
	const char *kind = store_kind_name(o->item->kind);
	if (r->action == FWD_DEAD)
		log_error("forward", "Moved %s %s to dead letters after %lld attempt(s): %s", kind,
			  o->item->id, (long long)r->attempts, store_dead_reason_name(r->dead_reason));
	else if (r->action == FWD_EXPIRED)
		log_limited(LOG_LVL_WARN, "forward", "heartbeat %s expired: older than its 60 s time-to-live, dropped", o->item->id);
	(void)p;
}

static void count_outcome(const struct outcome *o)
{
	const struct forward_result *r = &o->res;
	enum source src = source_parse(o->item->source);
	switch (r->action) {
	case FWD_DEAD:
		metrics_dead_lettered(src, o->item->kind, r->dead_reason);
		break;
	case FWD_EXPIRED:
		metrics_heartbeat_expired(src);
		break;
	default:
		break;
	}
}

/* Keeps the queue gauges current between the daemon's recounts (§19). */
static void update_gauges(struct persist *ps, size_t inserted, int64_t evicted)
{
	struct pipeline *p = ps->p;
	struct batch *b = &ps->pending;
	for (size_t k = 0; k < inserted; k++) {
		const struct inserted *ins = &ps->inserted[k];
		enum store_kind kind = ins->msg->items[ins->index].kind;
		if ((int)kind < METRIC_KIND_COUNT)
			atomic_fetch_add(&p->gauge_rows[kind], 1);
	}
	for (size_t i = 0; i < b->outcome_count; i++) {
		const struct outcome *o = b->outcomes[i];
		enum forward_action action = o->res.action;
		bool was_retrying = o->item->attempts > 0;
		if (action == FWD_UNCHANGED)
			continue;
		if (action == FWD_RESCHEDULE) {
			if (!was_retrying)
				atomic_fetch_add(&p->gauge_retrying, 1);
			continue;
		}
		if ((int)o->item->kind < METRIC_KIND_COUNT)
			atomic_fetch_sub(&p->gauge_rows[o->item->kind], 1);
		if (was_retrying)
			atomic_fetch_sub(&p->gauge_retrying, 1);
		if (action == FWD_DEAD)
			atomic_fetch_add(&p->gauge_dead, 1);
	}
	if (evicted)
		atomic_fetch_sub(&p->gauge_dead, evicted);
	atomic_fetch_add(&p->gauge_gen, 1);
	stage_publish_gauges(p);
}

static void complete_tickets(struct batch *b, int64_t now_ns)
{
	for (size_t m = 0; m < b->msg_count; m++) {
		struct message *msg = b->msgs[m];
		metrics_observe_commit_latency((double)(now_ns - msg->admitted_ns) / 1e9);
		if (msg->ticket) {
			msg->ticket->accepted = msg->item_count;
			ticket_finish(msg->ticket, TICKET_ACCEPTED, NULL);
		}
	}
}

static void batch_reset(struct batch *b)
{
	b->msg_count = 0;
	b->item_count = 0;
	b->outcome_count = 0;
}

/* After a failed commit: HTTP requests are answered 500 and dropped; the rest waits. */
static void fail_http_messages(struct persist *ps)
{
	struct batch *b = &ps->pending;
	size_t keep = 0;
	b->item_count = 0;
	for (size_t m = 0; m < b->msg_count; m++) {
		struct message *msg = b->msgs[m];
		if (msg->retry_on_store_error) {
			b->msgs[keep++] = msg;
			b->item_count += msg->item_count;
			continue;
		}
		metrics_rejected(msg->source, MR_STORE_ERROR, msg->kind == MSG_HTTP_BATCH ? msg->item_count : 1);
		ticket_finish(msg->ticket, TICKET_STORE_ERROR, NULL);
		stage_message_done(ps->p, msg);
	}
	b->msg_count = keep;
}

static void commit_failed(struct persist *ps, int err)
{
	struct pipeline *p = ps->p;
	const char *reason = store_errmsg(p->writer);
	if (err == ILA_ERR_CORRUPT)
		stage_set_fatal(p, reason);
	char text[360];
	snprintf(text, sizeof(text), "database error: %s", reason);
	set_store_state(p, true, text);
	log_limited(LOG_LVL_WARN, "store", "commit failed, retrying: %s", reason);
	fail_http_messages(ps);
	ps->retry_delay_ms = ps->retry_delay_ms ? ps->retry_delay_ms * 2 : STORE_RETRY_MIN_MS;
	if (ps->retry_delay_ms > STORE_RETRY_MAX_MS)
		ps->retry_delay_ms = STORE_RETRY_MAX_MS;
	ps->retry_at_ms = clock_mono_ms() + ps->retry_delay_ms;
}

/* One transaction over everything gathered. */
static void run_transaction(struct persist *ps)
{
	struct pipeline *p = ps->p;
	struct batch *b = &ps->pending;
	int64_t now_ms = clock_now_ms();
	size_t inserted = 0;
	memset(ps->duplicates, 0, sizeof(ps->duplicates));
	if (b->msg_count)
		ps->last_intake_ms = clock_mono_ms();
	int64_t removed = 0, evicted = 0;

	/* A transaction that only records delivery outcomes acknowledges nothing: losing it to a
	 * power cut only means a row is delivered again (at-least-once), so it skips the fsync;
	 * the next commit that accepts items makes it durable along with its own. */
	bool want_full = p->cfg->db_sync == DB_SYNC_FULL && b->msg_count > 0;
	if (want_full != ps->sync_full_now && store_set_sync(p->writer, want_full) == 0)
		ps->sync_full_now = want_full;
	int64_t last_seq = ps->last_seq, counted = -1;
	ps->recount = false;
	int err = store_begin(p->writer);
	for (size_t i = 0; !err && i < b->outcome_count; i++)
		err = apply_outcome(ps, b->outcomes[i], now_ms, &removed, &evicted);
	if (!err)
		err = insert_items(ps, now_ms, &inserted);
	if (!err && ps->recount)
		err = store_items_count(p->writer, &counted);
	if (!err)
		err = store_commit(p->writer);
	if (err) {
		store_rollback(p->writer);
		dedup_abort(ps->dedup);
		ps->last_seq = last_seq;
		commit_failed(ps, err);
		return;
	}
	dedup_commit(ps->dedup);
	ps->retry_at_ms = 0;
	ps->retry_delay_ms = 0;
	if (atomic_load(&p->store_failing)) {
		set_store_state(p, false, NULL);
		log_info("store", "database writes succeed again");
	}
	if (counted >= 0)
		atomic_store(&p->queued, counted);
	else
		atomic_fetch_add(&p->queued, (long long)inserted - removed);
	update_pause(p);
	update_gauges(ps, inserted, evicted);
	if (evicted) {
		metrics_dead_letters_evicted((uint64_t)evicted);
		log_warn("store", "evicted %lld oldest dead letter(s) beyond --max_dead %lld",
			 (long long)evicted, (long long)p->cfg->max_dead);
	}

	for (size_t k = 0; k < inserted; k++) {
		struct inserted *ins = &ps->inserted[k];
		metrics_committed(ins->msg->source, ins->msg->items[ins->index].kind, 1);
	}
	for (int s = 0; s < SOURCE_COUNT; s++)
		if (ps->duplicates[s])
			metrics_deduplicated((enum source)s, ps->duplicates[s]);
	hand_off(ps, inserted);
	complete_tickets(b, clock_mono_ns());
	for (size_t m = 0; m < b->msg_count; m++)
		stage_message_done(p, b->msgs[m]);
	for (size_t i = 0; i < b->outcome_count; i++) {
		log_outcome(p, b->outcomes[i]);
		count_outcome(b->outcomes[i]);
		push_applied(p, b->outcomes[i]);
	}
	batch_reset(b);
	pipeline_notify(p);
}

static bool everything_done(struct persist *ps)
{
	struct pipeline *p = ps->p;
	return atomic_load(&p->normalize_done) && atomic_load(&p->forwarders_done) &&
	       ps->pending.msg_count == 0 && ps->pending.outcome_count == 0 && !ps->carry &&
	       mailbox_count(p->to_persist) == 0;
}

/* After a fatal database error nothing is committed any more: messages are answered as
 * store errors and outcomes go back to the dispatcher unapplied (those rows are delivered
 * again after a restart). Keeps the mailbox moving so no thread waits forever. */
static void discard_pending(struct persist *ps)
{
	struct pipeline *p = ps->p;
	gather(ps);
	for (size_t m = 0; m < ps->pending.msg_count; m++) {
		ticket_finish(ps->pending.msgs[m]->ticket, TICKET_STORE_ERROR, NULL);
		stage_message_done(p, ps->pending.msgs[m]);
	}
	for (size_t i = 0; i < ps->pending.outcome_count; i++)
		push_applied(p, ps->pending.outcomes[i]);
	batch_reset(&ps->pending);
}

/* Deliveries report one by one. While no items are being accepted, a transaction that only
 * records a few outcomes waits once, for up to 1 ms, for more to arrive: nobody waits for such
 * a commit, and every commit writes whole pages and wakes the dispatcher, so gathering them
 * saves both (P2 in the README). While sources deliver items it never waits, so that no
 * acknowledgement is held back for the sake of delivery throughput. */
static bool linger_for_outcomes(struct persist *ps, int64_t now_ms)
{
	const struct batch *b = &ps->pending;
	if (b->msg_count || !b->outcome_count || b->outcome_count >= LINGER_BELOW_OUTCOMES ||
	    ps->lingered || now_ms - ps->last_intake_ms < LINGER_AFTER_INTAKE_MS) {
		ps->lingered = false;
		return false;
	}
	ps->lingered = true;
	struct timespec ts = { 0, LINGER_NS };
	nanosleep(&ts, NULL);
	return true;
}

void *persist_main(void *arg)
{
	struct pipeline *p = arg;
	struct persist ps = { .p = p, .sync_full_now = p->cfg->db_sync == DB_SYNC_FULL };
	ps.dedup = dedup_create(p->cfg->dedup_window, 100000);
	if (!ps.dedup)
		abort();
	for (;;) {
		if (atomic_load(&p->fatal)) {
			discard_pending(&ps);
			if (everything_done(&ps))
				break;
			mailbox_wait(p->to_persist, 100);
			continue;
		}
		int64_t now = clock_mono_ms();
		bool waiting_retry = ps.retry_at_ms && now < ps.retry_at_ms;
		if (!waiting_retry)
			gather(&ps);
		if (!waiting_retry && linger_for_outcomes(&ps, now))
			continue;
		if ((ps.pending.msg_count || ps.pending.outcome_count) && !waiting_retry) {
			run_transaction(&ps);
			continue;
		}
		if (everything_done(&ps))
			break;
		mailbox_wait(p->to_persist, waiting_retry ? (int)(ps.retry_at_ms - now) : 1000);
	}
	/* Nothing is left when the loop ends; this only guards against a late arrival. */
	discard_pending(&ps);
	free(ps.pending.msgs);
	free(ps.pending.outcomes);
	free(ps.inserted);
	dedup_destroy(ps.dedup);
	atomic_store(&p->persist_done, 1);
	mailbox_wake(p->to_dispatch);
	pipeline_notify(p);
	return NULL;
}
