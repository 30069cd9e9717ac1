/* The number parsers of the benchmark programs' command lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "args.h"

static void test_u64_range_and_syntax(void **state)
{
	(void)state;
	uint64_t v = 7;
	assert_true(bench_parse_u64("64", 1, 10000, &v));
	assert_int_equal(v, 64);
	assert_true(bench_parse_u64("18446744073709551615", 0, UINT64_MAX, &v));
	assert_true(v == UINT64_MAX);
	v = 7;
	const char *bad[] = { "", "0", "10001", "-1", "+5", "5x", " 5", "18446744073709551616" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(bench_parse_u64(bad[i], 1, 10000, &v));
	assert_int_equal(v, 7); /* unchanged by every failure */
}

static void test_positive_double(void **state)
{
	(void)state;
	double d = 3.0;
	assert_true(bench_parse_pos_double("0.5", 10.0, &d));
	assert_true(d == 0.5);
	assert_true(bench_parse_pos_double("1e3", 1e7, &d));
	assert_true(d == 1000.0);
	d = 3.0;
	const char *bad[] = { "", "0", "-1", "10.5", "nan", "1s" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(bench_parse_pos_double(bad[i], 10.0, &d));
	assert_true(d == 3.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64_range_and_syntax),
		cmocka_unit_test(test_positive_double),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
