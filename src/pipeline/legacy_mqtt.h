/* Conversion of the MQTT messages ilagent 0.9.0 left in mqtt_queue into queued items (SPEC
 * §16.7): MQTT classification and mapping, dedup, original acceptance time, one transaction
 * per batch. Runs once at daemon start on the starting thread, before the pipeline exists. */
#ifndef ILAGENT_PIPELINE_LEGACY_MQTT_H
#define ILAGENT_PIPELINE_LEGACY_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "cli/config.h"
#include "store/db.h"

/* Rows converted per transaction. */
#define LEGACY_MQTT_BATCH 500

struct legacy_mqtt_counts {
	int64_t found;      /* rows in mqtt_queue before the conversion */
	int64_t committed;  /* items committed (events, heartbeats, policy updates) */
	int64_t duplicates; /* events dropped as duplicates (row deleted) */
	int64_t rejected;   /* invalid or too large (row deleted) */
	int64_t filtered;   /* dropped by the filter (row deleted) */
	int64_t unmatched;  /* topic matches no configured topic option (row kept) */
	int64_t remaining;  /* rows left in mqtt_queue */
};

/* Converts every row of mqtt_queue that the configured topic options classify, in order of
 * inserted_at, LEGACY_MQTT_BATCH rows per transaction, and logs the outcome (the warnings of
 * §16.7 for rows left in place). counts may be NULL. Returns 0, or a negative ila_err with
 * the reason in msg ("Failed to convert the buffered MQTT messages in mqtt_queue: ..."); the
 * batches committed before the failure stay committed. */
int legacy_mqtt_convert(const struct config *cfg, struct store *st,
			struct legacy_mqtt_counts *counts, char *msg, size_t msg_size);

#endif
