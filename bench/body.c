/* Synthetic benchmark events: see body.h. */
#include "body.h"

#include "core/clock.h"
#include "core/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool plain_text(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == '"' || c == '\\')
			return false;
	}
	return true;
}

void body_summary(const struct body_gen *g, uint64_t n, char *out)
{
	snprintf(out, BODY_FIELD_MAX, "ilagent-bench %s event %012" PRIu64, g->tag, n);
}

bool body_alert_key(const struct body_gen *g, uint64_t n, char *out)
{
	switch (g->keys) {
	case BODY_KEYS_DISTINCT:
		snprintf(out, BODY_FIELD_MAX, "bench-%s-%012" PRIu64, g->tag, n);
		return true;
	case BODY_KEYS_CYCLE:
		snprintf(out, BODY_FIELD_MAX, "bench-key-%010" PRIu64, n % g->key_count);
		return true;
	case BODY_KEYS_NONE:
		break;
	}
	out[0] = '\0';
	return false;
}

/* Writes event n with the current padding; out must be large enough (callers size it from
 * event_len, which this same function measured). */
static size_t render(const struct body_gen *g, uint64_t n, char *out, size_t cap)
{
	char summary[BODY_FIELD_MAX];
	char alert_key[BODY_FIELD_MAX];
	body_summary(g, n, summary);
	bool has_key = body_alert_key(g, n, alert_key);
	char key_part[BODY_FIELD_MAX + 16];
	if (has_key)
		snprintf(key_part, sizeof(key_part), ",\"alertKey\":\"%s\"", alert_key);
	else
		snprintf(key_part, sizeof(key_part), "%s", g->wire_nulls ? ",\"alertKey\":null" : "");
	int len = snprintf(out, cap,
			   "{\"integrationKey\":\"%s\",\"eventType\":\"ALERT\",\"summary\":\"%s\"%s"
			   ",\"details\":\"%.*s\",\"priority\":\"LOW\"%s}",
			   g->integration_key, summary, key_part, (int)g->details_len,
			   g->details ? g->details : "",
			   g->wire_nulls ? ",\"images\":null,\"links\":null,\"customDetails\":null"
					 : "");
	return len < 0 ? 0 : (size_t)len;
}

int body_gen_init(struct body_gen *g, const char *integration_key, enum body_keys keys,
		  unsigned key_count, size_t size, const char *tag, bool wire_nulls)
{
	memset(g, 0, sizeof(*g));
	if (!integration_key || !*integration_key ||
	    strlen(integration_key) >= sizeof(g->integration_key) || !plain_text(integration_key))
		return ILA_ERR_INVALID;
	if (keys == BODY_KEYS_CYCLE && key_count == 0)
		return ILA_ERR_INVALID;
	snprintf(g->integration_key, sizeof(g->integration_key), "%s", integration_key);
	if (tag) {
		if (!*tag || strlen(tag) >= sizeof(g->tag) || !plain_text(tag))
			return ILA_ERR_INVALID;
		snprintf(g->tag, sizeof(g->tag), "%s", tag);
	} else {
		uint32_t mix = (uint32_t)getpid() * 2654435761u ^ (uint32_t)clock_now_ms() ^
			       (uint32_t)(clock_mono_ns() >> 10);
		snprintf(g->tag, sizeof(g->tag), "%08" PRIx32, mix);
	}
	g->keys = keys;
	g->key_count = key_count;
	g->wire_nulls = wire_nulls;

	char probe[512];
	size_t base = render(g, 0, probe, sizeof(probe));
	size_t pad = size > base ? size - base : 0;
	g->details = malloc(pad + 1);
	if (!g->details)
		return ILA_ERR_NOMEM;
	memset(g->details, 'x', pad);
	g->details[pad] = '\0';
	g->details_len = pad;
	g->event_len = base + pad;
	return 0;
}

void body_gen_free(struct body_gen *g)
{
	free(g->details);
	g->details = NULL;
	g->details_len = 0;
}

size_t body_event_write(const struct body_gen *g, uint64_t n, char *out)
{
	return render(g, n, out, g->event_len + 1);
}

size_t body_batch_len(const struct body_gen *g, size_t count)
{
	if (count == 0)
		return 2;
	return 2 + count * g->event_len + (count - 1);
}

size_t body_batch_write(const struct body_gen *g, uint64_t first, size_t count, char *out)
{
	size_t off = 0;
	out[off++] = '[';
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			out[off++] = ',';
		off += body_event_write(g, first + i, out + off);
	}
	out[off++] = ']';
	out[off] = '\0';
	return off;
}
