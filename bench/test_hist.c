/* The load generator's histogram: bucket layout, precision, quantiles, merge. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hist.h"

static void test_small_values_exact(void **state)
{
	(void)state;
	for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
		size_t i = hist_index(v);
		assert_int_equal(i, v);
		assert_int_equal(hist_bucket_low(i), v);
		assert_int_equal(hist_bucket_high(i), v);
	}
}

static void test_buckets_contain_their_values(void **state)
{
	(void)state;
	uint64_t samples[] = { 1024, 1025, 2047, 2048, 2049, 4095, 123456789, 1ULL << 40,
			       (1ULL << 40) + 12345, UINT64_MAX / 3, UINT64_MAX - 1, UINT64_MAX };
	for (size_t k = 0; k < sizeof(samples) / sizeof(samples[0]); k++) {
		uint64_t v = samples[k];
		size_t i = hist_index(v);
		assert_true(i < HIST_BUCKETS);
		assert_true(hist_bucket_low(i) <= v);
		assert_true(hist_bucket_high(i) >= v);
		/* relative width below 1/512 */
		uint64_t width = hist_bucket_high(i) - hist_bucket_low(i);
		assert_true(width <= hist_bucket_low(i) / 512);
	}
	assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}

static void test_buckets_are_contiguous(void **state)
{
	(void)state;
	for (size_t i = 1; i < HIST_BUCKETS; i++)
		assert_int_equal(hist_bucket_low(i), hist_bucket_high(i - 1) + 1);
}

static void test_quantiles(void **state)
{
	(void)state;
	struct hist *h = hist_create();
	assert_non_null(h);
	assert_int_equal(hist_quantile(h, 0.5), 0);
	for (uint64_t v = 1; v <= 100000; v++)
		hist_record(h, v * 1000); /* 1 µs .. 100 ms in ns */
	assert_int_equal(h->total, 100000);
	assert_int_equal(hist_quantile(h, 1.0), 100000000);
	assert_int_equal(hist_quantile(h, 0.0), 1000);
	uint64_t p50 = hist_quantile(h, 0.5), p99 = hist_quantile(h, 0.99);
	uint64_t p999 = hist_quantile(h, 0.999);
	assert_true(p50 >= 50000000 && p50 <= 50000000 + 50000000 / 512);
	assert_true(p99 >= 99000000 && p99 <= 99000000 + 99000000 / 512);
	assert_true(p999 >= 99900000 && p999 <= 100000000);
	assert_true(hist_mean(h) > 50000000.0 && hist_mean(h) < 50001000.0);
	hist_destroy(h);
}

static void test_outlier_and_merge(void **state)
{
	(void)state;
	struct hist *a = hist_create(), *b = hist_create();
	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < 999; i++)
		hist_record(a, 500);
	hist_record(b, 7000000000ULL);
	hist_merge(a, b);
	assert_int_equal(a->total, 1000);
	assert_int_equal(hist_quantile(a, 0.99), 500);
	assert_int_equal(hist_quantile(a, 0.999), 500);
	assert_int_equal(hist_quantile(a, 0.9995), 7000000000ULL);
	assert_int_equal(a->max, 7000000000ULL);
	assert_int_equal(a->min, 500);
	hist_reset(a);
	assert_int_equal(a->total, 0);
	assert_int_equal(hist_quantile(a, 0.99), 0);
	hist_destroy(a);
	hist_destroy(b);
	hist_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_values_exact),
		cmocka_unit_test(test_buckets_contain_their_values),
		cmocka_unit_test(test_buckets_are_contiguous),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_outlier_and_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
