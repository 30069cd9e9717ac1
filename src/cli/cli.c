#include "cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/kafka_conf_check.h"
#include "cli/options.h"
#include "cli/tls_check.h"
#include "core/text.h"
#include "core/topic.h"
#include "version.h"

/* One option occurrence on the command line, kept in command-line order. */
struct given_opt {
	const struct opt_def *def;
	char *typed; /* the option as the user wrote it: "-p" or "--port" */
	const char *value;
};

struct parse_state {
	unsigned level;
	struct given_opt *given;
	int given_count;
	int *occurrences; /* per cli_options index */
	const char *retry_id; /* positional of `queue retry` */
	char *error;          /* first syntax error */
	struct config *cfg;
	bool mqtt_enabled;  /* -m given: topic options must be MQTT filters */
	bool kafka_enabled; /* --kafka_brokers given: topic options must be Kafka topics */
};

static char *format_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_error(const char *fmt, ...)
{
	struct tbuf b;
	tbuf_init(&b);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (s) {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	tbuf_free(&b);
	return s;
}

static void set_syntax_error(struct parse_state *ps, char *msg)
{
	if (ps->error)
		free(msg);
	else
		ps->error = msg;
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->api_timeout = 25;
	cfg->log_format = LOG_FORMAT_TEXT;
	cfg->log_level = LOG_LVL_WARN;
	cfg->port = 8977;
	cfg->mqtt_port = 1883;
	cfg->mqtt_qos = 0;
	cfg->max_retries = 100;
	cfg->max_body = 16000;
	cfg->max_batch_body = 4194304;
	cfg->max_queue = 1000000;
	cfg->max_dead = 100000;
	cfg->db_sync = DB_SYNC_FULL;
	cfg->dedup_window = 10;
	cfg->forwarders = 8;
	cfg->rate_limit = 0;
	cfg->retry_max_backoff = 60;
	cfg->shutdown_timeout = 10;
	cfg->policy_cache_ttl = 300;
	cfg->kafka_offset_reset = KAFKA_RESET_LATEST;
	cfg->mqtt_version = MQTT_V5;
	cfg->mqtt_session_expiry = 86400;
	cfg->queue_limit = 50;
}

static char **string_field(struct config *cfg, const struct opt_def *o)
{
	return (char **)((char *)cfg + o->offset);
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cli_option_count; i++) {
		const struct opt_def *o = &cli_options[i];
		if (o->type == OT_STRING || o->type == OT_URL || o->type == OT_CHOICE) {
			char **field = string_field(cfg, o);
			free(*field);
			*field = NULL;
		}
	}
	for (int i = 0; i < cfg->kafka_config_count; i++)
		free(cfg->kafka_config[i]);
	free(cfg->kafka_config);
	for (int i = 0; i < cfg->warning_count; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	free(cfg->warning_levels);
	free(cfg->api_key);
	/* Defaults that are not options' values but were allocated by cli_parse. */
	cfg->kafka_config = NULL;
	cfg->kafka_config_count = 0;
	cfg->warnings = NULL;
	cfg->warning_levels = NULL;
	cfg->warning_count = 0;
	cfg->api_key = NULL;
}

static void add_warning(struct config *cfg, enum log_level level, char *text)
{
	if (!text)
		return;
	char **w = realloc(cfg->warnings, sizeof(char *) * (size_t)(cfg->warning_count + 1));
	enum log_level *l = realloc(cfg->warning_levels,
				    sizeof(enum log_level) * (size_t)(cfg->warning_count + 1));
	if (w)
		cfg->warnings = w;
	if (l)
		cfg->warning_levels = l;
	if (!w || !l) {
		free(text);
		return;
	}
	cfg->warnings[cfg->warning_count] = text;
	cfg->warning_levels[cfg->warning_count] = level;
	cfg->warning_count++;
}

/* ---- pass 1: syntax ---------------------------------------------------------------- */

static const struct opt_def *find_long(const char *name, size_t len, unsigned level)
{
	for (size_t i = 0; i < cli_option_count; i++) {
		const struct opt_def *o = &cli_options[i];
		if ((o->scope & level) && strlen(o->long_name) == len &&
		    strncmp(o->long_name, name, len) == 0)
			return o;
	}
	return NULL;
}

static const struct opt_def *find_short(char c, unsigned level)
{
	for (size_t i = 0; i < cli_option_count; i++) {
		const struct opt_def *o = &cli_options[i];
		if ((o->scope & level) && o->short_name == c)
			return o;
	}
	return NULL;
}

static bool takes_value(const struct opt_def *o)
{
	return o->type != OT_HELP && o->type != OT_VERSION && o->type != OT_COUNT &&
	       o->type != OT_FLAG;
}

static const char *level_name(unsigned level)
{
	switch (level) {
	case LV_DAEMON: return "ilagent daemon";
	case LV_EVENT: return "ilagent event";
	case LV_HEARTBEAT: return "ilagent heartbeat";
	case LV_QUEUE: return "ilagent queue";
	case LV_QSTATS: return "ilagent queue stats";
	case LV_QLIST: return "ilagent queue list";
	case LV_QRETRY: return "ilagent queue retry";
	case LV_QPURGE: return "ilagent queue purge";
	default: return "ilagent";
	}
}

/* Returns CLI_DONE when help or version was printed, CLI_RUN otherwise. */
static enum cli_status record_option(struct parse_state *ps, const struct opt_def *o,
				     const char *typed, size_t typed_len, const char *value,
				     FILE *out)
{
	if (o->type == OT_HELP) {
		cli_print_help(out, ps->level);
		return CLI_DONE;
	}
	if (o->type == OT_VERSION) {
		fprintf(out, "ilagent %s\n", ILAGENT_VERSION);
		return CLI_DONE;
	}
	size_t idx = (size_t)(o - cli_options);
	ps->occurrences[idx]++;
	if (ps->occurrences[idx] > 1 && o->type != OT_COUNT && o->type != OT_LIST)
		set_syntax_error(ps, format_error("%.*s: given more than once", (int)typed_len, typed));
	struct given_opt *g = realloc(ps->given, sizeof(*g) * (size_t)(ps->given_count + 1));
	if (!g) {
		set_syntax_error(ps, format_error("out of memory"));
		return CLI_RUN;
	}
	ps->given = g;
	g[ps->given_count].def = o;
	g[ps->given_count].typed = strndup(typed, typed_len);
	g[ps->given_count].value = value;
	ps->given_count++;
	return CLI_RUN;
}

static void take_positional(struct parse_state *ps, const char *arg)
{
	static const struct { unsigned from; const char *name; unsigned to; enum subcommand cmd; enum queue_action action; } words[] = {
		{ LV_TOP, "daemon", LV_DAEMON, CMD_DAEMON, QUEUE_NONE },
		{ LV_TOP, "event", LV_EVENT, CMD_EVENT, QUEUE_NONE },
		{ LV_TOP, "heartbeat", LV_HEARTBEAT, CMD_HEARTBEAT, QUEUE_NONE },
		{ LV_TOP, "queue", LV_QUEUE, CMD_QUEUE, QUEUE_NONE },
		{ LV_QUEUE, "stats", LV_QSTATS, CMD_QUEUE, QUEUE_STATS },
		{ LV_QUEUE, "list", LV_QLIST, CMD_QUEUE, QUEUE_LIST },
		{ LV_QUEUE, "retry", LV_QRETRY, CMD_QUEUE, QUEUE_RETRY },
		{ LV_QUEUE, "purge", LV_QPURGE, CMD_QUEUE, QUEUE_PURGE },
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (words[i].from == ps->level && strcmp(words[i].name, arg) == 0) {
			ps->level = words[i].to;
			ps->cfg->cmd = words[i].cmd;
			ps->cfg->queue_action = words[i].action;
			return;
		}
	}
	if (ps->level == LV_TOP)
		set_syntax_error(ps, format_error("unrecognized subcommand '%s' (expected daemon, event, heartbeat or queue)", arg));
	else if (ps->level == LV_QUEUE)
		set_syntax_error(ps, format_error("unrecognized queue command '%s' (expected stats, list, retry or purge)", arg));
	else if (ps->level == LV_QRETRY && !ps->retry_id)
		ps->retry_id = arg;
	else
		set_syntax_error(ps, format_error("unexpected argument '%s'", arg));
}

static enum cli_status scan_arguments(struct parse_state *ps, int argc, char **argv, FILE *out)
{
	bool options_ended = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (options_ended || arg[0] != '-' || arg[1] == '\0') {
			take_positional(ps, arg);
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_ended = true;
			continue;
		}
		if (arg[1] == '-') {
			const char *name = arg + 2;
			const char *eq = strchr(name, '=');
			size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
			const struct opt_def *o = find_long(name, name_len, ps->level);
			size_t typed_len = name_len + 2;
			if (!o) {
				set_syntax_error(ps, format_error("unknown option '%.*s' for '%s'", (int)typed_len, arg, level_name(ps->level)));
				continue;
			}
			const char *value = NULL;
			if (takes_value(o)) {
				if (eq)
					value = eq + 1;
				else if (i + 1 < argc)
					value = argv[++i];
				else
					set_syntax_error(ps, format_error("%.*s: a value is required", (int)typed_len, arg));
			} else if (eq) {
				set_syntax_error(ps, format_error("%.*s: takes no value", (int)typed_len, arg));
			}
			if (record_option(ps, o, arg, typed_len, value, out) == CLI_DONE)
				return CLI_DONE;
			continue;
		}
		/* A cluster of short options: flags may be combined; a value-taking option ends
		 * the cluster and takes the rest (after an optional '=') or the next argument. */
		for (const char *c = arg + 1; *c; c++) {
			char typed[3] = { '-', *c, '\0' };
			const struct opt_def *o = find_short(*c, ps->level);
			if (!o) {
				set_syntax_error(ps, format_error("unknown option '%s' for '%s'", typed, level_name(ps->level)));
				break;
			}
			const char *value = NULL;
			bool ends_cluster = false;
			if (takes_value(o)) {
				const char *rest = c[1] == '=' ? c + 2 : c + 1;
				if (*rest || c[1] == '=')
					value = rest;
				else if (i + 1 < argc)
					value = argv[++i];
				else
					set_syntax_error(ps, format_error("%s: a value is required", typed));
				ends_cluster = true;
			}
			if (record_option(ps, o, typed, 2, value, out) == CLI_DONE)
				return CLI_DONE;
			if (ends_cluster)
				break;
		}
	}
	return CLI_RUN;
}

