/* Pipeline lifecycle and the intake entry point (which also normalizes, on the caller's thread). */
#include "pipeline/pipeline.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "pipeline/stages.h"

/* ---- items moving between stages -------------------------------------------------------- */

struct store_item *stage_item_from_pending(struct pending_item *pi, enum source source,
					   const char *id, int64_t seq, int64_t accepted_at)
{
	struct store_item *item = calloc(1, sizeof(*item));
	char created[48];
	if (!item)
		return NULL;
	item->id = strdup(id);
	item->source = strdup(source_name(source));
	item->created_at = strdup(clock_db_timestamp(created, sizeof(created)));
	if (!item->id || !item->source || !item->created_at) {
		stage_item_free(item);
		return NULL;
	}
	item->seq = seq;
	item->kind = pi->kind;
	item->accepted_at = accepted_at;
	/* The strings move: the pending item is destroyed right after the hand-off. */
	item->integration_key = pi->ev.integration_key;
	item->event_type = pi->ev.event_type;
	item->alert_key = pi->ev.alert_key;
	item->summary = pi->ev.summary;
	item->priority = pi->ev.priority;
	item->images = pi->ev.images;
	item->links = pi->ev.links;
	item->custom_details = pi->ev.custom_details;
	item->details = pi->ev.details;
	item->event_api_path = pi->event_api_path;
	item->payload = pi->payload;
	item->order_key = pi->order_key;
	memset(&pi->ev, 0, sizeof(pi->ev));
	pi->event_api_path = NULL;
	pi->payload = NULL;
	pi->order_key = NULL;
	return item;
}

void stage_item_free(struct store_item *item)
{
	if (!item)
		return;
	store_item_clear(item);
	free(item);
}

void stage_outcome_free(struct outcome *o)
{
	if (!o)
		return;
	stage_item_free(o->item);
	forward_result_clear(&o->res);
	free(o);
}

void stage_message_done(struct pipeline *p, struct message *msg)
{
	message_destroy(msg);
	atomic_fetch_sub(&p->messages_in_persist, 1);
}

void pipeline_notify(struct pipeline *p)
{
	uint64_t one = 1;
	ssize_t n = write(p->event_fd, &one, sizeof(one));
	(void)n; /* a saturated counter still wakes the waiter */
}

void stage_set_fatal(struct pipeline *p, const char *reason)
{
	pthread_mutex_lock(&p->state_lock);
	if (!atomic_load(&p->fatal))
		snprintf(p->fatal_msg, sizeof(p->fatal_msg), "database corrupted: %s", reason);
	atomic_store(&p->fatal, 1);
	pthread_mutex_unlock(&p->state_lock);
	pipeline_notify(p);
}

void stage_publish_gauges(struct pipeline *p)
{
	for (int k = 0; k < METRIC_KIND_COUNT; k++) {
		int64_t rows = atomic_load(&p->gauge_rows[k]);
		metrics_set_queue_rows((enum store_kind)k, rows > 0 ? rows : 0);
	}
	int64_t retrying = atomic_load(&p->gauge_retrying);
	int64_t dead = atomic_load(&p->gauge_dead);
	metrics_set_retrying_rows(retrying > 0 ? retrying : 0);
	metrics_set_dead_rows(dead > 0 ? dead : 0);
}

int64_t pipeline_gauge_generation(const struct pipeline *p)
{
	return atomic_load(&p->gauge_gen);
}

bool pipeline_recount(struct pipeline *p, const struct store_stats *s, int64_t generation)
{
	/* A commit between the caller's read and now is already in the gauges but maybe not in
	 * s: keep the gauges then, the next recount takes over. generation -1 resets anyway
	 * (off by at most that commit until the next recount). */
	if (generation >= 0 && atomic_load(&p->gauge_gen) != generation)
		return false;
	atomic_store(&p->gauge_rows[STORE_KIND_EVENT], s->queued_event);
	atomic_store(&p->gauge_rows[STORE_KIND_HEARTBEAT], s->queued_heartbeat);
	atomic_store(&p->gauge_rows[STORE_KIND_POLICY], s->queued_policy);
	atomic_store(&p->gauge_retrying, s->retrying);
	atomic_store(&p->gauge_dead, s->dead);
	stage_publish_gauges(p);
	return true;
}

