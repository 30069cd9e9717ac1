/* `ilagent heartbeat` against two fake ilert servers, one as API base and one as heartbeat
 * base (SPEC §4.5, §6.5): routes per key kind, percent-encoded keys, headers, exit codes
 * and the final error line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "fake_ilert.h"
#include "proc.h"
#include "version.h"

#define RUN_TIMEOUT_MS 15000

struct ctx {
	struct fake_ilert *api;
	struct fake_ilert *beat;
};

#define BASE_ENV                                                                          \
	"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",  \
		"NO_PROXY", "ILERT_API_URL", "ILERT_BEAT_URL", "ILERT_INTEGRATION_KEY",    \
		"ILAGENT_LOG", "ILERT_API_KEY=apikey-never-sent-here"

static const char *const base_env[] = { BASE_ENV, NULL };

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->api = fake_ilert_start();
	c->beat = fake_ilert_start();
	*state = c;
	return c->api && c->beat ? 0 : -1;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	fake_ilert_stop(c->api);
	fake_ilert_stop(c->beat);
	free(c);
	return 0;
}

/* Runs `ilagent heartbeat <args> --api_url <api> --beat_url <beat>`. */
static void run_heartbeat(struct ctx *c, const char *const *args, const char *const *env,
			  struct proc_result *res)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = "heartbeat";
	for (; *args; args++)
		argv[n++] = *args;
	argv[n++] = "--api_url";
	argv[n++] = fake_ilert_url(c->api);
	argv[n++] = "--beat_url";
	argv[n++] = fake_ilert_url(c->beat);
	argv[n] = NULL;
	assert_int_equal(proc_run_ilagent(argv, env ? env : base_env, RUN_TIMEOUT_MS, res), 0);
	assert_false(res->timed_out);
}

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

/* The single request that `on` received (and `off` none); caller frees. */
static struct fake_request *only_request(struct fake_ilert *on, struct fake_ilert *off)
{
	assert_int_equal(fake_ilert_wait_count(on, 2, 200), 1);
	assert_int_equal(fake_ilert_count(off), 0);
	struct fake_request *r = fake_ilert_request(on, 0);
	assert_non_null(r);
	return r;
}

