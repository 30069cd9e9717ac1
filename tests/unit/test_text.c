/* String helpers: masking (§2), percent-encoding (§6.1), trimming and case folding (§7.3),
 * UTF-8 checks, clock formats (§16.2, §17.1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/text.h"
#include "core/uuid.h"

static void test_mask(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(text_mask("abcdefghijkl", out, sizeof(out)), "abcd\xe2\x80\xa6");
	assert_string_equal(text_mask("abcdefghijklmnopqrstuvwxyz", out, sizeof(out)), "abcd\xe2\x80\xa6");
	assert_string_equal(text_mask("abcdefghijk", out, sizeof(out)), "\xe2\x80\xa6");
	assert_string_equal(text_mask("", out, sizeof(out)), "\xe2\x80\xa6");
	assert_string_equal(text_mask(NULL, out, sizeof(out)), "\xe2\x80\xa6");
	/* characters, not bytes: 12 two-byte characters are long enough, the prefix is 4 of them */
	assert_string_equal(text_mask("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4", out, sizeof(out)),
			    "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xe2\x80\xa6");
	assert_string_equal(text_mask("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4", out, sizeof(out)), "\xe2\x80\xa6");
}

static void test_percent(void **state)
{
	(void)state;
	char *s = text_percent_encode("il1api-AZaz09._~");
	assert_string_equal(s, "il1api-AZaz09._~");
	free(s);
	s = text_percent_encode("a/b c%?#\xc3\xa4");
	assert_string_equal(s, "a%2Fb%20c%25%3F%23%C3%A4");
	free(s);
	s = text_percent_decode("a%2Fb%20c%c3%A4");
	assert_string_equal(s, "a/b c\xc3\xa4");
	free(s);
	assert_null(text_percent_decode("bad%2"));
	assert_null(text_percent_decode("bad%zz"));
	assert_null(text_percent_decode("nul%00"));
}

static void test_trim_and_fold(void **state)
{
	(void)state;
	char *s = text_trim_dup(" \t\r\n\v\fKey 1\f\v\n\r\t ");
	assert_string_equal(s, "Key 1");
	free(s);
	s = text_trim_dup("   ");
	assert_string_equal(s, "");
	free(s);
	char folded[] = "AbC-\xc3\x84Z";
	text_casefold(folded);
	assert_string_equal(folded, "abc-\xc3\x84z"); /* ASCII only */
	assert_true(text_starts_with_nocase("BeArEr x", "bearer"));
	assert_false(text_starts_with_nocase("Bear", "bearer"));
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(text_utf8_valid("plain \xc3\xa4 \xe2\x82\xac \xf0\x9f\x98\x80", 17));
	assert_false(text_utf8_valid("plain \xc3\xa4 \xe2\x82\xac \xf0\x9f\x98\x80", 16)); /* cut */
	assert_false(text_utf8_valid("\xc3", 1));
	assert_false(text_utf8_valid("\xc0\xaf", 2));         /* overlong */
	assert_false(text_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(text_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	char *s = text_utf8_sanitize("ok\xff!", 4, 100);
	assert_string_equal(s, "ok\xef\xbf\xbd!");
	free(s);
	/* never split a character at the byte limit */
	s = text_utf8_sanitize("ab\xe2\x82\xac", 5, 4);
	assert_string_equal(s, "ab");
	free(s);
}

static void test_tbuf(void **state)
{
	(void)state;
	struct tbuf b;
	tbuf_init(&b);
	assert_string_equal(tbuf_cstr(&b), "");
	for (int i = 0; i < 1000; i++)
		tbuf_printf(&b, "%d,", i);
	tbuf_putc(&b, '!');
	assert_int_equal(b.len, strlen(tbuf_cstr(&b)));
	char *s = tbuf_take(&b);
	assert_true(strncmp(s, "0,1,2,", 6) == 0);
	assert_int_equal(s[strlen(s) - 1], '!');
	free(s);
	assert_null(b.data);
}

static void test_clock_formats(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(clock_rfc3339(1738324800123LL, out, sizeof(out)), "2025-01-31T12:00:00Z");
	assert_string_equal(clock_rfc3339_ms(1738324800123LL, out, sizeof(out)), "2025-01-31T12:00:00.123Z");
	clock_db_timestamp(out, sizeof(out));
	assert_int_equal(strlen(out), strlen("2025-01-31 12:00:00.123456789 UTC"));
	assert_string_equal(out + strlen(out) - 4, " UTC");
	int64_t ms;
	assert_int_equal(clock_parse_db_timestamp("2025-01-31 12:00:00.123456789 UTC", &ms), 0);
	assert_int_equal(ms, 1738324800123LL);
	assert_int_equal(clock_parse_db_timestamp("2025-01-31 12:00:00.5", &ms), 0);
	assert_int_equal(ms, 1738324800500LL);
	assert_int_equal(clock_parse_db_timestamp("2025-01-31 12:00:00", &ms), 0);
	assert_int_equal(ms, 1738324800000LL);
	assert_int_not_equal(clock_parse_db_timestamp("yesterday", &ms), 0);
	assert_int_not_equal(clock_parse_db_timestamp("2025-13-31 12:00:00", &ms), 0);
	int64_t now = clock_now_ms();
	assert_int_equal(clock_parse_db_timestamp(clock_db_timestamp(out, sizeof(out)), &ms), 0);
	assert_true(ms >= now - 1000 && ms <= now + 1000);
}

static void test_uuid(void **state)
{
	(void)state;
	char a[UUID_STR_LEN], b[UUID_STR_LEN];
	uuid_v4(a);
	uuid_v4(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a[i], '-');
		else
			assert_true(strchr("0123456789abcdef", a[i]) != NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mask),          cmocka_unit_test(test_percent),
		cmocka_unit_test(test_trim_and_fold), cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_tbuf),          cmocka_unit_test(test_clock_formats),
		cmocka_unit_test(test_uuid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
