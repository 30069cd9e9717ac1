/* bench-micro: micro benchmarks of the hot paths — a mailbox hop between two threads, the
 * dedup check/stage/commit cycle, SQLite commit batches through the store API, and (when
 * built with it) normalizing a single HTTP event. Each benchmark runs several times and the
 * median is reported, because these machines are noisy. */
#include "body.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/event.h"
#include "core/mailbox.h"
#include "pipeline/dedup.h"
#include "store/db.h"
#include "store/queue.h"
#ifdef BENCH_HAVE_NORMALIZE
#include "pipeline/normalize.h"
#endif

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
/* Time-boxed benchmarks repeat their operation for at least this long per run. */
#define RUN_NS (300 * 1000000LL)

static const char usage_text[] =
	"Usage: bench-micro [--runs N] [--filter TEXT] [--tsv]\n"
	"\n"
	"Micro benchmarks of ilagent's hot paths; prints the median of N runs (default 5)\n"
	"in operations per second.\n"
	"\n"
	"  --runs N       runs per benchmark (default 5)\n"
	"  --filter TEXT  only benchmarks whose name contains TEXT\n"
	"  --tsv          name<TAB>median<TAB>unit lines instead of the table\n";

/* One run: returns operations per second, or a negative value on failure. */
typedef double (*bench_fn)(void *ctx);

struct bench {
	const char *name;
	const char *unit;
	bench_fn fn;
	void *ctx;
};

static double elapsed_rate(uint64_t ops, int64_t start_ns)
{
	int64_t ns = clock_mono_ns() - start_ns;
	return ns > 0 ? (double)ops * (double)NS_PER_S / (double)ns : 0.0;
}

/* ---- mailbox hop ---- */

#define HOP_ITEMS 2000000u

struct hop_ctx {
	struct mailbox *mb;
	struct mailbox_slot *slot;
};

static void *hop_producer(void *arg)
{
	struct hop_ctx *c = arg;
	for (uintptr_t i = 1; i <= HOP_ITEMS; i++)
		while (!mailbox_push(c->slot, (void *)i))
			sched_yield();
	return NULL;
}

static double bench_mailbox_hop(void *unused)
{
	(void)unused;
	struct hop_ctx c = { .mb = mailbox_create(4096, 1) };
	if (!c.mb || !(c.slot = mailbox_slot_add(c.mb))) {
		mailbox_destroy(c.mb);
		return -1;
	}
	pthread_t producer;
	int64_t start = clock_mono_ns();
	if (pthread_create(&producer, NULL, hop_producer, &c) != 0) {
		mailbox_destroy(c.mb);
		return -1;
	}
	uintptr_t expected = 1;
	bool in_order = true;
	while (expected <= HOP_ITEMS) {
		void *p = mailbox_pop(c.mb);
		if (!p) {
			mailbox_wait(c.mb, 100);
			continue;
		}
		in_order &= (uintptr_t)p == expected;
		expected++;
	}
	double rate = elapsed_rate(HOP_ITEMS, start);
	pthread_join(producer, NULL);
	mailbox_destroy(c.mb);
	return in_order ? rate : -1;
}

/* ---- dedup ---- */

#define DEDUP_KEYS 100000u
#define DEDUP_OPS 1000000u

struct dedup_ctx {
	struct pending_item *items;
};

static int dedup_ctx_init(struct dedup_ctx *c)
{
	c->items = calloc(DEDUP_KEYS, sizeof(*c->items));
	if (!c->items)
		return ILA_ERR_NOMEM;
	for (unsigned i = 0; i < DEDUP_KEYS; i++) {
		char key[64], content[160];
		snprintf(key, sizeof(key), "bench-integration-key" EVENT_ORDER_KEY_SEP "key-%08u", i);
		snprintf(content, sizeof(content),
			 "{\"summary\":\"disk usage above 90%% on host-%08u\",\"details\":null,"
			 "\"priority\":\"HIGH\"}",
			 i);
		c->items[i].kind = STORE_KIND_EVENT;
		c->items[i].order_key = strdup(key);
		c->items[i].dedup_content = strdup(content);
		c->items[i].ev.event_type = strdup("ALERT");
		if (!c->items[i].order_key || !c->items[i].dedup_content || !c->items[i].ev.event_type)
			return ILA_ERR_NOMEM;
	}
	return 0;
}

