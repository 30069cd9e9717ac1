/* The mailbox (SPSC rings fan-in + eventfd) and the string map used by the pipeline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mailbox.h"
#include "core/strmap.h"

#define PRODUCERS 4
#define PER_PRODUCER 200000

struct producer_arg {
	struct mailbox *mb;
	uintptr_t id;
	uint64_t full_retries;
};

static void *produce(void *arg)
{
	struct producer_arg *pa = arg;
	struct mailbox_slot *slot = mailbox_slot_for_thread(pa->mb);
	assert_non_null(slot);
	assert_ptr_equal(slot, mailbox_slot_for_thread(pa->mb)); /* cached per thread */
	for (uintptr_t i = 1; i <= PER_PRODUCER; i++) {
		/* value = producer in the top bits, sequence in the low bits */
		void *v = (void *)((pa->id << 32) | i);
		while (!mailbox_push(slot, v))
			pa->full_retries++;
	}
	return NULL;
}

/* Every pointer arrives exactly once and in order per producer, with a sleeping consumer. */
static void test_fan_in(void **state)
{
	(void)state;
	struct mailbox *mb = mailbox_create(256, PRODUCERS);
	pthread_t t[PRODUCERS];
	struct producer_arg args[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++) {
		args[i] = (struct producer_arg){ .mb = mb, .id = (uintptr_t)i + 1 };
		pthread_create(&t[i], NULL, produce, &args[i]);
	}
	uintptr_t last[PRODUCERS + 1] = { 0 };
	size_t got = 0;
	while (got < (size_t)PRODUCERS * PER_PRODUCER) {
		void *v = mailbox_pop(mb);
		if (!v) {
			mailbox_wait(mb, 1000);
			continue;
		}
		uintptr_t x = (uintptr_t)v, id = x >> 32, seq = x & 0xffffffffu;
		assert_true(id >= 1 && id <= PRODUCERS);
		assert_int_equal(seq, last[id] + 1);
		last[id] = seq;
		got++;
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	assert_null(mailbox_pop(mb));
	assert_null(mailbox_slot_add(mb)); /* max_slots reached */
	mailbox_destroy(mb);
}

static void test_full_and_wait(void **state)
{
	(void)state;
	struct mailbox *mb = mailbox_create(4, 1);
	struct mailbox_slot *s = mailbox_slot_add(mb);
	assert_true(mailbox_push(s, (void *)1));
	assert_true(mailbox_push(s, (void *)2));
	assert_true(mailbox_push(s, (void *)3));
	assert_false(mailbox_push(s, (void *)4)); /* capacity is size - 1 */
	assert_int_equal(mailbox_count(mb), 3);
	assert_int_equal(mailbox_capacity(mb), 3);
	int64_t t0 = clock_mono_ms();
	mailbox_wait(mb, 5000); /* returns at once: something is queued */
	assert_true(clock_mono_ms() - t0 < 1000);
	while (mailbox_pop(mb))
		;
	t0 = clock_mono_ms();
	mailbox_wait(mb, 50);
	assert_true(clock_mono_ms() - t0 >= 40);
	mailbox_wake(mb);
	t0 = clock_mono_ms();
	mailbox_wait(mb, 5000); /* a pending wake makes it return */
	assert_true(clock_mono_ms() - t0 < 1000);
	mailbox_destroy(mb);
	assert_null(mailbox_create(3, 1)); /* not a power of two */
}

static void test_strmap(void **state)
{
	(void)state;
	struct strmap *m = strmap_create();
	enum { N = 5000 };
	static char keys[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
		assert_int_equal(strmap_put(m, keys[i], &keys[i]), 0);
	}
	assert_int_equal(strmap_count(m), N);
	for (int i = 0; i < N; i += 2)
		assert_ptr_equal(strmap_remove(m, keys[i]), &keys[i]);
	assert_int_equal(strmap_count(m), N / 2);
	for (int i = 0; i < N; i++) {
		if (i % 2)
			assert_ptr_equal(strmap_get(m, keys[i]), &keys[i]);
		else
			assert_false(strmap_contains(m, keys[i]));
	}
	assert_null(strmap_remove(m, "absent"));
	char other[] = "key-1";
	assert_int_equal(strmap_put(m, other, NULL), 0); /* replace by an equal key */
	assert_true(strmap_contains(m, "key-1"));
	assert_null(strmap_get(m, "key-1"));
	assert_int_equal(strmap_count(m), N / 2);
	strmap_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fan_in),
		cmocka_unit_test(test_full_and_wait),
		cmocka_unit_test(test_strmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
