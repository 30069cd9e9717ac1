#include "core/message.h"

#include <stdlib.h>
#include <string.h>

static const char *const source_names[SOURCE_COUNT] = { "http", "mqtt", "kafka", "legacy" };

const char *source_name(enum source source)
{
	return source >= 0 && source < SOURCE_COUNT ? source_names[source] : "legacy";
}

enum source source_parse(const char *text)
{
	for (int i = 0; text && i < SOURCE_LEGACY; i++)
		if (strcmp(text, source_names[i]) == 0)
			return (enum source)i;
	return SOURCE_LEGACY;
}

struct message *message_create(enum source source, enum message_kind kind, const char *body,
			       size_t body_len)
{
	struct message *msg = calloc(1, sizeof(*msg));
	if (!msg)
		return NULL;
	msg->body = malloc(body_len + 1);
	if (!msg->body) {
		free(msg);
		return NULL;
	}
	if (body_len)
		memcpy(msg->body, body, body_len);
	msg->body[body_len] = '\0';
	msg->body_len = body_len;
	msg->source = source;
	msg->kind = kind;
	return msg;
}

static void event_fields_clear(struct event *ev)
{
	free(ev->integration_key);
	free(ev->event_type);
	free(ev->summary);
	free(ev->alert_key);
	free(ev->details);
	free(ev->priority);
	free(ev->images);
	free(ev->links);
	free(ev->custom_details);
	memset(ev, 0, sizeof(*ev));
}

void pending_item_clear(struct pending_item *item)
{
	event_fields_clear(&item->ev);
	free(item->event_api_path);
	free(item->payload);
	free(item->order_key);
	free(item->dedup_content);
	memset(item, 0, sizeof(*item));
}

void message_destroy(struct message *msg)
{
	if (!msg)
		return;
	for (size_t i = 0; i < msg->item_count; i++)
		pending_item_clear(&msg->items[i]);
	free(msg->items);
	free(msg->body);
	free(msg->topic);
	free(msg->key);
	free(msg);
}

struct store_new_item pending_item_row(const struct pending_item *item, enum source source,
				       int64_t accepted_at)
{
	struct store_new_item row = {
		.kind = item->kind,
		.integration_key = item->ev.integration_key,
		.event_type = item->ev.event_type,
		.alert_key = item->ev.alert_key,
		.summary = item->ev.summary,
		.details = item->ev.details,
		.priority = item->ev.priority,
		.images = item->ev.images,
		.links = item->ev.links,
		.custom_details = item->ev.custom_details,
		.event_api_path = item->event_api_path,
		.payload = item->payload,
		.source = source_name(source),
		.order_key = item->order_key,
		.accepted_at = accepted_at,
	};
	return row;
}

void ticket_finish(struct ticket *t, enum ticket_status status, const char *error)
{
	if (!t)
		return;
	t->status = status;
	if (error && !t->error)
		t->error = strdup(error);
	t->complete(t);
}
