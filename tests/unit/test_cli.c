/* Command-line parsing and validation (SPEC §4): every rule of §4.1 and every row of §4.9. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "version.h"

static const char *const env_names[] = {
	"ILERT_INTEGRATION_KEY", "ILERT_API_KEY", "ILERT_API_URL", "ILERT_BEAT_URL",
	"ILAGENT_HTTP_TOKEN", "ILAGENT_LOG", NULL,
};

static int clear_env(void **state)
{
	(void)state;
	for (int i = 0; env_names[i]; i++)
		unsetenv(env_names[i]);
	return 0;
}

struct parsed {
	enum cli_status status;
	struct config cfg;
	char *error;
	char *out;
};

/* Parses a NULL-terminated argument list (without the program name). */
static void parse(struct parsed *p, const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = "ilagent";
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	size_t out_len = 0;
	p->out = NULL;
	FILE *out = open_memstream(&p->out, &out_len);
	p->status = cli_parse(argc, argv, out, &p->cfg, &p->error);
	fclose(out);
}

static void release(struct parsed *p)
{
	config_free(&p->cfg);
	free(p->error);
	free(p->out);
}

/* Asserts that the arguments give exactly this usage error. */
#define assert_usage(msg, ...)                                                  \
	do {                                                                    \
		struct parsed p_;                                               \
		parse(&p_, __VA_ARGS__, NULL);                                  \
		assert_int_equal(p_.status, CLI_USAGE);                         \
		assert_string_equal(p_.error, msg);                             \
		release(&p_);                                                   \
	} while (0)

#define assert_runs(...)                                                        \
	do {                                                                    \
		struct parsed p_;                                               \
		parse(&p_, __VA_ARGS__, NULL);                                  \
		if (p_.status != CLI_RUN)                                       \
			fail_msg("unexpected error: %s", p_.error);             \
		release(&p_);                                                   \
	} while (0)

static void test_no_subcommand(void **state)
{
	(void)state;
	assert_usage("a subcommand is required: daemon, event, heartbeat or queue (see 'ilagent --help')", "-v");
	struct parsed p;
	parse(&p, NULL);
	assert_int_equal(p.status, CLI_USAGE);
	release(&p);
}

