#include "core/clock.h"

#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t clock_read_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_now_ms(void)
{
	return clock_read_ns(CLOCK_REALTIME) / 1000000;
}

int64_t clock_mono_ms(void)
{
	return clock_read_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t clock_mono_ns(void)
{
	return clock_read_ns(CLOCK_MONOTONIC);
}

char *clock_db_timestamp(char *out, size_t out_size)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, out_size, "%04d-%02d-%02d %02d:%02d:%02d.%09ld UTC", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
	return out;
}

static void split_ms(int64_t unix_ms, struct tm *tm, int *millis)
{
	int64_t secs = unix_ms / 1000;
	int64_t rest = unix_ms % 1000;
	if (rest < 0) {
		rest += 1000;
		secs -= 1;
	}
	time_t t = (time_t)secs;
	gmtime_r(&t, tm);
	*millis = (int)rest;
}

char *clock_rfc3339(int64_t unix_ms, char *out, size_t out_size)
{
	struct tm tm;
	int millis;
	split_ms(unix_ms, &tm, &millis);
	snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return out;
}

char *clock_rfc3339_ms(int64_t unix_ms, char *out, size_t out_size)
{
	struct tm tm;
	int millis;
	split_ms(unix_ms, &tm, &millis);
	snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
	return out;
}

static int read_digits(const char **p, int count, int *value)
{
	int v = 0;
	for (int i = 0; i < count; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return ILA_ERR_INVALID;
		v = v * 10 + (c - '0');
	}
	*p += count;
	*value = v;
	return 0;
}

static int expect_char(const char **p, const char *allowed)
{
	if (!**p || !strchr(allowed, **p))
		return ILA_ERR_INVALID;
	(*p)++;
	return 0;
}

int clock_parse_db_timestamp(const char *text, int64_t *unix_ms)
{
	const char *p = text;
	int year, mon, day, hour, min, sec, millis = 0;
	if (!text || read_digits(&p, 4, &year) || expect_char(&p, "-") ||
	    read_digits(&p, 2, &mon) || expect_char(&p, "-") || read_digits(&p, 2, &day) ||
	    expect_char(&p, " T") || read_digits(&p, 2, &hour) || expect_char(&p, ":") ||
	    read_digits(&p, 2, &min) || expect_char(&p, ":") || read_digits(&p, 2, &sec))
		return ILA_ERR_INVALID;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3)
				millis = millis * 10 + (*p - '0');
			digits++;
			p++;
		}
		if (digits == 0)
			return ILA_ERR_INVALID;
		for (; digits < 3; digits++)
			millis *= 10;
	}
	if (strcmp(p, "") != 0 && strcmp(p, " UTC") != 0 && strcmp(p, "Z") != 0)
		return ILA_ERR_INVALID;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return ILA_ERR_INVALID;
	struct tm tm = {
		.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
		.tm_hour = hour, .tm_min = min, .tm_sec = sec,
	};
	time_t t = timegm(&tm);
	*unix_ms = (int64_t)t * 1000 + millis;
	return 0;
}
