/* A work queue with one producer and many consumers (the dispatcher feeding the forwarders):
 * a Concurrency Kit SPMC ring, so whichever consumer is idle takes the next pointer, plus a
 * condition variable that idle consumers sleep on. Pushing transfers ownership.
 * Threads: workq_push by the one producer thread; workq_pop/workq_wait by any consumer;
 * workq_wake_all by any thread. */
#ifndef ILAGENT_CORE_WORKQ_H
#define ILAGENT_CORE_WORKQ_H

#include <stdbool.h>

struct workq;

/* size: power of two (holds size - 1 pointers). NULL on failure. */
struct workq *workq_create(unsigned size);
void workq_destroy(struct workq *q); /* accepts NULL; does not free queued pointers */

/* False when the ring is full. */
bool workq_push(struct workq *q, void *ptr);
/* The next pointer or NULL, without waiting. */
void *workq_pop(struct workq *q);
/* Sleeps until something may be queued, workq_wake_all, or timeout_ms. */
void workq_wait(struct workq *q, int timeout_ms);
/* Wakes every sleeping consumer (e.g. to let them see a stop flag). */
void workq_wake_all(struct workq *q);
unsigned workq_count(const struct workq *q);

#endif
