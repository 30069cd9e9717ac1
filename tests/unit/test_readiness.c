#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/metrics.h"
#include "ops/readiness.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int reset(void **state)
{
	readiness_init();
	return 0;
}

/* Asserts the /ready answer: 204 without a body, or 503 with exactly want. */
static void expect_ready(const char *want)
{
	char *json = (char *)0x1;
	int status = readiness_render(&json);
	if (!want) {
		assert_int_equal(status, 204);
		assert_null(json);
		return;
	}
	assert_int_equal(status, 503);
	assert_non_null(json);
	assert_string_equal(json, want);
	free(json);
}

static void test_ready_by_default(void **state)
{
	expect_ready(NULL);
	assert_false(readiness_shutting_down());
	for (int c = 0; c < MCOMP_COUNT; c++)
		assert_true(readiness_component_ready(c));
}

static void test_row1_shutting_down_wins(void **state)
{
	readiness_mqtt_enable();
	readiness_kafka_enable();
	readiness_queue_set(true, "database error: disk I/O error", 5, 4);
	readiness_set_shutting_down();
	assert_true(readiness_shutting_down());
	expect_ready("{\"component\":\"daemon\",\"error\":\"shutting down\"}");
	assert_false(readiness_component_ready(MCOMP_DAEMON));
	/* it stays so */
	readiness_mqtt_set(true, true, NULL);
	expect_ready("{\"component\":\"daemon\",\"error\":\"shutting down\"}");
}

static void test_row2_mqtt(void **state)
{
	/* not enabled: its state does not matter */
	readiness_mqtt_set(false, false, "connection refused");
	expect_ready(NULL);
	assert_true(readiness_component_ready(MCOMP_MQTT));

	readiness_mqtt_enable();
	readiness_mqtt_set(false, false, NULL);
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":false,"
		     "\"error\":\"\"}");
	assert_false(readiness_component_ready(MCOMP_MQTT));
	readiness_mqtt_set(false, false, "Connection refused: not authorised");
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":false,"
		     "\"error\":\"Connection refused: not authorised\"}");
	readiness_mqtt_set(true, false, "subscription to 'a/#' refused");
	expect_ready("{\"component\":\"mqtt\",\"connected\":true,\"subscriptions_ready\":false,"
		     "\"error\":\"subscription to 'a/#' refused\"}");
	readiness_mqtt_set(false, true, "");
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":true,"
		     "\"error\":\"\"}");
	readiness_mqtt_set(true, true, NULL);
	expect_ready(NULL);
	assert_true(readiness_component_ready(MCOMP_MQTT));
	/* the error clears with the state */
	readiness_mqtt_set(false, false, NULL);
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":false,"
		     "\"error\":\"\"}");
	readiness_mqtt_set(false, false, "paused: queue full");
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":false,"
		     "\"error\":\"paused: queue full\"}");
}

static void test_row2_before_row3_and_row4(void **state)
{
	readiness_mqtt_enable();
	readiness_kafka_enable();
	readiness_queue_set(true, NULL, 10, 10);
	readiness_mqtt_set(true, false, NULL);
	expect_ready("{\"component\":\"mqtt\",\"connected\":true,\"subscriptions_ready\":false,"
		     "\"error\":\"\"}");
	readiness_mqtt_set(true, true, NULL);
	expect_ready("{\"component\":\"kafka\",\"consumer_started\":false,\"subscribed\":false,"
		     "\"worker_exited\":false,\"error\":\"\"}");
	readiness_kafka_set(true, true, false, NULL);
	expect_ready("{\"component\":\"queue\",\"queued\":10,\"max_queue\":10,\"error\":\"queue "
		     "full\"}");
	readiness_queue_set(false, NULL, 8, 10);
	expect_ready(NULL);
}

static void test_row3_kafka(void **state)
{
	readiness_kafka_set(false, false, true, "x");
	expect_ready(NULL);
	readiness_kafka_enable();
	readiness_kafka_set(false, false, false, NULL);
	expect_ready("{\"component\":\"kafka\",\"consumer_started\":false,\"subscribed\":false,"
		     "\"worker_exited\":false,\"error\":\"\"}");
	assert_false(readiness_component_ready(MCOMP_KAFKA));
	readiness_kafka_set(true, false, false, "Subscribe failed: Broker: Unknown topic");
	expect_ready(
		"{\"component\":\"kafka\",\"consumer_started\":true,\"subscribed\":false,"
		"\"worker_exited\":false,\"error\":\"Subscribe failed: Broker: Unknown topic\"}");
	readiness_kafka_set(true, true, false, NULL);
	expect_ready(NULL);
	assert_true(readiness_component_ready(MCOMP_KAFKA));
	/* receive errors are recorded without affecting readiness */
	readiness_kafka_set(true, true, false, "Receive failed: Broker transport failure");
	expect_ready(NULL);
	/* a stopped consumer is not ready */
	readiness_kafka_set(true, true, true, NULL);
	expect_ready("{\"component\":\"kafka\",\"consumer_started\":true,\"subscribed\":true,"
		     "\"worker_exited\":true,\"error\":\"\"}");
	assert_false(readiness_component_ready(MCOMP_KAFKA));
}

