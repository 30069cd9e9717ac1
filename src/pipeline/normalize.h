/* Normalization (SPEC §7, §11): turns a raw message into pending items — parse the JSON once,
 * apply the consumer mapping rules, validate, normalize the alertKey, derive the ordering key
 * and the dedup content — or into a rejection with the exact §10.5 error text.
 * Pure functions over immutable rules: safe from any thread (the normalize stage calls them). */
#ifndef ILAGENT_PIPELINE_NORMALIZE_H
#define ILAGENT_PIPELINE_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/config.h"
#include "core/message.h"

/* Immutable consumer rules built from the config (topics, mapping, filter, policy options). */
struct normalize_rules;

/* protocol: SOURCE_MQTT or SOURCE_KAFKA (topic matching differs, §11.6); for SOURCE_HTTP
 * only the dedup flag matters. NULL on out of memory or an invalid regex (validated earlier). */
struct normalize_rules *normalize_rules_create(const struct config *cfg, enum source protocol);
void normalize_rules_destroy(struct normalize_rules *rules);

/* POST /api/events (§10.5): on success returns 0, fills *item (kind event, order_key,
 * dedup_content when the event has an alertKey) and sets *echo to the §7.4 echo (heap; echo
 * may be NULL when no echo is wanted). On a rejection returns ILA_ERR_INVALID and sets *error
 * to the exact `error` text of §10.5 ("Missing field 'summary'.", "Invalid JSON: ..." ...).
 * ILA_ERR_NOMEM (with *error NULL) when memory ran out. */
int normalize_http_event(const char *body, size_t len, struct pending_item *item, char **echo,
			 char **error);

/* POST /api/events/batch (§10.6): on success *items and *count hold every element in array
 * order (an empty array gives count 0). On a rejection *error holds the full text
 * ("Event at index 3: Missing field 'summary'." or "Request body must be a JSON array.") and
 * *index the element index (-1 when the body itself is wrong). */
int normalize_http_batch(const char *body, size_t len, struct pending_item **items,
			 size_t *count, char **error, int *index);

/* A consumer payload (§11): input checks, topic classification, mapping, validation.
 * Returns 0 with one item, or ILA_ERR_INVALID with *reason (invalid, too_large,
 * unmatched_topic, filtered) and a warning text in *error (heap, may be NULL). key may be
 * NULL (MQTT). The rejection warning is returned, not logged; the mapping warnings that do not
 * reject (a non-string value at a --map_key_* path, a Kafka key that is not UTF-8) are logged
 * here, rate-limited. ILA_ERR_NOMEM when memory ran out. */
int normalize_consumer(const struct normalize_rules *rules, const char *topic, const char *key,
		       const char *payload, size_t len, struct pending_item *item,
		       enum reject_reason *reason, char **error);

/* Normalizes msg in place according to its kind: fills msg->items on success (and for
 * MSG_HTTP_EVENT msg->ticket->echo) and returns true; on a rejection fills msg->ticket
 * (status, reject_reason, error, error_index) without completing it and returns false. The
 * warning of a rejected consumer message is logged here (rate-limited) and is also the ticket's
 * error. msg->source picks the event_api_path family of consumer events; rules->dedup (from
 * --dedup_window) decides whether dedup content is computed. Running out of memory rejects the
 * message with "Internal error occurred.". */
bool normalize_message(const struct normalize_rules *rules, struct message *msg);

#endif
