/* `ilagent queue` driven through the built binary (SPEC §17): exact outputs of stats, list
 * (text and JSON, queued and dead), retry and purge, exit codes and error lines, and files
 * of older versions or damaged files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proc.h"

#include "core/clock.h"
#include "store/db.h"
#include "store/queue.h"

static const char *const clean_env[] = {
	"ILERT_INTEGRATION_KEY", "ILERT_API_KEY", "ILERT_API_URL", "ILERT_BEAT_URL",
	"ILAGENT_HTTP_TOKEN", "ILAGENT_LOG", NULL,
};

/* 2024-12-31T12:00:00Z */
#define T0 1735646400000LL

struct fixture {
	char *dir;
	char path[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = test_mkdtemp();
	if (!f->dir)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ilagent.db3", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- running the binary ---------------------------------------------------------------- */

/* Runs `ilagent queue <args…> -f <path>`; the caller frees the result. */
static void run_queue(const struct fixture *f, const char *const args[], struct proc_result *r)
{
	const char *argv[16];
	size_t n = 0;
	argv[n++] = "queue";
	for (size_t i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n++] = "-f";
	argv[n++] = f->path;
	argv[n] = NULL;
	assert_int_equal(proc_run_ilagent(argv, clean_env, 30000, r), 0);
	assert_false(r->timed_out);
}

#define RUN(f, r, ...)                                             \
	do {                                                       \
		const char *const args_[] = { __VA_ARGS__, NULL }; \
		run_queue(f, args_, r);                            \
	} while (0)

/* Exit 0, exactly `out` on stdout, nothing on stderr. */
static void expect_ok(const struct fixture *f, const char *const args[], const char *out)
{
	struct proc_result r;
	run_queue(f, args, &r);
	if (r.exit_code != 0 || strcmp(r.out, out) != 0 || strcmp(r.err, "") != 0)
		fail_msg("exit %d\nstdout:\n%s\nexpected:\n%s\nstderr:\n%s", r.exit_code, r.out,
			 out, r.err);
	proc_result_free(&r);
}

#define OK(f, out, ...)                                            \
	do {                                                       \
		const char *const args_[] = { __VA_ARGS__, NULL }; \
		expect_ok(f, args_, out);                          \
	} while (0)

static const char *last_line(const char *text)
{
	static char line[2048];
	size_t len = strlen(text);
	if (len && text[len - 1] == '\n')
		len--;
	size_t start = len;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	snprintf(line, sizeof(line), "%.*s", (int)(len - start), text + start);
	return line;
}

/* Exit 1 with "ilagent: error: <message>" as the last stderr line and nothing on stdout. */
static void expect_error(const struct fixture *f, const char *const args[], const char *message)
{
	struct proc_result r;
	run_queue(f, args, &r);
	char want[1200];
	snprintf(want, sizeof(want), "ilagent: error: %s", message);
	if (r.exit_code != 1 || strcmp(last_line(r.err), want) != 0)
		fail_msg("exit %d\nstderr:\n%s\nexpected last line:\n%s", r.exit_code, r.err, want);
	assert_string_equal(r.out, "");
	proc_result_free(&r);
}

/* ---- preparing files ---------------------------------------------------------------------- */

static struct store *store_new(const char *path)
{
	struct store_options o = { .path = path, .mode = STORE_MODE_DAEMON, .sync_normal = true };
	struct store *st = NULL;
	char msg[STORE_MSG_SIZE];
	if (store_open(&o, &st, msg, sizeof(msg)) != 0)
		fail_msg("store_open: %s", msg);
	return st;
}

static void raw_exec(const char *path, const char *sql)
{
	assert_int_equal(db_exec(path, sql), 0);
}

/* Every row of a query as "a|b\n" lines; caller frees. */
static char *raw_rows(const char *path, const char *sql)
{
	char *rows = db_query_rows(path, sql);
	assert_non_null(rows);
	return rows;
}

struct sample {
	char ev[UUID_STR_LEN];     /* event, seq 1 */
	char beat[UUID_STR_LEN];   /* heartbeat, seq 2, retrying */
	char pol[UUID_STR_LEN];    /* policy, seq 3 */
	char longev[UUID_STR_LEN]; /* event with a long summary, seq 4 */
	char legacy[UUID_STR_LEN]; /* event without source, seq 5 */
	char dead1[UUID_STR_LEN];  /* dead letter 1 (event) */
	char dead2[UUID_STR_LEN];  /* dead letter 2 (heartbeat) */
};

/* "é" repeated n times. */
static char *repeat_e_acute(int n)
{
	char *s = malloc((size_t)n * 2 + 1);
	for (int i = 0; i < n; i++)
		memcpy(s + 2 * i, "\xc3\xa9", 2);
	s[n * 2] = '\0';
	return s;
}

static void sample_fill(const char *path, struct sample *smp)
{
	struct store *st = store_new(path);
	struct store_new_item ev = { .kind = STORE_KIND_EVENT,
				     .integration_key = "il1apiKey1234567890",
				     .event_type = "ALERT", .alert_key = "Disk",
				     .summary = "disk\tfull\nnow", .source = "http",
				     .order_key = "il1apiKey1234567890\x1f" "disk",
				     .accepted_at = T0 };
	struct store_new_item beat = { .kind = STORE_KIND_HEARTBEAT, .integration_key = "short",
				       .event_type = "HEARTBEAT", .summary = "",
				       .payload = "{\"integrationKey\":\"short\"}",
				       .source = "kafka", .accepted_at = T0 + 1000 };
	struct store_new_item pol = {
		.kind = STORE_KIND_POLICY, .integration_key = "", .event_type = "POLICY",
		.summary = "",
		.payload = "{\"email\":\"ops@example.com\",\"routingKey\":\"rk-1\",\"shift\":2}",
		.source = "mqtt", .order_key = "policy\x1frk-1", .accepted_at = T0 + 2000 };
	char *long_summary = repeat_e_acute(100);
	struct store_new_item longev = { .kind = STORE_KIND_EVENT,
					 .integration_key = "il1apiKey1234567890",
					 .event_type = "COMMENT", .summary = long_summary,
					 .source = "mqtt", .accepted_at = T0 + 3000 };
	struct store_new_item legacy = { .kind = STORE_KIND_EVENT,
					 .integration_key = "il1apiOldKey0000",
					 .event_type = "RESOLVE", .summary = "old one",
					 .accepted_at = T0 + 4000 };
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_item_insert(st, &ev, smp->ev, NULL), 0);
	assert_int_equal(store_item_insert(st, &beat, smp->beat, NULL), 0);
	assert_int_equal(store_item_insert(st, &pol, smp->pol, NULL), 0);
	assert_int_equal(store_item_insert(st, &longev, smp->longev, NULL), 0);
	assert_int_equal(store_item_insert(st, &legacy, smp->legacy, NULL), 0);
	assert_int_equal(store_commit(st), 0);
	struct store_retry r = { .attempts = 2, .next_attempt_at = T0 + 60000, .last_status = 503,
				 .last_error = "HTTP 503:\tbusy\r\n" };
	assert_int_equal(store_item_reschedule(st, smp->beat, &r), 0);

	/* Two dead letters: an event rejected with 400, a heartbeat exhausted by timeouts. */
	struct store_new_item dev = { .kind = STORE_KIND_EVENT,
				      .integration_key = "il1apiDeadKey0001",
				      .event_type = "ALERT", .summary = "rejected",
				      .source = "http", .accepted_at = T0 - 60000 };
	assert_int_equal(store_item_insert(st, &dev, smp->dead1, NULL), 0);
	struct store_dead_info d1 = { .reason = STORE_DEAD_PERMANENT, .attempts = 1,
				      .last_status = 400, .last_error = "HTTP 400",
				      .body = "{\"message\":\"bad\"}", .body_len = 17,
				      .dead_at = T0 + 120000 };
	assert_int_equal(store_dead_move(st, smp->dead1, &d1, 0, NULL), 0);
	struct store_new_item dbeat = { .kind = STORE_KIND_HEARTBEAT,
					.integration_key = "hbKeyDead123456",
					.event_type = "HEARTBEAT", .summary = "",
					.payload = "{\"integrationKey\":\"hbKeyDead123456\"}",
					.source = "mqtt", .accepted_at = T0 - 30000 };
	assert_int_equal(store_item_insert(st, &dbeat, smp->dead2, NULL), 0);
	struct store_dead_info d2 = { .reason = STORE_DEAD_EXHAUSTED, .attempts = 100,
				      .last_status = 0, .last_error = "timeout",
				      .dead_at = T0 + 180000 };
	assert_int_equal(store_dead_move(st, smp->dead2, &d2, 0, NULL), 0);
	raw_exec(path, "INSERT INTO mqtt_queue (id, topic, payload) VALUES ('m1', 't', 'p')");
	store_close(st);
	free(long_summary);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_stats_empty(void **state)
{
	struct fixture *f = *state;
	store_close(store_new(f->path));
	OK(f,
	   "queued\t0\nqueued_event\t0\nqueued_heartbeat\t0\nqueued_policy\t0\nretrying\t0\n"
	   "oldest_age_seconds\t0\ndead\t0\nlegacy_mqtt_queue\t0\n",
	   "stats");
	OK(f,
	   "{\"queued\":0,\"queued_event\":0,\"queued_heartbeat\":0,\"queued_policy\":0,"
	   "\"retrying\":0,\"oldest_age_seconds\":0,\"dead\":0,\"legacy_mqtt_queue\":0}\n",
	   "stats", "--json");
	OK(f,
	   "seq\tid\tkind\tsource\taccepted_at\tattempts\tnext_attempt_at\ttarget\tdetail\t"
	   "last_error\n",
	   "list");
	OK(f, "[]\n", "list", "--json");
	OK(f,
	   "id\titem_id\tkind\tsource\tdead_at\treason\tstatus\tattempts\ttarget\tdetail\t"
	   "last_error\n",
	   "list", "--dead");
	OK(f, "[]\n", "list", "--dead", "--json");
	OK(f, "requeued 0\n", "retry", "--all");
	OK(f, "purged 0\n", "purge", "--dead");
}

static void test_stats_counts(void **state)
{
	struct fixture *f = *state;
	struct sample smp;
	sample_fill(f->path, &smp);
	/* The oldest queued row was accepted at T0. */
	int64_t before = clock_now_ms();
	struct proc_result r;
	RUN(f, &r, "stats");
	int64_t after = clock_now_ms();
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.err, "");
	long long age = -1;
	const char *age_at = strstr(r.out, "oldest_age_seconds\t");
	assert_non_null(age_at);
	assert_int_equal(sscanf(age_at, "oldest_age_seconds\t%lld", &age), 1);
	assert_true(age >= (before - T0) / 1000 && age <= (after - T0) / 1000);
	char want[512];
	snprintf(want, sizeof(want),
		 "queued\t5\nqueued_event\t3\nqueued_heartbeat\t1\nqueued_policy\t1\nretrying\t1\n"
		 "oldest_age_seconds\t%lld\ndead\t2\nlegacy_mqtt_queue\t1\n",
		 age);
	assert_string_equal(r.out, want);
	proc_result_free(&r);

	before = clock_now_ms();
	RUN(f, &r, "stats", "--json");
	after = clock_now_ms();
	assert_int_equal(r.exit_code, 0);
	const char *j = strstr(r.out, "\"oldest_age_seconds\":");
	assert_non_null(j);
	assert_int_equal(sscanf(j, "\"oldest_age_seconds\":%lld", &age), 1);
	assert_true(age >= (before - T0) / 1000 && age <= (after - T0) / 1000);
	snprintf(want, sizeof(want),
		 "{\"queued\":5,\"queued_event\":3,\"queued_heartbeat\":1,\"queued_policy\":1,"
		 "\"retrying\":1,\"oldest_age_seconds\":%lld,\"dead\":2,\"legacy_mqtt_queue\":1}\n",
		 age);
	assert_string_equal(r.out, want);
	proc_result_free(&r);
}

static void test_list_text(void **state)
{
	struct fixture *f = *state;
	struct sample smp;
	sample_fill(f->path, &smp);
	char *cut = repeat_e_acute(72); /* "COMMENT " + 72 characters = 80 */
	char want[4096];
	snprintf(want, sizeof(want),
		 "seq\tid\tkind\tsource\taccepted_at\tattempts\tnext_attempt_at\ttarget\tdetail\t"
		 "last_error\n"
		 "1\t%s\tevent\thttp\t2024-12-31T12:00:00Z\t0\t-\til1a\xe2\x80\xa6\tALERT disk "
		 "full now\t-\n"
		 "2\t%s\theartbeat\tkafka\t2024-12-31T12:00:01Z\t2\t2024-12-31T12:01:00Z\t"
		 "\xe2\x80\xa6\t-\tHTTP 503: busy  \n"
		 "3\t%s\tpolicy\tmqtt\t2024-12-31T12:00:02Z\t0\t-\trk-1\tlevel 2 for "
		 "ops@example.com\t-\n"
		 "4\t%s\tevent\tmqtt\t2024-12-31T12:00:03Z\t0\t-\til1a\xe2\x80\xa6\tCOMMENT %s\t-\n"
		 "5\t%s\tevent\tlegacy\t2024-12-31T12:00:04Z\t0\t-\til1a\xe2\x80\xa6\tRESOLVE old "
		 "one\t-\n",
		 smp.ev, smp.beat, smp.pol, smp.longev, cut, smp.legacy);
	OK(f, want, "list");
	free(cut);

	/* --limit keeps the oldest rows. */
	snprintf(want, sizeof(want),
		 "seq\tid\tkind\tsource\taccepted_at\tattempts\tnext_attempt_at\ttarget\tdetail\t"
		 "last_error\n"
		 "1\t%s\tevent\thttp\t2024-12-31T12:00:00Z\t0\t-\til1a\xe2\x80\xa6\tALERT disk "
		 "full now\t-\n"
		 "2\t%s\theartbeat\tkafka\t2024-12-31T12:00:01Z\t2\t2024-12-31T12:01:00Z\t"
		 "\xe2\x80\xa6\t-\tHTTP 503: busy  \n",
		 smp.ev, smp.beat);
	OK(f, want, "list", "--limit", "2");

	snprintf(want, sizeof(want),
		 "id\titem_id\tkind\tsource\tdead_at\treason\tstatus\tattempts\ttarget\tdetail\t"
		 "last_error\n"
		 "2\t%s\theartbeat\tmqtt\t2024-12-31T12:03:00Z\texhausted\t-\t100\thbKe"
		 "\xe2\x80\xa6\t-\ttimeout\n"
		 "1\t%s\tevent\thttp\t2024-12-31T12:02:00Z\tpermanent\t400\t1\til1a\xe2\x80\xa6\t"
		 "ALERT rejected\tHTTP 400\n",
		 smp.dead2, smp.dead1);
	OK(f, want, "list", "--dead");
	snprintf(want, sizeof(want),
		 "id\titem_id\tkind\tsource\tdead_at\treason\tstatus\tattempts\ttarget\tdetail\t"
		 "last_error\n"
		 "2\t%s\theartbeat\tmqtt\t2024-12-31T12:03:00Z\texhausted\t-\t100\thbKe"
		 "\xe2\x80\xa6\t-\ttimeout\n",
		 smp.dead2);
	OK(f, want, "list", "--dead", "--limit", "1");
}

static void test_list_json(void **state)
{
	struct fixture *f = *state;
	struct sample smp;
	sample_fill(f->path, &smp);
	char *full = repeat_e_acute(100);
	char want[8192];
	snprintf(want, sizeof(want),
		 "[{\"seq\":1,\"id\":\"%s\",\"kind\":\"event\",\"source\":\"http\","
		 "\"accepted_at\":\"2024-12-31T12:00:00Z\",\"attempts\":0,\"next_attempt_at\":null,"
		 "\"target\":\"il1a\xe2\x80\xa6\",\"detail\":\"ALERT disk\\tfull\\nnow\","
		 "\"last_error\":null},"
		 "{\"seq\":2,\"id\":\"%s\",\"kind\":\"heartbeat\",\"source\":\"kafka\","
		 "\"accepted_at\":\"2024-12-31T12:00:01Z\",\"attempts\":2,"
		 "\"next_attempt_at\":\"2024-12-31T12:01:00Z\",\"target\":\"\xe2\x80\xa6\","
		 "\"detail\":null,\"last_error\":\"HTTP 503:\\tbusy\\r\\n\"},"
		 "{\"seq\":3,\"id\":\"%s\",\"kind\":\"policy\",\"source\":\"mqtt\","
		 "\"accepted_at\":\"2024-12-31T12:00:02Z\",\"attempts\":0,\"next_attempt_at\":null,"
		 "\"target\":\"rk-1\",\"detail\":\"level 2 for ops@example.com\","
		 "\"last_error\":null},"
		 "{\"seq\":4,\"id\":\"%s\",\"kind\":\"event\",\"source\":\"mqtt\","
		 "\"accepted_at\":\"2024-12-31T12:00:03Z\",\"attempts\":0,\"next_attempt_at\":null,"
		 "\"target\":\"il1a\xe2\x80\xa6\",\"detail\":\"COMMENT %s\",\"last_error\":null},"
		 "{\"seq\":5,\"id\":\"%s\",\"kind\":\"event\",\"source\":\"legacy\","
		 "\"accepted_at\":\"2024-12-31T12:00:04Z\",\"attempts\":0,\"next_attempt_at\":null,"
		 "\"target\":\"il1a\xe2\x80\xa6\",\"detail\":\"RESOLVE old one\","
		 "\"last_error\":null}]\n",
		 smp.ev, smp.beat, smp.pol, smp.longev, full, smp.legacy);
	OK(f, want, "list", "--json");
	free(full);

	snprintf(want, sizeof(want),
		 "[{\"id\":2,\"item_id\":\"%s\",\"kind\":\"heartbeat\",\"source\":\"mqtt\","
		 "\"dead_at\":\"2024-12-31T12:03:00Z\",\"reason\":\"exhausted\",\"status\":null,"
		 "\"attempts\":100,\"target\":\"hbKe\xe2\x80\xa6\",\"detail\":null,"
		 "\"last_error\":\"timeout\",\"body_excerpt\":null},"
		 "{\"id\":1,\"item_id\":\"%s\",\"kind\":\"event\",\"source\":\"http\","
		 "\"dead_at\":\"2024-12-31T12:02:00Z\",\"reason\":\"permanent\",\"status\":400,"
		 "\"attempts\":1,\"target\":\"il1a\xe2\x80\xa6\",\"detail\":\"ALERT rejected\","
		 "\"last_error\":\"HTTP 400\",\"body_excerpt\":\"{\\\"message\\\":\\\"bad\\\"}\"}]\n",
		 smp.dead2, smp.dead1);
	OK(f, want, "list", "--dead", "--json");
	snprintf(want, sizeof(want),
		 "[{\"seq\":1,\"id\":\"%s\",\"kind\":\"event\",\"source\":\"http\","
		 "\"accepted_at\":\"2024-12-31T12:00:00Z\",\"attempts\":0,\"next_attempt_at\":null,"
		 "\"target\":\"il1a\xe2\x80\xa6\",\"detail\":\"ALERT disk\\tfull\\nnow\","
		 "\"last_error\":null}]\n",
		 smp.ev);
	OK(f, want, "list", "--json", "--limit", "1");
}

static void test_list_default_limit(void **state)
{
	struct fixture *f = *state;
	struct store *st = store_new(f->path);
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 1203; i++) {
		struct store_new_item it = { .kind = STORE_KIND_EVENT, .integration_key = "k",
					     .event_type = "ALERT", .summary = "n",
					     .source = "http", .accepted_at = T0 };
		assert_int_equal(store_item_insert(st, &it, NULL, NULL), 0);
	}
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	const struct {
		const char *limit;
		int rows;
	} cases[] = { { NULL, 50 }, { "0", 1203 }, { "1000", 1000 }, { "501", 501 } };
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct proc_result r;
		if (cases[c].limit)
			RUN(f, &r, "list", "--limit", cases[c].limit);
		else
			RUN(f, &r, "list");
		assert_int_equal(r.exit_code, 0);
		int lines = 0;
		for (const char *p = r.out; *p; p++)
			lines += *p == '\n';
		assert_int_equal(lines, cases[c].rows + 1);
		/* The last row printed is the one with that seq (oldest first). */
		char tail[32];
		snprintf(tail, sizeof(tail), "\n%d\t", cases[c].rows);
		assert_non_null(strstr(r.out, tail));
		proc_result_free(&r);
	}
	struct proc_result r;
	RUN(f, &r, "list", "--json", "--limit", "0");
	assert_int_equal(r.exit_code, 0);
	int objects = 0;
	for (const char *p = r.out; (p = strstr(p, "{\"seq\":")); p++)
		objects++;
	assert_int_equal(objects, 1203);
	assert_non_null(strstr(r.out, "{\"seq\":1203,"));
	assert_string_equal(r.out + strlen(r.out) - 3, "}]\n");
	proc_result_free(&r);
}

