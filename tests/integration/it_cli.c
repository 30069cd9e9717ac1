/* The built binary's command line (SPEC §4.1, §4.2, §4.9): exact error lines, exit codes,
 * --help/--version, and that a usage error touches nothing on disk. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "version.h"

static const char *const clean_env[] = {
	"ILERT_INTEGRATION_KEY", "ILERT_API_KEY", "ILERT_API_URL", "ILERT_BEAT_URL",
	"ILAGENT_HTTP_TOKEN", "ILAGENT_LOG", NULL,
};

/* Runs ilagent with args and asserts exit 2 and exactly one stderr line
 * "ilagent: error: <message>" and nothing on stdout. */
static void expect_usage_error(const char *const args[], const char *const env[], const char *message)
{
	struct proc_result r;
	assert_int_equal(proc_run_ilagent(args, env ? env : clean_env, 10000, &r), 0);
	char expected[1024];
	snprintf(expected, sizeof(expected), "ilagent: error: %s\n", message);
	if (r.exit_code != 2 || strcmp(r.err, expected) != 0)
		fail_msg("exit %d, stderr:\n%s\nexpected:\n%s", r.exit_code, r.err, expected);
	assert_string_equal(r.out, "");
	proc_result_free(&r);
}

#define USAGE(msg, ...)                                                     \
	do {                                                                \
		const char *const args_[] = { __VA_ARGS__, NULL };          \
		expect_usage_error(args_, NULL, msg);                       \
	} while (0)

