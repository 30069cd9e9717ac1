/* ThreadSanitizer annotations for pointers handed between threads through Concurrency Kit
 * rings (src/core/mailbox.c, src/core/workq.c). They compile to nothing without the
 * sanitizer. Any thread may call them. */
#ifndef ILAGENT_CORE_TSAN_H
#define ILAGENT_CORE_TSAN_H

/* ck orders its rings with inline-assembly loads, stores and fences that ThreadSanitizer does
 * not see, so a payload filled by the producer and read by the consumer would be reported as
 * a race. The producer calls tsan_handoff_release(ptr) before the enqueue and the consumer
 * tsan_handoff_acquire(ptr) after the dequeue; this gives the sanitizer the happens-before
 * edge the ring really provides. The reports left inside ck itself are suppressed in
 * tests/tsan.supp. Clang announces the sanitizer only through __has_feature, gcc only through
 * __SANITIZE_THREAD__. */
#if defined(__SANITIZE_THREAD__)
#define ILAGENT_TSAN_ACTIVE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ILAGENT_TSAN_ACTIVE 1
#endif
#endif

#ifdef ILAGENT_TSAN_ACTIVE
#include <sanitizer/tsan_interface.h>
static inline void tsan_handoff_release(void *ptr)
{
	__tsan_release(ptr);
}
static inline void tsan_handoff_acquire(void *ptr)
{
	__tsan_acquire(ptr);
}
#else
static inline void tsan_handoff_release(void *ptr)
{
	(void)ptr;
}
static inline void tsan_handoff_acquire(void *ptr)
{
	(void)ptr;
}
#endif

#endif