/* ---- intake ------------------------------------------------------------------------------ */

static const struct normalize_rules *rules_for(const struct pipeline *p, enum source s)
{
	switch (s) {
	case SOURCE_MQTT: return p->rules_mqtt;
	case SOURCE_KAFKA: return p->rules_kafka;
	default: return p->rules_http;
	}
}

static void reject(struct message *msg)
{
	if (msg->ticket) {
		switch (msg->ticket->reject_reason) {
		case REJECT_FILTERED: metrics_filtered(msg->source); break;
		case REJECT_TOO_LARGE: metrics_rejected(msg->source, MR_TOO_LARGE, 1); break;
		case REJECT_UNMATCHED_TOPIC: metrics_rejected(msg->source, MR_UNMATCHED_TOPIC, 1); break;
		default: metrics_rejected(msg->source, MR_INVALID, 1); break;
		}
		ticket_finish(msg->ticket, TICKET_REJECTED, NULL);
	}
	message_destroy(msg);
}

/* Normalization runs here, on the source's own thread, and the normalized message goes
 * straight into the persist mailbox through that thread's slot. A separate normalize thread
 * would add a hand-off and a wake-up per message; on two cores the context switches cost
 * more than the parsing they would move (docs/pipeline.md). */
bool pipeline_admit(struct pipeline *p, struct message *msg)
{
	atomic_fetch_add(&p->admitters, 1);
	if (atomic_load(&p->closed)) {
		/* Shutdown began after the source checked the state: answer it here. */
		atomic_fetch_sub(&p->admitters, 1);
		ticket_finish(msg->ticket, TICKET_SHUTTING_DOWN, NULL);
		message_destroy(msg);
		return true;
	}
	struct mailbox_slot *slot = mailbox_slot_for_thread(p->to_persist);
	if (!slot || mailbox_count(p->to_persist) >= INTAKE_RING_SIZE) {
		atomic_fetch_sub(&p->admitters, 1);
		return false;
	}
	if (!msg->items && !normalize_message(rules_for(p, msg->source), msg)) {
		atomic_fetch_sub(&p->admitters, 1);
		reject(msg);
		return true;
	}
	atomic_fetch_add(&p->messages_in_persist, 1);
	bool ok = mailbox_push(slot, msg);
	if (!ok)
		atomic_fetch_sub(&p->messages_in_persist, 1);
	atomic_fetch_sub(&p->admitters, 1);
	return ok;
}

static bool intake_admit_cb(void *ctx, struct message *msg)
{
	return pipeline_admit(ctx, msg);
}

static enum intake_state intake_state_cb(void *ctx)
{
	return pipeline_intake_state(ctx);
}

struct intake pipeline_intake(struct pipeline *p)
{
	struct intake in = { .ctx = p, .admit = intake_admit_cb, .state = intake_state_cb };
	return in;
}

enum intake_state pipeline_intake_state(const struct pipeline *p)
{
	if (atomic_load(&p->closed))
		return INTAKE_CLOSED;
	return atomic_load(&p->paused) ? INTAKE_PAUSED : INTAKE_OPEN;
}

int64_t pipeline_queued(const struct pipeline *p)
{
	return atomic_load(&p->queued);
}

bool pipeline_store_failing(const struct pipeline *p, char *err, size_t err_size)
{
	if (!atomic_load(&p->store_failing))
		return false;
	pthread_mutex_lock((pthread_mutex_t *)&p->state_lock);
	snprintf(err, err_size, "%s", p->store_error);
	pthread_mutex_unlock((pthread_mutex_t *)&p->state_lock);
	return true;
}

