/* SPEC §16.1 / §24.31: when the file system refuses WAL, the daemon warns and carries on with
 * a rollback journal. The refusal is real SQLite behaviour: the daemon runs with a preloaded
 * library (tests/preload/no_wal.c) whose VFS offers no shared memory, as some network file
 * systems do. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon_harness.h"
#include "fake_ilert.h"
#include "proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENTS 40

static void test_daemon_falls_back_to_rollback_journal(void **state)
{
	struct daemon_fixture *f = *state;
	const char *lib = getenv("ILAGENT_NO_WAL_LIB");
	assert_non_null(lib);
	char preload[600], asan[1200];
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
	/* Under ASan the preloaded library comes before the sanitizer runtime; allow that. */
	const char *asan_now = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
		 asan_now ? asan_now : "", asan_now && *asan_now ? ":" : "");
	const char *const env[] = { preload, asan, NULL };
	assert_true(daemon_start(&f->d, f->dir, fake_ilert_url(f->fake), true, NULL, env));

	for (int i = 0; i < EVENTS; i++) {
		char body[160];
		snprintf(body, sizeof(body),
			 "{\"integrationKey\":\"ik\",\"eventType\":\"ALERT\",\"summary\":\"e%d\","
			 "\"alertKey\":\"k%d\"}",
			 i, i % 4);
		struct http_reply r;
		http_post_json(f->d.base, "/api/events", body, &r);
		assert_int_equal(r.status, 200);
		http_reply_free(&r);
	}
	assert_true(fake_ilert_wait_count(f->fake, EVENTS, 15000) >= EVENTS);
	struct http_reply ready;
	char url[128];
	snprintf(url, sizeof(url), "%s/ready", f->d.base);
	http_request("GET", url, NULL, NULL, 0, NULL, 5000, &ready);
	assert_int_equal(ready.status, 204);
	http_reply_free(&ready);

	char wal[700];
	snprintf(wal, sizeof(wal), "%s-wal", f->d.db);
	assert_int_equal(access(wal, F_OK), -1); /* no WAL file: the journal really is a rollback one */
	assert_int_equal(daemon_stop(&f->d, SIGTERM, 15000), 0);
	assert_int_equal(db_query_int(f->d.db, "SELECT COUNT(*) FROM event_items"), 0);
	char *log = daemon_log(&f->d);
	assert_non_null(log);
	assert_non_null(strstr(log, "WARN store: Cannot enable WAL journal mode for "));
	assert_non_null(strstr(log, "using a rollback journal"));
	free(log);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_daemon_falls_back_to_rollback_journal,
						daemon_fixture_setup, daemon_fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
