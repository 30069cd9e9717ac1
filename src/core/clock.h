/* Time helpers: wall-clock and monotonic milliseconds, and the text formats the SPEC fixes
 * (database timestamps §16.2, RFC 3339 for `queue list` and logs).
 * Pure functions: safe from any thread. */
#ifndef ILAGENT_CORE_CLOCK_H
#define ILAGENT_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t clock_now_ms(void);
/* Monotonic milliseconds for deadlines and durations (CLOCK_MONOTONIC). */
int64_t clock_mono_ms(void);
/* Monotonic nanoseconds, for latency histograms and benchmarks. */
int64_t clock_mono_ns(void);

/* "YYYY-MM-DD HH:MM:SS.fffffffff UTC" for the current time (§16.2); out ≥ 40 bytes. */
char *clock_db_timestamp(char *out, size_t out_size);
/* "2025-01-31T12:00:00Z" for a Unix-ms time; out ≥ 24 bytes. */
char *clock_rfc3339(int64_t unix_ms, char *out, size_t out_size);
/* "2025-01-31T12:00:00.123Z" for a Unix-ms time (log lines); out ≥ 28 bytes. */
char *clock_rfc3339_ms(int64_t unix_ms, char *out, size_t out_size);
/* Parses "YYYY-MM-DD HH:MM:SS[.fraction][ UTC]" or with 'T' (UTC assumed) into Unix ms.
 * Returns 0 on success, ILA_ERR_INVALID when the text is not such a timestamp. */
int clock_parse_db_timestamp(const char *text, int64_t *unix_ms);

#endif
