/* `ilagent event` against the fake ilert (SPEC §4.4, §6): the exact request, exit codes and
 * the final error line for 2xx, 4xx, 5xx, timeouts, refused connections, redirects,
 * proxies and the API URL precedence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "fake_ilert.h"
#include "proc.h"
#include "version.h"

#define RUN_TIMEOUT_MS 15000
#define API_KEY "apikey-should-never-be-sent"

struct ctx {
	struct fake_ilert *fake;
	char *dir;
	char db[512];
};

/* Environment of every run: no proxies, no inherited ilert settings, an API key that the
 * event subcommand must not send. */
#define BASE_ENV                                                                          \
	"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",  \
		"NO_PROXY", "ILERT_API_URL", "ILERT_BEAT_URL", "ILERT_INTEGRATION_KEY",    \
		"ILAGENT_LOG", "ILERT_API_KEY=" API_KEY

static const char *const base_env[] = { BASE_ENV, NULL };

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->fake = fake_ilert_start();
	c->dir = test_mkdtemp();
	if (!c->fake || !c->dir)
		return -1;
	snprintf(c->db, sizeof(c->db), "%s/queue.db3", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	/* The one-shot subcommands never touch the queue file. */
	int db_exists = access(c->db, F_OK) == 0;
	fake_ilert_stop(c->fake);
	test_rmtree(c->dir);
	free(c->dir);
	free(c);
	return db_exists ? -1 : 0;
}

/* Runs `ilagent event <args> --api_url <fake> -f <db>` (args NULL-terminated). */
static void run_event(struct ctx *c, const char *const *args, const char *const *env,
		      bool with_api_url, struct proc_result *res)
{
	const char *argv[40];
	int n = 0;
	argv[n++] = "event";
	for (; *args; args++)
		argv[n++] = *args;
	if (with_api_url) {
		argv[n++] = "--api_url";
		argv[n++] = fake_ilert_url(c->fake);
	}
	argv[n++] = "-f";
	argv[n++] = c->db;
	argv[n] = NULL;
	assert_int_equal(proc_run_ilagent(argv, env ? env : base_env, RUN_TIMEOUT_MS, res), 0);
	assert_false(res->timed_out);
}

/* The last line of stderr (without its newline). */
static const char *last_line(const struct proc_result *res, char *buf, size_t size)
{
	const char *s = res->err ? res->err : "";
	size_t len = strlen(s);
	while (len > 0 && s[len - 1] == '\n')
		len--;
	const char *start = s + len;
	while (start > s && start[-1] != '\n')
		start--;
	snprintf(buf, size, "%.*s", (int)(s + len - start), start);
	return buf;
}

static void assert_last_line(const struct proc_result *res, const char *want)
{
	char buf[4096];
	assert_string_equal(last_line(res, buf, sizeof(buf)), want);
}

static void assert_header(const struct fake_request *r, const char *name, const char *want)
{
	char *got = fake_request_header(r, name);
	if (!want) {
		if (got)
			fail_msg("unexpected header %s: %s", name, got);
		return;
	}
	if (!got)
		fail_msg("missing header %s", name);
	assert_string_equal(got, want);
	free(got);
}

static struct fake_request *only_request(struct fake_ilert *f)
{
	/* The process has exited, so everything it sent is recorded; give a stray second
	 * request a moment to show up before asserting there is none. */
	assert_int_equal(fake_ilert_wait_count(f, 2, 200), 1);
	struct fake_request *r = fake_ilert_request(f, 0);
	assert_non_null(r);
	return r;
}

