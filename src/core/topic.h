/* Topic rules of the consumers: MQTT topic-filter syntax and matching, Kafka topic names and
 * `^` regex topics, shared-subscription groups, and classification of a message's topic
 * into event / heartbeat / policy (SPEC §4.9, §11.6). Pure functions: safe from any thread. */
#ifndef ILAGENT_CORE_TOPIC_H
#define ILAGENT_CORE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* Longest MQTT topic filter or name: a UTF-8 string carries a 16-bit length. */
#define MQTT_TOPIC_MAX 65535
/* Longest Kafka topic name the broker accepts. */
#define KAFKA_TOPIC_NAME_MAX 249

/* True for a valid MQTT topic filter: non-empty, at most MQTT_TOPIC_MAX bytes, well-formed
 * UTF-8 without control characters (U+0001-U+001F, U+007F-U+009F) or Unicode
 * non-characters, `+` only as a whole level, `#` only as the whole last level. A filter written as
 * `$share/<group>/<filter>` is a shared subscription and must satisfy the MQTT 5 rules for
 * it (valid group, non-empty filter after it); --mqtt_shared_group is checked separately. */
bool mqtt_filter_valid(const char *filter);

/* True when topic (a concrete topic name, no wildcards) matches filter (SPEC §11.6): `+`
 * matches exactly one level, a trailing `#` matches the parent level and everything below,
 * a filter starting with `+` or `#` never matches a topic starting with `$`. A
 * `$share/<group>/` prefix on the filter is ignored, because brokers deliver shared messages
 * under their plain topic. */
bool mqtt_filter_matches(const char *filter, const char *topic);

/* The filter without a leading `$share/<group>/`; filter itself when it has none. */
const char *mqtt_filter_unshared(const char *filter);

/* True for a usable --mqtt_shared_group: non-empty, without `/`, `+` or `#`, and a valid
 * MQTT string like a filter (UTF-8, no control characters or non-characters). */
bool mqtt_shared_group_valid(const char *group);

/* True for a legal Kafka topic name: 1-249 characters of [A-Za-z0-9._-], not "." or "..". */
bool kafka_topic_name_valid(const char *name);

/* True when a configured Kafka topic is a subscription pattern (starts with `^`). */
bool kafka_topic_is_regex(const char *configured);

/* Compiles pattern as a POSIX extended regular expression, as the Kafka client does for
 * pattern subscriptions. Returns 0, or ILA_ERR_INVALID with the compiler's description in
 * err (always NUL-terminated when errlen > 0), or ILA_ERR_NOMEM. */
int kafka_topic_regex_check(const char *pattern, char *err, size_t errlen);

/* True when topic matches configured (SPEC §11.6): regex search when configured starts with
 * `^`, exact equality otherwise. Compiles the pattern on every call; hot paths use
 * struct kafka_topic_pattern instead. An uncompilable pattern matches nothing. */
bool kafka_topic_matches(const char *configured, const char *topic);

/* A configured Kafka topic prepared for repeated matching. Immutable after creation, so
 * several threads may match against one pattern at the same time. */
struct kafka_topic_pattern;

/* Prepares configured (a name, or a regex starting with `^`). Returns NULL and fills err
 * when the regex does not compile or memory runs out. */
struct kafka_topic_pattern *kafka_topic_pattern_create(const char *configured, char *err,
							size_t errlen);
void kafka_topic_pattern_destroy(struct kafka_topic_pattern *p);
bool kafka_topic_pattern_match(const struct kafka_topic_pattern *p, const char *topic);

/* What a consumed message is, decided by its topic. */
enum topic_kind { TOPIC_UNMATCHED = 0, TOPIC_EVENT, TOPIC_HEARTBEAT, TOPIC_POLICY };

enum topic_protocol { TOPIC_PROTO_MQTT, TOPIC_PROTO_KAFKA };

/* The configured topic options of one consumer, ready for classification. Immutable after
 * creation: any thread may classify with it. */
struct topic_classifier;

/* Builds a classifier from the configured topics (each may be NULL when not given). The
 * topics must already be valid for the protocol (the command line checks them); a Kafka
 * regex that fails to compile returns NULL with the reason in err. */
struct topic_classifier *topic_classifier_create(enum topic_protocol proto,
						 const char *event_topic,
						 const char *heartbeat_topic,
						 const char *policy_topic, char *err, size_t errlen);
void topic_classifier_destroy(struct topic_classifier *c);
/* Kind of a message on topic; heartbeat wins over policy, policy over event (§11.6). */
enum topic_kind topic_classify(const struct topic_classifier *c, const char *topic);
/* True when at least one topic option was given. */
bool topic_classifier_has_topics(const struct topic_classifier *c);

#endif