/* ---- pass 2: values -------------------------------------------------------------- */

/* Parses a decimal integer with optional sign; false on syntax error or int64 overflow. */
static bool parse_int64(const char *s, int64_t *out)
{
	if (!*s)
		return false;
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	if (!*p)
		return false;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return false;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end)
		return false;
	*out = v;
	return true;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool is_topic_option(const struct opt_def *o)
{
	return strcmp(o->long_name, "event_topic") == 0 ||
	       strcmp(o->long_name, "heartbeat_topic") == 0 ||
	       strcmp(o->long_name, "policy_topic") == 0;
}

static bool is_named(const struct opt_def *o, const char *name)
{
	return strcmp(o->long_name, name) == 0;
}

static bool option_given(const struct parse_state *ps, const char *name)
{
	for (int i = 0; i < ps->given_count; i++)
		if (is_named(ps->given[i].def, name))
			return true;
	return false;
}

static char *choice_error(const char *value, const char *const *choices)
{
	struct tbuf b;
	tbuf_init(&b);
	tbuf_printf(&b, "invalid value '%s', expected one of: ", value);
	for (int i = 0; choices[i]; i++)
		tbuf_printf(&b, "%s%s", i ? ", " : "", choices[i]);
	return tbuf_take(&b);
}

static char *check_topic(const struct parse_state *ps, const char *topic)
{
	char err[256];
	if (ps->mqtt_enabled && !mqtt_filter_valid(topic))
		return format_error("'%s' is not a valid MQTT topic filter", topic);
	if (ps->kafka_enabled) {
		if (topic[0] == '^') {
			if (kafka_topic_regex_check(topic, err, sizeof(err)) != 0)
				return format_error("invalid regular expression '%s'", topic);
		} else if (!kafka_topic_name_valid(topic)) {
			return format_error("'%s' is not a valid Kafka topic name", topic);
		}
	}
	return NULL;
}

