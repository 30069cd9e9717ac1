/* Event model and event delivery pieces: §6.4 body building, target paths of stored
 * event_api_path values, §7.3 normalization and validation, §2 ordering keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "ilert/events.h"

static struct event *event_with(const char *ik, const char *type, const char *summary)
{
	struct event *ev = event_create();
	assert_non_null(ev);
	assert_int_equal(event_set(&ev->integration_key, ik), 0);
	assert_int_equal(event_set(&ev->event_type, type), 0);
	assert_int_equal(event_set(&ev->summary, summary), 0);
	return ev;
}

static void assert_body(const struct event *ev, const char *want)
{
	char *body = ilert_event_body(ev);
	assert_non_null(body);
	assert_string_equal(body, want);
	free(body);
}

static void test_body_minimal_has_nine_keys_with_nulls(void **state)
{
	(void)state;
	struct event *ev = event_with("ik1", "ALERT", "");
	assert_body(ev, "{\"integrationKey\":\"ik1\",\"eventType\":\"ALERT\",\"summary\":\"\","
			"\"alertKey\":null,\"details\":null,\"priority\":null,\"images\":null,"
			"\"links\":null,\"customDetails\":null}");
	event_destroy(ev);
}

static void test_body_full_in_key_order(void **state)
{
	(void)state;
	struct event *ev = event_with("ik\"1", "RESOLVE", "disk \xc3\xa4 full\n");
	event_set(&ev->alert_key, "host-1/disk");
	event_set(&ev->details, "tab\there");
	event_set(&ev->priority, "HIGH");
	event_set(&ev->images, "[{\"src\":\"https://i/1.png\",\"href\":\"https://h\",\"alt\":\"a\"}]");
	event_set(&ev->links, "[{\"href\":\"https://l\",\"text\":\"t\"}]");
	event_set(&ev->custom_details, "{\"z\":1,\"a\":[true,null,\"x\"],\"m\":{\"k\":\"v\"}}");
	assert_body(ev, "{\"integrationKey\":\"ik\\\"1\",\"eventType\":\"RESOLVE\","
			"\"summary\":\"disk \xc3\xa4 full\\n\",\"alertKey\":\"host-1/disk\","
			"\"details\":\"tab\\there\",\"priority\":\"HIGH\","
			"\"images\":[{\"src\":\"https://i/1.png\",\"href\":\"https://h\",\"alt\":\"a\"}],"
			"\"links\":[{\"href\":\"https://l\",\"text\":\"t\"}],"
			"\"customDetails\":{\"z\":1,\"a\":[true,null,\"x\"],\"m\":{\"k\":\"v\"}}}");
	event_destroy(ev);
}

static void test_body_images_links_member_order_and_nulls(void **state)
{
	(void)state;
	struct event *ev = event_with("k", "ALERT", "s");
	event_set(&ev->images, "[{\"alt\":\"A\",\"extra\":5,\"src\":\"S\"},{\"src\":\"T\",\"href\":null}]");
	event_set(&ev->links, "[{\"text\":\"X\",\"href\":\"H\"},{\"href\":\"H2\"}]");
	assert_body(ev, "{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\","
			"\"alertKey\":null,\"details\":null,\"priority\":null,"
			"\"images\":[{\"src\":\"S\",\"href\":null,\"alt\":\"A\"},"
			"{\"src\":\"T\",\"href\":null,\"alt\":null}],"
			"\"links\":[{\"href\":\"H\",\"text\":\"X\"},{\"href\":\"H2\",\"text\":null}],"
			"\"customDetails\":null}");
	event_destroy(ev);
}

static void test_body_empty_lists_kept(void **state)
{
	(void)state;
	struct event *ev = event_with("k", "ACCEPT", "s");
	event_set(&ev->images, "[]");
	event_set(&ev->links, "[]");
	assert_body(ev, "{\"integrationKey\":\"k\",\"eventType\":\"ACCEPT\",\"summary\":\"s\","
			"\"alertKey\":null,\"details\":null,\"priority\":null,\"images\":[],"
			"\"links\":[],\"customDetails\":null}");
	event_destroy(ev);
}

static void test_body_custom_details_any_json(void **state)
{
	(void)state;
	static const char *const values[] = {
		"\"text\"", "42", "-7", "true", "false", "[1,\"two\",{\"3\":[]}]", "{}",
		"{\"b\":{\"c\":{\"d\":[{\"e\":null}]}},\"a\":\"\\u00e4/\"}",
	};
	static const char *const sent[] = {
		"\"text\"", "42", "-7", "true", "false", "[1,\"two\",{\"3\":[]}]", "{}",
		"{\"b\":{\"c\":{\"d\":[{\"e\":null}]}},\"a\":\"\xc3\xa4/\"}",
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct event *ev = event_with("k", "COMMENT", "s");
		event_set(&ev->custom_details, values[i]);
		char want[512];
		snprintf(want, sizeof(want),
			 "{\"integrationKey\":\"k\",\"eventType\":\"COMMENT\",\"summary\":\"s\","
			 "\"alertKey\":null,\"details\":null,\"priority\":null,\"images\":null,"
			 "\"links\":null,\"customDetails\":%s}",
			 sent[i]);
		assert_body(ev, want);
		event_destroy(ev);
	}
}

static void test_body_invalid_stored_json_is_null(void **state)
{
	(void)state;
	static const char *const want =
		"{\"integrationKey\":\"k\",\"eventType\":\"ALERT\",\"summary\":\"s\","
		"\"alertKey\":\"a\",\"details\":null,\"priority\":\"LOW\",\"images\":null,"
		"\"links\":null,\"customDetails\":null}";
	static const char *const bad_lists[] = {
		"not json", "[{\"src\":\"x\"}", "{\"src\":\"x\"}", "[1]", "[{\"src\":5,\"href\":5}]",
		"\"x\"", "[{\"src\":\"ok\"},[]]",
	};
	for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
		struct event *ev = event_with("k", "ALERT", "s");
		event_set(&ev->alert_key, "a");
		event_set(&ev->priority, "LOW");
		event_set(&ev->images, bad_lists[i]);
		event_set(&ev->links, bad_lists[i]);
		event_set(&ev->custom_details, "{\"unterminated\":");
		assert_body(ev, want);
		event_destroy(ev);
	}
}

static void test_body_repairs_invalid_utf8_text(void **state)
{
	(void)state;
	struct event *ev = event_with("k", "ALERT", "bad \xff byte");
	assert_body(ev, "{\"integrationKey\":\"k\",\"eventType\":\"ALERT\","
			"\"summary\":\"bad \xef\xbf\xbd byte\",\"alertKey\":null,\"details\":null,"
			"\"priority\":null,\"images\":null,\"links\":null,\"customDetails\":null}");
	event_destroy(ev);
}

static void assert_target(const char *stored, const char *path, const char *key,
			  enum ilert_endpoint ep)
{
	struct ilert_event_target t;
	assert_int_equal(ilert_event_target(stored, &t), 0);
	assert_string_equal(t.path, path);
	if (key)
		assert_string_equal(t.key, key);
	else
		assert_null(t.key);
	assert_int_equal(t.endpoint, ep);
	ilert_event_target_free(&t);
}

static void test_target_paths(void **state)
{
	(void)state;
	assert_target(NULL, "/events", NULL, ILERT_EP_EVENTS);
	assert_target("", "/events", NULL, ILERT_EP_EVENTS);
	assert_target("/v1/events/mqtt/il1abc", "/v1/events/mqtt/", "il1abc", ILERT_EP_EVENTS_MQTT);
	assert_target("/v1/events/kafka/il1abc", "/v1/events/kafka/", "il1abc",
		      ILERT_EP_EVENTS_KAFKA);
	/* The key is stored verbatim: everything after the prefix is the key. */
	assert_target("/v1/events/mqtt/a/b c%", "/v1/events/mqtt/", "a/b c%",
		      ILERT_EP_EVENTS_MQTT);
	assert_target("/v1/events/kafka/", "/v1/events/kafka/", "", ILERT_EP_EVENTS_KAFKA);
	assert_target("/v2/some path/key", "/v2/some%20path/", "key", ILERT_EP_EVENTS);
	assert_target("other", "/", "other", ILERT_EP_EVENTS);
}

