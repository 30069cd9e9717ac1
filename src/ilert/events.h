/* Event delivery to ilert (SPEC §6.2, §6.4): the request body built from a struct event,
 * the target derived from a stored event_api_path, and the POST itself.
 * Body and target functions are pure (any thread); ilert_send_event runs on the client's
 * thread. */
#ifndef ILAGENT_ILERT_EVENTS_H
#define ILAGENT_ILERT_EVENTS_H

#include <stdbool.h>

#include "core/event.h"
#include "ilert/client.h"

/* The §6.4 body as compact JSON: exactly the nine keys in order, null for absent values,
 * images re-emitted as {"src","href","alt"} and links as {"href","text"}. A stored images,
 * links or custom_details text that is not valid JSON (or not a list of objects with
 * string members) is sent as null and logged as a warning. Caller frees; NULL on out of
 * memory. */
char *ilert_event_body(const struct event *ev);

/* Where an event goes: path after "/api" plus the key segment appended by the client. */
struct ilert_event_target {
	char *path;      /* owned: "/events", "/v1/events/mqtt/", "/v1/events/kafka/", ... */
	const char *key; /* points into the event_api_path given; NULL for "/events" */
	enum ilert_endpoint endpoint;
};

/* Target for a stored event_api_path (§6.2): NULL or "" → "/events"; "/v1/events/mqtt/<key>"
 * and "/v1/events/kafka/<key>" → that prefix and the verbatim key, whatever it contains.
 * Any other stored path keeps its segments (each percent-encoded) with its last segment as
 * the key. Returns 0 or ILA_ERR_NOMEM; free with ilert_event_target_free(). */
int ilert_event_target(const char *event_api_path, struct ilert_event_target *t);
void ilert_event_target_free(struct ilert_event_target *t);

/* POSTs ev to its target once, with Authorization when auth is set and the client has a
 * key. Returns and fills res like ilert_client_send(); on success the correlation-id is
 * logged at info. */
int ilert_send_event(struct ilert_client *c, const struct event *ev, const char *event_api_path,
		     bool auth, struct ilert_result *res);

#endif
