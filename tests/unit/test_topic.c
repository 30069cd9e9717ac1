#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/topic.h"

/* A heap string of n copies of c. */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- MQTT filter syntax -------------------------------------------------------------- */

static void test_mqtt_filter_valid_accepts(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"a",
		"a/b/c",
		"sport/tennis/player1",
		"/",
		"//",
		"/a",
		"a/",
		"+",
		"#",
		"+/+",
		"/+",
		"+/",
		"a/+/c",
		"a/#",
		"+/#",
		"a/+/#",
		"$SYS/#",
		"$SYS/broker/+",
		"sensors/température",
		"日本/+/データ",
		"a b/c d",
		"nb\xc2\xa0sp",     /* U+00A0 is printable */
		"\xef\xb7\x8f\xef\xb7\xb0", /* U+FDCF, U+FDF0: around the non-characters */
		"\xef\xbf\xbd",   /* U+FFFD */
		"$share/group/a/b",
		"$share/group/#",
		"$share/g/+/x",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (!mqtt_filter_valid(ok[i]))
			fail_msg("expected valid: '%s'", ok[i]);
	}
}

static void test_mqtt_filter_valid_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"a+",
		"+a",
		"a/b+/c",
		"a/+b",
		"++",
		"a#",
		"#a",
		"a/#/b",
		"#/a",
		"a/##",
		"##",
		"a/b#",
		"#/",
		"+/#/",
		"\xff",
		"a/\xc3",         /* truncated sequence */
		"\xc0\xaf",       /* overlong encoding of '/' */
		"\xed\xa0\x80",   /* UTF-16 surrogate */
		"a/b\r",          /* control characters */
		"a\nb",
		"a\tb",
		"\x01",
		"\x1f",
		"\x7f",
		"a\xc2\x80",      /* U+0080 */
		"a\xc2\x9f",      /* U+009F */
		"\xef\xb7\x90",   /* U+FDD0, a non-character */
		"\xef\xb7\xaf",   /* U+FDEF */
		"\xef\xbf\xbe",   /* U+FFFE */
		"\xef\xbf\xbf",   /* U+FFFF */
		"\xf0\x9f\xbf\xbe", /* U+1FFFE */
		"\xf4\x8f\xbf\xbf", /* U+10FFFF */
		"$share/",        /* no group */
		"$share//a",      /* empty group */
		"$share/g",       /* no filter */
		"$share/g/",      /* empty filter */
		"$share/g+/a",    /* wildcard in group */
		"$share/#",       /* wildcard as group, no filter */
		"$share/g/a+",    /* bad filter after the group */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (mqtt_filter_valid(bad[i]))
			fail_msg("expected invalid: '%s'", bad[i]);
	}
	assert_false(mqtt_filter_valid(NULL));
}

static void test_mqtt_filter_valid_length_limit(void **state)
{
	(void)state;
	char *max = repeat('a', MQTT_TOPIC_MAX);
	char *over = repeat('a', MQTT_TOPIC_MAX + 1);
	assert_true(mqtt_filter_valid(max));
	assert_false(mqtt_filter_valid(over));
	/* The limit counts bytes, not characters. */
	over[MQTT_TOPIC_MAX - 1] = '\xc3';
	over[MQTT_TOPIC_MAX] = '\xa9';
	assert_false(mqtt_filter_valid(over));
	free(over);
	free(max);
}

/* ---- MQTT matching ------------------------------------------------------------------- */

struct match_case {
	const char *filter;
	const char *topic;
	bool match;
};

