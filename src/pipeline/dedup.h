/* Deduplication (SPEC §9): remembers, per ordering key, the event type and content hash of the
 * last accepted event and its acceptance time (at most max_keys keys, least recently used
 * evicted). Checks run in acceptance order; entries become state only after their commit.
 * Owned by the persist thread: one thread only. */
#ifndef ILAGENT_PIPELINE_DEDUP_H
#define ILAGENT_PIPELINE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/message.h"

struct dedup;

/* window_s 0 disables deduplication (dedup_check always false). NULL on out of memory. */
struct dedup *dedup_create(int window_s, size_t max_keys);
void dedup_destroy(struct dedup *d);

/* True when item duplicates the most recent accepted-or-staged event of its key inside the
 * window (§9). Items without order_key/dedup_content are never duplicates. */
bool dedup_check(struct dedup *d, const struct pending_item *item, int64_t now_ms);
/* Records item as accepted at now_ms, tentatively, so later items of the same transaction are
 * compared with it. Duplicates are never staged (a dropped duplicate does not extend the
 * window). */
void dedup_stage(struct dedup *d, const struct pending_item *item, int64_t now_ms);
/* The transaction committed: staged entries become state. */
void dedup_commit(struct dedup *d);
/* The transaction failed: staged entries are forgotten, the state is as before. */
void dedup_abort(struct dedup *d);

#endif