static void test_retry_and_purge(void **state)
{
	struct fixture *f = *state;
	struct sample smp;
	sample_fill(f->path, &smp);
	OK(f, "requeued 1\n", "retry", "1");
	char *rows = raw_rows(f->path, "SELECT id, seq, kind, attempts, next_attempt_at, "
				       "last_status, last_error, accepted_at FROM event_items "
				       "WHERE seq > 5");
	char want[512];
	snprintf(want, sizeof(want), "%s|8|event|0|0|<NULL>|<NULL>|%lld\n", smp.dead1,
		 (long long)(T0 - 60000));
	assert_string_equal(rows, want);
	free(rows);
	expect_error(f, (const char *const[]){ "retry", "1", NULL }, "no dead letter with id 1");
	expect_error(f, (const char *const[]){ "retry", "999", NULL },
		     "no dead letter with id 999");

	/* The heartbeat gets a fresh time-to-live. */
	int64_t before = clock_now_ms();
	OK(f, "requeued 1\n", "retry", "--all");
	rows = raw_rows(f->path, "SELECT id, seq, kind, attempts FROM event_items WHERE seq > 8");
	snprintf(want, sizeof(want), "%s|9|heartbeat|0\n", smp.dead2);
	assert_string_equal(rows, want);
	free(rows);
	rows = raw_rows(f->path, "SELECT accepted_at FROM event_items WHERE seq = 9");
	assert_true(atoll(rows) >= before && atoll(rows) <= clock_now_ms());
	free(rows);
	OK(f,
	   "id\titem_id\tkind\tsource\tdead_at\treason\tstatus\tattempts\ttarget\tdetail\t"
	   "last_error\n",
	   "list", "--dead");
	rows = raw_rows(f->path, "SELECT val FROM ilagent WHERE key = 'seq_hwm'");
	assert_string_equal(rows, "9\n");
	free(rows);

	/* Purge removes every dead letter. */
	struct store *st = store_new(f->path);
	for (int i = 0; i < 3; i++) {
		struct store_item_list l;
		assert_int_equal(store_items_page(st, 0, 1, &l), 0);
		struct store_dead_info d = { .reason = STORE_DEAD_PERMANENT, .attempts = 1,
					     .dead_at = T0 };
		assert_int_equal(store_dead_move(st, l.items[0].id, &d, 0, NULL), 0);
		store_item_list_free(&l);
	}
	store_close(st);
	OK(f, "purged 3\n", "purge", "--dead");
	OK(f, "purged 0\n", "purge", "--dead");
	rows = raw_rows(f->path, "SELECT count(*) FROM dead_letters");
	assert_string_equal(rows, "0\n");
	free(rows);
}

