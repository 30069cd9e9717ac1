/* Liveness and readiness state (SPEC §18): components report their state here; the HTTP
 * server renders /health and /ready from it. Any thread may update or read (one mutex; not
 * on a hot path). */
#ifndef ILAGENT_OPS_READINESS_H
#define ILAGENT_OPS_READINESS_H

#include <stdbool.h>
#include <stdint.h>

void readiness_init(void);
void readiness_set_shutting_down(void);
bool readiness_shutting_down(void);

/* MQTT (§18 row 2). enabled marks the component as configured. */
void readiness_mqtt_enable(void);
void readiness_mqtt_set(bool connected, bool subscriptions_ready, const char *error);
/* Kafka (§18 row 3). */
void readiness_kafka_enable(void);
void readiness_kafka_set(bool consumer_started, bool subscribed, bool worker_exited,
			 const char *error);
/* Queue (§18 row 4): paused, or store failing with its error text (NULL when healthy). The
 * text is the `error` value as shown ("database error: disk I/O error"); paused wins and
 * shows "queue full". */
void readiness_queue_set(bool paused, const char *store_error, int64_t queued, int64_t max_queue);

/* 204 and *json NULL when ready; otherwise 503 and *json the body of the first failing row
 * (heap, keys in SPEC order, compact; NULL only when out of memory). Error texts are
 * carried with invalid UTF-8 replaced and cut at 1024 bytes. */
int readiness_render(char **json);
/* Per component readiness for the ilagent_component_ready gauge; component is an
 * enum metric_component (ops/metrics.h). A component that is not enabled counts as ready. */
bool readiness_component_ready(int component);

#endif