static void test_row4_queue(void **state)
{
	readiness_queue_set(true, NULL, 1000000, 1000000);
	expect_ready("{\"component\":\"queue\",\"queued\":1000000,\"max_queue\":1000000,\"error\":"
		     "\"queue full\"}");
	assert_false(readiness_component_ready(MCOMP_QUEUE));
	readiness_queue_set(false, "database error: database or disk is full", 12, 1000000);
	expect_ready("{\"component\":\"queue\",\"queued\":12,\"max_queue\":1000000,"
		     "\"error\":\"database error: database or disk is full\"}");
	assert_false(readiness_component_ready(MCOMP_QUEUE));
	/* paused wins over a store error */
	readiness_queue_set(true, "database error: disk I/O error", 9000000000LL, 5);
	expect_ready("{\"component\":\"queue\",\"queued\":9000000000,\"max_queue\":5,\"error\":"
		     "\"queue full\"}");
	/* cleared once the store is healthy again */
	readiness_queue_set(false, NULL, 0, 5);
	expect_ready(NULL);
	assert_true(readiness_component_ready(MCOMP_QUEUE));
}

static void test_error_texts_escaped(void **state)
{
	readiness_mqtt_enable();
	readiness_mqtt_set(false, false, "bad \"quote\" \\ and\nnewline");
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":false,"
		     "\"error\":\"bad \\\"quote\\\" \\\\ and\\nnewline\"}");
	readiness_mqtt_set(false, false, "bytes \xff\xfe end");
	expect_ready("{\"component\":\"mqtt\",\"connected\":false,\"subscriptions_ready\":false,"
		     "\"error\":\"bytes \xef\xbf\xbd\xef\xbf\xbd end\"}");
}

static void test_init_resets(void **state)
{
	readiness_set_shutting_down();
	readiness_mqtt_enable();
	readiness_kafka_enable();
	readiness_queue_set(true, "database error: x", 1, 1);
	readiness_init();
	expect_ready(NULL);
	assert_false(readiness_shutting_down());
	for (int c = 0; c < MCOMP_COUNT; c++)
		assert_true(readiness_component_ready(c));
}

static void *hammer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < 2000; i++) {
		switch (id) {
		case 0:
			readiness_mqtt_set(i % 2, i % 3, i % 5 ? "mqtt error" : NULL);
			break;
		case 1:
			readiness_kafka_set(i % 2, true, false, i % 7 ? "kafka error" : NULL);
			break;
		case 2:
			readiness_queue_set(i % 2, i % 3 ? NULL : "database error: busy", i, 10);
			break;
		default: {
			char *json = NULL;
			int st = readiness_render(&json);
			if (st != 204 && st != 503)
				return (void *)1;
			if (st == 503 && (!json || json[0] != '{'))
				return (void *)1;
			free(json);
			(void)readiness_component_ready(i % MCOMP_COUNT);
		}
		}
	}
	return NULL;
}

static void test_concurrent_use(void **state)
{
	readiness_mqtt_enable();
	readiness_kafka_enable();
	pthread_t t[5];
	for (long i = 0; i < 5; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < 5; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	readiness_mqtt_set(true, true, NULL);
	readiness_kafka_set(true, true, false, NULL);
	readiness_queue_set(false, NULL, 0, 10);
	expect_ready(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready_by_default, reset, reset),
		cmocka_unit_test_setup_teardown(test_row1_shutting_down_wins, reset, reset),
		cmocka_unit_test_setup_teardown(test_row2_mqtt, reset, reset),
		cmocka_unit_test_setup_teardown(test_row2_before_row3_and_row4, reset, reset),
		cmocka_unit_test_setup_teardown(test_row3_kafka, reset, reset),
		cmocka_unit_test_setup_teardown(test_row4_queue, reset, reset),
		cmocka_unit_test_setup_teardown(test_error_texts_escaped, reset, reset),
		cmocka_unit_test_setup_teardown(test_init_resets, reset, reset),
		cmocka_unit_test_setup_teardown(test_concurrent_use, reset, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
