#include "daemon_harness.h"

#include <curl/curl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/text.h"
#include "fake_ilert.h"
#include "proc.h"

static bool wait_health(const struct test_daemon *d, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	char url[128];
	snprintf(url, sizeof(url), "%s/health", d->base);
	while (clock_mono_ms() < deadline) {
		struct http_reply r;
		if (http_request("GET", url, NULL, NULL, 0, NULL, 1000, &r) == 0 && r.status == 204) {
			http_reply_free(&r);
			return true;
		}
		http_reply_free(&r);
		int code;
		if (proc_bg_wait(d->proc, 0, &code))
			return false;
		usleep(20000);
	}
	return false;
}

bool daemon_start(struct test_daemon *d, const char *dir, const char *api_url, bool with_http,
		  const char *const extra[], const char *const env[])
{
	memset(d, 0, sizeof(*d));
	d->dir = strdup(dir);
	snprintf(d->db, sizeof(d->db), "%s/ilagent.db3", dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon-%d.log", dir, (int)clock_mono_ms() % 100000);
	const char *argv[96];
	int n = 0;
	char port[16];
	argv[n++] = test_ilagent_bin();
	argv[n++] = "daemon";
	argv[n++] = "-f";
	argv[n++] = d->db;
	argv[n++] = "--api_url";
	argv[n++] = api_url;
	argv[n++] = "--beat_url";
	argv[n++] = api_url;
	argv[n++] = "-vv";
	if (with_http) {
		d->port = test_free_port();
		snprintf(port, sizeof(port), "%d", d->port);
		snprintf(d->base, sizeof(d->base), "http://127.0.0.1:%d", d->port);
		argv[n++] = "-p";
		argv[n++] = port;
		argv[n++] = "--bind";
		argv[n++] = "127.0.0.1";
	}
	for (int i = 0; extra && extra[i] && n < 94; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	d->proc = proc_bg_start(argv, env, NULL, d->log);
	if (!d->proc)
		return false;
	bool up = with_http ? wait_health(d, 15000)
			    : test_wait_file_contains(d->log, " started", 15000);
	if (!up) {
		char *log = daemon_log(d);
		fprintf(stderr, "daemon did not start; log:\n%s\n", log ? log : "(none)");
		free(log);
	}
	return up;
}

int daemon_stop(struct test_daemon *d, int sig, int timeout_ms)
{
	if (!d->proc)
		return -1;
	proc_bg_signal(d->proc, sig);
	int code;
	if (!proc_bg_wait(d->proc, timeout_ms, &code)) {
		proc_bg_destroy(d->proc);
		d->proc = NULL;
		return -2;
	}
	proc_bg_destroy(d->proc);
	d->proc = NULL;
	return code;
}

void daemon_kill9(struct test_daemon *d)
{
	if (!d->proc)
		return;
	proc_bg_signal(d->proc, SIGKILL);
	int code;
	proc_bg_wait(d->proc, 5000, &code);
	proc_bg_destroy(d->proc);
	d->proc = NULL;
}

char *daemon_log(const struct test_daemon *d)
{
	return test_read_file(d->log, NULL);
}

void daemon_cleanup(struct test_daemon *d)
{
	if (d->proc)
		daemon_kill9(d);
	free(d->dir);
	d->dir = NULL;
}

int daemon_fixture_setup(void **state)
{
	struct daemon_fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->dir = test_mkdtemp();
	f->fake = fake_ilert_start();
	if (f->dir)
		snprintf(f->db, sizeof(f->db), "%s/ilagent.db3", f->dir);
	*state = f;
	return f->dir && f->fake ? 0 : -1;
}

int daemon_fixture_teardown(void **state)
{
	struct daemon_fixture *f = *state;
	daemon_cleanup(&f->d);
	fake_ilert_stop(f->fake);
	fake_ilert_stop(f->beat);
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	tbuf_append(arg, data, size * n);
	return size * n;
}

int http_request(const char *method, const char *url, const char *content_type,
		 const char *body, size_t body_len, const char *const headers[], int timeout_ms,
		 struct http_reply *reply)
{
	memset(reply, 0, sizeof(*reply));
	CURL *c = curl_easy_init();
	if (!c)
		return -1;
	struct tbuf out, hdr;
	tbuf_init(&out);
	tbuf_init(&hdr);
	struct curl_slist *list = NULL;
	char ct[256];
	if (content_type) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		list = curl_slist_append(list, ct);
	} else {
		list = curl_slist_append(list, "Content-Type:");
	}
	list = curl_slist_append(list, "Expect:");
	for (int i = 0; headers && headers[i]; i++)
		list = curl_slist_append(list, headers[i]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
	reply->body = tbuf_take(&out);
	reply->headers = tbuf_take(&hdr);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

void http_reply_free(struct http_reply *reply)
{
	free(reply->body);
	free(reply->headers);
	memset(reply, 0, sizeof(*reply));
}

char *http_reply_header(const struct http_reply *reply, const char *name)
{
	size_t n = strlen(name);
	for (const char *line = reply->headers; line && *line;) {
		const char *end = strchr(line, '\n');
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;
			while (*v == ' ')
				v++;
			size_t len = end ? (size_t)(end - v) : strlen(v);
			while (len && (v[len - 1] == '\r' || v[len - 1] == ' '))
				len--;
			return strndup(v, len);
		}
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

int http_post_json(const char *base, const char *path, const char *json, struct http_reply *reply)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", base, path);
	return http_request("POST", url, "application/json", json, strlen(json), NULL, 30000, reply);
}

long long db_query_int(const char *db_path, const char *sql)
{
	sqlite3 *db;
	long long v = -1;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

int db_exec(const char *db_path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;
	int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 10000);
		rc = sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, &err);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fprintf(stderr, "SQL failed on %s: %s\n%s\n", db_path, err ? err : sqlite3_errmsg(db),
			sql);
	sqlite3_free(err);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

double metrics_sample(const char *metrics_text, const char *sample)
{
	size_t n = strlen(sample);
	for (const char *line = metrics_text; line && *line;) {
		if (strncmp(line, sample, n) == 0 && line[n] == ' ')
			return atof(line + n + 1);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

double daemon_metric(const char *base, const char *sample)
{
	char url[256];
	snprintf(url, sizeof(url), "%s/metrics", base);
	struct http_reply r;
	http_request("GET", url, NULL, NULL, 0, NULL, 5000, &r);
	double v = r.status == 200 ? metrics_sample(r.body, sample) : -1;
	http_reply_free(&r);
	return v;
}

char *db_query_rows(const char *db_path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct tbuf out;
	tbuf_init(&out);
	int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const char *t = (const char *)sqlite3_column_text(st, i);
			tbuf_printf(&out, "%s%s", i ? "|" : "", t ? t : "<NULL>");
		}
		tbuf_putc(&out, '\n');
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "query failed: %s: %s\n", db ? sqlite3_errmsg(db) : "open", sql);
		tbuf_free(&out);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? tbuf_take(&out) : NULL;
}
