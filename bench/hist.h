/* A log-linear latency histogram in the spirit of HdrHistogram: exact below 1024, then 512
 * linear sub-buckets per power of two (relative error < 0.2 %), fixed memory, O(1) record.
 * Not thread-safe: one thread records; merge copies from several threads afterwards. */
#ifndef ILAGENT_BENCH_HIST_H
#define ILAGENT_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

/* Values below HIST_SUB_COUNT are counted exactly. */
#define HIST_SUB_BITS 10
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_HALF_COUNT (HIST_SUB_COUNT / 2)
/* One linear half-range per power of two from 2^HIST_SUB_BITS up to 2^63. */
#define HIST_BUCKETS (HIST_SUB_COUNT + (64 - HIST_SUB_BITS) * HIST_HALF_COUNT)

struct hist {
	uint64_t counts[HIST_BUCKETS];
	uint64_t total;
	uint64_t min;
	uint64_t max;
	long double sum;
};

/* A zeroed histogram on the heap (about 225 KiB). NULL on out of memory. */
struct hist *hist_create(void);
void hist_destroy(struct hist *h);
void hist_reset(struct hist *h);

void hist_record(struct hist *h, uint64_t value);
/* Adds every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at quantile q (0..1): the highest value equivalent to the bucket holding the
 * q-th recorded value, never above the exact maximum. 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
double hist_mean(const struct hist *h);

/* Bucket index of a value and the value range [low, high] a bucket stands for. */
size_t hist_index(uint64_t value);
uint64_t hist_bucket_low(size_t index);
uint64_t hist_bucket_high(size_t index);

#endif
