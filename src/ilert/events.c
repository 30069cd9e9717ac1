#include "ilert/events.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/text.h"
#include "ops/log.h"

#define LOG_COMP "forward"

static const char *const image_members[] = { "src", "href", "alt", NULL };
static const char *const link_members[] = { "href", "text", NULL };

/* A JSON string for s, null for NULL. Text that is not UTF-8 (possible from the command
 * line or old rows) is repaired with U+FFFD rather than dropping the whole body. */
static json_t *json_text(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	size_t len = strlen(s);
	char *clean = text_utf8_sanitize(s, len, len * 3 + 1);
	if (!clean)
		return NULL;
	j = json_string(clean);
	free(clean);
	return j;
}

/* One image or link object with exactly the given members in order; NULL when item is not
 * an object or a member is neither absent, null nor a string. */
static json_t *list_item(json_t *item, const char *const *members)
{
	if (!json_is_object(item))
		return NULL;
	json_t *out = json_object();
	if (!out)
		return NULL;
	for (const char *const *m = members; *m; m++) {
		json_t *v = json_object_get(item, *m);
		if (v && !json_is_null(v) && !json_is_string(v))
			goto fail;
		if (json_object_set_new(out, *m, v && json_is_string(v) ? json_copy(v) : json_null()))
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static void warn_stored(const char *field, const char *problem)
{
	log_limited(LOG_LVL_WARN, LOG_COMP, "Stored %s of an event %s, sending null", field,
		    problem);
}

/* The stored images/links text re-emitted member by member, or null. */
static json_t *list_value(const char *text, const char *field, const char *const *members)
{
	if (!text)
		return json_null();
	json_t *in = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!in) {
		warn_stored(field, "is not valid JSON");
		return json_null();
	}
	json_t *out = json_is_array(in) ? json_array() : NULL;
	size_t i;
	json_t *item;
	json_array_foreach(in, i, item) {
		if (!out)
			break;
		json_t *o = list_item(item, members);
		if (!o || json_array_append_new(out, o)) {
			json_decref(out);
			out = NULL;
		}
	}
	json_decref(in);
	if (!out) {
		warn_stored(field, "is not a list of objects with string members");
		return json_null();
	}
	return out;
}

static json_t *any_value(const char *text, const char *field)
{
	if (!text)
		return json_null();
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!v) {
		warn_stored(field, "is not valid JSON");
		return json_null();
	}
	return v;
}

char *ilert_event_body(const struct event *ev)
{
	json_t *body = json_object();
	if (!body)
		return NULL;
	struct {
		const char *key;
		json_t *value;
	} fields[] = {
		{ "integrationKey", json_text(ev->integration_key) },
		{ "eventType", json_text(ev->event_type) },
		{ "summary", json_text(ev->summary) },
		{ "alertKey", json_text(ev->alert_key) },
		{ "details", json_text(ev->details) },
		{ "priority", json_text(ev->priority) },
		{ "images", list_value(ev->images, "images", image_members) },
		{ "links", list_value(ev->links, "links", link_members) },
		{ "customDetails", any_value(ev->custom_details, "customDetails") },
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		/* json_object_set_new takes the reference even when it fails. */
		if (!fields[i].value || json_object_set_new(body, fields[i].key, fields[i].value))
			ok = false;
	}
	char *text = ok ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return text;
}

static const struct {
	const char *prefix;
	enum ilert_endpoint endpoint;
} known_paths[] = {
	{ "/v1/events/mqtt/", ILERT_EP_EVENTS_MQTT },
	{ "/v1/events/kafka/", ILERT_EP_EVENTS_KAFKA },
};

/* Each '/'-separated segment of the first len bytes of path, percent-encoded. */
static char *encode_segments(const char *path, size_t len)
{
	struct tbuf out;
	tbuf_init(&out);
	const char *p = path, *end = path + len;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *seg_end = slash ? slash : end;
		char *seg = strndup(p, (size_t)(seg_end - p));
		char *enc = seg ? text_percent_encode(seg) : NULL;
		free(seg);
		if (!enc) {
			tbuf_free(&out);
			return NULL;
		}
		tbuf_puts(&out, enc);
		free(enc);
		if (slash)
			tbuf_putc(&out, '/');
		p = slash ? slash + 1 : end;
	}
	return tbuf_take(&out);
}

int ilert_event_target(const char *event_api_path, struct ilert_event_target *t)
{
	memset(t, 0, sizeof(*t));
	t->endpoint = ILERT_EP_EVENTS;
	if (!event_api_path || !*event_api_path) {
		t->path = strdup("/events");
		return t->path ? 0 : ILA_ERR_NOMEM;
	}
	for (size_t i = 0; i < sizeof(known_paths) / sizeof(known_paths[0]); i++) {
		size_t n = strlen(known_paths[i].prefix);
		if (!strncmp(event_api_path, known_paths[i].prefix, n)) {
			t->path = strdup(known_paths[i].prefix);
			t->key = event_api_path + n;
			t->endpoint = known_paths[i].endpoint;
			return t->path ? 0 : ILA_ERR_NOMEM;
		}
	}
	const char *last = strrchr(event_api_path, '/');
	size_t prefix_len = last ? (size_t)(last - event_api_path) + 1 : 0;
	char *prefix = encode_segments(event_api_path, prefix_len);
	if (!prefix)
		return ILA_ERR_NOMEM;
	/* Relative stored paths still need the slash after "/api". */
	if (prefix[0] != '/') {
		size_t n = strlen(prefix);
		char *slashed = malloc(n + 2);
		if (!slashed) {
			free(prefix);
			return ILA_ERR_NOMEM;
		}
		slashed[0] = '/';
		memcpy(slashed + 1, prefix, n + 1);
		free(prefix);
		prefix = slashed;
	}
	t->path = prefix;
	t->key = event_api_path + prefix_len;
	return 0;
}

void ilert_event_target_free(struct ilert_event_target *t)
{
	free(t->path);
	memset(t, 0, sizeof(*t));
}

int ilert_send_event(struct ilert_client *c, const struct event *ev, const char *event_api_path,
		     bool auth, struct ilert_result *res)
{
	ilert_result_init(res);
	struct ilert_event_target target;
	if (ilert_event_target(event_api_path, &target)) {
		snprintf(res->error, sizeof(res->error), "out of memory building the request");
		return ILA_ERR_NOMEM;
	}
	char *body = ilert_event_body(ev);
	if (!body) {
		ilert_event_target_free(&target);
		snprintf(res->error, sizeof(res->error), "out of memory building the request");
		return ILA_ERR_NOMEM;
	}
	struct ilert_request req = {
		.method = ILERT_POST,
		.base = ILERT_BASE_API,
		.endpoint = target.endpoint,
		.path = target.path,
		.key = target.key,
		.body = body,
		.body_len = strlen(body),
		.auth = auth,
	};
	int rc = ilert_client_send(c, &req, res);
	if (rc == 0 && ilert_result_outcome(res) == ILERT_OUTCOME_SUCCESS)
		log_info(LOG_COMP, "Event accepted by ilert (HTTP %ld), correlation-id: %s",
			 res->status, res->correlation_id ? res->correlation_id : "none");
	free(body);
	ilert_event_target_free(&target);
	return rc;
}