/* Validates one string-valued option that has extra rules; NULL when fine. */
static char *check_string(const struct parse_state *ps, const struct opt_def *o, const char *v)
{
	if (is_named(o, "bind") && !is_ip_literal(v))
		return strdup("not an IPv4 or IPv6 address");
	if (is_named(o, "http_token") && !*v)
		return strdup("must not be empty");
	if (is_named(o, "mqtt_shared_group") && !mqtt_shared_group_valid(v))
		return strdup("invalid shared subscription group");
	if (is_topic_option(o))
		return check_topic(ps, v);
	return NULL;
}

static char *store_int(struct config *cfg, const struct opt_def *o, const char *v)
{
	int64_t n;
	if (!parse_int64(v, &n))
		return o->parse_error ? strdup(o->parse_error)
				      : format_error("Failed to parse %s as integer", o->long_name);
	if (n < o->min || n > o->max)
		return o->range_error ? strdup(o->range_error)
				      : format_error("%s must be between %lld and %lld", o->long_name,
						     (long long)o->min, (long long)o->max);
	void *field = (char *)cfg + o->offset;
	if (o->size == sizeof(int64_t))
		*(int64_t *)field = n;
	else
		*(int *)field = (int)n;
	return NULL;
}

static char *normalize_url(const char *v, char **out)
{
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
		return strdup("must be an http:// or https:// URL");
	size_t n = strlen(v);
	if (n > 0 && v[n - 1] == '/')
		n--;
	*out = strndup(v, n);
	return NULL;
}

