/* The mqtt_queue table that ilagent 0.9.0 buffered MQTT messages in (SPEC §16.3 mig_5,
 * §16.7): reading its rows in acceptance order and deleting converted ones. Nothing new is
 * ever written to it. Same threading rule as the connection (db.h): one thread at a time. */
#ifndef ILAGENT_STORE_LEGACY_H
#define ILAGENT_STORE_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

/* One buffered message. Strings are heap copies owned by the row. */
struct store_mqtt_row {
	char *id;
	char *topic;
	char *payload; /* NUL-terminated; payload_len bytes */
	size_t payload_len;
	char *inserted_at; /* NULL for SQL NULL */
};

struct store_mqtt_rows {
	struct store_mqtt_row *rows;
	size_t count;
};

/* Frees the rows and the array; the list is empty afterwards. */
void store_mqtt_rows_free(struct store_mqtt_rows *list);

/* Rows in mqtt_queue. */
int store_mqtt_queue_count(struct store *st, int64_t *count);
/* Rows in order of inserted_at, then rowid, leaving out the first skip of that order (rows
 * kept back on purpose), at most limit. */
int store_mqtt_queue_page(struct store *st, int64_t skip, size_t limit,
			  struct store_mqtt_rows *out);
/* Deletes one row by id (inside the open transaction, if any); a missing id is not an
 * error. */
int store_mqtt_queue_delete(struct store *st, const char *id);

#endif