static void test_missing_file(void **state)
{
	struct fixture *f = *state;
	char want[700];
	snprintf(want, sizeof(want), "database file not found: %s", f->path);
	expect_error(f, (const char *const[]){ "stats", NULL }, want);
	expect_error(f, (const char *const[]){ "list", "--dead", NULL }, want);
	expect_error(f, (const char *const[]){ "retry", "--all", NULL }, want);
	struct stat sb;
	assert_int_not_equal(stat(f->path, &sb), 0);
}

/* A file as ilagent 0.9.0 left it: inspected without losing or altering any row. */
static void test_file_of_090_survives(void **state)
{
	struct fixture *f = *state;
	raw_exec(f->path,
		 LEGACY_090_SCHEMA_SQL
		 "INSERT INTO event_items (id, integration_key, event_type, alert_key, summary, "
		 "created_at, priority, images, links, custom_details, details, inserted_at, "
		 "event_api_path) VALUES "
		 "('a', 'il1apiKeyAAAA1234', 'ALERT', 'k1', 'first', '2024-01-01 00:00:00 UTC', "
		 " 'HIGH', '[{\"src\":\"i\"}]', '[{\"href\":\"l\"}]', '{\"x\":[1,2]}', 'd', "
		 " '2024-01-01 00:00:00.100', NULL),"
		 "('b', 'il1apiKeyAAAA1234', 'RESOLVE', 'k1', 'second', 'c', NULL, NULL, NULL, NULL, "
		 " NULL, '2024-01-01 00:00:00.200', '/v1/events/mqtt/il1apiKeyAAAA1234'),"
		 "('c', 'il1apiKeyBBBB1234', 'ALERT', NULL, 'third', 'c', 'LOW', NULL, NULL, NULL, "
		 " NULL, '2024-01-01 00:00:00.300', NULL);"
		 "INSERT INTO mqtt_queue (id, topic, payload, inserted_at) VALUES ('m', 'alerts', "
		 "'{\"a\":1}', '2024-01-01 00:00:01.000');");
	static const char old_columns[] =
		"SELECT id, integration_key, event_type, alert_key, summary, created_at, priority, "
		"images, links, custom_details, details, inserted_at, event_api_path FROM "
		"event_items ORDER BY id";
	char *before = raw_rows(f->path, old_columns);
	char *mqtt_before = raw_rows(f->path, "SELECT * FROM mqtt_queue");

	struct proc_result r;
	RUN(f, &r, "stats");
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.err, "");
	assert_non_null(strstr(r.out, "queued\t3\nqueued_event\t3\n"));
	assert_non_null(strstr(r.out, "dead\t0\nlegacy_mqtt_queue\t1\n"));
	proc_result_free(&r);

	char *after = raw_rows(f->path, old_columns);
	assert_string_equal(after, before);
	char *mqtt_after = raw_rows(f->path, "SELECT * FROM mqtt_queue");
	assert_string_equal(mqtt_after, mqtt_before);
	char *seqs = raw_rows(f->path, "SELECT id, seq, accepted_at FROM event_items ORDER BY seq");
	assert_string_equal(seqs, "a|1|1704067200100\nb|2|1704067200200\nc|3|1704067200300\n");
	OK(f,
	   "seq\tid\tkind\tsource\taccepted_at\tattempts\tnext_attempt_at\ttarget\tdetail\t"
	   "last_error\n"
	   "1\ta\tevent\tlegacy\t2024-01-01T00:00:00Z\t0\t-\til1a\xe2\x80\xa6\tALERT first\t-\n"
	   "2\tb\tevent\tlegacy\t2024-01-01T00:00:00Z\t0\t-\til1a\xe2\x80\xa6\tRESOLVE second\t-\n"
	   "3\tc\tevent\tlegacy\t2024-01-01T00:00:00Z\t0\t-\til1a\xe2\x80\xa6\tALERT third\t-\n",
	   "list");
	free(seqs);
	free(mqtt_after);
	free(after);
	free(mqtt_before);
	free(before);
}

