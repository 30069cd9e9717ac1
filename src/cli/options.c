#include "cli/options.h"

#include <stdbool.h>
#include <string.h>

#include "cli/config.h"
#include "version.h"

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define DAEMON LV_DAEMON
#define NO_RANGE 0, 0

static const char *const log_formats[] = { "text", "json", NULL };
static const char *const db_syncs[] = { "normal", "full", NULL };
static const char *const offset_resets[] = { "earliest", "latest", NULL };
static const char *const mqtt_versions[] = { "3.1.1", "5", NULL };
static const char *const event_types[] = { "ALERT", "ACCEPT", "RESOLVE", NULL };
static const char *const priorities[] = { "LOW", "HIGH", NULL };

const struct opt_def cli_options[] = {
	/* global (§4.3, §4.7) */
	{ 'h', "help", LV_ALL, OT_HELP, 0, 0, NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, NULL, "Print help" },
	{ 'V', "version", LV_ALL, OT_VERSION, 0, 0, NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, NULL, "Print version" },
	{ 'v', "verbose", LV_ALL, OT_COUNT, FIELD(verbose), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, NULL, "More log output: -vv info, -vvv debug (ILAGENT_LOG overrides)" },
	{ 'f', "file", LV_ALL, OT_STRING, FIELD(file), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, "PATH", "SQLite queue file [default: ./ilagent.db3]" },
	{ 0, "api_url", LV_ALL, OT_URL, FIELD(api_url), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, "URL", "ilert API base [env: ILERT_API_URL] [default: https://api.ilert.com]" },
	{ 0, "beat_url", LV_ALL, OT_URL, FIELD(beat_url), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, "URL", "ilert heartbeat base [env: ILERT_BEAT_URL] [default: https://beat.ilert.com]" },
	{ 0, "api_timeout", LV_ALL, OT_INT, FIELD(api_timeout), 1, 600, NULL, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, "SECONDS", "Total time for one ilert request [default: 25]" },
	{ 0, "log_format", LV_ALL, OT_ENUM, FIELD(log_format), NO_RANGE, log_formats, NULL, NULL, NEEDS_NONE, GROUP_GLOBAL, "FORMAT", "Log line format: text or json [default: text]" },

	/* event (§4.4) and heartbeat (§4.5) */
	{ 'k', "integration_key", LV_EVENT | LV_HEARTBEAT, OT_STRING, FIELD(integration_key), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "KEY", "Integration key [env: ILERT_INTEGRATION_KEY]" },
	{ 't', "event_type", LV_EVENT, OT_CHOICE, FIELD(event_type), NO_RANGE, event_types, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "TYPE", "ALERT, ACCEPT or RESOLVE (required)" },
	{ 's', "summary", LV_EVENT, OT_STRING, FIELD(summary), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "TEXT", "Event summary (required, may be empty)" },
	{ 'i', "alert_key", LV_EVENT, OT_STRING, FIELD(alert_key), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "KEY", "Alert key" },
	{ 'o', "priority", LV_EVENT, OT_CHOICE, FIELD(priority), NO_RANGE, priorities, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "PRIORITY", "LOW or HIGH" },
	{ 'd', "details", LV_EVENT, OT_STRING, FIELD(details), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "TEXT", "Event details" },
	{ 'g', "image", LV_EVENT, OT_STRING, FIELD(image), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "URL", "Image URL" },
	{ 'l', "link", LV_EVENT, OT_STRING, FIELD(link), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "URL", "Link URL" },

	/* daemon, compatible options (§4.6) */
	{ 'p', "port", DAEMON, OT_INT, FIELD(port), 1, 65535, NULL, "Failed to parse http port", "Failed to parse http port", NEEDS_NONE, GROUP_COMMAND, "PORT", "Enable the HTTP server on this port [default: 8977]" },
	{ 'b', "heartbeat", DAEMON, OT_STRING, FIELD(heartbeat_key), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "KEY", "Ping this heartbeat key every 30 s" },
	{ 'm', "mqtt_host", DAEMON, OT_STRING, FIELD(mqtt_host), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "HOST", "Enable the MQTT consumer with this broker" },
	{ 'q', "mqtt_port", DAEMON, OT_INT, FIELD(mqtt_port), 1, 65535, NULL, "Failed to parse mqtt port", "Failed to parse mqtt port", NEEDS_MQTT, GROUP_COMMAND, "PORT", "MQTT broker port [default: 1883]" },
	{ 'n', "mqtt_name", DAEMON, OT_STRING, FIELD(mqtt_name), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "NAME", "MQTT client id [default: ilagent]" },
	{ 0, "mqtt_username", DAEMON, OT_STRING, FIELD(mqtt_username), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "USER", "MQTT username" },
	{ 0, "mqtt_password", DAEMON, OT_STRING, FIELD(mqtt_password), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "PASSWORD", "MQTT password (with --mqtt_username)" },
	{ 0, "mqtt_tls", DAEMON, OT_FLAG, FIELD(mqtt_tls), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, NULL, "TLS to the broker" },
	{ 0, "mqtt_ca", DAEMON, OT_STRING, FIELD(mqtt_ca), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "PATH", "PEM CA bundle (the only trust anchors)" },
	{ 0, "mqtt_client_cert", DAEMON, OT_STRING, FIELD(mqtt_client_cert), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "PATH", "PEM client certificate (mTLS)" },
	{ 0, "mqtt_client_key", DAEMON, OT_STRING, FIELD(mqtt_client_key), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "PATH", "PEM client private key (mTLS)" },
	{ 0, "mqtt_qos", DAEMON, OT_INT, FIELD(mqtt_qos), 0, 2, NULL, "Failed to parse mqtt_qos as integer", "mqtt_qos must be 0, 1, or 2", NEEDS_MQTT, GROUP_COMMAND, "QOS", "Subscription QoS 0, 1 or 2 [default: 0]" },
	{ 0, "mqtt_buffer", DAEMON, OT_FLAG, FIELD(mqtt_buffer), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, NULL, "Accepted for compatibility; everything is persisted" },
	{ 0, "mqtt_shared_group", DAEMON, OT_STRING, FIELD(mqtt_shared_group), NO_RANGE, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "GROUP", "Subscribe as $share/<group>/<filter>" },
	{ 0, "mqtt_version", DAEMON, OT_ENUM, FIELD(mqtt_version), NO_RANGE, mqtt_versions, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "VERSION", "MQTT protocol 3.1.1 or 5 [default: 5]" },
	{ 0, "mqtt_session_expiry", DAEMON, OT_INT, FIELD(mqtt_session_expiry), 0, 4294967295LL, NULL, NULL, NULL, NEEDS_MQTT, GROUP_COMMAND, "SECONDS", "MQTT 5 session expiry [default: 86400]" },
	{ 0, "kafka_brokers", DAEMON, OT_STRING, FIELD(kafka_brokers), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "LIST", "Enable the Kafka consumer with these bootstrap servers" },
	{ 0, "kafka_group_id", DAEMON, OT_STRING, FIELD(kafka_group_id), NO_RANGE, NULL, NULL, NULL, NEEDS_KAFKA, GROUP_COMMAND, "ID", "Kafka consumer group [default: ilagent]" },
	{ 0, "kafka_offset_reset", DAEMON, OT_ENUM, FIELD(kafka_offset_reset), NO_RANGE, offset_resets, NULL, NULL, NEEDS_KAFKA, GROUP_COMMAND, "WHERE", "earliest or latest [default: latest]" },
	{ 'X', "kafka_config", DAEMON, OT_LIST, FIELD(kafka_config), NO_RANGE, NULL, NULL, NULL, NEEDS_KAFKA, GROUP_COMMAND, "KEY=VALUE", "Extra Kafka consumer property (repeatable)" },

	/* daemon, new options (§4.7) */
	{ 0, "bind", DAEMON, OT_STRING, FIELD(bind), NO_RANGE, NULL, NULL, NULL, NEEDS_HTTP, GROUP_COMMAND, "ADDR", "HTTP listen address [default: 0.0.0.0]" },
	{ 0, "http_token", DAEMON, OT_STRING, FIELD(http_token), NO_RANGE, NULL, NULL, NULL, NEEDS_HTTP, GROUP_COMMAND, "TOKEN", "Bearer token required by HTTP routes [env: ILAGENT_HTTP_TOKEN]" },
	{ 0, "max_body", DAEMON, OT_INT, FIELD(max_body), 1, 67108864, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "BYTES", "Largest event body or MQTT/Kafka payload [default: 16000]" },
	{ 0, "max_batch_body", DAEMON, OT_INT, FIELD(max_batch_body), 1, 268435456, NULL, NULL, NULL, NEEDS_HTTP, GROUP_COMMAND, "BYTES", "Largest batch body [default: 4194304]" },
	{ 0, "max_queue", DAEMON, OT_INT, FIELD(max_queue), 1, 1000000000, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "ROWS", "Queue capacity [default: 1000000]" },
	{ 0, "max_dead", DAEMON, OT_INT, FIELD(max_dead), 0, 1000000000, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "ROWS", "Dead-letter capacity, 0 = unlimited [default: 100000]" },
	{ 0, "db_sync", DAEMON, OT_ENUM, FIELD(db_sync), NO_RANGE, db_syncs, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "MODE", "Commit durability: normal or full [default: full]" },
	{ 0, "dedup_window", DAEMON, OT_INT, FIELD(dedup_window), 0, 86400, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "SECONDS", "Drop identical repeated events, 0 = off [default: 10]" },
	{ 0, "forwarders", DAEMON, OT_INT, FIELD(forwarders), 1, 64, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "N", "Parallel deliveries [default: 8]" },
	{ 0, "rate_limit", DAEMON, OT_INT, FIELD(rate_limit), 0, 100000, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "PER_MINUTE", "Events per integration key per minute, 0 = off [default: 0]" },
	{ 0, "retry_max_backoff", DAEMON, OT_INT, FIELD(retry_max_backoff), 1, 86400, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "SECONDS", "Backoff cap [default: 60]" },
	{ 0, "shutdown_timeout", DAEMON, OT_INT, FIELD(shutdown_timeout), 0, 3600, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "SECONDS", "Grace period for in-flight deliveries [default: 10]" },
	{ 0, "policy_cache_ttl", DAEMON, OT_INT, FIELD(policy_cache_ttl), 0, 86400, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "SECONDS", "Lifetime of user/policy lookups, 0 = off [default: 300]" },

	/* consumer options (§4.6) */
	{ 'e', "event_topic", DAEMON, OT_STRING, FIELD(event_topic), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "TOPIC", "Topic carrying events" },
	{ 'r', "heartbeat_topic", DAEMON, OT_STRING, FIELD(heartbeat_topic), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "TOPIC", "Topic carrying heartbeat pings" },
	{ 0, "policy_topic", DAEMON, OT_STRING, FIELD(policy_topic), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "TOPIC", "Topic carrying escalation-policy updates" },
	{ 0, "event_key", DAEMON, OT_STRING, FIELD(event_key), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "KEY", "Integration key for every consumed event" },
	{ 0, "map_key_etype", DAEMON, OT_STRING, FIELD(map_key_etype), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "PATH", "Dot path of the event type" },
	{ 0, "map_key_alert_key", DAEMON, OT_STRING, FIELD(map_key_alert_key), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "PATH", "Dot path of the alert key" },
	{ 0, "map_key_summary", DAEMON, OT_STRING, FIELD(map_key_summary), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "PATH", "Dot path of the summary" },
	{ 0, "map_val_etype_alert", DAEMON, OT_STRING, FIELD(map_val_etype_alert), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "VALUE", "Source value meaning ALERT" },
	{ 0, "map_val_etype_accept", DAEMON, OT_STRING, FIELD(map_val_etype_accept), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "VALUE", "Source value meaning ACCEPT" },
	{ 0, "map_val_etype_resolve", DAEMON, OT_STRING, FIELD(map_val_etype_resolve), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "VALUE", "Source value meaning RESOLVE" },
	{ 0, "filter_key", DAEMON, OT_STRING, FIELD(filter_key), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "KEY", "A message must contain this top-level key" },
	{ 0, "filter_val", DAEMON, OT_STRING, FIELD(filter_val), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "VALUE", "...and its value must equal this string" },
	{ 0, "forward_message_payload", DAEMON, OT_FLAG, FIELD(forward_message_payload), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, NULL, "Send the original message as customDetails" },
	{ 0, "policy_routing_keys", DAEMON, OT_STRING, FIELD(policy_routing_keys), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "FIELDS", "Comma list of fields forming the routing key" },
	{ 0, "map_key_email", DAEMON, OT_STRING, FIELD(map_key_email), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "PATH", "Policy: dot path of the user email [default: data.email]" },
	{ 0, "map_key_shift", DAEMON, OT_STRING, FIELD(map_key_shift), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_CONSUMER, "PATH", "Policy: dot path of the level [default: data.shift]" },
	{ 0, "shift_offset", DAEMON, OT_INT, FIELD(shift_offset), INT64_MIN, INT64_MAX, NULL, "Failed to parse shift_offset as integer", "Failed to parse shift_offset as integer", NEEDS_NONE, GROUP_CONSUMER, "N", "Added to the level [default: 0]" },
	{ 0, "max_retries", DAEMON, OT_INT, FIELD(max_retries), 0, 4294967295LL, NULL, "Failed to parse max_retries as integer", "Failed to parse max_retries as integer", NEEDS_NONE, GROUP_CONSUMER, "N", "Delivery attempts per item, 0 = unlimited [default: 100]" },

	/* queue (§17) */
	{ 0, "dead", LV_QLIST | LV_QPURGE, OT_FLAG, FIELD(queue_dead), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, NULL, "Dead letters instead of queued items (purge: required)" },
	{ 0, "limit", LV_QLIST, OT_INT, FIELD(queue_limit), 0, 1000000000, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, "N", "Rows to print, 0 = all [default: 50]" },
	{ 0, "all", LV_QRETRY, OT_FLAG, FIELD(queue_all), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, NULL, "Re-queue every dead letter" },
	{ 0, "json", LV_QSTATS | LV_QLIST, OT_FLAG, FIELD(queue_json), NO_RANGE, NULL, NULL, NULL, NEEDS_NONE, GROUP_COMMAND, NULL, "JSON output" },
};

