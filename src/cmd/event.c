/* `ilagent event` (SPEC §4.4): one event, one attempt, no queue, no Authorization. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/event.h"
#include "core/text.h"
#include "ilert/client.h"
#include "ilert/events.h"
#include "ops/log.h"

/* A JSON string for a command-line value; bytes that are not UTF-8 become U+FFFD. */
static json_t *arg_string(const char *s)
{
	size_t len = strlen(s);
	char *clean = text_utf8_sanitize(s, len, len * 3 + 1);
	json_t *v = clean ? json_string(clean) : NULL;
	free(clean);
	return v;
}

/* Compact JSON of a one-element list holding {members[0]: values[0], ...}; values may be
 * NULL (null). NULL on out of memory. */
static char *single_item_list(const char *const *members, const char *const *values, int n)
{
	json_t *item = json_object();
	json_t *list = json_array();
	char *text = NULL;
	if (!item || !list)
		goto out;
	for (int i = 0; i < n; i++) {
		json_t *v = values[i] ? arg_string(values[i]) : json_null();
		if (!v || json_object_set_new(item, members[i], v))
			goto out;
	}
	if (json_array_append(list, item))
		goto out;
	text = json_dumps(list, JSON_COMPACT);
out:
	json_decref(list);
	json_decref(item);
	return text;
}

/* The event of §4.4: -g becomes one image, -l one link, the alert key is normalized. */
static int event_from_config(const struct config *cfg, struct event **out)
{
	struct event *ev = event_create();
	if (!ev)
		return ILA_ERR_NOMEM;
	if (event_set(&ev->integration_key, cfg->integration_key) ||
	    event_set(&ev->event_type, cfg->event_type) ||
	    event_set(&ev->summary, cfg->summary ? cfg->summary : "") ||
	    event_set(&ev->details, cfg->details) || event_set(&ev->priority, cfg->priority) ||
	    event_normalize_alert_key(cfg->alert_key, &ev->alert_key))
		goto fail;
	if (cfg->image) {
		const char *members[] = { "src", "href", "alt" };
		const char *values[] = { cfg->image, NULL, NULL };
		ev->images = single_item_list(members, values, 3);
		if (!ev->images)
			goto fail;
	}
	if (cfg->link) {
		const char *members[] = { "href", "text" };
		const char *values[] = { cfg->link, "Provided Url" };
		ev->links = single_item_list(members, values, 2);
		if (!ev->links)
			goto fail;
	}
	*out = ev;
	return 0;
fail:
	event_destroy(ev);
	return ILA_ERR_NOMEM;
}

int cmd_event_run(const struct config *cfg)
{
	if (ilert_global_init()) {
		log_fatal_line("could not initialise the HTTP client");
		return 1;
	}
	log_add_secret(cfg->integration_key);
	struct event *ev = NULL;
	int rc = event_from_config(cfg, &ev);
	if (rc) {
		log_fatal_line("%s", ila_strerror(rc));
		ilert_global_cleanup();
		return 1;
	}
	struct ilert_client *client = ilert_client_create(cfg);
	if (!client) {
		log_fatal_line("could not create the HTTP client");
		event_destroy(ev);
		ilert_global_cleanup();
		return 1;
	}

	struct ilert_result res;
	ilert_send_event(client, ev, NULL, false, &res);
	int exit_code = 0;
	if (res.status == 0) {
		log_fatal_line("could not reach ilert: %s", res.error);
		exit_code = 1;
	} else if (ilert_result_outcome(&res) != ILERT_OUTCOME_SUCCESS) {
		char *excerpt = ilert_body_excerpt(res.body, res.body_len, 200);
		log_fatal_line("ilert did not accept the event: HTTP %ld: %s", res.status,
			       excerpt ? excerpt : "");
		free(excerpt);
		exit_code = 1;
	}

	ilert_result_free(&res);
	ilert_client_destroy(client);
	event_destroy(ev);
	ilert_global_cleanup();
	return exit_code;
}