static const struct match_case match_table[] = {
	/* exact */
	{"a", "a", true},
	{"a", "b", false},
	{"a/b", "a/b", true},
	{"a/b", "a/b/c", false},
	{"a/b/c", "a/b", false},
	{"a", "A", false},
	{"a/b", "a//b", false},
	{"/a", "/a", true},
	{"/a", "a", false},
	{"a/", "a/", true},
	{"a/", "a", false},
	/* + matches exactly one level, also an empty one */
	{"+", "a", true},
	{"+", "a/b", false},
	{"+", "/a", false},
	{"+/+", "a/b", true},
	{"+/+", "/a", true},
	{"+/+", "a/", true},
	{"+/+", "a", false},
	{"+/+", "a/b/c", false},
	{"/+", "/a", true},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/+", "a/b/c", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a/b/d", false},
	{"a/+/c", "a//c", true},
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	/* # matches the parent and everything below */
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"#", "/a", true},
	{"a/#", "a", true},
	{"a/#", "a/", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/b/#", "a", false},
	{"a/b/#", "a/b", true},
	{"+/#", "a", true},
	{"+/#", "a/b/c", true},
	{"a/+/#", "a", false},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a/b/c/d", true},
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	/* $ topics are not matched by a leading wildcard */
	{"#", "$SYS", false},
	{"#", "$SYS/broker/load", false},
	{"+/broker/load", "$SYS/broker/load", false},
	{"+", "$SYS", false},
	{"+/#", "$SYS/x", false},
	{"$SYS/#", "$SYS/broker/load", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/+/load", "$SYS/broker/load", true},
	{"$SYS/broker/load", "$SYS/broker/load", true},
	{"a/#", "a/$x", true},
	{"a/+", "a/$x", true},
	/* a $share prefix on the filter is not part of the topic */
	{"$share/g/a/+", "a/b", true},
	{"$share/g/#", "x/y", true},
	{"$share/g/#", "$SYS/x", false},
	{"$share/g/a", "$share/g/a", false},
	/* topics with wildcards or empty topics never match */
	{"a/+", "a/+", false},
	{"#", "a/#", false},
	{"#", "", false},
	{"+", "", false},
	/* UTF-8 levels compare byte for byte */
	{"sensors/+/température", "sensors/k1/température", true},
	{"sensors/+/température", "sensors/k1/temperature", false},
};

static void test_mqtt_filter_matches_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_table) / sizeof(match_table[0]); i++) {
		const struct match_case *c = &match_table[i];
		if (mqtt_filter_matches(c->filter, c->topic) != c->match)
			fail_msg("filter '%s' topic '%s': expected %s", c->filter, c->topic,
				 c->match ? "match" : "no match");
	}
}

static void test_mqtt_filter_matches_null(void **state)
{
	(void)state;
	assert_false(mqtt_filter_matches(NULL, "a"));
	assert_false(mqtt_filter_matches("a", NULL));
	assert_false(mqtt_filter_matches("", "a"));
}

static void test_mqtt_filter_unshared(void **state)
{
	(void)state;
	assert_string_equal(mqtt_filter_unshared("$share/g/a/b"), "a/b");
	assert_string_equal(mqtt_filter_unshared("a/b"), "a/b");
	assert_string_equal(mqtt_filter_unshared("$shared/g/a"), "$shared/g/a");
	assert_string_equal(mqtt_filter_unshared("$SYS/x"), "$SYS/x");
	assert_null(mqtt_filter_unshared(NULL));
}

/* ---- Shared subscription group ------------------------------------------------------- */

static void test_mqtt_shared_group_valid(void **state)
{
	(void)state;
	assert_true(mqtt_shared_group_valid("g"));
	assert_true(mqtt_shared_group_valid("ilagent-workers"));
	assert_true(mqtt_shared_group_valid("group.1_a"));
	assert_true(mqtt_shared_group_valid("$share"));
	assert_true(mqtt_shared_group_valid("grüppe"));
	assert_false(mqtt_shared_group_valid(NULL));
	assert_false(mqtt_shared_group_valid(""));
	assert_false(mqtt_shared_group_valid("a/b"));
	assert_false(mqtt_shared_group_valid("/"));
	assert_false(mqtt_shared_group_valid("+"));
	assert_false(mqtt_shared_group_valid("g+"));
	assert_false(mqtt_shared_group_valid("#"));
	assert_false(mqtt_shared_group_valid("g#1"));
	assert_false(mqtt_shared_group_valid("\xff"));
	assert_false(mqtt_shared_group_valid("g\n"));
	assert_false(mqtt_shared_group_valid("g\x7f"));
}

/* ---- Kafka names --------------------------------------------------------------------- */

static void test_kafka_topic_name_valid(void **state)
{
	(void)state;
	assert_true(kafka_topic_name_valid("events"));
	assert_true(kafka_topic_name_valid("a"));
	assert_true(kafka_topic_name_valid("A-Z_a-z.0-9"));
	assert_true(kafka_topic_name_valid("..."));
	assert_true(kafka_topic_name_valid(".a"));
	assert_true(kafka_topic_name_valid("__consumer_offsets"));
	assert_false(kafka_topic_name_valid(NULL));
	assert_false(kafka_topic_name_valid(""));
	assert_false(kafka_topic_name_valid("."));
	assert_false(kafka_topic_name_valid(".."));
	assert_false(kafka_topic_name_valid("a b"));
	assert_false(kafka_topic_name_valid("a/b"));
	assert_false(kafka_topic_name_valid("a+"));
	assert_false(kafka_topic_name_valid("a#"));
	assert_false(kafka_topic_name_valid("a,b"));
	assert_false(kafka_topic_name_valid("tópico"));
	assert_false(kafka_topic_name_valid("^events"));
	assert_false(kafka_topic_name_valid("events\n"));
}