static void dedup_ctx_free(struct dedup_ctx *c)
{
	if (!c->items)
		return;
	for (unsigned i = 0; i < DEDUP_KEYS; i++)
		pending_item_clear(&c->items[i]);
	free(c->items);
	c->items = NULL;
}

/* Every event is new (each pass over the keys starts after the window), so every operation
 * takes the full path: lookup, stage, commit into the LRU at its capacity. */
static double bench_dedup(void *arg)
{
	struct dedup_ctx *c = arg;
	struct dedup *d = dedup_create(10, DEDUP_KEYS);
	if (!d)
		return -1;
	unsigned dups = 0;
	int64_t start = clock_mono_ns();
	for (unsigned i = 0; i < DEDUP_OPS; i++) {
		const struct pending_item *it = &c->items[i % DEDUP_KEYS];
		int64_t now_ms = (int64_t)(i / DEDUP_KEYS) * 11000;
		if (dedup_check(d, it, now_ms)) {
			dups++;
			continue;
		}
		dedup_stage(d, it, now_ms);
		dedup_commit(d);
	}
	double rate = elapsed_rate(DEDUP_OPS, start);
	dedup_destroy(d);
	return dups == 0 ? rate : -1;
}

/* ---- SQLite commit batches ---- */

struct commit_ctx {
	const char *dir;
	bool sync_normal;
	unsigned rows_per_commit;
	struct body_gen *gen;
	unsigned file_no;
};

static int insert_row(struct store *st, const struct body_gen *gen, uint64_t n, int64_t now)
{
	char summary[BODY_FIELD_MAX], alert_key[BODY_FIELD_MAX];
	body_summary(gen, n, summary);
	body_alert_key(gen, n, alert_key);
	char *order_key = NULL;
	if (event_order_key(gen->integration_key, alert_key, &order_key) != 0)
		return ILA_ERR_NOMEM;
	struct store_new_item item = {
		.kind = STORE_KIND_EVENT,
		.integration_key = gen->integration_key,
		.event_type = "ALERT",
		.alert_key = alert_key,
		.summary = summary,
		.details = gen->details,
		.priority = "LOW",
		.source = "http",
		.order_key = order_key,
		.accepted_at = now,
	};
	int err = store_item_insert(st, &item, NULL, NULL);
	free(order_key);
	return err;
}

static void remove_db_files(const char *path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal", ".lock" };
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char p[4200];
		snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
		unlink(p);
	}
}

static double bench_commit(void *arg)
{
	struct commit_ctx *c = arg;
	char path[4096];
	snprintf(path, sizeof(path), "%s/commit-%u.db3", c->dir, c->file_no++);
	char msg[STORE_MSG_SIZE];
	struct store *st = NULL;
	struct store_options opts = { .path = path, .mode = STORE_MODE_DAEMON,
				      .sync_normal = c->sync_normal };
	if (store_open(&opts, &st, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "bench-micro: %s\n", msg);
		return -1;
	}
	uint64_t rows = 0;
	int64_t now = clock_now_ms();
	int64_t start = clock_mono_ns();
	int err = 0;
	while (err == 0 && clock_mono_ns() - start < RUN_NS) {
		err = store_begin(st);
		for (unsigned i = 0; err == 0 && i < c->rows_per_commit; i++)
			err = insert_row(st, c->gen, rows++, now);
		if (err == 0)
			err = store_commit(st);
		else
			store_rollback(st);
	}
	double rate = elapsed_rate(rows, start);
	if (err != 0)
		fprintf(stderr, "bench-micro: commit failed: %s\n", store_errmsg(st));
	store_close(st);
	remove_db_files(path);
	return err == 0 ? rate : -1;
}

/* ---- normalize ---- */

#ifdef BENCH_HAVE_NORMALIZE
struct normalize_ctx {
	char *body;
	size_t len;
};

