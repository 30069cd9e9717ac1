/* ilagent-load: an HTTP load generator for POST /api/events and POST /api/events/batch.
 * One libcurl multi loop drives --connections keep-alive transfers, either as fast as the
 * server answers (closed loop) or at a fixed --rate (open loop). In fixed-rate mode every
 * request has an intended send time and its latency is measured from that instant, so a
 * stalled server is charged for the requests it kept from being sent (no coordinated
 * omission). */
#include "args.h"
#include "body.h"
#include "hist.h"

#include "core/clock.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
#define MAX_BATCH 1000
#define STATUS_SLOTS 600 /* index 0 counts transport errors */

static const char usage_text[] =
	"Usage: ilagent-load [OPTIONS]\n"
	"\n"
	"Sends events to an ilagent HTTP intake (POST /api/events, or /api/events/batch with\n"
	"--batch) over keep-alive connections and reports throughput, status counts and\n"
	"latency percentiles.\n"
	"\n"
	"Options:\n"
	"  --url URL            server base URL (default http://127.0.0.1:8977)\n"
	"  --connections N      concurrent keep-alive connections (default 64)\n"
	"  --rate R             open loop: start R requests per second, latency measured from\n"
	"                       each request's intended send time (default: as fast as possible,\n"
	"                       latency from the actual send time)\n"
	"  --duration S         stop starting requests after S seconds (default 10)\n"
	"  --requests N         stop after N requests (with --duration: whichever comes first)\n"
	"  --batch N            POST /api/events/batch with N events per request (1-1000)\n"
	"  --distinct-keys      every event carries its own alertKey\n"
	"  --keys K             cycle through K alertKeys\n"
	"                       (neither: events without alertKey)\n"
	"  --size BYTES         approximate size of one event (default 400)\n"
	"  --token T            send Authorization: Bearer T\n"
	"  --integration-key K  integrationKey of the events (default bench-integration-key)\n"
	"  --timeout S          per-request timeout in seconds (default 30)\n"
	"  --json               print the summary as one JSON object\n"
	"  --help               show this text\n"
	"\n"
	"A live progress line is printed each second when stdout is a terminal.\n";

struct load_opts {
	const char *url;
	int connections;
	double rate; /* 0 = as fast as possible */
	double duration_s;
	bool duration_given;
	uint64_t requests; /* 0 = no limit */
	int batch;         /* 0 = single events */
	enum body_keys keys;
	unsigned key_count;
	size_t size;
	const char *token;
	const char *integration_key;
	double timeout_s;
	bool json;
};

struct slot {
	CURL *easy;
	char *body;
	size_t body_cap;
	int64_t start_ns; /* intended (fixed rate) or actual (max rate) send time */
	bool busy;
};

struct run {
	const struct load_opts *o;
	struct body_gen gen;
	char target[512];
	CURLM *multi;
	struct curl_slist *headers;
	struct slot *slots;
	int free_count;
	int in_flight;
	/* counters */
	uint64_t started;
	uint64_t completed;
	uint64_t ok;
	uint64_t status[STATUS_SLOTS];
	char first_error[CURL_ERROR_SIZE];
	int64_t max_lag_ns; /* fixed rate: latest start behind the schedule */
	struct hist *latency;
	/* time */
	int64_t t0_ns;
	int64_t last_done_ns;
	int timer_fd;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("ilagent-load: error: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'ilagent-load --help'.\n", stderr);
	return 2;
}