const size_t cli_option_count = sizeof(cli_options) / sizeof(cli_options[0]);

struct command_help {
	unsigned level;
	const char *usage;
	const char *about;
	const char *commands; /* preformatted list of subcommands, NULL when none */
};

static const struct command_help command_helps[] = {
	{ LV_TOP, "ilagent [OPTIONS] <COMMAND>", NULL,
	  "  daemon     Run the agent: HTTP server, heartbeat pinger, MQTT and Kafka consumers\n"
	  "  event      Send one event to ilert and exit\n"
	  "  heartbeat  Send one heartbeat ping to ilert and exit\n"
	  "  queue      Inspect and repair the queue file\n" },
	{ LV_DAEMON, "ilagent daemon [OPTIONS]",
	  "Run the agent. Every accepted item is committed to the SQLite queue before the\n"
	  "source is acknowledged, then delivered to ilert with retries.", NULL },
	{ LV_EVENT, "ilagent event [OPTIONS] -t <TYPE> -s <TEXT>", "Send one event to ilert and exit.", NULL },
	{ LV_HEARTBEAT, "ilagent heartbeat [OPTIONS]", "Send one heartbeat ping to ilert and exit.", NULL },
	{ LV_QUEUE, "ilagent queue [OPTIONS] <COMMAND>", "Inspect and repair the queue file.",
	  "  stats   Counts of queued items and dead letters\n"
	  "  list    List queued items (oldest first) or dead letters (newest first)\n"
	  "  retry   Move one dead letter (by id) or all (--all) back into the queue\n"
	  "  purge   Delete all dead letters (requires --dead)\n" },
	{ LV_QSTATS, "ilagent queue stats [OPTIONS]", "Counts of queued items and dead letters.", NULL },
	{ LV_QLIST, "ilagent queue list [OPTIONS]", "List queued items or dead letters.", NULL },
	{ LV_QRETRY, "ilagent queue retry [OPTIONS] <ID|--all>", "Move dead letters back into the queue.", NULL },
	{ LV_QPURGE, "ilagent queue purge --dead [OPTIONS]", "Delete all dead letters.", NULL },
};

