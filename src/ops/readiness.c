#include "ops/readiness.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "ops/metrics.h"

/* Error texts come from libraries and peers; bound what a probe answer may carry. */
#define ERROR_TEXT_MAX 1024

struct readiness_state {
	bool shutting_down;

	bool mqtt_enabled;
	bool mqtt_connected;
	bool mqtt_subscriptions_ready;
	char *mqtt_error;

	bool kafka_enabled;
	bool kafka_consumer_started;
	bool kafka_subscribed;
	bool kafka_worker_exited;
	char *kafka_error;

	bool queue_paused;
	char *store_error;
	int64_t queued;
	int64_t max_queue;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct readiness_state st;

/* A JSON-safe copy: invalid UTF-8 would make jansson refuse the whole body. */
static char *error_dup(const char *error)
{
	if (!error || !*error)
		return NULL;
	return text_utf8_sanitize(error, strlen(error), ERROR_TEXT_MAX);
}

void readiness_init(void)
{
	pthread_mutex_lock(&lock);
	free(st.mqtt_error);
	free(st.kafka_error);
	free(st.store_error);
	memset(&st, 0, sizeof(st));
	pthread_mutex_unlock(&lock);
}

void readiness_set_shutting_down(void)
{
	pthread_mutex_lock(&lock);
	st.shutting_down = true;
	pthread_mutex_unlock(&lock);
}

bool readiness_shutting_down(void)
{
	pthread_mutex_lock(&lock);
	bool v = st.shutting_down;
	pthread_mutex_unlock(&lock);
	return v;
}

void readiness_mqtt_enable(void)
{
	pthread_mutex_lock(&lock);
	st.mqtt_enabled = true;
	pthread_mutex_unlock(&lock);
}

void readiness_mqtt_set(bool connected, bool subscriptions_ready, const char *error)
{
	char *copy = error_dup(error);
	pthread_mutex_lock(&lock);
	st.mqtt_connected = connected;
	st.mqtt_subscriptions_ready = subscriptions_ready;
	free(st.mqtt_error);
	st.mqtt_error = copy;
	pthread_mutex_unlock(&lock);
}

void readiness_kafka_enable(void)
{
	pthread_mutex_lock(&lock);
	st.kafka_enabled = true;
	pthread_mutex_unlock(&lock);
}

void readiness_kafka_set(bool consumer_started, bool subscribed, bool worker_exited,
			 const char *error)
{
	char *copy = error_dup(error);
	pthread_mutex_lock(&lock);
	st.kafka_consumer_started = consumer_started;
	st.kafka_subscribed = subscribed;
	st.kafka_worker_exited = worker_exited;
	free(st.kafka_error);
	st.kafka_error = copy;
	pthread_mutex_unlock(&lock);
}

void readiness_queue_set(bool paused, const char *store_error, int64_t queued, int64_t max_queue)
{
	char *copy = store_error ? error_dup(*store_error ? store_error : "database error") : NULL;
	pthread_mutex_lock(&lock);
	st.queue_paused = paused;
	free(st.store_error);
	st.store_error = copy;
	st.queued = queued;
	st.max_queue = max_queue;
	pthread_mutex_unlock(&lock);
}

/* The predicates below run with the lock held. */
static bool mqtt_ready(void)
{
	return st.mqtt_connected && st.mqtt_subscriptions_ready;
}

static bool kafka_ready(void)
{
	return st.kafka_consumer_started && st.kafka_subscribed && !st.kafka_worker_exited;
}

static bool queue_ready(void)
{
	return !st.queue_paused && !st.store_error;
}

static const char *text_or_empty(const char *s)
{
	return s ? s : "";
}

/* jansson keeps insertion order, which is the order §18 fixes. */
static json_t *failing_row(void)
{
	if (st.shutting_down)
		return json_pack("{s:s, s:s}", "component", "daemon", "error", "shutting down");
	if (st.mqtt_enabled && !mqtt_ready())
		return json_pack("{s:s, s:b, s:b, s:s}", "component", "mqtt", "connected",
				 st.mqtt_connected, "subscriptions_ready",
				 st.mqtt_subscriptions_ready, "error",
				 text_or_empty(st.mqtt_error));
	if (st.kafka_enabled && !kafka_ready())
		return json_pack("{s:s, s:b, s:b, s:b, s:s}", "component", "kafka",
				 "consumer_started", st.kafka_consumer_started, "subscribed",
				 st.kafka_subscribed, "worker_exited", st.kafka_worker_exited,
				 "error", text_or_empty(st.kafka_error));
	if (!queue_ready())
		return json_pack("{s:s, s:I, s:I, s:s}", "component", "queue", "queued",
				 (json_int_t)st.queued, "max_queue", (json_int_t)st.max_queue,
				 "error", st.queue_paused ? "queue full" : st.store_error);
	return NULL;
}

int readiness_render(char **json)
{
	*json = NULL;
	pthread_mutex_lock(&lock);
	bool ready = !st.shutting_down && (!st.mqtt_enabled || mqtt_ready()) &&
		     (!st.kafka_enabled || kafka_ready()) && queue_ready();
	json_t *row = ready ? NULL : failing_row();
	pthread_mutex_unlock(&lock);
	if (ready)
		return 204;
	if (row) {
		*json = json_dumps(row, JSON_COMPACT);
		json_decref(row);
	}
	return 503;
}

bool readiness_component_ready(int component)
{
	pthread_mutex_lock(&lock);
	bool ready = true;
	switch (component) {
	case MCOMP_DAEMON:
		ready = !st.shutting_down;
		break;
	case MCOMP_MQTT:
		ready = !st.mqtt_enabled || mqtt_ready();
		break;
	case MCOMP_KAFKA:
		ready = !st.kafka_enabled || kafka_ready();
		break;
	case MCOMP_QUEUE:
		ready = queue_ready();
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&lock);
	return ready;
}