static void expect_refused_unchanged(const struct fixture *f, const char *reason_prefix)
{
	size_t before_len = 0, after_len = 0;
	char *before = test_read_file(f->path, &before_len);
	assert_non_null(before);
	struct proc_result r;
	RUN(f, &r, "stats");
	char want[800];
	snprintf(want, sizeof(want), "ilagent: error: Failed to setup SQLite connection: %s: %s",
		 f->path, reason_prefix);
	if (r.exit_code != 1 || strncmp(last_line(r.err), want, strlen(want)) != 0)
		fail_msg("exit %d, stderr:\n%s\nexpected last line starting with:\n%s", r.exit_code,
			 r.err, want);
	assert_string_equal(r.out, "");
	proc_result_free(&r);
	char *after = test_read_file(f->path, &after_len);
	assert_int_equal(after_len, before_len);
	assert_memory_equal(after, before, before_len);
	const char *suffix[] = { "-wal", "-shm", "-journal" };
	for (int i = 0; i < 3; i++) {
		char side[600];
		struct stat sb;
		snprintf(side, sizeof(side), "%s%s", f->path, suffix[i]);
		assert_int_not_equal(stat(side, &sb), 0);
	}
	free(after);
	free(before);
}

static void test_corrupt_file_refused(void **state)
{
	struct fixture *f = *state;
	struct sample smp;
	sample_fill(f->path, &smp);
	size_t len = 0;
	char *data = test_read_file(f->path, &len);
	assert_true(len > 3 * 4096);
	memset(data + 2 * 4096, 0x5A, len - 2 * 4096);
	assert_int_equal(test_write_file(f->path, data, len), 0);
	free(data);
	expect_refused_unchanged(f, "database disk image is malformed");
}

static void test_foreign_and_non_sqlite_refused(void **state)
{
	struct fixture *f = *state;
	raw_exec(f->path, "CREATE TABLE t (a); INSERT INTO t VALUES (1);");
	expect_refused_unchanged(f, "not an ilagent database");
	const char text[] = "this is a text file, not a database\n";
	assert_int_equal(test_write_file(f->path, text, sizeof(text) - 1), 0);
	expect_refused_unchanged(f, "file is not a database");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stats_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_default_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_and_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_of_090_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_and_non_sqlite_refused, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
