/* A consumer thread's inbox: a fan-in of single-producer/single-consumer Concurrency Kit
 * rings, one per producer thread, plus an eventfd the consumer sleeps on when all are empty.
 * Pushing transfers ownership of the pointer to the consumer; a full ring refuses the push
 * (backpressure, never a drop). Threads: each slot has exactly one producer thread;
 * mailbox_pop/mailbox_wait belong to the one consumer thread; mailbox_wake and the slot
 * registration functions may be called from any thread. */
#ifndef ILAGENT_CORE_MAILBOX_H
#define ILAGENT_CORE_MAILBOX_H

#include <stdbool.h>

struct mailbox;
struct mailbox_slot;

/* slot_size: ring size per producer (power of two; holds slot_size - 1 pointers).
 * max_slots: how many producers may register. NULL on failure. */
struct mailbox *mailbox_create(unsigned slot_size, unsigned max_slots);
/* Frees the rings (not the pointers still queued: drain first). Accepts NULL. */
void mailbox_destroy(struct mailbox *mb);

/* Registers a new producer slot; NULL when max_slots are taken or out of memory. */
struct mailbox_slot *mailbox_slot_add(struct mailbox *mb);
/* The calling thread's slot, registered on first use (for thread pools the program does
 * not create, such as the HTTP server's). NULL when no slot is left. */
struct mailbox_slot *mailbox_slot_for_thread(struct mailbox *mb);

/* Producer: enqueues ptr and wakes the consumer if it sleeps. False when the ring is full. */
bool mailbox_push(struct mailbox_slot *slot, void *ptr);

/* Consumer: the next pointer (rings are visited round-robin), NULL when all are empty. */
void *mailbox_pop(struct mailbox *mb);
/* Consumer: sleeps until a push, a mailbox_wake, or timeout_ms (-1 = no timeout) passes.
 * Returns at once when something is queued. */
void mailbox_wait(struct mailbox *mb, int timeout_ms);
/* Any thread: makes the consumer's current or next mailbox_wait return. */
void mailbox_wake(struct mailbox *mb);

/* Approximate number of queued pointers and the total capacity (for fill-ratio metrics). */
unsigned mailbox_count(const struct mailbox *mb);
unsigned mailbox_capacity(const struct mailbox *mb);

#endif
