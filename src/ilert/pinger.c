#include "ilert/pinger.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "ilert/client.h"
#include "ilert/heartbeat.h"
#include "ops/log.h"
#include "ops/metrics.h"

#define PINGER_INTERVAL_MS 30000

struct pinger {
	const struct config *cfg;
	struct ilert_client *client;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	atomic_int abort_flag;
};

static void ping_once(struct pinger *pg)
{
	struct ilert_result res;
	ilert_result_init(&res);
	int err = ilert_heartbeat_ping(pg->client, pg->cfg->heartbeat_key, true, &res);
	bool ok = !err && ilert_result_outcome(&res) == ILERT_OUTCOME_SUCCESS;
	metrics_heartbeat_ping(MP_PINGER, ok);
	if (ok)
		log_info("pinger", "Heartbeat ping successful");
	else
		ilert_heartbeat_log_failure("pinger", &res);
	ilert_result_free(&res);
}

static void *pinger_main(void *arg)
{
	struct pinger *pg = arg;
	int64_t next = clock_mono_ms();
	pthread_mutex_lock(&pg->lock);
	while (!pg->stopping) {
		int64_t now = clock_mono_ms();
		if (now >= next) {
			pthread_mutex_unlock(&pg->lock);
			ping_once(pg);
			pthread_mutex_lock(&pg->lock);
			next += PINGER_INTERVAL_MS;
			if (next <= now)
				next = now + PINGER_INTERVAL_MS;
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t wait = next - now;
		ts.tv_sec += wait / 1000;
		ts.tv_nsec += (wait % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pg->cond, &pg->lock, &ts);
	}
	pthread_mutex_unlock(&pg->lock);
	return NULL;
}

struct pinger *pinger_start(const struct config *cfg)
{
	struct pinger *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return NULL;
	pg->cfg = cfg;
	pg->client = ilert_client_create(cfg);
	if (!pg->client) {
		free(pg);
		return NULL;
	}
	ilert_client_set_abort(pg->client, &pg->abort_flag);
	pthread_mutex_init(&pg->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pg->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&pg->thread, NULL, pinger_main, pg) != 0) {
		ilert_client_destroy(pg->client);
		pthread_cond_destroy(&pg->cond);
		pthread_mutex_destroy(&pg->lock);
		free(pg);
		return NULL;
	}
	return pg;
}

void pinger_stop(struct pinger *pg)
{
	if (!pg)
		return;
	atomic_store(&pg->abort_flag, 1);
	pthread_mutex_lock(&pg->lock);
	pg->stopping = true;
	pthread_cond_signal(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
	pthread_join(pg->thread, NULL);
	ilert_client_destroy(pg->client);
	pthread_cond_destroy(&pg->cond);
	pthread_mutex_destroy(&pg->lock);
	free(pg);
}
