#include "core/event.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/text.h"

struct event *event_create(void)
{
	return calloc(1, sizeof(struct event));
}

void event_destroy(struct event *ev)
{
	if (!ev)
		return;
	free(ev->integration_key);
	free(ev->event_type);
	free(ev->summary);
	free(ev->alert_key);
	free(ev->details);
	free(ev->priority);
	free(ev->images);
	free(ev->links);
	free(ev->custom_details);
	free(ev);
}

int event_set(char **field, const char *value)
{
	char *copy = NULL;
	if (value) {
		copy = strdup(value);
		if (!copy)
			return ILA_ERR_NOMEM;
	}
	free(*field);
	*field = copy;
	return 0;
}

struct event *event_dup(const struct event *ev)
{
	struct event *copy = event_create();
	if (!copy)
		return NULL;
	if (event_set(&copy->integration_key, ev->integration_key) ||
	    event_set(&copy->event_type, ev->event_type) ||
	    event_set(&copy->summary, ev->summary) ||
	    event_set(&copy->alert_key, ev->alert_key) ||
	    event_set(&copy->details, ev->details) ||
	    event_set(&copy->priority, ev->priority) ||
	    event_set(&copy->images, ev->images) ||
	    event_set(&copy->links, ev->links) ||
	    event_set(&copy->custom_details, ev->custom_details)) {
		event_destroy(copy);
		return NULL;
	}
	return copy;
}

int event_normalize_alert_key(const char *raw, char **out)
{
	*out = NULL;
	if (!raw)
		return 0;
	char *trimmed = text_trim_dup(raw);
	if (!trimmed)
		return ILA_ERR_NOMEM;
	if (!*trimmed) {
		free(trimmed);
		return 0;
	}
	*out = trimmed;
	return 0;
}

int event_normalize(struct event *ev)
{
	char *normalized;
	int rc = event_normalize_alert_key(ev->alert_key, &normalized);
	if (rc)
		return rc;
	free(ev->alert_key);
	ev->alert_key = normalized;
	return 0;
}

bool event_type_valid(const char *event_type)
{
	return event_type &&
	       (!strcmp(event_type, "ALERT") || !strcmp(event_type, "ACCEPT") ||
		!strcmp(event_type, "RESOLVE") || !strcmp(event_type, "COMMENT"));
}

bool event_priority_valid(const char *priority)
{
	return !priority || !strcmp(priority, "HIGH") || !strcmp(priority, "LOW");
}

const char *event_invalid_field(const struct event *ev)
{
	if (!event_type_valid(ev->event_type))
		return "eventType";
	if (!event_priority_valid(ev->priority))
		return "priority";
	if (!ev->integration_key || !*ev->integration_key)
		return "integrationKey";
	return NULL;
}

int event_order_key(const char *integration_key, const char *alert_key, char **out)
{
	*out = NULL;
	if (!alert_key)
		return 0;
	size_t ik = strlen(integration_key), ak = strlen(alert_key);
	char *key = malloc(ik + 1 + ak + 1);
	if (!key)
		return ILA_ERR_NOMEM;
	memcpy(key, integration_key, ik);
	key[ik] = EVENT_ORDER_KEY_SEP[0];
	memcpy(key + ik + 1, alert_key, ak + 1);
	text_casefold(key + ik + 1);
	*out = key;
	return 0;
}