/* Returns -1 to continue, otherwise the exit code. */
static int parse_args(int argc, char **argv, struct load_opts *o)
{
	enum {
		OPT_URL = 1, OPT_CONNECTIONS, OPT_RATE, OPT_DURATION, OPT_REQUESTS, OPT_BATCH,
		OPT_DISTINCT, OPT_KEYS, OPT_SIZE, OPT_TOKEN, OPT_IKEY, OPT_TIMEOUT, OPT_JSON,
		OPT_HELP,
	};
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, OPT_URL },
		{ "connections", required_argument, NULL, OPT_CONNECTIONS },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "requests", required_argument, NULL, OPT_REQUESTS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "distinct-keys", no_argument, NULL, OPT_DISTINCT },
		{ "keys", required_argument, NULL, OPT_KEYS },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "token", required_argument, NULL, OPT_TOKEN },
		{ "integration-key", required_argument, NULL, OPT_IKEY },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->url = "http://127.0.0.1:8977";
	o->connections = 64;
	o->duration_s = 10.0;
	o->size = 400;
	o->integration_key = "bench-integration-key";
	o->timeout_s = 30.0;
	bool distinct = false, cycle = false;
	uint64_t v;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_URL:
			if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
				return usage_error("--url '%s' must start with http:// or https://",
						   optarg);
			o->url = optarg;
			break;
		case OPT_CONNECTIONS:
			if (!bench_parse_u64(optarg, 1, 10000, &v))
				return usage_error("invalid --connections '%s' (1-10000)", optarg);
			o->connections = (int)v;
			break;
		case OPT_RATE:
			if (!bench_parse_pos_double(optarg, 1e7, &o->rate))
				return usage_error("invalid --rate '%s' (> 0 requests per second)", optarg);
			break;
		case OPT_DURATION:
			if (!bench_parse_pos_double(optarg, 86400.0, &o->duration_s))
				return usage_error("invalid --duration '%s' (seconds > 0)", optarg);
			o->duration_given = true;
			break;
		case OPT_REQUESTS:
			if (!bench_parse_u64(optarg, 1, UINT64_MAX / 2, &o->requests))
				return usage_error("invalid --requests '%s' (>= 1)", optarg);
			break;
		case OPT_BATCH:
			if (!bench_parse_u64(optarg, 1, MAX_BATCH, &v))
				return usage_error("invalid --batch '%s' (1-1000)", optarg);
			o->batch = (int)v;
			break;
		case OPT_DISTINCT:
			distinct = true;
			break;
		case OPT_KEYS:
			if (!bench_parse_u64(optarg, 1, UINT32_MAX, &v))
				return usage_error("invalid --keys '%s' (>= 1)", optarg);
			o->key_count = (unsigned)v;
			cycle = true;
			break;
		case OPT_SIZE:
			if (!bench_parse_u64(optarg, 1, 64 * 1024 * 1024, &v))
				return usage_error("invalid --size '%s' (1-67108864)", optarg);
			o->size = (size_t)v;
			break;
		case OPT_TOKEN:
			o->token = optarg;
			break;
		case OPT_IKEY:
			o->integration_key = optarg;
			break;
		case OPT_TIMEOUT:
			if (!bench_parse_pos_double(optarg, 3600.0, &o->timeout_s))
				return usage_error("invalid --timeout '%s' (seconds > 0)", optarg);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_HELP:
			fputs(usage_text, stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (distinct && cycle)
		return usage_error("%s", "--distinct-keys and --keys exclude each other");
	o->keys = distinct ? BODY_KEYS_DISTINCT : cycle ? BODY_KEYS_CYCLE : BODY_KEYS_NONE;
	return -1;
}

/* ---- transfers ---- */

static size_t discard_body(char *data, size_t size, size_t nmemb, void *user)
{
	(void)data;
	(void)user;
	return size * nmemb;
}

static int slot_init(struct run *r, struct slot *s)
{
	size_t events = r->o->batch ? (size_t)r->o->batch : 1;
	s->body_cap = (r->o->batch ? body_batch_len(&r->gen, events) : r->gen.event_len) + 1;
	s->body = malloc(s->body_cap);
	s->easy = curl_easy_init();
	if (!s->body || !s->easy)
		return -1;
	CURL *e = s->easy;
	curl_easy_setopt(e, CURLOPT_URL, r->target);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->o->timeout_s * 1000.0));
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* a load test never goes through a proxy */
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	return 0;
}