static char *store_value(struct parse_state *ps, const struct opt_def *o, const char *v)
{
	struct config *cfg = ps->cfg;
	char **sfield = string_field(cfg, o);
	char *err = NULL;
	switch (o->type) {
	case OT_COUNT:
		(*(int *)((char *)cfg + o->offset))++;
		return NULL;
	case OT_FLAG:
		*(bool *)((char *)cfg + o->offset) = true;
		return NULL;
	case OT_INT:
		return store_int(cfg, o, v);
	case OT_URL:
		return normalize_url(v, sfield);
	case OT_CHOICE:
	case OT_ENUM:
		for (int i = 0; o->choices[i]; i++) {
			if (strcmp(o->choices[i], v) != 0)
				continue;
			if (o->type == OT_ENUM)
				*(int *)((char *)cfg + o->offset) = i;
			else
				*sfield = strdup(v);
			return NULL;
		}
		return choice_error(v, o->choices);
	case OT_LIST: {
		char msg[512];
		if (kafka_conf_check_entry(v, msg, sizeof(msg)) != 0)
			return strdup(msg);
		char **list = realloc(cfg->kafka_config,
				      sizeof(char *) * (size_t)(cfg->kafka_config_count + 1));
		if (!list)
			return strdup("out of memory");
		cfg->kafka_config = list;
		list[cfg->kafka_config_count++] = strdup(v);
		return NULL;
	}
	case OT_STRING:
		err = check_string(ps, o, v);
		if (!err)
			*sfield = strdup(v);
		return err;
	default:
		return NULL;
	}
}

static char *store_values(struct parse_state *ps)
{
	for (int i = 0; i < ps->given_count; i++) {
		const struct given_opt *g = &ps->given[i];
		char *err = store_value(ps, g->def, g->value);
		if (err) {
			char *msg = format_error("%s: %s", g->typed, err);
			free(err);
			return msg;
		}
	}
	return NULL;
}

