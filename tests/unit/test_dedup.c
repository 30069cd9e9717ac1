/* Deduplication (SPEC §9): window, anchoring, event type and content comparison, staged
 * entries within one transaction, abort, LRU eviction, disabled window. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pipeline/dedup.h"

static struct pending_item item(const char *key, const char *type, const char *content)
{
	struct pending_item it;
	memset(&it, 0, sizeof(it));
	it.kind = STORE_KIND_EVENT;
	it.order_key = (char *)key;
	it.ev.event_type = (char *)type;
	it.dedup_content = (char *)content;
	return it;
}

static void accept(struct dedup *d, const struct pending_item *it, int64_t now)
{
	dedup_stage(d, it, now);
	dedup_commit(d);
}

static void test_window(void **state)
{
	(void)state;
	struct dedup *d = dedup_create(10, 100);
	struct pending_item a = item("k\x1f" "a", "ALERT", "{\"summary\":\"x\"}");
	assert_false(dedup_check(d, &a, 1000));
	accept(d, &a, 1000);
	assert_true(dedup_check(d, &a, 1000));
	assert_true(dedup_check(d, &a, 10999));
	assert_false(dedup_check(d, &a, 11000)); /* "less than the window ago" */
	/* a dropped duplicate does not extend the window */
	assert_true(dedup_check(d, &a, 9000));
	assert_false(dedup_check(d, &a, 11000));
	dedup_destroy(d);
}

static void test_type_and_content(void **state)
{
	(void)state;
	struct dedup *d = dedup_create(10, 100);
	struct pending_item a = item("k\x1f" "a", "ALERT", "{\"summary\":\"x\"}");
	struct pending_item r = item("k\x1f" "a", "RESOLVE", "{\"summary\":\"x\"}");
	struct pending_item c = item("k\x1f" "a", "ALERT", "{\"summary\":\"y\"}");
	struct pending_item other = item("k\x1f" "b", "ALERT", "{\"summary\":\"x\"}");
	accept(d, &a, 0);
	assert_false(dedup_check(d, &r, 1));
	assert_false(dedup_check(d, &c, 1));
	assert_false(dedup_check(d, &other, 1));
	/* the most recent accepted event counts: after RESOLVE, the ALERT is new again */
	accept(d, &r, 2);
	assert_false(dedup_check(d, &a, 3));
	assert_true(dedup_check(d, &r, 3));
	dedup_destroy(d);
}

static void test_not_applicable(void **state)
{
	(void)state;
	struct dedup *d = dedup_create(10, 100);
	struct pending_item nokey = item(NULL, "ALERT", "{}");
	accept(d, &nokey, 0);
	assert_false(dedup_check(d, &nokey, 1));
	struct pending_item hb = item("k", "HEARTBEAT", "{}");
	hb.kind = STORE_KIND_HEARTBEAT;
	accept(d, &hb, 0);
	assert_false(dedup_check(d, &hb, 1));
	dedup_destroy(d);

	d = dedup_create(0, 100);
	struct pending_item a = item("k\x1f" "a", "ALERT", "{}");
	accept(d, &a, 0);
	assert_false(dedup_check(d, &a, 1));
	dedup_destroy(d);
}

static void test_staged_and_abort(void **state)
{
	(void)state;
	struct dedup *d = dedup_create(10, 100);
	struct pending_item a = item("k\x1f" "a", "ALERT", "{}");
	struct pending_item r = item("k\x1f" "a", "RESOLVE", "{}");
	/* within one transaction, later elements compare with earlier ones */
	assert_false(dedup_check(d, &a, 0));
	dedup_stage(d, &a, 0);
	assert_true(dedup_check(d, &a, 0));
	dedup_stage(d, &r, 0);
	assert_false(dedup_check(d, &a, 0)); /* the latest staged is the RESOLVE */
	dedup_abort(d);
	/* nothing of an aborted transaction enters the state */
	assert_false(dedup_check(d, &a, 1));
	assert_false(dedup_check(d, &r, 1));
	dedup_destroy(d);
}

static void test_lru(void **state)
{
	(void)state;
	struct dedup *d = dedup_create(60, 3);
	char keys[5][8];
	struct pending_item it[5];
	for (int i = 0; i < 5; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		it[i] = item(keys[i], "ALERT", "{}");
	}
	accept(d, &it[0], 0);
	accept(d, &it[1], 0);
	accept(d, &it[2], 0);
	assert_true(dedup_check(d, &it[0], 1));
	dedup_stage(d, &it[0], 1); /* touch k0: k1 is now least recently used */
	dedup_commit(d);
	accept(d, &it[3], 2);
	assert_false(dedup_check(d, &it[1], 3)); /* evicted */
	assert_true(dedup_check(d, &it[0], 3));
	assert_true(dedup_check(d, &it[2], 3));
	assert_true(dedup_check(d, &it[3], 3));
	/* many keys: bounded and still correct for the most recent ones */
	for (int i = 0; i < 10000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "x%d", i);
		struct pending_item x = item(k, "ALERT", "{}");
		accept(d, &x, 10);
		assert_true(dedup_check(d, &x, 11));
	}
	dedup_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),        cmocka_unit_test(test_type_and_content),
		cmocka_unit_test(test_not_applicable), cmocka_unit_test(test_staged_and_abort),
		cmocka_unit_test(test_lru),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
