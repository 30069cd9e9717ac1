/* `ilagent daemon` (SPEC §20): startup, the main loop (signals, readiness and gauges, the
 * drain-only mode) and the ordered shutdown. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/err.h"
#include "ilert/client.h"
#include "ilert/pinger.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "ops/readiness.h"
#include "pipeline/legacy_mqtt.h"
#include "pipeline/pipeline.h"
#include "sources/http.h"
#include "store/db.h"
#include "store/queue.h"
#include "version.h"

#define TICK_MS 100
#define GAUGE_RECOUNT_MS 10000
#define GAUGE_RETRY_MS 1000

struct daemon {
	const struct config *cfg;
	struct store_lock *lock;
	struct store *stats; /* main thread's own connection for the gauge recount */
	struct pipeline *pipeline;
	struct http_source *http;
	struct pinger *pinger;
	pthread_t signal_thread;
	bool signal_thread_running;
	atomic_int signals; /* SIGINT/SIGTERM received */
	atomic_int first_signal;
	sigset_t handled;
	int64_t oldest_accepted_at; /* Unix ms, 0 = queue empty */
	int recount_misses;         /* recounts in a row overtaken by a commit */
};

/* Signals are blocked in every thread and taken here, so a second signal can cut the
 * shutdown short while the main thread waits for forwarders (§20.3). SIGUSR2 ends it. */
static void *signal_main(void *arg)
{
	struct daemon *d = arg;
	for (;;) {
		int sig;
		if (sigwait(&d->handled, &sig) != 0)
			continue;
		if (sig == SIGUSR2)
			return NULL;
		if (sig == SIGHUP) {
			log_info("main", "SIGHUP ignored (TLS files are reloaded automatically)");
			continue;
		}
		if (atomic_fetch_add(&d->signals, 1) == 0)
			atomic_store(&d->first_signal, sig);
		else
			pipeline_abandon(d->pipeline);
		pipeline_wake(d->pipeline);
	}
}

/* The first connection checks and migrates the file; the others only attach to it. */
static int open_store(const struct config *cfg, enum store_mode mode, struct store **out,
		      char *msg, size_t size)
{
	struct store_options opts = {
		.path = cfg->file, .mode = mode,
		.sync_normal = cfg->db_sync == DB_SYNC_NORMAL,
	};
	return store_open(&opts, out, msg, size);
}

/* True when the gauges were re-counted. Between recounts persist keeps them current. */
static bool recount_gauges(struct daemon *d)
{
	struct store_stats s;
	int64_t generation = pipeline_gauge_generation(d->pipeline);
	if (!d->stats || store_stats_read(d->stats, &s) != 0)
		return false;
	metrics_set_legacy_rows(s.legacy_mqtt_queue);
	/* Under steady load commits keep coming: after a few tries the counts win anyway. */
	if (!pipeline_recount(d->pipeline, &s, d->recount_misses >= 4 ? -1 : generation)) {
		d->recount_misses++;
		return false;
	}
	d->recount_misses = 0;
	d->oldest_accepted_at = s.has_oldest ? s.oldest_accepted_at : 0;
	return true;
}

/* The age of the oldest item: from the last recount while rows remain; a queue seen empty
 * has no age, and one that filled up since counts from when that was first seen. */
static void update_oldest_age(struct daemon *d)
{
	int64_t now = clock_now_ms();
	if (pipeline_queued(d->pipeline) <= 0)
		d->oldest_accepted_at = 0;
	else if (!d->oldest_accepted_at)
		d->oldest_accepted_at = now;
	metrics_set_oldest_age(d->oldest_accepted_at ? (double)(now - d->oldest_accepted_at) / 1000.0
						     : 0.0);
}

static void sync_state(struct daemon *d)
{
	struct pipeline *p = d->pipeline;
	char err[300] = "";
	bool failing = pipeline_store_failing(p, err, sizeof(err));
	bool paused = pipeline_intake_state(p) == INTAKE_PAUSED;
	readiness_queue_set(paused, failing ? err : NULL, pipeline_queued(p), d->cfg->max_queue);
	metrics_set_component(MCOMP_DAEMON, 1, !readiness_shutting_down());
	metrics_set_component(MCOMP_QUEUE, 1, !paused && !failing);
	metrics_set_ring_fill(MRING_INTAKE, pipeline_intake_fill(p));
}

/* The MQTT and Kafka consumers are not part of this build yet. Their options are validated
 * like every other, but nothing would consume: say so loudly and keep /ready at 503 for
 * them, so a health check notices instead of alerts being silently not read. */
static void report_missing_consumers(const struct config *cfg)
{
	static const char text[] = "not available in this build";
	if (cfg->mqtt_host) {
		readiness_mqtt_enable();
		readiness_mqtt_set(false, false, "MQTT consumer not available in this build");
		metrics_set_component(MCOMP_MQTT, 1, 0);
		log_error("mqtt", "the MQTT consumer is %s: nothing is consumed from %s", text,
			  cfg->mqtt_host);
	}
	if (cfg->kafka_brokers) {
		readiness_kafka_enable();
		readiness_kafka_set(false, false, false, "Kafka consumer not available in this build");
		metrics_set_component(MCOMP_KAFKA, 1, 0);
		log_error("kafka", "the Kafka consumer is %s: nothing is consumed from %s", text,
			  cfg->kafka_brokers);
	}
}

static bool has_intake(const struct config *cfg)
{
	return cfg->http_enabled || cfg->heartbeat_key || cfg->mqtt_host || cfg->kafka_brokers;
}

