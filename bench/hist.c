/* Log-linear histogram: see hist.h for the bucket layout. */
#include "hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct hist *hist_create(void)
{
	struct hist *h = calloc(1, sizeof(*h));
	if (h)
		h->min = UINT64_MAX;
	return h;
}

void hist_destroy(struct hist *h)
{
	free(h);
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

size_t hist_index(uint64_t value)
{
	if (value < HIST_SUB_COUNT)
		return (size_t)value;
	unsigned msb = 63u - (unsigned)__builtin_clzll(value);
	/* Shift so the top HIST_SUB_BITS bits remain: the mantissa is in [HALF, SUB). */
	unsigned shift = msb - (HIST_SUB_BITS - 1);
	uint64_t mantissa = value >> shift;
	return HIST_SUB_COUNT + (size_t)(shift - 1) * HIST_HALF_COUNT +
	       (size_t)(mantissa - HIST_HALF_COUNT);
}

uint64_t hist_bucket_low(size_t index)
{
	if (index < HIST_SUB_COUNT)
		return index;
	size_t rel = index - HIST_SUB_COUNT;
	unsigned shift = (unsigned)(rel / HIST_HALF_COUNT) + 1;
	uint64_t mantissa = rel % HIST_HALF_COUNT + HIST_HALF_COUNT;
	return mantissa << shift;
}

uint64_t hist_bucket_high(size_t index)
{
	if (index < HIST_SUB_COUNT)
		return index;
	size_t rel = index - HIST_SUB_COUNT;
	unsigned shift = (unsigned)(rel / HIST_HALF_COUNT) + 1;
	return hist_bucket_low(index) + ((UINT64_C(1) << shift) - 1);
}

void hist_record(struct hist *h, uint64_t value)
{
	h->counts[hist_index(value)]++;
	h->total++;
	h->sum += (long double)value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->total == 0)
		return 0;
	if (q <= 0.0)
		return h->min;
	if (q >= 1.0)
		return h->max;
	/* The rank of the value asked for, 1-based; p50 of {a, b} is a. */
	uint64_t rank = (uint64_t)ceil(q * (double)h->total);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t high = hist_bucket_high(i);
			return high < h->max ? high : h->max;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->total ? (double)(h->sum / (long double)h->total) : 0.0;
}
