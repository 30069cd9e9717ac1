#include "args.h"

#include <errno.h>
#include <stdlib.h>

bool bench_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	if (*text < '0' || *text > '9') /* strtoull would take a sign or leading blanks */
		return false;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool bench_parse_pos_double(const char *text, double max, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v > 0.0) || v > max)
		return false;
	*out = v;
	return true;
}