static void test_full_event_202(void **state)
{
	struct ctx *c = *state;
	struct fake_reply ok = { .status = 202, .body = "{}",
				 .headers = "correlation-id: corr-4711\r\n" };
	fake_ilert_push(c->fake, &ok);
	const char *args[] = { "-k", "il1api123456789", "-t", "ALERT", "-s", "Disk \"full\"",
			       "-i", "  host-1/Disk \t", "-o", "HIGH", "-d", "line1\nline2",
			       "-g", "https://img.example/a.png?x=1&y=2", "-l",
			       "https://link.example/p", "-vv", NULL };
	struct proc_result res;
	run_event(c, args, NULL, true, &res);
	assert_int_equal(res.exit_code, 0);
	assert_non_null(strstr(res.err, "correlation-id: corr-4711"));
	assert_null(strstr(res.err, "ilagent: error:"));

	struct fake_request *r = only_request(c->fake);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->target, "/api/events");
	assert_header(r, "User-Agent", "ilagent/" ILAGENT_VERSION);
	assert_header(r, "Accept", "application/json");
	assert_header(r, "Content-Type", "application/json");
	assert_header(r, "Authorization", NULL);
	assert_string_equal(r->body,
			    "{\"integrationKey\":\"il1api123456789\",\"eventType\":\"ALERT\","
			    "\"summary\":\"Disk \\\"full\\\"\",\"alertKey\":\"host-1/Disk\","
			    "\"details\":\"line1\\nline2\",\"priority\":\"HIGH\","
			    "\"images\":[{\"src\":\"https://img.example/a.png?x=1&y=2\","
			    "\"href\":null,\"alt\":null}],"
			    "\"links\":[{\"href\":\"https://link.example/p\",\"text\":\"Provided Url\"}],"
			    "\"customDetails\":null}");
	fake_request_free(r);
	proc_result_free(&res);
}

/* §5: with --log_format json every stderr line is one JSON object, even when ilert answers
 * with header bytes that are not UTF-8 (they are logged as U+FFFD). */
static void test_json_log_lines_stay_valid_json(void **state)
{
	struct ctx *c = *state;
	struct fake_reply ok = { .status = 202, .body = "{}",
				 .headers = "correlation-id: corr-\xff\xfe-1\r\n" };
	fake_ilert_push(c->fake, &ok);
	const char *args[] = { "-k", "k1", "-t", "ALERT", "-s", "s", "--log_format", "json",
			       "-vv", NULL };
	struct proc_result res;
	run_event(c, args, NULL, true, &res);
	assert_int_equal(res.exit_code, 0);
	int lines = 0;
	bool seen = false;
	for (char *line = strtok(res.err, "\n"); line; line = strtok(NULL, "\n")) {
		json_error_t jerr;
		json_t *obj = json_loads(line, 0, &jerr);
		if (!json_is_object(obj))
			fail_msg("not a JSON object: %s (%s)", line, jerr.text);
		const char *msg = json_string_value(json_object_get(obj, "msg"));
		if (msg && strstr(msg, "correlation-id: corr-\xef\xbf\xbd\xef\xbf\xbd-1"))
			seen = true;
		json_decref(obj);
		lines++;
	}
	assert_true(lines >= 1);
	assert_true(seen);
	proc_result_free(&res);
}

static void test_minimal_event_200(void **state)
{
	struct ctx *c = *state;
	struct fake_reply ok = { .status = 200, .body = "{\"id\":1}" };
	fake_ilert_push(c->fake, &ok);
	const char *args[] = { "-k", "k1", "-t", "RESOLVE", "-s", "", "-i", "   ", NULL };
	struct proc_result res;
	run_event(c, args, NULL, true, &res);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.err, "");
	assert_string_equal(res.out, "");

	struct fake_request *r = only_request(c->fake);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->target, "/api/events");
	assert_header(r, "Authorization", NULL);
	assert_string_equal(r->body, "{\"integrationKey\":\"k1\",\"eventType\":\"RESOLVE\","
				     "\"summary\":\"\",\"alertKey\":null,\"details\":null,"
				     "\"priority\":null,\"images\":null,\"links\":null,"
				     "\"customDetails\":null}");
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_integration_key_from_env(void **state)
{
	struct ctx *c = *state;
	const char *env[] = { BASE_ENV, "ILERT_INTEGRATION_KEY=envkey", NULL };
	const char *args[] = { "-t", "ACCEPT", "-s", "s", "-o", "LOW", NULL };
	struct proc_result res;
	run_event(c, args, env, true, &res);
	assert_int_equal(res.exit_code, 0);
	struct fake_request *r = only_request(c->fake);
	assert_string_equal(r->body, "{\"integrationKey\":\"envkey\",\"eventType\":\"ACCEPT\","
				     "\"summary\":\"s\",\"alertKey\":null,\"details\":null,"
				     "\"priority\":\"LOW\",\"images\":null,\"links\":null,"
				     "\"customDetails\":null}");
	fake_request_free(r);
	proc_result_free(&res);
}