static double bench_normalize(void *arg)
{
	struct normalize_ctx *c = arg;
	uint64_t ops = 0;
	int64_t start = clock_mono_ns();
	while (clock_mono_ns() - start < RUN_NS) {
		for (int i = 0; i < 256; i++) {
			struct pending_item item;
			memset(&item, 0, sizeof(item));
			char *echo = NULL, *error = NULL;
			int err = normalize_http_event(c->body, c->len, &item, &echo, &error);
			pending_item_clear(&item);
			free(echo);
			free(error);
			if (err != 0)
				return -1;
		}
		ops += 256;
	}
	return elapsed_rate(ops, start);
}
#endif

/* ---- runner ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int run_bench(const struct bench *b, int runs, bool tsv)
{
	double results[64];
	for (int i = 0; i < runs; i++) {
		results[i] = b->fn(b->ctx);
		if (results[i] < 0) {
			fprintf(stderr, "bench-micro: %s failed\n", b->name);
			return -1;
		}
	}
	qsort(results, (size_t)runs, sizeof(results[0]), cmp_double);
	double median = runs % 2 ? results[runs / 2]
				 : (results[runs / 2 - 1] + results[runs / 2]) / 2.0;
	if (tsv)
		printf("%s\t%.0f\t%s\n", b->name, median, b->unit);
	else
		printf("%-44s %14.0f %-7s (min %.0f, max %.0f)\n", b->name, median, b->unit,
		       results[0], results[runs - 1]);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 5;
	const char *filter = NULL;
	bool tsv = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			char *end = NULL;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 1 || v > 64) {
				fprintf(stderr, "bench-micro: error: --runs must be 1-64\n");
				return 2;
			}
			runs = (int)v;
		} else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
			filter = argv[++i];
		} else if (strcmp(argv[i], "--tsv") == 0) {
			tsv = true;
		} else if (strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			fprintf(stderr, "bench-micro: error: bad argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}

	struct body_gen gen;
	if (body_gen_init(&gen, "bench-integration-key", BODY_KEYS_DISTINCT, 0, 400, NULL, false) !=
	    0)
		return 1;
	const char *tmp = getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/ilagent-bench-micro-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench-micro: error: mkdtemp: %s\n", strerror(errno));
		body_gen_free(&gen);
		return 1;
	}
	struct dedup_ctx dedup_c = { 0 };
	int rc = 1;
	if (dedup_ctx_init(&dedup_c) != 0)
		goto out;

	static const unsigned batches[] = { 1, 16, 256, 1000 };
	struct commit_ctx commit_c[8];
	char names[8][64];
	struct bench benches[16];
	size_t count = 0;
	benches[count++] = (struct bench){ "mailbox hop (2 threads)", "items/s", bench_mailbox_hop,
					   NULL };
	benches[count++] = (struct bench){ "dedup check+stage+commit (100k keys)", "ops/s",
					   bench_dedup, &dedup_c };
	for (int sync = 0; sync < 2; sync++) {
		for (int b = 0; b < 4; b++) {
			int k = sync * 4 + b;
			commit_c[k] = (struct commit_ctx){ .dir = dir, .sync_normal = sync == 1,
							   .rows_per_commit = batches[b], .gen = &gen,
							   .file_no = (unsigned)k * 100 };
			snprintf(names[k], sizeof(names[k]), "sqlite commit %u row%s/txn (%s)",
				 batches[b], batches[b] == 1 ? "" : "s", sync ? "NORMAL" : "FULL");
			benches[count++] = (struct bench){ names[k], "rows/s", bench_commit,
							   &commit_c[k] };
		}
	}
#ifdef BENCH_HAVE_NORMALIZE
	char *event = malloc(gen.event_len + 1);
	if (!event)
		goto out;
	struct normalize_ctx norm_c = { event, body_event_write(&gen, 42, event) };
	benches[count++] = (struct bench){ "normalize_http_event (400 B)", "ops/s",
					   bench_normalize, &norm_c };
#endif

	if (!tsv)
		printf("%-44s %14s         (%d runs each)\n", "benchmark", "median", runs);
	rc = 0;
	for (size_t i = 0; i < count; i++) {
		if (filter && !strstr(benches[i].name, filter))
			continue;
		if (run_bench(&benches[i], runs, tsv) != 0)
			rc = 1;
	}
#ifdef BENCH_HAVE_NORMALIZE
	free(event);
#endif
out:
	dedup_ctx_free(&dedup_c);
	rmdir(dir);
	body_gen_free(&gen);
	return rc;
}