/* ---- environment and defaults ------------------------------------------------------ */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static char *apply_env_url(char **field, const char *env, const char *fallback)
{
	if (*field)
		return NULL;
	const char *v = env_nonempty(env);
	if (!v) {
		*field = strdup(fallback);
		return NULL;
	}
	char *err = normalize_url(v, field);
	if (!err)
		return NULL;
	char *msg = format_error("%s: %s", env, err);
	free(err);
	return msg;
}

/* ILERT_API_KEY per §4.8: trim, strip an any-case "bearer" + spaces prefix, trim again. */
static void read_api_key(struct config *cfg)
{
	const char *raw = getenv("ILERT_API_KEY");
	if (!raw)
		return;
	char *key = text_trim_dup(raw);
	if (!key)
		return;
	if (text_starts_with_nocase(key, "bearer") && key[6] == ' ') {
		char *rest = text_trim_dup(key + 6);
		free(key);
		key = rest;
		cfg->api_key_had_bearer = true;
	}
	if (key && !*key) {
		free(key);
		key = NULL;
	}
	cfg->api_key = key;
}

static char *dup_default(char **field, const char *value)
{
	if (!*field)
		*field = strdup(value);
	return NULL;
}

static char *apply_environment(struct parse_state *ps)
{
	struct config *cfg = ps->cfg;
	char *err = apply_env_url(&cfg->api_url, "ILERT_API_URL", "https://api.ilert.com");
	if (!err)
		err = apply_env_url(&cfg->beat_url, "ILERT_BEAT_URL", "https://beat.ilert.com");
	if (err)
		return err;
	dup_default(&cfg->file, "./ilagent.db3");
	if (cfg->cmd == CMD_DAEMON) {
		dup_default(&cfg->mqtt_name, "ilagent");
		dup_default(&cfg->kafka_group_id, "ilagent");
		dup_default(&cfg->bind, "0.0.0.0");
		dup_default(&cfg->map_key_email, "data.email");
		dup_default(&cfg->map_key_shift, "data.shift");
		if (!cfg->http_token && env_nonempty("ILAGENT_HTTP_TOKEN"))
			cfg->http_token = strdup(getenv("ILAGENT_HTTP_TOKEN"));
		read_api_key(cfg);
	}
	return NULL;
}

/* ---- pass 3: required options and cross-option rules ------------------------------- */

static char *check_integration_key(struct config *cfg)
{
	if (cfg->integration_key && *cfg->integration_key)
		return NULL;
	const char *env = env_nonempty("ILERT_INTEGRATION_KEY");
	if (!env)
		return strdup("Integration key is required: provide --integration_key or set "
			      "ILERT_INTEGRATION_KEY env var");
	free(cfg->integration_key);
	cfg->integration_key = strdup(env);
	return NULL;
}

static char *check_command_rules(struct parse_state *ps)
{
	struct config *cfg = ps->cfg;
	switch (cfg->cmd) {
	case CMD_EVENT:
		if (!cfg->event_type)
			return strdup("--event_type: is required");
		if (!cfg->summary)
			return strdup("--summary: is required");
		return check_integration_key(cfg);
	case CMD_HEARTBEAT:
		return check_integration_key(cfg);
	case CMD_QUEUE:
		if (cfg->queue_action == QUEUE_RETRY) {
			int64_t id = 0;
			bool id_ok = ps->retry_id && parse_int64(ps->retry_id, &id) && id > 0 &&
				     ps->retry_id[0] != '+';
			if (cfg->queue_all == (ps->retry_id != NULL) || (ps->retry_id && !id_ok))
				return strdup("queue retry needs a dead-letter id or --all");
			cfg->queue_retry_id = id;
		}
		if (cfg->queue_action == QUEUE_PURGE && !cfg->queue_dead)
			return strdup("queue purge requires --dead");
		return NULL;
	default:
		return NULL;
	}
}

static char *check_tls_files(const struct config *cfg)
{
	char msg[512];
	if (!cfg->mqtt_host || !cfg->mqtt_tls)
		return NULL;
	struct tls_paths paths = {
		.ca = cfg->mqtt_ca, .cert = cfg->mqtt_client_cert, .key = cfg->mqtt_client_key,
	};
	if (tls_check_files(&paths, msg, sizeof(msg)) != 0)
		return strdup(msg);
	return NULL;
}

