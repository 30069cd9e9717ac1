/* kill -9 in the middle of HTTP load, repeated (SPEC §8.2, §22): every event that was
 * answered 200 reaches ilert, whatever happened to the process afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "daemon_harness.h"
#include "fake_ilert.h"
#include "proc.h"

#define CLIENTS 4
#define MAX_EVENTS 200000
#define ROUNDS 3

static atomic_int stop_clients;
static atomic_int next_id;
static unsigned char acked[MAX_EVENTS];
static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;
static char current_base[64];

static void *client_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_clients)) {
		int id = atomic_fetch_add(&next_id, 1);
		if (id >= MAX_EVENTS)
			break;
		char body[256], base[64];
		snprintf(body, sizeof(body),
			 "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"ev-%d\",\"alertKey\":\"k%d\"}",
			 id, id % 50);
		pthread_mutex_lock(&base_lock);
		snprintf(base, sizeof(base), "%s", current_base);
		pthread_mutex_unlock(&base_lock);
		struct http_reply r;
		http_post_json(base, "/api/events", body, &r);
		if (r.status == 200)
			acked[id] = 1;
		else if (r.status == 0)
			usleep(20000); /* the daemon is down: retry with the next id shortly */
		http_reply_free(&r);
	}
	return NULL;
}

static void set_base(const char *base)
{
	pthread_mutex_lock(&base_lock);
	snprintf(current_base, sizeof(current_base), "%s", base);
	pthread_mutex_unlock(&base_lock);
}

static void test_kill9_under_load(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	struct fake_ilert *fake = fake_ilert_start();
	struct test_daemon d;
	const char *const extra[] = { "--dedup_window", "0", NULL };
	assert_true(daemon_start(&d, dir, fake_ilert_url(fake), true, extra, NULL));
	set_base(d.base);
	pthread_t t[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&t[i], NULL, client_main, NULL);
	for (int round = 0; round < ROUNDS; round++) {
		usleep(1500000);
		daemon_kill9(&d);
		char *keep = strdup(dir);
		daemon_cleanup(&d);
		assert_true(daemon_start(&d, keep, fake_ilert_url(fake), true, extra, NULL));
		free(keep);
		set_base(d.base);
	}
	usleep(1000000);
	atomic_store(&stop_clients, 1);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);

	/* Wait until every acknowledged event was delivered (the queue is empty). */
	int64_t deadline = clock_mono_ms() + 60000;
	while (db_query_int(d.db, "SELECT COUNT(*) FROM event_items") != 0 && clock_mono_ms() < deadline)
		usleep(50000);
	assert_int_equal(db_query_int(d.db, "SELECT COUNT(*) FROM event_items"), 0);
	int total = atomic_load(&next_id);
	static unsigned char delivered[MAX_EVENTS];
	int count = fake_ilert_count(fake);
	for (int i = 0; i < count; i++) {
		struct fake_request *req = fake_ilert_request(fake, i);
		const char *s = strstr(req->body, "\"summary\":\"ev-");
		if (s) {
			int id = atoi(s + strlen("\"summary\":\"ev-"));
			if (id >= 0 && id < MAX_EVENTS)
				delivered[id] = 1;
		}
		fake_request_free(req);
	}
	int acked_count = 0, lost = 0;
	for (int i = 0; i < total && i < MAX_EVENTS; i++) {
		acked_count += acked[i];
		if (acked[i] && !delivered[i]) {
			if (lost < 10)
				fprintf(stderr, "acknowledged event ev-%d was never delivered\n", i);
			lost++;
		}
	}
	fprintf(stderr, "%d events acknowledged across %d kill -9 rounds, %d requests at ilert\n",
		acked_count, ROUNDS, count);
	assert_true(acked_count > 100);
	assert_int_equal(lost, 0);
	assert_int_equal(daemon_stop(&d, SIGTERM, 15000), 0);
	daemon_cleanup(&d);
	fake_ilert_stop(fake);
	test_rmtree(dir);
	free(dir);
}

/* §16.1, §22: the database file is corrupted under a running daemon that is not writing
 * (its only delivery hangs at ilert). The periodic read of the queue notices; the daemon shuts
 * down and exits 1 with the error line. */
static void test_corruption_found_by_reads(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	struct fake_ilert *fake = fake_ilert_start();
	struct fake_reply hang = { .status = 202, .delay_ms = 30000 };
	fake_ilert_set_default(fake, &hang);
	struct test_daemon d;
	const char *const extra[] = { "--forwarders", "1", "--shutdown_timeout", "1", NULL };
	assert_true(daemon_start(&d, dir, fake_ilert_url(fake), true, extra, NULL));
	char body[600];
	for (int i = 0; i < 30; i++) {
		snprintf(body, sizeof(body),
			 "{\"integrationKey\":\"ik%d\",\"eventType\":\"ALERT\",\"summary\":\"%0300d\"}",
			 i, i);
		struct http_reply r;
		http_post_json(d.base, "/api/events", body, &r);
		assert_int_equal(r.status, 200);
		http_reply_free(&r);
	}
	assert_true(fake_ilert_wait_count(fake, 1, 5000) >= 1);

	/* Move everything into the main file, then overwrite every page after the first. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(d.db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	FILE *fp = fopen(d.db, "r+b");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	long size = ftell(fp);
	assert_true(size > 8192);
	assert_int_equal(fseek(fp, 4096, SEEK_SET), 0);
	for (long i = 4096; i < size; i++)
		fputc(0xA5, fp);
	fclose(fp);

	int code = -2;
	assert_true(proc_bg_wait(d.proc, 15000, &code));
	assert_int_equal(code, 1);
	char *log = daemon_log(&d);
	const char *last = log;
	for (const char *p = strchr(log, '\n'); p && p[1]; p = strchr(p + 1, '\n'))
		last = p + 1;
	assert_true(strncmp(last, "ilagent: error: database corrupted: ", 36) == 0);
	free(log);
	daemon_cleanup(&d);
	fake_ilert_stop(fake);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_under_load),
		cmocka_unit_test(test_corruption_found_by_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
