#include "core/workq.h"

#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/tsan.h"

struct workq {
	struct ck_ring ring;
	struct ck_ring_buffer *buffer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int sleepers;
};

struct workq *workq_create(unsigned size)
{
	if (size < 2 || (size & (size - 1)))
		return NULL;
	struct workq *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->buffer = calloc(size, sizeof(*q->buffer));
	if (!q->buffer) {
		free(q);
		return NULL;
	}
	ck_ring_init(&q->ring, size);
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &attr);
	pthread_condattr_destroy(&attr);
	return q;
}

void workq_destroy(struct workq *q)
{
	if (!q)
		return;
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->buffer);
	free(q);
}

bool workq_push(struct workq *q, void *ptr)
{
	tsan_handoff_release(ptr); /* the consumer takes over what we wrote into *ptr */
	if (!ck_ring_enqueue_spmc(&q->ring, q->buffer, ptr))
		return false;
	/* Pairs with the check under the lock in workq_wait: a consumer that registered as a
	 * sleeper either sees the pointer or gets the signal. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&q->sleepers) > 0) {
		pthread_mutex_lock(&q->lock);
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
	}
	return true;
}

void *workq_pop(struct workq *q)
{
	void *ptr;
	if (!ck_ring_dequeue_spmc(&q->ring, q->buffer, &ptr))
		return NULL;
	tsan_handoff_acquire(ptr);
	return ptr;
}

void workq_wait(struct workq *q, int timeout_ms)
{
	pthread_mutex_lock(&q->lock);
	atomic_fetch_add(&q->sleepers, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (ck_ring_size(&q->ring) == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&q->cond, &q->lock, &ts);
	}
	atomic_fetch_sub(&q->sleepers, 1);
	pthread_mutex_unlock(&q->lock);
}

void workq_wake_all(struct workq *q)
{
	pthread_mutex_lock(&q->lock);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

unsigned workq_count(const struct workq *q)
{
	return ck_ring_size(&q->ring);
}
