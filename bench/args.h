/* Number arguments of the benchmark programs' command lines.
 * Owns nothing; pure functions, any thread. A failed parse leaves *out unchanged, so a caller
 * can print its own usage error. */
#ifndef ILAGENT_BENCH_ARGS_H
#define ILAGENT_BENCH_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* A decimal number in [min, max], digits only (no sign, no blanks); overflow fails. */
bool bench_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);
/* A number > 0 and <= max (strtod syntax). */
bool bench_parse_pos_double(const char *text, double max, double *out);

#endif