static char *check_cross_rules(struct parse_state *ps)
{
	struct config *cfg = ps->cfg;
	bool any_topic = cfg->event_topic || cfg->heartbeat_topic || cfg->policy_topic;
	if (cfg->cmd == CMD_DAEMON) {
		if (cfg->mqtt_host && !any_topic)
			return strdup("At least one MQTT topic must be configured: --event_topic, "
				      "--heartbeat_topic, or --policy_topic");
		if (cfg->kafka_brokers && !any_topic)
			return strdup("At least one Kafka topic must be configured: --event_topic, "
				      "--heartbeat_topic, or --policy_topic");
		if (cfg->policy_topic && !cfg->policy_routing_keys)
			return strdup("--policy_topic requires --policy_routing_keys");
		if (cfg->policy_topic && !cfg->api_key)
			return strdup("--policy_topic requires the ILERT_API_KEY environment variable");
		if ((cfg->mqtt_client_cert != NULL) != (cfg->mqtt_client_key != NULL))
			return strdup("--mqtt_client_cert and --mqtt_client_key must be given together");
		char *err = check_tls_files(cfg);
		if (err)
			return err;
	}
	const char *lvl = env_nonempty("ILAGENT_LOG");
	if (lvl) {
		char lower[16];
		snprintf(lower, sizeof(lower), "%s", lvl);
		text_casefold(lower);
		if (strlen(lvl) >= sizeof(lower) || log_level_parse(lower, &cfg->log_level) != 0)
			return strdup("ILAGENT_LOG must be one of: error, warn, info, debug");
	} else {
		cfg->log_level = cfg->verbose >= 3 ? LOG_LVL_DEBUG
				 : cfg->verbose == 2 ? LOG_LVL_INFO
						     : LOG_LVL_WARN;
	}
	return NULL;
}

/* ---- warnings (§4.9), collected after every check passed ---------------------------- */

static const char *enabling_option(enum opt_needs needs)
{
	switch (needs) {
	case NEEDS_HTTP: return "--port";
	case NEEDS_MQTT: return "--mqtt_host";
	case NEEDS_KAFKA: return "--kafka_brokers";
	default: return NULL;
	}
}

static bool component_enabled(const struct config *cfg, enum opt_needs needs)
{
	switch (needs) {
	case NEEDS_HTTP: return cfg->http_enabled;
	case NEEDS_MQTT: return cfg->mqtt_host != NULL;
	case NEEDS_KAFKA: return cfg->kafka_brokers != NULL;
	default: return true;
	}
}

static void collect_warnings(struct parse_state *ps)
{
	struct config *cfg = ps->cfg;
	if (cfg->cmd != CMD_DAEMON)
		return;
	bool mqtt = cfg->mqtt_host != NULL;
	if (cfg->api_key_had_bearer)
		add_warning(cfg, LOG_LVL_WARN, strdup("ILERT_API_KEY starts with 'Bearer ', stripping prefix"));
	if (mqtt && cfg->mqtt_qos == 0)
		add_warning(cfg, LOG_LVL_WARN, strdup("QoS 0 messages can be lost between broker and agent"));
	if (mqtt && cfg->mqtt_version == MQTT_V311 && cfg->mqtt_qos == 2)
		add_warning(cfg, LOG_LVL_WARN, strdup("MQTT 3.1.1 acknowledges QoS 2 before ilagent can commit; subscribing with QoS 1"));
	if (mqtt && cfg->mqtt_tls && !cfg->mqtt_ca)
		add_warning(cfg, LOG_LVL_WARN, strdup("No CA certificate provided, using system default certificates"));
	if (mqtt && !cfg->mqtt_tls) {
		const char *tls_files[] = { "mqtt_ca", "mqtt_client_cert", "mqtt_client_key" };
		for (size_t i = 0; i < 3; i++)
			if (option_given(ps, tls_files[i]))
				add_warning(cfg, LOG_LVL_WARN, format_error("--%s is ignored without --mqtt_tls", tls_files[i]));
	}
	if (mqtt && cfg->mqtt_password && !cfg->mqtt_username)
		add_warning(cfg, LOG_LVL_WARN, strdup("--mqtt_password is ignored without --mqtt_username"));
	if (cfg->filter_val && !cfg->filter_key)
		add_warning(cfg, LOG_LVL_WARN, strdup("--filter_val is ignored without --filter_key"));
	if (cfg->mqtt_buffer)
		add_warning(cfg, LOG_LVL_INFO, strdup("--mqtt_buffer has no effect: all messages are persisted"));
	for (int i = 0; i < ps->given_count; i++) {
		const struct opt_def *o = ps->given[i].def;
		if (o->needs != NEEDS_NONE && !component_enabled(cfg, o->needs))
			add_warning(cfg, LOG_LVL_WARN, format_error("--%s has no effect without %s", o->long_name, enabling_option(o->needs)));
		else if (mqtt && is_named(o, "mqtt_session_expiry") && cfg->mqtt_version == MQTT_V311)
			add_warning(cfg, LOG_LVL_WARN, strdup("--mqtt_session_expiry has no effect with MQTT 3.1.1"));
	}
}

