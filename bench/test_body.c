/* Synthetic benchmark events: fixed length, valid JSON, key modes, batches, wire shape. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "core/err.h"

static json_t *parse(const char *text, size_t len)
{
	json_error_t err;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	assert_non_null(j);
	return j;
}

static const char *str_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_fixed_size_and_distinct_keys(void **state)
{
	(void)state;
	struct body_gen g;
	assert_int_equal(body_gen_init(&g, "ik", BODY_KEYS_DISTINCT, 0, 400, "t1", false), 0);
	assert_int_equal(g.event_len, 400);
	char *a = malloc(g.event_len + 1), *b = malloc(g.event_len + 1);
	assert_int_equal(body_event_write(&g, 0, a), 400);
	assert_int_equal(body_event_write(&g, 987654321, b), 400);
	assert_int_equal(strlen(a), 400);
	json_t *ja = parse(a, 400), *jb = parse(b, 400);
	assert_string_equal(str_member(ja, "integrationKey"), "ik");
	assert_string_equal(str_member(ja, "eventType"), "ALERT");
	assert_non_null(str_member(ja, "summary"));
	assert_string_not_equal(str_member(ja, "alertKey"), str_member(jb, "alertKey"));
	assert_string_not_equal(str_member(ja, "summary"), str_member(jb, "summary"));
	assert_null(json_object_get(ja, "images"));
	json_decref(ja);
	json_decref(jb);
	free(a);
	free(b);
	body_gen_free(&g);
}

static void test_cycle_and_none(void **state)
{
	(void)state;
	struct body_gen g;
	char k0[BODY_FIELD_MAX], k3[BODY_FIELD_MAX], k1[BODY_FIELD_MAX];
	assert_int_equal(body_gen_init(&g, "ik", BODY_KEYS_CYCLE, 3, 300, "t", false), 0);
	assert_true(body_alert_key(&g, 0, k0));
	assert_true(body_alert_key(&g, 3, k3));
	assert_true(body_alert_key(&g, 1, k1));
	assert_string_equal(k0, k3);
	assert_string_not_equal(k0, k1);
	body_gen_free(&g);

	assert_int_equal(body_gen_init(&g, "ik", BODY_KEYS_NONE, 0, 10, "t", false), 0);
	assert_true(g.event_len > 10); /* cannot shrink below the fixed fields */
	assert_int_equal(g.details_len, 0);
	assert_false(body_alert_key(&g, 5, k0));
	char *e = malloc(g.event_len + 1);
	json_t *j = parse(e, body_event_write(&g, 5, e));
	assert_null(json_object_get(j, "alertKey"));
	json_decref(j);
	free(e);
	body_gen_free(&g);

	assert_int_equal(body_gen_init(&g, "ik", BODY_KEYS_CYCLE, 0, 400, "t", false),
			 ILA_ERR_INVALID);
	assert_int_equal(body_gen_init(&g, "i\"k", BODY_KEYS_NONE, 0, 400, "t", false),
			 ILA_ERR_INVALID);
}

static void test_batch(void **state)
{
	(void)state;
	struct body_gen g;
	assert_int_equal(body_gen_init(&g, "ik", BODY_KEYS_DISTINCT, 0, 400, NULL, false), 0);
	size_t len = body_batch_len(&g, 5);
	assert_int_equal(len, 2 + 5 * 400 + 4);
	char *buf = malloc(len + 1);
	assert_int_equal(body_batch_write(&g, 10, 5, buf), len);
	json_t *arr = parse(buf, len);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 5);
	assert_string_not_equal(str_member(json_array_get(arr, 0), "alertKey"),
				str_member(json_array_get(arr, 4), "alertKey"));
	json_decref(arr);
	free(buf);
	char empty[3];
	assert_int_equal(body_batch_write(&g, 0, 0, empty), 2);
	assert_string_equal(empty, "[]");
	body_gen_free(&g);
}

static void test_wire_shape(void **state)
{
	(void)state;
	struct body_gen g;
	assert_int_equal(body_gen_init(&g, "ik", BODY_KEYS_NONE, 0, 400, "t", true), 0);
	char *e = malloc(g.event_len + 1);
	body_event_write(&g, 1, e);
	static const char *const order[] = { "integrationKey", "eventType", "summary", "alertKey",
					     "details", "priority", "images", "links",
					     "customDetails" };
	json_t *j = parse(e, g.event_len);
	assert_int_equal(json_object_size(j), 9);
	const char *prev = e;
	for (size_t i = 0; i < 9; i++) {
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "\"%s\":", order[i]);
		const char *at = strstr(e, quoted);
		assert_non_null(at);
		assert_true(at >= prev);
		prev = at;
	}
	assert_true(json_is_null(json_object_get(j, "alertKey")));
	assert_true(json_is_null(json_object_get(j, "customDetails")));
	json_decref(j);
	free(e);
	body_gen_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_size_and_distinct_keys),
		cmocka_unit_test(test_cycle_and_none),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_wire_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