static void test_alert_key_normalization(void **state)
{
	(void)state;
	char *out = (char *)1;
	assert_int_equal(event_normalize_alert_key(NULL, &out), 0);
	assert_null(out);
	assert_int_equal(event_normalize_alert_key("", &out), 0);
	assert_null(out);
	assert_int_equal(event_normalize_alert_key(" \t\r\n\v\f ", &out), 0);
	assert_null(out);
	assert_int_equal(event_normalize_alert_key("  Host 1 / Disk\t\n", &out), 0);
	assert_string_equal(out, "Host 1 / Disk");
	free(out);
	assert_int_equal(event_normalize_alert_key("\xc2\xa0x\xc2\xa0", &out), 0);
	assert_string_equal(out, "\xc2\xa0x\xc2\xa0"); /* only ASCII whitespace is trimmed */
	free(out);

	struct event *ev = event_with("k", "ALERT", "s");
	event_set(&ev->alert_key, "  AbC ");
	assert_int_equal(event_normalize(ev), 0);
	assert_string_equal(ev->alert_key, "AbC");
	event_set(&ev->alert_key, "   ");
	assert_int_equal(event_normalize(ev), 0);
	assert_null(ev->alert_key);
	event_destroy(ev);
}

static void test_event_type_and_priority(void **state)
{
	(void)state;
	assert_true(event_type_valid("ALERT"));
	assert_true(event_type_valid("ACCEPT"));
	assert_true(event_type_valid("RESOLVE"));
	assert_true(event_type_valid("COMMENT"));
	assert_false(event_type_valid(NULL));
	assert_false(event_type_valid(""));
	assert_false(event_type_valid("alert"));
	assert_false(event_type_valid("ALERT "));
	assert_false(event_type_valid("HEARTBEAT"));

	assert_true(event_priority_valid(NULL));
	assert_true(event_priority_valid("HIGH"));
	assert_true(event_priority_valid("LOW"));
	assert_false(event_priority_valid(""));
	assert_false(event_priority_valid("high"));
	assert_false(event_priority_valid("MEDIUM"));
}

