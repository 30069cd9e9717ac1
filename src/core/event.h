/* The canonical event (SPEC §6.4, §7): the fields every source is reduced to, and the
 * normalization and validation rules of §7.3 plus the ordering key of §2.
 * An event has one owner at a time; the functions are pure: safe from any thread. */
#ifndef ILAGENT_CORE_EVENT_H
#define ILAGENT_CORE_EVENT_H

#include <stdbool.h>

/* Every string is heap-owned by the event; NULL means absent. images, links and
 * custom_details hold compact JSON text (an array of image/link objects, any JSON value). */
struct event {
	char *integration_key;
	char *event_type; /* ALERT | ACCEPT | RESOLVE | COMMENT */
	char *summary;
	char *alert_key; /* normalized (§7.3): trimmed, never empty */
	char *details;
	char *priority; /* HIGH | LOW */
	char *images;
	char *links;
	char *custom_details;
};

/* The separator between integration key and alert key in an ordering key (U+001F). */
#define EVENT_ORDER_KEY_SEP "\x1f"

/* A zeroed event (all fields absent). NULL on out of memory. */
struct event *event_create(void);
/* Frees the event and every field; accepts NULL. */
void event_destroy(struct event *ev);
/* Deep copy; NULL on out of memory. */
struct event *event_dup(const struct event *ev);

/* Replaces *field with a copy of value (NULL makes it absent). Returns 0 or ILA_ERR_NOMEM,
 * in which case *field is unchanged. */
int event_set(char **field, const char *value);

/* §7.3 rule 1: *out := raw without surrounding ASCII whitespace, or NULL when raw is NULL or
 * nothing remains. Returns 0 or ILA_ERR_NOMEM. */
int event_normalize_alert_key(const char *raw, char **out);
/* Applies event_normalize_alert_key to ev->alert_key in place. */
int event_normalize(struct event *ev);

/* §7.3 rule 2: ALERT, ACCEPT, RESOLVE or COMMENT, exact case. NULL is not valid. */
bool event_type_valid(const char *event_type);
/* §7.3 rule 3: HIGH or LOW, exact case; NULL (absent) is valid. */
bool event_priority_valid(const char *priority);

/* The first §7.3 rule (2-4) ev breaks, as the wire-model field name ("eventType",
 * "priority", "integrationKey"), or NULL when ev is valid. */
const char *event_invalid_field(const struct event *ev);

/* §2 ordering key: integration_key + U+001F + case-folded alert_key. *out is NULL when
 * alert_key is NULL. Returns 0 or ILA_ERR_NOMEM. Caller frees *out. */
int event_order_key(const char *integration_key, const char *alert_key, char **out);

#endif
