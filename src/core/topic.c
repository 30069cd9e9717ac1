#include "core/topic.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/text.h"

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

static void err_set(char *err, size_t errlen, const char *msg)
{
	if (err && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* ---- MQTT ---------------------------------------------------------------------------- */

/* Code points MQTT says a string should not contain (MQTT 5 §1.5.4): controls and Unicode
 * non-characters. Brokers such as mosquitto drop the connection over them, so a filter
 * holding one (often a stray CR or LF from a config file) could never be subscribed. */
static bool mqtt_code_point_allowed(unsigned long cp)
{
	if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F))
		return false;
	if (cp >= 0xFDD0 && cp <= 0xFDEF)
		return false;
	return (cp & 0xFFFE) != 0xFFFE;
}

/* Decodes the sequence at p, which text_utf8_valid() has already accepted. */
static unsigned long utf8_decode(const unsigned char *p, size_t *seq_len)
{
	if (p[0] < 0x80) {
		*seq_len = 1;
		return p[0];
	}
	if (p[0] < 0xE0) {
		*seq_len = 2;
		return ((unsigned long)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
	}
	if (p[0] < 0xF0) {
		*seq_len = 3;
		return ((unsigned long)(p[0] & 0x0F) << 12) | ((unsigned long)(p[1] & 0x3F) << 6) |
		       (p[2] & 0x3F);
	}
	*seq_len = 4;
	return ((unsigned long)(p[0] & 0x07) << 18) | ((unsigned long)(p[1] & 0x3F) << 12) |
	       ((unsigned long)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

static bool mqtt_utf8_string_valid(const char *s, size_t len)
{
	if (len > MQTT_TOPIC_MAX || !text_utf8_valid(s, len))
		return false;
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;
	while (p < end) {
		size_t n;
		if (!mqtt_code_point_allowed(utf8_decode(p, &n)))
			return false;
		p += n;
	}
	return true;
}

/* Checks wildcard placement level by level over a filter that is already known to be a
 * well-formed, non-empty string. */
static bool mqtt_filter_levels_valid(const char *filter)
{
	const char *level = filter;
	for (;;) {
		size_t len = strcspn(level, "/");
		bool last = level[len] == '\0';
		for (size_t i = 0; i < len; i++) {
			if (level[i] != '+' && level[i] != '#')
				continue;
			if (len != 1)
				return false;
			if (level[i] == '#' && !last)
				return false;
		}
		if (last)
			return true;
		level += len + 1;
	}
}

bool mqtt_shared_group_valid(const char *group)
{
	if (!group || group[0] == '\0')
		return false;
	size_t len = strlen(group);
	if (strpbrk(group, "/+#"))
		return false;
	return mqtt_utf8_string_valid(group, len);
}

const char *mqtt_filter_unshared(const char *filter)
{
	if (!filter || strncmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return filter;
	const char *slash = strchr(filter + SHARE_PREFIX_LEN, '/');
	return slash ? slash + 1 : filter;
}

bool mqtt_filter_valid(const char *filter)
{
	if (!filter || filter[0] == '\0')
		return false;
	size_t len = strlen(filter);
	if (!mqtt_utf8_string_valid(filter, len))
		return false;
	if (strncmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return mqtt_filter_levels_valid(filter);

	/* MQTT 5 §4.8.2: "$share/" ShareName "/" TopicFilter, both parts non-empty. */
	const char *group = filter + SHARE_PREFIX_LEN;
	size_t group_len = strcspn(group, "/");
	if (group_len == 0 || group[group_len] == '\0')
		return false;
	if (memchr(group, '+', group_len) || memchr(group, '#', group_len))
		return false;
	const char *rest = group + group_len + 1;
	return rest[0] != '\0' && mqtt_filter_levels_valid(rest);
}

bool mqtt_filter_matches(const char *filter, const char *topic)
{
	if (!filter || !topic || topic[0] == '\0' || strpbrk(topic, "+#"))
		return false;
	filter = mqtt_filter_unshared(filter);
	if (filter[0] == '\0')
		return false;
	/* MQTT §4.7.2: wildcards at the first level never match reserved `$` topics. */
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;

	const char *f = filter, *t = topic;
	for (;;) {
		size_t flen = strcspn(f, "/");
		size_t tlen = strcspn(t, "/");
		if (flen == 1 && f[0] == '#')
			return true;
		bool plus = flen == 1 && f[0] == '+';
		if (!plus && (flen != tlen || memcmp(f, t, flen) != 0))
			return false;
		bool f_end = f[flen] == '\0';
		bool t_end = t[tlen] == '\0';
		if (f_end && t_end)
			return true;
		if (t_end)
			/* "a/#" also matches its parent "a". */
			return strcmp(f + flen, "/#") == 0;
		if (f_end)
			return false;
		f += flen + 1;
		t += tlen + 1;
	}
}

/* ---- Kafka --------------------------------------------------------------------------- */

static bool kafka_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool kafka_topic_name_valid(const char *name)
{
	if (!name)
		return false;
	size_t len = strlen(name);
	if (len == 0 || len > KAFKA_TOPIC_NAME_MAX)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!kafka_name_char(name[i]))
			return false;
	return true;
}

bool kafka_topic_is_regex(const char *configured)
{
	return configured && configured[0] == '^';
}

/* Compiles into re; on failure describes the problem in err and returns a negative
 * ila_err. */
static int regex_compile(regex_t *re, const char *pattern, char *err, size_t errlen)
{
	int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc == 0)
		return 0;
	if (err && errlen > 0)
		regerror(rc, re, err, errlen);
	/* POSIX leaves re undefined after a failed regcomp, so it is not freed. */
	return rc == REG_ESPACE ? ILA_ERR_NOMEM : ILA_ERR_INVALID;
}

int kafka_topic_regex_check(const char *pattern, char *err, size_t errlen)
{
	if (!pattern) {
		err_set(err, errlen, "no pattern");
		return ILA_ERR_INVALID;
	}
	regex_t re;
	int rc = regex_compile(&re, pattern, err, errlen);
	if (rc != 0)
		return rc;
	regfree(&re);
	err_set(err, errlen, "");
	return 0;
}

bool kafka_topic_matches(const char *configured, const char *topic)
{
	if (!configured || !topic)
		return false;
	if (!kafka_topic_is_regex(configured))
		return strcmp(configured, topic) == 0;
	regex_t re;
	if (regex_compile(&re, configured, NULL, 0) != 0)
		return false;
	bool match = regexec(&re, topic, 0, NULL, 0) == 0;
	regfree(&re);
	return match;
}

struct kafka_topic_pattern {
	char *configured;
	bool is_regex;
	regex_t re;
};

struct kafka_topic_pattern *kafka_topic_pattern_create(const char *configured, char *err,
							size_t errlen)
{
	if (!configured) {
		err_set(err, errlen, "no topic");
		return NULL;
	}
	struct kafka_topic_pattern *p = calloc(1, sizeof(*p));
	if (!p)
		goto oom;
	p->configured = strdup(configured);
	if (!p->configured)
		goto oom_free;
	p->is_regex = kafka_topic_is_regex(configured);
	if (p->is_regex && regex_compile(&p->re, configured, err, errlen) != 0) {
		free(p->configured);
		free(p);
		return NULL;
	}
	return p;

oom_free:
	free(p);
oom:
	err_set(err, errlen, ila_strerror(ILA_ERR_NOMEM));
	return NULL;
}

void kafka_topic_pattern_destroy(struct kafka_topic_pattern *p)
{
	if (!p)
		return;
	if (p->is_regex)
		regfree(&p->re);
	free(p->configured);
	free(p);
}

bool kafka_topic_pattern_match(const struct kafka_topic_pattern *p, const char *topic)
{
	if (!p || !topic)
		return false;
	if (!p->is_regex)
		return strcmp(p->configured, topic) == 0;
	return regexec(&p->re, topic, 0, NULL, 0) == 0;
}

/* ---- Classification ------------------------------------------------------------------ */

/* Index order is the precedence of §11.6. */
enum { SLOT_HEARTBEAT, SLOT_POLICY, SLOT_EVENT, SLOT_COUNT };

static const enum topic_kind slot_kind[SLOT_COUNT] = {
	[SLOT_HEARTBEAT] = TOPIC_HEARTBEAT,
	[SLOT_POLICY] = TOPIC_POLICY,
	[SLOT_EVENT] = TOPIC_EVENT,
};

struct topic_classifier {
	enum topic_protocol proto;
	char *mqtt_filter[SLOT_COUNT];
	struct kafka_topic_pattern *kafka[SLOT_COUNT];
};

static int classifier_set_slot(struct topic_classifier *c, int slot, const char *topic,
			       char *err, size_t errlen)
{
	if (!topic)
		return 0;
	if (c->proto == TOPIC_PROTO_KAFKA) {
		c->kafka[slot] = kafka_topic_pattern_create(topic, err, errlen);
		return c->kafka[slot] ? 0 : ILA_ERR_INVALID;
	}
	c->mqtt_filter[slot] = strdup(topic);
	if (!c->mqtt_filter[slot]) {
		err_set(err, errlen, ila_strerror(ILA_ERR_NOMEM));
		return ILA_ERR_NOMEM;
	}
	return 0;
}

struct topic_classifier *topic_classifier_create(enum topic_protocol proto,
						 const char *event_topic,
						 const char *heartbeat_topic,
						 const char *policy_topic, char *err, size_t errlen)
{
	struct topic_classifier *c = calloc(1, sizeof(*c));
	if (!c) {
		err_set(err, errlen, ila_strerror(ILA_ERR_NOMEM));
		return NULL;
	}
	c->proto = proto;
	if (classifier_set_slot(c, SLOT_HEARTBEAT, heartbeat_topic, err, errlen) != 0 ||
	    classifier_set_slot(c, SLOT_POLICY, policy_topic, err, errlen) != 0 ||
	    classifier_set_slot(c, SLOT_EVENT, event_topic, err, errlen) != 0) {
		topic_classifier_destroy(c);
		return NULL;
	}
	return c;
}

void topic_classifier_destroy(struct topic_classifier *c)
{
	if (!c)
		return;
	for (int i = SLOT_COUNT - 1; i >= 0; i--) {
		kafka_topic_pattern_destroy(c->kafka[i]);
		free(c->mqtt_filter[i]);
	}
	free(c);
}

static bool classifier_slot_matches(const struct topic_classifier *c, int slot,
				    const char *topic)
{
	if (c->proto == TOPIC_PROTO_KAFKA)
		return c->kafka[slot] && kafka_topic_pattern_match(c->kafka[slot], topic);
	return c->mqtt_filter[slot] && mqtt_filter_matches(c->mqtt_filter[slot], topic);
}

enum topic_kind topic_classify(const struct topic_classifier *c, const char *topic)
{
	if (!c || !topic)
		return TOPIC_UNMATCHED;
	for (int slot = 0; slot < SLOT_COUNT; slot++)
		if (classifier_slot_matches(c, slot, topic))
			return slot_kind[slot];
	return TOPIC_UNMATCHED;
}

bool topic_classifier_has_topics(const struct topic_classifier *c)
{
	if (!c)
		return false;
	for (int slot = 0; slot < SLOT_COUNT; slot++)
		if (c->mqtt_filter[slot] || c->kafka[slot])
			return true;
	return false;
}