static void test_event_invalid_field(void **state)
{
	(void)state;
	struct event *ev = event_with("k", "ALERT", "s");
	assert_null(event_invalid_field(ev));
	event_set(&ev->priority, "URGENT");
	assert_string_equal(event_invalid_field(ev), "priority");
	event_set(&ev->event_type, "alert");
	assert_string_equal(event_invalid_field(ev), "eventType");
	event_set(&ev->event_type, "ALERT");
	event_set(&ev->priority, NULL);
	event_set(&ev->integration_key, "");
	assert_string_equal(event_invalid_field(ev), "integrationKey");
	event_set(&ev->integration_key, NULL);
	assert_string_equal(event_invalid_field(ev), "integrationKey");
	event_destroy(ev);
}

static void test_order_key(void **state)
{
	(void)state;
	char *key = (char *)1;
	assert_int_equal(event_order_key("ik", NULL, &key), 0);
	assert_null(key);
	assert_int_equal(event_order_key("IK", "Host-A/DISK", &key), 0);
	/* The integration key keeps its case; only the alert key is folded. */
	assert_memory_equal(key, "IK\x1fhost-a/disk", strlen("IK\x1fhost-a/disk") + 1);
	free(key);
	assert_int_equal(event_order_key("ik", "\xc3\x84Z", &key), 0);
	assert_string_equal(key, "ik\x1f\xc3\x84z"); /* ASCII-only folding */
	free(key);
	assert_int_equal(event_order_key("", "a", &key), 0);
	assert_string_equal(key, "\x1f" "a");
	free(key);
}

static void test_event_dup_and_destroy(void **state)
{
	(void)state;
	struct event *ev = event_with("k", "ALERT", "s");
	event_set(&ev->alert_key, "a");
	event_set(&ev->custom_details, "{}");
	struct event *copy = event_dup(ev);
	assert_non_null(copy);
	assert_ptr_not_equal(copy->summary, ev->summary);
	assert_string_equal(copy->integration_key, "k");
	assert_string_equal(copy->alert_key, "a");
	assert_string_equal(copy->custom_details, "{}");
	assert_null(copy->images);
	event_destroy(ev);
	event_destroy(copy);
	event_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_minimal_has_nine_keys_with_nulls),
		cmocka_unit_test(test_body_full_in_key_order),
		cmocka_unit_test(test_body_images_links_member_order_and_nulls),
		cmocka_unit_test(test_body_empty_lists_kept),
		cmocka_unit_test(test_body_custom_details_any_json),
		cmocka_unit_test(test_body_invalid_stored_json_is_null),
		cmocka_unit_test(test_body_repairs_invalid_utf8_text),
		cmocka_unit_test(test_target_paths),
		cmocka_unit_test(test_alert_key_normalization),
		cmocka_unit_test(test_event_type_and_priority),
		cmocka_unit_test(test_event_invalid_field),
		cmocka_unit_test(test_order_key),
		cmocka_unit_test(test_event_dup_and_destroy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