static void log_started(const struct daemon *d)
{
	const struct config *cfg = d->cfg;
	char http[128] = "";
	if (cfg->http_enabled)
		snprintf(http, sizeof(http), ", http %s%s%s:%d", strchr(cfg->bind, ':') ? "[" : "",
			 cfg->bind, strchr(cfg->bind, ':') ? "]" : "", cfg->port);
	log_info("main", "ilagent %s started (forwarders %d%s%s%s)", ILAGENT_VERSION,
		 cfg->forwarders, http, cfg->heartbeat_key ? ", pinger" : "",
		 has_intake(cfg) ? "" : ", delivering the queue and exiting when empty");
}

/* Runs until a signal, a fatal error, or (without intake) an empty queue. */
static void main_loop(struct daemon *d)
{
	int64_t next_recount = 0;
	bool drain_only = !has_intake(d->cfg);
	for (;;) {
		if (atomic_load(&d->signals) || pipeline_fatal(d->pipeline, NULL, 0))
			return;
		if (drain_only && pipeline_idle(d->pipeline))
			return;
		int64_t now = clock_mono_ms();
		sync_state(d);
		if (now >= next_recount)
			next_recount = now + (recount_gauges(d) ? GAUGE_RECOUNT_MS : GAUGE_RETRY_MS);
		update_oldest_age(d);
		pipeline_wait_event(d->pipeline, TICK_MS);
	}
}

static void shutdown_daemon(struct daemon *d)
{
	int sig = atomic_load(&d->first_signal);
	if (sig)
		log_info("main", "Received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	readiness_set_shutting_down();
	metrics_set_component(MCOMP_DAEMON, 1, 0);
	pipeline_close_intake(d->pipeline);
	pinger_stop(d->pinger);
	d->pinger = NULL;
	pipeline_drain(d->pipeline);
	pipeline_stop_delivery(d->pipeline, d->cfg->shutdown_timeout * 1000);
	http_source_stop(d->http);
	d->http = NULL;
}

static void release(struct daemon *d)
{
	http_source_stop(d->http);
	pinger_stop(d->pinger);
	/* The signal thread wakes and abandons the pipeline: it must be gone before the
	 * pipeline is freed. Signals arriving from now on stay blocked and pending. */
	if (d->signal_thread_running) {
		pthread_kill(d->signal_thread, SIGUSR2);
		pthread_join(d->signal_thread, NULL);
		d->signal_thread_running = false;
	}
	pipeline_destroy(d->pipeline); /* closes the writer and reader connections */
	store_close(d->stats);
	store_lock_release(d->lock);
	ilert_global_cleanup();
}

int cmd_daemon_run(const struct config *cfg)
{
	struct daemon d = { .cfg = cfg };
	char msg[STORE_MSG_SIZE];
	struct store *writer = NULL, *reader = NULL;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&d.handled);
	sigaddset(&d.handled, SIGINT);
	sigaddset(&d.handled, SIGTERM);
	sigaddset(&d.handled, SIGHUP);
	sigaddset(&d.handled, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &d.handled, NULL);
	metrics_init();
	readiness_init();
	if (ilert_global_init() != 0) {
		log_fatal_line("could not initialise the HTTP client library");
		return 1;
	}

	if (store_lock_acquire(cfg->file, &d.lock, msg, sizeof(msg)) != 0 ||
	    open_store(cfg, STORE_MODE_DAEMON, &writer, msg, sizeof(msg)) != 0 ||
	    open_store(cfg, STORE_MODE_ATTACH, &reader, msg, sizeof(msg)) != 0 ||
	    open_store(cfg, STORE_MODE_ATTACH, &d.stats, msg, sizeof(msg)) != 0) {
		store_close(writer);
		store_close(reader);
		release(&d);
		log_fatal_line("%s", msg);
		return 1;
	}
	/* §16.7: messages 0.9.0 left in mqtt_queue become queued items before anything starts. */
	if (legacy_mqtt_convert(cfg, writer, NULL, msg, sizeof(msg)) != 0) {
		store_close(writer);
		store_close(reader);
		release(&d);
		log_fatal_line("%s", msg);
		return 1;
	}
	d.pipeline = pipeline_create(cfg, writer, reader);
	if (!d.pipeline) {
		store_close(writer);
		store_close(reader);
		release(&d);
		log_fatal_line("could not set up the pipeline");
		return 1;
	}
	if (pthread_create(&d.signal_thread, NULL, signal_main, &d) == 0)
		d.signal_thread_running = true;
	if (pipeline_start(d.pipeline) != 0) {
		release(&d);
		log_fatal_line("could not start the pipeline");
		return 1;
	}
	if (cfg->http_enabled) {
		struct intake in = pipeline_intake(d.pipeline);
		if (http_source_start(cfg, &in, &d.http, msg, sizeof(msg)) != 0) {
			pipeline_drain(d.pipeline);
			pipeline_stop_delivery(d.pipeline, 0);
			release(&d);
			log_fatal_line("%s", msg);
			return 1;
		}
	}
	if (cfg->heartbeat_key)
		d.pinger = pinger_start(cfg);
	report_missing_consumers(cfg);
	sync_state(&d);
	log_started(&d);

	main_loop(&d);
	char fatal[300];
	bool failed = pipeline_fatal(d.pipeline, fatal, sizeof(fatal));
	shutdown_daemon(&d);
	release(&d);
	if (failed) {
		log_fatal_line("%s", fatal);
		return 1;
	}
	return 0;
}
