/* Synthetic events for the benchmarks: the same summary, alertKey and padding for the load
 * generator, the baseline client, the queue filler and the micro benchmarks, with fixed-width
 * counters so every event of one generator has exactly the same length.
 * A struct body_gen is immutable after body_gen_init: any thread may read it. */
#ifndef ILAGENT_BENCH_BODY_H
#define ILAGENT_BENCH_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum body_keys {
	BODY_KEYS_NONE,     /* no alertKey */
	BODY_KEYS_DISTINCT, /* every event its own alertKey */
	BODY_KEYS_CYCLE,    /* key_count alertKeys used in turn */
};

/* Longest summary and alertKey text body_summary/body_alert_key write, NUL included. */
#define BODY_FIELD_MAX 96

struct body_gen {
	char integration_key[64];
	char tag[16]; /* tells runs apart, so a later run never repeats an earlier event */
	enum body_keys keys;
	unsigned key_count;
	bool wire_nulls; /* also write "images", "links", "customDetails" as null (SPEC §6.4) */
	char *details;   /* padding that brings an event to the requested size */
	size_t details_len;
	size_t event_len; /* bytes of every event */
};

/* size: wanted bytes per event (events cannot be smaller than their fixed fields; the
 * result is in g->event_len). tag NULL: derived from the process id and the clock.
 * integration_key must be 1-63 characters without '"', '\\' or control characters.
 * Returns 0, ILA_ERR_INVALID or ILA_ERR_NOMEM. */
int body_gen_init(struct body_gen *g, const char *integration_key, enum body_keys keys,
		  unsigned key_count, size_t size, const char *tag, bool wire_nulls);
void body_gen_free(struct body_gen *g);

/* The summary and alertKey of event n (out holds BODY_FIELD_MAX bytes). body_alert_key
 * returns false (and writes "") in BODY_KEYS_NONE. */
void body_summary(const struct body_gen *g, uint64_t n, char *out);
bool body_alert_key(const struct body_gen *g, uint64_t n, char *out);

/* Writes event n as a JSON object: exactly g->event_len bytes plus a NUL, so out needs
 * g->event_len + 1 bytes. Returns g->event_len. */
size_t body_event_write(const struct body_gen *g, uint64_t n, char *out);
/* Bytes of a JSON array of count events (without the NUL). */
size_t body_batch_len(const struct body_gen *g, size_t count);
/* Writes events first..first+count-1 as a JSON array plus a NUL; out needs
 * body_batch_len() + 1 bytes. Returns the length. */
size_t body_batch_write(const struct body_gen *g, uint64_t first, size_t count, char *out);

#endif
