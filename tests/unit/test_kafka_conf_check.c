#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/kafka_conf_check.h"
#include "core/err.h"

static void expect_ok(const char *entry)
{
	char err[512] = "untouched";
	int rc = kafka_conf_check_entry(entry, err, sizeof(err));
	if (rc != 0)
		fail_msg("'%s' rejected: %s", entry, err);
}

static void expect_error(const char *entry, const char *want)
{
	char err[512] = "";
	assert_int_equal(kafka_conf_check_entry(entry, err, sizeof(err)), ILA_ERR_INVALID);
	assert_string_equal(err, want);
}

/* ---- Syntax -------------------------------------------------------------------------- */

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_error("session.timeout.ms", "expected key=value");
	expect_error("", "expected key=value");
	expect_error("=7000", "expected key=value");
	expect_error("=", "expected key=value");
	expect_error(NULL, "expected key=value");
}

/* ---- Reserved properties ------------------------------------------------------------- */

static void test_reserved_with_flag(void **state)
{
	(void)state;
	expect_error("bootstrap.servers=localhost:9092",
		     "property 'bootstrap.servers' is managed by ilagent; use --kafka_brokers "
		     "instead");
	expect_error("group.id=other",
		     "property 'group.id' is managed by ilagent; use --kafka_group_id instead");
	expect_error("auto.offset.reset=earliest",
		     "property 'auto.offset.reset' is managed by ilagent; use "
		     "--kafka_offset_reset instead");
	/* Reserved whatever the value, even an empty one. */
	expect_error("group.id=",
		     "property 'group.id' is managed by ilagent; use --kafka_group_id instead");
}

static void test_reserved_fixed(void **state)
{
	(void)state;
	expect_error("enable.auto.commit=false",
		     "property 'enable.auto.commit' is managed by ilagent and cannot be changed");
	expect_error("enable.auto.offset.store=true",
		     "property 'enable.auto.offset.store' is managed by ilagent and cannot be "
		     "changed");
	expect_error("enable.partition.eof=true",
		     "property 'enable.partition.eof' is managed by ilagent and cannot be changed");
}

static void test_reserved_aliases(void **state)
{
	(void)state;
	/* Other names the Kafka client accepts for the same settings. */
	expect_error("metadata.broker.list=h:9092",
		     "property 'metadata.broker.list' is managed by ilagent; use --kafka_brokers "
		     "instead");
	expect_error("topic.auto.offset.reset=earliest",
		     "property 'topic.auto.offset.reset' is managed by ilagent; use "
		     "--kafka_offset_reset instead");
	expect_error("auto.commit.enable=false",
		     "property 'auto.commit.enable' is managed by ilagent and cannot be changed");
	expect_error("topic.auto.commit.enable=false",
		     "property 'topic.auto.commit.enable' is managed by ilagent and cannot be "
		     "changed");
	expect_error("topic.enable.auto.commit=false",
		     "property 'topic.enable.auto.commit' is managed by ilagent and cannot be "
		     "changed");
}

/* ---- The Kafka client's verdict ------------------------------------------------------ */

static void test_client_rejects(void **state)
{
	(void)state;
	expect_error("no.such.property=1", "No such configuration property: \"no.such.property\"");
	expect_error("session.timeout.ms=abc",
		     "Invalid value for configuration property \"session.timeout.ms\"");
	expect_error("security.protocol=bogus",
		     "Invalid value \"bogus\" for configuration property \"security.protocol\"");
	/* Names are case-sensitive and not trimmed. */
	expect_error("GROUP.ID=x", "No such configuration property: \"GROUP.ID\"");
	expect_error("session.timeout.ms =7000",
		     "No such configuration property: \"session.timeout.ms \"");
}

static void test_client_accepts(void **state)
{
	(void)state;
	expect_ok("session.timeout.ms=7000");
	expect_ok("security.protocol=SASL_SSL");
	expect_ok("sasl.mechanisms=PLAIN");
	expect_ok("sasl.username=alice");
	expect_ok("sasl.password=p=ss=word"); /* split at the first '=' only */
	expect_ok("partition.assignment.strategy=cooperative-sticky");
	expect_ok("client.id=");
	expect_ok("auto.commit.interval.ms=1000");
}

