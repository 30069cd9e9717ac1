#include "cli/kafka_conf_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/text.h"

/* Properties the pipeline contract depends on (§13.1, §24 item 40), under every name the
 * Kafka client accepts for them. flag is the ilagent option to use instead, or NULL when
 * the property cannot be changed at all. */
static const struct reserved_prop {
	const char *name;
	const char *flag;
} reserved_props[] = {
	{"bootstrap.servers", "--kafka_brokers"},
	{"metadata.broker.list", "--kafka_brokers"},
	{"group.id", "--kafka_group_id"},
	{"auto.offset.reset", "--kafka_offset_reset"},
	{"topic.auto.offset.reset", "--kafka_offset_reset"},
	{"enable.auto.commit", NULL},
	{"auto.commit.enable", NULL},
	{"topic.enable.auto.commit", NULL},
	{"topic.auto.commit.enable", NULL},
	{"enable.auto.offset.store", NULL},
	{"enable.partition.eof", NULL},
};

static const struct reserved_prop *reserved_find(const char *key)
{
	for (size_t i = 0; i < sizeof(reserved_props) / sizeof(reserved_props[0]); i++)
		if (strcmp(reserved_props[i].name, key) == 0)
			return &reserved_props[i];
	return NULL;
}

static void err_set(char *err, size_t errlen, const char *msg)
{
	if (err && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Splits entry at its first '=' into a heap key and a pointer to the value inside entry.
 * Checks the syntax and the reserved names; the Kafka client judges the rest. */
static int entry_split(const char *entry, char **key_out, const char **value_out, char *err,
		       size_t errlen)
{
	const char *eq = entry ? strchr(entry, '=') : NULL;
	if (!eq || eq == entry) {
		err_set(err, errlen, "expected key=value");
		return ILA_ERR_INVALID;
	}
	char *key = strndup(entry, (size_t)(eq - entry));
	if (!key) {
		err_set(err, errlen, ila_strerror(ILA_ERR_NOMEM));
		return ILA_ERR_NOMEM;
	}
	const struct reserved_prop *r = reserved_find(key);
	if (r) {
		if (err && errlen > 0) {
			if (r->flag)
				snprintf(err, errlen,
					 "property '%s' is managed by ilagent; use %s instead",
					 key, r->flag);
			else
				snprintf(err, errlen,
					 "property '%s' is managed by ilagent and cannot be changed",
					 key);
		}
		free(key);
		return ILA_ERR_INVALID;
	}
	*key_out = key;
	*value_out = eq + 1;
	return 0;
}

int kafka_conf_apply_entry(rd_kafka_conf_t *conf, const char *entry, char *err,
			   size_t errlen)
{
	char *key = NULL;
	const char *value = NULL;
	int rc = entry_split(entry, &key, &value, err, errlen);
	if (rc != 0)
		return rc;
	/* The client's own message is what the user sees, so it gets the whole buffer. */
	char dummy[8];
	char *msg = err && errlen > 0 ? err : dummy;
	size_t msglen = err && errlen > 0 ? errlen : sizeof(dummy);
	msg[0] = '\0';
	rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, msg, msglen);
	free(key);
	if (res != RD_KAFKA_CONF_OK) {
		if (msg[0] == '\0')
			snprintf(msg, msglen, "rejected by the Kafka client");
		return ILA_ERR_INVALID;
	}
	return 0;
}

int kafka_conf_check_entry(const char *entry, char *err, size_t errlen)
{
	/* Judged on a scratch configuration: setting a property has no effect outside it. */
	rd_kafka_conf_t *scratch = rd_kafka_conf_new();
	if (!scratch) {
		err_set(err, errlen, ila_strerror(ILA_ERR_NOMEM));
		return ILA_ERR_NOMEM;
	}
	int rc = kafka_conf_apply_entry(scratch, entry, err, errlen);
	rd_kafka_conf_destroy(scratch);
	return rc;
}

/* ASCII-only so the result does not depend on the locale. */
static bool contains_nocase(const char *s, const char *word)
{
	for (; *s; s++)
		if (text_starts_with_nocase(s, word))
			return true;
	return false;
}

bool kafka_conf_key_is_secret(const char *key)
{
	if (!key)
		return false;
	return contains_nocase(key, "password") || contains_nocase(key, "secret") ||
	       contains_nocase(key, "key");
}

char *kafka_conf_entry_loggable(const char *entry)
{
	if (!entry)
		return strdup("");
	const char *eq = strchr(entry, '=');
	if (!eq)
		return strdup(entry);
	char *key = strndup(entry, (size_t)(eq - entry));
	if (!key)
		return NULL;
	char *out = NULL;
	if (kafka_conf_key_is_secret(key)) {
		char masked[64];
		text_mask(eq + 1, masked, sizeof(masked));
		if (asprintf(&out, "%s=%s", key, masked) < 0)
			out = NULL;
	} else {
		out = strdup(entry);
	}
	free(key);
	return out;
}
