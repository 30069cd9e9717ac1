#include "ops/log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/text.h"

#define LOG_MAX_SECRETS 32
#define LOG_LIMIT_SLOTS 256
#define LOG_LIMIT_WINDOW_MS 10000

static enum log_level current_level = LOG_LVL_WARN;
static bool json_format;
static char *secrets[LOG_MAX_SECRETS];
static int secret_count;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Rate-limit memory: one slot per distinct message text (by hash), overwritten when the
 * table is full. Losing a slot only lets one extra line through. */
struct limit_slot {
	uint64_t hash;
	int64_t last_ms;
	unsigned long suppressed;
};
static struct limit_slot limit_slots[LOG_LIMIT_SLOTS];

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
static const char *const level_names_lower[] = { "error", "warn", "info", "debug" };

void log_setup(enum log_level level, bool json)
{
	current_level = level;
	json_format = json;
}

enum log_level log_get_level(void)
{
	return current_level;
}

bool log_enabled(enum log_level level)
{
	return level <= current_level;
}

void log_add_secret(const char *secret)
{
	if (!secret || strlen(secret) < 4)
		return;
	pthread_mutex_lock(&log_lock);
	for (int i = 0; i < secret_count; i++) {
		if (strcmp(secrets[i], secret) == 0) {
			pthread_mutex_unlock(&log_lock);
			return;
		}
	}
	if (secret_count < LOG_MAX_SECRETS) {
		char *copy = strdup(secret);
		if (copy)
			secrets[secret_count++] = copy;
	}
	pthread_mutex_unlock(&log_lock);
}

void log_clear_secrets(void)
{
	pthread_mutex_lock(&log_lock);
	for (int i = 0; i < secret_count; i++)
		free(secrets[i]);
	secret_count = 0;
	pthread_mutex_unlock(&log_lock);
}

int log_level_parse(const char *text, enum log_level *level)
{
	for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
		if (strcmp(text, level_names_lower[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return ILA_ERR_INVALID;
}

/* Replaces registered secrets in msg by their masked form. Caller holds log_lock. */
static void mask_secrets(struct tbuf *out, const char *msg)
{
	const char *p = msg;
	while (*p) {
		int hit = -1;
		size_t hit_len = 0;
		for (int i = 0; i < secret_count; i++) {
			size_t n = strlen(secrets[i]);
			if (n > hit_len && strncmp(p, secrets[i], n) == 0) {
				hit = i;
				hit_len = n;
			}
		}
		if (hit >= 0) {
			char masked[64];
			tbuf_puts(out, text_mask(secrets[hit], masked, sizeof(masked)));
			p += hit_len;
		} else {
			tbuf_putc(out, *p++);
		}
	}
}

static void json_string(struct tbuf *b, const char *raw)
{
	/* A line must stay valid JSON whatever bytes a peer sent (a request path, a topic):
	 * bytes that are not UTF-8 become U+FFFD. */
	size_t len = strlen(raw);
	char *clean = text_utf8_valid(raw, len) ? NULL : text_utf8_sanitize(raw, len, len * 3 + 1);
	const char *s = clean ? clean : raw;
	tbuf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': tbuf_puts(b, "\\\""); break;
		case '\\': tbuf_puts(b, "\\\\"); break;
		case '\n': tbuf_puts(b, "\\n"); break;
		case '\r': tbuf_puts(b, "\\r"); break;
		case '\t': tbuf_puts(b, "\\t"); break;
		default:
			if (*p < 0x20)
				tbuf_printf(b, "\\u%04x", *p);
			else
				tbuf_putc(b, (char)*p);
		}
	}
	tbuf_putc(b, '"');
	free(clean);
}

static void json_ctx_key(struct tbuf *b, const char *key, const char *value)
{
	if (!value)
		return;
	tbuf_printf(b, ",\"%s\":", key);
	json_string(b, value);
}

/* Formats and writes one line. Caller holds log_lock. */
static void emit_line(enum log_level level, const char *component, const struct log_ctx *ctx,
		      const char *text)
{
	char ts[32];
	struct tbuf masked, line;
	tbuf_init(&masked);
	tbuf_init(&line);
	mask_secrets(&masked, text);
	clock_rfc3339_ms(clock_now_ms(), ts, sizeof(ts));
	if (json_format) {
		tbuf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
			    level_names_lower[level]);
		json_string(&line, component);
		tbuf_puts(&line, ",\"msg\":");
		json_string(&line, tbuf_cstr(&masked));
		if (ctx) {
			json_ctx_key(&line, "source", ctx->source);
			json_ctx_key(&line, "kind", ctx->kind);
			json_ctx_key(&line, "item", ctx->item);
			if (ctx->status)
				tbuf_printf(&line, ",\"status\":%d", ctx->status);
			json_ctx_key(&line, "topic", ctx->topic);
		}
		tbuf_puts(&line, "}\n");
	} else {
		tbuf_printf(&line, "%s %s %s: %s\n", ts, level_names[level], component,
			    tbuf_cstr(&masked));
	}
	fputs(tbuf_cstr(&line), stderr);
	fflush(stderr);
	tbuf_free(&line);
	tbuf_free(&masked);
}

/* Formats a printf-style message into a heap string (NULL when out of memory). */
static char *format_message(const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (s)
		vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

void log_vmsg(enum log_level level, const char *component, const struct log_ctx *ctx,
	      const char *fmt, va_list ap)
{
	if (!log_enabled(level))
		return;
	char *s = format_message(fmt, ap);
	if (!s)
		return;
	pthread_mutex_lock(&log_lock);
	emit_line(level, component, ctx, s);
	pthread_mutex_unlock(&log_lock);
	free(s);
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, component, NULL, fmt, ap);
	va_end(ap);
}

void log_msg_ctx(enum log_level level, const char *component, const struct log_ctx *ctx,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, component, ctx, fmt, ap);
	va_end(ap);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

void log_limited(enum log_level level, const char *component, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	char *s = format_message(fmt, ap);
	va_end(ap);
	if (!s)
		return;
	struct tbuf text;
	tbuf_init(&text);

	uint64_t h = fnv1a(s);
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&log_lock);
	struct limit_slot *slot = &limit_slots[h % LOG_LIMIT_SLOTS];
	if (slot->hash == h && now - slot->last_ms < LOG_LIMIT_WINDOW_MS) {
		slot->suppressed++;
	} else {
		unsigned long suppressed = slot->hash == h ? slot->suppressed : 0;
		slot->hash = h;
		slot->last_ms = now;
		slot->suppressed = 0;
		if (suppressed) {
			tbuf_printf(&text, "%s (%lu similar messages suppressed)", s, suppressed);
			emit_line(level, component, NULL, tbuf_cstr(&text));
		} else {
			emit_line(level, component, NULL, s);
		}
	}
	pthread_mutex_unlock(&log_lock);
	tbuf_free(&text);
	free(s);
}

void log_fatal_line(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = format_message(fmt, ap);
	va_end(ap);
	if (!s) {
		fputs("ilagent: error: out of memory\n", stderr);
		return;
	}
	/* One line: a message that spans lines would break the "last line" contract. */
	text_replace_chars(s, "\r\n", ' ');
	struct tbuf masked;
	tbuf_init(&masked);
	pthread_mutex_lock(&log_lock);
	mask_secrets(&masked, s);
	fprintf(stderr, "ilagent: error: %s\n", tbuf_cstr(&masked));
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
	tbuf_free(&masked);
	free(s);
}