static void slot_start(struct run *r, struct slot *s, int64_t start_ns)
{
	size_t events = r->o->batch ? (size_t)r->o->batch : 1;
	uint64_t first = r->started * events;
	size_t len = r->o->batch ? body_batch_write(&r->gen, first, events, s->body)
				 : body_event_write(&r->gen, first, s->body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	s->start_ns = start_ns;
	s->busy = true;
	r->free_count--;
	r->in_flight++;
	r->started++;
	curl_multi_add_handle(r->multi, s->easy);
}

static struct slot *free_slot(struct run *r)
{
	if (r->free_count == 0)
		return NULL;
	for (int i = 0; i < r->o->connections; i++)
		if (!r->slots[i].busy)
			return &r->slots[i];
	return NULL;
}

static void transfer_done(struct run *r, CURLMsg *msg, int64_t now_ns)
{
	char *priv = NULL;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
	struct slot *s = (struct slot *)(void *)priv;
	long code = 0;
	if (msg->data.result == CURLE_OK)
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
	else if (!r->first_error[0])
		snprintf(r->first_error, sizeof(r->first_error), "%s",
			 curl_easy_strerror(msg->data.result));
	if (code < 0 || code >= STATUS_SLOTS)
		code = 0;
	r->status[code]++;
	if (code >= 200 && code < 300)
		r->ok++;
	r->completed++;
	hist_record(r->latency, (uint64_t)(now_ns > s->start_ns ? now_ns - s->start_ns : 0));
	r->last_done_ns = now_ns;
	curl_multi_remove_handle(r->multi, s->easy);
	s->busy = false;
	r->free_count++;
	r->in_flight--;
}

static void collect_done(struct run *r)
{
	CURLMsg *msg;
	int left;
	int64_t now = clock_mono_ns();
	while ((msg = curl_multi_info_read(r->multi, &left)))
		if (msg->msg == CURLMSG_DONE)
			transfer_done(r, msg, now);
}

/* ---- scheduling ---- */

static bool may_start_more(const struct run *r, int64_t send_ns)
{
	if (interrupted)
		return false;
	if (r->o->requests && r->started >= r->o->requests)
		return false;
	bool duration_applies = r->o->duration_given || !r->o->requests;
	if (duration_applies && send_ns - r->t0_ns >= (int64_t)(r->o->duration_s * NS_PER_S))
		return false;
	return true;
}

static int64_t intended_ns(const struct run *r, uint64_t index)
{
	/* From the rate itself, not a rounded interval, so R req/s for S s is R*S requests. */
	return r->t0_ns + (int64_t)llround((double)index * (double)NS_PER_S / r->o->rate);
}

/* Starts every request that is due and has a free connection. Returns false when no
 * further request will ever start. */
static bool start_due(struct run *r, int64_t now_ns)
{
	for (;;) {
		int64_t send = r->o->rate > 0 ? intended_ns(r, r->started) : now_ns;
		if (!may_start_more(r, send))
			return false;
		if (send > now_ns)
			return true;
		struct slot *s = free_slot(r);
		if (!s)
			return true;
		if (r->o->rate > 0 && now_ns - send > r->max_lag_ns)
			r->max_lag_ns = now_ns - send;
		slot_start(r, s, send);
	}
}

/* Arms the timer for the next intended send time (fixed rate with a free connection). */
static void arm_timer(struct run *r)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (r->o->rate > 0 && r->free_count > 0) {
		int64_t at = intended_ns(r, r->started);
		if (at <= 0)
			at = 1;
		its.it_value.tv_sec = at / NS_PER_S;
		its.it_value.tv_nsec = at % NS_PER_S;
	}
	timerfd_settime(r->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---- output ---- */

static double ms(uint64_t ns)
{
	return (double)ns / (double)NS_PER_MS;
}

static void print_progress(const struct run *r, int64_t now_ns, uint64_t *last_completed,
			   int64_t *last_ns)
{
	double secs = (double)(now_ns - *last_ns) / (double)NS_PER_S;
	double rate = secs > 0 ? (double)(r->completed - *last_completed) / secs : 0.0;
	printf("\r[%5.1fs] %" PRIu64 " done  %.0f req/s  in flight %d  non-2xx %" PRIu64
	       "  p99 %.2f ms\033[K",
	       (double)(now_ns - r->t0_ns) / (double)NS_PER_S, r->completed, rate, r->in_flight,
	       r->completed - r->ok, ms(hist_quantile(r->latency, 0.99)));
	fflush(stdout);
	*last_completed = r->completed;
	*last_ns = now_ns;
}

static const char *keys_text(const struct load_opts *o, char *buf, size_t size)
{
	switch (o->keys) {
	case BODY_KEYS_DISTINCT:
		return "distinct alertKeys";
	case BODY_KEYS_CYCLE:
		snprintf(buf, size, "%u alertKeys", o->key_count);
		return buf;
	case BODY_KEYS_NONE:
		break;
	}
	return "no alertKey";
}

struct summary {
	double elapsed_s;
	double rps;
	double eps;
	uint64_t events_ok;
	uint64_t p50, p90, p99, p999, max;
	double mean;
};

static void summarize(const struct run *r, struct summary *sum)
{
	int64_t end = r->last_done_ns > r->t0_ns ? r->last_done_ns : clock_mono_ns();
	sum->elapsed_s = (double)(end - r->t0_ns) / (double)NS_PER_S;
	uint64_t per = r->o->batch ? (uint64_t)r->o->batch : 1;
	sum->events_ok = r->ok * per;
	sum->rps = sum->elapsed_s > 0 ? (double)r->completed / sum->elapsed_s : 0.0;
	sum->eps = sum->elapsed_s > 0 ? (double)sum->events_ok / sum->elapsed_s : 0.0;
	sum->p50 = hist_quantile(r->latency, 0.50);
	sum->p90 = hist_quantile(r->latency, 0.90);
	sum->p99 = hist_quantile(r->latency, 0.99);
	sum->p999 = hist_quantile(r->latency, 0.999);
	sum->max = r->latency->total ? r->latency->max : 0;
	sum->mean = hist_mean(r->latency);
}

static void print_text(const struct run *r, const struct summary *sum)
{
	const struct load_opts *o = r->o;
	char kb[32];
	printf("target      %s\n", r->target);
	if (o->batch)
		printf("body        batches of %d events of %zu bytes, %s\n", o->batch,
		       r->gen.event_len, keys_text(o, kb, sizeof(kb)));
	else
		printf("body        single events of %zu bytes, %s\n", r->gen.event_len,
		       keys_text(o, kb, sizeof(kb)));
	if (o->rate > 0)
		printf("mode        fixed rate %.0f req/s, %d connections\n", o->rate,
		       o->connections);
	else
		printf("mode        max rate, %d connections\n", o->connections);
	printf("elapsed     %.2f s\n", sum->elapsed_s);
	printf("requests    %" PRIu64 " completed, %" PRIu64 " 2xx, %" PRIu64 " other\n",
	       r->completed, r->ok, r->completed - r->ok);
	printf("status     ");
	for (int code = 1; code < STATUS_SLOTS; code++)
		if (r->status[code])
			printf(" %d: %" PRIu64, code, r->status[code]);
	if (r->status[0])
		printf(" transport error: %" PRIu64 " (%s)", r->status[0], r->first_error);
	printf("\n");
	printf("throughput  %.1f req/s, %.1f events/s accepted\n", sum->rps, sum->eps);
	printf("latency     p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms"
	       "  mean %.3f ms\n",
	       ms(sum->p50), ms(sum->p90), ms(sum->p99), ms(sum->p999), ms(sum->max),
	       sum->mean / (double)NS_PER_MS);
	if (o->rate > 0)
		printf("            measured from each request's intended send time; latest "
		       "start %.3f ms behind schedule\n", ms((uint64_t)r->max_lag_ns));
	else
		printf("            measured from each request's actual send time\n");
}

static void print_json(const struct run *r, const struct summary *sum)
{
	const struct load_opts *o = r->o;
	printf("{\"target\":\"%s\",\"mode\":\"%s\",\"rate\":%.3f,\"connections\":%d,"
	       "\"batch\":%d,\"event_bytes\":%zu,\"keys\":\"%s\",\"key_count\":%u,"
	       "\"elapsed_s\":%.3f,\"requests\":%" PRIu64 ",\"ok\":%" PRIu64
	       ",\"other\":%" PRIu64 ",\"events_ok\":%" PRIu64 ",\"status\":{",
	       r->target, o->rate > 0 ? "rate" : "max", o->rate, o->connections, o->batch,
	       r->gen.event_len,
	       o->keys == BODY_KEYS_DISTINCT ? "distinct" : o->keys == BODY_KEYS_CYCLE ? "cycle"
										   : "none",
	       o->keys == BODY_KEYS_CYCLE ? o->key_count : 0, sum->elapsed_s, r->completed, r->ok,
	       r->completed - r->ok, sum->events_ok);
	bool first = true;
	for (int code = 1; code < STATUS_SLOTS; code++) {
		if (!r->status[code])
			continue;
		printf("%s\"%d\":%" PRIu64, first ? "" : ",", code, r->status[code]);
		first = false;
	}
	if (r->status[0])
		printf("%s\"error\":%" PRIu64, first ? "" : ",", r->status[0]);
	printf("},\"requests_per_s\":%.1f,\"events_per_s\":%.1f,\"latency_ms\":{\"p50\":%.3f,"
	       "\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f},"
	       "\"latency_from\":\"%s\",\"max_schedule_lag_ms\":%.3f}\n",
	       sum->rps, sum->eps, ms(sum->p50), ms(sum->p90), ms(sum->p99), ms(sum->p999),
	       ms(sum->max), sum->mean / (double)NS_PER_MS, o->rate > 0 ? "intended" : "actual",
	       ms((uint64_t)r->max_lag_ns));
}

/* ---- the loop ---- */

static int run_setup(struct run *r, const struct load_opts *o)
{
	memset(r, 0, sizeof(*r));
	r->o = o;
	r->timer_fd = -1;
	if (body_gen_init(&r->gen, o->integration_key, o->keys, o->key_count, o->size, NULL,
			  false) != 0) {
		fprintf(stderr, "ilagent-load: error: invalid --integration-key\n");
		return -1;
	}
	size_t base_len = strlen(o->url);
	while (base_len > 0 && o->url[base_len - 1] == '/')
		base_len--;
	snprintf(r->target, sizeof(r->target), "%.*s%s", (int)base_len, o->url,
		 o->batch ? "/api/events/batch" : "/api/events");
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* Without this curl waits for "100 Continue" before sending bodies above 1 KiB. */
	r->headers = curl_slist_append(r->headers, "Expect:");
	if (o->token) {
		char auth[1024];
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
		r->headers = curl_slist_append(r->headers, auth);
	}
	r->latency = hist_create();
	r->multi = curl_multi_init();
	r->slots = calloc((size_t)o->connections, sizeof(*r->slots));
	r->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!r->headers || !r->latency || !r->multi || !r->slots || r->timer_fd < 0) {
		fprintf(stderr, "ilagent-load: error: out of memory or descriptors\n");
		return -1;
	}
	curl_multi_setopt(r->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->connections);
	curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->connections);
	curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)o->connections);
	for (int i = 0; i < o->connections; i++) {
		if (slot_init(r, &r->slots[i]) != 0) {
			fprintf(stderr, "ilagent-load: error: out of memory\n");
			return -1;
		}
	}
	r->free_count = o->connections;
	return 0;
}

