/* Test helpers that run `ilagent daemon` in the background against a fake ilert, and a tiny
 * blocking HTTP client for talking to it. Used only by tests, from one thread (the HTTP
 * client functions are also safe from several threads, one handle each call). */
#ifndef ILAGENT_TEST_DAEMON_HARNESS_H
#define ILAGENT_TEST_DAEMON_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

struct test_daemon {
	struct proc_bg *proc;
	char *dir;      /* private temp dir (owned by the caller of daemon_start when given) */
	char db[512];   /* queue file */
	char log[512];  /* stderr of the daemon */
	int port;       /* HTTP port, 0 without -p */
	char base[64];  /* "http://127.0.0.1:<port>" */
};

/* Starts `ilagent daemon -f <dir>/ilagent.db3 [-p <free port>] --api_url <api_url>
 * --beat_url <api_url> <extra args...>` (extra: NULL-terminated, may be NULL) with env
 * overrides (NULL-terminated or NULL). with_http adds -p. Waits until /health answers (with
 * HTTP) or until the log shows the start line. Returns false when it did not come up (the
 * log is printed to stderr then). dir must exist; the struct keeps a copy of the path. */
bool daemon_start(struct test_daemon *d, const char *dir, const char *api_url, bool with_http,
		  const char *const extra[], const char *const env[]);
/* Sends sig and waits up to timeout_ms; returns the exit code (-1 killed by a signal, -2 timed
 * out, in which case it is killed). */
int daemon_stop(struct test_daemon *d, int sig, int timeout_ms);
/* SIGKILL without waiting for anything else. */
void daemon_kill9(struct test_daemon *d);
/* The daemon's stderr so far (heap). */
char *daemon_log(const struct test_daemon *d);
void daemon_cleanup(struct test_daemon *d);

/* Per-test state of the daemon integration tests: a private temp dir with the queue file
 * path, a fake ilert (a second one for --beat_url when a test starts it), and the daemon.
 * daemon_fixture_setup/teardown are cmocka setup/teardown functions. */
struct daemon_fixture {
	char *dir;
	char db[600]; /* <dir>/ilagent.db3, the file daemon_start uses */
	struct fake_ilert *fake;
	struct fake_ilert *beat;
	struct test_daemon d;
};
int daemon_fixture_setup(void **state);
int daemon_fixture_teardown(void **state);

struct http_reply {
	long status;     /* 0 on a transport error */
	char *body;      /* NUL-terminated */
	char *headers;   /* all response header lines */
};

/* One request with a fresh connection. content_type NULL = no Content-Type header; extra
 * header lines (e.g. "Authorization: Bearer x") NULL-terminated or NULL. timeout_ms total. */
int http_request(const char *method, const char *url, const char *content_type,
		 const char *body, size_t body_len, const char *const headers[], int timeout_ms,
		 struct http_reply *reply);
void http_reply_free(struct http_reply *reply);
/* Value of a response header (case-insensitive name), heap copy or NULL. */
char *http_reply_header(const struct http_reply *reply, const char *name);
/* POST a JSON body to base + path. */
int http_post_json(const char *base, const char *path, const char *json, struct http_reply *reply);

/* Every row of a query as "a|b\n" lines, SQL NULL shown as <NULL> (heap string); NULL when
 * the query fails (the SQLite error is printed to stderr). Opens its own connection. */
char *db_query_rows(const char *db_path, const char *sql);

/* Runs a SQL query returning one integer on the queue file (read-only connection); -1 on error. */
long long db_query_int(const char *db_path, const char *sql);

/* Runs SQL statements on a file (created when missing) through its own connection, with a
 * 10 s busy timeout and synchronous=OFF (a test's own writes need no durability). 0 on
 * success; otherwise prints the SQLite error and the SQL to stderr and returns -1. */
int db_exec(const char *db_path, const char *sql);

/* The tables as ilagent 0.9.0 left them (mig_1 … mig_5 of SPEC §16.3 applied, bookkeeping
 * rows included), without queued rows. A string literal, so a test can append its INSERTs. */
#define LEGACY_090_SCHEMA_SQL \
	"CREATE TABLE IF NOT EXISTS ilagent (key TEXT PRIMARY KEY, val TEXT NOT NULL, " \
	"created_at TEXT NOT NULL);" \
	"CREATE TABLE event_items (id TEXT PRIMARY KEY, api_key TEXT NOT NULL, event_type " \
	"TEXT NOT NULL, incident_key TEXT NULL, summary TEXT NOT NULL, created_at TEXT NOT " \
	"NULL, priority TEXT NULL, images TEXT NULL, links TEXT NULL, custom_details TEXT " \
	"NULL, details TEXT NULL);" \
	"ALTER TABLE event_items RENAME COLUMN incident_key TO alert_key;" \
	"ALTER TABLE event_items ADD COLUMN inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d " \
	"%H:%M:%f', 'NOW'));" \
	"ALTER TABLE event_items ADD COLUMN event_api_path TEXT NULL;" \
	"ALTER TABLE event_items RENAME COLUMN api_key TO integration_key;" \
	"CREATE TABLE mqtt_queue (id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT " \
	"NULL, inserted_at DATETIME DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')));" \
	"INSERT INTO ilagent VALUES ('mig_1', '1', 'x'), ('mig_2', '1', 'x'), " \
	"('mig_3', '1', 'x'), ('mig_4', '1', 'x'), ('mig_5', '1', 'x');"

/* The value of one sample line ("name{labels} value") in a /metrics text; -1 when absent. */
double metrics_sample(const char *metrics_text, const char *sample);
/* GET <base>/metrics and the value of one sample in it; -1 when absent or unreachable. */
double daemon_metric(const char *base, const char *sample);

#endif