double pipeline_intake_fill(const struct pipeline *p)
{
	return (double)mailbox_count(p->to_persist) / INTAKE_RING_SIZE;
}

double pipeline_dispatch_fill(const struct pipeline *p)
{
	return p->dispatch_capacity ? (double)atomic_load(&p->buffered) / p->dispatch_capacity : 0;
}

bool pipeline_fatal(const struct pipeline *p, char *msg, size_t msg_size)
{
	if (!atomic_load(&p->fatal))
		return false;
	pthread_mutex_lock((pthread_mutex_t *)&p->state_lock);
	snprintf(msg, msg_size, "%s", p->fatal_msg);
	pthread_mutex_unlock((pthread_mutex_t *)&p->state_lock);
	return true;
}

bool pipeline_idle(const struct pipeline *p)
{
	return atomic_load(&p->queued) <= 0 && atomic_load(&p->in_memory) == 0 &&
	       atomic_load(&p->messages_in_persist) == 0;
}

void pipeline_wake(struct pipeline *p)
{
	pipeline_notify(p);
}

void pipeline_wait_event(struct pipeline *p, int timeout_ms)
{
	struct pollfd pfd = { .fd = p->event_fd, .events = POLLIN };
	if (poll(&pfd, 1, timeout_ms) > 0) {
		uint64_t v;
		ssize_t n = read(p->event_fd, &v, sizeof(v));
		(void)n;
	}
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

struct pipeline *pipeline_create(const struct config *cfg, struct store *writer,
				 struct store *reader)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cfg = cfg;
	p->writer = writer;
	p->reader = reader;
	p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&p->state_lock, NULL);
	p->forwarder_count = cfg->forwarders;
	p->dispatch_capacity = 2 * cfg->forwarders * DISPATCH_PAGE;
	p->fwd_settings.max_retries = cfg->max_retries;
	p->fwd_settings.retry_max_backoff = cfg->retry_max_backoff;
	p->fwd_settings.policy_cache_ttl = cfg->policy_cache_ttl;
	p->fwd_settings.cache = policy_cache_create(FORWARD_MAX_KEYS);
	p->to_persist = mailbox_create(INTAKE_RING_SIZE,
				       (unsigned)cfg->forwarders + INTAKE_MAX_PRODUCERS);
	p->to_dispatch = mailbox_create(PERSIST_RING_SIZE, 2);
	p->rules_http = normalize_rules_create(cfg, SOURCE_HTTP);
	p->rules_mqtt = normalize_rules_create(cfg, SOURCE_MQTT);
	p->rules_kafka = normalize_rules_create(cfg, SOURCE_KAFKA);
	p->forwarders = calloc((size_t)p->forwarder_count, sizeof(*p->forwarders));
	p->work = workq_create(1024);
	p->gate = delivery_gate_create();
	if (p->event_fd < 0 || !p->fwd_settings.cache || !p->to_persist || !p->to_dispatch || !p->work ||
	    !p->gate || !p->rules_http || !p->rules_mqtt || !p->rules_kafka || !p->forwarders)
		goto fail;
	p->fresh_slot = mailbox_slot_add(p->to_dispatch);
	p->applied_slot = mailbox_slot_add(p->to_dispatch);
	if (!p->fresh_slot || !p->applied_slot)
		goto fail;
	for (int i = 0; i < p->forwarder_count; i++) {
		struct forwarder *f = &p->forwarders[i];
		f->p = p;
		f->index = i;
		f->client = ilert_client_create(cfg);
		f->out_slot = mailbox_slot_add(p->to_persist);
		if (!f->client || !f->out_slot)
			goto fail;
		ilert_client_set_abort(f->client, &p->abandon);
	}
	struct store_stats stats;
	if (store_stats_read(writer, &stats) != 0)
		goto fail;
	atomic_store(&p->queued, stats.queued);
	atomic_store(&p->paused, stats.queued >= cfg->max_queue);
	pipeline_recount(p, &stats, 0);
	return p;
