/* The validated configuration of one run, produced by cli_parse() from the command line and
 * the environment (SPEC §4). Read-only after parsing: any thread may read it.
 * Strings are owned by the config and freed by config_free(); NULL means "not given". */
#ifndef ILAGENT_CLI_CONFIG_H
#define ILAGENT_CLI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/log.h"

/* Enum values follow the order of the choices in SPEC §4 (the option table relies on it). */
enum subcommand { CMD_NONE = 0, CMD_DAEMON, CMD_EVENT, CMD_HEARTBEAT, CMD_QUEUE };
enum queue_action { QUEUE_NONE = 0, QUEUE_STATS, QUEUE_LIST, QUEUE_RETRY, QUEUE_PURGE };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };
enum db_sync { DB_SYNC_NORMAL = 0, DB_SYNC_FULL };
enum kafka_offset_reset { KAFKA_RESET_EARLIEST = 0, KAFKA_RESET_LATEST };
enum mqtt_version { MQTT_V311 = 0, MQTT_V5 };

struct config {
	enum subcommand cmd;

	/* global (§4.3, §4.7) */
	int verbose;
	char *file;       /* default "./ilagent.db3" */
	char *api_url;    /* flag, else ILERT_API_URL, else https://api.ilert.com; no trailing / */
	char *beat_url;   /* flag, else ILERT_BEAT_URL, else https://beat.ilert.com */
	int api_timeout;  /* seconds, 1-600, default 25 */
	enum log_format log_format;
	enum log_level log_level; /* from -v, overridden by ILAGENT_LOG */

	/* ILERT_API_KEY after trimming and "Bearer " stripping (§4.8); NULL when unset/empty. */
	char *api_key;
	bool api_key_had_bearer; /* the prefix was stripped: warn once logging is set up */

	/* event (§4.4) and heartbeat (§4.5) */
	char *integration_key; /* -k or ILERT_INTEGRATION_KEY; non-empty when cmd is event/heartbeat */
	char *event_type;      /* ALERT | ACCEPT | RESOLVE */
	char *summary;
	char *alert_key; /* as given; normalized (§7.3) when the event is built */
	char *priority;  /* LOW | HIGH */
	char *details;
	char *image;
	char *link;

	/* daemon components (§4.6) */
	bool http_enabled; /* -p given */
	int port;          /* default 8977 */
	char *heartbeat_key; /* -b */
	char *mqtt_host;     /* -m; enables MQTT */
	int mqtt_port;       /* default 1883 */
	char *mqtt_name;     /* default "ilagent" */
	char *mqtt_username;
	char *mqtt_password;
	bool mqtt_tls;
	char *mqtt_ca;
	char *mqtt_client_cert;
	char *mqtt_client_key;
	int mqtt_qos; /* 0-2; the effective value (QoS 1 for 3.1.1 with 2 given) is derived later */
	bool mqtt_buffer;
	char *mqtt_shared_group;
	char *kafka_brokers; /* enables Kafka */
	char *kafka_group_id; /* default "ilagent" */

	/* consumer options */
	char *event_topic;
	char *heartbeat_topic;
	char *policy_topic;
	char *event_key;
	char *map_key_etype;
	char *map_key_alert_key;
	char *map_key_summary;
	char *map_val_etype_alert;
	char *map_val_etype_accept;
	char *map_val_etype_resolve;
	char *filter_key;
	char *filter_val;
	bool forward_message_payload;
	char *policy_routing_keys;
	char *map_key_email; /* default "data.email" */
	char *map_key_shift; /* default "data.shift" */
	int64_t shift_offset;
	int64_t max_retries; /* 0-4294967295, default 100, 0 = unlimited */

	/* daemon, new options (§4.7) */
	char *bind;       /* default "0.0.0.0" */
	char *http_token; /* flag, else ILAGENT_HTTP_TOKEN; NULL when none */
	int64_t max_body;       /* default 16000 */
	int64_t max_batch_body; /* default 4194304 */
	int64_t max_queue;      /* default 1000000 */
	int64_t max_dead;       /* default 100000, 0 = unlimited */
	enum db_sync db_sync;
	int dedup_window;       /* seconds, default 10 */
	int forwarders;         /* default 8 */
	int rate_limit;         /* per minute, default 0 = off */
	int retry_max_backoff;  /* seconds, default 60 */
	int shutdown_timeout;   /* seconds, default 10 */
	int policy_cache_ttl;   /* seconds, default 300 */
	enum kafka_offset_reset kafka_offset_reset;
	char **kafka_config;    /* "key=value" entries in command-line order */
	int kafka_config_count;
	enum mqtt_version mqtt_version;
	int64_t mqtt_session_expiry; /* default 86400 */

	/* queue (§17) */
	enum queue_action queue_action;
	bool queue_dead;   /* list --dead / purge --dead */
	int64_t queue_limit; /* default 50, 0 = all */
	bool queue_all;    /* retry --all */
	bool queue_json;   /* --json */
	int64_t queue_retry_id; /* retry <id>; 0 when --all */

	/* Warnings of §4.9 to log once logging is set up (NULL-terminated list of lines, each
	 * with its level). Filled by cli_parse, printed by cli_log_warnings(). */
	char **warnings;
	enum log_level *warning_levels;
	int warning_count;
};

/* Sets every field to its default (§4). */
void config_init(struct config *cfg);
/* Frees owned strings; accepts a zeroed or partially filled config. */
void config_free(struct config *cfg);

#endif
