/* The -X/--kafka_config entries (SPEC §4.9, §13.1): syntax, the properties ilagent manages
 * itself, the Kafka client's own verdict, and which properties are secrets in logs.
 * Any thread may call these; they only touch caller-owned memory. */
#ifndef ILAGENT_CLI_KAFKA_CONF_CHECK_H
#define ILAGENT_CLI_KAFKA_CONF_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

/* Checks one "key=value" entry (split at the first '='). Returns 0, or ILA_ERR_INVALID with
 * the §4.9 text (without option prefix) in err: "expected key=value", the reserved-property
 * texts, or the Kafka client's message verbatim; ILA_ERR_NOMEM when memory runs out. */
int kafka_conf_check_entry(const char *entry, char *err, size_t errlen);

/* Applies one entry to conf after the same checks, for building the consumer configuration
 * (§13.1: entries are applied in command-line order after ilagent's own properties). */
int kafka_conf_apply_entry(rd_kafka_conf_t *conf, const char *entry, char *err,
			   size_t errlen);

/* True when the property's value must be masked in logs: its name contains "password",
 * "secret" or "key" in any letter case (SPEC §5). */
bool kafka_conf_key_is_secret(const char *key);

/* "key=value" as it may be logged: the value masked (SPEC §2) when the key is a secret.
 * Caller frees; NULL when out of memory. */
char *kafka_conf_entry_loggable(const char *entry);

#endif