static void test_version(void **state)
{
	(void)state;
	const char *const args[] = { "--version", NULL };
	struct proc_result r;
	assert_int_equal(proc_run_ilagent(args, clean_env, 10000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.out, "ilagent " ILAGENT_VERSION "\n");
	assert_string_equal(r.err, "");
	proc_result_free(&r);

	const char *const args2[] = { "-V", NULL };
	assert_int_equal(proc_run_ilagent(args2, clean_env, 10000, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.out, "ilagent " ILAGENT_VERSION "\n");
	proc_result_free(&r);
}

static void test_help(void **state)
{
	(void)state;
	const char *const header = "ilagent " ILAGENT_VERSION " \xe2\x80\x94 Bridge your infrastructure to ilert.\n";
	const char *const levels[][4] = {
		{ "--help", NULL }, { "daemon", "-h", NULL }, { "event", "--help", NULL },
		{ "heartbeat", "-h", NULL }, { "queue", "-h", NULL }, { "queue", "list", "-h", NULL },
	};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct proc_result r;
		assert_int_equal(proc_run_ilagent(levels[i], clean_env, 10000, &r), 0);
		assert_int_equal(r.exit_code, 0);
		assert_true(strncmp(r.out, header, strlen(header)) == 0);
		assert_string_equal(r.err, "");
		proc_result_free(&r);
	}
}

static void test_syntax(void **state)
{
	(void)state;
	USAGE("a subcommand is required: daemon, event, heartbeat or queue (see 'ilagent --help')", "-v");
	USAGE("unknown option '--nope' for 'ilagent daemon'", "daemon", "--nope");
	USAGE("-p: given more than once", "daemon", "-p", "1", "-p", "2");
	USAGE("--port: a value is required", "daemon", "--port");
	USAGE("unexpected argument 'x'", "event", "x");
	{
		const char *const args[] = { NULL };
		expect_usage_error(args, NULL, "a subcommand is required: daemon, event, heartbeat or queue (see 'ilagent --help')");
	}
}

static void test_value_rows(void **state)
{
	(void)state;
	USAGE("-p: Failed to parse http port", "daemon", "-p", "0");
	USAGE("--port: Failed to parse http port", "daemon", "--port", "70000");
	USAGE("-q: Failed to parse mqtt port", "daemon", "-q", "x");
	USAGE("--mqtt_qos: Failed to parse mqtt_qos as integer", "daemon", "--mqtt_qos", "x");
	USAGE("--mqtt_qos: mqtt_qos must be 0, 1, or 2", "daemon", "--mqtt_qos", "3");
	USAGE("--shift_offset: Failed to parse shift_offset as integer", "daemon", "--shift_offset", "x");
	USAGE("--max_retries: Failed to parse max_retries as integer", "daemon", "--max_retries", "-1");
	USAGE("--forwarders: forwarders must be between 1 and 64", "daemon", "--forwarders", "100");
	USAGE("--api_timeout: Failed to parse api_timeout as integer", "--api_timeout", "1s", "heartbeat", "-k", "k");
	USAGE("-t: invalid value 'Alert', expected one of: ALERT, ACCEPT, RESOLVE", "event", "-k", "k", "-t", "Alert", "-s", "s");
	USAGE("--log_format: invalid value 'yaml', expected one of: text, json", "queue", "stats", "--log_format", "yaml");
	USAGE("--api_url: must be an http:// or https:// URL", "event", "--api_url", "api.ilert.com", "-k", "k", "-t", "ALERT", "-s", "s");
	USAGE("--bind: not an IPv4 or IPv6 address", "daemon", "-p", "8977", "--bind", "0.0.0.0:80");
	USAGE("--http_token: must not be empty", "daemon", "--http_token=");
	USAGE("-X: expected key=value", "daemon", "-X", "foo");
	USAGE("-X: property 'group.id' is managed by ilagent; use --kafka_group_id instead", "daemon", "-X", "group.id=g");
	USAGE("-X: property 'enable.auto.commit' is managed by ilagent and cannot be changed", "daemon", "-X", "enable.auto.commit=true");
	USAGE("--event_topic: 'a/#/b' is not a valid MQTT topic filter", "daemon", "-m", "localhost", "--event_topic", "a/#/b");
	USAGE("-e: 'bad topic' is not a valid Kafka topic name", "daemon", "--kafka_brokers", "localhost:9092", "-e", "bad topic");
	USAGE("-e: invalid regular expression '^a(['", "daemon", "--kafka_brokers", "localhost:9092", "-e", "^a([");
	USAGE("--mqtt_shared_group: invalid shared subscription group", "daemon", "--mqtt_shared_group", "a+b");
}

static void test_cross_rules(void **state)
{
	(void)state;
	USAGE("At least one MQTT topic must be configured: --event_topic, --heartbeat_topic, or --policy_topic", "daemon", "-m", "localhost");
	USAGE("At least one Kafka topic must be configured: --event_topic, --heartbeat_topic, or --policy_topic", "daemon", "--kafka_brokers", "localhost:9092");
	USAGE("--policy_topic requires --policy_routing_keys", "daemon", "-m", "localhost", "--policy_topic", "p");
	USAGE("--policy_topic requires the ILERT_API_KEY environment variable", "daemon", "-m", "localhost", "--policy_topic", "p", "--policy_routing_keys", "a,b");
	USAGE("--mqtt_client_cert and --mqtt_client_key must be given together", "daemon", "--mqtt_client_key", "/k.pem");
	USAGE("Failed to read MQTT client certificate file /nonexistent/c.pem: No such file or directory", "daemon", "-m", "localhost", "-e", "t", "--mqtt_tls", "--mqtt_client_cert", "/nonexistent/c.pem", "--mqtt_client_key", "/nonexistent/k.pem");
	USAGE("Integration key is required: provide --integration_key or set ILERT_INTEGRATION_KEY env var", "heartbeat");
	USAGE("--event_type: is required", "event", "-k", "k", "-s", "s");
	USAGE("queue retry needs a dead-letter id or --all", "queue", "retry");
	USAGE("queue purge requires --dead", "queue", "purge");

	const char *const log_env[] = { "ILERT_INTEGRATION_KEY", "ILERT_API_KEY", "ILAGENT_LOG=loud", NULL };
	const char *const args[] = { "queue", "stats", NULL };
	expect_usage_error(args, log_env, "ILAGENT_LOG must be one of: error, warn, info, debug");
}

/* A configuration error prints only the error line, never the warnings of valid options. */
static void test_error_suppresses_warnings(void **state)
{
	(void)state;
	USAGE("-p: Failed to parse http port", "daemon", "-q", "1884", "--mqtt_buffer", "-p", "0");
}

/* Exit 2 leaves no database, lock or journal file behind. */
static void test_usage_error_touches_nothing(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	char db[512];
	snprintf(db, sizeof(db), "%s/q.db3", dir);
	const char *const args[] = { "daemon", "-f", db, "--max_queue", "0", NULL };
	expect_usage_error(args, NULL, "--max_queue: max_queue must be between 1 and 1000000000");
	const char *const args2[] = { "queue", "-f", db, "purge", NULL };
	expect_usage_error(args2, NULL, "queue purge requires --dead");
	struct stat st;
	char lock[600];
	snprintf(lock, sizeof(lock), "%s.lock", db);
	assert_int_not_equal(stat(db, &st), 0);
	assert_int_not_equal(stat(lock, &st), 0);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_value_rows),
		cmocka_unit_test(test_cross_rules),
		cmocka_unit_test(test_error_suppresses_warnings),
		cmocka_unit_test(test_usage_error_touches_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