static void register_secrets(const struct config *cfg)
{
	log_add_secret(cfg->api_key);
	log_add_secret(cfg->http_token);
	log_add_secret(cfg->mqtt_password);
	log_add_secret(cfg->heartbeat_key);
	log_add_secret(cfg->integration_key);
	log_add_secret(cfg->event_key);
	for (int i = 0; i < cfg->kafka_config_count; i++) {
		const char *entry = cfg->kafka_config[i];
		const char *eq = strchr(entry, '=');
		char key[256];
		snprintf(key, sizeof(key), "%.*s", eq ? (int)(eq - entry) : 0, entry);
		if (eq && kafka_conf_key_is_secret(key))
			log_add_secret(eq + 1);
	}
}

void cli_log_warnings(const struct config *cfg)
{
	for (int i = 0; i < cfg->warning_count; i++)
		log_msg(cfg->warning_levels[i], "cli", "%s", cfg->warnings[i]);
}

enum cli_status cli_parse(int argc, char **argv, FILE *out, struct config *cfg, char **error)
{
	config_init(cfg);
	*error = NULL;
	struct parse_state ps = { .level = LV_TOP, .cfg = cfg };
	ps.occurrences = calloc(cli_option_count, sizeof(int));
	if (!ps.occurrences) {
		*error = strdup("out of memory");
		return CLI_USAGE;
	}
	enum cli_status st = scan_arguments(&ps, argc, argv, out);
	char *err = NULL;
	if (st == CLI_RUN) {
		if (ps.error) {
			err = ps.error;
			ps.error = NULL;
		} else if (ps.level == LV_TOP) {
			err = strdup("a subcommand is required: daemon, event, heartbeat or queue (see 'ilagent --help')");
		} else if (ps.level == LV_QUEUE) {
			err = strdup("a queue command is required: stats, list, retry or purge (see 'ilagent queue --help')");
		}
	}
	if (st == CLI_RUN && !err) {
		ps.mqtt_enabled = option_given(&ps, "mqtt_host");
		ps.kafka_enabled = option_given(&ps, "kafka_brokers");
		cfg->http_enabled = option_given(&ps, "port");
		err = store_values(&ps);
		if (!err)
			err = apply_environment(&ps);
		if (!err)
			err = check_command_rules(&ps);
		if (!err)
			err = check_cross_rules(&ps);
	}
	if (st == CLI_RUN && !err) {
		collect_warnings(&ps);
		register_secrets(cfg);
	}
	for (int i = 0; i < ps.given_count; i++)
		free(ps.given[i].typed);
	free(ps.given);
	free(ps.occurrences);
	free(ps.error);
	if (st == CLI_DONE)
		return CLI_DONE;
	if (err) {
		*error = err;
		return CLI_USAGE;
	}
	return CLI_RUN;
}