static void test_kafka_topic_name_length(void **state)
{
	(void)state;
	char *n249 = repeat('t', 249);
	char *n250 = repeat('t', 250);
	assert_true(kafka_topic_name_valid(n249));
	assert_false(kafka_topic_name_valid(n250));
	free(n250);
	free(n249);
}

/* ---- Kafka regex topics -------------------------------------------------------------- */

static void test_kafka_topic_regex_check_ok(void **state)
{
	(void)state;
	char err[256];
	static const char *const ok[] = {
		"^events",
		"^events-.*",
		"^(alerts|events)\\.[a-z]+$",
		"^a{2,3}b?",
		"^[[:alnum:]_-]+$",
		"^",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		strcpy(err, "untouched");
		if (kafka_topic_regex_check(ok[i], err, sizeof(err)) != 0)
			fail_msg("expected '%s' to compile: %s", ok[i], err);
		assert_string_equal(err, "");
	}
}

static void test_kafka_topic_regex_check_errors(void **state)
{
	(void)state;
	char err[256];
	static const char *const bad[] = {
		"^(events",
		"^[abc",
		"^[z-a]",
		"^a{1",
		"^a{2,1}",
		"^*{",
		"^x\\",
		"^[[:nosuchclass:]]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (kafka_topic_regex_check(bad[i], err, sizeof(err)) != ILA_ERR_INVALID)
			fail_msg("expected '%s' to be rejected", bad[i]);
		if (err[0] == '\0')
			fail_msg("no reason for '%s'", bad[i]);
	}
	/* The reason is the regex compiler's own description. */
	assert_int_equal(kafka_topic_regex_check("^(events", err, sizeof(err)), ILA_ERR_INVALID);
	assert_string_equal(err, "Unmatched ( or \\(");
	assert_int_equal(kafka_topic_regex_check(NULL, err, sizeof(err)), ILA_ERR_INVALID);
	/* A tiny buffer is still NUL-terminated and never overrun. */
	char tiny[4] = {'x', 'x', 'x', 'x'};
	assert_int_equal(kafka_topic_regex_check("^(", tiny, sizeof(tiny)), ILA_ERR_INVALID);
	assert_non_null(memchr(tiny, '\0', sizeof(tiny)));
	assert_int_equal(kafka_topic_regex_check("^(", NULL, 0), ILA_ERR_INVALID);
}

struct kafka_case {
	const char *configured;
	const char *topic;
	bool match;
};

static const struct kafka_case kafka_table[] = {
	{"events", "events", true},
	{"events", "Events", false},
	{"events", "events2", false},
	{"events", "my-events", false},
	{"a.b", "axb", false}, /* a plain name is not a pattern */
	{"^events", "events", true},
	{"^events", "events-eu", true}, /* search, like the Kafka client */
	{"^events", "my-events", false},
	{"^events$", "events-eu", false},
	{"^events-.*", "events-eu", true},
	{"^events-.*", "events", false},
	{"^(alerts|events)\\.[a-z]+$", "alerts.eu", true},
	{"^(alerts|events)\\.[a-z]+$", "events.us", true},
	{"^(alerts|events)\\.[a-z]+$", "events.US", false},
	{"^(alerts|events)\\.[a-z]+$", "metrics.eu", false},
	{"^a.b$", "axb", true},
	{"^(", "(", false}, /* uncompilable patterns match nothing */
};

static void test_kafka_topic_matches_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kafka_table) / sizeof(kafka_table[0]); i++) {
		const struct kafka_case *c = &kafka_table[i];
		if (kafka_topic_matches(c->configured, c->topic) != c->match)
			fail_msg("configured '%s' topic '%s': expected %s", c->configured,
				 c->topic, c->match ? "match" : "no match");
	}
	assert_false(kafka_topic_matches(NULL, "a"));
	assert_false(kafka_topic_matches("a", NULL));
}

static void test_kafka_topic_pattern_table(void **state)
{
	(void)state;
	char err[256];
	for (size_t i = 0; i < sizeof(kafka_table) / sizeof(kafka_table[0]); i++) {
		const struct kafka_case *c = &kafka_table[i];
		struct kafka_topic_pattern *p =
			kafka_topic_pattern_create(c->configured, err, sizeof(err));
		if (!p) {
			/* Only the deliberately broken pattern may fail to compile. */
			assert_string_equal(c->configured, "^(");
			assert_true(err[0] != '\0');
			continue;
		}
		if (kafka_topic_pattern_match(p, c->topic) != c->match)
			fail_msg("pattern '%s' topic '%s': expected %s", c->configured, c->topic,
				 c->match ? "match" : "no match");
		assert_false(kafka_topic_pattern_match(p, NULL));
		kafka_topic_pattern_destroy(p);
	}
	kafka_topic_pattern_destroy(NULL);
	assert_null(kafka_topic_pattern_create(NULL, err, sizeof(err)));
}