static const char *const simple_args[] = { "-k", "k1", "-t", "ALERT", "-s", "x", NULL };

static void test_4xx_exit_1_with_excerpt(void **state)
{
	struct ctx *c = *state;
	struct fake_reply bad = { .status = 400, .body = "{\"message\":\"bad event\"}" };
	fake_ilert_push(c->fake, &bad);
	struct proc_result res;
	run_event(c, simple_args, NULL, true, &res);
	assert_int_equal(res.exit_code, 1);
	assert_last_line(&res, "ilagent: error: ilert did not accept the event: HTTP 400: "
			       "{\"message\":\"bad event\"}");
	struct fake_request *r = only_request(c->fake);
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_4xx_long_body_cut_and_newlines(void **state)
{
	struct ctx *c = *state;
	char body[600], want[700];
	/* 6 characters with line breaks, then 300 more: the excerpt holds the first 200. */
	strcpy(body, "a\r\nb\nc");
	memset(body + 6, 'x', 300);
	body[306] = '\0';
	struct fake_reply bad = { .status = 422, .body = body };
	fake_ilert_push(c->fake, &bad);
	struct proc_result res;
	run_event(c, simple_args, NULL, true, &res);
	assert_int_equal(res.exit_code, 1);
	int n = snprintf(want, sizeof(want),
			 "ilagent: error: ilert did not accept the event: HTTP 422: a  b c");
	memset(want + n, 'x', 194);
	want[n + 194] = '\0';
	assert_last_line(&res, want);
	proc_result_free(&res);
}

static void test_4xx_excerpt_counts_characters(void **state)
{
	struct ctx *c = *state;
	/* 250 two-byte characters: 200 characters are 400 bytes. */
	char body[501], want[600];
	for (int i = 0; i < 250; i++)
		memcpy(body + 2 * i, "\xc3\xa4", 2);
	body[500] = '\0';
	struct fake_reply bad = { .status = 404, .body = body };
	fake_ilert_push(c->fake, &bad);
	struct proc_result res;
	run_event(c, simple_args, NULL, true, &res);
	assert_int_equal(res.exit_code, 1);
	int n = snprintf(want, sizeof(want),
			 "ilagent: error: ilert did not accept the event: HTTP 404: ");
	memcpy(want + n, body, 400);
	want[n + 400] = '\0';
	assert_last_line(&res, want);
	proc_result_free(&res);
}

static void test_5xx_one_attempt(void **state)
{
	struct ctx *c = *state;
	struct fake_reply down = { .status = 503, .body = "unavailable", .retry_after = "1" };
	fake_ilert_set_default(c->fake, &down);
	struct proc_result res;
	run_event(c, simple_args, NULL, true, &res);
	assert_int_equal(res.exit_code, 1);
	assert_last_line(&res, "ilagent: error: ilert did not accept the event: HTTP 503: "
			       "unavailable");
	assert_int_equal(fake_ilert_wait_count(c->fake, 2, 1500), 1);
	proc_result_free(&res);
}

static void test_timeout(void **state)
{
	struct ctx *c = *state;
	struct fake_reply slow = { .status = 202, .delay_ms = 3000 };
	fake_ilert_push(c->fake, &slow);
	const char *args[] = { "-k", "k1", "-t", "ALERT", "-s", "x", "--api_timeout", "1", NULL };
	struct proc_result res;
	int64_t t0 = clock_mono_ms();
	run_event(c, args, NULL, true, &res);
	int64_t took = clock_mono_ms() - t0;
	assert_int_equal(res.exit_code, 1);
	assert_in_range(took, 900, 2900);
	char buf[1024];
	const char *line = last_line(&res, buf, sizeof(buf));
	const char *prefix = "ilagent: error: could not reach ilert: ";
	assert_int_equal(strncmp(line, prefix, strlen(prefix)), 0);
	assert_non_null(strstr(line, "timed out"));
	proc_result_free(&res);
}

static void test_connection_refused(void **state)
{
	struct ctx *c = *state;
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", test_free_port());
	const char *args[] = { "-k", "k1", "-t", "ALERT", "-s", "x", "--api_url", url, NULL };
	struct proc_result res;
	run_event(c, args, NULL, false, &res);
	assert_int_equal(res.exit_code, 1);
	char buf[1024];
	const char *line = last_line(&res, buf, sizeof(buf));
	const char *prefix = "ilagent: error: could not reach ilert: ";
	assert_int_equal(strncmp(line, prefix, strlen(prefix)), 0);
	assert_true(strlen(line) > strlen(prefix));
	/* The final line is the only line. */
	assert_string_equal(strchr(res.err, '\n') + 1, "");
	proc_result_free(&res);
}

static void test_redirect_not_followed(void **state)
{
	struct ctx *c = *state;
	char headers[128];
	snprintf(headers, sizeof(headers), "Location: %s/api/elsewhere\r\n",
		 fake_ilert_url(c->fake));
	struct fake_reply moved = { .status = 302, .body = "see elsewhere", .headers = headers };
	fake_ilert_push(c->fake, &moved);
	struct proc_result res;
	run_event(c, simple_args, NULL, true, &res);
	assert_int_equal(res.exit_code, 1);
	assert_last_line(&res, "ilagent: error: ilert did not accept the event: HTTP 302: "
			       "see elsewhere");
	struct fake_request *r = only_request(c->fake);
	assert_string_equal(r->target, "/api/events");
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_proxy_from_environment(void **state)
{
	struct ctx *c = *state;
	char proxy[96];
	snprintf(proxy, sizeof(proxy), "http_proxy=%s", fake_ilert_url(c->fake));
	const char *env[] = { BASE_ENV, proxy, NULL };
	const char *args[] = { "-k", "k1", "-t", "ALERT", "-s", "x", "--api_url",
			       "http://ilert.invalid", NULL };
	struct proc_result res;
	run_event(c, args, env, false, &res);
	assert_int_equal(res.exit_code, 0);
	struct fake_request *r = only_request(c->fake);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->target, "http://ilert.invalid/api/events");
	assert_string_equal(r->path, "/api/events");
	assert_header(r, "Host", "ilert.invalid");
	assert_header(r, "Authorization", NULL);
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_api_url_env_and_flag_precedence(void **state)
{
	struct ctx *c = *state;
	struct fake_ilert *other = fake_ilert_start();
	assert_non_null(other);
	char env_url[96];
	snprintf(env_url, sizeof(env_url), "ILERT_API_URL=%s/", fake_ilert_url(other));
	const char *env[] = { BASE_ENV, env_url, NULL };
	struct proc_result res;

	/* The environment alone decides (with its trailing slash removed). */
	run_event(c, simple_args, env, false, &res);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(fake_ilert_wait_count(other, 1, 1000), 1);
	struct fake_request *r = fake_ilert_request(other, 0);
	assert_string_equal(r->target, "/api/events");
	fake_request_free(r);
	assert_int_equal(fake_ilert_count(c->fake), 0);
	proc_result_free(&res);

	/* The flag wins over the environment. */
	run_event(c, simple_args, env, true, &res);
	assert_int_equal(res.exit_code, 0);
	r = only_request(c->fake);
	assert_string_equal(r->target, "/api/events");
	fake_request_free(r);
	assert_int_equal(fake_ilert_count(other), 1);
	proc_result_free(&res);
	fake_ilert_stop(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_event_202, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_log_lines_stay_valid_json, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_minimal_event_200, setup, teardown),
		cmocka_unit_test_setup_teardown(test_integration_key_from_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4xx_exit_1_with_excerpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4xx_long_body_cut_and_newlines, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_4xx_excerpt_counts_characters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5xx_one_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_from_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_url_env_and_flag_precedence, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