static void run_teardown(struct run *r)
{
	if (r->slots) {
		for (int i = 0; i < r->o->connections; i++) {
			if (r->slots[i].easy) {
				if (r->slots[i].busy)
					curl_multi_remove_handle(r->multi, r->slots[i].easy);
				curl_easy_cleanup(r->slots[i].easy);
			}
			free(r->slots[i].body);
		}
		free(r->slots);
	}
	if (r->multi)
		curl_multi_cleanup(r->multi);
	if (r->timer_fd >= 0)
		close(r->timer_fd);
	hist_destroy(r->latency);
	curl_slist_free_all(r->headers);
	body_gen_free(&r->gen);
}

static void run_loop(struct run *r)
{
	bool live = !r->o->json && isatty(STDOUT_FILENO);
	r->t0_ns = clock_mono_ns();
	int64_t next_progress = r->t0_ns + NS_PER_S;
	uint64_t last_completed = 0;
	int64_t last_progress = r->t0_ns;
	bool printed = false;
	bool more = true;
	for (;;) {
		int64_t now = clock_mono_ns();
		if (more)
			more = start_due(r, now);
		if (!more && r->in_flight == 0)
			break;
		int running = 0;
		curl_multi_perform(r->multi, &running);
		collect_done(r);
		if (more)
			more = start_due(r, clock_mono_ns());
		if (!more && r->in_flight == 0)
			break;
		now = clock_mono_ns();
		if (live && now >= next_progress) {
			print_progress(r, now, &last_completed, &last_progress);
			printed = true;
			next_progress += NS_PER_S;
		}
		if (more)
			arm_timer(r);
		int64_t wait_ns = next_progress - now;
		int timeout_ms = wait_ns <= 0 ? 0 : (int)((wait_ns + NS_PER_MS - 1) / NS_PER_MS);
		if (timeout_ms > 1000)
			timeout_ms = 1000;
		struct curl_waitfd extra = { .fd = r->timer_fd, .events = CURL_WAIT_POLLIN };
		curl_multi_poll(r->multi, &extra, 1, timeout_ms, NULL);
		uint64_t expirations;
		ssize_t got = read(r->timer_fd, &expirations, sizeof(expirations));
		(void)got;
	}
	if (printed) {
		printf("\r\033[K");
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	struct load_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "ilagent-load: error: libcurl initialisation failed\n");
		return 1;
	}
	struct run r;
	rc = 1;
	if (run_setup(&r, &o) == 0) {
		run_loop(&r);
		struct summary sum;
		summarize(&r, &sum);
		if (o.json)
			print_json(&r, &sum);
		else
			print_text(&r, &sum);
		/* Exit 0 only when something was answered, so scripts notice a dead target. */
		rc = r.ok > 0 ? 0 : 1;
	}
	run_teardown(&r);
	curl_global_cleanup();
	return rc;
}
