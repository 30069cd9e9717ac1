/* bench-fill-queue: writes N queued events into an ilagent queue file through the store
 * API, as the HTTP intake would have stored them (distinct alertKeys, ~400-byte events), so
 * the delivery benchmark can time a daemon draining a known backlog. */
#include "args.h"
#include "body.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/event.h"
#include "store/db.h"
#include "store/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS_PER_COMMIT 1000

static const char usage_text[] =
	"Usage: bench-fill-queue FILE N [--size BYTES] [--no-keys]\n"
	"\n"
	"Appends N events (HTTP source, distinct alertKeys unless --no-keys) to the ilagent\n"
	"queue FILE, creating it if needed. The file must not be in use by a daemon.\n";

static int insert_one(struct store *st, const struct body_gen *gen, uint64_t n, int64_t now)
{
	char summary[BODY_FIELD_MAX];
	char alert_key[BODY_FIELD_MAX];
	body_summary(gen, n, summary);
	bool has_key = body_alert_key(gen, n, alert_key);
	char *order_key = NULL;
	if (has_key && event_order_key(gen->integration_key, alert_key, &order_key) != 0)
		return ILA_ERR_NOMEM;
	struct store_new_item item = {
		.kind = STORE_KIND_EVENT,
		.integration_key = gen->integration_key,
		.event_type = "ALERT",
		.alert_key = has_key ? alert_key : NULL,
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

static int fill(struct store *st, const struct body_gen *gen, uint64_t rows)
{
	int64_t now = clock_now_ms();
	for (uint64_t done = 0; done < rows;) {
		int err = store_begin(st);
		if (err != 0)
			return err;
		uint64_t end = done + ROWS_PER_COMMIT < rows ? done + ROWS_PER_COMMIT : rows;
		for (; done < end; done++) {
			err = insert_one(st, gen, done, now);
			if (err != 0) {
				store_rollback(st);
				return err;
			}
		}
		err = store_commit(st);
		if (err != 0)
			return err;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	uint64_t rows = 0, size = 400;
	bool have_rows = false;
	enum body_keys keys = BODY_KEYS_DISTINCT;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else if (strcmp(argv[i], "--no-keys") == 0) {
			keys = BODY_KEYS_NONE;
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc &&
			   bench_parse_u64(argv[i + 1], 1, UINT64_MAX, &size)) {
			i++;
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else if (!have_rows && bench_parse_u64(argv[i], 0, UINT64_MAX, &rows)) {
			have_rows = true;
		} else {
			fprintf(stderr, "bench-fill-queue: error: bad argument '%s'\n%s", argv[i],
				usage_text);
			return 2;
		}
	}
	if (!path || !have_rows) {
		fputs(usage_text, stderr);
		return 2;
	}

	struct body_gen gen;
	if (body_gen_init(&gen, "bench-integration-key", keys, 0, (size_t)size, NULL, false) != 0)
		return 1;
	char msg[STORE_MSG_SIZE];
	struct store_lock *lock = NULL;
	struct store *st = NULL;
	int rc = 1;
	if (store_lock_acquire(path, &lock, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "bench-fill-queue: error: %s\n", msg);
		goto out;
	}
	/* The file is only being prepared: a crash here costs nothing, so skip the fsyncs. */
	struct store_options opts = { .path = path, .mode = STORE_MODE_DAEMON, .sync_normal = true };
	if (store_open(&opts, &st, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "bench-fill-queue: error: %s\n", msg);
		goto out;
	}
	int64_t t0 = clock_mono_ms();
	int err = fill(st, &gen, rows);
	if (err != 0) {
		fprintf(stderr, "bench-fill-queue: error: %s: %s\n", ila_strerror(err),
			store_errmsg(st));
		goto out;
	}
	int64_t total = 0;
	store_items_count(st, &total);
	printf("%s: %" PRIu64 " rows added in %.2f s, %" PRId64 " queued\n", path, rows,
	       (double)(clock_mono_ms() - t0) / 1000.0, total);
	rc = 0;
out:
	store_close(st);
	store_lock_release(lock);
	body_gen_free(&gen);
	return rc;
}