static void test_kafka_topic_is_regex(void **state)
{
	(void)state;
	assert_true(kafka_topic_is_regex("^x"));
	assert_true(kafka_topic_is_regex("^"));
	assert_false(kafka_topic_is_regex("x^"));
	assert_false(kafka_topic_is_regex(""));
	assert_false(kafka_topic_is_regex(NULL));
}

/* ---- Classification ------------------------------------------------------------------ */

static void test_classify_mqtt_precedence(void **state)
{
	(void)state;
	char err[128];
	/* Every topic below "site/" matches all three filters: heartbeat wins, then policy. */
	struct topic_classifier *c = topic_classifier_create(
		TOPIC_PROTO_MQTT, "site/#", "site/+/beat", "site/+/+", err, sizeof(err));
	assert_non_null(c);
	assert_true(topic_classifier_has_topics(c));
	assert_int_equal(topic_classify(c, "site/a/beat"), TOPIC_HEARTBEAT);
	assert_int_equal(topic_classify(c, "site/a/policy"), TOPIC_POLICY);
	assert_int_equal(topic_classify(c, "site/a/b/c"), TOPIC_EVENT);
	assert_int_equal(topic_classify(c, "site"), TOPIC_EVENT);
	assert_int_equal(topic_classify(c, "other/a"), TOPIC_UNMATCHED);
	assert_int_equal(topic_classify(c, NULL), TOPIC_UNMATCHED);
	topic_classifier_destroy(c);
}

static void test_classify_mqtt_partial(void **state)
{
	(void)state;
	char err[128];
	struct topic_classifier *c =
		topic_classifier_create(TOPIC_PROTO_MQTT, "#", NULL, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(topic_classify(c, "x/y"), TOPIC_EVENT);
	assert_int_equal(topic_classify(c, "$SYS/x"), TOPIC_UNMATCHED);
	topic_classifier_destroy(c);

	c = topic_classifier_create(TOPIC_PROTO_MQTT, NULL, NULL, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_false(topic_classifier_has_topics(c));
	assert_int_equal(topic_classify(c, "a"), TOPIC_UNMATCHED);
	topic_classifier_destroy(c);
	topic_classifier_destroy(NULL);
	assert_false(topic_classifier_has_topics(NULL));
}

static void test_classify_kafka(void **state)
{
	(void)state;
	char err[128];
	struct topic_classifier *c = topic_classifier_create(
		TOPIC_PROTO_KAFKA, "^ilert-.*", "ilert-beats", "^ilert-p", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(topic_classify(c, "ilert-beats"), TOPIC_HEARTBEAT);
	assert_int_equal(topic_classify(c, "ilert-policy"), TOPIC_POLICY);
	assert_int_equal(topic_classify(c, "ilert-events"), TOPIC_EVENT);
	assert_int_equal(topic_classify(c, "ilert-beats2"), TOPIC_EVENT);
	assert_int_equal(topic_classify(c, "other"), TOPIC_UNMATCHED);
	topic_classifier_destroy(c);

	err[0] = '\0';
	assert_null(topic_classifier_create(TOPIC_PROTO_KAFKA, "events", "^(", NULL, err,
					    sizeof(err)));
	assert_true(err[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mqtt_filter_valid_accepts),
		cmocka_unit_test(test_mqtt_filter_valid_rejects),
		cmocka_unit_test(test_mqtt_filter_valid_length_limit),
		cmocka_unit_test(test_mqtt_filter_matches_table),
		cmocka_unit_test(test_mqtt_filter_matches_null),
		cmocka_unit_test(test_mqtt_filter_unshared),
		cmocka_unit_test(test_mqtt_shared_group_valid),
		cmocka_unit_test(test_kafka_topic_name_valid),
		cmocka_unit_test(test_kafka_topic_name_length),
		cmocka_unit_test(test_kafka_topic_regex_check_ok),
		cmocka_unit_test(test_kafka_topic_regex_check_errors),
		cmocka_unit_test(test_kafka_topic_matches_table),
		cmocka_unit_test(test_kafka_topic_pattern_table),
		cmocka_unit_test(test_kafka_topic_is_regex),
		cmocka_unit_test(test_classify_mqtt_precedence),
		cmocka_unit_test(test_classify_mqtt_partial),
		cmocka_unit_test(test_classify_kafka),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