static void test_apply_entry(void **state)
{
	(void)state;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	assert_non_null(conf);
	char err[512] = "";
	assert_int_equal(kafka_conf_apply_entry(conf, "session.timeout.ms=7000", err,
						sizeof(err)),
			 0);
	assert_int_equal(kafka_conf_apply_entry(conf, "sasl.password=a=b", err, sizeof(err)), 0);
	/* Later entries win. */
	assert_int_equal(kafka_conf_apply_entry(conf, "session.timeout.ms=8000", err,
						sizeof(err)),
			 0);
	char value[64];
	size_t len = sizeof(value);
	assert_int_equal(rd_kafka_conf_get(conf, "session.timeout.ms", value, &len),
			 RD_KAFKA_CONF_OK);
	assert_string_equal(value, "8000");
	len = sizeof(value);
	assert_int_equal(rd_kafka_conf_get(conf, "sasl.password", value, &len),
			 RD_KAFKA_CONF_OK);
	assert_string_equal(value, "a=b");

	/* A reserved property never reaches the configuration. */
	assert_int_equal(kafka_conf_apply_entry(conf, "group.id=evil", err, sizeof(err)),
			 ILA_ERR_INVALID);
	len = sizeof(value);
	rd_kafka_conf_res_t res = rd_kafka_conf_get(conf, "group.id", value, &len);
	assert_true(res != RD_KAFKA_CONF_OK || strcmp(value, "evil") != 0);
	rd_kafka_conf_destroy(conf);
}

static void test_small_error_buffer(void **state)
{
	(void)state;
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(kafka_conf_check_entry("no.such.property=1", tiny, sizeof(tiny)),
			 ILA_ERR_INVALID);
	assert_non_null(memchr(tiny, '\0', sizeof(tiny)));
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(kafka_conf_check_entry("group.id=x", tiny, sizeof(tiny)),
			 ILA_ERR_INVALID);
	assert_non_null(memchr(tiny, '\0', sizeof(tiny)));
	assert_int_equal(kafka_conf_check_entry("no.such.property=1", NULL, 0), ILA_ERR_INVALID);
	assert_int_equal(kafka_conf_check_entry("session.timeout.ms=7000", NULL, 0), 0);
}

/* ---- Secrets ------------------------------------------------------------------------- */

static void test_secret_keys(void **state)
{
	(void)state;
	static const char *const secret[] = {
		"sasl.password",
		"ssl.key.password",
		"ssl.keystore.password",
		"ssl.key.pem",
		"ssl.key.location",
		"sasl.oauthbearer.client.secret",
		"SASL.PASSWORD",
		"My.Secret",
		"apiKey",
		"KEY",
	};
	static const char *const plain[] = {
		"sasl.username",
		"security.protocol",
		"session.timeout.ms",
		"bootstrap.servers",
		"ssl.ca.location",
		"client.id",
		"passwd",
		"",
	};
	for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
		if (!kafka_conf_key_is_secret(secret[i]))
			fail_msg("'%s' should be secret", secret[i]);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (kafka_conf_key_is_secret(plain[i]))
			fail_msg("'%s' should not be secret", plain[i]);
	assert_false(kafka_conf_key_is_secret(NULL));
}

static void test_loggable_entry(void **state)
{
	(void)state;
	char *s = kafka_conf_entry_loggable("sasl.password=correct-horse-battery");
	assert_string_equal(s, "sasl.password=corr\xe2\x80\xa6");
	free(s);
	s = kafka_conf_entry_loggable("sasl.password=short");
	assert_string_equal(s, "sasl.password=\xe2\x80\xa6");
	free(s);
	s = kafka_conf_entry_loggable("sasl.username=alice");
	assert_string_equal(s, "sasl.username=alice");
	free(s);
	s = kafka_conf_entry_loggable("no-equals-sign");
	assert_string_equal(s, "no-equals-sign");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_reserved_with_flag),
		cmocka_unit_test(test_reserved_fixed),
		cmocka_unit_test(test_reserved_aliases),
		cmocka_unit_test(test_client_rejects),
		cmocka_unit_test(test_client_accepts),
		cmocka_unit_test(test_apply_entry),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_secret_keys),
		cmocka_unit_test(test_loggable_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