fail:
	pipeline_destroy(p);
	return NULL;
}

int pipeline_start(struct pipeline *p)
{
	metrics_set_paused(atomic_load(&p->paused));
	if (pthread_create(&p->persist_thread, NULL, persist_main, p) != 0)
		return ILA_ERR_NOMEM;
	if (pthread_create(&p->dispatch_thread, NULL, dispatch_main, p) != 0)
		abort();
	for (int i = 0; i < p->forwarder_count; i++)
		if (pthread_create(&p->forwarders[i].thread, NULL, forwarder_main, &p->forwarders[i]) != 0)
			abort();
	p->started = true;
	return 0;
}

void pipeline_close_intake(struct pipeline *p)
{
	atomic_store(&p->closed, 1);
}

void pipeline_drain(struct pipeline *p)
{
	pipeline_close_intake(p);
	if (!p->started)
		return;
	/* Sources inside pipeline_admit finish their push; later ones see the intake closed. */
	while (atomic_load(&p->admitters) > 0)
		usleep(1000);
	atomic_store(&p->normalize_done, 1);
	mailbox_wake(p->to_persist);
	/* Every admitted message is now in persist; wait until it committed them. Messages
	 * that wait for a failing store are given 5 s, then abandoned unacknowledged. */
	int64_t failing_since = 0;
	while (!atomic_load(&p->fatal) && atomic_load(&p->messages_in_persist) > 0) {
		if (atomic_load(&p->store_failing)) {
			int64_t now = clock_mono_ms();
			if (!failing_since)
				failing_since = now;
			else if (now - failing_since > 5000)
				break;
		} else {
			failing_since = 0;
		}
		usleep(2000);
	}
}

void pipeline_abandon(struct pipeline *p)
{
	atomic_store(&p->abandon, 1);
}

void pipeline_stop_delivery(struct pipeline *p, int grace_ms)
{
	if (!p->started)
		return;
	atomic_store(&p->dispatch_stop, 1);
	mailbox_wake(p->to_dispatch);
	/* Forwarders finish the delivery they are in; after the grace period it is abandoned
	 * (the client aborts the transfer) and the row stays as it was. */
	int64_t deadline = clock_mono_ms() + grace_ms;
	for (int i = 0; i < p->forwarder_count; i++) {
		for (;;) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_timedjoin_np(p->forwarders[i].thread, NULL, &ts) == 0)
				break;
			if (clock_mono_ms() >= deadline || atomic_load(&p->abandon)) {
				atomic_store(&p->abandon, 1);
			}
		}
	}
	stage_return_unstarted(p);
	atomic_store(&p->forwarders_done, 1);
	mailbox_wake(p->to_persist);
	pthread_join(p->persist_thread, NULL);
	pthread_join(p->dispatch_thread, NULL);
	p->started = false;
}

void pipeline_destroy(struct pipeline *p)
{
	if (!p)
		return;
	if (p->started) {
		pipeline_drain(p);
		pipeline_stop_delivery(p, 0);
	}
	for (int i = 0; p->forwarders && i < p->forwarder_count; i++)
		ilert_client_destroy(p->forwarders[i].client);
	free(p->forwarders);
	workq_destroy(p->work);
	policy_cache_destroy(p->fwd_settings.cache);
	delivery_gate_destroy(p->gate);
	mailbox_destroy(p->to_persist);
	mailbox_destroy(p->to_dispatch);
	normalize_rules_destroy(p->rules_http);
	normalize_rules_destroy(p->rules_mqtt);
	normalize_rules_destroy(p->rules_kafka);
	store_close(p->writer);
	store_close(p->reader);
	if (p->event_fd >= 0)
		close(p->event_fd);
	pthread_mutex_destroy(&p->state_lock);
	free(p);
}
