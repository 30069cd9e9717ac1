#include "core/mailbox.h"

#include <ck_ring.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/tsan.h"

struct mailbox_slot {
	struct ck_ring ring;
	struct ck_ring_buffer *buffer;
	struct mailbox *owner;
};

struct mailbox {
	unsigned slot_size;
	unsigned max_slots;
	_Atomic unsigned slot_count;
	struct mailbox_slot *slots; /* max_slots entries, registered in order */
	unsigned next_pop;          /* consumer only: round-robin start */
	atomic_int sleeping;        /* the consumer is (about to be) blocked in poll */
	atomic_int woken;           /* mailbox_wake was called since the last wait */
	int event_fd;
	pthread_mutex_t register_lock;
	uint64_t generation; /* unique per mailbox, see mailbox_slot_for_thread */
};

static _Atomic uint64_t next_generation = 1;

struct mailbox *mailbox_create(unsigned slot_size, unsigned max_slots)
{
	if (slot_size < 2 || (slot_size & (slot_size - 1)) || max_slots == 0)
		return NULL;
	struct mailbox *mb = calloc(1, sizeof(*mb));
	if (!mb)
		return NULL;
	mb->slots = calloc(max_slots, sizeof(*mb->slots));
	mb->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!mb->slots || mb->event_fd < 0) {
		if (mb->event_fd >= 0)
			close(mb->event_fd);
		free(mb->slots);
		free(mb);
		return NULL;
	}
	mb->slot_size = slot_size;
	mb->max_slots = max_slots;
	mb->generation = atomic_fetch_add(&next_generation, 1);
	pthread_mutex_init(&mb->register_lock, NULL);
	return mb;
}

void mailbox_destroy(struct mailbox *mb)
{
	if (!mb)
		return;
	unsigned n = atomic_load(&mb->slot_count);
	for (unsigned i = 0; i < n; i++)
		free(mb->slots[i].buffer);
	free(mb->slots);
	close(mb->event_fd);
	pthread_mutex_destroy(&mb->register_lock);
	free(mb);
}

struct mailbox_slot *mailbox_slot_add(struct mailbox *mb)
{
	struct mailbox_slot *slot = NULL;
	pthread_mutex_lock(&mb->register_lock);
	unsigned n = atomic_load(&mb->slot_count);
	if (n < mb->max_slots) {
		struct ck_ring_buffer *buffer = calloc(mb->slot_size, sizeof(*buffer));
		if (buffer) {
			slot = &mb->slots[n];
			slot->buffer = buffer;
			slot->owner = mb;
			ck_ring_init(&slot->ring, mb->slot_size);
			/* Publish the initialised slot before the consumer may see it. */
			atomic_store(&mb->slot_count, n + 1);
		}
	}
	pthread_mutex_unlock(&mb->register_lock);
	return slot;
}

/* A few (mailbox, slot) pairs per thread: a producer thread pushes into few mailboxes.
 * A thread may outlive a mailbox, and a new one may be allocated at the same address: the
 * generation tells them apart, so a cached slot of a freed mailbox is never handed out. */
#define THREAD_SLOT_CACHE 4
static _Thread_local struct {
	struct mailbox *mb;
	uint64_t generation;
	struct mailbox_slot *slot;
} thread_slots[THREAD_SLOT_CACHE];
static _Thread_local unsigned thread_slots_evict;

struct mailbox_slot *mailbox_slot_for_thread(struct mailbox *mb)
{
	int free_entry = -1;
	for (int i = 0; i < THREAD_SLOT_CACHE; i++) {
		if (thread_slots[i].mb == mb && thread_slots[i].generation == mb->generation)
			return thread_slots[i].slot;
		if (free_entry < 0 && (!thread_slots[i].mb || thread_slots[i].mb == mb))
			free_entry = i; /* empty, or left by a freed mailbox at this address */
	}
	struct mailbox_slot *slot = mailbox_slot_add(mb);
	if (!slot)
		return NULL;
	/* With every entry taken (possibly by freed mailboxes) one is replaced; a live
	 * mailbox that loses its entry gets another slot for this thread, still with a single
	 * producer each. */
	int i = free_entry >= 0 ? free_entry : (int)(thread_slots_evict++ % THREAD_SLOT_CACHE);
	thread_slots[i].mb = mb;
	thread_slots[i].generation = mb->generation;
	thread_slots[i].slot = slot;
	return slot;
}

static void signal_consumer(struct mailbox *mb)
{
	uint64_t one = 1;
	ssize_t n;
	do {
		n = write(mb->event_fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: the consumer will wake anyway. */
}

bool mailbox_push(struct mailbox_slot *slot, void *ptr)
{
	tsan_handoff_release(ptr); /* the consumer takes over what we wrote into *ptr */
	if (!ck_ring_enqueue_spsc(&slot->ring, slot->buffer, ptr))
		return false;
	/* Pairs with the fence in mailbox_wait: either the consumer sees the entry or we see
	 * that it sleeps. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&slot->owner->sleeping))
		signal_consumer(slot->owner);
	return true;
}

void *mailbox_pop(struct mailbox *mb)
{
	unsigned n = atomic_load(&mb->slot_count);
	for (unsigned k = 0; k < n; k++) {
		unsigned i = (mb->next_pop + k) % n;
		void *ptr;
		if (ck_ring_dequeue_spsc(&mb->slots[i].ring, mb->slots[i].buffer, &ptr)) {
			tsan_handoff_acquire(ptr);
			mb->next_pop = i + 1;
			return ptr;
		}
	}
	return NULL;
}

static bool any_queued(const struct mailbox *mb)
{
	unsigned n = atomic_load(&mb->slot_count);
	for (unsigned i = 0; i < n; i++)
		if (ck_ring_size(&mb->slots[i].ring) > 0)
			return true;
	return false;
}

void mailbox_wait(struct mailbox *mb, int timeout_ms)
{
	atomic_store(&mb->sleeping, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (!any_queued(mb) && !atomic_exchange(&mb->woken, 0)) {
		struct pollfd pfd = { .fd = mb->event_fd, .events = POLLIN };
		poll(&pfd, 1, timeout_ms);
	}
	atomic_store(&mb->sleeping, 0);
	atomic_store(&mb->woken, 0);
	uint64_t drained;
	while (read(mb->event_fd, &drained, sizeof(drained)) > 0)
		;
}

void mailbox_wake(struct mailbox *mb)
{
	atomic_store(&mb->woken, 1);
	atomic_thread_fence(memory_order_seq_cst);
	signal_consumer(mb);
}

unsigned mailbox_count(const struct mailbox *mb)
{
	unsigned n = atomic_load(&mb->slot_count), total = 0;
	for (unsigned i = 0; i < n; i++)
		total += ck_ring_size(&mb->slots[i].ring);
	return total;
}

unsigned mailbox_capacity(const struct mailbox *mb)
{
	return atomic_load(&mb->slot_count) * (mb->slot_size - 1);
}