static void print_option(FILE *out, const struct opt_def *o)
{
	char left[64];
	int n = snprintf(left, sizeof(left), "  %c%c%s--%s%s%s%s", o->short_name ? '-' : ' ',
			 o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ",
			 o->long_name, o->value_name ? " <" : "", o->value_name ? o->value_name : "",
			 o->value_name ? ">" : "");
	if (n < 36)
		fprintf(out, "%-36s%s\n", left, o->help);
	else
		fprintf(out, "%s\n%36s%s\n", left, "", o->help);
}

static void print_group(FILE *out, unsigned level, enum opt_group group, bool globals_only,
			const char *title)
{
	bool printed = false;
	for (size_t i = 0; i < cli_option_count; i++) {
		const struct opt_def *o = &cli_options[i];
		bool is_global = o->scope == LV_ALL;
		if (o->group != group || !(o->scope & level) || is_global != globals_only)
			continue;
		if (!printed)
			fprintf(out, "\n%s:\n", title);
		printed = true;
		print_option(out, o);
	}
}

void cli_print_help(FILE *out, unsigned level)
{
	const struct command_help *h = &command_helps[0];
	for (size_t i = 0; i < sizeof(command_helps) / sizeof(command_helps[0]); i++)
		if (command_helps[i].level == level)
			h = &command_helps[i];
	fprintf(out, "ilagent %s \xe2\x80\x94 Bridge your infrastructure to ilert.\n\n", ILAGENT_VERSION);
	if (h->about)
		fprintf(out, "%s\n\n", h->about);
	fprintf(out, "Usage: %s\n", h->usage);
	if (h->commands)
		fprintf(out, "\nCommands:\n%s", h->commands);
	print_group(out, level, GROUP_COMMAND, false, "Options");
	print_group(out, level, GROUP_CONSUMER, false, "Consumer options (MQTT and Kafka)");
	print_group(out, level, GROUP_GLOBAL, true, "Global options");
	if (level == LV_EVENT || level == LV_HEARTBEAT || level == LV_DAEMON || level == LV_TOP)
		fprintf(out, "\nEnvironment: ILERT_INTEGRATION_KEY, ILERT_API_KEY, ILERT_API_URL, "
			     "ILERT_BEAT_URL, ILAGENT_HTTP_TOKEN, ILAGENT_LOG, http_proxy, "
			     "https_proxy, no_proxy\n");
}
