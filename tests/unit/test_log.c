/* Logging (§5): formats, levels, masking of registered secrets, rate limiting, and the plain
 * final failure line. stderr is redirected to a temporary file and read back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/log.h"

static char capture_path[] = "/tmp/ilagent-test-log-XXXXXX";
static int saved_stderr = -1;

static int start_capture(void **state)
{
	(void)state;
	int fd = mkstemp(capture_path);
	if (fd < 0)
		return -1;
	fflush(stderr);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
	log_clear_secrets();
	return 0;
}

/* Restores stderr and returns everything logged since start_capture (heap string). */
static char *end_capture(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	FILE *f = fopen(capture_path, "r");
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	unlink(capture_path);
	strcpy(capture_path, "/tmp/ilagent-test-log-XXXXXX");
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_text_format_and_levels(void **state)
{
	start_capture(state);
	log_setup(LOG_LVL_WARN, false);
	log_info("main", "hidden");
	log_warn("mqtt", "connection lost: %s", "reset");
	log_error("store", "bad");
	char *out = end_capture();
	assert_null(strstr(out, "hidden"));
	assert_int_equal(count_lines(out), 2);
	/* 2025-01-31T12:00:00.123Z WARN mqtt: connection lost: reset */
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[19], '.');
	assert_int_equal(out[23], 'Z');
	assert_true(strncmp(out + 24, " WARN mqtt: connection lost: reset\n", 35) == 0);
	assert_non_null(strstr(out, " ERROR store: bad\n"));
	free(out);
}

static void test_json_format(void **state)
{
	start_capture(state);
	log_setup(LOG_LVL_DEBUG, true);
	struct log_ctx ctx = { .source = "mqtt", .kind = "event", .status = 503, .topic = "a/\"b\"" };
	log_msg_ctx(LOG_LVL_INFO, "forward", &ctx, "line\nbreak");
	char *out = end_capture();
	assert_true(strncmp(out, "{\"ts\":\"", 7) == 0);
	const char *rest = strstr(out, "\",\"level\":\"info\",\"component\":\"forward\",\"msg\":\"line\\nbreak\",\"source\":\"mqtt\",\"kind\":\"event\",\"status\":503,\"topic\":\"a/\\\"b\\\"\"}\n");
	assert_non_null(rest);
	assert_int_equal(count_lines(out), 1);
	free(out);
	log_setup(LOG_LVL_WARN, false);
}

/* §5: every JSON line is one valid object, also when a peer sent bytes that are not UTF-8. */
static void test_json_invalid_utf8_replaced(void **state)
{
	start_capture(state);
	log_setup(LOG_LVL_INFO, true);
	struct log_ctx ctx = { .topic = "t/\xc3" };
	log_msg_ctx(LOG_LVL_INFO, "http", &ctx, "GET /api/\xff\xfe 404 caf\xc3\xa9");
	char *out = end_capture();
	assert_null(strchr(out, '\xff'));
	assert_non_null(strstr(out, "\"msg\":\"GET /api/\xef\xbf\xbd\xef\xbf\xbd 404 caf\xc3\xa9\""));
	assert_non_null(strstr(out, "\"topic\":\"t/\xef\xbf\xbd\"}\n"));
	free(out);
	log_setup(LOG_LVL_WARN, false);
}

static void test_masking(void **state)
{
	start_capture(state);
	log_setup(LOG_LVL_WARN, false);
	log_add_secret("il1api0123456789abc");
	log_add_secret("pw12");
	log_warn("http", "POST /api/v1/events/mqtt/il1api0123456789abc failed, password pw12");
	log_fatal_line("bad key il1api0123456789abc");
	char *out = end_capture();
	assert_null(strstr(out, "il1api0123456789abc"));
	assert_null(strstr(out, "pw12"));
	assert_non_null(strstr(out, "/api/v1/events/mqtt/il1a\xe2\x80\xa6 failed, password \xe2\x80\xa6\n"));
	assert_non_null(strstr(out, "ilagent: error: bad key il1a\xe2\x80\xa6\n"));
	free(out);
	log_clear_secrets();
}

static void test_rate_limit(void **state)
{
	start_capture(state);
	log_setup(LOG_LVL_WARN, false);
	for (int i = 0; i < 50; i++)
		log_limited(LOG_LVL_WARN, "kafka", "rejected message: %s", "invalid JSON");
	log_limited(LOG_LVL_WARN, "kafka", "rejected message: %s", "too large");
	char *out = end_capture();
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "rejected message: invalid JSON\n"));
	assert_non_null(strstr(out, "rejected message: too large\n"));
	free(out);
}

static void test_fatal_line_is_plain(void **state)
{
	start_capture(state);
	log_setup(LOG_LVL_ERROR, true);
	log_fatal_line("could not reach ilert: %s", "Connection refused\r\nsecond line");
	char *out = end_capture();
	assert_string_equal(out, "ilagent: error: could not reach ilert: Connection refused  second line\n");
	free(out);
	log_setup(LOG_LVL_WARN, false);
}

static void test_level_parse(void **state)
{
	(void)state;
	enum log_level l;
	assert_int_equal(log_level_parse("error", &l), 0);
	assert_int_equal(l, LOG_LVL_ERROR);
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_not_equal(log_level_parse("trace", &l), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_format_and_levels), cmocka_unit_test(test_json_format),
		cmocka_unit_test(test_json_invalid_utf8_replaced),
		cmocka_unit_test(test_masking),                cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_fatal_line_is_plain),    cmocka_unit_test(test_level_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
