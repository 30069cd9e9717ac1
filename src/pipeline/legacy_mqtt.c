#include "pipeline/legacy_mqtt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/message.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "pipeline/dedup.h"
#include "pipeline/normalize.h"
#include "store/legacy.h"
#include "store/queue.h"

#define DEDUP_MAX_KEYS 100000

struct conversion {
	struct store *st;
	struct normalize_rules *rules;
	struct dedup *dedup;
	struct legacy_mqtt_counts counts;
	/* Of the current transaction, published once it committed. */
	int64_t txn_committed[METRIC_KIND_COUNT];
	int64_t txn_duplicates, txn_rejected[MR_COUNT], txn_filtered;
};

/* The original acceptance: the row's inserted_at (UTC), now when missing or unreadable
 * (the same rule as the backfill of §16.5). */
static int64_t accepted_at_of(const struct store_mqtt_row *row)
{
	int64_t ms;
	if (row->inserted_at && clock_parse_db_timestamp(row->inserted_at, &ms) == 0)
		return ms;
	return clock_now_ms();
}

static int insert_item(struct conversion *c, const struct pending_item *it, int64_t accepted_at)
{
	struct store_new_item row = pending_item_row(it, SOURCE_MQTT, accepted_at);
	return store_item_insert(c->st, &row, NULL, NULL);
}

/* One row: its item committed (or dropped as duplicate / rejected) and the row deleted, or
 * the row kept when its topic matches nothing. *kept tells which. */
static int convert_row(struct conversion *c, const struct store_mqtt_row *row, bool *kept)
{
	struct pending_item item;
	enum reject_reason reason = REJECT_NONE;
	char *warning = NULL;
	*kept = false;
	int rc = normalize_consumer(c->rules, row->topic, NULL, row->payload, row->payload_len,
				    &item, &reason, &warning);
	if (rc == ILA_ERR_INVALID && reason == REJECT_UNMATCHED_TOPIC) {
		free(warning);
		*kept = true;
		return 0;
	}
	if (rc == ILA_ERR_INVALID) {
		if (warning)
			log_limited(LOG_LVL_WARN, "mqtt", "%s", warning);
		free(warning);
		if (reason == REJECT_FILTERED)
			c->txn_filtered++;
		else
			c->txn_rejected[reason == REJECT_TOO_LARGE ? MR_TOO_LARGE : MR_INVALID]++;
		return store_mqtt_queue_delete(c->st, row->id);
	}
	free(warning);
	if (rc)
		return rc;
	int64_t accepted_at = accepted_at_of(row);
	int err = 0;
	if (dedup_check(c->dedup, &item, accepted_at)) {
		c->txn_duplicates++;
	} else {
		err = insert_item(c, &item, accepted_at);
		if (!err) {
			dedup_stage(c->dedup, &item, accepted_at);
			c->txn_committed[item.kind]++;
		}
	}
	pending_item_clear(&item);
	return err ? err : store_mqtt_queue_delete(c->st, row->id);
}

static void txn_reset(struct conversion *c)
{
	memset(c->txn_committed, 0, sizeof(c->txn_committed));
	memset(c->txn_rejected, 0, sizeof(c->txn_rejected));
	c->txn_duplicates = 0;
	c->txn_filtered = 0;
}

static void txn_publish(struct conversion *c)
{
	for (int k = 0; k < METRIC_KIND_COUNT; k++) {
		if (c->txn_committed[k])
			metrics_committed(SOURCE_MQTT, (enum store_kind)k, (uint64_t)c->txn_committed[k]);
		c->counts.committed += c->txn_committed[k];
	}
	for (int r = 0; r < MR_COUNT; r++) {
		if (c->txn_rejected[r])
			metrics_rejected(SOURCE_MQTT, (enum metric_reject)r, (uint64_t)c->txn_rejected[r]);
		c->counts.rejected += c->txn_rejected[r];
	}
	if (c->txn_duplicates)
		metrics_deduplicated(SOURCE_MQTT, (uint64_t)c->txn_duplicates);
	for (int64_t i = 0; i < c->txn_filtered; i++)
		metrics_filtered(SOURCE_MQTT);
	c->counts.duplicates += c->txn_duplicates;
	c->counts.filtered += c->txn_filtered;
}

/* One transaction over the next page of rows. *done when no row was left to look at. */
static int convert_batch(struct conversion *c, bool *done)
{
	struct store_mqtt_rows page;
	int err = store_mqtt_queue_page(c->st, c->counts.unmatched, LEGACY_MQTT_BATCH, &page);
	if (err)
		return err;
	*done = page.count == 0;
	if (*done) {
		store_mqtt_rows_free(&page);
		return 0;
	}
	txn_reset(c);
	int64_t kept = 0;
	err = store_begin(c->st);
	for (size_t i = 0; !err && i < page.count; i++) {
		bool row_kept;
		err = convert_row(c, &page.rows[i], &row_kept);
		kept += row_kept;
	}
	if (!err)
		err = store_commit(c->st);
	store_mqtt_rows_free(&page);
	if (err) {
		store_rollback(c->st);
		dedup_abort(c->dedup);
		return err;
	}
	dedup_commit(c->dedup);
	txn_publish(c);
	c->counts.unmatched += kept;
	return 0;
}

static bool any_topic(const struct config *cfg)
{
	return cfg->event_topic || cfg->heartbeat_topic || cfg->policy_topic;
}

static void log_result(const struct legacy_mqtt_counts *n)
{
	if (n->found > n->remaining)
		log_info("store",
			 "Converted %lld buffered MQTT messages from mqtt_queue: %lld queued, %lld "
			 "duplicates, %lld rejected, %lld filtered",
			 (long long)(n->found - n->remaining), (long long)n->committed,
			 (long long)n->duplicates, (long long)n->rejected, (long long)n->filtered);
	if (n->unmatched)
		log_warn("store",
			 "%lld buffered MQTT messages remain in mqtt_queue; their topics match none of "
			 "the topic options",
			 (long long)n->unmatched);
}

int legacy_mqtt_convert(const struct config *cfg, struct store *st,
			struct legacy_mqtt_counts *counts, char *msg, size_t msg_size)
{
	struct conversion c = { .st = st };
	int err = store_mqtt_queue_count(st, &c.counts.found);
	if (!err && c.counts.found > 0 && !any_topic(cfg)) {
		log_warn("store",
			 "%lld buffered MQTT messages remain in mqtt_queue; start with the topic "
			 "options to deliver them",
			 (long long)c.counts.found);
		c.counts.remaining = c.counts.found;
	} else if (!err && c.counts.found > 0) {
		c.rules = normalize_rules_create(cfg, SOURCE_MQTT);
		c.dedup = dedup_create(cfg->dedup_window, DEDUP_MAX_KEYS);
		if (!c.rules || !c.dedup)
			err = ILA_ERR_NOMEM;
		for (bool done = false; !err && !done;)
			err = convert_batch(&c, &done);
		if (!err)
			err = store_mqtt_queue_count(st, &c.counts.remaining);
		if (!err)
			log_result(&c.counts);
		dedup_destroy(c.dedup);
		normalize_rules_destroy(c.rules);
	}
	if (counts)
		*counts = c.counts;
	if (err)
		snprintf(msg, msg_size, "Failed to convert the buffered MQTT messages in mqtt_queue: %s",
			 err == ILA_ERR_NOMEM ? "out of memory" : store_errmsg(st));
	return err;
}