static void test_version_and_help(void **state)
{
	(void)state;
	struct parsed p;
	parse(&p, "--version", NULL);
	assert_int_equal(p.status, CLI_DONE);
	assert_string_equal(p.out, "ilagent " ILAGENT_VERSION "\n");
	release(&p);

	parse(&p, "daemon", "-p", "1", "-V", NULL);
	assert_int_equal(p.status, CLI_DONE);
	assert_string_equal(p.out, "ilagent " ILAGENT_VERSION "\n");
	release(&p);

	parse(&p, "-h", NULL);
	assert_int_equal(p.status, CLI_DONE);
	assert_true(strncmp(p.out, "ilagent " ILAGENT_VERSION " \xe2\x80\x94 Bridge your infrastructure to ilert.\n", strlen("ilagent " ILAGENT_VERSION " \xe2\x80\x94 Bridge your infrastructure to ilert.\n")) == 0);
	assert_non_null(strstr(p.out, "daemon"));
	release(&p);

	/* help for the current level, at any position, even after a bad value */
	parse(&p, "daemon", "--mqtt_qos", "9", "--help", NULL);
	assert_int_equal(p.status, CLI_DONE);
	assert_non_null(strstr(p.out, "--mqtt_qos"));
	assert_non_null(strstr(p.out, "--kafka_config"));
	assert_null(strstr(p.out, "--event_type"));
	release(&p);

	parse(&p, "event", "-h", NULL);
	assert_int_equal(p.status, CLI_DONE);
	assert_non_null(strstr(p.out, "--event_type"));
	assert_null(strstr(p.out, "--mqtt_qos"));
	release(&p);

	parse(&p, "queue", "list", "--help", NULL);
	assert_int_equal(p.status, CLI_DONE);
	assert_non_null(strstr(p.out, "--limit"));
	release(&p);

	/* a value that looks like -h is a value */
	parse(&p, "event", "-k", "k", "-t", "ALERT", "-s", "-h", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_string_equal(p.cfg.summary, "-h");
	release(&p);
}

static void test_value_forms(void **state)
{
	(void)state;
	struct parsed p;
	parse(&p, "daemon", "-p=8978", "--shift_offset", "-2", "-e", "a/b", "--mqtt_name=x=y",
	      "-rbeat", "-X", "client.id=c", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.port, 8978);
	assert_true(p.cfg.http_enabled);
	assert_int_equal(p.cfg.shift_offset, -2);
	assert_string_equal(p.cfg.event_topic, "a/b");
	assert_string_equal(p.cfg.mqtt_name, "x=y");
	assert_string_equal(p.cfg.heartbeat_topic, "beat");
	release(&p);

	parse(&p, "daemon", "-p8979", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.port, 8979);
	release(&p);
}

static void test_defaults(void **state)
{
	(void)state;
	struct parsed p;
	parse(&p, "daemon", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.cmd, CMD_DAEMON);
	assert_false(p.cfg.http_enabled);
	assert_int_equal(p.cfg.port, 8977);
	assert_string_equal(p.cfg.file, "./ilagent.db3");
	assert_string_equal(p.cfg.api_url, "https://api.ilert.com");
	assert_string_equal(p.cfg.beat_url, "https://beat.ilert.com");
	assert_int_equal(p.cfg.api_timeout, 25);
	assert_int_equal(p.cfg.mqtt_port, 1883);
	assert_string_equal(p.cfg.mqtt_name, "ilagent");
	assert_string_equal(p.cfg.kafka_group_id, "ilagent");
	assert_string_equal(p.cfg.bind, "0.0.0.0");
	assert_string_equal(p.cfg.map_key_email, "data.email");
	assert_string_equal(p.cfg.map_key_shift, "data.shift");
	assert_int_equal(p.cfg.max_retries, 100);
	assert_int_equal(p.cfg.max_body, 16000);
	assert_int_equal(p.cfg.max_batch_body, 4194304);
	assert_int_equal(p.cfg.max_queue, 1000000);
	assert_int_equal(p.cfg.max_dead, 100000);
	assert_int_equal(p.cfg.db_sync, DB_SYNC_FULL);
	assert_int_equal(p.cfg.dedup_window, 10);
	assert_int_equal(p.cfg.forwarders, 8);
	assert_int_equal(p.cfg.rate_limit, 0);
	assert_int_equal(p.cfg.retry_max_backoff, 60);
	assert_int_equal(p.cfg.shutdown_timeout, 10);
	assert_int_equal(p.cfg.policy_cache_ttl, 300);
	assert_int_equal(p.cfg.kafka_offset_reset, KAFKA_RESET_LATEST);
	assert_int_equal(p.cfg.mqtt_version, MQTT_V5);
	assert_int_equal(p.cfg.mqtt_session_expiry, 86400);
	assert_int_equal(p.cfg.log_level, LOG_LVL_WARN);
	assert_null(p.cfg.api_key);
	assert_null(p.cfg.http_token);
	release(&p);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	assert_usage("unknown option '--nope' for 'ilagent daemon'", "daemon", "--nope");
	assert_usage("unknown option '-Z' for 'ilagent'", "-Z", "daemon");
	/* subcommand options are not global */
	assert_usage("unknown option '-p' for 'ilagent'", "-p", "1", "daemon");
	assert_usage("--port: a value is required", "daemon", "--port");
	assert_usage("-p: a value is required", "daemon", "-p");
	assert_usage("-p: given more than once", "daemon", "-p", "1", "-p", "2");
	assert_usage("--port: given more than once", "daemon", "-p", "1", "--port", "2");
	assert_usage("unexpected argument 'extra'", "daemon", "extra");
	assert_usage("unrecognized subcommand 'deamon' (expected daemon, event, heartbeat or queue)", "deamon");
	assert_usage("--mqtt_tls: takes no value", "daemon", "--mqtt_tls=1");
	/* syntax errors win over value errors, whatever their position */
	assert_usage("unknown option '--bogus' for 'ilagent daemon'", "daemon", "-p", "0", "--bogus");
}

static void test_global_options_anywhere(void **state)
{
	(void)state;
	struct parsed p;
	parse(&p, "-f", "/tmp/x.db3", "queue", "stats", "--api_timeout", "5", "-vv", "--log_format", "json", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_string_equal(p.cfg.file, "/tmp/x.db3");
	assert_int_equal(p.cfg.api_timeout, 5);
	assert_int_equal(p.cfg.verbose, 2);
	assert_int_equal(p.cfg.log_level, LOG_LVL_INFO);
	assert_int_equal(p.cfg.log_format, LOG_FORMAT_JSON);
	release(&p);

	parse(&p, "-v", "daemon", "-vv", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.verbose, 3);
	assert_int_equal(p.cfg.log_level, LOG_LVL_DEBUG);
	release(&p);
}

static void test_ports(void **state)
{
	(void)state;
	assert_usage("-p: Failed to parse http port", "daemon", "-p", "0");
	assert_usage("-p: Failed to parse http port", "daemon", "-p", "70000");
	assert_usage("--port: Failed to parse http port", "daemon", "--port", "abc");
	assert_usage("-q: Failed to parse mqtt port", "daemon", "-q", "65536");
	assert_usage("--mqtt_port: Failed to parse mqtt port", "daemon", "--mqtt_port", "x");
	assert_runs("daemon", "-p", "65535");
	assert_runs("daemon", "-p", "1");
}

static void test_integer_rows(void **state)
{
	(void)state;
	assert_usage("--mqtt_qos: Failed to parse mqtt_qos as integer", "daemon", "--mqtt_qos", "one");
	assert_usage("--mqtt_qos: mqtt_qos must be 0, 1, or 2", "daemon", "--mqtt_qos", "3");
	assert_usage("--shift_offset: Failed to parse shift_offset as integer", "daemon", "--shift_offset", "1.5");
	assert_usage("--shift_offset: Failed to parse shift_offset as integer", "daemon", "--shift_offset", "9223372036854775808");
	assert_runs("daemon", "--shift_offset", "-9223372036854775808");
	assert_usage("--max_retries: Failed to parse max_retries as integer", "daemon", "--max_retries", "4294967296");
	assert_usage("--max_retries: Failed to parse max_retries as integer", "daemon", "--max_retries", "x");
	assert_runs("daemon", "--max_retries", "4294967295");
	assert_usage("--forwarders: Failed to parse forwarders as integer", "daemon", "--forwarders", "");
	assert_usage("--forwarders: forwarders must be between 1 and 64", "daemon", "--forwarders", "65");
	assert_usage("--forwarders: forwarders must be between 1 and 64", "daemon", "--forwarders", "0");
	assert_usage("--api_timeout: api_timeout must be between 1 and 600", "event", "--api_timeout", "601");
	assert_usage("--max_body: max_body must be between 1 and 67108864", "daemon", "--max_body", "0");
	assert_usage("--max_batch_body: max_batch_body must be between 1 and 268435456", "daemon", "--max_batch_body", "268435457");
	assert_usage("--max_queue: max_queue must be between 1 and 1000000000", "daemon", "--max_queue", "0");
	assert_usage("--max_dead: max_dead must be between 0 and 1000000000", "daemon", "--max_dead", "-1");
	assert_usage("--dedup_window: dedup_window must be between 0 and 86400", "daemon", "--dedup_window", "86401");
	assert_usage("--rate_limit: rate_limit must be between 0 and 100000", "daemon", "--rate_limit", "100001");
	assert_usage("--retry_max_backoff: retry_max_backoff must be between 1 and 86400", "daemon", "--retry_max_backoff", "0");
	assert_usage("--shutdown_timeout: shutdown_timeout must be between 0 and 3600", "daemon", "--shutdown_timeout", "3601");
	assert_usage("--policy_cache_ttl: policy_cache_ttl must be between 0 and 86400", "daemon", "--policy_cache_ttl", "86401");
	assert_usage("--mqtt_session_expiry: mqtt_session_expiry must be between 0 and 4294967295", "daemon", "--mqtt_session_expiry", "4294967296");
	assert_usage("--limit: limit must be between 0 and 1000000000", "queue", "list", "--limit", "1000000001");
	assert_usage("--limit: Failed to parse limit as integer", "queue", "list", "--limit", "ten");
}

static void test_enum_rows(void **state)
{
	(void)state;
	assert_usage("-t: invalid value 'alert', expected one of: ALERT, ACCEPT, RESOLVE", "event", "-k", "k", "-t", "alert", "-s", "x");
	assert_usage("-o: invalid value 'MEDIUM', expected one of: LOW, HIGH", "event", "-k", "k", "-t", "ALERT", "-s", "x", "-o", "MEDIUM");
	assert_usage("--log_format: invalid value 'xml', expected one of: text, json", "daemon", "--log_format", "xml");
	assert_usage("--db_sync: invalid value 'off', expected one of: normal, full", "daemon", "--db_sync", "off");
	assert_usage("--kafka_offset_reset: invalid value 'none', expected one of: earliest, latest", "daemon", "--kafka_offset_reset", "none");
	assert_usage("--mqtt_version: invalid value '3', expected one of: 3.1.1, 5", "daemon", "--mqtt_version", "3");
	struct parsed p;
	parse(&p, "daemon", "--db_sync", "normal", "--kafka_offset_reset", "earliest", "--mqtt_version", "3.1.1", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.db_sync, DB_SYNC_NORMAL);
	assert_int_equal(p.cfg.kafka_offset_reset, KAFKA_RESET_EARLIEST);
	assert_int_equal(p.cfg.mqtt_version, MQTT_V311);
	release(&p);
}

static void test_value_order(void **state)
{
	(void)state;
	/* the first failing value in command-line order is reported */
	assert_usage("--forwarders: forwarders must be between 1 and 64", "daemon", "--forwarders", "0", "-p", "0");
	assert_usage("-p: Failed to parse http port", "daemon", "-p", "0", "--forwarders", "0");
}

static void test_string_rows(void **state)
{
	(void)state;
	assert_usage("--api_url: must be an http:// or https:// URL", "event", "--api_url", "ftp://x");
	assert_usage("--beat_url: must be an http:// or https:// URL", "daemon", "--beat_url", "beat.ilert.com");
	assert_usage("--bind: not an IPv4 or IPv6 address", "daemon", "-p", "1", "--bind", "localhost");
	assert_runs("daemon", "-p", "1", "--bind", "::1");
	assert_runs("daemon", "-p", "1", "--bind", "127.0.0.1");
	assert_usage("--http_token: must not be empty", "daemon", "-p", "1", "--http_token", "");
	assert_usage("--mqtt_shared_group: invalid shared subscription group", "daemon", "--mqtt_shared_group", "a/b");
	assert_usage("--mqtt_shared_group: invalid shared subscription group", "daemon", "--mqtt_shared_group", "");
	assert_usage("--mqtt_shared_group: invalid shared subscription group", "daemon", "--mqtt_shared_group", "g+");
	assert_usage("--mqtt_shared_group: invalid shared subscription group", "daemon", "--mqtt_shared_group", "#");

	struct parsed p;
	parse(&p, "event", "-k", "k", "-t", "ALERT", "-s", "x", "--api_url", "http://127.0.0.1:9/", "--beat_url", "https://b//", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_string_equal(p.cfg.api_url, "http://127.0.0.1:9");
	assert_string_equal(p.cfg.beat_url, "https://b/");
	release(&p);
}

static void test_url_env(void **state)
{
	(void)state;
	setenv("ILERT_API_URL", "http://env-api/", 1);
	setenv("ILERT_BEAT_URL", "http://env-beat", 1);
	struct parsed p;
	parse(&p, "heartbeat", "-k", "k", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_string_equal(p.cfg.api_url, "http://env-api");
	assert_string_equal(p.cfg.beat_url, "http://env-beat");
	release(&p);
	/* flags win over the environment */
	parse(&p, "heartbeat", "-k", "k", "--api_url", "https://flag", NULL);
	assert_string_equal(p.cfg.api_url, "https://flag");
	release(&p);
	setenv("ILERT_API_URL", "nope", 1);
	assert_usage("ILERT_API_URL: must be an http:// or https:// URL", "heartbeat", "-k", "k");
}

static void test_topics(void **state)
{
	(void)state;
	assert_usage("-e: 'a/#/b' is not a valid MQTT topic filter", "daemon", "-m", "h", "-e", "a/#/b");
	assert_usage("--heartbeat_topic: 'a+' is not a valid MQTT topic filter", "daemon", "-m", "h", "--heartbeat_topic", "a+");
	/* without MQTT, an MQTT wildcard is not checked as a filter */
	assert_usage("-e: 'a/+' is not a valid Kafka topic name", "daemon", "--kafka_brokers", "b:9092", "-e", "a/+");
	assert_usage("--policy_topic: invalid regular expression '^(x'", "daemon", "--kafka_brokers", "b:9092", "--policy_topic", "^(x", "--policy_routing_keys", "a");
	assert_runs("daemon", "--kafka_brokers", "b:9092", "-e", "^alerts\\..*");
	assert_runs("daemon", "-m", "h", "-e", "site/+/alarm", "-r", "#");
	/* no component: topic options only convert mqtt_queue rows and are not checked */
	assert_runs("daemon", "-e", "a/#/b");
}

static void test_kafka_config(void **state)
{
	(void)state;
	assert_usage("-X: expected key=value", "daemon", "-X", "novalue");
	assert_usage("--kafka_config: expected key=value", "daemon", "--kafka_config", "=v");
	assert_usage("-X: property 'bootstrap.servers' is managed by ilagent; use --kafka_brokers instead", "daemon", "-X", "bootstrap.servers=x");
	assert_usage("-X: property 'group.id' is managed by ilagent; use --kafka_group_id instead", "daemon", "-X", "group.id=x");
	assert_usage("-X: property 'auto.offset.reset' is managed by ilagent; use --kafka_offset_reset instead", "daemon", "-X", "auto.offset.reset=x");
	assert_usage("-X: property 'enable.auto.commit' is managed by ilagent and cannot be changed", "daemon", "-X", "enable.auto.commit=false");
	assert_usage("-X: property 'enable.auto.offset.store' is managed by ilagent and cannot be changed", "daemon", "-X", "enable.auto.offset.store=true");
	assert_usage("-X: property 'enable.partition.eof' is managed by ilagent and cannot be changed", "daemon", "-X", "enable.partition.eof=true");
	struct parsed p;
	parse(&p, "daemon", "-X", "no.such.property=1", NULL);
	assert_int_equal(p.status, CLI_USAGE);
	assert_true(strncmp(p.error, "-X: ", 4) == 0);
	assert_non_null(strstr(p.error, "no.such.property"));
	release(&p);
	/* repeatable, kept in order */
	parse(&p, "daemon", "-X", "session.timeout.ms=7000", "--kafka_config", "client.id=a", "-X", "client.id=b", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.kafka_config_count, 3);
	assert_string_equal(p.cfg.kafka_config[0], "session.timeout.ms=7000");
	assert_string_equal(p.cfg.kafka_config[2], "client.id=b");
	release(&p);
}

static void test_event_required(void **state)
{
	(void)state;
	assert_usage("--event_type: is required", "event", "-k", "k", "-s", "x");
	assert_usage("--summary: is required", "event", "-k", "k", "-t", "ALERT");
	assert_usage("Integration key is required: provide --integration_key or set ILERT_INTEGRATION_KEY env var", "event", "-t", "ALERT", "-s", "");
	assert_usage("Integration key is required: provide --integration_key or set ILERT_INTEGRATION_KEY env var", "heartbeat");
	assert_usage("Integration key is required: provide --integration_key or set ILERT_INTEGRATION_KEY env var", "heartbeat", "-k", "");
	setenv("ILERT_INTEGRATION_KEY", "from-env", 1);
	struct parsed p;
	parse(&p, "event", "-t", "RESOLVE", "-s", "", "-i", " a ", "-o", "HIGH", "-d", "d", "-g", "http://img", "-l", "http://link", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_string_equal(p.cfg.integration_key, "from-env");
	assert_string_equal(p.cfg.event_type, "RESOLVE");
	assert_string_equal(p.cfg.summary, "");
	assert_string_equal(p.cfg.alert_key, " a ");
	assert_string_equal(p.cfg.priority, "HIGH");
	release(&p);
	parse(&p, "heartbeat", "-k", "flag", NULL);
	assert_string_equal(p.cfg.integration_key, "flag");
	release(&p);
	parse(&p, "heartbeat", "-k", "", NULL);
	assert_string_equal(p.cfg.integration_key, "from-env");
	release(&p);
}

static void test_cross_rules(void **state)
{
	(void)state;
	assert_usage("At least one MQTT topic must be configured: --event_topic, --heartbeat_topic, or --policy_topic", "daemon", "-m", "broker");
	assert_usage("At least one Kafka topic must be configured: --event_topic, --heartbeat_topic, or --policy_topic", "daemon", "--kafka_brokers", "b:1");
	assert_usage("--policy_topic requires --policy_routing_keys", "daemon", "-m", "h", "--policy_topic", "p");
	assert_usage("--policy_topic requires the ILERT_API_KEY environment variable", "daemon", "-m", "h", "--policy_topic", "p", "--policy_routing_keys", "a");
	setenv("ILERT_API_KEY", "   ", 1);
	assert_usage("--policy_topic requires the ILERT_API_KEY environment variable", "daemon", "-m", "h", "--policy_topic", "p", "--policy_routing_keys", "a");
	setenv("ILERT_API_KEY", "secretkey", 1);
	assert_runs("daemon", "-m", "h", "--policy_topic", "p", "--policy_routing_keys", "a");
	assert_usage("--mqtt_client_cert and --mqtt_client_key must be given together", "daemon", "--mqtt_client_cert", "/c.pem");
	assert_usage("--mqtt_client_cert and --mqtt_client_key must be given together", "daemon", "-m", "h", "-e", "t", "--mqtt_tls", "--mqtt_client_key", "/k.pem");
	assert_usage("Failed to read MQTT CA certificate file /nonexistent/ca.pem: No such file or directory", "daemon", "-m", "h", "-e", "t", "--mqtt_tls", "--mqtt_ca", "/nonexistent/ca.pem");
	/* TLS files are only read with -m and --mqtt_tls */
	assert_runs("daemon", "-m", "h", "-e", "t", "--mqtt_ca", "/nonexistent/ca.pem");
	assert_runs("daemon", "--mqtt_tls", "--mqtt_ca", "/nonexistent/ca.pem");
	setenv("ILAGENT_LOG", "verbose", 1);
	assert_usage("ILAGENT_LOG must be one of: error, warn, info, debug", "daemon");
	assert_usage("ILAGENT_LOG must be one of: error, warn, info, debug", "queue", "stats");
	/* value errors come before cross-option rules */
	assert_usage("-p: Failed to parse http port", "daemon", "-p", "0");
	setenv("ILAGENT_LOG", "debug", 1);
	struct parsed p;
	parse(&p, "event", "-k", "k", "-t", "ALERT", "-s", "x", NULL);
	assert_int_equal(p.cfg.log_level, LOG_LVL_DEBUG);
	release(&p);
}

static void test_api_key(void **state)
{
	(void)state;
	struct parsed p;
	setenv("ILERT_API_KEY", "  bEaReR   abc-123  ", 1);
	parse(&p, "daemon", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_string_equal(p.cfg.api_key, "abc-123");
	assert_true(p.cfg.api_key_had_bearer);
	assert_int_equal(p.cfg.warning_count, 1);
	assert_string_equal(p.cfg.warnings[0], "ILERT_API_KEY starts with 'Bearer ', stripping prefix");
	release(&p);
	setenv("ILERT_API_KEY", "plain", 1);
	parse(&p, "daemon", NULL);
	assert_string_equal(p.cfg.api_key, "plain");
	assert_false(p.cfg.api_key_had_bearer);
	release(&p);
	setenv("ILERT_API_KEY", "", 1);
	parse(&p, "daemon", NULL);
	assert_null(p.cfg.api_key);
	release(&p);
	setenv("ILAGENT_HTTP_TOKEN", "tok", 1);
	parse(&p, "daemon", "-p", "1", NULL);
	assert_string_equal(p.cfg.http_token, "tok");
	release(&p);
	parse(&p, "daemon", "-p", "1", "--http_token", "flag", NULL);
	assert_string_equal(p.cfg.http_token, "flag");
	release(&p);
}

static bool has_warning(const struct config *cfg, const char *text)
{
	for (int i = 0; i < cfg->warning_count; i++)
		if (strcmp(cfg->warnings[i], text) == 0)
			return true;
	return false;
}

static void test_warnings(void **state)
{
	(void)state;
	struct parsed p;
	parse(&p, "daemon", "-m", "h", "-e", "t", "--mqtt_version", "3.1.1", "--mqtt_qos", "2",
	      "--mqtt_password", "pw", "--filter_val", "v", "--mqtt_buffer", "--mqtt_ca", "/x",
	      "--mqtt_session_expiry", "5", "--bind", "::", "--kafka_group_id", "g", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_true(has_warning(&p.cfg, "MQTT 3.1.1 acknowledges QoS 2 before ilagent can commit; subscribing with QoS 1"));
	assert_true(has_warning(&p.cfg, "--mqtt_password is ignored without --mqtt_username"));
	assert_true(has_warning(&p.cfg, "--filter_val is ignored without --filter_key"));
	assert_true(has_warning(&p.cfg, "--mqtt_buffer has no effect: all messages are persisted"));
	assert_true(has_warning(&p.cfg, "--mqtt_ca is ignored without --mqtt_tls"));
	assert_true(has_warning(&p.cfg, "--mqtt_session_expiry has no effect with MQTT 3.1.1"));
	assert_true(has_warning(&p.cfg, "--bind has no effect without --port"));
	assert_true(has_warning(&p.cfg, "--kafka_group_id has no effect without --kafka_brokers"));
	assert_false(has_warning(&p.cfg, "QoS 0 messages can be lost between broker and agent"));
	release(&p);

	parse(&p, "daemon", "-m", "h", "-e", "t", "--mqtt_tls", NULL);
	assert_true(has_warning(&p.cfg, "QoS 0 messages can be lost between broker and agent"));
	assert_true(has_warning(&p.cfg, "No CA certificate provided, using system default certificates"));
	release(&p);

	parse(&p, "daemon", "-q", "1884", "-X", "client.id=a", "--http_token", "t", "--max_batch_body", "5", "-e", "x", NULL);
	assert_true(has_warning(&p.cfg, "--mqtt_port has no effect without --mqtt_host"));
	assert_true(has_warning(&p.cfg, "--kafka_config has no effect without --kafka_brokers"));
	assert_true(has_warning(&p.cfg, "--http_token has no effect without --port"));
	assert_true(has_warning(&p.cfg, "--max_batch_body has no effect without --port"));
	assert_int_equal(p.cfg.warning_count, 4); /* topic options never warn */
	release(&p);
}

static void test_queue(void **state)
{
	(void)state;
	assert_usage("a queue command is required: stats, list, retry or purge (see 'ilagent queue --help')", "queue");
	assert_usage("unrecognized queue command 'show' (expected stats, list, retry or purge)", "queue", "show");
	assert_usage("queue retry needs a dead-letter id or --all", "queue", "retry");
	assert_usage("queue retry needs a dead-letter id or --all", "queue", "retry", "abc");
	assert_usage("queue retry needs a dead-letter id or --all", "queue", "retry", "0");
	assert_usage("queue retry needs a dead-letter id or --all", "queue", "retry", "3", "--all");
	assert_usage("queue purge requires --dead", "queue", "purge");
	assert_usage("unknown option '--all' for 'ilagent queue list'", "queue", "list", "--all");
	assert_usage("unknown option '--json' for 'ilagent queue retry'", "queue", "retry", "--all", "--json");

	struct parsed p;
	parse(&p, "queue", "retry", "42", NULL);
	assert_int_equal(p.status, CLI_RUN);
	assert_int_equal(p.cfg.queue_action, QUEUE_RETRY);
	assert_int_equal(p.cfg.queue_retry_id, 42);
	release(&p);
	parse(&p, "queue", "list", "--dead", "--limit", "0", "--json", NULL);
	assert_int_equal(p.cfg.queue_action, QUEUE_LIST);
	assert_true(p.cfg.queue_dead);
	assert_true(p.cfg.queue_json);
	assert_int_equal(p.cfg.queue_limit, 0);
	release(&p);
	parse(&p, "queue", "list", NULL);
	assert_int_equal(p.cfg.queue_limit, 50);
	release(&p);
	parse(&p, "queue", "purge", "--dead", NULL);
	assert_int_equal(p.cfg.queue_action, QUEUE_PURGE);
	release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_no_subcommand, clear_env),
		cmocka_unit_test_setup(test_version_and_help, clear_env),
		cmocka_unit_test_setup(test_value_forms, clear_env),
		cmocka_unit_test_setup(test_defaults, clear_env),
		cmocka_unit_test_setup(test_syntax_errors, clear_env),
		cmocka_unit_test_setup(test_global_options_anywhere, clear_env),
		cmocka_unit_test_setup(test_ports, clear_env),
		cmocka_unit_test_setup(test_integer_rows, clear_env),
		cmocka_unit_test_setup(test_enum_rows, clear_env),
		cmocka_unit_test_setup(test_value_order, clear_env),
		cmocka_unit_test_setup(test_string_rows, clear_env),
		cmocka_unit_test_setup(test_url_env, clear_env),
		cmocka_unit_test_setup(test_topics, clear_env),
		cmocka_unit_test_setup(test_kafka_config, clear_env),
		cmocka_unit_test_setup(test_event_required, clear_env),
		cmocka_unit_test_setup(test_cross_rules, clear_env),
		cmocka_unit_test_setup(test_api_key, clear_env),
		cmocka_unit_test_setup(test_warnings, clear_env),
		cmocka_unit_test_setup(test_queue, clear_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