static void test_il1hbt_key_gets_on_api_base(void **state)
{
	struct ctx *c = *state;
	struct fake_reply ok = { .status = 202, .body = "{}" };
	fake_ilert_push(c->api, &ok);
	const char *args[] = { "-k", "il1hbt0123456789abc", "-vv", NULL };
	struct proc_result res;
	run_heartbeat(c, args, NULL, &res);
	assert_int_equal(res.exit_code, 0);
	assert_non_null(strstr(res.err, "Heartbeat ping successful"));
	assert_null(strstr(res.err, "ilagent: error:"));

	struct fake_request *r = only_request(c->api, c->beat);
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->target, "/api/heartbeats/il1hbt0123456789abc");
	assert_header(r, "User-Agent", "ilagent/" ILAGENT_VERSION);
	assert_header(r, "Accept", "application/json");
	assert_header(r, "Content-Type", "application/json");
	assert_header(r, "Authorization", NULL);
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_other_key_heads_on_beat_base(void **state)
{
	struct ctx *c = *state;
	struct fake_reply ok = { .status = 200 };
	fake_ilert_push(c->beat, &ok);
	const char *args[] = { "-k", "beatkey-0123456789", NULL };
	struct proc_result res;
	run_heartbeat(c, args, NULL, &res);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.err, "");

	struct fake_request *r = only_request(c->beat, c->api);
	assert_string_equal(r->method, "HEAD");
	assert_string_equal(r->target, "/api/pings/beatkey-0123456789");
	assert_header(r, "User-Agent", "ilagent/" ILAGENT_VERSION);
	assert_header(r, "Accept", "application/json");
	assert_header(r, "Content-Type", "application/json");
	assert_header(r, "Authorization", NULL);
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_keys_are_percent_encoded(void **state)
{
	struct ctx *c = *state;
	const char *args1[] = { "-k", "my key/\xc3\xa4%?#", NULL };
	struct proc_result res;
	run_heartbeat(c, args1, NULL, &res);
	assert_int_equal(res.exit_code, 0);
	struct fake_request *r = only_request(c->beat, c->api);
	assert_string_equal(r->target, "/api/pings/my%20key%2F%C3%A4%25%3F%23");
	fake_request_free(r);
	proc_result_free(&res);
	fake_ilert_reset(c->api);
	fake_ilert_reset(c->beat);

	const char *args2[] = { "-k", "il1hbt a/b", NULL };
	run_heartbeat(c, args2, NULL, &res);
	assert_int_equal(res.exit_code, 0);
	r = only_request(c->api, c->beat);
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->target, "/api/heartbeats/il1hbt%20a%2Fb");
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_key_from_env(void **state)
{
	struct ctx *c = *state;
	const char *env[] = { BASE_ENV, "ILERT_INTEGRATION_KEY=envbeat", NULL };
	const char *args[] = { NULL };
	struct proc_result res;
	run_heartbeat(c, args, env, &res);
	assert_int_equal(res.exit_code, 0);
	struct fake_request *r = only_request(c->beat, c->api);
	assert_string_equal(r->target, "/api/pings/envbeat");
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_4xx_exit_1(void **state)
{
	struct ctx *c = *state;
	struct fake_reply nf = { .status = 404, .body = "{\"message\":\"unknown key\"}" };
	fake_ilert_push(c->beat, &nf);
	const char *args[] = { "-k", "beatkey", NULL };
	struct proc_result res;
	run_heartbeat(c, args, NULL, &res);
	assert_int_equal(res.exit_code, 1);
	assert_non_null(strstr(res.err, "Bad heartbeat http response 404"));
	assert_last_line(&res, "ilagent: error: ilert did not accept the heartbeat: HTTP 404");
	struct fake_request *r = only_request(c->beat, c->api);
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_5xx_one_attempt(void **state)
{
	struct ctx *c = *state;
	struct fake_reply down = { .status = 500, .body = "oops" };
	fake_ilert_set_default(c->api, &down);
	const char *args[] = { "-k", "il1hbtkey", NULL };
	struct proc_result res;
	run_heartbeat(c, args, NULL, &res);
	assert_int_equal(res.exit_code, 1);
	assert_last_line(&res, "ilagent: error: ilert did not accept the heartbeat: HTTP 500");
	assert_int_equal(fake_ilert_wait_count(c->api, 2, 1500), 1);
	assert_int_equal(fake_ilert_count(c->beat), 0);
	proc_result_free(&res);
}

static void test_redirect_not_followed(void **state)
{
	struct ctx *c = *state;
	char headers[128];
	snprintf(headers, sizeof(headers), "Location: %s/api/pings/other\r\n",
		 fake_ilert_url(c->beat));
	struct fake_reply moved = { .status = 301, .headers = headers };
	fake_ilert_push(c->beat, &moved);
	const char *args[] = { "-k", "beatkey", NULL };
	struct proc_result res;
	run_heartbeat(c, args, NULL, &res);
	assert_int_equal(res.exit_code, 1);
	assert_last_line(&res, "ilagent: error: ilert did not accept the heartbeat: HTTP 301");
	struct fake_request *r = only_request(c->beat, c->api);
	fake_request_free(r);
	proc_result_free(&res);
}

static void test_timeout(void **state)
{
	struct ctx *c = *state;
	struct fake_reply slow = { .status = 202, .delay_ms = 3000 };
	fake_ilert_push(c->beat, &slow);
	const char *args[] = { "-k", "beatkey", "--api_timeout", "1", NULL };
	struct proc_result res;
	int64_t t0 = clock_mono_ms();
	run_heartbeat(c, args, NULL, &res);
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
	(void)state;
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", test_free_port());
	const char *argv[] = { "heartbeat", "-k", "beatkey", "--beat_url", url, NULL };
	struct proc_result res;
	assert_int_equal(proc_run_ilagent(argv, base_env, RUN_TIMEOUT_MS, &res), 0);
	assert_int_equal(res.exit_code, 1);
	char buf[1024];
	const char *line = last_line(&res, buf, sizeof(buf));
	const char *prefix = "ilagent: error: could not reach ilert: ";
	assert_int_equal(strncmp(line, prefix, strlen(prefix)), 0);
	assert_true(strlen(line) > strlen(prefix));
	proc_result_free(&res);
}

static void test_debug_logs_mask_the_key(void **state)
{
	struct ctx *c = *state;
	struct fake_reply nf = { .status = 404 };
	fake_ilert_push(c->beat, &nf);
	const char *args[] = { "-k", "secretbeat0123456789", "-vvv", NULL };
	struct proc_result res;
	run_heartbeat(c, args, NULL, &res);
	assert_int_equal(res.exit_code, 1);
	/* The request line is logged at debug, with the key masked. */
	assert_non_null(strstr(res.err, "/api/pings/secr\xe2\x80\xa6"));
	assert_null(strstr(res.err, "secretbeat0123456789"));
	struct fake_request *r = only_request(c->beat, c->api);
	assert_string_equal(r->target, "/api/pings/secretbeat0123456789");
	fake_request_free(r);
	proc_result_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_il1hbt_key_gets_on_api_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_key_heads_on_beat_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_are_percent_encoded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_from_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_4xx_exit_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5xx_one_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug_logs_mask_the_key, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
