/* libFuzzer target for the parsers of outside input in normalize (SPEC §7, §10.5, §10.6, §11):
 * every input is tried as a single HTTP event, as an HTTP batch and as a consumer payload on an
 * event, heartbeat and policy topic of MQTT and Kafka rules with mapping options set.
 * Besides the sanitizers it checks the contracts: a rejection always has its text, and every
 * JSON text an accepted item carries parses again. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "core/err.h"
#include "core/text.h"
#include "ops/log.h"
#include "pipeline/normalize.h"

static struct normalize_rules *rules_mqtt;
static struct normalize_rules *rules_kafka;

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "contract broken: %s\n", what);
		abort();
	}
}

static void check_json(const char *text, const char *what)
{
	if (!text)
		return;
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	check(v != NULL, what);
	json_decref(v);
}

/* Rejection texts end up in JSON answers and log lines: never NULL, always UTF-8. */
static void check_text(const char *text, const char *what)
{
	check(text && text_utf8_valid(text, strlen(text)), what);
}

static void check_item(const struct pending_item *it)
{
	check(it->kind == STORE_KIND_EVENT || it->kind == STORE_KIND_HEARTBEAT ||
		      it->kind == STORE_KIND_POLICY,
	      "item kind");
	check(it->ev.integration_key && it->ev.event_type && it->ev.summary, "required fields");
	check_json(it->ev.images, "images");
	check_json(it->ev.links, "links");
	check_json(it->ev.custom_details, "customDetails");
	check_json(it->payload, "payload");
	check_json(it->dedup_content, "dedup content");
	if (it->kind == STORE_KIND_EVENT) {
		check(it->ev.integration_key[0] != '\0', "empty integration key");
		check((it->order_key != NULL) == (it->ev.alert_key != NULL), "order key");
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Mapping warnings would flood the output. */
	log_setup(LOG_LVL_ERROR, false);
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_body = 1 << 20;
	cfg.dedup_window = 10;
	cfg.event_topic = "ev/#";
	cfg.heartbeat_topic = "hb";
	cfg.policy_topic = "policy";
	cfg.map_key_etype = "state.type";
	cfg.map_key_alert_key = "id";
	cfg.map_key_summary = "msg.text";
	cfg.map_val_etype_alert = "firing";
	cfg.map_val_etype_resolve = "ok";
	cfg.forward_message_payload = true;
	cfg.policy_routing_keys = "location, slot";
	cfg.map_key_email = "data.email";
	cfg.map_key_shift = "data.shift";
	cfg.shift_offset = 3;
	rules_mqtt = normalize_rules_create(&cfg, SOURCE_MQTT);

	cfg.event_topic = "events";
	cfg.heartbeat_topic = "beats";
	cfg.policy_topic = "^pol.*";
	cfg.forward_message_payload = false;
	cfg.event_key = "fixed-key";
	cfg.filter_key = "kind";
	cfg.filter_val = "alarm";
	rules_kafka = normalize_rules_create(&cfg, SOURCE_KAFKA);
	check(rules_mqtt && rules_kafka, "rules");
	return 0;
}

static void run_consumer(const struct normalize_rules *rules, const char *topic,
			 const char *key, const char *payload, size_t len)
{
	struct pending_item item;
	enum reject_reason reason = REJECT_NONE;
	char *error = NULL;
	int rc = normalize_consumer(rules, topic, key, payload, len, &item, &reason, &error);
	if (rc == 0) {
		check_item(&item);
		check(error == NULL, "consumer error on success");
		pending_item_clear(&item);
		return;
	}
	check(rc == ILA_ERR_INVALID && reason != REJECT_NONE, "consumer rejection");
	if (reason == REJECT_INVALID || reason == REJECT_TOO_LARGE)
		check_text(error, "consumer warning");
	free(error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;

	struct pending_item item;
	char *echo = NULL, *error = NULL;
	if (normalize_http_event(body, size, &item, &echo, &error) == 0) {
		check_item(&item);
		check_json(echo, "echo");
		check(item.event_api_path == NULL, "http api path");
		free(echo);
		pending_item_clear(&item);
	} else {
		check_text(error, "event rejection text");
		check(echo == NULL, "echo on rejection");
		free(error);
	}

	struct pending_item *items = NULL;
	size_t count = 0;
	int index = 0;
	error = NULL;
	if (normalize_http_batch(body, size, &items, &count, &error, &index) == 0) {
		check(count <= 1000, "batch size");
		for (size_t i = 0; i < count; i++) {
			check_item(&items[i]);
			pending_item_clear(&items[i]);
		}
		free(items);
	} else {
		check_text(error, "batch rejection text");
		check(items == NULL && index >= -1 && index < 1000, "batch rejection");
		free(error);
	}

	static const char *const mqtt_topics[] = { "ev/a", "hb", "policy", "other" };
	static const char *const kafka_topics[] = { "events", "beats", "policies", "other" };
	for (size_t i = 0; i < 4; i++) {
		run_consumer(rules_mqtt, mqtt_topics[i], NULL, body, size);
		run_consumer(rules_kafka, kafka_topics[i], "key", body, size);
	}
	return 0;
}
